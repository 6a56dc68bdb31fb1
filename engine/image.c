/* image.c - the app's image front end and overlay (semantics.md 1, 3, 5).
 *
 *   decode:  sniff the format from its magic bytes, refuse what we do not
 *            decode, check the container is complete (truncated PNG/BMP/GIF
 *            files are errors in PIL, while stb_image would quietly pad them),
 *            read the header size, refuse it over max_pixels, then decode with
 *            stb_image (binary PNM with our own reader, which scales maxval
 *            the way PIL does) and convert like PIL's convert("RGB").
 *   overlay: uint8 cam -> PIL BILINEAR upscale -> matplotlib jet -> Pillow
 *            blend(0.4), each step rounding exactly where the app rounded.
 *   write:   PNG (Paeth rows, literal-only deflate) and binary PPM, both written to
 *            a temporary file in the target directory and renamed into place.
 */
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb/stb_image.h>
#include <zlib.h>

#include "../kernels/resize.h"
#include "error.h"
#include "image.h"

/* Defined in stb_image_impl.c: per-thread cap on any single allocation stb
 * makes, and whether that cap refused one. */
extern _Thread_local size_t ec_stbi_alloc_cap;
extern _Thread_local int ec_stbi_cap_hit;

/* Files larger than this are not images we accept (a 50 MP photo is ~30 MB
 * as JPEG, ~150 MB as an uncompressed BMP). */
#define IM_MAX_FILE_BYTES ((size_t)256 << 20)

static uint32_t im_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint32_t im_le32(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}
static uint32_t im_le16(const uint8_t *p) { return (uint32_t)p[1] << 8 | p[0]; }

/* Error messages are one line: untrusted text (chunk tags, file names) goes
 * through this, control bytes and the rest of a long name replaced. */
static const char *im_clean(const char *s, size_t n, char *out, size_t cap)
{
    size_t i = 0, j = 0;
    for (; i < n && s[i] && j + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        out[j++] = c < 0x20 || c == 0x7F ? '?' : (char)c;
    }
    if (i < n && s[i]) out[j++] = '.', out[j++] = '.', out[j++] = '.';   /* cut short */
    out[j] = 0;
    return out;
}
#define IM_CLEAN_PATH(p, buf) im_clean((p), SIZE_MAX, (buf), sizeof(buf))

/* ---- format sniffing ------------------------------------------------------ */

typedef enum { FMT_UNKNOWN, FMT_JPEG, FMT_PNG, FMT_GIF, FMT_BMP, FMT_PNM, FMT_REFUSED } im_format;

/* The format named by the first bytes; *name is set for everything we know,
 * including formats PIL reads but we do not (FMT_REFUSED). */
static im_format im_sniff(const uint8_t *b, size_t n, const char **name)
{
#define HAS(off, lit) (n >= (off) + sizeof(lit) - 1 && memcmp(b + (off), lit, sizeof(lit) - 1) == 0)
    *name = "unknown";
    if (HAS(0, "\xFF\xD8\xFF")) { *name = "JPEG"; return FMT_JPEG; }
    if (HAS(0, "\x89PNG\r\n\x1A\n")) { *name = "PNG"; return FMT_PNG; }
    if (HAS(0, "GIF87a") || HAS(0, "GIF89a")) { *name = "GIF"; return FMT_GIF; }
    if (HAS(0, "BM")) { *name = "BMP"; return FMT_BMP; }
    if (HAS(0, "P5") || HAS(0, "P6")) { *name = "PNM"; return FMT_PNM; }
    if (HAS(0, "RIFF") && HAS(8, "WEBP")) *name = "WebP";
    else if (HAS(0, "II*\0") || HAS(0, "MM\0*") || HAS(0, "II+\0") || HAS(0, "MM\0+")) *name = "TIFF";
    else if (HAS(4, "ftyp")) *name = "HEIF/AVIF (ISO media)";
    else if (HAS(0, "\0\0\0\x0CjP  ") || HAS(0, "\xFF\x4F\xFF\x51")) *name = "JPEG 2000";
    else if (HAS(0, "\xFF\x0A") || HAS(0, "\0\0\0\x0CJXL ")) *name = "JPEG XL";
    else if (HAS(0, "8BPS")) *name = "PSD";
    else if (HAS(0, "#?RADIANCE") || HAS(0, "#?RGBE")) *name = "Radiance HDR";
    else if (HAS(0, "qoif")) *name = "QOI";
    else if (HAS(0, "%PDF")) *name = "PDF";
    else if (n >= 2 && b[0] == 'P' && strchr("12347", b[1]) && b[1]) *name = "plain/bitmap PNM or PAM";
    /* stb takes FF..FF D8 as a JPEG start (PIL needs FF D8 FF): not a TGA
     * either (its second byte is 0 or 1), and it would bypass the JPEG checks. */
    else if (n >= 2 && b[0] == 0xFF && (b[1] == 0xFF || b[1] == 0xD8)) *name = "JPEG-like data without the FF D8 FF signature";
    else return FMT_UNKNOWN;
    return FMT_REFUSED;
#undef HAS
}

