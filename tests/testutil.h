/* testutil.h - what several tests compute the same way: one deterministic
 * random stream, exact-size float buffers, the map comparisons the fixture
 * tests print, and a Keras file converted in-process (tests only). */
#ifndef EFFCAM_TEST_TESTUTIL_H
#define EFFCAM_TEST_TESTUTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* xorshift64*: the same numbers on every machine; a test seeds it once. */
static uint64_t t_rng_state = 0x9E3779B97F4A7C15ull;

static inline void t_rng_seed(uint64_t seed) { t_rng_state = seed ? seed : 1; }

static inline uint32_t t_rng_u32(void)
{
    t_rng_state ^= t_rng_state >> 12;
    t_rng_state ^= t_rng_state << 25;
    t_rng_state ^= t_rng_state >> 27;
    return (uint32_t)((t_rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

/* uniform in [lo, hi), 24 random bits */
static inline float t_rng_uniform(float lo, float hi) { return lo + (hi - lo) * (float)(t_rng_u32() >> 8) * 0x1p-24f; }

static inline void t_fill(float *p, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) p[i] = t_rng_uniform(lo, hi);
}

/* Exact-size allocations, so ASan sees any read or write past a tensor. */
static inline float *t_fmalloc(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) { printf("FAIL alloc: out of memory\n"); exit(1); }
    return p;
}

/* Pearson correlation; two flat maps are alike (1), one flat one not (0). */
static inline double t_pearson(const float *a, const float *b, size_t n)
{
    double ma = 0, mb = 0;
    for (size_t i = 0; i < n; i++) ma += a[i], mb += b[i];
    ma /= (double)n, mb /= (double)n;
    double sab = 0, saa = 0, sbb = 0;
    for (size_t i = 0; i < n; i++) {
        const double da = a[i] - ma, db = b[i] - mb;
        sab += da * db, saa += da * da, sbb += db * db;
    }
    if (saa == 0 || sbb == 0) return saa == sbb ? 1.0 : 0.0;
    return sab / sqrt(saa * sbb);
}

/* largest |a - b|; a NaN on either side counts as infinitely far */
static inline double t_max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, isnan(a[i]) || isnan(b[i]) ? INFINITY : fabs((double)a[i] - b[i]));
    return m;
}

#endif
