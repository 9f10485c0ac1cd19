/* test_stage_options.c — the option tables of the synth and compare
 * stages and of the BOLD import (synth_options.h, compare_options.h,
 * import_options.h): integers parse into their
 * own type with range checks (2^32 + 1 subjects is an error naming the
 * [synth] key, not one subject), seeds are any whole number up to 2^64 - 1
 * and nothing else, open bounds are refused, every option reads back what
 * it prints (alone and through the tasks `brainalign tasks` writes), the
 * names are unique in each table and the INI keys across every stage's
 * table (fit, features, synth, compare, import), and the
 * defaults the help texts state are the defaults. */
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "brainalign/pipeline/compare_options.h"
#include "brainalign/pipeline/features_options.h"
#include "brainalign/pipeline/fit_options.h"
#include "brainalign/pipeline/import_options.h"
#include "brainalign/pipeline/synth_options.h"
#include "brainalign/study/study.h"
#include "brainalign/study/study_tasks.h"

static const ba_option_table *const TABLES[] = {&ba_fit_option_table, &ba_features_option_table,
                                                &ba_synth_option_table, &ba_compare_option_table,
                                                &ba_import_option_table};
#define N_TABLES (sizeof TABLES / sizeof *TABLES)

static const ba_option *find(const ba_option_table *t, const char *name)
{
    const ba_option *o = ba_option_find(t, name);
    if (!o) fail_msg("no %s option --%s", t->stage, name);
    return o;
}

/* Parse `text` into `opts` (at the table's defaults first). */
static ba_status parse(const ba_option_table *t, const char *name, const char *text, void *opts,
                       ba_error *err)
{
    t->defaults(opts);
    ba_error_clear(err);
    return ba_option_parse(find(t, name), opts, text, "[synth] key", err);
}

static void test_synth_integers_in_range_only(void **state)
{
    (void)state;
    ba_synth_options o;
    ba_error err;
    /* 4294967297 = 2^32 + 1: a 32-bit truncation would read 1 subject */
    const char *bad[] = {"4294967297", "2147483648", "-4294967295", "0", "-1", "3x", "", "2.0",
                         "0x10", "99999999999999999999"};
    const char *ints[] = {"stories", "subjects", "regions", "assoc-every"};
    for (size_t k = 0; k < sizeof ints / sizeof *ints; k++)
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
            if (parse(&ba_synth_option_table, ints[k], bad[i], &o, &err) != BA_ERR_USAGE)
                fail_msg("--%s %s accepted", ints[k], bad[i]);
            assert_non_null(strstr(err.message, "[synth] key"));
            ba_synth_options d;
            ba_synth_defaults(&d);
            assert_memory_equal(&o, &d, sizeof o); /* untouched */
        }
    assert_int_equal(parse(&ba_synth_option_table, "subjects", "4294967297", &o, &err),
                     BA_ERR_USAGE);
    assert_string_equal(err.message, "[synth] key 4294967297 must be a whole number >= 1");
    assert_int_equal(parse(&ba_synth_option_table, "subjects", "2147483647", &o, &err), BA_OK);
    assert_int_equal(o.n_subjects, INT_MAX);
    /* long ones take what a long holds, and no more */
    assert_int_equal(parse(&ba_synth_option_table, "voxels", "4294967297", &o, &err), BA_OK);
    assert_true(o.n_voxels == 4294967297L);
    assert_int_equal(parse(&ba_synth_option_table, "voxels", "9223372036854775808", &o, &err),
                     BA_ERR_USAGE);
    assert_int_equal(parse(&ba_synth_option_table, "layers", "251", &o, &err), BA_ERR_USAGE);
    assert_string_equal(err.message, "[synth] key 251 must be a whole number from 0 to 250");
    assert_int_equal(parse(&ba_synth_option_table, "planted-layer", "-1", &o, &err),
                     BA_ERR_USAGE);
    assert_int_equal(parse(&ba_synth_option_table, "assoc-regions", "0,-2", &o, &err),
                     BA_ERR_USAGE);
    assert_int_equal(o.n_assoc_regions, 0);
    assert_int_equal(parse(&ba_synth_option_table, "assoc-regions", "0,2", &o, &err), BA_OK);
    assert_int_equal(o.n_assoc_regions, 2);
    assert_int_equal(o.assoc_regions[1], 2);
}

