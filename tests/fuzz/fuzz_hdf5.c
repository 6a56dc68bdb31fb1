/* fuzz_hdf5.c - libFuzzer target for the HDF5 reader.
 *
 * The input becomes a memfd (the reader only reads through a cv_source), then
 * the whole file is walked: every group (depth and object count bounded, since
 * a hostile file may link a group into itself), every attribute decoded as
 * strings, every dataset read as float32 (up to a size cap).
 *
 * Build (from the repository root):
 *   clang -g -O1 -std=c11 -D_GNU_SOURCE -I. -fsanitize=fuzzer,address,undefined \
 *     tests/fuzz/fuzz_hdf5.c convert/hdf5.c convert/common.c -lz -o build/fuzz_hdf5
 * Run with the small .h5 fixtures as seeds:
 *   build/fuzz_hdf5 -max_len=300000 CORPUS_DIR tests/fixtures/hdf5 tests/fixtures/models
 */
#include "convert/hdf5.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_DEPTH 8
#define MAX_OBJECTS 2000
#define MAX_ELEMS (1u << 16)   /* per dataset: an execution stays cheap */

typedef struct {
    cv_h5 *h;
    cv_err *e;
    int depth;
    int objects;
} walk;

typedef struct {
    walk *w;
    cv_h5_obj obj;
} attr_ctx;

static int visit(walk *w, cv_h5_obj obj);

static int on_attr(void *ctx, const char *name)
{
    attr_ctx *a = ctx;
    char **s;
    int n;
    if (cv_h5_attr_strings(a->w->h, a->obj, name, &s, &n, a->w->e) == 1) {
        size_t total = 0;
        for (int i = 0; i < n; i++) total += strlen(s[i]);   /* touch every string */
        (void)total;
        cv_h5_strings_free(s, n);
    }
    return 0;   /* non-string or corrupt attributes: keep walking */
}

static int on_link(void *ctx, const char *name, cv_h5_obj obj)
{
    (void)name;
    visit(ctx, obj);
    return 0;
}

static int visit(walk *w, cv_h5_obj obj)
{
    if (++w->objects > MAX_OBJECTS) return 1;
    attr_ctx a = { w, obj };
    cv_h5_attr_names(w->h, obj, on_attr, &a, w->e);
    int g = cv_h5_is_group(w->h, obj, w->e);
    if (g < 0) return -1;
    if (g == 1) {
        if (w->depth >= MAX_DEPTH) return 0;
        w->depth++;
        int r = cv_h5_list(w->h, obj, on_link, w, w->e);
        w->depth--;
        return r;
    }
    cv_h5_dataset_info info;
    if (cv_h5_dataset_info_get(w->h, obj, &info, w->e) != 0) return -1;
    if (info.nelem > MAX_ELEMS) return 0;
    float *buf = malloc(info.nelem ? info.nelem * sizeof *buf : 1);
    if (!buf) return -1;
    int r = cv_h5_dataset_read_f32(w->h, obj, buf, info.nelem, w->e);
    free(buf);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz_hdf5", MFD_CLOEXEC);
    if (fd < 0) abort();
    size_t off = 0;
    while (off < size) {
        ssize_t n = write(fd, data + off, size - off);
        if (n <= 0) abort();
        off += (size_t)n;
    }
    cv_source src = { fd, 0, size, 0 };
    cv_limits lim = cv_limits_default();
    lim.max_tensor_elems = MAX_ELEMS;
    cv_err e = { "" };
    cv_h5 *h = NULL;
    if (cv_h5_open(&src, &lim, &h, &e) == 0) {
        walk w = { h, &e, 0, 0 };
        visit(&w, cv_h5_root(h));
        cv_h5_close(h);
    }
    close(fd);
    return 0;
}
