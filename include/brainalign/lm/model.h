/* model.h — causal language models read from Hugging Face checkpoints, for
 * feature extraction: the hidden state of every layer and the
 * log-probability of each next token.
 *
 * One interface for every architecture (config.json's model_type picks
 * the implementation: GPT-2 or LLaMA). Weights stay in the
 * read-only shared map of the safetensors files; float16/bfloat16 weights
 * are widened to float32 right before use, one matrix at a time (GPT-2) or
 * one cache-sized panel of rows at a time (LLaMA). All
 * arithmetic is float32 (log-softmax sums in double), unless bfloat16
 * products are asked for (ba_model_ctx_set_matmul).
 *
 * Two objects, as llama.cpp separates llama_model and llama_context:
 *   - ba_model, the weights: configuration and mapped tensors, immutable
 *     after ba_model_load, so one model may serve any number of contexts
 *     on any threads at once;
 *   - ba_model_ctx, the run state of one forward at a time: activations,
 *     widening scratch, kernel workspace (and later the key/value cache,
 *     saved activations and gradients of fine-tuning).
 * Life cycle: ba_model_load -> ba_model_ctx_create (one per thread)
 * -> [ba_model_ctx_set_matmul] -> [ba_model_ctx_reserve] ->
 * ba_model_forward (any number of windows) -> ba_model_ctx_destroy (every
 * context) -> ba_model_destroy. A context must not run two forwards at
 * once; two contexts on one model give the same bits as one.
 * Matrix products run through OpenBLAS, whose thread count is set by
 * OPENBLAS_NUM_THREADS (which also sets the threads of the bfloat16
 * products below). */
#ifndef BRAINALIGN_MODEL_H
#define BRAINALIGN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "brainalign/core/error.h"
#include "brainalign/lm/model_config.h"
#include "brainalign/lm/safetensors.h"

typedef struct ba_model ba_model;
typedef struct ba_model_ctx ba_model_ctx;

/* Open dir/config.json and the safetensors checkpoint in dir, check every
 * tensor's name, dtype and shape against the configuration. */
ba_status ba_model_load(const char *dir, ba_model **out, ba_error *err);
void ba_model_destroy(ba_model *model);

const ba_model_config *ba_model_get_config(const ba_model *model);
const char *ba_model_dir(const ba_model *model);
/* Number of hidden-state indices: n_layers + 1 (0 = embeddings, ...,
 * n_layers = the last block's output after the final norm). */
int ba_model_n_hidden_states(const ba_model *model);
int ba_model_d_model(const ba_model *model);
int ba_model_vocab_size(const ba_model *model);
/* Longest window one forward accepts (the position table's length). */
int ba_model_max_tokens(const ba_model *model);

/* One window of n_tokens (1 <= n_tokens <= ba_model_max_tokens), positions
 * 0..n_tokens-1, causal attention.
 *
 * hidden: [n_layers_kept][n_tokens][d_model], hidden state layers[k] of
 *   every token in slab k, in Hugging Face's output_hidden_states
 *   convention (0 = the embeddings (GPT-2: token + position), i = after block i,
 *   n_layers = after the last block and the final norm). May be NULL when
 *   n_layers_kept == 0.
 * next_logprob: [n_tokens] or NULL; entry t = log p(tokens[t+1] |
 *   tokens[0..t]) in nats for t < n_tokens - 1; the last entry is NaN
 *   (its next token is not in the window).
 * Work stops after the deepest layer asked for when next_logprob is NULL. */
ba_status ba_model_forward(ba_model_ctx *ctx, const int32_t *tokens, size_t n_tokens,
                           const int *layers, int n_layers_kept, float *hidden,
                           float *next_logprob, ba_error *err);

/* ---- contexts --------------------------------------------------------------------- */

/* A context on `model` (which must outlive it), float32 products, no
 * buffers yet (the first forward, or ba_model_ctx_reserve, allocates). */
