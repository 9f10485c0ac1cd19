/* importers.c — GIfTI, NIfTI and HDF5 BOLD -> bold.h5 (see importers.h). */
#include "brainalign/io/importers.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gifti_io.h>
#include <nifti1_io.h>
#include <zlib.h>

#include "brainalign/core/alloc.h"
#include "brainalign/core/fs.h"
#include "brainalign/core/outfile.h"
#include "brainalign/io/h5io.h"
#include "brainalign/parallel/fault.h"
#include "brainalign/parallel/parallel.h"

/* Reads of a 4-D NIfTI go this many bytes of raw volumes at a time. */
#define NIFTI_CHUNK_BYTES ((size_t)256 << 20)
/* Two affines agree when no entry differs by more than this (mm). */
#define AFFINE_TOLERANCE 1e-3

/* ---- numbers of any NIfTI/GIfTI data type ------------------------------ */

static bool numeric_type_supported(int datatype)
{
    switch (datatype) {
    case NIFTI_TYPE_UINT8: case NIFTI_TYPE_INT8: case NIFTI_TYPE_INT16:
    case NIFTI_TYPE_UINT16: case NIFTI_TYPE_INT32: case NIFTI_TYPE_UINT32:
    case NIFTI_TYPE_INT64: case NIFTI_TYPE_UINT64: case NIFTI_TYPE_FLOAT32:
    case NIFTI_TYPE_FLOAT64:
        return true;
    default:
        return false;
    }
}

/* Element i of a buffer of `datatype` (one of numeric_type_supported). */
static double element(const void *buf, int datatype, size_t i)
{
    switch (datatype) {
    case NIFTI_TYPE_UINT8: return ((const uint8_t *)buf)[i];
    case NIFTI_TYPE_INT8: return ((const int8_t *)buf)[i];
    case NIFTI_TYPE_INT16: return ((const int16_t *)buf)[i];
    case NIFTI_TYPE_UINT16: return ((const uint16_t *)buf)[i];
    case NIFTI_TYPE_INT32: return ((const int32_t *)buf)[i];
    case NIFTI_TYPE_UINT32: return ((const uint32_t *)buf)[i];
    case NIFTI_TYPE_INT64: return (double)((const int64_t *)buf)[i];
    case NIFTI_TYPE_UINT64: return (double)((const uint64_t *)buf)[i];
    case NIFTI_TYPE_FLOAT32: return ((const float *)buf)[i];
    case NIFTI_TYPE_FLOAT64: return ((const double *)buf)[i];
    default: return NAN;
    }
}

/* ---- NIfTI headers -------------------------------------------------------- */

typedef struct {
    double slope, inter; /* value = raw * slope + inter */
    bool scaled;
} nifti_scaling;

/* As nibabel: a zero or non-finite slope means "no scaling". */
static nifti_scaling scaling_of(const nifti_image *nim)
{
    nifti_scaling s = {1.0, 0.0, false};
    if (nim->scl_slope != 0 && isfinite(nim->scl_slope)) {
        s.slope = nim->scl_slope;
        s.inter = isfinite(nim->scl_inter) ? nim->scl_inter : 0.0;
        s.scaled = !(s.slope == 1.0 && s.inter == 0.0);
    }
    return s;
}

/* nibabel's img.affine: sform if its code is set, else qform, else the
 * voxel-size affine centred on the grid with x flipped. */
static void best_affine(const nifti_image *nim, double affine[16], int *xform_code)
{
    memset(affine, 0, 16 * sizeof *affine);
    const mat44 *m = NULL;
    *xform_code = 0;
    if (nim->sform_code != 0) { m = &nim->sto_xyz; *xform_code = nim->sform_code; }
    else if (nim->qform_code != 0) { m = &nim->qto_xyz; *xform_code = nim->qform_code; }
    if (m) {
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 4; c++) affine[4 * r + c] = m->m[r][c];
        return;
    }
    const int n[3] = {nim->nx, nim->ny, nim->nz};
    for (int a = 0; a < 3; a++) {
        double zoom = nim->pixdim[a + 1];
        double sign = a == 0 ? -1.0 : 1.0;
        affine[4 * a + a] = sign * zoom;
        affine[4 * a + 3] = -sign * zoom * (n[a] - 1) / 2.0;
    }
    affine[15] = 1.0;
}

static ba_status open_nifti_header(const char *path, nifti_image **out, ba_error *err)
{
    *out = NULL;
    if (access(path, R_OK) != 0)
        return ba_fail(err, BA_ERR_IO, "%s: no such file or not readable", path);
    nifti_image *nim = nifti_image_read(path, 0);
    if (!nim)
        return ba_fail(err, BA_ERR_FORMAT, "%s: not a NIfTI-1 file (or its header is truncated)",
                       path);
    if (!numeric_type_supported(nim->datatype)) {
        ba_status rc = ba_fail(err, BA_ERR_FORMAT, "%s: data type %s is not supported "
                               "(integers or floats expected)", path,
                               nifti_datatype_string(nim->datatype));
        nifti_image_free(nim);
        return rc;
    }
    for (int d = 5; d <= nim->dim[0] && d < 8; d++)
        if (nim->dim[d] > 1) {
            ba_status rc = ba_fail(err, BA_ERR_SHAPE, "%s: has %d dimensions (dim[%d] = %d); "
                                   "3-D or 4-D expected", path, nim->dim[0], d, nim->dim[d]);
            nifti_image_free(nim);
            return rc;
        }
    *out = nim;
    return BA_OK;
}

/* An uncompressed image file shorter than its header says is truncated;
 * say so before nifticlib reads zeros with a warning per row. */
static ba_status check_image_size(const char *path, const nifti_image *nim, ba_error *err)
{
    if (!nim->iname || ba_has_suffix(nim->iname, ".gz", false)) return BA_OK;
    struct stat st;
    if (stat(nim->iname, &st) != 0)
        return ba_fail(err, BA_ERR_IO, "%s: cannot stat the image file %s", path, nim->iname);
    unsigned long long need =
        (unsigned long long)nim->iname_offset + (unsigned long long)nim->nvox * nim->nbyper;
    if ((unsigned long long)st.st_size < need)
        return ba_fail(err, BA_ERR_FORMAT, "%s: truncated: %llu bytes, the header needs %llu",
                       path, (unsigned long long)st.st_size, need);
    return BA_OK;
}

static long nifti_n_tr(const nifti_image *nim)
{
    return nim->dim[0] >= 4 && nim->dim[4] > 0 ? nim->dim[4] : 1;
}

/* The voxel data are read here, not by nifticlib, whose reader silently
 * turns NaN and infinite floats into 0: the importers must see them. zlib
 * reads plain and gzip-compressed files alike. */
typedef struct {
    gzFile fz;
    bool swap;
} nifti_stream;

static ba_status nifti_stream_open(const char *path, const nifti_image *nim, nifti_stream *s,
                                   ba_error *err)
{
    s->swap = nim->byteorder != nifti_short_order() && nim->swapsize > 1;
    s->fz = gzopen(nim->iname, "rb");
    if (!s->fz) return ba_fail(err, BA_ERR_IO, "%s: cannot open the image data %s", path, nim->iname);
    if (gzseek(s->fz, nim->iname_offset, SEEK_SET) != nim->iname_offset) {
        gzclose(s->fz);
        s->fz = NULL;
        return ba_fail(err, BA_ERR_FORMAT, "%s: truncated before its data", path);
    }
    return BA_OK;
}

static void swap_bytes(unsigned char *buf, size_t n_values, int size)
{
    for (size_t v = 0; v < n_values; v++, buf += size)
        for (int a = 0, b = size - 1; a < b; a++, b--) {
            unsigned char t = buf[a];
            buf[a] = buf[b];
            buf[b] = t;
        }
}

/* The next `count` volumes (of `vol_bytes` each) into buf, in native order. */
static ba_status nifti_stream_read(nifti_stream *s, const char *path, const nifti_image *nim,
                                   long t0, long count, size_t vol_bytes, void *buf,
                                   ba_error *err)
{
    size_t want = (size_t)count * vol_bytes, got = 0;
    while (got < want) {
        size_t piece = want - got > ((size_t)1 << 30) ? (size_t)1 << 30 : want - got;
        int n = gzread(s->fz, (unsigned char *)buf + got, (unsigned)piece);
        if (n <= 0) break;
        got += (size_t)n;
    }
    if (got < want)
        return ba_fail(err, BA_ERR_FORMAT, "%s: truncated or corrupt: volumes %ld..%ld need %zu "
                       "bytes, %zu could be read", path, t0, t0 + count - 1, want, got);
    if (s->swap) swap_bytes(buf, want / (size_t)nim->swapsize, nim->swapsize);
    return BA_OK;
}

