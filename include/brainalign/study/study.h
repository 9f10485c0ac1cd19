/* study.h — `brainalign run CONFIG`: a whole study from one INI file.
 *
 * The configuration names where features come from (a model checkpoint
 * and stimuli, a ready features.h5, or a synthetic study to generate), the
 * BOLD of every subject, the atlas, the alignment and the cross-validation;
 * the run does features -> fit for every subject and layer and writes
 *   OUTPUT/features/<condition>.h5     (reused while model and text are unchanged)
 *   OUTPUT/scores/<subject>/layer-<L>.h5
 *   OUTPUT/tables/<subject>-layer-<L>.csv   region, n_voxels, mean_r, median_r, sem
 *   OUTPUT/summary.md                  every subject and layer, region by region
 * Relative paths in the file are relative to the file's directory. See
 * the files in configs/ for complete, commented examples.
 *
 * Conditions (associative memory). A [conditions] section lists conditions
 * besides the baseline, one key per condition:
 *   human = associations/human.jsonl     an association set (with [model]:
 *                                        the features of the augmented text)
 *   human.policy = human                 human | every-k | word | random |
 *                                        random-every-k | random-word
 *   human.every = 4                      k of every-k
 *   human.seed = 7                       the random control's seed
 *   mine = features-mine.h5              or a ready features file
 * [synth] associations = 0,2 plants an association effect in those regions
 * and adds the conditions "associations" and "random" (synth.h). With
 * conditions, every condition (the baseline first) gets its features
 * (OUTPUT/features/<condition>.h5 with [model]), scores
 * OUTPUT/scores/<condition>/<subject>/layer-<L>.h5 and tables
 * OUTPUT/tables/<condition>-<subject>-layer-<L>.csv, and the run ends with
 * `compare` (compare.h) of all of them against the baseline:
 * OUTPUT/compare.{csv,md,h5}; a [compare] section sets permutations,
 * bootstrap, confidence, fdr and seed. */
#ifndef BRAINALIGN_STUDY_H
#define BRAINALIGN_STUDY_H

#include <mpi.h>
#include <signal.h>
#include <stdbool.h>

#include "brainalign/pipeline/associations.h"
#include "brainalign/core/error.h"
#include "brainalign/pipeline/compare_options.h"
#include "brainalign/pipeline/fit.h"
#include "brainalign/pipeline/features_options.h"
#include "brainalign/pipeline/fit_options.h"
#include "brainalign/io/h5io.h"
#include "brainalign/lm/model.h"
#include "brainalign/pipeline/synth.h"

#define BA_STUDY_MAX_SUBJECTS 256
#define BA_STUDY_NAME_MAX 128
#define BA_STUDY_MAX_CONDITIONS 32

typedef struct {
    char name[BA_STUDY_NAME_MAX];
    char associations[BA_PATH_MAX]; /* a JSONL association set, or ""      */
    char features[BA_PATH_MAX];     /* a ready features file, or ""        */
    ba_augment_options augment;     /* how the associations are inserted   */
} ba_study_condition;

typedef struct {
    char path[BA_PATH_MAX];        /* the INI file */
    char *text;                    /* its content, recorded in every output */
    char name[BA_STUDY_NAME_MAX];
    char output_dir[BA_PATH_MAX];
    char condition[BA_STUDY_NAME_MAX];

    /* Where features come from: exactly one of the three. */
    bool synth;                    /* [synth]: generate a study first */
    ba_synth_options synth_options;
    char synth_stimuli[BA_PATH_MAX];
    char features_path[BA_PATH_MAX];  /* [features] path */
    char model_dir[BA_PATH_MAX];      /* [model] path */
    ba_features_options features;     /* [model] context, stride, bos, matmul */
    char adapter_dir[BA_PATH_MAX];    /* [model] adapter = DIR (PEFT LoRA), "" = none */
    char stimuli_dir[BA_PATH_MAX];
    char stimuli_format[32];
    char stories[4096];            /* comma-separated, empty: all */

    int layers[BA_MAX_LAYERS];     /* the layers to fit, one fit each */
    int n_layers;

    char subjects[BA_STUDY_MAX_SUBJECTS][BA_STUDY_NAME_MAX];
    int n_subjects;
    char bold_pattern[BA_PATH_MAX]; /* "{subject}" is replaced */
    char atlas_path[BA_PATH_MAX];

    ba_fit_options fit;            /* [alignment], [cv], [bold] tr (fit_options.h) */
    volatile sig_atomic_t *stop_requested; /* set by a signal handler: stop the fits */
    bool quiet;

    /* Conditions besides the baseline (`condition` above is the baseline's
     * name); none: one condition and the plain layout. */
    ba_study_condition conditions[BA_STUDY_MAX_CONDITIONS];
    int n_conditions;
    /* [compare]: the statistics (compare_options.h); `run` sets the
     * inputs, baseline, atlas and output prefix from its plan */
    ba_compare_options compare;
} ba_study_config;

/* Parse and check a configuration. Independent (no MPI). */
ba_status ba_study_config_load(const char *path, ba_study_config *cfg, ba_error *err);
void ba_study_config_free(ba_study_config *cfg);

/* Collective: run the whole study. */
ba_status ba_study_run(ba_study_config *cfg, MPI_Comm comm, ba_error *err);

#endif
