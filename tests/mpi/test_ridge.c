/* test_ridge.c — the distributed ridge CV against the plain reference, on
 * every rank count the test is run with (1, 2 and 4: tests/CMakeLists.txt, BA_MPI_RANKS_test_ridge),
 * with one and two fold groups, in dual (p >= n_train) and primal
 * (p < n_train) form. */
#include <mpi.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "brainalign/ridge/ridge.h"
#include "brainalign/core/rng.h"

typedef struct {
    long n, p, v;
    float *x, *y;
} problem;

/* Y = X W + noise, with voxel-specific signal strength so alphas differ. */
static problem make_problem(long n, long p, long v, uint64_t seed)
{
    problem P = {n, p, v, malloc(sizeof(float) * n * p), malloc(sizeof(float) * n * v)};
    ba_rng rng;
    ba_rng_seed(&rng, seed, 0);
    for (long i = 0; i < n * p; i++) P.x[i] = (float)ba_rng_normal(&rng);
    double *w = malloc(sizeof(double) * p * v);
    for (long i = 0; i < p * v; i++) w[i] = ba_rng_normal(&rng);
    for (long j = 0; j < v; j++) {
        double snr = 0.05 + 2.0 * j / v;
        for (long i = 0; i < n; i++) {
            double s = 0;
            for (long k = 0; k < p; k++) s += P.x[i * p + k] * w[k * v + j];
            P.y[i * v + j] = (float)(snr * s / sqrt((double)p) + ba_rng_normal(&rng) + 3.0);
        }
    }
    free(w);
    return P;
}

static ba_status read_rows(void *ctx, long row0, long n_rows, float *out, ba_error *err)
{
    (void)err;
    const problem *P = ctx;
    memcpy(out, P->x + row0 * P->p, sizeof(float) * n_rows * P->p);
    return BA_OK;
}

/* tie: ba_ridge_options.tie_tolerance. strict: every alpha must equal the
 * reference's and r must agree to float rounding (for runs that rank
 * every voxel in double). */
static void run_case_full(long n, long p, long v, int folds, int groups, long block, int nb,
                          double tie, bool strict)
{
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size % groups != 0) skip(); /* e.g. two fold groups on one rank */
    problem P = make_problem(n, p, v, 1234 + (uint64_t)(n * 7 + p));
    double alphas[10];
    for (int a = 0; a < 10; a++) alphas[a] = pow(10.0, -1.0 + a);
    ba_ridge_options opt = {.n_folds = folds, .alphas = alphas, .n_alphas = 10,
                            .fold_groups = groups, .voxel_block = block,
                            .block_size = nb, .quiet = true, .tie_tolerance = tie};
    ba_error err;
    ba_error_clear(&err);
    ba_ridge_layout L;
    assert_int_equal(ba_ridge_layout_create(MPI_COMM_WORLD, groups, v, &L, &err), BA_OK);
    long vloc = L.v_end - L.v_begin;
    float *ylocal = malloc(sizeof(float) * n * (vloc ? vloc : 1));
    for (long i = 0; i < n; i++)
        memcpy(ylocal + i * vloc, P.y + i * v + L.v_begin, sizeof(float) * vloc);
    ba_ridge_data D = {n, p, read_rows, &P, ylocal};
    ba_ridge_result R;
    ba_status rc = ba_ridge_cv(&L, &D, &opt, &R, &err);
    if (rc != BA_OK) fail_msg("ba_ridge_cv: %s", err.message);

    float *r_ref = malloc(sizeof(float) * folds * v), *a_ref = malloc(sizeof(float) * folds * v);
    assert_int_equal(ba_ridge_cv_reference(n, p, P.x, v, P.y, &opt, r_ref, a_ref, &err), BA_OK);
    double max_dr = 0;
    int alpha_diff = 0;
    for (int k = 0; k < folds; k++)
        for (long j = 0; j < vloc; j++) {
            double dr = fabs(R.r_folds[k * vloc + j] - r_ref[k * v + L.v_begin + j]);
            if (dr > max_dr) max_dr = dr;
            if (R.alpha[k * vloc + j] != a_ref[k * v + L.v_begin + j]) alpha_diff++;
        }
    /* Float32 voxel products against a double textbook reference; in
     * double (strict) the same alphas and r to float rounding. */
    if (strict ? (max_dr > 1e-5 || alpha_diff > 0)
               : (max_dr > 2e-4 || alpha_diff > folds * vloc / 50))
        fail_msg("n=%ld p=%ld groups=%d: max |dr| %.3g, %d alpha choices differ", n, p,
                 groups, max_dr, alpha_diff);
    /* /r is the mean over folds. */
    for (long j = 0; j < vloc; j++) {
        double s = 0;
        for (int k = 0; k < folds; k++) s += R.r_folds[k * vloc + j];
        assert_true(fabs(s / folds - R.r[j]) < 1e-6);
    }
    ba_ridge_result_free(&R);
    ba_ridge_layout_destroy(&L);
    free(ylocal); free(r_ref); free(a_ref); free(P.x); free(P.y);
}

