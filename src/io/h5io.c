/* h5io.c — HDF5 files for all stages (see h5io.h). */
#include "brainalign/io/h5io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brainalign/parallel/parallel.h"

static hid_t mem_type(ba_h5type t)
{
    switch (t) {
    case BA_H5_F32: return H5T_NATIVE_FLOAT;
    case BA_H5_F64: return H5T_NATIVE_DOUBLE;
    case BA_H5_I32: return H5T_NATIVE_INT32;
    case BA_H5_I64: return H5T_NATIVE_INT64;
    }
    return H5T_NATIVE_FLOAT;
}

static hid_t file_type(ba_h5type t)
{
    switch (t) {
    case BA_H5_F32: return H5T_IEEE_F32LE;
    case BA_H5_F64: return H5T_IEEE_F64LE;
    case BA_H5_I32: return H5T_STD_I32LE;
    case BA_H5_I64: return H5T_STD_I64LE;
    }
    return H5T_IEEE_F32LE;
}

static hid_t access_plist(MPI_Comm comm)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
    return fapl;
}

static void quiet_hdf5(void)
{
    /* HDF5 prints its own error stack by default; our messages say more. */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

ba_status ba_h5_open(ba_h5file *f, const char *path, MPI_Comm comm, ba_error *err)
{
    quiet_hdf5();
    memset(f, 0, sizeof *f);
    f->id = H5I_INVALID_HID;
    f->comm = comm;
    snprintf(f->path, sizeof f->path, "%s", path);
    ba_status rc = BA_OK;
    if (access(path, R_OK) != 0)
        rc = ba_fail(err, BA_ERR_IO, "%s: no such file or not readable", path);
    else if (H5Fis_hdf5(path) <= 0)
        rc = ba_fail(err, BA_ERR_FORMAT, "%s: not an HDF5 file (or truncated)", path);
    BA_CHECK(ba_mpi_agree(comm, rc, err));
    hid_t fapl = access_plist(comm);
    f->id = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    rc = f->id < 0 ? ba_fail(err, BA_ERR_FORMAT, "%s: cannot open as HDF5", path) : BA_OK;
    rc = ba_mpi_agree(comm, rc, err);
    if (rc != BA_OK && f->id >= 0) { H5Fclose(f->id); f->id = H5I_INVALID_HID; }
    return rc;
}

ba_status ba_h5_create(ba_h5file *f, const char *path, MPI_Comm comm, ba_error *err)
{
    quiet_hdf5();
    memset(f, 0, sizeof *f);
    f->id = H5I_INVALID_HID;
    f->comm = comm;
    f->writing = true;
    snprintf(f->path, sizeof f->path, "%s", path);
    /* One temporary name for all ranks, next to the final file so the
     * rename is atomic: <dir>/.<name>.partial-<pid of rank 0>. */
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    long pid = (long)getpid();
    MPI_Bcast(&pid, 1, MPI_LONG, 0, comm);
    const char *slash = strrchr(path, '/');
    int dir_len = slash ? (int)(slash - path + 1) : 0;
    snprintf(f->temp_path, sizeof f->temp_path, "%.*s.%s.partial-%ld", dir_len, path,
             slash ? slash + 1 : path, pid);
    hid_t fapl = access_plist(comm);
    f->id = H5Fcreate(f->temp_path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    ba_status rc = BA_OK;
    if (f->id < 0)
        rc = ba_fail(err, BA_ERR_IO,
                     "%s: cannot create the output file (is the directory there and writable?)",
                     path);
    rc = ba_mpi_agree(comm, rc, err);
    if (rc != BA_OK) ba_h5_abandon(f);
    return rc;
}

/* A file being written that is going to be deleted: give its disk space
 * back before HDF5 closes it. On a full disk H5Fclose fails while flushing
 * its metadata, and HDF5 1.10 then frees the file's structures but keeps the
 * identifier registered, so the library's own clean-up at MPI_Finalize or
 * exit calls the close callback on freed memory (SIGSEGV). Emptying the
 * temporary file first leaves room for the few metadata blocks the close
 * writes, so the close succeeds and nothing stays registered. Collective
 * (the close that follows is too). */
static void release_space(ba_h5file *f)
{
    int rank = 0;
    MPI_Comm_rank(f->comm, &rank);
    if (rank == 0 && f->temp_path[0]) (void)truncate(f->temp_path, 0);
    MPI_Barrier(f->comm);
}

ba_status ba_h5_close(ba_h5file *f, ba_error *err)
{
    if (f->id < 0) return BA_OK;
    ba_status rc = BA_OK;
    if (f->writing) {
        /* Flush first: a failure here (full disk, quota) is reported while
         * the file is still open, and the close then runs on an emptied file. */
        if (H5Fflush(f->id, H5F_SCOPE_GLOBAL) < 0)
            rc = ba_fail(err, BA_ERR_IO, "%s: writing the file failed (disk full or quota "
                         "exceeded?)", f->path);
        rc = ba_mpi_agree(f->comm, rc, err);
        if (rc != BA_OK) { ba_h5_abandon(f); return rc; }
    }
    if (H5Fclose(f->id) < 0)
        rc = ba_fail(err, BA_ERR_IO, "%s: closing the file failed", f->path);
    f->id = H5I_INVALID_HID;
    rc = ba_mpi_agree(f->comm, rc, err);
    if (!f->writing) return rc;
    if (rc != BA_OK) { ba_h5_abandon(f); return rc; }
    int rank = 0;
    MPI_Comm_rank(f->comm, &rank);
    if (rank == 0 && rename(f->temp_path, f->path) != 0)
        rc = ba_fail(err, BA_ERR_IO, "%s: cannot rename %s to it", f->path, f->temp_path);
    rc = ba_mpi_agree(f->comm, rc, err);
    if (rc != BA_OK) ba_h5_abandon(f);
    f->writing = false;
    return rc;
}

void ba_h5_abandon(ba_h5file *f)
{
    if (f->id >= 0) {
        if (f->writing) release_space(f);
        H5Fclose(f->id);
    }
    f->id = H5I_INVALID_HID;
    if (f->writing) {
        int rank = 0;
        MPI_Comm_rank(f->comm, &rank);
        if (rank == 0) unlink(f->temp_path);
        f->writing = false;
    }
}

bool ba_h5_exists(const ba_h5file *f, const char *object)
{
    if (strcmp(object, "/") == 0) return true;
    /* Check every prefix: H5Lexists fails on a missing intermediate group. */
    char buf[BA_PATH_MAX];
    snprintf(buf, sizeof buf, "%s", object);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (H5Lexists(f->id, buf, H5P_DEFAULT) <= 0) return false;
            *p = saved;
            if (saved == '\0') break;
        }
    }
    return true;
}

