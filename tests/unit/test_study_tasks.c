/* test_study_tasks.c — a study cut into array-job tasks (study_tasks.h):
 * the task lists of every kind of configuration, the options of a fit task
 * read back with the parsers `fit` uses, shell quoting checked by
 * /bin/sh itself, output directories, and collecting hand-written scores
 * files into tables and summary.md (values computed here by hand). */
#define _XOPEN_SOURCE 700 /* realpath */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "test_util.h"
#include "brainalign/pipeline/design.h"
#include "brainalign/io/h5io.h"
#include "brainalign/pipeline/fit_options.h"
#include "brainalign/study/plan.h"
#include "brainalign/study/study_tasks.h"

static void write_text(const char *path, const char *text)
{
    ba_test_write_file(path, text, strlen(text));
}

static void load(const char *path, ba_study_config *cfg)
{
    ba_error err;
    ba_error_clear(&err);
    if (ba_study_config_load(path, cfg, &err) != BA_OK) fail_msg("%s", err.message);
}

static void tasks_of(const ba_study_config *cfg, ba_study_stage stage, ba_study_task_list *list)
{
    ba_error err;
    ba_error_clear(&err);
    if (ba_study_tasks(cfg, stage, list, &err) != BA_OK) fail_msg("%s", err.message);
}

/* The value after option `name` in a task, or NULL. */
static const char *option(const ba_study_task *t, const char *name)
{
    for (int a = 1; a + 1 < t->argc; a++)
        if (strcmp(t->argv[a], name) == 0) return t->argv[a + 1];
    return NULL;
}

static bool has_flag(const ba_study_task *t, const char *name)
{
    for (int a = 1; a < t->argc; a++)
        if (strcmp(t->argv[a], name) == 0) return true;
    return false;
}

static const char *SYNTH_INI =
    "[study]\nname = demo\noutput = out\n"
    "[synth]\nstories = 3\nwords = 500\nsubjects = 3\nvoxels = 90\nregions = 3\n"
    "d_model = 16\nlayers = 4\nplanted_layer = 2\nseed = 7\nmax_r = 0.35\ntr = 2\n"
    "[fit]\nlayers = 1,3\n"
    "[cv]\nalphas = logspace:-1:8:10\n";

static void test_synth_study_stages(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char ini[4096], expect[4096];
    snprintf(ini, sizeof ini, "%s/study.ini", dir);
    write_text(ini, SYNTH_INI);
    ba_study_config cfg;
    load(ini, &cfg);

    ba_study_task_list list;
    tasks_of(&cfg, BA_STAGE_FEATURES, &list);
    assert_int_equal(list.n, 1);
    const ba_study_task *t = &list.tasks[0];
    assert_string_equal(t->argv[0], "synth");
    snprintf(expect, sizeof expect, "%s/out/synth", dir);
    assert_string_equal(option(t, "--out"), expect);
    assert_string_equal(t->output, expect);
    assert_string_equal(option(t, "--stories"), "3");
    assert_string_equal(option(t, "--words"), "500");
    assert_string_equal(option(t, "--subjects"), "3");
    assert_string_equal(option(t, "--voxels"), "90");
    assert_string_equal(option(t, "--regions"), "3");
    assert_string_equal(option(t, "--d-model"), "16");
    assert_string_equal(option(t, "--layers"), "4");
    assert_string_equal(option(t, "--planted-layer"), "2");
    assert_string_equal(option(t, "--seed"), "7");
    assert_string_equal(option(t, "--max-r"), "0.35");
    assert_string_equal(option(t, "--tr"), "2");
    assert_string_equal(option(t, "--delays"), "1,2,3,4,5");
    ba_study_task_list_free(&list);

    /* fit: subject-major, then layer, as `run` goes. */
    tasks_of(&cfg, BA_STAGE_FIT, &list);
    assert_int_equal(list.n, 6);
    const char *labels[6] = {"sub-01/baseline/layer-1", "sub-01/baseline/layer-3",
                             "sub-02/baseline/layer-1", "sub-02/baseline/layer-3",
                             "sub-03/baseline/layer-1", "sub-03/baseline/layer-3"};
    for (int i = 0; i < 6; i++) {
        t = &list.tasks[i];
        assert_string_equal(t->label, labels[i]);
        assert_string_equal(t->argv[0], "fit");
        char subject[8];
        snprintf(subject, sizeof subject, "sub-0%d", i / 2 + 1);
        int layer = i % 2 ? 3 : 1;
        snprintf(expect, sizeof expect, "%s/out/scores/%s/layer-%d.h5", dir, subject, layer);
        assert_string_equal(t->output, expect);
        assert_string_equal(option(t, "--out"), expect);
        snprintf(expect, sizeof expect, "%s/out/synth/bold-%s.h5", dir, subject);
        assert_string_equal(option(t, "--bold"), expect);
        snprintf(expect, sizeof expect, "%s/out/synth/features.h5", dir);
        assert_string_equal(option(t, "--features"), expect);
        snprintf(expect, sizeof expect, "%s/out/synth/atlas.h5", dir);
        assert_string_equal(option(t, "--atlas"), expect);
        snprintf(expect, sizeof expect, "%d", layer);
        assert_string_equal(option(t, "--layer"), expect);
    }
    /* The alphas read back, with fit's own parser, to exactly the alphas
     * of the configuration. */
    double alphas[BA_MAX_ALPHAS];
    int n_alphas = 0;
    ba_error err;
    assert_int_equal(ba_parse_alphas(option(&list.tasks[0], "--alphas"), alphas, BA_MAX_ALPHAS,
                                     &n_alphas, &err), BA_OK);
    assert_int_equal(n_alphas, cfg.fit.n_alphas);
    for (int i = 0; i < n_alphas; i++) assert_true(alphas[i] == cfg.fit.alphas[i]);
    assert_string_equal(option(&list.tasks[0], "--alphas"),
                        "0.1,1,10,100,1000,10000,100000,1000000,10000000,100000000");
    assert_null(option(&list.tasks[0], "--tr"));          /* from bold.h5 */
    assert_null(option(&list.tasks[0], "--voxel-block")); /* fit's default */
    assert_false(has_flag(&list.tasks[0], "--story-folds"));
    ba_study_task_list_free(&list);

    tasks_of(&cfg, BA_STAGE_COMPARE, &list);
    assert_int_equal(list.n, 1);
    t = &list.tasks[0];
    assert_int_equal(t->argc, 3);
    assert_string_equal(t->argv[0], "tasks");
    char real[4096];
    assert_non_null(realpath(ini, real));
    assert_string_equal(t->argv[1], real);
    assert_string_equal(t->argv[2], "--collect");
    snprintf(expect, sizeof expect, "%s/out/summary.md", dir);
    assert_string_equal(t->output, expect);
    ba_study_task_list_free(&list);
    ba_study_config_free(&cfg);
}

