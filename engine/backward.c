/* backward.c - planning the explanations' backward pass (gradcam.h), once per
 * session.
 *
 * What the backward of each op reads from the forward pass:
 *   activation        its input x (act'(x)), or its output y for softmax
 *   conv/dwconv/dense with their own activation (the SE convs, a dense head):
 *                     the pre-activation, which no forward buffer holds: always
 *                     recomputed (a "pre-activation id" >= n_values)
 *   multiply          the other operand
 *   everything else   nothing (conv data gradients need only the weights)
 *
 * Keep or recompute. The path from the target A to the output is cut into
 * groups at its cut values: values every path from A to the output passes
 * through, that the fused forward writes anyway (block outputs, the value
 * between two fused steps). A group whose backward reads only such values
 * (the head: top_bn's output for the swish, the softmax output) keeps them:
 * they are pinned in the forward plan, as the head-only Grad-CAM always did,
 * at no extra cost. A group that reads values the fused forward never writes
 * (a block's BN outputs, inside its conv + BN + swish steps) or more bytes
 * than its input, is recomputed: only its input is pinned (the checkpoint),
 * and in the backward its forward runs again, into short-lived buffers,
 * right before its own backward. Adjacent recomputed groups merge when the
 * value between them is larger than the first one's input (an MBConv block
 * without a residual: checkpoint its narrow input, not its expanded middle).
 * Each node is recomputed at most once, so the backward costs about a
 * forward (the data gradients) plus the recomputed part of one (the
 * projection convs and everything before A are not rerun). Within a bound
 * (ec_session_options.cam_keep_bytes, 11 MiB by default), recompute groups
 * that read no pre-activation of a conv with its own activation are kept
 * instead, the most recompute FLOPs per pinned byte first (ec_bw_keep): their
 * BN outputs are pinned, so the forward writes them.
 *
 * The memory plan places gradients, recomputed values and temporaries in the
 * arena's dead space with their lifetimes: a checkpoint dies when its block's
 * backward is done, elementwise backward ops reuse their input gradient's
 * buffer in place, and a BN's scale folds into the activation's backward (or
 * a conv's transposed weights) instead of a pass of its own.
 * EfficientNetV2-S at 300 px (the dermatology fixture), arena = forward and
 * backward together:
 *   top_conv (default)  keeps A and top_bn's output (1.0 MB), as the head-only
 *                       Grad-CAM did; arena 6.5 MB, the forward's own
 *   top_activation      keeps A (0.5 MB); arena 6.5 MB
 *   block4f_add         the head kept (top_bn's output, 0.5 MB), the 24 MBConv
 *                       groups after A recomputed; 4.2 MB pinned, arena 9.0 MB
 *   stem_activation     36 of 50 groups recomputed from 11.8 MB of block inputs;
 *                       kept: 10.4 MB of pre-activations (stage 3's four blocks,
 *                       1.1-1.5 MB each at ~290 MFLOP of recompute per MB,
 *                       block2b's 4.3 MB at ~220, the head); the rest needs
 *                       nothing (projections); arena 29.2 MB (24.0 recomputing
 *                       all of them), its peak in the backward of block5i (the
 *                       last 19x19x960 block: its recomputed pre-activations,
 *                       its gradients, and every value pinned before it)
 *   input               arena 24.8 MB (the stem's 150x150 checkpoints are not
 *                       needed: the rescaled input is)
 * Keeping everything the backward reads instead would pin ~3 full tensors per
 * block (~100 MB for the stem target); recomputing costs about 0.7 of a forward
 * pass (no projection conv is rerun). */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gradcam.h"

static size_t ec_align64(size_t n) { return (n + EC_ARENA_ALIGN - 1) & ~(size_t)(EC_ARENA_ALIGN - 1); }

void ec_gradcam_plan_free(ec_gradcam_plan *g)
{
    free(g->virt_of);
    free(g->on);
    free(g->pin);
    free(g->pin_last);
    free(g->steps);
    free(g->bufs);
    free(g->gbuf);
    free(g->rbuf);
    free(g->alias);
    free(g->gptr);
    free(g->bval);
    free(g->tptr);
    memset(g, 0, sizeof *g);
}

/* ---- targets ------------------------------------------------------------------------------------
 * Keras's rank of each value: the engine stores every value as h x w x c, but a
 * GlobalAveragePooling2D without keepdims, a Flatten and a Dense after them are
 * 2-D. A Reshape is taken as 4-D when its output has more than one pixel or
 * its input was 2-D (the SE block's Reshape to (1, 1, C)); a Flatten's (1, 1, N)
 * from a map is 2-D. */
static void ec_value_rank4(const ec_model *m, unsigned char *r4)
{
    for (int v = 0; v < m->n_values; v++) r4[v] = 0;
    r4[m->input] = 1;
    for (int i = 0; i < m->n_nodes; i++) {
        const ec_node *n = &m->nodes[i];
        const ec_value *vo = &m->values[n->out];
        unsigned char r = 0;
        for (int k = 0; k < n->n_in; k++) r |= r4[n->in[k]];
        if (n->op == ECM_OP_GAP) r = (n->flags & ECM_NF_KEEPDIMS) != 0;
        else if (n->op == ECM_OP_RESHAPE) r = vo->h * vo->w > 1 || !r4[n->in[0]];
        r4[n->out] = r;
    }
}

