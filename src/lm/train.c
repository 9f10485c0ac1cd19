/* train.c — the model's training pass (lm/train.h): trainable sets (LoRA
 * adapters, the last K blocks in full), attaching them to a context (the
 * LoRA hooks of the one weight product, the freeze masters), and the
 * architecture-independent part of ba_model_train_sequence (checks, the
 * label shift, the loss checks). The per-architecture forward/backward is
 * in arch/gpt2.c and arch/llama.c (ops->train). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/core/rng.h"
#include "brainalign/lm/ops.h"
#include "brainalign/lm/train.h"
#include "model_internal.h"

/* ---- trainable sets ------------------------------------------------------------------- */

static ba_status alloc_set(const ba_model *model, size_t count, size_t floats, bool values,
                           ba_trainable **out, ba_error *err)
{
    ba_status rc = BA_OK;
    ba_trainable *t = ba_calloc(1, sizeof *t, "trainable set", err);
    if (!t) return BA_ERR_NOMEM;
    t->model = model;
    t->count = count;
    t->floats = floats;
    BA_ALLOC(t->tensors, count ? count : 1, "trainable tensors", fail);
    BA_ALLOC(t->names, count ? count : 1, "trainable tensor names", fail);
    BA_ALLOC(t->grads, floats ? floats : 1, "trainable gradients", fail);
    if (values) {
        BA_ALLOC(t->values, floats ? floats : 1, "trainable master weights", fail);
        BA_ALLOC(t->masters, count ? count : 1, "trainable master tensors", fail);
    }
    *out = t;
    return BA_OK;
fail:
    ba_trainable_destroy(t);
    return rc;
}

ba_status ba_trainable_lora(const ba_model *model, ba_adapter *adapter, double dropout,
                            uint64_t seed, ba_trainable **out, ba_error *err)
{
    *out = NULL;
    if (!adapter || adapter->n_modules == 0)
        return ba_fail(err, BA_ERR_USAGE, "%s: a LoRA trainable set needs an adapter with at "
                       "least one module", model->dir);
    if (!(dropout >= 0.0 && dropout < 1.0))
        return ba_fail(err, BA_ERR_VALUE, "%s: LoRA dropout %g, expected a number in [0, 1)",
                       model->dir, dropout);
    BA_CHECK(ba_adapter_check_model(adapter, &model->cfg, err));
    size_t count = 2 * adapter->n_modules, floats = 0, r = (size_t)adapter->cfg.r;
    for (size_t i = 0; i < adapter->n_modules; i++)
        floats += r * (size_t)(adapter->modules[i].in + adapter->modules[i].out);
    ba_trainable *t = NULL;
    BA_CHECK(alloc_set(model, count, floats, false, &t, err));
    t->is_lora = true;
    t->adapter = adapter;
    t->dropout = dropout;
    t->seed = seed;
    t->lowest = model->cfg.n_layers;
    size_t at = 0;
    for (size_t i = 0; i < adapter->n_modules; i++) {
        ba_lora_module *m = &adapter->modules[i];
        if (m->layer < t->lowest) t->lowest = m->layer;
        for (int w = 0; w < 2; w++) {
            size_t k = 2 * i + (size_t)w;
            ba_status rc = ba_lora_tensor_name(m->site, m->layer, w ? 'B' : 'A', t->names[k],
                                               sizeof t->names[k], err);
            if (rc != BA_OK) {
                ba_trainable_destroy(t);
                return rc;
            }
            ba_train_tensor *tt = &t->tensors[k];
            tt->name = t->names[k];
            tt->value = w ? m->B : m->A;
            tt->n = r * (size_t)(w ? m->out : m->in);
            tt->grad = t->grads + at;
            at += tt->n;
            tt->rank = 2;
            tt->shape[0] = w ? m->out : (int64_t)r;
            tt->shape[1] = w ? (int64_t)r : m->in;
        }
    }
    *out = t;
    return BA_OK;
}

ba_status ba_adapter_init_peft(ba_adapter *adapter, uint64_t seed, ba_error *err)
{
    if (!adapter || adapter->cfg.r < 1)
        return ba_fail(err, BA_ERR_USAGE, "LoRA initialisation: no adapter, or r < 1");
    size_t r = (size_t)adapter->cfg.r;
    for (size_t i = 0; i < adapter->n_modules; i++) {
        ba_lora_module *m = &adapter->modules[i];
        ba_rng rng;
        ba_rng_seed(&rng, seed, (uint64_t)i);
        /* kaiming_uniform_(a = sqrt(5)): gain sqrt(2 / (1 + 5)), bound
         * gain sqrt(3 / fan_in) = 1 / sqrt(fan_in). */
        double bound = 1.0 / sqrt((double)m->in);
        for (size_t k = 0; k < r * (size_t)m->in; k++)
            m->A[k] = (float)((2.0 * ba_rng_uniform(&rng) - 1.0) * bound);
        memset(m->B, 0, r * (size_t)m->out * sizeof *m->B);
    }
    return BA_OK;
}

