/* solver_krylov.c — the Krylov solver of the ridge CV driver (solver.h):
 * the ridge systems solved by PETSc KSP (see ridge_petsc.h for the
 * formulas, the layout and the options); its entry points are
 * ba_ridge_cv_petsc and ba_ridge_cv_petsc_stats.
 *
 * Vocabulary. B is big x small: X_tr (primal) or X_trᵀ (dual). Each rank
 * of a fold group owns rows [big0, big0 + big_loc) of B and rows [small0,
 * small0 + small_loc) of every block of unknowns; a block of unknowns is
 * stored row-major [small_loc][nb], so a PETSc vector of a block has local
 * size small_loc * nb and the ranks' pieces concatenate to [small][nb].
 * The normal operator N = BᵀB + αI acts column by column on a block. */
#include "brainalign/ridge/ridge_petsc.h"

#include <petscksp.h>

#include <cblas.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brainalign/core/rng.h"
#include "brainalign/parallel/parallel.h"
#include "solver.h"

/* ------------------------------------------------- PETSc errors -> ba_status */

/* The first message of a failing PETSc call, captured by an error handler
 * pushed for the duration of one ba_ridge_cv_petsc call (so PETSc prints no
 * traceback and we can put its words in our message). */
typedef struct {
    char message[400];
    char function[64];
} petsc_capture;

static PetscErrorCode capture_error(MPI_Comm comm, int line, const char *function,
                                    const char *file, PetscErrorCode code, PetscErrorType type,
                                    const char *message, void *ctx)
{
    (void)comm; (void)line; (void)file;
    petsc_capture *cap = ctx;
    if (type == PETSC_ERROR_INITIAL && !cap->message[0]) {
        snprintf(cap->message, sizeof cap->message, "%s", message ? message : "");
        snprintf(cap->function, sizeof cap->function, "%s", function ? function : "?");
    }
    return code;
}

static ba_status petsc_status(petsc_capture *cap, PetscErrorCode code, const char *call,
                              ba_error *err)
{
    if (code == 0) return BA_OK;
    ba_status status = BA_ERR_NUMERIC;
    if (code == PETSC_ERR_MEM) status = BA_ERR_NOMEM;
    else if (code == PETSC_ERR_MPI) status = BA_ERR_MPI;
    else if (code == PETSC_ERR_ARG_UNKNOWN_TYPE || code == PETSC_ERR_ARG_WRONG ||
             code == PETSC_ERR_ARG_OUTOFRANGE || code == PETSC_ERR_ARG_INCOMP ||
             code == PETSC_ERR_USER_INPUT || code == PETSC_ERR_SUP)
        status = BA_ERR_USAGE;
    const char *generic = NULL;
    PetscErrorMessage(code, &generic, NULL);
    ba_fail(err, status, "PETSc: %s%s%s (error %d in %s, from %s)",
            cap->message[0] ? cap->message : "", cap->message[0] && generic ? " — " : "",
            generic ? generic : "", (int)code, cap->function[0] ? cap->function : "?", call);
    cap->message[0] = cap->function[0] = '\0';
    return status;
}

/* A PETSc call inside a ba_status function: on failure jump to `label` with
 * rc set and the PETSc message in err. */
#define BA_PETSC_TRY(cap, call, label) BA_TRY(petsc_status((cap), (call), #call, err), label)

ba_status ba_petsc_initialize(int argc, char **argv, ba_error *err)
{
    PetscBool done = PETSC_FALSE;
    PetscInitialized(&done);
    if (done) return ba_fail(err, BA_ERR_USAGE, "PETSc is already initialised");
    int mpi_ready = 0;
    MPI_Initialized(&mpi_ready);
    if (!mpi_ready) return ba_fail(err, BA_ERR_USAGE, "MPI must be initialised before PETSc");
    PETSC_COMM_WORLD = MPI_COMM_WORLD;
    PetscErrorCode code = PetscInitialize(&argc, &argv, NULL, NULL);
    if (code != 0)
        return ba_fail(err, BA_ERR_USAGE, "PETSc failed to initialise (error %d) with the "
                       "options given", (int)code);
    return BA_OK;
}

ba_status ba_petsc_finalize(ba_error *err)
{
    PetscBool up = PETSC_FALSE, down = PETSC_FALSE;
    PetscInitialized(&up);
    PetscFinalized(&down);
    if (!up || down) return BA_OK;
    if (PetscFinalize() != 0) return ba_fail(err, BA_ERR_INTERNAL, "PetscFinalize failed");
    return BA_OK;
}

/* ------------------------------------------------------------ the operator */

typedef struct {
    MPI_Comm comm;
    int size, rank;
    bool dual;
    long n_train, n_test, p;
    long test_begin;
    long big, small, big0, big_loc, small0, small_loc;
    long test0, test_loc;  /* primal: my test rows */
    int nb;
    int active;            /* columns of the current block in use (the rest are 0) */
    double *b_loc;         /* [big_loc][small] my rows of B */
    double *test_x;        /* primal [test_loc][p]; dual [big_loc][n_test] (X_teᵀ) */
    double *col_sq;        /* [small] diagonal of BᵀB */
    int *counts, *displs;  /* per rank: entries of a block of unknowns */
    double *full;          /* [small][nb] a gathered block */
    double *partial;       /* [small][nb] my part of Bᵀt */
    double *t;             /* [big_loc][nb] */
    double alpha;
    double flops;
} normal_op;

/* Zero the unused columns [active, nb) of a [rows][nb] block. */
static void zero_inactive(const normal_op *op, double *block, long rows)
{
    if (op->active >= op->nb) return;
    for (long r = 0; r < rows; r++)
        memset(block + r * op->nb + op->active, 0, sizeof(double) * (size_t)(op->nb - op->active));
}

/* t = B x: gather the block of unknowns, multiply by my rows of B (only the
 * active columns: a narrow last block costs what it holds). */
static int apply_b(normal_op *op, const double *x_loc, double *t)
{
    int rc = MPI_Allgatherv(x_loc, op->counts[op->rank], MPI_DOUBLE, op->full, op->counts,
                            op->displs, MPI_DOUBLE, op->comm);
    if (rc != MPI_SUCCESS) return rc;
    if (op->big_loc > 0)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)op->big_loc, op->active,
                    (int)op->small, 1.0, op->b_loc, (int)op->small, op->full, op->nb, 0.0, t,
                    op->nb);
    zero_inactive(op, t, op->big_loc);
    op->flops += 2.0 * (double)op->big_loc * (double)op->small * op->active;
    return MPI_SUCCESS;
}

/* y = Bᵀ t: my rows' contribution, summed and scattered to the owners. */
static int apply_bt(normal_op *op, const double *t, double *y_loc)
{
    if (op->big_loc > 0)
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)op->small, op->active,
                    (int)op->big_loc, 1.0, op->b_loc, (int)op->small, t, op->nb, 0.0,
                    op->partial, op->nb);
    else
        memset(op->partial, 0, sizeof(double) * (size_t)op->small * (size_t)op->nb);
    zero_inactive(op, op->partial, op->small);
    op->flops += 2.0 * (double)op->big_loc * (double)op->small * op->active;
    return MPI_Reduce_scatter(op->partial, y_loc, op->counts, MPI_DOUBLE, MPI_SUM, op->comm);
}

/* y = (BᵀB + αI) x */
static int apply_normal(normal_op *op, const double *x_loc, double *y_loc)
{
    int rc = apply_b(op, x_loc, op->t);
    if (rc == MPI_SUCCESS) rc = apply_bt(op, op->t, y_loc);
    long m = op->small_loc * op->nb;
    for (long i = 0; rc == MPI_SUCCESS && i < m; i++) y_loc[i] += op->alpha * x_loc[i];
    return rc;
}

static PetscErrorCode shell_normal_mult(Mat A, Vec x, Vec y)
{
    normal_op *op = NULL;
    const PetscScalar *xa = NULL;
    PetscScalar *ya = NULL;
    PetscFunctionBeginUser;
    PetscCall(MatShellGetContext(A, &op));
    PetscCall(VecGetArrayRead(x, &xa));
    PetscCall(VecGetArray(y, &ya));
    double before = op->flops;
    int rc = apply_normal(op, xa, ya);
    PetscCall(VecRestoreArray(y, &ya));
    PetscCall(VecRestoreArrayRead(x, &xa));
    PetscCheck(rc == MPI_SUCCESS, PETSC_COMM_SELF, PETSC_ERR_MPI, "MPI failed in the ridge operator");
    PetscCall(PetscLogFlops(op->flops - before));
    PetscFunctionReturn(0);
}

