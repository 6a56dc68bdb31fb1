/* test_convert.c - the converter against the Keras fixtures, and its bad-input table.
 *
 * 1. For every fixture model file (tests/fixtures, plus the shared set when
 *    present): the FP32 values the reader extracts for every Keras variable
 *    match weights.<fmt>.json exactly (crc32 of the float32 LE bytes, shape,
 *    Keras variable order); the file converts (fp16 and fp32) and
 *    `effcam info --json` reports the manifest's params.
 * 2. A table of broken inputs: each gives exit status 2, exactly one stderr
 *    line "effcam: FILE: reason", and no output file (nor a leftover temp).
 * 3. Hostile models built here (tests/h5_write.h + a stored zip): weights that
 *    are NaN, infinite, integers or never written; statistics that fold to
 *    infinity; configs the loader would refuse, with duplicate or NUL names,
 *    at the layer limit in reverse order; a model needing gigabytes of
 *    activations; small files claiming huge tensors (run under a memory
 *    cgroup where one can be made); labels from /dev/zero, a FIFO, a
 *    directory; a writer killed mid-write leaves nothing.
 */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "convert/cv.h"
#include "engine/ecm_format.h"
#include "json_file.h"
#include "tests/h5_write.h"

/* ---- running the CLI ------------------------------------------------------------- */

typedef struct {
    int status;         /* exit status, or 128 + signal */
    char *out, *err;    /* captured stdout / stderr (malloc'd) */
} run_result;

static run_result run(const char *args)
{
    run_result r = { -1, NULL, NULL };
    char cmd[8192], o[1024], e[1024];
    snprintf(o, sizeof o, "%s/run.out", t_tmp());
    snprintf(e, sizeof e, "%s/run.err", t_tmp());
    snprintf(cmd, sizeof cmd, "'%s' %s >'%s' 2>'%s' </dev/null", t_bin(), args, o, e);
    int st = system(cmd);
    if (st != -1 && WIFEXITED(st)) r.status = WEXITSTATUS(st);
    else if (st != -1 && WIFSIGNALED(st)) r.status = 128 + WTERMSIG(st);
    r.out = t_slurp(o, NULL);
    r.err = t_slurp(e, NULL);
    if (!r.out) r.out = calloc(1, 1);
    if (!r.err) r.err = calloc(1, 1);
    return r;
}

static void run_free(run_result *r)
{
    free(r->out);
    free(r->err);
}

/* ---- 1. weights and params vs the fixtures ----------------------------------------- */

/* Compares `convert --list-weights` (name \t shape \t crc) with weights.json. */
static void check_weights(const char *dir, const char *model, const char *file)
{
    char name[512], path[1024], wjson[1024];
    const char *ext = strrchr(file, '.');
    snprintf(name, sizeof name, "weights %s", file);
    snprintf(path, sizeof path, "%s/models/%s", dir, file);
    snprintf(wjson, sizeof wjson, "%s/expected/%s/weights.%s.json", dir, model, ext && !strcmp(ext, ".h5") ? "h5" : "keras");
    js_doc *doc;
    const js_value *root = t_json_file(wjson, &doc);
    if (!root) { t_fail(name, "cannot read %s", wjson); return; }
    char args[2048];
    snprintf(args, sizeof args, "convert '%s' --list-weights", path);
    run_result r = run(args);
    if (r.status != 0) {
        t_fail(name, "convert --list-weights exited %d: %s", r.status, r.err);
        goto done;
    }
    /* Walk the expected variables in order alongside our lines. */
    const js_value *layers = js_get(root, "layers");
    char *line = r.out;
    int n = 0, bad = 0;
    for (int i = 0; i < (layers ? layers->n : 0) && !bad; i++) {
        const js_value *ws = js_get(js_at(layers, i), "weights");
        for (int j = 0; j < (ws ? ws->n : 0) && !bad; j++) {
            const js_value *w = js_at(ws, j);
            char *nl = line ? strchr(line, '\n') : NULL;
            if (!nl) { t_fail(name, "only %d variables listed, fixture has more (next %s)", n, js_get_str(w, "path")); bad = 1; break; }
            *nl = 0;
            char shape[128] = "";
            const js_value *sh = js_get(w, "shape");
            for (int d = 0; d < (sh ? sh->n : 0); d++) {
                double x = 0;
                js_num(js_at(sh, d), &x);
                snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%.0f", d ? "x" : "", x);
            }
            double crc = -1;
            js_num(js_get(w, "crc32"), &crc);
            char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
            if (!t2) { t_fail(name, "bad listing line: %s", line); bad = 1; break; }
            *t1 = *t2 = 0;
            if (strcmp(t1 + 1, shape) || strtoul(t2 + 1, NULL, 10) != (unsigned long)crc) {
                t_fail(name, "variable %d (%s, fixture %s): shape %s crc %s, fixture shape %s crc %.0f", n, line,
                       js_get_str(w, "path"), t1 + 1, t2 + 1, shape, crc);
                bad = 1;
            }
            line = nl + 1;
            n++;
        }
    }
    if (!bad && line && *line) { t_fail(name, "more variables listed than the fixture has: %s", line); bad = 1; }
    if (!bad) t_pass(name);
done:
    run_free(&r);
    js_doc_free(doc);
}

static void check_info(const char *dir, const char *file, double params, const char *cam_layer, int ih, int iw)
{
    static const char *dtypes[2] = { "fp16", "fp32" };
    for (int d = 0; d < 2; d++) {
        char name[512], args[4096], ecm[1024];
        snprintf(name, sizeof name, "convert+info %s %s", file, dtypes[d]);
        snprintf(ecm, sizeof ecm, "%s/%s.%s.ecm", t_tmp(), file, dtypes[d]);
        snprintf(args, sizeof args, "convert '%s/models/%s' -o '%s' --dtype %s", dir, file, ecm, dtypes[d]);
        run_result r = run(args);
        if (r.status != 0) {
            t_fail(name, "convert exited %d: %s", r.status, r.err);
            run_free(&r);
            continue;
        }
        run_free(&r);
        snprintf(args, sizeof args, "info '%s' --json", ecm);
        r = run(args);
        js_doc *doc = NULL;
        const js_value *root;
        char err[128];
        double p = -1, h = -1, w = -1;
        if (r.status != 0 || js_parse(r.out, strlen(r.out), 64, &doc, &root, err, sizeof err)) {
            t_fail(name, "info exited %d or printed no JSON: %s", r.status, r.err);
        } else {
            js_num(js_get(root, "params"), &p);
            js_num(js_at(js_get(root, "input_hw"), 0), &h);
            js_num(js_at(js_get(root, "input_hw"), 1), &w);
            const char *gl = js_get_str(root, "gradcam_layer");
            const js_value *labels = js_get(root, "labels");
            T_CHECK(name, p == params && h == ih && w == iw && gl && !strcmp(gl, cam_layer) && labels && labels->n >= 1,
                    "params %.0f (want %.0f), input %.0fx%.0f (want %dx%d), gradcam_layer %s (want %s)", p, params, h,
                    w, ih, iw, gl ? gl : "null", cam_layer);
        }
        js_doc_free(doc);
        run_free(&r);
        unlink(ecm);
    }
}