/* anc[v] = 1: the model output depends on value v */
static void ec_output_ancestors(const ec_model *m, unsigned char *anc)
{
    memset(anc, 0, (size_t)m->n_values);
    anc[m->output] = 1;
    for (int i = m->n_nodes - 1; i >= 0; i--)
        if (anc[m->nodes[i].out])
            for (int k = 0; k < m->nodes[i].n_in; k++) anc[m->nodes[i].in[k]] = 1;
}

int ec_model_cam_target(const ec_model *m, int node, char *why, size_t cap)
{
    if (!m || node < 0 || node >= m->n_nodes) {
        if (why) snprintf(why, cap, "no such layer");
        return 0;
    }
    unsigned char *r4 = malloc((size_t)m->n_values * 2);
    if (!r4) {
        if (why) snprintf(why, cap, "out of memory");
        return 0;
    }
    unsigned char *anc = r4 + m->n_values;
    ec_value_rank4(m, r4);
    ec_output_ancestors(m, anc);
    const ec_node *n = &m->nodes[node];
    const ec_value *v = &m->values[n->out];
    int ok = 0;
    if (!r4[n->out]) {
        if (why)
            snprintf(why, cap, "layer %s has a 2-D output (%d values): a class activation map needs a layer with a "
                               "4-D output (batch, height, width, channels)", n->name, v->h * v->w * v->c);
    } else if (!anc[n->out] || n->out == m->output) {
        if (why) snprintf(why, cap, "the model output does not depend on layer %s", n->name);
    } else {
        ok = 1;
    }
    free(r4);
    return ok;
}

/* ---- the plan ------------------------------------------------------------------------------------ */

typedef struct {
    int in;                       /* the input value (a cut; A for the first) */
    int p0, p1;                   /* path positions (p0, p1]: its nodes */
    int recompute;
    int needs_in;
} ec_group;

typedef struct {                  /* prepare's working arrays */
    int nv, nn, P;
    int *path;                    /* [nn] path node ids, forward order */
    int *pos;                     /* [nn] position in path, -1 */
    int *reader;                  /* [nv] the last node reading the value */
    int *lastuse;                 /* [nv] the last path node reading it, -1 */
    unsigned char *mat;           /* [nv] the fused forward writes it */
    unsigned char *open;          /* [nv] */
    int *bnd, *bpos;              /* [P + 1] boundaries (cut values) and their producers' positions */
    ec_group *grp;                /* [P + 1] */
    unsigned char *want;          /* [n_ids] recomputed */
    unsigned char *need;          /* [n_ids] read by a backward node step */
    unsigned char *done;          /* [nn] recompute: node covered by a step */
    unsigned char *folded;        /* [nn] BN folded into another node's backward */
    int *bnfold;                  /* [nn] conv/dwconv: the BN after it folded in, -1 */
    int *stack;                   /* [n_ids] */
} ec_bw_work;

static void ec_bw_work_free(ec_bw_work *w)
{
    free(w->path), free(w->pos), free(w->reader), free(w->lastuse), free(w->mat), free(w->open);
    free(w->bnd), free(w->bpos), free(w->grp), free(w->want), free(w->need), free(w->done), free(w->folded);
    free(w->bnfold), free(w->stack);
}

static size_t ec_value_bytes(const ec_model *m, int v)
{
    const ec_value *x = &m->values[v];
    return (size_t)x->h * x->w * x->c * sizeof(float);
}

/* sole consumer of v, or -1 */
static int ec_sole(const ec_model *m, const ec_bw_work *w, int v) { return m->n_uses[v] == 1 ? w->reader[v] : -1; }

static int ec_is_mm(int op) { return op == ECM_OP_CONV2D || op == ECM_OP_DWCONV2D || op == ECM_OP_DENSE; }

/* The values the fused forward writes (plan.c step 1 with A pinned): a conv /
 * dwconv / dense output fused into its sole-consumer BN is not, nor that BN's
 * output when a sole-consumer activation is fused too. Pinning any value
 * written anyway changes no fusion, so the checkpoints chosen among these
 * leave the forward's steps as they are. */
static void ec_bw_materialized(const ec_model *m, const ec_gradcam_plan *g, int keep_all, ec_bw_work *w)
{
    memset(w->mat, 1, (size_t)w->nv);
    if (keep_all) return;
    for (int i = 0; i < w->nn; i++) {
        const ec_node *n = &m->nodes[i];
        if (!ec_is_mm(n->op) || n->act != ECM_ACT_LINEAR || n->out == g->A || n->out == m->output) continue;
        int c = ec_sole(m, w, n->out);
        if (c < 0 || m->nodes[c].op != ECM_OP_BATCHNORM) continue;
        w->mat[n->out] = 0;
        int v = m->nodes[c].out, a = ec_sole(m, w, v);
        if (v != g->A && v != m->output && a >= 0 && m->nodes[a].op == ECM_OP_ACTIVATION &&
            m->nodes[a].act != ECM_ACT_SOFTMAX)
            w->mat[v] = 0;
    }
}

