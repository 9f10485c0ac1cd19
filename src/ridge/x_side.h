/* x_side.h — the design matrix of one fold on the grid (x_side.c), shared
 * by the ScaLAPACK-based solvers. Not a public header. */
#ifndef BRAINALIGN_RIDGE_X_SIDE_H
#define BRAINALIGN_RIDGE_X_SIDE_H

#include "brainalign/parallel/parallel.h"
#include "brainalign/parallel/scalapack.h"
#include "brainalign/ridge/ridge.h"
#include "fold_rows.h"

/* Fill the local part of X (n x p, the fold's permuted rows: training
 * first, then test) from the reader; a NaN or infinite value is an error
 * naming the sample and feature (blamed on X). */
ba_status ba_ridge_load_x(const ba_grid *grid, const ba_ridge_data *D, const ba_fold_rows *f,
                          ba_dmat *x, ba_error *err);
/* Standardise every column with the mean and std (ddof 0) of its first
 * n_train rows, like StandardScaler (a zero std becomes 1); collective over
 * the grid (sums over its process rows through column_comm). */
ba_status ba_ridge_standardise(const ba_grid *grid, MPI_Comm column_comm, long n_train,
                               ba_dmat *x, ba_error *err);

#endif
