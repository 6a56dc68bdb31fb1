/* test_hdf5.c - the HDF5 reader against Keras-written files, synthetic files
 * covering the other supported features, and a table of corrupted files. */
#include "convert/hdf5.h"
#include "convert/json.h"
#include "convert/zip.h"
#include "tests/h5_write.h"
#include "tests/harness.h"

#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/* ---- helpers ------------------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long peak_rss_kb(void)
{
    char *s = t_slurp("/proc/self/status", NULL);
    long kb = -1;
    if (s) {
        char *p = strstr(s, "VmHWM:");
        if (p) kb = strtol(p + 6, NULL, 10);
        free(s);
    }
    return kb;
}

/* One variable read from a file. */
typedef struct {
    char *layer;            /* .keras: vars group's name attribute; .h5: layer name */
    char *path;             /* .h5: weight name; .keras: dataset path */
    int idx;                /* .keras: index in vars/ */
    int rank;
    uint64_t dims[CV_H5_MAX_RANK];
    uint32_t crc;
    int used;
} var;

typedef struct {
    var *v;
    int n, cap;
} varlist;

static void vl_free(varlist *l)
{
    for (int i = 0; i < l->n; i++) { free(l->v[i].layer); free(l->v[i].path); }
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Reads dataset ds as f32 and appends its crc32 (of float32 LE bytes). */
static int read_var(cv_h5 *h, cv_h5_obj ds, const char *layer, const char *path, int idx, varlist *l, cv_err *e)
{
    cv_h5_dataset_info info;
    if (cv_h5_dataset_info_get(h, ds, &info, e) != 0) return -1;
    float *buf = malloc(info.nelem ? info.nelem * sizeof(float) : 1);
    if (!buf) return cv_fail(e, "oom");
    if (cv_h5_dataset_read_f32(h, ds, buf, info.nelem, e) != 0) { free(buf); return -1; }
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = realloc(l->v, (size_t)l->cap * sizeof *l->v);
    }
    var *v = &l->v[l->n++];
    memset(v, 0, sizeof *v);
    v->layer = strdup(layer);
    v->path = strdup(path);
    v->idx = idx;
    v->rank = info.rank;
    memcpy(v->dims, info.dims, sizeof v->dims);
    v->crc = (uint32_t)crc32(0, (const Bytef *)buf, (uInt)(info.nelem * sizeof(float)));
    free(buf);
    return 0;
}

/* A string-array attribute that Keras may split into name0, name1, ... */
static int attr_split(cv_h5 *h, cv_h5_obj obj, const char *name, char ***out, int *n, cv_err *e)
{
    int r = cv_h5_attr_strings(h, obj, name, out, n, e);
    if (r != 0) return r;
    char **all = NULL;
    int total = 0;
    for (int k = 0;; k++) {
        char nm[128], **part;
        int np;
        snprintf(nm, sizeof nm, "%s%d", name, k);
        r = cv_h5_attr_strings(h, obj, nm, &part, &np, e);
        if (r < 0) { cv_h5_strings_free(all, total); return -1; }
        if (r == 0) break;
        all = realloc(all, (size_t)(total + np) * sizeof *all);
        memcpy(all + total, part, (size_t)np * sizeof *part);
        total += np;
        free(part);
    }
    *out = all;
    *n = total;
    return total > 0;
}

static int shape_eq(const var *v, const js_value *shape)
{
    if (!shape || shape->type != JS_ARRAY || shape->n != v->rank) return 0;
    for (int i = 0; i < v->rank; i++) {
        long d;
        if (js_int(js_at(shape, i), 0, 1L << 40, &d) != 0 || (uint64_t)d != v->dims[i]) return 0;
    }
    return 1;
}

static int ends_with_path(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a == b ? strcmp(s, suffix) == 0 : a > b && s[a - b - 1] == '/' && strcmp(s + a - b, suffix) == 0;
}

/* Compares what a file held with expected/<model>/<json>. by_layer: match each
 * expected layer's i-th weight with the var of that layer name and index i
 * (.keras); otherwise match by weight path suffix (.h5). */
static void compare(const char *tname, const char *json_path, varlist *l, int by_layer)
{
    size_t len;
    char *text = t_slurp(json_path, &len);
    if (!text) { t_fail(tname, "cannot read %s", json_path); return; }
    js_doc *doc;
    const js_value *root;
    char err[128];
    if (js_parse(text, len, 64, &doc, &root, err, sizeof err) != 0) {
        t_fail(tname, "%s: %s", json_path, err);
        free(text);
        return;
    }
    const js_value *layers = js_get(root, "layers");
    int n_exp = 0, bad = 0;
    for (int i = 0; layers && i < layers->n && !bad; i++) {
        const js_value *L = js_at(layers, i);
        const char *lname = js_get_str(L, "layer");
        const js_value *ws = js_get(L, "weights");
        for (int j = 0; ws && j < ws->n && !bad; j++) {
            const js_value *w = js_at(ws, j);
            const char *path = js_get_str(w, "path");
            double crcd;
            if (!lname || !path || js_num(js_get(w, "crc32"), &crcd) != 0) {
                t_fail(tname, "malformed expected entry %d/%d", i, j);
                bad = 1;
                break;
            }
            n_exp++;
            var *hit = NULL;
            for (int k = 0; k < l->n && !hit; k++) {
                var *v = &l->v[k];
                if (v->used) continue;
                if (by_layer ? (strcmp(v->layer, lname) == 0 && v->idx == j) : ends_with_path(path, v->path))
                    hit = v;
            }
            if (!hit) { t_fail(tname, "%s: no variable read for %s", lname, path); bad = 1; break; }
            hit->used = 1;
            if (hit->crc != (uint32_t)crcd || !shape_eq(hit, js_get(w, "shape"))) {
                t_fail(tname, "%s: crc/shape mismatch (crc %08x, expected %08x)", path, hit->crc, (uint32_t)crcd);
                bad = 1;
            }
        }
    }
    if (!bad && n_exp != l->n) t_fail(tname, "expected %d variables, file has %d", n_exp, l->n);
    else if (!bad && n_exp == 0) t_fail(tname, "no variables");
    else if (!bad) {
        char name[256];
        snprintf(name, sizeof name, "%s (%d variables)", tname, n_exp);
        t_pass(name);
    }
    js_doc_free(doc);
    free(text);
}

