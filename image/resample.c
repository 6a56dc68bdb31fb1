/* resample.c - Pillow's 8-bit Image.resize, every filter, bit for bit, streamed.
 *
 * The app resized with PIL, so "close" is not good enough: the model sees these
 * bytes. Pillow 11.3's algorithm (libImaging/Resample.c), restated:
 *   - per output coordinate a window of source taps, weighted by the filter
 *     scaled by max(in/out, 1) (shrinking widens it: antialiasing); weights in
 *     double, normalized to sum 1, then rounded to 22 fractional bits;
 *   - separable: a horizontal pass into 8-bit rows, then a vertical pass over
 *     those rows, each sum starting at one half and clipped after >> 22; the
 *     8-bit intermediate means rounding happens twice, so no float shortcut;
 *   - a pass runs only when its axis changes size; the same size is a copy.
 * NEAREST is not a filter in Pillow: Image.resize calls ImagingTransform with
 * an affine scale, which steps a double source coordinate (Geometry.c,
 * ImagingScaleAffine); reproduced below with the same accumulation.
 *
 * Streaming: Pillow filters only the source rows the vertical pass reads. Here
 * each pushed row is filtered horizontally at once into a ring slot (row y in
 * slot y % ring_rows); a destination row is computed when its window's last
 * row arrives. Windows only move down (first and last tap are nondecreasing in
 * the output index), so at any time the rows held belong to the next pending
 * output row's window: a ring as tall as the largest window is enough.
 *
 * Integer sums: every partial sum is bounded by 2^21 + 255 * sum|w| (checked
 * when the weights are built, refused above INT32_MAX), so int32 accumulators
 * give exactly Pillow's int sums in any order. That is what lets the passes run
 * as AVX2 kernels (resample__avx2.c, picked at run time) with scalar twins here.
 */
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/error.h"
#include "../kernels/kernels.h"
#include "resample.h"
#include "resample_kernels.h"

/* Pillow's PRECISION_BITS = 32 - 8 - 2: 8 bits of pixel, 2 of headroom for
 * filters with negative lobes (sums above 1 or below 0 before the clip). */
#define RS_FRAC_BITS EC_RS_FRAC_BITS
#define RS_HALF (1 << (RS_FRAC_BITS - 1))
/* 2^24: beyond this a float no longer holds every integer, and Pillow's box
 * edges are floats; also stb_image's dimension cap. */
#define RS_MAX_DIM (1 << 24)

/* ---- filters (Resample.c, same expressions: the weights are rounded to 22
 * bits afterwards, and an ulp here can flip one) -------------------------- */

static double rs_box(double x) { return x > -0.5 && x <= 0.5 ? 1.0 : 0.0; }

