/* test_hostile.c - the engine against hand-made models (issue #17).
 *
 * Models are built with the converter's graph IR (convert/cv.h), written by
 * cv_ecm_write (which checks them as convert does) and then patched the way a
 * hand-made or damaged file could be, the CRC recomputed so that only the
 * patch is wrong:
 *   1. the activation arena limit: ec_plan_build / ec_session_new refuse a plan
 *      over max_arena_bytes (EC_ERR_LIMIT, "model needs N MiB of activations")
 *      before allocating it, Grad-CAM's buffers included; a 1 KB model asking
 *      for 1.5 GB is refused at once; the converter's bound never exceeds the
 *      planned arena (synthesized EfficientNets and the hostile model);
 *   2. load refuses derived vectors that are not finite (negative variance,
 *      epsilon 0 with variance 0) and tensors shared between nodes;
 *   3. a NaN or infinity in a weight (float32 or float16) fails the first
 *      predict with EC_ERR_FORMAT (found as the lazy checksum reads it), every
 *      later one at once, and ec_model_verify.
 */
#include <math.h>
#include <stdint.h>
#include <sys/resource.h>
#include <zlib.h>

#include "convert/cv.h"
#include "engine/engine.h"
#include "models/effnet.h"
#include "tests/harness.h"

/* ---- building ------------------------------------------------------------------------ */

static int tensor(cv_graph *g, const char *name, int rank, int64_t d0, int64_t d1, int64_t d2, int64_t d3, float v)
{
    int64_t dims[4] = { d0, d1, d2, d3 };
    int t = cv_graph_add_tensor(g, name, rank, dims);
    cv_tensor *T = &g->tensors[t];
    int64_t n = cv_tensor_elems(T);
    T->data = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) T->data[i] = v + 0.01f * (float)(i % 13);
    return t;
}

static cv_node *node(cv_graph *g, int op, const char *name, int in, int out)
{
    cv_node *n = cv_graph_add_node(g, op, name);
    n->n_in = 1, n->in[0] = in, n->out = out;
    return n;
}

/* input 6x6x3 -> conv 3x3 s1 same (8) + bias -> BN -> relu -> conv 1x1 (8, float16)
 * -> BN2 -> GAP -> dense (2, softmax). Tensor ids: 0 conv kernel, 1 conv bias,
 * 2-5 bn gamma/beta/mean/var, 6 conv2 kernel, 7-10 bn2, 11 fc kernel, 12 fc bias. */
