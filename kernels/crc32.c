/* crc32.c - zlib's CRC-32, the .ecm file checksum: a carry-less-multiply
 * kernel (PCLMULQDQ, picked at run time) and zlib's table code as its
 * reference twin. */
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define EC_CRC_CLMUL 1
#endif

#include "kernels.h"

#ifdef EC_CRC_CLMUL
/* Four consecutive 128-bit lanes of folded state (64 bytes) -> the CRC: each
 * lane folded into the next (x^(128+-32) mod P), then zlib's CRC of the last
 * from a zero register (zlib's ~0 start) is the CRC of the whole. */
__attribute__((target("pclmul,sse4.1")))
static uLong ec_crc_lanes4(__m128i x0, __m128i x1, __m128i x2, __m128i x3)
{
    const __m128i k1 = _mm_set_epi64x(0x0ccaa009eLL, 0x1751997d0LL);
#define EC_FOLD(x, k, d) _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11)), d)
    x1 = EC_FOLD(x0, k1, x1);
    x2 = EC_FOLD(x1, k1, x2);
    x3 = EC_FOLD(x2, k1, x3);
#undef EC_FOLD
    unsigned char r[16];
    _mm_storeu_si128((__m128i *)r, x3);
    return crc32(0xffffffffUL, r, 16);
}

/* zlib's CRC-32 (reflected, poly 0x04c11db7) of b[0, n), n >= 64 a multiple of
 * 64, extending crc: carry-less multiplication folds four 128-bit lanes forward
 * by 512 bits per step (~3.5x zlib's table code), then into one lane; folding
 * keeps the message's residue mod the polynomial, so the CRC of that last 16-byte
 * lane (zlib, from a zero register) is the CRC of the whole. Constants: x^(512+-32)
 * and x^(128+-32) mod P, bit-reflected, for the 4-lane and 1-lane folds. */
__attribute__((target("pclmul,sse4.1")))
static uLong ec_crc_clmul(uLong crc, const unsigned char *b, size_t n)
{
    const __m128i k4 = _mm_set_epi64x(0x1c6e41596LL, 0x154442bd4LL);   /* 4-lane fold */
    __m128i x0 = _mm_loadu_si128((const __m128i *)b), x1 = _mm_loadu_si128((const __m128i *)(b + 16));
    __m128i x2 = _mm_loadu_si128((const __m128i *)(b + 32)), x3 = _mm_loadu_si128((const __m128i *)(b + 48));
    /* zlib's register is kept inverted: put ~crc into the first 4 bytes */
    x0 = _mm_xor_si128(x0, _mm_cvtsi32_si128((int)(uint32_t)~crc));
#define EC_FOLD(x, k, d) _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11)), d)
    for (size_t off = 64; off < n; off += 64) {
        x0 = EC_FOLD(x0, k4, _mm_loadu_si128((const __m128i *)(b + off)));
        x1 = EC_FOLD(x1, k4, _mm_loadu_si128((const __m128i *)(b + off + 16)));
        x2 = EC_FOLD(x2, k4, _mm_loadu_si128((const __m128i *)(b + off + 32)));
        x3 = EC_FOLD(x3, k4, _mm_loadu_si128((const __m128i *)(b + off + 48)));
    }
#undef EC_FOLD
    return ec_crc_lanes4(x0, x1, x2, x3);
}

/* The same folding with VPCLMULQDQ on 512-bit registers, for n >= 256 a
 * multiple of 256: four registers (16 lanes) fold forward by 2048 bits per
 * step, then into one register by 512-bit folds lane by lane (the constants of
 * the 4-lane loop above), whose four lanes are exactly that loop's x0..x3 and
 * end the same way. ~3x the 128-bit loop on Zen 5 (13.6 -> ~40 GB/s in cache),
 * which matters on a cold start: the first predict checks all 41 MB of a
 * V2-S's weights. Constants: x^(2048+-32) mod P, bit-reflected. */
__attribute__((target("avx512f,avx512bw,vpclmulqdq,pclmul,sse4.1")))
static uLong ec_crc_vpclmul(uLong crc, const unsigned char *b, size_t n)
{
    const __m512i k16 = _mm512_broadcast_i32x4(_mm_set_epi64x(0x1322d1430LL, 0x11542778aLL));
    const __m512i k4 = _mm512_broadcast_i32x4(_mm_set_epi64x(0x1c6e41596LL, 0x154442bd4LL));
    __m512i a0 = _mm512_loadu_si512(b), a1 = _mm512_loadu_si512(b + 64);
    __m512i a2 = _mm512_loadu_si512(b + 128), a3 = _mm512_loadu_si512(b + 192);
    a0 = _mm512_xor_si512(a0, _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)(uint32_t)~crc)));
    /* x.lo * k.lo ^ x.hi * k.hi ^ d, per 128-bit lane (0x96: a three-way XOR) */
