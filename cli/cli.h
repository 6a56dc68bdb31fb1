/* cli.h - the effcam command line: what its files share.
 *
 * The CLI is a client of the public library (effcam.h); it reaches into
 * convert/ (the converter, and the JSON reader/writer) and models/ (synth)
 * and nothing else. It is the only place that prints and chooses exit
 * statuses:
 *   0  success
 *   1  some images failed (predict, preprocess): the others were processed
 *   2  usage error, unreadable/invalid model or input file, write failure
 * Every error is one line on stderr: "effcam: FILE: reason" (the library's
 * messages about a file already start with its name; the CLI does not repeat
 * it). */
#ifndef EFFCAM_CLI_H
#define EFFCAM_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "convert/json.h"
#include "effcam.h"

/* ---- common.c -------------------------------------------------------------------- */

/* "effcam: FILE: message" on stderr (file may be NULL). */
void cli_err(const char *file, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The library's last error on stderr; its message names the file when there is one. */
void cli_lib_err(void);
/* Parses a whole decimal integer in [lo, hi]: 0, or -1. */
int cli_int(const char *s, long lo, long hi, long *out);
double cli_now(void);
long cli_peak_rss_kib(void);   /* VmHWM, KiB, or -1 */
long cli_rss_kib(void);        /* VmRSS, KiB, or -1 */
/* A resize filter's name for option opt: 0, or -1 after printing the error. */
int cli_filter(const char *opt, const char *name, ec_resize_filter *out);
/* 1 if a is "-h" or "--help" */
int cli_is_help(const char *a);
/* Loads and returns a model, or prints why and returns NULL. */
ec_model *cli_load_model(const char *path);
/* b's text and a newline to stdout, then flush; -1 when stdout cannot be written. */
int cli_emit(js_buf *b);
/* Flushes stdout: 0, or -1 after printing the write error (a full disk, a closed pipe). */
int cli_stdout_close(void);

/* SIGINT/SIGTERM/SIGHUP are deferred while an output file is being written, so
 * an interrupted run still ends with either the complete file or none at all;
 * the signal takes effect, with its usual exit status, right after the write.
 * Nested and concurrent holds (predict --jobs) release at the last one. */
void cli_signals_hold(void);
void cli_signals_release(void);

/* p[0, n) as a quoted base64 JSON string appended to b. */
void cli_buf_base64(js_buf *b, const unsigned char *p, size_t n);
/* Standard base64 (padding optional at the end, whitespace and a data: URL
 * prefix skipped) into *out (grown with realloc, *cap its size); 0, or -1 with
 * a reason in err. */
int cli_base64_decode(const char *s, size_t n, unsigned char **out, size_t *cap, size_t *len, char *err,
                      size_t errlen);

/* ---- result_json.c: the one writer of results (predict --json, serve) ---------- */

/* The top k classes by descending probability; ties in class order (the app's
 * stable sort). order has num_classes entries; the first k are the answer. */
void cli_top_k(const float *p, int num_classes, int k, int *order);

typedef struct {
    const ec_model *m;
    const ec_result *r;
    const char *image;           /* the image path, or NULL (an upload) */
    int top_k;
    const int *order;            /* from cli_top_k */
    const uint8_t *png;          /* the overlay PNG, or NULL */
    size_t png_len;
} cli_result;

/* Appends the result's fields (no braces) to b: "image", "input_hw",
 * "probabilities" (or "scores" for a model whose output is not a softmax),
 * "top", and with a heatmap "gradcam" {layer, method, class, score, height,
 * width, values} and with an overlay "overlay_base64". README documents it. */
void cli_result_fields(js_buf *b, const cli_result *res);
/* {"image": ..., "error": ...} without the braces' caller: a whole object. */
void cli_error_object(js_buf *b, const char *image, const char *msg);
/* The text report of one image (predict without --json). */
void cli_result_text(js_buf *b, const cli_result *res);

/* ---- the subcommands -------------------------------------------------------------- */
int cli_convert(int argc, char **argv);
int cli_synth(int argc, char **argv);
int cli_info(int argc, char **argv);
int cli_predict(int argc, char **argv);
int cli_preprocess(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_bench(int argc, char **argv);

#endif
