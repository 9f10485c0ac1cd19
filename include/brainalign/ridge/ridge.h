/* ridge.h — cross-validated ridge regression from features X [n, p] to
 * voxels Y [n, v], with one alpha per voxel chosen by efficient
 * leave-one-out inside each training fold (as scikit-learn's
 * RidgeCV(alphas, alpha_per_target=True, fit_intercept=False) does on
 * standardised X and training-centred Y), then Pearson r on the held-out
 * fold.
 *
 * Parallel layout: the ranks split into `fold_groups` equal groups; group g
 * owns the outer folds f with f % fold_groups == g. Inside a group, the
 * feature side (Gram matrix, its eigendecomposition, the spectral basis) is
 * computed with ScaLAPACK on a BLACS grid; the basis is then replicated in
 * single precision and each rank runs the voxel side (the GEMMs that
 * dominate the cost) on its own contiguous range of voxels with no
 * communication at all. Voxel ranges are the same in every group, so the
 * per-fold results are combined with one exact reduction.
 *
 * Life cycle: ba_ridge_layout_create -> caller reads its voxels ->
 * ba_ridge_cv -> ba_ridge_result_free, ba_ridge_layout_destroy.
 *
 * Inside: one cross-validation driver (src/ridge/driver.c: checks, folds,
 * rounds, restart, the choice of alphas, combining groups) calls a solver
 * through a table of operations (src/ridge/solver.h): the dense
 * eigendecomposition solver here, the Krylov solver of ridge_petsc.h. */
#ifndef BRAINALIGN_RIDGE_H
#define BRAINALIGN_RIDGE_H

#include <mpi.h>
#include <signal.h>
#include <stdbool.h>

#include "brainalign/core/error.h"

/* Default of ba_ridge_options.tie_tolerance. The float32 leave-one-out
 * losses of one voxel differ between BLAS thread counts and process grids
 * by less than 1e-7 relative (measured at n = 3000, p = 3840, 20,000
 * voxels: tolerances of 1e-3, 1e-6 and 1e-7 give the same alphas, 1e-8
 * misses 3 of 100,000); 1e-6 keeps a 10x margin while re-ranking only
 * about 0.1% of the voxels. */
#define BA_RIDGE_TIE_TOLERANCE 1e-6

typedef struct {
    int n_folds;
    const long *fold_bounds; /* NULL: KFold(n_folds); else n_folds + 1 bounds */
    /* Samples (TRs) on each side of a test fold left out of its training
     * rows (--fold-gap; BOLD autocorrelation leaks across contiguous fold
     * edges). >= 0; 0 (the default) trains on every other row. */
    long fold_gap;
    const double *alphas;
    int n_alphas;
    int fold_groups;         /* >= 1, must divide the rank count */
    long voxel_block;        /* voxels per block in the voxel phase (0: 512) */
    int block_size;          /* ScaLAPACK block size (0: 64) */
    /* Near-tied alphas (ba_ridge_cv). When a voxel's float32 leave-one-out
     * losses put another alpha within this relative gap of the best, its
     * alpha is re-decided (and its r recomputed) in double precision, so
     * that the choice does not depend on the rank count or BLAS threads.
     * >= 0; ba_ridge_options_init sets BA_RIDGE_TIE_TOLERANCE; 0 turns the
     * re-ranking off. (The PETSc path computes its losses in double and
     * ignores it.) */
    double tie_tolerance;
    bool quiet;
    /* Restart after failure (optional). After every round of folds the
     * finished folds are saved to checkpoint_path (atomically: temporary
     * name, then rename); a later run with the same checkpoint_key skips
     * them. A different key (other inputs or options) starts afresh. */
    const char *checkpoint_path;
    const char *checkpoint_key;
    /* Set (e.g. by a SIGTERM handler) to stop at the next fold boundary
     * with BA_ERR_INTERRUPTED, after saving the checkpoint. */
    volatile sig_atomic_t *stop_requested;
} ba_ridge_options;

/* The defaults: every field 0 / NULL / false except fold_groups = 1 and
 * tie_tolerance = BA_RIDGE_TIE_TOLERANCE; the caller sets n_folds and the
 * alphas. */
void ba_ridge_options_init(ba_ridge_options *opt);

typedef struct {
    MPI_Comm world;   /* all ranks (not owned) */
    MPI_Comm group;   /* the ranks of my fold group */
    MPI_Comm across;  /* the ranks with my position in every group */
    int n_groups, group_index, group_rank, group_size;
    long v_total, v_begin, v_end; /* my voxels: [v_begin, v_end) */
} ba_ridge_layout;

ba_status ba_ridge_layout_create(MPI_Comm world, int fold_groups, long v_total,
                                 ba_ridge_layout *layout, ba_error *err);
void ba_ridge_layout_destroy(ba_ridge_layout *layout);

/* Fill out[n_rows][p] (row-major) with rows row0 .. row0 + n_rows - 1 of
 * X. Called independently by each rank, only for rows it owns. */
typedef ba_status (*ba_row_reader)(void *ctx, long row0, long n_rows, float *out,
                                   ba_error *err);

typedef struct {
    long n, p;
    ba_row_reader read_x;
    void *x_ctx;
    const float *y; /* my voxels: [n][v_end - v_begin], row-major */
} ba_ridge_data;

