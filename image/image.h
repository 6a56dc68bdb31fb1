/* image.h - the image module: the app's pixels in and out (docs/semantics.md 1, 3, 5).
 *
 *   decode.c    sniff the format, check the container, decode like PIL's
 *               Image.open(f).convert("RGB") (stb_image; PNM our own)
 *   overlay.c   the app's Grad-CAM overlay: uint8 heat, BILINEAR upscale, jet,
 *               blend 0.4
 *   png.c       the PNG encoder (Paeth rows, literal-only deflate)
 *   file.c      whole-file reads and atomic writes, regular files only
 * The resize (PIL's resampling, bit-exact) is kernels/resize.h. Every function
 * sets ec_last_error on failure; messages about a file start with its name. */
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

/* ---- overlay --------------------------------------------------------------- */
/* The app's overlay: cam (ch x cw, values in [0,1]) over rgb (h x w x 3) ->
 * rgba (h x w x 4). Needs no allocation beyond the caller's out buffer and
 * ec_overlay_scratch_bytes(ch, cw, h, w) bytes of scratch. */
size_t ec_overlay_scratch_bytes(int ch, int cw, int h, int w);
void ec_overlay_rgba(const float *cam, int ch, int cw, const uint8_t *rgb, int h, int w,
                     void *scratch, uint8_t *rgba);

/* ---- PNG ------------------------------------------------------------------- */
/* PNG (8-bit, color type 2 RGB or 6 RGBA by channels = 3 or 4) into a malloc'd buffer. */
ec_status ec_png_encode(const uint8_t *px, int w, int h, int channels, uint8_t **png, size_t *len);
/* Same, written atomically to path (ec_file_write_atomic). */
ec_status ec_png_write(const char *path, const uint8_t *px, int w, int h, int channels);

/* ---- files ------------------------------------------------------------------ */
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
