/* driver.c — the one cross-validation driver of the ridge solvers (see
 * solver.h), the fold-group layout and the result.
 *
 * Parallel layout (ridge.h): group g runs the outer folds f with
 * f % fold_groups == g, in lock-step rounds across groups, so that an error
 * in one group reaches every rank at the next agreement. Voxel ranges are
 * the same in every group, so the per-fold results are combined with one
 * exact reduction. */
#include "brainalign/ridge/ridge.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/parallel/fault.h"
#include "brainalign/parallel/parallel.h"
#include "brainalign/ridge/folds.h"
#include "checkpoint.h"
#include "solver.h"

/* ---------------------------------------------------------------- layout */

ba_status ba_ridge_layout_create(MPI_Comm world, int fold_groups, long v_total,
                                 ba_ridge_layout *L, ba_error *err)
{
    memset(L, 0, sizeof *L);
    L->group = L->across = MPI_COMM_NULL;
    int rank = 0, size = 1;
    MPI_Comm_rank(world, &rank);
    MPI_Comm_size(world, &size);
    if (fold_groups < 1 || size % fold_groups != 0)
        return ba_fail(err, BA_ERR_USAGE,
                       "--fold-groups %d must be at least 1 and divide the %d ranks",
                       fold_groups, size);
    L->world = world;
    L->n_groups = fold_groups;
    L->group_size = size / fold_groups;
    L->group_index = rank / L->group_size; /* neighbouring ranks share a group */
    L->group_rank = rank % L->group_size;
    L->v_total = v_total;
    ba_split_range(v_total, L->group_size, L->group_rank, &L->v_begin, &L->v_end);
    BA_CHECK(ba_mpi_check(MPI_Comm_split(world, L->group_index, L->group_rank, &L->group),
                          "splitting fold groups", err));
    BA_CHECK(ba_mpi_check(MPI_Comm_split(world, L->group_rank, L->group_index, &L->across),
                          "splitting fold groups", err));
    return BA_OK;
}

void ba_ridge_layout_destroy(ba_ridge_layout *L)
{
    if (L->group != MPI_COMM_NULL) MPI_Comm_free(&L->group);
    if (L->across != MPI_COMM_NULL) MPI_Comm_free(&L->across);
    L->group = L->across = MPI_COMM_NULL;
}

void ba_ridge_options_init(ba_ridge_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->fold_groups = 1;
    opt->tie_tolerance = BA_RIDGE_TIE_TOLERANCE;
}

void ba_ridge_result_free(ba_ridge_result *r)
{
    free(r->r_folds);
    free(r->alpha);
    free(r->r);
    memset(r, 0, sizeof *r);
}

/* ------------------------------------------------------------ statistics */

double ba_pearson_f32(const float *a, long stride_a, const float *b, long stride_b,
                      long n)
{
    double ma = 0, mb = 0;
    for (long i = 0; i < n; i++) {
        ma += a[i * stride_a];
        mb += b[i * stride_b];
    }
    ma /= (double)n;
    mb /= (double)n;
    double sab = 0, saa = 0, sbb = 0;
    for (long i = 0; i < n; i++) {
        double da = a[i * stride_a] - ma, db = b[i * stride_b] - mb;
        sab += da * db;
        saa += da * da;
        sbb += db * db;
    }
    if (saa <= 0 || sbb <= 0) return 0.0;
    return sab / sqrt(saa * sbb);
}

/* --------------------------------------------------------- input checks */

static ba_status check_options(const ba_ridge_data *D, const ba_ridge_options *opt,
                               ba_error *err)
{
    if (opt->n_folds < 1) return ba_fail(err, BA_ERR_USAGE, "need at least one fold");
    if (opt->n_alphas < 1 || !opt->alphas)
        return ba_fail(err, BA_ERR_USAGE, "need at least one alpha");
    for (int a = 0; a < opt->n_alphas; a++)
        if (!(opt->alphas[a] > 0) || !isfinite(opt->alphas[a]))
            return ba_fail(err, BA_ERR_USAGE, "alpha %g must be positive and finite",
                           opt->alphas[a]);
    if (opt->fold_groups > opt->n_folds)
        return ba_fail(err, BA_ERR_USAGE, "--fold-groups %d exceeds the %d folds",
                       opt->fold_groups, opt->n_folds);
    if (!(opt->tie_tolerance >= 0) || !isfinite(opt->tie_tolerance))
        return ba_fail(err, BA_ERR_USAGE, "the tie tolerance %g must be >= 0 (0 turns the "
                       "re-ranking off)", opt->tie_tolerance);
    if (opt->fold_gap < 0)
        return ba_fail(err, BA_ERR_USAGE, "the fold gap %ld must be >= 0", opt->fold_gap);
    if (D->p < 1) return ba_fail(err, BA_ERR_SHAPE, "X has no features");
    return BA_OK;
}

