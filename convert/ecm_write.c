/* ecm_write.c - serializes a cv_graph into an .ecm file (engine/ecm_format.h).
 *
 * Written atomically: everything goes to an unnamed file in the output's
 * directory (O_TMPFILE), the CRC is patched in last, and only a complete file
 * is given a name (linkat to "<path>.tmpXXXXXX", then renamed onto path).
 * Killed at any moment before that, even by SIGKILL or the OOM killer, the
 * writer leaves nothing behind; a named temporary exists only for the
 * microseconds between the link and the rename. Where O_TMPFILE is not
 * available the file is a named mkstemp temporary from the start, removed on
 * every error (but not after SIGKILL).
 *
 * Tensor data is streamed one tensor at a time (graph->load for tensors not
 * held in memory): memory stays at one tensor's float32 values. Every value
 * is checked on the way: finite, representable in float16 where stored so,
 * and the vectors the loader derives (folded BatchNorm, Normalization
 * reciprocals) finite too, so the file never makes the engine compute NaN. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "cv.h"
#include "engine/ecm_format.h"
#include "kernels/kernels.h"

/* ---- little-endian field writers into a byte buffer ---------------------- */

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static void put_u64(unsigned char *p, uint64_t v)
{
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}

static void put_f32(unsigned char *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    put_u32(p, u);
}

static uint32_t id_or_none(int id) { return id < 0 ? ECM_NONE : (uint32_t)id; }

/* ---- output stream with running CRC -------------------------------------- */

typedef struct {
    FILE *f;
    uLong crc;
    int err;
} ostream;

static void ow(ostream *o, const void *p, size_t n)
{
    if (o->err || n == 0) return;
    if (fwrite(p, 1, n, o->f) != n) o->err = errno ? errno : EIO;
    /* zlib's crc32 takes uInt lengths: feed large buffers in pieces. */
    const unsigned char *b = p;
    while (n > 0) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        o->crc = crc32(o->crc, b, k);
        b += k;
        n -= k;
    }
}

static void ozero(ostream *o, size_t n)
{
    static const unsigned char zeros[ECM_ALIGN];
    while (n > 0) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        ow(o, zeros, k);
        n -= k;
    }
}

/* ---- layout ----------------------------------------------------------------- */

static uint64_t align_up(uint64_t v) { return (v + ECM_ALIGN - 1) & ~(uint64_t)(ECM_ALIGN - 1); }

typedef struct {
    char *blob;
    size_t len, cap;
} strtab;

/* Appends s (NUL-terminated) and returns its id (byte offset), or -1 on OOM. */
static long strtab_add(strtab *st, const char *s)
{
    size_t n = strlen(s) + 1;
    if (st->len + n > st->cap) {
        size_t ncap = st->cap ? st->cap * 2 : 4096;
        while (ncap < st->len + n) ncap *= 2;
        char *p = realloc(st->blob, ncap);
        if (!p) return -1;
        st->blob = p;
        st->cap = ncap;
    }
    memcpy(st->blob + st->len, s, n);
    long id = (long)st->len;
    st->len += n;
    return id;
}

static int check_graph(const cv_graph *g, cv_err *e)
{
    if (g->input_value < 0 || g->input_value >= g->n_values) return cv_fail(e, "graph has no input");
    if (g->output_value < 0 || g->output_value >= g->n_values) return cv_fail(e, "graph has no output");
    if (g->n_labels != g->values[g->output_value].c)
        return cv_fail(e, "graph has %d labels for %d classes", g->n_labels, g->values[g->output_value].c);
    for (int i = 0; i < g->n_nodes; i++) {
        const cv_node *n = &g->nodes[i];
        if (n->out < 0 || n->out >= g->n_values) return cv_fail(e, "node %s: bad output", n->name);
        if (n->n_in < 1 || n->n_in > ECM_MAX_IN) return cv_fail(e, "node %s: bad input count", n->name);
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] < 0 || n->in[k] >= g->n_values) return cv_fail(e, "node %s: bad input", n->name);
        if (n->n_w < 0 || n->n_w > ECM_MAX_W) return cv_fail(e, "node %s: bad weight count", n->name);
        for (int k = 0; k < n->n_w; k++)
            if (n->w[k] >= g->n_tensors) return cv_fail(e, "node %s: bad weight id", n->name);
    }
    return 0;
}

