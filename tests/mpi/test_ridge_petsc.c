/* test_ridge_petsc.c — the PETSc (KSP) ridge path against the ScaLAPACK
 * path (ba_ridge_cv) and the plain reference, on every rank count the test
 * runs with (1, 2 and 4: tests/CMakeLists.txt, BA_MPI_RANKS_test_ridge_petsc): dual- and primal-sized folds,
 * one and several fold groups, CG and LSQR, the pass-through of PETSc
 * options (rtol, max_it, pc_type, bad names) and the approximate
 * (Hutchinson) hat diagonal. */
#include <mpi.h>
#include <math.h>
#include <petscsys.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "brainalign/ridge/ridge.h"
#include "brainalign/ridge/ridge_petsc.h"
#include "brainalign/core/rng.h"

typedef struct {
    long n, p, v;
    float *x, *y;
} problem;

/* Correlated features (a few latent factors plus noise, as hidden states
 * are), Y = X W + noise with a signal strength that grows with the voxel
 * index so that the chosen alphas spread over the grid. */
static problem make_problem(long n, long p, long v, uint64_t seed)
{
    problem P = {n, p, v, malloc(sizeof(float) * n * p), malloc(sizeof(float) * n * v)};
    ba_rng rng;
    ba_rng_seed(&rng, seed, 0);
    int factors = 5;
    double *load = malloc(sizeof(double) * factors * p), *f = malloc(sizeof(double) * factors);
    for (long i = 0; i < factors * p; i++) load[i] = ba_rng_normal(&rng);
    for (long i = 0; i < n; i++) {
        for (int k = 0; k < factors; k++) f[k] = ba_rng_normal(&rng);
        for (long j = 0; j < p; j++) {
            double s = ba_rng_normal(&rng);
            for (int k = 0; k < factors; k++) s += 0.7 * f[k] * load[k * p + j];
            P.x[i * p + j] = (float)(s + 0.1 * j);
        }
    }
    double *w = malloc(sizeof(double) * p * v);
    for (long i = 0; i < p * v; i++) w[i] = ba_rng_normal(&rng);
    for (long j = 0; j < v; j++) {
        double snr = 0.02 + 1.5 * j / v;
        for (long i = 0; i < n; i++) {
            double s = 0;
            for (long k = 0; k < p; k++) s += P.x[i * p + k] * w[k * v + j];
            P.y[i * v + j] = (float)(snr * s / sqrt((double)p) / 3.0 + ba_rng_normal(&rng) + 2.0);
        }
    }
    free(w); free(load); free(f);
    return P;
}

static void problem_free(problem *P) { free(P->x); free(P->y); }

static ba_status read_rows(void *ctx, long row0, long n_rows, float *out, ba_error *err)
{
    (void)err;
    const problem *P = ctx;
    memcpy(out, P->x + row0 * P->p, sizeof(float) * n_rows * P->p);
    return BA_OK;
}

typedef struct {
    ba_ridge_layout L;
    float *ylocal;
    ba_ridge_data D;
    ba_ridge_options opt;
    double alphas[10];
} setup;

static void setup_make(setup *S, problem *P, int groups, long block)
{
    ba_error err;
    ba_error_clear(&err);
    for (int a = 0; a < 10; a++) S->alphas[a] = pow(10.0, -1.0 + a);
    S->opt = (ba_ridge_options){.n_folds = 5, .alphas = S->alphas, .n_alphas = 10,
                                .fold_groups = groups, .voxel_block = block,
                                .block_size = 8, .quiet = true};
    assert_int_equal(ba_ridge_layout_create(MPI_COMM_WORLD, groups, P->v, &S->L, &err), BA_OK);
    long vloc = S->L.v_end - S->L.v_begin;
    S->ylocal = malloc(sizeof(float) * P->n * (vloc ? vloc : 1));
    for (long i = 0; i < P->n; i++)
        memcpy(S->ylocal + i * vloc, P->y + i * P->v + S->L.v_begin, sizeof(float) * vloc);
    S->D = (ba_ridge_data){P->n, P->p, read_rows, P, S->ylocal};
}

