/* model.c — the architecture-neutral model layer (see model.h): loading,
 * contexts (the run state), argument checks, weight access, the one
 * weight product every architecture multiplies through
 * (ba_weight_product, where LoRA adapters apply), the shared
 * hidden-state store and next-token log-probabilities, and the
 * random-checkpoint writer. The architectures themselves live in
 * arch/<arch>.c behind ba_model_ops. */
#include "brainalign/lm/model.h"
#include "brainalign/core/fs.h"
#include "brainalign/core/hash.h"
#include "brainalign/core/rng.h"

#include <cblas.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "brainalign/kernels/kernels.h"
#include "brainalign/lm/ops.h"
#include "brainalign/lm/tokenizer.h"
#include "model_internal.h"

static const ba_model_ops *ops_for(ba_arch arch)
{
    switch (arch) {
    case BA_ARCH_GPT2: return &ba_gpt2_ops;
    case BA_ARCH_LLAMA: return &ba_llama_ops;
    case BA_ARCH_UNKNOWN: break;
    }
    return NULL;
}

/* ---- loading ------------------------------------------------------------------- */

ba_status ba_model_load(const char *dir, ba_model **out, ba_error *err)
{
    *out = NULL;
    ba_status rc = BA_OK;
    ba_model *m = ba_calloc(1, sizeof *m, "model handle", err);
    if (!m) return BA_ERR_NOMEM;
    int n = snprintf(m->dir, sizeof m->dir, "%s", dir);
    if (n < 0 || (size_t)n >= sizeof m->dir) {
        rc = ba_fail(err, BA_ERR_USAGE, "%.200s...: path too long", dir);
        goto fail;
    }
    BA_TRY(ba_model_config_load(dir, &m->cfg, err), fail);
    m->ops = ops_for(m->cfg.arch);
    if (!m->ops) {
        rc = ba_fail(err, BA_ERR_VALUE, "%s/config.json: model_type '%s' is recognised but its "
                     "forward pass is not implemented yet", dir, m->cfg.model_type);
        goto fail;
    }
    BA_TRY(ba_checkpoint_open(dir, &m->ckpt, err), fail);
    BA_TRY(m->ops->load(m, err), fail);
    *out = m;
    return BA_OK;
fail:
    ba_model_destroy(m);
    return rc;
}

void ba_model_destroy(ba_model *model)
{
    if (!model) return;
    if (model->ops && model->impl) model->ops->destroy(model);
    ba_checkpoint_close(model->ckpt);
    free(model);
}

ba_status ba_matmul_parse(const char *text, ba_matmul *mode, ba_error *err)
{
    if (strcmp(text, "f32") == 0) *mode = BA_MATMUL_F32;
    else if (strcmp(text, "bf16") == 0) *mode = BA_MATMUL_BF16;
    else return ba_fail(err, BA_ERR_USAGE, "matrix products are f32 or bf16, not '%s'", text);
    return BA_OK;
}

const char *ba_matmul_name(ba_matmul mode) { return mode == BA_MATMUL_BF16 ? "bf16" : "f32"; }

ba_status ba_model_ctx_set_matmul(ba_model_ctx *ctx, ba_matmul mode, ba_error *err)
{
    const ba_model *model = ctx->model;
    if (mode != BA_MATMUL_F32 && mode != BA_MATMUL_BF16)
        return ba_fail(err, BA_ERR_USAGE, "%s: unknown matrix-product precision %d", model->dir,
                       (int)mode);
    if (mode == BA_MATMUL_BF16) {
        /* Refused where it would change nothing, so that nothing computed
         * in float32 is labelled bf16. */
        if (model->cfg.arch != BA_ARCH_LLAMA)
            return ba_fail(err, BA_ERR_USAGE, "%s: bf16 matrix products are implemented for "
                           "LLaMA checkpoints; %s computes in float32 (f32)", model->dir,
                           ba_arch_name(model->cfg.arch));
        bool any = false;
        for (size_t i = 0; i < ba_checkpoint_count(model->ckpt) && !any; i++) {
            const ba_tensor *t = ba_checkpoint_at(model->ckpt, i);
            any = t->dtype == BA_DTYPE_BF16 && t->rank == 2;
        }
        if (!any)
            return ba_fail(err, BA_ERR_USAGE, "%s: bf16 matrix products apply to matrices stored "
                           "as BF16, and this checkpoint has none (use f32)", model->dir);
        if (!ba_bf16_dot_available())
            return ba_fail(err, BA_ERR_USAGE, "%s: bf16 matrix products need a CPU with "
                           "AVX512-BF16 (avx512f, avx512bw, avx512vl, avx512_bf16)%s; use "
                           "float32 products (f32)", model->dir,
                           getenv("BRAINALIGN_NO_BF16_DOT") ? " and BRAINALIGN_NO_BF16_DOT unset"
                                                            : ", which this one lacks");
    }
    ctx->matmul = mode;
    return BA_OK;
}

ba_matmul ba_model_ctx_get_matmul(const ba_model_ctx *ctx) { return ctx->matmul; }

const ba_model_config *ba_model_get_config(const ba_model *model) { return &model->cfg; }
const char *ba_model_dir(const ba_model *model) { return model->dir; }
int ba_model_n_hidden_states(const ba_model *model) { return model->cfg.n_layers + 1; }
int ba_model_d_model(const ba_model *model) { return model->cfg.d_model; }
int ba_model_vocab_size(const ba_model *model) { return model->cfg.vocab_size; }
int ba_model_max_tokens(const ba_model *model) { return model->cfg.n_positions; }

/* ---- contexts ------------------------------------------------------------------------ */

ba_status ba_model_ctx_create(const ba_model *model, ba_model_ctx **out, ba_error *err)
{
    *out = NULL;
    ba_model_ctx *ctx = ba_calloc(1, sizeof *ctx, "model context", err);
    if (!ctx) return BA_ERR_NOMEM;
    ctx->model = model;
    ctx->matmul = BA_MATMUL_F32;
    *out = ctx;
    return BA_OK;
}

static void free_buffers(ba_model_ctx *ctx)
{
    free(ctx->x), free(ctx->a), free(ctx->qkv), free(ctx->att), free(ctx->ff), free(ctx->ff2);
    free(ctx->scores), free(ctx->rope_cos), free(ctx->rope_sin);
    free(ctx->lp.logits), free(ctx->lp.lse_max), free(ctx->lp.lse_sum), free(ctx->lp.target);
    free(ctx->wscratch), free(ctx->kernel_ws);
    ctx->x = ctx->a = ctx->qkv = ctx->att = ctx->ff = ctx->ff2 = ctx->scores = NULL;
    ctx->rope_cos = ctx->rope_sin = ctx->lp.logits = ctx->lp.target = ctx->wscratch = NULL;
    ctx->lp.lse_max = ctx->lp.lse_sum = NULL;
    ctx->kernel_ws = NULL;
    ctx->kernel_ws_bytes = 0;
    ctx->capacity = 0;
    ctx->lora_capacity = 0; /* the LoRA buffers follow the capacity */
}

void ba_model_ctx_destroy(ba_model_ctx *ctx)
{
    if (!ctx) return;
    free_buffers(ctx);
    free(ctx->kv_cache), free(ctx->saved_activations), free(ctx->head_f32);
    free(ctx->lora_u), free(ctx->lora_du), free(ctx->lora_x), free(ctx->lora_t);
    free(ctx->loras), free(ctx->arch_blocks);
    free(ctx);
}

const ba_model *ba_model_ctx_model(const ba_model_ctx *ctx) { return ctx->model; }

/* The bf16 kernel's workspace for every product of a window of n tokens:
 * its size grows with each dimension, so the largest input and output
 * widths of the model bound every product's. */
