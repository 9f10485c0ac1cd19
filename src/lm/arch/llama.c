/* model_llama.c — LLaMA / LLaMA-2 (Hugging Face LlamaForCausalLM layout).
 *
 * Tensors, prefixed "model." (LlamaForCausalLM) or not (a bare LlamaModel):
 * embed_tokens.weight [V, d], layers.{i}.input_layernorm.weight [d],
 * layers.{i}.self_attn.{q,o}_proj.weight [d, d],
 * layers.{i}.self_attn.{k,v}_proj.weight [kv dh, d],
 * layers.{i}.post_attention_layernorm.weight [d],
 * layers.{i}.mlp.{gate,up}_proj.weight [f, d], layers.{i}.mlp.down_proj.weight
 * [d, f], norm.weight [d]; lm_head.weight [V, d] unless tie_word_embeddings
 * (then embed_tokens is the output layer and a stored lm_head.weight is
 * not used). nn.Linear weights are stored [out, in]. The buffers
 * layers.{i}.self_attn.rotary_emb.inv_freq of older checkpoints are
 * ignored; any other tensor is an error.
 *
 * Block i: x += o(attn(rope(q(n1(x))), rope(k(n1(x))), v(n1(x))));
 *          x += down(silu(gate(n2(x))) * up(n2(x))), with n1, n2 RMSNorms,
 * grouped-query causal attention (query head h reads key/value head
 * h / (heads / kv_heads)) and rotary embeddings in Hugging Face's
 * rotate_half convention, applied to q and k as stored (Hugging Face's
 * converted checkpoints already permute q_proj/k_proj rows for it).
 *
 * Half-precision matrices stay in the map and are widened a panel of rows
 * at a time right before their product (ba_weight_product), so besides the
 * shared map a context holds one window's activations and one small panel.
 * The activation buffers grow to the longest window seen, not to
 * max_position_embeddings. With BA_MATMUL_BF16 (ba_model_ctx_set_matmul) the
 * BF16 matrices, lm_head included, multiply bfloat16-rounded activations
 * as stored instead (ba_linear_bf16), as a PyTorch bf16 model does. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/kernels/kernels.h"
#include "brainalign/lm/ops.h"
#include "../model_internal.h"

/* Floats of the widening scratch: one panel of rows of a half-precision
 * matrix (64 MiB; LLaMA-2-7B: q/k/v/o whole, gate/up in 3 panels of up to
 * 4096 rows, down in 3 of up to 1520). Measured on a Zen 4 core
 * (OpenBLAS SKYLAKEX kernels, 512 tokens x 4096 x 11008): every sgemm call
 * packs the whole activation matrix again, so panels of 128 or 256 rows
 * (which would stay in cache) lose 10-15 % to that repacking, while panels
 * of 1024-2048 rows run within 3 % of widening the whole matrix (which
 * itself runs within 5 % of an sgemm on float32 weights). */
#ifndef BA_LLAMA_PANEL_FLOATS
#define BA_LLAMA_PANEL_FLOATS (16 * 1024 * 1024)
#endif

typedef struct {
    const ba_tensor *attn_norm, *q, *k, *v, *o, *mlp_norm, *gate, *up, *down;
    const float *attn_norm_f, *mlp_norm_f; /* as float32 (map or vector arena) */
    /* The nn.Linear products ([out][in], no bias). */
    ba_weight wq, wk, wv, wo, wgate, wup, wdown;
} llama_block;

/* The weights, read-only once loaded (the run state is the ba_model_ctx). */
typedef struct {
    llama_block *blocks;
    const ba_tensor *embed, *norm;
    const float *norm_f;
    ba_weight lm_head;       /* [V][d]: lm_head.weight or embed_tokens     */
    float *vectors;          /* widened 1-D weights when not F32 in the map */
    size_t vectors_used, vectors_cap;
} llama_model;

static int head_dim(const ba_model_config *c) { return c->d_model / c->n_heads; }

/* ---- loading ------------------------------------------------------------------- */

typedef struct {
    ba_model *model;
    const char *prefix; /* "model." or "" */
} llama_loader;

static ba_status expect(const llama_loader *ld, const char *prefix, const char *name, int rank,
                        int64_t d0, int64_t d1, const ba_tensor **out, ba_error *err)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    int64_t shape[2] = {d0, d1};
    return ba_model_expect_tensor(ld->model, full, rank, shape, out, err);
}

