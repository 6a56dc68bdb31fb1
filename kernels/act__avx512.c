/* act__avx512.c - activations and the per-channel affine epilogue, AVX-512.
 *
 * The zmm twin of act__avx2.c: the activation is a compile-time constant in
 * each loop (always_inline helpers instantiated from one switch), two vectors
 * per step for the latency-bound exp chains, and every tail is one masked
 * vector (k-masks: no read or write past the end). */
#include <string.h>

#include "kernels/vmath_avx512.h"

/* ---- elementwise over a flat array --------------------------------------- */

/* y[n] = act(x[n]); x == y allowed. */
EC_V16_INLINE void act_flat(const float *x, float *y, size_t n, const int act)
{
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 v[2] = {_mm512_loadu_ps(x + i), _mm512_loadu_ps(x + i + 16)};
        ec_v16_act_n(v, 2, act);
        _mm512_storeu_ps(y + i, v[0]);
        _mm512_storeu_ps(y + i + 16, v[1]);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = ec_v16_tail_mask(n - i < 16 ? (int)(n - i) : 16);
        __m512 v[1] = {ec_v16_loadm(x + i, m)};
        ec_v16_act_n(v, 1, act);
        ec_v16_storem(y + i, m, v[0]);
    }
}

static void act_flat_any(const float *x, float *y, size_t n, int act)
{
    switch (act) {
    case EC_ACT_RELU:    act_flat(x, y, n, EC_ACT_RELU); break;
    case EC_ACT_RELU6:   act_flat(x, y, n, EC_ACT_RELU6); break;
    case EC_ACT_SIGMOID: act_flat(x, y, n, EC_ACT_SIGMOID); break;
    case EC_ACT_SWISH:   act_flat(x, y, n, EC_ACT_SWISH); break;
    case EC_ACT_TANH:    act_flat(x, y, n, EC_ACT_TANH); break;
    case EC_ACT_GELU:    act_flat(x, y, n, EC_ACT_GELU); break;
    default:             if (x != y) memmove(y, x, n * sizeof *y); break;   /* linear */
    }
}

/* ---- softmax ---------------------------------------------------------------- */

/* x, y: (c) one row, x == y allowed. Max-subtracted so every exp argument is
 * <= 0; division by the sum (one rounding), not a reciprocal multiply. */
static void softmax_row(const float *x, float *y, int c)
{
    __m512 mv = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < c; j += 16) {   /* masked-off lanes keep -inf: they cannot win */
        const __mmask16 m = ec_v16_tail_mask(c - j);
        mv = _mm512_mask_max_ps(mv, m, mv, _mm512_maskz_loadu_ps(m, x + j));
    }
    const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(mv));
    __m512 sv = _mm512_setzero_ps();
    for (int j = 0; j < c; j += 16) {
        const __mmask16 m = ec_v16_tail_mask(c - j);
        const __m512 e = _mm512_maskz_mov_ps(m, ec_v16_exp_le0(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + j), mx)));
        ec_v16_storem(y + j, m, e);
        sv = _mm512_add_ps(sv, e);
    }
    const __m512 s = _mm512_set1_ps(_mm512_reduce_add_ps(sv));
    for (int j = 0; j < c; j += 16) {
        const __mmask16 m = ec_v16_tail_mask(c - j);
        ec_v16_storem(y + j, m, _mm512_div_ps(_mm512_maskz_loadu_ps(m, y + j), s));
    }
}

/* x, y: (rows, c); x == y allowed. */
void ec_f32_act__avx512(const float *x, float *y, size_t rows, int c, int act)
{
    if (act == EC_ACT_SOFTMAX) {
        for (size_t r = 0; r < rows; r++) softmax_row(x + r * c, y + r * c, c);
        return;
    }
    act_flat_any(x, y, rows * (size_t)c, act);
}

/* ---- affine + activation -------------------------------------------------- */

/* x: (rows, c) in place; scale, shift: (c) or NULL (the constants 1 and 0:
 * x * 1 + b is exact, so this equals a plain add). One FMA, as the AVX2 twin. */