static void run_case_nb(long n, long p, long v, int folds, int groups, long block, int nb)
{
    run_case_full(n, p, v, folds, groups, block, nb, BA_RIDGE_TIE_TOLERANCE, false);
}

static void run_case(long n, long p, long v, int folds, int groups, long block)
{
    run_case_nb(n, p, v, folds, groups, block, 8);
}

/* The default ScaLAPACK block (64) is larger than this feature space: the
 * engine must shrink it (pdsyevd silently fails otherwise). */
static void test_primal_block_larger_than_matrix(void **s) { (void)s; run_case_nb(300, 40, 9, 5, 1, 512, 0); }
static void test_dual_block_larger_than_matrix(void **s) { (void)s; run_case_nb(50, 70, 9, 5, 1, 512, 0); }

static void test_dual_one_group(void **s) { (void)s; run_case(90, 120, 13, 5, 1, 4); }
static void test_primal_one_group(void **s) { (void)s; run_case(150, 24, 11, 5, 1, 512); }
static void test_dual_two_groups(void **s) { (void)s; run_case(90, 120, 13, 5, 2, 3); }
static void test_primal_two_groups(void **s) { (void)s; run_case(150, 24, 11, 4, 2, 5); }

/* A tolerance so wide that every voxel is re-ranked (and predicted) from
 * the double-precision basis: the same alphas as the double reference. */
static void test_dual_all_ranked_in_double(void **s) { (void)s; run_case_full(90, 120, 37, 5, 1, 8, 8, 1e30, true); }
static void test_primal_all_ranked_in_double(void **s) { (void)s; run_case_full(150, 24, 33, 4, 2, 5, 8, 1e30, true); }

/* ---- planted near-ties ------------------------------------------------------
 * Voxels whose two leave-one-out losses (two alphas) differ by 1e-10 to 3e-8
 * relative in fold 0: below what float32 products resolve, far above double
 * rounding. An independent double computation (Cholesky inverse of K + αI,
 * c = G y, losses Σ (c_i / G_ii)²) decides each; the engine must agree on
 * every one, on every rank count. The losses are quadratic forms in y, so
 * y = y0 + t y1 with t at a root of L_a - L_b gives an exact tie, and small
 * moves of t around it give ties as close as wanted. */

enum { TIE_N = 160, TIE_P = 200, TIE_TEST = 32, TIE_TRAIN = TIE_N - TIE_TEST };

