/* serve_request.c - a request line of `effcam serve` (serve_request.h). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/serve_request.h"

/* An optional string field: 0 and *out (NULL when absent or null), -1 if another type. */
static int opt_string(const js_value *obj, const char *key, const char **out)
{
    const js_value *v = js_get(obj, key);
    *out = NULL;
    if (!v || v->type == JS_NULL) return 0;
    if (v->type != JS_STRING || strlen(v->str) != v->len) return -1;   /* no NUL inside */
    *out = v->str;
    return 0;
}

int serve_request_parse(const char *line, size_t len, serve_request *rq, char *err, size_t errlen)
{
    memset(rq, 0, sizeof *rq);
    rq->top_k = SERVE_DEFAULT_TOP_K;
    const js_value *req = NULL;
    char perr[256];
    if (js_parse(line, len, SERVE_MAX_DEPTH, &rq->doc, &req, perr, sizeof perr) < 0) {
        rq->doc = NULL;
        snprintf(err, errlen, "invalid JSON: %s", perr);
        return -1;
    }
    if (req->type != JS_OBJECT) {
        snprintf(err, errlen, "a request must be a JSON object");
        return -1;
    }
    rq->id = js_get(req, "id");
    const js_value *path = js_get(req, "image"), *data = js_get(req, "image_base64");
    const js_value *cam_v = js_get(req, "cam"), *topk_v = js_get(req, "top_k");
    if (path && path->type == JS_NULL) path = NULL;
    if (data && data->type == JS_NULL) data = NULL;
    if (!path == !data) {
        snprintf(err, errlen, "%s", path ? "give either \"image\" or \"image_base64\", not both"
                                         : "missing \"image\" (a file path) or \"image_base64\"");
        return -1;
    }
    if (path && (path->type != JS_STRING || strlen(path->str) != path->len)) {
        snprintf(err, errlen, "\"image\" must be a file path (a string)");
        return -1;
    }
    if (data && data->type != JS_STRING) {
        snprintf(err, errlen, "\"image_base64\" must be a string");
        return -1;
    }
    if (cam_v && cam_v->type != JS_NULL && js_bool(cam_v, &rq->cam)) {
        snprintf(err, errlen, "\"cam\" must be true or false");
        return -1;
    }
    if (topk_v && topk_v->type != JS_NULL && js_int(topk_v, 1, INT_MAX, &rq->top_k)) {
        snprintf(err, errlen, "\"top_k\" must be a positive integer");
        return -1;
    }
    static const char *const names[] = { "resize", "cam_method", "cam_layer" };
    const char **outs[] = { &rq->resize, &rq->cam_method, &rq->cam_layer };
    for (int i = 0; i < 3; i++)
        if (opt_string(req, names[i], outs[i])) {
            snprintf(err, errlen, "\"%s\" must be a string", names[i]);
            return -1;
        }
    rq->image = path ? path->str : NULL;
    rq->data = data ? data->str : NULL;
    rq->data_len = data ? data->len : 0;
    return 0;
}

void serve_request_free(serve_request *rq)
{
    js_doc_free(rq->doc);
    memset(rq, 0, sizeof *rq);
}

/* 1 if raw (a value the parser accepted) is standard JSON: the parser also
 * takes NaN and Infinity (Keras writes them), which no client should get back. */
static int strict_json(const char *raw, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (raw[i] == '"') {
            for (i++; i < n && raw[i] != '"'; i++)
                if (raw[i] == '\\') i++;
        } else if (raw[i] == 'N' || raw[i] == 'I') {
            return 0;
        }
    }
    return 1;
}

void serve_put_id(js_buf *b, const js_value *id)
{
    if (!id || !id->raw || !strict_json(id->raw, id->raw_len)) {
        js_buf_puts(b, "null");
        return;
    }
    char *t = malloc(id->raw_len + 1);
    if (!t) {
        b->oom = 1;
        return;
    }
    memcpy(t, id->raw, id->raw_len);
    t[id->raw_len] = 0;
    js_buf_puts(b, t);
    free(t);
}
