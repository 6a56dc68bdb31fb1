/* act__avx2.c - activations and the per-channel affine epilogue, AVX2 + FMA.
 *
 * The activation is a compile-time constant inside each loop (always_inline
 * helpers instantiated from one switch), so the exp polynomial is fused into the
 * streaming loop with no branch or call per vector. */
#include <string.h>

#include "kernels/vmath_avx2.h"

/* ---- elementwise over a flat array --------------------------------------- */

/* y[n] = act(x[n]); x == y allowed. Two vectors per step give the latency-bound
 * exp chains some parallelism; the tail is one masked vector. */
EC_V8_INLINE void act_flat(const float *x, float *y, size_t n, const int act)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 v[2] = {_mm256_loadu_ps(x + i), _mm256_loadu_ps(x + i + 8)};
        ec_v8_act_n(v, 2, act);
        _mm256_storeu_ps(y + i, v[0]);
        _mm256_storeu_ps(y + i + 8, v[1]);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 v[1] = {_mm256_loadu_ps(x + i)};
        ec_v8_act_n(v, 1, act);
        _mm256_storeu_ps(y + i, v[0]);
    }
    if (i < n) {
        const __m256i m = ec_v8_tail_mask((int)(n - i));
        __m256 v[1] = {_mm256_maskload_ps(x + i, m)};
        ec_v8_act_n(v, 1, act);
        _mm256_maskstore_ps(y + i, m, v[0]);
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
 * <= 0 (what ec_v8_exp_le0 expects, and no overflow); division by the sum, not
 * multiplication by its reciprocal, to round once. */
static void softmax_row(const float *x, float *y, int c)
{
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    const int cv = c & ~7;
    const __m256i tm = ec_v8_tail_mask(c - cv);
    __m256 mv = ninf;
    for (int j = 0; j < cv; j += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + j));
    if (cv < c)   /* masked-off lanes must not win the max: fill them with -inf */
        mv = _mm256_max_ps(mv, _mm256_blendv_ps(ninf, _mm256_maskload_ps(x + cv, tm),
                                                _mm256_castsi256_ps(tm)));
    const __m256 m = _mm256_set1_ps(ec_v8_hmax(mv));

    __m256 sv = _mm256_setzero_ps();
    for (int j = 0; j < cv; j += 8) {
        __m256 e = ec_v8_exp_le0(_mm256_sub_ps(_mm256_loadu_ps(x + j), m));
        _mm256_storeu_ps(y + j, e);
        sv = _mm256_add_ps(sv, e);
    }
    if (cv < c) {
        __m256 e = ec_v8_exp_le0(_mm256_sub_ps(_mm256_maskload_ps(x + cv, tm), m));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(tm));
        _mm256_maskstore_ps(y + cv, tm, e);
        sv = _mm256_add_ps(sv, e);
    }
    const __m256 s = _mm256_set1_ps(ec_v8_hsum(sv));
    for (int j = 0; j < cv; j += 8)
        _mm256_storeu_ps(y + j, _mm256_div_ps(_mm256_loadu_ps(y + j), s));
    if (cv < c)
        _mm256_maskstore_ps(y + cv, tm, _mm256_div_ps(_mm256_maskload_ps(y + cv, tm), s));
}

/* x, y: (rows, c); x == y allowed. */
void ec_f32_act__avx2(const float *x, float *y, size_t rows, int c, int act)
{
    if (act == EC_ACT_SOFTMAX) {
        for (size_t r = 0; r < rows; r++)
            softmax_row(x + r * c, y + r * c, c);
        return;
    }
    act_flat_any(x, y, rows * (size_t)c, act);
}

/* ---- affine + activation -------------------------------------------------- */

/* x: (rows, c) in place; scale, shift: (c) or NULL. A NULL side becomes the
 * constant 1 or 0 (x * 1 + b is exact, so this equals a plain add). */
EC_V8_INLINE void affine_rows(float *x, size_t rows, int c, const float *scale,
                              const float *shift, const int act)
{
    const int cv = c & ~7;
    const __m256i tm = ec_v8_tail_mask(c - cv);
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (size_t r = 0; r < rows; r++) {
        float *row = x + r * c;
        int j = 0;
        for (; j + 16 <= cv; j += 16) {
            __m256 v[2];
            EC_V8_UNROLL for (int u = 0; u < 2; u++) {
                const __m256 s = scale ? _mm256_loadu_ps(scale + j + 8 * u) : one;
                const __m256 b = shift ? _mm256_loadu_ps(shift + j + 8 * u) : zero;
                v[u] = _mm256_fmadd_ps(_mm256_loadu_ps(row + j + 8 * u), s, b);
            }
            ec_v8_act_n(v, 2, act);
            _mm256_storeu_ps(row + j, v[0]);
            _mm256_storeu_ps(row + j + 8, v[1]);
        }
        for (; j < cv; j += 8) {
            const __m256 s = scale ? _mm256_loadu_ps(scale + j) : one;
            const __m256 b = shift ? _mm256_loadu_ps(shift + j) : zero;
            __m256 v[1] = {_mm256_fmadd_ps(_mm256_loadu_ps(row + j), s, b)};
            ec_v8_act_n(v, 1, act);
            _mm256_storeu_ps(row + j, v[0]);
        }
        if (cv < c) {
            const __m256 s = scale ? _mm256_maskload_ps(scale + cv, tm) : one;
            const __m256 b = shift ? _mm256_maskload_ps(shift + cv, tm) : zero;
            __m256 v[1] = {_mm256_fmadd_ps(_mm256_maskload_ps(row + cv, tm), s, b)};
            ec_v8_act_n(v, 1, act);
            _mm256_maskstore_ps(row + cv, tm, v[0]);
        }
    }
}