/* ---- legacy .h5 ------------------------------------------------------------------ */

static void test_legacy(const char *dir, const char *model)
{
    char path[1024], tname[256], jpath[1024];
    snprintf(path, sizeof path, "%s/models/%s.h5", dir, model);
    snprintf(jpath, sizeof jpath, "%s/expected/%s/weights.h5.json", dir, model);
    snprintf(tname, sizeof tname, "hdf5 legacy %s", model);
    cv_limits lim = cv_limits_default();
    cv_source src;
    cv_err e = { "" };
    cv_h5 *h = NULL;
    varlist vl = { 0 };
    char **cfg = NULL, **layers = NULL;
    int n_cfg = 0, n_layers = 0;
    if (cv_source_open_file(path, &lim, &src, &e) != 0) { t_fail(tname, "%s", e.msg); return; }
    if (cv_h5_open(&src, &lim, &h, &e) != 0) { t_fail(tname, "%s", e.msg); goto out; }
    if (cv_h5_attr_strings(h, cv_h5_root(h), "model_config", &cfg, &n_cfg, &e) != 1 || n_cfg != 1 || cfg[0][0] != '{') {
        t_fail(tname, "model_config: %s", e.msg);
        goto out;
    }
    cv_h5_obj mw;
    if (cv_h5_find(h, cv_h5_root(h), "model_weights", &mw, &e) != 1) { t_fail(tname, "model_weights: %s", e.msg); goto out; }
    if (attr_split(h, mw, "layer_names", &layers, &n_layers, &e) != 1) { t_fail(tname, "layer_names: %s", e.msg); goto out; }
    for (int i = 0; i < n_layers; i++) {
        cv_h5_obj lg;
        char **wn = NULL;
        int n_wn = 0;
        if (cv_h5_find(h, mw, layers[i], &lg, &e) != 1 || attr_split(h, lg, "weight_names", &wn, &n_wn, &e) < 0) {
            t_fail(tname, "layer %s: %s", layers[i], e.msg);
            goto out;
        }
        for (int j = 0; j < n_wn; j++) {
            cv_h5_obj ds;
            if (cv_h5_find(h, lg, wn[j], &ds, &e) != 1 || read_var(h, ds, layers[i], wn[j], j, &vl, &e) != 0) {
                t_fail(tname, "%s/%s: %s", layers[i], wn[j], e.msg);
                cv_h5_strings_free(wn, n_wn);
                goto out;
            }
        }
        cv_h5_strings_free(wn, n_wn);
    }
    compare(tname, jpath, &vl, 0);
out:
    cv_h5_strings_free(cfg, n_cfg);
    cv_h5_strings_free(layers, n_layers);
    vl_free(&vl);
    cv_h5_close(h);
    cv_source_close(&src);
}

/* ---- .keras model.weights.h5 ------------------------------------------------------- */

typedef struct {
    cv_h5 *h;
    varlist *vl;
    cv_err *e;
    int depth;
    char path[1024];
} kwalk;

static int kwalk_cb(void *ctx, const char *name, cv_h5_obj obj);

/* Walks groups depth-first; a group named "vars" contributes datasets 0, 1, ... */
static int kwalk_group(kwalk *w, cv_h5_obj g, const char *name)
{
    if (strcmp(name, "vars") == 0) {
        char **nm = NULL;
        int n_nm = 0;
        int r = cv_h5_attr_strings(w->h, g, "name", &nm, &n_nm, w->e);
        if (r < 0) return -1;
        const char *layer = (r == 1 && n_nm == 1) ? nm[0] : w->path;
        for (int i = 0;; i++) {
            char key[16], full[1100];
            cv_h5_obj ds;
            snprintf(key, sizeof key, "%d", i);
            r = cv_h5_find(w->h, g, key, &ds, w->e);
            if (r == 0) break;
            snprintf(full, sizeof full, "%s/%s", w->path, key);
            if (r < 0 || read_var(w->h, ds, layer, full, i, w->vl, w->e) != 0) { r = -1; break; }
            r = 0;
        }
        cv_h5_strings_free(nm, n_nm);
        return r < 0 ? -1 : 0;
    }
    if (++w->depth > 32) return cv_fail(w->e, "too deep");
    int r = cv_h5_list(w->h, g, kwalk_cb, w, w->e);
    w->depth--;
    return r;
}

