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

static void ec_packed_conv(const ec_exec *ex, const ec_step *st, ec_mm_task *t)
{
    const ec_model *m = ex->m;
    const ec_tensor *W = &m->tensors[m->nodes[st->node].w[0]];   /* [K, N] */
    int np = (t->N + EC_PG_NR - 1) / EC_PG_NR;
    ec_pack_task pk = { W->data, W->dtype == ECM_DT_F16, t->K, t->N, np, st->scale, ex->wide };
    /* below ~64 K weights a second thread costs more than it saves */
    if (ex->threads > 1 && (size_t)t->K * t->N >= (64u << 10)) pk.per = ec_per_task(ex, np, 1);
    ec_pool_run(ex->pool, (np + pk.per - 1) / pk.per, ec_pack_panels, &pk);
    t->w = ex->wide;
    if (!t->g && ex->threads > 1 && np >= 2 * ex->threads && t->M <= 512) {
        /* few rows: split by panels (rows at micro-tile multiples leave 54 + 46
         * of the 10x10 stage's 100); each task reads all of A, at most 512 rows */
        t->cols = ec_per_task(ex, np, 1);
        ec_pool_run(ex->pool, (np + t->cols - 1) / t->cols, ec_pg_panels, t);
        return;
    }
    if (!t->g) t->rows = ec_per_task(ex, t->M, EC_PG_MR);   /* at micro-tile multiples */
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
    ec_direct_task t = { { *g, ex->m->values[st->out].c, st->act }, x, w, scale, shift, y, 0 };
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
    ec_pool_run(ex->pool, (t.n_tiles + t.T - 1) / t.T, ec_wino_tiles, &t);
}

static void ec_conv_forward(const ec_exec *ex, const ec_step *st, const float *x, float *y)
{
    const ec_model *m = ex->m;
    const ec_node *n = &m->nodes[st->node];
    const ec_value *vx = &m->values[n->in[0]], *vy = &m->values[n->out];
    ec_conv_geom g = { vx->h, vx->w, vx->c, vy->h, vy->w, n->kh, n->kw, n->sh, n->sw, n->pt, n->pl };
    ec_mm_task t = { x, NULL, y, vy->h * vy->w, vy->c, 0, 0, 0,
                     st->scale, st->shift, st->act, 0, NULL, ex->col, ex->col_stride };
    if (n->op == ECM_OP_DENSE) {
        t.K = vx->c;
        t.M = vx->h * vx->w;
    } else {
        t.K = n->kh * n->kw * vx->c;
    }
    if (st->wino_tiles > 0) {
        ec_wino_conv(ex, st, &g, x, y);
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

/* dense: dx[M, cin] (+)= dz[M, cout] @ W^T, dz from dy through the activation. */
void ec_dense_backward(const ec_exec *ex, const ec_node *n, const float *x, const float *y,
                       const float *dy, float *dx, int acc, int dy_is_dlogit)
{
    const ec_model *m = ex->m;
    const ec_value *vx = &m->values[n->in[0]];
    int M = vx->h * vx->w, cin = vx->c, cout = m->values[n->out].c;
    const float *w = ec_exec_weights(ex, n->w[0]);   /* [cin, cout] */
    float *dz = ex->tmp;                                /* [M, cout] */
    float *z = ex->tmp + ex->tmp_floats / 2;          /* [M, cout] */
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
    /* whole output rows per task: each element's arithmetic does not depend on the split */
    t.rows = ec_per_task(ex, vy->h, 1);
    ec_pool_run(ex->pool, (vy->h + t.rows - 1) / t.rows, ec_dw_rows, &t);
    if (st->softmax) ec_f32_act(y, y, (size_t)vy->h * vy->w, vy->c, EC_ACT_SOFTMAX);
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

void ec_act_backward(const ec_exec *ex, int act, const float *x, const float *y, size_t rows, int c,
                     const float *dy, float *dx, int acc)
{
    float *d = acc ? ex->tmp : dx;   /* [rows, c] */
    if (act == ECM_ACT_SOFTMAX)
        ec_f32_softmax_backward(y, dy, d, rows, c);
    else if (act == ECM_ACT_LINEAR)
        memcpy(d, dy, rows * c * sizeof *d);
    else
        ec_f32_act_backward(x, dy, d, rows, c, act);
    if (acc) ec_f32_add(dx, d, dx, rows * c);
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
    for (size_t i = 0; i < (r1 - r0) * t->c; i++) y[i] = x[i] * t->n->f0 + t->n->f1;
}

/* the backward of all three: dx (+)= dy * scale[c] (or * f) */
void ec_scale_backward(const ec_exec *ex, const float *scale, float f, size_t rows, int c, const float *dy,
                       float *dx, int acc)
{
    (void)ex;
    for (size_t r = 0; r < rows; r++)
        for (int k = 0; k < c; k++) {
            float g = dy[r * c + k] * (scale ? scale[k] : f);
            dx[r * c + k] = acc ? dx[r * c + k] + g : g;
        }
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

/* each input of an add (and identity, reshape): dx (+)= dy */
void ec_copy_backward(const ec_exec *ex, size_t n, const float *dy, float *dx, int acc)
{
    (void)ex;
    if (acc) ec_f32_add(dx, dy, dx, n);
    else memcpy(dx, dy, n * sizeof *dx);
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

void ec_mul_backward(const ec_exec *ex, const ec_value *va, const float *b, const ec_value *vb, const float *dy,
                     float *da, int acc)
{
    (void)ex;
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
    t.rows = ec_split_rows(ex, t.n_rows);
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

void ec_gap_backward(const ec_exec *ex, size_t hw, int c, const float *dy, float *dx, int acc)
{
    (void)ex;
    float inv = 1.0f / (float)hw;
    for (size_t p = 0; p < hw; p++)
        for (int k = 0; k < c; k++) dx[p * c + k] = acc ? dx[p * c + k] + dy[k] * inv : dy[k] * inv;
}

/* y = x padded with zeros */
static void ec_zeropad_forward(const ec_exec *ex, const ec_node *n, const float *x, float *y)
{
    const ec_value *vx = &ex->m->values[n->in[0]];
    ec_f32_zeropad(x, vx->h, vx->w, vx->c, n->pt, n->pb, n->pl, n->pr, y);
}

void ec_zeropad_backward(const ec_exec *ex, const ec_node *n, const ec_value *vx, const ec_value *vy,
                         const float *dy, float *dx, int acc)
{
    (void)ex;
    size_t row = (size_t)vx->w * vx->c;
    for (int r = 0; r < vx->h; r++) {
        const float *src = dy + ((size_t)(r + n->pt) * vy->w + n->pl) * vy->c;   /* [w * c] */
        float *dst = dx + (size_t)r * row;
        for (size_t i = 0; i < row; i++) dst[i] = acc ? dst[i] + src[i] : src[i];
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
    switch (n->op) {
    case ECM_OP_CONV2D:
    case ECM_OP_DENSE:
        ec_conv_forward(ex, st, x, y);
        break;
    case ECM_OP_DWCONV2D:
        ec_dwconv_forward(ex, st, x, y);
        break;
    case ECM_OP_GAP:
        ec_gap_forward(ex, (size_t)vx->h * vx->w, vx->c, x, y);
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
