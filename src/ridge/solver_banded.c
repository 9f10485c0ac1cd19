/* solver_banded.c — banded ridge, the third solver of the ridge CV driver
 * (solver.h); its entry point is ba_ridge_cv_banded (ridge.h).
 *
 * One outer fold, in formulas (rows permuted: n_tr training rows first,
 * n_te test rows last; X standardised with training statistics, Y centred
 * with training means, as solver_dense.c). Band b is the column range
 * [begin_b, end_b) of X; a candidate is (α_1 .. α_B).
 *
 *   feature side, once per fold (ScaLAPACK, over the fold group's grid):
 *     K_b    = X_tr,b X_tr,bᵀ      [n_tr][n_tr], distributed, double
 *     T_b    = X_te,b X_tr,bᵀ      [n_te][n_tr], replicated, float32
 *   per candidate c (at most one eigendecomposition each):
 *     K(c)   = Σ_b K_b / α_b = S K_γ,  S = Σ_b 1/α_b,  γ_b = 1/(α_b S)
 *     K_γ    = Q diag(s) Qᵀ                          (pdsyevd; reused while
 *              consecutive candidates keep the direction γ, as a band-weight
 *              vector times the alpha grid does)
 *     G_ii   = Σ_k Q_ik² / (S s_k + 1)               (double, from the distributed Q)
 *     C      = Q diag(1/(S s+1)) Qᵀ Y_tr             (two float32 GEMMs per voxel chunk)
 *     loss_j = Σ_i (C_ij / G_ii)²                    (exact leave-one-out, sum of squares)
 *   per voxel j, with its best candidate c* (the driver's choice):
 *     ŷ_b = (T_b / α_b(c*)) c_j,   ŷ = Σ_b ŷ_b,   r = Pearson(ŷ, y_te)
 *
 * That is plain ridge (α = 1) on the columns of band b scaled by
 * 1/sqrt(α_b), in its dual form; the dual is used whatever p (a primal path
 * for p < n_tr is not written). The dual coefficients of each voxel's best
 * candidate so far are kept while the candidates are scored (ties keep the
 * earlier candidate, the driver's rule), so the refit costs no second
 * eigendecomposition.
 *
 * Voxels: each rank scores its own voxel range with the replicated Q; the
 * eigendecompositions are collective over the group, so there is one
 * "block" per fold made of all this rank's voxels (collective_blocks).
 * Near-ties between candidates are not re-ranked (ridge.h). */
#include "brainalign/ridge/ridge.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/kernels/kernels.h"
#include "brainalign/parallel/parallel.h"
#include "brainalign/parallel/scalapack.h"
#include "solver.h"
#include "x_side.h"

/* ------------------------------------------------------------ the solver */

typedef struct {
    const ba_banded_options *bo;
    ba_banded_result *out;
    ba_grid grid;
    MPI_Comm column_comm, across;
    long vloc, chunk;    /* my voxels; voxels per GEMM chunk */
    int n_folds;
    int *ran;            /* [n_folds] folds scored in this run */
    /* one fold */
    long ntr, nte;
    ba_dmat ktr[BA_MAX_BANDS]; /* K_b [ntr][ntr], distributed */
    ba_dmat kc, vecs;    /* K(c) and its eigenvectors, distributed */
    float *kte;          /* [B][nte][ntr] X_te,b X_tr,bᵀ, replicated */
    double *eig, *den;   /* [ntr]: eigenvalues of K_γ, denominators of the candidate */
    double gamma[BA_MAX_BANDS]; /* direction of the spectrum held (have_gamma) */
    bool have_gamma;
    double scale;        /* the candidate's K(c) = scale * K_γ */
    long n_spectra;      /* eigendecompositions done (statistics) */
    float *q;            /* [ntr][ntr] eigenvectors, replicated, row-major */
    float *ytr;          /* [ntr][vloc] training rows of Y, centred */
    float *cbest;        /* [ntr][vloc] dual coefficients of the best candidate so far */
    double *best_loss;   /* [vloc] */
    int *best_cand;      /* [vloc] */
    float *z, *t;        /* [ntr][chunk] */
    float *parts;        /* [B][nte][vloc] the held-out prediction of each band */
    double feature_flops, voxel_flops;
} banded_solver;

