/* model_gpt2.c — GPT-2 (Hugging Face GPT2LMHeadModel / GPT2Model layout).
 *
 * Tensors, optionally prefixed "transformer.": wte.weight [V, d],
 * wpe.weight [P, d], h.{i}.ln_1.{weight,bias} [d],
 * h.{i}.attn.c_attn.{weight [d, 3d], bias [3d]}, h.{i}.attn.c_proj.{weight
 * [d, d], bias [d]}, h.{i}.ln_2.*, h.{i}.mlp.c_fc.{weight [d, f], bias [f]},
 * h.{i}.mlp.c_proj.{weight [f, d], bias [d]}, ln_f.{weight,bias} [d];
 * lm_head.weight [V, d] when present (else tied to wte). Conv1D weights are
 * stored [in, out]. The buffers h.{i}.attn.bias / attn.masked_bias are
 * ignored; any other tensor is an error.
 *
 * Block i: x += c_proj(attn(ln_1(x))); x += mlp_proj(gelu_new(c_fc(ln_2(x)))). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/kernels/kernels.h"
#include "brainalign/lm/ops.h"
#include "../model_internal.h"

typedef struct {
    const ba_tensor *ln1_w, *ln1_b, *attn_w, *attn_b, *attn_proj_w, *attn_proj_b;
    const ba_tensor *ln2_w, *ln2_b, *fc_w, *fc_b, *mlp_proj_w, *mlp_proj_b;
    /* The vectors as float32 (in the map, or in the model's vector arena). */
    const float *ln1_wf, *ln1_bf, *attn_bf, *attn_proj_bf, *ln2_wf, *ln2_bf, *fc_bf,
        *mlp_proj_bf;
    /* The Conv1D products ([in][out] with their biases). */
    ba_weight attn, attn_proj, fc, mlp_proj;
    /* Training (a context's copy, ctx->arch_blocks; all NULL in the
     * model's): the gradients of a trained (freeze) block's tensors. */
    ba_weight_grad g_attn, g_attn_proj, g_fc, g_mlp_proj;
    float *g_ln1_w, *g_ln1_b, *g_ln2_w, *g_ln2_b;
} gpt2_block;

/* The weights, read-only once loaded (the run state is the ba_model_ctx). */
typedef struct {
    gpt2_block *blocks;
    const ba_tensor *wte, *wpe, *lnf_w, *lnf_b;
    const float *lnf_wf, *lnf_bf;
    ba_weight lm_head;     /* [V][d] (OUT_IN): lm_head.weight or wte     */
    float *vectors;        /* widened 1-D weights when not F32 in the map */
    size_t vectors_used, vectors_cap;
} gpt2_model;

/* ---- loading ------------------------------------------------------------------- */

typedef struct {
    ba_model *model;
    gpt2_model *g;
    const char *prefix;
} gpt2_loader;

static ba_status expect(gpt2_loader *ld, const char *name, int rank, int64_t d0, int64_t d1,
                        const ba_tensor **out, ba_error *err)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", ld->prefix, name);
    int64_t shape[2] = {d0, d1};
    return ba_model_expect_tensor(ld->model, full, rank, shape, out, err);
}

/* A 1-D weight as float32: the map itself, or a widened copy in the arena. */
static const float *vector_f32(gpt2_model *g, const ba_tensor *t)
{
    if (ba_weight_is_direct(t)) return t->data;
    float *dst = g->vectors + g->vectors_used;
    g->vectors_used += t->n_elements;
    return ba_weight_f32(t, 0, t->n_elements, dst);
}

static size_t widened_vector_floats(const ba_tensor *t)
{
    return ba_weight_is_direct(t) ? 0 : t->n_elements;
}

