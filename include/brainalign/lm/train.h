/* train.h — the model's training pass (fine-tuning, issue 12): the
 * trainable tensors of a model (LoRA adapters, or the last K blocks in full),
 * a forward over one sequence that keeps what its backward needs, and the
 * backward to those tensors, op by op (lm/ops.h's forward/backward pairs).
 *
 * No MPI here: the data-parallel step, the optimiser and the data live in
 * the train layer (include/brainalign/train/), which drives these calls.
 *
 * Life cycle:
 *   ba_model_load -> ba_trainable_lora | ba_trainable_freeze
 *   -> ba_model_ctx_create -> ba_model_ctx_attach(ctx, trainable)
 *   -> per optimizer step: ba_trainable_zero_grad, then for each sequence
 *      of this rank's share of the batch ba_model_train_sequence (which ADDS
 *      grad_scale * d loss_sum / d param into every trainable gradient), the
 *      optimiser updates ba_trainable_tensor(t, i)->value in place
 *   -> ba_model_ctx_destroy -> ba_trainable_destroy -> ba_model_destroy.
 * Inference forwards (ba_model_forward) of a context with an attached set
 * apply it too (LoRA at the one weight product; freeze: the master copies),
 * so features of a model in training are those of the tuned model. */
#ifndef BRAINALIGN_LM_TRAIN_H
#define BRAINALIGN_LM_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brainalign/core/error.h"
#include "brainalign/lm/adapter.h"
#include "brainalign/lm/model.h"

/* One trainable tensor: float32 value and gradient, both [n] (row-major in
 * `shape`); `name` is the name it is written under (PEFT names for LoRA:
 * base_model.model.<module path>.lora_A.weight; Hugging Face names for
 * freeze: h.11.attn.c_attn.weight, model.layers.31.mlp.up_proj.weight). */
typedef struct {
    const char *name;
    float *value;
    float *grad;
    size_t n;
    int rank;
    int64_t shape[4];
} ba_train_tensor;

typedef struct ba_trainable ba_trainable;

/* LoRA: the adapter's A and B are the trainable tensors (the adapter stays
 * the caller's and is updated in place: ba_adapter_save writes the result).
 * The base weights are only read. dropout in [0, 1): PEFT's lora_dropout
 * on the adapter's input, drawn from a stream seeded by `seed` (and the
 * sequence's position in the data, so that the draw does not depend on
 * which rank trains the sequence). */
ba_status ba_trainable_lora(const ba_model *model, ba_adapter *adapter, double dropout,
                            uint64_t seed, ba_trainable **out, ba_error *err);
/* Fresh LoRA weights as PEFT initialises them: A Kaiming-uniform with
 * a = sqrt(5) (bound 1/sqrt(in)), B = 0, from a stream seeded by `seed`. */
ba_status ba_adapter_init_peft(ba_adapter *adapter, uint64_t seed, ba_error *err);
/* Freeze: every tensor of the last k blocks (float32 master copies,
 * widened from F16/BF16 checkpoints) is trained; embeddings, the final
 * norm and lm_head stay frozen; the backward stops at block L - k.
 * 1 <= k <= the number of blocks. */
ba_status ba_trainable_freeze(const ba_model *model, int k, ba_trainable **out, ba_error *err);
void ba_trainable_destroy(ba_trainable *t);

size_t ba_trainable_count(const ba_trainable *t);
/* i < ba_trainable_count(t), in a fixed order (layer-major). */
const ba_train_tensor *ba_trainable_tensor(const ba_trainable *t, size_t i);
void ba_trainable_zero_grad(ba_trainable *t);
/* The dropout stream of the next ba_model_train_sequence calls: the
 * sequence's position in the data (so that the draw does not depend on
 * which rank trains it); 0 until set. The mask is a pure function of
 * (seed, key, module, token position, feature), so a recomputed block
 * draws the same one. */
void ba_trainable_set_sequence(ba_trainable *t, uint64_t sequence_key);

/* The context's forwards apply `t` from now on (NULL detaches). The set
 * must outlive the attachment. */
ba_status ba_model_ctx_attach(ba_model_ctx *ctx, ba_trainable *t, ba_error *err);
/* Inference only: apply a LoRA adapter (not trained) to the context's
 * forwards, as `features --adapter` does (NULL removes it). */
ba_status ba_model_ctx_set_adapter(ba_model_ctx *ctx, const ba_adapter *adapter, ba_error *err);

/* Forward of tokens[n] (n <= ba_model_max_tokens) saving what the backward
 * needs, or with `recompute`, only each block's input (the block's
 * activations recomputed inside the backward); the loss over labels[n]
 * (Hugging Face's shift: position t predicts labels[t + 1]; labels[0] is
 * never a target; BA_LABEL_IGNORE masks a position); then the backward,
 * ADDING grad_scale * d(loss_sum)/d(param) into every gradient of the
 * attached set, and into d_input_embeds [n][d] when it is not NULL (the
 * gradient of the token embeddings: torch's inputs_embeds.grad).
 * *loss_sum: the sum of the unmasked token losses (nats, double);
 * *count: how many. A non-finite loss or gradient is an error (BA_ERR_VALUE)
 * naming the sequence's first token position, and leaves the gradients
 * unspecified (the caller stops). */
ba_status ba_model_train_sequence(ba_model_ctx *ctx, const int32_t *tokens,
                                  const int32_t *labels, size_t n, float grad_scale,
                                  bool recompute, double *loss_sum, size_t *count,
                                  float *d_input_embeds, ba_error *err);

/* Write a complete Hugging Face checkpoint directory `dir` (which must not
 * exist; written under a temporary name and renamed): config.json, the
 * tokenizer files, model.safetensors with every tensor of the model, the
 * tensors of `t` (freeze) in float32 and the others as stored. `features`
 * reads it like any model. */
ba_status ba_model_save_trained(const ba_model *model, const ba_trainable *t, const char *dir,
                                ba_error *err);
/* The same with W + (lora_alpha / r) B A merged into every adapted weight
 * (transposed for GPT-2's Conv1D), float32 for the merged tensors. */
ba_status ba_model_save_merged(const ba_model *model, const ba_adapter *adapter,
                               const char *dir, ba_error *err);

#endif
