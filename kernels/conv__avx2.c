/* conv__avx2.c - direct k x k convolution for few output channels, AVX2 + FMA,
 * fused scale/shift + act.
 *
 * For cout <= ~32 (EfficientNetV2's stem and stage 1: 3 -> 24 and 24 -> 24 at
 * 150x150) sgemm is a poor fit: OpenBLAS sees a 24-row problem, and the im2col
 * tile is copied twice (im2col, then packing) for 24 FMAs per element. Here the
 * input is read in place: for each output pixel, each tap's cin input values are
 * broadcast against the tap's weight row (cout lanes, in registers for a whole
 * group of 24 channels), four pixels at a time so one weight load feeds four
 * FMAs. Each output sums its taps in (ky, kx, ci) order with one FMA chain,
 * whatever the row range: results do not depend on how rows are split.
 */
#include "kernels/vmath_avx2.h"

typedef struct {
    const float *x, *w;              /* (in_h, in_w, cin), (kh, kw, cin, cout) */
    const float *scale, *shift;      /* (cout) or NULL */
    float *out;                      /* (out_h, out_w, cout) */
    const ec_conv_geom *g;
    int cout, act;
} cv_ctx;

/* NP output pixels (ox .. ox + NP - 1 of row oy), NV vectors of channels from
 * cb; the last vector under `mask` when MASKED (channel tail). */
EC_V8_INLINE void cv_block(const cv_ctx *k, int oy, int ox, int cb, const int NP, const int NV,
                           const int MASKED, __m256i mask)
{
    const ec_conv_geom *g = k->g;
    const int cin = g->c, cout = k->cout;
    __m256 acc[4][3];
    EC_V8_UNROLL for (int p = 0; p < NP; p++)
        EC_V8_UNROLL for (int v = 0; v < NV; v++) acc[p][v] = _mm256_setzero_ps();
    const int iy0 = oy * g->sh - g->pad_t;
    for (int ky = 0; ky < g->kh; ky++) {
        const int iy = iy0 + ky;
        if (iy < 0 || iy >= g->in_h) continue;                 /* zero padding row */
        const float *xrow = k->x + (size_t)iy * g->in_w * cin;
        for (int kx = 0; kx < g->kw; kx++) {
            const float *wt = k->w + ((size_t)ky * g->kw + kx) * cin * cout + cb;   /* [cin][cout] */
            const float *xp[4];
            int inside[4], all = 1;
            EC_V8_UNROLL for (int p = 0; p < NP; p++) {
                const int ix = (ox + p) * g->sw - g->pad_l + kx;
                inside[p] = ix >= 0 && ix < g->in_w;
                all &= inside[p];
                xp[p] = xrow + (size_t)(inside[p] ? ix : 0) * cin;
            }
            if (all) {
                for (int ci = 0; ci < cin; ci++, wt += cout) {
                    __m256 wv[3];
                    EC_V8_UNROLL for (int v = 0; v < NV; v++)
                        wv[v] = MASKED && v == NV - 1 ? _mm256_maskload_ps(wt + 8 * v, mask) : _mm256_loadu_ps(wt + 8 * v);
                    EC_V8_UNROLL for (int p = 0; p < NP; p++) {
                        const __m256 xb = _mm256_broadcast_ss(xp[p] + ci);
                        EC_V8_UNROLL for (int v = 0; v < NV; v++) acc[p][v] = _mm256_fmadd_ps(xb, wv[v], acc[p][v]);
                    }
                }
            } else {
                /* a border: pixels whose tap falls in the padding add nothing */
                for (int ci = 0; ci < cin; ci++, wt += cout) {
                    __m256 wv[3];
                    EC_V8_UNROLL for (int v = 0; v < NV; v++)
                        wv[v] = MASKED && v == NV - 1 ? _mm256_maskload_ps(wt + 8 * v, mask) : _mm256_loadu_ps(wt + 8 * v);
                    EC_V8_UNROLL for (int p = 0; p < NP; p++) {
                        if (!inside[p]) continue;
                        const __m256 xb = _mm256_broadcast_ss(xp[p] + ci);
                        EC_V8_UNROLL for (int v = 0; v < NV; v++) acc[p][v] = _mm256_fmadd_ps(xb, wv[v], acc[p][v]);
                    }
                }
            }
        }
    }
    __m256 vs[3], vh[3];
    EC_V8_UNROLL for (int v = 0; v < NV; v++) {
        const int m = MASKED && v == NV - 1;
        const float *sp = k->scale ? k->scale + cb + 8 * v : NULL, *hp = k->shift ? k->shift + cb + 8 * v : NULL;
        vs[v] = sp ? (m ? _mm256_maskload_ps(sp, mask) : _mm256_loadu_ps(sp)) : _mm256_set1_ps(1.0f);
        vh[v] = hp ? (m ? _mm256_maskload_ps(hp, mask) : _mm256_loadu_ps(hp)) : _mm256_setzero_ps();
    }
    EC_V8_UNROLL for (int p = 0; p < NP; p++) {
        __m256 r[3];
        EC_V8_UNROLL for (int v = 0; v < NV; v++) r[v] = _mm256_fmadd_ps(acc[p][v], vs[v], vh[v]);
        ec_v8_act_n(r, NV, k->act);
        float *o = k->out + ((size_t)oy * g->out_w + ox + p) * cout + cb;
        EC_V8_UNROLL for (int v = 0; v < NV; v++) {
            if (MASKED && v == NV - 1) _mm256_maskstore_ps(o + 8 * v, mask, r[v]);
            else _mm256_storeu_ps(o + 8 * v, r[v]);
        }
    }
}

