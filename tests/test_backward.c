/* test_backward.c - the backward kernels (Grad-CAM at any layer, issue #15).
 *
 * 1. Finite differences: each op's forward is run with its float __ref kernel
 *    at x + h e_i and x - h e_i, the loss L = sum r * y summed in double (r a
 *    random dout), and (L+ - L-) / (x+ - x-) compared with the analytic dx the
 *    backward kernel computes from dout = r. The error is reported relative to
 *    the largest |dx| of the case (so a near-zero element does not make a huge
 *    ratio); tolerances: 1e-4 for the linear ops (no truncation error: only the
 *    rounding of the few outputs each x_i reaches), 2e-3 for the activations
 *    (h = 1e-2: truncation ~ h^2 f''' / 6 plus the forward's float rounding / h).
 * 2. SIMD against reference over awkward sizes (channels 1, 15, 16, 17, 31, 32,
 *    33; odd H/W; strides 1 and 2; kernels 3 and 5; multiplier 1 and 2; SAME,
 *    VALID, asymmetric and oversized padding), max abs diff printed.
 * 3. Split independence: rows (or channels) computed in pieces give the same
 *    bits as in one call. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "tests/harness.h"
#include "tests/testutil.h"

/* ---- helpers ---------------------------------------------------------------- */

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static double max_abs(const float *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i]));
    return m;
}

static const char *act_name(int act)
{
    static const char *names[] = {"linear", "relu", "relu6", "sigmoid", "softmax", "swish", "tanh", "gelu"};
    return act >= 0 && act < 8 ? names[act] : "?";
}

static const int elementwise_acts[] = {EC_ACT_LINEAR, EC_ACT_RELU, EC_ACT_RELU6, EC_ACT_SIGMOID,
                                       EC_ACT_SWISH, EC_ACT_TANH, EC_ACT_GELU};
#define NACT (int)(sizeof elementwise_acts / sizeof elementwise_acts[0])
static const int channels[] = {1, 15, 16, 17, 31, 32, 33};
#define NCH (int)(sizeof channels / sizeof channels[0])

enum { PAD_SAME, PAD_VALID, PAD_ASYM, PAD_OVER, NPAD };
static const char *pad_name[] = {"same", "valid", "asym", "over"};

/* Fills g for one padding scheme (Keras SAME puts the extra pixel bottom/right);
 * returns 0 when the scheme has no output. */
static int make_geom(ec_conv_geom *g, int in_h, int in_w, int c, int k, int s, int pad)
{
    memset(g, 0, sizeof *g);
    g->in_h = in_h; g->in_w = in_w; g->c = c; g->kh = k; g->kw = k; g->sh = s; g->sw = s;
    int pt, pb, pl, pr;
    switch (pad) {
    case PAD_SAME: {
        int oh = (in_h + s - 1) / s, ow = (in_w + s - 1) / s;
        int th = (oh - 1) * s + k - in_h, tw = (ow - 1) * s + k - in_w;
        if (th < 0) th = 0;
        if (tw < 0) tw = 0;
        pt = th / 2; pb = th - pt; pl = tw / 2; pr = tw - pl;
        break;
    }
    case PAD_VALID: pt = pb = pl = pr = 0; break;
    case PAD_ASYM:  pt = k - 1; pb = 0; pl = 0; pr = k - 1; break;
    default:        pt = pb = pl = pr = k; break;
    }
    g->pad_t = pt; g->pad_l = pl;
    if (in_h + pt + pb < k || in_w + pl + pr < k) return 0;
    g->out_h = (in_h + pt + pb - k) / s + 1;
    g->out_w = (in_w + pl + pr - k) / s + 1;
    return 1;
}

/* Worst finite-difference error over all ops, for the summary line. */
static double fd_worst_all;
static char fd_worst_name[96];

/* Finite-difference verdict: err = max_i |fd_i - an_i| / max_i |an_i|. */
static void fd_report(const char *name, double err, double tol, int worst_i)
{
    if (err > fd_worst_all) {
        fd_worst_all = err;
        snprintf(fd_worst_name, sizeof fd_worst_name, "%s", name);
    }
    printf("  %s: FD error %.3g (tol %.0e)\n", name, err, tol);
    T_CHECK(name, err <= tol, "FD error %.3g > %.0e (relative to max |dx|), worst element %d", err, tol, worst_i);
}

/* The numeric derivative of L = sum r * f(x) at element i: forward(x) is the
 * caller's float forward writing y (ny floats). */
typedef void (*fwd_fn)(const void *ctx, const float *x, float *y);

static double fd_one(fwd_fn f, const void *ctx, float *x, size_t i, float h, const float *r, float *y, size_t ny)
{
    const float x0 = x[i];
    x[i] = x0 + h;
    const float xp = x[i];
    f(ctx, x, y);
    const double lp = dot(r, y, ny);
    x[i] = x0 - h;
    const float xm = x[i];
    f(ctx, x, y);
    const double lm = dot(r, y, ny);
    x[i] = x0;
    return (lp - lm) / ((double)xp - (double)xm);
}

/* Compares an[nx] with the finite differences of every x element. */
static double fd_check(fwd_fn f, const void *ctx, float *x, size_t nx, float h, const float *r, size_t ny,
                       const float *an, int *worst_i)
{
    float *y = t_fmalloc(ny);
    const double scale = fmax(max_abs(an, nx), 1e-30);
    double worst = 0;
    *worst_i = -1;
    for (size_t i = 0; i < nx; i++) {
        const double e = fabs(fd_one(f, ctx, x, i, h, r, y, ny) - an[i]) / scale;
        if (!(e <= worst)) { worst = e; *worst_i = (int)i; }
    }
    free(y);
    return worst;
}

