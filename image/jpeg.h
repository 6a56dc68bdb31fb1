/* jpeg.h - JPEG decoding through libjpeg-turbo, row by row, exactly as the app's
 * PIL decoded: Image.open(f).convert("RGB") (semantics.md section 1).
 *
 *   ec_jpeg *d;
 *   if (ec_jpeg_open_mem(buf, len, max_pixels, &d) != EC_OK) ...   // header only
 *   ec_jpeg_info in; ec_jpeg_get_info(d, &in);                     // in.width, in.height
 *   while (rows left) ec_jpeg_read_rows(d, rgb, 8, &got);          // got rows of width * 3
 *   ec_jpeg_close(d);
 *
 * What PIL 11.3 does, and so this module (JpegImagePlugin.py, JpegDecode.c,
 * Unpack.c, Convert.c):
 *   - libjpeg defaults: integer "slow" IDCT, fancy upsampling, block smoothing;
 *     no DCT scaling, EXIF orientation ignored;
 *   - 1 component: gray, replicated to R, G, B; 3: libjpeg's RGB (YCbCr or RGB
 *     as libjpeg reads the markers); 4: CMYK (YCCK converted by libjpeg), always
 *     inverted ("CMYK;I": PIL assumes Adobe polarity, marker or not), then PIL's
 *     cmyk2rgb; other component counts and precisions other than 8 bits are
 *     refused (EC_ERR_UNSUPPORTED), as are JPEG processes libjpeg lacks
 *     (lossless, hierarchical; arithmetic coding when not compiled in);
 *   - libjpeg warnings (corrupt data it can skip) are ignored, as PIL ignores
 *     them; running out of data before the last row is an error ("image file is
 *     truncated" in PIL: its decoder suspends and no more bytes come), after it
 *     (a missing EOI) is not; an error reading the markers after the last row
 *     is (PIL's jpeg_finish_decompress longjmps too).
 * Limits: width * height over max_pixels is refused from the header, before any
 * pixel is decoded (EC_ERR_LIMIT); more than EC_JPEG_MAX_SCANS scans is refused
 * as soon as the next scan starts (a "progressive bomb": every scan re-walks
 * the image). Memory: a single-scan JPEG needs a few rows of MCUs; progressive
 * and other multi-scan files need libjpeg's coefficient buffer (2 bytes per
 * sample, e.g. 36 MB for 12 MP at 4:2:0), never the decoded image. libjpeg's
 * error_exit never exits: it longjmps back here and becomes a status plus a
 * message (ec_last_error); nothing is printed.
 */
#ifndef EFFCAM_JPEG_H
#define EFFCAM_JPEG_H

#include <stddef.h>
#include <stdint.h>

#include "../effcam.h"

/* PIL has no limit. Encoders write about 10 scans (libjpeg's and jpegtran's
 * progressive script: 10 for YCbCr, 6 for gray; mozjpeg's search about 20);
 * more takes a contrived script (one scan per coefficient of each of three
 * components is 190). Each scan re-walks the coefficients, hence the cap. */
#define EC_JPEG_MAX_SCANS 100

typedef struct ec_jpeg ec_jpeg;

typedef struct {
    int width, height;
    int components;            /* in the file: 1, 3 or 4 */
    int progressive;           /* SOF2 / SOF10 */
    int arithmetic;            /* arithmetic-coded */
    const char *color;         /* libjpeg's reading: "gray", "YCbCr", "RGB", "CMYK", "YCCK" */
} ec_jpeg_info;

/* Reads the header from buf (len bytes, kept by the caller until close). */
ec_status ec_jpeg_open_mem(const uint8_t *buf, size_t len, int64_t max_pixels, ec_jpeg **out);
/* The same from a file descriptor, read through a 64 KiB buffer as rows are
 * decoded: prefix (n bytes, may be 0, copied) are bytes the caller already read
 * from fd (a format sniff). fd stays the caller's: open until close, not closed. */
ec_status ec_jpeg_open_fd(int fd, const uint8_t *prefix, size_t n, int64_t max_pixels, ec_jpeg **out);
void ec_jpeg_get_info(const ec_jpeg *d, ec_jpeg_info *info);
/* Up to max_rows next rows of RGB8 into rgb ([max_rows][width * 3]); *got rows
 * written (0 once all were read). Any error is final: every later call repeats it. */
ec_status ec_jpeg_read_rows(ec_jpeg *d, uint8_t *rgb, int max_rows, int *got);
void ec_jpeg_close(ec_jpeg *d);                    /* NULL ok */

#endif
