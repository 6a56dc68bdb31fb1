/* h5_write.h - a tiny HDF5 writer for tests that need hostile or unusual files.
 *
 * Writes the "latest" format h5py writes with libver="latest" (superblock 2,
 * version 2 object headers with checksums, groups as link messages), which the
 * reader under test supports, so a test states exactly the file it wants:
 *
 *   h5w w;  h5w_init(&w);
 *   h5w_dset d = { .rank = 1, .dims = { 3 }, .type = H5W_F32, .data = vals };
 *   uint64_t ds = h5w_dataset(&w, &d);
 *   h5w_group g = { 0 };  h5w_link(&g, "bias", ds);
 *   uint64_t root = h5w_group_end(&w, &g);
 *   unsigned char *bytes = h5w_finish(&w, root, &len);
 *
 * Children are written before their parents (a link needs its target's address),
 * so the file is built in one pass, bottom-up. Every structure follows the HDF5
 * File Format Specification 3.0; checksums use cv_h5_lookup3 (convert/hdf5.h).
 * Not a general writer: what the tests need, nothing more. */
#ifndef EFFCAM_TEST_H5_WRITE_H
#define EFFCAM_TEST_H5_WRITE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "convert/hdf5.h"

#define H5W_UNDEF UINT64_MAX

typedef struct {
    unsigned char *p;
    size_t n, cap;
} h5w_buf;

static inline void h5w_put(h5w_buf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) abort();
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}

static inline void h5w_le(h5w_buf *b, uint64_t v, int n)
{
    unsigned char t[8];
    for (int i = 0; i < n; i++) t[i] = (unsigned char)(v >> (8 * i));
    h5w_put(b, t, (size_t)n);
}

typedef struct {
    h5w_buf f;                  /* the file so far; the superblock is patched last */
} h5w;

static inline void h5w_init(h5w *w)
{
    memset(w, 0, sizeof *w);
    unsigned char zero[48] = { 0 };
    h5w_put(&w->f, zero, sizeof zero);
}

/* One message into a header's message area. */
static inline void h5w_msg(h5w_buf *m, unsigned type, const h5w_buf *body)
{
    h5w_le(m, type, 1);
    h5w_le(m, body->n, 2);
    h5w_le(m, 0, 1);                            /* flags */
    h5w_put(m, body->p, body->n);
}

/* Writes a version 2 object header holding the messages; returns its address. */
static inline uint64_t h5w_header(h5w *w, const h5w_buf *msgs)
{
    uint64_t at = w->f.n;
    h5w_buf h = { 0 };
    h5w_put(&h, "OHDR", 4);
    h5w_le(&h, 2, 1);                           /* version */
    h5w_le(&h, 0x02, 1);                        /* flags: chunk 0 size in 4 bytes */
    h5w_le(&h, msgs->n, 4);
    h5w_put(&h, msgs->p, msgs->n);
    h5w_le(&h, cv_h5_lookup3(h.p, h.n), 4);
    h5w_put(&w->f, h.p, h.n);
    free(h.p);
    return at;
}

/* ---- datasets ------------------------------------------------------------------ */

enum { H5W_F32, H5W_F64, H5W_F16, H5W_I32, H5W_U64, H5W_I64 };

static inline int h5w_esize(int type) { return type == H5W_F16 ? 2 : (type == H5W_F32 || type == H5W_I32) ? 4 : 8; }

typedef struct {
    int rank;
    uint64_t dims[8];
    int type;                   /* H5W_* */
    const void *data;           /* nelem elements of the type, little-endian; NULL: never written */
    int chunked;                /* 0 contiguous, 1 chunked (v1 B-tree, one leaf) */
    uint64_t cdims[8];          /* chunked: chunk dims */
    int deflate;                /* chunked: deflate every chunk */
    int skip_chunk;             /* chunked: this chunk index (+1) is left out; 0 = none */
    const void *raw_chunk;      /* chunked: the bytes of the one and only chunk, as given */
    size_t raw_chunk_len;
    int fill;                   /* write a fill value message with fill_value (float32 only) */
    float fill_value;
} h5w_dset;

