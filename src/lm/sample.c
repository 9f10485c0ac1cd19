/* sample.c — Hugging Face's logits processors, greedy argmax and seeded
 * draws (see sample.h for every formula). */
#include "brainalign/lm/sample.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

ba_status ba_sample_params_check(const ba_sample_params *p, ba_error *err)
{
    if (!p) return ba_fail(err, BA_ERR_USAGE, "sampling: no parameters given");
    if (!(p->repetition_penalty > 0) || !isfinite(p->repetition_penalty))
        return ba_fail(err, BA_ERR_USAGE,
                       "--repetition-penalty %g: expected a finite number > 0 (1 = off)",
                       p->repetition_penalty);
    if (p->greedy) return BA_OK;
    if (!(p->temperature > 0) || !isfinite(p->temperature))
        return ba_fail(err, BA_ERR_USAGE,
                       "--temperature %g: expected a finite number > 0 (1 = off; --greedy for "
                       "argmax)",
                       p->temperature);
    if (p->top_k < 0)
        return ba_fail(err, BA_ERR_USAGE, "--top-k %d: expected an integer >= 0 (0 = off)",
                       (int)p->top_k);
    if (!(p->top_p > 0 && p->top_p <= 1))
        return ba_fail(err, BA_ERR_USAGE, "--top-p %g: expected a number in (0, 1] (1 = off)",
                       p->top_p);
    return BA_OK;
}

static ba_status check_row(const void *logits, int32_t V, ba_error *err)
{
    if (!logits || V <= 0)
        return ba_fail(err, BA_ERR_USAGE, "sampling: expected a logits row of V > 0 values (V = %d)",
                       (int)V);
    return BA_OK;
}

static ba_status check_history(const int32_t *history, size_t n, int32_t V, ba_error *err)
{
    if (n > 0 && !history) return ba_fail(err, BA_ERR_USAGE, "repetition penalty: no ids given");
    for (size_t i = 0; i < n; i++)
        if (history[i] < 0 || history[i] >= V)
            return ba_fail(err, BA_ERR_VALUE,
                           "repetition penalty: id %d at position %zu of the ids so far is "
                           "outside the vocabulary [0, %d)",
                           (int)history[i], i, (int)V);
    return BA_OK;
}

/* ======================================================================
 * The fast pipeline (float row)
 * ====================================================================== */

ba_status ba_sample_repetition_penalty(float *logits, int32_t V, const int32_t *history,
                                       size_t n_history, double penalty, ba_error *err)
{
    BA_CHECK(check_row(logits, V, err));
    BA_CHECK(check_history(history, n_history, V, err));
    if (penalty == 1.0 || n_history == 0) return BA_OK;
    /* Gather every original value first, then scatter: a repeated id reads
     * the same original and writes the same result (penalised once). */
    float *orig = ba_malloc(n_history * sizeof *orig, "repetition penalty scratch", err);
    if (!orig) return BA_ERR_NOMEM;
    for (size_t i = 0; i < n_history; i++) orig[i] = logits[history[i]];
    float r = (float)penalty;
    for (size_t i = 0; i < n_history; i++)
        logits[history[i]] = orig[i] < 0 ? orig[i] * r : orig[i] / r;
    free(orig);
    return BA_OK;
}

void ba_sample_temperature(float *logits, int32_t V, double temperature)
{
    if (temperature == 1.0) return;
    float t = (float)temperature;
    for (int32_t i = 0; i < V; i++) logits[i] /= t;
}

static float median3(float x, float y, float z)
{
    if (x > y) { float t = x; x = y; y = t; }
    if (y > z) y = z;
    return x > y ? x : y;
}

static void swap_floats(float *a, size_t i, size_t j)
{
    float t = a[i];
    a[i] = a[j];
    a[j] = t;
}

/* The k-th largest of a[0, n) (1 <= k <= n, no NaN), by quickselect with a
 * three-way partition (ties are common: -inf, repeated logits); a is
 * reordered. */
static float kth_largest(float *a, size_t n, size_t k)
{
    size_t lo = 0, hi = n, want = k - 1; /* want: position in descending order */
    for (;;) {
        float pivot = median3(a[lo], a[lo + (hi - lo) / 2], a[hi - 1]);
        /* a[lo, gt) > pivot, a[gt, lt) == pivot, a[lt, hi) < pivot */
        size_t gt = lo, i = lo, lt = hi;
        while (i < lt) {
            if (a[i] > pivot)
                swap_floats(a, gt++, i++);
            else if (a[i] < pivot)
                swap_floats(a, i, --lt);
            else
                i++;
        }
        if (want < gt)
            hi = gt;
        else if (want < lt)
            return pivot;
        else
            lo = lt;
    }
}

