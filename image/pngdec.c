/* pngdec.c - PNG row by row, as PIL decodes and converts it (pngdec.h).
 *
 *   open:   the signature, then every chunk up to the first IDAT: type, length,
 *           CRC (PIL checks them all there), IHDR's size against max_pixels,
 *           PLTE kept;
 *   rows:   zlib fed from the IDAT chunks in PIL's pieces, one filtered row of
 *           output asked at a time (PIL's avail_out), unfiltered as ZipDecode.c
 *           does, converted to RGB8 as PIL's unpacker + convert("RGB") do;
 *   Adam7:  all passes into one RGB buffer at the first read.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "../engine/error.h"
#include "pngdec.h"

#define PD_PIECE 65536               /* PIL's ImageFile.decodermaxblock */
#define PD_MAX_DIM (1u << 24)

struct ec_pngd {
    const uint8_t *b;
    size_t n;
    uint32_t w, h;
    int depth, ctype, interlace;
    int bits;                        /* bits per pixel */
    size_t rowbytes;                 /* (w * bits + 7) / 8 */
    int fbpp;                        /* filter distance: (bits + 7) / 8 bytes */
    uint8_t pal[256 * 3];            /* PLTE, zero past its entries (PIL's palette is) */

    size_t idat_pos, idat_left;      /* the current IDAT's unread data */
    size_t idat_end;                 /* offset just past the current IDAT's data */
    z_stream z;
    int z_ready, z_end;              /* inflateInit done; stream ended at a row boundary */
    uint8_t *cur, *prev;             /* [1 + rowbytes]: filter byte + samples */
    size_t have;                     /* bytes of cur filled */
    uint32_t rows_out;
    uint8_t *whole;                  /* Adam7: [h][w][3] */

    ec_status failed;
    char failmsg[256];
};

static uint32_t pd_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

__attribute__((format(printf, 3, 4)))
static ec_status pd_fail(ec_pngd *d, ec_status st, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (d) {
        d->failed = st;
        snprintf(d->failmsg, sizeof d->failmsg, "%s", msg);
    }
    return ec_fail(st, "%s", msg);
}

/* A chunk type as PIL accepts it (re \w\w\w\w), printable for messages. */
static int pd_type_ok(const uint8_t *t)
{
    for (int i = 0; i < 4; i++)
        if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z') || (t[i] >= '0' && t[i] <= '9') || t[i] == '_'))
            return 0;
    return 1;
}

/* ---- open: chunks up to the first IDAT --------------------------------------- */

static ec_status pd_ihdr(ec_pngd *d, const uint8_t *s, uint32_t len, int64_t max_pixels)
{
    if (len < 13) return pd_fail(d, EC_ERR_IMAGE, "corrupt PNG (IHDR of %u bytes)", len);
    d->w = pd_be32(s);
    d->h = pd_be32(s + 4);
    d->depth = s[8];
    d->ctype = s[9];
    d->interlace = s[12] != 0;                          /* PIL: any non-zero value */
    if (s[11]) return pd_fail(d, EC_ERR_IMAGE, "corrupt PNG (unknown filter method %d)", s[11]);
    static const struct { int ctype, depths, samples; } modes[] = {
        {0, 1 | 2 | 4 | 8 | 16, 1}, {2, 8 | 16, 3}, {3, 1 | 2 | 4 | 8, 1}, {4, 8 | 16, 2}, {6, 8 | 16, 4},
    };
    int samples = 0;
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (modes[i].ctype == d->ctype && d->depth <= 16 && (modes[i].depths & d->depth) &&
            (d->depth & (d->depth - 1)) == 0)
            samples = modes[i].samples;
    if (!samples)
        return pd_fail(d, EC_ERR_IMAGE, "corrupt PNG (bit depth %d with colour type %d)", d->depth, d->ctype);
    if (d->w == 0 || d->h == 0) return pd_fail(d, EC_ERR_IMAGE, "PNG has a zero dimension (%ux%u)", d->w, d->h);
    if ((uint64_t)d->w * d->h > (uint64_t)max_pixels)
        return pd_fail(d, EC_ERR_LIMIT, "image is %ux%u = %llu pixels, over the limit of %lld", d->w, d->h,
                       (unsigned long long)d->w * d->h, (long long)max_pixels);
    if (d->w > PD_MAX_DIM || d->h > PD_MAX_DIM)
        return pd_fail(d, EC_ERR_LIMIT, "PNG of %ux%u: sides are limited to %u", d->w, d->h, PD_MAX_DIM);
    d->bits = samples * d->depth;
    d->rowbytes = ((size_t)d->w * (size_t)d->bits + 7) / 8;
    d->fbpp = (d->bits + 7) / 8;
    return EC_OK;
}

