/* pgemm__avx512.c - GEMM on packed weights, AVX-512, fused shift + act.
 *
 * Same packed B as the AVX2 kernel (16-column panels, [K][16] each), same
 * contract: every output element is one FMA chain in k order from its shift,
 * so the result is bit-identical to ec_gemm_packed__avx2's before the
 * activation, and identical for any split of rows and panels.
 *
 * Micro-kernel: MR rows x NP panels (16 columns each) of C in MR * NP zmm
 * accumulators. Per k step: NP panel rows loaded (one zmm each), MR A elements
 * broadcast, MR * NP FMAs. The main shape is 14 x 2 panels = 14 x 32: 28
 * accumulators + 2 B vectors + the broadcast = 31 of the 32 zmm registers,
 * 16 loads per 28 FMAs (the AVX2 6x16 tile: 8 per 12). An odd panel left over
 * is taken with its neighbours as 9 x 3 panels (27 accumulators, 12 loads per
 * 27 FMAs) rather than alone (1 B load per MR FMAs + MR broadcasts): N = 48,
 * the 75x75 stage's projections, is exactly one such group.
 *
 * Row tiles are balanced: a block of n rows becomes ceil(n / 14) tiles of
 * floor or ceil(n / tiles) rows (100 rows: 4 x 13 + 4 x 12, not 7 x 14 + 2), so
 * no split leaves a thin, slow tile; how rows group into tiles never changes a
 * bit (each element's chain is its own).
 *
 * Blocking (BLIS order): row blocks of PG5_MC, k blocks of PG5_KC, panel
 * groups, row tiles. A pair's k block (2 panels x 192 k x 64 B = 24 KB) stays
 * in L1 beside the tile's A rows (14 x 192 floats = 10.5 KB) while the tiles
 * walk down the row block, whose A block (112 x 192 floats = 84 KB) stays in
 * L2. (kbench on Zen 5, 48 KB L1: k blocks of 192 and 256 ran ~5% faster than
 * 128 over the EfficientNetV2-S shapes; 192 leaves room in L1 for the A rows
 * and a 32 KB L1 as well; K up to 256 goes in one block, see pg5_kc.) Partial
 * sums wait in C between k blocks (a float stored and reloaded: exact). A is
 * read in place, row stride lda. */
#include "kernels/vmath_avx512.h"

#define PG5_KC 192
#define PG5_KC_MAX 256

/* The k block size for a GEMM of depth K: all of K up to PG5_KC_MAX (K = 256,
 * stage 6's expansions and the top conv: one pass instead of 192 + 64, whose
 * second pass reloads C after the streamed weights pushed it out of L2: 6.3-6.5
 * -> 6.1-6.3 ms for the 14 expansions at 1 thread), else PG5_KC. K = 0 still
 * makes one pass, with an empty sum: act(shift). */
static inline int pg5_kc(int K)
{
    return K <= 0 ? 1 : K <= PG5_KC_MAX ? K : PG5_KC;
}
#define PG5_MC 112

/* ---- packing ------------------------------------------------------------------ */

/* Rows [k0, k0 + kc) of panel p of w [K][N] (fp16 or fp32) into dst [kc][16]:
 * w * scale[n] (if scale), then * se[k] (if se), +0 past N as the ref writes
 * (the zero-masking move: 0 * a negative se[k] would be -0, 0 * inf NaN). */
static void pg5_pack_panel(const void *w, int w_f16, const float *scale, const float *se, int N, int k0, int kc, int p,
                           float *dst)
{
    const int n0 = p * EC_PG_NR, nv = N - n0 < EC_PG_NR ? N - n0 : EC_PG_NR;
    const __mmask16 m = ec_v16_tail_mask(nv);
    const __m512 s = scale ? _mm512_maskz_loadu_ps(m, scale + n0) : _mm512_set1_ps(1.0f);
    for (int k = k0; k < k0 + kc; k++, dst += EC_PG_NR) {
        __m512 v = w_f16 ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)w + (size_t)k * N + n0))
                         : _mm512_maskz_loadu_ps(m, (const float *)w + (size_t)k * N + n0);
        if (scale) v = _mm512_mul_ps(v, s);
        if (se) v = _mm512_mul_ps(v, _mm512_set1_ps(se[k]));
        _mm512_storeu_ps(dst, _mm512_maskz_mov_ps(m, v));
    }
}

