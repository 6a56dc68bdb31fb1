/* effnet.h - Keras EfficientNet (V1 B0..B7) and EfficientNetV2 (B0..B3, S, M, L)
 * architecture tables, and a synthesizer that builds such a model in the
 * converter's graph IR with deterministic random weights.
 *
 *   cv_graph g;  cv_err e;
 *   if (ec_synth_build("efficientnetv2-s", 300, 7, 42, 1, &g, &e) < 0 ||
 *       cv_ecm_write(&g, "v2s.ecm", &e) < 0)
 *       fprintf(stderr, "synth: %s\n", e.msg);
 *   cv_graph_free(&g);
 *
 * The graph is what Keras builds for Sequential([base, GAP, Dropout, Dense(K,
 * softmax)]) with base = EfficientNet*(include_top=False, weights=None): one IR
 * node per Keras layer, Keras's layer and variable names, Keras's variable order,
 * SAME padding resolved into pt/pb/pl/pr. Weights are not held in memory: every
 * tensor has data == NULL and g->load regenerates it from (seed, tensor index),
 * except the BatchNormalization moving statistics (a few floats per channel):
 * like a trained model's, they are calibrated, by running the model on synthetic
 * photos at 128x128 (~2 s for V2-S, ~8 s for V2-L), so that activations keep a
 * sane scale through 100+ layers and the softmax is neither flat nor one-hot.
 */
#ifndef EFFCAM_MODELS_EFFNET_H
#define EFFCAM_MODELS_EFFNET_H

#include <stdint.h>

#include "../convert/cv.h"

/* ---- architecture tables --------------------------------------------------- */

/* One stage of a block table (Keras DEFAULT_BLOCKS_ARGS entry). */
typedef struct {
    int kernel;          /* depthwise (MBConv) or expand/project (fused) kernel size */
    int repeats;         /* before depth scaling */
    int filters_in, filters_out;   /* before width scaling */
    int expand;          /* expand ratio */
    int stride;          /* of the stage's first block */
    int se_pct;          /* squeeze-excite ratio in percent: 0 or 25 */
    int fused;           /* V2 conv_type 1: FusedMBConv */
} ec_effnet_stage;

typedef enum {
    EC_FRONT_V1,         /* Rescaling(1/255) + Normalization with variables (mean, variance, count) */
    EC_FRONT_V2_B,       /* Rescaling(1/255) + Normalization with mean/variance from config */
    EC_FRONT_V2          /* Rescaling(1/128, offset -1) */
} ec_effnet_front;

typedef struct {
    const char *name;    /* "efficientnetv2-s", "efficientnet-b0", ... */
    int v2;              /* 1: EfficientNetV2 (efficientnet_v2.py), 0: V1 (efficientnet.py) */
    double width, depth; /* width / depth coefficients, as Keras's presets spell them */
    int default_size;    /* Keras default_size (input is default_size x default_size x 3) */
    double dropout;      /* Keras's top dropout rate (identity at inference) */
    ec_effnet_front front;
    const ec_effnet_stage *stages;
    int n_stages;
} ec_effnet_arch;

/* The table entry for an architecture name, or NULL. */
const ec_effnet_arch *ec_effnet_find(const char *name);

/* Keras round_filters / round_repeats for an architecture family (v2 selects the
 * EfficientNetV2 variant with min_depth 8; V1 adds the "not below 90%" rule). */
int ec_effnet_round_filters(int v2, int filters, double width);
int ec_effnet_round_repeats(int repeats, double depth);

/* ---- synthesizer ------------------------------------------------------------ */

/* NULL-terminated list of the architecture names ec_synth_build accepts. */
const char *const *ec_synth_arch_names(void);

/* The architecture's Keras default input size (224 for efficientnetv2-b0, 384
 * for -s, ...), or 0 for an unknown name. */
int ec_synth_default_size(const char *arch);

typedef struct {
    int height, width;   /* input size; 0 = the architecture's default size */
    int classes;         /* units of the final Dense (softmax), >= 1 */
    uint64_t seed;       /* weights are a pure function of (seed, tensor index) */
    int f16;             /* to_f16 on Conv2D/Dense kernels but the ends (cv_graph_keep_f32_ends) */
    int keras_top;       /* 0: the app's head (gap, head_dropout, predictions);
                            1: Keras's include_top=True names (avg_pool, top_dropout, predictions) */
    double width_coef;   /* 0 = the architecture's; else overrides (Keras's scaled test models) */
    double depth_coef;   /* 0 = the architecture's; else overrides */
    int skip_calibration;/* 1: random BN moving statistics instead of calibrated ones
                            (fast; for shape-only uses such as counting params) */
} ec_synth_options;

/* Options with the defaults above: default size, 7 classes, seed 0, f32, app head. */
ec_synth_options ec_synth_options_default(void);

/* Builds the model into g (initialized here; previous content is not freed).
 * On failure returns -1 with a message in e and leaves g empty (cv_graph_free
 * is still safe). Input sizes below Keras's minimum of 32 are refused. */
int ec_synth_build_ex(const char *arch, const ec_synth_options *opt, cv_graph *g, cv_err *e);

/* ec_synth_build_ex with size x size input, the app's head, the given classes,
 * seed and kernel dtype. size 0 = the architecture's default size. */
int ec_synth_build(const char *arch, int size, int classes, uint64_t seed, int f16,
                   cv_graph *g, cv_err *e);

#endif
