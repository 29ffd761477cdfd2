import Distributed
import Foundation
import NN
import Primitives

/// Layer-like shapes; the largest (73,728 floats, 288 KB) exceeds the 64 KB buckets below.
private let shapes: [[Int]] = [
    [32, 6, 3, 3], [32], [64, 32, 3, 3], [64], [128, 64, 3, 3], [128], [128], [128],
    [64, 128, 2, 2], [64], [64, 64, 3, 3], [64], [1, 64, 3, 3], [1], [7],
]

private func makeParameters() -> ParameterSet {
    ParameterSet(shapes.enumerated().map { ("p\($0.offset)", Parameter($0.element)) })
}

/// Gradients of rank `rank` at flat position `i`: multiples of 1/8 below 2^10, so the sum over
/// any number of ranks in any order is exact.
private func exactGradient(rank: Int, step: Int, _ i: Int) -> Float {
    Float((rank + 1) * ((i &* 7 &+ step) % 11)) / 8
}

func runReducerChecks(_ p: inout Probe) throws {
    let comm = p.comm
    let r = comm.rank
    let n = comm.size
    let bucketBytes = 64 << 10
    let limit = bucketBytes / 4

    let params = makeParameters()
    let reducer = GradientReducer(parameters: params, communicator: comm, mode: .bucketed(bucketBytes: bucketBytes))
    checkBuckets(&p, reducer.buckets, params, limit: limit)

    // Backward order (the layout's order): every bucket starts while "backward" runs.
    for i in 0..<params.count { params.grads[i] = exactGradient(rank: r, step: 0, i) }
    for i in params.parameters.indices.reversed() { reducer.gradientReady(i) }
    try reducer.finish()
    checkExact(&p, params, step: 0, size: n, what: "in-order")
    p.expect(reducer.stats.bucketsStartedEarly == reducer.buckets.count && reducer.stats.bucketsStartedInFinish == 0,
             "in-order: \(reducer.stats.bucketsStartedEarly) of \(reducer.buckets.count) buckets started during backward")

    // Ready calls in a different scrambled order on every rank, each rank leaving out another
    // parameter (and calling one twice): the sums must not change.
    for step in 1...3 {
        var rng = SplitMix64(seed: UInt64(1000 * step + r))
        var order = Array(params.parameters.indices).shuffled(using: &rng)
        order.remove(at: (r + step) % order.count)
        order.append(order[0])
        for i in 0..<params.count { params.grads[i] = exactGradient(rank: r, step: step, i) }
        for i in order { reducer.gradientReady(i) }
        try reducer.finish()
        checkExact(&p, params, step: step, size: n, what: "scrambled step \(step)")
        try checkSameOnAllRanks(&p, params, what: "scrambled step \(step)")
    }
    let s = reducer.stats
    p.expect(s.steps == 4 && s.bucketsStartedEarly + s.bucketsStartedInFinish == 4 * reducer.buckets.count,
             "stats count 4 steps of \(reducer.buckets.count) buckets: \(s)")

    // General values: bucketed (scrambled, one parameter never ready) against one blocking
    // all-reduce of the same numbers. Equal up to MPI summing in another order.
    let blockingParams = makeParameters()
    let blocking = GradientReducer(parameters: blockingParams, communicator: comm, mode: .blocking)
    var rng = SplitMix64(seed: UInt64(77 + r))
    for i in 0..<params.count {
        params.grads[i] = rng.normal()
        blockingParams.grads[i] = params.grads[i]
    }
    for i in params.parameters.indices.shuffled(using: &rng).dropFirst() { reducer.gradientReady(i) }
    try reducer.finish()
    for i in blockingParams.parameters.indices { blocking.gradientReady(i) }
    try blocking.finish()
    var worst: Float = 0
    for i in 0..<params.count {
        let a = params.grads[i], b = blockingParams.grads[i]
        worst = max(worst, abs(a - b) / max(abs(b), 1e-3))
    }
    p.expect(worst <= 1e-5, "bucketed vs blocking: relative difference \(worst)")
    p.expect(n > 2 || worst == 0, "two ranks: bucketed equals blocking bitwise (difference \(worst))")
    p.expect(blocking.buckets == [0..<blockingParams.count], "blocking mode is one range")
    try checkSameOnAllRanks(&p, params, what: "random bucketed")

    // One bucket bigger than everything: a single all-reduce, started by the last ready call.
    let whole = GradientReducer(parameters: params, communicator: comm)
    p.expect(whole.buckets == [0..<params.count], "default bucket size holds all \(params.count) floats")
    for i in 0..<params.count { params.grads[i] = exactGradient(rank: r, step: 9, i) }
    for i in params.parameters.indices { whole.gradientReady(i) }
    try whole.finish()
    checkExact(&p, params, step: 9, size: n, what: "one bucket")
    p.expect(whole.stats.bucketsStartedEarly == 1, "one bucket started during backward")
}

/// Buckets tile the buffer in order; one is bigger than the limit only if it is one parameter.
private func checkBuckets(_ p: inout Probe, _ buckets: [Range<Int>], _ params: ParameterSet, limit: Int) {
    p.expect(buckets.count > 2, "several buckets (\(buckets.count))")
    p.expect(buckets.first?.lowerBound == 0 && buckets.last?.upperBound == params.count, "buckets cover the buffer")
    p.expect(zip(buckets, buckets.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound }, "buckets are contiguous")
    let starts = Set(params.offsets)
    p.expect(buckets.allSatisfy { starts.contains($0.lowerBound) }, "buckets start at parameter boundaries")
    let big = buckets.filter { $0.count > limit }
    p.expect(!big.isEmpty, "a parameter bigger than a bucket")
    p.expect(big.allSatisfy { b in params.parameters.indices.contains { params.offsets[$0] == b.lowerBound && params.parameters[$0].count == b.count } },
             "an oversized bucket is a single parameter")
}

private func checkExact(_ p: inout Probe, _ params: ParameterSet, step: Int, size n: Int, what: String) {
    let triangle = Float(n * (n + 1) / 2)
    let bad = (0..<params.count).first { i in
        params.grads[i] != triangle * Float((i &* 7 &+ step) % 11) / 8
    }
    p.expect(bad == nil, "\(what): gradient sum wrong at \(bad ?? -1)")
}

/// Every rank must hold the same bits, or the replicas' weights drift apart.
private func checkSameOnAllRanks(_ p: inout Probe, _ params: ParameterSet, what: String) throws {
    var root = Array(params.gradBuffer)
    try root.withUnsafeMutableBufferPointer { try p.comm.broadcast($0, root: 0) }
    p.expect(root.withUnsafeBytes { a in
        memcmp(a.baseAddress!, params.grads, a.count) == 0
    }, "\(what): gradients differ between ranks")
}
