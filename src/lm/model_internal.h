/* model_internal.h — what an architecture implementation (model_<arch>.c)
 * provides to the generic model layer (model.c), and the helpers model.c
 * offers them. Not a public header. */
#ifndef BRAINALIGN_MODEL_INTERNAL_H
#define BRAINALIGN_MODEL_INTERNAL_H

#include <stdbool.h>

#include "brainalign/core/limits.h"
#include "brainalign/kernels/kernels.h"
#include "brainalign/lm/model.h"

/* How the random-checkpoint writer fills a tensor. */
typedef enum {
    BA_INIT_NORMAL,      /* N(0, std^2)                                   */
    BA_INIT_NEAR_ONE,    /* 1 + N(0, std^2): norm weights, not trivially 1 */
    BA_INIT_CAUSAL_MASK, /* lower-triangular ones over the last two dims  */
} ba_init_kind;

typedef struct {
    char name[128];
    int rank;
    int64_t shape[4];
    ba_init_kind init;
    double std;
} ba_random_tensor;

typedef struct {
    ba_arch arch;
    /* Bind the checkpoint's tensors (checked against model->cfg), widen
     * what must be widened once (1-D weights), set model->impl and
     * model->widen_floats. Everything it builds is read-only afterwards. */
    ba_status (*load)(ba_model *model, ba_error *err);
    void (*destroy)(ba_model *model);
    /* Arguments are already checked by ba_model_forward, and the context's
     * buffers hold the window (ba_model_ctx_reserve). Reads ctx->model
     * only, writes ctx only. */
    ba_status (*forward)(ba_model_ctx *ctx, const int32_t *tokens, size_t n_tokens,
                         const int *layers, int n_layers_kept, float *hidden,
                         float *next_logprob, ba_error *err);
    /* The tensors of a checkpoint of this architecture, in file order,
     * with how to initialise them (init_std: the weights' standard
     * deviation); *out is malloc'd. */
    ba_status (*random_layout)(const ba_model_config *cfg, double init_std,
                               ba_random_tensor **out, size_t *n, ba_error *err);
    /* Activation buffers this architecture needs besides the common ones. */
    bool gated_mlp; /* a second [n][d_ff] buffer (SwiGLU's up projection)  */
    bool rotary;    /* rotary tables [n][d_head / 2]                      */
} ba_model_ops;

/* The weights: immutable once ba_model_load returns, so any number of
 * contexts (on any threads) may read them at once. */
struct ba_model {
    ba_model_config cfg;
    char dir[BA_PATH_MAX];
    ba_checkpoint *ckpt;
    const ba_model_ops *ops;
    void *impl;
    /* Floats of the widening scratch a context needs for this model's
     * half-precision matrices (ba_weight_product); 0 when all are direct. */
    size_t widen_floats;
};

/* Output layer + log-softmax over the vocabulary in chunks of `chunk` rows
 * (streaming log-sum-exp), so that no [n][vocab] logits are ever held. */
typedef struct {
    size_t chunk;            /* vocabulary rows per step                    */
    float *logits;           /* [n][chunk]                                  */
    double *lse_max, *lse_sum; /* [n]                                       */
    float *target;           /* [n]: the logit of each next token           */
} ba_logprob_workspace;

/* Vocabulary rows per step of the output layer: bounds the logits buffer
 * to n_tokens x BA_VOCAB_CHUNK floats whatever the vocabulary size. */
#define BA_VOCAB_CHUNK 2048

/* The run state of one forward at a time on one model (see model.h). All
 * buffers are [capacity][width], row-major, grown by ba_model_ctx_reserve
 * to the longest window seen. */
struct ba_model_ctx {
    const ba_model *model;
    ba_matmul matmul;   /* ba_model_ctx_set_matmul                          */
    size_t capacity;    /* tokens the activation buffers hold (0: none yet)  */
    float *x;           /* [n][d] residual stream                          */
    float *a;           /* [n][d] normalised activations, block outputs    */
    float *qkv;         /* [n][(heads + 2 kv_heads) d_head]: q | k | v      */
    float *att;         /* [n][heads d_head] attention output              */
    float *ff;          /* [n][d_ff] MLP activations (LLaMA: the gate)      */
    float *ff2;         /* [n][d_ff] LLaMA's up projection (gated_mlp)      */
    float *scores;      /* ba_attention_scratch_floats(capacity)           */
    float *rope_cos, *rope_sin; /* [n][d_head / 2] (rotary)                */
    ba_logprob_workspace lp;    /* chunk = min(vocab, BA_VOCAB_CHUNK)       */
    float *wscratch;    /* [model->widen_floats]: widened weights           */
    void *kernel_ws;    /* packed operands of the bf16 kernel              */
    size_t kernel_ws_bytes;
    /* Prepared for fine-tuning and generation (issue 12), NULL until then:
     * the key/value cache of earlier positions, the activations a backward
     * pass reads, and the gradients of the trainable weights. */
    void *kv_cache, *saved_activations, *gradients;
};

