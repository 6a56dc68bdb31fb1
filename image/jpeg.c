/* jpeg.c - libjpeg-turbo decoding, row by row, as PIL's convert("RGB") (jpeg.h).
 *
 * Every libjpeg call runs under jp_guard: libjpeg's error_exit (and our own
 * refusals inside libjpeg callbacks: scan limit, read errors) longjmp back
 * there, where the error becomes a status and one line of text. The failure is
 * sticky, since libjpeg's state is undefined after an error_exit.
 *
 * The data source never suspends. Where PIL's suspending source would wait for
 * bytes that never come (then raise "image file is truncated"), ours records
 * the fact, hands libjpeg a fake EOI so it returns, and the guard turns it into
 * the truncation error - unless every row was already out (a missing EOI after
 * the last scan: PIL accepts that too).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jerror.h>
#include <jpeglib.h>

#include "../engine/error.h"
#include "jpeg.h"

#define JP_FD_BUF (64 * 1024)
#define JP_TMP_ROWS 4                 /* CMYK rows staged before conversion */

struct ec_jpeg {
    struct jpeg_decompress_struct ci;
    struct jpeg_error_mgr jerr;
    struct jpeg_progress_mgr prog;
    struct jpeg_source_mgr src;
    jmp_buf jb;
    int created;                      /* jpeg_create_decompress done */

    /* source: a memory buffer, or a descriptor (with a prefix already read) */
    const uint8_t *mem;
    size_t mem_len;
    int fd;
    uint8_t *fbuf;                    /* [fbuf_cap]: read buffer, first holding the prefix */
    size_t fbuf_cap;
    size_t prefix_len;                /* bytes of fbuf to hand over first */
    int prefix_given;
    uint64_t fed;                     /* bytes handed to libjpeg */
    int eof;                          /* libjpeg asked for bytes past the end */

    /* outcome of a longjmp: who threw, and the text */
    ec_status throw_st;               /* EC_OK: libjpeg's error_exit */
    char msg[JMSG_LENGTH_MAX + 96];
    ec_status failed;                 /* sticky failure (message in failmsg) */
    char failmsg[256];

    int64_t max_pixels;
    int width, height, comps;
    int started, rows_out;
    uint8_t *tmp;                     /* CMYK: [JP_TMP_ROWS][width * 4] */
};

/* ---- libjpeg callbacks: errors, warnings, progress, source ---------------- */

static ec_jpeg *jp_of(j_common_ptr c) { return (ec_jpeg *)c->client_data; }

static void jp_error_exit(j_common_ptr c)
{
    ec_jpeg *d = jp_of(c);
    d->throw_st = EC_OK;
    (*c->err->format_message)(c, d->msg);
    longjmp(d->jb, 1);
}

/* Our own refusal from inside a callback: status and text, then unwind. */
__attribute__((format(printf, 3, 4), noreturn))
static void jp_throw(ec_jpeg *d, ec_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof d->msg, fmt, ap);
    va_end(ap);
    d->throw_st = st;
    longjmp(d->jb, 1);
}

/* Warnings (recoverable corrupt data) are ignored, as PIL ignores them (its
 * output_message is empty); trace messages too. Nothing is ever printed. */
static void jp_emit_message(j_common_ptr c, int level) { (void)c, (void)level; }
static void jp_output_message(j_common_ptr c) { (void)c; }

/* Called before each chunk of input during the multi-scan preload and per
 * output row: refuses the scan after the limit as soon as its SOS is read. */
static void jp_progress(j_common_ptr c)
{
    ec_jpeg *d = jp_of(c);
    if (d->ci.input_scan_number > EC_JPEG_MAX_SCANS)
        jp_throw(d, EC_ERR_LIMIT, "JPEG has more than %d scans (a progressive bomb?), refused", EC_JPEG_MAX_SCANS);
}

static void jp_init_source(j_decompress_ptr ci) { (void)ci; }
static void jp_term_source(j_decompress_ptr ci) { (void)ci; }

