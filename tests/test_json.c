/* test_json.c - convert/json.c: valid documents, the fixture JSON files,
 * a table of hostile inputs, the js_buf writer, and parse speed. */
#include <dirent.h>
#include <math.h>
#include <time.h>

#include "convert/json.h"
#include "tests/harness.h"

/* Parses a copy in a buffer of exactly len bytes, so that under ASan any read
 * past the end (the text is not NUL-terminated) is caught. */
static int parse(const char *text, size_t len, int depth, js_doc **doc, const js_value **root, char *err)
{
    char *copy = malloc(len ? len : 1);
    if (!copy) abort();
    memcpy(copy, text, len);
    int rc = js_parse(copy, len, depth, doc, root, err, 256);
    free(copy);
    return rc;
}

/* ---- valid documents ---------------------------------------------------------- */

static void test_nested(void)
{
    const char *t = " {\"a\": [1, 2, {\"b\": null}], \"c\": {\"d\": true, \"e\": false}, \"f\": [], \"g\": {},"
                    " \"a2\": [[[]]], \"dup\": 1, \"dup\": 2}\n";
    js_doc *doc;
    const js_value *r;
    char err[256];
    if (parse(t, strlen(t), 256, &doc, &r, err) < 0) {
        t_fail("json/nested", "%s", err);
        return;
    }
    const js_value *a = js_get(r, "a");
    long l = 0;
    int b = -1;
    T_CHECK("json/nested: object and array shape", r->type == JS_OBJECT && r->n == 7 && a && a->n == 3,
            "type %d n %d", r->type, r->n);
    T_CHECK("json/nested: array items in order", js_int(js_at(a, 1), 0, 10, &l) == 0 && l == 2, "a[1] = %ld", l);
    T_CHECK("json/nested: null inside", js_get(js_at(a, 2), "b") && js_get(js_at(a, 2), "b")->type == JS_NULL,
            "a[2].b is not null");
    T_CHECK("json/nested: booleans", js_bool(js_get(js_get(r, "c"), "d"), &b) == 0 && b == 1 &&
            js_bool(js_get(js_get(r, "c"), "e"), &b) == 0 && b == 0, "c.d / c.e wrong");
    T_CHECK("json/nested: empty containers",
            js_get(r, "f")->type == JS_ARRAY && js_get(r, "f")->n == 0 && js_get(r, "g")->type == JS_OBJECT &&
            js_get(r, "g")->n == 0, "f / g wrong");
    T_CHECK("json/nested: duplicate key, last wins", js_int(js_get(r, "dup"), 0, 9, &l) == 0 && l == 2, "dup = %ld", l);
    T_CHECK("json/nested: lookups of the wrong kind give NULL",
            !js_get(a, "x") && !js_at(r, 0) && !js_at(a, 3) && !js_at(a, -1) && !js_get(r, "zz") &&
            !js_str(a) && !js_get_str(NULL, "a"), "non-NULL");
    js_doc_free(doc);

    /* A scalar root, and depth exactly at the limit. */
    T_CHECK("json/scalar root", parse(" 42 ", 4, 256, &doc, &r, err) == 0 && r->type == JS_NUMBER && r->num == 42,
            "%s", err);
    js_doc_free(doc);
    T_CHECK("json/depth == max_depth accepted", parse("[[[{\"a\":[]}]]]", 14, 5, &doc, &r, err) == 0, "%s", err);
    js_doc_free(doc);
    T_CHECK("json/depth == max_depth + 1 rejected", parse("[[[{\"a\":[[]]}]]]", 16, 5, &doc, &r, err) < 0 && !doc,
            "accepted");
}