static void setup_free(setup *S)
{
    ba_ridge_layout_destroy(&S->L);
    free(S->ylocal);
}

static void run_petsc(setup *S, ba_ridge_result *R, ba_ridge_petsc_stats *st)
{
    ba_error err;
    ba_error_clear(&err);
    if (ba_ridge_cv_petsc_stats(&S->L, &S->D, &S->opt, R, st, &err) != BA_OK)
        fail_msg("ba_ridge_cv_petsc: %s", err.message);
}

static void run_scalapack(setup *S, ba_ridge_result *R)
{
    ba_error err;
    ba_error_clear(&err);
    if (ba_ridge_cv(&S->L, &S->D, &S->opt, R, &err) != BA_OK)
        fail_msg("ba_ridge_cv: %s", err.message);
}

typedef struct {
    double max_dr;    /* over every voxel and fold, all ranks */
    long alpha_diff;  /* fold-voxel cells with a different alpha */
    long cells;
} comparison;

static comparison compare(const setup *S, const ba_ridge_result *a, const ba_ridge_result *b)
{
    comparison c = {0, 0, 0};
    long vloc = S->L.v_end - S->L.v_begin;
    for (long i = 0; i < S->opt.n_folds * vloc; i++) {
        double dr = fabs(a->r_folds[i] - b->r_folds[i]);
        if (dr > c.max_dr) c.max_dr = dr;
        if (a->alpha[i] != b->alpha[i]) c.alpha_diff++;
    }
    c.cells = S->opt.n_folds * vloc;
    MPI_Allreduce(MPI_IN_PLACE, &c.max_dr, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &c.alpha_diff, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &c.cells, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    return c;
}

/* Same alphas "for nearly all voxels": at most 2% of the fold-voxel cells
 * (near-ties of the leave-one-out loss may flip). */
static void expect_agreement(const char *what, comparison c, double tolerance)
{
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0)
        print_message("%s: max |dr| %.2e, %ld of %ld alpha choices differ\n", what, c.max_dr,
                      c.alpha_diff, c.cells);
    if (!(c.max_dr < tolerance) || c.alpha_diff * 50 > c.cells)
        fail_msg("%s: max |dr| %.3g (tolerance %.0e), %ld of %ld alphas differ", what, c.max_dr,
                 tolerance, c.alpha_diff, c.cells);
}

/* The PETSc path against the ScaLAPACK path and, for the alphas, against
 * the plain double-precision reference. */
static void agree_with_scalapack(long n, long p, long v, int groups, long block, const char *what)
{
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size % groups != 0) skip();
    problem P = make_problem(n, p, v, 99 + (uint64_t)(n * 13 + p));
    setup S;
    setup_make(&S, &P, groups, block);
    ba_ridge_result Rp, Rs;
    ba_ridge_petsc_stats st;
    run_petsc(&S, &Rp, &st);
    run_scalapack(&S, &Rs);
    expect_agreement(what, compare(&S, &Rp, &Rs), 1e-4);
    assert_true(st.exact_hat);
    assert_true(st.iterations > 0 && st.block_solves > 0);
    /* r is the mean over folds. */
    for (long j = 0; j < Rp.v_local; j++) {
        double s = 0;
        for (int k = 0; k < 5; k++) s += Rp.r_folds[k * Rp.v_local + j];
        assert_true(fabs(s / 5 - Rp.r[j]) < 1e-6);
    }
    /* The plain reference (Cholesky per alpha, double precision). */
    float *r_ref = malloc(sizeof(float) * 5 * v), *a_ref = malloc(sizeof(float) * 5 * v);
    ba_error err;
    assert_int_equal(ba_ridge_cv_reference(n, p, P.x, v, P.y, &S.opt, r_ref, a_ref, &err), BA_OK);
    long vloc = S.L.v_end - S.L.v_begin;
    ba_ridge_result Rr = {.n_folds = 5, .v_local = vloc,
                          .r_folds = malloc(sizeof(float) * 5 * (vloc ? vloc : 1)),
                          .alpha = malloc(sizeof(float) * 5 * (vloc ? vloc : 1))};
    for (int k = 0; k < 5; k++)
        for (long j = 0; j < vloc; j++) {
            Rr.r_folds[k * vloc + j] = r_ref[k * v + S.L.v_begin + j];
            Rr.alpha[k * vloc + j] = a_ref[k * v + S.L.v_begin + j];
        }
    char label[128];
    snprintf(label, sizeof label, "%s vs reference", what);
    expect_agreement(label, compare(&S, &Rp, &Rr), 1e-4);
    free(Rr.r_folds); free(Rr.alpha); free(r_ref); free(a_ref);
    ba_ridge_result_free(&Rp);
    ba_ridge_result_free(&Rs);
    setup_free(&S);
    problem_free(&P);
}

