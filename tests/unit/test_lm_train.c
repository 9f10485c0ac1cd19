/* test_lm_train.c — the model's training pass (lm/train.h) beyond the
 * gradient oracle (tests/oracle/train_grad_oracle.py):
 *   - a LoRA adapter with B = 0 (PEFT's initialisation) gives bitwise the
 *     base model's features (hidden states and next-token log-probabilities),
 *     for GPT-2 and LLaMA (GQA), every target, inference (set_adapter) and
 *     training (attach) contexts;
 *   - ba_model_save_merged's checkpoint gives the adapter's features within
 *     1e-5 relative; ba_model_save_trained's checkpoint gives bitwise the
 *     features of a context with the (changed) freeze set attached;
 *   - bad inputs: an adapter for another model shape refused naming the
 *     tensor/module, freeze k = 0 or > L, a non-finite loss, training
 *     without an attached set, bad labels. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/kernels/kernels.h"
#include "brainalign/lm/model.h"
#include "brainalign/lm/ops.h"
#include "brainalign/lm/train.h"
#include "test_util.h"

#define N_TOK 19

typedef struct {
    const char *name;
    ba_arch arch;
    int n_kv_heads;
    ba_dtype dtype;
} arch_case;

static const arch_case CASES[] = {
    {"gpt2", BA_ARCH_GPT2, 0, BA_DTYPE_F32},
    {"llama", BA_ARCH_LLAMA, 2, BA_DTYPE_BF16},
};

static ba_model *write_model(const arch_case *ac, int d_model, const char *tag)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/%s-%s", ba_test_tmpdir(), ac->name, tag);
    ba_random_checkpoint spec = {0};
    spec.arch = ac->arch;
    spec.n_layers = 3;
    spec.d_model = d_model;
    spec.n_heads = 4;
    spec.n_kv_heads = ac->n_kv_heads;
    spec.vocab_size = 300;
    spec.n_positions = 32;
    spec.dtype = ac->dtype;
    spec.init_std = 0.2;
    spec.seed = 5;
    spec.n_shards = 1;
    ba_error err;
    ba_error_clear(&err);
    if (ba_model_write_random(&spec, dir, &err) != BA_OK) fail_msg("%s", err.message);
    ba_model *m = NULL;
    if (ba_model_load(dir, &m, &err) != BA_OK) fail_msg("%s", err.message);
    return m;
}

static ba_adapter *make_adapter(const ba_model *m, bool all, uint64_t seed)
{
    ba_lora_config cfg = {0};
    cfg.r = 4;
    cfg.lora_alpha = 8;
    const char *gpt2[] = {"c_attn", "c_proj", "c_fc"};
    const char *llama[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                           "down_proj"};
    const char *llama_default[] = {"q_proj", "v_proj"};
    bool is_gpt2 = ba_model_get_config(m)->arch == BA_ARCH_GPT2;
    const char **names = is_gpt2 ? gpt2 : all ? llama : llama_default;
    int n = all ? (is_gpt2 ? 3 : 7) : (is_gpt2 ? 1 : 2);
    cfg.n_targets = n;
    for (int i = 0; i < n; i++) snprintf(cfg.targets[i], sizeof cfg.targets[i], "%s", names[i]);
    cfg.fan_in_fan_out = is_gpt2;
    ba_error err;
    ba_error_clear(&err);
    ba_adapter *ad = NULL;
    if (ba_adapter_create(&cfg, ba_model_get_config(m), &ad, &err) != BA_OK ||
        ba_adapter_init_peft(ad, seed, &err) != BA_OK)
        fail_msg("%s", err.message);
    return ad;
}

/* hidden [L + 1][n][d] then next-token log-probabilities [n]. */
static float *features(ba_model_ctx *ctx, const int32_t *tokens, size_t *len)
{
    const ba_model *m = ba_model_ctx_model(ctx);
    int L1 = ba_model_n_hidden_states(m), d = ba_model_d_model(m);
    int layers[64];
    for (int i = 0; i < L1; i++) layers[i] = i;
    *len = (size_t)L1 * N_TOK * (size_t)d + N_TOK;
    float *out = calloc(*len, sizeof *out);
    assert_non_null(out);
    ba_error err;
    ba_error_clear(&err);
    if (ba_model_forward(ctx, tokens, N_TOK, layers, L1, out,
                         out + (size_t)L1 * N_TOK * (size_t)d, &err) != BA_OK)
        fail_msg("%s", err.message);
    return out;
}