/* ---- the values ------------------------------------------------------------------- */

/* n floats of tensor t into dst: from memory, or through the graph's loader. */
static int load_into(const cv_graph *g, const cv_tensor *t, float *dst, size_t n, cv_err *e)
{
    if (t->data) {
        memcpy(dst, t->data, n * sizeof *dst);
        return 0;
    }
    if (!g->load) return cv_fail(e, "tensor %s has no data", t->name);
    return g->load(g->load_ctx, t, dst, n, e);
}

/* Every weight finite: NaN or infinity in a weight (or a float64 beyond
 * float32's range, read as infinity) only ever turns predictions into NaN. */
static int check_finite(const cv_tensor *t, const float *v, size_t n, cv_err *e)
{
    for (size_t k = 0; k < n; k++)
        if (!isfinite(v[k]))
            return cv_fail(e, "tensor %s: element %zu is %g (weights must be finite float32 values)", t->name, k,
                           (double)v[k]);
    return 0;
}

#define NODE_FAIL(i, fmt, ...) cv_fail(e, "node %d (%s): " fmt, (i), g->nodes[i].name, __VA_ARGS__)

/* The vectors engine/model.c derives at load (ec_derive), computed the same
 * way in float32: statistics that make them NaN or infinite (a negative
 * variance, epsilon 0 with variance 0, a huge gamma) are refused here, with
 * the loader's messages, instead of making every prediction NaN. */
static int check_derived(const cv_graph *g, cv_err *e)
{
    int *producer = malloc((size_t)g->n_values * sizeof *producer);
    float *v = malloc((size_t)5 * ECM_MAX_DIM * sizeof *v);   /* gamma, beta, mean, var, bias [c] */
    int rc = -1;
    if (!producer || !v) { cv_fail(e, "out of memory"); goto out; }
    for (int i = 0; i < g->n_values; i++) producer[i] = -1;
    for (int i = 0; i < g->n_nodes; i++) producer[g->nodes[i].out] = i;
    for (int i = 0; i < g->n_nodes; i++) {
        const cv_node *n = &g->nodes[i];
        if (n->op != ECM_OP_BATCHNORM && n->op != ECM_OP_NORMALIZE) continue;
        int c = g->values[n->out].c;
        float *gamma = v, *beta = v + ECM_MAX_DIM, *mean = v + 2 * ECM_MAX_DIM, *var = v + 3 * ECM_MAX_DIM;
        float *bias = v + 4 * ECM_MAX_DIM;
        int slot_mean = n->op == ECM_OP_BATCHNORM ? 2 : 0, slot_var = n->op == ECM_OP_BATCHNORM ? 3 : 1;
        if (c < 1 || c > ECM_MAX_DIM || n->w[slot_mean] < 0 || n->w[slot_var] < 0) continue;   /* cv_graph_check's */
        if (cv_tensor_elems(&g->tensors[n->w[slot_mean]]) != c || cv_tensor_elems(&g->tensors[n->w[slot_var]]) != c)
            continue;
        if (load_into(g, &g->tensors[n->w[slot_mean]], mean, (size_t)c, e) ||
            load_into(g, &g->tensors[n->w[slot_var]], var, (size_t)c, e))
            goto out;
        const char *vname = n->op == ECM_OP_BATCHNORM ? "moving_variance" : "variance";
        for (int j = 0; j < c; j++)
            if (!(var[j] >= 0) || !isfinite(var[j]) || !isfinite(mean[j])) {
                NODE_FAIL(i, "%s[%d] = %g (mean %g) is not a finite non-negative variance", vname, j, (double)var[j],
                          (double)mean[j]);
                goto out;
            }
        if (n->op == ECM_OP_NORMALIZE) continue;   /* 1 / max(sqrt(var), 1e-7) <= 1e7 */
        const cv_tensor *tg = n->w[0] >= 0 ? &g->tensors[n->w[0]] : NULL, *tb = n->w[1] >= 0 ? &g->tensors[n->w[1]] : NULL;
        if ((tg && cv_tensor_elems(tg) != c) || (tb && cv_tensor_elems(tb) != c)) continue;   /* cv_graph_check's */
        if ((tg && load_into(g, tg, gamma, (size_t)c, e)) || (tb && load_into(g, tb, beta, (size_t)c, e))) goto out;
        int pr = producer[n->in[0]];
        const cv_node *p = pr >= 0 ? &g->nodes[pr] : NULL;
        const cv_tensor *tbias = p && (p->op == ECM_OP_CONV2D || p->op == ECM_OP_DWCONV2D || p->op == ECM_OP_DENSE) &&
                                         p->w[1] >= 0 ? &g->tensors[p->w[1]] : NULL;
        if (tbias && (cv_tensor_elems(tbias) != c || load_into(g, tbias, bias, (size_t)c, e))) tbias = NULL;
        for (int j = 0; j < c; j++) {
            float ga = tg ? gamma[j] : 1.0f, be = tb ? beta[j] : 0.0f;
            /* as ec_derive: (x - mean) * g/sqrt(var+eps) + beta, the bias folded in */
            float scale = ga / sqrtf(var[j] + n->f0), shift = be - mean[j] * scale;
            float fshift = tbias ? bias[j] * scale + shift : 0.0f;
            if (!isfinite(scale) || !isfinite(shift) || !isfinite(fshift)) {
                NODE_FAIL(i, "channel %d folds to scale %g, shift %g (variance %g, epsilon %g): not finite", j,
                          (double)scale, (double)(tbias ? fshift : shift), (double)var[j], (double)n->f0);
                goto out;
            }
        }
    }
    rc = 0;
out:
    free(producer);
    free(v);
    return rc;
}

