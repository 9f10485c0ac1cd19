/* fit_options.h — the options of the `fit` stage, declared once
 * (options.h): `brainalign fit --NAME`, the INI keys of `brainalign run`
 * ([alignment], [cv], [bold] tr) and the arguments of the fit tasks all
 * come from ba_fit_option_table. */
#ifndef BRAINALIGN_PIPELINE_FIT_OPTIONS_H
#define BRAINALIGN_PIPELINE_FIT_OPTIONS_H

#include "brainalign/pipeline/fit.h"
#include "brainalign/pipeline/options.h"

/* Plain values, no pointers. */
typedef struct {
    /* design */
    int delays[BA_MAX_DELAYS];   /* FIR delays in TRs */
    int n_delays;
    int aggregate;               /* ba_aggregate */
    double tr_offset_s;          /* added to word onsets */
    double tr_s;                 /* TR length; 0: bold.h5's tr_s attribute */
    /* cross-validation */
    int n_folds;
    bool story_folds;
    double alphas[BA_MAX_ALPHAS];
    int n_alphas;
    double tie_tolerance;        /* relative gap of near-tied alphas; 0: off */
    long fold_gap;               /* samples left out on each side of a test fold */
    /* parallel */
    int fold_groups;
    long voxel_block;            /* 0 (the default): the solver's own, 512 or 64 (PETSc) */
    int block_size;
} ba_fit_options;

/* 5 folds, alphas logspace(-1, 8, 10), delays 1..5, sum of words per TR,
 * TR from bold.h5, tie tolerance 1e-6, one fold group, the solver's voxel
 * block, ScaLAPACK block 64. */
void ba_fit_options_defaults(ba_fit_options *o);

extern const ba_option_table ba_fit_option_table;

/* Give a fit configuration these options (its design, ridge, delays and
 * alphas fields; the inputs and outputs are left alone). */
void ba_fit_options_apply(const ba_fit_options *o, ba_fit_config *cfg);

#endif
