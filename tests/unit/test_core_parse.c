/* test_core_parse.c — whole-text numbers with range checks (core/parse.h). */
#include "test_util.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "brainalign/core/parse.h"

static void test_long(void **state)
{
    (void)state;
    long v = 7;
    assert_true(ba_parse_long("42", 0, 100, &v));
    assert_int_equal(v, 42);
    assert_true(ba_parse_long("-5", -10, 10, &v));
    assert_int_equal(v, -5);
    v = 7;
    assert_false(ba_parse_long("", LONG_MIN, LONG_MAX, &v));
    assert_false(ba_parse_long("12x", LONG_MIN, LONG_MAX, &v));
    assert_false(ba_parse_long("x12", LONG_MIN, LONG_MAX, &v));
    assert_false(ba_parse_long("1.5", LONG_MIN, LONG_MAX, &v));
    assert_false(ba_parse_long("101", 0, 100, &v));
    assert_false(ba_parse_long("-1", 0, 100, &v));
    assert_false(ba_parse_long("99999999999999999999999", LONG_MIN, LONG_MAX, &v));
    assert_false(ba_parse_long("-99999999999999999999999", LONG_MIN, LONG_MAX, &v));
    assert_false(ba_parse_long(NULL, LONG_MIN, LONG_MAX, &v));
    assert_int_equal(v, 7); /* untouched by every failure */
    char text[64];
    snprintf(text, sizeof text, "%ld", LONG_MAX);
    assert_true(ba_parse_long(text, LONG_MIN, LONG_MAX, &v));
    assert_true(v == LONG_MAX);
}

static void test_int(void **state)
{
    (void)state;
    int v = 3;
    char text[64];
    snprintf(text, sizeof text, "%d", INT_MAX);
    assert_true(ba_parse_int(text, INT_MIN, INT_MAX, &v));
    assert_int_equal(v, INT_MAX);
    snprintf(text, sizeof text, "%lld", (long long)INT_MAX + 1);
    v = 3;
    assert_false(ba_parse_int(text, INT_MIN, INT_MAX, &v)); /* fits a long, not an int */
    snprintf(text, sizeof text, "%lld", (long long)INT_MIN - 1);
    assert_false(ba_parse_int(text, INT_MIN, INT_MAX, &v));
    assert_int_equal(v, 3);
    assert_true(ba_parse_int("0", 0, 0, &v));
    assert_int_equal(v, 0);
}

static void test_size(void **state)
{
    (void)state;
    size_t v = 9;
    assert_true(ba_parse_size("0", SIZE_MAX, &v));
    assert_true(v == 0);
    char text[64];
    snprintf(text, sizeof text, "%zu", (size_t)SIZE_MAX);
    assert_true(ba_parse_size(text, SIZE_MAX, &v));
    assert_true(v == SIZE_MAX);
    v = 9;
    assert_false(ba_parse_size("-1", SIZE_MAX, &v));  /* strtoull would wrap it */
    assert_false(ba_parse_size("+1", SIZE_MAX, &v));
    assert_false(ba_parse_size("", SIZE_MAX, &v));
    assert_false(ba_parse_size("18446744073709551616", SIZE_MAX, &v)); /* 2^64 */
    assert_false(ba_parse_size("11", 10, &v));
    assert_false(ba_parse_size("1k", SIZE_MAX, &v));
    assert_true(v == 9);
}

static void test_double(void **state)
{
    (void)state;
    double v = 1.0;
    assert_true(ba_parse_double("2.5e-3", -HUGE_VAL, HUGE_VAL, &v));
    assert_true(v == 2.5e-3);
    assert_true(ba_parse_double("-7", -HUGE_VAL, HUGE_VAL, &v));
    assert_true(v == -7.0);
    assert_true(ba_parse_double("1e-320", -HUGE_VAL, HUGE_VAL, &v)); /* subnormal: fine */
    v = 1.0;
    assert_false(ba_parse_double("nan", -HUGE_VAL, HUGE_VAL, &v));
    assert_false(ba_parse_double("inf", -HUGE_VAL, HUGE_VAL, &v));
    assert_false(ba_parse_double("-infinity", -HUGE_VAL, HUGE_VAL, &v));
    assert_false(ba_parse_double("1e400", -HUGE_VAL, HUGE_VAL, &v)); /* overflows */
    assert_false(ba_parse_double("", -HUGE_VAL, HUGE_VAL, &v));
    assert_false(ba_parse_double("0.5s", -HUGE_VAL, HUGE_VAL, &v));
    assert_false(ba_parse_double("1.5", 0.0, 1.0, &v));
    assert_true(v == 1.0);
    assert_true(ba_parse_double("1", 0.0, 1.0, &v)); /* the bounds are inclusive */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_long),
        cmocka_unit_test(test_int),
        cmocka_unit_test(test_size),
        cmocka_unit_test(test_double),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
