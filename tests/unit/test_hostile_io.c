/* test_hostile_io.c — sizes and shapes from hostile files (issue 16):
 *   - ba_size_product / ba_alloc_array refuse wrapping and implausible
 *     products, naming the dimension, and agree with exact 128-bit
 *     arithmetic where they accept;
 *   - ba_h5_read_n refuses a dataset of another rank than the caller's
 *     start/count arrays (a rank-3 dataset read with 2-element arrays read
 *     start[2]/count[2] past them) and a selection larger than the
 *     caller's buffer, and reads exactly what fits;
 *   - ba_features_open refuses onset/offset/surprisal/word longer than or
 *     of another rank than hidden's word axis, and bad `layers` attributes;
 *   - a file written to a full disk (a 64 KiB tmpfs, where one can be
 *     mounted) fails with a message and leaves the process able to exit:
 *     HDF5 used to keep the freed file registered and crash in its close
 *     callback at MPI_Finalize. */
#define _GNU_SOURCE
#include "test_util.h"

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "brainalign/core/alloc.h"
#include "brainalign/io/features_io.h"
#include "brainalign/io/h5io.h"

static void expect_message(const ba_error *err, const char *part)
{
    if (!strstr(err->message, part))
        fail_msg("expected a message with '%s', got: %s", part, err->message);
}

/* ---- checked sizes ---------------------------------------------------------- */

static void test_size_product(void **state)
{
    (void)state;
    ba_error err;
    size_t bytes = 0;
    /* Accepted products equal the exact ones. */
    const long long dims[][2] = {{0, 5}, {1, 1}, {3, 7}, {1000, 1000}, {1LL << 20, 1LL << 16}};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        assert_int_equal(ba_size_product(dims[i][0], dims[i][1], 4, "x", &bytes, &err), BA_OK);
        unsigned __int128 exact = (unsigned __int128)dims[i][0] * (unsigned __int128)dims[i][1] * 4;
        assert_true((unsigned __int128)bytes == exact);
    }
    /* [2^31, 2^31] float32 wraps a 64-bit size_t to 0 when multiplied blindly. */
    assert_int_equal(ba_size_product(1LL << 31, 1LL << 31, 4, "/data", &bytes, &err),
                     BA_ERR_SHAPE);
    expect_message(&err, "/data: implausible size: the second dimension = 2147483648");
    /* [2^60, 1]: the first factor alone is implausible. */
    assert_int_equal(ba_size_product(1LL << 60, 1, 4, "bold", &bytes, &err), BA_ERR_SHAPE);
    expect_message(&err, "the first dimension = 1152921504606846976");
    assert_int_equal(ba_size_product(-3, 2, 4, "bold", &bytes, &err), BA_ERR_SHAPE);
    expect_message(&err, "negative");
    assert_int_equal(ba_size_product3(4, 1LL << 20, 1LL << 20, 4, "hidden", &bytes, &err),
                     BA_ERR_SHAPE);
    expect_message(&err, "the third dimension");
    /* Just under and just over the limit. */
    assert_int_equal(ba_size_product((long long)(BA_ALLOC_MAX_BYTES / 8), 2, 4, "x", &bytes, &err),
                     BA_OK);
    assert_int_equal(ba_size_product((long long)(BA_ALLOC_MAX_BYTES / 8) + 1, 2, 4, "x", &bytes,
                                     &err), BA_ERR_SHAPE);
    float *p = ba_alloc_array(1LL << 31, 1LL << 31, sizeof *p, "/data", &err);
    assert_null(p);
    assert_int_equal(err.code, BA_ERR_SHAPE);
    p = ba_alloc_array(3, 5, sizeof *p, "small", &err);
    assert_non_null(p);
    for (int i = 0; i < 15; i++) assert_true(p[i] == 0);
    free(p);
}

/* ---- reads bounded by the caller's buffer ----------------------------------- */

