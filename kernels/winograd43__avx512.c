/* winograd43__avx512.c - the Winograd F(4x4, 3x3) transforms (winograd43.c)
 * 16 channels at a time, AVX-512, the output's activation fused in registers.
 * The same operations in the same order as the scalar twins (every product
 * rounded before it is added; no FMA): bit-identical results. Any channel
 * count: the last 16-channel step runs under a k-mask. */
#include "kernels/vmath_avx512.h"

#define V_ADD _mm512_add_ps
#define V_SUB _mm512_sub_ps
#define V_MUL _mm512_mul_ps
#define V_C _mm512_set1_ps

/* b = B^T d (winograd43.c w43_bt) */
EC_V16_INLINE void w43z_bt(const __m512 d[6], __m512 b[6])
{
    const __m512 t0 = V_SUB(d[4], V_MUL(V_C(4.0f), d[2])), t1 = V_SUB(d[3], V_MUL(V_C(4.0f), d[1]));
    const __m512 t2 = V_SUB(d[4], d[2]), t3 = V_MUL(V_C(2.0f), V_SUB(d[3], d[1]));
    b[0] = V_ADD(t2, V_MUL(V_C(4.0f), V_SUB(d[0], d[2])));
    b[1] = V_ADD(t0, t1);
    b[2] = V_SUB(t0, t1);
    b[3] = V_ADD(t2, t3);
    b[4] = V_SUB(t2, t3);
    b[5] = V_ADD(V_SUB(d[5], d[3]), V_MUL(V_C(4.0f), V_SUB(d[1], d[3])));
}

/* u = G g (w43_g) */
EC_V16_INLINE void w43z_g(const __m512 g[3], __m512 u[6])
{
    const __m512 s = V_ADD(g[0], g[2]), q = V_ADD(g[0], V_MUL(V_C(4.0f), g[2])), h = V_MUL(V_C(2.0f), g[1]);
    u[0] = V_MUL(g[0], V_C(0.25f));
    u[1] = V_MUL(V_ADD(s, g[1]), V_C(-1.0f / 6));
    u[2] = V_MUL(V_SUB(s, g[1]), V_C(-1.0f / 6));
    u[3] = V_MUL(V_ADD(q, h), V_C(1.0f / 24));
    u[4] = V_MUL(V_SUB(q, h), V_C(1.0f / 24));
    u[5] = g[2];
}

/* o = A^T m (w43_at) */
EC_V16_INLINE void w43z_at(const __m512 m[6], __m512 o[4])
{
    const __m512 s1 = V_ADD(m[1], m[2]), d1 = V_SUB(m[1], m[2]), s2 = V_ADD(m[3], m[4]), d2 = V_SUB(m[3], m[4]);
    o[0] = V_ADD(V_ADD(m[0], s1), s2);
    o[1] = V_ADD(d1, V_MUL(V_C(2.0f), d2));
    o[2] = V_ADD(s1, V_MUL(V_C(4.0f), s2));
    o[3] = V_ADD(V_ADD(d1, V_MUL(V_C(8.0f), d2)), m[5]);
}

void ec_wino43_weights__avx512(const void *w, int w_f16, const float *scale, int cin, int cout, int ci0, int ci1,
                               size_t u_stride, float *u)
{
    for (int ci = ci0; ci < ci1; ci++)
        for (int co = 0; co < cout; co += 16) {
            const __mmask16 m = ec_v16_tail_mask(cout - co);
            __m512 gk[9], r[6][3];
            const __m512 sc = scale ? _mm512_maskz_loadu_ps(m, scale + co) : V_C(1.0f);
            for (int k = 0; k < 9; k++) {
                const size_t off = ((size_t)k * cin + ci) * cout + co;
                const __m512 wk = w_f16 ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)w + off))
                                        : _mm512_maskz_loadu_ps(m, (const float *)w + off);
                gk[k] = scale ? V_MUL(wk, sc) : wk;
            }
            for (int kx = 0; kx < 3; kx++) {
                const __m512 col[3] = {gk[kx], gk[3 + kx], gk[6 + kx]};
                __m512 rc[6];
                w43z_g(col, rc);
                for (int i = 0; i < 6; i++) r[i][kx] = rc[i];
            }
            for (int i = 0; i < 6; i++) {   /* 16 columns at co are one row of a packed panel */
                __m512 out[6];
                w43z_g(r[i], out);
                for (int j = 0; j < 6; j++) ec_v16_storem(u + ec_wino_u_at(6 * i + j, ci, co, cin, cout, u_stride), m, out[j]);
            }
        }
    ec_wino_u_pad(36, cin, cout, ci0, ci1, u_stride, u);
}

