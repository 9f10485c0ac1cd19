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

#include "brainalign/core/fs.h"
#include "brainalign/io/h5io.h"
#include "brainalign/pipeline/compare_options.h"
#include "brainalign/pipeline/synth_options.h"
#include "brainalign/study/plan.h"
#include "brainalign/study/report.h"

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

/* Every option of a stage's table that has an INI key, in table order,
 * spelled as the stage's command line reads it: those marked
 * BA_OPT_ALWAYS, the others when not at their default. */
static ba_status table_options(const ba_option_table *table, const void *opts, ba_study_task *t,
                               ba_error *err)
{
    unsigned char defaults[1024]; /* the stage's options struct at its defaults */
    if (table->size > sizeof defaults)
        return ba_fail(err, BA_ERR_INTERNAL, "the %s options (%zu bytes) exceed %zu bytes",
                       table->stage, table->size, sizeof defaults);
    table->defaults(defaults);
    for (int i = 0; i < table->n_options; i++) {
        const ba_option *o = &table->options[i];
        if (!o->section) continue;
        if (!(o->flags & BA_OPT_ALWAYS) && ba_option_equal(o, opts, defaults)) continue;
        if (o->type == BA_OPT_FLAG) {
            if (*(const bool *)((const char *)opts + o->offset))
                BA_CHECK(add_arg(t, err, "--%s", o->name));
            continue;
        }
        char value[BA_MAX_ALPHAS * 26 + 1];
        ba_option_format(o, opts, value, sizeof value);
        BA_CHECK(add_arg(t, err, "--%s", o->name));
        BA_CHECK(add_arg(t, err, "%s", value));
    }
    return BA_OK;
}

static ba_status synth_task(const ba_study_plan *plan, ba_study_task *t, ba_error *err)
{
    const ba_study_config *cfg = plan->cfg;
    const ba_synth_options *o = &cfg->synth_options;
    snprintf(t->label, sizeof t->label, "synth/%s", cfg->condition);
    /* the conditions "associations" and "random" of [synth] associations
     * come out of the same generation (synth.h) */
    snprintf(t->output, sizeof t->output, "%s", plan->synth_dir);
    BA_CHECK(add_arg(t, err, "synth"));
    OPT(t, "--out", "%s", t->output);
    if (cfg->synth_stimuli[0]) OPT(t, "--stimuli", "%s", cfg->synth_stimuli);
    /* every option of the table, in its order; the association ones
     * only with association regions (synth_options.h) */
    for (int i = 0; i < ba_synth_option_table.n_options; i++) {
        const ba_option *opt = &ba_synth_option_table.options[i];
        if (o->n_assoc_regions == 0 &&
            strncmp(opt->name, BA_SYNTH_ASSOC_PREFIX, strlen(BA_SYNTH_ASSOC_PREFIX)) == 0)
            continue;
        char value[1024];
        ba_option_format(opt, o, value, sizeof value);
        BA_CHECK(add_arg(t, err, "--%s", opt->name));
        BA_CHECK(add_arg(t, err, "%s", value));
    }
    return BA_OK;
}

/* The features of one condition of a [model] study, with the options `run`
 * gives ba_features_run (study.c model_features). */
static ba_status model_features_task(const ba_study_plan *plan, const ba_plan_condition *pc,
                                     ba_study_task *t, ba_error *err)
{
    const ba_study_config *cfg = plan->cfg;
    const ba_study_condition *k = pc->source;
    char layers[1024];
    snprintf(t->label, sizeof t->label, "features/%s", pc->name);
    snprintf(t->output, sizeof t->output, "%s", pc->features);
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
    BA_CHECK(table_options(&ba_features_option_table, &cfg->features, t, err));
    if (cfg->adapter_dir[0]) OPT(t, "--adapter", "%s", cfg->adapter_dir);
    OPT(t, "--condition", "%s", pc->name);
    if (k) {
        OPT(t, "--associations", "%s", k->associations);
        OPT(t, "--policy", "%s", ba_augment_policy_name(&k->augment));
        OPT(t, "--every", "%d", k->augment.every_k);
        OPT(t, "--seed", "%llu", (unsigned long long)k->augment.seed);
    }
    OPT(t, "--out", "%s", t->output);
    return BA_OK;
}

