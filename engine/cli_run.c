/* cli_run.c - effcam info / predict / preprocess. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>

#include "convert/json.h"
#include "effcam.h"
#include "engine/cli.h"
#include "engine/image.h"
#include "kernels/resize.h"

/* ---- signals --------------------------------------------------------------------
 * While an output file is being written, SIGINT/SIGTERM/SIGHUP are caught and
 * remembered rather than acted on; when the write is over (renamed into place,
 * or cleaned up after an error) the default action is restored and the signal
 * re-raised, so the process still dies of it. Blocking the signals with
 * sigprocmask would not do: OpenBLAS starts its threads before main, with the
 * signals unblocked, and the kernel may deliver a process signal to any of them. */

static const int held_signals[] = { SIGINT, SIGTERM, SIGHUP };
#define N_HELD ((int)(sizeof held_signals / sizeof held_signals[0]))
static volatile sig_atomic_t pending_signal;
static struct sigaction saved_actions[N_HELD];

static void remember_signal(int sig) { pending_signal = sig; }

void cli_signals_install(void) { pending_signal = 0; }

void cli_signals_hold(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = remember_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;     /* the writer's read/write calls carry on */
    for (int i = 0; i < N_HELD; i++) sigaction(held_signals[i], &sa, &saved_actions[i]);
}

void cli_signals_release(void)
{
    for (int i = 0; i < N_HELD; i++) sigaction(held_signals[i], &saved_actions[i], NULL);
    int sig = pending_signal;
    pending_signal = 0;
    if (sig) raise(sig);
}

/* ---- shared ---------------------------------------------------------------------- */

