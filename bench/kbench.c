/* kbench.c - kernel microbenchmark: GFLOP/s of each kernel variant on the
 * shapes EfficientNetV2-S runs at 300x300, one thread, against the measured
 * per-core FMA peak.
 *
 *   kbench [gemm|dw|conv|act|all] [-t SECONDS_PER_CASE]
 *
 * Indicative only: on a shared machine every figure moves with the load
 * (printed at the start and the end). Each case runs for ~SECONDS (default
 * 0.3 s) in short chunks, its variants alternating, and the best chunk counts. Variants the CPU lacks print
 * "-". Nothing is asserted; tests/test_kernels.c checks correctness. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"

static double secs_per_case = 0.3;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void loadavg(const char *when)
{
    FILE *f = fopen("/proc/loadavg", "r");
    char buf[128] = "?";
    if (f) {
        if (!fgets(buf, sizeof buf, f)) strcpy(buf, "?\n");
        fclose(f);
    }
    printf("# load average %s: %s", when, buf);
}

static uint64_t rng = 0x243F6A8885A308D3ull;
static float frand(void)       /* uniform [-1, 1) */
{
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return (float)((rng * 0x2545F4914F6CDD1Dull) >> 40) * 0x1p-23f - 1.0f;
}

static float *falloc(size_t n, int fill)
{
    float *p = aligned_alloc(64, ((n * sizeof(float)) + 63) / 64 * 64);
    if (!p) { fprintf(stderr, "kbench: out of memory\n"); exit(1); }
    for (size_t i = 0; i < n; i++) p[i] = fill ? frand() : 0.0f;
    return p;
}

/* Seconds per call of each of n variants (fn[i], ctx[i]); NULL fn: skipped,
 * 0 returned. The machine is shared: a neighbour's preemption or its use of
 * the same core only ever adds time, so each variant runs in many short
 * chunks (~2 ms), the variants taking turns chunk by chunk, and the fastest
 * chunk counts. */
typedef void bench_fn(void *ctx);
static void best_times(int n, bench_fn *const *fn, void *const *ctx, double *best)
{
    long calls[8];
    for (int v = 0; v < n; v++) {
        best[v] = 1e300;
        calls[v] = 1;
        if (!fn[v]) continue;
        fn[v](ctx[v]);   /* warm caches and the dispatcher, and size the chunk */
        double t0 = now_s();
        fn[v](ctx[v]);
        double t = now_s() - t0;
        calls[v] = t > 2e-3 ? 1 : (long)(2e-3 / (t > 1e-7 ? t : 1e-7));
    }
    const double t_end = now_s() + secs_per_case;
    int rounds = 0;
    do {
        for (int v = 0; v < n; v++) {
            if (!fn[v]) continue;
            double t0 = now_s();
            for (long i = 0; i < calls[v]; i++) fn[v](ctx[v]);
            double t = (now_s() - t0) / calls[v];
            if (t < best[v]) best[v] = t;
        }
    } while (++rounds < 5 || now_s() < t_end);
    for (int v = 0; v < n; v++)
        if (!fn[v]) best[v] = 0;
}

/* ---- peak ------------------------------------------------------------------ */

typedef struct { int zmm; long iters; } peak_ctx;
static volatile float sink;
static void peak_run(void *c)
{
    const peak_ctx *p = c;
    sink += p->zmm ? ec_cpu_fma_probe__avx512(p->iters, 1.0f) : ec_cpu_fma_probe__avx2(p->iters, 1.0f);
}

static double peak_y, peak_z;   /* GFLOP/s, one core */

