/* model.c - loads an .ecm file: mmap, validate everything, derive.
 *
 * Nothing in the file is trusted until the whole of it has been checked: the
 * header, the CRC, every table record, the graph topology and every node's
 * shapes (recomputed from its inputs and attributes). Weights stay in the map
 * (float16 kernels are widened per layer by the session); what is derived here
 * (folded BatchNorm, Normalization reciprocals, widened small vectors) is
 * carved from one allocation sized before anything is written. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "../kernels/kernels.h"
#include "engine.h"
#include "error.h"

/* ---- little-endian readers --------------------------------------------------- */

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const unsigned char *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static float rdf32(const unsigned char *p)
{
    uint32_t u = rd32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

const char *ec_op_name(int op)
{
    static const char *const names[ECM_OP_COUNT] = {
        [ECM_OP_CONV2D] = "conv2d", [ECM_OP_DWCONV2D] = "dwconv2d", [ECM_OP_BATCHNORM] = "batchnorm",
        [ECM_OP_ACTIVATION] = "activation", [ECM_OP_ADD] = "add", [ECM_OP_MUL] = "mul",
        [ECM_OP_GAP] = "gap", [ECM_OP_DENSE] = "dense", [ECM_OP_RESCALE] = "rescale",
        [ECM_OP_NORMALIZE] = "normalize", [ECM_OP_ZEROPAD] = "zeropad", [ECM_OP_IDENTITY] = "identity",
        [ECM_OP_RESHAPE] = "reshape",
    };
    return op > 0 && op < ECM_OP_COUNT ? names[op] : "?";
}

/* ---- header ------------------------------------------------------------------ */

typedef struct {
    uint32_t n_values, n_nodes, n_tensors, n_labels;
    uint32_t input, output, gradcam, strings_size;
    uint64_t meta_offset, meta_size, data_offset, data_size;
} ec_header;

static ec_status ec_header_parse(const unsigned char *b, size_t size, ec_header *h)
{
    if (size < ECM_HEADER_SIZE || memcmp(b + ECM_H_MAGIC, ECM_MAGIC, 4) != 0)
        return ec_fail(EC_ERR_FORMAT, "not an .ecm model file (bad magic or shorter than its header)");
    uint32_t version = rd32(b + ECM_H_VERSION);
    if (version != ECM_VERSION)
        return ec_fail(EC_ERR_UNSUPPORTED, "ecm version %u is not supported (this build reads %u)",
                       version, ECM_VERSION);
    if (rd32(b + ECM_H_HEADER_SIZE) != ECM_HEADER_SIZE)
        return ec_fail(EC_ERR_FORMAT, "header size %u, expected %u", rd32(b + ECM_H_HEADER_SIZE), ECM_HEADER_SIZE);
    if (rd32(b + ECM_H_FLAGS) & ~ECM_FLAG_F16)
        return ec_fail(EC_ERR_UNSUPPORTED, "unknown header flags 0x%x", rd32(b + ECM_H_FLAGS));
    if (rd32(b + ECM_H_RESERVED) != 0) return ec_fail(EC_ERR_FORMAT, "reserved header field is not zero");
    h->n_values = rd32(b + ECM_H_N_VALUES);
    h->n_nodes = rd32(b + ECM_H_N_NODES);
    h->n_tensors = rd32(b + ECM_H_N_TENSORS);
    h->n_labels = rd32(b + ECM_H_N_LABELS);
    h->input = rd32(b + ECM_H_INPUT_VALUE);
    h->output = rd32(b + ECM_H_OUTPUT_VALUE);
    h->gradcam = rd32(b + ECM_H_GRADCAM_NODE);
    h->strings_size = rd32(b + ECM_H_STRINGS_SIZE);
    h->meta_offset = rd64(b + ECM_H_META_OFFSET);
    h->meta_size = rd64(b + ECM_H_META_SIZE);
    h->data_offset = rd64(b + ECM_H_DATA_OFFSET);
    h->data_size = rd64(b + ECM_H_DATA_SIZE);
    uint64_t file_size = rd64(b + ECM_H_FILE_SIZE);

    if (h->n_nodes == 0 || h->n_nodes > EC_MAX_NODES)
        return ec_fail(h->n_nodes ? EC_ERR_LIMIT : EC_ERR_FORMAT, "%u nodes (1..%d allowed)", h->n_nodes, EC_MAX_NODES);
    if (h->n_values < 2 || h->n_values > EC_MAX_VALUES)
        return ec_fail(h->n_values < 2 ? EC_ERR_FORMAT : EC_ERR_LIMIT, "%u values (2..%d allowed)", h->n_values, EC_MAX_VALUES);
    if (h->n_tensors > EC_MAX_TENSORS)
        return ec_fail(EC_ERR_LIMIT, "%u tensors (at most %d allowed)", h->n_tensors, EC_MAX_TENSORS);
    if (h->n_labels == 0 || h->n_labels > EC_MAX_LABELS)
        return ec_fail(h->n_labels ? EC_ERR_LIMIT : EC_ERR_FORMAT, "%u labels (1..%d allowed)", h->n_labels, EC_MAX_LABELS);
    if (file_size != size)
        return ec_fail(EC_ERR_FORMAT, "file is %zu bytes but its header says %llu (truncated or padded)",
                       size, (unsigned long long)file_size);
    /* Counts are bounded above, so these products cannot overflow 64 bits. */
    uint64_t meta = (uint64_t)h->n_values * ECM_VALUE_SIZE + (uint64_t)h->n_nodes * ECM_NODE_SIZE +
                    (uint64_t)h->n_tensors * ECM_TENSOR_SIZE + (uint64_t)h->n_labels * 4 + h->strings_size;
    if (h->meta_offset != ECM_HEADER_SIZE || h->meta_size != meta)
        return ec_fail(EC_ERR_FORMAT, "meta section at %llu, %llu bytes; the tables need %u, %llu",
                       (unsigned long long)h->meta_offset, (unsigned long long)h->meta_size,
                       ECM_HEADER_SIZE, (unsigned long long)meta);
    if (h->data_offset % ECM_ALIGN || h->data_offset < h->meta_offset + h->meta_size ||
        h->data_offset > size || h->data_size != size - h->data_offset)
        return ec_fail(EC_ERR_FORMAT, "data section at %llu, %llu bytes, does not fit a %zu-byte file",
                       (unsigned long long)h->data_offset, (unsigned long long)h->data_size, size);
    return EC_OK;
}

/* ---- the file checksum, checked lazily (engine.h) -------------------------------
 * The file is cut into its tensors (in offset order) and the gaps between them
 * (header, tables, padding). Each tensor's CRC is computed on first use and the
 * pieces are joined with zlib's crc32_combine, which gives the CRC of the whole
 * from the CRCs of its parts. Checking a 42 MB model at load cost a cold start
 * a full extra pass over the weights (page faults included, ~6-8 ms), dropping
 * the pages again (~2 ms) and faulting them back in the first predict.
 * The same pass, right after each tensor's CRC (its bytes in cache), looks
 * for a NaN or infinity among its values: the converter never writes one,
 * so a hand-made or damaged file holding one fails like a checksum mismatch
 * instead of predicting NaN. */
typedef struct ec_crc_check {
    atomic_uint *t_crc;           /* [n_tensors] CRC of each tensor's bytes, once done[t] */
    atomic_uchar *done;           /* [n_tensors] */
    atomic_int status;            /* 0 not yet checked, 1 good, -1 checksum mismatch, -2 non-finite value */
    atomic_uint computed;         /* sessions racing here store the same values */
    atomic_llong nonfinite;       /* 0, or (tensor + 1) << 32 | element of the first non-finite value found */
    uint32_t stored;
} ec_crc_check;

static size_t ec_tensor_bytes(const ec_tensor *t) { return (size_t)t->elems * (t->dtype == ECM_DT_F16 ? 2 : 4); }

/* Index of the first NaN or infinity among the tensor's values, or -1: all
 * exponent bits set, in float32 or float16. The SIMD scan (kernels/f16.c)
 * answers whether there is one; only then are the values searched one by one. */
static int64_t ec_first_nonfinite(const ec_tensor *T)
{
    const int f16 = T->dtype == ECM_DT_F16;
    if (!ec_any_nonfinite(T->data, (size_t)T->elems, f16)) return -1;
    const unsigned char *b = T->data;
    for (int64_t i = 0; i < T->elems; i++)
        if (ec_any_nonfinite__ref(b + (size_t)i * (f16 ? 2 : 4), 1, f16)) return i;
    return -1;
}

static void ec_check_tensor(const ec_model *m, int t)
{
    ec_crc_check *c = m->crc;
    if (t < 0 || t >= m->n_tensors || atomic_load_explicit(&c->done[t], memory_order_acquire)) return;
    const ec_tensor *T = &m->tensors[t];
    atomic_store_explicit(&c->t_crc[t], ec_crc32_update(0, T->data, ec_tensor_bytes(T)), memory_order_relaxed);
    int64_t bad = ec_first_nonfinite(T);
    if (bad >= 0) {
        long long want = 0;   /* the first one found is reported */
        atomic_compare_exchange_strong(&c->nonfinite, &want, (long long)((int64_t)(t + 1) << 32 | bad));
    }
    atomic_store_explicit(&c->done[t], 1, memory_order_release);
}

void ec_model_check_tensors(const ec_model *m, const ec_node *n)
{
    if (atomic_load_explicit(&m->crc->status, memory_order_acquire)) return;
    for (int k = 0; k < ECM_MAX_W; k++) ec_check_tensor(m, n->w[k]);
}

int ec_model_checked(const ec_model *m)
{
    return m ? atomic_load_explicit(&m->crc->status, memory_order_acquire) : 0;
}

/* The bytes [a, b) of the file, extending crc; the 4 CRC bytes read as zero. */
static uint32_t ec_crc_span(uint32_t crc, const unsigned char *base, size_t a, size_t b)
{
    static const unsigned char zero4[4];
    if (a < ECM_H_CRC32 + 4 && b > ECM_H_CRC32) {   /* the header's CRC field: only in the first gap */
        crc = ec_crc32_update(crc, base + a, ECM_H_CRC32 - a);
        crc = ec_crc32_update(crc, zero4, 4);
        a = ECM_H_CRC32 + 4;
    }
    return a < b ? ec_crc32_update(crc, base + a, b - a) : crc;
}

ec_status ec_model_check_rest(const ec_model *m)
{
    ec_crc_check *c = m->crc;
    int s = atomic_load_explicit(&c->status, memory_order_acquire);
    if (s == 0) {
        for (int t = 0; t < m->n_tensors; t++) ec_check_tensor(m, t);
        uint32_t crc = 0;
        size_t at = 0;
        for (int i = 0; i < m->n_tensors; i++) {
            const ec_tensor *T = &m->tensors[m->file_order[i]];
            size_t off = (size_t)((const unsigned char *)T->data - m->base), nb = ec_tensor_bytes(T);
            crc = ec_crc_span(crc, m->base, at, off);
            uint32_t tc = atomic_load_explicit(&c->t_crc[m->file_order[i]], memory_order_relaxed);
            crc = (uint32_t)crc32_combine(crc, tc, (z_off_t)nb);
            at = off + nb;
        }
        crc = ec_crc_span(crc, m->base, at, m->size);
        atomic_store_explicit(&c->computed, crc, memory_order_relaxed);
        s = crc != c->stored ? -1 : atomic_load(&c->nonfinite) ? -2 : 1;
        atomic_store_explicit(&c->status, s, memory_order_release);
    }
    if (s > 0) return EC_OK;
    if (s == -2) {
        long long nf = atomic_load(&c->nonfinite);
        int t = (int)(nf >> 32) - 1;
        return ec_fail(EC_ERR_FORMAT, "%stensor %d (%s): element %lld is not finite (NaN or infinity): the file is corrupt",
                       m->path ? m->path : "", t, m->tensors[t].name, (long long)(nf & 0xffffffffLL));
    }
    return ec_fail(EC_ERR_FORMAT, "%schecksum mismatch (stored %08x, computed %08x): the file is corrupt",
                   m->path ? m->path : "", c->stored, (uint32_t)atomic_load_explicit(&c->computed, memory_order_relaxed));
}

ec_status ec_model_verify(const ec_model *m)
{
    if (!m) return ec_fail(EC_ERR_ARG, "ec_model_verify: NULL model");
    if (ec_model_checked(m) > 0) return EC_OK;
    ec_status st = ec_model_check_rest(m);
    /* the pages were read for the check only: out of RSS until a predict reads them */
    if (m->mapped) madvise((void *)m->base, m->size, MADV_DONTNEED);
    return st;
}

/* ---- validation context ------------------------------------------------------- */

typedef struct {
    ec_model *m;
    const ec_header *h;
    const unsigned char *strings;  /* [strings_size] */
} ec_loader;

/* A string id must land inside the blob; the blob's last byte is NUL, so every
 * such string is terminated inside it. */
static int ec_str(const ec_loader *L, uint32_t id, const char **out)
{
    if (id >= L->h->strings_size) return -1;
    *out = (const char *)L->strings + id;
    return 0;
}

static const char *ec_shape_str(char *buf, size_t cap, const ec_tensor *t)
{
    int n = snprintf(buf, cap, "%d", t->dims[0]);
    for (int i = 1; i < t->rank && n > 0 && (size_t)n < cap; i++) n += snprintf(buf + n, cap - (size_t)n, "x%d", t->dims[i]);
    if (t->rank == 0) snprintf(buf, cap, "scalar");
    return buf;
}

#define NODE_FAIL(st, i, fmt, ...) \
    ec_fail(st, "node %d (%s): " fmt, (i), m->nodes[i].name, __VA_ARGS__)

/* Checks that slot k holds a tensor of exactly `elems` elements laid out as the
 * given dims (rank 0 = any layout with that many elements: vectors). */
static ec_status ec_check_slot(const ec_model *m, int i, int k, const char *what, int optional,
                               int rank, const int *dims, int64_t elems)
{
    int t = m->nodes[i].w[k];
    if (t < 0) {
        if (optional) return EC_OK;
        return NODE_FAIL(EC_ERR_FORMAT, i, "missing %s tensor", what);
    }
    const ec_tensor *T = &m->tensors[t];
    char got[64];
    if (rank > 0) {
        int ok = T->rank == rank;
        for (int d = 0; ok && d < rank; d++) ok = T->dims[d] == dims[d];
        if (!ok) {
            char want[64];
            ec_tensor tw = { .rank = rank };
            for (int d = 0; d < 4; d++) tw.dims[d] = d < rank ? dims[d] : 1;
            return NODE_FAIL(EC_ERR_FORMAT, i, "%s shape %s, expected %s", what,
                             ec_shape_str(got, sizeof got, T), ec_shape_str(want, sizeof want, &tw));
        }
    } else if (T->elems != elems) {
        return NODE_FAIL(EC_ERR_FORMAT, i, "%s shape %s, expected %lld elements", what,
                         ec_shape_str(got, sizeof got, T), (long long)elems);
    }
    return EC_OK;
}

static int ec_same_shape(const ec_value *a, const ec_value *b) { return a->h == b->h && a->w == b->w && a->c == b->c; }

/* Recomputes node i's output shape from its inputs and attributes and checks
 * the value table and the weight slots against it. */
static ec_status ec_check_node(const ec_model *m, int i)
{
    const ec_node *n = &m->nodes[i];
    const ec_value *x = &m->values[n->in[0]], *y = &m->values[n->out];
    int oh = x->h, ow = x->w, oc = x->c;    /* expected output shape */
    int n_in_min = 1, n_in_max = 1;
    int uses_act = 0, max_w = 0;
    ec_status st;

    switch (n->op) {
    case ECM_OP_CONV2D:
    case ECM_OP_DWCONV2D: {
        uses_act = 1;
        max_w = 2;
        if (n->kh < 1 || n->kw < 1 || n->sh < 1 || n->sw < 1 || n->kh > EC_MAX_DIM || n->kw > EC_MAX_DIM ||
            n->sh > EC_MAX_DIM || n->sw > EC_MAX_DIM)
            return NODE_FAIL(EC_ERR_FORMAT, i, "kernel %dx%d stride %dx%d out of range", n->kh, n->kw, n->sh, n->sw);
        if (n->pt < 0 || n->pb < 0 || n->pl < 0 || n->pr < 0 || n->pt >= n->kh || n->pb >= n->kh ||
            n->pl >= n->kw || n->pr >= n->kw)
            return NODE_FAIL(EC_ERR_FORMAT, i, "padding %d/%d/%d/%d out of range for a %dx%d kernel",
                             n->pt, n->pb, n->pl, n->pr, n->kh, n->kw);
        int64_t ph = (int64_t)x->h + n->pt + n->pb, pw = (int64_t)x->w + n->pl + n->pr;
        if (ph < n->kh || pw < n->kw)
            return NODE_FAIL(EC_ERR_FORMAT, i, "kernel %dx%d larger than the padded input %lldx%lld",
                             n->kh, n->kw, (long long)ph, (long long)pw);
        oh = (int)((ph - n->kh) / n->sh + 1);
        ow = (int)((pw - n->kw) / n->sw + 1);
        if (n->w[0] < 0) return NODE_FAIL(EC_ERR_FORMAT, i, "missing %s tensor", "kernel");
        const ec_tensor *K = &m->tensors[n->w[0]];
        char got[64];
        if (n->op == ECM_OP_CONV2D) {
            if (K->rank != 4 || K->dims[0] != n->kh || K->dims[1] != n->kw)
                return NODE_FAIL(EC_ERR_FORMAT, i, "kernel shape %s does not match its %dx%d window",
                                 ec_shape_str(got, sizeof got, K), n->kh, n->kw);
            if (K->dims[2] != x->c)
                return NODE_FAIL(EC_ERR_FORMAT, i, "kernel shape %s does not match input channels %d",
                                 ec_shape_str(got, sizeof got, K), x->c);
            oc = K->dims[3];
        } else {
            if (n->mult < 1 || n->mult > EC_MAX_DIM)
                return NODE_FAIL(EC_ERR_FORMAT, i, "depth multiplier %d out of range", n->mult);
            int want[4] = { n->kh, n->kw, x->c, n->mult };
            if ((st = ec_check_slot(m, i, 0, "kernel", 0, 4, want, 0))) return st;
            if ((int64_t)x->c * n->mult > EC_MAX_DIM)
                return NODE_FAIL(EC_ERR_LIMIT, i, "%d x %d output channels", x->c, n->mult);
            oc = x->c * n->mult;
        }
        if ((st = ec_check_slot(m, i, 1, "bias", 1, 0, NULL, oc))) return st;
        break;
    }
    case ECM_OP_BATCHNORM:
        max_w = 4;
        if (!(n->f0 >= 0) || !isfinite(n->f0)) return NODE_FAIL(EC_ERR_FORMAT, i, "epsilon %g is not a finite non-negative number", n->f0);
        if ((st = ec_check_slot(m, i, 0, "gamma", 1, 0, NULL, x->c)) || (st = ec_check_slot(m, i, 1, "beta", 1, 0, NULL, x->c)) ||
            (st = ec_check_slot(m, i, 2, "moving_mean", 0, 0, NULL, x->c)) ||
            (st = ec_check_slot(m, i, 3, "moving_variance", 0, 0, NULL, x->c)))
            return st;
        break;
    case ECM_OP_ACTIVATION:
        uses_act = 1;
        break;
    case ECM_OP_ADD:
        n_in_min = 2;
        n_in_max = ECM_MAX_IN;
        for (int k = 1; k < n->n_in; k++)
            if (!ec_same_shape(&m->values[n->in[k]], x))
                return NODE_FAIL(EC_ERR_FORMAT, i, "input %d is %dx%dx%d, input 0 is %dx%dx%d", k,
                                 m->values[n->in[k]].h, m->values[n->in[k]].w, m->values[n->in[k]].c, x->h, x->w, x->c);
        break;
    case ECM_OP_MUL: {
        n_in_min = n_in_max = 2;
        if (n->n_in != 2) break;
        const ec_value *b = &m->values[n->in[1]];
        if (ec_same_shape(x, b)) break;
        if (x->c == b->c && b->h == 1 && b->w == 1) break;
        if (x->c == b->c && x->h == 1 && x->w == 1) { oh = b->h; ow = b->w; break; }
        return NODE_FAIL(EC_ERR_FORMAT, i, "cannot broadcast %dx%dx%d with %dx%dx%d", x->h, x->w, x->c, b->h, b->w, b->c);
    }
    case ECM_OP_GAP:
        oh = ow = 1;
        break;
    case ECM_OP_DENSE: {
        uses_act = 1;
        max_w = 2;
        if (n->w[0] < 0) return NODE_FAIL(EC_ERR_FORMAT, i, "missing %s tensor", "kernel");
        const ec_tensor *K = &m->tensors[n->w[0]];
        char got[64];
        if (K->rank != 2 || K->dims[0] != x->c)
            return NODE_FAIL(EC_ERR_FORMAT, i, "kernel shape %s does not match input channels %d",
                             ec_shape_str(got, sizeof got, K), x->c);
        oc = K->dims[1];
        if ((st = ec_check_slot(m, i, 1, "bias", 1, 0, NULL, oc))) return st;
        break;
    }
    case ECM_OP_RESCALE:
        if (!isfinite(n->f0) || !isfinite(n->f1))
            return NODE_FAIL(EC_ERR_FORMAT, i, "scale %g / offset %g not finite", n->f0, n->f1);
        break;
    case ECM_OP_NORMALIZE:
        /* slot 2: Keras's `count` variable when the statistics came from adapt();
         * counted in params, not used */
        max_w = 3;
        if ((st = ec_check_slot(m, i, 0, "mean", 0, 0, NULL, x->c)) || (st = ec_check_slot(m, i, 1, "variance", 0, 0, NULL, x->c)) ||
            (st = ec_check_slot(m, i, 2, "count", 1, 0, NULL, 1)))
            return st;
        break;
    case ECM_OP_ZEROPAD:
        if (n->pt < 0 || n->pb < 0 || n->pl < 0 || n->pr < 0 || n->pt > EC_MAX_DIM || n->pb > EC_MAX_DIM ||
            n->pl > EC_MAX_DIM || n->pr > EC_MAX_DIM)
            return NODE_FAIL(EC_ERR_FORMAT, i, "padding %d/%d/%d/%d out of range", n->pt, n->pb, n->pl, n->pr);
        oh = x->h + n->pt + n->pb;
        ow = x->w + n->pl + n->pr;
        break;
    case ECM_OP_IDENTITY:
        break;
    case ECM_OP_RESHAPE:
        if ((int64_t)y->h * y->w * y->c != (int64_t)x->h * x->w * x->c)
            return NODE_FAIL(EC_ERR_FORMAT, i, "reshape %dx%dx%d -> %dx%dx%d changes the element count",
                             x->h, x->w, x->c, y->h, y->w, y->c);
        oh = y->h, ow = y->w, oc = y->c;
        break;
    default:
        return NODE_FAIL(EC_ERR_UNSUPPORTED, i, "unknown op %d", n->op);
    }
    if (n->n_in < n_in_min || n->n_in > n_in_max)
        return NODE_FAIL(EC_ERR_FORMAT, i, "%d inputs, %s takes %d..%d", n->n_in, ec_op_name(n->op), n_in_min, n_in_max);
    for (int k = max_w; k < ECM_MAX_W; k++)
        if (n->w[k] >= 0) return NODE_FAIL(EC_ERR_FORMAT, i, "unexpected weight in slot %d", k);
    if (!uses_act && n->act != ECM_ACT_LINEAR)
        return NODE_FAIL(EC_ERR_FORMAT, i, "activation %d on an op without one", n->act);
    if (n->op == ECM_OP_ACTIVATION && n->act == ECM_ACT_LINEAR) { /* Keras allows "linear": a copy */ }
    if (y->h != oh || y->w != ow || y->c != oc)
        return NODE_FAIL(EC_ERR_FORMAT, i, "output %s is %dx%dx%d, the op computes %dx%dx%d", y->name,
                         y->h, y->w, y->c, oh, ow, oc);
    return EC_OK;
}

/* ---- tables ------------------------------------------------------------------- */

static ec_status ec_read_values(ec_loader *L, const unsigned char *p)
{
    ec_model *m = L->m;
    for (int i = 0; i < m->n_values; i++, p += ECM_VALUE_SIZE) {
        ec_value *v = &m->values[i];
        if (ec_str(L, rd32(p), &v->name)) return ec_fail(EC_ERR_FORMAT, "value %d: name id outside the string blob", i);
        uint32_t h = rd32(p + 4), w = rd32(p + 8), c = rd32(p + 12);
        if (h < 1 || w < 1 || c < 1 || h > EC_MAX_DIM || w > EC_MAX_DIM || c > EC_MAX_DIM)
            return ec_fail(EC_ERR_FORMAT, "value %d (%s): shape %ux%ux%u out of range", i, v->name, h, w, c);
        if ((int64_t)h * w * c >= EC_MAX_VALUE_ELEMS)
            return ec_fail(EC_ERR_LIMIT, "value %d (%s): %ux%ux%u exceeds the activation limit of %lld elements",
                           i, v->name, h, w, c, (long long)EC_MAX_VALUE_ELEMS);
        v->h = (int)h, v->w = (int)w, v->c = (int)c;
    }
    return EC_OK;
}

static int ec_cmp_offset(const void *a, const void *b, void *ctx)
{
    const ec_tensor *t = ctx;
    const ec_tensor *x = &t[*(const int *)a], *y = &t[*(const int *)b];
    uintptr_t ox = (uintptr_t)x->data, oy = (uintptr_t)y->data;
    return ox < oy ? -1 : ox > oy;
}

static ec_status ec_read_tensors(ec_loader *L, const unsigned char *p, int *order)
{
    ec_model *m = L->m;
    const unsigned char *data = m->base + L->h->data_offset;
    for (int i = 0; i < m->n_tensors; i++, p += ECM_TENSOR_SIZE) {
        ec_tensor *t = &m->tensors[i];
        if (ec_str(L, rd32(p + ECM_T_NAME), &t->name)) return ec_fail(EC_ERR_FORMAT, "tensor %d: name id outside the string blob", i);
        t->dtype = rd32(p + ECM_T_DTYPE);
        t->flags = rd32(p + ECM_T_FLAGS);
        uint32_t rank = rd32(p + ECM_T_RANK);
        if (t->dtype != ECM_DT_F32 && t->dtype != ECM_DT_F16)
            return ec_fail(EC_ERR_UNSUPPORTED, "tensor %d (%s): unknown dtype %u", i, t->name, t->dtype);
        if (t->flags & ~ECM_TF_DERIVED) return ec_fail(EC_ERR_FORMAT, "tensor %d (%s): unknown flags 0x%x", i, t->name, t->flags);
        if (rank > 4) return ec_fail(EC_ERR_FORMAT, "tensor %d (%s): rank %u", i, t->name, rank);
        t->rank = (int)rank;
        int64_t elems = 1;
        for (int d = 0; d < 4; d++) {
            uint32_t v = rd32(p + ECM_T_DIMS + 4 * d);
            if (v < 1 || v > (uint32_t)INT32_MAX || (d >= t->rank && v != 1))
                return ec_fail(EC_ERR_FORMAT, "tensor %d (%s): dimension %d is %u", i, t->name, d, v);
            t->dims[d] = (int)v;
            elems *= v;
            if (elems >= EC_MAX_TENSOR_ELEMS)
                return ec_fail(EC_ERR_LIMIT, "tensor %d (%s): 2^31 elements or more", i, t->name);
        }
        t->elems = elems;
        uint64_t off = rd64(p + ECM_T_OFFSET), nbytes = rd64(p + ECM_T_NBYTES);
        uint64_t esize = t->dtype == ECM_DT_F16 ? 2 : 4;
        if (nbytes != (uint64_t)elems * esize)
            return ec_fail(EC_ERR_FORMAT, "tensor %d (%s): %llu bytes for %lld elements of %llu bytes", i, t->name,
                           (unsigned long long)nbytes, (long long)elems, (unsigned long long)esize);
        if (off % ECM_ALIGN) return ec_fail(EC_ERR_FORMAT, "tensor %d (%s): offset %llu is not %u-aligned", i, t->name, (unsigned long long)off, ECM_ALIGN);
        if (off > L->h->data_size || nbytes > L->h->data_size - off)
            return ec_fail(EC_ERR_FORMAT, "tensor %d (%s): bytes [%llu, +%llu) outside the %llu-byte data section", i,
                           t->name, (unsigned long long)off, (unsigned long long)nbytes, (unsigned long long)L->h->data_size);
        t->data = data + off;
        if (!(t->flags & ECM_TF_DERIVED)) m->params += elems;
        if (t->dtype == ECM_DT_F16 && elems > m->max_f16_elems) m->max_f16_elems = elems;
        order[i] = i;
    }
    /* No two tensors may share bytes: sort by offset, compare neighbours. */
    qsort_r(order, (size_t)m->n_tensors, sizeof *order, ec_cmp_offset, m->tensors);
    for (int k = 1; k < m->n_tensors; k++) {
        const ec_tensor *a = &m->tensors[order[k - 1]], *b = &m->tensors[order[k]];
        size_t abytes = (size_t)a->elems * (a->dtype == ECM_DT_F16 ? 2 : 4);
        if ((const unsigned char *)a->data + abytes > (const unsigned char *)b->data)
            return ec_fail(EC_ERR_FORMAT, "tensors %d (%s) and %d (%s) overlap", order[k - 1], a->name, order[k], b->name);
    }
    return EC_OK;
}

static ec_status ec_read_nodes(ec_loader *L, const unsigned char *p)
{
    ec_model *m = L->m;
    for (int i = 0; i < m->n_nodes; i++, p += ECM_NODE_SIZE) {
        ec_node *n = &m->nodes[i];
        n->name = "?";
        if (ec_str(L, rd32(p + ECM_N_NAME), &n->name)) return ec_fail(EC_ERR_FORMAT, "node %d: name id outside the string blob", i);
        uint32_t op = rd32(p + ECM_N_OP), act = rd32(p + ECM_N_ACT), out = rd32(p + ECM_N_OUT), nin = rd32(p + ECM_N_NIN),
                 nw = rd32(p + ECM_N_NW);
        if (op < 1 || op >= ECM_OP_COUNT) return NODE_FAIL(EC_ERR_UNSUPPORTED, i, "unknown op %u", op);
        if (act >= ECM_ACT_COUNT) return NODE_FAIL(EC_ERR_UNSUPPORTED, i, "unknown activation %u", act);
        if (out >= (uint32_t)m->n_values) return NODE_FAIL(EC_ERR_FORMAT, i, "output value %u out of range", out);
        if (nin < 1 || nin > ECM_MAX_IN) return NODE_FAIL(EC_ERR_FORMAT, i, "%u inputs", nin);
        if (nw > ECM_MAX_W) return NODE_FAIL(EC_ERR_FORMAT, i, "%u weight slots", nw);
        n->op = (int)op, n->act = (int)act, n->out = (int)out, n->n_in = (int)nin;
        for (int k = 0; k < ECM_MAX_IN; k++) {
            uint32_t v = rd32(p + ECM_N_IN + 4 * k);
            n->in[k] = -1;
            if (k >= (int)nin) {
                if (v != ECM_NONE) return NODE_FAIL(EC_ERR_FORMAT, i, "unused input slot %d is not NONE", k);
                continue;
            }
            if (v >= (uint32_t)m->n_values) return NODE_FAIL(EC_ERR_FORMAT, i, "input value %u out of range", v);
            n->in[k] = (int)v;
        }
        for (int k = 0; k < ECM_MAX_W; k++) {
            uint32_t t = rd32(p + ECM_N_W + 4 * k);
            n->w[k] = -1;
            if (t == ECM_NONE) continue;
            if (k >= (int)nw) return NODE_FAIL(EC_ERR_FORMAT, i, "unused weight slot %d is not NONE", k);
            if (t >= (uint32_t)m->n_tensors) return NODE_FAIL(EC_ERR_FORMAT, i, "weight tensor %u out of range", t);
            n->w[k] = (int)t;
        }
        uint32_t geo[9];
        for (int k = 0; k < 9; k++) geo[k] = rd32(p + ECM_N_KH + 4 * k);
        for (int k = 0; k < 9; k++)
            if (geo[k] > EC_MAX_DIM) return NODE_FAIL(EC_ERR_FORMAT, i, "kernel/stride/padding field %d is %u", k, geo[k]);
        n->kh = (int)geo[0], n->kw = (int)geo[1], n->sh = (int)geo[2], n->sw = (int)geo[3];
        n->pt = (int)geo[4], n->pb = (int)geo[5], n->pl = (int)geo[6], n->pr = (int)geo[7], n->mult = (int)geo[8];
        n->f0 = rdf32(p + ECM_N_F0);
        n->f1 = rdf32(p + ECM_N_F1);
        n->flags = rd32(p + ECM_N_FLAGS);
        if (n->flags & ~ECM_NF_KEEPDIMS) return NODE_FAIL(EC_ERR_FORMAT, i, "unknown flags 0x%x", n->flags);
        if (rd32(p + ECM_N_RESERVED) != 0) return NODE_FAIL(EC_ERR_FORMAT, i, "reserved field %s", "is not zero");
    }
    return EC_OK;
}

/* Each tensor belongs to one weight slot of one node, as the converter writes
 * them (shared layers are refused there). Sharing would let a small file make
 * load derive far more than it holds: 100000 BatchNorm nodes reading one pair
 * of 65536-channel statistics would fold into 52 GB of vectors. */
static ec_status ec_check_unshared(const ec_model *m)
{
    int *user = malloc((size_t)(m->n_tensors ? m->n_tensors : 1) * sizeof *user);   /* [n_tensors] node or -1 */
    if (!user) return ec_fail(EC_ERR_NOMEM, "out of memory (%d tensors)", m->n_tensors);
    for (int t = 0; t < m->n_tensors; t++) user[t] = -1;
    ec_status st = EC_OK;
    for (int i = 0; i < m->n_nodes && !st; i++)
        for (int k = 0; k < ECM_MAX_W && !st; k++) {
            int t = m->nodes[i].w[k];
            if (t < 0) continue;
            if (user[t] >= 0)
                st = NODE_FAIL(EC_ERR_FORMAT, i, "weight tensor %d (%s) is already a weight of node %d (%s)", t,
                               m->tensors[t].name, user[t], m->nodes[user[t]].name);
            user[t] = i;
        }
    free(user);
    return st;
}

/* Execution order: every input exists before its consumer; each value has one producer. */
static ec_status ec_check_graph(ec_model *m)
{
    for (int v = 0; v < m->n_values; v++) m->producer[v] = -2;   /* -2: not produced yet */
    m->producer[m->input] = -1;
    for (int i = 0; i < m->n_nodes; i++) {
        ec_node *n = &m->nodes[i];
        for (int k = 0; k < n->n_in; k++) {
            if (m->producer[n->in[k]] == -2)
                return NODE_FAIL(EC_ERR_FORMAT, i, "input %s is not produced by an earlier node", m->values[n->in[k]].name);
            m->n_uses[n->in[k]]++;
        }
        if (m->producer[n->out] != -2)
            return NODE_FAIL(EC_ERR_FORMAT, i, "output %s is already produced by %s", m->values[n->out].name,
                             m->producer[n->out] < 0 ? "the model input" : m->nodes[m->producer[n->out]].name);
        m->producer[n->out] = i;
        ec_status st = ec_check_node(m, i);
        if (st) return st;
    }
    for (int v = 0; v < m->n_values; v++)
        if (m->producer[v] == -2) return ec_fail(EC_ERR_FORMAT, "value %d (%s) is never produced", v, m->values[v].name);
    return EC_OK;
}

/* ---- derived vectors ------------------------------------------------------------ */

/* Element j of a vector tensor as float (float16 widened). Load time only. */
static float ec_tensor_at(const ec_tensor *t, int64_t j)
{
    if (t->dtype == ECM_DT_F16) {
        uint16_t h;
        memcpy(&h, (const uint16_t *)t->data + j, 2);
        return ec_f16_to_f32(h);
    }
    float f;
    memcpy(&f, (const float *)t->data + j, 4);
    return f;
}

/* Floats node i needs in the derived block (0 when it needs none). */
static size_t ec_derived_floats(const ec_model *m, int i)
{
    const ec_node *n = &m->nodes[i];
    size_t c = (size_t)m->values[n->out].c;
    switch (n->op) {
    case ECM_OP_CONV2D:
    case ECM_OP_DWCONV2D:
    case ECM_OP_DENSE:
        return n->w[1] >= 0 && m->tensors[n->w[1]].dtype != ECM_DT_F32 ? c : 0;
    case ECM_OP_BATCHNORM: {
        int pr = m->producer[n->in[0]];
        int fused_bias = pr >= 0 && m->nodes[pr].w[1] >= 0 &&
                         (m->nodes[pr].op == ECM_OP_CONV2D || m->nodes[pr].op == ECM_OP_DWCONV2D || m->nodes[pr].op == ECM_OP_DENSE);
        return (2 + (size_t)fused_bias) * c;
    }
    case ECM_OP_NORMALIZE:
        return 2 * c;
    default:
        return 0;
    }
}

/* Computes the derived vectors and checks them: the converter refuses
 * statistics that make them NaN or infinite (same messages, convert/ecm_write.c),
 * so only a hand-made or damaged file gets here with one. Checked now, at load,
 * since they are read now anyway; the other weights are checked for NaN as the
 * first forward pass reads them (ec_check_tensor). */
static ec_status ec_derive(ec_model *m)
{
    float *d = m->derived;   /* sized by ec_derived_floats; carved in node order */
    for (int i = 0; i < m->n_nodes; i++) {
        ec_node *n = &m->nodes[i];
        int c = m->values[n->out].c;
        if (n->op == ECM_OP_CONV2D || n->op == ECM_OP_DWCONV2D || n->op == ECM_OP_DENSE) {
            if (n->w[1] < 0) continue;
            const ec_tensor *b = &m->tensors[n->w[1]];
            if (b->dtype == ECM_DT_F32) { n->bias = b->data; continue; }
            float *bias = d;
            d += c;
            for (int j = 0; j < c; j++) {
                bias[j] = ec_tensor_at(b, j);
                if (!isfinite(bias[j])) return NODE_FAIL(EC_ERR_FORMAT, i, "bias[%d] is %g, not finite", j, bias[j]);
            }
            n->bias = bias;
        } else if (n->op == ECM_OP_BATCHNORM) {
            float *scale = d, *shift = d + c;   /* [c] each */
            d += 2 * c;
            int pr = m->producer[n->in[0]];
            const float *pbias = pr >= 0 && (m->nodes[pr].op == ECM_OP_CONV2D || m->nodes[pr].op == ECM_OP_DWCONV2D ||
                                             m->nodes[pr].op == ECM_OP_DENSE) && m->nodes[pr].w[1] >= 0
                                     ? m->nodes[pr].bias : NULL;   /* the producer precedes: already set */
            float *fshift = pbias ? d : NULL;
            if (pbias) d += c;
            for (int j = 0; j < c; j++) {
                float gamma = n->w[0] >= 0 ? ec_tensor_at(&m->tensors[n->w[0]], j) : 1.0f;
                float beta = n->w[1] >= 0 ? ec_tensor_at(&m->tensors[n->w[1]], j) : 0.0f;
                float mean = ec_tensor_at(&m->tensors[n->w[2]], j);
                float var = ec_tensor_at(&m->tensors[n->w[3]], j);
                if (!(var >= 0) || !isfinite(var) || !isfinite(mean))
                    return NODE_FAIL(EC_ERR_FORMAT, i, "moving_variance[%d] = %g (mean %g) is not a finite non-negative variance",
                                     j, var, mean);
                /* inference BN as one multiply-add: (x - mean) * g/sqrt(var+eps) + beta */
                scale[j] = gamma / sqrtf(var + n->f0);
                shift[j] = beta - mean * scale[j];
                /* conv bias folded through BN: (x + b) * s + t = x * s + (b * s + t) */
                if (pbias) fshift[j] = pbias[j] * scale[j] + shift[j];
                if (!isfinite(scale[j]) || !isfinite(shift[j]) || (pbias && !isfinite(fshift[j])))
                    return NODE_FAIL(EC_ERR_FORMAT, i, "channel %d folds to scale %g, shift %g (variance %g, epsilon %g): not finite",
                                     j, scale[j], pbias ? fshift[j] : shift[j], var, n->f0);
            }
            n->scale = scale, n->shift = shift, n->fshift = fshift;
        } else if (n->op == ECM_OP_NORMALIZE) {
            float *scale = d, *shift = d + c;   /* [c] each: 1/std, mean */
            d += 2 * c;
            for (int j = 0; j < c; j++) {
                float var = ec_tensor_at(&m->tensors[n->w[1]], j), mean = ec_tensor_at(&m->tensors[n->w[0]], j);
                /* sqrtf of a negative variance is NaN, which the floor below would
                 * have turned into 1e-7 without a word */
                if (!(var >= 0) || !isfinite(var) || !isfinite(mean))
                    return NODE_FAIL(EC_ERR_FORMAT, i, "variance[%d] = %g (mean %g) is not a finite non-negative variance", j,
                                     var, mean);
                float sd = sqrtf(var);
                /* Keras floors the std at 1e-7 so constant channels do not divide by 0 */
                scale[j] = 1.0f / (sd > 1e-7f ? sd : 1e-7f);
                shift[j] = mean;
            }
            n->scale = scale, n->shift = shift;
        }
    }
    return EC_OK;
}

/* ---- load ------------------------------------------------------------------------ */

ec_status ec_model_from_memory(const void *buf, size_t size, ec_model **out)
{
    if (!buf || !out) return ec_fail(EC_ERR_ARG, "ec_model_from_memory: NULL argument");
    *out = NULL;
    const unsigned char *b = buf;
    ec_header h = { 0 };
    ec_status st = ec_header_parse(b, size, &h);
    if (st) return st;

    const unsigned char *meta = b + h.meta_offset;
    const unsigned char *pv = meta, *pn = pv + (size_t)h.n_values * ECM_VALUE_SIZE;
    const unsigned char *pt = pn + (size_t)h.n_nodes * ECM_NODE_SIZE, *pl = pt + (size_t)h.n_tensors * ECM_TENSOR_SIZE;
    const unsigned char *ps = pl + (size_t)h.n_labels * 4;
    if (h.strings_size == 0 || ps[h.strings_size - 1] != 0)
        return ec_fail(EC_ERR_FORMAT, "string blob is empty or not NUL-terminated");

    ec_model *m = calloc(1, sizeof *m);
    if (!m) return ec_fail(EC_ERR_NOMEM, "out of memory");
    m->base = b, m->size = size;
    m->n_values = (int)h.n_values, m->n_nodes = (int)h.n_nodes, m->n_tensors = (int)h.n_tensors, m->n_labels = (int)h.n_labels;
    /* One allocation for every table; `order` is scratch for the overlap check. */
    size_t bytes = (size_t)m->n_values * (sizeof(ec_value) + 2 * sizeof(int)) + (size_t)m->n_nodes * sizeof(ec_node) +
                   (size_t)m->n_tensors * (sizeof(ec_tensor) + sizeof(int)) + (size_t)m->n_labels * sizeof(char *);
    char *tb = calloc(1, bytes);
    if (!tb) { free(m); return ec_fail(EC_ERR_NOMEM, "out of memory (%zu bytes of tables)", bytes); }
    m->tables = tb;
    m->nodes = (ec_node *)tb;                 tb += (size_t)m->n_nodes * sizeof(ec_node);
    m->tensors = (ec_tensor *)tb;             tb += (size_t)m->n_tensors * sizeof(ec_tensor);
    m->values = (ec_value *)tb;               tb += (size_t)m->n_values * sizeof(ec_value);
    m->labels = (const char **)tb;            tb += (size_t)m->n_labels * sizeof(char *);
    m->producer = (int *)tb;                  tb += (size_t)m->n_values * sizeof(int);
    m->n_uses = (int *)tb;                    tb += (size_t)m->n_values * sizeof(int);
    int *order = (int *)tb;
    m->file_order = order;
    m->gradcam_node = -1;
    size_t nt = (size_t)m->n_tensors;
    m->crc = calloc(1, sizeof(ec_crc_check) + nt * (sizeof(atomic_uint) + sizeof(atomic_uchar)));
    if (!m->crc) { st = ec_fail(EC_ERR_NOMEM, "out of memory (%zu tensors)", nt); goto fail; }
    m->crc->t_crc = (atomic_uint *)(m->crc + 1);
    m->crc->done = (atomic_uchar *)(m->crc->t_crc + nt);
    for (size_t i = 0; i < nt; i++) atomic_init(&m->crc->t_crc[i], 0), atomic_init(&m->crc->done[i], 0);
    atomic_init(&m->crc->status, 0);
    atomic_init(&m->crc->computed, 0);
    atomic_init(&m->crc->nonfinite, 0);
    m->crc->stored = rd32(b + ECM_H_CRC32);

    ec_loader L = { m, &h, ps };
    if ((st = ec_read_values(&L, pv)) || (st = ec_read_tensors(&L, pt, order)) || (st = ec_read_nodes(&L, pn)) ||
        (st = ec_check_unshared(m)))
        goto fail;
    for (int i = 0; i < m->n_labels; i++)
        if (ec_str(&L, rd32(pl + 4 * (size_t)i), &m->labels[i])) {
            st = ec_fail(EC_ERR_FORMAT, "label %d: string id outside the string blob", i);
            goto fail;
        }
    if (h.input >= h.n_values || h.output >= h.n_values) {
        st = ec_fail(EC_ERR_FORMAT, "input value %u / output value %u out of range", h.input, h.output);
        goto fail;
    }
    m->input = (int)h.input, m->output = (int)h.output;
    if ((st = ec_check_graph(m))) goto fail;
    const ec_value *vi = &m->values[m->input], *vo = &m->values[m->output];
    if (vi->c != 3) { st = ec_fail(EC_ERR_UNSUPPORTED, "model input %s has %d channels (RGB needs 3)", vi->name, vi->c); goto fail; }
    if (m->input == m->output) { st = ec_fail(EC_ERR_FORMAT, "model output is its input"); goto fail; }
    if (vo->h != 1 || vo->w != 1 || vo->c != m->n_labels) {
        st = ec_fail(EC_ERR_FORMAT, "output %s is %dx%dx%d, expected 1x1x%d (one per label)", vo->name, vo->h, vo->w, vo->c, m->n_labels);
        goto fail;
    }
    if (h.gradcam != ECM_NONE) {
        if (h.gradcam >= h.n_nodes) { st = ec_fail(EC_ERR_FORMAT, "grad-cam node %u out of range", h.gradcam); goto fail; }
        int op = m->nodes[h.gradcam].op;
        if (op != ECM_OP_CONV2D && op != ECM_OP_DWCONV2D) {
            st = ec_fail(EC_ERR_FORMAT, "grad-cam node %u (%s) is a %s, not a convolution", h.gradcam, m->nodes[h.gradcam].name, ec_op_name(op));
            goto fail;
        }
        m->gradcam_node = (int)h.gradcam;
    }

    size_t nd = 0;
    for (int i = 0; i < m->n_nodes; i++) nd += ec_derived_floats(m, i);
    if (nd) {
        m->derived = malloc(nd * sizeof(float));
        if (!m->derived) { st = ec_fail(EC_ERR_NOMEM, "out of memory (%zu derived floats)", nd); goto fail; }
    }
    if ((st = ec_derive(m))) goto fail;
    *out = m;
    return EC_OK;
fail:
    ec_model_free(m);
    return st;
}

/* Maps the file read-only at a 2 MiB boundary (as mmap does, MAP_FAILED and
 * errno on failure). Where the page cache holds the file in 2 MiB folios (the
 * converter writes it in whole 2 MiB pieces for that), an aligned mapping takes
 * one page-table entry per folio: the first predict then faults ~20 times
 * instead of once per 4 KB page, ~12 ms of V2-S's cold start on a VM with
 * paravirtualized paging. MADV_HUGEPAGE asks for 2 MiB folios when the pages
 * are read again from disk. Both are hints: without them it is a plain mmap. */
static void *ec_map_file(int fd, size_t size)
{
    const size_t huge = (size_t)2 << 20;
    if (size >= 2 * huge && size <= SIZE_MAX - 2 * huge) {
        size_t len = (size + 4095) & ~(size_t)4095;
        char *r = mmap(NULL, len + huge, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (r != MAP_FAILED) {
            char *a = (char *)(((uintptr_t)r + huge - 1) & ~(uintptr_t)(huge - 1));
            void *map = mmap(a, size, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
            if (map == MAP_FAILED) {
                int e = errno;
                munmap(r, len + huge);
                errno = e;
                return MAP_FAILED;
            }
            /* the reservation around it goes back (a - r < huge: the tail is never empty) */
            if (a > r) munmap(r, (size_t)(a - r));
            munmap(a + len, (size_t)(r + huge - a));
#ifdef MADV_HUGEPAGE
            (void)madvise(map, size, MADV_HUGEPAGE);
#endif
            return map;
        }
    }
    return mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
}

ec_status ec_model_load(const char *path, ec_model **out)
{
    if (!path || !out) return ec_fail(EC_ERR_ARG, "ec_model_load: NULL argument");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ec_fail(EC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        int e = errno;
        close(fd);
        return ec_fail(EC_ERR_IO, "%s: not a regular file%s%s", path, e ? ": " : "", e ? strerror(e) : "");
    }
    if (sb.st_size < (off_t)ECM_HEADER_SIZE) {
        close(fd);
        return ec_fail(EC_ERR_FORMAT, "%s: %lld bytes is too short for an .ecm model", path, (long long)sb.st_size);
    }
    size_t size = (size_t)sb.st_size;
    void *map = ec_map_file(fd, size);
    int e = errno;
    close(fd);   /* the mapping keeps the file alive */
    if (map == MAP_FAILED) return ec_fail(EC_ERR_IO, "%s: mmap failed: %s", path, strerror(e));
    ec_status st = ec_model_from_memory(map, size, out);
    if (st) {
        munmap(map, size);
        /* prefix the path, keeping the loader's one-line detail */
        char detail[400];
        snprintf(detail, sizeof detail, "%s", ec_last_error());
        return ec_fail(st, "%s: %s", path, detail);
    }
    (*out)->mapped = 1;
    /* for the checksum's message, should the first predict find a mismatch */
    size_t pl = strlen(path);
    if (((*out)->path = malloc(pl + 3))) memcpy((*out)->path, path, pl), memcpy((*out)->path + pl, ": ", 3);
    /* Load read the header, the tables and the tensors folded at load (BN
     * statistics), but the kernel maps 64 KB around each fault: ~6.5 MB of V2-S's
     * weights were in RSS. Dropped (a fraction of a millisecond), the weights come
     * in as the first forward pass reads them, so a large photo decoded before
     * it does not stack on top of them (12 MP: 69 -> 62 MB peak). */
    madvise(map, size, MADV_DONTNEED);
    return EC_OK;
}

void ec_model_free(ec_model *m)
{
    if (!m) return;
    if (m->mapped) munmap((void *)m->base, m->size);
    free(m->crc);
    free(m->path);
    free(m->derived);
    free(m->tables);
    free(m);
}

/* ---- introspection ------------------------------------------------------------- */

int ec_model_num_classes(const ec_model *m) { return m ? m->n_labels : 0; }

const char *ec_model_label(const ec_model *m, int index)
{
    return m && index >= 0 && index < m->n_labels ? m->labels[index] : NULL;
}

void ec_model_input_size(const ec_model *m, int *h, int *w)
{
    if (h) *h = m ? m->values[m->input].h : 0;
    if (w) *w = m ? m->values[m->input].w : 0;
}

int ec_model_num_layers(const ec_model *m) { return m ? m->n_nodes : 0; }

ec_status ec_model_layer(const ec_model *m, int index, ec_layer_info *out)
{
    if (!m || !out) return ec_fail(EC_ERR_ARG, "ec_model_layer: NULL argument");
    if (index < 0 || index >= m->n_nodes) return ec_fail(EC_ERR_ARG, "layer index %d out of range (0..%d)", index, m->n_nodes - 1);
    const ec_node *n = &m->nodes[index];
    const ec_value *v = &m->values[n->out];
    out->name = n->name;
    out->op = ec_op_name(n->op);
    out->out_h = v->h, out->out_w = v->w, out->out_c = v->c;
    out->params = 0;
    for (int k = 0; k < ECM_MAX_W; k++)
        if (n->w[k] >= 0 && !(m->tensors[n->w[k]].flags & ECM_TF_DERIVED)) out->params += m->tensors[n->w[k]].elems;
    out->cam_target = ec_model_cam_target(m, index, NULL, 0);
    return EC_OK;
}

int64_t ec_model_params(const ec_model *m) { return m ? m->params : 0; }

int64_t ec_model_weight_bytes(const ec_model *m, int dtype_f16)
{
    int64_t n = 0;
    for (int i = 0; m && i < m->n_tensors; i++) {
        const ec_tensor *t = &m->tensors[i];
        if ((t->dtype == ECM_DT_F16) == (dtype_f16 != 0)) n += t->elems * (t->dtype == ECM_DT_F16 ? 2 : 4);
    }
    return n;
}

const char *ec_model_gradcam_layer(const ec_model *m)
{
    return m && m->gradcam_node >= 0 ? m->nodes[m->gradcam_node].name : NULL;
}

int ec_model_output_is_probability(const ec_model *m)
{
    if (!m || m->producer[m->output] < 0) return 0;
    const ec_node *n = &m->nodes[m->producer[m->output]];
    return (n->op == ECM_OP_DENSE || n->op == ECM_OP_ACTIVATION || n->op == ECM_OP_CONV2D) && n->act == ECM_ACT_SOFTMAX;
}

int ec_model_find_node(const ec_model *m, const char *name)
{
    int found = -1;
    for (int i = 0; name && i < m->n_nodes; i++)
        if (strcmp(m->nodes[i].name, name) == 0) found = i;
    return found;
}
