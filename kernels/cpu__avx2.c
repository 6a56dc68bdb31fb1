/* cpu__avx2.c - the ymm half of the FMA throughput probe (cpu.c, bench/kbench.c). */
#include <immintrin.h>

#include "kernels/kernels.h"

/* iters x 12 dependent-chain ymm FMAs. 12 chains, each started from its own
 * value derived from the run-time seed, so the compiler can neither fold nor
 * merge them (identical chains would be computed once); 12 covers the FMA
 * latency (4-5 cycles) times the 2 FMA ports of current cores, in 12 of the 16
 * ymm registers with m and a. acc = acc * m + a with m just under 1 converges
 * towards a / (1 - m) and never overflows or goes denormal. */
float ec_cpu_fma_probe__avx2(long iters, float seed)
{
    __m256 acc[12];
    for (int j = 0; j < 12; j++) acc[j] = _mm256_set1_ps(seed + 0.125f * (float)j);
    const __m256 m = _mm256_set1_ps(seed * 0.999999f), a = _mm256_set1_ps(seed * 1e-6f);
    for (long i = 0; i < iters; i++) {
        _Pragma("GCC unroll 12") for (int j = 0; j < 12; j++) acc[j] = _mm256_fmadd_ps(acc[j], m, a);
    }
    __m256 s = acc[0];
    for (int j = 1; j < 12; j++) s = _mm256_add_ps(s, acc[j]);
    return _mm256_cvtss_f32(s);
}