static void test_strings(void)
{
    static const struct {
        const char *json, *want;
        size_t want_len;
    } cases[] = {
        { "\"plain\"", "plain", 5 },
        { "\"\"", "", 0 },
        { "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t", 8 },
        { "\"\\u0041\\u00e9\\u20AC\"", "A\xc3\xa9\xe2\x82\xac", 6 },
        { "\"\\ud83d\\ude00!\"", "\xf0\x9f\x98\x80!", 5 },           /* surrogate pair -> U+1F600 */
        { "\"\\uDBFF\\uDFFF\"", "\xf4\x8f\xbf\xbf", 4 },              /* U+10FFFF */
        { "\"a\\u0000b\"", "a\0b", 3 },                                /* NUL inside: len counts it */
        { "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xef\xbf\xbf\"", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xef\xbf\xbf", 12 },
        { "\"\x7f\"", "\x7f", 1 },                                     /* DEL is not a control char in JSON */
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        js_doc *doc;
        const js_value *r;
        char err[256];
        if (parse(cases[i].json, strlen(cases[i].json), 8, &doc, &r, err) < 0) {
            t_fail("json/strings", "case %zu: %s", i, err);
            bad = 1;
            continue;
        }
        if (r->type != JS_STRING || r->len != cases[i].want_len || memcmp(r->str, cases[i].want, r->len) != 0 ||
            r->str[r->len] != 0) {
            t_fail("json/strings", "case %zu decoded wrong (len %zu)", i, r->len);
            bad = 1;
        }
        js_doc_free(doc);
    }
    if (!bad) t_pass("json/strings: escapes, \\u, surrogate pairs, UTF-8 kept");
}

static void test_numbers(void)
{
    static const struct {
        const char *json;
        double want;
    } cases[] = {
        { "0", 0 }, { "-0", -0.0 }, { "7", 7 }, { "-12", -12 }, { "1.5", 1.5 }, { "1.5e3", 1500 },
        { "2E-2", 0.02 }, { "-2.25e+1", -22.5 }, { "123456789012", 123456789012.0 },
        { "0.1000000000000000055511151231257827", 0.1 },
        { "1e400", INFINITY }, { "NaN", NAN }, { "Infinity", INFINITY }, { "-Infinity", -INFINITY },
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        js_doc *doc;
        const js_value *r;
        char err[256];
        double d = 0;
        if (parse(cases[i].json, strlen(cases[i].json), 8, &doc, &r, err) < 0 || js_num(r, &d) < 0) {
            t_fail("json/numbers", "%s: %s", cases[i].json, err);
            bad = 1;
            continue;
        }
        int ok = isnan(cases[i].want) ? isnan(d) : (d == cases[i].want && signbit(d) == signbit(cases[i].want));
        if (!ok) {
            t_fail("json/numbers", "%s parsed as %.17g", cases[i].json, d);
            bad = 1;
        }
        js_doc_free(doc);
    }
    if (!bad) t_pass("json/numbers: grammar, exponents, NaN/Infinity");

    /* js_int: integral and in range only. */
    const char *t = "[3, 3.5, -1, 1e300, NaN, 9223372036854775807, -9223372036854775808, true]";
    js_doc *doc;
    const js_value *r;
    char err[256];
    if (parse(t, strlen(t), 8, &doc, &r, err) < 0) {
        t_fail("json/js_int", "%s", err);
        return;
    }
    long l = 0;
    int ok = js_int(js_at(r, 0), 0, 10, &l) == 0 && l == 3 && js_int(js_at(r, 1), 0, 10, &l) < 0 &&
             js_int(js_at(r, 2), 0, 10, &l) < 0 && js_int(js_at(r, 2), -5, 10, &l) == 0 && l == -1 &&
             js_int(js_at(r, 3), 0, 10, &l) < 0 && js_int(js_at(r, 4), -10, 10, &l) < 0 &&
             js_int(js_at(r, 5), 0, 9223372036854775807L, &l) < 0 &&   /* 2^63 after rounding */
             js_int(js_at(r, 6), -9223372036854775807L - 1, 0, &l) == 0 &&
             js_int(js_at(r, 7), 0, 1, &l) < 0;
    T_CHECK("json/js_int: integral, in range, no UB near 2^63", ok, "a js_int case is wrong");
    js_doc_free(doc);
}

/* ---- fixture files ------------------------------------------------------------- */

static const js_value *parse_file(const char *path, js_doc **doc, char **text)
{
    size_t len;
    const js_value *r = NULL;
    char err[256];
    *doc = NULL;
    *text = t_slurp(path, &len);
    if (!*text) {
        t_fail("json/fixture", "cannot read %s", path);
        return NULL;
    }
    if (parse(*text, len, 256, doc, &r, err) < 0) {
        t_fail("json/fixture", "%s: %s", path, err);
        return NULL;
    }
    return r;
}

static void test_fixtures(void)
{
    char path[1024], name[512];
    js_doc *doc;
    char *text;
    snprintf(path, sizeof path, "%s/manifest.json", t_local());
    const js_value *m = parse_file(path, &doc, &text);
    if (m) {
        const js_value *models = js_get(m, "models");
        int ok = js_get_str(m, "keras_version") && strcmp(js_get_str(m, "keras_version"), "3.15.1") == 0 &&
                 js_get(m, "class_names") && js_get(m, "class_names")->n == 7 && models && models->n >= 3;
        for (int i = 0; ok && i < models->n; i++) {
            long h = 0, w = 0;
            const js_value *hw = js_get(js_at(models, i), "input_hw");
            ok = js_get_str(js_at(models, i), "name") && js_int(js_at(hw, 0), 1, 4096, &h) == 0 &&
                 js_int(js_at(hw, 1), 1, 4096, &w) == 0;
        }
        T_CHECK("json/fixture manifest.json: keras_version, 7 classes, models", ok, "unexpected content");
    }
    js_doc_free(doc);
    free(text);

    snprintf(path, sizeof path, "%s/expected", t_local());
    DIR *d = opendir(path);
    if (!d) {
        t_fail("json/fixture expected", "cannot list %s", path);
        return;
    }
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/expected/%s/expected.json", t_local(), de->d_name);
        const js_value *r = parse_file(path, &doc, &text);
        if (r) {
            /* The name matches the directory; every case has 7 probabilities summing to 1. */
            const js_value *cases = js_get(r, "cases");
            int ok = js_get_str(r, "name") && strcmp(js_get_str(r, "name"), de->d_name) == 0 && cases && cases->n > 0;
            for (int i = 0; ok && i < cases->n; i++) {
                const js_value *probs = js_get(js_at(cases, i), "probs");
                double sum = 0, p;
                long top1 = -1;
                ok = probs && probs->n == 7 && js_int(js_get(js_at(cases, i), "top1"), 0, 6, &top1) == 0;
                for (int k = 0; ok && k < probs->n; k++) ok = js_num(js_at(probs, k), &p) == 0 && (sum += p, 1);
                ok = ok && fabs(sum - 1.0) < 1e-4;
            }
            snprintf(name, sizeof name, "json/fixture expected/%s/expected.json: name, cases, probs", de->d_name);
            T_CHECK(name, ok, "unexpected content");
            n++;
        }
        js_doc_free(doc);
        free(text);
    }
    closedir(d);
    T_CHECK("json/fixture expected: at least 3 models", n >= 3, "%d parsed", n);
}

