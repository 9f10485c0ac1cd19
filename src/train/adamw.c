/* adamw.c — AdamW (torch.optim.AdamW), global-norm clipping
 * (torch.nn.utils.clip_grad_norm_) and the Hugging Face learning-rate
 * schedules; formulas in brainalign/train/adamw.h. */
#include "brainalign/train/adamw.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct ba_adamw {
    ba_adamw_config cfg;
    ba_param_ref *params; /* [n_params]                     */
    float **m, **v;       /* [n_params] of [params[i].n]    */
    size_t n_params;
    int64_t steps;
};

static bool in_unit(double x) { return isfinite(x) && x >= 0 && x < 1; }

ba_status ba_adamw_create(const ba_adamw_config *cfg, const ba_param_ref *params,
                          size_t n_params, ba_adamw **out, ba_error *err)
{
    *out = NULL;
    if (!in_unit(cfg->beta1) || !in_unit(cfg->beta2))
        return ba_fail(err, BA_ERR_USAGE, "AdamW betas must be in [0, 1), not (%g, %g)",
                       cfg->beta1, cfg->beta2);
    if (!isfinite(cfg->eps) || cfg->eps <= 0)
        return ba_fail(err, BA_ERR_USAGE, "AdamW eps must be > 0, not %g", cfg->eps);
    if (!isfinite(cfg->weight_decay) || cfg->weight_decay < 0)
        return ba_fail(err, BA_ERR_USAGE, "AdamW weight decay must be >= 0, not %g",
                       cfg->weight_decay);
    if (n_params == 0) return ba_fail(err, BA_ERR_USAGE, "AdamW: no trainable parameters");
    for (size_t i = 0; i < n_params; i++)
        if (!params[i].param || !params[i].grad)
            return ba_fail(err, BA_ERR_INTERNAL, "AdamW: parameter '%s' has no data or gradient",
                           params[i].name ? params[i].name : "?");
    ba_status rc = BA_OK;
    ba_adamw *opt = ba_calloc(1, sizeof *opt, "AdamW", err);
    if (!opt) return BA_ERR_NOMEM;
    opt->cfg = *cfg;
    opt->n_params = n_params;
    BA_ALLOC(opt->params, n_params, "AdamW parameter list", fail);
    BA_ALLOC(opt->m, n_params, "AdamW moments", fail);
    BA_ALLOC(opt->v, n_params, "AdamW moments", fail);
    memcpy(opt->params, params, n_params * sizeof *params);
    for (size_t i = 0; i < n_params; i++) {
        BA_ALLOC(opt->m[i], params[i].n, "AdamW first moment", fail);
        BA_ALLOC(opt->v[i], params[i].n, "AdamW second moment", fail);
    }
    *out = opt;
    return BA_OK;
fail:
    ba_adamw_destroy(opt);
    return rc;
}

void ba_adamw_destroy(ba_adamw *opt)
{
    if (!opt) return;
    for (size_t i = 0; opt->m && i < opt->n_params; i++) free(opt->m[i]);
    for (size_t i = 0; opt->v && i < opt->n_params; i++) free(opt->v[i]);
    free(opt->m);
    free(opt->v);
    free(opt->params);
    free(opt);
}

ba_status ba_adamw_step(ba_adamw *opt, double lr, ba_error *err)
{
    if (!isfinite(lr) || lr < 0)
        return ba_fail(err, BA_ERR_VALUE, "AdamW: learning rate must be finite and >= 0, not %g",
                       lr);
    /* Check before touching anything: a bad gradient leaves every tensor as it was. */
    for (size_t i = 0; i < opt->n_params; i++) {
        const ba_param_ref *p = &opt->params[i];
        for (size_t k = 0; k < p->n; k++)
            if (!isfinite(p->grad[k]))
                return ba_fail(err, BA_ERR_VALUE,
                               "AdamW step %lld: gradient of '%s' is not finite at element %zu",
                               (long long)(opt->steps + 1), p->name ? p->name : "?", k);
    }
    /* torch's float32 arithmetic, operation by operation, as its CPU kernels
     * round (the installed torch 1.13: add_(alpha) and addcmul_ fuse their
     * multiply-add); Python-side scalars are doubles, rounded to float32
     * where they meet a tensor. */
    const double b1 = opt->cfg.beta1, b2 = opt->cfg.beta2;
    const int64_t t = opt->steps + 1;
    const float decay = (float)(1.0 - lr * opt->cfg.weight_decay);
    const float b1f = (float)b1, w1 = (float)(1.0 - b1), b2f = (float)b2, w2 = (float)(1.0 - b2);
    const float neg_step = (float)(-(lr / (1.0 - pow(b1, (double)t))));
    const float bc2_sqrt = (float)sqrt(1.0 - pow(b2, (double)t));
    const float eps = (float)opt->cfg.eps;
    for (size_t i = 0; i < opt->n_params; i++) {
        const ba_param_ref *p = &opt->params[i];
        float *m = opt->m[i], *v = opt->v[i]; /* [p->n] each */
        for (size_t k = 0; k < p->n; k++) {
            const float g = p->grad[k];
            float w = p->param[k] * decay;               /* param.mul_(1 - lr wd)       */
            float mk = fmaf(w1, g, m[k] * b1f);          /* m.mul_(b1).add_(g, 1 - b1)  */
            float vk = fmaf(w2 * g, g, v[k] * b2f);      /* v.mul_(b2).addcmul_(g, g, 1 - b2) */
            float denom = sqrtf(vk) / bc2_sqrt + eps;    /* sqrt(v) / sqrt(bc2) + eps   */
            m[k] = mk;
            v[k] = vk;
            p->param[k] = w + neg_step * mk / denom;     /* addcdiv_(m, denom, -step)   */
        }
    }
    opt->steps = t;
    return BA_OK;
}

