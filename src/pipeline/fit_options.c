/* fit_options.c — the table of the fit stage's options (see fit_options.h). */
#include "brainalign/pipeline/fit_options.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "brainalign/pipeline/design.h"

/* In the order of ba_aggregate. */
static const char *const AGGREGATES[] = {"sum", "mean", "lanczos", NULL};

#define OFF(field) offsetof(ba_fit_options, field)

static const ba_option FIT_OPTIONS[] = {
    {.name = "delays", .section = "alignment", .key = "delays", .type = BA_OPT_INT_LIST,
     .offset = OFF(delays), .count_offset = OFF(n_delays), .max_count = BA_MAX_DELAYS,
     .min = 0, .max = INT_MAX, .metavar = "LIST", .group = "design",
     .flags = BA_OPT_ALWAYS, .help = "FIR delays in TRs (default 1..5; '1,2,3' or '1..5')"},
    {.name = "aggregate", .section = "alignment", .key = "aggregate", .type = BA_OPT_CHOICE,
     .offset = OFF(aggregate), .choices = AGGREGATES, .group = "design", .flags = BA_OPT_ALWAYS,
     .help = "words within a TR, or Lanczos resampling (default sum)"},
    {.name = "tr-offset", .section = "alignment", .key = "tr_offset", .type = BA_OPT_DOUBLE,
     .offset = OFF(tr_offset_s), .min = -DBL_MAX, .max = DBL_MAX, .metavar = "SEC",
     .group = "design", .flags = BA_OPT_ALWAYS,
     .help = "added to word onsets before binning into TRs (default 0)"},
    {.name = "tr", .section = "bold", .key = "tr", .type = BA_OPT_DOUBLE, .offset = OFF(tr_s),
     .min = 0, .max = DBL_MAX, .metavar = "SEC", .group = "design", .flags = BA_OPT_ABOVE_MIN,
     .help = "TR length (default: bold.h5's tr_s attribute)"},
    {.name = "folds", .section = "cv", .key = "folds", .type = BA_OPT_INT, .offset = OFF(n_folds),
     .min = 2, .max = INT_MAX, .metavar = "K", .group = "cross-validation",
     .flags = BA_OPT_ALWAYS,
     .help = "outer folds, contiguous as KFold(K, shuffle=False) (default 5)"},
    {.name = "story-folds", .section = "cv", .key = "story_folds", .type = BA_OPT_FLAG,
     .offset = OFF(story_folds), .group = "cross-validation",
     .help = "fold boundaries on whole stories"},
    {.name = "alphas", .section = "cv", .key = "alphas", .type = BA_OPT_ALPHAS,
     .offset = OFF(alphas), .count_offset = OFF(n_alphas), .max_count = BA_MAX_ALPHAS,
     .metavar = "SPEC", .group = "cross-validation", .flags = BA_OPT_ALWAYS,
     .help = "logspace:LO:HI:N or a list (default logspace:-1:8:10)"},
    {.name = "fold-gap", .section = "cv", .key = "fold_gap", .type = BA_OPT_LONG,
     .offset = OFF(fold_gap), .min = 0, .max = LONG_MAX, .metavar = "N",
     .group = "cross-validation",
     .help = "leave N samples (TRs) on each side of a test fold out of its\n"
             "training rows (BOLD autocorrelation; default 0)"},
    {.name = "fold-groups", .section = "cv", .key = "fold_groups", .type = BA_OPT_INT,
     .offset = OFF(fold_groups), .min = 1, .max = INT_MAX, .metavar = "G", .group = "parallel",
     .flags = BA_OPT_ALWAYS,
     .help = "split the ranks into G groups that take folds in turn (default 1)"},
    {.name = "voxel-block", .section = "cv", .key = "voxel_block", .type = BA_OPT_LONG,
     .offset = OFF(voxel_block), .min = 1, .max = LONG_MAX, .metavar = "B", .group = "parallel",
     .help = "voxels per block on each rank (default 512)"}, /* PETSc solver: 64 */
    {.name = "block-size", .type = BA_OPT_INT, .offset = OFF(block_size), .min = 1,
     .max = INT_MAX, .metavar = "NB", .group = "parallel",
     .help = "ScaLAPACK block size (default 64)"},
    {.name = "tie-tolerance", .section = "cv", .key = "tie_tolerance", .type = BA_OPT_DOUBLE,
     .offset = OFF(tie_tolerance), .min = 0, .max = DBL_MAX, .metavar = "T",
     .group = "cross-validation",
     .help = "a voxel whose second-best alpha has a leave-one-out loss within\n"
             "a relative T of the best is re-ranked in double precision, so\n"
             "the choice does not depend on ranks or threads (default 1e-6;\n"
             "0 turns it off; ScaLAPACK solver)"},
};

static void defaults(void *opts) { ba_fit_options_defaults(opts); }

const ba_option_table ba_fit_option_table = {
    .stage = "fit",
    .options = FIT_OPTIONS,
    .n_options = (int)(sizeof FIT_OPTIONS / sizeof FIT_OPTIONS[0]),
    .size = sizeof(ba_fit_options),
    .defaults = defaults,
};

/* ScaLAPACK's block size; ba_ridge_options spells it 0. */
#define RIDGE_BLOCK_SIZE 64

void ba_fit_options_defaults(ba_fit_options *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 0; i < 5; i++) o->delays[i] = i + 1;
    o->n_delays = 5;
    o->aggregate = BA_AGGREGATE_SUM;
    o->n_folds = 5;
    for (int i = 0; i < 10; i++) o->alphas[i] = pow(10.0, -1.0 + i);
    o->n_alphas = 10;
    o->tie_tolerance = BA_RIDGE_TIE_TOLERANCE;
    o->fold_groups = 1;
    /* 0 until the solvers share one default: ScaLAPACK takes 512 voxels
     * per block, PETSc 64 (ba_ridge_options.voxel_block) */
    o->voxel_block = 0;
    o->block_size = RIDGE_BLOCK_SIZE;
}

void ba_fit_options_apply(const ba_fit_options *o, ba_fit_config *cfg)
{
    memcpy(cfg->delays, o->delays, sizeof cfg->delays);
    memcpy(cfg->alphas, o->alphas, sizeof cfg->alphas);
    cfg->design.delays = cfg->delays;
    cfg->design.n_delays = o->n_delays;
    cfg->design.aggregate = (ba_aggregate)o->aggregate;
    cfg->design.tr_offset_s = o->tr_offset_s;
    cfg->design.tr_s = o->tr_s;
    cfg->story_folds = o->story_folds;
    cfg->ridge.n_folds = o->n_folds;
    cfg->ridge.alphas = cfg->alphas;
    cfg->ridge.n_alphas = o->n_alphas;
    cfg->ridge.fold_groups = o->fold_groups;
    cfg->ridge.voxel_block = o->voxel_block;
    cfg->ridge.block_size = o->block_size;
    cfg->ridge.tie_tolerance = o->tie_tolerance; /* 0: off, in both */
    cfg->ridge.fold_gap = o->fold_gap;
}
