/* study_tasks.c — a study configuration cut into independent tasks for
 * array jobs, and the collection of their outputs (see study_tasks.h). */
#define _XOPEN_SOURCE 700 /* realpath */
#include "brainalign/study/study_tasks.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "brainalign/io/h5io.h"

/* ------------------------------------------------------------ stages */

static const char *const STAGE_NAMES[] = {"features", "fit", "compare"};

ba_status ba_study_stage_parse(const char *name, ba_study_stage *stage, ba_error *err)
{
    for (int s = 0; s < 3; s++)
        if (name && strcmp(name, STAGE_NAMES[s]) == 0) {
            *stage = (ba_study_stage)s;
            return BA_OK;
        }
    return ba_fail(err, BA_ERR_USAGE, "stage '%s': expected features, fit or compare",
                   name ? name : "");
}

const char *ba_study_stage_name(ba_study_stage stage)
{
    return (unsigned)stage < 3 ? STAGE_NAMES[stage] : "unknown";
}

/* ------------------------------------------------------------ building tasks */

static ba_status add_arg(ba_study_task *t, ba_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static ba_status add_arg(ba_study_task *t, ba_error *err, const char *fmt, ...)
{
    if (t->argc >= BA_TASK_MAX_ARGS)
        return ba_fail(err, BA_ERR_INTERNAL, "task %s: more than %d arguments", t->label,
                       BA_TASK_MAX_ARGS);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *arg = ba_malloc((size_t)n + 1, "task argument", err);
    if (!arg) return BA_ERR_NOMEM;
    va_start(ap, fmt);
    vsnprintf(arg, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->argv[t->argc++] = arg;
    return BA_OK;
}

/* "--name value" */
#define OPT(t, name, ...) \
    do { BA_CHECK(add_arg(t, err, "%s", name)); BA_CHECK(add_arg(t, err, __VA_ARGS__)); } while (0)

/* "1,2,3" */
static void join_ints(const int *v, int n, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%d", i ? "," : "", v[i]);
}

/* The shortest decimal form that reads back to exactly the same double
 * (0.1, not 0.10000000000000001), without an exponent where one is not
 * needed (100, not 1e+02). */
static void exact_double(double v, char *buf, size_t size)
{
    for (int plain = 1; plain >= 0; plain--)
        for (int digits = 1; digits <= 17; digits++) {
            snprintf(buf, size, "%.*g", digits, v);
            if (strtod(buf, NULL) == v && (!plain || !strchr(buf, 'e'))) return;
        }
}

static void join_doubles(const double *v, int n, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && used < size; i++) {
        char one[32];
        exact_double(v[i], one, sizeof one);
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? "," : "", one);
    }
}

static void substitute_subject(const char *pattern, const char *subject, char *out, size_t size)
{
    const char *at = strstr(pattern, "{subject}");
    if (!at) snprintf(out, size, "%s", pattern);
    else snprintf(out, size, "%.*s%s%s", (int)(at - pattern), pattern, subject, at + 9);
}

/* Conditions are numbered as in `run`: -1 is the baseline ([study]
 * condition), 0.. the [conditions] entries. */
static const char *condition_name(const ba_study_config *cfg, int c)
{
    return c >= 0 ? cfg->conditions[c].name : cfg->condition;
}

/* The part of the output names that tells the condition: empty without a
 * [conditions] section (the plain layout of study.h). */
static const char *condition_prefix(const ba_study_config *cfg, int c)
{
    return cfg->n_conditions == 0 ? "" : condition_name(cfg, c);
}

/* Where the fits of condition c read their features, as `run` decides
 * (study.c condition_features): the condition's own ready file, else a
 * [model] study's OUTPUT/features/<condition>.h5, else the [features] or
 * [synth] file. */
static void features_path(const ba_study_config *cfg, int c, char *out, size_t size)
{
    if (c >= 0 && cfg->conditions[c].features[0])
        snprintf(out, size, "%s", cfg->conditions[c].features);
    else if (cfg->model_dir[0])
        snprintf(out, size, "%s/features/%s.h5", cfg->output_dir, condition_name(cfg, c));
    else snprintf(out, size, "%s", cfg->features_path);
}

