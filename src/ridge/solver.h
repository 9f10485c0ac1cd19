/* solver.h — the operations a ridge solver provides to the one
 * cross-validation driver (driver.c), in the manner of ba_model_ops. Not a
 * public header.
 *
 * The driver owns everything that does not depend on how the ridge systems
 * are solved: the option and input checks, the fold bounds, the rounds of
 * folds over the fold groups, restart (checkpoint, stop_requested), the
 * choice of each voxel's alpha from its leave-one-out losses (the smallest;
 * on equal losses the earlier alpha, as scikit-learn), the list of near-tied
 * voxels, combining the fold groups and the mean r. A solver turns one fold
 * (its training and test rows, X, Y and the alpha grid) into per-alpha
 * losses and held-out correlations, one block of voxels at a time:
 *
 *   begin                              once, collective over the world
 *   for each of my group's folds:
 *     prepare_fold                     the feature side; collective over the group
 *     for each block b < n_blocks:
 *       score_block  -> loss[a][j]     the driver picks best[j]
 *       predict_block(best) -> r[j]    held-out prediction and its Pearson r
 *     refine_fold (optional)           re-decide the near-tied voxels
 *     end_fold                         free the fold's state (always called)
 *   finish                             once, collective over the world
 *   destroy                            always, also after a failure
 *
 * Every fallible operation fails on every rank of the group alike (it
 * agrees before each of its own collectives); the driver agrees again after
 * each phase. The dense (ScaLAPACK eigendecomposition, solver_dense.c) and
 * Krylov (PETSc KSP, solver_krylov.c) solvers implement it; banded ridge
 * will be a third. */
#ifndef BRAINALIGN_RIDGE_SOLVER_H
#define BRAINALIGN_RIDGE_SOLVER_H

#include <stdbool.h>

#include "brainalign/parallel/parallel.h"
#include "brainalign/ridge/ridge.h"
#include "fold_rows.h"

/* One outer fold, as the driver hands it to the solver. */
typedef struct {
    int index;                   /* fold number k */
    ba_fold_rows rows;           /* its training and test rows */
    const ba_ridge_layout *layout;
    const ba_ridge_data *data;   /* X (reader) and my voxels of Y */
    const ba_ridge_options *opt; /* the alpha grid */
} ba_ridge_fold;

/* One block of voxels, as score_block describes it. Columns [0, width) are
 * the block's voxels; [own_begin, own_end) of them are this rank's, local
 * voxels local0, local0 + 1, ... (the columns of data->y). A solver whose
 * blocks are this rank's voxels only has own = [0, width). */
typedef struct {
    long width;
    long own_begin, own_end;
    long local0;
} ba_ridge_block;

/* Progress of this rank's group, in the units of fold_units and blocks. */
typedef struct {
    ba_progress *bar;
    double done, total;
} ba_ridge_progress;

static inline void ba_ridge_progress_step(ba_ridge_progress *p)
{
    p->done += 1;
    ba_progress_update(p->bar, p->done, p->total);
}

typedef struct {
    const char *who;            /* prefix of messages: "ridge CV" */
    /* Announce every checkpoint save (else only when progress is not drawn
     * on a terminal). */
    bool announce_checkpoints;
    /* Blocks are the same on every rank of the group and score/predict are
     * collective over it (the driver then agrees after every block); else
     * blocks are this rank's own and involve no communication. */
    bool collective_blocks;
    /* The losses are approximate (float32): voxels where another alpha
     * comes within opt->tie_tolerance of the best are listed for
     * refine_fold. */
    bool near_ties;

    /* After the checks, before any fold. Collective over the world. */
    ba_status (*begin)(void *self, const ba_ridge_layout *L, const ba_ridge_data *D,
                       const ba_ridge_options *opt, ba_error *err);
    /* Columns of the widest block (the driver's loss buffer [n_alphas][this]). */
    long (*block_capacity)(void *self);
    /* Progress units of one fold's feature side (prepare_fold may step
     * through up to this many) and its number of voxel blocks. */
    double (*fold_units)(void *self, const ba_ridge_fold *fold);
    long (*n_blocks)(void *self, const ba_ridge_fold *fold);
    /* The feature side of a fold. Collective over layout->group. */
    ba_status (*prepare_fold)(void *self, const ba_ridge_fold *fold,
                              ba_ridge_progress *progress, ba_error *err);
    /* Block b: describe it and fill loss[a * block->width + j] with the
     * leave-one-out loss of alpha a for column j. */
    ba_status (*score_block)(void *self, const ba_ridge_fold *fold, long b,
                             ba_ridge_block *block, double *loss, ba_error *err);
    /* The refit with alpha best[j] for column j (the driver's choice from
     * the losses just scored): r[j] is the Pearson r of the held-out
     * prediction, for the columns this rank owns at least. */
    ba_status (*predict_block)(void *self, const ba_ridge_fold *fold,
                               const ba_ridge_block *block, const int *best, float *r,
                               ba_error *err);
    /* Optional (NULL: nothing to refine). Re-decide the listed local voxels
     * (near-tied) and overwrite their entries of this fold's rows r_fold and
     * alpha_fold [v_local]; *n_group: voxels refined by the whole group.
     * Collective over the group, called with or without voxels. */
    ba_status (*refine_fold)(void *self, const ba_ridge_fold *fold, const long *voxels,
                             long count, float *r_fold, float *alpha_fold, long *n_group,
                             ba_error *err);
    void (*end_fold)(void *self);
    /* After the folds are combined: the solver's timing fields (flops) and
     * statistics. Collective over the world. May be NULL. */
    ba_status (*finish)(void *self, ba_ridge_result *res, ba_error *err);
    void (*destroy)(void *self);
} ba_ridge_solver_ops;

typedef struct {
    const ba_ridge_solver_ops *ops;
    void *self;
} ba_ridge_solver;

/* The cross-validation driver (driver.c). Collective over layout->world. */
ba_status ba_ridge_cv_run(const ba_ridge_layout *layout, const ba_ridge_data *data,
                          const ba_ridge_options *opt, const ba_ridge_solver *solver,
                          ba_ridge_result *result, ba_error *err);

#endif