/* n_train = 176 <= p: the dual (kernel) form in every fold. */
static void test_dual(void **s) { (void)s; agree_with_scalapack(220, 440, 24, 1, 0, "dual"); }
/* n_train = 200 > p: the primal form. */
static void test_primal(void **s) { (void)s; agree_with_scalapack(250, 100, 20, 1, 0, "primal"); }
/* Fold 0 has n_train = 160 = p (dual), the others 161 (primal); two fold
 * groups share the folds; blocks of 8. */
static void test_mixed_two_groups(void **s) { (void)s; agree_with_scalapack(201, 160, 29, 2, 8, "mixed, 2 groups"); }
/* Blocks of 5 right-hand sides (the last one padded). */
static void test_dual_small_blocks(void **s) { (void)s; agree_with_scalapack(120, 200, 21, 1, 5, "dual, blocks of 5"); }

static void set_option(const char *name, const char *value)
{
    assert_int_equal(PetscOptionsSetValue(NULL, name, value), 0);
}

static void clear_option(const char *name)
{
    assert_int_equal(PetscOptionsClearValue(NULL, name), 0);
}

/* The rank layout inside a fold group changes only the order of sums:
 * all ranks in one group against one rank per group (the same folds on
 * the same voxel blocks, distributed differently). */
static void test_layout_invariance(void **state)
{
    (void)state;
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size == 1 || size > 5) skip(); /* at most one group per fold */
    problem P = make_problem(150, 200, 31, 5);
    setup A, B;
    setup_make(&A, &P, 1, 16);    /* one group of `size` ranks */
    setup_make(&B, &P, size, 16); /* `size` groups of one rank */
    ba_ridge_result Ra, Rb;
    ba_ridge_petsc_stats sa, sb;
    run_petsc(&A, &Ra, &sa);
    run_petsc(&B, &Rb, &sb);
    /* Both layouts own the same voxels only when the group size is 1 on
     * both sides; compare through the global vectors instead. */
    long v = P.v;
    float *ga = calloc(5 * v, sizeof(float)), *gb = calloc(5 * v, sizeof(float));
    float *aa = calloc(5 * v, sizeof(float)), *ab = calloc(5 * v, sizeof(float));
    long va = A.L.v_end - A.L.v_begin, vb = B.L.v_end - B.L.v_begin;
    for (int k = 0; k < 5; k++) {
        for (long j = 0; j < va; j++) {
            ga[k * v + A.L.v_begin + j] = Ra.r_folds[k * va + j];
            aa[k * v + A.L.v_begin + j] = Ra.alpha[k * va + j];
        }
        if (B.L.group_index == 0)
            for (long j = 0; j < vb; j++) {
                gb[k * v + B.L.v_begin + j] = Rb.r_folds[k * vb + j];
                ab[k * v + B.L.v_begin + j] = Rb.alpha[k * vb + j];
            }
    }
    MPI_Allreduce(MPI_IN_PLACE, ga, (int)(5 * v), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, aa, (int)(5 * v), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, gb, (int)(5 * v), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, ab, (int)(5 * v), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    double max_dr = 0;
    long alpha_diff = 0;
    for (long i = 0; i < 5 * v; i++) {
        if (fabs(ga[i] - gb[i]) > max_dr) max_dr = fabs(ga[i] - gb[i]);
        if (aa[i] != ab[i]) alpha_diff++;
    }
    print_message("layout invariance (%d ranks in one group vs %d groups): max |dr| %.2e, "
                  "%ld alphas differ\n", size, size, max_dr, alpha_diff);
    assert_true(max_dr < 1e-5);
    assert_true(alpha_diff == 0);
    free(ga); free(gb); free(aa); free(ab);
    ba_ridge_result_free(&Ra);
    ba_ridge_result_free(&Rb);
    setup_free(&A);
    setup_free(&B);
    problem_free(&P);
}

