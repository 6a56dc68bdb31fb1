/* keras.c - Keras model files (.keras zip, legacy .h5) -> graph IR.
 *
 * The architecture comes from the JSON config (config.json in a .keras,
 * the model_config attribute of a legacy .h5); the weights from HDF5. Layers
 * are mapped to IR nodes one to one, in the order the app's layer walk sees
 * them (nested models flattened in place), so node names are Keras layer names.
 * Tensor data is not read here: each tensor remembers its HDF5 dataset and is
 * streamed by cv_ecm_write through the graph's load callback.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv.h"
#include "engine/ecm_format.h"
#include "hdf5.h"
#include "json.h"
#include "zip.h"

#define MAX_MODEL_DEPTH 8          /* nested models inside nested models */
#define MAX_CONFIG_BYTES (64u << 20)
#define MAX_CONFIG_VECTOR_ELEMS (16u << 20)   /* Normalization mean/variance given in the config */

struct cv_keras {
    cv_source file;                /* the input file (.h5) */
    cv_zip *zip;                   /* .keras archive, or NULL */
    cv_source wsrc;                /* model.weights.h5 inside the archive */
    int have_wsrc;
    cv_h5 *h5;
    int legacy;                    /* legacy .h5 layout (model_weights/...) */
    cv_h5_obj *ds;                 /* dataset per tensor src */
    int n_ds, cap_ds;
    cv_limits lim;
};

/* ---- small helpers ----------------------------------------------------------- */

static int load_tensor(void *ctx, const cv_tensor *t, float *dst, size_t n, cv_err *e)
{
    cv_keras *k = ctx;
    if (t->src < 0 || t->src >= k->n_ds) return cv_fail(e, "tensor %s: no dataset", t->name);
    if (cv_h5_dataset_read_f32(k->h5, k->ds[t->src], dst, n, e)) {
        char m[sizeof e->msg];
        snprintf(m, sizeof m, "%s", e->msg);
        return cv_fail(e, "weights of %s: %s", t->name, m);
    }
    return 0;
}

static long add_ds(cv_keras *k, cv_h5_obj obj)
{
    if (k->n_ds == k->cap_ds) {
        int ncap = k->cap_ds ? 2 * k->cap_ds : 256;
        cv_h5_obj *p = realloc(k->ds, (size_t)ncap * sizeof *p);
        if (!p) return -1;
        k->ds = p;
        k->cap_ds = ncap;
    }
    k->ds[k->n_ds] = obj;
    return k->n_ds++;
}

/* Keras's naming.to_snake_case: insert '_' before each capital that follows a
 * lower-case letter or digit, or that starts a new word after an acronym, then
 * lower-case ("BatchNormalization" -> "batch_normalization", "Conv2D" -> "conv2d",
 * "DepthwiseConv2D" -> "depthwise_conv2d"). */
static void snake_case(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    size_t n = strlen(in);
    for (size_t i = 0; i < n && o + 2 < cap; i++) {
        unsigned char c = (unsigned char)in[i];
        if (i > 0 && isupper(c)) {
            unsigned char p = (unsigned char)in[i - 1];
            int next_lower = i + 1 < n && islower((unsigned char)in[i + 1]);
            if (islower(p) || (isupper(p) && next_lower)) out[o++] = '_';
        }
        out[o++] = (char)tolower(c);
    }
    out[o] = 0;
}

/* ---- name index -------------------------------------------------------------------
 * Open addressing over (bytes, length) keys that point into the config or the
 * weight name lists (not copied): a model's layer names, the suffixes of legacy
 * weight names. Lookups are O(1), so a config at the layer limit builds in
 * linear time whatever the order of its layers. */
typedef struct {
    const char *key;     /* NULL: empty slot */
    size_t len;
    int val;
} name_slot;

typedef struct {
    name_slot *s;
    size_t mask;         /* capacity - 1, a power of two at least twice the keys */
} name_index;

static uint64_t name_hash(const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ull;   /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)k[i]) * 1099511628211ull;
    return h;
}

static int name_index_init(name_index *x, size_t keys)
{
    size_t cap = 16;
    while (cap < 2 * keys + 16) cap *= 2;
    x->s = calloc(cap, sizeof *x->s);
    x->mask = cap - 1;
    return x->s ? 0 : -1;
}

static void name_index_free(name_index *x)
{
    free(x->s);
    x->s = NULL;
}

static name_slot *name_index_slot(const name_index *x, const char *k, size_t n)
{
    for (size_t i = (size_t)name_hash(k, n) & x->mask;; i = (i + 1) & x->mask) {
        name_slot *s = &x->s[i];
        if (!s->key || (s->len == n && !memcmp(s->key, k, n))) return s;
    }
}

/* val of key k, or -1 */
static int name_index_find(const name_index *x, const char *k, size_t n)
{
    const name_slot *s = x->s ? name_index_slot(x, k, n) : NULL;
    return s && s->key ? s->val : -1;
}

/* Adds k -> val unless k is there already (then returns 1 and keeps the first).
 * The caller sized the index for all its keys. */
static int name_index_add(name_index *x, const char *k, size_t n, int val)
{
    name_slot *s = name_index_slot(x, k, n);
    if (s->key) return 1;
    s->key = k;
    s->len = n;
    s->val = val;
    return 0;
}

/* ---- builder context ---------------------------------------------------------- */

typedef struct {
    cv_graph *g;
    cv_keras *k;
    const cv_options *opt;
    cv_err *e;
    char **lw_names;     /* legacy: weight path "layer/var" -> dataset (flattened) */
    cv_h5_obj *lw_obj;
    int n_lw, cap_lw;
    name_index lw_index; /* legacy: every '/'-suffix of a weight name (":0" dropped) -> lw id */
    uint64_t total_elems; /* weight elements registered so far */
    uint64_t config_elems; /* of which vectors given in the config (held in memory) */
} ctx;

/* A double from the config as float32: values beyond float range become
 * infinities (a plain conversion is undefined behaviour), which the loader's
 * checks (cv_graph_check) then refuse with the loader's message. */
static float to_f32(double x)
{
    if (x > 3.4028234663852886e38) return INFINITY;
    if (x < -3.4028234663852886e38) return -INFINITY;
    return (float)x;
}

/* ---- config field readers ------------------------------------------------------ */

/* An int or the first element of a list of equal ints (kernel_size [3, 3]).
 * pair[0..1] receives both elements. */
static int cfg_pair(ctx *c, const char *layer, const js_value *cfg, const char *key, int dflt, int pair[2])
{
    const js_value *v = js_get(cfg, key);
    long a, b;
    if (!v || v->type == JS_NULL) {
        pair[0] = pair[1] = dflt;
        return 0;
    }
    if (js_int(v, 0, 1 << 20, &a) == 0) {
        pair[0] = pair[1] = (int)a;
        return 0;
    }
    if (v->type == JS_ARRAY && v->n == 2 && js_int(js_at(v, 0), 0, 1 << 20, &a) == 0 &&
        js_int(js_at(v, 1), 0, 1 << 20, &b) == 0) {
        pair[0] = (int)a;
        pair[1] = (int)b;
        return 0;
    }
    return cv_fail(c->e, "layer %s: bad %s", layer, key);
}

static int cfg_int(ctx *c, const char *layer, const js_value *cfg, const char *key, long lo, long hi,
                   long dflt, long *out)
{
    const js_value *v = js_get(cfg, key);
    if (!v || v->type == JS_NULL) {
        *out = dflt;
        return 0;
    }
    if (js_int(v, lo, hi, out)) return cv_fail(c->e, "layer %s: bad %s", layer, key);
    return 0;
}

static int cfg_bool(const js_value *cfg, const char *key, int dflt)
{
    int b;
    return js_bool(js_get(cfg, key), &b) == 0 ? b : dflt;
}

static int parse_act_name(const char *s)
{
    if (!s) return -1;
    if (!strcmp(s, "linear") || !strcmp(s, "None")) return ECM_ACT_LINEAR;
    if (!strcmp(s, "relu")) return ECM_ACT_RELU;
    if (!strcmp(s, "relu6")) return ECM_ACT_RELU6;
    if (!strcmp(s, "sigmoid")) return ECM_ACT_SIGMOID;
    if (!strcmp(s, "softmax")) return ECM_ACT_SOFTMAX;
    if (!strcmp(s, "swish") || !strcmp(s, "silu")) return ECM_ACT_SWISH;
    if (!strcmp(s, "tanh")) return ECM_ACT_TANH;
    if (!strcmp(s, "gelu")) return ECM_ACT_GELU;
    return -1;
}

