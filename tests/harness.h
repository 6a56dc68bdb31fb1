/* harness.h - the test binaries' tiny harness.
 *
 * Each check prints one line: "PASS name", "FAIL name: detail" or
 * "SKIP name: reason"; tests/run.sh counts them. Environment (set by run.sh):
 *   EC_LOCAL   tests/fixtures (always present)
 *   EC_SHARED  the shared Keras fixtures directory, or empty when absent
 *   EC_BIN     the effcam CLI
 *   EC_TMP     a scratch directory, removed after the run
 */
#ifndef EFFCAM_TEST_HARNESS_H
#define EFFCAM_TEST_HARNESS_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_failed;

static inline void t_pass(const char *name) { printf("PASS %s\n", name); fflush(stdout); }

static inline void t_skip(const char *name, const char *reason)
{
    printf("SKIP %s: %s\n", name, reason);
    fflush(stdout);
}

__attribute__((format(printf, 2, 3)))
static inline void t_fail(const char *name, const char *fmt, ...)
{
    va_list ap;
    printf("FAIL %s: ", name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    t_failed = 1;
}

/* One verdict from a condition. */
#define T_CHECK(name, cond, ...) do { if (cond) t_pass(name); else t_fail(name, __VA_ARGS__); } while (0)

static inline const char *t_env(const char *k, const char *dflt)
{
    const char *v = getenv(k);
    return (v && *v) ? v : dflt;
}

/* Directory of the shared fixtures, or NULL (callers print SKIP). */
static inline const char *t_shared(void) { return t_env("EC_SHARED", NULL); }
static inline const char *t_local(void) { return t_env("EC_LOCAL", "tests/fixtures"); }
static inline const char *t_tmp(void) { return t_env("EC_TMP", "/tmp"); }
static inline const char *t_bin(void) { return t_env("EC_BIN", "build/effcam"); }

/* Reads a whole file into a malloc'd NUL-terminated buffer; NULL if unreadable. */
static inline char *t_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *nb = realloc(buf, 2 * cap + 1);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

#endif