/* The ids node i's backward reads (at most ECM_MAX_IN): see the top of the file. */
static int ec_bw_reads(const ec_model *m, const ec_gradcam_plan *g, int i, int *out)
{
    const ec_node *n = &m->nodes[i];
    int k = 0;
    switch (n->op) {
    case ECM_OP_ACTIVATION:
        if (n->act == ECM_ACT_SOFTMAX) out[k++] = n->out;
        else if (n->act != ECM_ACT_LINEAR) out[k++] = n->in[0];
        break;
    case ECM_OP_CONV2D: case ECM_OP_DWCONV2D: case ECM_OP_DENSE:
        if (n->act == ECM_ACT_SOFTMAX) out[k++] = n->out;
        else if (n->act != ECM_ACT_LINEAR) out[k++] = g->virt_of[i];
        break;
    case ECM_OP_MUL:
        for (int j = 0; j < 2; j++)
            if (g->on[n->in[j]] && (k == 0 || out[0] != n->in[1 - j])) out[k++] = n->in[1 - j];
        break;
    default:
        break;
    }
    return k;
}

/* The target and the path: on[] and the path's nodes in forward order. */
static ec_status ec_bw_target(const ec_model *m, const ec_session_options *opt, ec_gradcam_plan *g)
{
    const char *name = opt->cam_layer;
    if (name) {
        int node = ec_model_find_node(m, name);
        if (node < 0 && (!strcmp(name, "input") || !strcmp(name, m->values[m->input].name))) {
            g->target = -1;
            g->A = m->input;
            g->name = "input";
            return EC_OK;
        }
        if (node < 0)
            return ec_fail(EC_ERR_ARG, "grad-cam: the model has no layer named %.200s (effcam info lists them; "
                                       "'input' is the model input)", name);
        char why[300];
        if (!ec_model_cam_target(m, node, why, sizeof why)) return ec_fail(EC_ERR_ARG, "grad-cam: %s", why);
        g->target = node;
    } else {
        g->target = m->gradcam_node;
        if (g->target < 0) return ec_fail(EC_ERR_UNSUPPORTED, "grad-cam: the model has no target layer (set cam_layer)");
    }
    g->A = m->nodes[g->target].out;
    g->name = m->nodes[g->target].name;
    return EC_OK;
}

/* Cut values along the path, in order: after node path[j], v = its output is a
 * cut when it is the only value still to be read by later path nodes (no edge
 * jumps over it); a group boundary when the fused forward writes it too. */
static int ec_bw_boundaries(const ec_model *m, const ec_gradcam_plan *g, ec_bw_work *w)
{
    int nb = 0, open = 0;
    w->bnd[nb] = g->A, w->bpos[nb++] = -1;
    memset(w->open, 0, (size_t)w->nv);
    if (w->lastuse[g->A] >= 0) w->open[g->A] = 1, open = 1;
    for (int j = 0; j < w->P; j++) {
        const ec_node *n = &m->nodes[w->path[j]];
        for (int k = 0; k < n->n_in; k++) {
            int u = n->in[k];
            if (w->open[u] && w->lastuse[u] == w->path[j]) w->open[u] = 0, open--;
        }
        int v = n->out;
        if (w->lastuse[v] > w->path[j]) w->open[v] = 1, open++;
        int cut = v == m->output || (w->open[v] && open == 1);
        if (cut && (w->mat[v] || v == m->output)) w->bnd[nb] = v, w->bpos[nb++] = j;
    }
    return nb;
}

/* Marks what recompute group gi must produce (w->want) from its input. */
static ec_status ec_bw_closure(const ec_model *m, const ec_gradcam_plan *g, ec_bw_work *w, const ec_group *gr)
{
    int sp = 0;
    for (int j = gr->p0 + 1; j <= gr->p1; j++) {
        int r[ECM_MAX_IN], nr = ec_bw_reads(m, g, w->path[j], r);
        for (int k = 0; k < nr; k++) {
            int v = r[k];
            if (v < w->nv && (v == gr->in || g->pin[v] || v == m->output || !g->on[v])) continue;
            if (!w->want[v]) w->want[v] = 1, w->stack[sp++] = v;
        }
    }
    while (sp > 0) {
        int v = w->stack[--sp], node;
        if (v >= w->nv) {
            for (node = 0; node < w->nn && g->virt_of[node] != v; node++) {}
        } else {
            node = m->producer[v];
        }
        if (node < 0 || node >= w->nn || w->pos[node] <= gr->p0 || w->pos[node] > gr->p1)
            return ec_fail(EC_ERR_INTERNAL, "grad-cam: cannot recompute %s from %s",
                           v < w->nv ? m->values[v].name : "a pre-activation", m->values[gr->in].name);
        const ec_node *n = &m->nodes[node];
        int nin = v >= w->nv ? 1 : n->n_in;   /* a pre-activation reads the conv's input only */
        for (int k = 0; k < nin; k++) {
            int u = n->in[k];
            if (u == gr->in || g->pin[u] || u == m->output || !g->on[u] || w->want[u]) continue;
            w->want[u] = 1;
            w->stack[sp++] = u;
        }
    }
    return EC_OK;
}