static size_t kernel_ws_bytes(const ba_model_ctx *ctx, size_t n)
{
    if (ctx->matmul != BA_MATMUL_BF16) return 0;
    const ba_model_config *c = &ctx->model->cfg;
    size_t d = (size_t)c->d_model, f = (size_t)c->d_ff, dh = d / (size_t)c->n_heads;
    size_t q = (size_t)c->n_heads * dh, kv = (size_t)c->n_kv_heads * dh;
    size_t chunk = (size_t)c->vocab_size < BA_VOCAB_CHUNK ? (size_t)c->vocab_size
                                                          : BA_VOCAB_CHUNK;
    size_t in = d > f ? d : f, out = in;
    if (q > in) in = q;
    if (q + 2 * kv > out) out = q + 2 * kv;
    if (chunk > out) out = chunk;
    return ba_linear_bf16_workspace_bytes(n, in, out);
}

static ba_status reserve_base(ba_model_ctx *ctx, size_t n, ba_error *err);

/* The LoRA buffers for the context's capacity and adapter (none without one). */
static ba_status reserve_lora(ba_model_ctx *ctx, ba_error *err)
{
    ba_status rc = BA_OK;
    if (ctx->lora_r == 0 || ctx->lora_capacity >= ctx->capacity) return BA_OK;
    free(ctx->lora_u), free(ctx->lora_du), free(ctx->lora_x), free(ctx->lora_t);
    ctx->lora_u = ctx->lora_du = ctx->lora_x = ctx->lora_t = NULL;
    ctx->lora_capacity = 0;
    size_t n = ctx->capacity, r = (size_t)ctx->lora_r;
    BA_ALLOC(ctx->lora_u, n * r, "LoRA x A^T", fail);
    BA_ALLOC(ctx->lora_du, n * r, "LoRA x A^T gradient", fail);
    BA_ALLOC(ctx->lora_x, n * ctx->lora_in, "LoRA dropped-out input", fail);
    BA_ALLOC(ctx->lora_t, (size_t)BA_LORA_ROWS * ctx->lora_out, "LoRA delta rows", fail);
    ctx->lora_capacity = n;
    return BA_OK;
fail:
    ba_context(err, "%s: LoRA buffers for windows of %zu tokens", ctx->model->dir, n);
    return rc;
}

ba_status ba_model_ctx_reserve(ba_model_ctx *ctx, size_t n, ba_error *err)
{
    BA_CHECK(reserve_base(ctx, n, err));
    return reserve_lora(ctx, err);
}

static ba_status reserve_base(ba_model_ctx *ctx, size_t n, ba_error *err)
{
    const ba_model *m = ctx->model;
    const ba_model_config *c = &m->cfg;
    if (n == 0 || n > (size_t)c->n_positions)
        return ba_fail(err, BA_ERR_SHAPE, "%s: a window of %zu tokens, the model takes 1 to %d",
                       m->dir, n, c->n_positions);
    ba_status rc = BA_OK;
    size_t kernel_bytes = kernel_ws_bytes(ctx, n > ctx->capacity ? n : ctx->capacity);
    if (n <= ctx->capacity && kernel_bytes <= ctx->kernel_ws_bytes) return BA_OK;
    if (n <= ctx->capacity) { /* only the kernel's workspace grows (precision, threads) */
        free(ctx->kernel_ws);
        ctx->kernel_ws_bytes = 0;
        BA_ALLOC(ctx->kernel_ws, kernel_bytes, "bf16 product workspace", fail);
        ctx->kernel_ws_bytes = kernel_bytes;
        return BA_OK;
    }
    free_buffers(ctx);
    size_t d = (size_t)c->d_model, f = (size_t)c->d_ff, dh = d / (size_t)c->n_heads;
    size_t qkv = (size_t)(c->n_heads + 2 * c->n_kv_heads) * dh;
    ctx->lp.chunk = (size_t)c->vocab_size < BA_VOCAB_CHUNK ? (size_t)c->vocab_size
                                                           : BA_VOCAB_CHUNK;
    BA_ALLOC(ctx->x, n * d, "residual stream", fail);
    BA_ALLOC(ctx->a, n * d, "normalised activations", fail);
    BA_ALLOC(ctx->qkv, n * qkv, "queries/keys/values", fail);
    BA_ALLOC(ctx->att, n * (size_t)c->n_heads * dh, "attention output", fail);
    BA_ALLOC(ctx->ff, n * f, "MLP activations", fail);
    if (m->ops->gated_mlp) BA_ALLOC(ctx->ff2, n * f, "MLP up activations", fail);
    BA_ALLOC(ctx->scores, ba_attention_scratch_floats(n), "attention scores", fail);
    if (m->ops->rotary) {
        BA_ALLOC(ctx->rope_cos, n * dh / 2, "rotary cosines", fail);
        BA_ALLOC(ctx->rope_sin, n * dh / 2, "rotary sines", fail);
    }
    BA_ALLOC(ctx->lp.logits, n * ctx->lp.chunk, "logits chunk", fail);
    BA_ALLOC(ctx->lp.lse_max, n, "log-sum-exp maxima", fail);
    BA_ALLOC(ctx->lp.lse_sum, n, "log-sum-exp sums", fail);
    BA_ALLOC(ctx->lp.target, n, "next-token logits", fail);
    if (m->widen_floats) BA_ALLOC(ctx->wscratch, m->widen_floats, "widened weights", fail);
    if (kernel_bytes) BA_ALLOC(ctx->kernel_ws, kernel_bytes, "bf16 product workspace", fail);
    ctx->kernel_ws_bytes = kernel_bytes;
    ctx->capacity = n;
    return BA_OK;
fail:
    free_buffers(ctx);
    ba_context(err, "%s: a context for windows of %zu tokens", m->dir, n);
    return rc;
}

ba_status ba_model_forward(ba_model_ctx *ctx, const int32_t *tokens, size_t n_tokens,
                           const int *layers, int n_layers_kept, float *hidden,
                           float *next_logprob, ba_error *err)
{
    const ba_model *model = ctx->model;
    const ba_model_config *c = &model->cfg;
    if (n_tokens == 0 || n_tokens > (size_t)c->n_positions)
        return ba_fail(err, BA_ERR_SHAPE, "%s: a window of %zu tokens, the model takes 1 to %d",
                       model->dir, n_tokens, c->n_positions);
    for (size_t t = 0; t < n_tokens; t++)
        if (tokens[t] < 0 || tokens[t] >= c->vocab_size)
            return ba_fail(err, BA_ERR_VALUE, "%s: token %zu of the window has id %d, outside "
                           "the vocabulary [0, %d)", model->dir, t, (int)tokens[t], c->vocab_size);
    if (n_layers_kept < 0 || (n_layers_kept > 0 && (!layers || !hidden)))
        return ba_fail(err, BA_ERR_USAGE, "%s: %d hidden-state layers asked for without the "
                       "layer list or output buffer", model->dir, n_layers_kept);
    for (int k = 0; k < n_layers_kept; k++)
        if (layers[k] < 0 || layers[k] > c->n_layers)
            return ba_fail(err, BA_ERR_VALUE, "%s: hidden-state layer %d does not exist (0 = "
                           "embeddings .. %d = last)", model->dir, layers[k], c->n_layers);
    BA_CHECK(ba_model_ctx_reserve(ctx, n_tokens, err));
    return model->ops->forward(ctx, tokens, n_tokens, layers, n_layers_kept, hidden,
                               next_logprob, err);
}

/* ---- weight access ------------------------------------------------------------------ */

static void format_shape(char *buf, size_t cap, int rank, const int64_t *shape)
{
    size_t used = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < rank && used < cap; d++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%lld", d ? ", " : "",
                                 (long long)shape[d]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
}

