/* cli_serve.c - effcam serve: a long-lived worker speaking JSON lines.
 *
 * One request per stdin line, one response per stdout line, in order:
 *   -> {"id": ANY, "image": PATH}            or {"id": ANY, "image_base64": "..."}
 *      optional "cam": true|false (default false), "top_k": N (default 3)
 *   <- {"id": ANY, "image": PATH|null, "input_hw": [h, w], "probabilities": [...],
 *       "top": [...]}                        the fields of `predict --json`, plus with cam
 *       "gradcam": {...} and "overlay_base64": "<the app's overlay PNG>"
 *   <- {"id": ANY, "error": "..."}           any failure of one request; the worker goes on
 * "id" is echoed as whatever JSON value the client sent (null when absent or when the
 * line could not be parsed). Every line, even an empty or over-long one, gets exactly
 * one response, so a client can pair them by order as well as by id.
 * Exit status: 0 at end of input; 2 for usage, an unusable model, a read error on stdin
 * or a write error on stdout (the client went away).
 *
 * One session serves both kinds of request. It is created with Grad-CAM on, so every
 * request also runs the backward pass, but that pass only spans the head after the
 * target conv (BN, swish, pooling, dense, softmax on a 10x10x1280 map for the 300-px
 * V2-S: well under 0.1% of the forward's FLOPs, not measurable against its ~0.2 s), and
 * pinning the target does not change the arithmetic: probabilities are bit-identical to
 * a plain session's. A second, plain session would cost another activation arena and
 * scratch (~9 MB on that model) in every worker for nothing. A model without a
 * Grad-CAM target gets a plain session and answers cam requests with an error.
 *
 * Memory stays flat: the line, the decoded base64 and the response buffers are reused
 * from request to request; the image decoder's pixels, the parsed request and the PNG
 * are freed at the end of each one. A buffer that grew past KEEP_BYTES for an outsized
 * request is released afterwards, so one 40 MB upload does not stay resident for the
 * life of the worker.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convert/json.h"
#include "effcam.h"
#include "engine/cli.h"
#include "engine/image.h"

#define MAX_LINE ((size_t)64 << 20)   /* longest request line; the rest of a longer one is skipped */
#define KEEP_BYTES ((size_t)8 << 20)  /* reusable buffers above this are freed after the request */
#define MAX_DEPTH 64                  /* JSON nesting allowed in a request (its "id" may nest) */
#define DEFAULT_TOP_K 3               /* as predict */

static const char usage_serve[] = "usage: effcam serve MODEL.ecm [--threads N] [--max-pixels N]\n";

/* ---- input: bounded lines from a raw descriptor ---------------------------------- */

/* read(2), not stdio: fread would wait for a full buffer while the client waits for
 * the answer to the line it has already sent. */
typedef struct {
    int fd;
    int eof;
    size_t pos, len;
    char buf[1 << 16];
} line_reader;

typedef struct {
    char *p;
    size_t len, cap;
} bytes;

enum { LINE_OK, LINE_TOO_LONG, LINE_NOMEM };

/* Reads the next line (without its '\n') into l. Returns 1 for a line, 0 at end of
 * input, -1 on a read error (errno set). A line longer than max, or one there is no
 * memory for, is consumed up to its newline but not kept: *skipped says why
 * (LINE_TOO_LONG, LINE_NOMEM) and l->len is unspecified. */
static int read_line(line_reader *r, bytes *l, size_t max, int *skipped)
{
    int any = 0;
    l->len = 0;
    *skipped = LINE_OK;
    for (;;) {
        if (r->pos == r->len) {
            if (r->eof) return any;
            ssize_t n = read(r->fd, r->buf, sizeof r->buf);
            if (n < 0) {
                if (errno == EINTR) continue;
                return -1;
            }
            if (n == 0) {
                r->eof = 1;
                continue;
            }
            r->pos = 0;
            r->len = (size_t)n;
        }
        any = 1;
        const char *p = r->buf + r->pos;
        size_t avail = r->len - r->pos;
        const char *nl = memchr(p, '\n', avail);
        size_t take = nl ? (size_t)(nl - p) : avail;
        if (!*skipped && take > max - l->len) *skipped = LINE_TOO_LONG;
        if (!*skipped && take) {
            if (l->len + take > l->cap) {
                size_t cap = l->cap ? l->cap : 4096;
                while (cap < l->len + take) cap *= 2;
                if (cap > max) cap = max;
                char *np = realloc(l->p, cap);
                if (!np) {
                    *skipped = LINE_NOMEM;   /* answered with an error; the input stays in step */
                } else {
                    l->p = np;
                    l->cap = cap;
                }
            }
            if (!*skipped) {
                memcpy(l->p + l->len, p, take);
                l->len += take;
            }
        }
        r->pos += take + (nl != NULL);
        if (nl) return 1;
    }
}