static void make_tokens(int32_t *t, int vocab)
{
    uint64_t s = 99;
    for (int i = 0; i < N_TOK; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        t[i] = (int32_t)((s >> 33) % (uint64_t)vocab);
    }
}

static void fill_random(float *v, size_t n, uint64_t seed, float scale)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        v[i] = scale * ((float)((s >> 40) & 0xFFFF) / 32768.0f - 1.0f);
    }
}

static void test_b_zero_bitwise(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof CASES / sizeof *CASES; c++) {
        ba_model *m = write_model(&CASES[c], 32, "bzero");
        int32_t tokens[N_TOK];
        make_tokens(tokens, 300);
        ba_error err;
        ba_error_clear(&err);
        ba_model_ctx *base = NULL, *inf = NULL, *tr = NULL;
        assert_int_equal(ba_model_ctx_create(m, &base, &err), BA_OK);
        assert_int_equal(ba_model_ctx_create(m, &inf, &err), BA_OK);
        assert_int_equal(ba_model_ctx_create(m, &tr, &err), BA_OK);
        size_t len = 0;
        float *want = features(base, tokens, &len);
        for (int all = 0; all < 2; all++) {
            ba_adapter *ad = make_adapter(m, all, 3);
            ba_trainable *t = NULL;
            if (ba_model_ctx_set_adapter(inf, ad, &err) != BA_OK ||
                ba_trainable_lora(m, ad, 0.0, 1, &t, &err) != BA_OK ||
                ba_model_ctx_attach(tr, t, &err) != BA_OK)
                fail_msg("%s: %s", CASES[c].name, err.message);
            float *got = features(inf, tokens, &len);
            float *got2 = features(tr, tokens, &len);
            /* NaN-free bitwise equality (the last log-probability is NaN) */
            assert_memory_equal(want, got, (len - 1) * sizeof *want);
            assert_memory_equal(want, got2, (len - 1) * sizeof *want);
            free(got), free(got2);
            /* bf16 products (LLaMA's BF16 matrices used as stored) and LoRA */
            if (CASES[c].arch == BA_ARCH_LLAMA && ba_bf16_dot_available()) {
                ba_model_ctx *b16 = NULL, *b16a = NULL;
                assert_int_equal(ba_model_ctx_create(m, &b16, &err), BA_OK);
                assert_int_equal(ba_model_ctx_create(m, &b16a, &err), BA_OK);
                assert_int_equal(ba_model_ctx_set_matmul(b16, BA_MATMUL_BF16, &err), BA_OK);
                assert_int_equal(ba_model_ctx_set_matmul(b16a, BA_MATMUL_BF16, &err), BA_OK);
                assert_int_equal(ba_model_ctx_set_adapter(b16a, ad, &err), BA_OK);
                float *w16 = features(b16, tokens, &len), *g16 = features(b16a, tokens, &len);
                assert_memory_equal(w16, g16, (len - 1) * sizeof *w16);
                free(w16), free(g16);
                ba_model_ctx_destroy(b16), ba_model_ctx_destroy(b16a);
            }
            assert_int_equal(ba_model_ctx_attach(tr, NULL, &err), BA_OK);
            assert_int_equal(ba_model_ctx_set_adapter(inf, NULL, &err), BA_OK);
            ba_trainable_destroy(t);
            ba_adapter_destroy(ad);
        }
        free(want);
        ba_model_ctx_destroy(base), ba_model_ctx_destroy(inf), ba_model_ctx_destroy(tr);
        ba_model_destroy(m);
    }
}

static double rel_err(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)a[i] - b[i];
        num += e * e;
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1e-300));
}

