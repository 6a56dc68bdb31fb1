/* session.c - a session: the plan, the arena, the forward driver and the
 * predict API. The operators are in ops.c, the thread pool in pool.c, the
 * explanations' backward pass in gradcam.c; a session owns one execution
 * context (ec_exec) that hands them the arena, the scratch and the threads. */
#include <math.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>

#include "../image/image.h"
#include "../image/reader.h"
#include "../kernels/kernels.h"
#include "engine.h"
#include "error.h"
#include "internal.h"
#include "ops.h"
#include "pool.h"

struct ec_session {
    const ec_model *m;
    ec_session_options opt;
    int keep_all;                 /* tests: every value kept (internal.h) */
    ec_pool *pool;                /* NULL when threads == 1 */
    ec_plan plan;
    unsigned char *pin;           /* [n_values] */
    float **vptr;                 /* [n_values] forward value in the arena, NULL if fused away */
    unsigned char *arena;         /* [plan.arena_bytes] */
    ec_exec ex;                   /* what the ops see: values, scratch, threads */
    /* scratch */
    float *col;                   /* [threads][plan.col_floats] im2col tiles */
    float *wide;                  /* [max_f16_elems] one layer's kernel widened from fp16 */
    uint8_t *rgb;                 /* [H * W * 3] the resized input the model saw */
    uint8_t *base;                /* [H * W * 3] the overlay's base picture (Grad-CAM sessions), or NULL */
    ec_input_scratch in;          /* the resamplers and a batch of decoded rows */
    size_t scratch_bytes;
    /* Grad-CAM: gradients, recomputed values, temporaries and the overlay live
     * in the arena's dead space after the forward pass (ec_plan_append_after) */
    int gradcam;
    ec_gradcam_plan gc;
    ec_cam_method cam_method;
    float *cam;                   /* [A.h * A.w] */
    double *cam_ws;               /* [ec_cam_work_doubles] the map's workspace, any method */
    uint8_t *rgba;                /* [H * W * 4] overlay, in the arena */
    void *ov_scratch;             /* in the arena */
    /* last result */
    int have_result;
    int prefaulted;               /* the big buffers' pages, at the first run */
    size_t col_bytes, wide_bytes;
    ec_result res;
    double *step_times;           /* profiling, NULL = off (see ec_session_set_step_times) */
    ec_profile_step *prof;        /* [plan.n_steps] ec_session_profile_*, allocated at the first start */
    double *prof_t;               /* [plan.n_steps + 3] the step times it reads */
    char (*prof_names)[96];       /* [plan.n_steps] */
    int prof_runs;
};

/* ---- test and profiling hooks (internal.h) ---------------------------------------------- */

const ec_model *ec_session_model(const ec_session *s) { return s->m; }
float *ec_session_value(const ec_session *s, int v) { return s->vptr[v]; }
float *ec_session_grad(const ec_session *s, int v) { return s->gradcam && s->gc.gptr ? s->gc.gptr[v] : NULL; }
const ec_gradcam_plan *ec_session_gradcam(const ec_session *s) { return s->gradcam ? &s->gc : NULL; }
const ec_plan *ec_session_plan(const ec_session *s) { return &s->plan; }
void ec_session_set_step_times(ec_session *s, double *t) { s->step_times = t; }

static double ec_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the forward pass ---------------------------------------------------------------------- */

static void ec_forward_steps(ec_session *s, int k0)
{
    const ec_model *m = s->m;
    double t0 = s->step_times ? ec_clock() : 0.0;
    const int check = ec_model_checked(m) == 0;   /* the file's first pass: CRC each step's tensors first */
    for (int k = k0; k < s->plan.n_steps; k++) {
        const ec_step *st = &s->plan.steps[k];
        if (check) ec_model_check_tensors(m, &m->nodes[st->node]);
        ec_op_forward(&s->ex, st);
        if (s->step_times) {
            double t1 = ec_clock();
            s->step_times[k] += t1 - t0;
            t0 = t1;
        }
    }
}

void ec_session_forward_after(ec_session *s, int node)
{
    int k = 0;
    while (k < s->plan.n_steps && s->plan.steps[k].node <= node) k++;
    /* a GAP reads its dwconv's row sums; a band_done conv is run by the step before */
    if (k > 0 && k < s->plan.n_steps && (s->plan.steps[k].squeeze || s->plan.steps[k].band_done)) k--;
    ec_forward_steps(s, k);
}

