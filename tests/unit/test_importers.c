/* test_importers.c — BOLD importers, atlas readers and brain maps on tiny
 * files written here: .annot bytes built by hand (old and new colour
 * tables), label tables, NIfTI volumes and GIfTI surfaces written with
 * nifticlib/gifticlib, whose expected contents follow from a formula (not
 * from our own readers). Bad input: every truncation of an .annot, NaN in a
 * float NIfTI (which nifticlib itself would silently zero), truncated
 * volumes, mismatched grids, and no output file after a failure. The
 * nibabel cross-checks are in tests/oracle/nibabel_importers.py. */
#define _GNU_SOURCE
#include "test_util.h"

#include <math.h>
#include <mpi.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gifti_io.h>
#include <nifti1_io.h>

#include "brainalign/io/atlas_readers.h"
#include "brainalign/io/brainmaps.h"
#include "brainalign/io/h5io.h"
#include "brainalign/io/importers.h"

/* ---- helpers -------------------------------------------------------------- */

static char *path_in(const char *dir, const char *name)
{
    char *p = NULL;
    assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
    return p;
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

static void expect_message(const ba_error *err, const char *part)
{
    if (!strstr(err->message, part))
        fail_msg("message \"%s\" lacks \"%s\"", err->message, part);
}

/* A growing big-endian byte buffer for hand-made .annot files. */
typedef struct {
    unsigned char *p;
    size_t n, cap;
} bytes;

static void put_byte(bytes *b, unsigned char c)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 256;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    b->p[b->n++] = c;
}

static void put_i32(bytes *b, int32_t v)
{
    uint32_t u = (uint32_t)v;
    for (int shift = 24; shift >= 0; shift -= 8) put_byte(b, (unsigned char)(u >> shift));
}

/* length (with the NUL), then the bytes and the NUL */
static void put_string(bytes *b, const char *s)
{
    size_t len = strlen(s) + 1;
    put_i32(b, (int32_t)len);
    for (size_t k = 0; k < len; k++) put_byte(b, (unsigned char)s[k]);
}

static int32_t colour_value(int r, int g, int bl) { return r + g * 256 + bl * 65536; }

/* ---- .annot ---------------------------------------------------------------- */

static const char *const NAMES[4] = {"Unknown", "G_front_sup", "S_central", "Medial_wall"};
static const int RGB[4][3] = {{0, 0, 0}, {20, 220, 160}, {221, 20, 10}, {50, 50, 50}};

/* 6 vertices listed in reverse order: labels 1 2 2 3 0 and one unknown colour. */
static void annot_vertices(bytes *b)
{
    const int slot[6] = {1, 2, 2, 3, 0, -1};
    put_i32(b, 6);
    for (int v = 5; v >= 0; v--) {
        put_i32(b, v);
        put_i32(b, slot[v] >= 0 ? colour_value(RGB[slot[v]][0], RGB[slot[v]][1], RGB[slot[v]][2])
                                : colour_value(1, 2, 3));
    }
    put_i32(b, 1); /* colour table follows */
}

static bytes old_annot(void)
{
    bytes b = {0};
    annot_vertices(&b);
    put_i32(&b, 4);
    put_string(&b, "/usr/local/freesurfer/FreeSurferColorLUT.txt");
    for (int e = 0; e < 4; e++) {
        put_string(&b, NAMES[e]);
        put_i32(&b, RGB[e][0]);
        put_i32(&b, RGB[e][1]);
        put_i32(&b, RGB[e][2]);
        put_i32(&b, 0);
    }
    return b;
}