/* A ready features file: no features task; every fit option of the
 * configuration reaches the fit command. */
static void test_features_file_study_options(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char ini[4096];
    snprintf(ini, sizeof ini, "%s/study.ini", dir);
    write_text(ini,
               "[study]\noutput = /abs/out\ncondition = assoc\n"
               "[features]\npath = feats/gpt2.h5\n"
               "[fit]\nlayers = 9\n"
               "[bold]\nsubjects = s1, s2\npath = bold/{subject}/bold.h5\ntr = 1.5\n"
               "[atlas]\npath = /data/atlas.h5\n"
               "[alignment]\naggregate = lanczos\ntr_offset = -0.3\ndelays = 2..4\n"
               "[cv]\nfolds = 4\nalphas = 0.5,3,1e6\nstory_folds = yes\nfold_groups = 2\n"
               "voxel_block = 256\n");
    ba_study_config cfg;
    load(ini, &cfg);
    ba_study_task_list list;
    tasks_of(&cfg, BA_STAGE_FEATURES, &list);
    assert_int_equal(list.n, 0);
    ba_study_task_list_free(&list);

    tasks_of(&cfg, BA_STAGE_FIT, &list);
    assert_int_equal(list.n, 2);
    const ba_study_task *t = &list.tasks[1];
    char expect[4096];
    assert_string_equal(t->label, "s2/assoc/layer-9");
    snprintf(expect, sizeof expect, "%s/feats/gpt2.h5", dir);
    assert_string_equal(option(t, "--features"), expect);
    snprintf(expect, sizeof expect, "%s/bold/s2/bold.h5", dir);
    assert_string_equal(option(t, "--bold"), expect);
    assert_string_equal(option(t, "--atlas"), "/data/atlas.h5");
    assert_string_equal(option(t, "--out"), "/abs/out/scores/s2/layer-9.h5");
    assert_string_equal(option(t, "--aggregate"), "lanczos");
    assert_string_equal(option(t, "--tr-offset"), "-0.3");
    assert_string_equal(option(t, "--tr"), "1.5");
    assert_string_equal(option(t, "--delays"), "2,3,4");
    assert_string_equal(option(t, "--folds"), "4");
    assert_string_equal(option(t, "--alphas"), "0.5,3,1000000");
    assert_true(has_flag(t, "--story-folds"));
    assert_string_equal(option(t, "--fold-groups"), "2");
    assert_string_equal(option(t, "--voxel-block"), "256");
    ba_study_task_list_free(&list);
    ba_study_config_free(&cfg);
}

/* A [model] study extracts into OUTPUT/features/<condition>.h5, which the
 * fits then read. */
static void test_model_study_features_task(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char ini[4096];
    snprintf(ini, sizeof ini, "%s/study.ini", dir);
    write_text(ini,
               "[study]\noutput = /o\ncondition = baseline\n"
               "[model]\npath = /models/gpt2\ncontext = 512\nstride = 128\nbos = no\n"
               "[stimuli]\ndir = /stim\nformat = textgrid\nstories = pieman,tunnel\n"
               "[fit]\nlayers = 6,9,12\n"
               "[bold]\nsubjects = sub-01\npath = /bold/{subject}.h5\n");
    ba_study_config cfg;
    load(ini, &cfg);
    ba_study_task_list list;
    tasks_of(&cfg, BA_STAGE_FEATURES, &list);
    assert_int_equal(list.n, 1);
    const ba_study_task *t = &list.tasks[0];
    assert_string_equal(t->argv[0], "features");
    assert_string_equal(option(t, "--model"), "/models/gpt2");
    assert_string_equal(option(t, "--stimuli"), "/stim");
    assert_string_equal(option(t, "--format"), "textgrid");
    assert_string_equal(option(t, "--stories"), "pieman,tunnel");
    assert_string_equal(option(t, "--layers"), "6,9,12");
    assert_string_equal(option(t, "--context"), "512");
    assert_string_equal(option(t, "--stride"), "128");
    assert_string_equal(option(t, "--bos"), "no");
    assert_string_equal(option(t, "--condition"), "baseline");
    assert_string_equal(option(t, "--out"), "/o/features/baseline.h5");
    assert_false(has_flag(t, "--matmul")); /* the default (f32) is not spelled out */
    ba_study_task_list_free(&list);
    tasks_of(&cfg, BA_STAGE_FIT, &list);
    assert_int_equal(list.n, 3);
    assert_string_equal(option(&list.tasks[2], "--features"), "/o/features/baseline.h5");
    assert_string_equal(option(&list.tasks[2], "--layer"), "12");
    ba_study_task_list_free(&list);
    ba_study_config_free(&cfg);
}

