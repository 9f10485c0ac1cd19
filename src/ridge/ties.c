/* ties.c — re-deciding near-tied alphas in double precision (ties.h), the
 * dense solver's helper.
 *
 * Why this exists: the dense solver (solver_dense.c) ranks the alphas of
 * every voxel by leave-one-out losses computed with float32 GEMMs. Their last bits
 * depend on the BLAS thread count and on the process grid, since different
 * grids round slightly different eigenvectors into the float basis: below
 * 1e-7 relative. For a voxel whose two best alphas are that close the
 * choice, and with it r, would depend on how the job was laid out; on a
 * 20,000-voxel study a few (fold, voxel) pairs flip and their r moves by
 * up to 0.05.
 *
 * So voxels whose runner-up comes within the tie tolerance are ranked again
 * here, from the double-precision basis that the feature side keeps
 * distributed on the BLACS grid. Layouts differ there by about 1e-15, far
 * below any gap the tolerance lets through. Their prediction and r are
 * recomputed from the same double basis. There are few such voxels, so this
 * costs little; they go in batches to bound memory.
 *
 * Per batch of N voxels (formulas at the top of solver_dense.c):
 *   Z = Mᵀ Y_tr                              (pdgemm, m x N)
 *   for each alpha: T = M diag(w) Z          (pdgemm, n_train x N)
 *                   loss_j = Σ_i (r_ij / den_i)²,  r = T (dual) or Y - T
 *   ŷ_te = B diag(w(α*_j)) Z                 (pdgemm, n_test x N) */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/parallel/parallel.h"
#include "ties.h"

enum { TIE_BATCH = 256 }; /* voxels per batch */

/* out = Z with row k scaled by 1 / (s_k + alpha_j), alpha_j = alphas[pick[j]]
 * or the single alpha when pick is NULL. */
static void scale_z(const ba_grid *grid, const ba_fold_spectrum *S, const ba_dmat *z,
                    const double *alphas, const int *pick, double alpha, ba_dmat *out)
{
    int lld = z->desc[8];
    for (int j = 0; j < z->nloc; j++) {
        int gj = ba_dmat_global_col(z, grid, j);
        double a = pick ? alphas[pick[gj]] : alpha;
        for (int i = 0; i < z->mloc; i++) {
            int gk = ba_dmat_global_row(z, grid, i);
            out->data[(size_t)j * lld + i] = z->data[(size_t)j * lld + i] / (S->eig[gk] + a);
        }
    }
}

typedef struct {
    double *ytr;    /* [N][n_train], replicated: centred training rows */
    double *loss;   /* [n_alphas][N] */
    int *best;      /* [N] */
    float *yhat;    /* [n_test][N], replicated */
    ba_dmat y, z, wz, t, pred;
} batch;

static void batch_free(batch *B)
{
    free(B->ytr), free(B->loss), free(B->best), free(B->yhat);
    ba_dmat_destroy(&B->y), ba_dmat_destroy(&B->z), ba_dmat_destroy(&B->wz);
    ba_dmat_destroy(&B->t), ba_dmat_destroy(&B->pred);
}

/* One batch: the voxels with global tie numbers [b0, b0 + bn); this rank's
 * are numbered [first, first + count). */