typedef struct {
    double feature_seconds;  /* Gram, eigendecomposition, basis (incl. reads) */
    double voxel_seconds;    /* the voxel-side GEMMs and statistics */
    double exchange_seconds; /* combining fold results */
    double voxel_flops;      /* flops of the voxel side on this rank */
    double feature_flops;    /* flops of the feature side of this group */
    double tie_seconds;      /* re-ranking near-tied alphas in double */
    long tied_voxels;        /* (voxel, fold) pairs re-ranked, summed over folds, my group */
} ba_ridge_timing;

typedef struct {
    int n_folds;
    int n_folds_resumed;   /* folds taken from the checkpoint */
    long v_local;
    float *r_folds; /* [n_folds][v_local] */
    float *alpha;   /* [n_folds][v_local] */
    float *r;       /* [v_local], mean over folds */
    ba_ridge_timing timing;
} ba_ridge_result;

/* Collective over layout->world. Checks Y (NaN/Inf, constant voxels) and X
 * (NaN/Inf) and fails on every rank with the same message. */
ba_status ba_ridge_cv(const ba_ridge_layout *layout, const ba_ridge_data *data,
                      const ba_ridge_options *opt, ba_ridge_result *result,
                      ba_error *err);
void ba_ridge_result_free(ba_ridge_result *result);

/* The plain reference, for tests: one process, double precision, and the
 * textbook algorithm — per alpha, G = (X Xᵀ + alpha I)^-1 by Cholesky,
 * LOO residuals c_i / G_ii with c = G y — no eigendecomposition, no BLAS.
 * X [n][p], Y [n][v] row-major; r_folds and alpha [n_folds][v]. */
ba_status ba_ridge_cv_reference(long n, long p, const float *x, long v, const float *y,
                                const ba_ridge_options *opt, float *r_folds,
                                float *alpha, ba_error *err);

/* Pearson correlation of two float series, computed in double; 0 when
 * either is constant. */
double ba_pearson_f32(const float *a, long stride_a, const float *b, long stride_b,
                      long n);

/* ------------------------------------------------------- banded ridge */

/* Banded ridge (solver_banded.c): the columns of X split into bands
 * [band_begin[b], band_end[b]) (disjoint, covering all p columns) with
 * penalties Σ_b α_b ||w_b||². A candidate is one vector (α_1 .. α_B); the
 * candidates play the role of the alpha grid: each is scored by exact
 * leave-one-out inside each training fold (X standardised, Y centred with
 * training statistics), per voxel the best candidate (smallest loss; on
 * equal losses the earlier one) is refitted and predicts the held-out fold.
 *
 * Scaling band b's columns by 1/sqrt(α_b) makes a candidate plain ridge
 * with α = 1, so with K = Σ_b X_b X_bᵀ / α_b (n_train x n_train, always the
 * dual form) = Q diag(s) Qᵀ, one eigendecomposition per candidate and fold
 * (shared by consecutive candidates whose K differ only by a factor: a
 * band-weight vector times the alpha grid) gives c = (K + I)^-1 y =
 * Q diag(1/(s+1)) Qᵀ y and the leave-one-out residuals c_i / G_ii,
 * G_ii = Σ_k Q_ik² / (s_k + 1). The held-out
 * prediction splits into bands: ŷ_b = (X_te,b X_tr,bᵀ / α_b) c.
 *
 * Near-ties between candidates are NOT re-ranked in double precision (the
 * dense solver's tie_tolerance is ignored): a voxel whose two best
 * candidates are within float32 round-off may choose differently on other
 * rank counts. */
#define BA_MAX_BANDS 16

typedef struct {
    int n_bands;
    long band_begin[BA_MAX_BANDS], band_end[BA_MAX_BANDS];
    int n_candidates;
    const double *candidates; /* [n_candidates][n_bands], every α_b > 0 and finite */
} ba_banded_options;

typedef struct {
    int n_bands, n_folds;
    long v_local;
    /* Per fold, voxel and band: the held-out split r² (himalaya's
     * r2_score_split): with y and each ŷ_b centred on the test fold and
     * ŷ = Σ_b ŷ_b, r2_b = (2 ŷ_bᵀ y − ŷ_bᵀ ŷ) / yᵀ y, so that Σ_b r2_b =
     * 1 − ||y − ŷ||² / ||y||². NaN for folds resumed from a checkpoint. */
    float *band_r2_folds; /* [n_folds][v_local][n_bands] */
    float *band_r2;       /* [n_bands][v_local], mean over the folds computed */
    int n_folds_computed; /* folds whose split was computed in this run */
} ba_banded_result;

/* Collective over layout->world. opt gives the folds, fold groups,
 * restart and voxel layout; its alphas are ignored: result->alpha holds
 * the chosen candidate's number + 1 (1 .. n_candidates) per fold and voxel,
 * so that a checkpoint restores it. */
ba_status ba_ridge_cv_banded(const ba_ridge_layout *layout, const ba_ridge_data *data,
                             const ba_ridge_options *opt, const ba_banded_options *bands,
                             ba_ridge_result *result, ba_banded_result *banded,
                             ba_error *err);
void ba_banded_result_free(ba_banded_result *banded);

#endif