static ba_status check_bounds(const ba_ridge_data *D, int K, const long *bounds, long gap,
                              ba_error *err)
{
    for (int k = 0; k < K; k++) {
        if (bounds[k] < 0 || bounds[k + 1] > D->n || bounds[k + 1] < bounds[k])
            return ba_fail(err, BA_ERR_SHAPE, "fold %d: rows %ld-%ld are not inside 0-%ld", k,
                           bounds[k], bounds[k + 1], D->n);
        ba_fold_rows f = ba_fold_make_gap(D->n, bounds[k], bounds[k + 1], gap);
        if (f.n_test < 2 || f.n_train < 2)
            return ba_fail(err, BA_ERR_SHAPE,
                           "fold %d has %ld test and %ld training samples (fold gap %ld); "
                           "each needs >= 2", k, f.n_test, f.n_train, gap);
    }
    return BA_OK;
}

static ba_status check_y(const ba_ridge_layout *L, const ba_ridge_data *D, ba_error *err)
{
    long vloc = L->v_end - L->v_begin;
    for (long i = 0; i < D->n; i++)
        for (long j = 0; j < vloc; j++)
            if (!isfinite(D->y[i * vloc + j]))
                return ba_fail_about(err, BA_ABOUT_Y, BA_ERR_VALUE, "Y: sample %ld of voxel %ld is %s", i,
                               L->v_begin + j, isnan(D->y[i * vloc + j]) ? "NaN" : "infinite");
    for (long j = 0; j < vloc; j++) {
        float first = D->y[j];
        long i = 1;
        while (i < D->n && D->y[i * vloc + j] == first) i++;
        if (i == D->n)
            return ba_fail_about(err, BA_ABOUT_Y, BA_ERR_VALUE,
                           "Y: voxel %ld is constant (%g) over all %ld samples; remove it "
                           "or mask it out",
                           L->v_begin + j, (double)first, D->n);
    }
    return BA_OK;
}

/* ------------------------------------------------------- choosing alphas */

/* This rank's voxels whose best alphas are within the tie tolerance, for
 * the solver's refine_fold. */
typedef struct {
    long *voxels;
    long count, capacity;
} tie_list;

static ba_status push_tie(tie_list *t, long v, ba_error *err)
{
    if (t->count == t->capacity) {
        long capacity = t->capacity ? 2 * t->capacity : 64;
        long *grown = realloc(t->voxels, (size_t)capacity * sizeof *grown);
        if (!grown) return ba_fail(err, BA_ERR_NOMEM, "out of memory listing near-tied voxels");
        t->voxels = grown, t->capacity = capacity;
    }
    t->voxels[t->count++] = v;
    return BA_OK;
}

/* best[j]: the smallest loss of column j; on an exact tie the earlier
 * (smaller) alpha, as in scikit-learn. With `ties`, an owned column where
 * another alpha comes within the relative tolerance goes on the list. */
static ba_status choose_alphas(const double *loss, int n_alphas, const ba_ridge_block *B,
                               double tie_tolerance, tie_list *ties, int *best, ba_error *err)
{
    long bw = B->width;
    for (long j = 0; j < bw; j++) {
        int b = 0;
        for (int a = 1; a < n_alphas; a++)
            if (loss[(size_t)a * bw + j] < loss[(size_t)b * bw + j]) b = a;
        best[j] = b;
        if (!ties || j < B->own_begin || j >= B->own_end) continue;
        double limit = loss[(size_t)b * bw + j] * (1.0 + tie_tolerance);
        for (int a = 0; a < n_alphas; a++)
            if (a != b && loss[(size_t)a * bw + j] <= limit) {
                BA_CHECK(push_tie(ties, B->local0 + (j - B->own_begin), err));
                break;
            }
    }
    return BA_OK;
}

/* ------------------------------------------------------------- one fold */

typedef struct {
    long capacity;
    double *loss; /* [n_alphas][capacity] */
    int *best;    /* [capacity] */
    float *r;     /* [capacity] */
    tie_list ties;
} fold_buffers;