/* "activation": a name, null, or a serialized function {"class_name": "function", "config": "swish"}. */
static int cfg_act(ctx *c, const char *layer, const js_value *cfg, int *act)
{
    const js_value *v = js_get(cfg, "activation");
    const char *s = NULL;
    if (!v || v->type == JS_NULL) {
        *act = ECM_ACT_LINEAR;
        return 0;
    }
    if (v->type == JS_STRING) s = v->str;
    else if (v->type == JS_OBJECT) {
        s = js_get_str(v, "config");
        if (!s) s = js_get_str(js_get(v, "config"), "name");
        if (!s) s = js_get_str(v, "class_name");
        if (s && !strcmp(s, "ReLU")) s = "relu";
    }
    *act = parse_act_name(s);
    if (*act < 0) return cv_fail(c->e, "layer %s: unsupported activation %s", layer, s ? s : "(unknown)");
    return 0;
}

/* Keras SAME/VALID arithmetic (docs/semantics.md 2): out = ceil(in/stride) for same,
 * floor((in - k)/stride) + 1 for valid; the odd pixel of SAME padding goes
 * to the bottom/right. */
static int conv_geom(ctx *c, const char *layer, const js_value *cfg, int in_h, int in_w, cv_node *n,
                     int *out_h, int *out_w)
{
    int ks[2], st[2], dil[2];
    if (cfg_pair(c, layer, cfg, "kernel_size", 1, ks) || cfg_pair(c, layer, cfg, "strides", 1, st) ||
        cfg_pair(c, layer, cfg, "dilation_rate", 1, dil))
        return -1;
    if (ks[0] < 1 || ks[1] < 1 || st[0] < 1 || st[1] < 1 || ks[0] > 64 || ks[1] > 64)
        return cv_fail(c->e, "layer %s: bad kernel size or stride", layer);
    if (dil[0] != 1 || dil[1] != 1) return cv_fail(c->e, "layer %s: dilated convolution is not supported", layer);
    const char *df = js_get_str(cfg, "data_format");
    if (df && strcmp(df, "channels_last"))
        return cv_fail(c->e, "layer %s: data_format %s is not supported", layer, df);
    const char *pad = js_get_str(cfg, "padding");
    if (!pad) pad = "valid";
    n->kh = ks[0];
    n->kw = ks[1];
    n->sh = st[0];
    n->sw = st[1];
    if (!strcmp(pad, "same")) {
        int oh = (in_h + st[0] - 1) / st[0], ow = (in_w + st[1] - 1) / st[1];
        int th = (oh - 1) * st[0] + ks[0] - in_h, tw = (ow - 1) * st[1] + ks[1] - in_w;
        if (th < 0) th = 0;
        if (tw < 0) tw = 0;
        n->pt = th / 2;
        n->pb = th - th / 2;
        n->pl = tw / 2;
        n->pr = tw - tw / 2;
        *out_h = oh;
        *out_w = ow;
    } else if (!strcmp(pad, "valid")) {
        if (in_h < ks[0] || in_w < ks[1]) return cv_fail(c->e, "layer %s: input smaller than kernel", layer);
        *out_h = (in_h - ks[0]) / st[0] + 1;
        *out_w = (in_w - ks[1]) / st[1] + 1;
    } else {
        return cv_fail(c->e, "layer %s: padding %s is not supported", layer, pad);
    }
    return 0;
}

/* ---- weights -------------------------------------------------------------------- */

/* Finds a layer's variables. .keras: the i-th dataset of <path>/vars (Keras order);
 * legacy .h5: by variable name among the layer's weight_names. Registers the
 * tensors in the IR (shape checked by the caller) and returns their ids in
 * tid[] for the requested names, -1 for absent ones. n_found gets the count. */
static int find_vars(ctx *c, const char *layer, const char *h5path, const char *const *names, int n_names,
                     int *tid, int *n_found)
{
    *n_found = 0;
    for (int i = 0; i < n_names; i++) tid[i] = -1;
    cv_h5_obj objs[8];
    int have[8] = {0};
    if (!c->k->legacy) {
        cv_h5_obj vars;
        char p[1024];
        snprintf(p, sizeof p, "%s/vars", h5path);
        int r = cv_h5_find(c->k->h5, cv_h5_root(c->k->h5), p, &vars, c->e);
        if (r < 0) return -1;
        if (r == 0) {
            /* tf.keras 2.13-2.15 .keras files name the list "_layer_checkpoint_dependencies" */
            char alt[1400] = "";
            for (const char *q = p; *q;) {
                const char *slash = strchr(q, '/');
                size_t len = slash ? (size_t)(slash - q) : strlen(q);
                size_t at = strlen(alt);
                if (len == 6 && !strncmp(q, "layers", 6))
                    snprintf(alt + at, sizeof alt - at, "%s_layer_checkpoint_dependencies", at ? "/" : "");
                else
                    snprintf(alt + at, sizeof alt - at, "%s%.*s", at ? "/" : "", (int)len, q);
                q += len + (slash ? 1 : 0);
            }
            r = cv_h5_find(c->k->h5, cv_h5_root(c->k->h5), alt, &vars, c->e);
            if (r < 0) return -1;
            if (r == 0) return 0;
        }
        /* Keras >= 3.6 writes the layer name on each vars group: cross-check. */
        char **nm = NULL;
        int nn = 0;
        r = cv_h5_attr_strings(c->k->h5, vars, "name", &nm, &nn, c->e);
        if (r < 0) return -1;
        if (r == 1) {
            int ok = nn == 1 && strcmp(nm[0], layer) == 0;
            char got[128];
            snprintf(got, sizeof got, "%s", nn >= 1 ? nm[0] : "");
            cv_h5_strings_free(nm, nn);
            if (!ok) return cv_fail(c->e, "layer %s: weights group %s belongs to layer %s", layer, h5path, got);
        }
        /* The datasets are "0", "1", ... in the layer's variable order; which of
         * the names they are depends on center/scale/use_bias, resolved by the
         * caller passing only the names that exist. */
        for (int i = 0; i < n_names; i++) {
            char idx[16];
            snprintf(idx, sizeof idx, "%d", i);
            r = cv_h5_find(c->k->h5, vars, idx, &objs[i], c->e);
            if (r < 0) return -1;
            have[i] = r;
        }
        char idx[16];
        cv_h5_obj extra;
        snprintf(idx, sizeof idx, "%d", n_names);
        r = cv_h5_find(c->k->h5, vars, idx, &extra, c->e);
        if (r < 0) return -1;
        if (r == 1) return cv_fail(c->e, "layer %s: more weights stored than the layer has", layer);
    } else {
        /* legacy names: ".../<layer>/<var>" with an optional ":0"; the first
         * listed weight whose path ends with "<layer>/<var>" at a '/' boundary */
        for (int i = 0; i < n_names; i++) {
            char key[1100];
            int kl = snprintf(key, sizeof key, "%s/%s", layer, names[i]);
            int j = kl > 0 && (size_t)kl < sizeof key ? name_index_find(&c->lw_index, key, (size_t)kl) : -1;
            if (j < 0) continue;
            objs[i] = c->lw_obj[j];
            have[i] = 1;
        }
    }
    for (int i = 0; i < n_names; i++) {
        if (!have[i]) continue;
        cv_h5_dataset_info info;
        if (cv_h5_dataset_info_get(c->k->h5, objs[i], &info, c->e)) {
            char m[sizeof c->e->msg];
            snprintf(m, sizeof m, "%s", c->e->msg);
            return cv_fail(c->e, "layer %s: weight %s: %s", layer, names[i], m);
        }
        if (info.rank > 4) return cv_fail(c->e, "layer %s: weight %s has rank %d", layer, names[i], info.rank);
        /* Integers only where Keras keeps a counter (Normalization's int64 count):
         * an integer kernel is not a model effcam can run as Keras does. */
        if (info.is_int && strcmp(names[i], "count") != 0)
            return cv_fail(c->e, "layer %s: weight %s is stored as %d-byte integers, not floats", layer, names[i],
                           info.elem_size);
        if (info.nelem > c->k->lim.max_tensor_elems)
            return cv_fail(c->e, "layer %s: weight %s exceeds the tensor size limit", layer, names[i]);
        c->total_elems += info.nelem;   /* each term is under the tensor limit: no overflow */
        if (c->total_elems > c->k->lim.max_total_elems)
            return cv_fail(c->e, "layer %s: the weights exceed the limit of %llu elements in total", layer,
                           (unsigned long long)c->k->lim.max_total_elems);
        int64_t dims[4];
        for (int d = 0; d < info.rank; d++) {
            if (info.dims[d] > (1u << 30)) return cv_fail(c->e, "layer %s: weight %s too large", layer, names[i]);
            dims[d] = (int64_t)info.dims[d];
        }
        char tn[512];
        snprintf(tn, sizeof tn, "%s/%s", layer, names[i]);
        int t = cv_graph_add_tensor(c->g, tn, info.rank, dims);
        long src = add_ds(c->k, objs[i]);
        if (t < 0 || src < 0) return cv_fail(c->e, "out of memory");
        c->g->tensors[t].src = src;
        tid[i] = t;
        (*n_found)++;
    }
    return 0;
}

