/* winograd43__avx2.c - the Winograd F(4x4, 3x3) transforms (winograd43.c) 8
 * channels at a time, the output's activation fused in registers. The same
 * operations in the same order as the scalar twins: bit-identical results.
 * Channel counts are multiples of 8 (the dispatchers check). */
#include "kernels/vmath_avx2.h"

#define V_ADD _mm256_add_ps
#define V_SUB _mm256_sub_ps
#define V_MUL _mm256_mul_ps
#define V_C _mm256_set1_ps

EC_V8_INLINE void w43v_bt(const __m256 d[6], __m256 b[6])
{
    const __m256 t0 = V_SUB(d[4], V_MUL(V_C(4.0f), d[2])), t1 = V_SUB(d[3], V_MUL(V_C(4.0f), d[1]));
    const __m256 t2 = V_SUB(d[4], d[2]), t3 = V_MUL(V_C(2.0f), V_SUB(d[3], d[1]));
    b[0] = V_ADD(t2, V_MUL(V_C(4.0f), V_SUB(d[0], d[2])));
    b[1] = V_ADD(t0, t1);
    b[2] = V_SUB(t0, t1);
    b[3] = V_ADD(t2, t3);
    b[4] = V_SUB(t2, t3);
    b[5] = V_ADD(V_SUB(d[5], d[3]), V_MUL(V_C(4.0f), V_SUB(d[1], d[3])));
}

EC_V8_INLINE void w43v_g(const __m256 g[3], __m256 u[6])
{
    const __m256 s = V_ADD(g[0], g[2]), q = V_ADD(g[0], V_MUL(V_C(4.0f), g[2])), h = V_MUL(V_C(2.0f), g[1]);
    u[0] = V_MUL(g[0], V_C(0.25f));
    u[1] = V_MUL(V_ADD(s, g[1]), V_C(-1.0f / 6));
    u[2] = V_MUL(V_SUB(s, g[1]), V_C(-1.0f / 6));
    u[3] = V_MUL(V_ADD(q, h), V_C(1.0f / 24));
    u[4] = V_MUL(V_SUB(q, h), V_C(1.0f / 24));
    u[5] = g[2];
}

EC_V8_INLINE void w43v_at(const __m256 m[6], __m256 o[4])
{
    const __m256 s1 = V_ADD(m[1], m[2]), d1 = V_SUB(m[1], m[2]), s2 = V_ADD(m[3], m[4]), d2 = V_SUB(m[3], m[4]);
    o[0] = V_ADD(V_ADD(m[0], s1), s2);
    o[1] = V_ADD(d1, V_MUL(V_C(2.0f), d2));
    o[2] = V_ADD(s1, V_MUL(V_C(4.0f), s2));
    o[3] = V_ADD(V_ADD(d1, V_MUL(V_C(8.0f), d2)), m[5]);
}

void ec_wino43_weights__avx2(const void *w, int w_f16, const float *scale, int cin, int cout, int ci0, int ci1,
                             size_t u_stride, float *u)
{
    for (int ci = ci0; ci < ci1; ci++)
        for (int co = 0; co < cout; co += 8) {
            __m256 gk[9], r[6][3];
            const __m256 sc = scale ? _mm256_loadu_ps(scale + co) : V_C(1.0f);
            for (int k = 0; k < 9; k++) {
                const size_t off = ((size_t)k * cin + ci) * cout + co;
                const __m256 wk = w_f16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + off)))
                                        : _mm256_loadu_ps((const float *)w + off);
                gk[k] = scale ? V_MUL(wk, sc) : wk;
            }
            for (int kx = 0; kx < 3; kx++) {
                const __m256 col[3] = { gk[kx], gk[3 + kx], gk[6 + kx] };
                __m256 rc[6];
                w43v_g(col, rc);
                for (int i = 0; i < 6; i++) r[i][kx] = rc[i];
            }
            for (int i = 0; i < 6; i++) {   /* 8 columns at co stay contiguous in a 16-column panel */
                __m256 out[6];
                w43v_g(r[i], out);
                for (int j = 0; j < 6; j++) _mm256_storeu_ps(u + ec_wino_u_at(6 * i + j, ci, co, cin, cout, u_stride), out[j]);
            }
        }
    ec_wino_u_pad(36, cin, cout, ci0, ci1, u_stride, u);
}

void ec_wino43_input__avx2(const ec_conv_geom *g, const float *x, int t0, int t1, float *v)
{
    const int cin = g->c, tiles_w = (g->out_w + 3) / 4;
    const size_t plane = (size_t)(t1 - t0) * cin;   /* one xi of V */
    const __m256 zero = _mm256_setzero_ps();
    for (int t = t0; t < t1; t++) {
        const int iy0 = 4 * (t / tiles_w) - g->pad_t, ix0 = 4 * (t % tiles_w) - g->pad_l;
        const float *d[36];
        ec_wino_patch(g, x, iy0, ix0, 6, 0, NULL, d);
        float *out = v + (size_t)(t - t0) * cin;
        for (int k = 0; k < cin; k += 8) {
            __m256 b[6][6];
            for (int c = 0; c < 6; c++) {             /* B^T d: columns */
                __m256 col[6], bc[6];
                for (int r = 0; r < 6; r++) col[r] = d[6 * r + c] ? _mm256_loadu_ps(d[6 * r + c] + k) : zero;
                w43v_bt(col, bc);
                for (int r = 0; r < 6; r++) b[r][c] = bc[r];
            }
            for (int r = 0; r < 6; r++) {             /* (B^T d) B: rows */
                __m256 row[6];
                w43v_bt(b[r], row);
                for (int j = 0; j < 6; j++) _mm256_storeu_ps(out + (size_t)(6 * r + j) * plane + k, row[j]);
            }
        }
    }
}

void ec_wino43_output__avx2(const ec_conv_geom *g, int cout, const float *m, int t0, int t1, const float *shift,
                            int act, float *y)
{
    const int tiles_w = (g->out_w + 3) / 4;
    const size_t plane = (size_t)(t1 - t0) * cout;  /* one xi of M */
    for (int t = t0; t < t1; t++) {
        const int oy = 4 * (t / tiles_w), ox = 4 * (t % tiles_w);
        const int ny = g->out_h - oy < 4 ? g->out_h - oy : 4, nx = g->out_w - ox < 4 ? g->out_w - ox : 4;
        const float *in = m + (size_t)(t - t0) * cout;
        float *y0 = y + ((size_t)oy * g->out_w + ox) * cout;
        for (int k = 0; k < cout; k += 8) {
            __m256 a[4][6];
            for (int c = 0; c < 6; c++) {             /* A^T M: columns */
                __m256 col[6], ac[4];
                for (int r = 0; r < 6; r++) col[r] = _mm256_loadu_ps(in + (size_t)(6 * r + c) * plane + k);
                w43v_at(col, ac);
                for (int r = 0; r < 4; r++) a[r][c] = ac[r];
            }
            const __m256 s = shift ? _mm256_loadu_ps(shift + k) : _mm256_setzero_ps();
            for (int r = 0; r < ny; r++) {            /* (A^T M) A: rows, the activation on each */
                __m256 o[4];
                w43v_at(a[r], o);
                for (int j = 0; j < 4; j++) o[j] = V_ADD(o[j], s);
                if (act != EC_ACT_LINEAR) ec_v8_act_n(o, 4, act);
                float *yr = y0 + (size_t)r * g->out_w * cout + k;
                for (int j = 0; j < nx; j++) _mm256_storeu_ps(yr + (size_t)j * cout, o[j]);
            }
        }
    }
}
