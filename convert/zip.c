/* zip.c - reads members of a .keras archive (PKWARE zip) with pread.
 *
 * Trust nothing: the end-of-central-directory record is found by its signature
 * in the file's tail, the central directory is bounded by that record, every
 * entry's local header is re-read and compared with its central-directory
 * entry, and every byte extracted goes through CRC-32 and a size count. The
 * file is never mapped: members stream through two fixed 64 KiB buffers.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "zip.h"

#define CV_ZIP_BUF (64 * 1024)
/* The central directory is read whole; real .keras files have a few entries. */
#define CV_ZIP_MAX_CD ((uint64_t)64 << 20)

#define CV_ZIP_SIG_LOCAL 0x04034b50u
#define CV_ZIP_SIG_CENTRAL 0x02014b50u
#define CV_ZIP_SIG_EOCD 0x06054b50u
#define CV_ZIP_SIG_EOCD64 0x06064b50u
#define CV_ZIP_SIG_LOC64 0x07064b50u

#define CV_ZIP_EOCD_LEN 22
#define CV_ZIP_LOC64_LEN 20
#define CV_ZIP_EOCD64_LEN 56
#define CV_ZIP_CENTRAL_LEN 46
#define CV_ZIP_LOCAL_LEN 30

#define CV_ZIP_FLAG_ENCRYPTED 0x0001u
#define CV_ZIP_FLAG_DESCRIPTOR 0x0008u    /* crc/sizes follow the data, not in the local header */
#define CV_ZIP_FLAG_STRONG_ENC 0x0040u
#define CV_ZIP_FLAG_CD_ENC 0x2000u

typedef struct {
    const char *name;       /* into cv_zip.cd; not NUL-terminated */
    size_t name_len;
    unsigned flags, method;
    uint32_t crc;
    uint64_t csize, usize;
    uint64_t lho;           /* local header offset */
} cv_zip_entry;

struct cv_zip {
    int fd;
    uint64_t size;          /* file size */
    uint64_t cd_off;        /* member data must end before this */
    cv_limits lim;
    int n;
    cv_zip_entry *ent;      /* sorted by name */
    unsigned char *cd;      /* central directory bytes (names point here) */
    /* Two buffers, each allocated on its own (under 128 KiB, which keeps a
     * sanitizer's allocator from mapping and unmapping them at every open):
     * ibuf holds the EOCD search window (64 KiB + 22 bytes), a local header's
     * name, compressed input; obuf a local header's extra field, inflated output. */
    unsigned char *ibuf;    /* [CV_ZIP_BUF + CV_ZIP_EOCD_LEN] */
    unsigned char *obuf;    /* [CV_ZIP_BUF] */
};

/* ---- little helpers --------------------------------------------------------- */

static unsigned cv_zip_u16(const unsigned char *p) { return (unsigned)p[0] | (unsigned)p[1] << 8; }

static uint32_t cv_zip_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t cv_zip_u64(const unsigned char *p)
{
    return (uint64_t)cv_zip_u32(p) | (uint64_t)cv_zip_u32(p + 4) << 32;
}

/* Names from the archive go into messages printable and short. */
static const char *cv_zip_safe(char out[72], const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k < 64; i++)
        out[k++] = (s[i] >= 0x20 && s[i] < 0x7F) ? s[i] : '?';
    if (n > 64) {
        memcpy(out + k, "...", 3);
        k += 3;
    }
    out[k] = 0;
    return out;
}

static int cv_zip_pread(const cv_zip *z, uint64_t off, void *buf, size_t len, cv_err *e)
{
    if (off > z->size || len > z->size - off)
        return cv_fail(e, "zip: read of %zu bytes at offset %llu is past the end of the file (%llu bytes)",
                       len, (unsigned long long)off, (unsigned long long)z->size);
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t r = pread(z->fd, p, len, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return cv_fail(e, "zip: read error at offset %llu: %s", (unsigned long long)off, strerror(errno));
        if (r == 0) return cv_fail(e, "zip: file shrank while reading (offset %llu)", (unsigned long long)off);
        p += r;
        off += (uint64_t)r;
        len -= (size_t)r;
    }
    return 0;
}

