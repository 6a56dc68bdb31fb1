/* ops.c - the operators (ops.h): each forward op with its backward twin
 * right under it, both taking the execution context.
 *
 * GEMM determinism: OpenBLAS (the path of CPUs without AVX2) tiles our
 * row-major M as its column-major n by 3 * UNROLL_N (12 on Haswell/Zen) with
 * differently accumulating tail tiles, so a row's bits depend on the tile it
 * lands in. Split points at multiples of EC_ROW_ALIGN = 48 (a multiple of 12,
 * 16 and 24) put every row in the same tile as the single call would
 * (measured: 0 differing bits on 10 shapes). The packed GEMM sums every
 * element in k order from its shift whatever the split. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/kernels.h"
#include "ops.h"

/* kernels/ numbers activations as the file format does (it may not include it) */
_Static_assert((int)EC_ACT_LINEAR == ECM_ACT_LINEAR && (int)EC_ACT_RELU == ECM_ACT_RELU &&
                   (int)EC_ACT_RELU6 == ECM_ACT_RELU6 && (int)EC_ACT_SIGMOID == ECM_ACT_SIGMOID &&
                   (int)EC_ACT_SOFTMAX == ECM_ACT_SOFTMAX && (int)EC_ACT_SWISH == ECM_ACT_SWISH &&
                   (int)EC_ACT_TANH == ECM_ACT_TANH && (int)EC_ACT_GELU == ECM_ACT_GELU && ECM_ACT_COUNT == 8,
               "enum ec_act (kernels/kernels.h) must match enum ecm_act (engine/ecm_format.h)");

#define EC_ROW_ALIGN 48   /* split points: multiples of this many rows (see above) */
/* Jobs below these sizes run on the calling thread alone (~5 us of work on one
 * core: an elementwise op on 64 K floats, a GEMM of 512 K multiply-adds, e.g. the
 * SE's 1x1xC convs); splitting them saves less than the hand-over costs. */
#define EC_INLINE_FLOATS (64u << 10)
#define EC_INLINE_MACS (512u << 10)

static int ec_round_up(int x, int a) { return (x + a - 1) / a * a; }
static int ec_per_task(const ec_exec *ex, int total, int align) { return ec_pool_per_task(ex->threads, total, align); }
/* Rows per task for OpenBLAS GEMMs and elementwise ops: EC_ROW_ALIGN multiples. */
static int ec_split_rows(const ec_exec *ex, int rows) { return ec_per_task(ex, rows, EC_ROW_ALIGN); }

/* ---- weights -------------------------------------------------------------------------------- */

/* fp16 -> fp32 widening of a [rows, cols] kernel into ex->wide, optionally times
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

static void ec_widen(const ec_exec *ex, const ec_tensor *T, size_t rows, int cols, const float *scale)
{
    ec_widen_task t = { T->data, ex->wide, rows, rows, cols, scale };
    /* below ~64 K elements a second thread costs more than it saves */
    if (ex->threads > 1 && rows * (size_t)cols >= (64u << 10) && rows <= INT_MAX)
        t.rows_per = (size_t)ec_per_task(ex, (int)rows, 1);
    ec_pool_run(ex->pool, (int)((rows + t.rows_per - 1) / t.rows_per), ec_widen_rows, &t);
}