static void check_fixture_set(const char *dir)
{
    char mpath[1024];
    snprintf(mpath, sizeof mpath, "%s/manifest.json", dir);
    js_doc *doc;
    const js_value *root = t_json_file(mpath, &doc);
    if (!root) {
        t_fail("manifest", "cannot read %s", mpath);
        return;
    }
    const js_value *models = js_get(root, "models");
    for (int i = 0; i < (models ? models->n : 0); i++) {
        const js_value *m = js_at(models, i);
        const char *mname = js_get_str(m, "name");
        const js_value *files = js_get(m, "files");
        double params = 0, h = 0, w = 0;
        js_num(js_get(m, "params"), &params);
        js_num(js_at(js_get(m, "input_hw"), 0), &h);
        js_num(js_at(js_get(m, "input_hw"), 1), &w);
        for (int f = 0; f < (files ? files->n : 0); f++) {
            const char *file = js_str(js_at(files, f));
            if (!mname || !file) continue;
            check_weights(dir, mname, file);
            check_info(dir, file, params, js_get_str(m, "gradcam_layer"), (int)h, (int)w);
        }
    }
    js_doc_free(doc);
}

/* ---- 2. bad inputs ------------------------------------------------------------------ */

static unsigned char *read_all(const char *path, size_t *len)
{
    return (unsigned char *)t_slurp(path, len);
}

static int write_all(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(p, 1, n, f) == n;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static void put16(unsigned char *p, unsigned v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }
static void put32(unsigned char *p, uint32_t v) { put16(p, v & 0xffff); put16(p + 2, v >> 16); }

/* A minimal STORED zip writer for rebuilding .keras archives with edited members. */
static int zip_write(const char *path, int n, const char *const *names, const unsigned char *const *data,
                     const size_t *lens)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    uint32_t offs[8];
    unsigned char h[64];
    long pos = 0;
    for (int i = 0; i < n; i++) {
        size_t nl = strlen(names[i]);
        uint32_t crc = (uint32_t)crc32(0, data[i], (uInt)lens[i]);
        memset(h, 0, 30);
        put32(h, 0x04034b50);
        put16(h + 4, 20);
        put32(h + 14, crc);
        put32(h + 18, (uint32_t)lens[i]);
        put32(h + 22, (uint32_t)lens[i]);
        put16(h + 26, (unsigned)nl);
        offs[i] = (uint32_t)pos;
        fwrite(h, 1, 30, f);
        fwrite(names[i], 1, nl, f);
        fwrite(data[i], 1, lens[i], f);
        pos += 30 + (long)nl + (long)lens[i];
    }
    long cd = pos;
    for (int i = 0; i < n; i++) {
        size_t nl = strlen(names[i]);
        memset(h, 0, 46);
        put32(h, 0x02014b50);
        put16(h + 4, 20);
        put16(h + 6, 20);
        put32(h + 16, (uint32_t)crc32(0, data[i], (uInt)lens[i]));
        put32(h + 20, (uint32_t)lens[i]);
        put32(h + 24, (uint32_t)lens[i]);
        put16(h + 28, (unsigned)nl);
        put32(h + 42, offs[i]);
        fwrite(h, 1, 46, f);
        fwrite(names[i], 1, nl, f);
        pos += 46 + (long)nl;
    }
    memset(h, 0, 22);
    put32(h, 0x06054b50);
    put16(h + 8, (unsigned)n);
    put16(h + 10, (unsigned)n);
    put32(h + 12, (uint32_t)(pos - cd));
    put32(h + 16, (uint32_t)cd);
    fwrite(h, 1, 22, f);
    return fclose(f);
}

/* Finds needle in hay; offset or -1. */
static long find_bytes(const unsigned char *hay, size_t n, const char *needle, size_t nl, long from)
{
    for (size_t i = (size_t)from; i + nl <= n; i++)
        if (!memcmp(hay + i, needle, nl)) return (long)i;
    return -1;
}

/* The original archive's members (Keras writes them STORED). */
typedef struct {
    unsigned char *config, *weights, *meta;
    size_t config_len, weights_len, meta_len;
} keras_parts;

static int split_keras(const unsigned char *z, size_t n, keras_parts *p)
{
    memset(p, 0, sizeof *p);
    size_t off = 0;
    while (off + 30 <= n && z[off] == 'P' && z[off + 1] == 'K' && z[off + 2] == 3 && z[off + 3] == 4) {
        size_t csize = z[off + 18] | z[off + 19] << 8 | (size_t)z[off + 20] << 16 | (size_t)z[off + 21] << 24;
        size_t nl = z[off + 26] | z[off + 27] << 8, xl = z[off + 28] | z[off + 29] << 8;
        const char *nm = (const char *)z + off + 30;
        const unsigned char *d = z + off + 30 + nl + xl;
        if (off + 30 + nl + xl + csize > n) return -1;
        unsigned char *copy = malloc(csize + 1);
        if (!copy) return -1;
        memcpy(copy, d, csize);
        copy[csize] = 0;
        if (nl == 11 && !memcmp(nm, "config.json", 11)) { p->config = copy; p->config_len = csize; }
        else if (nl == 16 && !memcmp(nm, "model.weights.h5", 16)) { p->weights = copy; p->weights_len = csize; }
        else if (nl == 13 && !memcmp(nm, "metadata.json", 13)) { p->meta = copy; p->meta_len = csize; }
        else free(copy);
        off += 30 + nl + xl + csize;
    }
    return p->config && p->weights ? 0 : -1;
}

/* Writes a .keras with config.json where `from` (first occurrence) became `to`. */
static int keras_with_config_edit(const keras_parts *p, const char *path, const char *from, const char *to)
{
    const char *cfg = (const char *)p->config;
    const char *at = strstr(cfg, from);
    if (!at) return -1;
    size_t pre = (size_t)(at - cfg), fl = strlen(from), tl = strlen(to);
    size_t nlen = p->config_len - fl + tl;
    unsigned char *nc = malloc(nlen + 1);
    if (!nc) return -1;
    memcpy(nc, cfg, pre);
    memcpy(nc + pre, to, tl);
    memcpy(nc + pre + tl, cfg + pre + fl, p->config_len - pre - fl);
    const char *names[3] = { "metadata.json", "config.json", "model.weights.h5" };
    const unsigned char *data[3] = { p->meta ? p->meta : (const unsigned char *)"{}", nc, p->weights };
    size_t lens[3] = { p->meta ? p->meta_len : 2, nlen, p->weights_len };
    int r = zip_write(path, 3, names, data, lens);
    free(nc);
    return r;
}

typedef struct {
    const char *name;
    char path[1024];
    const char *extra;     /* extra CLI arguments */
} bad_case;