static boolean jp_fill(j_decompress_ptr ci)
{
    static const JOCTET fake_eoi[2] = {0xFF, JPEG_EOI};
    ec_jpeg *d = jp_of((j_common_ptr)ci);
    if (d->fbuf) {
        if (!d->prefix_given) {
            d->prefix_given = 1;
            if (d->prefix_len) {
                d->src.next_input_byte = d->fbuf;
                d->src.bytes_in_buffer = d->prefix_len;
                d->fed += d->prefix_len;
                return TRUE;
            }
        }
        for (;;) {
            ssize_t r = read(d->fd, d->fbuf, d->fbuf_cap);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) jp_throw(d, EC_ERR_IO, "read error after %llu bytes: %s", (unsigned long long)d->fed, strerror(errno));
            if (r == 0) break;
            d->src.next_input_byte = d->fbuf;
            d->src.bytes_in_buffer = (size_t)r;
            d->fed += (uint64_t)r;
            return TRUE;
        }
    }
    /* The end: PIL would wait here for bytes that never come. */
    d->eof = 1;
    d->src.next_input_byte = fake_eoi;
    d->src.bytes_in_buffer = sizeof fake_eoi;
    return TRUE;
}

static void jp_skip(j_decompress_ptr ci, long n)
{
    ec_jpeg *d = jp_of((j_common_ptr)ci);
    if (n <= 0) return;
    while ((size_t)n > d->src.bytes_in_buffer) {
        n -= (long)d->src.bytes_in_buffer;
        d->src.bytes_in_buffer = 0;
        jp_fill(ci);
        if (d->eof) return;                               /* keep the fake EOI */
    }
    d->src.next_input_byte += n;
    d->src.bytes_in_buffer -= (size_t)n;
}

/* ---- the guard: every libjpeg call runs inside one ------------------------- */

/* The status and text of what was thrown. A truncation explains everything
 * libjpeg said after it (it was reading our fake EOI), so it comes first. */
static ec_status jp_fail(ec_jpeg *d)
{
    ec_status st;
    int code = d->jerr.msg_code;
    if (d->throw_st != EC_OK) {
        st = ec_fail(d->throw_st, "%s", d->msg);
    } else if (d->eof) {
        st = ec_fail(EC_ERR_IMAGE, "truncated JPEG (data ends at byte %llu%s)", (unsigned long long)d->fed,
                     d->started ? ", before the last row" : ", in the header");
    } else if (code == JERR_BAD_PRECISION) {
        st = ec_fail(EC_ERR_UNSUPPORTED, "unsupported JPEG: %d-bit samples (8-bit only, as PIL)", d->ci.data_precision);
    } else if (code == JERR_SOF_UNSUPPORTED || code == JERR_ARITH_NOTIMPL || code == JERR_NOT_COMPILED) {
        st = ec_fail(EC_ERR_UNSUPPORTED, "unsupported JPEG (libjpeg: %s)", d->msg);
    } else if (code == JERR_EMPTY_IMAGE) {
        st = ec_fail(EC_ERR_IMAGE, "JPEG has a zero dimension (libjpeg: %s)", d->msg);
    } else if (code == JERR_IMAGE_TOO_BIG || code == JERR_WIDTH_OVERFLOW) {
        st = ec_fail(EC_ERR_LIMIT, "JPEG too large (libjpeg: %s)", d->msg);
    } else if (code == JERR_OUT_OF_MEMORY) {
        st = ec_fail(EC_ERR_NOMEM, "out of memory decoding a JPEG (libjpeg: %s)", d->msg);
    } else {
        st = ec_fail(EC_ERR_IMAGE, "corrupt JPEG (libjpeg: %s)", d->msg);
    }
    d->failed = st;
    snprintf(d->failmsg, sizeof d->failmsg, "%s", ec_last_error());
    return st;
}

typedef void (*jp_step)(ec_jpeg *d, void *arg);

