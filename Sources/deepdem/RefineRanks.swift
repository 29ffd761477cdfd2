import Distributed
import Foundation

/// How many processes refine one scene: under a launcher that started several (`mpirun -np N`,
/// `mpiexec`, `srun -n N`), MPI's communicator of them; otherwise one process, without MPI.
enum RefineRanks {
    /// Variables through which Open MPI, MPICH's Hydra and PMI, and Slurm's steps tell a process
    /// how many processes its launcher started.
    static let sizeVariables = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_STEP_NUM_TASKS"]

    static func launched(_ environment: [String: String]) -> Bool {
        sizeVariables.contains { (environment[$0].flatMap(Int.init) ?? 1) > 1 }
    }

    static func communicator() -> Communicator {
        guard launched(ProcessInfo.processInfo.environment) else { return SingleProcessCommunicator() }
        do { return try MPICommunicator() } catch { fail(error) }
    }
}
