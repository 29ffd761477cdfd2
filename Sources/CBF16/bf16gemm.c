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

// r[i] lane j ↔ r[j] lane i: unpacks within 128-bit lanes, then shuffles of the lanes.
BF16 static inline void transpose16(__m512i r[16]) {
    __m512i t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        r[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0xdd);
        t[i + 8] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0xdd);
    }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xdd);
    }
}

// The first n of 16 lanes (none for n ≤ 0, all for n ≥ 16).
static inline __mmask16 first_lanes(int n) {
    return n >= 16 ? 0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
}

// 16 k pairs from k0 of 16 rows whose k is contiguous (row j at src + j·ld; zero past `valid` rows
// and past k), rounded to bf16 and transposed: r[q] lane j is pair q of row j.
BF16 static void row_pairs(const float *src, size_t ld, int valid, int k, int k0, __m512i r[16]) {
    __mmask16 m0 = first_lanes(k - k0), m1 = first_lanes(k - k0 - 16);
    for (int j = 0; j < 16; j++) {
        r[j] = j < valid ? (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, src + j * ld + 16),
                                                        _mm512_maskz_loadu_ps(m0, src + j * ld))
                         : _mm512_setzero_si512();
    }
    transpose16(r);
}

// A's rows i0..<i0+rows (zero past them), k pairs p0..<p0+kp, as panels [kp][MR]. A stored m × k
// has each row's pairs side by side: 16 pairs of MR rows at a time, transposed into place.
BF16 static void pack_a(int trans, const float *A, int lda, int k, int i0, int rows, int p0, int kp, uint32_t *out) {
    for (int r = 0; r < rows; r += MR) {
        uint32_t *panel = out + (size_t)(r / MR) * kp * MR;
        if (!trans) {
            int valid = rows - r < MR ? rows - r : MR;
            for (int p = 0; p < kp; p += 16) {
                int k0 = 2 * (p0 + p);
                __m512i v[16];
                row_pairs(A + (size_t)(i0 + r) * lda + k0, lda, valid, k, k0, v);
                int pairs = kp - p < 16 ? kp - p : 16;
                for (int q = 0; q < pairs; q++) _mm512_mask_storeu_epi32(panel + (p + q) * MR, (1u << MR) - 1, v[q]);
            }
            continue;
        }
        for (int p = 0; p < kp; p++) {
            int k0 = 2 * (p0 + p);
            for (int i = 0; i < MR; i++) {
                int row = i0 + r + i;
                float lo = 0, hi = 0;
                if (r + i < rows) {
                    lo = A[(size_t)k0 * lda + row];
                    if (k0 + 1 < k) hi = A[(size_t)(k0 + 1) * lda + row];
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
                int col = c + 16 * v;
                __mmask16 m = first_lanes(cols - col);
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
            // Column j of op(B) is row j of the stored B: 16 columns × 16 pairs at a time,
            // converted row by row and transposed into place.
            for (int g = 0; g < NV; g++) {
                int col = c + 16 * g;
                for (int p = 0; p < kp; p += 16) {
                    int k0 = 2 * (p0 + p);
                    __m512i r[16];
                    row_pairs(B + (size_t)(j0 + col) * ldb + k0, ldb, cols - col, k, k0, r);
                    int pairs = kp - p < 16 ? kp - p : 16;
                    for (int q = 0; q < pairs; q++) _mm512_storeu_si512(panel + (p + q) * NR + 16 * g, r[q]);
                }
            }
        }
    }
}

// C[rows × cols] = (first ? beta·C : C) + alpha·(a-panel · b-panel), rows ≤ MR and cols ≤ NR,
// summed over kp pairs in registers; the update is vectorized, masked at C's edges.
BF16 static void micro(int kp, const uint32_t *a, const uint32_t *b, float *C, int ldc, int rows, int cols,
                       float alpha, float beta, int first) {
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
    __mmask16 m[NV];
    for (int v = 0; v < NV; v++) m[v] = first_lanes(cols - 16 * v);
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#define PUT(i, v) { float *c = C + (size_t)i * ldc + 16 * v; \
        __m512 t = _mm512_mul_ps(va, c##i##v); \
        if (!first) t = _mm512_add_ps(_mm512_maskz_loadu_ps(m[v], c), t); \
        else if (beta != 0) t = _mm512_add_ps(_mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m[v], c)), t); \
        _mm512_mask_storeu_ps(c, m[v], t); }
#define STORE(i) if (i < rows) { PUT(i, 0) PUT(i, 1) PUT(i, 2) PUT(i, 3) }
    STORE(0) STORE(1) STORE(2) STORE(3) STORE(4) STORE(5)
#undef STORE
#undef PUT
}

// C = beta·C, for a product with nothing to sum (k = 0).
static void scale(float *C, int ldc, int m, int n, float beta) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) C[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * C[(size_t)i * ldc + j];
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
        scale(C, ldc, m, n, beta);
        return;
    }
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
                        micro(kp, packed_a + (size_t)(ir / MR) * kp * MR, bp, C + (size_t)(i0 + ir) * ldc + j0 + jr, ldc,
                              mc - ir < MR ? mc - ir : MR, nc - jr < NR ? nc - jr : NR, alpha, beta, p0 == 0);
                    }
                }
            }
        }
    }
}
