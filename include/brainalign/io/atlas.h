/* atlas.h — regions of interest and per-region score tables.
 *
 * The native atlas file is HDF5: /labels int32 [n_voxels] holding a region
 * index (0 .. n_regions-1, or -1 for "no region") and /names strings
 * [n_regions]. (`synth` writes one; importers of FreeSurfer .annot and
 * NIfTI label volumes produce the same structure.) */
#ifndef BRAINALIGN_ATLAS_H
#define BRAINALIGN_ATLAS_H

#include <mpi.h>
#include <stddef.h>

#include "brainalign/core/error.h"

typedef struct {
    long n_voxels;
    int n_regions;
    int *labels;  /* [n_voxels] */
    char **names; /* [n_regions] */
} ba_atlas;

/* Collective open, then every rank reads the (small) atlas. Fails if it
 * does not have `expect_voxels` voxels (pass 0 to accept any). */
ba_status ba_atlas_read(const char *path, MPI_Comm comm, long expect_voxels, ba_atlas *atlas,
                        ba_error *err);
ba_status ba_atlas_write(const char *path, MPI_Comm comm, const ba_atlas *atlas, ba_error *err);
void ba_atlas_free(ba_atlas *atlas);

typedef struct {
    int n_regions;
    char **names;    /* borrowed from the atlas */
    long *n_voxels;
    double *mean, *median, *sem;
} ba_roi_table;

/* Mean, median and standard error of the mean of r within each region. */
ba_status ba_roi_table_compute(const ba_atlas *atlas, const float *r, ba_roi_table *table,
                               ba_error *err);
void ba_roi_table_free(ba_roi_table *table);

#endif