static ec_status jp_guard(ec_jpeg *d, jp_step fn, void *arg)
{
    if (d->failed) return ec_fail(d->failed, "%s", d->failmsg);
    if (setjmp(d->jb)) return jp_fail(d);
    fn(d, arg);
    return EC_OK;
}

/* ---- open: the header ------------------------------------------------------- */

static const char *jp_color_name(J_COLOR_SPACE cs)
{
    switch (cs) {
    case JCS_GRAYSCALE: return "gray";
    case JCS_YCbCr: return "YCbCr";
    case JCS_RGB: return "RGB";
    case JCS_CMYK: return "CMYK";
    case JCS_YCCK: return "YCCK";
    default: return "unknown";
    }
}

static void jp_read_header(ec_jpeg *d, void *arg)
{
    (void)arg;
    jpeg_create_decompress(&d->ci);
    d->created = 1;
    d->ci.src = &d->src;
    d->ci.progress = &d->prog;
    if (!d->fbuf) {                                       /* memory: all of it at once */
        d->src.next_input_byte = d->mem;
        d->src.bytes_in_buffer = d->mem_len;
        d->fed = d->mem_len;
    }
    /* As PIL's decoder: a tables-only datastream (SOI tables EOI) may come
     * before the image; read on until a header with a frame. */
    while (jpeg_read_header(&d->ci, FALSE) == JPEG_HEADER_TABLES_ONLY) {}
    if (d->eof)                                           /* header cut short: libjpeg read our EOI */
        jp_throw(d, EC_ERR_IMAGE, "truncated JPEG (data ends at byte %llu, in the header)", (unsigned long long)d->fed);

    int comps = d->ci.num_components;
    if (comps != 1 && comps != 3 && comps != 4)
        jp_throw(d, EC_ERR_UNSUPPORTED, "unsupported JPEG: %d components (PIL reads 1, 3 or 4)", comps);
    d->width = (int)d->ci.image_width;
    d->height = (int)d->ci.image_height;
    d->comps = comps;
    if ((int64_t)d->width * d->height > d->max_pixels)
        jp_throw(d, EC_ERR_LIMIT, "image is %dx%d = %lld pixels, over the limit of %lld", d->width, d->height,
                 (long long)d->width * d->height, (long long)d->max_pixels);
    /* What PIL asks for: "L", "RGB" (RGBX: same values), "CMYK;I". libjpeg's
     * defaults (islow IDCT, fancy upsampling, block smoothing) are left. */
    d->ci.out_color_space = comps == 1 ? JCS_GRAYSCALE : comps == 3 ? JCS_RGB : JCS_CMYK;
}

static ec_status jp_open(ec_jpeg *d, int64_t max_pixels, ec_jpeg **out)
{
    d->max_pixels = max_pixels;
    d->ci.err = jpeg_std_error(&d->jerr);
    d->jerr.error_exit = jp_error_exit;
    d->jerr.emit_message = jp_emit_message;
    d->jerr.output_message = jp_output_message;
    d->ci.client_data = d;
    d->prog.progress_monitor = jp_progress;
    d->src.init_source = jp_init_source;
    d->src.fill_input_buffer = jp_fill;
    d->src.skip_input_data = jp_skip;
    d->src.resync_to_restart = jpeg_resync_to_restart;
    d->src.term_source = jp_term_source;
    ec_status st = jp_guard(d, jp_read_header, NULL);
    if (st != EC_OK) {
        ec_jpeg_close(d);
        return st;
    }
    *out = d;
    return EC_OK;
}

/* PIL wants FF D8 FF (JpegImagePlugin._accept); libjpeg alone would take FF D8. */
static ec_status jp_check_magic(const uint8_t *b, size_t n)
{
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return EC_OK;
    if (n < 3) return ec_fail(EC_ERR_IMAGE, "truncated JPEG (%zu bytes)", n);
    return ec_fail(EC_ERR_IMAGE, "not a JPEG file (starts %02x %02x %02x, not ff d8 ff)", b[0], b[1], b[2]);
}