/* ---- hostile input ------------------------------------------------------------- */

static void test_invalid(void)
{
    static const struct {
        const char *what, *text;
        size_t len;            /* 0: strlen */
        long offset;           /* expected error offset, -1: not checked */
    } cases[] = {
        { "empty input", "", 0, 0 },
        { "only whitespace", " \n\t ", 0, 4 },
        { "truncated array", "[1, 2", 0, 5 },
        { "truncated object", "{\"a\": 1", 0, 7 },
        { "truncated after key", "{\"a\"", 0, 4 },
        { "unterminated string", "\"abc", 0, 4 },
        { "trailing comma", "[1,]", 0, 3 },
        { "missing colon", "{\"a\" 1}", 0, 5 },
        { "non-string key", "{1: 2}", 0, 1 },
        { "missing comma", "[1 2]", 0, 3 },
        { "bad escape", "\"\\x\"", 0, 1 },
        { "bad \\u hex digit", "\"\\u12G4\"", 0, 1 },
        { "truncated \\u", "\"\\u12", 0, 1 },
        { "lone high surrogate", "\"\\ud800\"", 0, 1 },
        { "lone low surrogate", "\"\\udc00\"", 0, 1 },
        { "high surrogate + non-low", "\"\\ud800\\u0041\"", 0, 1 },
        { "UTF-8 bad continuation", "\"\xc3\x28\"", 0, 1 },
        { "UTF-8 overlong 2-byte", "\"\xc0\xaf\"", 0, 1 },
        { "UTF-8 overlong 3-byte", "\"\xe0\x80\xaf\"", 0, 1 },
        { "UTF-8 overlong 4-byte", "\"\xf0\x80\x80\xaf\"", 0, 1 },
        { "UTF-8 surrogate", "\"\xed\xa0\x80\"", 0, 1 },
        { "UTF-8 above U+10FFFF", "\"\xf4\x90\x80\x80\"", 0, 1 },
        { "UTF-8 truncated sequence", "\"\xe2\x82\"", 0, 1 },
        { "UTF-8 0xff byte", "\"\xff\"", 0, 1 },
        { "control char in string", "\"a\x01z\"", 0, 2 },
        { "raw newline in string", "\"a\nb\"", 0, 2 },
        { "leading zero", "01", 0, 0 },
        { "bare minus", "-", 0, 0 },
        { "no digit after dot", "1.", 0, 2 },
        { "leading dot", ".5", 0, 0 },
        { "empty exponent", "1e+", 0, 3 },
        { "plus sign", "+1", 0, 0 },
        { "truncated literal", "tru", 0, 0 },
        { "-NaN", "-NaN", 0, 0 },
        { "lowercase infinity", "infinity", 0, 0 },
        { "trailing garbage", "[1] x", 0, 4 },
        { "two roots", "{} {}", 0, 3 },
        { "NUL byte after value", "[1]\0", 4, 3 },
        { "single quotes", "['a']", 0, 1 },
        { "mismatched bracket", "[1}", 0, 2 },
        { "comment", "[1] // c", 0, 4 },
    };
    int n = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        js_doc *doc = (js_doc *)1;
        const js_value *r = (const js_value *)1;
        char err[256] = "", name[512];
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
        int rc = parse(cases[i].text, len, 256, &doc, &r, err);
        long off = -1;
        sscanf(err, "offset %ld:", &off);
        snprintf(name, sizeof name, "json/invalid: %s (%s)", cases[i].what, err);
        T_CHECK(name, rc == -1 && !doc && !r && strncmp(err, "offset ", 7) == 0 &&
                (cases[i].offset < 0 || off == cases[i].offset),
                "rc %d, error offset %ld, expected %ld", rc, off, cases[i].offset);
        if (rc == 0) js_doc_free(doc);
        n++;
    }

    /* Depth bomb: must fail fast at the limit, not recurse or allocate 100000 frames. */
    size_t len = 100000;
    char *bomb = malloc(len);
    memset(bomb, '[', len);
    js_doc *doc;
    const js_value *r;
    char err[256] = "", name[512];
    int rc = parse(bomb, len, 256, &doc, &r, err);
    snprintf(name, sizeof name, "json/invalid: 100000 '[' with max_depth 256 (%s)", err);
    T_CHECK(name, rc == -1 && strstr(err, "offset 256:") && strstr(err, "nesting"), "rc %d", rc);
    memset(bomb, '{', len);
    rc = parse(bomb, len, 256, &doc, &r, err);
    snprintf(name, sizeof name, "json/invalid: 100000 '{' (%s)", err);
    T_CHECK(name, rc == -1, "rc %d", rc);
    free(bomb);

    /* A small error buffer is truncated, never overrun; NULL err is fine. */
    char small[8];
    memset(small, 'x', sizeof small);
    rc = js_parse("[", 1, 8, &doc, &r, small, 6);
    T_CHECK("json/invalid: error buffer truncated safely", rc == -1 && small[5] == 0 && small[6] == 'x', "overrun");
    rc = js_parse("[", 1, 8, &doc, &r, NULL, 0);
    T_CHECK("json/invalid: NULL error buffer", rc == -1, "rc %d", rc);
}