ba_status ba_h5_shape(const ba_h5file *f, const char *dset, int expect_rank,
                      int *rank, hsize_t dims[BA_H5_MAX_RANK], ba_error *err)
{
    if (!ba_h5_exists(f, dset))
        return ba_fail(err, BA_ERR_FORMAT, "%s:%s: no such dataset", f->path, dset);
    hid_t d = H5Dopen2(f->id, dset, H5P_DEFAULT);
    if (d < 0) return ba_fail(err, BA_ERR_FORMAT, "%s:%s: not a dataset", f->path, dset);
    hid_t space = H5Dget_space(d);
    int r = H5Sget_simple_extent_ndims(space);
    ba_status rc = BA_OK;
    if (r < 0 || r > BA_H5_MAX_RANK)
        rc = ba_fail(err, BA_ERR_FORMAT, "%s:%s: unsupported dataspace", f->path, dset);
    else if (expect_rank > 0 && r != expect_rank)
        rc = ba_fail(err, BA_ERR_SHAPE, "%s:%s has %d dimensions, expected %d", f->path,
                     dset, r, expect_rank);
    else {
        H5Sget_simple_extent_dims(space, dims, NULL);
        if (rank) *rank = r;
    }
    H5Sclose(space);
    H5Dclose(d);
    return rc;
}