static void test_merged_equals_adapter(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof CASES / sizeof *CASES; c++) {
        ba_model *m = write_model(&CASES[c], 32, "merge");
        ba_adapter *ad = make_adapter(m, true, 4);
        for (size_t i = 0; i < ad->n_modules; i++)
            fill_random(ad->modules[i].B, (size_t)ad->modules[i].out * 4, 7 + i, 0.2f);
        int32_t tokens[N_TOK];
        make_tokens(tokens, 300);
        ba_error err;
        ba_error_clear(&err);
        ba_model_ctx *ctx = NULL;
        assert_int_equal(ba_model_ctx_create(m, &ctx, &err), BA_OK);
        assert_int_equal(ba_model_ctx_set_adapter(ctx, ad, &err), BA_OK);
        size_t len = 0, len2 = 0;
        float *want = features(ctx, tokens, &len);
        char dir[4300];
        snprintf(dir, sizeof dir, "%s/%s-merged", ba_test_tmpdir(), CASES[c].name);
        if (ba_model_save_merged(m, ad, dir, &err) != BA_OK) fail_msg("%s", err.message);
        /* a second save to the same directory is refused */
        assert_int_not_equal(ba_model_save_merged(m, ad, dir, &err), BA_OK);
        ba_model *merged = NULL;
        ba_model_ctx *mctx = NULL;
        if (ba_model_load(dir, &merged, &err) != BA_OK) fail_msg("%s", err.message);
        assert_int_equal(ba_model_ctx_create(merged, &mctx, &err), BA_OK);
        float *got = features(mctx, tokens, &len2);
        assert_int_equal(len, len2);
        double e = rel_err(got, want, len - 1);
        printf("%s: merged vs adapter features rel %.2e\n", CASES[c].name, e);
        assert_true(e < 1e-5);
        /* and the adapter does change the features */
        ba_model_ctx *base = NULL;
        assert_int_equal(ba_model_ctx_create(m, &base, &err), BA_OK);
        float *b = features(base, tokens, &len2);
        assert_true(rel_err(b, want, len - 1) > 1e-3);
        free(b), free(got), free(want);
        ba_model_ctx_destroy(base), ba_model_ctx_destroy(mctx), ba_model_ctx_destroy(ctx);
        ba_model_destroy(merged);
        ba_adapter_destroy(ad);
        ba_model_destroy(m);
    }
}

static void test_save_trained(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof CASES / sizeof *CASES; c++) {
        ba_model *m = write_model(&CASES[c], 32, "trained");
        ba_error err;
        ba_error_clear(&err);
        ba_trainable *t = NULL;
        if (ba_trainable_freeze(m, 2, &t, &err) != BA_OK) fail_msg("%s", err.message);
        for (size_t i = 0; i < ba_trainable_count(t); i++) {
            const ba_train_tensor *tt = ba_trainable_tensor(t, i);
            float noise[4096];
            size_t k = tt->n < 4096 ? tt->n : 4096;
            fill_random(noise, k, 31 + i, 0.05f);
            for (size_t j = 0; j < k; j++) tt->value[j] += noise[j];
        }
        ba_model_ctx *ctx = NULL;
        assert_int_equal(ba_model_ctx_create(m, &ctx, &err), BA_OK);
        assert_int_equal(ba_model_ctx_attach(ctx, t, &err), BA_OK);
        int32_t tokens[N_TOK];
        make_tokens(tokens, 300);
        size_t len = 0, len2 = 0;
        float *want = features(ctx, tokens, &len);
        char dir[4300];
        snprintf(dir, sizeof dir, "%s/%s-trained-out", ba_test_tmpdir(), CASES[c].name);
        if (ba_model_save_trained(m, t, dir, &err) != BA_OK) fail_msg("%s", err.message);
        ba_model *saved = NULL;
        ba_model_ctx *sctx = NULL;
        if (ba_model_load(dir, &saved, &err) != BA_OK) fail_msg("%s", err.message);
        assert_int_equal(ba_model_ctx_create(saved, &sctx, &err), BA_OK);
        float *got = features(sctx, tokens, &len2);
        assert_memory_equal(want, got, (len - 1) * sizeof *want);
        free(got), free(want);
        ba_model_ctx_destroy(sctx), ba_model_ctx_destroy(ctx);
        ba_model_destroy(saved);
        ba_trainable_destroy(t);
        ba_model_destroy(m);
    }
}

