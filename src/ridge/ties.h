/* ties.h — re-deciding near-tied alphas in double precision (ties.c), the
 * helper of the dense solver. Not a public header. */
#ifndef BRAINALIGN_RIDGE_TIES_H
#define BRAINALIGN_RIDGE_TIES_H

#include "brainalign/parallel/scalapack.h"
#include "brainalign/ridge/ridge.h"
#include "fold_rows.h"
#include "spectrum.h"

/* Re-decide the alpha of the listed voxels in double precision and
 * recompute their r. `voxels` are this rank's local voxel indices (columns
 * of y [n][vloc]); r_out and alpha_out are this fold's rows of the result,
 * indexed by local voxel. Collective over grid->comm; every rank of the
 * grid calls it, with or without voxels. *n_group returns the number of
 * voxels re-ranked by the whole grid. */
ba_status ba_ridge_rerank_ties(const ba_grid *grid, const ba_fold_spectrum *S,
                               const ba_fold_rows *f, const ba_ridge_options *opt,
                               const float *y, long vloc, const long *voxels, long count,
                               float *r_out, float *alpha_out, long *n_group, ba_error *err);

#endif
