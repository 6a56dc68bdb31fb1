/* effnet.c - Keras EfficientNet / EfficientNetV2 block tables and the synthesizer.
 *
 * The builder follows keras/src/applications/efficientnet.py (V1) and
 * efficientnet_v2.py (V2) layer by layer, so that names, order and shapes match
 * what Keras 3 builds for the same arguments; see effnet.h for the graph shape.
 */
#include "effnet.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/ecm_format.h"
#include "ref_forward.h"

/* The weight loader carries the seed in load_ctx and a tensor descriptor in src. */
_Static_assert(sizeof(uintptr_t) >= 8, "load_ctx carries a 64-bit seed");
_Static_assert(sizeof(long) >= 8, "cv_tensor.src carries a packed descriptor");

/* ---- block tables (Keras DEFAULT_BLOCKS_ARGS) ------------------------------ */
/* kernel, repeats, filters_in, filters_out, expand, stride, se %, fused */

static const ec_effnet_stage v1_stages[] = {
    {3, 1, 32, 16, 1, 1, 25, 0},
    {3, 2, 16, 24, 6, 2, 25, 0},
    {5, 2, 24, 40, 6, 2, 25, 0},
    {3, 3, 40, 80, 6, 2, 25, 0},
    {5, 3, 80, 112, 6, 1, 25, 0},
    {5, 4, 112, 192, 6, 2, 25, 0},
    {3, 1, 192, 320, 6, 1, 25, 0},
};

/* efficientnetv2-b0..b3 share one table (widths/depths scale it). */
static const ec_effnet_stage v2b_stages[] = {
    {3, 1, 32, 16, 1, 1, 0, 1},
    {3, 2, 16, 32, 4, 2, 0, 1},
    {3, 2, 32, 48, 4, 2, 0, 1},
    {3, 3, 48, 96, 4, 2, 25, 0},
    {3, 5, 96, 112, 6, 1, 25, 0},
    {3, 8, 112, 192, 6, 2, 25, 0},
};

static const ec_effnet_stage v2s_stages[] = {
    {3, 2, 24, 24, 1, 1, 0, 1},
    {3, 4, 24, 48, 4, 2, 0, 1},
    {3, 4, 48, 64, 4, 2, 0, 1},
    {3, 6, 64, 128, 4, 2, 25, 0},
    {3, 9, 128, 160, 6, 1, 25, 0},
    {3, 15, 160, 256, 6, 2, 25, 0},
};

static const ec_effnet_stage v2m_stages[] = {
    {3, 3, 24, 24, 1, 1, 0, 1},
    {3, 5, 24, 48, 4, 2, 0, 1},
    {3, 5, 48, 80, 4, 2, 0, 1},
    {3, 7, 80, 160, 4, 2, 25, 0},
    {3, 14, 160, 176, 6, 1, 25, 0},
    {3, 18, 176, 304, 6, 2, 25, 0},
    {3, 5, 304, 512, 6, 1, 25, 0},
};

static const ec_effnet_stage v2l_stages[] = {
    {3, 4, 32, 32, 1, 1, 0, 1},
    {3, 7, 32, 64, 4, 2, 0, 1},
    {3, 7, 64, 96, 4, 2, 0, 1},
    {3, 10, 96, 192, 4, 2, 25, 0},
    {3, 19, 192, 224, 6, 1, 25, 0},
    {3, 25, 224, 384, 6, 2, 25, 0},
    {3, 7, 384, 640, 6, 1, 25, 0},
};

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define V2(nm, w, d, sz, tab, fr) {nm, 1, w, d, sz, 0.2, fr, tab, N_OF(tab)}
#define V1(nm, w, d, sz, dr) {nm, 0, w, d, sz, dr, EC_FRONT_V1, v1_stages, N_OF(v1_stages)}

/* Coefficients, default sizes and dropout rates of the Keras presets. */
static const ec_effnet_arch archs[] = {
    V2("efficientnetv2-b0", 1.0, 1.0, 224, v2b_stages, EC_FRONT_V2_B),
    V2("efficientnetv2-b1", 1.0, 1.1, 240, v2b_stages, EC_FRONT_V2_B),
    V2("efficientnetv2-b2", 1.1, 1.2, 260, v2b_stages, EC_FRONT_V2_B),
    V2("efficientnetv2-b3", 1.2, 1.4, 300, v2b_stages, EC_FRONT_V2_B),
    V2("efficientnetv2-s", 1.0, 1.0, 384, v2s_stages, EC_FRONT_V2),
    V2("efficientnetv2-m", 1.0, 1.0, 480, v2m_stages, EC_FRONT_V2),
    V2("efficientnetv2-l", 1.0, 1.0, 480, v2l_stages, EC_FRONT_V2),
    V1("efficientnet-b0", 1.0, 1.0, 224, 0.2),
    V1("efficientnet-b1", 1.0, 1.1, 240, 0.2),
    V1("efficientnet-b2", 1.1, 1.2, 260, 0.3),
    V1("efficientnet-b3", 1.2, 1.4, 300, 0.3),
    V1("efficientnet-b4", 1.4, 1.8, 380, 0.4),
    V1("efficientnet-b5", 1.6, 2.2, 456, 0.4),
    V1("efficientnet-b6", 1.8, 2.6, 528, 0.5),
    V1("efficientnet-b7", 2.0, 3.1, 600, 0.5),
};

