/* ecm_write.c - serializes a cv_graph into an .ecm file (engine/ecm_format.h).
 *
 * Written atomically: everything goes to "<path>.tmpXXXXXX" in the same
 * directory, the CRC is patched in last, and only a complete file is renamed
 * onto path. Tensor data is streamed one tensor at a time (graph->load for
 * tensors not held in memory), so memory stays at one tensor's worth. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

int cv_ecm_write(const cv_graph *g, const char *path, cv_err *e)
{
    if (check_graph(g, e)) return -1;

    /* String blob: ids for every name, in table order. */
    strtab st = {0};
    long *vname = calloc((size_t)g->n_values + 1, sizeof *vname);
    long *nname = calloc((size_t)g->n_nodes + 1, sizeof *nname);
    long *tname = calloc((size_t)g->n_tensors + 1, sizeof *tname);
    long *lname = calloc((size_t)g->n_labels + 1, sizeof *lname);
    uint64_t *toff = calloc((size_t)g->n_tensors + 1, sizeof *toff);
    unsigned char *meta = NULL;
    void *buf = NULL;
    FILE *f = NULL;
    char *tmp = NULL;
    int rc = -1;
    if (!vname || !nname || !tname || !lname || !toff) { cv_fail(e, "out of memory"); goto out; }
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
    for (int i = 0; i < g->n_tensors; i++) {
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

    /* One tensor's worth of float32 plus its float16 image. */
    buf = malloc((size_t)(max_elems ? max_elems : 1) * 6);
    if (!buf) goto oom;

    size_t plen = strlen(path);
    tmp = malloc(plen + 16);
    if (!tmp) goto oom;
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmpXXXXXX", 11);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        cv_fail(e, "%s: cannot create: %s", path, strerror(errno));
        free(tmp);
        tmp = NULL;
        goto out;
    }
    /* mkstemp makes 0600; give the file the usual umask-derived mode. */
    mode_t um = umask(0);
    umask(um);
    if (fchmod(fd, 0666 & ~um) != 0) { /* not fatal: the file is still usable */ }
    f = fdopen(fd, "w+b");
    if (!f) {
        close(fd);
        cv_fail(e, "%s: cannot open: %s", path, strerror(errno));
        goto fail_unlink;
    }

    ostream o = { f, crc32(0L, Z_NULL, 0), 0 };
    ow(&o, meta, ECM_HEADER_SIZE + meta_size);
    ozero(&o, data_offset - (ECM_HEADER_SIZE + meta_size));
    uint64_t written = 0;
    float *fb = buf;
    uint16_t *hb = (uint16_t *)(fb + (max_elems ? max_elems : 1));
    for (int i = 0; i < g->n_tensors && !o.err; i++) {
        const cv_tensor *t = &g->tensors[i];
        size_t n = (size_t)cv_tensor_elems(t);
        ozero(&o, toff[i] - written);
        written = toff[i];
        if (t->data) {
            memcpy(fb, t->data, n * 4);
        } else if (!g->load || g->load(g->load_ctx, t, fb, n, e)) {
            if (!g->load) cv_fail(e, "tensor %s has no data", t->name);
            goto fail_unlink;
        }
        /* Little-endian bytes: on a little-endian host the in-memory layout
         * already is the file layout; elsewhere swap field by field. */
        unsigned char *bytes;
        size_t nb;
        if (t->to_f16) {
            ec_f32_to_f16_n(fb, hb, n);             /* round to nearest even (F16C when present) */
            bytes = (unsigned char *)hb;
            nb = n * 2;
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
            for (size_t k = 0; k < n; k++) hb[k] = (uint16_t)(hb[k] << 8 | hb[k] >> 8);
#endif
        } else {
            bytes = (unsigned char *)fb;
            nb = n * 4;
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
            for (size_t k = 0; k < n; k++) {
                uint32_t u;
                memcpy(&u, &fb[k], 4);
                put_u32(bytes + 4 * k, u);
            }
#endif
        }
        ow(&o, bytes, nb);
        written += nb;
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
    if (fclose(f) != 0) {
        f = NULL;
        cv_fail(e, "%s: write failed: %s", path, strerror(errno));
        goto fail_unlink;
    }
    f = NULL;
    if (rename(tmp, path) != 0) {
        cv_fail(e, "%s: cannot rename into place: %s", path, strerror(errno));
        goto fail_unlink;
    }
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
    free(tmp);
    free(buf);
    free(meta);
    free(st.blob);
    free(vname);
    free(nname);
    free(tname);
    free(lname);
    free(toff);
    return rc;
}