/* The block tensors of an architecture, in the order of one block's set. */
static const char *const GPT2_BLOCK[] = {
    "ln_1.weight",      "ln_1.bias",        "attn.c_attn.weight", "attn.c_attn.bias",
    "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight",      "ln_2.bias",
    "mlp.c_fc.weight",  "mlp.c_fc.bias",    "mlp.c_proj.weight",  "mlp.c_proj.bias",
};
static const char *const LLAMA_BLOCK[] = {
    "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
    "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
    "mlp.gate_proj.weight",   "mlp.up_proj.weight",      "mlp.down_proj.weight",
};

ba_status ba_trainable_freeze(const ba_model *model, int k, ba_trainable **out, ba_error *err)
{
    *out = NULL;
    const ba_model_config *c = &model->cfg;
    int L = c->n_layers;
    if (k < 1 || k > L)
        return ba_fail(err, BA_ERR_VALUE, "%s: %d trainable layers asked for, the model has %d "
                       "blocks (expected 1 to %d)", model->dir, k, L, L);
    bool gpt2 = c->arch == BA_ARCH_GPT2;
    const char *const *list = gpt2 ? GPT2_BLOCK : LLAMA_BLOCK;
    size_t per = gpt2 ? sizeof GPT2_BLOCK / sizeof *GPT2_BLOCK
                      : sizeof LLAMA_BLOCK / sizeof *LLAMA_BLOCK;
    const char *prefix = "";
    if (gpt2 && ba_checkpoint_lookup(model->ckpt, "transformer.wte.weight")) prefix = "transformer.";
    if (!gpt2 && ba_checkpoint_lookup(model->ckpt, "model.embed_tokens.weight")) prefix = "model.";
    size_t count = (size_t)k * per, floats = 0;
    char name[192];
    for (int i = L - k; i < L; i++)
        for (size_t s = 0; s < per; s++) {
            snprintf(name, sizeof name, "%s%s%d.%s", prefix, gpt2 ? "h." : "layers.", i, list[s]);
            const ba_tensor *bt = NULL;
            BA_CHECK(ba_checkpoint_get(model->ckpt, name, &bt, err));
            floats += bt->n_elements;
        }
    ba_trainable *t = NULL;
    BA_CHECK(alloc_set(model, count, floats, true, &t, err));
    t->k = k;
    t->lowest = L - k;
    size_t at = 0, idx = 0;
    for (int i = L - k; i < L; i++)
        for (size_t s = 0; s < per; s++, idx++) {
            snprintf(t->names[idx], sizeof t->names[idx], "%s%s%d.%s", prefix,
                     gpt2 ? "h." : "layers.", i, list[s]);
            const ba_tensor *bt = ba_checkpoint_lookup(model->ckpt, t->names[idx]);
            ba_train_tensor *tt = &t->tensors[idx];
            tt->name = t->names[idx];
            tt->value = t->values + at;
            tt->grad = t->grads + at;
            tt->n = bt->n_elements;
            tt->rank = bt->rank;
            for (int d = 0; d < bt->rank && d < 4; d++) tt->shape[d] = bt->shape[d];
            const float *src = ba_weight_f32(bt, 0, bt->n_elements, tt->value);
            if (src != tt->value) memcpy(tt->value, src, bt->n_elements * sizeof *tt->value);
            ba_tensor *mt = &t->masters[idx];
            *mt = *bt;
            mt->name = tt->name;
            mt->dtype = BA_DTYPE_F32;
            mt->n_bytes = bt->n_elements * sizeof(float);
            mt->data = tt->value;
            at += tt->n;
        }
    *out = t;
    return BA_OK;
}

void ba_trainable_destroy(ba_trainable *t)
{
    if (!t) return;
    free(t->tensors), free(t->names), free(t->grads), free(t->values), free(t->masters);
    free(t);
}

size_t ba_trainable_count(const ba_trainable *t) { return t->count; }

const ba_train_tensor *ba_trainable_tensor(const ba_trainable *t, size_t i)
{
    return i < t->count ? &t->tensors[i] : NULL;
}

void ba_trainable_zero_grad(ba_trainable *t)
{
    memset(t->grads, 0, t->floats * sizeof *t->grads);
}

void ba_trainable_set_sequence(ba_trainable *t, uint64_t sequence_key)
{
    t->sequence_key = sequence_key;
}

