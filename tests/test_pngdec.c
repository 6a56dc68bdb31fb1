/* test_pngdec.c - image/pngdec.c (through image/reader.c) on PNGs written here.
 *
 *   variants: every bit depth / colour type pair, the five filters (each row
 *             its own), Adam7 and not, odd sizes, the data split into IDAT
 *             chunks of every size (empty ones too), 16-bit samples that test
 *             PIL's rules (gray clipped to 255, colour keeping its high byte):
 *             == stb_image's independent decoder with PIL's conversions (16-bit
 *             gray clipped at 255, colour keeping its high byte);
 *   PIL's stream rules: palette indices past PLTE black; a zlib stream ending
 *             at a row boundary leaves zero samples (black / palette entry 0);
 *             IDAT CRCs unchecked, earlier CRCs checked;
 *   hostile:  every cut of a file, corrupt zlib data, filter types, chunk
 *             types, IHDR values, huge sizes: one error line each;
 *   memory:   a 4000x3000 PNG decoded + resized in a child: peak RSS grows by
 *             the file's size (its bytes are read) plus what a 300x300 costs.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <stb/stb_image.h>
#include <zlib.h>

#include "effcam.h"
#include "image/image.h"
#include "image/pngdec.h"
#include "image/reader.h"
#include "image/resample.h"
#include "tests/harness.h"
#include "tests/memchild.h"

#define MAXPX ((int64_t)50000000)

static uint64_t rng = 0x2545F4914F6CDD1Du;
static uint32_t rnd(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* stb_image's PNG decoder (compiled into the library for this check only) with
 * PIL's convert("RGB") rules: an independent decoder to hold pngdec.c to. */
static uint8_t *stb_ref(const uint8_t *p, size_t n, int *w, int *h)
{
    int comp = 0;
    if (!stbi_info_from_memory(p, (int)n, w, h, &comp)) return NULL;
    if (comp == 1 && stbi_is_16_bit_from_memory(p, (int)n)) {
        /* 16-bit gray: PIL holds it as "I;16" and convert("RGB") clips above 255 */
        uint16_t *g = stbi_load_16_from_memory(p, (int)n, w, h, &comp, 1);
        uint8_t *out = g ? malloc((size_t)*w * *h * 3) : NULL;
        for (size_t i = 0; out && i < (size_t)*w * *h; i++)
            out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = (uint8_t)(g[i] > 255 ? 255 : g[i]);
        stbi_image_free(g);
        return out;
    }
    /* 3 channels: gray replicated, alpha dropped, palettes applied, 16-bit
     * colour reduced to its high byte, as PIL's unpackers do */
    uint8_t *s8 = stbi_load_from_memory(p, (int)n, w, h, &comp, 3);
    uint8_t *out = s8 ? malloc((size_t)*w * *h * 3) : NULL;
    if (out) memcpy(out, s8, (size_t)*w * *h * 3);
    stbi_image_free(s8);
    return out;
}

/* ---- a PNG writer -------------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void be32(buf *b, uint32_t v)
{
    uint8_t q[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(b, q, 4);
}

static void chunk(buf *b, const char *type, const uint8_t *d, size_t n)
{
    be32(b, (uint32_t)n);
    put(b, type, 4);
    if (n) put(b, d, n);
    uint32_t crc = (uint32_t)crc32(crc32(0L, (const Bytef *)type, 4), d ? d : (const Bytef *)"", (uInt)n);
    be32(b, crc);
}

typedef struct {
    int w, h, depth, ctype, interlace;
    const uint8_t *plte;              /* 3 * nplte bytes */
    int nplte;
    int idat_split;                   /* 0: one IDAT; k: chunks of k bytes; -1: random, empty ones too */
    int level;
} png_opts;

static int samples_of(int ctype) { return ctype == 0 || ctype == 3 ? 1 : ctype == 2 ? 3 : ctype == 4 ? 2 : 4; }

