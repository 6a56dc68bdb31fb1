/* test_jpeg.c - image/jpeg.c and image/reader.c on JPEGs written here by
 * libjpeg's own encoder, and on broken ones.
 *
 *   variants:  4:2:0 4:2:2 4:4:0 4:4:4 4:1:1, baseline / progressive, gray,
 *              RGB-coded, CMYK with and without the Adobe marker, YCCK, restart
 *              intervals, 1-pixel sides: ec_jpeg == a plain libjpeg decode
 *              (jpeg_mem_src, default settings) converted as PIL converts
 *              ("CMYK;I" inversion, cmyk2rgb); the same from memory, from a file
 *              (streamed through the descriptor) and at every batch size;
 *   equal coefficients, equal pixels: arithmetic == Huffman, a 64-scan
 *              spectral-selection file == baseline, no Adobe marker == marker;
 *   hostile:   truncations (every header cut, many data cuts, progressive),
 *              byte flips, a 5,000-scan progressive bomb (refused at scan 101,
 *              fast), huge / zero sizes, 12-bit, lossless, hierarchical,
 *              2 components, not-a-JPEG with a .jpg name, empty: one line each;
 *   memory:    decode + LANCZOS + BICUBIC of a 4000x3000 JPEG in a child process:
 *              peak RSS (VmHWM) grows by about what a 300x300 one costs.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jerror.h>
#include <jpeglib.h>

#include "effcam.h"
#include "image/jpeg.h"
#include "image/reader.h"
#include "image/resample.h"
#include "tests/harness.h"
#include "tests/memchild.h"

#define MAXPX ((int64_t)50000000)

/* ---- libjpeg in the test: an encoder and a plain decoder ----------------------- */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
} t_err;

static void t_error_exit(j_common_ptr c) { longjmp(((t_err *)c->err)->jb, 1); }
static void t_output(j_common_ptr c) { (void)c; }

typedef struct {
    int w, h, comps;                 /* input samples per pixel: 1, 2, 3, 4 */
    J_COLOR_SPACE in_cs, jpeg_cs;    /* jpeg_cs JCS_UNKNOWN: libjpeg's default for in_cs */
    int quality, progressive, arith, restart;
    int adobe;                       /* -1 default, 0 no, 1 yes */
    int hs, vs;                      /* first component's sampling (0: default 2x2) */
    const jpeg_scan_info *script;
    int nscript;
} enc_opts;

/* Pixel (x, y) component c: smooth gradients, an edge and a little texture,
 * so every coefficient band carries something. */
static uint8_t px(int x, int y, int c, int w, int h)
{
    int v = (x * 255 / (w > 1 ? w - 1 : 1) * (c + 1) + y * 255 / (h > 1 ? h - 1 : 1) * (3 - c)) / 3;
    if ((x / 7 + y / 5) % 9 == 0) v = 255 - v;
    v += ((x * 31 + y * 17 + c * 13) % 23) - 11;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* A JPEG in a malloc'd buffer (free()), or NULL. Rows are made on the fly. */
static uint8_t *enc(const enc_opts *o, size_t *len)
{
    struct jpeg_compress_struct c;
    t_err e;
    unsigned char *out = NULL;
    unsigned long size = 0;
    uint8_t *row = malloc((size_t)o->w * o->comps);
    c.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = t_error_exit;
    e.pub.output_message = t_output;
    if (setjmp(e.jb)) {
        jpeg_destroy_compress(&c);
        free(out), free(row);
        return NULL;
    }
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &out, &size);
    c.image_width = (JDIMENSION)o->w;
    c.image_height = (JDIMENSION)o->h;
    c.input_components = o->comps;
    c.in_color_space = o->in_cs;
    jpeg_set_defaults(&c);
    if (o->jpeg_cs != JCS_UNKNOWN) jpeg_set_colorspace(&c, o->jpeg_cs);
    jpeg_set_quality(&c, o->quality ? o->quality : 90, TRUE);
    if (o->hs) c.comp_info[0].h_samp_factor = o->hs, c.comp_info[0].v_samp_factor = o->vs;
    if (o->adobe >= 0) c.write_Adobe_marker = o->adobe;
    c.restart_interval = (unsigned)o->restart;
    c.arith_code = o->arith;
    if (o->progressive) jpeg_simple_progression(&c);
    if (o->script) c.scan_info = o->script, c.num_scans = o->nscript;
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        int y = (int)c.next_scanline;
        for (int x = 0; x < o->w; x++)
            for (int k = 0; k < o->comps; k++) row[(size_t)x * o->comps + k] = px(x, y, k, o->w, o->h);
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    *len = size;
    return out;
}