static void test_seeds_and_open_bounds(void **state)
{
    (void)state;
    ba_synth_options s;
    ba_compare_options c;
    ba_error err;
    const char *bad_seeds[] = {"-1", "-0", "+5", " 5", "18446744073709551616", "1e3", "", "x"};
    for (size_t i = 0; i < sizeof bad_seeds / sizeof *bad_seeds; i++) {
        if (parse(&ba_synth_option_table, "seed", bad_seeds[i], &s, &err) != BA_ERR_USAGE)
            fail_msg("--seed '%s' accepted", bad_seeds[i]);
        assert_true(s.seed == 2025);
        assert_int_equal(parse(&ba_compare_option_table, "seed", bad_seeds[i], &c, &err),
                         BA_ERR_USAGE);
    }
    assert_int_equal(parse(&ba_synth_option_table, "seed", "-1", &s, &err), BA_ERR_USAGE);
    assert_string_equal(err.message,
                        "[synth] key -1 must be a whole number from 0 to 18446744073709551615");
    assert_int_equal(parse(&ba_synth_option_table, "seed", "18446744073709551615", &s, &err),
                     BA_OK);
    assert_true(s.seed == UINT64_MAX);
    assert_int_equal(parse(&ba_compare_option_table, "seed", "0", &c, &err), BA_OK);
    assert_true(c.seed == 0);
    /* (0, 1): both ends refused */
    const char *names[] = {"confidence", "fdr"};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(parse(&ba_compare_option_table, names[k], "0", &c, &err), BA_ERR_USAGE);
        assert_int_equal(parse(&ba_compare_option_table, names[k], "1", &c, &err), BA_ERR_USAGE);
        assert_string_equal(err.message, "[synth] key 1 must be a finite number > 0 and < 1");
        assert_int_equal(parse(&ba_compare_option_table, names[k], "0.999", &c, &err), BA_OK);
    }
    assert_int_equal(parse(&ba_synth_option_table, "max-r", "1", &s, &err), BA_ERR_USAGE);
    assert_int_equal(parse(&ba_synth_option_table, "assoc-share", "0", &s, &err), BA_ERR_USAGE);
    assert_int_equal(parse(&ba_synth_option_table, "tr", "0", &s, &err), BA_ERR_USAGE);
    assert_string_equal(err.message, "[synth] key 0 must be a finite number > 0");
    assert_int_equal(parse(&ba_compare_option_table, "permutations", "0", &c, &err),
                     BA_ERR_USAGE);
    assert_int_equal(parse(&ba_compare_option_table, "bootstrap", "1", &c, &err), BA_ERR_USAGE);
    assert_string_equal(err.message, "[synth] key 1 must be a whole number >= 2");
}

/* Every option of the synth and compare tables: its default and a value of its own print
 * as text that parses back to the same value. */
static void test_format_reads_back(void **state)
{
    (void)state;
    /* a value for each option name of the synth and compare tables */
    static const char *const VALUES[][2] = {
        {"stories", "7"},          {"words", "99"},        {"subjects", "11"},
        {"voxels", "12345678901"}, {"regions", "5"},       {"d-model", "48"},
        {"layers", "250"},         {"planted-layer", "0"}, {"delays", "0,3,7"},
        {"tr", "0.1"},             {"max-r", "0.35"},      {"seed", "18446744073709551615"},
        {"assoc-regions", "4,0"},  {"assoc-share", "1e-06"}, {"assoc-every", "2147483647"},
        {"permutations", "3"},     {"bootstrap", "2"},     {"confidence", "0.9"},
        {"fdr", "0.1"},
    };
    unsigned char a[1024], b[1024];
    ba_error err;
    /* (fit's tr and features' stride default to 0, out of their range:
     * "from the data"; test_fit_options.c has those tables) */
    const ba_option_table *tables[] = {&ba_synth_option_table, &ba_compare_option_table};
    for (size_t k = 0; k < 2; k++) {
        const ba_option_table *t = tables[k];
        assert_true(t->size <= sizeof a);
        for (int i = 0; i < t->n_options; i++) {
            const ba_option *o = &t->options[i];
            char text[4096];
            t->defaults(a);
            ba_option_format(o, a, text, sizeof text);
            /* no association regions by default: nothing to spell (the
             * synth task leaves --assoc-* out then) */
            bool none = o->type == BA_OPT_INT_LIST && !text[0] && !(o->flags & BA_OPT_ALWAYS);
            if (!none) {
                t->defaults(b);
                memset(b + o->offset, 0x5a, 1); /* must be overwritten */
                if (ba_option_parse(o, b, text, o->name, &err) != BA_OK)
                    fail_msg("%s --%s: its default '%s': %s", t->stage, o->name, text,
                             err.message);
                if (!ba_option_equal(o, a, b))
                    fail_msg("%s --%s '%s' reads back otherwise", t->stage, o->name, text);
            }
            const char *value = NULL;
            for (size_t v = 0; v < sizeof VALUES / sizeof *VALUES; v++)
                if (!strcmp(VALUES[v][0], o->name)) value = VALUES[v][1];
            if (!value) fail_msg("no test value for --%s", o->name);
            t->defaults(a);
            if (ba_option_parse(o, a, value, o->name, &err) != BA_OK)
                fail_msg("--%s %s: %s", o->name, value, err.message);
            t->defaults(b);
            assert_false(ba_option_equal(o, a, b));
            ba_option_format(o, a, text, sizeof text);
            assert_string_equal(text, value);
            assert_int_equal(ba_option_parse(o, b, text, o->name, &err), BA_OK);
            assert_true(ba_option_equal(o, a, b));
        }
    }
}

