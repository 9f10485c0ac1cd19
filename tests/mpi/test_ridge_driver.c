/* test_ridge_driver.c — the one ridge cross-validation driver (src/ridge/
 * driver.c) with a fake solver: a third table of operations whose
 * leave-one-out losses are a known function of (fold, voxel, alpha), with
 * planted exact ties, near-ties and clear gaps. The test computes on its
 * own what the driver must make of them: the alpha of every (fold, voxel)
 * (smallest loss, the earlier alpha on an exact tie), the near-tied voxels
 * handed to refine_fold, the KFold rows handed to prepare_fold, the folds of
 * each fold group and their combination, the mean r, restart from a
 * checkpoint and one rank's failure reaching every rank. A solver that
 * chose for itself, or a driver that skipped a step, fails it. Run on 1, 2
 * and 4 ranks (tests/CMakeLists.txt). */
#include <mpi.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "brainalign/ridge/ridge.h"
#include "../../src/ridge/solver.h"

enum { MAX_FOLDS = 8, N_ALPHAS = 6 };

/* ---------------------------------------------------------- ground truth */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

/* The loss of alpha a for global voxel v in fold k. Voxels v % 5 == 0:
 * alphas 2 and 4 tie exactly at the minimum; == 1: alpha 1 is the best and
 * alpha 3 is 1e-7 (relative) behind; == 2: alpha 5 is the best, alpha 0 is
 * 1e-4 behind (no near-tie); otherwise pseudo-random in [1, 2) with the
 * minimum wherever it falls. */
static double fake_loss(int k, long v, int a)
{
    double base = 1.0 + (double)(mix((uint64_t)k * 1000003u + (uint64_t)v * 31u + (uint64_t)a) %
                                 1000000u) / 1e6;
    double low = 0.5 + 0.01 * (double)k;
    switch (v % 5) {
    case 0: return a == 2 || a == 4 ? low : base;
    case 1: return a == 1 ? low : a == 3 ? low * (1 + 1e-7) : base;
    case 2: return a == 5 ? low : a == 0 ? low * (1 + 1e-4) : base;
    default: return base;
    }
}

static int expected_best(int k, long v)
{
    int best = 0;
    for (int a = 1; a < N_ALPHAS; a++)
        if (fake_loss(k, v, a) < fake_loss(k, v, best)) best = a;
    return best;
}

static bool expected_tie(int k, long v, double tolerance)
{
    int best = expected_best(k, v);
    for (int a = 0; a < N_ALPHAS; a++)
        if (a != best && fake_loss(k, v, a) <= fake_loss(k, v, best) * (1 + tolerance))
            return true;
    return false;
}

/* The r the fake solver reports for a voxel refit with alpha `best`. */
static float fake_r(int k, long v, int best)
{
    return (float)(0.01 * (k + 1) + 0.1 * best + 1e-4 * (double)v);
}

/* The r refine_fold writes for a near-tied voxel. */
static float refined_r(int k, long v)
{
    /* negative, so never an r of fake_r, and a correlation all the same (a
     * checkpoint holding it is validated on resume) */
    return (float)(-0.5 - 0.01 * k - 1e-4 * (double)v);
}

/* ------------------------------------------------------- the fake solver */

typedef struct {
    bool global_blocks; /* Krylov-like blocks of the group's voxels, else my own */
    long width;         /* voxels per block */
    int fail_rank, fail_fold; /* prepare_fold fails there (-1: never) */
    int fail_score_rank;      /* score_block fails there, my own blocks only (-1: never) */
    volatile sig_atomic_t *stop_in_fold0; /* set during fold 0 (a signal) */
    /* What the driver did. */
    const ba_ridge_layout *L;
    int begun, finished, destroyed, open;
    int prepared[MAX_FOLDS];
    ba_fold_rows rows[MAX_FOLDS];
    long refined[MAX_FOLDS];  /* voxels handed to refine_fold, mine */
    long wrong_refined;       /* of them, not near-tied */
    long blocks_scored;
} fake;

static ba_status fake_begin(void *self, const ba_ridge_layout *L, const ba_ridge_data *D,
                            const ba_ridge_options *opt, ba_error *err)
{
    (void)D, (void)opt, (void)err;
    fake *F = self;
    F->L = L;
    F->begun++;
    return BA_OK;
}