/* -ksp_type lsqr: the stacked least-squares form, same answers. */
static void test_lsqr(void **state)
{
    (void)state;
    set_option("-ksp_type", "lsqr");
    problem shapes[2] = {make_problem(200, 300, 20, 7), make_problem(250, 100, 20, 8)};
    for (int c = 0; c < 2; c++) {
        setup S;
        setup_make(&S, &shapes[c], 1, 0);
        ba_ridge_result Rp, Rs;
        ba_ridge_petsc_stats st;
        run_petsc(&S, &Rp, &st);
        run_scalapack(&S, &Rs);
        assert_string_equal(st.ksp_type, "lsqr");
        expect_agreement(c == 0 ? "lsqr, dual" : "lsqr, primal", compare(&S, &Rp, &Rs), 1e-4);
        ba_ridge_result_free(&Rp);
        ba_ridge_result_free(&Rs);
        setup_free(&S);
        problem_free(&shapes[c]);
    }
    clear_option("-ksp_type");
}

/* -pc_type jacobi (the operator's diagonal) still gives the same answers. */
static void test_jacobi(void **state)
{
    (void)state;
    set_option("-pc_type", "jacobi");
    problem P = make_problem(120, 200, 19, 9);
    setup S;
    setup_make(&S, &P, 1, 0);
    ba_ridge_result Rp, Rs;
    ba_ridge_petsc_stats st;
    run_petsc(&S, &Rp, &st);
    run_scalapack(&S, &Rs);
    expect_agreement("cg + jacobi", compare(&S, &Rp, &Rs), 1e-4);
    clear_option("-pc_type");
    ba_ridge_result_free(&Rp);
    ba_ridge_result_free(&Rs);
    setup_free(&S);
    problem_free(&P);
}

/* -ksp_rtol 1e-2 is honoured: fewer iterations, a visibly worse residual,
 * and results that move. */
static void test_rtol_pass_through(void **state)
{
    (void)state;
    problem P = make_problem(120, 200, 21, 10);
    setup S;
    setup_make(&S, &P, 1, 0);
    ba_ridge_result tight, loose;
    ba_ridge_petsc_stats st_tight, st_loose;
    run_petsc(&S, &tight, &st_tight);
    set_option("-ksp_rtol", "1e-2");
    run_petsc(&S, &loose, &st_loose);
    clear_option("-ksp_rtol");
    comparison c = compare(&S, &tight, &loose);
    print_message("rtol %g: %ld iterations, worst residual %.2e; rtol %g: %ld iterations, worst "
                  "residual %.2e; max |dr| %.2e\n", st_tight.rtol, st_tight.iterations,
                  st_tight.worst_residual, st_loose.rtol, st_loose.iterations,
                  st_loose.worst_residual, c.max_dr);
    assert_true(st_tight.rtol == 1e-8 && st_loose.rtol == 1e-2);
    assert_true(st_loose.iterations < st_tight.iterations / 2);
    assert_true(st_tight.worst_residual < 1e-6);
    assert_true(st_loose.worst_residual > 1e-4);
    assert_true(c.max_dr > 1e-5);
    ba_ridge_result_free(&tight);
    ba_ridge_result_free(&loose);
    setup_free(&S);
    problem_free(&P);
}

/* The warm start along the alpha path saves iterations and changes nothing
 * else. */
static void test_warm_start(void **state)
{
    (void)state;
    problem P = make_problem(120, 200, 21, 11);
    setup S;
    setup_make(&S, &P, 1, 0);
    ba_ridge_result warm, cold;
    ba_ridge_petsc_stats st_warm, st_cold;
    run_petsc(&S, &warm, &st_warm);
    set_option("-ridge_warm_start", "0");
    run_petsc(&S, &cold, &st_cold);
    clear_option("-ridge_warm_start");
    print_message("iterations: warm start %ld, cold %ld\n", st_warm.iterations, st_cold.iterations);
    assert_true(st_warm.iterations < st_cold.iterations);
    expect_agreement("warm vs cold start", compare(&S, &warm, &cold), 1e-5);
    ba_ridge_result_free(&warm);
    ba_ridge_result_free(&cold);
    setup_free(&S);
    problem_free(&P);
}

