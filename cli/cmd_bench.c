/* cmd_bench.c - effcam bench: in-process latency of ec_session_predict_rgb
 * (median, p90, min after warm-up), with and without Grad-CAM measured
 * alternately (the overhead ratio), and --layers: a per-step timing table.
 *
 * The image is decoded once; every run times ec_session_predict_rgb on the
 * decoded pixels, so the resize to the model's input is included, as in the
 * app. Without IMAGE a deterministic 640x480 texture is used. Nothing here is
 * asserted anywhere: the figures are evidence for bench/run.sh's table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "kernels/kernels.h"

static const char usage_bench[] =
    "usage: effcam bench MODEL.ecm [IMAGE] [--runs N] [--warmup N] [--threads N]\n"
    "                    [--gradcam | --cam-only] [--cam-layer NAME] [--cam-method M] [--layers] [--json]\n"
    "                    [--load-only] [--resize FILTER]\n"
    "In-process latency of predicts on IMAGE's decoded pixels (the resize to the model's input\n"
    "included, with FILTER, lanczos by default), plain and with Grad-CAM alternately; --layers adds\n"
    "a per-step table (ms, GFLOP/s); --cam-only runs Grad-CAM predicts only (a soak).\n";

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* q-quantile with linear interpolation (numpy's default); sorts v. */
static double quantile(double *v, int n, double q)
{
    if (n <= 0) return 0.0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    double k = (n - 1) * q;
    int f = (int)k, c = f + 1 < n ? f + 1 : n - 1;
    return v[f] + (v[c] - v[f]) * (k - f);
}

typedef struct {
    double median, p90, min, mean, first;
} lat_stats;

static lat_stats summarize(const double *ms, int n, double first)
{
    lat_stats r = { 0, 0, 0, 0, first };
    double *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    if (!v || n <= 0) { free(v); return r; }
    for (int i = 0; i < n; i++) { v[i] = ms[i]; r.mean += ms[i] / n; }
    r.median = quantile(v, n, 0.5);
    r.p90 = quantile(v, n, 0.9);
    r.min = v[0];
    free(v);
    return r;
}

/* Grad-CAM's overhead as the median of the per-pair ratios cam[i] / plain[i] - 1:
 * each pair runs back to back, so the VM's drift over the run (10-20% here)
 * cancels within a pair instead of widening both medians. */
static double paired_overhead(const double *plain, const double *cam, int n)
{
    double *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    if (!v || n <= 0) { free(v); return 0.0; }
    int k = 0;
    for (int i = 0; i < n; i++)
        if (plain[i] > 0) v[k++] = cam[i] / plain[i] - 1.0;
    double r = k ? quantile(v, k, 0.5) : 0.0;
    free(v);
    return r;
}

/* A deterministic photo-like texture: smooth gradients plus a little noise. */
static uint8_t *synth_image(int w, int h)
{
    uint8_t *p = malloc((size_t)w * h * 3);
    uint32_t x = 12345;
    for (int i = 0; p && i < w * h; i++) {
        int r = i / w, c = i % w;
        x = x * 1664525u + 1013904223u;
        int n = (int)(x >> 28) - 8;
        int v[3] = { 120 + 80 * r / h + n, 90 + 60 * c / w + n, 70 + (r ^ c) % 40 + n };
        for (int k = 0; k < 3; k++) p[(size_t)i * 3 + k] = (uint8_t)(v[k] < 0 ? 0 : v[k] > 255 ? 255 : v[k]);
    }
    return p;
}

static int predict_ms(ec_session *s, const uint8_t *rgb, int w, int h, double *ms)
{
    ec_result r;
    double t0 = cli_now();
    if (ec_session_predict_rgb(s, rgb, w, h, &r) != EC_OK) {
        cli_err(NULL, "predict: %s", ec_last_error());
        return -1;
    }
    *ms = 1e3 * (cli_now() - t0);
    return 0;
}