static const char *aggregate_name(ba_aggregate a)
{
    return a == BA_AGGREGATE_MEAN ? "mean" : a == BA_AGGREGATE_LANCZOS ? "lanczos" : "sum";
}

static ba_status synth_task(const ba_study_config *cfg, ba_study_task *t, ba_error *err)
{
    const ba_synth_options *o = &cfg->synth_options;
    char list[1024];
    snprintf(t->label, sizeof t->label, "synth/%s", cfg->condition);
    /* the conditions "associations" and "random" of [synth] associations
     * come out of the same generation (synth.h) */
    snprintf(t->output, sizeof t->output, "%s/synth", cfg->output_dir);
    BA_CHECK(add_arg(t, err, "synth"));
    OPT(t, "--out", "%s", t->output);
    if (cfg->synth_stimuli[0]) OPT(t, "--stimuli", "%s", cfg->synth_stimuli);
    OPT(t, "--stories", "%d", o->n_stories);
    OPT(t, "--words", "%ld", o->words_per_story);
    OPT(t, "--subjects", "%d", o->n_subjects);
    OPT(t, "--voxels", "%ld", o->n_voxels);
    OPT(t, "--regions", "%d", o->n_regions);
    OPT(t, "--d-model", "%ld", o->d_model);
    OPT(t, "--layers", "%d", o->n_layers);
    OPT(t, "--planted-layer", "%d", o->planted_layer);
    join_ints(o->delays, o->n_delays, list, sizeof list);
    OPT(t, "--delays", "%s", list);
    char number[32];
    exact_double(o->tr_s, number, sizeof number);
    OPT(t, "--tr", "%s", number);
    exact_double(o->max_r, number, sizeof number);
    OPT(t, "--max-r", "%s", number);
    OPT(t, "--seed", "%llu", (unsigned long long)o->seed);
    if (o->n_assoc_regions > 0) {
        join_ints(o->assoc_regions, o->n_assoc_regions, list, sizeof list);
        OPT(t, "--assoc-regions", "%s", list);
        exact_double(o->assoc_share, number, sizeof number);
        OPT(t, "--assoc-share", "%s", number);
        OPT(t, "--assoc-every", "%d", o->assoc_every);
    }
    return BA_OK;
}

/* The features of condition c (-1: the baseline) of a [model] study, with
 * the options `run` gives ba_features_run (study.c model_features). */
static ba_status model_features_task(const ba_study_config *cfg, int c, ba_study_task *t,
                                     ba_error *err)
{
    const ba_study_condition *k = c >= 0 ? &cfg->conditions[c] : NULL;
    char layers[1024];
    snprintf(t->label, sizeof t->label, "features/%s", condition_name(cfg, c));
    features_path(cfg, c, t->output, sizeof t->output);
    if (k && k->augment.pause_s != BA_SENTENCE_PAUSE_S)
        return ba_fail(err, BA_ERR_USAGE, "%s: [conditions] %s.pause: `brainalign features` has "
                       "no option for it; run this study with `brainalign run`", cfg->path,
                       k->name);
    BA_CHECK(add_arg(t, err, "features"));
    OPT(t, "--model", "%s", cfg->model_dir);
    OPT(t, "--stimuli", "%s", cfg->stimuli_dir);
    OPT(t, "--format", "%s", cfg->stimuli_format);
    if (cfg->stories[0]) OPT(t, "--stories", "%s", cfg->stories);
    join_ints(cfg->layers, cfg->n_layers, layers, sizeof layers);
    OPT(t, "--layers", "%s", layers);
    OPT(t, "--context", "%ld", cfg->context);
    if (cfg->stride > 0) OPT(t, "--stride", "%ld", cfg->stride);
    OPT(t, "--bos", "%s", cfg->bos);
    if (cfg->matmul != BA_MATMUL_F32) OPT(t, "--matmul", "%s", ba_matmul_name(cfg->matmul));
    if (cfg->adapter_dir[0]) OPT(t, "--adapter", "%s", cfg->adapter_dir);
    OPT(t, "--condition", "%s", condition_name(cfg, c));
    if (k) {
        OPT(t, "--associations", "%s", k->associations);
        OPT(t, "--policy", "%s", ba_augment_policy_name(&k->augment));
        OPT(t, "--every", "%d", k->augment.every_k);
        OPT(t, "--seed", "%llu", (unsigned long long)k->augment.seed);
    }
    OPT(t, "--out", "%s", t->output);
    return BA_OK;
}

