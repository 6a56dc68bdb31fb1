/* test_engine.c - the engine core: loader validation, the memory planner, the
 * forward pass (fused vs keep_all), Grad-CAM's backward (finite differences),
 * threads (bit-identical), and the Keras fixtures layer by layer and end to end.
 *
 * Tiny graphs are built in memory with the converter's IR (convert/cv.h) and
 * written with its .ecm writer; the fixture models are converted with
 * cv_keras_open + cv_ecm_write in fp32 and fp16. Tolerances are stated at each
 * check; failures print the worst element. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "convert/cv.h"
#include "convert/json.h"
#include "engine/ecm_format.h"
#include "engine/internal.h"
#include "kernels/kernels.h"
#include "models/effnet.h"
#include "tests/harness.h"
#include "tests/convert_file.h"
#include "tests/json_file.h"
#include "tests/testutil.h"

/* ---- helpers ---------------------------------------------------------------- */

static char *path_join(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + (c ? strlen(c) : 0) + 3;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s%s%s", a, b, c ? "/" : "", c ? c : "");
    return p;
}

/* ---- tiny graphs through the converter's IR ------------------------------------ */

static int tg_tensor(cv_graph *g, const char *name, int rank, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                     float lo, float hi)
{
    int64_t dims[4] = { d0, d1, d2, d3 };
    int t = cv_graph_add_tensor(g, name, rank, dims);
    cv_tensor *T = &g->tensors[t];
    int64_t n = cv_tensor_elems(T);
    T->data = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) T->data[i] = t_rng_uniform(lo, hi);
    return t;
}

static cv_node *tg_node(cv_graph *g, int op, const char *name, int in0, int in1, int out)
{
    cv_node *n = cv_graph_add_node(g, op, name);
    n->n_in = in1 >= 0 ? 2 : 1;
    n->in[0] = in0;
    n->in[1] = in1;
    n->out = out;
    return n;
}

static void tg_bn(cv_graph *g, const char *name, int in, int out, int c)
{
    char nm[64];
    cv_node *n = tg_node(g, ECM_OP_BATCHNORM, name, in, -1, out);
    n->f0 = 1e-3f;
    n->n_w = 4;
    snprintf(nm, sizeof nm, "%s/gamma", name); n->w[0] = tg_tensor(g, nm, 1, c, 1, 1, 1, 0.5f, 1.5f);
    n = &g->nodes[g->n_nodes - 1];
    snprintf(nm, sizeof nm, "%s/beta", name); n->w[1] = tg_tensor(g, nm, 1, c, 1, 1, 1, -0.5f, 0.5f);
    n = &g->nodes[g->n_nodes - 1];
    snprintf(nm, sizeof nm, "%s/moving_mean", name); n->w[2] = tg_tensor(g, nm, 1, c, 1, 1, 1, -0.3f, 0.3f);
    n = &g->nodes[g->n_nodes - 1];
    snprintf(nm, sizeof nm, "%s/moving_variance", name); n->w[3] = tg_tensor(g, nm, 1, c, 1, 1, 1, 0.5f, 2.0f);
}

static int tg_conv(cv_graph *g, int op, const char *name, int in, int out, int k, int s, int pt, int pb, int pl, int pr,
                   int cin, int cout, int bias, int act)
{
    char nm[64];
    snprintf(nm, sizeof nm, "%s/kernel", name);
    float r = 1.5f / sqrtf((float)(k * k * (op == ECM_OP_DWCONV2D ? 1 : cin)));
    int kt = op == ECM_OP_DWCONV2D ? tg_tensor(g, nm, 4, k, k, cin, 1, -r, r) : tg_tensor(g, nm, 4, k, k, cin, cout, -r, r);
    int bt = -1;
    if (bias) {
        snprintf(nm, sizeof nm, "%s/bias", name);
        bt = tg_tensor(g, nm, 1, cout, 1, 1, 1, -0.2f, 0.2f);
    }
    cv_node *n = tg_node(g, op, name, in, -1, out);
    n->kh = n->kw = k;
    n->sh = n->sw = s;
    n->pt = pt, n->pb = pb, n->pl = pl, n->pr = pr;
    n->mult = 1;
    n->act = act;
    n->n_w = 2;
    n->w[0] = kt;
    n->w[1] = bt;
    return g->n_nodes - 1;
}

static void tg_dense(cv_graph *g, const char *name, int in, int out, int cin, int cout, int act, int f16)
{
    char nm[64];
    snprintf(nm, sizeof nm, "%s/kernel", name);
    float r = 2.0f / sqrtf((float)cin);
    int kt = tg_tensor(g, nm, 2, cin, cout, 1, 1, -r, r);
    g->tensors[kt].to_f16 = f16;
    snprintf(nm, sizeof nm, "%s/bias", name);
    int bt = tg_tensor(g, nm, 1, cout, 1, 1, 1, -0.3f, 0.3f);
    cv_node *n = tg_node(g, ECM_OP_DENSE, name, in, -1, out);
    n->act = act;
    n->n_w = 2;
    n->w[0] = kt;
    n->w[1] = bt;
}

/* G1, the V2 shape: rescale -> conv3x3 s2 + BN + swish -> dwconv3x3 + BN + swish ->
 * top_conv 1x1 (target) -> BN -> swish -> GAP -> dropout -> dense softmax. */
static void tg_build_v2(cv_graph *g, int f16)
{
    cv_graph_init(g);
    int x = cv_graph_add_value(g, "input", 9, 7, 3);
    int r = cv_graph_add_value(g, "rescaling", 9, 7, 3);
    cv_node *n = tg_node(g, ECM_OP_RESCALE, "rescaling", x, -1, r);
    n->f0 = 1.0f / 128, n->f1 = -1.0f;
    int a = cv_graph_add_value(g, "stem_conv", 5, 4, 8), b = cv_graph_add_value(g, "stem_bn", 5, 4, 8);
    int c = cv_graph_add_value(g, "stem_activation", 5, 4, 8);
    tg_conv(g, ECM_OP_CONV2D, "stem_conv", r, a, 3, 2, 1, 1, 1, 1, 3, 8, 0, ECM_ACT_LINEAR);
    g->tensors[g->nodes[g->n_nodes - 1].w[0]].to_f16 = f16;
    tg_bn(g, "stem_bn", a, b, 8);
    tg_node(g, ECM_OP_ACTIVATION, "stem_activation", b, -1, c)->act = ECM_ACT_SWISH;
    int d = cv_graph_add_value(g, "dw", 5, 4, 8), e = cv_graph_add_value(g, "dw_bn", 5, 4, 8);
    int f = cv_graph_add_value(g, "dw_act", 5, 4, 8);
    tg_conv(g, ECM_OP_DWCONV2D, "dw", c, d, 3, 1, 1, 1, 1, 1, 8, 8, 0, ECM_ACT_LINEAR);
    tg_bn(g, "dw_bn", d, e, 8);
    tg_node(g, ECM_OP_ACTIVATION, "dw_act", e, -1, f)->act = ECM_ACT_SWISH;
    int t = cv_graph_add_value(g, "top_conv", 5, 4, 12), tb = cv_graph_add_value(g, "top_bn", 5, 4, 12);
    int ta = cv_graph_add_value(g, "top_activation", 5, 4, 12);
    tg_conv(g, ECM_OP_CONV2D, "top_conv", f, t, 1, 1, 0, 0, 0, 0, 8, 12, 0, ECM_ACT_LINEAR);
    g->tensors[g->nodes[g->n_nodes - 1].w[0]].to_f16 = f16;
    tg_bn(g, "top_bn", t, tb, 12);
    tg_node(g, ECM_OP_ACTIVATION, "top_activation", tb, -1, ta)->act = ECM_ACT_SWISH;
    int gp = cv_graph_add_value(g, "avg_pool", 1, 1, 12), dr = cv_graph_add_value(g, "top_dropout", 1, 1, 12);
    tg_node(g, ECM_OP_GAP, "avg_pool", ta, -1, gp);
    tg_node(g, ECM_OP_IDENTITY, "top_dropout", gp, -1, dr);
    int o = cv_graph_add_value(g, "predictions", 1, 1, 5);
    tg_dense(g, "predictions", dr, o, 12, 5, ECM_ACT_SOFTMAX, f16);
    g->input_value = x;
    g->output_value = o;
    cv_graph_pick_gradcam(g);
    cv_err er;
    cv_graph_set_labels(g, NULL, &er);
}

/* G2, every backward op on the path: target conv (bias, relu6) -> BN, sigmoid,
 * GAP, reshape, MUL (small operand first), 3-ary ADD, rescale, normalize,
 * zeropad, GAP, dense tanh, dense linear, softmax activation. */
static void tg_build_ops(cv_graph *g)
{
    cv_graph_init(g);
    int x = cv_graph_add_value(g, "input", 6, 5, 3);
    int nz = cv_graph_add_value(g, "normalization", 6, 5, 3);
    cv_node *n = tg_node(g, ECM_OP_NORMALIZE, "normalization", x, -1, nz);
    n->n_w = 2;
    n->w[0] = tg_tensor(g, "normalization/mean", 1, 3, 1, 1, 1, 100, 150);
    g->tensors[n->w[0]].flags = ECM_TF_DERIVED;
    n = &g->nodes[g->n_nodes - 1];
    n->w[1] = tg_tensor(g, "normalization/variance", 1, 3, 1, 1, 1, 2000, 4000);
    g->tensors[n->w[1]].flags = ECM_TF_DERIVED;
    int zp = cv_graph_add_value(g, "pad", 8, 7, 3);
    n = tg_node(g, ECM_OP_ZEROPAD, "pad", nz, -1, zp);
    n->pt = n->pb = n->pl = n->pr = 1;
    int A = cv_graph_add_value(g, "tconv", 6, 5, 6);
    tg_conv(g, ECM_OP_CONV2D, "tconv", zp, A, 3, 1, 0, 0, 0, 0, 3, 6, 1, ECM_ACT_RELU6);
    int b = cv_graph_add_value(g, "bn", 6, 5, 6), c = cv_graph_add_value(g, "sig", 6, 5, 6);
    tg_bn(g, "bn", A, b, 6);
    tg_node(g, ECM_OP_ACTIVATION, "sig", b, -1, c)->act = ECM_ACT_SIGMOID;
    int d = cv_graph_add_value(g, "squeeze", 1, 1, 6), e = cv_graph_add_value(g, "reshape", 1, 1, 6);
    tg_node(g, ECM_OP_GAP, "squeeze", c, -1, d);
    tg_node(g, ECM_OP_RESHAPE, "reshape", d, -1, e);
    int f = cv_graph_add_value(g, "excite", 6, 5, 6);
    tg_node(g, ECM_OP_MUL, "excite", e, A, f);
    int s = cv_graph_add_value(g, "add", 6, 5, 6);
    n = tg_node(g, ECM_OP_ADD, "add", f, A, s);
    n->n_in = 3;
    n->in[2] = b;
    int h = cv_graph_add_value(g, "rescale", 6, 5, 6);
    n = tg_node(g, ECM_OP_RESCALE, "rescale", s, -1, h);
    n->f0 = 0.7f, n->f1 = 0.1f;
    int p = cv_graph_add_value(g, "pad2", 7, 7, 6);
    n = tg_node(g, ECM_OP_ZEROPAD, "pad2", h, -1, p);
    n->pt = 1, n->pb = 0, n->pl = 0, n->pr = 2;
    int q = cv_graph_add_value(g, "gap", 1, 1, 6);
    tg_node(g, ECM_OP_GAP, "gap", p, -1, q);
    int k = cv_graph_add_value(g, "fc1", 1, 1, 4), l = cv_graph_add_value(g, "fc2", 1, 1, 3);
    tg_dense(g, "fc1", q, k, 6, 4, ECM_ACT_TANH, 0);
    tg_dense(g, "fc2", k, l, 4, 3, ECM_ACT_LINEAR, 0);
    int o = cv_graph_add_value(g, "softmax", 1, 1, 3);
    tg_node(g, ECM_OP_ACTIVATION, "softmax", l, -1, o)->act = ECM_ACT_SOFTMAX;
    g->input_value = x;
    g->output_value = o;
    cv_graph_pick_gradcam(g);
    cv_err er;
    cv_graph_set_labels(g, NULL, &er);
}

