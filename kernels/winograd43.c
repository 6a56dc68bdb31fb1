/* winograd43.c - 3x3 stride-1 convolution as Winograd F(4x4, 3x3).
 *
 * The larger sibling of winograd.c's F(2x2, 3x3): each 4x4 block of output
 * pixels comes from the 6x6 input patch under it with 36 elementwise products
 * per (input, output) channel pair instead of 144 multiply-adds (4x fewer; F(2x2)
 * saves 2.25x). Same algebra, Y = A^T [ (G g G^T) . (B^T d B) ] A, with (Lavin &
 * Gray 2016):
 *
 *   B^T = | 4  0 -5  0  1  0 |   G = |  1/4    0     0   |   A^T = | 1  1  1  1  1  0 |
 *         | 0 -4 -4  1  1  0 |       | -1/6  -1/6  -1/6  |         | 0  1 -1  2 -2  0 |
 *         | 0  4 -4 -1  1  0 |       | -1/6   1/6  -1/6  |         | 0  1  1  4  4  0 |
 *         | 0 -2 -1  2  1  0 |       |  1/24  1/12  1/6  |         | 0  1 -1  8 -8  1 |
 *         | 0  2 -1 -2  1  0 |       |  1/24 -1/12  1/6  |
 *         | 0  4  0 -5  0  1 |       |  0     0     1    |
 *
 * The larger coefficients cost accuracy: test_kernels measures the result
 * against the direct convolution (a few times F(2x2)'s error, still ~1e-6 of
 * the sum of |x w|). The multiplications by 2, 4 and 8 are exact.
 *
 * Layouts as in winograd.c with 36 positions: V [36][tiles][cin], M
 * [36][tiles][cout], U [36][cin][cout]; tiles t = ty * ceil(out_w / 4) + tx.
 * The 1-D transforms below are written out operation by operation; the AVX2
 * and AVX-512 twins (winograd43__avx2.c, __avx512.c) do the same operations in
 * the same order, 8 or 16 channels at a time, so their results are
 * bit-identical. */
#include <string.h>

#include "kernels/kernels.h"

#define W43_CHUNK 128           /* channels per pass over a tile */

static const float w43_zeros[W43_CHUNK];

/* b = B^T d */
static inline void w43_bt(const float d[6], float b[6])
{
    const float t0 = d[4] - 4.0f * d[2], t1 = d[3] - 4.0f * d[1];
    const float t2 = d[4] - d[2], t3 = 2.0f * (d[3] - d[1]);
    b[0] = t2 + 4.0f * (d[0] - d[2]);
    b[1] = t0 + t1;
    b[2] = t0 - t1;
    b[3] = t2 + t3;
    b[4] = t2 - t3;
    b[5] = (d[5] - d[3]) + 4.0f * (d[1] - d[3]);
}

/* u = G g; rows 3 and 4 as (g0 + 4 g2 +- 2 g1) / 24, so that no rounded product
 * feeds an add (a compiler may fuse those into an FMA in one twin only) */
static inline void w43_g(const float g[3], float u[6])
{
    const float s = g[0] + g[2], q = g[0] + 4.0f * g[2], h = 2.0f * g[1];
    u[0] = g[0] * 0.25f;
    u[1] = (s + g[1]) * (-1.0f / 6);
    u[2] = (s - g[1]) * (-1.0f / 6);
    u[3] = (q + h) * (1.0f / 24);
    u[4] = (q - h) * (1.0f / 24);
    u[5] = g[2];
}

/* o = A^T m */
static inline void w43_at(const float m[6], float o[4])
{
    const float s1 = m[1] + m[2], d1 = m[1] - m[2], s2 = m[3] + m[4], d2 = m[3] - m[4];
    o[0] = (m[0] + s1) + s2;
    o[1] = d1 + 2.0f * d2;
    o[2] = s1 + 4.0f * s2;
    o[3] = (d1 + 8.0f * d2) + m[5];
}

int ec_wino43_tiles(const ec_conv_geom *g) { return ((g->out_h + 3) / 4) * ((g->out_w + 3) / 4); }

void ec_wino43_weights__ref(const void *w, int w_f16, const float *scale, int cin, int cout, int ci0, int ci1,
                            size_t u_stride, float *u)
{
    for (int ci = ci0; ci < ci1; ci++)
        for (int co = 0; co < cout; co++) {
            float gk[9], r[6][3], col[3], out[6];
            for (int k = 0; k < 9; k++) {
                const size_t off = ((size_t)k * cin + ci) * cout + co;
                gk[k] = w_f16 ? ec_f16_to_f32(((const uint16_t *)w)[off]) : ((const float *)w)[off];
                if (scale) gk[k] *= scale[co];
            }
            for (int kx = 0; kx < 3; kx++) {          /* G g: columns */
                float rc[6];
                col[0] = gk[kx], col[1] = gk[3 + kx], col[2] = gk[6 + kx];
                w43_g(col, rc);
                for (int i = 0; i < 6; i++) r[i][kx] = rc[i];
            }
            for (int i = 0; i < 6; i++) {             /* (G g) G^T: rows */
                w43_g(r[i], out);
                for (int j = 0; j < 6; j++) u[ec_wino_u_at(6 * i + j, ci, co, cin, cout, u_stride)] = out[j];
            }
        }
    ec_wino_u_pad(36, cin, cout, ci0, ci1, u_stride, u);
}

