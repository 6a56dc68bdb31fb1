/* ref_forward.c - the reference interpreter (ref_forward.h), in float and in
 * double from one body (ref_forward_impl.h). */
#include "ref_forward.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/ecm_format.h"

float *ec_ref_tensor(const cv_graph *g, int t, cv_err *e)
{
    const cv_tensor *tt = &g->tensors[t];
    size_t n = (size_t)cv_tensor_elems(tt);
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) {
        cv_fail(e, "reference forward: out of memory");
        return NULL;
    }
    if (tt->data) {
        memcpy(p, tt->data, n * sizeof *p);
    } else if (!g->load || g->load(g->load_ctx, tt, p, n, e) < 0) {
        if (!g->load) cv_fail(e, "reference forward: tensor %s has no data", tt->name);
        free(p);
        return NULL;
    }
    return p;
}

/* The weights widened to double (the stored float32 values, exactly). */
static double *ref_tensor_f64(const cv_graph *g, int t, cv_err *e)
{
    float *f = ec_ref_tensor(g, t, e);
    if (!f) return NULL;
    size_t n = (size_t)cv_tensor_elems(&g->tensors[t]);
    double *d = malloc((n ? n : 1) * sizeof *d);
    if (!d) cv_fail(e, "reference forward: out of memory");
    for (size_t i = 0; d && i < n; i++) d[i] = f[i];
    free(f);
    return d;
}
static float *ref_tensor_f32(const cv_graph *g, int t, cv_err *e) { return ec_ref_tensor(g, t, e); }

/* float: the synthesizer's calibration and the tests' reference */
#define REF_T float
#define REF(name) ref_##name##_f32
#define REF_EXP expf
#define REF_TANH tanhf
#define REF_SQRT sqrtf
#define REF_FORWARD ec_ref_forward
#define REF_HOOKS ec_ref_hooks
#include "ref_forward_impl.h"
#undef REF_T
#undef REF
#undef REF_EXP
#undef REF_TANH
#undef REF_SQRT
#undef REF_FORWARD
#undef REF_HOOKS

/* double: how far a float32 computation (Keras's, effcam's) is from exact */
#define REF_T double
#define REF(name) ref_##name##_f64
#define REF_EXP exp
#define REF_TANH tanh
#define REF_SQRT sqrt
#define REF_FORWARD ec_ref_forward_f64
#define REF_HOOKS ec_ref_hooks_f64
#include "ref_forward_impl.h"
