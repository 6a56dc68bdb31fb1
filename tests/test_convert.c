/* test_convert.c - the converter against the Keras fixtures, and its bad-input table.
 *
 * 1. For every fixture model file (tests/fixtures, plus the shared set when
 *    present): the FP32 values the reader extracts for every Keras variable
 *    match weights.<fmt>.json exactly (crc32 of the float32 LE bytes, shape,
 *    Keras variable order); the file converts (fp16 and fp32) and
 *    `effcam info --json` reports the manifest's params.
 * 2. A table of broken inputs: each gives exit status 2, exactly one stderr
 *    line "effcam: FILE: reason", and no output file (nor a leftover temp).
 */
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "json_file.h"

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

int main(void)
{
    check_fixture_set(t_local());
    if (t_shared()) check_fixture_set(t_shared());
    else t_skip("shared fixtures (EfficientNetV2-B0, V2-S)", "../shared/fixtures not found; set EFFCAM_FIXTURES");
    bad_inputs(t_local());
    return t_failed;
}