/* Checks tensor t has exactly the given dims. */
static int want_shape(ctx *c, const char *layer, int t, int rank, const int64_t *dims)
{
    const cv_tensor *ts = &c->g->tensors[t];
    int ok = ts->rank == rank;
    for (int i = 0; ok && i < rank; i++) ok = ts->dims[i] == dims[i];
    if (ok) return 0;
    char got[96] = "", want[96] = "";
    for (int i = 0; i < ts->rank; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? "x" : "", (long long)ts->dims[i]);
    for (int i = 0; i < rank; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? "x" : "", (long long)dims[i]);
    return cv_fail(c->e, "layer %s: weight %s has shape [%s], expected [%s]", layer, ts->name, got, want);
}

/* A per-channel vector from the config (Normalization mean/variance), stored
 * as a derived tensor (not a Keras variable). */
static int config_vector(ctx *c, const char *layer, const js_value *v, int ch, const char *what, int *tid)
{
    int64_t dims[1] = { ch };
    char tn[512];
    /* Held in memory until written: bounded apart from the weights in the file,
     * which a config cannot inflate (a few channels per Normalization layer
     * in practice; 100000 layers of 65536 channels would be 50 GB). */
    c->total_elems += (uint64_t)ch;
    c->config_elems += (uint64_t)ch;
    if (c->config_elems > MAX_CONFIG_VECTOR_ELEMS || c->total_elems > c->k->lim.max_total_elems)
        return cv_fail(c->e, "layer %s: per-channel %s vectors of the config exceed %u elements in total", layer, what,
                       MAX_CONFIG_VECTOR_ELEMS);
    snprintf(tn, sizeof tn, "%s/%s", layer, what);
    int t = cv_graph_add_tensor(c->g, tn, 1, dims);
    if (t < 0) return cv_fail(c->e, "out of memory");
    cv_tensor *ts = &c->g->tensors[t];
    ts->flags = ECM_TF_DERIVED;
    ts->data = malloc((size_t)ch * sizeof(float));
    if (!ts->data) return cv_fail(c->e, "out of memory");
    double x;
    if (js_num(v, &x) == 0) {
        for (int i = 0; i < ch; i++) ts->data[i] = to_f32(x);
    } else if (v->type == JS_ARRAY && (v->n == ch || v->n == 1)) {
        for (int i = 0; i < ch; i++) {
            if (js_num(js_at(v, v->n == 1 ? 0 : i), &x)) return cv_fail(c->e, "layer %s: bad %s", layer, what);
            ts->data[i] = to_f32(x);
        }
    } else {
        return cv_fail(c->e, "layer %s: %s does not match %d channels", layer, what, ch);
    }
    *tid = t;
    return 0;
}

/* ---- layers --------------------------------------------------------------------- */

typedef struct {
    const char *cls;
    const char *name;
    const js_value *cfg;
    const char *h5path;        /* .keras weights path of this layer */
    int in[ECM_MAX_IN];
    int n_in;
} layer_call;

/* A new value of shape h x w x ch (computed in 64 bits by the caller): each
 * extent 1..ECM_MAX_DIM, as the loader requires, so later int arithmetic on
 * them cannot overflow. */
static int new_value(ctx *c, const char *name, int64_t h, int64_t w, int64_t ch)
{
    if (h <= 0 || w <= 0 || ch <= 0 || h > ECM_MAX_DIM || w > ECM_MAX_DIM || ch > ECM_MAX_DIM)
        return cv_fail(c->e, "layer %s: output shape %lldx%lldx%lld is out of range (1..%d each)", name, (long long)h,
                       (long long)w, (long long)ch, ECM_MAX_DIM), -1;
    if ((uint64_t)h * (uint64_t)w * (uint64_t)ch > c->k->lim.max_tensor_elems)
        return cv_fail(c->e, "layer %s: output of %lldx%lldx%lld exceeds the tensor limit of %llu elements", name,
                       (long long)h, (long long)w, (long long)ch, (unsigned long long)c->k->lim.max_tensor_elems), -1;
    if (c->g->n_values >= c->k->lim.max_layers * 2)
        return cv_fail(c->e, "too many layers (limit %d)", c->k->lim.max_layers), -1;
    int v = cv_graph_add_value(c->g, name, (int)h, (int)w, (int)ch);
    if (v < 0) cv_fail(c->e, "out of memory");
    return v;
}

/* Node names are Keras layer names; a clash (an outer layer named like one in
 * a nested model) is resolved by prefixing the nested model's name. */
static cv_node *new_node(ctx *c, int op, const char *name)
{
    if (c->g->n_nodes >= c->k->lim.max_layers) {
        cv_fail(c->e, "too many layers (limit %d)", c->k->lim.max_layers);
        return NULL;
    }
    cv_node *n = cv_graph_add_node(c->g, op, name);
    if (!n) cv_fail(c->e, "out of memory");
    return n;
}

static int build_model(ctx *c, const js_value *model, const char *h5path, const int *inputs, int n_inputs,
                       int depth, int *out);

/* The kernel (shape kd) and, when the layer has use_bias, the bias (cout) of a
 * Conv2D, DepthwiseConv2D or Dense: found, shape-checked, marked for float16
 * and wired into n's slots 0 and 1; n's single input is the call's input. */
static int attach_kernel(ctx *c, const layer_call *L, cv_node *n, int rank, const int64_t *kd, int64_t cout)
{
    const char *name = L->name;
    int bias = cfg_bool(L->cfg, "use_bias", 1);
    const char *names[2] = { "kernel", "bias" };
    int tid[2], nf;
    if (find_vars(c, name, L->h5path, names, bias ? 2 : 1, tid, &nf)) return -1;
    if (c->k->legacy && n->op == ECM_OP_DWCONV2D && tid[0] < 0) {
        const char *alt[1] = { "depthwise_kernel" };       /* tf.keras's variable name */
        if (find_vars(c, name, L->h5path, alt, 1, &tid[0], &nf)) return -1;
    }
    if (tid[0] < 0 || (bias && tid[1] < 0)) return cv_fail(c->e, "layer %s (%s): missing weights", name, L->cls);
    int64_t bd[1] = { cout };
    if (want_shape(c, name, tid[0], rank, kd) || (bias && want_shape(c, name, tid[1], 1, bd))) return -1;
    c->g->tensors[tid[0]].to_f16 = c->opt->f16;
    n->n_in = 1;
    n->in[0] = L->in[0];
    n->n_w = 2;
    n->w[0] = tid[0];
    n->w[1] = bias ? tid[1] : -1;
    return 0;
}