/* [model] matmul = bf16 reaches the features task as --matmul bf16; other
 * values are refused when the file is read. */
static void test_model_study_matmul(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char ini[4096];
    snprintf(ini, sizeof ini, "%s/study.ini", dir);
    const char *rest = "[stimuli]\ndir = /stim\n[fit]\nlayers = 14\n"
                       "[bold]\nsubjects = sub-01\npath = /bold/{subject}.h5\n";
    char text[1024];
    snprintf(text, sizeof text, "[study]\noutput = /o\n[model]\npath = /models/llama\n"
             "matmul = bf16\n%s", rest);
    write_text(ini, text);
    ba_study_config cfg;
    load(ini, &cfg);
    assert_int_equal(cfg.features.matmul, BA_MATMUL_BF16);
    ba_study_task_list list;
    tasks_of(&cfg, BA_STAGE_FEATURES, &list);
    assert_int_equal(list.n, 1);
    assert_string_equal(option(&list.tasks[0], "--matmul"), "bf16");
    ba_study_task_list_free(&list);
    ba_study_config_free(&cfg);

    snprintf(text, sizeof text, "[study]\noutput = /o\n[model]\npath = /models/llama\n"
             "matmul = fp8\n%s", rest);
    write_text(ini, text);
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(ba_study_config_load(ini, &cfg, &err), BA_ERR_USAGE);
    assert_non_null(strstr(err.message, "[model] matmul: matrix products are f32 or bf16"));
    ba_study_config_free(&cfg);
}

static void test_stage_names(void **state)
{
    (void)state;
    ba_study_stage s;
    ba_error err;
    assert_int_equal(ba_study_stage_parse("fit", &s, &err), BA_OK);
    assert_int_equal(s, BA_STAGE_FIT);
    assert_int_equal(ba_study_stage_parse("compare", &s, &err), BA_OK);
    assert_string_equal(ba_study_stage_name(s), "compare");
    assert_int_equal(ba_study_stage_parse("fits", &s, &err), BA_ERR_USAGE);
    assert_non_null(strstr(err.message, "'fits'"));
}

/* /bin/sh splits the line back into exactly the arguments. */
static void test_shell_line_round_trip(void **state)
{
    (void)state;
    const char *args[] = {"fit", "--bold", "/data/it's here/b.h5", "plain-1.5,2:x/y@z%",
                          "a b\tc", "$HOME `x` \"q\" \\", "", "*"};
    ba_study_task t = {.label = "test", .argc = 8};
    for (int a = 0; a < 8; a++) t.argv[a] = strdup(args[a]);
    char line[4096];
    ba_error err;
    assert_int_equal(ba_study_task_shell_line(&t, line, sizeof line, &err), BA_OK);
    assert_non_null(strstr(line, "fit --bold "));  /* safe words stay bare */

    const char *dir = ba_test_tmpdir();
    char script[4096], out[4096];
    snprintf(script, sizeof script, "%s/split.sh", dir);
    snprintf(out, sizeof out, "%s/args.txt", dir);
    size_t size = strlen(line) + strlen(out) + 256;
    char *text = malloc(size);
    snprintf(text, size, "cd /\nfor a in %s; do printf '[%%s]\\n' \"$a\"; done > '%s'\n", line, out);
    write_text(script, text);
    free(text);
    assert_int_equal(ba_test_system("/bin/sh '%s'", script), 0);
    size_t len = 0;
    char *got = ba_test_read_file(out, &len);
    char expect[1024] = "";
    for (int a = 0; a < 8; a++) {
        strcat(expect, "[");
        strcat(expect, args[a]);
        strcat(expect, "]\n");
    }
    assert_string_equal(got, expect);
    free(got);

    /* Too small a buffer, and a newline, are errors, not a cut line. */
    assert_int_equal(ba_study_task_shell_line(&t, line, 12, &err), BA_ERR_USAGE);
    free(t.argv[4]);
    t.argv[4] = strdup("two\nlines");
    assert_int_equal(ba_study_task_shell_line(&t, line, sizeof line, &err), BA_ERR_USAGE);
    assert_non_null(strstr(err.message, "newline"));
    for (int a = 0; a < 8; a++) free(t.argv[a]);
}

static void test_prepare_makes_directories(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    ba_study_task t = {.label = "x"};
    snprintf(t.output, sizeof t.output, "%s/a/b/c/layer-1.h5", dir);
    ba_error err;
    assert_int_equal(ba_study_task_prepare(&t, &err), BA_OK);
    assert_int_equal(ba_study_task_prepare(&t, &err), BA_OK); /* again: fine */
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/a/b/c", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    snprintf(path, sizeof path, "%s/a/b/c/layer-1.h5", dir);
    assert_int_not_equal(stat(path, &st), 0);
    /* A file in the way. */
    snprintf(path, sizeof path, "%s/file", dir);
    write_text(path, "x");
    snprintf(t.output, sizeof t.output, "%s/file/sub/out.h5", dir);
    assert_int_equal(ba_study_task_prepare(&t, &err), BA_ERR_IO);
    assert_non_null(strstr(err.message, "file/sub"));
}

/* ------------------------------------------------------------ collect */