const float *ec_exec_weights(const ec_exec *ex, int t)
{
    const ec_tensor *T = &ex->m->tensors[t];
    if (T->dtype == ECM_DT_F32) return T->data;
    /* fp16 kernels are widened per layer: only the largest one is ever resident */
    ec_widen(ex, T, (size_t)T->elems, 1, NULL);
    return ex->wide;
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
    const uint16_t *w16;          /* [K, N] fp16 kernel read in place (ec_gemm_w16), or NULL */
    const float *se;              /* [K] SE excite folded into the kernel's rows (w16 only), or NULL */
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
 * The kernel is packed once per layer into ex->wide (fp16 widened, BN scale folded
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

/* A row task's rows [*p0, *p1) and its A operand [p1 - p0, K]: the input's
 * rows for a 1x1 conv, else their im2col in this thread's scratch. */
static const float *ec_mm_task_rows(const ec_mm_task *t, int task, int thread, int *p0, int *p1)
{
    *p0 = task * t->rows, *p1 = *p0 + t->rows < t->M ? *p0 + t->rows : t->M;
    if (!t->g) return t->x + (size_t)*p0 * t->K;
    float *col = t->col + (size_t)thread * t->col_stride;
    ec_f32_im2col(t->g, t->x, *p0, *p1, col);
    return col;
}

static void ec_pg_rows(void *ctx, int task, int thread)
{
    const ec_mm_task *t = ctx;
    int p0, p1;
    const float *a = ec_mm_task_rows(t, task, thread, &p0, &p1);
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

/* The same two splits on fp16 kernels read in place (ec_gemm_w16): each task
 * widens the k blocks of its panels just before its row tiles use them, so no
 * K x N float copy of the kernel is written and read back (that pass read fp16
 * at ~6 GB/s). Bit-identical to ec_pack_b + ec_gemm_packed, for any split. */
static void ec_w16_rows(void *ctx, int task, int thread)
{
    const ec_mm_task *t = ctx;
    int p0, p1;
    const float *a = ec_mm_task_rows(t, task, thread, &p0, &p1);
    ec_gemm_w16(p1 - p0, t->N, t->K, a, t->K, t->w16, t->scale, t->se, t->shift, t->act, t->y + (size_t)p0 * t->N,
                t->N, 0, p1 - p0, 0, (t->N + EC_PG_NR - 1) / EC_PG_NR);
}

static void ec_w16_panels(void *ctx, int task, int thread)
{
    (void)thread;
    const ec_mm_task *t = ctx;
    int np = (t->N + EC_PG_NR - 1) / EC_PG_NR, p0 = task * t->cols, p1 = p0 + t->cols < np ? p0 + t->cols : np;
    ec_gemm_w16(t->M, t->N, t->K, t->x, t->K, t->w16, t->scale, t->se, t->shift, t->act, t->y, t->N, 0, t->M, p0, p1);
}

/* How a packed GEMM splits into tasks. A 1x1 conv of few rows (M <= 512: the
 * 19x19 and 10x10 stages) on several threads: row tasks each read (and widen)
 * all of W and panel tasks each read all of A, once per task:
 *   A more than half of W (all the projections: 100 x 1536 floats of A against
 *   1536 x 256 fp16 weights at 10x10, 361 x 960 against 960 x 160 at 19x19;
 *   the 19x19 expansions): one row block per thread, each reading its rows of
 *   A once and widening W once (more row tasks would widen W more often);
 *   else (the 10x10 expansions, 100 x 256 against 256 x 1536) panels, at least
 *   2 per task where there are enough: a single panel runs the kernel's 14 x 16
 *   tile (1 B load per 14 broadcasts and 14 FMAs, against 2 per 28 for a pair).
 * Measured on Zen 5, 2 threads (steps alternated): the 15 10x10 projections
 * took 4.2 ms split by single panels, 3.8 by rows. Otherwise (more rows, or
 * one thread) rows at micro-tile multiples; an im2col conv keeps the tile rows
 * its plan set. Returns 1 with t->cols set for panel tasks, 0 with t->rows set
 * for row tasks. */
static int ec_split(const ec_exec *ex, ec_mm_task *t, int np, size_t w_bytes)
{
    const int T = ex->threads;
    if (t->g) return 0;
    if (T > 1 && t->M <= 512) {
        if (2 * (size_t)t->M * sizeof(float) > (size_t)t->N * w_bytes && t->M >= 2 * T * EC_PG_MR) {
            t->rows = (t->M + T - 1) / T;
            return 0;
        }
        if (np >= 2 * T) {
            t->cols = np >= 4 * T ? ec_per_task(ex, np, 2) : ec_per_task(ex, np, 1);
            return 1;
        }
    }
    t->rows = ec_per_task(ex, t->M, EC_PG_MR);
    return 0;
}

static void ec_packed_conv(const ec_exec *ex, const ec_step *st, ec_mm_task *t)
{
    const ec_model *m = ex->m;
    const ec_tensor *W = &m->tensors[m->nodes[st->node].w[0]];   /* [K, N] */
    int np = (t->N + EC_PG_NR - 1) / EC_PG_NR;
    if (W->dtype == ECM_DT_F16) {
        t->w16 = W->data;
        t->scale = st->scale;   /* folded into the widened blocks, as ec_pack_b does */
        if ((size_t)t->M * t->K * t->N < EC_INLINE_MACS) {   /* the SE's matvecs: inline, one task */
            t->rows = t->M;
            ec_pool_run(NULL, 1, ec_w16_rows, t);
            return;
        }
        if (ec_split(ex, t, np, sizeof(uint16_t))) {
            ec_pool_run(ex->pool, (np + t->cols - 1) / t->cols, ec_w16_panels, t);
            return;
        }
        ec_pool_run(ex->pool, (t->M + t->rows - 1) / t->rows, ec_w16_rows, t);
        return;
    }
    ec_pack_task pk = { W->data, W->dtype == ECM_DT_F16, t->K, t->N, np, st->scale, ex->wide };
    /* below ~64 K weights a second thread costs more than it saves */
    if (ex->threads > 1 && (size_t)t->K * t->N >= (64u << 10)) pk.per = ec_per_task(ex, np, 1);
    ec_pool_run(ex->pool, (np + pk.per - 1) / pk.per, ec_pack_panels, &pk);
    t->w = ex->wide;
    if (ec_split(ex, t, np, sizeof(float))) {
        ec_pool_run(ex->pool, (np + t->cols - 1) / t->cols, ec_pg_panels, t);
        return;
    }
    ec_pool_run(ex->pool, (t->M + t->rows - 1) / t->rows, ec_pg_rows, t);
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

static void ec_direct_conv(const ec_exec *ex, const ec_step *st, const ec_conv_geom *g, const float *x,
                           const float *w, const float *scale, const float *shift, float *y)
{
    ec_direct_task t = { { *g, ex->m->values[ex->m->nodes[st->node].out].c, st->act }, x, w, scale, shift, y, 0 };
    /* whole output rows per task: each element's arithmetic does not depend on the split */
    t.rows = ec_per_task(ex, g->out_h, 1);
    ec_pool_run(ex->pool, (g->out_h + t.rows - 1) / t.rows, ec_direct_rows, &t);
}

/* 3x3 stride-1 convs as Winograd F(2x2, 3x3) (kernels/winograd.c) or F(4x4, 3x3)
 * (winograd43.c, when the plan picked it): per task, T tiles through the input
 * transform, 16 or 36 GEMMs and the output transform, in the thread's scratch;
 * U (the transformed kernel) is shared, in ex->wide. */
typedef struct {
    const ec_conv_geom *g;
    const float *x, *u, *shift;
    float *y, *col;
    size_t col_stride;
    int cin, cout, T, n_tiles, act;
    int f43;                      /* F(4x4, 3x3): 36 positions, else F(2x2, 3x3): 16 */
    size_t u_stride;              /* floats between packed U[xi]; 0: U plain [nxi][cin][cout] for OpenBLAS */
} ec_wino_task;

/* V = the input transform of tiles [t0, t1), then M[xi] = V[xi] @ U[xi] */
static void ec_wino_transformed(const ec_wino_task *t, int t0, int t1, float *v, float *mm)
{
    const int nt = t1 - t0, nxi = t->f43 ? 36 : 16;
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
}

static void ec_wino_tiles(void *ctx, int task, int thread)
{
    const ec_wino_task *t = ctx;
    int t0 = task * t->T, t1 = t0 + t->T < t->n_tiles ? t0 + t->T : t->n_tiles, nt = t1 - t0;
    const int nxi = t->f43 ? 36 : 16;
    float *v = t->col + (size_t)thread * t->col_stride;   /* [nxi][nt][cin] */
    float *mm = v + (size_t)nxi * nt * t->cin;            /* [nxi][nt][cout] */
    ec_wino_transformed(t, t0, t1, v, mm);
    if (t->f43) ec_wino43_output(t->g, t->cout, mm, t0, t1, t->shift, t->act, t->y);
    else ec_wino23_output(t->g, t->cout, mm, t0, t1, t->shift, t->act, t->y);
}

/* A Winograd conv and the 1x1 conv that alone reads its output (a fused-MBConv
 * block's expand and project convs, plan.c's band), in bands of whole tile rows:
 * each task transforms its tiles into a band of output rows in the thread's
 * scratch and runs the 1x1 conv (ec_gemm_w16) on that band, so the wide tensor
 * between them (75x75x192 floats, 4.3 MB, in EfficientNetV2-S) is never
 * written whole: the arena's peak drops to the next largest step's. Each tile
 * and each GEMM row is computed as without the bands: the same bits. */
typedef struct {
    ec_wino_task w;               /* the 3x3 conv (w.y unused) */
    int band_rows, tiles_w;       /* output rows per band (a multiple of the tile), tiles per tile row */
    const uint16_t *w2;           /* [cout, cout2] the 1x1 conv's fp16 kernel */
    const float *scale2, *shift2; /* [cout2] each or NULL */
    int cout2, act2;
    float *y2;                    /* [out_h, out_w, cout2] */
} ec_band_task;

static void ec_band_rows(void *ctx, int task, int thread)
{
    const ec_band_task *b = ctx;
    const ec_wino_task *t = &b->w;
    const ec_conv_geom *g = t->g;
    const int e = t->f43 ? 4 : 2, nxi = t->f43 ? 36 : 16;
    const int per = (b->band_rows / e) * b->tiles_w;   /* tiles per band */
    const int t0 = task * per, t1 = t0 + per < t->n_tiles ? t0 + per : t->n_tiles;
    const int nt = t1 - t0, oy0 = task * b->band_rows;
    const int rows = g->out_h - oy0 < b->band_rows ? g->out_h - oy0 : b->band_rows;
    float *v = t->col + (size_t)thread * t->col_stride;   /* [nxi][nt][cin] */
    float *mm = v + (size_t)nxi * nt * t->cin;            /* [nxi][nt][cout] */
    float *band = mm + (size_t)nxi * nt * t->cout;        /* [rows, out_w, cout] */
    ec_wino_transformed(t, t0, t1, v, mm);
    /* the output transform of tiles [t0, t1) as tiles [0, nt) of a rows-high image:
     * it reads only out_h and out_w of the geometry */
    ec_conv_geom gb = *g;
    gb.out_h = rows;
    if (t->f43) ec_wino43_output(&gb, t->cout, mm, 0, nt, t->shift, t->act, band);
    else ec_wino23_output(&gb, t->cout, mm, 0, nt, t->shift, t->act, band);
    const int M = rows * g->out_w;
    ec_gemm_w16(M, b->cout2, t->cout, band, t->cout, b->w2, b->scale2, NULL, b->shift2, b->act2,
                b->y2 + (size_t)oy0 * g->out_w * b->cout2, b->cout2, 0, M, 0, (b->cout2 + EC_PG_NR - 1) / EC_PG_NR);
}

/* The weight transform, input channels [task * per, ...) per task: U goes
 * straight into ex->wide, in panels for the packed GEMM when the CPU has AVX2
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

static void ec_wino_conv(const ec_exec *ex, const ec_step *st, const ec_conv_geom *g, const float *x, float *y)
{
    const ec_model *m = ex->m;
    const ec_node *n = &m->nodes[st->node];
    const ec_tensor *W = &m->tensors[n->w[0]];
    int cin = g->c, cout = m->values[n->out].c, f43 = st->wino_f43;
    /* the BN scale goes into U; the scratch is free until the tile tasks start */
    ec_wino_w_task wt = { W->data, st->scale, W->dtype == ECM_DT_F16, cin, cout, ec_per_task(ex, cin, 1), f43,
                          ec_cpu_has_avx2() ? ec_pack_b_floats(cin, cout) : 0, ex->col_stride, ex->wide, ex->col };
    ec_pool_run(ex->pool, (cin + wt.per - 1) / wt.per, ec_wino_w_rows, &wt);
    ec_wino_task t = { g, x, ex->wide, st->shift, y, ex->col, ex->col_stride, cin, cout, st->wino_tiles,
                       f43 ? ec_wino43_tiles(g) : ec_wino23_tiles(g), st->act, f43, wt.u_stride };
    if (st->band) {   /* with the 1x1 conv of the next step, in bands (y: that step's output) */
        const ec_step *s2 = st + 1;
        const ec_node *n2 = &m->nodes[s2->node];
        const int e = f43 ? 4 : 2;
        ec_band_task b = { t, st->band * e, (g->out_w + e - 1) / e, m->tensors[n2->w[0]].data, s2->scale, s2->shift,
                           m->values[n2->out].c, s2->act, y };
        ec_pool_run(ex->pool, (g->out_h + b.band_rows - 1) / b.band_rows, ec_band_rows, &b);
        return;
    }
    ec_pool_run(ex->pool, (t.n_tiles + t.T - 1) / t.T, ec_wino_tiles, &t);
}

static void ec_conv_forward(const ec_exec *ex, const ec_step *st, const float *x, float *y)
{
    const ec_model *m = ex->m;
    const ec_node *n = &m->nodes[st->node];
    const ec_value *vx = &m->values[n->in[0]], *vy = &m->values[n->out];
    ec_conv_geom g = { vx->h, vx->w, vx->c, vy->h, vy->w, n->kh, n->kw, n->sh, n->sw, n->pt, n->pl };
    ec_mm_task t = { x, NULL, y, vy->h * vy->w, vy->c, 0, 0, 0,
                     st->scale, st->shift, st->act, 0, NULL, ex->col, ex->col_stride, NULL, NULL };
    if (st->se_fold) t.se = ex->val[st->se_s];   /* x is the MUL's input (ec_op_forward) */
    if (n->op == ECM_OP_DENSE) {
        t.K = vx->c;
        t.M = vx->h * vx->w;
    } else {
        t.K = n->kh * n->kw * vx->c;
    }
    if (st->wino_tiles > 0) {
        ec_wino_conv(ex, st, &g, x, st->band ? ex->val[st[1].out] : y);
        if (st->softmax) ec_f32_act(y, y, (size_t)t.M, t.N, EC_ACT_SOFTMAX);
        return;
    }
    const int direct = n->op == ECM_OP_CONV2D && st->tile_rows > 0 && t.N <= EC_DIRECT_MAX_COUT;
    if (!direct && ec_cpu_has_avx2()) {
        /* 1x1 convs, dense, and k x k convs over im2col tiles: the packed GEMM with
         * its fused epilogue. Without AVX2, OpenBLAS below is the faster path. */
        if (st->tile_rows > 0) t.g = &g, t.rows = st->tile_rows;
        ec_packed_conv(ex, st, &t);
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
        ec_widen(ex, W, (size_t)t.K, t.N, st->scale);
        t.w = ex->wide;
        t.scale = NULL;
    } else {
        t.w = ec_exec_weights(ex, n->w[0]);
    }
    t.prefill = !t.scale && t.shift;
    if (direct && ec_cpu_has_avx2()) {
        ec_direct_conv(ex, st, &g, x, t.w, t.scale, t.shift, y);
        if (st->softmax) ec_f32_act(y, y, (size_t)t.M, t.N, EC_ACT_SOFTMAX);
        return;
    }
    if (st->tile_rows > 0) {
        t.g = &g;
        t.rows = st->tile_rows;   /* fixed by the plan, independent of the thread count */
    } else if ((t.cols = ec_col_split(t.M, t.N)) > 0) {
        ec_pool_run(ex->pool, (t.N + t.cols - 1) / t.cols, ec_mm_cols, &t);
        if (st->softmax) ec_f32_act(y, y, (size_t)t.M, t.N, EC_ACT_SOFTMAX);
        return;
    } else {
        t.rows = ec_split_rows(ex, t.M);
    }
    ec_pool_run(ex->pool, (t.M + t.rows - 1) / t.rows, ec_mm_rows, &t);
    if (st->softmax) ec_f32_act(y, y, (size_t)t.M, t.N, EC_ACT_SOFTMAX);
}

/* ---- conv2d / dense backward: the data gradient --------------------------------------------
 * dx = d(loss)/dx from dy = d(loss)/d(conv(x) * scale), scale the BN folded in
 * (or NULL): the weights times scale, transposed, applied to dy. Weight
 * gradients are never needed. By geometry:
 *   pointwise (1x1, stride 1, no padding): dX[M, cin] = dY[M, cout] @ (W s)^T,
 *       one packed GEMM (kernels/pgemm.c) on W^T packed by ec_pack_bt;
 *   stride 1, 3x3, cin > EC_DIRECT_MAX_COUT: the flipped forward conv (rotated
 *       kernel, channels swapped: ec_conv_weights_flip) on Winograd, the same
 *       tiles and transforms as the forward (the bulk of EfficientNetV2's fused
 *       blocks: as fast as their forward);
 *   stride 1, cin <= EC_DIRECT_MAX_COUT (with AVX2): the flipped conv on the
 *       direct kernel (the V2 stage-1 convs, 24 -> 24);
 *   otherwise (stride 2, the stem): GEMM into im2col columns, then col2im
 *       gathers each dx row (ec_f32_conv_backward), rows split across threads.
 * Every path computes each dx element whole, whatever the thread split, so the
 * results are bit-identical for any thread count. A conv with its own
 * activation (the SE convs) first turns dy into d(pre-activation) from z. */

enum { EC_CBW_POINTWISE, EC_CBW_WINO, EC_CBW_DIRECT, EC_CBW_COL2IM };

typedef struct {
    int path;
    ec_conv_geom g;               /* the forward's geometry */
    ec_conv_geom gt;              /* the flipped conv's (WINO, DIRECT): input dy, output dx */
    int cin, cout;
    int f43, T;                   /* WINO: F(4x4, 3x3), tiles per task */
} ec_cbw;

static void ec_cbw_choose(const ec_model *m, const ec_node *n, ec_cbw *c)
{
    const ec_value *vx = &m->values[n->in[0]], *vy = &m->values[n->out];
    memset(c, 0, sizeof *c);
    c->g = (ec_conv_geom){ vx->h, vx->w, vx->c, vy->h, vy->w, n->kh, n->kw, n->sh, n->sw, n->pt, n->pl };
    c->cin = vx->c, c->cout = vy->c;
    const ec_conv_geom *g = &c->g;
    if (g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pad_t == 0 && g->pad_l == 0 && g->out_h == g->in_h &&
        g->out_w == g->in_w) {
        c->path = EC_CBW_POINTWISE;
        return;
    }
    c->path = EC_CBW_COL2IM;
    if (ec_conv_geom_flip(g, c->cout, &c->gt) != 0) return;
    if (g->kh == 3 && g->kw == 3 && c->cin > EC_DIRECT_MAX_COUT) {
        /* as plan.c chooses for a forward conv with cin' = cout, cout' = cin */
        const size_t ci = (size_t)c->cout, co = (size_t)c->cin;
        c->f43 = 36 * ci * co * sizeof(float) <= EC_WINO43_MAX_U_BYTES && c->gt.out_h >= 8 && c->gt.out_w >= 8;
        const size_t nxi = c->f43 ? 36 : 16;
        const int tiles = c->f43 ? ec_wino43_tiles(&c->gt) : ec_wino23_tiles(&c->gt);
        size_t T = EC_WINO_TILE_BYTES / sizeof(float) / (nxi * (ci + co));
        if (T < 8) T = 8;
        if (T > (size_t)tiles) T = (size_t)tiles;
        c->T = (int)T;
        c->path = EC_CBW_WINO;
    } else if (c->cin <= EC_DIRECT_MAX_COUT && ec_cpu_has_avx2()) {
        c->path = EC_CBW_DIRECT;
    }
}

static size_t ec_al16(size_t n) { return (n + 15) & ~(size_t)15; }   /* floats: 64-byte steps in ex->tmp */

/* W^T (times scale) packed for ec_gemm_packed, split by panels of W's rows. */
typedef struct {
    const void *w;
    int w_f16, K, N, per;
    const float *scale;
    float *bp;
} ec_packt_task;

static void ec_packt_panels(void *ctx, int task, int thread)
{
    (void)thread;
    const ec_packt_task *t = ctx;
    int np = (t->K + EC_PG_NR - 1) / EC_PG_NR, p0 = task * t->per, p1 = p0 + t->per < np ? p0 + t->per : np;
    ec_pack_bt(t->w, t->w_f16, t->scale, t->K, t->N, p0, p1, t->bp);
}

static void ec_pack_transposed(const ec_exec *ex, const ec_tensor *W, const float *scale, int K, int N)
{
    int np = (K + EC_PG_NR - 1) / EC_PG_NR;
    ec_packt_task t = { W->data, W->dtype == ECM_DT_F16, K, N, np, scale, ex->wide };
    if (ex->threads > 1 && (size_t)K * N >= (64u << 10)) t.per = ec_per_task(ex, np, 1);
    ec_pool_run(ex->pool, (np + t.per - 1) / t.per, ec_packt_panels, &t);
}

/* The flipped conv's weights (ec_conv_weights_flip), split by dx channels. */
typedef struct {
    const void *w;
    int w_f16, kh, kw, cin, cout, per;
    const float *scale;
    float *wt;
} ec_flip_task;

static void ec_flip_rows(void *ctx, int task, int thread)
{
    (void)thread;
    const ec_flip_task *t = ctx;
    int c0 = task * t->per, c1 = c0 + t->per < t->cin ? c0 + t->per : t->cin;
    ec_conv_weights_flip(t->w, t->w_f16, t->scale, t->kh, t->kw, t->cin, t->cout, c0, c1, t->wt);
}

typedef struct {
    const ec_conv_geom *g;
    const float *dy, *bpt;
    float *dx, *col;
    size_t col_stride;
    int M, cin, cout, rows, per;  /* rows per task (GEMM rows or dx rows), or panels per task */
} ec_cbw_task;

static void ec_pw_bw_rows(void *ctx, int task, int thread)
{
    (void)thread;
    const ec_cbw_task *t = ctx;
    int m0 = task * t->rows, m1 = m0 + t->rows < t->M ? m0 + t->rows : t->M;
    ec_gemm_packed(m1 - m0, t->cin, t->cout, t->dy + (size_t)m0 * t->cout, t->cout, t->bpt, NULL, EC_ACT_LINEAR,
                   t->dx + (size_t)m0 * t->cin, t->cin, 0, m1 - m0, 0, (t->cin + EC_PG_NR - 1) / EC_PG_NR);
}

static void ec_pw_bw_panels(void *ctx, int task, int thread)
{
    (void)thread;
    const ec_cbw_task *t = ctx;
    int np = (t->cin + EC_PG_NR - 1) / EC_PG_NR, p0 = task * t->per, p1 = p0 + t->per < np ? p0 + t->per : np;
    ec_gemm_packed(t->M, t->cin, t->cout, t->dy, t->cout, t->bpt, NULL, EC_ACT_LINEAR, t->dx, t->cin, 0, t->M, p0, p1);
}

static void ec_c2i_bw_rows(void *ctx, int task, int thread)
{
    const ec_cbw_task *t = ctx;
    int y0 = task * t->rows, y1 = y0 + t->rows < t->g->in_h ? y0 + t->rows : t->g->in_h;
    ec_f32_conv_backward(t->g, t->cout, t->bpt, t->dy, t->col + (size_t)thread * t->col_stride, t->dx, y0, y1);
}

/* dx (+)= d elementwise, split across the threads (any split: the same bits) */
typedef struct {
    float *dx;
    const float *d;
    size_t n, per;
} ec_add_task;

static void ec_add_chunk(void *ctx, int task, int thread)
{
    (void)thread;
    const ec_add_task *t = ctx;
    size_t i0 = (size_t)task * t->per, i1 = i0 + t->per < t->n ? i0 + t->per : t->n;
    ec_f32_add(t->dx + i0, t->d + i0, t->dx + i0, i1 - i0);
}

static void ec_bw_accumulate(const ec_exec *ex, float *dx, const float *d, size_t n)
{
    ec_add_task t = { dx, d, n, n ? n : 1 };
    if (ex->threads > 1 && n >= (64u << 10)) t.per = (n + 4 * (size_t)ex->threads - 1) / (4 * (size_t)ex->threads);
    ec_pool_run(ex->pool, (int)((n + t.per - 1) / t.per), ec_add_chunk, &t);
}

/* dx[rows, c] = dy * act'(x) * scale[c] (scale may be NULL; not softmax), split by rows */
typedef struct {
    const float *x, *dy, *scale;
    float *dx;
    int c, act, rows, n_rows;
} ec_actbw_task;

static void ec_actbw_rows(void *ctx, int task, int thread)
{
    (void)thread;
    const ec_actbw_task *t = ctx;
    size_t r0 = (size_t)task * t->rows, r1 = r0 + t->rows < (size_t)t->n_rows ? r0 + t->rows : (size_t)t->n_rows;
    size_t o = r0 * (size_t)t->c;
    ec_f32_act_scale_backward(t->x + o, t->dy + o, t->scale, t->dx + o, r1 - r0, t->c, t->act);
}

static void ec_act_scale_rows(const ec_exec *ex, const float *x, const float *dy, const float *scale, float *dx,
                              size_t rows, int c, int act)
{
    ec_actbw_task t = { x, dy, scale, dx, c, act, 0, (int)rows };
    t.rows = ec_split_rows(ex, t.n_rows);
    ec_pool_run(ex->pool, (t.n_rows + t.rows - 1) / t.rows, ec_actbw_rows, &t);
}

/* A conv's own activation (z: its pre-activation, or its output for softmax). */
static void ec_bw_own_act(const ec_exec *ex, int act, const float *z, const float *dy, float *dz, size_t rows, int c)
{
    if (act == ECM_ACT_SOFTMAX) ec_f32_softmax_backward(z, dy, dz, rows, c);
    else ec_act_scale_rows(ex, z, dy, NULL, dz, rows, c, act);
}

void ec_op_backward_need(const ec_model *m, const ec_node *n, int acc, ec_bw_need *need)
{
    const ec_value *vx = &m->values[n->in[0]], *vy = &m->values[n->out];
    const size_t nx = (size_t)vx->h * vx->w * vx->c, ny = (size_t)vy->h * vy->w * vy->c;
    const int own_act = n->act != ECM_ACT_LINEAR;
    memset(need, 0, sizeof *need);
    switch (n->op) {
    case ECM_OP_CONV2D: {
        ec_cbw c;
        ec_cbw_choose(m, n, &c);
        const size_t K = (size_t)n->kh * n->kw * c.cin;
        if (c.path == EC_CBW_WINO || c.path == EC_CBW_DIRECT) need->tmp += ec_al16(K * c.cout);
        if (own_act) need->tmp += ec_al16(ny);
        if (acc) need->tmp += nx;
        if (c.path == EC_CBW_WINO) {
            const size_t nxi = c.f43 ? 36 : 16;
            need->wide = nxi * ec_pack_b_floats(c.cout, c.cin);
            need->col = nxi * (size_t)c.T * (size_t)(c.cin + c.cout);
            if (9 * (size_t)c.cin > need->col) need->col = 9 * (size_t)c.cin;
        } else if (c.path == EC_CBW_POINTWISE || c.path == EC_CBW_COL2IM) {
            need->wide = ec_pack_b_floats(c.cout, (int)K);
            if (c.path == EC_CBW_COL2IM) need->col = ec_conv_backward_scratch_floats(&c.g, 1);
        }
        break;
    }
    case ECM_OP_DWCONV2D:
        need->tmp = (own_act ? ec_al16(ny) : 0) + (acc ? nx : 0);
        need->wide = (size_t)m->tensors[n->w[0]].elems;
        break;
    case ECM_OP_DENSE:
        need->tmp = ny;
        need->wide = (size_t)m->tensors[n->w[0]].elems;
        break;
    case ECM_OP_ACTIVATION: case ECM_OP_BATCHNORM: case ECM_OP_NORMALIZE: case ECM_OP_RESCALE: case ECM_OP_MUL:
        need->tmp = acc ? (nx > ny ? nx : ny) : 0;
        break;
    default:
        break;   /* add, identity, reshape, gap, zeropad accumulate in place */
    }
}

void ec_conv_backward(const ec_exec *ex, const ec_node *n, int act, const float *scale, const float *z,
                      const float *dy, float *dx, int acc)
{
    const ec_model *m = ex->m;
    const ec_tensor *W = &m->tensors[n->w[0]];   /* [kh, kw, cin, cout] */
    ec_cbw c;
    ec_cbw_choose(m, n, &c);
    const size_t K = (size_t)n->kh * n->kw * c.cin, nx = (size_t)c.g.in_h * c.g.in_w * c.cin;
    const size_t ny = (size_t)c.g.out_h * c.g.out_w * c.cout;
    float *tmp = ex->tmp, *wt = NULL, *out = dx;
    if (c.path == EC_CBW_WINO || c.path == EC_CBW_DIRECT) {
        wt = tmp;   /* [kh, kw, cout, cin] */
        tmp += ec_al16(K * c.cout);
    }
    if (act != ECM_ACT_LINEAR) {
        /* its own activation: d(pre-activation) from z first */
        float *dz = tmp;   /* [out_h * out_w, cout] */
        tmp += ec_al16(ny);
        ec_bw_own_act(ex, act, z, dy, dz, (size_t)c.g.out_h * c.g.out_w, c.cout);
        dy = dz;
    }
    if (acc) out = tmp;   /* [in_h * in_w, cin], then added into dx */
    ec_cbw_task t = { &c.g, dy, ex->wide, out, ex->col, ex->col_stride, 0, c.cin, c.cout, 0, 0 };
    switch (c.path) {
    case EC_CBW_POINTWISE: {
        ec_pack_transposed(ex, W, scale, (int)K, c.cout);
        t.M = c.g.in_h * c.g.in_w;
        const int np = (c.cin + EC_PG_NR - 1) / EC_PG_NR;
        if (ex->threads > 1 && np >= 2 * ex->threads && t.M <= 512) {
            t.per = ec_per_task(ex, np, 1);   /* few rows: by panels, as the forward */
            ec_pool_run(ex->pool, (np + t.per - 1) / t.per, ec_pw_bw_panels, &t);
        } else {
            t.rows = ec_per_task(ex, t.M, EC_PG_MR);
            ec_pool_run(ex->pool, (t.M + t.rows - 1) / t.rows, ec_pw_bw_rows, &t);
        }
        break;
    }
    case EC_CBW_COL2IM: {
        ec_pack_transposed(ex, W, scale, (int)K, c.cout);
        /* dx rows per task: as many as the thread's scratch holds the columns of */
        int r = ec_per_task(ex, c.g.in_h, 1);
        while (r > 1 && ec_conv_backward_scratch_floats(&c.g, r) > ex->col_stride) r--;
        t.rows = r;
        ec_pool_run(ex->pool, (c.g.in_h + r - 1) / r, ec_c2i_bw_rows, &t);
        break;
    }
    default: {
        ec_flip_task ft = { W->data, W->dtype == ECM_DT_F16, n->kh, n->kw, c.cin, c.cout, c.cin, scale, wt };
        if (ex->threads > 1 && K * c.cout >= (64u << 10)) ft.per = ec_per_task(ex, c.cin, 1);
        ec_pool_run(ex->pool, (c.cin + ft.per - 1) / ft.per, ec_flip_rows, &ft);
        if (c.path == EC_CBW_DIRECT) {
            ec_direct_task dt = { { c.gt, c.cin, EC_ACT_LINEAR }, dy, wt, NULL, NULL, out, 0 };
            dt.rows = ec_per_task(ex, c.gt.out_h, 1);
            ec_pool_run(ex->pool, (c.gt.out_h + dt.rows - 1) / dt.rows, ec_direct_rows, &dt);
            break;
        }
        /* Winograd on the flipped conv: cin' = cout, cout' = cin */
        ec_wino_w_task wt_task = { wt, NULL, 0, c.cout, c.cin, ec_per_task(ex, c.cout, 1), c.f43,
                                   ec_cpu_has_avx2() ? ec_pack_b_floats(c.cout, c.cin) : 0, ex->col_stride,
                                   ex->wide, ex->col };
        ec_pool_run(ex->pool, (c.cout + wt_task.per - 1) / wt_task.per, ec_wino_w_rows, &wt_task);
        ec_wino_task wk = { &c.gt, dy, ex->wide, NULL, out, ex->col, ex->col_stride, c.cout, c.cin, c.T,
                            c.f43 ? ec_wino43_tiles(&c.gt) : ec_wino23_tiles(&c.gt), EC_ACT_LINEAR, c.f43,
                            wt_task.u_stride };
        ec_pool_run(ex->pool, (wk.n_tiles + wk.T - 1) / wk.T, ec_wino_tiles, &wk);
        break;
    }
    }
    if (acc) ec_bw_accumulate(ex, dx, out, nx);
}

/* dense: dx[M, cin] (+)= dz[M, cout] @ W^T, dz from dy through the activation:
 * softmax from y, others from z (the pre-activation, recomputed by the
 * backward plan); dy_is_dlogit: dy is already the logit's gradient. */
void ec_dense_backward(const ec_exec *ex, const ec_node *n, const float *z, const float *y,
                       const float *dy, float *dx, int acc, int dy_is_dlogit)
{
    const ec_model *m = ex->m;
    const ec_value *vx = &m->values[n->in[0]];
    int M = vx->h * vx->w, cin = vx->c, cout = m->values[n->out].c;
    const float *w = ec_exec_weights(ex, n->w[0]);   /* [cin, cout] */
    float *dz = ex->tmp;                              /* [M, cout] */
    if (n->act == ECM_ACT_LINEAR || (n->act == ECM_ACT_SOFTMAX && dy_is_dlogit))
        memcpy(dz, dy, (size_t)M * cout * sizeof *dz);
    else if (n->act == ECM_ACT_SOFTMAX)
        ec_f32_softmax_backward(y, dy, dz, (size_t)M, cout);
    else
        ec_f32_act_backward(z, dy, dz, (size_t)M, cout, n->act);
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
    float *rowsum;                        /* [out_h, c * mult] the SE squeeze's row sums, or NULL */
    int rows;                             /* output rows per task */
} ec_dw_task;

static void ec_dw_rows(void *ctx, int task, int thread)
{
    const ec_dw_task *t = ctx;
    int y0 = task * t->rows, y1 = y0 + t->rows < t->p.g.out_h ? y0 + t->rows : t->p.g.out_h;
    if (t->rowsum) ec_f32_dwconv_rowsum(&t->p, t->x, t->w, t->scale, t->shift, t->y, t->rowsum, y0, y1);
    else ec_f32_dwconv(&t->p, t->x, t->w, t->scale, t->shift, t->y, y0, y1);
}

static void ec_dwconv_forward(const ec_exec *ex, const ec_step *st, const float *x, float *y)
{
    const ec_model *m = ex->m;
    const ec_node *n = &m->nodes[st->node];
    const ec_value *vx = &m->values[n->in[0]], *vy = &m->values[n->out];
    ec_dw_task t;
    t.p.g = (ec_conv_geom){ vx->h, vx->w, vx->c, vy->h, vy->w, n->kh, n->kw, n->sh, n->sw, n->pt, n->pl };
    t.p.mult = n->mult;
    t.p.act = st->act;
    t.x = x, t.w = ec_exec_weights(ex, n->w[0]), t.scale = st->scale, t.shift = st->shift, t.y = y;
    t.rowsum = st->squeeze ? ex->col : NULL;   /* the GAP step right after takes their mean */
    /* whole output rows per task: each element's arithmetic does not depend on the
     * split. A task reads kh - 1 input rows more than it covers, but a thread runs
     * a contiguous range of the tasks (pool.c), so those rows are mostly its
     * previous task's, in its cache. Single rows balance the 10x10 and 19x19
     * stages (tasks of 4 rows left 4 + 6 and 8 + 11 on 2 threads): their 30
     * dwconvs took 2.68 ms at 2 threads with 4-row tasks, 2.15 with these
     * (Zen 5, alternated, median of 6 rounds' per-step medians). */
    t.rows = ec_per_task(ex, vy->h, 1);
    ec_pool_run(ex->pool, (vy->h + t.rows - 1) / t.rows, ec_dw_rows, &t);
    if (st->softmax) ec_f32_act(y, y, (size_t)vy->h * vy->w, vy->c, EC_ACT_SOFTMAX);
}

/* dwconv backward: dx = the transposed depthwise conv of dy (gather form,
 * kernels/dwconv.c), the folded BN's scale on the weights; rows of dx split
 * across the threads, each computed whole (bit-identical for any split). */
typedef struct {
    ec_dwconv_params p;
    const float *w, *scale, *dy;  /* w [kh, kw, c, mult] */
    float *dx;                    /* [in_h, in_w, c] */
    int rows;                     /* dx rows per task */
} ec_dwbw_task;

static void ec_dwbw_rows(void *ctx, int task, int thread)
{
    (void)thread;
    const ec_dwbw_task *t = ctx;
    int y0 = task * t->rows, y1 = y0 + t->rows < t->p.g.in_h ? y0 + t->rows : t->p.g.in_h;
    ec_f32_dwconv_backward(&t->p, t->w, t->scale, t->dy, t->dx, y0, y1);
}

void ec_dwconv_backward(const ec_exec *ex, const ec_node *n, int act, const float *scale, const float *z,
                        const float *dy, float *dx, int acc)
{
    const ec_model *m = ex->m;
    const ec_value *vx = &m->values[n->in[0]], *vy = &m->values[n->out];
    const size_t ny = (size_t)vy->h * vy->w * vy->c, nx = (size_t)vx->h * vx->w * vx->c;
    float *tmp = ex->tmp;
    if (act != ECM_ACT_LINEAR) {
        float *dz = tmp;   /* [out_h * out_w, c * mult] */
        tmp += ec_al16(ny);
        ec_bw_own_act(ex, act, z, dy, dz, (size_t)vy->h * vy->w, vy->c);
        dy = dz;
    }
    ec_dwbw_task t;
    t.p.g = (ec_conv_geom){ vx->h, vx->w, vx->c, vy->h, vy->w, n->kh, n->kw, n->sh, n->sw, n->pt, n->pl };
    t.p.mult = n->mult;
    t.p.act = EC_ACT_LINEAR;
    t.w = ec_exec_weights(ex, n->w[0]), t.scale = scale, t.dy = dy, t.dx = acc ? tmp : dx;
    t.rows = ec_per_task(ex, vx->h, 1);
    ec_pool_run(ex->pool, (vx->h + t.rows - 1) / t.rows, ec_dwbw_rows, &t);
    if (acc) ec_bw_accumulate(ex, dx, tmp, nx);
}

/* ---- elementwise ops over pixel rows -------------------------------------------------------
 * Each runs on rows [r0, r1) of its output, r = pixel, c channels per row,
 * split across the threads at EC_ROW_ALIGN multiples. */

typedef struct ec_ew_task ec_ew_task;
typedef void (*ec_ew_fn)(const ec_ew_task *t, size_t r0, size_t r1);
struct ec_ew_task {
    const ec_exec *ex;
    const ec_node *n;
    const ec_step *st;
    int c;                        /* channels of the output */
    int rows;                     /* pixel rows per task */
    int n_rows;
    ec_ew_fn fn;
};

/* x and y of an op with one input shaped like its output, at rows r0.. */
#define EW_X(t, r0) (t->ex->val[t->n->in[0]] + (r0) * (size_t)t->c)
#define EW_Y(t, r0) (t->ex->val[t->st->out] + (r0) * (size_t)t->c)

/* y = act(x) */
static void ec_act_rows(const ec_ew_task *t, size_t r0, size_t r1)
{
    ec_f32_act(EW_X(t, r0), EW_Y(t, r0), r1 - r0, t->c, t->n->act);
}

/* dx (+)= dy * act'(x) * scale[c] (scale: a BN before the activation, folded
 * in, or NULL); softmax from y, or dy itself for the logit (dlogit). dx may be
 * dy (in place). */
void ec_act_backward(const ec_exec *ex, int act, const float *x, const float *y, const float *scale, size_t rows,
                     int c, const float *dy, float *dx, int acc, int dlogit)
{
    float *d = acc ? ex->tmp : dx;   /* [rows, c] */
    if (act == ECM_ACT_SOFTMAX && dlogit) {
        if (d != dy) memcpy(d, dy, rows * c * sizeof *d);
    } else if (act == ECM_ACT_SOFTMAX) {
        ec_f32_softmax_backward(y, dy, d, rows, c);   /* a row of classes: small */
    } else if (act == ECM_ACT_LINEAR && !scale) {
        if (d != dy) memcpy(d, dy, rows * c * sizeof *d);
    } else {
        ec_act_scale_rows(ex, act == ECM_ACT_LINEAR ? dy : x, dy, scale, d, rows, c, act);
    }
    if (acc) ec_bw_accumulate(ex, dx, d, rows * c);
}

/* batchnorm (not fused into a conv): y = x * scale[c] + shift[c] */
static void ec_bn_rows(const ec_ew_task *t, size_t r0, size_t r1)
{
    const float *x = EW_X(t, r0);
    float *y = EW_Y(t, r0);
    if (x != y) memcpy(y, x, (r1 - r0) * t->c * sizeof *y);
    ec_f32_affine_act(y, r1 - r0, t->c, t->n->scale, t->n->shift, EC_ACT_LINEAR);
}

/* normalize: Keras's (x - mean) / std; shift holds the mean, scale 1/std */
static void ec_normalize_rows(const ec_ew_task *t, size_t r0, size_t r1)
{
    const float *x = EW_X(t, r0), *mean = t->n->shift, *inv = t->n->scale;
    float *y = EW_Y(t, r0);
    for (size_t r = 0; r < r1 - r0; r++)
        for (int k = 0; k < t->c; k++) y[r * t->c + k] = (x[r * t->c + k] - mean[k]) * inv[k];
}

/* rescale: y = x * f0 + f1, two roundings as Keras's x * scale + offset (no FMA
 * contraction in ISO C mode) */
static void ec_rescale_rows(const ec_ew_task *t, size_t r0, size_t r1)
{
    const float *x = EW_X(t, r0);
    float *y = EW_Y(t, r0);
    const float f0 = t->n->f0, f1 = t->n->f1;   /* locals: y cannot alias them, so the loop vectorizes */
    const size_t n = (r1 - r0) * t->c;
    for (size_t i = 0; i < n; i++) y[i] = x[i] * f0 + f1;
}

/* the backward of all three: dx (+)= dy * scale[c] (batchnorm, normalize) or
 * dy * f (rescale); dx may be dy (in place) */
void ec_scale_backward(const ec_exec *ex, const float *scale, float f, size_t rows, int c, const float *dy,
                       float *dx, int acc)
{
    float *d = acc ? ex->tmp : dx;   /* [rows, c] */
    if (scale) {
        ec_act_scale_rows(ex, dy, dy, scale, d, rows, c, EC_ACT_LINEAR);
    } else {
        for (size_t i = 0; i < rows * c; i++) d[i] = dy[i] * f;   /* the input end only: small */
    }
    if (acc) ec_bw_accumulate(ex, dx, d, rows * c);
}

/* y = in[first] + in[second] + ...; in place, y already holds in[inplace_in] */
static void ec_add_rows(const ec_ew_task *t, size_t r0, size_t r1)
{
    const ec_node *n = t->n;
    size_t e0 = r0 * t->c, ne = (r1 - r0) * t->c;
    int k0 = t->st->inplace ? t->st->inplace_in : 0, k = 0;
    const float *a = t->ex->val[n->in[k0]] + e0;
    float *y = EW_Y(t, r0);
    for (int j = 0; j < n->n_in; j++) {
        if (j == k0) continue;
        ec_f32_add(k++ == 0 ? a : y, t->ex->val[n->in[j]] + e0, y, ne);
    }
}

/* each input of an add (and identity, reshape): dx (+)= dy; nothing when dx is
 * dy (the plan gave the input's gradient the output's buffer) */
void ec_copy_backward(const ec_exec *ex, size_t n, const float *dy, float *dx, int acc)
{
    if (acc) ec_bw_accumulate(ex, dx, dy, n);
    else if (dx != dy) memcpy(dx, dy, n * sizeof *dx);
}

/* y = a * b: same shapes, or one of them 1x1xC broadcast over the pixels (SE excite) */
static void ec_mul_rows(const ec_ew_task *t, size_t r0, size_t r1)
{
    const ec_model *m = t->ex->m;
    const ec_node *n = t->n;
    const ec_value *va = &m->values[n->in[0]], *vb = &m->values[n->in[1]];
    const float *a = t->ex->val[n->in[0]], *b = t->ex->val[n->in[1]];
    size_t e0 = r0 * t->c, ne = (r1 - r0) * t->c;
    float *y = EW_Y(t, r0);
    if (va->h == vb->h && va->w == vb->w)
        ec_f32_mul(a + e0, b + e0, y, ne);
    else if (vb->h == 1 && vb->w == 1)
        ec_f32_mul_bcast(a + e0, b, y, r1 - r0, t->c);
    else
        ec_f32_mul_bcast(b + e0, a, y, r1 - r0, t->c);
}

/* Multiply backward, the gradient of input k: the product rule with the other
 * operand b. Full shapes: dx = dy * b. x full, b broadcast: dx = dy * b[c]
 * rows (ec_f32_mul_bcast). x broadcast (the SE gate), b full: dx[c] = sum over
 * the pixels of dy * b (ec_f32_mul_bcast_backward), split by channel ranges
 * (each channel's sum is the same whatever the range). */
typedef struct {
    const float *x, *dy;
    float *ds;
    size_t hw;
    int c, per;
} ec_mbw_task;

static void ec_mbw_cols(void *ctx, int task, int thread)
{
    (void)thread;
    const ec_mbw_task *t = ctx;
    int c0 = task * t->per, n = c0 + t->per < t->c ? t->per : t->c - c0;
    ec_f32_mul_bcast_backward(t->x + c0, t->dy + c0, t->hw, n, (size_t)t->c, t->ds + c0);
}

void ec_mul_backward(const ec_exec *ex, const ec_node *n, int k, const float *dy, float *dx, int acc)
{
    const ec_model *m = ex->m;
    const ec_value *va = &m->values[n->in[k]], *vb = &m->values[n->in[1 - k]];
    const float *b = ex->val[n->in[1 - k]];
    const int c = va->c;
    const size_t na = (size_t)va->h * va->w * c;
    float *d = acc ? ex->tmp : dx;   /* [va] */
    if (va->h == vb->h && va->w == vb->w) {
        ec_f32_mul(dy, b, d, na);
    } else if (vb->h == 1 && vb->w == 1) {
        ec_f32_mul_bcast(dy, b, d, (size_t)va->h * va->w, c);
    } else {
        ec_mbw_task t = { b, dy, d, (size_t)vb->h * vb->w, c, c };
        if (ex->threads > 1 && t.hw * (size_t)c >= (64u << 10)) t.per = ec_per_task(ex, c, 32);
        ec_pool_run(ex->pool, (c + t.per - 1) / t.per, ec_mbw_cols, &t);
    }
    if (acc) ec_bw_accumulate(ex, dx, d, na);
}

static void ec_ew_rows(void *ctx, int task, int thread)
{
    (void)thread;
    const ec_ew_task *t = ctx;
    size_t r0 = (size_t)task * t->rows, r1 = r0 + t->rows < (size_t)t->n_rows ? r0 + t->rows : (size_t)t->n_rows;
    t->fn(t, r0, r1);
}

static void ec_ew_forward(const ec_exec *ex, const ec_step *st, ec_ew_fn fn)
{
    const ec_value *vy = &ex->m->values[st->out];
    ec_ew_task t = { ex, &ex->m->nodes[st->node], st, vy->c, 0, vy->h * vy->w, fn };
    /* small ones inline: a hand-over to the pool costs a few microseconds on an
     * idle machine and far more when a busy neighbour delays the worker */
    t.rows = (size_t)t.n_rows * t.c < EC_INLINE_FLOATS ? t.n_rows : ec_split_rows(ex, t.n_rows);
    ec_pool_run(ex->pool, (t.n_rows + t.rows - 1) / t.rows, ec_ew_rows, &t);
}

/* ---- gap (split by channels), zeropad, identity --------------------------------------------------- */

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
static void ec_gap_forward(const ec_exec *ex, size_t hw, int c, const float *x, float *y)
{
    ec_gap_task t = { x, y, hw, c, c };
    if (ex->threads > 1 && hw * (size_t)c >= (64u << 10)) t.per = ec_per_task(ex, c, 32);
    ec_pool_run(ex->pool, (c + t.per - 1) / t.per, ec_gap_cols, &t);
}

/* dx[hw, c] (+)= dy[c] / hw */
void ec_gap_backward(const ec_exec *ex, size_t hw, int c, const float *dy, float *dx, int acc)
{
    (void)ex;
    ec_f32_gap_backward(dy, hw, c, (size_t)c, dx, acc);
}

/* y = x padded with zeros */
static void ec_zeropad_forward(const ec_exec *ex, const ec_node *n, const float *x, float *y)
{
    const ec_value *vx = &ex->m->values[n->in[0]];
    ec_f32_zeropad(x, vx->h, vx->w, vx->c, n->pt, n->pb, n->pl, n->pr, y);
}

/* dx (+)= the interior of dy (the padding's gradient goes nowhere) */
void ec_zeropad_backward(const ec_exec *ex, const ec_node *n, const float *dy, float *dx, int acc)
{
    const ec_value *vx = &ex->m->values[n->in[0]], *vy = &ex->m->values[n->out];
    if (!acc) {
        ec_f32_zeropad_backward(dy, vx->h, vx->w, vx->c, n->pt, n->pb, n->pl, n->pr, dx, 0, vx->h);
        return;
    }
    size_t row = (size_t)vx->w * vx->c;
    for (int r = 0; r < vx->h; r++) {
        const float *src = dy + ((size_t)(r + n->pt) * vy->w + n->pl) * vy->c;   /* [w * c] */
        ec_f32_add(dx + (size_t)r * row, src, dx + (size_t)r * row, row);
    }
}

/* ---- one step ------------------------------------------------------------------------------ */

void ec_op_forward(const ec_exec *ex, const ec_step *st)
{
    const ec_model *m = ex->m;
    const ec_node *n = &m->nodes[st->node];
    const ec_value *vx = &m->values[n->in[0]];
    const float *x = ex->val[n->in[0]];
    float *y = ex->val[st->out];
    if (st->excite_folded || st->band_done) return;   /* done by the step after / before it */
    if (st->se_fold) x = ex->val[st->se_x];  /* the excite's input; its scale is in the conv's kernel */
    switch (n->op) {
    case ECM_OP_CONV2D:
    case ECM_OP_DENSE:
        ec_conv_forward(ex, st, x, y);
        break;
    case ECM_OP_DWCONV2D:
        ec_dwconv_forward(ex, st, x, y);
        break;
    case ECM_OP_GAP:
        if (st->squeeze) ec_f32_rowsum_mean(ex->col, vx->h, vx->c, (size_t)vx->h * vx->w, y);   /* the dwconv's sums */
        else ec_gap_forward(ex, (size_t)vx->h * vx->w, vx->c, x, y);
        break;
    case ECM_OP_ZEROPAD:
        ec_zeropad_forward(ex, n, x, y);
        break;
    case ECM_OP_IDENTITY:
    case ECM_OP_RESHAPE:
        break;   /* the output aliases the input */
    case ECM_OP_ACTIVATION:
        if (n->act == ECM_ACT_SOFTMAX) {   /* rows are independent; c is small */
            ec_f32_act(x, y, (size_t)vx->h * vx->w, vx->c, ECM_ACT_SOFTMAX);
            break;
        }
        ec_ew_forward(ex, st, ec_act_rows);
        break;
    case ECM_OP_BATCHNORM: ec_ew_forward(ex, st, ec_bn_rows); break;
    case ECM_OP_NORMALIZE: ec_ew_forward(ex, st, ec_normalize_rows); break;
    case ECM_OP_RESCALE: ec_ew_forward(ex, st, ec_rescale_rows); break;
    case ECM_OP_ADD: ec_ew_forward(ex, st, ec_add_rows); break;
    case ECM_OP_MUL: ec_ew_forward(ex, st, ec_mul_rows); break;
    default: break;   /* the loader admits no other op */
    }
}
