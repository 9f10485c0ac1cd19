/* test_stats.c — the statistics of `compare`: the sign-flip permutation
 * test (the fast meet-in-the-middle enumeration against the plain one,
 * hand-computed p-values, Monte-Carlo within its error of the exact
 * value, determinism), the percentile bootstrap (exact small cases, the
 * quantile rule, determinism) and Benjamini–Hochberg q-values (a hand
 * example and a plain O(m^2) reference). SciPy checks the same functions
 * through `brainalign compare` in tests/oracle/stats_oracle.py. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/core/rng.h"
#include "brainalign/core/stats.h"

#define assert_near(a, b, eps)                                                    \
    do {                                                                          \
        double a_ = (a), b_ = (b);                                                \
        if (!(fabs(a_ - b_) <= (eps)))                                            \
            fail_msg("%s = %.17g, expected %.17g (+-%g)", #a, a_, b_, (double)(eps)); \
    } while (0)

/* ---- sign-flip test ----------------------------------------------------- */

static void test_signflip_hand_example(void **state)
{
    (void)state;
    ba_error err;
    ba_signflip_result r;
    /* Sums of +-1 +-2 +-3: 6 4 2 0 0 -2 -4 -6. Only the identity reaches 6. */
    double d[3] = {1, 2, 3};
    assert_int_equal(ba_signflip_test(d, 3, 1000, 1, &r, &err), BA_OK);
    assert_true(r.exact);
    assert_int_equal(r.n_resamples, 8);
    assert_near(r.statistic, 2.0, 1e-15);
    assert_near(r.p, 0.25, 1e-15);
    double e[3] = {-1, 2, 1};
    /* sign vectors give sums {2, 4, -2, 0, 0, 2, -4, -2}: >= 2: 3 of 8;
     * <= 2: 7 of 8 -> p = 2 * 3/8 = 0.75. */
    assert_int_equal(ba_signflip_test(e, 3, 1000, 1, &r, &err), BA_OK);
    assert_near(r.p, 0.75, 1e-15);
    /* All zero: every null value ties, p = 1. */
    double z[4] = {0, 0, 0, 0};
    assert_int_equal(ba_signflip_test(z, 4, 1000, 1, &r, &err), BA_OK);
    assert_near(r.p, 1.0, 0);
    /* One subject: p = 1 whatever the value (2 * 1/2). */
    double one[1] = {0.3};
    assert_int_equal(ba_signflip_test(one, 1, 1000, 1, &r, &err), BA_OK);
    assert_near(r.p, 1.0, 0);
}

static void test_signflip_split_matches_reference(void **state)
{
    (void)state;
    ba_error err;
    ba_rng rng;
    ba_rng_seed(&rng, 7, 0);
    double d[14];
    for (size_t n = 1; n <= 14; n++)
        for (int trial = 0; trial < 6; trial++) {
            for (size_t i = 0; i < n; i++) {
                switch (trial) {
                case 0: d[i] = ba_rng_normal(&rng) * 0.01 + 0.003; break;
                case 1: d[i] = (double)(int)(ba_rng_uniform(&rng) * 5) - 1; break; /* ties */
                case 2: d[i] = i % 3 == 0 ? 0.0 : 0.25 * (double)(i % 4); break;   /* zeros */
                case 3: d[i] = 0.1; break;                                       /* all equal */
                case 4: d[i] = (i % 2 ? -1.0 : 1.0) * 0.1 * (double)(i / 2 + 1); break;
                default: d[i] = ba_rng_normal(&rng); break;
                }
            }
            ba_signflip_result fast, plain;
            assert_int_equal(ba_signflip_test(d, n, 1L << 20, 1, &fast, &err), BA_OK);
            assert_int_equal(ba_signflip_exact_reference(d, n, &plain, &err), BA_OK);
            assert_true(fast.exact);
            if (fast.p != plain.p)
                fail_msg("n = %zu, trial %d: fast p %.17g, reference p %.17g", n, trial, fast.p,
                         plain.p);
            assert_near(fast.statistic, plain.statistic, 1e-15);
        }
}