/* ---- depthwise conv ------------------------------------------------------------ */

typedef struct {
    const ec_dwconv_params *p;
    const float *w, *scale, *shift;
} dw_fwd_ctx;

static void dw_fwd(const void *ctx, const float *x, float *y)
{
    const dw_fwd_ctx *k = ctx;
    ec_f32_dwconv__ref(k->p, x, k->w, k->scale, k->shift, y, 0, k->p->g.out_h);
}

static void test_dwconv_fd(void)
{
    static const struct { int h, w, c, k, s, pad, mult; } cs[] = {
        {5, 6, 3, 3, 1, PAD_SAME, 1}, {6, 7, 2, 3, 2, PAD_SAME, 1}, {7, 5, 2, 5, 2, PAD_SAME, 1},
        {6, 6, 2, 5, 1, PAD_VALID, 2}, {5, 7, 3, 3, 2, PAD_ASYM, 2}, {3, 4, 2, 3, 1, PAD_OVER, 1},
    };
    for (size_t ci = 0; ci < sizeof cs / sizeof *cs; ci++) {
        ec_dwconv_params p = {.mult = cs[ci].mult, .act = EC_ACT_LINEAR};
        if (!make_geom(&p.g, cs[ci].h, cs[ci].w, cs[ci].c, cs[ci].k, cs[ci].s, cs[ci].pad)) continue;
        const int C = p.g.c * p.mult;
        const size_t nx = (size_t)p.g.in_h * p.g.in_w * p.g.c, ny = (size_t)p.g.out_h * p.g.out_w * C;
        float *x = t_fmalloc(nx), *w = t_fmalloc((size_t)p.g.kh * p.g.kw * C), *sc = t_fmalloc(C), *sh = t_fmalloc(C);
        float *r = t_fmalloc(ny), *dx = t_fmalloc(nx);
        t_fill(x, nx, -1, 1);
        t_fill(w, (size_t)p.g.kh * p.g.kw * C, -1, 1);
        t_fill(sc, C, 0.5f, 2.0f);
        t_fill(sh, C, -1, 1);
        t_fill(r, ny, -1, 1);
        ec_f32_dwconv_backward__ref(&p, w, sc, r, dx, 0, p.g.in_h);
        const dw_fwd_ctx k = {&p, w, sc, sh};
        int wi;
        const double e = fd_check(dw_fwd, &k, x, nx, 0.25f, r, ny, dx, &wi);
        char name[96];
        snprintf(name, sizeof name, "fd_dwconv_backward_%dx%dx%d_k%d_s%d_%s_m%d", cs[ci].h, cs[ci].w, cs[ci].c,
                 cs[ci].k, cs[ci].s, pad_name[cs[ci].pad], cs[ci].mult);
        fd_report(name, e, 1e-4, wi);
        free(x); free(w); free(sc); free(sh); free(r); free(dx);
    }
}

/* The AVX2 twin against the reference, and split independence of both. */
static void test_dwconv_simd(void)
{
    static const int hw[][2] = {{1, 1}, {3, 5}, {7, 7}, {9, 6}, {12, 13}};
    double worst = 0;
    char where[128] = "";
    int fail = 0, split_bad = 0, runs = 0;
    const int avx2 = ec_cpu_has_avx2();
    for (int hi = 0; hi < 5; hi++)
        for (int ci = 0; ci < NCH; ci++)
            for (int k = 3; k <= 5; k += 2)
                for (int s = 1; s <= 2; s++)
                    for (int pad = 0; pad < NPAD; pad++)
                        for (int mult = 1; mult <= 2; mult++) {
                            if ((hi + ci + k + s + pad + mult) % 2 && hi != 4) continue;   /* thin the grid */
                            ec_dwconv_params p = {.mult = mult, .act = EC_ACT_LINEAR};
                            if (!make_geom(&p.g, hw[hi][0], hw[hi][1], channels[ci], k, s, pad)) continue;
                            const int C = p.g.c * mult, H = p.g.in_h;
                            const size_t nx = (size_t)H * p.g.in_w * p.g.c, ny = (size_t)p.g.out_h * p.g.out_w * C;
                            float *w = t_fmalloc((size_t)k * k * C), *sc = t_fmalloc(C), *dy = t_fmalloc(ny);
                            float *a = t_fmalloc(nx), *b = t_fmalloc(nx), *c2 = t_fmalloc(nx);
                            t_fill(w, (size_t)k * k * C, -1, 1);
                            t_fill(sc, C, 0.5f, 2.0f);
                            t_fill(dy, ny, -1, 1);
                            const float *scale = (ci + pad) % 2 ? sc : NULL;
                            ec_f32_dwconv_backward__ref(&p, w, scale, dy, a, 0, H);
                            /* the reference split in two at an odd row */
                            ec_f32_dwconv_backward__ref(&p, w, scale, dy, c2, 0, H / 2);
                            ec_f32_dwconv_backward__ref(&p, w, scale, dy, c2, H / 2, H);
                            split_bad |= memcmp(a, c2, nx * sizeof *a) != 0;
                            if (avx2) {
                                ec_f32_dwconv_backward__avx2(&p, w, scale, dy, b, 0, H);
                                /* AVX2 in three pieces, then in one row at a time */
                                memset(c2, 0, nx * sizeof *c2);
                                ec_f32_dwconv_backward__avx2(&p, w, scale, dy, c2, 0, H / 3);
                                ec_f32_dwconv_backward__avx2(&p, w, scale, dy, c2, H / 3, 2 * H / 3 + 1 > H ? H : 2 * H / 3 + 1);
                                ec_f32_dwconv_backward__avx2(&p, w, scale, dy, c2, 2 * H / 3 + 1 > H ? H : 2 * H / 3 + 1, H);
                                split_bad |= memcmp(b, c2, nx * sizeof *b) != 0;
                                for (size_t i = 0; i < nx; i++) {
                                    const double e = fabs((double)a[i] - b[i]);
                                    /* FMA vs separate multiply-add: < k * k * mult ulp of the terms (|terms| < 2) */
                                    if (e > worst) worst = e;
                                    if (!(e <= 1e-5) && !fail) {
                                        fail = 1;
                                        snprintf(where, sizeof where, "%dx%dx%d k%d s%d %s m%d at %zu: %g vs %g",
                                                 hw[hi][0], hw[hi][1], channels[ci], k, s, pad_name[pad], mult, i,
                                                 (double)b[i], (double)a[i]);
                                    }
                                }
                            }
                            runs++;
                            free(w); free(sc); free(dy); free(a); free(b); free(c2);
                        }
    T_CHECK("dwconv_backward_split_rows_bits", !split_bad, "row pieces changed bits");
    if (!avx2) t_skip("dwconv_backward_avx2_vs_ref", "no AVX2");
    else {
        printf("  dwconv_backward avx2 vs ref: %d cases, max abs diff %.3g\n", runs, worst);
        T_CHECK("dwconv_backward_avx2_vs_ref", !fail, "tol 1e-5: %s", where);
    }
}