/* ---- create / free ----------------------------------------------------------------------- */

ec_session_options ec_session_options_default(void)
{
    ec_session_options o;
    memset(&o, 0, sizeof o);
    o.threads = 1;
    o.cam_class = -1;
    o.max_pixels = 50000000;
    o.resize = EC_RESIZE_LANCZOS;          /* the app's model input */
    o.overlay_resize = EC_RESIZE_BICUBIC;  /* Pillow's default: the app's overlay base */
    o.max_arena_bytes = ECM_DEFAULT_MAX_ACTIVATION_BYTES;
    o.cam_keep_bytes = EC_BW_KEEP_BYTES;
    return o;
}

ec_status ec_session_set_cam_method(ec_session *s, const char *method)
{
    if (!s) return ec_fail(EC_ERR_ARG, "ec_session_set_cam_method: NULL session");
    ec_cam_method cm = EC_CAM_GRADCAM;
    if (method && ec_cam_method_parse(method, &cm)) return EC_ERR_ARG;
    s->cam_method = cm;
    s->have_result = 0;   /* the last heatmap was another method's */
    return EC_OK;
}

/* Buffers of at least this size start on a huge-page boundary and ask for
 * transparent huge pages over their whole 2 MiB pieces (see ec_alloc). */
#define EC_HUGE_PAGE ((size_t)2 << 20)

static void *ec_alloc(size_t bytes, size_t *total)
{
    *total += bytes;
    /* 64-byte aligned for the kernels' vector loads; never a zero-size request */
    size_t n = (bytes + EC_ARENA_ALIGN - 1) / EC_ARENA_ALIGN * EC_ARENA_ALIGN + EC_ARENA_ALIGN;
    if (bytes < EC_HUGE_PAGE) return aligned_alloc(EC_ARENA_ALIGN, n);
    /* The arena and the large scratch buffers: every 4 KB page costs a fault
     * on its first touch, and on a VM with paravirtualized paging another exit
     * after that (~5 us a page; measured: first predict of V2-S 91 -> 80 ms with
     * its 4.3 MB arena on 2 MiB pages). On 2 MiB pages it is one fault per 512.
     * Only the whole 2 MiB pieces inside the buffer are marked, so the
     * resident size does not grow: the tail stays on 4 KB pages. A hint: where
     * transparent huge pages are off (or memory is fragmented) nothing changes. */
    void *p = aligned_alloc(EC_HUGE_PAGE, (n + EC_HUGE_PAGE - 1) / EC_HUGE_PAGE * EC_HUGE_PAGE);
#ifdef MADV_HUGEPAGE
    if (p) (void)madvise(p, bytes / EC_HUGE_PAGE * EC_HUGE_PAGE, MADV_HUGEPAGE);
#endif
    return p;
}

ec_status ec_session_new(const ec_model *m, const ec_session_options *opt, ec_session **out)
{
    return ec_session_new_debug(m, opt, 0, out);
}