/* ---- container checks: completeness before stb sees the bytes ------------- */

/* Walks the chunk list to IEND. stb stops at IEND but reads zeros past the end
 * of a truncated file and then reports a confusing "unknown chunk type". */
static ec_status im_check_png(const uint8_t *b, size_t n)
{
    size_t pos = 8;
    for (;;) {
        if (n - pos < 12)
            return ec_fail(EC_ERR_IMAGE, "truncated PNG (file ends at byte %zu, before IEND)", n);
        uint32_t len = im_be32(b + pos);
        if (len > 0x7FFFFFFFu)
            return ec_fail(EC_ERR_IMAGE, "corrupt PNG (chunk length %u at byte %zu)", len, pos);
        if ((size_t)len > n - pos - 12) {
            char tag[8];
            return ec_fail(EC_ERR_IMAGE, "truncated PNG (chunk '%s' at byte %zu needs %u bytes, file has %zu)",
                           im_clean((const char *)b + pos + 4, 4, tag, sizeof tag), pos, len, n - pos - 12);
        }
        if (memcmp(b + pos + 4, "IEND", 4) == 0) return EC_OK;
        pos += 12 + (size_t)len;
    }
}

/* stb_image 2.27 (the system's libstb-dev) trusts the 16 code counts of a
 * JPEG Huffman table: a DHT declaring more than 256 codes overruns its 257-
 * and 256-entry tables (fixed upstream in 2.28). Walk the markers the way stb
 * reaches them - resync over stray bytes, skip segments by length, skip
 * entropy-coded data up to the next FF xx that is not a stuffed byte or a
 * restart - and refuse any DHT stb would read with such a table. This visits
 * every DHT stb can parse (and a few more), and a valid JPEG never has one. */
static ec_status im_check_jpeg(const uint8_t *b, size_t n)
{
    size_t pos = 2;                                       /* after SOI */
    while (pos < n) {
        if (b[pos] != 0xFF) { pos++; continue; }          /* stb resyncs byte by byte */
        while (pos < n && b[pos] == 0xFF) pos++;          /* fill bytes */
        if (pos >= n) break;
        uint8_t m = b[pos++];
        if (m == 0xD9) break;                             /* EOI */
        if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD8)) continue;   /* no length */
        if (n - pos < 2) break;
        size_t L = (size_t)b[pos] << 8 | b[pos + 1], seg = pos + 2;
        if (m == 0xC4) {
            /* stb reads whole tables while bytes remain in the segment, even
             * past its end (zeros past the end of the file). */
            long left = (long)L - 2;
            size_t t = seg;
            while (left > 0) {
                unsigned codes = 0;
                for (size_t i = 1; i <= 16; i++) codes += t + i < n ? b[t + i] : 0;
                if (codes > 256)
                    return ec_fail(EC_ERR_IMAGE, "corrupt JPEG (Huffman table at byte %zu declares %u codes, at most 256)",
                                   t, codes);
                left -= 17 + (long)codes;
                t += 17 + codes;
            }
        }
        pos = L >= 2 ? pos + L : pos + 2;
        if (m == 0xDA) {                                  /* SOS: skip entropy-coded data */
            while (pos + 1 < n && !(b[pos] == 0xFF && b[pos + 1] != 0x00 && b[pos + 1] != 0xFF &&
                                    !(b[pos + 1] >= 0xD0 && b[pos + 1] <= 0xD7)))
                pos++;
        }
    }
    return EC_OK;
}

/* Uncompressed BMPs must hold offset + stride * rows bytes; stb would pad a
 * short file with zeros where PIL raises "image file is truncated". */
