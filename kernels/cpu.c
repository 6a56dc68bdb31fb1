/* cpu.c - run-time ISA detection for the kernel dispatchers. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

static int ec_cpu_detect(void)
{
    /* Idempotent; needed when a dispatcher runs before libgcc's constructor
     * (e.g. from another constructor). __builtin_cpu_supports("avx2") also
     * checks that the OS saves the YMM state (XGETBV), not just CPUID. */
    __builtin_cpu_init();
    int ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#if !defined(__clang__)
    /* Clang (14) rejects the "f16c" string; every AVX2 CPU shipped has F16C
     * (Intel since Ivy Bridge, AMD since Piledriver), so GCC alone checks it. */
    ok = ok && __builtin_cpu_supports("f16c");
#endif
    /* EFFCAM_NO_AVX2=1 takes the scalar and OpenBLAS paths a CPU without AVX2
     * would (the test suite runs the tiny models that way too) */
    const char *no = getenv("EFFCAM_NO_AVX2");
    if (no && *no && strcmp(no, "0") != 0) ok = 0;
    return ok;
}

int ec_cpu_has_avx2(void)
{
    /* asked per kernel call: detected once (0 / 1), -1 until then; racing first
     * calls compute the same value */
    static _Atomic int cached = -1;
    int v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v < 0) {
        v = ec_cpu_detect();
        atomic_store_explicit(&cached, v, memory_order_relaxed);
    }
    return v;
}