static void write_h5(const char *path, const char *dset, int rank, const hsize_t *dims)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(f, dset, H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    float *v = calloc(n, sizeof *v);
    for (hsize_t i = 0; i < n; i++) v[i] = (float)i;
    assert_true(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    free(v);
    H5Dclose(d);
    H5Sclose(space);
    H5Fclose(f);
}

static void test_read_n_bounds(void **state)
{
    (void)state;
    char path[4200];
    snprintf(path, sizeof path, "%s/r.h5", ba_test_tmpdir());
    const hsize_t dims3[3] = {2, 3, 4};
    write_h5(path, "/x", 3, dims3);
    ba_h5file f;
    ba_error err;
    assert_int_equal(ba_h5_open(&f, path, MPI_COMM_SELF, &err), BA_OK);
    /* Canary after the buffer: nothing may be written past `capacity`. */
    float buf[24 + 4];
    for (int i = 0; i < 28; i++) buf[i] = -7;
    hsize_t start2[2] = {0, 0}, count2[2] = {2, 3};
    assert_int_equal(ba_h5_read_n(&f, "/x", BA_H5_F32, 2, start2, count2, buf, 6, &err),
                     BA_ERR_SHAPE);
    expect_message(&err, "has 3 dimensions, expected 2");
    /* Whole dataset into too small a buffer. */
    assert_int_equal(ba_h5_read_n(&f, "/x", BA_H5_F32, 3, NULL, NULL, buf, 23, &err),
                     BA_ERR_SHAPE);
    expect_message(&err, "more than the 23 values");
    for (int i = 0; i < 28; i++) assert_true(buf[i] == -7);
    /* Whole dataset, exact capacity; then a slab. */
    assert_int_equal(ba_h5_read_n(&f, "/x", BA_H5_F32, 3, NULL, NULL, buf, 24, &err), BA_OK);
    for (int i = 0; i < 24; i++) assert_true(buf[i] == (float)i);
    assert_true(buf[24] == -7);
    hsize_t start3[3] = {1, 1, 0}, count3[3] = {1, 2, 4};
    assert_int_equal(ba_h5_read_n(&f, "/x", BA_H5_F32, 3, start3, count3, buf, 8, &err), BA_OK);
    for (int i = 0; i < 8; i++) assert_true(buf[i] == (float)(12 + 4 + i));
    /* A slab leaving the dataset, and one whose start + count would wrap. */
    hsize_t start_far[3] = {1, 2, 0}, count_far[3] = {1, 2, 4};
    assert_int_equal(ba_h5_read_n(&f, "/x", BA_H5_F32, 3, start_far, count_far, buf, 28, &err),
                     BA_ERR_SHAPE);
    hsize_t start_wrap[3] = {0, (hsize_t)-1, 0}, count_wrap[3] = {1, 2, 4};
    assert_int_equal(ba_h5_read_n(&f, "/x", BA_H5_F32, 3, start_wrap, count_wrap, buf, 28, &err),
                     BA_ERR_SHAPE);
    ba_h5_abandon(&f);
}

/* ---- features.h5 checked at open ---------------------------------------------- */

/* A features.h5 of one story ("s", 5 words, 2 layers, width 3) with one
 * dataset or attribute replaced as `variant` says. */
static void write_features(const char *path, const char *variant)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    const hsize_t hd[3] = {2, 5, 3};
    hid_t space = H5Screate_simple(3, hd, NULL);
    hid_t d = H5Dcreate2(f, "/stories/s/hidden", H5T_IEEE_F32LE, space, lcpl, H5P_DEFAULT,
                         H5P_DEFAULT);
    long long layers[2] = {1, 2};
    if (strcmp(variant, "layers-dup") == 0) layers[1] = 1;
    if (strcmp(variant, "layers-neg") == 0) layers[0] = -4;
    hsize_t two = 2;
    hid_t aspace = H5Screate_simple(1, &two, NULL);
    hid_t a = H5Acreate2(d, "layers", H5T_STD_I64LE, aspace, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_LLONG, layers);
    H5Aclose(a);
    H5Sclose(aspace);
    H5Dclose(d);
    H5Sclose(space);
    static const char *const leaves[3] = {"onset", "offset", "surprisal"};
    for (int k = 0; k < 3; k++) {
        hsize_t wd[2] = {5, 1};
        int rank = 1;
        if (strncmp(variant, leaves[k], strlen(leaves[k])) == 0) {
            if (strstr(variant, "-long")) wd[0] = 50;
            if (strstr(variant, "-rank2")) rank = 2;
        }
        char obj[64];
        snprintf(obj, sizeof obj, "/stories/s/%s", leaves[k]);
        space = H5Screate_simple(rank, wd, NULL);
        d = H5Dcreate2(f, obj, H5T_IEEE_F64LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        H5Dclose(d);
        H5Sclose(space);
    }
    H5Pclose(lcpl);
    H5Fclose(f);
}

static void test_features_open_checks(void **state)
{
    (void)state;
    const char *const variants[][2] = {
        {"onset-long", "/stories/s/onset has 1 dimension (first 50), expected 1 of 5 words"},
        {"onset-rank2", "/stories/s/onset has 2 dimensions"},
        {"offset-long", "/stories/s/offset has 1 dimension (first 50)"},
        {"surprisal-rank2", "/stories/s/surprisal has 2 dimensions"},
        {"layers-dup", "lists layer 1 twice"},
        {"layers-neg", "holds -4"},
    };
    char path[4200];
    snprintf(path, sizeof path, "%s/f.h5", ba_test_tmpdir());
    ba_features_file ff;
    ba_error err;
    write_features(path, "good");
    assert_int_equal(ba_features_open(&ff, path, MPI_COMM_SELF, &err), BA_OK);
    double onset[5];
    assert_int_equal(ba_features_read_onsets(&ff, "s", onset, &err), BA_OK);
    ba_features_close(&ff);
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        write_features(path, variants[i][0]);
        assert_int_not_equal(ba_features_open(&ff, path, MPI_COMM_SELF, &err), BA_OK);
        expect_message(&err, variants[i][1]);
    }
}

