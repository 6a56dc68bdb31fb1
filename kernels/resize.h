/* resize.h - PIL's Image.resize(..., BILINEAR) for 8-bit interleaved images,
 * bit-exact (docs/semantics.md section 3): antialiased triangle filter, horizontal
 * pass then vertical, 22-bit fixed-point weights, 8-bit intermediate rows,
 * a pass skipped when its axis keeps its size. */
#ifndef EFFCAM_RESIZE_H
#define EFFCAM_RESIZE_H

#include <stddef.h>
#include <stdint.h>

/* Scratch bytes ec_u8_resize_bilinear needs (coefficients + intermediate). */
size_t ec_u8_resize_scratch_bytes(int src_w, int src_h, int dst_w, int dst_h, int channels);

/* dst (dst_w x dst_h x channels) from src (src_w x src_h x channels), channels 1..4.
 * Returns 0, or -1 for invalid sizes (<= 0 or absurd). */
int ec_u8_resize_bilinear(const uint8_t *src, int src_w, int src_h, int channels,
                          uint8_t *dst, int dst_w, int dst_h, void *scratch);

#endif