static ec_status im_check_bmp(const uint8_t *b, size_t n)
{
    if (n < 26) return ec_fail(EC_ERR_IMAGE, "truncated BMP (%zu bytes, header incomplete)", n);
    uint32_t off = im_le32(b + 10), hsz = im_le32(b + 14);
    int64_t w, h;
    uint32_t bpp, comp = 0;
    if (hsz == 12) {
        w = im_le16(b + 18);
        h = im_le16(b + 20);
        bpp = im_le16(b + 24);
    } else {
        if (n < 34) return ec_fail(EC_ERR_IMAGE, "truncated BMP (%zu bytes, header incomplete)", n);
        w = (int32_t)im_le32(b + 18);
        h = (int32_t)im_le32(b + 22);
        bpp = im_le16(b + 28);
        comp = im_le32(b + 30);
    }
    if (h < 0) h = -h;                                   /* negative height = top-down rows */
    if (w <= 0 || h <= 0 || bpp == 0 || bpp > 32) return EC_OK;   /* stb reports these */
    if (comp != 0 && comp != 3 && comp != 6) return EC_OK;        /* RLE etc.: stb refuses */
    uint64_t stride = ((uint64_t)w * bpp + 31) / 32 * 4;
    uint64_t need = (uint64_t)off + stride * (uint64_t)h;
    if (need > n)
        return ec_fail(EC_ERR_IMAGE, "truncated BMP (pixel data needs %llu bytes, file has %zu)",
                       (unsigned long long)need, n);
    return EC_OK;
}

/* Walks a GIF's blocks to the end of the first image's data. */
static ec_status im_check_gif(const uint8_t *b, size_t n)
{
    size_t pos = 13;
    if (n < pos) return ec_fail(EC_ERR_IMAGE, "truncated GIF (header incomplete)");
    if (b[10] & 0x80) pos += 3 * ((size_t)2 << (b[10] & 7));     /* global colour table */
    for (;;) {
        if (pos >= n) return ec_fail(EC_ERR_IMAGE, "truncated GIF (ends at byte %zu, before the first image)", n);
        uint8_t tag = b[pos++];
        int image = tag == 0x2C;
        if (tag == 0x21) {
            pos++;                                        /* extension label */
        } else if (image) {
            if (n - pos < 10) return ec_fail(EC_ERR_IMAGE, "truncated GIF (image descriptor incomplete)");
            uint8_t flags = b[pos + 8];
            pos += 9;
            if (flags & 0x80) pos += 3 * ((size_t)2 << (flags & 7));  /* local colour table */
            pos++;                                        /* LZW minimum code size */
        } else if (tag == 0x3B) {
            return ec_fail(EC_ERR_IMAGE, "corrupt GIF (no image before the trailer)");
        } else {
            return ec_fail(EC_ERR_IMAGE, "corrupt GIF (unknown block 0x%02x at byte %zu)", tag, pos - 1);
        }
        for (;;) {                                        /* data sub-blocks up to a 0 length */
            if (pos >= n) return ec_fail(EC_ERR_IMAGE, "truncated GIF (ends inside a data block)");
            uint8_t len = b[pos++];
            if (len == 0) break;
            pos += len;
        }
        if (image) return EC_OK;
    }
}

/* ---- binary PNM (P5 gray, P6 RGB), read the way PIL reads it --------------- */

/* Header token: whitespace and '#' comments skipped, then decimal digits
 * (PIL allows at most 10 characters). Returns -1 on a malformed token. */
static int64_t im_pnm_token(const uint8_t *b, size_t n, size_t *pos)
{
    size_t p = *pos;
    for (;;) {
        while (p < n && strchr(" \t\n\v\f\r", b[p]) && b[p]) p++;
        if (p < n && b[p] == '#') {
            while (p < n && b[p] != '\n' && b[p] != '\r') p++;
            continue;
        }
        break;
    }
    int64_t v = 0;
    int digits = 0;
    while (p < n && b[p] >= '0' && b[p] <= '9' && digits < 11) v = v * 10 + (b[p++] - '0'), digits++;
    if (digits == 0 || digits > 10) return -1;
    *pos = p;
    return v;
}

/* PIL: maxval 255 is raw; any other maxval rescales each sample with
 * round(v / maxval * out_max) (Python's round: half to even, = nearbyint),
 * out_max being 255, or 65535 for 16-bit gray, which PIL holds as mode "I"
 * and convert("RGB") then clips to 255. */
