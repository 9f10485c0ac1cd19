/* test_error.c — status codes, messages and context chaining. */
#include "test_util.h"

#include <stdio.h>
#include <string.h>

#include "brainalign/core/error.h"

static ba_status failing_reader(const char *path, ba_error *err)
{
    return ba_fail(err, BA_ERR_SHAPE, "%s:/stories/pieman/data has %d TRs, features need %d",
                   path, 290, 300);
}

static ba_status caller(ba_error *err)
{
    BA_CHECK(failing_reader("bold.h5", err));
    return BA_OK; /* not reached */
}

static void test_fail_formats_message(void **state)
{
    (void)state;
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(caller(&err), BA_ERR_SHAPE);
    assert_int_equal(err.code, BA_ERR_SHAPE);
    assert_string_equal(err.message, "bold.h5:/stories/pieman/data has 290 TRs, features need 300");
    ba_context(&err, "fit");
    assert_string_equal(err.message,
                        "fit: bold.h5:/stories/pieman/data has 290 TRs, features need 300");
    assert_string_equal(ba_status_name(BA_ERR_IO), "I/O error");
}

static void test_calloc_overflow_is_reported(void **state)
{
    (void)state;
    ba_error err;
    ba_error_clear(&err);
    void *p = ba_calloc((size_t)-1 / 2, 16, "huge table", &err);
    assert_null(p);
    assert_int_equal(err.code, BA_ERR_NOMEM);
    assert_non_null(strstr(err.message, "huge table"));
}

/* A chain of callers passing one failure up through BA_CHECK and BA_TRY. */
static int raise_line;
static ba_status raise_(ba_error *err)
{
    raise_line = __LINE__ + 1;
    return ba_fail(err, BA_ERR_VALUE, "voxel 3 is constant");
}

static ba_status level1(ba_error *err)
{
    BA_CHECK(raise_(err));
    return BA_OK;
}

static ba_status level2(ba_error *err)
{
    ba_status rc = BA_OK;
    BA_TRY(level1(err), done);
done:
    return rc;
}

static ba_status level3(ba_error *err) { BA_CHECK(level2(err)); return BA_OK; }
static ba_status level4(ba_error *err) { BA_CHECK(level3(err)); return BA_OK; }
static ba_status level5(ba_error *err) { BA_CHECK(level4(err)); return BA_OK; }
static ba_status level6(ba_error *err) { BA_CHECK(level5(err)); return BA_OK; }

static void test_origin_names_the_raiser_first(void **state)
{
    (void)state;
    ba_error err;
    ba_error_clear(&err);
    assert_string_equal(err.origin, "");
    assert_int_equal(level2(&err), BA_ERR_VALUE);
    char want[256];
    snprintf(want, sizeof want, "test_error.c:%d raise_ < test_error.c:", raise_line);
    if (strncmp(err.origin, want, strlen(want)) != 0)
        fail_msg("origin '%s' should start with '%s'", err.origin, want);
    assert_non_null(strstr(err.origin, " level1 < test_error.c:"));
    assert_non_null(strstr(err.origin, " level2"));
    assert_null(strchr(err.origin, '/')); /* the file's base name only */
    assert_string_equal(err.message, "voxel 3 is constant"); /* the message is untouched */
}

static void test_origin_trail_is_bounded(void **state)
{
    (void)state;
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(level6(&err), BA_ERR_VALUE);
    /* raise_, level1, level2, level3 are kept (BA_ERROR_TRACE_DEPTH = 4),
     * then one " < ..." for level4, level5, level6 */
    assert_non_null(strstr(err.origin, " level3 < ..."));
    assert_null(strstr(err.origin, "level4"));
    const char *dots = strstr(err.origin, "...");
    assert_null(strstr(dots + 3, "..."));
    assert_true(strlen(err.origin) < BA_ERROR_ORIGIN_MAX);
    /* passing it up a thousand more times changes nothing */
    char before[BA_ERROR_ORIGIN_MAX];
    memcpy(before, err.origin, sizeof before);
    for (int i = 0; i < 1000; i++) ba_error_trace(&err, "deep.c", i, "again");
    assert_string_equal(err.origin, before);
    ba_error_trace(NULL, "x.c", 1, "f"); /* a NULL record is fine */
}

static void test_trace_without_fail_starts_the_origin(void **state)
{
    (void)state;
    ba_error err;
    ba_error_clear(&err);
    ba_error_trace(&err, "/a/b/ridge.c", 12, "solve");
    assert_string_equal(err.origin, "ridge.c:12 solve");
    /* a fresh failure starts a fresh trail */
    ba_fail(&err, BA_ERR_IO, "x");
    assert_null(strstr(err.origin, "ridge.c"));
    assert_non_null(strstr(err.origin, "test_error.c:"));
}

static void test_context_keeps_the_root_cause(void **state)
{
    (void)state;
    ba_error err;
    ba_error_clear(&err);
    ba_fail(&err, BA_ERR_SHAPE, "root cause at the end");
    char origin[BA_ERROR_ORIGIN_MAX];
    memcpy(origin, err.origin, sizeof origin);
    ba_context(&err, "fit %s", "sub-01");
    assert_string_equal(err.message, "fit sub-01: root cause at the end");
    assert_string_equal(err.origin, origin); /* context does not move the origin */
    assert_int_equal(err.code, BA_ERR_SHAPE);
    /* a context too long to fit whole is shortened, never the root cause */
    char huge[2 * BA_ERROR_MESSAGE_MAX];
    memset(huge, 'c', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    for (int i = 0; i < 20; i++) assert_int_equal(ba_context(&err, "%s", huge), BA_ERR_SHAPE);
    size_t len = strlen(err.message);
    assert_true(len < BA_ERROR_MESSAGE_MAX);
    const char *tail = "fit sub-01: root cause at the end";
    assert_string_equal(err.message + len - strlen(tail), tail);
    /* a root message that fills the record keeps all of itself */
    memset(huge, 'r', BA_ERROR_MESSAGE_MAX - 2);
    huge[BA_ERROR_MESSAGE_MAX - 2] = '\0';
    ba_fail(&err, BA_ERR_IO, "%s", huge);
    ba_context(&err, "more");
    assert_string_equal(err.message, huge);
}

static void test_fail_about_marks_the_input(void **state)
{
    (void)state;
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(err.about, BA_ABOUT_NONE);
    assert_int_equal(ba_fail_about(&err, BA_ABOUT_Y, BA_ERR_VALUE, "Y: voxel %d", 3), BA_ERR_VALUE);
    assert_int_equal(err.about, BA_ABOUT_Y);
    assert_string_equal(err.message, "Y: voxel 3");
    ba_context(&err, "fit");
    assert_int_equal(err.about, BA_ABOUT_Y); /* context keeps the mark */
    ba_fail(&err, BA_ERR_IO, "later");
    assert_int_equal(err.about, BA_ABOUT_NONE); /* a new failure clears it */
    assert_int_equal(ba_fail(NULL, BA_ERR_IO, "nowhere"), BA_ERR_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fail_formats_message),
        cmocka_unit_test(test_calloc_overflow_is_reported),
        cmocka_unit_test(test_origin_names_the_raiser_first),
        cmocka_unit_test(test_origin_trail_is_bounded),
        cmocka_unit_test(test_trace_without_fail_starts_the_origin),
        cmocka_unit_test(test_context_keeps_the_root_cause),
        cmocka_unit_test(test_fail_about_marks_the_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
