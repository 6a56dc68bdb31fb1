/* kernels.h - hand-written compute kernels, NHWC float32.
 *
 * kernels/ knows nothing of graphs or files. Each optimized kernel has a scalar
 * reference twin (suffix __ref) that tests compare it with; the unsuffixed name
 * dispatches at run time to the best variant this CPU has: __avx512 when
 * ec_cpu_has_avx512(), else __avx2 when ec_cpu_has_avx2(), else __ref (cpu.c).
 * Row ranges [y0, y1) let the engine split work across threads.
 */
#ifndef EFFCAM_KERNELS_H
#define EFFCAM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Same numbering as ecm_act in engine/ecm_format.h. */
enum ec_act {
    EC_ACT_LINEAR = 0, EC_ACT_RELU = 1, EC_ACT_RELU6 = 2, EC_ACT_SIGMOID = 3,
    EC_ACT_SOFTMAX = 4, EC_ACT_SWISH = 5, EC_ACT_TANH = 6, EC_ACT_GELU = 7
};

/* ---- float16 ------------------------------------------------------------- */
float ec_f16_to_f32(uint16_t h);
uint16_t ec_f32_to_f16(float f);                         /* round to nearest even */
void ec_f16_to_f32_n(const uint16_t *src, float *dst, size_t n);       /* dispatch (F16C) */
void ec_f16_to_f32_n__ref(const uint16_t *src, float *dst, size_t n);
void ec_f32_to_f16_n(const float *src, uint16_t *dst, size_t n);       /* dispatch (F16C), RNE */
void ec_f32_to_f16_n__ref(const float *src, uint16_t *dst, size_t n);
/* 1 if any of n values (float16 bits if f16, else float32) is an infinity or a
 * NaN (all exponent bits set), else 0; p need not be aligned. The loader's
 * check of every weight tensor on first use (engine/model.c). */
int ec_any_nonfinite(const void *p, size_t n, int f16);
int ec_any_nonfinite__ref(const void *p, size_t n, int f16);
int ec_any_nonfinite__avx2(const void *p, size_t n, int f16);
int ec_any_nonfinite__avx512(const void *p, size_t n, int f16);
/* dst[r, j] = f16(src[r, j]) * scale[j] for a (rows, cols) matrix: a conv kernel
 * (K, N) widened with its BN scale folded into each output column (one rounding,
 * the product; scale NULL = plain widening). */
void ec_f16_to_f32_scale_cols(const uint16_t *src, float *dst, size_t rows, int cols, const float *scale);
void ec_f16_to_f32_scale_cols__ref(const uint16_t *src, float *dst, size_t rows, int cols, const float *scale);

/* ---- process set-up, checksums ---------------------------------------------- */
/* OpenBLAS (blas.c), opened with dlopen by the first of these calls (set to one
 * thread, its idle server threads stopped; once per process). ec_blas_sgemm is
 * its row-major sgemm without transposes (alpha 1), -1 if no OpenBLAS could be
 * opened. */
