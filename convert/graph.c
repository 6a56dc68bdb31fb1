/* graph.c - the converter's graph IR: growable tables, params, Grad-CAM target, labels. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->dims[i];
    return n;
}

int64_t cv_graph_params(const cv_graph *g)
{
    int64_t n = 0;
    for (int i = 0; i < g->n_tensors; i++)
        if (!(g->tensors[i].flags & ECM_TF_DERIVED)) n += cv_tensor_elems(&g->tensors[i]);
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
    /* producer[v] = node index or -1 */
    int *producer = malloc((size_t)(g->n_values ? g->n_values : 1) * sizeof *producer);
    if (!producer) return;                       /* all float16: still a valid model */
    for (int v = 0; v < g->n_values; v++) producer[v] = -1;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].out >= 0 && g->nodes[i].out < g->n_values) producer[g->nodes[i].out] = i;
    for (int i = 0; i < g->n_nodes; i++) {
        cv_node *n = &g->nodes[i];
        int k = -1;
        if (n->op == ECM_OP_CONV2D || n->op == ECM_OP_DWCONV2D) {
            /* The stem: reads the image through elementwise preprocessing only. */
            int v = n->in[0];
            while (v >= 0 && producer[v] >= 0) {
                const cv_node *p = &g->nodes[producer[v]];
                if (p->op != ECM_OP_RESCALE && p->op != ECM_OP_NORMALIZE && p->op != ECM_OP_ZEROPAD &&
                    p->op != ECM_OP_IDENTITY)
                    break;
                v = p->in[0];
            }
            if (v == g->input_value) k = n->w[0];
        } else if (n->op == ECM_OP_DENSE) {
            /* The classifier: its output reaches the model output through
             * activations and identities only. */
            int v = n->out;
            for (int j = i + 1; j < g->n_nodes && v != g->output_value; j++) {
                const cv_node *q = &g->nodes[j];
                if (q->in[0] == v && q->n_in == 1 &&
                    (q->op == ECM_OP_ACTIVATION || q->op == ECM_OP_IDENTITY || q->op == ECM_OP_RESHAPE))
                    v = q->out;
            }
            if (v == g->output_value) k = n->w[0];
        }
        if (k >= 0 && k < g->n_tensors) g->tensors[k].to_f16 = 0;
    }
    /* The app's Grad-CAM layer: its raw output is the map's A, and its rounding
     * error goes straight into the heatmap (XGradCAM divides by its channel sums) */
    if (g->gradcam_node >= 0 && g->gradcam_node < g->n_nodes) {
        int k = g->nodes[g->gradcam_node].w[0];
        if (k >= 0 && k < g->n_tensors) g->tensors[k].to_f16 = 0;
    }
    free(producer);
}

static int classes_of(const cv_graph *g)
{
    return g->output_value >= 0 ? g->values[g->output_value].c : 0;
}

int cv_graph_set_labels(cv_graph *g, const char *labels_path, cv_err *e)
{
    int k = classes_of(g);
    if (k <= 0) return cv_fail(e, "model has no output classes");
    char **labels = calloc((size_t)k, sizeof *labels);
    if (!labels) return cv_fail(e, "out of memory");
    int n = 0;
    if (labels_path) {
        FILE *f = fopen(labels_path, "rb");
        if (!f) {
            free(labels);
            return cv_fail(e, "%s: cannot open labels: %s", labels_path, strerror(errno));
        }
        char line[1024];
        int bad = 0;
        while (fgets(line, sizeof line, f)) {
            size_t len = strlen(line);
            if (len == sizeof line - 1 && line[len - 1] != '\n') { bad = 1; break; }
            while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
            if (len == 0) continue;             /* blank lines (e.g. trailing) are skipped */
            if (n == k) { n++; break; }
            if (!(labels[n++] = strdup(line))) { bad = 2; break; }
        }
        fclose(f);
        if (bad || n != k) {
            for (int i = 0; i < k; i++) free(labels[i]);
            free(labels);
            if (bad == 1) return cv_fail(e, "%s: label line longer than 1023 bytes", labels_path);
            if (bad == 2) return cv_fail(e, "out of memory");
            return cv_fail(e, "%s: %s labels for a model with %d classes", labels_path,
                           n > k ? "more" : "fewer", k);
        }
    } else {
        for (n = 0; n < k; n++) {
            char buf[32];
            snprintf(buf, sizeof buf, "class_%d", n);
            if (!(labels[n] = strdup(buf))) {
                for (int i = 0; i < n; i++) free(labels[i]);
                free(labels);
                return cv_fail(e, "out of memory");
            }
        }
    }
    for (int i = 0; i < g->n_labels; i++) free(g->labels[i]);
    free(g->labels);
    g->labels = labels;
    g->n_labels = k;
    return 0;
}