static long fake_capacity(void *self)
{
    return ((fake *)self)->width;
}

static double fake_units(void *self, const ba_ridge_fold *fold)
{
    (void)self, (void)fold;
    return 1;
}

static long fake_n_blocks(void *self, const ba_ridge_fold *fold)
{
    const fake *F = self;
    long count = F->global_blocks ? fold->layout->v_total
                                  : fold->layout->v_end - fold->layout->v_begin;
    return (count + F->width - 1) / F->width;
}

static ba_status fake_prepare(void *self, const ba_ridge_fold *fold, ba_ridge_progress *progress,
                              ba_error *err)
{
    (void)progress;
    fake *F = self;
    int rank = 0;
    MPI_Comm_rank(fold->layout->world, &rank);
    F->open++;
    F->prepared[fold->index]++;
    F->rows[fold->index] = fold->rows;
    if (fold->index == 0 && F->stop_in_fold0) *F->stop_in_fold0 = 1;
    if (rank == F->fail_rank && fold->index == F->fail_fold)
        return ba_fail(err, BA_ERR_NUMERIC, "fake solver: fold %d fails on rank %d",
                       fold->index, rank);
    return BA_OK;
}

static ba_status fake_score(void *self, const ba_ridge_fold *fold, long b, ba_ridge_block *B,
                            double *loss, ba_error *err)
{
    fake *F = self;
    const ba_ridge_layout *L = fold->layout;
    long v_first; /* global voxel of column 0 */
    if (F->global_blocks) {
        long v0 = b * F->width;
        long width = L->v_total - v0 < F->width ? L->v_total - v0 : F->width;
        long own0 = L->v_begin > v0 ? L->v_begin : v0;
        long own1 = L->v_end < v0 + width ? L->v_end : v0 + width;
        if (own1 > own0) *B = (ba_ridge_block){width, own0 - v0, own1 - v0, own0 - L->v_begin};
        else *B = (ba_ridge_block){width, 0, 0, 0};
        v_first = v0;
    } else {
        long c0 = b * F->width, vloc = L->v_end - L->v_begin;
        long width = vloc - c0 < F->width ? vloc - c0 : F->width;
        *B = (ba_ridge_block){width, 0, width, c0};
        v_first = L->v_begin + c0;
        int rank = 0;
        MPI_Comm_rank(L->world, &rank);
        if (rank == F->fail_score_rank && fold->index == 1)
            return ba_fail(err, BA_ERR_NUMERIC, "fake solver: block %ld fails on rank %d", b,
                           rank);
    }
    for (int a = 0; a < N_ALPHAS; a++)
        for (long j = 0; j < B->width; j++)
            loss[(size_t)a * B->width + j] = fake_loss(fold->index, v_first + j, a);
    F->blocks_scored++;
    return BA_OK;
}

static ba_status fake_predict(void *self, const ba_ridge_fold *fold, const ba_ridge_block *B,
                              const int *best, float *r, ba_error *err)
{
    (void)err;
    const fake *F = self;
    const ba_ridge_layout *L = fold->layout;
    /* Global voxel of column j: own columns map to local voxels. */
    for (long j = B->own_begin; j < B->own_end; j++) {
        long v = L->v_begin + B->local0 + (j - B->own_begin);
        r[j] = fake_r(fold->index, v, best[j]);
    }
    (void)F;
    return BA_OK;
}

static ba_status fake_refine(void *self, const ba_ridge_fold *fold, const long *voxels,
                             long count, float *r_fold, float *alpha_fold, long *n_group,
                             ba_error *err)
{
    (void)alpha_fold;
    fake *F = self;
    const ba_ridge_layout *L = fold->layout;
    for (long i = 0; i < count; i++) {
        long v = L->v_begin + voxels[i];
        if (!expected_tie(fold->index, v, fold->opt->tie_tolerance)) F->wrong_refined++;
        r_fold[voxels[i]] = refined_r(fold->index, v);
    }
    F->refined[fold->index] += count;
    *n_group = count;
    return ba_mpi_check(MPI_Allreduce(MPI_IN_PLACE, n_group, 1, MPI_LONG, MPI_SUM, L->group),
                        "fake refine", err);
}

static void fake_end_fold(void *self)
{
    ((fake *)self)->open--;
}

static ba_status fake_finish(void *self, ba_ridge_result *res, ba_error *err)
{
    (void)res, (void)err;
    ((fake *)self)->finished++;
    return BA_OK;
}