static int kwalk_cb(void *ctx, const char *name, cv_h5_obj obj)
{
    kwalk *w = ctx;
    int g = cv_h5_is_group(w->h, obj, w->e);
    if (g < 0) return -1;
    if (!g) return 0;
    if (w->depth == 0 && strcmp(name, "optimizer") == 0) return 0;
    size_t plen = strlen(w->path);
    snprintf(w->path + plen, sizeof w->path - plen, "%s%s", plen ? "/" : "", name);
    int r = kwalk_group(w, obj, name);
    w->path[plen] = 0;
    return r;
}

static void test_keras(const char *dir, const char *model)
{
    char path[1024], tname[256], jpath[1024];
    snprintf(path, sizeof path, "%s/models/%s.keras", dir, model);
    snprintf(jpath, sizeof jpath, "%s/expected/%s/weights.keras.json", dir, model);
    snprintf(tname, sizeof tname, "hdf5 keras %s", model);
    cv_limits lim = cv_limits_default();
    cv_err e = { "" };
    cv_zip *z = NULL;
    cv_source src = { .fd = -1 };
    cv_h5 *h = NULL;
    varlist vl = { 0 };
    if (cv_zip_open(path, &lim, &z, &e) != 0) { t_fail(tname, "zip: %s", e.msg); return; }
    if (cv_zip_source(z, "model.weights.h5", &src, &e) != 0) { t_fail(tname, "zip member: %s", e.msg); goto out; }
    double t0 = now_s();
    if (cv_h5_open(&src, &lim, &h, &e) != 0) { t_fail(tname, "%s", e.msg); goto out; }
    kwalk w = { h, &vl, &e, 0, "" };
    if (cv_h5_list(h, cv_h5_root(h), kwalk_cb, &w, &e) != 0) { t_fail(tname, "walk: %s", e.msg); goto out; }
    double dt = now_s() - t0;
    compare(tname, jpath, &vl, 1);
    if (src.size > (50u << 20)) {
        char name[300];
        snprintf(name, sizeof name, "hdf5 speed %s (%.1f MB in %.3f s, peak RSS %ld MB)", model,
                 src.size / 1e6, dt, peak_rss_kb() / 1024);
#if defined(__SANITIZE_ADDRESS__)
        (void)dt;
        t_skip(name, "sanitizer build: time not checked");
#else
        T_CHECK(name, dt < 1.0, "took %.3f s", dt);
#endif
    }
out:
    vl_free(&vl);
    cv_h5_close(h);
    if (src.fd >= 0) cv_source_close(&src);
    cv_zip_close(z);
}

/* ---- synthetic files (tests/fixtures/hdf5, made with h5py; see README.md there) -- */

static cv_h5 *open_h5(const char *path, cv_source *src, cv_err *e)
{
    cv_limits lim = cv_limits_default();
    cv_h5 *h = NULL;
    if (cv_source_open_file(path, &lim, src, e) != 0) return NULL;
    if (cv_h5_open(src, &lim, &h, e) != 0) { cv_source_close(src); return NULL; }
    return h;
}

/* Reads dataset path into a malloc'd array; NULL with e set on failure. */
static float *read_ds(cv_h5 *h, const char *path, cv_h5_dataset_info *info, cv_err *e)
{
    cv_h5_obj ds;
    int r = cv_h5_find(h, cv_h5_root(h), path, &ds, e);
    if (r != 1) { if (r == 0) cv_fail(e, "%s not found", path); return NULL; }
    if (cv_h5_dataset_info_get(h, ds, info, e) != 0) return NULL;
    float *v = malloc(info->nelem * sizeof(float) + 4);
    if (v && cv_h5_dataset_read_f32(h, ds, v, info->nelem, e) != 0) { free(v); return NULL; }
    return v;
}

static int attr_is(cv_h5 *h, const char *obj_path, const char *name, int n, const char *const *want)
{
    cv_h5_obj o;
    cv_err e;
    char **s;
    int ns;
    if (cv_h5_find(h, cv_h5_root(h), obj_path, &o, &e) != 1) return 0;
    if (cv_h5_attr_strings(h, o, name, &s, &ns, &e) != 1) return 0;
    int ok = ns == n;
    for (int i = 0; ok && i < n; i++) ok = strcmp(s[i], want[i]) == 0;
    cv_h5_strings_free(s, ns);
    return ok;
}