#undef NODE_FAIL

/* ---- the output file ---------------------------------------------------------------- */

typedef struct {
    int fd;
    int anon;          /* O_TMPFILE: nameless until out_commit */
    char *tmp;         /* the temporary's name (mkstemp fallback, or once linked) */
} out_file;

static char *tmp_name(const char *path)
{
    size_t n = strlen(path);
    char *t = malloc(n + 16);
    if (t) memcpy(t, path, n), memcpy(t + n, ".tmpXXXXXX", 11);
    return t;
}

/* A named temporary next to path (mkstemp), with the usual umask-derived mode. */
static int out_named(const char *path, char **tmp, cv_err *e)
{
    if (!(*tmp = tmp_name(path))) return cv_fail(e, "out of memory");
    int fd = mkostemp(*tmp, O_CLOEXEC);
    if (fd < 0) {
        cv_fail(e, "%s: cannot create: %s", path, strerror(errno));
        free(*tmp);
        *tmp = NULL;
        return -1;
    }
    mode_t um = umask(0);   /* mkstemp makes 0600 */
    umask(um);
    if (fchmod(fd, 0666 & ~um) != 0) { /* not fatal: the file is still usable */ }
    return fd;
}

static int out_open(const char *path, out_file *o, cv_err *e)
{
    memset(o, 0, sizeof *o);
    size_t n = strlen(path);
    const char *slash = strrchr(path, '/');
    char *dir = malloc(n + 2);
    if (!dir) return cv_fail(e, "out of memory");
    if (!slash) strcpy(dir, ".");
    else if (slash == path) strcpy(dir, "/");
    else memcpy(dir, path, (size_t)(slash - path)), dir[slash - path] = 0;
    o->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0666);   /* the umask applies */
    free(dir);
    if (o->fd >= 0) {
        o->anon = 1;
        return 0;
    }
    /* No O_TMPFILE here (old kernel, some filesystems), or no such directory:
     * mkstemp says which. */
    o->fd = out_named(path, &o->tmp, e);
    return o->fd < 0 ? -1 : 0;
}