ec_status ec_session_new_debug(const ec_model *m, const ec_session_options *opt, int keep_all, ec_session **out)
{
    if (!m || !out) return ec_fail(EC_ERR_ARG, "ec_session_new: NULL argument");
    *out = NULL;
    ec_session_options o = opt ? *opt : ec_session_options_default();
    ec_cam_method method = EC_CAM_GRADCAM;
    if (o.threads < 1 || o.threads > 256) return ec_fail(EC_ERR_ARG, "threads = %d (1..256)", o.threads);
    if (o.cam_method && ec_cam_method_parse(o.cam_method, &method)) return EC_ERR_ARG;
    if (o.max_pixels <= 0) return ec_fail(EC_ERR_ARG, "max_pixels = %lld must be positive", (long long)o.max_pixels);
    if ((unsigned)o.resize > EC_RESIZE_LANCZOS || (unsigned)o.overlay_resize > EC_RESIZE_LANCZOS)
        return ec_fail(EC_ERR_ARG, "resize filter %d / %d (0..%d)", (int)o.resize, (int)o.overlay_resize, EC_RESIZE_LANCZOS);
    if (o.max_arena_bytes <= 0)
        return ec_fail(EC_ERR_ARG, "max_arena_bytes = %lld must be positive", (long long)o.max_arena_bytes);
    if (o.cam_keep_bytes < 0)
        return ec_fail(EC_ERR_ARG, "cam_keep_bytes = %lld must not be negative", (long long)o.cam_keep_bytes);
    if (o.gradcam && (o.cam_class < -1 || o.cam_class >= m->n_labels))
        return ec_fail(EC_ERR_ARG, "cam_class = %d (the model has %d classes)", o.cam_class, m->n_labels);

    ec_session *s = calloc(1, sizeof *s);
    if (!s) return ec_fail(EC_ERR_NOMEM, "out of memory");
    s->m = m;
    s->opt = o;
    s->opt.cam_layer = NULL;   /* not kept: the caller's strings may go away */
    s->opt.cam_method = NULL;
    s->cam_method = method;
    s->keep_all = keep_all != 0;
    s->gradcam = o.gradcam != 0;
    ec_status st;
    int nv = m->n_values;
    s->prof_runs = 0;
    s->pin = calloc((size_t)nv, 1);
    s->vptr = calloc((size_t)nv, sizeof *s->vptr);
    if (!s->pin || !s->vptr) { st = ec_fail(EC_ERR_NOMEM, "out of memory"); goto fail; }
    if (s->gradcam) {
        if ((st = ec_gradcam_prepare(m, &o, s->keep_all, &s->gc))) goto fail;
        memcpy(s->pin, s->gc.pin, (size_t)nv);
    }
    /* The same fusions whatever is explained: a convolution whose BN and
     * activation are fused rounds its epilogue differently (by an ulp or so)
     * from one whose raw output is kept, so every session leaves unfused what
     * the default Grad-CAM layer's backward reads. predict with and without
     * --cam, and serve (which always can explain) give the same bytes. */
    ec_gradcam_plan dflt;
    int have_dflt = 0;
    if (!s->keep_all && m->gradcam_node >= 0 && (!s->gradcam || s->gc.target != m->gradcam_node)) {
        ec_session_options d = o;
        d.cam_layer = NULL;
        if (ec_gradcam_prepare(m, &d, 0, &dflt) == EC_OK) have_dflt = 1;
        else ec_gradcam_plan_free(&dflt);
    }
    /* ec_plan_build fuses nothing pinned or in nofuse: the two masks need no merging */
    st = ec_plan_build(m, s->pin, have_dflt ? dflt.pin : NULL, s->keep_all, (size_t)o.max_arena_bytes, &s->plan);
    if (have_dflt) ec_gradcam_plan_free(&dflt);
    if (st) goto fail;
    const ec_value *vi = &m->values[m->input];
    int gfirst = 0;   /* plan buffer id of the backward's buffer 0; then rgba, overlay scratch */
    size_t col_floats = s->plan.col_floats, wide_floats = s->plan.wide_floats;
    if (s->gradcam) {
        /* times after the forward: backward step i at i + 1 (0 = the seed,
         * n_steps + 1 = the heatmap, backward.c), the overlay at n_steps + 2; a
         * pinned value lives until its last backward reader */
        if ((st = ec_gradcam_finish(&s->gc, m, &s->plan))) goto fail;
        const ec_value *va = &m->values[s->gc.A];
        int nb = s->gc.n_bufs, T = s->gc.n_steps + 1;
        ec_plan_buf *xb = calloc((size_t)nb + 2, sizeof *xb);
        int *until = malloc(((size_t)s->plan.n_bufs + 1) * sizeof *until);
        if (!xb || !until) {
            free(xb), free(until);
            st = ec_fail(EC_ERR_NOMEM, "out of memory");
            goto fail;
        }
        memcpy(xb, s->gc.bufs, (size_t)nb * sizeof *xb);
        xb[nb] = (ec_plan_buf){ (size_t)vi->h * vi->w * 4, T + 1, T + 1, 0, 0 };
        xb[nb + 1] = (ec_plan_buf){ ec_overlay_scratch_bytes(va->h, va->w, vi->h, vi->w), T + 1, T + 1, 0, 0 };
        for (int i = 0; i < nb + 2; i++) if (!xb[i].bytes) xb[i].bytes = EC_ARENA_ALIGN;
        for (int b = 0; b < s->plan.n_bufs; b++) until[b] = 0;
        for (int v = 0; v < nv; v++) {
            int b = s->plan.vbuf[v];
            if (b < 0) continue;
            if (v == m->output || v == s->gc.A) until[b] = -1;   /* to the end: the result, the layer explained */
            else if (s->gc.pin[v] && until[b] >= 0 && s->gc.pin_last[v] > until[b]) until[b] = s->gc.pin_last[v];
        }
        st = ec_plan_append_after(&s->plan, xb, nb + 2, s->keep_all, until, &gfirst);
        free(xb);
        free(until);
        if (st) goto fail;
        if (s->gc.col_floats > col_floats) col_floats = s->gc.col_floats;
        if (s->gc.wide_floats > wide_floats) wide_floats = s->gc.wide_floats;
    }

    size_t scratch = 0, arena_total = 0;
    s->arena = ec_alloc(s->plan.arena_bytes, &arena_total);
    s->col_bytes = (size_t)o.threads * col_floats * sizeof(float);
    s->wide_bytes = (wide_floats > (size_t)m->max_f16_elems ? wide_floats : (size_t)m->max_f16_elems) * sizeof(float);
    s->col = ec_alloc(s->col_bytes, &scratch);
    s->wide = ec_alloc(s->wide_bytes, &scratch);
    s->rgb = ec_alloc((size_t)vi->h * vi->w * 3, &scratch);
    if (s->gradcam) s->base = ec_alloc((size_t)vi->h * vi->w * 3, &scratch);
    if (!s->arena || !s->col || !s->wide || !s->rgb || (s->gradcam && !s->base)) { st = ec_fail(EC_ERR_NOMEM, "out of memory (arena %zu bytes)", s->plan.arena_bytes); goto fail; }
    for (int v = 0; v < nv; v++)
        s->vptr[v] = s->plan.vbuf[v] >= 0 ? (float *)(s->arena + s->plan.bufs[s->plan.vbuf[v]].offset) : NULL;

    if (s->gradcam) {
        const ec_value *va = &m->values[s->gc.A];
        const ec_plan_buf *xb = s->plan.bufs + gfirst;   /* the backward's buffers, rgba, overlay scratch */
        int nb = s->gc.n_bufs;
        s->cam = ec_alloc((size_t)va->h * va->w * sizeof(float), &scratch);
        s->cam_ws = ec_alloc(ec_cam_work_doubles((size_t)va->h * va->w, va->c) * sizeof(double), &scratch);
        if (!s->cam || !s->cam_ws) {
            st = ec_fail(EC_ERR_NOMEM, "out of memory (grad-cam buffers)");
            goto fail;
        }
        ec_gradcam_bind(&s->gc, m, s->arena, xb, s->vptr);
        s->rgba = s->arena + xb[nb].offset;
        s->ov_scratch = s->arena + xb[nb + 1].offset;
    }
    s->scratch_bytes = scratch;
    if (o.threads > 1 && (st = ec_pool_new(o.threads, &s->pool))) goto fail;
    s->ex = (ec_exec){ m, s->pool, o.threads, s->vptr, NULL, s->wide, s->col, col_floats, NULL, 0 };
    *out = s;
    return EC_OK;
fail:
    ec_session_free(s);
    return st;
}

