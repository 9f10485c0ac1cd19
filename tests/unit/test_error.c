/* test_error.c — status codes, messages and context chaining. */
#include "test_util.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fail_formats_message),
        cmocka_unit_test(test_calloc_overflow_is_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