EC_V16_INLINE void affine_rows(float *x, size_t rows, int c, const float *scale, const float *shift, const int act)
{
    const __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
    for (size_t r = 0; r < rows; r++) {
        float *row = x + r * c;
        int j = 0;
        for (; j + 32 <= c; j += 32) {
            __m512 v[2];
            EC_V16_UNROLL for (int u = 0; u < 2; u++) {
                const __m512 s = scale ? _mm512_loadu_ps(scale + j + 16 * u) : one;
                const __m512 b = shift ? _mm512_loadu_ps(shift + j + 16 * u) : zero;
                v[u] = _mm512_fmadd_ps(_mm512_loadu_ps(row + j + 16 * u), s, b);
            }
            ec_v16_act_n(v, 2, act);
            _mm512_storeu_ps(row + j, v[0]);
            _mm512_storeu_ps(row + j + 16, v[1]);
        }
        for (; j < c; j += 16) {
            const __mmask16 m = ec_v16_tail_mask(c - j);
            const __m512 s = scale ? ec_v16_loadm(scale + j, m) : one;
            const __m512 b = shift ? ec_v16_loadm(shift + j, m) : zero;
            __m512 v[1] = {_mm512_fmadd_ps(ec_v16_loadm(row + j, m), s, b)};
            ec_v16_act_n(v, 1, act);
            ec_v16_storem(row + j, m, v[0]);
        }
    }
}

void ec_f32_affine_act__avx512(float *x, size_t rows, int c, const float *scale, const float *shift, int act)
{
    if (act == EC_ACT_SOFTMAX) {          /* outside the contract; see the __ref */
        affine_rows(x, rows, c, scale, shift, EC_ACT_LINEAR);
        ec_f32_act__avx512(x, x, rows, c, EC_ACT_SOFTMAX);
        return;
    }
    if (!scale && !shift) {               /* no per-channel part: one flat stream */
        act_flat_any(x, x, rows * (size_t)c, act);
        return;
    }
    switch (act) {
    case EC_ACT_RELU:    affine_rows(x, rows, c, scale, shift, EC_ACT_RELU); break;
    case EC_ACT_RELU6:   affine_rows(x, rows, c, scale, shift, EC_ACT_RELU6); break;
    case EC_ACT_SIGMOID: affine_rows(x, rows, c, scale, shift, EC_ACT_SIGMOID); break;
    case EC_ACT_SWISH:   affine_rows(x, rows, c, scale, shift, EC_ACT_SWISH); break;
    case EC_ACT_TANH:    affine_rows(x, rows, c, scale, shift, EC_ACT_TANH); break;
    case EC_ACT_GELU:    affine_rows(x, rows, c, scale, shift, EC_ACT_GELU); break;
    default:             affine_rows(x, rows, c, scale, shift, EC_ACT_LINEAR); break;
    }
}

/* ---- backward: dx = dy * act'(x), n elements, dx may alias dy --------------
 * As act__avx2.c: 1 - s taken as sigmoid(-x), not as a difference (which
 * cancels to 0 for large x); relu and relu6 pass the gradient where 0 < x (< 6). */

/* sigmoid(x) and sigmoid(-x) from one e^-|x| and one reciprocal: the bits of
 * ec_v16_sigmoid(x) and ec_v16_sigmoid(-x), which compute the same e, den and
 * r1 (e^-|x| ignores the sign); the sign only picks which side gets e * r1.
 * Half the work of two calls (the compiler cannot see that they share e). */
EC_V16_INLINE void sigmoid_pm16(__m512 x, __m512 *s, __m512 *sm)
{
    const __m512 e = ec_v16_exp_negabs(x);
    const __mmask16 neg = _mm512_movepi32_mask(_mm512_castps_si512(x));
    const __m512 den = _mm512_add_ps(_mm512_set1_ps(1.0f), e);
    const __m512 r0 = _mm512_rcp14_ps(den);
    const __m512 r1 = _mm512_fmadd_ps(r0, _mm512_fnmadd_ps(den, r0, _mm512_set1_ps(1.0f)), r0);
    const __m512 er = _mm512_mul_ps(e, r1);
    *s = _mm512_mask_blend_ps(neg, r1, er);    /* x < 0: e / (1 + e) */
    *sm = _mm512_mask_blend_ps(neg, er, r1);   /* -x < 0 where x >= 0 */
}
EC_V16_INLINE __m512 act_deriv16(__m512 x, const int act)
{
    const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
    switch (act) {
    case EC_ACT_RELU:
        return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, zero, _CMP_GT_OQ), one);
    case EC_ACT_RELU6:
        return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, zero, _CMP_GT_OQ) &
                                       _mm512_cmp_ps_mask(x, _mm512_set1_ps(6.0f), _CMP_LT_OQ),
                                   one);
    case EC_ACT_SIGMOID: {
        __m512 s, sm;
        sigmoid_pm16(x, &s, &sm);
        return _mm512_mul_ps(s, sm);
    }
    case EC_ACT_SWISH: {
        __m512 s, sm;
        sigmoid_pm16(x, &s, &sm);
        return _mm512_mul_ps(s, _mm512_fmadd_ps(x, sm, one));
    }
    case EC_ACT_TANH: {
        /* 4e / (1 + e)^2, e = e^-2|x| <= 1, as the AVX2 twin (ec_v16_exp_le0
         * gives ec_v8_exp_le0's bits, so these are its bits too) */
        const __m512 e = ec_v16_exp_le0(_mm512_mul_ps(_mm512_set1_ps(-2.0f),
                                                      _mm512_andnot_ps(_mm512_set1_ps(-0.0f), x)));
        const __m512 d = _mm512_add_ps(one, e);
        return _mm512_div_ps(_mm512_mul_ps(_mm512_set1_ps(4.0f), e), _mm512_mul_ps(d, d));
    }
    case EC_ACT_GELU: {
        /* Phi(x) + x phi(x), per lane in double with libm erfc, as the AVX2 twin */
        float b[16];
        _mm512_storeu_ps(b, x);
        for (int i = 0; i < 16; i++) {
            const double v = b[i];
            b[i] = (float)(0.5 * erfc(-v * M_SQRT1_2) + v * exp(-0.5 * v * v) * (0.5 * M_2_SQRTPI * M_SQRT1_2));
        }
        return _mm512_loadu_ps(b);
    }
    default:
        return one;
    }
}