ec_status ec_pngd_open_mem(const uint8_t *buf, size_t len, int64_t max_pixels, ec_pngd **out)
{
    if (!out || (!buf && len)) return ec_fail(EC_ERR_ARG, "ec_pngd_open_mem: NULL argument");
    *out = NULL;
    if (max_pixels <= 0) return ec_fail(EC_ERR_ARG, "ec_pngd_open_mem: max_pixels must be positive");
    if (len < 8 || memcmp(buf, "\x89PNG\r\n\x1A\n", 8))
        return ec_fail(EC_ERR_IMAGE, len < 8 ? "truncated PNG (%zu bytes)" : "not a PNG file (%zu bytes)", len);
    ec_pngd *d = calloc(1, sizeof *d);
    if (!d) return ec_fail(EC_ERR_NOMEM, "out of memory opening a PNG");
    d->b = buf;
    d->n = len;
    ec_status st = EC_OK;
    size_t pos = 8;
    int seen_ihdr = 0;
    for (;;) {
        if (len - pos < 8) {
            st = pd_fail(d, EC_ERR_IMAGE, "truncated PNG (file ends at byte %zu, before the image data)", len);
            break;
        }
        uint32_t L = pd_be32(buf + pos);
        const uint8_t *type = buf + pos + 4;
        char tn[5] = {0};
        if (!pd_type_ok(type)) {
            st = pd_fail(d, EC_ERR_IMAGE, "corrupt PNG (bad chunk type at byte %zu)", pos);
            break;
        }
        memcpy(tn, type, 4);
        if (L > 0x7FFFFFFFu) {
            st = pd_fail(d, EC_ERR_IMAGE, "corrupt PNG (chunk %s at byte %zu has length %u)", tn, pos, L);
            break;
        }
        if (!seen_ihdr && memcmp(type, "IHDR", 4)) {
            st = pd_fail(d, EC_ERR_IMAGE, "corrupt PNG (first chunk is %s, not IHDR)", tn);
            break;
        }
        if (!memcmp(type, "IDAT", 4)) {
            d->idat_pos = pos + 8;
            d->idat_left = L;
            d->idat_end = pos + 8 + (size_t)L;
            break;
        }
        if (!memcmp(type, "IEND", 4)) {
            st = pd_fail(d, EC_ERR_IMAGE, "corrupt PNG (IEND before any image data)");
            break;
        }
        if ((uint64_t)len - pos - 8 < (uint64_t)L + 4) {
            st = pd_fail(d, EC_ERR_IMAGE, "truncated PNG (chunk %s at byte %zu needs %u bytes, file has %zu)", tn, pos,
                         L + 4, len - pos - 8);
            break;
        }
        const uint8_t *data = buf + pos + 8;
        uint32_t crc = (uint32_t)crc32(crc32(0L, type, 4), data, L);
        if (crc != pd_be32(data + L)) {
            st = pd_fail(d, EC_ERR_IMAGE, "corrupt PNG (bad checksum in chunk %s at byte %zu)", tn, pos);
            break;
        }
        if (!memcmp(type, "IHDR", 4)) {
            if ((st = pd_ihdr(d, data, L, max_pixels)) != EC_OK) break;
            seen_ihdr = 1;
        } else if (!memcmp(type, "PLTE", 4) && d->ctype == 3) {
            /* PIL's putpalette: at most 256 entries, a partial entry ignored */
            if (L > 768) {
                st = pd_fail(d, EC_ERR_IMAGE, "corrupt PNG (PLTE of %u bytes, at most 768)", L);
                break;
            }
            memset(d->pal, 0, sizeof d->pal);
            memcpy(d->pal, data, L / 3 * 3);
        }
        pos += 12 + (size_t)L;
    }
    if (st == EC_OK) {
        d->cur = calloc(1, d->rowbytes + 1);
        d->prev = calloc(1, d->rowbytes + 1);
        if (!d->cur || !d->prev) st = pd_fail(d, EC_ERR_NOMEM, "out of memory decoding a %ux%u PNG", d->w, d->h);
    }
    if (st == EC_OK) {
        if (inflateInit(&d->z) != Z_OK) st = pd_fail(d, EC_ERR_NOMEM, "zlib: cannot initialize");
        else d->z_ready = 1;
    }
    if (st != EC_OK) {
        ec_pngd_close(d);
        return st;
    }
    *out = d;
    return EC_OK;
}

