/* alloc.c — checked sizes and allocations (see alloc.h). */
#include "brainalign/core/alloc.h"

#include <stdlib.h>

static ba_status check_dim(long long n, const char *which, const char *what, ba_error *err)
{
    if (n < 0)
        return ba_fail(err, BA_ERR_SHAPE, "%s: %s is negative (%lld)", what, which, n);
    return BA_OK;
}

/* acc *= n, refusing a product above the limit; `which` names the factor. */
static ba_status mul_checked(uint64_t *acc, long long n, const char *which, const char *what,
                             ba_error *err)
{
    uint64_t f = (uint64_t)n;
    if (f != 0 && *acc > BA_ALLOC_MAX_BYTES / f)
        return ba_fail(err, BA_ERR_SHAPE,
                       "%s: implausible size: %s = %lld makes the buffer larger than %llu "
                       "bytes (corrupt or hostile header?)",
                       what, which, n, (unsigned long long)BA_ALLOC_MAX_BYTES);
    *acc *= f;
    return BA_OK;
}

static ba_status product(const long long *dims, const char *const *names, int n,
                         size_t elem_size, const char *what, size_t *bytes, ba_error *err)
{
    uint64_t acc = elem_size;
    int zero = 0;
    for (int i = 0; i < n; i++) {
        BA_CHECK(check_dim(dims[i], names[i], what, err));
        if (dims[i] == 0) zero = 1;
    }
    if (zero) { *bytes = 0; return BA_OK; }
    if (acc > BA_ALLOC_MAX_BYTES)
        return ba_fail(err, BA_ERR_SHAPE, "%s: element size %zu is implausible", what,
                       elem_size);
    for (int i = 0; i < n; i++) BA_CHECK(mul_checked(&acc, dims[i], names[i], what, err));
    if (acc > (uint64_t)SIZE_MAX)
        return ba_fail(err, BA_ERR_SHAPE, "%s: %llu bytes do not fit in memory here", what,
                       (unsigned long long)acc);
    *bytes = (size_t)acc;
    return BA_OK;
}

ba_status ba_size_product(long long n_a, long long n_b, size_t elem_size, const char *what,
                          size_t *bytes, ba_error *err)
{
    const long long dims[2] = {n_a, n_b};
    const char *const names[2] = {"the first dimension", "the second dimension"};
    return product(dims, names, 2, elem_size, what, bytes, err);
}

ba_status ba_size_product3(long long n_a, long long n_b, long long n_c, size_t elem_size,
                           const char *what, size_t *bytes, ba_error *err)
{
    const long long dims[3] = {n_a, n_b, n_c};
    const char *const names[3] = {"the first dimension", "the second dimension",
                                  "the third dimension"};
    return product(dims, names, 3, elem_size, what, bytes, err);
}

void *ba_alloc_array(long long n_a, long long n_b, size_t elem_size, const char *what,
                     ba_error *err)
{
    size_t bytes = 0;
    if (ba_size_product(n_a, n_b, elem_size, what, &bytes, err) != BA_OK) return NULL;
    void *p = calloc(bytes ? bytes : 1, 1);
    if (!p) ba_fail(err, BA_ERR_NOMEM, "cannot allocate %zu bytes for %s", bytes, what);
    return p;
}
