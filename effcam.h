/* effcam.h - EfficientNet inference + Grad-CAM from a converted Keras model.
 *
 *   ec_model *m;  ec_session *s;  ec_result r;
 *   if (ec_model_load("model.ecm", &m) != EC_OK) { fprintf(stderr, "%s\n", ec_last_error()); return 1; }
 *   ec_session_options o = ec_session_options_default();
 *   o.gradcam = 1;
 *   if (ec_session_new(m, &o, &s) != EC_OK) { ... }
 *   if (ec_session_predict_file(s, "photo.jpg", &r) == EC_OK)
 *       printf("%s %.2f%%\n", ec_model_label(m, r.top_class), 100 * r.probabilities[r.top_class]);
 *   ec_session_write_overlay(s, "photo.cam.png");
 *   ec_session_free(s);  ec_model_free(m);
 *
 * The model is immutable after load and may be shared by threads; a session (its
 * activation arena and scratch) belongs to one thread at a time. The library never
 * prints or exits: every fallible call returns an ec_status, and ec_last_error()
 * holds one line of detail for the calling thread.
 */
#ifndef EFFCAM_H
#define EFFCAM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EFFCAM_VERSION "0.1.0"

typedef enum {
    EC_OK = 0,
    EC_ERR_ARG = 1,          /* bad argument (NULL, out of range, wrong size) */
    EC_ERR_IO = 2,           /* cannot open / read / write a file */
    EC_ERR_FORMAT = 3,       /* model file corrupt, truncated or not an .ecm */
    EC_ERR_UNSUPPORTED = 4,  /* valid but not supported (op, version, image format) */
    EC_ERR_IMAGE = 5,        /* image cannot be decoded */
    EC_ERR_LIMIT = 6,        /* a documented limit was exceeded */
    EC_ERR_NOMEM = 7,        /* allocation failed */
    EC_ERR_STATE = 8,        /* call out of order (e.g. overlay before predict) */
    EC_ERR_INTERNAL = 9
} ec_status;

typedef struct ec_model ec_model;
typedef struct ec_session ec_session;

typedef struct {
    int threads;             /* worker threads for this session (default 1) */
    int gradcam;             /* compute the Grad-CAM heatmap (pins the values it needs) */
    int cam_class;           /* class to explain, -1 = argmax (default) */
    int cam_logit;           /* 1: gradient of the logit instead of the probability */
    const char *cam_layer;   /* target layer name, NULL = the app's choice */
    int64_t max_pixels;      /* largest decoded image accepted (default 50,000,000) */
    int64_t max_arena_bytes; /* largest activation arena accepted, Grad-CAM included
                              * (default 1 GiB); larger models fail ec_session_new
                              * with EC_ERR_LIMIT "model needs N MiB of activations" */
    int keep_all;            /* debug/tests: keep every layer's output (no reuse, no fusion) */
} ec_session_options;

typedef struct {
    int num_classes;
    const float *probabilities;  /* [num_classes], model order */
    int top_class;
    int cam_height, cam_width;
    const float *cam;            /* [cam_height * cam_width] in [0, 1], or NULL */
    int input_height, input_width;
    const uint8_t *input_rgb;    /* the resized uint8 tensor the model saw, [h * w * 3] */
} ec_result;                     /* valid until the session's next call */

typedef struct {
    const char *name;            /* Keras layer name */
    const char *op;              /* "conv2d", "dwconv2d", "batchnorm", ... */
    int out_h, out_w, out_c;
    int64_t params;              /* stored weight elements of this layer */
} ec_layer_info;

/* ---- model ---------------------------------------------------------------- */
/* Maps the file and validates its structure (header, tables, every offset and
 * shape). The CRC-32 over the weights is checked as the first predict reads
 * them: a corrupt file fails that call and every later one with EC_ERR_FORMAT
 * ("checksum mismatch"). ec_model_verify checks the whole file now instead
 * (it reads all of it; EC_OK at once if already checked). */
ec_status ec_model_load(const char *path, ec_model **out);
ec_status ec_model_verify(const ec_model *m);
void ec_model_free(ec_model *m);
int ec_model_num_classes(const ec_model *m);
const char *ec_model_label(const ec_model *m, int index);        /* NULL if out of range */
void ec_model_input_size(const ec_model *m, int *h, int *w);
int ec_model_num_layers(const ec_model *m);
ec_status ec_model_layer(const ec_model *m, int index, ec_layer_info *out);
int64_t ec_model_params(const ec_model *m);                      /* Keras count_params() */
int64_t ec_model_weight_bytes(const ec_model *m, int dtype_f16); /* stored bytes by dtype */
const char *ec_model_gradcam_layer(const ec_model *m);           /* NULL if none */

/* ---- session -------------------------------------------------------------- */
ec_session_options ec_session_options_default(void);
ec_status ec_session_new(const ec_model *m, const ec_session_options *opt, ec_session **out);
void ec_session_free(ec_session *s);
ec_status ec_session_predict_file(ec_session *s, const char *image_path, ec_result *out);
ec_status ec_session_predict_rgb(ec_session *s, const uint8_t *rgb, int width, int height,
                                 ec_result *out);
ec_status ec_session_write_overlay(ec_session *s, const char *png_path);
size_t ec_session_arena_bytes(const ec_session *s);     /* planned activation arena */
size_t ec_session_pinned_bytes(const ec_session *s);    /* of which pinned for Grad-CAM */
size_t ec_session_scratch_bytes(const ec_session *s);   /* im2col / widening scratch */
/* keep_all sessions only: a layer's output after the last predict, NULL if unknown. */
const float *ec_session_layer_output(const ec_session *s, const char *layer, int *h, int *w, int *c);

/* ---- errors --------------------------------------------------------------- */
const char *ec_status_str(ec_status st);
const char *ec_last_error(void);

#ifdef __cplusplus
}
#endif
#endif
