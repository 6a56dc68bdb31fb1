/* test_image.c - engine/image.c and kernels/resize.c against the app's bytes.
 *
 *   fixtures:  decode + PIL-BILINEAR resize of every fixture image to every
 *              model's input size == the uint8 tensor the app fed Keras
 *              (PNG exact; JPEG within stb-vs-libjpeg IDCT rounding);
 *   overlay:   Keras Grad-CAM + input tensor -> ec_overlay_rgba == the app's PNG;
 *   resize:    channel-count consistency, one-pass and identity paths;
 *   formats:   hand-built PNG variants (16-bit, palette, gray+alpha, tRNS,
 *              1/2-bit), GIF, BMP, PNM maxval scaling, decoded as PIL would;
 *   writers:   PNG / PPM round trips, atomic writes;
 *   hostile:   truncations, empty and mislabelled files, WebP/TIFF, a huge
 *              IHDR, directories, missing files: clean status, fast.
 */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <stb/stb_image.h>
#include <zlib.h>

#include "convert/json.h"
#include "effcam.h"
#include "image/image.h"
#include "image/resample.h"
#include "tests/harness.h"

#define MAXPX ((int64_t)50000000)

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const js_value *load_json(const char *path, js_doc **doc)
{
    size_t n;
    char *text = t_slurp(path, &n);
    const js_value *root = NULL;
    char err[256];
    if (!text) return NULL;
    if (js_parse(text, n, 64, doc, &root, err, sizeof err) < 0) root = NULL;
    free(text);
    return root;
}

/* Decodes path and resizes to w x h (PIL BILINEAR); malloc'd RGB or NULL. */
static uint8_t *decode_resized(const char *path, int w, int h, char *why, size_t whylen)
{
    uint8_t *rgb, *out;
    int iw, ih;
    ec_status st = ec_image_decode_file(path, MAXPX, &rgb, &iw, &ih);
    if (st != EC_OK) {
        snprintf(why, whylen, "%s: %s", ec_status_str(st), ec_last_error());
        return NULL;
    }
    out = malloc((size_t)w * h * 3);
    if (!out || ec_u8_resize(EC_RESIZE_BILINEAR, rgb, iw, ih, 3, out, w, h) != EC_OK) {
        snprintf(why, whylen, "resize %dx%d -> %dx%d failed", iw, ih, w, h);
        free(out);
        out = NULL;
    }
    free(rgb);
    return out;
}

static int is_jpeg(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && (strcmp(name + n - 4, ".jpg") == 0 || strcmp(name + n - 5, ".jpeg") == 0);
}

/* ---- fixtures: decode + resize == the app's input tensor ------------------------- */

/* JPEG: stb_image's IDCT and chroma upsampling round differently from
 * libjpeg's (PIL), by a unit or two on a few pixels. PNG/BMP/PNM: exact. */
#define JPEG_MAX_DIFF 3
#define JPEG_MEAN_DIFF 0.5

static void test_fixture_inputs(const char *root, const char *skip_models_of, int *count)
{
    char path[1024];
    js_doc *mdoc = NULL;
    snprintf(path, sizeof path, "%s/manifest.json", root);
    const js_value *man = load_json(path, &mdoc);
    const js_value *models = js_get(man, "models");
    if (!models) {
        t_fail("fixtures/manifest", "cannot parse %s", path);
        js_doc_free(mdoc);
        return;
    }
    /* Models already checked from the local fixtures are not repeated. */
    js_doc *sdoc = NULL;
    const js_value *skip = NULL;
    if (skip_models_of) {
        snprintf(path, sizeof path, "%s/manifest.json", skip_models_of);
        skip = js_get(load_json(path, &sdoc), "models");
    }
    for (int m = 0; m < models->n; m++) {
        const char *name = js_get_str(js_at(models, m), "name");
        long H = 0, W = 0;
        const js_value *hw = js_get(js_at(models, m), "input_hw");
        if (!name || js_int(js_at(hw, 0), 1, 4096, &H) || js_int(js_at(hw, 1), 1, 4096, &W)) {
            t_fail("fixtures/manifest", "model %d: no name or input_hw", m);
            continue;
        }
        int seen = 0;
        for (int s = 0; skip && s < skip->n; s++)
            if (js_get_str(js_at(skip, s), "name") && !strcmp(js_get_str(js_at(skip, s), "name"), name)) seen = 1;
        if (seen) continue;
        js_doc *edoc = NULL;
        snprintf(path, sizeof path, "%s/expected/%s/expected.json", root, name);
        const js_value *cases = js_get(load_json(path, &edoc), "cases");
        if (!cases) {
            t_fail("fixtures/expected", "cannot parse %s", path);
            js_doc_free(edoc);
            continue;
        }
        for (int c = 0; c < cases->n; c++) {
            const char *img = js_get_str(js_at(cases, c), "image");
            const char *u8 = js_get_str(js_at(cases, c), "input_u8");
            char test[256], why[600] = "";
            if (!img || !u8) continue;
            snprintf(test, sizeof test, "image/input %s %s (%ldx%ld)", name, img, W, H);
            size_t en;
            snprintf(path, sizeof path, "%s/expected/%s/%s", root, name, u8);
            uint8_t *want = (uint8_t *)t_slurp(path, &en);
            snprintf(path, sizeof path, "%s/images/%s", root, img);
            uint8_t *got = decode_resized(path, (int)W, (int)H, why, sizeof why);
            (*count)++;
            if (!want || en != (size_t)W * H * 3) {
                t_fail(test, "expected tensor %s missing or not %ldx%ldx3", u8, H, W);
            } else if (!got) {
                t_fail(test, "%s", why);
            } else {
                size_t n = (size_t)W * H * 3, ndiff = 0, worst = 0;
                int maxd = 0;
                double sum = 0;
                for (size_t i = 0; i < n; i++) {
                    int d = abs((int)got[i] - (int)want[i]);
                    sum += d;
                    ndiff += d != 0;
                    if (d > maxd) maxd = d, worst = i;
                }
                double mean = sum / (double)n;
                if (is_jpeg(img)) {
                    char t2[400];
                    snprintf(t2, sizeof t2, "%s JPEG max %d mean %.4f (%zu of %zu differ)", test, maxd, mean, ndiff, n);
                    T_CHECK(t2, maxd <= JPEG_MAX_DIFF && mean <= JPEG_MEAN_DIFF,
                            "over tolerance (max %d, mean %.2f); worst at y=%zu x=%zu c=%zu: %d vs %d",
                            JPEG_MAX_DIFF, JPEG_MEAN_DIFF, worst / 3 / W, worst / 3 % W, worst % 3, got[worst], want[worst]);
                } else {
                    T_CHECK(test, maxd == 0, "not bit-exact: %zu bytes differ, max %d at y=%zu x=%zu c=%zu (%d vs %d)",
                            ndiff, maxd, worst / 3 / W, worst / 3 % W, worst % 3, got[worst], want[worst]);
                }
            }
            free(want);
            free(got);
        }
        js_doc_free(edoc);
    }
    js_doc_free(sdoc);
    js_doc_free(mdoc);
}

