/* fuzz_adapter_config.c — a PEFT adapter_config.json read with
 * ba_lora_config_load (and the same bytes with ba_lora_config_parse).
 * On success: r >= 1, alpha > 0, dropout in [0, 1), 1..8 distinct known
 * targets, the two entry points agree, and the config written by
 * ba_lora_config_write reads back the same. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "brainalign/lm/adapter.h"
#include "fuzz_util.h"

static void check_config(const ba_lora_config *c)
{
    FUZZ_ASSERT(c->r >= 1 && c->lora_alpha > 0 && isfinite(c->lora_alpha));
    FUZZ_ASSERT(c->lora_dropout >= 0 && c->lora_dropout < 1);
    FUZZ_ASSERT(c->n_targets >= 1 && c->n_targets <= BA_LORA_MAX_TARGETS);
    for (int i = 0; i < c->n_targets; i++) {
        FUZZ_ASSERT(memchr(c->targets[i], '\0', BA_LORA_TARGET_MAX) != NULL);
        for (int j = 0; j < i; j++) FUZZ_ASSERT(strcmp(c->targets[i], c->targets[j]) != 0);
    }
    FUZZ_ASSERT(memchr(c->base_model, '\0', sizeof c->base_model) != NULL);
}

static bool same(const ba_lora_config *a, const ba_lora_config *b)
{
    if (a->r != b->r || a->lora_alpha != b->lora_alpha || a->lora_dropout != b->lora_dropout ||
        a->fan_in_fan_out != b->fan_in_fan_out || a->n_targets != b->n_targets ||
        strcmp(a->base_model, b->base_model) != 0)
        return false;
    for (int i = 0; i < a->n_targets; i++)
        if (strcmp(a->targets[i], b->targets[i]) != 0) return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write(0, "adapter_config.json", data, size);
    ba_error err;
    ba_error_clear(&err);
    ba_lora_config loaded, parsed, back;
    ba_status rc_load = ba_lora_config_load(fuzz_dir(), &loaded, &err);
    if (rc_load == BA_OK) {
        fuzz_accepted("adapter_config.json");
        check_config(&loaded);
    } else {
        fuzz_rejected("adapter_config.json", err.message);
    }
    ba_error_clear(&err);
    ba_status rc_parse = ba_lora_config_parse((const char *)data, size, "adapter_config.json",
                                              &parsed, &err);
    FUZZ_ASSERT((rc_load == BA_OK) == (rc_parse == BA_OK));
    if (rc_parse != BA_OK) return 0;
    FUZZ_ASSERT(same(&loaded, &parsed));
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/rt", fuzz_dir());
    mkdir(dir, 0755);
    if (ba_lora_config_write(dir, &loaded, &err) != BA_OK) fuzz_fail("write: %s", err.message);
    if (ba_lora_config_load(dir, &back, &err) != BA_OK) fuzz_fail("read back: %s", err.message);
    FUZZ_ASSERT(same(&loaded, &back));
    return 0;
}
