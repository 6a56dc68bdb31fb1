/* main.c - the effcam command line: convert, info, predict, preprocess, synth.
 *
 * The only place that prints and chooses exit statuses:
 *   0  success
 *   1  some images failed (predict, preprocess): the others were processed
 *   2  usage error, unreadable/invalid model or input file, write failure
 * Every error is one line on stderr: "effcam: FILE: reason".
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zlib.h>

#include "convert/cv.h"
#include "convert/json.h"
#include "effcam.h"
#include "engine/cli.h"
#include "engine/ecm_format.h"
#include "engine/image.h"
#include "models/effnet.h"

/* ---- helpers --------------------------------------------------------------------- */

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

/* Parses a whole decimal integer in [lo, hi]. */
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

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Peak RSS of this process in KiB (VmHWM), or -1. */
long cli_peak_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &v) == 1) break;
    fclose(f);
    return v;
}

/* Current RSS of this process in KiB (VmRSS), or -1. */
long cli_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &v) == 1) break;
    fclose(f);
    return v;
}

/* ---- convert --------------------------------------------------------------------- */

static int usage_convert(void)
{
    fputs("usage: effcam convert IN.keras|IN.h5 -o OUT.ecm [--dtype fp16|fp32] [--labels FILE]\n"
          "                      [--max-file-mb N] [--max-layers N] [--max-tensor-elems N] [--max-json-depth N]\n"
          "       effcam convert IN.keras|IN.h5 --list-weights\n",
          stderr);
    return 2;
}

static int cmd_convert(int argc, char **argv)
{
    const char *in = NULL, *outp = NULL;
    cv_options opt = { 1, NULL, cv_limits_default() };
    int list = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-o") && i + 1 < argc) outp = argv[++i];
        else if (!strcmp(a, "--dtype") && i + 1 < argc) {
            const char *d = argv[++i];
            if (!strcmp(d, "fp16")) opt.f16 = 1;
            else if (!strcmp(d, "fp32")) opt.f16 = 0;
            else { cli_err(NULL, "--dtype takes fp16 or fp32, not %s", d); return 2; }
        } else if (!strcmp(a, "--labels") && i + 1 < argc) opt.labels_path = argv[++i];
        else if (!strcmp(a, "--list-weights")) list = 1;
        else if (!strcmp(a, "--max-file-mb") && i + 1 < argc) {
            long v;
            if (cli_int(argv[++i], 1, 1 << 20, &v)) { cli_err(NULL, "bad --max-file-mb"); return 2; }
            opt.limits.max_file_bytes = (uint64_t)v << 20;
        } else if (!strcmp(a, "--max-layers") && i + 1 < argc) {
            long v;
            if (cli_int(argv[++i], 1, 10000000, &v)) { cli_err(NULL, "bad --max-layers"); return 2; }
            opt.limits.max_layers = (int)v;
        } else if (!strcmp(a, "--max-tensor-elems") && i + 1 < argc) {
            long v;
            if (cli_int(argv[++i], 1, 1L << 40, &v)) { cli_err(NULL, "bad --max-tensor-elems"); return 2; }
            opt.limits.max_tensor_elems = (uint64_t)v;
        } else if (!strcmp(a, "--max-json-depth") && i + 1 < argc) {
            long v;
            if (cli_int(argv[++i], 1, 100000, &v)) { cli_err(NULL, "bad --max-json-depth"); return 2; }
            opt.limits.max_json_depth = (int)v;
        } else if (a[0] == '-' && a[1]) { cli_err(NULL, "convert: unknown option %s", a); return usage_convert(); }
        else if (!in) in = a;
        else return usage_convert();
    }
    if (!in || (!outp && !list)) return usage_convert();
    cv_graph g;
    cv_keras *k;
    cv_err e = { "" };
    if (cv_keras_open(in, &opt, &g, &k, &e)) {
        cli_err(in, "%s", e.msg);
        return 2;
    }
    int rc = 0;
    if (list) {
        /* One line per Keras variable: name, shape, crc32 of its float32 LE bytes. */
        size_t cap = 0;
        float *buf = NULL;
        for (int i = 0; i < g.n_tensors && rc == 0; i++) {
            const cv_tensor *t = &g.tensors[i];
            if (t->flags & ECM_TF_DERIVED) continue;
            size_t n = (size_t)cv_tensor_elems(t);
            if (n > cap) {
                float *nb = realloc(buf, (n ? n : 1) * sizeof *nb);
                if (!nb) { cli_err(in, "out of memory"); rc = 2; break; }
                buf = nb;
                cap = n;
            }
            if (t->data) memcpy(buf, t->data, n * sizeof *buf);
            else if (g.load(g.load_ctx, t, buf, n, &e)) { cli_err(in, "%s", e.msg); rc = 2; break; }
            uLong crc = crc32(0L, Z_NULL, 0);
            for (size_t j = 0; j < n; j++) {
                uint32_t u;
                unsigned char b[4];
                memcpy(&u, &buf[j], 4);
                b[0] = (unsigned char)u; b[1] = (unsigned char)(u >> 8);
                b[2] = (unsigned char)(u >> 16); b[3] = (unsigned char)(u >> 24);
                crc = crc32(crc, b, 4);
            }
            printf("%s\t", t->name);
            for (int d = 0; d < t->rank; d++) printf("%s%lld", d ? "x" : "", (long long)t->dims[d]);
            printf("\t%lu\n", (unsigned long)crc);
        }
        free(buf);
    } else if (cli_signals_hold(), cv_ecm_write(&g, outp, &e)) {
        cli_err(in, "%s", e.msg);
        rc = 2;
    }
    cli_signals_release();
    cv_keras_close(k);
    cv_graph_free(&g);
    return rc;
}