/* study.c fit_condition: OUTPUT/scores/[<condition>/]<subject>/layer-<L>.h5 */
static void scores_path(const ba_study_config *cfg, int c, int subject, int layer, char *out,
                        size_t size)
{
    const char *cond = condition_prefix(cfg, c);
    snprintf(out, size, "%s/scores/%s%s%s/layer-%d.h5", cfg->output_dir, cond,
             cond[0] ? "/" : "", cfg->subjects[subject], cfg->layers[layer]);
}

/* Every option `run` passes to ba_fit_run, spelled as `fit` reads it. */
static ba_status fit_task(const ba_study_config *cfg, int c, int subject, int layer,
                          ba_study_task *t, ba_error *err)
{
    const ba_fit_config *f = &cfg->fit;
    char path[BA_PATH_MAX], list[BA_MAX_ALPHAS * 26 + 1];
    snprintf(t->label, sizeof t->label, "%s/%s/layer-%d", cfg->subjects[subject],
             condition_name(cfg, c), cfg->layers[layer]);
    scores_path(cfg, c, subject, layer, t->output, sizeof t->output);
    BA_CHECK(add_arg(t, err, "fit"));
    features_path(cfg, c, path, sizeof path);
    OPT(t, "--features", "%s", path);
    substitute_subject(cfg->bold_pattern, cfg->subjects[subject], path, sizeof path);
    OPT(t, "--bold", "%s", path);
    OPT(t, "--layer", "%d", cfg->layers[layer]);
    if (cfg->atlas_path[0]) OPT(t, "--atlas", "%s", cfg->atlas_path);
    join_ints(f->delays, f->design.n_delays, list, sizeof list);
    OPT(t, "--delays", "%s", list);
    OPT(t, "--aggregate", "%s", aggregate_name(f->design.aggregate));
    char number[32];
    exact_double(f->design.tr_offset_s, number, sizeof number);
    OPT(t, "--tr-offset", "%s", number);
    exact_double(cfg->tr_s, number, sizeof number);
    if (cfg->tr_s > 0) OPT(t, "--tr", "%s", number);
    OPT(t, "--folds", "%d", f->ridge.n_folds);
    if (f->story_folds) BA_CHECK(add_arg(t, err, "--story-folds"));
    join_doubles(f->alphas, f->ridge.n_alphas, list, sizeof list);
    OPT(t, "--alphas", "%s", list);
    OPT(t, "--fold-groups", "%d", f->ridge.fold_groups);
    /* 0 leaves fit's own default */
    if (f->ridge.voxel_block > 0) OPT(t, "--voxel-block", "%ld", f->ridge.voxel_block);
    if (f->ridge.block_size > 0) OPT(t, "--block-size", "%d", f->ridge.block_size);
    if (f->ridge.tie_tolerance != 0) {
        exact_double(f->ridge.tie_tolerance > 0 ? f->ridge.tie_tolerance : 0, number, sizeof number);
        OPT(t, "--tie-tolerance", "%s", number);
    }
    OPT(t, "--out", "%s", t->output);
    return BA_OK;
}

static ba_status collect_task(const ba_study_config *cfg, ba_study_task *t, ba_error *err)
{
    /* The job runs in another directory than the one the list was made in. */
    char config[PATH_MAX];
    if (!realpath(cfg->path, config)) snprintf(config, sizeof config, "%s", cfg->path);
    snprintf(t->label, sizeof t->label, "summary");
    snprintf(t->output, sizeof t->output, "%s/summary.md", cfg->output_dir);
    BA_CHECK(add_arg(t, err, "tasks"));
    BA_CHECK(add_arg(t, err, "%s", config));
    BA_CHECK(add_arg(t, err, "--collect"));
    return BA_OK;
}