/* FLOPs to recompute value v (a BN output the fused forward never writes): the
 * conv (or dwconv) feeding that BN; 0 for anything else. */
static double ec_bw_recompute_flops(const ec_model *m, int v)
{
    const int bn = m->producer[v];
    if (bn < 0 || m->nodes[bn].op != ECM_OP_BATCHNORM) return 0;
    const int cv = m->producer[m->nodes[bn].in[0]];
    if (cv < 0 || !ec_is_mm(m->nodes[cv].op)) return 0;
    const ec_node *n = &m->nodes[cv];
    const ec_value *x = &m->values[n->in[0]], *y = &m->values[n->out];
    const double cin = n->op == ECM_OP_DWCONV2D ? 1.0 : (double)x->c;
    return 2.0 * y->h * y->w * y->c * n->kh * n->kw * cin;
}

/* Keep instead of recompute, within budget bytes (the session's cam_keep_bytes,
 * EC_BW_KEEP_BYTES by default): a recompute group whose backward reads only
 * values (no pre-activation of a conv with its own activation, which no forward
 * step writes) can have them pinned instead: the forward then writes each BN
 * output it reads (plan.c fuses an activation into its conv only when the BN
 * output is not pinned, and a Winograd conv into the 1x1 conv after it only
 * when its output goes straight there), and its recompute goes. Groups are
 * taken by recompute FLOPs per pinned byte, highest first, while the pinned
 * bytes fit. */
static void ec_bw_keep(const ec_model *m, const ec_gradcam_plan *g, ec_bw_work *w, int ng, size_t budget)
{
    size_t left = budget;
    for (;;) {
        int best = -1;
        double best_r = 0;
        size_t best_b = 0;
        for (int k = 0; k < ng; k++) {
            const ec_group *gr = &w->grp[k];
            if (!gr->recompute) continue;
            size_t bytes = 0;
            double flops = 0;
            int ok = 1;
            for (int j = gr->p0 + 1; j <= gr->p1 && ok; j++) {
                int r[ECM_MAX_IN], nr = ec_bw_reads(m, g, w->path[j], r);
                for (int q = 0; q < nr && ok; q++) {
                    const int v = r[q];
                    if (v >= w->nv) ok = 0;
                    else if (v != m->output && !g->pin[v] && g->on[v]) {
                        bytes += ec_value_bytes(m, v);
                        if (!w->mat[v]) flops += ec_bw_recompute_flops(m, v);
                    }
                }
            }
            if (!ok || bytes == 0 || bytes > left || flops <= 0) continue;
            const double r = flops / (double)bytes;
            if (best < 0 || r > best_r) best = k, best_r = r, best_b = bytes;
        }
        if (best < 0) return;
        ec_group *gr = &w->grp[best];
        gr->recompute = 0;
        left -= best_b;
        for (int j = gr->p0 + 1; j <= gr->p1; j++) {   /* the forward writes them now: the pins below keep them */
            int r[ECM_MAX_IN], nr = ec_bw_reads(m, g, w->path[j], r);
            for (int q = 0; q < nr; q++) w->mat[r[q]] = 1;
        }
    }
}

static int ec_bw_push(ec_gradcam_plan *g, const ec_bw_step *st)
{
    g->steps[g->n_steps] = *st;
    return g->n_steps++;
}

static ec_bw_step ec_bw_step_new(int kind, int node)
{
    ec_bw_step s;
    memset(&s, 0, sizeof s);
    s.kind = kind, s.node = node, s.z = -1, s.fold = -1, s.dy = -1, s.tmp = -1;
    for (int k = 0; k < ECM_MAX_IN; k++) s.dx[k] = -1;
    s.fwd.bn = s.fwd.actn = -1;
    return s;
}

/* The recompute steps of group gr (the forward's fusion where an intermediate
 * is not read: conv + BN into the BN's output, + the activation when the BN's
 * output is not read either). The steps' conv algorithms come from the
 * forward plan later (ec_gradcam_finish). */
