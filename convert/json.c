/* json.c - JSON parser for hostile input, and a small JSON string writer.
 *
 * The parser runs the same iterative state machine twice over the text:
 *   1. measure: validate everything and count what the tree needs (values, keys,
 *      string bytes) and the peak of the scratch stacks;
 *   2. fill: parse again into one arena allocated at exactly that size.
 * So a document costs one arena malloc plus one scratch malloc (freed before
 * returning) plus the container stack, every size is derived from the input,
 * and a failure can only happen in pass 1 (or on OOM between the passes).
 *
 * Values of an open container accumulate on a scratch stack; when it closes
 * they are copied into the arena as one contiguous items[] array, so the tree
 * comes out in post-order with no per-node allocation and no recursion.
 */
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* ---- the document arena --------------------------------------------------- */

/* One block: values[n_values] (the root last), then the keys, then the string
 * bytes; js_doc_free is a single free. */
struct js_doc {
    size_t n_values;
    js_value values[];
};

typedef struct {
    size_t item_base;       /* scratch index of this container's first item */
    size_t key_base;        /* key scratch index of its first key */
    int is_object;
    size_t start;         /* offset of its opening bracket (the value's raw text) */
} js_frame;

typedef struct {
    const unsigned char *s;
    size_t len, pos;
    int max_depth;
    char *err;
    size_t errlen;

    /* Container stack: grown by doubling in pass 1, capped at max_depth (and in
     * practice by the depth reached, which is at most len). */
    js_frame *frames;
    int depth, cap_frames;

    /* Counters shared by both passes: after pass 1 they are the sizes. */
    size_t nv, nk, nb;              /* arena values / keys / string bytes used */
    size_t nstk, nkstk;             /* scratch tops */
    size_t peak_stk, peak_kstk, peak_num;

    /* Pass 2 only (NULL in pass 1: the writes are skipped, counting is not). */
    js_value *values;
    const char **keys;
    char *bytes;
    js_value *stk;
    const char **kstk;
    char *num;                      /* NUL-terminated copy of a number for strtod */
} js_parser;