static void bytes_trim(bytes *b)
{
    if (b->cap > KEEP_BYTES) {
        free(b->p);
        b->p = NULL;
        b->len = b->cap = 0;
    }
}

/* ---- base64 --------------------------------------------------------------------- */

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Standard alphabet; '=' padding optional but only at the end; whitespace skipped (MIME
 * line breaks); a leading "data:...;base64," (a browser's data URL) skipped. Returns 0
 * or -1 with a reason in err. */
static int b64_decode(const char *s, size_t n, bytes *out, char *err, size_t errlen)
{
    size_t start = 0;
    if (n >= 5 && !memcmp(s, "data:", 5)) {
        const char *comma = memchr(s, ',', n);
        if (!comma || comma - s < 12 || memcmp(comma - 7, ";base64", 7)) {
            snprintf(err, errlen, "image_base64: a data URL must be \"data:<type>;base64,<data>\"");
            return -1;
        }
        start = (size_t)(comma - s) + 1;
    }
    size_t need = (n - start) / 4 * 3 + 3;
    if (need > out->cap) {
        char *np = realloc(out->p, need);
        if (!np) {
            snprintf(err, errlen, "out of memory (%zu bytes for the decoded image)", need);
            return -1;
        }
        out->p = np;
        out->cap = need;
    }
    unsigned char *o = (unsigned char *)out->p;
    size_t k = 0, pad = 0;
    uint32_t acc = 0;
    int q = 0;   /* sextets in acc */
    for (size_t i = start; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
        if (c == '=') {
            pad++;
            continue;
        }
        int v = b64_value(c);
        if (v < 0 || pad) {
            snprintf(err, errlen, "image_base64: %s at offset %zu",
                     pad ? "data after '=' padding" : "invalid base64 character", i);
            return -1;
        }
        acc = acc << 6 | (uint32_t)v;
        if (++q == 4) {
            o[k++] = (unsigned char)(acc >> 16);
            o[k++] = (unsigned char)(acc >> 8);
            o[k++] = (unsigned char)acc;
            acc = 0;
            q = 0;
        }
    }
    /* q sextets left: 0 complete, 2 -> one byte, 3 -> two bytes, 1 is impossible */
    if (q == 1 || (pad && (q == 0 || q + pad != 4))) {
        snprintf(err, errlen, "image_base64: truncated or badly padded base64");
        return -1;
    }
    if (q == 2) o[k++] = (unsigned char)(acc >> 4);
    if (q == 3) {
        o[k++] = (unsigned char)(acc >> 10);
        o[k++] = (unsigned char)(acc >> 2);
    }
    out->len = k;
    return 0;
}

void cli_buf_base64(js_buf *b, const unsigned char *p, size_t n)
{
    char chunk[4096 + 1];   /* 1024 groups of 4 at a time: few calls into the buffer */
    size_t c = 0;
    js_buf_puts(b, "\"");
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        chunk[c++] = b64_alphabet[v >> 18 & 63];
        chunk[c++] = b64_alphabet[v >> 12 & 63];
        chunk[c++] = i + 1 < n ? b64_alphabet[v >> 6 & 63] : '=';
        chunk[c++] = i + 2 < n ? b64_alphabet[v & 63] : '=';
        if (c == sizeof chunk - 1) {
            chunk[c] = 0;
            js_buf_puts(b, chunk);
            c = 0;
        }
    }
    chunk[c] = 0;
    js_buf_puts(b, chunk);
    js_buf_puts(b, "\"");
}

/* ---- echoing the client's "id" ---------------------------------------------------- */

/* A JSON string of n bytes (valid UTF-8, as the parser guarantees; may hold NULs). */
static void put_string(js_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[256 + 8];
    size_t t = 0;
    js_buf_puts(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            tmp[t++] = '\\';
            tmp[t++] = (char)c;
        } else if (c < 0x20) {
            memcpy(tmp + t, "\\u00", 4);
            tmp[t + 4] = hex[c >> 4];
            tmp[t + 5] = hex[c & 15];
            t += 6;
        } else {
            tmp[t++] = (char)c;
        }
        if (t >= 256) {
            tmp[t] = 0;
            js_buf_puts(b, tmp);
            t = 0;
        }
    }
    tmp[t] = 0;
    js_buf_puts(b, tmp);
    js_buf_puts(b, "\"");
}