static void test_synthetic(const char *dir, const char *file, int latest)
{
    char path[1024], t[300];
    snprintf(path, sizeof path, "%s/hdf5/%s", dir, file);
    cv_source src;
    cv_err e = { "" };
    cv_h5 *h = open_h5(path, &src, &e);
    snprintf(t, sizeof t, "hdf5 %s open", file);
    T_CHECK(t, h != NULL, "%s", e.msg);
    if (!h) return;

    static const char *fixed[] = { "hello" }, *arr[] = { "alpha", "be", "gamma_long" };
    static const char *vlen[] = { "vlen string value" }, *varr[] = { "one", "two", "", "four" };
    static const char *spaced[] = { "pad  " }, *sub[] = { "sub_layer" };
    snprintf(t, sizeof t, "hdf5 %s string attributes", file);
    T_CHECK(t, attr_is(h, "/", "fixed", 1, fixed) && attr_is(h, "/", "fixed_arr", 3, arr) &&
               attr_is(h, "/", "vlen", 1, vlen) && attr_is(h, "/", "vlen_arr", 4, varr) &&
               attr_is(h, "/", "spaced", 1, spaced) && attr_is(h, "grp/sub", "name", 1, sub), "mismatch");
    char **s;
    int ns;
    snprintf(t, sizeof t, "hdf5 %s absent / non-string attributes", file);
    int r0 = cv_h5_attr_strings(h, cv_h5_root(h), "nope", &s, &ns, &e);
    int r1 = cv_h5_attr_strings(h, cv_h5_root(h), "num", &s, &ns, &e);
    T_CHECK(t, r0 == 0 && r1 == -1 && strstr(e.msg, "not a string"), "%d %d %s", r0, r1, e.msg);

    cv_h5_dataset_info info;
    float *v;
    /* Chunked data: 7x5 values i * 0.5 - 3 in every chunk layout. */
    const char *chunked[] = { "grp/sub/chunked", "grp/sub/chunked_raw", "grp/sub/chunked_f16" };
    for (int k = 0; k < 3; k++) {
        snprintf(t, sizeof t, "hdf5 %s %s", file, chunked[k]);
        v = read_ds(h, chunked[k], &info, &e);
        if (latest) {
            /* libver="latest" indexes chunks with new structures: refused clearly. */
            T_CHECK(t, !v && strstr(e.msg, "not supported"), "expected refusal, got %s", v ? "data" : e.msg);
            free(v);
            continue;
        }
        int ok = v && info.rank == 2 && info.dims[0] == 7 && info.dims[1] == 5;
        for (int i = 0; ok && i < 35; i++) ok = v[i] == i * 0.5f - 3;
        T_CHECK(t, ok, "%s", v ? "values" : e.msg);
        free(v);
    }
    if (!latest) {
        snprintf(t, sizeof t, "hdf5 %s multi-level chunk B-tree", file);
        v = read_ds(h, "grp/sub/chunked_deep", &info, &e);
        int ok = v && info.nelem == 1600;
        for (int i = 0; ok && i < 1600; i++) ok = v[i] == (float)i;
        T_CHECK(t, ok, "%s", v ? "values" : e.msg);
        free(v);
    }
    snprintf(t, sizeof t, "hdf5 %s float16", file);
    v = read_ds(h, "grp/f16", &info, &e);
    int ok = v && info.nelem == 11 && info.elem_size == 2;
    for (int i = 0; ok && i < 11; i++) ok = fabsf(v[i] - (-2.0f + 0.4f * i)) < 2e-3f;
    T_CHECK(t, ok, "%s", v ? "values" : e.msg);
    free(v);
    snprintf(t, sizeof t, "hdf5 %s float64", file);
    v = read_ds(h, "grp/f64", &info, &e);
    T_CHECK(t, v && info.elem_size == 8 && info.nelem == 6 && v[0] == 1e-3f && v[1] == -2.5f && isinf(v[2]) &&
               v[3] == 0 && v[4] == 3 && v[5] == 0 && signbit(v[5]), "%s", v ? "values" : e.msg);
    free(v);
    snprintf(t, sizeof t, "hdf5 %s scalar, empty, compact", file);
    float *a = read_ds(h, "grp/scalar", &info, &e);
    ok = a && info.rank == 0 && info.nelem == 1 && a[0] == 42.5f;
    free(a);
    a = ok ? read_ds(h, "grp/empty", &info, &e) : NULL;
    ok = a && info.rank == 2 && info.nelem == 0;
    free(a);
    a = ok ? read_ds(h, "grp/compact", &info, &e) : NULL;
    ok = a && info.nelem == 3 && a[0] == 1.5f && a[1] == -2.25f && a[2] == 3;
    free(a);
    T_CHECK(t, ok, "%s", e.msg);
    /* Never written (h5py without data): the library would hand out the fill
     * value; nothing in the file backs these elements, so they are refused. */
    snprintf(t, sizeof t, "hdf5 %s refuses a never-written dataset", file);
    a = read_ds(h, "grp/unwritten", &info, &e);
    T_CHECK(t, !a && strstr(e.msg, "never written"), "%s", a ? "read it" : e.msg);
    free(a);
    snprintf(t, sizeof t, "hdf5 %s integers as float, refuses big-endian", file);
    a = read_ds(h, "refused/ints", &info, &e);
    ok = a && info.is_int && info.elem_size == 4 && a[0] == 0 && a[3] == 3;
    free(a);
    a = ok ? read_ds(h, "refused/big_endian", &info, &e) : NULL;
    ok = ok && !a && strstr(e.msg, "big-endian");
    free(a);
    T_CHECK(t, ok, "%s", e.msg);
    snprintf(t, sizeof t, "hdf5 %s refuses soft and external links", file);
    cv_h5_obj o;
    int rs = cv_h5_find(h, cv_h5_root(h), "links/soft", &o, &e);
    ok = rs == -1 && strstr(e.msg, "soft");
    int rx = cv_h5_find(h, cv_h5_root(h), "links/ext", &o, &e);
    ok = ok && rx == -1 && strstr(e.msg, "external");
    T_CHECK(t, ok, "%d %d %s", rs, rx, e.msg);
    snprintf(t, sizeof t, "hdf5 %s lookups", file);
    int nf = cv_h5_find(h, cv_h5_root(h), "grp/nope", &o, &e);
    int ng = cv_h5_find(h, cv_h5_root(h), "/grp//sub/", &o, &e);
    int isg = ng == 1 ? cv_h5_is_group(h, o, &e) : -1;
    int ndg = cv_h5_find(h, cv_h5_root(h), "grp/f16/x", &o, &e);
    T_CHECK(t, nf == 0 && ng == 1 && isg == 1 && ndg == -1, "%d %d %d %d %s", nf, ng, isg, ndg, e.msg);
    snprintf(t, sizeof t, "hdf5 %s group with 12 links", file);
    int nd = cv_h5_find(h, cv_h5_root(h), "dense/g07", &o, &e);
    /* libver="latest" moves groups of more than 8 links to dense storage: refused. */
    T_CHECK(t, latest ? nd == -1 && strstr(e.msg, "dense link storage") : nd == 1, "%d %s", nd, e.msg);
    cv_h5_close(h);
    cv_source_close(&src);
}

