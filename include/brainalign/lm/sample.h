/* sample.h — choosing the next token from a row of logits, as Hugging Face
 * `generate` does: its logits processors in its order and formulas, greedy
 * argmax, and draws from a seeded per-prompt random stream.
 *
 * Every function works on one logits row `logits[V]` (float, one value per
 * vocabulary id) and changes it in place; a removed token has logit -inf.
 * The pipeline (ba_sample_filter), in HF's order:
 *
 *   1. repetition penalty r (HF RepetitionPenaltyLogitsProcessor), also
 *      when greedy: for every distinct id t among all ids so far (prompt and
 *      generated), l_t <- l_t * r if l_t < 0, else l_t / r. An id that
 *      occurs several times is penalised once. r = 1 leaves the row alone.
 *   2. temperature T (TemperatureLogitsWarper; sampling only):
 *      l_i <- l_i / T. T = 1 leaves the row alone.
 *   3. top-k (TopKLogitsWarper; sampling only; k = 0 is off): with
 *      k' = min(k, V) and v_k the k'-th largest logit (counted with
 *      multiplicity), every l_i < v_k becomes -inf. Ties with v_k are all
 *      kept, so more than k tokens may survive (torch.topk's threshold).
 *   4. top-p (TopPLogitsWarper; sampling only; p = 1 is off): order the
 *      tokens ascending by logit (among equal logits the lower id counts as
 *      the larger), q = softmax(l) in that order, c_j = q_1 + ... + q_j;
 *      token j is removed when c_j <= 1 - p, except that the last (largest)
 *      token is always kept (min_tokens_to_keep = 1). Tokens already at
 *      -inf have q = 0 and are removed again.
 *
 * The arithmetic: steps 1-3 in float, as HF does on float32 logits; the
 * softmax and cumulative sums of step 4 and the final distribution in
 * double (HF: float32), which can only differ from HF where a c_j lies
 * within rounding of 1 - p.
 *
 * Then the next token is
 *   greedy:   argmax_i l_i (ties: the lowest id, as torch.argmax);
 *   sampling: a draw from P_i = exp(l_i - m) / sum_j exp(l_j - m)
 *             (m = max l; -inf gives P_i = 0) by inverse CDF: one uniform
 *             u in [0, 1) from the stream, the smallest id i with
 *             P_0 + ... + P_i > u * sum(P) (ids with P_i = 0 are never
 *             drawn).
 *
 * Streams: prompt `id` (a string of id_len bytes) draws from
 *   ba_rng_seed(rng, seed, fnv1a64(id))
 * with FNV-1a 64 (offset 14695981039346656037, prime 1099511628211) over
 * the id's bytes; so a prompt's draws depend only on the seed, its id and
 * the logits, never on which rank decodes it or on the other prompts.
 *
 * The _ref functions are plain double-precision O(V^2) versions of the
 * same formulas (no sorting, no selection) for the tests. */
#ifndef BRAINALIGN_SAMPLE_H
#define BRAINALIGN_SAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brainalign/core/error.h"
#include "brainalign/core/rng.h"

typedef struct {
    bool greedy;               /* true: argmax after the repetition penalty only */
    double repetition_penalty; /* r > 0; 1 = off */
    double temperature;        /* T > 0; 1 = off; unused when greedy */
    int32_t top_k;             /* k >= 0; 0 = off; unused when greedy */
    double top_p;              /* p in (0, 1]; 1 = off; unused when greedy */
} ba_sample_params;

/* BA_ERR_USAGE naming the option when a parameter is out of range (or
 * NaN). The other functions assume checked parameters. */
ba_status ba_sample_params_check(const ba_sample_params *p, ba_error *err);

/* Step 1. history[n_history]: the ids so far, each in [0, V) (else
 * BA_ERR_VALUE naming the position). */
ba_status ba_sample_repetition_penalty(float *logits, int32_t V, const int32_t *history,
                                       size_t n_history, double penalty, ba_error *err);
/* Step 2. */
void ba_sample_temperature(float *logits, int32_t V, double temperature);
/* Step 3 (a partial selection, O(V) expected). */
ba_status ba_sample_top_k(float *logits, int32_t V, int32_t k, ba_error *err);
/* Step 4 (one sort of the finite logits). */
ba_status ba_sample_top_p(float *logits, int32_t V, double top_p, ba_error *err);

/* Steps 1-4 as the parameters ask (greedy: step 1 only). */
ba_status ba_sample_filter(float *logits, int32_t V, const int32_t *history, size_t n_history,
                           const ba_sample_params *p, ba_error *err);

/* The plain twin of ba_sample_filter on a double row. */
ba_status ba_sample_filter_ref(double *logits, int32_t V, const int32_t *history,
                               size_t n_history, const ba_sample_params *p, ba_error *err);

/* probs[V] = softmax of a filtered row (double; -inf -> 0). BA_ERR_VALUE
 * when no logit is finite or one is NaN/+inf. */
ba_status ba_sample_probs(const float *logits, int32_t V, double *probs, ba_error *err);
ba_status ba_sample_probs_ref(const double *logits, int32_t V, double *probs, ba_error *err);

/* argmax (ties: lowest id); -1 when V <= 0. NaN logits are never chosen
 * unless all are NaN (then id 0). */
int32_t ba_sample_argmax(const float *logits, int32_t V);

/* The stream of one prompt (see above). */
void ba_sample_stream(ba_rng *rng, uint64_t seed, const char *id, size_t id_len);
uint64_t ba_sample_fnv1a64(const char *bytes, size_t len);

/* One draw from probs[V] (non-negative, positive sum) by inverse CDF with
 * one uniform from rng. */
int32_t ba_sample_draw(const double *probs, int32_t V, ba_rng *rng);

/* The whole step: filter `logits` in place, then argmax (greedy) or a draw
 * from rng (sampling; rng may be NULL when greedy). */
ba_status ba_sample_next(float *logits, int32_t V, const int32_t *history, size_t n_history,
                         const ba_sample_params *p, ba_rng *rng, int32_t *token, ba_error *err);

#endif
