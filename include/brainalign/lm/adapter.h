/* adapter.h — LoRA adapters in the Hugging Face PEFT layout.
 *
 * A directory holds adapter_config.json and adapter_model.safetensors.
 *
 * adapter_config.json: "peft_type" "LORA" (required; other types are
 * errors), "task_type" "CAUSAL_LM" (null/absent tolerated, anything else an
 * error), "r" (integer >= 1), "lora_alpha" (number > 0), "lora_dropout"
 * (number in [0, 1); absent = 0, PEFT's default), "target_modules" (a
 * non-empty list of module names: GPT-2's c_attn, c_proj, c_fc and LLaMA's
 * q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj; PEFT's
 * regular-expression string form is refused), "fan_in_fan_out" (boolean;
 * absent = false; PEFT sets it for GPT-2's Conv1D), "bias" ("none"; absent
 * = "none"), "base_model_name_or_path" (string or null). Unknown keys are
 * tolerated; keys that would change what the adapter computes and are not
 * implemented are errors when set: use_rslora, use_dora, layers_to_transform,
 * rank_pattern, alpha_pattern, modules_to_save. The scale is alpha / r.
 *
 * adapter_model.safetensors: F32 tensors
 *   base_model.model.<module path>.lora_A.weight  [r, in]
 *   base_model.model.<module path>.lora_B.weight  [out, r]
 * for every layer N of the model and every module of a target, with module
 * paths
 *   GPT-2  transformer.h.N.attn.c_attn  (or h.N.attn.c_attn: PEFT writes
 *          both, depending on the class it wrapped; both are read, the
 *          first is written), h.N.attn.c_proj, h.N.mlp.c_fc, h.N.mlp.c_proj
 *          ("c_proj" targets both projections, as PEFT's suffix match does)
 *   LLaMA  model.layers.N.self_attn.{q,k,v,o}_proj, model.layers.N.mlp.{gate,up,down}_proj
 * and in/out features (d = d_model, f = d_ff, h = d / n_heads):
 *   c_attn d -> 3d, attn.c_proj d -> d, c_fc d -> f, mlp.c_proj f -> d;
 *   q_proj d -> n_heads h, k_proj and v_proj d -> n_kv_heads h (GQA),
 *   o_proj n_heads h -> d, gate_proj and up_proj d -> f, down_proj f -> d.
 * The delta of a module's weight is scale * B A ([out, in]; as the
 * transposed [in, out] for GPT-2's Conv1D weights).
 *
 * Reading checks every tensor against the model's shape: an unknown or
 * extra tensor, a layer the model lacks, a missing A or B, a wrong dtype or
 * shape all fail naming the tensor (an adapter for another model shape
 * fails this way). Writing uses temporary names and renames. */
#ifndef BRAINALIGN_LM_ADAPTER_H
#define BRAINALIGN_LM_ADAPTER_H

#include <stdbool.h>
#include <stddef.h>

#include "brainalign/core/error.h"
#include "brainalign/lm/model_config.h"

/* The modules a LoRA can wrap, in the order of the tensors of one layer. */
typedef enum {
    BA_LORA_GPT2_C_ATTN = 0, /* attn.c_attn   target "c_attn" */
    BA_LORA_GPT2_ATTN_C_PROJ, /* attn.c_proj   target "c_proj" */
    BA_LORA_GPT2_C_FC,        /* mlp.c_fc      target "c_fc"   */
    BA_LORA_GPT2_MLP_C_PROJ,  /* mlp.c_proj    target "c_proj" */
    BA_LORA_LLAMA_Q,          /* self_attn.q_proj              */
    BA_LORA_LLAMA_K,
    BA_LORA_LLAMA_V,
    BA_LORA_LLAMA_O,
    BA_LORA_LLAMA_GATE,       /* mlp.gate_proj                 */
    BA_LORA_LLAMA_UP,
    BA_LORA_LLAMA_DOWN,
    BA_LORA_N_SITES
} ba_lora_site;

/* "attn.c_attn", "self_attn.q_proj", ... (the path inside a block). */
const char *ba_lora_site_path(ba_lora_site site);
/* The target_modules name that selects it ("c_attn", "c_proj", "q_proj"). */
const char *ba_lora_site_target(ba_lora_site site);
/* The architecture the site belongs to. */
ba_arch ba_lora_site_arch(ba_lora_site site);
/* in/out features of the site in a model of this shape. */
ba_status ba_lora_site_shape(const ba_model_config *mc, ba_lora_site site, int *in, int *out,
                             ba_error *err);

#define BA_LORA_MAX_TARGETS 8
#define BA_LORA_TARGET_MAX 16

typedef struct {
    int r;
    double lora_alpha;
    double lora_dropout;
    bool fan_in_fan_out;
    int n_targets;
    char targets[BA_LORA_MAX_TARGETS][BA_LORA_TARGET_MAX]; /* target_modules, file order */
    char base_model[1024]; /* base_model_name_or_path ("" = null)                    */
} ba_lora_config;

/* Parse adapter_config.json text (`source` names it) / read dir's. */
ba_status ba_lora_config_parse(const char *text, size_t len, const char *source,
                               ba_lora_config *cfg, ba_error *err);
ba_status ba_lora_config_load(const char *dir, ba_lora_config *cfg, ba_error *err);
/* Write dir/adapter_config.json (temporary name, renamed). */
ba_status ba_lora_config_write(const char *dir, const ba_lora_config *cfg, ba_error *err);
/* Every target is a module of this model's architecture. */
ba_status ba_lora_config_check_model(const ba_lora_config *cfg, const ba_model_config *mc,
                                     const char *source, ba_error *err);
/* Does the config target this site? */
bool ba_lora_config_targets(const ba_lora_config *cfg, ba_lora_site site);

/* One adapted module. */
typedef struct {
    int layer;
    ba_lora_site site;
    int in, out;
    float *A; /* [r][in]  */
    float *B; /* [out][r] */
} ba_lora_module;

typedef struct {
    ba_lora_config cfg;
    ba_model_config model; /* the shape it was built or checked for */
    double scale;          /* lora_alpha / r                        */
    ba_lora_module *modules; /* [n_modules]: layer-major, site order */
    size_t n_modules;
} ba_adapter;

/* An adapter for `mc` with A = B = 0 (the caller initialises them). */
ba_status ba_adapter_create(const ba_lora_config *cfg, const ba_model_config *mc,
                            ba_adapter **out, ba_error *err);
/* Read dir/adapter_config.json and dir/adapter_model.safetensors, checked
 * against the model shape `mc`. */
ba_status ba_adapter_load(const char *dir, const ba_model_config *mc, ba_adapter **out,
                          ba_error *err);
/* Check an adapter's modules against a model shape (names the module). */
ba_status ba_adapter_check_model(const ba_adapter *ad, const ba_model_config *mc,
                                 ba_error *err);
/* Write dir/adapter_config.json and dir/adapter_model.safetensors (the
 * directory is created if missing; each file under a temporary name). */
ba_status ba_adapter_save(const char *dir, const ba_adapter *ad, ba_error *err);
void ba_adapter_destroy(ba_adapter *ad);

/* NULL when the adapter does not wrap that module. */
const ba_lora_module *ba_adapter_find(const ba_adapter *ad, int layer, ba_lora_site site);

/* The tensor name of a module's A ('A') or B ('B') as written (GPT-2 with
 * the "transformer." prefix). */
ba_status ba_lora_tensor_name(ba_lora_site site, int layer, char which, char *buf, size_t cap,
                              ba_error *err);

#endif
