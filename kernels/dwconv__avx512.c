/* dwconv__avx512.c - depthwise convolution, AVX-512, fused scale/shift + act,
 * optionally the SE squeeze (per-row channel sums of the output) fused too.
 *
 * Every output element is one FMA chain over its taps in (ky, kx) order from
 * 0, then act(acc * scale + shift) with one FMA: the same arithmetic whether
 * the pixel is computed alone (borders, leftovers) or in a group, so the
 * result does not depend on the row split or on how pixels group.
 *
 * Loop order (multiplier 1): output row -> group of 8 output pixels -> tile of
 * 16 channels (the last one under a k-mask when C % 16 != 0). Pixel-major
 * keeps the reads on whole contiguous pixels (the tile-major order's stride of
 * C floats puts a pass's lines into a few L1 sets at C = 512 or 1536; see
 * dwconv__avx2.c). A group of 8 gives 8 independent chains per tile, enough to
 * fill two FMA pipes of latency 4 (then one group of 4, then single pixels
 * for the interior leftovers). For stride 1 the group's kh * (8 + kw - 1)
 * input vectors are each loaded once and reused by up to kw outputs (a sliding
 * window in registers: 8 + 2 inputs + 3 weights + 8 accumulators for 3x3);
 * for stride 2 the inputs are memory operands of the FMAs. Vertical padding is
 * resolved per row (taps [ky0, ky1)), horizontal only in the few border
 * columns, which clip [kx0, kx1); the interior runs with no bounds checks.
 * kw = 3 and 5 with stride 1 or 2 (all of EfficientNet) are compile-time
 * constants in their own instantiation.
 *
 * Depth multiplier > 1 gathers the input lanes (oc / mult); EfficientNet never
 * uses it, so that path is correct rather than fast. */
#include "kernels/vmath_avx512.h"

typedef struct {
    const float *x;              /* (in_h, in_w, c) */
    const float *w;              /* (kh, kw, C) with C = c * mult */
    const float *scale, *shift;  /* (C) or NULL */
    float *out;                  /* (out_h, out_w, C) */
    float *rowsum;               /* (out_h, C) or NULL: SE squeeze, sum over ox of out */
    int in_h, in_w, c, C, out_w, kh, kw, sh, sw, pad_t, pad_l, mult, act;
    int xa, xb;                  /* interior output columns [xa, xb) */
} dw5_ctx;

#define DW5_NP 8                 /* pixels per interior group */

/* The input vector of channel tile cb at pixel pointer px (pointing at channel
 * 0 of the pixel): plain or masked load, or a gather for mult > 1 (lane j reads
 * input channel (cb + j) / mult). */
EC_V16_INLINE __m512 dw5_x(const dw5_ctx *k, const float *px, int cb, __mmask16 m, const int gather, __m512i gidx)
{
    if (gather) return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, gidx, px, 4);
    return _mm512_maskz_loadu_ps(m, px + cb);
}

/* acc -> act(acc * scale + shift) for n vectors of tile cb, stored at o[i] +
 * cb; with rowsum, each output is added to the row's running channel sum (in
 * ox order: callers go left to right). */
EC_V16_INLINE void dw5_finish(const dw5_ctx *k, __m512 *acc, const int n, float *const *o, int cb, __mmask16 m,
                              float *rs)
{
    const __m512 vs = k->scale ? _mm512_maskz_loadu_ps(m, k->scale + cb) : _mm512_set1_ps(1.0f);
    const __m512 vh = k->shift ? _mm512_maskz_loadu_ps(m, k->shift + cb) : _mm512_setzero_ps();
    EC_V16_UNROLL for (int i = 0; i < n; i++) acc[i] = _mm512_fmadd_ps(acc[i], vs, vh);
    ec_v16_act_n(acc, n, k->act);
    EC_V16_UNROLL for (int i = 0; i < n; i++) _mm512_mask_storeu_ps(o[i] + cb, m, acc[i]);
    if (rs) {
        __m512 s = _mm512_maskz_loadu_ps(m, rs + cb);
        EC_V16_UNROLL for (int i = 0; i < n; i++) s = _mm512_add_ps(s, acc[i]);
        _mm512_mask_storeu_ps(rs + cb, m, s);
    }
}

/* NT channel tiles [cb, cb + 16 NT) of one pixel, taps [ky0, ky1) x [kx0,
 * kx1); xr points at channel 0 of input pixel (iy0 + ky0, ix0 + kx0). The NT
 * chains are independent: one tile alone waits on its FMA latency at every tap
 * and on the activation's polynomial, and the border columns (2 of the 10 of a
 * 10x10 map) then cost more than the 8 interior ones. MASKED: one tile, the
 * last, partial one or a gathered one (NT 1, loads under m). */