/* In-place inverse of the SPD matrix a [n][n] by Cholesky (a = L Lᵀ). */
static void spd_inverse(double *a, long n)
{
    double *l = calloc((size_t)(n * n), sizeof *l), *inv = calloc((size_t)(n * n), sizeof *inv);
    for (long j = 0; j < n; j++) {
        double d = a[j * n + j];
        for (long k = 0; k < j; k++) d -= l[j * n + k] * l[j * n + k];
        l[j * n + j] = sqrt(d);
        for (long i = j + 1; i < n; i++) {
            double s = a[i * n + j];
            for (long k = 0; k < j; k++) s -= l[i * n + k] * l[j * n + k];
            l[i * n + j] = s / l[j * n + j];
        }
    }
    for (long c = 0; c < n; c++) { /* column c of the inverse: L Lᵀ x = e_c */
        double *x = inv + c * n;   /* stored as a row: the inverse is symmetric */
        for (long i = 0; i < n; i++) {
            double s = i == c ? 1.0 : 0.0;
            for (long k = 0; k < i; k++) s -= l[i * n + k] * x[k];
            x[i] = s / l[i * n + i];
        }
        for (long i = n - 1; i >= 0; i--) {
            double s = x[i];
            for (long k = i + 1; k < n; k++) s -= l[k * n + i] * x[k];
            x[i] = s / l[i * n + i];
        }
    }
    memcpy(a, inv, sizeof(double) * (size_t)(n * n));
    free(l), free(inv);
}

/* u = (G y) ./ diag(G) for the training rows. */
static void scaled_residual(const double *g, const double *y, double *u)
{
    for (long i = 0; i < TIE_TRAIN; i++) {
        double s = 0;
        for (long k = 0; k < TIE_TRAIN; k++) s += g[i * TIE_TRAIN + k] * y[k];
        u[i] = s / g[i * TIE_TRAIN + i];
    }
}

