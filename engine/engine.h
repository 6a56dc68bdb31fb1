/* engine.h - the engine's internals: the loaded model (model.c: load +
 * validate) and the memory plan (plan.c: lifetimes, fusion, arena placement).
 * ops.h (operators), pool.h (threads), gradcam.h (the backward pass) and
 * internal.h (the session's hooks for tests and profiling) build on it.
 * Not installed. */
#ifndef EFFCAM_ENGINE_H
#define EFFCAM_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../effcam.h"
#include "ecm_format.h"

/* ---- limits (hostile files) ------------------------------------------------ */
/* The format's limits (ecm_format.h, shared with the converter). */
#define EC_MAX_NODES        ECM_MAX_NODES
#define EC_MAX_VALUES       (EC_MAX_NODES + 1)   /* every value but the input has a producer */
#define EC_MAX_TENSORS      (ECM_MAX_W * EC_MAX_NODES)
#define EC_MAX_LABELS       ECM_MAX_LABELS
#define EC_MAX_DIM          ECM_MAX_DIM           /* any h, w, c or kernel extent */
#define EC_MAX_TENSOR_ELEMS ECM_MAX_TENSOR_ELEMS  /* exclusive */
#define EC_MAX_VALUE_ELEMS  ECM_MAX_VALUE_ELEMS   /* one activation: 1 GiB of float32 */
#define EC_ARENA_ALIGN      64                    /* every planned buffer */

/* ---- the loaded model ------------------------------------------------------ */

typedef struct {
    const char *name;
    int h, w, c;                  /* the value is 1 x h x w x c, NHWC */
} ec_value;

typedef struct {
    const char *name;             /* Keras variable path */
    uint32_t dtype, flags;        /* ECM_DT_*, ECM_TF_* */
    int rank;
    int dims[4];                  /* unused = 1 */
    int64_t elems;
    const void *data;             /* into the map: float[elems] or uint16_t[elems] (fp16) */
} ec_tensor;

typedef struct {
    int op, act;                  /* ECM_OP_*, ECM_ACT_* */
    const char *name;             /* Keras layer name */
    int out;                      /* value id */
    int n_in, in[ECM_MAX_IN];     /* value ids */
    int w[ECM_MAX_W];             /* tensor ids, -1 = none */
    int kh, kw, sh, sw, pt, pb, pl, pr, mult;
    float f0, f1;
    uint32_t flags;
    /* Derived at load, carved from ec_model.derived (or pointing into the map):
     *   conv2d/dwconv2d/dense: bias [cout] or NULL
     *   batchnorm:  scale [c] = gamma / sqrt(var + eps), shift [c] = beta - mean * scale,
     *               fshift [c] = shift + bias * scale when the input comes from a
     *               conv/dense with a bias (used when the two are fused), else NULL
     *   normalize:  scale [c] = 1 / max(sqrt(var), 1e-7), shift [c] = mean */
    const float *bias, *scale, *shift, *fshift;
} ec_node;

struct ec_model {
    const unsigned char *base;    /* the file's bytes */
    size_t size;
    int mapped;                   /* base is our mmap (munmap at free) */
    int n_values, n_nodes, n_tensors, n_labels;
    ec_value *values;             /* [n_values] */
    ec_node *nodes;               /* [n_nodes], execution order */
    ec_tensor *tensors;           /* [n_tensors] */
    const char **labels;          /* [n_labels] */
    int *producer;                /* [n_values] node id, -1 for the model input */
    int *n_uses;                  /* [n_values] how many node inputs read the value */
    int input, output;            /* value ids */
    int gradcam_node;             /* node id or -1 */
    int64_t params;               /* elements of non-derived tensors */
    int64_t max_f16_elems;        /* largest float16 tensor: the session's widening buffer */
    void *tables;                 /* one allocation: the arrays above */
    float *derived;               /* one allocation: every derived vector */
    int *file_order;              /* [n_tensors] tensor ids by offset (in tables) */
    struct ec_crc_check *crc;     /* the file checksum, checked as the tensors are first used */
    char *path;                   /* "PATH: " for messages, or NULL (from memory) */
};

