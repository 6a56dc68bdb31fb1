/* f16__avx512.c - bulk half <-> float, AVX-512 (VCVTPH2PS / VCVTPS2PH on zmm).
 * Exact and bit-identical to the scalar f16.c (the conversions are exact, or
 * round to nearest even by an explicit immediate); the tails are k-masked
 * loads and stores, which never touch memory past the end. */
#include "kernels/vmath_avx512.h"

/* src: n halves -> dst: n floats. */
void ec_f16_to_f32_n__avx512(const uint16_t *restrict src, float *restrict dst, size_t n)
{
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
        _mm512_storeu_ps(dst + i + 16, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i + 16))));
    }
    for (; i < n; i += 16) {
        const __mmask16 m = ec_v16_tail_mask(n - i < 16 ? (int)(n - i) : 16);
        _mm512_mask_storeu_ps(dst + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, src + i)));
    }
}

/* src: (rows, cols) halves -> dst: (rows, cols) floats, column j times
 * scale[j]: the widening is exact, so the one rounding is the product's, as in
 * the __ref. */
void ec_f16_to_f32_scale_cols__avx512(const uint16_t *restrict src, float *restrict dst, size_t rows, int cols,
                                      const float *restrict scale)
{
    if (!scale) {
        ec_f16_to_f32_n__avx512(src, dst, rows * (size_t)cols);
        return;
    }
    for (size_t r = 0; r < rows; r++) {
        const uint16_t *s = src + r * cols;   /* row r: cols halves */
        float *d = dst + r * cols;
        for (int j = 0; j < cols; j += 16) {
            const __mmask16 m = ec_v16_tail_mask(cols - j);
            _mm512_mask_storeu_ps(d + j, m, _mm512_mul_ps(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, s + j)),
                                                          _mm512_maskz_loadu_ps(m, scale + j)));
        }
    }
}

/* src: n floats -> dst: n halves, round to nearest even whatever MXCSR says;
 * NaNs come out quiet with their top payload bits, like ec_f32_to_f16. */
void ec_f32_to_f16_n__avx512(const float *restrict src, uint16_t *restrict dst, size_t n)
{
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = ec_v16_tail_mask(n - i < 16 ? (int)(n - i) : 16);
        _mm256_mask_storeu_epi16(dst + i, m, _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, src + i), _MM_FROUND_TO_NEAREST_INT));
    }
}