ba_status ba_model_expect_tensor(const ba_model *model, const char *name, int rank,
                                 const int64_t *shape, const ba_tensor **out, ba_error *err)
{
    BA_CHECK(ba_checkpoint_get(model->ckpt, name, out, err));
    const ba_tensor *t = *out;
    if (t->dtype != BA_DTYPE_F32 && t->dtype != BA_DTYPE_F16 && t->dtype != BA_DTYPE_BF16)
        return ba_fail(err, BA_ERR_FORMAT, "%s: tensor '%s' has dtype %s, weights must be F32, "
                       "F16 or BF16", t->file, name, ba_dtype_name(t->dtype));
    bool same = t->rank == rank;
    for (int d = 0; same && d < rank; d++) same = t->shape[d] == shape[d];
    if (!same) {
        char want[128], have[128];
        format_shape(want, sizeof want, rank, shape);
        format_shape(have, sizeof have, t->rank, t->shape);
        return ba_fail(err, BA_ERR_SHAPE, "%s: tensor '%s' has shape %s, config.json implies %s",
                       t->file, name, have, want);
    }
    return BA_OK;
}

bool ba_weight_is_direct(const ba_tensor *t)
{
    return t->dtype == BA_DTYPE_F32 && ((uintptr_t)t->data % _Alignof(float)) == 0;
}

const float *ba_weight_f32(const ba_tensor *t, size_t first, size_t count, float *scratch)
{
    if (ba_weight_is_direct(t)) return (const float *)t->data + first;
    const unsigned char *base = t->data;
    switch (t->dtype) {
    case BA_DTYPE_F32: memcpy(scratch, base + first * 4, count * 4); break;
    case BA_DTYPE_BF16:
    case BA_DTYPE_F16: {
        /* Half-precision data at an odd address cannot be read as uint16_t. */
        const unsigned char *src = base + first * 2;
        const uint16_t *h = (const uint16_t *)src;
        uint16_t bounce[256];
        bool aligned = ((uintptr_t)src % _Alignof(uint16_t)) == 0;
        for (size_t done = 0; done < count;) {
            size_t chunk = aligned ? count - done : (count - done < 256 ? count - done : 256);
            if (!aligned) {
                memcpy(bounce, src + done * 2, chunk * 2);
                h = bounce;
            } else {
                h = (const uint16_t *)src + done;
            }
            if (t->dtype == BA_DTYPE_BF16) ba_bf16_to_f32(h, chunk, scratch + done);
            else ba_f16_to_f32(h, chunk, scratch + done);
            done += chunk;
        }
        break;
    }
    default: break; /* other dtypes are refused by ba_model_expect_tensor */
    }
    return scratch;
}

/* Rows per widened panel: as many as fit the scratch, in multiples of 16
 * (the width of the BLAS kernels' blocks) when more than 16 fit; all of
 * them when they all fit. */
static size_t panel_rows(size_t rows, size_t in, size_t scratch_floats)
{
    if (rows * in <= scratch_floats) return rows;
    size_t step = in ? scratch_floats / in : 1;
    if (step > 16) step -= step % 16;
    return step ? step : 1;
}

ba_weight ba_weight_of(const ba_tensor *t, ba_weight_layout layout, const float *bias)
{
    ba_weight w = {t, layout, 0, 0, 0, bias, NULL};
    w.in = (size_t)(layout == BA_WEIGHT_OUT_IN ? t->shape[1] : t->shape[0]);
    w.out = (size_t)(layout == BA_WEIGHT_OUT_IN ? t->shape[0] : t->shape[1]);
    return w;
}

ba_weight ba_weight_rows(const ba_weight *w, size_t first, size_t count)
{
    ba_weight v = *w;
    v.out0 = w->out0 + first;
    v.out = count;
    if (w->bias) v.bias = w->bias + first;
    return v;
}

size_t ba_weight_widen_floats(const ba_weight *w, size_t panel_floats)
{
    if (ba_weight_is_direct(w->tensor)) return 0;
    if (w->layout == BA_WEIGHT_IN_OUT) return w->in * w->out;
    size_t whole = w->in * w->out, panel = panel_floats > w->in ? panel_floats : w->in;
    return whole < panel ? whole : panel;
}

static ba_status scratch_too_small(const ba_model_ctx *ctx, const ba_weight *w, size_t need,
                                   ba_error *err)
{
    return ba_fail(err, BA_ERR_USAGE, "%s: tensor '%s' needs %zu floats of widening scratch, the "
                   "context has %zu (a context of another model?)", ctx->model->dir,
                   w->tensor->name, need, ctx->wscratch ? ctx->model->widen_floats : 0);
}

/* bfloat16 products with a BF16 weight used as stored; one at an odd
 * address (a foreign file's alignment) is copied a panel of rows at a time
 * into the scratch first. */
static ba_status product_bf16(ba_model_ctx *ctx, const ba_weight *w, const float *x, size_t n,
                              size_t ldx, float *y, size_t ldy, int accumulate, ba_error *err)
{
    size_t in = w->in, rows = w->out;
    const unsigned char *base = (const unsigned char *)w->tensor->data + w->out0 * in * 2;
    if ((uintptr_t)base % _Alignof(uint16_t) == 0)
        return ba_linear_bf16(x, n, in, ldx, (const uint16_t *)(const void *)base, rows,
                              accumulate, y, ldy, ctx->kernel_ws, ctx->kernel_ws_bytes, err);
    size_t scratch = ctx->wscratch ? ctx->model->widen_floats : 0;
    if (scratch * 2 < in) return scratch_too_small(ctx, w, (in + 1) / 2, err);
    size_t step = panel_rows(rows, in, scratch * 2); /* uint16 in a float's room: two */
    for (size_t r = 0; r < rows; r += step) {
        size_t m = rows - r < step ? rows - r : step;
        memcpy(ctx->wscratch, base + r * in * 2, m * in * 2);
        BA_CHECK(ba_linear_bf16(x, n, in, ldx, (const uint16_t *)(void *)ctx->wscratch, m,
                                accumulate, y + r, ldy, ctx->kernel_ws, ctx->kernel_ws_bytes,
                                err));
    }
    return BA_OK;
}

/* ---- LoRA at the weight product ----------------------------------------------------- */

static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The dropout multiplier of input element (t, j) of a module: 0 with
 * probability p, else 1 / (1 - p); a pure function of the sequence's key,
 * the module and the position, so the backward (and a recomputed block)
 * draws the same mask. */
static float dropout_factor(uint64_t seq, uint64_t module, size_t t, size_t j, float p)
{
    uint64_t h = mix64(seq ^ mix64(module ^ mix64(((uint64_t)t << 32) ^ (uint64_t)j)));
    double u = (double)(h >> 11) * (1.0 / 9007199254740992.0);
    return u < (double)p ? 0.0f : 1.0f / (1.0f - p);
}

static bool lora_drops(const ba_model_ctx *ctx, const ba_lora *l)
{
    return ctx->training && l->dropout > 0.0f;
}

/* The adapter's input: x itself, or drop(x) into ctx->lora_x [n][in]. */
static const float *lora_input(ba_model_ctx *ctx, const ba_lora *l, const float *x, size_t n,
                               size_t in, size_t ldx, size_t *ld)
{
    *ld = ldx;
    if (!lora_drops(ctx, l)) return x;
    for (size_t t = 0; t < n; t++)
        for (size_t j = 0; j < in; j++)
            ctx->lora_x[t * in + j] =
                x[t * ldx + j] * dropout_factor(ctx->dropout_key, l->key, t, j, l->dropout);
    *ld = in;
    return ctx->lora_x;
}