/* `run`'s last step with [conditions] (study.c compare_conditions): every
 * condition against the baseline, OUTPUT/compare.{csv,md,h5}, with the
 * [compare] settings. `compare --study` reads the scores files of OUTPUT,
 * OUTPUT/scores/<condition>/<subject>/layer-<L>.h5: those of the fit tasks
 * when the directory holds this study only. */
static ba_status compare_task(const ba_study_config *cfg, ba_study_task *t, ba_error *err)
{
    char number[32];
    snprintf(t->label, sizeof t->label, "compare");
    snprintf(t->output, sizeof t->output, "%s/compare.csv", cfg->output_dir);
    BA_CHECK(add_arg(t, err, "compare"));
    OPT(t, "--study", "%s", cfg->output_dir);
    OPT(t, "--baseline", "%s", cfg->condition);
    if (cfg->atlas_path[0]) OPT(t, "--atlas", "%s", cfg->atlas_path);
    OPT(t, "--permutations", "%ld", cfg->compare_permutations);
    OPT(t, "--bootstrap", "%ld", cfg->compare_bootstrap);
    exact_double(cfg->compare_confidence, number, sizeof number);
    OPT(t, "--confidence", "%s", number);
    exact_double(cfg->compare_fdr, number, sizeof number);
    OPT(t, "--fdr", "%s", number);
    OPT(t, "--seed", "%llu", (unsigned long long)cfg->compare_seed);
    OPT(t, "--out", "%s/compare", cfg->output_dir);
    return BA_OK;
}

static ba_status list_grow(ba_study_task_list *list, int capacity, ba_study_task **task,
                           ba_error *err)
{
    if (!list->tasks) {
        list->tasks = ba_calloc((size_t)(capacity > 0 ? capacity : 1), sizeof *list->tasks,
                                "task list", err);
        if (!list->tasks) return BA_ERR_NOMEM;
    }
    *task = &list->tasks[list->n++];
    return BA_OK;
}

ba_status ba_study_tasks(const ba_study_config *cfg, ba_study_stage stage,
                         ba_study_task_list *list, ba_error *err)
{
    memset(list, 0, sizeof *list);
    ba_status rc = BA_OK;
    ba_study_task *t = NULL;
    int n_conditions = cfg->n_conditions + 1; /* with the baseline */
    switch (stage) {
    case BA_STAGE_FEATURES:
        /* [synth] makes every condition's features at once; [model]
         * extracts those of each condition that names an association set
         * (the baseline too); ready files need no task. */
        if (cfg->synth) {
            BA_TRY(list_grow(list, 1, &t, err), fail);
            BA_TRY(synth_task(cfg, t, err), fail);
        } else if (cfg->model_dir[0]) {
            for (int c = -1; c < cfg->n_conditions; c++) {
                if (c >= 0 && cfg->conditions[c].features[0]) continue;
                BA_TRY(list_grow(list, n_conditions, &t, err), fail);
                BA_TRY(model_features_task(cfg, c, t, err), fail);
            }
        }
        break;
    case BA_STAGE_FIT:
        for (int s = 0; s < cfg->n_subjects; s++)
            for (int c = -1; c < cfg->n_conditions; c++)
                for (int l = 0; l < cfg->n_layers; l++) {
                    BA_TRY(list_grow(list, cfg->n_subjects * n_conditions * cfg->n_layers, &t,
                                     err), fail);
                    BA_TRY(fit_task(cfg, c, s, l, t, err), fail);
                }
        break;
    case BA_STAGE_COMPARE:
        /* The report of the study, then the comparison of the conditions. */
        BA_TRY(list_grow(list, 2, &t, err), fail);
        BA_TRY(collect_task(cfg, t, err), fail);
        if (cfg->n_conditions > 0) {
            BA_TRY(list_grow(list, 2, &t, err), fail);
            BA_TRY(compare_task(cfg, t, err), fail);
        }
        break;
    default:
        return ba_fail(err, BA_ERR_USAGE, "%s: unknown stage %d", cfg->path, (int)stage);
    }
    return BA_OK;
fail:
    ba_study_task_list_free(list);
    return rc;
}

void ba_study_task_list_free(ba_study_task_list *list)
{
    for (int i = 0; list->tasks && i < list->n; i++)
        for (int a = 0; a < list->tasks[i].argc; a++) free(list->tasks[i].argv[a]);
    free(list->tasks);
    memset(list, 0, sizeof *list);
}