/* ---- conv data gradient: pack_bt, col2im, ec_f32_conv_backward ------------------ */

typedef struct {
    const ec_conv_params *p;
    const float *w, *scale, *shift;
} cv_fwd_ctx;

static void cv_fwd(const void *ctx, const float *x, float *y)
{
    const cv_fwd_ctx *k = ctx;
    ec_f32_conv_direct__ref(k->p, x, k->w, k->scale, k->shift, y, 0, k->p->g.out_h);
}

/* dx by ec_f32_conv_backward in row chunks of `chunk` rows (0 = one call). */
static void conv_dx(const ec_conv_geom *g, int cout, const float *bpt, const float *dy, float *dx, int chunk)
{
    const int H = g->in_h, step = chunk > 0 ? chunk : H;
    float *dcol = t_fmalloc(ec_conv_backward_scratch_floats(g, step));
    for (int y0 = 0; y0 < H; y0 += step)
        ec_f32_conv_backward(g, cout, bpt, dy, dcol, dx, y0, y0 + step < H ? y0 + step : H);
    free(dcol);
}

/* Packs W^T[cout, K] of HWIO w (fp16 if h16 is not NULL) with the BN scale. */
static float *pack_wt(const ec_conv_geom *g, int cout, const float *w, const uint16_t *h16, const float *scale,
                      int ref)
{
    const int K = g->kh * g->kw * g->c, panels = (K + EC_PG_NR - 1) / EC_PG_NR;
    float *bp = t_fmalloc(ec_pack_b_floats(cout, K));
    const void *src = h16 ? (const void *)h16 : (const void *)w;
    if (ref) ec_pack_bt__ref(src, h16 != NULL, scale, K, cout, 0, panels, bp);
    else ec_pack_bt(src, h16 != NULL, scale, K, cout, 0, panels, bp);
    return bp;
}

static void test_conv_fd(void)
{
    static const struct { int h, w, cin, cout, k, s, pad, f16; } cs[] = {
        {5, 6, 3, 4, 1, 1, PAD_VALID, 0}, {6, 5, 3, 5, 3, 1, PAD_SAME, 0}, {7, 6, 3, 4, 3, 2, PAD_SAME, 0},
        {7, 7, 2, 3, 5, 2, PAD_SAME, 1}, {6, 7, 17, 3, 3, 2, PAD_VALID, 0}, {5, 5, 2, 3, 1, 2, PAD_VALID, 0},
        {4, 5, 3, 2, 3, 1, PAD_OVER, 1},
    };
    for (size_t ci = 0; ci < sizeof cs / sizeof *cs; ci++) {
        ec_conv_params p = {.cout = cs[ci].cout, .act = EC_ACT_LINEAR};
        if (!make_geom(&p.g, cs[ci].h, cs[ci].w, cs[ci].cin, cs[ci].k, cs[ci].s, cs[ci].pad)) continue;
        const int cout = p.cout, K = p.g.kh * p.g.kw * p.g.c;
        const size_t nx = (size_t)p.g.in_h * p.g.in_w * p.g.c, ny = (size_t)p.g.out_h * p.g.out_w * cout;
        const size_t nw = (size_t)K * cout;
        float *x = t_fmalloc(nx), *w = t_fmalloc(nw), *sc = t_fmalloc(cout), *sh = t_fmalloc(cout);
        float *r = t_fmalloc(ny), *dx = t_fmalloc(nx);
        uint16_t *h16 = NULL;
        t_fill(x, nx, -1, 1);
        t_fill(w, nw, -1, 1);
        t_fill(sc, cout, 0.5f, 2.0f);
        t_fill(sh, cout, -1, 1);
        t_fill(r, ny, -1, 1);
        if (cs[ci].f16) {     /* fp16 weights: the forward sees them widened */
            h16 = malloc(nw * sizeof *h16);
            ec_f32_to_f16_n__ref(w, h16, nw);
            ec_f16_to_f32_n__ref(h16, w, nw);
        }
        float *bpt = pack_wt(&p.g, cout, w, h16, sc, 0);
        conv_dx(&p.g, cout, bpt, r, dx, 0);
        const cv_fwd_ctx k = {&p, w, sc, sh};
        int wi;
        const double e = fd_check(cv_fwd, &k, x, nx, 0.25f, r, ny, dx, &wi);
        char name[96];
        snprintf(name, sizeof name, "fd_conv_backward_%dx%dx%d_to%d_k%d_s%d_%s%s", cs[ci].h, cs[ci].w, cs[ci].cin,
                 cout, cs[ci].k, cs[ci].s, pad_name[cs[ci].pad], cs[ci].f16 ? "_f16" : "");
        fd_report(name, e, 1e-4, wi);
        free(x); free(w); free(sc); free(sh); free(r); free(dx); free(bpt); free(h16);
    }
}