static void check_bad(bad_case *bc)
{
    char name[256], outp[1024], args[4096];
    snprintf(name, sizeof name, "bad input: %s", bc->name);
    snprintf(outp, sizeof outp, "%s/bad_out/out.ecm", t_tmp());
    snprintf(args, sizeof args, "convert '%s' -o '%s' %s", bc->path, outp, bc->extra ? bc->extra : "");
    run_result r = run(args);
    size_t nlines = 0;
    for (const char *p = r.err; *p; p++) nlines += *p == '\n';
    char prefix[1200];
    snprintf(prefix, sizeof prefix, "effcam: %s: ", bc->path);
    /* The out directory must hold nothing: no output, no temp file. */
    int leftovers = 0;
    char od[1024];
    snprintf(od, sizeof od, "%s/bad_out", t_tmp());
    DIR *d = opendir(od);
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (de->d_name[0] != '.') leftovers++;
    if (d) closedir(d);
    T_CHECK(name, r.status == 2 && nlines == 1 && !strncmp(r.err, prefix, strlen(prefix)) && !leftovers,
            "status %d, %zu stderr lines, %d files left, stderr: %.300s", r.status, nlines, leftovers, r.err);
    run_free(&r);
}

static void bad_inputs(const char *dir)
{
    char src_keras[1024], src_h5[1024], bd[1024];
    snprintf(src_keras, sizeof src_keras, "%s/models/tiny_v2s_64.keras", dir);
    snprintf(src_h5, sizeof src_h5, "%s/models/tiny_v2s_64.h5", dir);
    snprintf(bd, sizeof bd, "%s/bad_out", t_tmp());
    mkdir(bd, 0755);
    size_t kl, hl;
    unsigned char *kz = read_all(src_keras, &kl), *h5 = read_all(src_h5, &hl);
    keras_parts parts;
    if (!kz || !h5 || split_keras(kz, kl, &parts)) {
        t_fail("bad input table", "cannot read %s / %s", src_keras, src_h5);
        free(kz);
        free(h5);
        return;
    }
    bad_case cases[64];
    int n = 0;
    char buf[1024];
#define CASE(nm) (cases[n].name = (nm), cases[n].extra = NULL, snprintf(cases[n].path, sizeof cases[n].path, "%s/bad%02d", t_tmp(), n), &cases[n++])
    bad_case *c;

    c = CASE("empty file"); write_all(c->path, "", 0);
    c = CASE("directory"); mkdir(c->path, 0755);
    c = CASE("missing file"); (void)c;
    c = CASE("text file"); write_all(c->path, "this is not a model\n", 20);
    static const size_t cuts[] = { 4, 100, 5000, 0 };
    for (int i = 0; i < 4; i++) {
        size_t cut = cuts[i] ? cuts[i] : kl - 10;
        c = CASE(i == 0 ? "keras truncated at 4" : i == 1 ? "keras truncated at 100" : i == 2 ? "keras truncated at 5000" : "keras truncated in the directory");
        write_all(c->path, kz, cut);
    }
    c = CASE("keras truncated at half"); write_all(c->path, kz, kl / 2);
    /* CRC mismatch: flip a byte inside the stored config.json data. */
    {
        unsigned char *m = malloc(kl);
        memcpy(m, kz, kl);
        long at = find_bytes(m, kl, "\"class_name\"", 12, 0);
        if (at >= 0) m[at + 3] ^= 0x20;
        c = CASE("keras config CRC mismatch"); write_all(c->path, m, kl);
        memcpy(m, kz, kl);
        m[kl / 2] ^= 0x55;
        c = CASE("keras weights CRC mismatch"); write_all(c->path, m, kl);
        /* EOCD: central directory offset pointing past the end of the file. */
        memcpy(m, kz, kl);
        put32(m + kl - 22 + 16, 0x7ffffff0u);
        c = CASE("zip directory past EOF"); write_all(c->path, m, kl);
        memcpy(m, kz, kl);
        m[0] = 'Q';
        m[kl - 22] = 'Q';
        c = CASE("bad magic"); write_all(c->path, m, kl);
        free(m);
    }
    c = CASE("invalid JSON config"); keras_with_config_edit(&parts, c->path, "{\"module\"", "{\"module\",");
    c = CASE("JSON depth bomb");
    {
        size_t depth = 100000;
        unsigned char *bomb = malloc(depth * 2 + 2);
        memset(bomb, '[', depth);
        memset(bomb + depth, ']', depth);
        const char *names[3] = { "metadata.json", "config.json", "model.weights.h5" };
        const unsigned char *data[3] = { (const unsigned char *)"{}", bomb, parts.weights };
        size_t lens[3] = { 2, depth * 2, parts.weights_len };
        zip_write(c->path, 3, names, data, lens);
        free(bomb);
    }
    c = CASE("unknown layer class"); keras_with_config_edit(&parts, c->path, "\"DepthwiseConv2D\"", "\"LocallyConnected2D\"");
    c = CASE("weights shape mismatch"); keras_with_config_edit(&parts, c->path, "\"filters\": 8,", "\"filters\": 9,");
    c = CASE("negative filters"); keras_with_config_edit(&parts, c->path, "\"filters\": 8,", "\"filters\": -8,");
    c = CASE("wrong JSON type"); keras_with_config_edit(&parts, c->path, "\"filters\": 8,", "\"filters\": \"8\",");
    c = CASE("huge input dims"); keras_with_config_edit(&parts, c->path, "[null, 64, 64, 3]", "[null, 100000, 100000, 3]");
    c = CASE("layer reads itself (cycle)");
    keras_with_config_edit(&parts, c->path, "\"keras_history\": [\"stem_conv\"", "\"keras_history\": [\"stem_bn\"");
    c = CASE("missing weights member");
    {
        const char *names[2] = { "metadata.json", "config.json" };
        const unsigned char *data[2] = { (const unsigned char *)"{}", parts.config };
        size_t lens[2] = { 2, parts.config_len };
        zip_write(c->path, 2, names, data, lens);
    }
    c = CASE("missing layer weights (bias)");
    keras_with_config_edit(&parts, c->path, "\"use_bias\": false", "\"use_bias\": true");
    c = CASE("h5 truncated at 1000"); write_all(c->path, h5, 1000);
    c = CASE("h5 truncated at half"); write_all(c->path, h5, hl / 2);
    {
        unsigned char *m = malloc(hl);
        memcpy(m, h5, hl);
        m[1] = 'X';
        c = CASE("h5 bad signature"); write_all(c->path, m, hl);
        /* Superblock v0: root group symbol table entry's object header address
         * at 64 + 8 (after base, free-space, EOF and driver addresses). */
        memcpy(m, h5, hl);
        for (int i = 0; i < 8; i++) m[64 + i] = 0x7f;
        c = CASE("h5 root address past EOF"); write_all(c->path, m, hl);
        /* A group B-tree node that lists itself as its child, one level up. */
        memcpy(m, h5, hl);
        long t = find_bytes(m, hl, "TREE", 4, 0);
        if (t >= 0) {
            m[t + 5] = 1;
            for (int i = 0; i < 8; i++) m[t + 32 + i] = (unsigned char)((uint64_t)t >> (8 * i));
        }
        c = CASE("h5 self-referencing group B-tree"); write_all(c->path, m, hl);
        /* A variable-length string longer than its global heap collection. */
        memcpy(m, h5, hl);
        long gc = find_bytes(m, hl, "GCOL", 4, 0);
        if (gc >= 0) put32(m + gc + 24, 0x0fffffffu);
        c = CASE("h5 vlen string past the heap"); write_all(c->path, m, hl);
        /* model_config JSON edited in place (same length) */
        memcpy(m, h5, hl);
        long js = find_bytes(m, hl, "\"class_name\": \"Dense\"", 21, 0);
        if (js >= 0) memcpy(m + js, "\"class_name\": \"Dens3\"", 21);
        c = CASE("h5 unknown layer class"); write_all(c->path, m, hl);
        memcpy(m, h5, hl);
        js = find_bytes(m, hl, "{\"module\"", 9, 0);
        if (js < 0) js = find_bytes(m, hl, "{\"class_name\"", 13, 0);
        if (js >= 0) m[js] = '<';
        c = CASE("h5 invalid JSON"); write_all(c->path, m, hl);
        free(m);
    }
    c = CASE("labels of the wrong count");
    snprintf(c->path, sizeof c->path, "%s", src_keras);
    snprintf(buf, sizeof buf, "%s/labels3.txt", t_tmp());
    write_all(buf, "a\nb\nc\n", 6);
    static char extra[1100];
    snprintf(extra, sizeof extra, "--labels '%s'", buf);
    c->extra = extra;
    /* Every documented limit, lowered below what the tiny model needs. */
    static const char *const limits[][2] = {
        { "limit --max-file-mb", "--max-file-mb 1" },
        { "limit --max-layers", "--max-layers 50" },
        { "limit --max-tensor-elems", "--max-tensor-elems 1000" },
        { "limit --max-json-depth", "--max-json-depth 5" },
    };
    for (int i = 0; i < 4; i++) {
        c = CASE(limits[i][0]);
        snprintf(c->path, sizeof c->path, "%s", src_keras);
        c->extra = limits[i][1];
    }
#undef CASE
    for (int i = 0; i < n; i++) check_bad(&cases[i]);
    T_CHECK("bad input table size", n >= 25, "only %d cases", n);

    /* Output into a directory that does not exist: error names the output. */
    char args[4096];
    snprintf(args, sizeof args, "convert '%s' -o '%s/no/such/dir/x.ecm'", src_keras, t_tmp());
    run_result r = run(args);
    T_CHECK("bad output path", r.status == 2 && strstr(r.err, "effcam: ") == r.err && strchr(r.err, '\n') == r.err + strlen(r.err) - 1,
            "status %d stderr %s", r.status, r.err);
    run_free(&r);
    r = run("convert");
    T_CHECK("usage error", r.status == 2 && strstr(r.err, "usage"), "status %d stderr %s", r.status, r.err);
    run_free(&r);
    free(parts.config);
    free(parts.weights);
    free(parts.meta);
    free(kz);
    free(h5);
}

