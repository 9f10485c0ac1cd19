/* llama_dump.c — test and benchmark helper for the LLaMA forward pass
 * (through the generic model interface, so it runs any architecture).
 *
 *   llama_dump CKPT_DIR TOKENS.i32 OUT_PREFIX
 *     runs the forward on the window and writes, for llama_oracle.py,
 *       OUT_PREFIX.hidden.f32  [n_layers + 1][n_tokens][d_model]
 *       OUT_PREFIX.logprob.f32 [n_tokens]
 *     and checks what the oracle cannot see from outside: a subset of
 *     layers (in any order, without log-probabilities, which stops early)
 *     gives the same states as the full run; a fresh model that first runs
 *     a shorter window (so its buffers must grow afterwards) gives the same
 *     states on that prefix (causality) and then the same full run; bad
 *     arguments are refused. Exit 0 when all is well, 1 otherwise.
 *
 *   llama_dump --time CKPT_DIR TOKENS.i32 N1[,N2...] REPEATS [OUT_PREFIX]
 *     times load and REPEATS forwards (all layers, log-probabilities) of the
 *     first N tokens for each N, one JSON line per run on standard output;
 *     with OUT_PREFIX, the last run of each N writes
 *     OUT_PREFIX.N.last.f32 [N][d_model] (the final hidden state) and
 *     OUT_PREFIX.N.logprob.f32 [N].
 *
 * The environment variable BRAINALIGN_MATMUL=f32|bf16 (default f32) sets
 * the precision of the matrix products of every model loaded
 * (ba_model_ctx_set_matmul); when bf16 is asked for on a CPU without
 * AVX512-BF16 the tool says so and exits with 77 (a skipped test). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brainalign/kernels/kernels.h"
#include "brainalign/lm/model.h"

#define MAX_TOKENS (1 << 16)

static int die(const char *what, const ba_error *err)
{
    fprintf(stderr, "llama_dump: %s%s%s\n", what, err ? ": " : "", err ? err->message : "");
    return 1;
}

#define EXIT_SKIP 77

/* ba_model_load and a context on it, then the products of
 * BRAINALIGN_MATMUL. 0, 1 (failure) or EXIT_SKIP. */
static int open_model(const char *dir, ba_model **m, ba_model_ctx **ctx, const char *what)
{
    ba_error err;
    ba_error_clear(&err);
    *m = NULL;
    *ctx = NULL;
    if (ba_model_load(dir, m, &err) != BA_OK) return die(what, &err);
    if (ba_model_ctx_create(*m, ctx, &err) != BA_OK) return die(what, &err);
    const char *text = getenv("BRAINALIGN_MATMUL");
    ba_matmul mode = BA_MATMUL_F32;
    if (text && ba_matmul_parse(text, &mode, &err) != BA_OK) return die("BRAINALIGN_MATMUL", &err);
    if (ba_model_ctx_set_matmul(*ctx, mode, &err) != BA_OK) {
        bool cpu = mode == BA_MATMUL_BF16 && !ba_bf16_dot_available();
        fprintf(stderr, "llama_dump: %s%s\n", cpu ? "skipped: " : "", err.message);
        ba_model_ctx_destroy(*ctx);
        ba_model_destroy(*m);
        *m = NULL;
        *ctx = NULL;
        return cpu ? EXIT_SKIP : 1;
    }
    return 0;
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

static size_t read_tokens(const char *path, int32_t *tokens)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(tokens, sizeof *tokens, MAX_TOKENS, f);
    fclose(f);
    return n;
}

static double max_abs(const float *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs((double)a[i]) > m ? fabs((double)a[i]) : m;
    return m;
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d; /* NaN propagates */
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
        fprintf(stderr, "llama_dump: expected a refusal mentioning '%s', got '%s'\n", fragment,
                err.message);
        return 1;
    }
    return 0;
}

/* A fresh model runs the first short_n tokens, then the whole window: the
 * prefix agrees with the full run up to rounding (a different window
 * length changes BLAS blocking), and the grown run agrees exactly. */
