/* plan.c - the session's static memory plan, made once in ec_session_new.
 *
 *   1. steps:     one per node, except that CONV2D / DWCONV2D / DENSE followed by
 *                 its sole-consumer BATCHNORM (and that BN's sole-consumer
 *                 ACTIVATION) become one step: GEMM/dwconv + one affine epilogue.
 *   2. buffers:   IDENTITY / RESHAPE outputs alias their input; elementwise ops
 *                 write over an input whose buffer dies at this step; every other
 *                 value gets a buffer live from its producer to its last consumer.
 *                 Pinned values (Grad-CAM) and the output live to the end.
 *   3. placement: largest first, each into the smallest gap left by the buffers
 *                 already placed that are live at the same time (TFLM greedy).
 * keep_all turns off 1 and the reuse in 2 and 3: every layer's output survives. */
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "../kernels/kernels.h"
#include "error.h"

static size_t ec_align(size_t n) { return (n + EC_ARENA_ALIGN - 1) & ~(size_t)(EC_ARENA_ALIGN - 1); }

/* Work items per task, at most `per` and a multiple of `align`, such that the
 * task count is a multiple of 4 where it can be: equal tasks in a count that 1,
 * 2 and 4 threads divide let the threads, which claim tasks as they come free,
 * finish together (6 tasks of 288 rows on 2 threads: one takes 3 and ends a
 * task after the other). The split is fixed here, independent of the thread
 * count, and never changes results. */
static size_t ec_balanced_per(size_t total, size_t per, size_t align)
{
    if (per >= total || per == 0) return per;
    size_t tasks = (total + per - 1) / per, tasks4 = (tasks + 3) / 4 * 4;
    size_t p = (total + tasks4 - 1) / tasks4;
    p = (p + align - 1) / align * align;
    return p < per ? p : per;
}

static int ec_live_together(const ec_plan_buf *a, const ec_plan_buf *b)
{
    return a->first <= b->last && b->first <= a->last;
}

/* ---- placement ------------------------------------------------------------------ */

static int ec_cmp_place_order(const void *pa, const void *pb, void *ctx)
{
    const ec_plan_buf *b = ctx;
    int x = *(const int *)pa, y = *(const int *)pb;
    if (b[x].bytes != b[y].bytes) return b[x].bytes > b[y].bytes ? -1 : 1;   /* largest first */
    if (b[x].first != b[y].first) return b[x].first < b[y].first ? -1 : 1;
    return x < y ? -1 : x > y;
}

static int ec_cmp_offset(const void *pa, const void *pb, void *ctx)
{
    const ec_plan_buf *b = ctx;
    int x = *(const int *)pa, y = *(const int *)pb;
    if (b[x].offset != b[y].offset) return b[x].offset < b[y].offset ? -1 : 1;
    return x < y ? -1 : x > y;
}

ec_status ec_plan_place(ec_plan_buf *b, int n, size_t *arena_bytes)
{
    *arena_bytes = 0;
    if (n <= 0) return EC_OK;
    int *order = malloc(2 * (size_t)n * sizeof *order);   /* placement order | live neighbours */
    if (!order) return ec_fail(EC_ERR_NOMEM, "out of memory planning %d buffers", n);
    int *near = order + n;
    for (int i = 0; i < n; i++) order[i] = i;
    qsort_r(order, (size_t)n, sizeof *order, ec_cmp_place_order, b);
    size_t arena = 0;
    for (int k = 0; k < n; k++) {
        ec_plan_buf *x = &b[order[k]];
        int nn = 0;
        for (int j = 0; j < k; j++)
            if (ec_live_together(&b[order[j]], x)) near[nn++] = order[j];
        qsort_r(near, (size_t)nn, sizeof *near, ec_cmp_offset, b);
        /* Walk the occupied ranges by offset; remember the smallest hole that fits. */
        size_t end = 0, best = SIZE_MAX, best_gap = SIZE_MAX;
        for (int j = 0; j < nn; j++) {
            const ec_plan_buf *a = &b[near[j]];
            if (a->offset > end && a->offset - end >= x->bytes && a->offset - end < best_gap) {
                best_gap = a->offset - end;
                best = end;
            }
            if (a->offset + a->bytes > end) end = a->offset + a->bytes;
        }
        x->offset = best != SIZE_MAX ? best : end;
        if (x->offset + x->bytes > arena) arena = x->offset + x->bytes;
    }
    free(order);
    *arena_bytes = arena;
    return EC_OK;
}

