/* design.c — word-level features to the TR-level design (see design.h). */
#include "brainalign/pipeline/design.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The TR of a time. The cast is only done on a value known to fit a long
 * (a double -> long cast out of range is undefined behaviour): times the
 * checks below let through are within +-BA_DESIGN_MAX_TIME_S, TRs at least
 * BA_DESIGN_MIN_TR_S, so the quotient is far inside. Anything else (NaN
 * included) maps to -1, "before the scan", and is refused by the checks. */
static long tr_of(double onset, const ba_design_options *opt)
{
    double q = floor((onset + opt->tr_offset_s) / opt->tr_s);
    if (!(q > -1e15 && q < 1e15)) return q >= 1e15 ? (long)1e15 : -1;
    return (long)q;
}

ba_status ba_design_check_options(const char *label, const ba_design_options *opt,
                                  ba_error *err)
{
    if (!isfinite(opt->tr_s) || opt->tr_s < BA_DESIGN_MIN_TR_S || opt->tr_s > BA_DESIGN_MAX_TR_S)
        return ba_fail(err, BA_ERR_USAGE, "%s: the TR must be a finite number of seconds in "
                       "[%g, %g] (got %g)", label, BA_DESIGN_MIN_TR_S, BA_DESIGN_MAX_TR_S,
                       opt->tr_s);
    if (!isfinite(opt->tr_offset_s) || fabs(opt->tr_offset_s) > BA_DESIGN_MAX_OFFSET_S)
        return ba_fail(err, BA_ERR_USAGE, "%s: the TR offset must be a finite number of "
                       "seconds within +-%g (got %g)", label, BA_DESIGN_MAX_OFFSET_S,
                       opt->tr_offset_s);
    for (int k = 0; k < opt->n_delays; k++)
        if (opt->delays[k] < 0 || opt->delays[k] > BA_DESIGN_MAX_DELAY)
            return ba_fail(err, BA_ERR_USAGE, "%s: delay %d is %d TRs: delays must be "
                           "0..%d TRs", label, k, opt->delays[k], BA_DESIGN_MAX_DELAY);
    return BA_OK;
}

long ba_trs_needed(const double *onset, long n_words, const ba_design_options *opt)
{
    long need = 0;
    for (long w = 0; w < n_words; w++) {
        long t = tr_of(onset[w], opt);
        if (t + 1 > need) need = t + 1;
    }
    return need;
}

double ba_lanczos_kernel(double t_over_tr)
{
    const double a = BA_LANCZOS_LOBES, pi = 3.14159265358979323846;
    double t = t_over_tr;
    if (t == 0) return 1.0;
    if (fabs(t) > a) return 0.0;
    return a * sin(pi * t) * sin(pi * t / a) / (pi * pi * t * t);
}

static ba_status lanczos_resample(const char *label, const float *words, const double *onset,
                                  long n_words, long d, long n_tr, const ba_design_options *opt,
                                  float *out, long *n_dropped, ba_error *err)
{
    memset(out, 0, sizeof(float) * (size_t)n_tr * (size_t)d);
    double *acc = calloc((size_t)d, sizeof *acc);
    if (!acc) return ba_fail(err, BA_ERR_NOMEM, "%s: Lanczos accumulator", label);
    /* Each TR only sees words within BA_LANCZOS_LOBES TRs of its time. */
    long first = 0;
    for (long k = 0; k < n_tr; k++) {
        double t_k = (k + 0.5) * opt->tr_s - opt->tr_offset_s;
        while (first < n_words && onset[first] < t_k - BA_LANCZOS_LOBES * opt->tr_s) first++;
        memset(acc, 0, sizeof *acc * (size_t)d);
        for (long w = first; w < n_words && onset[w] <= t_k + BA_LANCZOS_LOBES * opt->tr_s; w++) {
            double weight = ba_lanczos_kernel((t_k - onset[w]) / opt->tr_s);
            const float *src = words + w * d;
            for (long j = 0; j < d; j++) acc[j] += weight * src[j];
        }
        for (long j = 0; j < d; j++) out[k * d + j] = (float)acc[j];
    }
    free(acc);
    if (n_dropped) *n_dropped = 0;
    return BA_OK;
}

