/* session.c - a session: the plan, the arena, the thread pool, the forward
 * pass, the predict API. Each op's backward twin (for Grad-CAM, driven by
 * gradcam.c) sits right under its forward, with the same argument order.
 *
 * Threading: work is split by rows of the output (GEMM rows, im2col tiles,
 * dwconv output rows, elementwise pixel rows), so every output element is
 * computed by the same arithmetic whatever the thread count: results are
 * bit-identical for threads = 1, 2, ... That needs care for GEMM: our
 * row-major M is OpenBLAS's column-major n, which its kernels tile by
 * 3 * UNROLL_N (12 on Haswell/Zen) with differently accumulating tail tiles,
 * so a row's bits depend on the tile it lands in. Split points at multiples
 * of EC_ROW_ALIGN = 48 (a multiple of 12, 16 and 24) put every row in the same
 * tile as the single call would (measured: 0 differing bits on 10 shapes). */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>

#include "../kernels/kernels.h"
#include "../kernels/resize.h"
#include "engine.h"
#include "error.h"
#include "image.h"

/* OpenBLAS's own setting (process-wide); declared here to keep cblas.h out of engine/. */
void openblas_set_num_threads(int num_threads);

#define EC_ROW_ALIGN 48   /* split points: multiples of this many rows (see above) */

/* ---- thread pool ------------------------------------------------------------------
 * threads - 1 workers plus the calling thread. A job is n_tasks calls of
 * fn(ctx, task, thread); the threads claim tasks from a shared counter until
 * none is left, so a thread that a busy host slows down takes fewer (the
 * splits below give each thread several). A task may use per-thread scratch
 * indexed by `thread`; no task's arithmetic depends on which thread runs it.
 *
 * A forward pass is ~250 jobs, many of them well under a millisecond, so a
 * futex wake per job (tens of microseconds until the worker runs) would cost
 * more than the work it hands over. Workers and the caller therefore spin on
 * the job counter for a while (EC_POOL_SPIN pause loops, ~0.1-0.5 ms) before
 * sleeping on a condition variable; between inferences they sleep. */

typedef void (*ec_task_fn)(void *ctx, int task, int thread);

typedef struct ec_pool ec_pool;
typedef struct { ec_pool *pool; int index; } ec_worker;

#define EC_POOL_SPIN 4096

struct ec_pool {
    int n;                        /* threads including the caller */
    pthread_t *tid;               /* [n - 1] */
    ec_worker *workers;           /* [n - 1] */
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    atomic_ulong gen;             /* bumped per job (release: the job fields are set) */
    atomic_int busy;              /* workers still on the current job */
    atomic_int next;              /* the current job's next unclaimed task */
    atomic_int quit;
    ec_task_fn fn;
    void *ctx;
    int n_tasks;
};

static inline void ec_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *ec_pool_main(void *arg)
{
    ec_worker *wk = arg;
    ec_pool *p = wk->pool;
    unsigned long seen = 0;
    for (;;) {
        unsigned long g = atomic_load_explicit(&p->gen, memory_order_acquire);
        for (int i = 0; g == seen && i < EC_POOL_SPIN; i++) {
            ec_cpu_relax();
            g = atomic_load_explicit(&p->gen, memory_order_acquire);
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen && !atomic_load(&p->quit))
                pthread_cond_wait(&p->go, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit)) break;
        seen = g;
        ec_task_fn fn = p->fn;
        void *ctx = p->ctx;
        int nt = p->n_tasks;
        for (int t; (t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed)) < nt;) fn(ctx, t, wk->index);
        if (atomic_fetch_sub_explicit(&p->busy, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);   /* the caller may be asleep on done */
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

static void ec_pool_free(ec_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, 1);
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n - 1; i++)
        if (p->workers[i].pool) pthread_join(p->tid[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p->tid);
    free(p->workers);
    free(p);
}

static ec_status ec_pool_new(int n, ec_pool **out)
{
    ec_pool *p = calloc(1, sizeof *p);
    if (!p) return ec_fail(EC_ERR_NOMEM, "out of memory (thread pool)");
    p->n = n;
    atomic_init(&p->gen, 0);
    atomic_init(&p->busy, 0);
    atomic_init(&p->next, 0);
    atomic_init(&p->quit, 0);
    p->tid = calloc((size_t)n, sizeof *p->tid);
    p->workers = calloc((size_t)n, sizeof *p->workers);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    if (!p->tid || !p->workers) {
        p->n = 1;
        ec_pool_free(p);
        return ec_fail(EC_ERR_NOMEM, "out of memory (thread pool)");
    }
    for (int i = 0; i < n - 1; i++) {
        p->workers[i].index = i + 1;
        p->workers[i].pool = p;
        if (pthread_create(&p->tid[i], NULL, ec_pool_main, &p->workers[i]) != 0) {
            p->workers[i].pool = NULL;   /* not started: not joined */
            ec_pool_free(p);
            return ec_fail(EC_ERR_NOMEM, "cannot start worker thread %d of %d", i + 1, n - 1);
        }
    }
    *out = p;
    return EC_OK;
}

static void ec_pool_run(ec_pool *p, int n_tasks, ec_task_fn fn, void *ctx)
{
    if (!p || n_tasks <= 1) {
        for (int t = 0; t < n_tasks; t++) fn(ctx, t, 0);
        return;
    }
    p->fn = fn, p->ctx = ctx, p->n_tasks = n_tasks;
    atomic_store_explicit(&p->busy, p->n - 1, memory_order_relaxed);
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);   /* published by the gen bump */
    /* the bump under the mutex: a worker checks gen and sleeps under it too, so
     * it either sees the new job or gets this broadcast */
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int t; (t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed)) < n_tasks;) fn(ctx, t, 0);
    for (int i = 0; atomic_load_explicit(&p->busy, memory_order_acquire) > 0 && i < EC_POOL_SPIN; i++)
        ec_cpu_relax();
    if (atomic_load_explicit(&p->busy, memory_order_acquire) > 0) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load_explicit(&p->busy, memory_order_acquire) > 0) pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}

/* ---- the session ------------------------------------------------------------------- */

struct ec_session {
    const ec_model *m;
    ec_session_options opt;
    int threads;
    ec_pool *pool;                /* NULL when threads == 1 */
    ec_plan plan;
    unsigned char *pin;           /* [n_values] */
    float **vptr;                 /* [n_values] forward value in the arena, NULL if fused away */
    unsigned char *arena;         /* [plan.arena_bytes] */
    /* scratch */
    float *col;                   /* [threads][plan.col_floats] im2col tiles */
    float *wide;                  /* [max_f16_elems] one layer's kernel widened from fp16 */
    uint8_t *rgb;                 /* [H * W * 3] the resized input the model saw */
    void *rs_scratch;             /* resize scratch, grown to the largest source seen */
    size_t rs_cap;
    size_t scratch_bytes;
    /* Grad-CAM: gradients, temporaries and the overlay live in the arena's dead
     * space after the forward pass (ec_plan_append_after) */
    int gradcam;
    ec_gradcam_plan gc;
    float **gptr;                 /* [n_values] gradient buffers, in the arena */
    float *gtmp;                  /* [gc.tmp_floats] in the arena */
    float *cam;                   /* [A.h * A.w] */
    uint8_t *rgba;                /* [H * W * 4] overlay, in the arena */
    void *ov_scratch;             /* in the arena */
    /* last result */
    int have_result;
    int prefaulted;               /* the big buffers' pages, at the first run */
    size_t col_bytes, wide_bytes;
    ec_result res;
    double *step_times;           /* profiling, NULL = off (see ec_session_set_step_times) */
};