/* Sample bits of pixel x in a raw row. */
static uint32_t get_px(const uint8_t *row, int x, int bits)
{
    if (bits < 8) return row[(size_t)x * bits / 8] >> (8 - bits - (x * bits) % 8) & ((1u << bits) - 1);
    uint32_t v = 0;
    for (int k = 0; k < bits / 8; k++) v = v << 8 | row[(size_t)x * (bits / 8) + k];
    return v;
}

static void set_px(uint8_t *row, int x, int bits, uint32_t v)
{
    if (bits < 8) {
        int sh = 8 - bits - (x * bits) % 8;
        row[(size_t)x * bits / 8] = (uint8_t)((row[(size_t)x * bits / 8] & ~(((1u << bits) - 1) << sh)) | v << sh);
        return;
    }
    for (int k = bits / 8 - 1; k >= 0; k--, v >>= 8) row[(size_t)x * (bits / 8) + k] = (uint8_t)v;
}

static uint8_t paeth(int a, int b, int c)
{
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return (uint8_t)(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
}

/* Filters rows of len bytes (random filter per row) into out (1 + len each). */
static void filter_rows(const uint8_t *raw, int rows, size_t len, int bpp, uint8_t *out)
{
    uint8_t *zero = calloc(1, len + 1);
    for (int y = 0; y < rows; y++) {
        const uint8_t *r = raw + (size_t)y * len, *u = y ? raw + (size_t)(y - 1) * len : zero;
        uint8_t *o = out + (size_t)y * (len + 1);
        int f = (int)(rnd() % 5);
        o[0] = (uint8_t)f;
        for (size_t i = 0; i < len; i++) {
            int a = i >= (size_t)bpp ? r[i - bpp] : 0, b = u[i], c = i >= (size_t)bpp ? u[i - bpp] : 0;
            int pred = f == 0 ? 0 : f == 1 ? a : f == 2 ? b : f == 3 ? (a + b) / 2 : paeth(a, b, c);
            o[1 + i] = (uint8_t)(r[i] - pred);
        }
    }
    free(zero);
}

/* A PNG of the raw image (h rows of (w * bits + 7) / 8 bytes). */
static buf make_png(const png_opts *o, const uint8_t *raw)
{
    int bits = o->depth * samples_of(o->ctype), bpp = (bits + 7) / 8;
    size_t rowlen = ((size_t)o->w * bits + 7) / 8;
    buf filt = {0}, b = {0};
    if (!o->interlace) {
        filt.p = malloc((size_t)o->h * (rowlen + 1));
        filt.n = (size_t)o->h * (rowlen + 1);
        filter_rows(raw, o->h, rowlen, bpp, filt.p);
    } else {
        static const int x0[7] = {0, 4, 0, 2, 0, 1, 0}, y0[7] = {0, 0, 4, 0, 2, 0, 1};
        static const int dx[7] = {8, 8, 4, 4, 2, 2, 1}, dy[7] = {8, 8, 8, 4, 4, 2, 2};
        for (int p = 0; p < 7; p++) {
            int pw = o->w > x0[p] ? (o->w - x0[p] + dx[p] - 1) / dx[p] : 0;
            int ph = o->h > y0[p] ? (o->h - y0[p] + dy[p] - 1) / dy[p] : 0;
            if (!pw || !ph) continue;
            size_t plen = ((size_t)pw * bits + 7) / 8;
            uint8_t *sub = calloc((size_t)ph, plen), *f = malloc((size_t)ph * (plen + 1));
            for (int j = 0; j < ph; j++)
                for (int i = 0; i < pw; i++)
                    set_px(sub + (size_t)j * plen, i, bits,
                           get_px(raw + (size_t)(y0[p] + j * dy[p]) * rowlen, x0[p] + i * dx[p], bits));
            filter_rows(sub, ph, plen, bpp, f);
            put(&filt, f, (size_t)ph * (plen + 1));
            free(sub), free(f);
        }
    }
    uLongf zn = compressBound(filt.n);
    uint8_t *z = malloc(zn);
    compress2(z, &zn, filt.p, filt.n, o->level ? o->level : 6);
    put(&b, "\x89PNG\r\n\x1A\n", 8);
    uint8_t ihdr[13];
    for (int k = 0; k < 4; k++) ihdr[k] = (uint8_t)(o->w >> (24 - 8 * k)), ihdr[4 + k] = (uint8_t)(o->h >> (24 - 8 * k));
    ihdr[8] = (uint8_t)o->depth, ihdr[9] = (uint8_t)o->ctype, ihdr[10] = 0, ihdr[11] = 0, ihdr[12] = (uint8_t)o->interlace;
    chunk(&b, "IHDR", ihdr, 13);
    chunk(&b, "tEXt", (const uint8_t *)"Comment\0test", 12);
    if (o->plte) chunk(&b, "PLTE", o->plte, (size_t)o->nplte * 3);
    for (size_t off = 0; off < zn || off == 0;) {
        size_t k = zn - off;
        if (o->idat_split > 0 && (size_t)o->idat_split < k) k = (size_t)o->idat_split;
        if (o->idat_split < 0) {
            k = rnd() % 4 == 0 ? 0 : 1 + rnd() % 700;
            if (k > zn - off) k = zn - off;
        }
        chunk(&b, "IDAT", z + off, k);
        off += k;
        if (zn == 0) break;
    }
    chunk(&b, "IEND", NULL, 0);
    free(z), free(filt.p);
    return b;
}

/* Random raw samples (16-bit gray: often under 256, sometimes over). */
static uint8_t *rand_raw(const png_opts *o)
{
    int bits = o->depth * samples_of(o->ctype);
    size_t rowlen = ((size_t)o->w * bits + 7) / 8, n = rowlen * o->h;
    uint8_t *raw = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) raw[i] = (uint8_t)rnd();
    if (o->depth == 16 && o->ctype == 0)
        for (size_t i = 0; i < n; i += 2) raw[i] = rnd() % 3 ? 0 : raw[i];
    if (o->ctype == 3 && o->nplte)   /* indices within the palette */
        for (int y = 0; y < o->h; y++)
            for (int x = 0; x < o->w; x++)
                set_px(raw + y * rowlen, x, o->depth, get_px(raw + y * rowlen, x, o->depth) % (uint32_t)o->nplte);
    return raw;
}

