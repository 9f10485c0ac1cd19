/* importers.h — BOLD importers: GIfTI surfaces, NIfTI volumes and HDF5
 * responses -> the canonical bold.h5, and the brain space it records.
 *
 * bold.h5 as the importers write it:
 *   /stories/<story>/data   float32 [n_tr, n_voxels]; attributes
 *                           n_subjects (int64, how many inputs were averaged)
 *                           and source (the input files, one per line)
 *   root attributes         tr_s (float64), format ("gifti" | "nifti" |
 *                           "hdf5"), space ("surface" | "volume" | "none"),
 *                           trim_start, trim_end (int64, the global trims),
 *                           version, command; per story, attributes
 *                           trim_start, trim_end (int64) on its data
 *   surface space           /surface/n_vertices_lh, /surface/n_vertices_rh
 *                           int64 [1]; voxel v < n_lh is lh vertex v, the
 *                           others are rh vertex v - n_lh (lh first)
 *   volume space            /mask int32 [nx, ny, nz] (1 in the brain, 0
 *                           outside), /affine float64 [4, 4] (voxel
 *                           (i, j, k, 1) -> world mm; sform, else qform,
 *                           else the voxel-size affine, as nibabel's
 *                           img.affine), attribute xform_code on /affine.
 *                           Voxel order: C order over the mask, i.e. the
 *                           order of numpy's vol[mask != 0] on nibabel's
 *                           (i, j, k) array — i slowest, k fastest.
 *
 * Every import runs on rank 0 of its communicator (the others wait and
 * share the outcome) and writes its output atomically (temporary name,
 * then rename) or not at all. */
#ifndef BRAINALIGN_IMPORTERS_H
#define BRAINALIGN_IMPORTERS_H

#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>

#include "brainalign/core/error.h"

/* Plausibility limits for sizes a BOLD file declares (a story of 10 million
 * TRs, or a brain of 2^28 voxels or vertices, is a corrupt or hostile
 * header, not data): refused with a message naming the dimension. */
#define BA_IMPORT_MAX_TRS 10000000LL
#define BA_IMPORT_MAX_VOXELS (1LL << 28)

/* ---- the brain space of a BOLD file ------------------------------------ */

typedef enum { BA_SPACE_NONE, BA_SPACE_SURFACE, BA_SPACE_VOLUME } ba_space_kind;

typedef struct {
    ba_space_kind kind;
    long n_voxels;      /* columns of the BOLD data */
    long n_vertices[2]; /* surface: lh, rh (either may be 0) */
    long dims[3];       /* volume: nx, ny, nz */
    int *mask;          /* volume: [nx * ny * nz] in C order, 1 = in brain */
    double affine[16];  /* volume: row-major 4x4, voxel -> world */
    int xform_code;     /* volume: NIfTI sform/qform code of the affine */
} ba_brain_space;

/* The space a bold.h5 records (kind NONE when it records neither /mask nor
 * /surface). Independent (opens the file on MPI_COMM_SELF). */
ba_status ba_brain_space_read(const char *bold_path, ba_brain_space *space, ba_error *err);
/* A 3-D NIfTI mask (nonzero = in the brain) -> a volume space. */
ba_status ba_brain_space_from_mask(const char *mask_path, ba_brain_space *space,
                                   ba_error *err);
void ba_brain_space_free(ba_brain_space *space);
/* "lh vertex 12", "rh vertex 3", "voxel (i, j, k)" or "voxel 7". */
void ba_brain_space_describe(const ba_brain_space *space, long voxel, char *buf, size_t size);

/* ---- format readers ----------------------------------------------------- */

/* A functional GIfTI file -> *data [n_tr, n_vertices] float32 (malloc'd).
 * Either one DataArray per TR (each [n_vertices]) or one 2-D DataArray
 * [n_vertices, n_tr] (Dim0 = vertices, as GIfTI stores per-vertex data). */
ba_status ba_gifti_read_series(const char *path, float **data, long *n_tr, long *n_vertices,
                               ba_error *err);

/* A 4-D NIfTI (a 3-D one is one TR; the BOLD importer refuses it) on the grid of `space` (a volume)
 * -> *data [n_tr, space->n_voxels] in the mask's voxel order, with the
 * header's scl_slope/scl_inter applied. Reads a few TRs at a time. */
