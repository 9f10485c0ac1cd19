/* atlas_readers.h — FreeSurfer .annot files and NIfTI label volumes ->
 * the native atlas (atlas.h) over the voxels of a bold.h5.
 *
 * Rules (the same for both readers):
 *   - a voxel or vertex whose label is 0, not in the colour/label table, or
 *     names "Unknown" or "Medial_wall" (any case; also "MedialWall") has
 *     region -1 (no region);
 *   - annot: the regions are the colour-table entries except those, in
 *     table order, lh ones first then rh ones, named "lh.<name>" and
 *     "rh.<name>"; the atlas covers the lh vertices then the rh ones (the
 *     order of the BOLD's columns, see importers.h);
 *   - label volume: the regions are the table entries that occur in the
 *     label volume (ordered by their index), and the atlas covers the
 *     mask's voxels in the BOLD's voxel order. */
#ifndef BRAINALIGN_ATLAS_READERS_H
#define BRAINALIGN_ATLAS_READERS_H

#include <mpi.h>
#include <stdbool.h>

#include "brainalign/io/atlas.h"
#include "brainalign/core/error.h"
#include "brainalign/io/importers.h"

/* One hemisphere's .annot: big-endian int32 vertex count, (vertex,
 * annotation value) pairs, then a colour table in the old layout
 * (entry count > 0) or the new one (version -2). The annotation value of
 * an entry is r + g*256 + b*65536. */
typedef struct {
    long n_vertices;
    int *labels;     /* [n_vertices]: colour-table slot of each vertex, or -1 */
    int n_entries;   /* colour-table slots (the new layout may leave some empty) */
    char **names;    /* [n_entries]; NULL for an empty slot */
    int *rgbt;       /* [n_entries * 4] red, green, blue, transparency */
    int ctab_version; /* 1 (old layout) or 2 (new) */
} ba_annot;

ba_status ba_annot_read(const char *path, ba_annot *annot, ba_error *err);
void ba_annot_free(ba_annot *annot);

/* lh and/or rh (NULL for none) -> one atlas. With a surface `space`
 * (may be NULL: no check) each hemisphere's vertex count must match. */
ba_status ba_atlas_from_annot(const char *lh_path, const char *rh_path,
                              const ba_brain_space *space, ba_atlas *atlas, ba_error *err);

/* A label table: FreeSurfer LUT lines "index name r g b a", or "index
 * name" lines (tab- or space-separated; an optional header line such as
 * "index<TAB>name" and '#' comments are skipped). */
typedef struct {
    int n;
    int *index;
    char **names;
} ba_label_table;

ba_status ba_label_table_read(const char *path, ba_label_table *table, ba_error *err);
void ba_label_table_free(ba_label_table *table);

/* A 3-D NIfTI of integer labels on the grid of the volume `space` ->
 * one atlas over the mask's voxels. */
ba_status ba_atlas_from_nifti_labels(const char *labels_path, const char *table_path,
                                     const ba_brain_space *space, ba_atlas *atlas,
                                     ba_error *err);

typedef enum { BA_ATLAS_ANNOT, BA_ATLAS_NIFTI_LABELS } ba_atlas_format;

typedef struct {
    ba_atlas_format format;
    const char *lh_path, *rh_path;        /* annot */
    const char *labels_path, *table_path; /* NIfTI labels */
    const char *bold_path;  /* the BOLD the atlas is for (required for NIfTI
                               labels unless mask_path is given) */
    const char *mask_path;  /* NIfTI labels: a mask instead of bold_path */
    const char *out_path;
} ba_atlas_import_options;

/* Collective over comm (rank 0 reads and writes). Writes out_path
 * atomically or not at all. On success *atlas (if not NULL) holds the
 * atlas on rank 0 (other ranks get an empty one; free with
 * ba_atlas_free). */
ba_status ba_import_atlas(const ba_atlas_import_options *o, MPI_Comm comm, ba_atlas *atlas,
                          ba_error *err);

#endif