void ec_session_free(ec_session *s)
{
    if (!s) return;
    ec_pool_free(s->pool);
    ec_plan_free(&s->plan);
    ec_gradcam_plan_free(&s->gc);
    free(s->pin);
    free(s->vptr);
    free(s->arena);
    free(s->col);
    free(s->wide);
    free(s->rgb);
    free(s->base);
    ec_input_scratch_free(&s->in);
    free(s->cam);
    free(s->cam_ws);
    free(s->prof);
    free(s->prof_t);
    free(s->prof_names);
    free(s);
}

size_t ec_session_arena_bytes(const ec_session *s) { return s ? s->plan.arena_bytes : 0; }
size_t ec_session_pinned_bytes(const ec_session *s) { return s ? s->plan.pinned_bytes : 0; }
size_t ec_session_scratch_bytes(const ec_session *s) { return s ? s->scratch_bytes + s->in.cap + s->in.rows_cap : 0; }

int ec_session_check_plan(const ec_session *s, char *msg, size_t cap)
{
    /* one plan: the forward values and, after them, Grad-CAM's buffers */
    return ec_plan_check(s->plan.bufs, s->plan.n_bufs, s->plan.arena_bytes, msg, cap) ? -1 : 0;
}

ec_status ec_session_plan_text(const ec_session *s, char **text)
{
    if (!s || !text) return ec_fail(EC_ERR_ARG, "ec_session_plan_text: NULL argument");
    *text = NULL;
    const char **names = calloc((size_t)s->plan.n_bufs + 1, sizeof *names);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = names ? open_memstream(&buf, &len) : NULL;
    if (!f) {
        free(names);
        return ec_fail(EC_ERR_NOMEM, "out of memory");
    }
    for (int v = 0; v < s->m->n_values; v++)
        if (s->plan.vbuf[v] >= 0 && !names[s->plan.vbuf[v]]) names[s->plan.vbuf[v]] = s->m->values[v].name;
    ec_plan_print(f, s->plan.bufs, s->plan.n_bufs, names);
    int bad = ferror(f);
    bad |= fclose(f) != 0;
    free(names);
    if (bad || !buf) {
        free(buf);
        return ec_fail(EC_ERR_NOMEM, "out of memory");
    }
    *text = buf;
    return EC_OK;
}

