/* image.h - the app's image front end and overlay (semantics.md 1, 3, 5).
 *
 * Decode with stb_image as PIL's convert("RGB") would (alpha dropped, gray
 * replicated, 16-bit samples keep their high byte), refusing images over a
 * pixel limit before decoding; PIL BILINEAR resize (kernels/resize.h); the
 * Grad-CAM overlay (uint8 truncation, bilinear upscale, jet LUT, blend 0.4);
 * PNG encoding (Paeth rows, literal-only deflate). All functions set
 * ec_last_error on failure. */
#ifndef EFFCAM_IMAGE_H
#define EFFCAM_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "../effcam.h"

/* Decodes to malloc'd RGB8 (*w * *h * 3); *rgb freed with free(). */
ec_status ec_image_decode_file(const char *path, int64_t max_pixels, uint8_t **rgb, int *w, int *h);
ec_status ec_image_decode_mem(const uint8_t *buf, size_t len, int64_t max_pixels,
                              uint8_t **rgb, int *w, int *h);

/* The app's overlay: cam (ch x cw, values in [0,1]) over rgb (h x w x 3) ->
 * rgba (h x w x 4). Needs no allocation beyond the caller's out buffer and
 * ec_overlay_scratch_bytes(ch, cw, h, w) bytes of scratch. */
size_t ec_overlay_scratch_bytes(int ch, int cw, int h, int w);
void ec_overlay_rgba(const float *cam, int ch, int cw, const uint8_t *rgb, int h, int w,
                     void *scratch, uint8_t *rgba);

/* PNG (8-bit, color type 2 RGB or 6 RGBA by channels = 3 or 4) into a malloc'd buffer. */
ec_status ec_png_encode(const uint8_t *px, int w, int h, int channels, uint8_t **png, size_t *len);
/* Same, written atomically to path (temp file + rename; nothing left on error). */
ec_status ec_png_write(const char *path, const uint8_t *px, int w, int h, int channels);

/* Binary PPM (P6) writer, atomically (preprocess output). */
ec_status ec_ppm_write(const char *path, const uint8_t *rgb, int w, int h);

#endif
