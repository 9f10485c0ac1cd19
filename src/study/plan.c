/* plan.c — the study plan of a configuration (see plan.h). */
#include "brainalign/study/plan.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ba_status format(char **out, ba_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* *out = a new string made like printf's. */
static ba_status format(char **out, ba_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return ba_fail(err, BA_ERR_INTERNAL, "study plan: cannot format '%s'", fmt);
    *out = ba_malloc((size_t)n + 1, "study plan", err);
    if (!*out) return BA_ERR_NOMEM;
    va_start(ap, fmt);
    vsnprintf(*out, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return BA_OK;
}

/* The BOLD file of one subject: "{subject}" in the pattern replaced. */
static ba_status subject_bold(const char *pattern, const char *subject, char **out,
                              ba_error *err)
{
    const char *at = strstr(pattern, "{subject}");
    if (!at) return format(out, err, "%s", pattern);
    return format(out, err, "%.*s%s%s", (int)(at - pattern), pattern, subject, at + 9);
}

/* Where the fits of a condition read their features: its own ready file,
 * else a [model] study's OUTPUT/features/<condition>.h5, else the
 * [features] or [synth] file. */
static ba_status plan_condition(const ba_study_config *cfg, const ba_study_plan *plan, int index,
                                ba_plan_condition *k, ba_error *err)
{
    k->index = index;
    k->source = index >= 0 ? &cfg->conditions[index] : NULL;
    k->name = k->source ? k->source->name : cfg->condition;
    k->prefix = cfg->n_conditions == 0 ? "" : k->name;
    if (k->source && k->source->features[0]) return format(&k->features, err, "%s", k->source->features);
    if (cfg->model_dir[0]) {
        k->extract = true;
        return format(&k->features, err, "%s/%s.h5", plan->features_dir, k->name);
    }
    return format(&k->features, err, "%s", cfg->features_path);
}

static ba_status plan_fit(const ba_study_config *cfg, const ba_study_plan *plan, int c, int s,
                          int l, ba_plan_fit *f, ba_error *err)
{
    const ba_plan_condition *k = &plan->conditions[c];
    const char *cond = k->prefix, *subject = cfg->subjects[s];
    const char *sep_dir = cond[0] ? "/" : "", *sep_name = cond[0] ? "-" : "";
    const char *sep_label = cond[0] ? " " : "";
    f->condition = c;
    f->subject = s;
    f->layer = l;
    f->layer_number = cfg->layers[l];
    BA_CHECK(subject_bold(cfg->bold_pattern, subject, &f->bold, err));
    BA_CHECK(format(&f->scores_dir, err, "%s/scores/%s%s%s", cfg->output_dir, cond, sep_dir,
                    subject));
    BA_CHECK(format(&f->scores, err, "%s/layer-%d.h5", f->scores_dir, f->layer_number));
    BA_CHECK(format(&f->table, err, "%s/%s%s%s-layer-%d.csv", plan->tables_dir, cond, sep_name,
                    subject, f->layer_number));
    BA_CHECK(format(&f->label, err, "%s%s%s layer %d", cond, sep_label, subject,
                    f->layer_number));
    return format(&f->task_label, err, "%s/%s/layer-%d", subject, k->name, f->layer_number);
}

ba_status ba_study_plan_build(const ba_study_config *cfg, ba_study_plan *plan, ba_error *err)
{
    memset(plan, 0, sizeof *plan);
    plan->cfg = cfg;
    ba_status rc = BA_OK;
    const char *out = cfg->output_dir;
    if (cfg->n_subjects < 1 || cfg->n_layers < 1)
        return ba_fail(err, BA_ERR_USAGE, "%s: a study plan needs subjects and layers (%d, %d)",
                       cfg->path, cfg->n_subjects, cfg->n_layers);
    if (cfg->synth) BA_TRY(format(&plan->synth_dir, err, "%s/synth", out), fail);
    BA_TRY(format(&plan->features_dir, err, "%s/features", out), fail);
    BA_TRY(format(&plan->tables_dir, err, "%s/tables", out), fail);
    BA_TRY(format(&plan->summary, err, "%s/summary.md", out), fail);
    BA_TRY(format(&plan->compare_prefix, err, "%s/compare", out), fail);
    BA_TRY(format(&plan->command, err, "brainalign run %s", cfg->path), fail);
    plan->compare = cfg->n_conditions > 0;

    plan->n_conditions = cfg->n_conditions + 1;
    BA_ALLOC(plan->conditions, plan->n_conditions, "study plan conditions", fail);
    for (int c = 0; c < plan->n_conditions; c++)
        BA_TRY(plan_condition(cfg, plan, c - 1, &plan->conditions[c], err), fail);

    int per_condition = cfg->n_subjects * cfg->n_layers;
    BA_ALLOC(plan->fits, plan->n_conditions * per_condition, "study plan fits", fail);
    for (int c = 0; c < plan->n_conditions; c++)
        for (int s = 0; s < cfg->n_subjects; s++)
            for (int l = 0; l < cfg->n_layers; l++, plan->n_fits++)
                BA_TRY(plan_fit(cfg, plan, c, s, l, &plan->fits[plan->n_fits], err), fail);
    return BA_OK;
fail:
    ba_study_plan_free(plan);
    return rc;
}

void ba_study_plan_free(ba_study_plan *plan)
{
    for (int c = 0; plan->conditions && c < plan->n_conditions; c++)
        free(plan->conditions[c].features);
    int n_fits = plan->fits ? plan->n_conditions * plan->cfg->n_subjects * plan->cfg->n_layers : 0;
    for (int i = 0; i < n_fits; i++) {
        ba_plan_fit *f = &plan->fits[i];
        free(f->bold); free(f->scores_dir); free(f->scores); free(f->table); free(f->label);
        free(f->task_label);
    }
    free(plan->conditions); free(plan->fits);
    free(plan->synth_dir); free(plan->features_dir); free(plan->tables_dir); free(plan->summary);
    free(plan->compare_prefix); free(plan->command);
    memset(plan, 0, sizeof *plan);
}

const ba_plan_fit *ba_study_plan_fit(const ba_study_plan *plan, int c, int s, int l)
{
    const ba_study_config *cfg = plan->cfg;
    return &plan->fits[((size_t)c * cfg->n_subjects + s) * cfg->n_layers + l];
}