#define EC_FOLD5(x, k, d) \
    _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(x, k, 0x00), _mm512_clmulepi64_epi128(x, k, 0x11), d, 0x96)
    for (size_t off = 256; off < n; off += 256) {
        a0 = EC_FOLD5(a0, k16, _mm512_loadu_si512(b + off));
        a1 = EC_FOLD5(a1, k16, _mm512_loadu_si512(b + off + 64));
        a2 = EC_FOLD5(a2, k16, _mm512_loadu_si512(b + off + 128));
        a3 = EC_FOLD5(a3, k16, _mm512_loadu_si512(b + off + 192));
    }
    a1 = EC_FOLD5(a0, k4, a1);
    a2 = EC_FOLD5(a1, k4, a2);
    a3 = EC_FOLD5(a2, k4, a3);
#undef EC_FOLD5
    return ec_crc_lanes4(_mm512_extracti32x4_epi32(a3, 0), _mm512_extracti32x4_epi32(a3, 1),
                         _mm512_extracti32x4_epi32(a3, 2), _mm512_extracti32x4_epi32(a3, 3));
}
#endif

/* zlib's table code, in 1 GiB pieces (zlib takes uInt lengths). */
uint32_t ec_crc32_update__ref(uint32_t crc32_in, const unsigned char *b, size_t n)
{
    uLong crc = crc32_in;
    for (size_t off = 0; off < n;) {
        size_t k = n - off > (1u << 30) ? (1u << 30) : n - off;
        crc = crc32(crc, b + off, (uInt)k);
        off += k;
    }
    return (uint32_t)crc;
}

#ifdef EC_CRC_CLMUL
int ec_cpu_has_clmul(void)
{
    static int has = -1;   /* racing first callers compute the same value */
    if (has < 0) has = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
    return has;
}

/* b[0, n): whole blocks by fold when there are at least min bytes, the rest
 * by tail (each a CRC extending crc, so the two pieces chain). */
static uint32_t ec_crc_split(uint32_t crc, const unsigned char *b, size_t n, size_t min, size_t block,
                             uLong (*fold)(uLong, const unsigned char *, size_t),
                             uint32_t (*tail)(uint32_t, const unsigned char *, size_t))
{
    if (n >= min) {
        const size_t nb = n - n % block;
        crc = (uint32_t)fold(crc, b, nb);
        b += nb, n -= nb;
    }
    return tail(crc, b, n);
}

uint32_t ec_crc32_update__clmul(uint32_t crc, const unsigned char *b, size_t n)
{
    return ec_crc_split(crc, b, n, 256, 64, ec_crc_clmul, ec_crc32_update__ref);
}

/* 512-bit folding where AVX-512 is in use (ec_cpu_has_avx512: EFFCAM_NO_AVX512
 * turns it off with the other AVX-512 kernels) and the CPU has VPCLMULQDQ. */
int ec_cpu_has_vpclmul(void)
{
    static int has = -1;
    if (has < 0) has = ec_cpu_has_avx512() && ec_cpu_has_clmul() && __builtin_cpu_supports("vpclmulqdq");
    return has;
}

uint32_t ec_crc32_update__vpclmul(uint32_t crc, const unsigned char *b, size_t n)
{
    return ec_crc_split(crc, b, n, 512, 256, ec_crc_vpclmul, ec_crc32_update__clmul);
}
#else
int ec_cpu_has_clmul(void) { return 0; }
uint32_t ec_crc32_update__clmul(uint32_t crc, const unsigned char *b, size_t n) { return ec_crc32_update__ref(crc, b, n); }
int ec_cpu_has_vpclmul(void) { return 0; }
uint32_t ec_crc32_update__vpclmul(uint32_t crc, const unsigned char *b, size_t n) { return ec_crc32_update__ref(crc, b, n); }
#endif

uint32_t ec_crc32_update(uint32_t crc, const unsigned char *b, size_t n)
{
    return ec_cpu_has_vpclmul() ? ec_crc32_update__vpclmul(crc, b, n)
           : ec_cpu_has_clmul()  ? ec_crc32_update__clmul(crc, b, n) : ec_crc32_update__ref(crc, b, n);
}