static void test_signflip_monte_carlo(void **state)
{
    (void)state;
    ba_error err;
    ba_rng rng;
    ba_rng_seed(&rng, 9, 0);
    double d[16];
    for (int i = 0; i < 16; i++) d[i] = ba_rng_normal(&rng) + 0.35;
    ba_signflip_result exact, mc, again;
    assert_int_equal(ba_signflip_exact_reference(d, 16, &exact, &err), BA_OK);
    long B = 20000;
    assert_int_equal(ba_signflip_test(d, 16, B, 123, &mc, &err), BA_OK);
    assert_false(mc.exact);
    assert_int_equal(mc.n_resamples, B);
    double se = sqrt(exact.p * (1 - exact.p) / (double)B) * 2 + 1.0 / (double)B;
    assert_near(mc.p, exact.p, 4 * se);
    assert_int_equal(ba_signflip_test(d, 16, B, 123, &again, &err), BA_OK);
    assert_true(again.p == mc.p); /* same seed, same answer */
    /* Exact when 2^n <= resamples. */
    assert_int_equal(ba_signflip_test(d, 16, 1L << 16, 123, &again, &err), BA_OK);
    assert_true(again.exact);
    assert_true(again.p == exact.p);
    /* Many subjects: Monte-Carlo p of a strong effect is the smallest possible. */
    double many[80];
    for (int i = 0; i < 80; i++) many[i] = 1.0 + 0.1 * ba_rng_normal(&rng);
    assert_int_equal(ba_signflip_test(many, 80, 999, 5, &mc, &err), BA_OK);
    assert_near(mc.p, 2.0 / 1000.0, 1e-15);
}

static void test_signflip_bad_input(void **state)
{
    (void)state;
    ba_error err;
    ba_signflip_result r;
    double d[3] = {1, NAN, 2};
    assert_int_equal(ba_signflip_test(d, 3, 100, 1, &r, &err), BA_ERR_VALUE);
    assert_non_null(strstr(err.message, "value 1"));
    assert_int_equal(ba_signflip_test(d, 0, 100, 1, &r, &err), BA_ERR_USAGE);
}

/* ---- bootstrap ----------------------------------------------------------- */

static void test_quantile_rule(void **state)
{
    (void)state;
    /* numpy.percentile([1, 2, 3, 4], [0, 25, 50, 97.5, 100]) */
    double s[4] = {1, 2, 3, 4};
    assert_near(ba_quantile_sorted(s, 4, 0.0), 1.0, 0);
    assert_near(ba_quantile_sorted(s, 4, 0.25), 1.75, 1e-15);
    assert_near(ba_quantile_sorted(s, 4, 0.5), 2.5, 1e-15);
    assert_near(ba_quantile_sorted(s, 4, 0.975), 3.925, 1e-15);
    assert_near(ba_quantile_sorted(s, 4, 1.0), 4.0, 0);
    double one[1] = {7};
    assert_near(ba_quantile_sorted(one, 1, 0.3), 7.0, 0);
}

static void test_bootstrap_small_exact_distribution(void **state)
{
    (void)state;
    ba_error err;
    /* x = {0, 1}: the bootstrap mean is 0, 0.5, 1 with probability 1/4, 1/2, 1/4. */
    double x[2] = {0, 1};
    long B = 40000;
    double *means = malloc((size_t)B * sizeof *means);
    assert_non_null(means);
    ba_bootstrap_result r;
    assert_int_equal(ba_bootstrap_mean(x, 2, B, 0.95, 3, &r, means, &err), BA_OK);
    long count[3] = {0, 0, 0};
    for (long i = 0; i < B; i++) {
        int k = (int)lround(means[i] * 2);
        assert_true(k >= 0 && k <= 2);
        count[k]++;
    }
    double se = sqrt(0.25 * 0.75 / (double)B);
    assert_near((double)count[0] / (double)B, 0.25, 5 * se);
    assert_near((double)count[1] / (double)B, 0.50, 5 * sqrt(0.25 / (double)B));
    assert_near((double)count[2] / (double)B, 0.25, 5 * se);
    assert_near(r.statistic, 0.5, 0);
    assert_near(r.ci_low, 0.0, 0);
    assert_near(r.ci_high, 1.0, 0);
    /* #{<= 0} ~ B/4, #{>= 0} = B: p = 2 (1 + ~B/4) / (B + 1) ~ 0.5. */
    assert_near(r.p, 2.0 * (1 + (double)count[0]) / (double)(B + 1), 1e-12);
    free(means);
}

static void test_bootstrap_constant_and_determinism(void **state)
{
    (void)state;
    ba_error err;
    double x[5] = {0.02, 0.02, 0.02, 0.02, 0.02};
    ba_bootstrap_result r, again;
    assert_int_equal(ba_bootstrap_mean(x, 5, 999, 0.95, 1, &r, NULL, &err), BA_OK);
    assert_near(r.ci_low, 0.02, 1e-16);
    assert_near(r.ci_high, 0.02, 1e-16);
    assert_near(r.p, 2.0 / 1000.0, 1e-15); /* every mean > 0 */
    ba_rng rng;
    ba_rng_seed(&rng, 4, 0);
    double y[300];
    for (int i = 0; i < 300; i++) y[i] = ba_rng_normal(&rng);
    assert_int_equal(ba_bootstrap_mean(y, 300, 5000, 0.95, 77, &r, NULL, &err), BA_OK);
    assert_int_equal(ba_bootstrap_mean(y, 300, 5000, 0.95, 77, &again, NULL, &err), BA_OK);
    assert_true(r.ci_low == again.ci_low && r.ci_high == again.ci_high && r.p == again.p);
    /* The percentile interval of a mean of 300 N(0,1) is about mean +- 1.96/sqrt(300). */
    double half = 1.96 / sqrt(300.0);
    assert_near(r.ci_high - r.ci_low, 2 * half, 0.15 * half);
    assert_true(r.ci_low < r.statistic && r.statistic < r.ci_high);
    double bad[2] = {1, INFINITY};
    assert_int_equal(ba_bootstrap_mean(bad, 2, 100, 0.95, 1, &r, NULL, &err), BA_ERR_VALUE);
    assert_int_equal(ba_bootstrap_mean(y, 10, 100, 1.5, 1, &r, NULL, &err), BA_ERR_USAGE);
}

