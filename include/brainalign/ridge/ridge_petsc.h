/* ridge_petsc.h — the cross-validated ridge of ridge.h with the ridge
 * systems solved iteratively by PETSc KSP, for feature spaces too large to
 * factorise densely. Same contract as ba_ridge_cv (same layout, data,
 * options and result; fit.c calls one or the other), same conventions:
 * per outer fold, X standardised and Y centred with training statistics,
 * one alpha per voxel from the same grid by exact leave-one-out, refit,
 * Pearson r on the held-out fold.
 *
 * The systems. Let B be X_tr (n_train x p) when p < n_train ("primal"), or
 * X_trᵀ (p x n_train) otherwise ("dual"), the same choice as ba_ridge_cv
 * (scikit-learn's). Every system is (BᵀB + αI) x = b, applied as Bᵀ(Bx) +
 * αx; neither XᵀX nor XXᵀ is ever formed, only X is stored.
 *   primal: weights  w = (XᵀX + αI)⁻¹ Xᵀ y,   LOO residual (y - Xw)_i / (1 - h_ii)
 *           hat      h_ii = x_iᵀ (XᵀX + αI)⁻¹ x_i
 *   dual:   c = (XXᵀ + αI)⁻¹ y,               LOO residual c_i / G_ii
 *           G_ii = e_iᵀ (XXᵀ + αI)⁻¹ e_i,      weights w = Xᵀ c
 * (the dual gives 1 - h_ii = α G_ii with no cancellation where h_ii -> 1).
 * With -ksp_type lsqr (or cgls) KSP gets the stacked operator [B; √α I]
 * and the right-hand side [t; 0] (primal, b = Bᵀt) or [0; u/√α] (dual,
 * b = u), whose normal equations are the same systems.
 *
 * Exact hat diagonal: one solve per training sample per alpha, i.e.
 * n_train x n_alphas extra right-hand sides per fold beside the voxels'
 * n_alphas x n_voxels; each Krylov step over them costs about as much as
 * forming XXᵀ once, so the exact diagonal costs ~2 x n_alphas x (mean
 * iterations) Gram products per fold — with small v it is most of the
 * work (measured: 85% at n = 200, p = 20,000, v = 20).
 * `-ridge_hat_diagonal gcv` replaces it by generalised cross-validation
 * (Golub, Heath & Wahba 1979): every sample gets the mean denominator,
 * from a randomized Hutchinson trace estimate tr(M) ≈ mean_k z_kᵀ M z_k
 * (Rademacher z_k, `-ridge_hutchinson_probes` of them, default 64, one
 * block): APPROXIMATE (GCV is not leave-one-out), about half the cost at
 * small v; it chose the same alphas as the exact path where n_train << p
 * (tests; n = 200, p = 20,000 and 50,000), but not near n_train ≈ p
 * (n = p = 3,000: 19% of the alphas differ, mean |Δr| 0.05).
 * `-ridge_hat_diagonal hutchinson` estimates each diagonal entry from the
 * same probes, d_i ≈ mean_k z_ki (M z_k)_i: APPROXIMATE and noisy where
 * M has large off-diagonal mass (small alphas): mean |Δr| ≈ 0.15 against
 * the exact path on the test problems; a denominator it makes <= 0 is
 * clamped to 1e-3 x the mean denominator. Both are labelled in the output.
 *
 * Blocks. Right-hand sides (training samples for the hat diagonal, voxels
 * in order of their global index) go in blocks of nb columns (nb =
 * opt->voxel_block, 0: 64), solved as ONE KSP system with the block-
 * diagonal operator diag(N, ..., N), so each Krylov step is two GEMMs with
 * X instead of 2 nb GEMVs ("global" CG/LSQR: the columns share the Krylov
 * polynomial). Columns are scaled to unit norm, so the KSP tolerance
 * bounds every column's relative residual by rtol·sqrt(nb). The default
 * rtol is 1e-8 (set before KSPSetFromOptions; -ksp_rtol overrides). After
 * each solve the true residual of every column's normal equations is
 * computed; the largest is reported (stats, and a warning on rank 0 when
 * it exceeds 100·rtol·sqrt(nb) — LSQR's own stopping test, relative to
 * ||A|| ||r||, is looser than rtol on the normal equations); a "converged"
 * solution with a relative residual above 0.5 (-ksp_type preonly) is an
 * error. Only a block's active columns enter the products, so a narrow
 * last block costs what it holds.
 *
 * Alpha path: largest alpha first (α = 1e8 is nearly αI and converges in a
 * step or two); each next alpha starts from the previous solution scaled
 * per column by the Galerkin factor γ = xᵀb / xᵀN(α)x (one operator
 * application that the residual check already provides). Off with
 * `-ridge_warm_start 0`.
 *
 * Layout. Inside a fold group, B is split over the group's ranks along its
 * large dimension (primal: training rows; dual: features), and each
 * block's unknowns (min(n_train, p) x nb) by rows; an operator application
 * is an allgather of the unknowns, two local GEMMs and a reduce-scatter,
 * so communication is in the small dimension. Blocks are defined by global
 * voxel and sample indices, never by rank, so the rank count only changes
 * the order of floating-point sums (|Δr| ~ rtol, far below 1e-5 at the
 * default). Folds are dealt to fold groups and combined exactly as in
 * ba_ridge_cv. In the dual form every rank reads all rows of X (keeping its
 * features), in the primal form only its rows. Memory per rank: 8 n p /
 * group_size bytes for X plus about 10 min(n_train, p) nb doubles.
 *
 * PETSc options (the global options database: PetscInitialize's arguments,
 * PETSC_OPTIONS, or PetscOptionsSetValue): any -ksp_* / -pc_* (-pc_type
 * jacobi uses the operator's diagonal), -log_view, and the -ridge_* above.
 * A KSP that diverges or stops at -ksp_max_it is an error naming the fold,
 * the alpha and the voxel (or training sample) with the worst residual; an
 * unknown KSP type or an option the solver never read is an error.
 *
 * checkpoint_path / checkpoint_key / stop_requested of ba_ridge_options
 * work as in ba_ridge_cv (same checkpoint file format).
 *
 * When to use it: the dense path costs O(m³) time and ~5 m² doubles of
 * memory for m = min(n_train, p) and then serves every alpha and voxel
 * almost for free; this path stores only X (8 n p bytes per group) but
 * pays Krylov iterations per alpha and per block of right-hand sides. On
 * one node it is slower whenever the dense path fits (n = 200, p = 20,000,
 * v = 20: 1.5 s dense vs 190 s exact / 86 s GCV here, and about the same
 * memory, since the dense path then works on the n x n kernel); it is the
 * path for problems whose m x m matrices do not fit in memory (n = p =
 * 3,000: 303 MB dense, 147 MB here, but 36 s vs 756 s with GCV). */
