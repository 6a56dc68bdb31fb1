/* im2col__avx2.c - col2im (the k x k conv's data gradient, gather form), AVX2.
 *
 * Per dx row the valid (ky, oy) pairs are listed once; per pixel the (kx, ox)
 * taps; then every 8-channel tile adds its taps' dcol vectors in (ky, kx) order
 * starting from 0, the reference's exact operation sequence (adds only, no FMA),
 * so the results are bit-identical to ec_f32_col2im__ref. Memory-bound: the
 * point is full-width loads. */
#include "kernels/vmath_avx2.h"

void ec_f32_col2im__avx2(const ec_conv_geom *g, const float *restrict dcol, int oy0, float *restrict dx,
                         int y0, int y1)
{
    enum { MAXT = 64 };   /* taps per pixel (8x8); larger kernels take the reference */
    if (g->kh > MAXT || g->kh * g->kw > MAXT) {
        ec_f32_col2im__ref(g, dcol, oy0, dx, y0, y1);
        return;
    }
    const int c = g->c, cv = c & ~7;
    const __m256i tm = ec_v8_tail_mask(c - cv);
    const size_t row_len = (size_t)g->kh * g->kw * c;
    int kys[MAXT], oys[MAXT];
    const float *src[MAXT];
    for (int iy = y0; iy < y1; iy++) {
        int ny = 0;
        for (int ky = 0; ky < g->kh; ky++) {
            const int ty = iy + g->pad_t - ky;
            if (ty < 0 || ty % g->sh || ty / g->sh >= g->out_h) continue;
            kys[ny] = ky;
            oys[ny++] = ty / g->sh - oy0;
        }
        for (int ix = 0; ix < g->in_w; ix++) {
            int nt = 0;
            for (int t = 0; t < ny; t++)
                for (int kx = 0; kx < g->kw; kx++) {
                    const int tx = ix + g->pad_l - kx;
                    if (tx < 0 || tx % g->sw || tx / g->sw >= g->out_w) continue;
                    src[nt++] = dcol + ((size_t)oys[t] * g->out_w + tx / g->sw) * row_len +
                                ((size_t)kys[t] * g->kw + kx) * c;
                }
            float *d = dx + ((size_t)iy * g->in_w + ix) * c;
            int j = 0;
            for (; j + 16 <= cv; j += 16) {
                __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
                for (int t = 0; t < nt; t++) {
                    a0 = _mm256_add_ps(a0, _mm256_loadu_ps(src[t] + j));
                    a1 = _mm256_add_ps(a1, _mm256_loadu_ps(src[t] + j + 8));
                }
                _mm256_storeu_ps(d + j, a0);
                _mm256_storeu_ps(d + j + 8, a1);
            }
            for (; j < cv; j += 8) {
                __m256 a = _mm256_setzero_ps();
                for (int t = 0; t < nt; t++) a = _mm256_add_ps(a, _mm256_loadu_ps(src[t] + j));
                _mm256_storeu_ps(d + j, a);
            }
            if (cv < c) {
                __m256 a = _mm256_setzero_ps();
                for (int t = 0; t < nt; t++) a = _mm256_add_ps(a, _mm256_maskload_ps(src[t] + cv, tm));
                _mm256_maskstore_ps(d + cv, tm, a);
            }
        }
    }
}