const ec_model *ec_session_model(const ec_session *s) { return s->m; }
float *ec_session_value(const ec_session *s, int v) { return s->vptr[v]; }
float *ec_session_grad(const ec_session *s, int v) { return s->gptr ? s->gptr[v] : NULL; }
float *ec_session_tmp(const ec_session *s) { return s->gtmp; }
const ec_gradcam_plan *ec_session_gradcam(const ec_session *s) { return s->gradcam ? &s->gc : NULL; }
const ec_plan *ec_session_plan(const ec_session *s) { return &s->plan; }
void ec_session_set_step_times(ec_session *s, double *t) { s->step_times = t; }

static double ec_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int ec_round_up(int x, int a) { return (x + a - 1) / a * a; }

/* Items per task when `total` items (rows, panels, ...) go to the session's
 * threads: about EC_TASKS_PER_THREAD tasks per thread, each a multiple of
 * `align`. The threads claim tasks as they come free (ec_pool_run), so a
 * thread the host delays leaves more of them to the others; one task per
 * thread would make every split wait for the slower thread. Splits never
 * change results: every element's arithmetic is independent of them. */
#define EC_TASKS_PER_THREAD 4

static int ec_per_task(const ec_session *s, int total, int align)
{
    if (total <= 0) return 1;
    if (s->threads <= 1 || total < 2 * align) return total;
    /* k align-units per task, from 2 * EC_TASKS_PER_THREAD tasks per thread down:
     * the smallest longest-thread share, ceil(tasks / threads) * k, wins, ties
     * going to more tasks (10 panels on 2 threads: 10 tasks of 1, 5 each, not
     * 5 tasks of 2, 3 against 2) */
    const int T = s->threads, units = (total + align - 1) / align;
    int k0 = (units + 2 * T * EC_TASKS_PER_THREAD - 1) / (2 * T * EC_TASKS_PER_THREAD), best = units, span = INT_MAX;
    for (int k = k0; k <= units && k < k0 + 64; k++) {
        int n = (units + k - 1) / k, sp = (n + T - 1) / T * k;
        if (sp < span) span = sp, best = k;
    }
    return best * align;
}

/* Rows per task for OpenBLAS GEMMs and elementwise ops: EC_ROW_ALIGN multiples. */
static int ec_split_rows(const ec_session *s, int rows) { return ec_per_task(s, rows, EC_ROW_ALIGN); }

/* fp16 -> fp32 widening of a [rows, cols] kernel into s->wide, optionally times
 * scale[col], split by rows across the threads (a pure conversion: any split
 * gives the same bits). */
typedef struct {
    const uint16_t *src;
    float *dst;
    size_t rows, rows_per;
    int cols;
    const float *scale;
} ec_widen_task;

static void ec_widen_rows(void *ctx, int task, int thread)
{
    (void)thread;
    const ec_widen_task *t = ctx;
    size_t r0 = (size_t)task * t->rows_per, r1 = r0 + t->rows_per < t->rows ? r0 + t->rows_per : t->rows;
    const uint16_t *src = t->src + r0 * (size_t)t->cols;
    float *dst = t->dst + r0 * (size_t)t->cols;
    if (t->scale) ec_f16_to_f32_scale_cols(src, dst, r1 - r0, t->cols, t->scale);
    else ec_f16_to_f32_n(src, dst, (r1 - r0) * (size_t)t->cols);
}

static void ec_widen(ec_session *s, const ec_tensor *T, size_t rows, int cols, const float *scale)
{
    ec_widen_task t = { T->data, s->wide, rows, rows, cols, scale };
    /* below ~64 K elements a second thread costs more than it saves */
    if (s->threads > 1 && rows * (size_t)cols >= (64u << 10) && rows <= INT_MAX)
        t.rows_per = (size_t)ec_per_task(s, (int)rows, 1);
    ec_pool_run(s->pool, (int)((rows + t.rows_per - 1) / t.rows_per), ec_widen_rows, &t);
}

const float *ec_session_weights(ec_session *s, int t)
{
    const ec_tensor *T = &s->m->tensors[t];
    if (T->dtype == ECM_DT_F32) return T->data;
    /* fp16 kernels are widened per layer: only the largest one is ever resident */
    ec_widen(s, T, (size_t)T->elems, 1, NULL);
    return s->wide;
}


/* ---- conv2d / dense: GEMM over row blocks ------------------------------------------------
 * y[M, N] = epilogue(A[M, K] @ W[K, N]); A is the input itself (1x1 conv, dense)
 * or im2col tiles of it (k x k conv). */

typedef struct {
    const float *x;               /* conv: [in_h, in_w, cin]; 1x1/dense: [M, K] */
    const float *w;               /* [K, N] */
    float *y;                     /* [M, N] */
    int M, N, K, rows;            /* rows per task */
    int cols;                     /* ec_mm_cols: columns per task */
    const float *scale, *shift;   /* [N] each or NULL */
    int act;
    int prefill;                  /* shift (no scale) goes into C before the GEMM, beta = 1 */
    const ec_conv_geom *g;        /* NULL: no im2col */
    float *col;                   /* [threads][col_stride] */
    size_t col_stride;
} ec_mm_task;

static void ec_mm_rows(void *ctx, int task, int thread)
{
    const ec_mm_task *t = ctx;
    int p0 = task * t->rows, p1 = p0 + t->rows < t->M ? p0 + t->rows : t->M;
    const float *a = t->x + (size_t)p0 * t->K;   /* [p1 - p0, K] */
    if (t->g) {
        float *col = t->col + (size_t)thread * t->col_stride;   /* [p1 - p0, K] */
        ec_f32_im2col(t->g, t->x, p0, p1, col);
        a = col;
    }
    float *y = t->y + (size_t)p0 * t->N;         /* [p1 - p0, N] */
    if (t->prefill) {
        /* C starts as the shift and the GEMM adds into it (beta = 1): OpenBLAS then
         * skips its own pass over C (zeroing it for beta = 0), and a linear layer
         * needs no epilogue at all. The shift's add comes first instead of last,
         * the same for every row split. */
        for (int r = p0; r < p1; r++) memcpy(y + (size_t)(r - p0) * t->N, t->shift, (size_t)t->N * sizeof *y);
        ec_gemm(p1 - p0, t->N, t->K, a, t->K, t->w, t->N, 1.0f, y, t->N);
        if (t->act != EC_ACT_LINEAR) ec_f32_act(y, y, (size_t)(p1 - p0), t->N, t->act);
        return;
    }
    ec_gemm(p1 - p0, t->N, t->K, a, t->K, t->w, t->N, 0.0f, y, t->N);
    if (t->scale || t->shift || t->act != EC_ACT_LINEAR)
        ec_f32_affine_act(y, (size_t)(p1 - p0), t->N, t->scale, t->shift, t->act);
}