static ba_status rerank_batch(const ba_grid *grid, const ba_fold_spectrum *S,
                              const ba_fold_rows *f, const ba_ridge_options *opt,
                              const float *y, long vloc, const long *voxels, long first,
                              long count, long b0, int bn, float *r_out, float *alpha_out,
                              ba_error *err)
{
    int ntr = (int)S->n_train, nte = (int)S->n_test, m = (int)S->m, na = opt->n_alphas;
    int nb = S->exact.nb;
    batch B = {0};
    ba_status rc = BA_OK;
    B.ytr = ba_calloc((size_t)bn * (size_t)ntr, sizeof(double), "near-tied voxels", err);
    B.loss = ba_calloc((size_t)na * (size_t)bn, sizeof(double), "near-tied voxels", err);
    B.best = ba_calloc((size_t)bn, sizeof(int), "near-tied voxels", err);
    B.yhat = ba_calloc((size_t)nte * (size_t)bn, sizeof(float), "near-tied voxels", err);
    if (!B.ytr || !B.loss || !B.best || !B.yhat) rc = BA_ERR_NOMEM;
    if (rc == BA_OK) rc = ba_dmat_create(grid, ntr, bn, nb, &B.y, err);
    if (rc == BA_OK) rc = ba_dmat_create(grid, m, bn, nb, &B.z, err);
    if (rc == BA_OK) rc = ba_dmat_create(grid, m, bn, nb, &B.wz, err);
    if (rc == BA_OK) rc = ba_dmat_create(grid, ntr, bn, nb, &B.t, err);
    if (rc == BA_OK) rc = ba_dmat_create(grid, nte, bn, nb, &B.pred, err);
    BA_TRY(ba_mpi_agree(grid->comm, rc, err), done);

    /* My voxels' centred training rows, exactly as the float path centres
     * them, then replicated (one contributor per entry: the sum is exact). */
    for (long t = 0; t < count; t++) {
        long g = first + t;
        if (g < b0 || g >= b0 + bn) continue;
        long v = voxels[t];
        float mean = (float)ba_fold_train_mean(f, y, vloc, v);
        double *col = B.ytr + (size_t)(g - b0) * (size_t)ntr;
        for (long r = 0; r < ntr; r++)
            col[r] = (double)(y[ba_fold_original_row(f, r) * vloc + v] - mean);
    }
    BA_TRY(ba_mpi_check(MPI_Allreduce(MPI_IN_PLACE, B.ytr, bn * ntr, MPI_DOUBLE, MPI_SUM,
                                      grid->comm), "near-tied voxels", err), done);
    int lld = B.y.desc[8];
    for (int j = 0; j < B.y.nloc; j++) {
        int gj = ba_dmat_global_col(&B.y, grid, j);
        for (int i = 0; i < B.y.mloc; i++)
            B.y.data[(size_t)j * lld + i] =
                B.ytr[(size_t)gj * ntr + ba_dmat_global_row(&B.y, grid, i)];
    }

    ba_dmat_gemm("T", "N", m, bn, ntr, &S->exact, 1, &B.y, 1, &B.z); /* Z = Mᵀ Y_tr */
    int tld = B.t.desc[8];
    for (int a = 0; a < na; a++) {
        scale_z(grid, S, &B.z, NULL, NULL, opt->alphas[a], &B.wz);
        ba_dmat_gemm("N", "N", ntr, bn, m, &S->exact, 1, &B.wz, 1, &B.t);
        const double *den = S->denominator + (size_t)a * ntr;
        for (int j = 0; j < B.t.nloc; j++) {
            int gj = ba_dmat_global_col(&B.t, grid, j);
            double sum = 0;
            for (int i = 0; i < B.t.mloc; i++) {
                int gi = ba_dmat_global_row(&B.t, grid, i);
                double v = B.t.data[(size_t)j * tld + i];
                double e = (S->dual ? v : B.ytr[(size_t)gj * ntr + gi] - v) / den[gi];
                sum += e * e;
            }
            B.loss[(size_t)a * bn + gj] = sum;
        }
    }
    BA_TRY(ba_mpi_check(MPI_Allreduce(MPI_IN_PLACE, B.loss, na * bn, MPI_DOUBLE, MPI_SUM,
                                      grid->comm), "near-tied voxels", err), done);
    for (int j = 0; j < bn; j++) {
        int best = 0; /* the first of equal minima, as scikit-learn */
        for (int a = 1; a < na; a++)
            if (B.loss[(size_t)a * bn + j] < B.loss[(size_t)best * bn + j]) best = a;
        B.best[j] = best;
    }

    int row1 = 0;
    const ba_dmat *test_basis = ba_fold_test_basis(S, &row1);
    scale_z(grid, S, &B.z, opt->alphas, B.best, 0, &B.wz);
    ba_dmat_gemm("N", "N", nte, bn, m, test_basis, row1, &B.wz, 1, &B.pred); /* ŷ_te */
    BA_TRY(ba_dmat_replicate_f32(&B.pred, grid, B.yhat, err), done);
    for (long t = 0; t < count; t++) {
        long g = first + t;
        if (g < b0 || g >= b0 + bn) continue;
        long v = voxels[t];
        int j = (int)(g - b0);
        r_out[v] = (float)ba_pearson_f32(B.yhat + j, bn, y + f->test_begin * vloc + v, vloc,
                                         nte);
        alpha_out[v] = (float)opt->alphas[B.best[j]];
    }
done:
    batch_free(&B);
    return rc;
}

ba_status ba_ridge_rerank_ties(const ba_grid *grid, const ba_fold_spectrum *S,
                               const ba_fold_rows *f, const ba_ridge_options *opt,
                               const float *y, long vloc, const long *voxels, long count,
                               float *r_out, float *alpha_out, long *n_group, ba_error *err)
{
    int size = 1, rank = 0;
    MPI_Comm_size(grid->comm, &size);
    MPI_Comm_rank(grid->comm, &rank);
    long counts[size];
    BA_CHECK(ba_mpi_check(MPI_Allgather(&count, 1, MPI_LONG, counts, 1, MPI_LONG, grid->comm),
                          "near-tied voxels", err));
    long first = 0, total = 0;
    for (int q = 0; q < size; q++) {
        if (q < rank) first += counts[q];
        total += counts[q];
    }
    *n_group = total;
    for (long b0 = 0; b0 < total; b0 += TIE_BATCH) {
        int bn = (int)(total - b0 < TIE_BATCH ? total - b0 : TIE_BATCH);
        BA_CHECK(rerank_batch(grid, S, f, opt, y, vloc, voxels, first, count, b0, bn, r_out,
                              alpha_out, err));
    }
    return BA_OK;
}
