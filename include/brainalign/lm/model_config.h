/* model_config.h — a Hugging Face config.json, reduced to what the forward
 * pass needs, for every supported architecture.
 *
 * GPT-2 fields: model_type "gpt2", n_layer, n_head, n_embd, n_positions (or
 * the older n_ctx), vocab_size, layer_norm_epsilon (default 1e-5),
 * activation_function (default "gelu_new"), n_inner (default 4 n_embd),
 * tie_word_embeddings (default true).
 * LLaMA fields: model_type "llama", hidden_size, num_hidden_layers,
 * num_attention_heads, num_key_value_heads (default = heads),
 * intermediate_size, rms_norm_eps, rope_theta (default 10000),
 * max_position_embeddings, vocab_size, hidden_act (default "silu"),
 * tie_word_embeddings (default false).
 * Both land in the same architecture-neutral fields below. */
#ifndef BRAINALIGN_MODEL_CONFIG_H
#define BRAINALIGN_MODEL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "brainalign/core/error.h"

typedef enum {
    BA_ARCH_UNKNOWN = 0,
    BA_ARCH_GPT2,
    BA_ARCH_LLAMA,
} ba_arch;

/* "gpt2", "llama"; parses the same names (returns BA_ARCH_UNKNOWN). */
const char *ba_arch_name(ba_arch arch);
ba_arch ba_arch_from_name(const char *name);

typedef struct {
    ba_arch arch;
    char model_type[32];
    int n_layers;        /* n_layer | num_hidden_layers                    */
    int n_heads;         /* n_head | num_attention_heads                   */
    int n_kv_heads;      /* = n_heads for GPT-2 | num_key_value_heads     */
    int d_model;         /* n_embd | hidden_size                           */
    int d_ff;            /* n_inner or 4 n_embd | intermediate_size        */
    int vocab_size;
    int n_positions;     /* n_positions/n_ctx | max_position_embeddings   */
    double norm_eps;     /* layer_norm_epsilon | rms_norm_eps              */
    double rope_theta;   /* LLaMA only (0 for GPT-2)                       */
    char activation[32]; /* "gelu_new" | "silu"                            */
    bool tie_word_embeddings;
} ba_model_config;

/* Read dir/config.json. Errors name the file and the field. */
ba_status ba_model_config_load(const char *dir, ba_model_config *cfg, ba_error *err);

/* Parse JSON text; `source` names it in messages. */
ba_status ba_model_config_parse(const char *text, size_t len, const char *source,
                                ba_model_config *cfg, ba_error *err);

/* Write a config.json in the architecture's Hugging Face spelling
 * (to a temporary name, then renamed). `torch_dtype` ("float32", ...) may
 * be NULL. */
ba_status ba_model_config_write(const char *path, const ba_model_config *cfg,
                                const char *torch_dtype, ba_error *err);

#endif