static void test_userblock(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/hdf5/userblock.h5", dir);
    cv_source src;
    cv_err e = { "" };
    cv_h5 *h = open_h5(path, &src, &e);
    static const char *want[] = { "in a user block" };
    cv_h5_dataset_info info;
    float *v = h ? read_ds(h, "g/d", &info, &e) : NULL;
    T_CHECK("hdf5 user block (superblock at 1024)",
            h && attr_is(h, "/", "vlen", 1, want) && v && info.nelem == 3 && v[2] == 3.0f, "%s", e.msg);
    free(v);
    if (h) { cv_h5_close(h); cv_source_close(&src); }
}

/* ---- corrupted files --------------------------------------------------------------- */

/* Opens and walks everything (all groups, string attributes, datasets): the
 * same walk as the fuzz target. Returns 0 or -1 with e set. */
typedef struct { cv_h5 *h; cv_err *e; int depth; long budget; } walker;

static int walk_obj(walker *w, cv_h5_obj obj);

typedef struct { walker *w; cv_h5_obj obj; } attr_ctx;

static int walk_attr2(void *ctx, const char *name)
{
    attr_ctx *a = ctx;
    char **s;
    int n;
    cv_err e2;
    int r = cv_h5_attr_strings(a->w->h, a->obj, name, &s, &n, &e2);
    if (r == 1) cv_h5_strings_free(s, n);
    else if (r < 0 && !strstr(e2.msg, "not a string") && !strstr(e2.msg, "rank")) { *a->w->e = e2; return -1; }
    return 0;
}

static int walk_link(void *ctx, const char *name, cv_h5_obj obj)
{
    (void)name;
    return walk_obj(ctx, obj);
}

static int walk_obj(walker *w, cv_h5_obj obj)
{
    if (--w->budget < 0) return 0;
    attr_ctx ac = { w, obj };
    if (cv_h5_attr_names(w->h, obj, walk_attr2, &ac, w->e) != 0) return -1;
    int g = cv_h5_is_group(w->h, obj, w->e);
    if (g < 0) return -1;
    if (g) {
        if (w->depth >= 16) return 0;
        w->depth++;
        int r = cv_h5_list(w->h, obj, walk_link, w, w->e);
        w->depth--;
        return r;
    }
    cv_h5_dataset_info info;
    if (cv_h5_dataset_info_get(w->h, obj, &info, w->e) != 0) return -1;
    if (info.nelem > (1u << 24)) return 0;
    float *buf = malloc(info.nelem * sizeof(float) + 4);
    if (!buf) return cv_fail(w->e, "oom");
    int r = cv_h5_dataset_read_f32(w->h, obj, buf, info.nelem, w->e);
    free(buf);
    return r;
}

static int walk_file(const char *path, const char *target, cv_err *e)
{
    cv_limits lim = cv_limits_default();
    cv_source src;
    cv_h5 *h;
    if (cv_source_open_file(path, &lim, &src, e) != 0) return -1;
    if (cv_h5_open(&src, &lim, &h, e) != 0) { cv_source_close(&src); return -1; }
    walker w = { h, e, 0, 100000 };
    cv_h5_obj obj = cv_h5_root(h);
    int r = 0;
    if (target && (r = cv_h5_find(h, obj, target, &obj, e)) == 0) r = cv_fail(e, "%s not found", target);
    r = r < 0 ? -1 : walk_obj(&w, obj);
    cv_h5_close(h);
    cv_source_close(&src);
    return r;
}

