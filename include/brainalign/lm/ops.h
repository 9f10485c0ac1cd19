/* ops.h — the transformer operations of GPT-2 and LLaMA, float32,
 * row-major: normalisation, activations, softmax, causal attention,
 * log-sum-exp, rotary embeddings.
 *
 * Each operation has a fast version (tight float loops, vectorised for the
 * running CPU) and a plain reference version (`_ref`: obvious loops, double
 * accumulation) that the tests compare it with. None allocates; callers
 * pass scratch where needed. Weight products are in kernels/kernels.h. */
#ifndef BRAINALIGN_LM_OPS_H
#define BRAINALIGN_LM_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- normalisation and activations ------------------------------------------ */

/* y = (x - mean) / sqrt(var + eps) * gamma + beta over each row of d
 * (biased variance, as torch.nn.LayerNorm); y may equal x. */
void ba_layernorm(const float *x, size_t n, size_t d, const float *gamma, const float *beta,
                  float eps, float *y);
void ba_layernorm_ref(const float *x, size_t n, size_t d, const float *gamma,
                      const float *beta, float eps, float *y);

/* In place: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), GPT-2's
 * "gelu_new". */
void ba_gelu_new(float *x, size_t n);
void ba_gelu_new_ref(float *x, size_t n);

/* In place softmax of each of `rows` rows of `cols` entries (row stride ld). */
void ba_softmax_rows(float *x, size_t rows, size_t cols, size_t ld);
void ba_softmax_rows_ref(float *x, size_t rows, size_t cols, size_t ld);

/* ---- attention --------------------------------------------------------------- */

/* Causal multi-head attention over n positions.
 * q: [n][*] with row stride ld_q, head h in columns [h*d_head, (h+1)*d_head);
 * k, v: row stride ld_kv, n_kv_heads heads (query head h reads key/value
 * head h / (n_heads / n_kv_heads)); out: row stride ld_out, n_heads heads.
 * softmax(scale q k^T) v with position i seeing positions 0..i.
 * The fast version needs `scores` of ba_attention_scratch_floats(n). */
size_t ba_attention_scratch_floats(size_t n);
void ba_attention_causal(const float *q, size_t ld_q, const float *k, const float *v,
                         size_t ld_kv, size_t n, int n_heads, int n_kv_heads, int d_head,
                         float scale, float *out, size_t ld_out, float *scores);
void ba_attention_causal_ref(const float *q, size_t ld_q, const float *k, const float *v,
                             size_t ld_kv, size_t n, int n_heads, int n_kv_heads, int d_head,
                             float scale, float *out, size_t ld_out);

/* ---- log-softmax ----------------------------------------------------------------- */

/* log(sum_i exp(x_i)) in double, max-subtracted. */
double ba_logsumexp_ref(const float *x, size_t n);
/* Streaming version for a row seen in chunks: start with *max = -INFINITY,
 * *sum = 0, call per chunk; the result is *max + log(*sum). */
void ba_logsumexp_accumulate(const float *x, size_t n, double *max, double *sum);


/* ---- LLaMA building blocks ---------------------------------------------------------- */

/* y = w * (x / sqrt(mean(x^2) + eps)) over each row of d: Hugging Face's
 * LlamaRMSNorm in float32. y may equal x. */
void ba_rmsnorm(const float *x, size_t n, size_t d, const float *w, float eps, float *y);
void ba_rmsnorm_ref(const float *x, size_t n, size_t d, const float *w, float eps, float *y);

/* In place x * sigmoid(x) (SiLU, LLaMA's hidden_act). */
void ba_silu(float *x, size_t n);
void ba_silu_ref(float *x, size_t n);
/* In place gate = silu(gate) * up: the inside of the SwiGLU MLP
 * down(silu(gate(x)) * up(x)). */
void ba_swiglu(float *gate, const float *up, size_t n);
void ba_swiglu_ref(float *gate, const float *up, size_t n);