void ec_pngd_size(const ec_pngd *d, int *w, int *h)
{
    if (w) *w = d ? (int)d->w : 0;
    if (h) *h = d ? (int)d->h : 0;
}

int ec_pngd_interlaced(const ec_pngd *d) { return d ? d->interlace : 0; }

/* ---- image data ---------------------------------------------------------------- */

/* Next piece of IDAT data into zlib's input, as PIL's load_read hands them:
 * at most 64 KiB, never across a chunk; empty IDATs skipped; any other chunk
 * ends the data. 0, or -1 when there is no more. */
static int pd_piece(ec_pngd *d)
{
    while (d->idat_left == 0) {
        size_t pos = d->idat_end + 4;                    /* past the CRC, not checked (as PIL) */
        if (pos > d->n || d->n - pos < 8 || memcmp(d->b + pos + 4, "IDAT", 4)) return -1;
        uint32_t L = pd_be32(d->b + pos);
        if (L > 0x7FFFFFFFu) return -1;
        d->idat_pos = pos + 8;
        d->idat_left = L;
        d->idat_end = pos + 8 + (size_t)L;
    }
    size_t avail = d->idat_pos < d->n ? d->n - d->idat_pos : 0;   /* the file may end inside */
    size_t k = d->idat_left < PD_PIECE ? d->idat_left : PD_PIECE;
    if (k > avail) k = avail;
    if (k == 0) return -1;
    d->z.next_in = (Bytef *)(uintptr_t)(d->b + d->idat_pos);
    d->z.avail_in = (uInt)k;
    d->idat_pos += k;
    d->idat_left -= k;
    return 0;
}

/* PIL's predictor (ZipDecode.c): row = filter byte + len bytes, prev likewise. */
static int pd_unfilter(uint8_t *row, const uint8_t *prev, size_t len, int bpp)
{
    size_t i, b = (size_t)bpp;
    switch (row[0]) {
    case 0: break;
    case 1:
        for (i = b + 1; i <= len; i++) row[i] = (uint8_t)(row[i] + row[i - b]);
        break;
    case 2:
        for (i = 1; i <= len; i++) row[i] = (uint8_t)(row[i] + prev[i]);
        break;
    case 3:
        for (i = 1; i <= b && i <= len; i++) row[i] = (uint8_t)(row[i] + prev[i] / 2);
        for (; i <= len; i++) row[i] = (uint8_t)(row[i] + (row[i - b] + prev[i]) / 2);
        break;
    case 4:
        for (i = 1; i <= b && i <= len; i++) row[i] = (uint8_t)(row[i] + prev[i]);
        for (; i <= len; i++) {
            int a = row[i - b], up = prev[i], c = prev[i - b];
            int pa = abs(up - c), pb = abs(a - c), pc = abs(a + up - 2 * c);
            row[i] = (uint8_t)(row[i] + ((pa <= pb && pa <= pc) ? a : (pb <= pc) ? up : c));
        }
        break;
    default: return -1;
    }
    return 0;
}

