/* gradcam.c - running the explanations' backward pass (gradcam.h) after a
 * forward pass, and the heatmap.
 *
 * The plan (backward.c) lists the steps: seed the class score's gradient,
 * then for each block from the output back to the target, its forward again
 * where it was not kept, then each node's backward (ops.c, under its
 * forward). The steps read forward values through g->bval (pinned ones in
 * the forward's buffers, recomputed ones in the backward's) and gradients
 * through g->gptr; each runs with its own temporary as ex->tmp. Then the
 * CAM method's map from A and its gradient (engine/cam.c), normalized as the
 * app does. */
#include <math.h>
#include <string.h>

#include "../kernels/kernels.h"
#include "error.h"
#include "gradcam.h"

/* A node's backward: the gradients of its inputs from its output's. */
static void ec_bw_node(const ec_exec *ex, const ec_gradcam_plan *g, const ec_bw_step *b, int logit)
{
    const ec_model *m = ex->m;
    const ec_node *n = &m->nodes[b->node];
    const ec_value *vy = &m->values[n->out], *vx = &m->values[n->in[0]];
    float *const *grad = ex->grad, *const *val = ex->val;
    const float *dy = grad[b->dy];
    float *dx = b->dx[0] >= 0 ? grad[b->dx[0]] : NULL;
    const int acc = b->acc[0];
    const size_t rows = (size_t)vy->h * vy->w;
    /* the logit score: the gradient one-hot before the final softmax */
    const int dlogit = logit && n->out == m->output && n->act == ECM_ACT_SOFTMAX;
    const float *scale = b->fold >= 0 ? m->nodes[b->fold].scale : NULL;
    const float *z = g->virt_of[b->node] >= 0 ? val[g->virt_of[b->node]] : n->act == ECM_ACT_SOFTMAX ? val[n->out] : NULL;
    switch (n->op) {
    case ECM_OP_ACTIVATION:
        ec_act_backward(ex, n->act, val[n->in[0]], val[n->out], scale, rows, vy->c, dy, dx, acc, dlogit);
        break;
    case ECM_OP_BATCHNORM:
    case ECM_OP_NORMALIZE:
        ec_scale_backward(ex, n->scale, 0.0f, rows, vy->c, dy, dx, acc);
        break;
    case ECM_OP_RESCALE:
        ec_scale_backward(ex, NULL, n->f0, rows, vy->c, dy, dx, acc);
        break;
    case ECM_OP_CONV2D:
        ec_conv_backward(ex, n, dlogit ? ECM_ACT_LINEAR : n->act, scale, z, dy, dx, acc);
        break;
    case ECM_OP_DWCONV2D:
        ec_dwconv_backward(ex, n, dlogit ? ECM_ACT_LINEAR : n->act, scale, z, dy, dx, acc);
        break;
    case ECM_OP_DENSE:
        ec_dense_backward(ex, n, z, val[n->out], dy, dx, acc, dlogit);
        break;
    case ECM_OP_GAP:
        ec_gap_backward(ex, (size_t)vx->h * vx->w, vx->c, dy, dx, acc);
        break;
    case ECM_OP_ZEROPAD:
        ec_zeropad_backward(ex, n, dy, dx, acc);
        break;
    case ECM_OP_IDENTITY:
    case ECM_OP_RESHAPE:
        ec_copy_backward(ex, rows * vy->c, dy, dx, acc);
        break;
    case ECM_OP_ADD:
        for (int k = 0; k < n->n_in; k++)
            if (b->dx[k] >= 0) ec_copy_backward(ex, rows * vy->c, dy, grad[b->dx[k]], b->acc[k]);
        break;
    case ECM_OP_MUL:
        for (int k = 0; k < 2; k++)
            if (b->dx[k] >= 0) ec_mul_backward(ex, n, k, dy, grad[b->dx[k]], b->acc[k]);
        break;
    default:
        break;   /* the loader admits no other op */
    }
}

/* y = act(z) over a recomputed pre-activation: the node's own activation */
static void ec_bw_act(const ec_exec *ex, const ec_bw_step *b)
{
    const ec_node *n = &ex->m->nodes[b->node];
    const ec_value *vy = &ex->m->values[n->out];
    ec_f32_act(ex->val[b->z], ex->val[n->out], (size_t)vy->h * vy->w, vy->c, n->act);
}

ec_status ec_gradcam_run(const ec_exec *ex, const ec_gradcam_plan *g, int cls, int logit, ec_cam_method method,
                         float *cam, ec_cam_eigen_info *info, double *ws)
{
    const ec_model *m = ex->m;
    const ec_value *va = &m->values[g->A];
    const size_t hw = (size_t)va->h * va->w;
    ec_exec bx = *ex;
    bx.val = g->bval;
    bx.grad = g->gptr;
    const int need_grad = ec_cam_method_needs_grad(method);
    if (need_grad) {
        /* seed: d score / d output = one-hot at the class */
        float *dout = g->gptr[m->output];   /* [K] */
        for (int k = 0; k < m->n_labels; k++) dout[k] = k == cls ? 1.0f : 0.0f;
        for (int s = 0; s < g->n_steps; s++) {
            const ec_bw_step *b = &g->steps[s];
            bx.tmp = g->tptr[s];
            bx.tmp_floats = b->tmp_floats;
            if (b->kind == EC_BW_FWD) ec_op_forward(&bx, &b->fwd);
            else if (b->kind == EC_BW_ACT) ec_bw_act(&bx, b);
            else ec_bw_node(&bx, g, b, logit);
        }
    }
    return ec_cam_compute_ws(method, g->bval[g->A], need_grad ? g->gptr[g->A] : NULL, hw, va->c, cam, info, ws);
}
