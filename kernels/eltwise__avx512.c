/* eltwise__avx512.c - GAP and elementwise ops, AVX-512. All memory-bound: the
 * point is full-width loads, k-masked tails instead of scalar loops, and no
 * per-element overhead, not arithmetic. */
#include "kernels/vmath_avx512.h"

#define EC_GAP_BLOCK 64   /* must match eltwise.c: identical blocking = identical bits */

/* Channels [j, j + 16 * NV) of x: (hw, c) summed in registers, the last vector
 * under mlast: one load per 16 floats, partial sums per EC_GAP_BLOCK pixels
 * exactly as in the reference, so each lane sees the reference's operations. */
EC_V16_INLINE void gap_tile(const float *x, size_t hw, size_t ldx, float *out, const int NV, __mmask16 mlast)
{
    __m512 tot[4], part[4];
    __mmask16 mk[4];
    EC_V16_UNROLL for (int u = 0; u < NV; u++) {
        tot[u] = _mm512_setzero_ps();
        mk[u] = u == NV - 1 ? mlast : (__mmask16)0xffff;
    }
    for (size_t p0 = 0; p0 < hw; p0 += EC_GAP_BLOCK) {
        const size_t p1 = hw - p0 < EC_GAP_BLOCK ? hw : p0 + EC_GAP_BLOCK;
        EC_V16_UNROLL for (int u = 0; u < NV; u++) part[u] = _mm512_setzero_ps();
        for (size_t p = p0; p < p1; p++)
            EC_V16_UNROLL for (int u = 0; u < NV; u++)
                part[u] = _mm512_add_ps(part[u], _mm512_maskz_loadu_ps(mk[u], x + p * ldx + 16 * u));
        EC_V16_UNROLL for (int u = 0; u < NV; u++) tot[u] = _mm512_add_ps(tot[u], part[u]);
    }
    const __m512 n = _mm512_set1_ps((float)hw);
    EC_V16_UNROLL for (int u = 0; u < NV; u++)
        _mm512_mask_storeu_ps(out + 16 * u, mk[u], hw ? _mm512_div_ps(tot[u], n) : _mm512_setzero_ps());
}

static __attribute__((noinline)) void gap_tile4(const float *x, size_t hw, size_t ldx, float *out)
{
    gap_tile(x, hw, ldx, out, 4, 0xffff);
}

/* x: (hw, c), rows ldx apart -> out: (c). */
void ec_f32_gap__avx512(const float *restrict x, size_t hw, int c, size_t ldx, float *restrict out)
{
    int j = 0;
    for (; j + 64 <= c; j += 64) gap_tile4(x + j, hw, ldx, out + j);
    for (; j < c; j += 16) gap_tile(x + j, hw, ldx, out + j, 1, ec_v16_tail_mask(c - j));
}

/* a, b, out: (n). Each lane is read before it is written, so out may alias a
 * or b exactly (no restrict). */
#define EC_BINARY_OP16(name, vop)                                                                 \
    void name(const float *a, const float *b, float *out, size_t n)                              \
    {                                                                                             \
        size_t i = 0;                                                                             \
        for (; i + 64 <= n; i += 64)                                                              \
            EC_V16_UNROLL for (int u = 0; u < 64; u += 16)                                        \
                _mm512_storeu_ps(out + i + u, vop(_mm512_loadu_ps(a + i + u), _mm512_loadu_ps(b + i + u))); \
        for (; i < n; i += 16) {                                                                  \
            const __mmask16 m = ec_v16_tail_mask(n - i < 16 ? (int)(n - i) : 16);                 \
            ec_v16_storem(out + i, m, vop(ec_v16_loadm(a + i, m), ec_v16_loadm(b + i, m)));       \
        }                                                                                         \
    }
EC_BINARY_OP16(ec_f32_add__avx512, _mm512_add_ps)
EC_BINARY_OP16(ec_f32_mul__avx512, _mm512_mul_ps)

/* x, out: (hw, c), out may alias x; s: (c), reloaded per pixel from L1. */
void ec_f32_mul_bcast__avx512(const float *x, const float *s, float *out, size_t hw, int c)
{
    for (size_t p = 0; p < hw; p++) {
        const float *xp = x + p * c;
        float *op = out + p * c;
        int j = 0;
        for (; j + 16 <= c; j += 16)
            _mm512_storeu_ps(op + j, _mm512_mul_ps(_mm512_loadu_ps(xp + j), _mm512_loadu_ps(s + j)));
        if (j < c) {
            const __mmask16 m = ec_v16_tail_mask(c - j);
            ec_v16_storem(op + j, m, _mm512_mul_ps(ec_v16_loadm(xp + j, m), ec_v16_loadm(s + j, m)));
        }
    }
}

/* GAP backward (see eltwise.c): dx[p * ldx + j] (+)= dout[j] / hw. As the AVX2
 * twin: the quotients once per channel chunk into a stack buffer, then one
 * store (or load, add, store) per 16 floats of each pixel's row, the tail
 * under a k-mask. */
#define EC_GAPB_CHUNK 512

void ec_f32_gap_backward__avx512(const float *restrict dout, size_t hw, int c, size_t ldx, float *restrict dx,
                                 int acc)
{
    if (!hw) return;
    const __m512 n = _mm512_set1_ps((float)hw);
    float g[EC_GAPB_CHUNK];   /* (nc) quotients of channels [j0, j0 + nc) */
    for (int j0 = 0; j0 < c; j0 += EC_GAPB_CHUNK) {
        const int nc = c - j0 < EC_GAPB_CHUNK ? c - j0 : EC_GAPB_CHUNK;
        for (int j = 0; j < nc; j += 16) {
            const __mmask16 m = ec_v16_tail_mask(nc - j);
            ec_v16_storem(g + j, m, _mm512_div_ps(ec_v16_loadm(dout + j0 + j, m), n));
        }
        for (size_t p = 0; p < hw; p++) {
            float *d = dx + p * ldx + j0;
            int j = 0;
            for (; j + 16 <= nc; j += 16) {
                __m512 v = _mm512_loadu_ps(g + j);
                if (acc) v = _mm512_add_ps(_mm512_loadu_ps(d + j), v);
                _mm512_storeu_ps(d + j, v);
            }
            if (j < nc) {
                const __mmask16 m = ec_v16_tail_mask(nc - j);
                __m512 v = ec_v16_loadm(g + j, m);
                if (acc) v = _mm512_add_ps(ec_v16_loadm(d + j, m), v);
                ec_v16_storem(d + j, m, v);
            }
        }
    }
}