static int check_growth(const char *dir, const int32_t *tokens, size_t n, const float *hidden,
                        const float *logprob, int L, size_t d)
{
    ba_error err;
    ba_error_clear(&err);
    ba_model *m = NULL;
    ba_model_ctx *ctx = NULL;
    int opened = open_model(dir, &m, &ctx, "load (second model)");
    if (opened) return opened;
    int *all = malloc((size_t)(L + 1) * sizeof *all);
    for (int i = 0; i <= L; i++) all[i] = i;
    size_t short_n = n > 23 ? 23 : n;
    float *h = malloc((size_t)(L + 1) * n * d * sizeof *h), *lp = malloc(n * sizeof *lp);
    int bad = 0;
    if (ba_model_forward(ctx, tokens, short_n, all, L + 1, h, lp, &err) != BA_OK)
        return die("forward (short window)", &err);
    double worst = 0;
    for (int i = 0; i <= L; i++) {
        const float *full = hidden + (size_t)i * n * d, *part = h + (size_t)i * short_n * d;
        /* relative to the layer's scale: a few float32 ulps */
        double rel = max_diff(part, full, short_n * d) / fmax(1.0, max_abs(full, n * d));
        worst = rel > worst ? rel : worst;
    }
    double lp_diff = max_diff(lp, logprob, short_n - 1);
    printf("prefix window of %zu: max |diff| / scale hidden %.3g, logprob %.3g\n", short_n,
           worst, lp_diff);
    if (worst > 1e-5 || lp_diff > 1e-4 || !isnan(lp[short_n - 1])) {
        fprintf(stderr, "llama_dump: the short window differs from the full run's prefix\n");
        bad = 1;
    }
    if (ba_model_forward(ctx, tokens, n, all, L + 1, h, lp, &err) != BA_OK)
        return die("forward (after growing)", &err);
    if (memcmp(h, hidden, (size_t)(L + 1) * n * d * sizeof *h) != 0 ||
        memcmp(lp, logprob, (n - 1) * sizeof *lp) != 0) {
        fprintf(stderr, "llama_dump: a model whose buffers grew gives a different full run\n");
        bad = 1;
    }
    free(all), free(h), free(lp);
    ba_model_ctx_destroy(ctx);
    ba_model_destroy(m);
    return bad;
}

static int dump_and_check(const char *dir, const char *tokens_path, const char *prefix)
{
    ba_error err;
    ba_error_clear(&err);
    ba_model *m = NULL;
    ba_model_ctx *ctx = NULL;
    int opened = open_model(dir, &m, &ctx, "load");
    if (opened) return opened;
    static int32_t tokens[MAX_TOKENS];
    size_t n = read_tokens(tokens_path, tokens);
    if (n == 0) return die(tokens_path, NULL);

    int L = ba_model_n_hidden_states(m) - 1;
    size_t d = (size_t)ba_model_d_model(m);
    int *all = malloc((size_t)(L + 1) * sizeof *all);
    for (int i = 0; i <= L; i++) all[i] = i;
    float *hidden = malloc((size_t)(L + 1) * n * d * sizeof *hidden);
    float *logprob = malloc(n * sizeof *logprob);
    if (ba_model_forward(ctx, tokens, n, all, L + 1, hidden, logprob, &err) != BA_OK)
        return die("forward", &err);
    if (write_floats(prefix, ".hidden.f32", hidden, (size_t)(L + 1) * n * d) ||
        write_floats(prefix, ".logprob.f32", logprob, n))
        return 1;
    int bad = 0;

    /* Layers L and 1 in that order, no log-probabilities. */
    int some[2] = {L, 1};
    float *part = malloc(2 * n * d * sizeof *part);
    if (ba_model_forward(ctx, tokens, n, some, 2, part, NULL, &err) != BA_OK)
        return die("forward (subset)", &err);
    if (memcmp(part, hidden + (size_t)L * n * d, n * d * sizeof *part) != 0 ||
        memcmp(part + n * d, hidden + n * d, n * d * sizeof *part) != 0) {
        fprintf(stderr, "llama_dump: layers {L, 1} differ from the full run\n");
        bad = 1;
    }
    /* Only layer 1 (stops after the first block). */
    if (ba_model_forward(ctx, tokens, n, some + 1, 1, part, NULL, &err) != BA_OK)
        return die("forward (layer 1)", &err);
    if (memcmp(part, hidden + n * d, n * d * sizeof *part) != 0) {
        fprintf(stderr, "llama_dump: layer 1 alone differs from the full run\n");
        bad = 1;
    }
    bad |= check_growth(dir, tokens, n, hidden, logprob, L, d);

    /* Refusals. */
    int32_t bad_tokens[2] = {0, (int32_t)ba_model_vocab_size(m)};
    int beyond = L + 1;
    bad |= expect_refusal(ctx, bad_tokens, 2, NULL, 0, NULL, "outside the vocabulary");
    if ((size_t)ba_model_max_tokens(m) < MAX_TOKENS)
        bad |= expect_refusal(ctx, tokens, (size_t)ba_model_max_tokens(m) + 1, NULL, 0, NULL,
                              "the model takes 1 to");
    bad |= expect_refusal(ctx, tokens, 0, NULL, 0, NULL, "the model takes 1 to");
    bad |= expect_refusal(ctx, tokens, 1, &beyond, 1, part, "does not exist");

    free(all), free(hidden), free(logprob), free(part);
    ba_model_ctx_destroy(ctx);
    ba_model_destroy(m);
    return bad;
}