/* ---- Benjamini–Hochberg --------------------------------------------------- */

static void test_bh_hand_example(void **state)
{
    (void)state;
    ba_error err;
    /* m = 4 finite: sorted 0.01, 0.03, 0.04, 0.5 -> raw 0.04, 0.06, 0.0533.., 0.5
     * -> running minimum from the top: 0.04, 0.0533.., 0.0533.., 0.5. */
    double p[5] = {0.01, 0.04, 0.03, 0.5, NAN}, q[5];
    assert_int_equal(ba_bh_qvalues(p, 5, q, &err), BA_OK);
    assert_near(q[0], 0.04, 1e-15);
    assert_near(q[1], 0.04 * 4.0 / 3.0, 1e-15);
    assert_near(q[2], 0.04 * 4.0 / 3.0, 1e-15);
    assert_near(q[3], 0.5, 1e-15);
    assert_true(isnan(q[4]));
    /* In place, and clipped at 1. */
    double pp[3] = {0.9, 0.8, 0.95};
    assert_int_equal(ba_bh_qvalues(pp, 3, pp, &err), BA_OK);
    assert_near(pp[0], 0.95, 1e-15);
    assert_near(pp[1], 0.95, 1e-15);
    assert_near(pp[2], 0.95, 1e-15);
    double bad[2] = {0.1, 1.5};
    assert_int_equal(ba_bh_qvalues(bad, 2, q, &err), BA_ERR_VALUE);
}

/* The definition, O(m^2): q_i = min(1, min over p_j >= p_i of p_j m / rank_j). */
static void bh_reference(const double *p, size_t n, double *q)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) m += !isnan(p[i]);
    for (size_t i = 0; i < n; i++) {
        if (isnan(p[i])) { q[i] = NAN; continue; }
        double best = 1.0;
        for (size_t j = 0; j < n; j++) {
            if (isnan(p[j]) || p[j] < p[i]) continue;
            size_t rank = 0; /* rank of j: p-values below it, plus ties up to it */
            for (size_t k = 0; k < n; k++)
                rank += !isnan(p[k]) && (p[k] < p[j] || (p[k] == p[j] && k <= j));
            double v = p[j] * ((double)m / (double)rank);
            if (v < best) best = v;
        }
        q[i] = best;
    }
}

static void test_bh_against_reference(void **state)
{
    (void)state;
    ba_error err;
    ba_rng rng;
    ba_rng_seed(&rng, 21, 0);
    for (int trial = 0; trial < 50; trial++) {
        size_t n = 1 + (size_t)(ba_rng_uniform(&rng) * 60);
        double p[64], q[64], ref[64];
        for (size_t i = 0; i < n; i++) {
            double u = ba_rng_uniform(&rng);
            p[i] = trial % 3 == 0 ? floor(u * 8) / 8 : u * u * u; /* ties, small values */
            if (trial % 5 == 0 && i % 7 == 3) p[i] = NAN;
        }
        assert_int_equal(ba_bh_qvalues(p, n, q, &err), BA_OK);
        bh_reference(p, n, ref);
        for (size_t i = 0; i < n; i++) {
            if (isnan(ref[i])) { assert_true(isnan(q[i])); continue; }
            if (q[i] != ref[i]) fail_msg("trial %d, p[%zu] = %g: q %.17g, reference %.17g",
                                         trial, i, p[i], q[i], ref[i]);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signflip_hand_example),
        cmocka_unit_test(test_signflip_split_matches_reference),
        cmocka_unit_test(test_signflip_monte_carlo),
        cmocka_unit_test(test_signflip_bad_input),
        cmocka_unit_test(test_quantile_rule),
        cmocka_unit_test(test_bootstrap_small_exact_distribution),
        cmocka_unit_test(test_bootstrap_constant_and_determinism),
        cmocka_unit_test(test_bh_hand_example),
        cmocka_unit_test(test_bh_against_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
