/* serve_request.h - one request line of `effcam serve`, parsed and checked
 * (serve_request.c), apart from the worker so that it can be fuzzed. */
#ifndef EFFCAM_SERVE_REQUEST_H
#define EFFCAM_SERVE_REQUEST_H

#include <stddef.h>

#include "convert/json.h"

#define SERVE_MAX_DEPTH 64        /* JSON nesting allowed in a request (its "id" may nest) */
#define SERVE_DEFAULT_TOP_K 3     /* as predict */

typedef struct {
    js_doc *doc;                  /* owns every string below */
    const js_value *id;           /* the client's id, or NULL */
    const char *image;            /* "image": a file path, or NULL */
    const char *data;             /* "image_base64", or NULL */
    size_t data_len;
    int cam;                      /* "cam": true */
    long top_k;                   /* "top_k", SERVE_DEFAULT_TOP_K if absent */
    const char *resize;           /* "resize": a filter name, or NULL */
    const char *cam_method;       /* "cam_method", or NULL */
    const char *cam_layer;        /* "cam_layer", or NULL */
} serve_request;

/* Parses line[0, len). 0, or -1 with a one-line reason in err (rq->id is then
 * set when the line was a JSON object, for the error answer). Free with
 * serve_request_free either way. */
int serve_request_parse(const char *line, size_t len, serve_request *rq, char *err, size_t errlen);
void serve_request_free(serve_request *rq);

/* The client's id as the exact text it sent (integers above 2^53, 1e400), or
 * null when absent or not standard JSON (NaN, Infinity). */
void serve_put_id(js_buf *b, const js_value *id);

#endif