static void fake_destroy(void *self)
{
    ((fake *)self)->destroyed++;
}

static const ba_ridge_solver_ops own_ops = {
    .who = "fake ridge",
    .collective_blocks = false,
    .near_ties = true,
    .begin = fake_begin,
    .block_capacity = fake_capacity,
    .fold_units = fake_units,
    .n_blocks = fake_n_blocks,
    .prepare_fold = fake_prepare,
    .score_block = fake_score,
    .predict_block = fake_predict,
    .refine_fold = fake_refine,
    .end_fold = fake_end_fold,
    .finish = fake_finish,
    .destroy = fake_destroy,
};

/* Krylov-like: blocks of the group's voxels, collective, no near-ties. */
static const ba_ridge_solver_ops global_ops = {
    .who = "fake ridge (global blocks)",
    .announce_checkpoints = true,
    .collective_blocks = true,
    .near_ties = false,
    .begin = fake_begin,
    .block_capacity = fake_capacity,
    .fold_units = fake_units,
    .n_blocks = fake_n_blocks,
    .prepare_fold = fake_prepare,
    .score_block = fake_score,
    .predict_block = fake_predict,
    .refine_fold = NULL,
    .end_fold = fake_end_fold,
    .finish = fake_finish,
    .destroy = fake_destroy,
};

/* ------------------------------------------------------------- harness */

static ba_status no_x(void *ctx, long row0, long n_rows, float *out, ba_error *err)
{
    (void)ctx, (void)row0, (void)n_rows, (void)out;
    return ba_fail(err, BA_ERR_INTERNAL, "the driver itself must never read X");
}

typedef struct {
    long n, v;
    int groups;
    double alphas[N_ALPHAS];
    ba_ridge_options opt;
    ba_ridge_layout L;
    float *y; /* [n][vloc] */
    ba_ridge_data D;
} setup;

/* Returns false (and sets nothing up) when the rank count does not split
 * into `groups`. */
static bool setup_make(setup *S, long n, long v, int folds, int groups)
{
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size % groups != 0) return false;
    memset(S, 0, sizeof *S);
    S->n = n, S->v = v, S->groups = groups;
    for (int a = 0; a < N_ALPHAS; a++) S->alphas[a] = pow(10.0, a - 1.0);
    ba_ridge_options_init(&S->opt);
    S->opt.n_folds = folds;
    S->opt.alphas = S->alphas;
    S->opt.n_alphas = N_ALPHAS;
    S->opt.fold_groups = groups;
    S->opt.quiet = true;
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(ba_ridge_layout_create(MPI_COMM_WORLD, groups, v, &S->L, &err), BA_OK);
    long vloc = S->L.v_end - S->L.v_begin;
    S->y = malloc(sizeof(float) * (size_t)n * (size_t)(vloc ? vloc : 1));
    for (long i = 0; i < n; i++)
        for (long j = 0; j < vloc; j++)
            S->y[i * vloc + j] = (float)((mix((uint64_t)i * 7919u + (uint64_t)(S->L.v_begin + j)) %
                                          1000u) / 100.0);
    S->D = (ba_ridge_data){.n = n, .p = 3, .read_x = no_x, .x_ctx = NULL, .y = S->y};
    return true;
}

static void setup_free(setup *S)
{
    free(S->y);
    ba_ridge_layout_destroy(&S->L);
}

static fake fake_make(bool global_blocks, long width)
{
    fake F;
    memset(&F, 0, sizeof F);
    F.global_blocks = global_blocks;
    F.width = width;
    F.fail_rank = F.fail_fold = F.fail_score_rank = -1;
    return F;
}

static ba_status run(setup *S, fake *F, ba_ridge_result *res, ba_error *err)
{
    ba_ridge_solver solver = {F->global_blocks ? &global_ops : &own_ops, F};
    ba_error_clear(err);
    return ba_ridge_cv_run(&S->L, &S->D, &S->opt, &solver, res, err);
}

/* Every (fold, voxel) of my voxels: the alpha the losses say, r from the
 * refit with it (or refine's r for near-ties), the mean over folds. */
