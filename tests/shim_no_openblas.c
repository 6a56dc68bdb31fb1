/* shim_no_openblas.c - an LD_PRELOAD library for test_cli.sh: every dlopen of
 * an OpenBLAS fails, as on a machine where none is installed, so the CPU
 * without AVX2 (EFFCAM_NO_AVX2=1) runs kernels/blas.c's fallback, the
 * reference GEMM. Every other dlopen goes to the real one. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>

void *dlopen(const char *file, int mode)
{
    if (file && strstr(file, "openblas")) return NULL;
    void *(*real)(const char *, int) = (void *(*)(const char *, int))dlsym(RTLD_NEXT, "dlopen");
    return real ? real(file, mode) : NULL;
}