static inline void h5w_type_msg(h5w_buf *t, int type)
{
    int es = h5w_esize(type);
    if (type == H5W_I32 || type == H5W_U64 || type == H5W_I64) {
        h5w_le(t, 0x10, 1);                                     /* version 1, class 0 (fixed-point) */
        h5w_le(t, type == H5W_U64 ? 0 : 0x08, 3);               /* little-endian, signed? */
        h5w_le(t, (uint64_t)es, 4);
        h5w_le(t, 0, 2);                                        /* bit offset */
        h5w_le(t, (uint64_t)(8 * es), 2);                       /* precision */
        return;
    }
    static const unsigned eloc[] = { 23, 52, 10 }, esz[] = { 8, 11, 5 }, msz[] = { 23, 52, 10 }, bias[] = { 127, 1023, 15 };
    int k = type == H5W_F32 ? 0 : type == H5W_F64 ? 1 : 2;
    h5w_le(t, 0x11, 1);                                         /* version 1, class 1 (float) */
    h5w_le(t, 0x20 | (uint64_t)(8 * es - 1) << 8, 3);           /* implied mantissa msb, sign bit */
    h5w_le(t, (uint64_t)es, 4);
    h5w_le(t, 0, 2);
    h5w_le(t, (uint64_t)(8 * es), 2);
    h5w_le(t, eloc[k], 1);
    h5w_le(t, esz[k], 1);
    h5w_le(t, 0, 1);
    h5w_le(t, msz[k], 1);
    h5w_le(t, bias[k], 4);
}

static inline void h5w_space_msg(h5w_buf *s, int rank, const uint64_t *dims)
{
    h5w_le(s, 2, 1);                            /* version 2 */
    h5w_le(s, (uint64_t)rank, 1);
    h5w_le(s, 0, 1);                            /* flags: no max dims */
    h5w_le(s, rank ? 1 : 0, 1);                 /* simple / scalar */
    for (int i = 0; i < rank; i++) h5w_le(s, dims[i], 8);
}

static inline uint64_t h5w_nelem(const h5w_dset *d)
{
    uint64_t n = 1;
    for (int i = 0; i < d->rank; i++) n *= d->dims[i];
    return n;
}

/* Writes the chunks and their B-tree leaf; returns the B-tree address. */
static inline uint64_t h5w_chunks(h5w *w, const h5w_dset *d)
{
    int r = d->rank, es = h5w_esize(d->type);
    uint64_t per[8], n = 1, celems = 1;
    for (int i = 0; i < r; i++) {
        per[i] = (d->dims[i] + d->cdims[i] - 1) / d->cdims[i];
        n *= per[i];
        celems *= d->cdims[i];
    }
    uint64_t *addr = calloc(n, sizeof *addr), *size = calloc(n, sizeof *size);
    unsigned char *chunk = malloc(celems * es), *z = malloc(compressBound(celems * es) + 1);
    if (!addr || !size || !chunk || !z) abort();
    for (uint64_t c = 0; c < n; c++) {
        if (d->skip_chunk && c == (uint64_t)d->skip_chunk - 1) continue;
        if (d->raw_chunk) {
            addr[c] = w->f.n;
            size[c] = d->raw_chunk_len;
            h5w_put(&w->f, d->raw_chunk, d->raw_chunk_len);
            continue;
        }
        /* gather the chunk (edge chunks padded with zeros) */
        memset(chunk, 0, celems * es);
        uint64_t off[8], q = c;
        for (int i = r - 1; i >= 0; i--) { off[i] = (q % per[i]) * d->cdims[i]; q /= per[i]; }
        for (uint64_t e = 0; e < celems; e++) {
            uint64_t t = e, src = 0, in = 1, idx[8];
            for (int i = r - 1; i >= 0; i--) { idx[i] = t % d->cdims[i]; t /= d->cdims[i]; }
            for (int i = 0; i < r; i++) {
                if (off[i] + idx[i] >= d->dims[i]) in = 0;
                src = src * d->dims[i] + off[i] + idx[i];
            }
            if (in) memcpy(chunk + e * es, (const unsigned char *)d->data + src * es, (size_t)es);
        }
        addr[c] = w->f.n;
        if (d->deflate) {
            uLongf zl = compressBound(celems * es);
            if (compress2(z, &zl, chunk, celems * es, 6) != Z_OK) abort();
            size[c] = zl;
            h5w_put(&w->f, z, zl);
        } else {
            size[c] = celems * es;
            h5w_put(&w->f, chunk, celems * es);
        }
    }
    uint64_t bt = w->f.n, used = 0;
    for (uint64_t c = 0; c < n; c++) used += addr[c] != 0;
    h5w_put(&w->f, "TREE", 4);
    h5w_le(&w->f, 1, 1);                        /* type 1: chunks */
    h5w_le(&w->f, 0, 1);                        /* level 0 */
    h5w_le(&w->f, used, 2);
    h5w_le(&w->f, H5W_UNDEF, 8);
    h5w_le(&w->f, H5W_UNDEF, 8);
    for (uint64_t c = 0; c <= n; c++) {
        if (c < n && !addr[c]) continue;
        uint64_t q = c < n ? c : n - 1;
        h5w_le(&w->f, c < n ? size[c] : 0, 4);
        h5w_le(&w->f, 0, 4);                    /* filter mask */
        uint64_t off[8];
        for (int i = r - 1; i >= 0; i--) { off[i] = (q % per[i]) * d->cdims[i]; q /= per[i]; }
        for (int i = 0; i < r; i++) h5w_le(&w->f, c < n ? off[i] : d->dims[i], 8);
        h5w_le(&w->f, 0, 8);
        if (c < n) h5w_le(&w->f, addr[c], 8);
    }
    free(addr), free(size), free(chunk), free(z);
    return bt;
}

