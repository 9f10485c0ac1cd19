/* train_grad_dump.c — test helper for train_grad_oracle.py: one
 * ba_model_train_sequence of a checkpoint with a LoRA adapter or the last
 * K blocks trained, gradients written for the torch oracle.
 *
 *   train_grad_dump MODEL_DIR OUT.safetensors IDS LABELS
 *                   (--adapter DIR | --freeze K) [--matmul bf16]
 * IDS and LABELS: comma-separated integers (-100 masks a label).
 * Runs the pass three times: without recompute, with recompute, and
 * without the input-embedding gradient (the backward stopping at the
 * lowest trainable block), checks in C that the three give bitwise the
 * same loss and parameter gradients (and the first two the same
 * input-embedding gradient), then writes to OUT (F32): "loss" [1] (the
 * summed token loss, grad_scale 1), "count" [1], every trainable tensor's
 * gradient under its ba_trainable_tensor name, and "input_embeds.0" [n, d].
 * Prints "loss count" on success; exit 1 with the error on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/lm/train.h"

static size_t parse_ints(const char *text, int32_t *out, size_t cap)
{
    size_t n = 0;
    const char *p = text;
    while (*p && n < cap) {
        char *end = NULL;
        long v = strtol(p, &end, 10);
        if (end == p) break;
        out[n++] = (int32_t)v;
        p = *end == ',' ? end + 1 : end;
    }
    return n;
}

typedef struct {
    double loss;
    size_t count;
    float *grads;  /* all gradients, concatenated in set order */
    float *embeds; /* [n][d] or NULL */
} run_result;

static ba_status run_once(ba_model_ctx *ctx, ba_trainable *t, const int32_t *ids,
                          const int32_t *labels, size_t n, size_t d, bool recompute, bool embeds,
                          run_result *out, ba_error *err)
{
    ba_trainable_zero_grad(t);
    size_t total = 0;
    for (size_t i = 0; i < ba_trainable_count(t); i++) total += ba_trainable_tensor(t, i)->n;
    out->grads = calloc(total ? total : 1, sizeof(float));
    out->embeds = embeds ? calloc(n * d, sizeof(float)) : NULL;
    if (!out->grads || (embeds && !out->embeds))
        return ba_fail(err, BA_ERR_NOMEM, "train_grad_dump: out of memory");
    BA_CHECK(ba_model_train_sequence(ctx, ids, labels, n, 1.0f, recompute, &out->loss,
                                     &out->count, out->embeds, err));
    size_t at = 0;
    for (size_t i = 0; i < ba_trainable_count(t); i++) {
        const ba_train_tensor *tt = ba_trainable_tensor(t, i);
        memcpy(out->grads + at, tt->grad, tt->n * sizeof(float));
        at += tt->n;
    }
    return BA_OK;
}

