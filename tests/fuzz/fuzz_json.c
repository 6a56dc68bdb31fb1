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

/* Visits one value; containers are descended by walk(). */
static size_t visit(const js_value *v)
{
    long l;
    switch (v->type) {
    case JS_STRING:
        return v->len + (unsigned char)v->str[v->len];   /* the NUL must be there */
    case JS_NUMBER:
        return js_int(v, -1000, 1000, &l) == 0;
    case JS_OBJECT: {
        size_t sum = 0;
        for (int i = 0; i < v->n; i++) {
            sum += strlen(v->keys[i]);
            if (js_get(v, v->keys[i]) == NULL) abort();   /* every key finds a value */
        }
        return sum;
    }
    default:
        return 1;
    }
}

/* Iterative depth-first walk: one frame (container, next item) per level, so the
 * stack is bounded by the nesting depth (max_depth), not by the item count.
 * (An earlier version pushed every item of a container and overflowed its
 * 64-entry stack on a flat array of 65 numbers: found by fuzz_json.) */
static size_t walk(const js_value *root)
{
    enum { DEPTH = 64 };
    struct { const js_value *v; int next; } stack[DEPTH];
    int sp = 0;
    size_t sum = visit(root);
    if (root->type == JS_ARRAY || root->type == JS_OBJECT) {
        stack[0].v = root;
        stack[0].next = 0;
        sp = 1;
    }
    while (sp > 0) {
        const js_value *c = stack[sp - 1].v;
        if (stack[sp - 1].next >= c->n) {
            sp--;
            continue;
        }
        const js_value *v = &c->items[stack[sp - 1].next++];
        sum += visit(v);
        if (v->type == JS_ARRAY || v->type == JS_OBJECT) {
            if (sp == DEPTH) abort();   /* deeper than the parser's max_depth */
            stack[sp].v = v;
            stack[sp].next = 0;
            sp++;
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
