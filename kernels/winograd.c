/* winograd.c - 3x3 stride-1 convolution as Winograd F(2x2, 3x3).
 *
 * Each 2x2 block of output pixels (a tile) is computed from the 4x4 input patch
 * under it with 16 elementwise products per (input, output) channel pair
 * instead of the 36 multiply-adds of the direct form (Lavin & Gray, "Fast
 * Algorithms for Convolutional Neural Networks", 2016):
 *
 *   Y = A^T [ (G g G^T) . (B^T d B) ] A
 *
 *   B^T = | 1  0 -1  0 |     G = | 1    0    0   |     A^T = | 1  1  1  0 |
 *         | 0  1  1  0 |         | 1/2  1/2  1/2 |           | 0  1 -1 -1 |
 *         | 0 -1  1  0 |         | 1/2 -1/2  1/2 |
 *         | 0  1  0 -1 |         | 0    0    1   |
 *
 * The sum over input channels of the products is, for each of the 16 (xi)
 * positions, a GEMM: M[xi](tiles, cout) = V[xi](tiles, cin) @ U[xi](cin, cout).
 * The engine runs those 16 GEMMs with OpenBLAS; this file has the three
 * transforms around them. Every transform is adds, subtracts and halvings
 * (exact but for one rounding per add), so the result differs from the direct
 * convolution by a few ulp of the accumulated sums - test_kernels measures it
 * against ec_f32_conv_direct__ref.
 *
 * Layouts: x is NHWC (in_h, in_w, cin); tiles are numbered t = ty * tiles_w + tx
 * over ceil(out_h / 2) x ceil(out_w / 2); V is [16][n_tiles][cin], M is
 * [16][n_tiles][cout], U is [16][cin][cout]. The loops run over channels
 * innermost, contiguous in every array; winograd__avx2.c does the transforms
 * 8 channels at a time (channel counts that are multiples of 8) and
 * winograd__avx512.c 16 at a time (any count), these are their scalar twins. */
#include <string.h>

#include "kernels/kernels.h"

#define WINO_CHUNK 256          /* channels per pass over a tile's 16 inputs */

static const float wino_zeros[WINO_CHUNK];

void ec_wino23_input(const ec_conv_geom *g, const float *x, int t0, int t1, float *v)
{
    if (ec_cpu_has_avx512()) ec_wino23_input__avx512(g, x, t0, t1, v);
    else if (ec_cpu_has_avx2() && g->c % 8 == 0) ec_wino23_input__avx2(g, x, t0, t1, v);
    else ec_wino23_input__ref(g, x, t0, t1, v);
}

void ec_wino23_output(const ec_conv_geom *g, int cout, const float *m, int t0, int t1, const float *shift, int act,
                      float *y)
{
    if (ec_cpu_has_avx512()) ec_wino23_output__avx512(g, cout, m, t0, t1, shift, act, y);
    else if (ec_cpu_has_avx2() && cout % 8 == 0) ec_wino23_output__avx2(g, cout, m, t0, t1, shift, act, y);
    else ec_wino23_output__ref(g, cout, m, t0, t1, shift, act, y);
}

int ec_wino23_tiles(const ec_conv_geom *g) { return ((g->out_h + 1) / 2) * ((g->out_w + 1) / 2); }

void ec_wino23_weights(const void *w, int w_f16, const float *scale, int cin, int cout, int ci0, int ci1,
                       size_t u_stride, float *tmp, float *u)
{
    if (ec_cpu_has_avx512()) ec_wino23_weights__avx512(w, w_f16, scale, cin, cout, ci0, ci1, u_stride, u);
    else if (ec_cpu_has_avx2() && cout % 8 == 0) ec_wino23_weights__avx2(w, w_f16, scale, cin, cout, ci0, ci1, u_stride, u);
    else ec_wino23_weights__ref(w, w_f16, scale, cin, cout, ci0, ci1, u_stride, tmp, u);
}

void ec_wino23_weights__ref(const void *w, int w_f16, const float *scale, int cin, int cout, int ci0, int ci1,
                            size_t u_stride, float *tmp, float *u)
{
    for (int ci = ci0; ci < ci1; ci++) {
        /* tmp[k][co] = w[ky][kx][ci][co] * scale[co], k = ky * 3 + kx */
        for (int k = 0; k < 9; k++) {
            float *tk = tmp + (size_t)k * cout;
            const size_t off = ((size_t)k * cin + ci) * cout;
            if (w_f16) ec_f16_to_f32_n((const uint16_t *)w + off, tk, (size_t)cout);
            else memcpy(tk, (const float *)w + off, (size_t)cout * sizeof *tk);
            if (scale)
                for (int co = 0; co < cout; co++) tk[co] *= scale[co];
        }
        const float *restrict g0 = tmp, *restrict g1 = tmp + cout, *restrict g2 = tmp + 2 * (size_t)cout;
        const float *restrict g3 = tmp + 3 * (size_t)cout, *restrict g4 = tmp + 4 * (size_t)cout;
        const float *restrict g5 = tmp + 5 * (size_t)cout, *restrict g6 = tmp + 6 * (size_t)cout;
        const float *restrict g7 = tmp + 7 * (size_t)cout, *restrict g8 = tmp + 8 * (size_t)cout;
        for (int co = 0; co < cout; co++) {
            /* G g (4 x 3, rows r0..r3), then (G g) G^T row by row */
            const float a0 = g0[co], a1 = g1[co], a2 = g2[co];
            const float b0 = g3[co], b1 = g4[co], b2 = g5[co];
            const float c0 = g6[co], c1 = g7[co], c2 = g8[co];
            const float r1_0 = 0.5f * (a0 + b0 + c0), r1_1 = 0.5f * (a1 + b1 + c1), r1_2 = 0.5f * (a2 + b2 + c2);
            const float r2_0 = 0.5f * (a0 - b0 + c0), r2_1 = 0.5f * (a1 - b1 + c1), r2_2 = 0.5f * (a2 - b2 + c2);
            const float rows[4][3] = { { a0, a1, a2 }, { r1_0, r1_1, r1_2 }, { r2_0, r2_1, r2_2 }, { c0, c1, c2 } };
            for (int r = 0; r < 4; r++) {
                const float x = rows[r][0], y = rows[r][1], z = rows[r][2];
                u[ec_wino_u_at(4 * r + 0, ci, co, cin, cout, u_stride)] = x;
                u[ec_wino_u_at(4 * r + 1, ci, co, cin, cout, u_stride)] = 0.5f * (x + y + z);
                u[ec_wino_u_at(4 * r + 2, ci, co, cin, cout, u_stride)] = 0.5f * (x - y + z);
                u[ec_wino_u_at(4 * r + 3, ci, co, cin, cout, u_stride)] = z;
            }
        }
    }
    ec_wino_u_pad(16, cin, cout, ci0, ci1, u_stride, u);
}