static PetscErrorCode shell_normal_diagonal(Mat A, Vec d)
{
    normal_op *op = NULL;
    PetscScalar *da = NULL;
    PetscFunctionBeginUser;
    PetscCall(MatShellGetContext(A, &op));
    PetscCall(VecGetArray(d, &da));
    for (long k = 0; k < op->small_loc; k++)
        for (int j = 0; j < op->nb; j++)
            da[k * op->nb + j] = op->col_sq[op->small0 + k] + op->alpha;
    PetscCall(VecRestoreArray(d, &da));
    PetscFunctionReturn(0);
}

/* The stacked operator [B; √α I] of the least-squares form: its local rows
 * are my rows of B x nb, then my rows of the unknowns x nb. */
static PetscErrorCode shell_stacked_mult(Mat A, Vec x, Vec y)
{
    normal_op *op = NULL;
    const PetscScalar *xa = NULL;
    PetscScalar *ya = NULL;
    PetscFunctionBeginUser;
    PetscCall(MatShellGetContext(A, &op));
    PetscCall(VecGetArrayRead(x, &xa));
    PetscCall(VecGetArray(y, &ya));
    double before = op->flops, root = sqrt(op->alpha);
    int rc = apply_b(op, xa, ya);
    long top = op->big_loc * op->nb, m = op->small_loc * op->nb;
    for (long i = 0; i < m; i++) ya[top + i] = root * xa[i];
    PetscCall(VecRestoreArray(y, &ya));
    PetscCall(VecRestoreArrayRead(x, &xa));
    PetscCheck(rc == MPI_SUCCESS, PETSC_COMM_SELF, PETSC_ERR_MPI, "MPI failed in the ridge operator");
    PetscCall(PetscLogFlops(op->flops - before));
    PetscFunctionReturn(0);
}

static PetscErrorCode shell_stacked_mult_transpose(Mat A, Vec y, Vec x)
{
    normal_op *op = NULL;
    const PetscScalar *ya = NULL;
    PetscScalar *xa = NULL;
    PetscFunctionBeginUser;
    PetscCall(MatShellGetContext(A, &op));
    PetscCall(VecGetArrayRead(y, &ya));
    PetscCall(VecGetArray(x, &xa));
    double before = op->flops, root = sqrt(op->alpha);
    int rc = apply_bt(op, ya, xa);
    long top = op->big_loc * op->nb, m = op->small_loc * op->nb;
    for (long i = 0; i < m; i++) xa[i] += root * ya[top + i];
    PetscCall(VecRestoreArray(x, &xa));
    PetscCall(VecRestoreArrayRead(y, &ya));
    PetscCheck(rc == MPI_SUCCESS, PETSC_COMM_SELF, PETSC_ERR_MPI, "MPI failed in the ridge operator");
    PetscCall(PetscLogFlops(op->flops - before));
    PetscFunctionReturn(0);
}

/* --------------------------------------------------------------- the run */

typedef struct {
    const ba_ridge_layout *L;
    const ba_ridge_data *D;
    const ba_ridge_options *opt;
    petsc_capture cap;
    int nb;
    bool exact_hat, gcv, warm_start, options_checked;
    int probes;
    int *order;                /* alpha indices, largest alpha first */
    ba_ridge_petsc_stats stats;
    double flops_hat, flops_voxel;
} run_ctx;

/* One fold's solver: the operator, the KSP, and one block of right-hand
 * sides with its solution. */
typedef struct {
    normal_op op;
    Mat normal, stacked;
    KSP ksp;
    Vec x, rhs;
    bool least_squares;  /* lsqr/cgls: KSP sees [B; √α I] */
    bool rhs_in_b_rows;  /* b = Bᵀt (t stored) rather than b = u */
    double *t;           /* [big_loc][nb] */
    double *b;           /* [small_loc][nb] normal right-hand side */
    double *sol;         /* [small_loc][nb] solution (true scale) */
    double *nsol;        /* [small_loc][nb] N(α) sol */
    double *best;        /* [small_loc][nb] */
    double *bx;          /* [big_loc][nb] B sol: op.t, free between operator calls */
    double *bnorm, *tnorm, *scale, *num, *den, *resid; /* [nb] each */
    double *reduce;      /* [2 nb] */
} fold_solver;

static void solver_free(fold_solver *S)
{
    if (S->ksp) KSPDestroy(&S->ksp);
    if (S->normal) MatDestroy(&S->normal);
    if (S->stacked) MatDestroy(&S->stacked);
    if (S->x) VecDestroy(&S->x);
    if (S->rhs) VecDestroy(&S->rhs);
    normal_op *op = &S->op;
    free(op->b_loc); free(op->test_x); free(op->col_sq); free(op->counts); free(op->displs);
    free(op->full); free(op->partial); free(op->t);
    free(S->t); free(S->b); free(S->sol); free(S->nsol); free(S->best);
    free(S->bnorm); free(S->tnorm); free(S->scale); free(S->num); free(S->den);
    free(S->resid); free(S->reduce);
    memset(S, 0, sizeof *S);
}

/* Column sums over the group: out[j] = Σ_rows a[r][j] * b[r][j]. */
static ba_status column_dots(const normal_op *op, const double *a, const double *b,
                             long rows, double *out, ba_error *err)
{
    for (int j = 0; j < op->nb; j++) out[j] = 0;
    for (long r = 0; r < rows; r++)
        for (int j = 0; j < op->nb; j++) out[j] += a[r * op->nb + j] * b[r * op->nb + j];
    return ba_mpi_check(MPI_Allreduce(MPI_IN_PLACE, out, op->nb, MPI_DOUBLE, MPI_SUM, op->comm),
                        "column sums", err);
}

/* ------------------------------------------------------------ geometry, X */

static ba_status read_checked(const ba_ridge_data *D, long row0, long count, float *rows,
                              ba_error *err)
{
    BA_CHECK(D->read_x(D->x_ctx, row0, count, rows, err));
    for (long r = 0; r < count; r++)
        for (long j = 0; j < D->p; j++) {
            float value = rows[r * D->p + j];
            if (!isfinite(value))
                return ba_fail_about(err, BA_ABOUT_X, BA_ERR_VALUE, "X: sample %ld, feature %ld is %s", row0 + r,
                               j, isnan(value) ? "NaN" : "infinite");
        }
    return BA_OK;
}

#define READ_CHUNK 64

/* Primal: my training rows into b_loc [big_loc][p], my test rows into
 * test_x [test_loc][p]. */
static ba_status load_rows(const ba_ridge_data *D, const ba_fold_rows *f, normal_op *op,
                           float *chunk, ba_error *err)
{
    long p = D->p;
    for (long r = 0; r < op->big_loc;) {
        long g = op->big0 + r, o = ba_fold_original_row(f, g);
        long run = ba_fold_run_end(f, g) - g;
        if (run > op->big_loc - r) run = op->big_loc - r;
        if (run > READ_CHUNK) run = READ_CHUNK;
        BA_CHECK(read_checked(D, o, run, chunk, err));
        for (long i = 0; i < run * p; i++) op->b_loc[r * p + i] = chunk[i];
        r += run;
    }
    for (long k = 0; k < op->test_loc;) {
        long run = op->test_loc - k < READ_CHUNK ? op->test_loc - k : READ_CHUNK;
        BA_CHECK(read_checked(D, f->test_begin + op->test0 + k, run, chunk, err));
        for (long i = 0; i < run * p; i++) op->test_x[k * p + i] = chunk[i];
        k += run;
    }
    return BA_OK;
}

/* Dual: every row, keeping my features: b_loc [p_loc][n_train] = X_trᵀ,
 * test_x [p_loc][n_test] = X_teᵀ. */
static ba_status load_features(const ba_ridge_data *D, const ba_fold_rows *f, normal_op *op,
                               float *chunk, ba_error *err)
{
    for (long i0 = 0; i0 < D->n; i0 += READ_CHUNK) {
        long run = D->n - i0 < READ_CHUNK ? D->n - i0 : READ_CHUNK;
        BA_CHECK(read_checked(D, i0, run, chunk, err));
        for (long r = 0; r < run; r++) {
            long i = i0 + r;
            bool test = i >= f->test_begin && i < f->test_end;
            if (!test && i >= f->gap_begin && i < f->gap_end) continue; /* the fold gap */
            long col = test ? i - f->test_begin
                            : (i < f->gap_begin ? i : i - (f->gap_end - f->gap_begin));
            const float *row = chunk + r * D->p + op->big0;
            for (long q = 0; q < op->big_loc; q++) {
                if (test) op->test_x[q * f->n_test + col] = row[q];
                else op->b_loc[q * f->n_train + col] = row[q];
            }
        }
    }
    return BA_OK;
}