static void fold_free(banded_solver *s)
{
    for (int b = 0; b < BA_MAX_BANDS; b++) ba_dmat_destroy(&s->ktr[b]);
    ba_dmat_destroy(&s->kc);
    ba_dmat_destroy(&s->vecs);
    free(s->kte); free(s->eig); free(s->den); free(s->q); free(s->ytr); free(s->cbest);
    free(s->best_loss); free(s->best_cand); free(s->z); free(s->t); free(s->parts);
    s->kte = s->q = s->ytr = s->cbest = s->z = s->t = s->parts = NULL;
    s->eig = s->den = s->best_loss = NULL;
    s->best_cand = NULL;
    s->have_gamma = false;
}

static ba_status banded_begin(void *self, const ba_ridge_layout *L, const ba_ridge_data *D,
                              const ba_ridge_options *opt, ba_error *err)
{
    (void)D;
    banded_solver *s = self;
    s->vloc = L->v_end - L->v_begin;
    s->chunk = opt->voxel_block > 0 ? opt->voxel_block : 512;
    if (s->chunk > s->vloc) s->chunk = s->vloc > 0 ? s->vloc : 1;
    s->n_folds = opt->n_folds;
    s->across = L->across;
    int B = s->bo->n_bands;
    ba_banded_result *o = s->out;
    o->n_bands = B;
    o->n_folds = opt->n_folds;
    o->v_local = s->vloc;
    size_t vb = (size_t)(s->vloc > 0 ? s->vloc : 1) * (size_t)B;
    o->band_r2_folds = ba_calloc((size_t)opt->n_folds * vb, sizeof(float), "band r2", err);
    o->band_r2 = ba_calloc(vb, sizeof(float), "band r2", err);
    s->ran = ba_calloc((size_t)opt->n_folds, sizeof(int), "folds", err);
    if (!o->band_r2_folds || !o->band_r2 || !s->ran) return BA_ERR_NOMEM;
    ba_status rc = ba_grid_create(L->group, &s->grid, err);
    if (rc == BA_OK)
        rc = ba_mpi_check(MPI_Comm_split(L->group, s->grid.mycol, s->grid.myrow,
                                         &s->column_comm), "grid columns", err);
    return rc;
}

static long banded_block_capacity(void *self)
{
    const banded_solver *s = self;
    return s->vloc > 0 ? s->vloc : 1;
}

static double banded_fold_units(void *self, const ba_ridge_fold *F)
{
    (void)self, (void)F;
    return 1;
}

static long banded_n_blocks(void *self, const ba_ridge_fold *F)
{
    (void)self, (void)F;
    return 1; /* all my voxels: the candidates' eigendecompositions are collective */
}

