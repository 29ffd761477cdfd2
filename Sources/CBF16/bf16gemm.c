// A GEMM on bfloat16 operands with fp32 accumulation (vdpbf16ps), in the blocked form of Goto's
// algorithm: B is packed in panels of NR columns, A in panels of MR rows, both rounded to bf16
// while packing and stored as pairs along k, which is how vdpbf16ps consumes them: lane j of
// acc += Σ over one pair (a[2p]·b[2p][j] + a[2p+1]·b[2p+1][j]).
//
// The file is compiled for any x86-64; only the functions marked BF16 use AVX-512, and the caller
// reaches them only after deepdem_bf16_available().

#include "bf16gemm.h"

#include <cpuid.h>
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

enum {
    MR = 6,           // rows of C per micro-tile: 6 × 4 accumulators, 4 B vectors, 1 broadcast
    NV = 4,           // 16-float vectors per micro-tile row
    NR = 16 * NV,     // columns of C per micro-tile
    KP = 128,         // k pairs per block: a B micro-panel (KP·NR·4 bytes, 32 KiB) stays in L1
    MC = 96,          // rows of A per block (a multiple of MR)
    NC = 1024,        // columns of B per block (a multiple of NR)
};

int deepdem_bf16_available(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    const unsigned f = 1u << 16, bw = 1u << 30, vl = 1u << 31;
    if ((b & (f | bw | vl)) != (f | bw | vl)) return 0;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d) || !(a & (1u << 5))) return 0;   // AVX512_BF16
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0;          // OSXSAVE
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 0xE6) == 0xE6;   // the OS saves SSE, AVX, opmask and both halves of the zmm file
}

// Round to nearest even as vcvtne2ps2bf16 does: subnormal inputs become zero, NaN stays NaN.
static inline uint16_t to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7F800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float deepdem_round_bf16(float x) {
    uint32_t u = (uint32_t)to_bf16(x) << 16;
    float y;
    memcpy(&y, &u, 4);
    return y;
}

static inline uint32_t pair(float lo, float hi) {
    return (uint32_t)to_bf16(lo) | ((uint32_t)to_bf16(hi) << 16);
}

// A's rows i0..<i0+rows (zero past them), k pairs p0..<p0+kp, as panels [kp][MR].
static void pack_a(int trans, const float *A, int lda, int k, int i0, int rows, int p0, int kp, uint32_t *out) {
    for (int r = 0; r < rows; r += MR) {
        uint32_t *panel = out + (size_t)(r / MR) * kp * MR;
        for (int p = 0; p < kp; p++) {
            int k0 = 2 * (p0 + p);
            for (int i = 0; i < MR; i++) {
                int row = i0 + r + i;
                float lo = 0, hi = 0;
                if (r + i < rows) {
                    lo = trans ? A[(size_t)k0 * lda + row] : A[(size_t)row * lda + k0];
                    if (k0 + 1 < k) hi = trans ? A[(size_t)(k0 + 1) * lda + row] : A[(size_t)row * lda + k0 + 1];
                }
                panel[p * MR + i] = pair(lo, hi);
            }
        }
    }
}

// B's columns j0..<j0+cols (zero past them), k pairs p0..<p0+kp, as panels [kp][NR].
BF16 static void pack_b(int trans, const float *B, int ldb, int k, int j0, int cols, int p0, int kp, uint32_t *out) {
    for (int c = 0; c < cols; c += NR) {
        uint32_t *panel = out + (size_t)(c / NR) * kp * NR;
        if (!trans) {
            // Rows 2p and 2p+1 of B, 16 columns at a time, interleaved into pairs.
            const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                                        23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
            for (int v = 0; v < NV; v++) {
                int col = c + 16 * v, n = cols - col;
                __mmask16 m = n >= 16 ? 0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
                for (int p = 0; p < kp; p++) {
                    int k0 = 2 * (p0 + p);
                    const float *row = B + (size_t)k0 * ldb + j0 + col;
                    __m512 r0 = _mm512_maskz_loadu_ps(m, row);
                    __m512 r1 = k0 + 1 < k ? _mm512_maskz_loadu_ps(m, row + ldb) : _mm512_setzero_ps();
                    __m512i both = (__m512i)_mm512_cvtne2ps_pbh(r1, r0);
                    _mm512_storeu_si512(panel + p * NR + 16 * v, _mm512_permutexvar_epi16(interleave, both));
                }
            }
        } else {
            // Column j of op(B) is row j of the stored B: 16 pairs at a time, scattered into place.
            const __m512i lanes = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                                     _mm512_set1_epi32(NR));
            for (int j = 0; j < NR; j++) {
                int col = c + j;
                for (int p = 0; p < kp; p += 16) {
                    int pairs = kp - p < 16 ? kp - p : 16;
                    __m512i v = _mm512_setzero_si512();
                    if (col < cols) {
                        int k0 = 2 * (p0 + p), n = k - k0 < 32 ? k - k0 : 32;
                        const float *src = B + (size_t)(j0 + col) * ldb + k0;
                        __mmask16 m0 = n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1);
                        __mmask16 m1 = n >= 32 ? 0xFFFF : n <= 16 ? 0 : (__mmask16)((1u << (n - 16)) - 1);
                        v = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, src + 16), _mm512_maskz_loadu_ps(m0, src));
                    }
                    __mmask16 keep = pairs == 16 ? 0xFFFF : (__mmask16)((1u << pairs) - 1);
                    _mm512_mask_i32scatter_epi32(panel + p * NR + j, keep, lanes, v, 4);
                }
            }
        }
    }
}