static inline uint64_t h5w_dataset(h5w *w, const h5w_dset *d)
{
    int es = h5w_esize(d->type);
    uint64_t nbytes = h5w_nelem(d) * (uint64_t)es, data_at = H5W_UNDEF;
    if (d->chunked) {
        if (d->data || d->raw_chunk) data_at = h5w_chunks(w, d);
    } else if (d->data) {
        data_at = w->f.n;
        h5w_put(&w->f, d->data, nbytes);
    }
    h5w_buf m = { 0 }, b = { 0 };
    h5w_space_msg(&b, d->rank, d->dims);
    h5w_msg(&m, 0x01, &b);
    b.n = 0;
    h5w_type_msg(&b, d->type);
    h5w_msg(&m, 0x03, &b);
    if (d->fill) {
        b.n = 0;
        h5w_le(&b, 3, 1);                       /* version 3 */
        h5w_le(&b, 0x20 | 0x08 | 0x02, 1);      /* fill value defined, fill time "if set", late alloc */
        h5w_le(&b, 4, 4);
        h5w_put(&b, &d->fill_value, 4);
        h5w_msg(&m, 0x05, &b);
    }
    if (d->chunked && d->deflate) {
        b.n = 0;
        h5w_le(&b, 2, 1);                       /* filter pipeline version 2 */
        h5w_le(&b, 1, 1);                       /* one filter */
        h5w_le(&b, 1, 2);                       /* deflate */
        h5w_le(&b, 0, 2);                       /* flags */
        h5w_le(&b, 1, 2);                       /* one client value: the level */
        h5w_le(&b, 6, 4);
        h5w_msg(&m, 0x0B, &b);
    }
    b.n = 0;
    h5w_le(&b, 3, 1);                           /* layout version 3 */
    if (d->chunked) {
        h5w_le(&b, 2, 1);
        h5w_le(&b, (uint64_t)d->rank + 1, 1);
        h5w_le(&b, data_at, 8);
        for (int i = 0; i < d->rank; i++) h5w_le(&b, d->cdims[i], 4);
        h5w_le(&b, (uint64_t)es, 4);
    } else {
        h5w_le(&b, 1, 1);
        h5w_le(&b, data_at, 8);
        h5w_le(&b, nbytes, 8);
    }
    h5w_msg(&m, 0x08, &b);
    uint64_t at = h5w_header(w, &m);
    free(m.p), free(b.p);
    return at;
}

/* ---- groups --------------------------------------------------------------------- */

