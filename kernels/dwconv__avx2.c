/* dwconv__avx2.c - depthwise convolution, AVX2 + FMA, fused scale/shift + act.
 *
 * Loop order, kw = 3 or 5 with channels a multiple of 8 (every EfficientNet
 * depthwise conv): output row -> group of 4 output pixels -> tile of 8 channels
 * (dw_row_pm). Otherwise: output row -> tile of 8 output channels -> output pixels
 * (dw_row_tile). The pixel-major order reads whole contiguous pixels; the
 * tile-major one strides by c floats, which with c = 512 or 1536 (2 or 6 KB)
 * puts a pass's lines into a few L1 sets (measured 1.2-1.9x slower at 19x19).
 * - dw_row_tile: one tile's taps for a whole row come from kh input rows; sweeping the next
 *   tile re-reads the other half of the same cache lines while they are still in
 *   L1, and the tile's kh * kw weight vectors stay in L1 for the whole row.
 * - Vertical padding is resolved once per row (range [ky0, ky1)); horizontally,
 *   output columns [xa, xb) have every tap inside the image, so that interior
 *   runs with no bounds checks, four pixels at a time: each weight vector loaded
 *   once feeds four independent FMA chains (1.25 loads per FMA instead of 2).
 *   Only the few border columns clip [kx0, kx1).
 * - kw = 3 and 5 (all of EfficientNet) are compile-time constants in their own
 *   instantiation, so the kx loop unrolls fully.
 * - Depth multiplier > 1 gathers the input lanes (oc / mult); EfficientNet never
 *   uses it, so that path is correct rather than fast.
 */
#include "kernels/vmath_avx2.h"

typedef struct {
    const float *x;              /* (in_h, in_w, c) */
    const float *w;              /* (kh, kw, C) with C = c * mult */
    const float *scale, *shift;  /* (C) or NULL */
    float *out;                  /* (out_h, out_w, C) */
    int in_h, in_w, c, C, out_w, kh, sh, sw, pad_t, pad_l, mult, act;
    int xa, xb;                  /* interior output columns [xa, xb) */
} dw_ctx;

/* How a tile's lanes are loaded: plain, masked (channel tail), or gathered
 * (mult > 1, lane j reads input channel (cb + j) / mult, masked for the tail). */
enum { DW_PLAIN, DW_MASKED, DW_GATHER };

/* px points at the pixel's channel cb (plain, masked) or channel 0 (gather). */
EC_V8_INLINE __m256 dw_load_x(const float *px, const int mode, __m256i mask, __m256i gidx)
{
    if (mode == DW_PLAIN) return _mm256_loadu_ps(px);
    if (mode == DW_MASKED) return _mm256_maskload_ps(px, mask);
    return _mm256_mask_i32gather_ps(_mm256_setzero_ps(), px, gidx, _mm256_castsi256_ps(mask), 4);
}

EC_V8_INLINE __m256 dw_load(const float *p, const int mode, __m256i mask)
{
    return mode == DW_PLAIN ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, mask);
}

EC_V8_INLINE void dw_store(float *p, __m256 v, const int mode, __m256i mask)
{
    if (mode == DW_PLAIN) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, mask, v);
}

/* NT channel tiles (8 NT channels) of one output pixel with taps kx in [kx0,
 * kx1) (a border column, or an interior leftover with [0, KW)); xr points at
 * input row iy0 + ky0, pixel ix0 + kx0, at the first tile's channel (channel 0
 * when gathering); wt, o, sc and sh (NULL: no scale / shift) at the first
 * tile's channel. Rows alternate between two accumulators to halve the FMA
 * latency chain; that only reassociates the reference's (ky, kx)-ordered sum.
 * The tiles' chains are independent of each other: a tile alone waits on its
 * FMA latency and on the activation's polynomial, and the border columns (2 of
 * the 10 of a 10x10 map) then cost more than the interior. More than one tile
 * in plain mode only. */