/* One layer call: creates its node(s) and returns its output value in *out. */
static int build_layer(ctx *c, const layer_call *L, int depth, int *out)
{
    const char *cls = L->cls, *name = L->name;
    const js_value *cfg = L->cfg;
    cv_graph *g = c->g;
    if (L->n_in < 1) return cv_fail(c->e, "layer %s (%s): no input", name, cls);
    const cv_value x = g->values[L->in[0]];
    int h = x.h, w = x.w, ch = x.c;

    if (L->n_in > 1 && strcmp(cls, "Add") && strcmp(cls, "Multiply"))
        return cv_fail(c->e, "layer %s (%s): %d inputs not supported", name, cls, L->n_in);

    if (!strcmp(cls, "Conv2D") || !strcmp(cls, "DepthwiseConv2D")) {
        int dw = cls[0] == 'D';
        cv_node *n = new_node(c, dw ? ECM_OP_DWCONV2D : ECM_OP_CONV2D, name);
        if (!n) return -1;
        int oh = 0, ow = 0;
        if (conv_geom(c, name, cfg, h, w, n, &oh, &ow) || cfg_act(c, name, cfg, &n->act)) return -1;
        long filters = 0, mult = 1, groups = 1;
        if (!dw && (cfg_int(c, name, cfg, "filters", 1, 1 << 16, -1, &filters) ||
                    cfg_int(c, name, cfg, "groups", 1, 1 << 16, 1, &groups)))
            return -1;
        if (dw && cfg_int(c, name, cfg, "depth_multiplier", 1, 1 << 10, 1, &mult)) return -1;
        if (!dw && filters < 1) return cv_fail(c->e, "layer %s: missing filters", name);
        if (groups != 1) return cv_fail(c->e, "layer %s: grouped convolution (groups=%ld) is not supported", name, groups);
        int cout = dw ? ch * (int)mult : (int)filters;
        int64_t kd[4] = { n->kh, n->kw, ch, dw ? mult : cout };
        if (attach_kernel(c, L, n, 4, kd, cout)) return -1;
        n->mult = (int)mult;
        if ((n->out = new_value(c, name, oh, ow, cout)) < 0) return -1;
        *out = n->out;
        return 0;
    }
    if (!strcmp(cls, "Dense")) {
        cv_node *n = new_node(c, ECM_OP_DENSE, name);
        if (!n) return -1;
        long units;
        if (cfg_int(c, name, cfg, "units", 1, 1 << 20, -1, &units) || cfg_act(c, name, cfg, &n->act)) return -1;
        if (units < 1) return cv_fail(c->e, "layer %s: missing units", name);
        int64_t kd[2] = { ch, units };
        if (attach_kernel(c, L, n, 2, kd, units)) return -1;
        if ((n->out = new_value(c, name, h, w, (int)units)) < 0) return -1;
        *out = n->out;
        return 0;
    }
    if (!strcmp(cls, "BatchNormalization")) {
        const js_value *ax = js_get(cfg, "axis");
        long a = -1;
        if (ax && ax->type == JS_ARRAY && ax->n == 1) ax = js_at(ax, 0);
        if (ax && (js_int(ax, -4, 3, &a) || (a != -1 && a != 3)))
            return cv_fail(c->e, "layer %s: BatchNormalization over axis other than channels", name);
        double eps = 1e-3;
        const js_value *ev = js_get(cfg, "epsilon");
        if (ev && js_num(ev, &eps)) return cv_fail(c->e, "layer %s: bad epsilon", name);
        int scale = cfg_bool(cfg, "scale", 1), center = cfg_bool(cfg, "center", 1);
        const char *all[4] = { "gamma", "beta", "moving_mean", "moving_variance" };
        const char *names[4];
        int slot[4], nn = 0;
        for (int i = 0; i < 4; i++) {
            if ((i == 0 && !scale) || (i == 1 && !center)) continue;
            slot[nn] = i;
            names[nn++] = all[i];
        }
        int tid[4], nf;
        if (find_vars(c, name, L->h5path, names, nn, tid, &nf)) return -1;
        cv_node *n = new_node(c, ECM_OP_BATCHNORM, name);
        if (!n) return -1;
        n->n_w = 4;
        int64_t vd[1] = { ch };
        for (int i = 0; i < nn; i++) {
            if (tid[i] < 0) return cv_fail(c->e, "layer %s (BatchNormalization): missing weight %s", name, names[i]);
            if (want_shape(c, name, tid[i], 1, vd)) return -1;
            n->w[slot[i]] = tid[i];
        }
        n->f0 = to_f32(eps);   /* negative, NaN or infinite: refused by cv_graph_check */
        n->n_in = 1;
        n->in[0] = L->in[0];
        if ((n->out = new_value(c, name, h, w, ch)) < 0) return -1;
        *out = n->out;
        return 0;
    }
    if (!strcmp(cls, "Activation") || !strcmp(cls, "ReLU") || !strcmp(cls, "Softmax")) {
        cv_node *n = new_node(c, ECM_OP_ACTIVATION, name);
        if (!n) return -1;
        if (!strcmp(cls, "Activation")) {
            if (cfg_act(c, name, cfg, &n->act)) return -1;
        } else if (!strcmp(cls, "ReLU")) {
            double mv = 0, ns = 0, th = 0;
            const js_value *m = js_get(cfg, "max_value");
            if ((js_num(js_get(cfg, "negative_slope"), &ns) == 0 && ns != 0) ||
                (js_num(js_get(cfg, "threshold"), &th) == 0 && th != 0))
                return cv_fail(c->e, "layer %s: leaky/thresholded ReLU is not supported", name);
            if (m && m->type != JS_NULL && (js_num(m, &mv) || mv != 6.0))
                return cv_fail(c->e, "layer %s: ReLU max_value other than 6 is not supported", name);
            n->act = (m && m->type != JS_NULL) ? ECM_ACT_RELU6 : ECM_ACT_RELU;
        } else {
            n->act = ECM_ACT_SOFTMAX;
        }
        n->n_in = 1;
        n->in[0] = L->in[0];
        if ((n->out = new_value(c, name, h, w, ch)) < 0) return -1;
        *out = n->out;
        return 0;
    }
    if (!strcmp(cls, "Rescaling")) {
        double sc, of = 0;
        const js_value *sv = js_get(cfg, "scale"), *ov = js_get(cfg, "offset");
        if (js_num(sv, &sc)) return cv_fail(c->e, "layer %s: only a scalar Rescaling scale is supported", name);
        if (ov && js_num(ov, &of)) return cv_fail(c->e, "layer %s: only a scalar Rescaling offset is supported", name);
        cv_node *n = new_node(c, ECM_OP_RESCALE, name);
        if (!n) return -1;
        n->f0 = to_f32(sc);    /* beyond float range or NaN: refused by cv_graph_check */
        n->f1 = to_f32(of);
        n->n_in = 1;
        n->in[0] = L->in[0];
        if ((n->out = new_value(c, name, h, w, ch)) < 0) return -1;
        *out = n->out;
        return 0;
    }
    if (!strcmp(cls, "Normalization")) {
        if (cfg_bool(cfg, "invert", 0)) return cv_fail(c->e, "layer %s: inverted Normalization is not supported", name);
        const js_value *ax = js_get(cfg, "axis");
        long a = -1;
        if (ax && ax->type == JS_ARRAY && ax->n == 1) ax = js_at(ax, 0);
        if (ax && ax->type != JS_NULL && (js_int(ax, -4, 3, &a) || (a != -1 && a != 3)))
            return cv_fail(c->e, "layer %s: Normalization over axis other than channels", name);
        cv_node *n = new_node(c, ECM_OP_NORMALIZE, name);
        if (!n) return -1;
        const js_value *mv = js_get(cfg, "mean"), *vv = js_get(cfg, "variance");
        int nidx = (int)(n - g->nodes);
        if (mv && mv->type != JS_NULL && vv && vv->type != JS_NULL) {
            int tm, tv;
            if (config_vector(c, name, mv, ch, "mean", &tm) || config_vector(c, name, vv, ch, "variance", &tv)) return -1;
            n = &g->nodes[nidx];
            n->w[0] = tm;
            n->w[1] = tv;
            n->n_w = 2;
        } else {
            const char *names[3] = { "mean", "variance", "count" };
            int tid[3], nf;
            if (find_vars(c, name, L->h5path, names, 3, tid, &nf)) return -1;
            n = &g->nodes[nidx];
            if (tid[0] < 0 || tid[1] < 0) return cv_fail(c->e, "layer %s (Normalization): missing weights", name);
            /* Keras stores mean/variance broadcastable: (C,) or (1, 1, 1, C). */
            for (int i = 0; i < 2; i++) {
                cv_tensor *t = &g->tensors[tid[i]];
                if (cv_tensor_elems(t) != ch)
                    return cv_fail(c->e, "layer %s: %s has %lld values for %d channels", name, names[i],
                                   (long long)cv_tensor_elems(t), ch);
            }
            n->w[0] = tid[0];
            n->w[1] = tid[1];
            n->w[2] = tid[2];
            n->n_w = tid[2] >= 0 ? 3 : 2;
        }
        n->n_in = 1;
        n->in[0] = L->in[0];
        if ((n->out = new_value(c, name, h, w, ch)) < 0) return -1;
        *out = n->out;
        return 0;
    }
    if (!strcmp(cls, "ZeroPadding2D")) {
        const js_value *p = js_get(cfg, "padding");
        long v[4] = { 1, 1, 1, 1 };
        if (p && js_int(p, 0, 1 << 16, &v[0]) == 0) {
            v[1] = v[2] = v[3] = v[0];
        } else if (p && p->type == JS_ARRAY && p->n == 2) {
            const js_value *a0 = js_at(p, 0), *a1 = js_at(p, 1);
            if (a0->type == JS_ARRAY) {
                if (a0->n != 2 || a1->type != JS_ARRAY || a1->n != 2 || js_int(js_at(a0, 0), 0, 1 << 16, &v[0]) ||
                    js_int(js_at(a0, 1), 0, 1 << 16, &v[1]) || js_int(js_at(a1, 0), 0, 1 << 16, &v[2]) ||
                    js_int(js_at(a1, 1), 0, 1 << 16, &v[3]))
                    return cv_fail(c->e, "layer %s: bad padding", name);
            } else {
                if (js_int(a0, 0, 1 << 16, &v[0]) || js_int(a1, 0, 1 << 16, &v[2]))
                    return cv_fail(c->e, "layer %s: bad padding", name);
                v[1] = v[0];
                v[3] = v[2];
            }
        } else if (p) {
            return cv_fail(c->e, "layer %s: bad padding", name);
        }
        cv_node *n = new_node(c, ECM_OP_ZEROPAD, name);
        if (!n) return -1;
        n->pt = (int)v[0];
        n->pb = (int)v[1];
        n->pl = (int)v[2];
        n->pr = (int)v[3];
        n->n_in = 1;
        n->in[0] = L->in[0];
        if ((n->out = new_value(c, name, (int64_t)h + v[0] + v[1], (int64_t)w + v[2] + v[3], ch)) < 0) return -1;
        *out = n->out;
        return 0;
    }
    if (!strcmp(cls, "GlobalAveragePooling2D")) {
        const char *df = js_get_str(cfg, "data_format");
        if (df && strcmp(df, "channels_last")) return cv_fail(c->e, "layer %s: data_format %s is not supported", name, df);
        cv_node *n = new_node(c, ECM_OP_GAP, name);
        if (!n) return -1;
        n->flags = cfg_bool(cfg, "keepdims", 0) ? ECM_NF_KEEPDIMS : 0;
        n->n_in = 1;
        n->in[0] = L->in[0];
        if ((n->out = new_value(c, name, 1, 1, ch)) < 0) return -1;
        *out = n->out;
        return 0;
    }
    if (!strcmp(cls, "Reshape") || !strcmp(cls, "Flatten")) {
        int64_t total = (int64_t)h * w * ch;   /* each <= ECM_MAX_DIM: < 2^49 */
        int64_t nh = 1, nw = 1, nc = total;
        if (cls[0] == 'R') {
            const js_value *ts = js_get(cfg, "target_shape");
            if (!ts || ts->type != JS_ARRAY || ts->n < 1 || ts->n > 3)
                return cv_fail(c->e, "layer %s: unsupported target_shape", name);
            long d[3] = { 1, 1, 1 };
            int neg = -1;
            int64_t known = 1;
            for (int i = 0; i < ts->n; i++) {
                if (js_int(js_at(ts, i), -1, 1L << 30, &d[3 - ts->n + i]) || d[3 - ts->n + i] == 0)
                    return cv_fail(c->e, "layer %s: bad target_shape", name);
                if (d[3 - ts->n + i] == -1) {
                    if (neg >= 0) return cv_fail(c->e, "layer %s: bad target_shape", name);
                    neg = 3 - ts->n + i;
                } else if (__builtin_mul_overflow(known, (int64_t)d[3 - ts->n + i], &known) || known > total) {
                    /* [2^30, 2^30, 2^30] overflowed here (found by UBSan) */
                    return cv_fail(c->e, "layer %s: target_shape has a different element count", name);
                }
            }
            if (neg >= 0) {
                if (known <= 0 || total % known) return cv_fail(c->e, "layer %s: target_shape does not fit", name);
                d[neg] = (long)(total / known);
            }
            /* known <= total, and d[neg] * known == total: the product cannot overflow */
            if ((int64_t)d[0] * d[1] * d[2] != total)
                return cv_fail(c->e, "layer %s: target_shape has a different element count", name);
            nh = d[0];
            nw = d[1];
            nc = d[2];
        }
        cv_node *n = new_node(c, ECM_OP_RESHAPE, name);
        if (!n) return -1;
        n->n_in = 1;
        n->in[0] = L->in[0];
        if ((n->out = new_value(c, name, nh, nw, nc)) < 0) return -1;
        *out = n->out;
        return 0;
    }
    if (!strcmp(cls, "Dropout") || !strcmp(cls, "SpatialDropout2D") || !strcmp(cls, "GaussianDropout") ||
        !strcmp(cls, "GaussianNoise") || !strcmp(cls, "AlphaDropout")) {
        cv_node *n = new_node(c, ECM_OP_IDENTITY, name);
        if (!n) return -1;
        n->n_in = 1;
        n->in[0] = L->in[0];
        if ((n->out = new_value(c, name, h, w, ch)) < 0) return -1;
        *out = n->out;
        return 0;
    }
    if (!strcmp(cls, "Add") || !strcmp(cls, "Multiply")) {
        int add = cls[0] == 'A';
        if (L->n_in < 2) return cv_fail(c->e, "layer %s (%s): needs at least 2 inputs", name, cls);
        if (!add && L->n_in != 2) return cv_fail(c->e, "layer %s: Multiply of %d inputs is not supported", name, L->n_in);
        int oh = h, ow = w, oc = ch;
        for (int i = 1; i < L->n_in; i++) {
            const cv_value *y = &g->values[L->in[i]];
            if (y->h == oh && y->w == ow && y->c == oc) continue;
            /* SE excite: (h, w, c) * (1, 1, c), either side */
            if (!add && y->c == oc && ((y->h == 1 && y->w == 1) || (oh == 1 && ow == 1))) {
                if (oh == 1 && ow == 1) { oh = y->h; ow = y->w; }
                continue;
            }
            return cv_fail(c->e, "layer %s (%s): input shapes %dx%dx%d and %dx%dx%d do not match", name, cls, h, w, ch,
                           y->h, y->w, y->c);
        }
        cv_node *n = new_node(c, add ? ECM_OP_ADD : ECM_OP_MUL, name);
        if (!n) return -1;
        n->n_in = L->n_in;
        for (int i = 0; i < L->n_in; i++) n->in[i] = L->in[i];
        if ((n->out = new_value(c, name, oh, ow, oc)) < 0) return -1;
        *out = n->out;
        return 0;
    }
    return cv_fail(c->e, "layer %s: unsupported layer class %s", name, cls);
}

