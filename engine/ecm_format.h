/* ecm_format.h - the .ecm model file: constants and record layouts.
 *
 * The only header shared by convert/ (which writes .ecm files) and engine/
 * (which mmaps and validates them). docs/format.md describes the layout in
 * prose; this file is the normative list of numbers.
 *
 * File = header | meta section | padding | data section
 *   header   ECM_HEADER_SIZE bytes, fields below, all little-endian
 *   meta     value table, node table, tensor table, label table, string blob
 *   data     tensors, each at a 64-byte aligned offset from data_offset
 * Every record is written field by field (never a struct dump).
 */
#ifndef EFFCAM_ECM_FORMAT_H
#define EFFCAM_ECM_FORMAT_H

#include <stdint.h>

#define ECM_MAGIC          "ECMF"        /* 4 bytes at offset 0 */
#define ECM_VERSION        1u
#define ECM_HEADER_SIZE    96u
#define ECM_ALIGN          64u           /* data section and every tensor */
#define ECM_NONE           0xFFFFFFFFu   /* "no id" in any u32 id field */

/* Header field offsets (u32 unless marked u64). */
#define ECM_H_MAGIC         0   /* char[4] "ECMF" */
#define ECM_H_VERSION       4
#define ECM_H_HEADER_SIZE   8
#define ECM_H_FLAGS        12   /* ECM_FLAG_* */
#define ECM_H_N_VALUES     16
#define ECM_H_N_NODES      20
#define ECM_H_N_TENSORS    24
#define ECM_H_N_LABELS     28
#define ECM_H_INPUT_VALUE  32   /* value id of the model input (h, w, 3) */
#define ECM_H_OUTPUT_VALUE 36   /* value id of the model output (1, 1, classes) */
#define ECM_H_GRADCAM_NODE 40   /* node whose output is the Grad-CAM target A, or ECM_NONE */
#define ECM_H_STRINGS_SIZE 44   /* bytes in the string blob */
#define ECM_H_META_OFFSET  48   /* u64, == ECM_HEADER_SIZE */
#define ECM_H_META_SIZE    56   /* u64 */
#define ECM_H_DATA_OFFSET  64   /* u64, multiple of ECM_ALIGN */
#define ECM_H_DATA_SIZE    72   /* u64 */
#define ECM_H_FILE_SIZE    80   /* u64, == data_offset + data_size */
#define ECM_H_CRC32        88   /* CRC-32 (zlib) of the whole file with these 4 bytes read as 0 */
#define ECM_H_RESERVED     92   /* 0 */

#define ECM_FLAG_F16       1u   /* some kernels are stored as float16 */

/* Record sizes in the meta section, in this order:
 *   values[n_values]   ECM_VALUE_SIZE each
 *   nodes[n_nodes]     ECM_NODE_SIZE each, in execution order
 *   tensors[n_tensors] ECM_TENSOR_SIZE each
 *   labels[n_labels]   u32 string id each
 *   strings            strings_size bytes of NUL-terminated UTF-8; a string id is a byte offset
 */
#define ECM_VALUE_SIZE     16   /* u32 name, u32 h, u32 w, u32 c            (every value is 1 x h x w x c, NHWC) */
#define ECM_NODE_SIZE     108   /* see ECM_N_* below */
#define ECM_TENSOR_SIZE    48   /* see ECM_T_* below */

/* Node record: u32 fields at these byte offsets. */
#define ECM_N_OP        0    /* ECM_OP_* */
#define ECM_N_NAME      4    /* string id: the Keras layer name */
#define ECM_N_ACT       8    /* ECM_ACT_* fused activation (conv, dense, activation op) */
#define ECM_N_OUT      12    /* output value id */
#define ECM_N_NIN      16    /* number of inputs, 1..ECM_MAX_IN */
#define ECM_N_IN       20    /* u32[ECM_MAX_IN] input value ids, unused = ECM_NONE */
#define ECM_N_NW       36    /* number of weight slots used, 0..ECM_MAX_W */
#define ECM_N_W        40    /* u32[ECM_MAX_W] tensor ids, missing = ECM_NONE */
#define ECM_N_KH       56    /* kernel height (conv, dwconv) */
#define ECM_N_KW       60
#define ECM_N_SH       64    /* stride */
#define ECM_N_SW       68
#define ECM_N_PT       72    /* padding top, bottom, left, right (conv, dwconv, zeropad) */
#define ECM_N_PB       76
#define ECM_N_PL       80
#define ECM_N_PR       84
#define ECM_N_MULT     88    /* depth multiplier (dwconv) */
#define ECM_N_F0       92    /* f32: BN epsilon / Rescaling scale */
#define ECM_N_F1       96    /* f32: Rescaling offset */
#define ECM_N_FLAGS   100    /* ECM_NF_* */
#define ECM_N_RESERVED 104   /* 0 */

