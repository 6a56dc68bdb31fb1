/* eltwise__avx2.c - GAP and elementwise ops, AVX2. All memory-bound: the point
 * is full-width loads and no per-element overhead, not arithmetic. */
#include "kernels/vmath_avx2.h"

#define EC_GAP_BLOCK 64   /* must match eltwise.c: identical blocking = identical bits */

/* Channels [j, j + 8 * NV) of x: (hw, c) summed in registers (NV accumulators):
 * one load per 8 floats, partial sums per EC_GAP_BLOCK pixels exactly as in the
 * reference, so each lane sees the reference's operation sequence. */
EC_V8_INLINE void gap_tile(const float *x, size_t hw, size_t c, float *out, const int NV,
                           __m256i mask, const int masked)
{
    __m256 tot[4], part[4];
    EC_V8_UNROLL for (int u = 0; u < NV; u++) tot[u] = _mm256_setzero_ps();
    for (size_t p0 = 0; p0 < hw; p0 += EC_GAP_BLOCK) {
        const size_t p1 = hw - p0 < EC_GAP_BLOCK ? hw : p0 + EC_GAP_BLOCK;
        EC_V8_UNROLL for (int u = 0; u < NV; u++) part[u] = _mm256_setzero_ps();
        for (size_t p = p0; p < p1; p++)
            EC_V8_UNROLL for (int u = 0; u < NV; u++)
                part[u] = _mm256_add_ps(part[u], masked ? _mm256_maskload_ps(x + p * c + 8 * u, mask)
                                                        : _mm256_loadu_ps(x + p * c + 8 * u));
        EC_V8_UNROLL for (int u = 0; u < NV; u++) tot[u] = _mm256_add_ps(tot[u], part[u]);
    }
    const __m256 n = _mm256_set1_ps((float)hw);
    EC_V8_UNROLL for (int u = 0; u < NV; u++) {
        const __m256 m = hw ? _mm256_div_ps(tot[u], n) : _mm256_setzero_ps();
        if (masked) _mm256_maskstore_ps(out + 8 * u, mask, m);
        else _mm256_storeu_ps(out + 8 * u, m);
    }
}

/* x: (hw, c), rows ldx apart -> out: (c). */
void ec_f32_gap__avx2(const float *restrict x, size_t hw, int c, size_t ldx, float *restrict out)
{
    const __m256i ones = _mm256_set1_epi32(-1);
    int j = 0;
    for (; j + 32 <= c; j += 32) gap_tile(x + j, hw, ldx, out + j, 4, ones, 0);
    for (; j + 8 <= c; j += 8) gap_tile(x + j, hw, ldx, out + j, 1, ones, 0);
    if (j < c) gap_tile(x + j, hw, ldx, out + j, 1, ec_v8_tail_mask(c - j), 1);
}

/* a, b, out: (n). Each lane is read before it is written, so out may alias a
 * or b exactly (no restrict). */
#define EC_BINARY_OP(name, vop, sop)                                              \
    void name(const float *a, const float *b, float *out, size_t n)              \
    {                                                                             \
        size_t i = 0;                                                             \
        for (; i + 32 <= n; i += 32)                                              \
            for (int u = 0; u < 32; u += 8)                                       \
                _mm256_storeu_ps(out + i + u, vop(_mm256_loadu_ps(a + i + u),     \
                                                  _mm256_loadu_ps(b + i + u)));   \
        for (; i + 8 <= n; i += 8)                                                \
            _mm256_storeu_ps(out + i, vop(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i))); \
        for (; i < n; i++) out[i] = a[i] sop b[i];                                \
    }
EC_BINARY_OP(ec_f32_add__avx2, _mm256_add_ps, +)
EC_BINARY_OP(ec_f32_mul__avx2, _mm256_mul_ps, *)

/* x, out: (hw, c), out may alias x; s: (c), reloaded per pixel from L1. */
void ec_f32_mul_bcast__avx2(const float *x, const float *s, float *out, size_t hw, int c)
{
    const int cv = c & ~7;
    const __m256i tm = ec_v8_tail_mask(c - cv);
    for (size_t p = 0; p < hw; p++) {
        const float *xp = x + p * c;
        float *op = out + p * c;
        for (int j = 0; j < cv; j += 8)
            _mm256_storeu_ps(op + j, _mm256_mul_ps(_mm256_loadu_ps(xp + j), _mm256_loadu_ps(s + j)));
        if (cv < c)
            _mm256_maskstore_ps(op + cv, tm, _mm256_mul_ps(_mm256_maskload_ps(xp + cv, tm),
                                                           _mm256_maskload_ps(s + cv, tm)));
    }
}