/* What PIL makes of a JPEG, computed independently: libjpeg with its defaults
 * (jpeg_mem_src) to gray / RGB / CMYK, then PIL's conversions written out as
 * PIL writes them: "L" -> RGB replicates; "CMYK;I" inverts the bytes, then
 * cmyk2rgb: nk = 255 - k, out = CLIP8(nk - MULDIV255(c, nk)). */
static uint8_t *pil_decode(const uint8_t *b, size_t n, int *w, int *h)
{
    struct jpeg_decompress_struct d;
    t_err e;
    uint8_t *out = NULL, *row = NULL;
    d.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = t_error_exit;
    e.pub.output_message = t_output;
    if (setjmp(e.jb)) {
        jpeg_destroy_decompress(&d);
        free(out), free(row);
        return NULL;
    }
    jpeg_create_decompress(&d);
    jpeg_mem_src(&d, b, (unsigned long)n);
    jpeg_read_header(&d, TRUE);
    int comps = d.num_components;
    d.out_color_space = comps == 1 ? JCS_GRAYSCALE : comps == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_start_decompress(&d);
    *w = (int)d.output_width, *h = (int)d.output_height;
    out = malloc((size_t)*w * *h * 3);
    row = malloc((size_t)*w * d.output_components);
    while (d.output_scanline < d.output_height) {
        int y = (int)d.output_scanline;
        JSAMPROW r = row;
        jpeg_read_scanlines(&d, &r, 1);
        for (int x = 0; x < *w; x++) {
            uint8_t *o = out + ((size_t)y * *w + x) * 3;
            if (comps == 1) {
                o[0] = o[1] = o[2] = row[x];
            } else if (comps == 3) {
                memcpy(o, row + 3 * x, 3);
            } else {
                uint8_t inv[4];
                for (int k = 0; k < 4; k++) inv[k] = (uint8_t)~row[4 * x + k];      /* CMYK;I */
                int nk = 255 - inv[3];
                for (int k = 0; k < 3; k++) {
                    int tmp = inv[k] * nk + 128;
                    int v = nk - (((tmp >> 8) + tmp) >> 8);
                    o[k] = (uint8_t)(v <= 0 ? 0 : v < 256 ? v : 255);
                }
            }
        }
    }
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    free(row);
    return out;
}

/* ---- our side: whole image through ec_jpeg / ec_img in batches ------------------ */

/* Decodes with batches of `batch` rows; malloc'd RGB or NULL (status in *st). */
static uint8_t *ours_mem(const uint8_t *b, size_t n, int batch, int *w, int *h, ec_status *st)
{
    ec_jpeg *d;
    *st = ec_jpeg_open_mem(b, n, MAXPX, &d);
    if (*st != EC_OK) return NULL;
    ec_jpeg_info in;
    ec_jpeg_get_info(d, &in);
    *w = in.width, *h = in.height;
    uint8_t *out = malloc((size_t)in.width * in.height * 3 + (size_t)batch * in.width * 3);
    int y = 0, got;
    while ((*st = ec_jpeg_read_rows(d, out + (size_t)y * in.width * 3, batch, &got)) == EC_OK && got) y += got;
    if (*st == EC_OK && y != in.height) *st = EC_ERR_INTERNAL;
    /* after the end: 0 rows, still OK */
    if (*st == EC_OK && (ec_jpeg_read_rows(d, out, batch, &got) != EC_OK || got)) *st = EC_ERR_INTERNAL;
    ec_jpeg_close(d);
    if (*st != EC_OK) {
        free(out);
        return NULL;
    }
    return out;
}

static uint8_t *ours_img(ec_img *im, int batch, int *w, int *h, ec_status *st)
{
    ec_img_size(im, w, h);
    uint8_t *out = malloc((size_t)*w * *h * 3 + (size_t)batch * *w * 3);
    int y = 0, got;
    while ((*st = ec_img_read_rows(im, out + (size_t)y * *w * 3, batch, &got)) == EC_OK && got) y += got;
    if (*st == EC_OK && y != *h) *st = EC_ERR_INTERNAL;
    if (*st != EC_OK) {
        free(out);
        return NULL;
    }
    return out;
}

