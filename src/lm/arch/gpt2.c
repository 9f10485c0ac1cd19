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

    embed(g, tokens, n, d, ctx->x, ctx->wscratch);
    ba_model_store_hidden(ctx->x, 0, n, d, layers, n_kept, hidden);
    for (int i = 0; i < blocks; i++) {
        BA_CHECK(run_block(ctx, &g->blocks[i], n, err));
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
    .gated_mlp = false,
    .rotary = false,
};