/* The next row of len sample bytes (after its filter byte) into d->cur,
 * unfiltered; row_no for messages. EC_OK with *ended = 1 when the zlib stream
 * ended with this row (the rows after it are zero samples). */
static ec_status pd_row(ec_pngd *d, size_t len, uint32_t row_no, int *ended)
{
    int err = Z_OK;
    *ended = 0;
    d->have = 0;
    while (d->have < len + 1) {
        if (d->z.avail_in == 0 && pd_piece(d) < 0)
            return pd_fail(d, EC_ERR_IMAGE, "truncated PNG (image data ends in row %u of %u)", row_no + 1, d->h);
        d->z.next_out = d->cur + d->have;
        d->z.avail_out = (uInt)(len + 1 - d->have);
        err = inflate(&d->z, Z_NO_FLUSH);
        if (err == Z_MEM_ERROR) return pd_fail(d, EC_ERR_NOMEM, "out of memory inflating a PNG");
        if (err < 0 || err == Z_NEED_DICT)
            return pd_fail(d, EC_ERR_IMAGE, "corrupt PNG (zlib: %s, in row %u)", d->z.msg ? d->z.msg : "bad data",
                           row_no + 1);
        d->have = len + 1 - d->z.avail_out;
        if (d->have < len + 1 && err == Z_STREAM_END)
            return pd_fail(d, EC_ERR_IMAGE, "truncated PNG (zlib stream ends inside row %u of %u)", row_no + 1, d->h);
    }
    if (pd_unfilter(d->cur, d->prev, len, d->fbpp))
        return pd_fail(d, EC_ERR_IMAGE, "corrupt PNG (filter type %d in row %u)", d->cur[0], row_no + 1);
    *ended = err == Z_STREAM_END;
    return EC_OK;
}

/* n pixels of a raw row -> RGB8 at out, pixels step * 3 bytes apart: PIL's
 * unpacker for the mode, then convert("RGB"). */
static void pd_convert(const ec_pngd *d, const uint8_t *raw, uint32_t n, uint8_t *out, size_t step)
{
    size_t o = 0, st = 3 * step;
    for (uint32_t x = 0; x < n; x++, o += st) {
        uint8_t r, g, b;
        if (d->depth < 8) {
            /* 1/2/4 bits, first pixel in the high bits */
            size_t bit = (size_t)x * d->depth;
            int v = raw[bit >> 3] >> (8 - d->depth - (int)(bit & 7)) & ((1 << d->depth) - 1);
            if (d->ctype == 3) {
                r = d->pal[3 * v], g = d->pal[3 * v + 1], b = d->pal[3 * v + 2];
            } else {
                /* "1": 0/255; "L;2": * 0x55; "L;4": * 0x11 */
                r = g = b = (uint8_t)(d->depth == 1 ? v * 255 : d->depth == 2 ? v * 0x55 : v * 0x11);
            }
        } else if (d->depth == 8) {
            const uint8_t *p = raw + (size_t)x * (size_t)(d->bits / 8);
            switch (d->ctype) {
            case 0: case 4: r = g = b = p[0]; break;                  /* L, LA */
            case 3: r = d->pal[3 * p[0]], g = d->pal[3 * p[0] + 1], b = d->pal[3 * p[0] + 2]; break;
            default: r = p[0], g = p[1], b = p[2]; break;             /* RGB, RGBA */
            }
        } else {
            const uint8_t *p = raw + (size_t)x * (size_t)(d->bits / 8);
            switch (d->ctype) {
            case 0: r = g = b = p[0] ? 255 : p[1]; break;             /* I;16 -> RGB clips */
            case 4: r = g = b = p[0]; break;                          /* LA;16B: high byte */
            default: r = p[0], g = p[2], b = p[4]; break;             /* RGB(A);16B: high bytes */
            }
        }
        out[o] = r, out[o + 1] = g, out[o + 2] = b;
    }
}

