/* pgemm__avx2.c - GEMM on packed weights, AVX2 + FMA, fused shift + act.
 *
 * Micro-kernel: 6 rows x 16 columns of C in 12 ymm accumulators. Per k step it
 * loads the panel's 16 weights (two vectors, contiguous in the packed panel)
 * and broadcasts one A element per row: 12 FMAs for 8 loads, FMA-bound.
 * A is read in place (row stride lda): a 1x1 conv's input rows are already
 * contiguous, so there is no A packing either.
 *
 * Blocking (BLIS order, sizes in kernels.h): row blocks of EC_PG_MC, k blocks of
 * EC_PG_KC, then panels, then 6-row micro tiles. A row block's k block (96 x 256
 * floats) stays in L2 while every panel sweeps it; a panel's k block (16 KB)
 * stays in L1 while the micro tiles go down the rows. Between k blocks the
 * partial sums wait in C; the first block starts from the shift, the last applies
 * the activation and stores. */
#include "kernels/vmath_avx2.h"

void ec_pack_b__avx2(const void *w, int w_f16, const float *scale, int K, int N, int p0, int p1, float *bp)
{
    for (int p = p0; p < p1; p++) {
        const int n0 = p * EC_PG_NR, nv = N - n0 < EC_PG_NR ? N - n0 : EC_PG_NR;
        float *dst = bp + (size_t)p * K * EC_PG_NR;   /* [K][16] */
        if (nv < EC_PG_NR) {                          /* the last, partial panel: rarely hot */
            ec_pack_b__ref(w, w_f16, scale, K, N, p, p + 1, bp);
            continue;
        }
        const __m256 s0 = scale ? _mm256_loadu_ps(scale + n0) : _mm256_set1_ps(1.0f);
        const __m256 s1 = scale ? _mm256_loadu_ps(scale + n0 + 8) : _mm256_set1_ps(1.0f);
        for (int k = 0; k < K; k++) {
            __m256 a, b;
            if (w_f16) {
                const uint16_t *src = (const uint16_t *)w + (size_t)k * N + n0;
                a = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)src));
                b = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + 8)));
            } else {
                const float *src = (const float *)w + (size_t)k * N + n0;
                a = _mm256_loadu_ps(src);
                b = _mm256_loadu_ps(src + 8);
            }
            _mm256_storeu_ps(dst + (size_t)k * EC_PG_NR, _mm256_mul_ps(a, s0));
            _mm256_storeu_ps(dst + (size_t)k * EC_PG_NR + 8, _mm256_mul_ps(b, s1));
        }
    }
}

/* W^T's panels (see pgemm.c): 8 rows of W x 8 columns at a time, transposed in
 * registers (unpack / shuffle / permute), each column n then scaled by scale[n]:
 * the same single rounding as the reference, so the packs are bit-identical.
 * The last partial panel and a column tail of fewer than 8 go through the
 * reference. */
EC_V8_INLINE void pbt_load8(const void *w, int w_f16, size_t i, __m256 *v)
{
    if (w_f16) *v = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + i)));
    else *v = _mm256_loadu_ps((const float *)w + i);
}