/* One name per table; one option per INI [section] key across every table
 * (study.c takes the first table that knows the key). */
static void test_names_and_keys_unique(void **state)
{
    (void)state;
    for (size_t k = 0; k < N_TABLES; k++) {
        const ba_option_table *t = TABLES[k];
        for (int i = 0; i < t->n_options; i++) {
            const ba_option *o = &t->options[i];
            assert_ptr_equal(ba_option_find(t, o->name), o);
            assert_non_null(o->help);
            assert_non_null(o->group);
            if (!o->section) continue;
            assert_non_null(o->key);
            for (size_t m = 0; m < N_TABLES; m++) {
                const ba_option *same = ba_option_find_key(TABLES[m], o->section, o->key);
                if (same && same != o)
                    fail_msg("[%s] %s: in the %s and %s tables", o->section, o->key, t->stage,
                             TABLES[m]->stage);
            }
        }
    }
    /* the keys `run` has always read */
    const char *synth_keys[] = {"stories", "words", "subjects", "voxels", "regions", "d_model",
                                "layers", "planted_layer", "seed", "max_r", "tr", "associations",
                                "association_share", "association_every"};
    for (size_t i = 0; i < sizeof synth_keys / sizeof *synth_keys; i++)
        if (!ba_option_find_key(&ba_synth_option_table, "synth", synth_keys[i]))
            fail_msg("no [synth] %s", synth_keys[i]);
    const char *compare_keys[] = {"permutations", "bootstrap", "confidence", "fdr", "seed"};
    for (size_t i = 0; i < 5; i++)
        if (!ba_option_find_key(&ba_compare_option_table, "compare", compare_keys[i]))
            fail_msg("no [compare] %s", compare_keys[i]);
}

/* "(default X)" in a help text: X parses to the table's default. */
static void test_help_states_the_defaults(void **state)
{
    (void)state;
    const ba_option_table *t2[] = {&ba_synth_option_table, &ba_compare_option_table};
    unsigned char a[1024], b[1024];
    ba_error err;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < t2[k]->n_options; i++) {
            const ba_option *o = &t2[k]->options[i];
            const char *d = strstr(o->help, "(default ");
            t2[k]->defaults(a);
            if (!d && o->type == BA_OPT_INT_LIST && *(const int *)(a + o->count_offset) == 0)
                continue; /* none by default: --assoc-regions */
            if (!d) fail_msg("--%s: its help states no default", o->name);
            char text[64];
            snprintf(text, sizeof text, "%s", d + strlen("(default "));
            char *close = strchr(text, ')');
            assert_non_null(close);
            *close = '\0';
            t2[k]->defaults(b);
            memset(b + o->offset, 0, 1);
            if (o->type == BA_OPT_INT_LIST) *(int *)(b + o->count_offset) = 0;
            if (ba_option_parse(o, b, text, o->name, &err) != BA_OK)
                fail_msg("--%s: '(default %s)': %s", o->name, text, err.message);
            if (!ba_option_equal(o, a, b)) fail_msg("--%s: help says default %s", o->name, text);
        }
    /* the help lines line up with the rest of the commands' help (column 23) */
    char buf[4096] = "";
    FILE *out = fmemopen(buf, sizeof buf, "w");
    assert_non_null(out);
    ba_option_help(&ba_compare_option_table, "statistics", out);
    fclose(out);
    assert_string_equal(buf, "  --permutations N     sign-flip permutations (default 100000)\n"
                             "  --bootstrap N        bootstrap resamples (default 10000)\n"
                             "  --confidence C       interval level (default 0.95)\n"
                             "  --fdr Q              significance threshold on q (default 0.05)\n"
                             "  --seed S             random seed (default 2025)\n");
}