EC_V16_INLINE void dw5_pixel_tiles(const dw5_ctx *k, const float *xr, float *o, int cb, int ky0, int ky1, int kx0,
                                   int kx1, float *rs, const int NT, const int MASKED, __mmask16 m, const int gather,
                                   __m512i gidx)
{
    const size_t C = (size_t)k->C, c = (size_t)k->c, xrow = (size_t)k->in_w * c;
#define DW5_LT(ptr) (MASKED ? _mm512_maskz_loadu_ps(m, ptr) : _mm512_loadu_ps(ptr))
    __m512 acc[8];
    EC_V16_UNROLL for (int j = 0; j < NT; j++) acc[j] = _mm512_setzero_ps();
    const float *xk = xr;
    for (int ky = ky0; ky < ky1; ky++, xk += xrow) {
        const float *wr = k->w + ((size_t)ky * k->kw + kx0) * C + cb;
        for (int t = 0; t < kx1 - kx0; t++)
            EC_V16_UNROLL for (int j = 0; j < NT; j++) {
                const __m512 xv = gather ? dw5_x(k, xk + t * c, cb, m, 1, gidx) : DW5_LT(xk + t * c + cb + 16 * j);
                acc[j] = _mm512_fmadd_ps(xv, DW5_LT(wr + t * C + 16 * j), acc[j]);
            }
    }
    EC_V16_UNROLL for (int j = 0; j < NT; j++) {
        const __m512 vs = k->scale ? DW5_LT(k->scale + cb + 16 * j) : _mm512_set1_ps(1.0f);
        const __m512 vh = k->shift ? DW5_LT(k->shift + cb + 16 * j) : _mm512_setzero_ps();
        acc[j] = _mm512_fmadd_ps(acc[j], vs, vh);
    }
#undef DW5_LT
    ec_v16_act_n(acc, NT, k->act);
    EC_V16_UNROLL for (int j = 0; j < NT; j++) {
        const __mmask16 mj = MASKED ? m : (__mmask16)0xffff;
        _mm512_mask_storeu_ps(o + cb + 16 * j, mj, acc[j]);
        if (rs) _mm512_mask_storeu_ps(rs + cb + 16 * j, mj, _mm512_add_ps(_mm512_maskz_loadu_ps(mj, rs + cb + 16 * j), acc[j]));
    }
}

/* One output pixel, all channel tiles, taps [ky0, ky1) x [kx0, kx1); xr points
 * at channel 0 of input pixel (iy0 + ky0, ix0 + kx0). Tiles go 8, then 4 at a
 * time (independent chains), then one by one (gathered ones always). */
EC_V16_INLINE void dw5_pixel(const dw5_ctx *k, const float *xr, float *o, int ky0, int ky1, int kx0, int kx1,
                             float *rs, const int gather)
{
    const __m512i none = _mm512_setzero_si512();
    int cb = 0;
    if (gather) {
        for (; cb < k->C; cb += 16) {
            int32_t idx[16];
            for (int j = 0; j < 16; j++) idx[j] = (cb + j) / k->mult;
            dw5_pixel_tiles(k, xr, o, cb, ky0, ky1, kx0, kx1, rs, 1, 1, ec_v16_tail_mask(k->C - cb), 1,
                            _mm512_loadu_si512(idx));
        }
        return;
    }
    for (; cb + 8 * 16 <= k->C; cb += 8 * 16) dw5_pixel_tiles(k, xr, o, cb, ky0, ky1, kx0, kx1, rs, 8, 0, 0xffff, 0, none);
    for (; cb + 4 * 16 <= k->C; cb += 4 * 16) dw5_pixel_tiles(k, xr, o, cb, ky0, ky1, kx0, kx1, rs, 4, 0, 0xffff, 0, none);
    for (; cb + 16 <= k->C; cb += 16) dw5_pixel_tiles(k, xr, o, cb, ky0, ky1, kx0, kx1, rs, 1, 0, 0xffff, 0, none);
    if (cb < k->C) dw5_pixel_tiles(k, xr, o, cb, ky0, ky1, kx0, kx1, rs, 1, 1, ec_v16_tail_mask(k->C - cb), 0, none);
}

/* NP interior pixels from ox (every tap inside the image), channel tile cb;
 * MASKED: the last, partial tile (loads under m); SLIDE: KW and SW are
 * compile-time constants whose window fits the registers (3x3 stride 1 and
 * 2: 10 or 17 inputs + 3 weights + 8 accumulators; 5x5 stride 1: 12 + 5 + 8). xp0: channel 0 of input
 * pixel (iy0 + ky0, ox * sw - pad_l). */