static ba_status banded_prepare_fold(void *self, const ba_ridge_fold *F,
                                     ba_ridge_progress *progress, ba_error *err)
{
    (void)progress;
    banded_solver *s = self;
    const ba_grid *grid = &s->grid;
    const ba_ridge_data *D = F->data;
    const ba_fold_rows *f = &F->rows;
    ba_status rc = BA_OK;
#define AGREE(status) BA_TRY(ba_mpi_agree(grid->comm, (status), err), done)
    int B = s->bo->n_bands, n = (int)f->n, p = (int)D->p;
    int ntr = (int)f->n_train, nte = (int)f->n_test;
    s->ntr = ntr, s->nte = nte;
    /* Every process row and column must own a block of the n_tr x n_tr
     * kernel (see solver_dense.c: pdsyevd is wrong otherwise). */
    int nb = F->opt->block_size > 0 ? F->opt->block_size : 64;
    int widest = grid->nprow > grid->npcol ? grid->nprow : grid->npcol;
    int fitting = (ntr + widest - 1) / widest;
    if (nb > fitting) nb = fitting > 0 ? fitting : 1;
    ba_dmat x = {0}, cross = {0};
    AGREE(ba_dmat_create(grid, n, p, nb, &x, err));
    AGREE(ba_ridge_load_x(grid, D, f, &x, err));
    BA_TRY(ba_ridge_standardise(grid, s->column_comm, ntr, &x, err), done);

    size_t tsize = (size_t)nte * (size_t)ntr;
    s->kte = ba_malloc((size_t)B * tsize * sizeof(float), "test kernels", err);
    AGREE(s->kte ? BA_OK : BA_ERR_NOMEM);
    AGREE(ba_dmat_create(grid, nte, ntr, nb, &cross, err));
    const double one = 1.0, zero = 0.0;
    const int i1 = 1, ite = ntr + 1;
    for (int b = 0; b < B; b++) {
        int jb = (int)s->bo->band_begin[b] + 1, width = (int)(s->bo->band_end[b] - s->bo->band_begin[b]);
        AGREE(ba_dmat_create(grid, ntr, ntr, nb, &s->ktr[b], err));
        /* K_b = X_tr,b X_tr,bᵀ, T_b = X_te,b X_tr,bᵀ (columns jb.. of X) */
        pdgemm_("N", "T", &ntr, &ntr, &width, &one, x.data, &i1, &jb, x.desc, x.data, &i1, &jb,
                x.desc, &zero, s->ktr[b].data, &i1, &i1, s->ktr[b].desc);
        pdgemm_("N", "T", &nte, &ntr, &width, &one, x.data, &ite, &jb, x.desc, x.data, &i1, &jb,
                x.desc, &zero, cross.data, &i1, &i1, cross.desc);
        BA_TRY(ba_dmat_replicate_f32(&cross, grid, s->kte + (size_t)b * tsize, err), done);
        s->feature_flops += 2.0 * (double)ntr * (ntr + nte) * width;
    }
    ba_dmat_destroy(&x);
    ba_dmat_destroy(&cross);
    AGREE(ba_dmat_create(grid, ntr, ntr, nb, &s->kc, err));
    AGREE(ba_dmat_create(grid, ntr, ntr, nb, &s->vecs, err));
    size_t vl = (size_t)(s->vloc > 0 ? s->vloc : 1), nv = (size_t)ntr * vl;
    size_t nc = (size_t)ntr * (size_t)s->chunk;
    s->eig = ba_calloc((size_t)ntr, sizeof(double), "eigenvalues", err);
    s->den = ba_calloc((size_t)ntr, sizeof(double), "leave-one-out denominators", err);
    s->q = ba_malloc((size_t)ntr * (size_t)ntr * sizeof(float), "eigenvectors", err);
    s->ytr = ba_calloc(nv, sizeof(float), "voxel block", err);
    s->cbest = ba_calloc(nv, sizeof(float), "voxel block", err);
    s->best_loss = ba_calloc(vl, sizeof(double), "voxel block", err);
    s->best_cand = ba_calloc(vl, sizeof(int), "voxel block", err);
    s->z = ba_calloc(nc, sizeof(float), "voxel block", err);
    s->t = ba_calloc(nc, sizeof(float), "voxel block", err);
    s->parts = ba_calloc((size_t)B * (size_t)nte * vl, sizeof(float), "band predictions", err);
    AGREE(s->eig && s->den && s->q && s->ytr && s->cbest && s->best_loss && s->best_cand &&
          s->z && s->t && s->parts ? BA_OK : BA_ERR_NOMEM);
done:
    ba_dmat_destroy(&x);
    ba_dmat_destroy(&cross);
    return rc;
#undef AGREE
}

/* Candidate c's spectrum, denominators and replicated eigenvectors.
 * K(c) = Σ_b K_b / α_b = S K_γ with S = Σ_b 1/α_b and the direction
 * γ_b = (1/α_b) / S; consecutive candidates on one direction (a band-weight
 * vector times the alpha grid: random:N, --band-weights) share one
 * eigendecomposition of K_γ, whose eigenvalues S scales. Collective over
 * the grid. */