static void bench_peak(void)
{
    peak_ctx y = {0, 2000}, z = {1, 1000};
    /* the probe needs only the instructions, not the dispatch decision */
    const int z_ok = ec_cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                     __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    bench_fn *fns[2] = {ec_cpu_has_avx2() ? peak_run : NULL, z_ok ? peak_run : NULL};
    void *ctxs[2] = {&y, &z};
    double t[2];
    best_times(2, fns, ctxs, t);
    if (t[0] > 0) peak_y = ec_cpu_fma_probe_flops(y.iters, 0) / t[0] * 1e-9;
    if (t[1] > 0) peak_z = ec_cpu_fma_probe_flops(z.iters, 1) / t[1] * 1e-9;
    printf("peak FMA, one core: ymm %.1f GFLOP/s, zmm %.1f GFLOP/s (zmm/ymm %.2f); AVX-512 kernels %s\n", peak_y,
           peak_z, peak_y > 0 ? peak_z / peak_y : 0.0, ec_cpu_has_avx512() ? "in use" : "not used");
}

/* ---- GEMM ------------------------------------------------------------------ */

typedef struct {
    int M, N, K, act, isa;    /* isa: 0 avx2, 1 avx512 */
    const float *A, *Bp, *shift;
    float *C;
    const uint16_t *W16;
    const float *scale;
    float *bp;
} gemm_ctx;

static void gemm_run(void *c)
{
    const gemm_ctx *g = c;
    const int np = (g->N + EC_PG_NR - 1) / EC_PG_NR;
    if (g->isa) ec_gemm_packed__avx512(g->M, g->N, g->K, g->A, g->K, g->Bp, g->shift, g->act, g->C, g->N, 0, g->M, 0, np);
    else ec_gemm_packed__avx2(g->M, g->N, g->K, g->A, g->K, g->Bp, g->shift, g->act, g->C, g->N, 0, g->M, 0, np);
}

/* the whole layer as the engine runs it: pack (fp16 widened, scale) + GEMM,
 * against the GEMM widening fp16 weights per block */
static void layer_run(void *c)
{
    const gemm_ctx *g = c;
    const int np = (g->N + EC_PG_NR - 1) / EC_PG_NR;
    if (g->isa) {
        ec_pack_b__avx512(g->W16, 1, g->scale, g->K, g->N, 0, np, g->bp);
        ec_gemm_packed__avx512(g->M, g->N, g->K, g->A, g->K, g->bp, g->shift, g->act, g->C, g->N, 0, g->M, 0, np);
    } else {
        ec_pack_b__avx2(g->W16, 1, g->scale, g->K, g->N, 0, np, g->bp);
        ec_gemm_packed__avx2(g->M, g->N, g->K, g->A, g->K, g->bp, g->shift, g->act, g->C, g->N, 0, g->M, 0, np);
    }
}

static void w16_run(void *c)
{
    const gemm_ctx *g = c;
    const int np = (g->N + EC_PG_NR - 1) / EC_PG_NR;
    if (g->isa) ec_gemm_w16__avx512(g->M, g->N, g->K, g->A, g->K, g->W16, g->scale, NULL, g->shift, g->act, g->C, g->N, 0, g->M, 0, np);
    else ec_gemm_w16__avx2(g->M, g->N, g->K, g->A, g->K, g->W16, g->scale, NULL, g->shift, g->act, g->C, g->N, 0, g->M, 0, np);
}

static void pack_run(void *c)
{
    const gemm_ctx *g = c;
    const int np = (g->N + EC_PG_NR - 1) / EC_PG_NR;
    if (g->isa) ec_pack_b__avx512(g->W16, 1, g->scale, g->K, g->N, 0, np, g->bp);
    else ec_pack_b__avx2(g->W16, 1, g->scale, g->K, g->N, 0, np, g->bp);
}

/* EfficientNetV2-S at 300x300: its 1x1 convs (expand: swish; project: linear)
 * and the head, M = output pixels; then Winograd tile GEMMs. */