/* The file's CRC-32 is checked lazily: load reads only the header and tables
 * (and the few tensors folded at load), so a cold start streams the weights
 * once, for the first forward pass, not twice. That pass checks each step's
 * tensors before it uses them (ec_model_check_tensors), while they are on the
 * way into the cache anyway: their CRC, and that no value is NaN or infinite;
 * ec_model_check_rest then checks whatever was not used, combines the pieces
 * and compares with the stored CRC. A mismatch or a non-finite weight fails
 * that predict call and every later one (EC_ERR_FORMAT, "checksum mismatch" /
 * "element N is not finite"); no result computed from a corrupt file is ever
 * returned. Thread-safe: the
 * state is per model, set with atomics; racing sessions compute the same
 * values. ec_model_verify (effcam.h) runs the whole check at once. */
void ec_model_check_tensors(const ec_model *m, const ec_node *n);
ec_status ec_model_check_rest(const ec_model *m);
/* 1: the checksum matched and every weight is finite; -1: checksum mismatch;
 * -2: a weight is NaN or infinite; 0: not yet known. */
int ec_model_checked(const ec_model *m);

/* Validates and wraps a whole .ecm image held in memory (not copied: buf must
 * outlive the model). ec_model_load = open + mmap + this. */
ec_status ec_model_from_memory(const void *buf, size_t size, ec_model **out);
const char *ec_op_name(int op);
int ec_model_find_node(const ec_model *m, const char *name);   /* last node of that name, or -1 */
/* 1 if layer (node) `node` can be explained (backward.c): a 4-D output that the
 * model's output depends on; else 0 and, if why is not NULL, the reason. */
int ec_model_cam_target(const ec_model *m, int node, char *why, size_t cap);

/* ---- the memory plan (plan.c) ------------------------------------------------
 * Times: 0 = the input is written, step k runs at time k + 1, n_steps + 1 = after
 * the forward pass (Grad-CAM). A buffer is live over [first, last], inclusive. */

typedef struct {
    size_t bytes;                 /* EC_ARENA_ALIGN multiple */
    int first, last;
    int pinned;                   /* kept to the end for Grad-CAM */
    size_t offset;                /* placement result */
} ec_plan_buf;

/* Largest-first placement into the smallest fitting gap among the buffers
 * already placed whose lifetimes overlap (TFLM's greedy planner). */
ec_status ec_plan_place(ec_plan_buf *b, int n, size_t *arena_bytes);
/* 0 if no two buffers with overlapping lifetimes overlap in memory; -1 and a
 * description of the first clash in msg otherwise. */
int ec_plan_check(const ec_plan_buf *b, int n, size_t arena_bytes, char *msg, size_t cap);
/* One line per buffer plus a time x memory chart; names may be NULL. */
void ec_plan_print(FILE *f, const ec_plan_buf *b, int n, const char *const *names);

typedef struct {
    int node;                     /* the main node */
    int bn, actn;                 /* fused batchnorm / activation nodes, -1 if none */
    int out;                      /* the value this step writes */
    int act;                      /* epilogue activation, never softmax */
    int softmax;                  /* then softmax over channels (a softmax act of node) */
    const float *scale, *shift;   /* epilogue [cout] each, may be NULL */
    int inplace;                  /* out shares the buffer of input slot inplace_in */
    int inplace_in;
    int tile_rows;                /* k x k conv: im2col rows per tile, 0 = 1x1 GEMM */
    int wino_tiles;               /* 3x3 stride-1 conv: Winograd tiles per task, 0 = not Winograd */
    int wino_f43;                 /* ... as F(4x4, 3x3) (4x4 tiles), else F(2x2, 3x3) */
    /* SE folds (plan.c; all 0 in steps built elsewhere, e.g. the backward's recompute):
     * squeeze: dwconv: also its output's row sums into ex->col (the next step, the
     * GAP, takes their mean); GAP: the mean of those row sums instead of a pass over x.
     * excite_folded: this MUL step does nothing: its output x * s is never written;
     * se_fold: this 1x1 conv reads se_x (the MUL's x) and scales its kernel's rows by
     * se_s (the MUL's 1x1xC excite) instead of reading the MUL's output. */
    int squeeze;
    int excite_folded;
    int se_fold, se_x, se_s;
    /* band: this Winograd conv also runs the next step, a 1x1 conv that alone
     * reads its output, in bands of `band` tile rows (ops.c ec_band_rows): that
     * output is never written whole; band_done: this step was run so. */
    int band, band_done;
} ec_step;

