/* vmath_avx2.h - 8-lane float math shared by the AVX2 kernels.
 *
 * Private to kernels/: include only from files built with -mavx2 -mfma (the
 * kernels/<name>__avx2.c files). Everything is static inline so each kernel gets
 * the activation code fused into its own loop, with no per-element calls.
 *
 * Accuracy: exp/expm1 are range-reduced polynomials with < 1 ulp truncation
 * error; sigmoid, swish and tanh stay within ~2 ulp of the correctly rounded
 * value over the whole float range (tests/test_kernels.c measures it against
 * double-precision libm). Results smaller than FLT_MIN flush to 0, as TensorFlow's
 * CPU kernels do (they run with FTZ/DAZ set) - and denormals fed to the next
 * GEMM cost 10-100x on many cores. NaN inputs give NaN outputs. */
#ifndef EFFCAM_VMATH_AVX2_H
#define EFFCAM_VMATH_AVX2_H

#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "kernels/kernels.h"

#define EC_V8_INLINE static inline __attribute__((always_inline))

/* Lane mask with the first n (0..8) lanes set, for channel tails. */
EC_V8_INLINE __m256i ec_v8_tail_mask(int n)
{
    static const int32_t tab[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(tab + 8 - n));
}

EC_V8_INLINE float ec_v8_hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

EC_V8_INLINE float ec_v8_hmax(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* x = n * ln2 + r with n integral and |r| <= ~ln2/2; returns n, writes r.
 * ln2 is split Cody-Waite style: ln2_hi = 0.693359375 has only 9 significant
 * bits, so n * ln2_hi is exact for |n| < 2^15 and x - n * ln2_hi loses nothing;
 * ln2_lo = ln2 - ln2_hi then adds the remaining bits. */
EC_V8_INLINE __m256 ec_v8_exp_reduce(__m256 x, __m256 *r)
{
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 t = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    *r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), t);
    return n;
}

/* 2^n for integral n in [-126, 127]: build the exponent field directly. */
EC_V8_INLINE __m256 ec_v8_pow2i(__m256 n)
{
    const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
}

/* e^x for x <= 0 (all callers pass -|z| or z - max). Taylor to degree 7 on
 * |r| <= 0.347: truncation r^8/8! < 6e-9, under 0.05 ulp. Results below FLT_MIN
 * (x < ln FLT_MIN) flush to 0; that mask also discards the garbage exponent that
 * very negative or infinite x would build. NaN fails the compare and survives. */
EC_V8_INLINE __m256 ec_v8_exp_le0(__m256 x)
{
    __m256 r;
    const __m256 n = ec_v8_exp_reduce(x, &r);
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256 y = _mm256_mul_ps(p, ec_v8_pow2i(n));
    const __m256 tiny = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3365447f), _CMP_LT_OQ);
    return _mm256_andnot_ps(tiny, y);
}

/* e^x - 1 for x <= 0 without the cancellation of exp(x) - 1 near 0 (tanh needs
 * it for small |x|). expm1(x) = 2^n * expm1(r) + (2^n - 1): for n = 0 that is
 * the polynomial itself; 2^n - 1 is exact for n >= -24 and rounds to -1 below,
 * where the result is -1 to float precision anyway. expm1(r) = r + r^2 * P(r),
 * Taylor to degree 8 (truncation < 1e-9 relative). */
EC_V8_INLINE __m256 ec_v8_expm1_le0(__m256 x)
{
    /* max(lo, x), not max(x, lo): MAXPS returns its second operand when either
     * is NaN, so this order keeps NaN. Below -87, expm1 is -1 in float. */
    x = _mm256_max_ps(_mm256_set1_ps(-87.0f), x);
    __m256 r;
    const __m256 n = ec_v8_exp_reduce(x, &r);
    __m256 p = _mm256_set1_ps(1.0f / 40320);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 5040));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    const __m256 q = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
    const __m256 s = ec_v8_pow2i(n);
    return _mm256_fmadd_ps(s, q, _mm256_sub_ps(s, _mm256_set1_ps(1.0f)));
}

/* sigmoid(x) = 1 / (1 + e^-x), evaluated with e = e^-|x| <= 1 so nothing
 * overflows: x >= 0 -> 1 / (1 + e); x < 0 -> e / (1 + e), which keeps full
 * relative accuracy for tiny outputs (1 - sigmoid(|x|) would cancel). The
 * division is a reciprocal estimate plus one Newton step (the denominator is in
 * [1, 2]): ~2 ulp instead of ~1.5 for a true division, which costs ~7 cycles
 * per vector on this path's hottest loop (depthwise conv + swish). */
