/* fuzz_adapter.c — a whole PEFT adapter directory read with
 * ba_adapter_load against two fixed model shapes (a 2-layer GPT-2 of width
 * 8 and a 2-layer LLaMA of width 16 with grouped key/value heads).
 * Input: adapter_config.json ===== adapter_model.safetensors.
 * On success: one module per layer and targeted site with the model's
 * in/out features, finite values, ba_adapter_check_model agrees, and the
 * adapter saved by ba_adapter_save reads back bit for bit. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "brainalign/lm/adapter.h"
#include "fuzz_util.h"

static ba_model_config model(ba_arch arch)
{
    ba_model_config c;
    memset(&c, 0, sizeof c);
    c.arch = arch;
    c.n_layers = 2;
    c.vocab_size = 50;
    c.n_positions = 16;
    c.norm_eps = 1e-5;
    if (arch == BA_ARCH_GPT2) {
        c.n_heads = c.n_kv_heads = 2;
        c.d_model = 8;
        c.d_ff = 32;
    } else {
        c.n_heads = 4;
        c.n_kv_heads = 2;
        c.d_model = 16;
        c.d_ff = 40;
    }
    return c;
}

static void check_adapter(const ba_adapter *ad, const ba_model_config *mc)
{
    ba_error err;
    ba_error_clear(&err);
    FUZZ_ASSERT(ba_adapter_check_model(ad, mc, &err) == BA_OK);
    FUZZ_ASSERT(ad->scale == ad->cfg.lora_alpha / ad->cfg.r);
    for (size_t k = 0; k < ad->n_modules; k++) {
        const ba_lora_module *m = &ad->modules[k];
        int in, out;
        FUZZ_ASSERT(ba_lora_site_shape(mc, m->site, &in, &out, &err) == BA_OK);
        FUZZ_ASSERT(in == m->in && out == m->out && m->layer < mc->n_layers);
        FUZZ_ASSERT(ba_adapter_find(ad, m->layer, m->site) == m);
        for (size_t e = 0; e < (size_t)ad->cfg.r * (size_t)m->in; e++)
            FUZZ_ASSERT(isfinite(m->A[e]));
        for (size_t e = 0; e < (size_t)m->out * (size_t)ad->cfg.r; e++)
            FUZZ_ASSERT(isfinite(m->B[e]));
    }
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/rt", fuzz_dir());
    ba_adapter *back = NULL;
    if (ba_adapter_save(dir, ad, &err) != BA_OK) fuzz_fail("save: %s", err.message);
    if (ba_adapter_load(dir, mc, &back, &err) != BA_OK) fuzz_fail("read back: %s", err.message);
    FUZZ_ASSERT(back->n_modules == ad->n_modules);
    for (size_t k = 0; k < ad->n_modules; k++) {
        const ba_lora_module *a = &ad->modules[k], *b = &back->modules[k];
        FUZZ_ASSERT(memcmp(a->A, b->A, (size_t)ad->cfg.r * (size_t)a->in * sizeof(float)) == 0);
        FUZZ_ASSERT(memcmp(a->B, b->B, (size_t)a->out * (size_t)ad->cfg.r * sizeof(float)) == 0);
    }
    ba_adapter_destroy(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_part parts[2];
    size_t n = fuzz_split(data, size, parts, 2);
    fuzz_write(0, "adapter_config.json", parts[0].data, parts[0].size);
    if (n > 1) fuzz_write(1, "adapter_model.safetensors", parts[1].data, parts[1].size);
    else fuzz_remove("adapter_model.safetensors");
    static const ba_arch ARCHS[] = {BA_ARCH_GPT2, BA_ARCH_LLAMA};
    for (int a = 0; a < 2; a++) {
        ba_model_config mc = model(ARCHS[a]);
        ba_error err;
        ba_error_clear(&err);
        ba_adapter *ad = NULL;
        if (ba_adapter_load(fuzz_dir(), &mc, &ad, &err) == BA_OK) {
            fuzz_accepted(ba_arch_name(mc.arch));
            check_adapter(ad, &mc);
            ba_adapter_destroy(ad);
        } else {
            FUZZ_ASSERT(ad == NULL && err.code != BA_OK);
            fuzz_rejected(ba_arch_name(mc.arch), err.message);
        }
    }
    return 0;
}
