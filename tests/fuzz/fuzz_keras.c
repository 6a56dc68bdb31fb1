/* fuzz_keras.c - libFuzzer target for the Keras config -> graph builder.
 *
 * The input is the text of a config.json, zipped with real weights into a
 * .keras archive held in a memfd:
 *
 *   metadata.json | model.weights.h5 (STORED)   written once
 *   config.json (STORED) | central directory    rewritten for every input
 *
 * There are two such archives. Inputs under 16 KiB (the hand-written seeds
 * in seeds/keras: a Sequential, Functional graphs in both inbound formats, a
 * nested model) get data/small.weights.h5, which holds exactly their layers'
 * variables (stem_conv, stem_bn, predictions; the Dense kernel chunked and
 * deflated) and keeps an execution cheap. Larger inputs (whole EfficientNet
 * configs) get the weights of a fixture: the model.weights.h5 member of
 * EC_FUZZ_KERAS, default tests/fixtures/models/tiny_v2s_64.keras, rewritten
 * once at start-up (tests/h5_write.h) with the same groups, string attributes
 * and dataset shapes but zeros, each dataset one deflated chunk: 2 MB become
 * a few KB, so an execution no longer checksums and reads megabytes. Paths are
 * relative to the repository root.
 *
 * Each input then goes through cv_keras_open("/proc/self/fd/N") exactly as a
 * user's file would, under per-input limits that keep an execution cheap
 * (4 M elements per tensor, 2000 layers, 64 MiB of activations); on success
 * tensors are streamed through g.load (the weights the converter would write)
 * until 256 K elements have been read.
 *
 *   build/fuzz/fuzz_keras -max_len=262144 -dict=tests/fuzz/keras.dict \
 *     CORPUS_DIR tests/fuzz/seeds/keras
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include "convert/cv.h"
#include "convert/hdf5.h"
#include "convert/zip.h"
#include "tests/h5_write.h"

#define FUZZ_MAX_ELEMS ((int64_t)1 << 22)
#define FUZZ_LOAD_BUDGET ((int64_t)1 << 18)

static const char metadata[] = "{\"keras_version\": \"3.6.0\", \"date_saved\": \"2024-01-01@00:00:00\"}";

/* One member of the archive we write. */
typedef struct {
    const char *name;
    uint32_t crc, size, lho;
} member;

/* The archive being written (one of arcs[], swapped in per input). */
static int fd = -1;
static char fd_path[64];
static member mem[3];           /* metadata.json, model.weights.h5, config.json */
static uint32_t config_lho;     /* where config.json's local header goes */

#define SMALL_CONFIG (16u << 10)
typedef struct {
    int fd;
    char path[64];
    member mem[3];
    uint32_t config_lho;
} archive;
static archive arcs[2];         /* 0: small weights, 1: the fixture's */
static float *tensor_buf;       /* FUZZ_MAX_ELEMS floats */

static void put16(unsigned char *p, unsigned v) { p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8); }
static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void die(const char *what)
{
    fprintf(stderr, "fuzz_keras: %s\n", what);
    exit(1);
}

static void pwrite_all(const void *p, size_t n, uint64_t off)
{
    const unsigned char *b = p;
    while (n > 0) {
        ssize_t w = pwrite(fd, b, n, (off_t)off);
        if (w <= 0) die("write to memfd failed");
        b += w, n -= (size_t)w, off += (uint64_t)w;
    }
}

static uint32_t crc_of(const void *p, size_t n)
{
    return (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, (uInt)n);   /* n < 4 GiB: checked by callers */
}

/* Local header + data of a STORED member at m->lho; returns the end offset. */
static uint64_t write_local(const member *m, const void *data)
{
    unsigned char h[30] = { 0 };
    size_t nl = strlen(m->name);
    put32(h, 0x04034b50u);
    put16(h + 4, 20);                      /* version needed */
    put16(h + 12, 0x21);                   /* 1980-01-01 */
    put32(h + 14, m->crc);
    put32(h + 18, m->size);
    put32(h + 22, m->size);
    put16(h + 26, (unsigned)nl);
    pwrite_all(h, sizeof h, m->lho);
    pwrite_all(m->name, nl, m->lho + sizeof h);
    pwrite_all(data, m->size, m->lho + sizeof h + nl);
    return m->lho + sizeof h + nl + m->size;
}

