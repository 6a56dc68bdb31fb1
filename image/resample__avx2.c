/* resample__avx2.c - the horizontal pass with AVX2 (resample_kernels.h).
 *
 * The row is first split into one plane per channel, so each output sample is
 * a dot product of contiguous bytes with contiguous weights: 16 taps per step,
 * bytes widened to int16, times the two int16 halves of the weights (vpmaddwd:
 * pairs of products summed into int32 lanes). Lanes wrap modulo 2^32 (vector
 * adds do), and hi * 4096 + lo is taken modulo 2^32 too: the true sum fits
 * int32 (resample.c checks the weights), so the wrapped result is exact.
 * Taps past a window have weight 0; the planes are padded so the last 16-tap
 * step of a window at the row's end reads zeros, not past the buffer.
 */
#include <immintrin.h>
#include <string.h>

#include "resample_kernels.h"

#define PAD 32

static inline uint32_t hsum8(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return (uint32_t)_mm_cvtsi128_si32(s);
}

static inline uint8_t clip8(uint32_t sum)
{
    /* the wrapped sum, back to the int32 it is */
    int32_t v = (int32_t)(sum + (1u << (EC_RS_FRAC_BITS - 1))) >> EC_RS_FRAC_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Forced inline per channel count: the accumulators stay in registers. */
__attribute__((always_inline))
static inline void h_pass(const ec_rs_hpass *p, const uint8_t *planes, size_t pstride, uint8_t *out, const int C)
{
    for (int x = 0; x < p->out_w; x++) {
        int lo = p->span[2 * x], n = p->span[2 * x + 1];
        const int16_t *wh = p->wh + (size_t)x * p->taps16, *wl = p->wl + (size_t)x * p->taps16;
        __m256i aH[4], aL[4];
        for (int c = 0; c < C; c++) aH[c] = aL[c] = _mm256_setzero_si256();
        for (int i = 0; i < n; i += 16) {
            __m256i h = _mm256_loadu_si256((const __m256i *)(wh + i));
            __m256i l = _mm256_loadu_si256((const __m256i *)(wl + i));
            for (int c = 0; c < C; c++) {
                __m256i px = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(planes + c * pstride + lo + i)));
                aH[c] = _mm256_add_epi32(aH[c], _mm256_madd_epi16(px, h));
                aL[c] = _mm256_add_epi32(aL[c], _mm256_madd_epi16(px, l));
            }
        }
        /* hi * 4096 + lo lane by lane (modulo 2^32, like the sums), one reduction */
        for (int c = 0; c < C; c++)
            out[x * C + c] = clip8(hsum8(_mm256_add_epi32(_mm256_slli_epi32(aH[c], EC_RS_SPLIT_BITS), aL[c])));
    }
}

size_t ec_u8_resample_h_scratch_bytes(int in_w, int channels)
{
    return (size_t)channels * ((size_t)in_w + PAD);
}

void ec_u8_resample_h__avx2(const ec_rs_hpass *p, const uint8_t *in, uint8_t *out, uint8_t *scratch)
{
    const int C = p->channels, W = p->in_w;
    size_t pstride = (size_t)W + PAD;
    /* planes: [C][W + PAD], the padding zero */
    if (C == 3) {
        /* 16 pixels (48 bytes) per step: each plane's 16 bytes gathered from
         * the three 16-byte loads by byte shuffles (0x80 = zero), then OR'd. */
        static const int8_t m[3][3][16] = {
            {{0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1},
             {-1, -1, -1, -1, -1, -1, 2, 5, 8, 11, 14, -1, -1, -1, -1, -1},
             {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 1, 4, 7, 10, 13}},
            {{1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1},
             {-1, -1, -1, -1, -1, 0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1},
             {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 2, 5, 8, 11, 14}},
            {{2, 5, 8, 11, 14, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1},
             {-1, -1, -1, -1, -1, 1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1},
             {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 3, 6, 9, 12, 15}},
        };
        __m128i mk[3][3];
        for (int c = 0; c < 3; c++)
            for (int k = 0; k < 3; k++) mk[c][k] = _mm_loadu_si128((const __m128i *)m[c][k]);
        int x = 0;
        for (; x + 16 <= W; x += 16) {
            const uint8_t *s = in + 3 * (size_t)x;
            __m128i a = _mm_loadu_si128((const __m128i *)s), b = _mm_loadu_si128((const __m128i *)(s + 16)),
                    d = _mm_loadu_si128((const __m128i *)(s + 32));
            for (int c = 0; c < 3; c++) {
                __m128i v = _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(a, mk[c][0]), _mm_shuffle_epi8(b, mk[c][1])),
                                         _mm_shuffle_epi8(d, mk[c][2]));
                _mm_storeu_si128((__m128i *)(scratch + c * pstride + x), v);
            }
        }
        for (; x < W; x++)
            for (int c = 0; c < 3; c++) scratch[c * pstride + x] = in[3 * (size_t)x + c];
    } else {
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++) scratch[c * pstride + x] = in[(size_t)x * C + c];
    }
    for (int c = 0; c < C; c++) memset(scratch + c * pstride + W, 0, PAD);

    switch (C) {
    case 1: h_pass(p, scratch, pstride, out, 1); break;
    case 2: h_pass(p, scratch, pstride, out, 2); break;
    case 3: h_pass(p, scratch, pstride, out, 3); break;
    default: h_pass(p, scratch, pstride, out, 4); break;
    }
}

/* Vertical: 32 columns per step, each tap's row widened to int32 and
 * multiplied by its weight (vpmulld), the sums shifted, saturated to int16,
 * then to uint8 (values after the shift are within -512..511: the saturating
 * packs are the clip). */
void ec_u8_resample_v__avx2(const uint8_t *const *rows, const int32_t *w, int n, uint8_t *out, size_t len)
{
    const __m256i half = _mm256_set1_epi32(1 << (EC_RS_FRAC_BITS - 1));
    size_t x0 = 0;
    for (; x0 + 32 <= len; x0 += 32) {
        __m256i a0 = half, a1 = half, a2 = half, a3 = half;
        for (int i = 0; i < n; i++) {
            const uint8_t *r = rows[i] + x0;
            __m256i wi = _mm256_set1_epi32(w[i]);
            a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)r)), wi));
            a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(r + 8))), wi));
            a2 = _mm256_add_epi32(a2, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(r + 16))), wi));
            a3 = _mm256_add_epi32(a3, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(r + 24))), wi));
        }
        a0 = _mm256_srai_epi32(a0, EC_RS_FRAC_BITS), a1 = _mm256_srai_epi32(a1, EC_RS_FRAC_BITS);
        a2 = _mm256_srai_epi32(a2, EC_RS_FRAC_BITS), a3 = _mm256_srai_epi32(a3, EC_RS_FRAC_BITS);
        /* packs work per 128-bit lane: reorder the 64-bit quarters after */
        __m256i p01 = _mm256_packs_epi32(a0, a1), p23 = _mm256_packs_epi32(a2, a3);
        __m256i b = _mm256_packus_epi16(p01, p23);
        b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(out + x0), b);
    }
    for (; x0 < len; x0++) {
        int32_t acc = 1 << (EC_RS_FRAC_BITS - 1);
        for (int i = 0; i < n; i++) acc += (int32_t)rows[i][x0] * w[i];
        int32_t v = acc >> EC_RS_FRAC_BITS;
        out[x0] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}