static ba_status lora_check(const ba_model_ctx *ctx, const ba_weight *w, size_t n, ba_error *err)
{
    const ba_lora *l = w->lora;
    if (w->out0 != 0 || l->r != ctx->lora_r || w->in > ctx->lora_in || w->out > ctx->lora_out ||
        n > ctx->lora_capacity)
        return ba_fail(err, BA_ERR_INTERNAL, "%s: tensor '%s': LoRA product of %zu tokens "
                       "(r %d) outside the context's LoRA buffers (%zu tokens, r %d)",
                       ctx->model->dir, w->tensor->name, n, l->r, ctx->lora_capacity,
                       ctx->lora_r);
    return BA_OK;
}

/* y [n][out] (row stride ldy) += scale (drop(x) A^T) B^T, each zero of the
 * delta as -0.0f: y + -0.0f is y bitwise, so B = 0 leaves the base product. */
static ba_status lora_forward(ba_model_ctx *ctx, const ba_weight *w, const float *x, size_t n,
                              size_t ldx, float *y, size_t ldy, ba_error *err)
{
    const ba_lora *l = w->lora;
    BA_CHECK(lora_check(ctx, w, n, err));
    size_t in = w->in, out = w->out, r = (size_t)l->r, ldxs;
    const float *xs = lora_input(ctx, l, x, n, in, ldx, &ldxs);
    float *u = ctx->lora_u; /* [n][r] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)r, (int)in, 1.0f, xs,
                (int)ldxs, l->A, (int)in, 0.0f, u, (int)r);
    for (size_t t0 = 0; t0 < n; t0 += BA_LORA_ROWS) {
        size_t m = n - t0 < BA_LORA_ROWS ? n - t0 : BA_LORA_ROWS;
        float *tile = ctx->lora_t; /* [m][out] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)out, (int)r, l->scale,
                    u + t0 * r, (int)r, l->B, (int)r, 0.0f, tile, (int)out);
        for (size_t t = 0; t < m; t++) {
            float *dst = y + (t0 + t) * ldy;
            const float *src = tile + t * out;
            for (size_t o = 0; o < out; o++) dst[o] += -(-src[o] + 0.0f);
        }
    }
    return BA_OK;
}

/* dA, dB and (dx != NULL) the adapter's part of dx. */
static ba_status lora_backward(ba_model_ctx *ctx, const ba_weight *w, const float *x, size_t n,
                               size_t ldx, const float *dy, size_t ldy, float *dx, size_t lddx,
                               ba_error *err)
{
    const ba_lora *l = w->lora;
    BA_CHECK(lora_check(ctx, w, n, err));
    size_t in = w->in, out = w->out, r = (size_t)l->r, ldxs;
    const float *xs = lora_input(ctx, l, x, n, in, ldx, &ldxs);
    float *u = ctx->lora_u, *du = ctx->lora_du; /* [n][r] each */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)r, (int)in, 1.0f, xs,
                (int)ldxs, l->A, (int)in, 0.0f, u, (int)r);
    /* dB [out][r] += scale dy^T u */
    if (l->dB)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)r, (int)n, l->scale,
                    dy, (int)ldy, u, (int)r, 1.0f, l->dB, (int)r);
    /* du [n][r] = scale dy B */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)r, (int)out, l->scale, dy,
                (int)ldy, l->B, (int)r, 0.0f, du, (int)r);
    /* dA [r][in] += du^T drop(x) */
    if (l->dA)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)r, (int)in, (int)n, 1.0f, du,
                    (int)r, xs, (int)ldxs, 1.0f, l->dA, (int)in);
    if (!dx) return BA_OK;
    if (!lora_drops(ctx, l)) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)in, (int)r, 1.0f, du,
                    (int)r, l->A, (int)in, 1.0f, dx, (int)lddx);
        return BA_OK;
    }
    float *dxs = ctx->lora_x; /* [n][in]: d drop(x), then through the mask */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)in, (int)r, 1.0f, du,
                (int)r, l->A, (int)in, 0.0f, dxs, (int)in);
    for (size_t t = 0; t < n; t++)
        for (size_t j = 0; j < in; j++)
            dx[t * lddx + j] +=
                dxs[t * in + j] * dropout_factor(ctx->dropout_key, l->key, t, j, l->dropout);
    return BA_OK;
}

static ba_status base_product(ba_model_ctx *ctx, const ba_weight *w, const float *x, size_t n,
                              size_t ldx, float *y, size_t ldy, int accumulate, ba_error *err);

ba_status ba_weight_product(ba_model_ctx *ctx, const ba_weight *w, const float *x, size_t n,
                            size_t ldx, float *y, size_t ldy, int accumulate, ba_error *err)
{
    BA_CHECK(base_product(ctx, w, x, n, ldx, y, ldy, accumulate, err));
    if (w->lora) BA_CHECK(lora_forward(ctx, w, x, n, ldx, y, ldy, err));
    return BA_OK;
}

ba_status ba_weight_product_backward(ba_model_ctx *ctx, const ba_weight *w, const float *x,
                                     size_t n, size_t ldx, const float *dy, size_t ldy,
                                     float *dx, size_t lddx, const ba_weight_grad *g,
                                     ba_error *err)
{
    const ba_tensor *t = w->tensor;
    size_t in = w->in, out = w->out;
    bool trained = g && (g->dw || g->db);
    if (trained && (!ba_weight_is_direct(t) || w->out0 != 0))
        return ba_fail(err, BA_ERR_INTERNAL, "%s: tensor '%s' is trained but not a float32 "
                       "master weight", ctx->model->dir, t->name);
    if (g && g->dw) {
        if (w->layout == BA_WEIGHT_IN_OUT) /* dw [in][out] += x^T dy */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)in, (int)out, (int)n, 1.0f,
                        x, (int)ldx, dy, (int)ldy, 1.0f, g->dw, (int)out);
        else /* dw [out][in] += dy^T x */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)in, (int)n, 1.0f,
                        dy, (int)ldy, x, (int)ldx, 1.0f, g->dw, (int)in);
    }
    if (g && g->db)
        for (size_t i = 0; i < n; i++)
            for (size_t o = 0; o < out; o++) g->db[o] += dy[i * ldy + o];
    if (w->lora) BA_CHECK(lora_backward(ctx, w, x, n, ldx, dy, ldy, dx, lddx, err));
    if (!dx) return BA_OK;
    size_t scratch = ctx->wscratch ? ctx->model->widen_floats : 0;
    if (w->layout == BA_WEIGHT_IN_OUT) {
        /* dx [n][in] += dy [n][out] W^T with W [in][out] */
        const float *wf = t->data;
        if (!ba_weight_is_direct(t)) {
            if (scratch < in * out) return scratch_too_small(ctx, w, in * out, err);
            wf = ba_weight_f32(t, 0, in * out, ctx->wscratch);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)in, (int)out, 1.0f, dy,
                    (int)ldy, wf, (int)out, 1.0f, dx, (int)lddx);
        return BA_OK;
    }
    /* dx [n][in] += dy [n][out] W with W [out][in], a panel of rows at a time */
    if (ba_weight_is_direct(t)) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)in, (int)out, 1.0f, dy,
                    (int)ldy, (const float *)t->data + w->out0 * in, (int)in, 1.0f, dx,
                    (int)lddx);
        return BA_OK;
    }
    if (scratch < in) return scratch_too_small(ctx, w, in, err);
    size_t step = panel_rows(out, in, scratch);
    for (size_t r = 0; r < out; r += step) {
        size_t m = out - r < step ? out - r : step;
        const float *panel = ba_weight_f32(t, (w->out0 + r) * in, m * in, ctx->wscratch);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)in, (int)m, 1.0f,
                    dy + r, (int)ldy, panel, (int)in, 1.0f, dx, (int)lddx);
    }
    return BA_OK;
}