EC_V16_INLINE void act_backward_flat(const float *x, const float *dy, float *dx, size_t n, const int act)
{
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = ec_v16_tail_mask(n - i < 16 ? (int)(n - i) : 16);
        ec_v16_storem(dx + i, m, _mm512_mul_ps(ec_v16_loadm(dy + i, m), act_deriv16(ec_v16_loadm(x + i, m), act)));
    }
}

void ec_f32_act_backward__avx512(const float *x, const float *dy, float *dx, size_t n, int act)
{
    switch (act) {
    case EC_ACT_RELU:    act_backward_flat(x, dy, dx, n, EC_ACT_RELU); break;
    case EC_ACT_RELU6:   act_backward_flat(x, dy, dx, n, EC_ACT_RELU6); break;
    case EC_ACT_SIGMOID: act_backward_flat(x, dy, dx, n, EC_ACT_SIGMOID); break;
    case EC_ACT_SWISH:   act_backward_flat(x, dy, dx, n, EC_ACT_SWISH); break;
    case EC_ACT_TANH:    act_backward_flat(x, dy, dx, n, EC_ACT_TANH); break;
    case EC_ACT_GELU:    act_backward_flat(x, dy, dx, n, EC_ACT_GELU); break;
    default:             act_backward_flat(x, dy, dx, n, EC_ACT_LINEAR); break;
    }
}

/* dx[rows, c] = dy * act'(x) * scale[j] (see act.c); dx may alias dy. Per row,
 * the channel tail under a k-mask (c = 24 at the stem: one full vector and one
 * of 8 lanes). Sigmoid and swish within a few ulp of the AVX2 twin (the vmath
 * header's sigmoid), the rest the same formulas. */
EC_V16_INLINE void act_scale_backward_rows(const float *x, const float *dy, const float *scale, float *dx,
                                           size_t rows, int c, const int act)
{
    for (size_t r = 0; r < rows; r++) {
        const size_t o = r * (size_t)c;
        for (int j = 0; j < c; j += 16) {
            const __mmask16 m = ec_v16_tail_mask(c - j);
            const __m512 g = _mm512_mul_ps(ec_v16_loadm(dy + o + j, m), act_deriv16(ec_v16_loadm(x + o + j, m), act));
            ec_v16_storem(dx + o + j, m, _mm512_mul_ps(g, ec_v16_loadm(scale + j, m)));
        }
    }
}

void ec_f32_act_scale_backward__avx512(const float *x, const float *dy, const float *scale, float *dx, size_t rows,
                                       int c, int act)
{
    if (!scale) {
        ec_f32_act_backward__avx512(x, dy, dx, rows * (size_t)c, act);
        return;
    }
    switch (act) {
    case EC_ACT_RELU:    act_scale_backward_rows(x, dy, scale, dx, rows, c, EC_ACT_RELU); break;
    case EC_ACT_RELU6:   act_scale_backward_rows(x, dy, scale, dx, rows, c, EC_ACT_RELU6); break;
    case EC_ACT_SIGMOID: act_scale_backward_rows(x, dy, scale, dx, rows, c, EC_ACT_SIGMOID); break;
    case EC_ACT_SWISH:   act_scale_backward_rows(x, dy, scale, dx, rows, c, EC_ACT_SWISH); break;
    case EC_ACT_TANH:    act_scale_backward_rows(x, dy, scale, dx, rows, c, EC_ACT_TANH); break;
    case EC_ACT_GELU:    act_scale_backward_rows(x, dy, scale, dx, rows, c, EC_ACT_GELU); break;
    default:             act_scale_backward_rows(x, dy, scale, dx, rows, c, EC_ACT_LINEAR); break;
    }
}
