/* study_tasks.h — a study configuration cut into independent tasks, for
 * SLURM array jobs (see jobs/README.md).
 *
 * `brainalign run CONFIG` does everything in one job. On a cluster the same
 * study runs as three stages, each an array of independent tasks:
 *
 *   features  one task per condition (the baseline first) of a [model]
 *             study: `features ... --condition C [--associations FILE
 *             --policy P --every K --seed S] --out OUTPUT/features/<C>.h5`
 *             (none for a condition that names a ready .h5), or the one
 *             generation of a [synth] study (with [synth] associations it
 *             also makes the features of "associations" and "random"); no
 *             task when [features] names a ready file;
 *   fit       one task per subject x condition x layer: a `brainalign fit`
 *             writing where `run` writes it: OUTPUT/scores/<subject>/
 *             layer-<L>.h5, or OUTPUT/scores/<condition>/<subject>/
 *             layer-<L>.h5 with a [conditions] section (study.h);
 *   compare   after every fit: the region tables and summary.md that `run`
 *             writes (ba_study_collect), from the scores files; with
 *             [conditions] then `brainalign compare --study OUTPUT` with the
 *             [compare] settings: OUTPUT/compare.{csv,md,h5}. It reads every
 *             scores file under OUTPUT/scores, so OUTPUT should hold this
 *             study only (as it does for `run`).
 *
 * A task is a complete `brainalign` command line (subcommand first) with
 * every option resolved from the configuration, so a task gives the same
 * result as the corresponding step of `run`. Task i of a stage is the same
 * on every call for the same configuration (SLURM_ARRAY_TASK_ID = i). */
#ifndef BRAINALIGN_STUDY_TASKS_H
#define BRAINALIGN_STUDY_TASKS_H

#include <stdbool.h>
#include <stddef.h>

#include "brainalign/core/error.h"
#include "brainalign/study/study.h"

typedef enum { BA_STAGE_FEATURES, BA_STAGE_FIT, BA_STAGE_COMPARE } ba_study_stage;

#define BA_TASK_MAX_ARGS 96
#define BA_TASK_LABEL_MAX 512

typedef struct {
    char label[BA_TASK_LABEL_MAX]; /* "sub-01/baseline/layer-2" */
    char output[BA_PATH_MAX];      /* the file or directory the task writes */
    bool mpi;                      /* runs under the MPI launcher */
    int argc;
    char *argv[BA_TASK_MAX_ARGS];  /* brainalign arguments, subcommand first (owned) */
} ba_study_task;

typedef struct {
    ba_study_task *tasks;
    int n;
} ba_study_task_list;

/* "features", "fit" or "compare". */
ba_status ba_study_stage_parse(const char *name, ba_study_stage *stage, ba_error *err);
const char *ba_study_stage_name(ba_study_stage stage);

/* The tasks of one stage, in a fixed order (fit: subject-major, then
 * condition, then layer, in the order of the configuration). */
ba_status ba_study_tasks(const ba_study_config *cfg, ba_study_stage stage,
                         ba_study_task_list *list, ba_error *err);
void ba_study_task_list_free(ba_study_task_list *list);

/* The task as one line of POSIX shell words (each argument single-quoted
 * where it needs to be), without the program name. Fails if it does not
 * fit in `size` or an argument holds a newline. */
ba_status ba_study_task_shell_line(const ba_study_task *task, char *buf, size_t size,
                                   ba_error *err);

/* Create the directory the task's output goes into (and its parents). */
ba_status ba_study_task_prepare(const ba_study_task *task, ba_error *err);

/* Read the scores of every fit task and write what `run` writes after its
 * fits: OUTPUT/tables/[<condition>-]<subject>-layer-<L>.csv (when the scores
 * have a region table) and OUTPUT/summary.md. Fails, writing no summary, when a
 * scores file is missing or unreadable; the message names it and how many
 * are missing. Independent (MPI_COMM_SELF). */
ba_status ba_study_collect(const ba_study_config *cfg, ba_error *err);

#endif