/* Copies the anonymous file into a named temporary (no /proc to link through). */
static int out_copy(const char *path, out_file *o, cv_err *e)
{
    int fd = out_named(path, &o->tmp, e);
    if (fd < 0) return -1;
    static unsigned char b[1 << 16];
    ssize_t r = 0;
    for (off_t at = 0;;) {
        r = pread(o->fd, b, sizeof b, at);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            if (r < 0) cv_fail(e, "%s: cannot read back the temporary file: %s", path, strerror(errno));
            break;
        }
        for (ssize_t w = 0; w < r;) {
            ssize_t k = write(fd, b + w, (size_t)(r - w));
            if (k < 0 && errno == EINTR) continue;
            if (k < 0) {
                cv_fail(e, "%s: write failed: %s", path, strerror(errno));
                r = -1;
                break;
            }
            w += k;
        }
        if (r < 0) break;
        at += r;
    }
    int bad = r < 0;
    if (close(fd) != 0 && !bad) bad = cv_fail(e, "%s: write failed: %s", path, strerror(errno));
    if (bad) unlink(o->tmp);
    return bad ? -1 : 0;
}

/* Gives the complete file its name: linked under a fresh temporary name in the
 * same directory, then renamed onto path (rename replaces atomically; linkat
 * would not replace an existing file). */
static int out_commit(const char *path, out_file *o, cv_err *e)
{
    if (o->anon) {
        if (!(o->tmp = tmp_name(path))) return cv_fail(e, "out of memory");
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", o->fd);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        unsigned x = (unsigned)getpid() * 2654435761u ^ (unsigned)ts.tv_nsec;
        int linked = 0;
        for (int attempt = 0; attempt < 64 && !linked; attempt++) {
            x = x * 1664525u + 1013904223u;   /* another name if this one exists */
            snprintf(o->tmp + strlen(path), 12, ".tmp%06x", x >> 8);
            if (linkat(AT_FDCWD, proc, AT_FDCWD, o->tmp, AT_SYMLINK_FOLLOW) == 0 ||
                linkat(o->fd, "", AT_FDCWD, o->tmp, AT_EMPTY_PATH) == 0)
                linked = 1;
            else if (errno != EEXIST)
                break;
        }
        if (!linked) {
            free(o->tmp);
            o->tmp = NULL;
            if (out_copy(path, o, e)) return -1;
        }
    }
    if (rename(o->tmp, path) != 0) {
        cv_fail(e, "%s: cannot rename into place: %s", path, strerror(errno));
        unlink(o->tmp);
        return -1;
    }
    return 0;
}

/* ---- writing ------------------------------------------------------------------------ */

