/* blas.c - OpenBLAS set up once per process: one thread, its server threads
 * stopped. The sessions' own pools parallelize; OpenBLAS's pthread build starts
 * a server thread per core when it loads, each spinning on sched_yield for
 * ~2^28 cycles (~0.1 s) before it sleeps, so a CLI run spent its first 0.1 s
 * beside a busy loop. Setting one thread does not stop them; the library's own
 * shutdown (exported for fork handling; weak, so a build without it just skips
 * this) does, and single-threaded calls never restart them. */
#include <pthread.h>

#include "kernels.h"

/* OpenBLAS's own setting (process-wide); declared here to keep cblas.h out. */
void openblas_set_num_threads(int num_threads);
void blas_thread_shutdown_(void) __attribute__((weak));

static pthread_once_t ec_blas_once = PTHREAD_ONCE_INIT;

static void ec_blas_single(void)
{
    openblas_set_num_threads(1);
    if (blas_thread_shutdown_) blas_thread_shutdown_();
}

void ec_blas_init(void) { pthread_once(&ec_blas_once, ec_blas_single); }

/* ---- what runs ---------------------------------------------------------------- */

char *openblas_get_corename(void);
char *openblas_get_config(void);

const char *ec_blas_core(void)
{
    const char *c = openblas_get_corename();
    return c ? c : "?";
}

const char *ec_blas_config(void)
{
    const char *c = openblas_get_config();
    return c ? c : "?";
}
