/* atlas.c — regions and per-region tables (see atlas.h). */
#include "brainalign/io/atlas.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/core/alloc.h"
#include "brainalign/io/h5io.h"
#include "brainalign/parallel/parallel.h"

ba_status ba_atlas_read(const char *path, MPI_Comm comm, long expect_voxels, ba_atlas *atlas,
                        ba_error *err)
{
    memset(atlas, 0, sizeof *atlas);
    ba_h5file f;
    BA_CHECK(ba_h5_open(&f, path, comm, err));
    int rank = 0;
    hsize_t dims[BA_H5_MAX_RANK];
    size_t n_names = 0;
    ba_status rc = ba_h5_shape(&f, "/labels", 1, &rank, dims, err);
    if (rc == BA_OK && expect_voxels > 0 && (long)dims[0] != expect_voxels)
        rc = ba_fail(err, BA_ERR_SHAPE, "%s:/labels has %llu voxels, the BOLD has %ld", path,
                     (unsigned long long)dims[0], expect_voxels);
    if (rc == BA_OK) {
        atlas->n_voxels = (long)dims[0];
        atlas->labels = ba_alloc_array((long long)dims[0], 1, sizeof(int), "atlas labels", err);
        rc = atlas->labels ? ba_h5_read_n(&f, "/labels", BA_H5_I32, 1, NULL, NULL, atlas->labels,
                                          (size_t)dims[0], err)
                           : err->code;
    }
    if (rc == BA_OK) rc = ba_h5_read_strings(&f, "/names", &atlas->names, &n_names, err);
    atlas->n_regions = (int)n_names;
    for (long v = 0; rc == BA_OK && v < atlas->n_voxels; v++)
        if (atlas->labels[v] < -1 || atlas->labels[v] >= atlas->n_regions)
            rc = ba_fail(err, BA_ERR_VALUE, "%s:/labels[%ld] = %d is not a region (0..%d or -1)",
                         path, v, atlas->labels[v], atlas->n_regions - 1);
    ba_h5_abandon(&f);
    rc = ba_mpi_agree(comm, rc, err);
    if (rc != BA_OK) ba_atlas_free(atlas);
    return rc;
}

ba_status ba_atlas_write(const char *path, MPI_Comm comm, const ba_atlas *atlas, ba_error *err)
{
    ba_h5file f;
    BA_CHECK(ba_h5_create(&f, path, comm, err));
    hsize_t dims[1] = {(hsize_t)atlas->n_voxels};
    ba_status rc = ba_h5_write_all(&f, "/labels", BA_H5_I32, 1, dims, atlas->labels, err);
    if (rc == BA_OK)
        rc = ba_h5_write_strings(&f, "/names", atlas->names, (size_t)atlas->n_regions, 0, err);
    if (rc != BA_OK) { ba_h5_abandon(&f); return rc; }
    return ba_h5_close(&f, err);
}

void ba_atlas_free(ba_atlas *atlas)
{
    free(atlas->labels);
    ba_h5_free_strings(atlas->names, (size_t)atlas->n_regions);
    memset(atlas, 0, sizeof *atlas);
}

static int compare_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

ba_status ba_roi_table_compute(const ba_atlas *atlas, const float *r, ba_roi_table *t,
                               ba_error *err)
{
    memset(t, 0, sizeof *t);
    int R = atlas->n_regions;
    t->n_regions = R;
    t->names = atlas->names;
    t->n_voxels = ba_calloc((size_t)R + 1, sizeof(long), "ROI table", err);
    t->mean = ba_calloc((size_t)R + 1, sizeof(double), "ROI table", err);
    t->median = ba_calloc((size_t)R + 1, sizeof(double), "ROI table", err);
    t->sem = ba_calloc((size_t)R + 1, sizeof(double), "ROI table", err);
    float *values = ba_calloc((size_t)atlas->n_voxels + 1, sizeof(float), "ROI values", err);
    if (!t->n_voxels || !t->mean || !t->median || !t->sem || !values) {
        free(values);
        ba_roi_table_free(t);
        return BA_ERR_NOMEM;
    }
    for (int g = 0; g < R; g++) {
        long n = 0;
        for (long v = 0; v < atlas->n_voxels; v++)
            if (atlas->labels[v] == g) values[n++] = r[v];
        t->n_voxels[g] = n;
        if (n == 0) { t->mean[g] = t->median[g] = t->sem[g] = NAN; continue; }
        double s = 0, ss = 0;
        for (long i = 0; i < n; i++) s += values[i];
        double mean = s / n;
        for (long i = 0; i < n; i++) ss += (values[i] - mean) * (values[i] - mean);
        qsort(values, (size_t)n, sizeof *values, compare_float);
        t->mean[g] = mean;
        t->median[g] = n % 2 ? values[n / 2] : 0.5 * ((double)values[n / 2 - 1] + values[n / 2]);
        t->sem[g] = n > 1 ? sqrt(ss / (n - 1)) / sqrt((double)n) : 0.0;
    }
    free(values);
    return BA_OK;
}

void ba_roi_table_free(ba_roi_table *t)
{
    free(t->n_voxels);
    free(t->mean);
    free(t->median);
    free(t->sem);
    memset(t, 0, sizeof *t);
}