static void check_result(const setup *S, const fake *F, const ba_ridge_result *res,
                         bool ties_refined)
{
    const ba_ridge_layout *L = &S->L;
    long vloc = L->v_end - L->v_begin;
    int K = S->opt.n_folds;
    assert_int_equal(res->n_folds, K);
    assert_int_equal(res->v_local, vloc);
    long ties = 0, wrong_alpha = 0, wrong_r = 0, wrong_mean = 0;
    for (long j = 0; j < vloc; j++) {
        long v = L->v_begin + j;
        double sum = 0;
        for (int k = 0; k < K; k++) {
            int best = expected_best(k, v);
            bool tie = ties_refined && expected_tie(k, v, S->opt.tie_tolerance);
            ties += tie;
            float want_r = tie ? refined_r(k, v) : fake_r(k, v, best);
            if (res->alpha[(size_t)k * vloc + j] != (float)S->alphas[best]) wrong_alpha++;
            if (res->r_folds[(size_t)k * vloc + j] != want_r) wrong_r++;
            sum += want_r;
        }
        if (res->r[j] != (float)(sum / K)) wrong_mean++;
    }
    if (wrong_alpha || wrong_r || wrong_mean)
        fail_msg("%ld alphas, %ld fold r and %ld mean r differ from the losses' ground truth",
                 wrong_alpha, wrong_r, wrong_mean);
    assert_int_equal(F->wrong_refined, 0);
    /* Every near-tie of my group's folds went to refine_fold, nothing else
     * (my share: refine_fold sees my voxels only). */
    long refined = 0, want = 0;
    for (int k = L->group_index; k < K; k += L->n_groups) {
        refined += F->refined[k];
        for (long j = 0; ties_refined && j < vloc; j++)
            want += expected_tie(k, L->v_begin + j, S->opt.tie_tolerance);
    }
    assert_int_equal(refined, want);
    (void)ties;
    assert_int_equal(F->open, 0);
    assert_int_equal(F->destroyed, 1);
}

/* Fold k of n as KFold(K) makes it: the first n % K folds one longer. */
static void kfold_rows(long n, int K, int k, long *begin, long *end)
{
    long b = 0;
    for (int i = 0; i < k; i++) b += n / K + (i < n % K ? 1 : 0);
    *begin = b;
    *end = b + n / K + (k < n % K ? 1 : 0);
}

/* Each of my group's folds prepared once, with its rows; no other fold. */
static void check_folds(const setup *S, const fake *F, const long *bounds)
{
    const ba_ridge_layout *L = &S->L;
    for (int k = 0; k < S->opt.n_folds; k++) {
        bool mine = k % L->n_groups == L->group_index;
        assert_int_equal(F->prepared[k], mine ? 1 : 0);
        if (!mine) continue;
        long b, e;
        if (bounds) b = bounds[k], e = bounds[k + 1];
        else kfold_rows(S->n, S->opt.n_folds, k, &b, &e);
        const ba_fold_rows *f = &F->rows[k];
        assert_int_equal(f->test_begin, b);
        assert_int_equal(f->test_end, e);
        assert_int_equal(f->n, S->n);
        assert_int_equal(f->n_test, e - b);
        assert_int_equal(f->n_train, S->n - (e - b));
    }
}

/* ---------------------------------------------------------------- tests */

static void test_options_init(void **state)
{
    (void)state;
    ba_ridge_options opt;
    memset(&opt, 0x5a, sizeof opt);
    ba_ridge_options_init(&opt);
    assert_true(opt.tie_tolerance == 1e-6);
    assert_int_equal(opt.fold_groups, 1);
    assert_int_equal(opt.n_folds, 0);
    assert_null(opt.alphas);
    assert_null(opt.checkpoint_path);
    assert_false(opt.quiet);
}

/* My own blocks, one group, KFold bounds, near-ties refined. */
static void test_choices_own_blocks(void **state)
{
    (void)state;
    setup S;
    assert_true(setup_make(&S, 23, 37, 5, 1));
    fake F = fake_make(false, 4);
    ba_ridge_result res;
    ba_error err;
    assert_int_equal(run(&S, &F, &res, &err), BA_OK);
    assert_int_equal(F.begun, 1);
    assert_int_equal(F.finished, 1);
    check_folds(&S, &F, NULL);
    check_result(&S, &F, &res, true);
    /* tied_voxels: the group's refined voxels summed over the folds. */
    long want = 0;
    for (int k = 0; k < 5; k++)
        for (long v = 0; v < S.v; v++) want += expected_tie(k, v, S.opt.tie_tolerance);
    assert_int_equal(res.timing.tied_voxels, want);
    assert_true(want > 0);
    ba_ridge_result_free(&res);
    setup_free(&S);
}