/* import: the TR is required (no default: 0 is refused by the import),
 * trimming is a whole number of TRs >= 0 that a long holds, and the help
 * keeps the layout of the rest of `import --help`. */
static void test_import_table(void **state)
{
    (void)state;
    const ba_option_table *t = &ba_import_option_table;
    ba_import_options o;
    ba_error err;
    const char *bad_trims[] = {"-1", "9223372036854775808", "1.5", "", "3 "};
    for (size_t i = 0; i < sizeof bad_trims / sizeof *bad_trims; i++) {
        assert_int_equal(parse(t, "trim-start", bad_trims[i], &o, &err), BA_ERR_USAGE);
        assert_int_equal(parse(t, "trim-end", bad_trims[i], &o, &err), BA_ERR_USAGE);
        assert_true(o.trim_end == 0);
    }
    assert_int_equal(parse(t, "trim-end", "4294967297", &o, &err), BA_OK);
    assert_true(o.trim_end == 4294967297L);
    const char *bad_trs[] = {"0", "-1", "inf", "nan", "1e400", "x"};
    for (size_t i = 0; i < sizeof bad_trs / sizeof *bad_trs; i++)
        assert_int_equal(parse(t, "tr", bad_trs[i], &o, &err), BA_ERR_USAGE);
    assert_string_equal(err.message, "[synth] key x must be a finite number > 0");
    assert_int_equal(parse(t, "tr", "1.49", &o, &err), BA_OK);
    assert_true(o.tr_s == 1.49);
    char text[64];
    ba_option_format(find(t, "tr"), &o, text, sizeof text);
    assert_string_equal(text, "1.49");
    assert_int_equal(parse(t, "average", "yes", &o, &err), BA_OK);
    assert_true(o.average);
    ba_import_options_defaults(&o);
    assert_true(o.tr_s == 0 && o.trim_start == 0 && !o.average && !o.out_path);
    char buf[4096] = "";
    FILE *out = fmemopen(buf, sizeof buf, "w");
    assert_non_null(out);
    ba_option_help(t, "BOLD", out);
    fclose(out);
    assert_string_equal(buf,
        "  --tr SEC            repetition time (required)\n"
        "  --trim-start N      drop the first N TRs of every story (default 0)\n"
        "  --trim-end M        drop the last M TRs of every story (default 0)\n"
        "  --average           a story given several times (one per subject) is averaged over\n"
        "                      the subjects (all must have its TR count); without it, an error\n");
}

static char *write_ini(const char *text)
{
    size_t n = strlen(ba_test_tmpdir()) + sizeof "/study.ini";
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/study.ini", ba_test_tmpdir());
    ba_test_write_file(p, text, strlen(text));
    return p;
}

/* `run`'s INI keys go through the same tables: a value out of range is an
 * error naming the key and its line. */