ba_status ba_model_ctx_create(const ba_model *model, ba_model_ctx **out, ba_error *err);
/* Frees everything the context owns; NULL is accepted. */
void ba_model_ctx_destroy(ba_model_ctx *ctx);
const ba_model *ba_model_ctx_model(const ba_model_ctx *ctx);
/* Buffers for windows of up to n_tokens tokens (1 <= n_tokens <=
 * ba_model_max_tokens) with the context's current matrix-product precision
 * and OpenBLAS thread count, so that later forwards of at most that many
 * tokens allocate nothing. Kept when already large enough; a failure
 * leaves the context usable (and empty). ba_model_forward calls it for
 * its window. */
ba_status ba_model_ctx_reserve(ba_model_ctx *ctx, size_t n_tokens, ba_error *err);

/* ---- precision of the matrix products ----------------------------------------- */

typedef enum {
    /* Default: float32 products, half-precision weights widened to float32
     * (exact) right before use. */
    BA_MATMUL_F32 = 0,
    /* bfloat16 products for the LLaMA matrices stored as BF16: the input of
     * each such product (activations) is rounded to bfloat16 and the
     * products are summed in float32 (AVX512-BF16 vdpbf16ps), as PyTorch
     * computes a bf16 model, about twice as fast. Everything else stays
     * float32: norms, rotary embeddings, attention, softmax, the residual
     * stream, and F32/F16 matrices of a checkpoint that mixes dtypes.
     * LLaMA only (GPT-2's Conv1D weights are stored [in][out]); needs a
     * CPU with AVX512-BF16. */
    BA_MATMUL_BF16,
} ba_matmul;

/* "f32" / "bf16". */
ba_status ba_matmul_parse(const char *text, ba_matmul *mode, ba_error *err);
const char *ba_matmul_name(ba_matmul mode);

/* The precision of the context's later forwards (BA_MATMUL_F32 after
 * ba_model_ctx_create). BA_MATMUL_BF16 is refused (BA_ERR_USAGE, the
 * context left as it was) where it would not apply, so that nothing computed in
 * float32 is labelled bf16: for GPT-2, for a checkpoint without BF16
 * matrices, and on a CPU without AVX512-BF16 (ba_bf16_dot_available()
 * false, which BRAINALIGN_NO_BF16_DOT forces). */
ba_status ba_model_ctx_set_matmul(ba_model_ctx *ctx, ba_matmul mode, ba_error *err);
ba_matmul ba_model_ctx_get_matmul(const ba_model_ctx *ctx);

/* ---- random checkpoints (tests, benchmarks, synthetic studies) ------------- */

typedef struct {
    ba_arch arch;
    int n_layers, d_model, n_heads;
    int d_ff;          /* 0: the architecture's default (4 d_model for GPT-2,
                          LLaMA's 2/3 of that rounded up to 256: 11008 for 4096) */
    int vocab_size;    /* 0: the size of the vocabulary in vocab_from       */
    int n_positions;
    ba_dtype dtype;    /* F32, F16 or BF16                                  */
    double init_std;   /* 0: 0.02, GPT-2's; larger makes tests sharper      */
    uint64_t seed;
    int n_shards;      /* 1: model.safetensors; K > 1: K shards + index      */
    const char *vocab_from; /* tokenizer directory to copy, or NULL          */
    /* LLaMA (0 everywhere gives the defaults):                               */
    int n_kv_heads;    /* 0: n_heads; fewer, dividing it: grouped-query      */
    double rope_theta; /* 0: 10000                                           */
    double norm_eps;   /* 0: 1e-5 (layer_norm_epsilon / rms_norm_eps)        */
    int tie_embeddings; /* 0: the architecture's default (GPT-2 tied, LLaMA
                           untied: lm_head.weight written); 1 tied; -1 untied */
} ba_random_checkpoint;

/* Write config.json, the weights (random, deterministic in seed and
 * tensor name, shaped like the architecture's initialisation) in the exact
 * Hugging Face layout, and the tokenizer files of vocab_from, into a new
 * directory out_dir (built under a temporary name and renamed at the end;
 * out_dir must not exist yet). */
ba_status ba_model_write_random(const ba_random_checkpoint *spec, const char *out_dir,
                                ba_error *err);

#endif
