/* gen_ecm_seeds.c - writes the tiny .ecm seed models of fuzz_ecm.
 *
 * `effcam synth` builds full-width networks (megabytes even at 32x32), and the
 * converted tiny fixtures are 0.4-1 MB: both far too slow to mutate. These
 * graphs are a few KB each, yet together use every op, every activation,
 * float16 and float32 kernels, biases present and absent, broadcast Mul,
 * residual Add, Dropout/Reshape aliases and a model without any convolution
 * (no Grad-CAM target). The committed files in tests/fuzz/seeds/ecm/ were
 * written by this program; rerun it after an .ecm format change:
 *
 *   make build/fuzz/gen_ecm_seeds && build/fuzz/gen_ecm_seeds tests/fuzz/seeds/ecm
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/cv.h"
#include "engine/ecm_format.h"

typedef struct {
    cv_graph *g;
    int cur;          /* running activation (value id) */
    uint32_t rng;
    int f16;
    int fail;
} gb;

static float rnd(gb *b)
{
    b->rng = b->rng * 1664525u + 1013904223u;
    return (float)((b->rng >> 8) & 0xffff) / 32768.0f - 1.0f;   /* [-1, 1) */
}

/* A tensor "layer/var" held in memory: values in [lo, lo + span). */
static int tensor(gb *b, const char *layer, const char *var, int rank, const int64_t *dims, float lo,
                  float span, int f16)
{
    char name[128];
    snprintf(name, sizeof name, "%s/%s", layer, var);
    int id = cv_graph_add_tensor(b->g, name, rank, dims);
    if (id < 0) { b->fail = 1; return -1; }
    cv_tensor *t = &b->g->tensors[id];
    int64_t n = cv_tensor_elems(t);
    t->data = malloc((size_t)n * sizeof *t->data);
    if (!t->data) { b->fail = 1; return -1; }
    for (int64_t i = 0; i < n; i++) t->data[i] = lo + span * (rnd(b) + 1.0f) / 2.0f;
    t->to_f16 = f16;
    return id;
}

static cv_node *node(gb *b, int op, const char *name, int n_in, const int *in, int h, int w, int c)
{
    int out = cv_graph_add_value(b->g, name, h, w, c);
    cv_node *n = out < 0 ? NULL : cv_graph_add_node(b->g, op, name);
    if (!n) { b->fail = 1; return NULL; }
    n->n_in = n_in;
    for (int i = 0; i < n_in; i++) n->in[i] = in[i];
    n->out = out;
    b->cur = out;
    return n;
}

static const cv_value *cur(gb *b) { return &b->g->values[b->cur]; }

/* Conv2D (explicit pads) or DepthwiseConv2D (mult), optional bias, activation. */
static void conv(gb *b, int dw, const char *name, int cout_or_mult, int k, int s, int pt, int pb, int pl,
                 int pr, int bias, int act)
{
    if (b->fail) return;
    const cv_value *x = cur(b);
    int cin = x->c, x_id = b->cur;
    int oh = (x->h + pt + pb - k) / s + 1, ow = (x->w + pl + pr - k) / s + 1;
    int cout = dw ? cin * cout_or_mult : cout_or_mult;
    int64_t kd[4] = { k, k, cin, cout_or_mult };
    int wk = tensor(b, name, dw ? "depthwise_kernel" : "kernel", 4, kd, -0.5f, 1.0f, dw ? 0 : b->f16);
    int64_t bd = cout;
    int wb = bias ? tensor(b, name, "bias", 1, &bd, -0.1f, 0.2f, 0) : -1;
    cv_node *n = node(b, dw ? ECM_OP_DWCONV2D : ECM_OP_CONV2D, name, 1, &x_id, oh, ow, cout);
    if (!n) return;
    n->n_w = 2;
    n->w[0] = wk;
    n->w[1] = wb;
    n->kh = n->kw = k;
    n->sh = n->sw = s;
    n->pt = pt, n->pb = pb, n->pl = pl, n->pr = pr;
    n->mult = dw ? cout_or_mult : 1;
    n->act = act;
}

static void bn(gb *b, const char *name, int affine)
{
    if (b->fail) return;
    int x_id = b->cur, c = cur(b)->c, h = cur(b)->h, w = cur(b)->w;
    int64_t d = c;
    int t0 = affine ? tensor(b, name, "gamma", 1, &d, 0.5f, 1.0f, 0) : -1;
    int t1 = affine ? tensor(b, name, "beta", 1, &d, -0.5f, 1.0f, 0) : -1;
    int t2 = tensor(b, name, "moving_mean", 1, &d, -0.2f, 0.4f, 0);
    int t3 = tensor(b, name, "moving_variance", 1, &d, 0.5f, 1.0f, 0);
    cv_node *n = node(b, ECM_OP_BATCHNORM, name, 1, &x_id, h, w, c);
    if (!n) return;
    n->n_w = 4;
    n->w[0] = t0, n->w[1] = t1, n->w[2] = t2, n->w[3] = t3;
    n->f0 = 1e-3f;
}