/* ---- inbound nodes -------------------------------------------------------------- */

/* Collects the layer names a call reads, in argument order. Keras 3 writes
 * {"args": [tensor | [tensors]], "kwargs": {}} with tensors carrying
 * "keras_history": [layer, node, index]; tf.keras 2.x writes
 * [[layer, node, index, kwargs], ...]. */
static int collect_keras3(const js_value *v, const char **names, int *n, int depth)
{
    if (!v || depth > 16) return depth > 16 ? -1 : 0;
    if (v->type == JS_OBJECT) {
        const js_value *hist = js_get(js_get(v, "config"), "keras_history");
        const js_value *hn = js_at(hist, 0);
        if (hist && hist->type == JS_ARRAY && hist->n >= 1 && js_str(hn)) {
            /* a name with a NUL character would look up a shorter name */
            if (*n >= ECM_MAX_IN || strlen(hn->str) != hn->len) return -1;
            names[(*n)++] = hn->str;
            return 0;
        }
        for (int i = 0; i < v->n; i++)
            if (collect_keras3(&v->items[i], names, n, depth + 1)) return -1;
    } else if (v->type == JS_ARRAY) {
        for (int i = 0; i < v->n; i++)
            if (collect_keras3(&v->items[i], names, n, depth + 1)) return -1;
    }
    return 0;
}

