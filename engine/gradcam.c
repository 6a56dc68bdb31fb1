/* gradcam.c - Grad-CAM as the app computes it (docs/semantics.md section 4), with a
 * hand-written backward pass.
 *
 * At session creation: find the target conv A, the nodes between A and the
 * output (the path), refuse any op we cannot differentiate, list the forward
 * values the backward pass reads (pinned in the plan) and plan the gradient
 * buffers with the same greedy planner. After each forward pass: seed the
 * class score's gradient, walk the path backwards calling each op's backward
 * (ops.c, under its forward), then pool the gradient into the heatmap. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gradcam.h"

static size_t ec_align64(size_t n) { return (n + EC_ARENA_ALIGN - 1) & ~(size_t)(EC_ARENA_ALIGN - 1); }

void ec_gradcam_plan_free(ec_gradcam_plan *g)
{
    free(g->path);
    free(g->on);
    free(g->pin);
    free(g->gbuf);
    free(g->gbufs);
    free(g->written);
    memset(g, 0, sizeof *g);
}

static int ec_backprop_ok(int op)
{
    switch (op) {
    case ECM_OP_ACTIVATION: case ECM_OP_DENSE: case ECM_OP_IDENTITY: case ECM_OP_RESHAPE: case ECM_OP_GAP:
    case ECM_OP_BATCHNORM: case ECM_OP_ADD: case ECM_OP_MUL: case ECM_OP_RESCALE: case ECM_OP_NORMALIZE:
    case ECM_OP_ZEROPAD:
        return 1;
    default:
        return 0;
    }
}

ec_status ec_gradcam_prepare(const ec_model *m, const ec_session_options *opt, ec_gradcam_plan *g)
{
    memset(g, 0, sizeof *g);
    int target;
    if (opt->cam_layer) {
        target = ec_model_find_node(m, opt->cam_layer);
        if (target < 0) return ec_fail(EC_ERR_ARG, "grad-cam: the model has no layer named %s", opt->cam_layer);
        int op = m->nodes[target].op;
        if (op != ECM_OP_CONV2D && op != ECM_OP_DWCONV2D)
            return ec_fail(EC_ERR_ARG, "grad-cam: layer %s is a %s, not a conv2d or dwconv2d", opt->cam_layer, ec_op_name(op));
    } else {
        target = m->gradcam_node;
        if (target < 0) return ec_fail(EC_ERR_UNSUPPORTED, "grad-cam: the model has no target layer (set cam_layer)");
    }
    int nv = m->n_values, nn = m->n_nodes;
    g->target = target;
    g->A = m->nodes[target].out;
    g->on = calloc((size_t)nv, 1);
    g->pin = calloc((size_t)nv, 1);
    g->gbuf = malloc((size_t)nv * sizeof *g->gbuf);
    g->written = calloc((size_t)nv, 1);
    g->path = malloc((size_t)nn * sizeof *g->path);
    unsigned char *anc = calloc((size_t)nv, 1);   /* [nv] 1 = the output depends on it */
    if (!g->on || !g->pin || !g->gbuf || !g->written || !g->path || !anc) {
        free(anc);
        ec_gradcam_plan_free(g);
        return ec_fail(EC_ERR_NOMEM, "out of memory");
    }
    /* on = depends on A (forward sweep) and reaches the output (backward sweep) */
    g->on[g->A] = 1;
    for (int i = target + 1; i < nn; i++)
        for (int k = 0; k < m->nodes[i].n_in; k++)
            if (g->on[m->nodes[i].in[k]]) g->on[m->nodes[i].out] = 1;
    anc[m->output] = 1;
    for (int i = nn - 1; i >= 0; i--)
        if (anc[m->nodes[i].out])
            for (int k = 0; k < m->nodes[i].n_in; k++) anc[m->nodes[i].in[k]] = 1;
    for (int v = 0; v < nv; v++) g->on[v] &= anc[v];
    free(anc);
    if (!g->on[m->output]) {
        ec_status st = ec_fail(EC_ERR_ARG, "grad-cam: the output does not depend on layer %s", m->nodes[target].name);
        ec_gradcam_plan_free(g);
        return st;
    }

    /* the path, its ops, and the forward values each backward op reads */
    g->pin[g->A] = 1;
    for (int i = target + 1; i < nn; i++) {
        const ec_node *n = &m->nodes[i];
        if (!g->on[n->out]) continue;
        if (!ec_backprop_ok(n->op)) {
            ec_status st = ec_fail(EC_ERR_UNSUPPORTED, "grad-cam: cannot backpropagate through layer %s (%s)", n->name, ec_op_name(n->op));
            ec_gradcam_plan_free(g);
            return st;
        }
        g->path[g->n_path++] = i;
        if (n->op == ECM_OP_ACTIVATION || n->op == ECM_OP_DENSE) {
            if (n->act == ECM_ACT_SOFTMAX) g->pin[n->out] = 1;                          /* softmax': y */
            else if (n->act != ECM_ACT_LINEAR) g->pin[n->in[0]] = 1;                     /* act'(x) */
        } else if (n->op == ECM_OP_MUL) {
            for (int k = 0; k < 2; k++)
                if (g->on[n->in[k]]) g->pin[n->in[1 - k]] = 1;                          /* the product rule */
        }
    }

    /* Gradient buffers, in backward time: path node i runs at n_path - i; the seed
     * is written at 0, the heatmap reads dA at n_path + 1. */
    int P = g->n_path;
    g->gbufs = malloc((size_t)nv * sizeof *g->gbufs);
    if (!g->gbufs) { ec_gradcam_plan_free(g); return ec_fail(EC_ERR_NOMEM, "out of memory"); }
    for (int v = 0; v < nv; v++) g->gbuf[v] = -1;
    size_t tmp = 0;
    for (int v = 0; v < nv; v++) {
        if (!g->on[v]) continue;
        const ec_value *val = &m->values[v];
        size_t elems = (size_t)val->h * val->w * val->c;
        if (elems > tmp) tmp = elems;
        ec_plan_buf *b = &g->gbufs[g->n_gbufs];
        b->bytes = ec_align64(elems * sizeof(float));
        b->first = v == m->output ? 0 : P + 1;
        b->last = v == g->A ? P + 1 : 0;
        b->pinned = 0;
        b->offset = 0;
        for (int j = 0; j < P; j++) {
            const ec_node *n = &m->nodes[g->path[j]];
            int t = P - j;
            if (n->out == v && t > b->last) b->last = t;              /* read by its producer's backward */
            for (int k = 0; k < n->n_in; k++)
                if (n->in[k] == v && t < b->first) b->first = t;     /* first written by a consumer */
        }
        if (b->last < b->first) b->last = b->first;
        g->gbuf[v] = g->n_gbufs++;
    }
    /* two halves: dense's dz and recomputed z; the accumulation temp of the others */
    g->tmp_floats = 2 * tmp;
    return ec_plan_place(g->gbufs, g->n_gbufs, &g->grad_bytes);
}

