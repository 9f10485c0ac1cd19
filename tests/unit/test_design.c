/* test_design.c — words to TRs, FIR delays, folds and option parsing,
 * on hand-worked examples (the README's worked example among them). */
#include "test_util.h"

#include <math.h>
#include <string.h>

#include "brainalign/pipeline/design.h"
#include "brainalign/ridge/folds.h"

static void test_readme_worked_example(void **state)
{
    (void)state;
    /* TR 1.5 s, words at 0.2, 1.0, 1.7 s with 1-D vectors a=1, b=10, c=100. */
    const float words[3] = {1, 10, 100};
    const double onset[3] = {0.2, 1.0, 1.7};
    const int delays[2] = {1, 2};
    ba_design_options opt = {.tr_s = 1.5, .aggregate = BA_AGGREGATE_SUM, .n_delays = 2,
                             .delays = delays};
    float trs[3], x[6];
    long dropped = -1;
    ba_error err;
    assert_int_equal(ba_words_to_trs("ex", words, onset, 3, 1, 3, &opt, trs, &dropped, &err), BA_OK);
    assert_int_equal(dropped, 0);
    assert_true(trs[0] == 11 && trs[1] == 100 && trs[2] == 0);
    ba_fir_delays(trs, 3, 1, delays, 2, x);
    const float expect[6] = {0, 0, 11, 0, 100, 11};
    assert_memory_equal(x, expect, sizeof expect);
    /* Mean instead of sum. */
    opt.aggregate = BA_AGGREGATE_MEAN;
    assert_int_equal(ba_words_to_trs("ex", words, onset, 3, 1, 3, &opt, trs, NULL, &err), BA_OK);
    assert_true(trs[0] == 5.5f && trs[1] == 100);
}

static void test_offset_drop_and_too_short(void **state)
{
    (void)state;
    const float words[3] = {1, 2, 3};
    const double onset[3] = {0.2, 1.0, 4.6};
    ba_design_options opt = {.tr_s = 1.5, .tr_offset_s = -0.5};
    float trs[4];
    long dropped = 0;
    ba_error err;
    /* With -0.5 s the first word falls before the scan and is dropped. */
    assert_int_equal(ba_words_to_trs("s", words, onset, 3, 1, 4, &opt, trs, &dropped, &err), BA_OK);
    assert_int_equal(dropped, 1);
    assert_true(trs[0] == 2 && trs[2] == 3);
    assert_int_equal(ba_trs_needed(onset, 3, &opt), 3);
    /* The BOLD has 2 TRs, the words need 3. */
    assert_int_equal(ba_words_to_trs("bold.h5:/stories/s", words, onset, 3, 1, 2, &opt, trs, NULL, &err),
                     BA_ERR_SHAPE);
    assert_non_null(strstr(err.message, "bold.h5:/stories/s: the BOLD has 2 TRs, the words need 3"));
}

static void test_kfold_matches_sklearn(void **state)
{
    (void)state;
    /* sklearn.model_selection.KFold(3).split(range(10)) tests [0:4], [4:7], [7:10]. */
    long b[4];
    ba_error err;
    assert_int_equal(ba_kfold_bounds(10, 3, b, &err), BA_OK);
    assert_true(b[0] == 0 && b[1] == 4 && b[2] == 7 && b[3] == 10);
    long b5[6];
    assert_int_equal(ba_kfold_bounds(3000, 5, b5, &err), BA_OK);
    for (int k = 0; k <= 5; k++) assert_int_equal(b5[k], 600 * k);
    assert_int_equal(ba_kfold_bounds(4, 5, b5, &err), BA_ERR_SHAPE);
    assert_int_equal(ba_kfold_bounds(10, 1, b5, &err), BA_ERR_USAGE);
    /* Story-wise: 5 stories into 2 folds = stories {0,1,2} and {3,4}. */
    const long stories[6] = {0, 100, 250, 300, 420, 500};
    long sb[3];
    assert_int_equal(ba_story_fold_bounds(stories, 5, 2, sb, &err), BA_OK);
    assert_true(sb[0] == 0 && sb[1] == 300 && sb[2] == 500);
}

static void test_parse_lists(void **state)
{
    (void)state;
    int v[8], n = 0;
    double a[16];
    ba_error err;
    assert_int_equal(ba_parse_int_list("1..5", v, 8, &n, &err), BA_OK);
    assert_true(n == 5 && v[0] == 1 && v[4] == 5);
    assert_int_equal(ba_parse_int_list("9,14", v, 8, &n, &err), BA_OK);
    assert_true(n == 2 && v[1] == 14);
    assert_int_not_equal(ba_parse_int_list("1,x", v, 8, &n, &err), BA_OK);
    assert_int_not_equal(ba_parse_int_list("", v, 8, &n, &err), BA_OK);
    /* Found by fuzzing: huge ranges must be refused, not overflow. */
    assert_int_not_equal(ba_parse_int_list("0..99999999999999999999", v, 8, &n, &err), BA_OK);
    assert_int_not_equal(ba_parse_int_list("-9223372036854775808..5", v, 8, &n, &err), BA_OK);
    assert_int_not_equal(ba_parse_int_list("1..9", v, 8, &n, &err), BA_OK);
    assert_int_equal(ba_parse_int_list("1..8", v, 8, &n, &err), BA_OK);
    assert_int_not_equal(ba_parse_int_list("1,99999999999", v, 8, &n, &err), BA_OK);
    assert_int_equal(ba_parse_alphas("logspace:-1:8:10", a, 16, &n, &err), BA_OK);
    assert_int_equal(n, 10);
    for (int i = 0; i < 10; i++) assert_true(fabs(a[i] / pow(10.0, i - 1) - 1) < 1e-12);
    assert_int_equal(ba_parse_alphas("0.5,2", a, 16, &n, &err), BA_OK);
    assert_true(n == 2 && a[1] == 2);
    assert_int_not_equal(ba_parse_alphas("-1,2", a, 16, &n, &err), BA_OK);
    assert_int_not_equal(ba_parse_alphas("logspace:1:2", a, 16, &n, &err), BA_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readme_worked_example),
        cmocka_unit_test(test_offset_drop_and_too_short),
        cmocka_unit_test(test_kfold_matches_sklearn),
        cmocka_unit_test(test_parse_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
