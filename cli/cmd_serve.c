/* cmd_serve.c - effcam serve: a long-lived worker speaking JSON lines.
 *
 * One request per stdin line, one response per stdout line, in order:
 *   -> {"id": ANY, "image": PATH}            or {"id": ANY, "image_base64": "..."}
 *      optional "cam": true|false (default false), "top_k": N (default 3),
 *      "cam_method": "gradcam"|"gradcampp"|"xgradcam"|"hirescam"|"layercam"|"eigencam",
 *      "cam_layer": NAME (a layer `effcam info` marks with '*', or "input"); either implies "cam"
 *   <- {"id": ANY, <the fields of `predict --json`: result_json.c>}   with cam also
 *       "gradcam": {...} and "overlay_base64": "<the app's overlay PNG>"
 *   <- {"id": ANY, "error": "..."}           any failure of one request; the worker goes on
 * "id" is echoed as the exact JSON text the client sent (null when absent, when the
 * line could not be parsed, or when the id is not standard JSON: NaN, Infinity). Every line, even an empty or over-long one, gets exactly
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
 * A request's method is set on the session it runs on (cheap: every method uses the
 * same plan). A request's layer needs a session planned for that layer (what the
 * backward keeps and recomputes depends on it): the worker keeps the default
 * session plus at most MAX_LAYER_SESSIONS more, one per other layer asked for,
 * and drops the least recently used when a new layer comes (its arena: up to ~25
 * MB for the 300-px V2-S's stem_activation). A model reload drops them all.
 *
 * Memory stays flat: the line, the decoded base64 and the response buffers are reused
 * from request to request; the image decoder's pixels, the parsed request and the PNG
 * are freed at the end of each one. A buffer that grew past KEEP_BYTES (256 KiB: a
 * 300-px upload fits) is released after its request, so a large upload, whenever it
 * comes, does not stay resident for the life of the worker; with glibc's mmap
 * threshold fixed (below), such buffers are mappings of their own, returned whole.
 */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/serve_request.h"

#define MAX_LINE ((size_t)64 << 20)   /* longest request line; the rest of a longer one is skipped */
#define KEEP_BYTES ((size_t)256 << 10) /* reusable buffers above this are freed after the request */

#define MAX_LAYER_SESSIONS 2          /* sessions for layers other than the default, LRU */

static const char usage_serve[] =
    "usage: effcam serve MODEL.ecm [--threads N] [--max-pixels N] [--max-arena-mb N] [--resize FILTER]\n"
    "A resident worker: one JSON request per line on stdin, one JSON answer per line on stdout\n"
    "(README and docs/django.md describe the protocol). Memory stays flat; errors are answered.\n"
    "  request: {\"id\": ANY, \"image\": PATH | \"image_base64\": DATA, \"cam\": BOOL, \"top_k\": N,\n"
    "            \"resize\": FILTER, \"cam_method\": M, \"cam_layer\": NAME}\n"
    "  resize: lanczos (the default), bicubic, bilinear, hamming, box, nearest;\n"
    "  cam_method: gradcam (default), gradcampp, xgradcam, hirescam, layercam, eigencam;\n"
    "  cam_layer: a layer `effcam info MODEL` marks with '*', or input (the default session plus\n"
    "  at most 2 more, one per other layer, least recently used dropped)\n";

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

/* ---- echoing the client's "id" ---------------------------------------------------- */

/* ---- the worker ------------------------------------------------------------------- */

typedef struct {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} file_id;

typedef struct {
    char *layer;              /* the target layer (malloc'd), NULL = unused slot */
    ec_session *s;
    unsigned long used;       /* request counter when last used */
} layer_session;