static void test_study_keys(void **state)
{
    (void)state;
    static const struct {
        const char *text, *expected;
    } bad[] = {
        {"[synth]\nsubjects = 4294967297\n",
         "study.ini:4: [synth] subjects 4294967297 must be a whole number >= 1"},
        {"[synth]\nstories = 2147483648\n", "[synth] stories 2147483648 must be"},
        {"[synth]\nseed = -1\n", "[synth] seed -1 must be a whole number from 0 to"},
        {"[synth]\nmax_r = 1\n", "[synth] max_r 1 must be a finite number > 0 and < 1"},
        {"[synth]\nassociations = 0,x\n", "[synth] associations"},
        {"[synth]\ndelays = 1\n", "[synth] delays = 1: unknown key"},
        {"[synth]\nstories = 2\n[compare]\nseed = 18446744073709551616\n", "[compare] seed 18446744073709551616 must be"},
        {"[synth]\nstories = 2\n[compare]\nbootstrap = 1\n", "[compare] bootstrap 1 must be a whole number >= 2"},
        {"[synth]\nstories = 2\n[compare]\nfolds = 3\n", "unknown key 'folds' in section [compare]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char text[1024];
        snprintf(text, sizeof text, "[study]\noutput = o\n%s[fit]\nlayers = 1\n", bad[i].text);
        char *path = write_ini(text);
        ba_study_config cfg;
        ba_error err;
        ba_error_clear(&err);
        ba_status rc = ba_study_config_load(path, &cfg, &err);
        ba_study_config_free(&cfg);
        if (rc == BA_OK) fail_msg("case %zu accepted", i);
        if (!strstr(err.message, bad[i].expected))
            fail_msg("case %zu: '%s' lacks '%s'", i, err.message, bad[i].expected);
        free(path);
    }
}

/* The value after `name` in a task's arguments, or NULL. */
static const char *arg(const ba_study_task *t, const char *name)
{
    for (int a = 1; a + 1 < t->argc; a++)
        if (strcmp(t->argv[a], name) == 0) return t->argv[a + 1];
    return NULL;
}

/* The arguments of the synth and compare tasks, read by the stages'
 * tables, give back the options of the configuration. */
static void test_tasks_read_back(void **state)
{
    (void)state;
    char *path = write_ini("[study]\noutput = o\n"
                           "[synth]\nstories = 3\nsubjects = 3\nvoxels = 4294967297\nseed = "
                           "18446744073709551615\nmax_r = 0.35\ntr = 2\nassociations = 0,2\n"
                           "association_share = 0.25\n"
                           "[compare]\npermutations = 7\nconfidence = 0.9\nseed = 0\n"
                           "[fit]\nlayers = 1\n");
    ba_study_config cfg;
    ba_error err;
    ba_error_clear(&err);
    if (ba_study_config_load(path, &cfg, &err) != BA_OK) fail_msg("%s", err.message);
    assert_true(cfg.synth_options.n_voxels == 4294967297L);
    assert_true(cfg.synth_options.seed == UINT64_MAX);
    const struct {
        ba_study_stage stage;
        const char *command;
        const ba_option_table *table;
        const void *expected;
    } cases[] = {
        {BA_STAGE_FEATURES, "synth", &ba_synth_option_table, &cfg.synth_options},
        {BA_STAGE_COMPARE, "compare", &ba_compare_option_table, &cfg.compare},
    };
    for (int c = 0; c < 2; c++) {
        ba_study_task_list list;
        if (ba_study_tasks(&cfg, cases[c].stage, &list, &err) != BA_OK) fail_msg("%s", err.message);
        const ba_study_task *t = NULL;
        for (int i = 0; i < list.n; i++)
            if (!strcmp(list.tasks[i].argv[0], cases[c].command)) t = &list.tasks[i];
        if (!t) fail_msg("no %s task", cases[c].command);
        unsigned char got[1024];
        cases[c].table->defaults(got);
        for (int i = 0; i < cases[c].table->n_options; i++) {
            const ba_option *o = &cases[c].table->options[i];
            char flag[80];
            snprintf(flag, sizeof flag, "--%s", o->name);
            const char *value = arg(t, flag);
            if (!value) fail_msg("the %s task lacks %s", cases[c].command, flag);
            if (ba_option_parse(o, got, value, flag, &err) != BA_OK) fail_msg("%s", err.message);
            if (!ba_option_equal(o, got, cases[c].expected))
                fail_msg("%s %s: not the configuration's value", cases[c].command, flag);
        }
        ba_study_task_list_free(&list);
    }
    ba_study_config_free(&cfg);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_synth_integers_in_range_only),
        cmocka_unit_test(test_seeds_and_open_bounds),
        cmocka_unit_test(test_format_reads_back),
        cmocka_unit_test(test_names_and_keys_unique),
        cmocka_unit_test(test_help_states_the_defaults),
        cmocka_unit_test(test_import_table),
        cmocka_unit_test(test_study_keys),
        cmocka_unit_test(test_tasks_read_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