/* Few rows (the 10x10 stage: M = 100) do not split into row blocks at multiples
 * of EC_ROW_ALIGN; such GEMMs are cut into EC_COL_BLOCKS column blocks instead,
 * for every thread count (1 included), so the calls - and the bits - are the
 * same whatever the threads. A column block re-reads A (small here). */
#define EC_COL_BLOCKS 4

static int ec_col_split(int M, int N)
{
    if (M >= 4 * EC_ROW_ALIGN || M < 16 || N < 128) return 0;
    return ec_round_up((N + EC_COL_BLOCKS - 1) / EC_COL_BLOCKS, 16);
}

static void ec_mm_cols(void *ctx, int task, int thread)
{
    (void)thread;
    const ec_mm_task *t = ctx;
    int n0 = task * t->cols, nb = n0 + t->cols < t->N ? t->cols : t->N - n0;
    float *y = t->y + n0;                        /* [M, nb], row stride N */
    if (t->prefill) {
        for (int r = 0; r < t->M; r++) memcpy(y + (size_t)r * t->N, t->shift + n0, (size_t)nb * sizeof *y);
        ec_gemm(t->M, nb, t->K, t->x, t->K, t->w + n0, t->N, 1.0f, y, t->N);
        if (t->act != EC_ACT_LINEAR)
            for (int r = 0; r < t->M; r++) ec_f32_act(y + (size_t)r * t->N, y + (size_t)r * t->N, 1, nb, t->act);
        return;
    }
    ec_gemm(t->M, nb, t->K, t->x, t->K, t->w + n0, t->N, 0.0f, y, t->N);
    if (t->scale || t->shift || t->act != EC_ACT_LINEAR)
        for (int r = 0; r < t->M; r++)
            ec_f32_affine_act(y + (size_t)r * t->N, 1, nb, t->scale ? t->scale + n0 : NULL,
                              t->shift ? t->shift + n0 : NULL, t->act);
}


/* ---- conv2d / dense on packed weights (kernels/pgemm.c) ----------------------------------
 * The kernel is packed once per layer into s->wide (fp16 widened, BN scale folded
 * in; split by panels across the threads, a pure conversion), then row blocks go
 * to the threads: each computes act(shift + A @ W) for its rows and every panel,
 * with A the input itself (1x1 conv, dense) or the thread's im2col tile. The
 * kernel sums every element the same way whatever the split, so results are
 * bit-identical for any thread count. */
typedef struct {
    const void *w;
    int w_f16, K, N, per;
    const float *scale;
    float *bp;
} ec_pack_task;

static void ec_pack_panels(void *ctx, int task, int thread)
{
    (void)thread;
    const ec_pack_task *t = ctx;
    int np = (t->N + EC_PG_NR - 1) / EC_PG_NR, p0 = task * t->per, p1 = p0 + t->per < np ? p0 + t->per : np;
    ec_pack_b(t->w, t->w_f16, t->scale, t->K, t->N, p0, p1, t->bp);
}

static void ec_pg_rows(void *ctx, int task, int thread)
{
    const ec_mm_task *t = ctx;
    int p0 = task * t->rows, p1 = p0 + t->rows < t->M ? p0 + t->rows : t->M;
    const float *a = t->x + (size_t)p0 * t->K;   /* [p1 - p0, K] */
    if (t->g) {
        float *col = t->col + (size_t)thread * t->col_stride;
        ec_f32_im2col(t->g, t->x, p0, p1, col);
        a = col;
    }
    ec_gemm_packed(p1 - p0, t->N, t->K, a, t->K, t->w, t->shift, t->act, t->y + (size_t)p0 * t->N, t->N, 0, p1 - p0, 0,
                   (t->N + EC_PG_NR - 1) / EC_PG_NR);
}

/* A 1x1 conv's panels [task * cols, ...) for all rows (t->cols panels per task). */
static void ec_pg_panels(void *ctx, int task, int thread)
{
    (void)thread;
    const ec_mm_task *t = ctx;
    int np = (t->N + EC_PG_NR - 1) / EC_PG_NR, p0 = task * t->cols, p1 = p0 + t->cols < np ? p0 + t->cols : np;
    ec_gemm_packed(t->M, t->N, t->K, t->x, t->K, t->w, t->shift, t->act, t->y, t->N, 0, t->M, p0, p1);
}

static void ec_packed_conv(ec_session *s, const ec_step *st, ec_mm_task *t)
{
    const ec_model *m = s->m;
    const ec_tensor *W = &m->tensors[m->nodes[st->node].w[0]];   /* [K, N] */
    int np = (t->N + EC_PG_NR - 1) / EC_PG_NR;
    ec_pack_task pk = { W->data, W->dtype == ECM_DT_F16, t->K, t->N, np, st->scale, s->wide };
    /* below ~64 K weights a second thread costs more than it saves */
    if (s->threads > 1 && (size_t)t->K * t->N >= (64u << 10)) pk.per = ec_per_task(s, np, 1);
    ec_pool_run(s->pool, (np + pk.per - 1) / pk.per, ec_pack_panels, &pk);
    t->w = s->wide;
    if (!t->g && s->threads > 1 && np >= 2 * s->threads && t->M <= 512) {
        /* few rows: split by panels (rows at micro-tile multiples leave 54 + 46
         * of the 10x10 stage's 100); each task reads all of A, at most 512 rows */
        t->cols = ec_per_task(s, np, 1);
        ec_pool_run(s->pool, (np + t->cols - 1) / t->cols, ec_pg_panels, t);
        return;
    }
    if (!t->g) t->rows = ec_per_task(s, t->M, EC_PG_MR);   /* at micro-tile multiples */
    ec_pool_run(s->pool, (t->M + t->rows - 1) / t->rows, ec_pg_rows, t);
}

typedef struct {
    ec_conv_params p;
    const float *x, *w, *scale, *shift;   /* x [in_h, in_w, cin], w [kh, kw, cin, cout] */
    float *y;                             /* [out_h, out_w, cout] */
    int rows;                             /* output rows per task */
} ec_direct_task;

static void ec_direct_rows(void *ctx, int task, int thread)
{
    const ec_direct_task *t = ctx;
    int y0 = task * t->rows, y1 = y0 + t->rows < t->p.g.out_h ? y0 + t->rows : t->p.g.out_h;
    ec_f32_conv_direct(&t->p, t->x, t->w, t->scale, t->shift, t->y, y0, y1);
}

static void ec_direct_conv(ec_session *s, const ec_step *st, const ec_conv_geom *g, const float *x,
                           const float *w, const float *scale, const float *shift, float *y)
{
    ec_direct_task t = { { *g, s->m->values[st->out].c, st->act }, x, w, scale, shift, y, 0 };
    /* whole output rows per task: each element's arithmetic does not depend on the split */
    t.rows = ec_per_task(s, g->out_h, 1);
    ec_pool_run(s->pool, (g->out_h + t.rows - 1) / t.rows, ec_direct_rows, &t);
}

/* 3x3 stride-1 convs as Winograd F(2x2, 3x3) (kernels/winograd.c) or F(4x4, 3x3)
 * (winograd43.c, when the plan picked it): per task, T tiles through the input
 * transform, 16 or 36 GEMMs and the output transform, in the thread's scratch;
 * U (the transformed kernel) is shared, in s->wide. */
