/* pgemm.c - GEMM on a packed weight matrix with a fused epilogue: the scalar
 * reference twins and the dispatch.
 *
 * C[M, N] = act(shift + A[M, K] @ B[K, N]) where B was packed by ec_pack_b:
 * column panels of EC_PG_NR = 16, panel p holding B[k, 16p + j] at
 * Bp[(p * K + k) * 16 + j], zero past N. Packing is where the fp16 weights are
 * widened and the BN scale is folded in, so a 1x1 conv is one pass over its
 * weights and one over its output: no zeroing or shift pre-fill of C, no
 * epilogue pass, no second packing inside the BLAS.
 *
 * Every output element is summed in k order from its shift (0 without one), in
 * blocks of EC_PG_KC with the partial sum kept in C between blocks; the blocking
 * depends only on K, so any split of rows and panels between threads gives the
 * same bits. */
#include "kernels/act_ref.h"
#include "kernels/kernels.h"

size_t ec_pack_b_floats(int K, int N)
{
    return (size_t)K * (size_t)((N + EC_PG_NR - 1) / EC_PG_NR) * EC_PG_NR;
}

void ec_pack_b__ref(const void *w, int w_f16, const float *scale, int K, int N, int p0, int p1, float *bp)
{
    const uint16_t *wh = w;
    const float *wf = w;
    for (int p = p0; p < p1; p++) {
        float *dst = bp + (size_t)p * K * EC_PG_NR;   /* [K][16] */
        for (int k = 0; k < K; k++)
            for (int j = 0; j < EC_PG_NR; j++) {
                int n = p * EC_PG_NR + j;
                float v = 0.0f;
                if (n < N) {
                    size_t i = (size_t)k * N + n;
                    v = w_f16 ? ec_f16_to_f32(wh[i]) : wf[i];
                    if (scale) v *= scale[n];
                }
                dst[(size_t)k * EC_PG_NR + j] = v;
            }
    }
}

/* ---- backward: W^T packed for the data gradient -----------------------------
 * A conv's (or a Dense's) data gradient is dX[M, K] = dY[M, N] @ W^T for the
 * forward's W[K, N] (K = kh * kw * cin, N = cout): ec_gemm_packed with B = W^T,
 * i.e. the GEMM's k runs over N and its columns over K. ec_pack_bt writes
 * column panels [p0, p1) of W^T (panels of 16 of W's rows): W[16p + j, n] *
 * scale[n] at bp[(p * N + n) * 16 + j], zero past K; bp holds
 * ec_pack_b_floats(N, K) floats. scale (per n, may be NULL) folds the BN that
 * followed the conv: d(conv) = d(bn) * scale, so dX = dBN @ (W * scale)^T,
 * one product rounded per weight exactly as ec_pack_b rounds it. */
void ec_pack_bt__ref(const void *w, int w_f16, const float *scale, int K, int N, int p0, int p1, float *bp)
{
    const uint16_t *wh = w;
    const float *wf = w;
    for (int p = p0; p < p1; p++) {
        float *dst = bp + (size_t)p * N * EC_PG_NR;   /* [N][16] */
        for (int n = 0; n < N; n++)
            for (int j = 0; j < EC_PG_NR; j++) {
                const int k = p * EC_PG_NR + j;
                float v = 0.0f;
                if (k < K) {
                    const size_t i = (size_t)k * N + n;
                    v = w_f16 ? ec_f16_to_f32(wh[i]) : wf[i];
                    if (scale) v *= scale[n];
                }
                dst[(size_t)n * EC_PG_NR + j] = v;
            }
    }
}

void ec_pack_bt(const void *w, int w_f16, const float *scale, int K, int N, int p0, int p1, float *bp)
{
    if (ec_cpu_has_avx2())
        ec_pack_bt__avx2(w, w_f16, scale, K, N, p0, p1, bp);
    else
        ec_pack_bt__ref(w, w_f16, scale, K, N, p0, p1, bp);
}

void ec_gemm_packed__ref(int M, int N, int K, const float *A, int lda, const float *Bp, const float *shift,
                         int act, float *C, int ldc, int m0, int m1, int p0, int p1)
{
    (void)M;
    for (int i = m0; i < m1; i++)
        for (int p = p0; p < p1; p++)
            for (int j = 0; j < EC_PG_NR && p * EC_PG_NR + j < N; j++) {
                int n = p * EC_PG_NR + j;
                const float *b = Bp + (size_t)p * K * EC_PG_NR + j;
                float acc = shift ? shift[n] : 0.0f;
                for (int k = 0; k < K; k++) acc += A[(size_t)i * lda + k] * b[(size_t)k * EC_PG_NR];
                C[(size_t)i * ldc + n] = ec_act_ref1(acc, act);
            }
}