static int inbound_names(ctx *c, const char *layer, const js_value *inb, const char **names, int *n)
{
    *n = 0;
    if (!inb || inb->type != JS_ARRAY || inb->n == 0) return 0;
    if (inb->n > 1) return cv_fail(c->e, "layer %s: shared layers (called %d times) are not supported", layer, inb->n);
    const js_value *node = js_at(inb, 0);
    int r;
    if (node->type == JS_OBJECT) {
        r = collect_keras3(js_get(node, "args"), names, n, 0);
    } else if (node->type == JS_ARRAY) {
        r = 0;
        for (int i = 0; i < node->n && r == 0; i++) {
            const js_value *t = js_at(node, i), *tn = js_at(t, 0);
            const char *s = js_str(tn);
            if (!s || *n >= ECM_MAX_IN || strlen(s) != tn->len) r = -1;
            else names[(*n)++] = s;
        }
    } else {
        r = -1;
    }
    if (r) return cv_fail(c->e, "layer %s: unreadable or too many inbound tensors", layer);
    return 0;
}

/* ---- models --------------------------------------------------------------------- */

/* Input shape (h, w, c) of an InputLayer config (Keras 3 batch_shape,
 * tf.keras batch_input_shape). */
static int shape_of(ctx *c, const char *name, const js_value *s, int *h, int *w, int *ch)
{
    long d[3];
    if (!s || s->type != JS_ARRAY || s->n != 4)
        return cv_fail(c->e, "layer %s: input must be (batch, height, width, channels) with known sizes", name);
    for (int i = 0; i < 3; i++) {
        const js_value *v = js_at(s, i + 1);
        double x;
        if (!v || v->type == JS_NULL)
            return cv_fail(c->e, "layer %s: input size must be fixed (dimension %d is null)", name, i + 1);
        if (js_int(v, 1, 1 << 16, &d[i]))
            return cv_fail(c->e, "layer %s: input dimension %d (%g) out of range 1..65536", name, i + 1,
                           js_num(v, &x) ? 0.0 : x);
    }
    *h = (int)d[0];
    *w = (int)d[1];
    *ch = (int)d[2];
    return 0;
}

static int input_shape(ctx *c, const char *name, const js_value *cfg, int *h, int *w, int *ch)
{
    const js_value *s = js_get(cfg, "batch_shape");
    if (!s || s->type == JS_NULL) s = js_get(cfg, "batch_input_shape");
    return shape_of(c, name, s, h, w, ch);
}

static int is_model_class(const char *cls)
{
    return cls && (!strcmp(cls, "Functional") || !strcmp(cls, "Sequential") || !strcmp(cls, "Model"));
}

/* Per-class counters for .keras weight paths (saving_lib names list entries by
 * snake_case class name, first bare, then _1, _2, ...). */
typedef struct {
    char cls[64];
    int count;
} class_count;

static int h5_child_path(ctx *c, const char *parent, const char *cls, class_count *cc, int *ncc, char *out, size_t cap)
{
    char sn[64];
    snake_case(cls, sn, sizeof sn);
    int k;
    for (k = 0; k < *ncc; k++)
        if (!strcmp(cc[k].cls, sn)) break;
    if (k == *ncc) {
        if (*ncc >= 256) return cv_fail(c->e, "too many layer classes");
        snprintf(cc[k].cls, sizeof cc[k].cls, "%s", sn);
        cc[k].count = 0;
        (*ncc)++;
        snprintf(out, cap, "%s%slayers/%s", parent ? parent : "", parent && *parent ? "/" : "", sn);
    } else {
        cc[k].count++;
        snprintf(out, cap, "%s%slayers/%s_%d", parent ? parent : "", parent && *parent ? "/" : "", sn, cc[k].count);
    }
    return 0;
}

/* A layer's name (config.name, else the layer's own "name"), or NULL. */
static const js_value *layer_name(const js_value *L)
{
    const js_value *v = js_get(js_get(L, "config"), "name");
    if (!v || v->type != JS_STRING) v = js_get(L, "name");
    return v && v->type == JS_STRING ? v : NULL;
}

/* Indexes the layer names of one model: each present, free of NUL characters
 * ("a\u0000b" would read as "a" and collapse two layers) and unique (Keras
 * refuses duplicates; with them the last one won). */
static int index_layers(ctx *c, const char *mname, const js_value *layers, name_index *idx)
{
    if (name_index_init(idx, (size_t)layers->n)) return cv_fail(c->e, "out of memory");
    for (int i = 0; i < layers->n; i++) {
        const js_value *nv = layer_name(js_at(layers, i));
        if (!nv) return cv_fail(c->e, "model %s: layer %d has no name", mname, i);
        if (strlen(nv->str) != nv->len) return cv_fail(c->e, "model %s: layer %d: its name contains a NUL character", mname, i);
        if (name_index_add(idx, nv->str, nv->len, i))
            return cv_fail(c->e, "model %s: two layers are named %s (layer names must be unique)", mname, nv->str);
    }
    return 0;
}

/* Builds a Functional or Sequential model {class_name, config}. inputs: values
 * feeding it when nested (NULL at top level: its InputLayer makes the model input). */