static ec_status im_pnm_decode(const uint8_t *b, size_t n, int64_t max_pixels, uint8_t **rgb,
                               int *wo, int *ho)
{
    int comps = b[1] == '6' ? 3 : 1;
    size_t pos = 2;
    if (n <= pos || !strchr(" \t\n\v\f\r#", b[pos]) || !b[pos])
        return ec_fail(EC_ERR_IMAGE, "corrupt PNM header (no whitespace after the magic)");
    int64_t w = im_pnm_token(b, n, &pos), h = im_pnm_token(b, n, &pos), maxval = im_pnm_token(b, n, &pos);
    if (w < 0 || h < 0 || maxval < 0)
        return ec_fail(EC_ERR_IMAGE, "truncated or corrupt PNM header");
    if (pos >= n || !strchr(" \t\n\v\f\r", b[pos]) || !b[pos])
        return ec_fail(EC_ERR_IMAGE, "truncated or corrupt PNM header (no whitespace after maxval)");
    pos++;                                                /* exactly one whitespace byte */
    if (w == 0 || h == 0) return ec_fail(EC_ERR_IMAGE, "PNM has a zero dimension (%lldx%lld)", (long long)w, (long long)h);
    if (maxval < 1 || maxval > 65535)
        return ec_fail(EC_ERR_IMAGE, "corrupt PNM (maxval %lld is outside 1..65535)", (long long)maxval);
    if (w > (1 << 24) || h > (1 << 24) || w * h > max_pixels)
        return ec_fail(EC_ERR_LIMIT, "image is %lldx%lld = %lld pixels, over the limit of %lld",
                       (long long)w, (long long)h, (long long)(w * h), (long long)max_pixels);
    size_t bps = maxval > 255 ? 2 : 1;
    size_t count = (size_t)w * (size_t)h * (size_t)comps;
    if ((n - pos) / bps < count)
        return ec_fail(EC_ERR_IMAGE, "truncated PNM (pixel data needs %zu bytes, file has %zu)", count * bps, n - pos);
    uint8_t *out = malloc((size_t)w * (size_t)h * 3);
    if (!out) return ec_fail(EC_ERR_NOMEM, "out of memory decoding a %lldx%lld PNM", (long long)w, (long long)h);

    /* One table per sample value: at most 65536 entries, built on the stack. */
    uint16_t map_small[256];
    uint8_t *map = NULL;
    int gray16 = comps == 1 && maxval > 255;
    double out_max = gray16 ? 65535.0 : 255.0;
    size_t nvals = (size_t)1 << (8 * bps);
    if (maxval != 255) {
        map = bps == 2 ? malloc(nvals) : NULL;
        if (bps == 2 && !map) { free(out); return ec_fail(EC_ERR_NOMEM, "out of memory decoding a PNM"); }
        for (size_t v = 0; v < nvals; v++) {
            double s = nearbyint((double)v / (double)maxval * out_max);
            if (s > out_max) s = out_max;
            if (maxval == 65535 && gray16) s = (double)v;   /* PIL reads "I;16B" raw */
            uint8_t r = (uint8_t)(s > 255.0 ? 255.0 : s);    /* the clip of I -> RGB */
            if (bps == 2) map[v] = r; else map_small[v] = r;
        }
    }
    const uint8_t *p = b + pos;
    for (size_t i = 0; i < (size_t)w * (size_t)h; i++) {
        uint8_t px[3];
        for (int c = 0; c < comps; c++, p += bps) {
            if (maxval == 255) px[c] = p[0];
            else if (bps == 2) px[c] = map[(size_t)p[0] << 8 | p[1]];
            else px[c] = (uint8_t)map_small[p[0]];
        }
        out[3 * i + 0] = px[0];
        out[3 * i + 1] = comps == 3 ? px[1] : px[0];
        out[3 * i + 2] = comps == 3 ? px[2] : px[0];
    }
    free(map);
    *rgb = out;
    *wo = (int)w;
    *ho = (int)h;
    return EC_OK;
}

/* ---- decode ---------------------------------------------------------------- */