/* tie_tolerance 0 turns the near-tie list off; the choices stay. */
static void test_ties_off(void **state)
{
    (void)state;
    setup S;
    assert_true(setup_make(&S, 23, 37, 5, 1));
    S.opt.tie_tolerance = 0;
    fake F = fake_make(false, 5);
    ba_ridge_result res;
    ba_error err;
    assert_int_equal(run(&S, &F, &res, &err), BA_OK);
    check_result(&S, &F, &res, false);
    assert_int_equal(res.timing.tied_voxels, 0);
    ba_ridge_result_free(&res);
    setup_free(&S);
}

/* Krylov-like global blocks; two fold groups (where the ranks split) with
 * the folds of each group combined on every rank. */
static void test_two_groups_global_blocks(void **state)
{
    (void)state;
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (int groups = 1; groups <= 2; groups++) {
        setup S;
        if (!setup_make(&S, 31, 29, 5, groups)) continue;
        fake F = fake_make(true, 6);
        ba_ridge_result res;
        ba_error err;
        assert_int_equal(run(&S, &F, &res, &err), BA_OK);
        check_folds(&S, &F, NULL);
        check_result(&S, &F, &res, false);
        /* Blocks are the group's: every rank scores all of them. */
        long per_fold = (S.v + 5) / 6, mine = 0;
        for (int k = S.L.group_index; k < 5; k += S.L.n_groups) mine += per_fold;
        assert_int_equal(F.blocks_scored, mine);
        ba_ridge_result_free(&res);
        setup_free(&S);
    }
    (void)size;
}

/* Given bounds (story-wise folds) instead of KFold. */
static void test_given_bounds(void **state)
{
    (void)state;
    setup S;
    assert_true(setup_make(&S, 23, 11, 4, 1));
    long bounds[5] = {0, 3, 10, 12, 23};
    S.opt.fold_bounds = bounds;
    fake F = fake_make(false, 3);
    ba_ridge_result res;
    ba_error err;
    assert_int_equal(run(&S, &F, &res, &err), BA_OK);
    check_folds(&S, &F, bounds);
    check_result(&S, &F, &res, true);
    ba_ridge_result_free(&res);
    setup_free(&S);
}

/* Checks come before the solver is touched, with one message on every
 * rank. */
static void test_bad_inputs(void **state)
{
    (void)state;
    setup S;
    assert_true(setup_make(&S, 23, 11, 4, 1));
    ba_ridge_result res;
    ba_error err;
    struct { const char *what; ba_status status; } cases[] = {
        {"must be >= 0", BA_ERR_USAGE},
        {"fold 1 has 1 test", BA_ERR_SHAPE},
        {"need at least one fold", BA_ERR_USAGE},
        {"alpha -1 must be positive", BA_ERR_USAGE},
        {"is constant", BA_ERR_VALUE},
    };
    for (int c = 0; c < 5; c++) {
        setup T = S;
        long bounds[5] = {0, 3, 4, 12, 23};
        double alphas[N_ALPHAS];
        memcpy(alphas, S.alphas, sizeof alphas);
        float *y = malloc(sizeof(float) * (size_t)S.n * (size_t)(S.L.v_end - S.L.v_begin + 1));
        memcpy(y, S.y, sizeof(float) * (size_t)S.n * (size_t)(S.L.v_end - S.L.v_begin));
        if (c == 0) T.opt.tie_tolerance = -1;
        if (c == 1) T.opt.fold_bounds = bounds;
        if (c == 2) T.opt.n_folds = 0;
        if (c == 3) alphas[2] = -1, T.opt.alphas = alphas;
        if (c == 4) { /* the last voxel constant, on the rank that has it */
            long vloc = S.L.v_end - S.L.v_begin;
            if (S.L.v_end == S.v && vloc > 0)
                for (long i = 0; i < S.n; i++) y[i * vloc + vloc - 1] = 3.0f;
            T.D.y = y;
        }
        fake F = fake_make(false, 4);
        assert_int_equal(run(&T, &F, &res, &err), cases[c].status);
        if (!strstr(err.message, cases[c].what))
            fail_msg("case %d: '%s' lacks '%s'", c, err.message, cases[c].what);
        assert_int_equal(F.begun, 0);
        assert_int_equal(F.prepared[0] + F.prepared[1], 0);
        assert_null(res.r_folds);
        free(y);
    }
    setup_free(&S);
}