long ba_trainable_find(const ba_trainable *t, const char *name)
{
    for (size_t i = 0; i < t->count; i++)
        if (strcmp(t->names[i], name) == 0) return (long)i;
    return -1;
}

/* ---- attaching ------------------------------------------------------------------------ */

static void detach_all(ba_model_ctx *ctx)
{
    free(ctx->loras);
    free(ctx->arch_blocks);
    ctx->loras = NULL;
    ctx->arch_blocks = NULL;
    ctx->lora_r = 0;
    ctx->lora_in = ctx->lora_out = 0;
    ctx->trainable = NULL;
    ctx->adapter = NULL;
}

/* ctx->loras from an adapter (gradients from the LoRA set when not NULL). */
static ba_status build_loras(ba_model_ctx *ctx, const ba_adapter *ad, ba_trainable *t,
                             ba_error *err)
{
    ba_status rc = BA_OK;
    const ba_model_config *c = &ctx->model->cfg;
    BA_ALLOC(ctx->loras, (size_t)c->n_layers * BA_LORA_N_SITES, "LoRA hooks", done);
    ctx->lora_r = ad->cfg.r;
    for (size_t i = 0; i < ad->n_modules; i++) {
        const ba_lora_module *m = &ad->modules[i];
        ba_lora *l = &ctx->loras[(size_t)m->layer * BA_LORA_N_SITES + m->site];
        l->A = m->A;
        l->B = m->B;
        l->r = ad->cfg.r;
        l->scale = (float)ad->scale;
        l->key = ((uint64_t)m->layer << 8) | (uint64_t)m->site;
        if (t) {
            l->dA = t->tensors[2 * i].grad;
            l->dB = t->tensors[2 * i + 1].grad;
            l->dropout = (float)t->dropout;
        }
        if ((size_t)m->in > ctx->lora_in) ctx->lora_in = (size_t)m->in;
        if ((size_t)m->out > ctx->lora_out) ctx->lora_out = (size_t)m->out;
    }
done:
    return rc;
}

static ba_status finish_attach(ba_model_ctx *ctx, ba_error *err)
{
    ctx->lora_capacity = 0;
    if (ctx->capacity) BA_CHECK(ba_model_ctx_reserve(ctx, ctx->capacity, err));
    return ctx->model->ops->attach(ctx, err);
}

ba_status ba_model_ctx_attach(ba_model_ctx *ctx, ba_trainable *t, ba_error *err)
{
    detach_all(ctx);
    if (!t) return BA_OK;
    if (t->model != ctx->model) {
        if (memcmp(&t->model->cfg, &ctx->model->cfg, sizeof t->model->cfg) != 0)
            return ba_fail(err, BA_ERR_USAGE, "%s: a trainable set built for the model in %s",
                           ctx->model->dir, t->model->dir);
    }
    ba_status rc = BA_OK;
    if (t->is_lora) BA_TRY(build_loras(ctx, t->adapter, t, err), fail);
    ctx->trainable = t;
    BA_TRY(finish_attach(ctx, err), fail);
    return BA_OK;
fail:
    detach_all(ctx);
    return rc;
}

ba_status ba_model_ctx_set_adapter(ba_model_ctx *ctx, const ba_adapter *adapter, ba_error *err)
{
    detach_all(ctx);
    if (!adapter) return BA_OK;
    ba_status rc = BA_OK;
    BA_TRY(ba_adapter_check_model(adapter, &ctx->model->cfg, err), fail);
    BA_TRY(build_loras(ctx, adapter, NULL, err), fail);
    ctx->adapter = adapter;
    BA_TRY(finish_attach(ctx, err), fail);
    return BA_OK;
fail:
    detach_all(ctx);
    return rc;
}

/* ---- buffers of the training pass ---------------------------------------------------- */

ba_status ba_ctx_train_arena(ba_model_ctx *ctx, size_t floats, ba_error *err)
{
    if (floats <= ctx->saved_floats) return BA_OK;
    free(ctx->saved_activations);
    ctx->saved_floats = 0;
    ctx->saved_activations = ba_calloc(floats, sizeof(float), "training activations", err);
    if (!ctx->saved_activations) {
        ba_context(err, "%s: %zu MiB of saved activations", ctx->model->dir,
                   floats * sizeof(float) >> 20);
        return BA_ERR_NOMEM;
    }
    ctx->saved_floats = floats;
    return BA_OK;
}

