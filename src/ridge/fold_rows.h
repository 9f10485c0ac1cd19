/* fold_rows.h — the rows of one outer fold, as every ridge solver sees
 * them: training rows first (original order), test rows last. Not a public
 * header. */
#ifndef BRAINALIGN_RIDGE_FOLD_ROWS_H
#define BRAINALIGN_RIDGE_FOLD_ROWS_H

/* One outer fold. Rows are permuted so that the training rows come first
 * (original order) and the test rows last. With a fold gap (--fold-gap G)
 * the original rows [gap_begin, gap_end) = [test_begin - G, test_end + G)
 * (clipped to [0, n_total)) are left out of the training rows, and the
 * permuted rows number n = n_train + n_test < n_total; the rows inside the
 * gap but outside the test fold take part in nothing. Without a gap,
 * gap_begin = test_begin, gap_end = test_end and n = n_total. */
typedef struct {
    long test_begin, test_end; /* original rows of the test fold */
    long n, n_train, n_test;   /* permuted rows: n = n_train + n_test */
    long gap_begin, gap_end;   /* original rows excluded from training */
    long n_total;              /* rows of the whole data set */
} ba_fold_rows;

/* The fold whose test rows are [test_begin, test_end) of n_total, with
 * `gap` rows on each side of it left out of the training rows. */
static inline ba_fold_rows ba_fold_make_gap(long n_total, long test_begin, long test_end,
                                            long gap)
{
    long gb = test_begin - gap < 0 ? 0 : test_begin - gap;
    long ge = test_end + gap > n_total ? n_total : test_end + gap;
    long n_test = test_end - test_begin, n_train = n_total - (ge - gb);
    ba_fold_rows f = {test_begin, test_end, n_train + n_test, n_train, n_test, gb, ge,
                      n_total};
    return f;
}

/* The fold whose test rows are [test_begin, test_end) of n (no gap). */
static inline ba_fold_rows ba_fold_make(long n, long test_begin, long test_end)
{
    return ba_fold_make_gap(n, test_begin, test_end, 0);
}

/* Original row of permuted row r. */
static inline long ba_fold_original_row(const ba_fold_rows *f, long r)
{
    if (r < f->gap_begin) return r;
    if (r < f->n_train) return r + (f->gap_end - f->gap_begin);
    return r - f->n_train + f->test_begin;
}

/* End (exclusive) of the run of permuted rows starting at r that map to
 * consecutive original rows. */
static inline long ba_fold_run_end(const ba_fold_rows *f, long r)
{
    if (r < f->gap_begin) return f->gap_begin;
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
