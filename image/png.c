/* png.c - the PNG encoder for overlays: Paeth-filtered rows and our own
 * literal-only deflate blocks (a dynamic Huffman code per block of rows), in
 * one IDAT chunk; zlib only for the checksums. */
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "../engine/error.h"
#include "image.h"

/* ---- output buffer and PNG chunks ------------------------------------------------ */

typedef struct { uint8_t *p; size_t n, cap; int oom; } im_buf;

/* Grows b so that `extra` more bytes fit; 0 when out of memory. */
static int im_buf_reserve(im_buf *b, size_t extra)
{
    if (b->oom) return 0;
    if (b->cap - b->n >= extra) return 1;
    size_t ncap = b->cap ? b->cap : 4096;
    while (ncap - b->n < extra) {
        if (ncap > SIZE_MAX / 2) { b->oom = 1; return 0; }
        ncap *= 2;
    }
    uint8_t *np = realloc(b->p, ncap);
    if (!np) { b->oom = 1; return 0; }
    b->p = np;
    b->cap = ncap;
    return 1;
}

static void im_buf_put(im_buf *b, const void *src, size_t n)
{
    if (!im_buf_reserve(b, n)) return;
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void im_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* length, type, data, CRC-32 of type + data */
static void im_png_chunk(im_buf *b, const char *type, const uint8_t *data, size_t n)
{
    uint8_t hdr[8], crc[4];
    im_put_be32(hdr, (uint32_t)n);
    memcpy(hdr + 4, type, 4);
    uLong c = crc32(0L, (const Bytef *)type, 4);
    if (n) c = crc32(c, data, (uInt)n);
    im_put_be32(crc, (uint32_t)c);
    im_buf_put(b, hdr, 8);
    if (n) im_buf_put(b, data, n);
    im_buf_put(b, crc, 4);
}

/* ---- deflate, literals only ---------------------------------------------------
 * The overlay is encoded once per request, on the latency path. After the Paeth
 * filter its bytes are small residuals whose repeats are short and scattered: at
 * 300x300, zlib's fastest settings (level 1, run-length matching) took 5 ms and
 * its Huffman-only mode 3.5 ms for the same size within 1%. This writes what
 * Huffman-only writes, in well under a millisecond: per block of rows, a dynamic
 * Huffman code over the 256 byte values and end-of-block (RFC 1951 3.2.7), no
 * matches. The code-length code is fixed (the lengths 0..15, 4 bits each). */

typedef struct {
    im_buf *b;
    uint64_t acc;                 /* pending bits, LSB first */
    int n;                        /* how many */
} im_bits;

/* Appends the low `len` bits of v (len <= 32). The caller has reserved room. */
static inline void im_bits_put(im_bits *w, uint32_t v, int len)
{
    w->acc |= (uint64_t)v << w->n;
    w->n += len;
    if (w->n >= 32) {
        uint8_t *o = w->b->p + w->b->n;
        for (int i = 0; i < 4; i++) o[i] = (uint8_t)(w->acc >> (8 * i));
        w->b->n += 4;
        w->acc >>= 32;
        w->n -= 32;
    }
}

static void im_bits_flush(im_bits *w)   /* to a byte boundary */
{
    while (w->n > 0) {
        w->b->p[w->b->n++] = (uint8_t)w->acc;
        w->acc >>= 8;
        w->n -= 8;
    }
    w->acc = 0;
    w->n = 0;
}

enum { IM_NSYM = 257, IM_MAXBITS = 15 };

typedef struct { uint32_t f; int s; } im_sym;

static int im_sym_cmp(const void *a, const void *b)
{
    const im_sym *x = a, *y = b;
    return x->f != y->f ? (x->f < y->f ? -1 : 1) : x->s - y->s;
}

/* Code lengths (<= 15 bits) of a Huffman code for freq[0..IM_NSYM): a Huffman
 * tree by the two-queue method over the symbols sorted by frequency; then, if
 * it is deeper than 15, the depth counts are evened out the way JPEG does it
 * (ITU T.81 K.3: a pair at the deepest level moves up, a leaf above goes down,
 * which keeps the code complete), and the lengths are dealt back in frequency
 * order. At least two symbols get a code, so the code is always complete. */
static void im_huff_lengths(const uint32_t *freq, uint8_t *len)
{
    im_sym s[IM_NSYM];
    int m = 0;
    for (int i = 0; i < IM_NSYM; i++) {
        len[i] = 0;
        if (freq[i]) s[m].f = freq[i], s[m].s = i, m++;
    }
    for (int i = 0; m < 2; i++)   /* pad with unused symbols of frequency 0 */
        if (!freq[i] && (m == 0 || s[0].s != i)) s[m].f = 0, s[m].s = i, m++;
    qsort(s, (size_t)m, sizeof *s, im_sym_cmp);

    /* nodes 0..m-1 the sorted leaves, m.. the internal nodes in creation order
     * (their weights never decrease, so both lists stay sorted) */
    uint64_t wt[2 * IM_NSYM];
    int parent[2 * IM_NSYM], depth[2 * IM_NSYM];
    for (int i = 0; i < m; i++) wt[i] = s[i].f;
    int leaf = 0, node = m, made = m;
    for (; made < 2 * m - 1; made++) {
        int pick[2];
        for (int k = 0; k < 2; k++)
            pick[k] = leaf < m && (node >= made || wt[leaf] <= wt[node]) ? leaf++ : node++;
        wt[made] = wt[pick[0]] + wt[pick[1]];
        parent[pick[0]] = parent[pick[1]] = made;
    }
    depth[2 * m - 2] = 0;
    for (int i = 2 * m - 3; i >= 0; i--) depth[i] = depth[parent[i]] + 1;

    int count[IM_NSYM + 1] = {0};   /* leaves per depth, depth <= m - 1 */
    int maxd = 0;
    for (int i = 0; i < m; i++) {
        count[depth[i]]++;
        if (depth[i] > maxd) maxd = depth[i];
    }
    for (int i = maxd; i > IM_MAXBITS; i--)
        while (count[i] > 0) {
            int j = i - 2;
            while (count[j] == 0) j--;
            count[i] -= 2;
            count[i - 1] += 1;
            count[j + 1] += 2;
            count[j] -= 1;
        }
    /* the least frequent symbols get the longest codes */
    int k = 0;
    for (int d = IM_MAXBITS; d >= 1; d--)
        for (int c = 0; c < count[d]; c++) len[s[k++].s] = (uint8_t)d;
}

/* Canonical codes (RFC 1951 3.2.2) for the lengths, bit-reversed for LSB-first output. */
static void im_huff_codes(const uint8_t *len, int n, uint16_t *code)
{
    int count[IM_MAXBITS + 1] = {0}, next[IM_MAXBITS + 2];
    for (int i = 0; i < n; i++) count[len[i]]++;
    count[0] = 0;
    next[1] = 0;
    for (int b = 1; b <= IM_MAXBITS; b++) next[b + 1] = (next[b] + count[b]) << 1;
    for (int i = 0; i < n; i++) {
        if (!len[i]) { code[i] = 0; continue; }
        unsigned c = (unsigned)next[len[i]]++, r = 0;
        for (int b = 0; b < len[i]; b++) r |= ((c >> b) & 1u) << (len[i] - 1 - b);
        code[i] = (uint16_t)r;
    }
}

/* One dynamic-Huffman block of the n bytes at src (final: BFINAL set). */
static void im_deflate_block(im_bits *w, const uint8_t *src, size_t n, int final)
{
    uint32_t freq[IM_NSYM] = {0};
    for (size_t i = 0; i < n; i++) freq[src[i]]++;
    freq[256] = 1;
    uint8_t len[IM_NSYM];
    uint16_t code[IM_NSYM];
    im_huff_lengths(freq, len);
    im_huff_codes(len, IM_NSYM, code);
    /* header <= 3 + 14 + 57 + 259 * 4 bits; data <= 15 bits a byte */
    if (!im_buf_reserve(w->b, 160 + n * 2 + 16)) return;
    static const uint8_t order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    im_bits_put(w, final ? 1u : 0u, 1);
    im_bits_put(w, 2, 2);                          /* dynamic Huffman */
    im_bits_put(w, 257 - 257, 5);                  /* HLIT: 257 literal/length codes */
    im_bits_put(w, 2 - 1, 5);                      /* HDIST: 2 distance codes (unused) */
    im_bits_put(w, 19 - 4, 4);                     /* HCLEN: all 19 code-length codes */
    for (int i = 0; i < 19; i++) im_bits_put(w, order[i] <= 15 ? 4u : 0u, 3);
    /* code-length symbols 0..15 all 4 bits long: the canonical code of symbol
     * v is v itself, sent bit-reversed */
#define IM_REV4(v) (((v) >> 3 & 1u) | ((v) >> 1 & 2u) | ((v) << 1 & 4u) | ((v) << 3 & 8u))
    for (int i = 0; i < IM_NSYM; i++) im_bits_put(w, IM_REV4((unsigned)len[i]), 4);
    im_bits_put(w, IM_REV4(1u), 4);                /* distance codes 0 and 1, one bit each */
    im_bits_put(w, IM_REV4(1u), 4);
#undef IM_REV4
    for (size_t i = 0; i < n; i++) im_bits_put(w, code[src[i]], len[src[i]]);
    im_bits_put(w, code[256], len[256]);
}

/* ---- PNG encoder -------------------------------------------------------------- */

/* Paeth filter of one row (PNG 9.4): out[i] = cur[i] - paeth(left, up, upper
 * left), the neighbours from the unfiltered image (zero outside it). The first
 * row's prev is a zero row, where Paeth is Sub; the first pixel's left is zero,
 * where Paeth is Up. Every row uses it: on the overlay it compresses as well as
 * libpng's per-row choice among the five filters, for a fifth of the work. */
static void im_png_paeth_row(const uint8_t *cur, const uint8_t *prev, size_t rb, int bpp, uint8_t *out)
{
    size_t nb = (size_t)bpp < rb ? (size_t)bpp : rb, i = nb;
    for (size_t k = 0; k < nb; k++) out[k] = (uint8_t)(cur[k] - prev[k]);
#ifdef __SSE2__
    /* 8 bytes at a time in 16-bit lanes: p - a = b - c, p - b = a - c,
     * p - c = a + b - 2c; the comparisons and ties as in the scalar code */
    const __m128i z = _mm_setzero_si128();
    for (; i + 8 <= rb; i += 8) {
        __m128i a = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(cur + i - bpp)), z);
        __m128i b = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(prev + i)), z);
        __m128i c = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(prev + i - bpp)), z);
        __m128i x = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(cur + i)), z);
        __m128i d1 = _mm_sub_epi16(b, c), d2 = _mm_sub_epi16(a, c), d3 = _mm_add_epi16(d1, d2);
        __m128i pa = _mm_max_epi16(d1, _mm_sub_epi16(z, d1));
        __m128i pb = _mm_max_epi16(d2, _mm_sub_epi16(z, d2));
        __m128i pc = _mm_max_epi16(d3, _mm_sub_epi16(z, d3));
        __m128i not_a = _mm_or_si128(_mm_cmpgt_epi16(pa, pb), _mm_cmpgt_epi16(pa, pc));
        __m128i not_b = _mm_cmpgt_epi16(pb, pc);
        __m128i bc = _mm_or_si128(_mm_andnot_si128(not_b, b), _mm_and_si128(not_b, c));
        __m128i pred = _mm_or_si128(_mm_andnot_si128(not_a, a), _mm_and_si128(not_a, bc));
        /* x - pred mod 256: the low byte of each lane, packed */
        __m128i r = _mm_packus_epi16(_mm_and_si128(_mm_sub_epi16(x, pred), _mm_set1_epi16(0xff)), z);
        _mm_storel_epi64((__m128i *)(out + i), r);
    }