static const char *const arch_names[] = {
    "efficientnetv2-b0", "efficientnetv2-b1", "efficientnetv2-b2", "efficientnetv2-b3",
    "efficientnetv2-s", "efficientnetv2-m", "efficientnetv2-l",
    "efficientnet-b0", "efficientnet-b1", "efficientnet-b2", "efficientnet-b3",
    "efficientnet-b4", "efficientnet-b5", "efficientnet-b6", "efficientnet-b7",
    NULL,
};
_Static_assert(N_OF(arch_names) == N_OF(archs) + 1, "one name per table entry");

const ec_effnet_arch *ec_effnet_find(const char *name)
{
    if (!name) return NULL;
    for (int i = 0; i < N_OF(archs); i++)
        if (strcmp(archs[i].name, name) == 0) return &archs[i];
    return NULL;
}

const char *const *ec_synth_arch_names(void) { return arch_names; }

int ec_synth_default_size(const char *arch)
{
    const ec_effnet_arch *a = ec_effnet_find(arch);
    return a ? a->default_size : 0;
}

/* Same double arithmetic as the Python: filters * width, int(f + divisor / 2)
 * truncates, then floor to a multiple of the divisor. */
int ec_effnet_round_filters(int v2, int filters, double width)
{
    const int divisor = 8;
    double f = filters * width;
    int nf = (int)(f + divisor / 2.0) / divisor * divisor;
    if (nf < divisor) nf = divisor;               /* V2 min_depth 8 == V1 divisor */
    if (!v2 && nf < 0.9 * f) nf += divisor;       /* V1: never round down by more than 10% */
    return nf;
}

int ec_effnet_round_repeats(int repeats, double depth) { return (int)ceil(depth * repeats); }

/* ---- deterministic weights ------------------------------------------------- */
/* Every tensor's values are one splitmix64 stream keyed by (seed, tensor index);
 * the kind of variable and, for kernels, the amplitude a of Uniform(-a, a) are
 * packed into src:  src = index | kind << 24 | float bits of a << 32.
 *
 * Kernels are He-uniform. BN moving statistics are the exception: random ones
 * would not normalize anything, and over 100+ layers the activation scale would
 * drift by orders of magnitude (V2-S overflowed float in a test). So, as a
 * trained network's are, they are calibrated: calibrate() below runs the model
 * on synthetic photos at a small size and stores per-channel statistics, with a
 * little noise, in memory (a few floats per channel). It also sets the Dense
 * kernel's amplitude. With skip_calibration they stay random:
 * moving_mean ~ +-0.1, moving_variance ~ 0.5..1.5. */

/* Gains of the uncalibrated classifier and of the squeeze-excite kernels (see
 * build(), conv()); the other kernels use He's sqrt(2). */
#define DENSE_GAIN 1.0
#define SE_GAIN 0.5