void ec_pack_b__avx512(const void *w, int w_f16, const float *scale, int K, int N, int p0, int p1, float *bp)
{
    for (int p = p0; p < p1; p++) pg5_pack_panel(w, w_f16, scale, NULL, N, 0, K, p, bp + (size_t)p * K * EC_PG_NR);
}

void ec_pack_b_se__avx512(const void *w, int w_f16, const float *scale, const float *se, int K, int N, int p0, int p1,
                          float *bp)
{
    for (int p = p0; p < p1; p++) pg5_pack_panel(w, w_f16, scale, se, N, 0, K, p, bp + (size_t)p * K * EC_PG_NR);
}

/* ---- micro-kernel ------------------------------------------------------------- */

/* MR x (16 NP) tile of C at c (row stride ldc), k in [0, kc) of a (row stride
 * lda) and the NP panels at b, b + bs, ... (16 floats per k). first: start
 * from shift (or 0), else from C; last: activation, then store. mlast masks the
 * last panel's columns (all-ones unless it is N's partial panel). */
EC_V16_INLINE void pg5_tile(const int MR, const int NP, int kc, const float *a, size_t lda, const float *b,
                            size_t bs, float *c, size_t ldc, const float *shift, int first, int last, int act,
                            __mmask16 mlast)
{
    __m512 acc[14][3];
    __mmask16 mk[3];
    EC_V16_UNROLL for (int j = 0; j < NP; j++) mk[j] = j == NP - 1 ? mlast : (__mmask16)0xffff;
    if (first) {
        __m512 h[3];
        EC_V16_UNROLL for (int j = 0; j < NP; j++)
            h[j] = shift ? _mm512_maskz_loadu_ps(mk[j], shift + 16 * j) : _mm512_setzero_ps();
        EC_V16_UNROLL for (int r = 0; r < MR; r++)
            EC_V16_UNROLL for (int j = 0; j < NP; j++) acc[r][j] = h[j];
    } else {
        EC_V16_UNROLL for (int r = 0; r < MR; r++)
            EC_V16_UNROLL for (int j = 0; j < NP; j++) acc[r][j] = _mm512_maskz_loadu_ps(mk[j], c + r * ldc + 16 * j);
    }
    _Pragma("GCC unroll 2") for (int k = 0; k < kc; k++) {
        __m512 bv[3];
        EC_V16_UNROLL for (int j = 0; j < NP; j++) bv[j] = _mm512_loadu_ps(b + j * bs + (size_t)k * EC_PG_NR);
        EC_V16_UNROLL for (int r = 0; r < MR; r++) {
            const __m512 av = _mm512_set1_ps(a[r * lda + k]);
            EC_V16_UNROLL for (int j = 0; j < NP; j++) acc[r][j] = _mm512_fmadd_ps(av, bv[j], acc[r][j]);
        }
    }
    EC_V16_UNROLL for (int r = 0; r < MR; r++) {
        if (last && act != EC_ACT_LINEAR) ec_v16_act_n(acc[r], NP, act);
        EC_V16_UNROLL for (int j = 0; j < NP; j++) _mm512_mask_storeu_ps(c + r * ldc + 16 * j, mk[j], acc[r][j]);
    }
}

typedef void pg5_fn(int kc, const float *a, size_t lda, const float *b, size_t bs, float *c, size_t ldc,
                    const float *sh, int first, int last, int act, __mmask16 mlast);

/* One instantiation per (rows, panels): the loops unroll completely and the
 * accumulators stay in registers. */