/* ---- 3. hostile models built here ----------------------------------------------------- */

/* CPU seconds used by finished children (the CLI runs): unlike wall time, not
 * inflated by a busy machine. */
static double child_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

/* One layer's variables, written as layers/<path>/vars/0, 1, ... */
typedef struct {
    const char *path;
    int n;
    h5w_dset v[4];
} kvars;

/* A .keras archive: config.json (text) and a model.weights.h5 with these layers. */
static int write_keras(const char *path, const char *config, int nl, const kvars *layers)
{
    h5w w;
    h5w_init(&w);
    h5w_group all = { 0 };
    for (int i = 0; i < nl; i++) {
        h5w_group vars = { 0 }, lg = { 0 };
        for (int k = 0; k < layers[i].n; k++) {
            char key[16];
            snprintf(key, sizeof key, "%d", k);
            h5w_link(&vars, key, h5w_dataset(&w, &layers[i].v[k]));
        }
        h5w_link(&lg, "vars", h5w_group_end(&w, &vars));
        h5w_link(&all, layers[i].path, h5w_group_end(&w, &lg));
    }
    h5w_group root = { 0 };
    h5w_link(&root, "layers", h5w_group_end(&w, &all));
    size_t wl;
    unsigned char *wb = h5w_finish(&w, h5w_group_end(&w, &root), &wl);
    const char *names[3] = { "metadata.json", "config.json", "model.weights.h5" };
    const unsigned char *data[3] = { (const unsigned char *)"{\"keras_version\": \"3.15.1\"}",
                                     (const unsigned char *)config, wb };
    size_t lens[3] = { 27, strlen(config), wl };
    int r = zip_write(path, 3, names, data, lens);
    free(wb);
    return r;
}

/* Runs `effcam ARGS`; status as run(). With a memory limit, the child is put
 * in a fresh cgroup v1 memory group first; *peak gets its peak usage (bytes),
 * or -1 when no group could be made (then it runs unlimited). */
