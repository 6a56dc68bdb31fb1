/* test_zip.c - convert/zip.c: the fixture .keras archives, DEFLATE / data
 * descriptor / ZIP64 re-packs written here with zlib, and a table of broken
 * archives that must each fail with a message (and leak no descriptor). */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>
#include <zlib.h>

#include "convert/json.h"
#include "convert/zip.h"
#include "tests/harness.h"

static const unsigned char hdf5_sig[8] = { 0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n' };

/* ---- a small zip writer ---------------------------------------------------------- */

typedef struct {
    unsigned char *p;
    size_t n, cap;
} tz_buf;

static void tz_put(tz_buf *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        unsigned char *q = realloc(b->p, cap);
        if (!q) abort();
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void tz_u16(tz_buf *b, unsigned v)
{
    unsigned char x[2] = { (unsigned char)v, (unsigned char)(v >> 8) };
    tz_put(b, x, 2);
}

static void tz_u32(tz_buf *b, uint32_t v)
{
    tz_u16(b, v & 0xFFFF);
    tz_u16(b, v >> 16);
}

static void tz_u64(tz_buf *b, uint64_t v)
{
    tz_u32(b, (uint32_t)v);
    tz_u32(b, (uint32_t)(v >> 32));
}

static void tz_set16(tz_buf *b, size_t off, unsigned v)
{
    b->p[off] = (unsigned char)v;
    b->p[off + 1] = (unsigned char)(v >> 8);
}

static void tz_set32(tz_buf *b, size_t off, uint32_t v)
{
    tz_set16(b, off, v & 0xFFFF);
    tz_set16(b, off + 2, v >> 16);
}

typedef struct {
    const char *name;
    const void *data;
    size_t len;
    int deflate;
} tz_member;

enum { TZ_DESCRIPTOR = 1, TZ_ZIP64 = 2 };

#define TZ_MAX 8
typedef struct {
    size_t lho[TZ_MAX], data[TZ_MAX], csize[TZ_MAX], cde[TZ_MAX];   /* per member */
    size_t cd_off, eocd;
} tz_layout;

/* Raw deflate (no zlib header), as zip stores it. */
static unsigned char *tz_deflate(const void *src, size_t len, size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
    size_t cap = deflateBound(&zs, len);
    unsigned char *out = malloc(cap);
    zs.next_in = (Bytef *)src;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    if (!out || deflate(&zs, Z_FINISH) != Z_STREAM_END) abort();
    *out_len = zs.total_out;
    deflateEnd(&zs);
    return out;
}

/* Writes an archive of the members; opts: TZ_DESCRIPTOR (crc/sizes in a data
 * descriptor after the data) and/or TZ_ZIP64 (64-bit fields everywhere). */
static void tz_build(const tz_member *m, int n, int opts, tz_buf *b, tz_layout *lay)
{
    int z64 = opts & TZ_ZIP64, dd = opts & TZ_DESCRIPTOR;
    uint32_t crc[TZ_MAX];
    memset(b, 0, sizeof *b);
    for (int i = 0; i < n; i++) {
        size_t clen = m[i].len, nlen = strlen(m[i].name);
        unsigned char *packed = m[i].deflate ? tz_deflate(m[i].data, m[i].len, &clen) : NULL;
        crc[i] = (uint32_t)crc32(0L, m[i].data, (uInt)m[i].len);
        lay->lho[i] = b->n;
        lay->csize[i] = clen;
        tz_u32(b, 0x04034b50);
        tz_u16(b, z64 ? 45 : 20);
        tz_u16(b, dd ? 8 : 0);
        tz_u16(b, m[i].deflate ? 8 : 0);
        tz_u16(b, 0);
        tz_u16(b, 0x21);                       /* 1980-01-01 */
        tz_u32(b, dd ? 0 : crc[i]);
        tz_u32(b, dd ? 0 : z64 ? 0xFFFFFFFFu : (uint32_t)clen);
        tz_u32(b, dd ? 0 : z64 ? 0xFFFFFFFFu : (uint32_t)m[i].len);
        tz_u16(b, (unsigned)nlen);
        tz_u16(b, z64 && !dd ? 20 : 0);
        tz_put(b, m[i].name, nlen);
        if (z64 && !dd) {
            tz_u16(b, 1);
            tz_u16(b, 16);
            tz_u64(b, m[i].len);
            tz_u64(b, clen);
        }
        lay->data[i] = b->n;
        tz_put(b, packed ? packed : m[i].data, clen);
        free(packed);
        if (dd) {
            tz_u32(b, 0x08074b50);
            tz_u32(b, crc[i]);
            if (z64) {
                tz_u64(b, clen);
                tz_u64(b, m[i].len);
            } else {
                tz_u32(b, (uint32_t)clen);
                tz_u32(b, (uint32_t)m[i].len);
            }
        }
    }
    lay->cd_off = b->n;
    for (int i = 0; i < n; i++) {
        size_t nlen = strlen(m[i].name);
        lay->cde[i] = b->n;
        tz_u32(b, 0x02014b50);
        tz_u16(b, 0x031e);
        tz_u16(b, z64 ? 45 : 20);
        tz_u16(b, dd ? 8 : 0);
        tz_u16(b, m[i].deflate ? 8 : 0);
        tz_u16(b, 0);
        tz_u16(b, 0x21);
        tz_u32(b, crc[i]);
        tz_u32(b, z64 ? 0xFFFFFFFFu : (uint32_t)lay->csize[i]);
        tz_u32(b, z64 ? 0xFFFFFFFFu : (uint32_t)m[i].len);
        tz_u16(b, (unsigned)nlen);
        tz_u16(b, z64 ? 28 : 0);
        tz_u16(b, 0);
        tz_u16(b, 0);
        tz_u16(b, 0);
        tz_u32(b, 0);
        tz_u32(b, z64 ? 0xFFFFFFFFu : (uint32_t)lay->lho[i]);
        tz_put(b, m[i].name, nlen);
        if (z64) {
            tz_u16(b, 1);
            tz_u16(b, 24);
            tz_u64(b, m[i].len);
            tz_u64(b, lay->csize[i]);
            tz_u64(b, lay->lho[i]);
        }
    }
    size_t cd_size = b->n - lay->cd_off;
    if (z64) {
        size_t rec = b->n;
        tz_u32(b, 0x06064b50);
        tz_u64(b, 44);
        tz_u16(b, 45);
        tz_u16(b, 45);
        tz_u32(b, 0);
        tz_u32(b, 0);
        tz_u64(b, (uint64_t)n);
        tz_u64(b, (uint64_t)n);
        tz_u64(b, cd_size);
        tz_u64(b, lay->cd_off);
        tz_u32(b, 0x07064b50);
        tz_u32(b, 0);
        tz_u64(b, rec);
        tz_u32(b, 1);
    }
    lay->eocd = b->n;
    tz_u32(b, 0x06054b50);
    tz_u16(b, 0);
    tz_u16(b, 0);
    tz_u16(b, z64 ? 0xFFFF : (unsigned)n);
    tz_u16(b, z64 ? 0xFFFF : (unsigned)n);
    tz_u32(b, z64 ? 0xFFFFFFFFu : (uint32_t)cd_size);
    tz_u32(b, z64 ? 0xFFFFFFFFu : (uint32_t)lay->cd_off);
    tz_u16(b, 0);
}

static int tz_write(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(p, 1, n, f) == n;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* Whole source into memory (cv_source_read in 1 MiB pieces). */
static unsigned char *tz_slurp_source(const cv_source *s, cv_err *e)
{
    unsigned char *p = malloc(s->size ? s->size : 1);
    for (uint64_t off = 0; p && off < s->size; off += 1 << 20) {
        size_t k = s->size - off < (1 << 20) ? (size_t)(s->size - off) : (1 << 20);
        if (cv_source_read(s, off, p + off, k, e) < 0) {
            free(p);
            return NULL;
        }
    }
    return p;
}

static int tz_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

/* ---- the fixture archives ---------------------------------------------------------- */

static void test_fixture(const char *file)
{
    char path[1024], name[512];
    snprintf(path, sizeof path, "%s/models/%s", t_local(), file);
    cv_limits lim = cv_limits_default();
    cv_zip *z;
    cv_err e = { "" };
    snprintf(name, sizeof name, "zip/%s: open", file);
    if (cv_zip_open(path, &lim, &z, &e) < 0) {
        t_fail(name, "%s", e.msg);
        return;
    }
    t_pass(name);
    snprintf(name, sizeof name, "zip/%s: has the three members", file);
    T_CHECK(name, cv_zip_has(z, "config.json") && cv_zip_has(z, "model.weights.h5") && cv_zip_has(z, "metadata.json") &&
            !cv_zip_has(z, "config.jso") && !cv_zip_has(z, "config.json2") && !cv_zip_has(z, ""), "membership wrong");

    char *cfg;
    size_t len;
    snprintf(name, sizeof name, "zip/%s: config.json parses: a Functional or Sequential model with layers", file);
    if (cv_zip_read(z, "config.json", 16 << 20, &cfg, &len, &e) < 0) {
        t_fail(name, "%s", e.msg);
    } else {
        js_doc *doc;
        const js_value *root;
        char err[256];
        int rc = js_parse(cfg, len, lim.max_json_depth, &doc, &root, err, sizeof err);
        const char *cls = rc == 0 ? js_get_str(root, "class_name") : NULL;
        T_CHECK(name, cls && (strcmp(cls, "Functional") == 0 || strcmp(cls, "Sequential") == 0) &&
                js_get(js_get(root, "config"), "layers") && strlen(cfg) == len,
                "%s", rc ? err : "unexpected content");
        if (rc == 0) js_doc_free(doc);
        free(cfg);
    }

    snprintf(name, sizeof name, "zip/%s: config.json over max is refused", file);
    int rc = cv_zip_read(z, "config.json", 1000, &cfg, &len, &e);
    T_CHECK(name, rc == -1 && !cfg && strstr(e.msg, "exceeds"), "rc %d: %s", rc, e.msg);

    cv_source s;
    unsigned char sig[8] = { 0 };
    snprintf(name, sizeof name, "zip/%s: model.weights.h5 source starts with the HDF5 signature", file);
    if (cv_zip_source(z, "model.weights.h5", &s, &e) < 0) {
        t_fail(name, "%s", e.msg);
    } else {
        cv_zip_close(z);    /* the STORED source has its own descriptor */
        z = NULL;
        rc = cv_source_read(&s, 0, sig, 8, &e);
        T_CHECK(name, rc == 0 && memcmp(sig, hdf5_sig, 8) == 0 && s.size > 1000 && s.base > 0, "%s", e.msg);
        snprintf(name, sizeof name, "zip/%s: source reads stop at the member's end", file);
        rc = cv_source_read(&s, s.size - 4, sig, 8, &e);
        T_CHECK(name, rc == -1, "read past the member succeeded");
        cv_source_close(&s);
    }
    cv_zip_close(z);
}

/* ---- re-packed archives ------------------------------------------------------------- */

static void test_repack(const char *file)
{
    char path[1024], name[512];
    snprintf(path, sizeof path, "%s/models/%s", t_local(), file);
    cv_zip *z;
    cv_err e = { "" };
    static const char *names[3] = { "metadata.json", "config.json", "model.weights.h5" };
    char *data[3] = { 0 };
    size_t len[3] = { 0 };
    if (cv_zip_open(path, NULL, &z, &e) < 0) {
        t_fail("zip/repack", "%s", e.msg);
        return;
    }
    for (int i = 0; i < 3; i++) {
        if (cv_zip_read(z, names[i], 64 << 20, &data[i], &len[i], &e) < 0) {
            t_fail("zip/repack", "%s", e.msg);
            goto out;
        }
    }
    static const struct {
        const char *what;
        int opts, deflate;
    } kinds[] = {
        { "DEFLATE", 0, 1 },
        { "DEFLATE + data descriptor", TZ_DESCRIPTOR, 1 },
        { "DEFLATE + ZIP64", TZ_ZIP64, 1 },
        { "STORED + ZIP64 + data descriptor", TZ_ZIP64 | TZ_DESCRIPTOR, 0 },
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        tz_member m[3];
        for (int i = 0; i < 3; i++) m[i] = (tz_member){ names[i], data[i], len[i], kinds[k].deflate };
        tz_buf b;
        tz_layout lay;
        tz_build(m, 3, kinds[k].opts, &b, &lay);
        snprintf(path, sizeof path, "%s/repack_%zu.keras", t_tmp(), k);
        int rc = tz_write(path, b.p, b.n);
        free(b.p);
        snprintf(name, sizeof name, "zip/%s re-packed %s: members equal the originals", file, kinds[k].what);
        cv_zip *r;
        if (rc < 0 || cv_zip_open(path, NULL, &r, &e) < 0) {
            t_fail(name, "%s", rc < 0 ? "cannot write" : e.msg);
            continue;
        }
        char *cfg = NULL;
        size_t cfg_len = 0;
        cv_source s;
        int ok = cv_zip_read(r, "config.json", 16 << 20, &cfg, &cfg_len, &e) == 0 && cfg_len == len[1] &&
                 memcmp(cfg, data[1], cfg_len) == 0;
        free(cfg);
        if (ok && cv_zip_source(r, "model.weights.h5", &s, &e) == 0) {
            unsigned char *w = tz_slurp_source(&s, &e);
            ok = w && s.size == len[2] && memcmp(w, data[2], len[2]) == 0 && memcmp(w, hdf5_sig, 8) == 0 &&
                 (kinds[k].deflate ? s.base == 0 : s.base > 0);
            free(w);
            cv_source_close(&s);
        } else {
            ok = 0;
        }
        T_CHECK(name, ok, "%s", e.msg[0] ? e.msg : "bytes differ");
        cv_zip_close(r);
        unlink(path);
    }
out:
    for (int i = 0; i < 3; i++) free(data[i]);
    cv_zip_close(z);
}

/* A DEFLATE member above the limits is refused before anything is inflated. */
static void test_limits(void)
{
    static char big[200000];
    memset(big, 'x', sizeof big);
    tz_member m[1] = { { "model.weights.h5", big, sizeof big, 1 } };
    tz_buf b;
    tz_layout lay;
    tz_build(m, 1, 0, &b, &lay);
    char path[1024];
    snprintf(path, sizeof path, "%s/limits.keras", t_tmp());
    cv_limits lim = cv_limits_default();
    lim.max_file_bytes = 100000;   /* the archive is ~1 KB, the member 200 KB */
    cv_zip *z;
    cv_source s;
    cv_err e = { "" };
    int rc = tz_write(path, b.p, b.n) == 0 && cv_zip_open(path, &lim, &z, &e) == 0 ? 0 : -2;
    if (rc == 0) {
        rc = cv_zip_source(z, "model.weights.h5", &s, &e);
        cv_zip_close(z);
    }
    char name[512];
    snprintf(name, sizeof name, "zip/limits: inflated size over max_file_bytes refused (%s)", e.msg);
    T_CHECK(name, rc == -1 && strstr(e.msg, "exceeds the limit"), "rc %d: %s", rc, e.msg);

    /* Nowhere to inflate to: a message, not a crash (exercises the mkostemp fallback too). */
    char *old_tmpdir = getenv("TMPDIR") ? strdup(getenv("TMPDIR")) : NULL;
    char nodir[1024];
    snprintf(nodir, sizeof nodir, "%s/no-such-dir", t_tmp());
    setenv("TMPDIR", nodir, 1);
    lim.max_file_bytes = 1000000;
    rc = cv_zip_open(path, &lim, &z, &e);
    if (rc == 0) {
        rc = cv_zip_source(z, "model.weights.h5", &s, &e);
        if (rc == 0) cv_source_close(&s);
        cv_zip_close(z);
    }
    if (old_tmpdir) setenv("TMPDIR", old_tmpdir, 1);
    else unsetenv("TMPDIR");
    free(old_tmpdir);
    snprintf(name, sizeof name, "zip/limits: unusable TMPDIR refused (%.200s)", e.msg);
    T_CHECK(name, rc == -1 && strstr(e.msg, "temporary file"), "rc %d", rc);

    lim.max_file_bytes = b.n - 1;
    rc = cv_zip_open(path, &lim, &z, &e);
    snprintf(name, sizeof name, "zip/limits: archive over max_file_bytes refused (%s)", e.msg);
    T_CHECK(name, rc == -1 && !z, "rc %d", rc);
    free(b.p);
    unlink(path);
}

/* ---- broken archives ------------------------------------------------------------------ */

/* The base archive: a STORED config.json, a DEFLATE model.weights.h5 and a third
 * member whose name the table may damage. */
enum {
    B_TRUNC_10, B_TRUNC_HALF, B_TRUNC_EOCD, B_TRUNC_LAST, B_EMPTY, B_NOT_ZIP, B_TRAILING,
    B_CRC_STORED, B_CRC_DEFLATE, B_CRC_FIELD, B_CD_OFF_PLUS, B_CD_OFF_HUGE, B_CD_SIZE_HUGE, B_COUNT_HUGE,
    B_COUNT_LESS, B_LHO_PAST_EOF, B_CSIZE_HUGE, B_METHOD_12, B_ENCRYPTED, B_USIZE_HUGE, B_USIZE_SMALL,
    B_DEFLATE_TRUNC, B_DUPLICATE, B_NUL_NAME, B_LOCAL_NAME, B_LOCAL_SIG, B_LOCAL_SIZE, B_STORED_SIZES,
    B_MULTIDISK, B_COUNT
};

static const struct {
    const char *what, *want;   /* want: a substring of the message */
} broken[B_COUNT] = {
    [B_TRUNC_10] = { "truncated to 10 bytes", "too short" },
    [B_TRUNC_HALF] = { "truncated in the middle", "no end-of-central-directory" },
    [B_TRUNC_EOCD] = { "truncated inside the end record", "no end-of-central-directory" },
    [B_TRUNC_LAST] = { "last byte missing", "no end-of-central-directory" },
    [B_EMPTY] = { "empty file", "too short" },
    [B_NOT_ZIP] = { "not a zip (text)", "not a zip archive" },
    [B_TRAILING] = { "garbage after the end record", "no end-of-central-directory" },
    [B_CRC_STORED] = { "flipped byte in STORED data", "CRC mismatch" },
    [B_CRC_DEFLATE] = { "flipped byte in DEFLATE data", "model.weights.h5" },
    [B_CRC_FIELD] = { "wrong CRC in both headers", "CRC mismatch" },
    [B_CD_OFF_PLUS] = { "central directory offset + 1", "central directory" },
    [B_CD_OFF_HUGE] = { "central directory offset past EOF", "overruns its end record" },
    [B_CD_SIZE_HUGE] = { "central directory size past EOF", "overruns its end record" },
    [B_COUNT_HUGE] = { "65535 entries claimed", "cannot fit" },
    [B_COUNT_LESS] = { "one entry too few", "bytes after its 2 entries" },
    [B_LHO_PAST_EOF] = { "local header offset past EOF", "out of range" },
    [B_CSIZE_HUGE] = { "compressed size 4 GiB", "out of range" },
    [B_METHOD_12] = { "method 12 (bzip2)", "compression method 12" },
    [B_ENCRYPTED] = { "encrypted flag", "encrypted" },
    [B_USIZE_HUGE] = { "uncompressed size 4 GiB", "exceeds" },
    [B_USIZE_SMALL] = { "uncompressed size too small (bomb)", "inflates past its declared size" },
    [B_DEFLATE_TRUNC] = { "DEFLATE stream cut short", "model.weights.h5" },
    [B_DUPLICATE] = { "duplicate member name", "duplicate member" },
    [B_NUL_NAME] = { "NUL in a name", "NUL" },
    [B_LOCAL_NAME] = { "local header names another file", "names another file" },
    [B_LOCAL_SIG] = { "local header signature damaged", "no local header" },
    [B_LOCAL_SIZE] = { "local header size disagrees", "disagrees" },
    [B_STORED_SIZES] = { "STORED with csize != usize", "stored, but" },
    [B_MULTIDISK] = { "multi-disk end record", "multi-disk" },
};

static void test_broken(void)
{
    /* Compressible but not trivial, so the deflate stream has real structure. */
    static unsigned char weights[300000];
    uint32_t x = 12345;
    memcpy(weights, hdf5_sig, 8);
    for (size_t i = 8; i < sizeof weights; i++) {
        x = x * 1103515245u + 12345u;
        weights[i] = (unsigned char)((x >> 16) % 7);
    }
    const char *cfg = "{\"class_name\": \"Functional\", \"config\": {\"layers\": []}}";
    char path[1024], name[512];
    snprintf(path, sizeof path, "%s/broken.keras", t_tmp());
    int fds_before = tz_count_fds();

    for (int k = 0; k < B_COUNT; k++) {
        tz_member m[3] = {
            { "config.json", cfg, strlen(cfg), 0 },
            { "model.weights.h5", weights, sizeof weights, 1 },
            { k == B_DUPLICATE ? "config.json" : "assets/aXb", "x", 1, 0 },
        };
        tz_buf b;
        tz_layout L;
        tz_build(m, 3, 0, &b, &L);
        size_t n = b.n;
        switch (k) {
        case B_TRUNC_10: n = 10; break;
        case B_TRUNC_HALF: n = b.n / 2; break;
        case B_TRUNC_EOCD: n = L.eocd + 10; break;
        case B_TRUNC_LAST: n = b.n - 1; break;
        case B_EMPTY: n = 0; break;
        case B_NOT_ZIP: memcpy(b.p, "this is not a zip archive, just text.", 37); n = 37; break;
        case B_TRAILING: tz_put(&b, "junk", 4); n = b.n; break;
        case B_CRC_STORED: b.p[L.data[0] + 3] ^= 0x20; break;
        case B_CRC_DEFLATE: b.p[L.data[1] + L.csize[1] / 2] ^= 0x55; break;
        case B_CRC_FIELD:
            tz_set32(&b, L.cde[0] + 16, 0xDEADBEEF);
            tz_set32(&b, L.lho[0] + 14, 0xDEADBEEF);
            break;
        case B_CD_OFF_PLUS: tz_set32(&b, L.eocd + 16, (uint32_t)L.cd_off + 1); break;
        case B_CD_OFF_HUGE: tz_set32(&b, L.eocd + 16, 0xFFFFFF00u); break;
        case B_CD_SIZE_HUGE: tz_set32(&b, L.eocd + 12, 0x7FFFFFFFu); break;
        case B_COUNT_HUGE: tz_set16(&b, L.eocd + 8, 0xFFFF); tz_set16(&b, L.eocd + 10, 0xFFFF); break;
        case B_COUNT_LESS: tz_set16(&b, L.eocd + 8, 2); tz_set16(&b, L.eocd + 10, 2); break;
        case B_LHO_PAST_EOF: tz_set32(&b, L.cde[0] + 42, (uint32_t)b.n + 100); break;
        case B_CSIZE_HUGE: tz_set32(&b, L.cde[1] + 20, 0xFFFFFFF0u); break;
        case B_METHOD_12: tz_set16(&b, L.cde[1] + 10, 12); tz_set16(&b, L.lho[1] + 8, 12); break;
        case B_ENCRYPTED: tz_set16(&b, L.cde[0] + 8, 1); tz_set16(&b, L.lho[0] + 6, 1); break;
        case B_USIZE_HUGE: tz_set32(&b, L.cde[1] + 24, 0xFFFFFFF0u); tz_set32(&b, L.lho[1] + 22, 0xFFFFFFF0u); break;
        case B_USIZE_SMALL: tz_set32(&b, L.cde[1] + 24, 1000); tz_set32(&b, L.lho[1] + 22, 1000); break;
        case B_DEFLATE_TRUNC:
            tz_set32(&b, L.cde[1] + 20, (uint32_t)L.csize[1] / 2);
            tz_set32(&b, L.lho[1] + 18, (uint32_t)L.csize[1] / 2);
            break;
        case B_NUL_NAME:
            b.p[L.lho[2] + 30 + 8] = 0;
            b.p[L.cde[2] + 46 + 8] = 0;
            break;
        case B_LOCAL_NAME: b.p[L.lho[0] + 30] = 'C'; b.p[L.lho[1] + 30] = 'M'; break;
        case B_LOCAL_SIG: b.p[L.lho[0]] = 'X'; b.p[L.lho[1]] = 'X'; break;
        case B_LOCAL_SIZE: tz_set32(&b, L.lho[0] + 22, 3); tz_set32(&b, L.lho[1] + 22, 3); break;
        case B_STORED_SIZES: tz_set32(&b, L.cde[0] + 24, (uint32_t)strlen(cfg) - 1); break;
        case B_MULTIDISK: tz_set16(&b, L.eocd + 4, 1); break;
        }
        int rc = tz_write(path, b.p, n);
        free(b.p);
        if (rc < 0) {
            t_fail("zip/broken", "cannot write %s", path);
            continue;
        }
        /* Must fail at open or on one of the members; never crash. */
        cv_zip *z;
        cv_err e = { "" };
        rc = cv_zip_open(path, NULL, &z, &e);
        if (rc == 0) {
            char *buf = NULL;
            size_t len;
            cv_source s;
            int r1 = cv_zip_read(z, "config.json", 1 << 20, &buf, &len, &e);
            free(buf);
            if (r1 == 0) {
                r1 = cv_zip_source(z, "model.weights.h5", &s, &e);
                if (r1 == 0) cv_source_close(&s);
            }
            rc = r1;
            cv_zip_close(z);
        }
        snprintf(name, sizeof name, "zip/broken: %s (%s)", broken[k].what, e.msg);
        T_CHECK(name, rc == -1 && strncmp(e.msg, "zip: ", 5) == 0 && strstr(e.msg, broken[k].want),
                "rc %d, message '%s' lacks '%s'", rc, e.msg, broken[k].want);
    }
    unlink(path);

    cv_zip *z;
    cv_err e = { "" };
    int rc = cv_zip_open(t_tmp(), NULL, &z, &e);
    snprintf(name, sizeof name, "zip/broken: a directory (%s)", e.msg);
    T_CHECK(name, rc == -1, "opened");
    snprintf(path, sizeof path, "%s/does-not-exist.keras", t_tmp());
    rc = cv_zip_open(path, NULL, &z, &e);
    T_CHECK("zip/broken: missing file", rc == -1 && strstr(e.msg, "cannot open"), "%s", e.msg);
    T_CHECK("zip/broken: no descriptor leaked", tz_count_fds() == fds_before, "%d fds before, %d after",
            fds_before, tz_count_fds());
}

/* An empty archive (just the end record) is valid, and has nothing. */
static void test_empty_archive(void)
{
    tz_buf b;
    tz_layout lay;
    tz_build(NULL, 0, 0, &b, &lay);
    char path[1024];
    snprintf(path, sizeof path, "%s/empty.zip", t_tmp());
    cv_zip *z;
    cv_err e = { "" };
    char *buf;
    size_t len;
    int ok = tz_write(path, b.p, b.n) == 0 && cv_zip_open(path, NULL, &z, &e) == 0;
    if (ok) {
        ok = !cv_zip_has(z, "config.json") && cv_zip_read(z, "config.json", 100, &buf, &len, &e) == -1 &&
             strstr(e.msg, "no member");
        cv_zip_close(z);
    }
    T_CHECK("zip/empty archive opens, has no members", ok, "%s", e.msg);
    free(b.p);
    unlink(path);
}

int main(void)
{
    static const char *fixtures[] = { "tiny_v1b0_64.keras", "tiny_v2s_64.keras", "tiny_v2b0_nested_67x53.keras" };
    for (int i = 0; i < 3; i++) test_fixture(fixtures[i]);
    test_repack(fixtures[0]);
    test_limits();
    test_broken();
    test_empty_archive();
    return t_failed;
}
