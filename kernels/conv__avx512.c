/* conv__avx512.c - direct k x k convolution for few output channels, AVX-512,
 * fused scale/shift + act.
 *
 * The zmm twin of conv__avx2.c (EfficientNetV2's stem and stage 1: 3 -> 24 and
 * 24 -> 24 at 150x150): the input read in place, each tap's cin input values
 * broadcast against the tap's weight rows (cout lanes, up to 3 zmm = 48
 * channels, the last under a k-mask), now 8 pixels at a time (24 accumulators
 * + 3 weights + the broadcast in 32 registers), so one weight load feeds 8
 * FMAs. Each output sums its taps in (ky, kx, ci) order with one FMA chain and
 * then takes one FMA for scale and shift, exactly as the AVX2 kernel does: the
 * two give the same bits before the activation, and neither depends on how
 * rows are split. */
#include "kernels/vmath_avx512.h"

typedef struct {
    const float *x, *w;              /* (in_h, in_w, cin), (kh, kw, cin, cout) */
    const float *scale, *shift;      /* (cout) or NULL */
    float *out;                      /* (out_h, out_w, cout) */
    const ec_conv_geom *g;
    int cout, act;
} cv5_ctx;

/* NP output pixels (ox .. ox + NP - 1 of row oy), NV zmm of channels from cb;
 * the last vector's lanes under mlast. */
EC_V16_INLINE void cv5_block(const cv5_ctx *k, int oy, int ox, int cb, const int NP, const int NV, __mmask16 mlast)
{
    const ec_conv_geom *g = k->g;
    const int cin = g->c, cout = k->cout;
    __mmask16 mk[3];
    EC_V16_UNROLL for (int v = 0; v < NV; v++) mk[v] = v == NV - 1 ? mlast : (__mmask16)0xffff;
    __m512 acc[8][3];
    EC_V16_UNROLL for (int p = 0; p < NP; p++)
        EC_V16_UNROLL for (int v = 0; v < NV; v++) acc[p][v] = _mm512_setzero_ps();
    const int iy0 = oy * g->sh - g->pad_t;
    for (int ky = 0; ky < g->kh; ky++) {
        const int iy = iy0 + ky;
        if (iy < 0 || iy >= g->in_h) continue;                 /* zero padding row */
        const float *xrow = k->x + (size_t)iy * g->in_w * cin;
        for (int kx = 0; kx < g->kw; kx++) {
            const float *wt = k->w + ((size_t)ky * g->kw + kx) * cin * cout + cb;   /* [cin][cout] */
            const float *xp[8];
            int inside[8], all = 1;
            EC_V16_UNROLL for (int p = 0; p < NP; p++) {
                const int ix = (ox + p) * g->sw - g->pad_l + kx;
                inside[p] = ix >= 0 && ix < g->in_w;
                all &= inside[p];
                xp[p] = xrow + (size_t)(inside[p] ? ix : 0) * cin;
            }
            if (all) {
                for (int ci = 0; ci < cin; ci++, wt += cout) {
                    __m512 wv[3];
                    EC_V16_UNROLL for (int v = 0; v < NV; v++) wv[v] = _mm512_maskz_loadu_ps(mk[v], wt + 16 * v);
                    EC_V16_UNROLL for (int p = 0; p < NP; p++) {
                        const __m512 xb = _mm512_set1_ps(xp[p][ci]);
                        EC_V16_UNROLL for (int v = 0; v < NV; v++) acc[p][v] = _mm512_fmadd_ps(xb, wv[v], acc[p][v]);
                    }
                }
            } else {
                /* a border: pixels whose tap falls in the padding add nothing */
                for (int ci = 0; ci < cin; ci++, wt += cout) {
                    __m512 wv[3];
                    EC_V16_UNROLL for (int v = 0; v < NV; v++) wv[v] = _mm512_maskz_loadu_ps(mk[v], wt + 16 * v);
                    EC_V16_UNROLL for (int p = 0; p < NP; p++) {
                        if (!inside[p]) continue;
                        const __m512 xb = _mm512_set1_ps(xp[p][ci]);
                        EC_V16_UNROLL for (int v = 0; v < NV; v++) acc[p][v] = _mm512_fmadd_ps(xb, wv[v], acc[p][v]);
                    }
                }
            }
        }
    }
    __m512 vs[3], vh[3];
    EC_V16_UNROLL for (int v = 0; v < NV; v++) {
        vs[v] = k->scale ? _mm512_maskz_loadu_ps(mk[v], k->scale + cb + 16 * v) : _mm512_set1_ps(1.0f);
        vh[v] = k->shift ? _mm512_maskz_loadu_ps(mk[v], k->shift + cb + 16 * v) : _mm512_setzero_ps();
    }
    EC_V16_UNROLL for (int p = 0; p < NP; p++) {
        __m512 r[3];
        EC_V16_UNROLL for (int v = 0; v < NV; v++) r[v] = _mm512_fmadd_ps(acc[p][v], vs[v], vh[v]);
        ec_v16_act_n(r, NV, k->act);
        float *o = k->out + ((size_t)oy * g->out_w + ox + p) * cout + cb;
        EC_V16_UNROLL for (int v = 0; v < NV; v++) _mm512_mask_storeu_ps(o + 16 * v, mk[v], r[v]);
    }
}

/* One output row, channels [cb, cb + 16 * NV), 8 pixels at a time, then 4, then 1. */
EC_V16_INLINE void cv5_row(const cv5_ctx *k, int oy, int cb, const int NV, __mmask16 mlast)
{
    const int out_w = k->g->out_w;
    int ox = 0;
    for (; ox + 8 <= out_w; ox += 8) cv5_block(k, oy, ox, cb, 8, NV, mlast);
    if (ox + 4 <= out_w) {
        cv5_block(k, oy, ox, cb, 4, NV, mlast);
        ox += 4;
    }
    for (; ox < out_w; ox++) cv5_block(k, oy, ox, cb, 1, NV, mlast);
}

static __attribute__((noinline)) void cv5_row_v1(const cv5_ctx *k, int oy, int cb, __mmask16 m) { cv5_row(k, oy, cb, 1, m); }
static __attribute__((noinline)) void cv5_row_v2(const cv5_ctx *k, int oy, int cb, __mmask16 m) { cv5_row(k, oy, cb, 2, m); }
static __attribute__((noinline)) void cv5_row_v3(const cv5_ctx *k, int oy, int cb, __mmask16 m) { cv5_row(k, oy, cb, 3, m); }

void ec_f32_conv_direct__avx512(const ec_conv_params *p, const float *restrict x, const float *restrict w,
                                const float *restrict scale, const float *restrict shift, float *restrict out,
                                int y0, int y1)
{
    const cv5_ctx k = {x, w, scale, shift, out, &p->g, p->cout, p->act};
    const int cout = p->cout;
    for (int oy = y0; oy < y1; oy++)
        for (int cb = 0; cb < cout; cb += 48) {   /* groups of up to 3 vectors (48 channels) */
            const int left = cout - cb, nv = left >= 48 ? 3 : (left + 15) / 16;
            const __mmask16 m = ec_v16_tail_mask(left - 16 * (nv - 1));
            if (nv == 3) cv5_row_v3(&k, oy, cb, m);
            else if (nv == 2) cv5_row_v2(&k, oy, cb, m);
            else cv5_row_v1(&k, oy, cb, m);
        }
}
