/* resample.h - Pillow's Image.resize for 8-bit interleaved images, bit for bit,
 * streamed (docs/semantics.md 3).
 *
 *   uint8_t in[300 * 300 * 3];                    // dst, the caller's
 *   ec_resampler *r;
 *   if (ec_resampler_new(EC_RESIZE_LANCZOS, 4000, 3000, 300, 300, 3, in, &r) != EC_OK) ...
 *   while (decoding) ec_resampler_push(r, row);   // 4000 * 3 bytes, top to bottom
 *   ec_resampler_free(r);                         // in[] holds what PIL computes
 *
 * Source rows are pushed one at a time; each passes the horizontal filter at
 * once into a ring of intermediate rows as tall as the vertical filter's window,
 * and each destination row is written as soon as its window is complete. Memory
 * is O(dst_w x window) plus the coefficient tables, whatever the source height;
 * several resamplers can be fed the same rows (model input and overlay base).
 *
 * What Pillow 11.3 does, reproduced exactly (libImaging/Resample.c, Geometry.c):
 *   BOX BILINEAR HAMMING BICUBIC LANCZOS: separable convolution, horizontal pass
 *     first into 8-bit rows, then vertical; weights computed in double, normalized,
 *     rounded to 22 fractional bits; a pass runs only when its axis changes size.
 *   NEAREST: Pillow's affine scale (ImagingScaleAffine): source x of output x is
 *     (int) of a double stepped by in/out from in/out/2.
 *   Same size: a copy. Channels 1..4 are filtered independently (4 = RGBX/CMYK
 *     style; Pillow premultiplies RGBA alpha first, this module does not).
 * Limits (EC_ERR_LIMIT): sizes up to 2^24, at most EC_RESAMPLE_MAX_BYTES of
 * coefficients and rows (an extreme shrink, e.g. 3 million columns into a few
 * hundred), and windows whose fixed-point sums could overflow Pillow's int32
 * (millions of taps; undefined behaviour there, refused here).
 */
#ifndef EFFCAM_RESAMPLE_H
#define EFFCAM_RESAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "../effcam.h"

/* ec_resize_filter is in effcam.h (public: the session options choose it). */

#define EC_RESAMPLE_MAX_BYTES ((size_t)64 << 20)

typedef struct ec_resampler ec_resampler;

/* (ec_resize_filter_parse and _name, effcam.h, are defined in resample.c) */

/* Bytes ec_resampler_init needs; 0 for invalid arguments or over the limit. */
size_t ec_resampler_bytes(ec_resize_filter f, int src_w, int src_h, int dst_w, int dst_h, int channels);
/* Builds a resampler in the caller's memory (mem 16-byte aligned, e.g. malloc'd,
 * at least ec_resampler_bytes; nothing to free). dst: dst_h * dst_w * channels. */
ec_status ec_resampler_init(void *mem, size_t bytes, ec_resize_filter f, int src_w, int src_h,
                            int dst_w, int dst_h, int channels, uint8_t *dst, ec_resampler **out);
/* The same in memory of its own; free with ec_resampler_free. */
ec_status ec_resampler_new(ec_resize_filter f, int src_w, int src_h, int dst_w, int dst_h,
                           int channels, uint8_t *dst, ec_resampler **out);
/* Source row y = the number of rows pushed before (src_w * channels bytes, not
 * kept). EC_ERR_STATE after src_h rows. */
ec_status ec_resampler_push(ec_resampler *r, const uint8_t *row);
/* Destination rows [0, n) are final; n == dst_h once all src_h rows are in. */
int ec_resampler_rows_done(const ec_resampler *r);
void ec_resampler_free(ec_resampler *r);                /* NULL ok; no-op after _init */

/* Whole image: dst (dst_h * dst_w * channels) from src (src_h * src_w * channels). */
ec_status ec_u8_resize(ec_resize_filter f, const uint8_t *src, int src_w, int src_h, int channels,
                       uint8_t *dst, int dst_w, int dst_h);

#endif