/* Replaces the saturated (0xFFFFFFFF) fields with their 64-bit values from the
 * ZIP64 extra field (id 1), which lists exactly those fields, in this order:
 * uncompressed size, compressed size, local header offset. lho may be NULL
 * (local headers have no offset field). -1 if a value is missing. */
static int cv_zip_extra64(const unsigned char *x, size_t xlen, uint64_t *usize, uint64_t *csize, uint64_t *lho)
{
    int need = (*usize == 0xFFFFFFFFu) + (*csize == 0xFFFFFFFFu) + (lho && *lho == 0xFFFFFFFFu);
    if (!need) return 0;
    for (size_t off = 0; off + 4 <= xlen;) {
        unsigned id = cv_zip_u16(x + off), sz = cv_zip_u16(x + off + 2);
        if (sz > xlen - off - 4) break;     /* malformed tail: ignore it, we only need id 1 */
        if (id == 0x0001) {
            const unsigned char *v = x + off + 4;
            size_t left = sz;
            uint64_t *f[3] = { usize, csize, lho };
            for (int i = 0; i < 3; i++) {
                if (!f[i] || *f[i] != 0xFFFFFFFFu) continue;
                if (left < 8) return -1;
                *f[i] = cv_zip_u64(v);
                v += 8;
                left -= 8;
            }
            return 0;
        }
        off += 4 + (size_t)sz;
    }
    return -1;
}

/* ---- opening: end record, central directory ------------------------------- */

