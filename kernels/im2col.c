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

/* ---- backward: col2im in gather form ------------------------------------------
 * The adjoint of im2col: dx[iy, ix, ci] = sum over the taps (ky, kx) whose
 * output pixel oy = (iy + pad_t - ky) / sh, ox = (ix + pad_l - kx) / sw is
 * integral and inside of dcol[(oy, ox) - first row][(ky, kx, ci)]. Each dx
 * element is summed whole, in (ky, kx) order, by whoever owns its row: any split
 * of [y0, y1) gives the same bits, and the AVX2 twin (adds only, same order)
 * gives the reference's bits. dcol holds output rows [oy0, ...), as many as
 * ec_conv_out_rows says rows [y0, y1) need. */
void ec_f32_col2im__ref(const ec_conv_geom *g, const float *restrict dcol, int oy0, float *restrict dx,
                        int y0, int y1)
{
    const int c = g->c;
    const size_t row_len = (size_t)g->kh * g->kw * c;
    for (int iy = y0; iy < y1; iy++)
        for (int ix = 0; ix < g->in_w; ix++) {
            float *d = dx + ((size_t)iy * g->in_w + ix) * c;
            for (int ci = 0; ci < c; ci++) d[ci] = 0.0f;
            for (int ky = 0; ky < g->kh; ky++) {
                const int ty = iy + g->pad_t - ky;
                if (ty < 0 || ty % g->sh || ty / g->sh >= g->out_h) continue;
                for (int kx = 0; kx < g->kw; kx++) {
                    const int tx = ix + g->pad_l - kx;
                    if (tx < 0 || tx % g->sw || tx / g->sw >= g->out_w) continue;
                    const float *s = dcol + ((size_t)(ty / g->sh - oy0) * g->out_w + tx / g->sw) * row_len +
                                     ((size_t)ky * g->kw + kx) * c;
                    for (int ci = 0; ci < c; ci++) d[ci] += s[ci];
                }
            }
        }
}

void ec_f32_col2im(const ec_conv_geom *g, const float *dcol, int oy0, float *dx, int y0, int y1)
{
    if (ec_cpu_has_avx2())
        ec_f32_col2im__avx2(g, dcol, oy0, dx, y0, y1);
    else
        ec_f32_col2im__ref(g, dcol, oy0, dx, y0, y1);
}