void ec_wino43_input__avx512(const ec_conv_geom *g, const float *x, int t0, int t1, float *v)
{
    const int cin = g->c, tiles_w = (g->out_w + 3) / 4;
    const size_t plane = (size_t)(t1 - t0) * cin;   /* one xi of V */
    for (int t = t0; t < t1; t++) {
        const int iy0 = 4 * (t / tiles_w) - g->pad_t, ix0 = 4 * (t % tiles_w) - g->pad_l;
        const float *d[36];
        ec_wino_patch(g, x, iy0, ix0, 6, 0, NULL, d);
        float *out = v + (size_t)(t - t0) * cin;
        for (int k = 0; k < cin; k += 16) {
            const __mmask16 m = ec_v16_tail_mask(cin - k);
            __m512 b[6][6];
            for (int c = 0; c < 6; c++) {             /* B^T d: columns */
                __m512 col[6], bc[6];
                for (int r = 0; r < 6; r++) col[r] = d[6 * r + c] ? ec_v16_loadm(d[6 * r + c] + k, m) : _mm512_setzero_ps();
                w43z_bt(col, bc);
                for (int r = 0; r < 6; r++) b[r][c] = bc[r];
            }
            for (int r = 0; r < 6; r++) {             /* (B^T d) B: rows */
                __m512 row[6];
                w43z_bt(b[r], row);
                for (int j = 0; j < 6; j++) ec_v16_storem(out + (size_t)(6 * r + j) * plane + k, m, row[j]);
            }
        }
    }
}

void ec_wino43_output__avx512(const ec_conv_geom *g, int cout, const float *mm, int t0, int t1, const float *shift,
                              int act, float *y)
{
    const int tiles_w = (g->out_w + 3) / 4;
    const size_t plane = (size_t)(t1 - t0) * cout;  /* one xi of M */
    for (int t = t0; t < t1; t++) {
        const int oy = 4 * (t / tiles_w), ox = 4 * (t % tiles_w);
        const int ny = g->out_h - oy < 4 ? g->out_h - oy : 4, nx = g->out_w - ox < 4 ? g->out_w - ox : 4;
        const float *in = mm + (size_t)(t - t0) * cout;
        float *y0 = y + ((size_t)oy * g->out_w + ox) * cout;
        for (int k = 0; k < cout; k += 16) {
            const __mmask16 m = ec_v16_tail_mask(cout - k);
            __m512 a[4][6];
            for (int c = 0; c < 6; c++) {             /* A^T M: columns */
                __m512 col[6], ac[4];
                for (int r = 0; r < 6; r++) col[r] = ec_v16_loadm(in + (size_t)(6 * r + c) * plane + k, m);
                w43z_at(col, ac);
                for (int r = 0; r < 4; r++) a[r][c] = ac[r];
            }
            const __m512 s = shift ? ec_v16_loadm(shift + k, m) : _mm512_setzero_ps();
            for (int r = 0; r < ny; r++) {            /* (A^T M) A: rows, the activation on each */
                __m512 o[4];
                w43z_at(a[r], o);
                for (int j = 0; j < 4; j++) o[j] = V_ADD(o[j], s);
                if (act != EC_ACT_LINEAR) ec_v16_act_n(o, 4, act);
                float *yr = y0 + (size_t)r * g->out_w * cout + k;
                for (int j = 0; j < nx; j++) ec_v16_storem(yr + (size_t)j * cout, m, o[j]);
            }
        }
    }
}
