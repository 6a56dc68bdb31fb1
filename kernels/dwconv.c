/* dwconv.c - depthwise convolution: scalar reference and dispatch. */
#include "kernels/act_ref.h"
#include "kernels/kernels.h"

/* x: (in_h, in_w, c); w: (kh, kw, c, mult); scale, shift: (c * mult) or NULL;
 * out: (out_h, out_w, c * mult), rows [y0, y1) written. Output channel
 * oc = ci * mult + m reads input channel ci = oc / mult; in w the (ci, m) pair
 * flattens to the same oc, so tap (ky, kx) of oc is w[(ky * kw + kx) * C + oc].
 * Taps are summed in (ky, kx) order in float, like the AVX2 kernel. */
void ec_f32_dwconv__ref(const ec_dwconv_params *p, const float *restrict x,
                        const float *restrict w, const float *restrict scale,
                        const float *restrict shift, float *restrict out, int y0, int y1)
{
    const ec_conv_geom *g = &p->g;
    const int C = g->c * p->mult;
    for (int oy = y0; oy < y1; oy++) {
        for (int ox = 0; ox < g->out_w; ox++) {
            float *o = out + ((size_t)oy * g->out_w + ox) * C;
            for (int oc = 0; oc < C; oc++) {
                const int ci = oc / p->mult;
                float acc = 0.0f;
                for (int ky = 0; ky < g->kh; ky++) {
                    const int iy = oy * g->sh - g->pad_t + ky;
                    if (iy < 0 || iy >= g->in_h) continue;     /* zero padding */
                    for (int kx = 0; kx < g->kw; kx++) {
                        const int ix = ox * g->sw - g->pad_l + kx;
                        if (ix < 0 || ix >= g->in_w) continue;
                        acc += x[((size_t)iy * g->in_w + ix) * g->c + ci] *
                               w[((size_t)ky * g->kw + kx) * C + oc];
                    }
                }
                if (scale) acc *= scale[oc];
                if (shift) acc += shift[oc];
                o[oc] = ec_act_ref1(acc, p->act);
            }
        }
    }
}

void ec_f32_dwconv(const ec_dwconv_params *p, const float *x, const float *w,
                   const float *scale, const float *shift, float *out, int y0, int y1)
{
    if (ec_cpu_has_avx512())
        ec_f32_dwconv__avx512(p, x, w, scale, shift, out, y0, y1);
    else if (ec_cpu_has_avx2())
        ec_f32_dwconv__avx2(p, x, w, scale, shift, out, y0, y1);
    else
        ec_f32_dwconv__ref(p, x, w, scale, shift, out, y0, y1);
}

/* ---- backward: the data gradient ------------------------------------------
 * dx = the transposed depthwise conv of dout: for input pixel (iy, ix) and
 * channel ci, every tap (ky, kx) whose output pixel oy = (iy + pad_t - ky) / sh,
 * ox = (ix + pad_l - kx) / sw is integral and inside the output contributes
 * dout[oy, ox, oc] * w[ky, kx, oc] * scale[oc] for oc = ci * mult + m. Gather
 * form: each dx element is summed whole by whoever owns its row, in (ky, kx, m)
 * order, so any split of [y0, y1) gives the same bits (a scatter from dout rows
 * would make two threads add into one dx row).
 * scale folds the BN that followed the conv (forward act(conv * scale + shift)):
 * the caller passes dout = d(conv * scale + shift), i.e. already through the
 * activation's derivative (ec_f32_act_scale_backward with scale NULL). Folding
 * the activation too would need the pre-activation value here, which the
 * forward does not keep; folding scale saves a pass over dout. */

/* Output index o for input index i and tap k: -1 unless (i + pad - k) is a
 * non-negative multiple of s below n. */
static inline int dw_src(int i, int pad, int k, int s, int n)
{
    const int t = i + pad - k;
    if (t < 0 || t % s) return -1;
    return t / s < n ? t / s : -1;
}

/* w: (kh, kw, C), C = c * mult; scale: (C) or NULL; dout: (out_h, out_w, C);
 * dx: (in_h, in_w, c), rows [y0, y1) written. Each tap's weight is w * scale
 * rounded once, then one multiply-add in float, like the AVX2 kernel (which
 * fuses the multiply-add). */