static cv_node *unary(gb *b, int op, const char *name, int act)
{
    if (b->fail) return NULL;
    int x_id = b->cur;
    const cv_value *x = cur(b);
    cv_node *n = node(b, op, name, 1, &x_id, x->h, x->w, x->c);
    if (n) n->act = act;
    return n;
}

static void dense(gb *b, const char *name, int cout, int bias, int act)
{
    if (b->fail) return;
    int x_id = b->cur, cin = cur(b)->c;
    int64_t kd[2] = { cin, cout }, bd = cout;
    int wk = tensor(b, name, "kernel", 2, kd, -0.5f, 1.0f, b->f16);
    int wb = bias ? tensor(b, name, "bias", 1, &bd, -0.1f, 0.2f, 0) : -1;
    cv_node *n = node(b, ECM_OP_DENSE, name, 1, &x_id, 1, 1, cout);
    if (!n) return;
    n->n_w = 2;
    n->w[0] = wk;
    n->w[1] = wb;
    n->act = act;
}

static void gap(gb *b, const char *name, int keepdims)
{
    if (b->fail) return;
    int x_id = b->cur, c = cur(b)->c;
    cv_node *n = node(b, ECM_OP_GAP, name, 1, &x_id, 1, 1, c);
    if (n && keepdims) n->flags = ECM_NF_KEEPDIMS;
}

static int input(gb *b, int h, int w)
{
    b->cur = cv_graph_add_value(b->g, "input_layer", h, w, 3);
    if (b->cur < 0) b->fail = 1;
    b->g->input_value = b->cur;
    return b->cur;
}

/* EfficientNet in miniature: stem, an MBConv block with squeeze-excite and a
 * residual, head, classifier. Every op but Reshape. */
static void mini_effnet(gb *b, int h, int w, int classes)
{
    input(b, h, w);
    cv_node *n = unary(b, ECM_OP_RESCALE, "rescaling", ECM_ACT_LINEAR);
    if (n) n->f0 = 1.0f / 255.0f, n->f1 = 0.0f;
    if (!b->fail) {
        int x_id = b->cur;
        int64_t d = 3;
        int tm = tensor(b, "normalization", "mean", 1, &d, 0.4f, 0.2f, 0);
        int tv = tensor(b, "normalization", "variance", 1, &d, 0.05f, 0.05f, 0);
        if (tm >= 0) b->g->tensors[tm].flags = ECM_TF_DERIVED;
        if (tv >= 0) b->g->tensors[tv].flags = ECM_TF_DERIVED;
        n = node(b, ECM_OP_NORMALIZE, "normalization", 1, &x_id, h, w, 3);
        if (n) n->n_w = 2, n->w[0] = tm, n->w[1] = tv;
    }
    if ((n = unary(b, ECM_OP_ZEROPAD, "stem_conv_pad", ECM_ACT_LINEAR))) {
        n->pt = 0, n->pb = 1, n->pl = 0, n->pr = 1;
        b->g->values[n->out].h += 1;
        b->g->values[n->out].w += 1;
    }
    conv(b, 0, "stem_conv", 4, 3, 2, 0, 0, 0, 0, 0, ECM_ACT_LINEAR);
    bn(b, "stem_bn", 1);
    unary(b, ECM_OP_ACTIVATION, "stem_activation", ECM_ACT_SWISH);
    int block_in = b->cur;
    conv(b, 1, "block1a_dwconv", 2, 3, 1, 1, 1, 1, 1, 0, ECM_ACT_LINEAR);
    bn(b, "block1a_bn", 1);
    unary(b, ECM_OP_ACTIVATION, "block1a_activation", ECM_ACT_RELU6);
    int se_in = b->cur;
    gap(b, "block1a_se_squeeze", 0);
    if ((n = unary(b, ECM_OP_RESHAPE, "block1a_se_reshape", ECM_ACT_LINEAR))) (void)n;
    conv(b, 0, "block1a_se_reduce", 2, 1, 1, 0, 0, 0, 0, 1, ECM_ACT_SWISH);
    conv(b, 0, "block1a_se_expand", 8, 1, 1, 0, 0, 0, 0, 1, ECM_ACT_SIGMOID);
    if (!b->fail) {
        int ab[2] = { se_in, b->cur };
        const cv_value *x = &b->g->values[se_in];
        node(b, ECM_OP_MUL, "block1a_se_excite", 2, ab, x->h, x->w, x->c);
    }
    conv(b, 0, "block1a_project_conv", 4, 1, 1, 0, 0, 0, 0, 0, ECM_ACT_LINEAR);
    bn(b, "block1a_project_bn", 0);
    unary(b, ECM_OP_IDENTITY, "block1a_drop", ECM_ACT_LINEAR);
    if (!b->fail) {
        int ab[2] = { b->cur, block_in };
        const cv_value *x = cur(b);
        node(b, ECM_OP_ADD, "block1a_add", 2, ab, x->h, x->w, x->c);
    }
    conv(b, 0, "top_conv", 6, 1, 1, 0, 0, 0, 0, 0, ECM_ACT_GELU);
    gap(b, "avg_pool", 0);
    unary(b, ECM_OP_IDENTITY, "top_dropout", ECM_ACT_LINEAR);
    dense(b, "predictions", classes, 1, ECM_ACT_SOFTMAX);
}

