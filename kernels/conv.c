/* conv.c - direct k x k convolution (few output channels): scalar reference and dispatch. */
#include "kernels/act_ref.h"
#include "kernels/kernels.h"

/* x: (in_h, in_w, cin); w: (kh, kw, cin, cout) HWIO; scale, shift: (cout) or
 * NULL; out: (out_h, out_w, cout), rows [y0, y1) written. Taps are summed in
 * (ky, kx, ci) order in float, like the AVX2 and AVX-512 kernels (which fuse
 * each multiply-add). */
void ec_f32_conv_direct__ref(const ec_conv_params *p, const float *restrict x, const float *restrict w,
                             const float *restrict scale, const float *restrict shift, float *restrict out,
                             int y0, int y1)
{
    const ec_conv_geom *g = &p->g;
    const int cin = g->c, cout = p->cout;
    for (int oy = y0; oy < y1; oy++)
        for (int ox = 0; ox < g->out_w; ox++) {
            float *o = out + ((size_t)oy * g->out_w + ox) * cout;
            for (int co = 0; co < cout; co++) {
                float acc = 0.0f;
                for (int ky = 0; ky < g->kh; ky++) {
                    const int iy = oy * g->sh - g->pad_t + ky;
                    if (iy < 0 || iy >= g->in_h) continue;     /* zero padding */
                    for (int kx = 0; kx < g->kw; kx++) {
                        const int ix = ox * g->sw - g->pad_l + kx;
                        if (ix < 0 || ix >= g->in_w) continue;
                        const float *xp = x + ((size_t)iy * g->in_w + ix) * cin;
                        const float *wp = w + ((size_t)ky * g->kw + kx) * cin * cout + co;
                        for (int ci = 0; ci < cin; ci++) acc += xp[ci] * wp[(size_t)ci * cout];
                    }
                }
                if (scale) acc *= scale[co];
                if (shift) acc += shift[co];
                o[co] = ec_act_ref1(acc, p->act);
            }
        }
}

void ec_f32_conv_direct(const ec_conv_params *p, const float *x, const float *w,
                        const float *scale, const float *shift, float *out, int y0, int y1)
{
    if (ec_cpu_has_avx512())
        ec_f32_conv_direct__avx512(p, x, w, scale, shift, out, y0, y1);
    else if (ec_cpu_has_avx2())
        ec_f32_conv_direct__avx2(p, x, w, scale, shift, out, y0, y1);
    else
        ec_f32_conv_direct__ref(p, x, w, scale, shift, out, y0, y1);
}

/* ---- backward: the data gradient of any k x k (or 1x1) convolution -----------
 * For the direct, GEMM and Winograd forwards alike (the gradient depends on the
 * weights only, not on how the forward was computed):
 *   1x1, stride 1, no padding: dx rows = dout rows @ W^T, one packed GEMM;
 *   otherwise: dcol = dout @ W^T over the output rows the input rows [y0, y1)
 *   touch (ec_conv_out_rows), then col2im gathers dx rows [y0, y1).
 * bpt is W^T packed by ec_pack_bt (K = kh * kw * cin, N = cout, the BN scale
 * folded in). The FLOPs equal the forward's; for the small-cout convs the direct
 * forward serves (the stem, 3 -> 24, and stage 1, 24 -> 24) the GEMM is still
 * 24 deep with 27 or 216 columns, and col2im's pass over dcol is a memory pass of
 * kh * kw times dx's size, so no separate direct transposed kernel: the same
 * code serves every conv. A chunk of output rows at a split's boundary is
 * computed by both neighbours (identically: ec_gemm_packed's bits do not depend
 * on the row range), and every dx element is gathered whole, so any split of
 * [y0, y1) gives the same bits. */
void ec_conv_out_rows(const ec_conv_geom *g, int y0, int y1, int *oy0, int *oy1)
{
    /* oy reaches input row iy through tap ky when oy * sh = iy + pad_t - ky, ky in [0, kh) */
    int lo = y0 + g->pad_t - (g->kh - 1);          /* smallest oy * sh */
    lo = lo <= 0 ? 0 : (lo + g->sh - 1) / g->sh;
    int hi = y1 - 1 + g->pad_t;                    /* largest oy * sh */
    hi = hi < 0 ? 0 : hi / g->sh + 1;
    if (hi > g->out_h) hi = g->out_h;
    if (lo > hi) lo = hi;
    *oy0 = lo;
    *oy1 = hi;
}

static int conv_is_pointwise(const ec_conv_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pad_t == 0 && g->pad_l == 0 &&
           g->out_h == g->in_h && g->out_w == g->in_w;
}