static double dot(const double *a, const double *b, long n)
{
    double s = 0;
    for (long i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static void test_planted_near_ties(void **state)
{
    (void)state;
    const double alphas[2] = {3.0, 300.0};
    problem P = make_problem(TIE_N, TIE_P, 1, 77);
    /* Fold 0 of KFold(5) tests rows [0, 32): standardise X on the rest. */
    double *xs = malloc(sizeof(double) * TIE_TRAIN * TIE_P);
    for (long j = 0; j < TIE_P; j++) {
        double m = 0, v = 0;
        for (long r = 0; r < TIE_TRAIN; r++) m += P.x[(TIE_TEST + r) * TIE_P + j];
        m /= TIE_TRAIN;
        for (long r = 0; r < TIE_TRAIN; r++) {
            double d = P.x[(TIE_TEST + r) * TIE_P + j] - m;
            v += d * d;
        }
        double sd = sqrt(v / TIE_TRAIN);
        for (long r = 0; r < TIE_TRAIN; r++)
            xs[r * TIE_P + j] = (P.x[(TIE_TEST + r) * TIE_P + j] - m) / sd;
    }
    double *g[2];
    for (int a = 0; a < 2; a++) {
        g[a] = malloc(sizeof(double) * TIE_TRAIN * TIE_TRAIN);
        for (long i = 0; i < TIE_TRAIN; i++)
            for (long k = 0; k < TIE_TRAIN; k++)
                g[a][i * TIE_TRAIN + k] = dot(xs + i * TIE_P, xs + k * TIE_P, TIE_P) +
                                          (i == k ? alphas[a] : 0.0);
        spd_inverse(g[a], TIE_TRAIN);
    }
    /* y0, y1 random; f(t) = L_0(y0 + t y1) - L_1(y0 + t y1) = c0 + c1 t + c2 t². */
    ba_rng rng;
    ba_rng_seed(&rng, 2024, 0);
    double y0[TIE_TRAIN], y1[TIE_TRAIN], u0[2][TIE_TRAIN], u1[2][TIE_TRAIN], root = NAN;
    for (int attempt = 0; attempt < 100 && isnan(root); attempt++) {
        double m0 = 0, m1 = 0; /* centred, as the engine centres Y */
        for (long i = 0; i < TIE_TRAIN; i++) {
            y0[i] = ba_rng_normal(&rng), y1[i] = ba_rng_normal(&rng);
            m0 += y0[i], m1 += y1[i];
        }
        for (long i = 0; i < TIE_TRAIN; i++) y0[i] -= m0 / TIE_TRAIN, y1[i] -= m1 / TIE_TRAIN;
        for (int a = 0; a < 2; a++) scaled_residual(g[a], y0, u0[a]), scaled_residual(g[a], y1, u1[a]);
        double c0 = dot(u0[0], u0[0], TIE_TRAIN) - dot(u0[1], u0[1], TIE_TRAIN);
        double c1 = 2 * (dot(u0[0], u1[0], TIE_TRAIN) - dot(u0[1], u1[1], TIE_TRAIN));
        double c2 = dot(u1[0], u1[0], TIE_TRAIN) - dot(u1[1], u1[1], TIE_TRAIN);
        double disc = c1 * c1 - 4 * c0 * c2;
        if (disc > 0 && c2 != 0) root = (-c1 + sqrt(disc)) / (2 * c2);
    }
    assert_false(isnan(root));

    /* Candidates around the root, as the engine will see them: rounded to
     * float, centred as it centres (double mean, float subtraction). Keep
     * the near-ties and record which alpha the double losses pick. */
    enum { WANT = 400 };
    float *cols = malloc(sizeof(float) * TIE_N * WANT);
    int expected[WANT];
    long kept = 0;
    double smallest = 1, largest = 0;
    for (long c = 0; c < 200000 && kept < WANT; c++) {
        double t = root * (1 + 2e-6 * (ba_rng_uniform(&rng) - 0.5));
        float col[TIE_N];
        for (long i = 0; i < TIE_TEST; i++) col[i] = (float)ba_rng_normal(&rng);
        double mean = 0;
        for (long r = 0; r < TIE_TRAIN; r++) {
            col[TIE_TEST + r] = (float)(y0[r] + t * y1[r]);
            mean += col[TIE_TEST + r];
        }
        mean /= TIE_TRAIN;
        double yc[TIE_TRAIN], u[TIE_TRAIN], loss[2];
        for (long r = 0; r < TIE_TRAIN; r++) yc[r] = (double)(col[TIE_TEST + r] - (float)mean);
        for (int a = 0; a < 2; a++) {
            scaled_residual(g[a], yc, u);
            loss[a] = dot(u, u, TIE_TRAIN);
        }
        double gap = fabs(loss[0] - loss[1]) / fmin(loss[0], loss[1]);
        if (gap < 1e-10 || gap > 3e-8) continue;
        smallest = fmin(smallest, gap), largest = fmax(largest, gap);
        expected[kept] = loss[1] < loss[0];
        for (long i = 0; i < TIE_N; i++) cols[i * WANT + kept] = col[i];
        kept++;
    }
    assert_int_equal(kept, WANT);

    /* The engine, with the default tolerance and without re-ranking. */
    problem Q = {TIE_N, TIE_P, WANT, P.x, cols};
    for (int pass = 0; pass < 2; pass++) {
        ba_ridge_options opt = {.n_folds = 5, .alphas = alphas, .n_alphas = 2,
                                .fold_groups = 1, .voxel_block = 64, .block_size = 16,
                                .quiet = true, .tie_tolerance = pass == 0 ? BA_RIDGE_TIE_TOLERANCE : 0.0};
        ba_error err;
        ba_error_clear(&err);
        ba_ridge_layout L;
        assert_int_equal(ba_ridge_layout_create(MPI_COMM_WORLD, 1, WANT, &L, &err), BA_OK);
        long vloc = L.v_end - L.v_begin;
        float *ylocal = malloc(sizeof(float) * TIE_N * (vloc ? vloc : 1));
        for (long i = 0; i < TIE_N; i++)
            memcpy(ylocal + i * vloc, cols + i * WANT + L.v_begin, sizeof(float) * vloc);
        ba_ridge_data D = {TIE_N, TIE_P, read_rows, &Q, ylocal};
        ba_ridge_result R;
        if (ba_ridge_cv(&L, &D, &opt, &R, &err) != BA_OK) fail_msg("ba_ridge_cv: %s", err.message);
        long wrong = 0;
        for (long j = 0; j < vloc; j++)
            wrong += R.alpha[j] != (float)alphas[expected[L.v_begin + j]];
        MPI_Allreduce(MPI_IN_PLACE, &wrong, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
        if (pass == 0 && wrong)
            fail_msg("%ld of %d planted near-ties (relative gaps %.1e to %.1e) decided unlike "
                     "the double reference", wrong, WANT, smallest, largest);
        if (pass == 1) /* informative: what float32 alone gets wrong */
            print_message("without re-ranking, %ld of %d planted near-ties (gaps %.1e to %.1e) "
                          "go the other way\n", wrong, WANT, smallest, largest);
        ba_ridge_result_free(&R);
        ba_ridge_layout_destroy(&L);
        free(ylocal);
    }
    free(cols), free(xs), free(g[0]), free(g[1]), free(P.x), free(P.y);
}

static void test_bad_y_fails_on_every_rank(void **state)
{
    (void)state;
    problem P = make_problem(40, 10, 6, 7);
    for (long i = 0; i < P.n; i++) P.y[i * P.v + 4] = 2.5f; /* voxel 4 constant */
    double alphas[1] = {1.0};
    ba_ridge_options opt = {.n_folds = 5, .alphas = alphas, .n_alphas = 1,
                            .fold_groups = 1, .quiet = true};
    ba_error err;
    ba_error_clear(&err);
    ba_ridge_layout L;
    assert_int_equal(ba_ridge_layout_create(MPI_COMM_WORLD, 1, P.v, &L, &err), BA_OK);
    long vloc = L.v_end - L.v_begin;
    float *ylocal = malloc(sizeof(float) * P.n * (vloc ? vloc : 1));
    for (long i = 0; i < P.n; i++)
        memcpy(ylocal + i * vloc, P.y + i * P.v + L.v_begin, sizeof(float) * vloc);
    ba_ridge_data D = {P.n, P.p, read_rows, &P, ylocal};
    ba_ridge_result R;
    assert_int_equal(ba_ridge_cv(&L, &D, &opt, &R, &err), BA_ERR_VALUE);
    assert_non_null(strstr(err.message, "voxel 4 is constant"));
    /* NaN in X: found by whichever rank reads it, reported by all. */
    for (long i = 0; i < P.n; i++) P.y[i * P.v + 4] = (float)i;
    for (long i = 0; i < P.n; i++)
        memcpy(ylocal + i * vloc, P.y + i * P.v + L.v_begin, sizeof(float) * vloc);
    P.x[17 * P.p + 3] = NAN;
    assert_int_equal(ba_ridge_cv(&L, &D, &opt, &R, &err), BA_ERR_VALUE);
    assert_non_null(strstr(err.message, "sample 17, feature 3 is NaN"));
    /* Fewer samples than folds. */
    ba_ridge_data tiny = {4, P.p, read_rows, &P, ylocal};
    assert_int_not_equal(ba_ridge_cv(&L, &tiny, &opt, &R, &err), BA_OK);
    ba_ridge_layout_destroy(&L);
    free(ylocal); free(P.x); free(P.y);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dual_one_group),
        cmocka_unit_test(test_primal_one_group),
        cmocka_unit_test(test_dual_two_groups),
        cmocka_unit_test(test_primal_two_groups),
        cmocka_unit_test(test_primal_block_larger_than_matrix),
        cmocka_unit_test(test_dual_block_larger_than_matrix),
        cmocka_unit_test(test_dual_all_ranked_in_double),
        cmocka_unit_test(test_primal_all_ranked_in_double),
        cmocka_unit_test(test_planted_near_ties),
        cmocka_unit_test(test_bad_y_fails_on_every_rank),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    MPI_Finalize();
    return failed;
}
