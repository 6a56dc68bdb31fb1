/* winograd__avx512.c - the Winograd F(2x2, 3x3) transforms (winograd.c) 16
 * channels at a time, AVX-512, the output's activation fused in registers.
 * The same operations in the same order as the scalar twins (no FMA: every
 * product is rounded before it is added, as there), so the results are
 * bit-identical to them. Any channel count: the last 16-channel step of a
 * pixel runs under a k-mask. */
#include "kernels/vmath_avx512.h"

void ec_wino23_weights__avx512(const void *w, int w_f16, const float *scale, int cin, int cout, int ci0, int ci1,
                               size_t u_stride, float *u)
{
    const __m512 half = _mm512_set1_ps(0.5f);
    for (int ci = ci0; ci < ci1; ci++)
        for (int co = 0; co < cout; co += 16) {
            /* 16 columns at co (a multiple of 16) are one whole row of a packed panel */
            const __mmask16 m = ec_v16_tail_mask(cout - co);
            __m512 gk[9];
            const __m512 sc = scale ? _mm512_maskz_loadu_ps(m, scale + co) : _mm512_set1_ps(1.0f);
            for (int k = 0; k < 9; k++) {
                const size_t off = ((size_t)k * cin + ci) * cout + co;
                const __m512 wk = w_f16 ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)w + off))
                                        : _mm512_maskz_loadu_ps(m, (const float *)w + off);
                gk[k] = scale ? _mm512_mul_ps(wk, sc) : wk;
            }
            __m512 rows[4][3];
            for (int kx = 0; kx < 3; kx++) {              /* G g: 4 x 3 */
                const __m512 g0 = gk[kx], g1 = gk[3 + kx], g2 = gk[6 + kx];
                rows[0][kx] = g0;
                rows[1][kx] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(g0, g1), g2));
                rows[2][kx] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(g0, g1), g2));
                rows[3][kx] = g2;
            }
            for (int r = 0; r < 4; r++) {                /* (G g) G^T */
                const __m512 x = rows[r][0], y = rows[r][1], z = rows[r][2];
                ec_v16_storem(u + ec_wino_u_at(4 * r + 0, ci, co, cin, cout, u_stride), m, x);
                ec_v16_storem(u + ec_wino_u_at(4 * r + 1, ci, co, cin, cout, u_stride), m,
                              _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(x, y), z)));
                ec_v16_storem(u + ec_wino_u_at(4 * r + 2, ci, co, cin, cout, u_stride), m,
                              _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(x, y), z)));
                ec_v16_storem(u + ec_wino_u_at(4 * r + 3, ci, co, cin, cout, u_stride), m, z);
            }
        }
    ec_wino_u_pad(16, cin, cout, ci0, ci1, u_stride, u);
}

void ec_wino23_input__avx512(const ec_conv_geom *g, const float *x, int t0, int t1, float *v)
{
    const int cin = g->c, tiles_w = (g->out_w + 1) / 2;
    const size_t plane = (size_t)(t1 - t0) * cin;   /* one xi of V */
    for (int t = t0; t < t1; t++) {
        const int iy0 = 2 * (t / tiles_w) - g->pad_t, ix0 = 2 * (t % tiles_w) - g->pad_l;
        const float *d[16];
        ec_wino_patch(g, x, iy0, ix0, 4, 0, NULL, d);
        float *out = v + (size_t)(t - t0) * cin;
        for (int k = 0; k < cin; k += 16) {
            const __mmask16 m = ec_v16_tail_mask(cin - k);
            __m512 b[16];
            for (int c = 0; c < 4; c++) {                     /* B^T d: rows */
                const __m512 d0 = d[c] ? ec_v16_loadm(d[c] + k, m) : _mm512_setzero_ps();
                const __m512 d1 = d[4 + c] ? ec_v16_loadm(d[4 + c] + k, m) : _mm512_setzero_ps();
                const __m512 d2 = d[8 + c] ? ec_v16_loadm(d[8 + c] + k, m) : _mm512_setzero_ps();
                const __m512 d3 = d[12 + c] ? ec_v16_loadm(d[12 + c] + k, m) : _mm512_setzero_ps();
                b[c] = _mm512_sub_ps(d0, d2);
                b[4 + c] = _mm512_add_ps(d1, d2);
                b[8 + c] = _mm512_sub_ps(d2, d1);
                b[12 + c] = _mm512_sub_ps(d1, d3);
            }
            for (int r = 0; r < 4; r++) {                     /* (B^T d) B: columns */
                const __m512 b0 = b[4 * r], b1 = b[4 * r + 1], b2 = b[4 * r + 2], b3 = b[4 * r + 3];
                ec_v16_storem(out + (size_t)(4 * r + 0) * plane + k, m, _mm512_sub_ps(b0, b2));
                ec_v16_storem(out + (size_t)(4 * r + 1) * plane + k, m, _mm512_add_ps(b1, b2));
                ec_v16_storem(out + (size_t)(4 * r + 2) * plane + k, m, _mm512_sub_ps(b2, b1));
                ec_v16_storem(out + (size_t)(4 * r + 3) * plane + k, m, _mm512_sub_ps(b1, b3));
            }
        }
    }
}

void ec_wino23_output__avx512(const ec_conv_geom *g, int cout, const float *mm, int t0, int t1, const float *shift,
                              int act, float *y)
{
    const int tiles_w = (g->out_w + 1) / 2;
    const size_t plane = (size_t)(t1 - t0) * cout;  /* one xi of M */
    for (int t = t0; t < t1; t++) {
        const int oy = 2 * (t / tiles_w), ox = 2 * (t % tiles_w);
        const int ny = g->out_h - oy < 2 ? 1 : 2, nx = g->out_w - ox < 2 ? 1 : 2;
        const float *in = mm + (size_t)(t - t0) * cout;
        float *y0 = y + ((size_t)oy * g->out_w + ox) * cout, *y1 = y0 + (size_t)g->out_w * cout;
        for (int k = 0; k < cout; k += 16) {
            const __mmask16 m = ec_v16_tail_mask(cout - k);
            __m512 a[8];
            for (int c = 0; c < 4; c++) {                     /* A^T M: rows */
                const __m512 m0 = ec_v16_loadm(in + (size_t)c * plane + k, m);
                const __m512 m1 = ec_v16_loadm(in + (size_t)(4 + c) * plane + k, m);
                const __m512 m2 = ec_v16_loadm(in + (size_t)(8 + c) * plane + k, m);
                const __m512 m3 = ec_v16_loadm(in + (size_t)(12 + c) * plane + k, m);
                a[c] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
                a[4 + c] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
            }
            const __m512 s = shift ? ec_v16_loadm(shift + k, m) : _mm512_setzero_ps();
            __m512 o[4];
            o[0] = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a[0], a[1]), a[2]), s);
            o[1] = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(a[1], a[2]), a[3]), s);
            o[2] = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a[4], a[5]), a[6]), s);
            o[3] = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(a[5], a[6]), a[7]), s);
            if (act != EC_ACT_LINEAR) ec_v16_act_n(o, 4, act);
            ec_v16_storem(y0 + k, m, o[0]);
            if (nx > 1) ec_v16_storem(y0 + cout + k, m, o[1]);
            if (ny > 1) {
                ec_v16_storem(y1 + k, m, o[2]);
                if (nx > 1) ec_v16_storem(y1 + cout + k, m, o[3]);
            }
        }
    }
}