/* Shortest of %.15g..%.17g that reads back as the same double: 7 stays "7", 0.1 "0.1". */
static void put_number(js_buf *b, double v)
{
    char s[32];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(s, sizeof s, "%.*g", prec, v);
        if (strtod(s, NULL) == v) break;
    }
    js_buf_puts(b, s);
}

/* Re-serializes a parsed value; depth is bounded by the parser's MAX_DEPTH. */
static void put_value(js_buf *b, const js_value *v)
{
    if (!v) {
        js_buf_puts(b, "null");
        return;
    }
    switch (v->type) {
    case JS_NULL: js_buf_puts(b, "null"); break;
    case JS_FALSE: js_buf_puts(b, "false"); break;
    case JS_TRUE: js_buf_puts(b, "true"); break;
    case JS_NUMBER: put_number(b, v->num); break;
    case JS_STRING: put_string(b, v->str, v->len); break;
    case JS_ARRAY:
        js_buf_puts(b, "[");
        for (int i = 0; i < v->n; i++) {
            if (i) js_buf_puts(b, ", ");
            put_value(b, &v->items[i]);
        }
        js_buf_puts(b, "]");
        break;
    case JS_OBJECT:
        js_buf_puts(b, "{");
        for (int i = 0; i < v->n; i++) {
            if (i) js_buf_puts(b, ", ");
            put_string(b, v->keys[i], strlen(v->keys[i]));
            js_buf_puts(b, ": ");
            put_value(b, &v->items[i]);
        }
        js_buf_puts(b, "}");
        break;
    }
}

/* ---- the worker ------------------------------------------------------------------- */

typedef struct {
    const ec_model *m;
    ec_session *s;
    int gradcam;              /* the session computes Grad-CAM */
    char nocam_reason[256];   /* why not, for cam requests */
    int64_t max_pixels;
    int k;                    /* classes */
    int *order;               /* [k] top-k selection */
    bytes bin;                /* decoded image_base64 */
    uint8_t *rgba;            /* [h * w * 4] overlay */
    void *ov_scratch;
    size_t rgba_cap, ov_cap;
    js_buf out;
} server;

static void put_error(js_buf *b, const js_value *id, const char *msg)
{
    b->len = 0;
    js_buf_puts(b, "{\"id\": ");
    put_value(b, id);
    js_buf_puts(b, ", \"error\": ");
    js_buf_string(b, msg);
    js_buf_puts(b, "}");
}

/* Grows *p to hold n bytes; 0 or -1. */
static int reserve(void **p, size_t *cap, size_t n)
{
    if (n <= *cap) return 0;
    void *np = realloc(*p, n);
    if (!np) return -1;
    *p = np;
    *cap = n;
    return 0;
}

/* Appends "gradcam" and "overlay_base64" for the last result; -1 with a reason. */
static int put_cam(server *sv, const ec_result *r, char *err, size_t errlen)
{
    js_buf *b = &sv->out;
    int h = r->input_height, w = r->input_width;
    const char *layer = ec_model_gradcam_layer(sv->m);
    if (reserve((void **)&sv->rgba, &sv->rgba_cap, (size_t)h * w * 4) ||
        reserve(&sv->ov_scratch, &sv->ov_cap, ec_overlay_scratch_bytes(r->cam_height, r->cam_width, h, w) + 1)) {
        snprintf(err, errlen, "out of memory for the overlay");
        return -1;
    }
    ec_overlay_rgba(r->cam, r->cam_height, r->cam_width, r->input_rgb, h, w, sv->ov_scratch, sv->rgba);
    uint8_t *png = NULL;
    size_t plen = 0;
    if (ec_png_encode(sv->rgba, w, h, 4, &png, &plen) != EC_OK) {
        snprintf(err, errlen, "overlay: %s", ec_last_error());
        return -1;
    }
    js_buf_puts(b, ", \"gradcam\": {\"layer\": ");
    js_buf_string(b, layer ? layer : "");
    js_buf_printf(b, ", \"class\": %d, \"score\": \"prob\", \"height\": %d, \"width\": %d, \"values\": [", r->top_class,
                  r->cam_height, r->cam_width);
    for (int i = 0; i < r->cam_height * r->cam_width; i++) js_buf_printf(b, "%s%.7g", i ? ", " : "", r->cam[i]);
    js_buf_puts(b, "]}, \"overlay_base64\": ");
    cli_buf_base64(b, png, plen);
    free(png);
    return 0;
}