typedef struct { const ec_conv_geom *g; } col_ctx;

static void col_fwd(const void *ctx, const float *x, float *y)
{
    const ec_conv_geom *g = ((const col_ctx *)ctx)->g;
    ec_f32_im2col(g, x, 0, g->out_h * g->out_w, y);
}

/* col2im is the adjoint of im2col (FD); AVX2 == reference bitwise; row pieces
 * give the same bits; pack_bt's twins bitwise; ec_f32_conv_backward through the
 * dispatch (AVX2 GEMM) against the all-reference composition, and in row chunks. */
static void test_conv_parts(void)
{
    {   /* FD of im2col */
        ec_conv_geom g;
        make_geom(&g, 5, 6, 3, 3, 2, PAD_SAME);
        const size_t nx = (size_t)g.in_h * g.in_w * g.c, ny = (size_t)g.out_h * g.out_w * 9 * g.c;
        float *x = t_fmalloc(nx), *r = t_fmalloc(ny), *dx = t_fmalloc(nx);
        t_fill(x, nx, -1, 1);
        t_fill(r, ny, -1, 1);
        ec_f32_col2im__ref(&g, r, 0, dx, 0, g.in_h);
        const col_ctx k = {&g};
        int wi = -1;
        {
            const double e_ = fd_check(col_fwd, &k, x, nx, 0.25f, r, ny, dx, &wi);
            fd_report("fd_col2im_5x6x3_k3_s2_same", e_, 1e-4, wi);
        }
        free(x); free(r); free(dx);
    }
    const int avx2 = ec_cpu_has_avx2();
    int col_bad = 0, col_split_bad = 0, conv_split_bad = 0, pack_bad = 0, runs = 0;
    double conv_worst = 0, flip_worst = 0;
    int flip_runs = 0, flip_refused = 0;
    char conv_where[128] = "";
    static const int hw[][2] = {{1, 1}, {3, 5}, {7, 7}, {10, 9}};
    for (int hi = 0; hi < 4; hi++)
        for (int ci = 0; ci < NCH; ci++)
            for (int k = 1; k <= 5; k += 2)
                for (int s = 1; s <= 2; s++)
                    for (int pad = 0; pad < NPAD; pad++) {
                        if ((hi + ci + k + s + pad) % 2) continue;   /* thin the grid */
                        ec_conv_geom g;
                        if (!make_geom(&g, hw[hi][0], hw[hi][1], channels[ci], k, s, pad)) continue;
                        const int cout = channels[(ci + 3) % NCH], K = k * k * g.c, H = g.in_h;
                        const size_t nx = (size_t)H * g.in_w * g.c, ny = (size_t)g.out_h * g.out_w * cout;
                        const size_t ncol = (size_t)g.out_h * g.out_w * K;
                        float *dcol = t_fmalloc(ncol), *dy = t_fmalloc(ny), *w = t_fmalloc((size_t)K * cout);
                        float *sc = t_fmalloc(cout), *a = t_fmalloc(nx), *b = t_fmalloc(nx), *c2 = t_fmalloc(nx);
                        t_fill(dcol, ncol, -1, 1);
                        t_fill(dy, ny, -1, 1);
                        t_fill(w, (size_t)K * cout, -1, 1);
                        t_fill(sc, cout, 0.5f, 2.0f);
                        /* col2im: twins, and rows in two pieces (each piece's dcol from its first row) */
                        ec_f32_col2im__ref(&g, dcol, 0, a, 0, H);
                        if (avx2) {
                            ec_f32_col2im__avx2(&g, dcol, 0, b, 0, H);
                            col_bad |= memcmp(a, b, nx * sizeof *a) != 0;
                        }
                        for (int part = 0; part < 2; part++) {
                            const int y0 = part ? H / 2 : 0, y1 = part ? H : H / 2;
                            int oy0, oy1;
                            ec_conv_out_rows(&g, y0, y1, &oy0, &oy1);
                            ec_f32_col2im(&g, dcol + (size_t)oy0 * g.out_w * K, oy0, c2, y0, y1);
                        }
                        col_split_bad |= memcmp(a, c2, nx * sizeof *a) != 0;
                        /* pack_bt twins: fp32 and fp16, with and without scale */
                        uint16_t *h16 = malloc((size_t)K * cout * sizeof *h16);
                        ec_f32_to_f16_n__ref(w, h16, (size_t)K * cout);
                        for (int v = 0; v < 4 && avx2; v++) {
                            const int panels = (K + EC_PG_NR - 1) / EC_PG_NR;
                            const size_t nb = ec_pack_b_floats(cout, K);
                            float *p1 = t_fmalloc(nb), *p2 = t_fmalloc(nb);
                            const void *src = v & 1 ? (const void *)h16 : (const void *)w;
                            ec_pack_bt__ref(src, v & 1, v & 2 ? sc : NULL, K, cout, 0, panels, p1);
                            ec_pack_bt__avx2(src, v & 1, v & 2 ? sc : NULL, K, cout, 0, panels, p2);
                            pack_bad |= memcmp(p1, p2, nb * sizeof *p1) != 0;
                            free(p1); free(p2);
                        }
                        /* conv backward: dispatch vs all-reference, and chunked */
                        float *bref = pack_wt(&g, cout, w, NULL, sc, 1), *bdis = pack_wt(&g, cout, w, NULL, sc, 0);
                        {
                            int oy0, oy1;
                            ec_conv_out_rows(&g, 0, H, &oy0, &oy1);
                            const int M = (oy1 - oy0) * g.out_w;
                            ec_gemm_packed__ref(M, K, cout, dy + (size_t)oy0 * g.out_w * cout, cout, bref, NULL,
                                                EC_ACT_LINEAR, dcol, K, 0, M, 0, (K + EC_PG_NR - 1) / EC_PG_NR);
                            ec_f32_col2im__ref(&g, dcol, oy0, a, 0, H);
                        }
                        conv_dx(&g, cout, bdis, dy, b, 0);
                        for (size_t i = 0; i < nx; i++) {
                            const double e = fabs((double)a[i] - b[i]);
                            if (e > conv_worst) {
                                conv_worst = e;
                                snprintf(conv_where, sizeof conv_where, "%dx%dx%d->%d k%d s%d %s",
                                         hw[hi][0], hw[hi][1], g.c, cout, k, s, pad_name[pad]);
                            }
                        }
                        /* stride 1: the flipped forward conv gives the same dx */
                        ec_conv_geom gt;
                        if (!ec_conv_geom_flip(&g, cout, &gt)) {
                            float *wt = t_fmalloc((size_t)K * cout);
                            ec_conv_weights_flip(w, 0, sc, k, k, g.c, cout, 0, g.c / 2, wt);
                            ec_conv_weights_flip(w, 0, sc, k, k, g.c, cout, g.c / 2, g.c, wt);
                            const ec_conv_params pt = {.g = gt, .cout = g.c, .act = EC_ACT_LINEAR};
                            ec_f32_conv_direct__ref(&pt, dy, wt, NULL, NULL, c2, 0, gt.out_h);
                            for (size_t i = 0; i < nx; i++) flip_worst = fmax(flip_worst, fabs((double)a[i] - c2[i]));
                            flip_runs++;
                            free(wt);
                        } else {
                            flip_refused += s == 1 && pad != PAD_OVER;   /* only these may be refused */
                        }
                        conv_dx(&g, cout, bdis, dy, c2, 1);
                        conv_split_bad |= memcmp(b, c2, nx * sizeof *b) != 0;
                        conv_dx(&g, cout, bdis, dy, c2, 3);
                        conv_split_bad |= memcmp(b, c2, nx * sizeof *b) != 0;
                        runs++;
                        free(dcol); free(dy); free(w); free(sc); free(a); free(b); free(c2); free(h16);
                        free(bref); free(bdis);
                    }
    if (!avx2) {
        t_skip("col2im_avx2_vs_ref_bits", "no AVX2");
        t_skip("pack_bt_avx2_vs_ref_bits", "no AVX2");
    } else {
        T_CHECK("col2im_avx2_vs_ref_bits", !col_bad, "the twins differ (they add in the same order)");
        T_CHECK("pack_bt_avx2_vs_ref_bits", !pack_bad, "the packs differ");
    }
    T_CHECK("col2im_split_rows_bits", !col_split_bad, "row pieces changed bits");
    T_CHECK("conv_backward_split_rows_bits", !conv_split_bad, "chunks of 1 and 3 rows changed bits");
    /* sums of up to 25 * 33 terms of |.| < 2 in a different order and with FMA */
    printf("  conv_backward dispatch vs all-reference: %d cases, max abs diff %.3g (%s)\n", runs, conv_worst,
           conv_where);
    T_CHECK("conv_backward_dispatch_vs_ref", conv_worst <= 1e-4, "max abs diff %.3g at %s", conv_worst, conv_where);
    printf("  stride-1 conv backward as the flipped forward conv: %d cases, max abs diff %.3g\n", flip_runs, flip_worst);
    T_CHECK("conv_backward_flipped_forward", flip_runs > 0 && !flip_refused && flip_worst <= 1e-4,
            "%d cases, %d refused, max abs diff %.3g", flip_runs, flip_refused, flip_worst);
}

