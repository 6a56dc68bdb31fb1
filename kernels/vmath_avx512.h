/* vmath_avx512.h - 16-lane float math shared by the AVX-512 kernels.
 *
 * Private to kernels/: include only from files built with the AVX-512 flags
 * (the kernels/<name>__avx512.c files). The zmm twin of vmath_avx2.h: the same
 * polynomials, range reductions and flush rules operation for operation, so
 * exp, expm1 and tanh give the AVX2 helpers' bits lane for lane. The one
 * difference is the reciprocal in sigmoid: VRCP14PS (relative error < 2^-14)
 * where AVX2 has only RCPPS (< 1.5 * 2^-12); after the same Newton step the
 * result is within ~0.5 ulp of 1 / den instead of ~1.5; and sigmoid and swish
 * take e^-|x| from a cheaper table-based exp (ec_v16_exp_negabs, ~2.5 ulp), so
 * they can differ from the AVX2 kernels in the last bits.
 * Accuracy against double-precision libm is measured by tests/test_kernels.c. */
#ifndef EFFCAM_VMATH_AVX512_H
#define EFFCAM_VMATH_AVX512_H

#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "kernels/kernels.h"

#define EC_V16_INLINE static inline __attribute__((always_inline))
/* -O2 does not fully unroll short constant loops; without full unrolling the
 * register arrays (accumulators, v[]) live on the stack. */
#define EC_V16_UNROLL _Pragma("GCC unroll 32")

/* The first n (0..16) lanes, for channel tails: a k-mask, so masked loads and
 * stores cost what plain ones do and never touch memory past the tail. */
EC_V16_INLINE __mmask16 ec_v16_tail_mask(int n)
{
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n > 0 ? n : 0)) - 1u);
}

EC_V16_INLINE __m512 ec_v16_loadm(const float *p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
EC_V16_INLINE void ec_v16_storem(float *p, __mmask16 m, __m512 v) { _mm512_mask_storeu_ps(p, m, v); }

/* x = n * ln2 + r, |r| <= ~ln2/2: Cody-Waite split ln2 as in vmath_avx2.h
 * (ln2_hi has 9 significant bits, so n * ln2_hi is exact for |n| < 2^15). */
EC_V16_INLINE __m512 ec_v16_exp_reduce(__m512 x, __m512 *r)
{
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 t = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    *r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), t);
    return n;
}

/* 2^n for integral n in [-126, 127]: the exponent field built directly. */
EC_V16_INLINE __m512 ec_v16_pow2i(__m512 n)
{
    const __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
}

/* p * 2^n for integral n: one VSCALEFPS instead of building 2^n (convert, add,
 * shift) and multiplying. Both are exact while the result is normal, the only
 * case the callers keep (below FLT_MIN they flush), so the bits are those of
 * p * ec_v16_pow2i(n) and of the AVX2 twin. */
EC_V16_INLINE __m512 ec_v16_ldexp(__m512 p, __m512 n) { return _mm512_scalef_ps(p, n); }

/* e^x for x <= 0: Taylor to degree 7 on |r| <= 0.347 (truncation < 0.05 ulp);
 * results below FLT_MIN flush to 0 (that mask also drops the garbage exponent
 * of very negative or infinite x); NaN fails the compare and survives. */
EC_V16_INLINE __m512 ec_v16_exp_le0(__m512 x)
{
    __m512 r;
    const __m512 n = ec_v16_exp_reduce(x, &r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    const __m512 y = ec_v16_ldexp(p, n);
    const __mmask16 tiny = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3365447f), _CMP_LT_OQ);
    return _mm512_maskz_mov_ps((__mmask16)~tiny, y);
}

/* e^x - 1 for x <= 0 without cancellation near 0: 2^n expm1(r) + (2^n - 1),
 * expm1(r) = r + r^2 P(r) to degree 8 (see vmath_avx2.h). */
EC_V16_INLINE __m512 ec_v16_expm1_le0(__m512 x)
{
    /* max(lo, x): VMAXPS returns the second operand when either is NaN */
    x = _mm512_max_ps(_mm512_set1_ps(-87.0f), x);
    __m512 r;
    const __m512 n = ec_v16_exp_reduce(x, &r);
    __m512 p = _mm512_set1_ps(1.0f / 40320);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 5040));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    const __m512 q = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
    const __m512 s = ec_v16_ldexp(_mm512_set1_ps(1.0f), n);   /* 2^n, n >= -126 */
    return _mm512_fmadd_ps(s, q, _mm512_sub_ps(s, _mm512_set1_ps(1.0f)));
}

/* e^-|x| for sigmoid and swish, cheaper than ec_v16_exp_le0 (the activations
 * of every EfficientNet conv; 2.89 -> 2.51 ns per swish vector on Zen 5):
 * -|x| = (n / 16) ln2 + r with |r| <= ln2 / 32 (Cody-Waite, ln2 / 16 split as
 * ec_v16_exp_reduce splits ln2: n ln2_hi / 16 is exact for |n| < 2^13), e^r to
 * degree 3 (truncation < 1e-8), times 2^((n mod 16) / 16) from a 16-entry table
 * in a register (VPERMPS reads the low 4 bits of n, two's complement: n mod 16
 * for negative n too) and 2^floor(n / 16) by VSCALEFPS (which floors its second
 * operand). Within ~2.5 ulp (the table's rounding and two products; the
 * polynomial of ec_v16_exp_le0 gives ~1). -|x| is clamped at -104, where e^x
 * is below half the smallest denormal: the result is then 0, -inf included;
 * NaN passes the clamp (VMAXPS returns its second operand) and survives. */