/* Adam7: every pass into d->whole; pixels no pass reached (the zlib stream
 * ended early) keep the colour of a zero sample. */
static ec_status pd_deinterlace(ec_pngd *d)
{
    static const int x0[7] = {0, 4, 0, 2, 0, 1, 0}, y0[7] = {0, 0, 4, 0, 2, 0, 1};
    static const int dx[7] = {8, 8, 4, 4, 2, 2, 1}, dy[7] = {8, 8, 8, 4, 4, 2, 2};
    size_t stride = (size_t)d->w * 3;
    d->whole = malloc(stride * d->h);
    if (!d->whole) return pd_fail(d, EC_ERR_NOMEM, "out of memory decoding a %ux%u interlaced PNG", d->w, d->h);
    uint8_t zero[8] = {0}, px[3];
    pd_convert(d, zero, 1, px, 1);
    for (size_t i = 0; i < stride * d->h; i += 3) memcpy(d->whole + i, px, 3);
    for (int p = 0; p < 7; p++) {
        uint32_t pw = d->w > (uint32_t)x0[p] ? (d->w - x0[p] + dx[p] - 1) / dx[p] : 0;
        uint32_t ph = d->h > (uint32_t)y0[p] ? (d->h - y0[p] + dy[p] - 1) / dy[p] : 0;
        if (!pw || !ph) continue;
        size_t len = ((size_t)pw * d->bits + 7) / 8;
        memset(d->prev, 0, d->rowbytes + 1);              /* each pass starts from a zero row */
        for (uint32_t j = 0; j < ph; j++) {
            int ended;
            ec_status st = pd_row(d, len, y0[p] + j * dy[p], &ended);
            if (st != EC_OK) return st;
            pd_convert(d, d->cur + 1, pw, d->whole + (size_t)(y0[p] + j * dy[p]) * stride + (size_t)x0[p] * 3, dx[p]);
            uint8_t *t = d->prev;
            d->prev = d->cur, d->cur = t;
            if (ended) return EC_OK;
        }
    }
    return EC_OK;
}

ec_status ec_pngd_read_rows(ec_pngd *d, uint8_t *rgb, int max_rows, int *got)
{
    if (got) *got = 0;
    if (!d || !rgb || !got || max_rows <= 0) return ec_fail(EC_ERR_ARG, "ec_pngd_read_rows: bad argument");
    if (d->failed) return ec_fail(d->failed, "%s", d->failmsg);
    size_t stride = (size_t)d->w * 3;
    if (d->interlace && !d->whole) {
        ec_status st = pd_deinterlace(d);
        if (st != EC_OK) return st;
    }
    int n = 0;
    while (n < max_rows && d->rows_out < d->h) {
        uint8_t *o = rgb + (size_t)n * stride;
        if (d->whole) {
            memcpy(o, d->whole + (size_t)d->rows_out * stride, stride);
        } else {
            if (d->z_end) {
                memset(d->cur, 0, d->rowbytes + 1);       /* PIL's image was zeroed */
            } else {
                int ended;
                ec_status st = pd_row(d, d->rowbytes, d->rows_out, &ended);
                if (st != EC_OK) return st;
                d->z_end = ended;
            }
            pd_convert(d, d->cur + 1, d->w, o, 1);
            uint8_t *t = d->prev;
            d->prev = d->cur, d->cur = t;
        }
        d->rows_out++;
        n++;
    }
    *got = n;
    return EC_OK;
}

void ec_pngd_close(ec_pngd *d)
{
    if (!d) return;
    if (d->z_ready) inflateEnd(&d->z);
    free(d->cur);
    free(d->prev);
    free(d->whole);
    free(d);
}