static void write_scores(const char *path, const float *r, long n, char **regions,
                         const long long *n_voxels, const double *mean, int n_regions)
{
    ba_h5file f;
    ba_error err;
    ba_error_clear(&err);
    hsize_t dims[1] = {(hsize_t)n}, rdims[1] = {(hsize_t)n_regions};
    ba_status rc = ba_h5_create(&f, path, MPI_COMM_SELF, &err);
    if (rc == BA_OK) rc = ba_h5_write_all(&f, "/r", BA_H5_F32, 1, dims, r, &err);
    if (rc == BA_OK && n_regions > 0) {
        double median[8], sem[8];
        for (int g = 0; g < n_regions; g++) { median[g] = mean[g] + 0.01; sem[g] = 0.001 * (g + 1); }
        rc = ba_h5_write_strings(&f, "/roi/name", regions, (size_t)n_regions, 0, &err);
        if (rc == BA_OK) rc = ba_h5_write_all(&f, "/roi/n_voxels", BA_H5_I64, 1, rdims, n_voxels, &err);
        if (rc == BA_OK) rc = ba_h5_write_all(&f, "/roi/mean_r", BA_H5_F64, 1, rdims, mean, &err);
        if (rc == BA_OK) rc = ba_h5_write_all(&f, "/roi/median_r", BA_H5_F64, 1, rdims, median, &err);
        if (rc == BA_OK) rc = ba_h5_write_all(&f, "/roi/sem_r", BA_H5_F64, 1, rdims, sem, &err);
    }
    if (rc == BA_OK) rc = ba_h5_close(&f, &err);
    if (rc != BA_OK) fail_msg("%s", err.message);
}

static const char *COLLECT_INI =
    "[study]\nname = collected\noutput = out\n"
    "[features]\npath = f.h5\n[fit]\nlayers = 2,5\n"
    "[bold]\nsubjects = sub-a, sub-b\npath = {subject}.h5\n";

/* Four scores files with known values: r means and region rows land in
 * the CSVs and summary.md in the layout of `run`. */
static void test_collect_writes_tables_and_summary(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char ini[4096], path[4096];
    snprintf(ini, sizeof ini, "%s/study.ini", dir);
    write_text(ini, COLLECT_INI);
    ba_study_config cfg;
    load(ini, &cfg);
    char *regions[2] = {"G_front", "S_temp"};
    long long nv[2] = {3, 1};
    const char *subjects[2] = {"sub-a", "sub-b"};
    int layers[2] = {2, 5};
    for (int s = 0; s < 2; s++)
        for (int l = 0; l < 2; l++) {
            /* mean r = 0.25 + 0.1 s + 0.01 l, exactly in binary-friendly steps */
            float base = 0.25f + 0.1f * (float)s + 0.01f * (float)l;
            float r[4] = {base - 0.125f, base + 0.125f, base - 0.0625f, base + 0.0625f};
            double mean[2] = {0.5 + s, 0.25 + l};
            snprintf(path, sizeof path, "%s/out/scores/%s", dir, subjects[s]);
            assert_int_equal(ba_test_system("mkdir -p '%s'", path), 0);
            snprintf(path, sizeof path, "%s/out/scores/%s/layer-%d.h5", dir, subjects[s], layers[l]);
            write_scores(path, r, 4, regions, nv, mean, 2);
        }
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(ba_study_collect(&cfg, &err), BA_OK);

    size_t len = 0;
    snprintf(path, sizeof path, "%s/out/tables/sub-b-layer-5.csv", dir);
    char *csv = ba_test_read_file(path, &len);
    assert_string_equal(csv, "region,n_voxels,mean_r,median_r,sem\n"
                             "G_front,3,1.500000,1.510000,0.001000\n"
                             "S_temp,1,1.250000,1.260000,0.002000\n");
    free(csv);
    snprintf(path, sizeof path, "%s/out/summary.md", dir);
    char *md = ba_test_read_file(path, &len);
    char expect[8192];
    snprintf(expect, sizeof expect,
             "# collected — brain scores\n\nConfiguration: `%s`, condition `baseline`. Pearson r "
             "on held-out folds (5 folds), mean over voxels.\n\n| fit | mean r |\n| --- | ---: |\n"
             "| sub-a layer 2 | 0.2500 |\n| sub-a layer 5 | 0.2600 |\n"
             "| sub-b layer 2 | 0.3500 |\n| sub-b layer 5 | 0.3600 |\n\n"
             "## Mean r by region\n\n| region | voxels | sub-a layer 2 | sub-a layer 5 | "
             "sub-b layer 2 | sub-b layer 5 |\n| --- | ---: | ---: | ---: | ---: | ---: |\n"
             "| G_front | 3 | 0.5000 | 0.5000 | 1.5000 | 1.5000 |\n"
             "| S_temp | 1 | 0.2500 | 1.2500 | 0.2500 | 1.2500 |\n", ini);
    assert_string_equal(md, expect);
    free(md);
    ba_study_config_free(&cfg);
}

/* A missing fit, a file that is not HDF5, different regions: an error that
 * names the file, and no summary. */