int ec_plan_check(const ec_plan_buf *b, int n, size_t arena_bytes, char *msg, size_t cap)
{
    for (int i = 0; i < n; i++) {
        if (b[i].offset % EC_ARENA_ALIGN || b[i].offset + b[i].bytes > arena_bytes || b[i].first > b[i].last) {
            snprintf(msg, cap, "buffer %d: [%zu, +%zu) times [%d, %d] is misaligned, outside the %zu-byte arena or empty in time",
                     i, b[i].offset, b[i].bytes, b[i].first, b[i].last, arena_bytes);
            return -1;
        }
        for (int j = i + 1; j < n; j++) {
            if (!ec_live_together(&b[i], &b[j])) continue;
            if (b[i].offset < b[j].offset + b[j].bytes && b[j].offset < b[i].offset + b[i].bytes) {
                snprintf(msg, cap, "buffers %d [%zu, +%zu) t[%d, %d] and %d [%zu, +%zu) t[%d, %d] overlap", i, b[i].offset,
                         b[i].bytes, b[i].first, b[i].last, j, b[j].offset, b[j].bytes, b[j].first, b[j].last);
                return -1;
            }
        }
    }
    if (msg && cap) msg[0] = 0;
    return 0;
}

void ec_plan_print(FILE *f, const ec_plan_buf *b, int n, const char *const *names)
{
    size_t arena = 0;
    int tmax = 0;
    for (int i = 0; i < n; i++) {
        if (b[i].offset + b[i].bytes > arena) arena = b[i].offset + b[i].bytes;
        if (b[i].last > tmax) tmax = b[i].last;
    }
    fprintf(f, "plan: %d buffers, arena %zu bytes\n", n, arena);
    for (int i = 0; i < n; i++)
        fprintf(f, "  buf %4d  t[%4d, %4d]  %10zu @ %10zu%s  %s\n", i, b[i].first, b[i].last, b[i].bytes, b[i].offset,
                b[i].pinned ? " pinned" : "", names && names[i] ? names[i] : "");
    /* The arena over time, 64 columns: '#' where some live buffer sits. */
    enum { COLS = 64 };
    if (arena == 0) return;
    for (int t = 0; t <= tmax; t++) {
        char row[COLS + 1];
        memset(row, '.', COLS);
        row[COLS] = 0;
        for (int i = 0; i < n; i++) {
            if (t < b[i].first || t > b[i].last) continue;
            size_t c0 = b[i].offset * COLS / arena, c1 = ((b[i].offset + b[i].bytes) * COLS + arena - 1) / arena;
            for (size_t c = c0; c < c1 && c < COLS; c++) row[c] = '#';
        }
        fprintf(f, "  t %4d |%s|\n", t, row);
    }
}

/* ---- steps and buffers ------------------------------------------------------------ */

void ec_plan_free(ec_plan *p)
{
    free(p->steps);
    free(p->bufs);
    free(p->vbuf);
    memset(p, 0, sizeof *p);
}

/* The node reading value v, when exactly one node reads it (else -1). */
static int ec_sole_consumer(const ec_model *m, int v, const int *last_reader)
{
    return m->n_uses[v] == 1 ? last_reader[v] : -1;
}

static int ec_inplace_op(const ec_model *m, const ec_node *n, int k)
{
    switch (n->op) {
    case ECM_OP_ACTIVATION: case ECM_OP_BATCHNORM: case ECM_OP_RESCALE: case ECM_OP_NORMALIZE: case ECM_OP_ADD:
        return 1;
    case ECM_OP_MUL: {   /* broadcast form only, over the full-size operand */
        const ec_value *a = &m->values[n->in[k]], *o = &m->values[n->out];
        const ec_value *b = &m->values[n->in[1 - k]];
        return a->h == o->h && a->w == o->w && !(b->h == a->h && b->w == a->w);
    }
    default:
        return 0;
    }
}

/* The 1x1 conv an SE excite (MUL node n: x[h, w, c] * s[1, 1, c]) folds into,
 * or -1: the product's only reader is a stride-1 unpadded 1x1 conv whose fp16
 * kernel ec_gemm_w16 reads (AVX2), which then scales the kernel's row k by s[k]
 * instead; the product must not be kept (pinned, read by a backward: nofuse) */
/* Which input of an SE MUL node is the excite s[1, 1, c]: 1 unless in[0] is
 * the one smaller than the product. */