typedef struct {
    const char *path;         /* the model file */
    file_id id;               /* what it was when loaded */
    ec_session_options opt;
    ec_model *m;
    ec_session *s;
    int gradcam;              /* the session computes Grad-CAM */
    char nocam_reason[256];   /* why not, for cam requests */
    int k;                    /* classes */
    int *order;               /* [k] top-k selection */
    layer_session ls[MAX_LAYER_SESSIONS];
    unsigned long clock;      /* requests served, for the LRU */
    unsigned char *bin;       /* decoded image_base64 */
    size_t bin_cap, bin_len;
    js_buf out;
} server;

/* ---- the model file --------------------------------------------------------------
 * The model is mapped, not read: a file rewritten in place under a running
 * worker (cp new.ecm model.ecm) changes what the mapping shows, and reading
 * past a truncation is a SIGBUS. Models are meant to be replaced by rename
 * (mv new.ecm model.ecm: the old mapping stays whole, and the worker loads the
 * new file before its next request). Before every request the worker compares
 * the file with what it loaded and, if it changed, loads it again; a SIGBUS
 * that still happens (the file truncated during a request) ends the worker
 * with one line and exit status 2, not a signal. */

static int file_id_of(const char *path, file_id *f)
{
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    *f = (file_id){ st.st_dev, st.st_ino, st.st_size, st.st_mtim };
    return 0;
}

