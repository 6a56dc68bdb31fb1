/* ref_forward.h - the one reference interpreter of the converter's graph IR:
 * deliberately naive float NHWC loops over a batch of images, independent of
 * the engine (no fusion, no planning, no kernels/). The synthesizer's BN
 * calibration runs models with it, and the tests use it as the reference.
 *
 *   ec_ref_hooks h = { .before = calibrate_bn, .ctx = &state, .last_node = -1 };
 *   if (ec_ref_forward(g, batch, images, &h, probs, &e) < 0) fprintf(stderr, "%s\n", e.msg);
 *
 * Arithmetic: float, in a fixed order (C11 without FMA contraction), so the same
 * graph and input give the same bits on every machine. */
#ifndef EFFCAM_MODELS_REF_FORWARD_H
#define EFFCAM_MODELS_REF_FORWARD_H

#include "../convert/cv.h"

typedef struct {
    /* Called before node `node` runs, its inputs ready in values[] ([batch][h][w][c]
     * each); it may change the graph's tensors (BN calibration sets the moving
     * statistics here). Non-zero stops the run (with a message in e). */
    int (*before)(void *ctx, cv_graph *g, int node, float *const *values, int batch, cv_err *e);
    /* Called after node `node` ran, its output in values[]. Non-zero stops. */
    int (*after)(void *ctx, cv_graph *g, int node, float *const *values, int batch, cv_err *e);
    void *ctx;
    int last_node;      /* run nodes 0..last_node; -1: all of them */
} ec_ref_hooks;

/* Runs g on input [batch][h][w][3] (the graph's input size). output, when not
 * NULL and the output node ran, receives [batch][output c] (float32). hooks may
 * be NULL. Every value is freed after its last use. 0, or -1 with a message. */
int ec_ref_forward(cv_graph *g, int batch, const float *input, const ec_ref_hooks *hooks, float *output, cv_err *e);

/* The same in double precision (hooks see double values): a float32
 * computation's own rounding error is its distance from this. */
typedef struct {
    int (*before)(void *ctx, cv_graph *g, int node, double *const *values, int batch, cv_err *e);
    int (*after)(void *ctx, cv_graph *g, int node, double *const *values, int batch, cv_err *e);
    void *ctx;
    int last_node;
} ec_ref_hooks_f64;
int ec_ref_forward_f64(cv_graph *g, int batch, const float *input, const ec_ref_hooks_f64 *hooks, double *output,
                       cv_err *e);

/* The tensor's values as float32 in a malloc'd array (its data, or the graph's
 * loader), or NULL with a message. */
float *ec_ref_tensor(const cv_graph *g, int t, cv_err *e);

#endif
