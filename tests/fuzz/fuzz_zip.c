/* fuzz_zip.c - libFuzzer target for convert/zip.c.
 *
 * The input becomes an in-memory file (memfd) opened with cv_zip_open_fd; then
 * the members a .keras reader asks for are read and sourced. Any failure must
 * come with a "zip: " message; success must hand out exactly the declared bytes.
 * Limits are lowered so that a deflate bomb cannot fill the disk.
 * Build: clang -fsanitize=fuzzer,address -std=c11 -D_GNU_SOURCE -I. \
 *        tests/fuzz/fuzz_zip.c convert/zip.c convert/common.c convert/json.c -o fuzz_zip -lz -lm
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "convert/json.h"
#include "convert/zip.h"

static void check_msg(const cv_err *e)
{
    if (strncmp(e->msg, "zip: ", 5) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz_zip", MFD_CLOEXEC);
    if (fd < 0) return 0;
    for (size_t off = 0; off < size;) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0) {
            close(fd);
            return 0;
        }
        off += (size_t)w;
    }
    cv_limits lim = cv_limits_default();
    lim.max_file_bytes = 16 << 20;
    cv_zip *z;
    cv_err e = { "" };
    if (cv_zip_open_fd(fd, &lim, &z, &e) < 0) {
        check_msg(&e);
        return 0;
    }
    static const char *names[] = { "config.json", "model.weights.h5", "metadata.json", "a" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!cv_zip_has(z, names[i])) continue;
        char *buf;
        size_t len;
        if (cv_zip_read(z, names[i], 1 << 20, &buf, &len, &e) == 0) {
            if (buf[len] != 0) abort();
            js_doc *doc;
            const js_value *root;
            char err[128];
            if (js_parse(buf, len, 64, &doc, &root, err, sizeof err) == 0) js_doc_free(doc);
            free(buf);
        } else {
            check_msg(&e);
        }
        cv_source s;
        if (cv_zip_source(z, names[i], &s, &e) == 0) {
            unsigned char b[16];
            size_t k = s.size < sizeof b ? (size_t)s.size : sizeof b;
            /* The first and last bytes of the member must be readable. */
            if (cv_source_read(&s, 0, b, k, &e) < 0 || cv_source_read(&s, s.size - k, b, k, &e) < 0) abort();
            cv_source_close(&s);
        } else {
            check_msg(&e);
        }
    }
    cv_zip_close(z);
    return 0;
}