/* Keras names: "block3a_expand_conv" -> stage "block3", else stem/top/other */
static void stage_of(const char *name, char *out, size_t cap)
{
    if (!strncmp(name, "block", 5)) {
        int i = 5;
        while (name[i] >= '0' && name[i] <= '9') i++;
        snprintf(out, cap, "%.*s", i, name);
    } else {
        snprintf(out, cap, "%s", !strncmp(name, "stem", 4) ? "stem" : !strncmp(name, "top", 3) ? "top" : "other");
    }
}

typedef struct { const char *key; double ms, flops; int n; } agg;

static void agg_add(agg *a, int *na, int cap, const char *key, double ms, double flops)
{
    for (int i = 0; i < *na; i++)
        if (!strcmp(a[i].key, key)) { a[i].ms += ms; a[i].flops += flops; a[i].n++; return; }
    if (*na < cap) a[(*na)++] = (agg){ key, ms, flops, 1 };
}

/* GFLOP/s of flops done in ms (0 without a time), and its share of the FMA peak (0 without one). */
static double gflops(double flops, double ms) { return ms > 0 ? flops / (ms * 1e6) : 0.0; }
static double peak_frac(double flops, double ms, double peak) { return peak > 0 ? gflops(flops, ms) / peak : 0.0; }

static void agg_print(const char *title, const agg *a, int n, double total, double peak)
{
    printf("\n%-30s steps        ms      %%   GFLOP  GFLOP/s  %%peak\n", title);
    for (int i = 0; i < n; i++) {
        printf("%-30s %5d %9.3f %6.2f %7.3f %8.1f", a[i].key, a[i].n, a[i].ms, total > 0 ? 100 * a[i].ms / total : 0,
               a[i].flops / 1e9, gflops(a[i].flops, a[i].ms));
        if (a[i].flops > 0 && peak > 0) printf(" %6.1f\n", 100 * peak_frac(a[i].flops, a[i].ms, peak));
        else printf("      -\n");
    }
}