static int ec_se_excite_slot(const ec_model *m, const ec_node *n)
{
    const ec_value *ve = &m->values[n->out], *a = &m->values[n->in[0]];
    return a->h == ve->h && a->w == ve->w ? 1 : 0;
}

static int ec_se_fold_conv(const ec_model *m, const ec_node *n, const unsigned char *pin,
                           const unsigned char *nofuse, const int *last_reader)
{
    if (n->op != ECM_OP_MUL || n->n_in != 2 || !ec_cpu_has_avx2()) return -1;
    const int e = n->out;
    if (pin[e] || nofuse[e] || e == m->output) return -1;
    const int k = ec_se_excite_slot(m, n);
    const ec_value *ve = &m->values[e], *x = &m->values[n->in[1 - k]], *sv = &m->values[n->in[k]];
    if (sv->h != 1 || sv->w != 1 || sv->c != x->c || x->c != ve->c || x->h != ve->h || x->w != ve->w) return -1;
    if (x->h == 1 && x->w == 1) return -1;   /* both 1x1: which is the excite is ambiguous */
    int c = ec_sole_consumer(m, e, last_reader);
    if (c < 0) return -1;
    const ec_node *cv = &m->nodes[c];
    if (cv->op != ECM_OP_CONV2D || cv->n_in != 1 || cv->in[0] != e || cv->kh != 1 || cv->kw != 1 || cv->sh != 1 ||
        cv->sw != 1 || cv->pt || cv->pb || cv->pl || cv->pr || m->tensors[cv->w[0]].dtype != ECM_DT_F16)
        return -1;
    return c;
}

/* The activation memory limit (engine.h): the same words as the converter's
 * check (convert/keras.c), which bounds the forward values from below. */
static ec_status ec_plan_limit(const ec_plan *p)
{
    if (p->arena_bytes <= p->max_arena_bytes) return EC_OK;
    return ec_fail(EC_ERR_LIMIT, "model needs %zu MiB of activations, over the limit of %zu MiB",
                   (p->arena_bytes + (1u << 20) - 1) >> 20, p->max_arena_bytes >> 20);
}

