/* stats.h — the statistics of `compare`: a paired sign-flip permutation
 * test, a percentile bootstrap of a mean, and Benjamini–Hochberg q-values.
 *
 * Sign-flip test. d[0..n) are paired differences (one per subject: the
 * region-mean r of a condition minus that of the baseline). The statistic
 * is T = mean(d); under the null hypothesis (no effect, differences
 * symmetric about 0) every sign vector e in {-1,+1}^n is equally likely,
 * and the null distribution is T*(e) = mean(e .* d). All 2^n sign vectors
 * are enumerated when 2^n <= max_resamples (the identity is one of them,
 * p = count / 2^n); otherwise max_resamples random sign vectors are drawn
 * from `seed` and p = (count + 1) / (max_resamples + 1) (the observed data
 * counts as one resample). Two-sided:
 *     p = min(1, 2 * min(P(T* <= T), P(T* >= T)))
 * where a null value within BA_STATS_TIE_RTOL * |T| of T counts as a tie
 * (i.e. as extreme), so values that are equal up to rounding are treated
 * as equal. This is the definition of scipy.stats.permutation_test
 * (permutation_type='samples' on the pairs, alternative='two-sided'),
 * which the tests use as an oracle.
 *
 * Bootstrap. x[0..n) are resampled with replacement n at a time,
 * n_resamples times (seeded); the statistic is the mean. The interval is
 * the percentile interval: the (1-c)/2 and (1+c)/2 quantiles of the
 * bootstrap means with linear interpolation between order statistics
 * (numpy's default `percentile`, scipy.stats.bootstrap's method
 * 'percentile'). Its two-sided p-value comes from the sign of the
 * bootstrap means:
 *     p = min(1, 2 * (1 + min(#{T* <= 0}, #{T* >= 0})) / (n_resamples + 1))
 * i.e. twice the share of the bootstrap distribution on the other side of
 * zero, with the +1 that keeps a Monte-Carlo p-value above 0.
 *
 * Benjamini–Hochberg. For the m finite p-values (NaN ones are outside the
 * family and get NaN), sorted p_(1) <= ... <= p_(m):
 *     q_(i) = min(1, min_{j >= i} p_(j) * (m / j))
 * (scipy.stats.false_discovery_control, method 'bh'). A hypothesis is
 * rejected at false discovery rate alpha when q <= alpha. */
#ifndef BRAINALIGN_STATS_H
#define BRAINALIGN_STATS_H

#include <float.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brainalign/core/error.h"

#define BA_STATS_TIE_RTOL (100 * DBL_EPSILON)
/* The largest n enumerated exactly, whatever max_resamples says. */
#define BA_SIGNFLIP_MAX_EXACT_N 40

typedef struct {
    double statistic;  /* mean(d) */
    double p;          /* two-sided */
    long n_resamples;  /* 2^n when exact, else the Monte-Carlo count */
    bool exact;
} ba_signflip_result;

/* n >= 1, max_resamples >= 1. d must be finite. */
ba_status ba_signflip_test(const double *d, size_t n, long max_resamples, uint64_t seed,
                           ba_signflip_result *out, ba_error *err);

/* The plain reference of the exact test: every sign vector's mean
 * recomputed from scratch (n <= 30). ba_signflip_test enumerates by
 * "meet in the middle" (sums of the two halves' sign vectors, paired),
 * and the tests compare the two. */
ba_status ba_signflip_exact_reference(const double *d, size_t n, ba_signflip_result *out,
                                      ba_error *err);

typedef struct {
    double statistic;        /* mean(x) */
    double ci_low, ci_high;  /* percentile interval */
    double p;                /* two-sided, from the bootstrap means' sign */
    long n_resamples;
} ba_bootstrap_result;

/* n >= 1, n_resamples >= 2, 0 < confidence < 1. x must be finite.
 * `means` (may be NULL) receives the n_resamples bootstrap means in the
 * order they were drawn. */
ba_status ba_bootstrap_mean(const double *x, size_t n, long n_resamples, double confidence,
                            uint64_t seed, ba_bootstrap_result *out, double *means,
                            ba_error *err);

/* The q-th quantile (0 <= q <= 1) of sorted[0..n), n >= 1, interpolating
 * linearly between order statistics: h = (n - 1) q, value =
 * s[floor h] + (h - floor h) (s[floor h + 1] - s[floor h]). */
double ba_quantile_sorted(const double *sorted, size_t n, double q);

/* q[i] for p[i] (see above). p and q may be the same array. */
ba_status ba_bh_qvalues(const double *p, size_t n, double *q, ba_error *err);

#endif