/* Rotary position embeddings in Hugging Face's half-split convention:
 * within each head of d_head (even) values, pair j < d_head/2 is
 * (x[j], x[j + d_head/2]), rotated by the angle pos * theta^(-2j/d_head):
 *   x[j]            <- x[j] cos - x[j + d_head/2] sin
 *   x[j + d_head/2] <- x[j + d_head/2] cos + x[j] sin
 * (q cos + rotate_half(q) sin). Row t of the window is position
 * first_pos + t. */

/* cos_tab, sin_tab: [n][d_head/2], computed as Hugging Face does (inverse
 * frequencies and angles rounded to float32, so that long windows rotate
 * exactly as LlamaRotaryEmbedding does). */
void ba_rope_tables(size_t first_pos, size_t n, int d_head, double theta, float *cos_tab,
                    float *sin_tab);
/* In place on x[n][*] (row stride ld), heads of d_head at columns
 * h * d_head, h < n_heads. */
void ba_rope(float *x, size_t n, size_t ld, int n_heads, int d_head, const float *cos_tab,
             const float *sin_tab);
/* Reference: angles in double straight from theta, rotate_half spelled
 * out (copy, negate, concatenate). */
void ba_rope_ref(float *x, size_t n, size_t ld, int n_heads, int d_head, size_t first_pos,
                 double theta);

/* ==== backward passes (ops_backward.c) ========================================================
 *
 * Every forward op of GPT-2 and LLaMA has a backward beside it, in llm.c's
 * style: a forward that saves what its backward needs (the `_fwd`
 * variants below; the plain forwards above stay as they are for
 * inference), and a backward that takes the gradient of the op's output.
 * float32, row-major, caller-owned buffers: nothing allocates. Each has a
 * plain `_ref` twin (obvious loops, double accumulation) that the tests
 * compare it with, and that the tests check against finite differences.
 *
 * Accumulation convention: every backward ADDS into its gradient outputs
 * (dx += ..., dW += ...), never overwrites them; the caller zeroes a
 * gradient buffer once before the first contribution. A tensor used twice
 * (the residual stream, weights tied between the input embedding and the
 * output layer, a key/value head shared by the query heads of a GQA
 * group) thus gets the sum of its contributions for free. A parameter
 * gradient pointer may be NULL: that parameter is frozen and its gradient
 * is neither computed nor written. Input-gradient pointers may be NULL
 * too where noted (the first trainable layer needs no gradient below it).
 */

#include "brainalign/core/error.h"
#include "brainalign/kernels/kernels.h"
#include "brainalign/lm/safetensors.h"

/* ---- residual ---------------------------------------------------------------------------- */

/* y = x + f(x): the gradient of y reaches both branches unchanged, so the
 * backward is dx[n] += dy[n] (the branch f gets dy itself as the gradient
 * of its output). Spelled out so that call sites read as the forward. */
void ba_residual_backward(const float *dy, size_t n, float *dx);
void ba_residual_backward_ref(const float *dy, size_t n, float *dx);

/* ---- embeddings --------------------------------------------------------------------------- */

/* out[t][0..d) = wte[tokens[t]][..] (+ wpe[first_pos + t][..] when wpe is
 * not NULL: GPT-2's learned positions). wte: [vocab][d], wpe: [n_pos][d].
 * Fails (BA_ERR_VALUE, nothing written) for a token outside [0, vocab) or
 * a position first_pos + n > n_pos. */
ba_status ba_embedding_fwd(const int32_t *tokens, size_t n, const float *wte, size_t vocab,
                           const float *wpe, size_t n_pos, size_t first_pos, size_t d,
                           float *out, ba_error *err);
/* Backward of ba_embedding_fwd given dout [n][d], the gradient of the
 * embedding output. dout is the input-embedding gradient (what torch
 * reports as inputs_embeds.grad, for GPT-2 the same tensor as the
 * gradient of wte[tokens] + wpe): when d_input_embeds is not NULL it
 * receives a copy ([n][d], added as everything else). dwte [vocab][d] and
 * dwpe [n_pos][d] (each NULL when frozen) get the scatter-add of the rows
 * of dout at the rows the forward read (a repeated token sums).
 * Same checks as the forward (nothing written on failure). */
