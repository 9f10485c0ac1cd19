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
    err->origin[0] = '\0';
    err->depth = 0;
    err->about = BA_ABOUT_NONE;
}

static const char *basename_of(const char *file)
{
    const char *slash = strrchr(file, '/');
    return slash ? slash + 1 : file;
}

/* Start the trail at (file, line, func). */
static void set_origin(ba_error *err, const char *file, int line, const char *func)
{
    snprintf(err->origin, sizeof err->origin, "%s:%d %s", basename_of(file), line, func);
    err->depth = 1;
}

static void vfail(const char *file, int line, const char *func, ba_error *err,
                  ba_about about, ba_status code, const char *fmt, va_list ap)
{
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    err->code = code;
    err->about = about;
    set_origin(err, file, line, func);
}

ba_status ba_fail_at(const char *file, int line, const char *func, ba_error *err,
                     ba_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vfail(file, line, func, err, BA_ABOUT_NONE, code, fmt, ap);
        va_end(ap);
    }
    return code;
}

ba_status ba_fail_about_at(const char *file, int line, const char *func, ba_error *err,
                           ba_about about, ba_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vfail(file, line, func, err, about, code, fmt, ap);
        va_end(ap);
    }
    return code;
}

void ba_error_trace(ba_error *err, const char *file, int line, const char *func)
{
    if (!err) return;
    /* A record never cleared nor failed into may hold anything: bound it. */
    err->origin[sizeof err->origin - 1] = '\0';
    if (err->depth <= 0 || err->depth > 1 << 20 || !err->origin[0]) {
        set_origin(err, file, line, func);
        return;
    }
    size_t len = strlen(err->origin);
    if (err->depth < BA_ERROR_TRACE_DEPTH) {
        char place[BA_ERROR_ORIGIN_MAX];
        int n = snprintf(place, sizeof place, " < %s:%d %s", basename_of(file), line, func);
        /* A place that does not fit whole is not added: the trail ends " < ...". */
        if (n > 0 && len + (size_t)n + 6 < sizeof err->origin) {
            memcpy(err->origin + len, place, (size_t)n + 1);
        } else if (len + 6 < sizeof err->origin) {
            memcpy(err->origin + len, " < ...", 7);
            err->depth = BA_ERROR_TRACE_DEPTH;
        }
    } else if (err->depth == BA_ERROR_TRACE_DEPTH && len + 6 < sizeof err->origin) {
        memcpy(err->origin + len, " < ...", 7);
    }
    err->depth++;
}

ba_status ba_context(ba_error *err, const char *fmt, ...)
{
    if (!err) return BA_ERR_INTERNAL;
    char prefix[BA_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    err->message[BA_ERROR_MESSAGE_MAX - 1] = '\0';
    size_t msg = strlen(err->message), pre = strlen(prefix);
    /* The root cause stays whole: when both do not fit, the context is
     * shortened ("...: "), and dropped when not even that fits. */
    size_t room = BA_ERROR_MESSAGE_MAX - 1 - msg; /* bytes free for "prefix: " */
    if (room < 2 + 4) return err->code;
    if (pre + 2 > room) {
        pre = room - 2 - 3;
        memcpy(prefix + pre, "...", 4);
        pre += 3;
    }
    memmove(err->message + pre + 2, err->message, msg + 1);
    memcpy(err->message, prefix, pre);
    err->message[pre] = ':';
    err->message[pre + 1] = ' ';
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