static ba_status bind_block(const llama_loader *ld, int i, llama_block *b, ba_error *err)
{
    const ba_model_config *c = &ld->model->cfg;
    int64_t d = c->d_model, f = c->d_ff, kv = (int64_t)c->n_kv_heads * head_dim(c);
    char n[128];
#define BLOCK_TENSOR(field, suffix, rank, d0, d1)                                            \
    do {                                                                                     \
        snprintf(n, sizeof n, "layers.%d.%s", i, suffix);                                    \
        BA_CHECK(expect(ld, ld->prefix, n, rank, d0, d1, &b->field, err));                   \
    } while (0)
    BLOCK_TENSOR(attn_norm, "input_layernorm.weight", 1, d, 0);
    BLOCK_TENSOR(q, "self_attn.q_proj.weight", 2, d, d);
    BLOCK_TENSOR(k, "self_attn.k_proj.weight", 2, kv, d);
    BLOCK_TENSOR(v, "self_attn.v_proj.weight", 2, kv, d);
    BLOCK_TENSOR(o, "self_attn.o_proj.weight", 2, d, d);
    BLOCK_TENSOR(mlp_norm, "post_attention_layernorm.weight", 1, d, 0);
    BLOCK_TENSOR(gate, "mlp.gate_proj.weight", 2, f, d);
    BLOCK_TENSOR(up, "mlp.up_proj.weight", 2, f, d);
    BLOCK_TENSOR(down, "mlp.down_proj.weight", 2, d, f);
#undef BLOCK_TENSOR
    b->wq = ba_weight_of(b->q, BA_WEIGHT_OUT_IN, NULL);
    b->wk = ba_weight_of(b->k, BA_WEIGHT_OUT_IN, NULL);
    b->wv = ba_weight_of(b->v, BA_WEIGHT_OUT_IN, NULL);
    b->wo = ba_weight_of(b->o, BA_WEIGHT_OUT_IN, NULL);
    b->wgate = ba_weight_of(b->gate, BA_WEIGHT_OUT_IN, NULL);
    b->wup = ba_weight_of(b->up, BA_WEIGHT_OUT_IN, NULL);
    b->wdown = ba_weight_of(b->down, BA_WEIGHT_OUT_IN, NULL);
    return BA_OK;
}

/* "layers.<i>.<rest>" with 0 <= i < n_layers; returns rest or NULL. */
static const char *block_suffix(const char *name, int n_layers)
{
    if (strncmp(name, "layers.", 7) != 0 || name[7] < '0' || name[7] > '9') return NULL;
    char *end = NULL;
    long i = strtol(name + 7, &end, 10);
    if (*end != '.' || i >= n_layers) return NULL;
    return end + 1;
}

static bool known_block_tensor(const char *rest)
{
    static const char *const KNOWN[] = {
        "input_layernorm.weight",  "self_attn.q_proj.weight", "self_attn.k_proj.weight",
        "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
        "mlp.gate_proj.weight",    "mlp.up_proj.weight",      "mlp.down_proj.weight",
        "self_attn.rotary_emb.inv_freq", /* a buffer recomputed from rope_theta: ignored */
    };
    for (size_t k = 0; k < sizeof KNOWN / sizeof *KNOWN; k++)
        if (strcmp(rest, KNOWN[k]) == 0) return true;
    return false;
}

/* Every tensor in the checkpoint must be one LLaMA knows. */
static ba_status check_no_strangers(const llama_loader *ld, ba_error *err)
{
    const ba_checkpoint *ck = ld->model->ckpt;
    size_t plen = strlen(ld->prefix);
    for (size_t i = 0; i < ba_checkpoint_count(ck); i++) {
        const ba_tensor *t = ba_checkpoint_at(ck, i);
        if (strcmp(t->name, "lm_head.weight") == 0) continue;
        bool ok = strncmp(t->name, ld->prefix, plen) == 0;
        const char *rest = t->name + plen, *block = NULL;
        if (ok) {
            ok = strcmp(rest, "embed_tokens.weight") == 0 || strcmp(rest, "norm.weight") == 0;
            if (!ok && (block = block_suffix(rest, ld->model->cfg.n_layers)))
                ok = known_block_tensor(block);
        }
        if (!ok)
            return ba_fail(err, BA_ERR_FORMAT, "%s: unexpected tensor '%s' for a LLaMA checkpoint "
                           "with %d layers (config.json)", t->file, t->name,
                           ld->model->cfg.n_layers);
    }
    return BA_OK;
}

static size_t widened_vector_floats(const ba_tensor *t)
{
    return ba_weight_is_direct(t) ? 0 : t->n_elements;
}

