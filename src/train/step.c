/* step.c — the data-parallel optimizer step (see brainalign/train/step.h). */
#include "brainalign/train/step.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/parallel/parallel.h"

/* Floats of one all-gather round per rank (bounds the receive buffer). */
#define STEP_CHUNK ((size_t)1 << 18)

void ba_train_step_share(size_t batch, int grad_accum, int micro, int rank, int n_ranks,
                         size_t *begin, size_t *end)
{
    size_t per = batch / (size_t)grad_accum;
    long b = 0, e = 0;
    ba_split_range((long)per, n_ranks, rank, &b, &e);
    *begin = (size_t)micro * per + (size_t)b;
    *end = (size_t)micro * per + (size_t)e;
}

/* Sum grad[n] over the ranks of comm in rank order, in place on every
 * rank. recv: [n_ranks * STEP_CHUNK] scratch. */
static ba_status sum_over_ranks(MPI_Comm comm, int n_ranks, float *grad, size_t n, float *recv,
                                const char *name, ba_error *err)
{
    for (size_t at = 0; at < n; at += STEP_CHUNK) {
        size_t len = n - at < STEP_CHUNK ? n - at : STEP_CHUNK;
        int mpi = MPI_Allgather(grad + at, (int)len, MPI_FLOAT, recv, (int)len, MPI_FLOAT, comm);
        if (mpi != MPI_SUCCESS) {
            ba_mpi_check(mpi, "gradient all-gather", err);
            return ba_context(err, "summing the gradient of %s over ranks", name);
        }
        for (size_t i = 0; i < len; i++) {
            float sum = recv[i];
            for (int r = 1; r < n_ranks; r++) sum += recv[(size_t)r * len + i];
            grad[at + i] = sum;
        }
    }
    return BA_OK;
}

ba_status ba_train_step_gradients(const ba_train_step_setup *s, int64_t step,
                                  const size_t *indices, size_t batch, float *const *d_embeds,
                                  ba_train_step_result *res, ba_error *err)
{
    ba_status rc = BA_OK;
    int rank = 0, n_ranks = 1;
    MPI_Comm_rank(s->comm, &rank);
    MPI_Comm_size(s->comm, &n_ranks);
    float *recv = NULL;
    double *losses = NULL;
    if (s->grad_accum < 1 || batch % (size_t)s->grad_accum != 0)
        rc = ba_fail(err, BA_ERR_USAGE, "a batch of %zu samples cannot be split into %d "
                     "micro-batches (--grad-accum must divide --batch)", batch, s->grad_accum);
    /* The global token count: every rank knows every sample. */
    int64_t tokens = 0;
    for (size_t k = 0; rc == BA_OK && k < batch; k++) {
        if (indices[k] >= s->data->n) {
            rc = ba_fail(err, BA_ERR_INTERNAL, "sample index %zu of a dataset of %zu",
                         indices[k], s->data->n);
            break;
        }
        tokens += (int64_t)s->data->samples[indices[k]].n_target;
    }
    if (rc == BA_OK && tokens == 0)
        rc = ba_fail(err, BA_ERR_VALUE, "the batch has no unmasked token");
    double loss_sum = 0.0;
    if (rc == BA_OK) {
        for (size_t i = 0; i < s->n_params; i++)
            memset(s->params[i].grad, 0, s->params[i].n * sizeof(float));
        float scale = (float)(1.0 / (double)tokens);
        int d = s->d_model;
        for (int m = 0; rc == BA_OK && m < s->grad_accum; m++) {
            size_t b = 0, e = 0;
            ba_train_step_share(batch, s->grad_accum, m, rank, n_ranks, &b, &e);
            for (size_t k = b; k < e; k++) {
                const ba_sft_sample *smp = &s->data->samples[indices[k]];
                float *de = d_embeds ? d_embeds[k] : NULL;
                if (de) memset(de, 0, smp->n * (size_t)d * sizeof *de);
                double ls = 0.0;
                size_t cnt = 0;
                uint64_t position = (uint64_t)step * batch + k;
                rc = s->sample_fn(s->sample_user, indices[k], position, scale, &ls, &cnt, de,
                                  err);
                if (rc != BA_OK) {
                    ba_context(err, "sample %zu of the data (position %zu of the batch)",
                               indices[k] + 1, k);
                    break;
                }
                if (cnt != smp->n_target) {
                    rc = ba_fail(err, BA_ERR_INTERNAL,
                                 "sample %zu: the model counted %zu targets, the data %zu",
                                 indices[k] + 1, cnt, smp->n_target);
                    break;
                }
                loss_sum += ls;
            }
        }
    }
    rc = ba_mpi_agree(s->comm, rc, err);
    if (rc != BA_OK) return rc;

    BA_ALLOC(losses, n_ranks, "per-rank losses", done);
    BA_ALLOC(recv, (size_t)n_ranks * STEP_CHUNK, "gradient all-gather buffer", done);
done:
    rc = ba_mpi_agree(s->comm, rc, err);
    if (rc != BA_OK) goto out;
    BA_TRY(ba_mpi_check(MPI_Allgather(&loss_sum, 1, MPI_DOUBLE, losses, 1, MPI_DOUBLE, s->comm),
                        "loss all-gather", err), out);
    double total = 0.0;
    for (int r = 0; r < n_ranks; r++) total += losses[r];
    if (n_ranks > 1) {
        for (size_t i = 0; i < s->n_params; i++)
            BA_TRY(sum_over_ranks(s->comm, n_ranks, s->params[i].grad, s->params[i].n, recv,
                                  s->params[i].name, err), out);
    }
    res->loss = total / (double)tokens;
    res->tokens = tokens;
    if (!isfinite(res->loss))
        rc = ba_fail(err, BA_ERR_VALUE, "the loss of the batch is not finite (%g)", res->loss);
out:
    free(recv);
    free(losses);
    return rc;
}

ba_status ba_train_step_update(const ba_train_step_setup *s, double lr,
                               ba_train_step_result *res, ba_error *err)
{
    double norm = 0.0;
    BA_CHECK(ba_grad_clip(s->params, s->n_params, s->max_grad_norm, &norm, err));
    BA_CHECK(ba_adamw_step(s->opt, lr, err));
    res->grad_norm = norm;
    res->lr = lr;
    return BA_OK;
}

ba_status ba_train_step(const ba_train_step_setup *s, int64_t step, const size_t *indices,
                        size_t batch, double lr, ba_train_step_result *res, ba_error *err)
{
    BA_CHECK(ba_train_step_gradients(s, step, indices, batch, NULL, res, err));
    return ba_train_step_update(s, lr, res, err);
}