/* ------------------------------------------------------------ shell line */

static bool shell_safe(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                    "_-+=.,:/@%", *s))
            return false;
    return true;
}

ba_status ba_study_task_shell_line(const ba_study_task *task, char *buf, size_t size,
                                   ba_error *err)
{
    size_t used = 0;
    for (int a = 0; a < task->argc; a++) {
        const char *arg = task->argv[a];
        if (strchr(arg, '\n'))
            return ba_fail(err, BA_ERR_USAGE, "task %s: argument '%s' holds a newline",
                           task->label, arg);
        char word[3 * BA_PATH_MAX];
        size_t w = 0;
        if (shell_safe(arg)) w = (size_t)snprintf(word, sizeof word, "%s", arg);
        else {
            /* 'it'\''s' */
            word[w++] = '\'';
            for (const char *p = arg; *p && w + 5 < sizeof word; p++) {
                if (*p == '\'') { memcpy(word + w, "'\\''", 4); w += 4; }
                else word[w++] = *p;
            }
            word[w++] = '\'';
            word[w] = '\0';
        }
        if (w + 1 >= sizeof word || used + w + 2 > size)
            return ba_fail(err, BA_ERR_USAGE, "task %s: the command line is too long",
                           task->label);
        if (a) buf[used++] = ' ';
        memcpy(buf + used, word, w + 1);
        used += w;
    }
    if (size) buf[used] = '\0';
    return BA_OK;
}

/* ------------------------------------------------------------ preparing */

static ba_status make_dirs(const char *path, ba_error *err)
{
    char buf[BA_PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        mkdir(buf, 0777); /* an existing parent is fine; the last mkdir says */
        *p = '/';
    }
    struct stat st;
    if (mkdir(buf, 0777) != 0 && (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)))
        return ba_fail(err, BA_ERR_IO, "%s: cannot create the directory (%s)", path,
                       strerror(errno));
    return BA_OK;
}

