/* common.c - what every subcommand uses: errors, numbers, clocks, memory
 * figures, stdout, the deferred signals and base64. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

/* ---- errors and numbers ------------------------------------------------------------- */

void cli_err(const char *file, const char *fmt, ...)
{
    va_list ap;
    fputs("effcam: ", stderr);
    if (file) fprintf(stderr, "%s: ", file);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void cli_lib_err(void) { cli_err(NULL, "%s", ec_last_error()); }

int cli_int(const char *s, long lo, long hi, long *out)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int cli_filter(const char *opt, const char *name, ec_resize_filter *out)
{
    if (name && ec_resize_filter_parse(name, out) == EC_OK) return 0;
    cli_err(NULL, "%s takes nearest, box, bilinear, hamming, bicubic or lanczos, not %s", opt, name ? name : "nothing");
    return -1;
}

int cli_is_help(const char *a) { return !strcmp(a, "-h") || !strcmp(a, "--help"); }

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One "Key: N kB" line of /proc/self/status, or -1. */
static long cli_status_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256], fmt[32];
    snprintf(fmt, sizeof fmt, "%s: %%ld kB", key);
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, fmt, &v) == 1) break;
    fclose(f);
    return v;
}

long cli_peak_rss_kib(void) { return cli_status_kib("VmHWM"); }
long cli_rss_kib(void) { return cli_status_kib("VmRSS"); }

ec_model *cli_load_model(const char *path)
{
    ec_model *m = NULL;
    if (ec_model_load(path, &m) != EC_OK) {
        cli_lib_err();   /* the loader's message starts with the path */
        return NULL;
    }
    return m;
}

/* ---- stdout ------------------------------------------------------------------------ */

int cli_emit(js_buf *b)
{
    if (b->oom) {
        cli_err(NULL, "out of memory");
        b->len = 0;
        return -1;
    }
    fwrite(b->buf ? b->buf : "", 1, b->len, stdout);
    fputc('\n', stdout);
    b->len = 0;
    return fflush(stdout) != 0 || ferror(stdout) ? -1 : 0;
}

int cli_stdout_close(void)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_err("stdout", "write error: %s", strerror(errno ? errno : EIO));
        return -1;
    }
    return 0;
}

/* ---- signals ----------------------------------------------------------------------
 * While an output file is being written, SIGINT/SIGTERM/SIGHUP are caught and
 * remembered rather than acted on; when the last write is over (renamed into
 * place, or cleaned up after an error) the default action is restored and the
 * signal re-raised, so the process still dies of it. Blocking the signals with
 * sigprocmask would not do: OpenBLAS starts its threads before main, with the
 * signals unblocked, and the kernel may deliver a process signal to any of them. */

static const int held_signals[] = { SIGINT, SIGTERM, SIGHUP };
#define N_HELD ((int)(sizeof held_signals / sizeof held_signals[0]))
static volatile sig_atomic_t pending_signal;
static struct sigaction saved_actions[N_HELD];
static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static int holds;

static void remember_signal(int sig) { pending_signal = sig; }

void cli_signals_hold(void)
{
    pthread_mutex_lock(&hold_mu);
    if (holds++ == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = remember_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;     /* the writer's read/write calls carry on */
        for (int i = 0; i < N_HELD; i++) sigaction(held_signals[i], &sa, &saved_actions[i]);
    }
    pthread_mutex_unlock(&hold_mu);
}

void cli_signals_release(void)
{
    pthread_mutex_lock(&hold_mu);
    int sig = 0;
    if (--holds == 0) {
        for (int i = 0; i < N_HELD; i++) sigaction(held_signals[i], &saved_actions[i], NULL);
        sig = pending_signal;
        pending_signal = 0;
    }
    pthread_mutex_unlock(&hold_mu);
    if (sig) raise(sig);
}

/* ---- base64 -------------------------------------------------------------------------- */

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

int cli_base64_decode(const char *s, size_t n, unsigned char **outp, size_t *capp, size_t *lenp, char *err,
                      size_t errlen)
{
    size_t start = 0;
    if (n >= 5 && !memcmp(s, "data:", 5)) {   /* a browser's data URL */
        const char *comma = memchr(s, ',', n);
        if (!comma || comma - s < 12 || memcmp(comma - 7, ";base64", 7)) {
            snprintf(err, errlen, "image_base64: a data URL must be \"data:<type>;base64,<data>\"");
            return -1;
        }
        start = (size_t)(comma - s) + 1;
    }
    size_t need = (n - start) / 4 * 3 + 3;
    if (need > *capp) {
        unsigned char *np = realloc(*outp, need);
        if (!np) {
            snprintf(err, errlen, "out of memory (%zu bytes for the decoded image)", need);
            return -1;
        }
        *outp = np;
        *capp = need;
    }
    unsigned char *o = *outp;
    size_t k = 0, pad = 0;
    uint32_t acc = 0;
    int q = 0;   /* sextets in acc */
    for (size_t i = start; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;   /* MIME line breaks */
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
    *lenp = k;
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