/* Our rows (through the reader, from memory, batches of `batch`) or NULL. */
static uint8_t *ours(const uint8_t *b, size_t n, int batch, int *w, int *h, char *why, size_t cap)
{
    ec_img *im;
    ec_status st = ec_img_open_mem(b, n, MAXPX, &im);
    if (st != EC_OK) {
        snprintf(why, cap, "%s", ec_last_error());
        return NULL;
    }
    ec_img_size(im, w, h);
    uint8_t *out = malloc((size_t)*w * *h * 3 + (size_t)*w * 3 * batch);
    int y = 0, got;
    while ((st = ec_img_read_rows(im, out + (size_t)y * *w * 3, batch, &got)) == EC_OK && got) y += got;
    if (st != EC_OK || y != *h || strcmp(ec_img_format(im), "PNG")) {
        snprintf(why, cap, "%s", st != EC_OK ? ec_last_error() : "wrong row count or format");
        free(out);
        out = NULL;
    }
    ec_img_close(im);
    return out;
}

/* ---- variants ------------------------------------------------------------------------ */

static void test_variants(void)
{
    static const int combos[][2] = {{1, 0}, {2, 0}, {4, 0}, {8, 0}, {16, 0}, {8, 2}, {16, 2}, {1, 3},
                                    {2, 3}, {4, 3}, {8, 3}, {8, 4}, {16, 4}, {8, 6}, {16, 6}};
    uint8_t plte[256 * 3];
    for (int i = 0; i < 768; i++) plte[i] = (uint8_t)rnd();
    int cases = 0, bad = 0;
    char first[400] = "";
    for (size_t c = 0; c < sizeof combos / sizeof combos[0]; c++)
        for (int it = 0; it < 24; it++) {
            png_opts o = {1 + (int)(rnd() % 40), 1 + (int)(rnd() % 30), combos[c][0], combos[c][1], it % 2, NULL, 0, 0, 0};
            if (it == 2) o.w = 1;
            if (it == 3) o.h = 1;
            if (o.ctype == 3) o.plte = plte, o.nplte = 1 + (int)(rnd() % (1 << o.depth));
            o.idat_split = it % 3 == 0 ? 0 : it % 3 == 1 ? 1 + (int)(rnd() % 50) : -1;
            uint8_t *raw = rand_raw(&o);
            buf png = make_png(&o, raw);
            /* The reference gets the same pixels in one IDAT: stb_image 2.27
             * passes NULL to memcpy for an empty first IDAT (UBSan stops). */
            png_opts one = o;
            one.idat_split = 0;
            buf ref = make_png(&one, raw);
            uint8_t *want = NULL;
            int ww, wh, gw, gh;
            want = stb_ref(ref.p, ref.n, &ww, &wh);
            ec_status st = want ? EC_OK : EC_ERR_IMAGE;
            char why[300] = "";
            uint8_t *got = ours(png.p, png.n, 1 + it % 5, &gw, &gh, why, sizeof why);
            cases++;
            if (st != EC_OK || !got || gw != ww || gh != wh || memcmp(got, want, (size_t)ww * wh * 3))
                if (!bad++)
                    snprintf(first, sizeof first, "depth %d type %d %dx%d interlace %d split %d: %s", o.depth, o.ctype,
                             o.w, o.h, o.interlace, o.idat_split,
                             st != EC_OK ? "stb_image refused it" : !got ? why : "pixels differ");
            free(want), free(got), free(raw), free(png.p), free(ref.p);
        }
    char name[200];
    snprintf(name, sizeof name, "pngdec: %d PNGs (15 depth/type pairs, 5 filters, Adam7, IDAT splits) == whole-image decoder",
             cases);
    T_CHECK(name, bad == 0, "%d differ, first: %s", bad, first);
}

