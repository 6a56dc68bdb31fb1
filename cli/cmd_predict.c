/* cmd_predict.c - effcam predict: the app's report for each image, optionally
 * its overlay PNG, over image files, folders of them (DIR) and lists (--from).
 *
 * With --jobs N, N sessions share the one model and take images as they come
 * free; the answers are still printed in input order (each worker's output is
 * kept until its turn). On a terminal, stderr shows progress (count, rate,
 * ETA) for more than one image; nothing when stderr is not a terminal, so
 * logs and JSON stay clean. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

static const char usage[] =
    "usage: effcam predict MODEL.ecm IMAGE|DIR... [--from FILE] [--top-k N] [--json] [--threads N]\n"
    "                      [--jobs N] [--cam OUT] [--cam-layer NAME] [--cam-method M] [--class INDEX|LABEL]\n"
    "                      [--cam-score prob|logit] [--base64] [--resize FILTER] [--overlay-resize FILTER]\n"
    "                      [--max-pixels N] [--max-arena-mb N] [--stats]\n"
    "Top-k classes per image, as the app reports them. A DIR stands for the images in it\n"
    "(.jpg .jpeg .png .bmp .gif .tga .ppm .pgm, sorted by name); --from FILE reads one path per line.\n"
    "  --json            one JSON object per image per line (README: the result fields)\n"
    "  --cam OUT         the app's overlay PNG: a file for one image, a directory for several\n"
    "  --cam-layer NAME  the layer to explain (default: the app's, the last conv layer): any layer\n"
    "                    `effcam info MODEL` marks with '*' (a 4-D output), or `input` (the gradient\n"
    "                    w.r.t. the model input: a saliency map); early layers give finer maps\n"
    "  --cam-method M    gradcam (default, the app's), gradcampp, xgradcam, hirescam, layercam or\n"
    "                    eigencam (no gradient); xgradcam and eigencam suit post-activation layers\n"
    "  --class C         the class to explain (default: the top class); --cam-score logit|prob\n"
    "  --base64          the overlay PNG in the JSON (\"overlay_base64\"); needs --json\n"
    "  --threads N       threads per session (1..64); --jobs N: N sessions over one model\n"
    "  --resize FILTER   Pillow's filter for the model input: lanczos (the app's, default), bicubic,\n"
    "                    bilinear, hamming, box, nearest; --overlay-resize FILTER: for the overlay's\n"
    "                    base picture (default bicubic, the app's)\n"
    "  --max-pixels N    largest image accepted (default 50000000)\n"
    "  --max-arena-mb N  largest activation memory a model may plan (default 1024)\n"
    "  --stats           time, peak memory and the moment the first answer was out, on stderr\n";

#define MAX_PATHS 10000000   /* images in one run */

/* ---- the list of images ------------------------------------------------------------ */

typedef struct {
    char **p;
    int n, cap;
} paths;

static int paths_add(paths *l, const char *s)
{
    if (l->n == l->cap) {
        if (l->cap >= MAX_PATHS) return -1;
        int cap = l->cap ? 2 * l->cap : 64;
        char **np = realloc(l->p, (size_t)cap * sizeof *np);
        if (!np) return -1;
        l->p = np;
        l->cap = cap;
    }
    if (!(l->p[l->n] = strdup(s))) return -1;
    l->n++;
    return 0;
}