typedef struct {
    const ec_conv_geom *g;
    const float *x, *u, *shift;
    float *y, *col;
    size_t col_stride;
    int cin, cout, T, n_tiles, act;
    int f43;                      /* F(4x4, 3x3): 36 positions, else F(2x2, 3x3): 16 */
    size_t u_stride;              /* floats between packed U[xi]; 0: U plain [nxi][cin][cout] for OpenBLAS */
} ec_wino_task;

static void ec_wino_tiles(void *ctx, int task, int thread)
{
    const ec_wino_task *t = ctx;
    int t0 = task * t->T, t1 = t0 + t->T < t->n_tiles ? t0 + t->T : t->n_tiles, nt = t1 - t0;
    const int nxi = t->f43 ? 36 : 16;
    float *v = t->col + (size_t)thread * t->col_stride;   /* [nxi][nt][cin] */
    float *mm = v + (size_t)nxi * nt * t->cin;            /* [nxi][nt][cout] */
    if (t->f43) ec_wino43_input(t->g, t->x, t0, t1, v);
    else ec_wino23_input(t->g, t->x, t0, t1, v);
    for (int xi = 0; xi < nxi; xi++) {
        const float *a = v + (size_t)xi * nt * t->cin;   /* [nt, cin] */
        float *c = mm + (size_t)xi * nt * t->cout;        /* [nt, cout] */
        if (t->u_stride)   /* U[xi] packed in panels */
            ec_gemm_packed(nt, t->cout, t->cin, a, t->cin, t->u + xi * t->u_stride, NULL, EC_ACT_LINEAR, c, t->cout, 0,
                           nt, 0, (t->cout + EC_PG_NR - 1) / EC_PG_NR);
        else
            ec_gemm(nt, t->cout, t->cin, a, t->cin, t->u + (size_t)xi * t->cin * t->cout, t->cout, 0.0f, c, t->cout);
    }
    if (t->f43) ec_wino43_output(t->g, t->cout, mm, t0, t1, t->shift, t->act, t->y);
    else ec_wino23_output(t->g, t->cout, mm, t0, t1, t->shift, t->act, t->y);
}

/* The weight transform, input channels [task * per, ...) per task: U goes
 * straight into s->wide, in panels for the packed GEMM when the CPU has AVX2
 * (u_stride), else plain for sgemm. */
typedef struct {
    const void *w;
    const float *scale;
    int w_f16, cin, cout, per, f43;
    size_t u_stride, tmp_stride;
    float *u, *tmp;               /* tmp: [threads][tmp_stride], F(2x2)'s scalar twin */
} ec_wino_w_task;

static void ec_wino_w_rows(void *ctx, int task, int thread)
{
    const ec_wino_w_task *t = ctx;
    int c0 = task * t->per, c1 = c0 + t->per < t->cin ? c0 + t->per : t->cin;
    if (t->f43) ec_wino43_weights(t->w, t->w_f16, t->scale, t->cin, t->cout, c0, c1, t->u_stride, t->u);
    else
        ec_wino23_weights(t->w, t->w_f16, t->scale, t->cin, t->cout, c0, c1, t->u_stride,
                          t->tmp + (size_t)thread * t->tmp_stride, t->u);
}

static void ec_wino_conv(ec_session *s, const ec_step *st, const ec_conv_geom *g, const float *x, float *y)
{
    const ec_model *m = s->m;
    const ec_node *n = &m->nodes[st->node];
    const ec_tensor *W = &m->tensors[n->w[0]];
    int cin = g->c, cout = m->values[n->out].c, f43 = st->wino_f43;
    /* the BN scale goes into U; the scratch is free until the tile tasks start */
    ec_wino_w_task wt = { W->data, st->scale, W->dtype == ECM_DT_F16, cin, cout, ec_per_task(s, cin, 1), f43,
                          ec_cpu_has_avx2() ? ec_pack_b_floats(cin, cout) : 0, s->plan.col_floats, s->wide, s->col };
    ec_pool_run(s->pool, (cin + wt.per - 1) / wt.per, ec_wino_w_rows, &wt);
    ec_wino_task t = { g, x, s->wide, st->shift, y, s->col, s->plan.col_floats, cin, cout, st->wino_tiles,
                       f43 ? ec_wino43_tiles(g) : ec_wino23_tiles(g), st->act, f43, wt.u_stride };
    ec_pool_run(s->pool, (t.n_tiles + t.T - 1) / t.T, ec_wino_tiles, &t);
}

static void ec_conv_forward(ec_session *s, const ec_step *st, const float *x, float *y)
{
    const ec_model *m = s->m;
    const ec_node *n = &m->nodes[st->node];
    const ec_value *vx = &m->values[n->in[0]], *vy = &m->values[n->out];
    ec_conv_geom g = { vx->h, vx->w, vx->c, vy->h, vy->w, n->kh, n->kw, n->sh, n->sw, n->pt, n->pl };
    ec_mm_task t = { x, NULL, y, vy->h * vy->w, vy->c, 0, 0, 0,
                     st->scale, st->shift, st->act, 0, NULL, s->col, s->plan.col_floats };
    if (n->op == ECM_OP_DENSE) {
        t.K = vx->c;
        t.M = vx->h * vx->w;
    } else {
        t.K = n->kh * n->kw * vx->c;
    }
    if (st->wino_tiles > 0) {
        ec_wino_conv(s, st, &g, x, y);
        if (st->softmax) ec_f32_act(y, y, (size_t)t.M, t.N, EC_ACT_SOFTMAX);
        return;
    }
    const int direct = n->op == ECM_OP_CONV2D && st->tile_rows > 0 && t.N <= EC_DIRECT_MAX_COUT;
    if (!direct && ec_cpu_has_avx2()) {
        /* 1x1 convs, dense, and k x k convs over im2col tiles: the packed GEMM with
         * its fused epilogue. Without AVX2, OpenBLAS below is the faster path. */
        if (st->tile_rows > 0) t.g = &g, t.rows = st->tile_rows;
        ec_packed_conv(s, st, &t);
        if (st->softmax) ec_f32_act(y, y, (size_t)t.M, t.N, EC_ACT_SOFTMAX);
        return;
    }
    const ec_tensor *W = &m->tensors[n->w[0]];   /* [K, N] */
    if (W->dtype == ECM_DT_F16 && st->scale) {
        /* BN folded into the kernel while it is widened anyway: (A @ W) * s becomes
         * A @ (W * s), one multiply per weight instead of per output. A step has a
         * scale only when its BN was fused, never for a pinned (Grad-CAM target)
         * output, whose raw conv result must stay in the arena. fp32 kernels are
         * used in place from the map: they keep the epilogue (a copy would cost a
         * kernel-sized buffer and a pass). */
        ec_widen(s, W, (size_t)t.K, t.N, st->scale);
        t.w = s->wide;
        t.scale = NULL;
    } else {
        t.w = ec_session_weights(s, n->w[0]);
    }
    t.prefill = !t.scale && t.shift;
    if (direct && ec_cpu_has_avx2()) {
        ec_direct_conv(s, st, &g, x, t.w, t.scale, t.shift, y);
        if (st->softmax) ec_f32_act(y, y, (size_t)t.M, t.N, EC_ACT_SOFTMAX);
        return;
    }
    if (st->tile_rows > 0) {
        t.g = &g;
        t.rows = st->tile_rows;   /* fixed by the plan, independent of the thread count */
    } else if ((t.cols = ec_col_split(t.M, t.N)) > 0) {
        ec_pool_run(s->pool, (t.N + t.cols - 1) / t.cols, ec_mm_cols, &t);
        if (st->softmax) ec_f32_act(y, y, (size_t)t.M, t.N, EC_ACT_SOFTMAX);
        return;
    } else {
        t.rows = ec_split_rows(s, t.M);
    }
    ec_pool_run(s->pool, (t.M + t.rows - 1) / t.rows, ec_mm_rows, &t);
    if (st->softmax) ec_f32_act(y, y, (size_t)t.M, t.N, EC_ACT_SOFTMAX);
}