static int build_model(ctx *c, const js_value *model, const char *h5path, const int *inputs, int n_inputs,
                       int depth, int *out)
{
    if (depth > MAX_MODEL_DEPTH) return cv_fail(c->e, "models nested more than %d deep", MAX_MODEL_DEPTH);
    const char *cls = js_get_str(model, "class_name");
    const js_value *cfg = js_get(model, "config");
    const char *mname = js_get_str(cfg, "name");
    if (!mname) mname = "model";
    const js_value *layers = js_get(cfg, "layers");
    if (!is_model_class(cls) || !layers || layers->type != JS_ARRAY)
        return cv_fail(c->e, "model %s: not a Functional or Sequential model", mname);
    int seq = !strcmp(cls, "Sequential"), n = layers->n;
    class_count *cc = calloc(256, sizeof *cc);
    int ncc = 0, rc = -1;
    char (*paths)[512] = calloc((size_t)n + 1, sizeof *paths);
    /* Functional: per layer its state (0 not visited, 1 waiting for its inputs,
     * 2 built), output value, InputLayer ordinal, and inbound layer indexes. */
    unsigned char *state = calloc((size_t)n + 1, 1);
    int *outv = calloc((size_t)n + 1, sizeof *outv), *ord = calloc((size_t)n + 1, sizeof *ord);
    int *stack = calloc((size_t)n + 1, sizeof *stack), *nin = calloc((size_t)n + 1, sizeof *nin);
    int (*lin)[ECM_MAX_IN] = calloc((size_t)n + 1, sizeof *lin);
    name_index idx = { 0 };
    if (!cc || !paths || !state || !outv || !ord || !stack || !nin || !lin) { cv_fail(c->e, "out of memory"); goto out; }
    if (index_layers(c, mname, layers, &idx)) goto out;

    /* Weight paths in model.layers order (InputLayers are not in model.layers). */
    for (int i = 0; i < n; i++) {
        const char *lcls = js_get_str(js_at(layers, i), "class_name");
        if (!lcls) { cv_fail(c->e, "model %s: layer %d has no class_name", mname, i); goto out; }
        if (!strcmp(lcls, "InputLayer")) continue;
        if (h5_child_path(c, h5path, lcls, cc, &ncc, paths[i], sizeof paths[i])) goto out;
    }

    int cur = -1;                         /* Sequential: the running value */
    if (seq) {
        if (inputs) cur = inputs[0];
        else {
            const js_value *first = js_at(layers, 0);
            const js_value *fcfg = js_get(first, "config");
            const char *fcls = js_get_str(first, "class_name");
            int ih, iw, ic;
            if (!fcls) { cv_fail(c->e, "model %s: empty", mname); goto out; }
            if (!strcmp(fcls, "InputLayer") || js_get(fcfg, "batch_input_shape") || js_get(fcfg, "batch_shape")) {
                if (input_shape(c, js_get_str(fcfg, "name") ? js_get_str(fcfg, "name") : "input", fcfg, &ih, &iw, &ic)) goto out;
            } else {
                if (shape_of(c, mname, js_get(cfg, "build_input_shape"), &ih, &iw, &ic)) goto out;
            }
            if ((cur = new_value(c, "input", ih, iw, ic)) < 0) goto out;
            c->g->input_value = cur;
        }
        for (int i = 0; i < n; i++) {
            const js_value *L = js_at(layers, i);
            const char *lcls = js_get_str(L, "class_name");
            const js_value *lcfg = js_get(L, "config");
            const char *lname = layer_name(L)->str;
            if (!strcmp(lcls, "InputLayer")) continue;
            layer_call call = { lcls, lname, lcfg, paths[i], { cur }, 1 };
            if (is_model_class(lcls)) {
                if (build_model(c, L, paths[i], &cur, 1, depth + 1, &cur)) goto out;
            } else if (build_layer(c, &call, depth, &cur)) {
                goto out;
            }
        }
        *out = cur;
        rc = 0;
        goto out;
    }

    /* Functional: one pass in dependency order. From each layer in config order,
     * a depth-first walk (explicit stack: a chain of 100000 layers is fine)
     * builds its unbuilt inputs first, so a sorted config (as Keras writes
     * them) builds in config order and any other in linear time too; an input
     * met again while it waits for its own inputs is a cycle. InputLayers take
     * the given inputs in config order. */
    int n_in_layers = 0;
    for (int i = 0; i < n; i++)
        if (!strcmp(js_get_str(js_at(layers, i), "class_name"), "InputLayer")) ord[i] = n_in_layers++;
    for (int r = 0; r < n; r++) {
        int sp = 0;
        if (state[r] == 0) stack[sp++] = r;
        while (sp > 0) {
            int t = stack[sp - 1];
            const js_value *L = js_at(layers, t);
            const char *lcls = js_get_str(L, "class_name");
            const js_value *lcfg = js_get(L, "config");
            const char *lname = layer_name(L)->str;
            int input_layer = !strcmp(lcls, "InputLayer");
            if (state[t] == 0) {
                state[t] = 1;
                if (!input_layer) {
                    const char *in_names[ECM_MAX_IN];
                    if (inbound_names(c, lname, js_get(L, "inbound_nodes"), in_names, &nin[t])) goto out;
                    if (nin[t] == 0) { cv_fail(c->e, "layer %s (%s): no inbound tensors", lname, lcls); goto out; }
                    for (int k = 0; k < nin[t]; k++)
                        if ((lin[t][k] = name_index_find(&idx, in_names[k], strlen(in_names[k]))) < 0) {
                            cv_fail(c->e, "model %s: layer %s has inputs that are never produced (cycle or missing layer)",
                                    mname, lname);
                            goto out;
                        }
                }
            }
            int wait = -1;
            for (int k = 0; k < nin[t] && wait < 0; k++)
                if (state[lin[t][k]] != 2) wait = lin[t][k];
            if (wait >= 0) {
                if (state[wait] == 1) {
                    cv_fail(c->e, "model %s: layer %s has inputs that are never produced (cycle or missing layer)", mname,
                            lname);
                    goto out;
                }
                stack[sp++] = wait;   /* each layer is pushed once: it is processed right away */
                continue;
            }
            int v;
            if (input_layer) {
                int ih, iw, ic;
                if (inputs) {
                    if (ord[t] >= n_inputs) { cv_fail(c->e, "model %s: more inputs than given", mname); goto out; }
                    v = inputs[ord[t]];
                    if (input_shape(c, lname, lcfg, &ih, &iw, &ic) == 0) {
                        const cv_value *vv = &c->g->values[v];
                        if (vv->h != ih || vv->w != iw || vv->c != ic) {
                            cv_fail(c->e, "model %s: input %s expects %dx%dx%d, gets %dx%dx%d", mname, lname, ih, iw, ic,
                                    vv->h, vv->w, vv->c);
                            goto out;
                        }
                    }
                } else {
                    if (c->g->input_value >= 0) { cv_fail(c->e, "models with several inputs are not supported"); goto out; }
                    if (input_shape(c, lname, lcfg, &ih, &iw, &ic)) goto out;
                    if ((v = new_value(c, lname, ih, iw, ic)) < 0) goto out;
                    c->g->input_value = v;
                }
            } else {
                layer_call call = { lcls, lname, lcfg, paths[t], { 0 }, nin[t] };
                for (int k = 0; k < nin[t]; k++) call.in[k] = outv[lin[t][k]];
                if (is_model_class(lcls)) {
                    if (build_model(c, L, paths[t], call.in, nin[t], depth + 1, &v)) goto out;
                } else if (build_layer(c, &call, depth, &v)) {
                    goto out;
                }
            }
            outv[t] = v;
            state[t] = 2;
            sp--;
        }
    }
    const js_value *ol = js_get(cfg, "output_layers");
    /* [name, 0, 0] or [[name, 0, 0], ...] */
    if (ol && ol->type == JS_ARRAY && ol->n >= 1 && js_at(ol, 0)->type == JS_ARRAY) {
        if (ol->n != 1) { cv_fail(c->e, "model %s: models with several outputs are not supported", mname); goto out; }
        ol = js_at(ol, 0);
    }
    const js_value *on = js_at(ol, 0);
    int oi = on && on->type == JS_STRING ? name_index_find(&idx, on->str, on->len) : -1;
    if (oi < 0) {
        cv_fail(c->e, "model %s: output layer %s not found", mname, on && on->type == JS_STRING ? on->str : "(missing)");
        goto out;
    }
    *out = outv[oi];
    rc = 0;
out:
    name_index_free(&idx);
    free(cc);
    free(paths);
    free(state);
    free(outv);
    free(ord);
    free(stack);
    free(nin);
    free(lin);
    return rc;
}

/* ---- legacy .h5 weights index ------------------------------------------------- */

static int lw_add(ctx *c, const char *name, cv_h5_obj obj)
{
    if (c->n_lw == c->cap_lw) {
        int ncap = c->cap_lw ? 2 * c->cap_lw : 256;
        char **a = realloc(c->lw_names, (size_t)ncap * sizeof *a);
        if (!a) return -1;
        c->lw_names = a;
        cv_h5_obj *b = realloc(c->lw_obj, (size_t)ncap * sizeof *b);
        if (!b) return -1;
        c->lw_obj = b;
        c->cap_lw = ncap;
    }
    if (!(c->lw_names[c->n_lw] = strdup(name))) return -1;
    c->lw_obj[c->n_lw++] = obj;
    return 0;
}

/* Reads an attribute that Keras may split into name0, name1, ... when large. */
static int attr_strings_split(cv_h5 *h, cv_h5_obj obj, const char *name, char ***out, int *n, cv_err *e)
{
    int r = cv_h5_attr_strings(h, obj, name, out, n, e);
    if (r != 0) return r;
    char **all = NULL;
    int nall = 0;
    for (int part = 0; part < 100000; part++) {
        char nm[96];
        snprintf(nm, sizeof nm, "%s%d", name, part);
        char **s;
        int ns;
        r = cv_h5_attr_strings(h, obj, nm, &s, &ns, e);
        if (r < 0) { cv_h5_strings_free(all, nall); return -1; }
        if (r == 0) break;
        char **grown = realloc(all, (size_t)(nall + ns + 1) * sizeof *grown);
        if (!grown) { cv_h5_strings_free(s, ns); cv_h5_strings_free(all, nall); return cv_fail(e, "out of memory"); }
        all = grown;
        memcpy(all + nall, s, (size_t)ns * sizeof *s);
        nall += ns;
        free(s);
    }
    if (!all) return 0;
    *out = all;
    *n = nall;
    return 1;
}

