/* x_side.c — the design matrix X of one fold on the BLACS grid, as every
 * ScaLAPACK-based solver (dense, banded) builds it: read from the reader
 * in the fold's row order, checked finite, standardised with its training
 * rows' statistics. */
#include "x_side.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

/* Fill the local part of X (n x p, permuted rows) from the reader. */
ba_status ba_ridge_load_x(const ba_grid *grid, const ba_ridge_data *D, const ba_fold_rows *f,
                          ba_dmat *x, ba_error *err)
{
    ba_status rc = BA_OK;
    float *rows = NULL;
    int lld = x->desc[8];
    BA_ALLOC(rows, (size_t)x->nb * (size_t)D->p, "rows of X", done);
    for (int i0 = 0; i0 < x->mloc; i0 += x->nb) {
        int block = x->mloc - i0 < x->nb ? x->mloc - i0 : x->nb;
        long g0 = ba_dmat_global_row(x, grid, i0);
        /* The permuted rows [g0, g0 + block) are at most three runs of
         * consecutive original rows. */
        for (long g = g0; g < g0 + block;) {
            long run_end = ba_fold_run_end(f, g);
            if (run_end > g0 + block) run_end = g0 + block;
            long count = run_end - g, o = ba_fold_original_row(f, g);
            BA_TRY(D->read_x(D->x_ctx, o, count, rows, err), done);
            for (long r = 0; r < count; r++) {
                int i = i0 + (int)(g - g0 + r);
                for (int j = 0; j < x->nloc; j++) {
                    int gj = ba_dmat_global_col(x, grid, j);
                    float value = rows[r * D->p + gj];
                    if (!isfinite(value)) {
                        rc = ba_fail_about(err, BA_ABOUT_X, BA_ERR_VALUE, "X: sample %ld, feature %d is %s",
                                     o + r, gj, isnan(value) ? "NaN" : "infinite");
                        goto done;
                    }
                    x->data[(size_t)j * lld + i] = value;
                }
            }
            g = run_end;
        }
    }
done:
    free(rows);
    return rc;
}

/* Standardise every column with the mean and std (ddof 0) of its training
 * rows, like StandardScaler (a zero std becomes 1). Sums go over the
 * process rows of the grid. */
ba_status ba_ridge_standardise(const ba_grid *grid, MPI_Comm column_comm, long n_train,
                               ba_dmat *x, ba_error *err)
{
    ba_status rc = BA_OK;
    int lld = x->desc[8];
    /* Allocated and agreed on before the first collective: a rank out of
     * memory must not leave its peers waiting in the reduction. */
    double *sum = ba_calloc((size_t)(x->nloc > 0 ? x->nloc : 1), sizeof *sum,
                            "column statistics", err);
    BA_TRY(ba_mpi_agree(grid->comm, sum ? BA_OK : BA_ERR_NOMEM, err), done);
    for (int pass = 0; pass < 2; pass++) {
        for (int j = 0; j < x->nloc; j++) {
            double s = 0;
            const double *col = x->data + (size_t)j * lld;
            for (int i = 0; i < x->mloc; i++) {
                if (ba_dmat_global_row(x, grid, i) >= n_train) continue;
                double d = col[i];
                s += pass == 0 ? d : d * d;
            }
            sum[j] = s;
        }
        BA_TRY(ba_mpi_check(MPI_Allreduce(MPI_IN_PLACE, sum, x->nloc, MPI_DOUBLE, MPI_SUM,
                                          column_comm), "column statistics", err), done);
        for (int j = 0; j < x->nloc; j++) {
            double *col = x->data + (size_t)j * lld;
            if (pass == 0) {
                double mean = sum[j] / (double)n_train;
                for (int i = 0; i < x->mloc; i++) col[i] -= mean;
            } else {
                double sd = sqrt(sum[j] / (double)n_train);
                if (sd < 10 * DBL_EPSILON) sd = 1.0;
                for (int i = 0; i < x->mloc; i++) col[i] /= sd;
            }
        }
    }
done:
    free(sum);
    return rc;
}