static void nifti_stream_close(nifti_stream *s)
{
    if (s->fz) gzclose(s->fz);
    s->fz = NULL;
}

/* ---- brain spaces ---------------------------------------------------------- */

void ba_brain_space_free(ba_brain_space *space)
{
    free(space->mask);
    memset(space, 0, sizeof *space);
}

static long grid_size(const ba_brain_space *s)
{
    return s->dims[0] * s->dims[1] * s->dims[2];
}

void ba_brain_space_describe(const ba_brain_space *s, long voxel, char *buf, size_t size)
{
    if (s && s->kind == BA_SPACE_SURFACE) {
        if (voxel < s->n_vertices[0]) snprintf(buf, size, "lh vertex %ld", voxel);
        else snprintf(buf, size, "rh vertex %ld", voxel - s->n_vertices[0]);
        return;
    }
    if (s && s->kind == BA_SPACE_VOLUME && s->mask) {
        long seen = 0, n = grid_size(s);
        for (long c = 0; c < n; c++)
            if (s->mask[c] && seen++ == voxel) {
                long k = c % s->dims[2], j = (c / s->dims[2]) % s->dims[1];
                long i = c / (s->dims[1] * s->dims[2]);
                snprintf(buf, size, "voxel (%ld, %ld, %ld)", i, j, k);
                return;
            }
    }
    snprintf(buf, size, "voxel %ld", voxel);
}

ba_status ba_brain_space_from_mask(const char *mask_path, ba_brain_space *space, ba_error *err)
{
    memset(space, 0, sizeof *space);
    nifti_image *nim = NULL;
    BA_CHECK(open_nifti_header(mask_path, &nim, err));
    ba_status rc = BA_OK;
    nifti_stream stream = {NULL, false};
    unsigned char *raw = NULL;
    if (nifti_n_tr(nim) != 1) {
        rc = ba_fail(err, BA_ERR_SHAPE, "%s: a mask must be 3-D, this one has %ld volumes",
                     mask_path, nifti_n_tr(nim));
        goto done;
    }
    BA_TRY(check_image_size(mask_path, nim, err), done);
    size_t vol_bytes = (size_t)nim->nx * (size_t)nim->ny * (size_t)nim->nz * (size_t)nim->nbyper;
    BA_ALLOC(raw, vol_bytes, "mask voxels", done);
    BA_TRY(nifti_stream_open(mask_path, nim, &stream, err), done);
    BA_TRY(nifti_stream_read(&stream, mask_path, nim, 0, 1, vol_bytes, raw, err), done);
    space->kind = BA_SPACE_VOLUME;
    space->dims[0] = nim->nx;
    space->dims[1] = nim->ny;
    space->dims[2] = nim->nz;
    best_affine(nim, space->affine, &space->xform_code);
    BA_ALLOC(space->mask, grid_size(space), "mask", done);
    nifti_scaling sc = scaling_of(nim);
    long nx = nim->nx, ny = nim->ny, nz = nim->nz;
    for (long i = 0; i < nx; i++)
        for (long j = 0; j < ny; j++)
            for (long k = 0; k < nz; k++) {
                double v = element(raw, nim->datatype, (size_t)(i + nx * (j + ny * k)));
                v = v * sc.slope + sc.inter;
                if (!isfinite(v)) {
                    rc = ba_fail(err, BA_ERR_VALUE, "%s: mask value at voxel (%ld, %ld, %ld) "
                                 "is not finite", mask_path, i, j, k);
                    goto done;
                }
                int in = v != 0;
                space->mask[(i * ny + j) * nz + k] = in;
                space->n_voxels += in;
            }
    if (space->n_voxels == 0)
        rc = ba_fail(err, BA_ERR_VALUE, "%s: the mask is empty (no nonzero voxel)", mask_path);
done:
    nifti_stream_close(&stream);
    free(raw);
    nifti_image_free(nim);
    if (rc != BA_OK) ba_brain_space_free(space);
    return rc;
}

static ba_status read_volume_space(ba_h5file *f, ba_brain_space *s, ba_error *err)
{
    int rank = 0;
    hsize_t dims[BA_H5_MAX_RANK];
    BA_CHECK(ba_h5_shape(f, "/mask", 3, &rank, dims, err));
    s->kind = BA_SPACE_VOLUME;
    for (int a = 0; a < 3; a++) s->dims[a] = (long)dims[a];
    size_t cells = 0;
    BA_CHECK(ba_size_product3((long long)dims[0], (long long)dims[1], (long long)dims[2],
                              sizeof *s->mask, "/mask", &cells, err));
    cells /= sizeof *s->mask;
    s->mask = ba_alloc_array((long long)cells, 1, sizeof *s->mask, "mask", err);
    if (!s->mask) return err->code;
    BA_CHECK(ba_h5_read_n(f, "/mask", BA_H5_I32, 3, NULL, NULL, s->mask, cells, err));
    hsize_t adims[BA_H5_MAX_RANK];
    BA_CHECK(ba_h5_shape(f, "/affine", 2, &rank, adims, err));
    if (adims[0] != 4 || adims[1] != 4)
        return ba_fail(err, BA_ERR_SHAPE, "%s:/affine is %llux%llu, expected 4x4", f->path,
                       (unsigned long long)adims[0], (unsigned long long)adims[1]);
    BA_CHECK(ba_h5_read_n(f, "/affine", BA_H5_F64, 2, NULL, NULL, s->affine, 16, err));
    long long code = 0;
    ba_error ignored;
    if (ba_h5_get_attr_i64(f, "/affine", "xform_code", &code, 1, &ignored) == BA_OK)
        s->xform_code = (int)code;
    for (long c = 0; c < grid_size(s); c++) {
        s->mask[c] = s->mask[c] != 0;
        s->n_voxels += s->mask[c];
    }
    return BA_OK;
}

static ba_status read_surface_space(ba_h5file *f, ba_brain_space *s, ba_error *err)
{
    static const char *const names[2] = {"/surface/n_vertices_lh", "/surface/n_vertices_rh"};
    s->kind = BA_SPACE_SURFACE;
    for (int h = 0; h < 2; h++) {
        long long n = 0;
        int rank = 0;
        hsize_t dims[BA_H5_MAX_RANK];
        BA_CHECK(ba_h5_shape(f, names[h], 1, &rank, dims, err));
        if (dims[0] != 1)
            return ba_fail(err, BA_ERR_SHAPE, "%s:%s should hold one number", f->path, names[h]);
        BA_CHECK(ba_h5_read_n(f, names[h], BA_H5_I64, 1, NULL, NULL, &n, 1, err));
        if (n < 0)
            return ba_fail(err, BA_ERR_VALUE, "%s:%s = %lld is negative", f->path, names[h], n);
        s->n_vertices[h] = (long)n;
    }
    s->n_voxels = s->n_vertices[0] + s->n_vertices[1];
    return BA_OK;
}

/* The columns of the first story, checked against the recorded space. */
static ba_status check_space_against_data(ba_h5file *f, ba_brain_space *s, ba_error *err)
{
    if (!ba_h5_exists(f, "/stories")) return BA_OK;
    char **stories = NULL;
    size_t n = 0;
    BA_CHECK(ba_h5_list_group(f, "/stories", &stories, &n, err));
    ba_status rc = BA_OK;
    if (n > 0) {
        char obj[BA_PATH_MAX];
        snprintf(obj, sizeof obj, "/stories/%s/data", stories[0]);
        int rank = 0;
        hsize_t dims[BA_H5_MAX_RANK];
        rc = ba_h5_shape(f, obj, 2, &rank, dims, err);
        if (rc == BA_OK && s->kind == BA_SPACE_NONE) s->n_voxels = (long)dims[1];
        else if (rc == BA_OK && (long)dims[1] != s->n_voxels)
            rc = ba_fail(err, BA_ERR_SHAPE, "%s:%s has %llu voxels, but the recorded %s has %ld",
                         f->path, obj, (unsigned long long)dims[1],
                         s->kind == BA_SPACE_VOLUME ? "mask" : "surface", s->n_voxels);
    }
    ba_h5_free_strings(stories, n);
    return rc;
}

ba_status ba_brain_space_read(const char *bold_path, ba_brain_space *space, ba_error *err)
{
    memset(space, 0, sizeof *space);
    ba_h5file f;
    BA_CHECK(ba_h5_open(&f, bold_path, MPI_COMM_SELF, err));
    ba_status rc = BA_OK;
    if (ba_h5_exists(&f, "/mask")) rc = read_volume_space(&f, space, err);
    else if (ba_h5_exists(&f, "/surface")) rc = read_surface_space(&f, space, err);
    if (rc == BA_OK) rc = check_space_against_data(&f, space, err);
    ba_h5_abandon(&f);
    if (rc != BA_OK) ba_brain_space_free(space);
    return rc;
}