static void ec_bw_recompute_steps(const ec_model *m, ec_gradcam_plan *g, ec_bw_work *w, const ec_group *gr)
{
    for (int j = gr->p0 + 1; j <= gr->p1; j++) {
        int i = w->path[j];
        const ec_node *n = &m->nodes[i];
        int vo = n->out, zv = g->virt_of[i];
        int want_z = zv >= 0 && w->want[zv], want_o = w->want[vo];
        if (w->done[i] || (!want_z && !want_o)) continue;
        if (n->op == ECM_OP_IDENTITY || n->op == ECM_OP_RESHAPE) {
            g->alias[vo] = n->in[0];
            continue;
        }
        ec_bw_step s = ec_bw_step_new(EC_BW_FWD, i);
        ec_step *st = &s.fwd;
        st->node = i, st->out = vo;
        if (ec_is_mm(n->op)) {
            st->shift = n->bias;
            st->act = n->act == ECM_ACT_SOFTMAX ? ECM_ACT_LINEAR : n->act;
            st->softmax = n->act == ECM_ACT_SOFTMAX;
            if (want_z) {
                st->out = zv, st->act = ECM_ACT_LINEAR, st->softmax = 0;
                ec_bw_push(g, &s);
                if (want_o) {
                    ec_bw_step a = ec_bw_step_new(EC_BW_ACT, i);
                    a.z = zv;
                    ec_bw_push(g, &a);
                }
                continue;
            }
            int c = ec_sole(m, w, vo);
            if (n->act == ECM_ACT_LINEAR && !w->need[vo] && c >= 0 && m->nodes[c].op == ECM_OP_BATCHNORM &&
                w->pos[c] > gr->p0 && w->pos[c] <= gr->p1 && w->want[m->nodes[c].out]) {
                const ec_node *bn = &m->nodes[c];
                st->bn = c, st->out = bn->out, st->scale = bn->scale, st->shift = n->bias ? bn->fshift : bn->shift;
                w->done[c] = 1;
                int a = ec_sole(m, w, bn->out);
                if (!w->need[bn->out] && a >= 0 && m->nodes[a].op == ECM_OP_ACTIVATION &&
                    m->nodes[a].act != ECM_ACT_SOFTMAX && w->pos[a] > gr->p0 && w->pos[a] <= gr->p1 &&
                    w->want[m->nodes[a].out]) {
                    st->actn = a, st->out = m->nodes[a].out, st->act = m->nodes[a].act;
                    w->done[a] = 1;
                }
            }
        }
        ec_bw_push(g, &s);
    }
}

/* The backward node steps of group gr, last node first; BNs fold into the
 * activation before them (one pass: dy * act'(z) * scale) or the conv after
 * which they run (its transposed weights carry the scale). */
static void ec_bw_node_steps(const ec_model *m, ec_gradcam_plan *g, ec_bw_work *w, const ec_group *gr)
{
    for (int j = gr->p1; j > gr->p0; j--) {
        int i = w->path[j];
        const ec_node *n = &m->nodes[i];
        if (w->folded[i]) continue;
        ec_bw_step s = ec_bw_step_new(EC_BW_NODE, i);
        s.dy = n->out;
        if (w->bnfold[i] >= 0) {
            s.fold = w->bnfold[i];
            s.dy = m->nodes[s.fold].out;
        }
        if (n->op == ECM_OP_ACTIVATION && n->act != ECM_ACT_SOFTMAX) {
            int b = m->producer[n->in[0]];
            if (b >= 0 && m->nodes[b].op == ECM_OP_BATCHNORM && w->pos[b] >= 0 && g->on[m->nodes[b].in[0]] &&
                ec_sole(m, w, n->in[0]) == i) {
                s.fold = b;
                w->folded[b] = 1;
                s.dx[0] = m->nodes[b].in[0];
                ec_bw_push(g, &s);
                continue;
            }
        }
        if (n->op == ECM_OP_BATCHNORM) {
            int c = m->producer[n->in[0]];
            if (c >= 0 && (m->nodes[c].op == ECM_OP_CONV2D || m->nodes[c].op == ECM_OP_DWCONV2D) && w->pos[c] >= 0 &&
                m->nodes[c].act == ECM_ACT_LINEAR && ec_sole(m, w, n->in[0]) == i && g->on[m->nodes[c].in[0]]) {
                w->folded[i] = 1;
                w->bnfold[c] = i;
                continue;
            }
        }
        for (int k = 0; k < n->n_in; k++)
            if (g->on[n->in[k]]) s.dx[k] = n->in[k];
        ec_bw_push(g, &s);
    }
}