EC_V8_INLINE __m256 ec_v8_sigmoid(__m256 x)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 e = ec_v8_exp_le0(_mm256_or_ps(x, sign));          /* e^-|x| */
    const __m256 num = _mm256_blendv_ps(_mm256_set1_ps(1.0f), e, x);  /* picks e where x < 0 (sign bit) */
    const __m256 den = _mm256_add_ps(_mm256_set1_ps(1.0f), e);    /* in [1, 2] */
    const __m256 r0 = _mm256_rcp_ps(den);
    const __m256 r1 = _mm256_fmadd_ps(r0, _mm256_fnmadd_ps(den, r0, _mm256_set1_ps(1.0f)), r0);
    return _mm256_mul_ps(num, r1);
}

/* swish(x) = x * sigmoid(x); finite for every finite x (no e^|x| anywhere). */
EC_V8_INLINE __m256 ec_v8_swish(__m256 x) { return _mm256_mul_ps(x, ec_v8_sigmoid(x)); }

/* tanh|x| = -expm1(-2|x|) / (2 + expm1(-2|x|)), then the sign of x is put back
 * (so tanh(-0) = -0). expm1 keeps small |x| accurate where 1 - e^-2|x| cancels. */
EC_V8_INLINE __m256 ec_v8_tanh(__m256 x)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 ax = _mm256_andnot_ps(sign, x);
    const __m256 em = ec_v8_expm1_le0(_mm256_mul_ps(_mm256_set1_ps(-2.0f), ax));
    const __m256 t = _mm256_div_ps(_mm256_xor_ps(em, sign), _mm256_add_ps(_mm256_set1_ps(2.0f), em));
    return _mm256_or_ps(_mm256_andnot_ps(sign, t), _mm256_and_ps(sign, x));
}

/* Exact GELU, 0.5 x (1 + erf(x / sqrt 2)) written as 0.5 x erfc(-x / sqrt 2): the
 * same function without the cancellation of 1 + erf for x << 0. Per-lane libm
 * erfc in double (a float argument's rounding error grows ~2z^2 through erfc):
 * GELU appears only in a few head layers, never in the hot path. */
static inline __m256 ec_v8_gelu(__m256 x)
{
    float b[8];
    _mm256_storeu_ps(b, x);
    for (int i = 0; i < 8; i++)
        b[i] = (float)(0.5 * b[i] * erfc(-b[i] * M_SQRT1_2));
    return _mm256_loadu_ps(b);
}

/* Applies act to n vectors at once: one switch per group, and the n independent
 * polynomial chains interleave (the exp is latency-bound on its own). Softmax and
 * unknown codes are the identity here (softmax is not elementwise).
 * EC_V8_UNROLL: the build is -O2, which does not fully unroll these short loops;
 * without it v[] lives in memory and every lane goes through the stack. */
#define EC_V8_UNROLL _Pragma("GCC unroll 8")
EC_V8_INLINE void ec_v8_act_n(__m256 *v, const int n, int act)
{
    const __m256 zero = _mm256_setzero_ps();
    switch (act) {
    case EC_ACT_RELU:    /* max(0, v): second operand v keeps NaN and -0 like the scalar code */
        EC_V8_UNROLL for (int i = 0; i < n; i++) v[i] = _mm256_max_ps(zero, v[i]);
        break;
    case EC_ACT_RELU6:
        EC_V8_UNROLL for (int i = 0; i < n; i++)
            v[i] = _mm256_min_ps(_mm256_set1_ps(6.0f), _mm256_max_ps(zero, v[i]));
        break;
    case EC_ACT_SIGMOID:
        EC_V8_UNROLL for (int i = 0; i < n; i++) v[i] = ec_v8_sigmoid(v[i]);
        break;
    case EC_ACT_SWISH:
        EC_V8_UNROLL for (int i = 0; i < n; i++) v[i] = ec_v8_swish(v[i]);
        break;
    case EC_ACT_TANH:
        EC_V8_UNROLL for (int i = 0; i < n; i++) v[i] = ec_v8_tanh(v[i]);
        break;
    case EC_ACT_GELU:
        EC_V8_UNROLL for (int i = 0; i < n; i++) v[i] = ec_v8_gelu(v[i]);
        break;
    default:
        break;
    }
}

#endif