static void build_small(cv_graph *g)
{
    cv_graph_init(g);
    int x = cv_graph_add_value(g, "input", 6, 6, 3), c = cv_graph_add_value(g, "conv", 6, 6, 8);
    int b = cv_graph_add_value(g, "bn", 6, 6, 8), r = cv_graph_add_value(g, "relu", 6, 6, 8);
    int c2 = cv_graph_add_value(g, "conv2", 6, 6, 8), b2 = cv_graph_add_value(g, "bn2", 6, 6, 8);
    int p = cv_graph_add_value(g, "gap", 1, 1, 8), o = cv_graph_add_value(g, "fc", 1, 1, 2);
    int k = tensor(g, "conv/kernel", 4, 3, 3, 3, 8, -0.1f), kb = tensor(g, "conv/bias", 1, 8, 1, 1, 1, 0.05f);
    cv_node *n = node(g, ECM_OP_CONV2D, "conv", x, c);
    n->kh = n->kw = 3, n->pt = n->pb = n->pl = n->pr = 1, n->n_w = 2, n->w[0] = k, n->w[1] = kb;
    const char *bn_names[2] = { "bn", "bn2" };
    for (int i = 0; i < 2; i++) {
        char nm[4][32];
        const char *part[4] = { "gamma", "beta", "moving_mean", "moving_variance" };
        int t[4];
        for (int j = 0; j < 4; j++) {
            snprintf(nm[j], sizeof nm[j], "%s/%s", bn_names[i], part[j]);
            t[j] = tensor(g, nm[j], 1, 8, 1, 1, 1, j == 0 || j == 3 ? 1.0f : 0.0f);
        }
        n = node(g, ECM_OP_BATCHNORM, bn_names[i], i ? c2 : c, i ? b2 : b);
        n->f0 = 1e-3f, n->n_w = 4;
        for (int j = 0; j < 4; j++) n->w[j] = t[j];
        if (i == 0) {
            n = node(g, ECM_OP_ACTIVATION, "relu", b, r);
            n->act = ECM_ACT_RELU;
            int k2 = tensor(g, "conv2/kernel", 4, 1, 1, 8, 8, -0.05f);
            g->tensors[k2].to_f16 = 1;
            n = node(g, ECM_OP_CONV2D, "conv2", r, c2);
            n->n_w = 2, n->w[0] = k2;
        }
    }
    node(g, ECM_OP_GAP, "gap", b2, p);
    int fk = tensor(g, "fc/kernel", 2, 8, 2, 1, 1, -0.2f), fb = tensor(g, "fc/bias", 1, 2, 1, 1, 1, 0.0f);
    n = node(g, ECM_OP_DENSE, "fc", p, o);
    n->act = ECM_ACT_SOFTMAX, n->n_w = 2, n->w[0] = fk, n->w[1] = fb;
    g->input_value = x, g->output_value = o;
    cv_graph_pick_gradcam(g);
    cv_err e;
    cv_graph_set_labels(g, NULL, &e);
}

/* Writes g, reads the file back into a malloc'd buffer (64-byte aligned, as a
 * map would be). NULL with a FAIL line on error. */
static unsigned char *write_read(const cv_graph *g, const char *file, size_t *n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", t_tmp(), file);
    cv_err e = { "" };
    if (cv_ecm_write(g, path, &e)) {
        t_fail(file, "cv_ecm_write: %s", e.msg);
        return NULL;
    }
    size_t len = 0;
    char *b = t_slurp(path, &len);
    unlink(path);
    unsigned char *a = b ? aligned_alloc(64, (len + 63) / 64 * 64) : NULL;
    if (a) memcpy(a, b, len);
    free(b);
    *n = len;
    return a;
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void fix_crc(unsigned char *b, size_t n)
{
    put32(b + ECM_H_CRC32, 0);
    put32(b + ECM_H_CRC32, (uint32_t)crc32(crc32(0L, Z_NULL, 0), b, (uInt)n));
}

/* Byte offset in the file of element j of tensor t (loads the pristine image). */
static size_t elem_offset(const unsigned char *img, size_t n, int t, int j)
{
    ec_model *m = NULL;
    if (ec_model_from_memory(img, n, &m) != EC_OK) return 0;
    size_t off = (size_t)((const unsigned char *)m->tensors[t].data - img) + (size_t)j * (m->tensors[t].dtype == ECM_DT_F16 ? 2 : 4);
    ec_model_free(m);
    return off;
}

static void put_f32(unsigned char *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    put32(p, u);
}

/* ---- 1. the activation arena limit ---------------------------------------------------- */

static long peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024;
}

