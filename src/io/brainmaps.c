/* brainmaps.c — per-voxel scores -> NIfTI volumes / GIfTI surfaces (see
 * brainmaps.h). */
#include "brainalign/io/brainmaps.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gifti_io.h>
#include <nifti1_io.h>

#include "brainalign/core/alloc.h"
#include "brainalign/core/fs.h"
#include "brainalign/io/h5io.h"
#include "brainalign/parallel/parallel.h"

/* ---- temporary names ----------------------------------------------------- */

/* "<dir>/.<stem>.partial-<pid><ext>" next to `path`: the same directory
 * (so the rename is atomic) and the same extension (nifticlib picks the
 * format from it). */
static void temporary_name(const char *path, const char *ext, char *out, size_t size)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    int dir_len = slash ? (int)(slash - path + 1) : 0;
    int stem_len = (int)(strlen(base) - strlen(ext));
    snprintf(out, size, "%.*s.%.*s.partial-%ld%s", dir_len, path, stem_len, base,
             (long)getpid(), ext);
}

static ba_status commit_file(const char *temp, const char *final, ba_error *err)
{
    if (rename(temp, final) != 0) {
        unlink(temp);
        return ba_fail(err, BA_ERR_IO, "%s: cannot rename %s to it", final, temp);
    }
    return BA_OK;
}

/* ---- NIfTI ------------------------------------------------------------------ */

static void set_affine(nifti_image *nim, const ba_brain_space *space)
{
    mat44 m;
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) m.m[r][c] = (float)space->affine[4 * r + c];
    int code = space->xform_code > 0 ? space->xform_code : NIFTI_XFORM_ALIGNED_ANAT;
    nim->sform_code = code;
    nim->sto_xyz = m;
    nim->sto_ijk = nifti_mat44_inverse(m);
    /* The qform is the closest rigid-plus-scaling form; readers prefer the
     * sform, which is exact. */
    float qb, qc, qd, qx, qy, qz, dx, dy, dz, qfac;
    nifti_mat44_to_quatern(m, &qb, &qc, &qd, &qx, &qy, &qz, &dx, &dy, &dz, &qfac);
    nim->qform_code = code;
    nim->quatern_b = qb;
    nim->quatern_c = qc;
    nim->quatern_d = qd;
    nim->qoffset_x = qx;
    nim->qoffset_y = qy;
    nim->qoffset_z = qz;
    nim->qfac = qfac;
    nim->qto_xyz = nifti_quatern_to_mat44(qb, qc, qd, qx, qy, qz, dx, dy, dz, qfac);
    nim->qto_ijk = nifti_mat44_inverse(nim->qto_xyz);
    nim->dx = nim->pixdim[1] = dx;
    nim->dy = nim->pixdim[2] = dy;
    nim->dz = nim->pixdim[3] = dz;
    nim->xyz_units = NIFTI_UNITS_MM;
}

static ba_status write_volume_file(const char *temp, const char *final,
                                   const ba_brain_space *space, const float *values,
                                   long n_maps, ba_error *err)
{
    long nx = space->dims[0], ny = space->dims[1], nz = space->dims[2], V = space->n_voxels;
    int dims[8] = {n_maps > 1 ? 4 : 3, (int)nx, (int)ny, (int)nz, (int)n_maps, 1, 1, 1};
    nifti_image *nim = nifti_make_new_nim(dims, NIFTI_TYPE_FLOAT32, 1);
    if (!nim || !nim->data)
        return ba_fail(err, BA_ERR_NOMEM, "%s: cannot make a NIfTI image", final);
    float *out = nim->data;
    size_t grid = (size_t)(nx * ny * nz);
    long v = 0;
    for (long i = 0; i < nx; i++)
        for (long j = 0; j < ny; j++)
            for (long k = 0; k < nz; k++) {
                if (!space->mask[(i * ny + j) * nz + k]) continue;
                size_t off = (size_t)(i + nx * (j + ny * k));
                for (long m = 0; m < n_maps; m++) out[(size_t)m * grid + off] = values[m * V + v];
                v++;
            }
    set_affine(nim, space);
    ba_status rc = BA_OK;
    if (nifti_set_filenames(nim, temp, 0, 1) != 0) {
        rc = ba_fail(err, BA_ERR_IO, "%s: nifticlib does not accept the name", final);
    } else {
        nifti_image_write(nim);
        /* nifti_image_write reports nothing: read the file back to know. */
        nifti_image *check = nifti_image_read(temp, 1);
        if (!check || !check->data || check->nvox != nim->nvox)
            rc = ba_fail(err, BA_ERR_IO, "%s: writing the NIfTI file failed (disk full or "
                         "directory not writable?)", final);
        nifti_image_free(check);
    }
    nifti_image_free(nim);
    if (rc != BA_OK) unlink(temp);
    return rc;
}