static ba_status base_product(ba_model_ctx *ctx, const ba_weight *w, const float *x, size_t n,
                              size_t ldx, float *y, size_t ldy, int accumulate, ba_error *err)
{
    const ba_tensor *t = w->tensor;
    size_t in = w->in, rows = w->out;
    if (w->layout == BA_WEIGHT_IN_OUT) {
        /* [in][out]: whole, rows of it are inputs (never a row range). */
        if (w->out0 != 0 || rows != (size_t)t->shape[1])
            return ba_fail(err, BA_ERR_INTERNAL, "%s: a column range of the [in][out] tensor "
                           "'%s'", ctx->model->dir, t->name);
        const float *wf = t->data;
        if (!ba_weight_is_direct(t)) {
            size_t scratch = ctx->wscratch ? ctx->model->widen_floats : 0;
            if (scratch < in * rows) return scratch_too_small(ctx, w, in * rows, err);
            wf = ba_weight_f32(t, 0, in * rows, ctx->wscratch);
        }
        ba_linear_strided(x, n, in, ldx, wf, BA_WEIGHT_IN_OUT, rows, w->bias, accumulate, y,
                          ldy);
        return BA_OK;
    }
    if (ctx->matmul == BA_MATMUL_BF16 && t->dtype == BA_DTYPE_BF16 && !w->bias)
        return product_bf16(ctx, w, x, n, ldx, y, ldy, accumulate, err);
    if (ba_weight_is_direct(t)) {
        ba_linear_strided(x, n, in, ldx, (const float *)t->data + w->out0 * in, BA_WEIGHT_OUT_IN,
                          rows, w->bias, accumulate, y, ldy);
        return BA_OK;
    }
    size_t scratch = ctx->wscratch ? ctx->model->widen_floats : 0;
    if (scratch < in) return scratch_too_small(ctx, w, in, err);
    size_t step = panel_rows(rows, in, scratch);
    for (size_t r = 0; r < rows; r += step) {
        size_t m = rows - r < step ? rows - r : step;
        const float *panel = ba_weight_f32(t, (w->out0 + r) * in, m * in, ctx->wscratch);
        ba_linear_strided(x, n, in, ldx, panel, BA_WEIGHT_OUT_IN, m, w->bias ? w->bias + r : NULL,
                          accumulate, y + r, ldy);
    }
    return BA_OK;
}

void ba_model_store_hidden(const float *state, int index, size_t n, size_t d, const int *layers,
                           int n_kept, float *hidden)
{
    for (int k = 0; k < n_kept; k++)
        if (layers[k] == index) memcpy(hidden + (size_t)k * n * d, state, n * d * sizeof *state);
}

ba_status ba_model_next_logprobs(ba_model_ctx *ctx, const ba_weight *head, const float *h,
                                 size_t n, const int32_t *tokens, float *out, ba_error *err)
{
    ba_logprob_workspace *ws = &ctx->lp;
    size_t d = head->in, vocab = head->out;
    for (size_t t = 0; t < n; t++) {
        ws->lse_max[t] = -INFINITY;
        ws->lse_sum[t] = 0.0;
        ws->target[t] = NAN;
    }
    for (size_t v0 = 0; v0 < vocab; v0 += ws->chunk) {
        size_t rows = vocab - v0 < ws->chunk ? vocab - v0 : ws->chunk;
        ba_weight chunk = ba_weight_rows(head, v0, rows);
        BA_CHECK(ba_weight_product(ctx, &chunk, h, n, d, ws->logits, rows, 0, err));
        for (size_t t = 0; t + 1 < n; t++) {
            const float *row = ws->logits + t * rows;
            ba_logsumexp_accumulate(row, rows, &ws->lse_max[t], &ws->lse_sum[t]);
            size_t next = (size_t)tokens[t + 1];
            if (next >= v0 && next < v0 + rows) ws->target[t] = row[next - v0];
        }
    }
    for (size_t t = 0; t + 1 < n; t++)
        out[t] = (float)((double)ws->target[t] - (ws->lse_max[t] + log(ws->lse_sum[t])));
    out[n - 1] = NAN;
    return BA_OK;
}

/* ---- random checkpoints ---------------------------------------------------------------- */

/* The stream depends on the seed and the tensor's name only, so the weights
 * are the same however the checkpoint is sharded. */
static void rng_seed(ba_rng *r, uint64_t seed, const char *name)
{
    /* The FNV-1a of the name picks the stream. */
    ba_rng_seed(r, seed, ba_fnv1a_str(BA_FNV1A_OFFSET, name));
}

/* Uniform in (0, 1], so that log() below is finite. */
static double rng_uniform(ba_rng *r) { return 1.0 - ba_rng_uniform(r); }

/* Box-Muller, both outputs used. */
static void fill_normal(ba_rng *r, float *out, size_t n, double mean, double std)
{
    const double two_pi = 6.283185307179586;
    for (size_t i = 0; i < n; i += 2) {
        double radius = sqrt(-2.0 * log(rng_uniform(r))), angle = two_pi * rng_uniform(r);
        out[i] = (float)(mean + std * radius * cos(angle));
        if (i + 1 < n) out[i + 1] = (float)(mean + std * radius * sin(angle));
    }
}

#define GEN_CHUNK 65536

/* Values [first, first + n) of a tensor, in float32. */
static void generate(const ba_random_tensor *rt, ba_rng *r, size_t first, size_t n, float *out)
{
    switch (rt->init) {
    case BA_INIT_NORMAL: fill_normal(r, out, n, 0.0, rt->std); break;
    case BA_INIT_NEAR_ONE: fill_normal(r, out, n, 1.0, rt->std); break;
    case BA_INIT_CAUSAL_MASK: {
        size_t cols = (size_t)rt->shape[rt->rank - 1], rows = (size_t)rt->shape[rt->rank - 2];
        for (size_t i = 0; i < n; i++) {
            size_t flat = (first + i) % (rows * cols);
            out[i] = (flat % cols) <= (flat / cols) ? 1.0f : 0.0f;
        }
        break;
    }
    }
}

static void encode(const float *in, size_t n, ba_dtype dtype, unsigned char *out)
{
    for (size_t i = 0; i < n; i++) {
        if (dtype == BA_DTYPE_F32) {
            memcpy(out + 4 * i, &in[i], 4); /* the file is little-endian, as is x86/ARM */
        } else {
            uint16_t h = dtype == BA_DTYPE_BF16 ? ba_f32_to_bf16(in[i]) : ba_f32_to_f16(in[i]);
            out[2 * i] = (unsigned char)(h & 0xff);
            out[2 * i + 1] = (unsigned char)(h >> 8);
        }
    }
}

static size_t element_count(const ba_random_tensor *rt)
{
    size_t n = 1;
    for (int d = 0; d < rt->rank; d++) n *= (size_t)rt->shape[d];
    return n;
}