/* G3, a small EfficientNet-like network with every op and activation the
 * backward must handle, shaped so each of its conv paths runs:
 *   rescale; stem conv 3x3 stride 2 with TF SAME padding (0 top, 1 bottom) +
 *   BN + gelu; dwconv 5x5 + BN + relu; conv 3x3 16 -> 32 (forward on
 *   Winograd F(4x4), backward on the direct kernel) + BN + tanh; conv 3x3
 *   32 -> 16 (forward direct, backward Winograd) + BN + relu6; SE (GAP,
 *   reshape, 1x1 conv + swish, 1x1 conv + sigmoid, multiply: both operands
 *   carry gradients); 1x1 conv + BN, dropout, residual add with the stem's
 *   output (read twice); dwconv 3x3 stride 2 + BN + swish; zero padding; conv
 *   3x3 valid 16 -> 40 with bias (forward Winograd F(2x2)) + BN + sigmoid;
 *   conv 1x1 + BN; x * x; GAP; dense + relu; dense + softmax. */
static void tg_build_deep(cv_graph *g)
{
    cv_graph_init(g);
    int x = cv_graph_add_value(g, "input", 20, 18, 3);
    int r = cv_graph_add_value(g, "rescaling", 20, 18, 3);
    cv_node *n = tg_node(g, ECM_OP_RESCALE, "rescaling", x, -1, r);
    n->f0 = 1.0f / 64, n->f1 = -2.0f;
    /* conv (+ BN + act) helper values: name, name_bn, name_act */
    int a = cv_graph_add_value(g, "stem_conv", 10, 9, 16), ab = cv_graph_add_value(g, "stem_bn", 10, 9, 16);
    int a1 = cv_graph_add_value(g, "stem_activation", 10, 9, 16);
    tg_conv(g, ECM_OP_CONV2D, "stem_conv", r, a, 3, 2, 0, 1, 0, 1, 3, 16, 0, ECM_ACT_LINEAR);
    tg_bn(g, "stem_bn", a, ab, 16);
    tg_node(g, ECM_OP_ACTIVATION, "stem_activation", ab, -1, a1)->act = ECM_ACT_GELU;
    int d = cv_graph_add_value(g, "dw1", 10, 9, 16), db = cv_graph_add_value(g, "dw1_bn", 10, 9, 16);
    int a2 = cv_graph_add_value(g, "dw1_act", 10, 9, 16);
    tg_conv(g, ECM_OP_DWCONV2D, "dw1", a1, d, 5, 1, 2, 2, 2, 2, 16, 16, 0, ECM_ACT_LINEAR);
    tg_bn(g, "dw1_bn", d, db, 16);
    tg_node(g, ECM_OP_ACTIVATION, "dw1_act", db, -1, a2)->act = ECM_ACT_RELU;
    int c2 = cv_graph_add_value(g, "c2", 10, 9, 32), c2b = cv_graph_add_value(g, "c2_bn", 10, 9, 32);
    int a3 = cv_graph_add_value(g, "c2_act", 10, 9, 32);
    tg_conv(g, ECM_OP_CONV2D, "c2", a2, c2, 3, 1, 1, 1, 1, 1, 16, 32, 0, ECM_ACT_LINEAR);
    tg_bn(g, "c2_bn", c2, c2b, 32);
    tg_node(g, ECM_OP_ACTIVATION, "c2_act", c2b, -1, a3)->act = ECM_ACT_TANH;
    int c3 = cv_graph_add_value(g, "c3", 10, 9, 16), c3b = cv_graph_add_value(g, "c3_bn", 10, 9, 16);
    int a4 = cv_graph_add_value(g, "c3_act", 10, 9, 16);
    tg_conv(g, ECM_OP_CONV2D, "c3", a3, c3, 3, 1, 1, 1, 1, 1, 32, 16, 0, ECM_ACT_LINEAR);
    tg_bn(g, "c3_bn", c3, c3b, 16);
    tg_node(g, ECM_OP_ACTIVATION, "c3_act", c3b, -1, a4)->act = ECM_ACT_RELU6;
    int sq = cv_graph_add_value(g, "se_squeeze", 1, 1, 16), rs = cv_graph_add_value(g, "se_reshape", 1, 1, 16);
    tg_node(g, ECM_OP_GAP, "se_squeeze", a4, -1, sq);
    tg_node(g, ECM_OP_RESHAPE, "se_reshape", sq, -1, rs);
    int sr = cv_graph_add_value(g, "se_reduce", 1, 1, 4), se = cv_graph_add_value(g, "se_expand", 1, 1, 16);
    tg_conv(g, ECM_OP_CONV2D, "se_reduce", rs, sr, 1, 1, 0, 0, 0, 0, 16, 4, 1, ECM_ACT_SWISH);
    tg_conv(g, ECM_OP_CONV2D, "se_expand", sr, se, 1, 1, 0, 0, 0, 0, 4, 16, 1, ECM_ACT_SIGMOID);
    int ex = cv_graph_add_value(g, "se_excite", 10, 9, 16);
    tg_node(g, ECM_OP_MUL, "se_excite", a4, se, ex);
    int pc = cv_graph_add_value(g, "project", 10, 9, 16), pb = cv_graph_add_value(g, "project_bn", 10, 9, 16);
    tg_conv(g, ECM_OP_CONV2D, "project", ex, pc, 1, 1, 0, 0, 0, 0, 16, 16, 0, ECM_ACT_LINEAR);
    tg_bn(g, "project_bn", pc, pb, 16);
    int dr = cv_graph_add_value(g, "drop", 10, 9, 16), ad = cv_graph_add_value(g, "add", 10, 9, 16);
    tg_node(g, ECM_OP_IDENTITY, "drop", pb, -1, dr);
    tg_node(g, ECM_OP_ADD, "add", dr, a1, ad);
    int d2 = cv_graph_add_value(g, "dw2", 5, 5, 16), d2b = cv_graph_add_value(g, "dw2_bn", 5, 5, 16);
    int a5 = cv_graph_add_value(g, "dw2_act", 5, 5, 16);
    tg_conv(g, ECM_OP_DWCONV2D, "dw2", ad, d2, 3, 2, 0, 1, 1, 1, 16, 16, 0, ECM_ACT_LINEAR);
    tg_bn(g, "dw2_bn", d2, d2b, 16);
    tg_node(g, ECM_OP_ACTIVATION, "dw2_act", d2b, -1, a5)->act = ECM_ACT_SWISH;
    int zp = cv_graph_add_value(g, "pad", 7, 7, 16);
    n = tg_node(g, ECM_OP_ZEROPAD, "pad", a5, -1, zp);
    n->pt = n->pb = n->pl = n->pr = 1;
    int c5 = cv_graph_add_value(g, "c5", 5, 5, 40), c5b = cv_graph_add_value(g, "c5_bn", 5, 5, 40);
    int a6 = cv_graph_add_value(g, "c5_act", 5, 5, 40);
    tg_conv(g, ECM_OP_CONV2D, "c5", zp, c5, 3, 1, 0, 0, 0, 0, 16, 40, 1, ECM_ACT_LINEAR);
    tg_bn(g, "c5_bn", c5, c5b, 40);
    tg_node(g, ECM_OP_ACTIVATION, "c5_act", c5b, -1, a6)->act = ECM_ACT_SIGMOID;
    int t = cv_graph_add_value(g, "top_conv", 5, 5, 24), tb = cv_graph_add_value(g, "top_bn", 5, 5, 24);
    tg_conv(g, ECM_OP_CONV2D, "top_conv", a6, t, 1, 1, 0, 0, 0, 0, 40, 24, 0, ECM_ACT_LINEAR);
    tg_bn(g, "top_bn", t, tb, 24);
    int sqr = cv_graph_add_value(g, "square", 5, 5, 24);
    tg_node(g, ECM_OP_MUL, "square", tb, tb, sqr);
    int gp = cv_graph_add_value(g, "avg_pool", 1, 1, 24);
    tg_node(g, ECM_OP_GAP, "avg_pool", sqr, -1, gp);
    int f1 = cv_graph_add_value(g, "fc1", 1, 1, 10), o = cv_graph_add_value(g, "predictions", 1, 1, 5);
    tg_dense(g, "fc1", gp, f1, 24, 10, ECM_ACT_RELU, 0);
    tg_dense(g, "predictions", f1, o, 10, 5, ECM_ACT_SOFTMAX, 0);
    g->input_value = x;
    g->output_value = o;
    cv_graph_pick_gradcam(g);
    cv_err er;
    cv_graph_set_labels(g, NULL, &er);
}

static ec_model *tg_load(cv_graph *g, const char *file)
{
    char *path = path_join(t_tmp(), file, NULL);
    cv_err e;
    ec_model *m = NULL;
    if (cv_ecm_write(g, path, &e)) printf("# write %s: %s\n", file, e.msg);
    else if (ec_model_load(path, &m)) printf("# load %s: %s\n", file, ec_last_error());
    free(path);
    return m;
}

