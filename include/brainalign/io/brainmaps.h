/* brainmaps.h — per-voxel scores back into brain space: NIfTI volumes or
 * GIfTI surfaces that any neuroimaging viewer (or nibabel) reads.
 *
 * The space comes from the bold.h5 the scores were fitted on (see
 * importers.h): a volume space gives one NIfTI-1 file in the mask's grid
 * with its affine (float32; 0 outside the mask); a surface space gives one
 * .func.gii per hemisphere (float32, one DataArray per map). A dataset
 * [n_voxels] is one map; [k, n_voxels] (e.g. /r_folds) is k maps (a 4-D
 * NIfTI, or k DataArrays). */
#ifndef BRAINALIGN_BRAINMAPS_H
#define BRAINALIGN_BRAINMAPS_H

#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>

#include "brainalign/core/error.h"
#include "brainalign/io/importers.h"

/* values [n_maps, space->n_voxels]. The file's name must end in .nii or
 * .nii.gz. Written atomically. */
ba_status ba_map_write_volume(const char *path, const ba_brain_space *space,
                              const float *values, long n_maps, ba_error *err);
/* values [n_maps, space->n_voxels]; writes lh_path and/or rh_path (a
 * hemisphere with 0 vertices is skipped). Written atomically. */
ba_status ba_map_write_surface(const char *lh_path, const char *rh_path,
                               const ba_brain_space *space, const float *values,
                               long n_maps, ba_error *err);

#define BA_MAPS_MAX_DATASETS 16

typedef struct {
    const char *scores_path;
    const char *bold_path;
    const char *out_prefix;
    const char *datasets[BA_MAPS_MAX_DATASETS]; /* n_datasets == 0: just "/r" */
    int n_datasets;
} ba_maps_options;

/* The files written for a dataset: "<prefix>_<name>.nii.gz" (volume) or
 * "<prefix>_<name>.lh.func.gii" and ".rh.func.gii" (surface), where
 * <name> is the dataset path without the leading '/' and with '/' -> '_'
 * (so "/r" -> "<prefix>_r.nii.gz"). */
typedef struct {
    char **paths;
    size_t n;
} ba_maps_written;

/* Collective over comm (rank 0 works). All files are written under
 * temporary names and renamed only when every one succeeded. */
/* The folder of an output prefix ("dir/name" -> dir, "dir/" -> dir; none
 * for a bare "name") is created with its parents when missing; `created`
 * [size] receives the folder made here (empty if it existed), so that a
 * failed command can remove it again with rmdir. BA_ERR_IO naming the
 * folder when it cannot be made. */
ba_status ba_out_prefix_prepare(const char *prefix, char *created, size_t size, ba_error *err);

ba_status ba_maps_run(const ba_maps_options *o, MPI_Comm comm, ba_maps_written *written,
                      ba_error *err);
void ba_maps_written_free(ba_maps_written *written);

#endif