/* StandardScaler with training statistics (ddof 0, a zero std becomes 1),
 * as solver_dense.c. Primal: columns of b_loc/test_x, sums over the group; dual:
 * rows of b_loc/test_x, all local. */
static ba_status standardise(normal_op *op, ba_error *err)
{
    ba_status rc = BA_OK;
    long p = op->p, ntr = op->n_train, nte = op->n_test;
    if (op->dual) {
        for (long q = 0; q < op->big_loc; q++) {
            double *tr = op->b_loc + q * ntr, *te = op->test_x + q * nte, mean = 0, ss = 0;
            for (long i = 0; i < ntr; i++) mean += tr[i];
            mean /= (double)ntr;
            for (long i = 0; i < ntr; i++) { tr[i] -= mean; ss += tr[i] * tr[i]; }
            for (long i = 0; i < nte; i++) te[i] -= mean;
            double sd = sqrt(ss / (double)ntr);
            if (sd < 10 * DBL_EPSILON) sd = 1.0;
            for (long i = 0; i < ntr; i++) tr[i] /= sd;
            for (long i = 0; i < nte; i++) te[i] /= sd;
        }
        return BA_OK;
    }
    /* Allocated and agreed on before the first collective. */
    double *sum = ba_calloc((size_t)p, sizeof *sum, "feature statistics", err);
    BA_TRY(ba_mpi_agree(op->comm, sum ? BA_OK : BA_ERR_NOMEM, err), done);
    for (int pass = 0; pass < 2; pass++) {
        memset(sum, 0, sizeof(double) * (size_t)p);
        for (long r = 0; r < op->big_loc; r++)
            for (long j = 0; j < p; j++) {
                double d = op->b_loc[r * p + j];
                sum[j] += pass == 0 ? d : d * d;
            }
        BA_TRY(ba_mpi_check(MPI_Allreduce(MPI_IN_PLACE, sum, (int)p, MPI_DOUBLE, MPI_SUM,
                                          op->comm), "feature statistics", err), done);
        for (long j = 0; j < p; j++) {
            double v = pass == 0 ? sum[j] / (double)ntr : sqrt(sum[j] / (double)ntr);
            if (pass == 1 && v < 10 * DBL_EPSILON) v = 1.0;
            sum[j] = v;
        }
        for (long r = 0; r < op->big_loc; r++)
            for (long j = 0; j < p; j++)
                op->b_loc[r * p + j] = pass == 0 ? op->b_loc[r * p + j] - sum[j]
                                                 : op->b_loc[r * p + j] / sum[j];
        for (long r = 0; r < op->test_loc; r++)
            for (long j = 0; j < p; j++)
                op->test_x[r * p + j] = pass == 0 ? op->test_x[r * p + j] - sum[j]
                                                  : op->test_x[r * p + j] / sum[j];
    }
done:
    free(sum);
    return rc;
}

/* The diagonal of BᵀB (for -pc_type jacobi). */
static ba_status column_squares(normal_op *op, ba_error *err)
{
    memset(op->col_sq, 0, sizeof(double) * (size_t)op->small);
    for (long r = 0; r < op->big_loc; r++)
        for (long k = 0; k < op->small; k++) {
            double v = op->b_loc[r * op->small + k];
            op->col_sq[k] += v * v;
        }
    return ba_mpi_check(MPI_Allreduce(MPI_IN_PLACE, op->col_sq, (int)op->small, MPI_DOUBLE,
                                      MPI_SUM, op->comm), "diagonal of the normal operator", err);
}

/* Shapes, ownership and buffers of one fold's operator; X read and
 * standardised. Collective over the group (fails on every rank alike). */
static ba_status operator_setup(run_ctx *R, const ba_fold_rows *f, normal_op *op, ba_error *err)
{
    const ba_ridge_layout *L = R->L;
    const ba_ridge_data *D = R->D;
    ba_status rc = BA_OK;
    float *chunk = NULL;
    memset(op, 0, sizeof *op);
    op->comm = L->group;
    op->size = L->group_size;
    op->rank = L->group_rank;
    op->dual = f->n_train <= D->p; /* scikit-learn's and solver_dense.c's choice */
    op->n_train = f->n_train;
    op->n_test = f->n_test;
    op->test_begin = f->test_begin;
    op->p = D->p;
    op->big = op->dual ? D->p : f->n_train;
    op->small = op->dual ? f->n_train : D->p;
    op->nb = op->active = R->nb;
    ba_split_range(op->big, op->size, op->rank, &op->big0, &op->big_loc);
    op->big_loc -= op->big0;
    ba_split_range(op->small, op->size, op->rank, &op->small0, &op->small_loc);
    op->small_loc -= op->small0;
    if (!op->dual) {
        ba_split_range(f->n_test, op->size, op->rank, &op->test0, &op->test_loc);
        op->test_loc -= op->test0;
    }
    if ((double)op->small * op->nb > INT_MAX || (double)op->big_loc * op->nb > INT_MAX / 2)
        rc = ba_fail(err, BA_ERR_SHAPE, "a block of %d right-hand sides of %ld unknowns is too "
                     "large for PETSc's 32-bit indices; lower --voxel-block", op->nb, op->small);
    size_t nb = (size_t)op->nb;
    if (rc == BA_OK) {
        op->b_loc = ba_calloc((size_t)op->big_loc * (size_t)op->small + 1, sizeof(double),
                              "rows of X (PETSc ridge)", err);
        op->test_x = ba_calloc((op->dual ? (size_t)op->big_loc * (size_t)f->n_test
                                         : (size_t)op->test_loc * (size_t)D->p) + 1,
                               sizeof(double), "test rows of X (PETSc ridge)", err);
        op->col_sq = ba_calloc((size_t)op->small, sizeof(double), "operator diagonal", err);
        op->counts = ba_calloc((size_t)op->size, sizeof(int), "block layout", err);
        op->displs = ba_calloc((size_t)op->size, sizeof(int), "block layout", err);
        op->full = ba_calloc((size_t)op->small * nb, sizeof(double), "block of unknowns", err);
        op->partial = ba_calloc((size_t)op->small * nb, sizeof(double), "block of unknowns", err);
        op->t = ba_calloc((size_t)op->big_loc * nb + 1, sizeof(double), "block of products", err);
        chunk = ba_calloc((size_t)READ_CHUNK * (size_t)D->p, sizeof(float), "rows of X", err);
        if (!op->b_loc || !op->test_x || !op->col_sq || !op->counts || !op->displs ||
            !op->full || !op->partial || !op->t || !chunk)
            rc = BA_ERR_NOMEM;
    }
    for (int q = 0; rc == BA_OK && q < op->size; q++) {
        long b0, b1;
        ba_split_range(op->small, op->size, q, &b0, &b1);
        op->counts[q] = (int)((b1 - b0) * op->nb);
        op->displs[q] = (int)(b0 * op->nb);
    }
    if (rc == BA_OK) rc = op->dual ? load_features(D, f, op, chunk, err) : load_rows(D, f, op, chunk, err);
    free(chunk);
    BA_CHECK(ba_mpi_agree(op->comm, rc, err));
    BA_CHECK(standardise(op, err));
    return column_squares(op, err);
}

/* ------------------------------------------------------------- the KSP */

