/* internal.h - a session's insides, for the tests and the profiler only (not
 * part of effcam.h): keep_all sessions, the plan, values and gradients, and
 * re-running part of the forward pass for finite differences. */
#ifndef EFFCAM_INTERNAL_H
#define EFFCAM_INTERNAL_H

#include <stdio.h>

#include "engine.h"
#include "gradcam.h"

/* keep_all = 1: one buffer per value, no reuse, no fusion (every layer's output
 * stays readable after a predict). */
ec_status ec_session_new_debug(const ec_model *m, const ec_session_options *opt, int keep_all, ec_session **out);
/* keep_all sessions (or pinned values): a layer's output after the last predict,
 * NULL if unknown or overwritten. */
const float *ec_session_layer_output(const ec_session *s, const char *layer, int *h, int *w, int *c);

const ec_model *ec_session_model(const ec_session *s);
const ec_plan *ec_session_plan(const ec_session *s);
float *ec_session_value(const ec_session *s, int value);      /* forward value or NULL */
float *ec_session_grad(const ec_session *s, int value);       /* gradient buffer or NULL */
const ec_gradcam_plan *ec_session_gradcam(const ec_session *s);
/* Re-runs the forward steps after `node` (finite differences on a pinned value). */
void ec_session_forward_after(ec_session *s, int node);
int ec_session_check_plan(const ec_session *s, char *msg, size_t cap);

/* Profiling: with a non-NULL t [plan->n_steps + 3], each predict adds the wall
 * seconds of forward step k into t[k], of the input stage (resize + widening
 * to float) into t[n_steps], of the Grad-CAM backward into t[n_steps + 1] and
 * of the whole predict into t[n_steps + 2]. NULL (the default) turns it off:
 * then the forward pass reads no clock. */
void ec_session_set_step_times(ec_session *s, double *t);

#endif