static void test_collect_refuses_incomplete_studies(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char ini[4096], path[4096], summary[4096];
    snprintf(ini, sizeof ini, "%s/study.ini", dir);
    write_text(ini, COLLECT_INI);
    snprintf(summary, sizeof summary, "%s/out/summary.md", dir);
    ba_study_config cfg;
    load(ini, &cfg);
    assert_int_equal(ba_test_system("mkdir -p '%s/out/scores/sub-a' '%s/out/scores/sub-b'", dir, dir), 0);
    char *regions[2] = {"G_front", "S_temp"}, *other[2] = {"G_front", "S_other"};
    long long nv[2] = {1, 1};
    double mean[2] = {0.1, 0.2};
    float r[2] = {0.1f, 0.2f};
    snprintf(path, sizeof path, "%s/out/scores/sub-a/layer-2.h5", dir);
    write_scores(path, r, 2, regions, nv, mean, 2);
    snprintf(path, sizeof path, "%s/out/scores/sub-a/layer-5.h5", dir);
    write_scores(path, r, 2, regions, nv, mean, 2);
    snprintf(path, sizeof path, "%s/out/scores/sub-b/layer-2.h5", dir);
    write_scores(path, r, 2, regions, nv, mean, 2);

    ba_error err;
    assert_int_equal(ba_study_collect(&cfg, &err), BA_ERR_IO);
    assert_non_null(strstr(err.message, "sub-b/layer-5.h5"));
    assert_non_null(strstr(err.message, "1 of the 4 fits"));
    struct stat st;
    assert_int_not_equal(stat(summary, &st), 0);

    snprintf(path, sizeof path, "%s/out/scores/sub-b/layer-5.h5", dir);
    write_text(path, "not hdf5");
    assert_int_not_equal(ba_study_collect(&cfg, &err), BA_OK);
    assert_non_null(strstr(err.message, "sub-b/layer-5.h5"));
    assert_int_not_equal(stat(summary, &st), 0);

    remove(path);
    write_scores(path, r, 2, other, nv, mean, 2);
    assert_int_equal(ba_study_collect(&cfg, &err), BA_ERR_SHAPE);
    assert_non_null(strstr(err.message, "sub-b/layer-5.h5:/roi/name"));
    assert_int_not_equal(stat(summary, &st), 0);
    ba_study_config_free(&cfg);
}

/* [model] with [conditions]: one features task per condition that needs
 * extracting (a ready .h5 needs none), with the association options `run`
 * uses; fits of subject x condition x layer into
 * OUTPUT/scores/<condition>/<subject>/layer-<L>.h5 (the layout of study.h);
 * compare: the summary, then `compare` with the [compare] settings. */
static void test_model_study_with_conditions(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char ini[4096];
    snprintf(ini, sizeof ini, "%s/study.ini", dir);
    write_text(ini,
               "[study]\noutput = /o\n"
               "[model]\npath = /models/gpt2\ncontext = 512\n"
               "[stimuli]\ndir = /stim\n"
               "[fit]\nlayers = 6,9\n"
               "[bold]\nsubjects = sub-01, sub-02\npath = /bold/{subject}.h5\n"
               "[atlas]\npath = /atlas.h5\n"
               "[conditions]\nhuman = /assoc/human.jsonl\n"
               "gpt4 = /assoc/gpt4.jsonl\ngpt4.policy = every-k\ngpt4.every = 3\ngpt4.seed = 7\n"
               "mine = /ready/mine.h5\n"
               "[compare]\npermutations = 500\nbootstrap = 200\nconfidence = 0.9\n"
               "fdr = 0.1\nseed = 11\n");
    ba_study_config cfg;
    load(ini, &cfg);

    ba_study_task_list list;
    tasks_of(&cfg, BA_STAGE_FEATURES, &list);
    assert_int_equal(list.n, 3); /* baseline, human, gpt4; mine is ready */
    const char *names[3] = {"baseline", "human", "gpt4"};
    for (int i = 0; i < 3; i++) {
        const ba_study_task *t = &list.tasks[i];
        char out[256];
        snprintf(out, sizeof out, "/o/features/%s.h5", names[i]);
        assert_string_equal(t->argv[0], "features");
        assert_string_equal(option(t, "--condition"), names[i]);
        assert_string_equal(option(t, "--out"), out);
        assert_string_equal(t->output, out);
        assert_string_equal(option(t, "--model"), "/models/gpt2");
        assert_string_equal(option(t, "--layers"), "6,9");
    }
    assert_null(option(&list.tasks[0], "--associations"));
    assert_null(option(&list.tasks[0], "--policy"));
    assert_string_equal(option(&list.tasks[1], "--associations"), "/assoc/human.jsonl");
    assert_string_equal(option(&list.tasks[1], "--policy"), "human");
    assert_string_equal(option(&list.tasks[2], "--associations"), "/assoc/gpt4.jsonl");
    assert_string_equal(option(&list.tasks[2], "--policy"), "every-k");
    assert_string_equal(option(&list.tasks[2], "--every"), "3");
    assert_string_equal(option(&list.tasks[2], "--seed"), "7");
    ba_study_task_list_free(&list);

    /* subject-major, then condition (baseline first), then layer */
    tasks_of(&cfg, BA_STAGE_FIT, &list);
    assert_int_equal(list.n, 2 * 4 * 2);
    const char *conds[4] = {"baseline", "human", "gpt4", "mine"};
    const char *features[4] = {"/o/features/baseline.h5", "/o/features/human.h5",
                               "/o/features/gpt4.h5", "/ready/mine.h5"};
    int layers[2] = {6, 9};
    for (int s = 0, i = 0; s < 2; s++)
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 2; l++, i++) {
                const ba_study_task *t = &list.tasks[i];
                char out[256], bold[64], layer[8];
                snprintf(out, sizeof out, "/o/scores/%s/sub-0%d/layer-%d.h5", conds[c], s + 1,
                         layers[l]);
                snprintf(bold, sizeof bold, "/bold/sub-0%d.h5", s + 1);
                snprintf(layer, sizeof layer, "%d", layers[l]);
                assert_string_equal(t->argv[0], "fit");
                assert_string_equal(option(t, "--out"), out);
                assert_string_equal(t->output, out);
                assert_string_equal(option(t, "--features"), features[c]);
                assert_string_equal(option(t, "--bold"), bold);
                assert_string_equal(option(t, "--layer"), layer);
            }
    ba_study_task_list_free(&list);

    tasks_of(&cfg, BA_STAGE_COMPARE, &list);
    assert_int_equal(list.n, 2);
    assert_string_equal(list.tasks[0].argv[0], "tasks");
    assert_true(has_flag(&list.tasks[0], "--collect"));
    const ba_study_task *t = &list.tasks[1];
    assert_string_equal(t->argv[0], "compare");
    assert_string_equal(option(t, "--study"), "/o");
    assert_string_equal(option(t, "--baseline"), "baseline");
    assert_string_equal(option(t, "--atlas"), "/atlas.h5");
    assert_string_equal(option(t, "--permutations"), "500");
    assert_string_equal(option(t, "--bootstrap"), "200");
    assert_string_equal(option(t, "--confidence"), "0.9");
    assert_string_equal(option(t, "--fdr"), "0.1");
    assert_string_equal(option(t, "--seed"), "11");
    assert_string_equal(option(t, "--out"), "/o/compare");
    ba_study_task_list_free(&list);
    ba_study_config_free(&cfg);
}