static void test_bad_inputs(void **state)
{
    (void)state;
    ba_error err;
    ba_error_clear(&err);
    for (size_t c = 0; c < sizeof CASES / sizeof *CASES; c++) {
        ba_model *m = write_model(&CASES[c], 32, "bad");
        ba_model *other = write_model(&CASES[c], 48, "bad-other");
        /* an adapter built for another shape is refused, naming what */
        ba_adapter *wrong = make_adapter(other, false, 1);
        ba_trainable *t = NULL;
        ba_model_ctx *ctx = NULL;
        assert_int_equal(ba_model_ctx_create(m, &ctx, &err), BA_OK);
        assert_int_not_equal(ba_model_ctx_set_adapter(ctx, wrong, &err), BA_OK);
        printf("%s: %s\n", CASES[c].name, err.message);
        assert_non_null(strstr(err.message, CASES[c].arch == BA_ARCH_GPT2 ? "c_attn" : "q_proj"));
        assert_int_not_equal(ba_trainable_lora(m, wrong, 0.0, 1, &t, &err), BA_OK);
        assert_null(t);
        assert_int_not_equal(ba_model_save_merged(m, wrong, "/nonexistent/never", &err), BA_OK);
        ba_adapter_destroy(wrong);
        /* freeze k out of range */
        assert_int_equal(ba_trainable_freeze(m, 0, &t, &err), BA_ERR_VALUE);
        assert_non_null(strstr(err.message, "trainable layers"));
        assert_int_equal(ba_trainable_freeze(m, 4, &t, &err), BA_ERR_VALUE);
        assert_null(t);
        /* training without an attached set, bad labels, too short */
        int32_t tokens[N_TOK], labels[N_TOK];
        make_tokens(tokens, 300);
        memcpy(labels, tokens, sizeof labels);
        double loss = 0;
        size_t count = 0;
        assert_int_equal(ba_model_train_sequence(ctx, tokens, labels, N_TOK, 1.0f, false, &loss,
                                                 &count, NULL, &err), BA_ERR_USAGE);
        ba_adapter *ad = make_adapter(m, false, 2);
        assert_int_equal(ba_trainable_lora(m, ad, 0.0, 1, &t, &err), BA_OK);
        assert_int_equal(ba_model_ctx_attach(ctx, t, &err), BA_OK);
        labels[3] = 300;
        assert_int_equal(ba_model_train_sequence(ctx, tokens, labels, N_TOK, 1.0f, false, &loss,
                                                 &count, NULL, &err), BA_ERR_VALUE);
        labels[3] = BA_LABEL_IGNORE;
        assert_int_equal(ba_model_train_sequence(ctx, tokens, labels, 1, 1.0f, false, &loss,
                                                 &count, NULL, &err), BA_ERR_SHAPE);
        /* a sane pass works, and counts the unmasked labels after the first */
        ba_trainable_zero_grad(t);
        assert_int_equal(ba_model_train_sequence(ctx, tokens, labels, N_TOK, 1.0f, true, &loss,
                                                 &count, NULL, &err), BA_OK);
        assert_int_equal(count, N_TOK - 2);
        assert_true(isfinite(loss) && loss > 0);
        /* a non-finite adapter weight: a non-finite loss is an error */
        ad->modules[0].A[0] = INFINITY;
        assert_int_equal(ba_model_train_sequence(ctx, tokens, labels, N_TOK, 1.0f, false, &loss,
                                                 &count, NULL, &err), BA_ERR_VALUE);
        assert_non_null(strstr(err.message, "non-finite"));
        ba_model_ctx_destroy(ctx);
        ba_trainable_destroy(t);
        ba_adapter_destroy(ad);
        ba_model_destroy(other);
        ba_model_destroy(m);
    }
}

/* LoRA dropout: a pure function of the seed, the sequence key, the module
 * and the position, so the pass is deterministic, recompute draws the same
 * masks (bitwise equal gradients), another sequence key draws others,
 * inference forwards never drop, and the gradient is that of the loss with
 * the drawn mask (central finite differences on A). */
static double dropout_loss(ba_model_ctx *ctx, ba_trainable *t, const int32_t *tokens,
                           const int32_t *labels, bool recompute)
{
    ba_error err;
    ba_error_clear(&err);
    double loss = 0;
    size_t count = 0;
    ba_trainable_zero_grad(t);
    if (ba_model_train_sequence(ctx, tokens, labels, N_TOK, 1.0f, recompute, &loss, &count,
                                NULL, &err) != BA_OK)
        fail_msg("%s", err.message);
    return loss;
}

