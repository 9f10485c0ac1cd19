/* ridge_checkpoint.c — restart after failure, shared by both ridge solvers.
 *
 * The file: /r_folds and /alpha [n_folds, n_voxels] and the attributes
 * "done" (one flag per fold) and "key" (the inputs and options; it names
 * the solver, so the two paths never take each other's folds). A missing,
 * unreadable or foreign checkpoint means starting afresh, not an error. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brainalign/io/h5io.h"
#include "checkpoint.h"

/* The shapes and flags of a checkpoint whose key matched: /r_folds and
 * /alpha [n_folds, n_voxels], one flag of 0 or 1 per fold. Independent;
 * false with the reason in `why`. */
static int checkpoint_valid(const ba_h5file *f, const ba_ridge_layout *L, int K,
                            const long long *flags, char *why, size_t why_size)
{
    static const char *const dsets[2] = {"/r_folds", "/alpha"};
    ba_error err;
    for (int i = 0; i < 2; i++) {
        int rank = 0;
        hsize_t dims[BA_H5_MAX_RANK];
        if (ba_h5_shape(f, dsets[i], 0, &rank, dims, &err) != BA_OK) {
            snprintf(why, why_size, "%s", err.message);
            return 0;
        }
        if (rank != 2 || dims[0] != (hsize_t)K || dims[1] != (hsize_t)L->v_total) {
            snprintf(why, why_size, "%s has %d dimension%s, expected [%d folds, %ld voxels]",
                     dsets[i], rank, rank == 1 ? "" : "s", K, L->v_total);
            return 0;
        }
    }
    for (int k = 0; k < K; k++)
        if (flags[k] != 0 && flags[k] != 1) {
            snprintf(why, why_size, "fold flag %d is %lld, not 0 or 1", k, flags[k]);
            return 0;
        }
    return 1;
}

void ba_ridge_checkpoint_load(const ba_ridge_layout *L, const ba_ridge_options *opt,
                              const char *who, ba_ridge_result *res, int *done)
{
    int K = res->n_folds, rank = 0, present = 0, usable = 0;
    long vloc = res->v_local;
    for (int k = 0; k < K; k++) done[k] = 0;
    if (!opt->checkpoint_path) return;
    MPI_Comm_rank(L->world, &rank);
    if (rank == 0) present = access(opt->checkpoint_path, F_OK) == 0;
    MPI_Bcast(&present, 1, MPI_INT, 0, L->world);
    if (!present) return;
    ba_error err;
    ba_h5file f;
    if (ba_h5_open(&f, opt->checkpoint_path, L->world, &err) != BA_OK) {
        if (rank == 0 && !opt->quiet)
            fprintf(stderr, "%s: %s cannot be read (%s); starting afresh\n",
                    who, opt->checkpoint_path, err.message);
        return;
    }
    char *key = NULL;
    long long flags[K];
    usable = ba_h5_get_attr_str(&f, "/", "key", &key, &err) == BA_OK && key &&
             opt->checkpoint_key && strcmp(key, opt->checkpoint_key) == 0 &&
             ba_h5_get_attr_i64(&f, "/", "done", flags, (size_t)K, &err) == BA_OK;
    free(key);
    MPI_Allreduce(MPI_IN_PLACE, &usable, 1, MPI_INT, MPI_MIN, L->world);
    /* The key matched: the contents are still checked, never trusted.
     * Invalid contents (a foreign or corrupted file) mean starting afresh,
     * saying why; rank 0's reason is printed (every rank checks the same
     * shapes and flags, values are checked on each rank's own voxels). */
    int valid = usable;
    char why[BA_ERROR_MESSAGE_MAX] = "";
    if (valid) valid = checkpoint_valid(&f, L, K, flags, why, sizeof why);
    if (usable) MPI_Allreduce(MPI_IN_PLACE, &valid, 1, MPI_INT, MPI_MIN, L->world);
    int read_ok = valid;
    for (int k = 0; valid && k < K && read_ok; k++) {
        if (!flags[k] || vloc == 0 || k % L->n_groups != L->group_index) continue; /* my group's */
        hsize_t start[2] = {(hsize_t)k, (hsize_t)L->v_begin}, count[2] = {1, (hsize_t)vloc};
        float *r = res->r_folds + (size_t)k * vloc, *alpha = res->alpha + (size_t)k * vloc;
        read_ok = ba_h5_read_n(&f, "/r_folds", BA_H5_F32, 2, start, count, r, (size_t)vloc,
                               &err) == BA_OK &&
                  ba_h5_read_n(&f, "/alpha", BA_H5_F32, 2, start, count, alpha, (size_t)vloc,
                               &err) == BA_OK;
        if (!read_ok) snprintf(why, sizeof why, "%s", err.message);
        for (long j = 0; read_ok && j < vloc; j++) {
            /* An r is a correlation; an alpha is one of the positive grid values. */
            if (!(r[j] >= -1.0f && r[j] <= 1.0f)) {
                snprintf(why, sizeof why, "/r_folds[%d, %ld] = %g is not a correlation in "
                         "[-1, 1]", k, L->v_begin + j, (double)r[j]);
                read_ok = 0;
            } else if (!(alpha[j] > 0) || !isfinite(alpha[j])) {
                snprintf(why, sizeof why, "/alpha[%d, %ld] = %g is not a positive alpha", k,
                         L->v_begin + j, (double)alpha[j]);
                read_ok = 0;
            }
        }
    }
    if (valid) {
        /* Rank 0 says why if any rank refused. */
        int first_bad = read_ok ? INT32_MAX : rank;
        MPI_Allreduce(MPI_IN_PLACE, &read_ok, 1, MPI_INT, MPI_MIN, L->world);
        MPI_Allreduce(MPI_IN_PLACE, &first_bad, 1, MPI_INT, MPI_MIN, L->world);
        if (!read_ok) {
            MPI_Bcast(why, (int)sizeof why, MPI_CHAR, first_bad, L->world);
        }
    }
    if (valid && read_ok)
        for (int k = 0; k < K; k++) done[k] = flags[k] != 0;
    else if (usable) {
        memset(res->r_folds, 0, sizeof(float) * (size_t)K * (size_t)vloc);
        memset(res->alpha, 0, sizeof(float) * (size_t)K * (size_t)vloc);
    }
    ba_h5_abandon(&f);
    if (rank == 0 && !opt->quiet && !usable)
        fprintf(stderr, "%s: %s is from other inputs or options; starting afresh\n",
                who, opt->checkpoint_path);
    else if (rank == 0 && !opt->quiet && !(valid && read_ok))
        fprintf(stderr, "%s: %s is not a valid checkpoint (%s); starting afresh\n",
                who, opt->checkpoint_path, why);
}

