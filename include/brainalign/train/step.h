/* step.h — the data-parallel optimizer step of fine-tuning.
 *
 * One step takes the B samples (global batch, indices into the dataset)
 * of an optimizer step, split into `grad_accum` micro-batches of B /
 * grad_accum consecutive samples; each micro-batch is dealt to the ranks
 * in contiguous ranges (ba_split_range), so rank r trains the same
 * samples whatever the thread count. Every rank accumulates
 *   grad_scale * d(loss_sum of its samples) / d(param),
 *   grad_scale = 1 / (unmasked tokens of the whole global batch)
 * (known on every rank from the dataset) in its own gradients with
 * ba_model_train_sequence, in sample order. The partial gradients are then
 * summed over ranks in rank order (chunked all-gather, then p_0 + p_1 +
 * ... in float32 on every rank), so every rank holds the same gradient:
 * bitwise the same for the same rank count, and the same up to float32
 * rounding of the partial sums (<= 1e-6 relative) for another one. The
 * loss is the sum of the token losses (double, summed in rank order) over
 * the global count. Then the global gradient norm before clipping
 * (ba_grad_clip), the clipping, and one AdamW step with the step's
 * learning rate.
 *
 * Every rank agrees on the status before each collective (ba_mpi_agree):
 * a failure on any rank (a non-finite loss, ...) stops all of them with
 * the message of the lowest failing rank. */
#ifndef BRAINALIGN_TRAIN_STEP_H
#define BRAINALIGN_TRAIN_STEP_H

#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brainalign/core/error.h"
#include "brainalign/lm/train.h"
#include "brainalign/train/adamw.h"
#include "brainalign/train/data.h"

/* The gradient of one sample: ADD grad_scale * d(loss_sum)/d(param) into
 * every gradient of the step's parameters, and (when d_embeds is not NULL)
 * the gradient of the sample's token embeddings [n][d_model] into
 * d_embeds; *loss_sum: the sum of its token losses (nats), *count: how
 * many. `sample` indexes the dataset; `position` is the sample's place in
 * the endless stream of samples (step * batch + k: the key of its dropout
 * draw, the same whatever the rank that trains it). */
typedef ba_status (*ba_train_sample_fn)(void *user, size_t sample, uint64_t position,
                                        float grad_scale,
                                        double *loss_sum, size_t *count, float *d_embeds,
                                        ba_error *err);

/* The model's training pass as a sample function: `user` is a
 * ba_train_model_sample (in step_model.c, so that this file needs no
 * model). */
typedef struct {
    ba_model_ctx *ctx;    /* with `trainable` attached */
    ba_trainable *trainable;
    const ba_sft_dataset *data;
    bool recompute;
} ba_train_model_sample;
ba_status ba_train_model_sample_fn(void *user, size_t sample, uint64_t position, float grad_scale,
                                   double *loss_sum, size_t *count, float *d_embeds,
                                   ba_error *err);

typedef struct {
    MPI_Comm comm;
    ba_train_sample_fn sample_fn; /* e.g. ba_train_model_sample_fn       */
    void *sample_user;
    ba_adamw *opt;              /* over `params`                          */
    const ba_param_ref *params; /* [n_params]: the trainable tensors, in
                                   ba_trainable_tensor order              */
    size_t n_params;
    const ba_sft_dataset *data; /* the samples' lengths and target counts */
    int d_model;                /* width of the embedding gradients       */
    int grad_accum;             /* >= 1, dividing the batch               */
    double max_grad_norm;       /* 0: no clipping                         */
} ba_train_step_setup;

typedef struct {
    double loss;      /* mean token loss of the global batch (before the update) */
    double lr;        /* the learning rate of the update                         */
    double grad_norm; /* global gradient norm before clipping                    */
    int64_t tokens;   /* unmasked tokens of the global batch                     */
} ba_train_step_result;

/* The samples of micro-batch `micro` that rank `rank` of `n_ranks` trains:
 * positions [*begin, *end) of the global batch. */
void ba_train_step_share(size_t batch, int grad_accum, int micro, int rank, int n_ranks,
                         size_t *begin, size_t *end);

/* The gradient half of 0-based optimizer step `step`: zero, accumulate
 * this rank's samples of indices[batch], sum over ranks. Fills res->loss and res->tokens.
 * d_embeds: NULL, or [batch] pointers; for the samples this rank trains,
 * d_embeds[k] (when not NULL, [n_k][d_model], zeroed here) receives the
 * gradient of sample k's token embeddings (torch's inputs_embeds.grad of
 * the mean loss); the others are untouched. Collective. */
ba_status ba_train_step_gradients(const ba_train_step_setup *s, int64_t step,
                                  const size_t *indices, size_t batch, float *const *d_embeds,
                                  ba_train_step_result *res, ba_error *err);

/* The update half: global norm, clipping, AdamW with learning rate lr.
 * Fills res->grad_norm and res->lr. The same on every rank (no
 * communication: the gradients are already the same everywhere). */
ba_status ba_train_step_update(const ba_train_step_setup *s, double lr,
                               ba_train_step_result *res, ba_error *err);

/* Both halves. Collective. */
ba_status ba_train_step(const ba_train_step_setup *s, int64_t step, const size_t *indices,
                        size_t batch, double lr, ba_train_step_result *res, ba_error *err);

#endif