static void js_out(js_buf *b)
{
    if (b->oom) {
        cli_err(NULL, "out of memory");
        return;
    }
    fwrite(b->buf, 1, b->len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    b->len = 0;
}

static ec_model *load_model(const char *path)
{
    ec_model *m = NULL;
    ec_status st = ec_model_load(path, &m);
    if (st != EC_OK) {
        /* the loader's message already starts with the path */
        cli_err(NULL, "%s", ec_last_error());
        return NULL;
    }
    return m;
}

/* ---- info ------------------------------------------------------------------------ */

int cli_info(int argc, char **argv)
{
    const char *path = NULL;
    int json = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (argv[i][0] == '-' || path) {
            fputs("usage: effcam info MODEL.ecm [--json]\n", stderr);
            return 2;
        } else path = argv[i];
    }
    if (!path) {
        fputs("usage: effcam info MODEL.ecm [--json]\n", stderr);
        return 2;
    }
    ec_model *m = load_model(path);
    if (!m) return 2;
    if (ec_model_verify(m) != EC_OK) {   /* info reads the whole file: the checksum too */
        cli_err(NULL, "%s", ec_last_error());
        ec_model_free(m);
        return 2;
    }
    /* The session plans the arena: plain, and with the values Grad-CAM pins. */
    ec_session_options o = ec_session_options_default();
    ec_session *s0 = NULL, *s1 = NULL;
    ec_status st = ec_session_new(m, &o, &s0);
    o.gradcam = 1;
    ec_status st1 = st == EC_OK ? ec_session_new(m, &o, &s1) : st;
    if (st != EC_OK) {
        cli_err(path, "%s", ec_last_error());
        ec_model_free(m);
        return 2;
    }
    int h, w;
    ec_model_input_size(m, &h, &w);
    int nl = ec_model_num_layers(m), k = ec_model_num_classes(m);
    const char *cam = ec_model_gradcam_layer(m);
    size_t arena = ec_session_arena_bytes(s0);
    size_t arena_cam = s1 ? ec_session_arena_bytes(s1) : 0, pinned = s1 ? ec_session_pinned_bytes(s1) : 0;
    size_t scratch = ec_session_scratch_bytes(s0);
    if (json) {
        js_buf b = { 0 };
        js_buf_printf(&b, "{\"file\": ");
        js_buf_string(&b, path);
        js_buf_printf(&b, ", \"params\": %lld, \"weight_bytes\": {\"fp16\": %lld, \"fp32\": %lld}",
                      (long long)ec_model_params(m), (long long)ec_model_weight_bytes(m, 1),
                      (long long)ec_model_weight_bytes(m, 0));
        js_buf_printf(&b, ", \"input_hw\": [%d, %d], \"num_classes\": %d, \"labels\": [", h, w, k);
        for (int i = 0; i < k; i++) {
            if (i) js_buf_puts(&b, ", ");
            js_buf_string(&b, ec_model_label(m, i));
        }
        js_buf_puts(&b, "], \"gradcam_layer\": ");
        if (cam) js_buf_string(&b, cam);
        else js_buf_puts(&b, "null");
        js_buf_printf(&b, ", \"arena_bytes\": %zu, \"arena_bytes_gradcam\": %zu, \"gradcam_pinned_bytes\": %zu"
                          ", \"scratch_bytes\": %zu, \"layers\": [",
                      arena, arena_cam, pinned, scratch);
        for (int i = 0; i < nl; i++) {
            ec_layer_info li;
            if (ec_model_layer(m, i, &li) != EC_OK) continue;
            js_buf_puts(&b, i ? ", {\"name\": " : "{\"name\": ");
            js_buf_string(&b, li.name);
            js_buf_puts(&b, ", \"op\": ");
            js_buf_string(&b, li.op);
            js_buf_printf(&b, ", \"shape\": [%d, %d, %d], \"params\": %lld}", li.out_h, li.out_w, li.out_c,
                          (long long)li.params);
        }
        js_buf_puts(&b, "]}");
        js_out(&b);
        js_buf_free(&b);
    } else {
        printf("%-36s %-12s %-18s %12s\n", "layer", "op", "output", "params");
        for (int i = 0; i < nl; i++) {
            ec_layer_info li;
            if (ec_model_layer(m, i, &li) != EC_OK) continue;
            char shape[48];
            snprintf(shape, sizeof shape, "%dx%dx%d", li.out_h, li.out_w, li.out_c);
            printf("%-36s %-12s %-18s %12lld\n", li.name, li.op, shape, (long long)li.params);
        }
        printf("\nlayers        %d\n", nl);
        printf("params        %lld\n", (long long)ec_model_params(m));
        printf("weights       %.2f MB fp16 + %.2f MB fp32\n", ec_model_weight_bytes(m, 1) / 1e6,
               ec_model_weight_bytes(m, 0) / 1e6);
        printf("input         %dx%dx3\n", h, w);
        printf("classes       %d:", k);
        for (int i = 0; i < k; i++) printf("%s %s", i ? "," : "", ec_model_label(m, i));
        printf("\ngrad-cam      %s\n", cam ? cam : "(none)");
        printf("arena         %.2f MB (%.2f MB with Grad-CAM, of which %.2f MB pinned)\n", arena / 1e6,
               arena_cam / 1e6, pinned / 1e6);
        printf("scratch       %.2f MB\n", scratch / 1e6);
    }
    if (st1 != EC_OK && cam) fprintf(stderr, "effcam: %s: note: grad-cam unavailable: %s\n", path, ec_last_error());
    ec_session_free(s1);
    ec_session_free(s0);
    ec_model_free(m);
    return 0;
}

/* ---- predict --------------------------------------------------------------------- */

static const char usage_predict[] =
    "usage: effcam predict MODEL.ecm IMAGE... [--top-k N] [--json] [--threads N]\n"
    "                      [--cam OUT] [--cam-layer NAME] [--class INDEX|LABEL]\n"
    "                      [--cam-score prob|logit] [--base64] [--max-pixels N] [--stats]\n";