static ba_status solver_create(run_ctx *R, fold_solver *S, ba_error *err)
{
    ba_status rc = BA_OK;
    normal_op *op = &S->op;
    size_t nb = (size_t)op->nb, sl = (size_t)op->small_loc * nb + 1, bl = (size_t)op->big_loc * nb + 1;
    /* Blocks in B's rows (big x nb) are the large ones when p is large:
     * t only for the primal form, B·x reuses the operator's buffer. */
    S->t = ba_calloc(op->dual ? 1 : bl, sizeof(double), "right-hand sides", err);
    S->bx = op->t;
    S->b = ba_calloc(sl, sizeof(double), "right-hand sides", err);
    S->sol = ba_calloc(sl, sizeof(double), "solutions", err);
    S->nsol = ba_calloc(sl, sizeof(double), "solutions", err);
    S->best = ba_calloc(sl, sizeof(double), "solutions", err);
    S->bnorm = ba_calloc(nb, sizeof(double), "column norms", err);
    S->tnorm = ba_calloc(nb, sizeof(double), "column norms", err);
    S->scale = ba_calloc(nb, sizeof(double), "column norms", err);
    S->num = ba_calloc(nb, sizeof(double), "column norms", err);
    S->den = ba_calloc(nb, sizeof(double), "column norms", err);
    S->resid = ba_calloc(nb, sizeof(double), "column norms", err);
    S->reduce = ba_calloc(2 * nb, sizeof(double), "column norms", err);
    if (!S->t || !S->bx || !S->b || !S->sol || !S->nsol || !S->best || !S->bnorm ||
        !S->tnorm || !S->scale || !S->num || !S->den || !S->resid || !S->reduce)
        rc = BA_ERR_NOMEM;
    BA_CHECK(ba_mpi_agree(op->comm, rc, err));

    petsc_capture *cap = &R->cap;
    PetscInt nloc = (PetscInt)(op->small_loc * op->nb);
    PetscInt mloc = (PetscInt)(op->big_loc * op->nb) + nloc;
    PC pc = NULL;
    KSPType type = NULL;
    BA_PETSC_TRY(cap, MatCreateShell(op->comm, nloc, nloc, PETSC_DETERMINE, PETSC_DETERMINE, op,
                                     &S->normal), done);
    BA_PETSC_TRY(cap, MatShellSetOperation(S->normal, MATOP_MULT, (void (*)(void))shell_normal_mult), done);
    BA_PETSC_TRY(cap, MatShellSetOperation(S->normal, MATOP_MULT_TRANSPOSE,
                                           (void (*)(void))shell_normal_mult), done);
    BA_PETSC_TRY(cap, MatShellSetOperation(S->normal, MATOP_GET_DIAGONAL,
                                           (void (*)(void))shell_normal_diagonal), done);
    BA_PETSC_TRY(cap, MatSetOption(S->normal, MAT_SYMMETRIC, PETSC_TRUE), done);
    BA_PETSC_TRY(cap, MatSetOption(S->normal, MAT_SPD, PETSC_TRUE), done);
    BA_PETSC_TRY(cap, KSPCreate(op->comm, &S->ksp), done);
    BA_PETSC_TRY(cap, KSPSetType(S->ksp, KSPCG), done);
    BA_PETSC_TRY(cap, KSPGetPC(S->ksp, &pc), done);
    BA_PETSC_TRY(cap, PCSetType(pc, PCNONE), done);
    BA_PETSC_TRY(cap, KSPSetTolerances(S->ksp, 1e-8, PETSC_DEFAULT, PETSC_DEFAULT, PETSC_DEFAULT), done);
    BA_PETSC_TRY(cap, KSPSetFromOptions(S->ksp), done);
    BA_PETSC_TRY(cap, KSPGetType(S->ksp, &type), done);
    S->least_squares = strcmp(type, KSPLSQR) == 0 || strcmp(type, KSPCGLS) == 0;
    if (S->least_squares) {
        BA_PETSC_TRY(cap, MatCreateShell(op->comm, mloc, nloc, PETSC_DETERMINE, PETSC_DETERMINE,
                                         op, &S->stacked), done);
        BA_PETSC_TRY(cap, MatShellSetOperation(S->stacked, MATOP_MULT,
                                               (void (*)(void))shell_stacked_mult), done);
        BA_PETSC_TRY(cap, MatShellSetOperation(S->stacked, MATOP_MULT_TRANSPOSE,
                                               (void (*)(void))shell_stacked_mult_transpose), done);
        BA_PETSC_TRY(cap, KSPSetOperators(S->ksp, S->stacked, S->normal), done);
        BA_PETSC_TRY(cap, MatCreateVecs(S->stacked, &S->x, &S->rhs), done);
    } else {
        BA_PETSC_TRY(cap, KSPSetOperators(S->ksp, S->normal, S->normal), done);
        BA_PETSC_TRY(cap, MatCreateVecs(S->normal, &S->x, &S->rhs), done);
    }
    PetscReal rtol = 0;
    BA_PETSC_TRY(cap, KSPGetTolerances(S->ksp, &rtol, NULL, NULL, NULL), done);
    snprintf(R->stats.ksp_type, sizeof R->stats.ksp_type, "%s", type);
    R->stats.rtol = rtol;
done:
    return rc;
}

/* Options nobody read are most likely misspelt: say so instead of ignoring
 * them. Checked once, after the first solve (KSPSolve reads -ksp_view and
 * friends). */
static ba_status check_options_used(run_ctx *R, ba_error *err)
{
    if (R->options_checked) return BA_OK;
    R->options_checked = true;
    PetscInt count = 0;
    char **names = NULL, **values = NULL;
    ba_status rc = petsc_status(&R->cap, PetscOptionsLeftGet(NULL, &count, &names, &values),
                                "PetscOptionsLeftGet", err);
    if (rc != BA_OK) return rc;
    if (count > 0) {
        char list[600] = "";
        size_t len = 0;
        for (PetscInt i = 0; i < count && len < sizeof list; i++)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s-%s", i ? ", " : "", names[i]);
        rc = ba_fail(err, BA_ERR_USAGE, "PETSc option%s %s not used by the ridge solver (misspelt? "
                     "'-help' lists the options KSP reads)", count > 1 ? "s" : "", list);
    }
    PetscOptionsLeftRestore(NULL, &count, &names, &values);
    return rc;
}

typedef struct {
    int fold;
    bool voxels;  /* columns are voxels (else training samples) */
    long col0;    /* global index of column 0 */
    int width;    /* active columns */
} block_info;

/* Solve N(α) sol = b for the current block (b, t, bnorm, tnorm set), warm-
 * started from the previous alpha's solution when `warm`; afterwards nsol =
 * N(α) sol and resid holds every column's relative residual. */
static ba_status solve_block(run_ctx *R, fold_solver *S, const block_info *B, int a,
                             double previous_alpha, bool warm, ba_error *err)
{
    ba_status rc = BA_OK;
    normal_op *op = &S->op;
    petsc_capture *cap = &R->cap;
    int nb = op->nb;
    long m = op->small_loc * nb, top = op->big_loc * nb;
    double alpha = R->opt->alphas[a];
    op->alpha = alpha;
    /* A new state, so a preconditioner (-pc_type jacobi) sees the new α. */
    BA_PETSC_TRY(cap, MatAssemblyBegin(S->normal, MAT_FINAL_ASSEMBLY), done);
    BA_PETSC_TRY(cap, MatAssemblyEnd(S->normal, MAT_FINAL_ASSEMBLY), done);

    /* Warm start: x0 = γ sol, γ = solᵀb / solᵀN(α)sol per column. */
    if (warm) {
        for (long i = 0; i < m; i++) S->nsol[i] += (alpha - previous_alpha) * S->sol[i];
        for (int j = 0; j < nb; j++) S->reduce[j] = S->reduce[nb + j] = 0;
        for (long r = 0; r < op->small_loc; r++)
            for (int j = 0; j < nb; j++) {
                S->reduce[j] += S->sol[r * nb + j] * S->b[r * nb + j];
                S->reduce[nb + j] += S->sol[r * nb + j] * S->nsol[r * nb + j];
            }
        BA_TRY(ba_mpi_check(MPI_Allreduce(MPI_IN_PLACE, S->reduce, 2 * nb, MPI_DOUBLE, MPI_SUM,
                                          op->comm), "warm start", err), done);
        for (int j = 0; j < nb; j++)
            S->num[j] = S->reduce[nb + j] > 0 ? S->reduce[j] / S->reduce[nb + j] : 0.0;
    }
    /* Every column at unit norm (of what KSP sees as its right-hand side). */
    for (int j = 0; j < nb; j++) {
        double s = S->least_squares ? (S->rhs_in_b_rows ? S->tnorm[j] : S->bnorm[j] / sqrt(alpha))
                                    : S->bnorm[j];
        S->scale[j] = s > 0 ? s : 1.0;
    }
    PetscScalar *xa = NULL, *ra = NULL;
    BA_PETSC_TRY(cap, VecGetArray(S->rhs, &ra), done);
    if (!S->least_squares) {
        for (long i = 0; i < m; i++) ra[i] = S->b[i] / S->scale[i % nb];
    } else if (S->rhs_in_b_rows) {
        for (long i = 0; i < top; i++) ra[i] = S->t[i] / S->scale[i % nb];
        for (long i = 0; i < m; i++) ra[top + i] = 0;
    } else {
        for (long i = 0; i < top; i++) ra[i] = 0;
        for (long i = 0; i < m; i++) ra[top + i] = S->b[i] / (sqrt(alpha) * S->scale[i % nb]);
    }
    BA_PETSC_TRY(cap, VecRestoreArray(S->rhs, &ra), done);
    BA_PETSC_TRY(cap, VecGetArray(S->x, &xa), done);
    for (long i = 0; i < m; i++) xa[i] = warm ? S->num[i % nb] * S->sol[i] / S->scale[i % nb] : 0.0;
    BA_PETSC_TRY(cap, VecRestoreArray(S->x, &xa), done);

    BA_PETSC_TRY(cap, KSPSetInitialGuessNonzero(S->ksp, warm ? PETSC_TRUE : PETSC_FALSE), done);
    BA_PETSC_TRY(cap, KSPSolve(S->ksp, S->rhs, S->x), done);
    KSPConvergedReason reason = KSP_CONVERGED_ITERATING;
    PetscInt its = 0;
    BA_PETSC_TRY(cap, KSPGetConvergedReason(S->ksp, &reason), done);
    BA_PETSC_TRY(cap, KSPGetIterationNumber(S->ksp, &its), done);
    BA_TRY(check_options_used(R, err), done);

    const PetscScalar *xr = NULL;
    BA_PETSC_TRY(cap, VecGetArrayRead(S->x, &xr), done);
    for (long i = 0; i < m; i++) S->sol[i] = xr[i] * S->scale[i % nb];
    BA_PETSC_TRY(cap, VecRestoreArrayRead(S->x, &xr), done);

    /* The true residual of every column's normal equations. */
    BA_TRY(ba_mpi_check(apply_normal(op, S->sol, S->nsol), "the ridge operator", err), done);
    for (int j = 0; j < nb; j++) S->resid[j] = 0;
    for (long r = 0; r < op->small_loc; r++)
        for (int j = 0; j < nb; j++) {
            double d = S->b[r * nb + j] - S->nsol[r * nb + j];
            S->resid[j] += d * d;
        }
    BA_TRY(ba_mpi_check(MPI_Allreduce(MPI_IN_PLACE, S->resid, nb, MPI_DOUBLE, MPI_SUM, op->comm),
                        "residuals", err), done);
    int worst = 0;
    for (int j = 0; j < nb; j++) {
        S->resid[j] = S->bnorm[j] > 0 ? sqrt(S->resid[j]) / S->bnorm[j] : 0.0;
        if (S->resid[j] > S->resid[worst]) worst = j;
    }
    ba_ridge_petsc_stats *st = &R->stats;
    st->block_solves++;
    st->iterations += its;
    st->columns += B->width;
    if (S->resid[worst] > st->worst_residual || st->block_solves == 1) {
        st->worst_residual = S->resid[worst];
        st->worst_fold = B->fold;
        st->worst_alpha = alpha;
        st->worst_column = B->col0 + worst;
        st->worst_is_voxel = B->voxels;
    }
    /* A "converged" solution no better than zero (e.g. -ksp_type preonly)
     * is garbage, whatever the KSP says. */
    if (reason >= 0 && S->resid[worst] > 0.5)
        rc = ba_fail(err, BA_ERR_NUMERIC,
                     "PETSc KSP %s returned no solution (%s after %d iterations) in fold %d at "
                     "alpha %g: %s %ld has relative residual %.3g", st->ksp_type,
                     KSPConvergedReasons[reason], (int)its, B->fold, alpha,
                     B->voxels ? "voxel" : "training sample", B->col0 + worst, S->resid[worst]);
    if (reason < 0)
        rc = ba_fail(err, BA_ERR_NUMERIC,
                     "PETSc KSP %s did not converge (%s after %d iterations) in fold %d at "
                     "alpha %g: %s %ld (of %s %ld-%ld) has relative residual %.3g, rtol %g",
                     st->ksp_type, KSPConvergedReasons[reason], (int)its, B->fold, alpha,
                     B->voxels ? "voxel" : "training sample", B->col0 + worst,
                     B->voxels ? "voxels" : "the hat-diagonal samples", B->col0,
                     B->col0 + B->width - 1, S->resid[worst], st->rtol);
done:
    return rc;
}

