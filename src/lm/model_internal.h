/* model_internal.h — what an architecture implementation (model_<arch>.c)
 * provides to the generic model layer (model.c), and the helpers model.c
 * offers them. Not a public header. */
#ifndef BRAINALIGN_MODEL_INTERNAL_H
#define BRAINALIGN_MODEL_INTERNAL_H

#include <stdbool.h>

#include "brainalign/core/limits.h"
#include "brainalign/kernels/kernels.h"
#include "brainalign/lm/adapter.h"
#include "brainalign/lm/model.h"
#include "brainalign/lm/train.h"

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
    /* Training (issue 12). attach: build ctx->arch_blocks, the context's
     * copy of the model's per-block descriptors with the attached set
     * applied (LoRA hooks in the ba_weights, freeze masters in place of the
     * mapped tensors, gradient pointers), from ctx->loras and
     * ctx->trainable; NULL arch_blocks means the model's own. train: the
     * forward/backward of ba_model_train_sequence (arguments checked; the
     * labels as given: position t predicts labels[t + 1], so the
     * cross-entropy runs over rows 0..n-2 with targets labels + 1). */
    ba_status (*attach)(ba_model_ctx *ctx, ba_error *err);
    ba_status (*train)(ba_model_ctx *ctx, const int32_t *tokens, const int32_t *labels,
                       size_t n, float grad_scale, bool recompute, double *loss_sum,
                       size_t *count, float *d_input_embeds, ba_error *err);
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
    /* Prepared for generation, NULL until then: the key/value cache. */
    void *kv_cache;
    /* Training (train.c): the activations a backward pass reads, one
     * float arena carved by the architecture per call ([saved_floats]). */
    float *saved_activations;
    size_t saved_floats;
    float *head_f32;    /* [vocab][d] the output layer widened (half lm_head) */
    /* LoRA at the weight product: loras [n_layers][BA_LORA_N_SITES] (A ==
     * NULL: not adapted), from ba_model_ctx_set_adapter or _attach. */
    struct ba_lora *loras;
    int lora_r;         /* the adapter's r (0: none)                          */
    size_t lora_in, lora_out; /* widest input / output of an adapted product */
    float *lora_u;      /* [capacity][lora_r]  x A^T                          */
    float *lora_du;     /* [capacity][lora_r]  its gradient                   */
    float *lora_x;      /* [capacity][lora_in] the dropped-out input / grad   */
    float *lora_t;      /* [BA_LORA_ROWS][lora_out] scale (x A^T) B^T rows    */
    size_t lora_capacity; /* tokens the lora buffers hold                     */
    void *arch_blocks;  /* the architecture's blocks with the set applied     */
    ba_trainable *trainable;   /* attached set (ba_model_ctx_attach), or NULL */
    const ba_adapter *adapter; /* inference adapter (set_adapter), or NULL    */
    bool training;      /* inside ba_model_train_sequence: dropout applies    */
    uint64_t dropout_key; /* the sequence's dropout stream                    */
};

/* Rows of the LoRA delta computed per step (bounds ctx->lora_t). */
#define BA_LORA_ROWS 64

/* A LoRA adapter of one weight: y += scale (drop(x) A^T) B^T. */
struct ba_lora {
    const float *A;     /* [r][in]                                            */
    const float *B;     /* [out][r]                                           */
    float *dA, *dB;     /* gradients ([r][in], [out][r]) or NULL (inference)  */
    int r;
    float scale;        /* lora_alpha / r                                     */
    float dropout;      /* in [0, 1): applied inside train_sequence only      */
    uint64_t key;       /* the module's dropout stream (layer, site)          */
};

/* The trainable set (train.c); arch files read it through these fields. */
struct ba_trainable {
    const ba_model *model;
    bool is_lora;
    ba_adapter *adapter;        /* LoRA: the caller's, updated in place       */
    double dropout;
    uint64_t seed, sequence_key;
    int k;                      /* freeze: trained blocks                     */
    int lowest;                 /* the lowest block with a trainable tensor   */
    ba_train_tensor *tensors;   /* [count]                                    */
    ba_tensor *masters;         /* freeze: [count] the masters as F32 tensors */
    size_t count;
    char (*names)[192];         /* [count]                                    */
    float *values, *grads;      /* arenas                                     */
    size_t floats;
};

/* Index of the trainable tensor of that (checkpoint) name, or -1. */
long ba_trainable_find(const ba_trainable *t, const char *name);

