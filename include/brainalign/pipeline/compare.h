/* compare.h — `brainalign compare`: brain scores of conditions (baseline,
 * human, gpt4, random, ...) against the baseline, region by region, with
 * statistics, in the shape of the tables of Yin et al. (2025).
 *
 * Inputs: scores.h5 files (fit.h), each labelled with a model, a
 * condition and a subject. A model is one feature space — e.g.
 * "gpt2 layer 9" — and every model is compared with its own baseline.
 * Every condition of a model must have the baseline's subjects (the test
 * is paired) and all files the same voxels. Regions come from an atlas
 * (atlas.h5, or the one the scores were fitted with, found in their
 * `inputs` attribute); the scores' /roi/name, when present, must name the
 * same regions.
 *
 * For each model, condition c != baseline and subject s:
 *   Δr_s(v)   = r_c,s(v) - r_baseline,s(v)                  per voxel
 *   d_s(g)    = mean over voxels of region g of Δr_s        per region
 *   Δr(g)     = mean over subjects of d_s(g)                the statistic
 *   r(g)      = mean over subjects of the region-mean r     per condition
 *   rel(g)    = 100 Δr(g) / |r_baseline(g)|                 in percent
 * Tests (stats.h), two-sided, one per region:
 *   several subjects  a paired sign-flip permutation test of d_s(g) (exact
 *                     over all 2^S sign vectors when 2^S <= n_permutations,
 *                     else n_permutations seeded Monte-Carlo draws); the
 *                     confidence interval is the percentile bootstrap of
 *                     mean d_s(g) resampling subjects (n_bootstrap);
 *   one subject       (e.g. an averaged subject) a percentile bootstrap
 *                     over the region's voxels of mean Δr(v), its p-value
 *                     from the sign of the bootstrap means. Voxels are
 *                     treated as independent: with spatially smooth data
 *                     this p-value is optimistic — prefer subjects.
 * q-values: Benjamini–Hochberg across the regions of one model and
 * condition; a region is significant when q <= fdr (regions without
 * voxels are left out of the family). Every random stream is derived from
 * `seed`, the model, the condition and the region, so results do not
 * depend on the order of the inputs.
 *
 * Outputs (PREFIX = out_prefix), written only when everything was computed:
 *   PREFIX.csv   one row per model x condition x region (baseline rows
 *                included: its mean r, no test): model, condition,
 *                baseline, region, n_voxels, n_subjects, r_baseline,
 *                r_condition, delta_r, rel_change_pct, ci_low, ci_high,
 *                p, q, significant, test, n_resamples
 *   PREFIX.md    per model: a table regions x conditions (Δr, relative
 *                change, significance marks), then the details (CI, p, q)
 *   PREFIX.h5    /regions/{name,n_voxels}; for each model key K (the label
 *                with characters other than [A-Za-z0-9._-] as '_') and
 *                condition C: /K/C/delta_r, /K/C/mean_r float32
 *                [n_voxels] (mean over subjects), /K/C/roi/{mean_r,
 *                mean_r_baseline, delta_r, rel_change_pct, ci_low, ci_high,
 *                p, q} float64 [n_regions]; attributes model, condition,
 *                baseline, n_subjects, subjects, test; root attributes
 *                with the settings, inputs, version, command
 *   maps         when bold_path records a brain space (importers.h):
 *                PREFIX_K_C_delta_r.nii.gz, or .lh/.rh.func.gii */
#ifndef BRAINALIGN_COMPARE_H
#define BRAINALIGN_COMPARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brainalign/core/error.h"
#include "brainalign/core/limits.h"

#define BA_COMPARE_LABEL_MAX 128

typedef struct {
    char model[BA_COMPARE_LABEL_MAX];
    char condition[BA_COMPARE_LABEL_MAX];
    char subject[BA_COMPARE_LABEL_MAX];
    char path[BA_PATH_MAX];
} ba_compare_input;

typedef struct {
    ba_compare_input *items;
    size_t n, cap;
} ba_compare_inputs;

/* Append one scores file. model NULL or "": derived from the file (see
 * ba_compare_model_label). */
ba_status ba_compare_inputs_add(ba_compare_inputs *list, const char *model,
                                const char *condition, const char *subject, const char *path,
                                ba_error *err);

/* The scores files of a study directory written by `run`:
 *   DIR/scores/<condition>/<subject>/layer-<L>.h5   (a study with conditions)
 *   DIR/scores/<subject>/layer-<L>.h5              (one condition: the one its
 *                                                   features.h5 records)
 * layer < 0: every layer found (each layer is a model of its own). model
 * NULL or "": derived from the files. Fails when nothing is found. */
ba_status ba_compare_inputs_from_study(ba_compare_inputs *list, const char *study_dir,
                                       const char *model, int layer, ba_error *err);
void ba_compare_inputs_free(ba_compare_inputs *list);

/* "<model_type> layer <L>" from a scores.h5: the layer from its `config`
 * attribute, the model type from the features.h5 its `inputs` attribute
 * names ("model" when that file cannot be read). Also the condition the
 * features record (NULL to skip; "" when unknown). */
ba_status ba_compare_model_label(const char *scores_path, char *label, size_t size,
                                 char *condition, size_t condition_size, ba_error *err);

typedef struct {
    const ba_compare_inputs *inputs;
    const char *baseline;      /* the reference condition (default "baseline")   */
    const char *atlas_path;    /* NULL: the atlas of the scores' `inputs`         */
    const char *bold_path;     /* NULL: no brain maps                             */
    const char *out_prefix;
    long n_permutations;       /* sign-flip: exact up to this many (default 100000) */
    long n_bootstrap;          /* bootstrap resamples (default 10000)            */
    double confidence;         /* interval level (default 0.95)                  */
    double fdr;                /* significance threshold on q (default 0.05)     */
    uint64_t seed;
    const char *command_line;
} ba_compare_options;

void ba_compare_options_defaults(ba_compare_options *o);

/* One line of the result (one model x condition x region). */
typedef struct {
    char model[BA_COMPARE_LABEL_MAX];
    char condition[BA_COMPARE_LABEL_MAX];
    const char *region;        /* borrowed from the result */
    long n_voxels;
    int n_subjects;
    double r_baseline, r_condition, delta_r, rel_change_pct;
    double ci_low, ci_high, p, q;
    bool is_baseline, significant, exact;
    long n_resamples;
    char test[48];             /* "sign-flip exact", "sign-flip monte-carlo",
                                  "voxel bootstrap", "" (baseline rows) */
} ba_compare_row;

typedef struct {
    int n_regions;
    char **regions;
    ba_compare_row *rows;
    size_t n_rows;
    char **written;            /* the files written */
    size_t n_written;
    char note[2048];           /* "" or what the reader must know: a model whose
                                  subjects are too few for the sign-flip p-value
                                  to reach the significance level (its floor 2/2^S
                                  is above it); also in the .md and the .h5 */
} ba_compare_result;

/* Independent (no MPI communication; call it on one rank). */
ba_status ba_compare_run(const ba_compare_options *o, ba_compare_result *result, ba_error *err);
void ba_compare_result_free(ba_compare_result *result);

#endif