static ba_status check_volume(const char *path, const ba_brain_space *space, ba_error *err)
{
    if (space->kind != BA_SPACE_VOLUME || !space->mask)
        return ba_fail(err, BA_ERR_USAGE, "%s: a NIfTI map needs a volume space (a mask)", path);
    if (!ba_has_suffix(path, ".nii", false) && !ba_has_suffix(path, ".nii.gz", false))
        return ba_fail(err, BA_ERR_USAGE, "%s: a NIfTI map's name must end in .nii or .nii.gz",
                       path);
    return BA_OK;
}

ba_status ba_map_write_volume(const char *path, const ba_brain_space *space,
                              const float *values, long n_maps, ba_error *err)
{
    BA_CHECK(check_volume(path, space, err));
    char temp[BA_PATH_MAX];
    temporary_name(path, ba_has_suffix(path, ".gz", false) ? ".nii.gz" : ".nii", temp, sizeof temp);
    BA_CHECK(write_volume_file(temp, path, space, values, n_maps, err));
    return commit_file(temp, path, err);
}

/* ---- GIfTI ------------------------------------------------------------------- */

static ba_status write_surface_file(const char *temp, const char *final, int hemi,
                                    const ba_brain_space *space, const float *values,
                                    long n_maps, const char *map_name, ba_error *err)
{
    long nv = space->n_vertices[hemi], offset = hemi ? space->n_vertices[0] : 0;
    long V = space->n_voxels;
    int dims[1] = {(int)nv};
    gifti_image *g = gifti_create_image((int)n_maps, NIFTI_INTENT_NONE, NIFTI_TYPE_FLOAT32, 1,
                                        dims, 1);
    if (!g) return ba_fail(err, BA_ERR_NOMEM, "%s: cannot make a GIfTI image", final);
    gifti_add_to_meta(&g->meta, "AnatomicalStructurePrimary", hemi ? "CortexRight" : "CortexLeft",
                      1);
    for (long m = 0; m < n_maps; m++) {
        giiDataArray *da = g->darray[m];
        da->encoding = GIFTI_ENCODING_B64GZ;
        da->endian = gifti_get_this_endian();
        da->ind_ord = GIFTI_IND_ORD_ROW_MAJOR;
        if (map_name) gifti_add_to_meta(&da->meta, "Name", map_name, 1);
        float *out = da->data;
        memcpy(out, values + m * V + offset, (size_t)nv * sizeof *out);
    }
    ba_status rc = BA_OK;
    if (gifti_write_image(g, temp, 1) != 0) {
        rc = ba_fail(err, BA_ERR_IO, "%s: writing the GIfTI file failed (directory not "
                     "writable?)", final);
    } else {
        gifti_image *check = gifti_read_image(temp, 1);
        if (!check || check->numDA != (int)n_maps || !gifti_image_has_data(check))
            rc = ba_fail(err, BA_ERR_IO, "%s: the GIfTI file written does not read back "
                         "(disk full?)", final);
        gifti_free_image(check);
    }
    gifti_free_image(g);
    if (rc != BA_OK) unlink(temp);
    return rc;
}

static ba_status check_surface(const ba_brain_space *space, ba_error *err)
{
    if (space->kind != BA_SPACE_SURFACE)
        return ba_fail(err, BA_ERR_USAGE, "a GIfTI map needs a surface space");
    return BA_OK;
}

ba_status ba_map_write_surface(const char *lh_path, const char *rh_path,
                               const ba_brain_space *space, const float *values,
                               long n_maps, ba_error *err)
{
    BA_CHECK(check_surface(space, err));
    const char *paths[2] = {lh_path, rh_path};
    char temp[2][BA_PATH_MAX] = {"", ""};
    ba_status rc = BA_OK;
    for (int h = 0; h < 2 && rc == BA_OK; h++) {
        if (!paths[h] || space->n_vertices[h] == 0) continue;
        temporary_name(paths[h], "", temp[h], sizeof temp[h]);
        rc = write_surface_file(temp[h], paths[h], h, space, values, n_maps, NULL, err);
        if (rc != BA_OK) temp[h][0] = '\0';
    }
    for (int h = 0; h < 2; h++) {
        if (!temp[h][0]) continue;
        if (rc == BA_OK) rc = commit_file(temp[h], paths[h], err);
        else unlink(temp[h]);
    }
    return rc;
}

