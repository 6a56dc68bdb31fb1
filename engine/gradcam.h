/* gradcam.h - the explanations' backward pass (gradcam.c): from the class
 * score back to the target layer, then the heatmap (docs/semantics.md 4 and 6). */
#ifndef EFFCAM_GRADCAM_H
#define EFFCAM_GRADCAM_H

#include "engine.h"
#include "ops.h"

typedef struct {
    int target;                   /* conv/dwconv node id */
    int A;                        /* its output value */
    int n_path;
    int *path;                    /* [n_path] node ids between A and the output, forward order */
    unsigned char *on;            /* [n_values] 1 = carries a gradient */
    unsigned char *pin;           /* [n_values] 1 = forward value the backward reads */
    int *gbuf;                    /* [n_values] gradient buffer id or -1 */
    int n_gbufs;
    ec_plan_buf *gbufs;
    size_t grad_bytes;            /* the gradient buffers placed alone; a session places
                                   * them in its activation arena (ec_plan_append_after) */
    size_t tmp_floats;            /* 2 x the largest value on the path: temporaries */
    unsigned char *written;       /* [n_values] per run: gradient holds data */
} ec_gradcam_plan;

/* Finds the target (opt->cam_layer or the model's choice), the path to the output,
 * checks every op on it and lists the values to pin. */
ec_status ec_gradcam_prepare(const ec_model *m, const ec_session_options *opt, ec_gradcam_plan *g);
void ec_gradcam_plan_free(ec_gradcam_plan *g);
/* After a forward pass in ex (which must carry ex->grad and ex->tmp as g
 * planned them): backward from the class score to A, then the heatmap into
 * cam [A.h * A.w]. */
ec_status ec_gradcam_run(const ec_exec *ex, const ec_gradcam_plan *g, int cls, int logit, float *cam);

#endif