ec_status ec_plan_build(const ec_model *m, const unsigned char *pin, const unsigned char *nofuse, int keep_all,
                       size_t max_arena_bytes, ec_plan *p)
{
    if (!nofuse) nofuse = pin;
    memset(p, 0, sizeof *p);
    p->max_arena_bytes = max_arena_bytes;
    int nn = m->n_nodes, nv = m->n_values;
    int *last_reader = malloc((size_t)nv * sizeof *last_reader);   /* [nv] node id */
    int *stepof = malloc((size_t)nn * sizeof *stepof);             /* [nn] step of each node */
    int *vlast = malloc((size_t)nv * sizeof *vlast);               /* [nv] last read time */
    int *sefold = malloc((size_t)nn * sizeof *sefold);             /* [nn] conv node -> the MUL folded into it */
    p->steps = malloc((size_t)nn * sizeof *p->steps);
    p->bufs = malloc((size_t)nv * sizeof *p->bufs);
    p->vbuf = malloc((size_t)nv * sizeof *p->vbuf);
    if (!last_reader || !stepof || !vlast || !sefold || !p->steps || !p->bufs || !p->vbuf) {
        free(last_reader), free(stepof), free(vlast), free(sefold);
        ec_plan_free(p);
        return ec_fail(EC_ERR_NOMEM, "out of memory planning %d nodes", nn);
    }
    for (int v = 0; v < nv; v++) last_reader[v] = -1, p->vbuf[v] = -1;
    for (int i = 0; i < nn; i++)
        for (int k = 0; k < m->nodes[i].n_in; k++) last_reader[m->nodes[i].in[k]] = i;

    /* 1. steps, with fusion */
    for (int i = 0; i < nn; i++) stepof[i] = -1, sefold[i] = -1;
    int ns = 0;
    for (int i = 0; i < nn; i++) {
        if (stepof[i] >= 0) continue;    /* fused into an earlier step */
        const ec_node *n = &m->nodes[i];
        ec_step *st = &p->steps[ns];
        memset(st, 0, sizeof *st);
        st->node = i, st->bn = st->actn = -1, st->out = n->out;
        stepof[i] = ns;
        int mm = n->op == ECM_OP_CONV2D || n->op == ECM_OP_DWCONV2D || n->op == ECM_OP_DENSE;
        if (mm && !keep_all && n->act == ECM_ACT_LINEAR && !pin[n->out] && !nofuse[n->out] && n->out != m->output) {
            int c = ec_sole_consumer(m, n->out, last_reader);
            if (c >= 0 && m->nodes[c].op == ECM_OP_BATCHNORM) {
                st->bn = c;
                stepof[c] = ns;
                st->out = m->nodes[c].out;
                int v = m->nodes[c].out, a = ec_sole_consumer(m, v, last_reader);
                if (!pin[v] && !nofuse[v] && v != m->output && a >= 0 && m->nodes[a].op == ECM_OP_ACTIVATION &&
                    m->nodes[a].act != ECM_ACT_SOFTMAX) {
                    st->actn = a;
                    stepof[a] = ns;
                    st->out = m->nodes[a].out;
                }
            }
        }
        if (mm) {
            /* epilogue: bias, or BN folded (with the bias folded into its shift), then act */
            if (st->bn >= 0) {
                const ec_node *bn = &m->nodes[st->bn];
                st->scale = bn->scale;
                st->shift = n->bias ? bn->fshift : bn->shift;
                st->act = st->actn >= 0 ? m->nodes[st->actn].act : ECM_ACT_LINEAR;
            } else {
                st->shift = n->bias;
                st->act = n->act == ECM_ACT_SOFTMAX ? ECM_ACT_LINEAR : n->act;
                st->softmax = n->act == ECM_ACT_SOFTMAX;
            }
        }
        /* SE folds (ec_step): the excite into the conv after it, the squeeze
         * into the dwconv before it (its row sums; any thread split sums the same) */
        if (!keep_all) {
            int c = ec_se_fold_conv(m, n, pin, nofuse, last_reader);
            if (c >= 0) st->excite_folded = 1, sefold[c] = i;
            if (sefold[i] >= 0) {
                const ec_node *mul = &m->nodes[sefold[i]];
                const int k = ec_se_excite_slot(m, mul);
                st->se_fold = 1, st->se_x = mul->in[1 - k], st->se_s = mul->in[k];
            }
            ec_step *prev = ns > 0 ? &p->steps[ns - 1] : NULL;
            if (n->op == ECM_OP_GAP && prev && m->nodes[prev->node].op == ECM_OP_DWCONV2D && prev->out == n->in[0]) {
                const ec_value *vx = &m->values[n->in[0]];
                prev->squeeze = st->squeeze = 1;
                if ((size_t)vx->h * vx->c > p->col_floats) p->col_floats = (size_t)vx->h * vx->c;
            }
        }
        if (n->op == ECM_OP_CONV2D || n->op == ECM_OP_DENSE) {
            /* the kernel packed into 16-column panels (kernels/pgemm.c) goes into
             * the widening scratch: reserve its padded size */
            size_t K = n->op == ECM_OP_DENSE ? (size_t)m->values[n->in[0]].c
                                             : (size_t)n->kh * n->kw * m->values[n->in[0]].c;
            size_t pf = ec_pack_b_floats((int)K, m->values[n->out].c);
            if (pf > p->wide_floats) p->wide_floats = pf;
        }
        if (n->op == ECM_OP_CONV2D && !(n->kh == 1 && n->kw == 1 && n->sh == 1 && n->sw == 1 &&
                                        n->pt == 0 && n->pb == 0 && n->pl == 0 && n->pr == 0)) {
            /* im2col in row tiles of bounded size, 48-row multiples: GEMM splits
             * there keep OpenBLAS's column tiles (session.c), and the tiling is
             * fixed here, independent of the thread count */
            size_t K = (size_t)n->kh * n->kw * m->values[n->in[0]].c;
            size_t M = (size_t)m->values[n->out].h * m->values[n->out].w;
            size_t rows = EC_IM2COL_TILE_BYTES / sizeof(float) / K / 48 * 48;
            if (rows < 48) rows = 48;
            if (rows > M) rows = M;
            rows = ec_balanced_per(M, rows, 48);
            st->tile_rows = (int)rows;
            if (rows * K > p->col_floats) p->col_floats = rows * K;
            size_t cin = (size_t)m->values[n->in[0]].c, cout = (size_t)m->values[n->out].c;
            if (n->kh == 3 && n->kw == 3 && n->sh == 1 && n->sw == 1 && cin >= EC_WINO_MIN_C && cout >= EC_WINO_MIN_C) {
                /* Winograd F(4x4, 3x3) or F(2x2, 3x3): V [nxi][T][cin] + M [nxi][T][cout]
                 * per thread, T tiles per task, fixed here (independent of the thread
                 * count) */
                const ec_value *vo = &m->values[n->out];
                int f43 = 36 * cin * cout * sizeof(float) <= EC_WINO43_MAX_U_BYTES && vo->h >= 8 && vo->w >= 8;
                size_t nxi = f43 ? 36 : 16, e = f43 ? 4 : 2;
                size_t tiles = (size_t)((vo->h + e - 1) / e) * ((vo->w + e - 1) / e);
                size_t T = EC_WINO_TILE_BYTES / sizeof(float) / (nxi * (cin + cout));
                if (T < 8) T = 8;
                if (T > tiles) T = tiles;
                T = ec_balanced_per(tiles, T, 1);
                if (T < 8 && tiles >= 8) T = 8;
                st->wino_tiles = (int)T;
                st->wino_f43 = f43;
                if (nxi * T * (cin + cout) > p->col_floats) p->col_floats = nxi * T * (cin + cout);
                /* U [nxi][cin][cout], or its slices packed in panels; the weight
                 * transform's scratch (9 * cout floats per thread) fits in col */
                size_t u = nxi * ec_pack_b_floats((int)cin, (int)cout);
                if (u > p->wide_floats) p->wide_floats = u;
                if (9 * cout > p->col_floats) p->col_floats = 9 * cout;
            }
        }
        /* a 1x1 conv alone reading a Winograd conv's output: both in row bands */
        ec_step *pw = ns > 0 ? &p->steps[ns - 1] : NULL;
        if (!keep_all && pw && pw->wino_tiles > 0 && !pw->softmax && !st->se_fold && n->op == ECM_OP_CONV2D &&
            n->n_in == 1 && n->in[0] == pw->out && n->kh == 1 && n->kw == 1 && n->sh == 1 && n->sw == 1 && !n->pt &&
            !n->pb && !n->pl && !n->pr && m->tensors[n->w[0]].dtype == ECM_DT_F16 && ec_cpu_has_avx2() &&
            ec_sole_consumer(m, pw->out, last_reader) == i && !pin[pw->out] && !nofuse[pw->out] &&
            pw->out != m->output) {
            const ec_value *vb = &m->values[pw->out];
            const size_t e = pw->wino_f43 ? 4 : 2, nxi = pw->wino_f43 ? 36 : 16, bt = pw->wino_f43 ? 1 : 2;
            const size_t nt = bt * (((size_t)vb->w + e - 1) / e), cin = (size_t)m->values[m->nodes[pw->node].in[0]].c;
            /* per thread: V and M of a band's tiles, then the band itself */
            const size_t need = nxi * nt * (cin + (size_t)vb->c) + bt * e * (size_t)vb->w * vb->c;
            pw->band = (int)bt;
            st->band_done = 1;
            if (need > p->col_floats) p->col_floats = need;
        }
        ns++;
    }
    p->n_steps = ns;
    int end = ns + 1;

    /* 2. lifetimes: time of the step that reads a value last (step k runs at k + 1) */
    for (int v = 0; v < nv; v++) vlast[v] = -1;
    for (int s = 0; s < ns; s++) {
        const ec_node *n = &m->nodes[p->steps[s].node];
        for (int k = 0; k < n->n_in; k++) vlast[n->in[k]] = s + 1;
        if (p->steps[s].se_fold) vlast[p->steps[s].se_x] = vlast[p->steps[s].se_s] = s + 1;
    }
    for (int v = 0; v < nv; v++)
        if (pin[v] || v == m->output || keep_all) vlast[v] = end;

    int nb = 0;
    /* the model input: written at time 0 */
    ec_plan_buf *in = &p->bufs[nb];
    const ec_value *iv = &m->values[m->input];
    in->bytes = ec_align((size_t)iv->h * iv->w * iv->c * sizeof(float));
    in->first = 0;
    in->last = vlast[m->input] < 0 ? 0 : vlast[m->input];
    in->pinned = pin[m->input];
    in->offset = 0;
    p->vbuf[m->input] = nb++;
    for (int s = 0; s < ns; s++) {
        ec_step *st = &p->steps[s];
        const ec_node *n = &m->nodes[st->node];
        int t = s + 1, v = st->out;
        if (st->excite_folded || st->band) continue;   /* never written: vbuf stays -1 */
        const ec_value *ov = &m->values[v];
        size_t bytes = ec_align((size_t)ov->h * ov->w * ov->c * sizeof(float));
        int last = vlast[v] < t ? t : vlast[v];
        int b = -1;
        if (n->op == ECM_OP_IDENTITY || n->op == ECM_OP_RESHAPE) {
            b = p->vbuf[n->in[0]];
        } else if (!keep_all && st->bn < 0) {
            for (int k = 0; k < n->n_in && b < 0; k++) {
                int x = n->in[k], bx = p->vbuf[x];
                if (!ec_inplace_op(m, n, k) || p->bufs[bx].last != t || p->bufs[bx].pinned || p->bufs[bx].bytes != bytes)
                    continue;
                int shared = 0;   /* another input in the same buffer would be clobbered */
                for (int j = 0; j < n->n_in; j++) shared |= j != k && p->vbuf[n->in[j]] == bx;
                if (shared) continue;
                b = bx;
                st->inplace = 1;
                st->inplace_in = k;
            }
        }
        if (b < 0) {
            b = nb++;
            p->bufs[b].bytes = bytes;
            p->bufs[b].first = keep_all ? 0 : st->band_done ? t - 1 : t;   /* band_done: written at t - 1 */
            p->bufs[b].last = last;
            p->bufs[b].pinned = 0;
            p->bufs[b].offset = 0;
        } else if (last > p->bufs[b].last) {
            p->bufs[b].last = last;
        }
        p->bufs[b].pinned |= pin[v];
        p->vbuf[v] = b;
        /* fused-away intermediates (conv out, bn out) have no buffer: vbuf stays -1 */
    }
    p->n_bufs = nb;
    free(last_reader), free(stepof), free(vlast), free(sefold);

    /* 3. placement */
    ec_status st = EC_OK;
    if (keep_all) {
        size_t off = 0;   /* everything lives all the time: stack them */
        for (int b = 0; b < nb; b++) p->bufs[b].offset = off, off += p->bufs[b].bytes;
        p->arena_bytes = off;
    } else {
        st = ec_plan_place(p->bufs, nb, &p->arena_bytes);
    }
    for (int b = 0; b < nb; b++)
        if (p->bufs[b].pinned) p->pinned_bytes += p->bufs[b].bytes;
    if (!st) st = ec_plan_limit(p);
    if (st) ec_plan_free(p);
    return st;
}