/* New layout with 6 slots, of which 2 and 4 are empty; entries at 0, 1, 3, 5. */
static bytes new_annot(void)
{
    const int slot_of[4] = {0, 1, 3, 5};
    bytes b = {0};
    annot_vertices(&b);
    put_i32(&b, -2);
    put_i32(&b, 6);
    put_string(&b, "NOFILE");
    put_i32(&b, 4);
    for (int e = 3; e >= 0; e--) { /* entries need not come in order */
        put_i32(&b, slot_of[e]);
        put_string(&b, NAMES[e]);
        put_i32(&b, RGB[e][0]);
        put_i32(&b, RGB[e][1]);
        put_i32(&b, RGB[e][2]);
        put_i32(&b, 0);
    }
    return b;
}

static void test_annot_old_layout(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char *path = path_in(dir, "lh.old.annot");
    bytes b = old_annot();
    ba_test_write_file(path, b.p, b.n);
    ba_annot a;
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(ba_annot_read(path, &a, &err), BA_OK);
    assert_int_equal(a.ctab_version, 1);
    assert_int_equal(a.n_vertices, 6);
    assert_int_equal(a.n_entries, 4);
    assert_string_equal(a.names[2], "S_central");
    assert_int_equal(a.rgbt[4 * 1 + 1], 220);
    /* colour 0 (Unknown) reads as no label, as FreeSurfer and nibabel do */
    const int expect[6] = {1, 2, 2, 3, -1, -1};
    for (int v = 0; v < 6; v++) assert_int_equal(a.labels[v], expect[v]);
    ba_annot_free(&a);
    free(b.p);
    free(path);
}

static void test_annot_new_layout_sparse_slots(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char *path = path_in(dir, "lh.new.annot");
    bytes b = new_annot();
    ba_test_write_file(path, b.p, b.n);
    ba_annot a;
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(ba_annot_read(path, &a, &err), BA_OK);
    assert_int_equal(a.ctab_version, 2);
    assert_int_equal(a.n_entries, 6);
    assert_null(a.names[2]);
    assert_null(a.names[4]);
    assert_string_equal(a.names[3], "S_central");
    const int expect[6] = {1, 3, 3, 5, -1, -1};
    for (int v = 0; v < 6; v++) assert_int_equal(a.labels[v], expect[v]);
    ba_annot_free(&a);
    free(b.p);
    free(path);
}

static void test_atlas_from_two_annots(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char *lh = path_in(dir, "lh.annot"), *rh = path_in(dir, "rh.annot");
    bytes b1 = old_annot(), b2 = new_annot();
    ba_test_write_file(lh, b1.p, b1.n);
    ba_test_write_file(rh, b2.p, b2.n);
    ba_atlas atlas;
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(ba_atlas_from_annot(lh, rh, NULL, &atlas, &err), BA_OK);
    assert_int_equal(atlas.n_voxels, 12);
    /* Unknown and Medial_wall are not regions */
    assert_int_equal(atlas.n_regions, 4);
    const char *names[4] = {"lh.G_front_sup", "lh.S_central", "rh.G_front_sup", "rh.S_central"};
    for (int g = 0; g < 4; g++) assert_string_equal(atlas.names[g], names[g]);
    const int expect[12] = {0, 1, 1, -1, -1, -1, 2, 3, 3, -1, -1, -1};
    for (int v = 0; v < 12; v++) assert_int_equal(atlas.labels[v], expect[v]);
    ba_atlas_free(&atlas);

    ba_brain_space space = {.kind = BA_SPACE_SURFACE, .n_vertices = {6, 7}, .n_voxels = 13};
    assert_int_equal(ba_atlas_from_annot(lh, rh, &space, &atlas, &err), BA_ERR_SHAPE);
    expect_message(&err, "rh.annot");
    expect_message(&err, "6 rh vertices, the BOLD has 7");
    space.n_vertices[1] = 6;
    assert_int_equal(ba_atlas_from_annot(lh, NULL, &space, &atlas, &err), BA_ERR_USAGE);
    expect_message(&err, "rh .annot");
    ba_brain_space vol = {.kind = BA_SPACE_VOLUME};
    assert_int_equal(ba_atlas_from_annot(lh, rh, &vol, &atlas, &err), BA_ERR_SHAPE);
    free(b1.p);
    free(b2.p);
    free(lh);
    free(rh);
}

