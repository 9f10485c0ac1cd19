/* solver_dense.c — the dense solver of the ridge CV driver (solver.h):
 * ScaLAPACK eigendecomposition of each fold's training design, float32
 * GEMMs on the voxel side, near-ties re-ranked in double (ties.c); its
 * entry point is ba_ridge_cv (ridge.h).
 *
 * One outer fold, in formulas. Rows are permuted so the n_tr training
 * samples come first and the n_te test samples last; X is standardised
 * with training statistics and Y centred with training means.
 *
 *   dual   (n_tr <= p):  K = X_tr X_trᵀ = Q diag(s) Qᵀ
 *          basis M = Q, test basis B = X_te X_trᵀ Q
 *          c(α) = M diag(w) Mᵀ y,  w_k = 1 / (s_k + α)
 *          LOO residual_i = c_i / G_ii,  G_ii = Σ_k M_ik² w_k
 *   primal (p < n_tr):   X_trᵀ X_tr = V diag(s) Vᵀ
 *          basis M = X_tr V, test basis B = X_te V
 *          LOO residual_i = (y - M diag(w) Mᵀ y)_i / (1 - Σ_k M_ik² w_k)
 *
 * In both cases the refit prediction on the test fold is
 *   ŷ_te = B diag(w(α*)) Mᵀ y,
 * so with Z = Mᵀ Y computed once, each alpha costs one GEMM (M · wZ) and
 * the prediction one more (B · w*Z). These are the formulas of
 * scikit-learn's _RidgeGCV ('eigen' and 'svd' modes), written so that no
 * eigenvalue is ever divided by. */
#include "brainalign/ridge/ridge.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brainalign/kernels/kernels.h"
#include "brainalign/parallel/fault.h"
#include "brainalign/parallel/parallel.h"
#include "brainalign/parallel/scalapack.h"
#include "solver.h"
#include "spectrum.h"
#include "ties.h"
#include "x_side.h"

/* -------------------------------------------------- the feature side */

static void spectrum_free(ba_fold_spectrum *S)
{
    free(S->basis);
    free(S->test_basis);
    free(S->eig);
    free(S->denominator);
    ba_dmat_destroy(&S->exact);
    ba_dmat_destroy(&S->exact_test);
    memset(S, 0, sizeof *S);
}

/* The lower triangle of C = op(A) op(A)ᵀ, op = "N" (A Aᵀ) or "T" (Aᵀ A),
 * from the top-left corner of A: half the flops of a GEMM, and the
 * eigensolver reads only the lower triangle. */
static void syrk_lower(const char *trans, int n, int k, const ba_dmat *a, ba_dmat *c)
{
    const double one = 1.0, zero = 0.0;
    const int row1 = 1, col1 = 1;
    pdsyrk_("L", trans, &n, &k, &one, a->data, &row1, &col1, a->desc, &zero, c->data, &row1,
            &col1, c->desc);
}

/* Leave-one-out denominators for every alpha (see the top of the file),
 * from the double-precision basis: each rank sums over its local part, then
 * one reduction gives every rank all of them. */
static ba_status loo_denominators(const ba_grid *grid, ba_fold_spectrum *S,
                                  const ba_ridge_options *opt, ba_error *err)
{
    size_t total = (size_t)opt->n_alphas * (size_t)S->n_train;
    S->denominator = ba_calloc(total, sizeof(double), "leave-one-out denominators", err);
    BA_CHECK(ba_mpi_agree(grid->comm, S->denominator ? BA_OK : BA_ERR_NOMEM, err));
    const ba_dmat *q = &S->exact;
    int lld = q->desc[8];
    for (int a = 0; a < opt->n_alphas; a++) {
        double *den = S->denominator + (size_t)a * S->n_train;
        for (int j = 0; j < q->nloc; j++) {
            double w = 1.0 / (S->eig[ba_dmat_global_col(q, grid, j)] + opt->alphas[a]);
            const double *col = q->data + (size_t)j * lld;
            for (int i = 0; i < q->mloc; i++) {
                int gi = ba_dmat_global_row(q, grid, i);
                if (gi < S->n_train) den[gi] += col[i] * col[i] * w;
            }
        }
    }
    BA_CHECK(ba_mpi_check(MPI_Allreduce(MPI_IN_PLACE, S->denominator, (int)total, MPI_DOUBLE,
                                        MPI_SUM, grid->comm), "leave-one-out denominators",
                          err));
    if (!S->dual)
        for (size_t i = 0; i < total; i++) S->denominator[i] = 1.0 - S->denominator[i];
    return BA_OK;
}

