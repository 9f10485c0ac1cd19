/* test_fit_options.c — the fit stage's option table (fit_options.h):
 * integers parse into their own type with range checks (no wrap-around),
 * every option reads back what it prints, the table's names and keys are
 * unique, the help lines keep their layout, and ba_fit_options_apply gives
 * the fit configuration the values (tie tolerance 0: off); the same for
 * the features stage's table (features_options.h). */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "test_util.h"
#include "brainalign/pipeline/features_options.h"
#include "brainalign/pipeline/fit_options.h"

static const ba_option *find(const char *name)
{
    const ba_option *o = ba_option_find(&ba_fit_option_table, name);
    if (!o) fail_msg("no fit option --%s", name);
    return o;
}

/* Parse `text` into a fresh set of options; the status, and the message. */
static ba_status parse(const char *name, const char *text, ba_fit_options *o, ba_error *err)
{
    ba_fit_options_defaults(o);
    ba_error_clear(err);
    return ba_option_parse(find(name), o, text, "[cv] key", err);
}

static void test_integers_in_range_only(void **state)
{
    (void)state;
    ba_fit_options o;
    ba_error err;
    /* 4294967301 = 2^32 + 5: a 32-bit truncation would read 5 folds */
    const char *bad_folds[] = {"4294967301", "2147483648", "-4294967291", "1", "0", "-1", "5x",
                               "", " ", "5.0", "0x10", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad_folds / sizeof *bad_folds; i++) {
        assert_int_equal(parse("folds", bad_folds[i], &o, &err), BA_ERR_USAGE);
        assert_non_null(strstr(err.message, "[cv] key"));
        assert_int_equal(o.n_folds, 5); /* untouched */
    }
    assert_int_equal(parse("folds", "4294967301", &o, &err), BA_ERR_USAGE);
    assert_string_equal(err.message, "[cv] key 4294967301 must be a whole number >= 2");
    assert_int_equal(parse("tie-tolerance", "-1", &o, &err), BA_ERR_USAGE);
    assert_string_equal(err.message, "[cv] key -1 must be a finite number >= 0");
    assert_int_equal(parse("tr", "0", &o, &err), BA_ERR_USAGE);
    assert_string_equal(err.message, "[cv] key 0 must be a finite number > 0");
    assert_int_equal(parse("tr-offset", "x", &o, &err), BA_ERR_USAGE);
    assert_string_equal(err.message, "[cv] key x must be a finite number");
    assert_int_equal(parse("folds", "2", &o, &err), BA_OK);
    assert_int_equal(o.n_folds, 2);
    assert_int_equal(parse("folds", "2147483647", &o, &err), BA_OK);
    assert_int_equal(o.n_folds, INT_MAX);
    assert_int_equal(parse("fold-groups", "0", &o, &err), BA_ERR_USAGE);
    assert_int_equal(parse("fold-groups", "4294967297", &o, &err), BA_ERR_USAGE);
    assert_int_equal(o.fold_groups, 1);
    assert_int_equal(parse("block-size", "4294967360", &o, &err), BA_ERR_USAGE);
    assert_int_equal(parse("voxel-block", "9223372036854775808", &o, &err), BA_ERR_USAGE);
    assert_int_equal(parse("voxel-block", "0", &o, &err), BA_ERR_USAGE);
    assert_int_equal(parse("voxel-block", "9223372036854775807", &o, &err), BA_OK);
    assert_true(o.voxel_block == LONG_MAX);
    assert_int_equal(parse("delays", "1,4294967297", &o, &err), BA_ERR_USAGE);
    assert_int_equal(parse("delays", "1,-2", &o, &err), BA_ERR_USAGE);
    assert_int_equal(o.n_delays, 5);
    assert_int_equal(parse("delays", "0..3", &o, &err), BA_OK);
    assert_int_equal(o.n_delays, 4);
    assert_int_equal(o.delays[3], 3);
}

