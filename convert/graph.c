/* graph.c - the converter's graph IR: growable tables, params, Grad-CAM target,
 * labels, the loader's structural checks and the activation memory bound. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cv.h"
#include "engine/ecm_format.h"

void cv_graph_init(cv_graph *g)
{
    memset(g, 0, sizeof *g);
    g->input_value = -1;
    g->output_value = -1;
    g->gradcam_node = -1;
}

void cv_graph_free(cv_graph *g)
{
    for (int i = 0; i < g->n_values; i++) free(g->values[i].name);
    for (int i = 0; i < g->n_nodes; i++) free(g->nodes[i].name);
    for (int i = 0; i < g->n_tensors; i++) {
        free(g->tensors[i].name);
        free(g->tensors[i].data);
    }
    for (int i = 0; i < g->n_labels; i++) free(g->labels[i]);
    free(g->values);
    free(g->nodes);
    free(g->tensors);
    free(g->labels);
    cv_graph_init(g);
}

/* Grows *arr (of elem bytes each) so that index n fits; 0 or -1 on OOM. */
static int grow(void **arr, int *cap, int n, size_t elem)
{
    if (n < *cap) return 0;
    int ncap = *cap ? *cap * 2 : 64;
    if (ncap <= n || ncap > (1 << 24)) return -1;
    void *p = realloc(*arr, (size_t)ncap * elem);
    if (!p) return -1;
    *arr = p;
    *cap = ncap;
    return 0;
}

int cv_graph_add_value(cv_graph *g, const char *name, int h, int w, int c)
{
    if (grow((void **)&g->values, &g->cap_values, g->n_values, sizeof *g->values)) return -1;
    char *nm = strdup(name ? name : "");
    if (!nm) return -1;
    cv_value *v = &g->values[g->n_values];
    v->name = nm;
    v->h = h;
    v->w = w;
    v->c = c;
    return g->n_values++;
}

int cv_graph_add_tensor(cv_graph *g, const char *name, int rank, const int64_t *dims)
{
    if (rank < 0 || rank > 4) return -1;
    if (grow((void **)&g->tensors, &g->cap_tensors, g->n_tensors, sizeof *g->tensors)) return -1;
    char *nm = strdup(name ? name : "");
    if (!nm) return -1;
    cv_tensor *t = &g->tensors[g->n_tensors];
    memset(t, 0, sizeof *t);
    t->name = nm;
    t->rank = rank;
    for (int i = 0; i < 4; i++) t->dims[i] = i < rank ? dims[i] : 1;
    t->src = -1;
    return g->n_tensors++;
}

cv_node *cv_graph_add_node(cv_graph *g, int op, const char *name)
{
    if (grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes, sizeof *g->nodes)) return NULL;
    char *nm = strdup(name ? name : "");
    if (!nm) return NULL;
    cv_node *n = &g->nodes[g->n_nodes++];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->name = nm;
    n->out = -1;
    n->kh = n->kw = n->sh = n->sw = n->mult = 1;
    for (int i = 0; i < 4; i++) {
        n->in[i] = -1;
        n->w[i] = -1;
    }
    return n;
}

int64_t cv_tensor_elems(const cv_tensor *t)
{
    /* Dims come from files: a product past int64 saturates (and is then
     * refused by every limit) instead of overflowing. Negative dims count as 0. */
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++)
        if (t->dims[i] <= 0) return 0;
        else if (__builtin_mul_overflow(n, t->dims[i], &n)) return INT64_MAX;
    return n;
}

int64_t cv_graph_params(const cv_graph *g)
{
    int64_t n = 0;
    for (int i = 0; i < g->n_tensors; i++)
        if (!(g->tensors[i].flags & ECM_TF_DERIVED) && __builtin_add_overflow(n, cv_tensor_elems(&g->tensors[i]), &n))
            return INT64_MAX;
    return n;
}

void cv_graph_pick_gradcam(cv_graph *g)
{
    /* The app walks model.layers in order (nested models flattened) and keeps
     * the last Conv2D/DepthwiseConv2D; nodes are stored in that order. */
    g->gradcam_node = -1;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == ECM_OP_CONV2D || g->nodes[i].op == ECM_OP_DWCONV2D) g->gradcam_node = i;
}