#endif
    for (; i < rb; i++) {
        int a = cur[i - bpp], b = prev[i], c = prev[i - bpp];
        int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
        int pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
        out[i] = (uint8_t)(cur[i] - pred);
    }
}

ec_status ec_png_encode(const uint8_t *px, int w, int h, int channels, uint8_t **png, size_t *len)
{
    if (!px || !png || !len) return ec_fail(EC_ERR_ARG, "ec_png_encode: NULL argument");
    *png = NULL;
    *len = 0;
    if (w <= 0 || h <= 0 || (channels != 3 && channels != 4))
        return ec_fail(EC_ERR_ARG, "ec_png_encode: bad image %dx%dx%d (RGB or RGBA only)", w, h, channels);
    size_t rb = (size_t)w * (size_t)channels;                   /* row bytes, no filter byte */
    if (rb + 1 > UINT_MAX) return ec_fail(EC_ERR_LIMIT, "ec_png_encode: rows of %zu bytes are too long", rb);

    /* deflate blocks of whole filtered rows, about IM_BLOCK bytes (a code per
     * block follows the image's statistics down the rows) */
    enum { IM_BLOCK = 1 << 16 };
    size_t rows_per = IM_BLOCK / (rb + 1) ? IM_BLOCK / (rb + 1) : 1;
    if (rows_per > (size_t)h) rows_per = (size_t)h;
    uint8_t *zero = calloc(rb + rows_per * (rb + 1), 1);           /* zero row, then the block */
    if (!zero) return ec_fail(EC_ERR_NOMEM, "out of memory encoding a %dx%d PNG", w, h);
    uint8_t *blk = zero + rb;

    im_buf b = {0};
    im_buf_put(&b, "\x89PNG\r\n\x1A\n", 8);
    uint8_t ihdr[13];
    im_put_be32(ihdr, (uint32_t)w);
    im_put_be32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8;                                                /* bit depth */
    ihdr[9] = channels == 4 ? 6 : 2;                            /* RGBA : RGB */
    ihdr[10] = ihdr[11] = ihdr[12] = 0;                         /* deflate, filter method 0, no interlace */
    im_png_chunk(&b, "IHDR", ihdr, 13);

    /* one IDAT chunk: its length is patched in when the stream is done */
    size_t idat = b.n;
    im_buf_put(&b, "\0\0\0\0IDAT\x78\x01", 10);                 /* zlib: deflate, 32 KB window, fastest */
    im_bits bw = { &b, 0, 0 };
    uLong adler = adler32(0L, Z_NULL, 0);
    for (size_t y0 = 0; y0 < (size_t)h && !b.oom; y0 += rows_per) {
        size_t nr = (size_t)h - y0 < rows_per ? (size_t)h - y0 : rows_per;
        for (size_t r = 0; r < nr; r++) {
            const uint8_t *cur = px + (y0 + r) * rb, *prev = y0 + r ? cur - rb : zero;
            uint8_t *o = blk + r * (rb + 1);
            o[0] = 4;                                           /* Paeth */
            im_png_paeth_row(cur, prev, rb, channels, o + 1);
        }
        adler = adler32_z(adler, blk, nr * (rb + 1));
        im_deflate_block(&bw, blk, nr * (rb + 1), y0 + nr == (size_t)h);
    }
    free(zero);
    if (!b.oom && im_buf_reserve(&b, 8)) {
        im_bits_flush(&bw);
        uint8_t tail[4];
        im_put_be32(tail, (uint32_t)adler);
        im_buf_put(&b, tail, 4);
    }
    size_t data = b.n - idat - 8;
    if (!b.oom && data > 0x7fffffffu) {
        free(b.p);
        return ec_fail(EC_ERR_LIMIT, "ec_png_encode: %zu bytes of image data do not fit a PNG chunk", data);
    }
    if (!b.oom) {
        im_put_be32(b.p + idat, (uint32_t)data);
        uint8_t crc[4];
        im_put_be32(crc, (uint32_t)crc32_z(0L, b.p + idat + 4, data + 4));
        im_buf_put(&b, crc, 4);
    }
    im_png_chunk(&b, "IEND", NULL, 0);
    if (b.oom) {
        free(b.p);
        return ec_fail(EC_ERR_NOMEM, "out of memory encoding a %dx%d PNG", w, h);
    }
    *png = b.p;
    *len = b.n;
    return EC_OK;
}

ec_status ec_png_write(const char *path, const uint8_t *px, int w, int h, int channels)
{
    uint8_t *png;
    size_t n;
    ec_status st = ec_png_encode(px, w, h, channels, &png, &n);
    if (st != EC_OK) return st;
    st = ec_file_write_atomic(path, png, n, NULL, 0);
    free(png);
    return st;
}