static void test_numbers_and_choices(void **state)
{
    (void)state;
    ba_fit_options o;
    ba_error err;
    const char *bad_tie[] = {"-1e-9", "nan", "inf", "1e999", "x", ""};
    for (size_t i = 0; i < sizeof bad_tie / sizeof *bad_tie; i++)
        assert_int_equal(parse("tie-tolerance", bad_tie[i], &o, &err), BA_ERR_USAGE);
    assert_int_equal(parse("tie-tolerance", "0", &o, &err), BA_OK);
    assert_true(o.tie_tolerance == 0);
    assert_int_equal(parse("tr", "0", &o, &err), BA_ERR_USAGE); /* a TR is > 0 */
    assert_int_equal(parse("tr", "1.5", &o, &err), BA_OK);
    assert_true(o.tr_s == 1.5);
    assert_int_equal(parse("tr-offset", "-0.3", &o, &err), BA_OK);
    assert_true(o.tr_offset_s == -0.3);
    assert_int_equal(parse("aggregate", "lanczos", &o, &err), BA_OK);
    assert_int_equal(o.aggregate, BA_AGGREGATE_LANCZOS);
    assert_int_equal(parse("aggregate", "median", &o, &err), BA_ERR_USAGE);
    assert_non_null(strstr(err.message, "sum, mean or lanczos"));
    assert_int_equal(parse("story-folds", "yes", &o, &err), BA_OK);
    assert_true(o.story_folds);
    assert_int_equal(parse("story-folds", "maybe", &o, &err), BA_ERR_USAGE);
    assert_int_equal(parse("alphas", "logspace:0:2:3", &o, &err), BA_OK);
    assert_int_equal(o.n_alphas, 3);
    assert_true(o.alphas[0] == 1 && o.alphas[1] == 10 && o.alphas[2] == 100);
}

/* Every option at a value other than its default prints to text that
 * parses back to the same value (what `tasks` relies on). */
static void test_format_reads_back(void **state)
{
    (void)state;
    const char *values[][2] = {
        {"delays", "2,3,7"}, {"aggregate", "mean"}, {"tr-offset", "0.1"}, {"tr", "0.7"},
        {"folds", "7"}, {"story-folds", "true"}, {"alphas", "0.1,1e-07,4.641588833612779,3e10"},
        {"fold-groups", "3"}, {"voxel-block", "100"}, {"block-size", "32"},
        {"tie-tolerance", "1e-09"}, {"fold-gap", "4"},
    };
    const ba_option_table *t = &ba_fit_option_table;
    assert_int_equal(t->n_options, (int)(sizeof values / sizeof *values));
    ba_fit_options set, again, defaults;
    ba_fit_options_defaults(&set);
    ba_fit_options_defaults(&defaults);
    ba_error err;
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        const ba_option *o = find(values[i][0]);
        assert_int_equal(ba_option_parse(o, &set, values[i][1], values[i][0], &err), BA_OK);
        assert_false(ba_option_equal(o, &set, &defaults));
    }
    for (int i = 0; i < t->n_options; i++) {
        const ba_option *o = &t->options[i];
        char text[2048];
        ba_option_format(o, &set, text, sizeof text);
        ba_fit_options_defaults(&again);
        assert_int_equal(ba_option_parse(o, &again, text, o->name, &err), BA_OK);
        if (!ba_option_equal(o, &set, &again)) fail_msg("--%s %s does not read back", o->name, text);
    }
    char text[64];
    ba_option_format(find("alphas"), &set, text, sizeof text);
    assert_string_equal(text, "0.1,1e-07,4.641588833612779,30000000000");
}

static void test_names_and_keys_unique(void **state)
{
    (void)state;
    const ba_option_table *t = &ba_fit_option_table;
    for (int i = 0; i < t->n_options; i++) {
        const ba_option *a = &t->options[i];
        assert_ptr_equal(ba_option_find(t, a->name), a);
        if (a->section) assert_ptr_equal(ba_option_find_key(t, a->section, a->key), a);
        assert_non_null(a->help);
        assert_non_null(a->group);
    }
    /* the INI keys of `run` (contracts) */
    const char *keys[][2] = {{"alignment", "delays"}, {"alignment", "aggregate"},
                             {"alignment", "tr_offset"}, {"bold", "tr"}, {"cv", "folds"},
                             {"cv", "alphas"}, {"cv", "story_folds"}, {"cv", "fold_groups"},
                             {"cv", "voxel_block"}, {"cv", "tie_tolerance"}};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
        if (!ba_option_find_key(t, keys[k][0], keys[k][1]))
            fail_msg("no INI key [%s] %s", keys[k][0], keys[k][1]);
    assert_null(ba_option_find_key(t, "cv", "block_size"));
}

static void test_help_layout(void **state)
{
    (void)state;
    char buf[4096] = "";
    FILE *f = fmemopen(buf, sizeof buf, "w");
    assert_non_null(f);
    ba_option_help(&ba_fit_option_table, "design", f);
    fclose(f);
    assert_string_equal(buf,
        "  --delays LIST       FIR delays in TRs (default 1..5; '1,2,3' or '1..5')\n"
        "  --aggregate sum|mean|lanczos  words within a TR, or Lanczos resampling (default sum)\n"
        "  --tr-offset SEC     added to word onsets before binning into TRs (default 0)\n"
        "  --tr SEC            TR length (default: bold.h5's tr_s attribute)\n");
}