/* ds[j] = sum_p dout[p, j] * x[p, j] (see eltwise.c): channels [j, j + 8 * NV),
 * multiply then add (no FMA: the reference's rounding), blocked as in GAP. */
EC_V8_INLINE void mbb_tile(const float *x, const float *dout, size_t hw, size_t ld, float *ds, const int NV,
                           __m256i mask, const int masked)
{
    __m256 tot[4], part[4];
    EC_V8_UNROLL for (int u = 0; u < NV; u++) tot[u] = _mm256_setzero_ps();
    for (size_t p0 = 0; p0 < hw; p0 += EC_GAP_BLOCK) {
        const size_t p1 = hw - p0 < EC_GAP_BLOCK ? hw : p0 + EC_GAP_BLOCK;
        EC_V8_UNROLL for (int u = 0; u < NV; u++) part[u] = _mm256_setzero_ps();
        for (size_t p = p0; p < p1; p++)
            EC_V8_UNROLL for (int u = 0; u < NV; u++) {
                const float *xp = x + p * ld + 8 * u, *dp = dout + p * ld + 8 * u;
                const __m256 xv = masked ? _mm256_maskload_ps(xp, mask) : _mm256_loadu_ps(xp);
                const __m256 dv = masked ? _mm256_maskload_ps(dp, mask) : _mm256_loadu_ps(dp);
                part[u] = _mm256_add_ps(part[u], _mm256_mul_ps(dv, xv));
            }
        EC_V8_UNROLL for (int u = 0; u < NV; u++) tot[u] = _mm256_add_ps(tot[u], part[u]);
    }
    EC_V8_UNROLL for (int u = 0; u < NV; u++) {
        if (masked) _mm256_maskstore_ps(ds + 8 * u, mask, tot[u]);
        else _mm256_storeu_ps(ds + 8 * u, tot[u]);
    }
}

void ec_f32_mul_bcast_backward__avx2(const float *x, const float *dout, size_t hw, int c, size_t ld, float *ds)
{
    const __m256i ones = _mm256_set1_epi32(-1);
    int j = 0;
    for (; j + 32 <= c; j += 32) mbb_tile(x + j, dout + j, hw, ld, ds + j, 4, ones, 0);
    for (; j + 8 <= c; j += 8) mbb_tile(x + j, dout + j, hw, ld, ds + j, 1, ones, 0);
    if (j < c) mbb_tile(x + j, dout + j, hw, ld, ds + j, 1, ec_v8_tail_mask(c - j), 1);
}

/* GAP backward (see eltwise.c): dx[p * ldx + j] (+)= dout[j] / hw. The quotients
 * of up to EC_GAPB_CHUNK channels once into a stack buffer (IEEE division: the
 * reference's value), then one store (or load, add, store) per 8 floats of each
 * pixel's row. */
#define EC_GAPB_CHUNK 512

void ec_f32_gap_backward__avx2(const float *restrict dout, size_t hw, int c, size_t ldx, float *restrict dx, int acc)
{
    if (!hw) return;
    const __m256 n = _mm256_set1_ps((float)hw);
    float g[EC_GAPB_CHUNK];   /* (nc) quotients of channels [j0, j0 + nc) */
    for (int j0 = 0; j0 < c; j0 += EC_GAPB_CHUNK) {
        const int nc = c - j0 < EC_GAPB_CHUNK ? c - j0 : EC_GAPB_CHUNK, cv = nc & ~7;
        const __m256i tm = ec_v8_tail_mask(nc - cv);
        for (int j = 0; j < cv; j += 8) _mm256_storeu_ps(g + j, _mm256_div_ps(_mm256_loadu_ps(dout + j0 + j), n));
        if (cv < nc) _mm256_maskstore_ps(g + cv, tm, _mm256_div_ps(_mm256_maskload_ps(dout + j0 + cv, tm), n));
        for (size_t p = 0; p < hw; p++) {
            float *d = dx + p * ldx + j0;
            for (int j = 0; j < cv; j += 8) {
                __m256 v = _mm256_loadu_ps(g + j);
                if (acc) v = _mm256_add_ps(_mm256_loadu_ps(d + j), v);
                _mm256_storeu_ps(d + j, v);
            }
            if (cv < nc) {
                __m256 v = _mm256_maskload_ps(g + cv, tm);
                if (acc) v = _mm256_add_ps(_mm256_maskload_ps(d + cv, tm), v);
                _mm256_maskstore_ps(d + cv, tm, v);
            }
        }
    }
}