/* "dir/photo.v2.jpg" -> "photo.v2" */
static void stem_of(const char *path, char *out, size_t cap)
{
    const char *s = strrchr(path, '/');
    s = s ? s + 1 : path;
    snprintf(out, cap, "%s", s);
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = 0;
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int cli_predict(int argc, char **argv)
{
    const char *model = NULL, *cam_out = NULL, *cls = NULL;
    const char **images = calloc((size_t)argc + 1, sizeof *images);
    int n_images = 0, json = 0, b64 = 0, stats = 0;
    double t_start = cli_now(), t_loaded = 0, t_first = 0, t_pred = 0;
    struct timespec wall_first = { 0, 0 };
    long topk = 3, threads = 1;
    ec_session_options o = ec_session_options_default();
    if (!images) return 2;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        long v;
        int more = i + 1 < argc;
        if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--base64")) b64 = 1;
        else if (!strcmp(a, "--stats")) stats = 1;
        else if (!strcmp(a, "--top-k") && more) {
            if (cli_int(argv[++i], 1, 1 << 20, &topk)) { cli_err(NULL, "--top-k takes a positive number"); goto usage; }
        } else if (!strcmp(a, "--threads") && more) {
            if (cli_int(argv[++i], 1, 64, &threads)) { cli_err(NULL, "--threads takes 1..64"); goto usage; }
        } else if (!strcmp(a, "--cam") && more) { cam_out = argv[++i]; o.gradcam = 1; }
        else if (!strcmp(a, "--cam-layer") && more) { o.cam_layer = argv[++i]; o.gradcam = 1; }
        else if (!strcmp(a, "--class") && more) { cls = argv[++i]; o.gradcam = 1; }
        else if (!strcmp(a, "--cam-score") && more) {
            const char *s = argv[++i];
            if (!strcmp(s, "prob")) o.cam_logit = 0;
            else if (!strcmp(s, "logit")) o.cam_logit = 1;
            else { cli_err(NULL, "--cam-score takes prob or logit"); goto usage; }
            o.gradcam = 1;
        } else if (!strcmp(a, "--max-pixels") && more) {
            if (cli_int(argv[++i], 1, 1L << 40, &v)) { cli_err(NULL, "--max-pixels takes a positive number"); goto usage; }
            o.max_pixels = v;
        } else if (a[0] == '-' && a[1]) { cli_err(NULL, "predict: unknown option %s", a); goto usage; }
        else if (!model) model = a;
        else images[n_images++] = a;
    }
    if (!model || n_images == 0) goto usage;
    if (b64 && !json) { cli_err(NULL, "--base64 goes with --json"); goto usage; }
    if (b64) o.gradcam = 1;
    if (json && o.gradcam == 0 && cam_out) o.gradcam = 1;
    if (cam_out && n_images > 1 && !is_dir(cam_out)) {
        cli_err(cam_out, "--cam with several images needs an existing directory");
        free(images);
        return 2;
    }
    o.threads = (int)threads;

    ec_model *m = load_model(model);
    if (!m) { free(images); return 2; }
    int k = ec_model_num_classes(m);
    if (cls) {
        long ci;
        o.cam_class = -1;
        if (cli_int(cls, 0, k - 1, &ci) == 0) o.cam_class = (int)ci;
        else
            for (int i = 0; i < k; i++)
                if (!strcmp(ec_model_label(m, i), cls)) o.cam_class = i;
        if (o.cam_class < 0) {
            cli_err(model, "--class %s is neither a class index (0..%d) nor a label", cls, k - 1);
            ec_model_free(m);
            free(images);
            return 2;
        }
    }
    ec_session *s = NULL;
    if (ec_session_new(m, &o, &s) != EC_OK) {
        cli_err(model, "%s", ec_last_error());
        ec_model_free(m);
        free(images);
        return 2;
    }
    if (topk > k) topk = k;
    t_loaded = cli_now();
    int failed = 0, write_failed = 0, model_bad = 0;
    int *order = malloc((size_t)k * sizeof *order);
    js_buf b = { 0 };
    for (int ii = 0; ii < n_images && order; ii++) {
        const char *img = images[ii];
        ec_result r;
        ec_status st = ec_session_predict_file(s, img, &r);
        if (ii == 0) t_pred = cli_now();
        if (st != EC_OK && ec_model_verify(m) != EC_OK) {
            /* the model's checksum (checked as the first image ran): not this
             * image's fault, and no later image can succeed */
            cli_err(NULL, "%s", ec_last_error());
            model_bad = 1;
            break;
        }
        if (st != EC_OK) {
            failed = 1;
            cli_err(img, "%s", ec_last_error());
            if (json) {
                js_buf_puts(&b, "{\"image\": ");
                js_buf_string(&b, img);
                js_buf_puts(&b, ", \"error\": ");
                js_buf_string(&b, ec_last_error());
                js_buf_puts(&b, "}");
                js_out(&b);
            }
            continue;
        }
        /* top-k by descending probability; ties keep class order, like the
         * app's Python sort (stable). order[] doubles as the "taken" marks. */
        for (int i = 0; i < k; i++) order[i] = -1;
        for (int i = 0; i < topk; i++) {
            int best = -1;
            for (int j = 0; j < k; j++) {
                int taken = 0;
                for (int q = 0; q < i && !taken; q++) taken = order[q] == j;
                if (!taken && (best < 0 || r.probabilities[j] > r.probabilities[best])) best = j;
            }
            order[i] = best;
        }
        if (cam_out) {
            char path[4096];
            if (n_images > 1 || is_dir(cam_out)) {
                char stem[1024];
                stem_of(img, stem, sizeof stem);
                snprintf(path, sizeof path, "%s/%s.cam.png", cam_out, stem);
            } else {
                snprintf(path, sizeof path, "%s", cam_out);
            }
            cli_signals_hold();
            st = ec_session_write_overlay(s, path);
            cli_signals_release();
            if (st != EC_OK) {
                cli_err(path, "%s", ec_last_error());
                write_failed = 1;
            }
        }
        if (json) {
            js_buf_puts(&b, "{\"image\": ");
            js_buf_string(&b, img);
            js_buf_printf(&b, ", \"input_hw\": [%d, %d], \"probabilities\": [", r.input_height, r.input_width);
            for (int i = 0; i < k; i++) js_buf_printf(&b, "%s%.9g", i ? ", " : "", r.probabilities[i]);
            js_buf_puts(&b, "], \"top\": [");
            for (int i = 0; i < topk; i++) {
                js_buf_printf(&b, "%s{\"index\": %d, \"label\": ", i ? ", " : "", order[i]);
                js_buf_string(&b, ec_model_label(m, order[i]));
                js_buf_printf(&b, ", \"probability\": %.9g}", r.probabilities[order[i]]);
            }
            js_buf_puts(&b, "]");
            if (r.cam) {
                js_buf_puts(&b, ", \"gradcam\": {\"layer\": ");
                const char *layer = o.cam_layer ? o.cam_layer : ec_model_gradcam_layer(m);
                js_buf_string(&b, layer ? layer : "");
                js_buf_printf(&b, ", \"class\": %d, \"score\": \"%s\", \"height\": %d, \"width\": %d, \"values\": [",
                              o.cam_class >= 0 ? o.cam_class : r.top_class, o.cam_logit ? "logit" : "prob",
                              r.cam_height, r.cam_width);
                for (int i = 0; i < r.cam_height * r.cam_width; i++)
                    js_buf_printf(&b, "%s%.7g", i ? ", " : "", r.cam[i]);
                js_buf_puts(&b, "]");
                if (b64) {
                    size_t sb = ec_overlay_scratch_bytes(r.cam_height, r.cam_width, r.input_height, r.input_width);
                    void *scratch = malloc(sb ? sb : 1);
                    uint8_t *rgba = malloc((size_t)r.input_height * r.input_width * 4);
                    uint8_t *png = NULL;
                    size_t plen = 0;
                    if (scratch && rgba) {
                        ec_overlay_rgba(r.cam, r.cam_height, r.cam_width, r.input_rgb, r.input_height, r.input_width,
                                        scratch, rgba);
                        if (ec_png_encode(rgba, r.input_width, r.input_height, 4, &png, &plen) == EC_OK) {
                            js_buf_puts(&b, ", \"base64\": ");
                            cli_buf_base64(&b, png, plen);
                        }
                    }
                    free(png);
                    free(rgba);
                    free(scratch);
                }
                js_buf_puts(&b, "}");
            }
            js_buf_puts(&b, "}");
            js_out(&b);
        } else {
            printf("%s\n", img);
            for (int i = 0; i < topk; i++)
                printf("  %d. %-56s %7.2f%%\n", i + 1, ec_model_label(m, order[i]), 100.0 * r.probabilities[order[i]]);
            fflush(stdout);
        }
        if (ii == 0) {
            t_first = cli_now();
            clock_gettime(CLOCK_REALTIME, &wall_first);   /* for a cold-start clock outside the process */
        }
    }
    if (stats && !model_bad) {
        /* What a user of a small host wants to know: time to the first answer
         * (including the overlay) and the whole process's peak memory. */
        double t_end = cli_now();
        fprintf(stderr, "effcam: load %.1f ms, first image %.1f ms (decode + inference%s %.1f ms%s%.1f ms), "
                        "%d image%s in %.1f ms; peak RSS %.1f MiB\n",
                1e3 * (t_loaded - t_start), 1e3 * (t_first - t_loaded), o.gradcam ? " + grad-cam" : "",
                1e3 * (t_pred - t_loaded), cam_out ? ", overlay " : ", output ", 1e3 * (t_first - t_pred),
                n_images, n_images == 1 ? "" : "s", 1e3 * (t_end - t_loaded), cli_peak_rss_kib() / 1024.0);
        /* when the first image's answer and overlay were out (CLOCK_REALTIME, s):
         * bench/run.sh's cold start ends there, not after the process's teardown */
        fprintf(stderr, "effcam: first output at %lld.%09ld (seconds since the epoch)\n", (long long)wall_first.tv_sec,
                wall_first.tv_nsec);
    }
    js_buf_free(&b);
    free(order);
    ec_session_free(s);
    ec_model_free(m);
    free(images);
    if (write_failed || model_bad) return 2;
    return failed ? 1 : 0;
usage:
    free(images);
    fputs(usage_predict, stderr);
    return 2;
}

