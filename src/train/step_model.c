/* step_model.c — the model's training pass as the sample function of the
 * data-parallel step (see brainalign/train/step.h). Kept apart from step.c
 * so that the step can be tested without a model. */
#include "brainalign/train/step.h"

ba_status ba_train_model_sample_fn(void *user, size_t sample, uint64_t position, float grad_scale,
                                   double *loss_sum, size_t *count, float *d_embeds,
                                   ba_error *err)
{
    const ba_train_model_sample *m = user;
    const ba_sft_sample *s = &m->data->samples[sample];
    ba_trainable_set_sequence(m->trainable, position);
    return ba_model_train_sequence(m->ctx, s->ids, s->labels, s->n, grad_scale, m->recompute,
                                   loss_sum, count, d_embeds, err);
}
