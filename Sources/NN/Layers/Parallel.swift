import CBLAS
import Dispatch

/// The threads the layers compute on. OpenBLAS itself runs single-threaded: the layers hand whole
/// GEMMs (Winograd's 16 per convolution) or blocks of one GEMM to these threads, and split
/// their own loops (transforms, BatchNorm, ReLU, pooling, the optimizer) the same way. OpenBLAS's
/// threading would leave those loops on one core, and its idle workers spin in the meantime.
enum Parallel {
    /// Starts as OpenBLAS's own default (OPENBLAS_NUM_THREADS, or one per core; one per rank under
    /// mpirun's core binding), which it then stops using. `BLAS.setThreads` changes it.
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

/// Columns that make a GEMM wide enough to split over the workers: layers multiply the columns of
/// several small images at once to reach it.
let gemmWideColumns = 1024

/// Most blocks one GEMM is cut into. Every block is a call with its own packing of the operand
/// it shares with the others, which costs more than it gains past about four (bench/README.md).
let gemmBlocks = 4

/// Row-major C[M × N] = α·op(A)·op(B) + β·C as independent single-threaded sgemms over blocks of
/// C, shared out over the workers. The blocks depend on the shape alone: of at least 128 columns,
/// or of at least 32 rows when there are too few columns for `gemmBlocks` column blocks and more
/// row blocks (a weight gradient's [Cout × Cin·k²] from a 5-band input, an input gradient's columns
/// of a 4×4 image); at least about 8 MFLOP each. OpenBLAS's Haswell kernels round an element
/// differently depending on where the block edges fall (PLATFORM.md), so a cut that followed the
/// number of workers would change the bits with it. Without `split` the product is one block: for
/// callers whose shape makes the whole GEMM one unit of a larger parallel loop.
func gemm(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
          _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
          _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int, split: Bool = true) {
    let ta = transA ? CblasTrans : CblasNoTrans, tb = transB ? CblasTrans : CblasNoTrans
    let byRows = n / 128 < gemmBlocks && m / 32 > n / 128
    let blocks = split ? max(1, min(gemmBlocks, byRows ? m / 32 : n / 128, m * n * k / (1 << 22))) : 1
    Parallel.run(blocks) { p, _ in
        let extent = byRows ? m : n
        let lo = (extent * p / blocks) & ~15, hi = p == blocks - 1 ? extent : (extent * (p + 1) / blocks) & ~15
        guard lo < hi else { return }
        if byRows {
            // Row i of op(A) starts at a + i when A is transposed (stored K × M), else at a + i·lda.
            let ai = transA ? a + lo : a + lo * lda
            cblas_sgemm(CblasRowMajor, ta, tb, Int32(hi - lo), Int32(n), Int32(k), alpha, ai, Int32(lda),
                        b, Int32(ldb), beta, c + lo * ldc, Int32(ldc))
        } else {
            // Column j of op(B) starts at b + j·ldb when B is transposed (stored N × K), else at b + j.
            let bj = transB ? b + lo * ldb : b + lo
            cblas_sgemm(CblasRowMajor, ta, tb, Int32(m), Int32(hi - lo), Int32(k), alpha, a, Int32(lda),
                        bj, Int32(ldb), beta, c + lo, Int32(ldc))
        }
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