static ba_status select_slab(hid_t space, int rank, const hsize_t *start,
                             const hsize_t *count, hsize_t *n_out)
{
    hsize_t n = 1;
    for (int i = 0; i < rank; i++) n *= count[i];
    *n_out = n;
    if (n == 0) return H5Sselect_none(space) < 0 ? BA_ERR_FORMAT : BA_OK;
    return H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL) < 0
               ? BA_ERR_FORMAT : BA_OK;
}

ba_status ba_h5_read_n(const ba_h5file *f, const char *dset, ba_h5type type, int rank,
                       const hsize_t *start, const hsize_t *count, void *out,
                       size_t capacity, ba_error *err)
{
    int file_rank = 0;
    hsize_t dims[BA_H5_MAX_RANK];
    BA_CHECK(ba_h5_shape(f, dset, rank, &file_rank, dims, err));
    if (rank == 0 && (start || count))
        return ba_fail(err, BA_ERR_INTERNAL, "%s:%s: a hyperslab needs its rank", f->path,
                       dset);
    hsize_t zero[BA_H5_MAX_RANK] = {0};
    if (!start) start = zero;
    if (!count) count = dims;
    /* The selection's size, refusing a wrap: start + count and the product
     * of the counts are checked before either is used. */
    unsigned long long n = 1;
    for (int i = 0; i < file_rank; i++) {
        if (count[i] > dims[i] || start[i] > dims[i] - count[i])
            return ba_fail(err, BA_ERR_SHAPE,
                           "%s:%s: dimension %d has %llu entries, asked for %llu..%llu",
                           f->path, dset, i, (unsigned long long)dims[i],
                           (unsigned long long)start[i],
                           (unsigned long long)start[i] + (unsigned long long)count[i]);
        if (count[i] != 0 && n > (unsigned long long)capacity / count[i]) {
            n = (unsigned long long)capacity + 1;
            break;
        }
        n *= count[i];
    }
    if (n > (unsigned long long)capacity)
        return ba_fail(err, BA_ERR_SHAPE,
                       "%s:%s: the selection holds more than the %zu values expected "
                       "(dataset shape disagrees with the rest of the file?)",
                       f->path, dset, capacity);
    hid_t d = H5Dopen2(f->id, dset, H5P_DEFAULT);
    if (d < 0) return ba_fail(err, BA_ERR_FORMAT, "%s:%s: not a dataset", f->path, dset);
    hid_t dtype = H5Dget_type(d);
    H5T_class_t cls = H5Tget_class(dtype);
    H5Tclose(dtype);
    if (cls != H5T_FLOAT && cls != H5T_INTEGER) {
        H5Dclose(d);
        return ba_fail(err, BA_ERR_FORMAT, "%s:%s: not a numeric dataset", f->path, dset);
    }
    hid_t fspace = H5Dget_space(d);
    hsize_t n_sel = 0;
    ba_status rc = select_slab(fspace, file_rank, start, count, &n_sel);
    hid_t mspace = H5Screate_simple(1, n_sel ? &n_sel : (hsize_t[]){1}, NULL);
    if (n_sel == 0) H5Sselect_none(mspace);
    if (rc == BA_OK && H5Dread(d, mem_type(type), mspace, fspace, H5P_DEFAULT, out) < 0)
        rc = BA_ERR_IO;
    if (rc != BA_OK)
        ba_fail(err, rc, "%s:%s: read failed (file truncated or corrupt?)", f->path, dset);
    H5Sclose(mspace);
    H5Sclose(fspace);
    H5Dclose(d);
    return rc;
}