/* dense: dx[M, cin] (+)= dz[M, cout] @ W^T, dz from dy through the activation. */
void ec_dense_backward(ec_session *s, const ec_node *n, const float *x, const float *y,
                       const float *dy, float *dx, int acc, int dy_is_dlogit)
{
    const ec_model *m = s->m;
    const ec_value *vx = &m->values[n->in[0]];
    int M = vx->h * vx->w, cin = vx->c, cout = m->values[n->out].c;
    const float *w = ec_session_weights(s, n->w[0]);   /* [cin, cout] */
    float *dz = s->gtmp;                                /* [M, cout] */
    float *z = s->gtmp + s->gc.tmp_floats / 2;          /* [M, cout] */
    if (n->act == ECM_ACT_LINEAR || (n->act == ECM_ACT_SOFTMAX && dy_is_dlogit)) {
        memcpy(dz, dy, (size_t)M * cout * sizeof *dz);
    } else if (n->act == ECM_ACT_SOFTMAX) {
        ec_f32_softmax_backward(y, dy, dz, (size_t)M, cout);
    } else {
        /* the pre-activation was fused away: recompute it (the head is tiny) */
        ec_gemm(M, cout, cin, x, cin, w, cout, 0.0f, z, cout);
        if (n->bias) ec_f32_affine_act(z, (size_t)M, cout, NULL, n->bias, EC_ACT_LINEAR);
        ec_f32_act_backward(z, dy, dz, (size_t)M, cout, n->act);
    }
    for (int r = 0; r < M; r++) {
        const float *dzr = dz + (size_t)r * cout;   /* [cout] */
        float *dxr = dx + (size_t)r * cin;          /* [cin] */
        for (int i = 0; i < cin; i++) {
            const float *wi = w + (size_t)i * cout; /* row i of W: [cout] */
            float sum = 0.0f;
            for (int j = 0; j < cout; j++) sum += dzr[j] * wi[j];
            dxr[i] = acc ? dxr[i] + sum : sum;
        }
    }
}

/* ---- dwconv2d -------------------------------------------------------------------------- */

typedef struct {
    ec_dwconv_params p;
    const float *x, *w, *scale, *shift;   /* x [in_h, in_w, c], w [kh, kw, c, mult] */
    float *y;                             /* [out_h, out_w, c * mult] */
    int rows;                             /* output rows per task */
} ec_dw_task;

static void ec_dw_rows(void *ctx, int task, int thread)
{
    const ec_dw_task *t = ctx;
    int y0 = task * t->rows, y1 = y0 + t->rows < t->p.g.out_h ? y0 + t->rows : t->p.g.out_h;
    ec_f32_dwconv(&t->p, t->x, t->w, t->scale, t->shift, t->y, y0, y1);
}

static void ec_dwconv_forward(ec_session *s, const ec_step *st, const float *x, float *y)
{
    const ec_model *m = s->m;
    const ec_node *n = &m->nodes[st->node];
    const ec_value *vx = &m->values[n->in[0]], *vy = &m->values[n->out];
    ec_dw_task t;
    t.p.g = (ec_conv_geom){ vx->h, vx->w, vx->c, vy->h, vy->w, n->kh, n->kw, n->sh, n->sw, n->pt, n->pl };
    t.p.mult = n->mult;
    t.p.act = st->act;
    t.x = x, t.w = ec_session_weights(s, n->w[0]), t.scale = st->scale, t.shift = st->shift, t.y = y;
    /* whole output rows per task: each element's arithmetic does not depend on the split */
    t.rows = ec_per_task(s, vy->h, 1);
    ec_pool_run(s->pool, (vy->h + t.rows - 1) / t.rows, ec_dw_rows, &t);
    if (st->softmax) ec_f32_act(y, y, (size_t)vy->h * vy->w, vy->c, EC_ACT_SOFTMAX);
}

/* ---- elementwise ops over pixel rows ---------------------------------------------------- */

typedef struct {
    const ec_session *s;
    const ec_step *st;
    int rows;                     /* pixel rows per task */
    int n_rows;
} ec_ew_task;

static void ec_ew_rows(void *ctx, int task, int thread)
{
    const ec_ew_task *t = ctx;
    const ec_model *m = t->s->m;
    const ec_step *st = t->st;
    const ec_node *n = &m->nodes[st->node];
    int c = m->values[n->out].c;
    size_t r0 = (size_t)task * t->rows, r1 = r0 + t->rows < (size_t)t->n_rows ? r0 + t->rows : (size_t)t->n_rows;
    size_t e0 = r0 * c, ne = (r1 - r0) * c;          /* element range */
    float *y = t->s->vptr[st->out] + e0;              /* [r1 - r0, c] */
    /* [r1 - r0, c]: every op but mul has one input shaped like y */
    const float *x = n->op == ECM_OP_MUL ? NULL : t->s->vptr[n->in[0]] + e0;
    switch (n->op) {
    case ECM_OP_ACTIVATION:
        ec_f32_act(x, y, r1 - r0, c, n->act);
        break;
    case ECM_OP_BATCHNORM:
        if (x != y) memcpy(y, x, ne * sizeof *y);
        ec_f32_affine_act(y, r1 - r0, c, n->scale, n->shift, EC_ACT_LINEAR);
        break;
    case ECM_OP_NORMALIZE:
        /* Keras: (x - mean) / std; shift holds the mean, scale 1/std */
        for (size_t r = 0; r < r1 - r0; r++)
            for (int k = 0; k < c; k++) y[r * c + k] = (x[r * c + k] - n->shift[k]) * n->scale[k];
        break;
    case ECM_OP_RESCALE:
        /* two roundings, as Keras's x * scale + offset (no FMA contraction in ISO C mode) */
        for (size_t i = 0; i < ne; i++) y[i] = x[i] * n->f0 + n->f1;
        break;
    case ECM_OP_ADD: {
        /* y = in[first] + in[second] + ...; in place, y already holds in[inplace_in] */
        int k0 = st->inplace ? st->inplace_in : 0, k = 0;
        const float *a = t->s->vptr[n->in[k0]] + e0;
        for (int j = 0; j < n->n_in; j++) {
            if (j == k0) continue;
            const float *b = t->s->vptr[n->in[j]] + e0;
            ec_f32_add(k++ == 0 ? a : y, b, y, ne);
        }
        break;
    }
    case ECM_OP_MUL: {
        const ec_value *va = &m->values[n->in[0]], *vb = &m->values[n->in[1]];
        const float *a = t->s->vptr[n->in[0]], *b = t->s->vptr[n->in[1]];
        if (va->h == vb->h && va->w == vb->w)
            ec_f32_mul(a + e0, b + e0, y, ne);
        else if (vb->h == 1 && vb->w == 1)
            ec_f32_mul_bcast(a + e0, b, y, r1 - r0, c);
        else
            ec_f32_mul_bcast(b + e0, a, y, r1 - r0, c);
        break;
    }
    default:
        break;
    }
}