static void test_annot_every_truncation_fails_cleanly(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char *path = path_in(dir, "cut.annot");
    for (int layout = 0; layout < 2; layout++) {
        bytes b = layout ? new_annot() : old_annot();
        for (size_t cut = 0; cut < b.n; cut++) {
            ba_test_write_file(path, b.p, cut);
            ba_annot a;
            ba_error err;
            ba_error_clear(&err);
            ba_status rc = ba_annot_read(path, &a, &err);
            if (rc != BA_ERR_FORMAT)
                fail_msg("layout %d cut at %zu of %zu: status %d (%s)", layout, cut, b.n, rc,
                         err.message);
            expect_message(&err, "cut.annot");
        }
        free(b.p);
    }
    free(path);
}

static void test_annot_bad_values(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char *path = path_in(dir, "bad.annot");
    ba_annot a;
    ba_error err;
    ba_error_clear(&err);
    /* vertex number out of range */
    bytes b = old_annot();
    b.p[4 + 3] = 9; /* first pair's vertex number (5 -> 9) */
    ba_test_write_file(path, b.p, b.n);
    assert_int_equal(ba_annot_read(path, &a, &err), BA_ERR_FORMAT);
    expect_message(&err, "vertex number 9 outside 0..5");
    free(b.p);
    /* unknown colour-table version */
    b = new_annot();
    size_t version_at = 4 + 6 * 8 + 4;
    b.p[version_at + 3] = 0xfd; /* -2 -> -3 */
    ba_test_write_file(path, b.p, b.n);
    assert_int_equal(ba_annot_read(path, &a, &err), BA_ERR_FORMAT);
    expect_message(&err, "version 3");
    free(b.p);
    /* absurd vertex count */
    b = (bytes){0};
    put_i32(&b, 1 << 30);
    ba_test_write_file(path, b.p, b.n);
    assert_int_equal(ba_annot_read(path, &a, &err), BA_ERR_FORMAT);
    free(b.p);
    assert_int_equal(ba_annot_read("/nonexistent/x.annot", &a, &err), BA_ERR_IO);
    free(path);
}

/* ---- label tables ------------------------------------------------------------ */

static void test_label_tables(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char *lut = path_in(dir, "LUT.txt"), *tsv = path_in(dir, "labels.tsv");
    const char *lut_text = "#$Id: FreeSurferColorLUT.txt\n"
                           "#No. Label Name:                R   G   B   A\n\n"
                           "0   Unknown                     0   0   0   0\n"
                           "17  Left-Hippocampus            220 216 20  0\n"
                           "11101  ctx_lh_G_and_S_frontomargin  23 220 60 0   # comment\n";
    ba_test_write_file(lut, lut_text, strlen(lut_text));
    const char *tsv_text = "index\tname\n1\tSuperior frontal gyrus\n2\tPrecentral\n";
    ba_test_write_file(tsv, tsv_text, strlen(tsv_text));
    ba_label_table t;
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(ba_label_table_read(lut, &t, &err), BA_OK);
    assert_int_equal(t.n, 3);
    assert_int_equal(t.index[2], 11101);
    assert_string_equal(t.names[2], "ctx_lh_G_and_S_frontomargin");
    ba_label_table_free(&t);
    assert_int_equal(ba_label_table_read(tsv, &t, &err), BA_OK);
    assert_int_equal(t.n, 2);
    assert_string_equal(t.names[0], "Superior frontal gyrus"); /* tabs keep spaces in names */
    ba_label_table_free(&t);

    const char *dup = "1 a\n2 b\n1 c\n";
    ba_test_write_file(lut, dup, strlen(dup));
    assert_int_equal(ba_label_table_read(lut, &t, &err), BA_ERR_FORMAT);
    expect_message(&err, "LUT.txt:3: label 1 is listed twice");
    const char *junk = "1 a\nx y\n";
    ba_test_write_file(lut, junk, strlen(junk));
    assert_int_equal(ba_label_table_read(lut, &t, &err), BA_ERR_FORMAT);
    expect_message(&err, "LUT.txt:2");
    ba_test_write_file(lut, "# nothing\n", 10);
    assert_int_equal(ba_label_table_read(lut, &t, &err), BA_ERR_FORMAT);
    free(lut);
    free(tsv);
}