static int write_file(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(b, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

/* ---- variants: == the independent PIL-style decode -------------------------------- */

static void test_variants(void)
{
    static const struct {
        const char *name;
        enc_opts o;
    } v[] = {
        {"4:2:0 baseline 64x48", {64, 48, 3, JCS_RGB, JCS_UNKNOWN, 90, 0, 0, 0, -1, 0, 0, NULL, 0}},
        {"4:2:0 odd 37x29", {37, 29, 3, JCS_RGB, JCS_UNKNOWN, 75, 0, 0, 0, -1, 0, 0, NULL, 0}},
        {"4:2:2 baseline 50x33", {50, 33, 3, JCS_RGB, JCS_UNKNOWN, 90, 0, 0, 0, -1, 2, 1, NULL, 0}},
        {"4:4:0 baseline 33x50", {33, 50, 3, JCS_RGB, JCS_UNKNOWN, 90, 0, 0, 0, -1, 1, 2, NULL, 0}},
        {"4:4:4 baseline 41x23", {41, 23, 3, JCS_RGB, JCS_UNKNOWN, 95, 0, 0, 0, -1, 1, 1, NULL, 0}},
        {"4:1:1 baseline 70x20", {70, 20, 3, JCS_RGB, JCS_UNKNOWN, 85, 0, 0, 0, -1, 4, 1, NULL, 0}},
        {"4:2:0 progressive 61x45", {61, 45, 3, JCS_RGB, JCS_UNKNOWN, 80, 1, 0, 0, -1, 0, 0, NULL, 0}},
        {"4:2:2 progressive 45x61", {45, 61, 3, JCS_RGB, JCS_UNKNOWN, 80, 1, 0, 0, -1, 2, 1, NULL, 0}},
        {"4:4:4 progressive 30x30", {30, 30, 3, JCS_RGB, JCS_UNKNOWN, 92, 1, 0, 0, -1, 1, 1, NULL, 0}},
        {"gray baseline 40x30", {40, 30, 1, JCS_GRAYSCALE, JCS_UNKNOWN, 90, 0, 0, 0, -1, 0, 0, NULL, 0}},
        {"gray progressive 31x17", {31, 17, 1, JCS_GRAYSCALE, JCS_UNKNOWN, 90, 1, 0, 0, -1, 0, 0, NULL, 0}},
        {"RGB-coded (Adobe transform 0)", {32, 24, 3, JCS_RGB, JCS_RGB, 90, 0, 0, 0, -1, 0, 0, NULL, 0}},
        {"CMYK with Adobe marker", {36, 20, 4, JCS_CMYK, JCS_UNKNOWN, 90, 0, 0, 0, 1, 0, 0, NULL, 0}},
        {"CMYK without Adobe marker", {36, 20, 4, JCS_CMYK, JCS_UNKNOWN, 90, 0, 0, 0, 0, 0, 0, NULL, 0}},
        {"YCCK (Adobe transform 2)", {36, 20, 4, JCS_CMYK, JCS_YCCK, 90, 0, 0, 0, -1, 0, 0, NULL, 0}},
        {"CMYK progressive", {27, 19, 4, JCS_CMYK, JCS_UNKNOWN, 90, 1, 0, 0, 1, 0, 0, NULL, 0}},
        {"restart every 3 MCUs", {80, 40, 3, JCS_RGB, JCS_UNKNOWN, 90, 0, 0, 3, -1, 0, 0, NULL, 0}},
        {"1x1", {1, 1, 3, JCS_RGB, JCS_UNKNOWN, 90, 0, 0, 0, -1, 0, 0, NULL, 0}},
        {"1x300", {1, 300, 3, JCS_RGB, JCS_UNKNOWN, 90, 0, 0, 0, -1, 0, 0, NULL, 0}},
        {"300x1 progressive", {300, 1, 3, JCS_RGB, JCS_UNKNOWN, 90, 1, 0, 0, -1, 0, 0, NULL, 0}},
    };
    static const int batches[] = {1, 2, 3, 7, 16, 1000};
    const char *tmp = t_tmp();
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char name[160], path[512];
        snprintf(name, sizeof name, "jpeg: %s == libjpeg + PIL's conversion (mem, file, 6 batch sizes)", v[i].name);
        size_t n;
        uint8_t *jpg = enc(&v[i].o, &n);
        int pw = 0, ph = 0;
        uint8_t *want = jpg ? pil_decode(jpg, n, &pw, &ph) : NULL;
        if (!want) {
            t_fail(name, "could not encode / decode the test file");
            free(jpg);
            continue;
        }
        int bad = 0;
        char why[300] = "";
        for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
            int w, h;
            ec_status st;
            uint8_t *got = ours_mem(jpg, n, batches[b], &w, &h, &st);
            if (!got || w != pw || h != ph || memcmp(got, want, (size_t)w * h * 3)) {
                if (!bad++) snprintf(why, sizeof why, "batch %d: %s", batches[b], got ? "pixels differ" : ec_last_error());
            }
            free(got);
        }
        /* through the reader: memory, then a file read through its descriptor */
        snprintf(path, sizeof path, "%s/variant_%zu.jpg", tmp, i);
        ec_img *im = NULL;
        for (int mode = 0; mode < 2; mode++) {
            ec_status st = mode == 0 ? ec_img_open_mem(jpg, n, MAXPX, &im)
                                     : (write_file(path, jpg, n) ? EC_ERR_IO : ec_img_open_file(path, MAXPX, &im));
            int w = 0, h = 0;
            uint8_t *got = st == EC_OK ? ours_img(im, 5, &w, &h, &st) : NULL;
            if (!got || w != pw || h != ph || memcmp(got, want, (size_t)w * h * 3) || strcmp(ec_img_format(im), "JPEG"))
                if (!bad++) snprintf(why, sizeof why, "reader (%s): %s", mode ? "file" : "memory", got ? "pixels differ" : ec_last_error());
            free(got);
            ec_img_close(im);
            im = NULL;
        }
        unlink(path);
        T_CHECK(name, bad == 0, "%d failures, first: %s", bad, why);
        free(jpg), free(want);
    }
}