ec_status ec_gradcam_prepare(const ec_model *m, const ec_session_options *opt, int keep_all, ec_gradcam_plan *g)
{
    memset(g, 0, sizeof *g);
    ec_status st = ec_bw_target(m, opt, g);
    if (st) return st;
    const int nv = m->n_values, nn = m->n_nodes;
    ec_bw_work w;
    memset(&w, 0, sizeof w);
    w.nv = nv, w.nn = nn;
    g->virt_of = malloc((size_t)nn * sizeof *g->virt_of);
    g->on = calloc((size_t)nv, 1);
    g->pin = calloc((size_t)nv, 1);
    w.path = malloc((size_t)nn * sizeof *w.path);
    w.pos = malloc((size_t)nn * sizeof *w.pos);
    w.reader = malloc((size_t)nv * sizeof *w.reader);
    w.lastuse = malloc((size_t)nv * sizeof *w.lastuse);
    w.mat = malloc((size_t)nv);
    w.open = malloc((size_t)nv);
    w.bnd = malloc(((size_t)nn + 1) * sizeof *w.bnd);
    w.bpos = malloc(((size_t)nn + 1) * sizeof *w.bpos);
    w.grp = malloc(((size_t)nn + 1) * sizeof *w.grp);
    w.done = calloc((size_t)nn, 1);
    w.folded = calloc((size_t)nn, 1);
    w.bnfold = malloc((size_t)nn * sizeof *w.bnfold);
    unsigned char *anc = malloc((size_t)nv);
    if (!g->virt_of || !g->on || !g->pin || !w.path || !w.pos || !w.reader || !w.lastuse || !w.mat || !w.open ||
        !w.bnd || !w.bpos || !w.grp || !w.done || !w.folded || !w.bnfold || !anc) {
        st = ec_fail(EC_ERR_NOMEM, "out of memory");
        goto out;
    }

    /* on = depends on A (forward sweep) and reaches the output (backward sweep) */
    g->on[g->A] = 1;
    for (int i = g->target + 1; i < nn; i++)
        for (int k = 0; k < m->nodes[i].n_in; k++)
            if (g->on[m->nodes[i].in[k]]) g->on[m->nodes[i].out] = 1;
    ec_output_ancestors(m, anc);
    for (int v = 0; v < nv; v++) g->on[v] &= anc[v];
    if (!g->on[m->output]) {
        st = ec_fail(EC_ERR_ARG, "grad-cam: the model output does not depend on %s", g->name);
        goto out;
    }
    for (int v = 0; v < nv; v++) w.reader[v] = -1, w.lastuse[v] = -1;
    for (int i = 0; i < nn; i++) {
        w.pos[i] = -1, w.bnfold[i] = -1, g->virt_of[i] = -1;
        for (int k = 0; k < m->nodes[i].n_in; k++) w.reader[m->nodes[i].in[k]] = i;
    }
    g->n_ids = nv;
    for (int i = g->target + 1; i < nn; i++) {
        const ec_node *n = &m->nodes[i];
        if (!g->on[n->out]) continue;
        w.pos[i] = w.P;
        w.path[w.P++] = i;
        for (int k = 0; k < n->n_in; k++) w.lastuse[n->in[k]] = i;
        if (ec_is_mm(n->op) && n->act != ECM_ACT_LINEAR && n->act != ECM_ACT_SOFTMAX) g->virt_of[i] = g->n_ids++;
    }
    ec_bw_materialized(m, g, keep_all, &w);
    int ni = g->n_ids;
    g->rbuf = malloc((size_t)ni * sizeof *g->rbuf);
    g->alias = malloc((size_t)ni * sizeof *g->alias);
    w.want = calloc((size_t)ni, 1);
    w.need = calloc((size_t)ni, 1);
    w.stack = malloc((size_t)ni * sizeof *w.stack);
    /* at most: per path node a recompute step, an activation step and a node step */
    g->steps = malloc((3 * (size_t)w.P + 1) * sizeof *g->steps);
    if (!g->rbuf || !g->alias || !w.want || !w.need || !w.stack || !g->steps) {
        st = ec_fail(EC_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int v = 0; v < ni; v++) g->rbuf[v] = -1, g->alias[v] = -1;

    /* groups between boundaries; keep or recompute each (see the top) */
    int nb = ec_bw_boundaries(m, g, &w), ng = 0;
    for (int b = 1; b < nb; b++) {
        ec_group gr = { w.bnd[b - 1], w.bpos[b - 1], w.bpos[b], 0, 0 };
        size_t internal = 0;
        for (int j = gr.p0 + 1; j <= gr.p1; j++) {
            int r[ECM_MAX_IN], nr = ec_bw_reads(m, g, w.path[j], r);
            for (int k = 0; k < nr; k++) {
                int v = r[k];
                w.need[v] = 1;
                if (v == gr.in) gr.needs_in = 1;
                else if (v >= nv || !w.mat[v]) gr.recompute = 1;
                else if (g->on[v] && v != m->output) internal += ec_value_bytes(m, v);
            }
        }
        if (internal > ec_value_bytes(m, gr.in)) gr.recompute = 1;
        if (ng > 0 && w.grp[ng - 1].recompute && (gr.needs_in || gr.recompute) &&
            ec_value_bytes(m, gr.in) > ec_value_bytes(m, w.grp[ng - 1].in)) {
            w.grp[ng - 1].p1 = gr.p1;   /* merge: gr.in is recomputed instead of kept */
            continue;
        }
        w.grp[ng++] = gr;
    }
    g->n_groups = ng;
    if (!keep_all) ec_bw_keep(m, g, &w, ng, opt->cam_keep_bytes > 0 ? (size_t)opt->cam_keep_bytes : 0);

    /* pins: A, recompute groups' inputs, kept groups' reads, off-path operands */
    g->pin[g->A] = 1;
    for (int k = 0; k < ng; k++) {
        ec_group *gr = &w.grp[k];
        if (gr->recompute) {
            g->n_recompute++;
            if (!g->pin[gr->in] && gr->in != m->output) g->pin[gr->in] = 1, g->checkpoint_bytes += ec_value_bytes(m, gr->in);
        }
        for (int j = gr->p0 + 1; j <= gr->p1; j++) {
            int r[ECM_MAX_IN], nr = ec_bw_reads(m, g, w.path[j], r);
            for (int q = 0; q < nr; q++) {
                int v = r[q];
                if (v >= nv || v == m->output || g->pin[v]) continue;
                if (!g->on[v] || (!gr->recompute && (v == gr->in || w.mat[v]))) {
                    g->pin[v] = 1;
                    g->kept_bytes += ec_value_bytes(m, v);
                }
            }
        }
    }

    /* the steps: groups last to first, each its recompute then its backward */
    for (int k = ng - 1; k >= 0; k--) {
        const ec_group *gr = &w.grp[k];
        if (gr->recompute) {
            if ((st = ec_bw_closure(m, g, &w, gr))) goto out;
            ec_bw_recompute_steps(m, g, &w, gr);
        }
        ec_bw_node_steps(m, g, &w, gr);
    }
    st = EC_OK;
out:
    free(anc);
    ec_bw_work_free(&w);
    if (st) ec_gradcam_plan_free(g);
    return st;
}

/* ---- buffers, once the forward plan is known ------------------------------------------------------ */

static int ec_bw_inplace_op(int op)
{
    switch (op) {
    case ECM_OP_ACTIVATION: case ECM_OP_BATCHNORM: case ECM_OP_NORMALIZE: case ECM_OP_RESCALE: case ECM_OP_ADD:
    case ECM_OP_IDENTITY: case ECM_OP_RESHAPE:
        return 1;
    default:
        return 0;
    }
}

/* the id whose buffer id v reads (through recomputed identity/reshape aliases) */
static int ec_bw_root(const ec_gradcam_plan *g, int v)
{
    while (g->alias[v] >= 0) v = g->alias[v];
    return v;
}

static size_t ec_id_bytes(const ec_model *m, const ec_gradcam_plan *g, int id)
{
    if (id < m->n_values) return ec_value_bytes(m, id);
    for (int i = 0; i < m->n_nodes; i++)
        if (g->virt_of[i] == id) return ec_value_bytes(m, m->nodes[i].out);
    return 0;
}

static void ec_bw_read(const ec_gradcam_plan *g, int *last_r, int id, int t)
{
    id = ec_bw_root(g, id);
    if (t > last_r[id]) last_r[id] = t;
}

ec_status ec_gradcam_finish(ec_gradcam_plan *g, const ec_model *m, const ec_plan *p)
{
    const int nv = m->n_values, ni = g->n_ids, ns = g->n_steps, T = ns + 1;   /* T: the heatmap */
    int *stepof = malloc((size_t)m->n_nodes * sizeof *stepof);
    int *first_w = malloc((size_t)ni * sizeof *first_w), *last_r = malloc((size_t)ni * sizeof *last_r);
    int *glast = malloc((size_t)nv * sizeof *glast), *slot_of = malloc((size_t)nv * sizeof *slot_of);
    unsigned char *written = calloc((size_t)nv, 1);
    g->pin_last = malloc((size_t)nv * sizeof *g->pin_last);
    g->gbuf = malloc((size_t)nv * sizeof *g->gbuf);
    /* buffers: a gradient slot per value at most, a recomputed value per id, a temporary per step */
    g->bufs = malloc(((size_t)nv + (size_t)ni + (size_t)ns + 1) * sizeof *g->bufs);
    ec_status st = EC_OK;
    if (!stepof || !first_w || !last_r || !glast || !slot_of || !written || !g->pin_last || !g->gbuf || !g->bufs) {
        st = ec_fail(EC_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < m->n_nodes; i++) stepof[i] = -1;
    for (int k = 0; k < p->n_steps; k++) stepof[p->steps[k].node] = k;
    for (int v = 0; v < ni; v++) first_w[v] = -1, last_r[v] = -1;
    for (int v = 0; v < nv; v++) glast[v] = -1, g->gbuf[v] = -1, slot_of[v] = -1, g->pin_last[v] = -1;

    /* every value the backward reads must be pinned, recomputed or the output */
    for (int v = 0; v < nv; v++)
        if (g->pin[v] && p->vbuf[v] < 0) {
            st = ec_fail(EC_ERR_INTERNAL, "grad-cam: %s is pinned but has no buffer", m->values[v].name);
            goto out;
        }

    /* the recompute steps run the forward's algorithm for their conv */
    for (int s = 0; s < ns; s++) {
        ec_bw_step *b = &g->steps[s];
        if (b->kind != EC_BW_FWD || !ec_is_mm(m->nodes[b->node].op)) continue;
        int k = stepof[b->node];   /* a conv / dwconv / dense is always its step's main node */
        if (k < 0) {
            st = ec_fail(EC_ERR_INTERNAL, "grad-cam: layer %s has no forward step", m->nodes[b->node].name);
            goto out;
        }
        b->fwd.tile_rows = p->steps[k].tile_rows;
        b->fwd.wino_tiles = p->steps[k].wino_tiles;
        b->fwd.wino_f43 = p->steps[k].wino_f43;
    }

    /* reads (values, in time) and gradient writes */
    for (int s = 0; s < ns; s++) {
        const ec_bw_step *b = &g->steps[s];
        const ec_node *n = &m->nodes[b->node];
        int t = s + 1;
        if (b->kind == EC_BW_FWD) {
            for (int k = 0; k < n->n_in; k++) ec_bw_read(g, last_r, n->in[k], t);
            if (first_w[b->fwd.out] < 0) first_w[b->fwd.out] = t;
        } else if (b->kind == EC_BW_ACT) {
            ec_bw_read(g, last_r, b->z, t);
            if (first_w[n->out] < 0) first_w[n->out] = t;
        } else {
            int r[ECM_MAX_IN], nr = ec_bw_reads(m, g, b->node, r);
            for (int k = 0; k < nr; k++) ec_bw_read(g, last_r, r[k], t);
            glast[b->dy] = t;
        }
    }
    ec_bw_read(g, last_r, g->A, T);
    glast[g->A] = T;

    int nbuf = 0;
    /* gradient slots in time order; an elementwise step whose input gradient
     * is first written here takes over its output gradient's slot (which dies
     * here: its only reader is this step) */
    g->gbuf[m->output] = nbuf;
    g->bufs[nbuf++] = (ec_plan_buf){ ec_align64(ec_value_bytes(m, m->output)), 0, glast[m->output], 0, 0 };
    written[m->output] = 1;
    for (int s = 0; s < ns; s++) {
        ec_bw_step *b = &g->steps[s];
        if (b->kind != EC_BW_NODE) continue;
        const ec_node *n = &m->nodes[b->node];
        int t = s + 1, dup = 0, used = 0;
        for (int k = 0; k < ECM_MAX_IN; k++)
            for (int q = k + 1; q < ECM_MAX_IN; q++) dup |= b->dx[k] >= 0 && b->dx[k] == b->dx[q];
        if (g->gbuf[b->dy] < 0) {
            st = ec_fail(EC_ERR_INTERNAL, "grad-cam: no gradient reaches %s", m->values[b->dy].name);
            goto out;
        }
        for (int k = 0; k < ECM_MAX_IN; k++) {
            int v = b->dx[k];
            if (v < 0) continue;
            b->acc[k] = written[v];
            if (written[v]) continue;
            written[v] = 1;
            ec_plan_buf *dyb = &g->bufs[g->gbuf[b->dy]];
            size_t bytes = ec_align64(ec_value_bytes(m, v));
            if (!used && !dup && ec_bw_inplace_op(n->op) && bytes == ec_align64(ec_value_bytes(m, b->dy)) &&
                glast[b->dy] == t) {
                g->gbuf[v] = g->gbuf[b->dy];
                if (glast[v] > dyb->last) dyb->last = glast[v];
                used = 1;
            } else {
                g->gbuf[v] = nbuf;
                g->bufs[nbuf++] = (ec_plan_buf){ bytes, t, glast[v] < t ? t : glast[v], 0, 0 };
            }
        }
    }
    /* recomputed values (identity/reshape share their input's buffer) */
    for (int v = 0; v < ni; v++) {
        if (first_w[v] < 0 || g->alias[v] >= 0) continue;
        g->rbuf[v] = nbuf;
        int last = last_r[v] < first_w[v] ? first_w[v] : last_r[v];
        g->bufs[nbuf++] = (ec_plan_buf){ ec_align64(ec_id_bytes(m, g, v)), first_w[v], last, 0, 0 };
    }
    /* temporaries and scratch */
    g->col_floats = g->wide_floats = 0;
    for (int s = 0; s < ns; s++) {
        ec_bw_step *b = &g->steps[s];
        if (b->kind != EC_BW_NODE) continue;
        int acc = 0;
        for (int k = 0; k < ECM_MAX_IN; k++) acc |= b->dx[k] >= 0 && b->acc[k];
        ec_bw_need need;
        ec_op_backward_need(m, &m->nodes[b->node], acc, &need);
        if (need.col > g->col_floats) g->col_floats = need.col;
        if (need.wide > g->wide_floats) g->wide_floats = need.wide;
        b->tmp_floats = need.tmp;
        if (need.tmp) {
            b->tmp = nbuf;
            g->bufs[nbuf++] = (ec_plan_buf){ ec_align64(need.tmp * sizeof(float)), s + 1, s + 1, 0, 0 };
        }
    }
    g->n_bufs = nbuf;
    for (int v = 0; v < nv; v++)
        if (g->pin[v]) g->pin_last[v] = last_r[v] < 0 ? T : last_r[v];
    g->gptr = calloc((size_t)nv, sizeof *g->gptr);
    g->bval = calloc((size_t)ni, sizeof *g->bval);
    g->tptr = calloc((size_t)ns + 1, sizeof *g->tptr);
    if (!g->gptr || !g->bval || !g->tptr) st = ec_fail(EC_ERR_NOMEM, "out of memory");
out:
    free(stepof), free(first_w), free(last_r), free(glast), free(slot_of), free(written);
    return st;
}

ec_status ec_gradcam_bind(ec_gradcam_plan *g, const ec_model *m, unsigned char *arena, const ec_plan_buf *bufs,
                          float *const *vptr)
{
    const int nv = m->n_values;
    for (int v = 0; v < g->n_ids; v++)
        g->bval[v] = g->rbuf[v] >= 0 ? (float *)(arena + bufs[g->rbuf[v]].offset) : v < nv ? vptr[v] : NULL;
    for (int v = 0; v < g->n_ids; v++)
        if (g->alias[v] >= 0) g->bval[v] = g->bval[ec_bw_root(g, v)];
    for (int v = 0; v < nv; v++) g->gptr[v] = g->gbuf[v] >= 0 ? (float *)(arena + bufs[g->gbuf[v]].offset) : NULL;
    for (int s = 0; s < g->n_steps; s++)
        g->tptr[s] = g->steps[s].tmp >= 0 ? (float *)(arena + bufs[g->steps[s].tmp].offset) : NULL;
    return EC_OK;
}