/* ---- preprocess ------------------------------------------------------------------ */

int cli_preprocess(int argc, char **argv)
{
    const char *model = NULL, *img = NULL, *outp = NULL;
    long maxpx = 50000000;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc) outp = argv[++i];
        else if (!strcmp(argv[i], "--max-pixels") && i + 1 < argc) {
            if (cli_int(argv[++i], 1, 1L << 40, &maxpx)) { cli_err(NULL, "--max-pixels takes a positive number"); return 2; }
        } else if (argv[i][0] == '-' && argv[i][1]) { model = NULL; break; }
        else if (!model) model = argv[i];
        else if (!img) img = argv[i];
        else { model = NULL; break; }
    }
    if (!model || !img || !outp) {
        fputs("usage: effcam preprocess MODEL.ecm IMAGE -o OUT.ppm [--max-pixels N]\n", stderr);
        return 2;
    }
    ec_model *m = load_model(model);
    if (!m) return 2;
    int h, w, iw, ih;
    ec_model_input_size(m, &h, &w);
    ec_model_free(m);
    uint8_t *rgb = NULL;
    if (ec_image_decode_file(img, maxpx, &rgb, &iw, &ih) != EC_OK) {
        cli_err(img, "%s", ec_last_error());
        return 1;
    }
    uint8_t *dst = malloc((size_t)h * w * 3);
    size_t sb = ec_u8_resize_scratch_bytes(iw, ih, w, h, 3);
    void *scratch = malloc(sb ? sb : 1);
    int rc = 0;
    if (!dst || !scratch) { cli_err(img, "out of memory"); rc = 2; }
    else if (ec_u8_resize_bilinear(rgb, iw, ih, 3, dst, w, h, scratch)) { cli_err(img, "cannot resize"); rc = 1; }
    else {
        cli_signals_hold();
        if (ec_ppm_write(outp, dst, w, h) != EC_OK) { cli_err(outp, "%s", ec_last_error()); rc = 2; }
        cli_signals_release();
    }
    free(scratch);
    free(dst);
    free(rgb);
    return rc;
}