static const int gemm_shapes[][4] = {   /* M, K, N, act */
    {5625, 96, 48, EC_ACT_LINEAR},   {5625, 192, 48, EC_ACT_LINEAR},  {1444, 192, 64, EC_ACT_LINEAR},
    {1444, 256, 64, EC_ACT_LINEAR},  {1444, 64, 256, EC_ACT_SWISH},   {361, 256, 128, EC_ACT_LINEAR},
    {361, 128, 512, EC_ACT_SWISH},   {361, 512, 128, EC_ACT_LINEAR},  {361, 128, 768, EC_ACT_SWISH},
    {361, 768, 160, EC_ACT_LINEAR},  {361, 160, 960, EC_ACT_SWISH},   {361, 960, 160, EC_ACT_LINEAR},
    {100, 960, 256, EC_ACT_LINEAR},  {100, 256, 1536, EC_ACT_SWISH},  {100, 1536, 256, EC_ACT_LINEAR},
    {100, 256, 1280, EC_ACT_SWISH},
    /* one task's Winograd GEMMs (engine/plan.c: EC_WINO_TILE_BYTES): F(4x4) 48 -> 192
     * at 75x75 (30 tiles, x 36 per task), F(2x2) 64 -> 256 at 38x38 (51 tiles, x 16) */
    {30, 48, 192, EC_ACT_LINEAR},    {51, 64, 256, EC_ACT_LINEAR},
};

static void bench_gemm(void)
{
    printf("\n%-22s %9s %9s %7s %7s   %s\n", "gemm M x K x N act", "avx2", "avx512", "ratio", "%zpeak",
           "pack fp16 (avx2 / avx512, GB/s out)");
    for (size_t s = 0; s < sizeof gemm_shapes / sizeof *gemm_shapes; s++) {
        const int M = gemm_shapes[s][0], K = gemm_shapes[s][1], N = gemm_shapes[s][2], act = gemm_shapes[s][3];
        const size_t nb = ec_pack_b_floats(K, N);
        float *A = falloc((size_t)M * K, 1), *B = falloc((size_t)K * N, 1), *Bp = falloc(nb, 0);
        float *C = falloc((size_t)M * N, 0), *sh = falloc((size_t)N, 1), *sc = falloc((size_t)N, 1);
        uint16_t *W16 = malloc((size_t)K * N * sizeof *W16);
        ec_f32_to_f16_n(B, W16, (size_t)K * N);
        ec_pack_b(B, 0, NULL, K, N, 0, (N + 15) / 16, Bp);
        gemm_ctx g = {M, N, K, act, 0, A, Bp, sh, C, W16, sc, falloc(nb, 0)};
        gemm_ctx g2 = g, p1 = g, p2 = g;
        g2.isa = p2.isa = 1;
        const int h2 = ec_cpu_has_avx2(), h5 = ec_cpu_has_avx512();
        bench_fn *fns[4] = {h2 ? gemm_run : NULL, h5 ? gemm_run : NULL, h2 ? pack_run : NULL, h5 ? pack_run : NULL};
        void *ctxs[4] = {&g, &g2, &p1, &p2};
        double t[4], r[2], pk[2];
        best_times(4, fns, ctxs, t);
        for (int i = 0; i < 2; i++) {
            r[i] = t[i] > 0 ? 2.0 * M * K * N / t[i] * 1e-9 : 0;
            pk[i] = t[2 + i] > 0 ? (double)nb * 4 / t[2 + i] * 1e-9 : 0;
        }
        char name[40];
        snprintf(name, sizeof name, "%dx%dx%d %s", M, K, N, act == EC_ACT_SWISH ? "swish" : "lin");
        printf("%-22s %9.1f %9.1f %7.2f %6.0f%%   %.1f / %.1f\n", name, r[0], r[1], r[0] > 0 ? r[1] / r[0] : 0,
               peak_z > 0 ? 100 * r[1] / peak_z : 0, pk[0], pk[1]);
        /* the layer: pack + GEMM vs the GEMM on fp16 weights widened per block */
        bench_fn *lf[4] = {h2 ? layer_run : NULL, h2 ? w16_run : NULL, h5 ? layer_run : NULL, h5 ? w16_run : NULL};
        void *lc[4] = {&g, &g, &g2, &g2};
        best_times(4, lf, lc, t);
        for (int i = 0; i < 4; i++) t[i] = t[i] > 0 ? 2.0 * M * K * N / t[i] * 1e-9 : 0;
        printf("%-22s %9.1f %9.1f %7s %7s   w16: %.1f / %.1f\n", "  pack+gemm | w16", t[0], t[2], "", "", t[1], t[3]);
        free(A); free(B); free(Bp); free(C); free(sh); free(sc); free(W16); free(g.bp);
    }
}