#define ECM_MAX_IN 4
#define ECM_MAX_W  4

#define ECM_NF_KEEPDIMS 1u   /* GAP keepdims (informational: the value is 1x1xC either way) */

/* Tensor record. */
#define ECM_T_NAME     0     /* string id: Keras variable path, e.g. "stem_conv/kernel" */
#define ECM_T_DTYPE    4     /* ECM_DT_* */
#define ECM_T_RANK     8     /* 0..4 */
#define ECM_T_DIMS    12     /* u32[4], unused = 1 */
#define ECM_T_FLAGS   28     /* ECM_TF_* */
#define ECM_T_OFFSET  32     /* u64, from data_offset, multiple of ECM_ALIGN */
#define ECM_T_NBYTES  40     /* u64, == elements * dtype size */

#define ECM_DT_F32 0u
#define ECM_DT_F16 1u

#define ECM_TF_DERIVED 1u    /* not a Keras variable (e.g. Normalization mean from config): not in params */

/* Limits of the format that every reader enforces: engine/model.c refuses a
 * file beyond them and the converter refuses to write one. */
#define ECM_MAX_NODES        100000
#define ECM_MAX_LABELS       100000
#define ECM_MAX_DIM          65536                 /* any h, w, c, kernel, stride or padding */
#define ECM_MAX_TENSOR_ELEMS ((int64_t)1 << 31)    /* exclusive */
#define ECM_MAX_VALUE_ELEMS  ((int64_t)1 << 28)    /* one activation (exclusive): 1 GiB of float32 */

/* The default bound on a model's activation memory (float32 values alive at the
 * same time): a session refuses a model whose planned arena is larger, and the
 * converter one whose values alone need more at some step. EfficientNet-B7 at
 * 1024x1024 needs ~400 MB with Grad-CAM; a hostile 1 KB model can ask for
 * gigabytes (each value under the per-value limit, their sum not). Raised per
 * session (ec_session_options.max_arena_bytes) and per conversion
 * (cv_limits.max_activation_bytes). */
#define ECM_DEFAULT_MAX_ACTIVATION_BYTES ((int64_t)1 << 30)

/* Ops and their weight slots (w[i]); shapes are checked by the loader. */
enum ecm_op {
    ECM_OP_CONV2D = 1,    /* in: x(h,w,cin); w: kernel(kh,kw,cin,cout) f16|f32, bias(cout)|NONE; act */
    ECM_OP_DWCONV2D = 2,  /* in: x(h,w,c); w: kernel(kh,kw,c,mult), bias(c*mult)|NONE; act; out c*mult */
    ECM_OP_BATCHNORM = 3, /* in: x; w: gamma|NONE, beta|NONE, moving_mean, moving_variance (c); f0 = eps */
    ECM_OP_ACTIVATION = 4,/* in: x; act */
    ECM_OP_ADD = 5,       /* in: 2..ECM_MAX_IN values of one shape */
    ECM_OP_MUL = 6,       /* in: a, b; same shape, or one of them 1x1xC (broadcast over h, w) */
    ECM_OP_GAP = 7,       /* in: x(h,w,c); out (1,1,c); flags KEEPDIMS */
    ECM_OP_DENSE = 8,     /* in: x(h,w,cin); w: kernel(cin,cout) f16|f32, bias(cout)|NONE; act */
    ECM_OP_RESCALE = 9,   /* in: x; y = x * f0 + f1 */
    ECM_OP_NORMALIZE = 10,/* in: x; w: mean(c), variance(c); y = (x - mean) / max(sqrt(variance), 1e-7) */
    ECM_OP_ZEROPAD = 11,  /* in: x; pads pt, pb, pl, pr */
    ECM_OP_IDENTITY = 12, /* in: x; Dropout and friends: the output aliases the input */
    ECM_OP_RESHAPE = 13,  /* in: x; same elements, new (h,w,c): aliases the input (NHWC is row-major) */
    ECM_OP_COUNT
};

/* Activations (values shared with kernels/kernels.h enum ec_act). */
enum ecm_act {
    ECM_ACT_LINEAR = 0,
    ECM_ACT_RELU = 1,
    ECM_ACT_RELU6 = 2,
    ECM_ACT_SIGMOID = 3,
    ECM_ACT_SOFTMAX = 4,  /* over the channel axis */
    ECM_ACT_SWISH = 5,    /* x * sigmoid(x); Keras "swish" and "silu" */
    ECM_ACT_TANH = 6,
    ECM_ACT_GELU = 7,     /* exact (erf) form, Keras's default */
    ECM_ACT_COUNT
};

#endif
