/* adapter.c — LoRA adapters in the PEFT layout: adapter_config.json,
 * adapter_model.safetensors, and their check against a model's shape (the
 * rules are in brainalign/lm/adapter.h). */
#include "brainalign/lm/adapter.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "brainalign/lm/safetensors.h"

#define ADAPTER_PATH_MAX 4200
#define CONFIG_NAME "adapter_config.json"
#define WEIGHTS_NAME "adapter_model.safetensors"

/* ---- sites ------------------------------------------------------------------ */

static const struct {
    const char *path, *target;
    ba_arch arch;
} SITES[BA_LORA_N_SITES] = {
    {"attn.c_attn", "c_attn", BA_ARCH_GPT2},
    {"attn.c_proj", "c_proj", BA_ARCH_GPT2},
    {"mlp.c_fc", "c_fc", BA_ARCH_GPT2},
    {"mlp.c_proj", "c_proj", BA_ARCH_GPT2},
    {"self_attn.q_proj", "q_proj", BA_ARCH_LLAMA},
    {"self_attn.k_proj", "k_proj", BA_ARCH_LLAMA},
    {"self_attn.v_proj", "v_proj", BA_ARCH_LLAMA},
    {"self_attn.o_proj", "o_proj", BA_ARCH_LLAMA},
    {"mlp.gate_proj", "gate_proj", BA_ARCH_LLAMA},
    {"mlp.up_proj", "up_proj", BA_ARCH_LLAMA},
    {"mlp.down_proj", "down_proj", BA_ARCH_LLAMA},
};

const char *ba_lora_site_path(ba_lora_site site)
{
    return (unsigned)site < BA_LORA_N_SITES ? SITES[site].path : "?";
}

const char *ba_lora_site_target(ba_lora_site site)
{
    return (unsigned)site < BA_LORA_N_SITES ? SITES[site].target : "?";
}

ba_arch ba_lora_site_arch(ba_lora_site site)
{
    return (unsigned)site < BA_LORA_N_SITES ? SITES[site].arch : BA_ARCH_UNKNOWN;
}

ba_status ba_lora_site_shape(const ba_model_config *mc, ba_lora_site site, int *in, int *out,
                             ba_error *err)
{
    if ((unsigned)site >= BA_LORA_N_SITES || SITES[site].arch != mc->arch)
        return ba_fail(err, BA_ERR_USAGE, "module %s is not a module of a %s model",
                       ba_lora_site_path(site), ba_arch_name(mc->arch));
    const int d = mc->d_model, f = mc->d_ff;
    const int h = mc->n_heads > 0 ? d / mc->n_heads : 0;
    switch (site) {
    case BA_LORA_GPT2_C_ATTN: *in = d; *out = 3 * d; break;
    case BA_LORA_GPT2_ATTN_C_PROJ: *in = d; *out = d; break;
    case BA_LORA_GPT2_C_FC: *in = d; *out = f; break;
    case BA_LORA_GPT2_MLP_C_PROJ: *in = f; *out = d; break;
    case BA_LORA_LLAMA_Q: *in = d; *out = mc->n_heads * h; break;
    case BA_LORA_LLAMA_K:
    case BA_LORA_LLAMA_V: *in = d; *out = mc->n_kv_heads * h; break;
    case BA_LORA_LLAMA_O: *in = mc->n_heads * h; *out = d; break;
    case BA_LORA_LLAMA_GATE:
    case BA_LORA_LLAMA_UP: *in = d; *out = f; break;
    case BA_LORA_LLAMA_DOWN: *in = f; *out = d; break;
    default: return ba_fail(err, BA_ERR_INTERNAL, "unknown LoRA site %d", (int)site);
    }
    if (*in < 1 || *out < 1)
        return ba_fail(err, BA_ERR_SHAPE, "module %s: the model shape gives %d -> %d features",
                       ba_lora_site_path(site), *in, *out);
    return BA_OK;
}

static bool known_target(const char *name)
{
    for (int s = 0; s < BA_LORA_N_SITES; s++)
        if (strcmp(name, SITES[s].target) == 0) return true;
    return false;
}

/* ---- adapter_config.json ------------------------------------------------------ */

static bool is_set(const json_t *v)
{
    if (!v || json_is_null(v) || json_is_false(v)) return false;
    if (json_is_object(v)) return json_object_size(v) > 0;
    if (json_is_array(v)) return json_array_size(v) > 0;
    return true;
}