EC_V16_INLINE void dw5_group(const dw5_ctx *k, const float *xp0, float *orow, int ox, int cb, int ky0, int ky1,
                             const int NP, const int KW, const int SW, const int SLIDE, const int MASKED, __mmask16 m,
                             float *rs)
{
    const size_t C = (size_t)k->C, xrow = (size_t)k->in_w * C;
#define DW5_LD(ptr) (MASKED ? _mm512_maskz_loadu_ps(m, ptr) : _mm512_loadu_ps(ptr))
    __m512 acc[DW5_NP];
    EC_V16_UNROLL for (int p = 0; p < NP; p++) acc[p] = _mm512_setzero_ps();
    for (int ky = ky0; ky < ky1; ky++) {
        const float *xr = xp0 + (size_t)(ky - ky0) * xrow + cb;
        const float *wr = k->w + (size_t)ky * KW * C + cb;
        if (SLIDE) {
            /* sliding window: input j feeds outputs p = (j - kx) / SW. The empty
             * asm pins each loaded vector in a register: left alone, GCC folds the
             * loads back into the FMAs, loading each input KW times; with C a
             * multiple of 1024 all of a group's pixels fall into the same L1 sets
             * (a stride of 4 KB), and the repeated loads miss (measured 2.7x slower
             * at C = 1024 than at C = 1008). */
            __m512 xv[(DW5_NP - 1) * 2 + 5], wv[5];
            EC_V16_UNROLL for (int j = 0; j < (NP - 1) * SW + KW; j++) {
                xv[j] = DW5_LD(xr + j * C);
                __asm__("" : "+v"(xv[j]));
            }
            EC_V16_UNROLL for (int kx = 0; kx < KW; kx++) wv[kx] = DW5_LD(wr + kx * C);
            EC_V16_UNROLL for (int kx = 0; kx < KW; kx++)
                EC_V16_UNROLL for (int p = 0; p < NP; p++)
                    acc[p] = _mm512_fmadd_ps(xv[p * SW + kx], wv[kx], acc[p]);
        } else {
            const size_t xstep = (size_t)SW * C;
            EC_V16_UNROLL for (int kx = 0; kx < KW; kx++) {
                const __m512 wv = DW5_LD(wr + kx * C);
                EC_V16_UNROLL for (int p = 0; p < NP; p++)
                    acc[p] = _mm512_fmadd_ps(DW5_LD(xr + p * xstep + kx * C), wv, acc[p]);
            }
        }
    }
#undef DW5_LD
    float *op[DW5_NP];
    EC_V16_UNROLL for (int p = 0; p < NP; p++) op[p] = orow + (size_t)(ox + p) * C;
    dw5_finish(k, acc, NP, op, cb, m, rs);
}

/* Groups of NP pixels at ox, every channel tile. */
EC_V16_INLINE void dw5_groups(const dw5_ctx *k, const float *xrow0, float *orow, int ox, int ky0, int ky1,
                              const int NP, const int KW, const int SW, const int SLIDE, float *rs)
{
    const float *xp0 = xrow0 + (size_t)(ox * SW - k->pad_l) * k->C;
    int cb = 0;
    for (; cb + 16 <= k->C; cb += 16) dw5_group(k, xp0, orow, ox, cb, ky0, ky1, NP, KW, SW, SLIDE, 0, (__mmask16)0xffff, rs);
    if (cb < k->C) dw5_group(k, xp0, orow, ox, cb, ky0, ky1, NP, KW, SW, SLIDE, 1, ec_v16_tail_mask(k->C - cb), rs);
}

/* One border or leftover pixel ox of row oy (taps clipped to the image). */
EC_V16_INLINE void dw5_edge(const dw5_ctx *k, const float *xrow0, float *orow, int ox, int ky0, int ky1, float *rs,
                            const int gather)
{
    const int ix0 = ox * k->sw - k->pad_l;
    const int kx0 = ix0 < 0 ? -ix0 : 0;
    const int kx1 = k->in_w - ix0 < k->kw ? k->in_w - ix0 : k->kw;
    const float *xr = kx0 < kx1 ? xrow0 + (size_t)(ix0 + kx0) * k->c : xrow0;
    dw5_pixel(k, xr, orow + (size_t)ox * k->C, ky0, ky1, kx0, kx1, rs, gather);
}

/* Output row oy: left border, interior groups, interior leftovers and right
 * border, left to right (the order the row sums add in). */
