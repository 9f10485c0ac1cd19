/* test_core_fs.c — path suffixes, joining, existence, whole-file reads and
 * directory creation (core/fs.h). */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "brainalign/core/fs.h"

static void test_suffix(void **state)
{
    (void)state;
    assert_true(ba_has_suffix("bold.h5", ".h5", false));
    assert_false(ba_has_suffix("bold.H5", ".h5", false));
    assert_false(ba_has_suffix("h5", ".h5", false));
    assert_true(ba_has_suffix(".h5", ".h5", false));
    assert_false(ba_has_suffix(".h5", ".h5", true)); /* a proper suffix needs a stem */
    assert_true(ba_has_suffix("a.h5", ".h5", true));
    assert_true(ba_has_suffix("", "", false));
    assert_false(ba_has_suffix("", "", true));
    assert_true(ba_has_suffix("x", "", true));
    assert_false(ba_has_suffix("", ".h5", false));
    assert_true(ba_has_suffix_ci("pieman.textgrid", ".TextGrid", true));
    assert_true(ba_has_suffix_ci("PIEMAN.TSV", ".tsv", false));
    assert_false(ba_has_suffix_ci(".TSV", ".tsv", true));
    assert_true(ba_has_suffix_ci(".TSV", ".tsv", false));
    assert_false(ba_has_suffix_ci("pieman.csv", ".tsv", false));
}

static void test_join(void **state)
{
    (void)state;
    char out[16];
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(ba_join_path(out, sizeof out, "a/b", "c.txt", &err), BA_OK);
    assert_string_equal(out, "a/b/c.txt");
    assert_int_equal(ba_join_path(out, sizeof out, "", "c", &err), BA_OK);
    assert_string_equal(out, "/c");
    /* "0123456/01234567" is 16 characters: with its NUL it needs 17 bytes */
    assert_int_equal(ba_join_path(out, sizeof out, "0123456", "01234567", &err), BA_ERR_USAGE);
    assert_string_equal(out, "");
    assert_non_null(strstr(err.message, "0123456/01234567: path too long"));
    /* exactly full: 15 characters and the NUL */
    assert_int_equal(ba_join_path(out, sizeof out, "0123456", "0123456", &err), BA_OK);
    assert_string_equal(out, "0123456/0123456");
    /* a path longer than BA_PATH_MAX */
    char *longname = malloc(BA_PATH_MAX + 1);
    assert_non_null(longname);
    memset(longname, 'x', BA_PATH_MAX);
    longname[BA_PATH_MAX] = '\0';
    char big[BA_PATH_MAX];
    assert_int_equal(ba_join_path(big, sizeof big, "d", longname, &err), BA_ERR_USAGE);
    free(longname);
}

static void test_exists_and_read(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char path[BA_PATH_MAX], empty[BA_PATH_MAX], missing[BA_PATH_MAX];
    snprintf(path, sizeof path, "%s/data.bin", dir);
    snprintf(empty, sizeof empty, "%s/empty", dir);
    snprintf(missing, sizeof missing, "%s/missing", dir);
    /* 200 000 bytes: several growths of the 64 KiB first buffer; with NULs */
    size_t n = 200000;
    unsigned char *bytes = malloc(n);
    assert_non_null(bytes);
    for (size_t i = 0; i < n; i++) bytes[i] = (unsigned char)(i * 7919u >> 3);
    ba_test_write_file(path, bytes, n);
    ba_test_write_file(empty, "", 0);
    assert_true(ba_file_exists(path));
    assert_true(ba_file_exists(empty));
    assert_false(ba_file_exists(missing));
    assert_false(ba_file_exists(dir)); /* a directory is not a file */

    ba_error err;
    ba_error_clear(&err);
    unsigned char *data = NULL;
    size_t len = 0;
    assert_int_equal(ba_read_file(path, &data, &len, &err), BA_OK);
    assert_true(len == n);
    assert_memory_equal(data, bytes, n);
    assert_int_equal(data[n], 0); /* NUL-terminated */
    free(data);
    assert_int_equal(ba_read_file(empty, &data, &len, &err), BA_OK);
    assert_true(len == 0);
    assert_int_equal(data[0], 0);
    free(data);
    /* exactly 65536 bytes: the buffer is full when the file ends */
    snprintf(path, sizeof path, "%s/full.bin", dir);
    ba_test_write_file(path, bytes, 65536);
    assert_int_equal(ba_read_file(path, &data, &len, &err), BA_OK);
    assert_true(len == 65536);
    assert_memory_equal(data, bytes, 65536);
    assert_int_equal(data[65536], 0);
    free(data);
    free(bytes);

    data = (unsigned char *)"not touched";
    assert_int_equal(ba_read_file(missing, &data, &len, &err), BA_ERR_IO);
    assert_null(data);
    assert_non_null(strstr(err.message, missing));
    assert_non_null(strstr(err.message, "cannot open"));
    /* a directory is refused before it is opened */
    assert_int_equal(ba_read_file(dir, &data, &len, &err), BA_ERR_IO);
    assert_null(data);
    assert_non_null(strstr(err.message, "is a directory, expected a regular file"));
}

/* A FIFO with no writer: opening it would block for ever (issue 16); it is
 * refused by ba_read_file, ba_hash_file and ba_require_regular. */