void cv_graph_keep_f32_ends(cv_graph *g)
{
    /* Two marks per value, each computed in one pass (a walk per node was
     * quadratic in a chain of Dense layers):
     *   from_input[v]: v is the input or comes from it through elementwise
     *                  preprocessing only (a conv reading it is the stem);
     *   to_output[v]:  v reaches the model output through activations,
     *                  identities and reshapes only (a Dense writing it is the
     *                  classifier). */
    int nv = g->n_values;
    unsigned char *from_input = calloc((size_t)(nv ? nv : 1), 1), *to_output = calloc((size_t)(nv ? nv : 1), 1);
    int *producer = malloc((size_t)(nv ? nv : 1) * sizeof *producer);   /* [nv] node index or -1 */
    if (!from_input || !to_output || !producer) goto out;                /* all float16: still a valid model */
    for (int v = 0; v < nv; v++) producer[v] = -1;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].out >= 0 && g->nodes[i].out < nv) producer[g->nodes[i].out] = i;
    if (g->input_value >= 0 && g->input_value < nv) from_input[g->input_value] = 1;
    for (int i = 0; i < g->n_nodes; i++) {   /* nodes are in execution order */
        const cv_node *p = &g->nodes[i];
        if ((p->op == ECM_OP_RESCALE || p->op == ECM_OP_NORMALIZE || p->op == ECM_OP_ZEROPAD || p->op == ECM_OP_IDENTITY) &&
            p->in[0] >= 0 && p->in[0] < nv && p->out >= 0 && p->out < nv && from_input[p->in[0]])
            from_input[p->out] = 1;
    }
    for (int v = g->output_value, steps = 0; v >= 0 && v < nv && !to_output[v] && steps <= g->n_nodes; steps++) {
        to_output[v] = 1;
        int pi = producer[v];
        const cv_node *q = pi >= 0 ? &g->nodes[pi] : NULL;
        if (!q || q->n_in != 1 || (q->op != ECM_OP_ACTIVATION && q->op != ECM_OP_IDENTITY && q->op != ECM_OP_RESHAPE)) break;
        v = q->in[0];
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const cv_node *n = &g->nodes[i];
        int k = -1;
        if ((n->op == ECM_OP_CONV2D || n->op == ECM_OP_DWCONV2D) && n->in[0] >= 0 && n->in[0] < nv && from_input[n->in[0]])
            k = n->w[0];   /* the stem: reads the image through elementwise preprocessing only */
        else if (n->op == ECM_OP_DENSE && n->out >= 0 && n->out < nv && to_output[n->out])
            k = n->w[0];   /* the classifier */
        if (k >= 0 && k < g->n_tensors) g->tensors[k].to_f16 = 0;
    }
    /* The app's Grad-CAM layer: its raw output is the map's A, and its rounding
     * error goes straight into the heatmap (XGradCAM divides by its channel sums) */
    if (g->gradcam_node >= 0 && g->gradcam_node < g->n_nodes) {
        int k = g->nodes[g->gradcam_node].w[0];
        if (k >= 0 && k < g->n_tensors) g->tensors[k].to_f16 = 0;
    }
out:
    free(from_input);
    free(to_output);
    free(producer);
}

static int classes_of(const cv_graph *g)
{
    return g->output_value >= 0 ? g->values[g->output_value].c : 0;
}

/* ---- labels ------------------------------------------------------------------------ */

static void free_labels(char **labels, int n)
{
    for (int i = 0; i < n; i++) free(labels[i]);
    free(labels);
}

/* The whole labels file into a malloc'd buffer: a regular file (not a FIFO,
 * a device such as /dev/zero, or a directory) of at most CV_LABELS_MAX_BYTES. */
