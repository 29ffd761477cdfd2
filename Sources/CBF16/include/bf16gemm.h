#ifndef DEEPDEM_BF16GEMM_H
#define DEEPDEM_BF16GEMM_H

/// Whether this CPU and OS can run deepdem_sgemm_bf16: AVX-512 F/BW/VL and AVX512_BF16, with the
/// OS saving the 512-bit registers.
int deepdem_bf16_available(void);

/// Row-major C[m × n] = alpha · op(A) · op(B) + beta · C, where the elements of A and B are first
/// rounded to bfloat16 (to nearest, ties to even; subnormals to zero, as the hardware does) and
/// their products accumulated in fp32 by vdpbf16ps. op(X) is X, or Xᵀ when trans is nonzero (a
/// transposed A is stored k × m, a transposed B n × k). Single-threaded: the caller cuts the work.
/// The order of every sum is fixed by the shape, so the bits are too. Call only when
/// deepdem_bf16_available() is nonzero.
void deepdem_sgemm_bf16(int transA, int transB, int m, int n, int k, float alpha,
                        const float *A, int lda, const float *B, int ldb,
                        float beta, float *C, int ldc);

/// One float rounded to bfloat16 and back, exactly as deepdem_sgemm_bf16 rounds its operands.
float deepdem_round_bf16(float x);

#endif