ba_status ba_embedding_backward(const float *dout, const int32_t *tokens, size_t n, size_t d,
                                size_t vocab, size_t n_pos, size_t first_pos, float *dwte,
                                float *dwpe, float *d_input_embeds, ba_error *err);
ba_status ba_embedding_backward_ref(const float *dout, const int32_t *tokens, size_t n,
                                    size_t d, size_t vocab, size_t n_pos, size_t first_pos,
                                    float *dwte, float *dwpe, float *d_input_embeds,
                                    ba_error *err);

/* ---- normalisation ------------------------------------------------------------------------ */

/* ba_layernorm that also saves mean[n] and rstd[n] = 1/sqrt(var + eps) of
 * each row for the backward. y may equal x. */
void ba_layernorm_fwd(const float *x, size_t n, size_t d, const float *gamma, const float *beta,
                      float eps, float *y, float *mean, float *rstd);
void ba_layernorm_fwd_ref(const float *x, size_t n, size_t d, const float *gamma,
                          const float *beta, float eps, float *y, float *mean, float *rstd);
/* Given the forward's input x [n][d], its saved mean [n] and rstd [n] and
 * dy [n][d]: dx [n][d] += (may be NULL), dgamma [d] += sum_t dy xhat,
 * dbeta [d] += sum_t dy (each NULL when frozen). */
void ba_layernorm_backward(const float *dy, const float *x, const float *mean,
                           const float *rstd, const float *gamma, size_t n, size_t d, float *dx,
                           float *dgamma, float *dbeta);
void ba_layernorm_backward_ref(const float *dy, const float *x, const float *mean,
                               const float *rstd, const float *gamma, size_t n, size_t d,
                               float *dx, float *dgamma, float *dbeta);

/* ba_rmsnorm that also saves rstd[n] = 1/sqrt(mean(x^2) + eps). */
void ba_rmsnorm_fwd(const float *x, size_t n, size_t d, const float *w, float eps, float *y,
                    float *rstd);
void ba_rmsnorm_fwd_ref(const float *x, size_t n, size_t d, const float *w, float eps, float *y,
                        float *rstd);
/* dx [n][d] += (may be NULL), dw [d] += sum_t dy x rstd (NULL when frozen). */
void ba_rmsnorm_backward(const float *dy, const float *x, const float *rstd, const float *w,
                         size_t n, size_t d, float *dx, float *dw);
void ba_rmsnorm_backward_ref(const float *dy, const float *x, const float *rstd, const float *w,
                             size_t n, size_t d, float *dx, float *dw);

/* ---- linear layers ------------------------------------------------------------------------- */

/* Backward of y[n][out] = x[n][in] W (+ b) (ba_linear's product, either
 * layout: W [in][out] for GPT-2's Conv1D, W [out][in] for nn.Linear):
 *   dx [n][in]  += dy W^T   (NULL: not needed)
 *   dw (W's layout) += x^T dy, i.e. dw[i][o] (Conv1D) or dw[o][i]
 *                   (nn.Linear) += sum_t x[t][i] dy[t][o]   (NULL: frozen)
 *   db [out]    += sum_t dy[t]                              (NULL: frozen/none)
 * dy: [n][out], x: [n][in]. The fast version is two sgemm calls. */
void ba_linear_backward(const float *dy, const float *x, size_t n, size_t in, const float *w,
                        ba_weight_layout layout, size_t out, float *dx, float *dw, float *db);
void ba_linear_backward_ref(const float *dy, const float *x, size_t n, size_t in,
                            const float *w, ba_weight_layout layout, size_t out, float *dx,
                            float *dw, float *db);

