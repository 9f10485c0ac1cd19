/* model_config.c — config.json of Hugging Face checkpoints (see
 * model_config.h). Optional fields take the defaults Hugging Face's own
 * config classes use; required ones fail with the file and field named. */
#include "brainalign/lm/model_config.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "brainalign/core/fs.h"
#include "brainalign/core/limits.h"

const char *ba_arch_name(ba_arch arch)
{
    switch (arch) {
    case BA_ARCH_GPT2: return "gpt2";
    case BA_ARCH_LLAMA: return "llama";
    case BA_ARCH_UNKNOWN: break;
    }
    return "unknown";
}

ba_arch ba_arch_from_name(const char *name)
{
    if (strcmp(name, "gpt2") == 0) return BA_ARCH_GPT2;
    if (strcmp(name, "llama") == 0) return BA_ARCH_LLAMA;
    return BA_ARCH_UNKNOWN;
}

/* ---- typed field readers ---------------------------------------------------- */

typedef struct {
    json_t *root;
    const char *source;
} cfg_reader;

/* First present (non-null) of up to two spellings of a field. */
static json_t *field(const cfg_reader *r, const char *key, const char *alt, const char **used)
{
    json_t *v = json_object_get(r->root, key);
    *used = key;
    if ((!v || json_is_null(v)) && alt) {
        v = json_object_get(r->root, alt);
        *used = alt;
    }
    if (v && json_is_null(v)) v = NULL;
    if (!v) *used = key;
    return v;
}

/* An integer >= min; required unless `fallback` >= 0 is given. */
static ba_status read_int(const cfg_reader *r, const char *key, const char *alt, int min,
                          long fallback, int *out, ba_error *err)
{
    const char *used;
    json_t *v = field(r, key, alt, &used);
    if (!v) {
        if (fallback >= 0) {
            *out = (int)fallback;
            return BA_OK;
        }
        return ba_fail(err, BA_ERR_FORMAT, "%s: missing integer field \"%s\"%s%s%s", r->source,
                       key, alt ? " (or \"" : "", alt ? alt : "", alt ? "\")" : "");
    }
    if (!json_is_integer(v))
        return ba_fail(err, BA_ERR_FORMAT, "%s: \"%s\" must be an integer", r->source, used);
    json_int_t x = json_integer_value(v);
    if (x < min || x > INT_MAX)
        return ba_fail(err, BA_ERR_VALUE, "%s: \"%s\" = %lld, expected an integer in [%d, %d]",
                       r->source, used, (long long)x, min, INT_MAX);
    *out = (int)x;
    return BA_OK;
}

/* A finite number > 0; `fallback` > 0 makes it optional. */
static ba_status read_positive(const cfg_reader *r, const char *key, double fallback,
                               double *out, ba_error *err)
{
    const char *used;
    json_t *v = field(r, key, NULL, &used);
    if (!v) {
        if (fallback > 0) {
            *out = fallback;
            return BA_OK;
        }
        return ba_fail(err, BA_ERR_FORMAT, "%s: missing number field \"%s\"", r->source, key);
    }
    if (!json_is_number(v))
        return ba_fail(err, BA_ERR_FORMAT, "%s: \"%s\" must be a number", r->source, key);
    double x = json_number_value(v);
    if (!isfinite(x) || x <= 0)
        return ba_fail(err, BA_ERR_VALUE, "%s: \"%s\" = %g, expected a positive finite number",
                       r->source, key, x);
    *out = x;
    return BA_OK;
}

static ba_status read_bool(const cfg_reader *r, const char *key, bool fallback, bool *out,
                           ba_error *err)
{
    const char *used;
    json_t *v = field(r, key, NULL, &used);
    if (!v) {
        *out = fallback;
        return BA_OK;
    }
    if (!json_is_boolean(v))
        return ba_fail(err, BA_ERR_FORMAT, "%s: \"%s\" must be true or false", r->source, key);
    *out = json_is_true(v);
    return BA_OK;
}

static ba_status read_string(const cfg_reader *r, const char *key, const char *fallback,
                             char *out, size_t cap, ba_error *err)
{
    const char *used;
    json_t *v = field(r, key, NULL, &used);
    const char *s = fallback;
    if (v) {
        if (!json_is_string(v))
            return ba_fail(err, BA_ERR_FORMAT, "%s: \"%s\" must be a string", r->source, key);
        s = json_string_value(v);
    }
    if (!s) return ba_fail(err, BA_ERR_FORMAT, "%s: missing string field \"%s\"", r->source, key);
    if (strlen(s) >= cap)
        return ba_fail(err, BA_ERR_VALUE, "%s: \"%s\" = '%.40s...' is too long", r->source, key, s);
    snprintf(out, cap, "%s", s);
    return BA_OK;
}