static ba_status run_fold(const ba_ridge_solver *S, const ba_ridge_fold *F, fold_buffers *W,
                          ba_ridge_progress *progress, ba_ridge_result *res, ba_error *err)
{
    const ba_ridge_solver_ops *ops = S->ops;
    const ba_ridge_layout *L = F->layout;
    const ba_ridge_options *opt = F->opt;
    long vloc = L->v_end - L->v_begin;
    float *r_fold = res->r_folds + (size_t)F->index * vloc;
    float *alpha_fold = res->alpha + (size_t)F->index * vloc;
    bool ties = ops->near_ties && opt->tie_tolerance > 0;
    W->ties.count = 0;

    double t0 = ba_now(), start = progress->done;
    ba_status rc = ops->prepare_fold(S->self, F, progress, err);
    res->timing.feature_seconds += ba_now() - t0;
    progress->done = start + ops->fold_units(S->self, F);
    ba_progress_update(progress->bar, progress->done, progress->total);
    rc = ba_mpi_agree(L->group, rc, err);

    if (rc == BA_OK) {
        double t1 = ba_now();
        long blocks = ops->n_blocks(S->self, F);
        for (long b = 0; b < blocks && rc == BA_OK; b++) {
            ba_ridge_block B = {0};
            rc = ops->score_block(S->self, F, b, &B, W->loss, err);
            if (rc == BA_OK && (B.width < 0 || B.width > W->capacity || B.own_begin < 0 ||
                                B.own_end > B.width || B.own_begin > B.own_end ||
                                B.local0 < 0 || B.local0 + (B.own_end - B.own_begin) > vloc))
                rc = ba_fail(err, BA_ERR_INTERNAL,
                             "ridge solver %s: block %ld of fold %d is malformed (width %ld "
                             "of at most %ld, own columns %ld-%ld, local voxel %ld of %ld)",
                             ops->who, b, F->index, B.width, W->capacity, B.own_begin,
                             B.own_end, B.local0, vloc);
            if (rc == BA_OK)
                rc = choose_alphas(W->loss, opt->n_alphas, &B, opt->tie_tolerance,
                                   ties ? &W->ties : NULL, W->best, err);
            if (rc == BA_OK) rc = ops->predict_block(S->self, F, &B, W->best, W->r, err);
            if (rc == BA_OK) rc = ba_fault("fit.ridge.voxels", err);
            for (long j = B.own_begin; rc == BA_OK && j < B.own_end; j++) {
                long v = B.local0 + (j - B.own_begin);
                r_fold[v] = W->r[j];
                alpha_fold[v] = (float)opt->alphas[W->best[j]];
            }
            ba_ridge_progress_step(progress);
            if (ops->collective_blocks) rc = ba_mpi_agree(L->group, rc, err);
        }
        res->timing.voxel_seconds += ba_now() - t1;
        if (!ops->collective_blocks) rc = ba_mpi_agree(L->group, rc, err);
    }
    if (rc == BA_OK && ops->refine_fold) {
        double t1 = ba_now();
        long refined = 0;
        rc = ops->refine_fold(S->self, F, W->ties.voxels, W->ties.count, r_fold, alpha_fold,
                              &refined, err);
        res->timing.tied_voxels += refined;
        res->timing.tie_seconds += ba_now() - t1;
    }
    ops->end_fold(S->self);
    return rc;
}

/* ------------------------------------------------------------ the driver */