/* ---- `brainalign maps` ------------------------------------------------------------ */

void ba_maps_written_free(ba_maps_written *w)
{
    for (size_t k = 0; k < w->n; k++) free(w->paths[k]);
    free(w->paths);
    memset(w, 0, sizeof *w);
}

typedef struct {
    char final[BA_PATH_MAX];
    char temp[BA_PATH_MAX];
} pending_file;

typedef struct {
    pending_file files[2 * BA_MAPS_MAX_DATASETS];
    int n;
} pending_files;

/* "/r_folds" -> "r_folds", "/volume/r" -> "volume_r". */
static void map_name(const char *dataset, char *out, size_t size)
{
    const char *src = dataset[0] == '/' ? dataset + 1 : dataset;
    size_t n = 0;
    for (; src[n] && n + 1 < size; n++) out[n] = src[n] == '/' ? '_' : src[n];
    out[n] = '\0';
}

static void output_path(const char *prefix, const char *name, const char *ext, char *out,
                        size_t size)
{
    bool directory = prefix[0] && prefix[strlen(prefix) - 1] == '/';
    snprintf(out, size, "%s%s%s%s", prefix, directory ? "" : "_", name, ext);
}

static ba_status read_scores(ba_h5file *f, const char *dset, const ba_brain_space *space,
                             const char *bold_path, float **values, long *n_maps, ba_error *err)
{
    *values = NULL;
    int rank = 0;
    hsize_t dims[BA_H5_MAX_RANK];
    BA_CHECK(ba_h5_shape(f, dset, 0, &rank, dims, err));
    if (rank != 1 && rank != 2)
        return ba_fail(err, BA_ERR_SHAPE, "%s:%s has %d dimensions; [n_voxels] or [k, n_voxels] "
                       "expected", f->path, dset, rank);
    long V = (long)dims[rank - 1], k = rank == 2 ? (long)dims[0] : 1;
    if (V != space->n_voxels)
        return ba_fail(err, BA_ERR_SHAPE, "%s:%s has %ld voxels, %s records %ld (%s)", f->path,
                       dset, V, bold_path, space->n_voxels,
                       space->kind == BA_SPACE_VOLUME ? "mask" : "surface");
    if (k < 1 || k > 100000)
        return ba_fail(err, BA_ERR_SHAPE, "%s:%s holds %ld maps", f->path, dset, k);
    float *v = ba_alloc_array(k, V, sizeof *v, "scores", err);
    if (!v) return err->code;
    ba_status rc = ba_h5_read_n(f, dset, BA_H5_F32, rank, NULL, NULL, v, (size_t)k * (size_t)V,
                                err);
    if (rc != BA_OK) { free(v); return rc; }
    *values = v;
    *n_maps = k;
    return BA_OK;
}

static ba_status write_dataset_maps(const ba_maps_options *o, ba_h5file *scores,
                                    const char *dset, const ba_brain_space *space,
                                    pending_files *pending, ba_error *err)
{
    float *values = NULL;
    long n_maps = 0;
    BA_CHECK(read_scores(scores, dset, space, o->bold_path, &values, &n_maps, err));
    char name[256];
    ba_status rc = BA_OK;
    if (strlen(dset) >= sizeof name || strlen(o->out_prefix) + strlen(dset) + 16 >= BA_PATH_MAX)
        rc = ba_fail(err, BA_ERR_USAGE, "%s: the dataset name or --out prefix is too long", dset);
    else
        map_name(dset, name, sizeof name);
    if (rc == BA_OK && space->kind == BA_SPACE_VOLUME) {
        pending_file *p = &pending->files[pending->n];
        char final[BA_PATH_MAX];
        output_path(o->out_prefix, name, ".nii.gz", final, sizeof final);
        memcpy(p->final, final, sizeof final);
        temporary_name(final, ".nii.gz", p->temp, sizeof p->temp);
        rc = write_volume_file(p->temp, p->final, space, values, n_maps, err);
        if (rc == BA_OK) pending->n++;
    } else if (rc == BA_OK) {
        static const char *const ext[2] = {".lh.func.gii", ".rh.func.gii"};
        for (int h = 0; h < 2 && rc == BA_OK; h++) {
            if (space->n_vertices[h] == 0) continue;
            pending_file *p = &pending->files[pending->n];
            char final[BA_PATH_MAX];
            output_path(o->out_prefix, name, ext[h], final, sizeof final);
            memcpy(p->final, final, sizeof final);
            temporary_name(final, ".func.gii", p->temp, sizeof p->temp);
            rc = write_surface_file(p->temp, p->final, h, space, values, n_maps, name, err);
            if (rc == BA_OK) pending->n++;
        }
    }
    free(values);
    return rc;
}

