/* gpt2_dump.c — test helper: run the C forward pass of a checkpoint on a
 * window of tokens and dump every hidden state and the next-token
 * log-probabilities as raw float32, for gpt2_oracle.py to compare with its
 * own torch implementation.
 *
 *   gpt2_dump CKPT_DIR TOKENS.i32 OUT_PREFIX
 *     writes OUT_PREFIX.hidden.f32  [n_layers + 1][n_tokens][d_model]
 *            OUT_PREFIX.logprob.f32 [n_tokens]
 *
 * It also checks what the oracle cannot see from outside: a subset of
 * layers (in any order, without log-probabilities, which stops early) gives
 * the same states as the full run, a shorter window gives the same states
 * on its positions (causality), and bad arguments are refused. Exit 0 when
 * all is well; 1 with a message otherwise. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/lm/model.h"

static int die(const char *what, const ba_error *err)
{
    fprintf(stderr, "gpt2_dump: %s%s%s\n", what, err ? ": " : "", err ? err->message : "");
    return 1;
}

static int write_floats(const char *prefix, const char *suffix, const float *x, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s%s", prefix, suffix);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(x, sizeof *x, n, f) != n) {
        if (f) fclose(f);
        return die(path, NULL);
    }
    return fclose(f) != 0;
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

static int expect_refusal(ba_model_ctx *m, const int32_t *tokens, size_t n, const int *layers,
                          int n_kept, float *hidden, const char *fragment)
{
    ba_error err;
    ba_error_clear(&err);
    if (ba_model_forward(m, tokens, n, layers, n_kept, hidden, NULL, &err) == BA_OK ||
        !strstr(err.message, fragment)) {
        fprintf(stderr, "gpt2_dump: expected a refusal mentioning '%s', got '%s'\n", fragment,
                err.message);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: gpt2_dump CKPT_DIR TOKENS.i32 OUT_PREFIX\n");
        return 2;
    }
    ba_error err;
    ba_error_clear(&err);
    ba_model *m = NULL;
    ba_model_ctx *ctx = NULL;
    if (ba_model_load(argv[1], &m, &err) != BA_OK) return die("load", &err);
    if (ba_model_ctx_create(m, &ctx, &err) != BA_OK) return die("context", &err);

    FILE *f = fopen(argv[2], "rb");
    if (!f) return die(argv[2], NULL);
    int32_t tokens[1 << 16];
    size_t n = fread(tokens, sizeof *tokens, sizeof tokens / sizeof *tokens, f);
    fclose(f);

    int L = ba_model_n_hidden_states(m) - 1;
    size_t d = (size_t)ba_model_d_model(m);
    int *all = malloc((size_t)(L + 1) * sizeof *all);
    for (int i = 0; i <= L; i++) all[i] = i;
    float *hidden = malloc((size_t)(L + 1) * n * d * sizeof *hidden);
    float *logprob = malloc(n * sizeof *logprob);
    if (ba_model_forward(ctx, tokens, n, all, L + 1, hidden, logprob, &err) != BA_OK)
        return die("forward", &err);
    if (write_floats(argv[3], ".hidden.f32", hidden, (size_t)(L + 1) * n * d) ||
        write_floats(argv[3], ".logprob.f32", logprob, n))
        return 1;
    int bad = 0;

    /* Layers L and 1 in that order, no log-probabilities. */
    int some[2] = {L, 1};
    float *part = malloc(2 * n * d * sizeof *part);
    if (ba_model_forward(ctx, tokens, n, some, 2, part, NULL, &err) != BA_OK)
        return die("forward (subset)", &err);
    if (memcmp(part, hidden + (size_t)L * n * d, n * d * sizeof *part) != 0 ||
        memcmp(part + n * d, hidden + n * d, n * d * sizeof *part) != 0) {
        fprintf(stderr, "gpt2_dump: layers {L, 1} differ from the full run\n");
        bad = 1;
    }
    /* Only layer 1 (stops after the first block). */
    if (ba_model_forward(ctx, tokens, n, some + 1, 1, part, NULL, &err) != BA_OK)
        return die("forward (layer 1)", &err);
    if (memcmp(part, hidden + n * d, n * d * sizeof *part) != 0) {
        fprintf(stderr, "gpt2_dump: layer 1 alone differs from the full run\n");
        bad = 1;
    }

    /* A shorter window sees the same causal prefix. */
    size_t short_n = n > 23 ? 23 : n;
    float *short_hidden = malloc((size_t)(L + 1) * short_n * d * sizeof *short_hidden);
    float *short_lp = malloc(short_n * sizeof *short_lp);
    if (ba_model_forward(ctx, tokens, short_n, all, L + 1, short_hidden, short_lp, &err) != BA_OK)
        return die("forward (short window)", &err);
    double worst = 0;
    for (int i = 0; i <= L; i++) {
        double diff = max_diff(short_hidden + (size_t)i * short_n * d,
                               hidden + (size_t)i * n * d, short_n * d);
        worst = diff > worst ? diff : worst;
    }
    double lp_diff = max_diff(short_lp, logprob, short_n - 1);
    if (worst > 1e-5 || lp_diff > 1e-5 || !isnan(short_lp[short_n - 1]) || !isnan(logprob[n - 1])) {
        fprintf(stderr, "gpt2_dump: short window differs: hidden %g, logprob %g\n", worst, lp_diff);
        bad = 1;
    }
    printf("prefix window of %zu: max |diff| hidden %.3g, logprob %.3g\n", short_n, worst, lp_diff);

    /* Refusals. */
    int32_t bad_tokens[2] = {0, (int32_t)ba_model_vocab_size(m)};
    int beyond = L + 1;
    bad |= expect_refusal(ctx, bad_tokens, 2, NULL, 0, NULL, "outside the vocabulary");
    bad |= expect_refusal(ctx, tokens, (size_t)ba_model_max_tokens(m) + 1, NULL, 0, NULL,
                          "the model takes 1 to");
    bad |= expect_refusal(ctx, tokens, 0, NULL, 0, NULL, "the model takes 1 to");
    bad |= expect_refusal(ctx, tokens, 1, &beyond, 1, part, "does not exist");

    free(all), free(hidden), free(logprob), free(part), free(short_hidden), free(short_lp);
    ba_model_ctx_destroy(ctx);
    ba_model_destroy(m);
    return bad;
}