typedef struct {
    h5w_buf msgs;
} h5w_group;

static inline void h5w_link(h5w_group *g, const char *name, uint64_t target)
{
    h5w_buf b = { 0 };
    size_t n = strlen(name);
    h5w_le(&b, 1, 1);                           /* version 1 */
    h5w_le(&b, n > 255 ? 1 : 0, 1);             /* name length in 1 or 2 bytes; hard link */
    h5w_le(&b, n, n > 255 ? 2 : 1);
    h5w_put(&b, name, n);
    h5w_le(&b, target, 8);
    h5w_msg(&g->msgs, 0x06, &b);
    free(b.p);
}

/* A fixed-length string attribute: a scalar (n == 1 and !array) or a 1-D array. */
static inline void h5w_attr_strings(h5w_group *g, const char *name, int n, const char *const *v, int array)
{
    size_t len = 1;
    for (int i = 0; i < n; i++) if (strlen(v[i]) + 1 > len) len = strlen(v[i]) + 1;
    h5w_buf t = { 0 }, s = { 0 }, b = { 0 };
    h5w_le(&t, 0x13, 1);                        /* version 1, class 3 (string) */
    h5w_le(&t, 1, 3);                           /* null-padded, ASCII */
    h5w_le(&t, len, 4);
    uint64_t dims[1] = { (uint64_t)n };
    h5w_space_msg(&s, array ? 1 : 0, dims);
    h5w_le(&b, 3, 1);                           /* attribute message version 3 */
    h5w_le(&b, 0, 1);
    h5w_le(&b, strlen(name) + 1, 2);
    h5w_le(&b, t.n, 2);
    h5w_le(&b, s.n, 2);
    h5w_le(&b, 0, 1);                           /* ASCII name */
    h5w_put(&b, name, strlen(name) + 1);
    h5w_put(&b, t.p, t.n);
    h5w_put(&b, s.p, s.n);
    for (int i = 0; i < n; i++) {
        char *pad = calloc(1, len);
        if (!pad) abort();
        memcpy(pad, v[i], strlen(v[i]));
        h5w_put(&b, pad, len);
        free(pad);
    }
    h5w_msg(&g->msgs, 0x0C, &b);
    free(t.p), free(s.p), free(b.p);
}

/* Writes the group (link info + its links and attributes); returns its address. */
static inline uint64_t h5w_group_end(h5w *w, h5w_group *g)
{
    h5w_buf m = { 0 }, b = { 0 };
    h5w_le(&b, 0, 1);                           /* link info version 0, no creation order */
    h5w_le(&b, 0, 1);
    h5w_le(&b, H5W_UNDEF, 8);                   /* no fractal heap: compact links */
    h5w_le(&b, H5W_UNDEF, 8);
    h5w_msg(&m, 0x02, &b);
    h5w_put(&m, g->msgs.p, g->msgs.n);
    uint64_t at = h5w_header(w, &m);
    free(m.p), free(b.p), free(g->msgs.p);
    memset(g, 0, sizeof *g);
    return at;
}

/* Patches the superblock (version 2) and hands out the bytes (caller frees). */
static inline unsigned char *h5w_finish(h5w *w, uint64_t root, size_t *len)
{
    h5w_buf s = { 0 };
    static const unsigned char sig[8] = { 0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n' };
    h5w_put(&s, sig, 8);
    h5w_le(&s, 2, 1);                           /* superblock version 2 */
    h5w_le(&s, 8, 1);                           /* size of offsets */
    h5w_le(&s, 8, 1);                           /* size of lengths */
    h5w_le(&s, 0, 1);
    h5w_le(&s, 0, 8);                           /* base address */
    h5w_le(&s, H5W_UNDEF, 8);                   /* no superblock extension */
    h5w_le(&s, w->f.n, 8);                      /* end of file */
    h5w_le(&s, root, 8);
    h5w_le(&s, cv_h5_lookup3(s.p, s.n), 4);
    memcpy(w->f.p, s.p, s.n);
    free(s.p);
    *len = w->f.n;
    unsigned char *p = w->f.p;
    memset(w, 0, sizeof *w);
    return p;
}

#endif