/* A condition's sentence pause has no `features` option: the features
 * stage refuses, naming the key, rather than extract something else. */
static void test_condition_pause_is_refused(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char ini[4096];
    snprintf(ini, sizeof ini, "%s/study.ini", dir);
    write_text(ini,
               "[study]\noutput = /o\n[model]\npath = /m\n[stimuli]\ndir = /stim\n"
               "[fit]\nlayers = 1\n[bold]\nsubjects = s\npath = /b.h5\n"
               "[conditions]\nhuman = /h.jsonl\nhuman.pause = 0.8\n");
    ba_study_config cfg;
    load(ini, &cfg);
    ba_study_task_list list;
    ba_error err;
    ba_error_clear(&err);
    assert_int_not_equal(ba_study_tasks(&cfg, BA_STAGE_FEATURES, &list, &err), BA_OK);
    assert_non_null(strstr(err.message, "human.pause"));
    assert_int_equal(list.n, 0);
    ba_study_config_free(&cfg);
}

/* [synth] associations: the one synth task plants the effect, and the
 * conditions "associations" and "random" fit its two extra files. */
static void test_synth_study_with_associations(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char ini[4096], expect[4096];
    snprintf(ini, sizeof ini, "%s/study.ini", dir);
    write_text(ini, "[study]\noutput = /o\n"
                    "[synth]\nsubjects = 2\nregions = 3\nassociations = 0,2\n"
                    "association_share = 0.5\nassociation_every = 3\n"
                    "[fit]\nlayers = 1\n");
    ba_study_config cfg;
    load(ini, &cfg);
    ba_study_task_list list;
    tasks_of(&cfg, BA_STAGE_FEATURES, &list);
    assert_int_equal(list.n, 1);
    assert_string_equal(list.tasks[0].argv[0], "synth");
    assert_string_equal(option(&list.tasks[0], "--assoc-regions"), "0,2");
    assert_string_equal(option(&list.tasks[0], "--assoc-share"), "0.5");
    assert_string_equal(option(&list.tasks[0], "--assoc-every"), "3");
    ba_study_task_list_free(&list);

    tasks_of(&cfg, BA_STAGE_FIT, &list);
    assert_int_equal(list.n, 2 * 3);
    const char *conds[3] = {"baseline", "associations", "random"};
    const char *features[3] = {"/o/synth/features.h5", "/o/synth/features-associations.h5",
                               "/o/synth/features-random.h5"};
    for (int s = 0, i = 0; s < 2; s++)
        for (int c = 0; c < 3; c++, i++) {
            snprintf(expect, sizeof expect, "/o/scores/%s/sub-0%d/layer-1.h5", conds[c], s + 1);
            assert_string_equal(option(&list.tasks[i], "--out"), expect);
            assert_string_equal(option(&list.tasks[i], "--features"), features[c]);
            snprintf(expect, sizeof expect, "/o/synth/bold-sub-0%d.h5", s + 1);
            assert_string_equal(option(&list.tasks[i], "--bold"), expect);
        }
    ba_study_task_list_free(&list);
    tasks_of(&cfg, BA_STAGE_COMPARE, &list);
    assert_int_equal(list.n, 2);
    assert_string_equal(option(&list.tasks[1], "--atlas"), "/o/synth/atlas.h5");
    ba_study_task_list_free(&list);
    ba_study_config_free(&cfg);
}

/* Collecting a study with conditions: tables
 * OUTPUT/tables/<condition>-<subject>-layer-<L>.csv and the summary rows
 * "<condition> <subject> layer <L>", the baseline first, as `run` writes. */