/* model_type, or failing that the class named in "architectures". */
static ba_status read_arch(const cfg_reader *r, ba_model_config *cfg, ba_error *err)
{
    json_t *mt = json_object_get(r->root, "model_type");
    if (mt) {
        if (!json_is_string(mt))
            return ba_fail(err, BA_ERR_FORMAT, "%s: \"model_type\" must be a string", r->source);
        BA_CHECK(read_string(r, "model_type", NULL, cfg->model_type, sizeof cfg->model_type, err));
    } else {
        json_t *archs = json_object_get(r->root, "architectures");
        const char *first = json_string_value(json_array_get(archs, 0));
        if (first && strstr(first, "GPT2")) snprintf(cfg->model_type, sizeof cfg->model_type, "gpt2");
        else if (first && strstr(first, "Llama"))
            snprintf(cfg->model_type, sizeof cfg->model_type, "llama");
        else
            return ba_fail(err, BA_ERR_FORMAT, "%s: missing \"model_type\" (expected \"gpt2\" or "
                           "\"llama\")", r->source);
    }
    cfg->arch = ba_arch_from_name(cfg->model_type);
    if (cfg->arch == BA_ARCH_UNKNOWN)
        return ba_fail(err, BA_ERR_VALUE, "%s: model_type '%s' is not supported (gpt2, llama)",
                       r->source, cfg->model_type);
    return BA_OK;
}

static ba_status check_heads(const cfg_reader *r, const ba_model_config *cfg, ba_error *err)
{
    if (cfg->d_model % cfg->n_heads != 0)
        return ba_fail(err, BA_ERR_VALUE, "%s: model width %d is not a multiple of the %d heads",
                       r->source, cfg->d_model, cfg->n_heads);
    if (cfg->n_heads % cfg->n_kv_heads != 0)
        return ba_fail(err, BA_ERR_VALUE, "%s: %d attention heads are not a multiple of the %d "
                       "key/value heads", r->source, cfg->n_heads, cfg->n_kv_heads);
    return BA_OK;
}

static ba_status parse_gpt2(const cfg_reader *r, ba_model_config *cfg, ba_error *err)
{
    BA_CHECK(read_int(r, "n_layer", NULL, 1, -1, &cfg->n_layers, err));
    BA_CHECK(read_int(r, "n_head", NULL, 1, -1, &cfg->n_heads, err));
    BA_CHECK(read_int(r, "n_embd", NULL, 1, -1, &cfg->d_model, err));
    BA_CHECK(read_int(r, "vocab_size", NULL, 1, -1, &cfg->vocab_size, err));
    BA_CHECK(read_int(r, "n_positions", "n_ctx", 1, -1, &cfg->n_positions, err));
    if ((long)cfg->d_model * 4 > INT_MAX)
        return ba_fail(err, BA_ERR_VALUE, "%s: n_embd %d too large", r->source, cfg->d_model);
    BA_CHECK(read_int(r, "n_inner", NULL, 1, 4L * cfg->d_model, &cfg->d_ff, err));
    BA_CHECK(read_positive(r, "layer_norm_epsilon", 1e-5, &cfg->norm_eps, err));
    BA_CHECK(read_string(r, "activation_function", "gelu_new", cfg->activation,
                         sizeof cfg->activation, err));
    BA_CHECK(read_bool(r, "tie_word_embeddings", true, &cfg->tie_word_embeddings, err));
    cfg->n_kv_heads = cfg->n_heads;
    cfg->rope_theta = 0;
    /* gelu_pytorch_tanh is the same tanh approximation under another name. */
    if (strcmp(cfg->activation, "gelu_new") != 0 && strcmp(cfg->activation, "gelu_pytorch_tanh") != 0)
        return ba_fail(err, BA_ERR_VALUE, "%s: activation_function '%s' is not supported "
                       "(gelu_new)", r->source, cfg->activation);
    bool scale = true, by_layer = false;
    BA_CHECK(read_bool(r, "scale_attn_weights", true, &scale, err));
    BA_CHECK(read_bool(r, "scale_attn_by_inverse_layer_idx", false, &by_layer, err));
    if (!scale || by_layer)
        return ba_fail(err, BA_ERR_VALUE, "%s: only the standard attention scaling 1/sqrt(head "
                       "dim) is supported (scale_attn_weights true, "
                       "scale_attn_by_inverse_layer_idx false)", r->source);
    return check_heads(r, cfg, err);
}