/* y = act(x): dx (+)= dy * act'(x), or the softmax rule from y. */
void ec_act_backward(ec_session *s, int act, const float *x, const float *y, size_t rows, int c,
                     const float *dy, float *dx, int acc)
{
    float *d = acc ? s->gtmp : dx;   /* [rows, c] */
    if (act == ECM_ACT_SOFTMAX)
        ec_f32_softmax_backward(y, dy, d, rows, c);
    else if (act == ECM_ACT_LINEAR)
        memcpy(d, dy, rows * c * sizeof *d);
    else
        ec_f32_act_backward(x, dy, d, rows, c, act);
    if (acc) ec_f32_add(dx, d, dx, rows * c);
}

/* y = x * scale[c] (+ shift) (batchnorm, normalize) or x * f (rescale, scale NULL):
 * dx (+)= dy * scale. */
void ec_scale_backward(const float *scale, float f, size_t rows, int c, const float *dy, float *dx, int acc)
{
    for (size_t r = 0; r < rows; r++)
        for (int k = 0; k < c; k++) {
            float g = dy[r * c + k] * (scale ? scale[k] : f);
            dx[r * c + k] = acc ? dx[r * c + k] + g : g;
        }
}

/* y = x (identity, reshape, each input of add): dx (+)= dy. */
void ec_copy_backward(size_t n, const float *dy, float *dx, int acc)
{
    if (acc) ec_f32_add(dx, dy, dx, n);
    else memcpy(dx, dy, n * sizeof *dx);
}

/* y = a * b (b same shape or broadcast, or a the broadcast one): the gradient
 * for a, from b. */
void ec_mul_backward(const ec_value *va, const float *b, const ec_value *vb, const float *dy, float *da, int acc)
{
    int c = va->c;
    if (va->h == vb->h && va->w == vb->w) {           /* da = dy * b */
        size_t n = (size_t)va->h * va->w * c;
        for (size_t i = 0; i < n; i++) da[i] = acc ? da[i] + dy[i] * b[i] : dy[i] * b[i];
    } else if (vb->h == 1 && vb->w == 1) {            /* a full, b [c]: da = dy * b[c] */
        size_t hw = (size_t)va->h * va->w;
        for (size_t p = 0; p < hw; p++)
            for (int k = 0; k < c; k++) {
                float g = dy[p * c + k] * b[k];
                da[p * c + k] = acc ? da[p * c + k] + g : g;
            }
    } else {                                          /* a [c], b full: da[c] = sum_hw dy * b */
        size_t hw = (size_t)vb->h * vb->w;
        for (int k = 0; k < c; k++) {
            float sum = 0.0f;
            for (size_t p = 0; p < hw; p++) sum += dy[p * c + k] * b[p * c + k];
            da[k] = acc ? da[k] + sum : sum;
        }
    }
}

static void ec_ew_forward(ec_session *s, const ec_step *st)
{
    const ec_value *vy = &s->m->values[st->out];
    ec_ew_task t = { s, st, 0, vy->h * vy->w };
    t.rows = ec_split_rows(s, t.n_rows);
    ec_pool_run(s->pool, (t.n_rows + t.rows - 1) / t.rows, ec_ew_rows, &t);
}

/* ---- gap (split by channels), zeropad --------------------------------------------------- */

/* y[c] = mean over hw of x[hw, c] */
typedef struct {
    const float *x;
    float *y;
    size_t hw;
    int c, per;                   /* channels, channels per task */
} ec_gap_task;

static void ec_gap_cols(void *ctx, int task, int thread)
{
    (void)thread;
    const ec_gap_task *t = ctx;
    int c0 = task * t->per, n = c0 + t->per < t->c ? t->per : t->c - c0;
    ec_f32_gap(t->x + c0, t->hw, n, (size_t)t->c, t->y + c0);
}

/* split by channels (32 at a time) when there is enough to split: the SE
 * squeezes of stages 4-6 read 0.15-1.4 MB each; each channel's sum is the same
 * whatever the split */
static void ec_gap_forward(ec_session *s, size_t hw, int c, const float *x, float *y)
{
    ec_gap_task t = { x, y, hw, c, c };
    if (s->threads > 1 && hw * (size_t)c >= (64u << 10)) t.per = ec_per_task(s, c, 32);
    ec_pool_run(s->pool, (c + t.per - 1) / t.per, ec_gap_cols, &t);
}

/* dx[hw, c] (+)= dy[c] / hw */
void ec_gap_backward(size_t hw, int c, const float *dy, float *dx, int acc)
{
    float inv = 1.0f / (float)hw;
    for (size_t p = 0; p < hw; p++)
        for (int k = 0; k < c; k++) dx[p * c + k] = acc ? dx[p * c + k] + dy[k] * inv : dy[k] * inv;
}

/* y = x padded with zeros: dx (+)= the interior of dy. */
void ec_zeropad_backward(const ec_node *n, const ec_value *vx, const ec_value *vy, const float *dy, float *dx, int acc)
{
    size_t row = (size_t)vx->w * vx->c;
    for (int r = 0; r < vx->h; r++) {
        const float *src = dy + ((size_t)(r + n->pt) * vy->w + n->pl) * vy->c;   /* [w * c] */
        float *dst = dx + (size_t)r * row;
        for (size_t i = 0; i < row; i++) dst[i] = acc ? dst[i] + src[i] : src[i];
    }
}

/* ---- the forward pass ---------------------------------------------------------------------- */

static void ec_forward_steps(ec_session *s, int k0)
{
    const ec_model *m = s->m;
    double t0 = s->step_times ? ec_clock() : 0.0;
    const int check = ec_model_checked(m) == 0;   /* the file's first pass: CRC each step's tensors first */
    for (int k = k0; k < s->plan.n_steps; k++) {
        const ec_step *st = &s->plan.steps[k];
        const ec_node *n = &m->nodes[st->node];
        if (check) ec_model_check_tensors(m, n);
        const ec_value *vx = &m->values[n->in[0]];
        const float *x = s->vptr[n->in[0]];
        float *y = s->vptr[st->out];
        switch (n->op) {
        case ECM_OP_CONV2D:
        case ECM_OP_DENSE:
            ec_conv_forward(s, st, x, y);
            break;
        case ECM_OP_DWCONV2D:
            ec_dwconv_forward(s, st, x, y);
            break;
        case ECM_OP_GAP:
            ec_gap_forward(s, (size_t)vx->h * vx->w, vx->c, x, y);
            break;
        case ECM_OP_ZEROPAD:
            ec_f32_zeropad(x, vx->h, vx->w, vx->c, n->pt, n->pb, n->pl, n->pr, y);
            break;
        case ECM_OP_IDENTITY:
        case ECM_OP_RESHAPE:
            break;   /* the output aliases the input */
        case ECM_OP_ACTIVATION:
            if (n->act == ECM_ACT_SOFTMAX) {   /* rows are independent; c is small */
                ec_f32_act(x, y, (size_t)vx->h * vx->w, vx->c, ECM_ACT_SOFTMAX);
                break;
            }
            /* fall through */
        default:
            ec_ew_forward(s, st);
            break;
        }
        if (s->step_times) {
            double t1 = ec_clock();
            s->step_times[k] += t1 - t0;
            t0 = t1;
        }
    }
}

