/* f16.c - IEEE 754 binary16 <-> binary32, bit-exact and rounding-mode independent.
 *
 * Integer arithmetic only, so the result never depends on MXCSR (FTZ/DAZ,
 * rounding mode). NaNs are quieted the way VCVTPH2PS/VCVTPS2PH do it (quiet bit
 * set, top payload bits kept), so the scalar code and the F16C path agree on
 * every one of the 65536 halves. */
#include <string.h>

#include "kernels/kernels.h"

static inline uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float f32_from(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float ec_f16_to_f32(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t man = h & 0x3ffu;
    if (exp == 0x1f)                                     /* inf, or NaN made quiet */
        return f32_from(sign | 0x7f800000u | (man << 13) | (man ? 0x00400000u : 0));
    if (exp == 0) {
        /* Zero or subnormal: man * 2^-24, exact in float (man < 2^10). */
        float v = (float)man * 0x1p-24f;
        return f32_from(sign | f32_bits(v));
    }
    /* Normal: rebias the exponent (127 - 15 = 112), widen the mantissa. */
    return f32_from(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t ec_f32_to_f16(float f)
{
    uint32_t u = f32_bits(f);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    u &= 0x7fffffffu;
    if (u >= 0x7f800000u)                                /* inf, or NaN made quiet */
        return (uint16_t)(sign | 0x7c00u | (u > 0x7f800000u ? 0x200u | ((u >> 13) & 0x3ffu) : 0));
    /* 65520 = 0x477ff000 is the midpoint between 65504 (max half, odd mantissa)
     * and 2^16: ties go to even = 2^16 = inf, so everything from it up overflows. */
    if (u >= 0x477ff000u)
        return (uint16_t)(sign | 0x7c00u);
    if (u >= 0x38800000u) {                              /* >= 2^-14: half normal */
        /* Rebias, then round the 13 dropped bits to nearest even: add just under
         * half (0xfff) plus the kept LSB, so exact ties round up only when odd.
         * A mantissa carry correctly bumps the exponent. */
        uint32_t v = u - (112u << 23);
        v += 0x0fffu + ((v >> 13) & 1u);
        return (uint16_t)(sign | (v >> 13));
    }
    /* 2^-25 (0x33000000) is the tie between 0 and the smallest subnormal 2^-24;
     * even is 0, so it and everything below flush to (signed) zero. */
    if (u <= 0x33000000u)
        return sign;
    /* Half subnormal: value = m * 2^(e-150) with the implicit bit in m; in units
     * of 2^-24 that is m >> (126 - e), shift in [14, 24]. Round to nearest even
     * by hand; a result of 0x400 is the smallest normal, encoded correctly. */
    const uint32_t e = u >> 23;
    const uint32_t m = (u & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - e;
    const uint32_t half = 1u << (shift - 1);
    const uint32_t rem = m & ((1u << shift) - 1u);
    uint32_t r = m >> shift;
    if (rem > half || (rem == half && (r & 1u)))
        r++;
    return (uint16_t)(sign | r);
}

void ec_f16_to_f32_n__ref(const uint16_t *restrict src, float *restrict dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = ec_f16_to_f32(src[i]);
}

void ec_f16_to_f32_n(const uint16_t *restrict src, float *restrict dst, size_t n)
{
    if (ec_cpu_has_avx512())
        ec_f16_to_f32_n__avx512(src, dst, n);
    else if (ec_cpu_has_avx2())
        ec_f16_to_f32_n__avx2(src, dst, n);
    else
        ec_f16_to_f32_n__ref(src, dst, n);
}

void ec_f16_to_f32_scale_cols__ref(const uint16_t *restrict src, float *restrict dst, size_t rows, int cols,
                                   const float *restrict scale)
{
    if (!scale) {
        ec_f16_to_f32_n__ref(src, dst, rows * (size_t)cols);
        return;
    }
    for (size_t r = 0; r < rows; r++)
        for (int j = 0; j < cols; j++)
            dst[r * cols + j] = ec_f16_to_f32(src[r * cols + j]) * scale[j];
}

void ec_f16_to_f32_scale_cols(const uint16_t *restrict src, float *restrict dst, size_t rows, int cols,
                              const float *restrict scale)
{
    if (ec_cpu_has_avx512())
        ec_f16_to_f32_scale_cols__avx512(src, dst, rows, cols, scale);
    else if (ec_cpu_has_avx2())
        ec_f16_to_f32_scale_cols__avx2(src, dst, rows, cols, scale);
    else
        ec_f16_to_f32_scale_cols__ref(src, dst, rows, cols, scale);
}

void ec_f32_to_f16_n__ref(const float *restrict src, uint16_t *restrict dst, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = ec_f32_to_f16(src[i]);
}

void ec_f32_to_f16_n(const float *restrict src, uint16_t *restrict dst, size_t n)
{
    if (ec_cpu_has_avx512())
        ec_f32_to_f16_n__avx512(src, dst, n);
    else if (ec_cpu_has_avx2())
        ec_f32_to_f16_n__avx2(src, dst, n);
    else
        ec_f32_to_f16_n__ref(src, dst, n);
}

/* ---- the loader's check: any infinity or NaN among a weight tensor's values ---- */

int ec_any_nonfinite__ref(const void *p, size_t n, int f16)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        if (f16) {
            uint16_t h;
            memcpy(&h, b + 2 * i, 2);   /* memory images may not be aligned */
            if ((h & 0x7c00u) == 0x7c00u) return 1;
        } else {
            uint32_t u;
            memcpy(&u, b + 4 * i, 4);
            if ((u & 0x7f800000u) == 0x7f800000u) return 1;
        }
    }
    return 0;
}

int ec_any_nonfinite(const void *p, size_t n, int f16)
{
    if (ec_cpu_has_avx512()) return ec_any_nonfinite__avx512(p, n, f16);
    if (ec_cpu_has_avx2()) return ec_any_nonfinite__avx2(p, n, f16);
    return ec_any_nonfinite__ref(p, n, f16);
}