/* Only plain RoPE is implemented: a "rope_scaling" object (linear, dynamic,
 * llama3, yarn, longrope...) would change every position's rotation, so it
 * is refused by its type rather than ignored. null or absent is plain RoPE. */
static ba_status check_rope_scaling(const cfg_reader *r, ba_error *err)
{
    json_t *v = json_object_get(r->root, "rope_scaling");
    if (!v || json_is_null(v)) return BA_OK;
    if (!json_is_object(v))
        return ba_fail(err, BA_ERR_FORMAT, "%s: \"rope_scaling\" must be an object or null",
                       r->source);
    json_t *type = json_object_get(v, "rope_type");
    const char *key = "rope_scaling.rope_type";
    if (!type || json_is_null(type)) {
        type = json_object_get(v, "type");
        key = "rope_scaling.type";
    }
    if (type && json_is_string(type) && strcmp(json_string_value(type), "default") == 0)
        return BA_OK; /* Hugging Face's name for plain RoPE */
    if (type && json_is_string(type))
        return ba_fail(err, BA_ERR_VALUE, "%s: \"%s\" = \"%.40s\": this RoPE scaling is not "
                       "implemented (only plain RoPE: rope_scaling null)", r->source, key,
                       json_string_value(type));
    return ba_fail(err, BA_ERR_VALUE, "%s: \"rope_scaling\" is given without a string \"type\" "
                   "or \"rope_type\"; no RoPE scaling is implemented (only plain RoPE: "
                   "rope_scaling null)", r->source);
}

static ba_status parse_llama(const cfg_reader *r, ba_model_config *cfg, ba_error *err)
{
    BA_CHECK(read_int(r, "num_hidden_layers", NULL, 1, -1, &cfg->n_layers, err));
    BA_CHECK(read_int(r, "num_attention_heads", NULL, 1, -1, &cfg->n_heads, err));
    BA_CHECK(read_int(r, "num_key_value_heads", NULL, 1, cfg->n_heads, &cfg->n_kv_heads, err));
    BA_CHECK(read_int(r, "hidden_size", NULL, 1, -1, &cfg->d_model, err));
    BA_CHECK(read_int(r, "intermediate_size", NULL, 1, -1, &cfg->d_ff, err));
    BA_CHECK(read_int(r, "vocab_size", NULL, 1, -1, &cfg->vocab_size, err));
    BA_CHECK(read_int(r, "max_position_embeddings", NULL, 1, -1, &cfg->n_positions, err));
    BA_CHECK(read_positive(r, "rms_norm_eps", 1e-6, &cfg->norm_eps, err));
    BA_CHECK(read_positive(r, "rope_theta", 10000.0, &cfg->rope_theta, err));
    BA_CHECK(read_string(r, "hidden_act", "silu", cfg->activation, sizeof cfg->activation, err));
    BA_CHECK(read_bool(r, "tie_word_embeddings", false, &cfg->tie_word_embeddings, err));
    if (strcmp(cfg->activation, "silu") != 0)
        return ba_fail(err, BA_ERR_VALUE, "%s: hidden_act '%s' is not supported (silu)", r->source,
                       cfg->activation);
    BA_CHECK(check_rope_scaling(r, err));
    return check_heads(r, cfg, err);
}

ba_status ba_model_config_parse(const char *text, size_t len, const char *source,
                                ba_model_config *cfg, ba_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    if (!root)
        return ba_fail(err, BA_ERR_FORMAT, "%s: not valid JSON (line %d, column %d): %s", source,
                       jerr.line, jerr.column, jerr.text);
    ba_status rc = BA_OK;
    cfg_reader r = {root, source};
    if (!json_is_object(root)) {
        rc = ba_fail(err, BA_ERR_FORMAT, "%s: must be a JSON object", source);
        goto done;
    }
    BA_TRY(read_arch(&r, cfg, err), done);
    if (cfg->arch == BA_ARCH_GPT2) BA_TRY(parse_gpt2(&r, cfg, err), done);
    else BA_TRY(parse_llama(&r, cfg, err), done);
done:
    json_decref(root);
    return rc;
}