__attribute__((format(printf, 3, 4)))
static int js_fail(js_parser *p, size_t off, const char *fmt, ...)
{
    if (p->err && p->errlen) {
        int k = snprintf(p->err, p->errlen, "offset %zu: ", off);
        if (k >= 0 && (size_t)k < p->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(p->err + k, p->errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

/* ---- UTF-8 ------------------------------------------------------------------ */

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong forms,
 * no surrogates, nothing above U+10FFFF), or 0 if it is not one. */
static size_t js_utf8_len(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    /* The second byte's range depends on the lead byte: that one comparison is
     * what excludes overlong forms (E0, F0), surrogates (ED) and > U+10FFFF (F4). */
    unsigned lo = 0x80, hi = 0xBF;
    size_t n;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return 0;
    if (avail < n || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return n;
}

static size_t js_utf8_put(char *dst, unsigned cp)
{
    if (cp < 0x80) {
        if (dst) dst[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        if (dst) {
            dst[0] = (char)(0xC0 | (cp >> 6));
            dst[1] = (char)(0x80 | (cp & 0x3F));
        }
        return 2;
    }
    if (cp < 0x10000) {
        if (dst) {
            dst[0] = (char)(0xE0 | (cp >> 12));
            dst[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
            dst[2] = (char)(0x80 | (cp & 0x3F));
        }
        return 3;
    }
    if (dst) {
        dst[0] = (char)(0xF0 | (cp >> 18));
        dst[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        dst[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        dst[3] = (char)(0x80 | (cp & 0x3F));
    }
    return 4;
}

/* ---- lexer ---------------------------------------------------------------- */

static void js_skip_ws(js_parser *p)
{
    /* Locals: indented configs are a third whitespace, keep this loop in registers. */
    const unsigned char *s = p->s;
    size_t i = p->pos, n = p->len;
    while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) i++;
    p->pos = i;
}

/* Four hex digits at p->pos + 2 (after the backslash and 'u'); -1 if malformed. */
static long js_hex4(const js_parser *p, size_t at)
{
    if (p->len - at < 6) return -1;
    long v = 0;
    for (size_t i = at + 2; i < at + 6; i++) {
        unsigned char c = p->s[i];
        int d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Decodes the string starting at the opening quote into the arena (pass 2) or
 * just measures it (pass 1). The decoded form is never longer than the source
 * (an escape of n bytes yields at most n - 2 bytes), so the arena bound holds. */
static int js_string(js_parser *p, const char **out, size_t *out_len)
{
    const unsigned char *s = p->s;
    size_t n = p->len, i = p->pos + 1, w = 0;
    char *dst = p->bytes ? p->bytes + p->nb : NULL;
    for (;;) {
        /* Fast path: a run of plain ASCII copied in one go. */
        size_t run = i;
        while (i < n && s[i] >= 0x20 && s[i] < 0x80 && s[i] != '"' && s[i] != '\\') i++;
        if (dst) memcpy(dst + w, s + run, i - run);
        w += i - run;
        if (i >= n) return js_fail(p, n, "unterminated string");
        unsigned char c = s[i];
        if (c == '"') break;
        if (c < 0x20) return js_fail(p, i, "control character 0x%02x in string", c);
        if (c >= 0x80) {
            size_t k = js_utf8_len(s + i, n - i);
            if (!k) return js_fail(p, i, "invalid UTF-8 in string");
            if (dst) memcpy(dst + w, s + i, k);
            w += k;
            i += k;
            continue;
        }
        /* A backslash escape. */
        if (i + 1 >= n) return js_fail(p, n, "unterminated string");
        char e;
        switch (s[i + 1]) {
        case '"': e = '"'; break;
        case '\\': e = '\\'; break;
        case '/': e = '/'; break;
        case 'b': e = '\b'; break;
        case 'f': e = '\f'; break;
        case 'n': e = '\n'; break;
        case 'r': e = '\r'; break;
        case 't': e = '\t'; break;
        case 'u': e = 0; break;
        default: return js_fail(p, i, "invalid escape '\\%c'", s[i + 1] >= 0x20 && s[i + 1] < 0x7F ? s[i + 1] : '?');
        }
        if (e) {
            if (dst) dst[w] = e;
            w++;
            i += 2;
            continue;
        }
        long cp = js_hex4(p, i);
        if (cp < 0) return js_fail(p, i, "invalid \\u escape");
        if (cp >= 0xDC00 && cp <= 0xDFFF) return js_fail(p, i, "lone low surrogate \\u%04lx", cp);
        size_t esc = 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            /* UTF-16 pair: a high surrogate must be followed by a low one. */
            long lo = (n - i >= 12 && s[i + 6] == '\\' && s[i + 7] == 'u') ? js_hex4(p, i + 6) : -1;
            if (lo < 0xDC00 || lo > 0xDFFF) return js_fail(p, i, "lone high surrogate \\u%04lx", cp);
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            esc = 12;
        }
        w += js_utf8_put(dst ? dst + w : NULL, (unsigned)cp);
        i += esc;
    }
    if (dst) dst[w] = 0;
    *out = dst;
    *out_len = w;
    p->nb += w + 1;
    p->pos = i + 1;
    return 0;
}

static int js_match(const js_parser *p, const char *word)
{
    size_t k = strlen(word);
    return p->len - p->pos >= k && memcmp(p->s + p->pos, word, k) == 0;
}

/* The C locale, so that strtod reads '.' whatever setlocale() the host did. */
static locale_t js_c_locale;
static pthread_once_t js_c_locale_once = PTHREAD_ONCE_INIT;
static void js_c_locale_init(void) { js_c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0); }

/* Number per the JSON grammar, plus Python's NaN / Infinity / -Infinity. */
static int js_number(js_parser *p, double *out)
{
    const unsigned char *s = p->s;
    size_t n = p->len, start = p->pos, i = start;
    if (i < n && s[i] == '-') i++;
    if (i < n && s[i] == 'I') {
        p->pos = i;
        if (!js_match(p, "Infinity")) return js_fail(p, start, "invalid literal (Infinity expected)");
        p->pos = i + 8;
        *out = i > start ? -INFINITY : INFINITY;
        return 0;
    }
    if (i >= n || s[i] < '0' || s[i] > '9') return js_fail(p, start, "invalid number");
    if (s[i] == '0') {
        i++;
        if (i < n && s[i] >= '0' && s[i] <= '9') return js_fail(p, start, "invalid number (leading zero)");
    } else {
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || s[i] < '0' || s[i] > '9') return js_fail(p, i, "invalid number (digit expected after '.')");
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= n || s[i] < '0' || s[i] > '9') return js_fail(p, i, "invalid number (digit expected in exponent)");
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    }
    size_t k = i - start;
    if (k > p->peak_num) p->peak_num = k;
    if (p->num) {
        /* The text is not NUL-terminated: strtod gets a bounded copy. */
        memcpy(p->num, s + start, k);
        p->num[k] = 0;
        *out = js_c_locale ? strtod_l(p->num, NULL, js_c_locale) : strtod(p->num, NULL);
    } else {
        *out = 0;
    }
    p->pos = i;
    return 0;
}

/* ---- tree building ---------------------------------------------------------- */

static void js_push(js_parser *p, const js_value *v)
{
    if (p->stk) p->stk[p->nstk] = *v;
    if (++p->nstk > p->peak_stk) p->peak_stk = p->nstk;
}

static int js_open(js_parser *p, int is_object)
{
    if (p->depth >= p->max_depth)
        return js_fail(p, p->pos, "nesting deeper than %d", p->max_depth);
    if (p->depth == p->cap_frames) {
        /* Only pass 1 grows; the depth (<= max_depth, <= len) bounds this. */
        int cap = p->cap_frames ? 2 * p->cap_frames : 16;
        if (cap > p->max_depth) cap = p->max_depth;
        js_frame *f = realloc(p->frames, (size_t)cap * sizeof *f);
        if (!f) return js_fail(p, p->pos, "out of memory");
        p->frames = f;
        p->cap_frames = cap;
    }
    js_frame *f = &p->frames[p->depth++];
    f->item_base = p->nstk;
    f->key_base = p->nkstk;
    f->is_object = is_object;
    f->start = p->pos;
    p->pos++;
    return 0;
}

/* Moves the open container's items (and keys) from scratch into the arena and
 * pushes the container itself as one value of its parent. */
static int js_close(js_parser *p)
{
    js_frame *f = &p->frames[--p->depth];
    size_t n = p->nstk - f->item_base;
    if (n > INT_MAX) return js_fail(p, p->pos, "container with more than %d items", INT_MAX);
    js_value v;
    memset(&v, 0, sizeof v);
    v.type = f->is_object ? JS_OBJECT : JS_ARRAY;
    v.n = (int)n;
    if (n && p->values) {
        v.items = p->values + p->nv;
        memcpy(v.items, p->stk + f->item_base, n * sizeof *v.items);
        if (f->is_object) {
            v.keys = p->keys + p->nk;
            memcpy(v.keys, p->kstk + f->key_base, n * sizeof *v.keys);
        }
    }
    p->nv += n;
    if (f->is_object) p->nk += n;
    p->nstk = f->item_base;
    p->nkstk = f->key_base;
    p->pos++;
    v.raw = (const char *)p->s + f->start;
    v.raw_len = p->pos - f->start;
    js_push(p, &v);
    return 0;
}

/* "key" : -- leaves p->pos at the value. */
static int js_key(js_parser *p)
{
    js_skip_ws(p);
    if (p->pos >= p->len) return js_fail(p, p->pos, "unexpected end of input (key expected)");
    if (p->s[p->pos] != '"') return js_fail(p, p->pos, "object key (string) expected");
    const char *k;
    size_t klen;
    if (js_string(p, &k, &klen) < 0) return -1;
    if (p->kstk) p->kstk[p->nkstk] = k;
    if (++p->nkstk > p->peak_kstk) p->peak_kstk = p->nkstk;
    js_skip_ws(p);
    if (p->pos >= p->len || p->s[p->pos] != ':') return js_fail(p, p->pos, "':' expected after object key");
    p->pos++;
    return 0;
}

static int js_scalar(js_parser *p)
{
    js_value v;
    memset(&v, 0, sizeof v);
    const size_t start = p->pos;
    unsigned char c = p->s[p->pos];
    if (c == '"') {
        v.type = JS_STRING;
        if (js_string(p, &v.str, &v.len) < 0) return -1;
    } else if (c == '-' || (c >= '0' && c <= '9') || c == 'I') {
        v.type = JS_NUMBER;
        if (js_number(p, &v.num) < 0) return -1;
    } else if (js_match(p, "true")) {
        v.type = JS_TRUE;
        p->pos += 4;
    } else if (js_match(p, "false")) {
        v.type = JS_FALSE;
        p->pos += 5;
    } else if (js_match(p, "null")) {
        v.type = JS_NULL;
        p->pos += 4;
    } else if (js_match(p, "NaN")) {
        v.type = JS_NUMBER;
        v.num = NAN;
        p->pos += 3;
    } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
        return js_fail(p, p->pos, "invalid literal (true, false, null, NaN or Infinity expected)");
    } else if (c >= 0x21 && c < 0x7F) {
        return js_fail(p, p->pos, "unexpected character '%c'", c);
    } else {
        return js_fail(p, p->pos, "unexpected byte 0x%02x", c);
    }
    v.raw = (const char *)p->s + start;
    v.raw_len = p->pos - start;
    js_push(p, &v);
    return 0;
}

/* The grammar as a loop: parse a value, then consume separators and closing
 * brackets until the next value starts (or the root value is complete). */
static int js_run(js_parser *p)
{
    for (;;) {
        js_skip_ws(p);
        if (p->pos >= p->len) return js_fail(p, p->pos, "unexpected end of input (value expected)");
        unsigned char c = p->s[p->pos];
        if (c == '[' || c == '{') {
            if (js_open(p, c == '{') < 0) return -1;
            js_skip_ws(p);
            if (p->pos < p->len && p->s[p->pos] == (c == '{' ? '}' : ']')) {
                if (js_close(p) < 0) return -1;
            } else {
                if (c == '{' && js_key(p) < 0) return -1;
                continue;
            }
        } else if (js_scalar(p) < 0) {
            return -1;
        }
        /* A value is complete. */
        for (;;) {
            if (p->depth == 0) return 0;
            js_skip_ws(p);
            if (p->pos >= p->len) return js_fail(p, p->pos, "unexpected end of input");
            int obj = p->frames[p->depth - 1].is_object;
            c = p->s[p->pos];
            if (c == ',') {
                p->pos++;
                if (obj && js_key(p) < 0) return -1;
                break;
            }
            if (c != (obj ? '}' : ']'))
                return js_fail(p, p->pos, obj ? "',' or '}' expected" : "',' or ']' expected");
            if (js_close(p) < 0) return -1;
        }
    }
}

/* Runs one pass from the start; the root lands in the arena's last value slot. */
static int js_pass(js_parser *p)
{
    p->pos = 0;
    p->depth = 0;
    p->nv = p->nk = p->nb = p->nstk = p->nkstk = 0;
    if (js_run(p) < 0) return -1;
    js_skip_ws(p);
    if (p->pos != p->len) return js_fail(p, p->pos, "trailing characters after the value");
    if (p->values) p->values[p->nv] = p->stk[0];
    p->nv++;
    return 0;
}

/* a * b + c without wrapping; SIZE_MAX on overflow (the malloc then fails). */
static size_t js_size(size_t a, size_t b, size_t c)
{
    size_t r;
    if (__builtin_mul_overflow(a, b, &r) || __builtin_add_overflow(r, c, &r)) return SIZE_MAX;
    return r;
}

int js_parse(const char *text, size_t len, int max_depth, js_doc **doc, const js_value **root,
             char *err, size_t errlen)
{
    *doc = NULL;
    *root = NULL;
    if (err && errlen) err[0] = 0;
    js_parser p;
    memset(&p, 0, sizeof p);
    p.s = (const unsigned char *)text;
    p.len = text ? len : 0;
    p.max_depth = max_depth < 0 ? 0 : max_depth;
    p.err = err;
    p.errlen = errlen;
    pthread_once(&js_c_locale_once, js_c_locale_init);

    /* Pass 1: validate and measure. */
    if (js_pass(&p) < 0) {
        free(p.frames);
        return -1;
    }

    /* Exactly-sized arena and scratch; each count is bounded by len. */
    size_t arena = js_size(p.nv, sizeof(js_value), sizeof(struct js_doc));
    arena = js_size(p.nk, sizeof(const char *), arena);
    arena = js_size(1, p.nb, arena);
    size_t scratch = js_size(p.peak_stk, sizeof(js_value), 0);
    scratch = js_size(p.peak_kstk, sizeof(const char *), scratch);
    scratch = js_size(1, p.peak_num + 1, scratch);
    struct js_doc *d = malloc(arena);
    char *sc = malloc(scratch);
    if (!d || !sc) {
        free(d);
        free(sc);
        free(p.frames);
        return js_fail(&p, 0, "out of memory (document needs %zu bytes)", arena);
    }
    d->n_values = p.nv;
    p.values = d->values;
    p.keys = (const char **)(d->values + p.nv);
    p.bytes = (char *)(p.keys + p.nk);
    p.stk = (js_value *)sc;
    p.kstk = (const char **)(p.stk + p.peak_stk);
    p.num = (char *)(p.kstk + p.peak_kstk);

    /* Pass 2: fill. Same input, same code: it cannot fail where pass 1 did not. */
    int rc = js_pass(&p);
    free(sc);
    free(p.frames);
    if (rc < 0) {
        free(d);
        return -1;
    }
    *doc = d;
    *root = &d->values[d->n_values - 1];
    return 0;
}

void js_doc_free(js_doc *doc) { free(doc); }

/* ---- lookups ---------------------------------------------------------------- */

const js_value *js_get(const js_value *obj, const char *key)
{
    if (!obj || obj->type != JS_OBJECT || !key) return NULL;
    /* From the end: the last of duplicated keys wins, as in Python's json. */
    for (int i = obj->n - 1; i >= 0; i--)
        if (strcmp(obj->keys[i], key) == 0) return &obj->items[i];
    return NULL;
}

const js_value *js_at(const js_value *arr, int i)
{
    if (!arr || arr->type != JS_ARRAY || i < 0 || i >= arr->n) return NULL;
    return &arr->items[i];
}

const char *js_str(const js_value *v) { return v && v->type == JS_STRING ? v->str : NULL; }

const char *js_get_str(const js_value *obj, const char *key) { return js_str(js_get(obj, key)); }

int js_num(const js_value *v, double *out)
{
    if (!v || v->type != JS_NUMBER) return -1;
    *out = v->num;
    return 0;
}

int js_int(const js_value *v, long lo, long hi, long *out)
{
    if (!v || v->type != JS_NUMBER) return -1;
    double d = v->num;
    /* Range-check in double before converting: (long)d is undefined outside
     * [-2^63, 2^63), and NaN fails every comparison. */
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || d != floor(d)) return -1;
    long l = (long)d;
    if (l < lo || l > hi) return -1;
    *out = l;
    return 0;
}

int js_bool(const js_value *v, int *out)
{
    if (!v || (v->type != JS_TRUE && v->type != JS_FALSE)) return -1;
    *out = v->type == JS_TRUE;
    return 0;
}

/* ---- writer ----------------------------------------------------------------- */

/* Makes room for n more bytes plus the NUL kept after the text; sets oom (sticky). */
static int js_buf_reserve(js_buf *b, size_t n)
{
    if (b->oom) return -1;
    if (n < b->cap - b->len) return 0;       /* also true only if cap > len: room for NUL */
    size_t need;
    if (__builtin_add_overflow(b->len, n + 1, &need)) {
        b->oom = 1;
        return -1;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    char *nb = realloc(b->buf, cap);
    if (!nb) {
        b->oom = 1;
        return -1;
    }
    b->buf = nb;
    b->cap = cap;
    return 0;
}

static void js_buf_put(js_buf *b, const char *s, size_t n)
{
    if (js_buf_reserve(b, n) < 0) return;
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = 0;
}

void js_buf_puts(js_buf *b, const char *s) { js_buf_put(b, s, strlen(s)); }

void js_buf_printf(js_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if (js_buf_reserve(b, (size_t)n) < 0) return;
    va_start(ap, fmt);
    vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void js_buf_string(js_buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s), i = 0;
    js_buf_put(b, "\"", 1);
    while (i < n) {
        size_t run = i;
        while (i < n && u[i] >= 0x20 && u[i] != '"' && u[i] != '\\' && u[i] < 0x80) i++;
        js_buf_put(b, s + run, i - run);
        if (i >= n) break;
        unsigned char c = u[i];
        if (c == '"' || c == '\\') {
            char esc[2] = { '\\', (char)c };
            js_buf_put(b, esc, 2);
            i++;
        } else if (c < 0x20) {
            char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
            js_buf_put(b, esc, 6);
            i++;
        } else {
            size_t k = js_utf8_len(u + i, n - i);
            if (k) {
                js_buf_put(b, s + i, k);
                i += k;
            } else {
                /* Invalid UTF-8 would make the output invalid JSON: U+FFFD per bad byte. */
                js_buf_put(b, "\\ufffd", 6);
                i++;
            }
        }
    }
    js_buf_put(b, "\"", 1);
}

void js_buf_free(js_buf *b)
{
    free(b->buf);
    b->buf = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}
