/* fuzz_serve.c - libFuzzer target for serve's request parser
 * (cli/serve_request.c) and its base64 decoder (cli/common.c).
 *
 * Parses the input as one request line. Whatever happens, the error answer's
 * id must be valid standard JSON; for a parsed request, image_base64 is
 * decoded (into a buffer reused across inputs, as the worker does) and the
 * decoded length must fit the bound the decoder promises. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/serve_request.h"

static unsigned char *bin;
static size_t bin_cap;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    serve_request rq;
    char err[512];
    int rc = serve_request_parse((const char *)data, size, &rq, err, sizeof err);
    /* the echoed id must parse back as strict JSON and mean the same value */
    js_buf b = { 0 };
    serve_put_id(&b, rq.id);
    if (!b.oom) {
        js_doc *d = NULL;
        const js_value *v = NULL;
        char perr[128];
        if (js_parse(b.buf, b.len, SERVE_MAX_DEPTH, &d, &v, perr, sizeof perr) < 0) abort();
        if (rq.id && v->type != JS_NULL && v->type != rq.id->type) abort();
        js_doc_free(d);
    }
    js_buf_free(&b);
    if (rc == 0 && rq.data) {
        size_t len = 0;
        if (cli_base64_decode(rq.data, rq.data_len, &bin, &bin_cap, &len, err, sizeof err) == 0 &&
            len > rq.data_len / 4 * 3 + 3)
            abort();
    }
    serve_request_free(&rq);
    return 0;
}