/* b (and t, for the primal form) are set: their column norms. */
static ba_status block_norms(fold_solver *S, ba_error *err)
{
    normal_op *op = &S->op;
    BA_CHECK(column_dots(op, S->b, S->b, op->small_loc, S->bnorm, err));
    for (int j = 0; j < op->nb; j++) S->bnorm[j] = sqrt(S->bnorm[j]);
    if (S->rhs_in_b_rows) {
        BA_CHECK(column_dots(op, S->t, S->t, op->big_loc, S->tnorm, err));
        for (int j = 0; j < op->nb; j++) S->tnorm[j] = sqrt(S->tnorm[j]);
    }
    return BA_OK;
}

/* The right-hand sides of one block from values per training sample:
 * value(i, j) for training sample i (permuted index) and column j < width.
 * Primal: t = values in B's rows, b = Bᵀt; dual: b = values. */
typedef double (*sample_value)(const void *ctx, long i, int j);

static ba_status set_block(fold_solver *S, int width, sample_value value, const void *ctx,
                           ba_error *err)
{
    normal_op *op = &S->op;
    int nb = op->nb;
    op->active = width;
    S->rhs_in_b_rows = !op->dual;
    double *dst = op->dual ? S->b : S->t;
    long rows = op->dual ? op->small_loc : op->big_loc, row0 = op->dual ? op->small0 : op->big0;
    for (long r = 0; r < rows; r++)
        for (int j = 0; j < nb; j++) dst[r * nb + j] = j < width ? value(ctx, row0 + r, j) : 0.0;
    if (!op->dual) BA_CHECK(ba_mpi_check(apply_bt(op, S->t, S->b), "right-hand sides", err));
    return block_norms(S, err);
}

/* ------------------------------------------------------ the hat diagonal */

typedef struct {
    long i0;
} unit_ctx;

static double unit_value(const void *ctx, long i, int j)
{
    return i == ((const unit_ctx *)ctx)->i0 + j ? 1.0 : 0.0;
}

typedef struct {
    const signed char *z; /* [n_train][width] */
    int width;
} probe_ctx;

static double probe_value(const void *ctx, long i, int j)
{
    const probe_ctx *c = ctx;
    return c->z[i * c->width + j];
}

/* den[a][i]: the leave-one-out denominators (1 - h_ii, or G_ii in the dual
 * form), exact: one right-hand side per training sample. */
static ba_status hat_exact(run_ctx *R, fold_solver *S, int fold, double *den,
                           ba_ridge_progress *progress, ba_error *err)
{
    normal_op *op = &S->op;
    const ba_ridge_options *opt = R->opt;
    for (long i0 = 0; i0 < op->n_train; i0 += op->nb) {
        int width = (int)(op->n_train - i0 < op->nb ? op->n_train - i0 : op->nb);
        unit_ctx u = {i0};
        BA_CHECK(set_block(S, width, unit_value, &u, err));
        block_info B = {fold, false, i0, width};
        for (int s = 0; s < opt->n_alphas; s++) {
            int a = R->order[s];
            bool warm = s > 0 && R->warm_start;
            BA_CHECK(solve_block(R, S, &B, a, s > 0 ? opt->alphas[R->order[s - 1]] : 0, warm, err));
            BA_CHECK(column_dots(op, S->b, S->sol, op->small_loc, S->den, err));
            for (int j = 0; j < width; j++)
                den[(size_t)a * op->n_train + i0 + j] = op->dual ? S->den[j] : 1.0 - S->den[j];
        }
        ba_ridge_progress_step(progress);
    }
    return BA_OK;
}

/* The same denominators estimated from Rademacher probes (APPROXIMATE):
 * diag(M) ≈ mean_k z_k ⊙ M z_k with M = X(XᵀX + αI)⁻¹Xᵀ (primal) or
 * (XXᵀ + αI)⁻¹ (dual). */
