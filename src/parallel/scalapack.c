/* scalapack.c — BLACS grids and block-cyclic matrices (see scalapack.h). */
#include "brainalign/parallel/scalapack.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/parallel/parallel.h"

ba_status ba_grid_create(MPI_Comm comm, ba_grid *grid, ba_error *err)
{
    memset(grid, 0, sizeof *grid);
    int size = 1;
    MPI_Comm_size(comm, &size);
    /* nprow <= npcol, nprow the largest divisor of size below sqrt(size). */
    int nprow = (int)floor(sqrt((double)size));
    while (size % nprow) nprow--;
    grid->comm = comm;
    grid->system_handle = Csys2blacs_handle(comm);
    grid->context = grid->system_handle;
    Cblacs_gridinit(&grid->context, "Row", nprow, size / nprow);
    Cblacs_gridinfo(grid->context, &grid->nprow, &grid->npcol, &grid->myrow,
                    &grid->mycol);
    if (grid->myrow < 0 || grid->nprow != nprow)
        return ba_fail(err, BA_ERR_MPI, "cannot create a %d x %d BLACS grid", nprow,
                       size / nprow);
    return BA_OK;
}

void ba_grid_destroy(ba_grid *grid)
{
    if (grid->nprow > 0) Cblacs_gridexit(grid->context);
    Cfree_blacs_system_handle(grid->system_handle);
    memset(grid, 0, sizeof *grid);
}

ba_status ba_dmat_create(const ba_grid *grid, int m, int n, int nb, ba_dmat *mat,
                         ba_error *err)
{
    memset(mat, 0, sizeof *mat);
    const int zero = 0;
    mat->m = m;
    mat->n = n;
    mat->nb = nb;
    mat->mloc = numroc_(&m, &nb, &grid->myrow, &zero, &grid->nprow);
    mat->nloc = numroc_(&n, &nb, &grid->mycol, &zero, &grid->npcol);
    int lld = mat->mloc > 1 ? mat->mloc : 1, info = 0;
    descinit_(mat->desc, &m, &n, &nb, &nb, &zero, &zero, &grid->context, &lld, &info);
    if (info != 0)
        return ba_fail(err, BA_ERR_INTERNAL, "descinit failed (info %d) for %d x %d", info,
                       m, n);
    mat->data = ba_calloc((size_t)lld * (size_t)(mat->nloc > 0 ? mat->nloc : 1),
                          sizeof(double), "distributed matrix", err);
    return mat->data ? BA_OK : BA_ERR_NOMEM;
}

void ba_dmat_destroy(ba_dmat *mat)
{
    free(mat->data);
    memset(mat, 0, sizeof *mat);
}

/* Block-cyclic index map with the source process at 0. */
static int local_to_global(int local, int nb, int iproc, int nprocs)
{
    return (local / nb) * nb * nprocs + iproc * nb + local % nb;
}

int ba_dmat_global_row(const ba_dmat *mat, const ba_grid *grid, int i)
{
    return local_to_global(i, mat->nb, grid->myrow, grid->nprow);
}

int ba_dmat_global_col(const ba_dmat *mat, const ba_grid *grid, int j)
{
    return local_to_global(j, mat->nb, grid->mycol, grid->npcol);
}

void ba_dmat_gemm(const char *ta, const char *tb, int m, int n, int k, const ba_dmat *a,
                  int ia, const ba_dmat *b, int ib, ba_dmat *c)
{
    const double one = 1.0, zero = 0.0;
    const int col1 = 1, row1 = 1;
    pdgemm_(ta, tb, &m, &n, &k, &one, a->data, &ia, &col1, a->desc, b->data, &ib, &col1,
            b->desc, &zero, c->data, &row1, &col1, c->desc);
}