ba_status ba_h5_read(const ba_h5file *f, const char *dset, ba_h5type type,
                     const hsize_t *start, const hsize_t *count, void *out,
                     ba_error *err)
{
    /* The caller gave no capacity: the dataset's own rank is trusted for
     * the length of start/count (prefer ba_h5_read_n). */
    int rank = 0;
    hsize_t dims[BA_H5_MAX_RANK];
    BA_CHECK(ba_h5_shape(f, dset, 0, &rank, dims, err));
    return ba_h5_read_n(f, dset, type, (start || count) ? rank : 0, start, count, out,
                        (size_t)-1, err);
}

ba_status ba_h5_create_dataset(ba_h5file *f, const char *dset, ba_h5type type,
                               int rank, const hsize_t *dims, ba_error *err)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(f->id, dset, file_type(type), space, lcpl, H5P_DEFAULT,
                         H5P_DEFAULT);
    H5Sclose(space);
    H5Pclose(lcpl);
    ba_status rc = BA_OK;
    if (d < 0) rc = ba_fail(err, BA_ERR_IO, "%s:%s: cannot create dataset", f->path, dset);
    else H5Dclose(d);
    return ba_mpi_agree(f->comm, rc, err);
}

static ba_status write_slab(ba_h5file *f, const char *dset, ba_h5type type,
                            const hsize_t *start, const hsize_t *count,
                            const void *data, bool collective, ba_error *err)
{
    hid_t d = H5Dopen2(f->id, dset, H5P_DEFAULT);
    if (d < 0) return ba_fail(err, BA_ERR_IO, "%s:%s: no such dataset", f->path, dset);
    hid_t fspace = H5Dget_space(d);
    int rank = H5Sget_simple_extent_ndims(fspace);
    hsize_t n = 0;
    ba_status rc = select_slab(fspace, rank, start, count, &n);
    hid_t mspace = H5Screate_simple(1, n ? &n : (hsize_t[]){1}, NULL);
    if (n == 0) H5Sselect_none(mspace);
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    H5Pset_dxpl_mpio(dxpl, collective ? H5FD_MPIO_COLLECTIVE : H5FD_MPIO_INDEPENDENT);
    if (rc == BA_OK && H5Dwrite(d, mem_type(type), mspace, fspace, dxpl, data) < 0)
        rc = BA_ERR_IO;
    if (rc != BA_OK) ba_fail(err, rc, "%s:%s: write failed", f->path, dset);
    H5Pclose(dxpl);
    H5Sclose(mspace);
    H5Sclose(fspace);
    H5Dclose(d);
    return rc;
}

ba_status ba_h5_write(ba_h5file *f, const char *dset, ba_h5type type,
                      const hsize_t *start, const hsize_t *count,
                      const void *data, ba_error *err)
{
    ba_status rc = write_slab(f, dset, type, start, count, data, true, err);
    return ba_mpi_agree(f->comm, rc, err);
}

ba_status ba_h5_write_independent(ba_h5file *f, const char *dset, ba_h5type type,
                                  const hsize_t *start, const hsize_t *count,
                                  const void *data, ba_error *err)
{
    return write_slab(f, dset, type, start, count, data, false, err);
}

ba_status ba_h5_write_all(ba_h5file *f, const char *dset, ba_h5type type,
                          int rank, const hsize_t *dims, const void *data,
                          ba_error *err)
{
    BA_CHECK(ba_h5_create_dataset(f, dset, type, rank, dims, err));
    int me = 0;
    MPI_Comm_rank(f->comm, &me);
    hsize_t start[BA_H5_MAX_RANK] = {0}, none[BA_H5_MAX_RANK] = {0};
    return ba_h5_write(f, dset, type, start, me == 0 ? dims : none, data, err);
}

