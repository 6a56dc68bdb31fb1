/* hdf5.c - a hand-written, read-only HDF5 reader for the files h5py/Keras write.
 *
 * Written from the HDF5 File Format Specification (version 3.0, with the 2.0
 * layouts it still describes). Section names in the comments refer to it.
 *
 * Design:
 *  - Every access goes through h5_read(), which checks the range against the
 *    source size and serves small reads from a direct-mapped page cache (4 KiB
 *    pages); large reads (dataset data) go straight to cv_source_read (pread).
 *  - An object header is read chunk by chunk (one read per chunk) into one
 *    buffer and indexed as a list of messages; the last header is cached, since
 *    callers ask the same object several questions in a row.
 *  - B-trees, symbol nodes and heaps are read field by field through the page
 *    cache: no buffer is ever sized by a field of the file before that field was
 *    checked against the file size and a fixed cap.
 *  - Walks are bounded: B-tree levels must decrease by one per step (no cycles),
 *    total nodes visited per walk are capped by the file size, object header
 *    continuations are capped and checked for repeats.
 *
 * Choices:
 *  - Addresses are relative to where the superblock signature was found (user
 *    blocks), as the library itself does when the stored base address differs.
 *  - Checksums of version 2 structures (superblock 2/3, OHDR and OCHK object
 *    header chunks) are verified (Jenkins lookup3, as the library does): h5py
 *    refuses a file whose checksum does not match, so do we. The other
 *    checksummed structures (v2 B-trees, fractal heaps) are not supported.
 *  - Every element of a dataset must be stored in the file: a dataset whose
 *    data was never written (undefined address, missing chunks) is refused,
 *    which makes fill values moot (the library would return the fill value,
 *    0 or whatever the fill value message says; Keras always writes its data).
 *    Refusing them also bounds what a small file can make a reader allocate:
 *    contiguous data is as large as the file holds, and a deflated chunk may
 *    expand at most 1032-fold (deflate's limit), which is checked for every
 *    chunk before any data is read.
 *  - Chunks are inflated through a 64 KiB window straight into the caller's
 *    array (never a whole chunk in memory).
 *  - Little-endian integer datasets are read too (converted to float): Keras
 *    keeps some state as int64 (Normalization's count) and lists it as a weight.
 *  - Dense link/attribute storage (fractal heap + v2 B-tree), layout v4 chunk
 *    indexes, shared messages, external storage and links other than hard links
 *    are refused with a message naming the feature.
 */
#include "hdf5.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "hdf5.c reads little-endian data into host floats: little-endian hosts only"
#endif

/* ---- limits ---------------------------------------------------------------- */

#define H5_UNDEF        UINT64_MAX      /* "undefined address": all bits set */
#define H5_PAGE         4096u
#define H5_NPAGES       64u
#define H5_DIRECT_MIN   (2u * H5_PAGE)  /* reads at least this big bypass the cache */
#define H5_MAX_NAME     1024            /* link / attribute names we accept */
#define H5_MAX_HDR      (16u << 20)     /* bytes of one object header, all chunks */
#define H5_MAX_CHUNKS   1024            /* object header chunks (continuations) */
#define H5_MAX_MSGS     65536           /* messages in one object header */
#define H5_MAX_LEVEL    64              /* B-tree depth */
#define H5_MAX_CHUNK_BYTES (256u << 20) /* one dataset chunk, uncompressed */
#define H5_MAX_FILTERS  32
#define H5_IO_STEP      (1u << 30)      /* largest single data read */

/* Message types (section IV.A.2). */
enum {
    H5M_NIL = 0x00, H5M_DATASPACE = 0x01, H5M_LINFO = 0x02, H5M_DATATYPE = 0x03,
    H5M_FILL_OLD = 0x04, H5M_FILL = 0x05, H5M_LINK = 0x06, H5M_EFL = 0x07,
    H5M_LAYOUT = 0x08, H5M_BOGUS = 0x09, H5M_GINFO = 0x0A, H5M_FILTER = 0x0B,
    H5M_ATTR = 0x0C, H5M_COMMENT = 0x0D, H5M_MTIME_OLD = 0x0E, H5M_SHMSG = 0x0F,
    H5M_CONT = 0x10, H5M_STAB = 0x11, H5M_MTIME = 0x12, H5M_BTREEK = 0x13,
    H5M_DRVINFO = 0x14, H5M_AINFO = 0x15, H5M_REFCOUNT = 0x16, H5M_FSINFO = 0x17,
};

/* ---- types ------------------------------------------------------------------- */

typedef struct {
    uint16_t type;
    uint8_t flags;
    uint32_t off;           /* into h5_ohdr.buf (the buffer may move while loading) */
    uint32_t len;
} h5_msg;

typedef struct {
    uint64_t addr;          /* cache key; H5_UNDEF when empty */
    int version;            /* 1 or 2 */
    uint8_t *buf;
    size_t len, cap;
    h5_msg *msgs;
    int n, cap_msgs;
    int first[H5M_FSINFO + 1];  /* index of the first message of each known type, -1 if none */
    uint64_t used;          /* cache: tick of the last use */
    uint32_t *lidx;         /* compact group: link-name hash slots (message index + 1, 0 empty) */
    size_t lmask;           /* slots - 1, or 0 while no index is built */
} h5_ohdr;

/* Object headers cached, least recently used evicted. A .keras lookup from the
 * root touches the root, "layers", the layer, its "vars" and a few datasets:
 * eight keep the root and "layers" cached across layers, so a compact
 * "layers" group of 100000 links is read and indexed once, not per layer. */
#define H5_NHDR 8
#define H5_HDR_CACHE_BYTES (32u << 20)   /* buffers kept beyond this are dropped */

struct cv_h5 {
    const cv_source *src;
    cv_limits lim;
    uint64_t base;          /* offset of the superblock in src: HDF5 address 0 */
    uint64_t size;          /* bytes addressable from base */
    int so, sl;             /* "Size of Offsets", "Size of Lengths" */
    int sb_version;
    int group_k, chunk_k;   /* v1 B-tree "K": a node holds at most 2K children */
    cv_h5_obj root;
    uint8_t *pages[H5_NPAGES];  /* [H5_PAGE] each, allocated when first used: a small
                                 * file needs a few, and each is a small allocation */
    uint64_t page_tag[H5_NPAGES];   /* page number + 1; 0 = empty */
    h5_ohdr hdr[H5_NHDR];
    uint64_t tick;
};

/* A bounds-checked little-endian decoder over a byte range. Reading past the
 * end sets bad and yields zeros, so a parse checks bad once at the end. */
typedef struct {
    const uint8_t *p;
    size_t n, i;
    int bad;
} h5_cur;

static h5_cur h5_cursor(const uint8_t *p, size_t n) { h5_cur c = { p, n, 0, 0 }; return c; }

static uint64_t h5_u(h5_cur *c, int nb)
{
    if (c->bad || (size_t)nb > c->n - c->i) { c->bad = 1; c->i = c->n; return 0; }
    uint64_t v = 0;
    for (int k = nb - 1; k >= 0; k--) v = (v << 8) | c->p[c->i + (size_t)k];
    c->i += (size_t)nb;
    return v;
}

static void h5_skip(h5_cur *c, size_t nb)
{
    if (c->bad || nb > c->n - c->i) { c->bad = 1; c->i = c->n; return; }
    c->i += nb;
}

static const uint8_t *h5_take(h5_cur *c, size_t nb)
{
    if (c->bad || nb > c->n - c->i) { c->bad = 1; c->i = c->n; return NULL; }
    const uint8_t *p = c->p + c->i;
    c->i += nb;
    return p;
}

static uint64_t h5_le(const uint8_t *p, int nb)
{
    uint64_t v = 0;
    for (int k = nb - 1; k >= 0; k--) v = (v << 8) | p[k];
    return v;
}

/* An address field of size so: all bits set means "undefined" (section II.A). */
static uint64_t h5_addr_val(uint64_t v, int so)
{
    uint64_t ones = so >= 8 ? UINT64_MAX : ((uint64_t)1 << (8 * so)) - 1;
    return v == ones ? H5_UNDEF : v;
}

static uint64_t h5_addr(const cv_h5 *h, h5_cur *c) { return h5_addr_val(h5_u(c, h->so), h->so); }

#define HX(v) ((unsigned long long)(v))

/* ---- checksums ------------------------------------------------------------------
 * Bob Jenkins' lookup3 "hashlittle" with initial value 0, which HDF5 uses for
 * the checksums of its version 2 structures. Twelve bytes at a time go into
 * three 32-bit lanes (little-endian words) that are mixed after each block;
 * the last 1..12 bytes are added as zero-padded words and the lanes go through
 * a final avalanche (no final mix when the input is a multiple of 12 and not
 * empty: the last full block takes that path too). */
