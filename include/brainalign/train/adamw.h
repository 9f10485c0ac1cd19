/* adamw.h — the optimizer of fine-tuning: AdamW exactly as torch.optim.AdamW,
 * the global gradient norm and its clipping exactly as
 * torch.nn.utils.clip_grad_norm_, and the learning-rate schedules of
 * Hugging Face transformers (get_{constant,linear,cosine}_schedule_with_warmup).
 *
 * Parameters are a list of float32 tensors (the float32 master weights) with
 * their float32 gradients; the optimizer owns the float32 moments m and v of
 * each. One step t = 1, 2, ... with learning rate lr does, per element,
 * in this order (torch's single-tensor AdamW):
 *   p  = p * (1 - lr * weight_decay)              decoupled weight decay
 *   m  = beta1 * m + (1 - beta1) * g
 *   v  = beta2 * v + (1 - beta2) * g * g
 *   p  = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * in float32, operation by operation as torch's CPU kernels round them
 * (the scalars computed in double, rounded to float32 where they meet a
 * tensor; the two multiply-adds of m and v fused, as torch's are): without
 * clipping the C and torch 1.13 agree bit for bit.
 *
 * Gradient norm: the Euclidean norm of all gradients together, accumulated
 * in double in parameter order then element order (a fixed order: the same
 * value whatever the threads or ranks that produced the gradients).
 * Clipping (max_grad_norm > 0): every gradient is multiplied by
 * min(1, max_grad_norm / (norm + 1e-6)), torch's formula in float32 (torch
 * sums the norm in float32 itself, so the two norms, hence the clipped
 * gradients, can differ in the last bit).
 *
 * Schedules: the learning rate of optimizer step s (0-based: the first
 * step uses s = 0, as a LambdaLR stepped after each optimizer step) is
 * lr * f(s), with W warmup steps and N training steps:
 *   s < W:     f = s / max(1, W)                                 (all three)
 *   constant:  f = 1
 *   linear:    f = max(0, (N - s) / max(1, N - W))
 *   cosine:    f = max(0, 0.5 * (1 + cos(pi * (s - W) / max(1, N - W))))
 * Warmup given as a ratio: W = ceil(N * ratio) (transformers'
 * TrainingArguments.get_warmup_steps); explicit steps take precedence. */
#ifndef BRAINALIGN_TRAIN_ADAMW_H
#define BRAINALIGN_TRAIN_ADAMW_H

#include <stddef.h>
#include <stdint.h>

#include "brainalign/core/error.h"

/* One trainable tensor: `param` [n] (read and updated), `grad` [n]
 * (read; scaled in place by clipping). `name` appears in messages. */
typedef struct {
    const char *name;
    float *param;
    float *grad;
    size_t n;
} ba_param_ref;

typedef struct {
    double beta1, beta2; /* (0.9, 0.999) in torch; each in [0, 1)     */
    double eps;          /* 1e-8; > 0                                 */
    double weight_decay; /* 0 in this project's CLI (torch: 0.01); >= 0 */
} ba_adamw_config;

typedef struct ba_adamw ba_adamw;

/* An optimizer over n_params tensors (the array is copied; the tensors it
 * points to must outlive the optimizer). Moments start at zero, step 0. */
ba_status ba_adamw_create(const ba_adamw_config *cfg, const ba_param_ref *params,
                          size_t n_params, ba_adamw **out, ba_error *err);
void ba_adamw_destroy(ba_adamw *opt);

/* One AdamW step with learning rate lr (>= 0, finite) from the current
 * gradients. Non-finite gradients are an error naming the tensor (nothing
 * is updated then). */
ba_status ba_adamw_step(ba_adamw *opt, double lr, ba_error *err);

/* Steps taken so far. */
int64_t ba_adamw_steps(const ba_adamw *opt);
/* The moments of tensor i, [n] each (for restart files and tests). */
float *ba_adamw_m(ba_adamw *opt, size_t i);
float *ba_adamw_v(ba_adamw *opt, size_t i);
/* Set the step count (restart: the moments are restored through the
 * pointers above). */
void ba_adamw_set_steps(ba_adamw *opt, int64_t steps);

/* The global gradient norm (double, fixed order; see above). */
double ba_grad_global_norm(const ba_param_ref *params, size_t n_params);

/* Clip by the global norm: returns the norm before clipping in *norm.
 * max_grad_norm 0 = no clipping (the norm is still computed); < 0 or a
 * non-finite norm are errors. */
ba_status ba_grad_clip(const ba_param_ref *params, size_t n_params, double max_grad_norm,
                       double *norm, ba_error *err);

/* ---- learning-rate schedules ------------------------------------------- */

typedef enum {
    BA_LR_CONSTANT = 0,
    BA_LR_LINEAR,
    BA_LR_COSINE,
} ba_lr_schedule_kind;

/* "constant", "linear", "cosine" (errors name the accepted values). */
ba_status ba_lr_schedule_parse(const char *text, ba_lr_schedule_kind *kind, ba_error *err);
const char *ba_lr_schedule_name(ba_lr_schedule_kind kind);

typedef struct {
    ba_lr_schedule_kind kind;
    double lr;            /* the peak (base) learning rate              */
    int64_t warmup_steps; /* W                                          */
    int64_t total_steps;  /* N, the number of optimizer steps           */
} ba_lr_schedule;

/* W from --warmup-steps (>= 0, or -1 = not given) and --warmup-ratio
 * (in [0, 1], or -1 = not given): both given is an error, neither is 0. */
ba_status ba_lr_warmup_steps(int64_t total_steps, int64_t warmup_steps, double warmup_ratio,
                             int64_t *out, ba_error *err);

/* Check a schedule (lr finite and >= 0, N >= 1, 0 <= W). */
ba_status ba_lr_schedule_check(const ba_lr_schedule *s, ba_error *err);

/* The multiplier f(step) and the learning rate lr * f(step) of 0-based
 * optimizer step `step`. */
double ba_lr_factor(const ba_lr_schedule *s, int64_t step);
double ba_lr_at(const ba_lr_schedule *s, int64_t step);

#endif