ba_status ba_sample_top_k(float *logits, int32_t V, int32_t k, ba_error *err)
{
    BA_CHECK(check_row(logits, V, err));
    if (k < 0) return ba_fail(err, BA_ERR_USAGE, "top-k %d: expected k >= 0", (int)k);
    if (k == 0 || k >= V) return BA_OK;
    float *copy = ba_malloc((size_t)V * sizeof *copy, "top-k scratch", err);
    if (!copy) return BA_ERR_NOMEM;
    for (int32_t i = 0; i < V; i++) copy[i] = isnan(logits[i]) ? -INFINITY : logits[i];
    float threshold = kth_largest(copy, (size_t)V, (size_t)k);
    free(copy);
    for (int32_t i = 0; i < V; i++)
        if (logits[i] < threshold) logits[i] = -INFINITY;
    return BA_OK;
}

typedef struct {
    float value;
    int32_t id;
} logit_entry;

/* Ascending by value; among equal values the higher id first (the lower id
 * counts as the larger). */
static int entry_ascending(const void *pa, const void *pb)
{
    const logit_entry *a = pa, *b = pb;
    if (a->value != b->value) return a->value < b->value ? -1 : 1;
    return (a->id < b->id) - (a->id > b->id);
}

ba_status ba_sample_top_p(float *logits, int32_t V, double top_p, ba_error *err)
{
    BA_CHECK(check_row(logits, V, err));
    if (!(top_p > 0 && top_p <= 1))
        return ba_fail(err, BA_ERR_USAGE, "top-p %g: expected p in (0, 1]", top_p);
    if (top_p == 1.0) return BA_OK;
    /* entries[m]: the tokens with a finite logit (the others stay -inf). */
    logit_entry *entries = ba_malloc((size_t)V * sizeof *entries, "top-p scratch", err);
    if (!entries) return BA_ERR_NOMEM;
    size_t m = 0;
    for (int32_t i = 0; i < V; i++)
        if (logits[i] > -INFINITY) entries[m++] = (logit_entry){logits[i], i};
    if (m == 0) {
        free(entries);
        return ba_fail(err, BA_ERR_VALUE, "top-p: every logit is -inf or NaN");
    }
    qsort(entries, m, sizeof *entries, entry_ascending);
    double top = entries[m - 1].value, sum = 0.0;
    for (size_t j = 0; j < m; j++) sum += exp((double)entries[j].value - top);
    double cumulative = 0.0, limit = 1.0 - top_p;
    for (size_t j = 0; j + 1 < m; j++) {
        cumulative += exp((double)entries[j].value - top) / sum;
        if (cumulative > limit) break;
        logits[entries[j].id] = -INFINITY;
    }
    free(entries);
    return BA_OK;
}

ba_status ba_sample_filter(float *logits, int32_t V, const int32_t *history, size_t n_history,
                           const ba_sample_params *p, ba_error *err)
{
    BA_CHECK(ba_sample_params_check(p, err));
    BA_CHECK(ba_sample_repetition_penalty(logits, V, history, n_history, p->repetition_penalty,
                                          err));
    if (p->greedy) return BA_OK;
    ba_sample_temperature(logits, V, p->temperature);
    BA_CHECK(ba_sample_top_k(logits, V, p->top_k, err));
    return ba_sample_top_p(logits, V, p->top_p, err);
}

ba_status ba_sample_probs(const float *logits, int32_t V, double *probs, ba_error *err)
{
    BA_CHECK(check_row(logits, V, err));
    double top = -INFINITY;
    for (int32_t i = 0; i < V; i++) {
        if (isnan(logits[i]) || logits[i] == INFINITY)
            return ba_fail(err, BA_ERR_VALUE, "sampling: logit %d is %g", (int)i, logits[i]);
        if (logits[i] > top) top = logits[i];
    }
    if (top == -INFINITY) return ba_fail(err, BA_ERR_VALUE, "sampling: every logit is -inf");
    double sum = 0.0;
    for (int32_t i = 0; i < V; i++) {
        probs[i] = logits[i] == -INFINITY ? 0.0 : exp((double)logits[i] - top);
        sum += probs[i];
    }
    for (int32_t i = 0; i < V; i++) probs[i] /= sum;
    return BA_OK;
}

int32_t ba_sample_argmax(const float *logits, int32_t V)
{
    if (V <= 0) return -1;
    int32_t best = 0;
    for (int32_t i = 1; i < V; i++)
        if (logits[i] > logits[best] || (isnan(logits[best]) && !isnan(logits[i]))) best = i;
    return best;
}

uint64_t ba_sample_fnv1a64(const char *bytes, size_t len)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)bytes[i];
        h *= 1099511628211ULL;
    }
    return h;
}

void ba_sample_stream(ba_rng *rng, uint64_t seed, const char *id, size_t id_len)
{
    ba_rng_seed(rng, seed, ba_sample_fnv1a64(id, id_len));
}

int32_t ba_sample_draw(const double *probs, int32_t V, ba_rng *rng)
{
    double sum = 0.0;
    for (int32_t i = 0; i < V; i++) sum += probs[i];
    double target = ba_rng_uniform(rng) * sum, cumulative = 0.0;
    int32_t last = -1;
    for (int32_t i = 0; i < V; i++) {
        if (!(probs[i] > 0)) continue;
        cumulative += probs[i];
        last = i;
        if (cumulative > target) return i;
    }
    return last; /* rounding left target at the very top: the last possible id */
}

