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
    const __m128i k1 = _mm_set_epi64x(0x0ccaa009eLL, 0x1751997d0LL);   /* 1-lane fold */
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
    x1 = EC_FOLD(x0, k1, x1);
    x2 = EC_FOLD(x1, k1, x2);
    x3 = EC_FOLD(x2, k1, x3);
#undef EC_FOLD
    unsigned char r[16];
    _mm_storeu_si128((__m128i *)r, x3);
    return crc32(0xffffffffUL, r, 16);   /* zero register: zlib's ~0 start */
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

uint32_t ec_crc32_update__clmul(uint32_t crc, const unsigned char *b, size_t n)
{
    if (n >= 256) {
        size_t nb = n & ~(size_t)63;
        crc = (uint32_t)ec_crc_clmul(crc, b, nb);
        b += nb, n -= nb;
    }
    return ec_crc32_update__ref(crc, b, n);
}
#else
int ec_cpu_has_clmul(void) { return 0; }
uint32_t ec_crc32_update__clmul(uint32_t crc, const unsigned char *b, size_t n) { return ec_crc32_update__ref(crc, b, n); }
#endif

uint32_t ec_crc32_update(uint32_t crc, const unsigned char *b, size_t n)
{
    return ec_cpu_has_clmul() ? ec_crc32_update__clmul(crc, b, n) : ec_crc32_update__ref(crc, b, n);
}