/* A cheap guard against a silently failed eigensolver: the basis must
 * satisfy Mᵀ M = diag(s), so for a fixed vector u, ||M u||² = Σ s_k u_k².
 * O(n m), against the O(n m v) that follows. */
static ba_status check_spectrum(const ba_fold_spectrum *S, ba_error *err)
{
    double lhs = 0, rhs = 0;
    for (long k = 0; k < S->m; k++) {
        double u = (k % 3 == 0 ? 1.0 : -0.5) / sqrt((double)S->m);
        rhs += (S->dual ? 1.0 : S->eig[k]) * u * u;
    }
    for (long i = 0; i < S->n_train; i++) {
        double mu = 0;
        const float *row = S->basis + i * S->m;
        for (long k = 0; k < S->m; k++) mu += row[k] * ((k % 3 == 0 ? 1.0 : -0.5) / sqrt((double)S->m));
        lhs += mu * mu;
    }
    if (!(fabs(lhs - rhs) <= 1e-3 * (rhs > 0 ? rhs : 1.0)))
        return ba_fail(err, BA_ERR_NUMERIC,
                       "the eigendecomposition of the %s matrix (%ld x %ld) failed its check "
                       "(||M u||² = %.6g, expected %.6g)", S->dual ? "kernel" : "Gram", S->m,
                       S->m, lhs, rhs);
    return BA_OK;
}