/* ---- NIfTI ------------------------------------------------------------------- */

enum { NX = 5, NY = 4, NZ = 3, NT = 6 };

static bool in_mask(int i, int j, int k) { return (i + 2 * j + k) % 3 != 0; }
static float bold_value(int i, int j, int k, int t) { return 1000.0f * t + 100 * i + 10 * j + k; }

static void set_test_affine(nifti_image *nim)
{
    mat44 m = {{{-2, 0, 0, 10}, {0, 2, 0.5f, -20}, {0, 0, 3, 7}, {0, 0, 0, 1}}};
    nim->sform_code = NIFTI_XFORM_MNI_152;
    nim->sto_xyz = m;
    nim->sto_ijk = nifti_mat44_inverse(m);
}

/* Writes a NIfTI with nifticlib; value(i, j, k, t) fills it. */
static void write_nifti(const char *path, int datatype, int nt, float (*value)(int, int, int, int))
{
    int dims[8] = {nt > 1 ? 4 : 3, NX, NY, NZ, nt, 1, 1, 1};
    nifti_image *nim = nifti_make_new_nim(dims, datatype, 1);
    assert_non_null(nim);
    set_test_affine(nim);
    for (int t = 0; t < nt; t++)
        for (int k = 0; k < NZ; k++)
            for (int j = 0; j < NY; j++)
                for (int i = 0; i < NX; i++) {
                    size_t at = (size_t)i + NX * ((size_t)j + NY * ((size_t)k + NZ * (size_t)t));
                    float v = value(i, j, k, t);
                    if (datatype == NIFTI_TYPE_FLOAT32) ((float *)nim->data)[at] = v;
                    else ((int16_t *)nim->data)[at] = (int16_t)v;
                }
    assert_int_equal(nifti_set_filenames(nim, path, 0, 1), 0);
    nifti_image_write(nim);
    nifti_image_free(nim);
    assert_true(exists(path));
}

static float mask_value(int i, int j, int k, int t) { (void)t; return in_mask(i, j, k) ? 3 : 0; }
static float nan_value(int i, int j, int k, int t)
{
    return i == 1 && j == 2 && k == 2 && t == 4 ? NAN : bold_value(i, j, k, t);
}

