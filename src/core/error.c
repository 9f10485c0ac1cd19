/* error.c — status codes and error messages (see error.h). */
#include "brainalign/core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ba_error_clear(ba_error *err)
{
    if (!err) return;
    err->code = BA_OK;
    err->message[0] = '\0';
}

ba_status ba_fail(ba_error *err, ba_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

ba_status ba_context(ba_error *err, const char *fmt, ...)
{
    if (!err) return BA_ERR_INTERNAL;
    char prefix[BA_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char joined[2 * BA_ERROR_MESSAGE_MAX + 2];
    snprintf(joined, sizeof joined, "%s: %s", prefix, err->message);
    memcpy(err->message, joined, BA_ERROR_MESSAGE_MAX - 1);
    err->message[BA_ERROR_MESSAGE_MAX - 1] = '\0';
    return err->code;
}

const char *ba_status_name(ba_status code)
{
    switch (code) {
    case BA_OK: return "ok";
    case BA_ERR_USAGE: return "usage error";
    case BA_ERR_IO: return "I/O error";
    case BA_ERR_FORMAT: return "format error";
    case BA_ERR_SHAPE: return "shape mismatch";
    case BA_ERR_VALUE: return "bad value";
    case BA_ERR_NOMEM: return "out of memory";
    case BA_ERR_MPI: return "MPI error";
    case BA_ERR_NUMERIC: return "numerical failure";
    case BA_ERR_INTERRUPTED: return "interrupted";
    case BA_ERR_INTERNAL: return "internal error";
    }
    return "unknown error";
}

void *ba_malloc(size_t bytes, const char *what, ba_error *err)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p)
        ba_fail(err, BA_ERR_NOMEM, "cannot allocate %zu bytes for %s", bytes,
                what);
    return p;
}

void *ba_calloc(size_t count, size_t size, const char *what, ba_error *err)
{
    if (count == 0 || size == 0) return calloc(1, 1);
    if (count > (size_t)-1 / size) {
        ba_fail(err, BA_ERR_NOMEM, "allocation of %zu x %zu bytes for %s overflows",
                count, size, what);
        return NULL;
    }
    void *p = calloc(count, size);
    if (!p)
        ba_fail(err, BA_ERR_NOMEM, "cannot allocate %zu bytes for %s",
                count * size, what);
    return p;
}