static char *read_labels_file(const char *path, size_t *len, cv_err *e)
{
    /* O_NONBLOCK: opening a FIFO for reading would wait for a writer */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        cv_fail(e, "%s: cannot open labels: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        cv_fail(e, "%s: cannot stat labels: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (S_ISDIR(st.st_mode) || !S_ISREG(st.st_mode)) {
        cv_fail(e, "%s: labels: %s", path, S_ISDIR(st.st_mode) ? "is a directory, not a file of class names"
                                                                : "not a regular file");
        close(fd);
        return NULL;
    }
    if ((uint64_t)st.st_size > CV_LABELS_MAX_BYTES) {
        cv_fail(e, "%s: labels file of %lld bytes exceeds the limit of %u MiB", path, (long long)st.st_size,
                CV_LABELS_MAX_BYTES >> 20);
        close(fd);
        return NULL;
    }
    /* Read up to one byte more than the limit: a file growing while read is
     * still bounded. */
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        cv_fail(e, "out of memory");
        close(fd);
        return NULL;
    }
    for (;;) {
        if (n == cap) {
            if (cap > CV_LABELS_MAX_BYTES) break;
            size_t ncap = cap * 2 > (size_t)CV_LABELS_MAX_BYTES + 1 ? (size_t)CV_LABELS_MAX_BYTES + 1 : cap * 2;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                free(buf);
                close(fd);
                cv_fail(e, "out of memory");
                return NULL;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            cv_fail(e, "%s: cannot read labels: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return NULL;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    if (n > CV_LABELS_MAX_BYTES) {
        cv_fail(e, "%s: labels file exceeds the limit of %u MiB", path, CV_LABELS_MAX_BYTES >> 20);
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

/* One label per line of text[0, len): blank lines skipped, "\r\n" accepted.
 * Fills labels[0, k) and returns 0; -1 with a message naming path otherwise. */
static int parse_labels(const char *path, const char *text, size_t len, char **labels, int k, cv_err *e)
{
    size_t at = 0;
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) at = 3;   /* a UTF-8 byte order mark: not part of the name */
    const char *nul = memchr(text, 0, len);
    int n = 0, line = 1;
    if (nul) {
        for (const char *p = text; p < nul; p++) line += *p == '\n';
        return cv_fail(e, "%s: line %d: NUL byte in a label", path, line);
    }
    while (at < len) {
        const char *s = text + at, *nl = memchr(s, '\n', len - at);
        size_t ll = nl ? (size_t)(nl - s) : len - at;
        at += ll + (nl ? 1 : 0);
        while (ll && s[ll - 1] == '\r') ll--;
        if (ll > 1023) return cv_fail(e, "%s: line %d: label longer than 1023 bytes", path, line);
        line++;
        if (ll == 0) continue;                  /* blank lines (e.g. trailing) are skipped */
        if (n == k) return cv_fail(e, "%s: more labels for a model with %d classes", path, k);
        if (!(labels[n] = malloc(ll + 1))) return cv_fail(e, "out of memory");
        memcpy(labels[n], s, ll);
        labels[n++][ll] = 0;
    }
    if (n != k) return cv_fail(e, "%s: fewer labels (%d) for a model with %d classes", path, n, k);
    return 0;
}

int cv_graph_set_labels(cv_graph *g, const char *labels_path, cv_err *e)
{
    int k = classes_of(g);
    if (k <= 0) return cv_fail(e, "model has no output classes");
    if (k > ECM_MAX_LABELS) return cv_fail(e, "%d labels (1..%d allowed)", k, ECM_MAX_LABELS);
    char **labels = calloc((size_t)k, sizeof *labels);
    if (!labels) return cv_fail(e, "out of memory");
    if (labels_path) {
        size_t len = 0;
        char *text = read_labels_file(labels_path, &len, e);
        int r = text ? parse_labels(labels_path, text, len, labels, k, e) : -1;
        free(text);
        if (r) {
            free_labels(labels, k);
            return -1;
        }
    } else {
        for (int n = 0; n < k; n++) {
            char buf[32];
            snprintf(buf, sizeof buf, "class_%d", n);
            if (!(labels[n] = strdup(buf))) {
                free_labels(labels, k);
                return cv_fail(e, "out of memory");
            }
        }
    }
    free_labels(g->labels, g->n_labels);
    g->labels = labels;
    g->n_labels = k;
    return 0;
}

/* ---- the loader's checks ---------------------------------------------------------------
 * Mirrors engine/model.c (ec_header_parse, ec_read_values/tensors/nodes,
 * ec_check_node, the model checks in ec_model_from_memory) for what a graph
 * built from a Keras config can get wrong, with the same messages. */

#define NODE_FAIL(i, fmt, ...) cv_fail(e, "node %d (%s): " fmt, (i), g->nodes[i].name, __VA_ARGS__)

int cv_graph_check(const cv_graph *g, cv_err *e)
{
    if (g->n_nodes < 1 || g->n_nodes > ECM_MAX_NODES)
        return cv_fail(e, "%d nodes (1..%d allowed)", g->n_nodes, ECM_MAX_NODES);
    if (g->n_values < 2 || g->n_values > ECM_MAX_NODES + 1)
        return cv_fail(e, "%d values (2..%d allowed)", g->n_values, ECM_MAX_NODES + 1);
    if (g->n_tensors > ECM_MAX_W * ECM_MAX_NODES)
        return cv_fail(e, "%d tensors (at most %d allowed)", g->n_tensors, ECM_MAX_W * ECM_MAX_NODES);
    if (g->n_labels < 1 || g->n_labels > ECM_MAX_LABELS)
        return cv_fail(e, "%d labels (1..%d allowed)", g->n_labels, ECM_MAX_LABELS);
    for (int i = 0; i < g->n_values; i++) {
        const cv_value *v = &g->values[i];
        if (v->h < 1 || v->w < 1 || v->c < 1 || v->h > ECM_MAX_DIM || v->w > ECM_MAX_DIM || v->c > ECM_MAX_DIM)
            return cv_fail(e, "value %d (%s): shape %ux%ux%u out of range", i, v->name, (unsigned)v->h, (unsigned)v->w,
                           (unsigned)v->c);
        if ((int64_t)v->h * v->w * v->c >= ECM_MAX_VALUE_ELEMS)
            return cv_fail(e, "value %d (%s): %ux%ux%u exceeds the activation limit of %lld elements", i, v->name,
                           (unsigned)v->h, (unsigned)v->w, (unsigned)v->c, (long long)ECM_MAX_VALUE_ELEMS);
    }
    for (int i = 0; i < g->n_tensors; i++) {
        const cv_tensor *t = &g->tensors[i];
        if (t->rank < 0 || t->rank > 4) return cv_fail(e, "tensor %d (%s): rank %u", i, t->name, (unsigned)t->rank);
        int64_t elems = 1;
        for (int d = 0; d < t->rank; d++) {
            if (t->dims[d] < 1 || t->dims[d] > INT32_MAX)
                return cv_fail(e, "tensor %d (%s): dimension %d is %lld", i, t->name, d, (long long)t->dims[d]);
            elems *= t->dims[d];   /* < 2^31 so far, times < 2^31: fits */
            if (elems >= ECM_MAX_TENSOR_ELEMS) return cv_fail(e, "tensor %d (%s): 2^31 elements or more", i, t->name);
        }
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const cv_node *n = &g->nodes[i];
        const int geo[9] = { n->kh, n->kw, n->sh, n->sw, n->pt, n->pb, n->pl, n->pr, n->mult };
        for (int k = 0; k < 9; k++)
            if (geo[k] < 0 || geo[k] > ECM_MAX_DIM) return NODE_FAIL(i, "kernel/stride/padding field %d is %u", k, (unsigned)geo[k]);
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const cv_node *n = &g->nodes[i];
        switch (n->op) {
        case ECM_OP_CONV2D:
        case ECM_OP_DWCONV2D:
            if (n->kh < 1 || n->kw < 1 || n->sh < 1 || n->sw < 1)
                return NODE_FAIL(i, "kernel %dx%d stride %dx%d out of range", n->kh, n->kw, n->sh, n->sw);
            if (n->pt >= n->kh || n->pb >= n->kh || n->pl >= n->kw || n->pr >= n->kw)
                return NODE_FAIL(i, "padding %d/%d/%d/%d out of range for a %dx%d kernel", n->pt, n->pb, n->pl, n->pr,
                                 n->kh, n->kw);
            if (n->op == ECM_OP_DWCONV2D && n->in[0] >= 0 && n->in[0] < g->n_values &&
                (int64_t)g->values[n->in[0]].c * n->mult > ECM_MAX_DIM)
                return NODE_FAIL(i, "%d x %d output channels", g->values[n->in[0]].c, n->mult);
            break;
        case ECM_OP_BATCHNORM:
            if (!(n->f0 >= 0) || !isfinite(n->f0))
                return NODE_FAIL(i, "epsilon %g is not a finite non-negative number", n->f0);
            break;
        case ECM_OP_RESCALE:
            if (!isfinite(n->f0) || !isfinite(n->f1)) return NODE_FAIL(i, "scale %g / offset %g not finite", n->f0, n->f1);
            break;
        default:
            break;
        }
    }
    if (g->input_value < 0 || g->input_value >= g->n_values || g->output_value < 0 || g->output_value >= g->n_values)
        return cv_fail(e, "input value %d / output value %d out of range", g->input_value, g->output_value);
    const cv_value *vi = &g->values[g->input_value], *vo = &g->values[g->output_value];
    if (vi->c != 3) return cv_fail(e, "model input %s has %d channels (RGB needs 3)", vi->name, vi->c);
    if (g->input_value == g->output_value) return cv_fail(e, "model output is its input");
    if (vo->h != 1 || vo->w != 1 || vo->c != g->n_labels)
        return cv_fail(e, "output %s is %dx%dx%d, expected 1x1x%d (one per label)", vo->name, vo->h, vo->w, vo->c,
                       g->n_labels);
    return 0;
}

#undef NODE_FAIL

/* ---- activation memory ------------------------------------------------------------------ */

/* Ops that may write their output over an input that dies there (plan.c's
 * ec_inplace_op, taken more generously: a lower bound must not exceed the plan). */
static int inplace_op(int op)
{
    return op == ECM_OP_ACTIVATION || op == ECM_OP_BATCHNORM || op == ECM_OP_RESCALE || op == ECM_OP_NORMALIZE ||
           op == ECM_OP_ADD || op == ECM_OP_MUL;
}

/* The buffer value v lives in: parent links to the value that owns it (path
 * halving keeps the chains short). */
static int owner(int *parent, int v)
{
    while (parent[v] != v) {
        parent[v] = parent[parent[v]];
        v = parent[v];
    }
    return v;
}

uint64_t cv_graph_activation_bytes(const cv_graph *g)
{
    int nv = g->n_values, nn = g->n_nodes;
    if (nv <= 0 || g->input_value < 0 || g->input_value >= nv) return 0;
    /* start/end: times (node index + 1; 0 = the input) an owned buffer is alive */
    int *parent = malloc((size_t)nv * sizeof *parent);
    int64_t *start = malloc((size_t)nv * sizeof *start), *end = malloc((size_t)nv * sizeof *end);
    int64_t *delta = calloc((size_t)nn + 3, sizeof *delta);
    uint64_t peak = 0;
    if (!parent || !start || !end || !delta) goto out;   /* no estimate: the session still checks */
    for (int v = 0; v < nv; v++) parent[v] = v, start[v] = -1, end[v] = -1;
    start[g->input_value] = end[g->input_value] = 0;
    /* aliases first (their reads keep the owner alive), then the last reads */
    for (int i = 0; i < nn; i++) {
        const cv_node *n = &g->nodes[i];
        if (n->out < 0 || n->out >= nv || n->n_in < 1 || n->in[0] < 0 || n->in[0] >= nv) goto out;
        if (n->op == ECM_OP_IDENTITY || n->op == ECM_OP_RESHAPE) parent[n->out] = owner(parent, n->in[0]);
        else start[n->out] = end[n->out] = i + 1;
    }
    for (int i = 0; i < nn; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++) {
            int v = g->nodes[i].in[k];
            if (v < 0 || v >= nv) goto out;
            int b = owner(parent, v);
            if (end[b] < i + 1) end[b] = i + 1;
        }
    if (g->output_value >= 0 && g->output_value < nv) end[owner(parent, g->output_value)] = nn + 1;
    /* in place: an elementwise output takes over an input buffer of its size that
     * dies at this node; the taken buffer then lives as long as the output */
    for (int i = 0; i < nn; i++) {
        const cv_node *n = &g->nodes[i];
        if (!inplace_op(n->op) || owner(parent, n->out) != n->out) continue;
        const cv_value *y = &g->values[n->out];
        for (int k = 0; k < n->n_in; k++) {
            int b = owner(parent, n->in[k]);
            const cv_value *x = &g->values[n->in[k]];
            if (end[b] != i + 1 || (int64_t)x->h * x->w * x->c != (int64_t)y->h * y->w * y->c || b == n->out) continue;
            if (end[n->out] > end[b]) end[b] = end[n->out];
            start[n->out] = end[n->out] = -1;
            parent[n->out] = b;   /* and with it the output's aliases */
            break;
        }
    }
    /* banded pairs (plan.c): a 1x1 stride-1 conv that alone reads what a 3x3
     * stride-1 conv wrote (through in-place BN and activation) may run with it in
     * row bands, that buffer never allocated; taken generously again: dropped */
    for (int i = 0; i < nn; i++) {
        const cv_node *n = &g->nodes[i];
        if (n->op != ECM_OP_CONV2D || n->n_in != 1 || n->kh != 1 || n->kw != 1 || n->sh != 1 || n->sw != 1 || n->pt ||
            n->pb || n->pl || n->pr)
            continue;
        int b = owner(parent, n->in[0]);
        if (start[b] < 1 || end[b] != i + 1) continue;
        const cv_node *w = &g->nodes[start[b] - 1];
        if (w->op == ECM_OP_CONV2D && w->kh == 3 && w->kw == 3 && w->sh == 1 && w->sw == 1) start[b] = end[b] = -1;
    }
    for (int v = 0; v < nv; v++) {
        if (parent[v] != v || start[v] < 0) continue;
        const cv_value *x = &g->values[v];
        delta[start[v]] += (int64_t)x->h * x->w * x->c * 4;
        delta[end[v] + 1] -= (int64_t)x->h * x->w * x->c * 4;
    }
    int64_t live = 0;
    for (int t = 0; t <= nn + 1; t++) {
        live += delta[t];
        if (live > (int64_t)peak) peak = (uint64_t)live;
    }
out:
    free(parent);
    free(start);
    free(end);
    free(delta);
    return peak;
}