// tile[MR × NR] = Σ over kp pairs of a-panel · b-panel.
BF16 static void micro(int kp, const uint32_t *a, const uint32_t *b, float *tile) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c03 = c00;
    __m512 c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    __m512 c20 = c00, c21 = c00, c22 = c00, c23 = c00;
    __m512 c30 = c00, c31 = c00, c32 = c00, c33 = c00;
    __m512 c40 = c00, c41 = c00, c42 = c00, c43 = c00;
    __m512 c50 = c00, c51 = c00, c52 = c00, c53 = c00;
    for (int p = 0; p < kp; p++, a += MR, b += NR) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(b), b1 = (__m512bh)_mm512_loadu_si512(b + 16);
        __m512bh b2 = (__m512bh)_mm512_loadu_si512(b + 32), b3 = (__m512bh)_mm512_loadu_si512(b + 48);
        __m512bh x;
#define ROW(i) x = (__m512bh)_mm512_set1_epi32((int)a[i]); \
        c##i##0 = _mm512_dpbf16_ps(c##i##0, x, b0); c##i##1 = _mm512_dpbf16_ps(c##i##1, x, b1); \
        c##i##2 = _mm512_dpbf16_ps(c##i##2, x, b2); c##i##3 = _mm512_dpbf16_ps(c##i##3, x, b3);
        ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5)
#undef ROW
    }
#define STORE(i) _mm512_storeu_ps(tile + i * NR, c##i##0); _mm512_storeu_ps(tile + i * NR + 16, c##i##1); \
    _mm512_storeu_ps(tile + i * NR + 32, c##i##2); _mm512_storeu_ps(tile + i * NR + 48, c##i##3);
    STORE(0) STORE(1) STORE(2) STORE(3) STORE(4) STORE(5)
#undef STORE
}

// C = (first ? beta·C : C) + alpha·tile over the rows × cols that lie inside C.
static void update(float *C, int ldc, const float *tile, int rows, int cols, float alpha, float beta, int first) {
    for (int i = 0; i < rows; i++) {
        float *c = C + (size_t)i * ldc;
        const float *t = tile + i * NR;
        if (!first) {
            for (int j = 0; j < cols; j++) c[j] += alpha * t[j];
        } else if (beta == 0) {
            for (int j = 0; j < cols; j++) c[j] = alpha * t[j];
        } else {
            for (int j = 0; j < cols; j++) c[j] = beta * c[j] + alpha * t[j];
        }
    }
}

static _Thread_local uint32_t *packed_a, *packed_b;

BF16 void deepdem_sgemm_bf16(int transA, int transB, int m, int n, int k, float alpha,
                             const float *A, int lda, const float *B, int ldb,
                             float beta, float *C, int ldc) {
    if (m <= 0 || n <= 0) return;
    if (!packed_a) {
        packed_a = aligned_alloc(64, sizeof(uint32_t) * MC * KP);
        packed_b = aligned_alloc(64, sizeof(uint32_t) * NC * KP);
        if (!packed_a || !packed_b) abort();
    }
    int pairs = (k + 1) / 2;
    if (pairs == 0) {
        float zero[MR * NR] = {0};
        for (int i = 0; i < m; i += MR)
            for (int j = 0; j < n; j += NR)
                update(C + (size_t)i * ldc + j, ldc, zero, m - i < MR ? m - i : MR, n - j < NR ? n - j : NR, alpha, beta, 1);
        return;
    }
    float tile[MR * NR] __attribute__((aligned(64)));
    for (int j0 = 0; j0 < n; j0 += NC) {
        int nc = n - j0 < NC ? n - j0 : NC;
        for (int p0 = 0; p0 < pairs; p0 += KP) {
            int kp = pairs - p0 < KP ? pairs - p0 : KP;
            pack_b(transB, B, ldb, k, j0, nc, p0, kp, packed_b);
            for (int i0 = 0; i0 < m; i0 += MC) {
                int mc = m - i0 < MC ? m - i0 : MC;
                pack_a(transA, A, lda, k, i0, mc, p0, kp, packed_a);
                for (int jr = 0; jr < nc; jr += NR) {
                    const uint32_t *bp = packed_b + (size_t)(jr / NR) * kp * NR;
                    for (int ir = 0; ir < mc; ir += MR) {
                        micro(kp, packed_a + (size_t)(ir / MR) * kp * MR, bp, tile);
                        update(C + (size_t)(i0 + ir) * ldc + j0 + jr, ldc, tile, mc - ir < MR ? mc - ir : MR,
                               nc - jr < NR ? nc - jr : NR, alpha, beta, p0 == 0);
                    }
                }
            }
        }
    }
}