/* ---- GIfTI ------------------------------------------------------------------ */

/* One DataArray per TR, or one 2-D [n_vertices, n_tr] DataArray. */
static ba_status gifti_layout(const char *path, const gifti_image *g, long *n_tr, long *n_vert,
                              bool *one_array, ba_error *err)
{
    if (g->numDA < 1 || !g->darray)
        return ba_fail(err, BA_ERR_FORMAT, "%s: no DataArray", path);
    for (int k = 0; k < g->numDA; k++) {
        const giiDataArray *da = g->darray[k];
        if (da->intent == NIFTI_INTENT_POINTSET || da->intent == NIFTI_INTENT_TRIANGLE)
            return ba_fail(err, BA_ERR_FORMAT, "%s: DataArray %d is surface geometry (%s), "
                           "not functional data (give the .func.gii)", path, k,
                           da->intent == NIFTI_INTENT_POINTSET ? "pointset" : "triangles");
        if (!numeric_type_supported(da->datatype))
            return ba_fail(err, BA_ERR_FORMAT, "%s: DataArray %d has unsupported data type %s",
                           path, k, nifti_datatype_string(da->datatype));
        if (!da->data)
            return ba_fail(err, BA_ERR_FORMAT, "%s: DataArray %d has no data (truncated?)", path, k);
    }
    const giiDataArray *first = g->darray[0];
    *one_array = g->numDA == 1 && first->num_dim == 2 && first->dims[1] > 1;
    if (*one_array) {
        *n_vert = first->dims[0];
        *n_tr = first->dims[1];
    } else {
        *n_vert = first->dims[0];
        *n_tr = g->numDA;
        for (int k = 0; k < g->numDA; k++) {
            const giiDataArray *da = g->darray[k];
            bool column = da->num_dim == 1 || (da->num_dim == 2 && da->dims[1] == 1);
            if (!column || da->dims[0] != *n_vert)
                return ba_fail(err, BA_ERR_SHAPE, "%s: DataArray %d is not a vector of %ld "
                               "vertices like DataArray 0 (one DataArray per TR expected)",
                               path, k, *n_vert);
        }
    }
    if (*n_vert < 1) return ba_fail(err, BA_ERR_SHAPE, "%s: no vertices", path);
    for (int k = 0; k < g->numDA; k++) {
        long long expect = *one_array ? (long long)*n_vert * *n_tr : *n_vert;
        if (g->darray[k]->nvals != expect)
            return ba_fail(err, BA_ERR_FORMAT, "%s: DataArray %d holds %lld values, its "
                           "dimensions say %lld", path, k, g->darray[k]->nvals, expect);
    }
    return BA_OK;
}

/* `name` relative to the directory of `base` unless it is absolute. */
static void resolve_relative(const char *base, const char *name, char *out, size_t size)
{
    const char *slash = strrchr(base, '/');
    if (name[0] == '/' || !slash) snprintf(out, size, "%s", name);
    else snprintf(out, size, "%.*s/%s", (int)(slash - base), base, name);
}

static gifti_image *gifti_read_quiet(const char *path, int read_data)
{
    /* gifticlib warns on stderr once per DataArray about details that do not
     * matter here (e.g. a coordinate system on a time series, as nibabel and
     * fMRIPrep write them): 600 lines per story. Silence it for the read. */
    int verbosity = gifti_get_verb();
    gifti_set_verb(0);
    gifti_image *g = gifti_read_image(path, read_data);
    gifti_set_verb(verbosity);
    return g;
}

/* The data of DataArrays stored as ExternalFileBinary. The GIfTI standard
 * names the external file relative to the .gii (gifticlib opens it relative
 * to the working directory, which imports another file's data, or zeros,
 * when run from elsewhere): each name is resolved against the .gii's folder,
 * the file must exist and hold the bytes the DataArray declares. */
static ba_status gifti_read_external(const char *path, gifti_image *g, ba_error *err)
{
    for (int k = 0; k < g->numDA; k++) {
        giiDataArray *da = g->darray[k];
        if (!da->ext_fname || !da->ext_fname[0])
            return ba_fail(err, BA_ERR_FORMAT, "%s: DataArray %d is ExternalFileBinary but "
                           "names no ExternalFileName", path, k);
        char resolved[BA_PATH_MAX];
        resolve_relative(path, da->ext_fname, resolved, sizeof resolved);
        struct stat st;
        if (stat(resolved, &st) != 0 || access(resolved, R_OK) != 0)
            return ba_fail(err, BA_ERR_IO, "%s: DataArray %d: its external data file %s (%s, "
                           "relative to the .gii's folder) does not exist or is not readable",
                           path, k, da->ext_fname, resolved);
        if (da->ext_offset < 0 || da->nvals < 0 || da->nbyper < 1)
            return ba_fail(err, BA_ERR_FORMAT, "%s: DataArray %d: bad external offset or size",
                           path, k);
        unsigned long long need = (unsigned long long)da->ext_offset +
                                  (unsigned long long)da->nvals * (unsigned long long)da->nbyper;
        if ((unsigned long long)st.st_size < need)
            return ba_fail(err, BA_ERR_FORMAT, "%s: DataArray %d: the external file %s has %llu "
                           "bytes, the DataArray needs %llu (offset %lld + %lld values)", path, k,
                           resolved, (unsigned long long)st.st_size, need, da->ext_offset,
                           da->nvals);
        char *copy = malloc(strlen(resolved) + 1);
        if (!copy) return ba_fail(err, BA_ERR_NOMEM, "out of memory for a file name");
        memcpy(copy, resolved, strlen(resolved) + 1);
        free(da->ext_fname);
        da->ext_fname = copy;
        free(da->data); /* gifticlib allocates it even without reading */
        da->data = NULL;
        int verbosity = gifti_get_verb();
        gifti_set_verb(0);
        int bad = gifti_read_extern_DA_data(da);
        gifti_set_verb(verbosity);
        if (bad || !da->data)
            return ba_fail(err, BA_ERR_IO, "%s: DataArray %d: cannot read its external data "
                           "from %s", path, k, resolved);
    }
    return BA_OK;
}

/* The GIfTI image with its data, external files read relative to the .gii. */
static ba_status gifti_open(const char *path, gifti_image **out, ba_error *err)
{
    *out = NULL;
    if (access(path, R_OK) != 0)
        return ba_fail(err, BA_ERR_IO, "%s: no such file or not readable", path);
    gifti_image *g = gifti_read_quiet(path, 0);
    if (!g)
        return ba_fail(err, BA_ERR_FORMAT, "%s: cannot read as GIfTI (not GIfTI XML, or "
                       "truncated)", path);
    int external = 0;
    for (int k = 0; k < g->numDA; k++)
        external += g->darray && g->darray[k] && g->darray[k]->encoding == GIFTI_ENCODING_EXTBIN;
    ba_status rc = BA_OK;
    if (external == 0) {
        gifti_free_image(g);
        g = gifti_read_quiet(path, 1);
        if (!g)
            return ba_fail(err, BA_ERR_FORMAT, "%s: cannot read as GIfTI (not GIfTI XML, or "
                           "truncated)", path);
    } else if (external < g->numDA) {
        rc = ba_fail(err, BA_ERR_FORMAT, "%s: %d of its %d DataArrays are ExternalFileBinary, "
                     "the others embedded; a series stored all one way is expected", path,
                     external, g->numDA);
    } else {
        rc = gifti_read_external(path, g, err);
    }
    if (rc != BA_OK) { gifti_free_image(g); return rc; }
    *out = g;
    return BA_OK;
}

/* The TR a GIfTI states: the "TimeStep" metadata of its first DataArray (or
 * of the file), in milliseconds as FreeSurfer's mri_vol2surf and fMRIPrep
 * write it. 0 when absent or 0; an unreadable or negative value is an error. */
static ba_status gifti_time_step(const char *path, const gifti_image *g, double *tr_s,
                                 ba_error *err)
{
    *tr_s = 0;
    const char *v = NULL;
    if (g->numDA > 0 && g->darray[0]) v = gifti_get_meta_value(&g->darray[0]->meta, "TimeStep");
    if (!v) v = gifti_get_meta_value(&g->meta, "TimeStep");
    if (!v) return BA_OK;
    char *end = NULL;
    double ms = strtod(v, &end);
    while (end && (*end == ' ' || *end == '\t' || *end == '\n')) end++;
    if (end == v || (end && *end) || ms < 0 || !isfinite(ms))
        return ba_fail(err, BA_ERR_FORMAT, "%s: TimeStep metadata '%s' is not a number of "
                       "milliseconds >= 0", path, v);
    /* gifticlib writes TimeStep 0.000000 when it does not know the TR. */
    *tr_s = ms / 1000.0;
    return BA_OK;
}