static ba_status bind_block(gpt2_loader *ld, int i, gpt2_block *b, ba_error *err)
{
    const ba_model_config *c = &ld->model->cfg;
    int64_t d = c->d_model, f = c->d_ff;
    char n[128];
#define BLOCK_TENSOR(field, suffix, rank, d0, d1)                                            \
    do {                                                                                     \
        snprintf(n, sizeof n, "h.%d.%s", i, suffix);                                         \
        BA_CHECK(expect(ld, n, rank, d0, d1, &b->field, err));                               \
    } while (0)
    BLOCK_TENSOR(ln1_w, "ln_1.weight", 1, d, 0);
    BLOCK_TENSOR(ln1_b, "ln_1.bias", 1, d, 0);
    BLOCK_TENSOR(attn_w, "attn.c_attn.weight", 2, d, 3 * d);
    BLOCK_TENSOR(attn_b, "attn.c_attn.bias", 1, 3 * d, 0);
    BLOCK_TENSOR(attn_proj_w, "attn.c_proj.weight", 2, d, d);
    BLOCK_TENSOR(attn_proj_b, "attn.c_proj.bias", 1, d, 0);
    BLOCK_TENSOR(ln2_w, "ln_2.weight", 1, d, 0);
    BLOCK_TENSOR(ln2_b, "ln_2.bias", 1, d, 0);
    BLOCK_TENSOR(fc_w, "mlp.c_fc.weight", 2, d, f);
    BLOCK_TENSOR(fc_b, "mlp.c_fc.bias", 1, f, 0);
    BLOCK_TENSOR(mlp_proj_w, "mlp.c_proj.weight", 2, f, d);
    BLOCK_TENSOR(mlp_proj_b, "mlp.c_proj.bias", 1, d, 0);
#undef BLOCK_TENSOR
    return BA_OK;
}

/* "h.<i>.<rest>" with 0 <= i < n_layers; returns rest or NULL. */
static const char *block_suffix(const char *name, int n_layers)
{
    if (strncmp(name, "h.", 2) != 0 || name[2] < '0' || name[2] > '9') return NULL;
    char *end = NULL;
    long i = strtol(name + 2, &end, 10);
    if (*end != '.' || i >= n_layers) return NULL;
    return end + 1;
}

static bool known_block_tensor(const char *rest)
{
    static const char *const KNOWN[] = {
        "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
        "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
        "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias",
        "attn.bias", "attn.masked_bias", /* causal-mask buffers: ignored */
    };
    for (size_t k = 0; k < sizeof KNOWN / sizeof *KNOWN; k++)
        if (strcmp(rest, KNOWN[k]) == 0) return true;
    return false;
}

/* Every tensor in the checkpoint must be one GPT-2 knows. */
static ba_status check_no_strangers(const gpt2_loader *ld, ba_error *err)
{
    const ba_checkpoint *ck = ld->model->ckpt;
    size_t plen = strlen(ld->prefix);
    for (size_t i = 0; i < ba_checkpoint_count(ck); i++) {
        const ba_tensor *t = ba_checkpoint_at(ck, i);
        if (strcmp(t->name, "lm_head.weight") == 0) continue;
        bool ok = strncmp(t->name, ld->prefix, plen) == 0;
        const char *rest = t->name + plen, *block = NULL;
        if (ok) {
            ok = strcmp(rest, "wte.weight") == 0 || strcmp(rest, "wpe.weight") == 0 ||
                 strcmp(rest, "ln_f.weight") == 0 || strcmp(rest, "ln_f.bias") == 0;
            if (!ok && (block = block_suffix(rest, ld->model->cfg.n_layers)))
                ok = known_block_tensor(block);
        }
        if (!ok)
            return ba_fail(err, BA_ERR_FORMAT, "%s: unexpected tensor '%s' for a GPT-2 checkpoint "
                           "with %d layers (config.json)", t->file, t->name,
                           ld->model->cfg.n_layers);
    }
    return BA_OK;
}

static void gpt2_destroy(ba_model *m)
{
    gpt2_model *g = m->impl;
    if (!g) return;
    free(g->blocks);
    free(g->vectors);
    free(g);
    m->impl = NULL;
}

static void bind_vectors(gpt2_model *g, int n_layers)
{
    for (int i = 0; i < n_layers; i++) {
        gpt2_block *b = &g->blocks[i];
        b->ln1_wf = vector_f32(g, b->ln1_w);
        b->ln1_bf = vector_f32(g, b->ln1_b);
        b->attn_bf = vector_f32(g, b->attn_b);
        b->attn_proj_bf = vector_f32(g, b->attn_proj_b);
        b->ln2_wf = vector_f32(g, b->ln2_w);
        b->ln2_bf = vector_f32(g, b->ln2_b);
        b->fc_bf = vector_f32(g, b->fc_b);
        b->mlp_proj_bf = vector_f32(g, b->mlp_proj_b);
        b->attn = ba_weight_of(b->attn_w, BA_WEIGHT_IN_OUT, b->attn_bf);
        b->attn_proj = ba_weight_of(b->attn_proj_w, BA_WEIGHT_IN_OUT, b->attn_proj_bf);
        b->fc = ba_weight_of(b->fc_w, BA_WEIGHT_IN_OUT, b->fc_bf);
        b->mlp_proj = ba_weight_of(b->mlp_proj_w, BA_WEIGHT_IN_OUT, b->mlp_proj_bf);
    }
    g->lnf_wf = vector_f32(g, g->lnf_w);
    g->lnf_bf = vector_f32(g, g->lnf_b);
}