EC_V8_INLINE void pbt_transpose8(__m256 *r)
{
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

void ec_pack_bt__avx2(const void *w, int w_f16, const float *scale, int K, int N, int p0, int p1, float *bp)
{
    const int Nv = N & ~7;
    for (int p = p0; p < p1; p++) {
        const int k0 = p * EC_PG_NR;
        if (K - k0 < EC_PG_NR) {                      /* the last, partial panel */
            ec_pack_bt__ref(w, w_f16, scale, K, N, p, p + 1, bp);
            continue;
        }
        float *dst = bp + (size_t)p * N * EC_PG_NR;   /* [N][16] */
        for (int n = 0; n < Nv; n += 8)
            for (int h = 0; h < 2; h++) {             /* rows k0 + 8h .. + 7 -> lanes 8h .. 8h + 7 */
                __m256 r[8];
                EC_V8_UNROLL for (int j = 0; j < 8; j++) pbt_load8(w, w_f16, (size_t)(k0 + 8 * h + j) * N + n, &r[j]);
                pbt_transpose8(r);                    /* r[u] = W[k0 + 8h .. + 7, n + u] */
                EC_V8_UNROLL for (int u = 0; u < 8; u++) {
                    const __m256 v = scale ? _mm256_mul_ps(r[u], _mm256_set1_ps(scale[n + u])) : r[u];
                    _mm256_storeu_ps(dst + (size_t)(n + u) * EC_PG_NR + 8 * h, v);
                }
            }
        for (int n = Nv; n < N; n++)                  /* column tail */
            for (int j = 0; j < EC_PG_NR; j++) {
                const size_t i = (size_t)(k0 + j) * N + n;
                float v = w_f16 ? ec_f16_to_f32(((const uint16_t *)w)[i]) : ((const float *)w)[i];
                if (scale) v *= scale[n];
                dst[(size_t)n * EC_PG_NR + j] = v;
            }
    }
}

/* MR x 16 tile of C at c (row stride ldc), k in [0, kc) of a (row stride lda)
 * and b (a panel's rows, 16 floats each). first: start from shift16 (or 0),
 * else from C. last: activation, then store. m0/m1: store masks of the two
 * column halves (all-ones for a full panel). */
EC_V8_INLINE void pg_tile(const int MR, int kc, const float *a, size_t lda, const float *b, float *c, size_t ldc,
                          const float *shift16, int first, int last, int act, const int full, __m256i m0,
                          __m256i m1)
{
    __m256 c0[EC_PG_MR], c1[EC_PG_MR];
    if (first) {
        __m256 h0 = _mm256_setzero_ps(), h1 = _mm256_setzero_ps();
        if (shift16) {
            h0 = full ? _mm256_loadu_ps(shift16) : _mm256_maskload_ps(shift16, m0);
            h1 = full ? _mm256_loadu_ps(shift16 + 8) : _mm256_maskload_ps(shift16 + 8, m1);
        }
        EC_V8_UNROLL for (int r = 0; r < MR; r++) c0[r] = h0, c1[r] = h1;
    } else {
        EC_V8_UNROLL for (int r = 0; r < MR; r++) {
            c0[r] = full ? _mm256_loadu_ps(c + r * ldc) : _mm256_maskload_ps(c + r * ldc, m0);
            c1[r] = full ? _mm256_loadu_ps(c + r * ldc + 8) : _mm256_maskload_ps(c + r * ldc + 8, m1);
        }
    }
    const float *a0 = a, *a1 = a + lda, *a2 = a + 2 * lda, *a3 = a + 3 * lda, *a4 = a + 4 * lda, *a5 = a + 5 * lda;
#define PG_ROW(r, ar)                                                   \
    if (MR > r) {                                                       \
        const __m256 av = _mm256_broadcast_ss(ar + k);                  \
        c0[r] = _mm256_fmadd_ps(av, b0, c0[r]);                         \
        c1[r] = _mm256_fmadd_ps(av, b1, c1[r]);                         \
    }
    _Pragma("GCC unroll 4") for (int k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_loadu_ps(b + (size_t)k * EC_PG_NR);
        const __m256 b1 = _mm256_loadu_ps(b + (size_t)k * EC_PG_NR + 8);
        PG_ROW(0, a0) PG_ROW(1, a1) PG_ROW(2, a2) PG_ROW(3, a3) PG_ROW(4, a4) PG_ROW(5, a5)
    }
#undef PG_ROW
    if (last && act != EC_ACT_LINEAR) {
        ec_v8_act_n(c0, MR, act);
        ec_v8_act_n(c1, MR, act);
    }
    EC_V8_UNROLL for (int r = 0; r < MR; r++) {
        if (full) {
            _mm256_storeu_ps(c + r * ldc, c0[r]);
            _mm256_storeu_ps(c + r * ldc + 8, c1[r]);
        } else {
            _mm256_maskstore_ps(c + r * ldc, m0, c0[r]);
            _mm256_maskstore_ps(c + r * ldc + 8, m1, c1[r]);
        }
    }
}

/* One instantiation per row count; full panels and the partial last panel apart,
 * so the common case has no masks in its loop. */
#define PG_INST(MR)                                                                                              \
    static __attribute__((noinline)) void pg_tile_##MR(int kc, const float *a, size_t lda, const float *b,      \
                                                       float *c, size_t ldc, const float *sh, int first,        \
                                                       int last, int act)                                       \
    {                                                                                                            \
        const __m256i ones = _mm256_set1_epi32(-1);                                                              \
        pg_tile(MR, kc, a, lda, b, c, ldc, sh, first, last, act, 1, ones, ones);                                 \
    }
PG_INST(1)
PG_INST(2)
PG_INST(3)
PG_INST(4)
PG_INST(5)
PG_INST(6)
#undef PG_INST

