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

/* Pillow's resampling filters (docs/semantics.md 3), reproduced bit for bit. */
typedef enum {
    EC_RESIZE_NEAREST,
    EC_RESIZE_BOX,
    EC_RESIZE_BILINEAR,
    EC_RESIZE_HAMMING,
    EC_RESIZE_BICUBIC,
    EC_RESIZE_LANCZOS
} ec_resize_filter;

typedef struct {
    int threads;             /* worker threads for this session (default 1) */
    int gradcam;             /* compute the Grad-CAM heatmap (pins the values it needs) */
    int cam_class;           /* class to explain, -1 = argmax (default) */
    int cam_logit;           /* 1: gradient of the logit instead of the probability */
    const char *cam_layer;   /* the layer to explain: any layer with a 4-D output (ec_layer_info.cam_target),
                              * or "input" (the gradient w.r.t. the model input: a saliency map);
                              * NULL = the app's choice (ec_model_gradcam_layer) */
    const char *cam_method;  /* "gradcam" (NULL: the app's), "gradcampp", "xgradcam", "hirescam",
                              * "layercam" or "eigencam" (case-insensitive) */
    int64_t max_pixels;      /* largest decoded image accepted (default 50,000,000) */
    ec_resize_filter resize;          /* the model input's filter (default LANCZOS, as the app) */
    ec_resize_filter overlay_resize;  /* the overlay base's filter (default BICUBIC, as the app) */
    int64_t max_arena_bytes; /* largest activation arena accepted, Grad-CAM included
                              * (default 1 GiB); larger models fail ec_session_new
                              * with EC_ERR_LIMIT "model needs N MiB of activations" */
    int64_t cam_keep_bytes;  /* a deep cam_layer: forward values its backward may keep instead of
                              * recomputing their blocks (default 11 MiB: EfficientNetV2-S's stem
                              * target keeps stage 3 and block2b, ~6% faster, +5 MiB of RSS);
                              * 0 recomputes every block that can be */
} ec_session_options;

typedef struct {
    int num_classes;
    const float *probabilities;  /* [num_classes], model order */
    int top_class;
    int cam_height, cam_width;
    const float *cam;            /* [cam_height * cam_width] in [0, 1], or NULL */
    const char *cam_layer;       /* the layer explained (its Keras name), NULL without a heatmap */
    const char *cam_method;      /* "gradcam", ... */
    int cam_class;               /* the class explained */
    int cam_logit;               /* 1: the gradient of its logit, 0: of its probability */
    int input_height, input_width;
    const uint8_t *input_rgb;    /* the resized uint8 tensor the model saw, [h * w * 3] */
} ec_result;                     /* valid until the session's next call */