/* ---- planner ------------------------------------------------------------------------ */

static void test_planner(void)
{
    /* A chain a -> b -> c -> d with a long skip from a to d: a must not be reused. */
    ec_plan_buf b[5] = {
        { 4096, 0, 4, 0, 0 }, { 1024, 1, 2, 0, 0 }, { 2048, 2, 3, 0, 0 }, { 1024, 3, 4, 0, 0 }, { 512, 4, 5, 0, 0 },
    };
    size_t arena;
    char msg[256];
    int ok = ec_plan_place(b, 5, &arena) == EC_OK && ec_plan_check(b, 5, arena, msg, sizeof msg) == 0;
    /* peak live: t=3: 4096 + 2048 + 1024 = 7168; greedy reaches it here */
    T_CHECK("plan_chain", ok && arena == 7168, "arena %zu (want 7168) check '%s'", arena, msg);

    /* The checker catches a forced clash. */
    b[3].offset = b[2].offset;
    T_CHECK("plan_checker_detects_overlap", ec_plan_check(b, 5, arena, msg, sizeof msg) != 0, "overlap not detected");

    /* Random lifetimes: never an overlap, arena >= the peak of live bytes. */
    int bad = 0;
    size_t worst_ratio_num = 0, worst_ratio_den = 1;
    for (int trial = 0; trial < 200 && !bad; trial++) {
        enum { N = 60 };
        ec_plan_buf r[N];
        for (int i = 0; i < N; i++) {
            int f = (int)t_rng_uniform(0, 40), len = (int)t_rng_uniform(0, 8);
            r[i] = (ec_plan_buf){ (size_t)(1 + (int)t_rng_uniform(0, 100)) * 64, f, f + len, 0, 0 };
        }
        if (ec_plan_place(r, N, &arena) || ec_plan_check(r, N, arena, msg, sizeof msg)) { bad = 1; break; }
        size_t peak = 0;
        for (int t = 0; t < 48; t++) {
            size_t live = 0;
            for (int i = 0; i < N; i++) live += (r[i].first <= t && t <= r[i].last) ? r[i].bytes : 0;
            if (live > peak) peak = live;
        }
        if (arena < peak) bad = 2;
        if (arena * worst_ratio_den > worst_ratio_num * peak) worst_ratio_num = arena, worst_ratio_den = peak;
    }
    T_CHECK("plan_random_lifetimes", !bad, "trial failed (%d): %s", bad, msg);
    printf("# planner: worst arena / peak live over random trials = %.3f\n", (double)worst_ratio_num / (double)worst_ratio_den);
}

/* ---- loader validation --------------------------------------------------------------- */

static void put32(unsigned char *p, uint32_t v) { p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8), p[2] = (unsigned char)(v >> 16), p[3] = (unsigned char)(v >> 24); }
static uint32_t get32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

static void fix_crc(unsigned char *b, size_t n)
{
    put32(b + ECM_H_CRC32, 0);
    put32(b + ECM_H_CRC32, (uint32_t)crc32(crc32(0L, Z_NULL, 0), b, (uInt)n));
}

/* Loads a patched copy: u32 `v` at `off` (CRC fixed unless keep_crc). */
static ec_status try_patch(const unsigned char *img, size_t n, size_t off, uint32_t v, int keep_crc, size_t size)
{
    unsigned char *b = malloc(n);
    memcpy(b, img, n);
    if (off + 4 <= n) put32(b + off, v);
    if (!keep_crc) fix_crc(b, size < n ? size : n);
    ec_model *m = NULL;
    ec_status st = ec_model_from_memory(b, size < n ? size : n, &m);
    ec_model_free(m);
    free(b);
    return st;
}

static void test_loader(void)
{
    cv_graph g;
    tg_build_v2(&g, 1);
    char *path = path_join(t_tmp(), "v2tiny.ecm", NULL);
    cv_err e;
    if (cv_ecm_write(&g, path, &e)) {
        t_fail("loader_write", "%s", e.msg);
        cv_graph_free(&g);
        free(path);
        return;
    }
    size_t n = 0;
    unsigned char *img = (unsigned char *)t_slurp(path, &n);
    ec_model *m = NULL;
    ec_status st = ec_model_load(path, &m);
    T_CHECK("load_valid", st == EC_OK, "%s", ec_last_error());
    if (m) {
        int64_t want = cv_graph_params(&g);
        T_CHECK("load_params", ec_model_params(m) == want, "params %lld, want %lld", (long long)ec_model_params(m), (long long)want);
        T_CHECK("load_gradcam_layer", ec_model_gradcam_layer(m) && !strcmp(ec_model_gradcam_layer(m), "top_conv"), "%s",
                ec_model_gradcam_layer(m) ? ec_model_gradcam_layer(m) : "(none)");
        ec_layer_info li;
        ec_model_layer(m, 1, &li);
        T_CHECK("load_layer_info", !strcmp(li.name, "stem_conv") && !strcmp(li.op, "conv2d") && li.out_h == 5 && li.out_c == 8 &&
                li.params == 3 * 3 * 3 * 8, "%s %s %dx%dx%d %lld", li.name, li.op, li.out_h, li.out_w, li.out_c, (long long)li.params);
        T_CHECK("load_weight_bytes", ec_model_weight_bytes(m, 1) == 2 * (3 * 3 * 3 * 8 + 8 * 12 + 12 * 5), "f16 bytes %lld",
                (long long)ec_model_weight_bytes(m, 1));
        ec_model_free(m);
    }
    int nv = g.n_values, nn = g.n_nodes;
    size_t voff = ECM_HEADER_SIZE, noff = voff + (size_t)nv * ECM_VALUE_SIZE, toff = noff + (size_t)nn * ECM_NODE_SIZE;
    struct { const char *name; size_t off; uint32_t v; int keep_crc; size_t size; ec_status want; const char *msg; } cases[] = {
        { "bad_magic", 0, 0x46434d46, 0, n, EC_ERR_FORMAT, "magic" },
        { "bad_version", ECM_H_VERSION, 2, 0, n, EC_ERR_UNSUPPORTED, "version" },
        { "truncated", 0, get32(img), 1, n - 1, EC_ERR_FORMAT, "bytes" },
        { "file_size", ECM_H_FILE_SIZE, (uint32_t)n + 64, 0, n, EC_ERR_FORMAT, "header says" },
        { "string_id", voff, 0xFFFFFF, 0, n, EC_ERR_FORMAT, "string blob" },
        { "value_shape", voff + 2 * ECM_VALUE_SIZE + 12, 9, 0, n, EC_ERR_FORMAT, "node 1 (stem_conv)" },
        { "later_input", noff + 1 * ECM_NODE_SIZE + ECM_N_IN, 5, 0, n, EC_ERR_FORMAT, "not produced by an earlier node" },
        { "op_unknown", noff + ECM_N_OP, 99, 0, n, EC_ERR_UNSUPPORTED, "unknown op" },
        { "kernel_cin", toff + ECM_T_DIMS + 8, 4, 0, n, EC_ERR_FORMAT, "" },
        { "tensor_misaligned", toff + ECM_T_OFFSET, 8, 0, n, EC_ERR_FORMAT, "aligned" },
        { "tensor_outside", toff + ECM_T_OFFSET, 1u << 30, 0, n, EC_ERR_FORMAT, "outside" },
        { "dtype", toff + ECM_T_DTYPE, 7, 0, n, EC_ERR_UNSUPPORTED, "dtype" },
        { "stride_zero", noff + ECM_NODE_SIZE + ECM_N_SH, 0, 0, n, EC_ERR_FORMAT, "stride" },
        { "gradcam_not_conv", ECM_H_GRADCAM_NODE, 0, 0, n, EC_ERR_FORMAT, "not a convolution" },
        { "too_many_nodes", ECM_H_N_NODES, 200000, 0, n, EC_ERR_LIMIT, "nodes" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "load_reject_%s", cases[i].name);
        st = try_patch(img, n, cases[i].off, cases[i].v, cases[i].keep_crc, cases[i].size);
        T_CHECK(name, st == cases[i].want && strstr(ec_last_error(), cases[i].msg), "status %d (want %d): %s", st,
                cases[i].want, ec_last_error());
    }
    /* every single-byte corruption of the meta section is caught (CRC kept valid) */
    int missed = 0;
    size_t meta_end = toff + (size_t)g.n_tensors * ECM_TENSOR_SIZE;
    for (size_t off = 0; off < meta_end; off++) {
        unsigned char *b = malloc(n);
        memcpy(b, img, n);
        b[off] ^= 0x80;
        fix_crc(b, n);
        ec_model *mm = NULL;
        if (ec_model_from_memory(b, n, &mm) == EC_OK) {
            /* benign flips exist (e.g. float attributes); the model must still be usable */
            ec_session *s = NULL;
            if (ec_session_new(mm, NULL, &s) == EC_OK) ec_session_free(s);
            ec_model_free(mm);
        } else if (!ec_last_error()[0]) {
            missed++;
        }
        free(b);
    }
    T_CHECK("load_meta_bitflips_have_messages", missed == 0, "%d rejections without a message", missed);
    printf("# loader: last message example: %s\n", ec_last_error());

    /* The checksum is checked lazily: a flipped bit anywhere past the tables (a
     * tensor used by the forward pass, one folded at load, padding, the last
     * byte) loads, but ec_model_verify and every predict fail with "checksum"
     * and no result; the intact file verifies and predicts. */
    {
        uint8_t rgb[10 * 10 * 3];
        for (size_t i = 0; i < sizeof rgb; i++) rgb[i] = (uint8_t)(i * 7);
        size_t first_t = (size_t)-1;
        ec_model *probe = NULL;
        if (ec_model_from_memory(img, n, &probe) == EC_OK) {
            for (int t = 0; t < probe->n_tensors; t++) {
                size_t o = (size_t)((const unsigned char *)probe->tensors[t].data - img);
                if (o < first_t) first_t = o;
            }
            ec_model_free(probe);
        }
        const size_t offs[] = { first_t, first_t + 1, (first_t + n) / 2, n - 1 };
        int bad = 0, runs = 0;
        char why[300] = "";
        for (int k = -1; k < (int)(sizeof offs / sizeof *offs); k++) {
            if (k >= 0 && offs[k] >= n) continue;
            unsigned char *b = malloc(n);
            memcpy(b, img, n);
            if (k >= 0) b[offs[k]] ^= 0x10;
            ec_model *mm = NULL;
            ec_session *s = NULL;
            ec_result r;
            ec_status lst = ec_model_from_memory(b, n, &mm);
            ec_status p1 = lst ? lst : ec_session_new(mm, NULL, &s);
            if (!p1) p1 = ec_session_predict_rgb(s, rgb, 10, 10, &r);
            ec_status p2 = s ? ec_session_predict_rgb(s, rgb, 10, 10, &r) : p1;
            ec_status v = mm ? ec_model_verify(mm) : lst;
            int ok = k < 0 ? lst == EC_OK && p1 == EC_OK && p2 == EC_OK && v == EC_OK
                           : lst == EC_OK && p1 == EC_ERR_FORMAT && p2 == EC_ERR_FORMAT && v == EC_ERR_FORMAT &&
                                 strstr(ec_last_error(), "checksum mismatch");
            if (!ok) bad++, snprintf(why, sizeof why, "flip at %zu: load %d, predict %d then %d, verify %d: %s",
                                     k < 0 ? (size_t)0 : offs[k], lst, p1, p2, v, ec_last_error());
            runs++;
            ec_session_free(s);
            ec_model_free(mm);
            free(b);
        }
        T_CHECK("load_checksum_lazy_corrupt_weights_fail_predict", bad == 0 && runs == 5, "%s", why);
    }
    free(img);
    free(path);
    cv_graph_free(&g);
}