/* Central directory for the three members at off, then the end record. */
static uint64_t write_directory(uint64_t off)
{
    unsigned char cd[3 * (46 + 32)];
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        unsigned char *h = cd + n;
        size_t nl = strlen(mem[i].name);
        memset(h, 0, 46);
        put32(h, 0x02014b50u);
        put16(h + 4, 20);                  /* version made by */
        put16(h + 6, 20);                  /* version needed */
        put16(h + 14, 0x21);
        put32(h + 16, mem[i].crc);
        put32(h + 20, mem[i].size);
        put32(h + 24, mem[i].size);
        put16(h + 28, (unsigned)nl);
        put32(h + 42, mem[i].lho);
        memcpy(h + 46, mem[i].name, nl);
        n += 46 + nl;
    }
    unsigned char eocd[22] = { 0 };
    put32(eocd, 0x06054b50u);
    put16(eocd + 8, 3);
    put16(eocd + 10, 3);
    put32(eocd + 12, (uint32_t)n);
    put32(eocd + 16, (uint32_t)off);
    pwrite_all(cd, n, off);
    pwrite_all(eocd, sizeof eocd, off + n);
    return off + n + sizeof eocd;
}

/* Reads a whole weights file: a bare .h5, or the model.weights.h5 member of a .keras. */
static unsigned char *read_weights(const char *path, size_t *size)
{
    cv_limits lim = cv_limits_default();
    cv_err e = { "" };
    cv_source s;
    cv_zip *z = NULL;
    size_t n = strlen(path);
    int bare = n > 3 && !strcmp(path + n - 3, ".h5");
    if (bare ? cv_source_open_file(path, &lim, &s, &e)
             : (cv_zip_open(path, &lim, &z, &e) || cv_zip_source(z, "model.weights.h5", &s, &e))) {
        fprintf(stderr, "fuzz_keras: %s: %s (set EC_FUZZ_KERAS to a .keras file, or run from the repository root)\n",
                path, e.msg);
        exit(1);
    }
    if (s.size > (64u << 20)) die("model.weights.h5 is over 64 MiB");
    unsigned char *w = malloc(s.size ? s.size : 1);
    if (!w) die("out of memory");
    if (cv_source_read(&s, 0, w, s.size, &e)) die(e.msg);
    *size = s.size;
    cv_source_close(&s);
    if (z) cv_zip_close(z);
    return w;
}

/* ---- the fixture's weights, rewritten small ---------------------------------------- */

typedef struct {
    cv_h5 *h;
    h5w *w;
    float *zeros;          /* [FUZZ_MAX_ELEMS] */
    int depth;
} rewrite;

static uint64_t rewrite_obj(rewrite *r, cv_h5_obj obj);

typedef struct {
    rewrite *r;
    h5w_group *g;
    cv_h5_obj obj;
} rewrite_ctx;

static int rewrite_attr(void *ctx, const char *name)
{
    rewrite_ctx *x = ctx;
    char **v;
    int n;
    cv_err e;
    if (cv_h5_attr_strings(x->r->h, x->obj, name, &v, &n, &e) == 1) {
        h5w_attr_strings(x->g, name, n, (const char *const *)v, n != 1);
        cv_h5_strings_free(v, n);
    }
    return 0;
}

static int rewrite_link(void *ctx, const char *name, cv_h5_obj obj)
{
    rewrite_ctx *x = ctx;
    h5w_link(x->g, name, rewrite_obj(x->r, obj));
    return 0;
}

/* Writes obj (and, for a group, everything under it) into r->w; its address. */
static uint64_t rewrite_obj(rewrite *r, cv_h5_obj obj)
{
    cv_err e = { "" };
    int g = cv_h5_is_group(r->h, obj, &e);
    if (g < 0 || r->depth > 32) die(e.msg[0] ? e.msg : "weights too deep");
    if (g) {
        h5w_group grp = { 0 };
        rewrite_ctx x = { r, &grp, obj };
        r->depth++;
        if (cv_h5_attr_names(r->h, obj, rewrite_attr, &x, &e) || cv_h5_list(r->h, obj, rewrite_link, &x, &e)) die(e.msg);
        r->depth--;
        return h5w_group_end(r->w, &grp);
    }
    cv_h5_dataset_info info;
    if (cv_h5_dataset_info_get(r->h, obj, &info, &e)) die(e.msg);
    if (info.nelem > (uint64_t)FUZZ_MAX_ELEMS) die("a fixture tensor is over the fuzzing size cap");
    h5w_dset d = { .rank = info.rank, .type = info.is_int ? H5W_I64 : H5W_F32, .data = r->zeros };
    for (int i = 0; i < info.rank; i++) d.dims[i] = d.cdims[i] = info.dims[i];
    /* one deflated chunk of zeros; scalars and empty datasets stay contiguous */
    d.chunked = d.deflate = info.rank > 0 && info.nelem > 0;
    if (info.nelem == 0) d.data = NULL;
    return h5w_dataset(r->w, &d);
}

