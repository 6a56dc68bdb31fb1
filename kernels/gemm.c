/* gemm.c - the one wrapper around OpenBLAS's sgemm (blas.c), and its naive twin. */

#include "kernels/kernels.h"

/* K = 0 (an empty sum) leaves C = beta * C. BLAS semantics: beta == 0 means C
 * is write-only, so stale NaN/Inf in it must not leak through 0 * NaN. */
static void gemm_scale_c(int M, int N, float beta, float *restrict C, int ldc)
{
    for (int i = 0; i < M; i++) {
        float *restrict c = C + (size_t)i * ldc;          /* row i: N floats */
        for (int j = 0; j < N; j++)
            c[j] = beta == 0.0f ? 0.0f : beta * c[j];
    }
}

/* A[M,K] (row stride lda) @ B[K,N] (ldb) -> C[M,N] (ldc), row-major. */
void ec_gemm(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) {
        /* cblas would reject lda < max(1, K) here and print to stderr. */
        gemm_scale_c(M, N, beta, C, ldc);
        return;
    }
    if (ec_blas_sgemm(M, N, K, A, lda, B, ldb, beta, C, ldc) != 0)
        ec_gemm__ref(M, N, K, A, lda, B, ldb, beta, C, ldc);   /* no OpenBLAS here */
}

void ec_gemm__ref(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                  float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            /* Double accumulation: the reference should be the accurate side. */
            double acc = 0.0;
            for (int p = 0; p < K; p++)
                acc += (double)A[(size_t)i * lda + p] * B[(size_t)p * ldb + j];
            float *c = &C[(size_t)i * ldc + j];
            *c = beta == 0.0f ? (float)acc : (float)(acc + (double)beta * *c);
        }
    }
}