/* ---- writer ----------------------------------------------------------------------- */

static void test_writer(void)
{
    js_buf b = { 0 };
    js_buf_puts(&b, "{");
    js_buf_string(&b, "k\"\\\x01\n\x1f\xc3\xa9\xf0\x9f\x98\x80/");
    js_buf_printf(&b, ":%d,", 42);
    js_buf_string(&b, "bad\xff\xc3");
    js_buf_puts(&b, ":[]}");
    const char *want = "{\"k\\\"\\\\\\u0001\\u000a\\u001f\xc3\xa9\xf0\x9f\x98\x80/\":42,\"bad\\ufffd\\ufffd\":[]}";
    T_CHECK("json/js_buf: escapes, UTF-8 kept, invalid bytes replaced", !b.oom && b.len == strlen(want) &&
            strcmp(b.buf, want) == 0, "got %s", b.buf ? b.buf : "(null)");

    /* Round trip: what the writer produces, the parser reads back identically. */
    js_doc *doc;
    const js_value *r;
    char err[256];
    int ok = js_parse(b.buf, b.len, 4, &doc, &r, err, sizeof err) == 0 && r->n == 2 &&
             strcmp(r->keys[0], "k\"\\\x01\n\x1f\xc3\xa9\xf0\x9f\x98\x80/") == 0 &&
             strcmp(r->keys[1], "bad\xef\xbf\xbd\xef\xbf\xbd") == 0;
    T_CHECK("json/js_buf: round trip through js_parse", ok, "%s", err);
    if (ok) js_doc_free(doc);
    js_buf_free(&b);
    T_CHECK("json/js_buf_free resets", !b.buf && !b.len && !b.cap, "not reset");
}