static unsigned char *rewrite_weights(const unsigned char *weights, size_t size, size_t *out)
{
    int mfd = memfd_create("fuzz_keras.h5", MFD_CLOEXEC);
    if (mfd < 0) die("memfd_create failed");
    for (size_t off = 0; off < size;) {
        ssize_t k = write(mfd, weights + off, size - off);
        if (k <= 0) die("write to memfd failed");
        off += (size_t)k;
    }
    cv_source src = { mfd, 0, size, 0 };
    cv_limits lim = cv_limits_default();
    cv_err e = { "" };
    rewrite r = { NULL, NULL, calloc((size_t)FUZZ_MAX_ELEMS, 8), 0 };
    h5w w;
    h5w_init(&w);
    r.w = &w;
    if (!r.zeros || cv_h5_open(&src, &lim, &r.h, &e)) die(e.msg[0] ? e.msg : "out of memory");
    uint64_t root = rewrite_obj(&r, cv_h5_root(r.h));
    cv_h5_close(r.h);
    close(mfd);
    free(r.zeros);
    return h5w_finish(&w, root, out);
}

/* Writes the fixed part of an archive around these weights into a new memfd. */
static void make_archive(archive *a, const unsigned char *weights, size_t size)
{
    fd = memfd_create("fuzz_keras.keras", MFD_CLOEXEC);
    if (fd < 0) die("memfd_create failed");
    snprintf(fd_path, sizeof fd_path, "/proc/self/fd/%d", fd);
    mem[0] = (member){ "metadata.json", crc_of(metadata, sizeof metadata - 1), sizeof metadata - 1, 0 };
    uint64_t off = write_local(&mem[0], metadata);
    mem[1] = (member){ "model.weights.h5", crc_of(weights, size), (uint32_t)size, (uint32_t)off };
    config_lho = (uint32_t)write_local(&mem[1], weights);
    mem[2] = (member){ "config.json", 0, 0, config_lho };
    a->fd = fd;
    memcpy(a->path, fd_path, sizeof fd_path);
    memcpy(a->mem, mem, sizeof mem);
    a->config_lho = config_lho;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *paths[2] = { "tests/fuzz/data/small.weights.h5", getenv("EC_FUZZ_KERAS") };
    if (!paths[1] || !*paths[1]) paths[1] = "tests/fixtures/models/tiny_v2s_64.keras";
    for (int i = 0; i < 2; i++) {
        size_t size = 0;
        unsigned char *w = read_weights(paths[i], &size);
        if (i == 1) {
            size_t small = 0;
            unsigned char *z = rewrite_weights(w, size, &small);
            free(w);
            w = z;
            size = small;
        }
        make_archive(&arcs[i], w, size);
        free(w);
    }
    tensor_buf = malloc((size_t)FUZZ_MAX_ELEMS * sizeof *tensor_buf);
    if (!tensor_buf) die("out of memory");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const archive *a = &arcs[size >= SMALL_CONFIG];
    if (a->fd <= 0 || size > (16u << 20)) return 0;
    fd = a->fd;
    memcpy(fd_path, a->path, sizeof fd_path);
    memcpy(mem, a->mem, sizeof mem);
    config_lho = a->config_lho;
    mem[2].crc = crc_of(data, size);
    mem[2].size = (uint32_t)size;
    uint64_t end = write_directory(write_local(&mem[2], data));
    if (ftruncate(fd, (off_t)end)) die("ftruncate failed");

    cv_options opt = { 1, NULL, cv_limits_default() };
    opt.limits.max_tensor_elems = FUZZ_MAX_ELEMS;
    opt.limits.max_layers = 2000;
    opt.limits.max_activation_bytes = (uint64_t)64 << 20;
    cv_graph g;
    cv_keras *k = NULL;
    cv_err e = { "" };
    if (cv_keras_open(fd_path, &opt, &g, &k, &e) != 0) {
        /* A refusal is fine; one without a one-line message is a bug. */
        if (!e.msg[0] || strchr(e.msg, '\n') || k) abort();
        return 0;
    }
    if (g.input_value < 0 || g.input_value >= g.n_values || g.output_value < 0 || g.output_value >= g.n_values)
        abort();
    int64_t loaded = 0;
    for (int i = 0; i < g.n_tensors && loaded < FUZZ_LOAD_BUDGET; i++) {
        const cv_tensor *t = &g.tensors[i];
        int64_t n = cv_tensor_elems(t);
        if (n < 0) abort();
        if (t->data || n > FUZZ_MAX_ELEMS) continue;
        loaded += n;
        if (g.load(g.load_ctx, t, tensor_buf, (size_t)n, &e) != 0 && !e.msg[0]) abort();
    }
    cv_graph_free(&g);
    cv_keras_close(k);
    return 0;
}
