/* act.c - activations, the per-channel affine epilogue, their backward passes:
 * scalar references, dispatchers, and the (scalar) backward ops. */
#include <math.h>
#include <string.h>

#include "kernels/act_ref.h"
#include "kernels/kernels.h"

/* ---- forward: references ------------------------------------------------- */

/* One row of softmax: max-subtracted so exp never overflows; double sum. */
static void softmax_row_ref(const float *x, float *y, int c)
{
    float m = -INFINITY;
    for (int j = 0; j < c; j++) m = x[j] > m ? x[j] : m;
    double s = 0.0;
    for (int j = 0; j < c; j++) { y[j] = expf(x[j] - m); s += y[j]; }
    for (int j = 0; j < c; j++) y[j] = (float)(y[j] / s);
}

/* x, y: (rows, c); x == y allowed (hence no restrict). */
void ec_f32_act__ref(const float *x, float *y, size_t rows, int c, int act)
{
    if (act == EC_ACT_SOFTMAX) {
        for (size_t r = 0; r < rows; r++)
            softmax_row_ref(x + r * c, y + r * c, c);
        return;
    }
    const size_t n = rows * (size_t)c;
    for (size_t i = 0; i < n; i++)
        y[i] = ec_act_ref1(x[i], act);
}

/* x: (rows, c) in place; scale, shift: (c) or NULL. Softmax (not allowed by the
 * contract) degrades gracefully to affine then row softmax. */
void ec_f32_affine_act__ref(float *x, size_t rows, int c, const float *scale,
                            const float *shift, int act)
{
    for (size_t r = 0; r < rows; r++) {
        float *row = x + r * c;
        for (int j = 0; j < c; j++) {
            float v = row[j];
            if (scale) v *= scale[j];
            if (shift) v += shift[j];
            row[j] = act == EC_ACT_SOFTMAX ? v : ec_act_ref1(v, act);
        }
        if (act == EC_ACT_SOFTMAX) softmax_row_ref(row, row, c);
    }
}

/* ---- forward: dispatch --------------------------------------------------- */

void ec_f32_act(const float *x, float *y, size_t rows, int c, int act)
{
    if (ec_cpu_has_avx512()) ec_f32_act__avx512(x, y, rows, c, act);
    else if (ec_cpu_has_avx2()) ec_f32_act__avx2(x, y, rows, c, act);
    else ec_f32_act__ref(x, y, rows, c, act);
}

void ec_f32_affine_act(float *x, size_t rows, int c, const float *scale, const float *shift, int act)
{
    if (ec_cpu_has_avx512()) ec_f32_affine_act__avx512(x, rows, c, scale, shift, act);
    else if (ec_cpu_has_avx2()) ec_f32_affine_act__avx2(x, rows, c, scale, shift, act);
    else ec_f32_affine_act__ref(x, rows, c, scale, shift, act);
}

/* ---- backward ------------------------------------------------------------
 * Grad-CAM at the head runs these on a few 100k elements; at an early layer on
 * every block's tensors. The scalar reference computes in double; act__avx2.c
 * has the float twin of every elementwise activation (GELU per lane in double),
 * act__avx512.c too (act_backward dispatches it for the common ones). */

/* act'(x) for the elementwise activations. At the kinks, the convention of
 * TensorFlow's ReluGrad/Relu6Grad: gradient flows only where 0 < x (< 6). */
static double act_deriv(double x, int act)
{
    switch (act) {
    case EC_ACT_RELU:  return x > 0.0 ? 1.0 : 0.0;
    case EC_ACT_RELU6: return x > 0.0 && x < 6.0 ? 1.0 : 0.0;
    case EC_ACT_SIGMOID: {
        double s = 1.0 / (1.0 + exp(-x));
        return s * (1.0 - s);
    }
    case EC_ACT_SWISH: {            /* d/dx x s(x) = s + x s (1 - s) */
        double s = 1.0 / (1.0 + exp(-x));
        return s * (1.0 + x * (1.0 - s));
    }
    case EC_ACT_TANH: {
        double t = tanh(x);
        return 1.0 - t * t;
    }
    case EC_ACT_GELU:               /* Phi(x) + x phi(x), exact (erf) form */
        return 0.5 * erfc(-x * M_SQRT1_2) + x * exp(-0.5 * x * x) * (0.5 * M_2_SQRTPI * M_SQRT1_2);
    default:
        return 1.0;
    }
}

