/* model_internal.h — what an architecture implementation (model_<arch>.c)
 * provides to the generic model layer (model.c), and the helpers model.c
 * offers them. Not a public header. */
#ifndef BRAINALIGN_MODEL_INTERNAL_H
#define BRAINALIGN_MODEL_INTERNAL_H

#include <stdbool.h>

#include "brainalign/core/limits.h"
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
    /* Bind the checkpoint's tensors (checked against model->cfg) and
     * allocate the workspace; sets model->impl. */
    ba_status (*load)(ba_model *model, ba_error *err);
    void (*destroy)(ba_model *model);
    /* Arguments are already checked by ba_model_forward. */
    ba_status (*forward)(ba_model *model, const int32_t *tokens, size_t n_tokens,
                         const int *layers, int n_layers_kept, float *hidden,
                         float *next_logprob, ba_error *err);
    /* The tensors of a checkpoint of this architecture, in file order,
     * with how to initialise them (init_std: the weights' standard
     * deviation); *out is malloc'd. */
    ba_status (*random_layout)(const ba_model_config *cfg, double init_std,
                               ba_random_tensor **out, size_t *n, ba_error *err);
} ba_model_ops;

struct ba_model {
    ba_model_config cfg;
    char dir[BA_PATH_MAX];
    ba_checkpoint *ckpt;
    const ba_model_ops *ops;
    void *impl;
    ba_matmul matmul; /* ba_model_set_matmul */
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

/* y[i][0..rows) (row stride ldy) = x[i][0..in) (row stride ldx) W_r^T for
 * the rows W_r = W[row0, row0 + rows) of a 2-D weight W[out][in]
 * (nn.Linear layout) of any supported dtype, plus y's previous value when
 * `accumulate`. F32 weights are used in place; half-precision ones are
 * widened a panel of rows at a time into `scratch` (scratch_floats >= in)
 * and multiplied at once, so the widened copy stays in cache instead of a
 * whole matrix going through memory. With BA_MATMUL_BF16, a BF16 weight
 * is used as stored instead (ba_linear_bf16: x rounded to bfloat16; the
 * scratch only serves a weight at an odd address, copied a panel at a
 * time); other dtypes keep the float32 path. */
void ba_weight_linear(const ba_tensor *w, size_t row0, size_t rows, const float *x, size_t n,
                      size_t ldx, int accumulate, float *y, size_t ldy, float *scratch,
                      size_t scratch_floats, ba_matmul matmul);

/* Copy state [n][d] into slab k of hidden for every k with layers[k] == index. */
void ba_model_store_hidden(const float *state, int index, size_t n, size_t d, const int *layers,
                           int n_kept, float *hidden);

/* Output layer + log-softmax over the vocabulary in chunks of `chunk` rows
 * (streaming log-sum-exp), so that no [n][vocab] logits are ever held. */
typedef struct {
    size_t chunk;            /* vocabulary rows per step                    */
    float *logits;           /* [n][chunk]                                  */
    double *lse_max, *lse_sum; /* [n]                                       */
    float *target;           /* [n]: the logit of each next token           */
} ba_logprob_workspace;

/* out[t] = log p(tokens[t+1] | ..t) for t < n - 1 from the final states
 * h[n][d] and the output weight head[vocab][d] (products as
 * ba_weight_linear with `matmul`); out[n-1] = NaN. */
void ba_model_next_logprobs(const ba_tensor *head, const float *h, size_t n, size_t d,
                            size_t vocab, const int32_t *tokens, ba_logprob_workspace *ws,
                            float *scratch, size_t scratch_floats, ba_matmul matmul,
                            float *out);

#endif