static double rs_bilinear(double x)
{
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static double rs_hamming(double x)
{
    if (x < 0.0) x = -x;
    if (x == 0.0) return 1.0;
    if (x >= 1.0) return 0.0;
    x = x * M_PI;
    /* 0.54f and 0.46f are float constants in Pillow, widened to double. */
    return sin(x) / x * (0.54f + 0.46f * cos(x));
}

static double rs_bicubic(double x)
{
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static double rs_sinc(double x)
{
    if (x == 0.0) return 1.0;
    x = x * M_PI;
    return sin(x) / x;
}

static double rs_lanczos(double x)
{
    return -3.0 <= x && x < 3.0 ? rs_sinc(x) * rs_sinc(x / 3) : 0.0;
}

typedef struct {
    double (*fn)(double);
    double support;
} rs_filter;

/* Indexed by ec_resize_filter; NEAREST has no kernel. */
static const rs_filter rs_filters[] = {
    {NULL, 0.0}, {rs_box, 0.5}, {rs_bilinear, 1.0}, {rs_hamming, 1.0}, {rs_bicubic, 2.0}, {rs_lanczos, 3.0},
};
static const char *const rs_names[] = {"nearest", "box", "bilinear", "hamming", "bicubic", "lanczos"};
#define RS_NFILTERS ((int)(sizeof rs_names / sizeof rs_names[0]))

ec_status ec_resize_filter_parse(const char *name, ec_resize_filter *out)
{
    if (!name || !out) return ec_fail(EC_ERR_ARG, "ec_resize_filter_parse: NULL argument");
    for (int f = 0; f < RS_NFILTERS; f++) {
        const char *a = rs_names[f], *b = name;
        while (*a && tolower((unsigned char)*b) == *a) a++, b++;
        if (!*a && !*b) {
            *out = (ec_resize_filter)f;
            return EC_OK;
        }
    }
    char shown[40];
    size_t i = 0;
    for (; name[i] && i + 1 < sizeof shown; i++)
        shown[i] = (unsigned char)name[i] < 0x20 || name[i] == 0x7f ? '?' : name[i];
    shown[i] = 0;
    return ec_fail(EC_ERR_ARG, "unknown resize filter '%s%s' (nearest, box, bilinear, hamming, bicubic, lanczos)",
                   shown, name[i] ? "..." : "");
}

const char *ec_resize_filter_name(ec_resize_filter f)
{
    return (int)f >= 0 && (int)f < RS_NFILTERS ? rs_names[f] : "?";
}

/* ---- the resampler's memory: one block, carved ---------------------------- */

typedef struct {
    int in, out, taps;        /* taps: row stride of w, >= every window's */
    int32_t *span;            /* [out][2]: first source index, number of taps */
    int32_t *w;               /* [out][taps]: weights * 2^22, rounded */
    int16_t *wh, *wl;         /* horizontal axis: [out][taps16], w split for the AVX2 pass */
    int taps16;
} rs_axis;

struct ec_resampler {
    ec_resize_filter filter;
    int sw, sh, dw, dh, ch;
    int need_h, need_v;       /* which passes run (neither: copy) */
    uint8_t *dst;             /* [dh][dw][ch], the caller's */
    int y_in, y_out;          /* source rows pushed, destination rows done */
    rs_axis h, v;
    uint8_t *planes;          /* scratch of the AVX2 horizontal pass */
    uint8_t *ring;            /* [ring_rows][row_bytes]: rows after the horizontal pass */
    int ring_rows;
    size_t row_bytes;         /* bytes of one ring row: (need_h ? dw : sw) * ch */
    const uint8_t **taps_rows;/* [ring_rows]: the window's rows, in tap order */
    int *xmap, *ymap;         /* NEAREST: [dw], [dh] source index, -1 outside */
    int xmin, xmax;           /* NEAREST: first and one past the last valid x */
    int owned;                /* malloc'd by ec_resampler_new */
};

static size_t rs_align(size_t n) { return (n + 63) & ~(size_t)63; }

/* Taps per output sample: Pillow's ksize = ceil(support) * 2 + 1, but never
 * more than the input has (a window is clipped to it). */
static int rs_taps(const rs_filter *f, int in, int out)
{
    double scale = (double)(float)in / out;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double k = ceil(f->support * filterscale) * 2 + 1;
    return k > in ? in : (int)k;
}

typedef struct {
    size_t total, span_h, w_h, wh_h, wl_h, planes, span_v, w_v, ring, rows, kbuf, xmap, ymap;   /* offsets */
    int taps_h, taps16_h, taps_v, ring_rows;
    size_t row_bytes;
} rs_layout;

static int rs_args_ok(ec_resize_filter f, int sw, int sh, int dw, int dh, int ch)
{
    return (int)f >= 0 && (int)f < RS_NFILTERS && sw > 0 && sh > 0 && dw > 0 && dh > 0 && sw <= RS_MAX_DIM &&
           sh <= RS_MAX_DIM && dw <= RS_MAX_DIM && dh <= RS_MAX_DIM && ch >= 1 && ch <= 4;
}

/* Byte offsets of every piece; sizes are below 2^24 so each product of two
 * of them fits 64 bits. Returns 0 when over the limit. */
static int rs_plan(rs_layout *L, ec_resize_filter f, int sw, int sh, int dw, int dh, int ch)
{
    memset(L, 0, sizeof *L);
    uint64_t off = rs_align(sizeof(struct ec_resampler));
    int need_h = dw != sw, need_v = dh != sh;
    if (f == EC_RESIZE_NEAREST) {
        if (need_h || need_v) {
            L->xmap = off, off += rs_align((uint64_t)dw * sizeof(int));
            L->ymap = off, off += rs_align((uint64_t)dh * sizeof(int));
        }
    } else {
        const rs_filter *flt = &rs_filters[f];
        uint64_t kmax = 1;
        if (need_h) {
            L->taps_h = rs_taps(flt, sw, dw);
            kmax = (uint64_t)L->taps_h;
            L->taps16_h = (L->taps_h + 15) & ~15;
            L->span_h = off, off += rs_align((uint64_t)dw * 2 * sizeof(int32_t));
            L->w_h = off, off += rs_align((uint64_t)dw * (uint64_t)L->taps_h * sizeof(int32_t));
            L->wh_h = off, off += rs_align((uint64_t)dw * (uint64_t)L->taps16_h * sizeof(int16_t));
            L->wl_h = off, off += rs_align((uint64_t)dw * (uint64_t)L->taps16_h * sizeof(int16_t));
            L->planes = off, off += rs_align(ec_u8_resample_h_scratch_bytes(sw, ch));
        }
        if (need_v) {
            L->taps_v = rs_taps(flt, sh, dh);
            if ((uint64_t)L->taps_v > kmax) kmax = (uint64_t)L->taps_v;
            L->span_v = off, off += rs_align((uint64_t)dh * 2 * sizeof(int32_t));
            L->w_v = off, off += rs_align((uint64_t)dh * (uint64_t)L->taps_v * sizeof(int32_t));
            L->ring_rows = L->taps_v;
            L->row_bytes = (size_t)(need_h ? dw : sw) * (size_t)ch;
            L->ring = off, off += rs_align((uint64_t)L->ring_rows * L->row_bytes);
            L->rows = off, off += rs_align((uint64_t)L->ring_rows * sizeof(uint8_t *));
        }
        L->kbuf = off, off += rs_align(kmax * sizeof(double));
    }
    L->total = (size_t)off;
    return off <= EC_RESAMPLE_MAX_BYTES;
}

size_t ec_resampler_bytes(ec_resize_filter f, int src_w, int src_h, int dst_w, int dst_h, int channels)
{
    rs_layout L;
    if (!rs_args_ok(f, src_w, src_h, dst_w, dst_h, channels)) return 0;
    return rs_plan(&L, f, src_w, src_h, dst_w, dst_h, channels) ? L.total : 0;
}

/* ---- coefficients ----------------------------------------------------------- */

/* One axis's windows and weights, operation for operation as Pillow's
 * precompute_coeffs + normalize_coeffs_8bpc (any difference in the double
 * arithmetic can flip a rounded weight). k: [taps] scratch. */
static ec_status rs_axis_build(rs_axis *ax, const rs_filter *f, double *k)
{
    /* Pillow: (double)(in1 - in0) / outSize, the box edges being floats. */
    double scale = (double)(float)ax->in / ax->out;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = f->support * filterscale;
    double ss = 1.0 / filterscale;
    const int64_t max_abs = ((int64_t)INT32_MAX - RS_HALF) / 255;

    for (int o = 0; o < ax->out; o++) {
        double center = (o + 0.5) * scale;
        /* (int) truncates toward zero; with the + 0.5 that is Pillow's rounding. */
        int lo = (int)(center - support + 0.5);
        if (lo < 0) lo = 0;
        int hi = (int)(center + support + 0.5);
        if (hi > ax->in) hi = ax->in;
        int n = hi - lo;
        if (n < 1 || n > ax->taps)                         /* cannot happen: support >= 0.5 */
            return ec_fail(EC_ERR_INTERNAL, "resample: window of %d taps (at most %d)", n, ax->taps);
        double ww = 0.0;
        for (int i = 0; i < n; i++) {
            /* Multiplication by 1 / filterscale, as Pillow 11.3 (not a division). */
            double w = f->fn(((double)(i + lo) - center + 0.5) * ss);
            k[i] = w;
            ww += w;
        }
        if (ww != 0.0)
            for (int i = 0; i < n; i++) k[i] /= ww;
        int32_t *w = ax->w + (size_t)o * (size_t)ax->taps;
        int64_t sum_abs = 0;
        for (int i = 0; i < ax->taps; i++) {
            double v = i < n ? k[i] : 0.0;
            /* Round half away from zero into 22 fractional bits. */
            w[i] = v < 0 ? (int32_t)(-0.5 + v * (1 << RS_FRAC_BITS)) : (int32_t)(0.5 + v * (1 << RS_FRAC_BITS));
            sum_abs += w[i] < 0 ? -(int64_t)w[i] : w[i];
        }
        if (sum_abs > max_abs)
            return ec_fail(EC_ERR_LIMIT, "resize %d -> %d: a window of %d taps whose fixed-point sum could overflow",
                           ax->in, ax->out, n);
        if (ax->wh) {
            /* w = wh * 4096 + wl, wl the low 12 bits (0..4095); |w| < 2^23 by
             * the check above, so |wh| <= 2^11: both fit int16. */
            int16_t *wh = ax->wh + (size_t)o * (size_t)ax->taps16, *wl = ax->wl + (size_t)o * (size_t)ax->taps16;
            for (int i = 0; i < ax->taps16; i++) {
                int32_t v = i < ax->taps ? w[i] : 0;
                int32_t low = (int32_t)((uint32_t)v & ((1u << EC_RS_SPLIT_BITS) - 1));
                wl[i] = (int16_t)low;
                wh[i] = (int16_t)((v - low) / (1 << EC_RS_SPLIT_BITS));
            }
        }
        ax->span[2 * o] = lo;
        ax->span[2 * o + 1] = n;
    }
    return EC_OK;
}

/* ---- the two passes --------------------------------------------------------- */

/* acc >> 22 clipped to 0..255: Pillow's clip8 table. The shift of a negative
 * int32 is arithmetic on every compiler we build with, as in Pillow. */
static inline uint8_t rs_clip8(int32_t acc)
{
    int32_t v = acc >> RS_FRAC_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Horizontal, the reference: one source row (in: [in_w][C]) -> out: [out_w][C].
 * Forced inline so each call site gets C as a constant: the channel loop
 * unrolls and the accumulators stay in registers. */
__attribute__((always_inline))
static inline void rs_horizontal(const ec_rs_hpass *p, const uint8_t *restrict in, uint8_t *restrict out, const int C)
{
    for (int x = 0; x < p->out_w; x++) {
        const int32_t *w = p->w + (size_t)x * (size_t)p->taps;          /* [taps] */
        const uint8_t *src = in + (size_t)p->span[2 * x] * C;            /* [n][C] */
        int n = p->span[2 * x + 1];
        int32_t acc[4] = {RS_HALF, RS_HALF, RS_HALF, RS_HALF};
        for (int i = 0; i < n; i++)
            for (int c = 0; c < C; c++) acc[c] += (int32_t)src[i * C + c] * w[i];
        for (int c = 0; c < C; c++) out[x * C + c] = rs_clip8(acc[c]);
    }
}

void ec_u8_resample_h__ref(const ec_rs_hpass *p, const uint8_t *in, uint8_t *out)
{
    switch (p->channels) {
    case 1: rs_horizontal(p, in, out, 1); break;
    case 2: rs_horizontal(p, in, out, 2); break;
    case 3: rs_horizontal(p, in, out, 3); break;
    default: rs_horizontal(p, in, out, 4); break;
    }
}

static void rs_horizontal_run(const ec_resampler *r, const uint8_t *in, uint8_t *out)
{
    const ec_rs_hpass p = {r->sw, r->dw, r->ch, r->h.span, r->h.w, r->h.taps, r->h.wh, r->h.wl, r->h.taps16};
    if (ec_cpu_has_avx2()) ec_u8_resample_h__avx2(&p, in, out, r->planes);
    else ec_u8_resample_h__ref(&p, in, out);
}

/* Vertical: n rows (rows[i] is tap i's row, len bytes) -> out. Channels do not
 * matter: every byte of a row has the same column of weights. Columns go in
 * blocks so the block's sums stay in cache while the taps walk the rows. */
void ec_u8_resample_v__ref(const uint8_t *const *rows, const int32_t *w, int n, uint8_t *restrict out, size_t len)
{
    enum { BLOCK = 512 };
    int32_t acc[BLOCK];
    for (size_t x0 = 0; x0 < len; x0 += BLOCK) {
        size_t nb = len - x0 < BLOCK ? len - x0 : BLOCK;
        for (size_t j = 0; j < nb; j++) acc[j] = RS_HALF;
        for (int i = 0; i < n; i++) {
            const uint8_t *restrict row = rows[i] + x0;
            int32_t wi = w[i];
            for (size_t j = 0; j < nb; j++) acc[j] += (int32_t)row[j] * wi;
        }
        for (size_t j = 0; j < nb; j++) out[x0 + j] = rs_clip8(acc[j]);
    }
}

/* ---- NEAREST: Pillow's ImagingScaleAffine ------------------------------------ */

/* map[o] = source index of output o, or -1 where Pillow leaves the fill (0):
 * the coordinate starts at a/2 and is stepped by a = in/out in double, each
 * step truncated (COORD), exactly as Pillow accumulates it. */
static void rs_nearest_map(int in, int out, int *map)
{
    double a = (double)(float)in / out;
    double pos = 0.0 + a * 0.5;
    for (int o = 0; o < out; o++) {
        int i = pos < 0.0 ? -1 : (int)pos;
        map[o] = i >= 0 && i < in ? i : -1;
        pos += a;
    }
}

/* Pillow fills x outside [xmin, xmax) (the first and one past the last valid
 * x) with 0, and inside copies xintab[x], which is 0 where invalid. */
static void rs_nearest_row(const ec_resampler *r, const uint8_t *in, uint8_t *out)
{
    int C = r->ch;
    memset(out, 0, (size_t)r->dw * (size_t)C);
    for (int x = r->xmin; x < r->xmax; x++) {
        int s = r->xmap[x] < 0 ? 0 : r->xmap[x];
        memcpy(out + (size_t)x * C, in + (size_t)s * C, (size_t)C);
    }
}

/* ---- public entry points ------------------------------------------------------ */

/* The arguments' verdict, with its message: EC_OK and *L filled, or why not. */
static ec_status rs_check(rs_layout *L, ec_resize_filter f, int src_w, int src_h, int dst_w, int dst_h,
                          int channels)
{
    if (!rs_args_ok(f, src_w, src_h, dst_w, dst_h, channels))
        return ec_fail(EC_ERR_ARG, "resize %dx%d -> %dx%d x%d (%s): sizes must be 1..%d, channels 1..4", src_w, src_h,
                       dst_w, dst_h, channels, ec_resize_filter_name(f), RS_MAX_DIM);
    if (!rs_plan(L, f, src_w, src_h, dst_w, dst_h, channels))
        return ec_fail(EC_ERR_LIMIT, "resize %dx%d -> %dx%d (%s) needs %zu MiB of tables, over the %zu MiB limit",
                       src_w, src_h, dst_w, dst_h, ec_resize_filter_name(f), L->total >> 20,
                       EC_RESAMPLE_MAX_BYTES >> 20);
    return EC_OK;
}

ec_status ec_resampler_init(void *mem, size_t bytes, ec_resize_filter f, int src_w, int src_h,
                            int dst_w, int dst_h, int channels, uint8_t *dst, ec_resampler **out)
{
    if (!out) return ec_fail(EC_ERR_ARG, "ec_resampler_init: NULL argument");
    *out = NULL;
    if (!mem || !dst) return ec_fail(EC_ERR_ARG, "ec_resampler_init: NULL argument");
    rs_layout L;
    ec_status st = rs_check(&L, f, src_w, src_h, dst_w, dst_h, channels);
    if (st != EC_OK) return st;
    if (bytes < L.total)
        return ec_fail(EC_ERR_ARG, "ec_resampler_init: %zu bytes given, %zu needed", bytes, L.total);

    uint8_t *base = mem;
    ec_resampler *r = mem;
    memset(r, 0, sizeof *r);
    r->filter = f;
    r->sw = src_w, r->sh = src_h, r->dw = dst_w, r->dh = dst_h, r->ch = channels;
    r->need_h = dst_w != src_w;
    r->need_v = dst_h != src_h;
    r->dst = dst;
    if (f == EC_RESIZE_NEAREST) {
        if (r->need_h || r->need_v) {
            r->xmap = (int *)(base + L.xmap);
            r->ymap = (int *)(base + L.ymap);
            rs_nearest_map(src_w, dst_w, r->xmap);
            rs_nearest_map(src_h, dst_h, r->ymap);
            r->xmin = dst_w, r->xmax = 0;
            for (int x = 0; x < dst_w; x++)
                if (r->xmap[x] >= 0) {
                    if (x < r->xmin) r->xmin = x;
                    r->xmax = x + 1;
                }
        }
    } else {
        double *k = (double *)(base + L.kbuf);
        if (r->need_h) {
            r->h = (rs_axis){src_w, dst_w, L.taps_h, (int32_t *)(base + L.span_h), (int32_t *)(base + L.w_h),
                             (int16_t *)(base + L.wh_h), (int16_t *)(base + L.wl_h), L.taps16_h};
            r->planes = base + L.planes;
            if ((st = rs_axis_build(&r->h, &rs_filters[f], k)) != EC_OK) return st;
        }
        if (r->need_v) {
            r->v = (rs_axis){src_h, dst_h, L.taps_v, (int32_t *)(base + L.span_v), (int32_t *)(base + L.w_v), NULL, NULL, 0};
            if ((st = rs_axis_build(&r->v, &rs_filters[f], k)) != EC_OK) return st;
            r->ring = base + L.ring;
            r->ring_rows = L.ring_rows;
            r->row_bytes = L.row_bytes;
            r->taps_rows = (const uint8_t **)(base + L.rows);
        }
    }
    *out = r;
    return EC_OK;
}

ec_status ec_resampler_new(ec_resize_filter f, int src_w, int src_h, int dst_w, int dst_h, int channels,
                           uint8_t *dst, ec_resampler **out)
{
    if (!out) return ec_fail(EC_ERR_ARG, "ec_resampler_new: NULL argument");
    *out = NULL;
    if (!dst) return ec_fail(EC_ERR_ARG, "ec_resampler_new: NULL argument");
    rs_layout L;
    ec_status st = rs_check(&L, f, src_w, src_h, dst_w, dst_h, channels);
    if (st != EC_OK) return st;
    size_t bytes = L.total;
    void *mem = aligned_alloc(64, rs_align(bytes));
    if (!mem) return ec_fail(EC_ERR_NOMEM, "out of memory for a %zu-byte resampler", bytes);
    st = ec_resampler_init(mem, bytes, f, src_w, src_h, dst_w, dst_h, channels, dst, out);
    if (st != EC_OK) {
        free(mem);
        return st;
    }
    (*out)->owned = 1;
    return EC_OK;
}

void ec_resampler_free(ec_resampler *r)
{
    if (r && r->owned) free(r);
}

int ec_resampler_rows_done(const ec_resampler *r) { return r ? r->y_out : 0; }

ec_status ec_resampler_push(ec_resampler *r, const uint8_t *row)
{
    if (!r || !row) return ec_fail(EC_ERR_ARG, "ec_resampler_push: NULL argument");
    if (r->y_in >= r->sh)
        return ec_fail(EC_ERR_STATE, "ec_resampler_push: all %d source rows were already pushed", r->sh);
    int y = r->y_in++;
    size_t drow = (size_t)r->dw * (size_t)r->ch;
    uint8_t *dst = r->dst;                                     /* [dh][drow] */

    if (!r->need_h && !r->need_v) {                            /* same size: a copy */
        memcpy(dst + (size_t)y * drow, row, drow);
        r->y_out = y + 1;
        return EC_OK;
    }
    if (r->filter == EC_RESIZE_NEAREST) {
        /* ymap is nondecreasing from a/2 > 0: the rows of source row y are
         * the next ones, and rows past the source (-1) only come at the end,
         * where Pillow leaves its fill (0). */
        while (r->y_out < r->dh && r->ymap[r->y_out] == y) {
            rs_nearest_row(r, row, dst + (size_t)r->y_out * drow);
            r->y_out++;
        }
        if (y == r->sh - 1)
            for (; r->y_out < r->dh; r->y_out++) memset(dst + (size_t)r->y_out * drow, 0, drow);
        return EC_OK;
    }
    if (!r->need_v) {                                          /* horizontal only */
        rs_horizontal_run(r, row, dst + (size_t)y * drow);
        r->y_out = y + 1;
        return EC_OK;
    }
    /* Rows before the next pending window are read by no pending window (and
     * by no later one: windows only move down). Pillow skips them too. */
    if (r->y_out >= r->dh || y < r->v.span[2 * r->y_out]) return EC_OK;
    uint8_t *slot = r->ring + (size_t)(y % r->ring_rows) * r->row_bytes;
    if (r->need_h) rs_horizontal_run(r, row, slot);
    else memcpy(slot, row, r->row_bytes);
    while (r->y_out < r->dh) {
        int lo = r->v.span[2 * r->y_out], n = r->v.span[2 * r->y_out + 1];
        if (lo + n - 1 > y) break;                             /* window not complete yet */
        for (int i = 0; i < n; i++)
            r->taps_rows[i] = r->ring + (size_t)((lo + i) % r->ring_rows) * r->row_bytes;
        const int32_t *wv = r->v.w + (size_t)r->y_out * (size_t)r->v.taps;
        if (ec_cpu_has_avx2()) ec_u8_resample_v__avx2(r->taps_rows, wv, n, dst + (size_t)r->y_out * drow, drow);
        else ec_u8_resample_v__ref(r->taps_rows, wv, n, dst + (size_t)r->y_out * drow, drow);
        r->y_out++;
    }
    return EC_OK;
}

ec_status ec_u8_resize(ec_resize_filter f, const uint8_t *src, int src_w, int src_h, int channels, uint8_t *dst,
                       int dst_w, int dst_h)
{
    if (!src) return ec_fail(EC_ERR_ARG, "ec_u8_resize: NULL argument");
    ec_resampler *r;
    ec_status st = ec_resampler_new(f, src_w, src_h, dst_w, dst_h, channels, dst, &r);
    if (st != EC_OK) return st;
    size_t srow = (size_t)src_w * (size_t)channels;
    for (int y = 0; y < src_h && st == EC_OK; y++) st = ec_resampler_push(r, src + (size_t)y * srow);
    if (st == EC_OK && r->y_out != dst_h)
        st = ec_fail(EC_ERR_INTERNAL, "resize %dx%d -> %dx%d: %d rows out", src_w, src_h, dst_w, dst_h, r->y_out);
    ec_resampler_free(r);
    return st;
}