static __attribute__((noinline)) void pg_tile_part(int mr, int kc, const float *a, size_t lda, const float *b,
                                                   float *c, size_t ldc, const float *sh, int first, int last,
                                                   int act, int nv)
{
    const __m256i m0 = ec_v8_tail_mask(nv < 8 ? nv : 8), m1 = ec_v8_tail_mask(nv > 8 ? nv - 8 : 0);
    switch (mr) {   /* rows one at a time would do; the partial panel is a few columns of a small layer */
    case 6: pg_tile(6, kc, a, lda, b, c, ldc, sh, first, last, act, 0, m0, m1); break;
    default:
        for (int r = 0; r < mr; r++)
            pg_tile(1, kc, a + r * lda, lda, b, c + r * ldc, ldc, sh, first, last, act, 0, m0, m1);
        break;
    }
}

void ec_gemm_packed__avx2(int M, int N, int K, const float *A, int lda, const float *Bp, const float *shift,
                          int act, float *C, int ldc, int m0, int m1, int p0, int p1)
{
    (void)M;
    if (K <= 0) {   /* empty sum: act(shift) */
        for (int i = m0; i < m1; i++)
            for (int p = p0; p < p1; p++)
                pg_tile_part(1, 0, A, (size_t)lda, Bp, C + (size_t)i * ldc + p * EC_PG_NR, (size_t)ldc,
                             shift ? shift + p * EC_PG_NR : NULL, 1, 1, act,
                             N - p * EC_PG_NR < EC_PG_NR ? N - p * EC_PG_NR : EC_PG_NR);
        return;
    }
    for (int ib = m0; ib < m1; ib += EC_PG_MC) {
        const int ie = ib + EC_PG_MC < m1 ? ib + EC_PG_MC : m1;
        for (int kb = 0; kb < K; kb += EC_PG_KC) {
            const int kc = K - kb < EC_PG_KC ? K - kb : EC_PG_KC;
            const int first = kb == 0, last = kb + kc == K;
            for (int p = p0; p < p1; p++) {
                const int n0 = p * EC_PG_NR, nv = N - n0 < EC_PG_NR ? N - n0 : EC_PG_NR;
                const float *b = Bp + ((size_t)p * K + kb) * EC_PG_NR;
                const float *sh = shift ? shift + n0 : NULL;
                for (int i = ib; i < ie; i += EC_PG_MR) {
                    const int mr = ie - i < EC_PG_MR ? ie - i : EC_PG_MR;
                    const float *a = A + (size_t)i * lda + kb;
                    float *c = C + (size_t)i * ldc + n0;
                    if (nv < EC_PG_NR) {
                        pg_tile_part(mr, kc, a, (size_t)lda, b, c, (size_t)ldc, sh, first, last, act, nv);
                        continue;
                    }
                    switch (mr) {
                    case 6: pg_tile_6(kc, a, (size_t)lda, b, c, (size_t)ldc, sh, first, last, act); break;
                    case 5: pg_tile_5(kc, a, (size_t)lda, b, c, (size_t)ldc, sh, first, last, act); break;
                    case 4: pg_tile_4(kc, a, (size_t)lda, b, c, (size_t)ldc, sh, first, last, act); break;
                    case 3: pg_tile_3(kc, a, (size_t)lda, b, c, (size_t)ldc, sh, first, last, act); break;
                    case 2: pg_tile_2(kc, a, (size_t)lda, b, c, (size_t)ldc, sh, first, last, act); break;
                    default: pg_tile_1(kc, a, (size_t)lda, b, c, (size_t)ldc, sh, first, last, act); break;
                    }
                }
            }
        }
    }
}

/* ---- fp16 weights widened per block (ec_gemm_w16) --------------------------------
 * Rows [k0, k0 + kc) of panel p of W [K][N] halves into dst [kc][16]: f16 *
 * scale[n] (if scale) * se[k] (if se), zero past N: ec_pack_b(_se)'s values. */
static void pg_pack_panel(const uint16_t *W, const float *scale, const float *se, int N, int k0, int kc, int p,
                          float *dst)
{
    const int n0 = p * EC_PG_NR, nv = N - n0 < EC_PG_NR ? N - n0 : EC_PG_NR;
    if (nv < EC_PG_NR) {   /* the last, partial panel: the scalar loop, as ec_pack_b__avx2 does */
        for (int k = k0; k < k0 + kc; k++, dst += EC_PG_NR)
            for (int j = 0; j < EC_PG_NR; j++) {
                float v = 0.0f;
                if (j < nv) {
                    v = ec_f16_to_f32(W[(size_t)k * N + n0 + j]);
                    if (scale) v *= scale[n0 + j];
                    if (se) v *= se[k];
                }
                dst[j] = v;
            }
        return;
    }
    const __m256 s0 = scale ? _mm256_loadu_ps(scale + n0) : _mm256_set1_ps(1.0f);
    const __m256 s1 = scale ? _mm256_loadu_ps(scale + n0 + 8) : _mm256_set1_ps(1.0f);
    for (int k = k0; k < k0 + kc; k++, dst += EC_PG_NR) {
        const uint16_t *src = W + (size_t)k * N + n0;
        __m256 a = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)src));
        __m256 b = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + 8)));
        if (scale) a = _mm256_mul_ps(a, s0), b = _mm256_mul_ps(b, s1);
        if (se) {
            const __m256 e = _mm256_set1_ps(se[k]);
            a = _mm256_mul_ps(a, e), b = _mm256_mul_ps(b, e);
        }
        _mm256_storeu_ps(dst, a);
        _mm256_storeu_ps(dst + 8, b);
    }
}