/* ---- PIL's stream rules ----------------------------------------------------------------- */

static void test_pil_rules(void)
{
    char why[300];
    int w, h;
    /* palette of 2 entries, indices up to 3: PIL's zeroed palette gives black */
    uint8_t plte[6] = {10, 20, 30, 200, 100, 50};
    png_opts o = {8, 2, 2, 3, 0, plte, 2, 0, 0};
    uint8_t raw[2 * 2] = {0x1B, 0x1B, 0xE4, 0xE4};         /* 0 1 2 3 ... */
    buf png = make_png(&o, raw);
    uint8_t *got = ours(png.p, png.n, 2, &w, &h, why, sizeof why);
    int ok = got && got[0] == 10 && got[3] == 200 && got[6] == 0 && got[7] == 0 && got[9] == 0 && got[11] == 0;
    T_CHECK("pngdec: palette indices past PLTE are black (PIL's palette is zeroed)", ok, "%s", got ? "wrong colours" : why);
    free(got), free(png.p);

    /* a zlib stream that ends after row 2 of 5: PIL stops there, rows 3-5 zero
     * samples (palette entry 0 here) */
    uint8_t plte2[6] = {7, 8, 9, 1, 2, 3};
    png_opts p = {4, 5, 8, 3, 0, plte2, 2, 0, 0};
    uint8_t filt[2 * 5] = {0, 1, 1, 1, 1, 0, 1, 1, 1, 1};  /* two rows: filter 0, index 1 */
    uLongf zn = 64;
    uint8_t z[64];
    compress2(z, &zn, filt, sizeof filt, 6);
    buf b = {0};
    put(&b, "\x89PNG\r\n\x1A\n", 8);
    uint8_t ihdr[13] = {0, 0, 0, 4, 0, 0, 0, 5, 8, 3, 0, 0, 0};
    chunk(&b, "IHDR", ihdr, 13);
    chunk(&b, "PLTE", plte2, 6);
    chunk(&b, "IDAT", z, zn);
    chunk(&b, "IEND", NULL, 0);
    (void)p;
    got = ours(b.p, b.n, 3, &w, &h, why, sizeof why);
    ok = got && got[0] == 1 && got[3 * 4] == 1 && got[3 * 8] == 7 && got[3 * 19 + 2] == 9;
    T_CHECK("pngdec: zlib stream ending at a row boundary ends the image (rest: zero samples)", ok, "%s",
            got ? "wrong pixels" : why);
    free(got);

    /* the same stream cut inside a row: truncated */
    buf c = {0};
    put(&c, b.p, 8 + 25 + 18);
    compress2(z, &zn, filt, 7, 6);
    chunk(&c, "IDAT", z, zn);
    chunk(&c, "IEND", NULL, 0);
    got = ours(c.p, c.n, 3, &w, &h, why, sizeof why);
    T_CHECK("pngdec: zlib stream ending inside a row -> truncated", !got && strstr(why, "truncated"), "'%s'", why);
    free(got), free(b.p), free(c.p);

    /* CRCs: before IDAT checked, IDAT's not (as PIL) */
    png_opts q = {9, 7, 8, 2, 0, NULL, 0, 0, 0};
    uint8_t *qr = rand_raw(&q);
    png = make_png(&q, qr);
    uint8_t *full = ours(png.p, png.n, 4, &w, &h, why, sizeof why);
    size_t idat = 0;
    for (size_t i = 8; i + 8 < png.n; i++)
        if (!memcmp(png.p + i, "IDAT", 4)) { idat = i - 4; break; }
    uint32_t L = (uint32_t)png.p[idat] << 24 | png.p[idat + 1] << 16 | png.p[idat + 2] << 8 | png.p[idat + 3];
    png.p[idat + 8 + L] ^= 0x55;                               /* IDAT CRC */
    got = ours(png.p, png.n, 4, &w, &h, why, sizeof why);
    T_CHECK("pngdec: a bad IDAT CRC is not checked (PIL does not)", got && full && !memcmp(got, full, (size_t)w * h * 3),
            "%s", why);
    free(got);
    png.p[idat + 8 + L] ^= 0x55;
    png.p[8 + 8 + 13] ^= 1;                                    /* IHDR CRC */
    got = ours(png.p, png.n, 4, &w, &h, why, sizeof why);
    T_CHECK("pngdec: a bad IHDR CRC -> 'bad checksum' (PIL: broken PNG file)", !got && strstr(why, "checksum"), "'%s'", why);
    free(got), free(full), free(qr), free(png.p);
}