#define PG5_INST(MR, NP)                                                                                      \
    static __attribute__((noinline)) void pg5_##MR##x##NP(int kc, const float *a, size_t lda, const float *b, \
                                                          size_t bs, float *c, size_t ldc, const float *sh,  \
                                                          int first, int last, int act, __mmask16 mlast)     \
    {                                                                                                         \
        pg5_tile(MR, NP, kc, a, lda, b, bs, c, ldc, sh, first, last, act, mlast);                            \
    }
#define PG5_ROWS9(NP)                                                                                         \
    PG5_INST(1, NP) PG5_INST(2, NP) PG5_INST(3, NP) PG5_INST(4, NP) PG5_INST(5, NP) PG5_INST(6, NP)          \
    PG5_INST(7, NP) PG5_INST(8, NP) PG5_INST(9, NP)
PG5_ROWS9(1)
PG5_INST(10, 1) PG5_INST(11, 1) PG5_INST(12, 1) PG5_INST(13, 1) PG5_INST(14, 1)
PG5_ROWS9(2)
PG5_INST(10, 2) PG5_INST(11, 2) PG5_INST(12, 2) PG5_INST(13, 2) PG5_INST(14, 2)
PG5_ROWS9(3)
#undef PG5_ROWS9
#undef PG5_INST

/* [NP][MR]: the largest MR per NP is what fits 32 registers (see the top). */
static const int pg5_mr_max[4] = {0, 14, 14, 9};
static pg5_fn *const pg5_tab[4][15] = {
    {0},
    {0, pg5_1x1, pg5_2x1, pg5_3x1, pg5_4x1, pg5_5x1, pg5_6x1, pg5_7x1, pg5_8x1, pg5_9x1, pg5_10x1, pg5_11x1,
     pg5_12x1, pg5_13x1, pg5_14x1},
    {0, pg5_1x2, pg5_2x2, pg5_3x2, pg5_4x2, pg5_5x2, pg5_6x2, pg5_7x2, pg5_8x2, pg5_9x2, pg5_10x2, pg5_11x2,
     pg5_12x2, pg5_13x2, pg5_14x2},
    {0, pg5_1x3, pg5_2x3, pg5_3x3, pg5_4x3, pg5_5x3, pg5_6x3, pg5_7x3, pg5_8x3, pg5_9x3},
};

/* ---- driver ------------------------------------------------------------------- */

/* Panels [p0, p1) in groups: pairs, and one group of 3 when the count is odd
 * (a single panel only when it is the only one). Returns the group size at p. */
static int pg5_group(int p, int p0, int p1)
{
    const int n = p1 - p0, i = p - p0;
    if (n == 1) return 1;
    if (n % 2 && i == n - 3) return 3;
    return 2;
}

/* Rows [i0, i1) of one k block of one panel group, in balanced tiles. */
static void pg5_rows(int i0, int i1, int NP, int kc, const float *A, size_t lda, const float *b, size_t bs, float *C,
                     size_t ldc, const float *sh, int first, int last, int act, __mmask16 mlast)
{
    const int n = i1 - i0, mrmax = pg5_mr_max[NP];
    if (n <= 0) return;
    const int tiles = (n + mrmax - 1) / mrmax, base = n / tiles, extra = n % tiles;
    int i = i0;
    for (int t = 0; t < tiles; t++) {
        const int mr = base + (t < extra);
        pg5_tab[NP][mr](kc, A + (size_t)i * lda, lda, b, bs, C + (size_t)i * ldc, ldc, sh, first, last, act, mlast);
        i += mr;
    }
}