/* ---- same coefficients, same pixels ------------------------------------------------- */

static void test_equal_coefficients(void)
{
    char why[300];
    /* Arithmetic coding: the same quantized coefficients as the Huffman twin. */
    enc_opts h = {48, 40, 3, JCS_RGB, JCS_UNKNOWN, 90, 0, 0, 0, -1, 0, 0, NULL, 0}, a = h;
    a.arith = 1;
    size_t hn, an;
    uint8_t *hj = enc(&h, &hn), *aj = enc(&a, &an);
    int w, h2, w2, h3;
    ec_status s1, s2;
    uint8_t *hp = hj ? ours_mem(hj, hn, 8, &w, &h2, &s1) : NULL;
    uint8_t *ap = aj ? ours_mem(aj, an, 8, &w2, &h3, &s2) : NULL;
#ifdef D_ARITH_CODING_SUPPORTED
    snprintf(why, sizeof why, "%s", ap ? "pixels differ" : ec_last_error());
    T_CHECK("jpeg: arithmetic-coded == its Huffman twin (PIL's libjpeg-turbo decodes both)",
            hp && ap && !memcmp(hp, ap, (size_t)w * h2 * 3), "%s", why);
#else
    T_CHECK("jpeg: arithmetic-coded refused as unsupported (libjpeg built without it)",
            !ap && s2 == EC_ERR_UNSUPPORTED, "status %d: %s", s2, ec_last_error());
#endif
    free(hj), free(aj), free(hp), free(ap);

    /* Progressive by spectral selection only (DC, then each AC coefficient in a
     * scan of its own: 64 scans, under the limit): the baseline coefficients,
     * so the baseline pixels. */
    jpeg_scan_info script[64];
    script[0] = (jpeg_scan_info){1, {0}, 0, 0, 0, 0};
    for (int k = 1; k < 64; k++) script[k] = (jpeg_scan_info){1, {0}, k, k, 0, 0};
    enc_opts g = {57, 43, 1, JCS_GRAYSCALE, JCS_UNKNOWN, 90, 0, 0, 0, -1, 0, 0, NULL, 0}, gp = g;
    gp.script = script, gp.nscript = 64;
    uint8_t *gj = enc(&g, &hn), *pj = enc(&gp, &an);
    uint8_t *g1 = gj ? ours_mem(gj, hn, 4, &w, &h2, &s1) : NULL;
    uint8_t *g2 = pj ? ours_mem(pj, an, 4, &w2, &h3, &s2) : NULL;
    snprintf(why, sizeof why, "%s", g2 ? "pixels differ" : ec_last_error());
    T_CHECK("jpeg: 64-scan spectral-selection progressive == baseline", g1 && g2 && !memcmp(g1, g2, (size_t)w * h2),
            "%s", why);
    free(gj), free(pj), free(g1), free(g2);

    /* PIL inverts 4-component JPEGs whether or not the Adobe marker says so. */
    enc_opts c1 = {36, 20, 4, JCS_CMYK, JCS_UNKNOWN, 90, 0, 0, 0, 1, 0, 0, NULL, 0}, c0 = c1;
    c0.adobe = 0;
    uint8_t *j1 = enc(&c1, &hn), *j0 = enc(&c0, &an);
    uint8_t *p1 = j1 ? ours_mem(j1, hn, 3, &w, &h2, &s1) : NULL;
    uint8_t *p0 = j0 ? ours_mem(j0, an, 3, &w2, &h3, &s2) : NULL;
    T_CHECK("jpeg: CMYK without the Adobe marker == with it (both inverted, as PIL)",
            p1 && p0 && !memcmp(p1, p0, (size_t)w * h2 * 3), "%s", p0 ? "pixels differ" : ec_last_error());
    free(j1), free(j0), free(p1), free(p0);
}