static void expect_failure(const char *name, const char *value, ba_status code,
                           const char *needle1, const char *needle2)
{
    problem P = make_problem(120, 200, 9, 12);
    setup S;
    setup_make(&S, &P, 1, 0);
    set_option(name, value);
    ba_ridge_result R;
    ba_error err;
    ba_error_clear(&err);
    ba_status rc = ba_ridge_cv_petsc(&S.L, &S.D, &S.opt, &R, &err);
    clear_option(name);
    print_message("%s %s -> %s\n", name, value, err.message);
    assert_int_equal(rc, code);
    assert_non_null(strstr(err.message, needle1));
    if (needle2) assert_non_null(strstr(err.message, needle2));
    setup_free(&S);
    problem_free(&P);
}

static void test_bad_ksp_type(void **s) { (void)s; expect_failure("-ksp_type", "nosuch", BA_ERR_USAGE, "nosuch", NULL); }
static void test_misspelt_option(void **s) { (void)s; expect_failure("-ksp_rtoll", "1e-3", BA_ERR_USAGE, "-ksp_rtoll", "not used"); }
static void test_bad_ridge_option(void **s) { (void)s; expect_failure("-ridge_hat_diagonal", "guess", BA_ERR_USAGE, "guess", NULL); }
/* A KSP that "converges" to no solution at all is an error, not output. */
static void test_preonly(void **s) { (void)s; expect_failure("-ksp_type", "preonly", BA_ERR_NUMERIC, "returned no solution", "fold 0"); }
/* Non-convergence names the fold, the alpha and the column. */
static void test_max_it(void **s) { (void)s; expect_failure("-ksp_max_it", "2", BA_ERR_NUMERIC, "did not converge", "fold 0 at alpha"); }

/* The randomized estimates: labelled approximate and cheaper (one block of
 * 64 probes instead of one right-hand side per training sample, 96 here). GCV (the
 * probes' trace estimate for every sample) stays close to the exact
 * answers here; the per-sample Hutchinson diagonal is too noisy at small
 * alphas to promise anything but valid correlations. */
