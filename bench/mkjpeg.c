/* mkjpeg.c - makes the benchmark's large photo: a source image (any format the
 * engine decodes; "-" = a synthetic gradient) upsampled bilinearly to W x H,
 * with deterministic fine texture so the JPEG has a real photo's entropy
 * (several MB at 12 megapixels), written with stb_image_write at quality 90.
 *
 *   mkjpeg SRC|- OUT.jpg [W H]        (default 4000 3000)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "image/image.h"

/* stb_image_write is third-party code from the system's libstb-dev; its
 * implementation is compiled here only, for this bench tool. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

static uint8_t clamp8(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 5) {
        fputs("usage: mkjpeg SRC|- OUT.jpg [W H]\n", stderr);
        return 2;
    }
    int W = 4000, H = 3000;
    if (argc == 5) {
        W = atoi(argv[3]);
        H = atoi(argv[4]);
        if (W < 1 || H < 1 || W > 20000 || H > 20000) {
            fputs("mkjpeg: W and H take 1..20000\n", stderr);
            return 2;
        }
    }
    uint8_t *src = NULL;
    int sw = 64, sh = 48;
    if (argv[1][0] == '-' && argv[1][1] == 0) {
        src = malloc((size_t)sw * sh * 3);
        for (int i = 0; src && i < sw * sh; i++) {
            int r = i / sw, c = i % sw;
            src[3 * i] = clamp8(150 + r), src[3 * i + 1] = clamp8(100 + c), src[3 * i + 2] = clamp8(80 + (r ^ c));
        }
    } else if (ec_image_decode_file(argv[1], 50000000, &src, &sw, &sh) != EC_OK) {
        fprintf(stderr, "mkjpeg: %s: %s\n", argv[1], ec_last_error());
        return 2;
    }
    uint8_t *dst = malloc((size_t)W * H * 3);
    if (!src || !dst) {
        fputs("mkjpeg: out of memory\n", stderr);
        return 2;
    }
    uint32_t seed = 0x9e3779b9u;
    for (int y = 0; y < H; y++) {
        double fy = (y + 0.5) * sh / H - 0.5;
        int y0 = fy < 0 ? 0 : (int)fy, y1 = y0 + 1 < sh ? y0 + 1 : sh - 1;
        double ay = fy - y0 < 0 ? 0 : fy - y0;
        for (int x = 0; x < W; x++) {
            double fx = (x + 0.5) * sw / W - 0.5;
            int x0 = fx < 0 ? 0 : (int)fx, x1 = x0 + 1 < sw ? x0 + 1 : sw - 1;
            double ax = fx - x0 < 0 ? 0 : fx - x0;
            seed = seed * 1664525u + 1013904223u;
            /* skin-like pores and hair: a few levels of noise plus a fine ripple */
            int tex = (int)(seed >> 27) - 16 + ((x * 7 + y * 3) % 11) - 5;
            for (int k = 0; k < 3; k++) {
                double a = src[((size_t)y0 * sw + x0) * 3 + k] * (1 - ax) + src[((size_t)y0 * sw + x1) * 3 + k] * ax;
                double b = src[((size_t)y1 * sw + x0) * 3 + k] * (1 - ax) + src[((size_t)y1 * sw + x1) * 3 + k] * ax;
                dst[((size_t)y * W + x) * 3 + k] = clamp8((int)(a * (1 - ay) + b * ay + 0.5) + tex);
            }
        }
    }
    int ok = stbi_write_jpg(argv[2], W, H, 3, dst, 90);
    free(src);
    free(dst);
    if (!ok) {
        fprintf(stderr, "mkjpeg: %s: cannot write\n", argv[2]);
        return 2;
    }
    return 0;
}