/* ---- hostile input ---------------------------------------------------------------------- */

/* Offset of the first marker m (FF m) after SOI, walking segments; 0 if none. */
static size_t find_marker(const uint8_t *b, size_t n, uint8_t m)
{
    size_t p = 2;
    while (p + 4 <= n && b[p] == 0xFF) {
        if (b[p + 1] == m) return p;
        if (b[p + 1] == 0xDA) return 0;                      /* the scan: headers end */
        p += 2 + ((size_t)b[p + 2] << 8 | b[p + 3]);
    }
    return 0;
}

/* Decodes b; returns the status, with the message copied to why. */
static ec_status try_decode(const uint8_t *b, size_t n, int64_t maxpx, char *why, size_t cap, double *ms)
{
    double t0 = t_now_ms();
    ec_jpeg *d;
    ec_status st = ec_jpeg_open_mem(b, n, maxpx, &d);
    if (st == EC_OK) {
        ec_jpeg_info in;
        ec_jpeg_get_info(d, &in);
        uint8_t *rows = malloc((size_t)in.width * 3 * 16);
        int got;
        while ((st = ec_jpeg_read_rows(d, rows, 16, &got)) == EC_OK && got) {}
        free(rows);
        ec_jpeg_close(d);
    }
    if (ms) *ms = t_now_ms() - t0;
    snprintf(why, cap, "%s", st == EC_OK ? "" : ec_last_error());
    return st;
}

static int one_line(const char *s) { return s[0] && !strchr(s, '\n'); }

static void test_truncated(void)
{
    enc_opts o = {64, 48, 3, JCS_RGB, JCS_UNKNOWN, 90, 0, 0, 0, -1, 0, 0, NULL, 0}, op = o;
    op.progressive = 1;
    for (int pass = 0; pass < 2; pass++) {
        size_t n;
        uint8_t *jpg = enc(pass ? &op : &o, &n);
        if (!jpg) {
            t_fail("jpeg: truncated", "cannot encode");
            continue;
        }
        int w, h;
        ec_status st;
        uint8_t *full = ours_mem(jpg, n, 16, &w, &h, &st);
        int cuts = 0, bad = 0, eoi_ok = 0;
        char first[700] = "";
        /* every cut up to the last 2 bytes (the EOI), all of a small file */
        for (size_t cut = 0; cut + 2 < n; cut++) {
            char why[300];
            uint8_t *copy = malloc(cut ? cut : 1);
            memcpy(copy, jpg, cut);
            st = try_decode(copy, cut, MAXPX, why, sizeof why, NULL);
            cuts++;
            if (st != EC_ERR_IMAGE || !strstr(why, "truncated") || !one_line(why))
                if (!bad++) snprintf(first, sizeof first, "cut at %zu of %zu: status %d '%s'", cut, n, st, why);
            free(copy);
        }
        /* Without its EOI (or half of it): what libjpeg needs decides, as in PIL;
         * if it decodes, it is the whole image. */
        for (size_t cut = n - 2; cut < n; cut++) {
            char why[300];
            int w2, h2;
            uint8_t *got = ours_mem(jpg, cut, 16, &w2, &h2, &st);
            snprintf(why, sizeof why, "%s", ec_last_error());
            if (got ? memcmp(got, full, (size_t)w * h * 3) != 0 : (st != EC_ERR_IMAGE || !strstr(why, "truncated")))
                if (!bad++) snprintf(first, sizeof first, "cut at %zu (EOI): status %d '%s'", cut, st, why);
            eoi_ok += got != NULL;
            free(got);
        }
        char name[160];
        snprintf(name, sizeof name, "jpeg: %s cut at each of %d bytes -> one 'truncated' error each (missing EOI: %s)",
                 pass ? "progressive" : "baseline", cuts, eoi_ok ? "decodes" : "truncated");
        T_CHECK(name, full && bad == 0, "%d failures, first %s", bad, first);
        free(full), free(jpg);
    }
}