/* One rank fails (feature side; then a block of its own voxels): every
 * rank returns the one message, the fold is closed, nothing hangs. */
static void test_failure_on_one_rank(void **state)
{
    (void)state;
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (int where = 0; where < 2; where++) {
        setup S;
        assert_true(setup_make(&S, 23, 37, 5, 1));
        fake F = fake_make(false, 4);
        if (where == 0) F.fail_rank = size - 1, F.fail_fold = 2;
        else F.fail_score_rank = size - 1;
        ba_ridge_result res;
        ba_error err;
        assert_int_equal(run(&S, &F, &res, &err), BA_ERR_NUMERIC);
        char want[64];
        if (where == 0) snprintf(want, sizeof want, "fold 2 fails on rank %d", size - 1);
        else snprintf(want, sizeof want, "fails on rank %d", size - 1);
        if (!strstr(err.message, want)) fail_msg("'%s' lacks '%s'", err.message, want);
        assert_int_equal(F.open, 0);
        assert_int_equal(F.destroyed, 1);
        assert_int_equal(F.finished, 0);
        assert_null(res.r_folds);
        /* No later fold started anywhere. */
        int first_bad = where == 0 ? 2 : 1;
        for (int k = first_bad + 1; k < 5; k++) assert_int_equal(F.prepared[k], 0);
        setup_free(&S);
    }
}

/* A stop request during fold 0 ends the run after the first round with
 * the round saved; the rerun resumes it (never preparing those folds) and
 * gives the same result as an uninterrupted run. */
static void test_restart(void **state)
{
    (void)state;
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int groups = size % 2 == 0 ? 2 : 1;
    setup S;
    assert_true(setup_make(&S, 29, 19, 5, groups));
    char path[1024] = "";
    if (rank == 0) snprintf(path, sizeof path, "%s/driver-ckpt.h5", ba_test_tmpdir());
    MPI_Bcast(path, sizeof path, MPI_CHAR, 0, MPI_COMM_WORLD);
    volatile sig_atomic_t stop = 0;
    S.opt.checkpoint_path = path;
    S.opt.checkpoint_key = "driver test";
    S.opt.stop_requested = &stop;

    fake F = fake_make(false, 4);
    F.stop_in_fold0 = &stop;
    ba_ridge_result res;
    ba_error err;
    assert_int_equal(run(&S, &F, &res, &err), BA_ERR_INTERRUPTED);
    char want[64];
    snprintf(want, sizeof want, "after %d of 5 folds", groups);
    if (!strstr(err.message, want)) fail_msg("'%s' lacks '%s'", err.message, want);
    assert_int_equal(F.destroyed, 1);

    stop = 0;
    fake G = fake_make(false, 4);
    assert_int_equal(run(&S, &G, &res, &err), BA_OK);
    assert_int_equal(res.n_folds_resumed, groups);
    for (int k = 0; k < groups; k++) assert_int_equal(G.prepared[k], 0);
    for (int k = groups; k < 5; k++)
        assert_int_equal(G.prepared[k], k % groups == S.L.group_index ? 1 : 0);
    /* The resumed folds' near-ties were refined in the first run. */
    for (int k = 0; k < groups; k++) G.refined[k] = F.refined[k];
    check_result(&S, &G, &res, true);
    ba_ridge_result_free(&res);

    /* Another key starts afresh. */
    S.opt.checkpoint_key = "another key";
    fake H = fake_make(false, 4);
    assert_int_equal(run(&S, &H, &res, &err), BA_OK);
    assert_int_equal(res.n_folds_resumed, 0);
    check_result(&S, &H, &res, true);
    ba_ridge_result_free(&res);
    setup_free(&S);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_init),
        cmocka_unit_test(test_choices_own_blocks),
        cmocka_unit_test(test_ties_off),
        cmocka_unit_test(test_two_groups_global_blocks),
        cmocka_unit_test(test_given_bounds),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_failure_on_one_rank),
        cmocka_unit_test(test_restart),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    MPI_Finalize();
    return failed;
}
