/* cv.h - shared plumbing of the converter: errors, byte sources, the graph IR.
 *
 * Every fallible converter function returns 0 on success and -1 on failure,
 * after writing one line of detail into a cv_err (no printing, no exit).
 */
#ifndef EFFCAM_CV_H
#define EFFCAM_CV_H

#include <stddef.h>
#include <stdint.h>

/* ---- errors ---------------------------------------------------------------- */

typedef struct { char msg[256]; } cv_err;

/* printf-style: writes the message into e (if non-NULL), returns -1. */
int cv_fail(cv_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- limits (hostile input) ----------------------------------------------- */

typedef struct {
    uint64_t max_file_bytes;     /* largest model file accepted (default 2 GiB) */
    uint64_t max_tensor_elems;   /* largest single tensor (default 256 M elements) */
    uint64_t max_total_elems;    /* all weights together (default 512 M elements: a
                                  * 2 GiB file of float32 holds as many) */
    uint64_t max_activation_bytes; /* float32 values alive at once at some layer
                                  * (default ECM_DEFAULT_MAX_ACTIVATION_BYTES, 1 GiB;
                                  * the engine's session limit is the same) */
    int max_layers;              /* layers / nodes / tensors (default 100000) */
    int max_json_depth;          /* nesting of config JSON (default 256) */
} cv_limits;

cv_limits cv_limits_default(void);

/* ---- byte sources ----------------------------------------------------------
 * A window [base, base + size) of an open file descriptor, read with pread.
 * The HDF5 reader works on one: a whole .h5 file, a STORED zip member in place,
 * or a DEFLATE member inflated into an unlinked temporary file. Reading with
 * pread instead of mmap keeps the converter's RSS bounded by its buffers. */
typedef struct {
    int fd;
    uint64_t base;
    uint64_t size;
    int owns_fd;     /* close fd in cv_source_close */
} cv_source;

/* Reads exactly len bytes at off (relative to base); -1 with a message if the
 * range is outside [0, size) or the read comes up short. */
int cv_source_read(const cv_source *s, uint64_t off, void *buf, size_t len, cv_err *e);
int cv_source_open_file(const char *path, const cv_limits *lim, cv_source *out, cv_err *e);
void cv_source_close(cv_source *s);

/* ---- graph IR -------------------------------------------------------------
 * What keras.c (and models/ synth) build and ecm_write.c serializes. Mirrors the
 * .ecm tables (engine/ecm_format.h): values are 1 x h x w x c, nodes are in
 * execution order, tensors hold Keras variables in Keras order. */

typedef struct {
    char *name;
    int h, w, c;
} cv_value;

typedef struct {
    int op;                 /* ECM_OP_* */
    char *name;             /* Keras layer name */
    int act;                /* ECM_ACT_* */
    int n_in;
    int in[4];              /* value ids */
    int out;                /* value id */
    int n_w;
    int w[4];               /* tensor ids or -1 */
    int kh, kw, sh, sw, pt, pb, pl, pr;
    int mult;
    float f0, f1;
    unsigned flags;
} cv_node;

typedef struct {
    char *name;             /* Keras path, e.g. "stem_conv/kernel" */
    int rank;
    int64_t dims[4];
    int to_f16;             /* write as float16 (conv/dense kernels when --dtype fp16) */
    unsigned flags;         /* ECM_TF_* */
    float *data;            /* values held in memory (owned), or NULL: ask graph->load */
    long src;               /* loader's handle for data == NULL */
} cv_tensor;

typedef struct cv_graph {
    cv_value *values; int n_values, cap_values;
    cv_node *nodes;   int n_nodes,  cap_nodes;
    cv_tensor *tensors; int n_tensors, cap_tensors;
    char **labels; int n_labels;
    int input_value, output_value;
    int gradcam_node;       /* node index or -1 */
    /* Streams tensor data for tensors with data == NULL: writes n floats to dst. */
    int (*load)(void *ctx, const cv_tensor *t, float *dst, size_t n, cv_err *e);
    void *load_ctx;
} cv_graph;

void cv_graph_init(cv_graph *g);
void cv_graph_free(cv_graph *g);            /* frees names, data, labels; not load_ctx */
int cv_graph_add_value(cv_graph *g, const char *name, int h, int w, int c);       /* id or -1 (OOM) */
int cv_graph_add_tensor(cv_graph *g, const char *name, int rank, const int64_t *dims); /* id or -1 */
cv_node *cv_graph_add_node(cv_graph *g, int op, const char *name);   /* zeroed, w[] = -1; NULL on OOM */
int64_t cv_tensor_elems(const cv_tensor *t);   /* INT64_MAX if the product overflows */
int64_t cv_graph_params(const cv_graph *g); /* elements of non-derived tensors (Keras count_params) */

/* The structural checks engine/model.c makes when it loads the file, made on
 * the graph before it is written, with the loader's messages ("node 3 (rs):
 * scale inf / offset 0 not finite"): convert never writes a file the loader
 * refuses. Weight values are checked as cv_ecm_write streams them. */
int cv_graph_check(const cv_graph *g, cv_err *e);

/* A lower bound on the activation memory the engine plans for g (bytes of
 * float32 values alive at the same time, at the worst layer; aliases share,
 * elementwise ops may write over an input that dies there). The engine's arena
 * (engine/plan.c) is never smaller. */
uint64_t cv_graph_activation_bytes(const cv_graph *g);

/* Fills the Grad-CAM target the app would pick: the last conv (CONV2D/DWCONV2D)
 * in layer order. */
void cv_graph_pick_gradcam(cv_graph *g);

/* Keeps the two ends of the network in float32 whatever --dtype says: the
 * stem convolution (it reads the image itself, and its rounding error is
 * carried through every later layer) and the final classifier Dense. They are
 * tiny (648 + 8960 weights in EfficientNetV2-S) and halve the worst float16
 * error on the Keras fixtures (V2-S: 3.2e-3 -> 1.4e-3 in probability). Also
 * the Grad-CAM layer's kernel (call cv_graph_pick_gradcam first): its raw
 * output is the explanation's A, so its rounding goes straight into the map,
 * and XGradCAM divides by A's channel sums (V2-S top_conv: 327,680 weights,
 * +0.65 MB; the float16 XGradCAM map of a fixture photo went from Pearson
 * -0.50 to above 0.99 against Keras's float32 map). */
void cv_graph_keep_f32_ends(cv_graph *g);

/* Labels: one per line from a file (must match the class count), or class_0...
 * The file must be a regular file of at most CV_LABELS_MAX_BYTES, without NUL
 * bytes; a UTF-8 byte order mark is dropped, "\r\n" endings are accepted and
 * blank lines skipped. */
#define CV_LABELS_MAX_BYTES (16u << 20)
int cv_graph_set_labels(cv_graph *g, const char *labels_path, cv_err *e);

/* ---- .ecm writer (ecm_write.c) --------------------------------------------- */
/* Writes g to path atomically (temp file in the same directory + rename); on any
 * error the temp file is removed and nothing appears at path. dtype_f16 selects
 * float16 for tensors with to_f16 set. */
int cv_ecm_write(const cv_graph *g, const char *path, cv_err *e);

/* ---- Keras readers (keras.c) ---------------------------------------------- */
typedef struct {
    int f16;                      /* store conv/dense kernels as float16 */
    const char *labels_path;      /* NULL: class_0, class_1, ... */
    cv_limits limits;
} cv_options;

typedef struct cv_keras cv_keras;   /* keeps the input open while g->load streams */

/* Reads a .keras (zip) or .h5 (HDF5) file, by its magic bytes, into g. */
int cv_keras_open(const char *path, const cv_options *opt, cv_graph *g, cv_keras **out, cv_err *e);
void cv_keras_close(cv_keras *k);

#endif