static uint64_t le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void put(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static long find_sig(const unsigned char *b, size_t n, const void *pat, size_t pn, int nth)
{
    for (size_t i = 0; i + pn <= n; i++)
        if (memcmp(b + i, pat, pn) == 0 && nth-- == 0) return (long)i;
    return -1;
}

/* Turns every float32 datatype message into a string one. */
static void retype_floats(unsigned char *b, size_t n)
{
    static const unsigned char f32type[] = { 0x11, 0x20, 0x1f, 0x00, 0x04, 0x00, 0x00, 0x00 };
    long at;
    while ((at = find_sig(b, n, f32type, sizeof f32type, 0)) >= 0) b[at] = 0x13;
}

/* Writes a patched copy and expects the walk to fail with an "hdf5:" message. */
static void expect_bad_in(const char *name, const unsigned char *b, size_t n, const char *target, const char *want)
{
    char path[1024], t[300];
    snprintf(path, sizeof path, "%s/bad_%d.h5", t_tmp(), (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, n, f) != n) { if (f) fclose(f); t_fail(name, "cannot write %s", path); return; }
    fclose(f);
    cv_err e = { "" };
    int r = walk_file(path, target, &e);
    unlink(path);
    snprintf(t, sizeof t, "hdf5 bad input: %s", name);
    T_CHECK(t, r == -1 && strncmp(e.msg, "hdf5: ", 6) == 0 && (!want || strstr(e.msg, want)),
            "rc %d, message '%s' (want '%s')", r, e.msg, want ? want : "hdf5: ...");
}

static void expect_bad(const char *name, const unsigned char *b, size_t n, const char *want)
{
    expect_bad_in(name, b, n, NULL, want);
}

static void test_bad(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/models/tiny_v2s_64.h5", dir);
    size_t n;
    unsigned char *orig = (unsigned char *)t_slurp(path, &n), *b = malloc(n + 1);
    cv_err e;
    T_CHECK("hdf5 bad input: pristine file walks clean", walk_file(path, NULL, &e) == 0, "%s", e.msg);
    snprintf(path, sizeof path, "%s/hdf5/earliest.h5", dir);
    size_t cn;
    unsigned char *corig = (unsigned char *)t_slurp(path, &cn), *cb = malloc(cn + 1);
    if (!orig || !b || !corig || !cb) { t_fail("hdf5 bad input", "cannot read fixtures"); goto out; }

    /* The layout h5py wrote: superblock v0, root header at 96 (v1), its first
     * message a continuation; root B-tree, SNOD, heaps, global heap collections. */
    uint64_t root = le(orig + 64, 8);
    if (orig[8] != 0 || root != 96 || le(orig + root + 16, 2) != 0x10) {
        t_fail("hdf5 bad input", "fixture layout changed (root 0x%llx)", (unsigned long long)root);
        goto out;
    }
    long tree = find_sig(orig, n, "TREE", 4, 0), snod = find_sig(orig, n, "SNOD", 4, 0);
    long gcol = find_sig(orig, n, "GCOL", 4, 0);
    static const unsigned char space4[] = { 0x01, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00 };

    static const size_t cuts[] = { 7, 60, 100, 600, 4096 };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "truncated at %zu", cuts[i]);
        expect_bad(name, orig, cuts[i], NULL);
    }
    expect_bad("truncated to half", orig, n / 2, "truncated");
    expect_bad("truncated by one byte", orig, n - 1, "truncated");

#define PATCH(stmt, name, want) do { memcpy(b, orig, n); stmt; expect_bad(name, b, n, want); } while (0)
    PATCH(b[1] = 'X', "bad signature", "signature");
    PATCH(b[8] = 9, "superblock version 9", "version 9");
    PATCH(b[13] = 3, "offset size 3", "sizes");
    PATCH(put(b + 64, 0x7fffffff, 8), "root address past EOF", "past end of file");
    PATCH(b[root] = 7, "object header version 7", "version 7");
    PATCH(put(b + root + 16 + 2, 0xffff, 2), "message size past chunk", "past end of its chunk");
    PATCH(put(b + root + 8, 0x7fffffff, 4), "header size past EOF", "past end of file");
    PATCH(put(b + root + 8, 0, 4), "empty object header", "neither a group nor a dataset");
    PATCH(put(b + root + 24, root + 16, 8), "continuation loop to chunk 0", "loops back");
    PATCH(put(b + root + 24, root, 8), "continuation to the prefix", "loops back");
    PATCH(put(b + root + 32, 1ull << 40, 8), "continuation past EOF", "continuation past end of file");
    PATCH((b[tree + 5] = 1, put(b + tree + 8 + 16 + 8, (uint64_t)tree, 8)), "group B-tree node points to itself", "cycle");
    PATCH(put(b + tree + 8 + 16 + 8, 1ull << 40, 8), "group B-tree child past EOF", "past end of file");
    PATCH(put(b + tree + 6, 33, 2), "group B-tree with more than 2K entries", "more than 2K");
    PATCH(put(b + snod + 8, 0xffffff, 8), "symbol name offset past heap", "past heap size");
    PATCH(put(b + snod + 6, 0xffff, 2), "symbol node entry count", "past end of file");
    PATCH(put(b + gcol + 8 + 8 + 8, 0x7fffffff, 8), "vlen string object past GCOL", "past the collection");
    PATCH(put(b + gcol + 8, 1ull << 40, 8), "global heap collection size", "past end of file");
    PATCH(memcpy(b + gcol, "XCOL", 4), "global heap signature", "bad signature");
    PATCH(retype_floats(b, n), "datatype class string", "not numeric");
    long sp = find_sig(orig, n, space4, sizeof space4, 0);
    if (sp < 0) { t_fail("hdf5 bad input", "no rank-4 dataspace in the fixture"); goto out; }
    PATCH(for (int k = 0; k < 4; k++) put(b + sp + 8 + 8 * k, 0xffffffffull, 8), "dims product overflow", "overflows");
    PATCH(put(b + sp + 8, 1ull << 40, 8), "dataset larger than the limit", "exceed the limit");

    /* Chunked layout (the synthetic file): find the first v3 chunked layout message. */
    static const unsigned char chunk_layout[] = { 0x03, 0x02, 0x03 };
    long cl = find_sig(corig, cn, chunk_layout, sizeof chunk_layout, 0);
    if (cl < 0) { t_fail("hdf5 bad input", "no chunked layout in earliest.h5"); goto out; }