/* A 1-D weight as float32: the map itself, or a widened copy in the arena. */
static const float *vector_f32(llama_model *g, const ba_tensor *t)
{
    if (ba_weight_is_direct(t)) return t->data;
    float *dst = g->vectors + g->vectors_used;
    g->vectors_used += t->n_elements;
    return ba_weight_f32(t, 0, t->n_elements, dst);
}

static ba_status bind_vectors(llama_model *g, int n_layers, ba_error *err)
{
    ba_status rc = BA_OK;
    g->vectors_cap = widened_vector_floats(g->norm);
    for (int i = 0; i < n_layers; i++)
        g->vectors_cap += widened_vector_floats(g->blocks[i].attn_norm) +
                          widened_vector_floats(g->blocks[i].mlp_norm);
    if (g->vectors_cap) BA_ALLOC(g->vectors, g->vectors_cap, "LLaMA widened norm weights", done);
    for (int i = 0; i < n_layers; i++) {
        g->blocks[i].attn_norm_f = vector_f32(g, g->blocks[i].attn_norm);
        g->blocks[i].mlp_norm_f = vector_f32(g, g->blocks[i].mlp_norm);
    }
    g->norm_f = vector_f32(g, g->norm);
done:
    return rc;
}

/* The widening scratch: for each matrix not usable in place, a panel of
 * BA_LLAMA_PANEL_FLOATS (at least one row), or the whole matrix when it
 * is smaller (the output layer: one vocabulary chunk); 0 when every
 * matrix is usable in place. */
static size_t widen_scratch_floats(const llama_model *g, const ba_model_config *c)
{
    size_t chunk = (size_t)c->vocab_size < BA_VOCAB_CHUNK ? (size_t)c->vocab_size
                                                          : BA_VOCAB_CHUNK;
    ba_weight head_chunk = ba_weight_rows(&g->lm_head, 0, chunk);
    size_t need = ba_weight_widen_floats(&head_chunk, BA_LLAMA_PANEL_FLOATS);
    for (int i = 0; i < c->n_layers; i++) {
        const llama_block *b = &g->blocks[i];
        const ba_weight *mats[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->wgate, &b->wup, &b->wdown};
        for (int k = 0; k < 7; k++) {
            size_t f = ba_weight_widen_floats(mats[k], BA_LLAMA_PANEL_FLOATS);
            need = f > need ? f : need;
        }
    }
    return need;
}

static void llama_destroy(ba_model *m)
{
    llama_model *g = m->impl;
    if (!g) return;
    free(g->blocks);
    free(g->vectors);
    free(g);
    m->impl = NULL;
}

static ba_status check_config(const ba_model *m, ba_error *err)
{
    const ba_model_config *c = &m->cfg;
    if (head_dim(c) % 2 != 0)
        return ba_fail(err, BA_ERR_VALUE, "%s/config.json: head width hidden_size / "
                       "num_attention_heads = %d is odd; rotary embeddings need an even one",
                       m->dir, head_dim(c));
    return BA_OK;
}

static ba_status bind_output_layer(const llama_loader *ld, llama_model *g, ba_error *err)
{
    const ba_model_config *c = &ld->model->cfg;
    const ba_tensor *stored = ba_checkpoint_lookup(ld->model->ckpt, "lm_head.weight");
    if (c->tie_word_embeddings && !stored) {
        g->lm_head = ba_weight_of(g->embed, BA_WEIGHT_OUT_IN, NULL);
        return BA_OK;
    }
    if (!stored)
        return ba_fail(err, BA_ERR_FORMAT, "%s: no tensor 'lm_head.weight', and config.json does "
                       "not tie it to the embeddings (tie_word_embeddings is false)",
                       ld->model->dir);
    const ba_tensor *head = NULL;
    BA_CHECK(expect(ld, "", "lm_head.weight", 2, c->vocab_size, c->d_model, &head, err));
    if (c->tie_word_embeddings) head = g->embed; /* tied: as Hugging Face uses it */
    g->lm_head = ba_weight_of(head, BA_WEIGHT_OUT_IN, NULL);
    return BA_OK;
}

