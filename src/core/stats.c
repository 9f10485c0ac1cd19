/* stats.c — sign-flip permutation test, percentile bootstrap,
 * Benjamini–Hochberg q-values (see stats.h). */
#include "brainalign/core/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/core/rng.h"

static ba_status check_finite(const double *x, size_t n, const char *what, ba_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return ba_fail(err, BA_ERR_VALUE, "%s: value %zu is %g, expected a finite number",
                           what, i, x[i]);
    return BA_OK;
}

/* Two-sided p from the counts of null values at least as large / at most
 * as large as the observed one (ties included). `plus` is 1 for a
 * Monte-Carlo test (the observed data counts as a resample), 0 when the
 * null distribution was enumerated. */
static double two_sided_p(long n_ge, long n_le, long n_null, int plus)
{
    double greater = (double)(n_ge + plus) / (double)(n_null + plus);
    double less = (double)(n_le + plus) / (double)(n_null + plus);
    double p = 2.0 * (greater < less ? greater : less);
    return p > 1.0 ? 1.0 : p;
}

/* Sum of e .* d where bit i of `mask` set means e_i = -1 (n <= 64). */
static double signed_sum(const double *d, size_t n, uint64_t mask)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (mask >> i & 1u) ? -d[i] : d[i];
    return s;
}

static double plain_sum(const double *d, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += d[i];
    return s;
}

ba_status ba_signflip_exact_reference(const double *d, size_t n, ba_signflip_result *out,
                                      ba_error *err)
{
    if (n < 1 || n > 30)
        return ba_fail(err, BA_ERR_USAGE, "sign-flip reference: n = %zu, expected 1..30", n);
    BA_CHECK(check_finite(d, n, "sign-flip test", err));
    double observed = plain_sum(d, n), tol = BA_STATS_TIE_RTOL * fabs(observed);
    long total = 1L << n, ge = 0, le = 0;
    for (long mask = 0; mask < total; mask++) {
        double s = signed_sum(d, n, (uint64_t)mask);
        ge += s >= observed - tol;
        le += s <= observed + tol;
    }
    out->statistic = observed / (double)n;
    out->p = two_sided_p(ge, le, total, 0);
    out->n_resamples = total;
    out->exact = true;
    return BA_OK;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Number of sorted[0..n) that are >= v / <= v. */
static size_t count_ge(const double *sorted, size_t n, double v)
{
    size_t lo = 0, hi = n; /* first index with sorted[i] >= v */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sorted[mid] < v) lo = mid + 1;
        else hi = mid;
    }
    return n - lo;
}

static size_t count_le(const double *sorted, size_t n, double v)
{
    size_t lo = 0, hi = n; /* first index with sorted[i] > v */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sorted[mid] <= v) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Exact enumeration by meet in the middle: every sign vector's sum is
 * (a sum over the first half's signs) + (one over the second half's); the
 * second half's 2^(n-h) sums are sorted once, and for each of the first
 * half's sums the counts come from two binary searches. */
static ba_status exact_split(const double *d, size_t n, ba_signflip_result *out, ba_error *err)
{
    ba_status rc = BA_OK;
    size_t h = n / 2, m = n - h;
    size_t na = (size_t)1 << h, nb = (size_t)1 << m;
    double *sa = NULL, *sb = NULL;
    BA_ALLOC(sa, na, "sign-flip half sums", done);
    BA_ALLOC(sb, nb, "sign-flip half sums", done);
    for (size_t mask = 0; mask < na; mask++) sa[mask] = signed_sum(d, h, mask);
    for (size_t mask = 0; mask < nb; mask++) sb[mask] = signed_sum(d + h, m, mask);
    qsort(sb, nb, sizeof *sb, compare_double);
    double observed = plain_sum(d, n), tol = BA_STATS_TIE_RTOL * fabs(observed);
    long ge = 0, le = 0;
    for (size_t i = 0; i < na; i++) {
        ge += (long)count_ge(sb, nb, observed - tol - sa[i]);
        le += (long)count_le(sb, nb, observed + tol - sa[i]);
    }
    long total = (long)(na * nb);
    out->statistic = observed / (double)n;
    out->p = two_sided_p(ge, le, total, 0);
    out->n_resamples = total;
    out->exact = true;
done:
    free(sa);
    free(sb);
    return rc;
}

static void monte_carlo(const double *d, size_t n, long resamples, uint64_t seed,
                        ba_signflip_result *out)
{
    ba_rng rng;
    ba_rng_seed(&rng, seed, 0x5f11c);
    double observed = plain_sum(d, n), tol = BA_STATS_TIE_RTOL * fabs(observed);
    long ge = 0, le = 0;
    for (long r = 0; r < resamples; r++) {
        double s = 0;
        uint64_t bits = 0;
        for (size_t i = 0; i < n; i++) {
            if (i % 64 == 0) bits = ba_rng_next(&rng);
            s += (bits & 1u) ? -d[i] : d[i];
            bits >>= 1;
        }
        ge += s >= observed - tol;
        le += s <= observed + tol;
    }
    out->statistic = observed / (double)n;
    out->p = two_sided_p(ge, le, resamples, 1);
    out->n_resamples = resamples;
    out->exact = false;
}

