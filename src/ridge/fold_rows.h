/* fold_rows.h — the rows of one outer fold, as every ridge solver sees
 * them: training rows first (original order), test rows last. Not a public
 * header. */
#ifndef BRAINALIGN_RIDGE_FOLD_ROWS_H
#define BRAINALIGN_RIDGE_FOLD_ROWS_H

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

#endif
