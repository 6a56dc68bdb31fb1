/* test_resample.c - image/resample.c against Pillow's resize, restated.
 *
 *   reference: a second, deliberately plain implementation of what Pillow 11.3
 *              does (whole image, Pillow's own order: coefficient tables for the
 *              full ksize, the horizontal pass over rows ybox_first..ybox_last
 *              into a temporary image, then the vertical pass; NEAREST as
 *              ImagingScaleAffine) over ~2,000 random size pairs x 6 filters x
 *              1..4 channels: shrink, grow, one axis, identity, 1-pixel sides;
 *   streaming: rows pushed one by one into two resamplers at once == the whole-
 *              image result; a row reported done is never written again; memory
 *              independent of the source height;
 *   kernels:   the AVX2 horizontal and vertical passes == their scalar twins on
 *              random windows and extreme weights (1..4 channels, 1..300 taps,
 *              windows at both ends of the row, lengths around the 32 block);
 *   bilinear:  == kernels/resize.c (the engine's BILINEAR, checked against the
 *              Keras fixtures by test_image);
 *   API:       filter names, limits, bad arguments, too many rows.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "effcam.h"
#include "image/resample.h"
#include "image/resample_kernels.h"
#include "kernels/kernels.h"
#include "tests/harness.h"

/* ---- the reference: Pillow's Resample.c / Geometry.c, whole image ---------- */

