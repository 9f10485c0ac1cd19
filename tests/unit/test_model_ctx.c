/* test_model_ctx.c — the model / context split: one ba_model (the weights)
 * serves several ba_model_ctx (the run state) used alternately and on two
 * threads at once, and every context gives the same features (hidden
 * states of every layer, next-token log-probabilities) bit for bit as a
 * single context does; the context's own checks (window length, matrix
 * precision) refuse bad requests and leave it usable.
 *
 * Random checkpoints (ba_model_write_random) of both architectures cover
 * every path of the weight product: float32 weights in place, float16
 * Conv1D matrices widened whole (GPT-2), bfloat16 nn.Linear matrices
 * widened in panels (LLaMA, grouped-query) and, where the CPU has
 * AVX512-BF16, the bfloat16 kernel with the context's workspace. Whether
 * the features are right is the oracle tests' business (model.*_oracle);
 * here they must be the same whichever context computes them. */
#include "test_util.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/kernels/kernels.h"
#include "brainalign/lm/model.h"

#define N_WINDOWS 3

typedef struct {
    const char *name;
    ba_arch arch;
    ba_dtype dtype;
    int n_kv_heads;
    ba_matmul matmul;
} model_case;

/* The features of one window: hidden [L + 1][n][d], logprob [n]. */
typedef struct {
    size_t n;
    float *hidden, *logprob;
} features;

typedef struct {
    const ba_model *model;
    ba_matmul matmul;
    const int32_t *tokens[N_WINDOWS];
    size_t lengths[N_WINDOWS];
    const features *expected; /* [N_WINDOWS] */
    int rounds;
    int mismatches; /* out: windows that differ from the expected bits */
    char error[512];
} worker;

static const size_t LENGTHS[N_WINDOWS] = {41, 17, 64};

static void make_tokens(int32_t *tokens, size_t n, int vocab, uint64_t seed)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 1;
    for (size_t t = 0; t < n; t++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        tokens[t] = (int32_t)(s % (uint64_t)vocab);
    }
}

static ba_status run_window(ba_model_ctx *ctx, const int32_t *tokens, size_t n, features *out,
                            ba_error *err)
{
    const ba_model *m = ba_model_ctx_model(ctx);
    int L = ba_model_n_hidden_states(m) - 1;
    size_t d = (size_t)ba_model_d_model(m);
    int layers[64];
    for (int i = 0; i <= L; i++) layers[i] = i;
    out->n = n;
    out->hidden = malloc((size_t)(L + 1) * n * d * sizeof *out->hidden);
    out->logprob = malloc(n * sizeof *out->logprob);
    if (!out->hidden || !out->logprob) return ba_fail(err, BA_ERR_NOMEM, "test features");
    return ba_model_forward(ctx, tokens, n, layers, L + 1, out->hidden, out->logprob, err);
}

static void features_free(features *f)
{
    free(f->hidden);
    free(f->logprob);
    f->hidden = f->logprob = NULL;
}

static bool same_features(const ba_model *m, const features *a, const features *b)
{
    size_t d = (size_t)ba_model_d_model(m), L1 = (size_t)ba_model_n_hidden_states(m);
    return a->n == b->n && memcmp(a->hidden, b->hidden, L1 * a->n * d * sizeof(float)) == 0 &&
           memcmp(a->logprob, b->logprob, a->n * sizeof(float)) == 0;
}

/* One context of its own, the windows `rounds` times in turn. */
static void *work(void *arg)
{
    worker *w = arg;
    ba_error err;
    ba_error_clear(&err);
    ba_model_ctx *ctx = NULL;
    if (ba_model_ctx_create(w->model, &ctx, &err) != BA_OK ||
        ba_model_ctx_set_matmul(ctx, w->matmul, &err) != BA_OK) {
        snprintf(w->error, sizeof w->error, "%s", err.message);
        ba_model_ctx_destroy(ctx);
        return NULL;
    }
    for (int r = 0; r < w->rounds && !w->error[0]; r++)
        for (int k = 0; k < N_WINDOWS; k++) {
            /* odd rounds backwards: the buffers shrink and grow between windows */
            int i = r % 2 ? N_WINDOWS - 1 - k : k;
            features f = {0};
            if (run_window(ctx, w->tokens[i], w->lengths[i], &f, &err) != BA_OK) {
                snprintf(w->error, sizeof w->error, "%s", err.message);
                features_free(&f);
                break;
            }
            if (!same_features(w->model, &f, &w->expected[i])) w->mismatches++;
            features_free(&f);
        }
    ba_model_ctx_destroy(ctx);
    return NULL;
}

