/* file.c - reading an input file whole and writing an output file atomically,
 * both refusing what is not a regular file.
 *
 * Reading: a FIFO or a device as the image path would block forever in open()
 * or read without end, so the path is stat'ed first and opened O_NONBLOCK, and
 * only a regular file is read, up to a size limit.
 * Writing: the bytes go to a temporary file in the target's directory that is
 * renamed onto the target, so readers see the old file or the whole new one;
 * on any failure the temporary is removed. The temporary is created unnamed
 * (O_TMPFILE) and given a name only once it is complete, so even a SIGKILL in
 * the middle of a write leaves nothing behind; where the file system lacks
 * O_TMPFILE, a named mkostemp file is used. A target that exists and is not a
 * regular file (/dev/null, a FIFO, a directory) is refused: renaming over it
 * would replace a device node with a PNG. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../engine/error.h"
#include "image.h"

const char *ec_path_clean(const char *s, char *out, size_t cap)
{
    size_t i = 0, j = 0;
    for (; s[i] && j + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        out[j++] = c < 0x20 || c == 0x7F ? '?' : (char)c;
    }
    if (s[i]) out[j++] = '.', out[j++] = '.', out[j++] = '.';   /* cut short */
    out[j] = 0;
    return out;
}

/* ---- reading ------------------------------------------------------------------ */

ec_status ec_file_open_regular(const char *path, uint64_t max_bytes, int *fdp, uint64_t *size)
{
    if (!path || !fdp || !size) return ec_fail(EC_ERR_ARG, "ec_file_open_regular: NULL argument");
    *fdp = -1;
    *size = 0;
    char pn[256];
    ec_path_clean(path, pn, sizeof pn);
    struct stat sb;
    if (stat(path, &sb) != 0) return ec_fail(EC_ERR_IO, "%s: cannot open: %s", pn, strerror(errno));
    if (S_ISDIR(sb.st_mode)) return ec_fail(EC_ERR_IO, "%s: is a directory, not a file", pn);
    if (!S_ISREG(sb.st_mode)) return ec_fail(EC_ERR_IO, "%s: not a regular file", pn);
    /* O_NONBLOCK: if the path was swapped for a FIFO since the stat, open does
     * not wait for a writer (and the fstat below refuses it) */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return ec_fail(EC_ERR_IO, "%s: cannot open: %s", pn, strerror(errno));
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return ec_fail(EC_ERR_IO, "%s: not a regular file", pn);
    }
    if ((uint64_t)sb.st_size > max_bytes) {
        close(fd);
        return ec_fail(EC_ERR_LIMIT, "%s: %lld bytes, over the %llu MiB limit", pn, (long long)sb.st_size,
                       (unsigned long long)(max_bytes >> 20));
    }
    *fdp = fd;
    *size = (uint64_t)sb.st_size;
    return EC_OK;
}

ec_status ec_file_read(const char *path, size_t max_bytes, uint8_t **buf, size_t *len)
{
    if (!path || !buf || !len) return ec_fail(EC_ERR_ARG, "ec_file_read: NULL argument");
    *buf = NULL;
    *len = 0;
    int fd;
    uint64_t size;
    ec_status st = ec_file_open_regular(path, max_bytes, &fd, &size);
    if (st != EC_OK) return st;
    char pn[256];
    ec_path_clean(path, pn, sizeof pn);
    /* one read of the known size; one byte more to notice a file that grew */
    size_t cap = (size_t)size + 1, n = 0;
    uint8_t *b = malloc(cap);
    if (!b) {
        close(fd);
        return ec_fail(EC_ERR_NOMEM, "%s: out of memory reading %zu bytes", pn, cap);
    }
    for (;;) {
        if (n == cap) {
            free(b);
            close(fd);
            return ec_fail(EC_ERR_IO, "%s: the file grew while it was read", pn);
        }
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(b);
            close(fd);
            return ec_fail(EC_ERR_IO, "%s: cannot read: %s", pn, strerror(e));
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    *buf = b;
    *len = n;
    return EC_OK;
}

/* ---- writing -------------------------------------------------------------------- */

static int ec_write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t r = write(fd, p, n > ((size_t)1 << 30) ? (size_t)1 << 30 : n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* The directory part of path ("." when there is none), in a malloc'd string. */
static char *ec_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    size_t n = (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (d) memcpy(d, path, n), d[n] = 0;
    return d;
}

ec_status ec_file_check_output(const char *path)
{
    if (!path || !*path) return ec_fail(EC_ERR_ARG, "empty output path");
    char pn[256];
    ec_path_clean(path, pn, sizeof pn);
    struct stat sb;
    if (lstat(path, &sb) == 0 && !S_ISREG(sb.st_mode) && !S_ISLNK(sb.st_mode))
        return ec_fail(EC_ERR_IO, "%s: exists and is not a regular file (refusing to replace it)", pn);
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))   /* a symlink to a device or a FIFO */
        return ec_fail(EC_ERR_IO, "%s: exists and is not a regular file (refusing to replace it)", pn);
    return EC_OK;
}