/* Gradients of one weight product's weight (freeze masters, F32), or NULL. */
typedef struct {
    float *dw; /* the weight's layout                                          */
    float *db; /* [out]                                                        */
} ba_weight_grad;

/* The arena of the training pass: at least `floats` floats (grown, never
 * shrunk; its contents are not kept across a growth). */
ba_status ba_ctx_train_arena(ba_model_ctx *ctx, size_t floats, ba_error *err);


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

/* A LoRA adapter of one weight (struct above): y += (alpha / r) (x A^T) B^T
 * with A [r][in], B [out][r]. */
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
    const ba_lora *lora;  /* the adapter applied at this product, or NULL   */
} ba_weight;

/* The whole tensor t as a weight of the given layout. */
ba_weight ba_weight_of(const ba_tensor *t, ba_weight_layout layout, const float *bias);
/* Output rows [first, first + count) of w (OUT_IN only: a row range of an
 * [in][out] matrix is not contiguous). */
ba_weight ba_weight_rows(const ba_weight *w, size_t first, size_t count);

/* y[i][0..out) (row stride ldy) = x[i][0..in) (row stride ldx) W (+ bias)
 * (+ y's previous value when `accumulate`): every matrix product of every
 * architecture goes through here, and this is where LoRA adapters
 * apply (w->lora). F32 weights are used in place; half-precision ones are
 * widened into ctx->wscratch, OUT_IN a panel of rows at a time (all rows
 * at once when they fit), IN_OUT whole (a panel of its rows would split
 * the sum over inputs), and multiplied in float32. With BA_MATMUL_BF16 a
 * BF16 OUT_IN weight without bias is used as stored (ba_linear_bf16, x
 * rounded to bfloat16, ctx->kernel_ws as its workspace; one at an odd
 * address is copied a panel at a time into the scratch first). LoRA
 * (w->lora): after the base product, y += delta with delta = scale
 * (drop(x) A^T) B^T computed BA_LORA_ROWS rows at a time in float32, each
 * zero of delta made -0.0f so that an adapter with B = 0 gives the base
 * product bitwise (y + -0.0f == y for every y, -0.0f included). Errors: a
 * scratch or kernel workspace smaller than the product needs (a context
 * not reserved for this model). */
ba_status ba_weight_product(ba_model_ctx *ctx, const ba_weight *w, const float *x, size_t n,
                            size_t ldx, float *y, size_t ldy, int accumulate, ba_error *err);

/* Backward of ba_weight_product given its input x (row stride ldx) and
 * dy [n][out] (row stride ldy): dx [n][in] (row stride lddx, NULL: not
 * needed) += dy W^T (half weights widened as in the forward, a bf16
 * product's rounding of x straight through), g->dw / g->db += (freeze; g
 * NULL or its pointers NULL: frozen), and the LoRA gradients dA, dB of
 * w->lora (its part of dx included). */
ba_status ba_weight_product_backward(ba_model_ctx *ctx, const ba_weight *w, const float *x,
                                     size_t n, size_t ldx, const float *dy, size_t ldy,
                                     float *dx, size_t lddx, const ba_weight_grad *g,
                                     ba_error *err);

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

/* The output layer as float32 [vocab][d]: in place when direct, else
 * widened once into ctx->head_f32. */
ba_status ba_ctx_head_f32(ba_model_ctx *ctx, const ba_weight *head, const float **out,
                          ba_error *err);

/* The loss of a training sequence (train.c): the cross-entropy of the
 * final states h [n][d] (position t predicts labels[t + 1]) through the
 * float32 output layer head [vocab][d], on the unmasked rows only (packed
 * into ws->h first), dh [n][d] += grad_scale d(loss_sum)/dh. */
typedef struct {
    float *h, *dh;      /* [n][d] the packed rows and their gradient        */
    int32_t *target;    /* [n]                                              */
    size_t row_chunk, vocab_chunk;
    float *tile;        /* [row_chunk][vocab_chunk]                         */
    double *row_stats;  /* [3 row_chunk]                                    */
} ba_train_loss_ws;

ba_status ba_train_loss(const float *h, size_t n, size_t d, const float *head, size_t vocab,
                        const int32_t *labels, float grad_scale, const ba_train_loss_ws *ws,
                        double *loss_sum, size_t *count, float *dh, ba_error *err);

#endif