static void check_case(const model_case *mc)
{
    if (mc->matmul == BA_MATMUL_BF16 && !ba_bf16_dot_available()) {
        printf("%s: skipped (no AVX512-BF16 here)\n", mc->name);
        return;
    }
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/%s", ba_test_tmpdir(), mc->name);
    ba_random_checkpoint spec = {0};
    spec.arch = mc->arch;
    spec.n_layers = 2;
    spec.d_model = 64;
    spec.n_heads = 4;
    spec.n_kv_heads = mc->n_kv_heads;
    spec.vocab_size = 2100; /* two chunks of the output layer (2048 rows each) */
    spec.n_positions = 64;
    spec.dtype = mc->dtype;
    spec.init_std = 0.2;
    spec.seed = 11;
    spec.n_shards = 1;
    ba_error err;
    ba_error_clear(&err);
    if (ba_model_write_random(&spec, dir, &err) != BA_OK) fail_msg("%s", err.message);
    ba_model *m = NULL;
    if (ba_model_load(dir, &m, &err) != BA_OK) fail_msg("%s", err.message);

    int32_t tokens[N_WINDOWS][64];
    for (int i = 0; i < N_WINDOWS; i++)
        make_tokens(tokens[i], LENGTHS[i], spec.vocab_size, (uint64_t)i + 1);

    /* One context, the windows in order: the expected bits. */
    ba_model_ctx *one = NULL;
    if (ba_model_ctx_create(m, &one, &err) != BA_OK ||
        ba_model_ctx_set_matmul(one, mc->matmul, &err) != BA_OK)
        fail_msg("%s: %s", mc->name, err.message);
    assert_int_equal(ba_model_ctx_get_matmul(one), mc->matmul);
    features expected[N_WINDOWS];
    for (int i = 0; i < N_WINDOWS; i++)
        if (run_window(one, tokens[i], LENGTHS[i], &expected[i], &err) != BA_OK)
            fail_msg("%s: %s", mc->name, err.message);
    /* features that mean something: finite, log-probabilities < 0, windows
     * differ (otherwise "the same bits" would prove little) */
    for (int i = 0; i < N_WINDOWS; i++) {
        for (size_t t = 0; t + 1 < LENGTHS[i]; t++)
            if (!(expected[i].logprob[t] < 0.0f))
                fail_msg("%s: window %d, log p[%zu] = %g", mc->name, i, t,
                         (double)expected[i].logprob[t]);
        assert_true(isnan(expected[i].logprob[LENGTHS[i] - 1]));
    }
    assert_true(memcmp(expected[0].logprob, expected[1].logprob, 8 * sizeof(float)) != 0);

    /* Two more contexts used alternately, window by window. */
    ba_model_ctx *c1 = NULL, *c2 = NULL;
    if (ba_model_ctx_create(m, &c1, &err) != BA_OK || ba_model_ctx_create(m, &c2, &err) != BA_OK ||
        ba_model_ctx_set_matmul(c1, mc->matmul, &err) != BA_OK ||
        ba_model_ctx_set_matmul(c2, mc->matmul, &err) != BA_OK)
        fail_msg("%s: %s", mc->name, err.message);
    for (int r = 0; r < 2; r++)
        for (int k = 0; k < N_WINDOWS; k++) {
            int i = (k + r) % N_WINDOWS;
            ba_model_ctx *ctx = (k + r) % 2 ? c2 : c1;
            features f = {0};
            if (run_window(ctx, tokens[i], LENGTHS[i], &f, &err) != BA_OK)
                fail_msg("%s: %s", mc->name, err.message);
            if (!same_features(m, &f, &expected[i]))
                fail_msg("%s: window %d on context %d (round %d) differs from one context",
                         mc->name, i, ctx == c1 ? 1 : 2, r);
            features_free(&f);
        }
    /* The first context again, after the others ran: unchanged too. */
    features again = {0};
    if (run_window(one, tokens[0], LENGTHS[0], &again, &err) != BA_OK)
        fail_msg("%s: %s", mc->name, err.message);
    assert_true(same_features(m, &again, &expected[0]));
    features_free(&again);

    /* Two threads, a context each, at the same time. */
    worker w[2];
    pthread_t th[2];
    for (int t = 0; t < 2; t++) {
        memset(&w[t], 0, sizeof w[t]);
        w[t].model = m;
        w[t].matmul = mc->matmul;
        for (int i = 0; i < N_WINDOWS; i++) {
            w[t].tokens[i] = tokens[i];
            w[t].lengths[i] = LENGTHS[i];
        }
        w[t].expected = expected;
        w[t].rounds = 6;
        assert_int_equal(pthread_create(&th[t], NULL, work, &w[t]), 0);
    }
    for (int t = 0; t < 2; t++) {
        assert_int_equal(pthread_join(th[t], NULL), 0);
        if (w[t].error[0]) fail_msg("%s: thread %d: %s", mc->name, t, w[t].error);
        if (w[t].mismatches)
            fail_msg("%s: thread %d: %d windows differ from one context", mc->name, t,
                     w[t].mismatches);
    }

    for (int i = 0; i < N_WINDOWS; i++) features_free(&expected[i]);
    ba_model_ctx_destroy(c1);
    ba_model_ctx_destroy(c2);
    ba_model_ctx_destroy(one);
    ba_model_destroy(m);
    printf("%s: one model, 5 contexts (2 on threads): the same bits\n", mc->name);
}

