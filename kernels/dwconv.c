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
    if (ec_cpu_has_avx2())
        ec_f32_dwconv__avx2(p, x, w, scale, shift, out, y0, y1);
    else
        ec_f32_dwconv__ref(p, x, w, scale, shift, out, y0, y1);
}
