import CMPI
import Foundation

/// Which MPI this binary is for and which one it runs on. Both may be asked before `MPI_Init`,
/// so a mismatch can be told before a launcher's ranks each start as a singleton.
public enum MPILibrary {
    /// The MPI the binary was compiled against ("Open MPI 4.1.4", "MPICH 4.0.2"): its ABI.
    public static var builtFor: String { String(cString: deepdem_mpi_built_for()) }

    /// The first line of `MPI_Get_library_version`, the library the loader found, with its runs
    /// of blanks made one space (MPICH's is "MPICH Version:<tab>4.0.2").
    public static func loaded() -> String {
        var text = [CChar](repeating: 0, count: Int(deepdem_mpi_max_library_version_string()) + 1)
        var length: Int32 = 0
        guard MPI_Get_library_version(&text, &length) == MPI_SUCCESS else { return builtFor }
        // Open MPI counts the terminating NUL in the length, MPICH does not.
        let all = String(decoding: text.prefix(Int(length)).prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let first = all.split(whereSeparator: \.isNewline).first.map(String.init) ?? all
        return first.split(whereSeparator: \.isWhitespace).joined(separator: " ")
    }

    /// The loaded library when it is the other MPI than the header's: a build folder switched
    /// between MPIs without a clean rebuild links one and compiled the other, whose handles and
    /// constants differ (measured: MPICH's header over Open MPI's library aborts in MPI_Init_thread).
    static func mismatch() -> String? {
        let built = builtFor, loaded = loaded()
        let clash = (built.hasPrefix("MPICH") && loaded.hasPrefix("Open MPI"))
            || (built.hasPrefix("Open MPI") && loaded.hasPrefix("MPICH"))
        return clash ? loaded : nil
    }

    /// A launcher that started this process as one of several ranks, as `environment` says,
    /// without speaking this binary's MPI: the launcher of another MPI, or srun without a PMI
    /// plugin this MPI knows. Each rank then initializes as an MPI singleton (measured under Open
    /// MPI 4.1's mpirun, MPICH 4.0's Hydra and Slurm 22.05's srun --mpi=pmix: no hang, N jobs of
    /// one rank), which would train N separate models.
    static func wrongLauncher(in environment: [String: String]) -> WrongLauncher? {
        let built = builtFor
        func count(_ variable: String) -> Int? { environment[variable].flatMap(Int.init).flatMap { $0 > 1 ? $0 : nil } }
        let own = families.first { built.hasPrefix($0.mpi) }
        for family in families where family.mpi != own?.mpi {
            guard let ranks = count(family.sizeVariable) else { continue }
            return WrongLauncher(
                builtFor: built, launcher: "\(family.launcher) (\(family.sizeVariable)=\(ranks))",
                advice: "use \(own?.launcher ?? "the launcher of that MPI") or a build for that launcher's MPI (\(family.rebuild))",
                launcherRank: environment[family.rankVariable].flatMap(Int.init) ?? 0)
        }
        // Launched by an MPI launcher, a rank has its variables; under srun alone, only Slurm's.
        if families.allSatisfy({ environment[$0.sizeVariable] == nil }), let tasks = count("SLURM_STEP_NUM_TASKS") {
            return WrongLauncher(
                builtFor: built, launcher: "srun without a PMI plugin it speaks (SLURM_STEP_NUM_TASKS=\(tasks))",
                advice: "use \(own?.srun ?? "srun --mpi= with the plugin of that MPI") (DEEPDEM_SRUN_MPI in slurm/train.sbatch)",
                launcherRank: environment["SLURM_PROCID"].flatMap(Int.init) ?? 0)
        }
        return nil
    }

    /// What each MPI's launchers put in the environment of the ranks they start.
    private static let families: [(mpi: String, sizeVariable: String, rankVariable: String, launcher: String,
                                   rebuild: String, srun: String)] = [
        ("Open MPI", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "Open MPI's mpirun",
         "make build MPI=openmpi", "srun --mpi=pmix"),
        // Hydra (MPICH's and Intel MPI's mpiexec) and srun --mpi=pmi2 speak PMI.
        ("MPICH", "PMI_SIZE", "PMI_RANK", "a PMI launcher such as MPICH's mpiexec or srun --mpi=pmi2",
         "make build MPI=mpich", "srun --mpi=pmi2"),
    ]
}

/// This binary was started as several ranks by a launcher that does not speak its MPI (see
/// `MPILibrary.wrongLauncher`).
public struct WrongLauncher: Sendable, Equatable, CustomStringConvertible {
    public let builtFor: String
    /// The launcher and the variable that gave it away.
    public let launcher: String
    public let advice: String
    /// This process's rank as the launcher numbered it: every rank finds the mismatch, and
    /// the launcher's rank 0 alone need say so.
    public let launcherRank: Int

    public var description: String {
        "this deepdem was built for \(builtFor) but was started by \(launcher); \(advice)"
    }
}