/* dx [n][in] += dy [n][out] W^T through frozen half-precision weights
 * (bit patterns, dtype BA_DTYPE_BF16 or BA_DTYPE_F16, either layout; a
 * trained weight is float32 master weights, so no dW here). The weights
 * are widened exactly to float32 on the fly, BA_LINEAR_HALF_BLOCK rows at
 * a time into `scratch` (ba_linear_backward_half_scratch_floats(in, out)
 * floats), and multiplied in float32: the gradient of the product with
 * the widened weights. The forward's rounding of x to bfloat16
 * (ba_linear_bf16) counts as the identity (a straight-through gradient,
 * which is what torch computes for a bf16 weight and float32 master
 * activations up to the rounding of dy). BA_ERR_USAGE for another dtype.
 * The reference widens each element (ba_*_to_f32_ref) and sums in double. */
#define BA_LINEAR_HALF_BLOCK 64
size_t ba_linear_backward_half_scratch_floats(size_t in, size_t out);
ba_status ba_linear_backward_dx_half(const float *dy, size_t n, size_t in, const uint16_t *w,
                                     ba_dtype dtype, ba_weight_layout layout, size_t out,
                                     float *dx, float *scratch, ba_error *err);
ba_status ba_linear_backward_dx_half_ref(const float *dy, size_t n, size_t in,
                                         const uint16_t *w, ba_dtype dtype,
                                         ba_weight_layout layout, size_t out, float *dx,
                                         ba_error *err);

/* ---- activations ---------------------------------------------------------------------------- */

/* Given the forward's input x [n] (before the in-place activation: keep a
 * copy) and dy [n]: dx [n] += dy f'(x). */
void ba_gelu_new_backward(const float *x, const float *dy, size_t n, float *dx);
void ba_gelu_new_backward_ref(const float *x, const float *dy, size_t n, float *dx);
void ba_silu_backward(const float *x, const float *dy, size_t n, float *dx);
void ba_silu_backward_ref(const float *x, const float *dy, size_t n, float *dx);
/* Backward of out = silu(gate) * up given the forward's inputs gate [n]
 * (before ba_swiglu overwrote it: keep a copy) and up [n]:
 * dgate [n] += dy up silu'(gate), dup [n] += dy silu(gate). */
void ba_swiglu_backward(const float *gate, const float *up, const float *dy, size_t n,
                        float *dgate, float *dup);
void ba_swiglu_backward_ref(const float *gate, const float *up, const float *dy, size_t n,
                            float *dgate, float *dup);

/* ---- rotary embedding ------------------------------------------------------------------------- */

/* The rotation is orthogonal, so its backward is the inverse rotation
 * (angle -pos * freq) applied in place to the gradient dx [n][*] (row
 * stride ld, heads as ba_rope): after the call dx holds the gradient of
 * the rotation's input. The tables are those of the forward. */
void ba_rope_backward(float *dx, size_t n, size_t ld, int n_heads, int d_head,
                      const float *cos_tab, const float *sin_tab);
void ba_rope_backward_ref(float *dx, size_t n, size_t ld, int n_heads, int d_head,
                          size_t first_pos, double theta);

/* ---- causal attention --------------------------------------------------------------------------- */

/* ba_attention_causal (same arguments, same scratch) that also saves the
 * per-row log-sum-exp of the scaled scores, lse [n_heads][n]:
 * lse[h][i] = log sum_{j<=i} exp(scale q_i.k_j), so that the backward can
 * recompute every probability p_ij = exp(scale q_i.k_j - lse[h][i])
 * without a [T][T] matrix per head being kept. Its out is bitwise
 * ba_attention_causal's (one loop in ops.c serves both). */
void ba_attention_causal_fwd(const float *q, size_t ld_q, const float *k, const float *v,
                             size_t ld_kv, size_t n, int n_heads, int n_kv_heads, int d_head,
                             float scale, float *out, size_t ld_out, float *lse, float *scores);