/* ---- buffers after the forward pass ------------------------------------------------
 * Grad-CAM's gradients and temporaries, and the overlay, live only once the forward
 * pass is over, when everything but the pinned values and the output is dead: they
 * go into the same arena, into that dead space. */
ec_status ec_plan_append_after(ec_plan *p, const ec_plan_buf *extra, int n_extra, int keep_all, const int *until,
                               int *first_id)
{
    int end = p->n_steps + 1, last = end;
    for (int i = 0; i < n_extra; i++)
        if (end + extra[i].last > last) last = end + extra[i].last;
    ec_plan_buf *b = realloc(p->bufs, ((size_t)p->n_bufs + (size_t)n_extra) * sizeof *b);
    if (!b) return ec_fail(EC_ERR_NOMEM, "out of memory planning %d more buffers", n_extra);
    p->bufs = b;
    /* what survives the forward pass (pinned values, the output) survives these
     * too, to the end or, where until says so, to the time after the forward
     * pass its last reader runs (a checkpoint dies once its block is done) */
    for (int i = 0; i < p->n_bufs; i++)
        if (b[i].last >= end) b[i].last = !keep_all && until && until[i] >= 0 ? end + until[i] : last;
    *first_id = p->n_bufs;
    for (int i = 0; i < n_extra; i++) {
        ec_plan_buf *x = &b[p->n_bufs++];
        *x = extra[i];
        x->bytes = ec_align(x->bytes);
        x->first = keep_all ? 0 : end + extra[i].first;
        x->last = keep_all ? last : end + extra[i].last;
        x->pinned = 0;
        x->offset = 0;
    }
    if (keep_all) {
        size_t off = 0;
        for (int i = 0; i < p->n_bufs; i++) b[i].offset = off, off += b[i].bytes;
        p->arena_bytes = off;
        return ec_plan_limit(p);
    }
    ec_status st = ec_plan_place(b, p->n_bufs, &p->arena_bytes);
    return st ? st : ec_plan_limit(p);
}