static void test_nifti_masked_read(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char *mask = path_in(dir, "mask.nii.gz"), *bold = path_in(dir, "bold.nii");
    write_nifti(mask, NIFTI_TYPE_INT16, 1, mask_value);
    write_nifti(bold, NIFTI_TYPE_FLOAT32, NT, bold_value);
    ba_brain_space space;
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(ba_brain_space_from_mask(mask, &space, &err), BA_OK);
    assert_int_equal(space.kind, BA_SPACE_VOLUME);
    assert_int_equal(space.xform_code, NIFTI_XFORM_MNI_152);
    assert_true(fabs(space.affine[4 * 1 + 2] - 0.5) < 1e-7 && space.affine[0] == -2);
    float *data = NULL;
    long n_tr = 0;
    assert_int_equal(ba_nifti_read_masked(bold, &space, &data, &n_tr, &err), BA_OK);
    assert_int_equal(n_tr, NT);
    /* the voxel order: i slowest, k fastest, over the mask */
    long v = 0;
    for (int i = 0; i < NX; i++)
        for (int j = 0; j < NY; j++)
            for (int k = 0; k < NZ; k++) {
                if (!in_mask(i, j, k)) continue;
                for (int t = 0; t < NT; t++)
                    assert_true(data[t * space.n_voxels + v] == bold_value(i, j, k, t));
                v++;
            }
    assert_int_equal(v, space.n_voxels);
    free(data);
    char where[64];
    ba_brain_space_describe(&space, 0, where, sizeof where);
    assert_string_equal(where, "voxel (0, 0, 1)");

    /* NaN survives reading (nifticlib's own reader would make it 0) */
    char *nanfile = path_in(dir, "nan.nii.gz");
    write_nifti(nanfile, NIFTI_TYPE_FLOAT32, NT, nan_value);
    assert_int_equal(ba_nifti_read_masked(nanfile, &space, &data, &n_tr, &err), BA_OK);
    long nan_count = 0;
    for (long e = 0; e < n_tr * space.n_voxels; e++) nan_count += isnan(data[e]);
    assert_int_equal(nan_count, 1);
    free(data);

    /* truncated: every cut inside the data is an error, never a crash */
    size_t len = 0;
    char *whole = ba_test_read_file(bold, &len);
    char *cut = path_in(dir, "cut.nii");
    for (size_t keep = 0; keep < len; keep += 97) {
        ba_test_write_file(cut, whole, keep);
        ba_status rc = ba_nifti_read_masked(cut, &space, &data, &n_tr, &err);
        if (rc != BA_ERR_FORMAT) fail_msg("cut at %zu: status %d (%s)", keep, rc, err.message);
        expect_message(&err, "cut.nii");
        assert_null(data);
    }
    free(whole);

    /* another grid */
    ba_brain_space other = space;
    other.dims[2] = NZ + 1;
    assert_int_equal(ba_nifti_read_masked(bold, &other, &data, &n_tr, &err), BA_ERR_SHAPE);
    expect_message(&err, "grid 5x4x3 differs from the mask's 5x4x4");
    ba_brain_space_free(&space);
    free(cut);
    free(nanfile);
    free(mask);
    free(bold);
}

static ba_import_options nifti_options(const ba_bold_inputs *in, const char *mask, const char *out)
{
    return (ba_import_options){.format = BA_BOLD_NIFTI, .inputs = in, .mask_path = mask,
                               .tr_s = 1.5, .trim_start = 1, .trim_end = 2, .quiet = true,
                               .out_path = out};
}