static void run_estimate(const char *method, double max_mean_dr)
{
    problem P = make_problem(120, 200, 21, 13);
    setup S;
    setup_make(&S, &P, 1, 0);
    ba_ridge_result exact, approx;
    ba_ridge_petsc_stats st_exact, st_approx;
    run_petsc(&S, &exact, &st_exact);
    set_option("-ridge_hat_diagonal", method);
    run_petsc(&S, &approx, &st_approx);
    clear_option("-ridge_hat_diagonal");
    assert_true(st_exact.exact_hat && !st_approx.exact_hat && st_approx.probes == 64);
    assert_true(st_approx.columns < st_exact.columns);
    double sum_dr = 0;
    long cells = 5 * exact.v_local;
    for (long i = 0; i < cells; i++) {
        assert_true(approx.r_folds[i] >= -1 && approx.r_folds[i] <= 1);
        sum_dr += fabs(exact.r_folds[i] - approx.r_folds[i]);
    }
    MPI_Allreduce(MPI_IN_PLACE, &sum_dr, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &cells, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    print_message("%s (64 probes) vs exact: mean |dr| %.3g\n", method, sum_dr / cells);
    assert_true(sum_dr / cells < max_mean_dr);
    ba_ridge_result_free(&exact);
    ba_ridge_result_free(&approx);
    setup_free(&S);
    problem_free(&P);
}

static void test_gcv(void **s) { (void)s; run_estimate("gcv", 0.01); }
static void test_hutchinson(void **s) { (void)s; run_estimate("hutchinson", 1.0); }

/* Restart: a stop request ends the run after the first round with the
 * folds saved; the rerun resumes them and matches an uninterrupted run. */
static void test_checkpoint_resume(void **state)
{
    (void)state;
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    problem P = make_problem(80, 120, 13, 15);
    setup S;
    setup_make(&S, &P, 1, 0);
    ba_ridge_result full, resumed;
    ba_ridge_petsc_stats st;
    run_petsc(&S, &full, &st);
    char path[1024] = "";
    if (rank == 0) snprintf(path, sizeof path, "%s/ckpt.h5", ba_test_tmpdir());
    MPI_Bcast(path, sizeof path, MPI_CHAR, 0, MPI_COMM_WORLD);
    volatile sig_atomic_t stop = 1;
    S.opt.checkpoint_path = path;
    S.opt.checkpoint_key = "test key";
    S.opt.stop_requested = &stop;
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(ba_ridge_cv_petsc(&S.L, &S.D, &S.opt, &resumed, &err), BA_ERR_INTERRUPTED);
    assert_non_null(strstr(err.message, "after 1 of 5 folds"));
    stop = 0;
    run_petsc(&S, &resumed, &st);
    assert_int_equal(resumed.n_folds_resumed, 1);
    comparison c = compare(&S, &full, &resumed);
    assert_true(c.max_dr == 0 && c.alpha_diff == 0);
    /* Another key: starts afresh. */
    S.opt.checkpoint_key = "other key";
    ba_ridge_result_free(&resumed);
    run_petsc(&S, &resumed, &st);
    assert_int_equal(resumed.n_folds_resumed, 0);
    ba_ridge_result_free(&full);
    ba_ridge_result_free(&resumed);
    setup_free(&S);
    problem_free(&P);
}

/* Bad Y: the same message as the ScaLAPACK path, on every rank. */
static void test_bad_y(void **state)
{
    (void)state;
    problem P = make_problem(60, 80, 6, 14);
    for (long i = 0; i < P.n; i++) P.y[i * P.v + 4] = 2.5f;
    setup S;
    setup_make(&S, &P, 1, 0);
    ba_ridge_result R;
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(ba_ridge_cv_petsc(&S.L, &S.D, &S.opt, &R, &err), BA_ERR_VALUE);
    assert_non_null(strstr(err.message, "voxel 4 is constant"));
    for (long i = 0; i < P.n; i++) P.y[i * P.v + 4] = (float)i;
    setup_free(&S);
    setup_make(&S, &P, 1, 0);
    P.x[17 * P.p + 3] = NAN;
    assert_int_equal(ba_ridge_cv_petsc(&S.L, &S.D, &S.opt, &R, &err), BA_ERR_VALUE);
    assert_non_null(strstr(err.message, "sample 17, feature 3 is NaN"));
    setup_free(&S);
    problem_free(&P);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    ba_error err;
    ba_error_clear(&err);
    char *petsc_argv[] = {argv[0], NULL};
    if (ba_petsc_initialize(1, petsc_argv, &err) != BA_OK) {
        fprintf(stderr, "%s\n", err.message);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dual),
        cmocka_unit_test(test_primal),
        cmocka_unit_test(test_mixed_two_groups),
        cmocka_unit_test(test_dual_small_blocks),
        cmocka_unit_test(test_layout_invariance),
        cmocka_unit_test(test_lsqr),
        cmocka_unit_test(test_jacobi),
        cmocka_unit_test(test_rtol_pass_through),
        cmocka_unit_test(test_warm_start),
        cmocka_unit_test(test_bad_ksp_type),
        cmocka_unit_test(test_misspelt_option),
        cmocka_unit_test(test_bad_ridge_option),
        cmocka_unit_test(test_max_it),
        cmocka_unit_test(test_preonly),
        cmocka_unit_test(test_gcv),
        cmocka_unit_test(test_hutchinson),
        cmocka_unit_test(test_checkpoint_resume),
        cmocka_unit_test(test_bad_y),
    };
    /* BA_TEST_FILTER=test_lsqr runs one test (cmocka's wildcard pattern). */
    if (getenv("BA_TEST_FILTER")) cmocka_set_test_filter(getenv("BA_TEST_FILTER"));
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    ba_petsc_finalize(&err);
    MPI_Finalize();
    return failed;
}
