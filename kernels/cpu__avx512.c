/* cpu__avx512.c - the zmm half of the FMA throughput probe (cpu.c, bench/kbench.c). */
#include <immintrin.h>

#include "kernels/kernels.h"

/* iters x 24 dependent-chain zmm FMAs; as ec_cpu_fma_probe__avx2 (distinct
 * chains from a run-time seed, m just under 1) with 24 of the 32 zmm registers:
 * twice the chains, so a core with two 512-bit FMA units and a longer latency
 * is still measured at its peak. */
float ec_cpu_fma_probe__avx512(long iters, float seed)
{
    __m512 acc[24];
    for (int j = 0; j < 24; j++) acc[j] = _mm512_set1_ps(seed + 0.125f * (float)j);
    const __m512 m = _mm512_set1_ps(seed * 0.999999f), a = _mm512_set1_ps(seed * 1e-6f);
    for (long i = 0; i < iters; i++) {
        _Pragma("GCC unroll 24") for (int j = 0; j < 24; j++) acc[j] = _mm512_fmadd_ps(acc[j], m, a);
    }
    __m512 s = acc[0];
    for (int j = 1; j < 24; j++) s = _mm512_add_ps(s, acc[j]);
    return _mm512_reduce_add_ps(s);
}
