/* scalapack.h — prototypes of the BLACS/ScaLAPACK routines brainalign uses
 * (Debian's libscalapack-openmpi ships no C header), and a distributed
 * dense matrix type with its life cycle.
 *
 * A ba_dmat is an m x n double matrix laid out block-cyclically (square
 * blocks of nb) over a BLACS process grid, column-major locally, exactly as
 * ScaLAPACK expects. */
#ifndef BRAINALIGN_SCALAPACK_H
#define BRAINALIGN_SCALAPACK_H

#include <mpi.h>

#include "brainalign/core/error.h"

/* BLACS (C interface) */
int Csys2blacs_handle(MPI_Comm comm);
void Cfree_blacs_system_handle(int handle);
void Cblacs_gridinit(int *context, const char *order, int nprow, int npcol);
void Cblacs_gridinfo(int context, int *nprow, int *npcol, int *myrow, int *mycol);
void Cblacs_gridexit(int context);

/* ScaLAPACK tools and routines (Fortran interface) */
int numroc_(const int *n, const int *nb, const int *iproc, const int *isrcproc,
            const int *nprocs);
void descinit_(int *desc, const int *m, const int *n, const int *mb, const int *nb,
               const int *irsrc, const int *icsrc, const int *ictxt, const int *lld,
               int *info);
void pdgemm_(const char *transa, const char *transb, const int *m, const int *n,
             const int *k, const double *alpha, const double *a, const int *ia,
             const int *ja, const int *desca, const double *b, const int *ib,
             const int *jb, const int *descb, const double *beta, double *c,
             const int *ic, const int *jc, const int *descc);
void pdsyrk_(const char *uplo, const char *trans, const int *n, const int *k,
             const double *alpha, const double *a, const int *ia, const int *ja,
             const int *desca, const double *beta, double *c, const int *ic, const int *jc,
             const int *descc);
void pdsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *ia,
              const int *ja, const int *desca, double *w, double *z, const int *iz,
              const int *jz, const int *descz, double *work, const int *lwork,
              int *iwork, const int *liwork, int *info);

/* A BLACS process grid over an MPI communicator, as square as possible. */
typedef struct {
    MPI_Comm comm;
    int system_handle;
    int context;
    int nprow, npcol, myrow, mycol;
} ba_grid;

ba_status ba_grid_create(MPI_Comm comm, ba_grid *grid, ba_error *err);
void ba_grid_destroy(ba_grid *grid);

typedef struct {
    int m, n, nb;       /* global shape, block size */
    int mloc, nloc;     /* local shape */
    int desc[9];        /* ScaLAPACK descriptor */
    double *data;       /* local part, column-major, leading dimension desc[8] */
} ba_dmat;

ba_status ba_dmat_create(const ba_grid *grid, int m, int n, int nb, ba_dmat *mat,
                         ba_error *err);
void ba_dmat_destroy(ba_dmat *mat);

/* Global index (0-based) of local row i / local column j. */
int ba_dmat_global_row(const ba_dmat *mat, const ba_grid *grid, int i);
int ba_dmat_global_col(const ba_dmat *mat, const ba_grid *grid, int j);

/* C = op(A)(ia.., 1..) op(B)(ib.., 1..), C m x n from its top-left corner,
 * op "N" or "T", inner dimension k; the 1-based first rows ia and ib select
 * row blocks of A and B (pdgemm with alpha 1, beta 0). Collective over the
 * grid. */
void ba_dmat_gemm(const char *ta, const char *tb, int m, int n, int k, const ba_dmat *a,
                  int ia, const ba_dmat *b, int ib, ba_dmat *c);

/* Copy the whole distributed matrix, as float, row-major, to every rank of
 * the grid (full has m*n entries). Exact: each entry has one owner. */
ba_status ba_dmat_replicate_f32(const ba_dmat *mat, const ba_grid *grid, float *full,
                                ba_error *err);

/* Eigen-decomposition of the symmetric matrix a (overwritten): eigenvalues
 * ascending in w (every rank of the grid), eigenvectors in z (same layout
 * as a). Collective over the grid. */
ba_status ba_dmat_syevd(const ba_grid *grid, ba_dmat *a, double *w, ba_dmat *z,
                        ba_error *err);

#endif