static void ec_forward(ec_session *s) { ec_forward_steps(s, 0); }

void ec_session_forward_after(ec_session *s, int node)
{
    int k = 0;
    while (k < s->plan.n_steps && s->plan.steps[k].node <= node) k++;
    ec_forward_steps(s, k);
}

/* ---- create / free ----------------------------------------------------------------------- */

/* OpenBLAS runs single-threaded: the session's pool parallelizes. The pthread
 * OpenBLAS starts a server thread per core when it loads, each spinning on
 * sched_yield for ~2^28 cycles (~0.1 s) before it sleeps: a CLI run spent its
 * first 0.1 s beside a busy loop. Setting one thread does not stop them; the
 * library's own shutdown (exported for fork handling; weak, so a build without
 * it just skips this) does, and single-threaded calls never restart them. */
void blas_thread_shutdown_(void) __attribute__((weak));
static pthread_once_t ec_blas_once = PTHREAD_ONCE_INIT;
static void ec_blas_single(void)
{
    openblas_set_num_threads(1);
    if (blas_thread_shutdown_) blas_thread_shutdown_();
}

/* Called by ec_model_load and ec_session_new: as early as the library runs. */
void ec_blas_init(void) { pthread_once(&ec_blas_once, ec_blas_single); }

ec_session_options ec_session_options_default(void)
{
    ec_session_options o;
    memset(&o, 0, sizeof o);
    o.threads = 1;
    o.cam_class = -1;
    o.max_pixels = 50000000;
    o.max_arena_bytes = ECM_DEFAULT_MAX_ACTIVATION_BYTES;
    return o;
}

static void *ec_alloc(size_t bytes, size_t *total)
{
    *total += bytes;
    /* 64-byte aligned for the kernels' vector loads; never a zero-size request */
    return aligned_alloc(EC_ARENA_ALIGN, (bytes + EC_ARENA_ALIGN - 1) / EC_ARENA_ALIGN * EC_ARENA_ALIGN + EC_ARENA_ALIGN);
}

ec_status ec_session_new(const ec_model *m, const ec_session_options *opt, ec_session **out)
{
    if (!m || !out) return ec_fail(EC_ERR_ARG, "ec_session_new: NULL argument");
    *out = NULL;
    ec_session_options o = opt ? *opt : ec_session_options_default();
    if (o.threads < 1 || o.threads > 256) return ec_fail(EC_ERR_ARG, "threads = %d (1..256)", o.threads);
    if (o.max_pixels <= 0) return ec_fail(EC_ERR_ARG, "max_pixels = %lld must be positive", (long long)o.max_pixels);
    if (o.max_arena_bytes <= 0)
        return ec_fail(EC_ERR_ARG, "max_arena_bytes = %lld must be positive", (long long)o.max_arena_bytes);
    if (o.gradcam && (o.cam_class < -1 || o.cam_class >= m->n_labels))
        return ec_fail(EC_ERR_ARG, "cam_class = %d (the model has %d classes)", o.cam_class, m->n_labels);
    ec_blas_init();

    ec_session *s = calloc(1, sizeof *s);
    if (!s) return ec_fail(EC_ERR_NOMEM, "out of memory");
    s->m = m;
    s->opt = o;
    s->opt.cam_layer = NULL;   /* not kept: the caller's string may go away */
    s->threads = o.threads;
    s->gradcam = o.gradcam != 0;
    ec_status st;
    int nv = m->n_values;
    s->pin = calloc((size_t)nv, 1);
    s->vptr = calloc((size_t)nv, sizeof *s->vptr);
    if (!s->pin || !s->vptr) { st = ec_fail(EC_ERR_NOMEM, "out of memory"); goto fail; }
    if (s->gradcam) {
        if ((st = ec_gradcam_prepare(m, &o, &s->gc))) goto fail;
        memcpy(s->pin, s->gc.pin, (size_t)nv);
    }
    if ((st = ec_plan_build(m, s->pin, o.keep_all, (size_t)o.max_arena_bytes, &s->plan))) goto fail;
    const ec_value *vi = &m->values[m->input];
    int gfirst = 0;   /* plan buffer id of gradient buffer 0; then tmp, rgba, overlay scratch */
    if (s->gradcam) {
        /* times after the forward: backward step t at t (0 = the seed, P + 1 = the
         * heatmap, gradcam.c), the overlay at P + 2 */
        const ec_value *va = &m->values[s->gc.A];
        int ng = s->gc.n_gbufs, P = s->gc.n_path;
        ec_plan_buf *xb = calloc((size_t)ng + 3, sizeof *xb);
        if (!xb) { st = ec_fail(EC_ERR_NOMEM, "out of memory"); goto fail; }
        memcpy(xb, s->gc.gbufs, (size_t)ng * sizeof *xb);
        xb[ng] = (ec_plan_buf){ s->gc.tmp_floats * sizeof(float), 0, P + 1, 0, 0 };
        xb[ng + 1] = (ec_plan_buf){ (size_t)vi->h * vi->w * 4, P + 2, P + 2, 0, 0 };
        xb[ng + 2] = (ec_plan_buf){ ec_overlay_scratch_bytes(va->h, va->w, vi->h, vi->w), P + 2, P + 2, 0, 0 };
        for (int i = 0; i < ng + 3; i++) if (!xb[i].bytes) xb[i].bytes = EC_ARENA_ALIGN;
        st = ec_plan_append_after(&s->plan, xb, ng + 3, o.keep_all, &gfirst);
        free(xb);
        if (st) goto fail;
    }

    size_t scratch = 0, arena_total = 0;
    s->arena = ec_alloc(s->plan.arena_bytes, &arena_total);
    s->col_bytes = (size_t)s->threads * s->plan.col_floats * sizeof(float);
    s->wide_bytes = (s->plan.wide_floats > (size_t)m->max_f16_elems ? s->plan.wide_floats : (size_t)m->max_f16_elems) *
                    sizeof(float);
    s->col = ec_alloc(s->col_bytes, &scratch);
    s->wide = ec_alloc(s->wide_bytes, &scratch);
    s->rgb = ec_alloc((size_t)vi->h * vi->w * 3, &scratch);
    if (!s->arena || !s->col || !s->wide || !s->rgb) { st = ec_fail(EC_ERR_NOMEM, "out of memory (arena %zu bytes)", s->plan.arena_bytes); goto fail; }
    for (int v = 0; v < nv; v++)
        s->vptr[v] = s->plan.vbuf[v] >= 0 ? (float *)(s->arena + s->plan.bufs[s->plan.vbuf[v]].offset) : NULL;

    if (s->gradcam) {
        const ec_value *va = &m->values[s->gc.A];
        const ec_plan_buf *xb = s->plan.bufs + gfirst;   /* gradients, tmp, rgba, overlay scratch */
        int ng = s->gc.n_gbufs;
        s->gptr = calloc((size_t)nv, sizeof *s->gptr);
        s->cam = ec_alloc((size_t)va->h * va->w * sizeof(float), &scratch);
        if (!s->gptr || !s->cam) {
            st = ec_fail(EC_ERR_NOMEM, "out of memory (grad-cam buffers)");
            goto fail;
        }
        for (int v = 0; v < nv; v++)
            s->gptr[v] = s->gc.gbuf[v] >= 0 ? (float *)(s->arena + xb[s->gc.gbuf[v]].offset) : NULL;
        s->gtmp = (float *)(s->arena + xb[ng].offset);
        s->rgba = s->arena + xb[ng + 1].offset;
        s->ov_scratch = s->arena + xb[ng + 2].offset;
    }
    s->scratch_bytes = scratch;
    if (s->threads > 1 && (st = ec_pool_new(s->threads, &s->pool))) goto fail;
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
    free(s->rs_scratch);
    free(s->gptr);
    free(s->cam);
    free(s);
}

