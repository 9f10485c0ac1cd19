/* ridge_internal.h — what ridge.c shares with ridge_ties.c: the rows of an
 * outer fold and the spectrum of its training design. Not a public header. */
#ifndef BRAINALIGN_RIDGE_INTERNAL_H
#define BRAINALIGN_RIDGE_INTERNAL_H

#include <stdbool.h>

#include "brainalign/ridge/ridge.h"
#include "brainalign/parallel/scalapack.h"

/* One outer fold. Rows are permuted so that the training rows come first
 * (original order) and the test rows last. */
typedef struct {
    long test_begin, test_end; /* original rows of the test fold */
    long n, n_train, n_test;
} ba_fold_rows;

/* The fold whose test rows are [test_begin, test_end) of n. */
static inline ba_fold_rows ba_fold_make(long n, long test_begin, long test_end)
{
    ba_fold_rows f = {test_begin, test_end, n, n - (test_end - test_begin),
                      test_end - test_begin};
    return f;
}

/* Original row of permuted row r. */
static inline long ba_fold_original_row(const ba_fold_rows *f, long r)
{
    if (r < f->test_begin) return r;
    if (r < f->n_train) return r + f->n_test;
    return r - f->n_train + f->test_begin;
}

/* End (exclusive) of the run of permuted rows starting at r that map to
 * consecutive original rows. */
static inline long ba_fold_run_end(const ba_fold_rows *f, long r)
{
    if (r < f->test_begin) return f->test_begin;
    if (r < f->n_train) return f->n_train;
    return f->n;
}

/* Training mean of local voxel v (y is [n][vloc]), summed in double in the
 * order of the permuted rows. */
static inline double ba_fold_train_mean(const ba_fold_rows *f, const float *y, long vloc,
                                        long v)
{
    double sum = 0;
    for (long r = 0; r < f->n_train; r++) sum += y[ba_fold_original_row(f, r) * vloc + v];
    return sum / (double)f->n_train;
}

/* What the voxel side needs from one fold: the spectral basis replicated
 * in float32 for the fast path, and the same basis distributed in double
 * precision for re-ranking near-tied alphas (ridge_ties.c). */
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

/* Re-decide the alpha of the listed voxels in double precision and
 * recompute their r (see ridge_ties.c). `voxels` are this rank's local
 * voxel indices (columns of y); r_out and alpha_out are this fold's rows
 * of the result, indexed by local voxel. Collective over grid->comm; every
 * rank of the grid calls it, with or without voxels. *n_group returns the
 * number of voxels re-ranked by the whole grid. */
ba_status ba_ridge_rerank_ties(const ba_grid *grid, const ba_fold_spectrum *S,
                               const ba_fold_rows *f, const ba_ridge_options *opt,
                               const float *y, long vloc, const long *voxels, long count,
                               float *r_out, float *alpha_out, long *n_group, ba_error *err);

/* Restart after failure (ridge_checkpoint.c), for both solvers. `who`
 * prefixes messages ("ridge CV"). Load marks in done[] the folds a
 * previous run with the same key finished and fills their rows of res;
 * anything unusable means starting afresh. Collective over L->world. */
void ba_ridge_checkpoint_load(const ba_ridge_layout *L, const ba_ridge_options *opt,
                              const char *who, ba_ridge_result *res, int *done);
/* After a round of folds [first, last): mark them done, save the
 * checkpoint (announced on rank 0 if `announce`), and fail with
 * BA_ERR_INTERRUPTED if a signal asked to stop and folds remain.
 * Collective over L->world. */
ba_status ba_ridge_end_of_round(const ba_ridge_layout *L, const ba_ridge_options *opt,
                                const char *who, bool announce, const ba_ridge_result *res,
                                int *done, int first, int last, ba_error *err);

#endif
