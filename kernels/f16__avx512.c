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

/* 1 if any of n float16 (f16) or float32 values has all exponent bits set:
 * 256 bytes per step, the compares OR'd into one mask; the tail is k-masked.
 * Reads only the n values' bytes. */
int ec_any_nonfinite__avx512(const void *p, size_t n, int f16)
{
    const unsigned char *b = p;
    const size_t bytes = n * (f16 ? 2 : 4);
    const __m512i e = f16 ? _mm512_set1_epi16(0x7c00) : _mm512_set1_epi32(0x7f800000);
#define EC_NF(v) (f16 ? (__mmask64)_mm512_cmpeq_epi16_mask(_mm512_and_si512(v, e), e) \
                      : (__mmask64)_mm512_cmpeq_epi32_mask(_mm512_and_si512(v, e), e))
    size_t i = 0;
    for (; i + 256 <= bytes; i += 256) {
        __mmask64 k = EC_NF(_mm512_loadu_si512(b + i)) | EC_NF(_mm512_loadu_si512(b + i + 64)) |
                      EC_NF(_mm512_loadu_si512(b + i + 128)) | EC_NF(_mm512_loadu_si512(b + i + 192));
        if (k) return 1;
    }
    for (; i < bytes; i += 64) {
        const size_t left = bytes - i < 64 ? bytes - i : 64;   /* a multiple of 2 or 4 */
        const __mmask64 m = left == 64 ? ~(__mmask64)0 : ((__mmask64)1 << left) - 1;
        if (EC_NF(_mm512_maskz_loadu_epi8(m, b + i))) return 1;   /* masked-off bytes read as 0 */
    }
#undef EC_NF
    return 0;
}
