/* cli.h - pieces of the effcam command line shared between its files. */
#ifndef EFFCAM_CLI_H
#define EFFCAM_CLI_H

#include "convert/json.h"

/* "effcam: FILE: message" on stderr (file may be NULL). */
void cli_err(const char *file, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_int(const char *s, long lo, long hi, long *out);
double cli_now(void);
long cli_peak_rss_kib(void);
long cli_rss_kib(void);        /* current VmRSS, KiB */

/* SIGINT/SIGTERM/SIGHUP are deferred while an output file is being written, so
 * an interrupted run still ends with either the complete file or none at all
 * (writers go through temp file + rename and clean up after themselves); the
 * signal takes effect, with its usual exit status, right after the write. */
void cli_signals_install(void);
void cli_signals_hold(void);
void cli_signals_release(void);

/* p[0, n) as a quoted base64 JSON string appended to b (defined in cli_serve.c). */
void cli_buf_base64(js_buf *b, const unsigned char *p, size_t n);

int cli_info(int argc, char **argv);
int cli_predict(int argc, char **argv);
int cli_preprocess(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_bench(int argc, char **argv);

#endif
