/* test_serve.c - `effcam serve` as a web app's worker sees it.
 *
 * Converts the tiny V2-S fixture, asks `effcam predict --json` for every fixture
 * image (the reference), then starts `effcam serve` on pipes and sends 200 mixed
 * requests one at a time: paths and base64 uploads with cam on and off, top_k
 * values, numeric / string / nested ids, and the failures a worker must survive
 * (missing files, bad base64, non-images, invalid JSON, missing fields, wrong
 * types). Every response line is parsed: the id must come back as sent, successes
 * must carry the reference probabilities (within 1e-6) and the right top list,
 * cam answers a PNG overlay, failures an "error". The worker's VmRSS after
 * request 20 and after request 200 must agree within 1 MB. Then an over-long line
 * (skipped, answered, stream still in step), per-request CAM methods and layers
 * (the same maps as predict's, bad names answered) and exit status 0 at end of
 * input. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "convert/json.h"
#include "tests/harness.h"

#define N_REQUESTS 200
#define RSS_EARLY 20
#define RSS_SLACK_KB 1024     /* "within 1 MB" */
#define PROB_TOL 1e-6
#define MAX_IMAGES 32
#define LONG_LINE (((size_t)64 << 20) + 4096)   /* just over serve's 64 MiB line bound */

/* Under AddressSanitizer freed blocks sit in its quarantine (256 MB by default), so
 * RSS grows with every request whatever the worker does; there the figures are shown
 * and LeakSanitizer (at the worker's exit, see serve_exit) stands in for the bound. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

/* ---- processes --------------------------------------------------------------------- */

/* Starts argv with its stdin/stdout on pipes (either may be NULL: inherited). */
static pid_t spawn(char *const argv[], int *to_child, int *from_child)
{
    int in[2] = { -1, -1 }, out[2] = { -1, -1 };
    if ((to_child && pipe2(in, O_CLOEXEC)) || (from_child && pipe2(out, O_CLOEXEC))) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (to_child) dup2(in[0], STDIN_FILENO);
        if (from_child) dup2(out[1], STDOUT_FILENO);
        execv(argv[0], argv);
        _exit(127);
    }
    if (to_child) {
        close(in[0]);
        *to_child = in[1];
    }
    if (from_child) {
        close(out[1]);
        *from_child = out[0];
    }
    return pid;
}

static int wait_status(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static long vm_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &v) == 1) break;
    fclose(f);
    return v;
}

/* ---- base64 ------------------------------------------------------------------------ */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *b64_encode(const unsigned char *p, size_t n)
{
    char *s = malloc((n + 2) / 3 * 4 + 1), *o = s;
    if (!s) return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        *o++ = b64[v >> 18 & 63];
        *o++ = b64[v >> 12 & 63];
        *o++ = i + 1 < n ? b64[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? b64[v & 63] : '=';
    }
    *o = 0;
    return s;
}

/* Decodes the first 4*k characters of s (no padding inside) into out; bytes written. */
static size_t b64_prefix(const char *s, size_t k, unsigned char *out)
{
    size_t n = 0;
    for (size_t g = 0; g < k && s[4 * g]; g++) {
        uint32_t v = 0;
        for (int j = 0; j < 4; j++) {
            const char *c = s[4 * g + j] ? strchr(b64, s[4 * g + j]) : NULL;
            v = v << 6 | (c ? (uint32_t)(c - b64) : 0);
        }
        out[n++] = (unsigned char)(v >> 16);
        out[n++] = (unsigned char)(v >> 8);
        out[n++] = (unsigned char)v;
    }
    return n;
}

/* ---- JSON helpers ------------------------------------------------------------------ */

static int js_equal(const js_value *a, const js_value *b)
{
    if (!a || !b) return a == b;
    if (a->type != b->type) return 0;
    switch (a->type) {
    case JS_NUMBER: return a->num == b->num;
    case JS_STRING: return a->len == b->len && !memcmp(a->str, b->str, a->len);
    case JS_ARRAY:
    case JS_OBJECT:
        if (a->n != b->n) return 0;
        for (int i = 0; i < a->n; i++)
            if ((a->type == JS_OBJECT && strcmp(a->keys[i], b->keys[i])) || !js_equal(&a->items[i], &b->items[i]))
                return 0;
        return 1;
    default: return 1;
    }
}

