/* fuzz_labels.c - libFuzzer target for the labels reader (cv_graph_set_labels).
 *
 * The first input byte picks the model's class count (1..16); the rest is the
 * labels file, held in a memfd and opened by path (/proc/self/fd/N) as a
 * user's --labels file would be. Accepted labels must be exactly that many,
 * each one line: non-empty, no NUL, no '\n', no trailing '\r', at most 1023
 * bytes. A refusal must come with a one-line message.
 *
 *   build/fuzz/fuzz_labels -max_len=4096 CORPUS_DIR tests/fuzz/seeds/labels
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "convert/cv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int k = data[0] % 16 + 1;
    int fd = memfd_create("fuzz_labels", MFD_CLOEXEC);
    if (fd < 0) return 0;
    for (size_t off = 1; off < size;) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0) {
            close(fd);
            return 0;
        }
        off += (size_t)w;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    cv_graph g;
    cv_graph_init(&g);
    int v = cv_graph_add_value(&g, "out", 1, 1, k);
    if (v < 0) abort();
    g.output_value = v;
    cv_err e = { "" };
    if (cv_graph_set_labels(&g, path, &e) == 0) {
        if (g.n_labels != k) abort();
        for (int i = 0; i < k; i++) {
            const char *s = g.labels[i];
            size_t n = strlen(s);
            if (n == 0 || n > 1023 || strchr(s, '\n') || s[n - 1] == '\r') abort();
        }
        /* the labels' bytes are the file's, in order: nothing invented */
        size_t total = 0;
        for (int i = 0; i < k; i++) total += strlen(g.labels[i]);
        if (total > size - 1) abort();
    } else if (!e.msg[0] || strchr(e.msg, '\n')) {
        abort();
    }
    cv_graph_free(&g);
    close(fd);
    return 0;
}