static void test_arena_limit(void)
{
    cv_graph g;
    build_small(&g);
    size_t n;
    unsigned char *img = write_read(&g, "small_arena.ecm", &n);
    ec_model *m = NULL;
    if (!img || ec_model_from_memory(img, n, &m) != EC_OK) {
        t_fail("arena limit: load the small model", "%s", ec_last_error());
        goto out;
    }
    ec_session_options o = ec_session_options_default();
    ec_session *s0 = NULL, *s1 = NULL;
    ec_status st0 = ec_session_new(m, &o, &s0);
    o.gradcam = 1;
    ec_status st1 = ec_session_new(m, &o, &s1);
    size_t a0 = ec_session_arena_bytes(s0), a1 = ec_session_arena_bytes(s1);
    ec_session_free(s0), ec_session_free(s1);
    T_CHECK("arena limit: default sessions (1 GiB) take the small model", st0 == EC_OK && st1 == EC_OK && a0 > 0 && a1 >= a0,
            "%d %d: %s", st0, st1, ec_last_error());
    /* the limit on the planner itself */
    unsigned char *pin = calloc((size_t)m->n_values, 1);
    ec_plan p;
    ec_status sp = ec_plan_build(m, pin, NULL, 0, a0 - 1, &p);
    T_CHECK("arena limit: ec_plan_build refuses a plan one byte over its limit",
            sp == EC_ERR_LIMIT && strstr(ec_last_error(), "MiB of activations, over the limit of 0 MiB"), "%d: %s", sp,
            ec_last_error());
    if (sp == EC_OK) ec_plan_free(&p);
    sp = ec_plan_build(m, pin, NULL, 0, a0, &p);
    T_CHECK("arena limit: ec_plan_build takes a plan exactly at its limit", sp == EC_OK && p.arena_bytes == a0, "%d: %s", sp,
            ec_last_error());
    if (sp == EC_OK) ec_plan_free(&p);
    free(pin);
    /* the session: the forward plan alone, then Grad-CAM's buffers appended */
    o.gradcam = 0;
    o.max_arena_bytes = (int64_t)a0 - 1;
    ec_status sa = ec_session_new(m, &o, &s0);
    o.max_arena_bytes = (int64_t)a0;
    ec_status sb = ec_session_new(m, &o, &s1);
    ec_session_free(s0), ec_session_free(s1);
    s0 = s1 = NULL;
    T_CHECK("arena limit: ec_session_new refuses over max_arena_bytes (EC_ERR_LIMIT), takes it at the limit",
            sa == EC_ERR_LIMIT && sb == EC_OK, "%d %d: %s", sa, sb, ec_last_error());
    if (a1 > a0) {
        o.gradcam = 1;
        sa = ec_session_new(m, &o, &s0);
        ec_session_free(s0);
        T_CHECK("arena limit: Grad-CAM's buffers count (forward fits, forward + Grad-CAM does not)",
                sa == EC_ERR_LIMIT && strstr(ec_last_error(), "model needs"), "%d: %s", sa, ec_last_error());
    } else {
        t_skip("arena limit: Grad-CAM's buffers count", "Grad-CAM adds nothing to this model's arena");
    }
    o = ec_session_options_default();
    o.max_arena_bytes = 0;
    sa = ec_session_new(m, &o, &s0);
    ec_session_free(s0);
    T_CHECK("arena limit: max_arena_bytes = 0 is a bad argument", sa == EC_ERR_ARG, "%d", sa);
    ec_model_free(m);
out:
    free(img);
    cv_graph_free(&g);
}

/* ZeroPadding2D to 8009x8015x3, then a 1x1 depthwise conv: a 1 KB model whose
 * plan needs ~1.5 GB (3 GB with Grad-CAM); predict was OOM-killed. */
static void build_pad_bomb(cv_graph *g)
{
    cv_graph_init(g);
    int x = cv_graph_add_value(g, "input", 8, 8, 3), z = cv_graph_add_value(g, "pad", 8009, 8015, 3);
    int d = cv_graph_add_value(g, "dw", 8009, 8015, 3), p = cv_graph_add_value(g, "gap", 1, 1, 3);
    cv_node *n = node(g, ECM_OP_ZEROPAD, "pad", x, z);
    n->pt = 4000, n->pb = 4001, n->pl = 4003, n->pr = 4004;
    int k = tensor(g, "dw/kernel", 4, 1, 1, 3, 1, 1.0f);
    n = node(g, ECM_OP_DWCONV2D, "dw", z, d);
    n->n_w = 2, n->w[0] = k, n->w[1] = -1;
    node(g, ECM_OP_GAP, "gap", d, p);
    g->input_value = x, g->output_value = p;
    cv_graph_pick_gradcam(g);
    cv_err e;
    cv_graph_set_labels(g, NULL, &e);
}