/* ---- overlay: Keras Grad-CAM -> the app's overlay PNG -------------------------- */

#define OVERLAY_MAX_DIFF 2

static void test_overlays(const char *root)
{
    const char *models[] = {"dermatology_v2s_300", "efficientnetv2-b0_224"};
    for (int m = 0; m < 2; m++) {
        char path[1024];
        js_doc *doc = NULL;
        snprintf(path, sizeof path, "%s/expected/%s/expected.json", root, models[m]);
        const js_value *exp = load_json(path, &doc);
        const js_value *cases = js_get(exp, "cases");
        long H = 0, W = 0;
        if (!cases || js_int(js_at(js_get(exp, "input_hw"), 0), 1, 4096, &H) ||
            js_int(js_at(js_get(exp, "input_hw"), 1), 1, 4096, &W)) {
            t_fail("overlay/fixtures", "cannot parse %s", path);
            js_doc_free(doc);
            continue;
        }
        for (int c = 0; c < cases->n; c++) {
            const js_value *cs = js_at(cases, c);
            const char *img = js_get_str(cs, "image"), *ov = js_get_str(cs, "overlay");
            const char *u8 = js_get_str(cs, "input_u8");
            const js_value *cam = js_get(cs, "gradcam"), *chw = js_get(cs, "gradcam_hw");
            long ch = 0, cw = 0;
            char test[256];
            snprintf(test, sizeof test, "image/overlay %s %s", models[m], img ? img : "?");
            if (!img || !ov || !u8 || !cam || js_int(js_at(chw, 0), 1, 1024, &ch) ||
                js_int(js_at(chw, 1), 1, 1024, &cw) || cam->n != ch * cw) {
                t_fail(test, "case %d incomplete", c);
                continue;
            }
            float *camf = malloc(sizeof(float) * (size_t)(ch * cw));
            for (int i = 0; i < ch * cw; i++) {
                double v = 0;
                js_num(js_at(cam, i), &v);
                camf[i] = (float)v;                      /* the values are float32 printed as double */
            }
            size_t n;
            snprintf(path, sizeof path, "%s/expected/%s/%s", root, models[m], u8);
            uint8_t *in = (uint8_t *)t_slurp(path, &n);
            snprintf(path, sizeof path, "%s/expected/%s/%s", root, models[m], ov);
            size_t pn;
            uint8_t *png = (uint8_t *)t_slurp(path, &pn);
            int pw = 0, ph = 0, pc = 0;
            uint8_t *want = png ? stbi_load_from_memory(png, (int)pn, &pw, &ph, &pc, 4) : NULL;
            if (!in || n != (size_t)(W * H * 3) || !want || pw != W || ph != H) {
                t_fail(test, "fixture files missing or of the wrong size");
            } else {
                void *scratch = malloc(ec_overlay_scratch_bytes((int)ch, (int)cw, (int)H, (int)W));
                uint8_t *got = malloc((size_t)(W * H * 4));
                ec_overlay_rgba(camf, (int)ch, (int)cw, in, (int)H, (int)W, scratch, got);
                int maxd = 0;
                size_t npx = 0, worst = 0;
                for (size_t p = 0; p < (size_t)(W * H); p++) {
                    int pd = 0;
                    for (int k = 0; k < 4; k++) {
                        int d = abs((int)got[4 * p + k] - (int)want[4 * p + k]);
                        if (d > pd) pd = d;
                        if (d > maxd) maxd = d, worst = 4 * p + k;
                    }
                    npx += pd != 0;
                }
                char t2[400];
                snprintf(t2, sizeof t2, "%s (%ldx%ld cam): max %d, %zu of %ld pixels differ", test, ch, cw, maxd, npx, W * H);
                T_CHECK(t2, maxd <= OVERLAY_MAX_DIFF, "over %d; worst at y=%zu x=%zu c=%zu: %d vs %d", OVERLAY_MAX_DIFF,
                        worst / 4 / W, worst / 4 % W, worst % 4, got[worst], want[worst]);
                free(got);
                free(scratch);
            }
            stbi_image_free(want);
            free(png);
            free(in);
            free(camf);
        }
        js_doc_free(doc);
    }
}

/* ---- resize properties ----------------------------------------------------------- */

static uint32_t rng = 12345;
static uint8_t rnd8(void)
{
    rng = rng * 1103515245u + 12345u;
    return (uint8_t)(rng >> 16);
}

/* BILINEAR with a resampler built in exactly ec_resampler_bytes of memory (so
 * ASan sees any overrun); returns malloc'd output. */
static uint8_t *resize_alloc(const uint8_t *src, int sw, int sh, int c, int dw, int dh)
{
    size_t sb = ec_resampler_bytes(EC_RESIZE_BILINEAR, sw, sh, dw, dh, c);
    void *mem = sb ? malloc(sb) : NULL;
    uint8_t *out = malloc((size_t)dw * dh * c);
    ec_resampler *r;
    ec_status st = mem && out ? ec_resampler_init(mem, sb, EC_RESIZE_BILINEAR, sw, sh, dw, dh, c, out, &r) : EC_ERR_NOMEM;
    for (int y = 0; st == EC_OK && y < sh; y++) st = ec_resampler_push(r, src + (size_t)y * sw * c);
    if (st != EC_OK) {
        free(out);
        out = NULL;
    }
    free(mem);
    return out;
}