typedef struct {
    const char *name;            /* Keras layer name */
    const char *op;              /* "conv2d", "dwconv2d", "batchnorm", ... */
    int out_h, out_w, out_c;
    int64_t params;              /* stored weight elements of this layer */
    int cam_target;              /* 1: a valid cam_layer (a 4-D output the model output depends on) */
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
/* 1 if the output is a softmax (probabilities), 0 if it is raw scores. */
int ec_model_output_is_probability(const ec_model *m);

/* ---- session -------------------------------------------------------------- */
ec_session_options ec_session_options_default(void);
ec_status ec_session_new(const ec_model *m, const ec_session_options *opt, ec_session **out);
void ec_session_free(ec_session *s);
/* The CAM method of the following predicts (as cam_method above): cheap, the
 * session's plan serves every method. EC_ERR_ARG names the valid ones. */
ec_status ec_session_set_cam_method(ec_session *s, const char *method);
ec_status ec_session_predict_file(ec_session *s, const char *image_path, ec_result *out);
/* Changes the model input's filter for the following predicts. */
ec_status ec_session_set_resize(ec_session *s, ec_resize_filter filter);
/* An encoded image (JPEG, PNG, ...) held in memory, e.g. an upload. */
ec_status ec_session_predict_encoded(ec_session *s, const void *data, size_t len, ec_result *out);
ec_status ec_session_predict_rgb(ec_session *s, const uint8_t *rgb, int width, int height,
                                 ec_result *out);
/* The app's overlay of the last result as a PNG: *png malloc'd (free() it). */
ec_status ec_session_overlay_png(ec_session *s, uint8_t **png, size_t *len);
/* The same written to png_path atomically (never a partial file; an existing
 * target that is not a regular file is refused). */
ec_status ec_session_write_overlay(ec_session *s, const char *png_path);
size_t ec_session_arena_bytes(const ec_session *s);     /* planned activation arena */
size_t ec_session_pinned_bytes(const ec_session *s);    /* of which pinned for Grad-CAM */
size_t ec_session_scratch_bytes(const ec_session *s);   /* im2col / widening scratch */
/* The memory plan, one line per buffer plus a time x memory chart: *text
 * malloc'd (free() it). */
ec_status ec_session_plan_text(const ec_session *s, char **text);

/* ---- profiling ------------------------------------------------------------ */
typedef struct {
    const char *name;            /* the step's layer, "+bn" / "+act" for layers fused into it */
    const char *op;              /* "conv1x1", "convKxK", "wino3x3", "dwconv2d", "dense", "add", ... */
    int out_h, out_w, out_c;
    int gemm_m, gemm_n, gemm_k;  /* conv/dense as a GEMM (the direct form), else 0 */
    double flops;                /* 2 x multiply-adds of the direct form (conv, dwconv, dense), else 0 */
    double bytes;                /* activation bytes read and written */
    double seconds;              /* summed over the predicts since ec_session_profile_start */
} ec_profile_step;

typedef struct {
    int n_steps;
    const ec_profile_step *steps; /* [n_steps], the forward pass in order */
    int runs;                    /* predicts measured */
    double input_seconds;        /* resize + conversion to float */
    double backward_seconds;     /* the explanation's backward pass and heatmap */
    double total_seconds;        /* whole predicts */
} ec_profile;

/* Starts (or restarts, from zero) timing every step of the following predicts;
 * a session not profiled reads no clock. */
ec_status ec_session_profile_start(ec_session *s);
void ec_session_profile_stop(ec_session *s);
/* What was measured since the start; valid until the next call on s. */
ec_status ec_session_profile_get(const ec_session *s, ec_profile *out);

/* ---- images --------------------------------------------------------------- */
/* An image file decoded as the app decodes it (PIL's Image.open + convert("RGB")):
 * *rgb malloc'd, (*height) x (*width) x 3 (free() it). */
ec_status ec_image_load(const char *path, int64_t max_pixels, uint8_t **rgb, int *width, int *height);
/* The exact uint8 tensor the model sees for an image file: decoded as the app
 * decodes it and resized to width x height with the filter (streamed: a large
 * photo is never held whole); rgb holds height * width * 3. */
ec_status ec_image_load_resized(const char *path, int width, int height, ec_resize_filter filter,
                                int64_t max_pixels, uint8_t *rgb);
/* "nearest", "box", "bilinear", "hamming", "bicubic", "lanczos" (any case). */
ec_status ec_resize_filter_parse(const char *name, ec_resize_filter *out);
const char *ec_resize_filter_name(ec_resize_filter filter);
/* rgb (height * width * 3) as a binary PPM, written atomically. */
ec_status ec_image_save_ppm(const char *path, const uint8_t *rgb, int width, int height);

/* ---- the machine ---------------------------------------------------------- */
typedef struct {
    const char *kernels;         /* the kernel family in use: "avx512", "avx2" or "scalar" */
    const char *blas_core;       /* OpenBLAS's core type (its kernels for the CPU fallback) */
    const char *blas_config;     /* OpenBLAS's build configuration */
} ec_backend_info;
void ec_backend(ec_backend_info *out);

/* ---- errors --------------------------------------------------------------- */
const char *ec_status_str(ec_status st);
const char *ec_last_error(void);

#ifdef __cplusplus
}
#endif
#endif