static void test_pad_bomb(void)
{
    cv_graph g;
    build_pad_bomb(&g);
    size_t n;
    unsigned char *img = write_read(&g, "pad_bomb.ecm", &n);
    ec_model *m = NULL;
    if (!img || ec_model_from_memory(img, n, &m) != EC_OK) {
        t_fail("arena limit: the ZeroPadding model loads", "%s", ec_last_error());
        free(img);
        cv_graph_free(&g);
        return;
    }
    long rss0 = peak_rss_mb();
    ec_session_options o = ec_session_options_default();
    ec_session *s = NULL;
    char msg[2][300];
    ec_status st[2];
    for (int cam = 0; cam < 2; cam++) {
        o.gradcam = cam;
        st[cam] = ec_session_new(m, &o, &s);
        snprintf(msg[cam], sizeof msg[cam], "%s", ec_last_error());
        ec_session_free(s);
        s = NULL;
    }
    char name[1000];
    snprintf(name, sizeof name, "arena limit: %zu-byte model asking for 8009x8015x3 twice refused (%s; with Grad-CAM: %s)", n,
             msg[0], msg[1]);
    T_CHECK(name, st[0] == EC_ERR_LIMIT && st[1] == EC_ERR_LIMIT && strstr(msg[0], "model needs 1470 MiB of activations") &&
                  peak_rss_mb() - rss0 < 64,
            "status %d/%d, peak RSS grew %ld MB", st[0], st[1], peak_rss_mb() - rss0);
    /* the converter's bound, against the plan (placement only: nothing allocated) */
    unsigned char *pin = calloc((size_t)m->n_values, 1);
    ec_plan p;
    uint64_t lb = cv_graph_activation_bytes(&g);
    ec_status sp = ec_plan_build(m, pin, NULL, 0, SIZE_MAX, &p);
    T_CHECK("arena limit: the converter's activation bound (ZeroPadding model) is at most the planned arena",
            sp == EC_OK && lb > ((uint64_t)1 << 30) && lb <= p.arena_bytes, "bound %llu, arena %zu (%d)", (unsigned long long)lb,
            sp == EC_OK ? p.arena_bytes : 0, sp);
    if (sp == EC_OK) ec_plan_free(&p);
    free(pin);
    ec_model_free(m);
    free(img);
    cv_graph_free(&g);
}

/* cv_graph_activation_bytes is a lower bound of the engine's plan: convert must
 * never refuse a model a session would take. Every EfficientNet the synthesizer
 * knows, at a small size. */
static void test_bound_vs_plan(void)
{
    int bad = 0, n_arch = 0;
    double worst = 0;
    char worst_name[64] = "";
    for (const char *const *a = ec_synth_arch_names(); *a && !bad; a++) {
        cv_graph g;
        cv_err e = { "" };
        cv_graph_init(&g);
        if (ec_synth_build(*a, 96, 5, 1, 1, &g, &e)) {
            t_fail("activation bound vs plan", "synth %s: %s", *a, e.msg);
            cv_graph_free(&g);
            return;
        }
        cv_graph_keep_f32_ends(&g);
        size_t n;
        unsigned char *img = write_read(&g, "synth.ecm", &n);
        ec_model *m = NULL;
        if (!img || ec_model_from_memory(img, n, &m) != EC_OK) {
            t_fail("activation bound vs plan", "load %s: %s", *a, ec_last_error());
            free(img);
            cv_graph_free(&g);
            return;
        }
        unsigned char *pin = calloc((size_t)m->n_values, 1);
        ec_plan p;
        uint64_t lb = cv_graph_activation_bytes(&g);
        if (ec_plan_build(m, pin, NULL, 0, SIZE_MAX, &p) == EC_OK) {
            double r = (double)lb / (double)p.arena_bytes;
            if (lb > p.arena_bytes) bad = 1;
            if (r > worst) worst = r, snprintf(worst_name, sizeof worst_name, "%s", *a);
            ec_plan_free(&p);
        } else {
            bad = 1;
        }
        n_arch++;
        free(pin);
        ec_model_free(m);
        free(img);
        cv_graph_free(&g);
    }
    char name[200];
    snprintf(name, sizeof name, "activation bound <= planned arena on %d synthesized EfficientNets at 96x96 (closest: %s, %.3f)",
             n_arch, worst_name, worst);
    T_CHECK(name, !bad && n_arch > 0, "the bound exceeded the plan on %s", worst_name);
}

