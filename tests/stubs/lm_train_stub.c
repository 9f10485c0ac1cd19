/* lm_train_stub.c — stand-ins for the model's training pass
 * (include/brainalign/lm/train.h) while src/lm/train.c is not in the tree
 * (it is written on another branch): every call fails with BA_ERR_INTERNAL,
 * so that `brainalign finetune` links and its checks before training
 * (options, data, targets, --out) can be tested. tests/cmake/finetune.cmake
 * adds this file to the executable only when src/lm/train.c is missing. */
#include "brainalign/lm/train.h"

static ba_status missing(ba_error *err)
{
    return ba_fail(err, BA_ERR_INTERNAL, "the model's training pass (src/lm/train.c) is not "
                   "built into this brainalign");
}

ba_status ba_trainable_lora(const ba_model *model, ba_adapter *adapter, double dropout,
                            uint64_t seed, ba_trainable **out, ba_error *err)
{
    (void)model, (void)adapter, (void)dropout, (void)seed;
    *out = NULL;
    return missing(err);
}

ba_status ba_adapter_init_peft(ba_adapter *adapter, uint64_t seed, ba_error *err)
{
    (void)adapter, (void)seed;
    return missing(err);
}

ba_status ba_trainable_freeze(const ba_model *model, int k, ba_trainable **out, ba_error *err)
{
    (void)model, (void)k;
    *out = NULL;
    return missing(err);
}

void ba_trainable_destroy(ba_trainable *t) { (void)t; }
size_t ba_trainable_count(const ba_trainable *t) { (void)t; return 0; }
const ba_train_tensor *ba_trainable_tensor(const ba_trainable *t, size_t i)
{
    (void)t, (void)i;
    return NULL;
}
void ba_trainable_zero_grad(ba_trainable *t) { (void)t; }

ba_status ba_model_ctx_attach(ba_model_ctx *ctx, ba_trainable *t, ba_error *err)
{
    (void)ctx, (void)t;
    return missing(err);
}

ba_status ba_model_train_sequence(ba_model_ctx *ctx, const int32_t *tokens,
                                  const int32_t *labels, size_t n, float grad_scale,
                                  bool recompute, double *loss_sum, size_t *count,
                                  float *d_input_embeds, ba_error *err)
{
    (void)ctx, (void)tokens, (void)labels, (void)n, (void)grad_scale, (void)recompute;
    (void)d_input_embeds;
    *loss_sum = 0;
    *count = 0;
    return missing(err);
}

ba_status ba_model_save_trained(const ba_model *model, const ba_trainable *t, const char *dir,
                                ba_error *err)
{
    (void)model, (void)t, (void)dir;
    return missing(err);
}

void ba_trainable_set_sequence(ba_trainable *t, uint64_t sequence_key)
{
    (void)t, (void)sequence_key;
}
