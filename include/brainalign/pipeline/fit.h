/* fit.h — the `fit` stage: features.h5 + bold.h5 (or a plain X and Y)
 * -> cross-validated ridge -> scores.h5.
 *
 * scores.h5:
 *   /r        float32 [n_voxels]            mean r over folds
 *   /r_folds  float32 [n_folds, n_voxels]
 *   /alpha    float32 [n_folds, n_voxels]   the alpha chosen per fold
 *   /excluded int64 [n_excluded]            voxels left out of the solve (constant
 *             over the samples, or NaN with nan_as_missing): NaN in /r, /r_folds,
 *             /alpha, outside /roi; written when there is one; root attribute
 *             n_excluded always
 *   /roi/{name,n_voxels,mean_r,median_r,sem_r} when an atlas is given
 *   banded ridge (--bands), also:
 *   /band_alphas     float32 [n_folds, n_voxels, n_bands]  the chosen α_b
 *   /band_r2         float32 [n_bands, n_voxels]  each band's split r² on the
 *                    held-out folds (ridge.h: ba_banded_result), mean over folds
 *   /band_candidates float64 [n_candidates, n_bands]  every candidate's α_b
 *   /roi/band_r2/{mean,median,sem} float64 [n_bands, n_regions] with an atlas
 *   and /alpha holds the chosen candidate's number + 1. With one band the
 *   fit is the plain dense one (bitwise), /band_alphas = /alpha and no
 *   /band_r2 is written (attribute band_r2_note says so).
 *   root attribute fold_gap (int64) always.
 *   Banded restart: the checkpoint restores /r, /r_folds and the chosen
 *   candidates (so /band_alphas); the split r² of resumed folds is not
 *   saved, so /band_r2 is then the mean over the folds computed in the
 *   last run (its attribute n_folds says how many).
 *   root attributes: config (the full configuration), inputs, version,
 *   command.
 *
 * Restart: while it runs, fit keeps <out>.checkpoint.h5 with the folds it
 * has finished (rewritten atomically after every round of folds); a run
 * killed by SIGTERM (SLURM's time limit) stops at the next fold boundary,
 * and any killed run, rerun with the same inputs and options, resumes from
 * there. The final scores.h5 is identical to an uninterrupted run's. */
#ifndef BRAINALIGN_FIT_H
#define BRAINALIGN_FIT_H

#include <mpi.h>
#include <signal.h>
#include <stdbool.h>

#include "brainalign/io/atlas.h"
#include "brainalign/pipeline/design.h"
#include "brainalign/core/error.h"
#include "brainalign/ridge/ridge.h"

#define BA_MAX_ALPHAS 64
#define BA_MAX_DELAYS 32
#define BA_MAX_LAYERS 128

/* Who solves the ridge systems: ba_ridge_cv (ScaLAPACK, the default) or
 * ba_ridge_cv_petsc (PETSc KSP; PETSc must be initialised by the caller). */
typedef enum { BA_FIT_SOLVER_SCALAPACK = 0, BA_FIT_SOLVER_PETSC } ba_fit_solver;

typedef struct {
    /* Plain design-matrix mode: "FILE.h5:/X" and "FILE.h5:/Y". */
    const char *x_spec, *y_spec;
    /* Features mode. */
    const char *features_path, *bold_path;
    int layers[BA_MAX_LAYERS];
    int n_layers;
    ba_design_options design; /* tr_s <= 0: take bold.h5's tr_s attribute */
    int delays[BA_MAX_DELAYS];
    bool story_folds;         /* test whole stories instead of KFold blocks */
    const char *stories;      /* "a,b,c": fit these stories only (each must be in both
                                 files); NULL: the stories of bold.h5 and features.h5,
                                 which must be the same (one side only is an error) */
    /* Both modes. */
    const char *atlas_path;   /* optional */
    const char *out_path;
    ba_ridge_options ridge;
    ba_fit_solver solver;     /* dense ScaLAPACK (default) or iterative PETSc KSP */
    const char *solver_options; /* the PETSc options given, for the record (or NULL) */
    double alphas[BA_MAX_ALPHAS];
    const char *command_line;
    const char *study_config; /* the whole `run` configuration, when run */
    bool no_checkpoint;       /* do not save or resume <out>.checkpoint.h5 */
    /* Banded ridge (fit_bands.c). bands_spec NULL: plain ridge. */
    const char *bands_spec;        /* --bands "0:40,40:100", columns of the design */
    const char *band_alphas_spec;  /* --band-alphas: one grid, or one per band with ';' */
    const char *band_search;       /* --band-search "grid" (NULL: grid) or "random:N" */
    const char *band_weights_path; /* --band-weights FILE */
    bool has_seed;                 /* --seed given (needed by random:N) */
    unsigned long long seed;
    /* Voxels constant over the samples (a surface's medial wall, vertices out
     * of the field of view) are left out of the solve: r, r_folds and alpha
     * NaN, listed in /excluded, counted in the summary, outside the region
     * means. strict_voxels: an error instead (as the ridge engine says). */
    bool strict_voxels;
    bool nan_as_missing;      /* a voxel with a NaN sample is excluded the same way
                                 (fMRIPrep's --medial-surface-nan); else NaN is an error */
    volatile sig_atomic_t *stop_requested; /* set by a signal handler */
} ba_fit_config;