void ec_f32_affine_act__avx2(float *x, size_t rows, int c, const float *scale,
                             const float *shift, int act)
{
    if (act == EC_ACT_SOFTMAX) {          /* outside the contract; see the __ref */
        affine_rows(x, rows, c, scale, shift, EC_ACT_LINEAR);
        ec_f32_act__avx2(x, x, rows, c, EC_ACT_SOFTMAX);
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
 * sigmoid' = s (1 - s) and swish' = s (1 + x (1 - s)) with 1 - s taken as
 * sigmoid(-x), not as a difference (which cancels to 0 for large x). Relu and
 * relu6 pass the gradient where 0 < x (< 6), like the scalar twin. */
EC_V8_INLINE __m256 act_deriv8(__m256 x, const int act)
{
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
    switch (act) {
    case EC_ACT_RELU:
        return _mm256_and_ps(_mm256_cmp_ps(x, zero, _CMP_GT_OQ), one);
    case EC_ACT_RELU6:
        return _mm256_and_ps(_mm256_and_ps(_mm256_cmp_ps(x, zero, _CMP_GT_OQ),
                                           _mm256_cmp_ps(x, _mm256_set1_ps(6.0f), _CMP_LT_OQ)), one);
    case EC_ACT_SIGMOID:
        return _mm256_mul_ps(ec_v8_sigmoid(x), ec_v8_sigmoid(_mm256_xor_ps(x, _mm256_set1_ps(-0.0f))));
    case EC_ACT_SWISH: {
        const __m256 s = ec_v8_sigmoid(x), sm = ec_v8_sigmoid(_mm256_xor_ps(x, _mm256_set1_ps(-0.0f)));
        return _mm256_mul_ps(s, _mm256_fmadd_ps(x, sm, one));
    }
    case EC_ACT_TANH: {
        /* 1 - tanh^2 = 4e / (1 + e)^2 with e = e^-2|x| <= 1: no cancellation
         * where tanh -> +-1 (1 - t * t would be 0 there, from |x| ~ 9 on) */
        const __m256 e = ec_v8_exp_le0(_mm256_mul_ps(_mm256_set1_ps(-2.0f),
                                                     _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x)));
        const __m256 d = _mm256_add_ps(one, e);
        return _mm256_div_ps(_mm256_mul_ps(_mm256_set1_ps(4.0f), e), _mm256_mul_ps(d, d));
    }
    case EC_ACT_GELU: {
        /* Phi(x) + x phi(x), per lane in double with libm erfc (as the forward:
         * GELU is in a few head layers at most, never hot) */
        float b[8];
        _mm256_storeu_ps(b, x);
        for (int i = 0; i < 8; i++) {
            const double v = b[i];
            b[i] = (float)(0.5 * erfc(-v * M_SQRT1_2) + v * exp(-0.5 * v * v) * (0.5 * M_2_SQRTPI * M_SQRT1_2));
        }
        return _mm256_loadu_ps(b);
    }
    default:
        return one;
    }
}

EC_V8_INLINE void act_backward_flat(const float *x, const float *dy, float *dx, size_t n, const int act)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dx + i, _mm256_mul_ps(_mm256_loadu_ps(dy + i), act_deriv8(_mm256_loadu_ps(x + i), act)));
    if (i < n) {
        const __m256i m = ec_v8_tail_mask((int)(n - i));
        _mm256_maskstore_ps(dx + i, m, _mm256_mul_ps(_mm256_maskload_ps(dy + i, m),
                                                     act_deriv8(_mm256_maskload_ps(x + i, m), act)));
    }
}

void ec_f32_act_backward__avx2(const float *x, const float *dy, float *dx, size_t n, int act)
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

/* dx[rows, c] = dy * act'(x) * scale[j] (see act.c); dx may alias dy. */
EC_V8_INLINE void act_scale_backward_rows(const float *x, const float *dy, const float *scale, float *dx,
                                          size_t rows, int c, const int act)
{
    const int cv = c & ~7;
    const __m256i tm = ec_v8_tail_mask(c - cv);
    for (size_t r = 0; r < rows; r++) {
        const size_t o = r * (size_t)c;
        int j = 0;
        for (; j < cv; j += 8) {
            const __m256 g = _mm256_mul_ps(_mm256_loadu_ps(dy + o + j), act_deriv8(_mm256_loadu_ps(x + o + j), act));
            _mm256_storeu_ps(dx + o + j, _mm256_mul_ps(g, _mm256_loadu_ps(scale + j)));
        }
        if (cv < c) {
            const __m256 g = _mm256_mul_ps(_mm256_maskload_ps(dy + o + cv, tm),
                                           act_deriv8(_mm256_maskload_ps(x + o + cv, tm), act));
            _mm256_maskstore_ps(dx + o + cv, tm, _mm256_mul_ps(g, _mm256_maskload_ps(scale + cv, tm)));
        }
    }
}

void ec_f32_act_scale_backward__avx2(const float *x, const float *dy, const float *scale, float *dx, size_t rows,
                                     int c, int act)
{
    if (!scale) {
        ec_f32_act_backward__avx2(x, dy, dx, rows * (size_t)c, act);
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
