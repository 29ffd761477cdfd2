import CBLAS
import Dispatch

/// The layers' threads (`Parallel`'s workers), as callers outside NN set and read them. OpenBLAS
/// runs single-threaded inside them, so its own thread count stays 1 once a network has run or
/// `set` was called.
public enum ComputeThreads {
    public static func set(_ n: Int) { Parallel.setWorkers(n) }
    public static var count: Int { Parallel.workers }
}

/// The threads the layers compute on. OpenBLAS itself runs single-threaded: the layers hand whole
/// GEMMs (Winograd's 16 per convolution) or blocks of one GEMM to these threads, and split
/// their own loops (transforms, BatchNorm, ReLU, pooling, the optimizer) the same way. OpenBLAS's
/// threading would leave those loops on one core, and its idle workers spin in the meantime.
enum Parallel {
    /// Starts as OpenBLAS's own default (OPENBLAS_NUM_THREADS, or one per core; one per rank under
    /// mpirun's core binding), which it then stops using. `ComputeThreads.set` changes it.
    nonisolated(unsafe) static var workers: Int = {
        let n = Int(openblas_get_num_threads())
        openblas_set_num_threads(1)
        return max(1, n)
    }()

    static func setWorkers(_ n: Int) {
        _ = workers   // the first access takes OpenBLAS's threads over
        workers = max(1, n)
        openblas_set_num_threads(1)
    }

    /// Most parts one loop or GEMM is cut into.
    static let maxParts = 64

    /// `body(part, worker)` for each part in 0..<parts: the workers (at most `parts` of them) take
    /// contiguous runs of parts, concurrently when there is more than one.
    static func run(_ parts: Int, _ body: (Int, Int) -> Void) {
        let threads = min(workers, parts)
        if threads <= 1 {
            for p in 0..<parts { body(p, 0) }
        } else {
            // The parts touch disjoint memory through raw pointers, which Swift cannot see.
            withoutActuallyEscaping(body) { body in
                let work = Unchecked(body)
                DispatchQueue.concurrentPerform(iterations: threads) { w in
                    for p in (parts * w / threads)..<(parts * (w + 1) / threads) { work.value(p, w) }
                }
            }
        }
    }

    private struct Unchecked<T>: @unchecked Sendable {
        let value: T
        init(_ value: T) { self.value = value }
    }

    /// Splits 0..<count into contiguous ranges of at least `grain` items (at most `maxParts`) and
    /// runs `body(range, worker)` on each. The ranges depend on `count` and `grain` alone, never on
    /// the number of workers, so whatever a body computes from its range has the same bits at any
    /// thread count; `worker` only picks that worker's scratch buffers.
    static func forEach(_ count: Int, grain: Int = 1, _ body: (Range<Int>, Int) -> Void) {
        let parts = max(1, min(maxParts, count / max(grain, 1)))
        run(parts) { p, w in
            let lo = count * p / parts, hi = count * (p + 1) / parts
            if lo < hi { body(lo..<hi, w) }
        }
    }

    /// Elementwise loops split over the workers in blocks of at least 16k floats.
    static func forEachElement(_ count: Int, _ body: (Range<Int>) -> Void) {
        forEach(count, grain: 1 << 14) { range, _ in body(range) }
    }
}

/// Where the loops of one piece of work run: split over the workers, or all on worker `w`, which
/// took the whole piece (with buffers of its own) as its part of a larger parallel loop.
enum Spread {
    case shared
    case on(Int)

    func forEach(_ count: Int, grain: Int = 1, _ body: (Range<Int>, Int) -> Void) {
        switch self {
        case .shared: Parallel.forEach(count, grain: grain, body)
        case .on(let w): if count > 0 { body(0..<count, w) }
        }
    }

    /// `body(i)` for each i in 0..<count: independent GEMMs (or other work), each on one thread.
    func each(_ count: Int, _ body: (Int) -> Void) {
        forEach(count) { range, _ in
            for i in range { body(i) }
        }
    }
}