static int same(const run_result *a, const run_result *b, size_t total, size_t embeds)
{
    if (memcmp(&a->loss, &b->loss, sizeof a->loss) != 0 || a->count != b->count) return 0;
    if (memcmp(a->grads, b->grads, total * sizeof(float)) != 0) return 0;
    if (embeds && memcmp(a->embeds, b->embeds, embeds * sizeof(float)) != 0) return 0;
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: train_grad_dump MODEL_DIR OUT IDS LABELS (--adapter DIR | "
                        "--freeze K) [--matmul bf16]\n");
        return 2;
    }
    static int32_t ids[4096], labels[4096];
    size_t n = parse_ints(argv[3], ids, 4096), nl = parse_ints(argv[4], labels, 4096);
    if (n != nl) {
        fprintf(stderr, "train_grad_dump: %zu ids and %zu labels\n", n, nl);
        return 2;
    }
    const char *adapter_dir = NULL, *matmul = NULL;
    int freeze = 0;
    for (int i = 5; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--adapter") == 0) adapter_dir = argv[i + 1];
        else if (strcmp(argv[i], "--freeze") == 0) freeze = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--matmul") == 0) matmul = argv[i + 1];
        else {
            fprintf(stderr, "train_grad_dump: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    ba_error err;
    ba_error_clear(&err);
    ba_model *model = NULL;
    ba_model_ctx *ctx = NULL;
    ba_adapter *ad = NULL;
    ba_trainable *t = NULL;
    run_result r[3] = {{0}};
    ba_tensor_spec *specs = NULL;
    ba_st_writer *w = NULL;
    int rc = 1;
    if (ba_model_load(argv[1], &model, &err) != BA_OK) goto fail;
    size_t d = (size_t)ba_model_d_model(model);
    if (adapter_dir) {
        if (ba_adapter_load(adapter_dir, ba_model_get_config(model), &ad, &err) != BA_OK ||
            ba_trainable_lora(model, ad, 0.0, 1, &t, &err) != BA_OK)
            goto fail;
    } else if (ba_trainable_freeze(model, freeze, &t, &err) != BA_OK) {
        goto fail;
    }
    if (ba_model_ctx_create(model, &ctx, &err) != BA_OK) goto fail;
    if (matmul) {
        ba_matmul mode;
        if (ba_matmul_parse(matmul, &mode, &err) != BA_OK ||
            ba_model_ctx_set_matmul(ctx, mode, &err) != BA_OK)
            goto fail;
    }
    if (ba_model_ctx_attach(ctx, t, &err) != BA_OK) goto fail;
    if (run_once(ctx, t, ids, labels, n, d, false, true, &r[0], &err) != BA_OK ||
        run_once(ctx, t, ids, labels, n, d, true, true, &r[1], &err) != BA_OK ||
        run_once(ctx, t, ids, labels, n, d, false, false, &r[2], &err) != BA_OK)
        goto fail;
    size_t total = 0, count = ba_trainable_count(t);
    for (size_t i = 0; i < count; i++) total += ba_trainable_tensor(t, i)->n;
    if (!same(&r[0], &r[1], total, n * d)) {
        fprintf(stderr, "train_grad_dump: recompute changes the gradients (not bitwise equal)\n");
        goto done;
    }
    if (!same(&r[0], &r[2], total, 0)) {
        fprintf(stderr, "train_grad_dump: the backward without the input-embedding gradient "
                        "changes the parameter gradients\n");
        goto done;
    }
    specs = calloc(count + 3, sizeof *specs);
    if (!specs) goto done;
    float loss = (float)r[0].loss, cnt = (float)r[0].count;
    specs[0] = (ba_tensor_spec){"loss", BA_DTYPE_F32, 1, {1}};
    specs[1] = (ba_tensor_spec){"count", BA_DTYPE_F32, 1, {1}};
    for (size_t i = 0; i < count; i++) {
        const ba_train_tensor *tt = ba_trainable_tensor(t, i);
        specs[2 + i].name = tt->name;
        specs[2 + i].dtype = BA_DTYPE_F32;
        specs[2 + i].rank = tt->rank;
        for (int k = 0; k < tt->rank; k++) specs[2 + i].shape[k] = tt->shape[k];
    }
    specs[2 + count] = (ba_tensor_spec){"input_embeds.0", BA_DTYPE_F32, 2, {(int64_t)n,
                                                                            (int64_t)d}};
    if (ba_st_writer_open(argv[2], specs, count + 3, NULL, 0, &w, &err) != BA_OK ||
        ba_st_writer_write(w, &loss, sizeof loss, &err) != BA_OK ||
        ba_st_writer_write(w, &cnt, sizeof cnt, &err) != BA_OK ||
        ba_st_writer_write(w, r[0].grads, total * sizeof(float), &err) != BA_OK ||
        ba_st_writer_write(w, r[0].embeds, n * d * sizeof(float), &err) != BA_OK)
        goto fail;
    ba_status st = ba_st_writer_finish(w, &err);
    w = NULL;
    if (st != BA_OK) goto fail;
    printf("%.17g %zu\n", r[0].loss, r[0].count);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "train_grad_dump: %s\n", err.message);
done:
    ba_st_writer_abort(w);
    free(specs);
    for (int i = 0; i < 3; i++) free(r[i].grads), free(r[i].embeds);
    ba_model_ctx_destroy(ctx);
    ba_trainable_destroy(t);
    ba_adapter_destroy(ad);
    ba_model_destroy(model);
    return rc;
}