static double f_box(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }
static double f_bilinear(double x) { x = fabs(x); return x < 1.0 ? 1.0 - x : 0.0; }
static double f_hamming(double x)
{
    x = fabs(x);
    if (x == 0.0) return 1.0;
    if (x >= 1.0) return 0.0;
    x = x * M_PI;
    return sin(x) / x * (0.54f + 0.46f * cos(x));
}
static double f_bicubic(double x)
{
    x = fabs(x);
    if (x < 1.0) return ((-0.5 + 2.0) * x - (-0.5 + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * -0.5;
    return 0.0;
}
static double sinc(double x) { return x == 0.0 ? 1.0 : sin(x * M_PI) / (x * M_PI); }
static double f_lanczos(double x) { return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3) : 0.0; }

static double (*const ref_fn[])(double) = {NULL, f_box, f_bilinear, f_hamming, f_bicubic, f_lanczos};
static const double ref_support[] = {0, 0.5, 1.0, 1.0, 2.0, 3.0};

/* precompute_coeffs + normalize_coeffs_8bpc: bounds[out][2], kk[out][ksize]. */
static int ref_coeffs(int f, int in, int out, int **bounds, int32_t **kk)
{
    double scale = (double)((float)in - 0.0f) / out;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = ref_support[f] * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *pre = calloc((size_t)out * ksize, sizeof(double));
    *bounds = malloc((size_t)out * 2 * sizeof(int));
    *kk = malloc((size_t)out * ksize * sizeof(int32_t));
    for (int xx = 0; xx < out; xx++) {
        double center = 0.0 + (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in) xmax = in;
        xmax -= xmin;
        double *k = &pre[(size_t)xx * ksize];
        for (int x = 0; x < xmax; x++) {
            double w = ref_fn[f]((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (int x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        (*bounds)[xx * 2] = xmin;
        (*bounds)[xx * 2 + 1] = xmax;
    }
    for (size_t i = 0; i < (size_t)out * ksize; i++)
        (*kk)[i] = pre[i] < 0 ? (int)(-0.5 + pre[i] * (1 << 22)) : (int)(0.5 + pre[i] * (1 << 22));
    free(pre);
    return ksize;
}

static uint8_t clip8(int64_t v)
{
    v >>= 22;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static void ref_nearest(const uint8_t *src, int sw, int sh, int C, uint8_t *dst, int dw, int dh)
{
    double a0 = (double)((float)sw - 0.0f) / dw, a4 = (double)((float)sh - 0.0f) / dh;
    int *xintab = calloc((size_t)dw, sizeof(int)), xmin = dw, xmax = 0;
    double xo = 0.0 + a0 * 0.5, yo = 0.0 + a4 * 0.5;
    for (int x = 0; x < dw; x++) {
        int xin = xo < 0.0 ? -1 : (int)xo;
        if (xin >= 0 && xin < sw) {
            xmax = x + 1;
            if (x < xmin) xmin = x;
            xintab[x] = xin;
        }
        xo += a0;
    }
    for (int y = 0; y < dh; y++) {
        int yi = yo < 0.0 ? -1 : (int)yo;
        uint8_t *out = dst + (size_t)y * dw * C;
        memset(out, 0, (size_t)dw * C);
        if (yi >= 0 && yi < sh)
            for (int x = xmin; x < xmax; x++)
                memcpy(out + (size_t)x * C, src + ((size_t)yi * sw + xintab[x]) * C, (size_t)C);
        yo += a4;
    }
    free(xintab);
}

static void ref_resize(int f, const uint8_t *src, int sw, int sh, int C, uint8_t *dst, int dw, int dh)
{
    if (sw == dw && sh == dh) {
        memcpy(dst, src, (size_t)sw * sh * C);
        return;
    }
    if (f == EC_RESIZE_NEAREST) {
        ref_nearest(src, sw, sh, C, dst, dw, dh);
        return;
    }
    int *bh, *bv;
    int32_t *kh, *kv;
    int ksh = ref_coeffs(f, sw, dw, &bh, &kh), ksv = ref_coeffs(f, sh, dh, &bv, &kv);
    int yfirst = bv[0], ylast = bv[dh * 2 - 2] + bv[dh * 2 - 1];
    const uint8_t *vin = src;                            /* [rows][vw][C] */
    int vw = sw;
    uint8_t *tmp = NULL;
    if (dw != sw) {
        int rows = dh != sh ? ylast - yfirst : sh, off = dh != sh ? yfirst : 0;
        if (dh != sh)
            for (int i = 0; i < dh; i++) bv[i * 2] -= yfirst;
        tmp = malloc((size_t)rows * dw * C);
        for (int y = 0; y < rows; y++)
            for (int x = 0; x < dw; x++)
                for (int c = 0; c < C; c++) {
                    int64_t ss = 1 << 21;
                    for (int i = 0; i < bh[x * 2 + 1]; i++)
                        ss += (int64_t)src[((size_t)(y + off) * sw + bh[x * 2] + i) * C + c] * kh[x * ksh + i];
                    tmp[((size_t)y * dw + x) * C + c] = clip8(ss);
                }
        vin = tmp;
        vw = dw;
    }
    if (dh != sh) {
        for (int y = 0; y < dh; y++)
            for (int x = 0; x < vw; x++)
                for (int c = 0; c < C; c++) {
                    int64_t ss = 1 << 21;
                    for (int i = 0; i < bv[y * 2 + 1]; i++)
                        ss += (int64_t)vin[((size_t)(bv[y * 2] + i) * vw + x) * C + c] * kv[y * ksv + i];
                    dst[((size_t)y * dw + x) * C + c] = clip8(ss);
                }
    } else {
        memcpy(dst, vin, (size_t)dw * dh * C);
    }
    free(tmp);
    free(bh), free(bv), free(kh), free(kv);
}

/* ---- random cases -------------------------------------------------------------- */

static uint64_t rng = 0x9E3779B97F4A7C15u;
static uint32_t rnd(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* Images with structure (gradients, edges, noise, saturated runs) so negative
 * lobes overshoot and clip. */
static void fill(uint8_t *p, int w, int h, int C)
{
    int kind = (int)(rnd() % 4);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < C; c++) {
                uint8_t v;
                if (kind == 0) v = (uint8_t)rnd();
                else if (kind == 1) v = ((x / 3 + y / 2 + c) & 1) ? 255 : 0;
                else if (kind == 2) v = (uint8_t)(x * 7 + y * 13 + c * 50);
                else v = (rnd() % 5 == 0) ? (uint8_t)rnd() : (x < w / 2 ? 255 : 0);
                p[((size_t)y * w + x) * C + c] = v;
            }
}

static int rand_dim(int src)
{
    switch (rnd() % 6) {
    case 0: return src;                                   /* this axis unchanged */
    case 1: return 1;
    case 2: return 1 + (int)(rnd() % 8);
    case 3: return 1 + (int)(rnd() % (3 * src + 1));      /* grow */
    default: return 1 + (int)(rnd() % src);               /* shrink */
    }
}

/* Whole image, streamed into two resamplers at once (the second another
 * filter), checking that rows reported done are final. */
static void test_random(void)
{
    int cases = 0, bad = 0, bad_stream = 0, bad_done = 0;
    char first[200] = "";
    long diff_px = 0;
    for (int it = 0; it < 2000; it++) {
        int sw, sh;
        if (it % 10 == 0) sw = 1 + (int)(rnd() % 400), sh = 1 + (int)(rnd() % 60);
        else sw = 1 + (int)(rnd() % 40), sh = 1 + (int)(rnd() % 40);
        int dw = rand_dim(sw), dh = rand_dim(sh), C = 1 + (int)(rnd() % 4);
        uint8_t *src = malloc((size_t)sw * sh * C);
        fill(src, sw, sh, C);
        for (int f = 0; f <= EC_RESIZE_LANCZOS; f++) {
            size_t dn = (size_t)dw * dh * C;
            uint8_t *want = malloc(dn), *got = malloc(dn), *s1 = malloc(dn), *s2 = malloc(dn), *snap = malloc(dn);
            ref_resize(f, src, sw, sh, C, want, dw, dh);
            ec_status st = ec_u8_resize((ec_resize_filter)f, src, sw, sh, C, got, dw, dh);
            cases++;
            if (st != EC_OK || memcmp(want, got, dn)) {
                if (!bad++) {
                    size_t i = 0;
                    while (st == EC_OK && i < dn && want[i] == got[i]) i++;
                    snprintf(first, sizeof first, "%s %dx%d->%dx%d x%d: %s, byte %zu got %d want %d",
                             ec_resize_filter_name(f), sw, sh, dw, dh, C, st == EC_OK ? "differs" : ec_last_error(),
                             i, i < dn ? got[i] : -1, i < dn ? want[i] : -1);
                }
                for (size_t i = 0; i < dn; i++) diff_px += want[i] != got[i];
            }
            /* Streamed: two resamplers fed the same rows; the second filter
             * rotates so every pair shares rows sometime. */
            int f2 = (f + 1 + it) % (EC_RESIZE_LANCZOS + 1);
            uint8_t *want2 = malloc(dn);
            ref_resize(f2, src, sw, sh, C, want2, dw, dh);
            ec_resampler *r1 = NULL, *r2 = NULL;
            memset(s1, 0xA5, dn), memset(s2, 0x5A, dn);
            if (ec_resampler_new((ec_resize_filter)f, sw, sh, dw, dh, C, s1, &r1) != EC_OK ||
                ec_resampler_new((ec_resize_filter)f2, sw, sh, dw, dh, C, s2, &r2) != EC_OK) {
                bad_stream++;
            } else {
                int done = 0;
                for (int y = 0; y < sh; y++) {
                    uint8_t *row = malloc((size_t)sw * C);    /* a fresh buffer: nothing may keep it */
                    memcpy(row, src + (size_t)y * sw * C, (size_t)sw * C);
                    if (ec_resampler_push(r1, row) != EC_OK || ec_resampler_push(r2, row) != EC_OK) bad_stream++;
                    memset(row, 0xEE, (size_t)sw * C);
                    free(row);
                    int d = ec_resampler_rows_done(r1);
                    if (d < done) bad_done++;
                    /* rows done so far must already hold their final bytes */
                    if (d > done) memcpy(snap + (size_t)done * dw * C, s1 + (size_t)done * dw * C, (size_t)(d - done) * dw * C);
                    done = d;
                }
                if (done != dh || ec_resampler_rows_done(r2) != dh) bad_stream++;
                if (memcmp(snap, want, (size_t)done * dw * C)) bad_done++;
                if (memcmp(s1, want, dn) || memcmp(s2, want2, dn)) bad_stream++;
            }
            ec_resampler_free(r1);
            ec_resampler_free(r2);
            free(want), free(want2), free(got), free(s1), free(s2), free(snap);
        }
        free(src);
    }
    char name[64];
    snprintf(name, sizeof name, "resample: %d random cases == reference", cases);
    T_CHECK(name, bad == 0, "%d cases differ (%ld bytes), first: %s", bad, diff_px, first);
    T_CHECK("resample: streamed into two resamplers == whole image", bad_stream == 0, "%d failures", bad_stream);
    T_CHECK("resample: rows reported done are final", bad_done == 0, "%d failures", bad_done);
}

/* Sizes the app meets: photos to model inputs, 300 -> 300 (copy), heatmaps up. */
static void test_app_sizes(void)
{
    static const int sizes[][4] = {
        {1600, 1200, 300, 300}, {457, 611, 300, 300}, {640, 360, 224, 224}, {120, 90, 300, 300}, {1203, 905, 53, 67},
        {10, 10, 300, 300}, {7, 7, 224, 224}, {2, 2, 64, 64}, {300, 300, 300, 300}, {1024, 1024, 224, 224},
    };
    int bad = 0;
    char first[160] = "";
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int sw = sizes[s][0], sh = sizes[s][1], dw = sizes[s][2], dh = sizes[s][3];
        uint8_t *src = malloc((size_t)sw * sh * 3), *want = malloc((size_t)dw * dh * 3), *got = malloc((size_t)dw * dh * 3);
        fill(src, sw, sh, 3);
        for (int f = 0; f <= EC_RESIZE_LANCZOS; f++) {
            ref_resize(f, src, sw, sh, 3, want, dw, dh);
            if (ec_u8_resize((ec_resize_filter)f, src, sw, sh, 3, got, dw, dh) != EC_OK ||
                memcmp(want, got, (size_t)dw * dh * 3))
                if (!bad++)
                    snprintf(first, sizeof first, "%s %dx%d -> %dx%d", ec_resize_filter_name(f), sw, sh, dw, dh);
        }
        free(src), free(want), free(got);
    }
    T_CHECK("resample: app sizes (photo -> input, heatmap -> input) == reference, 6 filters", bad == 0,
            "%d differ, first %s", bad, first);
}



/* ---- the AVX2 passes against their scalar twins -------------------------------- */

/* A random weight row of n taps within resample.c's bounds (|w| < 2^23,
 * 255 * sum|w| + 2^21 < 2^31): extreme values on purpose. */
static void rand_weights(int32_t *w, int n)
{
    int64_t budget = ((int64_t)INT32_MAX - (1 << 21)) / 255;
    for (int i = 0; i < n; i++) {
        int64_t lim = budget / (n - i);
        if (lim > (1 << 23) - 1) lim = (1 << 23) - 1;
        int64_t v;
        switch (rnd() % 4) {
        case 0: v = lim; break;
        case 1: v = -lim; break;
        case 2: v = 0; break;
        default: v = (int64_t)(rnd() % (2 * (uint64_t)lim + 1)) - lim; break;
        }
        w[i] = (int32_t)v;
        budget -= v < 0 ? -v : v;
    }
}

static void test_kernel_twins(void)
{
    if (!ec_cpu_has_avx2()) {
        t_skip("resample: AVX2 passes == scalar twins", "no AVX2 on this CPU (or EFFCAM_NO_AVX2)");
        return;
    }
    long hbytes = 0, hdiff = 0, vbytes = 0, vdiff = 0;
    int hmax = 0, vmax = 0;
    for (int it = 0; it < 3000; it++) {
        int C = 1 + it % 4, in_w = 1 + (int)(rnd() % 300), out_w = 1 + (int)(rnd() % 40);
        int taps = 1 + (int)(rnd() % (in_w < 300 ? in_w : 300)), taps16 = (taps + 15) & ~15;
        int32_t *span = malloc(sizeof(int32_t) * 2 * out_w), *w = calloc((size_t)out_w * taps, sizeof(int32_t));
        int16_t *wh = calloc((size_t)out_w * taps16, 2), *wl = calloc((size_t)out_w * taps16, 2);
        for (int x = 0; x < out_w; x++) {
            int n = 1 + (int)(rnd() % taps);
            int lo = rnd() % 3 == 0 ? in_w - n : rnd() % 3 == 0 ? 0 : (int)(rnd() % (in_w - n + 1));
            span[2 * x] = lo, span[2 * x + 1] = n;
            rand_weights(w + (size_t)x * taps, n);
            for (int i = 0; i < n; i++) {
                int32_t v = w[(size_t)x * taps + i], low = (int32_t)((uint32_t)v & 4095u);
                wl[(size_t)x * taps16 + i] = (int16_t)low;
                wh[(size_t)x * taps16 + i] = (int16_t)((v - low) / 4096);
            }
        }
        ec_rs_hpass p = {in_w, out_w, C, span, w, taps, wh, wl, taps16};
        uint8_t *in = malloc((size_t)in_w * C), *a = malloc((size_t)out_w * C), *b = malloc((size_t)out_w * C);
        uint8_t *scratch = malloc(ec_u8_resample_h_scratch_bytes(in_w, C));
        fill(in, in_w, 1, C);
        ec_u8_resample_h__ref(&p, in, a);
        ec_u8_resample_h__avx2(&p, in, b, scratch);
        for (int i = 0; i < out_w * C; i++) {
            int d = abs(a[i] - b[i]);
            hdiff += d != 0;
            if (d > hmax) hmax = d;
        }
        hbytes += out_w * C;
        free(span), free(w), free(wh), free(wl), free(in), free(a), free(b), free(scratch);

        /* vertical: n rows of len bytes */
        int n = 1 + (int)(rnd() % 120);
        size_t len = (size_t)(1 + rnd() % 200);
        if (it % 5 == 0) len = 32 * (1 + rnd() % 4) + (rnd() % 3) - 1;
        uint8_t **rows = malloc(sizeof(uint8_t *) * n), *va = malloc(len), *vb = malloc(len);
        int32_t *vw = malloc(sizeof(int32_t) * n);
        for (int i = 0; i < n; i++) {
            rows[i] = malloc(len);
            fill(rows[i], (int)len, 1, 1);
        }
        rand_weights(vw, n);
        ec_u8_resample_v__ref((const uint8_t *const *)rows, vw, n, va, len);
        ec_u8_resample_v__avx2((const uint8_t *const *)rows, vw, n, vb, len);
        for (size_t i = 0; i < len; i++) {
            int d = abs(va[i] - vb[i]);
            vdiff += d != 0;
            if (d > vmax) vmax = d;
        }
        vbytes += (long)len;
        for (int i = 0; i < n; i++) free(rows[i]);
        free(rows), free(va), free(vb), free(vw);
    }
    char name[200];
    snprintf(name, sizeof name, "resample: horizontal AVX2 == scalar on %ld random outputs (max abs diff %d)", hbytes, hmax);
    T_CHECK(name, hdiff == 0, "%ld bytes differ, max %d", hdiff, hmax);
    snprintf(name, sizeof name, "resample: vertical AVX2 == scalar on %ld random outputs (max abs diff %d)", vbytes, vmax);
    T_CHECK(name, vdiff == 0, "%ld bytes differ, max %d", vdiff, vmax);
}

/* Memory does not grow with the source height; a tall shrink is bounded by its
 * window, and extreme ones are refused, not allocated. */
static void test_memory_and_limits(void)
{
    size_t b300 = ec_resampler_bytes(EC_RESIZE_LANCZOS, 4000, 300, 300, 300, 3);
    size_t b12m = ec_resampler_bytes(EC_RESIZE_LANCZOS, 4000, 3000, 300, 300, 3);
    size_t bbic = ec_resampler_bytes(EC_RESIZE_BICUBIC, 4000, 3000, 300, 300, 3);
    T_CHECK("resample: 4000x3000 -> 300x300 LANCZOS + BICUBIC tables and ring < 1 MiB", b12m && bbic &&
            b12m + bbic < 1024 * 1024, "%zu + %zu bytes", b12m, bbic);
    printf("     resampler bytes: 4000x300->300 %zu, 4000x3000->300 LANCZOS %zu, BICUBIC %zu\n", b300, b12m, bbic);

    ec_resampler *r = NULL;
    uint8_t dst[300 * 3];
    ec_status st = ec_resampler_new(EC_RESIZE_LANCZOS, 1 << 24, 1, 300, 1, 3, dst, &r);
    T_CHECK("resample: 16M columns -> 300 refused as a limit", st == EC_ERR_LIMIT && !r && strstr(ec_last_error(), "limit"),
            "status %d: %s", st, ec_last_error());
    st = ec_resampler_new(EC_RESIZE_LANCZOS, 0, 10, 10, 10, 3, dst, &r);
    T_CHECK("resample: zero width refused", st == EC_ERR_ARG && !r, "status %d", st);
    st = ec_resampler_new(EC_RESIZE_LANCZOS, 10, 10, 10, 10, 5, dst, &r);
    T_CHECK("resample: 5 channels refused", st == EC_ERR_ARG && !r, "status %d", st);
    st = ec_resampler_new((ec_resize_filter)9, 10, 10, 10, 10, 3, dst, &r);
    T_CHECK("resample: unknown filter value refused", st == EC_ERR_ARG && !r, "status %d", st);

    uint8_t out[4 * 4 * 3], row[8 * 3] = {0};
    st = ec_resampler_new(EC_RESIZE_BICUBIC, 8, 2, 4, 4, 3, out, &r);
    ec_status s1 = st == EC_OK ? ec_resampler_push(r, row) : st;
    ec_status s2 = st == EC_OK ? ec_resampler_push(r, row) : st;
    ec_status s3 = st == EC_OK ? ec_resampler_push(r, row) : st;
    T_CHECK("resample: a row past the source height is a state error", s1 == EC_OK && s2 == EC_OK &&
            s3 == EC_ERR_STATE && ec_resampler_rows_done(r) == 4, "%d %d %d, %d rows", s1, s2, s3,
            ec_resampler_rows_done(r));
    ec_resampler_free(r);

    /* In the caller's memory: the overlay's no-allocation path. */
    size_t nb = ec_resampler_bytes(EC_RESIZE_BILINEAR, 10, 10, 300, 300, 1);
    void *mem = aligned_alloc(64, (nb + 63) & ~(size_t)63);
    uint8_t *cam = malloc(100), *big = malloc(300 * 300), *want = malloc(300 * 300);
    fill(cam, 10, 10, 1);
    ref_resize(EC_RESIZE_BILINEAR, cam, 10, 10, 1, want, 300, 300);
    st = ec_resampler_init(mem, nb, EC_RESIZE_BILINEAR, 10, 10, 300, 300, 1, big, &r);
    for (int y = 0; y < 10 && st == EC_OK; y++) st = ec_resampler_push(r, cam + 10 * y);
    T_CHECK("resample: in caller memory (heatmap 10x10 -> 300x300 BILINEAR)", st == EC_OK && !memcmp(big, want, 90000),
            "status %d", st);
    ec_resampler_free(r);                                  /* a no-op on caller memory */
    st = ec_resampler_init(mem, nb - 1, EC_RESIZE_BILINEAR, 10, 10, 300, 300, 1, big, &r);
    T_CHECK("resample: init with too little memory refused", st == EC_ERR_ARG && !r, "status %d", st);
    free(mem), free(cam), free(big), free(want);
}

static void test_names(void)
{
    static const char *const names[] = {"nearest", "BOX", "Bilinear", "hamming", "BICUBIC", "lanczos"};
    int bad = 0;
    for (int f = 0; f < 6; f++) {
        ec_resize_filter got;
        if (ec_resize_filter_parse(names[f], &got) != EC_OK || (int)got != f ||
            strcasecmp(ec_resize_filter_name(got), names[f]) != 0)
            bad++;
    }
    ec_resize_filter g;
    ec_status st = ec_resize_filter_parse("lanczos3", &g);
    ec_status st2 = ec_resize_filter_parse("", &g);
    T_CHECK("resample: filter names parse (any case), unknown names refused", bad == 0 && st == EC_ERR_ARG &&
            st2 == EC_ERR_ARG && strstr(ec_last_error(), "bicubic"), "%d bad, '%s'", bad, ec_last_error());
}

int main(void)
{
    test_names();
    test_random();
    test_app_sizes();
    test_kernel_twins();
    test_memory_and_limits();
    return t_failed;
}