/* Defaults of the reference pipeline: 5 folds, alphas logspace(-1, 8, 10),
 * delays 1..5, sum of words per TR, one fold group. */
void ba_fit_config_defaults(ba_fit_config *cfg);

typedef struct {
    long n_samples, n_features, n_voxels;
    int n_folds;
    double mean_r;          /* over all voxels (every rank) */
    ba_roi_table roi;       /* rank 0, when an atlas was given */
    ba_atlas atlas;
    ba_ridge_timing timing; /* this rank */
    double seconds_total, seconds_io;
    int n_folds_resumed;    /* folds taken from a previous run's checkpoint */
    int n_bands, n_candidates; /* banded ridge (0: plain) */
    long n_excluded;        /* voxels left out (constant, or NaN with nan_as_missing) */
} ba_fit_summary;

/* Banded ridge (fit_bands.c). Parse "--bands 0:40,40:100" against the
 * design's p columns into bo's bands (checked: non-empty, disjoint,
 * increasing, covering all p columns). */
ba_status ba_fit_parse_bands(const char *spec, long p, ba_banded_options *bo, ba_error *err);

/* The candidates, *candidates [*n][n_bands] (malloc'ed, the caller frees):
 *   grid (default): the Cartesian product of one α grid per band
 *     (--band-alphas "G" for all bands or "G1;G2;..." one per band, each
 *     in the --alphas syntax; without --band-alphas the --alphas grid),
 *     band 1 varying slowest (itertools.product order);
 *   random:N: N band-weight vectors γ drawn uniformly on the simplex
 *     (Dirichlet(1, .., 1): γ_b = e_b / Σ e, e_b ~ Gamma(1) from the
 *     project rng seeded with --seed, stream 0), each times the single
 *     α grid: candidate (γ, α) has α_b = α / γ_b — himalaya's kernel
 *     weights (its K = Σ_b γ_b K_b with penalty α is Σ_b K_b / (α / γ_b));
 *     order: γ outer, α inner;
 *   --band-weights FILE: the γ vectors from FILE (one candidate line of
 *     n_bands positive numbers separated by blanks or commas; blank lines
 *     and '#' comments skipped), times the α grid as random:N.
 * At most BA_MAX_CANDIDATES candidates. */
#define BA_MAX_CANDIDATES 100000
ba_status ba_fit_band_candidates(const ba_fit_config *cfg, int n_bands, double **candidates,
                                 int *n, ba_error *err);

/* Collective over comm. Writes cfg->out_path (atomically) or nothing. */
ba_status ba_fit_run(const ba_fit_config *cfg, MPI_Comm comm, ba_fit_summary *summary,
                     ba_error *err);
void ba_fit_summary_free(ba_fit_summary *summary);

/* Collective. Build the design matrix exactly as ba_fit_run does in
 * features mode and write it to out_path: /X float32 [n, p],
 * /story_bounds int64 [n_stories + 1], /stories (names), for inspection or
 * use in other tools. */
ba_status ba_fit_export_design(const ba_fit_config *cfg, MPI_Comm comm, const char *out_path,
                               ba_error *err);

#endif