static ba_status candidate_spectrum(banded_solver *s, int c, ba_error *err)
{
    const ba_grid *grid = &s->grid;
    int B = s->bo->n_bands;
    const double *alpha = s->bo->candidates + (size_t)c * B;
    double gamma[BA_MAX_BANDS], S = 0;
    for (int b = 0; b < B; b++) S += 1.0 / alpha[b];
    bool same = s->have_gamma;
    for (int b = 0; b < B; b++) {
        gamma[b] = (1.0 / alpha[b]) / S;
        if (fabs(gamma[b] - s->gamma[b]) > 1e-12 * s->gamma[b]) same = false;
    }
    s->scale = S;
    long ntr = s->ntr;
    if (!same) {
        size_t local = (size_t)s->kc.desc[8] * (size_t)s->kc.nloc;
        if (s->kc.mloc == 0 || s->kc.nloc == 0) local = 0;
        for (size_t i = 0; i < local; i++) {
            double sum = 0;
            for (int b = 0; b < B; b++) sum += s->ktr[b].data[i] * gamma[b];
            s->kc.data[i] = sum;
        }
        s->have_gamma = false;
        BA_CHECK(ba_mpi_agree(grid->comm, ba_dmat_syevd(grid, &s->kc, s->eig, &s->vecs, err),
                              err));
        for (long k = 0; k < ntr; k++)
            if (s->eig[k] < 0) s->eig[k] = 0; /* round-off on a PSD matrix */
        /* ScaLAPACK's eigenvectors are the columns: q[i][k] = Q_ik, row-major. */
        BA_CHECK(ba_dmat_replicate_f32(&s->vecs, grid, s->q, err));
        memcpy(s->gamma, gamma, sizeof gamma);
        s->have_gamma = true;
        s->n_spectra++;
        s->feature_flops += 10.0 / 3.0 * (double)ntr * ntr * ntr;
    }
    for (long i = 0; i < ntr; i++) s->den[i] = 0;
    const ba_dmat *q = &s->vecs;
    int lld = q->desc[8];
    for (int j = 0; j < q->nloc; j++) {
        double w = 1.0 / (S * s->eig[ba_dmat_global_col(q, grid, j)] + 1.0);
        const double *col = q->data + (size_t)j * lld;
        for (int i = 0; i < q->mloc; i++) s->den[ba_dmat_global_row(q, grid, i)] += col[i] * col[i] * w;
    }
    BA_CHECK(ba_mpi_check(MPI_Allreduce(MPI_IN_PLACE, s->den, (int)ntr, MPI_DOUBLE, MPI_SUM,
                                        grid->comm), "leave-one-out denominators", err));
    for (long i = 0; i < ntr; i++)
        if (!(s->den[i] > 0) || !(s->den[i] <= 1.0 + 1e-9))
            return ba_fail(err, BA_ERR_NUMERIC,
                           "banded ridge: candidate %d's kernel (%ld x %ld) gave a "
                           "leave-one-out denominator %g outside (0, 1]", c, ntr, ntr,
                           s->den[i]);
    return BA_OK;
}