static ba_status feature_phase(const ba_grid *grid, MPI_Comm column_comm,
                               const ba_ridge_data *D, const ba_fold_rows *f,
                               const ba_ridge_options *opt, ba_fold_spectrum *S,
                               double *flops, ba_error *err)
{
    ba_status rc = BA_OK;
    /* A failure on one rank must reach all before the next collective. */
#define AGREE(status) BA_TRY(ba_mpi_agree(grid->comm, (status), err), done)
    /* n: the fold's permuted rows (training + test; fewer than D->n with a
     * fold gap) */
    int n = (int)f->n, p = (int)D->p, ntr = (int)f->n_train, nte = (int)f->n_test;
    /* ScaLAPACK's eigensolver returns wrong results, with info = 0, when a
     * block is larger than the matrix or some process owns no block of it;
     * so the block is small enough that every process row and column gets
     * at least one block of the spectrum-sized matrix. */
    int nb = opt->block_size > 0 ? opt->block_size : 64;
    int spectrum_size = ntr <= p ? ntr : p;
    int widest = grid->nprow > grid->npcol ? grid->nprow : grid->npcol;
    int fitting = (spectrum_size + widest - 1) / widest;
    if (nb > fitting) nb = fitting > 0 ? fitting : 1;
    ba_dmat x = {0}, gram = {0}, vecs = {0}, cross = {0}, basis_te = {0};
    memset(S, 0, sizeof *S);
    S->dual = f->n_train <= D->p; /* scikit-learn's 'eigen' vs 'svd' choice */
    S->n_train = ntr;
    S->n_test = nte;
    S->m = S->dual ? ntr : p;
    int m = (int)S->m;

    AGREE(ba_dmat_create(grid, n, p, nb, &x, err));
    rc = ba_ridge_load_x(grid, D, f, &x, err);
    if (rc == BA_OK) rc = ba_fault("fit.ridge.features", err);
    BA_TRY(ba_mpi_agree(grid->comm, rc, err), done);
    BA_TRY(ba_ridge_standardise(grid, column_comm, ntr, &x, err), done);

    /* Matrices are freed as soon as they are used up, the double X before
     * the eigensolver in the dual case: the solver's workspace is the peak
     * of the whole fit, and Y is resident all along. */
    AGREE(ba_dmat_create(grid, m, m, nb, &gram, err));
    S->eig = ba_calloc((size_t)m, sizeof(double), "eigenvalues", err);
    AGREE(S->eig ? BA_OK : BA_ERR_NOMEM);

    if (S->dual) {
        syrk_lower("N", ntr, p, &x, &gram);                            /* K = X_tr X_trᵀ */
        AGREE(ba_dmat_create(grid, nte, ntr, nb, &cross, err));
        ba_dmat_gemm("N", "T", nte, ntr, p, &x, ntr + 1, &x, 1, &cross);      /* X_te X_trᵀ */
        ba_dmat_destroy(&x);
        AGREE(ba_dmat_create(grid, m, m, nb, &vecs, err));
        rc = ba_dmat_syevd(grid, &gram, S->eig, &vecs, err);
        BA_TRY(ba_mpi_agree(grid->comm, rc, err), done);
        ba_dmat_destroy(&gram);
        AGREE(ba_dmat_create(grid, nte, ntr, nb, &basis_te, err));
        /* B = X_te X_trᵀ Q */
        ba_dmat_gemm("N", "N", nte, ntr, ntr, &cross, 1, &vecs, 1, &basis_te);
        ba_dmat_destroy(&cross);
        S->exact = vecs, S->exact_test = basis_te; /* the spectrum owns them now */
        memset(&vecs, 0, sizeof vecs), memset(&basis_te, 0, sizeof basis_te);
        S->basis = ba_malloc((size_t)ntr * (size_t)m * sizeof(float), "spectral basis", err);
        S->test_basis = ba_malloc((size_t)nte * (size_t)m * sizeof(float), "test basis", err);
        AGREE(S->basis && S->test_basis ? BA_OK : BA_ERR_NOMEM);
        BA_TRY(ba_dmat_replicate_f32(&S->exact, grid, S->basis, err), done);
        BA_TRY(ba_dmat_replicate_f32(&S->exact_test, grid, S->test_basis, err), done);
        *flops += 1.0 * ntr * ntr * p + 2.0 * nte * ntr * p + 2.0 * nte * ntr * ntr +
                  10.0 * ntr * ntr * ntr;
    } else {
        syrk_lower("T", p, ntr, &x, &gram);                            /* X_trᵀ X_tr */
        AGREE(ba_dmat_create(grid, m, m, nb, &vecs, err));
        rc = ba_dmat_syevd(grid, &gram, S->eig, &vecs, err);
        BA_TRY(ba_mpi_agree(grid->comm, rc, err), done);
        ba_dmat_destroy(&gram);
        AGREE(ba_dmat_create(grid, n, p, nb, &S->exact, err));
        ba_dmat_gemm("N", "N", n, p, p, &x, 1, &vecs, 1, &S->exact);           /* [X_tr; X_te] V */
        ba_dmat_destroy(&x);
        ba_dmat_destroy(&vecs);
        /* One replica of [X_tr; X_te] V; the test basis is its tail. */
        S->basis = ba_malloc((size_t)n * (size_t)p * sizeof(float), "spectral basis", err);
        S->test_basis = ba_malloc((size_t)nte * (size_t)p * sizeof(float), "test basis", err);
        AGREE(S->basis && S->test_basis ? BA_OK : BA_ERR_NOMEM);
        BA_TRY(ba_dmat_replicate_f32(&S->exact, grid, S->basis, err), done);
        memcpy(S->test_basis, S->basis + (size_t)ntr * (size_t)p,
               (size_t)nte * (size_t)p * sizeof(float));
        *flops += 1.0 * p * p * ntr + 2.0 * n * p * p + 10.0 * p * p * p;
    }
    for (long k = 0; k < S->m; k++)
        if (S->eig[k] < 0) S->eig[k] = 0; /* round-off on a PSD matrix */
    BA_TRY(check_spectrum(S, err), done);
    BA_TRY(loo_denominators(grid, S, opt, err), done);
done:
    ba_dmat_destroy(&x);
    ba_dmat_destroy(&gram);
    ba_dmat_destroy(&vecs);
    ba_dmat_destroy(&cross);
    ba_dmat_destroy(&basis_te);
    if (rc != BA_OK) spectrum_free(S);
    return rc;
}
#undef AGREE

/* ---------------------------------------------------- the voxel side */

typedef struct {
    long width;   /* block capacity (voxels) */
    float *ytr;   /* [n_train][width] training rows of Y, centred */
    float *t;     /* [n_train][width] c(α) or residuals */
    float *z;     /* [m][width] Mᵀ Y */
    float *wz;    /* [m][width] diag(w) Z */
    float *yhat;  /* [n_test][width] */
    double *mean; /* [width] training means */
    void *gemm;   /* ba_sgemm_ws's packed blocks, for every product below */
    size_t gemm_bytes;
} voxel_workspace;