/* ---- activations with a per-channel scale ----------------------------------------- */

typedef struct { const float *scale, *shift; int c, act; size_t rows; } as_ctx;

static void as_fwd(const void *ctx, const float *v, float *y)
{
    const as_ctx *k = ctx;
    memcpy(y, v, k->rows * k->c * sizeof *y);
    ec_f32_affine_act__ref(y, k->rows, k->c, k->scale, k->shift, k->act);
}

static void test_act_scale(void)
{
    /* FD: y = act(v * scale + shift), dv = act_scale_backward(z, r, scale) */
    for (int ai = 0; ai < NACT; ai++) {
        const int act = elementwise_acts[ai], rows = 3, c = 5, n = rows * c;
        float v[15], z[15], r[15], sc[5], sh[5], dv[15];
        t_fill(sc, c, 0.5f, 2.0f);
        t_fill(sh, c, -0.5f, 0.5f);
        t_fill(r, n, -1, 1);
        for (int i = 0; i < n; i++) {
            /* keep z = v * s + b at least 0.1 off the kinks of relu (0) and relu6 (6) */
            do {
                v[i] = t_rng_uniform(-3, 5);
                z[i] = v[i] * sc[i % c] + sh[i % c];
            } while (fabsf(z[i]) < 0.1f || fabsf(z[i] - 6.0f) < 0.1f);
        }
        ec_f32_act_scale_backward__ref(z, r, sc, dv, rows, c, act);
        const as_ctx k = {sc, sh, c, act, rows};
        int wi;
        const double e = fd_check(as_fwd, &k, v, n, 1e-2f, r, n, dv, &wi);
        char name[64];
        snprintf(name, sizeof name, "fd_act_scale_backward_%s", act_name(act));
        fd_report(name, e, 2e-3, wi);
    }
    /* AVX2 and AVX-512 twins against the double-precision reference:
     * act_scale_backward over every activation with awkward channel and row
     * counts, with and without a scale, and act_backward's tanh / gelu paths;
     * tolerance relative to |dy| |scale| (|act'| + |x| + 1) */
    typedef void asb_fn(const float *x, const float *dy, const float *scale, float *dx, size_t rows, int c, int act);
    typedef void ab_fn(const float *x, const float *dy, float *dx, size_t n, int act);
    asb_fn *const asb[2] = {ec_f32_act_scale_backward__avx2, ec_f32_act_scale_backward__avx512};
    ab_fn *const ab[2] = {ec_f32_act_backward__avx2, ec_f32_act_backward__avx512};
    static const char *const vname[2] = {"avx2", "avx512"};
    static const size_t row_counts[] = {1, 3, 37};
    for (int v = 0; v < 2; v++) {
        char tname[64];
        snprintf(tname, sizeof tname, "act_scale_backward_%s_vs_ref", vname[v]);
        if (!(v ? ec_cpu_has_avx512() : ec_cpu_has_avx2())) {
            t_skip(tname, v ? "no AVX-512 on this CPU (or EFFCAM_NO_AVX512)" : "no AVX2");
            continue;
        }
        double worst = 0;
        int fail = 0, runs = 0;
        char where[160] = "";
        for (int ai = 0; ai < NACT; ai++)
            for (int ci = 0; ci < NCH; ci++)
                for (size_t ri = 0; ri < sizeof row_counts / sizeof *row_counts; ri++)
                    for (int with_scale = 0; with_scale < 2; with_scale++) {
                        const int act = elementwise_acts[ai], c = channels[ci];
                        const size_t rows = row_counts[ri], n = rows * c;
                        float *x = t_fmalloc(n), *dy = t_fmalloc(n), *a = t_fmalloc(n), *b = t_fmalloc(n),
                              *sc = t_fmalloc(c);
                        for (size_t i = 0; i < n; i++) x[i] = i % 5 ? t_rng_uniform(-8, 8) : t_rng_uniform(-40, 40);
                        t_fill(dy, n, -1, 1);
                        t_fill(sc, c, -2, 2);
                        const float *s = with_scale ? sc : NULL;
                        ec_f32_act_scale_backward__ref(x, dy, s, a, rows, c, act);
                        asb[v](x, dy, s, b, rows, c, act);
                        runs++;
                        for (size_t i = 0; i < n; i++) {
                            const double e = fabs((double)a[i] - b[i]);
                            const double mag = fabs(dy[i]) * (s ? fabs(s[i % c]) : 1.0) * (fabs((double)x[i]) + 2.0);
                            if (e > worst) worst = e;
                            if (!(e <= 2e-6 * mag + 1e-12) && !fail) {
                                fail = 1;
                                snprintf(where, sizeof where, "%s c=%d rows=%zu x=%a: %a vs ref %a", act_name(act), c,
                                         rows, x[i], b[i], a[i]);
                            }
                        }
                        if (!with_scale) {   /* act_backward (flat) must agree with the scale-less path */
                            ab[v](x, dy, b, n, act);
                            for (size_t i = 0; i < n; i++) {
                                const double e = fabs((double)a[i] - b[i]);
                                const double mag = fabs(dy[i]) * (fabs((double)x[i]) + 2.0);
                                if (!(e <= 2e-6 * mag + 1e-12) && !fail) {
                                    fail = 1;
                                    snprintf(where, sizeof where, "act_backward %s x=%a: %a vs ref %a", act_name(act),
                                             x[i], b[i], a[i]);
                                }
                            }
                        }
                        free(x); free(dy); free(a); free(b); free(sc);
                    }
        printf("  act_scale_backward %s vs ref: %d cases, max abs diff %.3g\n", vname[v], runs, worst);
        T_CHECK(tname, !fail, "tol 2e-6 |dy s| (|x| + 2): %s", where);
    }
}