static ba_status gifti_read(const char *path, float **data, long *n_tr, long *n_vertices,
                            double *tr_s, ba_error *err)
{
    *data = NULL;
    *n_tr = *n_vertices = 0;
    *tr_s = 0;
    gifti_image *g = NULL;
    BA_CHECK(gifti_open(path, &g, err));
    long nt = 0, nv = 0;
    bool one_array = false;
    ba_status rc = gifti_layout(path, g, &nt, &nv, &one_array, err);
    if (rc == BA_OK) rc = gifti_time_step(path, g, tr_s, err);
    float *out = NULL;
    if (rc == BA_OK) {
        out = ba_alloc_array(nt, nv, sizeof *out, "GIfTI series [TRs, vertices]", err);
        if (!out) rc = err->code;
    }
    if (rc == BA_OK && one_array) {
        const giiDataArray *da = g->darray[0];
        bool row_major = da->ind_ord != GIFTI_IND_ORD_COL_MAJOR;
        for (long v = 0; v < nv; v++)
            for (long t = 0; t < nt; t++) {
                size_t src = row_major ? (size_t)(v * nt + t) : (size_t)(v + t * nv);
                out[t * nv + v] = (float)element(da->data, da->datatype, src);
            }
    } else if (rc == BA_OK) {
        for (long t = 0; t < nt; t++) {
            const giiDataArray *da = g->darray[t];
            for (long v = 0; v < nv; v++)
                out[t * nv + v] = (float)element(da->data, da->datatype, (size_t)v);
        }
    }
    gifti_free_image(g);
    if (rc != BA_OK) { free(out); return rc; }
    *data = out;
    *n_tr = nt;
    *n_vertices = nv;
    return BA_OK;
}

ba_status ba_gifti_read_series(const char *path, float **data, long *n_tr, long *n_vertices,
                               ba_error *err)
{
    double tr_s = 0;
    return gifti_read(path, data, n_tr, n_vertices, &tr_s, err);
}

/* ---- NIfTI ------------------------------------------------------------------ */

static ba_status check_same_grid(const char *path, const nifti_image *nim,
                                 const ba_brain_space *space, ba_error *err)
{
    if (nim->nx != space->dims[0] || nim->ny != space->dims[1] || nim->nz != space->dims[2])
        return ba_fail(err, BA_ERR_SHAPE, "%s: grid %dx%dx%d differs from the mask's "
                       "%ldx%ldx%ld", path, nim->nx, nim->ny, nim->nz, space->dims[0],
                       space->dims[1], space->dims[2]);
    double affine[16];
    int code = 0;
    best_affine(nim, affine, &code);
    for (int e = 0; e < 16; e++)
        if (fabs(affine[e] - space->affine[e]) > AFFINE_TOLERANCE)
            return ba_fail(err, BA_ERR_SHAPE, "%s: affine differs from the mask's (row %d, "
                           "column %d: %g vs %g); resample to the mask's space first",
                           path, e / 4, e % 4, affine[e], space->affine[e]);
    return BA_OK;
}

/* Offsets of the mask's voxels in a NIfTI volume (x fastest), listed in the
 * mask's C order (i slowest). */
static long *mask_file_offsets(const ba_brain_space *s, ba_error *err)
{
    long *off = ba_calloc((size_t)s->n_voxels + 1, sizeof *off, "mask offsets", err);
    if (!off) return NULL;
    long nx = s->dims[0], ny = s->dims[1], nz = s->dims[2], v = 0;
    for (long i = 0; i < nx; i++)
        for (long j = 0; j < ny; j++)
            for (long k = 0; k < nz; k++)
                if (s->mask[(i * ny + j) * nz + k]) off[v++] = i + nx * (j + ny * k);
    return off;
}

ba_status ba_nifti_read_masked(const char *path, const ba_brain_space *space, float **data,
                               long *n_tr, ba_error *err)
{
    *data = NULL;
    *n_tr = 0;
    if (space->kind != BA_SPACE_VOLUME || !space->mask)
        return ba_fail(err, BA_ERR_INTERNAL, "%s: reading a volume needs a mask", path);
    nifti_image *nim = NULL;
    BA_CHECK(open_nifti_header(path, &nim, err));
    ba_status rc = BA_OK;
    nifti_stream stream = {NULL, false};
    long *off = NULL;
    float *out = NULL;
    unsigned char *chunk = NULL;
    BA_TRY(check_same_grid(path, nim, space, err), done);
    BA_TRY(check_image_size(path, nim, err), done);
    long nt = nifti_n_tr(nim), V = space->n_voxels;
    size_t vox = (size_t)grid_size(space), vol_bytes = vox * (size_t)nim->nbyper;
    long per_chunk = (long)(NIFTI_CHUNK_BYTES / (vol_bytes ? vol_bytes : 1));
    if (per_chunk < 1) per_chunk = 1;
    if (per_chunk > nt) per_chunk = nt;
    off = mask_file_offsets(space, err);
    if (!off) { rc = BA_ERR_NOMEM; goto done; }
    BA_ALLOC(out, (size_t)nt * (size_t)V, "masked BOLD", done);
    BA_ALLOC(chunk, (size_t)per_chunk * vol_bytes, "NIfTI volumes", done);
    BA_TRY(nifti_stream_open(path, nim, &stream, err), done);
    nifti_scaling sc = scaling_of(nim);
    for (long t0 = 0; t0 < nt; t0 += per_chunk) {
        long count = nt - t0 < per_chunk ? nt - t0 : per_chunk;
        BA_TRY(nifti_stream_read(&stream, path, nim, t0, count, vol_bytes, chunk, err), done);
        for (long t = 0; t < count; t++)
            for (long v = 0; v < V; v++) {
                double x = element(chunk, nim->datatype, (size_t)t * vox + (size_t)off[v]);
                out[(t0 + t) * V + v] = (float)(x * sc.slope + sc.inter);
            }
    }
done:
    nifti_stream_close(&stream);
    free(chunk);
    free(off);
    nifti_image_free(nim);
    if (rc != BA_OK) { free(out); return rc; }
    *data = out;
    *n_tr = nt;
    return BA_OK;
}

/* The TR a NIfTI header states: pixdim[4] when xyzt_units names a time unit
 * (s, ms or us); 0 when the unit is unknown or pixdim[4] is not positive.
 * A story must be a 4-D series: a 3-D volume is an error. */
static ba_status nifti_series_tr(const char *path, double *tr_s, ba_error *err)
{
    *tr_s = 0;
    nifti_image *nim = NULL;
    BA_CHECK(open_nifti_header(path, &nim, err));
    ba_status rc = BA_OK;
    if (nim->dim[0] < 4)
        rc = ba_fail(err, BA_ERR_SHAPE, "%s: 3-D (%dx%dx%d), a 4-D series expected (one "
                     "volume per TR)", path, nim->nx, nim->ny, nim->nz);
    double scale = nim->time_units == NIFTI_UNITS_SEC ? 1.0
                   : nim->time_units == NIFTI_UNITS_MSEC ? 1e-3
                   : nim->time_units == NIFTI_UNITS_USEC ? 1e-6 : 0.0;
    if (rc == BA_OK && scale > 0 && nim->pixdim[4] > 0 && isfinite(nim->pixdim[4]))
        *tr_s = nim->pixdim[4] * scale;
    nifti_image_free(nim);
    return rc;
}

/* ---- per-story trims ---------------------------------------------------------- */

static ba_status check_story_name(const char *story, ba_error *err);

ba_status ba_story_trims_set(ba_story_trims *t, const char *story, long trim_start,
                             long trim_end, ba_error *err)
{
    if (trim_start < 0 || trim_end < 0)
        return ba_fail(err, BA_ERR_USAGE, "story %s: trimming must be >= 0 TRs", story);
    for (size_t k = 0; k < t->n; k++)
        if (strcmp(t->items[k].story, story) == 0) {
            t->items[k].trim_start = trim_start;
            t->items[k].trim_end = trim_end;
            return BA_OK;
        }
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 16;
        ba_story_trim *grown = realloc(t->items, cap * sizeof *grown);
        if (!grown) return ba_fail(err, BA_ERR_NOMEM, "out of memory for the trims");
        t->items = grown;
        t->cap = cap;
    }
    char *name = malloc(strlen(story) + 1);
    if (!name) return ba_fail(err, BA_ERR_NOMEM, "out of memory for the trims");
    memcpy(name, story, strlen(story) + 1);
    t->items[t->n++] = (ba_story_trim){name, trim_start, trim_end};
    return BA_OK;
}