/* --layers: runs more predicts with the session's profiler on; the median per step. */
static int layers_table(ec_session *s, const uint8_t *rgb, int w, int h, int runs, int threads, int json, js_buf *b)
{
    /* the FMA peak the GFLOP/s are measured against: one core's at the kernels' vector
     * width, times the threads (measured before the runs: ~1 ms) */
    int bits = 0;
    const double peak1 = ec_cpu_fma_peak_gflops(&bits), peak = peak1 * threads;
    ec_profile pf;
    if (ec_session_profile_start(s) != EC_OK || ec_session_profile_get(s, &pf) != EC_OK) {
        cli_lib_err();
        return -1;
    }
    int ns = pf.n_steps, nt = ns + 3;
    double *per = calloc((size_t)nt * runs, sizeof *per);   /* [nt][runs] */
    double *med = calloc((size_t)nt, sizeof *med);
    char (*stage)[24] = calloc((size_t)ns + 1, sizeof *stage);
    if (!per || !med || !stage) { free(per); free(med); free(stage); cli_err(NULL, "out of memory"); return -1; }
    int rc = 0;
    for (int r = 0; r < runs && rc == 0; r++) {
        double ms;
        ec_session_profile_start(s);   /* from zero: one run's times */
        rc = predict_ms(s, rgb, w, h, &ms);
        ec_session_profile_get(s, &pf);
        for (int k = 0; k < ns; k++) per[(size_t)k * runs + r] = 1e3 * pf.steps[k].seconds;
        per[(size_t)ns * runs + r] = 1e3 * pf.input_seconds;
        per[(size_t)(ns + 1) * runs + r] = 1e3 * pf.backward_seconds;
        per[(size_t)(ns + 2) * runs + r] = 1e3 * pf.total_seconds;
    }
    ec_session_profile_stop(s);
    if (rc) goto done;
    for (int k = 0; k < nt; k++) med[k] = quantile(per + (size_t)k * runs, runs, 0.5);
    const ec_profile_step *d = pf.steps;
    double total = med[ns + 2], sum = 0;
    for (int k = 0; k < ns; k++) { stage_of(d[k].name, stage[k], sizeof stage[k]); sum += med[k]; }
    agg by_op[16], by_stage[32];
    int n_op = 0, n_stage = 0;
    for (int k = 0; k < ns; k++) {
        agg_add(by_op, &n_op, 16, d[k].op, med[k], d[k].flops);
        agg_add(by_stage, &n_stage, 32, stage[k], med[k], d[k].flops);
    }
    agg_add(by_op, &n_op, 16, "input (resize+widen)", med[ns], 0);
    if (med[ns + 1] > 0) agg_add(by_op, &n_op, 16, "grad-cam backward", med[ns + 1], 0);
    if (json) {
        js_buf_printf(b, ", \"layers\": {\"runs\": %d, \"predict_ms\": %.4f, \"steps_sum_ms\": %.4f, "
                         "\"input_ms\": %.4f, \"gradcam_backward_ms\": %.4f, \"fma_peak_gflops_per_core\": %.2f, "
                         "\"fma_peak_bits\": %d, \"steps\": [",
                      runs, total, sum, med[ns], med[ns + 1], peak1, bits);
        for (int k = 0; k < ns; k++) {
            js_buf_puts(b, k ? ", {\"name\": " : "{\"name\": ");
            js_buf_string(b, d[k].name);
            js_buf_printf(b, ", \"op\": \"%s\", \"out\": \"%dx%dx%d\", \"M\": %d, \"N\": %d, \"K\": %d, \"mflop\": %.3f, "
                             "\"mbytes\": %.3f, \"ms\": %.4f}",
                          d[k].op, d[k].out_h, d[k].out_w, d[k].out_c, d[k].gemm_m, d[k].gemm_n, d[k].gemm_k,
                          d[k].flops / 1e6, d[k].bytes / 1e6, med[k]);
        }
        js_buf_puts(b, "], \"by_op\": [");
        for (int i = 0; i < n_op; i++)
            js_buf_printf(b, "%s{\"op\": \"%s\", \"steps\": %d, \"ms\": %.4f, \"gflop\": %.4f, \"peak_fraction\": %.4f}",
                          i ? ", " : "", by_op[i].key, by_op[i].n, by_op[i].ms, by_op[i].flops / 1e9,
                          peak_frac(by_op[i].flops, by_op[i].ms, peak));
        js_buf_puts(b, "], \"by_stage\": [");
        for (int i = 0; i < n_stage; i++)
            js_buf_printf(b, "%s{\"stage\": \"%s\", \"steps\": %d, \"ms\": %.4f, \"gflop\": %.4f, \"peak_fraction\": %.4f}",
                          i ? ", " : "", by_stage[i].key, by_stage[i].n, by_stage[i].ms, by_stage[i].flops / 1e9,
                          peak_frac(by_stage[i].flops, by_stage[i].ms, peak));
        js_buf_puts(b, "]}");
    } else {
        printf("\nper step (median of %d runs; ms; GFLOP/s for conv, dwconv and dense)\n", runs);
        printf("%4s %-44s %-8s %-12s %6s %5s %5s %9s %8s %6s %7s\n", "step", "layer", "op", "output", "M", "N",
               "K", "MFLOP", "ms", "%", "GFLOP/s");
        for (int k = 0; k < ns; k++) {
            if (d[k].flops == 0 && med[k] < 0.005) continue;   /* aliases and no-ops */
            char shape[40];
            snprintf(shape, sizeof shape, "%dx%dx%d", d[k].out_h, d[k].out_w, d[k].out_c);
            printf("%4d %-44.44s %-8s %-12s %6d %5d %5d %9.2f %8.3f %6.2f %7.1f\n", k, d[k].name, d[k].op, shape,
                   d[k].gemm_m, d[k].gemm_n, d[k].gemm_k, d[k].flops / 1e6, med[k], total > 0 ? 100 * med[k] / total : 0,
                   gflops(d[k].flops, med[k]));
        }
        if (peak > 0)
            printf("\nFMA peak: %.1f GFLOP/s per core (%d-bit FMAs, measured), %.1f for %d thread%s; %%peak = GFLOP/s over it\n",
                   peak1, bits, peak, threads, threads > 1 ? "s" : "");
        else
            printf("\nFMA peak: not measured (scalar kernels)\n");
        agg_print("by op", by_op, n_op, total, peak);
        agg_print("by stage", by_stage, n_stage, total, peak);
        printf("(GFLOP/s of the direct form: wino3x3 does fewer multiplies, so it can pass 100%% of the peak)\n");
        printf("\npredict %.3f ms = input %.3f + steps %.3f + grad-cam backward %.3f + rest %.3f\n", total, med[ns],
               sum, med[ns + 1], total - med[ns] - sum - med[ns + 1]);
    }
done:
    free(per);
    free(med);
    free(stage);
    return rc;
}