const float *ec_session_layer_output(const ec_session *s, const char *layer, int *h, int *w, int *c)
{
    if (!s || !layer || !s->have_result) return NULL;
    int i = ec_model_find_node(s->m, layer);
    if (i < 0) return NULL;
    const ec_node *n = &s->m->nodes[i];
    /* only values nothing has overwritten: keep_all, or pinned and kept to the
     * end (a Grad-CAM checkpoint dies once its block's backward is done) */
    if (!s->keep_all && !s->pin[n->out] && n->out != s->m->output) return NULL;
    if (!s->keep_all && s->gradcam && n->out != s->m->output) {
        int b = s->plan.vbuf[n->out], tmax = 0;
        for (int j = 0; j < s->plan.n_bufs; j++) tmax = s->plan.bufs[j].last > tmax ? s->plan.bufs[j].last : tmax;
        if (b < 0 || s->plan.bufs[b].last < tmax) return NULL;
    }
    const ec_value *v = &s->m->values[n->out];
    if (h) *h = v->h;
    if (w) *w = v->w;
    if (c) *c = v->c;
    return s->vptr[n->out];
}

/* ---- predict ------------------------------------------------------------------------------ */

/* The input stage: an image's rows (from the reader im, or the caller's pixels)
 * resampled into s->rgb, the model's input, and, for the overlay, into s->base. */
static ec_status ec_session_set_input(ec_session *s, ec_img *im, const uint8_t *rgb, int width, int height)
{
    s->have_result = 0;
    double t_in = s->step_times ? ec_clock() : 0.0;
    const ec_value *vi = &s->m->values[s->m->input];
    ec_input_spec sp = { vi->w, vi->h, s->opt.resize, s->rgb, s->opt.overlay_resize, s->base, s->opt.max_pixels };
    ec_status st = ec_input_run(&sp, im, rgb, width, height, &s->in);
    if (s->step_times) {
        double dt = ec_clock() - t_in;
        s->step_times[s->plan.n_steps] += dt;
        s->step_times[s->plan.n_steps + 2] += dt;
    }
    return st;
}

/* Maps the whole pages of [p, p + n) in one call: the forward pass touches
 * nearly all of the arena and the scratch, and one call is much cheaper than a
 * page fault per 4 KB (V2-S: ~2,300 faults, ~4 ms of a cold start on this VM).
 * Done at the first run, after the input is decoded, so a large photo's decode
 * does not stack on these pages. A hint: kernels without it just fault. */
static void ec_prefault(void *p, size_t n)
{
#ifdef MADV_POPULATE_WRITE
    uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095, e = ((uintptr_t)p + n) & ~(uintptr_t)4095;
    if (e > a) (void)madvise((void *)a, e - a, MADV_POPULATE_WRITE);
#else
    (void)p, (void)n;
#endif
}