int cv_ecm_write(const cv_graph *g, const char *path, cv_err *e)
{
    if (check_graph(g, e) || cv_graph_check(g, e) || check_derived(g, e)) return -1;

    /* String blob: ids for every name, in table order. */
    strtab st = {0};
    long *vname = calloc((size_t)g->n_values + 1, sizeof *vname);
    long *nname = calloc((size_t)g->n_nodes + 1, sizeof *nname);
    long *tname = calloc((size_t)g->n_tensors + 1, sizeof *tname);
    long *lname = calloc((size_t)g->n_labels + 1, sizeof *lname);
    uint64_t *toff = calloc((size_t)g->n_tensors + 1, sizeof *toff);
    int *order = calloc((size_t)g->n_tensors + 1, sizeof *order);   /* tensor ids in file order */
    unsigned char *meta = NULL;
    void *buf = NULL;
    FILE *f = NULL;
    char *tmp = NULL;
    char *wbuf = NULL;   /* stdio's buffer: whole 2 MiB writes (see below) */
    int rc = -1;
    if (!vname || !nname || !tname || !lname || !toff || !order) { cv_fail(e, "out of memory"); goto out; }
    for (int i = 0; i < g->n_values; i++) if ((vname[i] = strtab_add(&st, g->values[i].name)) < 0) goto oom;
    for (int i = 0; i < g->n_nodes; i++) if ((nname[i] = strtab_add(&st, g->nodes[i].name)) < 0) goto oom;
    for (int i = 0; i < g->n_tensors; i++) if ((tname[i] = strtab_add(&st, g->tensors[i].name)) < 0) goto oom;
    for (int i = 0; i < g->n_labels; i++) if ((lname[i] = strtab_add(&st, g->labels[i])) < 0) goto oom;
    if (st.len > 0xFFFFFFF0u) { cv_fail(e, "string table too large"); goto out; }

    /* Layout: header | meta | pad | tensors at 64-byte aligned offsets. */
    uint64_t meta_size = (uint64_t)g->n_values * ECM_VALUE_SIZE + (uint64_t)g->n_nodes * ECM_NODE_SIZE +
                         (uint64_t)g->n_tensors * ECM_TENSOR_SIZE + (uint64_t)g->n_labels * 4 + st.len;
    uint64_t data_offset = align_up(ECM_HEADER_SIZE + meta_size);
    uint64_t data_size = 0, max_elems = 0;
    int any_f16 = 0;
    /* The file order: the vectors (biases, BN statistics) first, together, then
     * the kernels, each group in tensor order. The loader reads every vector to
     * fold BN, and a few contiguous pages fault in much faster than one page
     * beside each kernel (V2-S on a paravirtualized VM: load 6.9 -> 3.8 ms, 299
     * -> 214 faults). The loader takes any order. */
    int no = 0;
    for (int i = 0; i < g->n_tensors; i++) if (g->tensors[i].rank <= 1) order[no++] = i;
    for (int i = 0; i < g->n_tensors; i++) if (g->tensors[i].rank > 1) order[no++] = i;
    for (int q = 0; q < g->n_tensors; q++) {
        const int i = order[q];
        const cv_tensor *t = &g->tensors[i];
        uint64_t n = (uint64_t)cv_tensor_elems(t);
        if (n > max_elems) max_elems = n;
        any_f16 |= t->to_f16;
        data_size = align_up(data_size);
        toff[i] = data_size;
        data_size += n * (t->to_f16 ? 2 : 4);
    }
    data_size = align_up(data_size);
    uint64_t file_size = data_offset + data_size;

    meta = calloc(1, ECM_HEADER_SIZE + meta_size);
    if (!meta) goto oom;
    unsigned char *h = meta;
    memcpy(h + ECM_H_MAGIC, ECM_MAGIC, 4);
    put_u32(h + ECM_H_VERSION, ECM_VERSION);
    put_u32(h + ECM_H_HEADER_SIZE, ECM_HEADER_SIZE);
    put_u32(h + ECM_H_FLAGS, any_f16 ? ECM_FLAG_F16 : 0);
    put_u32(h + ECM_H_N_VALUES, (uint32_t)g->n_values);
    put_u32(h + ECM_H_N_NODES, (uint32_t)g->n_nodes);
    put_u32(h + ECM_H_N_TENSORS, (uint32_t)g->n_tensors);
    put_u32(h + ECM_H_N_LABELS, (uint32_t)g->n_labels);
    put_u32(h + ECM_H_INPUT_VALUE, (uint32_t)g->input_value);
    put_u32(h + ECM_H_OUTPUT_VALUE, (uint32_t)g->output_value);
    put_u32(h + ECM_H_GRADCAM_NODE, id_or_none(g->gradcam_node));
    put_u32(h + ECM_H_STRINGS_SIZE, (uint32_t)st.len);
    put_u64(h + ECM_H_META_OFFSET, ECM_HEADER_SIZE);
    put_u64(h + ECM_H_META_SIZE, meta_size);
    put_u64(h + ECM_H_DATA_OFFSET, data_offset);
    put_u64(h + ECM_H_DATA_SIZE, data_size);
    put_u64(h + ECM_H_FILE_SIZE, file_size);
    put_u32(h + ECM_H_CRC32, 0);               /* patched once everything is written */
    put_u32(h + ECM_H_RESERVED, 0);

    unsigned char *p = meta + ECM_HEADER_SIZE;
    for (int i = 0; i < g->n_values; i++, p += ECM_VALUE_SIZE) {
        const cv_value *v = &g->values[i];
        put_u32(p, (uint32_t)vname[i]);
        put_u32(p + 4, (uint32_t)v->h);
        put_u32(p + 8, (uint32_t)v->w);
        put_u32(p + 12, (uint32_t)v->c);
    }
    for (int i = 0; i < g->n_nodes; i++, p += ECM_NODE_SIZE) {
        const cv_node *n = &g->nodes[i];
        put_u32(p + ECM_N_OP, (uint32_t)n->op);
        put_u32(p + ECM_N_NAME, (uint32_t)nname[i]);
        put_u32(p + ECM_N_ACT, (uint32_t)n->act);
        put_u32(p + ECM_N_OUT, (uint32_t)n->out);
        put_u32(p + ECM_N_NIN, (uint32_t)n->n_in);
        for (int k = 0; k < ECM_MAX_IN; k++) put_u32(p + ECM_N_IN + 4 * k, k < n->n_in ? id_or_none(n->in[k]) : ECM_NONE);
        put_u32(p + ECM_N_NW, (uint32_t)n->n_w);
        for (int k = 0; k < ECM_MAX_W; k++) put_u32(p + ECM_N_W + 4 * k, k < n->n_w ? id_or_none(n->w[k]) : ECM_NONE);
        put_u32(p + ECM_N_KH, (uint32_t)n->kh);
        put_u32(p + ECM_N_KW, (uint32_t)n->kw);
        put_u32(p + ECM_N_SH, (uint32_t)n->sh);
        put_u32(p + ECM_N_SW, (uint32_t)n->sw);
        put_u32(p + ECM_N_PT, (uint32_t)n->pt);
        put_u32(p + ECM_N_PB, (uint32_t)n->pb);
        put_u32(p + ECM_N_PL, (uint32_t)n->pl);
        put_u32(p + ECM_N_PR, (uint32_t)n->pr);
        put_u32(p + ECM_N_MULT, (uint32_t)n->mult);
        put_f32(p + ECM_N_F0, n->f0);
        put_f32(p + ECM_N_F1, n->f1);
        put_u32(p + ECM_N_FLAGS, n->flags);
        put_u32(p + ECM_N_RESERVED, 0);
    }
    for (int i = 0; i < g->n_tensors; i++, p += ECM_TENSOR_SIZE) {
        const cv_tensor *t = &g->tensors[i];
        put_u32(p + ECM_T_NAME, (uint32_t)tname[i]);
        put_u32(p + ECM_T_DTYPE, t->to_f16 ? ECM_DT_F16 : ECM_DT_F32);
        put_u32(p + ECM_T_RANK, (uint32_t)t->rank);
        for (int k = 0; k < 4; k++) put_u32(p + ECM_T_DIMS + 4 * k, (uint32_t)(k < t->rank ? t->dims[k] : 1));
        put_u32(p + ECM_T_FLAGS, t->flags);
        put_u64(p + ECM_T_OFFSET, toff[i]);
        put_u64(p + ECM_T_NBYTES, (uint64_t)cv_tensor_elems(t) * (t->to_f16 ? 2 : 4));
    }
    for (int i = 0; i < g->n_labels; i++, p += 4) put_u32(p, (uint32_t)lname[i]);
    memcpy(p, st.blob, st.len);

    /* One tensor's worth of float32, and float16 in pieces. */
    enum { F16_PIECE = 32768 };
    buf = malloc((size_t)(max_elems ? max_elems : 1) * 4 + F16_PIECE * 2);
    if (!buf) goto oom;
    out_file of;
    if (out_open(path, &of, e)) goto out;
    tmp = of.tmp;
    f = fdopen(of.fd, "w+b");
    if (!f) {
        close(of.fd);
        cv_fail(e, "%s: cannot open: %s", path, strerror(errno));
        goto fail_unlink;
    }
    /* The file goes out in whole 2 MiB writes at 2 MiB offsets: the page cache
     * can then hold it in 2 MiB folios (ext4 and XFS do on recent kernels), and
     * the engine maps those with one page-table entry each. Its first predict
     * then faults ~20 times instead of ~10,000: ~12 ms of V2-S's cold start on
     * a VM with paravirtualized paging. Without the buffer, nothing changes. */
    enum { WRITE_CHUNK = 2 << 20 };
    if ((wbuf = malloc(WRITE_CHUNK))) setvbuf(f, wbuf, _IOFBF, WRITE_CHUNK);

    ostream o = { f, crc32(0L, Z_NULL, 0), 0 };
    ow(&o, meta, ECM_HEADER_SIZE + meta_size);
    ozero(&o, data_offset - (ECM_HEADER_SIZE + meta_size));
    uint64_t written = 0;
    float *fb = buf;                                            /* [max_elems] */
    uint16_t *hb = (uint16_t *)(fb + (max_elems ? max_elems : 1));   /* [F16_PIECE] */
    for (int q = 0; q < g->n_tensors && !o.err; q++) {   /* in file order */
        const int i = order[q];
        const cv_tensor *t = &g->tensors[i];
        size_t n = (size_t)cv_tensor_elems(t);
        ozero(&o, toff[i] - written);
        written = toff[i];
        if (load_into(g, t, fb, n, e) || check_finite(t, fb, n, e)) goto fail_unlink;
        /* Little-endian bytes: on a little-endian host the in-memory layout
         * already is the file layout; elsewhere swap field by field. */
        if (t->to_f16) {
            for (size_t k0 = 0; k0 < n; k0 += F16_PIECE) {
                size_t k = n - k0 < F16_PIECE ? n - k0 : F16_PIECE;
                ec_f32_to_f16_n(fb + k0, hb, k);                /* round to nearest even (F16C when present) */
                for (size_t j = 0; j < k; j++)
                    if ((hb[j] & 0x7c00) == 0x7c00) {           /* finite in, infinite out: past 65504 */
                        cv_fail(e, "tensor %s: element %zu = %g does not fit float16 (largest 65504): convert with --dtype fp32",
                                t->name, k0 + j, (double)fb[k0 + j]);
                        goto fail_unlink;
                    }
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
                for (size_t j = 0; j < k; j++) hb[j] = (uint16_t)(hb[j] << 8 | hb[j] >> 8);
#endif
                ow(&o, hb, k * 2);
            }
            written += (uint64_t)n * 2;
        } else {
            unsigned char *bytes = (unsigned char *)fb;
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
            for (size_t k = 0; k < n; k++) {
                uint32_t u;
                memcpy(&u, &fb[k], 4);
                put_u32(bytes + 4 * k, u);
            }
#endif
            ow(&o, bytes, n * 4);
            written += (uint64_t)n * 4;
        }
    }
    ozero(&o, data_size - written);
    if (o.err) {
        cv_fail(e, "%s: write failed: %s", path, strerror(o.err));
        goto fail_unlink;
    }
    /* The CRC was computed with the crc field as zero; patch it in. */
    unsigned char crcb[4];
    put_u32(crcb, (uint32_t)o.crc);
    if (fflush(f) != 0 || fseeko(f, ECM_H_CRC32, SEEK_SET) != 0 || fwrite(crcb, 1, 4, f) != 4 ||
        fflush(f) != 0) {
        cv_fail(e, "%s: write failed: %s", path, strerror(errno));
        goto fail_unlink;
    }
    /* Complete: name it (the descriptor is still open: linkat needs it). */
    if (out_commit(path, &of, e)) {   /* it removed whatever name it made */
        free(of.tmp);
        tmp = NULL;
        goto fail_unlink;
    }
    tmp = of.tmp;
    if (fclose(f) != 0) {
        f = NULL;
        cv_fail(e, "%s: write failed: %s", path, strerror(errno));
        unlink(path);
        goto out;
    }
    f = NULL;
    rc = 0;
    goto out;

oom:
    cv_fail(e, "out of memory");
    goto out;
fail_unlink:
    if (f) fclose(f);
    f = NULL;
    if (tmp) unlink(tmp);
out:
    free(wbuf);   /* after fclose */
    free(tmp);
    free(buf);
    free(meta);
    free(st.blob);
    free(vname);
    free(nname);
    free(tname);
    free(lname);
    free(toff);
    free(order);
    return rc;
}