ba_status ba_h5_write_strings(ba_h5file *f, const char *dset, char *const *strings,
                              size_t n, int owner, ba_error *err)
{
    int me = 0;
    MPI_Comm_rank(f->comm, &me);
    unsigned long long meta[2] = {n, 1};
    if (me == owner)
        for (size_t i = 0; i < n; i++) {
            size_t len = strlen(strings[i]);
            if (len > meta[1]) meta[1] = len;
        }
    MPI_Bcast(meta, 2, MPI_UNSIGNED_LONG_LONG, owner, f->comm);
    size_t count = (size_t)meta[0], width = (size_t)meta[1];
    hid_t stype = H5Tcopy(H5T_C_S1);
    H5Tset_size(stype, width);
    H5Tset_cset(stype, H5T_CSET_UTF8);
    H5Tset_strpad(stype, H5T_STR_NULLPAD);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hsize_t dim = count;
    hid_t space = H5Screate_simple(1, &dim, NULL);
    hid_t d = H5Dcreate2(f->id, dset, stype, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    ba_status rc = d < 0 ? ba_fail(err, BA_ERR_IO, "%s:%s: cannot create dataset",
                                   f->path, dset) : BA_OK;
    if (rc == BA_OK && me == owner && count > 0) {
        char *packed = ba_calloc(count, width, "string table", err);
        if (!packed) rc = BA_ERR_NOMEM;
        else {
            for (size_t i = 0; i < count; i++)
                memcpy(packed + i * width, strings[i], strlen(strings[i]));
            if (H5Dwrite(d, stype, H5S_ALL, H5S_ALL, H5P_DEFAULT, packed) < 0)
                rc = ba_fail(err, BA_ERR_IO, "%s:%s: write failed", f->path, dset);
            free(packed);
        }
    }
    if (d >= 0) H5Dclose(d);
    H5Sclose(space);
    H5Pclose(lcpl);
    H5Tclose(stype);
    return ba_mpi_agree(f->comm, rc, err);
}

ba_status ba_h5_read_strings(const ba_h5file *f, const char *dset, char ***strings,
                             size_t *n, ba_error *err)
{
    int rank = 0;
    hsize_t dims[BA_H5_MAX_RANK];
    *strings = NULL;
    *n = 0;
    BA_CHECK(ba_h5_shape(f, dset, 1, &rank, dims, err));
    hid_t d = H5Dopen2(f->id, dset, H5P_DEFAULT);
    hid_t ftype = H5Dget_type(d);
    ba_status rc = BA_OK;
    if (H5Tget_class(ftype) != H5T_STRING || H5Tis_variable_str(ftype) > 0) {
        rc = ba_fail(err, BA_ERR_FORMAT, "%s:%s: expected fixed-length strings",
                     f->path, dset);
        goto done;
    }
    size_t width = H5Tget_size(ftype), count = (size_t)dims[0];
    hid_t mtype = H5Tcopy(H5T_C_S1);
    H5Tset_size(mtype, width);
    H5Tset_strpad(mtype, H5T_STR_NULLPAD);
    H5Tset_cset(mtype, H5Tget_cset(ftype)); /* no ASCII <-> UTF-8 conversion exists */
    char *packed = ba_calloc(count ? count : 1, width, "string table", err);
    char **out = ba_calloc(count ? count : 1, sizeof *out, "string table", err);
    if (!packed || !out) rc = BA_ERR_NOMEM;
    else if (count && H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, packed) < 0)
        rc = ba_fail(err, BA_ERR_IO, "%s:%s: read failed", f->path, dset);
    for (size_t i = 0; rc == BA_OK && i < count; i++) {
        out[i] = ba_calloc(width + 1, 1, "string", err);
        if (!out[i]) { rc = BA_ERR_NOMEM; break; }
        memcpy(out[i], packed + i * width, width);
    }
    free(packed);
    H5Tclose(mtype);
    if (rc == BA_OK) { *strings = out; *n = count; }
    else ba_h5_free_strings(out, count);
done:
    H5Tclose(ftype);
    H5Dclose(d);
    return rc;
}

