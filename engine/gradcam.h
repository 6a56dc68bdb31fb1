/* gradcam.h - the explanations' backward pass: from the class score back to
 * any target layer (or the model input), then the CAM heatmap (semantics.md
 * sections 4 and 6).
 *
 * backward.c plans it at session creation: the target, the nodes between it
 * and the output, what the backward reads and where it comes from (kept from
 * the forward pass, or recomputed a block at a time from a saved block input),
 * the backward steps in order and every buffer they use (gradients,
 * recomputed values, temporaries) with its lifetime, for the session's arena.
 * gradcam.c runs the plan after each forward pass and computes the map
 * (engine/cam.c). */
#ifndef EFFCAM_GRADCAM_H
#define EFFCAM_GRADCAM_H

#include "cam.h"
#include "engine.h"
#include "ops.h"

/* One backward step. Times: step i runs at time i + 1; 0 = the seed (the
 * class score's gradient), n_steps + 1 = the heatmap. */
enum {
    EC_BW_FWD = 1,                /* a forward step again (recompute), into backward buffers */
    EC_BW_ACT = 2,                /* y = act(z): a node's own activation over its recomputed pre-activation */
    EC_BW_NODE = 3                /* a node's backward: gradients of its inputs from its output's */
};

typedef struct {
    int kind;
    int node;
    ec_step fwd;                  /* FWD: the step (out may be a pre-activation id >= n_values) */
    int z;                        /* ACT: the pre-activation id read (the output is the node's) */
    int fold;                     /* NODE: a BN node folded in (the one before an activation, or after
                                   * a conv/dwconv: its scale), -1 */
    int dy;                       /* NODE: the value whose gradient comes in */
    int dx[ECM_MAX_IN];           /* NODE: per input, the value whose gradient it writes, -1 = none */
    unsigned char acc[ECM_MAX_IN];/* NODE: 1 = add into that gradient (a later consumer's share) */
    int tmp;                      /* buffer id of the step's temporary, or -1 */
    size_t tmp_floats;
} ec_bw_step;

/* The default of ec_session_options.cam_keep_bytes: forward values a session
 * may pin beyond its checkpoints, to skip recomputing blocks (backward.c,
 * ec_bw_keep). EfficientNetV2-S at 300 px, stem target: 9.9 MiB kept (stage 3,
 * block2b, the head), its Grad-CAM 3.13x -> 2.94x a plain predict; peak RSS
 * 71.7 -> 76.7 MiB (its target is 80 MiB). */
#define EC_BW_KEEP_BYTES (11u << 20)

typedef struct {
    int target;                   /* node id, -1 = the model input */
    int A;                        /* the target value */
    const char *name;             /* its name: the Keras layer, or "input" */
    int n_ids;                    /* value ids, then pre-activation ids: n_values + pre-activations */
    int *virt_of;                 /* [n_nodes] pre-activation id of a conv/dwconv/dense with its own act, -1 */
    unsigned char *on;            /* [n_values] 1 = carries a gradient (depends on A, reaches the output) */
    unsigned char *pin;           /* [n_values] forward values the backward reads (kept or checkpoints) */
    int *pin_last;                /* [n_values] time of the last backward read of a pinned value */
    int n_steps;
    ec_bw_step *steps;
    int n_bufs;
    ec_plan_buf *bufs;            /* gradients, recomputed values, temporaries; first/last in backward time */
    int *gbuf;                    /* [n_values] gradient buffer, -1 (several values may share one: in place) */
    int *rbuf;                    /* [n_ids] recomputed value's buffer, -1 */
    int *alias;                   /* [n_ids] a recomputed identity/reshape: the id whose buffer it reads, -1 */
    size_t col_floats;            /* per-thread scratch the backward ops need (ex->col) */
    size_t wide_floats;           /* ex->wide they need */
    int n_groups, n_recompute;    /* figures: blocks, of which recomputed */
    size_t checkpoint_bytes;      /* pinned values that are recompute checkpoints */
    size_t kept_bytes;            /* pinned values read as they are (A excluded) */
    /* bound to a session's arena (ec_gradcam_bind) */
    float **gptr;                 /* [n_values] gradient, or NULL */
    float **bval;                 /* [n_ids] what the backward reads: pinned forward value or recomputed */
    float **tptr;                 /* [n_steps] the step's temporary, or NULL */
} ec_gradcam_plan;

/* The target (opt->cam_layer: a layer with a 4-D output, or "input"; NULL:
 * the model's choice) and everything that does not depend on the forward plan:
 * which values to pin (g->pin). keep_all: every forward value is kept, nothing
 * is recomputed. */
ec_status ec_gradcam_prepare(const ec_model *m, const ec_session_options *opt, int keep_all, ec_gradcam_plan *g);
/* After the forward plan p was built with g->pin: the recompute steps' conv
 * algorithms (as the forward runs them), the backward buffers, the scratch. */
ec_status ec_gradcam_finish(ec_gradcam_plan *g, const ec_model *m, const ec_plan *p);
/* Points the plan at a session's arena: bufs are g->bufs as placed there,
 * vptr the forward values. */
ec_status ec_gradcam_bind(ec_gradcam_plan *g, const ec_model *m, unsigned char *arena, const ec_plan_buf *bufs,
                          float *const *vptr);
void ec_gradcam_plan_free(ec_gradcam_plan *g);

/* After a forward pass in ex: the backward from the class score to A (skipped
 * for eigencam, which needs no gradient), then method's heatmap, normalized,
 * into cam [A.h * A.w]. info (may be NULL): EigenCAM's conditioning; ws: the
 * map's workspace, ec_cam_work_doubles(A.h * A.w, A.c) doubles. */
ec_status ec_gradcam_run(const ec_exec *ex, const ec_gradcam_plan *g, int cls, int logit, ec_cam_method method,
                         float *cam, ec_cam_eigen_info *info, double *ws);

#endif