static ba_status hat_hutchinson(run_ctx *R, fold_solver *S, int fold, double *den,
                                ba_ridge_progress *progress, ba_error *err)
{
    ba_status rc = BA_OK;
    normal_op *op = &S->op;
    const ba_ridge_options *opt = R->opt;
    int nb = op->nb;
    long ntr = op->n_train;
    /* Allocated and agreed on before the solves' collectives. */
    signed char *z = ba_calloc((size_t)ntr * (size_t)nb, sizeof *z, "Hutchinson probes", err);
    BA_TRY(ba_mpi_agree(op->comm, z ? BA_OK : BA_ERR_NOMEM, err), done);
    memset(den, 0, sizeof(double) * (size_t)opt->n_alphas * (size_t)ntr);
    for (int k0 = 0; k0 < R->probes; k0 += nb) {
        int width = R->probes - k0 < nb ? R->probes - k0 : nb;
        for (int j = 0; j < width; j++) { /* the same probes on every rank count */
            ba_rng rng;
            ba_rng_seed(&rng, 0x68757463ULL + (uint64_t)fold, (uint64_t)(k0 + j));
            for (long i = 0; i < ntr; i++) z[i * width + j] = (ba_rng_next(&rng) >> 63) ? 1 : -1;
        }
        probe_ctx pc = {z, width};
        BA_TRY(set_block(S, width, probe_value, &pc, err), done);
        block_info B = {fold, false, 0, width};
        for (int s = 0; s < opt->n_alphas; s++) {
            int a = R->order[s];
            bool warm = s > 0 && R->warm_start;
            BA_TRY(solve_block(R, S, &B, a, s > 0 ? opt->alphas[R->order[s - 1]] : 0, warm, err),
                   done);
            const double *mz = S->sol;
            long rows = op->small_loc, row0 = op->small0;
            if (!op->dual) { /* H z = B (N⁻¹ Bᵀz), in B's rows */
                BA_TRY(ba_mpi_check(apply_b(op, S->sol, S->bx), "Hutchinson probes", err), done);
                mz = S->bx;
                rows = op->big_loc;
                row0 = op->big0;
            }
            double *d = den + (size_t)a * ntr;
            for (long r = 0; r < rows; r++)
                for (int j = 0; j < width; j++)
                    d[row0 + r] += z[(row0 + r) * width + j] * mz[r * nb + j];
        }
        ba_ridge_progress_step(progress);
    }
    /* Each entry has one contributor: the sum gathers them. */
    BA_TRY(ba_mpi_check(MPI_Allreduce(MPI_IN_PLACE, den, (int)(opt->n_alphas * ntr), MPI_DOUBLE,
                                      MPI_SUM, op->comm), "Hutchinson estimate", err), done);
    for (int a = 0; a < opt->n_alphas; a++) {
        double *d = den + (size_t)a * ntr, mean = 0;
        for (long i = 0; i < ntr; i++) {
            d[i] /= R->probes;
            if (!op->dual) d[i] = 1.0 - d[i];
            mean += d[i];
        }
        if (R->gcv) { /* generalised cross-validation: the trace estimate for all */
            for (long i = 0; i < ntr; i++) d[i] = mean / (double)ntr;
            continue;
        }
        double floor = 1e-3 * fabs(mean / (double)ntr);
        if (!(floor > 0)) floor = DBL_MIN;
        for (long i = 0; i < ntr; i++)
            if (!(d[i] > floor)) d[i] = floor;
    }
done:
    free(z);
    return rc;
}

/* ----------------------------------------------------------- the voxels */

/* All rows of voxels [v0, v0 + width) on every rank of the group. */
static ba_status gather_voxels(const run_ctx *R, long v0, int width, float *pack, float *out,
                               int *counts, int *displs, ba_error *err)
{
    const ba_ridge_layout *L = R->L;
    long n = R->D->n, vloc = L->v_end - L->v_begin;
    for (int q = 0; q < L->group_size; q++) {
        long b, e;
        ba_split_range(L->v_total, L->group_size, q, &b, &e);
        long ob = b > v0 ? b : v0, oe = e < v0 + width ? e : v0 + width;
        counts[q] = oe > ob ? (int)((oe - ob) * n) : 0;
        displs[q] = q ? displs[q - 1] + counts[q - 1] : 0;
    }
    long ob = L->v_begin > v0 ? L->v_begin : v0;
    long mine = counts[L->group_rank] / n;
    for (long i = 0; i < n; i++)
        for (long c = 0; c < mine; c++) pack[i * mine + c] = R->D->y[i * vloc + ob - L->v_begin + c];
    BA_CHECK(ba_mpi_check(MPI_Allgatherv(pack, counts[L->group_rank], MPI_FLOAT, out + (size_t)n * width,
                                         counts, displs, MPI_FLOAT, L->group),
                          "gathering voxels", err));
    const float *recv = out + (size_t)n * width;
    for (int q = 0; q < L->group_size; q++) {
        long b, e;
        ba_split_range(L->v_total, L->group_size, q, &b, &e);
        long qb = b > v0 ? b : v0, cq = counts[q] / n;
        for (long i = 0; i < n; i++)
            for (long c = 0; c < cq; c++)
                out[i * width + (qb - v0) + c] = recv[displs[q] + i * cq + c];
    }
    return BA_OK;
}

typedef struct {
    const float *y;     /* [n][width] */
    const double *mean; /* [width] training means */
    const ba_fold_rows *f;
    int width;
} voxel_ctx;

static double voxel_value(const void *ctx, long i, int j)
{
    const voxel_ctx *c = ctx;
    return (double)c->y[ba_fold_original_row(c->f, i) * c->width + j] - c->mean[j];
}

static double pearson_block(const double *a, long sa, const float *b, long sb, long n)
{
    double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
    for (long i = 0; i < n; i++) { ma += a[i * sa]; mb += b[i * sb]; }
    ma /= (double)n;
    mb /= (double)n;
    for (long i = 0; i < n; i++) {
        double da = a[i * sa] - ma, db = b[i * sb] - mb;
        sab += da * db;
        saa += da * da;
        sbb += db * db;
    }
    return (saa > 0 && sbb > 0) ? sab / sqrt(saa * sbb) : 0.0;
}

typedef struct {
    float *y, *pack;        /* [2][n][nb], [n][nb] */
    int *counts, *displs;   /* [group size] */
    double *mean, *loss, *best_loss; /* [nb] */
    int *best;              /* [nb] */
    double *yhat;           /* [n_test][nb] */
    int *test_counts, *test_displs;
} voxel_work;

static void voxel_work_free(voxel_work *w)
{
    free(w->y); free(w->pack); free(w->counts); free(w->displs); free(w->mean); free(w->loss);
    free(w->best_loss); free(w->best); free(w->yhat); free(w->test_counts); free(w->test_displs);
    memset(w, 0, sizeof *w);
}

/* ŷ_te = X_te w(α*) for the block's best solutions, on every rank. */
static ba_status predict_test(fold_solver *S, voxel_work *w, ba_error *err)
{
    normal_op *op = &S->op;
    int nb = op->nb;
    long nte = op->n_test;
    if (op->dual) { /* w = B c (my features), ŷ = Σ_ranks X_te[:, mine] w_mine */
        BA_CHECK(ba_mpi_check(apply_b(op, S->best, S->bx), "prediction", err));
        if (op->big_loc > 0)
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nte, nb, (int)op->big_loc,
                        1.0, op->test_x, (int)nte, S->bx, nb, 0.0, w->yhat, nb);
        else
            memset(w->yhat, 0, sizeof(double) * (size_t)nte * (size_t)nb);
        return ba_mpi_check(MPI_Allreduce(MPI_IN_PLACE, w->yhat, (int)(nte * nb), MPI_DOUBLE,
                                          MPI_SUM, op->comm), "prediction", err);
    }
    /* primal: my test rows times the gathered weights, then all rows everywhere */
    BA_CHECK(ba_mpi_check(MPI_Allgatherv(S->best, op->counts[op->rank], MPI_DOUBLE, op->full,
                                         op->counts, op->displs, MPI_DOUBLE, op->comm),
                          "prediction", err));
    double *mine = w->yhat + op->test0 * nb;
    if (op->test_loc > 0)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)op->test_loc, nb, (int)op->p,
                    1.0, op->test_x, (int)op->p, op->full, nb, 0.0, mine, nb);
    return ba_mpi_check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, w->yhat,
                                       w->test_counts, w->test_displs, MPI_DOUBLE, op->comm),
                        "prediction", err);
}

/* Voxels [v0, v0 + width) of the group (width = min(nb, the rest)): every
 * alpha's solve and leave-one-out losses, loss [n_alphas][width], the same
 * on every rank. Keeps, per column, the solution of the best alpha so far
 * (the smallest loss; on equal losses the smaller alpha index, the
 * driver's rule) in S->best for the refit. */
static ba_status voxel_losses(run_ctx *R, fold_solver *S, const ba_fold_rows *f, int fold,
                              const double *den, long v0, voxel_work *w, double *loss,
                              ba_error *err)
{
    normal_op *op = &S->op;
    const ba_ridge_options *opt = R->opt;
    const ba_ridge_layout *L = R->L;
    int nb = op->nb;
    int width = (int)(L->v_total - v0 < nb ? L->v_total - v0 : nb);
    long ntr = op->n_train;
    BA_CHECK(gather_voxels(R, v0, width, w->pack, w->y, w->counts, w->displs, err));
    for (int j = 0; j < width; j++) w->mean[j] = ba_fold_train_mean(f, w->y, width, j);
    voxel_ctx vc = {w->y, w->mean, f, width};
    BA_CHECK(set_block(S, width, voxel_value, &vc, err));
    block_info B = {fold, true, v0, width};
    for (int j = 0; j < nb; j++) { w->best_loss[j] = INFINITY; w->best[j] = 0; }

    for (int s = 0; s < opt->n_alphas; s++) {
        int a = R->order[s];
        bool warm = s > 0 && R->warm_start;
        BA_CHECK(solve_block(R, S, &B, a, s > 0 ? opt->alphas[R->order[s - 1]] : 0, warm, err));
        const double *d = den + (size_t)a * ntr;
        for (int j = 0; j < nb; j++) w->loss[j] = 0;
        if (op->dual) { /* LOO residual c_i / G_ii */
            for (long r = 0; r < op->small_loc; r++)
                for (int j = 0; j < width; j++) {
                    double e = S->sol[r * nb + j] / d[op->small0 + r];
                    w->loss[j] += e * e;
                }
        } else {        /* (y - Xw)_i / (1 - h_ii) */
            BA_CHECK(ba_mpi_check(apply_b(op, S->sol, S->bx), "training residuals", err));
            for (long r = 0; r < op->big_loc; r++)
                for (int j = 0; j < width; j++) {
                    double e = (S->t[r * nb + j] - S->bx[r * nb + j]) / d[op->big0 + r];
                    w->loss[j] += e * e;
                }
        }
        BA_CHECK(ba_mpi_check(MPI_Allreduce(MPI_IN_PLACE, w->loss, width, MPI_DOUBLE, MPI_SUM,
                                            op->comm), "leave-one-out losses", err));
        for (int j = 0; j < width; j++) {
            loss[(size_t)a * width + j] = w->loss[j];
            if (w->loss[j] < w->best_loss[j] || (w->loss[j] == w->best_loss[j] && a < w->best[j])) {
                w->best_loss[j] = w->loss[j];
                w->best[j] = a;
                for (long r = 0; r < op->small_loc; r++) S->best[r * nb + j] = S->sol[r * nb + j];
            }
        }
    }
    return BA_OK;
}