static float *grads_copy(const ba_trainable *t, size_t *total)
{
    *total = 0;
    for (size_t i = 0; i < ba_trainable_count(t); i++) *total += ba_trainable_tensor(t, i)->n;
    float *g = malloc(*total * sizeof *g);
    assert_non_null(g);
    size_t at = 0;
    for (size_t i = 0; i < ba_trainable_count(t); i++) {
        const ba_train_tensor *tt = ba_trainable_tensor(t, i);
        memcpy(g + at, tt->grad, tt->n * sizeof *g);
        at += tt->n;
    }
    return g;
}

static void test_dropout(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof CASES / sizeof *CASES; c++) {
        ba_model *m = write_model(&CASES[c], 32, "dropout");
        ba_adapter *ad = make_adapter(m, true, 6);
        for (size_t i = 0; i < ad->n_modules; i++)
            fill_random(ad->modules[i].B, (size_t)ad->modules[i].out * 4, 50 + i, 0.2f);
        ba_error err;
        ba_error_clear(&err);
        ba_trainable *t = NULL, *t0 = NULL;
        ba_model_ctx *ctx = NULL, *ref = NULL;
        assert_int_equal(ba_trainable_lora(m, ad, 1.5, 9, &t, &err), BA_ERR_VALUE);
        assert_int_equal(ba_trainable_lora(m, ad, 0.4, 9, &t, &err), BA_OK);
        assert_int_equal(ba_trainable_lora(m, ad, 0.0, 9, &t0, &err), BA_OK);
        assert_int_equal(ba_model_ctx_create(m, &ctx, &err), BA_OK);
        assert_int_equal(ba_model_ctx_create(m, &ref, &err), BA_OK);
        assert_int_equal(ba_model_ctx_attach(ctx, t, &err), BA_OK);
        assert_int_equal(ba_model_ctx_attach(ref, t0, &err), BA_OK);
        int32_t tokens[N_TOK], labels[N_TOK];
        make_tokens(tokens, 300);
        memcpy(labels, tokens, sizeof labels);
        ba_trainable_set_sequence(t, 17);
        double l1 = dropout_loss(ctx, t, tokens, labels, false);
        size_t total = 0;
        float *g1 = grads_copy(t, &total);
        double l2 = dropout_loss(ctx, t, tokens, labels, true);
        float *g2 = grads_copy(t, &total);
        assert_memory_equal(&l1, &l2, sizeof l1);
        assert_memory_equal(g1, g2, total * sizeof *g1);
        double l_nodrop = dropout_loss(ref, t0, tokens, labels, false);
        assert_true(fabs(l1 - l_nodrop) > 1e-3 * fabs(l_nodrop));
        ba_trainable_set_sequence(t, 18);
        double l3 = dropout_loss(ctx, t, tokens, labels, false);
        assert_true(l3 != l1);
        /* inference forwards: no dropout */
        size_t len = 0;
        float *fa = features(ctx, tokens, &len), *fb = features(ref, tokens, &len);
        assert_memory_equal(fa, fb, (len - 1) * sizeof *fa);
        free(fa), free(fb);
        /* the gradient of the loss with the drawn masks: finite differences */
        ba_trainable_set_sequence(t, 17);
        (void)dropout_loss(ctx, t, tokens, labels, false);
        const ba_train_tensor *a = ba_trainable_tensor(t, 0); /* layer 0's first A */
        size_t best = 0;
        for (size_t j = 0; j < a->n; j++)
            if (fabsf(a->grad[j]) > fabsf(a->grad[best])) best = j;
        double analytic = a->grad[best];
        float keep = a->value[best], h = 1e-2f;
        a->value[best] = keep + h;
        double lp = dropout_loss(ctx, t, tokens, labels, false);
        a->value[best] = keep - h;
        double lm = dropout_loss(ctx, t, tokens, labels, false);
        a->value[best] = keep;
        double fd = (lp - lm) / (2.0 * (double)h);
        printf("%s: dropout gradient %.6g, finite difference %.6g\n", CASES[c].name, analytic, fd);
        assert_true(fabs(fd - analytic) < 2e-2 * fabs(analytic));
        free(g1), free(g2);
        ba_model_ctx_destroy(ctx), ba_model_ctx_destroy(ref);
        ba_trainable_destroy(t), ba_trainable_destroy(t0);
        ba_adapter_destroy(ad);
        ba_model_destroy(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b_zero_bitwise),
        cmocka_unit_test(test_merged_equals_adapter),
        cmocka_unit_test(test_save_trained),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_dropout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