#ifndef BRAINALIGN_RIDGE_PETSC_H
#define BRAINALIGN_RIDGE_PETSC_H

#include <stdbool.h>

#include "brainalign/ridge/ridge.h"

/* PetscInitialize on the MPI already initialised by the caller, with
 * argv[1..argc-1] as PETSc options (argv[0]: program name; argv must stay
 * valid until ba_petsc_finalize). Collective over MPI_COMM_WORLD. */
ba_status ba_petsc_initialize(int argc, char **argv, ba_error *err);
/* PetscFinalize (prints -log_view), before MPI_Finalize. No-op when PETSc
 * was not initialised. */
ba_status ba_petsc_finalize(ba_error *err);

typedef struct {
    char ksp_type[32];
    double rtol;             /* the KSP relative tolerance in use */
    bool exact_hat;          /* false: Hutchinson or GCV estimate (approximate) */
    int probes;              /* Hutchinson probes */
    long block_solves;       /* KSPSolve calls, all folds */
    long iterations;         /* Krylov iterations, all folds */
    long columns;            /* right-hand sides solved (hat + voxels) x alphas */
    double worst_residual;   /* largest relative normal-equation residual */
    int worst_fold;
    double worst_alpha;
    long worst_column;       /* voxel, or training sample of the hat diagonal */
    bool worst_is_voxel;
} ba_ridge_petsc_stats;

/* Collective over layout->world; PETSc must be initialised. Same checks and
 * messages as ba_ridge_cv. */
ba_status ba_ridge_cv_petsc(const ba_ridge_layout *layout, const ba_ridge_data *data,
                            const ba_ridge_options *opt, ba_ridge_result *result,
                            ba_error *err);
/* The same, and what the solver did (identical on every rank). */
ba_status ba_ridge_cv_petsc_stats(const ba_ridge_layout *layout, const ba_ridge_data *data,
                                  const ba_ridge_options *opt, ba_ridge_result *result,
                                  ba_ridge_petsc_stats *stats, ba_error *err);

#endif
