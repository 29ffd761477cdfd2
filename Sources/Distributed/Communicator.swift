import Foundation

/// The collective operations data-parallel training needs, over all ranks of one job.
///
/// Every rank must call the same collectives in the same order (MPI's rule); buffers are
/// reduced in place. `MPICommunicator` is the real one; `SingleProcessCommunicator` is one
/// rank without MPI, where every operation is the identity.
public protocol Communicator: AnyObject, Sendable {
    var rank: Int { get }
    var size: Int { get }

    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws
    func allReduceMax(_ value: Int32) throws -> Int32
    /// Starts an in-place sum that completes while the caller computes; the buffer must not be
    /// touched until the returned reduction reports completion.
    func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> PendingReduction
    /// `values` from every rank, concatenated in rank order (`size * values.count` elements).
    func allGather(_ values: [Double]) throws -> [Double]

    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Double>, root: Int) throws
    func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) throws

    /// Point to point, blocking: `receive` on rank `to` takes what `send` sent, in order.
    func send(_ buffer: UnsafeBufferPointer<Float>, to rank: Int) throws
    func receive(_ buffer: UnsafeMutableBufferPointer<Float>, from rank: Int) throws

    func barrier() throws
    /// Ends every rank of the job with `code`. The way out of an error on one rank: a rank that
    /// merely exits could leave the others blocked in a collective.
    func abort(code: Int32) -> Never
    /// Ends this rank's part in the job after a success; the last call on the communicator.
    func finalize() throws
}

/// An all-reduce in flight (see `Communicator.startAllReduceSum`).
public protocol PendingReduction: AnyObject {
    /// Lets the reduction progress; true once the result is in the buffer.
    func test() throws -> Bool
    /// Blocks until the result is in the buffer.
    func wait() throws
}

public enum CommunicatorError: Error, CustomStringConvertible {
    case mpi(call: String, code: Int32, message: String)
    case alreadyInitialized
    case threadSupport(provided: Int32, required: Int32)
    case wrongLauncher(WrongLauncher)
    case libraryMismatch(builtFor: String, loaded: String)

    public var description: String {
        switch self {
        case let .mpi(call, code, message): return "\(call) failed (MPI error \(code)): \(message)"
        case .alreadyInitialized: return "MPI was already initialized (or finalized) in this process"
        case let .threadSupport(provided, required):
            return "the MPI library provides thread level \(provided), DeepDEM needs \(required) (MPI_THREAD_SERIALIZED)"
        case let .wrongLauncher(wrong): return wrong.description
        case let .libraryMismatch(builtFor, loaded):
            return "this deepdem was compiled against \(builtFor)'s mpi.h but loaded \(loaded); "
                + "rebuild it from an empty build folder (make clean, then make build MPI=openmpi or MPI=mpich)"
        }
    }
}

public extension Communicator {
    /// True on every rank when `flag` is true on any rank; how ranks agree to stop together.
    func anyRank(_ flag: Bool) throws -> Bool {
        try allReduceMax(flag ? 1 : 0) != 0
    }

    /// Element-wise sum over ranks of a few scalars (loss sums, valid-pixel counts), added in
    /// rank order on every rank: all ranks get the same bits whatever MPI's reduction algorithm,
    /// so decisions taken from them (LR plateau, early stopping, best checkpoint) agree.
    /// Integers up to 2^53 are exact.
    func sumAcrossRanks(_ values: [Double]) throws -> [Double] {
        try sumAcrossRanks(values, failure: nil)
    }

    /// `sumAcrossRanks` that also tells every rank whether any rank brings a `failure` of its
    /// own work; if one does, every rank throws `RankFailure`, so all end together through
    /// `finalize` with one error line, instead of one rank aborting the job.
    @discardableResult
    func sumAcrossRanks(_ values: [Double], failure: Error?) throws -> [Double] {
        let n = values.count + 1
        let all = try allGather(values + [failure == nil ? 0 : 1])
        if let first = (0..<size).first(where: { all[$0 * n + values.count] != 0 }) {
            throw RankFailure(error: failure, report: rank == first)
        }
        var sums = [Double](repeating: 0, count: values.count)
        for r in 0..<size {
            for i in 0..<values.count { sums[i] += all[r * n + i] }
        }
        return sums
    }

    /// Broadcasts an array of any length (rank `root`'s `values`; the others' are ignored): its
    /// count first, so the other ranks need not know it.
    func broadcast<T: BitwiseCopyable>(_ values: [T], root: Int) throws -> [T] {
        var count = Int64(values.count)
        try withUnsafeMutableBytes(of: &count) { try broadcast($0, root: root) }
        if rank == root {
            var sent = values
            try sent.withUnsafeMutableBytes { try broadcast($0, root: root) }
            return values
        }
        // Received in place: a scene's validity table can be hundreds of megabytes.
        let n = Int(count)
        return try [T](unsafeUninitializedCapacity: n) { buffer, initialized in
            try broadcast(UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: buffer[0..<n])), root: root)
            initialized = n
        }
    }
}

/// Some rank failed at work of its own (reading its chips, writing the run folder), so every rank
/// stops. `error` is this rank's own failure (nil where another rank failed); `report` is true on
/// exactly one rank, the lowest that failed, which prints it.
public struct RankFailure: Error, CustomStringConvertible {
    public let error: Error?
    public let report: Bool
    public var description: String { error.map { "\($0)" } ?? "another rank failed" }
}

/// One process, no MPI: sums and broadcasts are the identity.
public final class SingleProcessCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {}
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {}
    public func allReduceMax(_ value: Int32) throws -> Int32 { value }
    public func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> PendingReduction {
        CompletedReduction.shared
    }
    public func allGather(_ values: [Double]) throws -> [Double] { values }
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws {}
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Double>, root: Int) throws {}
    public func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) throws {}
    /// There is no other rank to talk to.
    public func send(_ buffer: UnsafeBufferPointer<Float>, to rank: Int) throws { preconditionFailure("send in a single process") }
    public func receive(_ buffer: UnsafeMutableBufferPointer<Float>, from rank: Int) throws { preconditionFailure("receive in a single process") }
    public func barrier() throws {}
    public func abort(code: Int32) -> Never { exit(code) }
    public func finalize() throws {}
}

final class CompletedReduction: PendingReduction, Sendable {
    static let shared = CompletedReduction()
    func test() throws -> Bool { true }
    func wait() throws {}
}
