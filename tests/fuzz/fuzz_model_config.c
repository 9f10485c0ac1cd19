/* fuzz_model_config.c — a Hugging Face config.json read with
 * ba_model_config_load (and the same bytes with ba_model_config_parse).
 * On success the fields are in range, the width divides into heads and the
 * heads into key/value heads, and the two entry points agree. */
#include <math.h>
#include <string.h>

#include "brainalign/lm/model_config.h"
#include "fuzz_util.h"

static void check_config(const ba_model_config *c)
{
    FUZZ_ASSERT(c->arch == BA_ARCH_GPT2 || c->arch == BA_ARCH_LLAMA);
    FUZZ_ASSERT(c->n_layers >= 1 && c->n_heads >= 1 && c->n_kv_heads >= 1);
    FUZZ_ASSERT(c->d_model >= 1 && c->d_ff >= 1 && c->vocab_size >= 1 && c->n_positions >= 1);
    FUZZ_ASSERT(c->d_model % c->n_heads == 0 && c->n_heads % c->n_kv_heads == 0);
    FUZZ_ASSERT(isfinite(c->norm_eps) && c->norm_eps > 0);
    FUZZ_ASSERT(memchr(c->model_type, '\0', sizeof c->model_type) != NULL);
    FUZZ_ASSERT(memchr(c->activation, '\0', sizeof c->activation) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write(0, "config.json", data, size);
    ba_error err;
    ba_error_clear(&err);
    ba_model_config loaded, parsed;
    ba_status rc_load = ba_model_config_load(fuzz_dir(), &loaded, &err);
    if (rc_load == BA_OK) {
        fuzz_accepted("config.json");
        check_config(&loaded);
    } else {
        fuzz_rejected("config.json", err.message);
    }
    ba_error_clear(&err);
    ba_status rc_parse = ba_model_config_parse((const char *)data, size, "config.json", &parsed, &err);
    FUZZ_ASSERT((rc_load == BA_OK) == (rc_parse == BA_OK));
    if (rc_parse == BA_OK) {
        FUZZ_ASSERT(loaded.arch == parsed.arch && loaded.n_layers == parsed.n_layers);
        FUZZ_ASSERT(loaded.d_model == parsed.d_model && loaded.d_ff == parsed.d_ff);
        FUZZ_ASSERT(strcmp(loaded.activation, parsed.activation) == 0);
    }
    return 0;
}