ec_status ec_file_write_atomic(const char *path, const void *a, size_t na, const void *b, size_t nb)
{
    ec_status st = ec_file_check_output(path);
    if (st != EC_OK) return st;
    char pn[256];
    ec_path_clean(path, pn, sizeof pn);
    size_t pl = strlen(path);
    char *tmp = malloc(pl + sizeof ".tmpXXXXXX");
    char *dir = ec_dir_of(path);
    if (!tmp || !dir) {
        free(tmp);
        free(dir);
        return ec_fail(EC_ERR_NOMEM, "out of memory");
    }
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmpXXXXXX", sizeof ".tmpXXXXXX");
    int named = 0;
    int fd = -1;
#ifdef O_TMPFILE
    fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
#endif
    if (fd < 0) {   /* no O_TMPFILE here: a named temporary, removed on every error path */
        fd = mkostemp(tmp, O_CLOEXEC);
        named = 1;
    }
    free(dir);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return ec_fail(EC_ERR_IO, "%s: cannot create a temporary file beside it: %s", pn, strerror(e));
    }
    const char *what = "write";
    int ok = ec_write_all(fd, a, na) == 0 && ec_write_all(fd, b, nb) == 0;
    /* mkstemp makes the file 0600; an output image is not secret */
    if (ok && named && fchmod(fd, 0644) != 0) ok = 0, what = "chmod";
    int e = ok ? 0 : errno;
    if (ok && !named) {
        /* give the complete file a name: linkat cannot replace, so a fresh
         * temporary name first, then the rename below */
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        for (int tries = 0; ok && tries < 100; tries++) {
            memcpy(tmp + pl, ".tmpXXXXXX", sizeof ".tmpXXXXXX");
            /* mktemp-style name: only a name, the linkat below fails if it exists */
            static const char az[] = "abcdefghijklmnopqrstuvwxyz0123456789";
            unsigned r = (unsigned)getpid() * 2654435761u ^ (unsigned)(uintptr_t)tmp ^ (unsigned)tries * 40503u;
            for (int i = 0; i < 6; i++, r = r * 1103515245u + 12345u) tmp[pl + 4 + i] = az[(r >> 16) % 36];
            if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) == 0) {
                named = 1;
                break;
            }
            if (errno != EEXIST) ok = 0, what = "link", e = errno;
        }
        if (ok && !named) ok = 0, what = "link", e = EEXIST;
    }
    if (close(fd) != 0 && ok) ok = 0, what = "close", e = errno;
    if (ok && rename(tmp, path) != 0) ok = 0, what = "rename", e = errno;
    if (!ok) {
        if (named) unlink(tmp);
        free(tmp);
        return ec_fail(EC_ERR_IO, "%s: cannot write (%s: %s)", pn, what, strerror(e ? e : EIO));
    }
    free(tmp);
    return EC_OK;
}

ec_status ec_image_save_ppm(const char *path, const uint8_t *rgb, int w, int h)
{
    if (!rgb || !path) return ec_fail(EC_ERR_ARG, "ec_image_save_ppm: NULL argument");
    if (w <= 0 || h <= 0) return ec_fail(EC_ERR_ARG, "ec_image_save_ppm: bad size %dx%d", w, h);
    char hdr[64];
    int hl = snprintf(hdr, sizeof hdr, "P6\n%d %d\n255\n", w, h);
    return ec_file_write_atomic(path, hdr, (size_t)hl, rgb, (size_t)w * (size_t)h * 3);
}