static void test_fifo_refused(void **state)
{
    (void)state;
    char path[BA_PATH_MAX];
    snprintf(path, sizeof path, "%s/config.json", ba_test_tmpdir());
    assert_int_equal(mkfifo(path, 0600), 0);
    alarm(20); /* a hang fails the test instead of blocking ctest */
    ba_error err;
    ba_error_clear(&err);
    unsigned char *data = (unsigned char *)"not touched";
    size_t len = 7;
    assert_int_equal(ba_read_file(path, &data, &len, &err), BA_ERR_IO);
    assert_null(data);
    assert_non_null(strstr(err.message, path));
    assert_non_null(strstr(err.message, "is a pipe or FIFO, expected a regular file"));
    uint64_t h = 0;
    assert_int_equal(ba_hash_file(path, 0, &h, NULL, &err), BA_ERR_IO);
    assert_non_null(strstr(err.message, "pipe or FIFO"));
    assert_int_equal(ba_require_regular(path, &err), BA_ERR_IO);
    alarm(0);
    unlink(path);
}

/* Names that become path components (issue 16). */
static void test_names(void **state)
{
    (void)state;
    const char *good[] = {"sub-01", "baseline", "pieman", "a.b", "gpt4_every-4", "x"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        const char *why = "unset";
        assert_true(ba_valid_name(good[i], &why));
        assert_null(why);
    }
    const char *bad[] = {"", "..", ".", "../../../escaped", "a/b", "/abs", "-rf", "a..b",
                         "tab\there", "new\nline", "del\x7f", "back\\slash"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *why = NULL;
        assert_false(ba_valid_name(bad[i], &why));
        assert_non_null(why);
    }
    char long_name[300];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_false(ba_valid_name(long_name, NULL));
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(ba_check_name("[bold] subjects", "../x", &err), BA_ERR_USAGE);
    assert_non_null(strstr(err.message, "[bold] subjects '../x'"));
    assert_non_null(strstr(err.message, "'..'"));
    assert_int_equal(ba_check_name("[bold] subjects", "sub-01", &err), BA_OK);
}

static void test_make_dirs(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char path[BA_PATH_MAX];
    ba_error err;
    ba_error_clear(&err);
    snprintf(path, sizeof path, "%s/a/b/c", dir);
    assert_int_equal(ba_make_dirs(path, &err), BA_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(ba_make_dirs(path, &err), BA_OK); /* existing: fine */
    snprintf(path, sizeof path, "%s/a/b/c/", dir);      /* trailing slash */
    assert_int_equal(ba_make_dirs(path, &err), BA_OK);

    /* a file in the way */
    snprintf(path, sizeof path, "%s/file", dir);
    ba_test_write_file(path, "x", 1);
    assert_int_equal(ba_make_dirs(path, &err), BA_ERR_IO);
    assert_non_null(strstr(err.message, path));
    snprintf(path, sizeof path, "%s/file/sub", dir);
    assert_int_equal(ba_make_dirs(path, &err), BA_ERR_IO);

    assert_int_equal(ba_make_dirs("", &err), BA_ERR_USAGE);
    char *longpath = malloc(BA_PATH_MAX + 8);
    assert_non_null(longpath);
    memset(longpath, 'd', BA_PATH_MAX + 7);
    longpath[BA_PATH_MAX + 7] = '\0';
    assert_int_equal(ba_make_dirs(longpath, &err), BA_ERR_USAGE);
    assert_non_null(strstr(err.message, "path too long"));
    free(longpath);
}

static void test_partial_write(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char path[BA_PATH_MAX], temp[BA_PATH_MAX + 16];
    ba_error err;
    ba_error_clear(&err);
    snprintf(path, sizeof path, "%s/out.csv", dir);
    FILE *f = ba_partial_open(path, temp, sizeof temp, &err);
    assert_non_null(f);
    assert_true(ba_has_suffix(temp, "out.csv.partial", true));
    fprintf(f, "a,b\n");
    assert_false(ba_file_exists(path)); /* nothing under the final name yet */
    assert_int_equal(ba_partial_close(f, temp, path, BA_OK, &err), BA_OK);
    assert_false(ba_file_exists(temp));
    size_t len = 0;
    char *text = ba_test_read_file(path, &len);
    assert_string_equal(text, "a,b\n");
    free(text);

    /* a failure before the close: the old file stays, the partial one goes,
     * and the caller's error is kept */
    f = ba_partial_open(path, temp, sizeof temp, &err);
    assert_non_null(f);
    fprintf(f, "half");
    ba_fail(&err, BA_ERR_VALUE, "row 3 is bad");
    assert_int_equal(ba_partial_close(f, temp, path, BA_ERR_VALUE, &err), BA_ERR_VALUE);
    assert_string_equal(err.message, "row 3 is bad");
    assert_false(ba_file_exists(temp));
    text = ba_test_read_file(path, &len);
    assert_string_equal(text, "a,b\n");
    free(text);

    /* a directory that is not there */
    snprintf(path, sizeof path, "%s/missing/out.csv", dir);
    assert_null(ba_partial_open(path, temp, sizeof temp, &err));
    assert_int_equal(err.code, BA_ERR_IO);
    assert_non_null(strstr(err.message, "cannot write"));
    /* a temporary name that does not fit */
    char small[8];
    assert_null(ba_partial_open("abcdef", small, sizeof small, &err));
    assert_int_equal(err.code, BA_ERR_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_suffix),
        cmocka_unit_test(test_join),
        cmocka_unit_test(test_exists_and_read),
        cmocka_unit_test(test_fifo_refused),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_make_dirs),
        cmocka_unit_test(test_partial_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
