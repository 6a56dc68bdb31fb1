/* act_ref.h - scalar activations for the __ref kernels (private to kernels/).
 * Plain textbook formulas on libm: these are what the optimized kernels are
 * tested against, so clarity beats speed. Softmax is per row, not here. */
#ifndef EFFCAM_ACT_REF_H
#define EFFCAM_ACT_REF_H

#include <math.h>

#include "kernels/kernels.h"

static inline float ec_act_ref1(float x, int act)
{
    switch (act) {
    case EC_ACT_RELU:    return x < 0.0f ? 0.0f : x;                     /* NaN passes through */
    case EC_ACT_RELU6:   return x < 0.0f ? 0.0f : (x > 6.0f ? 6.0f : x);
    case EC_ACT_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case EC_ACT_SWISH:   return x / (1.0f + expf(-x));                   /* -> -0 for x << 0, no inf * 0 */
    case EC_ACT_TANH:    return tanhf(x);
    /* 0.5 x (1 + erf(x / sqrt 2)) written with erfc: no cancellation for x << 0.
     * In double: erfc's slope amplifies a rounded float argument ~6x at x = -4. */
    case EC_ACT_GELU:    return (float)(0.5 * x * erfc(-x * M_SQRT1_2));
    default:             return x;                                       /* linear */
    }
}

#endif