/* ---- GAP, broadcast Multiply, zero padding, Dense ---------------------------------- */

typedef struct { size_t hw; int c; const float *s; } el_ctx;

static void gap_fwd(const void *ctx, const float *x, float *y)
{
    const el_ctx *k = ctx;
    ec_f32_gap__ref(x, k->hw, k->c, (size_t)k->c, y);
}

static void mulx_fwd(const void *ctx, const float *x, float *y)
{
    const el_ctx *k = ctx;
    ec_f32_mul_bcast__ref(x, k->s, y, k->hw, k->c);
}

static const float *mul_x;            /* the full-shape operand while s varies */
static void muls_fwd(const void *ctx, const float *s, float *y)
{
    const el_ctx *k = ctx;
    ec_f32_mul_bcast__ref(mul_x, s, y, k->hw, k->c);
}

typedef struct { int h, w, c, pt, pb, pl, pr; } zp_ctx;

static void zp_fwd(const void *ctx, const float *x, float *y)
{
    const zp_ctx *k = ctx;
    ec_f32_zeropad(x, k->h, k->w, k->c, k->pt, k->pb, k->pl, k->pr, y);
}

typedef struct { int K, N; const float *w, *bias; } dn_ctx;

static void dense_fwd(const void *ctx, const float *x, float *y)
{
    const dn_ctx *k = ctx;
    memcpy(y, k->bias, k->N * sizeof *y);
    ec_gemm__ref(1, k->N, k->K, x, k->K, k->w, k->N, 1.0f, y, k->N);
}