static void workspace_free(voxel_workspace *w)
{
    free(w->ytr); free(w->t); free(w->z); free(w->wz); free(w->yhat); free(w->mean);
    free(w->gemm);
    memset(w, 0, sizeof *w);
}

static ba_status workspace_create(long n, long m, long width, voxel_workspace *w,
                                  ba_error *err)
{
    memset(w, 0, sizeof *w);
    w->width = width;
    size_t nw = (size_t)n * (size_t)width, mw = (size_t)m * (size_t)width;
    w->ytr = ba_calloc(nw, sizeof(float), "voxel block", err);
    w->t = ba_calloc(nw, sizeof(float), "voxel block", err);
    w->z = ba_calloc(mw, sizeof(float), "voxel block", err);
    w->wz = ba_calloc(mw, sizeof(float), "voxel block", err);
    w->yhat = ba_calloc(nw, sizeof(float), "voxel block", err);
    w->mean = ba_calloc((size_t)width, sizeof(double), "voxel block", err);
    /* The products are m x width x n_train, n_train x width x m and
     * n_test x width x m with n_train, n_test <= n; the workspace size
     * grows with each dimension, so these two bound all three. */
    size_t g1 = ba_sgemm_workspace_bytes((size_t)m, (size_t)width, (size_t)n);
    size_t g2 = ba_sgemm_workspace_bytes((size_t)n, (size_t)width, (size_t)m);
    w->gemm_bytes = g1 > g2 ? g1 : g2;
    w->gemm = w->gemm_bytes ? ba_malloc(w->gemm_bytes, "voxel block products", err) : NULL;
    if (!w->ytr || !w->t || !w->z || !w->wz || !w->yhat || !w->mean ||
        (w->gemm_bytes && !w->gemm)) {
        workspace_free(w);
        return BA_ERR_NOMEM;
    }
    return BA_OK;
}

/* wz[k][j] = weight(k, j) * z[k][j] where the weight is 1/(s_k + α_j). */
static void scale_rows(const ba_fold_spectrum *S, const float *z, float *wz, long bw,
                       const double *alphas, const int *alpha_index, double alpha)
{
    for (long k = 0; k < S->m; k++) {
        const float *zr = z + k * bw;
        float *out = wz + k * bw;
        if (alpha_index) {
            for (long j = 0; j < bw; j++)
                out[j] = (float)(zr[j] / (S->eig[k] + alphas[alpha_index[j]]));
        } else {
            float w = (float)(1.0 / (S->eig[k] + alpha));
            for (long j = 0; j < bw; j++) out[j] = w * zr[j];
        }
    }
}

/* The leave-one-out losses of the local voxels [c0, c0 + bw) for every
 * alpha: loss [n_alphas][bw]. Leaves Z = Mᵀ Y_tr in w->z for the refit. */