static ba_status banded_score_block(void *self, const ba_ridge_fold *F, long blk,
                                    ba_ridge_block *Bk, double *loss, ba_error *err)
{
    (void)blk;
    banded_solver *s = self;
    const ba_fold_rows *f = &F->rows;
    const float *y = F->data->y;
    long vloc = s->vloc, ntr = s->ntr;
    *Bk = (ba_ridge_block){.width = vloc, .own_begin = 0, .own_end = vloc, .local0 = 0};
    /* Training rows of Y, centred with their mean (summed in double, row by
     * row, as solver_dense.c). */
    for (long j = 0; j < vloc; j++) s->best_loss[j] = 0;
    for (long r = 0; r < ntr; r++) {
        const float *src = y + ba_fold_original_row(f, r) * vloc;
        memcpy(s->ytr + r * vloc, src, (size_t)vloc * sizeof(float));
        for (long j = 0; j < vloc; j++) s->best_loss[j] += src[j];
    }
    for (long j = 0; j < vloc; j++) s->best_loss[j] /= (double)ntr;
    for (long r = 0; r < ntr; r++)
        for (long j = 0; j < vloc; j++) s->ytr[r * vloc + j] -= (float)s->best_loss[j];
    for (long j = 0; j < vloc; j++) s->best_loss[j] = INFINITY, s->best_cand[j] = -1;

    for (int c = 0; c < s->bo->n_candidates; c++) {
        BA_CHECK(candidate_spectrum(s, c, err));
        for (long c0 = 0; c0 < vloc; c0 += s->chunk) {
            long bw = vloc - c0 < s->chunk ? vloc - c0 : s->chunk;
            /* Z = Qᵀ Y_tr; Z_k *= 1/(S s_k + 1); C = Q Z */
            BA_CHECK(ba_sgemm(true, (size_t)ntr, (size_t)bw, (size_t)ntr, 1.0f, s->q,
                              (size_t)ntr, s->ytr + c0, (size_t)vloc, 0.0f, s->z, (size_t)bw,
                              err));
            for (long k = 0; k < ntr; k++) {
                float w = (float)(1.0 / (s->scale * s->eig[k] + 1.0));
                for (long j = 0; j < bw; j++) s->z[k * bw + j] *= w;
            }
            BA_CHECK(ba_sgemm(false, (size_t)ntr, (size_t)bw, (size_t)ntr, 1.0f, s->q,
                              (size_t)ntr, s->z, (size_t)bw, 0.0f, s->t, (size_t)bw, err));
            double *out = loss + (size_t)c * vloc + c0;
            for (long j = 0; j < bw; j++) out[j] = 0;
            for (long r = 0; r < ntr; r++) {
                double inv = 1.0 / s->den[r];
                const float *row = s->t + r * bw;
                for (long j = 0; j < bw; j++) {
                    double e = row[j] * inv;
                    out[j] += e * e;
                }
            }
            for (long j = 0; j < bw; j++) {
                if (!(out[j] < s->best_loss[c0 + j])) continue; /* ties keep the earlier */
                s->best_loss[c0 + j] = out[j];
                s->best_cand[c0 + j] = c;
                for (long r = 0; r < ntr; r++) s->cbest[r * vloc + c0 + j] = s->t[r * bw + j];
            }
        }
        s->voxel_flops += 4.0 * (double)ntr * ntr * vloc;
    }
    return BA_OK;
}

static ba_status banded_predict_block(void *self, const ba_ridge_fold *F,
                                      const ba_ridge_block *Bk, const int *best, float *r,
                                      ba_error *err)
{
    banded_solver *s = self;
    const ba_fold_rows *f = &F->rows;
    int B = s->bo->n_bands;
    long vloc = s->vloc, ntr = s->ntr, nte = s->nte;
    (void)Bk;
    for (long j = 0; j < vloc; j++)
        if (best[j] != s->best_cand[j])
            return ba_fail(err, BA_ERR_INTERNAL,
                           "banded ridge: fold %d, local voxel %ld: the driver chose "
                           "candidate %d, the scoring kept %d", F->index, j, best[j],
                           s->best_cand[j]);
    if (vloc == 0) {
        s->ran[F->index] = 1;
        return BA_OK;
    }
    /* ŷ_b = (T_b C*) / α_b(c*_j)   [nte][vloc] */
    size_t tsize = (size_t)nte * (size_t)ntr, psize = (size_t)nte * (size_t)vloc;
    for (int b = 0; b < B; b++) {
        float *part = s->parts + (size_t)b * psize;
        BA_CHECK(ba_sgemm(false, (size_t)nte, (size_t)vloc, (size_t)ntr, 1.0f,
                          s->kte + (size_t)b * tsize, (size_t)ntr, s->cbest, (size_t)vloc, 0.0f,
                          part, (size_t)vloc, err));
        for (long i = 0; i < nte; i++)
            for (long j = 0; j < vloc; j++)
                part[i * vloc + j] =
                    (float)(part[i * vloc + j] / s->bo->candidates[(size_t)best[j] * B + b]);
    }
    s->voxel_flops += 2.0 * (double)B * nte * ntr * vloc;
    const float *ytest = F->data->y + f->test_begin * vloc;
    double mean_part[BA_MAX_BANDS];
    float *r2 = s->out->band_r2_folds + (size_t)F->index * (size_t)vloc * B;
    float *yhat = ba_malloc((size_t)nte * sizeof(float), "prediction", err); /* [nte] */
    if (!yhat) return BA_ERR_NOMEM;
    for (long j = 0; j < vloc; j++) {
        for (long i = 0; i < nte; i++) {
            float sum = 0;
            for (int b = 0; b < B; b++) sum += s->parts[(size_t)b * psize + i * vloc + j];
            yhat[i] = sum;
        }
        r[j] = (float)ba_pearson_f32(yhat, 1, ytest + j, vloc, nte);
        /* himalaya's split r²: everything centred on the test fold. */
        double my = 0, yy = 0;
        for (long i = 0; i < nte; i++) my += ytest[i * vloc + j];
        my /= (double)nte;
        for (long i = 0; i < nte; i++) {
            double d = ytest[i * vloc + j] - my;
            yy += d * d;
        }
        for (int b = 0; b < B; b++) {
            double m = 0;
            for (long i = 0; i < nte; i++) m += s->parts[(size_t)b * psize + i * vloc + j];
            mean_part[b] = m / (double)nte;
        }
        for (int b = 0; b < B; b++) {
            double py = 0, ph = 0;
            for (long i = 0; i < nte; i++) {
                double pb = s->parts[(size_t)b * psize + i * vloc + j] - mean_part[b];
                double h = 0;
                for (int c = 0; c < B; c++)
                    h += s->parts[(size_t)c * psize + i * vloc + j] - mean_part[c];
                py += pb * (ytest[i * vloc + j] - my);
                ph += pb * h;
            }
            r2[(size_t)j * B + b] = (float)(yy > 0 ? (2 * py - ph) / yy : 0.0);
        }
    }
    free(yhat);
    s->ran[F->index] = 1;
    return BA_OK;
}