void ec_f32_dwconv_backward__ref(const ec_dwconv_params *p, const float *restrict w,
                                 const float *restrict scale, const float *restrict dout,
                                 float *restrict dx, int y0, int y1)
{
    const ec_conv_geom *g = &p->g;
    const int mult = p->mult, C = g->c * mult;
    for (int iy = y0; iy < y1; iy++)
        for (int ix = 0; ix < g->in_w; ix++) {
            float *d = dx + ((size_t)iy * g->in_w + ix) * g->c;
            for (int ci = 0; ci < g->c; ci++) {
                float acc = 0.0f;
                for (int ky = 0; ky < g->kh; ky++) {
                    const int oy = dw_src(iy, g->pad_t, ky, g->sh, g->out_h);
                    if (oy < 0) continue;
                    for (int kx = 0; kx < g->kw; kx++) {
                        const int ox = dw_src(ix, g->pad_l, kx, g->sw, g->out_w);
                        if (ox < 0) continue;
                        const float *dop = dout + ((size_t)oy * g->out_w + ox) * C;
                        const float *wp = w + ((size_t)ky * g->kw + kx) * C;
                        for (int m = 0; m < mult; m++) {
                            const int oc = ci * mult + m;
                            const float ws = scale ? wp[oc] * scale[oc] : wp[oc];
                            acc += dop[oc] * ws;
                        }
                    }
                }
                d[ci] = acc;
            }
        }
}

void ec_f32_dwconv_backward(const ec_dwconv_params *p, const float *w, const float *scale,
                            const float *dout, float *dx, int y0, int y1)
{
    if (ec_cpu_has_avx2())
        ec_f32_dwconv_backward__avx2(p, w, scale, dout, dx, y0, y1);
    else
        ec_f32_dwconv_backward__ref(p, w, scale, dout, dx, y0, y1);
}

/* ---- depthwise + SE squeeze ---------------------------------------------------
 * ec_f32_dwconv, plus rowsum[oy][oc] = the sum over ox (in ox order, float) of
 * out[oy][ox][oc] for the rows written: the SE block's squeeze done while the
 * output is in registers instead of by a second pass over it. */
static void dw_rowsums(const ec_dwconv_params *p, const float *out, float *rowsum, int y0, int y1)
{
    const int C = p->g.c * p->mult, ow = p->g.out_w;
    for (int oy = y0; oy < y1; oy++) {
        float *rs = rowsum + (size_t)oy * C;   /* [C] */
        for (int oc = 0; oc < C; oc++) rs[oc] = 0.0f;
        for (int ox = 0; ox < ow; ox++) {
            const float *o = out + ((size_t)oy * ow + ox) * C;
            for (int oc = 0; oc < C; oc++) rs[oc] += o[oc];
        }
    }
}

void ec_f32_dwconv_rowsum__ref(const ec_dwconv_params *p, const float *x, const float *w, const float *scale,
                               const float *shift, float *out, float *rowsum, int y0, int y1)
{
    ec_f32_dwconv__ref(p, x, w, scale, shift, out, y0, y1);
    dw_rowsums(p, out, rowsum, y0, y1);
}

/* Without AVX-512 the sums are a separate pass; the same adds in the same order,
 * so the same bits for the same outputs. */
void ec_f32_dwconv_rowsum(const ec_dwconv_params *p, const float *x, const float *w, const float *scale,
                          const float *shift, float *out, float *rowsum, int y0, int y1)
{
    if (ec_cpu_has_avx512()) {
        ec_f32_dwconv_rowsum__avx512(p, x, w, scale, shift, out, rowsum, y0, y1);
        return;
    }
    ec_f32_dwconv(p, x, w, scale, shift, out, y0, y1);
    dw_rowsums(p, out, rowsum, y0, y1);
}

/* s[c] = (sum over r of rowsum[r][c], r ascending) / hw: the squeeze's mean,
 * the same whatever rows each task summed. */
void ec_f32_rowsum_mean(const float *rowsum, int rows, int c, size_t hw, float *s)
{
    for (int j = 0; j < c; j++) s[j] = 0.0f;
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < c; j++) s[j] += rowsum[(size_t)r * c + j];
    for (int j = 0; j < c; j++) s[j] = hw ? s[j] / (float)hw : 0.0f;
}