int ec_blas_sgemm(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
const char *ec_blas_core(void);                          /* OpenBLAS's core type name */
const char *ec_blas_config(void);                        /* OpenBLAS's build configuration */
/* zlib's CRC-32 of b[0, n) continuing from crc (0 to start): carry-less
 * multiplication where the CPU has it (512-bit VPCLMULQDQ with AVX-512, else
 * 128-bit PCLMULQDQ), zlib's table code (__ref) otherwise. */
uint32_t ec_crc32_update(uint32_t crc, const unsigned char *b, size_t n);
uint32_t ec_crc32_update__ref(uint32_t crc, const unsigned char *b, size_t n);
uint32_t ec_crc32_update__clmul(uint32_t crc, const unsigned char *b, size_t n);
int ec_cpu_has_clmul(void);                              /* PCLMULQDQ + SSE4.1 usable */
uint32_t ec_crc32_update__vpclmul(uint32_t crc, const unsigned char *b, size_t n);
int ec_cpu_has_vpclmul(void);                            /* VPCLMULQDQ + AVX-512 in use */

/* ---- GEMM -----------------------------------------------------------------
 * The one wrapper around OpenBLAS's sgemm (the CPUs without AVX2; the
 * reference twin where no OpenBLAS can be opened), row-major, no transposes:
 * C[M,N] = A[M,K] @ B[K,N] + beta * C. */
void ec_gemm(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc);
void ec_gemm__ref(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                  float beta, float *C, int ldc);

/* ---- GEMM on packed weights (pgemm.c) ------------------------------------
 * ec_pack_b packs column panels [p0, p1) of B[K, N] (fp16 if w_f16, else fp32;
 * times scale[n] when scale is not NULL) into bp, EC_PG_NR columns per panel:
 * B[k, 16p + j] at bp[(p * K + k) * 16 + j], zero past N; bp holds
 * ec_pack_b_floats(K, N). ec_gemm_packed writes rows [m0, m1) and panels
 * [p0, p1) of C[M, N] = act(shift + A[M, K] @ B) (shift [N] or NULL), each
 * element summed in k order from its shift, so any split of rows and panels
 * gives the same bits. */
#define EC_PG_NR 16
#define EC_PG_MR 6
#define EC_PG_KC 256      /* k block: a 16-column panel block is 16 KB, in L1 */
#define EC_PG_MC 96       /* row block: with EC_PG_KC, 96 KB of A, in L2 */
size_t ec_pack_b_floats(int K, int N);
void ec_pack_b(const void *w, int w_f16, const float *scale, int K, int N, int p0, int p1, float *bp);
void ec_pack_b__ref(const void *w, int w_f16, const float *scale, int K, int N, int p0, int p1, float *bp);
void ec_gemm_packed(int M, int N, int K, const float *A, int lda, const float *Bp, const float *shift, int act,
                    float *C, int ldc, int m0, int m1, int p0, int p1);
void ec_gemm_packed__ref(int M, int N, int K, const float *A, int lda, const float *Bp, const float *shift,
                         int act, float *C, int ldc, int m0, int m1, int p0, int p1);

/* SE excite folded into the weights: ec_pack_b's values times se[k] (a second
 * rounding), so a GEMM on them computes (A * se) @ B without the excite pass
 * over A (the SE block's output, x * se per channel, is never written). */
void ec_pack_b_se(const void *w, int w_f16, const float *scale, const float *se, int K, int N, int p0, int p1,
                  float *bp);
void ec_pack_b_se__ref(const void *w, int w_f16, const float *scale, const float *se, int K, int N, int p0, int p1,
                       float *bp);
/* ec_gemm_packed on fp16 weights W[K][N] (a conv's HWIO kernel) as they are:
 * each k block of each panel group is widened (times scale[n], and se[k] when
 * se is not NULL) into a small buffer in L1 just before use, so no layer-sized
 * float copy of the kernel is written and read back. Same values as ec_pack_b
 * / ec_pack_b_se, so bit-identical to them followed by ec_gemm_packed, for any
 * split of rows [m0, m1) and panels [p0, p1). Best for few rows (the 19x19 and
 * 10x10 stages, whose kernels are the largest): the weights are re-read per
 * row block of EC_PG_MC (AVX2) or 112 (AVX-512) rows. */
void ec_gemm_w16(int M, int N, int K, const float *A, int lda, const uint16_t *W, const float *scale, const float *se,
                 const float *shift, int act, float *C, int ldc, int m0, int m1, int p0, int p1);
void ec_gemm_w16__ref(int M, int N, int K, const float *A, int lda, const uint16_t *W, const float *scale,
                      const float *se, const float *shift, int act, float *C, int ldc, int m0, int m1, int p0, int p1);

/* ---- im2col for k x k convolution ----------------------------------------
 * Rows [p0, p1) of the im2col matrix of x(in_h, in_w, c): row p is output pixel
 * (p / out_w, p % out_w), columns (ky, kx, ci) in HWIO order, zero for padding.
 * col is (p1 - p0) x (kh * kw * c). */
typedef struct {
    int in_h, in_w, c;
    int out_h, out_w;
    int kh, kw, sh, sw;
    int pad_t, pad_l;       /* bottom/right padding is implied by out_h/out_w */
} ec_conv_geom;

void ec_f32_im2col(const ec_conv_geom *g, const float *x, int p0, int p1, float *col);

/* ---- per-channel epilogue --------------------------------------------------
 * x[rows, c] = act(x * scale[c] + shift[c]) in place; scale/shift may be NULL
 * (1 and 0). This is how BN (folded into scale/shift) and a conv bias are
 * applied after a GEMM. Softmax is not allowed here. */
void ec_f32_affine_act(float *x, size_t rows, int c, const float *scale, const float *shift, int act);
void ec_f32_affine_act__ref(float *x, size_t rows, int c, const float *scale, const float *shift, int act);

/* y[rows, c] = act(x) (x == y allowed); softmax normalises each row over c. */
void ec_f32_act(const float *x, float *y, size_t rows, int c, int act);
void ec_f32_act__ref(const float *x, float *y, size_t rows, int c, int act);

/* ---- depthwise convolution -------------------------------------------------
 * out(out_h, out_w, c*mult) rows [y0, y1) = act((x * w)(...) * scale + shift).
 * w is (kh, kw, c, mult) float32; scale/shift per output channel, may be NULL
 * (BN folded, or a bias in shift). */
typedef struct {
    ec_conv_geom g;
    int mult;
    int act;
} ec_dwconv_params;

void ec_f32_dwconv(const ec_dwconv_params *p, const float *x, const float *w,
                   const float *scale, const float *shift, float *out, int y0, int y1);
void ec_f32_dwconv__ref(const ec_dwconv_params *p, const float *x, const float *w,
                        const float *scale, const float *shift, float *out, int y0, int y1);

/* The same, plus the SE squeeze fused: rowsum (out_h, c * mult) gets, for each
 * row written, the sum over ox (in ox order, in float) of the activated
 * outputs; ec_f32_rowsum_mean then gives the per-channel mean over all rows
 * (rows added in order), independent of how rows were split. Accuracy: about
 * (out_w + out_h) ulp of the mean of |out| (ec_f32_gap: 64 + hw / 64). */
void ec_f32_dwconv_rowsum(const ec_dwconv_params *p, const float *x, const float *w, const float *scale,
                          const float *shift, float *out, float *rowsum, int y0, int y1);
void ec_f32_dwconv_rowsum__ref(const ec_dwconv_params *p, const float *x, const float *w, const float *scale,
                               const float *shift, float *out, float *rowsum, int y0, int y1);
void ec_f32_rowsum_mean(const float *rowsum, int rows, int c, size_t hw, float *s);

/* ---- direct convolution (few output channels) -------------------------------
 * out(out_h, out_w, cout) rows [y0, y1) = act(conv(x, w) * scale + shift), w is
 * (kh, kw, cin, cout) HWIO float32, scale/shift per output channel or NULL. For
 * small cout, where sgemm over im2col tiles is slow (EfficientNetV2's stem and
 * stage 1); sgemm stays the path for everything else. */
typedef struct {
    ec_conv_geom g;
    int cout;
    int act;
} ec_conv_params;

void ec_f32_conv_direct(const ec_conv_params *p, const float *x, const float *w,
                        const float *scale, const float *shift, float *out, int y0, int y1);
void ec_f32_conv_direct__ref(const ec_conv_params *p, const float *x, const float *w,
                             const float *scale, const float *shift, float *out, int y0, int y1);

/* ---- Winograd F(2x2, 3x3): 3x3 stride-1 convolution (winograd.c) ------------
 * tiles: 2x2 output blocks, t = ty * ceil(out_w / 2) + tx. For tiles [t0, t1):
 *   V[16][t1 - t0][cin] = input transform of x (zero padding as g says);
 *   M[xi] = V[xi] @ U[xi] (the caller's GEMMs, [t1 - t0, cout] each);
 *   y pixels of those tiles = act(output transform of M + shift).
 * U[16][cin][cout] comes from HWIO weights w[3][3][cin][cout] (fp16 if w_f16)
 * times scale[cout] (may be NULL); tmp holds 9 * cout floats. The weight
 * transform writes input channels [ci0, ci1) of U (a split for the threads),
 * plain (u_stride 0: U[xi] at u + xi * cin * cout, [cin][cout]) or straight
 * in ec_pack_b's panels (U[xi] at u + xi * u_stride, K = cin, N = cout, the
 * padding columns zeroed): see ec_wino_u_at. */
int ec_wino23_tiles(const ec_conv_geom *g);
void ec_wino23_weights(const void *w, int w_f16, const float *scale, int cin, int cout, int ci0, int ci1,
                       size_t u_stride, float *tmp, float *u);
void ec_wino23_input(const ec_conv_geom *g, const float *x, int t0, int t1, float *v);
void ec_wino23_output(const ec_conv_geom *g, int cout, const float *m, int t0, int t1, const float *shift, int act,
                      float *y);
void ec_wino23_weights__ref(const void *w, int w_f16, const float *scale, int cin, int cout, int ci0, int ci1,
                            size_t u_stride, float *tmp, float *u);
void ec_wino23_input__ref(const ec_conv_geom *g, const float *x, int t0, int t1, float *v);
void ec_wino23_output__ref(const ec_conv_geom *g, int cout, const float *m, int t0, int t1, const float *shift,
                           int act, float *y);

/* Where U[xi][ci][co] lives: plain [xi][cin][cout] if u_stride is 0, else slice
 * xi at xi * u_stride in ec_pack_b's layout (16-column panels of [cin][16]). */
static inline size_t ec_wino_u_at(int xi, int ci, int co, int cin, int cout, size_t u_stride)
{
    if (!u_stride) return ((size_t)xi * cin + ci) * cout + co;
    return (size_t)xi * u_stride + ((size_t)(co / EC_PG_NR) * cin + ci) * EC_PG_NR + co % EC_PG_NR;
}

/* Zeroes the padding columns [cout, next multiple of 16) of rows [ci0, ci1) of
 * packed U's nxi slices (nothing for plain U or whole panels). */
static inline void ec_wino_u_pad(int nxi, int cin, int cout, int ci0, int ci1, size_t u_stride, float *u)
{
    if (!u_stride || cout % EC_PG_NR == 0) return;
    for (int xi = 0; xi < nxi; xi++)
        for (int ci = ci0; ci < ci1; ci++)
            for (int co = cout; co % EC_PG_NR; co++) u[ec_wino_u_at(xi, ci, co, cin, cout, u_stride)] = 0.0f;
}

/* The n x n input patch of a Winograd tile whose top-left input pixel is (iy0,
 * ix0): d[n * r + c] points at channel c0 of pixel (iy0 + r, ix0 + c), or is
 * pad where that pixel is zero padding. For the input transforms. */
static inline void ec_wino_patch(const ec_conv_geom *g, const float *x, int iy0, int ix0, int n, int c0,
                                 const float *pad, const float **d)
{
    for (int r = 0; r < n; r++)
        for (int c = 0; c < n; c++) {
            const int iy = iy0 + r, ix = ix0 + c;
            d[n * r + c] = iy >= 0 && iy < g->in_h && ix >= 0 && ix < g->in_w
                               ? x + ((size_t)iy * g->in_w + ix) * g->c + c0
                               : pad;
        }
}

/* ---- Winograd F(4x4, 3x3) (winograd43.c) ------------------------------------
 * As F(2x2, 3x3) above with 4x4 output tiles, t = ty * ceil(out_w / 4) + tx, and
 * 36 positions: V[36][t1 - t0][cin], M[36][t1 - t0][cout], U[36][cin][cout]. */
int ec_wino43_tiles(const ec_conv_geom *g);
void ec_wino43_weights(const void *w, int w_f16, const float *scale, int cin, int cout, int ci0, int ci1,
                       size_t u_stride, float *u);
void ec_wino43_input(const ec_conv_geom *g, const float *x, int t0, int t1, float *v);
void ec_wino43_output(const ec_conv_geom *g, int cout, const float *m, int t0, int t1, const float *shift, int act,
                      float *y);
void ec_wino43_weights__ref(const void *w, int w_f16, const float *scale, int cin, int cout, int ci0, int ci1,
                            size_t u_stride, float *u);
void ec_wino43_input__ref(const ec_conv_geom *g, const float *x, int t0, int t1, float *v);
void ec_wino43_output__ref(const ec_conv_geom *g, int cout, const float *m, int t0, int t1, const float *shift,
                           int act, float *y);

/* ---- pooling, elementwise -------------------------------------------------- */
/* out[c] = mean over hw of x[hw, c], x's rows ldx >= c floats apart (a range of
 * a wider tensor's channels: each channel's sum is the same whatever the range) */
void ec_f32_gap(const float *x, size_t hw, int c, size_t ldx, float *out);
void ec_f32_gap__ref(const float *x, size_t hw, int c, size_t ldx, float *out);
/* out = a + b (n elements; out may alias a or b) */
void ec_f32_add(const float *a, const float *b, float *out, size_t n);
/* out = a * b */
void ec_f32_mul(const float *a, const float *b, float *out, size_t n);
/* out[hw, c] = x[hw, c] * s[c] (SE excite; out may alias x) */
void ec_f32_mul_bcast(const float *x, const float *s, float *out, size_t hw, int c);
/* zero padding: out(h + pt + pb, w + pl + pr, c) */
void ec_f32_zeropad(const float *x, int h, int w, int c, int pt, int pb, int pl, int pr, float *out);

/* ---- backward (Grad-CAM) -----------------------------------------------------
 * Each takes the forward's arguments plus d-prefixed gradients. */
/* dx = dy * act'(x) for elementwise activations, given the forward input x. */
void ec_f32_act_backward(const float *x, const float *dy, float *dx, size_t rows, int c, int act);
void ec_f32_act_backward__ref(const float *x, const float *dy, float *dx, size_t rows, int c, int act);
/* softmax: dx = y * (dy - sum(dy * y)) per row, given the forward output y. */
void ec_f32_softmax_backward(const float *y, const float *dy, float *dx, size_t rows, int c);

/* ==== backward kernels for Grad-CAM at any layer (issue #15) ===================
 * The data gradients of every forward op above (no weight gradients). Each has a
 * scalar __ref twin; the hot ones an __avx2 twin (declared here, with their
 * reference, rather than in the ISA list below). Row ranges [y0, y1) are rows
 * of the gradient being written; every element is computed whole by whoever owns
 * its row (gather form), so any split gives the same bits.
 * Ops with no kernel of their own:
 *   Add: each input receives dout unchanged; a tensor with several consumers
 *        sums their gradients with ec_f32_add in a fixed (consumer) order.
 *   Multiply, full shape: da = dout * b, db = dout * a (ec_f32_mul).
 *   BN (inference) / Normalization / Rescaling: a per-channel scale:
 *        ec_f32_act_scale_backward with EC_ACT_LINEAR (or fused with the
 *        activation that follows), or ec_f32_mul_bcast(dout, scale).
 *   Dense: dx[1, K] = dout[1, N] @ W^T: ec_pack_bt + ec_gemm_packed (M = 1).
 *   Dropout, Reshape: identity. Softmax: ec_f32_softmax_backward above. */

/* dx = dy * act'(x) * scale[j] for x (rows, c) the activation's input (after the
 * scale and shift of a folded BN); scale NULL = 1. Not softmax. dx may alias dy. */
void ec_f32_act_scale_backward(const float *x, const float *dy, const float *scale, float *dx, size_t rows, int c,
                               int act);
void ec_f32_act_scale_backward__ref(const float *x, const float *dy, const float *scale, float *dx, size_t rows,
                                    int c, int act);
void ec_f32_act_scale_backward__avx2(const float *x, const float *dy, const float *scale, float *dx, size_t rows,
                                     int c, int act);

/* Depthwise conv data gradient: dx (in_h, in_w, c) rows [y0, y1) from dout
 * (out_h, out_w, c * mult) = d(conv * scale + shift) (through the activation
 * already) and w (kh, kw, c, mult) times scale (c * mult, or NULL). */
void ec_f32_dwconv_backward(const ec_dwconv_params *p, const float *w, const float *scale, const float *dout,
                            float *dx, int y0, int y1);
void ec_f32_dwconv_backward__ref(const ec_dwconv_params *p, const float *w, const float *scale, const float *dout,
                                 float *dx, int y0, int y1);
void ec_f32_dwconv_backward__avx2(const ec_dwconv_params *p, const float *w, const float *scale, const float *dout,
                                  float *dx, int y0, int y1);

/* W^T packed for ec_gemm_packed: W[K, N] (fp16 if w_f16) times scale[n] (or
 * NULL), column panels [p0, p1) of W^T[N, K], panel p = W's rows [16p, 16p + 16):
 * W[16p + j, n] * scale[n] at bp[(p * N + n) * 16 + j], zero past K; bp holds
 * ec_pack_b_floats(N, K). Then dX[M, K] = dY[M, N] @ W^T is
 * ec_gemm_packed(M, K, N, dY, N, bp, NULL, EC_ACT_LINEAR, dX, K, ...). */
void ec_pack_bt(const void *w, int w_f16, const float *scale, int K, int N, int p0, int p1, float *bp);
void ec_pack_bt__ref(const void *w, int w_f16, const float *scale, int K, int N, int p0, int p1, float *bp);
void ec_pack_bt__avx2(const void *w, int w_f16, const float *scale, int K, int N, int p0, int p1, float *bp);

/* col2im, the adjoint of ec_f32_im2col: dx (in_h, in_w, c) rows [y0, y1) =
 * the sum of the dcol entries of every (output pixel, tap) that reads them;
 * dcol rows are output pixels from oy0 * out_w on, (kh * kw * c) each, covering
 * ec_conv_out_rows(g, y0, y1). Bit-identical twins (adds in one order). */
void ec_f32_col2im(const ec_conv_geom *g, const float *dcol, int oy0, float *dx, int y0, int y1);
void ec_f32_col2im__ref(const ec_conv_geom *g, const float *dcol, int oy0, float *dx, int y0, int y1);
void ec_f32_col2im__avx2(const ec_conv_geom *g, const float *dcol, int oy0, float *dx, int y0, int y1);

/* The output rows [*oy0, *oy1) that input rows [y0, y1) of a conv reach. */
void ec_conv_out_rows(const ec_conv_geom *g, int y0, int y1, int *oy0, int *oy1);
/* Conv data gradient (any kh x kw, stride, padding; however the forward ran,
 * Winograd included): dx (in_h, in_w, cin = g->c) rows [y0, y1) from dout
 * (out_h, out_w, cout) and bpt = ec_pack_bt(HWIO W as [kh * kw * cin, cout],
 * BN scale folded). dcol: ec_conv_backward_scratch_floats(g, y1 - y0) floats
 * (0 for a 1x1 stride-1 conv: one GEMM straight into dx). */
size_t ec_conv_backward_scratch_floats(const ec_conv_geom *g, int rows);
void ec_f32_conv_backward(const ec_conv_geom *g, int cout, const float *bpt, const float *dout, float *dcol,
                          float *dx, int y0, int y1);

/* Stride-1 conv data gradient as a forward conv (for Winograd): the geometry
 * (input dout with cout channels, output dx; -1 if stride != 1 or padding >
 * kernel - 1) and the rotated, channel-swapped weights wt (kh, kw, cout, cin) =
 * w[kh-1-ky][kw-1-kx][ci][co] * scale[co], written for ci in [ci0, ci1). */
int ec_conv_geom_flip(const ec_conv_geom *g, int cout, ec_conv_geom *gt);
void ec_conv_weights_flip(const void *w, int w_f16, const float *scale, int kh, int kw, int cin, int cout, int ci0,
                          int ci1, float *wt);

/* GAP backward: dx[p * ldx + j] (+= when acc) dout[j] / hw, p < hw. */
void ec_f32_gap_backward(const float *dout, size_t hw, int c, size_t ldx, float *dx, int acc);
void ec_f32_gap_backward__ref(const float *dout, size_t hw, int c, size_t ldx, float *dx, int acc);
void ec_f32_gap_backward__avx2(const float *dout, size_t hw, int c, size_t ldx, float *dx, int acc);
/* Broadcast Multiply backward, the broadcast operand's side: ds[j] = sum_p
 * dout[p, j] * x[p, j] (rows ld apart), blocked as GAP; bit-identical twins.
 * The other side is dx = ec_f32_mul_bcast(dout, s). */
void ec_f32_mul_bcast_backward(const float *x, const float *dout, size_t hw, int c, size_t ld, float *ds);
void ec_f32_mul_bcast_backward__ref(const float *x, const float *dout, size_t hw, int c, size_t ld, float *ds);
void ec_f32_mul_bcast_backward__avx2(const float *x, const float *dout, size_t hw, int c, size_t ld, float *ds);
/* ZeroPadding2D backward: dx (h, w, c) rows [y0, y1) = dout's interior. */
void ec_f32_zeropad_backward(const float *dout, int h, int w, int c, int pt, int pb, int pl, int pr, float *dx,
                             int y0, int y1);
/* ==== end of the issue-#15 backward kernels ===================================== */

/* ---- ISA variants (additions) ----------------------------------------------
 * The dispatchers above pick these; tests call them directly to compare with
 * __ref. Call an __avx2 variant only when ec_cpu_has_avx2() is true. */
int ec_cpu_has_avx2(void);                               /* AVX2 + FMA + F16C usable */
void ec_f16_to_f32_n__avx2(const uint16_t *src, float *dst, size_t n);
void ec_f32_to_f16_n__avx2(const float *src, uint16_t *dst, size_t n);
void ec_f16_to_f32_scale_cols__avx2(const uint16_t *src, float *dst, size_t rows, int cols, const float *scale);
void ec_f32_affine_act__avx2(float *x, size_t rows, int c, const float *scale, const float *shift, int act);
void ec_f32_act__avx2(const float *x, float *y, size_t rows, int c, int act);
void ec_f32_dwconv__avx2(const ec_dwconv_params *p, const float *x, const float *w,
                         const float *scale, const float *shift, float *out, int y0, int y1);
void ec_wino23_weights__avx2(const void *w, int w_f16, const float *scale, int cin, int cout, int ci0, int ci1,
                             size_t u_stride, float *u);
void ec_wino23_input__avx2(const ec_conv_geom *g, const float *x, int t0, int t1, float *v);
void ec_wino23_output__avx2(const ec_conv_geom *g, int cout, const float *m, int t0, int t1, const float *shift,
                            int act, float *y);
void ec_f32_conv_direct__avx2(const ec_conv_params *p, const float *x, const float *w,
                              const float *scale, const float *shift, float *out, int y0, int y1);
void ec_f32_gap__avx2(const float *x, size_t hw, int c, size_t ldx, float *out);
void ec_wino43_weights__avx2(const void *w, int w_f16, const float *scale, int cin, int cout, int ci0, int ci1,
                             size_t u_stride, float *u);
void ec_wino43_input__avx2(const ec_conv_geom *g, const float *x, int t0, int t1, float *v);
void ec_wino43_output__avx2(const ec_conv_geom *g, int cout, const float *m, int t0, int t1, const float *shift,
                            int act, float *y);
void ec_f32_act_backward__avx2(const float *x, const float *dy, float *dx, size_t n, int act);   /* not softmax */
void ec_pack_b__avx2(const void *w, int w_f16, const float *scale, int K, int N, int p0, int p1, float *bp);
void ec_gemm_packed__avx2(int M, int N, int K, const float *A, int lda, const float *Bp, const float *shift,
                          int act, float *C, int ldc, int m0, int m1, int p0, int p1);
void ec_pack_b_se__avx2(const void *w, int w_f16, const float *scale, const float *se, int K, int N, int p0, int p1,
                        float *bp);
void ec_gemm_w16__avx2(int M, int N, int K, const float *A, int lda, const uint16_t *W, const float *scale,
                       const float *se, const float *shift, int act, float *C, int ldc, int m0, int m1, int p0, int p1);
void ec_f32_add__ref(const float *a, const float *b, float *out, size_t n);
void ec_f32_add__avx2(const float *a, const float *b, float *out, size_t n);
void ec_f32_mul__ref(const float *a, const float *b, float *out, size_t n);
void ec_f32_mul__avx2(const float *a, const float *b, float *out, size_t n);
void ec_f32_mul_bcast__ref(const float *x, const float *s, float *out, size_t hw, int c);
void ec_f32_mul_bcast__avx2(const float *x, const float *s, float *out, size_t hw, int c);


/* ---- AVX-512 variants ---------------------------------------------------------
 * AVX-512 F/BW/DQ/VL twins, picked by the dispatchers above when
 * ec_cpu_has_avx512() (cpu.c: the hardware and OS support it, a 512-bit FMA
 * runs at full width or the CPU is AMD, and EFFCAM_NO_AVX512 is not set). Call
 * one only when ec_cpu_has_avx512() is true. Unlike the AVX2 twins they take
 * any channel count (tails under k-masks). */
int ec_cpu_has_avx512(void);
/* FMA throughput probes: iters x 24 zmm (iters x 12 ymm) independent-chain
 * FMAs; the result only keeps the work alive. cpu.c times them once; the peak
 * probe of bench/kbench.c too. */
float ec_cpu_fma_probe__avx512(long iters, float seed);
float ec_cpu_fma_probe__avx2(long iters, float seed);
/* The floating-point operations of one probe call (2 per lane of each FMA). */
static inline double ec_cpu_fma_probe_flops(long iters, int zmm) { return (double)iters * (zmm ? 24 * 16 : 12 * 8) * 2; }
/* One core's FMA peak (GFLOP/s) at the width the kernels run (*bits: 512, 256, or 0
 * for the scalar kernels, then 0 GFLOP/s), measured with the probes (~1 ms). */
double ec_cpu_fma_peak_gflops(int *bits);
void ec_f32_act__avx512(const float *x, float *y, size_t rows, int c, int act);
void ec_f32_affine_act__avx512(float *x, size_t rows, int c, const float *scale, const float *shift, int act);
void ec_f32_act_backward__avx512(const float *x, const float *dy, float *dx, size_t n, int act);   /* not softmax */
void ec_f32_act_scale_backward__avx512(const float *x, const float *dy, const float *scale, float *dx, size_t rows,
                                       int c, int act);
void ec_f32_dwconv__avx512(const ec_dwconv_params *p, const float *x, const float *w,
                           const float *scale, const float *shift, float *out, int y0, int y1);
void ec_f32_dwconv_rowsum__avx512(const ec_dwconv_params *p, const float *x, const float *w, const float *scale,
                                  const float *shift, float *out, float *rowsum, int y0, int y1);
void ec_wino23_weights__avx512(const void *w, int w_f16, const float *scale, int cin, int cout, int ci0, int ci1,
                               size_t u_stride, float *u);
void ec_wino23_input__avx512(const ec_conv_geom *g, const float *x, int t0, int t1, float *v);
void ec_wino23_output__avx512(const ec_conv_geom *g, int cout, const float *m, int t0, int t1, const float *shift,
                              int act, float *y);
void ec_wino43_weights__avx512(const void *w, int w_f16, const float *scale, int cin, int cout, int ci0, int ci1,
                               size_t u_stride, float *u);
void ec_wino43_input__avx512(const ec_conv_geom *g, const float *x, int t0, int t1, float *v);
void ec_wino43_output__avx512(const ec_conv_geom *g, int cout, const float *m, int t0, int t1, const float *shift,
                              int act, float *y);
void ec_f32_conv_direct__avx512(const ec_conv_params *p, const float *x, const float *w,
                                const float *scale, const float *shift, float *out, int y0, int y1);
void ec_f16_to_f32_n__avx512(const uint16_t *src, float *dst, size_t n);
void ec_f32_to_f16_n__avx512(const float *src, uint16_t *dst, size_t n);
void ec_f16_to_f32_scale_cols__avx512(const uint16_t *src, float *dst, size_t rows, int cols, const float *scale);
void ec_f32_gap__avx512(const float *x, size_t hw, int c, size_t ldx, float *out);
void ec_f32_gap_backward__avx512(const float *dout, size_t hw, int c, size_t ldx, float *dx, int acc);
void ec_f32_add__avx512(const float *a, const float *b, float *out, size_t n);
void ec_f32_mul__avx512(const float *a, const float *b, float *out, size_t n);
void ec_f32_mul_bcast__avx512(const float *x, const float *s, float *out, size_t hw, int c);
void ec_pack_b__avx512(const void *w, int w_f16, const float *scale, int K, int N, int p0, int p1, float *bp);
void ec_gemm_packed__avx512(int M, int N, int K, const float *A, int lda, const float *Bp, const float *shift,
                            int act, float *C, int ldc, int m0, int m1, int p0, int p1);
void ec_pack_b_se__avx512(const void *w, int w_f16, const float *scale, const float *se, int K, int N, int p0, int p1,
                          float *bp);
void ec_gemm_w16__avx512(int M, int N, int K, const float *A, int lda, const uint16_t *W, const float *scale,
                         const float *se, const float *shift, int act, float *C, int ldc, int m0, int m1, int p0,
                         int p1);

#endif