static size_t count_widened_vectors(const gpt2_model *g, int n_layers)
{
    size_t n = widened_vector_floats(g->lnf_w) + widened_vector_floats(g->lnf_b);
    for (int i = 0; i < n_layers; i++) {
        const gpt2_block *b = &g->blocks[i];
        const ba_tensor *v[] = {b->ln1_w, b->ln1_b, b->attn_b, b->attn_proj_b,
                                b->ln2_w, b->ln2_b, b->fc_b,   b->mlp_proj_b};
        for (size_t k = 0; k < sizeof v / sizeof *v; k++) n += widened_vector_floats(v[k]);
    }
    return n;
}

/* Floats of the widening scratch: the largest block matrix that is not
 * usable in place (widened whole), one vocabulary chunk of the output
 * layer, one row of the embedding tables. 0 when everything is direct. */
static size_t widen_scratch_floats(const gpt2_model *g, const ba_model_config *c)
{
    size_t need = 0, d = (size_t)c->d_model;
    size_t chunk = (size_t)c->vocab_size < BA_VOCAB_CHUNK ? (size_t)c->vocab_size
                                                          : BA_VOCAB_CHUNK;
    for (int i = 0; i < c->n_layers; i++) {
        const gpt2_block *b = &g->blocks[i];
        const ba_weight *mats[] = {&b->attn, &b->attn_proj, &b->fc, &b->mlp_proj};
        for (int k = 0; k < 4; k++) {
            size_t f = ba_weight_widen_floats(mats[k], 0);
            need = f > need ? f : need;
        }
    }
    ba_weight head_chunk = ba_weight_rows(&g->lm_head, 0, chunk);
    size_t f = ba_weight_widen_floats(&head_chunk, chunk * d);
    need = f > need ? f : need;
    if ((!ba_weight_is_direct(g->wte) || !ba_weight_is_direct(g->wpe)) && d > need) need = d;
    return need;
}

static ba_status gpt2_load(ba_model *m, ba_error *err)
{
    ba_status rc = BA_OK;
    const ba_model_config *c = &m->cfg;
    gpt2_model *g = ba_calloc(1, sizeof *g, "GPT-2 model", err);
    if (!g) return BA_ERR_NOMEM;
    m->impl = g;
    gpt2_loader ld = {m, g, ""};
    if (ba_checkpoint_lookup(m->ckpt, "transformer.wte.weight")) ld.prefix = "transformer.";
    int64_t V = c->vocab_size, P = c->n_positions, d = c->d_model;
    BA_TRY(check_no_strangers(&ld, err), fail);
    BA_TRY(expect(&ld, "wte.weight", 2, V, d, &g->wte, err), fail);
    BA_TRY(expect(&ld, "wpe.weight", 2, P, d, &g->wpe, err), fail);
    BA_TRY(expect(&ld, "ln_f.weight", 1, d, 0, &g->lnf_w, err), fail);
    BA_TRY(expect(&ld, "ln_f.bias", 1, d, 0, &g->lnf_b, err), fail);
    BA_ALLOC(g->blocks, c->n_layers, "GPT-2 blocks", fail);
    for (int i = 0; i < c->n_layers; i++) BA_TRY(bind_block(&ld, i, &g->blocks[i], err), fail);
    const ba_tensor *head = g->wte;
    if (ba_checkpoint_lookup(m->ckpt, "lm_head.weight")) {
        const char *saved = ld.prefix;
        ld.prefix = "";
        rc = expect(&ld, "lm_head.weight", 2, V, d, &head, err);
        ld.prefix = saved;
        if (rc != BA_OK) goto fail;
    } else if (!c->tie_word_embeddings) {
        /* config.json says the output layer is its own tensor: never tie it
         * silently to the embeddings */
        rc = ba_fail(err, BA_ERR_FORMAT, "%s: no tensor 'lm_head.weight', and config.json "
                     "does not tie it to the embeddings (tie_word_embeddings is false)", m->dir);
        goto fail;
    }
    g->lm_head = ba_weight_of(head, BA_WEIGHT_OUT_IN, NULL);
    g->vectors_cap = count_widened_vectors(g, c->n_layers);
    if (g->vectors_cap) BA_ALLOC(g->vectors, g->vectors_cap, "GPT-2 widened vectors", fail);
    bind_vectors(g, c->n_layers);
    m->widen_floats = widen_scratch_floats(g, c);
    return BA_OK;
fail:
    gpt2_destroy(m);
    return rc;
}

