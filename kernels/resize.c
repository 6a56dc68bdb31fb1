/* resize.c - Pillow's 8-bit BILINEAR resample, reproduced bit for bit.
 *
 * The app resized with PIL, so "close" is not good enough: the model sees
 * these bytes. Pillow's algorithm (libImaging/Resample.c), restated:
 *   - separable: a horizontal pass into an 8-bit intermediate, then a
 *     vertical pass; a pass is skipped when its axis keeps its size, and
 *     nothing is computed when neither changes (plain copy);
 *   - per output coordinate a window of source taps weighted by the triangle
 *     filter, widened by the scale factor when shrinking (antialiasing);
 *     weights computed in double, normalized to sum 1, then turned into
 *     fixed point;
 *   - the horizontal pass only produces the source rows the vertical pass
 *     will read (first row of the first window .. last row of the last).
 * The intermediate being 8-bit means rounding happens twice; that is part of
 * what we must reproduce, so there is no float shortcut here.
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "resize.h"

/* 32-bit accumulators: 8 bits of pixel, 22 of fraction, 2 of headroom for
 * rounding excess in the weight sum (Pillow's PRECISION_BITS = 32 - 8 - 2). */
#define RS_FRAC_BITS 22
/* Sizes above this are refused: 2^24 is stb_image's own dimension cap, and it
 * keeps every size_t product below comfortably finite. */
#define RS_MAX_DIM (1 << 24)

/* ---- coefficient tables ------------------------------------------------ */

/* Taps per output sample: the filter support (1 for bilinear) times the scale
 * when shrinking, rounded up, on both sides, plus the centre. */
static int rs_taps(int in_size, int out_size)
{
    /* Pillow computes the scale from float box edges: (float)in - 0.0f. */
    double scale = (double)(float)in_size / out_size;
    double support = scale < 1.0 ? 1.0 : scale;
    return (int)ceil(support) * 2 + 1;
}

static size_t rs_align(size_t n) { return (n + 15) & ~(size_t)15; }

/* Bytes for one axis: bounds[2*out] ints, weights[out*taps] int32, and one
 * window of doubles used while building a row of weights. */
static size_t rs_axis_bytes(int in_size, int out_size)
{
    size_t taps = (size_t)rs_taps(in_size, out_size);
    return rs_align(2 * (size_t)out_size * sizeof(int)) +
           rs_align((size_t)out_size * taps * sizeof(int32_t)) +
           rs_align(taps * sizeof(double));
}

typedef struct {
    int taps;            /* weights per output sample (row stride of w) */
    int *bounds;         /* [out][2]: first source index, number of taps used */
    int32_t *w;          /* [out][taps]: 2^-22 fixed point, sum ~ 2^22 */
} rs_axis;

/* Builds the weights for one axis exactly as Pillow's precompute_coeffs +
 * normalize_coeffs_8bpc do, operation for operation, since any difference in
 * the double arithmetic can flip a rounded weight. Returns the bytes used. */
static size_t rs_axis_build(rs_axis *ax, int in_size, int out_size, uint8_t *mem)
{
    double scale = (double)(float)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;                  /* bilinear support is 1 */
    int taps = rs_taps(in_size, out_size);
    size_t off = 0;

    ax->taps = taps;
    ax->bounds = (int *)(mem + off);
    off += rs_align(2 * (size_t)out_size * sizeof(int));
    ax->w = (int32_t *)(mem + off);
    off += rs_align((size_t)out_size * (size_t)taps * sizeof(int32_t));
    double *k = (double *)(mem + off);                   /* [taps] */
    off += rs_align((size_t)taps * sizeof(double));

    for (int o = 0; o < out_size; o++) {
        double center = 0.0 + (o + 0.5) * scale;
        /* (int) truncates toward zero; with the +0.5 that is Pillow's rounding. */
        int lo = (int)(center - support + 0.5);
        if (lo < 0) lo = 0;
        int hi = (int)(center + support + 0.5);
        if (hi > in_size) hi = in_size;
        int n = hi - lo;
        double sum = 0.0;
        for (int i = 0; i < n; i++) {
            /* Triangle filter, scaled: t = distance from the centre in
             * output-pixel units (division, as Pillow <= 12.2 does). */
            double t = ((double)(i + lo) - center + 0.5) / filterscale;
            if (t < 0.0) t = -t;
            double wt = t < 1.0 ? 1.0 - t : 0.0;
            k[i] = wt;
            sum += wt;
        }
        if (sum != 0.0)
            for (int i = 0; i < n; i++) k[i] /= sum;
        int32_t *w = ax->w + (size_t)o * (size_t)taps;
        for (int i = 0; i < taps; i++) {
            double v = i < n ? k[i] : 0.0;
            /* Round half away from zero into 22 fractional bits. */
            w[i] = v < 0 ? (int32_t)(-0.5 + v * (1 << RS_FRAC_BITS))
                         : (int32_t)(0.5 + v * (1 << RS_FRAC_BITS));
        }
        ax->bounds[2 * o] = lo;
        ax->bounds[2 * o + 1] = n;
    }
    return off;
}