static ba_status block_losses(const ba_fold_spectrum *S, const ba_fold_rows *f,
                         const ba_ridge_options *opt, const float *y, long vloc, long c0,
                         long bw, voxel_workspace *w, double *loss_out, double *flops,
                         ba_error *err)
{
    long ntr = S->n_train, m = S->m;
    /* Training rows of Y, centred with their own mean (summed in double,
     * row by row: ba_fold_train_mean gives the same bits for one voxel). */
    for (long j = 0; j < bw; j++) w->mean[j] = 0;
    for (long r = 0; r < ntr; r++) {
        const float *src = y + ba_fold_original_row(f, r) * vloc + c0;
        memcpy(w->ytr + r * bw, src, (size_t)bw * sizeof(float));
        for (long j = 0; j < bw; j++) w->mean[j] += src[j];
    }
    for (long j = 0; j < bw; j++) w->mean[j] /= (double)ntr;
    for (long r = 0; r < ntr; r++)
        for (long j = 0; j < bw; j++) w->ytr[r * bw + j] -= (float)w->mean[j];

    /* Z = Mᵀ Y_tr */
    BA_CHECK(ba_sgemm_ws(true, (size_t)m, (size_t)bw, (size_t)ntr, 1.0f, S->basis, (size_t)m,
                         w->ytr, (size_t)bw, 0.0f, w->z, (size_t)bw, w->gemm, w->gemm_bytes,
                         err));

    for (int a = 0; a < opt->n_alphas; a++) {
        scale_rows(S, w->z, w->wz, bw, NULL, NULL, opt->alphas[a]);
        if (S->dual) {  /* T = c(α) = M diag(w) Z */
            BA_CHECK(ba_sgemm_ws(false, (size_t)ntr, (size_t)bw, (size_t)m, 1.0f, S->basis,
                                 (size_t)m, w->wz, (size_t)bw, 0.0f, w->t, (size_t)bw, w->gemm,
                                 w->gemm_bytes, err));
        } else {        /* T = Y - M diag(w) Z, the training residuals */
            memcpy(w->t, w->ytr, (size_t)ntr * (size_t)bw * sizeof(float));
            BA_CHECK(ba_sgemm_ws(false, (size_t)ntr, (size_t)bw, (size_t)m, -1.0f, S->basis,
                                 (size_t)m, w->wz, (size_t)bw, 1.0f, w->t, (size_t)bw, w->gemm,
                                 w->gemm_bytes, err));
        }
        const double *den = S->denominator + (size_t)a * ntr;
        double *loss = loss_out + (size_t)a * bw;
        for (long j = 0; j < bw; j++) loss[j] = 0;
        for (long r = 0; r < ntr; r++) {
            const float *row = w->t + r * bw;
            double inv = 1.0 / den[r];
            for (long j = 0; j < bw; j++) {
                double e = row[j] * inv;
                loss[j] += e * e;
            }
        }
    }
    *flops += 2.0 * (double)ntr * m * bw * (1 + opt->n_alphas);
    return BA_OK;
}

/* ŷ_te = B diag(w(α*)) Z for the block just scored, then Pearson r
 * against the test rows: r_out [bw]. */
static ba_status block_refit(const ba_fold_spectrum *S, const ba_fold_rows *f,
                        const ba_ridge_options *opt, const float *y, long vloc, long c0,
                        long bw, const int *best, voxel_workspace *w, float *r_out,
                        double *flops, ba_error *err)
{
    long nte = S->n_test, m = S->m;
    scale_rows(S, w->z, w->wz, bw, opt->alphas, best, 0);
    BA_CHECK(ba_sgemm_ws(false, (size_t)nte, (size_t)bw, (size_t)m, 1.0f, S->test_basis,
                         (size_t)m, w->wz, (size_t)bw, 0.0f, w->yhat, (size_t)bw, w->gemm,
                         w->gemm_bytes, err));
    const float *ytest = y + f->test_begin * vloc + c0;
    for (long j = 0; j < bw; j++)
        r_out[j] = (float)ba_pearson_f32(w->yhat + j, bw, ytest + j, vloc, nte);
    *flops += 2.0 * (double)nte * m * bw;
    return BA_OK;
}

/* ------------------------------------------------ the solver's operations */

typedef struct {
    ba_grid grid;
    MPI_Comm column_comm;
    long vloc;
    long width; /* local voxels per block */
    ba_fold_spectrum S;
    voxel_workspace ws;
    double feature_flops, voxel_flops;
} dense_solver;

static ba_status dense_begin(void *self, const ba_ridge_layout *L, const ba_ridge_data *D,
                             const ba_ridge_options *opt, ba_error *err)
{
    (void)D;
    dense_solver *ds = self;
    ds->vloc = L->v_end - L->v_begin;
    ds->width = opt->voxel_block > 0 ? opt->voxel_block : 512;
    if (ds->width > ds->vloc) ds->width = ds->vloc > 0 ? ds->vloc : 1;
    ba_status rc = ba_grid_create(L->group, &ds->grid, err);
    if (rc == BA_OK)
        rc = ba_mpi_check(MPI_Comm_split(L->group, ds->grid.mycol, ds->grid.myrow,
                                         &ds->column_comm), "grid columns", err);
    return rc;
}

static long dense_block_capacity(void *self)
{
    return ((dense_solver *)self)->width;
}

static double dense_fold_units(void *self, const ba_ridge_fold *F)
{
    (void)self, (void)F;
    return 2;
}