/* ---- 2. load: derived vectors, shared tensors ------------------------------------------ */

static ec_status load_patched(const unsigned char *img, size_t n, size_t off, float v, size_t off2, float v2)
{
    unsigned char *b = aligned_alloc(64, (n + 63) / 64 * 64);
    memcpy(b, img, n);
    put_f32(b + off, v);
    if (off2) put_f32(b + off2, v2);
    fix_crc(b, n);
    ec_model *m = NULL;
    ec_status st = ec_model_from_memory(b, n, &m);
    ec_model_free(m);
    free(b);
    return st;
}

static void test_load_checks(void)
{
    cv_graph g;
    build_small(&g);
    size_t n;
    unsigned char *img = write_read(&g, "small_load.ecm", &n);
    if (!img) { cv_graph_free(&g); return; }
    /* node records follow the value table; bn is node 1, f0 its epsilon */
    size_t node1 = ECM_HEADER_SIZE + (size_t)g.n_values * ECM_VALUE_SIZE + 1 * ECM_NODE_SIZE;
    ec_status st = load_patched(img, n, elem_offset(img, n, 5, 2), -1.0f, 0, 0);
    T_CHECK("load: a negative moving_variance is refused", st == EC_ERR_FORMAT &&
            strstr(ec_last_error(), "node 1 (bn): moving_variance[2] = -1"), "%d: %s", st, ec_last_error());
    st = load_patched(img, n, elem_offset(img, n, 5, 3), 0.0f, node1 + ECM_N_F0, 0.0f);
    T_CHECK("load: epsilon 0 with a variance of 0 (scale inf) is refused", st == EC_ERR_FORMAT &&
            strstr(ec_last_error(), "node 1 (bn): channel 3 folds to scale inf"), "%d: %s", st, ec_last_error());
    st = load_patched(img, n, elem_offset(img, n, 2, 0), NAN, 0, 0);
    T_CHECK("load: a NaN gamma is refused", st == EC_ERR_FORMAT && strstr(ec_last_error(), "channel 0 folds to scale nan"),
            "%d: %s", st, ec_last_error());
    st = load_patched(img, n, elem_offset(img, n, 1, 4), INFINITY, 0, 0);
    T_CHECK("load: an infinite conv bias (folded into the BatchNorm shift) is refused", st == EC_ERR_FORMAT &&
            strstr(ec_last_error(), "channel 4 folds to"), "%d: %s", st, ec_last_error());
    /* two nodes reading one tensor: bn2's moving_mean slot pointing at bn's */
    size_t node4 = ECM_HEADER_SIZE + (size_t)g.n_values * ECM_VALUE_SIZE + 4 * ECM_NODE_SIZE;
    unsigned char *b = aligned_alloc(64, (n + 63) / 64 * 64);
    memcpy(b, img, n);
    put32(b + node4 + ECM_N_W + 4 * 2, 4);
    fix_crc(b, n);
    ec_model *m = NULL;
    st = ec_model_from_memory(b, n, &m);
    ec_model_free(m);
    free(b);
    T_CHECK("load: a tensor shared by two nodes is refused", st == EC_ERR_FORMAT &&
            strstr(ec_last_error(), "weight tensor 4 (bn/moving_mean) is already a weight of node 1 (bn)"), "%d: %s", st,
            ec_last_error());
    free(img);
    cv_graph_free(&g);
}

