/* blas.c - OpenBLAS, loaded the first time it is needed.
 *
 * OpenBLAS's sgemm is the GEMM of CPUs without AVX2 (ec_gemm); with AVX2 or
 * AVX-512 every GEMM is effcam's own (pgemm.c) and OpenBLAS is never called.
 * Linking it would still cost every process its load: ~3.5 MB of resident
 * pages (the library, libgfortran, their relocations) and ~5 ms of a cold start.
 * So it is opened with dlopen at the first ec_gemm (or ec_backend, which
 * reports its core type) and never otherwise.
 *
 * Once open it is set to one thread and its idle server threads stopped: the
 * sessions' own pools parallelize, and OpenBLAS's pthread build starts a server
 * thread per core when it loads, each spinning on sched_yield for ~2^28 cycles
 * (~0.1 s) before it sleeps. Setting one thread does not stop them; the
 * library's own shutdown (exported for fork handling; absent from some builds,
 * then skipped) does, and single-threaded calls never restart them.
 *
 * Where no OpenBLAS can be opened, ec_gemm runs its reference twin (correct,
 * slower) and ec_blas_core says so. */
#include <cblas.h>
#include <dlfcn.h>
#include <pthread.h>

#include "kernels.h"

static pthread_once_t ec_blas_once = PTHREAD_ONCE_INIT;
static __typeof__(cblas_sgemm) *ec_sgemm_fn;
static char *(*ec_corename_fn)(void);
static char *(*ec_config_fn)(void);

static void ec_blas_load(void)
{
    /* the soname Debian's libopenblas0 packages (the alternatives link), then
     * the development name */
    static const char *const names[] = { "libopenblas.so.0", "libopenblas.so" };
    void *lib = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !lib; i++) lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib) return;
    void (*set_threads)(int) = (void (*)(int))dlsym(lib, "openblas_set_num_threads");
    void (*shutdown)(void) = (void (*)(void))dlsym(lib, "blas_thread_shutdown_");
    ec_corename_fn = (char *(*)(void))dlsym(lib, "openblas_get_corename");
    ec_config_fn = (char *(*)(void))dlsym(lib, "openblas_get_config");
    if (set_threads) set_threads(1);
    if (shutdown) shutdown();
    ec_sgemm_fn = (__typeof__(cblas_sgemm) *)dlsym(lib, "cblas_sgemm");   /* last: the others are set */
}

static void ec_blas_open(void) { pthread_once(&ec_blas_once, ec_blas_load); }

int ec_blas_sgemm(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    ec_blas_open();
    if (!ec_sgemm_fn) return -1;
    ec_sgemm_fn(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
    return 0;
}

/* ---- what runs ---------------------------------------------------------------- */

const char *ec_blas_core(void)
{
    ec_blas_open();
    if (!ec_sgemm_fn) return "none (libopenblas.so.0 not found: the reference GEMM runs)";
    const char *c = ec_corename_fn ? ec_corename_fn() : NULL;
    return c ? c : "?";
}

const char *ec_blas_config(void)
{
    ec_blas_open();
    const char *c = ec_config_fn ? ec_config_fn() : NULL;
    return c ? c : "?";
}
