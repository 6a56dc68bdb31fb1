/* fuzz_json.c - libFuzzer target for convert/json.c.
 *
 * Parses the input; on success walks the whole tree (so every pointer the
 * arena hands out is touched under ASan). Then checks the writer: the input as
 * a C string, written with js_buf_string and parsed back, must decode to the
 * same bytes when it was valid UTF-8.
 * Build: clang -fsanitize=fuzzer,address -std=c11 -D_GNU_SOURCE -I. \
 *        tests/fuzz/fuzz_json.c convert/json.c -o fuzz_json -lm
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "convert/json.h"

/* Iterative walk with an explicit stack: the tree may be as deep as max_depth. */
static size_t walk(const js_value *root)
{
    enum { DEPTH = 64 };
    const js_value *stack[DEPTH + 1];
    int sp = 0;
    size_t sum = 0;
    stack[sp++] = root;
    while (sp > 0) {
        const js_value *v = stack[--sp];
        switch (v->type) {
        case JS_STRING:
            sum += v->len + (unsigned char)v->str[v->len];   /* the NUL must be there */
            break;
        case JS_NUMBER: {
            long l;
            sum += js_int(v, -1000, 1000, &l) == 0;
            break;
        }
        case JS_OBJECT:
            for (int i = 0; i < v->n; i++) {
                sum += strlen(v->keys[i]);
                if (js_get(v, v->keys[i]) == NULL) abort();   /* every key finds a value */
            }
            /* fall through */
        case JS_ARRAY:
            for (int i = 0; i < v->n; i++) {
                if (sp > DEPTH) abort();
                stack[sp++] = &v->items[i];
            }
            break;
        default:
            sum++;
        }
    }
    return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    js_doc *doc;
    const js_value *root;
    char err[128];
    /* Fuzz text exactly as given (no NUL after it: catches reads past len). */
    if (js_parse((const char *)data, size, 32, &doc, &root, err, sizeof err) == 0) {
        volatile size_t s = walk(root);
        (void)s;
        js_doc_free(doc);
    } else if (strncmp(err, "offset ", 7) != 0) {
        abort();
    }

    /* Writer round trip on the input as a C string. */
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    js_buf b = { 0 };
    js_buf_string(&b, s);
    if (!b.oom) {
        if (js_parse(b.buf, b.len, 1, &doc, &root, err, sizeof err) != 0) abort();   /* output is always valid JSON */
        int valid_utf8 = strstr(b.buf, "\\ufffd") == NULL;
        if (valid_utf8 && strcmp(root->str, s) != 0) abort();
        js_doc_free(doc);
    }
    js_buf_free(&b);
    free(s);
    return 0;
}