/* ---- forward: fused vs keep_all, threads ------------------------------------------------ */

static void fill_image(uint8_t *rgb, size_t n)
{
    for (size_t i = 0; i < n; i++) rgb[i] = (uint8_t)t_rng_uniform(0, 255.99f);
}

static double max_abs_diff(const float *a, const float *b, size_t n, size_t *where)
{
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > w || isnan(d)) { w = isnan(d) ? INFINITY : d; if (where) *where = i; }
    }
    return w;
}

static void test_forward_tiny(const char *tag, ec_model *m)
{
    int H, W;
    ec_model_input_size(m, &H, &W);
    uint8_t *rgb = malloc((size_t)H * W * 3);
    fill_image(rgb, (size_t)H * W * 3);
    ec_session_options o = ec_session_options_default();
    ec_session *fused = NULL, *all = NULL, *two = NULL;
    o.gradcam = 1;
    ec_status s1 = ec_session_new(m, &o, &fused);
    ec_status s2 = ec_session_new_debug(m, &o, 1, &all);
    o.threads = 2;
    ec_status s3 = ec_session_new(m, &o, &two);
    char name[96], msg[256];
    snprintf(name, sizeof name, "tiny_%s_sessions", tag);
    if (s1 || s2 || s3) {
        t_fail(name, "%s", ec_last_error());
        goto out;
    }
    t_pass(name);
    snprintf(name, sizeof name, "tiny_%s_plan_check", tag);
    T_CHECK(name, !ec_session_check_plan(fused, msg, sizeof msg) && !ec_session_check_plan(all, msg, sizeof msg), "%s", msg);
    ec_result a, b, c;
    ec_session_predict_rgb(fused, rgb, W, H, &a);
    ec_session_predict_rgb(all, rgb, W, H, &b);
    ec_session_predict_rgb(two, rgb, W, H, &c);
    double dp = max_abs_diff(a.probabilities, b.probabilities, (size_t)a.num_classes, NULL);
    double dc = max_abs_diff(a.cam, b.cam, (size_t)a.cam_height * a.cam_width, NULL);
    snprintf(name, sizeof name, "tiny_%s_fused_vs_keep_all", tag);
    /* fusion folds BN into the epilogue: a few ulps of reassociation */
    T_CHECK(name, dp <= 1e-5 && dc <= 1e-4, "probs %.3g cam %.3g", dp, dc);
    snprintf(name, sizeof name, "tiny_%s_threads_bit_identical", tag);
    int same = !memcmp(a.probabilities, c.probabilities, sizeof(float) * (size_t)a.num_classes) &&
               !memcmp(a.cam, c.cam, sizeof(float) * (size_t)a.cam_height * a.cam_width);
    T_CHECK(name, same, "threads=2 differs: probs %.3g", max_abs_diff(a.probabilities, c.probabilities, (size_t)a.num_classes, NULL));
    printf("# tiny %s: arena %zu (keep_all %zu), pinned %zu, scratch %zu bytes\n", tag, ec_session_arena_bytes(fused),
           ec_session_arena_bytes(all), ec_session_pinned_bytes(fused), ec_session_scratch_bytes(fused));
out:
    ec_session_free(fused);
    ec_session_free(all);
    ec_session_free(two);
    free(rgb);
}

/* ---- Grad-CAM backward: finite differences on A ------------------------------------------- */

/* The class score from a keep_all session: p_c, or the logit (the input of the
 * final softmax; recomputed for a dense + softmax node, whose logits are not a value). */
static double fd_score(ec_session *s, const ec_model *m, int cls, int logit)
{
    const ec_node *n = &m->nodes[m->producer[m->output]];
    if (!logit || n->act != ECM_ACT_SOFTMAX) return ec_session_value(s, m->output)[cls];
    if (n->op == ECM_OP_ACTIVATION) return ec_session_value(s, n->in[0])[cls];
    const ec_tensor *W = &m->tensors[n->w[0]];          /* [cin, K] float32 in these tests */
    const float *x = ec_session_value(s, n->in[0]);     /* [cin] */
    int cin = W->dims[0], K = W->dims[1];
    double z = n->bias ? n->bias[cls] : 0.0;
    for (int i = 0; i < cin; i++) z += (double)x[i] * ((const float *)W->data)[(size_t)i * K + cls];
    return z;
}

/* The pinned-bytes budget the finite-difference checks give their sessions:
 * 0 recomputes every block that can be (the tiny models fit any budget whole,
 * so the default would keep them all and leave recompute untested). */
static int64_t fd_keep = 0;

/* d score / dA from the production session (recomputing what it did not keep)
 * against finite differences of the score in a keep_all session, re-running
 * the forward from A's producer on. layer NULL: the model's choice; "input":
 * the model input. Two checks:
 *   per element (per_element = 1, small graphs): central differences on each
 *     element of A, the worst error relative to max |G| (elements of G near 0
 *     make per-element relative errors meaningless), <= 1e-2;
 *   along 16 random sign vectors u (every graph): (s(A + e u) - s(A - e u))
 *     / 2 e against G . u, the worst error relative to sum |G| (the largest
 *     G . u can be), <= 1e-2. Every element moves at once, so the score moves
 *     ~sqrt(n) times more than for one element: this stays above float32
 *     rounding where a deep, wide A's single elements do not; e = eps / 4
 *     crosses fewer relu kinks on the way.
 * The step eps is 1e-2 on values of order 1, and in proportion on the raw
 * input (0..255, rescaled to about +-2). */
static void test_gradcam_fd(const char *tag, ec_model *m, int logit, const char *layer, int threads, int per_element)
{
    int H, W;
    ec_model_input_size(m, &H, &W);
    uint8_t *rgb = malloc((size_t)H * W * 3);
    fill_image(rgb, (size_t)H * W * 3);
    ec_session_options o = ec_session_options_default();
    o.gradcam = 1;
    o.cam_logit = logit;
    o.cam_layer = layer;
    o.threads = threads;
    o.cam_keep_bytes = fd_keep;
    ec_session *s = NULL, *k = NULL;
    char name[160];
    snprintf(name, sizeof name, "gradcam_fd_%s%s%s%s%s%s", tag, layer ? "_" : "", layer ? layer : "", logit ? "_logit" : "",
             threads > 1 ? "_threads2" : "", fd_keep ? "_kept" : "");
    ec_status st = ec_session_new(m, &o, &s);
    o.threads = 1;
    if (st || ec_session_new_debug(m, &o, 1, &k)) { t_fail(name, "%s", ec_last_error()); free(rgb); ec_session_free(s); return; }
    ec_result r;
    char msg[256];
    if (ec_session_check_plan(s, msg, sizeof msg)) t_fail(name, "plan: %s", msg);
    ec_session_predict_rgb(s, rgb, W, H, &r);     /* analytic G: the production plan */
    ec_session_predict_rgb(k, rgb, W, H, &r);     /* finite differences: every value kept */
    const ec_gradcam_plan *g = ec_session_gradcam(s);
    const ec_value *va = &m->values[g->A];
    size_t n = (size_t)va->h * va->w * va->c;
    float *A = ec_session_value(k, g->A);
    const float *G = ec_session_grad(s, g->A);
    float *A0 = malloc(n * sizeof *A0);
    memcpy(A0, A, n * sizeof *A0);
    int cls = r.top_class;
    double worst = 0, gmax = 0, gsum = 0, wfd = 0, amax = 0, dworst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(G[i])), gsum += fabs(G[i]), amax = fmax(amax, fabs(A[i]));
    const float eps = (float)(1e-2 * fmax(1.0, amax / 2)), deps = eps / 4;
    for (size_t i = 0; per_element && i < n; i++) {
        float keep = A[i];
        A[i] = keep + eps;
        ec_session_forward_after(k, g->target);
        double sp = fd_score(k, m, cls, logit);
        A[i] = keep - eps;
        ec_session_forward_after(k, g->target);
        double sm = fd_score(k, m, cls, logit);
        A[i] = keep;
        double fd = (sp - sm) / (2.0 * eps);
        double err = fabs(fd - G[i]) / (gmax > 0 ? gmax : 1);
        if (err > worst || isnan(err)) worst = isnan(err) ? INFINITY : err, wi = i, wfd = fd;
    }
    signed char *u = malloc(n);
    for (int d = 0; d < 16 && u; d++) {
        double gu = 0;
        for (size_t i = 0; i < n; i++) u[i] = t_rng_uniform(0, 1) < 0.5f ? -1 : 1, gu += (double)G[i] * u[i];
        for (size_t i = 0; i < n; i++) A[i] = A0[i] + deps * u[i];
        ec_session_forward_after(k, g->target);
        double sp = fd_score(k, m, cls, logit);
        for (size_t i = 0; i < n; i++) A[i] = A0[i] - deps * u[i];
        ec_session_forward_after(k, g->target);
        double sm = fd_score(k, m, cls, logit);
        double err = fabs((sp - sm) / (2.0 * deps) - gu) / (gsum > 0 ? gsum : 1);
        dworst = isnan(err) ? INFINITY : fmax(dworst, err);
    }
    memcpy(A, A0, n * sizeof *A0);
    ec_session_forward_after(k, g->target);
    /* central differences in float32 with eps 1e-2: ~1e-3 of max |G| here */
    T_CHECK(name, worst < 1e-2 && dworst < 1e-2 && gmax > 0,
            "worst element error %.3g of max |G| %.3g at %zu (analytic %.6g fd %.6g); along random directions %.3g of "
            "sum |G|", worst, gmax, wi, G[wi], wfd, dworst);
    printf("# %s: %s%.3g over %zu elements of %s, along 16 random directions |G.u - fd| / sum |G| %.3g (%d backward "
           "steps, %d of %d blocks recomputed, checkpoints %zu bytes)\n", name, per_element ? "worst |G - fd| / max |G| " : "",
           per_element ? worst : 0.0, n, g->name, dworst, g->n_steps, g->n_recompute, g->n_groups, g->checkpoint_bytes);
    free(u);
    free(A0);
    free(rgb);
    ec_session_free(s);
    ec_session_free(k);
}