/* Everything after the input stage: s->rgb -> forward -> Grad-CAM -> *out. */
static ec_status ec_session_run(ec_session *s, ec_result *out)
{
    double t_in = s->step_times ? ec_clock() : 0.0;
    const ec_model *m = s->m;
    const ec_value *vi = &m->values[m->input];
    int H = vi->h, W = vi->w;
    float *x = s->vptr[m->input];   /* [H, W, 3] */
    for (size_t i = 0; i < (size_t)H * W * 3; i++) x[i] = (float)s->rgb[i];
    if (s->step_times) s->step_times[s->plan.n_steps] += ec_clock() - t_in;
    if (ec_model_checked(m) < 0) return ec_model_check_rest(m);   /* known corrupt: its message, at once */
    if (!s->prefaulted) {
        ec_prefault(s->arena, s->plan.arena_bytes);
        ec_prefault(s->col, s->col_bytes);
        ec_prefault(s->wide, s->wide_bytes);
#ifdef MADV_POPULATE_READ
        /* and the weights, which this pass reads all of: ~600 faults fewer */
        if (s->m->mapped) (void)madvise((void *)s->m->base, s->m->size, MADV_POPULATE_READ);
#endif
        s->prefaulted = 1;
    }
    ec_forward_steps(s, 0);
    if (ec_model_checked(m) <= 0) {
        /* the rest of the file's checksum: no result from a corrupt file */
        ec_status st = ec_model_check_rest(m);
        if (st) return st;
    }

    const float *p = s->vptr[m->output];   /* [K] */
    int K = m->n_labels, top = 0;
    for (int k = 0; k < K; k++)
        if (!isfinite(p[k]))
            return ec_fail(EC_ERR_FORMAT, "the model computed a non-finite output (%s for class %d): "
                                          "its weights or this input overflow float32", isnan(p[k]) ? "NaN" : "Inf", k);
    for (int k = 1; k < K; k++)
        if (p[k] > p[top]) top = k;   /* first max, as numpy argmax */
    memset(&s->res, 0, sizeof s->res);
    s->res.num_classes = K;
    s->res.probabilities = p;
    s->res.top_class = top;
    s->res.input_height = H, s->res.input_width = W;
    s->res.input_rgb = s->rgb;
    if (s->gradcam) {
        int cls = s->opt.cam_class >= 0 ? s->opt.cam_class : top;
        double t_cam = s->step_times ? ec_clock() : 0.0;
        ec_status st = ec_gradcam_run(&s->ex, &s->gc, cls, s->opt.cam_logit, s->cam_method, s->cam, NULL, s->cam_ws);
        if (s->step_times) s->step_times[s->plan.n_steps + 1] += ec_clock() - t_cam;
        if (st) return st;
        const ec_value *va = &m->values[s->gc.A];
        for (size_t i = 0; i < (size_t)va->h * va->w; i++)
            if (!isfinite(s->cam[i]))
                return ec_fail(EC_ERR_FORMAT, "the heatmap is not finite: the model's gradients overflow float32");
        s->res.cam = s->cam;
        s->res.cam_height = va->h, s->res.cam_width = va->w;
        s->res.cam_layer = s->gc.name;
        s->res.cam_method = ec_cam_method_name(s->cam_method);
        s->res.cam_class = cls;
        s->res.cam_logit = s->opt.cam_logit != 0;
    }
    s->have_result = 1;
    *out = s->res;
    if (s->step_times) s->step_times[s->plan.n_steps + 2] += ec_clock() - t_in;
    if (s->step_times == s->prof_t && s->prof_t) s->prof_runs++;
    return EC_OK;
}

ec_status ec_session_predict_rgb(ec_session *s, const uint8_t *rgb, int width, int height, ec_result *out)
{
    if (!s || !rgb || !out) return ec_fail(EC_ERR_ARG, "ec_session_predict_rgb: NULL argument");
    ec_status st = ec_session_set_input(s, NULL, rgb, width, height);
    return st ? st : ec_session_run(s, out);
}

ec_status ec_session_predict_file(ec_session *s, const char *path, ec_result *out)
{
    if (!s || !path || !out) return ec_fail(EC_ERR_ARG, "ec_session_predict_file: NULL argument");
    ec_img *im;
    s->have_result = 0;
    ec_status st = ec_img_open_file(path, s->opt.max_pixels, &im);   /* the header only */
    if (st) return st;
    st = ec_session_set_input(s, im, NULL, 0, 0);   /* rows stream through: the photo is never held */
    ec_img_close(im);
    return st ? st : ec_session_run(s, out);
}

ec_status ec_session_predict_encoded(ec_session *s, const void *data, size_t len, ec_result *out)
{
    if (!s || (!data && len) || !out) return ec_fail(EC_ERR_ARG, "ec_session_predict_encoded: NULL argument");
    ec_img *im;
    s->have_result = 0;
    ec_status st = ec_img_open_mem(data, len, s->opt.max_pixels, &im);
    if (st) return st;
    st = ec_session_set_input(s, im, NULL, 0, 0);
    ec_img_close(im);
    return st ? st : ec_session_run(s, out);
}