/* As ec_gemm_packed__avx2 with each (row block, k block, panel) widened into
 * blk (16 KB, on the stack, in L1) right before its row tiles, the next
 * panel's rows of W asked for meanwhile. Bit-identical to ec_pack_b(_se) +
 * ec_gemm_packed__avx2. */
void ec_gemm_w16__avx2(int M, int N, int K, const float *A, int lda, const uint16_t *W, const float *scale,
                       const float *se, const float *shift, int act, float *C, int ldc, int m0, int m1, int p0, int p1)
{
    (void)M;
    float blk[EC_PG_KC * EC_PG_NR] __attribute__((aligned(32)));
    for (int ib = m0; ib < m1; ib += EC_PG_MC) {
        const int ie = ib + EC_PG_MC < m1 ? ib + EC_PG_MC : m1;
        for (int kb = 0; kb < K || (K <= 0 && kb == 0); kb += EC_PG_KC) {
            const int kc = K <= 0 ? 0 : (K - kb < EC_PG_KC ? K - kb : EC_PG_KC);
            const int first = kb == 0, last = kb + kc >= K;
            for (int p = p0; p < p1; p++) {
                const int n0 = p * EC_PG_NR, nv = N - n0 < EC_PG_NR ? N - n0 : EC_PG_NR;
                pg_pack_panel(W, scale, se, N, kb, kc, p, blk);
                if (p + 1 < p1) {   /* the next panel's rows of W (32 bytes each) into L2 */
                    const char *nw = (const char *)(W + (size_t)kb * N + (size_t)(p + 1) * EC_PG_NR);
                    for (int k = 0; k < kc; k++, nw += (size_t)N * 2) {
                        _mm_prefetch(nw, _MM_HINT_T1);
                        _mm_prefetch(nw + 31, _MM_HINT_T1);
                    }
                }
                const float *sh = shift ? shift + n0 : NULL;
                for (int i = ib; i < ie; i += EC_PG_MR) {
                    const int mr = ie - i < EC_PG_MR ? ie - i : EC_PG_MR;
                    const float *a = A + (size_t)i * lda + kb;
                    float *c = C + (size_t)i * ldc + n0;
                    if (nv < EC_PG_NR) {
                        pg_tile_part(mr, kc, a, (size_t)lda, blk, c, (size_t)ldc, sh, first, last, act, nv);
                        continue;
                    }
                    switch (mr) {
                    case 6: pg_tile_6(kc, a, (size_t)lda, blk, c, (size_t)ldc, sh, first, last, act); break;
                    case 5: pg_tile_5(kc, a, (size_t)lda, blk, c, (size_t)ldc, sh, first, last, act); break;
                    case 4: pg_tile_4(kc, a, (size_t)lda, blk, c, (size_t)ldc, sh, first, last, act); break;
                    case 3: pg_tile_3(kc, a, (size_t)lda, blk, c, (size_t)ldc, sh, first, last, act); break;
                    case 2: pg_tile_2(kc, a, (size_t)lda, blk, c, (size_t)ldc, sh, first, last, act); break;
                    default: pg_tile_1(kc, a, (size_t)lda, blk, c, (size_t)ldc, sh, first, last, act); break;
                    }
                }
            }
        }
    }
}

void ec_pack_b_se__avx2(const void *w, int w_f16, const float *scale, const float *se, int K, int N, int p0, int p1,
                        float *bp)
{
    if (!w_f16) {   /* fp32 weights with an excite: the scalar twin (not a hot path) */
        ec_pack_b_se__ref(w, w_f16, scale, se, K, N, p0, p1, bp);
        return;
    }
    for (int p = p0; p < p1; p++) pg_pack_panel(w, scale, se, N, 0, K, p, bp + (size_t)p * K * EC_PG_NR);
}