EC_V8_INLINE void dw_pixel(const dw_ctx *k, const float *xr, const float *wt, float *o, const float *sc,
                           const float *sh, int ky0, int ky1, int kx0, int kx1, const int KW, const int mode,
                           __m256i mask, __m256i gidx, const int NT)
{
    const size_t C = (size_t)k->C, c = (size_t)k->c, xrow = (size_t)k->in_w * c;
    __m256 acc[2][4];
    EC_V8_UNROLL for (int j = 0; j < NT; j++) acc[0][j] = acc[1][j] = _mm256_setzero_ps();
    for (int ky = ky0; ky < ky1; ky++, xr += xrow) {
        const float *wr = wt + ((size_t)ky * KW + kx0) * C;
        __m256 a[4];
        EC_V8_UNROLL for (int j = 0; j < NT; j++) a[j] = acc[ky & 1][j];
        for (int t = 0; t < kx1 - kx0; t++)
            EC_V8_UNROLL for (int j = 0; j < NT; j++)
                a[j] = _mm256_fmadd_ps(dw_load_x(xr + t * c + 8 * j, mode, mask, gidx),
                                       dw_load(wr + t * C + 8 * j, mode, mask), a[j]);
        EC_V8_UNROLL for (int j = 0; j < NT; j++) acc[ky & 1][j] = a[j];
    }
    __m256 v[4];
    EC_V8_UNROLL for (int j = 0; j < NT; j++) {
        const __m256 vs = sc ? dw_load(sc + 8 * j, mode, mask) : _mm256_set1_ps(1.0f);
        const __m256 vh = sh ? dw_load(sh + 8 * j, mode, mask) : _mm256_setzero_ps();
        v[j] = _mm256_fmadd_ps(_mm256_add_ps(acc[0][j], acc[1][j]), vs, vh);
    }
    ec_v8_act_n(v, NT, k->act);
    EC_V8_UNROLL for (int j = 0; j < NT; j++) dw_store(o + 8 * j, v[j], mode, mask);
}

