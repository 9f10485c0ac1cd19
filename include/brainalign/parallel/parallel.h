/* parallel.h — agreeing on errors across ranks, and progress on rank 0.
 *
 * Rule of the house: a rank that fails never just returns while the others
 * wait in a collective. Every stage ends with ba_mpi_agree(), which makes
 * all ranks return the same status and the same message (the one of the
 * lowest failing rank), so the job ends everywhere with one clear error. */
#ifndef BRAINALIGN_PARALLEL_H
#define BRAINALIGN_PARALLEL_H

#include <mpi.h>
#include <stdbool.h>
#include <stdio.h>

#include "brainalign/core/error.h"

/* Open MPI switches off glibc's mmap for large blocks (for its RDMA
 * registration cache), so a matrix freed after one phase of a fit stays in
 * the process's heap and the peaks of successive phases add up (measured:
 * 281 instead of 251 MiB per rank on the 20,000-voxel benchmark). Call
 * right after MPI_Init: blocks of 1 MiB and more are then mapped on their
 * own and given back when freed. BRAINALIGN_KEEP_MPI_MALLOC=1 keeps Open
 * MPI's setting (e.g. for RDMA transports that rely on it). */
void ba_release_large_blocks(void);

/* Collective over `comm`. If any rank has rc != BA_OK, every rank returns
 * the status of the lowest failing rank with its message copied into err. */
ba_status ba_mpi_agree(MPI_Comm comm, ba_status rc, ba_error *err);

/* Turn an MPI return code into a ba_status with a message. */
ba_status ba_mpi_check(int mpi_rc, const char *what, ba_error *err);

/* Split [0, total) into `parts` contiguous ranges as evenly as possible
 * (the first total % parts ranges get one more). */
void ba_split_range(long total, int parts, int index, long *begin, long *end);

/* Progress on rank 0: a bar on a terminal, a line every few seconds in a
 * log; nothing when quiet or on other ranks. */
typedef struct {
    bool enabled;
    bool tty;
    double start;
    double last_print;
    FILE *out;
    char label[64];
} ba_progress;

void ba_progress_begin(ba_progress *p, MPI_Comm comm, bool quiet,
                       const char *label);
void ba_progress_update(ba_progress *p, double done, double total);
void ba_progress_end(ba_progress *p);

/* Wall-clock seconds (MPI_Wtime). */
double ba_now(void);

#endif