static int legacy_index(ctx *c)
{
    cv_h5 *h = c->k->h5;
    cv_h5_obj mw;
    int r = cv_h5_find(h, cv_h5_root(h), "model_weights", &mw, c->e);
    if (r < 0) return -1;
    if (r == 0) return cv_fail(c->e, "no model_weights group (a weights-only or non-Keras HDF5 file?)");
    char **layer_names = NULL;
    int nl = 0;
    r = attr_strings_split(h, mw, "layer_names", &layer_names, &nl, c->e);
    if (r < 0) return -1;
    if (r == 0) return cv_fail(c->e, "model_weights has no layer_names attribute");
    int rc = 0;
    for (int i = 0; i < nl && rc == 0; i++) {
        cv_h5_obj lg;
        r = cv_h5_find(h, mw, layer_names[i], &lg, c->e);
        if (r <= 0) {
            if (r == 0) cv_fail(c->e, "model_weights/%s is listed but missing", layer_names[i]);
            rc = -1;
            break;
        }
        char **wn = NULL;
        int nw = 0;
        r = attr_strings_split(h, lg, "weight_names", &wn, &nw, c->e);
        if (r < 0) { rc = -1; break; }
        for (int j = 0; j < nw && rc == 0; j++) {
            cv_h5_obj ds;
            r = cv_h5_find(h, lg, wn[j], &ds, c->e);
            if (r <= 0) {
                if (r == 0) cv_fail(c->e, "weight %s/%s is listed but missing", layer_names[i], wn[j]);
                rc = -1;
            } else if (lw_add(c, wn[j], ds)) {
                rc = cv_fail(c->e, "out of memory");
            }
        }
        if (r > 0 || nw) cv_h5_strings_free(wn, nw);
    }
    cv_h5_strings_free(layer_names, nl);
    if (rc) return rc;
    /* Index every '/'-suffix of every weight name (without ":0"), the first
     * weight listed winning: find_vars looks "layer/var" up in O(1). */
    size_t keys = 0;
    for (int j = 0; j < c->n_lw; j++) {
        keys++;
        for (const char *q = c->lw_names[j]; *q; q++) keys += *q == '/';
    }
    if (name_index_init(&c->lw_index, keys)) return cv_fail(c->e, "out of memory");
    for (int j = 0; j < c->n_lw; j++) {
        const char *w = c->lw_names[j];
        size_t wl = strlen(w);
        if (wl >= 2 && !strcmp(w + wl - 2, ":0")) wl -= 2;
        name_index_add(&c->lw_index, w, wl, j);
        for (size_t q = 0; q < wl; q++)
            if (w[q] == '/') name_index_add(&c->lw_index, w + q + 1, wl - q - 1, j);
    }
    return 0;
}

/* ---- entry points ------------------------------------------------------------ */

void cv_keras_close(cv_keras *k)
{
    if (!k) return;
    cv_h5_close(k->h5);
    if (k->have_wsrc) cv_source_close(&k->wsrc);
    cv_zip_close(k->zip);
    cv_source_close(&k->file);
    free(k->ds);
    free(k);
}

int cv_keras_open(const char *path, const cv_options *opt, cv_graph *g, cv_keras **out, cv_err *e)
{
    *out = NULL;
    cv_graph_init(g);
    cv_keras *k = calloc(1, sizeof *k);
    if (!k) return cv_fail(e, "out of memory");
    k->lim = opt->limits;
    k->file.fd = -1;
    char *text = NULL;
    size_t text_len = 0;
    js_doc *doc = NULL;
    const js_value *root = NULL;
    ctx c = { g, k, opt, e, NULL, NULL, 0, 0, { NULL, 0 }, 0, 0 };

    if (cv_source_open_file(path, &k->lim, &k->file, e)) goto fail;
    unsigned char magic[8] = { 0 };
    if (k->file.size < 8) {
        cv_fail(e, k->file.size == 0 ? "empty file" : "file too short to be a Keras model");
        goto fail;
    }
    if (cv_source_read(&k->file, 0, magic, 8, e)) goto fail;
    if (!memcmp(magic, "PK\3\4", 4) || !memcmp(magic, "PK\5\6", 4)) {
        /* .keras: config.json + model.weights.h5 */
        if (cv_zip_open(path, &k->lim, &k->zip, e)) goto fail;
        if (!cv_zip_has(k->zip, "config.json")) { cv_fail(e, "not a Keras archive: no config.json"); goto fail; }
        if (!cv_zip_has(k->zip, "model.weights.h5")) { cv_fail(e, "Keras archive has no model.weights.h5"); goto fail; }
        if (cv_zip_read(k->zip, "config.json", MAX_CONFIG_BYTES, &text, &text_len, e)) goto fail;
        if (cv_zip_source(k->zip, "model.weights.h5", &k->wsrc, e)) goto fail;
        k->have_wsrc = 1;
        if (cv_h5_open(&k->wsrc, &k->lim, &k->h5, e)) goto fail;
    } else {
        k->legacy = 1;
        if (cv_h5_open(&k->file, &k->lim, &k->h5, e)) {
            if (memcmp(magic, "\x89HDF", 4)) cv_fail(e, "neither a .keras (zip) nor an .h5 (HDF5) file");
            goto fail;
        }
        char **mc = NULL;
        int n = 0;
        int r = cv_h5_attr_strings(k->h5, cv_h5_root(k->h5), "model_config", &mc, &n, e);
        if (r < 0) goto fail;
        if (r == 0 || n != 1) {
            if (mc) cv_h5_strings_free(mc, n);
            cv_fail(e, "HDF5 file has no model_config attribute (weights-only file?)");
            goto fail;
        }
        text = mc[0];
        text_len = strlen(text);
        free(mc);
        if (legacy_index(&c)) goto fail;
    }

    char jerr[160];
    if (js_parse(text, text_len, k->lim.max_json_depth, &doc, &root, jerr, sizeof jerr)) {
        cv_fail(e, "model config is not valid JSON: %s", jerr);
        goto fail;
    }
    int outv;
    if (build_model(&c, root, "", NULL, 0, 0, &outv)) goto fail;
    if (g->input_value < 0) { cv_fail(e, "model has no input layer"); goto fail; }
    if (g->values[g->input_value].c != 3) {
        cv_fail(e, "model input has %d channels; effcam takes RGB images (3)", g->values[g->input_value].c);
        goto fail;
    }
    const cv_value *ov = &g->values[outv];
    if (outv == g->input_value) { cv_fail(e, "model output is its input"); goto fail; }
    if (ov->h != 1 || ov->w != 1) {
        cv_fail(e, "model output is %dx%dx%d; expected a vector of class scores", ov->h, ov->w, ov->c);
        goto fail;
    }
    g->output_value = outv;
    cv_graph_pick_gradcam(g);
    if (opt->f16) cv_graph_keep_f32_ends(g);
    if (cv_graph_set_labels(g, opt->labels_path, e)) goto fail;
    if (cv_graph_check(g, e)) goto fail;
    /* The session would refuse the plan (same limit, engine/plan.c): say so now. */
    uint64_t act = cv_graph_activation_bytes(g);
    if (act > k->lim.max_activation_bytes) {
        cv_fail(e, "model needs %llu MiB of activations, over the limit of %llu MiB", (unsigned long long)((act + (1u << 20) - 1) >> 20),
                (unsigned long long)(k->lim.max_activation_bytes >> 20));
        goto fail;
    }
    g->load = load_tensor;
    g->load_ctx = k;
    for (int i = 0; i < c.n_lw; i++) free(c.lw_names[i]);
    free(c.lw_names);
    free(c.lw_obj);
    name_index_free(&c.lw_index);
    js_doc_free(doc);
    free(text);
    *out = k;
    return 0;

fail:
    for (int i = 0; i < c.n_lw; i++) free(c.lw_names[i]);
    free(c.lw_names);
    free(c.lw_obj);
    name_index_free(&c.lw_index);
    js_doc_free(doc);
    free(text);
    cv_graph_free(g);
    cv_keras_close(k);
    return -1;
}