ec_status ec_session_set_resize(ec_session *s, ec_resize_filter filter)
{
    if (!s) return ec_fail(EC_ERR_ARG, "ec_session_set_resize: NULL session");
    if ((unsigned)filter > EC_RESIZE_LANCZOS) return ec_fail(EC_ERR_ARG, "resize filter %d (0..%d)", (int)filter, EC_RESIZE_LANCZOS);
    s->opt.resize = filter;
    return EC_OK;
}

/* ---- the overlay ------------------------------------------------------------------------ */

static ec_status ec_session_overlay(ec_session *s)
{
    if (!s->gradcam) return ec_fail(EC_ERR_STATE, "overlay needs a session created with gradcam = 1");
    if (!s->have_result) return ec_fail(EC_ERR_STATE, "overlay before a successful predict");
    const ec_value *vi = &s->m->values[s->m->input];
    return ec_overlay_rgba(s->cam, s->res.cam_height, s->res.cam_width, s->base, vi->h, vi->w, s->ov_scratch, s->rgba);
}

ec_status ec_session_overlay_png(ec_session *s, uint8_t **png, size_t *len)
{
    if (!s || !png || !len) return ec_fail(EC_ERR_ARG, "ec_session_overlay_png: NULL argument");
    *png = NULL;
    *len = 0;
    ec_status st = ec_session_overlay(s);
    if (st) return st;
    const ec_value *vi = &s->m->values[s->m->input];
    return ec_png_encode(s->rgba, vi->w, vi->h, 4, png, len);
}

ec_status ec_session_write_overlay(ec_session *s, const char *png_path)
{
    if (!s || !png_path) return ec_fail(EC_ERR_ARG, "ec_session_write_overlay: NULL argument");
    uint8_t *png;
    size_t n;
    ec_status st = ec_session_overlay_png(s, &png, &n);
    if (st) return st;
    st = ec_file_write_atomic(png_path, png, n, NULL, 0);
    free(png);
    return st;
}

/* ---- images ---------------------------------------------------------------------------- */

ec_status ec_image_load(const char *path, int64_t max_pixels, uint8_t **rgb, int *width, int *height)
{
    return ec_image_decode_file(path, max_pixels, rgb, width, height);
}

ec_status ec_image_load_resized(const char *path, int width, int height, ec_resize_filter filter,
                                int64_t max_pixels, uint8_t *rgb)
{
    if (!path || !rgb) return ec_fail(EC_ERR_ARG, "ec_image_load_resized: NULL argument");
    if (width <= 0 || height <= 0 || width > EC_MAX_DIM || height > EC_MAX_DIM)
        return ec_fail(EC_ERR_ARG, "ec_image_load_resized: bad size %dx%d", width, height);
    if ((unsigned)filter > EC_RESIZE_LANCZOS) return ec_fail(EC_ERR_ARG, "resize filter %d (0..%d)", (int)filter, EC_RESIZE_LANCZOS);
    if (max_pixels <= 0) return ec_fail(EC_ERR_ARG, "max_pixels = %lld must be positive", (long long)max_pixels);
    ec_img *im;
    ec_status st = ec_img_open_file(path, max_pixels, &im);
    if (st) return st;
    ec_input_scratch sc = { 0 };
    ec_input_spec sp = { width, height, filter, rgb, filter, NULL, max_pixels };
    st = ec_input_run(&sp, im, NULL, 0, 0, &sc);
    ec_input_scratch_free(&sc);
    ec_img_close(im);
    return st;
}

/* ---- profiling ------------------------------------------------------------------------------ */

