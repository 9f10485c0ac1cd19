/* ridge.c — distributed cross-validated ridge (see ridge.h).
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

#include "brainalign/ridge/folds.h"
#include "brainalign/io/h5io.h"
#include "brainalign/kernels/kernels.h"
#include "brainalign/parallel/fault.h"
#include "brainalign/parallel/parallel.h"
#include "brainalign/parallel/scalapack.h"
#include "ridge_internal.h"

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

static ba_status check_y(const ba_ridge_layout *L, const ba_ridge_data *D, ba_error *err)
{
    long vloc = L->v_end - L->v_begin;
    for (long i = 0; i < D->n; i++)
        for (long j = 0; j < vloc; j++)
            if (!isfinite(D->y[i * vloc + j]))
                return ba_fail_about(err, BA_ABOUT_Y, BA_ERR_VALUE,
                                     "Y: sample %ld of voxel %ld is %s", i,
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

/* Fill the local part of X (n x p, permuted rows) from the reader. */
static ba_status load_x(const ba_grid *grid, const ba_ridge_data *D, const ba_fold_rows *f,
                        ba_dmat *x, ba_error *err)
{
    ba_status rc = BA_OK;
    float *rows = NULL;
    int lld = x->desc[8];
    BA_ALLOC(rows, (size_t)x->nb * (size_t)D->p, "rows of X", done);
    for (int i0 = 0; i0 < x->mloc; i0 += x->nb) {
        int block = x->mloc - i0 < x->nb ? x->mloc - i0 : x->nb;
        long g0 = ba_dmat_global_row(x, grid, i0);
        /* The permuted rows [g0, g0 + block) are at most three runs of
         * consecutive original rows. */
        for (long g = g0; g < g0 + block;) {
            long run_end = ba_fold_run_end(f, g);
            if (run_end > g0 + block) run_end = g0 + block;
            long count = run_end - g, o = ba_fold_original_row(f, g);
            BA_TRY(D->read_x(D->x_ctx, o, count, rows, err), done);
            for (long r = 0; r < count; r++) {
                int i = i0 + (int)(g - g0 + r);
                for (int j = 0; j < x->nloc; j++) {
                    int gj = ba_dmat_global_col(x, grid, j);
                    float value = rows[r * D->p + gj];
                    if (!isfinite(value)) {
                        rc = ba_fail_about(err, BA_ABOUT_X, BA_ERR_VALUE,
                                     "X: sample %ld, feature %d is %s",
                                     o + r, gj, isnan(value) ? "NaN" : "infinite");
                        goto done;
                    }
                    x->data[(size_t)j * lld + i] = value;
                }
            }
            g = run_end;
        }
    }
done:
    free(rows);
    return rc;
}

/* Standardise every column with the mean and std (ddof 0) of its training
 * rows, like StandardScaler (a zero std becomes 1). Sums go over the
 * process rows of the grid. */
static ba_status standardise(const ba_grid *grid, MPI_Comm column_comm, long n_train,
                             ba_dmat *x, ba_error *err)
{
    ba_status rc = BA_OK;
    int lld = x->desc[8];
    double *sum = NULL;
    BA_ALLOC(sum, x->nloc > 0 ? x->nloc : 1, "column statistics", done);
    for (int pass = 0; pass < 2; pass++) {
        for (int j = 0; j < x->nloc; j++) {
            double s = 0;
            const double *col = x->data + (size_t)j * lld;
            for (int i = 0; i < x->mloc; i++) {
                if (ba_dmat_global_row(x, grid, i) >= n_train) continue;
                double d = col[i];
                s += pass == 0 ? d : d * d;
            }
            sum[j] = s;
        }
        BA_TRY(ba_mpi_check(MPI_Allreduce(MPI_IN_PLACE, sum, x->nloc, MPI_DOUBLE, MPI_SUM,
                                          column_comm), "column statistics", err), done);
        for (int j = 0; j < x->nloc; j++) {
            double *col = x->data + (size_t)j * lld;
            if (pass == 0) {
                double mean = sum[j] / (double)n_train;
                for (int i = 0; i < x->mloc; i++) col[i] -= mean;
            } else {
                double sd = sqrt(sum[j] / (double)n_train);
                if (sd < 10 * DBL_EPSILON) sd = 1.0;
                for (int i = 0; i < x->mloc; i++) col[i] /= sd;
            }
        }
    }
done:
    free(sum);
    return rc;
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
    int n = (int)D->n, p = (int)D->p, ntr = (int)f->n_train, nte = (int)f->n_test;
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
    rc = load_x(grid, D, f, &x, err);
    if (rc == BA_OK) rc = ba_fault("fit.ridge.features", err);
    BA_TRY(ba_mpi_agree(grid->comm, rc, err), done);
    BA_TRY(standardise(grid, column_comm, ntr, &x, err), done);

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
    double *loss; /* [n_alphas][width] leave-one-out losses */
    double *mean; /* [width] training means */
    int *best;
    /* This rank's voxels whose best alphas are within the tie tolerance,
     * for the double-precision re-ranking after the fold. */
    long *ties;
    long n_ties, ties_capacity;
} voxel_workspace;