/* Every option `run` passes to ba_fit_run, spelled as `fit` reads it. */
static ba_status fit_task(const ba_study_plan *plan, const ba_plan_fit *p, ba_study_task *t,
                          ba_error *err)
{
    const ba_study_config *cfg = plan->cfg;
    snprintf(t->label, sizeof t->label, "%s", p->task_label);
    snprintf(t->output, sizeof t->output, "%s", p->scores);
    BA_CHECK(add_arg(t, err, "fit"));
    OPT(t, "--features", "%s", plan->conditions[p->condition].features);
    OPT(t, "--bold", "%s", p->bold);
    OPT(t, "--layer", "%d", p->layer_number);
    if (cfg->atlas_path[0]) OPT(t, "--atlas", "%s", cfg->atlas_path);
    BA_CHECK(table_options(&ba_fit_option_table, &cfg->fit, t, err));
    OPT(t, "--out", "%s", t->output);
    return BA_OK;
}

static ba_status collect_task(const ba_study_plan *plan, ba_study_task *t, ba_error *err)
{
    const ba_study_config *cfg = plan->cfg;
    /* The job runs in another directory than the one the list was made in. */
    char config[BA_PATH_MAX];
    if (!realpath(cfg->path, config)) snprintf(config, sizeof config, "%s", cfg->path);
    snprintf(t->label, sizeof t->label, "summary");
    snprintf(t->output, sizeof t->output, "%s", plan->summary);
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
static ba_status compare_task(const ba_study_plan *plan, ba_study_task *t, ba_error *err)
{
    const ba_study_config *cfg = plan->cfg;
    snprintf(t->label, sizeof t->label, "compare");
    snprintf(t->output, sizeof t->output, "%s.csv", plan->compare_prefix);
    BA_CHECK(add_arg(t, err, "compare"));
    OPT(t, "--study", "%s", cfg->output_dir);
    OPT(t, "--baseline", "%s", cfg->condition);
    if (cfg->atlas_path[0]) OPT(t, "--atlas", "%s", cfg->atlas_path);
    BA_CHECK(table_options(&ba_compare_option_table, &cfg->compare, t, err));
    OPT(t, "--out", "%s", plan->compare_prefix);
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
    if ((unsigned)stage > BA_STAGE_COMPARE)
        return ba_fail(err, BA_ERR_USAGE, "%s: unknown stage %d", cfg->path, (int)stage);
    ba_study_plan plan;
    BA_CHECK(ba_study_plan_build(cfg, &plan, err));
    ba_status rc = BA_OK;
    ba_study_task *t = NULL;
    const ba_study_config *c = plan.cfg;
    switch (stage) {
    case BA_STAGE_FEATURES:
        /* [synth] makes every condition's features at once; [model]
         * extracts those of each condition that names an association set
         * (the baseline too); ready files need no task. */
        if (plan.synth_dir) {
            BA_TRY(list_grow(list, 1, &t, err), fail);
            BA_TRY(synth_task(&plan, t, err), fail);
        } else
            for (int k = 0; k < plan.n_conditions; k++) {
                if (!plan.conditions[k].extract) continue;
                BA_TRY(list_grow(list, plan.n_conditions, &t, err), fail);
                BA_TRY(model_features_task(&plan, &plan.conditions[k], t, err), fail);
            }
        break;
    case BA_STAGE_FIT:
        /* subject-major, then condition, then layer */
        for (int s = 0; s < c->n_subjects; s++)
            for (int k = 0; k < plan.n_conditions; k++)
                for (int l = 0; l < c->n_layers; l++) {
                    BA_TRY(list_grow(list, plan.n_fits, &t, err), fail);
                    BA_TRY(fit_task(&plan, ba_study_plan_fit(&plan, k, s, l), t, err), fail);
                }
        break;
    case BA_STAGE_COMPARE:
        /* The report of the study, then the comparison of the conditions. */
        BA_TRY(list_grow(list, 2, &t, err), fail);
        BA_TRY(collect_task(&plan, t, err), fail);
        if (plan.compare) {
            BA_TRY(list_grow(list, 2, &t, err), fail);
            BA_TRY(compare_task(&plan, t, err), fail);
        }
        break;
    }
    ba_study_plan_free(&plan);
    return BA_OK;
fail:
    ba_study_plan_free(&plan);
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

ba_status ba_study_task_prepare(const ba_study_task *task, ba_error *err)
{
    char dir[BA_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", task->output);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return BA_OK; /* the current directory or / */
    *slash = '\0';
    return ba_make_dirs(dir, err);
}

/* ------------------------------------------------------------ collecting */

ba_status ba_study_collect(const ba_study_config *cfg, ba_error *err)
{
    ba_study_plan plan;
    BA_CHECK(ba_study_plan_build(cfg, &plan, err));
    ba_status rc = ba_report_collect(&plan, err);
    ba_study_plan_free(&plan);
    return rc;
}
