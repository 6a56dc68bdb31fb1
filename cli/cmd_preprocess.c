/* cmd_preprocess.c - effcam preprocess: the exact uint8 tensor the model sees. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char usage[] =
    "usage: effcam preprocess MODEL.ecm IMAGE -o OUT.ppm [--resize FILTER] [--max-pixels N]\n"
    "Writes the model's input for IMAGE as a binary PPM: decoded as the app decodes it\n"
    "(PIL's Image.open + convert(\"RGB\")) and resized to the model's input size with Pillow's\n"
    "FILTER (lanczos, the app's, by default; nearest, box, bilinear, hamming, bicubic).\n";

int cli_preprocess(int argc, char **argv)
{
    const char *model = NULL, *img = NULL, *outp = NULL;
    long maxpx = 50000000;
    ec_resize_filter filter = EC_RESIZE_LANCZOS;
    for (int i = 0; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return cli_stdout_close() ? 2 : 0;
        }
        if (!strcmp(argv[i], "-o") && i + 1 < argc) outp = argv[++i];
        else if (!strcmp(argv[i], "--resize") && i + 1 < argc) {
            if (cli_filter("--resize", argv[++i], &filter)) return 2;
        } else if (!strcmp(argv[i], "--max-pixels") && i + 1 < argc) {
            if (cli_int(argv[++i], 1, 1L << 40, &maxpx)) { cli_err(NULL, "--max-pixels takes a positive number"); return 2; }
        } else if (argv[i][0] == '-' && argv[i][1]) { model = NULL; break; }
        else if (!model) model = argv[i];
        else if (!img) img = argv[i];
        else { model = NULL; break; }
    }
    if (!model || !img || !outp) {
        fputs(usage, stderr);
        return 2;
    }
    ec_model *m = cli_load_model(model);
    if (!m) return 2;
    int h, w;
    ec_model_input_size(m, &h, &w);
    ec_model_free(m);
    uint8_t *dst = malloc((size_t)h * w * 3);
    if (!dst) {
        cli_err(img, "out of memory");
        return 2;
    }
    int rc = 0;
    if (ec_image_load_resized(img, w, h, filter, maxpx, dst) != EC_OK) {
        cli_lib_err();   /* names the image */
        rc = 1;
    } else {
        cli_signals_hold();
        if (ec_image_save_ppm(outp, dst, w, h) != EC_OK) {
            cli_lib_err();
            rc = 2;
        }
        cli_signals_release();
    }
    free(dst);
    return rc;
}
