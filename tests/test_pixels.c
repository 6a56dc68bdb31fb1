/* test_pixels.c - the app's pixels, end to end through the streamed pipeline:
 * ec_img_open_file -> rows -> three resamplers fed the same rows at once.
 *
 * For every model of the fixture set and every case of its app.json (or, in
 * the local copy without app.json, every app/<image>.input_u8 whose image is
 * here):
 *   LANCZOS  == app/<image>.input_u8, the tensor the app fed Keras: byte-exact
 *               (JPEGs decoded by libjpeg-turbo as PIL decodes them);
 *   BILINEAR == the input_u8 of the older expected.json, for the images it
 *               has: byte-exact;
 *   BICUBIC  as the overlay's base: with the case's Grad-CAM map, the engine's
 *               overlay (ec_overlay_rgba) == app/<image>.overlay.png (needs
 *               app.json: shared set only): exact too. (The map is float32
 *               printed in JSON with enough digits to round-trip, so
 *               uint8(255 * cam) truncates as the app did.)
 * The shared set (EC_SHARED) is a superset of the local copy: with it, it is
 * used alone; without it, the three tiny models from tests/fixtures.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image.h>

#include "convert/json.h"
#include "effcam.h"
#include "image/image.h"
#include "image/reader.h"
#include "image/resample.h"
#include "tests/harness.h"
#include "tests/json_file.h"

#define MAXPX ((int64_t)50000000)
#define OVERLAY_TOL 0

/* Decodes path and pushes its rows into n resamplers (dst buffers given, all
 * w x h), every row into all of them as it comes. 0 or -1 with why. */
static int decode_into(const char *path, int n, const ec_resize_filter *f, uint8_t *const *dst, int w, int h,
                       char *why, size_t cap)
{
    ec_img *im;
    ec_status st = ec_img_open_file(path, MAXPX, &im);
    if (st != EC_OK) {
        snprintf(why, cap, "open: %s", ec_last_error());
        return -1;
    }
    int iw, ih, got;
    ec_img_size(im, &iw, &ih);
    ec_resampler *r[4] = {NULL, NULL, NULL, NULL};
    for (int k = 0; k < n && st == EC_OK; k++) st = ec_resampler_new(f[k], iw, ih, w, h, 3, dst[k], &r[k]);
    uint8_t *rows = malloc((size_t)iw * 3 * 8);
    while (st == EC_OK && (st = ec_img_read_rows(im, rows, 8, &got)) == EC_OK && got)
        for (int i = 0; i < got; i++)
            for (int k = 0; k < n && st == EC_OK; k++) st = ec_resampler_push(r[k], rows + (size_t)i * iw * 3);
    for (int k = 0; k < n && st == EC_OK; k++)
        if (ec_resampler_rows_done(r[k]) != h) {
            snprintf(why, cap, "resampler %d has %d of %d rows", k, ec_resampler_rows_done(r[k]), h);
            st = EC_ERR_INTERNAL;
        }
    if (st != EC_OK && st != EC_ERR_INTERNAL) snprintf(why, cap, "%s", ec_last_error());
    for (int k = 0; k < n; k++) ec_resampler_free(r[k]);
    free(rows);
    ec_img_close(im);
    return st == EC_OK ? 0 : -1;
}

typedef struct {
    int cases, exact, missing;
    int worst;                      /* largest byte difference */
    double worst_mean;
    char worst_case[160];
} tally;

static void tally_add(tally *t, const char *name, const uint8_t *got, const uint8_t *want, size_t n)
{
    int maxd = 0;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)got[i] - (int)want[i]);
        sum += d;
        if (d > maxd) maxd = d;
    }
    t->cases++;
    t->exact += maxd == 0;
    if (maxd > t->worst || (maxd == t->worst && maxd && sum / (double)n > t->worst_mean)) {
        t->worst = maxd;
        t->worst_mean = sum / (double)n;
        snprintf(t->worst_case, sizeof t->worst_case, "%s", name);
    }
}

static void tally_report(const tally *t, const char *what, const char *model, int tol)
{
    char name[300];
    snprintf(name, sizeof name, "pixels: %s %s: %d of %d cases exact (worst %d%s%s)", model, what, t->exact, t->cases,
             t->worst, t->worst ? ", " : "", t->worst_case);
    T_CHECK(name, t->cases > 0 && t->worst <= tol && (tol || t->exact == t->cases),
            "worst case %s: max difference %d, mean %.4f (tolerance %d)", t->worst_case, t->worst, t->worst_mean, tol);
}

