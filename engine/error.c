/* error.c - status names and the per-thread last error. */
#include <stdarg.h>
#include <stdio.h>

#include "error.h"

static _Thread_local char last_error[512];

ec_status ec_fail(ec_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    /* One line, whatever the arguments: messages quote names from model files
     * (tensor, layer and value names are arbitrary bytes), so control characters
     * become '?' (found by fuzz_ecm: a newline in a tensor name). */
    for (char *p = last_error; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    return st;
}

const char *ec_last_error(void)
{
    return last_error;
}

const char *ec_status_str(ec_status st)
{
    switch (st) {
    case EC_OK: return "ok";
    case EC_ERR_ARG: return "invalid argument";
    case EC_ERR_IO: return "i/o error";
    case EC_ERR_FORMAT: return "corrupt or invalid model file";
    case EC_ERR_UNSUPPORTED: return "unsupported";
    case EC_ERR_IMAGE: return "cannot decode image";
    case EC_ERR_LIMIT: return "limit exceeded";
    case EC_ERR_NOMEM: return "out of memory";
    case EC_ERR_STATE: return "call out of order";
    case EC_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}