static uint32_t h5_rot(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

static uint32_t h5_word(const uint8_t *p) { return (uint32_t)h5_le(p, 4); }

uint32_t cv_h5_lookup3(const void *data, size_t n)
{
    const uint8_t *k = data;
    uint32_t a, b, c;
    a = b = c = 0xdeadbeefu + (uint32_t)n;
    while (n > 12) {
        a += h5_word(k);
        b += h5_word(k + 4);
        c += h5_word(k + 8);
        a -= c; a ^= h5_rot(c, 4);  c += b;
        b -= a; b ^= h5_rot(a, 6);  a += c;
        c -= b; c ^= h5_rot(b, 8);  b += a;
        a -= c; a ^= h5_rot(c, 16); c += b;
        b -= a; b ^= h5_rot(a, 19); a += c;
        c -= b; c ^= h5_rot(b, 4);  b += a;
        n -= 12;
        k += 12;
    }
    if (n == 0) return c;
    uint8_t t[12] = { 0 };
    memcpy(t, k, n);
    a += h5_word(t);
    b += h5_word(t + 4);
    c += h5_word(t + 8);
    c ^= b; c -= h5_rot(b, 14);
    a ^= c; a -= h5_rot(c, 11);
    b ^= a; b -= h5_rot(a, 25);
    c ^= b; c -= h5_rot(b, 16);
    a ^= c; a -= h5_rot(c, 4);
    b ^= a; b -= h5_rot(a, 14);
    c ^= b; c -= h5_rot(b, 24);
    return c;
}

/* 0 if the 4 bytes after p[0, n) hold lookup3 of p[0, n). */
static int h5_checksum_ok(const uint8_t *p, size_t n) { return cv_h5_lookup3(p, n) == h5_word(p + n); }

/* ---- I/O ------------------------------------------------------------------------ */

static int h5_in(const cv_h5 *h, uint64_t addr, uint64_t len)
{
    return addr != H5_UNDEF && addr <= h->size && len <= h->size - addr;
}

static int h5_read_direct(cv_h5 *h, uint64_t addr, void *buf, size_t len, const char *what, cv_err *e)
{
    cv_err se;
    uint8_t *p = buf;
    while (len > 0) {
        size_t step = len < H5_IO_STEP ? len : H5_IO_STEP;
        if (cv_source_read(h->src, h->base + addr, p, step, &se) != 0)
            return cv_fail(e, "hdf5: %s at 0x%llx: %s", what, HX(addr), se.msg);
        p += step;
        addr += step;
        len -= step;
    }
    return 0;
}

/* Reads [addr, addr+len) (HDF5 addresses); what names the structure for the message. */
static int h5_read(cv_h5 *h, uint64_t addr, void *buf, size_t len, const char *what, cv_err *e)
{
    if (!h5_in(h, addr, len)) {
        if (addr == H5_UNDEF) return cv_fail(e, "hdf5: %s at undefined address", what);
        return cv_fail(e, "hdf5: %s at 0x%llx: %zu bytes past end of file (0x%llx)",
                       what, HX(addr), len, HX(h->size));
    }
    if (len >= H5_DIRECT_MIN) return h5_read_direct(h, addr, buf, len, what, e);
    uint8_t *out = buf;
    while (len > 0) {
        uint64_t pg = addr / H5_PAGE;
        unsigned slot = (unsigned)(pg % H5_NPAGES);
        if (!h->pages[slot] && !(h->pages[slot] = malloc(H5_PAGE))) return cv_fail(e, "hdf5: out of memory");
        uint8_t *page = h->pages[slot];
        uint64_t start = pg * H5_PAGE;
        size_t plen = h->size - start < H5_PAGE ? (size_t)(h->size - start) : H5_PAGE;
        if (h->page_tag[slot] != pg + 1) {
            h->page_tag[slot] = 0;
            if (h5_read_direct(h, start, page, plen, what, e) != 0) return -1;
            h->page_tag[slot] = pg + 1;
        }
        size_t in = (size_t)(addr - start);
        size_t n = plen - in < len ? plen - in : len;
        memcpy(out, page + in, n);
        out += n;
        addr += n;
        len -= n;
    }
    return 0;
}

/* ---- superblock (section II.A) ------------------------------------------------ */

static const uint8_t h5_sig[8] = { 0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n' };

static int h5_size_ok(int v) { return v == 2 || v == 4 || v == 8; }

static int h5_superblock(cv_h5 *h, cv_err *e)
{
    /* The signature is at 0 or, after a user block, at 512, 1024, 2048, ... */
    uint64_t at = 0;
    uint8_t b[128];
    for (;;) {
        if (at > h->src->size || h->src->size - at < 8 + 40)
            return cv_fail(e, "hdf5: no HDF5 signature (not an HDF5 file or truncated)");
        cv_err se;
        if (cv_source_read(h->src, at, b, 8, &se) != 0)
            return cv_fail(e, "hdf5: reading signature at %llu: %s", HX(at), se.msg);
        if (memcmp(b, h5_sig, 8) == 0) break;
        at = at ? at * 2 : 512;
    }
    h->base = at;
    h->size = h->src->size - at;
    size_t avail = h->size < sizeof b ? (size_t)h->size : sizeof b;
    cv_err se;
    if (cv_source_read(h->src, at, b, avail, &se) != 0)
        return cv_fail(e, "hdf5: reading superblock: %s", se.msg);
    h5_cur c = h5_cursor(b, avail);
    h5_skip(&c, 8);
    int ver = (int)h5_u(&c, 1);
    h->sb_version = ver;
    uint64_t eof;
    if (ver == 0 || ver == 1) {
        /* Versions 0/1: free-space, root symbol table and shared-header versions,
         * then sizes, the B-tree K values and flags. */
        h5_skip(&c, 4);
        h->so = (int)h5_u(&c, 1);
        h->sl = (int)h5_u(&c, 1);
        h5_skip(&c, 1 + 2);                 /* reserved, group leaf node K */
        h->group_k = (int)h5_u(&c, 2);      /* group internal node K */
        h5_skip(&c, 4);                     /* file consistency flags */
        if (ver == 1) {
            h->chunk_k = (int)h5_u(&c, 2);  /* indexed storage internal node K */
            h5_skip(&c, 2);
        }
        if (h->group_k == 0 || h->chunk_k == 0)
            return cv_fail(e, "hdf5: superblock: B-tree K of zero");
        if (!h5_size_ok(h->so) || !h5_size_ok(h->sl))
            return cv_fail(e, "hdf5: superblock: unsupported offset/length sizes %d/%d", h->so, h->sl);
        h5_skip(&c, (size_t)h->so * 2);     /* base address, free-space info */
        eof = h5_addr(h, &c);
        h5_skip(&c, (size_t)h->so);         /* driver information block */
        /* Root group symbol table entry: link name offset, object header address. */
        h5_skip(&c, (size_t)h->so);
        h->root = h5_addr(h, &c);
    } else if (ver == 2 || ver == 3) {
        h->group_k = h->chunk_k = 32767;
        h->so = (int)h5_u(&c, 1);
        h->sl = (int)h5_u(&c, 1);
        h5_skip(&c, 1);                     /* file consistency flags */
        if (!h5_size_ok(h->so) || !h5_size_ok(h->sl))
            return cv_fail(e, "hdf5: superblock: unsupported offset/length sizes %d/%d", h->so, h->sl);
        h5_skip(&c, (size_t)h->so * 2);     /* base address, superblock extension */
        eof = h5_addr(h, &c);
        h->root = h5_addr(h, &c);
        /* Then a checksum of everything before it. */
        if (!c.bad && (c.n - c.i < 4 || !h5_checksum_ok(b, c.i)))
            return cv_fail(e, "hdf5: superblock checksum mismatch (corrupt file)");
    } else {
        return cv_fail(e, "hdf5: superblock version %d not supported", ver);
    }
    if (c.bad) return cv_fail(e, "hdf5: superblock truncated");
    /* "End of File Address": the library refuses files shorter than it. h5py
     * stores it counting the user block, so compare with the whole source. */
    if (eof != H5_UNDEF && eof > h->src->size)
        return cv_fail(e, "hdf5: file truncated: superblock says 0x%llx bytes, have 0x%llx",
                       HX(eof), HX(h->src->size));
    if (!h5_in(h, h->root, 16))
        return cv_fail(e, "hdf5: root object header address 0x%llx past end of file", HX(h->root));
    return 0;
}

/* ---- object headers (section IV.A) --------------------------------------------- */

static int h5_hdr_grow(h5_ohdr *o, size_t need)
{
    if (need <= o->cap) return 0;
    size_t cap = o->cap ? o->cap : 1024;
    while (cap < need) cap *= 2;
    uint8_t *nb = realloc(o->buf, cap);
    if (!nb) return -1;
    o->buf = nb;
    o->cap = cap;
    return 0;
}

static int h5_hdr_add_msg(h5_ohdr *o, unsigned type, unsigned flags, size_t off, size_t len)
{
    if (o->n == o->cap_msgs) {
        int cap = o->cap_msgs ? o->cap_msgs * 2 : 32;
        h5_msg *nm = realloc(o->msgs, (size_t)cap * sizeof *nm);
        if (!nm) return -1;
        o->msgs = nm;
        o->cap_msgs = cap;
    }
    if (type <= H5M_FSINFO && o->first[type] < 0) o->first[type] = o->n;
    o->msgs[o->n++] = (h5_msg){ (uint16_t)type, (uint8_t)flags, (uint32_t)off, (uint32_t)len };
    return 0;
}

typedef struct { uint64_t addr, len; } h5_span;

/* Parses the messages of one chunk, already in o->buf[start, start+len). Continuation
 * messages are appended to conts (capacity H5_MAX_CHUNKS). */
static int h5_hdr_parse_chunk(cv_h5 *h, uint64_t oaddr, h5_ohdr *o, size_t start, size_t len,
                              int crt_order, h5_span *conts, int *n_conts, cv_err *e)
{
    size_t pos = start, end = start + len;
    /* v1 messages: type(2) size(2) flags(1) reserved(3); v2: type(1) size(2)
     * flags(1) [creation order(2)] (section IV.A.1.a / IV.A.1.b). */
    size_t mh = o->version == 1 ? 8 : (crt_order ? 6 : 4);
    while (end - pos >= mh) {
        const uint8_t *p = o->buf + pos;
        unsigned type, flags;
        size_t size;
        if (o->version == 1) {
            type = (unsigned)h5_le(p, 2);
            size = (size_t)h5_le(p + 2, 2);
            flags = p[4];
        } else {
            type = p[0];
            size = (size_t)h5_le(p + 1, 2);
            flags = p[3];
        }
        pos += mh;
        if (size > end - pos)
            return cv_fail(e, "hdf5: object header at 0x%llx: message type 0x%x size %zu past end of its chunk",
                           HX(oaddr), type, size);
        if (o->n >= H5_MAX_MSGS)
            return cv_fail(e, "hdf5: object header at 0x%llx: more than %d messages", HX(oaddr), H5_MAX_MSGS);
        if (type == H5M_CONT) {
            h5_cur c = h5_cursor(o->buf + pos, size);
            uint64_t ca = h5_addr(h, &c), cl = h5_u(&c, h->sl);
            if (c.bad) return cv_fail(e, "hdf5: object header at 0x%llx: short continuation message", HX(oaddr));
            if (*n_conts >= H5_MAX_CHUNKS)
                return cv_fail(e, "hdf5: object header at 0x%llx: more than %d continuation chunks",
                               HX(oaddr), H5_MAX_CHUNKS);
            conts[(*n_conts)++] = (h5_span){ ca, cl };
        } else if (type != H5M_NIL) {
            if (h5_hdr_add_msg(o, type, flags, pos, size) != 0)
                return cv_fail(e, "hdf5: out of memory");
        }
        pos += size;
    }
    /* v1: trailing bytes are padding; v2: fewer than a message header is a "gap". */
    return 0;
}

/* Appends [addr, addr+len) of the file to o->buf; returns the buffer offset. */
static int h5_hdr_append(cv_h5 *h, uint64_t oaddr, h5_ohdr *o, uint64_t addr, uint64_t len,
                         size_t *at, cv_err *e)
{
    if (!h5_in(h, addr, len))
        return cv_fail(e, "hdf5: object header at 0x%llx: chunk at 0x%llx (%llu bytes) past end of file",
                       HX(oaddr), HX(addr), HX(len));
    if (len > H5_MAX_HDR || o->len + len > H5_MAX_HDR)
        return cv_fail(e, "hdf5: object header at 0x%llx: larger than %u bytes", HX(oaddr), H5_MAX_HDR);
    /* + 1: an empty chunk still gets a buffer to point into. */
    if (h5_hdr_grow(o, o->len + (size_t)len + 1) != 0) return cv_fail(e, "hdf5: out of memory");
    if (h5_read(h, addr, o->buf + o->len, (size_t)len, "object header chunk", e) != 0) return -1;
    *at = o->len;
    o->len += (size_t)len;
    return 0;
}

static int h5_hdr_load_uncached(cv_h5 *h, uint64_t addr, h5_ohdr *o, cv_err *e)
{
    o->addr = H5_UNDEF;
    o->len = 0;
    o->n = 0;
    free(o->lidx);
    o->lidx = NULL;
    o->lmask = 0;
    for (int i = 0; i <= H5M_FSINFO; i++) o->first[i] = -1;
    uint8_t pre[64];
    if (!h5_in(h, addr, 16))
        return cv_fail(e, "hdf5: object header at 0x%llx past end of file", HX(addr));
    size_t plen = h->size - addr < sizeof pre ? (size_t)(h->size - addr) : sizeof pre;
    if (h5_read(h, addr, pre, plen, "object header", e) != 0) return -1;

    h5_span *conts = malloc(H5_MAX_CHUNKS * sizeof *conts);
    if (!conts) return cv_fail(e, "hdf5: out of memory");
    int n_conts = 0, crt_order = 0, rc = -1;
    size_t at, c0skip = 0;
    uint64_t c0addr, c0len;

    if (memcmp(pre, "OHDR", 4) == 0) {
        /* Version 2 object header (section IV.A.1.b): signature, version, flags,
         * optional times and attribute phase-change values, chunk 0 size. */
        h5_cur c = h5_cursor(pre, plen);
        h5_skip(&c, 4);
        unsigned ver = (unsigned)h5_u(&c, 1), fl = (unsigned)h5_u(&c, 1);
        if (ver != 2) { cv_fail(e, "hdf5: object header at 0x%llx: OHDR version %u", HX(addr), ver); goto out; }
        if (fl & 0x20) h5_skip(&c, 16);
        if (fl & 0x10) h5_skip(&c, 4);
        c0len = h5_u(&c, 1 << (fl & 3));
        if (c.bad) { cv_fail(e, "hdf5: object header at 0x%llx: truncated prefix", HX(addr)); goto out; }
        crt_order = (fl & 0x04) != 0;
        o->version = 2;
        c0addr = addr + c.i;
        c0skip = c.i;
        if (c0len > H5_MAX_HDR) {
            cv_fail(e, "hdf5: object header at 0x%llx: larger than %u bytes", HX(addr), H5_MAX_HDR);
            goto out;
        }
    } else {
        /* Version 1 (section IV.A.1.a): version, reserved, message count, reference
         * count, header size; messages start at the next 8-byte boundary (16). */
        if (pre[0] != 1) {
            cv_fail(e, "hdf5: object header at 0x%llx: unknown version %u (bad address?)", HX(addr), pre[0]);
            goto out;
        }
        o->version = 1;
        c0len = h5_le(pre + 8, 4);
        c0addr = addr + 16;
    }
    if (o->version == 2) {
        /* Chunk 0 of a v2 header is followed by a checksum of the header from
         * its signature: read prefix, messages and checksum together. */
        if (h5_hdr_append(h, addr, o, addr, c0skip + c0len + 4, &at, e) != 0) goto out;
        if (!h5_checksum_ok(o->buf + at, c0skip + (size_t)c0len)) {
            cv_fail(e, "hdf5: object header at 0x%llx: checksum mismatch (corrupt file)", HX(addr));
            goto out;
        }
        at += c0skip;
    } else if (h5_hdr_append(h, addr, o, c0addr, c0len, &at, e) != 0) {
        goto out;
    }
    if (h5_hdr_parse_chunk(h, addr, o, at, (size_t)c0len, crt_order, conts, &n_conts, e) != 0) goto out;

    /* Continuation chunks, in order; a repeated address is a loop. */
    for (int i = 0; i < n_conts; i++) {
        uint64_t ca = conts[i].addr, cl = conts[i].len;
        if (ca == addr || ca == c0addr) {
            cv_fail(e, "hdf5: object header at 0x%llx: continuation loops back to the header", HX(addr));
            goto out;
        }
        for (int j = 0; j < i; j++)
            if (conts[j].addr == ca) {
                cv_fail(e, "hdf5: object header at 0x%llx: continuation loop at 0x%llx", HX(addr), HX(ca));
                goto out;
            }
        if (!h5_in(h, ca, cl)) {
            cv_fail(e, "hdf5: object header at 0x%llx: continuation past end of file", HX(addr));
            goto out;
        }
        if (h5_hdr_append(h, addr, o, ca, cl, &at, e) != 0) goto out;
        size_t mstart = at, mlen = (size_t)cl;
        if (o->version == 2) {
            /* "OCHK" signature, messages, checksum (section IV.A.1.b). */
            if (cl < 8 || memcmp(o->buf + at, "OCHK", 4) != 0) {
                cv_fail(e, "hdf5: object header at 0x%llx: continuation chunk at 0x%llx lacks OCHK",
                        HX(addr), HX(ca));
                goto out;
            }
            if (!h5_checksum_ok(o->buf + at, (size_t)cl - 4)) {
                cv_fail(e, "hdf5: object header at 0x%llx: continuation chunk at 0x%llx: checksum mismatch (corrupt file)",
                        HX(addr), HX(ca));
                goto out;
            }
            mstart += 4;
            mlen -= 8;
        }
        if (h5_hdr_parse_chunk(h, addr, o, mstart, mlen, crt_order, conts, &n_conts, e) != 0) goto out;
    }
    o->addr = addr;
    rc = 0;
out:
    free(conts);
    if (rc != 0) { o->n = 0; o->len = 0; }
    return rc;
}

static void h5_hdr_drop(h5_ohdr *o)
{
    free(o->buf);
    free(o->msgs);
    free(o->lidx);
    memset(o, 0, sizeof *o);
    o->addr = H5_UNDEF;
}

/* The object header at addr, from the cache or loaded into its least recently
 * used entry. The pointer stays valid until H5_NHDR other headers are asked for. */
static h5_ohdr *h5_hdr(cv_h5 *h, uint64_t addr, cv_err *e)
{
    if (addr == H5_UNDEF) { cv_fail(e, "hdf5: object at undefined address"); return NULL; }
    int lru = 0;
    for (int i = 0; i < H5_NHDR; i++) {
        if (h->hdr[i].addr == addr) {
            h->hdr[i].used = ++h->tick;
            return &h->hdr[i];
        }
        if (h->hdr[i].used < h->hdr[lru].used) lru = i;
    }
    h5_ohdr *o = &h->hdr[lru];
    if (h5_hdr_load_uncached(h, addr, o, e) != 0) return NULL;
    o->used = ++h->tick;
    /* Bound the cache: a hostile file may have headers of up to H5_MAX_HDR. */
    for (;;) {
        size_t total = 0;
        int big = -1;
        for (int i = 0; i < H5_NHDR; i++) {
            total += h->hdr[i].cap;
            if (&h->hdr[i] != o && (big < 0 || h->hdr[i].cap > h->hdr[big].cap)) big = i;
        }
        if (total <= H5_HDR_CACHE_BYTES || big < 0 || h->hdr[big].cap == 0) break;
        h5_hdr_drop(&h->hdr[big]);
    }
    return o;
}

/* First message of a type, or NULL (known types in O(1): a group header may
 * hold 65536 link messages and is asked about several types per lookup). */
static const h5_msg *h5_find_msg(const h5_ohdr *o, unsigned type)
{
    if (type <= H5M_FSINFO) return o->first[type] >= 0 && o->first[type] < o->n ? &o->msgs[o->first[type]] : NULL;
    for (int i = 0; i < o->n; i++)
        if (o->msgs[i].type == type) return &o->msgs[i];
    return NULL;
}

/* A shared message (flag bit 1, section IV.A.1) holds a reference into another
 * header or the shared message heap instead of the message: refused. */
static int h5_msg_plain(const h5_ohdr *o, const h5_msg *m, const char *what, cv_err *e)
{
    if (m->flags & 0x02)
        return cv_fail(e, "hdf5: object header at 0x%llx: shared %s message not supported", HX(o->addr), what);
    return 0;
}

/* Unknown messages marked "fail if not understood" (flag bit 7, section IV.A.1). */
static int h5_hdr_check_unknown(const h5_ohdr *o, cv_err *e)
{
    for (int i = 0; i < o->n; i++)
        if (o->msgs[i].type > H5M_FSINFO && (o->msgs[i].flags & 0x80))
            return cv_fail(e, "hdf5: object header at 0x%llx: unsupported message type 0x%x marked mandatory",
                           HX(o->addr), o->msgs[i].type);
    return 0;
}

/* ---- dataspace and datatype (sections IV.A.2.b, IV.A.2.d) ----------------------- */

typedef struct {
    int rank;               /* 0 for scalar */
    int null;               /* null dataspace: no elements */
    uint64_t dims[CV_H5_MAX_RANK];
    uint64_t nelem;
} h5_space;

static int h5_parse_space(const cv_h5 *h, const uint8_t *p, size_t n, h5_space *s,
                          uint64_t oaddr, cv_err *e)
{
    h5_cur c = h5_cursor(p, n);
    memset(s, 0, sizeof *s);
    unsigned ver = (unsigned)h5_u(&c, 1), rank = (unsigned)h5_u(&c, 1);
    unsigned flags = (unsigned)h5_u(&c, 1);
    (void)flags;
    if (ver == 1) {
        h5_skip(&c, 5);                     /* reserved(1) + reserved(4) */
    } else if (ver == 2) {
        unsigned type = (unsigned)h5_u(&c, 1);  /* 0 scalar, 1 simple, 2 null */
        if (type == 2) s->null = 1;
        else if (type > 2) return cv_fail(e, "hdf5: object header at 0x%llx: dataspace type %u", HX(oaddr), type);
        if (type == 0 && rank != 0)
            return cv_fail(e, "hdf5: object header at 0x%llx: scalar dataspace with rank %u", HX(oaddr), rank);
    } else {
        return cv_fail(e, "hdf5: object header at 0x%llx: dataspace version %u not supported", HX(oaddr), ver);
    }
    if (rank > CV_H5_MAX_RANK)
        return cv_fail(e, "hdf5: object header at 0x%llx: dataspace rank %u > %d", HX(oaddr), rank, CV_H5_MAX_RANK);
    s->rank = (int)rank;
    uint64_t ne = s->null ? 0 : 1;
    for (unsigned i = 0; i < rank; i++) {
        s->dims[i] = h5_u(&c, h->sl);
        if (!s->null && __builtin_mul_overflow(ne, s->dims[i], &ne))
            return cv_fail(e, "hdf5: object header at 0x%llx: dataspace element count overflows", HX(oaddr));
    }
    /* Maximum dimensions / permutation follow; not needed. */
    if (c.bad) return cv_fail(e, "hdf5: object header at 0x%llx: dataspace message truncated", HX(oaddr));
    s->nelem = ne;
    return 0;
}

typedef struct {
    unsigned cls, version;
    uint32_t bits;          /* class bit fields (24 bits) */
    uint32_t size;
    const uint8_t *props;   /* class properties */
    size_t props_len;
} h5_type;

static int h5_parse_type(const uint8_t *p, size_t n, h5_type *t, uint64_t oaddr, cv_err *e)
{
    h5_cur c = h5_cursor(p, n);
    unsigned cv = (unsigned)h5_u(&c, 1);
    t->cls = cv & 0x0f;
    t->version = cv >> 4;
    t->bits = (uint32_t)h5_u(&c, 3);
    t->size = (uint32_t)h5_u(&c, 4);
    if (c.bad) return cv_fail(e, "hdf5: object header at 0x%llx: datatype message truncated", HX(oaddr));
    t->props = p + c.i;
    t->props_len = n - c.i;
    return 0;
}

static const char *h5_class_name(unsigned cls)
{
    static const char *names[] = { "integer", "float", "time", "string", "bitfield", "opaque",
                                   "compound", "reference", "enum", "variable-length", "array",
                                   "complex" };
    return cls < sizeof names / sizeof names[0] ? names[cls] : "unknown";
}

/* Element kinds a dataset read converts to float32. */
enum { H5K_F16 = 1, H5K_F32, H5K_F64, H5K_I8, H5K_U8, H5K_I16, H5K_U16, H5K_I32, H5K_U32, H5K_I64, H5K_U64 };

/* Fixed-point class (section IV.A.2.d, class 0): little-endian, bit 3 signed,
 * the whole element holding the value (offset 0, full precision). */
static int h5_check_int(const h5_type *t, uint64_t oaddr, int *kind, cv_err *e)
{
    if (t->bits & 0x01)
        return cv_fail(e, "hdf5: dataset at 0x%llx: big-endian integers not supported", HX(oaddr));
    h5_cur c = h5_cursor(t->props, t->props_len);
    unsigned boff = (unsigned)h5_u(&c, 2), prec = (unsigned)h5_u(&c, 2);
    int sg = (t->bits & 0x08) != 0;
    if (c.bad || boff != 0 || prec != 8 * t->size)
        return cv_fail(e, "hdf5: dataset at 0x%llx: integer with padding bits not supported", HX(oaddr));
    switch (t->size) {
    case 1: *kind = sg ? H5K_I8 : H5K_U8; return 0;
    case 2: *kind = sg ? H5K_I16 : H5K_U16; return 0;
    case 4: *kind = sg ? H5K_I32 : H5K_U32; return 0;
    case 8: *kind = sg ? H5K_I64 : H5K_U64; return 0;
    }
    return cv_fail(e, "hdf5: dataset at 0x%llx: %u-byte integers not supported", HX(oaddr), t->size);
}

/* Float class (section IV.A.2.d, class 1): only IEEE binary16/32/64, little-endian.
 * Integers (class 0) are accepted too: Keras stores some counters as int64. */
static int h5_check_numeric(const h5_type *t, uint64_t oaddr, int *kind, cv_err *e)
{
    if (t->cls == 0) return h5_check_int(t, oaddr, kind, e);
    if (t->cls != 1)
        return cv_fail(e, "hdf5: dataset at 0x%llx: datatype class %u (%s) is not numeric",
                       HX(oaddr), t->cls, h5_class_name(t->cls));
    *kind = t->size == 2 ? H5K_F16 : t->size == 4 ? H5K_F32 : H5K_F64;
    /* Bit 0 byte order and bit 6 (VAX order when both set): little-endian is 0/0. */
    if (t->bits & 0x41)
        return cv_fail(e, "hdf5: dataset at 0x%llx: big-endian or VAX float not supported", HX(oaddr));
    static const struct { unsigned size, eloc, esz, msz, bias; } ieee[] = {
        { 2, 10, 5, 10, 15 }, { 4, 23, 8, 23, 127 }, { 8, 52, 11, 52, 1023 },
    };
    h5_cur c = h5_cursor(t->props, t->props_len);
    unsigned boff = (unsigned)h5_u(&c, 2), prec = (unsigned)h5_u(&c, 2);
    unsigned eloc = (unsigned)h5_u(&c, 1), esz = (unsigned)h5_u(&c, 1);
    unsigned mloc = (unsigned)h5_u(&c, 1), msz = (unsigned)h5_u(&c, 1);
    unsigned bias = (unsigned)h5_u(&c, 4);
    if (c.bad) return cv_fail(e, "hdf5: dataset at 0x%llx: float datatype truncated", HX(oaddr));
    for (size_t i = 0; i < sizeof ieee / sizeof ieee[0]; i++) {
        if (t->size != ieee[i].size) continue;
        unsigned sign = (t->bits >> 8) & 0xff;
        if (boff == 0 && prec == 8 * t->size && eloc == ieee[i].eloc && esz == ieee[i].esz &&
            mloc == 0 && msz == ieee[i].msz && bias == ieee[i].bias && sign == 8 * t->size - 1)
            return 0;
        break;
    }
    return cv_fail(e, "hdf5: dataset at 0x%llx: %u-byte float is not IEEE binary%u", HX(oaddr),
                   t->size, 8 * t->size);
}

/* ---- local heap and symbol tables (sections III.D, III.C, III.A.1) -------------- */

typedef struct { uint64_t data, size; } h5_lheap;

static int h5_lheap_open(cv_h5 *h, uint64_t addr, h5_lheap *lh, cv_err *e)
{
    /* "HEAP", version 0, reserved(3), data segment size (L), free list offset (L),
     * data segment address (O). */
    uint8_t b[48];
    size_t n = 8 + 2 * (size_t)h->sl + (size_t)h->so;
    if (h5_read(h, addr, b, n, "local heap", e) != 0) return -1;
    if (memcmp(b, "HEAP", 4) != 0)
        return cv_fail(e, "hdf5: local heap at 0x%llx: bad signature", HX(addr));
    if (b[4] != 0) return cv_fail(e, "hdf5: local heap at 0x%llx: version %u", HX(addr), b[4]);
    h5_cur c = h5_cursor(b + 8, n - 8);
    lh->size = h5_u(&c, h->sl);
    h5_skip(&c, (size_t)h->sl);
    lh->data = h5_addr(h, &c);
    if (!h5_in(h, lh->data, lh->size))
        return cv_fail(e, "hdf5: local heap at 0x%llx: data segment past end of file", HX(addr));
    return 0;
}

/* Copies the NUL-terminated name at heap offset off into buf[H5_MAX_NAME + 1]. */
static int h5_lheap_name(cv_h5 *h, const h5_lheap *lh, uint64_t off, char *buf, cv_err *e)
{
    if (off >= lh->size)
        return cv_fail(e, "hdf5: local heap at data 0x%llx: name offset %llu past heap size %llu",
                       HX(lh->data), HX(off), HX(lh->size));
    uint64_t avail = lh->size - off;
    size_t got = 0;
    while (got <= H5_MAX_NAME && got < avail) {
        size_t step = 64;
        if (step > avail - got) step = (size_t)(avail - got);
        if (step > H5_MAX_NAME + 1 - got) step = H5_MAX_NAME + 1 - got;
        if (h5_read(h, lh->data + off + got, buf + got, step, "local heap name", e) != 0) return -1;
        void *z = memchr(buf + got, 0, step);
        if (z) return 0;
        got += step;
    }
    return cv_fail(e, "hdf5: local heap at data 0x%llx: name at offset %llu unterminated or longer than %d",
                   HX(lh->data), HX(off), H5_MAX_NAME);
}

/* Visiting budget for one B-tree walk: a valid tree has at most one node per
 * 24 bytes of file, so more visits mean a DAG that revisits nodes. */
static uint64_t h5_budget(const cv_h5 *h) { return h->size / 24 + 16; }

typedef struct {
    int level, n;
    uint64_t addr;
} h5_bt_node;

/* Reads a version 1 B-tree node header (section III.A.1): "TREE", type, level,
 * entries used, left and right siblings; checks the whole node lies in the file. */
static int h5_bt_node_open(cv_h5 *h, uint64_t addr, unsigned type, int expect_level,
                           size_t key_size, h5_bt_node *nd, cv_err *e)
{
    uint8_t b[8];
    if (h5_read(h, addr, b, 8, "B-tree node", e) != 0) return -1;
    if (memcmp(b, "TREE", 4) != 0) return cv_fail(e, "hdf5: B-tree node at 0x%llx: bad signature", HX(addr));
    if (b[4] != type)
        return cv_fail(e, "hdf5: B-tree node at 0x%llx: type %u, expected %u", HX(addr), b[4], type);
    nd->level = b[5];
    nd->n = (int)h5_le(b + 6, 2);
    nd->addr = addr;
    if (expect_level >= 0 && nd->level != expect_level)
        return cv_fail(e, "hdf5: B-tree node at 0x%llx: level %d where %d expected (cycle?)",
                       HX(addr), nd->level, expect_level);
    if (nd->level > H5_MAX_LEVEL)
        return cv_fail(e, "hdf5: B-tree node at 0x%llx: level %d too deep", HX(addr), nd->level);
    int k = type == 0 ? h->group_k : h->chunk_k;
    if (nd->n > 2 * k)
        return cv_fail(e, "hdf5: B-tree node at 0x%llx: %d entries, more than 2K = %d", HX(addr), nd->n, 2 * k);
    uint64_t sz = 8 + 2 * (uint64_t)h->so + (uint64_t)(nd->n + 1) * key_size + (uint64_t)nd->n * (uint64_t)h->so;
    if (!h5_in(h, addr, sz)) return cv_fail(e, "hdf5: B-tree node at 0x%llx: %d entries past end of file", HX(addr), nd->n);
    return 0;
}

static uint64_t h5_bt_key_at(const cv_h5 *h, const h5_bt_node *nd, size_t key_size, int i)
{
    return nd->addr + 8 + 2 * (uint64_t)h->so + (uint64_t)i * (key_size + (uint64_t)h->so);
}

static int h5_bt_child(cv_h5 *h, const h5_bt_node *nd, size_t key_size, int i, uint64_t *child, cv_err *e)
{
    uint8_t b[8];
    if (h5_read(h, h5_bt_key_at(h, nd, key_size, i) + key_size, b, (size_t)h->so, "B-tree child", e) != 0)
        return -1;
    *child = h5_addr_val(h5_le(b, h->so), h->so);
    return 0;
}

/* One link as handed to list callbacks and lookups. */
typedef struct {
    char name[H5_MAX_NAME + 1];
    uint64_t obj;
} h5_link;

/* Reads entry i of a symbol table node (section III.C / III.B "Symbol Table Entry"). */
static int h5_snod_entry(cv_h5 *h, uint64_t snod, int i, const h5_lheap *lh, h5_link *lk, cv_err *e)
{
    size_t esz = 2 * (size_t)h->so + 24;
    uint8_t b[40];
    if (h5_read(h, snod + 8 + (uint64_t)i * esz, b, 2 * (size_t)h->so + 8, "symbol table entry", e) != 0) return -1;
    h5_cur c = h5_cursor(b, sizeof b);
    uint64_t name_off = h5_u(&c, h->so);
    lk->obj = h5_addr(h, &c);
    unsigned cache = (unsigned)h5_u(&c, 4);
    if (h5_lheap_name(h, lh, name_off, lk->name, e) != 0) return -1;
    /* Cache type 2: the entry is a soft link (its value sits in the scratch pad). */
    if (cache == 2)
        return cv_fail(e, "hdf5: group entry '%s': soft links not supported", lk->name);
    if (!h5_in(h, lk->obj, 16))
        return cv_fail(e, "hdf5: group entry '%s': object header address 0x%llx past end of file",
                       lk->name, HX(lk->obj));
    return 0;
}

static int h5_snod_open(cv_h5 *h, uint64_t addr, int *n, cv_err *e)
{
    /* "SNOD", version 1, reserved, number of symbols (2), entries. */
    uint8_t b[8];
    if (h5_read(h, addr, b, 8, "symbol table node", e) != 0) return -1;
    if (memcmp(b, "SNOD", 4) != 0)
        return cv_fail(e, "hdf5: symbol table node at 0x%llx: bad signature", HX(addr));
    if (b[4] != 1) return cv_fail(e, "hdf5: symbol table node at 0x%llx: version %u", HX(addr), b[4]);
    *n = (int)h5_le(b + 6, 2);
    if (!h5_in(h, addr, 8 + (uint64_t)*n * (2 * (uint64_t)h->so + 24)))
        return cv_fail(e, "hdf5: symbol table node at 0x%llx: %d entries past end of file", HX(addr), *n);
    return 0;
}

typedef int (*h5_link_cb)(void *ctx, const h5_link *lk);

/* In-order walk of a group B-tree (type 0); level -1 for the root. */
static int h5_gtree_walk(cv_h5 *h, uint64_t addr, int level, const h5_lheap *lh, uint64_t *budget,
                         h5_link_cb cb, void *ctx, cv_err *e)
{
    h5_bt_node nd;
    if (*budget == 0) return cv_fail(e, "hdf5: group B-tree at 0x%llx: too many nodes (cycle?)", HX(addr));
    (*budget)--;
    if (h5_bt_node_open(h, addr, 0, level, (size_t)h->sl, &nd, e) != 0) return -1;
    for (int i = 0; i < nd.n; i++) {
        uint64_t child;
        if (h5_bt_child(h, &nd, (size_t)h->sl, i, &child, e) != 0) return -1;
        if (nd.level > 0) {
            int r = h5_gtree_walk(h, child, nd.level - 1, lh, budget, cb, ctx, e);
            if (r != 0) return r;
            continue;
        }
        int ns;
        if (*budget == 0) return cv_fail(e, "hdf5: group B-tree at 0x%llx: too many nodes (cycle?)", HX(addr));
        (*budget)--;
        if (h5_snod_open(h, child, &ns, e) != 0) return -1;
        for (int j = 0; j < ns; j++) {
            h5_link lk;
            if (h5_snod_entry(h, child, j, lh, &lk, e) != 0) return -1;
            int r = cb(ctx, &lk);
            if (r != 0) return r;
        }
    }
    return 0;
}

/* Name lookup in a group B-tree: child i holds names in (key i, key i+1]
 * (section III.A.1, "Group Nodes"). Returns 1 found, 0 absent, -1 error. */
static int h5_gtree_find(cv_h5 *h, uint64_t addr, int level, const h5_lheap *lh, const char *name,
                         uint64_t *out, cv_err *e)
{
    char key[H5_MAX_NAME + 1];
    for (int depth = 0; depth <= H5_MAX_LEVEL + 1; depth++) {
        h5_bt_node nd;
        if (h5_bt_node_open(h, addr, 0, level, (size_t)h->sl, &nd, e) != 0) return -1;
        int pick = -1;
        for (int i = 0; i < nd.n; i++) {
            uint8_t kb[8];
            if (h5_read(h, h5_bt_key_at(h, &nd, (size_t)h->sl, i + 1), kb, (size_t)h->sl, "B-tree key", e) != 0)
                return -1;
            if (h5_lheap_name(h, lh, h5_le(kb, h->sl), key, e) != 0) return -1;
            if (strcmp(name, key) <= 0) { pick = i; break; }
        }
        if (pick < 0) return 0;
        uint64_t child;
        if (h5_bt_child(h, &nd, (size_t)h->sl, pick, &child, e) != 0) return -1;
        if (nd.level > 0) {
            addr = child;
            level = nd.level - 1;
            continue;
        }
        int ns;
        if (h5_snod_open(h, child, &ns, e) != 0) return -1;
        for (int j = 0; j < ns; j++) {
            h5_link lk;
            if (h5_snod_entry(h, child, j, lh, &lk, e) != 0) return -1;
            if (strcmp(lk.name, name) == 0) { *out = lk.obj; return 1; }
        }
        return 0;
    }
    return cv_fail(e, "hdf5: group B-tree at 0x%llx: too deep", HX(addr));
}

/* ---- groups ---------------------------------------------------------------------- */

typedef struct {
    int kind;               /* 1 symbol table, 2 compact links */
    uint64_t btree;
    h5_lheap heap;
} h5_group;

/* Link message (section IV.A.2.g): decodes one into lk; soft/external refused. */
static int h5_parse_link(cv_h5 *h, const h5_ohdr *o, const h5_msg *m, h5_link *lk, cv_err *e)
{
    h5_cur c = h5_cursor(o->buf + m->off, m->len);
    unsigned ver = (unsigned)h5_u(&c, 1), fl = (unsigned)h5_u(&c, 1);
    if (ver != 1) return cv_fail(e, "hdf5: object header at 0x%llx: link message version %u", HX(o->addr), ver);
    unsigned ltype = 0;
    if (fl & 0x08) ltype = (unsigned)h5_u(&c, 1);
    if (fl & 0x04) h5_skip(&c, 8);          /* creation order */
    if (fl & 0x10) h5_skip(&c, 1);          /* name character set */
    uint64_t nlen = h5_u(&c, 1 << (fl & 3));
    if (c.bad || nlen == 0 || nlen > H5_MAX_NAME || nlen > c.n - c.i)
        return cv_fail(e, "hdf5: object header at 0x%llx: bad link name length", HX(o->addr));
    const uint8_t *nm = h5_take(&c, (size_t)nlen);
    memcpy(lk->name, nm, (size_t)nlen);
    lk->name[nlen] = 0;
    if (ltype != 0)
        return cv_fail(e, "hdf5: link '%s': %s links not supported", lk->name,
                       ltype == 1 ? "soft" : ltype == 64 ? "external" : "user-defined");
    lk->obj = h5_addr(h, &c);
    if (c.bad) return cv_fail(e, "hdf5: object header at 0x%llx: link message truncated", HX(o->addr));
    if (!h5_in(h, lk->obj, 16))
        return cv_fail(e, "hdf5: link '%s': object header address 0x%llx past end of file", lk->name, HX(lk->obj));
    return 0;
}

/* Classifies an object header: 1 group, 0 dataset. Fills g for groups if non-NULL. */
static int h5_classify(cv_h5 *h, uint64_t obj, h5_group *g, cv_err *e)
{
    h5_ohdr *o = h5_hdr(h, obj, e);
    if (!o) return -1;
    const h5_msg *st = h5_find_msg(o, H5M_STAB);
    if (st) {
        if (h5_msg_plain(o, st, "symbol table", e) != 0) return -1;
        if (g) {
            /* Symbol table message (section IV.A.2.r): v1 B-tree address, local heap address. */
            h5_cur c = h5_cursor(o->buf + st->off, st->len);
            g->kind = 1;
            g->btree = h5_addr(h, &c);
            uint64_t heap = h5_addr(h, &c);
            if (c.bad) return cv_fail(e, "hdf5: object header at 0x%llx: symbol table message truncated", HX(obj));
            if (h5_lheap_open(h, heap, &g->heap, e) != 0) return -1;
        }
        return 1;
    }
    const h5_msg *li = h5_find_msg(o, H5M_LINFO);
    if (li || h5_find_msg(o, H5M_LINK)) {
        if (li) {
            /* Link info (section IV.A.2.c): version 0, flags, [max creation index],
             * fractal heap address; a defined heap means dense link storage. */
            h5_cur c = h5_cursor(o->buf + li->off, li->len);
            unsigned ver = (unsigned)h5_u(&c, 1), fl = (unsigned)h5_u(&c, 1);
            if (fl & 1) h5_skip(&c, 8);
            uint64_t fheap = h5_addr(h, &c);
            if (c.bad || ver != 0)
                return cv_fail(e, "hdf5: object header at 0x%llx: bad link info message", HX(obj));
            if (fheap != H5_UNDEF)
                return cv_fail(e, "hdf5: group at 0x%llx: dense link storage (fractal heap) not supported", HX(obj));
        }
        if (g) g->kind = 2;
        return 1;
    }
    if (h5_find_msg(o, H5M_LAYOUT)) return 0;
    return cv_fail(e, "hdf5: object at 0x%llx is neither a group nor a dataset", HX(obj));
}

/* The name of a link message, in place: 0, or -1 if the message is malformed. */
static int h5_link_name(const h5_ohdr *o, const h5_msg *m, const uint8_t **name, uint64_t *len)
{
    h5_cur c = h5_cursor(o->buf + m->off, m->len);
    unsigned ver = (unsigned)h5_u(&c, 1), fl = (unsigned)h5_u(&c, 1);
    if (fl & 0x08) h5_skip(&c, 1);
    if (fl & 0x04) h5_skip(&c, 8);
    if (fl & 0x10) h5_skip(&c, 1);
    uint64_t n = h5_u(&c, 1 << (fl & 3));
    if (c.bad || ver != 1 || n > c.n - c.i) return -1;
    *name = c.p + c.i;
    *len = n;
    return 0;
}

static uint64_t h5_name_hash(const void *k, size_t n)
{
    const uint8_t *p = k;
    uint64_t x = 1469598103934665603ull;   /* FNV-1a */
    for (size_t i = 0; i < n; i++) x = (x ^ p[i]) * 1099511628211ull;
    return x;
}

/* Indexes the link messages of a compact group by name (the first of equal
 * names wins, as a scan in header order would find it). */
static int h5_link_index(h5_ohdr *o, cv_err *e)
{
    size_t links = 0, cap = 16;
    for (int i = 0; i < o->n; i++) links += o->msgs[i].type == H5M_LINK;
    while (cap < 2 * links + 16) cap *= 2;
    o->lidx = calloc(cap, sizeof *o->lidx);
    if (!o->lidx) return cv_fail(e, "hdf5: out of memory");
    o->lmask = cap - 1;
    for (int i = 0; i < o->n; i++) {
        if (o->msgs[i].type != H5M_LINK) continue;
        const uint8_t *nm;
        uint64_t len;
        if (h5_link_name(o, &o->msgs[i], &nm, &len) != 0) {
            free(o->lidx);
            o->lidx = NULL;
            o->lmask = 0;
            return cv_fail(e, "hdf5: object header at 0x%llx: bad link message", HX(o->addr));
        }
        size_t j = (size_t)h5_name_hash(nm, (size_t)len) & o->lmask;
        for (;; j = (j + 1) & o->lmask) {
            uint32_t k = o->lidx[j];
            if (!k) {
                o->lidx[j] = (uint32_t)i + 1;
                break;
            }
            const uint8_t *om;
            uint64_t ol;
            h5_link_name(o, &o->msgs[k - 1], &om, &ol);
            if (ol == len && !memcmp(om, nm, (size_t)len)) break;   /* a duplicate: keep the first */
        }
    }
    return 0;
}

static int h5_group_lookup(cv_h5 *h, uint64_t grp, const char *name, uint64_t *out, cv_err *e)
{
    h5_group g;
    int k = h5_classify(h, grp, &g, e);
    if (k < 0) return -1;
    if (k == 0) return cv_fail(e, "hdf5: object at 0x%llx is not a group (looking up '%s')", HX(grp), name);
    if (strlen(name) > H5_MAX_NAME) return 0;
    if (g.kind == 1) {
        if (g.btree == H5_UNDEF) return 0;
        return h5_gtree_find(h, g.btree, -1, &g.heap, name, out, e);
    }
    h5_ohdr *o = h5_hdr(h, grp, e);   /* cached by h5_classify */
    if (!o) return -1;
    /* Compact links: a hash index of the link names, built at the first lookup
     * (a linear scan per lookup made a group of n links cost n^2). The name is
     * compared before the target is decoded, so that an unrelated soft link
     * does not fail the lookup. */
    if (!o->lmask && h5_link_index(o, e) != 0) return -1;
    size_t nl = strlen(name);
    for (size_t i = h5_name_hash(name, nl) & o->lmask;; i = (i + 1) & o->lmask) {
        uint32_t slot = o->lidx[i];
        if (!slot) return 0;
        const uint8_t *nm;
        uint64_t len;
        h5_link_name(o, &o->msgs[slot - 1], &nm, &len);   /* well-formed: indexed */
        if (len != nl || memcmp(nm, name, nl) != 0) continue;
        h5_link lk;
        if (h5_parse_link(h, o, &o->msgs[slot - 1], &lk, e) != 0) return -1;
        *out = lk.obj;
        return 1;
    }
}

/* ---- attributes (section IV.A.2.m) ------------------------------------------------ */

typedef struct {
    char name[H5_MAX_NAME + 1];
    h5_type type;
    h5_space space;
    const uint8_t *data;
    size_t data_len;
} h5_attr;

static size_t h5_pad8(size_t n) { return (n + 7) & ~(size_t)7; }

/* Decodes an attribute message; with name_only, just its name (so that an
 * exotic attribute does not stand in the way of looking up another one). */
static int h5_parse_attr(const cv_h5 *h, uint64_t oaddr, const uint8_t *p, size_t len, int name_only,
                         h5_attr *a, cv_err *e)
{
    h5_cur c = h5_cursor(p, len);
    unsigned ver = (unsigned)h5_u(&c, 1), fl = (unsigned)h5_u(&c, 1);
    size_t nsz = (size_t)h5_u(&c, 2), tsz = (size_t)h5_u(&c, 2), ssz = (size_t)h5_u(&c, 2);
    if (ver == 3) h5_skip(&c, 1);           /* name character set */
    if (c.bad) return cv_fail(e, "hdf5: object header at 0x%llx: attribute message truncated", HX(oaddr));
    if (ver < 1 || ver > 3)
        return cv_fail(e, "hdf5: object header at 0x%llx: attribute message version %u", HX(oaddr), ver);
    /* Version 1 pads name, datatype and dataspace to multiples of 8 bytes. */
    size_t pn = ver == 1 ? h5_pad8(nsz) : nsz, pt = ver == 1 ? h5_pad8(tsz) : tsz;
    size_t ps = ver == 1 ? h5_pad8(ssz) : ssz;
    const uint8_t *nm = h5_take(&c, pn), *tp = h5_take(&c, pt), *sp = h5_take(&c, ps);
    if (c.bad || nsz == 0 || nsz > pn || tsz > pt || ssz > ps)
        return cv_fail(e, "hdf5: object header at 0x%llx: attribute fields past end of message", HX(oaddr));
    /* The name size counts its NUL terminator. */
    size_t nl = strnlen((const char *)nm, nsz);
    if (nl > H5_MAX_NAME) return cv_fail(e, "hdf5: object header at 0x%llx: attribute name too long", HX(oaddr));
    memcpy(a->name, nm, nl);
    a->name[nl] = 0;
    if (name_only) return 0;
    /* Flags bits 0/1 (version 2+): datatype/dataspace stored as shared messages. */
    if (ver >= 2 && (fl & 3))
        return cv_fail(e, "hdf5: attribute '%s' at 0x%llx: shared datatype/dataspace not supported",
                       a->name, HX(oaddr));
    if (h5_parse_type(tp, tsz, &a->type, oaddr, e) != 0) return -1;
    if (h5_parse_space(h, sp, ssz, &a->space, oaddr, e) != 0) return -1;
    a->data = p + c.i;
    a->data_len = c.n - c.i;
    return 0;
}

/* Global heap lookups (section III.E). Consecutive lookups of one attribute
 * usually ask for increasing indexes of the same collection, so the walk resumes
 * where the previous one stopped; steps bounds the total work of one attribute. */
typedef struct {
    uint64_t addr, csize;   /* collection being walked (H5_UNDEF: none) */
    uint64_t pos;           /* offset of the object after the last one found */
    uint64_t steps;         /* objects examined so far */
} h5_gwalk;

#define H5_MAX_GHEAP_STEPS (4u << 20)

/* Finds object idx of the collection at addr: its data address and size. */
static int h5_gheap_find(cv_h5 *h, h5_gwalk *g, uint64_t addr, uint32_t idx, uint64_t *data, uint64_t *size,
                         cv_err *e)
{
    uint8_t b[24];
    uint64_t ohs = 8 + (uint64_t)h->sl;     /* index(2) refcount(2) reserved(4) size(L) */
    if (g->addr != addr) {
        if (h5_read(h, addr, b, 8 + (size_t)h->sl, "global heap collection", e) != 0) return -1;
        if (memcmp(b, "GCOL", 4) != 0)
            return cv_fail(e, "hdf5: global heap at 0x%llx: bad signature", HX(addr));
        if (b[4] != 1) return cv_fail(e, "hdf5: global heap at 0x%llx: version %u", HX(addr), b[4]);
        uint64_t csize = h5_le(b + 8, h->sl);
        if (csize < ohs || !h5_in(h, addr, csize))
            return cv_fail(e, "hdf5: global heap at 0x%llx: collection size %llu past end of file",
                           HX(addr), HX(csize));
        g->addr = addr;
        g->csize = csize;
        g->pos = ohs;
    }
    /* Objects follow the collection header, data padded to 8 bytes; index 0 is
     * the free space and ends the collection. Walk from the resume point to the
     * end, then once from the start. */
    for (int pass = 0; pass < 2; pass++) {
        uint64_t pos = pass == 0 ? g->pos : ohs, end = g->csize;
        while (end - pos >= ohs) {
            if (++g->steps > H5_MAX_GHEAP_STEPS)
                return cv_fail(e, "hdf5: global heap at 0x%llx: too many lookups", HX(addr));
            if (h5_read(h, addr + pos, b, (size_t)ohs, "global heap object", e) != 0) return -1;
            unsigned oi = (unsigned)h5_le(b, 2);
            uint64_t osz = h5_le(b + 8, h->sl);
            if (oi == 0) break;
            if (osz > end - pos - ohs)
                return cv_fail(e, "hdf5: global heap at 0x%llx: object %u size %llu past the collection",
                               HX(addr), oi, HX(osz));
            uint64_t next = pos + ohs + ((osz + 7) & ~(uint64_t)7);
            if (oi == idx) {
                *data = addr + pos + ohs;
                *size = osz;
                g->pos = next <= end ? next : end;
                return 0;
            }
            if (next > end) break;
            pos = next;
        }
        if (g->pos == ohs) break;           /* the first pass already started at the top */
    }
    return cv_fail(e, "hdf5: global heap at 0x%llx: object %u not found", HX(addr), idx);
}

void cv_h5_strings_free(char **s, int n)
{
    if (!s) return;
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
}

/* Decodes a string attribute's values into malloc'd strings. The header cache
 * may be replaced while reading global heaps, so a holds a private copy. */
static int h5_attr_decode_strings(cv_h5 *h, uint64_t obj, const h5_attr *a, char ***out, int *nout, cv_err *e)
{
    if (a->space.rank > 1)
        return cv_fail(e, "hdf5: attribute '%s' at 0x%llx: rank %d, expected scalar or 1-D",
                       a->name, HX(obj), a->space.rank);
    uint64_t n = a->space.nelem;
    uint64_t esz = a->type.size, need;
    int vlen = 0;
    if (n == 0) {
        /* h5py stores an empty list as an empty float array (Keras weight_names
         * of layers without weights): an empty list whatever the type. */
        *out = calloc(1, sizeof **out);
        *nout = 0;
        return *out ? 0 : cv_fail(e, "hdf5: out of memory");
    }
    if (a->type.cls == 9) {
        /* Variable-length (class 9): type in bits 0-3 must be 1 (string); elements
         * are length(4), global heap collection address (O), object index(4). */
        if ((a->type.bits & 0x0f) != 1)
            return cv_fail(e, "hdf5: attribute '%s' at 0x%llx: variable-length sequence, not a string", a->name, HX(obj));
        vlen = 1;
        esz = 4 + (uint64_t)h->so + 4;
    } else if (a->type.cls != 3) {
        return cv_fail(e, "hdf5: attribute '%s' at 0x%llx: datatype class %u (%s) is not a string",
                       a->name, HX(obj), a->type.cls, h5_class_name(a->type.cls));
    }
    if (!vlen && esz == 0)
        return cv_fail(e, "hdf5: attribute '%s' at 0x%llx: fixed-length string of size 0", a->name, HX(obj));
    if (__builtin_mul_overflow(n, esz, &need) || need > a->data_len)
        return cv_fail(e, "hdf5: attribute '%s' at 0x%llx: %llu values past end of message",
                       a->name, HX(obj), HX(n));
    if (n > INT32_MAX) return cv_fail(e, "hdf5: attribute '%s': too many values", a->name);
    char **v = calloc(n ? (size_t)n : 1, sizeof *v);
    if (!v) return cv_fail(e, "hdf5: out of memory");
    unsigned pad = vlen ? (a->type.bits >> 4) & 0x0f : a->type.bits & 0x0f;
    h5_gwalk gw = { H5_UNDEF, 0, 0, 0 };
    for (uint64_t i = 0; i < n; i++) {
        const uint8_t *p = a->data + i * esz;
        size_t len;
        if (vlen) {
            h5_cur c = h5_cursor(p, (size_t)esz);
            uint64_t slen = h5_u(&c, 4);
            uint64_t gaddr = h5_addr(h, &c);
            uint32_t gidx = (uint32_t)h5_u(&c, 4);
            uint64_t data = 0, osz = 0;
            if (slen > 0 && h5_gheap_find(h, &gw, gaddr, gidx, &data, &osz, e) != 0) goto fail;
            if (slen > osz) {
                cv_fail(e, "hdf5: attribute '%s': string of %llu bytes longer than its global heap object (%llu)",
                        a->name, HX(slen), HX(osz));
                goto fail;
            }
            v[i] = malloc((size_t)slen + 1);
            if (!v[i]) { cv_fail(e, "hdf5: out of memory"); goto fail; }
            if (slen > 0 && h5_read(h, data, v[i], (size_t)slen, "global heap object", e) != 0) goto fail;
            v[i][slen] = 0;
            len = (size_t)slen;
        } else {
            len = (size_t)esz;
            v[i] = malloc(len + 1);
            if (!v[i]) { cv_fail(e, "hdf5: out of memory"); goto fail; }
            memcpy(v[i], p, len);
            v[i][len] = 0;
        }
        /* Padding (class bits 0-3, or 4-7 for vlen): 0 null-terminated, 1 null-padded,
         * 2 space-padded. The value ends at the first NUL in every case (that is how
         * h5py returns fixed-length bytes); space padding is trimmed too. */
        len = strlen(v[i]);
        if (pad == 2)
            while (len > 0 && v[i][len - 1] == ' ') v[i][--len] = 0;
    }
    *out = v;
    *nout = (int)n;
    return 0;
fail:
    cv_h5_strings_free(v, (int)n);
    return -1;
}

/* Copies the attribute message named name out of obj's header: 1 found, 0 absent. */
static int h5_attr_find(cv_h5 *h, uint64_t obj, const char *name, h5_attr *a, uint8_t **copy, cv_err *e)
{
    h5_ohdr *o = h5_hdr(h, obj, e);
    if (!o) return -1;
    for (int i = 0; i < o->n; i++) {
        const h5_msg *m = &o->msgs[i];
        if (m->type != H5M_ATTR) continue;
        if (h5_parse_attr(h, obj, o->buf + m->off, m->len, 1, a, e) != 0) return -1;
        if (strcmp(a->name, name) != 0) continue;
        if (h5_msg_plain(o, m, "attribute", e) != 0) return -1;
        /* Decode from a private copy: reading global heaps may load other headers. */
        *copy = malloc(m->len ? m->len : 1);
        if (!*copy) return cv_fail(e, "hdf5: out of memory");
        memcpy(*copy, o->buf + m->off, m->len);
        return h5_parse_attr(h, obj, *copy, m->len, 0, a, e) == 0 ? 1 : -1;
    }
    /* Attribute info (section IV.A.2.v): a defined fractal heap means attributes
     * are stored densely, which this reader does not support. */
    const h5_msg *ai = h5_find_msg(o, H5M_AINFO);
    if (ai) {
        h5_cur c = h5_cursor(o->buf + ai->off, ai->len);
        h5_skip(&c, 1);
        unsigned fl = (unsigned)h5_u(&c, 1);
        if (fl & 1) h5_skip(&c, 2);
        uint64_t fheap = h5_addr(h, &c);
        if (!c.bad && fheap != H5_UNDEF)
            return cv_fail(e, "hdf5: object at 0x%llx: dense attribute storage not supported", HX(obj));
    }
    return 0;
}

/* ---- datasets (sections IV.A.2.i, IV.A.2.l) ---------------------------------------- */

typedef struct {
    h5_space space;
    int esize;
    int kind;               /* H5K_* */
    int layout;             /* 0 compact, 1 contiguous, 2 chunked */
    uint64_t addr, size;    /* contiguous: address/size; chunked: B-tree address */
    uint64_t compact_off;   /* compact: offset of the data in the header buffer */
    int crank;              /* chunked: dataset rank (chunk dims without the element dim) */
    uint64_t cdims[CV_H5_MAX_RANK];
    int n_filters;          /* deflate only */
    int filter_optional[H5_MAX_FILTERS];
    const h5_ohdr *hdr;     /* its header (compact data lives in it) */
} h5_dset;

/* Filter pipeline (section IV.A.2.l): accepts deflate (id 1) only. */
static int h5_parse_filters(const h5_ohdr *o, const h5_msg *m, h5_dset *d, cv_err *e)
{
    h5_cur c = h5_cursor(o->buf + m->off, m->len);
    unsigned ver = (unsigned)h5_u(&c, 1), nf = (unsigned)h5_u(&c, 1);
    if (ver != 1 && ver != 2)
        return cv_fail(e, "hdf5: dataset at 0x%llx: filter pipeline version %u", HX(o->addr), ver);
    if (nf > H5_MAX_FILTERS) return cv_fail(e, "hdf5: dataset at 0x%llx: %u filters", HX(o->addr), nf);
    if (ver == 1) h5_skip(&c, 6);
    for (unsigned i = 0; i < nf; i++) {
        unsigned id = (unsigned)h5_u(&c, 2);
        /* Version 2 omits the name length (and name) for library filters (< 256). */
        unsigned nlen = (ver == 1 || id >= 256) ? (unsigned)h5_u(&c, 2) : 0;
        unsigned fl = (unsigned)h5_u(&c, 2), ncd = (unsigned)h5_u(&c, 2);
        h5_skip(&c, ver == 1 ? h5_pad8(nlen) : nlen);
        h5_skip(&c, 4 * (size_t)ncd);
        if (ver == 1 && (ncd & 1)) h5_skip(&c, 4);     /* v1 pads client data to 8 */
        if (c.bad) return cv_fail(e, "hdf5: dataset at 0x%llx: filter pipeline truncated", HX(o->addr));
        if (id != 1) {
            static const char *known[] = { "", "deflate", "shuffle", "fletcher32", "szip", "nbit", "scaleoffset" };
            return cv_fail(e, "hdf5: dataset at 0x%llx: filter %u (%s) not supported (deflate only)",
                           HX(o->addr), id, id < 7 ? known[id] : "third-party");
        }
        d->filter_optional[i] = fl & 1;
    }
    d->n_filters = (int)nf;
    return 0;
}

static int h5_chunk_scan(cv_h5 *h, uint64_t obj, const h5_dset *d, cv_err *e);

static int h5_dset_open(cv_h5 *h, uint64_t obj, h5_dset *d, cv_err *e)
{
    memset(d, 0, sizeof *d);
    int k = h5_classify(h, obj, NULL, e);
    if (k < 0) return -1;
    if (k == 1) return cv_fail(e, "hdf5: object at 0x%llx is a group, not a dataset", HX(obj));
    h5_ohdr *o = h5_hdr(h, obj, e);   /* cached by h5_classify */
    if (!o) return -1;
    d->hdr = o;
    if (h5_hdr_check_unknown(o, e) != 0) return -1;
    const h5_msg *ms = h5_find_msg(o, H5M_DATASPACE), *mt = h5_find_msg(o, H5M_DATATYPE);
    const h5_msg *ml = h5_find_msg(o, H5M_LAYOUT), *mf = h5_find_msg(o, H5M_FILTER);
    if (!ms || !mt || !ml) return cv_fail(e, "hdf5: dataset at 0x%llx: missing dataspace, datatype or layout", HX(obj));
    if (h5_msg_plain(o, ms, "dataspace", e) || h5_msg_plain(o, mt, "datatype", e) ||
        h5_msg_plain(o, ml, "layout", e) || (mf && h5_msg_plain(o, mf, "filter pipeline", e)))
        return -1;
    if (h5_find_msg(o, H5M_EFL)) return cv_fail(e, "hdf5: dataset at 0x%llx: external storage not supported", HX(obj));
    if (h5_parse_space(h, o->buf + ms->off, ms->len, &d->space, obj, e) != 0) return -1;
    if (d->space.nelem > h->lim.max_tensor_elems)
        return cv_fail(e, "hdf5: dataset at 0x%llx: %llu elements exceed the limit %llu", HX(obj),
                       HX(d->space.nelem), HX(h->lim.max_tensor_elems));
    h5_type t;
    if (h5_parse_type(o->buf + mt->off, mt->len, &t, obj, e) != 0) return -1;
    if (h5_check_numeric(&t, obj, &d->kind, e) != 0) return -1;
    d->esize = (int)t.size;
    if (mf && h5_parse_filters(o, mf, d, e) != 0) return -1;

    /* Data layout message (section IV.A.2.i). */
    h5_cur c = h5_cursor(o->buf + ml->off, ml->len);
    unsigned ver = (unsigned)h5_u(&c, 1);
    uint64_t need;
    if (__builtin_mul_overflow(d->space.nelem, (uint64_t)d->esize, &need))
        return cv_fail(e, "hdf5: dataset at 0x%llx: data size overflows", HX(obj));
    if (ver == 1 || ver == 2) {
        /* Versions 1/2: rank, class, reserved(5), [address], dims(4 each), then
         * for compact a size(4) and the data. Chunked v1/v2 is not supported. */
        unsigned rank = (unsigned)h5_u(&c, 1);
        d->layout = (int)h5_u(&c, 1);
        h5_skip(&c, 5);
        if (d->layout == 1) d->addr = h5_addr(h, &c);
        else if (d->layout != 0)
            return cv_fail(e, "hdf5: dataset at 0x%llx: layout v%u class %d not supported", HX(obj), ver, d->layout);
        h5_skip(&c, 4 * (size_t)rank);
        if (d->layout == 0) {
            d->size = h5_u(&c, 4);
            d->compact_off = ml->off + c.i;
            h5_skip(&c, (size_t)d->size);
        } else {
            d->size = need;
        }
    } else if (ver == 3 || ver == 4) {
        /* Version 3 (and 4, identical for compact/contiguous): class, then
         * compact: size(2) + data; contiguous: address(O), size(L);
         * chunked: rank+1, B-tree address, dims(4 each, last = element size). */
        d->layout = (int)h5_u(&c, 1);
        if (d->layout == 0) {
            d->size = h5_u(&c, 2);
            d->compact_off = ml->off + c.i;
            h5_skip(&c, (size_t)d->size);
        } else if (d->layout == 1) {
            d->addr = h5_addr(h, &c);
            d->size = h5_u(&c, h->sl);
        } else if (d->layout == 2 && ver == 3) {
            unsigned nd = (unsigned)h5_u(&c, 1);
            d->addr = h5_addr(h, &c);
            if (nd < 1 || nd - 1 != (unsigned)d->space.rank)
                return cv_fail(e, "hdf5: dataset at 0x%llx: chunk rank %u does not match dataspace rank %d",
                               HX(obj), nd, d->space.rank);
            d->crank = (int)nd - 1;
            uint64_t celems = 1, cbytes;
            for (int i = 0; i < d->crank; i++) {
                d->cdims[i] = h5_u(&c, 4);
                if (d->cdims[i] == 0)
                    return cv_fail(e, "hdf5: dataset at 0x%llx: zero chunk dimension", HX(obj));
                if (__builtin_mul_overflow(celems, d->cdims[i], &celems))
                    return cv_fail(e, "hdf5: dataset at 0x%llx: chunk size overflows", HX(obj));
            }
            uint64_t elsz = h5_u(&c, 4);
            if (!c.bad && elsz != (uint64_t)d->esize)
                return cv_fail(e, "hdf5: dataset at 0x%llx: chunk element size %llu != datatype size %d",
                               HX(obj), HX(elsz), d->esize);
            if (__builtin_mul_overflow(celems, (uint64_t)d->esize, &cbytes) || cbytes > H5_MAX_CHUNK_BYTES ||
                celems > h->lim.max_tensor_elems)
                return cv_fail(e, "hdf5: dataset at 0x%llx: chunk of %llu elements too large", HX(obj), HX(celems));
            d->size = cbytes;
        } else if (d->layout == 2) {
            return cv_fail(e, "hdf5: dataset at 0x%llx: chunked layout v4 (new chunk indexes) not supported", HX(obj));
        } else if (d->layout == 3) {
            return cv_fail(e, "hdf5: dataset at 0x%llx: virtual datasets not supported", HX(obj));
        } else {
            return cv_fail(e, "hdf5: dataset at 0x%llx: layout class %d", HX(obj), d->layout);
        }
    } else {
        return cv_fail(e, "hdf5: dataset at 0x%llx: layout message version %u", HX(obj), ver);
    }
    if (c.bad) return cv_fail(e, "hdf5: dataset at 0x%llx: layout message truncated", HX(obj));
    if (d->layout != 2 && d->n_filters > 0)
        return cv_fail(e, "hdf5: dataset at 0x%llx: filters on a non-chunked dataset", HX(obj));
    if (d->layout == 0 && d->size < need)
        return cv_fail(e, "hdf5: dataset at 0x%llx: compact data %llu bytes, need %llu", HX(obj), HX(d->size), HX(need));
    if (d->layout == 2 && h5_chunk_scan(h, obj, d, e) != 0) return -1;
    if (d->layout == 1 && d->space.nelem > 0 && d->addr == H5_UNDEF)
        return cv_fail(e, "hdf5: dataset at 0x%llx: its data was never written", HX(obj));
    if (d->layout == 1 && d->addr != H5_UNDEF) {
        if (d->size < need)
            return cv_fail(e, "hdf5: dataset at 0x%llx: contiguous data %llu bytes, need %llu",
                           HX(obj), HX(d->size), HX(need));
        if (!h5_in(h, d->addr, need))
            return cv_fail(e, "hdf5: dataset at 0x%llx: data at 0x%llx (%llu bytes) past end of file",
                           HX(obj), HX(d->addr), HX(need));
    }
    return 0;
}

/* ---- element conversion ------------------------------------------------------------ */

static float h5_f16(uint16_t v)
{
    uint32_t sign = (uint32_t)(v & 0x8000) << 16, ex = (v >> 10) & 0x1f, man = v & 0x3ff, bits;
    if (ex == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);            /* inf / nan */
    } else if (ex != 0) {
        bits = sign | ((ex + 112) << 23) | (man << 13);     /* 127 - 15 = 112 */
    } else if (man == 0) {
        bits = sign;
    } else {
        /* Subnormal: normalize the mantissa. */
        int sh = 0;
        while (!(man & 0x400)) { man <<= 1; sh++; }
        bits = sign | ((uint32_t)(113 - sh) << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static float h5_f64(const uint8_t *p)
{
    double d;
    memcpy(&d, p, 8);
    /* Out-of-range conversion is undefined in C: saturate to infinity. */
    if (d > 3.4028234663852886e38) return __builtin_inff();
    if (d < -3.4028234663852886e38) return -__builtin_inff();
    return (float)d;
}

/* Converts n elements of the given kind at src into dst. src may overlap dst
 * when it starts at or after dst (every element is read before its slot, and a
 * slot never reaches past its own source: see h5_read_elems). */
static void h5_convert(float *dst, const uint8_t *src, size_t n, int kind)
{
    switch (kind) {
    case H5K_F32: memmove(dst, src, n * 4); break;
    case H5K_F16: for (size_t i = 0; i < n; i++) dst[i] = h5_f16((uint16_t)h5_le(src + 2 * i, 2)); break;
    case H5K_F64: for (size_t i = 0; i < n; i++) dst[i] = h5_f64(src + 8 * i); break;
    case H5K_I8:  for (size_t i = 0; i < n; i++) dst[i] = (float)(int8_t)src[i]; break;
    case H5K_U8:  for (size_t i = 0; i < n; i++) dst[i] = (float)src[i]; break;
    case H5K_I16: for (size_t i = 0; i < n; i++) dst[i] = (float)(int16_t)h5_le(src + 2 * i, 2); break;
    case H5K_U16: for (size_t i = 0; i < n; i++) dst[i] = (float)h5_le(src + 2 * i, 2); break;
    case H5K_I32: for (size_t i = 0; i < n; i++) dst[i] = (float)(int32_t)h5_le(src + 4 * i, 4); break;
    case H5K_U32: for (size_t i = 0; i < n; i++) dst[i] = (float)h5_le(src + 4 * i, 4); break;
    case H5K_I64: for (size_t i = 0; i < n; i++) dst[i] = (float)(int64_t)h5_le(src + 8 * i, 8); break;
    case H5K_U64: for (size_t i = 0; i < n; i++) dst[i] = (float)h5_le(src + 8 * i, 8); break;
    }
}

/* Reads n elements at addr straight into dst. Elements of s <= 4 bytes are read
 * into the top n*s bytes of dst and widened front to back in place: element j's
 * source starts at n(4-s) + sj and its result ends at 4j + 4, which is at most
 * the start of element j+1's source because (4-s)(j+1) <= (4-s)n. 8-byte
 * elements go through a scratch buffer. */
static int h5_read_elems(cv_h5 *h, uint64_t addr, float *dst, uint64_t n, int esize, int kind, cv_err *e)
{
    if (esize <= 4) {
        uint8_t *raw = (uint8_t *)dst + (size_t)n * (4 - (size_t)esize);
        if (h5_read(h, addr, raw, (size_t)n * (size_t)esize, "dataset data", e) != 0) return -1;
        if (kind != H5K_F32) h5_convert(dst, raw, (size_t)n, kind);
        return 0;
    }
    uint8_t tmp[8192];
    uint64_t done = 0;
    while (done < n) {
        size_t k = (size_t)(n - done < sizeof tmp / 8 ? n - done : sizeof tmp / 8);
        if (h5_read(h, addr + done * 8, tmp, k * 8, "dataset data", e) != 0) return -1;
        h5_convert(dst + done, tmp, k, kind);
        done += k;
    }
    return 0;
}

/* ---- chunked data (v1 B-tree type 1, section III.A.1) ------------------------------
 * A chunked dataset is walked twice. h5_dset_open scans the chunk index first
 * (keys only, no data): every chunk of the dataset must be stored exactly once,
 * and each must be able to hold its data: a deflated chunk expands at most
 * H5_MAX_INFLATE_RATIO-fold. Only then is anything allocated or read. The read
 * streams each chunk through a fixed window into the caller's array. */

/* Deflate emits at most 258 bytes per 2 bits (a length-258, distance-1 match
 * with 1-bit codes): 1032 bytes per byte of input. */
#define H5_MAX_INFLATE_RATIO 1032u
#define H5_WIN (64u * 1024)     /* decoded bytes on their way to dst; a multiple of 8 */
#define H5_INBUF (64u * 1024)   /* compressed input */

typedef struct {
    cv_h5 *h;
    const h5_dset *d;
    uint64_t obj;
    float *dst;             /* [nelem] (read), or NULL (scan) */
    uint8_t *win;           /* [H5_WIN] */
    uint8_t *in;            /* [H5_INBUF] */
    uint8_t *seen;          /* scan: one bit per chunk of the dataset */
    uint64_t n_chunks, found;
    uint64_t budget;
} h5_chunk_ctx;

/* Converts elements [first, first + n) of the chunk at offsets off[] (row-major
 * over the chunk dims) from src into dst, dropping those outside the dataset
 * (edge chunks overhang it). One run per chunk row. */
static void h5_chunk_put(h5_chunk_ctx *x, const uint64_t *off, uint64_t first, const uint8_t *src, uint64_t n)
{
    const h5_dset *d = x->d;
    int r = d->crank;
    if (r == 0) {
        if (first == 0 && n > 0) h5_convert(x->dst, src, 1, d->kind);
        return;
    }
    uint64_t row = d->cdims[r - 1];
    while (n > 0) {
        /* chunk coordinates of element `first` */
        uint64_t idx[CV_H5_MAX_RANK] = { 0 }, q = first;
        for (int k = r - 1; k >= 0; k--) {
            idx[k] = q % d->cdims[k];
            q /= d->cdims[k];
        }
        uint64_t len = row - idx[r - 1];
        if (len > n) len = n;
        int inside = 1;
        uint64_t at = 0;
        for (int k = 0; k < r; k++) {
            uint64_t pos = off[k] + idx[k];
            if (pos >= d->space.dims[k]) inside = 0;
            at = at * d->space.dims[k] + pos;
        }
        if (inside) {
            uint64_t keep = d->space.dims[r - 1] - (off[r - 1] + idx[r - 1]);
            h5_convert(x->dst + at, src, (size_t)(keep < len ? keep : len), d->kind);
        }
        src += len * (uint64_t)d->esize;
        first += len;
        n -= len;
    }
}

/* Inflates the chunk at addr (csize bytes) window by window into dst. */
static int h5_inflate_chunk(h5_chunk_ctx *x, const uint64_t *off, uint64_t addr, uint64_t csize, cv_err *e)
{
    const h5_dset *d = x->d;
    const size_t es = (size_t)d->esize;
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit(&z) != Z_OK) return cv_fail(e, "hdf5: zlib init failed");
    uint64_t pos = 0, elems = 0;   /* input consumed; chunk elements delivered */
    size_t carry = 0;              /* bytes of a split element at the start of win */
    int zr = Z_OK;
    /* Each Z_OK made progress; anything else (including Z_BUF_ERROR: input used
     * up or output full) ends the loop. At most one byte past the chunk size is
     * ever asked for: enough to tell a stream that runs over. */
    do {
        if (z.avail_in == 0 && pos < csize) {
            size_t step = csize - pos < H5_INBUF ? (size_t)(csize - pos) : H5_INBUF;
            if (h5_read(x->h, addr + pos, x->in, step, "chunk", e) != 0) { inflateEnd(&z); return -1; }
            z.next_in = x->in;
            z.avail_in = (uInt)step;
            pos += step;
        }
        uint64_t left = d->size - z.total_out;   /* total_out <= d->size + 1, see below */
        if (z.total_out > d->size) break;
        size_t room = H5_WIN - carry;
        if (left + 1 < room) room = (size_t)left + 1;
        z.next_out = x->win + carry;
        z.avail_out = (uInt)room;
        zr = inflate(&z, Z_NO_FLUSH);
        size_t have = carry + (room - z.avail_out);
        if (z.total_out > d->size) break;
        size_t whole = have / es;
        h5_chunk_put(x, off, elems, x->win, whole);
        elems += whole;
        carry = have - whole * es;
        memmove(x->win, x->win + whole * es, carry);
    } while (zr == Z_OK);
    uint64_t got = z.total_out;
    inflateEnd(&z);
    if (got > d->size)
        return cv_fail(e, "hdf5: dataset at 0x%llx: chunk at 0x%llx inflates past the chunk size", HX(x->obj), HX(addr));
    if (zr != Z_STREAM_END)
        return cv_fail(e, "hdf5: dataset at 0x%llx: chunk at 0x%llx: %s", HX(x->obj), HX(addr),
                       zr == Z_BUF_ERROR ? "deflate data truncated" : "corrupt deflate data");
    if (got != d->size)
        return cv_fail(e, "hdf5: dataset at 0x%llx: chunk at 0x%llx inflates to %llu bytes, expected %llu",
                       HX(x->obj), HX(addr), HX(got), HX(d->size));
    return 0;
}

/* Reads an unfiltered chunk window by window into dst. */
static int h5_copy_chunk(h5_chunk_ctx *x, const uint64_t *off, uint64_t addr, cv_err *e)
{
    const h5_dset *d = x->d;
    uint64_t step = H5_WIN / (uint64_t)d->esize * (uint64_t)d->esize;
    for (uint64_t done = 0; done < d->size;) {
        uint64_t k = d->size - done < step ? d->size - done : step;
        if (h5_read(x->h, addr + done, x->win, (size_t)k, "chunk", e) != 0) return -1;
        h5_chunk_put(x, off, done / (uint64_t)d->esize, x->win, k / (uint64_t)d->esize);
        done += k;
    }
    return 0;
}

/* Scan: marks the chunk at off[] as stored; refuses one stored twice. */
static int h5_chunk_mark(h5_chunk_ctx *x, const uint64_t *off, cv_err *e)
{
    const h5_dset *d = x->d;
    uint64_t lin = 0;
    for (int k = 0; k < d->crank; k++) {
        /* chunks per dimension; the product (n_chunks) was checked for overflow */
        uint64_t per = (d->space.dims[k] + d->cdims[k] - 1) / d->cdims[k];
        lin = lin * per + off[k] / d->cdims[k];
    }
    if (x->seen[lin / 8] & (1u << (lin % 8)))
        return cv_fail(e, "hdf5: dataset at 0x%llx: chunk %llu is stored twice", HX(x->obj), HX(lin));
    x->seen[lin / 8] |= (uint8_t)(1u << (lin % 8));
    x->found++;
    return 0;
}

static int h5_chunk_walk(h5_chunk_ctx *x, uint64_t addr, int level, cv_err *e)
{
    cv_h5 *h = x->h;
    const h5_dset *d = x->d;
    /* Chunk keys: chunk size(4), filter mask(4), offsets (8 each, rank + 1). */
    size_t ksz = 8 + 8 * ((size_t)d->crank + 1);
    h5_bt_node nd;
    if (x->budget == 0) return cv_fail(e, "hdf5: chunk B-tree at 0x%llx: too many nodes (cycle?)", HX(addr));
    x->budget--;
    if (h5_bt_node_open(h, addr, 1, level, ksz, &nd, e) != 0) return -1;
    for (int i = 0; i < nd.n; i++) {
        uint64_t child;
        if (h5_bt_child(h, &nd, ksz, i, &child, e) != 0) return -1;
        if (nd.level > 0) {
            if (h5_chunk_walk(x, child, nd.level - 1, e) != 0) return -1;
            continue;
        }
        if (x->budget == 0) return cv_fail(e, "hdf5: chunk B-tree at 0x%llx: too many chunks", HX(addr));
        x->budget--;
        uint8_t kb[8 + 8 * (CV_H5_MAX_RANK + 1)];
        if (h5_read(h, h5_bt_key_at(h, &nd, ksz, i), kb, ksz, "chunk key", e) != 0) return -1;
        uint64_t csize = h5_le(kb, 4);
        uint32_t mask = (uint32_t)h5_le(kb + 4, 4);
        uint64_t off[CV_H5_MAX_RANK];
        for (int k = 0; k < d->crank; k++) {
            off[k] = h5_le(kb + 8 + 8 * k, 8);
            if (off[k] >= d->space.dims[k] || off[k] % d->cdims[k] != 0)
                return cv_fail(e, "hdf5: dataset at 0x%llx: chunk offset %llu outside dimension %d (%llu)",
                               HX(x->obj), HX(off[k]), k, HX(d->space.dims[k]));
        }
        if (!h5_in(h, child, csize))
            return cv_fail(e, "hdf5: dataset at 0x%llx: chunk at 0x%llx (%llu bytes) past end of file",
                           HX(x->obj), HX(child), HX(csize));
        /* Filter mask bit i set: filter i was skipped for this chunk (optional filters). */
        int filtered = 0;
        for (int k = 0; k < d->n_filters; k++) {
            if (mask & (1u << k)) {
                if (!d->filter_optional[k])
                    return cv_fail(e, "hdf5: dataset at 0x%llx: chunk skips a mandatory filter", HX(x->obj));
                continue;
            }
            filtered++;
        }
        if (filtered > 1)
            return cv_fail(e, "hdf5: dataset at 0x%llx: more than one deflate pass not supported", HX(x->obj));
        if (!filtered && csize != d->size)
            return cv_fail(e, "hdf5: dataset at 0x%llx: unfiltered chunk of %llu bytes, expected %llu",
                           HX(x->obj), HX(csize), HX(d->size));
        if (filtered && d->size > csize * H5_MAX_INFLATE_RATIO)
            return cv_fail(e, "hdf5: dataset at 0x%llx: a deflated chunk of %llu bytes cannot hold %llu bytes",
                           HX(x->obj), HX(csize), HX(d->size));
        if (!x->dst) {
            if (h5_chunk_mark(x, off, e) != 0) return -1;
        } else if (filtered ? h5_inflate_chunk(x, off, child, csize, e) : h5_copy_chunk(x, off, child, e)) {
            return -1;
        }
    }
    return 0;
}

/* The scan of h5_dset_open: every chunk present once, each able to hold its data. */
static int h5_chunk_scan(cv_h5 *h, uint64_t obj, const h5_dset *d, cv_err *e)
{
    if (d->space.nelem == 0) return 0;
    if (d->addr == H5_UNDEF)
        return cv_fail(e, "hdf5: dataset at 0x%llx: its data was never written", HX(obj));
    uint64_t n = 1;
    for (int k = 0; k < d->crank; k++)
        if (__builtin_mul_overflow(n, (d->space.dims[k] + d->cdims[k] - 1) / d->cdims[k], &n))
            n = UINT64_MAX;
    /* Each chunk needs a B-tree entry of more than 24 bytes in the file. */
    if (n > h5_budget(h))
        return cv_fail(e, "hdf5: dataset at 0x%llx: %llu chunks cannot fit in the file", HX(obj), HX(n));
    h5_chunk_ctx x = { h, d, obj, NULL, NULL, NULL, calloc((size_t)(n / 8 + 1), 1), n, 0, h5_budget(h) };
    if (!x.seen) return cv_fail(e, "hdf5: out of memory");
    int r = h5_chunk_walk(&x, d->addr, -1, e);
    free(x.seen);
    if (r == 0 && x.found != n)
        return cv_fail(e, "hdf5: dataset at 0x%llx: %llu of its %llu chunks were never written", HX(obj),
                       HX(n - x.found), HX(n));
    return r;
}

/* ---- public API ------------------------------------------------------------------- */

int cv_h5_open(const cv_source *src, const cv_limits *lim, cv_h5 **out, cv_err *e)
{
    *out = NULL;
    cv_h5 *h = calloc(1, sizeof *h);
    if (!h) return cv_fail(e, "hdf5: out of memory");
    h->src = src;
    h->lim = lim ? *lim : cv_limits_default();
    for (int i = 0; i < H5_NHDR; i++) h->hdr[i].addr = H5_UNDEF;
    /* Defaults of the format (section II.A); superblock 0/1 may override. Version
     * 2/3 keep non-default values in the superblock extension, which is not read,
     * so their nodes are only bounded by the 16-bit entry count. */
    h->group_k = 16;
    h->chunk_k = 32;
    if (h5_superblock(h, e) != 0) { cv_h5_close(h); return -1; }
    /* The root must be a readable group. */
    int k = h5_classify(h, h->root, NULL, e);
    if (k != 1) {
        if (k == 0) cv_fail(e, "hdf5: root object at 0x%llx is not a group", HX(h->root));
        cv_h5_close(h);
        return -1;
    }
    *out = h;
    return 0;
}

void cv_h5_close(cv_h5 *h)
{
    if (!h) return;
    for (unsigned i = 0; i < H5_NPAGES; i++) free(h->pages[i]);
    for (int i = 0; i < H5_NHDR; i++) h5_hdr_drop(&h->hdr[i]);
    free(h);
}

cv_h5_obj cv_h5_root(const cv_h5 *h) { return h->root; }

int cv_h5_find(cv_h5 *h, cv_h5_obj group, const char *path, cv_h5_obj *out, cv_err *e)
{
    uint64_t cur = group;
    const char *p = path;
    char comp[H5_MAX_NAME + 1];
    for (;;) {
        while (*p == '/') p++;
        if (!*p) break;
        size_t n = strcspn(p, "/");
        if (n > H5_MAX_NAME) return 0;
        memcpy(comp, p, n);
        comp[n] = 0;
        p += n;
        if (strcmp(comp, ".") == 0) continue;
        uint64_t next = H5_UNDEF;
        int r = h5_group_lookup(h, cur, comp, &next, e);
        if (r <= 0) return r;
        cur = next;
    }
    *out = cur;
    return 1;
}

typedef struct {
    int (*cb)(void *ctx, const char *name, cv_h5_obj obj);
    void *ctx;
} h5_list_ctx;

static int h5_list_tramp(void *ctx, const h5_link *lk)
{
    h5_list_ctx *l = ctx;
    return l->cb(l->ctx, lk->name, lk->obj);
}

int cv_h5_list(cv_h5 *h, cv_h5_obj group, int (*cb)(void *ctx, const char *name, cv_h5_obj obj),
               void *ctx, cv_err *e)
{
    h5_group g;
    int k = h5_classify(h, group, &g, e);
    if (k < 0) return -1;
    if (k == 0) return cv_fail(e, "hdf5: object at 0x%llx is not a group", HX(group));
    if (g.kind == 1) {
        if (g.btree == H5_UNDEF) return 0;
        uint64_t budget = h5_budget(h);
        h5_list_ctx l = { cb, ctx };
        return h5_gtree_walk(h, g.btree, -1, &g.heap, &budget, h5_list_tramp, &l, e);
    }
    /* Compact links: decode all first; callbacks may evict the cached header. */
    h5_ohdr *o = h5_hdr(h, group, e);
    if (!o) return -1;
    int n = 0;
    for (int i = 0; i < o->n; i++) n += o->msgs[i].type == H5M_LINK;
    h5_link *links = malloc((size_t)(n ? n : 1) * sizeof *links);
    if (!links) return cv_fail(e, "hdf5: out of memory");
    int m = 0;
    for (int i = 0; i < o->n; i++) {
        if (o->msgs[i].type != H5M_LINK) continue;
        if (h5_parse_link(h, o, &o->msgs[i], &links[m], e) != 0) { free(links); return -1; }
        m++;
    }
    int r = 0;
    for (int i = 0; i < m && r == 0; i++) r = cb(ctx, links[i].name, links[i].obj);
    free(links);
    return r;
}

int cv_h5_is_group(cv_h5 *h, cv_h5_obj obj, cv_err *e) { return h5_classify(h, obj, NULL, e); }

int cv_h5_attr_strings(cv_h5 *h, cv_h5_obj obj, const char *name, char ***out, int *n, cv_err *e)
{
    *out = NULL;
    *n = 0;
    h5_attr a;
    uint8_t *copy = NULL;
    int r = h5_attr_find(h, obj, name, &a, &copy, e);
    if (r <= 0) { free(copy); return r; }
    r = h5_attr_decode_strings(h, obj, &a, out, n, e);
    free(copy);
    return r < 0 ? -1 : 1;
}

int cv_h5_attr_names(cv_h5 *h, cv_h5_obj obj, int (*cb)(void *ctx, const char *name), void *ctx, cv_err *e)
{
    h5_ohdr *o = h5_hdr(h, obj, e);
    if (!o) return -1;
    int n = 0;
    for (int i = 0; i < o->n; i++) n += o->msgs[i].type == H5M_ATTR;
    char (*names)[H5_MAX_NAME + 1] = malloc((size_t)(n ? n : 1) * sizeof *names);
    if (!names) return cv_fail(e, "hdf5: out of memory");
    int m = 0;
    for (int i = 0; i < o->n; i++) {
        if (o->msgs[i].type != H5M_ATTR) continue;
        h5_attr a;
        if (h5_parse_attr(h, obj, o->buf + o->msgs[i].off, o->msgs[i].len, 1, &a, e) != 0) {
            free(names);
            return -1;
        }
        memcpy(names[m++], a.name, sizeof a.name);
    }
    int r = 0;
    for (int i = 0; i < m && r == 0; i++) r = cb(ctx, names[i]);
    free(names);
    return r;
}

int cv_h5_dataset_info_get(cv_h5 *h, cv_h5_obj ds, cv_h5_dataset_info *out, cv_err *e)
{
    h5_dset d;
    if (h5_dset_open(h, ds, &d, e) != 0) return -1;
    memset(out, 0, sizeof *out);
    out->rank = d.space.rank;
    for (int i = 0; i < d.space.rank; i++) out->dims[i] = d.space.dims[i];
    out->nelem = d.space.nelem;
    out->elem_size = d.esize;
    out->is_int = d.kind >= H5K_I8;
    return 0;
}

int cv_h5_dataset_read_f32(cv_h5 *h, cv_h5_obj ds, float *dst, uint64_t n, cv_err *e)
{
    h5_dset d;
    if (h5_dset_open(h, ds, &d, e) != 0) return -1;
    if (n != d.space.nelem)
        return cv_fail(e, "hdf5: dataset at 0x%llx: has %llu elements, caller expects %llu",
                       HX(ds), HX(d.space.nelem), HX(n));
    if (n == 0) return 0;
    if (d.layout == 0) {
        h5_convert(dst, d.hdr->buf + d.compact_off, (size_t)n, d.kind);
        return 0;
    }
    if (d.layout == 1) return h5_read_elems(h, d.addr, dst, n, d.esize, d.kind, e);
    /* h5_dset_open found every chunk stored exactly once: they cover dst. */
    h5_chunk_ctx x = { h, &d, ds, dst, malloc(H5_WIN), d.n_filters ? malloc(H5_INBUF) : NULL, NULL, 0, 0, h5_budget(h) };
    int r;
    if (!x.win || (d.n_filters && !x.in)) r = cv_fail(e, "hdf5: out of memory");
    else r = h5_chunk_walk(&x, d.addr, -1, e);
    free(x.win);
    free(x.in);
    return r;
}
