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


#endif