static void test_resize_properties(void)
{
    /* Channels are independent in Pillow: a C-channel resize must equal C
     * one-channel resizes, for down, up, one-axis and mixed cases. */
    const int sizes[][4] = {{37, 23, 13, 7}, {13, 7, 37, 23}, {50, 40, 50, 17}, {50, 40, 11, 40},
                            {5, 5, 64, 64},  {640, 360, 64, 64}, {1, 1, 3, 2}, {9, 300, 4, 1}};
    int bad = 0;
    char what[128] = "";
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        int sw = sizes[s][0], sh = sizes[s][1], dw = sizes[s][2], dh = sizes[s][3];
        for (int c = 1; c <= 4; c++) {
            uint8_t *src = malloc((size_t)sw * sh * c), *plane = malloc((size_t)sw * sh);
            for (size_t i = 0; i < (size_t)sw * sh * c; i++) src[i] = rnd8();
            uint8_t *all = resize_alloc(src, sw, sh, c, dw, dh);
            for (int k = 0; k < c && all; k++) {
                for (size_t i = 0; i < (size_t)sw * sh; i++) plane[i] = src[i * c + k];
                uint8_t *one = resize_alloc(plane, sw, sh, 1, dw, dh);
                for (size_t i = 0; one && i < (size_t)dw * dh; i++)
                    if (one[i] != all[i * c + k]) {
                        bad++;
                        snprintf(what, sizeof what, "%dx%d->%dx%d c=%d channel %d", sw, sh, dw, dh, c, k);
                        break;
                    }
                free(one);
            }
            if (!all) bad++, snprintf(what, sizeof what, "%dx%d->%dx%d c=%d failed", sw, sh, dw, dh, c);
            free(all);
            free(plane);
            free(src);
        }
    }
    T_CHECK("resize/channels 1..4 equal per-channel resizes", bad == 0, "%d mismatches, e.g. %s", bad, what);

    /* Identity: untouched bytes. */
    uint8_t src[6 * 4 * 3], dst[6 * 4 * 3];
    for (size_t i = 0; i < sizeof src; i++) src[i] = rnd8();
    T_CHECK("resize/identity copies", ec_u8_resize(EC_RESIZE_BILINEAR, src, 6, 4, 3, dst, 6, 4) == EC_OK &&
            !memcmp(src, dst, sizeof src), "differs");

    /* Upscaling a constant image keeps it constant (weights sum to 2^22 after rounding). */
    uint8_t flat[3 * 2], *up;
    memset(flat, 200, sizeof flat);
    up = resize_alloc(flat, 3, 2, 1, 301, 157);
    int ok = up != NULL;
    for (int i = 0; up && i < 301 * 157; i++) ok &= up[i] == 200;
    T_CHECK("resize/constant stays constant", ok, "value changed");
    free(up);

    /* A case worked by hand from the PIL formulas: 4 -> 2, scale 2, support 2. */
    uint8_t row[4] = {0, 100, 200, 40}, two[2];
    ec_u8_resize(EC_RESIZE_BILINEAR, row, 4, 1, 1, two, 2, 1);
    /* out0: centre 1, taps 0..2 (xmin = (int)-0.5 = 0, xmax = 3):
     * x=0: tri(-0.25)=0.75, x=1: tri(0.25)=0.75, x=2: tri(0.75)=0.25 -> sum 1.75
     * -> (0*0.75 + 100*0.75 + 200*0.25)/1.75 = 71.43 -> 71.
     * out1: centre 3, taps 1..3: x=1 0.25, x=2 0.75, x=3 0.75 -> (25 + 150 + 30)/1.75 = 117.14 -> 117. */
    T_CHECK("resize/hand-computed 4->2", two[0] == 71 && two[1] == 117, "got %d %d, want 71 117", two[0], two[1]);

    T_CHECK("resize/rejects bad sizes", ec_u8_resize(EC_RESIZE_BILINEAR, src, 0, 4, 3, dst, 6, 4) != EC_OK &&
            ec_u8_resize(EC_RESIZE_BILINEAR, src, 6, 4, 5, dst, 6, 4) != EC_OK &&
            ec_u8_resize(EC_RESIZE_BILINEAR, src, 6, 4, 3, dst, -1, 4) != EC_OK, "accepted");
}

/* ---- hand-built PNGs, GIF, BMP, PNM ------------------------------------------------ */

typedef struct { uint8_t *p; size_t n, cap; } tbuf;

