/* json_file.h - a fixture JSON file read and parsed in one call (tests only). */
#ifndef EFFCAM_TEST_JSON_FILE_H
#define EFFCAM_TEST_JSON_FILE_H

#include "convert/json.h"
#include "harness.h"

/* The root of path's JSON, owned by *doc (free with js_doc_free), or NULL when
 * the file is unreadable or not JSON (*doc is then NULL). The text is not kept:
 * the document holds its own copies of every string. */
static inline const js_value *t_json_file(const char *path, js_doc **doc)
{
    size_t len;
    char err[160];
    const js_value *root = NULL;
    char *text = t_slurp(path, &len);
    *doc = NULL;
    if (text && js_parse(text, len, 256, doc, &root, err, sizeof err)) {
        *doc = NULL;
        root = NULL;
    }
    free(text);
    return root;
}

/* A JSON array of n numbers into out[n]; 0 on a size or type mismatch. */
static inline int t_json_floats(const js_value *arr, float *out, size_t n)
{
    if (!arr || arr->type != JS_ARRAY || (size_t)arr->n != n) return 0;
    for (size_t i = 0; i < n; i++) {
        double v;
        if (js_num(&arr->items[i], &v)) return 0;
        out[i] = (float)v;
    }
    return 1;
}

#endif