static int cv_zip_entry_cmp(const void *a, const void *b)
{
    const cv_zip_entry *x = a, *y = b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    if (c) return c;
    return (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

/* Finds the end record; fills the central directory's offset, size, entry count
 * and the offset it must end at. */
static int cv_zip_find_cd(cv_zip *z, uint64_t *cd_size, uint64_t *count, uint64_t *cd_end, cv_err *e)
{
    if (z->size < CV_ZIP_EOCD_LEN)
        return cv_fail(e, "zip: not a zip archive (%llu bytes is too short)", (unsigned long long)z->size);
    /* The record is 22 bytes plus a comment of at most 65535 bytes, at the end. */
    size_t tail = z->size < 65535 + CV_ZIP_EOCD_LEN ? (size_t)z->size : 65535 + CV_ZIP_EOCD_LEN;
    uint64_t tail_off = z->size - tail;
    if (cv_zip_pread(z, tail_off, z->ibuf, tail, e) < 0) return -1;
    /* Scan backwards; demanding that the comment ends exactly at end of file
     * rejects a signature that merely occurs inside a comment or member data. */
    size_t i = tail - CV_ZIP_EOCD_LEN;
    for (;; i--) {
        const unsigned char *r = z->ibuf + i;
        if (cv_zip_u32(r) == CV_ZIP_SIG_EOCD && i + CV_ZIP_EOCD_LEN + cv_zip_u16(r + 20) == tail) break;
        if (i == 0) return cv_fail(e, "zip: not a zip archive (no end-of-central-directory record)");
    }
    const unsigned char *r = z->ibuf + i;
    uint64_t eocd = tail_off + i;
    unsigned disk = cv_zip_u16(r + 4), cd_disk = cv_zip_u16(r + 6);
    uint64_t on_disk = cv_zip_u16(r + 8);
    *count = cv_zip_u16(r + 10);
    *cd_size = cv_zip_u32(r + 12);
    z->cd_off = cv_zip_u32(r + 16);
    *cd_end = eocd;

    /* ZIP64: a locator right before the end record points at a 64-bit end record. */
    unsigned char loc[CV_ZIP_LOC64_LEN];
    if (eocd >= CV_ZIP_LOC64_LEN) {
        if (cv_zip_pread(z, eocd - CV_ZIP_LOC64_LEN, loc, sizeof loc, e) < 0) return -1;
        if (cv_zip_u32(loc) == CV_ZIP_SIG_LOC64) {
            uint64_t off64 = cv_zip_u64(loc + 8);
            if (cv_zip_u32(loc + 4) != 0 || cv_zip_u32(loc + 16) > 1)
                return cv_fail(e, "zip: multi-disk archives are not supported");
            if (off64 > eocd - CV_ZIP_LOC64_LEN || eocd - CV_ZIP_LOC64_LEN - off64 < CV_ZIP_EOCD64_LEN)
                return cv_fail(e, "zip: ZIP64 end record offset %llu is out of range", (unsigned long long)off64);
            unsigned char r64[CV_ZIP_EOCD64_LEN];
            if (cv_zip_pread(z, off64, r64, sizeof r64, e) < 0) return -1;
            if (cv_zip_u32(r64) != CV_ZIP_SIG_EOCD64)
                return cv_fail(e, "zip: bad ZIP64 end record signature at offset %llu", (unsigned long long)off64);
            disk = (unsigned)cv_zip_u32(r64 + 16);
            cd_disk = (unsigned)cv_zip_u32(r64 + 20);
            on_disk = cv_zip_u64(r64 + 24);
            *count = cv_zip_u64(r64 + 32);
            *cd_size = cv_zip_u64(r64 + 40);
            z->cd_off = cv_zip_u64(r64 + 48);
            *cd_end = off64;
        }
    }
    if (disk != 0 || cd_disk != 0 || on_disk != *count)
        return cv_fail(e, "zip: multi-disk archives are not supported");
    if (z->cd_off > *cd_end || *cd_size > *cd_end - z->cd_off)
        return cv_fail(e, "zip: central directory (offset %llu, %llu bytes) overruns its end record at %llu",
                       (unsigned long long)z->cd_off, (unsigned long long)*cd_size, (unsigned long long)*cd_end);
    if (*cd_size > CV_ZIP_MAX_CD)
        return cv_fail(e, "zip: central directory of %llu bytes exceeds the limit of %llu",
                       (unsigned long long)*cd_size, (unsigned long long)CV_ZIP_MAX_CD);
    /* Each entry takes at least 46 bytes: this bounds the entry table by the file. */
    if (*count > *cd_size / CV_ZIP_CENTRAL_LEN)
        return cv_fail(e, "zip: %llu entries cannot fit in a central directory of %llu bytes",
                       (unsigned long long)*count, (unsigned long long)*cd_size);
    return 0;
}

/* Parses and checks central-directory entry i at cd + *pos. */
static int cv_zip_parse_entry(cv_zip *z, uint64_t cd_size, size_t *pos, int i, cv_err *e)
{
    const unsigned char *c = z->cd + *pos;
    size_t left = (size_t)cd_size - *pos;
    if (left < CV_ZIP_CENTRAL_LEN || cv_zip_u32(c) != CV_ZIP_SIG_CENTRAL)
        return cv_fail(e, "zip: central directory entry %d is malformed", i);
    size_t nlen = cv_zip_u16(c + 28), xlen = cv_zip_u16(c + 30), clen = cv_zip_u16(c + 32);
    if (CV_ZIP_CENTRAL_LEN + nlen + xlen + clen > left)
        return cv_fail(e, "zip: central directory entry %d overruns the directory", i);
    cv_zip_entry *en = &z->ent[i];
    en->name = (const char *)c + CV_ZIP_CENTRAL_LEN;
    en->name_len = nlen;
    en->flags = cv_zip_u16(c + 8);
    en->method = cv_zip_u16(c + 10);
    en->crc = cv_zip_u32(c + 16);
    en->csize = cv_zip_u32(c + 20);
    en->usize = cv_zip_u32(c + 24);
    en->lho = cv_zip_u32(c + 42);
    unsigned disk = cv_zip_u16(c + 34);
    char safe[72];
    if (nlen == 0) return cv_fail(e, "zip: central directory entry %d has an empty name", i);
    if (memchr(en->name, 0, nlen))
        return cv_fail(e, "zip: member '%s': name contains a NUL byte", cv_zip_safe(safe, en->name, nlen));
    if (cv_zip_extra64(c + CV_ZIP_CENTRAL_LEN + nlen, xlen, &en->usize, &en->csize, &en->lho) < 0)
        return cv_fail(e, "zip: member '%s': ZIP64 extra field missing or short", cv_zip_safe(safe, en->name, nlen));
    if (disk != 0 && disk != 0xFFFFu)
        return cv_fail(e, "zip: member '%s': on disk %u (multi-disk archives are not supported)",
                       cv_zip_safe(safe, en->name, nlen), disk);
    /* Local header, name and data all lie before the central directory. */
    if (en->lho > z->cd_off || z->cd_off - en->lho < CV_ZIP_LOCAL_LEN + nlen ||
        en->csize > z->cd_off - en->lho - CV_ZIP_LOCAL_LEN - nlen)
        return cv_fail(e, "zip: member '%s': local header offset %llu / compressed size %llu out of range",
                       cv_zip_safe(safe, en->name, nlen), (unsigned long long)en->lho,
                       (unsigned long long)en->csize);
    *pos += CV_ZIP_CENTRAL_LEN + nlen + xlen + clen;
    return 0;
}

static int cv_zip_load(cv_zip *z, cv_err *e)
{
    struct stat st;
    if (fstat(z->fd, &st) != 0) return cv_fail(e, "zip: cannot stat: %s", strerror(errno));
    if (!S_ISREG(st.st_mode)) return cv_fail(e, "zip: not a regular file");
    z->size = (uint64_t)st.st_size;
    if (z->size > z->lim.max_file_bytes)
        return cv_fail(e, "zip: file of %llu bytes exceeds the limit of %llu bytes",
                       (unsigned long long)z->size, (unsigned long long)z->lim.max_file_bytes);
    uint64_t cd_size = 0, count = 0, cd_end = 0;
    if (cv_zip_find_cd(z, &cd_size, &count, &cd_end, e) < 0) return -1;

    /* +1: malloc(0) may return NULL, which would read as OOM for an empty zip. */
    z->cd = malloc((size_t)cd_size + 1);
    z->ent = calloc((size_t)count + 1, sizeof *z->ent);
    if (!z->cd || !z->ent) return cv_fail(e, "zip: out of memory for the central directory");
    if (cv_zip_pread(z, z->cd_off, z->cd, (size_t)cd_size, e) < 0) return -1;
    size_t pos = 0;
    for (z->n = 0; (uint64_t)z->n < count; z->n++)
        if (cv_zip_parse_entry(z, cd_size, &pos, z->n, e) < 0) return -1;
    if (pos != cd_size)
        return cv_fail(e, "zip: central directory has %llu bytes after its %d entries",
                       (unsigned long long)(cd_size - pos), z->n);

    /* Sorted names: binary-search lookups, and duplicates end up adjacent. */
    qsort(z->ent, (size_t)z->n, sizeof *z->ent, cv_zip_entry_cmp);
    for (int i = 1; i < z->n; i++) {
        if (cv_zip_entry_cmp(&z->ent[i - 1], &z->ent[i]) == 0) {
            char safe[72];
            return cv_fail(e, "zip: duplicate member '%s'", cv_zip_safe(safe, z->ent[i].name, z->ent[i].name_len));
        }
    }
    return 0;
}

int cv_zip_open_fd(int fd, const cv_limits *lim, cv_zip **out, cv_err *e)
{
    *out = NULL;
    cv_zip *z = calloc(1, sizeof *z);
    if (!z) {
        close(fd);
        return cv_fail(e, "zip: out of memory");
    }
    z->fd = fd;
    z->lim = lim ? *lim : cv_limits_default();
    z->ibuf = malloc(CV_ZIP_BUF + CV_ZIP_EOCD_LEN);
    z->obuf = malloc(CV_ZIP_BUF);
    if (!z->ibuf || !z->obuf) {
        cv_zip_close(z);
        return cv_fail(e, "zip: out of memory");
    }
    if (cv_zip_load(z, e) < 0) {
        cv_zip_close(z);
        return -1;
    }
    *out = z;
    return 0;
}

int cv_zip_open(const char *path, const cv_limits *lim, cv_zip **out, cv_err *e)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return cv_fail(e, "zip: cannot open %s: %s", path, strerror(errno));
    return cv_zip_open_fd(fd, lim, out, e);
}

void cv_zip_close(cv_zip *z)
{
    if (!z) return;
    if (z->fd >= 0) close(z->fd);
    free(z->ent);
    free(z->cd);
    free(z->ibuf);
    free(z->obuf);
    free(z);
}

static const cv_zip_entry *cv_zip_find(const cv_zip *z, const char *name)
{
    cv_zip_entry key;
    memset(&key, 0, sizeof key);
    key.name = name;
    key.name_len = strlen(name);
    return bsearch(&key, z->ent, (size_t)z->n, sizeof *z->ent, cv_zip_entry_cmp);
}

int cv_zip_has(const cv_zip *z, const char *name) { return z && name && cv_zip_find(z, name) != NULL; }

/* ---- members: local header, streaming extraction ---------------------------- */

/* Finds the member, refuses what we cannot extract, cross-checks its local
 * header with the central directory and returns where its data starts. */
static int cv_zip_member(cv_zip *z, const char *name, const cv_zip_entry **out, uint64_t *data_off, cv_err *e)
{
    const cv_zip_entry *en = cv_zip_find(z, name);
    if (!en) return cv_fail(e, "zip: no member %s", name);
    if (en->flags & (CV_ZIP_FLAG_ENCRYPTED | CV_ZIP_FLAG_STRONG_ENC | CV_ZIP_FLAG_CD_ENC))
        return cv_fail(e, "zip: member %s: encrypted members are not supported", name);
    if (en->method != 0 && en->method != 8)
        return cv_fail(e, "zip: member %s: compression method %u is not supported (only stored and deflate)",
                       name, en->method);
    if (en->method == 0 && en->csize != en->usize)
        return cv_fail(e, "zip: member %s: stored, but compressed size %llu != size %llu", name,
                       (unsigned long long)en->csize, (unsigned long long)en->usize);

    unsigned char h[CV_ZIP_LOCAL_LEN];
    if (cv_zip_pread(z, en->lho, h, sizeof h, e) < 0) return -1;
    if (cv_zip_u32(h) != CV_ZIP_SIG_LOCAL)
        return cv_fail(e, "zip: member %s: no local header at offset %llu", name, (unsigned long long)en->lho);
    size_t nlen = cv_zip_u16(h + 26), xlen = cv_zip_u16(h + 28);
    /* Name and extra field (each < 64 KiB) fit in the two I/O buffers. */
    uint64_t hdr_end = en->lho + CV_ZIP_LOCAL_LEN + nlen + xlen;
    if (hdr_end > z->cd_off)
        return cv_fail(e, "zip: member %s: local header overruns the central directory", name);
    if (cv_zip_pread(z, en->lho + CV_ZIP_LOCAL_LEN, z->ibuf, nlen, e) < 0 ||
        cv_zip_pread(z, en->lho + CV_ZIP_LOCAL_LEN + nlen, z->obuf, xlen, e) < 0)
        return -1;
    if (nlen != en->name_len || memcmp(z->ibuf, en->name, nlen) != 0)
        return cv_fail(e, "zip: member %s: local header names another file", name);
    if (cv_zip_u16(h + 8) != en->method || ((cv_zip_u16(h + 6) ^ en->flags) & CV_ZIP_FLAG_ENCRYPTED))
        return cv_fail(e, "zip: member %s: local header disagrees with the central directory (method/flags)", name);
    if (!(cv_zip_u16(h + 6) & CV_ZIP_FLAG_DESCRIPTOR)) {
        /* Without a data descriptor the local header carries crc and sizes too. */
        uint64_t cs = cv_zip_u32(h + 18), us = cv_zip_u32(h + 22);
        if (cv_zip_extra64(z->obuf, xlen, &us, &cs, NULL) < 0 || cv_zip_u32(h + 14) != en->crc ||
            cs != en->csize || us != en->usize)
            return cv_fail(e, "zip: member %s: local header disagrees with the central directory (crc/sizes)", name);
    }
    if (en->csize > z->cd_off - hdr_end)
        return cv_fail(e, "zip: member %s: data (%llu bytes at %llu) overruns the central directory", name,
                       (unsigned long long)en->csize, (unsigned long long)hdr_end);
    *out = en;
    *data_off = hdr_end;
    return 0;
}

/* Receives extracted bytes in order; NULL sink: only verify. */
typedef int (*cv_zip_sink)(void *ctx, const unsigned char *p, size_t n, const char *name, cv_err *e);

/* Streams the member's uncompressed bytes to sink through the fixed buffers,
 * checking that they come to exactly usize bytes with the right CRC-32. */
static int cv_zip_extract(cv_zip *z, const char *name, const cv_zip_entry *en, uint64_t data_off,
                          cv_zip_sink sink, void *ctx, cv_err *e)
{
    unsigned char *ibuf = z->ibuf, *obuf = z->obuf;
    uLong crc = crc32(0L, Z_NULL, 0);
    uint64_t in_left = en->csize, in_off = data_off, done = 0;
    int rc = -1;

    if (en->method == 0) {
        while (in_left > 0) {
            size_t k = in_left < CV_ZIP_BUF ? (size_t)in_left : CV_ZIP_BUF;
            if (cv_zip_pread(z, in_off, ibuf, k, e) < 0) return -1;
            crc = crc32(crc, ibuf, (uInt)k);
            if (sink && sink(ctx, ibuf, k, name, e) < 0) return -1;
            in_off += k;
            in_left -= k;
            done += k;
        }
    } else {
        z_stream zs;
        memset(&zs, 0, sizeof zs);
        /* Negative window bits: raw deflate, as zip stores it (no zlib header). */
        if (inflateInit2(&zs, -15) != Z_OK) return cv_fail(e, "zip: member %s: out of memory for inflate", name);
        int ret = Z_OK;
        while (ret != Z_STREAM_END) {
            if (zs.avail_in == 0 && in_left > 0) {
                size_t k = in_left < CV_ZIP_BUF ? (size_t)in_left : CV_ZIP_BUF;
                if (cv_zip_pread(z, in_off, ibuf, k, e) < 0) goto inflate_done;
                zs.next_in = ibuf;
                zs.avail_in = (uInt)k;
                in_off += k;
                in_left -= k;
            }
            zs.next_out = obuf;
            zs.avail_out = CV_ZIP_BUF;
            ret = inflate(&zs, Z_NO_FLUSH);
            if (ret == Z_DATA_ERROR || ret == Z_NEED_DICT || ret == Z_STREAM_ERROR) {
                cv_fail(e, "zip: member %s: corrupt deflate data (%s)", name, zs.msg ? zs.msg : "bad stream");
                goto inflate_done;
            }
            if (ret == Z_MEM_ERROR) {
                cv_fail(e, "zip: member %s: out of memory in inflate", name);
                goto inflate_done;
            }
            /* Z_BUF_ERROR: no progress possible, and all input was given. */
            if (ret == Z_BUF_ERROR && zs.avail_in == 0 && in_left == 0) {
                cv_fail(e, "zip: member %s: deflate data ends before the end of the stream", name);
                goto inflate_done;
            }
            size_t got = CV_ZIP_BUF - zs.avail_out;
            /* Stop a bomb at the declared size instead of after inflating it. */
            if (got > en->usize - done) {
                cv_fail(e, "zip: member %s: inflates past its declared size of %llu bytes", name,
                        (unsigned long long)en->usize);
                goto inflate_done;
            }
            crc = crc32(crc, obuf, (uInt)got);
            if (got && sink && sink(ctx, obuf, got, name, e) < 0) goto inflate_done;
            done += got;
        }
        if (zs.avail_in != 0 || in_left != 0) {
            cv_fail(e, "zip: member %s: %llu bytes after the end of the deflate stream", name,
                    (unsigned long long)(zs.avail_in + in_left));
            goto inflate_done;
        }
        rc = 0;
    inflate_done:
        inflateEnd(&zs);
        if (rc < 0) return -1;
    }
    if (done != en->usize)
        return cv_fail(e, "zip: member %s: %llu bytes extracted, central directory says %llu", name,
                       (unsigned long long)done, (unsigned long long)en->usize);
    if ((uint32_t)crc != en->crc)
        return cv_fail(e, "zip: member %s: CRC mismatch (computed %08x, stored %08x)", name, (unsigned)crc,
                       (unsigned)en->crc);
    return 0;
}

typedef struct {
    char *buf;
    size_t len;
} cv_zip_mem;

static int cv_zip_sink_mem(void *ctx, const unsigned char *p, size_t n, const char *name, cv_err *e)
{
    (void)name;
    (void)e;
    /* Cannot overflow: extraction stops at usize, the buffer's size. */
    cv_zip_mem *m = ctx;
    memcpy(m->buf + m->len, p, n);
    m->len += n;
    return 0;
}

static int cv_zip_sink_fd(void *ctx, const unsigned char *p, size_t n, const char *name, cv_err *e)
{
    int fd = *(const int *)ctx;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return cv_fail(e, "zip: member %s: writing the temporary file: %s", name, strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int cv_zip_read(cv_zip *z, const char *name, size_t max, char **buf, size_t *len, cv_err *e)
{
    *buf = NULL;
    *len = 0;
    const cv_zip_entry *en;
    uint64_t data_off;
    if (cv_zip_member(z, name, &en, &data_off, e) < 0) return -1;
    uint64_t limit = max < z->lim.max_file_bytes ? max : z->lim.max_file_bytes;
    /* limit < SIZE_MAX also leaves room for the terminating NUL. */
    if (limit >= SIZE_MAX) limit = SIZE_MAX - 1;
    if (en->usize > limit)
        return cv_fail(e, "zip: member %s: %llu bytes exceeds the limit of %llu bytes", name,
                       (unsigned long long)en->usize, (unsigned long long)limit);
    cv_zip_mem m = { malloc((size_t)en->usize + 1), 0 };
    if (!m.buf) return cv_fail(e, "zip: member %s: out of memory (%llu bytes)", name, (unsigned long long)en->usize);
    if (cv_zip_extract(z, name, en, data_off, cv_zip_sink_mem, &m, e) < 0) {
        free(m.buf);
        return -1;
    }
    m.buf[m.len] = 0;
    *buf = m.buf;
    *len = m.len;
    return 0;
}

/* An anonymous file in $TMPDIR (or /tmp): nothing to clean up, whatever happens. */
static int cv_zip_tmpfile(const char *name, cv_err *e)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) return fd;
    /* O_TMPFILE needs filesystem support; else a named file unlinked at once. */
    char path[4096];
    if (snprintf(path, sizeof path, "%s/effcam-zip-XXXXXX", dir) >= (int)sizeof path)
        return cv_fail(e, "zip: member %s: temporary directory path too long", name);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) return cv_fail(e, "zip: member %s: cannot create a temporary file in %s: %s", name, dir, strerror(errno));
    unlink(path);
    return fd;
}