static void test_import_nifti_and_map_back(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char *mask = path_in(dir, "mask.nii.gz"), *bold = path_in(dir, "bold.nii.gz");
    char *out = path_in(dir, "bold.h5"), *map = path_in(dir, "r.nii");
    write_nifti(mask, NIFTI_TYPE_INT16, 1, mask_value);
    write_nifti(bold, NIFTI_TYPE_FLOAT32, NT, bold_value);
    ba_bold_inputs in = {0};
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(ba_bold_inputs_add(&in, "story", bold, NULL, NULL, &err), BA_OK);
    ba_import_options o = nifti_options(&in, mask, out);
    ba_import_summary sum;
    assert_int_equal(ba_import_bold(&o, MPI_COMM_WORLD, &sum, &err), BA_OK);
    assert_int_equal(sum.n_tr_total, NT - 3);

    ba_brain_space space;
    assert_int_equal(ba_brain_space_read(out, &space, &err), BA_OK);
    assert_int_equal(space.kind, BA_SPACE_VOLUME);
    assert_int_equal(space.dims[0], NX);
    assert_int_equal(space.xform_code, NIFTI_XFORM_MNI_152);
    ba_h5file f;
    assert_int_equal(ba_h5_open(&f, out, MPI_COMM_SELF, &err), BA_OK);
    float *data = calloc((size_t)(NT - 3) * (size_t)space.n_voxels, sizeof *data);
    assert_int_equal(ba_h5_read(&f, "/stories/story/data", BA_H5_F32, NULL, NULL, data, &err), BA_OK);
    double tr = 0;
    assert_int_equal(ba_h5_get_attr_f64(&f, "/", "tr_s", &tr, 1, &err), BA_OK);
    assert_true(tr == 1.5);
    ba_h5_abandon(&f);

    /* map TR 0 of the import back to the grid: each voxel must hold its own value */
    assert_int_equal(ba_map_write_volume(map, &space, data, 1, &err), BA_OK);
    nifti_image *back = nifti_image_read(map, 1);
    assert_non_null(back);
    assert_int_equal(back->nx, NX);
    assert_int_equal(back->datatype, NIFTI_TYPE_FLOAT32);
    assert_int_equal(back->sform_code, NIFTI_XFORM_MNI_152);
    assert_true(fabsf(back->sto_xyz.m[1][2] - 0.5f) < 1e-6f);
    const float *vals = back->data;
    for (int k = 0; k < NZ; k++)
        for (int j = 0; j < NY; j++)
            for (int i = 0; i < NX; i++) {
                float expect = in_mask(i, j, k) ? bold_value(i, j, k, 1) : 0.0f;
                assert_true(vals[i + NX * (j + NY * k)] == expect);
            }
    nifti_image_free(back);
    assert_int_equal(ba_map_write_volume(map, &space, data, 1, &err), BA_OK); /* replaces */
    char *bad = path_in(dir, "r.img");
    assert_int_equal(ba_map_write_volume(bad, &space, data, 1, &err), BA_ERR_USAGE);
    free(bad);
    free(data);
    ba_brain_space_free(&space);
    ba_bold_inputs_free(&in);
    free(mask);
    free(bold);
    free(out);
    free(map);
}

static void test_import_failures_leave_no_file(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char *mask = path_in(dir, "mask.nii"), *good = path_in(dir, "good.nii");
    char *nanfile = path_in(dir, "nan.nii"), *out = path_in(dir, "bold.h5");
    write_nifti(mask, NIFTI_TYPE_INT16, 1, mask_value);
    write_nifti(good, NIFTI_TYPE_FLOAT32, NT, bold_value);
    write_nifti(nanfile, NIFTI_TYPE_FLOAT32, NT, nan_value);
    ba_error err;
    ba_error_clear(&err);
    ba_import_summary sum;

    ba_bold_inputs in = {0};
    assert_int_equal(ba_bold_inputs_add(&in, "good", good, NULL, NULL, &err), BA_OK);
    assert_int_equal(ba_bold_inputs_add(&in, "bad", nanfile, NULL, NULL, &err), BA_OK);
    ba_import_options o = nifti_options(&in, mask, out);
    o.trim_end = 0;
    assert_int_equal(ba_import_bold(&o, MPI_COMM_WORLD, &sum, &err), BA_ERR_VALUE);
    expect_message(&err, "nan.nii: story bad: TR 4, voxel (1, 2, 2) is NaN");
    assert_false(exists(out));
    /* the NaN is in a trimmed TR (4 of 0..5, the last 2 dropped): fine */
    o.trim_start = 0;
    o.trim_end = 2;
    assert_int_equal(ba_import_bold(&o, MPI_COMM_WORLD, &sum, &err), BA_OK);
    assert_true(exists(out));
    unlink(out);
    ba_bold_inputs_free(&in);

    /* the same story twice without averaging */
    assert_int_equal(ba_bold_inputs_add(&in, "s", good, NULL, NULL, &err), BA_OK);
    assert_int_equal(ba_bold_inputs_add(&in, "s", good, NULL, NULL, &err), BA_OK);
    o = nifti_options(&in, mask, out);
    assert_int_equal(ba_import_bold(&o, MPI_COMM_WORLD, &sum, &err), BA_ERR_USAGE);
    expect_message(&err, "story s is given twice");
    o.average = true;
    assert_int_equal(ba_import_bold(&o, MPI_COMM_WORLD, &sum, &err), BA_OK);
    assert_int_equal(sum.max_subjects, 2);
    unlink(out);
    o.mask_path = NULL;
    assert_int_equal(ba_import_bold(&o, MPI_COMM_WORLD, &sum, &err), BA_ERR_USAGE);
    o.mask_path = mask;
    o.tr_s = 0;
    assert_int_equal(ba_import_bold(&o, MPI_COMM_WORLD, &sum, &err), BA_ERR_USAGE);
    assert_false(exists(out));
    ba_bold_inputs_free(&in);

    /* bad story names */
    assert_int_equal(ba_bold_inputs_add(&in, "a/b", good, NULL, NULL, &err), BA_ERR_USAGE);
    assert_int_equal(ba_bold_inputs_add(&in, "", good, NULL, NULL, &err), BA_ERR_USAGE);
    free(mask);
    free(good);
    free(nanfile);
    free(out);
}