ba_status ba_sample_next(float *logits, int32_t V, const int32_t *history, size_t n_history,
                         const ba_sample_params *p, ba_rng *rng, int32_t *token, ba_error *err)
{
    BA_CHECK(ba_sample_filter(logits, V, history, n_history, p, err));
    if (p->greedy) {
        *token = ba_sample_argmax(logits, V);
        return BA_OK;
    }
    if (!rng) return ba_fail(err, BA_ERR_USAGE, "sampling: no random stream given");
    double *probs = ba_malloc((size_t)V * sizeof *probs, "sampling probabilities", err);
    if (!probs) return BA_ERR_NOMEM;
    ba_status rc = ba_sample_probs(logits, V, probs, err);
    if (rc == BA_OK) *token = ba_sample_draw(probs, V, rng);
    free(probs);
    return rc;
}

/* ======================================================================
 * The plain twin (double row, O(V^2), no sorting or selection)
 * ====================================================================== */

ba_status ba_sample_filter_ref(double *logits, int32_t V, const int32_t *history,
                               size_t n_history, const ba_sample_params *p, ba_error *err)
{
    BA_CHECK(ba_sample_params_check(p, err));
    BA_CHECK(check_row(logits, V, err));
    BA_CHECK(check_history(history, n_history, V, err));
    /* 1: each distinct id once: penalise id t at its first occurrence. */
    if (p->repetition_penalty != 1.0)
        for (size_t i = 0; i < n_history; i++) {
            bool seen = false;
            for (size_t j = 0; j < i && !seen; j++) seen = history[j] == history[i];
            if (seen) continue;
            double *l = &logits[history[i]];
            *l = *l < 0 ? *l * p->repetition_penalty : *l / p->repetition_penalty;
        }
    if (p->greedy) return BA_OK;
    /* 2 */
    for (int32_t i = 0; i < V; i++) logits[i] /= p->temperature;
    /* 3: l_i < (k-th largest) <=> at least k values are strictly larger. */
    if (p->top_k > 0 && p->top_k < V) {
        bool *drop = ba_calloc((size_t)V, sizeof *drop, "top-k reference scratch", err);
        if (!drop) return BA_ERR_NOMEM;
        for (int32_t i = 0; i < V; i++) {
            int32_t larger = 0;
            for (int32_t j = 0; j < V; j++) larger += logits[j] > logits[i];
            drop[i] = larger >= p->top_k;
        }
        for (int32_t i = 0; i < V; i++)
            if (drop[i]) logits[i] = -INFINITY;
        free(drop);
    }
    /* 4: c_i = the probability of every token at or before i in ascending
     * order (equal values: the higher id comes first). */
    if (p->top_p < 1.0) {
        double *q = ba_malloc((size_t)V * sizeof *q, "top-p reference scratch", err);
        bool *drop = q ? ba_calloc((size_t)V, sizeof *drop, "top-p reference scratch", err) : NULL;
        if (!drop) {
            free(q);
            return BA_ERR_NOMEM;
        }
        ba_status rc = ba_sample_probs_ref(logits, V, q, err);
        int32_t largest = 0;
        for (int32_t i = 1; i < V && rc == BA_OK; i++)
            if (logits[i] > logits[largest]) largest = i;
        for (int32_t i = 0; i < V && rc == BA_OK; i++) {
            double c = 0.0;
            for (int32_t j = 0; j < V; j++)
                if (logits[j] < logits[i] || (logits[j] == logits[i] && j >= i)) c += q[j];
            drop[i] = i != largest && c <= 1.0 - p->top_p;
        }
        for (int32_t i = 0; i < V && rc == BA_OK; i++)
            if (drop[i]) logits[i] = -INFINITY;
        free(q);
        free(drop);
        BA_CHECK(rc);
    }
    return BA_OK;
}

ba_status ba_sample_probs_ref(const double *logits, int32_t V, double *probs, ba_error *err)
{
    BA_CHECK(check_row(logits, V, err));
    double top = -INFINITY;
    for (int32_t i = 0; i < V; i++) {
        if (isnan(logits[i]) || logits[i] == INFINITY)
            return ba_fail(err, BA_ERR_VALUE, "sampling: logit %d is %g", (int)i, logits[i]);
        if (logits[i] > top) top = logits[i];
    }
    if (top == -INFINITY) return ba_fail(err, BA_ERR_VALUE, "sampling: every logit is -inf");
    double sum = 0.0;
    for (int32_t i = 0; i < V; i++) sum += logits[i] == -INFINITY ? 0.0 : exp(logits[i] - top);
    for (int32_t i = 0; i < V; i++)
        probs[i] = logits[i] == -INFINITY ? 0.0 : exp(logits[i] - top) / sum;
    return BA_OK;
}