/* Answers one request line into sv->out. */
static void serve_line(server *sv, const char *line, size_t len)
{
    js_buf *b = &sv->out;
    char err[512];
    js_doc *doc = NULL;
    const js_value *req = NULL, *id = NULL;
    if (js_parse(line, len, MAX_DEPTH, &doc, &req, err, sizeof err) < 0) {
        char msg[600];
        snprintf(msg, sizeof msg, "invalid JSON: %s", err);
        put_error(b, NULL, msg);
        return;
    }
    if (req->type != JS_OBJECT) {
        put_error(b, NULL, "a request must be a JSON object");
        goto done;
    }
    id = js_get(req, "id");
    const js_value *path = js_get(req, "image"), *data = js_get(req, "image_base64");
    const js_value *cam_v = js_get(req, "cam"), *topk_v = js_get(req, "top_k");
    int cam = 0;
    long topk = DEFAULT_TOP_K;
    if (path && path->type == JS_NULL) path = NULL;
    if (data && data->type == JS_NULL) data = NULL;
    if (!path == !data) {
        put_error(b, id, path ? "give either \"image\" or \"image_base64\", not both"
                              : "missing \"image\" (a file path) or \"image_base64\"");
        goto done;
    }
    if (path && (path->type != JS_STRING || strlen(path->str) != path->len)) {
        put_error(b, id, "\"image\" must be a file path (a string)");
        goto done;
    }
    if (data && data->type != JS_STRING) {
        put_error(b, id, "\"image_base64\" must be a string");
        goto done;
    }
    if (cam_v && cam_v->type != JS_NULL && js_bool(cam_v, &cam)) {
        put_error(b, id, "\"cam\" must be true or false");
        goto done;
    }
    if (topk_v && topk_v->type != JS_NULL && js_int(topk_v, 1, INT_MAX, &topk)) {
        put_error(b, id, "\"top_k\" must be a positive integer");
        goto done;
    }
    if (topk > sv->k) topk = sv->k;
    if (cam && !sv->gradcam) {
        put_error(b, id, sv->nocam_reason);
        goto done;
    }

    ec_result r;
    ec_status st;
    if (path) {
        st = ec_session_predict_file(sv->s, path->str, &r);
    } else {
        uint8_t *rgb = NULL;
        int w = 0, h = 0;
        if (b64_decode(data->str, data->len, &sv->bin, err, sizeof err)) {
            put_error(b, id, err);
            goto done;
        }
        st = ec_image_decode_mem((const uint8_t *)sv->bin.p, sv->bin.len, sv->max_pixels, &rgb, &w, &h);
        if (st == EC_OK) st = ec_session_predict_rgb(sv->s, rgb, w, h, &r);
        free(rgb);
    }
    if (st != EC_OK) {
        put_error(b, id, ec_last_error());
        goto done;
    }

    /* top-k by descending probability, ties in class order (the app's stable sort):
     * the pick is moved to the front by shifting, so the rest keeps its order */
    int *order = sv->order;
    for (int i = 0; i < sv->k; i++) order[i] = i;
    for (int i = 0; i < topk; i++) {
        int best = i;
        for (int j = i + 1; j < sv->k; j++)
            if (r.probabilities[order[j]] > r.probabilities[order[best]]) best = j;
        int pick = order[best];
        memmove(order + i + 1, order + i, (size_t)(best - i) * sizeof *order);
        order[i] = pick;
    }
    b->len = 0;
    js_buf_puts(b, "{\"id\": ");
    put_value(b, id);
    js_buf_puts(b, ", \"image\": ");
    if (path) put_string(b, path->str, path->len);
    else js_buf_puts(b, "null");
    js_buf_printf(b, ", \"input_hw\": [%d, %d], \"probabilities\": [", r.input_height, r.input_width);
    for (int i = 0; i < sv->k; i++) js_buf_printf(b, "%s%.9g", i ? ", " : "", r.probabilities[i]);
    js_buf_puts(b, "], \"top\": [");
    for (int i = 0; i < topk; i++) {
        js_buf_printf(b, "%s{\"index\": %d, \"label\": ", i ? ", " : "", order[i]);
        js_buf_string(b, ec_model_label(sv->m, order[i]));
        js_buf_printf(b, ", \"probability\": %.9g}", r.probabilities[order[i]]);
    }
    js_buf_puts(b, "]");
    if (cam && put_cam(sv, &r, err, sizeof err)) {
        put_error(b, id, err);
        goto done;
    }
    js_buf_puts(b, "}");
done:
    js_doc_free(doc);
}

