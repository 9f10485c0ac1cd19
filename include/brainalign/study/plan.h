/* plan.h — one study plan: the steps of a study, their inputs, outputs and
 * labels, derived once from the configuration (study.h).
 *
 * `brainalign run` executes the plan in one job; `brainalign tasks` cuts
 * the same plan into array-job tasks (study_tasks.h); the report of both
 * (report.h) is written from the plan's fits. Every file name and label of
 * a study is decided here and nowhere else:
 *
 *   features   [synth]: one generation into OUTPUT/synth; [model]: the
 *              features of every condition that has no ready file, into
 *              OUTPUT/features/<condition>.h5; [features]: none
 *   fit        one per condition x subject x layer:
 *              OUTPUT/scores/[<condition>/]<subject>/layer-<L>.h5 and, with
 *              an atlas, OUTPUT/tables/[<condition>-]<subject>-layer-<L>.csv
 *              (the condition part only with a [conditions] section)
 *   report     OUTPUT/summary.md
 *   compare    with [conditions]: OUTPUT/compare.{csv,md,h5} */
#ifndef BRAINALIGN_STUDY_PLAN_H
#define BRAINALIGN_STUDY_PLAN_H

#include <stdbool.h>

#include "brainalign/core/error.h"
#include "brainalign/study/study.h"

typedef struct {
    int index;              /* -1: the baseline ([study] condition), else cfg->conditions[index] */
    const char *name;       /* the condition's name (into the configuration) */
    const char *prefix;     /* the name in output names: "" without [conditions] */
    const ba_study_condition *source; /* NULL for the baseline */
    char *features;         /* the features file its fits read (owned) */
    bool extract;           /* [model]: a features step makes `features` */
} ba_plan_condition;

typedef struct {
    int condition;          /* into plan->conditions (0: the baseline) */
    int subject;            /* into cfg->subjects */
    int layer;              /* into cfg->layers */
    int layer_number;       /* cfg->layers[layer] */
    char *bold;             /* the subject's bold.h5 ({subject} replaced) */
    char *scores_dir;       /* OUTPUT/scores/[<condition>/]<subject> */
    char *scores;           /* <scores_dir>/layer-<L>.h5 */
    char *table;            /* OUTPUT/tables/[<condition>-]<subject>-layer-<L>.csv */
    char *label;            /* "[<condition> ]<subject> layer <L>": summary.md, run's output */
    char *task_label;       /* "<subject>/<condition>/layer-<L>": the fit task */
} ba_plan_fit;

typedef struct {
    const ba_study_config *cfg; /* not owned; outlives the plan */
    char *synth_dir;        /* [synth]: OUTPUT/synth; else NULL */
    char *features_dir;     /* OUTPUT/features */
    char *tables_dir;       /* OUTPUT/tables */
    char *summary;          /* OUTPUT/summary.md */
    char *compare_prefix;   /* OUTPUT/compare (.csv, .md, .h5) */
    char *command;          /* "brainalign run CONFIG": recorded in the outputs of `run` */
    int n_conditions;       /* the baseline first, then cfg->conditions in order */
    ba_plan_condition *conditions;
    int n_fits;             /* condition-major, then subject, then layer */
    ba_plan_fit *fits;
    bool compare;           /* a [conditions] section: compare them to the baseline */
} ba_study_plan;

/* The plan of a loaded configuration. Independent (no MPI, no files). */
ba_status ba_study_plan_build(const ba_study_config *cfg, ba_study_plan *plan, ba_error *err);
void ba_study_plan_free(ba_study_plan *plan);

/* The fit of plan condition c (0: the baseline), subject s, layer index l. */
const ba_plan_fit *ba_study_plan_fit(const ba_study_plan *plan, int c, int s, int l);

#endif