static ba_status llama_load(ba_model *m, ba_error *err)
{
    ba_status rc = BA_OK;
    const ba_model_config *c = &m->cfg;
    llama_model *g = ba_calloc(1, sizeof *g, "LLaMA model", err);
    if (!g) return BA_ERR_NOMEM;
    m->impl = g;
    llama_loader ld = {m, ""};
    if (ba_checkpoint_lookup(m->ckpt, "model.embed_tokens.weight")) ld.prefix = "model.";
    BA_TRY(check_config(m, err), fail);
    BA_TRY(check_no_strangers(&ld, err), fail);
    BA_TRY(expect(&ld, ld.prefix, "embed_tokens.weight", 2, c->vocab_size, c->d_model, &g->embed,
                  err), fail);
    BA_TRY(expect(&ld, ld.prefix, "norm.weight", 1, c->d_model, 0, &g->norm, err), fail);
    BA_ALLOC(g->blocks, c->n_layers, "LLaMA blocks", fail);
    for (int i = 0; i < c->n_layers; i++) BA_TRY(bind_block(&ld, i, &g->blocks[i], err), fail);
    BA_TRY(bind_output_layer(&ld, g, err), fail);
    BA_TRY(bind_vectors(g, c->n_layers, err), fail);
    m->widen_floats = widen_scratch_floats(g, c);
    return BA_OK;
fail:
    llama_destroy(m);
    return rc;
}

/* ---- forward -------------------------------------------------------------------- */

/* Row tokens[t] of the embedding table into x[t] (widened in place). */
static void embed(const llama_model *g, const int32_t *tokens, size_t n, size_t d, float *x)
{
    for (size_t t = 0; t < n; t++) {
        float *row = x + t * d;
        const float *src = ba_weight_f32(g->embed, (size_t)tokens[t] * d, d, row);
        if (src != row) memcpy(row, src, d * sizeof *row);
    }
}

static ba_status attention(ba_model_ctx *ctx, const llama_block *b, size_t n, ba_error *err)
{
    const ba_model_config *c = &ctx->model->cfg;
    size_t d = (size_t)c->d_model, dh = (size_t)head_dim(c);
    size_t q_cols = (size_t)c->n_heads * dh, kv_cols = (size_t)c->n_kv_heads * dh;
    size_t ld = q_cols + 2 * kv_cols; /* one row: [q | k | v] */
    float *q = ctx->qkv, *k = q + q_cols, *v = k + kv_cols;
    ba_rmsnorm(ctx->x, n, d, b->attn_norm_f, (float)c->norm_eps, ctx->a);
    BA_CHECK(ba_weight_product(ctx, &b->wq, ctx->a, n, d, q, ld, 0, err));
    BA_CHECK(ba_weight_product(ctx, &b->wk, ctx->a, n, d, k, ld, 0, err));
    BA_CHECK(ba_weight_product(ctx, &b->wv, ctx->a, n, d, v, ld, 0, err));
    ba_rope(q, n, ld, c->n_heads, (int)dh, ctx->rope_cos, ctx->rope_sin);
    ba_rope(k, n, ld, c->n_kv_heads, (int)dh, ctx->rope_cos, ctx->rope_sin);
    ba_attention_causal(q, ld, k, v, ld, n, c->n_heads, c->n_kv_heads, (int)dh,
                        1.0f / sqrtf((float)dh), ctx->att, q_cols, ctx->scores);
    /* x += o(att) */
    return ba_weight_product(ctx, &b->wo, ctx->att, n, q_cols, ctx->x, d, 1, err);
}

static ba_status mlp(ba_model_ctx *ctx, const llama_block *b, size_t n, ba_error *err)
{
    const ba_model_config *c = &ctx->model->cfg;
    size_t d = (size_t)c->d_model, f = (size_t)c->d_ff;
    ba_rmsnorm(ctx->x, n, d, b->mlp_norm_f, (float)c->norm_eps, ctx->a);
    BA_CHECK(ba_weight_product(ctx, &b->wgate, ctx->a, n, d, ctx->ff, f, 0, err));
    BA_CHECK(ba_weight_product(ctx, &b->wup, ctx->a, n, d, ctx->ff2, f, 0, err));
    ba_swiglu(ctx->ff, ctx->ff2, n * f);
    /* x += down(silu(gate) * up) */
    return ba_weight_product(ctx, &b->wdown, ctx->ff, n, f, ctx->x, d, 1, err);
}

