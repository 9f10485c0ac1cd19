/* test_sample.c — src/lm/sample.c beside tests/oracle/sample_oracle.py
 * (numpy's HF processors, chi-square of draws): the fast pipeline against
 * its plain _ref twin on many random rows full of ties (the kept set must
 * be the same and the distribution equal to float rounding), hand cases of
 * each processor, parameter and id errors, and the per-prompt streams. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/core/rng.h"
#include "brainalign/lm/sample.h"

static ba_sample_params sampling(double r, double t, int32_t k, double p)
{
    return (ba_sample_params){false, r, t, k, p};
}

static void test_fast_matches_reference(void **state)
{
    (void)state;
    ba_rng rng;
    ba_rng_seed(&rng, 11, 0);
    ba_error err;
    const int32_t k_values[] = {0, 1, 2, 3, 7, 40, 1000};
    const double p_values[] = {1.0, 0.99, 0.9, 0.5, 0.1, 1e-6};
    enum { V_MAX = 97 };
    float row[V_MAX];
    double ref[V_MAX], pf[V_MAX], pr[V_MAX];
    int32_t hist[12];
    for (int trial = 0; trial < 600; trial++) {
        int32_t V = 1 + (int32_t)(ba_rng_uniform(&rng) * V_MAX);
        /* coarse values (many ties), some -inf as a previous filter leaves */
        for (int32_t i = 0; i < V; i++) {
            row[i] = (float)floor(ba_rng_normal(&rng) * 3) / 2;
            if (ba_rng_uniform(&rng) < 0.05) row[i] = -INFINITY;
        }
        row[(int32_t)(ba_rng_uniform(&rng) * V)] = 1.0f; /* one finite at least */
        for (int h = 0; h < 12; h++) hist[h] = (int32_t)(ba_rng_uniform(&rng) * V);
        ba_sample_params p = sampling(trial % 3 == 0 ? 1.0 : 1.3, trial % 2 ? 0.7 : 1.0,
                                      k_values[trial % 7], p_values[(trial / 7) % 6]);
        for (int32_t i = 0; i < V; i++) ref[i] = row[i];
        assert_int_equal(ba_sample_filter(row, V, hist, 12, &p, &err), BA_OK);
        assert_int_equal(ba_sample_filter_ref(ref, V, hist, 12, &p, &err), BA_OK);
        assert_int_equal(ba_sample_probs(row, V, pf, &err), BA_OK);
        assert_int_equal(ba_sample_probs_ref(ref, V, pr, &err), BA_OK);
        for (int32_t i = 0; i < V; i++) {
            if ((pf[i] > 0) != (pr[i] > 0) || fabs(pf[i] - pr[i]) > 1e-6)
                fail_msg("trial %d (V %d, k %d, p %g) id %d: fast %.17g, reference %.17g", trial,
                         (int)V, (int)p.top_k, p.top_p, (int)i, pf[i], pr[i]);
        }
    }
}

static void test_hand_cases(void **state)
{
    (void)state;
    ba_error err;
    /* repetition penalty: negative multiplied, positive divided, once */
    float a[4] = {-1.0f, 2.0f, 3.0f, 0.0f};
    int32_t hist[4] = {0, 1, 1, 3};
    assert_int_equal(ba_sample_repetition_penalty(a, 4, hist, 4, 2.0, &err), BA_OK);
    assert_true(a[0] == -2.0f && a[1] == 1.0f && a[2] == 3.0f && a[3] == 0.0f);
    /* top-k keeps ties with the k-th value */
    float b[5] = {1, 3, 2, 3, 2};
    assert_int_equal(ba_sample_top_k(b, 5, 3, &err), BA_OK);
    assert_true(b[0] == -INFINITY && b[1] == 3 && b[2] == 2 && b[3] == 3 && b[4] == 2);
    /* top-p: probabilities 0.1 0.2 0.3 0.4 (log); p = 0.65 removes
     * cumulative 0.1 and 0.3 (<= 0.35), keeps 0.3 and 0.4 */
    float c[4] = {logf(0.1f), logf(0.2f), logf(0.3f), logf(0.4f)};
    assert_int_equal(ba_sample_top_p(c, 4, 0.65, &err), BA_OK);
    assert_true(c[0] == -INFINITY && c[1] == -INFINITY && c[2] > -INFINITY && c[3] > -INFINITY);
    /* a tiny p keeps the largest token only; equal logits: the lower id */
    float d[3] = {0.5f, 0.5f, 0.5f};
    assert_int_equal(ba_sample_top_p(d, 3, 1e-9, &err), BA_OK);
    assert_true(d[0] == 0.5f && d[1] == -INFINITY && d[2] == -INFINITY);
    /* greedy: ties -> lowest id; greedy ignores temperature/top-k/top-p */
    float e[4] = {1, 4, 4, 2};
    assert_int_equal(ba_sample_argmax(e, 4), 1);
    ba_sample_params g = {true, 3.0, 0.0, -5, 7.0};
    int32_t h1[1] = {1}, token = -1;
    assert_int_equal(ba_sample_next(e, 4, h1, 1, &g, NULL, &token, &err), BA_OK);
    assert_int_equal(token, 2);
}

static void test_errors(void **state)
{
    (void)state;
    ba_error err;
    float row[3] = {0, 1, 2};
    ba_sample_params bad[] = {sampling(0.0, 1, 0, 1), sampling(NAN, 1, 0, 1),
                              sampling(1, 0.0, 0, 1), sampling(1, INFINITY, 0, 1),
                              sampling(1, 1, -1, 1),  sampling(1, 1, 0, 0.0),
                              sampling(1, 1, 0, 1.5), sampling(1, 1, 0, NAN)};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ba_error_clear(&err);
        assert_int_equal(ba_sample_filter(row, 3, NULL, 0, &bad[i], &err), BA_ERR_USAGE);
        assert_true(strstr(err.message, "--") != NULL);
    }
    ba_sample_params ok = sampling(1.2, 1, 0, 1);
    int32_t hist[2] = {1, 3};
    assert_int_equal(ba_sample_filter(row, 3, hist, 2, &ok, &err), BA_ERR_VALUE);
    assert_non_null(strstr(err.message, "position 1"));
    float dead[2] = {-INFINITY, -INFINITY};
    double probs[2];
    assert_int_equal(ba_sample_probs(dead, 2, probs, &err), BA_ERR_VALUE);
    int32_t token;
    assert_int_equal(ba_sample_next(row, 3, NULL, 0, &ok, NULL, &token, &err), BA_ERR_USAGE);
}

static void test_streams(void **state)
{
    (void)state;
    /* FNV-1a 64 of "a" (published test vector) */
    assert_true(ba_sample_fnv1a64("a", 1) == 0xaf63dc4c8601ec8cULL);
    assert_true(ba_sample_fnv1a64("", 0) == 0xcbf29ce484222325ULL);
    ba_rng a, b, c;
    ba_sample_stream(&a, 5, "story-1", 7);
    ba_sample_stream(&b, 5, "story-1", 7);
    ba_sample_stream(&c, 5, "story-2", 7);
    int same_c = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = ba_rng_next(&a), y = ba_rng_next(&b), z = ba_rng_next(&c);
        assert_true(x == y);
        same_c += x == z;
    }
    assert_true(same_c < 3);
    /* a draw never picks a zero-probability id */
    double probs[4] = {0.0, 0.5, 0.0, 0.5};
    for (int i = 0; i < 1000; i++) {
        int32_t t = ba_sample_draw(probs, 4, &a);
        assert_true(t == 1 || t == 3);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fast_matches_reference),
        cmocka_unit_test(test_hand_cases),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_streams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