static void paths_free(paths *l)
{
    for (int i = 0; i < l->n; i++) free(l->p[i]);
    free(l->p);
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int has_image_ext(const char *name)
{
    static const char *const ext[] = { ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tga", ".ppm", ".pgm", ".pnm" };
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (!strcasecmp(dot, ext[i])) return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The images of a folder (not recursive), sorted by name. */
static int add_dir(paths *l, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        cli_err(dir, "cannot read the folder: %s", strerror(errno));
        return -1;
    }
    int first = l->n, rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) && rc == 0) {
        if (e->d_name[0] == '.' || !has_image_ext(e->d_name)) continue;
        size_t n = strlen(dir) + strlen(e->d_name) + 2;
        char *p = malloc(n);
        if (!p) { rc = -1; break; }
        snprintf(p, n, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", e->d_name);
        rc = paths_add(l, p);
        free(p);
    }
    closedir(d);
    if (rc) cli_err(dir, "out of memory (or over %d images)", MAX_PATHS);
    else qsort(l->p + first, (size_t)(l->n - first), sizeof *l->p, cmp_str);
    return rc;
}

/* One path per line; blank lines skipped; a NUL byte is refused. */
static int add_list(paths *l, const char *file)
{
    struct stat st;
    if (stat(file, &st) != 0 || !S_ISREG(st.st_mode)) {
        cli_err(file, "--from needs a regular file (one image path per line)");
        return -1;
    }
    FILE *f = fopen(file, "r");
    if (!f) {
        cli_err(file, "cannot open: %s", strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0, lineno = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if ((size_t)n != strlen(line)) {
            cli_err(file, "line %d holds a NUL byte", lineno);
            rc = -1;
            break;
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (n == 0) continue;
        if (paths_add(l, line)) {
            cli_err(file, "out of memory (or over %d images)", MAX_PATHS);
            rc = -1;
        }
    }
    if (rc == 0 && ferror(f)) {
        cli_err(file, "read error");
        rc = -1;
    }
    free(line);
    fclose(f);
    return rc;
}

/* ---- one image ------------------------------------------------------------------------ */

typedef struct {
    const ec_model *m;
    const char *cam_out;          /* --cam */
    char **cam_paths;             /* --cam DIR: each image's overlay path, else NULL */
    int json, b64, topk;
} run_opts;

typedef struct {
    js_buf out;                   /* stdout text */
    char *err;                    /* one stderr line, or NULL */
    int failed;                   /* the image failed */
    int write_failed;             /* its overlay could not be written */
    int model_bad;                /* the model's checksum failed: stop */
    int done;
} item;

/* ---- overlay file names ------------------------------------------------------------
 * --cam DIR: "DIR/photo.cam.png" for "x/photo.jpg". Two inputs with the same
 * stem (photo.jpg and photo.png, or two folders' photo.jpg) would overwrite
 * each other's overlay, so a later one takes its whole file name
 * ("photo.png.cam.png") and then a number ("photo-2.cam.png"). Names are fixed
 * in input order before any image runs, so --jobs does not change them. */

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;   /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

typedef struct {
    char **slot;                  /* open addressing, names owned by the caller */
    size_t cap;
} name_set;

static int name_set_add(name_set *ns, char *name)   /* 1 added, 0 present */
{
    size_t i = name_hash(name) & (ns->cap - 1);
    while (ns->slot[i]) {
        if (!strcmp(ns->slot[i], name)) return 0;
        i = (i + 1) & (ns->cap - 1);
    }
    ns->slot[i] = name;
    return 1;
}

/* names[i] = the overlay path of image i; -1 when out of memory */
static int overlay_names(const char *dir, const paths *imgs, char **names)
{
    name_set ns = { NULL, 16 };
    while (ns.cap < 2 * (size_t)imgs->n) ns.cap *= 2;
    if (!(ns.slot = calloc(ns.cap, sizeof *ns.slot))) return -1;
    int rc = 0;
    for (int i = 0; i < imgs->n && rc == 0; i++) {
        const char *base = strrchr(imgs->p[i], '/');
        base = base ? base + 1 : imgs->p[i];
        const char *dot = strrchr(base, '.');
        int stem = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
        size_t n = strlen(dir) + strlen(base) + 40;
        char *p = malloc(n);
        if (!p) { rc = -1; break; }
        snprintf(p, n, "%s/%.*s.cam.png", dir, stem, base);
        if (!name_set_add(&ns, p)) {
            snprintf(p, n, "%s/%s.cam.png", dir, base);
            for (int k = 2; !name_set_add(&ns, p); k++) snprintf(p, n, "%s/%.*s-%d.cam.png", dir, stem, base, k);
        }
        names[i] = p;
    }
    free(ns.slot);
    return rc;
}

static void set_err(item *it, const char *file, const char *msg)
{
    size_t n = strlen(msg) + (file ? strlen(file) : 0) + 16;
    it->err = malloc(n);
    if (it->err) snprintf(it->err, n, "effcam: %s%s%s", file ? file : "", file ? ": " : "", msg);
}

static void run_one(const run_opts *o, ec_session *s, int *order, const char *img, const char *cam_path, item *it)
{
    ec_result r;
    ec_status st = ec_session_predict_file(s, img, &r);
    if (st != EC_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", ec_last_error());
        if (ec_model_verify(o->m) != EC_OK) {
            /* the model's checksum (checked as the first image ran): not this
             * image's fault, and no later image can succeed */
            set_err(it, NULL, ec_last_error());
            it->model_bad = 1;
            return;
        }
        it->failed = 1;
        set_err(it, NULL, msg);   /* the library's message names the image */
        if (o->json) cli_error_object(&it->out, img, msg);
        return;
    }
    int k = r.num_classes;
    cli_top_k(r.probabilities, k, o->topk, order);
    uint8_t *png = NULL;
    size_t plen = 0;
    if (o->cam_out || o->b64) {
        st = ec_session_overlay_png(s, &png, &plen);
        if (st != EC_OK) {
            set_err(it, img, ec_last_error());
            it->write_failed = 1;
        }
    }
    if (o->cam_out && png) {
        const char *path = cam_path ? cam_path : o->cam_out;
        /* the overlay through the library's atomic writer (a temporary renamed
         * into place; a target that is a device or a FIFO is refused) */
        cli_signals_hold();
        st = ec_session_write_overlay(s, path);
        cli_signals_release();
        if (st != EC_OK) {
            set_err(it, NULL, ec_last_error());
            it->write_failed = 1;
        }
    }
    cli_result res = { o->m, &r, img, o->topk, order, o->b64 ? png : NULL, plen };
    if (o->json) {
        js_buf_puts(&it->out, "{");
        cli_result_fields(&it->out, &res);
        js_buf_puts(&it->out, "}");
    } else {
        cli_result_text(&it->out, &res);
    }
    free(png);
}

/* ---- jobs --------------------------------------------------------------------------- */

typedef struct {
    const run_opts *o;
    const paths *imgs;
    item *items;
    ec_session **sessions;
    atomic_int next;
    atomic_int stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} job_queue;

typedef struct { job_queue *q; int index; } job_worker;

static void *job_main(void *arg)
{
    job_worker *w = arg;
    job_queue *q = w->q;
    int k = ec_model_num_classes(q->o->m);
    int *order = malloc((size_t)k * sizeof *order);
    for (int i; order && !atomic_load(&q->stop) && (i = atomic_fetch_add(&q->next, 1)) < q->imgs->n;) {
        item *it = &q->items[i];
        run_one(q->o, q->sessions[w->index], order, q->imgs->p[i], q->o->cam_paths ? q->o->cam_paths[i] : NULL, it);
        if (it->model_bad) atomic_store(&q->stop, 1);
        pthread_mutex_lock(&q->mu);
        it->done = 1;
        pthread_cond_broadcast(&q->cv);
        pthread_mutex_unlock(&q->mu);
    }
    if (!order) atomic_store(&q->stop, 1);
    free(order);
    return NULL;
}

/* ---- progress --------------------------------------------------------------------- */

static void progress(int done, int total, double t0, int final)
{
    double el = cli_now() - t0, rate = el > 0 ? done / el : 0;
    double eta = rate > 0 ? (total - done) / rate : 0;
    fprintf(stderr, "\r%d/%d images, %.1f/s, ETA %02d:%02d  ", done, total, rate, (int)eta / 60, (int)eta % 60);
    if (final) fputc('\n', stderr);
    fflush(stderr);
}

/* ---- the command ------------------------------------------------------------------ */

int cli_predict(int argc, char **argv)
{
    const char *model = NULL, *cam_out = NULL, *cls = NULL;
    paths imgs = { 0 };
    int json = 0, b64 = 0, stats = 0, rc = 0;
    double t_start = cli_now(), t_loaded = 0, t_first = 0, t_pred = 0;
    struct timespec wall_first = { 0, 0 };
    long topk = 3, threads = 1, jobs = 1;
    ec_session_options o = ec_session_options_default();
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        long v;
        int more = i + 1 < argc;
        if (cli_is_help(a)) {
            paths_free(&imgs);
            fputs(usage, stdout);
            return cli_stdout_close() ? 2 : 0;
        }
        if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--base64")) b64 = 1;
        else if (!strcmp(a, "--stats")) stats = 1;
        else if (!strcmp(a, "--top-k") && more) {
            if (cli_int(argv[++i], 1, 1 << 20, &topk)) { cli_err(NULL, "--top-k takes a positive number"); goto usage; }
        } else if (!strcmp(a, "--threads") && more) {
            if (cli_int(argv[++i], 1, 64, &threads)) { cli_err(NULL, "--threads takes 1..64"); goto usage; }
        } else if (!strcmp(a, "--jobs") && more) {
            if (cli_int(argv[++i], 1, 64, &jobs)) { cli_err(NULL, "--jobs takes 1..64"); goto usage; }
        } else if (!strcmp(a, "--from") && more) {
            if (add_list(&imgs, argv[++i])) { paths_free(&imgs); return 2; }
        } else if (!strcmp(a, "--cam") && more) { cam_out = argv[++i]; o.gradcam = 1; }
        else if (!strcmp(a, "--cam-layer") && more) { o.cam_layer = argv[++i]; o.gradcam = 1; }
        else if (!strcmp(a, "--cam-method") && more) { o.cam_method = argv[++i]; o.gradcam = 1; }
        else if (!strcmp(a, "--class") && more) { cls = argv[++i]; o.gradcam = 1; }
        else if (!strcmp(a, "--cam-score") && more) {
            const char *s = argv[++i];
            if (!strcmp(s, "prob")) o.cam_logit = 0;
            else if (!strcmp(s, "logit")) o.cam_logit = 1;
            else { cli_err(NULL, "--cam-score takes prob or logit"); goto usage; }
            o.gradcam = 1;
        } else if (!strcmp(a, "--resize") && more) {
            if (cli_filter("--resize", argv[++i], &o.resize)) goto usage;
        } else if (!strcmp(a, "--overlay-resize") && more) {
            if (cli_filter("--overlay-resize", argv[++i], &o.overlay_resize)) goto usage;
        } else if (!strcmp(a, "--max-arena-mb") && more) {
            if (cli_int(argv[++i], 1, 1 << 24, &v)) { cli_err(NULL, "--max-arena-mb takes a positive number"); goto usage; }
            o.max_arena_bytes = (int64_t)v << 20;
        } else if (!strcmp(a, "--max-pixels") && more) {
            if (cli_int(argv[++i], 1, 1L << 40, &v)) { cli_err(NULL, "--max-pixels takes a positive number"); goto usage; }
            o.max_pixels = v;
        } else if (a[0] == '-' && a[1]) { cli_err(NULL, "predict: unknown option %s", a); goto usage; }
        else if (!model) model = a;
        else if (is_dir(a)) {
            if (add_dir(&imgs, a)) { paths_free(&imgs); return 2; }
        } else if (paths_add(&imgs, a)) { cli_err(NULL, "out of memory"); paths_free(&imgs); return 2; }
    }
    if (!model || imgs.n == 0) {
        if (model && imgs.n == 0 && argc > 1) {
            cli_err(NULL, "no images to predict (the folders and lists given hold none)");
            paths_free(&imgs);
            return 2;
        }
        goto usage;
    }
    if (b64 && !json) { cli_err(NULL, "--base64 goes with --json"); goto usage; }
    if (b64) o.gradcam = 1;
    int cam_into_dir = cam_out && is_dir(cam_out);
    if (cam_out && imgs.n > 1 && !cam_into_dir) {
        cli_err(cam_out, "--cam with several images needs an existing directory");
        paths_free(&imgs);
        return 2;
    }
    o.threads = (int)threads;
    if (jobs > imgs.n) jobs = imgs.n;
    const int n_sessions = (int)jobs;

    ec_model *m = cli_load_model(model);
    if (!m) { paths_free(&imgs); return 2; }
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
            paths_free(&imgs);
            return 2;
        }
    }
    char **cam_paths = NULL;
    ec_session **sessions = calloc((size_t)n_sessions, sizeof *sessions);
    item *items = calloc((size_t)imgs.n, sizeof *items);
    int *order = malloc((size_t)k * sizeof *order);
    if (!sessions || !items || !order) {
        cli_err(NULL, "out of memory");
        rc = 2;
        goto out;
    }
    for (int j = 0; j < n_sessions; j++)
        if (ec_session_new(m, &o, &sessions[j]) != EC_OK) {
            cli_err(model, "%s", ec_last_error());
            rc = 2;
            goto out;
        }
    if (topk > k) topk = k;
    t_loaded = cli_now();
    if (cam_into_dir && (!(cam_paths = calloc((size_t)imgs.n, sizeof *cam_paths)) || overlay_names(cam_out, &imgs, cam_paths))) {
        cli_err(NULL, "out of memory");
        rc = 2;
        goto out;
    }
    run_opts ro = { m, cam_out, cam_paths, json, b64, (int)topk };
    const int show = imgs.n > 1 && isatty(STDERR_FILENO);
    int failed = 0, write_failed = 0, model_bad = 0, out_bad = 0;

    job_queue q = { &ro, &imgs, items, sessions, 0, 0, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER };
    pthread_t *tid = jobs > 1 ? calloc((size_t)jobs, sizeof *tid) : NULL;
    job_worker *wk = jobs > 1 ? calloc((size_t)jobs, sizeof *wk) : NULL;
    int started = 0;
    if (jobs > 1 && tid && wk)
        for (; started < jobs; started++) {
            wk[started] = (job_worker){ &q, started };
            if (pthread_create(&tid[started], NULL, job_main, &wk[started]) != 0) break;
        }
    if (jobs > 1 && started == 0) jobs = 1;   /* no thread could start: run here */

    /* Answers in input order: with jobs, wait for each in turn. */
    for (int i = 0; i < imgs.n; i++) {
        item *it = &items[i];
        if (jobs == 1) {
            if (model_bad) break;
            run_one(&ro, sessions[0], order, imgs.p[i], cam_paths ? cam_paths[i] : NULL, it);
            it->done = 1;
        } else {
            pthread_mutex_lock(&q.mu);
            while (!it->done && !(atomic_load(&q.stop) && atomic_load(&q.next) <= i)) pthread_cond_wait(&q.cv, &q.mu);
            pthread_mutex_unlock(&q.mu);
            if (!it->done) break;   /* stopped before this image was taken */
        }
        if (i == 0) t_pred = cli_now();
        if (it->err) {
            if (show) fputs("\r\033[K", stderr);
            fprintf(stderr, "%s\n", it->err);
        }
        failed |= it->failed;
        write_failed |= it->write_failed;
        if (it->model_bad) {
            model_bad = 1;
            break;
        }
        if (it->out.len && cli_emit(&it->out)) out_bad = 1;
        js_buf_free(&it->out);
        free(it->err);
        it->err = NULL;
        if (i == 0) {
            t_first = cli_now();
            clock_gettime(CLOCK_REALTIME, &wall_first);   /* for a cold-start clock outside the process */
        }
        if (show) progress(i + 1, imgs.n, t_loaded, i + 1 == imgs.n);
        if (out_bad) break;
    }
    atomic_store(&q.stop, 1);
    for (int j = 0; j < started; j++) pthread_join(tid[j], NULL);
    free(tid);
    free(wk);
    if (stats && !model_bad) {
        /* What a user of a small host wants to know: time to the first answer
         * (including the overlay) and the whole process's peak memory. */
        double t_end = cli_now();
        fprintf(stderr, "effcam: load %.1f ms, first image %.1f ms (decode + inference%s %.1f ms%s%.1f ms), "
                        "%d image%s in %.1f ms; peak RSS %.1f MiB\n",
                1e3 * (t_loaded - t_start), 1e3 * (t_first - t_loaded), o.gradcam ? " + grad-cam" : "",
                1e3 * (t_pred - t_loaded), cam_out ? ", overlay " : ", output ", 1e3 * (t_first - t_pred),
                imgs.n, imgs.n == 1 ? "" : "s", 1e3 * (t_end - t_loaded), cli_peak_rss_kib() / 1024.0);
        /* when the first image's answer and overlay were out (CLOCK_REALTIME, s):
         * bench/run.sh's cold start ends there, not after the process's teardown */
        fprintf(stderr, "effcam: first output at %lld.%09ld (seconds since the epoch)\n", (long long)wall_first.tv_sec,
                wall_first.tv_nsec);
    }
    if (out_bad || cli_stdout_close()) {
        if (out_bad) cli_err("stdout", "write error: %s", strerror(errno ? errno : EIO));
        rc = 2;
    } else {
        rc = write_failed || model_bad ? 2 : failed ? 1 : 0;
    }
out:
    for (int i = 0; cam_paths && i < imgs.n; i++) free(cam_paths[i]);
    free(cam_paths);
    if (items)
        for (int i = 0; i < imgs.n; i++) {
            js_buf_free(&items[i].out);
            free(items[i].err);
        }
    free(items);
    free(order);
    for (int j = 0; sessions && j < n_sessions; j++) ec_session_free(sessions[j]);
    free(sessions);
    ec_model_free(m);
    paths_free(&imgs);
    return rc;
usage:
    paths_free(&imgs);
    fputs(usage, stderr);
    return 2;
}