/* ---- depthwise ------------------------------------------------------------- */

typedef struct {
    ec_dwconv_params p;
    const float *x, *w, *scale, *shift;
    float *out;
    int isa;
} dw_ctx;

static void dw_run(void *c)
{
    const dw_ctx *d = c;
    if (d->isa) ec_f32_dwconv__avx512(&d->p, d->x, d->w, d->scale, d->shift, d->out, 0, d->p.g.out_h);
    else ec_f32_dwconv__avx2(&d->p, d->x, d->w, d->scale, d->shift, d->out, 0, d->p.g.out_h);
}

/* EfficientNetV2-S at 300x300: its depthwise convs (3x3, swish, BN folded) */
static const int dw_shapes[][4] = {   /* in h = w, c, stride, count in the model */
    {38, 256, 2, 1}, {19, 512, 1, 5}, {19, 768, 1, 1}, {19, 960, 1, 8}, {19, 960, 2, 1}, {10, 1536, 1, 14},
};

static void bench_dw(void)
{
    printf("\n%-22s %9s %9s %7s %7s   (GFLOP/s of the taps; x count in the model)\n", "dwconv in x c s", "avx2",
           "avx512", "ratio", "%zpeak");
    for (size_t s = 0; s < sizeof dw_shapes / sizeof *dw_shapes; s++) {
        const int h = dw_shapes[s][0], c = dw_shapes[s][1], st = dw_shapes[s][2];
        dw_ctx d;
        memset(&d, 0, sizeof d);
        ec_conv_geom *g = &d.p.g;
        g->in_h = g->in_w = h, g->c = c, g->kh = g->kw = 3, g->sh = g->sw = st;
        g->out_h = g->out_w = (h + st - 1) / st;
        const int pad = (g->out_h - 1) * st + 3 - h;
        g->pad_t = g->pad_l = pad / 2;
        d.p.mult = 1, d.p.act = EC_ACT_SWISH;
        float *x = falloc((size_t)h * h * c, 1), *w = falloc((size_t)9 * c, 1), *sc = falloc((size_t)c, 1);
        float *sh = falloc((size_t)c, 1), *o = falloc((size_t)g->out_h * g->out_w * c, 0);
        d.x = x, d.w = w, d.scale = sc, d.shift = sh, d.out = o;
        dw_ctx d2 = d;
        d2.isa = 1;
        bench_fn *fns[2] = {ec_cpu_has_avx2() ? dw_run : NULL, ec_cpu_has_avx512() ? dw_run : NULL};
        void *ctxs[2] = {&d, &d2};
        double t[2], r[2];
        best_times(2, fns, ctxs, t);
        const double flops = 2.0 * 9 * g->out_h * g->out_w * c;
        for (int i = 0; i < 2; i++) r[i] = t[i] > 0 ? flops / t[i] * 1e-9 : 0;
        char name[40];
        snprintf(name, sizeof name, "%dx%d s%d x%d", h, c, st, dw_shapes[s][3]);
        printf("%-22s %9.1f %9.1f %7.2f %6.0f%%\n", name, r[0], r[1], r[0] > 0 ? r[1] / r[0] : 0,
               peak_z > 0 ? 100 * r[1] / peak_z : 0);
        free(x); free(w); free(sc); free(sh); free(o);
    }
}

/* ---- activations ------------------------------------------------------------ */

typedef struct { float *x; const float *sc, *sh; size_t rows; int c, act, isa, affine; } act_ctx;

static void act_run(void *c)
{
    const act_ctx *a = c;
    if (a->affine) {
        if (a->isa) ec_f32_affine_act__avx512(a->x, a->rows, a->c, a->sc, a->sh, a->act);
        else ec_f32_affine_act__avx2(a->x, a->rows, a->c, a->sc, a->sh, a->act);
    } else {
        if (a->isa) ec_f32_act__avx512(a->x, a->x, a->rows, a->c, a->act);
        else ec_f32_act__avx2(a->x, a->x, a->rows, a->c, a->act);
    }
}

