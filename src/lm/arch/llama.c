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
    /* Training (a context's copy, ctx->arch_blocks; all NULL in the
     * model's): the gradients of a trained (freeze) block's tensors. */
    ba_weight_grad gq, gk, gv, go, ggate, gup, gdown;
    float *g_attn_norm, *g_mlp_norm;
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

    const llama_block *bl = ctx->arch_blocks ? ctx->arch_blocks : g->blocks;
    embed(g, tokens, n, d, ctx->x);
    ba_model_store_hidden(ctx->x, 0, n, d, layers, n_kept, hidden);
    ba_rope_tables(0, n, head_dim(c), c->rope_theta, ctx->rope_cos, ctx->rope_sin);
    for (int i = 0; i < blocks; i++) {
        BA_CHECK(attention(ctx, &bl[i], n, err));
        BA_CHECK(mlp(ctx, &bl[i], n, err));
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


/* ---- training (issue 12) ---------------------------------------------------------- */

/* A tensor of the attached freeze set in place of the mapped one: its
 * float32 master (value and gradient), or the original when not trained. */
static const ba_tensor *master_of(const ba_trainable *t, const ba_tensor *orig,
                                  const float **value, float **grad)
{
    long i = t ? ba_trainable_find(t, orig->name) : -1;
    if (i < 0) return orig;
    if (value) *value = t->tensors[i].value;
    *grad = t->tensors[i].grad;
    return &t->masters[i];
}

static void master_weight(const ba_trainable *t, ba_weight *w, const ba_tensor *wt,
                          ba_weight_grad *g)
{
    const ba_tensor *m = master_of(t, wt, NULL, &g->dw);
    const ba_lora *lora = w->lora;
    *w = ba_weight_of(m, BA_WEIGHT_OUT_IN, NULL);
    w->lora = lora;
}

/* ctx->arch_blocks: the model's blocks with the context's LoRA hooks and
 * the freeze masters of the attached set. */
static ba_status llama_attach(ba_model_ctx *ctx, ba_error *err)
{
    const llama_model *g = ctx->model->impl;
    int L = ctx->model->cfg.n_layers;
    llama_block *bl = ba_calloc((size_t)L, sizeof *bl, "LLaMA blocks of a context", err);
    if (!bl) return BA_ERR_NOMEM;
    const ba_trainable *t = ctx->trainable && !ctx->trainable->is_lora ? ctx->trainable : NULL;
    for (int i = 0; i < L; i++) {
        llama_block *b = &bl[i];
        *b = g->blocks[i];
        if (ctx->loras) {
            const ba_lora *lo = &ctx->loras[(size_t)i * BA_LORA_N_SITES];
            ba_weight *w[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->wgate, &b->wup, &b->wdown};
            for (int k = 0; k < 7; k++)
                if (lo[BA_LORA_LLAMA_Q + k].A) w[k]->lora = &lo[BA_LORA_LLAMA_Q + k];
        }
        if (!t) continue;
        master_of(t, b->attn_norm, &b->attn_norm_f, &b->g_attn_norm);
        master_of(t, b->mlp_norm, &b->mlp_norm_f, &b->g_mlp_norm);
        master_weight(t, &b->wq, b->q, &b->gq);
        master_weight(t, &b->wk, b->k, &b->gk);
        master_weight(t, &b->wv, b->v, &b->gv);
        master_weight(t, &b->wo, b->o, &b->go);
        master_weight(t, &b->wgate, b->gate, &b->ggate);
        master_weight(t, &b->wup, b->up, &b->gup);
        master_weight(t, &b->wdown, b->down, &b->gdown);
    }
    ctx->arch_blocks = bl;
    return BA_OK;
}

/* What one block's backward reads (d = d_model, f = d_ff, H query heads,
 * qc = H dh, ld = qc + 2 kv_heads dh). */
typedef struct {
    float *a1;     /* [n][d]  input RMSNorm output                       */
    float *rstd1;  /* [n]                                                 */
    float *qkv;    /* [n][ld] q | k | v, q and k after the rotation       */
    float *att;    /* [n][qc] attention output                           */
    float *lse;    /* [H][n]                                              */
    float *x_mid;  /* [n][d]  residual after the attention                */
    float *a2;     /* [n][d]  post-attention RMSNorm output              */
    float *rstd2;  /* [n]                                                 */
    float *gate, *up, *h; /* [n][f] gate and up projections, silu(gate) up */
} llama_acts;

static size_t qkv_cols(const ba_model_config *c)
{
    return (size_t)(c->n_heads + 2 * c->n_kv_heads) * (size_t)head_dim(c);
}

static size_t llama_acts_floats(const ba_model_config *c, size_t n)
{
    size_t d = (size_t)c->d_model, f = (size_t)c->d_ff, H = (size_t)c->n_heads;
    size_t qc = H * (size_t)head_dim(c);
    return n * (3 * d + 2 + qkv_cols(c) + qc + H + 3 * f);
}

static float *carve(float **p, size_t floats)
{
    float *r = *p;
    *p += floats;
    return r;
}

static void carve_acts(llama_acts *s, float **p, const ba_model_config *c, size_t n)
{
    size_t d = (size_t)c->d_model, f = (size_t)c->d_ff, H = (size_t)c->n_heads;
    size_t qc = H * (size_t)head_dim(c);
    s->a1 = carve(p, n * d);
    s->rstd1 = carve(p, n);
    s->qkv = carve(p, n * qkv_cols(c));
    s->att = carve(p, n * qc);
    s->lse = carve(p, H * n);
    s->x_mid = carve(p, n * d);
    s->a2 = carve(p, n * d);
    s->rstd2 = carve(p, n);
    s->gate = carve(p, n * f);
    s->up = carve(p, n * f);
    s->h = carve(p, n * f);
}

typedef struct {
    float *dx;   /* [n][d]                                 */
    float *da;   /* [n][d]                                 */
    float *dqkv; /* [n][ld]                                */
    float *datt; /* [n][qc]                                */
    float *dh, *dgate, *dup; /* [n][f]                     */
    float *scratch; /* ba_attention_backward_scratch_floats(n) */
} llama_grads;

static ba_status llama_block_fwd(ba_model_ctx *ctx, const llama_block *b, const float *x_in,
                                 float *x_out, const llama_acts *s, size_t n, ba_error *err)
{
    const ba_model_config *c = &ctx->model->cfg;
    size_t d = (size_t)c->d_model, f = (size_t)c->d_ff, dh = (size_t)head_dim(c);
    size_t qc = (size_t)c->n_heads * dh, kc = (size_t)c->n_kv_heads * dh, ld = qkv_cols(c);
    float eps = (float)c->norm_eps;
    float *q = s->qkv, *k = q + qc, *v = k + kc;
    ba_rmsnorm_fwd(x_in, n, d, b->attn_norm_f, eps, s->a1, s->rstd1);
    BA_CHECK(ba_weight_product(ctx, &b->wq, s->a1, n, d, q, ld, 0, err));
    BA_CHECK(ba_weight_product(ctx, &b->wk, s->a1, n, d, k, ld, 0, err));
    BA_CHECK(ba_weight_product(ctx, &b->wv, s->a1, n, d, v, ld, 0, err));
    ba_rope(q, n, ld, c->n_heads, (int)dh, ctx->rope_cos, ctx->rope_sin);
    ba_rope(k, n, ld, c->n_kv_heads, (int)dh, ctx->rope_cos, ctx->rope_sin);
    ba_attention_causal_fwd(q, ld, k, v, ld, n, c->n_heads, c->n_kv_heads, (int)dh,
                            1.0f / sqrtf((float)dh), s->att, qc, s->lse, ctx->scores);
    memcpy(s->x_mid, x_in, n * d * sizeof *x_in);
    BA_CHECK(ba_weight_product(ctx, &b->wo, s->att, n, qc, s->x_mid, d, 1, err));
    ba_rmsnorm_fwd(s->x_mid, n, d, b->mlp_norm_f, eps, s->a2, s->rstd2);
    BA_CHECK(ba_weight_product(ctx, &b->wgate, s->a2, n, d, s->gate, f, 0, err));
    BA_CHECK(ba_weight_product(ctx, &b->wup, s->a2, n, d, s->up, f, 0, err));
    memcpy(s->h, s->gate, n * f * sizeof *s->h);
    ba_swiglu(s->h, s->up, n * f);
    memcpy(x_out, s->x_mid, n * d * sizeof *x_out);
    return ba_weight_product(ctx, &b->wdown, s->h, n, f, x_out, d, 1, err);
}

static ba_status llama_block_bwd(ba_model_ctx *ctx, const llama_block *b, const float *x_in,
                                 const llama_acts *s, const llama_grads *gr, size_t n,
                                 bool need_dx, ba_error *err)
{
    const ba_model_config *c = &ctx->model->cfg;
    size_t d = (size_t)c->d_model, f = (size_t)c->d_ff, dh = (size_t)head_dim(c);
    size_t qc = (size_t)c->n_heads * dh, kc = (size_t)c->n_kv_heads * dh, ld = qkv_cols(c);
    const float *q = s->qkv, *k = q + qc, *v = k + kc;
    float *dq = gr->dqkv, *dk = dq + qc, *dv = dk + kc;
    memset(gr->dh, 0, n * f * sizeof *gr->dh);
    BA_CHECK(ba_weight_product_backward(ctx, &b->wdown, s->h, n, f, gr->dx, d, gr->dh, f,
                                        &b->gdown, err));
    memset(gr->dgate, 0, n * f * sizeof *gr->dgate);
    memset(gr->dup, 0, n * f * sizeof *gr->dup);
    ba_swiglu_backward(s->gate, s->up, gr->dh, n * f, gr->dgate, gr->dup);
    memset(gr->da, 0, n * d * sizeof *gr->da);
    BA_CHECK(ba_weight_product_backward(ctx, &b->wgate, s->a2, n, d, gr->dgate, f, gr->da, d,
                                        &b->ggate, err));
    BA_CHECK(ba_weight_product_backward(ctx, &b->wup, s->a2, n, d, gr->dup, f, gr->da, d,
                                        &b->gup, err));
    ba_rmsnorm_backward(gr->da, s->x_mid, s->rstd2, b->mlp_norm_f, n, d, gr->dx, b->g_mlp_norm);
    memset(gr->datt, 0, n * qc * sizeof *gr->datt);
    BA_CHECK(ba_weight_product_backward(ctx, &b->wo, s->att, n, qc, gr->dx, d, gr->datt, qc,
                                        &b->go, err));
    memset(gr->dqkv, 0, n * ld * sizeof *gr->dqkv);
    ba_attention_causal_backward(gr->datt, qc, q, ld, k, v, ld, s->att, s->lse, n, c->n_heads,
                                 c->n_kv_heads, (int)dh, 1.0f / sqrtf((float)dh), dq, dk, dv,
                                 gr->scratch);
    ba_rope_backward(dq, n, ld, c->n_heads, (int)dh, ctx->rope_cos, ctx->rope_sin);
    ba_rope_backward(dk, n, ld, c->n_kv_heads, (int)dh, ctx->rope_cos, ctx->rope_sin);
    bool need_da = need_dx || b->g_attn_norm;
    float *da = need_da ? gr->da : NULL;
    if (need_da) memset(gr->da, 0, n * d * sizeof *gr->da);
    BA_CHECK(ba_weight_product_backward(ctx, &b->wq, s->a1, n, d, dq, ld, da, d, &b->gq, err));
    BA_CHECK(ba_weight_product_backward(ctx, &b->wk, s->a1, n, d, dk, ld, da, d, &b->gk, err));
    BA_CHECK(ba_weight_product_backward(ctx, &b->wv, s->a1, n, d, dv, ld, da, d, &b->gv, err));
    if (need_da)
        ba_rmsnorm_backward(gr->da, x_in, s->rstd1, b->attn_norm_f, n, d,
                            need_dx ? gr->dx : NULL, b->g_attn_norm);
    return BA_OK;
}

/* Rows of the cross-entropy per step: every step multiplies them with the
 * whole output layer a vocabulary chunk at a time, repacking its rows, so
 * more rows per step pack less (256 rows: a 2 MiB logits tile, 7 % faster
 * than 64 on GPT-2's vocabulary at 512 tokens). */
#define LLAMA_CE_ROWS 256

static ba_status llama_train(ba_model_ctx *ctx, const int32_t *tokens, const int32_t *labels,
                             size_t n, float grad_scale, bool recompute, double *loss_sum,
                             size_t *count, float *d_input_embeds, ba_error *err)
{
    const ba_model_config *c = &ctx->model->cfg;
    const llama_model *g = ctx->model->impl;
    const llama_block *bl = ctx->arch_blocks ? ctx->arch_blocks : g->blocks;
    size_t d = (size_t)c->d_model, f = (size_t)c->d_ff, V = (size_t)c->vocab_size;
    size_t qc = (size_t)c->n_heads * (size_t)head_dim(c), ld = qkv_cols(c);
    int L = c->n_layers;
    int lowest = d_input_embeds ? 0 : ctx->trainable->lowest;
    size_t sets = recompute ? 1 : (size_t)L, vchunk = ctx->lp.chunk;
    size_t need = 6 * LLAMA_CE_ROWS + LLAMA_CE_ROWS * vchunk + (size_t)(L + 1) * n * d +
                  sets * llama_acts_floats(c, n) + n * (2 * d + ld + qc + 3 * f) +
                  ba_attention_backward_scratch_floats(n) + n * (2 * d + 1) + n * d + 2 * n * d + n;
    BA_CHECK(ba_ctx_train_arena(ctx, need, err));
    float *p = ctx->saved_activations;
    double *row_stats = (double *)(void *)carve(&p, 6 * LLAMA_CE_ROWS);
    float *tile = carve(&p, LLAMA_CE_ROWS * vchunk);
    float *xs = carve(&p, (size_t)(L + 1) * n * d); /* [L + 1][n][d] block inputs, x_L */
    float *acts_base = p;
    p += sets * llama_acts_floats(c, n);
    llama_grads gr;
    gr.dx = carve(&p, n * d);
    gr.da = carve(&p, n * d);
    gr.dqkv = carve(&p, n * ld);
    gr.datt = carve(&p, n * qc);
    gr.dh = carve(&p, n * f);
    gr.dgate = carve(&p, n * f);
    gr.dup = carve(&p, n * f);
    gr.scratch = carve(&p, ba_attention_backward_scratch_floats(n));
    float *hf = carve(&p, n * d), *dhf = carve(&p, n * d), *rstdf = carve(&p, n);
    float *x_tmp = carve(&p, n * d);
    ba_train_loss_ws lw = {carve(&p, n * d), carve(&p, n * d), (int32_t *)(void *)carve(&p, n),
                           LLAMA_CE_ROWS, vchunk, tile, row_stats};

    embed(g, tokens, n, d, xs);
    ba_rope_tables(0, n, head_dim(c), c->rope_theta, ctx->rope_cos, ctx->rope_sin);
    for (int i = 0; i < L; i++) {
        llama_acts s;
        float *q = acts_base + (recompute ? 0 : (size_t)i * llama_acts_floats(c, n));
        carve_acts(&s, &q, c, n);
        BA_CHECK(llama_block_fwd(ctx, &bl[i], xs + (size_t)i * n * d,
                                 xs + (size_t)(i + 1) * n * d, &s, n, err));
    }
    const float *xl = xs + (size_t)L * n * d;
    ba_rmsnorm_fwd(xl, n, d, g->norm_f, (float)c->norm_eps, hf, rstdf);
    const float *head = NULL;
    BA_CHECK(ba_ctx_head_f32(ctx, &g->lm_head, &head, err));
    memset(dhf, 0, n * d * sizeof *dhf);
    BA_CHECK(ba_train_loss(hf, n, d, head, V, labels, grad_scale, &lw, loss_sum, count, dhf,
                           err));
    memset(gr.dx, 0, n * d * sizeof *gr.dx);
    ba_rmsnorm_backward(dhf, xl, rstdf, g->norm_f, n, d, gr.dx, NULL);
    for (int i = L - 1; i >= lowest; i--) {
        llama_acts s;
        float *q = acts_base + (recompute ? 0 : (size_t)i * llama_acts_floats(c, n));
        carve_acts(&s, &q, c, n);
        const float *x_in = xs + (size_t)i * n * d;
        if (recompute) BA_CHECK(llama_block_fwd(ctx, &bl[i], x_in, x_tmp, &s, n, err));
        BA_CHECK(llama_block_bwd(ctx, &bl[i], x_in, &s, &gr, n, i > lowest || d_input_embeds,
                                 err));
    }
    if (d_input_embeds)
        BA_CHECK(ba_embedding_backward(gr.dx, tokens, n, d, V, 0, 0, NULL, NULL, d_input_embeds,
                                       err));
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
    .attach = llama_attach,
    .train = llama_train,
    .gated_mlp = true,
    .rotary = true,
};