size_t ec_conv_backward_scratch_floats(const ec_conv_geom *g, int rows)
{
    if (conv_is_pointwise(g) || rows <= 0) return 0;
    size_t orows = (size_t)(rows - 1 + g->kh - 1) / (size_t)g->sh + 1;
    if (orows > (size_t)g->out_h) orows = (size_t)g->out_h;
    return orows * (size_t)g->out_w * (size_t)g->kh * (size_t)g->kw * (size_t)g->c;
}

/* dout: (out_h, out_w, cout); bpt: ec_pack_bt(W[kh * kw * cin, cout]); dcol:
 * ec_conv_backward_scratch_floats(g, y1 - y0) floats (NULL for a pointwise
 * conv); dx: (in_h, in_w, cin), rows [y0, y1) written. */
void ec_f32_conv_backward(const ec_conv_geom *g, int cout, const float *bpt, const float *dout, float *dcol,
                          float *dx, int y0, int y1)
{
    const int K = g->kh * g->kw * g->c;            /* the GEMM's columns */
    const int panels = (K + EC_PG_NR - 1) / EC_PG_NR;
    if (y1 <= y0) return;
    if (conv_is_pointwise(g)) {
        const size_t px0 = (size_t)y0 * g->in_w;
        const int M = (y1 - y0) * g->in_w;
        ec_gemm_packed(M, K, cout, dout + px0 * cout, cout, bpt, NULL, EC_ACT_LINEAR, dx + px0 * g->c, g->c,
                       0, M, 0, panels);
        return;
    }
    int oy0, oy1;
    ec_conv_out_rows(g, y0, y1, &oy0, &oy1);
    const int M = (oy1 - oy0) * g->out_w;
    if (M > 0)
        ec_gemm_packed(M, K, cout, dout + (size_t)oy0 * g->out_w * cout, cout, bpt, NULL, EC_ACT_LINEAR, dcol, K,
                       0, M, 0, panels);
    ec_f32_col2im(g, dcol, oy0, dx, y0, y1);
}

/* ---- backward of a stride-1 conv as a forward conv ------------------------------
 * For stride 1, dx = the forward convolution of dout with the kernel rotated by
 * 180 degrees and its channel axes swapped, padded by kh - 1 - pad_t on top and
 * kw - 1 - pad_l on the left (dx[i] = sum_k dout[i + pad - k] w[k], and
 * k' = kh - 1 - k turns that into a forward tap). So the engine can run it on
 * any forward path, Winograd F(4x4, 3x3) included, which for EfficientNetV2's
 * fused 3x3 stride-1 convs (about half its MACs) beats GEMM + col2im.
 * ec_conv_geom_flip: the geometry of that forward conv (input dout, cout
 * channels; output dx); -1 for stride != 1 or padding beyond kh - 1 (the
 * rotated conv would need negative padding). ec_conv_weights_flip: wt (kh, kw,
 * cout, cin) float32 = w[kh - 1 - ky][kw - 1 - kx][ci][co] (fp16 if w_f16) times
 * scale[co] (the BN scale, or NULL), for output channels ci in [ci0, ci1). */
int ec_conv_geom_flip(const ec_conv_geom *g, int cout, ec_conv_geom *gt)
{
    if (g->sh != 1 || g->sw != 1 || g->pad_t > g->kh - 1 || g->pad_l > g->kw - 1) return -1;
    /* the implied bottom/right padding of the flipped conv must not be negative either */
    if (g->in_h - 1 + g->kh - g->out_h - (g->kh - 1 - g->pad_t) < 0) return -1;
    if (g->in_w - 1 + g->kw - g->out_w - (g->kw - 1 - g->pad_l) < 0) return -1;
    *gt = (ec_conv_geom){
        .in_h = g->out_h, .in_w = g->out_w, .c = cout, .out_h = g->in_h, .out_w = g->in_w,
        .kh = g->kh, .kw = g->kw, .sh = 1, .sw = 1, .pad_t = g->kh - 1 - g->pad_t, .pad_l = g->kw - 1 - g->pad_l,
    };
    return 0;
}

void ec_conv_weights_flip(const void *w, int w_f16, const float *scale, int kh, int kw, int cin, int cout, int ci0,
                          int ci1, float *wt)
{
    const uint16_t *wh = w;
    const float *wf = w;
    for (int ky = 0; ky < kh; ky++)
        for (int kx = 0; kx < kw; kx++) {
            const size_t src = ((size_t)(kh - 1 - ky) * kw + (kw - 1 - kx)) * cin * cout;   /* [cin][cout] */
            float *dst = wt + ((size_t)ky * kw + kx) * cout * cin;                          /* [cout][cin] */
            for (int co = 0; co < cout; co++)
                for (int ci = ci0; ci < ci1; ci++) {
                    const size_t i = src + (size_t)ci * cout + co;
                    float v = w_f16 ? ec_f16_to_f32(wh[i]) : wf[i];
                    if (scale) v *= scale[co];
                    dst[(size_t)co * cin + ci] = v;
                }
        }
}