static ba_status record_written(ba_maps_written *w, const pending_files *pending, ba_error *err)
{
    w->paths = ba_calloc((size_t)pending->n + 1, sizeof *w->paths, "written paths", err);
    if (!w->paths) return BA_ERR_NOMEM;
    for (int k = 0; k < pending->n; k++) {
        w->paths[k] = strdup(pending->files[k].final);
        if (!w->paths[k]) return ba_fail(err, BA_ERR_NOMEM, "out of memory for paths");
        w->n++;
    }
    return BA_OK;
}

ba_status ba_out_prefix_prepare(const char *prefix, char *created, size_t size, ba_error *err)
{
    if (size) created[0] = '\0';
    const char *slash = strrchr(prefix, '/');
    if (!slash || slash == prefix) return BA_OK;
    char dir[BA_PATH_MAX];
    if ((size_t)(slash - prefix) >= sizeof dir)
        return ba_fail(err, BA_ERR_USAGE, "%s: the output prefix is too long", prefix);
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - prefix), prefix);
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return ba_fail(err, BA_ERR_IO, "%s: the output folder of --out %s is not a folder",
                           dir, prefix);
        return BA_OK;
    }
    ba_status rc = ba_make_dirs(dir, err);
    if (rc != BA_OK) return ba_context(err, "the output folder of --out %s", prefix);
    if (size) snprintf(created, size, "%s", dir);
    return BA_OK;
}

static ba_status maps_on_this_rank(const ba_maps_options *o, ba_maps_written *written,
                                   ba_error *err)
{
    if (!o->scores_path || !o->bold_path || !o->out_prefix || !o->out_prefix[0])
        return ba_fail(err, BA_ERR_USAGE, "maps needs --scores, --bold and --out");
    if (o->n_datasets < 0 || o->n_datasets > BA_MAPS_MAX_DATASETS)
        return ba_fail(err, BA_ERR_USAGE, "at most %d datasets", BA_MAPS_MAX_DATASETS);
    ba_brain_space space;
    BA_CHECK(ba_brain_space_read(o->bold_path, &space, err));
    if (space.kind == BA_SPACE_NONE) {
        ba_brain_space_free(&space);
        return ba_fail(err, BA_ERR_USAGE, "%s records no brain space (/mask or /surface): "
                       "import the BOLD from NIfTI with a mask, or from GIfTI", o->bold_path);
    }
    ba_h5file scores;
    ba_status rc = ba_h5_open(&scores, o->scores_path, MPI_COMM_SELF, err);
    if (rc != BA_OK) { ba_brain_space_free(&space); return rc; }
    char created[BA_PATH_MAX];
    rc = ba_out_prefix_prepare(o->out_prefix, created, sizeof created, err);
    if (rc != BA_OK) { ba_h5_abandon(&scores); ba_brain_space_free(&space); return rc; }
    pending_files pending;
    pending.n = 0;
    int n = o->n_datasets ? o->n_datasets : 1;
    for (int d = 0; d < n && rc == BA_OK; d++) {
        char dset[BA_PATH_MAX];
        const char *name = o->n_datasets ? o->datasets[d] : "/r";
        snprintf(dset, sizeof dset, "%s%s", name[0] == '/' ? "" : "/", name);
        rc = write_dataset_maps(o, &scores, dset, &space, &pending, err);
    }
    ba_h5_abandon(&scores);
    ba_brain_space_free(&space);
    /* All or nothing: rename only when every file was written. */
    for (int k = 0; k < pending.n; k++) {
        if (rc == BA_OK) rc = commit_file(pending.files[k].temp, pending.files[k].final, err);
        else unlink(pending.files[k].temp);
    }
    if (rc == BA_OK) rc = record_written(written, &pending, err);
    if (rc != BA_OK && created[0]) rmdir(created); /* only if left empty */
    return rc;
}

ba_status ba_maps_run(const ba_maps_options *o, MPI_Comm comm, ba_maps_written *written,
                      ba_error *err)
{
    memset(written, 0, sizeof *written);
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    ba_status rc = rank == 0 ? maps_on_this_rank(o, written, err) : BA_OK;
    rc = ba_mpi_agree(comm, rc, err);
    if (rc != BA_OK) ba_maps_written_free(written);
    return rc;
}