/* Output row oy, channels [cb, cb + 8) (fewer under a tail mask). */
EC_V8_INLINE void dw_row_tile(const dw_ctx *k, int oy, int cb, const int KW, const int mode,
                              __m256i mask, __m256i gidx)
{
    const size_t C = (size_t)k->C, c = (size_t)k->c;
    const int sw = k->sw, out_w = k->out_w;
    const int iy0 = oy * k->sh - k->pad_t;
    const int ky0 = iy0 < 0 ? -iy0 : 0;
    const int ky1 = k->in_h - iy0 < k->kh ? k->in_h - iy0 : k->kh;
    /* First input row used (iy0 + ky0), at this tile's channel offset. Pointers
     * are only formed inside the image, even when a whole row is padding. */
    const float *xrow0 = k->x + (mode == DW_GATHER ? 0 : cb) +
                         (ky0 < ky1 ? (size_t)(iy0 + ky0) * k->in_w * c : 0);
    const float *wt = k->w + cb;                          /* tap t at wt + t * C */
    float *orow = k->out + (size_t)oy * out_w * C + cb;   /* pixel ox at orow + ox * C */
    const float *sc = k->scale ? k->scale + cb : NULL, *sh = k->shift ? k->shift + cb : NULL;
    const __m256 vs = sc ? dw_load(sc, mode, mask) : _mm256_set1_ps(1.0f);
    const __m256 vh = sh ? dw_load(sh, mode, mask) : _mm256_setzero_ps();
    const size_t xstep = (size_t)sw * c;                  /* input floats between output pixels */
    const size_t xrow = (size_t)k->in_w * c;

    int ox = 0;
    for (; ox < out_w && ox < k->xa; ox++) {              /* left border */
        const int ix0 = ox * sw - k->pad_l;
        const int kx0 = ix0 < 0 ? -ix0 : 0;
        const int kx1 = k->in_w - ix0 < KW ? k->in_w - ix0 : KW;
        const float *xr = kx0 < kx1 ? xrow0 + (size_t)(ix0 + kx0) * c : xrow0;
        dw_pixel(k, xr, wt, orow + ox * C, sc, sh, ky0, ky1, kx0, kx1, KW, mode, mask, gidx, 1);
    }
    for (; ox + 4 <= k->xb; ox += 4) {                    /* interior, 4 pixels */
        const float *xp0 = xrow0 + (size_t)(ox * sw - k->pad_l) * c;
        __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int ky = ky0; ky < ky1; ky++) {
            const float *xr = xp0 + (size_t)(ky - ky0) * xrow;
            const float *wr = wt + (size_t)ky * KW * C;
            EC_V8_UNROLL for (int kx = 0; kx < KW; kx++) {
                const __m256 wv = dw_load(wr + kx * C, mode, mask);
                const float *xp = xr + kx * c;
                a[0] = _mm256_fmadd_ps(dw_load_x(xp, mode, mask, gidx), wv, a[0]);
                a[1] = _mm256_fmadd_ps(dw_load_x(xp + xstep, mode, mask, gidx), wv, a[1]);
                a[2] = _mm256_fmadd_ps(dw_load_x(xp + 2 * xstep, mode, mask, gidx), wv, a[2]);
                a[3] = _mm256_fmadd_ps(dw_load_x(xp + 3 * xstep, mode, mask, gidx), wv, a[3]);
            }
        }
        EC_V8_UNROLL for (int u = 0; u < 4; u++) a[u] = _mm256_fmadd_ps(a[u], vs, vh);
        ec_v8_act_n(a, 4, k->act);
        EC_V8_UNROLL for (int u = 0; u < 4; u++) dw_store(orow + (ox + u) * C, a[u], mode, mask);
    }
    for (; ox < k->xb; ox++)                              /* interior leftovers */
        dw_pixel(k, xrow0 + (size_t)(ox * sw - k->pad_l) * c, wt, orow + ox * C, sc, sh, ky0, ky1, 0, KW, KW, mode,
                 mask, gidx, 1);
    for (; ox < out_w; ox++) {                            /* right border */
        const int ix0 = ox * sw - k->pad_l;
        const int kx0 = ix0 < 0 ? -ix0 : 0;
        const int kx1 = k->in_w - ix0 < KW ? k->in_w - ix0 : KW;
        const float *xr = kx0 < kx1 ? xrow0 + (size_t)(ix0 + kx0) * c : xrow0;
        dw_pixel(k, xr, wt, orow + ox * C, sc, sh, ky0, ky1, kx0, kx1, KW, mode, mask, gidx, 1);
    }
}

/* Output row oy, all channels, pixel-major: for each group of 4 interior pixels
 * every 8-channel tile in turn, so the input is read in whole contiguous pixels
 * (c floats). The tile-major order of dw_row_tile reads 8 channels of 19 pixels
 * per pass at a stride of c floats; with c = 512 or 1536 (strides of 2 and 6 KB)
 * those lines fall into a few L1 sets and evict each other. Same per-element
 * arithmetic as dw_row_tile (plain mode, c % 8 == 0, mult 1). */
/* One output pixel ox of row-major pass dw_row_pm, every channel tile (4 at a
 * time, then one by one), its taps clipped to the image (border columns;
 * interior leftovers get the full range). */
EC_V8_INLINE void dw_pm_pixel(const dw_ctx *k, const float *xrow0, float *orow, int ox, int ky0, int ky1,
                              const int KW)
{
    const size_t C = (size_t)k->C;
    const int ix0 = ox * k->sw - k->pad_l;
    const int kx0 = ix0 < 0 ? -ix0 : 0;
    const int kx1 = k->in_w - ix0 < KW ? k->in_w - ix0 : KW;
    const float *xr = kx0 < kx1 ? xrow0 + (size_t)(ix0 + kx0) * C : xrow0;
    const __m256i ones = _mm256_set1_epi32(-1), zero = _mm256_setzero_si256();
    float *o = orow + ox * C;
#define DW_PM_TILES(cb, NT)                                                                                   \
    dw_pixel(k, xr + (cb), k->w + (cb), o + (cb), k->scale ? k->scale + (cb) : NULL,                          \
             k->shift ? k->shift + (cb) : NULL, ky0, ky1, kx0, kx1, KW, DW_PLAIN, ones, zero, NT)
    int cb = 0;
    for (; cb + 32 <= k->C; cb += 32) DW_PM_TILES(cb, 4);
    for (; cb < k->C; cb += 8) DW_PM_TILES(cb, 1);
#undef DW_PM_TILES
}