static void test_corrupt(void)
{
    enc_opts o = {64, 48, 3, JCS_RGB, JCS_UNKNOWN, 90, 0, 0, 4, -1, 0, 0, NULL, 0};
    size_t n;
    uint8_t *jpg = enc(&o, &n);
    uint32_t r = 7;
    int runs = 0, ok = 0, errs = 0, bad = 0;
    char first[700] = "";
    for (int it = 0; jpg && it < 3000; it++) {
        uint8_t *c = malloc(n);
        memcpy(c, jpg, n);
        int flips = 1 + it % 4;
        for (int k = 0; k < flips; k++) {
            r = r * 1103515245u + 12345u;
            size_t pos = 2 + (r >> 8) % (n - 2);
            c[pos] ^= (uint8_t)(1u << ((r >> 4) % 8));
        }
        char why[300];
        ec_status st = try_decode(c, n, MAXPX, why, sizeof why, NULL);
        runs++;
        if (st == EC_OK) ok++;
        else if ((st == EC_ERR_IMAGE || st == EC_ERR_UNSUPPORTED || st == EC_ERR_LIMIT) && one_line(why)) errs++;
        else if (!bad++) snprintf(first, sizeof first, "flip set %d: status %d '%s'", it, st, why);
        free(c);
    }
    char name[160];
    snprintf(name, sizeof name, "jpeg: %d corrupted copies -> decoded (warnings ignored, as PIL) or one error: %d / %d",
             runs, ok, errs);
    T_CHECK(name, jpg && bad == 0, "%d bad, first %s", bad, first);
    free(jpg);
}

/* A progressive file whose last scan is repeated 5,000 times: libjpeg would
 * re-walk the whole coefficient buffer for each. */
static void test_scan_bomb(void)
{
    enc_opts o = {512, 512, 3, JCS_RGB, JCS_UNKNOWN, 75, 1, 0, 0, -1, 0, 0, NULL, 0};
    size_t n;
    uint8_t *jpg = enc(&o, &n);
    if (!jpg) {
        t_fail("jpeg: progressive bomb", "cannot encode");
        return;
    }
    /* the last SOS: scan for FF DA from the end */
    size_t last = 0;
    for (size_t p = 2; p + 1 < n; p++)
        if (jpg[p] == 0xFF && jpg[p + 1] == 0xDA) last = p;
    size_t scan = n - 2 - last, reps = 5000;                 /* SOS .. before EOI */
    size_t bn = last + scan * reps + 2;
    uint8_t *bomb = malloc(bn);
    memcpy(bomb, jpg, last);
    for (size_t k = 0; k < reps; k++) memcpy(bomb + last + k * scan, jpg + last, scan);
    bomb[bn - 2] = 0xFF, bomb[bn - 1] = 0xD9;
    char why[300];
    double ms;
    ec_status st = try_decode(bomb, bn, MAXPX, why, sizeof why, &ms);
    char name[200];
    snprintf(name, sizeof name, "jpeg: progressive bomb (%zu scans, 512x512) refused as a limit in %.0f ms", reps + 9, ms);
    T_CHECK(name, st == EC_ERR_LIMIT && strstr(why, "scans") && ms < 3000, "status %d '%s'", st, why);

    /* The same bomb declared 2000x2000 (the scans' data runs out at once; each
     * scan still walks every block): the limit holds whatever the size. */
    size_t sof = find_marker(bomb, bn, 0xC2);
    if (sof) {
        bomb[sof + 5] = 2000 >> 8, bomb[sof + 6] = 2000 & 255, bomb[sof + 7] = 2000 >> 8, bomb[sof + 8] = 2000 & 255;
        st = try_decode(bomb, bn, MAXPX, why, sizeof why, &ms);
        snprintf(name, sizeof name, "jpeg: progressive bomb declared 2000x2000 refused in %.0f ms", ms);
        T_CHECK(name, st == EC_ERR_LIMIT && ms < 5000, "status %d '%s'", st, why);
    } else {
        t_fail("jpeg: progressive bomb 2000x2000", "no SOF2 found");
    }
    free(bomb), free(jpg);
}