static void test_collect_with_conditions(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char ini[4096], path[4096];
    snprintf(ini, sizeof ini, "%s/study.ini", dir);
    write_text(ini, "[study]\nname = conds\noutput = out\n"
                    "[features]\npath = f.h5\n[fit]\nlayers = 3\n"
                    "[bold]\nsubjects = sub-a\npath = {subject}.h5\n"
                    "[conditions]\nmine = mine.h5\n");
    ba_study_config cfg;
    load(ini, &cfg);
    char *regions[1] = {"G_front"};
    long long nv[1] = {2};
    const char *conds[2] = {"baseline", "mine"};
    for (int c = 0; c < 2; c++) {
        float r[2] = {0.25f + 0.5f * (float)c, 0.25f};
        double mean[1] = {0.125 * (c + 1)};
        snprintf(path, sizeof path, "%s/out/scores/%s/sub-a", dir, conds[c]);
        assert_int_equal(ba_test_system("mkdir -p '%s'", path), 0);
        snprintf(path, sizeof path, "%s/out/scores/%s/sub-a/layer-3.h5", dir, conds[c]);
        write_scores(path, r, 2, regions, nv, mean, 1);
    }
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(ba_study_collect(&cfg, &err), BA_OK);
    size_t len = 0;
    snprintf(path, sizeof path, "%s/out/tables/mine-sub-a-layer-3.csv", dir);
    char *csv = ba_test_read_file(path, &len);
    assert_string_equal(csv, "region,n_voxels,mean_r,median_r,sem\n"
                             "G_front,2,0.250000,0.260000,0.001000\n");
    free(csv);
    snprintf(path, sizeof path, "%s/out/tables/baseline-sub-a-layer-3.csv", dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    snprintf(path, sizeof path, "%s/out/tables/sub-a-layer-3.csv", dir);
    assert_int_not_equal(stat(path, &st), 0);
    snprintf(path, sizeof path, "%s/out/summary.md", dir);
    char *md = ba_test_read_file(path, &len);
    char expect[8192];
    snprintf(expect, sizeof expect,
             "# conds — brain scores\n\nConfiguration: `%s`, condition `baseline`. Pearson r "
             "on held-out folds (5 folds), mean over voxels.\n\n| fit | mean r |\n| --- | ---: |\n"
             "| baseline sub-a layer 3 | 0.2500 |\n| mine sub-a layer 3 | 0.5000 |\n\n"
             "## Mean r by region\n\n| region | voxels | baseline sub-a layer 3 | "
             "mine sub-a layer 3 |\n| --- | ---: | ---: | ---: |\n"
             "| G_front | 2 | 0.1250 | 0.2500 |\n", ini);
    assert_string_equal(md, expect);
    free(md);
    ba_study_config_free(&cfg);
}

/* ------------------------------------------------------------ option table */

/* Every fit key of the INI file at a value other than its default: the fit
 * task spells them so that `fit`'s own table reads back exactly the
 * configuration's values, and nothing else. */
static void test_fit_task_reads_back_every_option(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char ini[4096];
    snprintf(ini, sizeof ini, "%s/study.ini", dir);
    write_text(ini,
               "[study]\noutput = /o\n[features]\npath = /f.h5\n[fit]\nlayers = 3\n"
               "[bold]\nsubjects = s1\npath = /b.h5\ntr = 0.75\n"
               "[alignment]\naggregate = mean\ntr_offset = 0.1\ndelays = 0,2,9\n"
               "[cv]\nfolds = 3\nalphas = 0.1,7,1e-07\nstory_folds = true\nfold_groups = 2\n"
               "voxel_block = 33\ntie_tolerance = 0\nfold_gap = 3\n");
    ba_study_config cfg;
    load(ini, &cfg);
    ba_study_task_list list;
    tasks_of(&cfg, BA_STAGE_FIT, &list);
    assert_int_equal(list.n, 1);
    const ba_study_task *t = &list.tasks[0];
    ba_fit_options back, defaults;
    ba_fit_options_defaults(&back);
    ba_fit_options_defaults(&defaults);
    ba_error err;
    int seen = 0;
    for (int a = 1; a < t->argc; a++) {
        const ba_option *o = ba_option_find(&ba_fit_option_table, t->argv[a] + 2);
        if (!o) { a++; continue; } /* --features, --bold, --layer, --out */
        seen++;
        if (o->type == BA_OPT_FLAG) { *(bool *)((char *)&back + o->offset) = true; continue; }
        assert_true(a + 1 < t->argc);
        if (ba_option_parse(o, &back, t->argv[a + 1], t->argv[a], &err) != BA_OK)
            fail_msg("%s", err.message);
        a++;
    }
    for (int i = 0; i < ba_fit_option_table.n_options; i++) {
        const ba_option *o = &ba_fit_option_table.options[i];
        if (!ba_option_equal(o, &back, &cfg.fit)) fail_msg("--%s does not read back", o->name);
        /* every INI-keyed option was given a non-default value above */
        if (o->section && ba_option_equal(o, &cfg.fit, &defaults)) fail_msg("[%s] %s unset", o->section, o->key);
    }
    assert_int_equal(seen, 11); /* all but --block-size, which has no INI key */
    assert_string_equal(option(t, "--tie-tolerance"), "0");
    assert_string_equal(option(t, "--delays"), "0,2,9");
    assert_string_equal(option(t, "--alphas"), "0.1,7,1e-07");
    ba_study_task_list_free(&list);
    ba_study_config_free(&cfg);
}

/* Integers parse into their own type: 2^32 + 5 folds is an error naming
 * the file, line and key (it used to run 5 folds). */
static void test_ini_integer_out_of_range(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char ini[4096];
    snprintf(ini, sizeof ini, "%s/study.ini", dir);
    const char *cases[][2] = {
        {"folds = 4294967301", "study.ini:8: [cv] folds 4294967301 must be a whole number >= 2"},
        {"fold_groups = 4294967297", "study.ini:8: [cv] fold_groups 4294967297 must be"},
        {"voxel_block = 99999999999999999999", "study.ini:8: [cv] voxel_block"},
        {"folds = 1", "study.ini:8: [cv] folds 1 must be a whole number >= 2"},
        {"tie_tolerance = -1", "study.ini:8: [cv] tie_tolerance"},
    };
    /* and a [model] key from the features table */
    write_text(ini, "[study]\noutput = o\n[model]\npath = /m\ncontext = 99999999999999999999\n");
    ba_study_config model;
    ba_error model_err;
    assert_int_equal(ba_study_config_load(ini, &model, &model_err), BA_ERR_USAGE);
    assert_non_null(strstr(model_err.message, "study.ini:5: [model] context 99999999999999999999 must be a whole number >= 1"));
    ba_study_config_free(&model);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char text[1024];
        snprintf(text, sizeof text, "[study]\noutput = o\n[synth]\nstories = 2\n[fit]\nlayers = 1\n"
                 "[cv]\n%s\n[alignment]\naggregate = nope\n", cases[i][0]);
        /* the key on line 8; the bad line after it must not take over the message */
        write_text(ini, text);
        ba_study_config cfg;
        ba_error err;
        ba_error_clear(&err);
        assert_int_equal(ba_study_config_load(ini, &cfg, &err), BA_ERR_USAGE);
        if (!strstr(err.message, cases[i][1])) fail_msg("'%s': %s", cases[i][0], err.message);
        ba_study_config_free(&cfg);
    }
}