EC_V8_INLINE void dw_row_pm(const dw_ctx *k, int oy, const int KW)
{
    const size_t C = (size_t)k->C;
    const int sw = k->sw, out_w = k->out_w;
    const int iy0 = oy * k->sh - k->pad_t;
    const int ky0 = iy0 < 0 ? -iy0 : 0;
    const int ky1 = k->in_h - iy0 < k->kh ? k->in_h - iy0 : k->kh;
    const float *xrow0 = k->x + (ky0 < ky1 ? (size_t)(iy0 + ky0) * k->in_w * C : 0);
    float *orow = k->out + (size_t)oy * out_w * C;
    const size_t xstep = (size_t)sw * C, xrow = (size_t)k->in_w * C;
    int ox = 0;
    for (; ox < out_w && ox < k->xa; ox++) dw_pm_pixel(k, xrow0, orow, ox, ky0, ky1, KW);   /* left border */
    for (; ox + 4 <= k->xb; ox += 4) {
        const float *xp0 = xrow0 + (size_t)(ox * sw - k->pad_l) * C;
        for (size_t cb = 0; cb < C; cb += 8) {
            __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
            for (int ky = ky0; ky < ky1; ky++) {
                const float *xr = xp0 + (size_t)(ky - ky0) * xrow + cb;
                const float *wr = k->w + (size_t)ky * KW * C + cb;
                EC_V8_UNROLL for (int kx = 0; kx < KW; kx++) {
                    const __m256 wv = _mm256_loadu_ps(wr + kx * C);
                    const float *xp = xr + kx * C;
                    a[0] = _mm256_fmadd_ps(_mm256_loadu_ps(xp), wv, a[0]);
                    a[1] = _mm256_fmadd_ps(_mm256_loadu_ps(xp + xstep), wv, a[1]);
                    a[2] = _mm256_fmadd_ps(_mm256_loadu_ps(xp + 2 * xstep), wv, a[2]);
                    a[3] = _mm256_fmadd_ps(_mm256_loadu_ps(xp + 3 * xstep), wv, a[3]);
                }
            }
            const __m256 vs = k->scale ? _mm256_loadu_ps(k->scale + cb) : _mm256_set1_ps(1.0f);
            const __m256 vh = k->shift ? _mm256_loadu_ps(k->shift + cb) : _mm256_setzero_ps();
            EC_V8_UNROLL for (int u = 0; u < 4; u++) a[u] = _mm256_fmadd_ps(a[u], vs, vh);
            ec_v8_act_n(a, 4, k->act);
            EC_V8_UNROLL for (int u = 0; u < 4; u++) _mm256_storeu_ps(orow + (ox + u) * C + cb, a[u]);
        }
    }
    for (; ox < out_w; ox++) dw_pm_pixel(k, xrow0, orow, ox, ky0, ky1, KW);   /* leftovers, right border */
}

static __attribute__((noinline)) void dw_row_pm_k3(const dw_ctx *k, int oy) { dw_row_pm(k, oy, 3); }
static __attribute__((noinline)) void dw_row_pm_k5(const dw_ctx *k, int oy) { dw_row_pm(k, oy, 5); }

/* Instantiations: the plain tile for kw = 3, 5 and any, plus the generic
 * masked and gathered tiles. noinline keeps each a separate, compact loop nest. */
