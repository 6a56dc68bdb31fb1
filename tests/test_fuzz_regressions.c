/* test_fuzz_regressions.c - replays fuzz inputs through the fuzz targets.
 *
 * Every tests/fuzz/fuzz_NAME.c is also compiled into this test (without
 * libFuzzer), its entry points renamed by the Makefile to ec_fuzz_NAME_one
 * and ec_fuzz_NAME_init; EC_FUZZ_TARGETS lists the names as X(NAME) X(...).
 * For each target, every file in
 *   tests/fuzz/regressions/NAME/   inputs that once crashed the target
 *   tests/fuzz/seeds/NAME/         its committed seeds
 *   a fixture directory            where the target has one (images, ...)
 * runs through the target's LLVMFuzzerTestOneInput in a child process, so a
 * crash, a sanitizer report or a leak names the file. In the sanitizer build
 * this is the fuzz harness under ASan+UBSan on every known input.
 */
#include <dirent.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/harness.h"

#ifndef EC_FUZZ_TARGETS
#error "EC_FUZZ_TARGETS must list the fuzz targets (the Makefile defines it)"
#endif

typedef int (*fuzz_one_fn)(const uint8_t *data, size_t size);
typedef int (*fuzz_init_fn)(int *argc, char ***argv);

/* Every target has an entry; the initializer is optional (weak). */
#define X(n)                                                          \
    int ec_fuzz_##n##_one(const uint8_t *data, size_t size);          \
    int ec_fuzz_##n##_init(int *argc, char ***argv) __attribute__((weak));
EC_FUZZ_TARGETS
#undef X

typedef struct {
    const char *name;
    fuzz_one_fn one;
    fuzz_init_fn init;
} target;

#define X(n) { #n, ec_fuzz_##n##_one, ec_fuzz_##n##_init },
static const target targets[] = { EC_FUZZ_TARGETS };
#undef X

/* Fixture directories (under EC_LOCAL) that are also inputs of a target. */
static const struct { const char *target, *dir; } fixture_dirs[] = {
    { "image", "images" },
    { "jpeg", "images" },
    { "hdf5", "hdf5" },
};

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted regular file names of dir (malloc'd), or NULL with *n = 0. */
static char **list_dir(const char *dir, int *n)
{
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char **names = NULL;
    int cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            char **p = realloc(names, (size_t)cap * sizeof *p);
            if (!p) break;
            names = p;
        }
        if (!(names[*n] = strdup(de->d_name))) break;
        (*n)++;
    }
    closedir(d);
    if (*n) qsort(names, (size_t)*n, sizeof *names, cmp_str);
    return names;
}

/* Runs one file through t in a child. 0 ok, -1 with why[] filled. */
static int run_file(const target *t, const char *path, char *why, size_t cap)
{
    size_t len;
    char *data = t_slurp(path, &len);
    if (!data) {
        snprintf(why, cap, "cannot read");
        return -1;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        free(data);
        snprintf(why, cap, "fork failed");
        return -1;
    }
    if (pid == 0) {
        if (t->init) {
            int argc = 1;
            char *args[] = { (char *)"test_fuzz_regressions", NULL }, **argv = args;
            t->init(&argc, &argv);
        }
        /* An exact-size copy: reads past the end are caught under ASan. */
        uint8_t *copy = malloc(len ? len : 1);
        if (!copy) _exit(3);
        memcpy(copy, data, len);
        free(data);
        t->one(copy, len);
        free(copy);
        exit(0);   /* not _exit: LeakSanitizer runs at exit */
    }
    free(data);
    int st;
    if (waitpid(pid, &st, 0) < 0) {
        snprintf(why, cap, "waitpid failed");
        return -1;
    }
    if (WIFSIGNALED(st)) {
        snprintf(why, cap, "killed by signal %d", WTERMSIG(st));
        return -1;
    }
    if (WEXITSTATUS(st) != 0) {
        snprintf(why, cap, "exit status %d (sanitizer report above)", WEXITSTATUS(st));
        return -1;
    }
    return 0;
}

/* All files of dir through t; returns how many were run, counts failures. */
static int run_dir(const target *t, const char *dir, int *failed)
{
    int n;
    char **names = list_dir(dir, &n);
    for (int i = 0; i < n; i++) {
        char path[1024], why[128], name[256];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (run_file(t, path, why, sizeof why)) {
            snprintf(name, sizeof name, "fuzz-regressions/%s: %s", t->name, names[i]);
            t_fail(name, "%s (%s)", why, path);
            (*failed)++;
        }
        free(names[i]);
    }
    free(names);
    return n;
}

int main(void)
{
    const char *local = t_local();
    char root[512], keras[600];
    /* tests/fuzz sits next to the fixtures directory. */
    snprintf(root, sizeof root, "%s/../fuzz", local);
    snprintf(keras, sizeof keras, "%s/models/tiny_v2s_64.keras", local);
    setenv("EC_FUZZ_KERAS", keras, 0);

    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        const target *t = &targets[i];
        char dir[700], name[128];
        int failed = 0, regressions, seeds, fixtures = 0;
        snprintf(dir, sizeof dir, "%s/regressions/%s", root, t->name);
        regressions = run_dir(t, dir, &failed);
        snprintf(dir, sizeof dir, "%s/seeds/%s", root, t->name);
        seeds = run_dir(t, dir, &failed);
        for (size_t k = 0; k < sizeof fixture_dirs / sizeof fixture_dirs[0]; k++)
            if (!strcmp(fixture_dirs[k].target, t->name)) {
                snprintf(dir, sizeof dir, "%s/%s", local, fixture_dirs[k].dir);
                fixtures += run_dir(t, dir, &failed);
            }
        snprintf(name, sizeof name, "fuzz-regressions/%s: %d regression, %d seed, %d fixture inputs", t->name,
                 regressions, seeds, fixtures);
        if (failed == 0 && regressions + seeds + fixtures > 0) t_pass(name);
        else if (failed == 0) t_skip(name, "no inputs");
        else t_fail(name, "%d of them failed", failed);
    }
    return t_failed;
}