#define CPATCH(stmt, name, want) \
    do { memcpy(cb, corig, cn); stmt; expect_bad_in(name, cb, cn, "grp/sub/chunked", want); } while (0)
    CPATCH((put(cb + cl + 11, 0xffffffff, 4), put(cb + cl + 15, 0xffffffff, 4)), "chunk size huge", "too large");
    CPATCH(put(cb + cl + 11, 0, 4), "chunk dimension zero", "zero chunk");
    CPATCH(put(cb + cl + 19, 8, 4), "chunk element size", "element size");
    CPATCH(put(cb + cl + 3, 1ull << 40, 8), "chunk B-tree past EOF", "past end of file");
    uint64_t bt = le(corig + cl + 3, 8);
    CPATCH(put(cb + bt + 24, 0xffffffff, 4), "chunk size past EOF", "past end of file");
    CPATCH(put(cb + bt + 32, 1, 8), "chunk offset unaligned", "chunk offset");
    CPATCH(put(cb + bt + 24, 4, 4), "deflate data truncated", "deflate");

    /* A directory: refused by the source, and by the reader if handed one. */
    cv_limits lim = cv_limits_default();
    cv_source src;
    e.msg[0] = 0;
    int r = cv_source_open_file(t_tmp(), &lim, &src, &e);
    T_CHECK("hdf5 bad input: a directory (source)", r == -1 && e.msg[0], "rc %d", r);
    if (r == 0) cv_source_close(&src);
    int fd = open(t_tmp(), O_RDONLY | O_DIRECTORY);
    cv_source ds = { fd, 0, 1 << 20, 0 };
    cv_h5 *h = NULL;
    r = fd >= 0 ? cv_h5_open(&ds, &lim, &h, &e) : 0;
    T_CHECK("hdf5 bad input: a directory (reader)", r == -1 && strncmp(e.msg, "hdf5: ", 6) == 0, "rc %d %s", r, e.msg);
    cv_h5_close(h);
    if (fd >= 0) close(fd);
out:
    free(orig);
    free(b);
    free(corig);
    free(cb);
}

/* ---- files written by tests/h5_write.h ------------------------------------------------ */

/* Writes bytes to a temporary file and opens it; NULL with e set on failure. */
static cv_h5 *open_bytes(const unsigned char *b, size_t n, cv_source *src, cv_err *e)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/written_%d.h5", t_tmp(), (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, n, f) != n) {
        if (f) fclose(f);
        cv_fail(e, "cannot write %s", path);
        return NULL;
    }
    fclose(f);
    cv_h5 *h = open_h5(path, src, e);
    unlink(path);
    return h;
}

/* A root group holding one dataset "d". */
static unsigned char *one_dataset(const h5w_dset *d, size_t *len)
{
    h5w w;
    h5w_init(&w);
    uint64_t ds = h5w_dataset(&w, d);
    h5w_group g = { 0 };
    h5w_link(&g, "d", ds);
    return h5w_finish(&w, h5w_group_end(&w, &g), len);
}

/* Reads "d" of the file; returns the data (caller frees) or NULL with e set. */
static float *read_d(const unsigned char *b, size_t n, cv_h5_dataset_info *info, cv_err *e)
{
    cv_source src;
    cv_h5 *h = open_bytes(b, n, &src, e);
    if (!h) return NULL;
    float *v = read_ds(h, "d", info, e);
    cv_h5_close(h);
    cv_source_close(&src);
    return v;
}