static ba_status llama_forward(ba_model_ctx *ctx, const int32_t *tokens, size_t n,
                               const int *layers, int n_kept, float *hidden, float *next_logprob,
                               ba_error *err)
{
    const ba_model_config *c = &ctx->model->cfg;
    const llama_model *g = ctx->model->impl;
    size_t d = (size_t)c->d_model;
    int L = c->n_layers;
    /* Blocks to run: all of them for the log-probabilities, else up to the
     * deepest hidden state asked for. */
    int deepest = 0;
    for (int k = 0; k < n_kept; k++) deepest = layers[k] > deepest ? layers[k] : deepest;
    int blocks = next_logprob ? L : deepest;

    embed(g, tokens, n, d, ctx->x);
    ba_model_store_hidden(ctx->x, 0, n, d, layers, n_kept, hidden);
    ba_rope_tables(0, n, head_dim(c), c->rope_theta, ctx->rope_cos, ctx->rope_sin);
    for (int i = 0; i < blocks; i++) {
        BA_CHECK(attention(ctx, &g->blocks[i], n, err));
        BA_CHECK(mlp(ctx, &g->blocks[i], n, err));
        if (i + 1 < L) ba_model_store_hidden(ctx->x, i + 1, n, d, layers, n_kept, hidden);
    }
    if (blocks == L) {
        /* Hugging Face's last hidden state is the one after the final norm. */
        ba_rmsnorm(ctx->x, n, d, g->norm_f, (float)c->norm_eps, ctx->a);
        ba_model_store_hidden(ctx->a, L, n, d, layers, n_kept, hidden);
        if (next_logprob)
            BA_CHECK(ba_model_next_logprobs(ctx, &g->lm_head, ctx->a, n, tokens, next_logprob,
                                            err));
    }
    return BA_OK;
}

/* ---- random checkpoints ---------------------------------------------------------- */

static void add_tensor(ba_random_tensor *list, size_t *n, const char *name, int rank,
                       int64_t d0, int64_t d1, ba_init_kind init, double std)
{
    ba_random_tensor *t = &list[(*n)++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rank = rank;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->init = init;
    t->std = std;
}

/* Hugging Face's LLaMA initialisation (every matrix N(0, std), std 0.02 =
 * initializer_range), except that the norm weights are 1 + N(0, 0.1^2)
 * instead of exactly 1, so that a test sees them. lm_head.weight is
 * written unless the embeddings are tied. */
static ba_status llama_random_layout(const ba_model_config *c, double std,
                                     ba_random_tensor **out, size_t *n, ba_error *err)
{
    size_t cap = 3 + 9 * (size_t)c->n_layers;
    ba_random_tensor *list = ba_calloc(cap, sizeof *list, "LLaMA tensor layout", err);
    if (!list) return BA_ERR_NOMEM;
    int64_t V = c->vocab_size, d = c->d_model, f = c->d_ff;
    int64_t kv = (int64_t)c->n_kv_heads * (c->d_model / c->n_heads);
    size_t k = 0;
    char name[128];
    add_tensor(list, &k, "model.embed_tokens.weight", 2, V, d, BA_INIT_NORMAL, std);
    for (int i = 0; i < c->n_layers; i++) {
#define LAYER(suffix, rank, d0, d1, init, std)                                               \
    do {                                                                                     \
        snprintf(name, sizeof name, "model.layers.%d.%s", i, suffix);                        \
        add_tensor(list, &k, name, rank, d0, d1, init, std);                                 \
    } while (0)
        LAYER("self_attn.q_proj.weight", 2, d, d, BA_INIT_NORMAL, std);
        LAYER("self_attn.k_proj.weight", 2, kv, d, BA_INIT_NORMAL, std);
        LAYER("self_attn.v_proj.weight", 2, kv, d, BA_INIT_NORMAL, std);
        LAYER("self_attn.o_proj.weight", 2, d, d, BA_INIT_NORMAL, std);
        LAYER("mlp.gate_proj.weight", 2, f, d, BA_INIT_NORMAL, std);
        LAYER("mlp.up_proj.weight", 2, f, d, BA_INIT_NORMAL, std);
        LAYER("mlp.down_proj.weight", 2, d, f, BA_INIT_NORMAL, std);
        LAYER("input_layernorm.weight", 1, d, 0, BA_INIT_NEAR_ONE, 0.1);
        LAYER("post_attention_layernorm.weight", 1, d, 0, BA_INIT_NEAR_ONE, 0.1);
#undef LAYER
    }
    add_tensor(list, &k, "model.norm.weight", 1, d, 0, BA_INIT_NEAR_ONE, 0.1);
    if (!c->tie_word_embeddings)
        add_tensor(list, &k, "lm_head.weight", 2, V, d, BA_INIT_NORMAL, std);
    *out = list;
    *n = k;
    return BA_OK;
}

const ba_model_ops ba_llama_ops = {
    .arch = BA_ARCH_LLAMA,
    .load = llama_load,
    .destroy = llama_destroy,
    .forward = llama_forward,
    .random_layout = llama_random_layout,
    .gated_mlp = true,
    .rotary = true,
};
