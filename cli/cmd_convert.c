/* cmd_convert.c - effcam convert: a Keras file to an .ecm model file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "cli/cli.h"
#include "convert/cv.h"
#include "engine/ecm_format.h"

static const char usage[] =
    "usage: effcam convert IN.keras|IN.h5 -o OUT.ecm [--dtype fp16|fp32] [--labels FILE]\n"
    "                      [--max-file-mb N] [--max-layers N] [--max-tensor-elems N] [--max-json-depth N]\n"
    "                      [--max-arena-mb N]\n"
    "       effcam convert IN.keras|IN.h5 --list-weights\n"
    "Reads a Keras 3 / tf.keras .keras archive or a legacy .h5 file and writes effcam's model file:\n"
    "conv and dense kernels float16 (fp16, the default) or float32, BN statistics and biases float32.\n"
    "  --labels FILE      one class name per line (UTF-8)\n"
    "  --list-weights     print each Keras variable's shape and CRC-32 instead\n"
    "  --max-*            limits for hostile files (defaults: 2048 MB, 100000 layers,\n"
    "                     268435456 elements per tensor, JSON depth 256, 1024 MB of activations:\n"
    "                     --max-arena-mb, the same bound predict and serve apply)\n";

static int usage_convert(void)
{
    fputs(usage, stderr);
    return 2;
}

int cli_convert(int argc, char **argv)
{
    const char *in = NULL, *outp = NULL;
    cv_options opt = { 1, NULL, cv_limits_default() };
    int list = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            fputs(usage, stdout);
            return 0;
        }
        if (!strcmp(a, "-o") && i + 1 < argc) outp = argv[++i];
        else if (!strcmp(a, "--dtype") && i + 1 < argc) {
            const char *d = argv[++i];
            if (!strcmp(d, "fp16")) opt.f16 = 1;
            else if (!strcmp(d, "fp32")) opt.f16 = 0;
            else { cli_err(NULL, "--dtype takes fp16 or fp32, not %s", d); return 2; }
        } else if (!strcmp(a, "--labels") && i + 1 < argc) opt.labels_path = argv[++i];
        else if (!strcmp(a, "--list-weights")) list = 1;
        else if (!strcmp(a, "--max-file-mb") && i + 1 < argc) {
            long v;
            if (cli_int(argv[++i], 1, 1 << 20, &v)) { cli_err(NULL, "bad --max-file-mb"); return 2; }
            opt.limits.max_file_bytes = (uint64_t)v << 20;
        } else if (!strcmp(a, "--max-layers") && i + 1 < argc) {
            long v;
            if (cli_int(argv[++i], 1, 10000000, &v)) { cli_err(NULL, "bad --max-layers"); return 2; }
            opt.limits.max_layers = (int)v;
        } else if (!strcmp(a, "--max-tensor-elems") && i + 1 < argc) {
            long v;
            if (cli_int(argv[++i], 1, 1L << 40, &v)) { cli_err(NULL, "bad --max-tensor-elems"); return 2; }
            opt.limits.max_tensor_elems = (uint64_t)v;
        } else if (!strcmp(a, "--max-arena-mb") && i + 1 < argc) {
            long v;
            if (cli_int(argv[++i], 1, 1 << 24, &v)) { cli_err(NULL, "bad --max-arena-mb"); return 2; }
            opt.limits.max_activation_bytes = (uint64_t)v << 20;
        } else if (!strcmp(a, "--max-json-depth") && i + 1 < argc) {
            long v;
            if (cli_int(argv[++i], 1, 100000, &v)) { cli_err(NULL, "bad --max-json-depth"); return 2; }
            opt.limits.max_json_depth = (int)v;
        } else if (a[0] == '-' && a[1]) { cli_err(NULL, "convert: unknown option %s", a); return usage_convert(); }
        else if (!in) in = a;
        else return usage_convert();
    }
    if (!in || (!outp && !list)) return usage_convert();
    struct stat ost;
    if (outp && stat(outp, &ost) == 0 && !S_ISREG(ost.st_mode)) {
        /* the writer renames a temporary onto the target: never over a device, a FIFO or a folder */
        cli_err(outp, "exists and is not a regular file (refusing to replace it)");
        return 2;
    }
    cv_graph g;
    cv_keras *k;
    cv_err e = { "" };
    if (cv_keras_open(in, &opt, &g, &k, &e)) {
        cli_err(in, "%s", e.msg);
        return 2;
    }
    int rc = 0;
    if (list) {
        /* One line per Keras variable: name, shape, crc32 of its float32 LE bytes. */
        size_t cap = 0;
        float *buf = NULL;
        for (int i = 0; i < g.n_tensors && rc == 0; i++) {
            const cv_tensor *t = &g.tensors[i];
            if (t->flags & ECM_TF_DERIVED) continue;
            size_t n = (size_t)cv_tensor_elems(t);
            if (n > cap) {
                float *nb = realloc(buf, (n ? n : 1) * sizeof *nb);
                if (!nb) { cli_err(in, "out of memory"); rc = 2; break; }
                buf = nb;
                cap = n;
            }
            if (t->data) memcpy(buf, t->data, n * sizeof *buf);
            else if (g.load(g.load_ctx, t, buf, n, &e)) { cli_err(in, "%s", e.msg); rc = 2; break; }
            uLong crc = crc32(0L, Z_NULL, 0);
            for (size_t j = 0; j < n; j++) {
                uint32_t u;
                unsigned char b[4];
                memcpy(&u, &buf[j], 4);
                b[0] = (unsigned char)u; b[1] = (unsigned char)(u >> 8);
                b[2] = (unsigned char)(u >> 16); b[3] = (unsigned char)(u >> 24);
                crc = crc32(crc, b, 4);
            }
            printf("%s\t", t->name);
            for (int d = 0; d < t->rank; d++) printf("%s%lld", d ? "x" : "", (long long)t->dims[d]);
            printf("\t%lu\n", (unsigned long)crc);
        }
        free(buf);
    } else {
        cli_signals_hold();
        if (cv_ecm_write(&g, outp, &e)) {
            cli_err(in, "%s", e.msg);
            rc = 2;
        }
        cli_signals_release();
    }
    cv_keras_close(k);
    cv_graph_free(&g);
    return rc;
}