static void test_apply(void **state)
{
    (void)state;
    ba_fit_options o;
    ba_fit_options_defaults(&o);
    ba_fit_config reference, cfg;
    ba_fit_config_defaults(&reference);
    ba_fit_config_defaults(&cfg);
    ba_fit_options_apply(&o, &cfg);
    /* the defaults of the table are those of the pipeline */
    assert_int_equal(cfg.ridge.n_folds, reference.ridge.n_folds);
    assert_int_equal(cfg.ridge.n_alphas, reference.ridge.n_alphas);
    for (int a = 0; a < cfg.ridge.n_alphas; a++) assert_true(cfg.ridge.alphas[a] == reference.alphas[a]);
    assert_ptr_equal(cfg.ridge.alphas, cfg.alphas);
    assert_ptr_equal(cfg.design.delays, cfg.delays);
    assert_int_equal(cfg.design.n_delays, reference.design.n_delays);
    assert_memory_equal(cfg.delays, reference.delays, sizeof cfg.delays);
    assert_true(cfg.ridge.tie_tolerance == BA_RIDGE_TIE_TOLERANCE);
    assert_int_equal(cfg.ridge.fold_groups, 1);
    assert_true(cfg.design.tr_s == 0);
    /* 0 turns the tie re-ranking off, and the ridge options hold it as 0
     * too (no sentinel translation between the layers) */
    o.tie_tolerance = 0;
    ba_fit_options_apply(&o, &cfg);
    assert_true(cfg.ridge.tie_tolerance == 0);
    o.tie_tolerance = 1e-3;
    o.n_folds = 3;
    o.aggregate = BA_AGGREGATE_MEAN;
    ba_fit_options_apply(&o, &cfg);
    assert_true(cfg.ridge.tie_tolerance == 1e-3);
    assert_int_equal(cfg.ridge.n_folds, 3);
    assert_int_equal(cfg.design.aggregate, BA_AGGREGATE_MEAN);
}

static void test_features_table(void **state)
{
    (void)state;
    const ba_option_table *t = &ba_features_option_table;
    ba_features_options o, d;
    ba_features_options_defaults(&o);
    ba_features_options_defaults(&d);
    ba_error err;
    const ba_option *context = ba_option_find(t, "context");
    assert_non_null(context);
    assert_ptr_equal(ba_option_find_key(t, "model", "context"), context);
    assert_int_equal(ba_option_parse(context, &o, "0", "--context", &err), BA_ERR_USAGE);
    assert_int_equal(ba_option_parse(context, &o, "99999999999999999999", "--context", &err),
                     BA_ERR_USAGE);
    assert_true(o.context == BA_FEATURES_DEFAULT_CONTEXT);
    const char *values[][2] = {{"context", "512"}, {"stride", "128"}, {"bos", "no"},
                               {"matmul", "bf16"}};
    assert_int_equal(t->n_options, 4);
    for (size_t i = 0; i < 4; i++) {
        const ba_option *opt = ba_option_find(t, values[i][0]);
        assert_non_null(opt);
        assert_int_equal(ba_option_parse(opt, &o, values[i][1], values[i][0], &err), BA_OK);
        assert_false(ba_option_equal(opt, &o, &d));
        char text[64];
        ba_option_format(opt, &o, text, sizeof text);
        assert_string_equal(text, values[i][1]);
    }
    assert_int_equal(ba_option_parse(ba_option_find(t, "bos"), &o, "maybe", "--bos", &err),
                     BA_ERR_USAGE);
    assert_string_equal(err.message, "--bos is auto, yes or no, not 'maybe'");
    ba_features_config cfg;
    ba_features_config_defaults(&cfg);
    ba_features_options_apply(&o, &cfg);
    assert_true(cfg.context == 512 && cfg.stride == 128);
    assert_int_equal(cfg.bos, BA_BOS_NO);
    assert_int_equal(cfg.matmul, BA_MATMUL_BF16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integers_in_range_only),
        cmocka_unit_test(test_numbers_and_choices),
        cmocka_unit_test(test_format_reads_back),
        cmocka_unit_test(test_names_and_keys_unique),
        cmocka_unit_test(test_help_layout),
        cmocka_unit_test(test_apply),
        cmocka_unit_test(test_features_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