EC_V16_INLINE __m512 ec_v16_exp_negabs(__m512 x)
{
    const __m512 t = _mm512_max_ps(_mm512_set1_ps(-104.0f), _mm512_or_ps(x, _mm512_set1_ps(-0.0f)));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(t, _mm512_set1_ps(23.0831206542234f)),   /* 16 / ln2 */
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f / 16), t);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f / 16), r);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(1.0f / 6), r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    const __m512 tab = _mm512_setr_ps(1.0f, 1.04427378242741384f, 1.09050773266525766f, 1.13878863475669165f,
                                      1.18920711500272107f, 1.24185781207348405f, 1.29683955465100967f,
                                      1.35425554693689273f, 1.41421356237309505f, 1.47682614593949931f,
                                      1.54221082540794082f, 1.61049033194925431f, 1.68179283050742908f,
                                      1.75625216037329948f, 1.83400808640934246f, 1.91520656139714729f);
    const __m512 T = _mm512_permutexvar_ps(_mm512_cvtps_epi32(n), tab);   /* 2^((n mod 16) / 16) */
    return _mm512_scalef_ps(_mm512_mul_ps(p, T), _mm512_mul_ps(n, _mm512_set1_ps(1.0f / 16)));
}

/* sigmoid(x) with e = e^-|x| <= 1 (nothing overflows): x >= 0 -> 1 / (1 + e),
 * x < 0 -> e / (1 + e) (full relative accuracy for tiny outputs). The sign bit
 * picks, as BLENDVPS does in the AVX2 twin (so -0 and negative NaNs alike).
 * 1 / den by VRCP14PS and one Newton step: the denominator is in [1, 2]. */
EC_V16_INLINE __m512 ec_v16_sigmoid(__m512 x)
{
    const __m512 e = ec_v16_exp_negabs(x);   /* e^-|x| */
    const __mmask16 neg = _mm512_movepi32_mask(_mm512_castps_si512(x));
    const __m512 den = _mm512_add_ps(_mm512_set1_ps(1.0f), e);
    const __m512 r0 = _mm512_rcp14_ps(den);
    const __m512 r1 = _mm512_fmadd_ps(r0, _mm512_fnmadd_ps(den, r0, _mm512_set1_ps(1.0f)), r0);
    /* num * r1 with num = e where x < 0, else 1: a masked multiply (1 * r1 is r1) */
    return _mm512_mask_mul_ps(r1, neg, e, r1);
}

EC_V16_INLINE __m512 ec_v16_swish(__m512 x) { return _mm512_mul_ps(x, ec_v16_sigmoid(x)); }

/* tanh|x| = -expm1(-2|x|) / (2 + expm1(-2|x|)), the sign of x put back. */
EC_V16_INLINE __m512 ec_v16_tanh(__m512 x)
{
    const __m512 sign = _mm512_set1_ps(-0.0f);
    const __m512 ax = _mm512_andnot_ps(sign, x);
    const __m512 em = ec_v16_expm1_le0(_mm512_mul_ps(_mm512_set1_ps(-2.0f), ax));
    const __m512 t = _mm512_div_ps(_mm512_xor_ps(em, sign), _mm512_add_ps(_mm512_set1_ps(2.0f), em));
    return _mm512_or_ps(_mm512_andnot_ps(sign, t), _mm512_and_ps(sign, x));
}

/* Exact GELU, 0.5 x erfc(-x / sqrt 2), per lane with libm erfc in double as in
 * the AVX2 twin (a head-only activation; a float erfc argument's rounding grows
 * ~2z^2 through erfc). */
static inline __m512 ec_v16_gelu(__m512 x)
{
    float b[16];
    _mm512_storeu_ps(b, x);
    for (int i = 0; i < 16; i++) b[i] = (float)(0.5 * b[i] * erfc(-b[i] * M_SQRT1_2));
    return _mm512_loadu_ps(b);
}

/* act on n vectors: one switch per group, the n polynomial chains interleaved
 * (each exp alone is latency-bound). Softmax and unknown codes: identity. */
EC_V16_INLINE void ec_v16_act_n(__m512 *v, const int n, int act)
{
    const __m512 zero = _mm512_setzero_ps();
    switch (act) {
    case EC_ACT_RELU:    /* max(0, v): the second operand keeps NaN and -0 */
        EC_V16_UNROLL for (int i = 0; i < n; i++) v[i] = _mm512_max_ps(zero, v[i]);
        break;
    case EC_ACT_RELU6:
        EC_V16_UNROLL for (int i = 0; i < n; i++)
            v[i] = _mm512_min_ps(_mm512_set1_ps(6.0f), _mm512_max_ps(zero, v[i]));
        break;
    case EC_ACT_SIGMOID:
        EC_V16_UNROLL for (int i = 0; i < n; i++) v[i] = ec_v16_sigmoid(v[i]);
        break;
    case EC_ACT_SWISH:
        EC_V16_UNROLL for (int i = 0; i < n; i++) v[i] = ec_v16_swish(v[i]);
        break;
    case EC_ACT_TANH:
        EC_V16_UNROLL for (int i = 0; i < n; i++) v[i] = ec_v16_tanh(v[i]);
        break;
    case EC_ACT_GELU:
        EC_V16_UNROLL for (int i = 0; i < n; i++) v[i] = ec_v16_gelu(v[i]);
        break;
    default:
        break;
    }
}

#endif