ba_status ba_ctx_head_f32(ba_model_ctx *ctx, const ba_weight *head, const float **out,
                          ba_error *err)
{
    if (ba_weight_is_direct(head->tensor)) {
        *out = head->tensor->data;
        return BA_OK;
    }
    if (!ctx->head_f32) {
        size_t n = head->tensor->n_elements;
        ctx->head_f32 = ba_calloc(n, sizeof(float), "widened output layer", err);
        if (!ctx->head_f32) return BA_ERR_NOMEM;
        const float *src = ba_weight_f32(head->tensor, 0, n, ctx->head_f32);
        if (src != ctx->head_f32) memcpy(ctx->head_f32, src, n * sizeof(float));
    }
    *out = ctx->head_f32;
    return BA_OK;
}

/* ---- the loss ----------------------------------------------------------------------- */

ba_status ba_train_loss(const float *h, size_t n, size_t d, const float *head, size_t vocab,
                        const int32_t *labels, float grad_scale, const ba_train_loss_ws *ws,
                        double *loss_sum, size_t *count, float *dh, ba_error *err)
{
    /* The rows that have a target, packed: masked rows (a prompt) cost
     * nothing in the output layer. */
    size_t k = 0;
    for (size_t t = 0; t + 1 < n; t++) {
        if (labels[t + 1] == BA_LABEL_IGNORE) continue;
        memcpy(ws->h + k * d, h + t * d, d * sizeof *h);
        ws->target[k++] = labels[t + 1];
    }
    *loss_sum = 0;
    *count = 0;
    if (k == 0) return BA_OK;
    memset(ws->dh, 0, k * d * sizeof *ws->dh);
    BA_CHECK(ba_cross_entropy_chunked(ws->h, k, d, head, vocab, ws->target, grad_scale,
                                      ws->row_chunk, ws->vocab_chunk, ws->tile, ws->row_stats,
                                      loss_sum, count, ws->dh, NULL, err));
    k = 0;
    for (size_t t = 0; t + 1 < n; t++) {
        if (labels[t + 1] == BA_LABEL_IGNORE) continue;
        const float *src = ws->dh + (k++) * d;
        for (size_t j = 0; j < d; j++) dh[t * d + j] += src[j];
    }
    return BA_OK;
}

/* ---- one sequence -------------------------------------------------------------------- */

static bool all_finite(const float *v, size_t n)
{
    float acc = 0.0f;
    for (size_t i = 0; i < n; i++) acc += v[i] * 0.0f; /* NaN/Inf propagate */
    return acc == 0.0f;
}

ba_status ba_model_train_sequence(ba_model_ctx *ctx, const int32_t *tokens,
                                  const int32_t *labels, size_t n, float grad_scale,
                                  bool recompute, double *loss_sum, size_t *count,
                                  float *d_input_embeds, ba_error *err)
{
    const ba_model *m = ctx->model;
    const ba_model_config *c = &m->cfg;
    ba_trainable *t = ctx->trainable;
    if (!t)
        return ba_fail(err, BA_ERR_USAGE, "%s: ba_model_train_sequence on a context without an "
                       "attached trainable set (ba_model_ctx_attach)", m->dir);
    if (n < 2 || n > (size_t)c->n_positions)
        return ba_fail(err, BA_ERR_SHAPE, "%s: a training sequence of %zu tokens, expected 2 to "
                       "%d", m->dir, n, c->n_positions);
    for (size_t i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
            return ba_fail(err, BA_ERR_VALUE, "%s: token %zu of the sequence has id %d, outside "
                           "the vocabulary [0, %d)", m->dir, i, (int)tokens[i], c->vocab_size);
        if (labels[i] != BA_LABEL_IGNORE && (labels[i] < 0 || labels[i] >= c->vocab_size))
            return ba_fail(err, BA_ERR_VALUE, "%s: label %zu of the sequence is %d, expected an "
                           "id in [0, %d) or %d (ignored)", m->dir, i, (int)labels[i],
                           c->vocab_size, BA_LABEL_IGNORE);
    }
    if (!isfinite(grad_scale))
        return ba_fail(err, BA_ERR_VALUE, "%s: gradient scale %g is not finite", m->dir,
                       (double)grad_scale);
    BA_CHECK(ba_model_ctx_reserve(ctx, n, err));
    ctx->training = true;
    ctx->dropout_key = t->seed * 0x9E3779B97F4A7C15ull ^ t->sequence_key;
    ba_status rc = m->ops->train(ctx, tokens, labels, n, grad_scale, recompute, loss_sum, count,
                                 d_input_embeds, err);
    ctx->training = false;
    BA_CHECK(rc);
    if (!isfinite(*loss_sum) || !all_finite(t->grads, t->floats) ||
        (d_input_embeds && !all_finite(d_input_embeds, n * (size_t)c->d_model)))
        return ba_fail(err, BA_ERR_VALUE, "%s: non-finite loss (%g) or gradient in the sequence "
                       "starting at token position 0 (first token id %d)", m->dir, *loss_sum,
                       (int)tokens[0]);
    return BA_OK;
}
