/* cmd_synth.c - effcam synth: an EfficientNet with deterministic weights. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "convert/cv.h"
#include "models/effnet.h"

static void usage(FILE *f)
{
    fputs("usage: effcam synth ARCH --size N [--classes K] [--seed S] [--dtype fp16|fp32] -o OUT.ecm\n"
          "An EfficientNet with deterministic random weights (BN statistics calibrated on synthetic\n"
          "photos), shaped like the app's model, for benchmarks and tests.\nARCH:", f);
    for (const char *const *n = ec_synth_arch_names(); *n; n++) fprintf(f, " %s", *n);
    fputc('\n', f);
}

int cli_synth(int argc, char **argv)
{
    const char *arch = NULL, *outp = NULL;
    long size = 0, classes = 7, seed = 1;
    int f16 = 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "-o") && i + 1 < argc) outp = argv[++i];
        else if (!strcmp(a, "--size") && i + 1 < argc) {
            if (cli_int(argv[++i], 16, 2048, &size)) { cli_err(NULL, "--size takes 16..2048"); return 2; }
        } else if (!strcmp(a, "--classes") && i + 1 < argc) {
            if (cli_int(argv[++i], 1, 100000, &classes)) { cli_err(NULL, "--classes takes 1..100000"); return 2; }
        } else if (!strcmp(a, "--seed") && i + 1 < argc) {
            if (cli_int(argv[++i], 0, LONG_MAX, &seed)) { cli_err(NULL, "bad --seed"); return 2; }
        } else if (!strcmp(a, "--dtype") && i + 1 < argc) {
            const char *d = argv[++i];
            if (!strcmp(d, "fp16")) f16 = 1;
            else if (!strcmp(d, "fp32")) f16 = 0;
            else { cli_err(NULL, "--dtype takes fp16 or fp32"); return 2; }
        } else if (a[0] == '-') { cli_err(NULL, "synth: unknown option %s", a); arch = NULL; break; }
        else if (!arch) arch = a;
        else { arch = NULL; break; }
    }
    if (!arch || !outp) {
        usage(stderr);
        return 2;
    }
    if (size == 0) size = ec_synth_default_size(arch);
    cv_graph g;
    cv_err e = { "" };
    cv_graph_init(&g);
    if (ec_synth_build(arch, (int)size, (int)classes, (uint64_t)seed, f16, &g, &e)) {
        cli_err(arch, "%s", e.msg);
        cv_graph_free(&g);
        return 2;
    }
    cli_signals_hold();
    int rc = cv_ecm_write(&g, outp, &e) ? 2 : 0;
    cli_signals_release();
    if (rc) cli_err(outp, "%s", e.msg);
    cv_graph_free(&g);
    return rc;
}