static void test_contexts_share_a_model(void **state)
{
    (void)state;
    const model_case cases[] = {
        {"gpt2_f32", BA_ARCH_GPT2, BA_DTYPE_F32, 0, BA_MATMUL_F32},
        {"gpt2_f16", BA_ARCH_GPT2, BA_DTYPE_F16, 0, BA_MATMUL_F32},
        {"llama_f32_gqa", BA_ARCH_LLAMA, BA_DTYPE_F32, 2, BA_MATMUL_F32},
        {"llama_bf16_gqa", BA_ARCH_LLAMA, BA_DTYPE_BF16, 2, BA_MATMUL_F32},
        {"llama_bf16_gqa_bf16dot", BA_ARCH_LLAMA, BA_DTYPE_BF16, 2, BA_MATMUL_BF16},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) check_case(&cases[c]);
}

/* Refusals of the context: window lengths out of range, bf16 products
 * where they do not apply; the context stays usable after each. */
static void test_context_refusals(void **state)
{
    (void)state;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/refusals", ba_test_tmpdir());
    ba_random_checkpoint spec = {0};
    spec.arch = BA_ARCH_GPT2;
    spec.n_layers = 1;
    spec.d_model = 32;
    spec.n_heads = 2;
    spec.vocab_size = 50;
    spec.n_positions = 16;
    spec.dtype = BA_DTYPE_F32;
    spec.seed = 3;
    spec.n_shards = 1;
    ba_error err;
    ba_error_clear(&err);
    if (ba_model_write_random(&spec, dir, &err) != BA_OK) fail_msg("%s", err.message);
    ba_model *m = NULL;
    ba_model_ctx *ctx = NULL;
    if (ba_model_load(dir, &m, &err) != BA_OK || ba_model_ctx_create(m, &ctx, &err) != BA_OK)
        fail_msg("%s", err.message);
    assert_ptr_equal(ba_model_ctx_model(ctx), m);
    assert_int_equal(ba_model_ctx_get_matmul(ctx), BA_MATMUL_F32);

    assert_int_equal(ba_model_ctx_reserve(ctx, 0, &err), BA_ERR_SHAPE);
    assert_non_null(strstr(err.message, "the model takes 1 to 16"));
    ba_error_clear(&err);
    assert_int_equal(ba_model_ctx_reserve(ctx, 17, &err), BA_ERR_SHAPE);
    ba_error_clear(&err);
    assert_int_equal(ba_model_ctx_set_matmul(ctx, BA_MATMUL_BF16, &err), BA_ERR_USAGE);
    assert_non_null(strstr(err.message, "LLaMA"));
    assert_int_equal(ba_model_ctx_get_matmul(ctx), BA_MATMUL_F32);

    /* still usable, and a reserved context gives the bits of a fresh one */
    ba_error_clear(&err);
    assert_int_equal(ba_model_ctx_reserve(ctx, 16, &err), BA_OK);
    int32_t tokens[12];
    make_tokens(tokens, 12, spec.vocab_size, 5);
    features a = {0}, b = {0};
    assert_int_equal(run_window(ctx, tokens, 12, &a, &err), BA_OK);
    ba_model_ctx *fresh = NULL;
    assert_int_equal(ba_model_ctx_create(m, &fresh, &err), BA_OK);
    assert_int_equal(run_window(fresh, tokens, 12, &b, &err), BA_OK);
    assert_true(same_features(m, &a, &b));
    features_free(&a);
    features_free(&b);
    ba_model_ctx_destroy(fresh);
    ba_model_ctx_destroy(ctx);
    ba_model_ctx_destroy(NULL);
    ba_model_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contexts_share_a_model),
        cmocka_unit_test(test_context_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