EC_V16_INLINE void dw5_row(const dw5_ctx *k, int oy, const int KW, const int SW, const int SLIDE, const int gather)
{
    const size_t C = (size_t)k->C;
    const int iy0 = oy * k->sh - k->pad_t;
    const int ky0 = iy0 < 0 ? -iy0 : 0;
    const int ky1 = k->in_h - iy0 < k->kh ? k->in_h - iy0 : k->kh;
    /* First input row used (iy0 + ky0); a pointer only formed inside the image. */
    const float *xrow0 = k->x + (ky0 < ky1 ? (size_t)(iy0 + ky0) * k->in_w * k->c : 0);
    float *orow = k->out + (size_t)oy * k->out_w * C;
    float *rs = k->rowsum ? k->rowsum + (size_t)oy * C : NULL;
    if (rs)
        for (int cb = 0; cb < k->C; cb += 16) _mm512_mask_storeu_ps(rs + cb, ec_v16_tail_mask(k->C - cb), _mm512_setzero_ps());
    int ox = 0;
    for (; ox < k->out_w && ox < k->xa; ox++) dw5_edge(k, xrow0, orow, ox, ky0, ky1, rs, gather);
    if (!gather) {
        for (; ox + DW5_NP <= k->xb; ox += DW5_NP) dw5_groups(k, xrow0, orow, ox, ky0, ky1, DW5_NP, KW, SW, SLIDE, rs);
        if (ox + 4 <= k->xb) {
            dw5_groups(k, xrow0, orow, ox, ky0, ky1, 4, KW, SW, SLIDE, rs);
            ox += 4;
        }
    }
    for (; ox < k->out_w; ox++) dw5_edge(k, xrow0, orow, ox, ky0, ky1, rs, gather);
}

static __attribute__((noinline)) void dw5_rows_k3s1(const dw5_ctx *k, int y0, int y1)
{
    for (int oy = y0; oy < y1; oy++) dw5_row(k, oy, 3, 1, 1, 0);
}
static __attribute__((noinline)) void dw5_rows_k3s2(const dw5_ctx *k, int y0, int y1)
{
    for (int oy = y0; oy < y1; oy++) dw5_row(k, oy, 3, 2, 1, 0);
}
static __attribute__((noinline)) void dw5_rows_k5s1(const dw5_ctx *k, int y0, int y1)
{
    for (int oy = y0; oy < y1; oy++) dw5_row(k, oy, 5, 1, 1, 0);
}
static __attribute__((noinline)) void dw5_rows_k5s2(const dw5_ctx *k, int y0, int y1)
{
    for (int oy = y0; oy < y1; oy++) dw5_row(k, oy, 5, 2, 0, 0);
}
static __attribute__((noinline)) void dw5_rows_any(const dw5_ctx *k, int y0, int y1)
{
    for (int oy = y0; oy < y1; oy++) dw5_row(k, oy, k->kw, k->sw, 0, 0);
}
static __attribute__((noinline)) void dw5_rows_gather(const dw5_ctx *k, int y0, int y1)
{
    for (int oy = y0; oy < y1; oy++) dw5_row(k, oy, k->kw, k->sw, 0, 1);
}

static void dw5_run(const ec_dwconv_params *p, const float *x, const float *w, const float *scale,
                    const float *shift, float *out, float *rowsum, int y0, int y1)
{
    const ec_conv_geom *g = &p->g;
    dw5_ctx k = {
        .x = x, .w = w, .scale = scale, .shift = shift, .out = out, .rowsum = rowsum,
        .in_h = g->in_h, .in_w = g->in_w, .c = g->c, .C = g->c * p->mult, .out_w = g->out_w,
        .kh = g->kh, .kw = g->kw, .sh = g->sh, .sw = g->sw, .pad_t = g->pad_t, .pad_l = g->pad_l,
        .mult = p->mult, .act = p->act,
    };
    /* Column ox is interior when ix0 = ox * sw - pad_l >= 0 and ix0 + kw <= in_w. */
    k.xa = (g->pad_l + g->sw - 1) / g->sw;
    const int room = g->in_w - g->kw + g->pad_l;          /* largest interior ox * sw */
    k.xb = room < 0 ? 0 : room / g->sw + 1;
    if (k.xb > g->out_w) k.xb = g->out_w;
    if (p->mult != 1) dw5_rows_gather(&k, y0, y1);
    else if (g->kw == 3 && g->sw == 1) dw5_rows_k3s1(&k, y0, y1);
    else if (g->kw == 3 && g->sw == 2) dw5_rows_k3s2(&k, y0, y1);
    else if (g->kw == 5 && g->sw == 1) dw5_rows_k5s1(&k, y0, y1);
    else if (g->kw == 5 && g->sw == 2) dw5_rows_k5s2(&k, y0, y1);
    else dw5_rows_any(&k, y0, y1);
}

void ec_f32_dwconv__avx512(const ec_dwconv_params *p, const float *x, const float *w, const float *scale,
                           const float *shift, float *out, int y0, int y1)
{
    dw5_run(p, x, w, scale, shift, out, NULL, y0, y1);
}

void ec_f32_dwconv_rowsum__avx512(const ec_dwconv_params *p, const float *x, const float *w, const float *scale,
                                  const float *shift, float *out, float *rowsum, int y0, int y1)
{
    dw5_run(p, x, w, scale, shift, out, rowsum, y0, y1);
}
