/* image.h - the image module: the app's pixels in and out (docs/semantics.md 1, 3, 5).
 *
 *   decode.c    sniff the format, check the container, decode like PIL's
 *               Image.open(f).convert("RGB") (stb_image; PNM our own)
 *   overlay.c   the app's Grad-CAM overlay: uint8 heat, BILINEAR upscale, jet,
 *               blend 0.4
 *   png.c       the PNG encoder (Paeth rows, literal-only deflate)
 *   file.c      whole-file reads and atomic writes, regular files only
 *   reader.c    an image opened, its rows delivered top to bottom (jpeg.c and
 *               pngdec.c row by row, the other formats through decode.c)
 *   resample.c  Pillow's resampling filters, bit-exact and streamed
 *   input.c     rows from a reader into the model input's and the overlay
 *               base's resamplers at once
 * Every function sets ec_last_error on failure; messages about a file start
 * with its name. */
#ifndef EFFCAM_IMAGE_H
#define EFFCAM_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "../effcam.h"

/* ---- decode ---------------------------------------------------------------- */
/* Decodes to malloc'd RGB8 (*w * *h * 3); *rgb freed with free(). */
ec_status ec_image_decode_file(const char *path, int64_t max_pixels, uint8_t **rgb, int *w, int *h);
ec_status ec_image_decode_mem(const uint8_t *buf, size_t len, int64_t max_pixels,
                              uint8_t **rgb, int *w, int *h);

/* ---- the model's input (input.c) -------------------------------------------- */
typedef struct ec_img ec_img;    /* reader.h */
typedef struct {
    void *mem;                    /* the resamplers, grown to the largest source seen */
    size_t cap;
    uint8_t *rows;                /* a batch of decoded rows */
    size_t rows_cap;
} ec_input_scratch;

typedef struct {
    int dst_w, dst_h;
    ec_resize_filter filter;      /* the model input's */
    uint8_t *dst;                 /* [dst_h][dst_w][3] */
    ec_resize_filter base_filter; /* the overlay base's */
    uint8_t *base;                /* [dst_h][dst_w][3], or NULL: none */
    int64_t max_pixels;
} ec_input_spec;

/* The image's rows, from the reader im or else from rgb (w x h x 3), through
 * the resamplers into sp->dst (and sp->base). */
ec_status ec_input_run(const ec_input_spec *sp, ec_img *im, const uint8_t *rgb, int w, int h, ec_input_scratch *sc);
void ec_input_scratch_free(ec_input_scratch *sc);

/* ---- overlay --------------------------------------------------------------- */
/* The app's overlay: cam (ch x cw, values in [0,1]) over rgb (h x w x 3) ->
 * rgba (h x w x 4). Needs no allocation beyond the caller's out buffer and
 * ec_overlay_scratch_bytes(ch, cw, h, w) bytes of scratch. */
size_t ec_overlay_scratch_bytes(int ch, int cw, int h, int w);
ec_status ec_overlay_rgba(const float *cam, int ch, int cw, const uint8_t *rgb, int h, int w,
                          void *scratch, uint8_t *rgba);

/* ---- PNG ------------------------------------------------------------------- */
/* PNG (8-bit, color type 2 RGB or 6 RGBA by channels = 3 or 4) into a malloc'd buffer. */
ec_status ec_png_encode(const uint8_t *px, int w, int h, int channels, uint8_t **png, size_t *len);
/* Same, written atomically to path (ec_file_write_atomic). */
ec_status ec_png_write(const char *path, const uint8_t *px, int w, int h, int channels);

/* ---- files ------------------------------------------------------------------ */
/* Opens a regular file of at most max_bytes for reading (*fd, *size); FIFOs,
 * devices and directories are refused without blocking. */
ec_status ec_file_open_regular(const char *path, uint64_t max_bytes, int *fd, uint64_t *size);
/* The whole of a regular file of at most max_bytes into a malloc'd buffer;
 * FIFOs, devices and directories are refused without blocking. */
ec_status ec_file_read(const char *path, size_t max_bytes, uint8_t **buf, size_t *len);
/* EC_OK if path does not exist or is a regular file (or a link to one). */
ec_status ec_file_check_output(const char *path);
/* a then b written to path atomically: the old file or the whole new one,
 * never a prefix, nothing left behind on failure (see file.c). */
ec_status ec_file_write_atomic(const char *path, const void *a, size_t na, const void *b, size_t nb);
/* (ec_image_save_ppm, effcam.h: binary PPM written atomically, is in file.c) */
/* s for a one-line message: control bytes replaced, cut at cap with "...". */
const char *ec_path_clean(const char *s, char *out, size_t cap);

#endif