static void banded_end_fold(void *self)
{
    fold_free(self);
}

/* Combine the split r² of the folds across fold groups (each fold has one
 * group) and average over the folds computed in this run. */
static ba_status banded_finish(void *self, ba_ridge_result *res, ba_error *err)
{
    banded_solver *s = self;
    ba_banded_result *o = s->out;
    int K = s->n_folds, B = o->n_bands;
    long vloc = s->vloc;
    size_t vb = (size_t)vloc * (size_t)B;
    BA_CHECK(ba_mpi_check(MPI_Allreduce(MPI_IN_PLACE, s->ran, K, MPI_INT, MPI_SUM, s->across),
                          "combining folds", err));
    if (vb > 0)
        BA_CHECK(ba_mpi_check(MPI_Allreduce(MPI_IN_PLACE, o->band_r2_folds, (int)((size_t)K * vb),
                                            MPI_FLOAT, MPI_SUM, s->across),
                              "combining folds", err));
    o->n_folds_computed = 0;
    for (int k = 0; k < K; k++) {
        if (s->ran[k]) {
            o->n_folds_computed++;
            continue;
        }
        for (size_t i = 0; i < vb; i++) o->band_r2_folds[(size_t)k * vb + i] = NAN;
    }
    for (long j = 0; j < vloc; j++)
        for (int b = 0; b < B; b++) {
            double sum = 0;
            for (int k = 0; k < K; k++)
                if (s->ran[k]) sum += o->band_r2_folds[(size_t)k * vb + (size_t)j * B + b];
            o->band_r2[(size_t)b * vloc + j] =
                o->n_folds_computed ? (float)(sum / o->n_folds_computed) : NAN;
        }
    res->timing.feature_flops = s->feature_flops;
    res->timing.voxel_flops = s->voxel_flops;
    return BA_OK;
}

static void banded_destroy(void *self)
{
    banded_solver *s = self;
    fold_free(s);
    free(s->ran);
    s->ran = NULL;
    if (s->column_comm != MPI_COMM_NULL) MPI_Comm_free(&s->column_comm);
    if (s->grid.nprow > 0 || s->grid.system_handle) ba_grid_destroy(&s->grid);
    s->column_comm = MPI_COMM_NULL;
}