/* ---- synth ----------------------------------------------------------------------- */

static int cmd_synth(int argc, char **argv)
{
    const char *arch = NULL, *outp = NULL;
    long size = 0, classes = 7, seed = 1;
    int f16 = 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-o") && i + 1 < argc) outp = argv[++i];
        else if (!strcmp(a, "--size") && i + 1 < argc) {
            if (cli_int(argv[++i], 16, 2048, &size)) { cli_err(NULL, "--size takes 16..2048"); return 2; }
        } else if (!strcmp(a, "--classes") && i + 1 < argc) {
            if (cli_int(argv[++i], 1, 100000, &classes)) { cli_err(NULL, "--classes takes 1..100000"); return 2; }
        } else if (!strcmp(a, "--seed") && i + 1 < argc) {
            if (cli_int(argv[++i], 0, LONG_MAX, &seed)) { cli_err(NULL, "bad --seed"); return 2; }
        } else if (!strcmp(a, "--dtype") && i + 1 < argc) {
            const char *d = argv[++i];
            if (!strcmp(d, "fp16")) f16 = 1;
            else if (!strcmp(d, "fp32")) f16 = 0;
            else { cli_err(NULL, "--dtype takes fp16 or fp32"); return 2; }
        } else if (a[0] == '-') { cli_err(NULL, "synth: unknown option %s", a); arch = NULL; break; }
        else if (!arch) arch = a;
        else { arch = NULL; break; }
    }
    if (!arch || !outp) {
        fputs("usage: effcam synth ARCH --size N [--classes K] [--seed S] [--dtype fp16|fp32] -o OUT.ecm\n"
              "ARCH:", stderr);
        for (const char *const *n = ec_synth_arch_names(); *n; n++) fprintf(stderr, " %s", *n);
        fputc('\n', stderr);
        return 2;
    }
    if (size == 0) size = ec_synth_default_size(arch);
    cv_graph g;
    cv_err e = { "" };
    cv_graph_init(&g);
    if (ec_synth_build(arch, (int)size, (int)classes, (uint64_t)seed, f16, &g, &e)) {
        cli_err(arch, "%s", e.msg);
        cv_graph_free(&g);
        return 2;
    }
    if (f16) cv_graph_keep_f32_ends(&g);
    cli_signals_hold();
    int rc = cv_ecm_write(&g, outp, &e) ? 2 : 0;
    cli_signals_release();
    if (rc) cli_err(outp, "%s", e.msg);
    cv_graph_free(&g);
    return rc;
}

/* ---- main ------------------------------------------------------------------------ */

static int usage(void)
{
    fputs("effcam " EFFCAM_VERSION " - EfficientNet inference and Grad-CAM for Keras models\n"
          "usage:\n"
          "  effcam convert IN.keras|IN.h5 -o OUT.ecm [--dtype fp16|fp32] [--labels FILE]\n"
          "  effcam info MODEL.ecm [--json]\n"
          "  effcam predict MODEL.ecm IMAGE... [--top-k N] [--json] [--threads N]\n"
          "                 [--cam OUT] [--cam-layer NAME] [--class INDEX|LABEL]\n"
          "                 [--cam-score prob|logit] [--base64] [--max-pixels N]\n"
          "  effcam serve MODEL.ecm [--threads N] [--max-pixels N]   (JSON lines on stdin/stdout)\n"
          "  effcam preprocess MODEL.ecm IMAGE -o OUT.ppm\n"
          "  effcam synth ARCH --size N [--classes K] [--seed S] -o OUT.ecm\n"
          "  effcam bench MODEL.ecm [IMAGE] [--runs N] [--warmup N] [--threads N] [--gradcam] [--layers] [--json]\n"
          "exit status: 0 ok, 1 some images failed, 2 usage, model or file error\n",
          stderr);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2) return usage();
    cli_signals_install();
    const char *cmd = argv[1];
    if (!strcmp(cmd, "convert")) return cmd_convert(argc - 2, argv + 2);
    if (!strcmp(cmd, "synth")) return cmd_synth(argc - 2, argv + 2);
    if (!strcmp(cmd, "info")) return cli_info(argc - 2, argv + 2);
    if (!strcmp(cmd, "predict")) return cli_predict(argc - 2, argv + 2);
    if (!strcmp(cmd, "preprocess")) return cli_preprocess(argc - 2, argv + 2);
    if (!strcmp(cmd, "serve")) return cli_serve(argc - 2, argv + 2);
    if (!strcmp(cmd, "bench")) return cli_bench(argc - 2, argv + 2);
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("effcam %s\n", EFFCAM_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage();
        return 0;
    }
    cli_err(NULL, "unknown command %s", cmd);
    return usage();
}
