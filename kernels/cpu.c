/* cpu.c - run-time ISA detection for the kernel dispatchers. */
#include "kernels/kernels.h"

int ec_cpu_has_avx2(void)
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
    return ok;
}