/* The cases of one model: image names and their input_u8 paths (relative to
 * the model's directory), from app.json when there is one, else the listing. */
typedef struct {
    int n;
    char img[64][96];
    const js_value *json[64];       /* the app.json case, or NULL */
} case_list;

static int list_cases(const char *mdir, const js_value *app, case_list *cl)
{
    cl->n = 0;
    const js_value *cases = js_get(app, "cases");
    if (cases) {
        for (int c = 0; c < cases->n && cl->n < 64; c++) {
            const char *img = js_get_str(js_at(cases, c), "image");
            if (!img || strlen(img) >= sizeof cl->img[0]) continue;
            snprintf(cl->img[cl->n], sizeof cl->img[0], "%s", img);
            cl->json[cl->n++] = js_at(cases, c);
        }
        return 0;
    }
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/app", mdir);
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *de;
    while ((de = readdir(d)) && cl->n < 64) {
        size_t L = strlen(de->d_name);
        if (L <= 9 || strcmp(de->d_name + L - 9, ".input_u8") || L - 9 >= sizeof cl->img[0]) continue;
        memcpy(cl->img[cl->n], de->d_name, L - 9);
        cl->img[cl->n][L - 9] = 0;
        cl->json[cl->n++] = NULL;
    }
    closedir(d);
    return 0;
}

static float *cam_of(const js_value *cs, long *ch, long *cw)
{
    const js_value *cam = js_get(cs, "gradcam"), *hw = js_get(cs, "gradcam_hw");
    if (!cam || js_int(js_at(hw, 0), 1, 1024, ch) || js_int(js_at(hw, 1), 1, 1024, cw) || cam->n != *ch * *cw) return NULL;
    float *f = malloc(sizeof(float) * (size_t)cam->n);
    for (int i = 0; i < cam->n; i++) {
        double v = 0;
        js_num(js_at(cam, i), &v);
        f[i] = (float)v;                                 /* float32 values printed as double */
    }
    return f;
}