void ec_wino23_input__ref(const ec_conv_geom *g, const float *x, int t0, int t1, float *v)
{
    const int cin = g->c, tiles_w = (g->out_w + 1) / 2;
    const size_t plane = (size_t)(t1 - t0) * cin;   /* one xi of V */
    for (int t = t0; t < t1; t++) {
        const int iy0 = 2 * (t / tiles_w) - g->pad_t, ix0 = 2 * (t % tiles_w) - g->pad_l;
        for (int c0 = 0; c0 < cin; c0 += WINO_CHUNK) {
            const int nc = cin - c0 < WINO_CHUNK ? cin - c0 : WINO_CHUNK;
            const float *d[16];
            ec_wino_patch(g, x, iy0, ix0, 4, c0, wino_zeros, d);
            float *restrict out = v + (size_t)(t - t0) * cin + c0;
            for (int k = 0; k < nc; k++) {
                float b[16];
                for (int c = 0; c < 4; c++) {                 /* B^T d: rows */
                    const float d0 = d[c][k], d1 = d[4 + c][k], d2 = d[8 + c][k], d3 = d[12 + c][k];
                    b[c] = d0 - d2;
                    b[4 + c] = d1 + d2;
                    b[8 + c] = d2 - d1;
                    b[12 + c] = d1 - d3;
                }
                for (int r = 0; r < 4; r++) {                 /* (B^T d) B: columns */
                    const float b0 = b[4 * r], b1 = b[4 * r + 1], b2 = b[4 * r + 2], b3 = b[4 * r + 3];
                    out[(size_t)(4 * r + 0) * plane + k] = b0 - b2;
                    out[(size_t)(4 * r + 1) * plane + k] = b1 + b2;
                    out[(size_t)(4 * r + 2) * plane + k] = b2 - b1;
                    out[(size_t)(4 * r + 3) * plane + k] = b1 - b3;
                }
            }
        }
    }
}

void ec_wino23_output__ref(const ec_conv_geom *g, int cout, const float *m, int t0, int t1, const float *shift,
                           int act, float *y)
{
    const int tiles_w = (g->out_w + 1) / 2;
    const size_t plane = (size_t)(t1 - t0) * cout;  /* one xi of M */
    float o[4][WINO_CHUNK];                          /* the tile's 2x2 pixels, one channel chunk */
    for (int t = t0; t < t1; t++) {
        const int oy = 2 * (t / tiles_w), ox = 2 * (t % tiles_w);
        const int ny = g->out_h - oy < 2 ? 1 : 2, nx = g->out_w - ox < 2 ? 1 : 2;
        for (int c0 = 0; c0 < cout; c0 += WINO_CHUNK) {
            const int nc = cout - c0 < WINO_CHUNK ? cout - c0 : WINO_CHUNK;
            const float *restrict in = m + (size_t)(t - t0) * cout + c0;
            float *restrict o00 = o[0], *restrict o01 = o[1], *restrict o10 = o[2], *restrict o11 = o[3];
            for (int k = 0; k < nc; k++) {
                float a[8];
                for (int c = 0; c < 4; c++) {                 /* A^T M: rows */
                    const float m0 = in[(size_t)c * plane + k], m1 = in[(size_t)(4 + c) * plane + k];
                    const float m2 = in[(size_t)(8 + c) * plane + k], m3 = in[(size_t)(12 + c) * plane + k];
                    a[c] = m0 + m1 + m2;
                    a[4 + c] = m1 - m2 - m3;
                }
                const float s = shift ? shift[c0 + k] : 0.0f;
                o00[k] = (a[0] + a[1] + a[2]) + s;
                o01[k] = (a[1] - a[2] - a[3]) + s;
                o10[k] = (a[4] + a[5] + a[6]) + s;
                o11[k] = (a[5] - a[6] - a[7]) + s;
            }
            if (act != EC_ACT_LINEAR)
                for (int i = 0; i < 4; i++) ec_f32_act(o[i], o[i], 1, nc, act);
            float *y0 = y + ((size_t)oy * g->out_w + ox) * cout + c0;
            memcpy(y0, o00, (size_t)nc * sizeof *y0);
            if (nx > 1) memcpy(y0 + cout, o01, (size_t)nc * sizeof *y0);
            if (ny > 1) {
                float *y1 = y0 + (size_t)g->out_w * cout;
                memcpy(y1, o10, (size_t)nc * sizeof *y1);
                if (nx > 1) memcpy(y1 + cout, o11, (size_t)nc * sizeof *y1);
            }
        }
    }
}