/* ---- speed ------------------------------------------------------------------------- */

static void test_speed(void)
{
    /* About 1 MB shaped like a Keras config: layers of small objects and numbers. */
    js_buf b = { 0 };
    js_buf_puts(&b, "{\"class_name\": \"Functional\", \"config\": {\"layers\": [");
    int n = 0;
    while (b.len < (1u << 20)) {
        js_buf_printf(&b, "%s{\"class_name\": \"Conv2D\", \"config\": {\"name\": \"block%d_conv\", \"filters\": %d, "
                      "\"kernel_size\": [3, 3], \"strides\": [1, 1], \"padding\": \"same\", \"use_bias\": false, "
                      "\"momentum\": 0.99, \"epsilon\": 0.001, \"rate\": NaN, \"dtype\": {\"module\": \"keras\", "
                      "\"class_name\": \"DTypePolicy\", \"config\": {\"name\": \"float32\"}}}, \"inbound_nodes\": "
                      "[{\"args\": [{\"class_name\": \"__keras_tensor__\", \"config\": {\"shape\": [null, 32, 32, 16], "
                      "\"keras_history\": [\"block%d\", 0, 0]}}], \"kwargs\": {\"\\u00e9\": \"\xc3\xa9\"}}]}",
                      n ? ", " : "", n, 16 + n % 64, n);
        n++;
    }
    js_buf_puts(&b, "]}}");
    if (b.oom) {
        t_fail("json/speed", "out of memory");
        return;
    }
    js_doc *doc;
    const js_value *r;
    char err[256];
    double best = 1e9;
    int ok = 1;
    for (int rep = 0; rep < 5 && ok; rep++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        ok = js_parse(b.buf, b.len, 256, &doc, &r, err, sizeof err) == 0;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
        if (ms < best) best = ms;
        if (ok) {
            ok = js_get(js_get(r, "config"), "layers")->n == n;
            js_doc_free(doc);
        }
    }
    char name[256];
    snprintf(name, sizeof name, "json/speed: %.2f MB config-like document in %.2f ms (best of 5)", b.len / 1e6, best);
    /* Generous bound: sanitizer builds run several times slower than -O2. */
    T_CHECK(name, ok && best < 200, "%s", ok ? "too slow" : err);
    js_buf_free(&b);
}

int main(void)
{
    test_nested();
    test_strings();
    test_numbers();
    test_fixtures();
    test_invalid();
    test_writer();
    test_speed();
    return t_failed;
}
