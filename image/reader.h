/* reader.h - an image opened, its size known, its RGB8 rows delivered top to
 * bottom: the front of the streamed pipeline (decode -> resamplers).
 *
 *   ec_img *im;
 *   if (ec_img_open_file("photo.jpg", max_pixels, &im) != EC_OK) ...  // header only
 *   int w, h; ec_img_size(im, &w, &h);
 *   uint8_t rows[8 * w * 3]; int got;
 *   while (ec_img_read_rows(im, rows, 8, &got) == EC_OK && got) ...   // push to resamplers
 *   ec_img_close(im);
 *
 * The format comes from the first bytes (never the file name). JPEG is decoded
 * row by row by image/jpeg.c (a file is read through a 64 KiB buffer), so a
 * 12 MP photo costs what a small one does; PNG row by row by image/pngdec.c
 * from the file's bytes in memory (interlaced PNGs whole); the other formats
 * are decoded whole by ec_image_decode_mem/_file (stb_image with PIL's
 * conversions) and their rows served from that buffer. Pixel limit (max_pixels) checked from the header,
 * before decoding. Errors: a status plus one line in ec_last_error(), naming
 * the file for ec_img_open_file; a failed read_rows is final.
 */
#ifndef EFFCAM_READER_H
#define EFFCAM_READER_H

#include <stddef.h>
#include <stdint.h>

#include "../effcam.h"

typedef struct ec_img ec_img;

/* buf must stay valid until ec_img_close. */
ec_status ec_img_open_mem(const uint8_t *buf, size_t len, int64_t max_pixels, ec_img **out);
ec_status ec_img_open_file(const char *path, int64_t max_pixels, ec_img **out);
void ec_img_size(const ec_img *im, int *w, int *h);
const char *ec_img_format(const ec_img *im);      /* "JPEG", "PNG", ... */
/* Up to max_rows next rows into dst ([max_rows][w * 3]); *got = 0 at the end. */
ec_status ec_img_read_rows(ec_img *im, uint8_t *dst, int max_rows, int *got);
void ec_img_close(ec_img *im);                     /* NULL ok */

#endif