static void bench_act(void)
{
    printf("\n%-22s %9s %9s %7s   (G elements/s, in place, 19 x 19 x 160 = 226 KB)\n", "activation", "avx2",
           "avx512", "ratio");
    static const int acts[] = {EC_ACT_SWISH, EC_ACT_SIGMOID, EC_ACT_RELU, EC_ACT_TANH};
    const size_t rows = 361;
    const int c = 160;
    for (int affine = 0; affine < 2; affine++)
        for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) {
            float *x = falloc(rows * c, 1), *sc = falloc((size_t)c, 1), *sh = falloc((size_t)c, 1);
            act_ctx a = {x, sc, sh, rows, c, acts[i], 0, affine}, b = a;
            b.isa = 1;
            bench_fn *fns[2] = {ec_cpu_has_avx2() ? act_run : NULL, ec_cpu_has_avx512() ? act_run : NULL};
            void *ctxs[2] = {&a, &b};
            double t[2], r[2];
            best_times(2, fns, ctxs, t);
            for (int v = 0; v < 2; v++) r[v] = t[v] > 0 ? rows * c / t[v] * 1e-9 : 0;
            static const char *nm[] = {"linear", "relu", "relu6", "sigmoid", "softmax", "swish", "tanh", "gelu"};
            char name[40];
            snprintf(name, sizeof name, "%s%s", affine ? "affine+" : "", nm[acts[i]]);
            printf("%-22s %9.2f %9.2f %7.2f\n", name, r[0], r[1], r[0] > 0 ? r[1] / r[0] : 0);
            free(x); free(sc); free(sh);
        }
}

/* ---- direct conv and Winograd transforms ------------------------------------ */

typedef struct {
    ec_conv_params p;
    const float *x, *w, *sc, *sh;
    float *y, *v, *m;
    int isa, kind, t1;   /* kind: 0 direct conv, 1 F(4x4) input, 2 F(4x4) output, 3 F(2x2) input, 4 F(2x2) output */
} cw_ctx;

static void cw_run(void *c)
{
    const cw_ctx *k = c;
    const ec_conv_geom *g = &k->p.g;
    switch (k->kind) {
    case 0:
        if (k->isa) ec_f32_conv_direct__avx512(&k->p, k->x, k->w, k->sc, k->sh, k->y, 0, g->out_h);
        else ec_f32_conv_direct__avx2(&k->p, k->x, k->w, k->sc, k->sh, k->y, 0, g->out_h);
        break;
    case 1:
        if (k->isa) ec_wino43_input__avx512(g, k->x, 0, k->t1, k->v);
        else ec_wino43_input__avx2(g, k->x, 0, k->t1, k->v);
        break;
    case 2:
        if (k->isa) ec_wino43_output__avx512(g, k->p.cout, k->m, 0, k->t1, k->sh, EC_ACT_SWISH, k->y);
        else ec_wino43_output__avx2(g, k->p.cout, k->m, 0, k->t1, k->sh, EC_ACT_SWISH, k->y);
        break;
    case 3:
        if (k->isa) ec_wino23_input__avx512(g, k->x, 0, k->t1, k->v);
        else ec_wino23_input__avx2(g, k->x, 0, k->t1, k->v);
        break;
    default:
        if (k->isa) ec_wino23_output__avx512(g, k->p.cout, k->m, 0, k->t1, k->sh, EC_ACT_SWISH, k->y);
        else ec_wino23_output__avx2(g, k->p.cout, k->m, 0, k->t1, k->sh, EC_ACT_SWISH, k->y);
        break;
    }
}

/* in h = w, cin, cout, k, stride, kind */
static const int cw_shapes[][6] = {
    {300, 3, 24, 3, 2, 0}, {150, 24, 24, 3, 1, 0},           /* stem, stage 1 (direct) */
    {75, 48, 192, 3, 1, 1}, {75, 48, 192, 3, 1, 2},          /* stage 2's 3x3: F(4x4) transforms */
    {38, 64, 256, 3, 1, 3}, {38, 64, 256, 3, 1, 4},          /* stage 3's 3x3: F(2x2) transforms */
};