static void test_eltwise(void)
{
    int wi = -1;
    {   /* GAP: dx = dout / hw everywhere; and the accumulate form */
        const size_t hw = 15;
        const int c = 3;
        float x[45], r[3], dx[45], dx2[45];
        t_fill(x, 45, -1, 1);
        t_fill(r, 3, -1, 1);
        ec_f32_gap_backward(r, hw, c, c, dx, 0);
        const el_ctx k = {hw, c, NULL};
        {
            const double e_ = fd_check(gap_fwd, &k, x, 45, 0.25f, r, 3, dx, &wi);
            fd_report("fd_gap_backward_15x3", e_, 1e-4, wi);
        }
        t_fill(dx2, 45, -1, 1);
        float want[45];
        for (int i = 0; i < 45; i++) want[i] = dx2[i] + r[i % c] / (float)hw;
        ec_f32_gap_backward(r, hw, c, c, dx2, 1);
        T_CHECK("gap_backward_accumulate", memcmp(want, dx2, sizeof want) == 0, "acc != old + dout / hw");
    }
    {   /* Multiply with a broadcast [c] operand: both sides */
        const size_t hw = 13;
        const int c = 5;
        float x[65], s[5], r[65], dx[65], ds[5];
        t_fill(x, 65, -1, 1);
        t_fill(s, 5, -1, 1);
        t_fill(r, 65, -1, 1);
        ec_f32_mul_bcast__ref(r, s, dx, hw, c);
        ec_f32_mul_bcast_backward__ref(x, r, hw, c, c, ds);
        const el_ctx k = {hw, c, s};
        {
            const double e_ = fd_check(mulx_fwd, &k, x, 65, 0.25f, r, 65, dx, &wi);
            fd_report("fd_mul_bcast_backward_dx", e_, 1e-4, wi);
        }
        mul_x = x;
        {
            const double e_ = fd_check(muls_fwd, &k, s, 5, 0.25f, r, 65, ds, &wi);
            fd_report("fd_mul_bcast_backward_ds", e_, 1e-4, wi);
        }
    }
    {   /* zero padding (V1's asymmetric stem/stride-2 padding) */
        const zp_ctx k = {5, 4, 3, 0, 1, 0, 1};
        const size_t nx = 60, ny = (size_t)6 * 5 * 3;
        float x[60], r[90], dx[60];
        t_fill(x, nx, -1, 1);
        t_fill(r, ny, -1, 1);
        ec_f32_zeropad_backward(r, k.h, k.w, k.c, k.pt, k.pb, k.pl, k.pr, dx, 0, k.h);
        {
            const double e_ = fd_check(zp_fwd, &k, x, nx, 0.25f, r, ny, dx, &wi);
            fd_report("fd_zeropad_backward_5x4x3", e_, 1e-4, wi);
        }
        const zp_ctx k2 = {3, 2, 2, 2, 1, 1, 2};
        float x2[12], r2[6 * 5 * 2], d2[12];
        t_fill(x2, 12, -1, 1);
        t_fill(r2, 60, -1, 1);
        ec_f32_zeropad_backward(r2, k2.h, k2.w, k2.c, k2.pt, k2.pb, k2.pl, k2.pr, d2, 0, 1);
        ec_f32_zeropad_backward(r2, k2.h, k2.w, k2.c, k2.pt, k2.pb, k2.pl, k2.pr, d2, 1, 3);
        {
            const double e_ = fd_check(zp_fwd, &k2, x2, 12, 0.25f, r2, 60, d2, &wi);
            fd_report("fd_zeropad_backward_3x2x2_split", e_, 1e-4, wi);
        }
    }
    {   /* Dense through ec_pack_bt + ec_gemm_packed (M = 1), fp32 and fp16 */
        const int K = 37, N = 7;
        float x[37], w[37 * 7], bias[7], r[7], dx[37];
        t_fill(x, K, -1, 1);
        t_fill(w, (size_t)K * N, -1, 1);
        t_fill(bias, N, -1, 1);
        t_fill(r, N, -1, 1);
        for (int f16 = 0; f16 < 2; f16++) {
            uint16_t h16[37 * 7];
            if (f16) {
                ec_f32_to_f16_n__ref(w, h16, (size_t)K * N);
                ec_f16_to_f32_n__ref(h16, w, (size_t)K * N);
            }
            const int panels = (K + EC_PG_NR - 1) / EC_PG_NR;
            float *bp = t_fmalloc(ec_pack_b_floats(N, K));
            ec_pack_bt(f16 ? (const void *)h16 : (const void *)w, f16, NULL, K, N, 0, panels, bp);
            ec_gemm_packed(1, K, N, r, N, bp, NULL, EC_ACT_LINEAR, dx, K, 0, 1, 0, panels);
            const dn_ctx k = {K, N, w, bias};
            fd_report(f16 ? "fd_dense_backward_f16" : "fd_dense_backward",
                      fd_check(dense_fwd, &k, x, K, 0.25f, r, N, dx, &wi), 1e-4, wi);
            free(bp);
        }
    }
    /* mul_bcast_backward: AVX2 == reference bitwise; channel ranges of a wider
     * tensor (row stride ld) give the same bits; hw around the 64-pixel block */
    {
        int bad = 0, range_bad = 0;
        static const size_t hws[] = {1, 63, 64, 65, 361, 22500 / 9};
        for (size_t hi = 0; hi < sizeof hws / sizeof *hws; hi++)
            for (int ci = 0; ci < NCH; ci++) {
                const size_t hw = hws[hi];
                const int c = channels[ci];
                float *x = t_fmalloc(hw * c), *dy = t_fmalloc(hw * c), *a = t_fmalloc(c), *b = t_fmalloc(c);
                t_fill(x, hw * c, -1, 1);
                t_fill(dy, hw * c, -1, 1);
                ec_f32_mul_bcast_backward__ref(x, dy, hw, c, c, a);
                if (ec_cpu_has_avx2()) {
                    ec_f32_mul_bcast_backward__avx2(x, dy, hw, c, c, b);
                    bad |= memcmp(a, b, c * sizeof *a) != 0;
                }
                const int c0 = c / 3;
                ec_f32_mul_bcast_backward(x, dy, hw, c0, c, b);
                ec_f32_mul_bcast_backward(x + c0, dy + c0, hw, c - c0, c, b + c0);
                range_bad |= memcmp(a, b, c * sizeof *a) != 0;
                free(x); free(dy); free(a); free(b);
            }
        if (!ec_cpu_has_avx2()) t_skip("mul_bcast_backward_avx2_vs_ref_bits", "no AVX2");
        else T_CHECK("mul_bcast_backward_avx2_vs_ref_bits", !bad, "the twins differ");
        T_CHECK("mul_bcast_backward_channel_ranges_bits", !range_bad, "channel ranges changed bits");
    }
    {   /* GAP backward twins vs __ref, bitwise: awkward channel counts (and 1100,
         * past the twins' 512-channel chunk), odd pixel counts, rows wider than c
         * (whose gap must stay untouched), plain and accumulating */
        typedef void gb_fn(const float *dout, size_t hw, int c, size_t ldx, float *dx, int acc);
        gb_fn *const gb[2] = {ec_f32_gap_backward__avx2, ec_f32_gap_backward__avx512};
        static const char *const gname[2] = {"gap_backward_avx2_vs_ref_bits", "gap_backward_avx512_vs_ref_bits"};
        static const size_t hws[] = {1, 7, 65};
        for (int v = 0; v < 2; v++) {
            if (!(v ? ec_cpu_has_avx512() : ec_cpu_has_avx2())) {
                t_skip(gname[v], v ? "no AVX-512 on this CPU (or EFFCAM_NO_AVX512)" : "no AVX2");
                continue;
            }
            int bad = 0, runs = 0;
            char where[96] = "";
            for (int ci = 0; ci <= NCH; ci++)
                for (size_t hi = 0; hi < sizeof hws / sizeof *hws; hi++)
                    for (int wide = 0; wide < 2; wide++)
                        for (int acc = 0; acc < 2; acc++) {
                            const int c = ci < NCH ? channels[ci] : 1100;
                            const size_t hw = hws[hi], ldx = (size_t)c + (wide ? 5 : 0), n = hw * ldx;
                            float *dout = t_fmalloc(c), *a = t_fmalloc(n), *b = t_fmalloc(n);
                            t_fill(dout, c, -1, 1);
                            t_fill(a, n, -1, 1);
                            memcpy(b, a, n * sizeof *b);
                            ec_f32_gap_backward__ref(dout, hw, c, ldx, a, acc);
                            gb[v](dout, hw, c, ldx, b, acc);
                            runs++;
                            if (memcmp(a, b, n * sizeof *a) != 0 && !bad) {
                                bad = 1;
                                snprintf(where, sizeof where, "c=%d hw=%zu ldx=%zu acc=%d", c, hw, ldx, acc);
                            }
                            free(dout); free(a); free(b);
                        }
            printf("  %s: %d cases\n", gname[v], runs);
            T_CHECK(gname[v], !bad, "the twins differ at %s", where);
        }
    }
}

int main(void)
{
    t_rng_seed(0x2545F4914F6CDD1Dull);
    printf("# backward kernels: AVX2 variants %s\n", ec_cpu_has_avx2() ? "tested" : "absent on this CPU (SKIP)");
    test_dwconv_fd();
    test_dwconv_simd();
    test_conv_fd();
    test_conv_parts();
    test_act_scale();
    test_eltwise();
    printf("  finite differences: worst %.3g (%s)\n", fd_worst_all, fd_worst_name);
    return t_failed;
}