static long dense_n_blocks(void *self, const ba_ridge_fold *F)
{
    (void)F;
    const dense_solver *ds = self;
    return (ds->vloc + ds->width - 1) / ds->width;
}

static ba_status dense_prepare_fold(void *self, const ba_ridge_fold *F,
                                    ba_ridge_progress *progress, ba_error *err)
{
    (void)progress;
    dense_solver *ds = self;
    const ba_ridge_data *D = F->data;
    ba_status rc = feature_phase(&ds->grid, ds->column_comm, D, &F->rows, F->opt, &ds->S,
                                 &ds->feature_flops, err);
    /* The voxel workspace lives only through the voxel side, so that it
     * does not add to the feature side's peak. */
    if (rc == BA_OK) {
        long mmax = D->n < D->p ? D->n : D->p;
        rc = workspace_create(D->n > mmax ? D->n : mmax, mmax, ds->width, &ds->ws, err);
    }
    return ba_mpi_agree(ds->grid.comm, rc, err);
}

static ba_status dense_score_block(void *self, const ba_ridge_fold *F, long b,
                                   ba_ridge_block *B, double *loss, ba_error *err)
{
    dense_solver *ds = self;
    long c0 = b * ds->width, bw = ds->vloc - c0 < ds->width ? ds->vloc - c0 : ds->width;
    *B = (ba_ridge_block){.width = bw, .own_begin = 0, .own_end = bw, .local0 = c0};
    return block_losses(&ds->S, &F->rows, F->opt, F->data->y, ds->vloc, c0, bw, &ds->ws, loss,
                        &ds->voxel_flops, err);
}

static ba_status dense_predict_block(void *self, const ba_ridge_fold *F, const ba_ridge_block *B,
                                     const int *best, float *r, ba_error *err)
{
    dense_solver *ds = self;
    return block_refit(&ds->S, &F->rows, F->opt, F->data->y, ds->vloc, B->local0, B->width, best,
                       &ds->ws, r, &ds->voxel_flops, err);
}

static ba_status dense_refine_fold(void *self, const ba_ridge_fold *F, const long *voxels,
                                   long count, float *r_fold, float *alpha_fold, long *n_group,
                                   ba_error *err)
{
    dense_solver *ds = self;
    return ba_ridge_rerank_ties(&ds->grid, &ds->S, &F->rows, F->opt, F->data->y, ds->vloc,
                                voxels, count, r_fold, alpha_fold, n_group, err);
}

static void dense_end_fold(void *self)
{
    dense_solver *ds = self;
    workspace_free(&ds->ws);
    spectrum_free(&ds->S);
}

static ba_status dense_finish(void *self, ba_ridge_result *res, ba_error *err)
{
    (void)err;
    const dense_solver *ds = self;
    res->timing.feature_flops = ds->feature_flops;
    res->timing.voxel_flops = ds->voxel_flops;
    return BA_OK;
}

static void dense_destroy(void *self)
{
    dense_solver *ds = self;
    dense_end_fold(ds);
    if (ds->column_comm != MPI_COMM_NULL) MPI_Comm_free(&ds->column_comm);
    if (ds->grid.nprow > 0 || ds->grid.system_handle) ba_grid_destroy(&ds->grid);
    ds->column_comm = MPI_COMM_NULL;
}

static const ba_ridge_solver_ops dense_ops = {
    .who = "ridge CV",
    .announce_checkpoints = false,
    .collective_blocks = false,
    .near_ties = true,
    .begin = dense_begin,
    .block_capacity = dense_block_capacity,
    .fold_units = dense_fold_units,
    .n_blocks = dense_n_blocks,
    .prepare_fold = dense_prepare_fold,
    .score_block = dense_score_block,
    .predict_block = dense_predict_block,
    .refine_fold = dense_refine_fold,
    .end_fold = dense_end_fold,
    .finish = dense_finish,
    .destroy = dense_destroy,
};

ba_status ba_ridge_cv(const ba_ridge_layout *L, const ba_ridge_data *D,
                      const ba_ridge_options *opt, ba_ridge_result *res, ba_error *err)
{
    dense_solver ds;
    memset(&ds, 0, sizeof ds);
    ds.column_comm = MPI_COMM_NULL;
    ba_ridge_solver solver = {&dense_ops, &ds};
    return ba_ridge_cv_run(L, D, opt, &solver, res, err);
}