void ba_h5_free_strings(char **strings, size_t n)
{
    if (!strings) return;
    for (size_t i = 0; i < n; i++) free(strings[i]);
    free(strings);
}

static ba_status set_attr(ba_h5file *f, const char *object, const char *name,
                          hid_t ftype, hid_t mtype, size_t n, const void *values,
                          ba_error *err)
{
    ba_status rc = BA_OK;
    hid_t obj = H5Oopen(f->id, object, H5P_DEFAULT);
    if (obj < 0)
        return ba_mpi_agree(f->comm, ba_fail(err, BA_ERR_IO, "%s:%s: no such object",
                                             f->path, object), err);
    if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
    hsize_t dim = n;
    hid_t space = n == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dim, NULL);
    hid_t a = H5Acreate2(obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, mtype, values) < 0)
        rc = ba_fail(err, BA_ERR_IO, "%s:%s: cannot write attribute %s", f->path, object,
                     name);
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    H5Oclose(obj);
    return ba_mpi_agree(f->comm, rc, err);
}

ba_status ba_h5_set_attr_str(ba_h5file *f, const char *object, const char *name,
                             const char *value, ba_error *err)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(value) + 1);
    H5Tset_cset(t, H5T_CSET_UTF8);
    ba_status rc = set_attr(f, object, name, t, t, 0, value, err);
    H5Tclose(t);
    return rc;
}

ba_status ba_h5_set_attr_f64(ba_h5file *f, const char *object, const char *name,
                             const double *values, size_t n, ba_error *err)
{
    return set_attr(f, object, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, n, values, err);
}

ba_status ba_h5_set_attr_i64(ba_h5file *f, const char *object, const char *name,
                             const long long *values, size_t n, ba_error *err)
{
    return set_attr(f, object, name, H5T_STD_I64LE, H5T_NATIVE_LLONG, n, values, err);
}

static ba_status open_attr(const ba_h5file *f, const char *object, const char *name,
                           hid_t *obj, hid_t *attr, size_t *count, ba_error *err)
{
    if (!ba_h5_exists(f, object))
        return ba_fail(err, BA_ERR_FORMAT, "%s:%s: no such object", f->path, object);
    *obj = H5Oopen(f->id, object, H5P_DEFAULT);
    if (*obj < 0 || H5Aexists(*obj, name) <= 0) {
        if (*obj >= 0) H5Oclose(*obj);
        return ba_fail(err, BA_ERR_FORMAT, "%s:%s: missing attribute '%s'", f->path,
                       object, name);
    }
    *attr = H5Aopen(*obj, name, H5P_DEFAULT);
    hid_t space = H5Aget_space(*attr);
    hssize_t npoints = H5Sget_simple_extent_npoints(space);
    H5Sclose(space);
    *count = npoints < 0 ? 0 : (size_t)npoints;
    return BA_OK;
}

static ba_status get_attr_num(const ba_h5file *f, const char *object, const char *name,
                              hid_t mtype, void *values, size_t n, ba_error *err)
{
    hid_t obj = H5I_INVALID_HID, attr = H5I_INVALID_HID;
    size_t count = 0;
    BA_CHECK(open_attr(f, object, name, &obj, &attr, &count, err));
    ba_status rc = BA_OK;
    hid_t t = H5Aget_type(attr);
    H5T_class_t cls = H5Tget_class(t);
    H5Tclose(t);
    if (cls != H5T_FLOAT && cls != H5T_INTEGER)
        rc = ba_fail(err, BA_ERR_FORMAT, "%s:%s: attribute '%s' is not numeric",
                     f->path, object, name);
    else if (count != n)
        rc = ba_fail(err, BA_ERR_SHAPE, "%s:%s: attribute '%s' has %zu values, expected %zu",
                     f->path, object, name, count, n);
    else if (H5Aread(attr, mtype, values) < 0)
        rc = ba_fail(err, BA_ERR_IO, "%s:%s: cannot read attribute '%s'", f->path,
                     object, name);
    H5Aclose(attr);
    H5Oclose(obj);
    return rc;
}