void ec_gemm_packed__avx512(int M, int N, int K, const float *A, int lda, const float *Bp, const float *shift,
                            int act, float *C, int ldc, int m0, int m1, int p0, int p1)
{
    (void)M;
    const size_t bs = (size_t)(K > 0 ? K : 0) * EC_PG_NR;   /* floats between panels */
    const int KC = pg5_kc(K), ke = K > 0 ? K : 1;
    for (int ib = m0; ib < m1; ib += PG5_MC) {
        const int ie = ib + PG5_MC < m1 ? ib + PG5_MC : m1;
        for (int kb = 0; kb < ke; kb += KC) {
            const int kc = K <= kb ? 0 : K - kb < KC ? K - kb : KC;   /* 0 when K <= 0 */
            const int first = kb == 0, last = kb + kc >= K;
            for (int p = p0; p < p1;) {
                const int np = pg5_group(p, p0, p1), pl = p + np - 1;
                const int nl = N - pl * EC_PG_NR;
                const __mmask16 ml = ec_v16_tail_mask(nl);
                pg5_rows(ib, ie, np, kc, A + kb, (size_t)lda, Bp + (size_t)p * bs + (size_t)kb * EC_PG_NR, bs,
                         C + (size_t)p * EC_PG_NR, (size_t)ldc, shift ? shift + p * EC_PG_NR : NULL, first, last,
                         act, ml);
                p += np;
            }
        }
    }
}

/* ---- fp16 weights widened per block --------------------------------------------
 * ec_gemm_w16: the same loops with B never packed as a whole: each (row block,
 * k block, panel group) widens its [kc][16 * np] block of the fp16 kernel into
 * blk (36 KB at most, on the stack, in L1) right before the row tiles use it,
 * and meanwhile asks for the next group's rows of W (the weights are read from
 * memory once per row block instead of widened into a K x N float copy first
 * and read back). Row blocks are 4x larger than the packed GEMM's, so the 19x19
 * stage (361 rows) widens each weight once: its A block, 448 x 192 floats
 * (336 KB), still fits L2. The block holds exactly ec_pack_b(_se)'s values, so
 * the result is bit-identical to ec_pack_b(_se) + ec_gemm_packed. */
#define PG5_MC_W16 (4 * PG5_MC)
void ec_gemm_w16__avx512(int M, int N, int K, const float *A, int lda, const uint16_t *W, const float *scale,
                         const float *se, const float *shift, int act, float *C, int ldc, int m0, int m1, int p0,
                         int p1)
{
    (void)M;
    float blk[3 * PG5_KC_MAX * EC_PG_NR] __attribute__((aligned(64)));
    const int KC = pg5_kc(K), ke = K > 0 ? K : 1;
    for (int ib = m0; ib < m1; ib += PG5_MC_W16) {
        const int ie = ib + PG5_MC_W16 < m1 ? ib + PG5_MC_W16 : m1;
        for (int kb = 0; kb < ke; kb += KC) {
            const int kc = K <= kb ? 0 : K - kb < KC ? K - kb : KC;   /* 0 when K <= 0 */
            const int first = kb == 0, last = kb + kc >= K;
            for (int p = p0; p < p1;) {
                const int np = pg5_group(p, p0, p1), pl = p + np - 1;
                for (int j = 0; j < np; j++) pg5_pack_panel(W, 1, scale, se, N, kb, kc, p + j, blk + (size_t)j * kc * EC_PG_NR);
                if (p + np < p1) {   /* the next group's rows of W (32 to 96 bytes each) into L2 */
                    const int pn = p + np, nn = pg5_group(pn, p0, p1);
                    const int bytes = 2 * ((N < (pn + nn) * EC_PG_NR ? N : (pn + nn) * EC_PG_NR) - pn * EC_PG_NR);
                    const char *nw = (const char *)(W + (size_t)kb * N + (size_t)pn * EC_PG_NR);
                    for (int k = 0; k < kc; k++, nw += (size_t)N * 2) {
                        for (int off = 0; off < bytes; off += 64) _mm_prefetch(nw + off, _MM_HINT_T1);
                        _mm_prefetch(nw + bytes - 1, _MM_HINT_T1);
                    }
                }
                const __mmask16 ml = ec_v16_tail_mask(N - pl * EC_PG_NR);
                pg5_rows(ib, ie, np, kc, A + kb, (size_t)lda, blk, (size_t)kc * EC_PG_NR, C + (size_t)p * EC_PG_NR,
                         (size_t)ldc, shift ? shift + p * EC_PG_NR : NULL, first, last, act, ml);
                p += np;
            }
        }
    }
}