static ba_status write_shard(const char *path, const ba_random_tensor *layout, size_t first,
                             size_t count, ba_dtype dtype, uint64_t seed, ba_error *err)
{
    ba_status rc = BA_OK;
    ba_st_writer *w = NULL;
    float *values = NULL;
    unsigned char *bytes = NULL;
    ba_tensor_spec *specs = NULL;
    BA_ALLOC(specs, count, "shard tensor specs", done);
    for (size_t i = 0; i < count; i++) {
        const ba_random_tensor *rt = &layout[first + i];
        specs[i].name = rt->name;
        specs[i].dtype = dtype;
        specs[i].rank = rt->rank;
        for (int d = 0; d < rt->rank; d++) specs[i].shape[d] = rt->shape[d];
    }
    BA_ALLOC(values, GEN_CHUNK, "random weight chunk", done);
    BA_ALLOC(bytes, GEN_CHUNK * 4, "encoded weight chunk", done);
    const char *meta[] = {"format", "pt"};
    BA_TRY(ba_st_writer_open(path, specs, count, meta, 1, &w, err), done);
    for (size_t i = 0; i < count; i++) {
        const ba_random_tensor *rt = &layout[first + i];
        ba_rng r;
        rng_seed(&r, seed, rt->name);
        size_t total = element_count(rt);
        for (size_t at = 0; at < total; at += GEN_CHUNK) {
            size_t n = total - at < GEN_CHUNK ? total - at : GEN_CHUNK;
            generate(rt, &r, at, n, values);
            encode(values, n, dtype, bytes);
            BA_TRY(ba_st_writer_write(w, bytes, n * ba_dtype_size(dtype), err), done);
        }
    }
    rc = ba_st_writer_finish(w, err);
    w = NULL;
done:
    ba_st_writer_abort(w);
    free(specs);
    free(values);
    free(bytes);
    return rc;
}

static ba_status write_index(const char *dir, const ba_random_tensor *layout, size_t n,
                             const size_t *shard_of, int n_shards, size_t total_bytes,
                             ba_error *err)
{
    json_t *root = json_object(), *map = json_object();
    json_object_set_new(root, "metadata", json_pack("{sI}", "total_size", (json_int_t)total_bytes));
    for (size_t i = 0; i < n; i++) {
        char shard[64];
        snprintf(shard, sizeof shard, "model-%05zu-of-%05d.safetensors", shard_of[i] + 1,
                 n_shards);
        json_object_set_new(map, layout[i].name, json_string(shard));
    }
    json_object_set_new(root, "weight_map", map);
    char path[BA_PATH_MAX + 128];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    int bad = json_dump_file(root, path, JSON_INDENT(2));
    json_decref(root);
    if (bad) return ba_fail(err, BA_ERR_IO, "%s: cannot write", path);
    return BA_OK;
}

/* Contiguous groups of tensors of about equal bytes, none empty. */
static void assign_shards(const size_t *bytes, size_t n, int n_shards, size_t *shard_of)
{
    size_t total = 0, seen = 0, shard = 0, last = (size_t)n_shards - 1;
    for (size_t i = 0; i < n; i++) total += bytes[i];
    for (size_t i = 0; i < n; i++) {
        /* The current shard already holds tensor i-1; move on when it has
         * its share, or when each later shard needs one of the rest. */
        bool full = seen >= (shard + 1) * (total / (size_t)n_shards);
        bool needed = n - i <= last - shard;
        if (i > 0 && shard < last && (full || needed)) shard++;
        shard_of[i] = shard;
        seen += bytes[i];
    }
}

static ba_status write_weights(const char *dir, const ba_random_tensor *layout, size_t n,
                               const ba_random_checkpoint *spec, ba_error *err)
{
    ba_status rc = BA_OK;
    size_t *bytes = NULL, *shard_of = NULL, total = 0;
    char path[BA_PATH_MAX + 128];
    if ((size_t)spec->n_shards > n)
        return ba_fail(err, BA_ERR_USAGE, "%d shards asked for, the checkpoint has only %zu "
                       "tensors", spec->n_shards, n);
    BA_ALLOC(bytes, n, "tensor sizes", done);
    BA_ALLOC(shard_of, n, "shard assignment", done);
    for (size_t i = 0; i < n; i++) {
        bytes[i] = element_count(&layout[i]) * ba_dtype_size(spec->dtype);
        total += bytes[i];
    }
    if (spec->n_shards == 1) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        rc = write_shard(path, layout, 0, n, spec->dtype, spec->seed, err);
        goto done;
    }
    assign_shards(bytes, n, spec->n_shards, shard_of);
    for (size_t first = 0; first < n;) {
        size_t last = first;
        while (last < n && shard_of[last] == shard_of[first]) last++;
        snprintf(path, sizeof path, "%s/model-%05zu-of-%05d.safetensors", dir,
                 shard_of[first] + 1, spec->n_shards);
        BA_TRY(write_shard(path, layout, first, last - first, spec->dtype, spec->seed, err), done);
        first = last;
    }
    rc = write_index(dir, layout, n, shard_of, spec->n_shards, total, err);
done:
    free(bytes);
    free(shard_of);
    return rc;
}

/* ---- tokenizer files ---------------------------------------------------------------- */

static const char *TOKENIZER_FILES[] = {
    "vocab.json", "merges.txt", "encoder.json", "vocab.bpe", "tokenizer.json",
    "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
};

