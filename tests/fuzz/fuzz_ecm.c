/* fuzz_ecm.c - libFuzzer target for the .ecm loader, by running what it accepts.
 *
 * The input is an .ecm file. The harness stamps the correct CRC-32 into the
 * header first (the checksum would otherwise turn away nearly every mutation,
 * and what matters is what lies behind it), copies the bytes into a 64-byte
 * aligned buffer as mmap would give, and calls ec_model_from_memory. A model
 * the loader accepts must then be safe to use: every introspection call, a
 * session with Grad-CAM (or without, when the model has no target), and a
 * prediction on a fixed 8x8 image under ASan/UBSan. Models whose work would
 * be large are skipped after loading (input over 64x64, activations over
 * 16 MB, over 32 M multiply-adds), so the fuzzer stays fast.
 *
 * Seeds: tests/fuzz/seeds/ecm (written by gen_ecm_seeds.c). `make fuzz` builds
 * and runs it; by hand:
 *   build/fuzz/fuzz_ecm -max_len=65536 CORPUS_DIR tests/fuzz/seeds/ecm
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "effcam.h"
#include "engine/engine.h"

#define FUZZ_MAX_SIDE 64
#define FUZZ_MAX_VALUE_BYTES ((int64_t)16 << 20)
#define FUZZ_MAX_MACS ((int64_t)32 << 20)

/* 1 if running m is cheap enough for a fuzzing iteration. */
static int small_enough(const ec_model *m)
{
    int h, w;
    ec_model_input_size(m, &h, &w);
    if (h > FUZZ_MAX_SIDE || w > FUZZ_MAX_SIDE) return 0;
    int64_t bytes = 0, macs = 0;
    for (int v = 0; v < m->n_values; v++) {
        bytes += (int64_t)m->values[v].h * m->values[v].w * m->values[v].c * 4;
        if (bytes > FUZZ_MAX_VALUE_BYTES) return 0;
    }
    for (int i = 0; i < m->n_nodes; i++) {
        const ec_node *n = &m->nodes[i];
        const ec_value *y = &m->values[n->out];
        int64_t per = 4;   /* elementwise work per output element, roughly */
        if (n->op == ECM_OP_CONV2D || n->op == ECM_OP_DWCONV2D || n->op == ECM_OP_DENSE) {
            const ec_value *x = &m->values[n->in[0]];
            per = n->op == ECM_OP_CONV2D ? (int64_t)n->kh * n->kw * x->c
                  : n->op == ECM_OP_DWCONV2D ? (int64_t)n->kh * n->kw
                                             : (int64_t)x->h * x->w * x->c;
        } else if (n->op == ECM_OP_GAP) {
            const ec_value *x = &m->values[n->in[0]];
            per = (int64_t)x->h * x->w;
        }
        macs += per * y->h * y->w * y->c;
        if (macs > FUZZ_MAX_MACS) return 0;
    }
    return 1;
}

static void run(const ec_model *m)
{
    /* Introspection must work on anything the loader accepted. */
    int classes = ec_model_num_classes(m);
    for (int i = 0; i < classes; i++)
        if (!ec_model_label(m, i)) abort();
    if (ec_model_label(m, classes) || ec_model_label(m, -1)) abort();
    for (int i = 0; i < ec_model_num_layers(m); i++) {
        ec_layer_info li;
        if (ec_model_layer(m, i, &li) != EC_OK || !li.name || !li.op) abort();
    }
    (void)ec_model_params(m);
    (void)ec_model_weight_bytes(m, 0);
    (void)ec_model_weight_bytes(m, 1);
    (void)ec_model_gradcam_layer(m);
    if (!small_enough(m)) return;

    ec_session_options o = ec_session_options_default();
    o.gradcam = 1;
    ec_session *s = NULL;
    if (ec_session_new(m, &o, &s) != EC_OK) {
        o.gradcam = 0;   /* e.g. no convolution to explain: still run the forward pass */
        if (ec_session_new(m, &o, &s) != EC_OK) return;
    }
    uint8_t rgb[8 * 8 * 3];
    for (size_t i = 0; i < sizeof rgb; i++) rgb[i] = (uint8_t)(i * 37 + 11);
    ec_result r;
    if (ec_session_predict_rgb(s, rgb, 8, 8, &r) == EC_OK) {
        int h, w;
        ec_model_input_size(m, &h, &w);
        if (r.num_classes != classes || r.top_class < 0 || r.top_class >= classes) abort();
        if (r.input_height != h || r.input_width != w || !r.input_rgb) abort();
        volatile float sum = 0;
        for (int i = 0; i < classes; i++) sum += r.probabilities[i];
        if (o.gradcam && r.cam) {
            if (r.cam_height <= 0 || r.cam_width <= 0) abort();
            for (int i = 0; i < r.cam_height * r.cam_width; i++) sum += r.cam[i];
        }
        (void)sum;
    }
    ec_session_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cap = (size + 63) / 64 * 64;
    unsigned char *buf = aligned_alloc(64, cap ? cap : 64);
    if (!buf) return 0;
    memcpy(buf, data, size);
    if (size >= ECM_HEADER_SIZE) {
        memset(buf + ECM_H_CRC32, 0, 4);
        uLong crc = crc32(0L, Z_NULL, 0);
        for (size_t off = 0; off < size;) {
            uInt k = size - off > (1u << 30) ? (1u << 30) : (uInt)(size - off);
            crc = crc32(crc, buf + off, k);
            off += k;
        }
        for (int i = 0; i < 4; i++) buf[ECM_H_CRC32 + i] = (unsigned char)(crc >> (8 * i));
    }
    ec_model *m = NULL;
    if (ec_model_from_memory(buf, size, &m) == EC_OK) {
        run(m);
        ec_model_free(m);
    } else {
        /* A refusal comes with a one-line message. */
        const char *e = ec_last_error();
        if (m || !e[0] || strchr(e, '\n')) abort();
    }
    free(buf);
    return 0;
}