static void bench_cw(void)
{
    static const char *kn[] = {"direct", "w43 in", "w43 out", "w23 in", "w23 out"};
    printf("\n%-22s %9s %9s %7s   (direct: GFLOP/s; Winograd: GB/s read + written, one task's tiles)\n",
           "conv in x cin>cout", "avx2", "avx512", "ratio");
    for (size_t s = 0; s < sizeof cw_shapes / sizeof *cw_shapes; s++) {
        const int h = cw_shapes[s][0], cin = cw_shapes[s][1], cout = cw_shapes[s][2], k = cw_shapes[s][3];
        const int st = cw_shapes[s][4], kind = cw_shapes[s][5];
        cw_ctx c;
        memset(&c, 0, sizeof c);
        ec_conv_geom *g = &c.p.g;
        g->in_h = g->in_w = h, g->c = cin, g->kh = g->kw = k, g->sh = g->sw = st;
        g->out_h = g->out_w = (h + st - 1) / st;
        const int pad = (g->out_h - 1) * st + k - h;
        g->pad_t = g->pad_l = pad / 2;
        c.p.cout = cout, c.p.act = EC_ACT_SWISH, c.kind = kind;
        const int nxi = kind == 1 || kind == 2 ? 36 : 16;
        const int tiles = kind == 1 || kind == 2 ? ec_wino43_tiles(g) : ec_wino23_tiles(g);
        c.t1 = kind == 1 || kind == 2 ? 30 : 51;   /* engine/plan.c's tiles per task */
        if (c.t1 > tiles) c.t1 = tiles;
        float *x = falloc((size_t)h * h * cin, 1), *w = falloc((size_t)k * k * cin * cout, 1);
        float *sc = falloc((size_t)cout, 1), *sh = falloc((size_t)cout, 1);
        float *y = falloc((size_t)g->out_h * g->out_w * cout, 0), *v = falloc((size_t)nxi * c.t1 * cin, 0);
        float *m = falloc((size_t)nxi * c.t1 * cout, 1);
        c.x = x, c.w = w, c.sc = sc, c.sh = sh, c.y = y, c.v = v, c.m = m;
        cw_ctx c2 = c;
        c2.isa = 1;
        bench_fn *fns[2] = {ec_cpu_has_avx2() ? cw_run : NULL, ec_cpu_has_avx512() ? cw_run : NULL};
        void *ctxs[2] = {&c, &c2};
        double t[2], r[2];
        best_times(2, fns, ctxs, t);
        const double ops = kind == 0 ? 2.0 * k * k * cin * cout * g->out_h * g->out_w
                           : kind == 1 || kind == 3 ? 4.0 * ((kind == 1 ? 36.0 : 16.0) * c.t1 * cin + (kind == 1 ? 36.0 : 16.0) * c.t1 * cin)
                                                    : 4.0 * ((double)nxi * c.t1 * cout + (kind == 2 ? 16.0 : 4.0) * c.t1 * cout);
        for (int i = 0; i < 2; i++) r[i] = t[i] > 0 ? ops / t[i] * 1e-9 : 0;
        char name[40];
        snprintf(name, sizeof name, "%d %d>%d %s", h, cin, cout, kn[kind]);
        printf("%-22s %9.1f %9.1f %7.2f\n", name, r[0], r[1], r[0] > 0 ? r[1] / r[0] : 0);
        free(x); free(w); free(sc); free(sh); free(y); free(v); free(m);
    }
}

int main(int argc, char **argv)
{
    const char *what = "all";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) secs_per_case = atof(argv[++i]);
        else what = argv[i];
    }
    loadavg("at start");
    bench_peak();
    if (!strcmp(what, "all") || !strcmp(what, "gemm")) bench_gemm();
    if (!strcmp(what, "all") || !strcmp(what, "dw")) bench_dw();
    if (!strcmp(what, "all") || !strcmp(what, "conv")) bench_cw();
    if (!strcmp(what, "all") || !strcmp(what, "act")) bench_act();
    loadavg("at end");
    return 0;
}