ec_status ec_image_decode_mem(const uint8_t *buf, size_t len, int64_t max_pixels,
                              uint8_t **rgb, int *w, int *h)
{
    if (!rgb || !w || !h || (!buf && len)) return ec_fail(EC_ERR_ARG, "ec_image_decode_mem: NULL argument");
    *rgb = NULL;
    *w = *h = 0;
    if (max_pixels <= 0) return ec_fail(EC_ERR_ARG, "ec_image_decode_mem: max_pixels must be positive");
    if (len == 0) return ec_fail(EC_ERR_IMAGE, "empty image (0 bytes)");
    if (len > IM_MAX_FILE_BYTES)
        return ec_fail(EC_ERR_LIMIT, "image of %zu bytes is over the %zu MiB limit", len, IM_MAX_FILE_BYTES >> 20);

    const char *name;
    im_format fmt = im_sniff(buf, len, &name);
    if (fmt == FMT_REFUSED)
        return ec_fail(EC_ERR_UNSUPPORTED, "unsupported image format: %s (JPEG, PNG, GIF, BMP, TGA and binary PNM are)", name);
    if (fmt == FMT_PNM) return im_pnm_decode(buf, len, max_pixels, rgb, w, h);

    ec_status st = EC_OK;
    if (fmt == FMT_PNG && len >= 24 && !memcmp(buf + 12, "IHDR", 4)) {
        /* stb's header scan refuses images over 2^30 bytes as "corrupt"; read
         * the IHDR size ourselves so an oversized PNG is reported as a limit. */
        uint32_t pw = im_be32(buf + 16), ph = im_be32(buf + 20);
        if (pw == 0 || ph == 0) return ec_fail(EC_ERR_IMAGE, "PNG has a zero dimension (%ux%u)", pw, ph);
        if ((uint64_t)pw * ph > (uint64_t)max_pixels)
            return ec_fail(EC_ERR_LIMIT, "image is %ux%u = %llu pixels, over the limit of %lld", pw, ph,
                           (unsigned long long)pw * ph, (long long)max_pixels);
    }
    if (fmt == FMT_JPEG) st = im_check_jpeg(buf, len);
    else if (fmt == FMT_PNG) st = im_check_png(buf, len);
    else if (fmt == FMT_BMP) st = im_check_bmp(buf, len);
    else if (fmt == FMT_GIF) st = im_check_gif(buf, len);
    if (st != EC_OK) return st;

    int iw = 0, ih = 0, icomp = 0;
    if (!stbi_info_from_memory(buf, (int)len, &iw, &ih, &icomp)) {
        if (fmt == FMT_UNKNOWN)
            return ec_fail(EC_ERR_IMAGE, "unrecognized image format (%zu bytes starting %02x %02x %02x %02x)", len,
                           buf[0], len > 1 ? buf[1] : 0, len > 2 ? buf[2] : 0, len > 3 ? buf[3] : 0);
        return ec_fail(EC_ERR_IMAGE, "truncated or corrupt %s header (stb_image: %s)", name, stbi_failure_reason());
    }
    if (fmt == FMT_UNKNOWN) name = "TGA";               /* the one format stb knows without a magic */
    if (iw <= 0 || ih <= 0) return ec_fail(EC_ERR_IMAGE, "%s has a zero dimension (%dx%d)", name, iw, ih);
    if ((int64_t)iw * ih > max_pixels)
        return ec_fail(EC_ERR_LIMIT, "image is %dx%d = %lld pixels, over the limit of %lld", iw, ih,
                       (long long)iw * ih, (long long)max_pixels);

    /* The largest buffer stb legitimately needs is a small multiple of the
     * pixel count (JPEG pads to 16-pixel MCUs and keeps 16-bit coefficients
     * for progressive scans; PNG may be 16-bit RGBA) plus the compressed data
     * it concatenates; anything beyond is a decompression bomb. */
    uint64_t cap = 16 * ((uint64_t)iw + 16) * ((uint64_t)ih + 16) + 2 * (uint64_t)len + (1u << 20);
    ec_stbi_alloc_cap = cap > SIZE_MAX ? SIZE_MAX : (size_t)cap;
    ec_stbi_cap_hit = 0;

    int ow = 0, oh = 0, ocomp = 0;
    uint8_t *out = NULL;
    if (fmt == FMT_PNG && icomp == 1 && stbi_is_16_bit_from_memory(buf, (int)len)) {
        /* 16-bit gray: PIL holds it as "I;16" and convert("RGB") clips values
         * above 255 (it does not keep the high byte, unlike 16-bit colour). */
        uint16_t *g = stbi_load_16_from_memory(buf, (int)len, &ow, &oh, &ocomp, 1);
        if (g) {
            out = malloc((size_t)ow * (size_t)oh * 3);
            if (out)
                for (size_t i = 0; i < (size_t)ow * (size_t)oh; i++)
                    out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = (uint8_t)(g[i] > 255 ? 255 : g[i]);
            stbi_image_free(g);
            if (!out) {
                ec_stbi_alloc_cap = SIZE_MAX;
                return ec_fail(EC_ERR_NOMEM, "out of memory decoding a %dx%d PNG", ow, oh);
            }
        }
    } else {
        /* Asking stb for 3 channels is exactly convert("RGB") for what stb
         * reads: gray replicated, alpha dropped, palettes applied, 16-bit
         * colour reduced to its high byte (stbi__convert_16_to_8: v >> 8, as
         * PIL's "RGB;16B"/"RGBA;16B" unpackers do). It also sidesteps stb's
         * req_comp = 0 quirk of reporting fewer channels than it returns for
         * PNGs with a tRNS chunk. */
        out = stbi_load_from_memory(buf, (int)len, &ow, &oh, &ocomp, 3);
    }
    ec_stbi_alloc_cap = SIZE_MAX;
    if (!out) {
        const char *why = stbi_failure_reason();
        if (!why) why = "unknown failure";
        if (ec_stbi_cap_hit)
            return ec_fail(EC_ERR_LIMIT, "%s data needs more memory than its %dx%d size allows (corrupt?)", name, iw, ih);
        if (strstr(why, "not supported"))
            return ec_fail(EC_ERR_UNSUPPORTED, "unsupported %s variant (stb_image: %s)", name, why);
        return ec_fail(EC_ERR_IMAGE, "truncated or corrupt %s (stb_image: %s)", name, why);
    }
    if (ow != iw || oh != ih) {
        free(out);
        return ec_fail(EC_ERR_IMAGE, "corrupt %s (header says %dx%d, decoder produced %dx%d)", name, iw, ih, ow, oh);
    }
    *rgb = out;
    *w = ow;
    *h = oh;
    return EC_OK;
}