static void stats_json(js_buf *b, const char *key, const lat_stats *l)
{
    js_buf_printf(b, ", \"%s\": {\"median_ms\": %.4f, \"p90_ms\": %.4f, \"min_ms\": %.4f, \"mean_ms\": %.4f, "
                     "\"first_ms\": %.4f}",
                  key, l->median, l->p90, l->min, l->mean, l->first);
}

int cli_bench(int argc, char **argv)
{
    const char *model = NULL, *image = NULL, *cam_layer = NULL, *cam_method = NULL;
    long runs = 30, warmup = 5, threads = 1;
    int gradcam = 0, cam_only = 0, layers = 0, json = 0, load_only = 0;
    ec_session_options o = ec_session_options_default();
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (cli_is_help(a)) {
            fputs(usage_bench, stdout);
            return cli_stdout_close() ? 2 : 0;
        }
        if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--gradcam")) gradcam = 1;
        else if (!strcmp(a, "--cam-only")) gradcam = cam_only = 1;   /* soak: Grad-CAM predicts only */
        else if (!strcmp(a, "--layers")) layers = 1;
        else if (!strcmp(a, "--cam-layer") && more) cam_layer = argv[++i];    /* the Grad-CAM session's target */
        else if (!strcmp(a, "--cam-method") && more) cam_method = argv[++i];
        else if (!strcmp(a, "--load-only")) load_only = 1;
        else if (!strcmp(a, "--resize") && more) {
            if (cli_filter("--resize", argv[++i], &o.resize)) goto usage;
        } else if (!strcmp(a, "--runs") && more) {
            if (cli_int(argv[++i], 1, 1000000, &runs)) { cli_err(NULL, "--runs takes 1..1000000"); goto usage; }
        } else if (!strcmp(a, "--warmup") && more) {
            if (cli_int(argv[++i], 0, 1000000, &warmup)) { cli_err(NULL, "--warmup takes 0..1000000"); goto usage; }
        } else if (!strcmp(a, "--threads") && more) {
            if (cli_int(argv[++i], 1, 64, &threads)) { cli_err(NULL, "--threads takes 1..64"); goto usage; }
        } else if (a[0] == '-' && a[1]) { cli_err(NULL, "bench: unknown option %s", a); goto usage; }
        else if (!model) model = a;
        else if (!image) image = a;
        else goto usage;
    }
    if (!model) goto usage;

    double t_start = cli_now();
    ec_model *m = NULL;
    if (!(m = cli_load_model(model))) return 2;
    o.threads = (int)threads;
    ec_session *s0 = NULL, *s1 = NULL;   /* plain (not with --cam-only), Grad-CAM */
    if (!cam_only && ec_session_new(m, &o, &s0) != EC_OK) { cli_err(model, "%s", ec_last_error()); ec_model_free(m); return 2; }
    o.gradcam = 1;
    o.cam_layer = cam_layer;
    o.cam_method = cam_method;
    if (gradcam && ec_session_new(m, &o, &s1) != EC_OK) {
        cli_err(model, "%s", ec_last_error());
        ec_session_free(s0);
        ec_model_free(m);
        return 2;
    }
    double t_loaded = cli_now();
    uint8_t *rgb = NULL;
    int w = 640, h = 480, rc = 0;
    if (load_only) goto report;
    if (image) {
        if (ec_image_load(image, 50000000, &rgb, &w, &h) != EC_OK) {
            cli_lib_err();
            rc = 2;
            goto out;
        }
    } else if (!(rgb = synth_image(w, h))) {
        cli_err(NULL, "out of memory");
        rc = 2;
        goto out;
    }