ba_status ba_signflip_test(const double *d, size_t n, long max_resamples, uint64_t seed,
                           ba_signflip_result *out, ba_error *err)
{
    if (n < 1 || max_resamples < 1)
        return ba_fail(err, BA_ERR_USAGE,
                       "sign-flip test: %zu differences and %ld resamples, expected >= 1 of each",
                       n, max_resamples);
    BA_CHECK(check_finite(d, n, "sign-flip test", err));
    if (n <= BA_SIGNFLIP_MAX_EXACT_N && (double)((uint64_t)1 << n) <= (double)max_resamples)
        return exact_split(d, n, out, err);
    monte_carlo(d, n, max_resamples, seed, out);
    return BA_OK;
}

double ba_quantile_sorted(const double *sorted, size_t n, double q)
{
    double h = (double)(n - 1) * q;
    size_t lo = (size_t)floor(h);
    if (lo >= n - 1) return sorted[n - 1];
    return sorted[lo] + (h - (double)lo) * (sorted[lo + 1] - sorted[lo]);
}

/* An index uniform on [0, n) (the bias of the multiply is < n / 2^53). */
static size_t uniform_index(ba_rng *rng, size_t n)
{
    size_t i = (size_t)(ba_rng_uniform(rng) * (double)n);
    return i < n ? i : n - 1;
}

ba_status ba_bootstrap_mean(const double *x, size_t n, long n_resamples, double confidence,
                            uint64_t seed, ba_bootstrap_result *out, double *means,
                            ba_error *err)
{
    if (n < 1 || n_resamples < 2 || !(confidence > 0 && confidence < 1))
        return ba_fail(err, BA_ERR_USAGE,
                       "bootstrap: n = %zu, resamples = %ld, confidence = %g; expected n >= 1, "
                       "resamples >= 2, 0 < confidence < 1", n, n_resamples, confidence);
    BA_CHECK(check_finite(x, n, "bootstrap", err));
    ba_status rc = BA_OK;
    double *boot = NULL;
    BA_ALLOC(boot, (size_t)n_resamples, "bootstrap means", done);
    ba_rng rng;
    ba_rng_seed(&rng, seed, 0xb005);
    long below = 0, above = 0;
    for (long r = 0; r < n_resamples; r++) {
        double s = 0;
        for (size_t i = 0; i < n; i++) s += x[uniform_index(&rng, n)];
        boot[r] = s / (double)n;
        below += boot[r] <= 0;
        above += boot[r] >= 0;
    }
    if (means) memcpy(means, boot, (size_t)n_resamples * sizeof *boot);
    qsort(boot, (size_t)n_resamples, sizeof *boot, compare_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += x[i];
    out->statistic = sum / (double)n;
    out->ci_low = ba_quantile_sorted(boot, (size_t)n_resamples, (1 - confidence) / 2);
    out->ci_high = ba_quantile_sorted(boot, (size_t)n_resamples, (1 + confidence) / 2);
    long fewer = below < above ? below : above;
    double p = 2.0 * (double)(1 + fewer) / (double)(n_resamples + 1);
    out->p = p > 1 ? 1 : p;
    out->n_resamples = n_resamples;
done:
    free(boot);
    return rc;
}

typedef struct {
    double p;
    size_t index;
} indexed_p;

static int by_p_then_index(const void *a, const void *b)
{
    const indexed_p *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

ba_status ba_bh_qvalues(const double *p, size_t n, double *q, ba_error *err)
{
    ba_status rc = BA_OK;
    indexed_p *sorted = NULL;
    BA_ALLOC(sorted, n, "p-values", done);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(p[i])) continue;
        if (p[i] < 0 || p[i] > 1) {
            rc = ba_fail(err, BA_ERR_VALUE, "q-values: p-value %zu is %g, expected 0..1", i, p[i]);
            goto done;
        }
        sorted[m].p = p[i];
        sorted[m].index = i;
        m++;
    }
    for (size_t i = 0; i < n; i++)
        if (isnan(p[i])) q[i] = NAN;
    qsort(sorted, m, sizeof *sorted, by_p_then_index);
    /* Running minimum from the largest p down. */
    double running = 1.0;
    for (size_t k = m; k-- > 0;) {
        double v = sorted[k].p * ((double)m / (double)(k + 1));
        if (v < running) running = v;
        q[sorted[k].index] = running;
    }
done:
    free(sorted);
    return rc;
}
