/* imgbench.c - decode + resize time of one photo, the pipeline before and
 * after the app's pixels (issue #13), alternated in one process.
 *
 *   imgbench PHOTO [ROUNDS]
 *
 * before: stb_image's JPEG decoder (libstb-dev; effcam compiles it out since
 *         it differs from PIL's by up to 3 levels), the whole photo in memory,
 *         then Pillow's BILINEAR to 300x300 for the model input and again for
 *         the overlay base (the old pipeline's filter, from the decoded buffer).
 * after:  effcam's reader: libjpeg-turbo row by row into Pillow's LANCZOS
 *         (model input) and BICUBIC (overlay base) at once; the photo is never
 *         held whole.
 * Both read the file's bytes from memory, so neither pays for the disk.
 * Prints one line per variant (median and min of ROUNDS, default 9) and, with
 * --json, one JSON object. Nothing is asserted: the figures move with the load. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image/image.h"
#include "image/reader.h"

/* A second, private stb_image with its JPEG decoder: static, so it does not
 * meet the library's copy (image/stb_image_impl.c). */
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_JPEG
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#if defined(__GNUC__)   /* stb's unused static API is reported at the end of the file: not popped */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wshadow"
#endif
#include <stb/stb_image.h>

enum { SIDE = 300, MAX_ROUNDS = 99 };

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int before(const uint8_t *buf, size_t len, uint8_t *dst, uint8_t *base, ec_input_scratch *sc)
{
    int w, h, n;
    uint8_t *rgb = stbi_load_from_memory(buf, (int)len, &w, &h, &n, 3);
    if (!rgb) return -1;
    ec_input_spec sp = { SIDE, SIDE, EC_RESIZE_BILINEAR, dst, EC_RESIZE_BILINEAR, base, (int64_t)w * h };
    ec_status st = ec_input_run(&sp, NULL, rgb, w, h, sc);
    stbi_image_free(rgb);
    return st == EC_OK ? 0 : -1;
}

static int after(const uint8_t *buf, size_t len, uint8_t *dst, uint8_t *base, ec_input_scratch *sc)
{
    ec_img *im;
    if (ec_img_open_mem(buf, len, INT64_C(1) << 40, &im) != EC_OK) return -1;
    ec_input_spec sp = { SIDE, SIDE, EC_RESIZE_LANCZOS, dst, EC_RESIZE_BICUBIC, base, INT64_C(1) << 40 };
    ec_status st = ec_input_run(&sp, im, NULL, 0, 0, sc);
    ec_img_close(im);
    return st == EC_OK ? 0 : -1;
}

int main(int argc, char **argv)
{
    int json = argc > 1 && !strcmp(argv[1], "--json");
    if (json) argc--, argv++;
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: imgbench [--json] PHOTO [ROUNDS]\n");
        return 1;
    }
    int rounds = argc == 3 ? atoi(argv[2]) : 9;
    if (rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "imgbench: ROUNDS must be 1..%d\n", MAX_ROUNDS);
        return 1;
    }
    uint8_t *buf;
    size_t len;
    if (ec_file_read(argv[1], (size_t)1 << 30, &buf, &len) != EC_OK) {
        fprintf(stderr, "imgbench: %s\n", ec_last_error());
        return 2;
    }
    static uint8_t dst[SIDE * SIDE * 3], base[SIDE * SIDE * 3];
    ec_input_scratch sc = { 0 };
    double tb[MAX_ROUNDS], ta[MAX_ROUNDS];
    int w = 0, h = 0;
    {
        ec_img *im;
        if (ec_img_open_mem(buf, len, INT64_C(1) << 40, &im) == EC_OK) ec_img_size(im, &w, &h), ec_img_close(im);
    }
    for (int r = -1; r < rounds; r++) {   /* round -1 warms both up */
        double t0 = now_ms();
        int eb = before(buf, len, dst, base, &sc);
        double t1 = now_ms();
        int ea = after(buf, len, dst, base, &sc);
        double t2 = now_ms();
        if (eb || ea) {
            fprintf(stderr, "imgbench: %s: %s failed to decode\n", argv[1], eb ? "stb_image" : "effcam's reader");
            free(buf);
            return 2;
        }
        if (r >= 0) tb[r] = t1 - t0, ta[r] = t2 - t1;
    }
    ec_input_scratch_free(&sc);
    free(buf);
    qsort(tb, (size_t)rounds, sizeof *tb, cmp_double);
    qsort(ta, (size_t)rounds, sizeof *ta, cmp_double);
    double mb = tb[rounds / 2], ma = ta[rounds / 2];
    if (json) {
        printf("{\"width\": %d, \"height\": %d, \"rounds\": %d, \"before_stb_bilinear_ms\": %.2f, "
               "\"after_libjpeg_lanczos_bicubic_ms\": %.2f, \"before_min_ms\": %.2f, \"after_min_ms\": %.2f}\n",
               w, h, rounds, mb, ma, tb[0], ta[0]);
    } else {
        printf("%dx%d photo -> 300x300 model input + overlay base, median of %d (min)\n", w, h, rounds);
        printf("  before: stb_image decode + BILINEAR x2      %8.1f ms (%.1f)\n", mb, tb[0]);
        printf("  after:  libjpeg-turbo rows -> LANCZOS+BICUBIC %6.1f ms (%.1f)   %.2fx\n", ma, ta[0], mb / ma);
    }
    return 0;
}
