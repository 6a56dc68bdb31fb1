/* im2col.c - patches of a k x k convolution as GEMM rows. */
#include <string.h>

#include "kernels/kernels.h"

/* x: (in_h, in_w, c); col: (p1 - p0, kh * kw * c), column order (ky, kx, ci)
 * to match HWIO weights viewed as a (kh * kw * c, out_c) matrix. */
void ec_f32_im2col(const ec_conv_geom *g, const float *restrict x, int p0, int p1,
                   float *restrict col)
{
    const int c = g->c, kw = g->kw;
    const size_t row_len = (size_t)g->kh * kw * c;
    const size_t span = (size_t)kw * c;                  /* one ky slice of a row */
    for (int p = p0; p < p1; p++) {
        const int oy = p / g->out_w, ox = p % g->out_w;
        const int iy0 = oy * g->sh - g->pad_t;
        const int ix0 = ox * g->sw - g->pad_l;
        float *restrict dst = col + (size_t)(p - p0) * row_len;
        for (int ky = 0; ky < g->kh; ky++, dst += span) {
            const int iy = iy0 + ky;
            if (iy < 0 || iy >= g->in_h) {
                memset(dst, 0, span * sizeof *dst);
                continue;
            }
            const float *src = x + (size_t)iy * g->in_w * c;   /* input row iy */
            if (ix0 >= 0 && ix0 + kw <= g->in_w) {
                /* NHWC: the kw pixels of this slice are adjacent, one copy. */
                memcpy(dst, src + (size_t)ix0 * c, span * sizeof *dst);
                continue;
            }
            for (int kx = 0; kx < kw; kx++) {
                const int ix = ix0 + kx;
                float *d = dst + (size_t)kx * c;
                if (ix < 0 || ix >= g->in_w)
                    memset(d, 0, (size_t)c * sizeof *d);
                else
                    memcpy(d, src + (size_t)ix * c, (size_t)c * sizeof *d);
            }
        }
    }
}