static void test_written(void)
{
    float v[35];
    for (int i = 0; i < 35; i++) v[i] = (float)i * 0.5f - 3;
    cv_h5_dataset_info info;
    cv_err e = { "" };
    size_t n;
    unsigned char *b;
    float *got;
    int ok;

    /* The writer's files read back (so the hostile variants below test the reader). */
    const char *names[] = { "contiguous", "chunked 3x2 deflate", "chunked 4x4 raw", "chunked 7x5 (one chunk) deflate" };
    for (int k = 0; k < 4; k++) {
        h5w_dset d = { .rank = 2, .dims = { 7, 5 }, .type = H5W_F32, .data = v, .chunked = k > 0,
                       .cdims = { k == 1 ? 3 : k == 2 ? 4 : 7, k == 1 ? 2 : k == 2 ? 4 : 5 }, .deflate = k != 2 };
        b = one_dataset(&d, &n);
        got = read_d(b, n, &info, &e);
        ok = got && info.nelem == 35;
        for (int i = 0; ok && i < 35; i++) ok = got[i] == v[i];
        char t[128];
        snprintf(t, sizeof t, "hdf5 written: %s 7x5 reads back", names[k]);
        T_CHECK(t, ok, "%s", got ? "values differ" : e.msg);
        free(got);
        free(b);
    }

    /* Checksums (superblock 2/3, OHDR): h5py refuses a file whose checksum is
     * wrong; the reader used to read it. A byte of the dataset's dims flipped: */
    h5w_dset d = { .rank = 2, .dims = { 7, 5 }, .type = H5W_F32, .data = v };
    b = one_dataset(&d, &n);
    long oh = find_sig(b, n, "OHDR", 4, 0);
    b[oh + 4 + 1 + 1 + 4 + 4 + 4 + 8] ^= 1;       /* first dataspace dim, low byte: 7 -> 6 */
    got = read_d(b, n, &info, &e);
    T_CHECK("hdf5 written: object header checksum mismatch refused", !got && strstr(e.msg, "checksum mismatch"),
            "%s", got ? "read a corrupt header" : e.msg);
    free(got);
    free(b);
    b = one_dataset(&d, &n);
    b[12 + 8 + 8 + 1] ^= 1;                       /* the end-of-file address */
    got = read_d(b, n, &info, &e);
    T_CHECK("hdf5 written: superblock checksum mismatch refused", !got && strstr(e.msg, "superblock checksum"),
            "%s", got ? "read a corrupt superblock" : e.msg);
    free(got);
    free(b);
    /* ... and h5py's own latest-format file, one message byte changed. */
    char lpath[1024];
    snprintf(lpath, sizeof lpath, "%s/hdf5/latest.h5", t_local());
    size_t ln;
    unsigned char *lb = (unsigned char *)t_slurp(lpath, &ln);
    long lo = lb ? find_sig(lb, ln, "OHDR", 4, 0) : -1;   /* the root group */
    if (lo >= 0) lb[lo + 12] ^= 0x40;
    cv_source src;
    cv_h5 *h = lo >= 0 ? open_bytes(lb, ln, &src, &e) : NULL;
    int bad = 0;
    if (h) {
        walker wk = { h, &e, 0, 100000 };
        bad = walk_obj(&wk, cv_h5_root(h)) != 0 && strstr(e.msg, "checksum mismatch");
        cv_h5_close(h);
        cv_source_close(&src);
    } else {
        bad = lo >= 0 && strstr(e.msg, "checksum mismatch");
    }
    T_CHECK("hdf5 latest.h5 with a header byte changed: checksum mismatch", bad, "%s", lo < 0 ? "no OHDR" : e.msg);
    free(lb);

    /* Never written, with a fill value of 5: h5py reads 5.0, this reader used to
     * read 0; nothing in the file backs the data, so it is refused. */
    h5w_dset u = { .rank = 1, .dims = { 4 }, .type = H5W_F32, .fill = 1, .fill_value = 5.0f };
    b = one_dataset(&u, &n);
    got = read_d(b, n, &info, &e);
    T_CHECK("hdf5 written: unwritten dataset with fill value 5 refused", !got && strstr(e.msg, "never written"),
            "%s", got ? "read it" : e.msg);
    free(got);
    free(b);
    h5w_dset mc = { .rank = 2, .dims = { 7, 5 }, .type = H5W_F32, .data = v, .chunked = 1, .cdims = { 3, 2 },
                    .deflate = 1, .skip_chunk = 4 };
    b = one_dataset(&mc, &n);
    got = read_d(b, n, &info, &e);
    T_CHECK("hdf5 written: chunked dataset with a chunk never written refused",
            !got && strstr(e.msg, "1 of its 9 chunks were never written"), "%s", got ? "read it" : e.msg);
    free(got);
    free(b);

    /* Amplification: one chunk declared 4096 x 4096 float32 (64 MiB) whose
     * deflate stream is 1 KiB. The reader used to allocate the whole chunk (and
     * the caller the dataset) before finding out; now the scan refuses it from
     * the chunk index alone, before the caller allocates anything. */
    unsigned char zeros[4096] = { 0 }, zs[1100];
    uLongf zl = sizeof zs;
    compress2(zs, &zl, zeros, sizeof zeros, 9);
    h5w_dset big = { .rank = 2, .dims = { 4096, 4096 }, .type = H5W_F32, .chunked = 1, .cdims = { 4096, 4096 },
                     .deflate = 1, .raw_chunk = zs, .raw_chunk_len = zl };
    b = one_dataset(&big, &n);
    h = open_bytes(b, n, &src, &e);
    cv_h5_obj o;
    int r = h && cv_h5_find(h, cv_h5_root(h), "d", &o, &e) == 1 ? cv_h5_dataset_info_get(h, o, &info, &e) : 1;
    T_CHECK("hdf5 written: 64 MiB chunk from a 1 KiB deflate stream refused by dataset info",
            h && r == -1 && strstr(e.msg, "cannot hold"), "rc %d: %s (file %zu bytes)", r, e.msg, n);
    if (h) { cv_h5_close(h); cv_source_close(&src); }
    free(b);

    /* Non-float data stays readable here (Keras's Normalization count is int64);
     * the converter decides which variables may be integers. */
    int32_t iv[4] = { -2, 0, 7, 1 << 20 };
    h5w_dset id = { .rank = 1, .dims = { 4 }, .type = H5W_I32, .data = iv };
    b = one_dataset(&id, &n);
    got = read_d(b, n, &info, &e);
    T_CHECK("hdf5 written: int32 dataset reads as float, flagged is_int",
            got && info.is_int && got[0] == -2 && got[3] == 1048576.0f, "%s", got ? "values" : e.msg);
    free(got);
    free(b);
}

int main(void)
{
    const char *local = t_local(), *shared = t_shared();
    test_legacy(local, "tiny_v2s_64");
    test_legacy(local, "tiny_v2b0_nested_67x53");
    test_keras(local, "tiny_v1b0_64");
    test_keras(local, "tiny_v2s_64");
    test_keras(local, "tiny_v2b0_nested_67x53");
    test_synthetic(local, "earliest.h5", 0);
    test_synthetic(local, "latest.h5", 1);
    test_userblock(local);
    test_bad(local);
    test_written();
    if (!shared) {
        t_skip("hdf5 keras efficientnetv2-b0_224", "no shared fixtures");
        t_skip("hdf5 keras dermatology_v2s_300", "no shared fixtures");
    } else {
        test_keras(shared, "efficientnetv2-b0_224");
        test_keras(shared, "dermatology_v2s_300");
    }
    return t_failed;
}