static __attribute__((noinline)) void dw_tile_k3(const dw_ctx *k, int oy, int cb)
{
    dw_row_tile(k, oy, cb, 3, DW_PLAIN, _mm256_set1_epi32(-1), _mm256_setzero_si256());
}
static __attribute__((noinline)) void dw_tile_k5(const dw_ctx *k, int oy, int cb)
{
    dw_row_tile(k, oy, cb, 5, DW_PLAIN, _mm256_set1_epi32(-1), _mm256_setzero_si256());
}
static __attribute__((noinline)) void dw_tile_kany(const dw_ctx *k, int oy, int cb, int kw)
{
    dw_row_tile(k, oy, cb, kw, DW_PLAIN, _mm256_set1_epi32(-1), _mm256_setzero_si256());
}
static __attribute__((noinline)) void dw_tile_masked(const dw_ctx *k, int oy, int cb, int kw, __m256i mask)
{
    dw_row_tile(k, oy, cb, kw, DW_MASKED, mask, _mm256_setzero_si256());
}
static __attribute__((noinline)) void dw_tile_gather(const dw_ctx *k, int oy, int cb, int kw,
                                                     __m256i mask, __m256i gidx)
{
    dw_row_tile(k, oy, cb, kw, DW_GATHER, mask, gidx);
}

void ec_f32_dwconv__avx2(const ec_dwconv_params *p, const float *restrict x,
                         const float *restrict w, const float *restrict scale,
                         const float *restrict shift, float *restrict out, int y0, int y1)
{
    const ec_conv_geom *g = &p->g;
    dw_ctx k = {
        .x = x, .w = w, .scale = scale, .shift = shift, .out = out,
        .in_h = g->in_h, .in_w = g->in_w, .c = g->c, .C = g->c * p->mult, .out_w = g->out_w,
        .kh = g->kh, .sh = g->sh, .sw = g->sw, .pad_t = g->pad_t, .pad_l = g->pad_l,
        .mult = p->mult, .act = p->act,
    };
    /* Column ox is interior when ix0 = ox * sw - pad_l >= 0 and ix0 + kw <= in_w. */
    k.xa = (g->pad_l + g->sw - 1) / g->sw;
    const int room = g->in_w - g->kw + g->pad_l;          /* largest interior ox * sw */
    k.xb = room < 0 ? 0 : room / g->sw + 1;
    if (k.xb > g->out_w) k.xb = g->out_w;

    const int C = k.C, Cv = C & ~7;
    const __m256i tail = ec_v8_tail_mask(C - Cv);
    if (p->mult == 1 && (g->kw == 3 || g->kw == 5) && Cv == C) {   /* EfficientNet's depthwise convs */
        for (int oy = y0; oy < y1; oy++) {
            if (g->kw == 3) dw_row_pm_k3(&k, oy);
            else dw_row_pm_k5(&k, oy);
        }
        return;
    }
    for (int oy = y0; oy < y1; oy++) {
        if (p->mult != 1) {
            for (int cb = 0; cb < C; cb += 8) {
                int32_t idx[8];
                for (int j = 0; j < 8; j++) idx[j] = (cb + j) / p->mult;
                const __m256i gidx = _mm256_loadu_si256((const __m256i *)idx);
                dw_tile_gather(&k, oy, cb, g->kw, cb < Cv ? _mm256_set1_epi32(-1) : tail, gidx);
            }
            continue;
        }
        for (int cb = 0; cb < Cv; cb += 8) {
            if (g->kw == 3) dw_tile_k3(&k, oy, cb);
            else if (g->kw == 5) dw_tile_k5(&k, oy, cb);
            else dw_tile_kany(&k, oy, cb, g->kw);
        }
        if (Cv < C)
            dw_tile_masked(&k, oy, Cv, g->kw, tail);
    }
}

/* ---- backward: the data gradient (gather form, see dwconv.c) ------------------
 * Per dx row: the valid (ky, oy) pairs are listed once. Per pixel, the valid
 * (kx, ox) taps; each 8-channel tile of the pixel then sums its taps in (ky, kx)
 * order with one FMA chain, the tap weight rounded as w * scale first (as the
 * reference does). Interior pixels of a stride-1 row (every kx tap inside the
 * output) go four at a time: one weight vector feeds four chains. Depth
 * multiplier > 1 gathers lanes ci * mult + m (EfficientNet never has it). */