void ba_story_trims_free(ba_story_trims *t)
{
    for (size_t k = 0; k < t->n; k++) free(t->items[k].story);
    free(t->items);
    memset(t, 0, sizeof *t);
}

static bool parse_count(const char *text, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < 0) return false;
    *out = v;
    return true;
}

ba_status ba_story_trims_read(ba_story_trims *t, const char *path, ba_error *err)
{
    FILE *fp = fopen(path, "r");
    if (!fp) return ba_fail(err, BA_ERR_IO, "%s: cannot open the trims table", path);
    char *line = NULL;
    size_t cap = 0, before = t->n;
    long line_no = 0;
    ba_status rc = BA_OK;
    while (rc == BA_OK && getline(&line, &cap, fp) >= 0) {
        line_no++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *field[4], *save = NULL;
        int n = 0;
        for (char *tok = strtok_r(line, " \t\r\n", &save); tok && n < 4;
             tok = strtok_r(NULL, " \t\r\n", &save))
            field[n++] = tok;
        if (n == 0) continue;
        long a = 0, b = 0;
        if (n == 3 && !parse_count(field[1], &a) && !parse_count(field[2], &b) &&
            t->n == before && strcmp(field[1], "trim_start") == 0)
            continue; /* the header line */
        if (n != 3 || !parse_count(field[1], &a) || !parse_count(field[2], &b)) {
            rc = ba_fail(err, BA_ERR_FORMAT, "%s:%ld: expected 'story trim_start trim_end' "
                         "(counts of TRs >= 0)", path, line_no);
            break;
        }
        for (size_t k = before; k < t->n; k++)
            if (strcmp(t->items[k].story, field[0]) == 0)
                rc = ba_fail(err, BA_ERR_FORMAT, "%s:%ld: story %s is listed twice", path,
                             line_no, field[0]);
        if (rc == BA_OK) rc = check_story_name(field[0], err);
        if (rc == BA_OK) rc = ba_story_trims_set(t, field[0], a, b, err);
        if (rc != BA_OK && err->code != BA_OK && line_no > 0 && !strstr(err->message, path))
            ba_context(err, "%s:%ld", path, line_no);
    }
    if (rc == BA_OK && ferror(fp)) rc = ba_fail(err, BA_ERR_IO, "%s: read error", path);
    if (rc == BA_OK && t->n == before)
        rc = ba_fail(err, BA_ERR_FORMAT, "%s: lists no story", path);
    free(line);
    fclose(fp);
    return rc;
}

/* ---- the list of inputs ------------------------------------------------------ */

ba_status ba_bold_format_parse(const char *name, ba_bold_format *format, ba_error *err)
{
    if (strcmp(name, "gifti") == 0) *format = BA_BOLD_GIFTI;
    else if (strcmp(name, "nifti") == 0) *format = BA_BOLD_NIFTI;
    else if (strcmp(name, "hdf5") == 0) *format = BA_BOLD_HDF5;
    else
        return ba_fail(err, BA_ERR_USAGE, "BOLD format '%s' is not gifti, nifti or hdf5", name);
    return BA_OK;
}

const char *ba_bold_format_name(ba_bold_format format)
{
    switch (format) {
    case BA_BOLD_GIFTI: return "gifti";
    case BA_BOLD_NIFTI: return "nifti";
    case BA_BOLD_HDF5: return "hdf5";
    }
    return "?";
}

static ba_status copy_string(const char *s, char **out, ba_error *err)
{
    *out = NULL;
    if (!s) return BA_OK;
    *out = ba_malloc(strlen(s) + 1, "input name", err);
    if (!*out) return BA_ERR_NOMEM;
    memcpy(*out, s, strlen(s) + 1);
    return BA_OK;
}

static void input_free(ba_bold_input *in)
{
    free(in->story);
    free(in->file[0]);
    free(in->file[1]);
    free(in->dataset);
    memset(in, 0, sizeof *in);
}

static ba_status check_story_name(const char *story, ba_error *err)
{
    if (!story || !story[0])
        return ba_fail(err, BA_ERR_USAGE, "a story needs a name");
    if (strchr(story, '/') || strcmp(story, ".") == 0 || strcmp(story, "..") == 0 ||
        strlen(story) > 255)
        return ba_fail(err, BA_ERR_USAGE, "'%s' is not a usable story name (no '/', at most "
                       "255 characters)", story);
    return BA_OK;
}

ba_status ba_bold_inputs_add(ba_bold_inputs *list, const char *story, const char *file0,
                             const char *file1, const char *dataset, ba_error *err)
{
    BA_CHECK(check_story_name(story, err));
    if (list->n == list->cap) {
        size_t cap = list->cap ? 2 * list->cap : 16;
        ba_bold_input *grown = realloc(list->items, cap * sizeof *grown);
        if (!grown) return ba_fail(err, BA_ERR_NOMEM, "out of memory for the input list");
        list->items = grown;
        list->cap = cap;
    }
    ba_bold_input *in = &list->items[list->n];
    memset(in, 0, sizeof *in);
    ba_status rc = copy_string(story, &in->story, err);
    if (rc == BA_OK) rc = copy_string(file0, &in->file[0], err);
    if (rc == BA_OK) rc = copy_string(file1, &in->file[1], err);
    if (rc == BA_OK) rc = copy_string(dataset, &in->dataset, err);
    if (rc != BA_OK) { input_free(in); return rc; }
    list->n++;
    return BA_OK;
}

void ba_bold_inputs_free(ba_bold_inputs *list)
{
    for (size_t k = 0; k < list->n; k++) input_free(&list->items[k]);
    free(list->items);
    memset(list, 0, sizeof *list);
}

static ba_status add_list_line(ba_bold_inputs *list, ba_bold_format format,
                               const char *list_path, long line_no, char **field, int n,
                               ba_error *err)
{
    int need_min = 2, need_max = format == BA_BOLD_NIFTI ? 2 : 3;
    if (format == BA_BOLD_GIFTI) need_min = 3;
    if (n < need_min || n > need_max)
        return ba_fail(err, BA_ERR_FORMAT, "%s:%ld: %d fields; expected %s", list_path, line_no,
                       n, format == BA_BOLD_GIFTI ? "'story lh rh' ('-' for a missing hemisphere)"
                       : format == BA_BOLD_NIFTI ? "'story volume'" : "'story file [dataset]'");
    char a[BA_PATH_MAX], b[BA_PATH_MAX];
    const char *f0 = NULL, *f1 = NULL, *dataset = NULL;
    if (strcmp(field[1], "-") != 0) { resolve_relative(list_path, field[1], a, sizeof a); f0 = a; }
    if (format == BA_BOLD_GIFTI && strcmp(field[2], "-") != 0) {
        resolve_relative(list_path, field[2], b, sizeof b);
        f1 = b;
    }
    if (format == BA_BOLD_HDF5 && n == 3) dataset = field[2];
    if (!f0 && !f1)
        return ba_fail(err, BA_ERR_FORMAT, "%s:%ld: no input file for story %s", list_path,
                       line_no, field[0]);
    ba_status rc = ba_bold_inputs_add(list, field[0], f0, f1, dataset, err);
    if (rc != BA_OK) ba_context(err, "%s:%ld", list_path, line_no);
    return rc;
}

ba_status ba_bold_inputs_read_list(ba_bold_inputs *list, ba_bold_format format,
                                   const char *list_path, ba_error *err)
{
    BA_CHECK(ba_require_regular(list_path, err)); /* a FIFO would block fopen */
    FILE *fp = fopen(list_path, "r");
    if (!fp) return ba_fail(err, BA_ERR_IO, "%s: cannot open the list file", list_path);
    char *line = NULL;
    size_t cap = 0;
    long line_no = 0;
    ba_status rc = BA_OK;
    size_t before = list->n;
    while (rc == BA_OK && getline(&line, &cap, fp) >= 0) {
        line_no++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *field[4], *save = NULL;
        int n = 0;
        for (char *tok = strtok_r(line, " \t\r\n", &save); tok; tok = strtok_r(NULL, " \t\r\n", &save))
            if (n < 4) field[n++] = tok;
            else n = 5;
        if (n == 0) continue;
        rc = add_list_line(list, format, list_path, line_no, field, n > 4 ? 4 : n, err);
    }
    if (rc == BA_OK && ferror(fp)) rc = ba_fail(err, BA_ERR_IO, "%s: read error", list_path);
    if (rc == BA_OK && list->n == before)
        rc = ba_fail(err, BA_ERR_FORMAT, "%s: lists no input", list_path);
    free(line);
    fclose(fp);
    return rc;
}

