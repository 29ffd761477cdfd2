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