ba_status ba_dmat_replicate_f32(const ba_dmat *mat, const ba_grid *grid, float *full,
                                ba_error *err)
{
    size_t total = (size_t)mat->m * (size_t)mat->n;
    memset(full, 0, total * sizeof *full);
    int lld = mat->desc[8];
    for (int j = 0; j < mat->nloc; j++) {
        int gj = ba_dmat_global_col(mat, grid, j);
        for (int i = 0; i < mat->mloc; i++) {
            int gi = ba_dmat_global_row(mat, grid, i);
            full[(size_t)gi * mat->n + gj] = (float)mat->data[(size_t)j * lld + i];
        }
    }
    /* Every entry has exactly one non-zero contributor, so the sum is exact
     * and identical on all ranks. MPI counts are int: go in chunks. */
    const size_t chunk = (size_t)1 << 28;
    for (size_t off = 0; off < total; off += chunk) {
        int count = (int)(total - off < chunk ? total - off : chunk);
        BA_CHECK(ba_mpi_check(MPI_Allreduce(MPI_IN_PLACE, full + off, count, MPI_FLOAT,
                                            MPI_SUM, grid->comm),
                              "replicating a distributed matrix", err));
    }
    return BA_OK;
}

ba_status ba_dmat_syevd(const ba_grid *grid, ba_dmat *a, double *w, ba_dmat *z,
                        ba_error *err)
{
    const int one = 1;
    int n = a->m, info = 0, lwork = -1, liwork = -1, iwork_query = 0;
    double work_query = 0;
    pdsyevd_("V", "L", &n, a->data, &one, &one, a->desc, w, z->data, &one, &one, z->desc,
             &work_query, &lwork, &iwork_query, &liwork, &info);
    if (info != 0)
        return ba_fail(err, BA_ERR_NUMERIC, "pdsyevd workspace query failed (info %d)",
                       info);
    /* The reference implementation's query underestimates when the block
     * size exceeds the matrix (PDORMTR then rejects LWORK, yet info comes
     * back 0 with garbage eigenvectors). Take the larger of the query and
     * the documented minimum:
     *   LWORK >= max(1 + 6N + 2 NP NQ, 3N + max(NB (NP + 1), 3 NB)) + 2N. */
    int nb = a->desc[5], zero = 0, nprow = 0, npcol = 0, myrow = 0, mycol = 0;
    Cblacs_gridinfo(a->desc[1], &nprow, &npcol, &myrow, &mycol);
    long np = numroc_(&n, &nb, &myrow, &zero, &nprow);
    long nq = numroc_(&n, &nb, &mycol, &zero, &npcol);
    long trilwmin = 3L * n + (nb * (np + 1) > 3L * nb ? nb * (np + 1) : 3L * nb);
    long documented = (1 + 6L * n + 2 * np * nq > trilwmin ? 1 + 6L * n + 2 * np * nq : trilwmin) + 2L * n;
    /* ...and what its back-transformation (PDORMTR) asks for on its own,
     * after pdsyevd's other workspace: max(NB(NB-1)/2, (NP + NQ) NB) + NB². */
    long ormtr = (nb * (nb - 1L) / 2 > (np + nq) * nb ? nb * (nb - 1L) / 2 : (np + nq) * nb) +
                 (long)nb * nb + 4L * n;
    long wanted = (long)work_query > documented ? (long)work_query : documented;
    if (ormtr > wanted) wanted = ormtr;
    if (wanted > 2147483647L / 2)
        return ba_fail(err, BA_ERR_NOMEM, "eigensolver workspace too large for n = %d", n);
    /* No proportional margin: at 2 NP NQ doubles this workspace is the
     * largest allocation of a fit, and the formulas above are the
     * routines' own requirements (checked over sizes, blocks and grids by
     * tests/mpi/test_scalapack*.c). */
    lwork = (int)(wanted + 1024);
    liwork = (iwork_query > 7 * n + 8 * npcol + 2 ? iwork_query : 7 * n + 8 * npcol + 2) + 64;
    double *work = ba_malloc((size_t)lwork * sizeof *work, "eigensolver workspace", err);
    int *iwork = ba_malloc((size_t)liwork * sizeof *iwork, "eigensolver workspace", err);
    ba_status rc = BA_OK;
    if (!work || !iwork) rc = BA_ERR_NOMEM;
    else {
        pdsyevd_("V", "L", &n, a->data, &one, &one, a->desc, w, z->data, &one, &one,
                 z->desc, work, &lwork, iwork, &liwork, &info);
        if (info != 0)
            rc = ba_fail(err, BA_ERR_NUMERIC,
                         "the eigensolver (pdsyevd) failed on a %d x %d matrix (info %d)",
                         n, n, info);
    }
    free(work);
    free(iwork);
    return rc;
}