/* ---- timing ----------------------------------------------------------------- */

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double now_s(void) { return clock_s(CLOCK_MONOTONIC); }

/* A field of /proc/self/status in kB (VmHWM, VmRSS, RssAnon, RssFile). */
static long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    size_t len = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, len) == 0 && line[len] == ':') kb = strtol(line + len + 1, NULL, 10);
    if (f) fclose(f);
    return kb;
}

static int time_forwards(int argc, char **argv)
{
    if (argc < 6 || argc > 7) {
        fprintf(stderr, "usage: llama_dump --time CKPT_DIR TOKENS.i32 N1[,N2...] REPEATS "
                        "[OUT_PREFIX]\n");
        return 2;
    }
    const char *dir = argv[2], *prefix = argc == 7 ? argv[6] : NULL;
    static int32_t tokens[MAX_TOKENS];
    size_t have = read_tokens(argv[3], tokens);
    int repeats = atoi(argv[5]);
    ba_error err;
    ba_error_clear(&err);
    ba_model *m = NULL;
    ba_model_ctx *ctx = NULL;
    double t0 = now_s();
    int opened = open_model(dir, &m, &ctx, "load");
    if (opened) return opened;
    printf("{\"event\": \"load\", \"seconds\": %.3f, \"VmHWM_kB\": %ld, \"matmul\": \"%s\"}\n",
           now_s() - t0, status_kb("VmHWM"), ba_matmul_name(ba_model_ctx_get_matmul(ctx)));
    fflush(stdout);
    int L = ba_model_n_hidden_states(m) - 1;
    size_t d = (size_t)ba_model_d_model(m);
    char *list = argv[4];
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        size_t n = (size_t)atol(tok);
        if (n == 0 || n > have) return die("window longer than the token file", NULL);
        float *last = malloc(n * d * sizeof *last), *lp = malloc(n * sizeof *lp);
        for (int r = 0; r < repeats; r++) {
            double start = now_s(), cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID);
            if (ba_model_forward(ctx, tokens, n, &L, 1, last, lp, &err) != BA_OK)
                return die("forward", &err);
            double s = now_s() - start;
            cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu;
            printf("{\"event\": \"forward\", \"tokens\": %zu, \"repeat\": %d, \"seconds\": %.3f, "
                   "\"cpu_seconds\": %.3f, \"tokens_per_s\": %.2f, \"VmHWM_kB\": %ld, "
                   "\"RssAnon_kB\": %ld, \"RssFile_kB\": %ld}\n",
                   n, r, s, cpu, n / s, status_kb("VmHWM"), status_kb("RssAnon"),
                   status_kb("RssFile"));
            fflush(stdout);
        }
        if (prefix) {
            char suffix[64];
            snprintf(suffix, sizeof suffix, ".%zu.last.f32", n);
            if (write_floats(prefix, suffix, last, n * d)) return 1;
            snprintf(suffix, sizeof suffix, ".%zu.logprob.f32", n);
            if (write_floats(prefix, suffix, lp, n)) return 1;
        }
        free(last), free(lp);
    }
    ba_model_ctx_destroy(ctx);
    ba_model_destroy(m);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--time") == 0) return time_forwards(argc, argv);
    if (argc != 4) {
        fprintf(stderr, "usage: llama_dump CKPT_DIR TOKENS.i32 OUT_PREFIX\n"
                        "       llama_dump --time CKPT_DIR TOKENS.i32 N1[,N2...] REPEATS "
                        "[OUT_PREFIX]\n");
        return 2;
    }
    return dump_and_check(argv[1], argv[2], argv[3]);
}