static run_result run_limited(const char *args, long long limit, long long *peak)
{
    char cg[256] = "", f[300];
    *peak = -1;
    if (limit > 0) {
        snprintf(cg, sizeof cg, "/sys/fs/cgroup/memory/effcam-test-%d", (int)getpid());
        if (mkdir(cg, 0755) != 0) cg[0] = 0;
        else {
            snprintf(f, sizeof f, "%s/memory.limit_in_bytes", cg);
            FILE *fp = fopen(f, "w");
            if (!fp || fprintf(fp, "%lld", limit) < 0 || fclose(fp) != 0) { rmdir(cg); cg[0] = 0; }
        }
    }
    run_result r = { -1, NULL, NULL };
    char cmd[8192], o[1024], e[1024];
    snprintf(o, sizeof o, "%s/run.out", t_tmp());
    snprintf(e, sizeof e, "%s/run.err", t_tmp());
    snprintf(cmd, sizeof cmd, "exec timeout -s KILL 120 '%s' %s >'%s' 2>'%s' </dev/null", t_bin(), args, o, e);
    pid_t pid = fork();
    if (pid == 0) {
        if (cg[0]) {
            snprintf(f, sizeof f, "%s/cgroup.procs", cg);
            FILE *fp = fopen(f, "w");
            if (fp) fprintf(fp, "%d\n", (int)getpid()), fclose(fp);
        }
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int st;
    if (pid > 0 && waitpid(pid, &st, 0) == pid) {
        if (WIFEXITED(st)) r.status = WEXITSTATUS(st);
        else if (WIFSIGNALED(st)) r.status = 128 + WTERMSIG(st);
    }
    if (cg[0]) {
        snprintf(f, sizeof f, "%s/memory.max_usage_in_bytes", cg);
        char *u = t_slurp(f, NULL);
        if (u) *peak = atoll(u), free(u);
        rmdir(cg);
    }
    r.out = t_slurp(o, NULL);
    r.err = t_slurp(e, NULL);
    if (!r.out) r.out = calloc(1, 1);
    if (!r.err) r.err = calloc(1, 1);
    return r;
}

/* Nothing but dot files in dir. */
static int dir_empty(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    while (d && (de = readdir(d)))
        if (de->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n == 0;
}

/* Converts in into a fresh directory; expects exit 2, one line naming in and
 * holding want, nothing left in the directory. */
static void expect_refused(const char *name, const char *in, const char *extra, const char *want)
{
    char od[1024], args[4096], t[512];
    snprintf(od, sizeof od, "%s/hostile_out", t_tmp());
    mkdir(od, 0755);
    snprintf(args, sizeof args, "convert '%s' -o '%s/out.ecm' %s", in, od, extra ? extra : "");
    long long peak;
    run_result r = run_limited(args, 0, &peak);   /* killed after 120 s: a hang fails (status 137) */
    size_t lines = 0;
    for (const char *p = r.err; *p; p++) lines += *p == '\n';
    snprintf(t, sizeof t, "hostile: %s", name);
    T_CHECK(t, r.status == 2 && lines == 1 && strstr(r.err, in) && strstr(r.err, want) && dir_empty(od),
            "status %d, %zu lines, output dir %s, stderr: %.300s (want '%s')", r.status, lines,
            dir_empty(od) ? "empty" : "NOT empty", r.err, want);
    run_free(&r);
    char rm[1100];
    snprintf(rm, sizeof rm, "rm -rf '%s'", od);
    if (system(rm)) { /* best effort */ }
}

/* The small model every weight case starts from: 8x8x3 -> conv 3x3 (4) + bias ->
 * BatchNorm -> conv 1x1 (4, stored float16) -> depthwise 1x1 -> global average
 * pool -> Dense (2, softmax). (The first conv, the depthwise - the Grad-CAM
 * layer, the last conv - and the Dense stay float32: cv_graph_keep_f32_ends.) */
static const char small_config[] =
    "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"small\", \"layers\": ["
    "{\"class_name\": \"InputLayer\", \"config\": {\"name\": \"in\", \"batch_shape\": [null, 8, 8, 3]}},"
    "{\"class_name\": \"Conv2D\", \"config\": {\"name\": \"conv\", \"filters\": 4, \"kernel_size\": [3, 3],"
    " \"padding\": \"same\", \"use_bias\": true}},"
    "{\"class_name\": \"BatchNormalization\", \"config\": {\"name\": \"bn\", \"epsilon\": EPS}},"
    "{\"class_name\": \"Conv2D\", \"config\": {\"name\": \"conv2\", \"filters\": 4, \"kernel_size\": 1,"
    " \"use_bias\": false}},"
    "{\"class_name\": \"DepthwiseConv2D\", \"config\": {\"name\": \"dw\", \"kernel_size\": 1, \"use_bias\": false}},"
    "{\"class_name\": \"GlobalAveragePooling2D\", \"config\": {\"name\": \"gap\"}},"
    "{\"class_name\": \"Dense\", \"config\": {\"name\": \"fc\", \"units\": 2, \"activation\": \"softmax\"}}]}}";

enum { W_KERNEL, W_BIAS, W_GAMMA, W_BETA, W_MEAN, W_VAR, W_K2, W_FC, W_FCB, W_DW, W_N };
static const int w_elems[W_N] = { 108, 4, 4, 4, 4, 4, 16, 8, 2, 4 };

typedef struct {
    const char *eps;        /* BatchNorm epsilon as JSON text */
    int which;              /* tensor to poison, -1 none */
    float value;            /* the value put at its element 1 */
    int type;               /* H5W_* of that tensor (float32 otherwise) */
    int unwritten;          /* that tensor never written (with a fill value of 5) */
} small_case;

static int write_small(const char *path, const small_case *c)
{
    static float w[W_N][108];
    memset(w, 0, sizeof w);
    double w64[108];
    int32_t wi[108];
    uint64_t wu[108];
    for (int t = 0; t < W_N; t++)
        for (int i = 0; i < w_elems[t]; i++) w[t][i] = t == W_VAR || t == W_GAMMA ? 1.0f + 0.01f * i : 0.01f * (i % 7) - 0.03f;
    if (c->which >= 0) w[c->which][1] = c->value;
    h5w_dset d[W_N];
    static const uint64_t dims[W_N][4] = { { 3, 3, 3, 4 }, { 4 }, { 4 }, { 4 }, { 4 }, { 4 }, { 1, 1, 4, 4 }, { 4, 2 }, { 2 },
                                           { 1, 1, 4, 1 } };
    static const int rank[W_N] = { 4, 1, 1, 1, 1, 1, 4, 2, 1, 4 };
    for (int t = 0; t < W_N; t++) {
        d[t] = (h5w_dset){ .rank = rank[t], .type = H5W_F32, .data = w[t] };
        memcpy(d[t].dims, dims[t], sizeof dims[t]);
    }
    if (c->which >= 0 && c->type != H5W_F32) {
        int n = w_elems[c->which];
        d[c->which].type = c->type;
        for (int i = 0; i < n; i++) w64[i] = w[c->which][i], wi[i] = (int32_t)i, wu[i] = (uint64_t)i;
        if (c->type == H5W_F64) w64[1] = 1e300;
        d[c->which].data = c->type == H5W_F64 ? (const void *)w64 : c->type == H5W_I32 ? (const void *)wi : (const void *)wu;
    }
    if (c->which >= 0 && c->unwritten) {
        d[c->which].data = NULL;
        d[c->which].fill = 1;
        d[c->which].fill_value = 5.0f;
    }
    kvars layers[5] = { { "conv2d", 2, { d[W_KERNEL], d[W_BIAS] } },
                        { "batch_normalization", 4, { d[W_GAMMA], d[W_BETA], d[W_MEAN], d[W_VAR] } },
                        { "conv2d_1", 1, { d[W_K2] } },
                        { "depthwise_conv2d", 1, { d[W_DW] } },
                        { "dense", 2, { d[W_FC], d[W_FCB] } } };
    char cfg[2048];
    const char *at = strstr(small_config, "EPS");
    snprintf(cfg, sizeof cfg, "%.*s%s%s", (int)(at - small_config), small_config, c->eps ? c->eps : "0.001", at + 3);
    return write_keras(path, cfg, 5, layers);
}

static void hostile_weights(void)
{
    char in[1024], out[1024], args[4096];
    snprintf(in, sizeof in, "%s/small.keras", t_tmp());
    snprintf(out, sizeof out, "%s/small.ecm", t_tmp());
    /* the unpoisoned model converts and predicts finite probabilities */
    small_case ok = { NULL, -1, 0, H5W_F32, 0 };
    write_small(in, &ok);
    snprintf(args, sizeof args, "convert '%s' -o '%s'", in, out);
    run_result r = run(args);
    int conv_ok = r.status == 0;
    run_free(&r);
    snprintf(args, sizeof args, "predict '%s' '%s/images/small_120x90.jpg' --json", out, t_local());
    r = run(args);
    T_CHECK("hostile: the small model built here converts and predicts", conv_ok && r.status == 0 && strstr(r.out, "\"probabilities\"") &&
            !strstr(r.out, "nan"), "convert %s, predict %d: %.300s %.300s", conv_ok ? "ok" : "failed", r.status, r.out, r.err);
    run_free(&r);
    unlink(out);

    /* NaN reached the answer: convert exited 0 and predict printed NaN */
    static const struct { const char *name; small_case c; const char *want; } cases[] = {
        { "NaN in a conv kernel", { NULL, W_KERNEL, NAN, H5W_F32, 0 }, "conv/kernel: element 1 is nan" },
        { "infinity in a Dense bias", { NULL, W_FCB, INFINITY, H5W_F32, 0 }, "fc/bias: element 1 is inf" },
        { "infinity in a conv bias (folded into the BatchNorm shift)", { NULL, W_BIAS, INFINITY, H5W_F32, 0 },
          "node 1 (bn): channel 1 folds to scale 1.00449, shift inf" },
        { "float64 kernel of 1e300", { NULL, W_KERNEL, 0, H5W_F64, 0 }, "conv/kernel: element 1 is inf" },
        { "moving_variance < 0", { NULL, W_VAR, -0.5f, H5W_F32, 0 }, "moving_variance[1] = -0.5" },
        { "epsilon 0 with variance 0", { "0", W_VAR, 0.0f, H5W_F32, 0 }, "channel 1 folds to scale inf" },
        { "int32 kernel", { NULL, W_KERNEL, 0, H5W_I32, 0 }, "weight kernel is stored as 4-byte integers" },
        { "uint64 kernel", { NULL, W_KERNEL, 0, H5W_U64, 0 }, "weight kernel is stored as 8-byte integers" },
        { "kernel never written (fill value 5)", { NULL, W_KERNEL, 0, H5W_F32, 1 }, "never written" },
        { "float16 overflow (1e5 in a kernel stored as fp16)", { NULL, W_K2, 1e5f, H5W_F32, 0 },
          "conv2/kernel: element 1 = 100000 does not fit float16" },
        /* configs the loader refused while convert accepted them: same messages */
        { "BatchNorm epsilon < 0", { "-0.5", -1, 0, H5W_F32, 0 }, "node 1 (bn): epsilon -0.5 is not a finite non-negative number" },
        { "BatchNorm epsilon 1e400", { "1e400", -1, 0, H5W_F32, 0 }, "node 1 (bn): epsilon inf is not a finite non-negative number" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_small(in, &cases[i].c);
        expect_refused(cases[i].name, in, NULL, cases[i].want);
    }
    unlink(in);
}

/* A Functional config: input 1x1x3, then n ReLU layers in a chain, listed in
 * config order (reverse = 0) or reversed; the last one is the output. */
static char *chain_config(int n, int reverse)
{
    size_t cap = (size_t)n * 200 + 1024, len = 0;
    char *s = malloc(cap);
    len += (size_t)snprintf(s + len, cap - len, "{\"class_name\": \"Functional\", \"config\": {\"name\": \"chain\", \"layers\": [");
    for (int k = 0; k <= n; k++) {
        int i = reverse ? n - k : k;
        if (i == 0)
            len += (size_t)snprintf(s + len, cap - len, "%s{\"class_name\": \"InputLayer\", \"name\": \"r0\", \"config\": "
                                    "{\"name\": \"r0\", \"batch_shape\": [null, 1, 1, 3]}, \"inbound_nodes\": []}", k ? "," : "");
        else
            len += (size_t)snprintf(s + len, cap - len, "%s{\"class_name\": \"ReLU\", \"name\": \"r%d\", \"config\": {\"name\": \"r%d\"},"
                                    " \"inbound_nodes\": [[[\"r%d\", 0, 0, {}]]]}", k ? "," : "", i, i, i - 1);
    }
    snprintf(s + len, cap - len, "], \"input_layers\": [[\"r0\", 0, 0]], \"output_layers\": [[\"r%d\", 0, 0]]}}", n);
    return s;
}

static void hostile_configs(void)
{
    char in[1024];
    snprintf(in, sizeof in, "%s/cfg.keras", t_tmp());
    /* Quadratic/cubic work at the layer limit: 5000 layers in reverse order took
     * 125 s (10000: 756 s); in order 0.03 s. Now one pass either way. */
    for (int rev = 0; rev < 2; rev++) {
        char *cfg = chain_config(10000, rev), args[2048], name[128];
        write_keras(in, cfg, 0, NULL);
        free(cfg);
        snprintf(args, sizeof args, "convert '%s' -o '%s/chain.ecm'", in, t_tmp());
        double t0 = child_cpu_s();
        run_result r = run(args);
        double dt = child_cpu_s() - t0;
        /* a generous bound (sanitizer build): the old code took minutes */
        snprintf(name, sizeof name, "hostile: 10000-layer chain listed %s converts in linear time (%.2f s CPU)",
                 rev ? "in reverse" : "in order", dt);
        T_CHECK(name, r.status == 0 && dt < 30, "status %d after %.1f s: %.300s", r.status, dt, r.err);
        run_free(&r);
    }
    /* 60000 Dense layers whose weights sit in one compact (latest-format)
     * "layers" group: every lookup scanned all its link messages, and the one
     * cached header was evicted between layers (40000 layers: 10.5 s of CPU,
     * growing as the square; now 0.3 s). */
    {
        int nd = 60000;
        size_t cap = (size_t)nd * 100 + 1000, len = 0;
        char *cfg = malloc(cap), args[2048], name[160];
        len += (size_t)snprintf(cfg + len, cap - len, "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"m\", \"layers\": "
                                "[{\"class_name\": \"InputLayer\", \"config\": {\"name\": \"in\", \"batch_shape\": [null, 1, 1, 3]}}");
        for (int i = 0; i < nd; i++)
            len += (size_t)snprintf(cfg + len, cap - len, ",{\"class_name\": \"Dense\", \"config\": {\"name\": \"d%d\", \"units\": 3}}", i);
        snprintf(cfg + len, cap - len, "]}}");
        static const float eye[9] = { 1, 0, 0, 0, 1, 0, 0, 0, 1 }, zero[3] = { 0, 0, 0 };
        kvars *kv = calloc((size_t)nd, sizeof *kv);
        char (*paths)[24] = calloc((size_t)nd, sizeof *paths);
        for (int i = 0; i < nd; i++) {
            if (i) snprintf(paths[i], sizeof paths[i], "dense_%d", i);
            else snprintf(paths[i], sizeof paths[i], "dense");
            kv[i] = (kvars){ paths[i], 2, { { .rank = 2, .dims = { 3, 3 }, .type = H5W_F32, .data = eye },
                                            { .rank = 1, .dims = { 3 }, .type = H5W_F32, .data = zero } } };
        }
        write_keras(in, cfg, nd, kv);
        free(cfg), free(kv), free(paths);
        snprintf(args, sizeof args, "convert '%s' -o '%s/dense.ecm'", in, t_tmp());
        double t0 = child_cpu_s();
        run_result r = run(args);
        double dt = child_cpu_s() - t0;
        snprintf(name, sizeof name, "hostile: 60000 Dense layers in one compact weights group convert in linear time (%.2f s CPU)", dt);
        T_CHECK(name, r.status == 0 && dt < 10, "status %d after %.1f s: %.300s", r.status, dt, r.err);
        run_free(&r);
        snprintf(args, sizeof args, "%s/dense.ecm", t_tmp());
        unlink(args);
    }
    static const struct { const char *name, *config, *want; } cases[] = {
        { "two layers of one name (Keras forbids it; the last one won)",
          "{\"class_name\": \"Functional\", \"config\": {\"name\": \"m\", \"layers\": ["
          "{\"class_name\": \"InputLayer\", \"config\": {\"name\": \"in\", \"batch_shape\": [null, 1, 1, 3]}, \"inbound_nodes\": []},"
          "{\"class_name\": \"ReLU\", \"config\": {\"name\": \"a\"}, \"inbound_nodes\": [[[\"in\", 0, 0, {}]]]},"
          "{\"class_name\": \"Softmax\", \"config\": {\"name\": \"a\"}, \"inbound_nodes\": [[[\"in\", 0, 0, {}]]]}],"
          " \"output_layers\": [[\"a\", 0, 0]]}}",
          "two layers are named a" },
        { "a NUL character in a layer name",
          "{\"class_name\": \"Functional\", \"config\": {\"name\": \"m\", \"layers\": ["
          "{\"class_name\": \"InputLayer\", \"config\": {\"name\": \"in\", \"batch_shape\": [null, 1, 1, 3]}, \"inbound_nodes\": []},"
          "{\"class_name\": \"ReLU\", \"config\": {\"name\": \"a\\u0000x\"}, \"inbound_nodes\": [[[\"in\", 0, 0, {}]]]},"
          "{\"class_name\": \"Softmax\", \"config\": {\"name\": \"a\"}, \"inbound_nodes\": [[[\"in\", 0, 0, {}]]]}],"
          " \"output_layers\": [[\"a\", 0, 0]]}}",
          "its name contains a NUL character" },
        { "a model whose output is its input",
          "{\"class_name\": \"Functional\", \"config\": {\"name\": \"m\", \"layers\": ["
          "{\"class_name\": \"InputLayer\", \"config\": {\"name\": \"in\", \"batch_shape\": [null, 1, 1, 3]}, \"inbound_nodes\": []},"
          "{\"class_name\": \"ReLU\", \"config\": {\"name\": \"a\"}, \"inbound_nodes\": [[[\"in\", 0, 0, {}]]]}],"
          " \"output_layers\": [[\"in\", 0, 0]]}}",
          "model output is its input" },
        { "Rescaling scale 1e39 (beyond float32)",
          "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"m\", \"layers\": ["
          "{\"class_name\": \"InputLayer\", \"config\": {\"name\": \"in\", \"batch_shape\": [null, 4, 4, 3]}},"
          "{\"class_name\": \"Rescaling\", \"config\": {\"name\": \"rs\", \"scale\": 1e39, \"offset\": 0}},"
          "{\"class_name\": \"GlobalAveragePooling2D\", \"config\": {\"name\": \"gap\"}}]}}",
          "node 0 (rs): scale inf / offset 0 not finite" },
        { "stride 100000",
          "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"m\", \"layers\": ["
          "{\"class_name\": \"InputLayer\", \"config\": {\"name\": \"in\", \"batch_shape\": [null, 4, 4, 3]}},"
          "{\"class_name\": \"DepthwiseConv2D\", \"config\": {\"name\": \"dw\", \"kernel_size\": 1, \"strides\": 100000,"
          " \"padding\": \"same\", \"use_bias\": false}},"
          "{\"class_name\": \"GlobalAveragePooling2D\", \"config\": {\"name\": \"gap\"}}]}}",
          "node 0 (dw): kernel/stride/padding field 2 is 100000" },
        /* UBSan: signed overflow multiplying the target shape (the sanitizer run catches it) */
        { "Reshape to [2^30, 2^30, 2^30]",
          "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"m\", \"layers\": ["
          "{\"class_name\": \"InputLayer\", \"config\": {\"name\": \"in\", \"batch_shape\": [null, 2, 2, 3]}},"
          "{\"class_name\": \"Reshape\", \"config\": {\"name\": \"rs\", \"target_shape\": [1073741824, 1073741824, 1073741824]}},"
          "{\"class_name\": \"GlobalAveragePooling2D\", \"config\": {\"name\": \"gap\"}}]}}",
          "target_shape has a different element count" },
        /* 4: 1.5 GB of activations (3 GB with Grad-CAM) from a 1 KB model: predict was OOM-killed */
        { "ZeroPadding2D to 8009x8015x3, then a 1x1 conv",
          "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"m\", \"layers\": ["
          "{\"class_name\": \"InputLayer\", \"config\": {\"name\": \"in\", \"batch_shape\": [null, 8, 8, 3]}},"
          "{\"class_name\": \"ZeroPadding2D\", \"config\": {\"name\": \"pad\", \"padding\": [[4000, 4001], [4003, 4004]]}},"
          "{\"class_name\": \"DepthwiseConv2D\", \"config\": {\"name\": \"dw\", \"kernel_size\": 1, \"use_bias\": false}},"
          "{\"class_name\": \"GlobalAveragePooling2D\", \"config\": {\"name\": \"gap\"}}]}}",
          "model needs 1470 MiB of activations, over the limit of 1024 MiB" },
    };
    float ones[3] = { 1, 1, 1 };
    kvars dw = { "depthwise_conv2d", 1, { { .rank = 4, .dims = { 1, 1, 3, 1 }, .type = H5W_F32, .data = ones } } };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_keras(in, cases[i].config, strstr(cases[i].config, "Depthwise") ? 1 : 0, &dw);
        expect_refused(cases[i].name, in, NULL, cases[i].want);
    }
    unlink(in);
}

/* 5: small files claiming huge tensors, converted under a 200 MB memory cgroup. */
static void hostile_memory(void)
{
    char in[1024], args[4096], t[512];
    snprintf(in, sizeof in, "%s/big.keras", t_tmp());
    /* A kernel of 64x64x3x21845 elements (just under --max-tensor-elems) never
     * written: convert allocated ~1.6 GB and wrote a 1.07 GB file from 2 KB. */
    const char *cfg1 =
        "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"m\", \"layers\": ["
        "{\"class_name\": \"InputLayer\", \"config\": {\"name\": \"in\", \"batch_shape\": [null, 64, 64, 3]}},"
        "{\"class_name\": \"Conv2D\", \"config\": {\"name\": \"c\", \"filters\": 21845, \"kernel_size\": 64, \"strides\": 64,"
        " \"use_bias\": false}},"
        "{\"class_name\": \"GlobalAveragePooling2D\", \"config\": {\"name\": \"gap\"}}]}}";
    kvars k1 = { "conv2d", 1, { { .rank = 4, .dims = { 64, 64, 3, 21845 }, .type = H5W_F32 } } };
    /* A Dense kernel of 8192x8192 in one gzip chunk of a few KB: 267 MB of RSS. */
    const char *cfg2 =
        "{\"class_name\": \"Sequential\", \"config\": {\"name\": \"m\", \"layers\": ["
        "{\"class_name\": \"InputLayer\", \"config\": {\"name\": \"in\", \"batch_shape\": [null, 1, 1, 3]}},"
        "{\"class_name\": \"Dense\", \"config\": {\"name\": \"d1\", \"units\": 8192, \"use_bias\": false}},"
        "{\"class_name\": \"Dense\", \"config\": {\"name\": \"d2\", \"units\": 8192, \"use_bias\": false}}]}}";
    static float d1w[3 * 8192];
    unsigned char zeros[4096] = { 0 }, zs[256];
    uLongf zl = sizeof zs;
    compress2(zs, &zl, zeros, sizeof zeros, 9);
    kvars k2[2] = { { "dense", 1, { { .rank = 2, .dims = { 3, 8192 }, .type = H5W_F32, .data = d1w } } },
                    { "dense_1", 1, { { .rank = 2, .dims = { 8192, 8192 }, .type = H5W_F32, .chunked = 1,
                                        .cdims = { 8192, 8192 }, .deflate = 1, .raw_chunk = zs, .raw_chunk_len = zl } } } };
    for (int k = 0; k < 2; k++) {
        if (k == 0) write_keras(in, cfg1, 1, &k1);
        else write_keras(in, cfg2, 2, k2);
        struct stat st;
        stat(in, &st);
        char od[1024];
        snprintf(od, sizeof od, "%s/mem_out", t_tmp());
        mkdir(od, 0755);
        snprintf(args, sizeof args, "convert '%s' -o '%s/out.ecm'", in, od);
        long long peak;
        run_result r = run_limited(args, 200ll << 20, &peak);
        const char *want = k == 0 ? "never written" : "cannot hold";
        snprintf(t, sizeof t, "hostile: %lld-byte .keras claiming %s (%s)", (long long)st.st_size,
                 k == 0 ? "a never-written 268 M-element kernel" : "a 64 M-element gzip chunk",
                 peak < 0 ? "no memory cgroup here: unlimited" : "under a 200 MB memory cgroup");
        T_CHECK(t, r.status == 2 && strstr(r.err, want) && dir_empty(od), "status %d (137: killed), peak %lld MB: %.300s",
                r.status, peak >> 20, r.err);
        if (peak >= 0) printf("# %s: peak memory %.1f MB\n", k == 0 ? "never-written kernel" : "gzip chunk", peak / 1e6);
        run_free(&r);
        rmdir(od);
    }
    unlink(in);
}

/* 2: labels. */
static void hostile_labels(void)
{
    char src[1024], lb[1024], extra[2048];
    snprintf(src, sizeof src, "%s/models/tiny_v2s_64.keras", t_local());
    /* /dev/zero: NUL-filled lines counted as blank and EOF never came (a hang) */
    expect_refused("--labels /dev/zero", src, "--labels /dev/zero", "labels: not a regular file");
    snprintf(lb, sizeof lb, "%s/labels_fifo", t_tmp());
    unlink(lb);
    if (mkfifo(lb, 0600) == 0) {
        snprintf(extra, sizeof extra, "--labels '%s'", lb);
        expect_refused("--labels a FIFO (no writer)", src, extra, "labels: not a regular file");
        unlink(lb);
    }
    snprintf(extra, sizeof extra, "--labels '%s'", t_tmp());
    expect_refused("--labels a directory", src, extra, "is a directory");
    snprintf(lb, sizeof lb, "%s/labels_nul.txt", t_tmp());
    write_all(lb, "a\nb\nc\nd\0e\nf\ng\nh\n", 17);
    snprintf(extra, sizeof extra, "--labels '%s'", lb);
    expect_refused("labels with a NUL byte (truncated a label)", src, extra, "line 4: NUL byte");
    /* a byte order mark (Windows editors) stayed in the first label */
    const char seven[] = "\xEF\xBB\xBF" "akiec\r\nbcc\r\nbkl\r\ndf\r\nmel\r\nnv\r\nvasc\r\n";
    write_all(lb, seven, sizeof seven - 1);
    char out[1024], args[4096];
    snprintf(out, sizeof out, "%s/bom.ecm", t_tmp());
    snprintf(args, sizeof args, "convert '%s' -o '%s' --labels '%s'", src, out, lb);
    run_result r = run(args);
    run_free(&r);
    snprintf(args, sizeof args, "info '%s' --json", out);
    r = run(args);
    js_doc *doc = NULL;
    const js_value *root = NULL;
    char err[128];
    const char *l0 = NULL, *l6 = NULL;
    if (!js_parse(r.out, strlen(r.out), 64, &doc, &root, err, sizeof err)) {
        l0 = js_str(js_at(js_get(root, "labels"), 0));
        l6 = js_str(js_at(js_get(root, "labels"), 6));
    }
    T_CHECK("hostile: labels with a UTF-8 byte order mark and CRLF", l0 && !strcmp(l0, "akiec") && l6 && !strcmp(l6, "vasc"),
            "first label '%s', last '%s' (status %d %s)", l0 ? l0 : "?", l6 ? l6 : "?", r.status, r.err);
    js_doc_free(doc);
    run_free(&r);
    unlink(out);
    unlink(lb);
}

/* 5: the writer killed in the middle (SIGKILL, as the OOM killer does) left
 * OUT.ecm.tmpXXXXXX behind. The graph's loader stops the child for good. */
static int load_then_stop(void *ctx, const cv_tensor *t, float *dst, size_t n, cv_err *e)
{
    (void)ctx, (void)t, (void)e;
    memset(dst, 0, n * sizeof *dst);
    raise(SIGSTOP);
    return 0;
}

static void hostile_kill(void)
{
    char od[1024], path[1100];
    snprintf(od, sizeof od, "%s/kill_out", t_tmp());
    mkdir(od, 0755);
    snprintf(path, sizeof path, "%s/out.ecm", od);
    pid_t pid = fork();
    if (pid == 0) {
        cv_graph g;
        cv_graph_init(&g);
        int x = cv_graph_add_value(&g, "input", 1, 1, 3), y = cv_graph_add_value(&g, "fc", 1, 1, 2);
        int64_t kd[2] = { 3, 2 };
        int t = cv_graph_add_tensor(&g, "fc/kernel", 2, kd);
        cv_node *n = cv_graph_add_node(&g, ECM_OP_DENSE, "fc");
        n->n_in = 1, n->in[0] = x, n->out = y, n->n_w = 2, n->w[0] = t;
        g.input_value = x, g.output_value = y;
        g.load = load_then_stop;
        cv_err e = { "" };
        if (cv_graph_set_labels(&g, NULL, &e)) _exit(3);
        _exit(cv_ecm_write(&g, path, &e) ? 2 : 0);
    }
    int st = 0, stopped = 0;
    if (pid > 0 && waitpid(pid, &st, WUNTRACED) == pid && WIFSTOPPED(st)) {
        stopped = 1;
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    T_CHECK("hostile: convert killed (SIGKILL) while writing leaves no temporary file", stopped && dir_empty(od),
            "%s", stopped ? "a file was left in the output directory" : "the writer never reached the weights");
    char rm[1100];
    snprintf(rm, sizeof rm, "rm -rf '%s'", od);
    if (system(rm)) { /* best effort */ }
}

int main(void)
{
    check_fixture_set(t_local());
    if (t_shared()) check_fixture_set(t_shared());
    else t_skip("shared fixtures (EfficientNetV2-B0, V2-S)", "../shared/fixtures not found; set EFFCAM_FIXTURES");
    bad_inputs(t_local());
    hostile_weights();
    hostile_configs();
    hostile_memory();
    hostile_labels();
    hostile_kill();
    return t_failed;
}