/* x, dy, dx: (rows, c); dx may alias dy. Softmax is accepted too: y = softmax(x)
 * is recomputed per row (exp twice instead of a scratch buffer, so dx may still
 * alias dy), then the softmax rule applies. */
void ec_f32_act_backward(const float *x, const float *dy, float *dx, size_t rows, int c, int act)
{
    /* the top layers' swish is ~100k elements per Grad-CAM: in double with libm
     * it was most of the backward's time */
    const int zmm = act == EC_ACT_SIGMOID || act == EC_ACT_SWISH || act == EC_ACT_RELU || act == EC_ACT_RELU6 ||
                    act == EC_ACT_LINEAR;
    if (zmm && ec_cpu_has_avx512())
        ec_f32_act_backward__avx512(x, dy, dx, rows * (size_t)c, act);
    else if (ec_cpu_has_avx2() && act != EC_ACT_SOFTMAX)
        ec_f32_act_backward__avx2(x, dy, dx, rows * (size_t)c, act);
    else
        ec_f32_act_backward__ref(x, dy, dx, rows, c, act);
}

void ec_f32_act_backward__ref(const float *x, const float *dy, float *dx, size_t rows, int c, int act)
{
    if (act == EC_ACT_SOFTMAX) {
        for (size_t r = 0; r < rows; r++) {
            const float *xr = x + r * c, *dyr = dy + r * c;
            float *dxr = dx + r * c;
            double m = -INFINITY, z = 0.0, s = 0.0;
            for (int j = 0; j < c; j++) m = xr[j] > m ? xr[j] : m;
            for (int j = 0; j < c; j++) z += exp(xr[j] - m);
            for (int j = 0; j < c; j++) s += dyr[j] * (exp(xr[j] - m) / z);
            for (int j = 0; j < c; j++) dxr[j] = (float)(exp(xr[j] - m) / z * (dyr[j] - s));
        }
        return;
    }
    const size_t n = rows * (size_t)c;
    for (size_t i = 0; i < n; i++)
        dx[i] = (float)(dy[i] * act_deriv(x[i], act));
}

/* y, dy, dx: (rows, c); dx = y * (dy - <dy, y>) per row (the Jacobian of
 * softmax is diag(y) - y y^T). dx may alias dy: the dot is taken first. */
void ec_f32_softmax_backward(const float *y, const float *dy, float *dx, size_t rows, int c)
{
    for (size_t r = 0; r < rows; r++) {
        const float *yr = y + r * c, *dyr = dy + r * c;
        float *dxr = dx + r * c;
        double s = 0.0;
        for (int j = 0; j < c; j++) s += (double)dyr[j] * yr[j];
        for (int j = 0; j < c; j++) dxr[j] = (float)(yr[j] * (dyr[j] - s));
    }
}

/* ---- backward through a per-channel scale and an activation ------------------
 * The forward act(v * scale + shift) (a folded BN or Normalization, a Rescaling,
 * a conv's fused epilogue) has dv = dy * act'(z) * scale[j] with z = v * scale +
 * shift the activation's input: one pass instead of act backward then a scale
 * pass. x here is z (what the activation saw); scale NULL = 1, act LINEAR = a
 * plain per-channel scale (BN alone). Not softmax. dx may alias dy. The reference
 * computes in double and rounds once; the AVX2 and AVX-512 twins in float (a few
 * ulp). */
void ec_f32_act_scale_backward__ref(const float *x, const float *dy, const float *scale, float *dx, size_t rows,
                                    int c, int act)
{
    for (size_t r = 0; r < rows; r++)
        for (int j = 0; j < c; j++) {
            const size_t i = r * (size_t)c + j;
            const double d = (double)dy[i] * act_deriv(x[i], act);
            dx[i] = (float)(scale ? d * scale[j] : d);
        }
}

void ec_f32_act_scale_backward(const float *x, const float *dy, const float *scale, float *dx, size_t rows, int c,
                               int act)
{
    if (ec_cpu_has_avx512()) ec_f32_act_scale_backward__avx512(x, dy, scale, dx, rows, c, act);
    else if (ec_cpu_has_avx2()) ec_f32_act_scale_backward__avx2(x, dy, scale, dx, rows, c, act);
    else ec_f32_act_scale_backward__ref(x, dy, scale, dx, rows, c, act);
}
