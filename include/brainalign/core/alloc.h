/* alloc.h — checked sizes for everything whose dimensions come from a file.
 *
 * A file's header can declare any extent: [2^31, 2^31] float32 is 16 EiB, and
 * `n * p * sizeof(float)` computed in size_t silently wraps to a few bytes.
 * Every allocation sized by a dimension read from a file goes through
 * ba_size_product / ba_alloc_array, which refuse
 *   - a negative dimension,
 *   - a product that overflows size_t,
 *   - a buffer larger than BA_ALLOC_MAX_BYTES (far beyond any real input:
 *     the limit catches implausible headers before malloc tries them),
 * with a message naming the object (`what`) and the dimension that made it
 * implausible. The buffers are zero-filled. */
#ifndef BRAINALIGN_ALLOC_H
#define BRAINALIGN_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#include "brainalign/core/error.h"

/* 1 TiB: more than any node this program runs on holds in one buffer. */
#define BA_ALLOC_MAX_BYTES ((uint64_t)1 << 40)

/* *bytes = n_a * n_b * elem_size, refused (BA_ERR_SHAPE) on overflow, on a
 * negative dimension or above BA_ALLOC_MAX_BYTES. */
ba_status ba_size_product(long long n_a, long long n_b, size_t elem_size, const char *what,
                          size_t *bytes, ba_error *err);

/* Same check for n_a * n_b * n_c elements (e.g. layers x words x width). */
ba_status ba_size_product3(long long n_a, long long n_b, long long n_c, size_t elem_size,
                           const char *what, size_t *bytes, ba_error *err);

/* A zero-filled buffer of n_a * n_b elements of elem_size bytes, or NULL
 * with err filled (BA_ERR_SHAPE for an implausible size, BA_ERR_NOMEM when
 * malloc fails). A zero-size request returns a valid unique pointer. */
void *ba_alloc_array(long long n_a, long long n_b, size_t elem_size, const char *what,
                     ba_error *err);

#endif