/* What a step computes: its name with the fused nodes, an op class, FLOPs. */
static void ec_profile_describe(const ec_session *s, const ec_step *st, ec_profile_step *d, char *name, size_t cap)
{
    const ec_model *m = s->m;
    const ec_node *n = &m->nodes[st->node];
    const ec_value *vx = &m->values[n->in[0]], *vy = &m->values[st->out];
    memset(d, 0, sizeof *d);
    snprintf(name, cap, "%s%s%s", n->name, st->bn >= 0 ? "+bn" : "", st->actn >= 0 ? "+act" : "");
    d->name = name;
    d->op = ec_op_name(n->op);
    d->out_h = vy->h, d->out_w = vy->w, d->out_c = vy->c;
    double out = (double)vy->h * vy->w * vy->c, in = (double)vx->h * vx->w * vx->c;
    d->bytes = 4.0 * (in * (n->op == ECM_OP_IDENTITY || n->op == ECM_OP_RESHAPE ? 0 : n->n_in) + out);
    if (n->op == ECM_OP_CONV2D) {
        d->gemm_m = vy->h * vy->w, d->gemm_n = vy->c, d->gemm_k = n->kh * n->kw * vx->c;
        /* Winograd steps report the direct form's FLOPs, so GFLOP/s compare */
        d->op = n->kh * n->kw == 1 ? "conv1x1" : st->wino_tiles > 0 ? "wino3x3" : st->tile_rows > 0 ? "convKxK" : "conv";
    } else if (n->op == ECM_OP_DENSE) {
        d->gemm_m = vx->h * vx->w, d->gemm_n = vy->c, d->gemm_k = vx->c;
    } else if (n->op == ECM_OP_DWCONV2D) {
        d->flops = 2.0 * out * n->kh * n->kw;
    }
    if (d->gemm_m) d->flops = 2.0 * d->gemm_m * d->gemm_n * d->gemm_k;
    /* a banded pair (plan.c): the Winograd step runs the 1x1 conv after it, whose
     * FLOPs it reports too; that step's own row is empty */
    if (st->band) {
        const ec_node *n2 = &m->nodes[st[1].node];
        d->flops += 2.0 * vy->h * vy->w * vy->c * m->values[n2->out].c;
    }
    if (st->band_done) {
        snprintf(name, cap, "%s%s (banded, above)", n->name, st->bn >= 0 ? "+bn" : "");
        d->flops = 0;
    }
}

ec_status ec_session_profile_start(ec_session *s)
{
    if (!s) return ec_fail(EC_ERR_ARG, "ec_session_profile_start: NULL argument");
    int ns = s->plan.n_steps;
    if (!s->prof) {
        s->prof = calloc((size_t)ns + 1, sizeof *s->prof);
        s->prof_t = calloc((size_t)ns + 3, sizeof *s->prof_t);
        s->prof_names = calloc((size_t)ns + 1, sizeof *s->prof_names);
        if (!s->prof || !s->prof_t || !s->prof_names) {
            free(s->prof), free(s->prof_t), free(s->prof_names);
            s->prof = NULL, s->prof_t = NULL, s->prof_names = NULL;
            return ec_fail(EC_ERR_NOMEM, "out of memory");
        }
        for (int k = 0; k < ns; k++)
            ec_profile_describe(s, &s->plan.steps[k], &s->prof[k], s->prof_names[k], sizeof s->prof_names[k]);
    }
    memset(s->prof_t, 0, ((size_t)ns + 3) * sizeof *s->prof_t);
    s->prof_runs = 0;
    s->step_times = s->prof_t;
    return EC_OK;
}

void ec_session_profile_stop(ec_session *s)
{
    if (s && s->step_times == s->prof_t) s->step_times = NULL;
}

ec_status ec_session_profile_get(const ec_session *s, ec_profile *out)
{
    if (!s || !out) return ec_fail(EC_ERR_ARG, "ec_session_profile_get: NULL argument");
    memset(out, 0, sizeof *out);
    if (!s->prof) return ec_fail(EC_ERR_STATE, "profile before ec_session_profile_start");
    int ns = s->plan.n_steps;
    for (int k = 0; k < ns; k++) s->prof[k].seconds = s->prof_t[k];
    out->n_steps = ns;
    out->steps = s->prof;
    out->runs = s->prof_runs;
    out->input_seconds = s->prof_t[ns];
    out->backward_seconds = s->prof_t[ns + 1];
    out->total_seconds = s->prof_t[ns + 2];
    return EC_OK;
}

/* ---- the machine ------------------------------------------------------------------------------ */

void ec_backend(ec_backend_info *out)
{
    if (!out) return;
    out->kernels = ec_cpu_has_avx512() ? "avx512" : ec_cpu_has_avx2() ? "avx2" : "scalar";
    out->blas_core = ec_blas_core();
    out->blas_config = ec_blas_config();
}