/* ---- hostile input ------------------------------------------------------------------------ */

static int one_line(const char *s) { return s[0] && !strchr(s, '\n'); }

static void test_hostile(void)
{
    png_opts o = {23, 17, 8, 6, 0, NULL, 0, 300, 1};
    uint8_t *raw = rand_raw(&o);
    buf png = make_png(&o, raw);
    int w, h;
    char why[300], first[400] = "";
    uint8_t *full = ours(png.p, png.n, 5, &w, &h, why, sizeof why);
    int bad = 0, ok_cuts = 0;
    size_t first_idat = 0;
    for (size_t i = 8; i + 4 < png.n; i++)
        if (!memcmp(png.p + i, "IDAT", 4)) { first_idat = i - 4; break; }
    for (size_t cut = 0; cut < png.n; cut++) {
        uint8_t *c = malloc(cut ? cut : 1);
        memcpy(c, png.p, cut);
        int cw, ch;
        uint8_t *got = ours(c, cut, 5, &cw, &ch, why, sizeof why);
        /* before the image data ends: an error; after: the whole image */
        int fine = got ? !memcmp(got, full, (size_t)w * h * 3) && cut > first_idat : one_line(why);
        if (!got && cut > 8 && !strstr(why, "truncated") && !strstr(why, "not a PNG")) fine = 0;
        if (!fine && !bad++) snprintf(first, sizeof first, "cut at %zu of %zu: %s", cut, png.n, got ? "wrong pixels" : why);
        ok_cuts += got != NULL;
        free(got), free(c);
    }
    char name[200];
    snprintf(name, sizeof name, "pngdec: cut at each of %zu bytes -> 'truncated', or the whole image once the data is in (%d)",
             png.n, ok_cuts);
    T_CHECK(name, full && bad == 0 && ok_cuts < 40, "%d bad, first %s", bad, first);

    /* byte flips anywhere: decoded or one error line */
    int runs = 0, errs = 0;
    bad = 0;
    for (int it = 0; it < 3000; it++) {
        uint8_t *c = malloc(png.n);
        memcpy(c, png.p, png.n);
        for (int k = 0; k <= it % 3; k++) c[8 + rnd() % (png.n - 8)] ^= (uint8_t)(1u << (rnd() % 8));
        int cw, ch;
        uint8_t *got = ours(c, png.n, 3, &cw, &ch, why, sizeof why);
        runs++;
        if (!got) {
            errs++;
            if (!one_line(why) && !bad++) snprintf(first, sizeof first, "flip set %d: '%s'", it, why);
        }
        free(got), free(c);
    }
    snprintf(name, sizeof name, "pngdec: %d corrupted copies -> decoded or one error line (%d errors)", runs, errs);
    T_CHECK(name, bad == 0, "first %s", first);

    /* IHDR values */
    struct { const char *what; int off; uint8_t val; const char *expect; } patch[] = {
        {"width 0", 16, 0, "zero"}, {"bit depth 3", 24, 3, "bit depth"}, {"colour type 5", 25, 5, "colour type"},
        {"filter method 1", 27, 1, "filter method"}, {"width 2^31", 16, 0x80, "length"},
    };
    for (size_t i = 0; i < sizeof patch / sizeof patch[0]; i++) {
        buf c = {0};
        put(&c, png.p, png.n);
        if (patch[i].off == 16 && patch[i].val == 0) memset(c.p + 16, 0, 4);
        else c.p[patch[i].off] = patch[i].val;
        /* recompute IHDR's CRC so the value itself is what is refused */
        uint32_t crc = (uint32_t)crc32(0L, c.p + 12, 17);
        c.p[29] = (uint8_t)(crc >> 24), c.p[30] = (uint8_t)(crc >> 16), c.p[31] = (uint8_t)(crc >> 8), c.p[32] = (uint8_t)crc;
        int cw, ch;
        uint8_t *got = ours(c.p, c.n, 3, &cw, &ch, why, sizeof why);
        snprintf(name, sizeof name, "pngdec: IHDR %s -> one error", patch[i].what);
        int expect_ok = strcmp(patch[i].expect, "length") ? strstr(why, patch[i].expect) != NULL : 1;
        T_CHECK(name, !got && one_line(why) && expect_ok, "'%s'", why);
        free(got), free(c.p);
    }
    /* huge declared size: refused from IHDR, fast */
    buf c = {0};
    put(&c, png.p, png.n);
    memcpy(c.p + 16, "\x00\x00\xEA\x60\x00\x00\xEA\x60", 8);   /* 60000 x 60000 */
    uint32_t crc = (uint32_t)crc32(0L, c.p + 12, 17);
    c.p[29] = (uint8_t)(crc >> 24), c.p[30] = (uint8_t)(crc >> 16), c.p[31] = (uint8_t)(crc >> 8), c.p[32] = (uint8_t)crc;
    double t0 = t_now_ms();
    ec_img *im = NULL;
    ec_status st = ec_img_open_mem(c.p, c.n, MAXPX, &im);
    double ms = t_now_ms() - t0;
    T_CHECK("pngdec: 60000x60000 declared -> limit from IHDR, fast", st == EC_ERR_LIMIT && !im && ms < 100,
            "status %d '%s' %.0f ms", st, ec_last_error(), ms);
    /* a bad filter type: the first row's filter byte is inside the zlib data:
     * write one by hand */
    uint8_t f[1 + 3] = {7, 1, 2, 3};
    uLongf zn = 64;
    uint8_t z[64];
    compress2(z, &zn, f, sizeof f, 6);
    buf d = {0};
    put(&d, "\x89PNG\r\n\x1A\n", 8);
    uint8_t ihdr[13] = {0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0};
    chunk(&d, "IHDR", ihdr, 13);
    chunk(&d, "IDAT", z, zn);
    chunk(&d, "IEND", NULL, 0);
    int cw, ch;
    uint8_t *got = ours(d.p, d.n, 1, &cw, &ch, why, sizeof why);
    T_CHECK("pngdec: filter type 7 -> corrupt", !got && strstr(why, "filter type 7"), "'%s'", why);
    free(got), free(d.p);
    /* a chunk type PIL refuses; IEND before IDAT; first chunk not IHDR */
    memcpy(c.p, png.p, png.n);
    memcpy(c.p + 37, "t$Xt", 4);
    got = ours(c.p, c.n, 1, &cw, &ch, why, sizeof why);
    T_CHECK("pngdec: chunk type 't$Xt' -> corrupt", !got && strstr(why, "chunk type"), "'%s'", why);
    free(got);
    memcpy(c.p + 12, "IEND", 4);
    got = ours(c.p, c.n, 1, &cw, &ch, why, sizeof why);
    T_CHECK("pngdec: first chunk not IHDR -> corrupt", !got && one_line(why), "'%s'", why);
    free(got), free(c.p), free(full), free(raw), free(png.p);
}