/* No convolution at all: Flatten (Reshape) + two Dense layers. */
static void mlp(gb *b, int h, int w, int classes)
{
    input(b, h, w);
    cv_node *n = unary(b, ECM_OP_RESCALE, "rescaling", ECM_ACT_LINEAR);
    if (n) n->f0 = 1.0f / 127.5f, n->f1 = -1.0f;
    if ((n = unary(b, ECM_OP_RESHAPE, "flatten", ECM_ACT_LINEAR))) {
        b->g->values[n->out].h = 1;
        b->g->values[n->out].w = 1;
        b->g->values[n->out].c = h * w * 3;
    }
    dense(b, "hidden", 5, 0, ECM_ACT_TANH);
    unary(b, ECM_OP_ACTIVATION, "act", ECM_ACT_RELU);
    dense(b, "logits", classes, 1, ECM_ACT_LINEAR);
    unary(b, ECM_OP_ACTIVATION, "probs", ECM_ACT_SOFTMAX);
}

/* Strided SAME-style convs with asymmetric pads, a depth multiplier, three-way
 * Add, broadcast Mul with the vector first, sigmoid head. */
static void branchy(gb *b, int h, int w, int classes)
{
    input(b, h, w);
    conv(b, 0, "c1", 3, 3, 2, 0, 1, 1, 1, 1, ECM_ACT_RELU);
    int a = b->cur;
    conv(b, 1, "d1", 1, 3, 1, 1, 1, 1, 1, 1, ECM_ACT_TANH);
    int c = b->cur;
    b->cur = a;
    conv(b, 0, "c2", 3, 1, 1, 0, 0, 0, 0, 0, ECM_ACT_SIGMOID);
    int d = b->cur;
    if (!b->fail) {
        int in3[3] = { a, c, d };
        const cv_value *x = &b->g->values[a];
        node(b, ECM_OP_ADD, "sum3", 3, in3, x->h, x->w, x->c);
    }
    int s = b->cur;
    gap(b, "pool_keep", 1);
    if (!b->fail) {
        int ab[2] = { b->cur, s };
        const cv_value *x = &b->g->values[s];
        node(b, ECM_OP_MUL, "gate", 2, ab, x->h, x->w, x->c);
    }
    conv(b, 1, "d2", 2, 2, 1, 0, 1, 0, 1, 0, ECM_ACT_RELU6);
    gap(b, "pool", 0);
    dense(b, "out", classes, 1, ECM_ACT_SIGMOID);
}

static int write_model(const char *dir, const char *file, void (*build)(gb *, int, int, int), int h, int w,
                       int classes, int f16, uint32_t seed)
{
    cv_graph g;
    cv_graph_init(&g);
    gb b = { &g, -1, seed, f16, 0 };
    build(&b, h, w, classes);
    cv_err e = { "" };
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int r = -1;
    if (b.fail) {
        fprintf(stderr, "%s: out of memory\n", file);
    } else {
        g.output_value = b.cur;
        cv_graph_pick_gradcam(&g);
        if (cv_graph_set_labels(&g, NULL, &e) || cv_ecm_write(&g, path, &e))
            fprintf(stderr, "%s: %s\n", path, e.msg);
        else
            r = 0;
    }
    cv_graph_free(&g);
    return r;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_ecm_seeds OUT_DIR\n");
        return 2;
    }
    const char *d = argv[1];
    int bad = 0;
    bad |= write_model(d, "mini_effnet_8x8_f16.ecm", mini_effnet, 8, 8, 3, 1, 1);
    bad |= write_model(d, "mini_effnet_9x7_f32.ecm", mini_effnet, 9, 7, 2, 0, 2);
    bad |= write_model(d, "mlp_4x3.ecm", mlp, 4, 3, 3, 0, 3);
    bad |= write_model(d, "branchy_8x8_f16.ecm", branchy, 8, 8, 4, 1, 4);
    bad |= write_model(d, "branchy_5x6_f32.ecm", branchy, 5, 6, 1, 0, 5);
    return bad ? 1 : 0;
}
