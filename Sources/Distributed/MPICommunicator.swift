import CMPI
import Foundation

/// `MPI_COMM_WORLD` of this process's MPI job. Without a launcher (`mpirun`, `srun`) the process
/// is an MPI singleton, rank 0 of 1, so the executable can always use this communicator.
///
/// MPI handle types are never named here (only inferred from the shim's accessors), so the same
/// source compiles against MPICH, whose handles are integers rather than Open MPI's pointers.
public final class MPICommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public let size: Int
    private var finalized = false

    /// Initializes MPI. At most once per process: MPI cannot be initialized again after
    /// `finalize()`.
    ///
    /// Asks for `MPI_THREAD_SERIALIZED`: gradient buckets are started from the network's
    /// backward callback, which (in async code) may run on another thread than the one that
    /// initialized MPI, but never concurrently with other MPI calls.
    public init() throws {
        var initialized: Int32 = 0
        var wasFinalized: Int32 = 0
        MPI_Initialized(&initialized)
        MPI_Finalized(&wasFinalized)
        if initialized != 0 || wasFinalized != 0 { throw CommunicatorError.alreadyInitialized }
        if let loaded = MPILibrary.mismatch() {
            throw CommunicatorError.libraryMismatch(builtFor: MPILibrary.builtFor, loaded: loaded)
        }
        let required = Int32(deepdem_mpi_thread_serialized())
        var provided: Int32 = 0
        try mpiCheck("MPI_Init_thread", MPI_Init_thread(nil, nil, required, &provided))
        // Errors come back as codes (and become Swift errors) instead of killing the job.
        try mpiCheck("MPI_Comm_set_errhandler",
                     MPI_Comm_set_errhandler(deepdem_mpi_comm_world(), deepdem_mpi_errors_return()))
        if provided < required {
            MPI_Finalize()
            throw CommunicatorError.threadSupport(provided: provided, required: required)
        }
        var r: Int32 = 0
        var s: Int32 = 0
        try mpiCheck("MPI_Comm_rank", MPI_Comm_rank(deepdem_mpi_comm_world(), &r))
        try mpiCheck("MPI_Comm_size", MPI_Comm_size(deepdem_mpi_comm_world(), &s))
        if s == 1, let wrong = MPILibrary.wrongLauncher(in: ProcessInfo.processInfo.environment) {
            MPI_Finalize()
            throw CommunicatorError.wrongLauncher(wrong)
        }
        rank = Int(r)
        size = Int(s)
    }

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        try inChunks(buffer.count) { start, n in
            try mpiCheck("MPI_Allreduce", MPI_Allreduce(
                deepdem_mpi_in_place(), buffer.baseAddress! + start, n,
                deepdem_mpi_float(), deepdem_mpi_sum(), deepdem_mpi_comm_world()))
        }
    }

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
        try inChunks(buffer.count) { start, n in
            try mpiCheck("MPI_Allreduce", MPI_Allreduce(
                deepdem_mpi_in_place(), buffer.baseAddress! + start, n,
                deepdem_mpi_double(), deepdem_mpi_sum(), deepdem_mpi_comm_world()))
        }
    }

    public func allReduceMax(_ value: Int32) throws -> Int32 {
        var v = value
        try mpiCheck("MPI_Allreduce", MPI_Allreduce(
            deepdem_mpi_in_place(), &v, 1, deepdem_mpi_int(), deepdem_mpi_max(), deepdem_mpi_comm_world()))
        return v
    }

    public func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> PendingReduction {
        precondition(buffer.count <= Int(Int32.max), "startAllReduceSum: \(buffer.count) elements exceed MPI's count")
        let pending = MPIPendingReduction()
        try mpiCheck("MPI_Iallreduce", MPI_Iallreduce(
            deepdem_mpi_in_place(), buffer.baseAddress, Int32(buffer.count),
            deepdem_mpi_float(), deepdem_mpi_sum(), deepdem_mpi_comm_world(), &pending.request))
        return pending
    }

    public func allGather(_ values: [Double]) throws -> [Double] {
        var all = [Double](repeating: 0, count: values.count * size)
        let n = Int32(values.count)
        try values.withUnsafeBufferPointer { send in
            try all.withUnsafeMutableBufferPointer { recv in
                try mpiCheck("MPI_Allgather", MPI_Allgather(
                    send.baseAddress, n, deepdem_mpi_double(),
                    recv.baseAddress, n, deepdem_mpi_double(), deepdem_mpi_comm_world()))
            }
        }
        return all
    }

    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws {
        try broadcast(UnsafeMutableRawBufferPointer(buffer), root: root)
    }

    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Double>, root: Int) throws {
        try broadcast(UnsafeMutableRawBufferPointer(buffer), root: root)
    }

    public func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) throws {
        try inChunks(bytes.count) { start, n in
            try mpiCheck("MPI_Bcast", MPI_Bcast(
                bytes.baseAddress! + start, n, deepdem_mpi_byte(), Int32(root), deepdem_mpi_comm_world()))
        }
    }

    public func send(_ buffer: UnsafeBufferPointer<Float>, to rank: Int) throws {
        try inChunks(buffer.count) { start, n in
            try mpiCheck("MPI_Send", MPI_Send(buffer.baseAddress! + start, n, deepdem_mpi_float(), Int32(rank), 0, deepdem_mpi_comm_world()))
        }
    }

    public func receive(_ buffer: UnsafeMutableBufferPointer<Float>, from rank: Int) throws {
        try inChunks(buffer.count) { start, n in
            try mpiCheck("MPI_Recv", MPI_Recv(buffer.baseAddress! + start, n, deepdem_mpi_float(), Int32(rank), 0,
                                              deepdem_mpi_comm_world(), deepdem_mpi_status_ignore()))
        }
    }

    public func barrier() throws {
        try mpiCheck("MPI_Barrier", MPI_Barrier(deepdem_mpi_comm_world()))
    }

    public func abort(code: Int32) -> Never {
        MPI_Abort(deepdem_mpi_comm_world(), code)
        exit(code)   // MPI_Abort does not return; this only satisfies the type.
    }

    public func finalize() throws {
        if finalized { return }
        finalized = true
        try mpiCheck("MPI_Finalize", MPI_Finalize())
    }
}

final class MPIPendingReduction: PendingReduction {
    var request = deepdem_mpi_request_null()

    func test() throws -> Bool {
        var done: Int32 = 0
        try mpiCheck("MPI_Test", MPI_Test(&request, &done, deepdem_mpi_status_ignore()))
        return done != 0
    }

    func wait() throws {
        try mpiCheck("MPI_Wait", MPI_Wait(&request, deepdem_mpi_status_ignore()))
    }
}

/// MPI counts are 32-bit: larger buffers go in pieces of 2^30 elements.
private func inChunks(_ count: Int, _ body: (Int, Int32) throws -> Void) rethrows {
    var start = 0
    while start < count {
        let n = min(count - start, 1 << 30)
        try body(start, Int32(n))
        start += n
    }
}

private func mpiCheck(_ call: String, _ code: Int32) throws {
    if code == MPI_SUCCESS { return }
    var text = [CChar](repeating: 0, count: Int(deepdem_mpi_max_error_string()) + 1)
    var length: Int32 = 0
    MPI_Error_string(code, &text, &length)
    let message = String(decoding: text.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    throw CommunicatorError.mpi(call: call, code: code, message: message)
}