static void workspace_free(voxel_workspace *w)
{
    free(w->ytr); free(w->t); free(w->z); free(w->wz); free(w->yhat);
    free(w->loss); free(w->mean); free(w->best); free(w->ties);
    memset(w, 0, sizeof *w);
}

static ba_status workspace_create(long n, long m, long width, int n_alphas,
                                  voxel_workspace *w, ba_error *err)
{
    memset(w, 0, sizeof *w);
    w->width = width;
    size_t nw = (size_t)n * (size_t)width, mw = (size_t)m * (size_t)width;
    w->ytr = ba_calloc(nw, sizeof(float), "voxel block", err);
    w->t = ba_calloc(nw, sizeof(float), "voxel block", err);
    w->z = ba_calloc(mw, sizeof(float), "voxel block", err);
    w->wz = ba_calloc(mw, sizeof(float), "voxel block", err);
    w->yhat = ba_calloc(nw, sizeof(float), "voxel block", err);
    w->loss = ba_calloc((size_t)n_alphas * (size_t)width, sizeof(double), "voxel block", err);
    w->mean = ba_calloc((size_t)width, sizeof(double), "voxel block", err);
    w->best = ba_calloc((size_t)width, sizeof(int), "voxel block", err);
    if (!w->ytr || !w->t || !w->z || !w->wz || !w->yhat || !w->loss || !w->mean ||
        !w->best) {
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

/* Remember local voxel v for the double-precision re-ranking. */
static ba_status push_tie(voxel_workspace *w, long v, ba_error *err)
{
    if (w->n_ties == w->ties_capacity) {
        long capacity = w->ties_capacity ? 2 * w->ties_capacity : 64;
        long *grown = realloc(w->ties, (size_t)capacity * sizeof *grown);
        if (!grown) return ba_fail(err, BA_ERR_NOMEM, "out of memory listing near-tied voxels");
        w->ties = grown, w->ties_capacity = capacity;
    }
    w->ties[w->n_ties++] = v;
    return BA_OK;
}

/* One block of voxels [c0, c0 + bw) of this rank for one fold. */
static ba_status voxel_block(const ba_fold_spectrum *S, const ba_fold_rows *f,
                             const ba_ridge_options *opt, double tie_tolerance,
                             const float *y, long vloc, long c0, long bw,
                             voxel_workspace *w, float *r_out, float *alpha_out, double *flops,
                             ba_error *err)
{
    long ntr = S->n_train, nte = S->n_test, m = S->m;
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
    ba_sgemm(true, (size_t)m, (size_t)bw, (size_t)ntr, 1.0f, S->basis, (size_t)m, w->ytr,
             (size_t)bw, 0.0f, w->z, (size_t)bw);

    for (int a = 0; a < opt->n_alphas; a++) {
        scale_rows(S, w->z, w->wz, bw, NULL, NULL, opt->alphas[a]);
        if (S->dual) {  /* T = c(α) = M diag(w) Z */
            ba_sgemm(false, (size_t)ntr, (size_t)bw, (size_t)m, 1.0f, S->basis, (size_t)m,
                     w->wz, (size_t)bw, 0.0f, w->t, (size_t)bw);
        } else {        /* T = Y - M diag(w) Z, the training residuals */
            memcpy(w->t, w->ytr, (size_t)ntr * (size_t)bw * sizeof(float));
            ba_sgemm(false, (size_t)ntr, (size_t)bw, (size_t)m, -1.0f, S->basis, (size_t)m,
                     w->wz, (size_t)bw, 1.0f, w->t, (size_t)bw);
        }
        const double *den = S->denominator + (size_t)a * ntr;
        double *loss = w->loss + (size_t)a * bw;
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
    /* The smallest loss; on an exact tie the earlier (smaller) alpha, as in
     * scikit-learn. A voxel where another alpha comes within the tolerance
     * is re-decided in double precision after the fold. */
    for (long j = 0; j < bw; j++) {
        int best = 0;
        for (int a = 1; a < opt->n_alphas; a++)
            if (w->loss[(size_t)a * bw + j] < w->loss[(size_t)best * bw + j]) best = a;
        w->best[j] = best;
        if (tie_tolerance < 0) continue;
        double limit = w->loss[(size_t)best * bw + j] * (1.0 + tie_tolerance);
        for (int a = 0; a < opt->n_alphas; a++)
            if (a != best && w->loss[(size_t)a * bw + j] <= limit) {
                BA_CHECK(push_tie(w, c0 + j, err));
                break;
            }
    }

    /* ŷ_te = B diag(w(α*)) Z, then Pearson r against the test rows. */
    scale_rows(S, w->z, w->wz, bw, opt->alphas, w->best, 0);
    ba_sgemm(false, (size_t)nte, (size_t)bw, (size_t)m, 1.0f, S->test_basis, (size_t)m, w->wz,
             (size_t)bw, 0.0f, w->yhat, (size_t)bw);
    const float *ytest = y + f->test_begin * vloc + c0;
    for (long j = 0; j < bw; j++) {
        r_out[j] = (float)ba_pearson_f32(w->yhat + j, bw, ytest + j, vloc, nte);
        alpha_out[j] = (float)opt->alphas[w->best[j]];
    }
    *flops += 2.0 * (double)ntr * m * bw * (1 + opt->n_alphas) + 2.0 * (double)nte * m * bw;
    return BA_OK;
}

/* ------------------------------------------------------------ the driver */

static ba_status check_options(const ba_ridge_data *D, const ba_ridge_options *opt,
                               ba_error *err)
{
    if (opt->n_alphas < 1)
        return ba_fail(err, BA_ERR_USAGE, "need at least one alpha");
    for (int a = 0; a < opt->n_alphas; a++)
        if (!(opt->alphas[a] > 0) || !isfinite(opt->alphas[a]))
            return ba_fail(err, BA_ERR_USAGE, "alpha %g must be positive and finite",
                           opt->alphas[a]);
    if (opt->fold_groups > opt->n_folds)
        return ba_fail(err, BA_ERR_USAGE, "--fold-groups %d exceeds the %d folds",
                       opt->fold_groups, opt->n_folds);
    if (D->p < 1) return ba_fail(err, BA_ERR_SHAPE, "X has no features");
    return BA_OK;
}

ba_status ba_ridge_cv(const ba_ridge_layout *L, const ba_ridge_data *D,
                      const ba_ridge_options *opt, ba_ridge_result *res, ba_error *err)
{
    ba_status rc = BA_OK;
    int K = opt->n_folds;
    long vloc = L->v_end - L->v_begin;
    long bounds_store[K + 1 > 1 ? K + 1 : 2];
    const long *bounds = opt->fold_bounds;
    memset(res, 0, sizeof *res);

    rc = check_options(D, opt, err);
    if (rc == BA_OK && !bounds) {
        rc = ba_kfold_bounds(D->n, K, bounds_store, err);
        bounds = bounds_store;
    }
    for (int k = 0; rc == BA_OK && k < K; k++)
        if (bounds[k + 1] - bounds[k] < 2 || D->n - (bounds[k + 1] - bounds[k]) < 2)
            rc = ba_fail(err, BA_ERR_SHAPE,
                         "fold %d has %ld test and %ld training samples; each needs >= 2",
                         k, bounds[k + 1] - bounds[k], D->n - (bounds[k + 1] - bounds[k]));
    if (rc == BA_OK) rc = check_y(L, D, err);
    BA_CHECK(ba_mpi_agree(L->world, rc, err));

    res->n_folds = K;
    res->v_local = vloc;
    res->r_folds = ba_calloc((size_t)K * (size_t)(vloc ? vloc : 1), sizeof(float), "r", err);
    res->alpha = ba_calloc((size_t)K * (size_t)(vloc ? vloc : 1), sizeof(float), "alpha", err);
    res->r = ba_calloc((size_t)(vloc ? vloc : 1), sizeof(float), "r", err);
    rc = (!res->r_folds || !res->alpha || !res->r) ? BA_ERR_NOMEM : BA_OK;
    BA_CHECK(ba_mpi_agree(L->world, rc, err));

    int done[K > 0 ? K : 1];
    ba_ridge_checkpoint_load(L, opt, "ridge CV", res, done);
    for (int k = 0; k < K; k++) res->n_folds_resumed += done[k];
    int rank = 0;
    MPI_Comm_rank(L->world, &rank);
    if (rank == 0 && !opt->quiet && res->n_folds_resumed > 0)
        fprintf(stderr, "ridge CV: resuming: %d of %d folds done in %s\n", res->n_folds_resumed,
                K, opt->checkpoint_path);

    ba_grid grid = {0};
    MPI_Comm column_comm = MPI_COMM_NULL;
    voxel_workspace ws = {0};
    ba_fold_spectrum S = {0};
    long width = opt->voxel_block > 0 ? opt->voxel_block : 512;
    if (width > vloc) width = vloc > 0 ? vloc : 1;
    int my_folds = 0;
    for (int k = L->group_index; k < K; k += L->n_groups) my_folds += !done[k];
    long blocks = (vloc + width - 1) / width;
    ba_progress progress;
    ba_progress_begin(&progress, L->world, opt->quiet, "ridge CV");
    double done_units = 0, total_units = (double)my_folds * (double)(blocks + 2);

    rc = ba_grid_create(L->group, &grid, err);
    if (rc == BA_OK)
        rc = ba_mpi_check(MPI_Comm_split(L->group, grid.mycol, grid.myrow, &column_comm),
                          "grid columns", err);
    BA_TRY(ba_mpi_agree(L->world, rc, err), cleanup);
    double tie_tolerance = opt->tie_tolerance == 0 ? BA_RIDGE_TIE_TOLERANCE : opt->tie_tolerance;

    /* Folds run in lock-step rounds across groups so that an error in one
     * group reaches every rank at the next agreement. */
    int rounds = (K + L->n_groups - 1) / L->n_groups;
    for (int round = 0; round < rounds; round++) {
        int k = round * L->n_groups + L->group_index;
        int first = round * L->n_groups, last = first + L->n_groups < K ? first + L->n_groups : K;
        bool round_done = true;
        for (int j = first; j < last; j++) round_done = round_done && done[j];
        if (round_done) continue; /* resumed from the checkpoint */
        if (k < K && !done[k]) {
            ba_fold_rows f = ba_fold_make(D->n, bounds[k], bounds[k + 1]);
            double t0 = ba_now();
            rc = feature_phase(&grid, column_comm, D, &f, opt, &S,
                               &res->timing.feature_flops, err);
            res->timing.feature_seconds += ba_now() - t0;
            done_units += 2;
            ba_progress_update(&progress, done_units, total_units);
            /* The voxel workspace lives only through the voxel side, so that
             * it does not add to the feature side's peak. */
            if (rc == BA_OK) {
                long mmax = D->n < D->p ? D->n : D->p;
                rc = workspace_create(D->n > mmax ? D->n : mmax, mmax, width, opt->n_alphas,
                                      &ws, err);
            }
            rc = ba_mpi_agree(grid.comm, rc, err);
            float *r_fold = res->r_folds + (size_t)k * vloc;
            float *alpha_fold = res->alpha + (size_t)k * vloc;
            if (rc == BA_OK) {
                double t1 = ba_now();
                for (long c0 = 0; c0 < vloc && rc == BA_OK; c0 += width) {
                    long bw = vloc - c0 < width ? vloc - c0 : width;
                    rc = voxel_block(&S, &f, opt, tie_tolerance, D->y, vloc, c0, bw, &ws,
                                     r_fold + c0, alpha_fold + c0, &res->timing.voxel_flops,
                                     err);
                    if (rc == BA_OK) rc = ba_fault("fit.ridge.voxels", err);
                    done_units += 1;
                    ba_progress_update(&progress, done_units, total_units);
                }
                res->timing.voxel_seconds += ba_now() - t1;
                rc = ba_mpi_agree(grid.comm, rc, err);
            }
            if (rc == BA_OK) {
                double t1 = ba_now();
                long tied = 0;
                rc = ba_ridge_rerank_ties(&grid, &S, &f, opt, D->y, vloc, ws.ties, ws.n_ties,
                                          r_fold, alpha_fold, &tied, err);
                res->timing.tied_voxels += tied;
                res->timing.tie_seconds += ba_now() - t1;
            }
            workspace_free(&ws);
            spectrum_free(&S);
        }
        BA_TRY(ba_mpi_agree(L->world, rc, err), cleanup);
        BA_TRY(ba_ridge_end_of_round(L, opt, "ridge CV", !progress.tty, res, done, first, last,
                                     err), cleanup);
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
    ba_progress_end(&progress);

cleanup:
    workspace_free(&ws);
    if (column_comm != MPI_COMM_NULL) MPI_Comm_free(&column_comm);
    if (grid.nprow > 0 || grid.system_handle) ba_grid_destroy(&grid);
    if (rc != BA_OK) ba_ridge_result_free(res);
    return rc;
}
