/* design.h — from word-level features to the TR-level design matrix.
 *
 * Conventions (the README has a worked example):
 *  - a word belongs to TR t = floor((onset + tr_offset_s) / tr_s); words
 *    with t < 0 are dropped (counted), a word with t >= n_tr is an error
 *    (the BOLD is shorter than the stimulus);
 *  - a TR's features are the sum (default) or the mean of its words'
 *    vectors; a TR with no word is zero;
 *  - or Lanczos resampling (Huth et al. 2016): TR k at time
 *    t_k = (k + 1/2) TR - tr_offset_s gets sum_w L(t_k - onset_w) x_w with
 *    L(t) = a sin(pi t/TR) sin(pi t/(a TR)) / (pi t/TR)^2, L(0) = 1, zero for
 *    |t| > a TR, a = 3 lobes (the cutoff is the TR's Nyquist rate);
 *  - FIR delays: column block k of the design holds the TR features
 *    delayed by delays[k] TRs, X[t, k*d + j] = F[t - delays[k], j], zero
 *    where t - delays[k] falls before the story starts (never wrapped, never
 *    taken from the previous story). */
#ifndef BRAINALIGN_DESIGN_H
#define BRAINALIGN_DESIGN_H

#include "brainalign/core/error.h"

typedef enum { BA_AGGREGATE_SUM = 0, BA_AGGREGATE_MEAN, BA_AGGREGATE_LANCZOS } ba_aggregate;

#define BA_LANCZOS_LOBES 3

typedef struct {
    double tr_s;
    double tr_offset_s;
    ba_aggregate aggregate;
    int n_delays;
    const int *delays; /* in TRs, >= 0 */
} ba_design_options;

/* Limits every time is checked against before it becomes a TR index. */
#define BA_DESIGN_MIN_TR_S 1e-3      /* TR, seconds */
#define BA_DESIGN_MAX_TR_S 1e3
#define BA_DESIGN_MAX_OFFSET_S 1e4   /* |tr_offset_s| */
#define BA_DESIGN_MAX_TIME_S 1e7     /* |word onset|: 115 days */
#define BA_DESIGN_MAX_DELAY 1000     /* FIR delay, TRs */
/* At least this fraction of a story's words must fall inside its BOLD
 * (0 <= TR < n_tr); fewer means the timing is wrong (offset, TR, units). */
#define BA_DESIGN_MIN_INSIDE 0.5

/* TR, offset and delays finite and within the limits above. */
ba_status ba_design_check_options(const char *label, const ba_design_options *opt,
                                  ba_error *err);

/* words [n_words][d] -> out [n_tr][d]. `label` names the story in errors.
 * Refuses (naming the story) options outside the limits above, a
 * non-finite or implausible onset, onsets out of order, words past the end
 * of the BOLD, and fewer than BA_DESIGN_MIN_INSIDE of the words inside it. */
ba_status ba_words_to_trs(const char *label, const float *words, const double *onset,
                          long n_words, long d, long n_tr, const ba_design_options *opt,
                          float *out, long *n_dropped, ba_error *err);

/* The Lanczos kernel at t / TR (see above). */
double ba_lanczos_kernel(double t_over_tr);

/* The TRs a story's words need: floor((last onset + offset) / tr) + 1. */
long ba_trs_needed(const double *onset, long n_words, const ba_design_options *opt);

/* in [n_tr][d] -> out [n_tr][n_delays * d]. */
void ba_fir_delays(const float *in, long n_tr, long d, const int *delays, int n_delays,
                   float *out);

/* Parse "1,2,3,4,5" or "1..5" into delays (at most max). */
ba_status ba_parse_int_list(const char *text, int *values, int max, int *n, ba_error *err);

/* Parse "logspace:-1:8:10" or "0.1,1,10" into alphas (at most max). */
ba_status ba_parse_alphas(const char *text, double *alphas, int max, int *n, ba_error *err);

#endif
