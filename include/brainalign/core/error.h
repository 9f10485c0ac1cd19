/* error.h — status codes and error messages, PETSc-style.
 *
 * Every fallible library function returns a ba_status (0 on success) and
 * takes a `ba_error *err` as its last argument; on failure it fills err
 * with a message that names the file, the object and what was expected,
 * e.g. "bold.h5:/stories/pieman/data has 290 TRs, features need 300".
 *
 *   BA_CHECK(call)            return the failure of `call` to our caller
 *   BA_TRY(call, label)       on failure of `call`, jump to cleanup `label`
 *                             (the enclosing function declares `ba_status rc`)
 *   return ba_fail(err, BA_ERR_SHAPE, "%s: ...", path, ...);
 *
 * Where: ba_fail records the place it is called from (file basename, line,
 * function) in err->origin, and every BA_CHECK / BA_TRY that passes the
 * failure up adds its own place, innermost first, up to
 * BA_ERROR_TRACE_DEPTH places ("fit.c:447 ba_fit_run < study.c:80 run_fit"),
 * then " < ..." once. This happens on the failure path only: a success costs
 * one comparison, as before. The origin is a field of its own, so the message
 * (which tests match and users read) is never truncated by it; the CLI prints
 * it after the message in brackets (not for usage errors). BA_CHECK and BA_TRY use the variable
 * `err` of the enclosing function (every fallible function has one).
 *
 * Which input is to blame: code that checks an input it knows only by its
 * role (the ridge engine sees "X" and "Y", not file names) marks the error
 * with ba_fail_about(); a caller that knows the files names the right one
 * from err->about, never from the message's text.
 *
 * The library keeps no global state: the error lives in the caller's
 * ba_error. */
#ifndef BRAINALIGN_ERROR_H
#define BRAINALIGN_ERROR_H

#include <stdarg.h>
#include <stddef.h>

typedef enum {
    BA_OK = 0,
    BA_ERR_USAGE,   /* bad command line or configuration                  */
    BA_ERR_IO,      /* cannot open, read, write or rename a file          */
    BA_ERR_FORMAT,  /* the file is not what it claims to be (corrupt ...) */
    BA_ERR_SHAPE,   /* dimensions disagree                                */
    BA_ERR_VALUE,   /* bad values: NaN/Inf, constant voxel, out of range  */
    BA_ERR_NOMEM,   /* allocation failed                                  */
    BA_ERR_MPI,     /* MPI, BLACS or HDF5-parallel failure                */
    BA_ERR_NUMERIC, /* a numerical routine failed (eigensolver ...)       */
    BA_ERR_INTERRUPTED, /* stopped by a signal; finished work was saved     */
    BA_ERR_INTERNAL /* a bug: an invariant did not hold                   */
} ba_status;

#define BA_ERROR_MESSAGE_MAX 1024
#define BA_ERROR_ORIGIN_MAX 256 /* room for the trail of places          */
#define BA_ERROR_TRACE_DEPTH 4  /* places kept in the trail, innermost first */

/* The input of a computation an error is about (see ba_fail_about). */
typedef enum {
    BA_ABOUT_NONE = 0,
    BA_ABOUT_X,     /* the features / design matrix of a fit */
    BA_ABOUT_Y      /* the responses (BOLD) of a fit          */
} ba_about;

typedef struct {
    ba_status code;
    char message[BA_ERROR_MESSAGE_MAX];
    /* "fit.c:447 ba_fit_run < study.c:80 run_fit": where the failure was
     * raised, then where it was passed up (at most BA_ERROR_TRACE_DEPTH). */
    char origin[BA_ERROR_ORIGIN_MAX];
    int depth;      /* places recorded in origin (may exceed the depth kept) */
    ba_about about; /* which input is to blame, when the raiser knows it */
} ba_error;

/* Clear an error record (code BA_OK, empty message). */
void ba_error_clear(ba_error *err);

/* Record a failure and return `code`. `err` may be NULL. ba_fail is a
 * macro that passes its place (BA_HERE) to ba_fail_at. */
ba_status ba_fail_at(const char *file, int line, const char *func, ba_error *err,
                     ba_status code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
#define BA_HERE __FILE__, __LINE__, __func__
/* (The status is also the macro's value, so that the compiler knows a
 * `return ba_fail(...)` fails: no "maybe uninitialised" on success paths.) */
static inline ba_status ba_failed_(ba_status recorded, ba_status code)
{
    (void)recorded;
    return code;
}
#define ba_fail(err, code, ...)                                                \
    ba_failed_(ba_fail_at(BA_HERE, (err), (code), __VA_ARGS__), (code))

/* ba_fail, and mark the error as being about input `about`. */
ba_status ba_fail_about_at(const char *file, int line, const char *func, ba_error *err,
                           ba_about about, ba_status code, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
#define ba_fail_about(err, about, code, ...)                                   \
    ba_failed_(ba_fail_about_at(BA_HERE, (err), (about), (code), __VA_ARGS__), (code))

/* Add a place to err's origin trail (what a failing BA_CHECK/BA_TRY does);
 * returns `rc`. Beyond BA_ERROR_TRACE_DEPTH places only " < ..." is added,
 * once. If err has no origin yet (a status returned without ba_fail), the
 * place becomes its origin. `err` may be NULL. (It returns nothing, so that
 * the compiler still sees BA_CHECK return the failing status itself.) */
void ba_error_trace(ba_error *err, const char *file, int line, const char *func);

/* Prepend context ("while reading X: ") to an existing message; returns
 * err->code so it can be used as `return ba_context(err, "...")`. */
ba_status ba_context(ba_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A short name for a status ("I/O error", "shape mismatch", ...). */
const char *ba_status_name(ba_status code);

/* malloc/calloc that record BA_ERR_NOMEM naming `what` on failure.
 * Zero-size requests return a valid unique pointer. */
void *ba_malloc(size_t bytes, const char *what, ba_error *err);
void *ba_calloc(size_t count, size_t size, const char *what, ba_error *err);

#define BA_CHECK(call)                                                         \
    do {                                                                       \
        ba_status ba_check_rc_ = (call);                                       \
        if (ba_check_rc_ != BA_OK) {                                           \
            ba_error_trace(err, BA_HERE);                                      \
            return ba_check_rc_;                                               \
        }                                                                      \
    } while (0)

#define BA_TRY(call, label)                                                    \
    do {                                                                       \
        rc = (call);                                                           \
        if (rc != BA_OK) {                                                     \
            ba_error_trace(err, BA_HERE);                                      \
            goto label;                                                        \
        }                                                                      \
    } while (0)

/* Allocate into `ptr` or jump to `label` with rc = BA_ERR_NOMEM. */
#define BA_ALLOC(ptr, count, what, label)                                      \
    do {                                                                       \
        (ptr) = ba_calloc((size_t)(count), sizeof *(ptr), (what), err);       \
        if ((ptr) == NULL) { rc = BA_ERR_NOMEM; goto label; }                  \
    } while (0)

#endif