/* ec_pack_b's values times se[k] per row (one more rounding): the SE excite of
 * the GEMM's input folded into its weights, (x * se) @ W = x @ (se * W). */
void ec_pack_b_se__ref(const void *w, int w_f16, const float *scale, const float *se, int K, int N, int p0, int p1,
                       float *bp)
{
    const uint16_t *wh = w;
    const float *wf = w;
    for (int p = p0; p < p1; p++) {
        float *dst = bp + (size_t)p * K * EC_PG_NR;   /* [K][16] */
        for (int k = 0; k < K; k++)
            for (int j = 0; j < EC_PG_NR; j++) {
                int n = p * EC_PG_NR + j;
                float v = 0.0f;
                if (n < N) {
                    size_t i = (size_t)k * N + n;
                    v = w_f16 ? ec_f16_to_f32(wh[i]) : wf[i];
                    if (scale) v *= scale[n];
                    if (se) v *= se[k];
                }
                dst[(size_t)k * EC_PG_NR + j] = v;
            }
    }
}

/* The GEMM on fp16 weights in place: B[k][n] = (f16(W[k][n]) * scale[n]) *
 * se[k], each element summed in k order from its shift, as ec_gemm_packed. */
void ec_gemm_w16__ref(int M, int N, int K, const float *A, int lda, const uint16_t *W, const float *scale,
                      const float *se, const float *shift, int act, float *C, int ldc, int m0, int m1, int p0, int p1)
{
    (void)M;
    for (int i = m0; i < m1; i++)
        for (int n = p0 * EC_PG_NR; n < p1 * EC_PG_NR && n < N; n++) {
            float acc = shift ? shift[n] : 0.0f;
            for (int k = 0; k < K; k++) {
                float b = ec_f16_to_f32(W[(size_t)k * N + n]);
                if (scale) b *= scale[n];
                if (se) b *= se[k];
                acc += A[(size_t)i * lda + k] * b;
            }
            C[(size_t)i * ldc + n] = ec_act_ref1(acc, act);
        }
}

void ec_pack_b_se(const void *w, int w_f16, const float *scale, const float *se, int K, int N, int p0, int p1,
                  float *bp)
{
    if (ec_cpu_has_avx512())
        ec_pack_b_se__avx512(w, w_f16, scale, se, K, N, p0, p1, bp);
    else if (ec_cpu_has_avx2())
        ec_pack_b_se__avx2(w, w_f16, scale, se, K, N, p0, p1, bp);
    else
        ec_pack_b_se__ref(w, w_f16, scale, se, K, N, p0, p1, bp);
}

void ec_gemm_w16(int M, int N, int K, const float *A, int lda, const uint16_t *W, const float *scale, const float *se,
                 const float *shift, int act, float *C, int ldc, int m0, int m1, int p0, int p1)
{
    if (ec_cpu_has_avx512())
        ec_gemm_w16__avx512(M, N, K, A, lda, W, scale, se, shift, act, C, ldc, m0, m1, p0, p1);
    else if (ec_cpu_has_avx2())
        ec_gemm_w16__avx2(M, N, K, A, lda, W, scale, se, shift, act, C, ldc, m0, m1, p0, p1);
    else
        ec_gemm_w16__ref(M, N, K, A, lda, W, scale, se, shift, act, C, ldc, m0, m1, p0, p1);
}

void ec_pack_b(const void *w, int w_f16, const float *scale, int K, int N, int p0, int p1, float *bp)
{
    if (ec_cpu_has_avx512())
        ec_pack_b__avx512(w, w_f16, scale, K, N, p0, p1, bp);
    else if (ec_cpu_has_avx2())
        ec_pack_b__avx2(w, w_f16, scale, K, N, p0, p1, bp);
    else
        ec_pack_b__ref(w, w_f16, scale, K, N, p0, p1, bp);
}

void ec_gemm_packed(int M, int N, int K, const float *A, int lda, const float *Bp, const float *shift, int act,
                    float *C, int ldc, int m0, int m1, int p0, int p1)
{
    if (ec_cpu_has_avx512())
        ec_gemm_packed__avx512(M, N, K, A, lda, Bp, shift, act, C, ldc, m0, m1, p0, p1);
    else if (ec_cpu_has_avx2())
        ec_gemm_packed__avx2(M, N, K, A, lda, Bp, shift, act, C, ldc, m0, m1, p0, p1);
    else
        ec_gemm_packed__ref(M, N, K, A, lda, Bp, shift, act, C, ldc, m0, m1, p0, p1);
}
