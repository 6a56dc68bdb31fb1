/* decode.c - the app's image front end (docs/semantics.md section 1).
 *
 *   decode:  sniff the format from its magic bytes, refuse what we do not
 *            decode; JPEG and PNG through the row decoders (jpeg.c: libjpeg-
 *            turbo, pngdec.c: PIL's PNG rules), binary PNM with our own reader
 *            (which scales maxval the way PIL does), GIF, BMP and TGA with
 *            stb_image after checking the container is complete (truncated
 *            BMP/GIF files are errors in PIL, while stb_image would quietly pad
 *            them) and the header size against max_pixels; all converted like
 *            PIL's convert("RGB").
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image.h>

#include "../engine/error.h"
#include "image.h"
#include "reader.h"

/* Defined in stb_image_impl.c: per-thread cap on any single allocation stb
 * makes, and whether that cap refused one. */
extern _Thread_local size_t ec_stbi_alloc_cap;
extern _Thread_local int ec_stbi_cap_hit;

/* Files larger than this are not images we accept (a 50 MP photo is ~30 MB
 * as JPEG, ~150 MB as an uncompressed BMP). */
#define IM_MAX_FILE_BYTES ((size_t)256 << 20)

static uint32_t im_le32(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}
static uint32_t im_le16(const uint8_t *p) { return (uint32_t)p[1] << 8 | p[0]; }

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
    if (comp == 1 || comp == 2 || comp == 4 || comp == 5) {
        /* PIL decodes RLE8/RLE4 (and hands JPEG/PNG payloads to those decoders);
         * stb_image does not: say so rather than "corrupt" */
        static const char *const what[] = { "", "RLE8", "RLE4", "", "embedded JPEG", "embedded PNG" };
        return ec_fail(EC_ERR_UNSUPPORTED, "unsupported BMP compression (%s): save the image as PNG or an "
                                           "uncompressed BMP", what[comp]);
    }
    if (w <= 0 || h <= 0 || bpp == 0 || bpp > 32) return EC_OK;   /* stb reports these */
    if (comp != 0 && comp != 3 && comp != 6) return EC_OK;        /* other codes: stb refuses */
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
    /* w, h < 10^10 each (10 digits): their product fits a double exactly enough
     * for the message, never an int64 overflow */
    if (w > (1 << 24) || h > (1 << 24) || w * h > max_pixels)
        return ec_fail(EC_ERR_LIMIT, "image is %lldx%lld = %.0f pixels, over the limit of %lld", (long long)w,
                       (long long)h, (double)w * (double)h, (long long)max_pixels);
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

/* ---- JPEG and PNG: the row decoders, whole -------------------------------------
 * One decoder per format: the streamed pipeline's (image/jpeg.c: libjpeg-turbo
 * as PIL; image/pngdec.c: PIL's PNG rules), its rows gathered here. */
static ec_status im_decode_rows(const uint8_t *buf, size_t len, int64_t max_pixels, uint8_t **rgb, int *wo, int *ho)
{
    ec_img *im;
    ec_status st = ec_img_open_mem(buf, len, max_pixels, &im);
    if (st != EC_OK) return st;
    int w, h, got = 0;
    ec_img_size(im, &w, &h);
    uint8_t *out = malloc((size_t)w * (size_t)h * 3);
    if (!out) st = ec_fail(EC_ERR_NOMEM, "out of memory decoding a %dx%d image", w, h);
    for (int y = 0; st == EC_OK && y < h; y += got) {
        st = ec_img_read_rows(im, out + (size_t)y * w * 3, h - y, &got);
        if (st == EC_OK && got == 0) st = ec_fail(EC_ERR_IMAGE, "the image ended after %d of its %d rows", y, h);
    }
    ec_img_close(im);
    if (st != EC_OK) {
        free(out);
        return st;
    }
    *rgb = out, *wo = w, *ho = h;
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
    if (fmt == FMT_JPEG || fmt == FMT_PNG) return im_decode_rows(buf, len, max_pixels, rgb, w, h);

    ec_status st = EC_OK;
    if (fmt == FMT_BMP) st = im_check_bmp(buf, len);
    else if (fmt == FMT_GIF) st = im_check_gif(buf, len);
    if (st != EC_OK) return st;

    int iw = 0, ih = 0, icomp = 0;
    if (!stbi_info_from_memory(buf, (int)len, &iw, &ih, &icomp)) {
        if (fmt == FMT_UNKNOWN)
            /* not the file's size or bytes: a server must not leak what a
             * readable non-image file (a request naming /etc/shadow) holds */
            return ec_fail(EC_ERR_IMAGE, "not an image (no format this reads: JPEG, PNG, GIF, BMP, TGA, PNM)");
        return ec_fail(EC_ERR_IMAGE, "truncated or corrupt %s header (stb_image: %s)", name, stbi_failure_reason());
    }
    if (fmt == FMT_UNKNOWN) name = "TGA";               /* the one format stb knows without a magic */
    if (fmt == FMT_BMP && ih < 0 && ih > INT_MIN) ih = -ih;   /* top-down rows: stb_image flips them itself */
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
    /* Asking stb for 3 channels is exactly convert("RGB") for what stb reads
     * here (GIF, BMP, TGA): palettes applied, alpha dropped, gray replicated. */
    out = stbi_load_from_memory(buf, (int)len, &ow, &oh, &ocomp, 3);
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
    uint8_t *buf;
    size_t n;
    ec_status st = ec_file_read(path, IM_MAX_FILE_BYTES, &buf, &n);
    if (st != EC_OK) return st;   /* the message names the file */
    st = ec_image_decode_mem(buf, n, max_pixels, rgb, w, h);
    free(buf);
    if (st != EC_OK) {
        char pn[256], why[400];
        snprintf(why, sizeof why, "%s", ec_last_error());
        ec_fail(st, "%s: %s", ec_path_clean(path, pn, sizeof pn), why);
    }
    return st;
}
