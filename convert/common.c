/* common.c - converter plumbing: error messages, limits, pread byte sources. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cv.h"
#include "engine/ecm_format.h"

int cv_fail(cv_err *e, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        /* One line, whatever the arguments: messages quote layer and model names
         * from the config (any JSON string), so control characters become '?'
         * (found by fuzz_keras: a newline in a model name). */
        for (char *p = e->msg; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    }
    return -1;
}

cv_limits cv_limits_default(void)
{
    cv_limits l;
    l.max_file_bytes = (uint64_t)2 << 30;
    l.max_tensor_elems = (uint64_t)256 << 20;
    l.max_total_elems = (uint64_t)512 << 20;
    l.max_activation_bytes = (uint64_t)ECM_DEFAULT_MAX_ACTIVATION_BYTES;
    l.max_layers = 100000;
    l.max_json_depth = 256;
    return l;
}

int cv_source_read(const cv_source *s, uint64_t off, void *buf, size_t len, cv_err *e)
{
    /* Both checks, so that off + len cannot wrap. */
    if (off > s->size || len > s->size - off)
        return cv_fail(e, "read of %zu bytes at offset %llu is past the end (%llu bytes)",
                       len, (unsigned long long)off, (unsigned long long)s->size);
    unsigned char *p = buf;
    uint64_t pos = s->base + off;
    while (len > 0) {
        ssize_t r = pread(s->fd, p, len, (off_t)pos);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return cv_fail(e, "read error: %s", strerror(errno));
        if (r == 0) return cv_fail(e, "unexpected end of file");
        p += r;
        pos += (uint64_t)r;
        len -= (size_t)r;
    }
    return 0;
}

int cv_source_open_file(const char *path, const cv_limits *lim, cv_source *out, cv_err *e)
{
    memset(out, 0, sizeof *out);
    out->fd = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return cv_fail(e, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return cv_fail(e, "cannot stat: %s", strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return cv_fail(e, "is a directory");
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return cv_fail(e, "not a regular file");
    }
    if (lim && (uint64_t)st.st_size > lim->max_file_bytes) {
        close(fd);
        return cv_fail(e, "file of %lld bytes exceeds the limit of %llu bytes",
                       (long long)st.st_size, (unsigned long long)lim->max_file_bytes);
    }
    out->fd = fd;
    out->base = 0;
    out->size = (uint64_t)st.st_size;
    out->owns_fd = 1;
    return 0;
}

void cv_source_close(cv_source *s)
{
    if (s && s->owns_fd && s->fd >= 0) close(s->fd);
    if (s) {
        s->fd = -1;
        s->owns_fd = 0;
    }
}