void ec_wino43_input__ref(const ec_conv_geom *g, const float *x, int t0, int t1, float *v)
{
    const int cin = g->c, tiles_w = (g->out_w + 3) / 4;
    const size_t plane = (size_t)(t1 - t0) * cin;   /* one xi of V */
    for (int t = t0; t < t1; t++) {
        const int iy0 = 4 * (t / tiles_w) - g->pad_t, ix0 = 4 * (t % tiles_w) - g->pad_l;
        for (int c0 = 0; c0 < cin; c0 += W43_CHUNK) {
            const int nc = cin - c0 < W43_CHUNK ? cin - c0 : W43_CHUNK;
            const float *d[36];
            ec_wino_patch(g, x, iy0, ix0, 6, c0, w43_zeros, d);
            float *out = v + (size_t)(t - t0) * cin + c0;
            for (int k = 0; k < nc; k++) {
                float b[6][6], col[6], bc[6], row[6];
                for (int c = 0; c < 6; c++) {             /* B^T d: columns */
                    for (int r = 0; r < 6; r++) col[r] = d[6 * r + c][k];
                    w43_bt(col, bc);
                    for (int r = 0; r < 6; r++) b[r][c] = bc[r];
                }
                for (int r = 0; r < 6; r++) {             /* (B^T d) B: rows */
                    w43_bt(b[r], row);
                    for (int j = 0; j < 6; j++) out[(size_t)(6 * r + j) * plane + k] = row[j];
                }
            }
        }
    }
}

void ec_wino43_output__ref(const ec_conv_geom *g, int cout, const float *m, int t0, int t1, const float *shift,
                           int act, float *y)
{
    const int tiles_w = (g->out_w + 3) / 4;
    const size_t plane = (size_t)(t1 - t0) * cout;  /* one xi of M */
    float o[16][W43_CHUNK];                          /* the tile's 4x4 pixels, one channel chunk */
    for (int t = t0; t < t1; t++) {
        const int oy = 4 * (t / tiles_w), ox = 4 * (t % tiles_w);
        const int ny = g->out_h - oy < 4 ? g->out_h - oy : 4, nx = g->out_w - ox < 4 ? g->out_w - ox : 4;
        for (int c0 = 0; c0 < cout; c0 += W43_CHUNK) {
            const int nc = cout - c0 < W43_CHUNK ? cout - c0 : W43_CHUNK;
            const float *in = m + (size_t)(t - t0) * cout + c0;
            for (int k = 0; k < nc; k++) {
                float a[4][6], col[6], ac[4], row[4];
                for (int c = 0; c < 6; c++) {             /* A^T M: columns */
                    for (int r = 0; r < 6; r++) col[r] = in[(size_t)(6 * r + c) * plane + k];
                    w43_at(col, ac);
                    for (int r = 0; r < 4; r++) a[r][c] = ac[r];
                }
                const float s = shift ? shift[c0 + k] : 0.0f;
                for (int r = 0; r < 4; r++) {             /* (A^T M) A: rows */
                    w43_at(a[r], row);
                    for (int j = 0; j < 4; j++) o[4 * r + j][k] = row[j] + s;
                }
            }
            if (act != EC_ACT_LINEAR)
                for (int i = 0; i < 16; i++) ec_f32_act(o[i], o[i], 1, nc, act);
            for (int r = 0; r < ny; r++)
                for (int j = 0; j < nx; j++)
                    memcpy(y + ((size_t)(oy + r) * g->out_w + ox + j) * cout + c0, o[4 * r + j],
                           (size_t)nc * sizeof *y);
        }
    }
}

void ec_wino43_weights(const void *w, int w_f16, const float *scale, int cin, int cout, int ci0, int ci1,
                       size_t u_stride, float *u)
{
    if (ec_cpu_has_avx512()) ec_wino43_weights__avx512(w, w_f16, scale, cin, cout, ci0, ci1, u_stride, u);
    else if (ec_cpu_has_avx2() && cout % 8 == 0) ec_wino43_weights__avx2(w, w_f16, scale, cin, cout, ci0, ci1, u_stride, u);
    else ec_wino43_weights__ref(w, w_f16, scale, cin, cout, ci0, ci1, u_stride, u);
}

void ec_wino43_input(const ec_conv_geom *g, const float *x, int t0, int t1, float *v)
{
    if (ec_cpu_has_avx512()) ec_wino43_input__avx512(g, x, t0, t1, v);
    else if (ec_cpu_has_avx2() && g->c % 8 == 0) ec_wino43_input__avx2(g, x, t0, t1, v);
    else ec_wino43_input__ref(g, x, t0, t1, v);
}

void ec_wino43_output(const ec_conv_geom *g, int cout, const float *m, int t0, int t1, const float *shift, int act,
                      float *y)
{
    if (ec_cpu_has_avx512()) ec_wino43_output__avx512(g, cout, m, t0, t1, shift, act, y);
    else if (ec_cpu_has_avx2() && cout % 8 == 0) ec_wino43_output__avx2(g, cout, m, t0, t1, shift, act, y);
    else ec_wino43_output__ref(g, cout, m, t0, t1, shift, act, y);
}