/* ---- GIfTI ------------------------------------------------------------------- */

static float surf_value(int v, int t) { return 10.0f * t + 0.5f * v; }

/* one DataArray per TR, or one 2-D [n_vertices, n_tr] array in either order */
static void write_gifti(const char *path, int nv, int nt, int layout)
{
    gifti_image *g;
    if (layout == 0) {
        int dims[1] = {nv};
        g = gifti_create_image(nt, NIFTI_INTENT_NONE, NIFTI_TYPE_FLOAT32, 1, dims, 1);
        assert_non_null(g);
        for (int t = 0; t < nt; t++)
            for (int v = 0; v < nv; v++) ((float *)g->darray[t]->data)[v] = surf_value(v, t);
    } else {
        int dims[2] = {nv, nt};
        g = gifti_create_image(1, NIFTI_INTENT_TIME_SERIES, NIFTI_TYPE_FLOAT32, 2, dims, 1);
        assert_non_null(g);
        giiDataArray *da = g->darray[0];
        da->ind_ord = layout == 1 ? GIFTI_IND_ORD_ROW_MAJOR : GIFTI_IND_ORD_COL_MAJOR;
        for (int v = 0; v < nv; v++)
            for (int t = 0; t < nt; t++)
                ((float *)da->data)[layout == 1 ? v * nt + t : v + t * nv] = surf_value(v, t);
    }
    for (int k = 0; k < g->numDA; k++) g->darray[k]->encoding = GIFTI_ENCODING_B64GZ;
    assert_int_equal(gifti_write_image(g, path, 1), 0);
    gifti_free_image(g);
}

static void test_gifti_layouts(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char *path = path_in(dir, "x.func.gii");
    for (int layout = 0; layout < 3; layout++) {
        write_gifti(path, 7, 5, layout);
        float *data = NULL;
        long nt = 0, nv = 0;
        ba_error err;
        ba_error_clear(&err);
        assert_int_equal(ba_gifti_read_series(path, &data, &nt, &nv, &err), BA_OK);
        assert_int_equal(nt, 5);
        assert_int_equal(nv, 7);
        for (int t = 0; t < 5; t++)
            for (int v = 0; v < 7; v++) assert_true(data[t * 7 + v] == surf_value(v, t));
        free(data);
    }
    free(path);
}