ba_status ba_model_config_load(const char *dir, ba_model_config *cfg, ba_error *err)
{
    char path[BA_PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/config.json", dir);
    if (n < 0 || (size_t)n >= sizeof path)
        return ba_fail(err, BA_ERR_USAGE, "%.200s...: path too long", dir);
    unsigned char *text = NULL;
    size_t len = 0;
    BA_CHECK(ba_read_file(path, &text, &len, err));
    ba_status rc = len > (size_t)64 << 20
                       ? ba_fail(err, BA_ERR_FORMAT, "%s: larger than 64 MB, not a config", path)
                       : ba_model_config_parse((const char *)text, len, path, cfg, err);
    free(text);
    return rc;
}

/* ---- writing ------------------------------------------------------------------ */

static json_t *gpt2_json(const ba_model_config *cfg)
{
    json_t *o = json_object();
    json_object_set_new(o, "architectures", json_pack("[s]", "GPT2LMHeadModel"));
    json_object_set_new(o, "model_type", json_string("gpt2"));
    json_object_set_new(o, "n_layer", json_integer(cfg->n_layers));
    json_object_set_new(o, "n_head", json_integer(cfg->n_heads));
    json_object_set_new(o, "n_embd", json_integer(cfg->d_model));
    json_object_set_new(o, "n_positions", json_integer(cfg->n_positions));
    json_object_set_new(o, "n_ctx", json_integer(cfg->n_positions));
    json_object_set_new(o, "n_inner", cfg->d_ff == 4 * cfg->d_model ? json_null()
                                                                     : json_integer(cfg->d_ff));
    json_object_set_new(o, "vocab_size", json_integer(cfg->vocab_size));
    json_object_set_new(o, "layer_norm_epsilon", json_real(cfg->norm_eps));
    json_object_set_new(o, "activation_function", json_string(cfg->activation));
    json_object_set_new(o, "tie_word_embeddings", json_boolean(cfg->tie_word_embeddings));
    json_object_set_new(o, "scale_attn_weights", json_true());
    return o;
}

static json_t *llama_json(const ba_model_config *cfg)
{
    json_t *o = json_object();
    json_object_set_new(o, "architectures", json_pack("[s]", "LlamaForCausalLM"));
    json_object_set_new(o, "model_type", json_string("llama"));
    json_object_set_new(o, "num_hidden_layers", json_integer(cfg->n_layers));
    json_object_set_new(o, "num_attention_heads", json_integer(cfg->n_heads));
    json_object_set_new(o, "num_key_value_heads", json_integer(cfg->n_kv_heads));
    json_object_set_new(o, "hidden_size", json_integer(cfg->d_model));
    json_object_set_new(o, "intermediate_size", json_integer(cfg->d_ff));
    json_object_set_new(o, "max_position_embeddings", json_integer(cfg->n_positions));
    json_object_set_new(o, "vocab_size", json_integer(cfg->vocab_size));
    json_object_set_new(o, "rms_norm_eps", json_real(cfg->norm_eps));
    json_object_set_new(o, "rope_theta", json_real(cfg->rope_theta));
    json_object_set_new(o, "hidden_act", json_string(cfg->activation));
    json_object_set_new(o, "tie_word_embeddings", json_boolean(cfg->tie_word_embeddings));
    return o;
}

ba_status ba_model_config_write(const char *path, const ba_model_config *cfg,
                                const char *torch_dtype, ba_error *err)
{
    json_t *o = NULL;
    if (cfg->arch == BA_ARCH_GPT2) o = gpt2_json(cfg);
    else if (cfg->arch == BA_ARCH_LLAMA) o = llama_json(cfg);
    else return ba_fail(err, BA_ERR_USAGE, "%s: unknown architecture", path);
    if (torch_dtype) json_object_set_new(o, "torch_dtype", json_string(torch_dtype));
    char temp[4200];
    snprintf(temp, sizeof temp, "%s.tmp-XXXXXX", path);
    ba_status rc = BA_OK;
    int fd = mkstemp(temp);
    if (fd < 0) {
        rc = ba_fail(err, BA_ERR_IO, "%s: cannot create: %s", temp, strerror(errno));
        goto done;
    }
    fchmod(fd, 0644);
    int dumped = json_dumpfd(o, fd, JSON_INDENT(2));
    int closed = close(fd);
    if (dumped != 0 || closed != 0) {
        rc = ba_fail(err, BA_ERR_IO, "%s: cannot write", temp);
        unlink(temp);
        goto done;
    }
    if (rename(temp, path) != 0) {
        rc = ba_fail(err, BA_ERR_IO, "%s: cannot rename from %s: %s", path, temp, strerror(errno));
        unlink(temp);
    }
done:
    json_decref(o);
    return rc;
}
