/* cmd_info.c - effcam info: what a model file holds and what it will cost. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char usage[] =
    "usage: effcam info MODEL.ecm [--json] [--plan]\n"
    "The model's layers (output shapes, parameters; '*' marks the layers --cam-layer accepts,\n"
    "and `input`, the model input, is accepted too),\n"
    "totals, input size, labels, the Grad-CAM layer and the planned activation arena.\n"
    "  --json   one JSON object\n"
    "  --plan   also the activation memory plan: one line per buffer and a time x memory chart\n";

int cli_info(int argc, char **argv)
{
    const char *path = NULL;
    int json = 0, plan = 0;
    for (int i = 0; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return cli_stdout_close() ? 2 : 0;
        }
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--plan")) plan = 1;
        else if (argv[i][0] == '-' || path) {
            fputs(usage, stderr);
            return 2;
        } else path = argv[i];
    }
    if (!path) {
        fputs(usage, stderr);
        return 2;
    }
    ec_model *m = cli_load_model(path);
    if (!m) return 2;
    if (ec_model_verify(m) != EC_OK) {   /* info reads the whole file: the checksum too */
        cli_lib_err();
        ec_model_free(m);
        return 2;
    }
    /* The session plans the arena: plain, and with the values Grad-CAM pins. */
    ec_session_options o = ec_session_options_default();
    ec_session *s0 = NULL, *s1 = NULL;
    ec_status st = ec_session_new(m, &o, &s0);
    o.gradcam = 1;
    ec_status st1 = st == EC_OK ? ec_session_new(m, &o, &s1) : st;
    if (st != EC_OK) {
        cli_err(path, "%s", ec_last_error());
        ec_model_free(m);
        return 2;
    }
    int h, w;
    ec_model_input_size(m, &h, &w);
    int nl = ec_model_num_layers(m), k = ec_model_num_classes(m);
    const char *cam = ec_model_gradcam_layer(m);
    size_t arena = ec_session_arena_bytes(s0);
    size_t arena_cam = s1 ? ec_session_arena_bytes(s1) : 0, pinned = s1 ? ec_session_pinned_bytes(s1) : 0;
    size_t scratch = ec_session_scratch_bytes(s0);
    if (json) {
        js_buf b = { 0 };
        js_buf_printf(&b, "{\"file\": ");
        js_buf_string(&b, path);
        js_buf_printf(&b, ", \"params\": %lld, \"weight_bytes\": {\"fp16\": %lld, \"fp32\": %lld}",
                      (long long)ec_model_params(m), (long long)ec_model_weight_bytes(m, 1),
                      (long long)ec_model_weight_bytes(m, 0));
        js_buf_printf(&b, ", \"input_hw\": [%d, %d], \"num_classes\": %d, \"labels\": [", h, w, k);
        for (int i = 0; i < k; i++) {
            if (i) js_buf_puts(&b, ", ");
            js_buf_string(&b, ec_model_label(m, i));
        }
        js_buf_puts(&b, "], \"gradcam_layer\": ");
        if (cam) js_buf_string(&b, cam);
        else js_buf_puts(&b, "null");
        js_buf_printf(&b, ", \"arena_bytes\": %zu, \"arena_bytes_gradcam\": %zu, \"gradcam_pinned_bytes\": %zu"
                          ", \"scratch_bytes\": %zu, \"layers\": [",
                      arena, arena_cam, pinned, scratch);
        for (int i = 0; i < nl; i++) {
            ec_layer_info li;
            if (ec_model_layer(m, i, &li) != EC_OK) continue;
            js_buf_puts(&b, i ? ", {\"name\": " : "{\"name\": ");
            js_buf_string(&b, li.name);
            js_buf_puts(&b, ", \"op\": ");
            js_buf_string(&b, li.op);
            js_buf_printf(&b, ", \"shape\": [%d, %d, %d], \"params\": %lld, \"cam_target\": %s}", li.out_h, li.out_w,
                          li.out_c, (long long)li.params, li.cam_target ? "true" : "false");
        }
        js_buf_puts(&b, "]");
        if (plan) {
            char *text = NULL;
            if (ec_session_plan_text(s1 ? s1 : s0, &text) == EC_OK) {
                js_buf_puts(&b, ", \"plan\": ");
                js_buf_string(&b, text);
            }
            free(text);
        }
        js_buf_puts(&b, "}");
        cli_emit(&b);
        js_buf_free(&b);
    } else {
        printf("%-36s %-12s %-18s %12s %s\n", "layer", "op", "output", "params", "cam");
        for (int i = 0; i < nl; i++) {
            ec_layer_info li;
            if (ec_model_layer(m, i, &li) != EC_OK) continue;
            char shape[48];
            snprintf(shape, sizeof shape, "%dx%dx%d", li.out_h, li.out_w, li.out_c);
            printf("%-36s %-12s %-18s %12lld %s\n", li.name, li.op, shape, (long long)li.params, li.cam_target ? "*" : "");
        }
        printf("('*': a valid --cam-layer; `input`, the model input, too: a saliency map)\n");
        printf("\nlayers        %d\n", nl);
        printf("params        %lld\n", (long long)ec_model_params(m));
        printf("weights       %.2f MB fp16 + %.2f MB fp32\n", ec_model_weight_bytes(m, 1) / 1e6,
               ec_model_weight_bytes(m, 0) / 1e6);
        printf("input         %dx%dx3\n", h, w);
        printf("classes       %d:", k);
        for (int i = 0; i < k; i++) printf("%s %s", i ? "," : "", ec_model_label(m, i));
        printf("\ngrad-cam      %s\n", cam ? cam : "(none)");
        printf("arena         %.2f MB (%.2f MB with Grad-CAM, of which %.2f MB pinned)\n", arena / 1e6,
               arena_cam / 1e6, pinned / 1e6);
        printf("scratch       %.2f MB\n", scratch / 1e6);
        char *text = NULL;
        if (plan && ec_session_plan_text(s1 ? s1 : s0, &text) == EC_OK) printf("\nmemory plan%s\n%s", s1 ? " (with Grad-CAM)" : "", text);
        free(text);
    }
    if (st1 != EC_OK && cam) fprintf(stderr, "effcam: %s: note: grad-cam unavailable: %s\n", path, ec_last_error());
    ec_session_free(s1);
    ec_session_free(s0);
    ec_model_free(m);
    return cli_stdout_close() ? 2 : 0;
}