/* Grad-CAM options for layer. */
static ec_session_options cam_options(const char *layer)
{
    ec_session_options o = ec_session_options_default();
    o.gradcam = 1;
    o.cam_layer = layer;
    return o;
}

/* Two Grad-CAM sessions of m (options o1, o2) after predicting the same
 * model-size image: their results, the gradients at the target A (n values,
 * hw pixels). */
typedef struct {
    ec_session *s[2];
    ec_result r[2];
    const ec_gradcam_plan *g[2];
    const float *grad[2];
    size_t n, hw;
} cam_pair;

/* nonzero on an error; cam_pair_free either way */
static ec_status cam_pair_run(ec_model *m, const ec_session_options *o1, const ec_session_options *o2, cam_pair *p)
{
    memset(p, 0, sizeof *p);
    int H, W;
    ec_model_input_size(m, &H, &W);
    uint8_t *rgb = malloc((size_t)H * W * 3);
    if (!rgb) return EC_ERR_NOMEM;
    fill_image(rgb, (size_t)H * W * 3);
    const ec_session_options *o[2] = { o1, o2 };
    ec_status st = EC_OK;
    for (int i = 0; i < 2 && !st; i++) st = ec_session_new(m, o[i], &p->s[i]);
    for (int i = 0; i < 2 && !st; i++) st = ec_session_predict_rgb(p->s[i], rgb, W, H, &p->r[i]);
    free(rgb);
    if (st) return st;
    for (int i = 0; i < 2; i++) {
        p->g[i] = ec_session_gradcam(p->s[i]);
        p->grad[i] = ec_session_grad(p->s[i], p->g[i]->A);
    }
    const ec_value *va = &m->values[p->g[0]->A];
    p->hw = (size_t)va->h * va->w, p->n = p->hw * va->c;
    return EC_OK;
}

static void cam_pair_free(cam_pair *p)
{
    ec_session_free(p->s[0]);
    ec_session_free(p->s[1]);
}

/* The backward at a deep target with 1 and 2 threads: the same bits. */
static void test_gradcam_threads(const char *tag, ec_model *m, const char *layer)
{
    char name[160];
    snprintf(name, sizeof name, "gradcam_threads_bit_identical_%s_%s", tag, layer);
    ec_session_options o = cam_options(layer), o2 = o;
    o2.threads = 2;
    cam_pair p;
    if (cam_pair_run(m, &o, &o2, &p)) {
        t_fail(name, "%s", ec_last_error());
    } else {
        T_CHECK(name, !memcmp(p.grad[0], p.grad[1], p.n * sizeof *p.grad[0]) &&
                          !memcmp(p.r[0].cam, p.r[1].cam, p.hw * sizeof *p.r[0].cam),
                "threads = 2 differs: gradient max |d| %.3g", max_abs_diff(p.grad[0], p.grad[1], p.n, NULL));
    }
    cam_pair_free(&p);
}

/* Keeping blocks' values (cam_keep_bytes) instead of recomputing them: the
 * same gradient and heatmap within float rounding (a kept pre-activation comes
 * from the forward's conv, a recomputed one from the backward's, which may group
 * the same sums differently), fewer blocks recomputed. */
static void test_gradcam_keep(const char *tag, ec_model *m, const char *layer)
{
    char name[160];
    snprintf(name, sizeof name, "gradcam_keep_vs_recompute_%s_%s", tag, layer);
    ec_session_options o = cam_options(layer), o0 = o;
    o0.cam_keep_bytes = 0;
    cam_pair p;
    if (cam_pair_run(m, &o, &o0, &p)) {
        t_fail(name, "%s", ec_last_error());
    } else {
        const ec_gradcam_plan *gk = p.g[0], *gr = p.g[1];
        size_t at = 0;
        double gmax = 0, d = max_abs_diff(p.grad[0], p.grad[1], p.n, &at);
        double dc = max_abs_diff(p.r[0].cam, p.r[1].cam, p.hw, NULL);
        for (size_t i = 0; i < p.n; i++) gmax = fmax(gmax, fabs(p.grad[1][i]));
        T_CHECK(name, d <= 1e-5 * gmax && dc <= 1e-5 && gk->n_recompute < gr->n_recompute && gk->kept_bytes > 0,
                "gradient max |d| %.3g of max %.3g at %zu, heatmap max |d| %.3g; blocks recomputed %d (kept %zu bytes) "
                "vs %d", d, gmax, at, dc, gk->n_recompute, gk->kept_bytes, gr->n_recompute);
        printf("# %s: %d of %d blocks recomputed (%zu bytes kept) vs %d; gradient max |d| %.3g of max %.3g, heatmap %.3g\n",
               name, gk->n_recompute, gk->n_groups, gk->kept_bytes, gr->n_recompute, d, gmax, dc);
    }
    cam_pair_free(&p);
}

static void test_gradcam_errors(ec_model *m)
{
    ec_session_options o = ec_session_options_default();
    ec_session *s = NULL;
    o.gradcam = 1;
    o.cam_keep_bytes = -1;
    ec_status st0 = ec_session_new(m, &o, &s);
    T_CHECK("gradcam_keep_negative_refused", st0 == EC_ERR_ARG && strstr(ec_last_error(), "cam_keep_bytes"),
            "status %d: %s", st0, ec_last_error());
    ec_session_free(s), s = NULL;
    o.cam_keep_bytes = ec_session_options_default().cam_keep_bytes;
    o.cam_layer = "avg_pool";   /* GlobalAveragePooling2D without keepdims: 2-D */
    ec_status st = ec_session_new(m, &o, &s);
    T_CHECK("gradcam_layer_2d_refused", st == EC_ERR_ARG && strstr(ec_last_error(), "avg_pool") &&
                                            strstr(ec_last_error(), "2-D"), "status %d: %s", st, ec_last_error());
    ec_session_free(s), s = NULL;
    o.cam_layer = "predictions";
    st = ec_session_new(m, &o, &s);
    T_CHECK("gradcam_layer_output_refused", st == EC_ERR_ARG && strstr(ec_last_error(), "predictions"), "status %d: %s",
            st, ec_last_error());
    ec_session_free(s), s = NULL;
    o.cam_layer = "nope";
    st = ec_session_new(m, &o, &s);
    T_CHECK("gradcam_layer_unknown", st == EC_ERR_ARG && strstr(ec_last_error(), "nope"), "status %d: %s", st, ec_last_error());
    ec_session_free(s), s = NULL;
    o.cam_layer = NULL;
    o.cam_method = "scorecam";
    st = ec_session_new(m, &o, &s);
    T_CHECK("gradcam_method_unknown", st == EC_ERR_ARG && strstr(ec_last_error(), "scorecam"), "status %d: %s", st,
            ec_last_error());
    ec_session_free(s), s = NULL;
    o.cam_method = "LayerCAM";
    st = ec_session_new(m, &o, &s);
    int ok = st == EC_OK && ec_session_set_cam_method(s, "nope") == EC_ERR_ARG && strstr(ec_last_error(), "nope") &&
             ec_session_set_cam_method(s, "eigencam") == EC_OK && ec_session_set_cam_method(s, NULL) == EC_OK;
    T_CHECK("gradcam_method_set", ok, "status %d: %s", st, ec_last_error());
    ec_session_free(s), s = NULL;
    o.cam_method = NULL;
    /* the layers a caller may explain, as effcam info marks them */
    int bad = 0;
    for (int i = 0; i < ec_model_num_layers(m); i++) {
        ec_layer_info li;
        ec_model_layer(m, i, &li);
        int want = strcmp(li.name, "avg_pool") && strcmp(li.name, "top_dropout") && strcmp(li.name, "predictions");
        if (li.cam_target != want) bad = i + 1;
    }
    T_CHECK("layer_info_cam_target", !bad, "layer %d marked wrong", bad - 1);
    o.gradcam = 0;
    ec_session_new(m, &o, &s);
    st = ec_session_write_overlay(s, "x.png");
    T_CHECK("overlay_without_gradcam", st == EC_ERR_STATE, "status %d", st);
    ec_session_free(s), s = NULL;
    o.gradcam = 1;
    ec_session_new(m, &o, &s);
    st = ec_session_write_overlay(s, "x.png");
    T_CHECK("overlay_before_predict", st == EC_ERR_STATE, "status %d", st);
    ec_session_free(s);
}

/* ---- Keras fixtures ------------------------------------------------------------------------ */

typedef struct {
    double p32, p16, p16_tol;          /* worst max|p - p_keras| over cases */
    double cam32, cam16, pearson16;    /* worst max|cam - keras|, lowest Pearson */
    double layer_rel;                  /* worst per-layer max err / max|x| (fp32) */
    char layer_name[96];
    int top1_bad32, top1_bad16;
} fx_stats;

static int read_floats(const js_value *arr, float *out, int n)
{
    if (!arr || arr->type != JS_ARRAY || arr->n != n) return -1;
    for (int i = 0; i < n; i++) {
        double d;
        if (js_num(js_at(arr, i), &d)) return -1;
        out[i] = (float)d;
    }
    return 0;
}

