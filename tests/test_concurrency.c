/* test_concurrency.c - one shared model, many sessions; long runs.
 *
 *   - 8 threads, one session each, on one ec_model: every thread's
 *     probabilities and Grad-CAM are bit-identical to a single-threaded run;
 *   - 1,000 predict + Grad-CAM calls through the library (tiny model): the
 *     process RSS after warm-up drifts by at most 1 MB.
 * The model is the tiny V2-S fixture converted in-process (fp16).
 */
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include "convert/cv.h"
#include "effcam.h"
#include "image/image.h"
#include "harness.h"

#define N_THREADS 8
#define N_IMAGES 3
#define ROUNDS 4

static const char *image_names[N_IMAGES] = { "gray_300.png", "skin_capture.jpg", "located_640x360.png" };

typedef struct {
    const ec_model *m;
    uint8_t *rgb[N_IMAGES];
    int w[N_IMAGES], h[N_IMAGES];
    float *ref_p[N_IMAGES], *ref_cam[N_IMAGES];
    int k, cam_n;
} shared_ctx;

typedef struct {
    shared_ctx *s;
    int threads;                 /* intra-session threads */
    int mismatches;
    ec_status st;
} worker;

static void *run_worker(void *arg)
{
    worker *wk = arg;
    shared_ctx *s = wk->s;
    ec_session_options o = ec_session_options_default();
    o.gradcam = 1;
    o.threads = wk->threads;
    ec_session *sess;
    if ((wk->st = ec_session_new(s->m, &o, &sess)) != EC_OK) return NULL;
    for (int r = 0; r < ROUNDS; r++)
        for (int i = 0; i < N_IMAGES; i++) {
            ec_result res;
            if ((wk->st = ec_session_predict_rgb(sess, s->rgb[i], s->w[i], s->h[i], &res)) != EC_OK) break;
            if (memcmp(res.probabilities, s->ref_p[i], (size_t)s->k * sizeof(float)) ||
                res.cam_height * res.cam_width != s->cam_n ||
                memcmp(res.cam, s->ref_cam[i], (size_t)s->cam_n * sizeof(float)))
                wk->mismatches++;
        }
    ec_session_free(sess);
    return NULL;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &v) == 1) break;
    if (f) fclose(f);
    return v;
}

int main(void)
{
    char path[1024], ecm[1024];
    snprintf(path, sizeof path, "%s/models/tiny_v2s_64.keras", t_local());
    snprintf(ecm, sizeof ecm, "%s/concurrency.ecm", t_tmp());
    cv_options opt = { 1, NULL, cv_limits_default() };
    cv_graph g;
    cv_keras *k;
    cv_err e;
    if (cv_keras_open(path, &opt, &g, &k, &e) || cv_ecm_write(&g, ecm, &e)) {
        t_fail("concurrency setup", "convert: %s", e.msg);
        return 1;
    }
    cv_keras_close(k);
    cv_graph_free(&g);

    shared_ctx s = { 0 };
    ec_model *m;
    if (ec_model_load(ecm, &m) != EC_OK) {
        t_fail("concurrency setup", "load: %s", ec_last_error());
        return 1;
    }
    s.m = m;
    s.k = ec_model_num_classes(m);
    for (int i = 0; i < N_IMAGES; i++) {
        snprintf(path, sizeof path, "%s/images/%s", t_local(), image_names[i]);
        if (ec_image_decode_file(path, 50000000, &s.rgb[i], &s.w[i], &s.h[i]) != EC_OK) {
            t_fail("concurrency setup", "decode %s: %s", path, ec_last_error());
            return 1;
        }
    }
    /* Reference: one session, one thread. */
    ec_session_options o = ec_session_options_default();
    o.gradcam = 1;
    ec_session *ref;
    if (ec_session_new(m, &o, &ref) != EC_OK) {
        t_fail("concurrency setup", "session: %s", ec_last_error());
        return 1;
    }
    for (int i = 0; i < N_IMAGES; i++) {
        ec_result r;
        if (ec_session_predict_rgb(ref, s.rgb[i], s.w[i], s.h[i], &r) != EC_OK || !r.cam) {
            t_fail("concurrency setup", "predict: %s", ec_last_error());
            return 1;
        }
        s.cam_n = r.cam_height * r.cam_width;
        s.ref_p[i] = malloc((size_t)s.k * sizeof(float));
        s.ref_cam[i] = malloc((size_t)s.cam_n * sizeof(float));
        memcpy(s.ref_p[i], r.probabilities, (size_t)s.k * sizeof(float));
        memcpy(s.ref_cam[i], r.cam, (size_t)s.cam_n * sizeof(float));
    }

    /* 8 threads x 1 session each; then 4 threads whose sessions use 2 workers. */
    for (int variant = 0; variant < 2; variant++) {
        int nt = variant ? 4 : N_THREADS;
        worker wk[N_THREADS];
        pthread_t th[N_THREADS];
        for (int t = 0; t < nt; t++) {
            wk[t] = (worker){ &s, variant ? 2 : 1, 0, EC_OK };
            pthread_create(&th[t], NULL, run_worker, &wk[t]);
        }
        int bad = 0, err = 0;
        for (int t = 0; t < nt; t++) {
            pthread_join(th[t], NULL);
            bad += wk[t].mismatches;
            err |= wk[t].st != EC_OK;
        }
        char name[128];
        snprintf(name, sizeof name, "%d threads x 1 session (%d worker%s each) bit-identical to 1 thread", nt,
                 variant ? 2 : 1, variant ? "s" : "");
        T_CHECK(name, !err && bad == 0, "%d of %d results differ, error: %s", bad, nt * ROUNDS * N_IMAGES,
                err ? "yes" : "no");
    }

    /* Long run: RSS after warm-up must stay flat. */
    long r0 = 0, r1 = 0;
    int fails = 0, iters = atoi(t_env("EC_LONG_ITERS", "1000"));
    if (iters < 200) iters = 200;
    for (int it = 0; it < iters; it++) {
        ec_result r;
        int i = it % N_IMAGES;
        if (ec_session_predict_rgb(ref, s.rgb[i], s.w[i], s.h[i], &r) != EC_OK) fails++;
        if (it == 99) r0 = rss_kib();
    }
    r1 = rss_kib();
    char name[160];
    snprintf(name, sizeof name, "%d predict + grad-cam calls: RSS drift %ld KiB after warm-up (limit 1024)", iters,
             r1 - r0);
    T_CHECK(name, fails == 0 && r0 > 0 && r1 - r0 <= 1024, "RSS %ld -> %ld KiB, %d failed calls", r0, r1, fails);

    ec_session_free(ref);
    for (int i = 0; i < N_IMAGES; i++) {
        free(s.rgb[i]);
        free(s.ref_p[i]);
        free(s.ref_cam[i]);
    }
    ec_model_free(m);
    unlink(ecm);
    return t_failed;
}