ba_status ba_h5_get_attr_f64(const ba_h5file *f, const char *object, const char *name,
                             double *values, size_t n, ba_error *err)
{
    return get_attr_num(f, object, name, H5T_NATIVE_DOUBLE, values, n, err);
}

ba_status ba_h5_get_attr_i64(const ba_h5file *f, const char *object, const char *name,
                             long long *values, size_t n, ba_error *err)
{
    return get_attr_num(f, object, name, H5T_NATIVE_LLONG, values, n, err);
}

ba_status ba_h5_get_attr_str(const ba_h5file *f, const char *object, const char *name,
                             char **value, ba_error *err)
{
    hid_t obj = H5I_INVALID_HID, attr = H5I_INVALID_HID;
    size_t count = 0;
    *value = NULL;
    BA_CHECK(open_attr(f, object, name, &obj, &attr, &count, err));
    ba_status rc = BA_OK;
    hid_t t = H5Aget_type(attr);
    if (H5Tget_class(t) != H5T_STRING) {
        rc = ba_fail(err, BA_ERR_FORMAT, "%s:%s: attribute '%s' is not a string", f->path,
                     object, name);
    } else if (H5Tis_variable_str(t) > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t)); /* h5py writes UTF-8; no conversion exists */
        char *s = NULL;
        if (H5Aread(attr, mt, &s) < 0 || !s)
            rc = ba_fail(err, BA_ERR_IO, "%s: cannot read attribute %s", f->path, name);
        else {
            *value = strdup(s);
            H5free_memory(s);
        }
        H5Tclose(mt);
    } else {
        size_t width = H5Tget_size(t);
        char *s = ba_calloc(width + 1, 1, "attribute", err);
        if (!s) rc = BA_ERR_NOMEM;
        else if (H5Aread(attr, t, s) < 0) {
            free(s);
            rc = ba_fail(err, BA_ERR_IO, "%s: cannot read attribute %s", f->path, name);
        } else *value = s;
    }
    H5Tclose(t);
    H5Aclose(attr);
    H5Oclose(obj);
    return rc;
}

typedef struct {
    char **names;
    size_t n, cap;
    int failed;
} name_list;

static herr_t collect_name(hid_t group, const char *name, const H5L_info_t *info,
                           void *data)
{
    (void)group;
    (void)info;
    name_list *list = data;
    if (list->n == list->cap) {
        size_t cap = list->cap ? 2 * list->cap : 16;
        char **grown = realloc(list->names, cap * sizeof *grown);
        if (!grown) { list->failed = 1; return -1; }
        list->names = grown;
        list->cap = cap;
    }
    list->names[list->n] = strdup(name);
    if (!list->names[list->n]) { list->failed = 1; return -1; }
    list->n++;
    return 0;
}

ba_status ba_h5_list_group(const ba_h5file *f, const char *group, char ***names,
                           size_t *n, ba_error *err)
{
    *names = NULL;
    *n = 0;
    if (!ba_h5_exists(f, group))
        return ba_fail(err, BA_ERR_FORMAT, "%s:%s: no such group", f->path, group);
    hid_t g = H5Gopen2(f->id, group, H5P_DEFAULT);
    if (g < 0) return ba_fail(err, BA_ERR_FORMAT, "%s:%s: not a group", f->path, group);
    name_list list = {0};
    hsize_t idx = 0;
    herr_t status = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_name, &list);
    H5Gclose(g);
    if (status < 0 || list.failed) {
        ba_h5_free_strings(list.names, list.n);
        return ba_fail(err, BA_ERR_IO, "%s:%s: cannot list group", f->path, group);
    }
    *names = list.names;
    *n = list.n;
    return BA_OK;
}