ba_status ba_ridge_cv_run(const ba_ridge_layout *L, const ba_ridge_data *D,
                          const ba_ridge_options *opt, const ba_ridge_solver *S,
                          ba_ridge_result *res, ba_error *err)
{
    const ba_ridge_solver_ops *ops = S->ops;
    ba_status rc = BA_OK;
    int K = opt->n_folds > 0 ? opt->n_folds : 0;
    long vloc = L->v_end - L->v_begin;
    long bounds_store[K + 2];
    const long *bounds = opt->fold_bounds;
    int done[K > 0 ? K : 1]; /* folds finished (this run or a checkpoint) */
    fold_buffers W = {0};
    memset(res, 0, sizeof *res);

    rc = check_options(D, opt, err);
    if (rc == BA_OK && !bounds) {
        rc = ba_kfold_bounds(D->n, K, bounds_store, err);
        bounds = bounds_store;
    }
    if (rc == BA_OK) rc = check_bounds(D, K, bounds, opt->fold_gap, err);
    if (rc == BA_OK) rc = check_y(L, D, err);
    BA_TRY(ba_mpi_agree(L->world, rc, err), cleanup);

    res->n_folds = K;
    res->v_local = vloc;
    size_t cells = (size_t)K * (size_t)(vloc ? vloc : 1);
    res->r_folds = ba_calloc(cells, sizeof(float), "r", err);
    res->alpha = ba_calloc(cells, sizeof(float), "alpha", err);
    res->r = ba_calloc((size_t)(vloc ? vloc : 1), sizeof(float), "r", err);
    rc = (!res->r_folds || !res->alpha || !res->r) ? BA_ERR_NOMEM : BA_OK;
    BA_TRY(ba_mpi_agree(L->world, rc, err), cleanup);

    rc = ops->begin ? ops->begin(S->self, L, D, opt, err) : BA_OK;
    BA_TRY(ba_mpi_agree(L->world, rc, err), cleanup);
    W.capacity = ops->block_capacity(S->self);
    if (W.capacity < 1) W.capacity = 1;
    W.loss = ba_calloc((size_t)opt->n_alphas * (size_t)W.capacity, sizeof(double),
                       "leave-one-out losses", err);
    W.best = ba_calloc((size_t)W.capacity, sizeof(int), "best alphas", err);
    W.r = ba_calloc((size_t)W.capacity, sizeof(float), "r", err);
    rc = (!W.loss || !W.best || !W.r) ? BA_ERR_NOMEM : BA_OK;
    BA_TRY(ba_mpi_agree(L->world, rc, err), cleanup);

    ba_ridge_checkpoint_load(L, opt, ops->who, res, done);
    for (int k = 0; k < K; k++) res->n_folds_resumed += done[k];
    int rank = 0;
    MPI_Comm_rank(L->world, &rank);
    if (rank == 0 && !opt->quiet && res->n_folds_resumed > 0)
        fprintf(stderr, "%s: resuming: %d of %d folds done in %s\n", ops->who,
                res->n_folds_resumed, K, opt->checkpoint_path);

    ba_progress bar;
    ba_progress_begin(&bar, L->world, opt->quiet, ops->who);
    ba_ridge_progress progress = {&bar, 0, 0};
    for (int k = L->group_index; k < K; k += L->n_groups) {
        if (done[k]) continue;
        ba_ridge_fold F = {k, ba_fold_make_gap(D->n, bounds[k], bounds[k + 1], opt->fold_gap), L, D, opt};
        progress.total += ops->fold_units(S->self, &F) + (double)ops->n_blocks(S->self, &F);
    }

    int rounds = (K + L->n_groups - 1) / L->n_groups;
    for (int round = 0; round < rounds; round++) {
        int k = round * L->n_groups + L->group_index;
        int first = round * L->n_groups, last = first + L->n_groups < K ? first + L->n_groups : K;
        bool round_done = true;
        for (int j = first; j < last; j++) round_done = round_done && done[j];
        if (round_done) continue; /* resumed from the checkpoint */
        if (k < K && !done[k]) {
            ba_ridge_fold F = {k, ba_fold_make_gap(D->n, bounds[k], bounds[k + 1], opt->fold_gap), L, D, opt};
            rc = run_fold(S, &F, &W, &progress, res, err);
        }
        BA_TRY(ba_mpi_agree(L->world, rc, err), cleanup);
        BA_TRY(ba_ridge_end_of_round(L, opt, ops->who, ops->announce_checkpoints || !bar.tty,
                                     res, done, first, last, err), cleanup);
    }

    /* Each rank holds its group's folds for its voxels; the same voxels sit
     * on the same group rank in every group, so summing across groups
     * (every entry has one non-zero contributor) combines them exactly. */
    double t2 = ba_now();
    if (L->n_groups > 1 && vloc > 0) {
        int count = (int)((size_t)K * (size_t)vloc);
        BA_TRY(ba_mpi_check(MPI_Allreduce(MPI_IN_PLACE, res->r_folds, count, MPI_FLOAT,
                                          MPI_SUM, L->across), "combining folds", err), cleanup);
        BA_TRY(ba_mpi_check(MPI_Allreduce(MPI_IN_PLACE, res->alpha, count, MPI_FLOAT,
                                          MPI_SUM, L->across), "combining folds", err), cleanup);
    }
    for (long j = 0; j < vloc; j++) {
        double s = 0;
        for (int k = 0; k < K; k++) s += res->r_folds[(size_t)k * vloc + j];
        res->r[j] = (float)(s / K);
    }
    res->timing.exchange_seconds = ba_now() - t2;
    ba_progress_end(&bar);
    if (ops->finish) BA_TRY(ops->finish(S->self, res, err), cleanup);

cleanup:
    free(W.loss);
    free(W.best);
    free(W.r);
    free(W.ties.voxels);
    ops->destroy(S->self);
    if (rc != BA_OK) ba_ridge_result_free(res);
    return rc;
}