ba_status ba_lora_config_parse(const char *text, size_t len, const char *source,
                               ba_lora_config *cfg, ba_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return ba_fail(err, BA_ERR_FORMAT, "%s:%d:%d: not valid JSON: %s", source, jerr.line,
                       jerr.column, jerr.text);
    ba_status rc = BA_OK;
    const json_t *v;
    if (!json_is_object(root)) {
        rc = ba_fail(err, BA_ERR_FORMAT, "%s: expected a JSON object", source);
        goto done;
    }
    v = json_object_get(root, "peft_type");
    if (!json_is_string(v)) {
        rc = ba_fail(err, BA_ERR_FORMAT, "%s: \"peft_type\" must be a string (\"LORA\")", source);
        goto done;
    }
    if (strcmp(json_string_value(v), "LORA") != 0) {
        rc = ba_fail(err, BA_ERR_VALUE, "%s: peft_type \"%s\" is not supported (LORA only)",
                     source, json_string_value(v));
        goto done;
    }
    v = json_object_get(root, "task_type");
    if (v && !json_is_null(v) &&
        !(json_is_string(v) && strcmp(json_string_value(v), "CAUSAL_LM") == 0)) {
        rc = ba_fail(err, BA_ERR_VALUE, "%s: task_type must be \"CAUSAL_LM\"", source);
        goto done;
    }
    v = json_object_get(root, "r");
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65536) {
        rc = ba_fail(err, BA_ERR_VALUE, "%s: \"r\" must be an integer in [1, 65536]%s", source,
                     json_is_integer(v) && json_integer_value(v) == 0 ? " (r = 0 is no adapter)"
                                                                       : "");
        goto done;
    }
    cfg->r = (int)json_integer_value(v);
    v = json_object_get(root, "lora_alpha");
    if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) <= 0) {
        rc = ba_fail(err, BA_ERR_VALUE, "%s: \"lora_alpha\" must be a number > 0", source);
        goto done;
    }
    cfg->lora_alpha = json_number_value(v);
    v = json_object_get(root, "lora_dropout");
    if (v && !json_is_null(v)) {
        double p = json_is_number(v) ? json_number_value(v) : -1;
        if (!(p >= 0 && p < 1)) {
            rc = ba_fail(err, BA_ERR_VALUE, "%s: \"lora_dropout\" must be a number in [0, 1)",
                         source);
            goto done;
        }
        cfg->lora_dropout = p;
    }
    v = json_object_get(root, "fan_in_fan_out");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            rc = ba_fail(err, BA_ERR_VALUE, "%s: \"fan_in_fan_out\" must be true or false", source);
            goto done;
        }
        cfg->fan_in_fan_out = json_is_true(v);
    }
    v = json_object_get(root, "bias");
    if (v && !(json_is_string(v) && strcmp(json_string_value(v), "none") == 0)) {
        rc = ba_fail(err, BA_ERR_VALUE, "%s: bias must be \"none\" (trained biases are not "
                     "supported)", source);
        goto done;
    }
    static const char *const UNSUPPORTED[] = {"use_rslora", "use_dora", "layers_to_transform",
                                              "rank_pattern", "alpha_pattern", "modules_to_save"};
    for (size_t i = 0; i < sizeof UNSUPPORTED / sizeof *UNSUPPORTED; i++)
        if (is_set(json_object_get(root, UNSUPPORTED[i]))) {
            rc = ba_fail(err, BA_ERR_VALUE, "%s: \"%s\" is set, which is not supported", source,
                         UNSUPPORTED[i]);
            goto done;
        }
    v = json_object_get(root, "target_modules");
    if (json_is_string(v)) {
        rc = ba_fail(err, BA_ERR_VALUE, "%s: target_modules \"%s\" is a regular expression; "
                     "list the module names instead", source, json_string_value(v));
        goto done;
    }
    if (!json_is_array(v) || json_array_size(v) == 0) {
        rc = ba_fail(err, BA_ERR_VALUE, "%s: \"target_modules\" must be a non-empty list of "
                     "module names", source);
        goto done;
    }
    size_t i;
    const json_t *t;
    json_array_foreach(v, i, t) {
        const char *name = json_string_value(t);
        if (!name) {
            rc = ba_fail(err, BA_ERR_VALUE, "%s: target_modules[%zu] must be a string", source, i);
            goto done;
        }
        if (!known_target(name)) {
            rc = ba_fail(err, BA_ERR_VALUE, "%s: unknown target module '%.64s' (GPT-2: c_attn, "
                         "c_proj, c_fc; LLaMA: q_proj, k_proj, v_proj, o_proj, gate_proj, "
                         "up_proj, down_proj)", source, name);
            goto done;
        }
        for (int k = 0; k < cfg->n_targets; k++)
            if (strcmp(cfg->targets[k], name) == 0) {
                rc = ba_fail(err, BA_ERR_VALUE, "%s: target module '%s' is listed twice", source,
                             name);
                goto done;
            }
        if (cfg->n_targets == BA_LORA_MAX_TARGETS) {
            rc = ba_fail(err, BA_ERR_VALUE, "%s: more than %d target modules", source,
                         BA_LORA_MAX_TARGETS);
            goto done;
        }
        snprintf(cfg->targets[cfg->n_targets++], BA_LORA_TARGET_MAX, "%s", name);
    }
    v = json_object_get(root, "base_model_name_or_path");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) || strlen(json_string_value(v)) >= sizeof cfg->base_model) {
            rc = ba_fail(err, BA_ERR_VALUE, "%s: \"base_model_name_or_path\" must be a string "
                         "(of fewer than %zu bytes) or null", source, sizeof cfg->base_model);
            goto done;
        }
        snprintf(cfg->base_model, sizeof cfg->base_model, "%s", json_string_value(v));
    }