ec_status ec_image_decode_file(const char *path, int64_t max_pixels, uint8_t **rgb, int *w, int *h)
{
    if (!path || !rgb || !w || !h) return ec_fail(EC_ERR_ARG, "ec_image_decode_file: NULL argument");
    *rgb = NULL;
    *w = *h = 0;
    char pn[256];
    IM_CLEAN_PATH(path, pn);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ec_fail(EC_ERR_IO, "cannot open '%s': %s", pn, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return ec_fail(EC_ERR_IO, "cannot stat '%s': %s", pn, strerror(e));
    }
    if (S_ISDIR(sb.st_mode)) {
        close(fd);
        return ec_fail(EC_ERR_IO, "cannot read '%s': is a directory", pn);
    }
    if (S_ISREG(sb.st_mode) && (uint64_t)sb.st_size > IM_MAX_FILE_BYTES) {
        close(fd);
        return ec_fail(EC_ERR_LIMIT, "'%s' is %lld bytes, over the %zu MiB image limit", pn,
                       (long long)sb.st_size, IM_MAX_FILE_BYTES >> 20);
    }
    /* Regular files: one read of the known size (+1 to see growth); pipes and
     * devices: grow until EOF or the limit. */
    size_t cap = S_ISREG(sb.st_mode) ? (size_t)sb.st_size + 1 : (size_t)1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return ec_fail(EC_ERR_NOMEM, "out of memory reading '%s'", pn);
    }
    for (;;) {
        if (n == cap) {
            if (cap > IM_MAX_FILE_BYTES) {
                free(buf);
                close(fd);
                return ec_fail(EC_ERR_LIMIT, "'%s' is over the %zu MiB image limit", pn, IM_MAX_FILE_BYTES >> 20);
            }
            size_t ncap = cap * 2 > IM_MAX_FILE_BYTES + 1 ? IM_MAX_FILE_BYTES + 1 : cap * 2;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                close(fd);
                return ec_fail(EC_ERR_NOMEM, "out of memory reading '%s'", pn);
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return ec_fail(EC_ERR_IO, "cannot read '%s': %s", pn, strerror(e));
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    ec_status st = ec_image_decode_mem(buf, n, max_pixels, rgb, w, h);
    free(buf);
    if (st != EC_OK) {
        char why[400];
        snprintf(why, sizeof why, "%s", ec_last_error());
        ec_fail(st, "%s: %s", pn, why);
    }
    return st;
}

/* ---- overlay ---------------------------------------------------------------- */

/* matplotlib's "jet" segment data (_cm.py): per channel, rows of
 * (x, value left of x, value right of x). */
typedef struct { double x, y0, y1; } im_seg;
static const im_seg jet_red[] = {{0, 0, 0}, {0.35, 0, 0}, {0.66, 1, 1}, {0.89, 1, 1}, {1, 0.5, 0.5}};
static const im_seg jet_green[] = {{0, 0, 0}, {0.125, 0, 0}, {0.375, 1, 1}, {0.64, 1, 1}, {0.91, 0, 0}, {1, 0, 0}};
static const im_seg jet_blue[] = {{0, 0.5, 0.5}, {0.11, 1, 1}, {0.34, 1, 1}, {0.65, 0, 0}, {1, 0, 0}};

/* One channel of LinearSegmentedColormap's 256-entry LUT, with numpy's
 * float64 operations in numpy's order: breakpoints x * 255; sample points
 * 255 * (i * (1/255)) (np.linspace multiplies by the step; not exactly i);
 * searchsorted (left); linear interpolation; clip to [0, 1]. The product and
 * the sum are separate statements so no compiler fuses them into an FMA,
 * which numpy never does. */
static void im_jet_channel(const im_seg *s, int ns, double lut[256])
{
    double xs[8];
    for (int j = 0; j < ns; j++) xs[j] = s[j].x * 255.0;
    const double step = 1.0 / 255.0;
    lut[0] = s[0].y1;
    lut[255] = s[ns - 1].y0;
    for (int i = 1; i < 255; i++) {
        double xi = 255.0 * ((double)i * step);
        int j = 0;
        while (j < ns - 1 && xs[j] < xi) j++;             /* first xs[j] >= xi */
        double dist = (xi - xs[j - 1]) / (xs[j] - xs[j - 1]);
        double t = dist * (s[j].y0 - s[j - 1].y1);
        double v = t + s[j - 1].y1;
        lut[i] = v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v;
    }
}

/* col[b] = the overlay colour for upscaled heat byte b: v = b / 255.0,
 * entry min(255, floor(v * 256)) (Colormap.__call__), then uint8(255 * c)
 * with numpy's truncation. */
static void im_jet_colors(uint8_t col[256][3])
{
    double lut[3][256];
    im_jet_channel(jet_red, (int)(sizeof jet_red / sizeof *jet_red), lut[0]);
    im_jet_channel(jet_green, (int)(sizeof jet_green / sizeof *jet_green), lut[1]);
    im_jet_channel(jet_blue, (int)(sizeof jet_blue / sizeof *jet_blue), lut[2]);
    for (int b = 0; b < 256; b++) {
        double v = (double)b / 255.0;
        int idx = (int)(v * 256.0);
        if (idx > 255) idx = 255;
        for (int c = 0; c < 3; c++) col[b][c] = (uint8_t)(255.0 * lut[c][idx]);
    }
}

static size_t im_align16(size_t n) { return (n + 15) & ~(size_t)15; }

static int im_overlay_sizes_ok(int ch, int cw, int h, int w)
{
    return ch > 0 && cw > 0 && h > 0 && w > 0 && ch <= (1 << 24) && cw <= (1 << 24) && h <= (1 << 24) &&
           w <= (1 << 24) && (uint64_t)ch * cw <= ((uint64_t)1 << 40) && (uint64_t)h * w <= ((uint64_t)1 << 40);
}

size_t ec_overlay_scratch_bytes(int ch, int cw, int h, int w)
{
    if (!im_overlay_sizes_ok(ch, cw, h, w)) return 0;
    return im_align16((size_t)ch * (size_t)cw) + im_align16((size_t)h * (size_t)w) +
           ec_u8_resize_scratch_bytes(cw, ch, w, h, 1);
}

void ec_overlay_rgba(const float *cam, int ch, int cw, const uint8_t *rgb, int h, int w,
                     void *scratch, uint8_t *rgba)
{
    if (!cam || !rgb || !scratch || !rgba || !im_overlay_sizes_ok(ch, cw, h, w)) return;
    uint8_t *heat = scratch;                                               /* [ch][cw] */
    uint8_t *up = heat + im_align16((size_t)ch * (size_t)cw);             /* [h][w] */
    uint8_t *rs_scratch = up + im_align16((size_t)h * (size_t)w);

    /* 1. np.uint8(255 * cam): cam is float32 and numpy keeps the product in
     * float32, then truncates. Out-of-range and NaN inputs are clamped. */
    for (size_t i = 0; i < (size_t)ch * (size_t)cw; i++) {
        float p = 255.0f * cam[i];
        heat[i] = p > 0.0f ? (p >= 255.0f ? 255 : (uint8_t)p) : 0;
    }
    /* 2. Image.fromarray(heat).resize((w, h), BILINEAR). */
    ec_u8_resize_bilinear(heat, cw, ch, 1, up, w, h, rs_scratch);

    /* 3. jet colours, one per heat byte. */
    uint8_t col[256][3];
    im_jet_colors(col);

    /* 4. Image.blend(input, colours, 0.4): out = (uint8)(in1 + 0.4f * (in2 - in1))
     * in float (Pillow's alpha is a C float), truncated. The products are
     * tabulated by difference so the add cannot be fused with the multiply. */
    const float alpha = 0.4f;
    float prod[511];
    for (int d = -255; d <= 255; d++) prod[d + 255] = alpha * (float)d;
    for (size_t i = 0; i < (size_t)h * (size_t)w; i++) {
        const uint8_t *in1 = rgb + 3 * i, *in2 = col[up[i]];
        uint8_t *o = rgba + 4 * i;
        for (int c = 0; c < 3; c++) o[c] = (uint8_t)((float)in1[c] + prod[in2[c] - in1[c] + 255]);
        o[3] = 255;                                       /* 255 + 0.4 * (255 - 255) */
    }
}

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

/* ---- atomic file writes ------------------------------------------------------- */

static int im_write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t r = write(fd, p, n > ((size_t)1 << 30) ? (size_t)1 << 30 : n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Writes a then b to "<path>.tmpXXXXXX" and renames it onto path, so readers
 * see the old file or the whole new one, never a prefix; on any failure the
 * temporary is removed and path is untouched. */
static ec_status im_write_atomic(const char *path, const uint8_t *a, size_t na, const uint8_t *b, size_t nb)
{
    if (!path || !*path) return ec_fail(EC_ERR_ARG, "empty output path");
    char pn[256];
    IM_CLEAN_PATH(path, pn);
    size_t pl = strlen(path);
    char *tmp = malloc(pl + sizeof ".tmpXXXXXX");
    if (!tmp) return ec_fail(EC_ERR_NOMEM, "out of memory");
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmpXXXXXX", sizeof ".tmpXXXXXX");
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return ec_fail(EC_ERR_IO, "cannot create a temporary file for '%s': %s", pn, strerror(e));
    }
    const char *what = "write";
    int ok = im_write_all(fd, a, na) == 0 && im_write_all(fd, b, nb) == 0;
    /* mkstemp makes the file 0600; an output image is not secret. */
    if (ok && fchmod(fd, 0644) != 0) ok = 0, what = "chmod";
    int e = ok ? 0 : errno;
    if (close(fd) != 0 && ok) ok = 0, what = "close", e = errno;
    if (ok && rename(tmp, path) != 0) ok = 0, what = "rename", e = errno;
    if (!ok) {
        unlink(tmp);
        free(tmp);
        return ec_fail(EC_ERR_IO, "cannot write '%s' (%s: %s)", pn, what, strerror(e ? e : EIO));
    }
    free(tmp);
    return EC_OK;
}

ec_status ec_png_write(const char *path, const uint8_t *px, int w, int h, int channels)
{
    uint8_t *png;
    size_t n;
    ec_status st = ec_png_encode(px, w, h, channels, &png, &n);
    if (st != EC_OK) return st;
    st = im_write_atomic(path, png, n, NULL, 0);
    free(png);
    return st;
}

ec_status ec_ppm_write(const char *path, const uint8_t *rgb, int w, int h)
{
    if (!rgb) return ec_fail(EC_ERR_ARG, "ec_ppm_write: NULL pixels");
    if (w <= 0 || h <= 0) return ec_fail(EC_ERR_ARG, "ec_ppm_write: bad size %dx%d", w, h);
    char hdr[64];
    int hl = snprintf(hdr, sizeof hdr, "P6\n%d %d\n255\n", w, h);
    return im_write_atomic(path, (const uint8_t *)hdr, (size_t)hl, rgb, (size_t)w * (size_t)h * 3);
}