extern const ba_model_ops ba_gpt2_ops;
extern const ba_model_ops ba_llama_ops;

/* ---- weight access (model.c) ---------------------------------------------- */

/* A tensor of a supported float dtype (F32, F16, BF16) and exactly the given
 * shape; errors name the tensor, the directory and what was expected. */
ba_status ba_model_expect_tensor(const ba_model *model, const char *name, int rank,
                                 const int64_t *shape, const ba_tensor **out, ba_error *err);

/* True when the tensor can be read as float32 in place (F32 and aligned). */
bool ba_weight_is_direct(const ba_tensor *t);

/* Elements [first, first + count) of a weight as float32: a pointer into
 * the map when direct, otherwise widened into `scratch` (>= count floats). */
const float *ba_weight_f32(const ba_tensor *t, size_t first, size_t count, float *scratch);

/* ---- the weight product (model.c) ------------------------------------------ */

/* A LoRA adapter of one weight (issue 12): y += (alpha / r) (x A^T) B^T
 * with A [r][in], B [out][r]. Not implemented yet: every weight has
 * lora == NULL, and ba_weight_product refuses any other value. */
typedef struct ba_lora ba_lora;

/* A matrix of the model as the products see it. The tensor is 2-D, stored
 * [out][in] (BA_WEIGHT_OUT_IN, nn.Linear, embeddings used as output layer)
 * or [in][out] (BA_WEIGHT_IN_OUT, GPT-2's Conv1D), of dtype F32, F16 or
 * BF16; the weight covers output rows [out0, out0 + out) of it (the whole
 * tensor but for the vocabulary chunks of ba_weight_rows). */
typedef struct {
    const ba_tensor *tensor;
    ba_weight_layout layout;
    size_t in, out, out0;
    const float *bias;    /* [out] float32 (already offset by out0), or NULL */
    const ba_lora *lora;  /* the adapter applied at this product: NULL      */
} ba_weight;

/* The whole tensor t as a weight of the given layout. */
ba_weight ba_weight_of(const ba_tensor *t, ba_weight_layout layout, const float *bias);
/* Output rows [first, first + count) of w (OUT_IN only: a row range of an
 * [in][out] matrix is not contiguous). */
ba_weight ba_weight_rows(const ba_weight *w, size_t first, size_t count);

/* y[i][0..out) (row stride ldy) = x[i][0..in) (row stride ldx) W (+ bias)
 * (+ y's previous value when `accumulate`): every matrix product of every
 * architecture goes through here, and this is where LoRA adapters will
 * apply (w->lora). F32 weights are used in place; half-precision ones are
 * widened into ctx->wscratch, OUT_IN a panel of rows at a time (all rows
 * at once when they fit), IN_OUT whole (a panel of its rows would split
 * the sum over inputs), and multiplied in float32. With BA_MATMUL_BF16 a
 * BF16 OUT_IN weight without bias is used as stored (ba_linear_bf16, x
 * rounded to bfloat16, ctx->kernel_ws as its workspace; one at an odd
 * address is copied a panel at a time into the scratch first). Errors: a
 * LoRA adapter (not implemented), a scratch or kernel workspace smaller
 * than the product needs (a context not reserved for this model). */
ba_status ba_weight_product(ba_model_ctx *ctx, const ba_weight *w, const float *x, size_t n,
                            size_t ldx, float *y, size_t ldy, int accumulate, ba_error *err);

/* Floats of the widening scratch w needs, given the panel size a context
 * offers for OUT_IN weights (0 when w is direct). */
size_t ba_weight_widen_floats(const ba_weight *w, size_t panel_floats);

/* Copy state [n][d] into slab k of hidden for every k with layers[k] == index. */
void ba_model_store_hidden(const float *state, int index, size_t n, size_t d, const int *layers,
                           int n_kept, float *hidden);

/* out[t] = log p(tokens[t+1] | ..t) for t < n - 1 from the final states
 * h[n][d] and the output layer head ([vocab][d], OUT_IN, no bias),
 * through ba_weight_product a chunk of the vocabulary at a time, with the
 * context's logits workspace; out[n-1] = NaN. */
ba_status ba_model_next_logprobs(ba_model_ctx *ctx, const ba_weight *head, const float *h,
                                 size_t n, const int32_t *tokens, float *out, ba_error *err);

#endif