done:
    json_decref(root);
    return rc;
}

static ba_status join(const char *dir, const char *name, char *out, ba_error *err)
{
    if ((size_t)snprintf(out, ADAPTER_PATH_MAX, "%s/%s", dir, name) >= ADAPTER_PATH_MAX)
        return ba_fail(err, BA_ERR_USAGE, "%.200s/%s: path too long", dir, name);
    return BA_OK;
}

ba_status ba_lora_config_load(const char *dir, ba_lora_config *cfg, ba_error *err)
{
    char path[ADAPTER_PATH_MAX];
    BA_CHECK(join(dir, CONFIG_NAME, path, err));
    FILE *f = fopen(path, "rb");
    if (!f) return ba_fail(err, BA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    ba_status rc = BA_OK;
    for (;;) {
        if (len == cap) {
            cap = cap ? 2 * cap : 4096;
            if (cap > (64u << 20)) {
                rc = ba_fail(err, BA_ERR_FORMAT, "%s: larger than 64 MiB", path);
                goto done;
            }
            char *nb = realloc(buf, cap);
            if (!nb) {
                rc = ba_fail(err, BA_ERR_NOMEM, "%s: out of memory", path);
                goto done;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f)) rc = ba_fail(err, BA_ERR_IO, "%s: read error", path);
    else rc = ba_lora_config_parse(buf, len, path, cfg, err);
done:
    free(buf);
    fclose(f);
    return rc;
}

ba_status ba_lora_config_write(const char *dir, const ba_lora_config *cfg, ba_error *err)
{
    char path[ADAPTER_PATH_MAX], temp[ADAPTER_PATH_MAX + 16];
    BA_CHECK(join(dir, CONFIG_NAME, path, err));
    json_t *o = json_object(), *targets = json_array();
    for (int i = 0; i < cfg->n_targets; i++)
        json_array_append_new(targets, json_string(cfg->targets[i]));
    json_object_set_new(o, "peft_type", json_string("LORA"));
    json_object_set_new(o, "task_type", json_string("CAUSAL_LM"));
    json_object_set_new(o, "r", json_integer(cfg->r));
    /* an integral alpha is written as an integer, as PEFT writes it */
    const bool integral = cfg->lora_alpha == floor(cfg->lora_alpha) && cfg->lora_alpha < 1e15;
    json_object_set_new(o, "lora_alpha", integral ? json_integer((json_int_t)cfg->lora_alpha)
                                                  : json_real(cfg->lora_alpha));
    json_object_set_new(o, "lora_dropout", json_real(cfg->lora_dropout));
    json_object_set_new(o, "target_modules", targets);
    json_object_set_new(o, "fan_in_fan_out", json_boolean(cfg->fan_in_fan_out));
    json_object_set_new(o, "bias", json_string("none"));
    json_object_set_new(o, "base_model_name_or_path",
                        cfg->base_model[0] ? json_string(cfg->base_model) : json_null());
    json_object_set_new(o, "inference_mode", json_true());
    snprintf(temp, sizeof temp, "%s.tmp-XXXXXX", path);
    ba_status rc = BA_OK;
    int fd = mkstemp(temp);
    if (fd < 0) {
        rc = ba_fail(err, BA_ERR_IO, "%s: cannot create: %s", temp, strerror(errno));
        goto done;
    }
    fchmod(fd, 0644);
    int dumped = json_dumpfd(o, fd, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    int closed = close(fd);
    if (dumped != 0 || closed != 0) {
        rc = ba_fail(err, BA_ERR_IO, "%s: cannot write", temp);
        unlink(temp);
        goto done;
    }
    if (rename(temp, path) != 0) {
        rc = ba_fail(err, BA_ERR_IO, "%s: cannot rename from %s: %s", path, temp,
                     strerror(errno));
        unlink(temp);
    }
done:
    json_decref(o);
    return rc;
}

bool ba_lora_config_targets(const ba_lora_config *cfg, ba_lora_site site)
{
    for (int i = 0; i < cfg->n_targets; i++)
        if (strcmp(cfg->targets[i], ba_lora_site_target(site)) == 0) return true;
    return false;
}

ba_status ba_lora_config_check_model(const ba_lora_config *cfg, const ba_model_config *mc,
                                     const char *source, ba_error *err)
{
    if (mc->arch != BA_ARCH_GPT2 && mc->arch != BA_ARCH_LLAMA)
        return ba_fail(err, BA_ERR_USAGE, "%s: LoRA needs a GPT-2 or LLaMA model", source);
    for (int i = 0; i < cfg->n_targets; i++) {
        bool found = false;
        for (int s = 0; s < BA_LORA_N_SITES; s++)
            found |= SITES[s].arch == mc->arch && strcmp(SITES[s].target, cfg->targets[i]) == 0;
        if (!found)
            return ba_fail(err, BA_ERR_VALUE, "%s: target module '%s' is not a module of a %s "
                           "model (%s)", source, cfg->targets[i], ba_arch_name(mc->arch),
                           mc->arch == BA_ARCH_GPT2 ? "c_attn, c_proj, c_fc"
                           : "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj");
    }
    return BA_OK;
}

/* ---- the adapter -------------------------------------------------------------- */

void ba_adapter_destroy(ba_adapter *ad)
{
    if (!ad) return;
    for (size_t i = 0; i < ad->n_modules; i++) {
        free(ad->modules[i].A);
        free(ad->modules[i].B);
    }
    free(ad->modules);
    free(ad);
}

ba_status ba_adapter_create(const ba_lora_config *cfg, const ba_model_config *mc,
                            ba_adapter **out, ba_error *err)
{
    *out = NULL;
    BA_CHECK(ba_lora_config_check_model(cfg, mc, "LoRA", err));
    if (cfg->r < 1 || !(cfg->lora_alpha > 0) || cfg->n_targets < 1 || mc->n_layers < 1)
        return ba_fail(err, BA_ERR_USAGE, "LoRA: r %d, alpha %g, %d targets, %d layers", cfg->r,
                       cfg->lora_alpha, cfg->n_targets, mc->n_layers);
    ba_status rc = BA_OK;
    ba_adapter *ad = ba_calloc(1, sizeof *ad, "adapter", err);
    if (!ad) return BA_ERR_NOMEM;
    ad->cfg = *cfg;
    ad->model = *mc;
    ad->scale = cfg->lora_alpha / cfg->r;
    int per_layer = 0;
    for (int s = 0; s < BA_LORA_N_SITES; s++)
        per_layer += SITES[s].arch == mc->arch && ba_lora_config_targets(cfg, (ba_lora_site)s);
    BA_ALLOC(ad->modules, (size_t)mc->n_layers * (size_t)per_layer, "adapter modules", fail);
    for (int l = 0; l < mc->n_layers; l++)
        for (int s = 0; s < BA_LORA_N_SITES; s++) {
            if (SITES[s].arch != mc->arch || !ba_lora_config_targets(cfg, (ba_lora_site)s))
                continue;
            ba_lora_module *m = &ad->modules[ad->n_modules++];
            m->layer = l;
            m->site = (ba_lora_site)s;
            BA_TRY(ba_lora_site_shape(mc, m->site, &m->in, &m->out, err), fail);
            BA_ALLOC(m->A, (size_t)cfg->r * (size_t)m->in, "LoRA A", fail);
            BA_ALLOC(m->B, (size_t)m->out * (size_t)cfg->r, "LoRA B", fail);
        }
    *out = ad;
    return BA_OK;
fail:
    ba_adapter_destroy(ad);
    return rc;
}

const ba_lora_module *ba_adapter_find(const ba_adapter *ad, int layer, ba_lora_site site)
{
    for (size_t i = 0; i < ad->n_modules; i++)
        if (ad->modules[i].layer == layer && ad->modules[i].site == site) return &ad->modules[i];
    return NULL;
}

ba_status ba_adapter_check_model(const ba_adapter *ad, const ba_model_config *mc, ba_error *err)
{
    BA_CHECK(ba_lora_config_check_model(&ad->cfg, mc, "adapter", err));
    for (size_t i = 0; i < ad->n_modules; i++) {
        const ba_lora_module *m = &ad->modules[i];
        int in = 0, out = 0;
        BA_CHECK(ba_lora_site_shape(mc, m->site, &in, &out, err));
        if (m->layer >= mc->n_layers || in != m->in || out != m->out)
            return ba_fail(err, BA_ERR_SHAPE, "adapter module layer %d %s is %d -> %d features; "
                           "the model (%d layers) has %d -> %d: an adapter for another model "
                           "shape", m->layer, ba_lora_site_path(m->site), m->in, m->out,
                           mc->n_layers, in, out);
    }
    /* every layer has every targeted module */
    size_t want = 0;
    for (int s = 0; s < BA_LORA_N_SITES; s++)
        want += SITES[s].arch == mc->arch && ba_lora_config_targets(&ad->cfg, (ba_lora_site)s);
    if (ad->n_modules != want * (size_t)mc->n_layers)
        return ba_fail(err, BA_ERR_SHAPE, "the adapter has %zu modules, the model's %d layers "
                       "need %zu", ad->n_modules, mc->n_layers, want * (size_t)mc->n_layers);
    return BA_OK;
}

ba_status ba_lora_tensor_name(ba_lora_site site, int layer, char which, char *buf, size_t cap,
                              ba_error *err)
{
    if ((unsigned)site >= BA_LORA_N_SITES || (which != 'A' && which != 'B'))
        return ba_fail(err, BA_ERR_INTERNAL, "bad LoRA tensor %d%c", (int)site, which);
    const char *stem = SITES[site].arch == BA_ARCH_GPT2 ? "transformer.h" : "model.layers";
    int n = snprintf(buf, cap, "base_model.model.%s.%d.%s.lora_%c.weight", stem, layer,
                     SITES[site].path, which);
    if (n < 0 || (size_t)n >= cap)
        return ba_fail(err, BA_ERR_INTERNAL, "LoRA tensor name too long");
    return BA_OK;
}

/* Parse a tensor name of an adapter for `arch`; false when it is not one. */
static bool parse_name(const char *name, ba_arch arch, int *layer, ba_lora_site *site,
                       char *which)
{
    static const char PREFIX[] = "base_model.model.";
    if (strncmp(name, PREFIX, sizeof PREFIX - 1) != 0) return false;
    const char *p = name + sizeof PREFIX - 1;
    if (arch == BA_ARCH_GPT2) {
        if (strncmp(p, "transformer.", 12) == 0) p += 12;
        if (strncmp(p, "h.", 2) != 0) return false;
        p += 2;
    } else {
        if (strncmp(p, "model.layers.", 13) != 0) return false;
        p += 13;
    }
    if (*p < '0' || *p > '9' || (*p == '0' && p[1] >= '0' && p[1] <= '9')) return false;
    long l = 0;
    while (*p >= '0' && *p <= '9') {
        l = 10 * l + (*p++ - '0');
        if (l > 1000000) return false;
    }
    if (*p++ != '.') return false;
    for (int s = 0; s < BA_LORA_N_SITES; s++) {
        if (SITES[s].arch != arch) continue;
        size_t n = strlen(SITES[s].path);
        if (strncmp(p, SITES[s].path, n) != 0) continue;
        const char *q = p + n;
        if (strcmp(q, ".lora_A.weight") == 0) *which = 'A';
        else if (strcmp(q, ".lora_B.weight") == 0) *which = 'B';
        else continue;
        *layer = (int)l;
        *site = (ba_lora_site)s;
        return true;
    }
    return false;
}

static const char *shape_text(const ba_tensor *t, char *buf, size_t cap)
{
    size_t at = 0;
    at += (size_t)snprintf(buf + at, cap - at, "[");
    for (int d = 0; d < t->rank && at < cap; d++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    if (at < cap) snprintf(buf + at, cap - at, "]");
    return buf;
}

ba_status ba_adapter_load(const char *dir, const ba_model_config *mc, ba_adapter **out,
                          ba_error *err)
{
    *out = NULL;
    char cpath[ADAPTER_PATH_MAX], wpath[ADAPTER_PATH_MAX];
    BA_CHECK(join(dir, CONFIG_NAME, cpath, err));
    BA_CHECK(join(dir, WEIGHTS_NAME, wpath, err));
    ba_lora_config cfg;
    BA_CHECK(ba_lora_config_load(dir, &cfg, err));
    BA_CHECK(ba_lora_config_check_model(&cfg, mc, cpath, err));
    ba_status rc = BA_OK;
    ba_adapter *ad = NULL;
    ba_safetensors *st = NULL;
    unsigned char *seen = NULL; /* [n_modules]: bit 1 = A, bit 2 = B */
    BA_TRY(ba_adapter_create(&cfg, mc, &ad, err), fail);
    BA_ALLOC(seen, ad->n_modules, "adapter tensor flags", fail);
    BA_TRY(ba_safetensors_open(wpath, &st, err), fail);
    for (size_t i = 0; i < ba_safetensors_count(st); i++) {
        const ba_tensor *t = ba_safetensors_at(st, i);
        int layer;
        ba_lora_site site;
        char which;
        if (!parse_name(t->name, mc->arch, &layer, &site, &which)) {
            rc = ba_fail(err, BA_ERR_FORMAT, "%s: tensor '%.200s' is not a LoRA tensor of a %s "
                         "model", wpath, t->name, ba_arch_name(mc->arch));
            goto fail;
        }
        if (layer >= mc->n_layers) {
            rc = ba_fail(err, BA_ERR_SHAPE, "%s: tensor '%.200s' is for layer %d, but the model "
                         "has %d layers: an adapter for another model shape", wpath, t->name,
                         layer, mc->n_layers);
            goto fail;
        }
        if (!ba_lora_config_targets(&cfg, site)) {
            rc = ba_fail(err, BA_ERR_FORMAT, "%s: tensor '%.200s': module %s is not in the "
                         "target_modules of %s", wpath, t->name, ba_lora_site_target(site), cpath);
            goto fail;
        }
        size_t k = 0;
        while (k < ad->n_modules && !(ad->modules[k].layer == layer && ad->modules[k].site == site))
            k++;
        if (k == ad->n_modules) {
            rc = ba_fail(err, BA_ERR_INTERNAL, "%s: no module for tensor '%s'", wpath, t->name);
            goto fail;
        }
        ba_lora_module *m = &ad->modules[k];
        const unsigned bit = which == 'A' ? 1u : 2u;
        if (seen[k] & bit) {
            rc = ba_fail(err, BA_ERR_FORMAT, "%s: tensor '%.200s' is given twice (under both "
                         "GPT-2 prefixes?)", wpath, t->name);
            goto fail;
        }
        if (t->dtype != BA_DTYPE_F32) {
            rc = ba_fail(err, BA_ERR_FORMAT, "%s: tensor '%.200s' is %s; adapters are F32", wpath,
                         t->name, ba_dtype_name(t->dtype));
            goto fail;
        }
        const int64_t rows = which == 'A' ? cfg.r : m->out, cols = which == 'A' ? m->in : cfg.r;
        if (t->rank != 2 || t->shape[0] != rows || t->shape[1] != cols) {
            char got[128];
            rc = ba_fail(err, BA_ERR_SHAPE, "%s: tensor '%.200s' has shape %s; r = %d and the "
                         "model's %s (%d -> %d features) need [%lld, %lld]: an adapter for "
                         "another model shape?", wpath, t->name, shape_text(t, got, sizeof got),
                         cfg.r, ba_lora_site_path(site), m->in, m->out, (long long)rows,
                         (long long)cols);
            goto fail;
        }
        memcpy(which == 'A' ? m->A : m->B, t->data, t->n_bytes);
        seen[k] |= bit;
    }
    for (size_t k = 0; k < ad->n_modules; k++)
        for (char which = 'A'; which <= 'B'; which++) {
            if (seen[k] & (which == 'A' ? 1u : 2u)) continue;
            char name[256];
            BA_TRY(ba_lora_tensor_name(ad->modules[k].site, ad->modules[k].layer, which, name,
                                       sizeof name, err), fail);
            rc = ba_fail(err, BA_ERR_FORMAT, "%s: the tensor '%s' is missing (target_modules "
                         "of %s lists %s)", wpath, name, cpath,
                         ba_lora_site_target(ad->modules[k].site));
            goto fail;
        }
    for (size_t k = 0; k < ad->n_modules; k++) {
        const ba_lora_module *m = &ad->modules[k];
        size_t na = (size_t)cfg.r * (size_t)m->in, nb = (size_t)m->out * (size_t)cfg.r;
        for (size_t e = 0; e < na + nb; e++) {
            float x = e < na ? m->A[e] : m->B[e - na];
            if (!isfinite(x)) {
                rc = ba_fail(err, BA_ERR_VALUE, "%s: layer %d %s lora_%c has a non-finite value",
                             wpath, m->layer, ba_lora_site_path(m->site), e < na ? 'A' : 'B');
                goto fail;
            }
        }
    }
    ba_safetensors_close(st);
    free(seen);
    *out = ad;
    return BA_OK;
fail:
    ba_safetensors_close(st);
    free(seen);
    ba_adapter_destroy(ad);
    return rc;
}

ba_status ba_adapter_save(const char *dir, const ba_adapter *ad, ba_error *err)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return ba_fail(err, BA_ERR_IO, "%s: cannot create the directory: %s", dir,
                       strerror(errno));
    char wpath[ADAPTER_PATH_MAX];
    BA_CHECK(join(dir, WEIGHTS_NAME, wpath, err));
    ba_status rc = BA_OK;
    const size_t n_specs = 2 * ad->n_modules;
    ba_tensor_spec *specs = NULL;
    char (*names)[256] = NULL;
    ba_st_writer *w = NULL;
    BA_ALLOC(specs, n_specs, "adapter tensor specs", done);
    names = ba_calloc(n_specs, sizeof *names, "adapter tensor names", err);
    if (!names) {
        rc = BA_ERR_NOMEM;
        goto done;
    }
    for (size_t k = 0; k < ad->n_modules; k++) {
        const ba_lora_module *m = &ad->modules[k];
        for (int j = 0; j < 2; j++) {
            ba_tensor_spec *s = &specs[2 * k + j];
            BA_TRY(ba_lora_tensor_name(m->site, m->layer, j ? 'B' : 'A', names[2 * k + j],
                                       sizeof names[0], err), done);
            s->name = names[2 * k + j];
            s->dtype = BA_DTYPE_F32;
            s->rank = 2;
            s->shape[0] = j ? m->out : ad->cfg.r;
            s->shape[1] = j ? ad->cfg.r : m->in;
        }
    }
    static const char *const META[] = {"format", "pt"};
    BA_TRY(ba_st_writer_open(wpath, specs, n_specs, META, 1, &w, err), done);
    for (size_t k = 0; k < ad->n_modules; k++) {
        const ba_lora_module *m = &ad->modules[k];
        BA_TRY(ba_st_writer_write(w, m->A, (size_t)ad->cfg.r * (size_t)m->in * sizeof(float), err),
               done);
        BA_TRY(ba_st_writer_write(w, m->B, (size_t)m->out * (size_t)ad->cfg.r * sizeof(float), err),
               done);
    }
    rc = ba_st_writer_finish(w, err);
    w = NULL;
    if (rc == BA_OK) rc = ba_lora_config_write(dir, &ad->cfg, err);
done:
    ba_st_writer_abort(w);
    free(specs);
    free(names);
    return rc;
}