ba_status ba_bold_inputs_add_hdf5_file(ba_bold_inputs *list, const char *path, ba_error *err)
{
    ba_h5file f;
    BA_CHECK(ba_h5_open(&f, path, MPI_COMM_SELF, err));
    char **names = NULL;
    size_t n = 0, added = 0;
    ba_status rc = ba_h5_list_group(&f, "/", &names, &n, err);
    for (size_t k = 0; rc == BA_OK && k < n; k++) {
        char obj[BA_PATH_MAX];
        snprintf(obj, sizeof obj, "/%s", names[k]);
        int rank = 0;
        hsize_t dims[BA_H5_MAX_RANK];
        ba_error ignored;
        if (ba_h5_shape(&f, obj, 2, &rank, dims, &ignored) != BA_OK) continue;
        rc = ba_bold_inputs_add(list, names[k], path, NULL, obj, err);
        added++;
    }
    if (rc == BA_OK && added == 0)
        rc = ba_fail(err, BA_ERR_FORMAT, "%s: no 2-D dataset [n_tr, n_voxels] at the root", path);
    ba_h5_free_strings(names, n);
    ba_h5_abandon(&f);
    return rc;
}

/* ---- reading one input ---------------------------------------------------------- */

typedef struct {
    const ba_import_options *o;
    ba_brain_space space;   /* NIfTI (or HDF5 with a mask): from the mask;
                               GIfTI: vertex counts from the first input */
    long n_voxels;          /* -1 until the first input fixed it */
    char first_label[2 * BA_PATH_MAX + 300];
    double tr_s;            /* --tr, else the first header's TR; 0 until known */
    char tr_from[BA_PATH_MAX + 64]; /* where tr_s came from */
} import_state;

/* The trims of one story: its own if listed, else the global ones. */
static void trims_of(const ba_import_options *o, const char *story, long *start, long *end)
{
    *start = o->trim_start;
    *end = o->trim_end;
    if (!o->story_trims) return;
    for (size_t k = 0; k < o->story_trims->n; k++)
        if (strcmp(o->story_trims->items[k].story, story) == 0) {
            *start = o->story_trims->items[k].trim_start;
            *end = o->story_trims->items[k].trim_end;
        }
}

/* A header's TR (0 = the file states none) against --tr or the TR so far. */
static ba_status check_header_tr(import_state *s, const char *file, double header_tr,
                                 ba_error *err)
{
    if (!(header_tr > 0)) {
        if (s->tr_s > 0) return BA_OK;
        return ba_fail(err, BA_ERR_USAGE, "%s states no TR in its header (NIfTI pixdim[4] with "
                       "a time unit in xyzt_units, GIfTI TimeStep metadata): give --tr", file);
    }
    if (s->tr_s > 0) {
        if (fabs(header_tr - s->tr_s) <= 1e-4 * s->tr_s) return BA_OK;
        return ba_fail(err, BA_ERR_VALUE, "%s: its header states a TR of %g s, but %s is %g s",
                       file, header_tr, s->tr_from, s->tr_s);
    }
    s->tr_s = header_tr;
    snprintf(s->tr_from, sizeof s->tr_from, "the TR of %s", file);
    return BA_OK;
}

static ba_status read_gifti_input(import_state *s, const ba_bold_input *in, float **data,
                                  long *n_tr, long *n_vox, ba_error *err)
{
    float *hemi[2] = {NULL, NULL};
    long nt[2] = {0, 0}, nv[2] = {0, 0};
    ba_status rc = BA_OK;
    for (int h = 0; h < 2 && rc == BA_OK; h++)
        if (in->file[h]) {
            double tr_s = 0;
            rc = gifti_read(in->file[h], &hemi[h], &nt[h], &nv[h], &tr_s, err);
            if (rc == BA_OK) rc = check_header_tr(s, in->file[h], tr_s, err);
        }
    if (rc == BA_OK && in->file[0] && in->file[1] && nt[0] != nt[1])
        rc = ba_fail(err, BA_ERR_SHAPE, "story %s: the hemispheres disagree: %s has %ld TRs, "
                     "%s has %ld", in->story, in->file[0], nt[0], in->file[1], nt[1]);
    if (rc == BA_OK && s->space.kind == BA_SPACE_SURFACE)
        for (int h = 0; h < 2 && rc == BA_OK; h++)
            if (nv[h] != s->space.n_vertices[h])
                rc = ba_fail(err, BA_ERR_SHAPE, "story %s: %s has %ld %s vertices, but %s has %ld",
                             in->story, in->file[h] ? in->file[h] : "(no file)", nv[h],
                             h ? "rh" : "lh", s->first_label, s->space.n_vertices[h]);
    float *out = NULL;
    long T = in->file[0] ? nt[0] : nt[1], V = nv[0] + nv[1];
    if (rc == BA_OK) {
        out = ba_alloc_array(T, V, sizeof *out, "BOLD [TRs, vertices]", err);
        if (!out) rc = err->code;
    }
    for (long t = 0; rc == BA_OK && t < T; t++) {
        if (nv[0]) memcpy(out + t * V, hemi[0] + t * nv[0], (size_t)nv[0] * sizeof *out);
        if (nv[1]) memcpy(out + t * V + nv[0], hemi[1] + t * nv[1], (size_t)nv[1] * sizeof *out);
    }
    if (rc == BA_OK && s->space.kind != BA_SPACE_SURFACE) {
        s->space.kind = BA_SPACE_SURFACE;
        s->space.n_vertices[0] = nv[0];
        s->space.n_vertices[1] = nv[1];
        s->space.n_voxels = V;
    }
    free(hemi[0]);
    free(hemi[1]);
    if (rc != BA_OK) { free(out); return rc; }
    *data = out;
    *n_tr = T;
    *n_vox = V;
    return BA_OK;
}

static ba_status read_hdf5_input(const ba_bold_input *in, float **data, long *n_tr, long *n_vox,
                                 ba_error *err)
{
    ba_h5file f;
    BA_CHECK(ba_h5_open(&f, in->file[0], MPI_COMM_SELF, err));
    char obj[BA_PATH_MAX];
    if (in->dataset) snprintf(obj, sizeof obj, "%s%s", in->dataset[0] == '/' ? "" : "/", in->dataset);
    else if (ba_h5_exists(&f, "/data")) snprintf(obj, sizeof obj, "/data");
    else snprintf(obj, sizeof obj, "/%s", in->story);
    ba_status rc = BA_OK;
    int rank = 0;
    hsize_t dims[BA_H5_MAX_RANK];
    float *out = NULL;
    if (!ba_h5_exists(&f, obj))
        rc = in->dataset ? ba_fail(err, BA_ERR_FORMAT, "%s: no dataset %s (story %s)",
                                   in->file[0], obj, in->story)
                         : ba_fail(err, BA_ERR_FORMAT, "%s: no dataset /data or /%s for story %s",
                                   in->file[0], in->story, in->story);
    if (rc == BA_OK) rc = ba_h5_shape(&f, obj, 2, &rank, dims, err);
    if (rc == BA_OK) {
        /* dims come from the file: [2^31, 2^31] must not wrap to a tiny buffer. */
        char what[BA_PATH_MAX + 600];
        snprintf(what, sizeof what, "%s:%s [TRs, voxels]", in->file[0], obj);
        out = dims[0] > (hsize_t)BA_IMPORT_MAX_TRS || dims[1] > (hsize_t)BA_IMPORT_MAX_VOXELS
                  ? NULL : ba_alloc_array((long long)dims[0], (long long)dims[1], sizeof *out,
                                          what, err);
        if (!out && dims[0] > (hsize_t)BA_IMPORT_MAX_TRS)
            rc = ba_fail(err, BA_ERR_SHAPE, "%s: %llu TRs is implausible (at most %lld)", what,
                         (unsigned long long)dims[0], (long long)BA_IMPORT_MAX_TRS);
        else if (!out && dims[1] > (hsize_t)BA_IMPORT_MAX_VOXELS)
            rc = ba_fail(err, BA_ERR_SHAPE, "%s: %llu voxels is implausible (at most %lld)",
                         what, (unsigned long long)dims[1], (long long)BA_IMPORT_MAX_VOXELS);
        else if (!out) rc = err->code;
    }
    if (rc == BA_OK)
        rc = ba_h5_read_n(&f, obj, BA_H5_F32, 2, NULL, NULL, out,
                          (size_t)dims[0] * (size_t)dims[1], err);
    ba_h5_abandon(&f);
    if (rc != BA_OK) { free(out); return rc; }
    *data = out;
    *n_tr = (long)dims[0];
    *n_vox = (long)dims[1];
    return BA_OK;
}