static void test_refusals(void)
{
    enc_opts o = {64, 48, 3, JCS_RGB, JCS_UNKNOWN, 90, 0, 0, 0, -1, 0, 0, NULL, 0};
    size_t n;
    uint8_t *jpg = enc(&o, &n);
    size_t sof = jpg ? find_marker(jpg, n, 0xC0) : 0;
    if (!sof) {
        t_fail("jpeg: refusals", "cannot encode / find SOF0");
        free(jpg);
        return;
    }
    uint8_t *c = malloc(n);
    char why[300];
    double ms;
    ec_status st;
#define PATCHED(code) (memcpy(c, jpg, n), (code), try_decode(c, n, MAXPX, why, sizeof why, &ms))

    /* SOF0: FF C0, length (2), precision (1), height (2), width (2), comps (1) */
    st = PATCHED((c[sof + 5] = 60000 >> 8, c[sof + 6] = 60000 & 255, c[sof + 7] = 60000 >> 8, c[sof + 8] = 60000 & 255));
    T_CHECK("jpeg: 60000x60000 declared -> limit from the header, fast", st == EC_ERR_LIMIT && strstr(why, "60000x60000") &&
            ms < 200, "status %d '%s' %.0f ms", st, why, ms);
    memcpy(c, jpg, n);
    c[sof + 5] = c[sof + 6] = c[sof + 7] = c[sof + 8] = 0xFF;
    st = try_decode(c, n, INT64_MAX, why, sizeof why, &ms);
    T_CHECK("jpeg: 65535x65535 with no pixel limit -> libjpeg's dimension limit", st == EC_ERR_LIMIT && one_line(why),
            "status %d '%s'", st, why);
    st = PATCHED((c[sof + 5] = 0, c[sof + 6] = 0));
    T_CHECK("jpeg: height 0 (DNL) -> zero-dimension error", st == EC_ERR_IMAGE && strstr(why, "zero"), "status %d '%s'", st, why);
    st = PATCHED((c[sof + 7] = 0, c[sof + 8] = 0));
    T_CHECK("jpeg: width 0 -> zero-dimension error", st == EC_ERR_IMAGE && strstr(why, "zero"), "status %d '%s'", st, why);
    st = PATCHED((c[sof + 4] = 12));
    T_CHECK("jpeg: 12-bit -> unsupported", st == EC_ERR_UNSUPPORTED && strstr(why, "12-bit"), "status %d '%s'", st, why);
#if LIBJPEG_TURBO_VERSION_NUMBER < 3000000
    st = PATCHED((c[sof + 1] = 0xC3));
    T_CHECK("jpeg: lossless (SOF3) -> unsupported", st == EC_ERR_UNSUPPORTED && one_line(why), "status %d '%s'", st, why);
#endif
    st = PATCHED((c[sof + 1] = 0xC5));
    T_CHECK("jpeg: hierarchical (SOF5) -> unsupported", st == EC_ERR_UNSUPPORTED && one_line(why), "status %d '%s'", st, why);

    enc_opts two = {16, 16, 2, JCS_UNKNOWN, JCS_UNKNOWN, 90, 0, 0, 0, -1, 0, 0, NULL, 0};
    size_t tn;
    uint8_t *tj = enc(&two, &tn);
    st = tj ? try_decode(tj, tn, MAXPX, why, sizeof why, &ms) : EC_ERR_INTERNAL;
    T_CHECK("jpeg: 2 components -> unsupported (PIL reads 1, 3, 4)", st == EC_ERR_UNSUPPORTED && strstr(why, "2 components"),
            "status %d '%s'", st, why);
    free(tj);

    st = try_decode(jpg, n, 64 * 47, why, sizeof why, &ms);
    T_CHECK("jpeg: one pixel over max_pixels -> limit", st == EC_ERR_LIMIT && strstr(why, "3072 pixels"), "status %d '%s'",
            st, why);

    static const uint8_t png[] = "\x89PNG\r\n\x1A\n\0\0\0\rIHDR";
    st = try_decode(png, sizeof png - 1, MAXPX, why, sizeof why, &ms);
    T_CHECK("jpeg: PNG bytes -> not a JPEG", st == EC_ERR_IMAGE && strstr(why, "not a JPEG"), "status %d '%s'", st, why);
    st = try_decode((const uint8_t *)"\xFF\xD8", 2, MAXPX, why, sizeof why, &ms);
    T_CHECK("jpeg: 2 bytes -> truncated", st == EC_ERR_IMAGE && strstr(why, "truncated"), "status %d '%s'", st, why);
    st = try_decode((const uint8_t *)"", 0, MAXPX, why, sizeof why, &ms);
    T_CHECK("jpeg: 0 bytes -> truncated", st == EC_ERR_IMAGE && one_line(why), "status %d '%s'", st, why);

    /* Through the reader, by file name: a text file called .jpg is what its
     * bytes say (PIL ignores the name too); the message names the file. */
    char path[512];
    snprintf(path, sizeof path, "%s/not_really.jpg", t_tmp());
    write_file(path, "hello, this is text\n", 20);
    ec_img *im = NULL;
    st = ec_img_open_file(path, MAXPX, &im);
    snprintf(why, sizeof why, "%s", ec_last_error());
    T_CHECK("jpeg: text named .jpg -> one error naming the file", st == EC_ERR_IMAGE && !im && strstr(why, "not_really.jpg") &&
            one_line(why), "status %d '%s'", st, why);
    /* a truncated JPEG file: the error comes while reading rows, named too */
    write_file(path, jpg, n / 2);
    st = ec_img_open_file(path, MAXPX, &im);
    int got = 0;
    uint8_t *rows = malloc(64 * 3 * 64);
    while (st == EC_OK && (st = ec_img_read_rows(im, rows, 8, &got)) == EC_OK && got) {}
    snprintf(why, sizeof why, "%s", ec_last_error());
    T_CHECK("jpeg: truncated file -> 'truncated' naming the file", st == EC_ERR_IMAGE && strstr(why, "not_really.jpg") &&
            strstr(why, "truncated"), "status %d '%s'", st, why);
    /* a failed read is final */
    ec_status again = im ? ec_img_read_rows(im, rows, 8, &got) : EC_OK;
    T_CHECK("jpeg: a failed read stays failed", again == st && got == 0, "status %d then %d", st, again);
    ec_img_close(im);
    free(rows);
    unlink(path);
    snprintf(path, sizeof path, "%s/empty.jpg", t_tmp());
    write_file(path, "", 0);
    im = NULL;
    st = ec_img_open_file(path, MAXPX, &im);
    snprintf(why, sizeof why, "%s", ec_last_error());
    T_CHECK("jpeg: empty file -> one error", st != EC_OK && !im && one_line(why), "status %d '%s'", st, why);
    unlink(path);
    st = ec_img_open_file(t_tmp(), MAXPX, &im);
    T_CHECK("jpeg: a directory -> I/O error", st == EC_ERR_IO && !im, "status %d", st);
    free(c), free(jpg);
#undef PATCHED
}

