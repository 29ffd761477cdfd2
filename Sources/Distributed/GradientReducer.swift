import NN

/// Sums a network's gradients over all ranks, overlapping communication with backward
/// (the bucketing of PyTorch DDP and Horovod).
///
/// The flat gradient buffer holds parameters in the order backward finishes them, so it is cut
/// into buckets of contiguous parameters. The network reports each finished parameter through
/// `gradientReady`; once a whole bucket is finished its in-place all-reduce starts and backward
/// goes on while it travels. `finish` completes the rest.
///
/// Buckets start strictly in bucket order, even if a later bucket finishes first: MPI matches
/// collectives by the order in which ranks start them, and ranks must not disagree about it.
///
/// Per step: `parameters.zeroGrad()`, backward (calling `gradientReady`), `finish()`.
public final class GradientReducer {
    public enum Mode: Sendable, Equatable {
        /// Buckets of about `bucketBytes` (a parameter bigger than that is a bucket of its own).
        case bucketed(bucketBytes: Int)
        /// One blocking all-reduce of the whole buffer in `finish`, for comparison.
        case blocking
    }

    /// Time spent in MPI, accumulated over steps until `resetStats()`.
    public struct Stats: Sendable {
        public var steps = 0
        /// Buckets started from `gradientReady`, i.e. while backward still ran.
        public var bucketsStartedEarly = 0
        /// Buckets started in `finish` (blocked behind an unfinished parameter, or blocking mode).
        public var bucketsStartedInFinish = 0
        /// Inside MPI calls made from `gradientReady` (starting and polling).
        public var secondsDuringBackward = 0.0
        /// Inside `finish`: starting the remaining buckets and waiting for all of them.
        public var secondsInFinish = 0.0
    }

    /// Measured with 2 ranks (train-bench --bucket-mb): 25 MB buckets left most of the sum for
    /// `finish` (the last one holds the first layers, which finish last), 2 MB ones spent more on
    /// starting and polling than they hid; at 8 MB 60–80 % of it was hidden behind backward.
    public static let defaultBucketBytes = 8 << 20

    public let mode: Mode
    /// Element ranges of the flat gradient buffer, in the order they are reduced.
    public let buckets: [Range<Int>]
    public private(set) var stats = Stats()

    private let parameters: ParameterSet
    private let communicator: Communicator
    private let bucketOfParameter: [Int]
    private let parametersInBucket: [Int]
    private var isReady: [Bool]
    private var readyInBucket: [Int]
    /// Buckets below this index have been started.
    private var nextBucket = 0
    /// Started buckets whose reduction may still be in flight, oldest first.
    private var inFlight: [PendingReduction] = []
    private var firstInFlight = 0
    /// An MPI error inside `gradientReady` (which cannot throw); `finish` rethrows it.
    private var deferredError: Error?
    private let clock = ContinuousClock()

    public init(parameters: ParameterSet, communicator: Communicator,
                mode: Mode = .bucketed(bucketBytes: GradientReducer.defaultBucketBytes)) {
        self.parameters = parameters
        self.communicator = communicator
        self.mode = mode
        let n = parameters.parameters.count
        var ranges: [Range<Int>] = []
        var members: [Int] = []
        var owner = [Int](repeating: 0, count: n)
        switch mode {
        case .blocking:
            if n > 0 { ranges = [0..<parameters.count]; members = [n] }
        case .bucketed(let bucketBytes):
            precondition(bucketBytes > 0, "GradientReducer: bucket size must be positive")
            let limit = max(1, bucketBytes / MemoryLayout<Float>.stride)
            var start = 0
            var inCurrent = 0
            for i in parameters.parameters.indices.sorted(by: { parameters.offsets[$0] < parameters.offsets[$1] }) {
                let offset = parameters.offsets[i]
                if inCurrent > 0 && offset + parameters.parameters[i].count - start > limit {
                    ranges.append(start..<offset)
                    members.append(inCurrent)
                    start = offset
                    inCurrent = 0
                }
                owner[i] = ranges.count
                inCurrent += 1
            }
            if inCurrent > 0 {
                ranges.append(start..<parameters.count)
                members.append(inCurrent)
            }
        }
        buckets = ranges
        bucketOfParameter = owner
        parametersInBucket = members
        isReady = [Bool](repeating: false, count: n)
        readyInBucket = [Int](repeating: 0, count: members.count)
    }

    /// Parameter `index` (into `parameters.parameters`) has its final gradient: the network's
    /// `gradientReady` hook. Repeated calls within a step count once.
    public func gradientReady(_ index: Int) {
        guard case .bucketed = mode, deferredError == nil, !isReady[index] else { return }
        isReady[index] = true
        readyInBucket[bucketOfParameter[index]] += 1
        let t0 = clock.now
        do {
            try poll()
            while nextBucket < buckets.count && readyInBucket[nextBucket] == parametersInBucket[nextBucket] {
                try startNextBucket()
                stats.bucketsStartedEarly += 1
            }
        } catch {
            deferredError = error
        }
        stats.secondsDuringBackward += seconds(since: t0)
    }

    /// Completes the sums of all buckets, including those whose parameters never reported ready.
    /// Every rank holds the same gradient afterwards; the reducer is ready for the next step.
    /// (The loss divides by the global count of valid pixels before backward, so the sums need
    /// no scaling here.)
    public func finish() throws {
        defer { startNewStep() }
        if let error = deferredError { throw error }
        let t0 = clock.now
        switch mode {
        case .blocking:
            try communicator.allReduceSum(parameters.gradBuffer)
            stats.bucketsStartedInFinish += buckets.count
        case .bucketed:
            while nextBucket < buckets.count {
                try startNextBucket()
                stats.bucketsStartedInFinish += 1
            }
            for k in firstInFlight..<inFlight.count { try inFlight[k].wait() }
        }
        stats.secondsInFinish += seconds(since: t0)
        stats.steps += 1
    }

    public func resetStats() { stats = Stats() }

    private func startNextBucket() throws {
        let range = buckets[nextBucket]
        let slice = UnsafeMutableBufferPointer(start: parameters.grads + range.lowerBound, count: range.count)
        inFlight.append(try communicator.startAllReduceSum(slice))
        nextBucket += 1
    }

    /// Tests the oldest reductions in flight: MPI progresses nonblocking collectives only
    /// inside MPI calls, so polling during backward is what moves them along.
    private func poll() throws {
        while firstInFlight < inFlight.count, try inFlight[firstInFlight].test() {
            firstInFlight += 1
        }
    }

    private func startNewStep() {
        for i in isReady.indices { isReady[i] = false }
        for b in readyInBucket.indices { readyInBucket[b] = 0 }
        nextBucket = 0
        inFlight.removeAll(keepingCapacity: true)
        firstInFlight = 0
        deferredError = nil
    }

    private func seconds(since t: ContinuousClock.Instant) -> Double {
        let d = clock.now - t
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}
