/* spectrum.h — what the dense solver (solver_dense.c) keeps of one fold's
 * training design, shared with its near-tie re-ranking (ties.c). Not a
 * public header. */
#ifndef BRAINALIGN_RIDGE_SPECTRUM_H
#define BRAINALIGN_RIDGE_SPECTRUM_H

#include <stdbool.h>

#include "brainalign/parallel/scalapack.h"

/* The spectral basis replicated in float32 for the fast path, and the same
 * basis distributed in double precision for re-ranking near-tied alphas. */
typedef struct {
    bool dual;
    long n_train, n_test, m;
    float *basis;        /* [n_train][m] */
    float *test_basis;   /* [n_test][m] */
    double *eig;         /* [m], >= 0 */
    double *denominator; /* [n_alphas][n_train], from the double basis */
    /* Distributed, double. dual: exact = Q (n_train x m) and exact_test =
     * X_te X_trᵀ Q; primal: exact = [X_tr; X_te] V (n x p), whose rows from
     * n_train on are the test basis, and exact_test is empty. */
    ba_dmat exact, exact_test;
} ba_fold_spectrum;

/* The double-precision test basis: matrix and first row (1-based, as
 * ScaLAPACK counts). */
static inline const ba_dmat *ba_fold_test_basis(const ba_fold_spectrum *S, int *row1)
{
    *row1 = S->dual ? 1 : (int)S->n_train + 1;
    return S->dual ? &S->exact_test : &S->exact;
}

#endif