int64_t ba_adamw_steps(const ba_adamw *opt) { return opt->steps; }
float *ba_adamw_m(ba_adamw *opt, size_t i) { return i < opt->n_params ? opt->m[i] : NULL; }
float *ba_adamw_v(ba_adamw *opt, size_t i) { return i < opt->n_params ? opt->v[i] : NULL; }
void ba_adamw_set_steps(ba_adamw *opt, int64_t steps) { opt->steps = steps; }

double ba_grad_global_norm(const ba_param_ref *params, size_t n_params)
{
    double sum = 0;
    for (size_t i = 0; i < n_params; i++)
        for (size_t k = 0; k < params[i].n; k++) {
            double g = params[i].grad[k];
            sum += g * g;
        }
    return sqrt(sum);
}

ba_status ba_grad_clip(const ba_param_ref *params, size_t n_params, double max_grad_norm,
                       double *norm, ba_error *err)
{
    if (!isfinite(max_grad_norm) || max_grad_norm < 0)
        return ba_fail(err, BA_ERR_USAGE, "max_grad_norm must be >= 0 (0 = off), not %g",
                       max_grad_norm);
    double total = ba_grad_global_norm(params, n_params);
    *norm = total;
    if (!isfinite(total))
        return ba_fail(err, BA_ERR_VALUE, "the global gradient norm is not finite (%g)", total);
    if (max_grad_norm == 0) return BA_OK;
    /* torch: clip_coef = max_norm / (total_norm + 1e-6), clamped to 1, as
     * float32 tensor arithmetic on the (here double, rounded) norm */
    const float coef = (float)max_grad_norm / ((float)total + 1e-6f);
    if (!(coef < 1.0f)) return BA_OK; /* torch multiplies by the clamped 1.0: no change */
    for (size_t i = 0; i < n_params; i++)
        for (size_t k = 0; k < params[i].n; k++) params[i].grad[k] *= coef;
    return BA_OK;
}

/* ---- schedules ------------------------------------------------------------ */

static const char *const SCHEDULE_NAMES[] = {"constant", "linear", "cosine"};

ba_status ba_lr_schedule_parse(const char *text, ba_lr_schedule_kind *kind, ba_error *err)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(text, SCHEDULE_NAMES[i]) == 0) {
            *kind = (ba_lr_schedule_kind)i;
            return BA_OK;
        }
    return ba_fail(err, BA_ERR_USAGE,
                   "the learning-rate schedule is constant, linear or cosine, not '%s'", text);
}

const char *ba_lr_schedule_name(ba_lr_schedule_kind kind)
{
    return (unsigned)kind < 3 ? SCHEDULE_NAMES[kind] : "?";
}

ba_status ba_lr_warmup_steps(int64_t total_steps, int64_t warmup_steps, double warmup_ratio,
                             int64_t *out, ba_error *err)
{
    bool have_steps = warmup_steps != -1, have_ratio = warmup_ratio != -1;
    if (have_steps && have_ratio)
        return ba_fail(err, BA_ERR_USAGE, "give --warmup-steps or --warmup-ratio, not both");
    if (have_steps && warmup_steps < 0)
        return ba_fail(err, BA_ERR_USAGE, "--warmup-steps must be >= 0, not %lld",
                       (long long)warmup_steps);
    if (have_ratio && !(warmup_ratio >= 0 && warmup_ratio <= 1))
        return ba_fail(err, BA_ERR_USAGE, "--warmup-ratio must be in [0, 1], not %g",
                       warmup_ratio);
    if (total_steps < 1)
        return ba_fail(err, BA_ERR_USAGE, "the number of training steps must be >= 1, not %lld",
                       (long long)total_steps);
    if (have_steps) *out = warmup_steps;
    else if (have_ratio) *out = (int64_t)ceil((double)total_steps * warmup_ratio);
    else *out = 0;
    return BA_OK;
}

ba_status ba_lr_schedule_check(const ba_lr_schedule *s, ba_error *err)
{
    if ((unsigned)s->kind > BA_LR_COSINE)
        return ba_fail(err, BA_ERR_USAGE, "unknown learning-rate schedule %d", (int)s->kind);
    if (!isfinite(s->lr) || s->lr < 0)
        return ba_fail(err, BA_ERR_USAGE, "the learning rate must be finite and >= 0, not %g",
                       s->lr);
    if (s->total_steps < 1)
        return ba_fail(err, BA_ERR_USAGE, "the number of training steps must be >= 1, not %lld",
                       (long long)s->total_steps);
    if (s->warmup_steps < 0)
        return ba_fail(err, BA_ERR_USAGE, "warmup steps must be >= 0, not %lld",
                       (long long)s->warmup_steps);
    return BA_OK;
}

#define BA_PI 3.14159265358979323846

static double max1(int64_t x) { return x > 1 ? (double)x : 1.0; }

double ba_lr_factor(const ba_lr_schedule *s, int64_t step)
{
    const int64_t w = s->warmup_steps, n = s->total_steps;
    if (step < w) return (double)step / max1(w);
    switch (s->kind) {
    case BA_LR_CONSTANT:
        return 1.0;
    case BA_LR_LINEAR:
        return fmax(0.0, (double)(n - step) / max1(n - w));
    case BA_LR_COSINE: {
        double progress = (double)(step - w) / max1(n - w);
        return fmax(0.0, 0.5 * (1.0 + cos(BA_PI * progress)));
    }
    }
    return 0.0;
}

double ba_lr_at(const ba_lr_schedule *s, int64_t step) { return s->lr * ba_lr_factor(s, step); }
