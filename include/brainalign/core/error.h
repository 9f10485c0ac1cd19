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

typedef struct {
    ba_status code;
    char message[BA_ERROR_MESSAGE_MAX];
} ba_error;

/* Clear an error record (code BA_OK, empty message). */
void ba_error_clear(ba_error *err);

/* Record a failure and return `code`. `err` may be NULL. */
ba_status ba_fail(ba_error *err, ba_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

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
        if (ba_check_rc_ != BA_OK) return ba_check_rc_;                        \
    } while (0)

#define BA_TRY(call, label)                                                    \
    do {                                                                       \
        rc = (call);                                                           \
        if (rc != BA_OK) goto label;                                           \
    } while (0)

/* Allocate into `ptr` or jump to `label` with rc = BA_ERR_NOMEM. */
#define BA_ALLOC(ptr, count, what, label)                                      \
    do {                                                                       \
        (ptr) = ba_calloc((size_t)(count), sizeof *(ptr), (what), err);       \
        if ((ptr) == NULL) { rc = BA_ERR_NOMEM; goto label; }                  \
    } while (0)

#endif
