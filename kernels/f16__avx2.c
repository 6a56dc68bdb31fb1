/* f16__avx2.c - bulk half -> float with F16C (compiled with -mavx2 -mfma -mf16c). */
#include <immintrin.h>

#include "kernels/kernels.h"

/* src: n halves -> dst: n floats. VCVTPH2PS is exact (every half is a float),
 * handles subnormals regardless of DAZ and quiets NaNs like ec_f16_to_f32. */
void ec_f16_to_f32_n__avx2(const uint16_t *restrict src, float *restrict dst, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i h0 = _mm_loadu_si128((const __m128i *)(src + i));
        __m128i h1 = _mm_loadu_si128((const __m128i *)(src + i + 8));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h0));
        _mm256_storeu_ps(dst + i + 8, _mm256_cvtph_ps(h1));
    }
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    if (i < n) {
        /* Tail through a zero-padded stack copy: no read past src + n. */
        uint16_t hb[8] = {0};
        float fb[8];
        for (size_t j = 0; j < n - i; j++) hb[j] = src[i + j];
        _mm256_storeu_ps(fb, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)hb)));
        for (size_t j = 0; j < n - i; j++) dst[i + j] = fb[j];
    }
}

/* src: (rows, cols) halves -> dst: (rows, cols) floats, column j times scale[j].
 * The half -> float step is exact, so the one rounding is the product's, as in
 * the __ref (no FMA involved). The column tail goes through a masked vector. */
void ec_f16_to_f32_scale_cols__avx2(const uint16_t *restrict src, float *restrict dst, size_t rows, int cols,
                                    const float *restrict scale)
{
    if (!scale) {
        ec_f16_to_f32_n__avx2(src, dst, rows * (size_t)cols);
        return;
    }
    const int cv = cols & ~7;
    uint32_t mbits[8];
    for (int j = 0; j < 8; j++) mbits[j] = j < cols - cv ? 0xffffffffu : 0;
    const __m256i tm = _mm256_loadu_si256((const __m256i *)mbits);
    const __m256 st = _mm256_maskload_ps(scale + cv, tm);
    for (size_t r = 0; r < rows; r++) {
        const uint16_t *s = src + r * cols;   /* row r: cols halves */
        float *d = dst + r * cols;
        int j = 0;
        for (; j < cv; j += 8)
            _mm256_storeu_ps(d + j, _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + j))),
                                                  _mm256_loadu_ps(scale + j)));
        if (cv < cols) {
            uint16_t hb[8] = {0};   /* no read past the row's last half */
            for (int k = 0; k < cols - cv; k++) hb[k] = s[cv + k];
            _mm256_maskstore_ps(d + cv, tm, _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)hb)), st));
        }
    }
}

/* src: n floats -> dst: n halves, round to nearest even (VCVTPS2PH with an
 * explicit rounding immediate, so MXCSR's mode does not matter). NaNs come out
 * quiet with their top payload bits, like ec_f32_to_f16. */
void ec_f32_to_f16_n__avx2(const float *restrict src, uint16_t *restrict dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = ec_f32_to_f16(src[i]);
}

/* 1 if any of n float16 (f16) or float32 values has all exponent bits set:
 * 128 bytes per step, the compares OR'd; the tail (under 32 bytes) scalar.
 * Reads only the n values' bytes. */
int ec_any_nonfinite__avx2(const void *p, size_t n, int f16)
{
    const unsigned char *b = p;
    const size_t bytes = n * (f16 ? 2 : 4);
    const __m256i e = f16 ? _mm256_set1_epi16(0x7c00) : _mm256_set1_epi32(0x7f800000);
#define EC_NF(v) (f16 ? _mm256_cmpeq_epi16(_mm256_and_si256(v, e), e) : _mm256_cmpeq_epi32(_mm256_and_si256(v, e), e))
    size_t i = 0;
    for (; i + 128 <= bytes; i += 128) {
        __m256i k = _mm256_or_si256(
            _mm256_or_si256(EC_NF(_mm256_loadu_si256((const __m256i *)(b + i))),
                            EC_NF(_mm256_loadu_si256((const __m256i *)(b + i + 32)))),
            _mm256_or_si256(EC_NF(_mm256_loadu_si256((const __m256i *)(b + i + 64))),
                            EC_NF(_mm256_loadu_si256((const __m256i *)(b + i + 96)))));
        if (!_mm256_testz_si256(k, k)) return 1;
    }
    for (; i + 32 <= bytes; i += 32) {
        __m256i k = EC_NF(_mm256_loadu_si256((const __m256i *)(b + i)));
        if (!_mm256_testz_si256(k, k)) return 1;
    }
#undef EC_NF
    return ec_any_nonfinite__ref(b + i, (bytes - i) / (f16 ? 2 : 4), f16);
}
