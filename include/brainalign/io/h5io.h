/* h5io.h — HDF5 files for all stages, serial or parallel (MPI-IO).
 *
 * Life cycle:  ba_h5_open (read) or ba_h5_create (write) -> read/write ->
 * ba_h5_close. A file being written lives under a temporary name in the
 * same directory and is renamed to its final name only by ba_h5_close, so
 * a failed run never leaves a partial file under the final name;
 * ba_h5_abandon deletes it.
 *
 * All calls taking a ba_h5file are collective over its communicator
 * unless marked "independent". Errors name the file and the object. */
#ifndef BRAINALIGN_H5IO_H
#define BRAINALIGN_H5IO_H

#include <hdf5.h>
#include <mpi.h>
#include <stdbool.h>

#include "brainalign/core/error.h"
#include "brainalign/core/limits.h"

typedef struct {
    hid_t id;
    MPI_Comm comm;
    bool writing;
    char path[BA_PATH_MAX];       /* final name (what messages show) */
    char temp_path[BA_PATH_MAX];  /* where a file being written lives */
} ba_h5file;

typedef enum { BA_H5_F32, BA_H5_F64, BA_H5_I32, BA_H5_I64 } ba_h5type;

#define BA_H5_MAX_RANK 4

ba_status ba_h5_open(ba_h5file *f, const char *path, MPI_Comm comm, ba_error *err);
ba_status ba_h5_create(ba_h5file *f, const char *path, MPI_Comm comm, ba_error *err);
ba_status ba_h5_close(ba_h5file *f, ba_error *err);
void ba_h5_abandon(ba_h5file *f);

/* Independent. True if the object (group or dataset) exists. */
bool ba_h5_exists(const ba_h5file *f, const char *object);

/* Independent. Shape of a dataset; fails if missing or not of rank
 * `expect_rank` (pass 0 to accept any rank). */
ba_status ba_h5_shape(const ba_h5file *f, const char *dset, int expect_rank,
                      int *rank, hsize_t dims[BA_H5_MAX_RANK], ba_error *err);

/* Independent. Read a hyperslab converted to `type`, row-major, into `out`
 * of `capacity` elements. `rank` is the length of start/count and must be
 * the dataset's rank (0: any rank, whole dataset only, start/count NULL);
 * NULL start/count = the whole dataset. Refused (BA_ERR_SHAPE, naming the
 * file and dataset) when the rank differs, the slab leaves the dataset or
 * the selection holds more than `capacity` values: a file cannot make the
 * read overflow the caller's buffer. */
ba_status ba_h5_read_n(const ba_h5file *f, const char *dset, ba_h5type type, int rank,
                       const hsize_t *start, const hsize_t *count, void *out,
                       size_t capacity, ba_error *err);

/* Independent. The older form: start/count of the dataset's own rank, no
 * capacity check (the caller must have checked the shape). New code uses
 * ba_h5_read_n. */
ba_status ba_h5_read(const ba_h5file *f, const char *dset, ba_h5type type,
                     const hsize_t *start, const hsize_t *count, void *out,
                     ba_error *err);

/* Collective. Create a dataset (intermediate groups made as needed). */
ba_status ba_h5_create_dataset(ba_h5file *f, const char *dset, ba_h5type type,
                               int rank, const hsize_t *dims, ba_error *err);

/* Collective. Each rank writes its own hyperslab (count may contain 0 for
 * a rank that writes nothing). */
ba_status ba_h5_write(ba_h5file *f, const char *dset, ba_h5type type,
                      const hsize_t *start, const hsize_t *count,
                      const void *data, ba_error *err);

/* Independent. One rank writes a hyperslab of an existing dataset alone. */
ba_status ba_h5_write_independent(ba_h5file *f, const char *dset, ba_h5type type,
                                  const hsize_t *start, const hsize_t *count,
                                  const void *data, ba_error *err);

/* Collective. Create and write a whole dataset whose content every rank
 * holds; rank 0 writes it. */
ba_status ba_h5_write_all(ba_h5file *f, const char *dset, ba_h5type type,
                          int rank, const hsize_t *dims, const void *data,
                          ba_error *err);

/* Collective. A 1-D dataset of fixed-length UTF-8 strings; only rank
 * `owner` needs to hold them (others may pass NULL, 0). */
ba_status ba_h5_write_strings(ba_h5file *f, const char *dset, char *const *strings,
                              size_t n, int owner, ba_error *err);
/* Independent. Read such a dataset: *strings is an array of n malloc'd
 * strings (free with ba_h5_free_strings). */
ba_status ba_h5_read_strings(const ba_h5file *f, const char *dset, char ***strings,
                             size_t *n, ba_error *err);
void ba_h5_free_strings(char **strings, size_t n);

/* Collective. Attributes on an object ("/" for the root). */
ba_status ba_h5_set_attr_str(ba_h5file *f, const char *object, const char *name,
                             const char *value, ba_error *err);
ba_status ba_h5_set_attr_f64(ba_h5file *f, const char *object, const char *name,
                             const double *values, size_t n, ba_error *err);
ba_status ba_h5_set_attr_i64(ba_h5file *f, const char *object, const char *name,
                             const long long *values, size_t n, ba_error *err);

/* Independent. Read attributes; `n` must match the stored length. */
ba_status ba_h5_get_attr_f64(const ba_h5file *f, const char *object, const char *name,
                             double *values, size_t n, ba_error *err);
ba_status ba_h5_get_attr_i64(const ba_h5file *f, const char *object, const char *name,
                             long long *values, size_t n, ba_error *err);
/* Returns a malloc'd string. */
ba_status ba_h5_get_attr_str(const ba_h5file *f, const char *object, const char *name,
                             char **value, ba_error *err);

/* Independent. Names of the members of a group, sorted by name. */
ba_status ba_h5_list_group(const ba_h5file *f, const char *group, char ***names,
                           size_t *n, ba_error *err);


#endif