/* One output row, channels [cb, cb + 8 * NV). */
EC_V8_INLINE void cv_row(const cv_ctx *k, int oy, int cb, const int NV, const int MASKED, __m256i mask)
{
    const int out_w = k->g->out_w;
    int ox = 0;
    for (; ox + 4 <= out_w; ox += 4) cv_block(k, oy, ox, cb, 4, NV, MASKED, mask);
    for (; ox < out_w; ox++) cv_block(k, oy, ox, cb, 1, NV, MASKED, mask);
}

static __attribute__((noinline)) void cv_row_v1(const cv_ctx *k, int oy, int cb) { cv_row(k, oy, cb, 1, 0, _mm256_setzero_si256()); }
static __attribute__((noinline)) void cv_row_v2(const cv_ctx *k, int oy, int cb) { cv_row(k, oy, cb, 2, 0, _mm256_setzero_si256()); }
static __attribute__((noinline)) void cv_row_v3(const cv_ctx *k, int oy, int cb) { cv_row(k, oy, cb, 3, 0, _mm256_setzero_si256()); }
static __attribute__((noinline)) void cv_row_m1(const cv_ctx *k, int oy, int cb, __m256i m) { cv_row(k, oy, cb, 1, 1, m); }
static __attribute__((noinline)) void cv_row_m2(const cv_ctx *k, int oy, int cb, __m256i m) { cv_row(k, oy, cb, 2, 1, m); }
static __attribute__((noinline)) void cv_row_m3(const cv_ctx *k, int oy, int cb, __m256i m) { cv_row(k, oy, cb, 3, 1, m); }

void ec_f32_conv_direct__avx2(const ec_conv_params *p, const float *restrict x, const float *restrict w,
                              const float *restrict scale, const float *restrict shift, float *restrict out,
                              int y0, int y1)
{
    const cv_ctx k = { x, w, scale, shift, out, &p->g, p->cout, p->act };
    const int cout = p->cout;
    for (int oy = y0; oy < y1; oy++) {
        /* groups of 3 vectors (24 channels: 12 accumulators + 3 weights + 1 broadcast = 16 registers) */
        for (int cb = 0; cb < cout; cb += 24) {
            const int left = cout - cb, nv = left >= 24 ? 3 : (left + 7) / 8;
            if (left >= 24 || left % 8 == 0) {
                if (nv == 3) cv_row_v3(&k, oy, cb);
                else if (nv == 2) cv_row_v2(&k, oy, cb);
                else cv_row_v1(&k, oy, cb);
            } else {
                const __m256i m = ec_v8_tail_mask(left % 8);
                if (nv == 3) cv_row_m3(&k, oy, cb, m);
                else if (nv == 2) cv_row_m2(&k, oy, cb, m);
                else cv_row_m1(&k, oy, cb, m);
            }
        }
    }
}