int cv_zip_source(cv_zip *z, const char *name, cv_source *out, cv_err *e)
{
    memset(out, 0, sizeof *out);
    out->fd = -1;
    const cv_zip_entry *en;
    uint64_t data_off;
    if (cv_zip_member(z, name, &en, &data_off, e) < 0) return -1;
    if (en->usize > z->lim.max_file_bytes)
        return cv_fail(e, "zip: member %s: %llu bytes exceeds the limit of %llu bytes", name,
                       (unsigned long long)en->usize, (unsigned long long)z->lim.max_file_bytes);
    if (en->method == 0) {
        /* In place: verify once, then serve the window through its own fd. */
        if (cv_zip_extract(z, name, en, data_off, NULL, NULL, e) < 0) return -1;
        int fd = fcntl(z->fd, F_DUPFD_CLOEXEC, 0);
        if (fd < 0) return cv_fail(e, "zip: member %s: dup: %s", name, strerror(errno));
        out->fd = fd;
        out->base = data_off;
    } else {
        int fd = cv_zip_tmpfile(name, e);
        if (fd < 0) return -1;
        if (cv_zip_extract(z, name, en, data_off, cv_zip_sink_fd, &fd, e) < 0) {
            close(fd);
            return -1;
        }
        out->fd = fd;
        out->base = 0;
    }
    out->size = en->usize;
    out->owns_fd = 1;
    return 0;
}