static void test_import_gifti_and_map_back(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char *lh = path_in(dir, "L.func.gii"), *rh = path_in(dir, "R.func.gii");
    char *rh_short = path_in(dir, "Rshort.func.gii"), *out = path_in(dir, "bold.h5");
    char *map_lh = path_in(dir, "r.lh.func.gii"), *map_rh = path_in(dir, "r.rh.func.gii");
    write_gifti(lh, 6, 8, 0);
    write_gifti(rh, 4, 8, 2);
    write_gifti(rh_short, 4, 7, 0);
    ba_bold_inputs in = {0};
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(ba_bold_inputs_add(&in, "s", lh, rh, NULL, &err), BA_OK);
    ba_import_options o = {.format = BA_BOLD_GIFTI, .inputs = &in, .tr_s = 1.5, .quiet = true,
                           .out_path = out};
    ba_import_summary sum;
    assert_int_equal(ba_import_bold(&o, MPI_COMM_WORLD, &sum, &err), BA_OK);
    ba_brain_space space;
    assert_int_equal(ba_brain_space_read(out, &space, &err), BA_OK);
    assert_int_equal(space.kind, BA_SPACE_SURFACE);
    assert_int_equal(space.n_vertices[0], 6);
    assert_int_equal(space.n_vertices[1], 4);
    char where[64];
    ba_brain_space_describe(&space, 7, where, sizeof where);
    assert_string_equal(where, "rh vertex 1");

    float r[10];
    for (int v = 0; v < 10; v++) r[v] = 0.01f * v;
    assert_int_equal(ba_map_write_surface(map_lh, map_rh, &space, r, 1, &err), BA_OK);
    gifti_image *g = gifti_read_image(map_rh, 1);
    assert_non_null(g);
    assert_int_equal(g->numDA, 1);
    assert_int_equal(g->darray[0]->dims[0], 4);
    for (int v = 0; v < 4; v++) assert_true(((float *)g->darray[0]->data)[v] == r[6 + v]);
    gifti_free_image(g);
    ba_brain_space_free(&space);
    unlink(out);

    /* hemispheres with different TR counts */
    ba_bold_inputs_free(&in);
    assert_int_equal(ba_bold_inputs_add(&in, "s", lh, rh_short, NULL, &err), BA_OK);
    assert_int_equal(ba_import_bold(&o, MPI_COMM_WORLD, &sum, &err), BA_ERR_SHAPE);
    expect_message(&err, "story s: the hemispheres disagree");
    expect_message(&err, "Rshort.func.gii has 7");
    assert_false(exists(out));
    ba_bold_inputs_free(&in);
    free(lh);
    free(rh);
    free(rh_short);
    free(out);
    free(map_lh);
    free(map_rh);
}

static void test_list_file(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char *list = path_in(dir, "inputs.txt");
    const char *text = "# story lh rh\npieman  sub-01_L.func.gii\t/abs/R.func.gii\n\n"
                       "tunnel - tun_R.func.gii  # only rh\n";
    ba_test_write_file(list, text, strlen(text));
    ba_bold_inputs in = {0};
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(ba_bold_inputs_read_list(&in, BA_BOLD_GIFTI, list, &err), BA_OK);
    assert_int_equal(in.n, 2);
    char *expect = path_in(dir, "sub-01_L.func.gii");
    assert_string_equal(in.items[0].file[0], expect);
    assert_string_equal(in.items[0].file[1], "/abs/R.func.gii");
    assert_null(in.items[1].file[0]);
    free(expect);
    ba_bold_inputs_free(&in);
    const char *bad = "pieman only_one_file\n";
    ba_test_write_file(list, bad, strlen(bad));
    assert_int_equal(ba_bold_inputs_read_list(&in, BA_BOLD_GIFTI, list, &err), BA_ERR_FORMAT);
    expect_message(&err, "inputs.txt:1");
    ba_bold_inputs_free(&in);
    free(list);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_annot_old_layout),
        cmocka_unit_test(test_annot_new_layout_sparse_slots),
        cmocka_unit_test(test_atlas_from_two_annots),
        cmocka_unit_test(test_annot_every_truncation_fails_cleanly),
        cmocka_unit_test(test_annot_bad_values),
        cmocka_unit_test(test_label_tables),
        cmocka_unit_test(test_nifti_masked_read),
        cmocka_unit_test(test_import_nifti_and_map_back),
        cmocka_unit_test(test_import_failures_leave_no_file),
        cmocka_unit_test(test_gifti_layouts),
        cmocka_unit_test(test_import_gifti_and_map_back),
        cmocka_unit_test(test_list_file),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    MPI_Finalize();
    return failed;
}