ec_status ec_jpeg_open_mem(const uint8_t *buf, size_t len, int64_t max_pixels, ec_jpeg **out)
{
    if (!out || (!buf && len)) return ec_fail(EC_ERR_ARG, "ec_jpeg_open_mem: NULL argument");
    *out = NULL;
    if (max_pixels <= 0) return ec_fail(EC_ERR_ARG, "ec_jpeg_open_mem: max_pixels must be positive");
    ec_status st = jp_check_magic(buf, len);
    if (st != EC_OK) return st;
    ec_jpeg *d = calloc(1, sizeof *d);
    if (!d) return ec_fail(EC_ERR_NOMEM, "out of memory opening a JPEG");
    d->mem = buf;
    d->mem_len = len;
    d->fd = -1;
    return jp_open(d, max_pixels, out);
}

ec_status ec_jpeg_open_fd(int fd, const uint8_t *prefix, size_t n, int64_t max_pixels, ec_jpeg **out)
{
    if (!out || fd < 0 || (!prefix && n)) return ec_fail(EC_ERR_ARG, "ec_jpeg_open_fd: bad argument");
    *out = NULL;
    if (max_pixels <= 0) return ec_fail(EC_ERR_ARG, "ec_jpeg_open_fd: max_pixels must be positive");
    ec_jpeg *d = calloc(1, sizeof *d);
    size_t cap = n > JP_FD_BUF ? n : JP_FD_BUF;
    uint8_t *fbuf = malloc(cap);
    if (!d || !fbuf) {
        free(d), free(fbuf);
        return ec_fail(EC_ERR_NOMEM, "out of memory opening a JPEG");
    }
    /* The prefix is copied (the caller's buffer need not outlive this call)
     * and completed to the 3 bytes of the magic. The first fill hands it over. */
    if (n) memcpy(fbuf, prefix, n);
    size_t have = n;
    while (have < 3) {
        ssize_t r = read(fd, fbuf + have, 3 - have);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(d), free(fbuf);
            return ec_fail(EC_ERR_IO, "read error: %s", strerror(e));
        }
        if (r == 0) break;
        have += (size_t)r;
    }
    ec_status st = jp_check_magic(fbuf, have);
    if (st != EC_OK) {
        free(d), free(fbuf);
        return st;
    }
    d->fd = fd;
    d->fbuf = fbuf;
    d->fbuf_cap = cap;
    d->prefix_len = have;
    return jp_open(d, max_pixels, out);
}

void ec_jpeg_get_info(const ec_jpeg *d, ec_jpeg_info *in)
{
    memset(in, 0, sizeof *in);
    if (!d) return;
    in->width = d->width;
    in->height = d->height;
    in->components = d->comps;
    in->progressive = d->ci.progressive_mode ? 1 : 0;
    in->arithmetic = d->ci.arith_code ? 1 : 0;
    in->color = jp_color_name(d->ci.jpeg_color_space);
}

/* ---- rows ------------------------------------------------------------------- */

/* PIL's "CMYK;I" unpacker inverts the four samples, then cmyk2rgb: with
 * nk = 255 - K, out = clip(nk - MULDIV255(C, nk)), MULDIV255(a, b) being
 * t = a * b + 128, ((t >> 8) + t) >> 8. Here C = 255 - c and nk = k. */
