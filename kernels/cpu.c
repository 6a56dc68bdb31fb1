/* cpu.c - run-time ISA detection for the kernel dispatchers.
 *
 * Three tiers: AVX-512 (ec_cpu_has_avx512) > AVX2 + FMA + F16C (ec_cpu_has_avx2)
 * > the scalar references. Each answer is computed once per process and cached;
 * every dispatcher asks per call. EFFCAM_NO_AVX2=1 forces scalar (and so no
 * AVX-512 either), EFFCAM_NO_AVX512=1 forces the AVX2 tier. */
#include <cpuid.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"

/* "1", "yes", ... set; unset, empty and "0" are not */
static int env_set(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

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
    if (env_set("EFFCAM_NO_AVX2")) ok = 0;
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

/* ---- AVX-512 ---------------------------------------------------------------- */

/* XCR0 (which register state the OS saves on a context switch); only valid to
 * ask when CPUID says OSXSAVE. */
static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}

/* AVX-512 F/BW/DQ/VL plus FMA and F16C in CPUID, and the OS saving the opmask
 * and all of ZMM0-31 (XCR0 bits 1 SSE, 2 AVX, 5 opmask, 6 ZMM0-15 upper halves,
 * 7 ZMM16-31): without the last three a context switch would corrupt them. */
static int avx512_usable(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const unsigned fma = 1u << 12, osxsave = 1u << 27, avx = 1u << 28, f16c = 1u << 29;
    if ((c & (fma | osxsave | avx | f16c)) != (fma | osxsave | avx | f16c)) return 0;
    if ((xgetbv0() & 0xe6) != 0xe6) return 0;
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    const unsigned f = 1u << 16, dq = 1u << 17, bw = 1u << 30, vl = 1u << 31;
    return (b & (f | dq | bw | vl)) == (f | dq | bw | vl);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* zmm FLOP rate over ymm FLOP rate on this core, from the two probe loops
 * (kernels.h): ~2 where 512-bit FMAs run at full width (Intel server cores with
 * two 512-bit FMA units, AMD Zen 5), ~1 where a 512-bit FMA takes a 256-bit
 * unit twice (Zen 4) or two ports fused into one (Intel parts with a single
 * 512-bit FMA unit). Each loop is ~2-3 us; the best of 5 alternating runs of
 * each drops the ones a preemption or interrupt hit; 16 first runs warm the
 * 512-bit units up (Intel powers their upper halves down when idle, and runs
 * zmm at a lower throughput for the first ~10-20 us). ~80 us in all, once. */
static double avx512_speedup(void)
{
    const long iters = 1024;                 /* x 24 zmm or x 2 x 12 ymm FMAs: ~3 us */
    volatile float sink = 0.0f;
    for (int i = 0; i < 16; i++) sink += ec_cpu_fma_probe__avx512(iters, 1.0f);
    double best512 = 1e300, best2 = 1e300;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_ns();
        sink += ec_cpu_fma_probe__avx512(iters, 1.0f);
        double t1 = now_ns();
        sink += ec_cpu_fma_probe__avx2(2 * iters, 1.0f);
        double t2 = now_ns();
        if (t1 - t0 < best512) best512 = t1 - t0;
        if (t2 - t1 < best2) best2 = t2 - t1;
    }
    (void)sink;
    /* the same FMA count in both (iters x 24 zmm, 2 iters x 12 ymm), 16 vs 8 lanes */
    return best512 > 0 ? 2.0 * best2 / best512 : 0.0;
}

static int is_intel(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return 0;
    return b == 0x756e6547u && d == 0x49656e69u && c == 0x6c65746eu;   /* "GenuineIntel" */
}

/* The AVX-512 twins run when the hardware and OS allow them and either
 * - the measured zmm/ymm FLOP ratio is >= 1.5: a full 512-bit datapath, the
 *   twins can reach twice the AVX2 kernels' FMA rate; or
 * - it is lower (half-width 512-bit execution) on a non-Intel CPU, i.e. AMD
 *   Zen 4 (family 0x19): the peak is the same either way, but the zmm kernels
 *   have 32 registers (a 14x32 GEMM tile: 0.57 loads per FMA against the 6x16
 *   AVX2 tile's 0.67), half the instructions per FLOP and free tail masks, and
 *   Zen 4 does not lower its clock for zmm code. OpenBLAS measured the same
 *   and runs its AVX-512 (Skylake-X / Cooper Lake) kernels on Zen 4 (its pull
 *   request 4303); Zen 4 is not available to us to repeat that.
 * Intel parts with a single 512-bit FMA unit (some Xeon Bronze/Silver, client
 * Ice Lake / Tiger Lake) stay on AVX2: the peak is the same and heavy zmm code
 * drops their clock (AVX-512 licence), e.g. 2.2 -> 1.4 GHz on a Xeon Silver.
 * Why the ratio and not the kernels themselves are timed: a kernel race near a
 * tie could go either way from one process to the next, and the AVX-512 twins
 * do not round every activation exactly like the AVX2 ones (14-bit reciprocal
 * estimates instead of 12-bit), so the same image could give different last
 * bits run to run. The FMA ratio is ~1 or ~2 with nothing in between, so a
 * threshold at 1.5 decides the same way every time. */
static int ec_cpu_detect_avx512(void)
{
    if (!ec_cpu_has_avx2() || env_set("EFFCAM_NO_AVX512") || !avx512_usable()) return 0;
    return avx512_speedup() >= 1.5 || !is_intel();
}

int ec_cpu_has_avx512(void)
{
    /* The calibration is a measurement: two racing first calls could in theory
     * disagree, so the first stored answer wins and every caller returns it
     * (all threads of a forward pass must run the same kernels). */
    static _Atomic int cached = -1;
    int v = atomic_load_explicit(&cached, memory_order_acquire);
    if (v < 0) {
        int mine = ec_cpu_detect_avx512(), expect = -1;
        if (atomic_compare_exchange_strong(&cached, &expect, mine)) v = mine;
        else v = expect;
    }
    return v;
}

/* One core's FMA peak in GFLOP/s at the vector width the kernels run (512 bits
 * where ec_cpu_has_avx512(), 256 with AVX2, 0 for the scalar kernels): the
 * probe loops of avx512_speedup, warmed up, best of 40 runs of ~10 us each (a
 * preemption only adds time). ~1 ms; for reports (effcam bench --layers), not
 * for decisions. *bits gets the width measured. */
double ec_cpu_fma_peak_gflops(int *bits)
{
    int zmm = ec_cpu_has_avx512(), ymm = ec_cpu_has_avx2();
    if (bits) *bits = zmm ? 512 : ymm ? 256 : 0;
    if (!ymm) return 0.0;
    const long iters = 4096;   /* x 24 zmm or x 12 ymm FMAs */
    float (*probe)(long, float) = zmm ? ec_cpu_fma_probe__avx512 : ec_cpu_fma_probe__avx2;
    volatile float sink = 0.0f;
    for (int i = 0; i < 16; i++) sink += probe(iters, 1.0f);
    double best = 1e300;
    for (int rep = 0; rep < 40; rep++) {
        double t0 = now_ns();
        sink += probe(iters, 1.0f);
        double t = now_ns() - t0;
        if (t > 0 && t < best) best = t;
    }
    (void)sink;
    return best < 1e300 ? ec_cpu_fma_probe_flops(iters, zmm) / best : 0.0;   /* per ns = GFLOP/s */
}