/* acc starts at 2^21 (one half), so the shift rounds to nearest; the clamp is
 * Pillow's clip8 table: a weight sum slightly above one can overshoot 255.
 * Accumulators are 64-bit: identical results wherever Pillow's int32 does not
 * overflow, and no undefined behaviour for windows of millions of taps, whose
 * rounded weights can sum well past 2^22. */
static inline uint8_t rs_clip8(int64_t acc)
{
    int64_t v = acc >> RS_FRAC_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* ---- the two passes ------------------------------------------------------ */

/* Horizontal: rows [row0, row0 + rows) of src (sw wide) -> rows x dw. Forced
 * inline so each call site gets C as a constant: the channel loop unrolls and
 * the accumulators live in registers. */
__attribute__((always_inline))
static inline void rs_horizontal(const uint8_t *restrict src, int sw, int row0, int rows,
                                 uint8_t *restrict dst, int dw, const rs_axis *ax, const int C)
{
    for (int y = 0; y < rows; y++) {
        const uint8_t *in = src + (size_t)(row0 + y) * (size_t)sw * C;   /* [sw][C] */
        uint8_t *out = dst + (size_t)y * (size_t)dw * C;                  /* [dw][C] */
        for (int x = 0; x < dw; x++) {
            const int32_t *w = ax->w + (size_t)x * (size_t)ax->taps;
            const uint8_t *p = in + (size_t)ax->bounds[2 * x] * C;
            int n = ax->bounds[2 * x + 1];
            int64_t acc[4] = {1 << (RS_FRAC_BITS - 1), 1 << (RS_FRAC_BITS - 1),
                              1 << (RS_FRAC_BITS - 1), 1 << (RS_FRAC_BITS - 1)};
            for (int i = 0; i < n; i++)
                for (int c = 0; c < C; c++) acc[c] += (int64_t)p[(size_t)i * C + c] * w[i];
            for (int c = 0; c < C; c++) out[x * C + c] = rs_clip8(acc[c]);
        }
    }
}

/* Vertical: src (rows of `stride` bytes) -> dh rows, taps from ax (bounds
 * relative to src's first row). Channels do not matter here: every byte of a
 * row is filtered with the same column of weights. Columns go in blocks so
 * the taps walk rows sequentially with the block's sums kept in registers. */
static void rs_vertical(const uint8_t *restrict src, size_t stride, uint8_t *restrict dst, int dh,
                        const rs_axis *ax)
{
    enum { BLOCK = 64 };
    for (int y = 0; y < dh; y++) {
        const int32_t *wt = ax->w + (size_t)y * (size_t)ax->taps;
        const uint8_t *in = src + (size_t)ax->bounds[2 * y] * stride;
        int n = ax->bounds[2 * y + 1];
        uint8_t *out = dst + (size_t)y * stride;
        for (size_t x0 = 0; x0 < stride; x0 += BLOCK) {
            size_t nb = stride - x0 < BLOCK ? stride - x0 : BLOCK;
            int64_t acc[BLOCK];
            for (size_t j = 0; j < nb; j++) acc[j] = 1 << (RS_FRAC_BITS - 1);
            for (int i = 0; i < n; i++) {
                const uint8_t *row = in + (size_t)i * stride + x0;
                int64_t wi = wt[i];
                for (size_t j = 0; j < nb; j++) acc[j] += row[j] * wi;
            }
            for (size_t j = 0; j < nb; j++) out[x0 + j] = rs_clip8(acc[j]);
        }
    }
}

static void rs_horizontal_any(const uint8_t *src, int sw, int row0, int rows, uint8_t *dst,
                              int dw, const rs_axis *ax, int C)
{
    switch (C) {
    case 1: rs_horizontal(src, sw, row0, rows, dst, dw, ax, 1); break;
    case 2: rs_horizontal(src, sw, row0, rows, dst, dw, ax, 2); break;
    case 3: rs_horizontal(src, sw, row0, rows, dst, dw, ax, 3); break;
    default: rs_horizontal(src, sw, row0, rows, dst, dw, ax, 4); break;
    }
}

/* ---- public entry points ------------------------------------------------- */

static int rs_sizes_ok(int sw, int sh, int dw, int dh, int channels)
{
    return sw > 0 && sh > 0 && dw > 0 && dh > 0 && sw <= RS_MAX_DIM && sh <= RS_MAX_DIM &&
           dw <= RS_MAX_DIM && dh <= RS_MAX_DIM && channels >= 1 && channels <= 4;
}

/* 0 for invalid sizes (and for the identity, which needs nothing). The
 * intermediate is bounded by src_h rows; the exact count is <= that. The
 * scratch must be 8-byte aligned (any malloc'd block): it holds doubles. */
size_t ec_u8_resize_scratch_bytes(int src_w, int src_h, int dst_w, int dst_h, int channels)
{
    if (!rs_sizes_ok(src_w, src_h, dst_w, dst_h, channels)) return 0;
    size_t n = 0;
    if (dst_w != src_w) {
        n += rs_axis_bytes(src_w, dst_w);
        if (dst_h != src_h) n += rs_align((size_t)dst_w * (size_t)src_h * (size_t)channels);
    }
    if (dst_h != src_h) n += rs_axis_bytes(src_h, dst_h);
    return n;
}

int ec_u8_resize_bilinear(const uint8_t *src, int src_w, int src_h, int channels,
                          uint8_t *dst, int dst_w, int dst_h, void *scratch)
{
    if (!src || !dst || !rs_sizes_ok(src_w, src_h, dst_w, dst_h, channels)) return -1;
    int need_h = dst_w != src_w, need_v = dst_h != src_h;
    if (!need_h && !need_v) {
        memcpy(dst, src, (size_t)src_w * (size_t)src_h * (size_t)channels);
        return 0;
    }
    if (!scratch) return -1;
    uint8_t *mem = scratch;
    size_t off = 0;

    rs_axis vert = {0, NULL, NULL};
    int row0 = 0, rows = src_h;
    if (need_v) {
        off += rs_axis_build(&vert, src_h, dst_h, mem + off);
        /* Windows move monotonically, so the first window starts lowest and the
         * last ends highest: only those source rows need a horizontal pass. */
        row0 = vert.bounds[0];
        rows = vert.bounds[2 * (dst_h - 1)] + vert.bounds[2 * (dst_h - 1) + 1] - row0;
    } else {
        rs_axis horiz;
        rs_axis_build(&horiz, src_w, dst_w, mem + off);
        rs_horizontal_any(src, src_w, 0, src_h, dst, dst_w, &horiz, channels);
        return 0;
    }
    const uint8_t *vsrc = src;
    int vw = src_w;
    if (need_h) {
        rs_axis horiz;
        off += rs_axis_build(&horiz, src_w, dst_w, mem + off);
        uint8_t *tmp = mem + off;                         /* [rows][dst_w][channels] */
        rs_horizontal_any(src, src_w, row0, rows, tmp, dst_w, &horiz, channels);
        for (int y = 0; y < dst_h; y++) vert.bounds[2 * y] -= row0;
        vsrc = tmp;
        vw = dst_w;
    }
    rs_vertical(vsrc, (size_t)vw * (size_t)channels, dst, dst_h, &vert);
    return 0;
}
