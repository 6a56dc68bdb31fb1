/* memchild.h - how much memory streaming an image costs, measured in a child
 * process of the test (tests only): the test re-runs its own binary as
 * `--mem-child ARGS...`; the child forgets its peak so far, opens the image,
 * streams its rows into the app's two resamplers (LANCZOS for the model input,
 * BICUBIC for the overlay base, 300x300 each) and prints "KIB MS": the growth
 * of its peak RSS and the time taken. */
#ifndef EFFCAM_TEST_MEMCHILD_H
#define EFFCAM_TEST_MEMCHILD_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "image/reader.h"
#include "image/resample.h"

#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define T_ASAN 1
#endif
#endif

static inline double t_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* a "Key:  N kB" line of /proc/self/status, -1 if absent */
static inline long t_vm_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t k = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, k)) v = strtol(line + k + 1, NULL, 10);
    if (f) fclose(f);
    return v;
}

/* In the child, before opening the image: the peak so far forgotten (Linux >= 4.0). */
static inline long t_mem_child_begin(double *t0)
{
    FILE *cr = fopen("/proc/self/clear_refs", "w");
    if (cr) fputs("5", cr), fclose(cr);
    *t0 = t_now_ms();
    return t_vm_kib("VmHWM:");
}

/* In the child: im's rows through both resamplers, then "KIB MS" printed;
 * 0, or 4 (resamplers) / 5 (decoding). Closes im. */
static inline int t_mem_child_stream(ec_img *im, long before, double t0)
{
    int w, h, got;
    ec_img_size(im, &w, &h);
    static uint8_t in[300 * 300 * 3], base[300 * 300 * 3];
    ec_resampler *a = NULL, *b = NULL;
    if (ec_resampler_new(EC_RESIZE_LANCZOS, w, h, 300, 300, 3, in, &a) != EC_OK ||
        ec_resampler_new(EC_RESIZE_BICUBIC, w, h, 300, 300, 3, base, &b) != EC_OK) {
        ec_resampler_free(a), ec_img_close(im);
        return 4;
    }
    uint8_t *rows = malloc((size_t)w * 3 * 16);
    ec_status st = rows ? EC_OK : EC_ERR_NOMEM;
    while (st == EC_OK && (st = ec_img_read_rows(im, rows, 16, &got)) == EC_OK && got)
        for (int i = 0; i < got; i++) ec_resampler_push(a, rows + (size_t)i * w * 3), ec_resampler_push(b, rows + (size_t)i * w * 3);
    double ms = t_now_ms() - t0;
    int ok = st == EC_OK && ec_resampler_rows_done(a) == 300 && ec_resampler_rows_done(b) == 300;
    if (ok) printf("%ld %.1f\n", t_vm_kib("VmHWM:") - before, ms);
    ec_resampler_free(a), ec_resampler_free(b), free(rows), ec_img_close(im);
    return ok ? 0 : 5;
}

/* In the test: runs this binary with argv (argv[0] its name, then
 * "--mem-child", ...); the child's peak RSS growth in KiB and *ms, or -1. */
static inline long t_run_mem_child(char *const argv[], double *ms)
{
    int fds[2];
    if (pipe(fds)) return -1;
    pid_t pid = fork();
    if (pid < 0) { close(fds[0]), close(fds[1]); return -1; }
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(fds[1]);
    char out[128] = "";
    ssize_t r = read(fds[0], out, sizeof out - 1);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    long kib = -1;
    if (r > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        out[r] = 0;
        if (sscanf(out, "%ld %lf", &kib, ms) != 2) kib = -1;
    }
    return kib;
}

#endif