static ba_status copy_file(const char *from, const char *to, ba_error *err)
{
    FILE *in = fopen(from, "rb");
    if (!in) return ba_fail(err, BA_ERR_IO, "%s: cannot open: %s", from, strerror(errno));
    FILE *out = fopen(to, "wb");
    if (!out) {
        fclose(in);
        return ba_fail(err, BA_ERR_IO, "%s: cannot create: %s", to, strerror(errno));
    }
    char buf[65536];
    size_t got;
    bool ok = true;
    while (ok && (got = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, got, out) == got;
    ok = ok && !ferror(in);
    fclose(in);
    if (fclose(out) != 0) ok = false;
    if (!ok) return ba_fail(err, BA_ERR_IO, "%s: cannot copy to %s", from, to);
    return BA_OK;
}

/* The vocabulary size of the tokenizer in dir: the entries of vocab.json or
 * encoder.json, else what tokenizer.model / tokenizer.json hold. */
static ba_status count_vocabulary(const char *dir, int *count, ba_error *err)
{
    const char *names[] = {"vocab.json", "encoder.json"};
    for (int i = 0; i < 2; i++) {
        char path[BA_PATH_MAX + 128];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (!ba_file_exists(path)) continue;
        json_error_t jerr;
        json_t *root = json_load_file(path, 0, &jerr);
        if (!root)
            return ba_fail(err, BA_ERR_FORMAT, "%s: not valid JSON (line %d): %s", path,
                           jerr.line, jerr.text);
        bool ok = json_is_object(root);
        *count = (int)json_object_size(root);
        json_decref(root);
        if (!ok || *count == 0)
            return ba_fail(err, BA_ERR_FORMAT, "%s: expected an object token -> id", path);
        return BA_OK;
    }
    /* tokenizer.model / tokenizer.json: ask the tokenizer itself. */
    char path[BA_PATH_MAX + 128];
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    bool sp = ba_file_exists(path);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (sp || ba_file_exists(path)) {
        ba_tokenizer *tok = NULL;
        BA_CHECK(ba_tokenizer_load(dir, &tok, err));
        *count = (int)ba_tokenizer_vocab_size(tok);
        ba_tokenizer_destroy(tok);
        return BA_OK;
    }
    return ba_fail(err, BA_ERR_IO, "%s: no vocab.json, encoder.json, tokenizer.json or "
                   "tokenizer.model to size the vocabulary (give the vocabulary size instead)",
                   dir);
}

static ba_status copy_tokenizer(const char *from, const char *to, ba_error *err)
{
    int copied = 0;
    for (size_t i = 0; i < sizeof TOKENIZER_FILES / sizeof *TOKENIZER_FILES; i++) {
        char src[BA_PATH_MAX + 128], dst[BA_PATH_MAX + 128];
        snprintf(src, sizeof src, "%s/%s", from, TOKENIZER_FILES[i]);
        snprintf(dst, sizeof dst, "%s/%s", to, TOKENIZER_FILES[i]);
        if (!ba_file_exists(src)) continue;
        BA_CHECK(copy_file(src, dst, err));
        copied++;
    }
    if (copied == 0)
        return ba_fail(err, BA_ERR_IO, "%s: no tokenizer files (vocab.json + merges.txt, "
                       "encoder.json + vocab.bpe, tokenizer.json or tokenizer.model)", from);
    return BA_OK;
}

/* ---- the whole directory ------------------------------------------------------------- */

static void remove_tree_flat(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            char path[4400];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* LLaMA's MLP width when none is given: 2/3 of 4 d_model rounded up to a
 * multiple of 256, as Meta's reference code sizes it (11008 for 4096). */
static int llama_default_d_ff(int d_model)
{
    long f = 2L * 4 * d_model / 3;
    return (int)((f + 255) / 256 * 256);
}

static ba_status check_random_spec(const ba_random_checkpoint *spec, ba_error *err)
{
    if (spec->arch != BA_ARCH_GPT2 && spec->arch != BA_ARCH_LLAMA)
        return ba_fail(err, BA_ERR_USAGE, "random checkpoints of architecture '%s' are not "
                       "implemented (gpt2, llama)", ba_arch_name(spec->arch));
    if (spec->n_layers < 1 || spec->d_model < 1 || spec->n_heads < 1 || spec->n_positions < 1 ||
        spec->vocab_size < 1 || spec->d_ff < 0 || spec->n_shards < 1 || spec->n_kv_heads < 0 ||
        !(spec->init_std >= 0 && spec->init_std < 100) || !(spec->rope_theta >= 0) ||
        !(spec->norm_eps >= 0 && spec->norm_eps < 1) || spec->tie_embeddings < -1 ||
        spec->tie_embeddings > 1)
        return ba_fail(err, BA_ERR_USAGE, "random checkpoint: layers, width, heads, positions, "
                       "vocabulary and shards must be positive, the weights' std in [0, 100), "
                       "rope theta >= 0 and the norm epsilon in [0, 1)");
    if (spec->d_model % spec->n_heads != 0)
        return ba_fail(err, BA_ERR_USAGE, "random checkpoint: width %d is not a multiple of the "
                       "%d heads", spec->d_model, spec->n_heads);
    if (spec->dtype != BA_DTYPE_F32 && spec->dtype != BA_DTYPE_F16 && spec->dtype != BA_DTYPE_BF16)
        return ba_fail(err, BA_ERR_USAGE, "random checkpoint: dtype %s (F32, F16 or BF16)",
                       ba_dtype_name(spec->dtype));
    if (spec->arch == BA_ARCH_GPT2) {
        if ((spec->n_kv_heads && spec->n_kv_heads != spec->n_heads) || spec->rope_theta != 0 ||
            spec->tie_embeddings == -1)
            return ba_fail(err, BA_ERR_USAGE, "random checkpoint: GPT-2 has no key/value head "
                           "count, rotary embeddings or untied output layer (LLaMA options)");
        return BA_OK;
    }
    int kv = spec->n_kv_heads ? spec->n_kv_heads : spec->n_heads;
    if (spec->n_heads % kv != 0)
        return ba_fail(err, BA_ERR_USAGE, "random checkpoint: %d heads are not a multiple of the "
                       "%d key/value heads", spec->n_heads, kv);
    if ((spec->d_model / spec->n_heads) % 2 != 0)
        return ba_fail(err, BA_ERR_USAGE, "random checkpoint: head width %d is odd; rotary "
                       "embeddings need an even one", spec->d_model / spec->n_heads);
    return BA_OK;
}

static ba_status random_config(const ba_random_checkpoint *spec, ba_model_config *cfg,
                               ba_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    BA_CHECK(check_random_spec(spec, err));
    bool llama = spec->arch == BA_ARCH_LLAMA;
    cfg->arch = spec->arch;
    snprintf(cfg->model_type, sizeof cfg->model_type, "%s", ba_arch_name(spec->arch));
    cfg->n_layers = spec->n_layers;
    cfg->n_heads = spec->n_heads;
    cfg->n_kv_heads = spec->n_kv_heads ? spec->n_kv_heads : spec->n_heads;
    cfg->d_model = spec->d_model;
    cfg->d_ff = spec->d_ff ? spec->d_ff
                : llama    ? llama_default_d_ff(spec->d_model)
                           : 4 * spec->d_model;
    cfg->vocab_size = spec->vocab_size;
    cfg->n_positions = spec->n_positions;
    cfg->norm_eps = spec->norm_eps > 0 ? spec->norm_eps : 1e-5;
    cfg->rope_theta = llama ? (spec->rope_theta > 0 ? spec->rope_theta : 10000.0) : 0.0;
    snprintf(cfg->activation, sizeof cfg->activation, "%s", llama ? "silu" : "gelu_new");
    cfg->tie_word_embeddings = spec->tie_embeddings ? spec->tie_embeddings > 0 : !llama;
    return BA_OK;
}

static const char *torch_dtype_name(ba_dtype dtype)
{
    return dtype == BA_DTYPE_F16 ? "float16" : dtype == BA_DTYPE_BF16 ? "bfloat16" : "float32";
}

ba_status ba_model_write_random(const ba_random_checkpoint *spec, const char *out_dir,
                                ba_error *err)
{
    ba_status rc = BA_OK;
    ba_random_checkpoint s = *spec;
    ba_random_tensor *layout = NULL;
    size_t n_tensors = 0;
    char temp[BA_PATH_MAX + 128] = "", path[BA_PATH_MAX + 256];
    struct stat sb;
    if (stat(out_dir, &sb) == 0)
        return ba_fail(err, BA_ERR_IO, "%s: already exists; choose a new output directory",
                       out_dir);
    if (s.vocab_from) {
        int counted = 0;
        BA_CHECK(count_vocabulary(s.vocab_from, &counted, err));
        if (s.vocab_size == 0) s.vocab_size = counted;
        else if (s.vocab_size < counted)
            return ba_fail(err, BA_ERR_USAGE, "vocabulary size %d is smaller than the %d tokens "
                           "of %s", s.vocab_size, counted, s.vocab_from);
    }
    ba_model_config cfg;
    BA_CHECK(random_config(&s, &cfg, err));
    double std = s.init_std > 0 ? s.init_std : 0.02;
    BA_CHECK(ops_for(cfg.arch)->random_layout(&cfg, std, &layout, &n_tensors, err));

    int n = snprintf(temp, sizeof temp, "%s.tmp-XXXXXX", out_dir);
    if (n < 0 || (size_t)n >= sizeof temp || !mkdtemp(temp)) {
        rc = ba_fail(err, BA_ERR_IO, "%s: cannot create a temporary directory beside it: %s",
                     out_dir, strerror(errno));
        temp[0] = '\0';
        goto done;
    }
    snprintf(path, sizeof path, "%s/config.json", temp);
    BA_TRY(ba_model_config_write(path, &cfg, torch_dtype_name(s.dtype), err), done);
    BA_TRY(write_weights(temp, layout, n_tensors, &s, err), done);
    if (s.vocab_from) BA_TRY(copy_tokenizer(s.vocab_from, temp, err), done);
    chmod(temp, 0755);
    if (rename(temp, out_dir) != 0) {
        rc = ba_fail(err, BA_ERR_IO, "%s: cannot rename from %s: %s", out_dir, temp,
                     strerror(errno));
        goto done;
    }
    temp[0] = '\0';
done:
    if (temp[0]) remove_tree_flat(temp);
    free(layout);
    return rc;
}

/* ---- trained and merged checkpoints (lm/train.h) ----------------------------------------- */

/* Which tensors a saved checkpoint replaces by float32 values, and how. */
typedef struct {
    const ba_trainable *trained;  /* freeze masters, or NULL */
    const ba_adapter *adapter;    /* merged LoRA, or NULL    */
    const char *prefix;           /* the checkpoint's block-name prefix */
} save_plan;

/* The adapter module whose base weight is `name`, or NULL. */
static const ba_lora_module *merged_module(const ba_model *m, const save_plan *p,
                                           const char *name)
{
    if (!p->adapter) return NULL;
    bool gpt2 = m->cfg.arch == BA_ARCH_GPT2;
    for (size_t i = 0; i < p->adapter->n_modules; i++) {
        const ba_lora_module *mod = &p->adapter->modules[i];
        char want[256];
        snprintf(want, sizeof want, "%s%s%d.%s.weight", p->prefix, gpt2 ? "h." : "layers.",
                 mod->layer, ba_lora_site_path(mod->site));
        if (strcmp(want, name) == 0) return mod;
    }
    return NULL;
}

static bool saved_as_f32(const ba_model *m, const save_plan *p, const ba_tensor *t)
{
    return (p->trained && ba_trainable_find(p->trained, t->name) >= 0) ||
           merged_module(m, p, t->name) != NULL;
}

/* out [t->n_elements]: the master, or W + scale B A (as [in][out] for GPT-2's Conv1D). */
static void saved_values(const ba_model *m, const save_plan *p, const ba_tensor *t, float *out)
{
    long k = p->trained ? ba_trainable_find(p->trained, t->name) : -1;
    if (k >= 0) {
        memcpy(out, p->trained->tensors[k].value, t->n_elements * sizeof *out);
        return;
    }
    const ba_lora_module *mod = merged_module(m, p, t->name);
    const float *src = ba_weight_f32(t, 0, t->n_elements, out);
    if (src != out) memcpy(out, src, t->n_elements * sizeof *out);
    size_t in = (size_t)mod->in, o = (size_t)mod->out, r = (size_t)p->adapter->cfg.r;
    float scale = (float)p->adapter->scale;
    if (m->cfg.arch == BA_ARCH_GPT2) /* W [in][out] += scale A^T B^T */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, (int)in, (int)o, (int)r, scale, mod->A,
                    (int)in, mod->B, (int)r, 1.0f, out, (int)o);
    else /* W [out][in] += scale B A */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)o, (int)in, (int)r, scale,
                    mod->B, (int)r, mod->A, (int)in, 1.0f, out, (int)in);
}

