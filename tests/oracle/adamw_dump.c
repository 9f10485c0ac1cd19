/* adamw_dump.c — test helper: run the C AdamW + global-norm clipping + a
 * learning-rate schedule over a gradient sequence given by
 * adamw_oracle.py and dump the trajectory, for the oracle to compare with
 * torch.optim.AdamW + clip_grad_norm_ + LambdaLR.
 *
 *   adamw_dump IN.bin OUT.bin
 * IN.bin (little-endian):
 *   int64  n_tensors, n_steps, schedule (0 constant, 1 linear, 2 cosine),
 *          warmup_steps (-1 = none given), total_steps
 *   f64    lr, beta1, beta2, eps, weight_decay, max_grad_norm, warmup_ratio (-1 = none)
 *   int64  sizes[n_tensors]
 *   f32    params[sum sizes]                  initial values
 *   f32    grads[n_steps][sum sizes]          the gradient of each step
 * OUT.bin, per step: f64 lr, f64 grad_norm (before clipping),
 *   f32 params[sum sizes] after the step, f32 m[sum], f32 v[sum]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/train/adamw.h"

static int die(const char *what, const ba_error *err)
{
    fprintf(stderr, "adamw_dump: %s%s%s\n", what, err ? ": " : "", err ? err->message : "");
    return 1;
}

#define READ(ptr, count)                                                        \
    do {                                                                        \
        if (fread((ptr), sizeof *(ptr), (size_t)(count), f) != (size_t)(count)) \
            return die("short input", NULL);                                    \
    } while (0)

int main(int argc, char **argv)
{
    if (argc != 3) return die("usage: adamw_dump IN.bin OUT.bin", NULL);
    FILE *f = fopen(argv[1], "rb");
    if (!f) return die(argv[1], NULL);
    int64_t hdr[5];
    double cfgv[7];
    READ(hdr, 5);
    READ(cfgv, 7);
    const int64_t n_tensors = hdr[0], n_steps = hdr[1];
    if (n_tensors < 1 || n_tensors > 64 || n_steps < 1 || n_steps > 10000)
        return die("bad header", NULL);
    int64_t sizes[64];
    READ(sizes, n_tensors);
    size_t total = 0;
    for (int64_t i = 0; i < n_tensors; i++) total += (size_t)sizes[i];
    float *params = malloc(total * sizeof *params);
    float *grads = malloc(total * (size_t)n_steps * sizeof *grads);
    float *grad = malloc(total * sizeof *grad);
    if (!params || !grads || !grad) return die("out of memory", NULL);
    READ(params, total);
    READ(grads, total * (size_t)n_steps);
    fclose(f);

    ba_error err;
    ba_error_clear(&err);
    ba_param_ref refs[64];
    size_t off = 0;
    for (int64_t i = 0; i < n_tensors; i++) {
        refs[i] = (ba_param_ref){.name = "p", .param = params + off, .grad = grad + off,
                                 .n = (size_t)sizes[i]};
        off += (size_t)sizes[i];
    }
    ba_adamw_config cfg = {.beta1 = cfgv[1], .beta2 = cfgv[2], .eps = cfgv[3],
                           .weight_decay = cfgv[4]};
    ba_adamw *opt = NULL;
    if (ba_adamw_create(&cfg, refs, (size_t)n_tensors, &opt, &err) != BA_OK)
        return die("create", &err);
    ba_lr_schedule sched = {.kind = (ba_lr_schedule_kind)hdr[2], .lr = cfgv[0],
                            .total_steps = hdr[4]};
    if (ba_lr_warmup_steps(hdr[4], hdr[3], cfgv[6], &sched.warmup_steps, &err) != BA_OK ||
        ba_lr_schedule_check(&sched, &err) != BA_OK)
        return die("schedule", &err);

    FILE *o = fopen(argv[2], "wb");
    if (!o) return die(argv[2], NULL);
    for (int64_t s = 0; s < n_steps; s++) {
        memcpy(grad, grads + (size_t)s * total, total * sizeof *grad);
        double norm = 0, lr = ba_lr_at(&sched, s);
        if (ba_grad_clip(refs, (size_t)n_tensors, cfgv[5], &norm, &err) != BA_OK)
            return die("clip", &err);
        if (ba_adamw_step(opt, lr, &err) != BA_OK) return die("step", &err);
        fwrite(&lr, sizeof lr, 1, o);
        fwrite(&norm, sizeof norm, 1, o);
        fwrite(params, sizeof *params, total, o);
        for (int64_t i = 0; i < n_tensors; i++)
            fwrite(ba_adamw_m(opt, (size_t)i), sizeof(float), (size_t)sizes[i], o);
        for (int64_t i = 0; i < n_tensors; i++)
            fwrite(ba_adamw_v(opt, (size_t)i), sizeof(float), (size_t)sizes[i], o);
    }
    if (ba_adamw_steps(opt) != n_steps) return die("step count", NULL);
    ba_adamw_destroy(opt);
    free(params);
    free(grads);
    free(grad);
    return fclose(o) != 0;
}