typedef struct {
    const float *w, *scale;      /* (kh, kw, C), (C) or NULL */
    const float *dout;           /* (out_h, out_w, C) */
    float *dx;                   /* (in_h, in_w, c) */
    int in_w, c, C, out_h, out_w, kh, kw, sh, sw, pad_t, pad_l, mult;
} dwb_ctx;

/* Tap weight vector w[tap, oc] * scale[oc] for oc at p (plain, masked) or
 * gathered at p + gidx. */
EC_V8_INLINE __m256 dwb_wload(const float *wp, const float *sp, const int mode, __m256i mask, __m256i gidx)
{
    __m256 v = dw_load_x(wp, mode, mask, gidx);
    if (sp) v = _mm256_mul_ps(v, dw_load_x(sp, mode, mask, gidx));
    return v;
}

/* One dx pixel, channels [cb, cb + 8): nt taps, dout offsets doff[t] (floats)
 * and tap indices tap[t] = ky * kw + kx, in (ky, kx) order. */
EC_V8_INLINE void dwb_pixel(const dwb_ctx *k, const size_t *doff, const int *tap, int nt, float *d, int cb,
                            const int mode, __m256i mask, __m256i gidx)
{
    const size_t C = (size_t)k->C;
    __m256 acc = _mm256_setzero_ps();
    if (mode == DW_GATHER) {
        /* lanes ci = cb + j read oc = ci * mult + m: gidx holds (cb + j) * mult */
        for (int t = 0; t < nt; t++)
            for (int m = 0; m < k->mult; m++) {
                const __m256 wv = dwb_wload(k->w + tap[t] * C + m, k->scale ? k->scale + m : NULL, mode, mask, gidx);
                acc = _mm256_fmadd_ps(dw_load_x(k->dout + doff[t] + m, mode, mask, gidx), wv, acc);
            }
    } else {
        for (int t = 0; t < nt; t++) {
            const __m256 wv = dwb_wload(k->w + tap[t] * C + cb, k->scale ? k->scale + cb : NULL, mode, mask, gidx);
            acc = _mm256_fmadd_ps(dw_load_x(k->dout + doff[t] + cb, mode, mask, gidx), wv, acc);
        }
    }
    dw_store(d + cb, acc, mode == DW_PLAIN ? DW_PLAIN : DW_MASKED, mask);
}

/* All channel tiles of one dx pixel with its taps listed. */
static void dwb_pixel_all(const dwb_ctx *k, const size_t *doff, const int *tap, int nt, float *d)
{
    const int c = k->c, cv = c & ~7;
    const __m256i ones = _mm256_set1_epi32(-1), zero = _mm256_setzero_si256();
    if (k->mult != 1) {
        for (int cb = 0; cb < c; cb += 8) {
            int32_t idx[8];
            for (int j = 0; j < 8; j++) idx[j] = (cb + j) * k->mult;
            dwb_pixel(k, doff, tap, nt, d, cb, DW_GATHER, cb < cv ? ones : ec_v8_tail_mask(c - cv),
                      _mm256_loadu_si256((const __m256i *)idx));
        }
        return;
    }
    for (int cb = 0; cb < cv; cb += 8) dwb_pixel(k, doff, tap, nt, d, cb, DW_PLAIN, ones, zero);
    if (cv < c) dwb_pixel(k, doff, tap, nt, d, cv, DW_MASKED, ec_v8_tail_mask(c - cv), zero);
}

/* Four interior pixels ix .. ix + 3 of a stride-1 row, channels [cb, cb + 8):
 * tap (ky, kx) of pixel ix + u reads dout pixel (oy[ky], ix + u + pad_l - kx). */