/* Layer by layer on layers_image through a keep_all session. */
static void fx_layers(const char *tag, ec_model *m, const js_value *root, const char *expdir, int f16, fx_stats *fs)
{
    const js_value *layers = js_get(root, "layers");
    const char *img = js_get_str(root, "layers_image");
    const js_value *cases = js_get(root, "cases");
    const char *u8 = NULL;
    for (int i = 0; cases && i < cases->n; i++)
        if (img && !strcmp(js_get_str(js_at(cases, i), "image"), img)) u8 = js_get_str(js_at(cases, i), "input_u8");
    char name[256];
    snprintf(name, sizeof name, "%s_layers", tag);
    if (!layers || !u8) { t_skip(name, "no layers in expected.json"); return; }
    int H, W;
    ec_model_input_size(m, &H, &W);
    char *p = path_join(expdir, u8, NULL);
    size_t n;
    uint8_t *rgb = (uint8_t *)t_slurp(p, &n);
    free(p);
    ec_session_options o = ec_session_options_default();
    ec_session *s = NULL;
    ec_result r;
    if (!rgb || n != (size_t)H * W * 3 || ec_session_new_debug(m, &o, 1, &s) || ec_session_predict_rgb(s, rgb, W, H, &r)) {
        t_fail(name, "setup: %s", ec_last_error());
        free(rgb);
        ec_session_free(s);
        return;
    }
    int compared = 0, failed = 0, missing = 0;
    double worst = 0;
    char worst_name[96] = "";
    for (int i = 0; i < layers->n; i++) {
        const js_value *L = js_at(layers, i);
        const char *ln = js_get_str(L, "layer"), *file = js_get_str(L, "file");
        if (!ln || !file) continue;
        int h, w, c;
        const float *y = ec_session_layer_output(s, ln, &h, &w, &c);
        if (!y) { missing++; printf("# %s: layer %s not in the model\n", tag, ln); continue; }
        char *fp = path_join(expdir, "layers", file);
        size_t nb = 0;
        float *ref = (float *)t_slurp(fp, &nb);
        free(fp);
        size_t ne = (size_t)h * w * c;
        if (!ref || nb != ne * sizeof(float)) { failed++; printf("# %s: %s: reference size %zu, ours %zu floats\n", tag, ln, nb / 4, ne); free(ref); continue; }
        compared++;
        double amax = 0;
        for (size_t k = 0; k < ne; k++) amax = fmax(amax, fabs(ref[k]));
        if (!f16) {
            size_t wi = 0;
            double err = max_abs_diff(y, ref, ne, &wi);
            double rel = err / (amax > 0 ? amax : 1);
            if (rel > worst) worst = rel, snprintf(worst_name, sizeof worst_name, "%s", ln);
            if (err > 1e-4 * amax) {
                failed++;
                printf("# %s: layer %s: max err %.3g > 1e-4 * %.3g at %zu (pixel %zu, ch %zu): ours %.7g keras %.7g\n", tag, ln, err,
                       amax, wi, wi / c, wi % c, y[wi], ref[wi]);
            }
        } else {
            /* fp16 weights move every layer: compare the statistics loosely */
            double m1 = 0, m2 = 0, r1 = 0, r2 = 0;
            for (size_t k = 0; k < ne; k++) m1 += y[k], r1 += ref[k];
            m1 /= ne, r1 /= ne;
            for (size_t k = 0; k < ne; k++) m2 += (y[k] - m1) * (y[k] - m1), r2 += (ref[k] - r1) * (ref[k] - r1);
            double sd1 = sqrt(m2 / ne), sd2 = sqrt(r2 / ne);
            double tol = 0.05 * sd2 + 1e-3 * amax + 1e-6;
            double rel = fmax(fabs(m1 - r1), fabs(sd1 - sd2)) / (sd2 > 0 ? sd2 : 1);
            if (rel > worst) worst = rel, snprintf(worst_name, sizeof worst_name, "%s", ln);
            if (fabs(m1 - r1) > tol || fabs(sd1 - sd2) > tol) {
                failed++;
                printf("# %s: layer %s: mean %.5g vs %.5g, std %.5g vs %.5g (tol %.3g)\n", tag, ln, m1, r1, sd1, sd2, tol);
            }
        }
        free(ref);
    }
    T_CHECK(name, failed == 0 && missing == 0 && compared > 0, "%d of %d layers off, %d missing", failed, compared, missing);
    printf("# %s: %d layers compared; worst %s %.3g at %s\n", tag, compared, f16 ? "stat rel diff" : "max err / max|x|", worst, worst_name);
    if (!f16 && worst > fs->layer_rel) fs->layer_rel = worst, snprintf(fs->layer_name, sizeof fs->layer_name, "%s", worst_name);
    free(rgb);
    ec_session_free(s);
}

/* Every case end to end (probabilities + Grad-CAM) from the stored uint8 input. */
static void fx_cases(const char *tag, ec_model *m, const js_value *root, const char *expdir, int f16, fx_stats *fs)
{
    const js_value *cases = js_get(root, "cases");
    int H, W, K = ec_model_num_classes(m);
    ec_model_input_size(m, &H, &W);
    ec_session_options o = ec_session_options_default();
    o.gradcam = 1;
    ec_session *s = NULL;
    char name[256];
    snprintf(name, sizeof name, "%s_cases", tag);
    if (ec_session_new(m, &o, &s)) { t_fail(name, "%s", ec_last_error()); return; }
    char msg[256], pname[256];
    snprintf(pname, sizeof pname, "%s_plan_check", tag);
    T_CHECK(pname, ec_session_check_plan(s, msg, sizeof msg) == 0, "%s", msg);
    printf("# %s: arena %zu bytes, pinned %zu, scratch %zu\n", tag, ec_session_arena_bytes(s), ec_session_pinned_bytes(s),
           ec_session_scratch_bytes(s));
    float *probs = malloc(sizeof(float) * (size_t)K), *p16 = malloc(sizeof(float) * (size_t)K);
    float *cam = NULL;
    int bad = 0;
    double wp = 0, wc = 0, wpear = 1, tolmax = 0;
    for (int i = 0; cases && i < cases->n; i++) {
        const js_value *C = js_at(cases, i);
        const char *u8 = js_get_str(C, "input_u8"), *img = js_get_str(C, "image");
        long top1 = -1;
        js_int(js_get(C, "top1"), 0, K - 1, &top1);
        const js_value *hw = js_get(C, "gradcam_hw");
        long ch = 0, cw = 0;
        js_int(js_at(hw, 0), 1, 100000, &ch);
        js_int(js_at(hw, 1), 1, 100000, &cw);
        char *p = path_join(expdir, u8, NULL);
        size_t n;
        uint8_t *rgb = (uint8_t *)t_slurp(p, &n);
        free(p);
        cam = realloc(cam, sizeof(float) * (size_t)(ch * cw + 1));
        ec_result r;
        if (!rgb || n != (size_t)H * W * 3 || read_floats(js_get(C, "probs"), probs, K) ||
            read_floats(js_get(C, "fp16w_probs"), p16, K) || read_floats(js_get(C, "gradcam"), cam, (int)(ch * cw))) {
            printf("# %s %s: bad fixture\n", tag, img);
            bad++;
            free(rgb);
            continue;
        }
        if (ec_session_predict_rgb(s, rgb, W, H, &r)) {
            printf("# %s %s: %s\n", tag, img, ec_last_error());
            bad++;
            free(rgb);
            continue;
        }
        free(rgb);
        double dp = max_abs_diff(r.probabilities, probs, (size_t)K, NULL);
        double d16 = max_abs_diff(p16, probs, (size_t)K, NULL);
        double ptol = f16 ? fmax(3e-3, 1.5 * d16) : 1e-5;
        int camok = r.cam_height == ch && r.cam_width == cw;
        double dc = camok ? max_abs_diff(r.cam, cam, (size_t)(ch * cw), NULL) : INFINITY;
        double pr = camok ? t_pearson(r.cam, cam, (int)(ch * cw)) : 0;
        int ok = r.top_class == top1 && dp <= ptol && (f16 ? (pr >= 0.995 && dc <= 0.03) : dc <= 1e-3);
        if (r.top_class != top1) (f16 ? fs->top1_bad16++ : fs->top1_bad32++);
        if (!ok) {
            bad++;
            printf("# %s %s: top1 %d (keras %ld), max|dp| %.3g (tol %.3g; keras fp16w moved %.3g, we are %.3g from it), "
                   "cam %dx%d max|d| %.3g pearson %.5f\n", tag, img, r.top_class, top1, dp, ptol, d16,
                   max_abs_diff(r.probabilities, p16, (size_t)K, NULL), r.cam_height, r.cam_width, dc, pr);
        }
        wp = fmax(wp, dp), wc = fmax(wc, dc), wpear = fmin(wpear, pr), tolmax = fmax(tolmax, ptol);
    }
    T_CHECK(name, bad == 0 && cases && cases->n > 0, "%d cases off", bad);
    printf("# %s: %d cases: max|p - p_keras| %.3g (tol %.3g), grad-cam max|d| %.3g, min pearson %.6f\n", tag,
           cases ? cases->n : 0, wp, tolmax, wc, wpear);
    if (f16) fs->p16 = wp, fs->p16_tol = tolmax, fs->cam16 = wc, fs->pearson16 = wpear;
    else fs->p32 = wp, fs->cam32 = wc;

    /* threads: the first case again with threads = 2, bit for bit */
    if (!f16 && cases && cases->n > 0) {
        ec_session *s2 = NULL;
        o.threads = 2;
        snprintf(name, sizeof name, "%s_threads_bit_identical", tag);
        char *p = path_join(expdir, js_get_str(js_at(cases, 0), "input_u8"), NULL);
        size_t n;
        uint8_t *rgb = (uint8_t *)t_slurp(p, &n);
        free(p);
        ec_result r1, r2;
        if (rgb && !ec_session_new(m, &o, &s2) && !ec_session_predict_rgb(s, rgb, W, H, &r1) &&
            !ec_session_predict_rgb(s2, rgb, W, H, &r2)) {
            int same = !memcmp(r1.probabilities, r2.probabilities, sizeof(float) * (size_t)K) &&
                       !memcmp(r1.cam, r2.cam, sizeof(float) * (size_t)r1.cam_height * r1.cam_width);
            T_CHECK(name, same, "max|dp| %.3g", max_abs_diff(r1.probabilities, r2.probabilities, (size_t)K, NULL));
        } else {
            t_fail(name, "%s", ec_last_error());
        }
        free(rgb);
        ec_session_free(s2);
    }
    free(probs);
    free(p16);
    free(cam);
    ec_session_free(s);
}

/* The planner's folds (plan.c) on a float16 model: a plain session folds every
 * SE excite into the conv after it, every squeeze into the dwconv before it and
 * runs a fused-MBConv's project conv in its expand conv's bands where the model
 * has them; a Grad-CAM session explaining an excite's output (its backward reads
 * it) leaves that one unfolded, with a buffer, and still matches the plain
 * session's top class. */