ba_status ba_study_task_prepare(const ba_study_task *task, ba_error *err)
{
    char dir[BA_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", task->output);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return BA_OK; /* the current directory or / */
    *slash = '\0';
    return make_dirs(dir, err);
}

/* ------------------------------------------------------------ collecting */

typedef struct {
    char label[3 * BA_STUDY_NAME_MAX + 16];
    double mean_r;
    int n_regions;          /* 0: no region table */
    char **names;
    size_t n_names;
    long long *n_voxels;
    double *roi_mean, *roi_median, *roi_sem;
} fit_result;

static void fit_result_free(fit_result *r)
{
    ba_h5_free_strings(r->names, r->n_names);
    free(r->n_voxels); free(r->roi_mean); free(r->roi_median); free(r->roi_sem);
    memset(r, 0, sizeof *r);
}

static ba_status read_vector(ba_h5file *f, const char *dset, ba_h5type type, hsize_t n,
                             void **out, ba_error *err)
{
    int rank = 0;
    hsize_t dims[BA_H5_MAX_RANK];
    BA_CHECK(ba_h5_shape(f, dset, 1, &rank, dims, err));
    if (dims[0] != n)
        return ba_fail(err, BA_ERR_SHAPE, "%s:%s has %llu values, expected %llu", f->path, dset,
                       (unsigned long long)dims[0], (unsigned long long)n);
    *out = ba_malloc((size_t)(n ? n : 1) * 8, dset, err);
    if (!*out) return BA_ERR_NOMEM;
    return ba_h5_read(f, dset, type, NULL, NULL, *out, err);
}

static ba_status read_scores(const char *path, fit_result *r, ba_error *err)
{
    ba_h5file f;
    BA_CHECK(ba_h5_open(&f, path, MPI_COMM_SELF, err));
    ba_status rc = BA_OK;
    float *values = NULL;
    int rank = 0;
    hsize_t dims[BA_H5_MAX_RANK];
    BA_TRY(ba_h5_shape(&f, "/r", 1, &rank, dims, err), done);
    if (dims[0] == 0) {
        rc = ba_fail(err, BA_ERR_SHAPE, "%s:/r is empty", path);
        goto done;
    }
    BA_TRY(read_vector(&f, "/r", BA_H5_F32, dims[0], (void **)&values, err), done);
    double total = 0;
    for (hsize_t v = 0; v < dims[0]; v++) total += values[v];
    r->mean_r = total / (double)dims[0];
    if (ba_h5_exists(&f, "/roi/name")) {
        BA_TRY(ba_h5_read_strings(&f, "/roi/name", &r->names, &r->n_names, err), done);
        hsize_t n = (hsize_t)r->n_names;
        r->n_regions = (int)n;
        BA_TRY(read_vector(&f, "/roi/n_voxels", BA_H5_I64, n, (void **)&r->n_voxels, err), done);
        BA_TRY(read_vector(&f, "/roi/mean_r", BA_H5_F64, n, (void **)&r->roi_mean, err), done);
        BA_TRY(read_vector(&f, "/roi/median_r", BA_H5_F64, n, (void **)&r->roi_median, err), done);
        BA_TRY(read_vector(&f, "/roi/sem_r", BA_H5_F64, n, (void **)&r->roi_sem, err), done);
    }
done:
    free(values);
    ba_error ignored;
    if (rc == BA_OK) rc = ba_h5_close(&f, err);
    else ba_h5_close(&f, &ignored);
    return rc;
}

/* Write through a temporary name so a failure leaves nothing behind. */
static FILE *open_partial(const char *path, char *temp, size_t size, ba_error *err)
{
    snprintf(temp, size, "%s.partial", path);
    FILE *f = fopen(temp, "w");
    if (!f) ba_fail(err, BA_ERR_IO, "%s: cannot write (%s)", path, strerror(errno));
    return f;
}

static ba_status close_partial(FILE *f, const char *temp, const char *path, ba_error *err)
{
    if (fclose(f) != 0 || rename(temp, path) != 0) {
        remove(temp);
        return ba_fail(err, BA_ERR_IO, "%s: cannot write", path);
    }
    return BA_OK;
}

static ba_status write_region_csv(const char *path, const fit_result *r, ba_error *err)
{
    char temp[BA_PATH_MAX + 16];
    FILE *f = open_partial(path, temp, sizeof temp, err);
    if (!f) return BA_ERR_IO;
    fprintf(f, "region,n_voxels,mean_r,median_r,sem\n");
    for (int g = 0; g < r->n_regions; g++)
        fprintf(f, "%s,%lld,%.6f,%.6f,%.6f\n", r->names[g], r->n_voxels[g], r->roi_mean[g],
                r->roi_median[g], r->roi_sem[g]);
    return close_partial(f, temp, path, err);
}

/* The layout of `run`'s summary.md. */
static ba_status write_summary(const ba_study_config *cfg, const fit_result *fits, int n,
                               ba_error *err)
{
    char path[BA_PATH_MAX + 32], temp[BA_PATH_MAX + 48];
    snprintf(path, sizeof path, "%s/summary.md", cfg->output_dir);
    FILE *f = open_partial(path, temp, sizeof temp, err);
    if (!f) return BA_ERR_IO;
    fprintf(f, "# %s — brain scores\n\nConfiguration: `%s`, condition `%s`. Pearson r on held-out "
               "folds (%d folds), mean over voxels.\n\n| fit | mean r |\n| --- | ---: |\n",
            cfg->name[0] ? cfg->name : "study", cfg->path, cfg->condition, cfg->fit.ridge.n_folds);
    for (int i = 0; i < n; i++) fprintf(f, "| %s | %.4f |\n", fits[i].label, fits[i].mean_r);
    int regions = n > 0 ? fits[0].n_regions : 0;
    if (regions > 0) {
        fprintf(f, "\n## Mean r by region\n\n| region | voxels |");
        for (int i = 0; i < n; i++) fprintf(f, " %s |", fits[i].label);
        fprintf(f, "\n| --- | ---: |");
        for (int i = 0; i < n; i++) fprintf(f, " ---: |");
        fprintf(f, "\n");
        for (int g = 0; g < regions; g++) {
            fprintf(f, "| %s | %lld |", fits[0].names[g], fits[0].n_voxels[g]);
            for (int i = 0; i < n; i++) fprintf(f, " %.4f |", fits[i].roi_mean[g]);
            fprintf(f, "\n");
        }
    }
    return close_partial(f, temp, path, err);
}

/* Every fit of a study has the same regions, or none. */
static ba_status check_same_regions(const fit_result *first, const fit_result *r,
                                    const char *path, ba_error *err)
{
    bool same = r->n_regions == first->n_regions;
    for (int g = 0; same && g < r->n_regions; g++)
        same = strcmp(r->names[g], first->names[g]) == 0;
    if (!same)
        return ba_fail(err, BA_ERR_SHAPE,
                       "%s:/roi/name: %d regions that differ from those of %s (%d regions)",
                       path, r->n_regions, first->label, first->n_regions);
    return BA_OK;
}

/* Every fit of the study, in the order of `run`'s summary: condition
 * (the baseline first), subject, layer. */
typedef struct {
    int c, s, l;
} fit_index;

static int fit_count(const ba_study_config *cfg)
{
    return (cfg->n_conditions + 1) * cfg->n_subjects * cfg->n_layers;
}

static fit_index fit_at(const ba_study_config *cfg, int i)
{
    fit_index f;
    f.l = i % cfg->n_layers;
    f.s = i / cfg->n_layers % cfg->n_subjects;
    f.c = i / (cfg->n_layers * cfg->n_subjects) - 1;
    return f;
}

static ba_status check_all_present(const ba_study_config *cfg, ba_error *err)
{
    int missing = 0, total = fit_count(cfg);
    char first[BA_PATH_MAX] = "";
    for (int i = 0; i < total; i++) {
        fit_index f = fit_at(cfg, i);
        char path[BA_PATH_MAX];
        struct stat st;
        scores_path(cfg, f.c, f.s, f.l, path, sizeof path);
        if (stat(path, &st) == 0) continue;
        if (!missing++) snprintf(first, sizeof first, "%s", path);
    }
    if (missing)
        return ba_fail(err, BA_ERR_IO,
                       "%s: scores file missing (%d of the %d fits of %s have no scores: did "
                       "every fit task end well?)", first, missing, total, cfg->path);
    return BA_OK;
}

ba_status ba_study_collect(const ba_study_config *cfg, ba_error *err)
{
    BA_CHECK(check_all_present(cfg, err));
    int n = fit_count(cfg);
    ba_status rc = BA_OK;
    fit_result *fits = NULL;
    char tables[BA_PATH_MAX + 16];
    BA_ALLOC(fits, n, "fit results", done);
    for (int i = 0; i < n; i++) {
        fit_index f = fit_at(cfg, i);
        const char *cond = condition_prefix(cfg, f.c);
        char path[BA_PATH_MAX];
        scores_path(cfg, f.c, f.s, f.l, path, sizeof path);
        snprintf(fits[i].label, sizeof fits[i].label, "%s%s%s layer %d", cond,
                 cond[0] ? " " : "", cfg->subjects[f.s], cfg->layers[f.l]);
        BA_TRY(read_scores(path, &fits[i], err), done);
        if (i > 0) BA_TRY(check_same_regions(&fits[0], &fits[i], path, err), done);
    }
    snprintf(tables, sizeof tables, "%s/tables", cfg->output_dir);
    if (fits[0].n_regions > 0) BA_TRY(make_dirs(tables, err), done);
    for (int i = 0; i < n; i++) {
        if (fits[i].n_regions == 0) continue;
        fit_index f = fit_at(cfg, i);
        const char *cond = condition_prefix(cfg, f.c);
        char csv[BA_PATH_MAX + 400];
        snprintf(csv, sizeof csv, "%s/%s%s%s-layer-%d.csv", tables, cond, cond[0] ? "-" : "",
                 cfg->subjects[f.s], cfg->layers[f.l]);
        BA_TRY(write_region_csv(csv, &fits[i], err), done);
    }
    BA_TRY(write_summary(cfg, fits, n, err), done);
done:
    for (int i = 0; fits && i < n; i++) fit_result_free(&fits[i]);
    free(fits);
    return rc;
}