static void tb_put(tbuf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void tb_be32(tbuf *b, uint32_t v)
{
    uint8_t q[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    tb_put(b, q, 4);
}
static void tb_be16(tbuf *b, uint32_t v)
{
    uint8_t q[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    tb_put(b, q, 2);
}
static void tb_le(tbuf *b, uint32_t v, int n)
{
    for (int i = 0; i < n; i++) {
        uint8_t q = (uint8_t)(v >> (8 * i));
        tb_put(b, &q, 1);
    }
}
static void tb_chunk(tbuf *b, const char *type, const uint8_t *d, size_t n)
{
    tb_be32(b, (uint32_t)n);
    tb_put(b, type, 4);
    if (n) tb_put(b, d, n);
    uLong crc = crc32(crc32(0, (const Bytef *)type, 4), d, (uInt)n);
    tb_be32(b, (uint32_t)crc);
}

/* A PNG from raw scanlines (each already prefixed by its filter byte 0). */
static tbuf make_png(int w, int h, int depth, int ctype, const uint8_t *raw, size_t rawn, const uint8_t *plte,
                     size_t npl, const uint8_t *trns, size_t ntr)
{
    tbuf b = {0};
    tb_put(&b, "\x89PNG\r\n\x1A\n", 8);
    uint8_t ihdr[13] = {0};
    for (int i = 0; i < 4; i++) ihdr[i] = (uint8_t)(w >> (24 - 8 * i)), ihdr[4 + i] = (uint8_t)(h >> (24 - 8 * i));
    ihdr[8] = (uint8_t)depth;
    ihdr[9] = (uint8_t)ctype;
    tb_chunk(&b, "IHDR", ihdr, 13);
    if (plte) tb_chunk(&b, "PLTE", plte, npl);
    if (trns) tb_chunk(&b, "tRNS", trns, ntr);
    uLongf zn = compressBound((uLong)rawn);
    uint8_t *z = malloc(zn);
    compress2(z, &zn, raw, (uLong)rawn, 9);
    tb_chunk(&b, "IDAT", z, zn);
    free(z);
    tb_chunk(&b, "IEND", NULL, 0);
    return b;
}

static int decode_eq(const char *test, const tbuf *b, int w, int h, const uint8_t *want)
{
    uint8_t *rgb = NULL;
    int gw = 0, gh = 0;
    ec_status st = ec_image_decode_mem(b->p, b->n, MAXPX, &rgb, &gw, &gh);
    int ok = st == EC_OK && gw == w && gh == h && !memcmp(rgb, want, (size_t)w * h * 3);
    if (st != EC_OK) t_fail(test, "%s: %s", ec_status_str(st), ec_last_error());
    else if (!ok) {
        size_t i = 0;
        while (gw == w && gh == h && i + 1 < (size_t)w * h * 3 && rgb[i] == want[i]) i++;
        t_fail(test, "got %dx%d, first difference at byte %zu: %d vs %d", gw, gh, i, rgb[i], want[i]);
    } else t_pass(test);
    free(rgb);
    return ok;
}

static void test_png_variants(void)
{
    /* 16-bit gray: PIL "I;16" -> RGB clips at 255 (not the high byte). */
    const uint16_t g16[6] = {0, 1, 255, 256, 1000, 65535};
    uint8_t raw[64], want[64];
    size_t k = 0;
    raw[k++] = 0;
    for (int i = 0; i < 6; i++) raw[k++] = (uint8_t)(g16[i] >> 8), raw[k++] = (uint8_t)g16[i];
    const uint8_t g16w[6] = {0, 1, 255, 255, 255, 255};
    for (int i = 0; i < 6; i++) want[3 * i] = want[3 * i + 1] = want[3 * i + 2] = g16w[i];
    tbuf b = make_png(6, 1, 16, 0, raw, k, NULL, 0, NULL, 0);
    decode_eq("image/png 16-bit gray clips like PIL I;16 -> RGB", &b, 6, 1, want);
    free(b.p);

    /* 16-bit RGB and 16-bit gray+alpha: high byte (PIL RGB;16B, LA;16B). */
    const uint16_t rgb16[2][3] = {{0x1234, 0xFFFF, 0x00FF}, {0x8000, 0x7FFF, 0x0100}};
    k = 0;
    raw[k++] = 0;
    for (int p = 0; p < 2; p++)
        for (int c = 0; c < 3; c++) raw[k++] = (uint8_t)(rgb16[p][c] >> 8), raw[k++] = (uint8_t)rgb16[p][c];
    for (int p = 0; p < 2; p++)
        for (int c = 0; c < 3; c++) want[3 * p + c] = (uint8_t)(rgb16[p][c] >> 8);
    b = make_png(2, 1, 16, 2, raw, k, NULL, 0, NULL, 0);
    decode_eq("image/png 16-bit RGB keeps the high byte", &b, 2, 1, want);
    free(b.p);
    const uint8_t la16[] = {0, 0xAB, 0xCD, 0x00, 0x10, 0x01, 0x02, 0xFF, 0xFF};
    want[0] = want[1] = want[2] = 0xAB;
    want[3] = want[4] = want[5] = 0x01;
    b = make_png(2, 1, 16, 4, la16, sizeof la16, NULL, 0, NULL, 0);
    decode_eq("image/png 16-bit gray+alpha keeps the high byte, drops alpha", &b, 2, 1, want);
    free(b.p);

    /* 8-bit palette (with tRNS: alpha dropped, colours kept) and 4-bit palette. */
    const uint8_t plte[9] = {10, 20, 30, 200, 100, 50, 255, 255, 0}, trns[3] = {0, 128, 255};
    const uint8_t pidx[8] = {2, 1, 0, 1, 1, 2, 2, 0};
    const uint8_t praw[] = {0, 2, 1, 0, 1, 0, 1, 2, 2, 0};      /* 2 rows of 4, each after filter byte 0 */
    for (int i = 0; i < 8; i++) memcpy(want + 3 * i, plte + 3 * pidx[i], 3);
    b = make_png(4, 2, 8, 3, praw, sizeof praw, plte, 9, trns, 3);
    decode_eq("image/png 8-bit palette with tRNS -> palette colours", &b, 4, 2, want);
    free(b.p);
    const uint8_t p4raw[] = {0, 0x21, 0x01, 0, 0x12, 0x20};    /* 4-bit: 2,1,0,1 / 1,2,2,0 */
    b = make_png(4, 2, 4, 3, p4raw, sizeof p4raw, plte, 9, NULL, 0);
    decode_eq("image/png 4-bit palette", &b, 4, 2, want);
    free(b.p);

    /* 8-bit gray+alpha: gray replicated, alpha dropped (no compositing). */
    const uint8_t ga[] = {0, 17, 0, 250, 255, 99, 128};
    const uint8_t gaw[9] = {17, 17, 17, 250, 250, 250, 99, 99, 99};
    b = make_png(3, 1, 8, 4, ga, sizeof ga, NULL, 0, NULL, 0);
    decode_eq("image/png gray+alpha -> gray replicated", &b, 3, 1, gaw);
    free(b.p);

    /* 8-bit gray with a tRNS key: stb would report 1 channel yet return 2
     * with req_comp = 0; the decoder must still produce plain gray. */
    const uint8_t gt[] = {0, 5, 77, 200}, gtr[2] = {0, 77};
    const uint8_t gtw[9] = {5, 5, 5, 77, 77, 77, 200, 200, 200};
    b = make_png(3, 1, 8, 0, gt, sizeof gt, NULL, 0, gtr, 2);
    decode_eq("image/png gray with tRNS -> gray", &b, 3, 1, gtw);
    free(b.p);

    /* 2-bit and 1-bit gray scale to 0..255 (PIL L;2 x85, mode "1" -> 0/255). */
    const uint8_t g2[] = {0, 0x1B};                          /* 0,1,2,3 */
    const uint8_t g2w[12] = {0, 0, 0, 85, 85, 85, 170, 170, 170, 255, 255, 255};
    b = make_png(4, 1, 2, 0, g2, sizeof g2, NULL, 0, NULL, 0);
    decode_eq("image/png 2-bit gray", &b, 4, 1, g2w);
    free(b.p);
    const uint8_t g1[] = {0, 0xA0};                          /* 1,0,1 */
    const uint8_t g1w[9] = {255, 255, 255, 0, 0, 0, 255, 255, 255};
    b = make_png(3, 1, 1, 0, g1, sizeof g1, NULL, 0, NULL, 0);
    decode_eq("image/png 1-bit gray", &b, 3, 1, g1w);
    free(b.p);

    /* RGBA: alpha dropped. */
    const uint8_t rgba[] = {0, 1, 2, 3, 0, 250, 251, 252, 128};
    const uint8_t rgbaw[6] = {1, 2, 3, 250, 251, 252};
    b = make_png(2, 1, 8, 6, rgba, sizeof rgba, NULL, 0, NULL, 0);
    decode_eq("image/png RGBA drops alpha", &b, 2, 1, rgbaw);
    free(b.p);
}

/* A GIF with a 4-colour palette whose LZW stream emits a clear code before
 * every pixel, so every code stays 3 bits wide (no dictionary growth). */
static tbuf make_gif(int w, int h, const uint8_t *pal4, const uint8_t *idx)
{
    tbuf b = {0};
    tb_put(&b, "GIF89a", 6);
    tb_le(&b, (uint32_t)w, 2);
    tb_le(&b, (uint32_t)h, 2);
    tb_put(&b, "\x81\x00\x00", 3);                            /* GCT of 4 entries */
    tb_put(&b, pal4, 12);
    tb_put(&b, "\x2C", 1);
    tb_le(&b, 0, 4);
    tb_le(&b, (uint32_t)w, 2);
    tb_le(&b, (uint32_t)h, 2);
    tb_put(&b, "\x00\x02", 2);                                /* no LCT; min code size 2 */
    uint8_t data[512] = {0};
    size_t bit = 0;
    for (int i = 0; i <= w * h; i++) {
        int codes[2] = {4, i < w * h ? idx[i] : 5};          /* clear + pixel, finally clear + EOI */
        for (int c = 0; c < 2; c++)
            for (int j = 0; j < 3; j++, bit++)
                if (codes[c] >> j & 1) data[bit / 8] |= (uint8_t)(1 << (bit % 8));
    }
    size_t nb = (bit + 7) / 8;
    uint8_t len = (uint8_t)nb;
    tb_put(&b, &len, 1);
    tb_put(&b, data, nb);
    tb_put(&b, "\x00\x3B", 2);
    return b;
}

/* A 24-bit BMP, bottom-up (as most are) or top-down (a negative height). */
static tbuf make_bmp_rows(int w, int h, const uint8_t *rgb, int top_down)
{
    tbuf b = {0};
    int stride = (w * 3 + 3) / 4 * 4;
    tb_put(&b, "BM", 2);
    tb_le(&b, (uint32_t)(54 + stride * h), 4);
    tb_le(&b, 0, 4);
    tb_le(&b, 54, 4);
    tb_le(&b, 40, 4);
    tb_le(&b, (uint32_t)w, 4);
    tb_le(&b, top_down ? (uint32_t)-h : (uint32_t)h, 4);
    tb_le(&b, 1, 2);
    tb_le(&b, 24, 2);
    for (int i = 0; i < 6; i++) tb_le(&b, 0, 4);
    for (int r = 0; r < h; r++) {
        int y = top_down ? r : h - 1 - r;
        for (int x = 0; x < w; x++) {
            const uint8_t *p = rgb + 3 * (y * w + x);
            uint8_t bgr[3] = {p[2], p[1], p[0]};
            tb_put(&b, bgr, 3);
        }
        tb_le(&b, 0, stride - w * 3);
    }
    return b;
}

static tbuf make_bmp(int w, int h, const uint8_t *rgb) { return make_bmp_rows(w, h, rgb, 0); }

static void test_other_formats(void)
{
    const uint8_t pal[12] = {0, 0, 0, 255, 0, 0, 0, 255, 0, 10, 20, 30};
    const uint8_t idx[6] = {3, 2, 1, 0, 1, 3};
    uint8_t want[18];
    for (int i = 0; i < 6; i++) memcpy(want + 3 * i, pal + 3 * idx[i], 3);
    tbuf g = make_gif(3, 2, pal, idx);
    decode_eq("image/gif first frame, palette applied", &g, 3, 2, want);

    uint8_t px[5 * 3 * 3];
    for (size_t i = 0; i < sizeof px; i++) px[i] = rnd8();
    tbuf bm = make_bmp(5, 3, px);
    decode_eq("image/bmp 24-bit", &bm, 5, 3, px);
    tbuf td = make_bmp_rows(5, 3, px, 1);
    decode_eq("image/bmp 24-bit top-down (negative height), as PIL reads it", &td, 5, 3, px);
    {
        /* RLE8: PIL reads it, stb_image does not: unsupported, not "corrupt" */
        tbuf r = make_bmp(5, 3, px);
        r.p[30] = 1;   /* biCompression = BI_RLE8 */
        uint8_t *o = NULL;
        int ow, oh;
        ec_status st = ec_image_decode_mem(r.p, r.n, 1 << 20, &o, &ow, &oh);
        T_CHECK("image/bmp RLE8: refused as unsupported compression", st == EC_ERR_UNSUPPORTED &&
                strstr(ec_last_error(), "unsupported BMP compression"), "status %d: %s", st, ec_last_error());
        free(o);
        free(r.p);
    }

    /* PNM maxval: PIL rescales round(v / maxval * out_max), half to even. */
    struct { const char *hdr; int nv; uint16_t v[8]; uint8_t want[8]; const char *name; } pnm[] = {
        {"P5\n# comment\n4 1\n255\n", 4, {0, 7, 128, 255}, {0, 7, 128, 255}, "image/pnm P5 maxval 255 raw"},
        {"P5 6 1 100\n", 6, {0, 1, 10, 30, 50, 200}, {0, 3, 26, 76, 128, 255}, "image/pnm P5 maxval 100 rescaled, half-even"},
        {"P5\n4 1\n65535\n", 4, {0, 255, 256, 65535}, {0, 255, 255, 255}, "image/pnm P5 maxval 65535: mode I, clipped"},
        {"P5\n3 1\n1000\n", 3, {3, 4, 1000}, {197, 255, 255}, "image/pnm P5 maxval 1000: scaled to 65535 then clipped"},
        {"P6\n2 1\n65535\n", 6, {383, 65535, 32767, 32768, 200, 0}, {1, 255, 127, 128, 1, 0}, "image/pnm P6 maxval 65535 rescaled"},
    };
    for (size_t t = 0; t < sizeof pnm / sizeof *pnm; t++) {
        tbuf b = {0};
        tb_put(&b, pnm[t].hdr, strlen(pnm[t].hdr));
        int wide = strstr(pnm[t].hdr, "65535") || strstr(pnm[t].hdr, "1000");
        for (int i = 0; i < pnm[t].nv; i++) {
            if (wide) tb_be16(&b, pnm[t].v[i]);
            else tb_le(&b, pnm[t].v[i], 1);
        }
        int rgb = pnm[t].hdr[1] == '6';
        int npx = rgb ? pnm[t].nv / 3 : pnm[t].nv;
        uint8_t w3[24];
        for (int i = 0; i < npx; i++)
            for (int c = 0; c < 3; c++) w3[3 * i + c] = rgb ? pnm[t].want[3 * i + c] : pnm[t].want[i];
        decode_eq(pnm[t].name, &b, npx, 1, w3);
        free(b.p);
    }

    /* Truncated GIF / BMP, cut at several points. */
    int bad = 0;
    char what[200] = "";
    tbuf *files[2] = {&g, &bm};
    const char *names[2] = {"GIF", "BMP"};
    for (int f = 0; f < 2; f++)
        for (size_t cut = 1; cut < files[f]->n - 1; cut += 3) {
            uint8_t *rgb = NULL;
            int w, h;
            ec_status st = ec_image_decode_mem(files[f]->p, cut, MAXPX, &rgb, &w, &h);
            if (st == EC_OK || !*ec_last_error()) bad++, snprintf(what, sizeof what, "%s cut at %zu", names[f], cut);
            free(rgb);
        }
    T_CHECK("image/truncated GIF and BMP are errors at every cut", bad == 0, "%d cuts decoded, e.g. %s", bad, what);
    free(g.p);
    free(bm.p);
    free(td.p);
}

/* ---- writers -------------------------------------------------------------------- */

static int dir_has_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp")) found = 1;
    if (d) closedir(d);
    return found;
}

/* What zlib (not stb) says of an encoded PNG: every chunk's CRC, then the IDAT
 * stream inflated (complete Huffman codes, adler32) to h rows of 1 + w * c
 * bytes. 0 when all holds, else a message in why. */
static int png_zlib_check(const uint8_t *png, size_t n, int w, int h, int c, char *why, size_t cap)
{
    size_t at = 8, zn = 0;
    uint8_t *z = malloc(n);
    int ok = z && n >= 8;
    while (ok && at + 12 <= n) {
        uint32_t len = (uint32_t)png[at] << 24 | (uint32_t)png[at + 1] << 16 | (uint32_t)png[at + 2] << 8 | png[at + 3];
        if (len > n - at - 12) { snprintf(why, cap, "chunk at %zu overruns", at); ok = 0; break; }
        const uint8_t *p = png + at + 8 + len;
        uint32_t want = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (crc32(0L, png + at + 4, len + 4) != want) { snprintf(why, cap, "bad CRC at %zu", at); ok = 0; break; }
        if (!memcmp(png + at + 4, "IDAT", 4)) memcpy(z + zn, png + at + 8, len), zn += len;
        at += 12 + (size_t)len;
    }
    uLongf rawn = (uLongf)h * (1 + (uLongf)w * c) + 1;
    uint8_t *raw = ok ? malloc(rawn) : NULL;
    int zr = raw ? uncompress(raw, &rawn, z, (uLong)zn) : Z_MEM_ERROR;
    if (ok && (zr != Z_OK || rawn != (uLongf)h * (1 + (uLongf)w * c))) {
        snprintf(why, cap, "zlib inflate: %d, %lu bytes", zr, (unsigned long)rawn);
        ok = 0;
    }
    free(raw);
    free(z);
    return ok ? 0 : -1;
}

static void test_writers(void)
{
    const int dims[][2] = {{1, 1}, {7, 5}, {300, 200}, {1, 97}};
    int bad = 0;
    char what[200] = "";
    for (size_t s = 0; s < sizeof dims / sizeof *dims; s++)
        for (int c = 3; c <= 4; c++) {
            int w = dims[s][0], h = dims[s][1];
            uint8_t *px = malloc((size_t)w * h * c);
            for (size_t i = 0; i < (size_t)w * h * c; i++)     /* gradients + noise exercise every filter */
                px[i] = (uint8_t)(i % 3 == 0 ? rnd8() : (i / c) % (size_t)w * 3 + (i / c / w) * 5);
            uint8_t *png = NULL, *back = NULL;
            size_t n = 0;
            int bw = 0, bh = 0, bc = 0;
            ec_status st = ec_png_encode(px, w, h, c, &png, &n);
            if (st == EC_OK) back = stbi_load_from_memory(png, (int)n, &bw, &bh, &bc, c);
            if (!back || bw != w || bh != h || bc != c || memcmp(back, px, (size_t)w * h * c))
                bad++, snprintf(what, sizeof what, "%dx%dx%d: %s", w, h, c, st ? ec_last_error() : "pixels differ");
            else if (png_zlib_check(png, n, w, h, c, what, sizeof what))
                bad++;
            stbi_image_free(back);
            free(png);
            free(px);
        }
    T_CHECK("image/png encode -> stb decode round trip, zlib inflates it (RGB, RGBA)", bad == 0, "%d failures, e.g. %s",
            bad, what);

    /* Code lengths past 15 bits: a row's first-row (Sub) residuals are chosen
     * freely through cumulative sums, here byte k appearing ~fib(k) times
     * (a Huffman code 19 deep), and one byte value only (the other extreme);
     * two rows of 20,000 pixels, a deflate block each. */
    {
        const int w = 20000, h = 2, c = 3;
        const size_t rb = (size_t)w * c;
        uint8_t *px = malloc(rb * h), *res = malloc(rb);
        int fails = 0;
        for (int kind = 0; kind < 2; kind++) {
            size_t at = 0;
            uint32_t f0 = 1, f1 = 2;                   /* f(k) = f(k-1) + f(k-2) + 1: no ties, a chain */
            for (int k = 0; at < rb; k++) {
                for (uint32_t j = 0; j < f0 && at < rb; j++) res[at++] = (uint8_t)(kind ? 7 : k);
                uint32_t f2 = f0 + f1 + 1;
                f0 = f1, f1 = f2;
            }
            for (size_t i = 0; i < rb; i++) px[i] = (uint8_t)(res[i] + (i >= (size_t)c ? px[i - c] : 0));
            memcpy(px + rb, px, rb);                   /* row 2: Paeth of a repeat, mostly zeros */
            uint8_t *png = NULL, *back = NULL;
            size_t n = 0;
            int bw = 0, bh = 0, bc = 0;
            ec_status st = ec_png_encode(px, w, h, c, &png, &n);
            if (st == EC_OK) back = stbi_load_from_memory(png, (int)n, &bw, &bh, &bc, c);
            if (!back || bw != w || bh != h || memcmp(back, px, rb * h))
                fails++, snprintf(what, sizeof what, "kind %d: %s", kind, st ? ec_last_error() : "pixels differ");
            else if (png_zlib_check(png, n, w, h, c, what, sizeof what))
                fails++;
            stbi_image_free(back);
            free(png);
        }
        free(px);
        free(res);
        T_CHECK("image/png encode: skewed (Fibonacci) and single-value residuals round-trip", fails == 0, "%s", what);
    }

    char path[1024];
    const char *tmp = t_tmp();
    uint8_t px[13 * 9 * 3];
    for (size_t i = 0; i < sizeof px; i++) px[i] = rnd8();
    uint8_t *back = NULL;
    int w = 0, h = 0;
    snprintf(path, sizeof path, "%s/rt.png", tmp);
    ec_status st = ec_png_write(path, px, 13, 9, 3);
    if (st == EC_OK) st = ec_image_decode_file(path, MAXPX, &back, &w, &h);
    T_CHECK("image/png write -> decode_file round trip", st == EC_OK && w == 13 && h == 9 && !memcmp(back, px, sizeof px),
            "%s", st ? ec_last_error() : "pixels differ");
    free(back);
    back = NULL;
    snprintf(path, sizeof path, "%s/rt.ppm", tmp);
    st = ec_image_save_ppm(path, px, 13, 9);
    if (st == EC_OK) st = ec_image_decode_file(path, MAXPX, &back, &w, &h);
    T_CHECK("image/ppm write -> decode_file round trip", st == EC_OK && w == 13 && h == 9 && !memcmp(back, px, sizeof px),
            "%s", st ? ec_last_error() : "pixels differ");
    free(back);
    struct stat sb;
    T_CHECK("image/writes are 0644", stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0644, "mode %o", sb.st_mode & 0777);

    /* Failures leave nothing behind: a directory as target, a missing directory. */
    snprintf(path, sizeof path, "%s/adir", tmp);
    mkdir(path, 0755);
    st = ec_png_write(path, px, 13, 9, 3);
    T_CHECK("image/png write onto a directory -> EC_ERR_IO, no temp left", st == EC_ERR_IO && !dir_has_tmp(tmp),
            "status %d (%s)", st, ec_last_error());
    snprintf(path, sizeof path, "%s/no/such/dir/x.ppm", tmp);
    st = ec_image_save_ppm(path, px, 13, 9);
    T_CHECK("image/ppm write into a missing directory -> EC_ERR_IO", st == EC_ERR_IO, "status %d", st);
    T_CHECK("image/png encode rejects 2 channels", ec_png_encode(px, 13, 9, 2, &back, &(size_t){0}) == EC_ERR_ARG,
            "accepted");
}

/* ---- hostile input ---------------------------------------------------------------- */

typedef struct { const char *name; uint8_t *data; size_t n; ec_status want; } bad_case;

static void test_hostile(const char *local)
{
    char path[1024];
    size_t jn = 0, pn = 0;
    snprintf(path, sizeof path, "%s/images/skin_capture.jpg", local);
    uint8_t *jpg = (uint8_t *)t_slurp(path, &jn);
    snprintf(path, sizeof path, "%s/images/located_640x360.png", local);
    uint8_t *png = (uint8_t *)t_slurp(path, &pn);
    if (!jpg || !png) {
        t_fail("image/hostile", "fixture images missing");
        return;
    }
    double worst_ms = 0;
    const char *worst_name = "";
    int n_cases = 0, bad = 0;
    char what[600] = "";

    /* Truncations: header, mid-header, early/middle/late entropy data, just
     * before the end marker. */
    const double fracs[] = {0.0005, 0.002, 0.01, 0.1, 0.5, 0.9, 0.999};
    for (int f = 0; f < 2; f++)
        for (size_t k = 0; k < sizeof fracs / sizeof *fracs; k++) {
            size_t n = f ? pn : jn;
            size_t cut = (size_t)(fracs[k] * (double)n);
            if (cut < 1) cut = 1;
            uint8_t *rgb = NULL;
            int w, h;
            double t0 = now_ms();
            ec_status st = ec_image_decode_mem(f ? png : jpg, cut, MAXPX, &rgb, &w, &h);
            double ms = now_ms() - t0;
            if (ms > worst_ms) worst_ms = ms, worst_name = f ? "truncated PNG" : "truncated JPEG";
            n_cases++;
            if (st != EC_ERR_IMAGE || strchr(ec_last_error(), '\n') || !*ec_last_error())
                bad++, snprintf(what, sizeof what, "%s cut at %zu/%zu: status %d (%s)", f ? "PNG" : "JPEG", cut, n, st,
                                ec_last_error());
            free(rgb);
        }

    /* The 100000 x 100000 IHDR: a real, CRC-valid header followed by a tiny IDAT. */
    uint8_t raw[2] = {0, 0};
    tbuf huge = make_png(1, 1, 8, 0, raw, 2, NULL, 0, NULL, 0);
    uint8_t *ihdr = huge.p + 16;
    for (int i = 0; i < 4; i++) ihdr[i] = ihdr[4 + i] = (uint8_t)(100000 >> (24 - 8 * i));
    uLong crc = crc32(0, huge.p + 12, 17);
    for (int i = 0; i < 4; i++) huge.p[29 + i] = (uint8_t)(crc >> (24 - 8 * i));

    /* A DHT declaring 16 x 255 codes: stb 2.27 would write past its tables. */
    uint8_t *dht = malloc(jn);
    memcpy(dht, jpg, jn);
    for (size_t i = 2; i + 21 < jn; i++)
        if (dht[i] == 0xFF && dht[i + 1] == 0xC4) {
            memset(dht + i + 5, 0xFF, 16);
            break;
        }

    static uint8_t text[] = "<html><body>not a jpeg at all</body></html>\n";
    static uint8_t webp[] = "RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00\x30\x01\x00\x9d\x01\x2a\x01\x00\x01\x00";
    static uint8_t tiff_le[] = "II*\x00\x08\x00\x00\x00\x00\x00";
    static uint8_t tiff_be[] = "MM\x00*\x00\x00\x00\x08\x00\x00";
    static uint8_t heic[] = "\x00\x00\x00\x18" "ftypheic\x00\x00\x00\x00mif1heic";
    static uint8_t pnm_bad[] = "P6\n2 2\n0\n\x01\x02";
    static uint8_t pnm_short[] = "P6\n4 4\n255\nabc";
    static uint8_t pnm_big[] = "P5\n100000 100000\n255\n";
    /* 2^32 x 2^32: the message's pixel count overflowed int64 (UBSan) */
    static uint8_t pnm_2e32[] = "P6\n4294967296 4294967296\n255\n";
    /* Found by the fuzzer: a chunk tag holding a newline leaked into the message. */
    static uint8_t png_ctl[] = "\x89PNG\r\n\x1A\n\0\0\0\x0DIHDR\0\0\0\x03\0\x01\0\x02\x10\0\0\0\0\xE8\x8F\xE5\x85"
                               "\0\x35\0\x31\n0 \x01" "0\0\0\x16IDAT";
    bad_case cases[] = {
        {"PNG chunk tag with a newline", png_ctl, sizeof png_ctl - 1, EC_ERR_IMAGE},
        {"0-byte buffer", (uint8_t *)"", 0, EC_ERR_IMAGE},
        {"HTML text", text, sizeof text - 1, EC_ERR_IMAGE},
        {"WebP header", webp, sizeof webp - 1, EC_ERR_UNSUPPORTED},
        {"TIFF header (II)", tiff_le, sizeof tiff_le - 1, EC_ERR_UNSUPPORTED},
        {"TIFF header (MM)", tiff_be, sizeof tiff_be - 1, EC_ERR_UNSUPPORTED},
        {"HEIC header", heic, sizeof heic - 1, EC_ERR_UNSUPPORTED},
        {"PNG IHDR 100000x100000", huge.p, huge.n, EC_ERR_LIMIT},
        {"PNM maxval 0", pnm_bad, sizeof pnm_bad - 1, EC_ERR_IMAGE},
        {"PNM short data", pnm_short, sizeof pnm_short - 1, EC_ERR_IMAGE},
        {"PNM 100000x100000", pnm_big, sizeof pnm_big - 1, EC_ERR_LIMIT},
        {"PNM 2^32x2^32", pnm_2e32, sizeof pnm_2e32 - 1, EC_ERR_LIMIT},
        {"JPEG DHT with 4080 codes", dht, jn, EC_ERR_IMAGE},
        {"JPEG SOI only", (uint8_t *)"\xFF\xD8\xFF", 3, EC_ERR_IMAGE},
        {"PNG signature only", (uint8_t *)"\x89PNG\r\n\x1A\n", 8, EC_ERR_IMAGE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint8_t *rgb = NULL;
        int w, h;
        double t0 = now_ms();
        ec_status st = ec_image_decode_mem(cases[i].data, cases[i].n, MAXPX, &rgb, &w, &h);
        double ms = now_ms() - t0;
        if (ms > worst_ms) worst_ms = ms, worst_name = cases[i].name;
        n_cases++;
        char t[300];
        snprintf(t, sizeof t, "image/hostile %s -> %s (\"%s\")", cases[i].name, ec_status_str(cases[i].want),
                 ec_last_error());
        T_CHECK(t, st == cases[i].want && rgb == NULL && *ec_last_error() && !strchr(ec_last_error(), '\n'),
                "got %s", ec_status_str(st));
        free(rgb);
    }
    free(huge.p);
    free(dht);

    /* Files: empty file, text named .jpg, a directory, a missing path. */
    uint8_t *rgb = NULL;
    int w, h;
    snprintf(path, sizeof path, "%s/empty.jpg", t_tmp());
    FILE *f = fopen(path, "wb");
    if (f) fclose(f);
    ec_status st = ec_image_decode_file(path, MAXPX, &rgb, &w, &h);
    T_CHECK("image/hostile 0-byte file -> EC_ERR_IMAGE", st == EC_ERR_IMAGE, "got %s: %s", ec_status_str(st), ec_last_error());
    snprintf(path, sizeof path, "%s/notes.jpg", t_tmp());
    f = fopen(path, "wb");
    if (f) fputs("these are my notes, not a photo\n", f), fclose(f);
    st = ec_image_decode_file(path, MAXPX, &rgb, &w, &h);
    T_CHECK("image/hostile text file named .jpg -> EC_ERR_IMAGE", st == EC_ERR_IMAGE, "got %s: %s", ec_status_str(st),
            ec_last_error());
    snprintf(path, sizeof path, "%s/two\nlines.png", t_tmp());
    st = ec_image_decode_file(path, MAXPX, &rgb, &w, &h);
    T_CHECK("image/hostile file name with a newline -> one-line message", st == EC_ERR_IO && !strchr(ec_last_error(), '\n'),
            "got %s: %s", ec_status_str(st), ec_last_error());
    st = ec_image_decode_file(t_tmp(), MAXPX, &rgb, &w, &h);
    T_CHECK("image/hostile directory -> EC_ERR_IO", st == EC_ERR_IO, "got %s: %s", ec_status_str(st), ec_last_error());
    snprintf(path, sizeof path, "%s/does/not/exist.png", t_tmp());
    st = ec_image_decode_file(path, MAXPX, &rgb, &w, &h);
    T_CHECK("image/hostile missing file -> EC_ERR_IO", st == EC_ERR_IO && strstr(ec_last_error(), "exist.png"),
            "got %s: %s", ec_status_str(st), ec_last_error());
    st = ec_image_decode_mem(jpg, jn, 300 * 300 - 1, &rgb, &w, &h);
    T_CHECK("image/hostile max_pixels one below the image -> EC_ERR_LIMIT", st == EC_ERR_LIMIT && !rgb, "got %s",
            ec_status_str(st));

    char t[200];
    snprintf(t, sizeof t, "image/hostile truncated JPEG/PNG at 7 points each -> EC_ERR_IMAGE");
    T_CHECK(t, bad == 0, "%d failures, e.g. %s", bad, what);
    snprintf(t, sizeof t, "image/hostile %d inputs rejected in <= 100 ms each (slowest %.2f ms: %s)", n_cases, worst_ms,
             worst_name);
    T_CHECK(t, worst_ms <= 100.0, "too slow");
    free(jpg);
    free(png);
}

int main(void)
{
    const char *local = t_local(), *shared = t_shared();
    int count = 0;
    test_resize_properties();
    test_png_variants();
    test_other_formats();
    test_writers();
    test_hostile(local);
    test_fixture_inputs(local, NULL, &count);
    if (shared) {
        test_fixture_inputs(shared, local, &count);
        test_overlays(shared);
    } else {
        t_skip("image/overlay", "shared fixtures not available (EC_SHARED)");
        t_skip("image/input (full-size models)", "shared fixtures not available (EC_SHARED)");
    }
    return t_failed;
}