void ba_attention_causal_fwd_ref(const float *q, size_t ld_q, const float *k, const float *v,
                                 size_t ld_kv, size_t n, int n_heads, int n_kv_heads,
                                 int d_head, float scale, float *out, size_t ld_out, float *lse);
/* Backward given the forward's q, k, v (strides as in the forward), its
 * out and lse, and dout, the gradient of out (out and dout both with row
 * stride ld_out): dq (row stride ld_q) += ..., dk and dv (row stride
 * ld_kv) += ...; (for GPT-2's packed c_attn output [n][3d], dq, dk and dv
 * point into its gradient [n][3d] at columns 0, d and 2d); with GQA (n_kv_heads < n_heads) a key/value head's gradient is the
 * sum over the query heads of its group. The probabilities are recomputed
 * a block of 64 query rows at a time from q, k and lse;
 * `scratch` holds ba_attention_backward_scratch_floats(n) floats (two
 * [block][n] tiles), never a [T][T] matrix. */
size_t ba_attention_backward_scratch_floats(size_t n);
void ba_attention_causal_backward(const float *dout, size_t ld_out, const float *q, size_t ld_q,
                                  const float *k, const float *v, size_t ld_kv,
                                  const float *out, const float *lse, size_t n, int n_heads,
                                  int n_kv_heads, int d_head, float scale, float *dq, float *dk,
                                  float *dv, float *scratch);
void ba_attention_causal_backward_ref(const float *dout, size_t ld_out, const float *q,
                                      size_t ld_q, const float *k, const float *v, size_t ld_kv,
                                      const float *out, const float *lse, size_t n, int n_heads,
                                      int n_kv_heads, int d_head, float scale, float *dq,
                                      float *dk, float *dv);

/* ---- softmax cross-entropy over the vocabulary ---------------------------------------------------- */

/* Masked label of a position (Hugging Face's ignore_index). */
#define BA_LABEL_IGNORE (-100)

/* The logits of row t are z[t][v] = h[t] . w[v] for hidden states h [n][d]
 * and the output embedding w [vocab][d] (lm_head, or wte when tied: then
 * dw adds to the embedding's gradient). For each t whose target is not
 * BA_LABEL_IGNORE the loss is lse(z[t]) - z[t][target[t]].
 *   *loss_sum = sum of those losses (double), *count = how many;
 *   dh [n][d]     += grad_scale * d(loss_sum)/dh  (NULL: not needed)
 *   dw [vocab][d] += grad_scale * d(loss_sum)/dw  (NULL: frozen)
 * (grad_scale = 1 / the global count of unmasked tokens gives the
 * gradient of the mean loss.) Never forms a [n][vocab] matrix: rows go
 * row_chunk at a time and the vocabulary vocab_chunk entries at a time,
 * in two passes per row chunk: a streaming log-sum-exp, then the
 * gradient (p - onehot) from logits recomputed chunk by chunk. Scratch:
 * `tile` of row_chunk * vocab_chunk floats and `row_stats` of
 * 3 * row_chunk doubles. Fails (BA_ERR_VALUE, nothing written) for a
 * target outside [0, vocab) that is not BA_LABEL_IGNORE, BA_ERR_USAGE for
 * a zero chunk size. */
ba_status ba_cross_entropy_chunked(const float *h, size_t n, size_t d, const float *w,
                                   size_t vocab, const int32_t *target, float grad_scale,
                                   size_t row_chunk, size_t vocab_chunk, float *tile,
                                   double *row_stats, double *loss_sum, size_t *count,
                                   float *dh, float *dw, ba_error *err);
/* Reference: one row at a time, every logit a double dot product, the
 * log-sum-exp in double over the whole row. */
ba_status ba_cross_entropy_ref(const float *h, size_t n, size_t d, const float *w, size_t vocab,
                               const int32_t *target, float grad_scale, double *loss_sum,
                               size_t *count, float *dh, float *dw, ba_error *err);

#endif