static ba_status write_saved_weights(const ba_model *m, const save_plan *p, const char *path,
                                     ba_error *err)
{
    ba_status rc = BA_OK;
    size_t n = ba_checkpoint_count(m->ckpt), biggest = 0;
    ba_tensor_spec *specs = NULL;
    float *buf = NULL;
    ba_st_writer *w = NULL;
    BA_ALLOC(specs, n ? n : 1, "checkpoint tensor list", done);
    for (size_t i = 0; i < n; i++) {
        const ba_tensor *t = ba_checkpoint_at(m->ckpt, i);
        specs[i].name = t->name;
        specs[i].dtype = saved_as_f32(m, p, t) ? BA_DTYPE_F32 : t->dtype;
        specs[i].rank = t->rank;
        for (int d = 0; d < t->rank; d++) specs[i].shape[d] = t->shape[d];
        if (specs[i].dtype == BA_DTYPE_F32 && t->n_elements > biggest) biggest = t->n_elements;
    }
    if (biggest) BA_ALLOC(buf, biggest, "saved tensor", done);
    const char *meta[] = {"format", "pt"};
    BA_TRY(ba_st_writer_open(path, specs, n, meta, 1, &w, err), done);
    for (size_t i = 0; i < n; i++) {
        const ba_tensor *t = ba_checkpoint_at(m->ckpt, i);
        if (saved_as_f32(m, p, t)) {
            saved_values(m, p, t, buf);
            BA_TRY(ba_st_writer_write(w, buf, t->n_elements * sizeof *buf, err), done);
        } else if (t->n_bytes) {
            BA_TRY(ba_st_writer_write(w, t->data, t->n_bytes, err), done);
        }
    }
    rc = ba_st_writer_finish(w, err);
    w = NULL;
done:
    ba_st_writer_abort(w);
    free(buf);
    free(specs);
    return rc;
}

static ba_status save_checkpoint(const ba_model *m, const save_plan *p, const char *dir,
                                 ba_error *err)
{
    ba_status rc = BA_OK;
    char temp[4200] = "", path[4300], src[4300];
    struct stat sb;
    if (stat(dir, &sb) == 0)
        return ba_fail(err, BA_ERR_IO, "%s: already exists; choose a new output directory", dir);
    int n = snprintf(temp, sizeof temp, "%s.tmp-XXXXXX", dir);
    if (n < 0 || (size_t)n >= sizeof temp || !mkdtemp(temp)) {
        temp[0] = '\0';
        return ba_fail(err, BA_ERR_IO, "%s: cannot create a temporary directory beside it: %s",
                       dir, strerror(errno));
    }
    snprintf(src, sizeof src, "%s/config.json", m->dir);
    snprintf(path, sizeof path, "%s/config.json", temp);
    BA_TRY(copy_file(src, path, err), done);
    for (size_t i = 0; i < sizeof TOKENIZER_FILES / sizeof *TOKENIZER_FILES; i++) {
        snprintf(src, sizeof src, "%s/%s", m->dir, TOKENIZER_FILES[i]);
        snprintf(path, sizeof path, "%s/%s", temp, TOKENIZER_FILES[i]);
        if (ba_file_exists(src)) BA_TRY(copy_file(src, path, err), done);
    }
    snprintf(path, sizeof path, "%s/model.safetensors", temp);
    BA_TRY(write_saved_weights(m, p, path, err), done);
    chmod(temp, 0755);
    if (rename(temp, dir) != 0) {
        rc = ba_fail(err, BA_ERR_IO, "%s: cannot rename from %s: %s", dir, temp, strerror(errno));
        goto done;
    }
    temp[0] = '\0';
done:
    if (temp[0]) remove_tree_flat(temp);
    if (rc != BA_OK) ba_context(err, "%s: writing the checkpoint", dir);
    return rc;
}

static const char *block_prefix(const ba_model *m)
{
    if (m->cfg.arch == BA_ARCH_GPT2)
        return ba_checkpoint_lookup(m->ckpt, "transformer.wte.weight") ? "transformer." : "";
    return ba_checkpoint_lookup(m->ckpt, "model.embed_tokens.weight") ? "model." : "";
}

ba_status ba_model_save_trained(const ba_model *model, const ba_trainable *t, const char *dir,
                                ba_error *err)
{
    if (!t || t->is_lora)
        return ba_fail(err, BA_ERR_USAGE, "%s: ba_model_save_trained takes a freeze set (a LoRA "
                       "set is saved with ba_adapter_save or merged with ba_model_save_merged)",
                       dir);
    if (memcmp(&t->model->cfg, &model->cfg, sizeof model->cfg) != 0)
        return ba_fail(err, BA_ERR_USAGE, "%s: the trainable set was built for the model in %s, "
                       "not %s", dir, t->model->dir, model->dir);
    save_plan p = {t, NULL, block_prefix(model)};
    return save_checkpoint(model, &p, dir, err);
}

ba_status ba_model_save_merged(const ba_model *model, const ba_adapter *adapter,
                               const char *dir, ba_error *err)
{
    if (!adapter) return ba_fail(err, BA_ERR_USAGE, "%s: no adapter to merge", dir);
    BA_CHECK(ba_adapter_check_model(adapter, &model->cfg, err));
    save_plan p = {NULL, adapter, block_prefix(model)};
    return save_checkpoint(model, &p, dir, err);
}
