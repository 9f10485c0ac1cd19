/* adapter_dump.c — test helper for adapter_oracle.py: read a PEFT LoRA
 * adapter with ba_adapter_load (checked against MODEL_DIR/config.json) and
 * write it back with ba_adapter_save, so the oracle can compare what the C
 * read and wrote with the arrays it wrote by hand.
 *
 *   adapter_dump MODEL_DIR ADAPTER_DIR OUT_DIR
 * prints "r alpha scale n_modules fan_in_fan_out" on success (exit 0);
 * exit 1 with the error message on stderr otherwise (OUT_DIR untouched). */
#include <stdio.h>

#include "brainalign/lm/adapter.h"

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: adapter_dump MODEL_DIR ADAPTER_DIR OUT_DIR\n");
        return 2;
    }
    ba_error err;
    ba_error_clear(&err);
    ba_model_config mc;
    ba_adapter *ad = NULL;
    if (ba_model_config_load(argv[1], &mc, &err) != BA_OK ||
        ba_adapter_load(argv[2], &mc, &ad, &err) != BA_OK ||
        ba_adapter_save(argv[3], ad, &err) != BA_OK) {
        fprintf(stderr, "adapter_dump: %s\n", err.message);
        ba_adapter_destroy(ad);
        return 1;
    }
    printf("%d %.17g %.17g %zu %d\n", ad->cfg.r, ad->cfg.lora_alpha, ad->scale, ad->n_modules,
           (int)ad->cfg.fan_in_fan_out);
    ba_adapter_destroy(ad);
    return 0;
}
