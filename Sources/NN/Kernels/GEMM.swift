import CBF16
import CBLAS

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
          _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int, split: Bool = true, precision: Precision) {
    let byRows = n / 128 < gemmBlocks && m / 32 > n / 128
    let blocks = split ? max(1, min(gemmBlocks, byRows ? m / 32 : n / 128, m * n * k / (1 << 22))) : 1
    Parallel.run(blocks) { p, _ in
        let extent = byRows ? m : n
        let lo = (extent * p / blocks) & ~15, hi = p == blocks - 1 ? extent : (extent * (p + 1) / blocks) & ~15
        guard lo < hi else { return }
        if byRows {
            // Row i of op(A) starts at a + i when A is transposed (stored K × M), else at a + i·lda.
            let ai = transA ? a + lo : a + lo * lda
            sgemm(precision, transA, transB, hi - lo, n, k, alpha, ai, lda, b, ldb, beta, c + lo * ldc, ldc)
        } else {
            // Column j of op(B) starts at b + j·ldb when B is transposed (stored N × K), else at b + j.
            let bj = transB ? b + lo * ldb : b + lo
            sgemm(precision, transA, transB, m, hi - lo, k, alpha, a, lda, bj, ldb, beta, c + lo, ldc)
        }
    }
}

/// One row-major product on the calling thread, in `precision`: OpenBLAS's sgemm, or the bf16 GEMM.
@inline(__always)
func sgemm(_ precision: Precision, _ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
           _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
           _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
    switch precision {
    case .fp32:
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    case .bf16Mixed:
        deepdem_sgemm_bf16(transA ? 1 : 0, transB ? 1 : 0, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda),
                           b, Int32(ldb), beta, c, Int32(ldc))
    }
}