static ba_status read_input(import_state *s, const ba_bold_input *in, float **data, long *n_tr,
                            long *n_vox, ba_error *err)
{
    switch (s->o->format) {
    case BA_BOLD_GIFTI:
        return read_gifti_input(s, in, data, n_tr, n_vox, err);
    case BA_BOLD_NIFTI: {
        double tr_s = 0;
        BA_CHECK(nifti_series_tr(in->file[0], &tr_s, err));
        BA_CHECK(check_header_tr(s, in->file[0], tr_s, err));
        BA_CHECK(ba_nifti_read_masked(in->file[0], &s->space, data, n_tr, err));
        *n_vox = s->space.n_voxels;
        return BA_OK;
    }
    case BA_BOLD_HDF5:
        BA_CHECK(check_header_tr(s, in->file[0], 0, err));
        return read_hdf5_input(in, data, n_tr, n_vox, err);
    }
    return ba_fail(err, BA_ERR_INTERNAL, "unknown BOLD format");
}

/* The file a column came from (GIfTI: its hemisphere's). */
static const char *file_of_voxel(const import_state *s, const ba_bold_input *in, long v)
{
    if (s->o->format == BA_BOLD_GIFTI) {
        if (v < s->space.n_vertices[0] && in->file[0]) return in->file[0];
        return in->file[1] ? in->file[1] : in->file[0];
    }
    return in->file[0];
}

static ba_status check_finite(const import_state *s, const ba_bold_input *in, const float *data,
                              long first_tr, long n_tr, long V, ba_error *err)
{
    for (long t = first_tr; t < first_tr + n_tr; t++)
        for (long v = 0; v < V; v++) {
            float x = data[t * V + v];
            if (isfinite(x)) continue;
            char where[128];
            ba_brain_space_describe(&s->space, v, where, sizeof where);
            return ba_fail(err, BA_ERR_VALUE, "%s: story %s: TR %ld, %s is %s", file_of_voxel(s, in, v),
                           in->story, t, where, isnan(x) ? "NaN" : "infinite");
        }
    return BA_OK;
}

static void describe_input(const ba_bold_input *in, char *buf, size_t size)
{
    if (in->file[0] && in->file[1]) snprintf(buf, size, "%s + %s", in->file[0], in->file[1]);
    else snprintf(buf, size, "%s", in->file[0] ? in->file[0] : in->file[1]);
}

/* ---- one story: read every subject, trim, check, average ------------------------- */

typedef struct {
    long n_tr;       /* after trimming */
    long trim_start, trim_end;
    int n_subjects;
    float *data;     /* [n_tr, n_voxels] */
    char *source;    /* the input files, one per line */
} story_result;

static ba_status append_source(story_result *r, const ba_bold_input *in, ba_error *err)
{
    char line[2 * BA_PATH_MAX + 8];
    describe_input(in, line, sizeof line);
    size_t old = r->source ? strlen(r->source) : 0;
    char *grown = realloc(r->source, old + strlen(line) + 2);
    if (!grown) return ba_fail(err, BA_ERR_NOMEM, "out of memory for provenance");
    snprintf(grown + old, strlen(line) + 2, "%s%s", old ? "\n" : "", line);
    r->source = grown;
    return BA_OK;
}

/* Checks one subject's matrix for a story against what came before it. */
static ba_status check_input_shape(import_state *s, const ba_bold_input *in, long n_tr,
                                   long n_vox, long first_n_tr, const char *first_file,
                                   ba_error *err)
{
    char label[2 * BA_PATH_MAX + 8];
    describe_input(in, label, sizeof label);
    const ba_import_options *o = s->o;
    if (s->n_voxels < 0) {
        if (n_vox < 1) return ba_fail(err, BA_ERR_SHAPE, "%s: story %s has no voxels", label, in->story);
        s->n_voxels = n_vox;
        snprintf(s->first_label, sizeof s->first_label, "%s (story %s)", label, in->story);
    } else if (n_vox != s->n_voxels) {
        return ba_fail(err, BA_ERR_SHAPE, "%s: story %s has %ld voxels, but %s has %ld", label,
                       in->story, n_vox, s->first_label, s->n_voxels);
    }
    if (o->format == BA_BOLD_HDF5 && s->space.kind == BA_SPACE_VOLUME && n_vox != s->space.n_voxels)
        return ba_fail(err, BA_ERR_SHAPE, "%s: story %s has %ld voxels, the mask %s has %ld",
                       label, in->story, n_vox, o->mask_path, s->space.n_voxels);
    if (first_file && n_tr != first_n_tr)
        return ba_fail(err, BA_ERR_SHAPE, "story %s: %s has %ld TRs, %s has %ld (--average needs "
                       "the same TRs for every subject of a story)", in->story, label, n_tr,
                       first_file, first_n_tr);
    long trim_start = 0, trim_end = 0;
    trims_of(o, in->story, &trim_start, &trim_end);
    if (n_tr <= trim_start + trim_end)
        return ba_fail(err, BA_ERR_SHAPE, "%s: story %s has %ld TRs; trimming %ld + %ld leaves "
                       "none", label, in->story, n_tr, trim_start, trim_end);
    return BA_OK;
}

static ba_status import_story(import_state *s, const char *story, story_result *r,
                              ba_error *err)
{
    const ba_import_options *o = s->o;
    const ba_bold_inputs *inputs = o->inputs;
    memset(r, 0, sizeof *r);
    double *sum = NULL;
    float *raw = NULL;
    long first_n_tr = 0, V = 0;
    char first_file[2 * BA_PATH_MAX + 8] = "";
    ba_status rc = BA_OK;
    long trim_start = 0, trim_end = 0;
    trims_of(o, story, &trim_start, &trim_end);
    for (size_t k = 0; k < inputs->n; k++) {
        const ba_bold_input *in = &inputs->items[k];
        if (strcmp(in->story, story) != 0) continue;
        long n_tr = 0;
        BA_TRY(read_input(s, in, &raw, &n_tr, &V, err), fail);
        BA_TRY(check_input_shape(s, in, n_tr, V, first_n_tr, first_file[0] ? first_file : NULL,
                                 err), fail);
        long T = n_tr - trim_start - trim_end;
        BA_TRY(check_finite(s, in, raw, trim_start, T, V, err), fail);
        BA_TRY(append_source(r, in, err), fail);
        if (r->n_subjects == 0) {
            first_n_tr = n_tr;
            describe_input(in, first_file, sizeof first_file);
            r->n_tr = T;
            BA_ALLOC(sum, (size_t)T * (size_t)V, "average over subjects", fail);
        }
        const float *kept = raw + trim_start * V;
        for (size_t e = 0; e < (size_t)T * (size_t)V; e++) sum[e] += kept[e];
        r->n_subjects++;
        free(raw);
        raw = NULL;
    }
    if (r->n_subjects == 0) {
        rc = ba_fail(err, BA_ERR_INTERNAL, "story %s has no input", story);
        goto fail;
    }
    r->trim_start = trim_start;
    r->trim_end = trim_end;
    BA_ALLOC(r->data, (size_t)r->n_tr * (size_t)V, "BOLD", fail);
    for (size_t e = 0; e < (size_t)r->n_tr * (size_t)V; e++)
        r->data[e] = (float)(sum[e] / r->n_subjects);
    free(sum);
    return BA_OK;
fail:
    free(raw);
    free(sum);
    free(r->data);
    free(r->source);
    memset(r, 0, sizeof *r);
    return rc;
}

/* ---- the whole import ------------------------------------------------------------- */