/* ---- memory and time: 12 MP ------------------------------------------------------------- */

/* The child: decode path (fd-streamed, or from memory when mem != 0) into a
 * LANCZOS and a BICUBIC resampler at 300x300; prints the peak RSS growth. */
static int mem_child(const char *path, int mem)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (mem && !(buf = (uint8_t *)t_slurp(path, &len))) return 2;
    double t0;
    long before = t_mem_child_begin(&t0);
    ec_img *im;
    ec_status st = mem ? ec_img_open_mem(buf, len, MAXPX, &im) : ec_img_open_file(path, MAXPX, &im);
    int rc = st == EC_OK ? t_mem_child_stream(im, before, t0) : 3;
    free(buf);
    return rc;
}

static void test_memory(void)
{
#ifdef T_ASAN
    t_skip("jpeg: 12 MP peak RSS", "AddressSanitizer build (its shadow memory and quarantine make RSS meaningless)");
    return;
#endif
    char big[512], small[512];
    snprintf(big, sizeof big, "%s/big_4000x3000.jpg", t_tmp());
    snprintf(small, sizeof small, "%s/small_300x300.jpg", t_tmp());
    enc_opts ob = {4000, 3000, 3, JCS_RGB, JCS_UNKNOWN, 92, 0, 0, 0, -1, 0, 0, NULL, 0}, os = ob;
    os.w = os.h = 300;
    size_t bn, sn;
    uint8_t *bj = enc(&ob, &bn), *sj = enc(&os, &sn);
    if (!bj || !sj || write_file(big, bj, bn) || write_file(small, sj, sn)) {
        t_fail("jpeg: 12 MP peak RSS", "cannot write the test JPEGs");
        free(bj), free(sj);
        return;
    }
    free(bj), free(sj);
    for (int mem = 0; mem < 2; mem++) {
        double ms_b = 0, ms_s = 0;
        char *ab[] = { "test_jpeg", "--mem-child", big, mem ? "mem" : "fd", NULL };
        char *as[] = { "test_jpeg", "--mem-child", small, mem ? "mem" : "fd", NULL };
        long gb = t_run_mem_child(ab, &ms_b), gs = t_run_mem_child(as, &ms_s);
        char name[300];
        snprintf(name, sizeof name,
                 "jpeg: 4000x3000 (%zu KB) decode + LANCZOS + BICUBIC to 300x300 from %s: peak RSS +%ld KiB "
                 "(300x300: +%ld KiB), %.0f ms",
                 bn / 1000, mem ? "memory" : "file", gb, gs, ms_b);
        T_CHECK(name, gb >= 0 && gs >= 0 && gb - gs < 3 * 1024, "growth %ld KiB vs %ld KiB (limit: 3 MiB more)", gb, gs);
    }
    unlink(big), unlink(small);
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--mem-child")) return mem_child(argv[2], !strcmp(argv[3], "mem"));
    test_variants();
    test_equal_coefficients();
    test_truncated();
    test_corrupt();
    test_scan_bomb();
    test_refusals();
    test_memory();
    return t_failed;
}
