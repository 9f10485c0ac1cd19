/* ridge_reference.c — the plain reference of the dense solver (solver_dense.c), for tests.
 *
 * Deliberately a different algorithm from the fast path: for every alpha
 * it forms G = (K + alpha I)^-1 with K = X_tr X_trᵀ by a Cholesky
 * factorisation written out here, and takes the leave-one-out residuals
 * as c_i / G_ii with c = G y (the textbook identity), in double precision,
 * with plain loops and no BLAS, ScaLAPACK or eigendecomposition. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/ridge/folds.h"
#include "brainalign/ridge/ridge.h"

/* In-place Cholesky a = L Lᵀ (lower triangle), a is n x n row-major. */
static int cholesky(double *a, long n)
{
    for (long j = 0; j < n; j++) {
        double d = a[j * n + j];
        for (long k = 0; k < j; k++) d -= a[j * n + k] * a[j * n + k];
        if (d <= 0) return -1;
        d = sqrt(d);
        a[j * n + j] = d;
        for (long i = j + 1; i < n; i++) {
            double s = a[i * n + j];
            for (long k = 0; k < j; k++) s -= a[i * n + k] * a[j * n + k];
            a[i * n + j] = s / d;
        }
    }
    return 0;
}

/* Solve L Lᵀ x = b in place. */
static void cholesky_solve(const double *l, long n, double *b)
{
    for (long i = 0; i < n; i++) {
        double s = b[i];
        for (long k = 0; k < i; k++) s -= l[i * n + k] * b[k];
        b[i] = s / l[i * n + i];
    }
    for (long i = n - 1; i >= 0; i--) {
        double s = b[i];
        for (long k = i + 1; k < n; k++) s -= l[k * n + i] * b[k];
        b[i] = s / l[i * n + i];
    }
}

static double pearson(const double *a, const double *b, long n)
{
    double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
    for (long i = 0; i < n; i++) { ma += a[i]; mb += b[i]; }
    ma /= n;
    mb /= n;
    for (long i = 0; i < n; i++) {
        sab += (a[i] - ma) * (b[i] - mb);
        saa += (a[i] - ma) * (a[i] - ma);
        sbb += (b[i] - mb) * (b[i] - mb);
    }
    return (saa > 0 && sbb > 0) ? sab / sqrt(saa * sbb) : 0.0;
}

ba_status ba_ridge_cv_reference(long n, long p, const float *x, long v, const float *y,
                                const ba_ridge_options *opt, float *r_folds,
                                float *alpha_out, ba_error *err)
{
    int K = opt->n_folds;
    long bounds_store[K + 1];
    const long *bounds = opt->fold_bounds;
    if (!bounds) {
        BA_CHECK(ba_kfold_bounds(n, K, bounds_store, err));
        bounds = bounds_store;
    }
    ba_status rc = BA_OK;
    double *xs = NULL, *k_tr = NULL, *g = NULL, *col = NULL, *c = NULL, *best_c = NULL;
    double *best_loss = NULL, *yc = NULL, *gdiag = NULL, *pred = NULL, *ytest = NULL;
    long *train = NULL;
    BA_ALLOC(xs, (size_t)n * p, "reference X", done);
    BA_ALLOC(k_tr, (size_t)n * n, "reference K", done);
    BA_ALLOC(g, (size_t)n * n, "reference G", done);
    BA_ALLOC(col, (size_t)n, "reference", done);
    BA_ALLOC(c, (size_t)n * v, "reference c", done);
    BA_ALLOC(best_c, (size_t)n * v, "reference c", done);
    BA_ALLOC(best_loss, (size_t)v, "reference", done);
    BA_ALLOC(yc, (size_t)n * v, "reference Y", done);
    BA_ALLOC(gdiag, (size_t)n, "reference", done);
    BA_ALLOC(pred, (size_t)n, "reference", done);
    BA_ALLOC(ytest, (size_t)n, "reference", done);
    BA_ALLOC(train, (size_t)n, "reference", done);

    for (int f = 0; f < K; f++) {
        long tb = bounds[f], te = bounds[f + 1], ntr = 0, nte = te - tb;
        for (long i = 0; i < n; i++)
            if (i < tb || i >= te) train[ntr++] = i;
        /* Standardise X with the training mean and std (ddof 0). */
        for (long j = 0; j < p; j++) {
            double mean = 0, var = 0;
            for (long t = 0; t < ntr; t++) mean += x[train[t] * p + j];
            mean /= ntr;
            for (long t = 0; t < ntr; t++) {
                double d = x[train[t] * p + j] - mean;
                var += d * d;
            }
            double sd = sqrt(var / ntr);
            if (sd < 10 * DBL_EPSILON) sd = 1;
            for (long i = 0; i < n; i++) xs[i * p + j] = (x[i * p + j] - mean) / sd;
        }
        /* Centre Y with the training mean. */
        for (long j = 0; j < v; j++) {
            double mean = 0;
            for (long t = 0; t < ntr; t++) mean += y[train[t] * v + j];
            mean /= ntr;
            for (long i = 0; i < n; i++) yc[i * v + j] = y[i * v + j] - mean;
            best_loss[j] = INFINITY;
        }
        for (long a = 0; a < ntr; a++)
            for (long b = 0; b < ntr; b++) {
                double s = 0;
                for (long j = 0; j < p; j++) s += xs[train[a] * p + j] * xs[train[b] * p + j];
                k_tr[a * ntr + b] = s;
            }
        for (int ai = 0; ai < opt->n_alphas; ai++) {
            double alpha = opt->alphas[ai];
            memcpy(g, k_tr, (size_t)ntr * ntr * sizeof *g);
            for (long a = 0; a < ntr; a++) g[a * ntr + a] += alpha;
            if (cholesky(g, ntr) != 0) {
                rc = ba_fail(err, BA_ERR_NUMERIC, "reference: K + alpha I not positive definite");
                goto done;
            }
            for (long a = 0; a < ntr; a++) {   /* diagonal of the inverse */
                memset(col, 0, (size_t)ntr * sizeof *col);
                col[a] = 1;
                cholesky_solve(g, ntr, col);
                gdiag[a] = col[a];
            }
            for (long j = 0; j < v; j++) {
                for (long t = 0; t < ntr; t++) col[t] = yc[train[t] * v + j];
                cholesky_solve(g, ntr, col);
                double loss = 0;
                for (long t = 0; t < ntr; t++) loss += (col[t] / gdiag[t]) * (col[t] / gdiag[t]);
                if (loss < best_loss[j]) {
                    best_loss[j] = loss;
                    alpha_out[(size_t)f * v + j] = (float)alpha;
                    for (long t = 0; t < ntr; t++) best_c[t * v + j] = col[t];
                }
            }
        }
        /* Predict the test fold: ŷ = X_te X_trᵀ c. */
        for (long j = 0; j < v; j++) {
            for (long i = 0; i < nte; i++) {
                double s = 0;
                for (long t = 0; t < ntr; t++) {
                    double kij = 0;
                    for (long q = 0; q < p; q++) kij += xs[(tb + i) * p + q] * xs[train[t] * p + q];
                    s += kij * best_c[t * v + j];
                }
                pred[i] = s;
                ytest[i] = y[(tb + i) * v + j];
            }
            r_folds[(size_t)f * v + j] = (float)pearson(pred, ytest, nte);
        }
    }
done:
    free(xs); free(k_tr); free(g); free(col); free(c); free(best_c); free(best_loss);
    free(yc); free(gdiag); free(pred); free(ytest); free(train);
    return rc;
}
