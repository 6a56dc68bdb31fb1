/* ops.h - every operator the engine runs: each forward directly above its
 * backward twin in ops.c, both taking one execution context.
 *
 * Forward: ec_op_forward runs one planned step (an op with its fused BN and
 * activation) from ex->val[inputs] into ex->val[st->out]. Backward (for the
 * explanations, driven by gradcam.c): each takes the forward's arguments plus
 * d-prefixed gradients; acc = 1 adds into dx instead of overwriting it (a
 * value read by several ops gets the sum of their gradients).
 *
 * Threading: work is split by rows of the output (GEMM rows, im2col tiles,
 * dwconv output rows, elementwise pixel rows) or by panels/channels, so every
 * output element is computed by the same arithmetic whatever the thread
 * count: results are bit-identical for threads = 1, 2, ... */
#ifndef EFFCAM_OPS_H
#define EFFCAM_OPS_H

#include <stddef.h>

#include "engine.h"
#include "pool.h"

typedef struct {
    const ec_model *m;
    ec_pool *pool;                /* NULL: the calling thread only */
    int threads;
    float **val;                  /* [n_values] forward values in the arena, NULL if fused away */
    float **grad;                 /* [n_values] gradient buffers in the arena, NULL (forward only) */
    float *wide;                  /* one layer's kernel, widened from fp16 and/or packed */
    float *col;                   /* [threads][col_stride] per-thread tiles (im2col, Winograd) */
    size_t col_stride;            /* floats */
    float *tmp;                   /* [tmp_floats] backward temporaries */
    size_t tmp_floats;
} ec_exec;

/* ---- forward ----------------------------------------------------------------- */
void ec_op_forward(const ec_exec *ex, const ec_step *st);
/* A tensor as float32: fp32 tensors in place in the map, fp16 ones widened
 * into ex->wide (valid until the next op). */
const float *ec_exec_weights(const ec_exec *ex, int tensor);

/* ---- backward ----------------------------------------------------------------- */
/* dense: dx (+)= dz @ W^T with dz = dy through the activation (softmax from y;
 * dy_is_dlogit: dy is already the logit's gradient). Uses ex->tmp. */
void ec_dense_backward(const ec_exec *ex, const ec_node *n, const float *x, const float *y,
                       const float *dy, float *dx, int acc, int dy_is_dlogit);
/* y = act(x) over [rows, c]: dx (+)= dy * act'(x), or the softmax rule from y. */
void ec_act_backward(const ec_exec *ex, int act, const float *x, const float *y, size_t rows, int c,
                     const float *dy, float *dx, int acc);
/* y = x * scale[c] + shift (batchnorm, normalize), or x * f + offset (rescale,
 * scale NULL): dx (+)= dy * scale. */
void ec_scale_backward(const ec_exec *ex, const float *scale, float f, size_t rows, int c, const float *dy,
                       float *dx, int acc);
/* y = x (identity, reshape, each input of add): dx (+)= dy. */
void ec_copy_backward(const ec_exec *ex, size_t n, const float *dy, float *dx, int acc);
/* y = a * b (b same shape, or broadcast 1x1xC, or a the broadcast one): the
 * gradient for a, given b. */
void ec_mul_backward(const ec_exec *ex, const ec_value *va, const float *b, const ec_value *vb, const float *dy,
                     float *da, int acc);
/* y[c] = mean over hw of x[hw, c]: dx[hw, c] (+)= dy[c] / hw. */
void ec_gap_backward(const ec_exec *ex, size_t hw, int c, const float *dy, float *dx, int acc);
/* y = x padded with zeros: dx (+)= the interior of dy. */
void ec_zeropad_backward(const ec_exec *ex, const ec_node *n, const ec_value *vx, const ec_value *vy,
                         const float *dy, float *dx, int acc);

#endif