static void jp_cmyk_to_rgb(const uint8_t *in, uint8_t *out, int w)
{
    for (int x = 0; x < w; x++, in += 4, out += 3) {
        int nk = in[3];
        for (int c = 0; c < 3; c++) {
            int t = (255 - in[c]) * nk + 128;
            int v = nk - (((t >> 8) + t) >> 8);
            out[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
}

typedef struct {
    uint8_t *rgb;
    int max_rows, got;
} jp_rows_arg;

static void jp_read(ec_jpeg *d, void *argp)
{
    jp_rows_arg *a = argp;
    struct jpeg_decompress_struct *ci = &d->ci;
    size_t stride = (size_t)d->width * 3;
    if (!d->started) {
        /* Multi-scan files read every scan here (scan limit: jp_progress). */
        jpeg_start_decompress(ci);
        d->started = 1;
        if (d->eof) jp_throw(d, EC_ERR_IMAGE, "truncated JPEG (data ends at byte %llu, before the last scan)",
                             (unsigned long long)d->fed);
        if ((int)ci->output_width != d->width || (int)ci->output_height != d->height ||
            ci->output_components != (d->comps == 1 ? 1 : d->comps == 3 ? 3 : 4))
            jp_throw(d, EC_ERR_INTERNAL, "libjpeg output %ux%u x%d, expected %dx%d", ci->output_width,
                     ci->output_height, ci->output_components, d->width, d->height);
        if (d->comps == 4 && !(d->tmp = malloc((size_t)d->width * 4 * JP_TMP_ROWS)))
            jp_throw(d, EC_ERR_NOMEM, "out of memory decoding a %dx%d CMYK JPEG", d->width, d->height);
    }
    while (a->got < a->max_rows && ci->output_scanline < ci->output_height) {
        JSAMPROW rows[JP_TMP_ROWS];
        int want = a->max_rows - a->got;
        if (want > JP_TMP_ROWS) want = JP_TMP_ROWS;
        uint8_t *out = a->rgb + (size_t)a->got * stride;    /* [want][width * 3] */
        for (int i = 0; i < want; i++)
            rows[i] = d->comps == 3 ? out + i * stride
                    : d->comps == 1 ? out + i * stride + 2 * (size_t)d->width   /* gray at the row's end */
                    : d->tmp + (size_t)i * d->width * 4;
        int n = (int)jpeg_read_scanlines(ci, rows, (JDIMENSION)want);
        if (d->eof)
            jp_throw(d, EC_ERR_IMAGE, "truncated JPEG (data ends at byte %llu, before the last row)",
                     (unsigned long long)d->fed);
        if (n <= 0) jp_throw(d, EC_ERR_INTERNAL, "libjpeg returned no row at row %u", ci->output_scanline);
        for (int i = 0; i < n; i++) {
            uint8_t *o = out + i * stride;
            if (d->comps == 1) {
                /* Forward in place: pixel x reads byte 2w + x before any write
                 * reaches it (writes end at 3x + 2 < 2w + x + 1 for x < w). */
                const uint8_t *g = o + 2 * (size_t)d->width;
                for (int x = 0; x < d->width; x++) {
                    uint8_t v = g[x];
                    o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = v;
                }
            } else if (d->comps == 4) {
                jp_cmyk_to_rgb(rows[i], o, d->width);
            }
        }
        a->got += n;
        d->rows_out += n;
    }
    /* After the last row: the markers to EOI, as PIL's finish does. Running
     * out of data here is fine (PIL ignores a suspension once all rows are
     * in); an error is not. */
    if (d->rows_out == d->height) jpeg_finish_decompress(ci);
}

ec_status ec_jpeg_read_rows(ec_jpeg *d, uint8_t *rgb, int max_rows, int *got)
{
    if (got) *got = 0;
    if (!d || !rgb || !got || max_rows <= 0) return ec_fail(EC_ERR_ARG, "ec_jpeg_read_rows: bad argument");
    if (d->failed) return ec_fail(d->failed, "%s", d->failmsg);
    if (d->rows_out >= d->height) return EC_OK;
    jp_rows_arg a = {rgb, max_rows, 0};
    ec_status st = jp_guard(d, jp_read, &a);
    if (st != EC_OK) return st;
    *got = a.got;
    return EC_OK;
}

void ec_jpeg_close(ec_jpeg *d)
{
    if (!d) return;
    if (d->created) jpeg_destroy_decompress(&d->ci);
    free(d->tmp);
    free(d->fbuf);
    free(d);
}