/* ---- 3. non-finite weights, found lazily ---------------------------------------------- */

static void test_nonfinite(void)
{
    cv_graph g;
    build_small(&g);
    size_t n;
    unsigned char *img = write_read(&g, "small_nan.ecm", &n);
    if (!img) { cv_graph_free(&g); return; }
    uint8_t rgb[6 * 6 * 3];
    for (size_t i = 0; i < sizeof rgb; i++) rgb[i] = (uint8_t)(i * 29 + 7);
    /* a float32 NaN in the first conv kernel, a float16 infinity in conv2's */
    const struct { const char *what; int t, j; int f16; } cases[] = {
        { "a NaN in a float32 kernel", 0, 17, 0 },
        { "an infinity in a float16 kernel", 6, 5, 1 },
    };
    for (int c = 0; c < 2; c++) {
        unsigned char *b = aligned_alloc(64, (n + 63) / 64 * 64);
        memcpy(b, img, n);
        size_t off = elem_offset(img, n, cases[c].t, cases[c].j);
        if (cases[c].f16) b[off] = 0x00, b[off + 1] = 0x7c;   /* +inf */
        else put_f32(b + off, NAN);
        fix_crc(b, n);
        ec_model *m = NULL;
        ec_status sl = ec_model_from_memory(b, n, &m), s1 = EC_ERR_INTERNAL, s2 = EC_ERR_INTERNAL, sv = EC_ERR_INTERNAL;
        char msg[300] = "";
        for (int gc = 0; gc < 2 && sl == EC_OK; gc++) {
            ec_session_options o = ec_session_options_default();
            o.gradcam = gc;
            ec_session *s = NULL;
            ec_result r;
            if (ec_session_new(m, &o, &s) != EC_OK) break;
            ec_status a = ec_session_predict_rgb(s, rgb, 6, 6, &r);
            if (gc == 0) snprintf(msg, sizeof msg, "%s", ec_last_error()), s1 = a;
            else s2 = a;   /* a second session on the same model: refused at once */
            ec_session_free(s);
        }
        if (sl == EC_OK) sv = ec_model_verify(m);
        char name[256], want[128];
        snprintf(want, sizeof want, "tensor %d (%s): element %d is not finite", cases[c].t, g.tensors[cases[c].t].name, cases[c].j);
        snprintf(name, sizeof name, "weights: %s loads, then fails every predict and ec_model_verify", cases[c].what);
        T_CHECK(name, sl == EC_OK && s1 == EC_ERR_FORMAT && s2 == EC_ERR_FORMAT && sv == EC_ERR_FORMAT && strstr(msg, want),
                "load %d, predict %d/%d, verify %d: %s (want '%s')", sl, s1, s2, sv, msg, want);
        ec_model_free(m);
        free(b);
    }
    /* and the pristine model predicts */
    ec_model *m = NULL;
    ec_session *s = NULL;
    ec_result r;
    ec_session_options o = ec_session_options_default();
    ec_status st = ec_model_from_memory(img, n, &m);
    if (st == EC_OK) st = ec_session_new(m, &o, &s);
    if (st == EC_OK) st = ec_session_predict_rgb(s, rgb, 6, 6, &r);
    T_CHECK("weights: the unpatched model predicts finite probabilities", st == EC_OK && isfinite(r.probabilities[0]),
            "%d: %s", st, ec_last_error());
    ec_session_free(s);
    ec_model_free(m);
    free(img);
    cv_graph_free(&g);
}

int main(void)
{
    test_arena_limit();
    test_pad_bomb();
    test_bound_vs_plan();
    test_load_checks();
    test_nonfinite();
    return t_failed;
}