report:;
    double *t0 = calloc((size_t)runs, sizeof *t0), *t1 = calloc((size_t)runs, sizeof *t1);
    double first0 = 0, first1 = 0, dummy;
    lat_stats l0 = { 0 }, l1 = { 0 };
    long rss_warm = -1, rss_end = -1, rss_max = -1;   /* VmRSS after warm-up, after the runs, max sampled */
    if (!t0 || !t1) { cli_err(NULL, "out of memory"); rc = 2; goto out2; }
    if (!load_only) {
        /* warm-up (the first run pays the page faults of weights and arena), then
         * plain and Grad-CAM alternately so drift affects both the same way */
        if ((s0 && predict_ms(s0, rgb, w, h, &first0)) || (s1 && predict_ms(s1, rgb, w, h, &first1))) { rc = 2; goto out2; }
        for (long i = 1; i < warmup; i++)
            if ((s0 && predict_ms(s0, rgb, w, h, &dummy)) || (s1 && predict_ms(s1, rgb, w, h, &dummy))) { rc = 2; goto out2; }
        rss_warm = rss_max = cli_rss_kib();
        for (long i = 0; i < runs; i++) {
            if (s0 && predict_ms(s0, rgb, w, h, &t0[i])) { rc = 2; goto out2; }
            if (s1 && predict_ms(s1, rgb, w, h, &t1[i])) { rc = 2; goto out2; }
            if (i % 64 == 63) {   /* a leak shows as growth; a one-off spike in the maximum */
                long r = cli_rss_kib();
                if (r > rss_max) rss_max = r;
            }
        }
        rss_end = cli_rss_kib();
        if (rss_end > rss_max) rss_max = rss_end;
        if (s0) l0 = summarize(t0, (int)runs, first0);
        if (s1) l1 = summarize(t1, (int)runs, first1);
    }
    const char *coretype = getenv("OPENBLAS_CORETYPE");
    ec_backend_info bk;
    ec_backend(&bk);
    const char *core = bk.blas_core;
    int mh, mw;
    ec_model_input_size(m, &mh, &mw);
    js_buf b = { 0 };
    const ec_session *sa = s0 ? s0 : s1;   /* the arena figures of the plain session when there is one */
    if (json) {
        js_buf_puts(&b, "{\"model\": ");
        js_buf_string(&b, model);
        js_buf_puts(&b, ", \"image\": ");
        if (image) js_buf_string(&b, image);
        else js_buf_puts(&b, "null");
        js_buf_printf(&b, ", \"image_wh\": [%d, %d], \"input_hw\": [%d, %d], \"threads\": %ld, \"runs\": %ld, "
                          "\"warmup\": %ld, \"openblas_core\": ",
                      w, h, mh, mw, threads, runs, warmup);
        js_buf_string(&b, core ? core : "?");
        js_buf_puts(&b, ", \"openblas_config\": ");
        js_buf_string(&b, bk.blas_config);
        js_buf_puts(&b, ", \"kernels\": ");
        js_buf_string(&b, bk.kernels);
        js_buf_puts(&b, ", \"OPENBLAS_CORETYPE\": ");
        if (coretype) js_buf_string(&b, coretype);
        else js_buf_puts(&b, "null");
        js_buf_printf(&b, ", \"load_ms\": %.3f, \"arena_bytes\": %zu, \"scratch_bytes\": %zu", 1e3 * (t_loaded - t_start),
                      ec_session_arena_bytes(sa), ec_session_scratch_bytes(sa));
        if (s1) js_buf_printf(&b, ", \"arena_bytes_gradcam\": %zu, \"pinned_bytes\": %zu", ec_session_arena_bytes(s1),
                              ec_session_pinned_bytes(s1));
        if (!load_only) {
            if (s0) stats_json(&b, "predict", &l0);
            if (s1) stats_json(&b, "predict_gradcam", &l1);
            if (s0 && s1) {
                js_buf_printf(&b, ", \"gradcam_overhead\": %.5f, \"gradcam_overhead_median_ratio\": %.5f",
                              paired_overhead(t0, t1, (int)runs), l0.median > 0 ? l1.median / l0.median - 1 : 0.0);
            }
        }
    } else {
        printf("model %s, image %s (%dx%d -> %dx%d), threads %ld, OpenBLAS core %s (OPENBLAS_CORETYPE=%s)\n", model,
               image ? image : "(synthetic)", w, h, mw, mh, threads, core ? core : "?", coretype ? coretype : "unset");
        printf("load + session %.1f ms; arena %.2f MB, scratch %.2f MB", 1e3 * (t_loaded - t_start),
               ec_session_arena_bytes(sa) / 1e6, ec_session_scratch_bytes(sa) / 1e6);
        if (s1) printf("; with Grad-CAM arena %.2f MB (%.2f MB pinned)", ec_session_arena_bytes(s1) / 1e6,
                       ec_session_pinned_bytes(s1) / 1e6);
        printf("\n");
        if (!load_only) {
            printf("%-22s %9s %9s %9s %9s %9s   (ms, %ld runs after %ld warm-up)\n", "", "median", "p90", "min",
                   "mean", "first", runs, warmup);
            if (s0)
                printf("%-22s %9.3f %9.3f %9.3f %9.3f %9.3f\n", "predict", l0.median, l0.p90, l0.min, l0.mean, l0.first);
            if (s1)
                printf("%-22s %9.3f %9.3f %9.3f %9.3f %9.3f\n", "predict + grad-cam", l1.median, l1.p90, l1.min,
                       l1.mean, l1.first);
            if (s0 && s1) {
                printf("grad-cam overhead %+.2f%% (median of the per-pair ratios; median over median %+.2f%%)\n",
                       100 * paired_overhead(t0, t1, (int)runs), l0.median > 0 ? 100 * (l1.median / l0.median - 1) : 0.0);
            }
        }
    }
    if (layers && !load_only && layers_table(s1 ? s1 : s0, rgb, w, h, (int)runs, (int)threads, json, &b)) rc = 2;
    if (json) {
        js_buf_printf(&b, ", \"rss_after_warmup_kib\": %ld, \"rss_end_kib\": %ld, \"rss_max_after_warmup_kib\": %ld, "
                          "\"peak_rss_kib\": %ld}",
                      rss_warm, rss_end, rss_max, cli_peak_rss_kib());
        if (cli_emit(&b)) rc = 2;
    } else {
        if (!load_only)
            printf("RSS after warm-up %.1f MB, after the runs %.1f MB (drift %+ld KiB, max %+ld KiB)\n",
                   rss_warm / 1024.0, rss_end / 1024.0, rss_end - rss_warm, rss_max - rss_warm);
        printf("peak RSS (VmHWM) %.1f MB\n", cli_peak_rss_kib() / 1024.0);
    }
    fflush(stdout);
    js_buf_free(&b);
out2:
    free(t0);
    free(t1);
out:
    free(rgb);
    ec_session_free(s1);
    ec_session_free(s0);
    ec_model_free(m);
    return rc;
usage:
    fputs(usage_bench, stderr);
    return 2;
}