typedef struct {
    int n_steps;
    ec_step *steps;               /* [n_steps] */
    int n_bufs;
    ec_plan_buf *bufs;            /* [n_bufs] */
    int *vbuf;                    /* [n_values] buffer id, -1 = fused away */
    size_t arena_bytes, pinned_bytes;
    size_t max_arena_bytes;       /* the limit ec_plan_build was given (ec_plan_append_after keeps it) */
    size_t col_floats;            /* largest im2col tile or Winograd V + M (floats, one thread) */
    size_t wide_floats;           /* largest Winograd U or packed kernel (floats; the kernel scratch holds it) */
} ec_plan;

/* pin[v] != 0: value v must survive the forward pass (not fused, not reused).
 * nofuse[v] != 0 (NULL: pin): v is not fused away, though it may be reused;
 * a session passes the pins of the model's default Grad-CAM layer here, so
 * its forward rounds the same way with or without an explanation. keep_all: one buffer per value, no reuse, no fusion. A plan whose arena
 * would exceed max_arena_bytes fails with EC_ERR_LIMIT ("model needs N MiB of
 * activations, over the limit of M MiB"), before anything that size is
 * allocated; so does ec_plan_append_after. */
ec_status ec_plan_build(const ec_model *m, const unsigned char *pin, const unsigned char *nofuse, int keep_all,
                       size_t max_arena_bytes, ec_plan *p);
void ec_plan_free(ec_plan *p);
/* Adds n_extra buffers used after the forward pass, their first/last counted from
 * its end (0 = right after the last step); the values that live to the end of the
 * forward (pinned, output) are kept alive over them, or up to time until[b] (same
 * clock) for a buffer b with until[b] >= 0 (until may be NULL); then places
 * everything again. The new buffers are p->bufs[*first_id + i]. */
ec_status ec_plan_append_after(ec_plan *p, const ec_plan_buf *extra, int n_extra, int keep_all, const int *until,
                               int *first_id);
#define EC_IM2COL_TILE_BYTES (512u << 10)   /* bound on one thread's im2col tile */
#define EC_WINO_TILE_BYTES (1024u << 10)    /* bound on one thread's Winograd V + M */
/* F(4x4, 3x3) (4x fewer multiplies than the direct form, F(2x2) 2.25x) when its
 * U, 36 x cin x cout floats, fits this bound (it shares the scratch with the
 * widest packed kernel, 1.5 MB for EfficientNetV2-S, so RSS stays put), and the
 * output is at least 8x8 (4x4 tiles would waste much of a smaller image) */
#define EC_WINO43_MAX_U_BYTES (1536u << 10)
/* k x k convs with at most this many output channels skip im2col + sgemm (a
 * 24-row problem to OpenBLAS) for the direct kernel (kernels/conv__avx2.c);
 * without AVX2 they stay on sgemm, faster than the scalar reference. */
#define EC_DIRECT_MAX_COUT 24
/* 3x3 stride-1 convs with at least this many input and output channels run on
 * Winograd (before the direct kernel is considered): EfficientNetV2-S's stage-1
 * 24 -> 24 convs at 150x150 took 1.70 ms each direct and 1.2-1.4 ms on F(4x4, 3x3)
 * (1 thread, AVX-512; the 24 columns padded to two 16-column panels) */
#define EC_WINO_MIN_C 24

#endif