/* ---- memory: 12 MP ------------------------------------------------------------------------ */

static int mem_child(const char *path)
{
    double t0;
    long before = t_mem_child_begin(&t0);
    ec_img *im;
    if (ec_img_open_file(path, MAXPX, &im) != EC_OK) return 3;
    return t_mem_child_stream(im, before, t0);
}

static void test_memory(void)
{
#ifdef T_ASAN
    t_skip("pngdec: 12 MP peak RSS", "AddressSanitizer build (RSS meaningless)");
    return;
#endif
    char big[512], small[512];
    snprintf(big, sizeof big, "%s/big_4000x3000.png", t_tmp());
    snprintf(small, sizeof small, "%s/small_300x300.png", t_tmp());
    size_t sizes[2];
    for (int k = 0; k < 2; k++) {
        png_opts o = {k ? 300 : 4000, k ? 300 : 3000, 8, 2, 0, NULL, 0, 8192, 1};
        size_t rowlen = (size_t)o.w * 3;
        uint8_t *raw = malloc(rowlen * o.h);
        for (int y = 0; y < o.h; y++)
            for (size_t i = 0; i < rowlen; i++) raw[y * rowlen + i] = (uint8_t)((i * 7 / 3 + y * 5) ^ (i / 97));
        buf png = make_png(&o, raw);
        FILE *f = fopen(k ? small : big, "wb");
        if (f) fwrite(png.p, 1, png.n, f), fclose(f);
        sizes[k] = png.n;
        free(raw), free(png.p);
    }
    double mb = 0, ms = 0;
    char *ab[] = { "test_pngdec", "--mem-child", big, NULL }, *as[] = { "test_pngdec", "--mem-child", small, NULL };
    long gb = t_run_mem_child(ab, &mb), gs = t_run_mem_child(as, &ms);
    long file_kib = (long)(sizes[0] / 1024);
    char name[300];
    snprintf(name, sizeof name,
             "pngdec: 4000x3000 PNG (%zu KB) decode + LANCZOS + BICUBIC to 300x300: peak RSS +%ld KiB "
             "(its bytes %ld KiB; 300x300: +%ld KiB), %.0f ms",
             sizes[0] / 1000, gb, file_kib, gs, mb);
    T_CHECK(name, gb >= 0 && gs >= 0 && gb - file_kib - gs < 3 * 1024, "growth %ld KiB, file %ld KiB, small %ld KiB", gb,
            file_kib, gs);
    unlink(big), unlink(small);
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--mem-child")) return mem_child(argv[2]);
    test_variants();
    test_pil_rules();
    test_hostile();
    test_memory();
    return t_failed;
}