/* ---- a full disk ---------------------------------------------------------------- */

static void test_full_disk_close(void **state)
{
    (void)state;
    char mnt[4200];
    snprintf(mnt, sizeof mnt, "%s/mnt", ba_test_tmpdir());
    assert_int_equal(mkdir(mnt, 0755), 0);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=64k") != 0) {
        print_message("(cannot mount a tmpfs here: the full-disk case is not run)\n");
        skip();
    }
    char path[4300];
    snprintf(path, sizeof path, "%s/big.h5", mnt);
    ba_h5file f;
    ba_error err;
    assert_int_equal(ba_h5_create(&f, path, MPI_COMM_SELF, &err), BA_OK);
    const hsize_t dims[2] = {256, 256}; /* 256 KiB of float32 into 64 KiB */
    float *v = calloc(256 * 256, sizeof *v);
    for (int i = 0; i < 256 * 256; i++) v[i] = (float)i;
    ba_status rc = ba_h5_create_dataset(&f, "/x", BA_H5_F32, 2, dims, &err);
    if (rc == BA_OK) rc = ba_h5_write(&f, "/x", BA_H5_F32, (hsize_t[]){0, 0}, dims, v, &err);
    if (rc == BA_OK) rc = ba_h5_close(&f, &err);
    else ba_h5_abandon(&f);
    free(v);
    assert_int_not_equal(rc, BA_OK);
    assert_int_equal(err.code, BA_ERR_IO);
    expect_message(&err, path);
    /* Nothing left on the disk, and no file still registered with HDF5
     * (a registered, freed file crashed H5close and MPI_Finalize). */
    struct stat sb;
    assert_int_not_equal(stat(path, &sb), 0);
    assert_int_equal(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_FILE), 0);
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", mnt);
    assert_int_equal(ba_test_system("%s", cmd), 0);
    /* The small file that fits still works there. */
    assert_int_equal(ba_h5_create(&f, path, MPI_COMM_SELF, &err), BA_OK);
    long long one = 1;
    assert_int_equal(ba_h5_write_all(&f, "/one", BA_H5_I64, 1, (hsize_t[]){1}, &one, &err), BA_OK);
    assert_int_equal(ba_h5_close(&f, &err), BA_OK);
    assert_int_equal(stat(path, &sb), 0);
    unlink(path);
    umount(mnt);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_size_product),
        cmocka_unit_test(test_read_n_bounds),
        cmocka_unit_test(test_features_open_checks),
        cmocka_unit_test(test_full_disk_close),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    H5close(); /* the library's clean-up: crashed on a file left registered */
    MPI_Finalize();
    return failed;
}
