/* reader.c - format dispatch for the streamed pipeline (reader.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../engine/error.h"
#include "image.h"
#include "jpeg.h"
#include "pngdec.h"
#include "reader.h"

/* Same cap as the whole-image decoder: no photo we accept is larger. */
#define RD_MAX_FILE_BYTES ((uint64_t)256 << 20)

typedef enum { RD_JPEG, RD_PNG, RD_WHOLE } rd_kind;

struct ec_img {
    rd_kind kind;
    int w, h, next_row;
    const char *format;
    ec_jpeg *jpeg;               /* RD_JPEG */
    ec_pngd *png;                /* RD_PNG */
    uint8_t *file;               /* RD_PNG from a file: its bytes (the decoder reads them) */
    uint8_t *rgb;                /* RD_WHOLE: [h][w][3] */
    int fd;                      /* file mode: open until close, else -1 */
    char name[200];              /* file mode: the path, cleaned, for messages */
};

static int rd_is_jpeg(const uint8_t *b, size_t n) { return n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF; }
static int rd_is_png(const uint8_t *b, size_t n) { return n >= 8 && !memcmp(b, "\x89PNG\r\n\x1A\n", 8); }

/* A short format name from the magic, for ec_img_format. */
static const char *rd_format(const uint8_t *b, size_t n)
{
    if (rd_is_jpeg(b, n)) return "JPEG";
    if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1A\n", 8)) return "PNG";
    if (n >= 6 && (!memcmp(b, "GIF87a", 6) || !memcmp(b, "GIF89a", 6))) return "GIF";
    if (n >= 2 && !memcmp(b, "BM", 2)) return "BMP";
    if (n >= 2 && b[0] == 'P' && (b[1] == '5' || b[1] == '6')) return "PNM";
    return "TGA";                /* the one format decoded without a magic */
}

/* One line naming the file in front of the message already set. */
static ec_status rd_named(const ec_img *im, ec_status st)
{
    if (st == EC_OK || !im || !im->name[0]) return st;
    char why[400];
    snprintf(why, sizeof why, "%s", ec_last_error());
    return ec_fail(st, "%s: %s", im->name, why);
}

static ec_img *rd_new(void)
{
    ec_img *im = calloc(1, sizeof *im);
    if (im) im->fd = -1;
    return im;
}

static ec_status rd_from_jpeg(ec_img *im, ec_jpeg *j)
{
    ec_jpeg_info in;
    ec_jpeg_get_info(j, &in);
    im->kind = RD_JPEG;
    im->jpeg = j;
    im->w = in.width;
    im->h = in.height;
    im->format = "JPEG";
    return EC_OK;
}

static ec_status rd_from_png(ec_img *im, const uint8_t *buf, size_t len, int64_t max_pixels)
{
    ec_status st = ec_pngd_open_mem(buf, len, max_pixels, &im->png);
    if (st != EC_OK) return st;
    im->kind = RD_PNG;
    im->format = "PNG";
    ec_pngd_size(im->png, &im->w, &im->h);
    return EC_OK;
}

/* The rest of a regular file of `size` bytes after the n already in head: a
 * malloc'd copy of the whole file in *out (*len bytes). */