/* ---- the fixtures and the reference --------------------------------------------------- */

typedef struct {
    char *path;
    char *base64;      /* the file, encoded */
    double prob[64];
    int k;
} image;

static image images[MAX_IMAGES];
static int n_images;

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int load_images(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    char *names[MAX_IMAGES];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < MAX_IMAGES)
        if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) {
        size_t len = strlen(dir) + strlen(names[i]) + 2, sz = 0;
        images[i].path = malloc(len);
        snprintf(images[i].path, len, "%s/%s", dir, names[i]);
        free(names[i]);
        char *raw = t_slurp(images[i].path, &sz);
        if (!raw) return -1;
        images[i].base64 = b64_encode((unsigned char *)raw, sz);
        free(raw);
    }
    n_images = n;
    return n > 0 ? 0 : -1;
}

/* Runs `effcam predict MODEL IMAGE... --json` and keeps each image's probabilities. */
static int reference(const char *bin, const char *model, char *why, size_t whylen)
{
    char **argv = calloc((size_t)n_images + 5, sizeof *argv);
    int a = 0, fd;
    argv[a++] = (char *)bin;
    argv[a++] = "predict";
    argv[a++] = (char *)model;
    for (int i = 0; i < n_images; i++) argv[a++] = images[i].path;
    argv[a++] = "--json";
    pid_t pid = spawn(argv, NULL, &fd);
    free(argv);
    if (pid < 0) return snprintf(why, whylen, "cannot start %s", bin), -1;
    FILE *f = fdopen(fd, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int got = 0;
    while (f && (n = getline(&line, &cap, f)) > 0) {
        js_doc *doc;
        const js_value *v, *p;
        char err[128];
        if (js_parse(line, (size_t)n, 16, &doc, &v, err, sizeof err)) continue;
        const char *img = js_get_str(v, "image");
        if ((p = js_get(v, "probabilities")) && p->type == JS_ARRAY && img)
            for (int i = 0; i < n_images; i++)
                if (!strcmp(images[i].path, img) && p->n <= 64) {
                    images[i].k = p->n;
                    for (int j = 0; j < p->n; j++) js_num(&p->items[j], &images[i].prob[j]);
                    got++;
                }
        js_doc_free(doc);
    }
    free(line);
    if (f) fclose(f);
    int rc = wait_status(pid);
    if (rc != 0 || got != n_images)
        return snprintf(why, whylen, "predict exited %d with %d of %d images", rc, got, n_images), -1;
    return 0;
}

/* ---- requests ------------------------------------------------------------------------ */

typedef enum { WANT_ANSWER, WANT_ERROR } outcome;

typedef struct {
    js_buf line;       /* the request, without its newline */
    js_buf id;         /* the id as JSON text: what must come back ("null" if none / unparsable) */
    outcome expect;
    int image;         /* index into images[] for WANT_ANSWER */
    int by_path, cam, top_k;
    const char *error_has;   /* WANT_ERROR: a substring of the message, or NULL */
} request;

/* The i-th request of the mix: ten kinds, so the first 20 exercise every path. */
static void make_request(int i, request *r)
{
    static const char *const ids[] = { "%d", "\"req-%d\"", "[%d, {\"k\": \"v\"}]", "{\"n\": %d, \"s\": \"\\u00e9\\n\\\"\"}",
                                       "%d.25", "-%d", "\"\"", "null", "1e+300", "true" };
    char idtext[128];
    r->line.len = r->id.len = 0;
    snprintf(idtext, sizeof idtext, ids[(i / 10) % 10], i);
    js_buf_puts(&r->id, idtext);
    r->expect = WANT_ERROR;
    r->image = i % n_images;
    r->by_path = 0;
    r->cam = 0;
    r->top_k = 3;
    r->error_has = NULL;
    js_buf *b = &r->line;
    const image *im = &images[r->image];
    switch (i % 10) {
    case 0: /* a good path, defaults */
        js_buf_printf(b, "{\"id\": %s, \"image\": ", idtext);
        js_buf_string(b, im->path);
        js_buf_puts(b, "}");
        r->expect = WANT_ANSWER;
        r->by_path = 1;
        break;
    case 1: /* a file that does not exist */
        js_buf_printf(b, "{\"image\": \"no/such/file-%d.jpg\", \"id\": %s}", i, idtext);
        r->error_has = "no/such/file";
        break;
    case 2: /* an upload, cam on, top_k 1 */
        js_buf_printf(b, "{\"id\": %s, \"cam\": true, \"top_k\": 1, \"image_base64\": \"%s\"}", idtext, im->base64);
        r->expect = WANT_ANSWER;
        r->cam = 1;
        r->top_k = 1;
        break;
    case 3: { /* bad base64 of several kinds, and base64 of something that is no image */
        static const char *const bad[] = { "abc$", "Zm9v=Zm9v", "A", "aGVsbG8gd29ybGQ=", "" };
        static const char *const why[] = { "base64", "base64", "base64", "image", "empty" };
        int j = (i / 10) % 5;
        js_buf_printf(b, "{\"id\": %s, \"image_base64\": \"%s\", \"cam\": true}", idtext, bad[j]);
        r->error_has = why[j];
        break;
    }
    case 4: { /* lines that are not JSON objects: the id cannot be known */
        static const char *const junk[] = { "{", "{\"id\": 1,}", "not json", "{\"id\": 5} trailing", "\"a string\"",
                                            "", "   ", "\xff\xfe{}", "[{\"id\": 1}]", "{\"id\": 1, \"image\": \"x" };
        js_buf_puts(b, junk[(i / 10) % 10]);
        r->id.len = 0;
        js_buf_puts(&r->id, "null");
        break;
    }
    case 5: /* no image at all, or the wrong types */
        if ((i / 10) % 3 == 0) js_buf_printf(b, "{\"id\": %s, \"cam\": true}", idtext), r->error_has = "missing";
        else if ((i / 10) % 3 == 1) js_buf_printf(b, "{\"id\": %s, \"image\": 42}", idtext), r->error_has = "image";
        else {
            js_buf_printf(b, "{\"id\": %s, \"cam\": \"yes\", \"image\": ", idtext);
            js_buf_string(b, im->path);
            js_buf_puts(b, "}");
            r->error_has = "cam";
        }
        break;
    case 6: /* a good path with cam and a top_k beyond the class count (clamped) */
        js_buf_printf(b, "{\"id\": %s, \"image\": ", idtext);
        js_buf_string(b, im->path);
        js_buf_puts(b, ", \"cam\": true, \"top_k\": 100}");
        r->expect = WANT_ANSWER;
        r->by_path = 1;
        r->cam = 1;
        r->top_k = 100;
        break;
    case 7: /* an upload, cam explicitly off, top_k 2 */
        js_buf_printf(b, "{\"image_base64\": \"%s\", \"top_k\": 2, \"cam\": false, \"id\": %s}", im->base64, idtext);
        r->expect = WANT_ANSWER;
        r->top_k = 2;
        break;
    case 8: /* top_k out of range or of the wrong type */
        js_buf_printf(b, "{\"id\": %s, \"top_k\": %s, \"image\": ", idtext, (i / 10) % 2 ? "0" : "\"3\"");
        js_buf_string(b, im->path);
        js_buf_puts(b, "}");
        r->error_has = "top_k";
        break;
    case 9: /* no id at all: null comes back */
        js_buf_puts(b, "{\"image\": ");
        js_buf_string(b, im->path);
        js_buf_puts(b, ", \"top_k\": 7}");
        r->id.len = 0;
        js_buf_puts(&r->id, "null");
        r->expect = WANT_ANSWER;
        r->by_path = 1;
        r->top_k = 7;
        break;
    }
}

/* ---- checking one response ---------------------------------------------------------------- */

typedef struct {
    int ok, errors, cams;
    double worst_prob, worst_sum;
} tally;

/* 0 if the response fits the request; otherwise -1 with why. */
static int check_response(const request *rq, const char *text, size_t len, tally *t, char *why, size_t whylen)
{
    js_doc *doc = NULL, *iddoc = NULL;
    const js_value *v, *want_id;
    char err[200];
    int rc = -1;
    if (js_parse(text, len, 64, &doc, &v, err, sizeof err) || v->type != JS_OBJECT) {
        snprintf(why, whylen, "response is not a JSON object (%s)", err);
        goto out;
    }
    if (js_parse(rq->id.buf, rq->id.len, 64, &iddoc, &want_id, err, sizeof err)) {
        snprintf(why, whylen, "test bug: id %s", rq->id.buf);
        goto out;
    }
    const js_value *id = js_get(v, "id");
    if (!id || !js_equal(id, want_id)) {
        snprintf(why, whylen, "id not echoed (sent %s)", rq->id.buf);
        goto out;
    }
    const char *error = js_get_str(v, "error");
    if (rq->expect == WANT_ERROR) {
        if (!error || js_get(v, "probabilities")) {
            snprintf(why, whylen, "expected an error response");
            goto out;
        }
        if (rq->error_has && !strstr(error, rq->error_has)) {
            snprintf(why, whylen, "error \"%s\" does not mention \"%s\"", error, rq->error_has);
            goto out;
        }
        t->errors++;
        rc = 0;
        goto out;
    }
    if (error) {
        snprintf(why, whylen, "unexpected error \"%s\"", error);
        goto out;
    }
    const image *im = &images[rq->image];
    const js_value *img = js_get(v, "image"), *p = js_get(v, "probabilities"), *top = js_get(v, "top");
    const js_value *hw = js_get(v, "input_hw"), *gc = js_get(v, "gradcam"), *ov = js_get(v, "overlay_base64");
    if (rq->by_path ? !(js_str(img) && !strcmp(img->str, im->path)) : !(img && img->type == JS_NULL)) {
        snprintf(why, whylen, "\"image\" should be %s", rq->by_path ? "the path" : "null");
        goto out;
    }
    if (!hw || hw->type != JS_ARRAY || hw->n != 2) {
        snprintf(why, whylen, "no input_hw");
        goto out;
    }
    if (!p || p->type != JS_ARRAY || p->n != im->k) {
        snprintf(why, whylen, "probabilities missing or of the wrong length");
        goto out;
    }
    double sum = 0, best = -1;
    int argmax = 0;
    for (int j = 0; j < p->n; j++) {
        double x;
        if (js_num(&p->items[j], &x)) {
            snprintf(why, whylen, "probability %d is not a number", j);
            goto out;
        }
        sum += x;
        double d = fabs(x - im->prob[j]);
        if (d > t->worst_prob) t->worst_prob = d;
        if (d > PROB_TOL) {
            snprintf(why, whylen, "probability %d = %.9g, predict --json says %.9g (|diff| %.3g > %g)", j, x,
                     im->prob[j], d, PROB_TOL);
            goto out;
        }
        if (x > best) best = x, argmax = j;
    }
    if (fabs(sum - 1) > t->worst_sum) t->worst_sum = fabs(sum - 1);
    if (fabs(sum - 1) > 1e-5) {
        snprintf(why, whylen, "probabilities sum to %.9g", sum);
        goto out;
    }
    int want_top = rq->top_k < im->k ? rq->top_k : im->k;
    long idx;
    if (!top || top->type != JS_ARRAY || top->n != want_top || js_int(js_get(js_at(top, 0), "index"), 0, 1000, &idx) ||
        idx != argmax) {
        snprintf(why, whylen, "\"top\" should list %d classes starting with %d", want_top, argmax);
        goto out;
    }
    for (int j = 1; j < top->n; j++) {
        double a, b;
        if (js_num(js_get(js_at(top, j - 1), "probability"), &a) || js_num(js_get(js_at(top, j), "probability"), &b) ||
            a < b) {
            snprintf(why, whylen, "\"top\" is not sorted by probability");
            goto out;
        }
    }
    if (!rq->cam) {
        if (gc || ov) {
            snprintf(why, whylen, "cam not asked for, but answered");
            goto out;
        }
    } else {
        const js_value *vals = js_get(gc, "values");
        long ch = 0, cw = 0, cls = -1;
        unsigned char sig[12];
        static const unsigned char png_sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
        if (js_int(js_get(gc, "height"), 1, 4096, &ch) || js_int(js_get(gc, "width"), 1, 4096, &cw) || !vals ||
            vals->type != JS_ARRAY || vals->n != ch * cw || js_int(js_get(gc, "class"), 0, 1000, &cls) || cls != argmax) {
            snprintf(why, whylen, "bad \"gradcam\" object");
            goto out;
        }
        if (!js_str(ov) || ov->len < 100 || b64_prefix(ov->str, 3, sig) < 8 || memcmp(sig, png_sig, 8)) {
            snprintf(why, whylen, "\"overlay_base64\" is not a base64 PNG");
            goto out;
        }
        t->cams++;
    }
    t->ok++;
    rc = 0;
out:
    js_doc_free(doc);
    js_doc_free(iddoc);
    return rc;
}

/* ---- main ------------------------------------------------------------------------------------ */

int main(void)
{
    signal(SIGPIPE, SIG_IGN);   /* a dead worker shows up as a failed write, not a dead test */
    alarm(900);                 /* a hung worker ends the run instead of stalling it */
    const char *bin = t_bin(), *local = t_local(), *tmp = t_tmp();
    char model[4096], keras[4096], imgdir[4096], why[512];
    snprintf(model, sizeof model, "%s/serve_tiny_v2s_64.ecm", tmp);
    snprintf(keras, sizeof keras, "%s/models/tiny_v2s_64.keras", local);
    snprintf(imgdir, sizeof imgdir, "%s/images", local);

    char *conv[] = { (char *)bin, "convert", keras, "-o", model, NULL };
    pid_t pid = spawn(conv, NULL, NULL);
    if (pid < 0 || wait_status(pid) != 0) {
        t_fail("serve_setup", "%s convert %s failed", bin, keras);
        return 1;
    }
    if (load_images(imgdir) || reference(bin, model, why, sizeof why)) {
        t_fail("serve_setup", "reference: %s", n_images ? why : "no fixture images");
        return 1;
    }

    int to, from;
    char *serve[] = { (char *)bin, "serve", model, NULL };
    pid = spawn(serve, &to, &from);
    FILE *in = pid > 0 ? fdopen(from, "r") : NULL;
    if (!in) {
        t_fail("serve_start", "cannot start %s serve", bin);
        return 1;
    }
    request rq;
    memset(&rq, 0, sizeof rq);
    tally t = { 0 };
    char *resp = NULL;
    size_t cap = 0;
    long rss_early = -1, rss_late = -1;
    int bad = 0, done = 0;
    for (int i = 0; i < N_REQUESTS; i++) {
        make_request(i, &rq);
        js_buf_puts(&rq.line, "\n");
        if (rq.line.oom || write_all(to, rq.line.buf, rq.line.len)) {
            t_fail("serve_requests", "request %d: cannot write to the worker", i);
            break;
        }
        rq.line.buf[--rq.line.len] = 0;
        ssize_t n = getline(&resp, &cap, in);
        if (n <= 0 || resp[n - 1] != '\n') {
            t_fail("serve_requests", "request %d: the worker answered nothing (exited?)", i);
            break;
        }
        if (check_response(&rq, resp, (size_t)n - 1, &t, why, sizeof why)) {
            if (bad++ < 5)
                t_fail("serve_response", "request %d (%.120s): %s; response: %.300s", i, rq.line.buf, why, resp);
        }
        done++;
        if (done == RSS_EARLY) rss_early = vm_rss_kb(pid);
        if (done == N_REQUESTS) rss_late = vm_rss_kb(pid);
    }
    if (done == N_REQUESTS && !bad)
        printf("PASS serve_responses: %d requests, %d answered (%d with overlay), %d errors; "
               "max |p - predict| %.3g, max |sum p - 1| %.3g\n",
               done, t.ok, t.cams, t.errors, t.worst_prob, t.worst_sum);
    else if (done == N_REQUESTS)
        t_fail("serve_responses", "%d of %d responses wrong", bad, done);

    if (rss_early > 0 && rss_late > 0) {
        long d = rss_late - rss_early;
        if (UNDER_ASAN) {
            snprintf(why, sizeof why, "AddressSanitizer build (its quarantine holds freed memory): VmRSS %ld kB after "
                     "request %d, %ld kB after request %d", rss_early, RSS_EARLY, rss_late, N_REQUESTS);
            t_skip("serve_rss", why);
        } else if (labs(d) <= RSS_SLACK_KB)
            printf("PASS serve_rss: VmRSS %ld kB after request %d, %ld kB after request %d (%+ld kB)\n", rss_early,
                   RSS_EARLY, rss_late, N_REQUESTS, d);
        else
            t_fail("serve_rss", "VmRSS %ld kB after request %d, %ld kB after request %d (%+ld kB > %d kB)", rss_early,
                   RSS_EARLY, rss_late, N_REQUESTS, d, RSS_SLACK_KB);
    } else if (done == N_REQUESTS) {
        t_skip("serve_rss", "no /proc/PID/status");
    }

    /* An over-long line is skipped and answered; the next request is served as usual. */
    if (done == N_REQUESTS) {
        char *big = malloc(LONG_LINE + 1);
        ssize_t n1 = -1, n2 = -1;
        char *first = NULL;
        if (big) {
            memset(big, 'x', LONG_LINE);
            memcpy(big, "{\"id\": \"", 8);
            big[LONG_LINE] = '\n';
            make_request(0, &rq);
            js_buf_puts(&rq.line, "\n");
            if (!write_all(to, big, LONG_LINE + 1) && !write_all(to, rq.line.buf, rq.line.len)) {
                n1 = getline(&resp, &cap, in);
                first = n1 > 0 ? strdup(resp) : NULL;
                n2 = getline(&resp, &cap, in);
            }
            rq.line.buf[--rq.line.len] = 0;
        }
        int ok1 = first && strstr(first, "\"error\"") && strstr(first, "longer than");
        int ok2 = n2 > 0 && !check_response(&rq, resp, (size_t)n2 - 1, &t, why, sizeof why);
        T_CHECK("serve_long_line", ok1 && ok2, "over-long line answered %.200s; next: %.200s", first ? first : "(nothing)",
                n2 > 0 ? why : "(nothing)");
        free(first);
        free(big);
    }

    /* One writer: `predict --json --base64` and serve's answer for the same image
     * and options are the same object, field by field (serve adds only "id"). */
    if (done == N_REQUESTS) {
        char args_img[4096];
        snprintf(args_img, sizeof args_img, "%s", images[0].path);
        char *pv[] = { (char *)bin, "predict", model, args_img, "--json", "--base64", "--top-k", "3", NULL };
        int pfd;
        pid_t pp = spawn(pv, NULL, &pfd);
        FILE *pf = pp > 0 ? fdopen(pfd, "r") : NULL;
        char *pline = NULL;
        size_t pcap = 0;
        ssize_t pn = pf ? getline(&pline, &pcap, pf) : -1;
        if (pf) {
            while (getline(&resp, &cap, pf) > 0) {}
            fclose(pf);
        }
        int pst = pp > 0 ? wait_status(pp) : -1;
        js_buf req = { 0 };
        js_buf_puts(&req, "{\"id\": 7, \"image\": ");
        js_buf_string(&req, images[0].path);
        js_buf_puts(&req, ", \"cam\": true, \"top_k\": 3}\n");
        ssize_t sn = -1;
        if (!write_all(to, req.buf, req.len)) sn = getline(&resp, &cap, in);
        js_buf_free(&req);
        js_doc *da = NULL, *db = NULL;
        const js_value *a = NULL, *b = NULL;
        char e1[128], e2[128];
        int ok = pst == 0 && pn > 0 && sn > 0 && !js_parse(pline, (size_t)pn, 64, &da, &a, e1, sizeof e1) &&
                 !js_parse(resp, (size_t)sn, 64, &db, &b, e2, sizeof e2) && a->type == JS_OBJECT && b->type == JS_OBJECT;
        const char *diff = ok ? NULL : "no answer";
        int nf = 0;
        for (int i = 0; ok && i < a->n && !diff; i++, nf++)
            if (!js_equal(&a->items[i], js_get(b, a->keys[i]))) diff = a->keys[i];
        if (ok && !diff && b->n != a->n + 1) diff = "serve has other fields";
        if (ok && !diff && !js_get(a, "overlay_base64")) diff = "overlay_base64 missing";
        T_CHECK("serve_and_predict_one_writer", !diff, "field %s differs (predict status %d): predict %.200s / serve %.200s",
                diff ? diff : "", pst, pline ? pline : "", sn > 0 ? resp : "");
        if (!diff) printf("# one writer: %d fields equal\n", nf);
        js_doc_free(da);
        js_doc_free(db);
        free(pline);
    }

    /* The id comes back as the exact text sent (integers above 2^53, 1e400);
     * NaN and Infinity, which are not JSON, come back as null. */
    if (done == N_REQUESTS) {
        static const char *const ids[][2] = {
            { "12345678901234567891", "12345678901234567891" }, { "1e400", "1e400" }, { "-0.0", "-0.0" },
            { "{\"a\": [1, 2.50, \"x\"]}", "{\"a\": [1, 2.50, \"x\"]}" }, { "NaN", "null" }, { "[Infinity]", "null" },
        };
        int bad_id = -1;
        for (size_t i = 0; i < sizeof ids / sizeof ids[0] && bad_id < 0; i++) {
            js_buf req = { 0 };
            js_buf_printf(&req, "{\"id\": %s, \"image\": \"/nonexistent.jpg\"}\n", ids[i][0]);
            ssize_t sn = -1;
            if (!write_all(to, req.buf, req.len)) sn = getline(&resp, &cap, in);
            js_buf_free(&req);
            char want[256];
            snprintf(want, sizeof want, "{\"id\": %s, \"error\": ", ids[i][1]);
            if (sn <= 0 || strncmp(resp, want, strlen(want))) bad_id = (int)i;
        }
        T_CHECK("serve_id_verbatim", bad_id < 0, "id %s came back as %.120s", bad_id >= 0 ? ids[bad_id][0] : "",
                resp ? resp : "");
    }

    /* Per-request CAM method and layer: serve's "gradcam" object is predict's for
     * the same options (the default session, then sessions for other layers, one
     * dropped and made again: at most 2 beside the default, LRU); bad names are
     * answered with an error naming them, and the worker goes on. */
    if (done == N_REQUESTS) {
        static const char *const opts[][2] = {
            { NULL, "eigencam" }, { "stem_activation", NULL }, { "top_activation", "layercam" },
            { "block4b_add", "hirescam" }, { "stem_activation", "xgradcam" }, { "top_conv", "gradcampp" },
            { NULL, NULL },
        };
        const char *diff = NULL;
        int which = -1;
        for (size_t i = 0; i < sizeof opts / sizeof opts[0] && !diff; i++) {
            const char *layer = opts[i][0], *method = opts[i][1];
            char *pv[12] = { (char *)bin, "predict", model, images[0].path, "--json", "--base64", NULL };
            int na = 6;
            if (layer) pv[na++] = "--cam-layer", pv[na++] = (char *)layer;
            if (method) pv[na++] = "--cam-method", pv[na++] = (char *)method;
            pv[na] = NULL;
            int pfd;
            pid_t pp = spawn(pv, NULL, &pfd);
            FILE *pf = pp > 0 ? fdopen(pfd, "r") : NULL;
            char *pline = NULL;
            size_t pcap = 0;
            ssize_t pn = pf ? getline(&pline, &pcap, pf) : -1;
            if (pf) fclose(pf);
            int pst = pp > 0 ? wait_status(pp) : -1;
            js_buf req = { 0 };
            js_buf_puts(&req, "{\"id\": 9, \"image\": ");
            js_buf_string(&req, images[0].path);
            if (layer) js_buf_puts(&req, ", \"cam_layer\": "), js_buf_string(&req, layer);
            if (method) js_buf_puts(&req, ", \"cam_method\": "), js_buf_string(&req, method);
            js_buf_puts(&req, ", \"cam\": true}\n");
            ssize_t sn = -1;
            if (!write_all(to, req.buf, req.len)) sn = getline(&resp, &cap, in);
            js_buf_free(&req);
            js_doc *da = NULL, *db = NULL;
            const js_value *a = NULL, *b = NULL;
            char e1[128], e2[128];
            if (!(pst == 0 && pn > 0 && sn > 0 && !js_parse(pline, (size_t)pn, 64, &da, &a, e1, sizeof e1) &&
                  !js_parse(resp, (size_t)sn, 64, &db, &b, e2, sizeof e2)))
                diff = "no answer";
            else if (!js_equal(js_get(a, "gradcam"), js_get(b, "gradcam")) || !js_get(b, "gradcam"))
                diff = "gradcam differs";
            else if (!js_str(js_get(js_get(b, "gradcam"), "method")) ||
                     strcmp(js_get(js_get(b, "gradcam"), "method")->str, method ? method : "gradcam"))
                diff = "wrong method";
            which = (int)i;
            js_doc_free(da);
            js_doc_free(db);
            free(pline);
        }
        T_CHECK("serve_cam_method_and_layer", !diff, "%s for layer %s method %s: %.300s", diff ? diff : "",
                which >= 0 && opts[which][0] ? opts[which][0] : "(default)",
                which >= 0 && opts[which][1] ? opts[which][1] : "(default)", resp ? resp : "");
        static const char *const badn[][3] = {
            { "\"cam_layer\": \"nope\"", "nope", "unknown layer" },
            { "\"cam_layer\": \"avg_pool\"", "2-D", "2-D layer" },
            { "\"cam_method\": \"scorecam\"", "scorecam", "unknown method" },
            { "\"cam_method\": 3", "must be a string", "method not a string" },
        };
        int bad_i = -1;
        for (size_t i = 0; i < sizeof badn / sizeof badn[0] && bad_i < 0; i++) {
            js_buf req = { 0 };
            js_buf_printf(&req, "{\"id\": 10, \"image\": \"%s\", %s}\n", images[0].path, badn[i][0]);
            ssize_t sn = -1;
            if (!write_all(to, req.buf, req.len)) sn = getline(&resp, &cap, in);
            js_buf_free(&req);
            if (sn <= 0 || strncmp(resp, "{\"id\": 10, ", 11) || !strstr(resp, "\"error\"") || !strstr(resp, badn[i][1]))
                bad_i = (int)i;
        }
        T_CHECK("serve_cam_bad_names", bad_i < 0, "%s: %.300s", bad_i >= 0 ? badn[bad_i][2] : "", resp ? resp : "");
    }

    close(to);   /* end of input: the worker must exit 0 */
    while (getline(&resp, &cap, in) > 0) {}
    fclose(in);
    int st = wait_status(pid);
    T_CHECK("serve_exit", st == 0, "worker exited with status %d at end of input", st);

    free(resp);
    js_buf_free(&rq.line);
    js_buf_free(&rq.id);
    for (int i = 0; i < n_images; i++) {
        free(images[i].path);
        free(images[i].base64);
    }
    return t_failed;
}
