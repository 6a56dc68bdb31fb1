/* pngdec.h - PNG decoding row by row, as PIL 11.3's Image.open(f).convert("RGB")
 * (PngImagePlugin.py, ZipDecode.c, Unpack.c, Convert.c).
 *
 *   ec_pngd *d;
 *   if (ec_pngd_open_mem(buf, len, max_pixels, &d) != EC_OK) ...   // chunks up to the first IDAT
 *   while (rows left) ec_pngd_read_rows(d, rgb, 8, &got);          // got rows of width * 3
 *   ec_pngd_close(d);
 *
 * Pixels, per PIL mode: gray 1-bit 0/255, 2- and 4-bit scaled by 85 / 17,
 * 16-bit ("I;16") clipped to 255 (not its high byte); RGB and RGBA 16-bit keep
 * the high byte, alpha dropped; LA gray replicated; palette applied, indices
 * past the PLTE entries black (PIL's palette is zeroed).
 * Stream, per PIL: CRCs checked on every chunk before the first IDAT ("broken
 * PNG file"), not on IDAT and later chunks; image data read from consecutive
 * IDAT chunks in pieces of at most 64 KiB, as PIL feeds its decoder (so zlib
 * sees the same calls); data ending before the last row is "truncated"; a zlib
 * stream that ends at a row boundary ends the image (PIL leaves the remaining
 * rows as zero samples: black, or palette entry 0); nothing after the last row
 * is read. Interlaced (Adam7) images are decoded whole into w * h * 3 bytes at
 * the first read; others need two rows of samples. max_pixels is checked from
 * IHDR, sides are limited to 2^24.
 */
#ifndef EFFCAM_PNGDEC_H
#define EFFCAM_PNGDEC_H

#include <stddef.h>
#include <stdint.h>

#include "../effcam.h"

typedef struct ec_pngd ec_pngd;

/* buf (len bytes) must stay valid until ec_pngd_close. */
ec_status ec_pngd_open_mem(const uint8_t *buf, size_t len, int64_t max_pixels, ec_pngd **out);
void ec_pngd_size(const ec_pngd *d, int *w, int *h);
int ec_pngd_interlaced(const ec_pngd *d);
/* Up to max_rows next rows of RGB8 ([max_rows][w * 3]); *got = 0 at the end.
 * Errors are final. */
ec_status ec_pngd_read_rows(ec_pngd *d, uint8_t *rgb, int max_rows, int *got);
void ec_pngd_close(ec_pngd *d);                    /* NULL ok */

#endif