static void test_plan_folds(const char *tag, ec_model *m)
{
    char name[160];
    snprintf(name, sizeof name, "%s_plan_folds", tag);
    ec_session_options o = ec_session_options_default();
    ec_session *s = NULL, *c = NULL;
    if (ec_session_new(m, &o, &s)) { t_fail(name, "%s", ec_last_error()); return; }
    const ec_plan *p = ec_session_plan(s);
    int n_mul = 0, n_ex = 0, n_sq = 0, n_band = 0, mul_node = -1;
    for (int k = 0; k < p->n_steps; k++) {
        const ec_step *st = &p->steps[k];
        const ec_node *n = &m->nodes[st->node];
        if (n->op == ECM_OP_MUL && m->values[n->in[1]].h == 1 && m->values[n->in[1]].w == 1) n_mul++;
        n_ex += st->excite_folded, n_sq += st->squeeze && n->op == ECM_OP_GAP, n_band += st->band > 0;
        if (st->excite_folded && mul_node < 0) mul_node = st->node;
        if (st->excite_folded && (k + 1 >= p->n_steps || ec_session_value(s, st->out)))
            t_fail(name, "folded excite %s has a buffer", m->nodes[st->node].name);
    }
    printf("# %s: %d of %d SE excites folded, %d squeezes, %d banded conv pairs\n", name, n_ex, n_mul, n_sq, n_band);
    int ok = ec_cpu_has_avx2() ? n_ex == n_mul : n_ex == 0;   /* the excite fold needs ec_gemm_w16 (AVX2) */
    if (mul_node >= 0) {
        o.gradcam = 1;
        o.cam_layer = m->nodes[mul_node].name;
        if (ec_session_new(m, &o, &c)) {
            t_fail(name, "cam at %s: %s", o.cam_layer, ec_last_error());
            ec_session_free(s);
            return;
        }
        const ec_plan *q = ec_session_plan(c);
        for (int k = 0; k < q->n_steps; k++)
            if (q->steps[k].node == mul_node) ok &= !q->steps[k].excite_folded && ec_session_value(c, q->steps[k].out) != NULL;
        int H, W;
        ec_model_input_size(m, &H, &W);
        uint8_t *rgb = malloc((size_t)H * W * 3);
        fill_image(rgb, (size_t)H * W * 3);
        ec_result r1, r2;
        if (ec_session_predict_rgb(s, rgb, W, H, &r1) || ec_session_predict_rgb(c, rgb, W, H, &r2)) ok = 0;
        else ok &= r1.top_class == r2.top_class;
        free(rgb);
    }
    T_CHECK(name, ok, "%d of %d excites folded; the excite explained (%s) folded, bufferless or predicting otherwise",
            n_ex, n_mul, mul_node >= 0 ? m->nodes[mul_node].name : "none");
    ec_session_free(s);
    ec_session_free(c);
}

static void fx_model(const char *fixdir, const char *mname, const char *file)
{
    char *src = path_join(fixdir, "models", file);
    char *expdir = path_join(fixdir, "expected", mname);
    char *expjson = path_join(expdir, "expected.json", NULL);
    js_doc *doc = NULL;
    const js_value *root = t_json_file(expjson, &doc);
    char err[256];
    fx_stats fs;
    memset(&fs, 0, sizeof fs);
    fs.pearson16 = 1;
    if (!root) {
        t_fail(mname, "cannot read %s", "expected.json");
        goto out;
    }
    for (int f16 = 0; f16 <= 1; f16++) {
        char tag[128], dst[64];
        snprintf(tag, sizeof tag, "%s_%s", file, f16 ? "fp16" : "fp32");
        snprintf(dst, sizeof dst, "fx_%s.ecm", f16 ? "fp16" : "fp32");
        char *out = path_join(t_tmp(), dst, NULL);
        ec_model *m = NULL;
        if (t_convert_keras(src, out, f16, err, sizeof err)) {
            t_fail(tag, "convert: %s", err);
        } else if (ec_model_load(out, &m)) {
            t_fail(tag, "load: %s", ec_last_error());
        } else {
            long params = 0;
            js_int(js_get(root, "params"), 0, 1L << 40, &params);
            char nm[200];
            snprintf(nm, sizeof nm, "%s_params", tag);
            T_CHECK(nm, ec_model_params(m) == params, "%lld vs keras %ld", (long long)ec_model_params(m), params);
            snprintf(nm, sizeof nm, "%s_gradcam_layer", tag);
            const char *gl = js_get_str(root, "gradcam_layer");
            T_CHECK(nm, gl && ec_model_gradcam_layer(m) && !strcmp(gl, ec_model_gradcam_layer(m)), "%s vs %s",
                    ec_model_gradcam_layer(m) ? ec_model_gradcam_layer(m) : "(none)", gl ? gl : "?");
            fx_layers(tag, m, root, expdir, f16, &fs);
            fx_cases(tag, m, root, expdir, f16, &fs);
            if (f16) test_plan_folds(tag, m);
            ec_model_free(m);
        }
        remove(out);
        free(out);
    }
    printf("# SUMMARY %s: fp32 max|dp| %.3g, cam max|d| %.3g, worst layer %.3g (%s); fp16 max|dp| %.3g (tol %.3g), cam max|d| %.3g, "
           "pearson %.5f; top-1 misses fp32 %d fp16 %d\n", file, fs.p32, fs.cam32, fs.layer_rel, fs.layer_name, fs.p16, fs.p16_tol,
           fs.cam16, fs.pearson16, fs.top1_bad32, fs.top1_bad16);
out:
    js_doc_free(doc);
    free(src);
    free(expdir);
    free(expjson);
}

static void test_fixtures(const char *fixdir, const char *only_not_in)
{
    char *mp = path_join(fixdir, "manifest.json", NULL);
    js_doc *doc = NULL;
    const js_value *root = t_json_file(mp, &doc);
    free(mp);
    if (!root) {
        t_fail("fixtures_manifest", "cannot read %s/manifest.json", fixdir);
        return;
    }
    const js_value *models = js_get(root, "models");
    for (int i = 0; models && i < models->n; i++) {
        const js_value *M = js_at(models, i);
        const char *name = js_get_str(M, "name");
        if (!name) continue;
        if (only_not_in) {   /* shared set: only the models the local set lacks */
            char *p = path_join(only_not_in, "expected", name);
            char *q = path_join(p, "expected.json", NULL);
            FILE *f = fopen(q, "rb");
            free(p), free(q);
            if (f) { fclose(f); continue; }
        }
        const js_value *files = js_get(M, "files");
        for (int k = 0; files && k < files->n; k++) {
            const char *file = js_str(js_at(files, k));
            if (file) fx_model(fixdir, name, file);
        }
    }
    js_doc_free(doc);
}

/* The loader's fast CRC (carry-less multiply) equals zlib's for every length
 * class: below the fast path's minimum, around its 64-byte blocks, large. */
static void test_crc(void)
{
    size_t cap = (1u << 20) + 300;
    unsigned char *b = malloc(cap);
    uint32_t x = 12345;
    for (size_t i = 0; i < cap; i++) { x = x * 1664525u + 1013904223u; b[i] = (unsigned char)(x >> 24); }
    static const size_t lens[] = { 0, 1, 63, 64, 65, 255, 256, 257, 319, 320, 321, 511, 512, 513, 837, 1000, 4096,
                                   65536 + 13, 1u << 20, (1u << 20) + 300 };
    int bad = -1;
    const char *bad_k = "";
    for (size_t i = 0; i < sizeof lens / sizeof lens[0] && bad < 0; i++)
        for (int start = 0; start < 3 && bad < 0; start++) {
            uint32_t seed = start == 0 ? 0 : start == 1 ? 0xdeadbeefu : 0xffffffffu;
            uint32_t want = (uint32_t)crc32(seed, b + start, (uInt)lens[i]);
            if (ec_crc32_update(seed, b + start, lens[i]) != want) bad = (int)i, bad_k = "dispatched";
            if (ec_crc32_update__clmul(seed, b + start, lens[i]) != want) bad = (int)i, bad_k = "clmul";
            if (ec_cpu_has_vpclmul() && ec_crc32_update__vpclmul(seed, b + start, lens[i]) != want) bad = (int)i, bad_k = "vpclmul";
        }
    T_CHECK("crc32 fast paths equal zlib (128- and 512-bit folding, lengths 0..1 MiB, 3 start values, unaligned)",
            bad < 0, "the %s path differs at length %zu", bad_k, bad >= 0 ? lens[bad] : 0);
    if (!ec_cpu_has_vpclmul())
        t_skip("crc32 512-bit folding", "this CPU (or EFFCAM_NO_AVX512) has no VPCLMULQDQ with AVX-512 in use");
    free(b);
}

/* ---- answers that are not numbers, outputs that are not probabilities ------------------ */

/* input (4, 4, 3) -> GAP -> dense 3 -> 3 with the given kernel scale and activation */
static ec_model *tg_head_model(const char *file, float kscale, int act)
{
    cv_graph g;
    cv_graph_init(&g);
    int x = cv_graph_add_value(&g, "input", 4, 4, 3);
    int p = cv_graph_add_value(&g, "gap", 1, 1, 3), o = cv_graph_add_value(&g, "fc", 1, 1, 3);
    tg_node(&g, ECM_OP_GAP, "gap", x, -1, p);
    tg_dense(&g, "fc", p, o, 3, 3, act, 0);
    for (int i = 0; i < 9; i++) g.tensors[g.nodes[1].w[0]].data[i] = kscale * (float)(i % 3 == i / 3 ? 1 : -1);
    g.input_value = x;
    g.output_value = o;
    cv_err er;
    cv_graph_set_labels(&g, NULL, &er);
    ec_model *m = tg_load(&g, file);
    cv_graph_free(&g);
    return m;
}