/* ---- forward -------------------------------------------------------------------- */

static void embed(const gpt2_model *g, const int32_t *tokens, size_t n, size_t d, float *x,
                  float *scratch)
{
    for (size_t t = 0; t < n; t++) {
        const float *pos = ba_weight_f32(g->wpe, t * d, d, scratch);
        memcpy(x + t * d, pos, d * sizeof *x);
        const float *tok = ba_weight_f32(g->wte, (size_t)tokens[t] * d, d, scratch);
        for (size_t j = 0; j < d; j++) x[t * d + j] += tok[j];
    }
}

static void add_into(float *x, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

/* Every GPT-2 product is float32 (ba_model_ctx_set_matmul refuses bf16 for
 * GPT-2): the Conv1D weights are stored W[in][out], not in the [out][in]
 * layout of the bfloat16 kernel (ba_linear_bf16), and GPT-2 checkpoints
 * are F32. */
static ba_status run_block(ba_model_ctx *ctx, const gpt2_block *b, size_t n, ba_error *err)
{
    const ba_model_config *c = &ctx->model->cfg;
    size_t d = (size_t)c->d_model, f = (size_t)c->d_ff;
    int dh = c->d_model / c->n_heads;
    float eps = (float)c->norm_eps;
    ba_layernorm(ctx->x, n, d, b->ln1_wf, b->ln1_bf, eps, ctx->a);
    BA_CHECK(ba_weight_product(ctx, &b->attn, ctx->a, n, d, ctx->qkv, 3 * d, 0, err));
    ba_attention_causal(ctx->qkv, 3 * d, ctx->qkv + d, ctx->qkv + 2 * d, 3 * d, n, c->n_heads,
                        c->n_heads, dh, 1.0f / sqrtf((float)dh), ctx->att, d, ctx->scores);
    BA_CHECK(ba_weight_product(ctx, &b->attn_proj, ctx->att, n, d, ctx->a, d, 0, err));
    add_into(ctx->x, ctx->a, n * d);
    ba_layernorm(ctx->x, n, d, b->ln2_wf, b->ln2_bf, eps, ctx->a);
    BA_CHECK(ba_weight_product(ctx, &b->fc, ctx->a, n, d, ctx->ff, f, 0, err));
    ba_gelu_new(ctx->ff, n * f);
    BA_CHECK(ba_weight_product(ctx, &b->mlp_proj, ctx->ff, n, f, ctx->a, d, 0, err));
    add_into(ctx->x, ctx->a, n * d);
    return BA_OK;
}

static ba_status gpt2_forward(ba_model_ctx *ctx, const int32_t *tokens, size_t n,
                              const int *layers, int n_kept, float *hidden, float *next_logprob,
                              ba_error *err)
{
    const ba_model_config *c = &ctx->model->cfg;
    const gpt2_model *g = ctx->model->impl;
    size_t d = (size_t)c->d_model;
    int L = c->n_layers;
    /* Blocks to run: all of them for the log-probabilities, else up to the
     * deepest hidden state asked for. */
    int deepest = 0;
    for (int k = 0; k < n_kept; k++) deepest = layers[k] > deepest ? layers[k] : deepest;
    int blocks = next_logprob ? L : deepest;

    const gpt2_block *bl = ctx->arch_blocks ? ctx->arch_blocks : g->blocks;
    embed(g, tokens, n, d, ctx->x, ctx->wscratch);
    ba_model_store_hidden(ctx->x, 0, n, d, layers, n_kept, hidden);
    for (int i = 0; i < blocks; i++) {
        BA_CHECK(run_block(ctx, &bl[i], n, err));
        if (i + 1 < L) ba_model_store_hidden(ctx->x, i + 1, n, d, layers, n_kept, hidden);
    }
    if (blocks == L) {
        /* Hugging Face's last hidden state is the one after ln_f. */
        ba_layernorm(ctx->x, n, d, g->lnf_wf, g->lnf_bf, (float)c->norm_eps, ctx->a);
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
                          const ba_tensor *bt, const float **bias, ba_weight_grad *g)
{
    const ba_tensor *m = master_of(t, wt, NULL, &g->dw);
    master_of(t, bt, bias, &g->db);
    const ba_lora *lora = w->lora;
    *w = ba_weight_of(m, BA_WEIGHT_IN_OUT, *bias);
    w->lora = lora;
}

/* ctx->arch_blocks: the model's blocks with the context's LoRA hooks and
 * the freeze masters of the attached set. */
static ba_status gpt2_attach(ba_model_ctx *ctx, ba_error *err)
{
    const gpt2_model *g = ctx->model->impl;
    int L = ctx->model->cfg.n_layers;
    gpt2_block *bl = ba_calloc((size_t)L, sizeof *bl, "GPT-2 blocks of a context", err);
    if (!bl) return BA_ERR_NOMEM;
    const ba_trainable *t = ctx->trainable && !ctx->trainable->is_lora ? ctx->trainable : NULL;
    for (int i = 0; i < L; i++) {
        gpt2_block *b = &bl[i];
        *b = g->blocks[i];
        if (ctx->loras) {
            const ba_lora *lo = &ctx->loras[(size_t)i * BA_LORA_N_SITES];
            if (lo[BA_LORA_GPT2_C_ATTN].A) b->attn.lora = &lo[BA_LORA_GPT2_C_ATTN];
            if (lo[BA_LORA_GPT2_ATTN_C_PROJ].A) b->attn_proj.lora = &lo[BA_LORA_GPT2_ATTN_C_PROJ];
            if (lo[BA_LORA_GPT2_C_FC].A) b->fc.lora = &lo[BA_LORA_GPT2_C_FC];
            if (lo[BA_LORA_GPT2_MLP_C_PROJ].A) b->mlp_proj.lora = &lo[BA_LORA_GPT2_MLP_C_PROJ];
        }
        if (!t) continue;
        master_of(t, b->ln1_w, &b->ln1_wf, &b->g_ln1_w);
        master_of(t, b->ln1_b, &b->ln1_bf, &b->g_ln1_b);
        master_of(t, b->ln2_w, &b->ln2_wf, &b->g_ln2_w);
        master_of(t, b->ln2_b, &b->ln2_bf, &b->g_ln2_b);
        master_weight(t, &b->attn, b->attn_w, b->attn_b, &b->attn_bf, &b->g_attn);
        master_weight(t, &b->attn_proj, b->attn_proj_w, b->attn_proj_b, &b->attn_proj_bf,
                      &b->g_attn_proj);
        master_weight(t, &b->fc, b->fc_w, b->fc_b, &b->fc_bf, &b->g_fc);
        master_weight(t, &b->mlp_proj, b->mlp_proj_w, b->mlp_proj_b, &b->mlp_proj_bf,
                      &b->g_mlp_proj);
    }
    ctx->arch_blocks = bl;
    return BA_OK;
}

/* What one block's backward reads (d = d_model, f = d_ff, H heads). */
typedef struct {
    float *a1;           /* [n][d]   ln_1 output                          */
    float *mean1, *rstd1; /* [n]                                          */
    float *qkv;          /* [n][3d]  c_attn output q | k | v              */
    float *att;          /* [n][d]   attention output                     */
    float *lse;          /* [H][n]   attention log-sum-exp                */
    float *x_mid;        /* [n][d]   residual after the attention          */
    float *a2;           /* [n][d]   ln_2 output                          */
    float *mean2, *rstd2; /* [n]                                          */
    float *fc_pre;       /* [n][f]   c_fc output (gelu input)             */
    float *fc_act;       /* [n][f]   gelu output                          */
} gpt2_acts;

static size_t gpt2_acts_floats(const ba_model_config *c, size_t n)
{
    size_t d = (size_t)c->d_model, f = (size_t)c->d_ff, H = (size_t)c->n_heads;
    return n * (7 * d + 4 + H + 2 * f);
}

static float *carve(float **p, size_t floats)
{
    float *r = *p;
    *p += floats;
    return r;
}

static void carve_acts(gpt2_acts *s, float **p, const ba_model_config *c, size_t n)
{
    size_t d = (size_t)c->d_model, f = (size_t)c->d_ff, H = (size_t)c->n_heads;
    s->a1 = carve(p, n * d);
    s->mean1 = carve(p, n);
    s->rstd1 = carve(p, n);
    s->qkv = carve(p, n * 3 * d);
    s->att = carve(p, n * d);
    s->lse = carve(p, H * n);
    s->x_mid = carve(p, n * d);
    s->a2 = carve(p, n * d);
    s->mean2 = carve(p, n);
    s->rstd2 = carve(p, n);
    s->fc_pre = carve(p, n * f);
    s->fc_act = carve(p, n * f);
}

/* Gradient buffers of the backward. */
typedef struct {
    float *dx;   /* [n][d]  gradient of the residual stream  */
    float *da;   /* [n][d]  of a normalised activation       */
    float *dqkv; /* [n][3d]                                  */
    float *datt; /* [n][d]                                   */
    float *dff, *dff2; /* [n][f]                             */
    float *scratch; /* ba_attention_backward_scratch_floats(n) */
} gpt2_grads;

static ba_status gpt2_block_fwd(ba_model_ctx *ctx, const gpt2_block *b, const float *x_in,
                                float *x_out, const gpt2_acts *s, size_t n, ba_error *err)
{
    const ba_model_config *c = &ctx->model->cfg;
    size_t d = (size_t)c->d_model, f = (size_t)c->d_ff;
    int dh = c->d_model / c->n_heads;
    float eps = (float)c->norm_eps;
    ba_layernorm_fwd(x_in, n, d, b->ln1_wf, b->ln1_bf, eps, s->a1, s->mean1, s->rstd1);
    BA_CHECK(ba_weight_product(ctx, &b->attn, s->a1, n, d, s->qkv, 3 * d, 0, err));
    ba_attention_causal_fwd(s->qkv, 3 * d, s->qkv + d, s->qkv + 2 * d, 3 * d, n, c->n_heads,
                            c->n_heads, dh, 1.0f / sqrtf((float)dh), s->att, d, s->lse,
                            ctx->scores);
    memcpy(s->x_mid, x_in, n * d * sizeof *x_in);
    BA_CHECK(ba_weight_product(ctx, &b->attn_proj, s->att, n, d, s->x_mid, d, 1, err));
    ba_layernorm_fwd(s->x_mid, n, d, b->ln2_wf, b->ln2_bf, eps, s->a2, s->mean2, s->rstd2);
    BA_CHECK(ba_weight_product(ctx, &b->fc, s->a2, n, d, s->fc_pre, f, 0, err));
    memcpy(s->fc_act, s->fc_pre, n * f * sizeof *s->fc_pre);
    ba_gelu_new(s->fc_act, n * f);
    memcpy(x_out, s->x_mid, n * d * sizeof *x_out);
    return ba_weight_product(ctx, &b->mlp_proj, s->fc_act, n, f, x_out, d, 1, err);
}

/* gr->dx: the gradient of the block's output on entry, of its input on
 * exit when need_dx (else the block's parameter gradients only). */
static ba_status gpt2_block_bwd(ba_model_ctx *ctx, const gpt2_block *b, const float *x_in,
                                const gpt2_acts *s, const gpt2_grads *gr, size_t n, bool need_dx,
                                ba_error *err)
{
    const ba_model_config *c = &ctx->model->cfg;
    size_t d = (size_t)c->d_model, f = (size_t)c->d_ff;
    int dh = c->d_model / c->n_heads;
    memset(gr->dff, 0, n * f * sizeof *gr->dff);
    BA_CHECK(ba_weight_product_backward(ctx, &b->mlp_proj, s->fc_act, n, f, gr->dx, d, gr->dff, f,
                                        &b->g_mlp_proj, err));
    memset(gr->dff2, 0, n * f * sizeof *gr->dff2);
    ba_gelu_new_backward(s->fc_pre, gr->dff, n * f, gr->dff2);
    memset(gr->da, 0, n * d * sizeof *gr->da);
    BA_CHECK(ba_weight_product_backward(ctx, &b->fc, s->a2, n, d, gr->dff2, f, gr->da, d,
                                        &b->g_fc, err));
    ba_layernorm_backward(gr->da, s->x_mid, s->mean2, s->rstd2, b->ln2_wf, n, d, gr->dx,
                          b->g_ln2_w, b->g_ln2_b);
    memset(gr->datt, 0, n * d * sizeof *gr->datt);
    BA_CHECK(ba_weight_product_backward(ctx, &b->attn_proj, s->att, n, d, gr->dx, d, gr->datt, d,
                                        &b->g_attn_proj, err));
    memset(gr->dqkv, 0, n * 3 * d * sizeof *gr->dqkv);
    ba_attention_causal_backward(gr->datt, d, s->qkv, 3 * d, s->qkv + d, s->qkv + 2 * d, 3 * d,
                                 s->att, s->lse, n, c->n_heads, c->n_heads, dh,
                                 1.0f / sqrtf((float)dh), gr->dqkv, gr->dqkv + d,
                                 gr->dqkv + 2 * d, gr->scratch);
    bool need_da = need_dx || b->g_ln1_w || b->g_ln1_b;
    if (need_da) memset(gr->da, 0, n * d * sizeof *gr->da);
    BA_CHECK(ba_weight_product_backward(ctx, &b->attn, s->a1, n, d, gr->dqkv, 3 * d,
                                        need_da ? gr->da : NULL, d, &b->g_attn, err));
    if (need_da)
        ba_layernorm_backward(gr->da, x_in, s->mean1, s->rstd1, b->ln1_wf, n, d,
                              need_dx ? gr->dx : NULL, b->g_ln1_w, b->g_ln1_b);
    return BA_OK;
}

/* Rows of the cross-entropy per step: every step multiplies them with the
 * whole output layer a vocabulary chunk at a time, repacking its rows, so
 * more rows per step pack less (256 rows: a 2 MiB logits tile, 7 % faster
 * than 64 on GPT-2's vocabulary at 512 tokens). */
#define GPT2_CE_ROWS 256

static ba_status gpt2_train(ba_model_ctx *ctx, const int32_t *tokens, const int32_t *labels,
                            size_t n, float grad_scale, bool recompute, double *loss_sum,
                            size_t *count, float *d_input_embeds, ba_error *err)
{
    const ba_model_config *c = &ctx->model->cfg;
    const gpt2_model *g = ctx->model->impl;
    const gpt2_block *bl = ctx->arch_blocks ? ctx->arch_blocks : g->blocks;
    size_t d = (size_t)c->d_model, f = (size_t)c->d_ff, V = (size_t)c->vocab_size;
    int L = c->n_layers;
    int lowest = d_input_embeds ? 0 : ctx->trainable->lowest;
    size_t sets = recompute ? 1 : (size_t)L, vchunk = ctx->lp.chunk;
    size_t need = 6 * GPT2_CE_ROWS + GPT2_CE_ROWS * vchunk + (size_t)(L + 1) * n * d +
                  sets * gpt2_acts_floats(c, n) + n * (d + 3 * d + d + d + 2 * f) +
                  ba_attention_backward_scratch_floats(n) + n * (3 * d + 2) + n * d + 2 * n * d + n;
    BA_CHECK(ba_ctx_train_arena(ctx, need, err));
    float *p = ctx->saved_activations;
    double *row_stats = (double *)(void *)carve(&p, 6 * GPT2_CE_ROWS);
    float *tile = carve(&p, GPT2_CE_ROWS * vchunk);
    float *xs = carve(&p, (size_t)(L + 1) * n * d); /* [L + 1][n][d] block inputs, x_L */
    float *acts_base = p;
    p += sets * gpt2_acts_floats(c, n);
    gpt2_grads gr;
    gr.dx = carve(&p, n * d);
    gr.dqkv = carve(&p, n * 3 * d);
    gr.da = carve(&p, n * d);
    gr.datt = carve(&p, n * d);
    gr.dff = carve(&p, n * f);
    gr.dff2 = carve(&p, n * f);
    gr.scratch = carve(&p, ba_attention_backward_scratch_floats(n));
    float *hf = carve(&p, n * d), *dhf = carve(&p, n * d), *meanf = carve(&p, n);
    float *rstdf = carve(&p, n), *x_tmp = carve(&p, n * d);
    (void)carve(&p, n * d);
    ba_train_loss_ws lw = {carve(&p, n * d), carve(&p, n * d), (int32_t *)(void *)carve(&p, n),
                           GPT2_CE_ROWS, vchunk, tile, row_stats};

    /* forward */
    embed(g, tokens, n, d, xs, ctx->wscratch);
    for (int i = 0; i < L; i++) {
        gpt2_acts s;
        float *q = acts_base + (recompute ? 0 : (size_t)i * gpt2_acts_floats(c, n));
        carve_acts(&s, &q, c, n);
        BA_CHECK(gpt2_block_fwd(ctx, &bl[i], xs + (size_t)i * n * d, xs + (size_t)(i + 1) * n * d,
                                &s, n, err));
    }
    const float *xl = xs + (size_t)L * n * d;
    ba_layernorm_fwd(xl, n, d, g->lnf_wf, g->lnf_bf, (float)c->norm_eps, hf, meanf, rstdf);
    const float *head = NULL;
    BA_CHECK(ba_ctx_head_f32(ctx, &g->lm_head, &head, err));
    memset(dhf, 0, n * d * sizeof *dhf);
    BA_CHECK(ba_train_loss(hf, n, d, head, V, labels, grad_scale, &lw, loss_sum, count, dhf,
                           err));
    /* backward */
    memset(gr.dx, 0, n * d * sizeof *gr.dx);
    ba_layernorm_backward(dhf, xl, meanf, rstdf, g->lnf_wf, n, d, gr.dx, NULL, NULL);
    for (int i = L - 1; i >= lowest; i--) {
        gpt2_acts s;
        float *q = acts_base + (recompute ? 0 : (size_t)i * gpt2_acts_floats(c, n));
        carve_acts(&s, &q, c, n);
        const float *x_in = xs + (size_t)i * n * d;
        if (recompute) BA_CHECK(gpt2_block_fwd(ctx, &bl[i], x_in, x_tmp, &s, n, err));
        BA_CHECK(gpt2_block_bwd(ctx, &bl[i], x_in, &s, &gr, n, i > lowest || d_input_embeds,
                                err));
    }
    if (d_input_embeds)
        BA_CHECK(ba_embedding_backward(gr.dx, tokens, n, d, V, (size_t)c->n_positions, 0, NULL,
                                       NULL, d_input_embeds, err));
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

/* Hugging Face's GPT-2 initialisation (weights N(0, std) with std 0.02,
 * residual projections scaled by 1/sqrt(2 n_layer), wpe N(0, std / 2)),
 * except that biases and norm parameters get noise too so that a test
 * sees them. */
static ba_status gpt2_random_layout(const ba_model_config *c, double std,
                                    ba_random_tensor **out, size_t *n, ba_error *err)
{
    size_t cap = 4 + 13 * (size_t)c->n_layers;
    ba_random_tensor *list = ba_calloc(cap, sizeof *list, "GPT-2 tensor layout", err);
    if (!list) return BA_ERR_NOMEM;
    int64_t V = c->vocab_size, P = c->n_positions, d = c->d_model, f = c->d_ff;
    double proj_std = std / sqrt(2.0 * c->n_layers);
    size_t k = 0;
    char name[128];
    add_tensor(list, &k, "wte.weight", 2, V, d, BA_INIT_NORMAL, std);
    add_tensor(list, &k, "wpe.weight", 2, P, d, BA_INIT_NORMAL, std / 2);
    for (int i = 0; i < c->n_layers; i++) {
#define LAYER(suffix, rank, d0, d1, init, std)                                               \
    do {                                                                                     \
        snprintf(name, sizeof name, "h.%d.%s", i, suffix);                                   \
        add_tensor(list, &k, name, rank, d0, d1, init, std);                                 \
    } while (0)
        LAYER("ln_1.weight", 1, d, 0, BA_INIT_NEAR_ONE, 0.1);
        LAYER("ln_1.bias", 1, d, 0, BA_INIT_NORMAL, std);
        snprintf(name, sizeof name, "h.%d.attn.bias", i);
        ba_random_tensor *mask = &list[k];
        add_tensor(list, &k, name, 4, 1, 1, BA_INIT_CAUSAL_MASK, 0);
        mask->shape[2] = P;
        mask->shape[3] = P;
        LAYER("attn.c_attn.weight", 2, d, 3 * d, BA_INIT_NORMAL, std);
        LAYER("attn.c_attn.bias", 1, 3 * d, 0, BA_INIT_NORMAL, std);
        LAYER("attn.c_proj.weight", 2, d, d, BA_INIT_NORMAL, proj_std);
        LAYER("attn.c_proj.bias", 1, d, 0, BA_INIT_NORMAL, std);
        LAYER("ln_2.weight", 1, d, 0, BA_INIT_NEAR_ONE, 0.1);
        LAYER("ln_2.bias", 1, d, 0, BA_INIT_NORMAL, std);
        LAYER("mlp.c_fc.weight", 2, d, f, BA_INIT_NORMAL, std);
        LAYER("mlp.c_fc.bias", 1, f, 0, BA_INIT_NORMAL, std);
        LAYER("mlp.c_proj.weight", 2, f, d, BA_INIT_NORMAL, proj_std);
        LAYER("mlp.c_proj.bias", 1, d, 0, BA_INIT_NORMAL, std);
#undef LAYER
    }
    add_tensor(list, &k, "ln_f.weight", 1, d, 0, BA_INIT_NEAR_ONE, 0.1);
    add_tensor(list, &k, "ln_f.bias", 1, d, 0, BA_INIT_NORMAL, std);
    *out = list;
    *n = k;
    return BA_OK;
}

const ba_model_ops ba_gpt2_ops = {
    .arch = BA_ARCH_GPT2,
    .load = gpt2_load,
    .destroy = gpt2_destroy,
    .forward = gpt2_forward,
    .random_layout = gpt2_random_layout,
    .attach = gpt2_attach,
    .train = gpt2_train,
    .gated_mlp = false,
    .rotary = false,
};