static const ba_ridge_solver_ops banded_ops = {
    .who = "banded ridge CV",
    .announce_checkpoints = false,
    .collective_blocks = true,
    .near_ties = false,
    .begin = banded_begin,
    .block_capacity = banded_block_capacity,
    .fold_units = banded_fold_units,
    .n_blocks = banded_n_blocks,
    .prepare_fold = banded_prepare_fold,
    .score_block = banded_score_block,
    .predict_block = banded_predict_block,
    .refine_fold = NULL,
    .end_fold = banded_end_fold,
    .finish = banded_finish,
    .destroy = banded_destroy,
};

void ba_banded_result_free(ba_banded_result *o)
{
    free(o->band_r2_folds);
    free(o->band_r2);
    memset(o, 0, sizeof *o);
}

static ba_status check_bands(const ba_banded_options *bo, long p, ba_error *err)
{
    if (bo->n_bands < 1 || bo->n_bands > BA_MAX_BANDS)
        return ba_fail(err, BA_ERR_USAGE, "banded ridge: %d bands; give 1 to %d", bo->n_bands,
                       BA_MAX_BANDS);
    long next = 0;
    for (int b = 0; b < bo->n_bands; b++) {
        long lo = bo->band_begin[b], hi = bo->band_end[b];
        if (hi <= lo)
            return ba_fail(err, BA_ERR_USAGE, "band %d (%ld:%ld) is empty", b, lo, hi);
        if (lo < next)
            return ba_fail(err, BA_ERR_USAGE, "band %d (%ld:%ld) overlaps band %d (ends at %ld); "
                           "bands are disjoint column ranges in increasing order", b, lo, hi,
                           b - 1, next);
        if (lo > next)
            return ba_fail(err, BA_ERR_USAGE, "columns %ld:%ld of X are in no band; the bands "
                           "must cover all %ld columns", next, lo, p);
        if (hi > p)
            return ba_fail(err, BA_ERR_USAGE, "band %d (%ld:%ld) is out of range: X has %ld "
                           "columns", b, lo, hi, p);
        next = hi;
    }
    if (next != p)
        return ba_fail(err, BA_ERR_USAGE, "columns %ld:%ld of X are in no band; the bands "
                       "must cover all %ld columns", next, p, p);
    if (bo->n_candidates < 1 || !bo->candidates)
        return ba_fail(err, BA_ERR_USAGE, "banded ridge needs at least one candidate");
    for (int c = 0; c < bo->n_candidates; c++)
        for (int b = 0; b < bo->n_bands; b++) {
            double a = bo->candidates[(size_t)c * bo->n_bands + b];
            if (!(a > 0) || !isfinite(a))
                return ba_fail(err, BA_ERR_USAGE, "candidate %d: the penalty %g of band %d "
                               "must be positive and finite", c, a, b);
        }
    return BA_OK;
}

ba_status ba_ridge_cv_banded(const ba_ridge_layout *L, const ba_ridge_data *D,
                             const ba_ridge_options *opt, const ba_banded_options *bo,
                             ba_ridge_result *res, ba_banded_result *out, ba_error *err)
{
    memset(out, 0, sizeof *out);
    memset(res, 0, sizeof *res);
    BA_CHECK(check_bands(bo, D->p, err));
    /* The driver's alpha grid is the candidate numbers 1 .. C. */
    double *numbers = ba_malloc((size_t)bo->n_candidates * sizeof(double), "candidates", err);
    BA_CHECK(ba_mpi_agree(L->world, numbers ? BA_OK : BA_ERR_NOMEM, err));
    for (int c = 0; c < bo->n_candidates; c++) numbers[c] = c + 1;
    ba_ridge_options o = *opt;
    o.alphas = numbers;
    o.n_alphas = bo->n_candidates;
    banded_solver s;
    memset(&s, 0, sizeof s);
    s.bo = bo;
    s.out = out;
    s.column_comm = MPI_COMM_NULL;
    ba_ridge_solver solver = {&banded_ops, &s};
    ba_status rc = ba_ridge_cv_run(L, D, &o, &solver, res, err);
    free(numbers);
    if (rc != BA_OK) ba_banded_result_free(out);
    return rc;
}
