/* fuzz_image.c - libFuzzer target for the image front end.
 *
 * Decodes arbitrary bytes with a small pixel limit (so the fuzzer explores
 * parsers, not allocation sizes), then drives what the engine does with a
 * decoded photo: PIL-BILINEAR resize to 64x64 (a model input) and to 13x7
 * (odd, shrinking on one axis and possibly growing on the other), and a PNG
 * encode of the small result that must decode back to the same pixels.
 *
 * Built by `make fuzz-build` (tests/fuzz/README.md); by hand:
 *   build/fuzz/fuzz_image -max_len=16384 build/fuzz/corpus/image tests/fuzz/seeds/image
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image.h>

#include "effcam.h"
#include "image/image.h"
#include "image/resample.h"

#define FUZZ_MAX_PIXELS (1 << 14)   /* 128 x 128: parsers, not resampling (it ran 1.3 k/s at 256 x 256) */

static void resize_to(const uint8_t *rgb, int w, int h, int dw, int dh, uint8_t *out)
{
    if (ec_u8_resize(EC_RESIZE_BILINEAR, rgb, w, h, 3, out, dw, dh) != EC_OK) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *rgb = NULL;
    int w = 0, h = 0;
    ec_status st = ec_image_decode_mem(data, size, FUZZ_MAX_PIXELS, &rgb, &w, &h);
    if (st != EC_OK) {
        /* A failure is fine; a failure without a one-line message is a bug. */
        const char *e = ec_last_error();
        if (rgb || !e[0] || strchr(e, '\n')) abort();
        return 0;
    }
    if (!rgb || w <= 0 || h <= 0 || (int64_t)w * h > FUZZ_MAX_PIXELS) abort();

    uint8_t big[64 * 64 * 3], small[13 * 7 * 3];
    resize_to(rgb, w, h, 64, 64, big);
    resize_to(rgb, w, h, 13, 7, small);
    free(rgb);

    uint8_t *png = NULL;
    size_t n = 0;
    if (ec_png_encode(small, 13, 7, 3, &png, &n) != EC_OK) abort();
    int bw, bh, bc;
    uint8_t *back = stbi_load_from_memory(png, (int)n, &bw, &bh, &bc, 3);
    if (!back || bw != 13 || bh != 7 || memcmp(back, small, sizeof small)) abort();
    stbi_image_free(back);
    free(png);
    return 0;
}