ec_status ec_gradcam_run(const ec_exec *ex, const ec_gradcam_plan *g, int cls, int logit, float *cam)
{
    const ec_model *m = ex->m;
    float *const *grad = ex->grad, *const *val = ex->val;
    int nv = m->n_values;
    /* which gradients hold data yet: the first writer overwrites, later ones add */
    unsigned char *wr = g->written;   /* [nv] */
    memset(wr, 0, (size_t)nv);

    /* seed: d score / d output = one-hot at the class */
    float *dout = grad[m->output];   /* [K] */
    for (int k = 0; k < m->n_labels; k++) dout[k] = k == cls ? 1.0f : 0.0f;
    wr[m->output] = 1;

    for (int j = g->n_path - 1; j >= 0; j--) {
        const ec_node *n = &m->nodes[g->path[j]];
        if (!wr[n->out]) continue;   /* no gradient reached it */
        const ec_value *vy = &m->values[n->out], *vx = &m->values[n->in[0]];
        const float *dy = grad[n->out];
        const float *x = val[n->in[0]], *y = val[n->out];
        float *dx = grad[n->in[0]];
        int x_on = g->on[n->in[0]], acc = wr[n->in[0]];
        size_t rows = (size_t)vy->h * vy->w;
        /* the logit score: gradient one-hot before the final softmax */
        int dlogit = logit && n->out == m->output && n->act == ECM_ACT_SOFTMAX;
        switch (n->op) {
        case ECM_OP_ACTIVATION:
            if (dlogit) ec_copy_backward(ex, rows * vy->c, dy, dx, acc);
            else ec_act_backward(ex, n->act, x, y, rows, vy->c, dy, dx, acc);
            break;
        case ECM_OP_DENSE:
            ec_dense_backward(ex, n, x, y, dy, dx, acc, dlogit);
            break;
        case ECM_OP_BATCHNORM:
        case ECM_OP_NORMALIZE:
            ec_scale_backward(ex, n->scale, 0.0f, rows, vy->c, dy, dx, acc);
            break;
        case ECM_OP_RESCALE:
            ec_scale_backward(ex, NULL, n->f0, rows, vy->c, dy, dx, acc);
            break;
        case ECM_OP_GAP:
            ec_gap_backward(ex, (size_t)vx->h * vx->w, vx->c, dy, dx, acc);
            break;
        case ECM_OP_IDENTITY:
        case ECM_OP_RESHAPE:
            ec_copy_backward(ex, rows * vy->c, dy, dx, acc);
            break;
        case ECM_OP_ZEROPAD:
            ec_zeropad_backward(ex, n, vx, vy, dy, dx, acc);
            break;
        case ECM_OP_ADD:
            x_on = 0;   /* every input handled here */
            for (int k = 0; k < n->n_in; k++) {
                int v = n->in[k];
                if (!g->on[v]) continue;
                ec_copy_backward(ex, rows * vy->c, dy, grad[v], wr[v]);
                wr[v] = 1;
            }
            break;
        case ECM_OP_MUL:
            x_on = 0;
            for (int k = 0; k < 2; k++) {
                int v = n->in[k], o = n->in[1 - k];
                if (!g->on[v]) continue;
                ec_mul_backward(ex, &m->values[v], val[o], &m->values[o], dy, grad[v], wr[v]);
                wr[v] = 1;
            }
            break;
        default:
            return ec_fail(EC_ERR_INTERNAL, "grad-cam: no backward for layer %s", n->name);
        }
        if (x_on) wr[n->in[0]] = 1;
    }

    /* heatmap: weights_k = mean_ij G[i,j,k]; cam = relu(sum_k A[i,j,k] * weights_k) */
    const ec_value *va = &m->values[g->A];
    size_t hw = (size_t)va->h * va->w;
    int C = va->c;
    const float *A = val[g->A];   /* [hw, C] */
    const float *G = grad[g->A];   /* [hw, C] */
    float *wk = ex->tmp;               /* [C] */
    int have_grad = wr[g->A];
    for (int k = 0; k < C; k++) {
        double sum = 0.0;   /* double: hw * C terms of mixed sign */
        for (size_t p = 0; have_grad && p < hw; p++) sum += G[p * C + k];
        wk[k] = (float)(sum / (double)hw);
    }
    float mx = 0.0f;
    for (size_t p = 0; p < hw; p++) {
        double sum = 0.0;
        for (int k = 0; k < C; k++) sum += (double)A[p * C + k] * wk[k];
        cam[p] = sum > 0.0 ? (float)sum : 0.0f;
        if (cam[p] > mx) mx = cam[p];
    }
    /* The app: if max > 1e-10 divide by it; otherwise take |cam| and normalize it
     * the same way if its max exceeds 1e-10. After the relu |cam| == cam, so that
     * branch changes nothing; kept literal. */
    if (mx > 1e-10f) {
        for (size_t p = 0; p < hw; p++) cam[p] /= mx;
    } else {
        float ma = 0.0f;
        for (size_t p = 0; p < hw; p++) {
            cam[p] = fabsf(cam[p]);
            if (cam[p] > ma) ma = cam[p];
        }
        if (ma > 1e-10f)
            for (size_t p = 0; p < hw; p++) cam[p] /= ma;
    }
    return EC_OK;
}
