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
