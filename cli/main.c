/* main.c - the effcam command line: picks the subcommand (cli.h has the exit
 * statuses and the error format; each cmd_*.c has its own usage, printed by
 * `effcam SUBCOMMAND --help`). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const char usage_text[] =
    "effcam " EFFCAM_VERSION " - EfficientNet inference and Grad-CAM for Keras models\n"
    "usage:\n"
    "  effcam convert IN.keras|IN.h5 -o OUT.ecm [--dtype fp16|fp32] [--labels FILE]\n"
    "  effcam info MODEL.ecm [--json] [--plan]\n"
    "  effcam predict MODEL.ecm IMAGE|DIR... [--from FILE] [--top-k N] [--json] [--threads N] [--jobs N]\n"
    "                 [--cam OUT] [--cam-layer NAME] [--class INDEX|LABEL]\n"
    "                 [--cam-score prob|logit] [--base64] [--max-pixels N] [--stats]\n"
    "  effcam serve MODEL.ecm [--threads N] [--max-pixels N]   (JSON lines on stdin/stdout)\n"
    "  effcam preprocess MODEL.ecm IMAGE -o OUT.ppm [--max-pixels N]\n"
    "  effcam synth ARCH --size N [--classes K] [--seed S] -o OUT.ecm\n"
    "  effcam bench MODEL.ecm [IMAGE] [--runs N] [--warmup N] [--threads N] [--gradcam] [--layers] [--json]\n"
    "`effcam SUBCOMMAND --help` describes one subcommand.\n"
    "exit status: 0 ok, 1 some images failed, 2 usage, model or file error\n";

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} commands[] = {
    { "convert", cli_convert }, { "synth", cli_synth },     { "info", cli_info },   { "predict", cli_predict },
    { "preprocess", cli_preprocess }, { "serve", cli_serve }, { "bench", cli_bench },
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_text, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(cmd, commands[i].name)) return commands[i].run(argc - 2, argv + 2);
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("effcam %s\n", EFFCAM_VERSION);
        return cli_stdout_close() ? 2 : 0;
    }
    if (cli_is_help(cmd) || !strcmp(cmd, "help")) {
        fputs(usage_text, stdout);
        return cli_stdout_close() ? 2 : 0;
    }
    cli_err(NULL, "unknown command %s", cmd);
    fputs(usage_text, stderr);
    return 2;
}