ba_status ba_words_to_trs(const char *label, const float *words, const double *onset,
                          long n_words, long d, long n_tr, const ba_design_options *opt,
                          float *out, long *n_dropped, ba_error *err)
{
    if (!(opt->tr_s > 0))
        return ba_fail(err, BA_ERR_USAGE, "the TR must be positive (got %g s)", opt->tr_s);
    BA_CHECK(ba_design_check_options(label, opt, err));
    /* Every time is checked before it becomes an index. */
    long inside = 0;
    for (long w = 0; w < n_words; w++) {
        if (!isfinite(onset[w]) || fabs(onset[w]) > BA_DESIGN_MAX_TIME_S)
            return ba_fail(err, BA_ERR_VALUE, "%s: word %ld starts at %g s: onsets must be "
                           "finite and within +-%g s", label, w, onset[w],
                           BA_DESIGN_MAX_TIME_S);
        long t = tr_of(onset[w], opt);
        inside += t >= 0 && t < n_tr;
    }
    for (long w = 1; w < n_words; w++)
        if (onset[w] < onset[w - 1])
            return ba_fail(err, BA_ERR_VALUE, "%s: word %ld starts at %.3f s, before word %ld (%.3f s)",
                           label, w, onset[w], w - 1, onset[w - 1]);
    long need = ba_trs_needed(onset, n_words, opt);
    if (need > n_tr)
        return ba_fail(err, BA_ERR_SHAPE,
                       "%s: the BOLD has %ld TRs, the words need %ld (last word at %.2f s, "
                       "TR %.3g s, offset %.3g s)",
                       label, n_tr, need, n_words ? onset[n_words - 1] : 0.0, opt->tr_s,
                       opt->tr_offset_s);
    if (n_words > 0 && (double)inside < BA_DESIGN_MIN_INSIDE * (double)n_words)
        return ba_fail(err, BA_ERR_VALUE, "%s: only %ld of %ld words fall inside the BOLD's %ld "
                       "TRs (at least %.0f%% must; TR %g s, offset %g s, words %g..%g s)",
                       label, inside, n_words, n_tr, 100 * BA_DESIGN_MIN_INSIDE, opt->tr_s,
                       opt->tr_offset_s, onset[0], onset[n_words - 1]);
    if (opt->aggregate == BA_AGGREGATE_LANCZOS)
        return lanczos_resample(label, words, onset, n_words, d, n_tr, opt, out, n_dropped, err);
    long *count = calloc((size_t)(n_tr ? n_tr : 1), sizeof *count);
    if (!count) return ba_fail(err, BA_ERR_NOMEM, "%s: TR counts", label);
    memset(out, 0, sizeof(float) * (size_t)n_tr * (size_t)d);
    long dropped = 0;
    for (long w = 0; w < n_words; w++) {
        if (!isfinite(onset[w])) {
            free(count);
            return ba_fail(err, BA_ERR_VALUE, "%s: word %ld has no finite onset", label, w);
        }
        long t = tr_of(onset[w], opt);
        if (t < 0) { dropped++; continue; }
        const float *src = words + w * d;
        float *dst = out + t * d;
        for (long j = 0; j < d; j++) dst[j] += src[j];
        count[t]++;
    }
    if (opt->aggregate == BA_AGGREGATE_MEAN)
        for (long t = 0; t < n_tr; t++)
            if (count[t] > 1)
                for (long j = 0; j < d; j++) out[t * d + j] /= (float)count[t];
    free(count);
    if (n_dropped) *n_dropped = dropped;
    return BA_OK;
}

void ba_fir_delays(const float *in, long n_tr, long d, const int *delays, int n_delays,
                   float *out)
{
    long p = (long)n_delays * d;
    for (long t = 0; t < n_tr; t++)
        for (int k = 0; k < n_delays; k++) {
            float *dst = out + t * p + (long)k * d;
            long src_t = t - delays[k];
            if (src_t < 0) memset(dst, 0, sizeof(float) * (size_t)d);
            else memcpy(dst, in + src_t * d, sizeof(float) * (size_t)d);
        }
}

ba_status ba_parse_int_list(const char *text, int *values, int max, int *n, ba_error *err)
{
    *n = 0;
    const char *dots = strstr(text, "..");
    if (dots) {
        char *end_a = NULL, *end = NULL;
        errno = 0;
        long a = strtol(text, &end_a, 10);
        int bad = errno != 0 || end_a != dots;
        errno = 0;
        long b = strtol(dots + 2, &end, 10);
        bad = bad || errno != 0 || end == dots + 2 || *end != '\0';
        /* Bound both ends to int before subtracting: no overflow possible. */
        bad = bad || a < INT_MIN || a > INT_MAX || b < INT_MIN || b > INT_MAX || b < a ||
              b - a >= max;
        if (bad)
            return ba_fail(err, BA_ERR_USAGE,
                           "cannot read the range '%s' (like 1..5, at most %d values)", text, max);
        for (long v = a; v <= b; v++) values[(*n)++] = (int)v;
        return BA_OK;
    }
    const char *p = text;
    while (*p) {
        char *end = NULL;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || (*end != ',' && *end != '\0') || *n >= max || v < INT_MIN ||
            v > INT_MAX)
            return ba_fail(err, BA_ERR_USAGE, "cannot read the list '%s' (like 1,2,3)", text);
        values[(*n)++] = (int)v;
        p = *end == ',' ? end + 1 : end;
    }
    if (*n == 0) return ba_fail(err, BA_ERR_USAGE, "empty list '%s'", text);
    return BA_OK;
}

ba_status ba_parse_alphas(const char *text, double *alphas, int max, int *n, ba_error *err)
{
    *n = 0;
    if (strncmp(text, "logspace:", 9) == 0) {
        double lo = 0, hi = 0;
        int count = 0;
        char tail = 0;
        if (sscanf(text + 9, "%lf:%lf:%d%c", &lo, &hi, &count, &tail) != 3 || count < 1 ||
            count > max)
            return ba_fail(err, BA_ERR_USAGE,
                           "cannot read '%s' (like logspace:-1:8:10, at most %d values)", text,
                           max);
        /* numpy.logspace(lo, hi, count): 10 ** linspace(lo, hi, count). */
        for (int i = 0; i < count; i++)
            alphas[i] = pow(10.0, count == 1 ? lo : lo + (hi - lo) * i / (count - 1));
        *n = count;
        return BA_OK;
    }
    const char *p = text;
    while (*p) {
        char *end = NULL;
        double v = strtod(p, &end);
        if (end == p || (*end != ',' && *end != '\0') || *n >= max || !(v > 0))
            return ba_fail(err, BA_ERR_USAGE,
                           "cannot read the alphas '%s' (positive numbers like 0.1,1,10)", text);
        alphas[(*n)++] = v;
        p = *end == ',' ? end + 1 : end;
    }
    if (*n == 0) return ba_fail(err, BA_ERR_USAGE, "no alphas in '%s'", text);
    return BA_OK;
}
