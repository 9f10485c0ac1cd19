/* test_ridge.c — the distributed ridge CV against the plain reference, on
 * every rank count the test is run with (2 here, 4 in test_ridge_np4),
 * with one and two fold groups, in dual (p >= n_train) and primal
 * (p < n_train) form. */
#include <mpi.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "brainalign/ridge.h"
#include "brainalign/rng.h"

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

static void run_case_nb(long n, long p, long v, int folds, int groups, long block, int nb)
{
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size % groups != 0) skip(); /* e.g. two fold groups on one rank */
    problem P = make_problem(n, p, v, 1234 + (uint64_t)(n * 7 + p));
    double alphas[10];
    for (int a = 0; a < 10; a++) alphas[a] = pow(10.0, -1.0 + a);
    ba_ridge_options opt = {.n_folds = folds, .alphas = alphas, .n_alphas = 10,
                            .fold_groups = groups, .voxel_block = block,
                            .block_size = nb, .quiet = true};
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
    /* Float32 voxel products against a double textbook reference. */
    if (max_dr > 2e-4 || alpha_diff > folds * vloc / 50)
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
        cmocka_unit_test(test_bad_y_fails_on_every_rank),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    MPI_Finalize();
    return failed;
}