static void run_model(const char *root, const char *model, int H, int W)
{
    char mdir[1024], path[1200];
    snprintf(mdir, sizeof mdir, "%s/expected/%s", root, model);
    snprintf(path, sizeof path, "%s/app.json", mdir);
    js_doc *doc = NULL;
    const js_value *app = t_json_file(path, &doc);
    js_doc *odoc = NULL;
    snprintf(path, sizeof path, "%s/expected.json", mdir);
    const js_value *old_cases = js_get(t_json_file(path, &odoc), "cases");
    case_list *cl = calloc(1, sizeof *cl);
    if (list_cases(mdir, app, cl) || cl->n == 0) {
        t_fail("pixels: fixtures", "no cases for %s (%s)", model, path);
        free(cl);
        js_doc_free(doc);
        js_doc_free(odoc);
        return;
    }
    tally lz = {0}, bl = {0}, ov = {0};
    int no_image = 0;
    size_t n = (size_t)W * H * 3;
    for (int c = 0; c < cl->n; c++) {
        const char *img = cl->img[c];
        char cname[200], why[600];
        snprintf(cname, sizeof cname, "%s", img);
        snprintf(path, sizeof path, "%s/images/%s", root, img);
        FILE *probe = fopen(path, "rb");
        if (!probe) {
            no_image++;
            continue;
        }
        fclose(probe);
        uint8_t *in = malloc(n), *bil = malloc(n), *base = malloc(n);
        uint8_t *dst[3] = {in, bil, base};
        const ec_resize_filter f[3] = {EC_RESIZE_LANCZOS, EC_RESIZE_BILINEAR, EC_RESIZE_BICUBIC};
        if (decode_into(path, 3, f, dst, W, H, why, sizeof why)) {
            t_fail("pixels: decode", "%s %s: %s", model, img, why);
            free(in), free(bil), free(base);
            continue;
        }
        /* LANCZOS: the app's model input */
        size_t wn;
        snprintf(path, sizeof path, "%s/app/%s.input_u8", mdir, img);
        uint8_t *want = (uint8_t *)t_slurp(path, &wn);
        if (!want || wn != n) lz.missing++;
        else tally_add(&lz, cname, in, want, n);
        free(want);
        /* BILINEAR: the older expected.json's input, where it has this image */
        const char *old_u8 = NULL;
        for (int k = 0; old_cases && k < old_cases->n; k++)
            if (js_get_str(js_at(old_cases, k), "image") && !strcmp(js_get_str(js_at(old_cases, k), "image"), img))
                old_u8 = js_get_str(js_at(old_cases, k), "input_u8");
        if (old_u8) {
            snprintf(path, sizeof path, "%s/%s", mdir, old_u8);
            want = (uint8_t *)t_slurp(path, &wn);
            if (want && wn == n) tally_add(&bl, cname, bil, want, n);
            else bl.missing++;
            free(want);
        }
        /* BICUBIC: the overlay's base, checked through the overlay */
        long ch, cw;
        float *cam = cl->json[c] ? cam_of(cl->json[c], &ch, &cw) : NULL;
        const char *ovf = cl->json[c] ? js_get_str(cl->json[c], "overlay") : NULL;
        if (cam && ovf) {
            snprintf(path, sizeof path, "%s/%s", mdir, ovf);
            size_t pn;
            uint8_t *png = (uint8_t *)t_slurp(path, &pn);
            int pw = 0, ph = 0, pc = 0;
            uint8_t *wantp = png ? stbi_load_from_memory(png, (int)pn, &pw, &ph, &pc, 4) : NULL;
            if (wantp && pw == W && ph == H) {
                void *scratch = malloc(ec_overlay_scratch_bytes((int)ch, (int)cw, H, W));
                uint8_t *got = malloc((size_t)W * H * 4);
                ec_overlay_rgba(cam, (int)ch, (int)cw, base, H, W, scratch, got);
                tally_add(&ov, cname, got, wantp, (size_t)W * H * 4);
                free(got), free(scratch);
            } else {
                ov.missing++;
            }
            stbi_image_free(wantp);
            free(png);
        }
        free(cam);
        free(in), free(bil), free(base);
    }
    char what[160];
    snprintf(what, sizeof what, "LANCZOS %dx%d == app input_u8", W, H);
    tally_report(&lz, what, model, 0);
    if (lz.missing) t_fail("pixels: fixtures", "%s: %d app input_u8 files missing or of the wrong size", model, lz.missing);
    if (bl.cases) tally_report(&bl, "BILINEAR == expected.json input_u8", model, 0);
    if (bl.missing) t_fail("pixels: fixtures", "%s: %d expected.json input_u8 files missing", model, bl.missing);
    if (ov.cases || ov.missing) {
        tally_report(&ov, "BICUBIC base -> overlay == app overlay PNG", model, OVERLAY_TOL);
        if (ov.missing) t_fail("pixels: fixtures", "%s: %d overlay PNGs unreadable", model, ov.missing);
    }
    if (no_image) {
        char name[200];
        snprintf(name, sizeof name, "pixels: %s: %d of %d cases", model, no_image, cl->n);
        t_skip(name, "image not in this fixture copy (the shared set has it)");
    }
    free(cl);
    js_doc_free(doc);
    js_doc_free(odoc);
}

int main(void)
{
    const char *shared = t_shared();
    const char *root = shared ? shared : t_local();
    if (!shared) t_skip("pixels: shared fixtures", "EC_SHARED not set: the 3 tiny models of tests/fixtures only");
    char path[1024];
    snprintf(path, sizeof path, "%s/manifest.json", root);
    js_doc *doc = NULL;
    const js_value *models = js_get(t_json_file(path, &doc), "models");
    if (!models) {
        t_fail("pixels: manifest", "cannot read %s", path);
        return 1;
    }
    for (int m = 0; m < models->n; m++) {
        const char *name = js_get_str(js_at(models, m), "name");
        const js_value *hw = js_get(js_at(models, m), "input_hw");
        long H, W;
        if (!name || js_int(js_at(hw, 0), 1, 4096, &H) || js_int(js_at(hw, 1), 1, 4096, &W)) {
            t_fail("pixels: manifest", "model %d without name or input_hw", m);
            continue;
        }
        run_model(root, name, (int)H, (int)W);
    }
    js_doc_free(doc);
    return t_failed;
}
