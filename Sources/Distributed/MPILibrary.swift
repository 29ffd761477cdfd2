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
        let all = String(decoding: text.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let first = all.split(whereSeparator: \.isNewline).first.map(String.init) ?? all
        return first.split(whereSeparator: \.isWhitespace).joined(separator: " ")
    }

    /// A launcher of another MPI than the one this binary is for, when `environment` says it
    /// started this process as one of several ranks. Each of its ranks then initializes as an
    /// MPI singleton (measured under Open MPI 4.1's mpirun and MPICH 4.0's Hydra: no hang, N
    /// jobs of one rank), which would train N separate models.
    static func foreignLauncher(in environment: [String: String]) -> WrongLauncher? {
        let built = builtFor
        for family in launcherFamilies where !built.hasPrefix(family.mpi) {
            guard let ranks = environment[family.sizeVariable].flatMap(Int.init), ranks > 1 else { continue }
            let rank = environment[family.rankVariable].flatMap(Int.init) ?? 0
            let own = launcherFamilies.first { built.hasPrefix($0.mpi) }
            return WrongLauncher(builtFor: built, launcher: family.launcher, variable: family.sizeVariable,
                                 ranks: ranks, launcherRank: rank, use: own?.use ?? "the launcher of that MPI",
                                 rebuild: family.rebuild)
        }
        return nil
    }

    /// What each MPI's launchers put in the environment of the ranks they start.
    private static let launcherFamilies: [(mpi: String, sizeVariable: String, rankVariable: String,
                                           launcher: String, use: String, rebuild: String)] = [
        ("Open MPI", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "Open MPI's launcher",
         "Open MPI's mpirun", "make build MPI=openmpi"),
        // Hydra (MPICH's and Intel MPI's mpiexec) and srun --mpi=pmi2 speak PMI.
        ("MPICH", "PMI_SIZE", "PMI_RANK", "a PMI launcher such as MPICH's mpiexec or srun --mpi=pmi2",
         "MPICH's mpiexec (mpiexec.mpich)", "make build MPI=mpich"),
    ]
}

/// This binary was started by the launcher of another MPI (see `MPILibrary.foreignLauncher`).
public struct WrongLauncher: Sendable, Equatable, CustomStringConvertible {
    public let builtFor: String
    public let launcher: String
    public let variable: String
    public let ranks: Int
    /// This process's rank as the launcher numbered it: every rank finds the mismatch, and
    /// the launcher's rank 0 alone need say so.
    public let launcherRank: Int
    let use: String
    let rebuild: String

    public var description: String {
        "this deepdem was built for \(builtFor) but was started by \(launcher) (\(variable)=\(ranks)); "
            + "use \(use) or a build for that launcher's MPI (\(rebuild))"
    }
}