/* ------------------------------------------------------------ the plan */

static void test_plan_layout(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char ini[4096];
    snprintf(ini, sizeof ini, "%s/study.ini", dir);
    write_text(ini,
               "[study]\noutput = /o\ncondition = base\n[features]\npath = /f.h5\n"
               "[fit]\nlayers = 4,8\n[bold]\nsubjects = s1, s2\npath = /b/{subject}.h5\n");
    ba_study_config cfg;
    load(ini, &cfg);
    ba_study_plan plan;
    ba_error err;
    assert_int_equal(ba_study_plan_build(&cfg, &plan, &err), BA_OK);
    assert_null(plan.synth_dir);
    assert_false(plan.compare);
    assert_int_equal(plan.n_conditions, 1);
    assert_false(plan.conditions[0].extract);
    assert_string_equal(plan.conditions[0].features, "/f.h5");
    assert_int_equal(plan.n_fits, 4);
    const ba_plan_fit *f = ba_study_plan_fit(&plan, 0, 1, 0);
    assert_ptr_equal(f, &plan.fits[2]); /* subject-major within a condition */
    assert_string_equal(f->bold, "/b/s2.h5");
    assert_string_equal(f->scores, "/o/scores/s2/layer-4.h5");
    assert_string_equal(f->table, "/o/tables/s2-layer-4.csv");
    assert_string_equal(f->label, "s2 layer 4");
    assert_string_equal(f->task_label, "s2/base/layer-4");
    assert_string_equal(plan.summary, "/o/summary.md");
    char command[4200];
    snprintf(command, sizeof command, "brainalign run %s", ini);
    assert_string_equal(plan.command, command);
    ba_study_plan_free(&plan);
    ba_study_config_free(&cfg);

    /* with conditions: the condition in every name, the baseline first */
    write_text(ini,
               "[study]\noutput = /o\n[model]\npath = /m\n[stimuli]\ndir = /s\n"
               "[fit]\nlayers = 2\n[bold]\nsubjects = a\npath = /b.h5\n"
               "[conditions]\nmine = /ready.h5\nhuman = /h.jsonl\n");
    load(ini, &cfg);
    assert_int_equal(ba_study_plan_build(&cfg, &plan, &err), BA_OK);
    assert_true(plan.compare);
    assert_int_equal(plan.n_conditions, 3);
    assert_string_equal(plan.conditions[0].name, "baseline");
    assert_true(plan.conditions[0].extract);
    assert_string_equal(plan.conditions[0].features, "/o/features/baseline.h5");
    assert_false(plan.conditions[1].extract);
    assert_string_equal(plan.conditions[1].features, "/ready.h5");
    assert_true(plan.conditions[2].extract);
    assert_string_equal(plan.conditions[2].features, "/o/features/human.h5");
    f = ba_study_plan_fit(&plan, 2, 0, 0);
    assert_string_equal(f->scores, "/o/scores/human/a/layer-2.h5");
    assert_string_equal(f->table, "/o/tables/human-a-layer-2.csv");
    assert_string_equal(f->label, "human a layer 2");
    assert_string_equal(f->task_label, "a/human/layer-2");
    assert_string_equal(plan.compare_prefix, "/o/compare");
    ba_study_plan_free(&plan);
    ba_study_config_free(&cfg);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_synth_study_stages),
        cmocka_unit_test(test_features_file_study_options),
        cmocka_unit_test(test_model_study_features_task),
        cmocka_unit_test(test_model_study_matmul),
        cmocka_unit_test(test_stage_names),
        cmocka_unit_test(test_shell_line_round_trip),
        cmocka_unit_test(test_prepare_makes_directories),
        cmocka_unit_test(test_collect_writes_tables_and_summary),
        cmocka_unit_test(test_collect_refuses_incomplete_studies),
        cmocka_unit_test(test_model_study_with_conditions),
        cmocka_unit_test(test_condition_pause_is_refused),
        cmocka_unit_test(test_synth_study_with_associations),
        cmocka_unit_test(test_collect_with_conditions),
        cmocka_unit_test(test_fit_task_reads_back_every_option),
        cmocka_unit_test(test_ini_integer_out_of_range),
        cmocka_unit_test(test_plan_layout),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    MPI_Finalize();
    return failed;
}