EC_V8_INLINE void dwb_quad(const dwb_ctx *k, const int *kys, const int *oys, int ny, int ix, float *d, int cb,
                           const int mode, __m256i mask)
{
    const size_t C = (size_t)k->C;
    const __m256i zero = _mm256_setzero_si256();
    __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int t = 0; t < ny; t++) {
        const float *drow = k->dout + (size_t)oys[t] * k->out_w * C + cb;
        for (int kx = 0; kx < k->kw; kx++) {
            const __m256 wv = dwb_wload(k->w + ((size_t)kys[t] * k->kw + kx) * C + cb,
                                        k->scale ? k->scale + cb : NULL, mode, mask, zero);
            const float *dp = drow + (size_t)(ix + k->pad_l - kx) * C;
            EC_V8_UNROLL for (int u = 0; u < 4; u++)
                a[u] = _mm256_fmadd_ps(dw_load(dp + u * C, mode, mask), wv, a[u]);
        }
    }
    EC_V8_UNROLL for (int u = 0; u < 4; u++) dw_store(d + (size_t)u * k->c + cb, a[u], mode, mask);
}

static __attribute__((noinline)) void dwb_quad_all(const dwb_ctx *k, const int *kys, const int *oys, int ny,
                                                   int ix, float *d)
{
    const int c = k->c, cv = c & ~7;
    for (int cb = 0; cb < cv; cb += 8) dwb_quad(k, kys, oys, ny, ix, d, cb, DW_PLAIN, _mm256_set1_epi32(-1));
    if (cv < c) dwb_quad(k, kys, oys, ny, ix, d, cv, DW_MASKED, ec_v8_tail_mask(c - cv));
}

void ec_f32_dwconv_backward__avx2(const ec_dwconv_params *p, const float *restrict w,
                                  const float *restrict scale, const float *restrict dout,
                                  float *restrict dx, int y0, int y1)
{
    const ec_conv_geom *g = &p->g;
    const dwb_ctx k = {
        .w = w, .scale = scale, .dout = dout, .dx = dx, .in_w = g->in_w, .c = g->c, .C = g->c * p->mult,
        .out_h = g->out_h, .out_w = g->out_w, .kh = g->kh, .kw = g->kw, .sh = g->sh, .sw = g->sw,
        .pad_t = g->pad_t, .pad_l = g->pad_l, .mult = p->mult,
    };
    const size_t C = (size_t)k.C;
    /* stride-1 interior columns [xa, xb): ox = ix + pad_l - kx inside for every kx */
    int xa = g->kw - 1 - g->pad_l, xb = g->out_w - g->pad_l;
    if (xa < 0) xa = 0;
    if (xb > g->in_w) xb = g->in_w;
    const int quads = g->sw == 1 && p->mult == 1;
    enum { MAXT = 64 };                  /* taps listed per pixel (8x8); larger kernels: the reference */
    if (g->kh > MAXT || g->kh * g->kw > MAXT) {
        ec_f32_dwconv_backward__ref(p, w, scale, dout, dx, y0, y1);
        return;
    }
    int kys[MAXT], oys[MAXT], tap[MAXT];
    size_t doff[MAXT];
    for (int iy = y0; iy < y1; iy++) {
        int ny = 0;
        for (int ky = 0; ky < g->kh; ky++) {
            const int t = iy + g->pad_t - ky;
            if (t < 0 || t % g->sh || t / g->sh >= g->out_h) continue;
            kys[ny] = ky;
            oys[ny++] = t / g->sh;
        }
        float *drow = dx + (size_t)iy * g->in_w * g->c;
        int ix = 0;
        while (ix < g->in_w) {
            if (quads && ix >= xa && ix + 4 <= xb) {
                dwb_quad_all(&k, kys, oys, ny, ix, drow + (size_t)ix * g->c);
                ix += 4;
                continue;
            }
            /* one pixel (a border, a stride-2 row, mult > 1): its taps in order */
            int nt = 0;
            float *d = drow + (size_t)ix * g->c;
            for (int t = 0; t < ny; t++)
                for (int kx = 0; kx < g->kw; kx++) {
                    const int u = ix + g->pad_l - kx;
                    if (u < 0 || u % g->sw || u / g->sw >= g->out_w) continue;
                    doff[nt] = ((size_t)oys[t] * g->out_w + u / g->sw) * C;
                    tap[nt++] = kys[t] * g->kw + kx;
                }
            dwb_pixel_all(&k, doff, tap, nt, d);
            ix++;
        }
    }
}