static int file_id_same(const file_id *a, const file_id *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static void drop_layer_sessions(server *sv)
{
    for (int i = 0; i < MAX_LAYER_SESSIONS; i++) {
        ec_session_free(sv->ls[i].s);
        free(sv->ls[i].layer);
        memset(&sv->ls[i], 0, sizeof sv->ls[i]);
    }
}

/* The session for a request's layer: the default one when layer is NULL or its
 * target, else a cached one, made (evicting the least recently used) if new.
 * NULL with the reason in err. */
static ec_session *session_for(server *sv, const char *layer, char *err, size_t cap)
{
    const char *def = sv->gradcam ? ec_model_gradcam_layer(sv->m) : NULL;
    if (!layer || (def && !strcmp(def, layer))) return sv->s;
    int lru = 0;
    for (int i = 0; i < MAX_LAYER_SESSIONS; i++) {
        if (sv->ls[i].layer && !strcmp(sv->ls[i].layer, layer)) {
            sv->ls[i].used = sv->clock;
            return sv->ls[i].s;
        }
        if (!sv->ls[i].layer || (sv->ls[lru].layer && sv->ls[i].used < sv->ls[lru].used)) lru = i;
    }
    ec_session_options o = sv->opt;
    o.gradcam = 1;
    o.cam_layer = layer;
    ec_session *s = NULL;
    char *name = strdup(layer);
    if (!name) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    if (ec_session_new(sv->m, &o, &s) != EC_OK) {
        snprintf(err, cap, "%s", ec_last_error());
        free(name);
        return NULL;
    }
    ec_session_free(sv->ls[lru].s);
    free(sv->ls[lru].layer);
    sv->ls[lru] = (layer_session){ name, s, sv->clock };
    return s;
}

/* Loads and checks the model and makes its session (with Grad-CAM when the model
 * allows it). On failure, the message is in ec_last_error and sv is untouched. */
static int server_load(server *sv)
{
    file_id id;
    ec_model *m = NULL;
    ec_session *s = NULL;
    if (file_id_of(sv->path, &id) != 0) {
        ec_model_load(sv->path, &m);   /* for its message */
        return -1;
    }
    /* a server checks the whole file's checksum up front rather than on its first request */
    if (ec_model_load(sv->path, &m) != EC_OK || ec_model_verify(m) != EC_OK) {
        ec_model_free(m);
        return -1;
    }
    ec_session_options o = sv->opt;
    o.gradcam = 1;
    int gradcam = 1;
    char reason[256] = "";
    if (ec_session_new(m, &o, &s) != EC_OK) {
        snprintf(reason, sizeof reason, "grad-cam unavailable for this model: %s", ec_last_error());
        o.gradcam = 0;
        gradcam = 0;
        if (ec_session_new(m, &o, &s) != EC_OK) {
            ec_model_free(m);
            return -1;
        }
    }
    int k = ec_model_num_classes(m);
    int *order = malloc((size_t)k * sizeof *order);
    if (!order) {
        ec_session_free(s);
        ec_model_free(m);
        return -1;
    }
    drop_layer_sessions(sv);   /* planned for the old model */
    ec_session_free(sv->s);
    ec_model_free(sv->m);
    free(sv->order);
    sv->m = m, sv->s = s, sv->order = order, sv->k = k, sv->id = id, sv->gradcam = gradcam;
    snprintf(sv->nocam_reason, sizeof sv->nocam_reason, "%s", reason);
    return 0;
}

static const char *sigbus_path;

static void on_sigbus(int sig)
{
    (void)sig;
    static const char a[] = "effcam: ", b[] = ": the model file was truncated or rewritten while the worker read it "
                                             "(replace models by rename: mv new.ecm MODEL)\n";
    ssize_t r = write(STDERR_FILENO, a, sizeof a - 1);
    r = write(STDERR_FILENO, sigbus_path, strlen(sigbus_path));
    r = write(STDERR_FILENO, b, sizeof b - 1);
    (void)r;
    _exit(2);
}

static void put_error(js_buf *b, const js_value *id, const char *msg)
{
    b->len = 0;
    js_buf_puts(b, "{\"id\": ");
    serve_put_id(b, id);
    js_buf_puts(b, ", \"error\": ");
    js_buf_string(b, msg);
    js_buf_puts(b, "}");
}

/* Answers one request line into sv->out. */
static void serve_line(server *sv, const char *line, size_t len)
{
    js_buf *b = &sv->out;
    char err[512];
    serve_request rq;
    uint8_t *png = NULL;
    const js_value *id;
    if (serve_request_parse(line, len, &rq, err, sizeof err)) {
        put_error(b, rq.id, err);
        goto done;
    }
    id = rq.id;
    int cam = rq.cam || rq.cam_method || rq.cam_layer;   /* asking for a method or a layer asks for the map */
    long topk = rq.top_k;
    sv->clock++;
    ec_resize_filter filter = sv->opt.resize;
    if (rq.resize && ec_resize_filter_parse(rq.resize, &filter) != EC_OK) {
        put_error(b, id, "\"resize\" must be nearest, box, bilinear, hamming, bicubic or lanczos");
        goto done;
    }
    file_id now;
    if (file_id_of(sv->path, &now) == 0 && !file_id_same(&now, &sv->id) && server_load(sv) != 0) {
        char msg[700];
        snprintf(msg, sizeof msg, "the model file changed and cannot be loaded now: %s", ec_last_error());
        if (now.ino == sv->id.ino && now.dev == sv->id.dev) {
            /* rewritten in place: the old mapping shows the new, broken bytes */
            put_error(b, id, msg);
            goto done;
        }
        /* replaced by another file: the old one is still mapped and whole */
    }
    if (topk > sv->k) topk = sv->k;
    if (cam && !sv->gradcam && !rq.cam_layer) {
        put_error(b, id, sv->nocam_reason);
        goto done;
    }
    ec_session *ss = session_for(sv, rq.cam_layer, err, sizeof err);
    if (!ss) {
        put_error(b, id, err);
        goto done;
    }
    if (ec_session_set_cam_method(ss, rq.cam_method) != EC_OK) {
        put_error(b, id, ec_last_error());
        goto done;
    }

    ec_result r;
    ec_status st;
    ec_session_set_resize(ss, filter);   /* this request's; the worker's default again below */
    if (rq.image) {
        st = ec_session_predict_file(ss, rq.image, &r);
    } else {
        if (cli_base64_decode(rq.data, rq.data_len, &sv->bin, &sv->bin_cap, &sv->bin_len, err, sizeof err)) {
            put_error(b, id, err);
            goto done;
        }
        st = ec_session_predict_encoded(ss, sv->bin, sv->bin_len, &r);
    }
    ec_session_set_resize(ss, sv->opt.resize);
    if (st != EC_OK) {
        put_error(b, id, ec_last_error());
        goto done;
    }
    size_t plen = 0;
    if (cam && ec_session_overlay_png(ss, &png, &plen) != EC_OK) {
        snprintf(err, sizeof err, "overlay: %s", ec_last_error());
        put_error(b, id, err);
        goto done;
    }
    if (!cam) r.cam = NULL;   /* the session always explains; this request did not ask */
    cli_top_k(r.probabilities, sv->k, (int)topk, sv->order);
    cli_result res = { sv->m, &r, rq.image, (int)topk, sv->order, png, plen };
    b->len = 0;
    js_buf_puts(b, "{\"id\": ");
    serve_put_id(b, id);
    js_buf_puts(b, ", ");
    cli_result_fields(b, &res);
    js_buf_puts(b, "}");
done:
    free(png);
    serve_request_free(&rq);
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
    long threads = 1, maxpx = 0, arena_mb = 0;
    ec_resize_filter resize = EC_RESIZE_LANCZOS;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            fputs(usage_serve, stdout);
            return cli_stdout_close() ? 2 : 0;
        }
        if (!strcmp(a, "--threads") && i + 1 < argc) {
            if (cli_int(argv[++i], 1, 64, &threads)) { cli_err(NULL, "--threads takes 1..64"); goto usage; }
        } else if (!strcmp(a, "--resize") && i + 1 < argc) {
            if (cli_filter("--resize", argv[++i], &resize)) goto usage;
        } else if (!strcmp(a, "--max-arena-mb") && i + 1 < argc) {
            if (cli_int(argv[++i], 1, 1 << 24, &arena_mb)) { cli_err(NULL, "--max-arena-mb takes a positive number"); goto usage; }
        } else if (!strcmp(a, "--max-pixels") && i + 1 < argc) {
            if (cli_int(argv[++i], 1, 1L << 40, &maxpx)) { cli_err(NULL, "--max-pixels takes a positive number"); goto usage; }
        } else if (a[0] == '-' && a[1]) { cli_err(NULL, "serve: unknown option %s", a); goto usage; }
        else if (!model) model = a;
        else goto usage;
    }
    if (!model) goto usage;

    server sv;
    memset(&sv, 0, sizeof sv);
    sv.path = model;
    sv.opt = ec_session_options_default();
    sv.opt.threads = (int)threads;
    if (maxpx) sv.opt.max_pixels = maxpx;
    if (arena_mb) sv.opt.max_arena_bytes = (int64_t)arena_mb << 20;
    sv.opt.resize = resize;
    if (server_load(&sv) != 0) {
        cli_lib_err();   /* the loader's message starts with the path */
        return 2;
    }
    /* A long-lived worker: glibc raises its mmap threshold to the size of each
     * large block freed, after which a request's big buffers (an upload, a
     * large PNG's bytes) come from the heap and their freed space is kept in
     * fragments: RSS creeps up request after request. A fixed threshold keeps
     * every block over 128 KiB in its own mapping, returned when freed. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    sigbus_path = model;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigbus;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
    line_reader *rd = malloc(sizeof *rd);
    int rc = 0;
    if (!rd) {
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
        if (sv.bin_cap > KEEP_BYTES) {   /* one outsized upload does not stay resident */
            free(sv.bin);
            sv.bin = NULL;
            sv.bin_cap = 0;
        }
    }
    free(line.p);
out:
    free(rd);
    js_buf_free(&sv.out);
    free(sv.bin);
    free(sv.order);
    drop_layer_sessions(&sv);
    ec_session_free(sv.s);
    ec_model_free(sv.m);
    return rc;
usage:
    fputs(usage_serve, stderr);
    return 2;
}