/* Writes sv->out as one line. -1 when stdout is gone. */
static int emit(server *sv)
{
    js_buf *b = &sv->out;
    if (b->oom) {
        /* the buffer is unusable: drop it, answer with what needs no memory */
        js_buf_free(b);
        static const char oom[] = "{\"id\": null, \"error\": \"out of memory building the response\"}";
        fputs(oom, stdout);
    } else {
        fwrite(b->buf, 1, b->len, stdout);
    }
    fputc('\n', stdout);
    if (fflush(stdout) != 0 || ferror(stdout)) return -1;
    if (b->cap > KEEP_BYTES) js_buf_free(b);
    b->len = 0;
    return 0;
}

int cli_serve(int argc, char **argv)
{
    const char *model = NULL;
    long threads = 1, maxpx = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--threads") && i + 1 < argc) {
            if (cli_int(argv[++i], 1, 64, &threads)) { cli_err(NULL, "--threads takes 1..64"); goto usage; }
        } else if (!strcmp(a, "--max-pixels") && i + 1 < argc) {
            if (cli_int(argv[++i], 1, 1L << 40, &maxpx)) { cli_err(NULL, "--max-pixels takes a positive number"); goto usage; }
        } else if (a[0] == '-' && a[1]) { cli_err(NULL, "serve: unknown option %s", a); goto usage; }
        else if (!model) model = a;
        else goto usage;
    }
    if (!model) goto usage;

    server sv;
    memset(&sv, 0, sizeof sv);
    ec_model *m = NULL;
    /* a server checks the whole file's checksum up front rather than on its first request */
    if (ec_model_load(model, &m) != EC_OK || ec_model_verify(m) != EC_OK) {
        cli_err(NULL, "%s", ec_last_error());   /* the loader's message starts with the path */
        ec_model_free(m);
        return 2;
    }
    sv.m = m;
    ec_session_options o = ec_session_options_default();
    o.threads = (int)threads;
    if (maxpx) o.max_pixels = maxpx;
    sv.max_pixels = o.max_pixels;
    o.gradcam = 1;
    sv.gradcam = 1;
    if (ec_session_new(m, &o, &sv.s) != EC_OK) {
        snprintf(sv.nocam_reason, sizeof sv.nocam_reason, "grad-cam unavailable for this model: %s", ec_last_error());
        o.gradcam = 0;
        sv.gradcam = 0;
        if (ec_session_new(m, &o, &sv.s) != EC_OK) {
            cli_err(model, "%s", ec_last_error());
            ec_model_free(m);
            return 2;
        }
    }
    sv.k = ec_model_num_classes(m);
    sv.order = malloc((size_t)sv.k * sizeof *sv.order);
    line_reader *rd = malloc(sizeof *rd);
    int rc = 0;
    if (!sv.order || !rd) {
        cli_err(NULL, "out of memory");
        rc = 2;
        goto out;
    }
    rd->fd = STDIN_FILENO;
    rd->eof = 0;
    rd->pos = rd->len = 0;
    /* a client that closes its end gets us a write error, not a silent SIGPIPE death */
    signal(SIGPIPE, SIG_IGN);

    bytes line = { 0 };
    for (;;) {
        int skipped = LINE_OK;
        int got = read_line(rd, &line, MAX_LINE, &skipped);
        if (got < 0) {
            cli_err("stdin", "read error: %s", strerror(errno));
            rc = 2;
            break;
        }
        if (got == 0) break;
        if (skipped) {
            char msg[128];
            if (skipped == LINE_TOO_LONG)
                snprintf(msg, sizeof msg, "request line longer than %zu bytes: skipped", MAX_LINE);
            else
                snprintf(msg, sizeof msg, "out of memory reading a request line: skipped");
            put_error(&sv.out, NULL, msg);
        } else {
            serve_line(&sv, line.p ? line.p : "", line.len);
        }
        if (emit(&sv)) {
            cli_err("stdout", "write error: %s", strerror(errno));
            rc = 2;
            break;
        }
        bytes_trim(&line);
        bytes_trim(&sv.bin);
    }
    free(line.p);
out:
    free(rd);
    js_buf_free(&sv.out);
    free(sv.bin.p);
    free(sv.rgba);
    free(sv.ov_scratch);
    free(sv.order);
    ec_session_free(sv.s);
    ec_model_free(m);
    return rc;
usage:
    fputs(usage_serve, stderr);
    return 2;
}