static ba_status check_options(const ba_import_options *o, ba_error *err)
{
    if (!o->out_path) return ba_fail(err, BA_ERR_USAGE, "no output file (--out)");
    if (!(o->tr_s >= 0) || !isfinite(o->tr_s))
        return ba_fail(err, BA_ERR_USAGE, "the TR (--tr, seconds) must be positive");
    if (o->trim_start < 0 || o->trim_end < 0)
        return ba_fail(err, BA_ERR_USAGE, "trimming must be >= 0 TRs");
    if (!o->inputs || o->inputs->n == 0) return ba_fail(err, BA_ERR_USAGE, "no input story");
    if (o->format == BA_BOLD_NIFTI && !o->mask_path)
        return ba_fail(err, BA_ERR_USAGE, "NIfTI volumes need a brain mask (--mask)");
    if (o->format == BA_BOLD_GIFTI && o->mask_path)
        return ba_fail(err, BA_ERR_USAGE, "--mask is for volumes, not GIfTI surfaces");
    for (size_t k = 0; k < o->inputs->n; k++) {
        const ba_bold_input *in = &o->inputs->items[k];
        if (!in->file[0] && (o->format != BA_BOLD_GIFTI || !in->file[1]))
            return ba_fail(err, BA_ERR_USAGE, "story %s has no input file", in->story);
        if (o->format != BA_BOLD_GIFTI && in->file[1])
            return ba_fail(err, BA_ERR_USAGE, "story %s: --lh/--rh are for GIfTI", in->story);
        for (size_t j = 0; j < k && !o->average; j++)
            if (strcmp(o->inputs->items[j].story, in->story) == 0)
                return ba_fail(err, BA_ERR_USAGE, "story %s is given twice (use --average to "
                               "average several subjects)", in->story);
        if (o->trims_table && o->story_trims) {
            bool listed = false;
            for (size_t j = 0; j < o->story_trims->n && !listed; j++)
                listed = strcmp(o->story_trims->items[j].story, in->story) == 0;
            if (!listed)
                return ba_fail(err, BA_ERR_USAGE, "story %s is not in the trims table %s",
                               in->story, o->trims_table);
        }
    }
    for (size_t j = 0; o->story_trims && j < o->story_trims->n; j++)
        if (o->story_trims->items[j].trim_start < 0 || o->story_trims->items[j].trim_end < 0)
            return ba_fail(err, BA_ERR_USAGE, "story %s: trimming must be >= 0 TRs",
                           o->story_trims->items[j].story);
    return BA_OK;
}

static ba_status write_story(ba_h5file *f, const char *story, const story_result *r, long V,
                             ba_error *err)
{
    char obj[BA_PATH_MAX + 16], group[BA_PATH_MAX];
    snprintf(group, sizeof group, "/stories/%s", story);
    snprintf(obj, sizeof obj, "%s/data", group);
    hsize_t dims[2] = {(hsize_t)r->n_tr, (hsize_t)V};
    BA_CHECK(ba_h5_write_all(f, obj, BA_H5_F32, 2, dims, r->data, err));
    long long n = r->n_subjects, trim[2] = {r->trim_start, r->trim_end};
    BA_CHECK(ba_h5_set_attr_i64(f, obj, "n_subjects", &n, 1, err));
    BA_CHECK(ba_h5_set_attr_i64(f, obj, "trim_start", &trim[0], 1, err));
    BA_CHECK(ba_h5_set_attr_i64(f, obj, "trim_end", &trim[1], 1, err));
    return ba_h5_set_attr_str(f, obj, "source", r->source ? r->source : "", err);
}

static ba_status write_space(ba_h5file *f, const ba_brain_space *s, ba_error *err)
{
    if (s->kind == BA_SPACE_VOLUME) {
        hsize_t mdims[3] = {(hsize_t)s->dims[0], (hsize_t)s->dims[1], (hsize_t)s->dims[2]};
        BA_CHECK(ba_h5_write_all(f, "/mask", BA_H5_I32, 3, mdims, s->mask, err));
        hsize_t adims[2] = {4, 4};
        BA_CHECK(ba_h5_write_all(f, "/affine", BA_H5_F64, 2, adims, s->affine, err));
        long long code = s->xform_code;
        return ba_h5_set_attr_i64(f, "/affine", "xform_code", &code, 1, err);
    }
    if (s->kind == BA_SPACE_SURFACE) {
        hsize_t one[1] = {1};
        long long lh = s->n_vertices[0], rh = s->n_vertices[1];
        BA_CHECK(ba_h5_write_all(f, "/surface/n_vertices_lh", BA_H5_I64, 1, one, &lh, err));
        return ba_h5_write_all(f, "/surface/n_vertices_rh", BA_H5_I64, 1, one, &rh, err);
    }
    return BA_OK;
}

static const char *space_name(ba_space_kind k)
{
    return k == BA_SPACE_VOLUME ? "volume" : k == BA_SPACE_SURFACE ? "surface" : "none";
}

static ba_status write_root_attributes(ba_h5file *f, const ba_import_options *o,
                                       ba_space_kind kind, double tr_s, ba_error *err)
{
    BA_CHECK(ba_h5_set_attr_f64(f, "/", "tr_s", &tr_s, 1, err));
    BA_CHECK(ba_h5_set_attr_str(f, "/", "format", ba_bold_format_name(o->format), err));
    BA_CHECK(ba_h5_set_attr_str(f, "/", "space", space_name(kind), err));
    long long trim[2] = {o->trim_start, o->trim_end};
    BA_CHECK(ba_h5_set_attr_i64(f, "/", "trim_start", &trim[0], 1, err));
    BA_CHECK(ba_h5_set_attr_i64(f, "/", "trim_end", &trim[1], 1, err));
    long long averaged = o->average;
    BA_CHECK(ba_h5_set_attr_i64(f, "/", "averaged", &averaged, 1, err));
    BA_CHECK(ba_h5_set_attr_str(f, "/", "version", BRAINALIGN_VERSION, err));
    return ba_h5_set_attr_str(f, "/", "command", o->command_line ? o->command_line : "", err);
}

/* Has story k appeared before position k? */
static bool seen_before(const ba_bold_inputs *inputs, size_t k)
{
    for (size_t j = 0; j < k; j++)
        if (strcmp(inputs->items[j].story, inputs->items[k].story) == 0) return true;
    return false;
}

static ba_status import_on_this_rank(const ba_import_options *o, ba_import_summary *summary,
                                     ba_error *err)
{
    BA_CHECK(check_options(o, err));
    import_state s;
    memset(&s, 0, sizeof s);
    s.o = o;
    s.n_voxels = -1;
    s.tr_s = o->tr_s;
    snprintf(s.tr_from, sizeof s.tr_from, "--tr");
    if (o->mask_path) BA_CHECK(ba_brain_space_from_mask(o->mask_path, &s.space, err));
    ba_h5file f;
    ba_status rc = ba_h5_create(&f, o->out_path, MPI_COMM_SELF, err);
    if (rc != BA_OK) { ba_brain_space_free(&s.space); return rc; }
    ba_progress progress;
    ba_progress_begin(&progress, MPI_COMM_SELF, o->quiet, "import");
    for (size_t k = 0; rc == BA_OK && k < o->inputs->n; k++) {
        if (seen_before(o->inputs, k)) continue;
        const char *story = o->inputs->items[k].story;
        story_result r;
        rc = import_story(&s, story, &r, err);
        if (rc == BA_OK) rc = ba_fault("import.story", err);
        if (rc == BA_OK) rc = write_story(&f, story, &r, s.n_voxels, err);
        if (rc == BA_OK) {
            summary->n_stories++;
            summary->n_tr_total += r.n_tr;
            if (r.n_subjects > summary->max_subjects) summary->max_subjects = r.n_subjects;
        }
        free(r.data);
        free(r.source);
        /* No "100% done" line before an error. */
        if (rc == BA_OK) ba_progress_update(&progress, (double)(k + 1), (double)o->inputs->n);
    }
    if (rc == BA_OK) rc = write_space(&f, &s.space, err);
    if (rc == BA_OK) rc = write_root_attributes(&f, o, s.space.kind, s.tr_s, err);
    if (rc == BA_OK) ba_progress_end(&progress);
    else if (progress.enabled && progress.tty) fputc('\n', progress.out);
    summary->n_voxels = s.n_voxels;
    summary->space = s.space.kind;
    ba_brain_space_free(&s.space);
    if (rc != BA_OK) { ba_h5_abandon(&f); return rc; }
    return ba_h5_close(&f, err);
}

ba_status ba_import_bold(const ba_import_options *o, MPI_Comm comm, ba_import_summary *summary,
                         ba_error *err)
{
    memset(summary, 0, sizeof *summary);
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    ba_status rc = BA_OK;
    if (rank == 0) {
        /* Before any work: the output writable and not another run's (outfile.h). */
        ba_output_lock lock = {0};
        rc = o->out_path ? ba_output_begin(o->out_path, false, &lock, err) : BA_OK;
        if (rc == BA_OK) rc = import_on_this_rank(o, summary, err);
        ba_output_end(&lock);
    } else {
        rc = ba_fault("import", err);
    }
    rc = ba_mpi_agree(comm, rc, err);
    MPI_Bcast(summary, (int)sizeof *summary, MPI_BYTE, 0, comm);
    return rc;
}