size_t ec_session_arena_bytes(const ec_session *s) { return s ? s->plan.arena_bytes : 0; }
size_t ec_session_pinned_bytes(const ec_session *s) { return s ? s->plan.pinned_bytes : 0; }
size_t ec_session_scratch_bytes(const ec_session *s) { return s ? s->scratch_bytes + s->rs_cap : 0; }

int ec_session_check_plan(const ec_session *s, char *msg, size_t cap)
{
    /* one plan: the forward values and, after them, Grad-CAM's buffers */
    return ec_plan_check(s->plan.bufs, s->plan.n_bufs, s->plan.arena_bytes, msg, cap) ? -1 : 0;
}

void ec_session_print_plan(const ec_session *s, FILE *f)
{
    const char **names = calloc((size_t)s->plan.n_bufs + 1, sizeof *names);
    for (int v = 0; names && v < s->m->n_values; v++)
        if (s->plan.vbuf[v] >= 0 && !names[s->plan.vbuf[v]]) names[s->plan.vbuf[v]] = s->m->values[v].name;
    ec_plan_print(f, s->plan.bufs, s->plan.n_bufs, names);
    free(names);
}

const float *ec_session_layer_output(const ec_session *s, const char *layer, int *h, int *w, int *c)
{
    if (!s || !layer || !s->have_result) return NULL;
    int i = ec_model_find_node(s->m, layer);
    if (i < 0) return NULL;
    const ec_node *n = &s->m->nodes[i];
    /* only values nothing has overwritten: keep_all, or pinned */
    if (!s->opt.keep_all && !s->pin[n->out] && n->out != s->m->output) return NULL;
    const ec_value *v = &s->m->values[n->out];
    if (h) *h = v->h;
    if (w) *w = v->w;
    if (c) *c = v->c;
    return s->vptr[n->out];
}

/* ---- predict ------------------------------------------------------------------------------ */

/* The input stage: checks and resizes the caller's pixels into s->rgb. */
static ec_status ec_session_set_input(ec_session *s, const uint8_t *rgb, int width, int height)
{
    if (width <= 0 || height <= 0) return ec_fail(EC_ERR_ARG, "image %dx%d: empty", width, height);
    if ((int64_t)width * height > s->opt.max_pixels)
        return ec_fail(EC_ERR_LIMIT, "image %dx%d exceeds max_pixels (%lld)", width, height, (long long)s->opt.max_pixels);
    s->have_result = 0;
    double t_in = s->step_times ? ec_clock() : 0.0;
    const ec_model *m = s->m;
    const ec_value *vi = &m->values[m->input];
    int H = vi->h, W = vi->w;
    if (width == W && height == H) {
        memcpy(s->rgb, rgb, (size_t)H * W * 3);
    } else {
        size_t need = ec_u8_resize_scratch_bytes(width, height, W, H, 3);
        if (need > s->rs_cap) {
            /* grows only when a larger source arrives; steady state allocates nothing */
            void *p = realloc(s->rs_scratch, need);
            if (!p) return ec_fail(EC_ERR_NOMEM, "out of memory (%zu bytes of resize scratch)", need);
            s->rs_scratch = p;
            s->rs_cap = need;
        }
        if (ec_u8_resize_bilinear(rgb, width, height, 3, s->rgb, W, H, s->rs_scratch) != 0)
            return ec_fail(EC_ERR_ARG, "cannot resize a %dx%d image to %dx%d", width, height, W, H);
    }
    if (s->step_times) {
        double dt = ec_clock() - t_in;
        s->step_times[s->plan.n_steps] += dt;
        s->step_times[s->plan.n_steps + 2] += dt;
    }
    return EC_OK;
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
    ec_forward(s);
    if (ec_model_checked(m) <= 0) {
        /* the rest of the file's checksum: no result from a corrupt file */
        ec_status st = ec_model_check_rest(m);
        if (st) return st;
    }

    const float *p = s->vptr[m->output];   /* [K] */
    int K = m->n_labels, top = 0;
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
        ec_status st = ec_gradcam_run(s, cls, s->opt.cam_logit, s->cam);
        if (s->step_times) s->step_times[s->plan.n_steps + 1] += ec_clock() - t_cam;
        if (st) return st;
        const ec_value *va = &m->values[s->gc.A];
        s->res.cam = s->cam;
        s->res.cam_height = va->h, s->res.cam_width = va->w;
    }
    s->have_result = 1;
    *out = s->res;
    if (s->step_times) s->step_times[s->plan.n_steps + 2] += ec_clock() - t_in;
    return EC_OK;
}

ec_status ec_session_predict_rgb(ec_session *s, const uint8_t *rgb, int width, int height, ec_result *out)
{
    if (!s || !rgb || !out) return ec_fail(EC_ERR_ARG, "ec_session_predict_rgb: NULL argument");
    ec_status st = ec_session_set_input(s, rgb, width, height);
    return st ? st : ec_session_run(s, out);
}

ec_status ec_session_predict_file(ec_session *s, const char *path, ec_result *out)
{
    if (!s || !path || !out) return ec_fail(EC_ERR_ARG, "ec_session_predict_file: NULL argument");
    uint8_t *rgb = NULL;
    int w = 0, h = 0;
    ec_status st = ec_image_decode_file(path, s->opt.max_pixels, &rgb, &w, &h);
    if (st) return st;
    st = ec_session_set_input(s, rgb, w, h);
    free(rgb);   /* a 12-megapixel photo is 36 MB: gone before the forward pass */
    return st ? st : ec_session_run(s, out);
}

ec_status ec_session_write_overlay(ec_session *s, const char *png_path)
{
    if (!s || !png_path) return ec_fail(EC_ERR_ARG, "ec_session_write_overlay: NULL argument");
    if (!s->gradcam) return ec_fail(EC_ERR_STATE, "overlay needs a session created with gradcam = 1");
    if (!s->have_result) return ec_fail(EC_ERR_STATE, "overlay before a successful predict");
    const ec_value *vi = &s->m->values[s->m->input];
    ec_overlay_rgba(s->cam, s->res.cam_height, s->res.cam_width, s->rgb, vi->h, vi->w, s->ov_scratch, s->rgba);
    return ec_png_write(png_path, s->rgba, vi->w, vi->h, 4);
}
