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
    float *tmp;                   /* [tmp_floats] the backward step's temporary */
    size_t tmp_floats;
} ec_exec;

/* ---- forward ----------------------------------------------------------------- */
void ec_op_forward(const ec_exec *ex, const ec_step *st);
/* A tensor as float32: fp32 tensors in place in the map, fp16 ones widened
 * into ex->wide (valid until the next op). */
const float *ec_exec_weights(const ec_exec *ex, int tensor);

/* ---- backward ----------------------------------------------------------------- */
/* Each op's data gradient (no weight gradients), driven by gradcam.c in the
 * order backward.c planned. ex->tmp [ex->tmp_floats] is the step's own
 * temporary, sized by ec_op_backward_need; ex->col and ex->wide the scratch
 * the forward uses too. acc = 1 adds into dx, else overwrites. */
typedef struct {
    size_t tmp;                   /* floats of the step's temporary (acc = 1 included) */
    size_t col;                   /* floats of per-thread scratch */
    size_t wide;                  /* floats of ex->wide */
} ec_bw_need;
void ec_op_backward_need(const ec_model *m, const ec_node *n, int acc, ec_bw_need *need);

/* conv2d / dwconv2d: dy is the gradient of act(conv(x) * scale + shift), scale
 * the BN that followed it folded in (or NULL); act: the node's own activation
 * (or EC_ACT_LINEAR for none, or for the logit before a softmax), z its
 * pre-activation (for softmax: the output). */
void ec_conv_backward(const ec_exec *ex, const ec_node *n, int act, const float *scale, const float *z,
                      const float *dy, float *dx, int acc);
void ec_dwconv_backward(const ec_exec *ex, const ec_node *n, int act, const float *scale, const float *z,
                        const float *dy, float *dx, int acc);
/* dense: dx (+)= dz @ W^T with dz = dy through the activation (softmax from y,
 * others from the pre-activation z; dy_is_dlogit: dy is already the logit's). */
void ec_dense_backward(const ec_exec *ex, const ec_node *n, const float *z, const float *y,
                       const float *dy, float *dx, int acc, int dy_is_dlogit);
/* y = act(x) over [rows, c] (x after the scale and shift of a BN folded in):
 * dx (+)= dy * act'(x) * scale[c] (scale may be NULL), the softmax rule from y,
 * or dy itself when dlogit (the logit's gradient before a softmax). */
void ec_act_backward(const ec_exec *ex, int act, const float *x, const float *y, const float *scale, size_t rows,
                     int c, const float *dy, float *dx, int acc, int dlogit);
/* y = x * scale[c] + shift (batchnorm, normalize), or x * f + offset (rescale,
 * scale NULL): dx (+)= dy * scale. */
void ec_scale_backward(const ec_exec *ex, const float *scale, float f, size_t rows, int c, const float *dy,
                       float *dx, int acc);
/* y = x (identity, reshape, each input of add): dx (+)= dy (nothing if dx == dy). */
void ec_copy_backward(const ec_exec *ex, size_t n, const float *dy, float *dx, int acc);
/* multiply node n: the gradient of its input k (same shapes, or either side the
 * broadcast 1x1xC one), the other operand read from ex->val. */
void ec_mul_backward(const ec_exec *ex, const ec_node *n, int k, const float *dy, float *dx, int acc);
/* y[c] = mean over hw of x[hw, c]: dx[hw, c] (+)= dy[c] / hw. */
void ec_gap_backward(const ec_exec *ex, size_t hw, int c, const float *dy, float *dx, int acc);
/* y = x padded with zeros: dx (+)= the interior of dy. */
void ec_zeropad_backward(const ec_exec *ex, const ec_node *n, const float *dy, float *dx, int acc);

#endif
