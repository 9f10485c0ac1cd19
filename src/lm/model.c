/* model.c — the architecture-neutral model layer (see model.h): loading,
 * argument checks, weight access, and the random-checkpoint writer. The
 * architectures themselves live in model_<arch>.c behind ba_model_ops. */
#include "brainalign/lm/model.h"
#include "brainalign/core/fs.h"
#include "brainalign/core/hash.h"
#include "brainalign/core/rng.h"

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

ba_status ba_model_set_matmul(ba_model *model, ba_matmul mode, ba_error *err)
{
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
    model->matmul = mode;
    return BA_OK;
}

ba_matmul ba_model_get_matmul(const ba_model *model) { return model->matmul; }

const ba_model_config *ba_model_get_config(const ba_model *model) { return &model->cfg; }
const char *ba_model_dir(const ba_model *model) { return model->dir; }
int ba_model_n_hidden_states(const ba_model *model) { return model->cfg.n_layers + 1; }
int ba_model_d_model(const ba_model *model) { return model->cfg.d_model; }
int ba_model_vocab_size(const ba_model *model) { return model->cfg.vocab_size; }
int ba_model_max_tokens(const ba_model *model) { return model->cfg.n_positions; }

ba_status ba_model_forward(ba_model *model, const int32_t *tokens, size_t n_tokens,
                           const int *layers, int n_layers_kept, float *hidden,
                           float *next_logprob, ba_error *err)
{
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
    return model->ops->forward(model, tokens, n_tokens, layers, n_layers_kept, hidden,
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
 * (the width of the BLAS kernels' blocks) when more than 16 fit. */
static size_t panel_rows(size_t in, size_t scratch_floats)
{
    size_t rows = in ? scratch_floats / in : 1;
    if (rows > 16) rows -= rows % 16;
    return rows ? rows : 1;
}

/* bfloat16 products with a BF16 weight used as stored; one at an odd
 * address (a foreign file's alignment) is copied a panel of rows at a time
 * into the scratch first. */
static void weight_linear_bf16(const ba_tensor *w, size_t row0, size_t rows, const float *x,
                               size_t n, size_t ldx, int accumulate, float *y, size_t ldy,
                               float *scratch, size_t scratch_floats)
{
    size_t in = (size_t)w->shape[1];
    const unsigned char *base = (const unsigned char *)w->data + row0 * in * 2;
    if ((uintptr_t)base % _Alignof(uint16_t) == 0) {
        ba_linear_bf16(x, n, in, ldx, (const uint16_t *)base, rows, accumulate, y, ldy);
        return;
    }
    size_t step = panel_rows(in, scratch_floats * 2); /* uint16 in a float's room: two */
    for (size_t r = 0; r < rows; r += step) {
        size_t m = rows - r < step ? rows - r : step;
        memcpy(scratch, base + r * in * 2, m * in * 2);
        ba_linear_bf16(x, n, in, ldx, (const uint16_t *)scratch, m, accumulate, y + r, ldy);
    }
}

void ba_weight_linear(const ba_tensor *w, size_t row0, size_t rows, const float *x, size_t n,
                      size_t ldx, int accumulate, float *y, size_t ldy, float *scratch,
                      size_t scratch_floats, ba_matmul matmul)
{
    size_t in = (size_t)w->shape[1];
    if (matmul == BA_MATMUL_BF16 && w->dtype == BA_DTYPE_BF16) {
        weight_linear_bf16(w, row0, rows, x, n, ldx, accumulate, y, ldy, scratch,
                           scratch_floats);
        return;
    }
    if (ba_weight_is_direct(w)) {
        ba_linear_into(x, n, in, ldx, (const float *)w->data + row0 * in, rows, accumulate, y,
                       ldy);
        return;
    }
    size_t step = panel_rows(in, scratch_floats);
    for (size_t r = 0; r < rows; r += step) {
        size_t m = rows - r < step ? rows - r : step;
        const float *panel = ba_weight_f32(w, (row0 + r) * in, m * in, scratch);
        ba_linear_into(x, n, in, ldx, panel, m, accumulate, y + r, ldy);
    }
}

void ba_model_store_hidden(const float *state, int index, size_t n, size_t d, const int *layers,
                           int n_kept, float *hidden)
{
    for (int k = 0; k < n_kept; k++)
        if (layers[k] == index) memcpy(hidden + (size_t)k * n * d, state, n * d * sizeof *state);
}

void ba_model_next_logprobs(const ba_tensor *head, const float *h, size_t n, size_t d,
                            size_t vocab, const int32_t *tokens, ba_logprob_workspace *ws,
                            float *scratch, size_t scratch_floats, ba_matmul matmul,
                            float *out)
{
    for (size_t t = 0; t < n; t++) {
        ws->lse_max[t] = -INFINITY;
        ws->lse_sum[t] = 0.0;
        ws->target[t] = NAN;
    }
    for (size_t v0 = 0; v0 < vocab; v0 += ws->chunk) {
        size_t rows = vocab - v0 < ws->chunk ? vocab - v0 : ws->chunk;
        ba_weight_linear(head, v0, rows, h, n, d, 0, ws->logits, rows, scratch, scratch_floats,
                         matmul);
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
