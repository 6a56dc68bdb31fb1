/* fuzz_jpeg.c - libFuzzer target for the streamed decoders: image/reader.c.
 *
 * The bytes go through ec_img_open_mem (JPEG: image/jpeg.c over libjpeg-turbo;
 * PNG: image/pngdec.c; anything else: the whole-image decoder, also fuzzed by
 * fuzz_image) with a small pixel limit, so the
 * fuzzer explores markers and entropy data rather than megapixel memsets. Rows
 * are read in batches of 3 and pushed, as they come, into three resamplers at
 * once - LANCZOS to 19x17 (a model input, small: each row costs its width), BICUBIC to 13x7 (shrinking on one
 * axis, possibly growing on the other), NEAREST to 5x9 - which must all be
 * complete at the end. Failures must come with one line of text.
 *
 *   make fuzz-build && build/fuzz/fuzz_jpeg -max_len=16384 build/fuzz/corpus/jpeg tests/fuzz/seeds/jpeg tests/fuzz/seeds/image
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "effcam.h"
#include "image/reader.h"
#include "image/resample.h"

#define FUZZ_MAX_PIXELS (1 << 14)   /* 128 x 128 (a 1 x 65536 image's 65536 rows made runs of 0.1 s) */

static void fuzz_check_error(ec_status st)
{
    const char *e = ec_last_error();
    if (st == EC_OK || !e[0] || strchr(e, '\n')) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ec_img *im = NULL;
    ec_status st = ec_img_open_mem(data, size, FUZZ_MAX_PIXELS, &im);
    if (st != EC_OK) {
        if (im) abort();
        fuzz_check_error(st);
        return 0;
    }
    int w = 0, h = 0;
    ec_img_size(im, &w, &h);
    if (w <= 0 || h <= 0 || (int64_t)w * h > FUZZ_MAX_PIXELS) abort();

    static uint8_t a[19 * 17 * 3], b[13 * 7 * 3], c[5 * 9 * 3];
    ec_resampler *ra = NULL, *rb = NULL, *rc = NULL;
    if (ec_resampler_new(EC_RESIZE_LANCZOS, w, h, 19, 17, 3, a, &ra) != EC_OK ||
        ec_resampler_new(EC_RESIZE_BICUBIC, w, h, 13, 7, 3, b, &rb) != EC_OK ||
        ec_resampler_new(EC_RESIZE_NEAREST, w, h, 5, 9, 3, c, &rc) != EC_OK)
        abort();
    uint8_t *rows = malloc((size_t)w * 3 * 3);
    int got, total = 0;
    while ((st = ec_img_read_rows(im, rows, 3, &got)) == EC_OK && got) {
        for (int i = 0; i < got; i++) {
            const uint8_t *row = rows + (size_t)i * w * 3;
            if (ec_resampler_push(ra, row) != EC_OK || ec_resampler_push(rb, row) != EC_OK ||
                ec_resampler_push(rc, row) != EC_OK)
                abort();
        }
        total += got;
    }
    if (st != EC_OK) {
        fuzz_check_error(st);
        /* final: the next call fails the same way */
        if (ec_img_read_rows(im, rows, 3, &got) != st || got) abort();
    } else if (total != h || ec_resampler_rows_done(ra) != 17 || ec_resampler_rows_done(rb) != 7 ||
               ec_resampler_rows_done(rc) != 9) {
        abort();
    }
    free(rows);
    ec_resampler_free(ra);
    ec_resampler_free(rb);
    ec_resampler_free(rc);
    ec_img_close(im);
    return 0;
}