static ec_status rd_slurp(ec_img *im, int fd, uint64_t size, const uint8_t *head, size_t n, uint8_t **out, size_t *len)
{
    size_t cap = (size_t)size + 1;   /* one byte more to notice a file that grew */
    uint8_t *b = malloc(cap > n ? cap : n + 1);
    if (!b) return ec_fail(EC_ERR_NOMEM, "%s: out of memory reading %zu bytes", im->name, cap);
    memcpy(b, head, n);
    for (;;) {
        if (n >= cap) {
            free(b);
            return ec_fail(EC_ERR_IO, "%s: the file grew while it was read", im->name);
        }
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(b);
            return ec_fail(EC_ERR_IO, "%s: cannot read: %s", im->name, strerror(e));
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    *out = b;
    *len = n;
    return EC_OK;
}

ec_status ec_img_open_mem(const uint8_t *buf, size_t len, int64_t max_pixels, ec_img **out)
{
    if (!out || (!buf && len)) return ec_fail(EC_ERR_ARG, "ec_img_open_mem: NULL argument");
    *out = NULL;
    ec_img *im = rd_new();
    if (!im) return ec_fail(EC_ERR_NOMEM, "out of memory opening an image");
    ec_status st;
    if (rd_is_jpeg(buf, len)) {
        ec_jpeg *j;
        st = ec_jpeg_open_mem(buf, len, max_pixels, &j);
        if (st == EC_OK) st = rd_from_jpeg(im, j);
    } else if (rd_is_png(buf, len)) {
        st = rd_from_png(im, buf, len, max_pixels);
    } else {
        im->kind = RD_WHOLE;
        im->format = len ? rd_format(buf, len) : "empty";
        st = ec_image_decode_mem(buf, len, max_pixels, &im->rgb, &im->w, &im->h);
    }
    if (st != EC_OK) {
        ec_img_close(im);
        return st;
    }
    *out = im;
    return EC_OK;
}

ec_status ec_img_open_file(const char *path, int64_t max_pixels, ec_img **out)
{
    if (!path || !out) return ec_fail(EC_ERR_ARG, "ec_img_open_file: NULL argument");
    *out = NULL;
    if (max_pixels <= 0) return ec_fail(EC_ERR_ARG, "ec_img_open_file: max_pixels must be positive");
    /* regular files only: a FIFO or a device would block or never end */
    int fd;
    uint64_t size;
    ec_status st = ec_file_open_regular(path, RD_MAX_FILE_BYTES, &fd, &size);
    if (st != EC_OK) return st;
    ec_img *im = rd_new();
    if (!im) {
        close(fd);
        return ec_fail(EC_ERR_NOMEM, "out of memory opening an image");
    }
    ec_path_clean(path, im->name, sizeof im->name);
    uint8_t head[16];
    size_t n = 0;
    while (n < sizeof head) {
        ssize_t r = read(fd, head + n, sizeof head - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            st = ec_fail(EC_ERR_IO, "%s: cannot read: %s", im->name, strerror(errno));
            break;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    if (st == EC_OK && rd_is_jpeg(head, n)) {
        /* Streamed: the descriptor stays open and is read as rows are asked for. */
        ec_jpeg *j;
        st = ec_jpeg_open_fd(fd, head, n, max_pixels, &j);
        if (st == EC_OK) {
            im->fd = fd;
            fd = -1;
            rd_from_jpeg(im, j);
        } else {
            st = rd_named(im, st);
        }
    } else if (st == EC_OK) {
        /* PNG: decoded row by row from the file's bytes in memory; the others
         * whole, from the same bytes */
        size_t len = 0;
        st = rd_slurp(im, fd, size, head, n, &im->file, &len);
        if (st == EC_OK && rd_is_png(head, n)) {
            st = rd_named(im, rd_from_png(im, im->file, len, max_pixels));
        } else if (st == EC_OK) {
            im->kind = RD_WHOLE;
            im->format = len ? rd_format(head, n) : "empty";
            st = rd_named(im, ec_image_decode_mem(im->file, len, max_pixels, &im->rgb, &im->w, &im->h));
            free(im->file);
            im->file = NULL;
        }
    }
    if (fd >= 0) close(fd);
    if (st != EC_OK) {
        ec_img_close(im);
        return st;
    }
    *out = im;
    return EC_OK;
}

void ec_img_size(const ec_img *im, int *w, int *h)
{
    if (w) *w = im ? im->w : 0;
    if (h) *h = im ? im->h : 0;
}

const char *ec_img_format(const ec_img *im) { return im ? im->format : "none"; }

ec_status ec_img_read_rows(ec_img *im, uint8_t *dst, int max_rows, int *got)
{
    if (got) *got = 0;
    if (!im || !dst || !got || max_rows <= 0) return ec_fail(EC_ERR_ARG, "ec_img_read_rows: bad argument");
    if (im->kind == RD_JPEG || im->kind == RD_PNG) {
        ec_status st = im->kind == RD_JPEG ? ec_jpeg_read_rows(im->jpeg, dst, max_rows, got)
                                           : ec_pngd_read_rows(im->png, dst, max_rows, got);
        im->next_row += *got;
        return rd_named(im, st);
    }
    int n = im->h - im->next_row;
    if (n > max_rows) n = max_rows;
    size_t stride = (size_t)im->w * 3;
    memcpy(dst, im->rgb + (size_t)im->next_row * stride, (size_t)n * stride);
    im->next_row += n;
    *got = n;
    return EC_OK;
}

void ec_img_close(ec_img *im)
{
    if (!im) return;
    ec_jpeg_close(im->jpeg);
    ec_pngd_close(im->png);
    free(im->file);
    free(im->rgb);
    if (im->fd >= 0) close(im->fd);
    free(im);
}