/* The refit of the block just scored with the kept solutions: held-out
 * prediction on every rank, r[j] for the columns this rank owns. */
static ba_status voxel_predict(fold_solver *S, const ba_fold_rows *f, const ba_ridge_block *B,
                               voxel_work *w, float *r, ba_error *err)
{
    normal_op *op = &S->op;
    int nb = op->nb;
    long width = B->width;
    for (long row = 0; row < op->small_loc; row++)
        for (int j = (int)width; j < nb; j++) S->best[row * nb + j] = 0;
    BA_CHECK(predict_test(S, w, err));
    for (long j = B->own_begin; j < B->own_end; j++)
        r[j] = (float)pearson_block(w->yhat + j, nb, w->y + f->test_begin * width + j, width,
                                    f->n_test);
    return BA_OK;
}

static ba_status voxel_work_create(const run_ctx *R, const normal_op *op, voxel_work *w,
                                   ba_error *err)
{
    ba_status rc = BA_OK;
    size_t nb = (size_t)op->nb, n = (size_t)R->D->n, g = (size_t)R->L->group_size;
    memset(w, 0, sizeof *w);
    w->y = ba_calloc(2 * n * nb, sizeof(float), "voxel block", err);
    w->pack = ba_calloc(n * nb, sizeof(float), "voxel block", err);
    w->counts = ba_calloc(g, sizeof(int), "voxel block", err);
    w->displs = ba_calloc(g, sizeof(int), "voxel block", err);
    w->test_counts = ba_calloc(g, sizeof(int), "voxel block", err);
    w->test_displs = ba_calloc(g, sizeof(int), "voxel block", err);
    w->mean = ba_calloc(nb, sizeof(double), "voxel block", err);
    w->loss = ba_calloc(nb, sizeof(double), "voxel block", err);
    w->best_loss = ba_calloc(nb, sizeof(double), "voxel block", err);
    w->best = ba_calloc(nb, sizeof(int), "voxel block", err);
    w->yhat = ba_calloc((size_t)op->n_test * nb, sizeof(double), "predictions", err);
    if (!w->y || !w->pack || !w->counts || !w->displs || !w->test_counts || !w->test_displs ||
        !w->mean || !w->loss || !w->best_loss || !w->best || !w->yhat)
        rc = BA_ERR_NOMEM;
    for (int q = 0; rc == BA_OK && q < (int)g; q++) {
        long b, e;
        ba_split_range(op->n_test, (int)g, q, &b, &e);
        w->test_counts[q] = (int)((e - b) * op->nb);
        w->test_displs[q] = (int)(b * op->nb);
    }
    return rc;
}

/* The -ridge_* options (see ridge_petsc.h). */
static ba_status read_ridge_options(run_ctx *R, ba_error *err)
{
    ba_status rc = BA_OK;
    char hat[32] = "exact";
    PetscBool set = PETSC_FALSE, warm = PETSC_TRUE;
    PetscInt probes = 64;
    BA_PETSC_TRY(&R->cap, PetscOptionsGetString(NULL, NULL, "-ridge_hat_diagonal", hat, sizeof hat, &set), done);
    BA_PETSC_TRY(&R->cap, PetscOptionsGetInt(NULL, NULL, "-ridge_hutchinson_probes", &probes, &set), done);
    BA_PETSC_TRY(&R->cap, PetscOptionsGetBool(NULL, NULL, "-ridge_warm_start", &warm, &set), done);
    if (strcmp(hat, "exact") != 0 && strcmp(hat, "hutchinson") != 0 && strcmp(hat, "gcv") != 0)
        return ba_fail(err, BA_ERR_USAGE, "-ridge_hat_diagonal is exact, hutchinson or gcv, not '%s'",
                       hat);
    if (probes < 1) return ba_fail(err, BA_ERR_USAGE, "-ridge_hutchinson_probes must be >= 1");
    R->exact_hat = strcmp(hat, "exact") == 0;
    R->gcv = strcmp(hat, "gcv") == 0;
    R->probes = (int)probes;
    R->warm_start = warm == PETSC_TRUE;
    R->stats.exact_hat = R->exact_hat;
    R->stats.probes = R->exact_hat ? 0 : R->probes;
done:
    return rc;
}

/* Largest alpha first (stable for equal alphas). */
static void alpha_order(const ba_ridge_options *opt, int *order)
{
    for (int i = 0; i < opt->n_alphas; i++) order[i] = i;
    for (int i = 1; i < opt->n_alphas; i++)
        for (int j = i; j > 0 && opt->alphas[order[j]] > opt->alphas[order[j - 1]]; j--) {
            int tmp = order[j];
            order[j] = order[j - 1];
            order[j - 1] = tmp;
        }
}

/* Sum the counters over the groups; the worst residual and its place from
 * the group that had it. */
static ba_status combine_stats(const ba_ridge_layout *L, ba_ridge_petsc_stats *st, ba_error *err)
{
    if (L->n_groups == 1) return BA_OK;
    long counts[3] = {st->block_solves, st->iterations, st->columns};
    BA_CHECK(ba_mpi_check(MPI_Allreduce(MPI_IN_PLACE, counts, 3, MPI_LONG, MPI_SUM, L->across),
                          "solver statistics", err));
    st->block_solves = counts[0];
    st->iterations = counts[1];
    st->columns = counts[2];
    struct { double value; int index; } mine = {st->worst_residual, L->group_index}, top;
    BA_CHECK(ba_mpi_check(MPI_Allreduce(&mine, &top, 1, MPI_DOUBLE_INT, MPI_MAXLOC, L->across),
                          "solver statistics", err));
    double where[4] = {st->worst_fold, st->worst_alpha, (double)st->worst_column, st->worst_is_voxel};
    BA_CHECK(ba_mpi_check(MPI_Bcast(where, 4, MPI_DOUBLE, top.index, L->across),
                          "solver statistics", err));
    st->worst_residual = top.value;
    st->worst_fold = (int)where[0];
    st->worst_alpha = where[1];
    st->worst_column = (long)where[2];
    st->worst_is_voxel = where[3] != 0;
    return BA_OK;
}

static void report(const run_ctx *R, const ba_ridge_layout *L)
{
    int rank = 0;
    MPI_Comm_rank(L->world, &rank);
    if (rank != 0) return;
    const ba_ridge_petsc_stats *st = &R->stats;
    double tolerance = 100.0 * st->rtol * sqrt((double)R->nb);
    if (st->worst_residual > tolerance)
        fprintf(stderr, "brainalign: warning: PETSc KSP %s reached a relative residual (normal "
                "equations) of only %.3g (rtol %g) in fold %d at alpha %g for %s %ld; a smaller "
                "-ksp_rtol tightens it\n", st->ksp_type,
                st->worst_residual, st->rtol, st->worst_fold, st->worst_alpha,
                st->worst_is_voxel ? "voxel" : "training sample", st->worst_column);
    if (!R->opt->quiet)
        fprintf(stderr, "ridge (PETSc KSP %s, rtol %g): %ld solves of %d right-hand sides, %ld "
                "iterations (%.1f per solve), worst relative residual %.2e; hat diagonal %s\n",
                st->ksp_type, st->rtol, st->block_solves, R->nb, st->iterations,
                st->block_solves ? (double)st->iterations / (double)st->block_solves : 0.0,
                st->worst_residual, R->exact_hat ? "exact" : R->gcv ? "APPROXIMATE (GCV, "
                "Hutchinson trace)" : "APPROXIMATE (Hutchinson)");
}