enum {
    W_CONV, W_DWCONV, W_DENSE, W_BIAS, W_GAMMA, W_BETA, W_MMEAN, W_MVAR,
    W_NMEAN, W_NVAR, W_COUNT
};

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1): the top 24 bits, exactly representable in a float. */
static float uniform_pm1(uint64_t *s)
{
    return (float)(splitmix64(s) >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

static int synth_load(void *ctx, const cv_tensor *t, float *dst, size_t n, cv_err *e)
{
    uint64_t seed = (uint64_t)(uintptr_t)ctx;
    uint64_t src = (uint64_t)t->src;
    uint64_t index = src & 0xffffffu;
    int kind = (int)((src >> 24) & 0xff);
    uint32_t abits = (uint32_t)(src >> 32);
    float a;
    memcpy(&a, &abits, sizeof a);
    if ((int64_t)n != cv_tensor_elems(t))
        return cv_fail(e, "synth: %s: asked for %zu values, tensor has %lld", t->name, n,
                       (long long)cv_tensor_elems(t));
    /* Mixing the seed once keeps seeds 0, 1, 2 ... far apart. */
    uint64_t s = seed;
    s = splitmix64(&s) ^ (index + 1) * 0xD1B54A32D192ED03ull;
    static const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
    static const float imagenet_var[3] = {0.229f * 0.229f, 0.224f * 0.224f, 0.225f * 0.225f};
    for (size_t i = 0; i < n; i++) {
        float u = uniform_pm1(&s);
        float v;
        switch (kind) {
        case W_CONV: case W_DWCONV: case W_DENSE: v = a * u; break;
        case W_BIAS:  v = 0.1f * u; break;
        case W_GAMMA: v = 1.0f + 0.1f * u; break;
        case W_BETA:  v = 0.05f * u; break;
        case W_MMEAN: v = 0.1f * u; break;
        case W_MVAR:  v = 1.0f + 0.5f * u; break;          /* 0.5 .. 1.5 */
        case W_NMEAN: v = imagenet_mean[i % 3]; break;     /* Keras's ImageNet statistics */
        case W_NVAR:  v = imagenet_var[i % 3]; break;
        case W_COUNT: v = 0.0f; break;
        default: return cv_fail(e, "synth: %s: unknown weight kind %d", t->name, kind);
        }
        dst[i] = v;
    }
    if (kind == W_CONV || kind == W_DWCONV || kind == W_DENSE) {
        /* Zero-mean filters (per output channel; the last axis is fastest): a
         * filter then ignores its input's common offset (swish outputs are all
         * positive), which keeps channel means small next to their spread. Without
         * it, inputs unlike the calibration photos shift every channel's mean and
         * the shift grows layer by layer through the fixed BN statistics; in the
         * classifier the offset would favour one class whatever the image. */
        size_t co = (size_t)t->dims[t->rank - 1], rows = n / co;
        for (size_t c = 0; c < co && rows > 1; c++) {
            double m = 0;
            for (size_t r = 0; r < rows; r++) m += dst[r * co + c];
            m /= (double)rows;
            for (size_t r = 0; r < rows; r++) dst[r * co + c] -= (float)m;
        }
    }
    return 0;
}

/* ---- builder ---------------------------------------------------------------- */

typedef struct {
    cv_graph *g;
    cv_err *e;
    int f16;
    int cur;        /* value id of the running activation x */
} sb;

static int oom(sb *b) { return cv_fail(b->e, "synth: out of memory"); }

/* Uniform(-a, a) with Var = gain^2 / fan_in: a = gain * sqrt(3 / fan_in). */
static float amplitude(double gain, int64_t fan_in)
{
    return (float)(gain * sqrt(3.0 / (double)(fan_in > 0 ? fan_in : 1)));
}

/* One Keras variable "layer/var" of the given kind (data streamed by synth_load). */
static int tensor(sb *b, const char *layer, const char *var, int rank, const int64_t *dims,
                  int kind, float amp)
{
    char name[192];
    snprintf(name, sizeof name, "%s/%s", layer, var);
    int id = cv_graph_add_tensor(b->g, name, rank, dims);
    if (id < 0) return oom(b);
    cv_tensor *t = &b->g->tensors[id];
    t->data = NULL;
    if (id >= (1 << 24)) return cv_fail(b->e, "synth: too many tensors");
    uint32_t abits;
    memcpy(&abits, &amp, sizeof abits);
    t->src = (long)((uint64_t)id | (uint64_t)kind << 24 | (uint64_t)abits << 32);
    t->to_f16 = (kind == W_CONV || kind == W_DENSE) ? b->f16 : 0;
    return id;
}

static int vec(sb *b, const char *layer, const char *var, int64_t n, int kind)
{
    return tensor(b, layer, var, 1, &n, kind, 0);
}

/* A node reading `in` (value ids) and writing a new value (name = layer name,
 * shape h x w x c). Returns the node, or NULL after reporting OOM. The pointer
 * is valid until the next node is added. */
static cv_node *node(sb *b, int op, const char *name, int n_in, const int *in, int h, int w, int c)
{
    int out = cv_graph_add_value(b->g, name, h, w, c);
    if (out < 0) { oom(b); return NULL; }
    cv_node *n = cv_graph_add_node(b->g, op, name);
    if (!n) { oom(b); return NULL; }
    n->n_in = n_in;
    for (int i = 0; i < n_in; i++) n->in[i] = in[i];
    n->out = out;
    n->act = ECM_ACT_LINEAR;
    return n;
}

static const cv_value *val(sb *b, int id) { return &b->g->values[id]; }

/* Keras "same": out = ceil(in / s), the odd pixel of padding goes after. */
static void pad_same(int in, int k, int s, int *out, int *before, int *after)
{
    int o = (in + s - 1) / s;
    int total = (o - 1) * s + k - in;
    if (total < 0) total = 0;
    *out = o;
    *before = total / 2;
    *after = total - total / 2;
}

/* Conv2D(cout, k, strides=s, padding same|valid, use_bias) + fused activation. */
static int conv(sb *b, const char *name, int cout, int k, int s, int same, int bias, int act)
{
    const cv_value *x = val(b, b->cur);
    int h = x->h, w = x->w, cin = x->c;
    int oh, ow, pt = 0, pb = 0, pl = 0, pr = 0;
    if (same) {
        pad_same(h, k, s, &oh, &pt, &pb);
        pad_same(w, k, s, &ow, &pl, &pr);
    } else {
        if (h < k || w < k) return cv_fail(b->e, "synth: %s: input %dx%d smaller than kernel %d", name, h, w, k);
        oh = (h - k) / s + 1;
        ow = (w - k) / s + 1;
    }
    int64_t kd[4] = {k, k, cin, cout};
    /* He gain, except the squeeze-excite convs (the only ones with a bias): a low
     * gain keeps the gates near sigmoid(bias) instead of saturating on inputs
     * brighter than the calibration photos. */
    double gain = bias ? SE_GAIN : sqrt(2.0);
    int wk = tensor(b, name, "kernel", 4, kd, W_CONV, amplitude(gain, (int64_t)k * k * cin));
    if (wk < 0) return -1;
    int wb = -1;
    if (bias && (wb = vec(b, name, "bias", cout, W_BIAS)) < 0) return -1;
    cv_node *n = node(b, ECM_OP_CONV2D, name, 1, &b->cur, oh, ow, cout);
    if (!n) return -1;
    n->n_w = 2;
    n->w[0] = wk;
    n->w[1] = wb;
    n->kh = n->kw = k;
    n->sh = n->sw = s;
    n->pt = pt; n->pb = pb; n->pl = pl; n->pr = pr;
    n->act = act;
    b->cur = n->out;
    return 0;
}

static int dwconv(sb *b, const char *name, int k, int s, int same)
{
    const cv_value *x = val(b, b->cur);
    int h = x->h, w = x->w, c = x->c;
    int oh, ow, pt = 0, pb = 0, pl = 0, pr = 0;
    if (same) {
        pad_same(h, k, s, &oh, &pt, &pb);
        pad_same(w, k, s, &ow, &pl, &pr);
    } else {
        if (h < k || w < k) return cv_fail(b->e, "synth: %s: input %dx%d smaller than kernel %d", name, h, w, k);
        oh = (h - k) / s + 1;
        ow = (w - k) / s + 1;
    }
    int64_t kd[4] = {k, k, c, 1};
    int wk = tensor(b, name, "kernel", 4, kd, W_DWCONV, amplitude(sqrt(2.0), (int64_t)k * k));
    if (wk < 0) return -1;
    cv_node *n = node(b, ECM_OP_DWCONV2D, name, 1, &b->cur, oh, ow, c);
    if (!n) return -1;
    n->n_w = 2;
    n->w[0] = wk;
    n->w[1] = -1;
    n->kh = n->kw = k;
    n->sh = n->sw = s;
    n->pt = pt; n->pb = pb; n->pl = pl; n->pr = pr;
    n->mult = 1;
    b->cur = n->out;
    return 0;
}

/* BatchNormalization(epsilon=1e-3): gamma, beta, moving_mean, moving_variance. */
static int bn(sb *b, const char *name)
{
    const cv_value *x = val(b, b->cur);
    int h = x->h, w = x->w, c = x->c;
    int t0 = vec(b, name, "gamma", c, W_GAMMA);
    int t1 = t0 < 0 ? -1 : vec(b, name, "beta", c, W_BETA);
    int t2 = t1 < 0 ? -1 : vec(b, name, "moving_mean", c, W_MMEAN);
    int t3 = t2 < 0 ? -1 : vec(b, name, "moving_variance", c, W_MVAR);
    if (t3 < 0) return -1;
    cv_node *n = node(b, ECM_OP_BATCHNORM, name, 1, &b->cur, h, w, c);
    if (!n) return -1;
    n->n_w = 4;
    n->w[0] = t0; n->w[1] = t1; n->w[2] = t2; n->w[3] = t3;
    n->f0 = 1e-3f;
    b->cur = n->out;
    return 0;
}

/* Weightless single-input layer keeping the shape (Activation, Dropout, Rescaling). */
static cv_node *unary(sb *b, int op, const char *name)
{
    const cv_value *x = val(b, b->cur);
    cv_node *n = node(b, op, name, 1, &b->cur, x->h, x->w, x->c);
    if (n) b->cur = n->out;
    return n;
}

static int activation(sb *b, const char *name, int act)
{
    cv_node *n = unary(b, ECM_OP_ACTIVATION, name);
    if (!n) return -1;
    n->act = act;
    return 0;
}

static int gap(sb *b, const char *name)
{
    int c = val(b, b->cur)->c;
    cv_node *n = node(b, ECM_OP_GAP, name, 1, &b->cur, 1, 1, c);
    if (!n) return -1;
    b->cur = n->out;
    return 0;
}

/* Layer name "block2a_" + suffix. */
static const char *lname(char *buf, size_t cap, const char *prefix, const char *suffix)
{
    snprintf(buf, cap, "%s%s", prefix, suffix);
    return buf;
}

typedef struct {
    int v2, fused;
    int fin, fout, expand, kernel, stride, se_pct;
    int drop;       /* Keras adds the "drop" Dropout (its rate is > 0 after the first block) */
} block_args;

/* One MBConv (V1 block / V2 MBConvBlock) or FusedMBConvBlock. */
static int block(sb *b, const char *p, const block_args *a)
{
    char nm[96];
    int inputs = b->cur;
    int filters = a->fin * a->expand;

    if (a->fused) {
        if (a->expand != 1) {
            if (conv(b, lname(nm, sizeof nm, p, "expand_conv"), filters, a->kernel, a->stride, 1, 0, ECM_ACT_LINEAR) < 0 ||
                bn(b, lname(nm, sizeof nm, p, "expand_bn")) < 0 ||
                activation(b, lname(nm, sizeof nm, p, "expand_activation"), ECM_ACT_SWISH) < 0)
                return -1;
        }
    } else {
        if (a->expand != 1) {
            if (conv(b, lname(nm, sizeof nm, p, "expand_conv"), filters, 1, 1, 1, 0, ECM_ACT_LINEAR) < 0 ||
                bn(b, lname(nm, sizeof nm, p, "expand_bn")) < 0 ||
                activation(b, lname(nm, sizeof nm, p, "expand_activation"), ECM_ACT_SWISH) < 0)
                return -1;
        }
        if (!a->v2 && a->stride == 2) {
            /* V1: ZeroPadding2D(correct_pad) then a "valid" depthwise conv. Per
             * axis: (k/2 - adjust, k/2) with adjust = 1 for an even size. */
            const cv_value *x = val(b, b->cur);
            int h = x->h, w = x->w, c = x->c, k2 = a->kernel / 2;
            int pt = k2 - (1 - h % 2), pl = k2 - (1 - w % 2);
            cv_node *n = node(b, ECM_OP_ZEROPAD, lname(nm, sizeof nm, p, "dwconv_pad"), 1, &b->cur,
                              h + pt + k2, w + pl + k2, c);
            if (!n) return -1;
            n->pt = pt; n->pb = k2; n->pl = pl; n->pr = k2;
            b->cur = n->out;
            if (dwconv(b, lname(nm, sizeof nm, p, "dwconv"), a->kernel, 2, 0) < 0) return -1;
        } else {
            if (dwconv(b, lname(nm, sizeof nm, p, a->v2 ? "dwconv2" : "dwconv"), a->kernel, a->stride, 1) < 0)
                return -1;
        }
        if (bn(b, lname(nm, sizeof nm, p, "bn")) < 0 ||
            activation(b, lname(nm, sizeof nm, p, "activation"), ECM_ACT_SWISH) < 0)
            return -1;
    }

    if (a->se_pct > 0) {
        /* GAP -> Reshape(1,1,C) -> 1x1 conv + swish -> 1x1 conv + sigmoid -> x * se */
        int filters_se = a->fin * a->se_pct / 100;
        if (filters_se < 1) filters_se = 1;
        int x = b->cur, c = val(b, x)->c;
        if (gap(b, lname(nm, sizeof nm, p, "se_squeeze")) < 0) return -1;
        cv_node *n = node(b, ECM_OP_RESHAPE, lname(nm, sizeof nm, p, "se_reshape"), 1, &b->cur, 1, 1, c);
        if (!n) return -1;
        b->cur = n->out;
        if (conv(b, lname(nm, sizeof nm, p, "se_reduce"), filters_se, 1, 1, 1, 1, ECM_ACT_SWISH) < 0 ||
            conv(b, lname(nm, sizeof nm, p, "se_expand"), c, 1, 1, 1, 1, ECM_ACT_SIGMOID) < 0)
            return -1;
        const cv_value *xv = val(b, x);
        int in2[2] = {x, b->cur};
        n = node(b, ECM_OP_MUL, lname(nm, sizeof nm, p, "se_excite"), 2, in2, xv->h, xv->w, xv->c);
        if (!n) return -1;
        b->cur = n->out;
    }

    /* Output phase: the fused block without expansion projects with k x k, stride s. */
    int pk = (a->fused && a->expand == 1) ? a->kernel : 1;
    int ps = (a->fused && a->expand == 1) ? a->stride : 1;
    if (conv(b, lname(nm, sizeof nm, p, "project_conv"), a->fout, pk, ps, 1, 0, ECM_ACT_LINEAR) < 0 ||
        bn(b, lname(nm, sizeof nm, p, "project_bn")) < 0)
        return -1;
    if (a->fused && a->expand == 1 &&
        activation(b, lname(nm, sizeof nm, p, "project_activation"), ECM_ACT_SWISH) < 0)
        return -1;

    if (a->stride == 1 && a->fin == a->fout) {
        if (a->drop && !unary(b, ECM_OP_IDENTITY, lname(nm, sizeof nm, p, "drop"))) return -1;
        const cv_value *xv = val(b, b->cur);
        int in2[2] = {b->cur, inputs};
        cv_node *n = node(b, ECM_OP_ADD, lname(nm, sizeof nm, p, "add"), 2, in2, xv->h, xv->w, xv->c);
        if (!n) return -1;
        b->cur = n->out;
    }
    return 0;
}

/* Rescaling / Normalization in front of the stem. */
static int front(sb *b, ec_effnet_front f)
{
    cv_node *n = unary(b, ECM_OP_RESCALE, "rescaling");
    if (!n) return -1;
    n->f0 = f == EC_FRONT_V2 ? 1.0f / 128.0f : 1.0f / 255.0f;
    n->f1 = f == EC_FRONT_V2 ? -1.0f : 0.0f;
    if (f == EC_FRONT_V2) return 0;

    int c = val(b, b->cur)->c;
    int tm = vec(b, "normalization", "mean", c, W_NMEAN);
    int tv = tm < 0 ? -1 : vec(b, "normalization", "variance", c, W_NVAR);
    if (tv < 0) return -1;
    if (f == EC_FRONT_V2_B) {
        /* mean/variance come from the layer config: constants, not Keras variables. */
        b->g->tensors[tm].flags |= ECM_TF_DERIVED;
        b->g->tensors[tv].flags |= ECM_TF_DERIVED;
    } else {
        /* V1's Normalization() owns three variables (mean, variance, and a scalar
         * count that count_params includes); the op reads only the first two, so
         * count stays in the tensor table, in Keras order, without a node slot. */
        if (tensor(b, "normalization", "count", 0, NULL, W_COUNT, 0) < 0) return -1;
    }
    n = unary(b, ECM_OP_NORMALIZE, "normalization");
    if (!n) return -1;
    n->n_w = 2;
    n->w[0] = tm;
    n->w[1] = tv;
    return 0;
}

static int build(const ec_effnet_arch *a, const ec_synth_options *o, int h, int w, sb *b)
{
    double wc = o->width_coef > 0 ? o->width_coef : a->width;
    double dc = o->depth_coef > 0 ? o->depth_coef : a->depth;

    b->cur = cv_graph_add_value(b->g, "input_layer", h, w, 3);
    if (b->cur < 0) return oom(b);
    b->g->input_value = b->cur;

    if (front(b, a->front) < 0) return -1;

    /* Stem: V1 pads explicitly (correct_pad) and convolves "valid". */
    int stem = ec_effnet_round_filters(a->v2, a->stages[0].filters_in, wc);
    if (a->v2) {
        if (conv(b, "stem_conv", stem, 3, 2, 1, 0, ECM_ACT_LINEAR) < 0) return -1;
    } else {
        const cv_value *x = val(b, b->cur);
        int xh = x->h, xw = x->w, xc = x->c;
        int pt = 1 - (1 - xh % 2), pl = 1 - (1 - xw % 2);
        cv_node *n = node(b, ECM_OP_ZEROPAD, "stem_conv_pad", 1, &b->cur, xh + pt + 1, xw + pl + 1, xc);
        if (!n) return -1;
        n->pt = pt; n->pb = 1; n->pl = pl; n->pr = 1;
        b->cur = n->out;
        if (conv(b, "stem_conv", stem, 3, 2, 0, 0, ECM_ACT_LINEAR) < 0) return -1;
    }
    if (bn(b, "stem_bn") < 0 || activation(b, "stem_activation", ECM_ACT_SWISH) < 0) return -1;

    int bi = 0;     /* running block index: Keras's drop rate is rate * bi / blocks */
    for (int i = 0; i < a->n_stages; i++) {
        const ec_effnet_stage *st = &a->stages[i];
        block_args ba = {
            .v2 = a->v2, .fused = st->fused, .expand = st->expand, .kernel = st->kernel,
            .stride = st->stride, .se_pct = st->se_pct,
            .fin = ec_effnet_round_filters(a->v2, st->filters_in, wc),
            .fout = ec_effnet_round_filters(a->v2, st->filters_out, wc),
        };
        int reps = ec_effnet_round_repeats(st->repeats, dc);
        if (reps < 1 || reps > 30)
            return cv_fail(b->e, "synth: stage %d has %d blocks (Keras names allow 1..30)", i + 1, reps);
        for (int j = 0; j < reps; j++, bi++) {
            if (j > 0) {
                ba.stride = 1;
                ba.fin = ba.fout;
            }
            ba.drop = bi > 0;
            char p[32];
            snprintf(p, sizeof p, "block%d%c_", i + 1, 'a' + j);
            if (block(b, p, &ba) < 0) return -1;
        }
    }

    int top = ec_effnet_round_filters(a->v2, 1280, wc);
    if (conv(b, "top_conv", top, 1, 1, 1, 0, ECM_ACT_LINEAR) < 0 ||
        bn(b, "top_bn") < 0 ||
        activation(b, "top_activation", ECM_ACT_SWISH) < 0)
        return -1;

    /* Head: GlobalAveragePooling2D -> Dropout -> Dense(classes, softmax). */
    if (gap(b, o->keras_top ? "avg_pool" : "gap") < 0) return -1;
    if (!unary(b, ECM_OP_IDENTITY, o->keras_top ? "top_dropout" : "head_dropout")) return -1;
    int64_t kd[2] = {top, o->classes};
    /* Calibration rescales this kernel for a given logit spread; DENSE_GAIN
     * only applies with skip_calibration. */
    int wk = tensor(b, "predictions", "kernel", 2, kd, W_DENSE, amplitude(DENSE_GAIN, top));
    int wb = wk < 0 ? -1 : vec(b, "predictions", "bias", o->classes, W_BIAS);
    if (wb < 0) return -1;
    cv_node *n = node(b, ECM_OP_DENSE, "predictions", 1, &b->cur, 1, 1, o->classes);
    if (!n) return -1;
    n->n_w = 2;
    n->w[0] = wk;
    n->w[1] = wb;
    n->act = ECM_ACT_SOFTMAX;
    b->cur = n->out;
    b->g->output_value = b->cur;
    return 0;
}

/* ---- BN calibration ---------------------------------------------------------- */
/* The reference interpreter (ref_forward.c) runs the model, built at CAL_SIZE,
 * on CAL_BATCH synthetic photos; just before each BatchNormalization runs, its
 * moving statistics become its input's per-channel batch statistics, perturbed
 * a little (a trained net's moving averages never match one batch exactly).
 * Tensor shapes do not depend on the input size, so the small graph's tensors
 * are the real graph's, index for index. Deterministic: the photos and the
 * noise come from the seed. */

#define CAL_SIZE 128    /* or the model's size, if smaller */
#define CAL_BATCH 4
#define CAL_LOGIT_STD 1.0

/* Photo-like inputs: a colour cast with a gradient, soft blobs, hard-edged
 * discs (object boundaries) and a 1/f texture of random sinusoids, with the
 * contrast of real photos (channel std ~70 of 0..255). */
static void cal_photos(uint64_t seed, int h, int w, float *px /* [CAL_BATCH][h][w][3] */)
{
    uint64_t s = seed ^ 0x5CA1AB1Eull;
    const float two_pi = 6.2831853f;
    for (int b = 0; b < CAL_BATCH; b++) {
        float base[3], gx[3], gy[3], bc[3][3], by[3], bx[3], br[3];
        float fy[12], fx[12], ph[12], amp[12][3], dy[4], dx[4], dr[4], dc[4][3];
        float lum = 128.0f + 70.0f * uniform_pm1(&s);
        for (int c = 0; c < 3; c++) {
            base[c] = lum + 40.0f * uniform_pm1(&s);
            gx[c] = 100.0f * uniform_pm1(&s);
            gy[c] = 100.0f * uniform_pm1(&s);
        }
        for (int k = 0; k < 3; k++) {
            by[k] = h * (0.5f + 0.4f * uniform_pm1(&s));
            bx[k] = w * (0.5f + 0.4f * uniform_pm1(&s));
            br[k] = (h + w) * (0.1f + 0.06f * uniform_pm1(&s));
            for (int c = 0; c < 3; c++) bc[k][c] = 110.0f * uniform_pm1(&s);
        }
        for (int k = 0; k < 4; k++) {
            dy[k] = h * (0.5f + 0.5f * uniform_pm1(&s));
            dx[k] = w * (0.5f + 0.5f * uniform_pm1(&s));
            dr[k] = (h + w) * (0.12f + 0.08f * uniform_pm1(&s));
            float l = 110.0f * uniform_pm1(&s);
            for (int c = 0; c < 3; c++) dc[k][c] = l + 30.0f * uniform_pm1(&s);
        }
        for (int k = 0; k < 12; k++) {
            float f = 1.0f + 7.5f * (1.0f + uniform_pm1(&s));     /* 1 .. 16 cycles per image */
            float th = 3.1415927f * uniform_pm1(&s);
            fy[k] = f * sinf(th) / h;
            fx[k] = f * cosf(th) / w;
            ph[k] = two_pi * uniform_pm1(&s);
            for (int c = 0; c < 3; c++) amp[k][c] = 60.0f / f * (0.7f + 0.3f * uniform_pm1(&s));
        }
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                float tex[3] = {0, 0, 0};
                for (int k = 0; k < 12; k++) {
                    float sv = sinf(two_pi * (fy[k] * y + fx[k] * x) + ph[k]);
                    for (int c = 0; c < 3; c++) tex[c] += amp[k][c] * sv;
                }
                for (int c = 0; c < 3; c++) {
                    float v = base[c] + gx[c] * ((float)x / w - 0.5f) + gy[c] * ((float)y / h - 0.5f) + tex[c];
                    for (int k = 0; k < 3; k++) {
                        float d2 = ((y - by[k]) * (y - by[k]) + (x - bx[k]) * (x - bx[k])) / (br[k] * br[k]);
                        v += bc[k][c] * expf(-d2);
                    }
                    for (int k = 0; k < 4; k++)
                        if ((y - dy[k]) * (y - dy[k]) + (x - dx[k]) * (x - dx[k]) < dr[k] * dr[k]) v += dc[k][c];
                    v += 4.0f * uniform_pm1(&s);
                    px[(((size_t)b * h + y) * w + x) * 3 + c] = v < 0 ? 0 : v > 255 ? 255 : v;
                }
            }
    }
}

typedef struct {
    cv_graph *g;          /* the real graph: receives the statistics */
    uint64_t rng;
    int feat_node;        /* the node whose output feeds the classifier */
    float *feat;          /* [CAL_BATCH][C] its output, kept for the classifier's scale */
} cal_state;

/* Before a BN runs: batch statistics of its input (double sums) become the
 * moving averages of both graphs. */
static int cal_before(void *ctx, cv_graph *gc, int node, float *const *v, int batch, cv_err *e)
{
    cal_state *cs = ctx;
    const cv_node *n = &gc->nodes[node];
    if (n->op != ECM_OP_BATCHNORM) return 0;
    const cv_value *X = &gc->values[n->in[0]];
    const int C = X->c;
    const float *x = v[n->in[0]];
    size_t m = (size_t)batch * X->h * X->w;
    float *mm = malloc((size_t)C * sizeof *mm), *mv = malloc((size_t)C * sizeof *mv);
    float *mm2 = malloc((size_t)C * sizeof *mm2), *mv2 = malloc((size_t)C * sizeof *mv2);
    double *sum = calloc((size_t)C * 2, sizeof *sum);
    if (!mm || !mv || !mm2 || !mv2 || !sum) {
        free(mm), free(mv), free(mm2), free(mv2), free(sum);
        return cv_fail(e, "synth: out of memory");
    }
    for (size_t j = 0; j < m * C; j++) {
        sum[j % C] += x[j];
        sum[C + j % C] += (double)x[j] * x[j];
    }
    double avg_var = 0;
    for (int c = 0; c < C; c++) {
        double mean = sum[c] / m, var = sum[C + c] / m - mean * mean;
        sum[c] = mean;
        sum[C + c] = var > 0 ? var : 0;
        avg_var += sum[C + c] / C;
    }
    for (int c = 0; c < C; c++) {
        /* Few pixels reach the deepest layers at CAL_SIZE: floor the variance so a
         * channel that happened to be flat is not blown up on real inputs. */
        double var = fmax(sum[C + c], 0.2 * avg_var + 1e-6);
        mm[c] = (float)(sum[c] + 0.1 * sqrt(var) * uniform_pm1(&cs->rng));
        mv[c] = (float)(var * (1.0 + 0.2 * uniform_pm1(&cs->rng)));
    }
    free(sum);
    memcpy(mm2, mm, (size_t)C * sizeof *mm);
    memcpy(mv2, mv, (size_t)C * sizeof *mv);
    cv_graph *gs[2] = { gc, cs->g };
    float *vals[2][2] = { { mm2, mv2 }, { mm, mv } };
    for (int k = 0; k < 2; k++) {
        free(gs[k]->tensors[n->w[2]].data);
        free(gs[k]->tensors[n->w[3]].data);
        gs[k]->tensors[n->w[2]].data = vals[k][0];
        gs[k]->tensors[n->w[3]].data = vals[k][1];
    }
    return 0;
}

/* After the node that feeds the classifier: keep its output. */
static int cal_after(void *ctx, cv_graph *gc, int node, float *const *v, int batch, cv_err *e)
{
    cal_state *cs = ctx;
    if (node != cs->feat_node) return 0;
    const cv_value *F = &gc->values[gc->nodes[node].out];
    size_t n = (size_t)batch * F->h * F->w * F->c;
    if (!(cs->feat = malloc(n * sizeof *cs->feat))) return cv_fail(e, "synth: out of memory");
    memcpy(cs->feat, v[gc->nodes[node].out], n * sizeof *cs->feat);
    return 0;
}

static int calibrate(const ec_effnet_arch *a, const ec_synth_options *opt, cv_graph *g, cv_err *e)
{
    ec_synth_options o = *opt;
    /* Deep layers need a few pixels each for their statistics (4x4 at 128). */
    o.height = g->values[g->input_value].h < CAL_SIZE ? g->values[g->input_value].h : CAL_SIZE;
    o.width = g->values[g->input_value].w < CAL_SIZE ? g->values[g->input_value].w : CAL_SIZE;
    o.skip_calibration = 1;
    cv_graph gc;
    if (ec_synth_build_ex(a->name, &o, &gc, e) < 0) return -1;
    int rc = -1, last_run = -1;   /* last node run: the one feeding the Dense */
    cal_state cs = { g, opt->seed ^ 0xBA7C4A11B0A7ull, -1, NULL };
    float *px = NULL;
    if (gc.n_tensors != g->n_tensors) { cv_fail(e, "synth: calibration graph differs"); goto out; }
    for (int i = 0; i < gc.n_nodes; i++)
        if (gc.nodes[i].op != ECM_OP_DENSE) last_run = i;     /* everything before the classifier */
    cs.feat_node = last_run;
    const cv_value *iv = &gc.values[gc.input_value];
    if (!(px = malloc((size_t)CAL_BATCH * iv->h * iv->w * 3 * sizeof *px))) { cv_fail(e, "synth: out of memory"); goto out; }
    cal_photos(opt->seed, iv->h, iv->w, px);
    ec_ref_hooks hooks = { cal_before, cal_after, &cs, last_run };
    if (ec_ref_forward(&gc, CAL_BATCH, px, &hooks, NULL, e) < 0) goto out;

    /* Classifier: with zero-mean columns, a logit's spread over classes is
     * sigma_w * |f - mean(f)| for pooled features f; pick sigma_w for a spread of
     * CAL_LOGIT_STD on the calibration photos, as a trained head would have. */
    const cv_node *dn = &gc.nodes[gc.n_nodes - 1];
    if (dn->op == ECM_OP_DENSE && last_run == gc.n_nodes - 2 && cs.feat) {
        int C = gc.values[dn->in[0]].c;
        const float *f = cs.feat;
        double ss = 0;
        for (int b = 0; b < CAL_BATCH; b++) {
            double m = 0;
            for (int c = 0; c < C; c++) m += f[b * C + c];
            m /= C;
            for (int c = 0; c < C; c++) ss += (f[b * C + c] - m) * (f[b * C + c] - m);
        }
        ss /= CAL_BATCH;
        if (ss > 1e-12) {
            float amp = (float)(sqrt(3.0) * CAL_LOGIT_STD / sqrt(ss));
            uint32_t abits;
            memcpy(&abits, &amp, sizeof abits);
            cv_tensor *t = &g->tensors[dn->w[0]];
            t->src = (long)(((uint64_t)t->src & 0xffffffffu) | (uint64_t)abits << 32);
        }
    }
    rc = 0;
out:
    free(px);
    free(cs.feat);
    cv_graph_free(&gc);
    return rc;
}

ec_synth_options ec_synth_options_default(void)
{
    ec_synth_options o;
    memset(&o, 0, sizeof o);
    o.classes = 7;
    return o;
}

int ec_synth_build_ex(const char *arch, const ec_synth_options *opt, cv_graph *g, cv_err *e)
{
    if (!g || !opt) return cv_fail(e, "synth: NULL argument");
    cv_graph_init(g);
    const ec_effnet_arch *a = ec_effnet_find(arch);
    if (!a) return cv_fail(e, "synth: unknown architecture '%s'", arch ? arch : "(null)");
    int h = opt->height > 0 ? opt->height : a->default_size;
    int w = opt->width > 0 ? opt->width : a->default_size;
    /* Keras's obtain_input_shape refuses inputs under 32 px; the upper bound keeps
     * every value's element count far from int overflow. */
    if (h < 32 || w < 32 || h > 8192 || w > 8192)
        return cv_fail(e, "synth: input %dx%d outside 32..8192", h, w);
    if (opt->classes < 1 || opt->classes > 1000000)
        return cv_fail(e, "synth: classes %d outside 1..1000000", opt->classes);
    if (opt->width_coef < 0 || opt->width_coef > 8 || opt->depth_coef < 0 || opt->depth_coef > 8)
        return cv_fail(e, "synth: width/depth coefficient outside 0..8");

    sb b = {.g = g, .e = e, .f16 = opt->f16 ? 1 : 0, .cur = -1};
    g->gradcam_node = -1;
    g->input_value = g->output_value = -1;
    if (build(a, opt, h, w, &b) < 0) {
        cv_graph_free(g);
        cv_graph_init(g);
        return -1;
    }
    g->load = synth_load;
    g->load_ctx = (void *)(uintptr_t)opt->seed;
    cv_graph_pick_gradcam(g);
    if (b.f16) cv_graph_keep_f32_ends(g);      /* as the Keras converter does */
    if ((!opt->skip_calibration && calibrate(a, opt, g, e) < 0) || cv_graph_set_labels(g, NULL, e) < 0) {
        cv_graph_free(g);
        cv_graph_init(g);
        return -1;
    }
    return 0;
}

int ec_synth_build(const char *arch, int size, int classes, uint64_t seed, int f16,
                   cv_graph *g, cv_err *e)
{
    ec_synth_options o = ec_synth_options_default();
    o.height = o.width = size;
    o.classes = classes;
    o.seed = seed;
    o.f16 = f16;
    return ec_synth_build_ex(arch, &o, g, e);
}