ba_status ba_nifti_read_masked(const char *path, const ba_brain_space *space, float **data,
                               long *n_tr, ba_error *err);

/* ---- import ------------------------------------------------------------- */

typedef enum { BA_BOLD_GIFTI, BA_BOLD_NIFTI, BA_BOLD_HDF5 } ba_bold_format;

/* "gifti", "nifti" or "hdf5". */
ba_status ba_bold_format_parse(const char *name, ba_bold_format *format, ba_error *err);
const char *ba_bold_format_name(ba_bold_format format);

/* One story of one subject. */
typedef struct {
    char *story;
    char *file[2];  /* GIfTI: lh, rh (one may be NULL); NIfTI/HDF5: file[0] */
    char *dataset;  /* HDF5: the dataset in file[0]; NULL = "/data" if the
                       file has one, else "/<story>" */
} ba_bold_input;

typedef struct {
    ba_bold_input *items;
    size_t n, cap;
} ba_bold_inputs;

/* Append a copy of one input (NULL fields stay NULL). */
ba_status ba_bold_inputs_add(ba_bold_inputs *list, const char *story, const char *file0,
                             const char *file1, const char *dataset, ba_error *err);
/* A list file: one input per line, "story<TAB or spaces>file [file2]"
 * (GIfTI: "story lh rh", with "-" for a missing hemisphere; NIfTI:
 * "story volume"; HDF5: "story file [dataset]"). '#' starts a comment;
 * relative paths are relative to the list file's directory. */
ba_status ba_bold_inputs_read_list(ba_bold_inputs *list, ba_bold_format format,
                                   const char *list_path, ba_error *err);
/* Every 2-D dataset at the root of an HDF5 file, as a story of that name. */
ba_status ba_bold_inputs_add_hdf5_file(ba_bold_inputs *list, const char *path,
                                       ba_error *err);
void ba_bold_inputs_free(ba_bold_inputs *list);

/* TRs to drop at the start and end of one story. */
typedef struct {
    char *story;
    long trim_start, trim_end;
} ba_story_trim;

typedef struct {
    ba_story_trim *items;
    size_t n, cap;
} ba_story_trims;

/* Sets (or replaces) the trims of one story. */
ba_status ba_story_trims_set(ba_story_trims *t, const char *story, long trim_start,
                             long trim_end, ba_error *err);
/* A trims table, the Narratives convention: one story a line,
 * "story<TAB>trim_start<TAB>trim_end" (whitespace-separated; '#' comments; a
 * first line "story trim_start trim_end" is a header). A story given twice
 * or a count that is not an integer >= 0 is an error naming the line. */
ba_status ba_story_trims_read(ba_story_trims *t, const char *path, ba_error *err);
void ba_story_trims_free(ba_story_trims *t);

typedef struct {
    ba_bold_format format;
    const ba_bold_inputs *inputs;
    const char *mask_path;   /* NIfTI: required; HDF5: optional (records a volume space) */
    double tr_s;             /* seconds; 0 = take the TR the files' headers state (NIfTI
                                pixdim[4] with xyzt_units in s/ms/us; GIfTI TimeStep
                                metadata, ms): every file must state it and all must
                                agree. > 0: a header that states another TR is an error */
    long trim_start, trim_end; /* TRs dropped at the start and end of every story ... */
    const ba_story_trims *story_trims; /* ... except those listed here (may be NULL) */
    const char *trims_table;  /* the table story_trims came from: an imported story it
                                 does not list is then an error (NULL = no table) */
    bool average;            /* a story given several times = subjects to average;
                                without it a repeated story is an error */
    bool quiet;
    const char *out_path;
    const char *command_line; /* provenance (may be NULL) */
} ba_import_options;

typedef struct {
    long n_stories, n_voxels, n_tr_total;
    int max_subjects;
    ba_space_kind space;
} ba_import_summary;

/* Collective over comm (rank 0 reads and writes). Writes o->out_path
 * atomically or not at all. Errors name the file, the story and, for bad
 * values, the TR (numbered as in the input file) and the voxel. */
ba_status ba_import_bold(const ba_import_options *o, MPI_Comm comm, ba_import_summary *summary,
                         ba_error *err);

#endif