/* Every finished fold, each group writing its folds for its voxels.
 * Collective over the world; ba_h5_create/close make it atomic. */
static ba_status save_checkpoint(const ba_ridge_layout *L, const ba_ridge_options *opt,
                                 const ba_ridge_result *res, const int *done, ba_error *err)
{
    int K = res->n_folds;
    long vloc = res->v_local;
    ba_h5file f;
    BA_CHECK(ba_h5_create(&f, opt->checkpoint_path, L->world, err));
    hsize_t dims[2] = {(hsize_t)K, (hsize_t)L->v_total};
    ba_status rc = ba_h5_create_dataset(&f, "/r_folds", BA_H5_F32, 2, dims, err);
    if (rc == BA_OK) rc = ba_h5_create_dataset(&f, "/alpha", BA_H5_F32, 2, dims, err);
    for (int k = 0; k < K && rc == BA_OK; k++) {
        bool mine = done[k] && k % L->n_groups == L->group_index && vloc > 0;
        hsize_t start[2] = {(hsize_t)k, (hsize_t)L->v_begin};
        hsize_t count[2] = {mine ? 1 : 0, mine ? (hsize_t)vloc : 0};
        rc = ba_h5_write(&f, "/r_folds", BA_H5_F32, start, count, res->r_folds + (size_t)k * vloc, err);
        if (rc == BA_OK)
            rc = ba_h5_write(&f, "/alpha", BA_H5_F32, start, count, res->alpha + (size_t)k * vloc, err);
    }
    long long flags[K];
    for (int k = 0; k < K; k++) flags[k] = done[k];
    if (rc == BA_OK) rc = ba_h5_set_attr_i64(&f, "/", "done", flags, (size_t)K, err);
    if (rc == BA_OK)
        rc = ba_h5_set_attr_str(&f, "/", "key", opt->checkpoint_key ? opt->checkpoint_key : "", err);
    if (rc != BA_OK) {
        ba_h5_abandon(&f);
        return rc;
    }
    return ba_h5_close(&f, err);
}

ba_status ba_ridge_end_of_round(const ba_ridge_layout *L, const ba_ridge_options *opt,
                                const char *who, bool announce, const ba_ridge_result *res,
                                int *done, int first, int last, ba_error *err)
{
    int K = res->n_folds, rank = 0, saved = 0;
    MPI_Comm_rank(L->world, &rank);
    for (int j = first; j < last; j++) done[j] = 1;
    for (int j = 0; j < K; j++) saved += done[j];
    int stop = opt->stop_requested && *opt->stop_requested;
    MPI_Allreduce(MPI_IN_PLACE, &stop, 1, MPI_INT, MPI_MAX, L->world);
    if (opt->checkpoint_path) {
        BA_CHECK(save_checkpoint(L, opt, res, done, err));
        if (rank == 0 && !opt->quiet && announce)
            fprintf(stderr, "%s: checkpoint: %d of %d folds saved\n", who, saved, K);
    }
    if (!stop || last >= K) return BA_OK;
    if (opt->checkpoint_path)
        return ba_fail(err, BA_ERR_INTERRUPTED, "stopped by a signal after %d of %d folds; they "
                       "are saved in %s: run the same command again to resume", saved, K,
                       opt->checkpoint_path);
    return ba_fail(err, BA_ERR_INTERRUPTED, "stopped by a signal after %d of %d folds", saved, K);
}