static void test_answers(void)
{
    uint8_t rgb[4 * 4 * 3];
    for (size_t i = 0; i < sizeof rgb; i++) rgb[i] = (uint8_t)(200 + i % 50);
    /* finite float32 weights whose products overflow: Inf logits, NaN softmax */
    static const struct { const char *file; int act; } cases[] = {
        { "overflow_linear.ecm", ECM_ACT_LINEAR }, { "overflow_softmax.ecm", ECM_ACT_SOFTMAX } };
    for (int c = 0; c < 2; c++) {
        char name[128];
        snprintf(name, sizeof name, "non-finite output is an error, not a number (%s)", cases[c].file);
        ec_model *m = tg_head_model(cases[c].file, 3e38f, cases[c].act);
        ec_session *s = NULL;
        ec_result r;
        ec_status st = m ? ec_session_new(m, NULL, &s) : EC_ERR_INTERNAL;
        if (st == EC_OK) st = ec_session_predict_rgb(s, rgb, 4, 4, &r);
        T_CHECK(name, st == EC_ERR_FORMAT && strstr(ec_last_error(), "non-finite"), "status %d: %s", st, ec_last_error());
        ec_session_free(s);
        ec_model_free(m);
    }
    /* a model whose output is no softmax reports scores, not probabilities */
    ec_model *lin = tg_head_model("scores.ecm", 0.01f, ECM_ACT_LINEAR), *soft = tg_head_model("probs.ecm", 0.01f, ECM_ACT_SOFTMAX);
    T_CHECK("output kind: linear head = scores, softmax head = probabilities",
            lin && soft && !ec_model_output_is_probability(lin) && ec_model_output_is_probability(soft), "%s",
            ec_last_error());
    ec_model_free(lin);
    ec_model_free(soft);
    char *ecm = path_join(t_tmp(), "scores.ecm", NULL), *img = path_join(t_tmp(), "scores.ppm", NULL);
    char *out = path_join(t_tmp(), "scores.out", NULL), cmd[4096];
    FILE *f = fopen(img, "wb");
    if (f) {
        fprintf(f, "P6\n4 4\n255\n");
        fwrite(rgb, 1, sizeof rgb, f);
        fclose(f);
    }
    snprintf(cmd, sizeof cmd, "'%s' predict '%s' '%s' --json > '%s' 2>&1 && '%s' predict '%s' '%s' >> '%s' 2>&1", t_bin(), ecm,
             img, out, t_bin(), ecm, img, out);
    int rc = system(cmd);
    char *text = t_slurp(out, NULL);
    T_CHECK("predict on a scores model: \"scores\" in JSON, no percent sign in the report",
            rc == 0 && text && strstr(text, "\"scores\": [") && !strstr(text, "probabilit") && !strchr(text, '%'),
            "exit %d: %s", rc, text ? text : "(no output)");
    free(text);
    free(ecm);
    free(img);
    free(out);
}

/* The weights' mapping starts on a 2 MiB boundary (model.c: ec_map_file), so
 * that 2 MiB page-cache folios map whole. Whether they do is the kernel's and
 * the filesystem's business (printed, not tested): the file was written just
 * now by the converter in whole 2 MiB pieces; and the session's large
 * buffers' 2 MiB pages likewise. */
static void check_huge_mappings(const ec_model *m, const ec_session *s)
{
    const uintptr_t huge = (uintptr_t)2 << 20;
    T_CHECK("v2s_300_weights_map_2mib_aligned", m->mapped && ((uintptr_t)m->base & (huge - 1)) == 0,
            "mapped %d at %p", m->mapped, (const void *)m->base);
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return;
    char line[256];
    unsigned long lo = 0, hi = 0, kb;
    long file_pmd = -1, anon_huge = 0;
    int in_model = 0;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
            in_model = (uintptr_t)m->base >= lo && (uintptr_t)m->base < hi;
        else if (in_model && sscanf(line, "FilePmdMapped: %lu kB", &kb) == 1) file_pmd = (long)kb;
        else if (sscanf(line, "AnonHugePages: %lu kB", &kb) == 1) anon_huge += (long)kb;
    }
    fclose(f);
    printf("# v2s_300: weights mapped with 2 MiB entries: %ld of %zu kB; anonymous 2 MiB pages: %ld kB (arena %zu bytes)\n",
           file_pmd, m->size / 1024, anon_huge, ec_session_arena_bytes(s));
}

/* OpenBLAS runs only the GEMMs of CPUs without AVX2 (kernels/blas.c): with
 * AVX2 a whole V2-S predict + Grad-CAM must not have loaded it (its ~3.5 MB of
 * resident pages are what not linking it saves); without AVX2 it (or the
 * reference GEMM, where none is installed) ran them. */
static void check_openblas_not_loaded(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) {
        t_skip("v2s_300_openblas_not_loaded", "no /proc/self/maps");
        return;
    }
    char line[512];
    int loaded = 0;
    while (fgets(line, sizeof line, f)) loaded |= strstr(line, "libopenblas") != NULL;
    fclose(f);
    if (!ec_cpu_has_avx2()) {
        printf("# v2s_300: scalar kernels: OpenBLAS %s\n", loaded ? "loaded, it ran the GEMMs" : "not found, the reference GEMM ran");
        return;
    }
    T_CHECK("v2s_300_openblas_not_loaded", !loaded, "libopenblas is mapped although every GEMM is effcam's own");
}

/* EfficientNetV2-S at 300 px with fp16 kernels (the shapes the thread splits
 * are tuned on: 1x1 convs of 361 and 100 rows split by rows or by panels,
 * depthwise convs of 19 and 10 rows, Winograd bands): predict and Grad-CAM
 * bit-identical for 1, 2 and 3 threads. */
static void test_threads_v2s(void)
{
    cv_graph g;
    cv_err e = { "" };
    if (ec_synth_build("efficientnetv2-s", 300, 7, 3, 1, &g, &e)) {
        t_fail("v2s_300_fp16_threads_bit_identical", "synth: %s", e.msg);
        cv_graph_free(&g);
        return;
    }
    ec_model *m = tg_load(&g, "v2s_300.ecm");
    cv_graph_free(&g);
    if (!m) {
        t_fail("v2s_300_fp16_threads_bit_identical", "%s", ec_last_error());
        return;
    }
    uint8_t *rgb = malloc(300 * 300 * 3);
    fill_image(rgb, 300 * 300 * 3);
    ec_result r[3];
    ec_session *s[3] = { NULL, NULL, NULL };   /* a result lives as long as its session */
    int ok = rgb != NULL, same = 1;
    for (int t = 0; t < 3 && ok; t++) {
        ec_session_options o = ec_session_options_default();
        o.gradcam = 1;
        o.threads = t + 1;
        ok = ec_session_new(m, &o, &s[t]) == EC_OK && ec_session_predict_rgb(s[t], rgb, 300, 300, &r[t]) == EC_OK;
        if (ok && t > 0)
            same = same && r[t].num_classes == r[0].num_classes && r[t].cam_height == r[0].cam_height &&
                   r[t].cam_width == r[0].cam_width && r[0].cam &&
                   !memcmp(r[t].probabilities, r[0].probabilities, sizeof(float) * (size_t)r[0].num_classes) &&
                   !memcmp(r[t].cam, r[0].cam, sizeof(float) * (size_t)r[0].cam_height * r[0].cam_width);
    }
    T_CHECK("v2s_300_fp16_threads_bit_identical", ok && same, "%s",
            ok ? "threads 2 or 3 differ from 1" : ec_last_error());
    check_huge_mappings(m, s[0]);
    check_openblas_not_loaded();
    for (int t = 0; t < 3; t++) ec_session_free(s[t]);
    free(rgb);
    ec_model_free(m);
}

int main(void)
{
    t_rng_seed(0x2545F4914F6CDD1Dull);
    test_crc();
    test_planner();
    test_loader();

    cv_graph g;
    tg_build_v2(&g, 0);
    ec_model *m32 = tg_load(&g, "v2_32.ecm");
    cv_graph_free(&g);
    tg_build_v2(&g, 1);
    ec_model *m16 = tg_load(&g, "v2_16.ecm");
    cv_graph_free(&g);
    tg_build_ops(&g);
    ec_model *mops = tg_load(&g, "ops.ecm");
    cv_graph_free(&g);
    tg_build_deep(&g);
    ec_model *mdeep = tg_load(&g, "deep.ecm");
    cv_graph_free(&g);
    T_CHECK("tiny_models_load", m32 && m16 && mops && mdeep, "%s", ec_last_error());
    if (m32 && m16 && mops && mdeep) {
        test_forward_tiny("v2_fp32", m32);
        test_forward_tiny("v2_fp16", m16);
        test_forward_tiny("ops", mops);
        test_forward_tiny("deep", mdeep);
        test_gradcam_fd("v2_fp32", m32, 0, NULL, 1, 1);
        test_gradcam_fd("v2_fp32", m32, 1, NULL, 1, 1);
        test_gradcam_fd("v2_fp16", m16, 0, NULL, 1, 1);
        test_gradcam_fd("ops", mops, 0, NULL, 1, 1);
        test_gradcam_fd("ops", mops, 1, NULL, 1, 1);
        /* deeper targets: every backward op, recomputed blocks, the input */
        static const char *const v2_layers[] = { "stem_activation", "stem_conv", "dw", "input" };
        for (size_t i = 0; i < sizeof v2_layers / sizeof *v2_layers; i++) {
            test_gradcam_fd("v2_fp32", m32, 0, v2_layers[i], 1, 1);
            test_gradcam_fd("v2_fp16", m16, 0, v2_layers[i], 1, 1);
        }
        static const char *const ops_layers[] = { "input", "normalization", "pad", "bn", "sig", "reshape", "excite" };
        for (size_t i = 0; i < sizeof ops_layers / sizeof *ops_layers; i++) test_gradcam_fd("ops", mops, 0, ops_layers[i], 1, 1);
        test_gradcam_fd("ops", mops, 1, "input", 1, 1);
        static const char *const deep_layers[] = { "top_conv", "c5_act", "pad", "dw2", "add", "drop", "se_excite",
                                                   "c3_act", "c2", "dw1_act", "stem_activation",
                                                   "stem_conv", "rescaling", "input" };
        for (size_t i = 0; i < sizeof deep_layers / sizeof *deep_layers; i++)
            test_gradcam_fd("deep", mdeep, 0, deep_layers[i], 1, 0);
        test_gradcam_fd("deep", mdeep, 1, "input", 1, 0);
        test_gradcam_fd("deep", mdeep, 0, "input", 2, 0);
        test_gradcam_threads("deep", mdeep, "input");
        test_gradcam_threads("deep", mdeep, "stem_activation");
        /* the default budget: blocks kept, checked by finite differences too */
        fd_keep = ec_session_options_default().cam_keep_bytes;
        test_gradcam_fd("v2_fp32", m32, 0, "stem_activation", 1, 1);
        test_gradcam_fd("deep", mdeep, 0, "stem_activation", 1, 0);
        test_gradcam_fd("deep", mdeep, 1, "input", 2, 0);
        fd_keep = 0;
        test_gradcam_keep("v2_fp32", m32, "stem_activation");
        test_gradcam_keep("deep", mdeep, "stem_activation");
        test_gradcam_keep("deep", mdeep, "input");
        test_gradcam_errors(m32);
    }
    ec_model_free(m32);
    ec_model_free(m16);
    ec_model_free(mops);
    ec_model_free(mdeep);

    test_answers();
    test_threads_v2s();
    test_fixtures(t_local(), NULL);
    if (t_shared()) test_fixtures(t_shared(), t_local());
    else t_skip("shared_fixtures", "EC_SHARED not set");
    return t_failed;
}
