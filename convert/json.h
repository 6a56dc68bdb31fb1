/* json.h - a small JSON parser for hostile input (Keras configs, serve requests,
 * test fixtures). One arena per document; bounded depth; UTF-8 validated;
 * \u escapes (with surrogate pairs) decoded; numbers parsed with strtod. */
#ifndef EFFCAM_JSON_H
#define EFFCAM_JSON_H

#include <stddef.h>

typedef enum { JS_NULL, JS_FALSE, JS_TRUE, JS_NUMBER, JS_STRING, JS_ARRAY, JS_OBJECT } js_type;

typedef struct js_value js_value;
struct js_value {
    js_type type;
    double num;           /* JS_NUMBER */
    const char *str;      /* JS_STRING: decoded, NUL-terminated (may contain NUL: use len) */
    size_t len;
    int n;                /* JS_ARRAY / JS_OBJECT: number of items */
    js_value *items;      /* items[n] (array elements, object values in file order) */
    const char **keys;    /* JS_OBJECT: keys[n] */
    const char *raw;      /* the value's text in the parsed input (raw_len bytes, not NUL-terminated) */
    size_t raw_len;
};

typedef struct js_doc js_doc;   /* owns every value and string of one parse */

/* Parses text[0..len). max_depth bounds nesting (arrays + objects). On success
 * *root points into *doc; free with js_doc_free. On failure returns -1 and
 * writes "offset N: what" into err. Trailing non-space text is an error. */
int js_parse(const char *text, size_t len, int max_depth, js_doc **doc, const js_value **root,
             char *err, size_t errlen);
void js_doc_free(js_doc *doc);

/* Lookups: NULL when v is NULL, of the wrong type, or the key/index is absent.
 * js_get returns the last value for a duplicated key. */
const js_value *js_get(const js_value *obj, const char *key);
const js_value *js_at(const js_value *arr, int i);
const char *js_str(const js_value *v);                 /* NULL unless JS_STRING */
const char *js_get_str(const js_value *obj, const char *key);
/* 0 and *out on success; -1 if v is not a number */
int js_num(const js_value *v, double *out);
/* 0 if v is a number that is an integer in [lo, hi]; -1 otherwise */
int js_int(const js_value *v, long lo, long hi, long *out);
int js_bool(const js_value *v, int *out);              /* JS_TRUE/JS_FALSE */

/* Writes s as a JSON string literal (quotes, escapes, control chars as \u00XX)
 * into a growable buffer; returns 0 or -1 on OOM. */
typedef struct { char *buf; size_t len, cap; int oom; } js_buf;
void js_buf_puts(js_buf *b, const char *s);
void js_buf_printf(js_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void js_buf_string(js_buf *b, const char *s);          /* quoted + escaped */
void js_buf_free(js_buf *b);

#endif