/* ----------------------------------------------- the solver's operations */

typedef struct {
    run_ctx R;
    ba_ridge_petsc_stats *stats_out; /* NULL: not wanted */
    bool handler_pushed;
    /* The fold in progress. */
    fold_solver S;
    voxel_work w;
    double *den;         /* [n_alphas][n_train] leave-one-out denominators */
    bool voxel_side;     /* the hat diagonal is done: S.op.flops now counts voxels */
    double voxel_flops0; /* S.op.flops when the voxel side began */
    long v0;             /* first voxel of the block scored last */
} krylov_solver;

static ba_status krylov_begin(void *self, const ba_ridge_layout *L, const ba_ridge_data *D,
                              const ba_ridge_options *opt, ba_error *err)
{
    krylov_solver *ks = self;
    run_ctx *R = &ks->R;
    R->L = L;
    R->D = D;
    R->opt = opt;
    R->nb = opt->voxel_block > 0 ? (int)(opt->voxel_block < 4096 ? opt->voxel_block : 4096) : 64;
    PetscPushErrorHandler(capture_error, &R->cap);
    ks->handler_pushed = true;
    BA_CHECK(read_ridge_options(R, err));
    R->order = ba_calloc((size_t)opt->n_alphas, sizeof(int), "alpha order", err);
    if (!R->order) return BA_ERR_NOMEM;
    alpha_order(opt, R->order);
    return BA_OK;
}

static long krylov_block_capacity(void *self)
{
    return ((krylov_solver *)self)->R.nb;
}

/* The hat diagonal's blocks of right-hand sides. */
static double krylov_fold_units(void *self, const ba_ridge_fold *F)
{
    const run_ctx *R = &((krylov_solver *)self)->R;
    long n_train = F->rows.n_train;
    return (double)(R->exact_hat ? (n_train + R->nb - 1) / R->nb : (R->probes + R->nb - 1) / R->nb);
}

/* Blocks of nb voxels by global index, the same on every rank of the group. */
static long krylov_n_blocks(void *self, const ba_ridge_fold *F)
{
    const run_ctx *R = &((krylov_solver *)self)->R;
    return (F->layout->v_total + R->nb - 1) / R->nb;
}

static void krylov_end_fold(void *self)
{
    krylov_solver *ks = self;
    if (ks->voxel_side) ks->R.flops_voxel += ks->S.op.flops - ks->voxel_flops0;
    ks->voxel_side = false;
    free(ks->den);
    ks->den = NULL;
    voxel_work_free(&ks->w);
    solver_free(&ks->S);
}

static ba_status krylov_prepare_fold(void *self, const ba_ridge_fold *F,
                                     ba_ridge_progress *progress, ba_error *err)
{
    krylov_solver *ks = self;
    run_ctx *R = &ks->R;
    ba_status rc = BA_OK;
    memset(&ks->S, 0, sizeof ks->S);
    BA_CHECK(operator_setup(R, &F->rows, &ks->S.op, err));
    BA_CHECK(solver_create(R, &ks->S, err));
    ks->den = ba_calloc((size_t)R->opt->n_alphas * (size_t)F->rows.n_train, sizeof(double),
                        "leave-one-out denominators", err);
    rc = ks->den ? BA_OK : BA_ERR_NOMEM;
    if (rc == BA_OK) rc = voxel_work_create(R, &ks->S.op, &ks->w, err);
    BA_CHECK(ba_mpi_agree(ks->S.op.comm, rc, err));

    double flops0 = ks->S.op.flops;
    if (R->exact_hat) rc = hat_exact(R, &ks->S, F->index, ks->den, progress, err);
    else rc = hat_hutchinson(R, &ks->S, F->index, ks->den, progress, err);
    R->flops_hat += ks->S.op.flops - flops0;
    if (rc != BA_OK) return rc;
    ks->voxel_side = true;
    ks->voxel_flops0 = ks->S.op.flops;
    return BA_OK;
}

static ba_status krylov_score_block(void *self, const ba_ridge_fold *F, long b,
                                    ba_ridge_block *B, double *loss, ba_error *err)
{
    krylov_solver *ks = self;
    const ba_ridge_layout *L = F->layout;
    long v0 = ks->v0 = b * ks->R.nb;
    long width = L->v_total - v0 < ks->R.nb ? L->v_total - v0 : ks->R.nb;
    long own0 = L->v_begin > v0 ? L->v_begin : v0;
    long own1 = L->v_end < v0 + width ? L->v_end : v0 + width;
    if (own1 > own0) *B = (ba_ridge_block){width, own0 - v0, own1 - v0, own0 - L->v_begin};
    else *B = (ba_ridge_block){width, 0, 0, 0};
    return voxel_losses(&ks->R, &ks->S, &F->rows, F->index, ks->den, v0, &ks->w, loss, err);
}

static ba_status krylov_predict_block(void *self, const ba_ridge_fold *F, const ba_ridge_block *B,
                                      const int *best, float *r, ba_error *err)
{
    krylov_solver *ks = self;
    /* The solver keeps only the solution of each column's running best (not
     * one per alpha), by the driver's rule; a different choice would need
     * a solution it no longer has. */
    for (long j = 0; j < B->width; j++)
        if (best[j] != ks->w.best[j])
            return ba_fail(err, BA_ERR_INTERNAL,
                           "ridge CV (PETSc): fold %d, voxel %ld: the driver chose alpha %g "
                           "but the solver kept the solution of alpha %g (NaN losses?)",
                           F->index, ks->v0 + j, F->opt->alphas[best[j]], F->opt->alphas[ks->w.best[j]]);
    return voxel_predict(&ks->S, &F->rows, B, &ks->w, r, err);
}

static ba_status krylov_finish(void *self, ba_ridge_result *res, ba_error *err)
{
    krylov_solver *ks = self;
    run_ctx *R = &ks->R;
    const ba_ridge_layout *L = R->L;
    /* Feature side: the group's flops (as ba_ridge_cv); voxel side: mine. */
    BA_CHECK(ba_mpi_check(MPI_Allreduce(&R->flops_hat, &res->timing.feature_flops, 1, MPI_DOUBLE,
                                        MPI_SUM, L->group), "flop counts", err));
    res->timing.voxel_flops = R->flops_voxel;
    BA_CHECK(combine_stats(L, &R->stats, err));
    report(R, L);
    if (ks->stats_out) *ks->stats_out = R->stats;
    return BA_OK;
}

static void krylov_destroy(void *self)
{
    krylov_solver *ks = self;
    krylov_end_fold(ks);
    if (ks->handler_pushed) PetscPopErrorHandler();
    ks->handler_pushed = false;
    free(ks->R.order);
    ks->R.order = NULL;
}

static const ba_ridge_solver_ops krylov_ops = {
    .who = "ridge CV (PETSc)",
    .announce_checkpoints = true,
    .collective_blocks = true,
    .near_ties = false, /* double-precision losses */
    .begin = krylov_begin,
    .block_capacity = krylov_block_capacity,
    .fold_units = krylov_fold_units,
    .n_blocks = krylov_n_blocks,
    .prepare_fold = krylov_prepare_fold,
    .score_block = krylov_score_block,
    .predict_block = krylov_predict_block,
    .refine_fold = NULL,
    .end_fold = krylov_end_fold,
    .finish = krylov_finish,
    .destroy = krylov_destroy,
};

ba_status ba_ridge_cv_petsc_stats(const ba_ridge_layout *L, const ba_ridge_data *D,
                                  const ba_ridge_options *opt, ba_ridge_result *res,
                                  ba_ridge_petsc_stats *stats, ba_error *err)
{
    memset(res, 0, sizeof *res);
    if (stats) memset(stats, 0, sizeof *stats);
    PetscBool up = PETSC_FALSE;
    PetscInitialized(&up);
    ba_status rc = up ? BA_OK : ba_fail(err, BA_ERR_USAGE,
                                        "PETSc is not initialised (ba_petsc_initialize)");
    BA_CHECK(ba_mpi_agree(L->world, rc, err));
    krylov_solver ks;
    memset(&ks, 0, sizeof ks);
    ks.stats_out = stats;
    ba_ridge_solver solver = {&krylov_ops, &ks};
    return ba_ridge_cv_run(L, D, opt, &solver, res, err);
}

ba_status ba_ridge_cv_petsc(const ba_ridge_layout *L, const ba_ridge_data *D,
                            const ba_ridge_options *opt, ba_ridge_result *res, ba_error *err)
{
    return ba_ridge_cv_petsc_stats(L, D, opt, res, NULL, err);
}
