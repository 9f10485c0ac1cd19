/* synth.c — the synthetic study (see synth.h). */
#include "brainalign/pipeline/synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "brainalign/core/outfile.h"
#include "brainalign/pipeline/associations.h"
#include "brainalign/io/atlas.h"
#include "brainalign/pipeline/design.h"
#include "brainalign/io/features_io.h"
#include "brainalign/ridge/folds.h"
#include "brainalign/io/h5io.h"
#include "brainalign/parallel/fault.h"
#include "brainalign/parallel/parallel.h"
#include "brainalign/ridge/ridge.h"
#include "brainalign/core/rng.h"
#include "brainalign/io/stimuli.h"

/* Names of Destrieux (aparc.a2009s) regions, so tables look like the real
 * thing; regions beyond the list get numbered names. */
static const char *REGION_NAMES[] = {
    "G_front_inf-Opercular", "G_front_middle", "G_pariet_inf-Angular",
    "S_temporal_sup",        "G_temp_sup-Lateral", "G_precuneus",
    "G_oc-temp_med-Parahip", "S_front_inf",    "G_cingul-Post-dorsal",
    "Pole_temporal",         "G_occipital_sup", "S_calcarine",
};

void ba_synth_defaults(ba_synth_options *o)
{
    memset(o, 0, sizeof *o);
    o->out_dir = "synth";
    o->n_stories = 4;
    o->words_per_story = 1200;
    o->n_subjects = 2;
    o->n_voxels = 1200;
    o->n_regions = 6;
    o->d_model = 32;
    o->n_layers = 4;
    o->planted_layer = 2;
    o->n_delays = 5;
    for (int i = 0; i < 5; i++) o->delays[i] = i + 1;
    o->tr_s = 1.5;
    o->max_r = 0.6;
    o->seed = 2025;
    o->assoc_share = 0.5;
    o->assoc_every = 4;
}

/* ---------------------------------------------------------------- stories */

static const char *SYLLABLES[] = {"ta", "ri", "mo", "ne", "sa", "lu", "ka", "vi", "do",
                                  "pe", "shi", "ro", "ban", "tel", "mar", "quo"};

static ba_status generate_story(ba_rng *rng, int index, long n_words, ba_story *st,
                                ba_error *err)
{
    memset(st, 0, sizeof *st);
    snprintf(st->name, sizeof st->name, "story%02d", index + 1);
    st->n_words = (size_t)n_words;
    st->words = ba_calloc((size_t)n_words, sizeof(char *), "words", err);
    st->onset = ba_calloc((size_t)n_words, sizeof(double), "onsets", err);
    st->offset = ba_calloc((size_t)n_words, sizeof(double), "offsets", err);
    if (!st->words || !st->onset || !st->offset) return BA_ERR_NOMEM;
    double t = 1.0 + 2.0 * ba_rng_uniform(rng);
    for (long w = 0; w < n_words; w++) {
        char word[64] = "";
        int syllables = 1 + (int)(ba_rng_uniform(rng) * 3);
        for (int s = 0; s < syllables; s++)
            strcat(word, SYLLABLES[ba_rng_next(rng) % (sizeof SYLLABLES / sizeof *SYLLABLES)]);
        bool sentence_end = ba_rng_uniform(rng) < 0.08;
        if (sentence_end) strcat(word, ".");
        st->words[w] = strdup(word);
        if (!st->words[w]) return ba_fail(err, BA_ERR_NOMEM, "words");
        double duration = 0.12 + 0.08 * syllables * ba_rng_gamma(rng, 4.0) / 4.0;
        st->onset[w] = t;
        st->offset[w] = t + duration;
        t += duration + 0.02 + (sentence_end ? 0.4 * ba_rng_gamma(rng, 2.0) : 0.0);
    }
    return BA_OK;
}

static ba_status load_stories(const ba_synth_options *o, ba_rng *rng, ba_story **out,
                              size_t *n_out, ba_error *err)
{
    if (o->stimuli_dir) {
        ba_story *all = NULL;
        size_t n_all = 0;
        BA_CHECK(ba_story_dir_read(o->stimuli_dir, NULL, 0, &all, &n_all, err));
        if (n_all < (size_t)o->n_stories) {
            ba_story_array_free(all, n_all);
            return ba_fail(err, BA_ERR_USAGE, "%s holds %zu stories, %d asked for",
                           o->stimuli_dir, n_all, o->n_stories);
        }
        for (size_t s = (size_t)o->n_stories; s < n_all; s++) ba_story_free(&all[s]);
        *out = all;
        *n_out = (size_t)o->n_stories;
        return BA_OK;
    }
    ba_story *stories = ba_calloc((size_t)o->n_stories, sizeof *stories, "stories", err);
    if (!stories) return BA_ERR_NOMEM;
    for (int s = 0; s < o->n_stories; s++) {
        ba_status rc = generate_story(rng, s, o->words_per_story, &stories[s], err);
        if (rc != BA_OK) { ba_story_array_free(stories, (size_t)s + 1); return rc; }
    }
    *out = stories;
    *n_out = (size_t)o->n_stories;
    return BA_OK;
}

/* ------------------------------------------------------- word features */

/* hidden [n_layers+1][n_words][d]: layer l = norm_w * (z_w A) + noise_l,
 * z an AR(1) process of heavy-tailed innovations in a low-rank latent
 * space; the planted layer has the least noise. */
static ba_status make_hidden(const ba_synth_options *o, ba_rng *rng, const double *mixing,
                             long rank, long n_words, float *hidden, float *surprisal,
                             ba_error *err)
{
    long d = o->d_model;
    int L = o->n_layers + 1;
    double *z = ba_calloc((size_t)rank, sizeof(double), "latent", err);
    if (!z) return BA_ERR_NOMEM;
    const double rho = 0.6;
    for (long w = 0; w < n_words; w++) {
        for (long k = 0; k < rank; k++)
            z[k] = rho * z[k] + sqrt(1 - rho * rho) * ba_rng_student_t(rng, 5.0) * sqrt(3.0 / 5.0);
        double norm = exp(0.5 * ba_rng_normal(rng));
        for (int l = 0; l < L; l++) {
            double noise = 0.25 + 0.6 * fabs((double)(l - o->planted_layer));
            float *h = hidden + ((size_t)l * n_words + w) * d;
            for (long j = 0; j < d; j++) {
                double s = 0;
                for (long k = 0; k < rank; k++) s += z[k] * mixing[k * d + j];
                h[j] = (float)(norm * s + noise * ba_rng_normal(rng));
            }
        }
        surprisal[w] = (float)(2.0 * ba_rng_gamma(rng, 2.0));
    }
    free(z);
    return BA_OK;
}

/* ------------------------------------------------------------ the study */

typedef struct {
    size_t n_stories;
    ba_story *stories;
    float **hidden;     /* per story [L][n_words][d] */
    float **surprisal;
    long *n_tr;
    long n_tr_total;
    float *signal;      /* [n_tr_total][v], unit variance per voxel */
    double *fraction;   /* [v] */
    int *labels;        /* [v] */
    /* Associative memory: per story [n_words][d], the associations' effect
     * on every layer and the random control's; NULL when off. */
    float **assoc_delta, **random_delta;
    ba_association_set assoc;
} study;

static void study_free(study *S)
{
    for (size_t s = 0; s < S->n_stories; s++) {
        if (S->hidden) free(S->hidden[s]);
        if (S->surprisal) free(S->surprisal[s]);
        if (S->assoc_delta) free(S->assoc_delta[s]);
        if (S->random_delta) free(S->random_delta[s]);
    }
    free(S->assoc_delta); free(S->random_delta);
    ba_association_set_free(&S->assoc);
    ba_story_array_free(S->stories, S->n_stories);
    free(S->hidden); free(S->surprisal); free(S->n_tr); free(S->signal);
    free(S->fraction); free(S->labels);
    memset(S, 0, sizeof *S);
}

/* ------------------------------------------------------- associations */

/* The feature dimensions the associations act on: the last P. */
static long private_dims(long d) { return d / 8 > 2 ? d / 8 : 2; }

#define ASSOC_SIGMA 3.0   /* size of an association's vector per dimension */
#define ASSOC_TAU 5.0     /* its effect decays over this many words */
#define ASSOC_REACH 15    /* and stops after this many */

static ba_status add_association(study *S, ba_rng *rng, const ba_story *st, size_t after,
                                 ba_error *err)
{
    char text[512] = "";
    int n_words = 2 + (int)(ba_rng_uniform(rng) * 4);
    for (int k = 0; k < n_words; k++) {
        if (k) strcat(text, " ");
        int syllables = 1 + (int)(ba_rng_uniform(rng) * 2);
        for (int y = 0; y < syllables; y++)
            strcat(text, SYLLABLES[ba_rng_next(rng) % (sizeof SYLLABLES / sizeof *SYLLABLES)]);
    }
    ba_association a = {.after_word = (long)after, .after_sentence = -1, .text = text,
                        .granularity = BA_GRANULARITY_SENTENCE, .source = BA_SOURCE_MODEL};
    snprintf(a.story, sizeof a.story, "%s", st->name);
    return ba_association_set_add(&S->assoc, &a, err);
}

/* Add v exp(-(w - i - 1) / tau) to the P dimensions of the words after word i. */
static void add_effect(float *delta, size_t n_words, long d, long p0, size_t i, const double *v)
{
    for (size_t w = i + 1; w < n_words && w <= i + ASSOC_REACH; w++) {
        double f = exp(-(double)(w - i - 1) / ASSOC_TAU);
        for (long j = p0; j < d; j++) delta[w * d + j] += (float)(f * v[j - p0]);
    }
}

/* Associations after every k-th sentence and their effect on the words
 * after them (assoc_delta); the random control's effect (random_delta):
 * vectors of the same size, half-way between one association and the next
 * (or the story's end), so they cannot line up with the associations'. */
static ba_status make_associations(const ba_synth_options *o, study *S, ba_error *err)
{
    ba_status rc = BA_OK;
    ba_rng rng;
    ba_rng_seed(&rng, o->seed, 3000);
    long d = o->d_model, np = private_dims(d), p0 = d - np;
    size_t *ends = NULL, *places = NULL;
    double *v = NULL;
    snprintf(S->assoc.name, sizeof S->assoc.name, "associations");
    BA_ALLOC(v, (size_t)np, "association vector", done);
    BA_ALLOC(S->assoc_delta, S->n_stories, "association effects", done);
    BA_ALLOC(S->random_delta, S->n_stories, "association effects", done);
    for (size_t s = 0; s < S->n_stories; s++) {
        const ba_story *st = &S->stories[s];
        size_t n = st->n_words, n_sentences = 0, n_places = 0;
        BA_ALLOC(S->assoc_delta[s], n * (size_t)d, "association effects", done);
        BA_ALLOC(S->random_delta[s], n * (size_t)d, "association effects", done);
        free(ends);
        free(places);
        ends = places = NULL;
        BA_TRY(ba_story_sentences(st, 0, &ends, &n_sentences, NULL, err), done);
        BA_ALLOC(places, n_sentences + 1, "association places", done);
        for (size_t k = (size_t)o->assoc_every - 1; k < n_sentences; k += (size_t)o->assoc_every)
            if (ends[k] + 1 < n) places[n_places++] = ends[k]; /* something must follow */
        for (size_t m = 0; m < n_places; m++) {
            BA_TRY(add_association(S, &rng, st, places[m], err), done);
            for (long j = 0; j < np; j++) v[j] = ASSOC_SIGMA * ba_rng_normal(&rng);
            add_effect(S->assoc_delta[s], n, d, p0, places[m], v);
            size_t next = m + 1 < n_places ? places[m + 1] : n - 1;
            for (long j = 0; j < np; j++) v[j] = ASSOC_SIGMA * ba_rng_normal(&rng);
            add_effect(S->random_delta[s], n, d, p0, (places[m] + next) / 2, v);
        }
    }
done:
    free(ends);
    free(places);
    free(v);
    return rc;
}

/* Zero mean, unit variance over the study (n rows), for the marked columns. */
static void standardise_columns(float *x, long n, long v, const bool *mark)
{
    for (long j = 0; j < v; j++) {
        if (mark && !mark[j]) continue;
        double mean = 0, var = 0;
        for (long t = 0; t < n; t++) mean += x[t * v + j];
        mean /= (double)n;
        for (long t = 0; t < n; t++) var += (x[t * v + j] - mean) * (x[t * v + j] - mean);
        double scale = 1 / sqrt(var / (double)n + 1e-30);
        for (long t = 0; t < n; t++) x[t * v + j] = (float)((x[t * v + j] - mean) * scale);
    }
}

/* With associations the last P dimensions are left to them: the story
 * alone puts nothing there (no signal, no noise), so every condition
 * differs from the baseline only by what it adds. */
static void clear_private_dims(const ba_synth_options *o, float *hidden, long n_words)
{
    long d = o->d_model, p0 = d - private_dims(d);
    for (long row = 0; row < (long)(o->n_layers + 1) * n_words; row++)
        for (long j = p0; j < d; j++) hidden[row * d + j] = 0;
}

/* In the association regions, mix into the planted signal a response to
 * the associations' effect on the planted layer (see synth.h). */
static ba_status plant_associations(const ba_synth_options *o, study *S, ba_error *err)
{
    ba_status rc = BA_OK;
    ba_rng rng;
    ba_rng_seed(&rng, o->seed, 3001);
    long d = o->d_model, p = d * o->n_delays, v = o->n_voxels, p0 = d - private_dims(d);
    ba_design_options dopt = {.tr_s = o->tr_s, .aggregate = BA_AGGREGATE_SUM,
                              .n_delays = o->n_delays, .delays = o->delays};
    bool *marked = NULL;
    double *basis = NULL, *weights = NULL;
    float *extra = NULL, *trs = NULL, *x = NULL;
    BA_ALLOC(marked, (size_t)v, "association voxels", done);
    for (long j = 0; j < v; j++)
        for (int k = 0; k < o->n_assoc_regions; k++) marked[j] |= S->labels[j] == o->assoc_regions[k];
    BA_ALLOC(basis, (size_t)p * 2, "association directions", done);
    BA_ALLOC(weights, (size_t)p * v, "association weights", done);
    for (long i = 0; i < p; i++)
        for (int k = 0; k < 2; k++) basis[i * 2 + k] = i % d >= p0 ? ba_rng_normal(&rng) : 0.0;
    for (long j = 0; j < v; j++) {
        double c0 = ba_rng_normal(&rng), c1 = ba_rng_normal(&rng);
        for (long i = 0; marked[j] && i < p; i++)
            weights[i * v + j] = (basis[i * 2] * c0 + basis[i * 2 + 1] * c1) *
                                 exp(-0.5 * (double)(i / d));
    }
    BA_ALLOC(extra, (size_t)S->n_tr_total * v, "association signal", done);
    long row = 0;
    for (size_t s = 0; s < S->n_stories; s++) {
        long n_tr = S->n_tr[s], n_words = (long)S->stories[s].n_words;
        free(trs); free(x);
        trs = NULL; x = NULL;
        BA_ALLOC(trs, (size_t)n_tr * d, "TR features", done);
        BA_ALLOC(x, (size_t)n_tr * p, "design", done);
        BA_TRY(ba_words_to_trs(S->stories[s].name, S->assoc_delta[s], S->stories[s].onset,
                               n_words, d, n_tr, &dopt, trs, NULL, err), done);
        ba_fir_delays(trs, n_tr, d, o->delays, o->n_delays, x);
        for (long t = 0; t < n_tr; t++)
            for (long j = 0; j < v; j++) {
                if (!marked[j]) continue;
                double acc = 0;
                for (long i = 0; i < p; i++) acc += x[t * p + i] * weights[i * v + j];
                extra[(row + t) * v + j] = (float)acc;
            }
        row += n_tr;
    }
    standardise_columns(extra, S->n_tr_total, v, marked);
    double keep = sqrt(1 - o->assoc_share), add = sqrt(o->assoc_share);
    for (long t = 0; t < S->n_tr_total; t++)
        for (long j = 0; j < v; j++)
            if (marked[j])
                S->signal[t * v + j] = (float)(keep * S->signal[t * v + j] + add * extra[t * v + j]);
    standardise_columns(S->signal, S->n_tr_total, v, marked);
done:
    free(marked); free(basis); free(weights); free(extra); free(trs); free(x);
    return rc;
}

static ba_status plant_signal(const ba_synth_options *o, ba_rng *rng, study *S, ba_error *err)
{
    ba_status rc = BA_OK;
    long d = o->d_model, p = d * o->n_delays, v = o->n_voxels, q = 4;
    ba_design_options dopt = {.tr_s = o->tr_s, .aggregate = BA_AGGREGATE_SUM,
                              .n_delays = o->n_delays, .delays = o->delays};
    double *basis = NULL, *weights = NULL, *mean = NULL, *var = NULL;
    float *trs = NULL, *x = NULL;
    BA_ALLOC(basis, (size_t)p * q, "planted directions", done);
    BA_ALLOC(weights, (size_t)p * v, "planted weights", done);
    /* Voxel weights live in a q-dimensional subspace of the design (with a
     * decaying delay profile, like a haemodynamic response). */
    for (long i = 0; i < p * q; i++) basis[i] = ba_rng_normal(rng);
    for (long j = 0; j < v; j++) {
        double c[4];
        for (long k = 0; k < q; k++) c[k] = ba_rng_normal(rng);
        for (long i = 0; i < p; i++) {
            double w = 0;
            for (long k = 0; k < q; k++) w += basis[i * q + k] * c[k];
            double profile = exp(-0.5 * (double)(i / d));
            weights[i * v + j] = w * profile;
        }
    }
    /* With associations the last P dimensions belong to them alone. */
    for (long i = 0; o->n_assoc_regions > 0 && i < p; i++)
        if (i % d >= d - private_dims(d))
            for (long j = 0; j < v; j++) weights[i * v + j] = 0;
    BA_ALLOC(S->signal, (size_t)S->n_tr_total * v, "planted signal", done);
    long row = 0;
    for (size_t s = 0; s < S->n_stories; s++) {
        long n_tr = S->n_tr[s], n_words = (long)S->stories[s].n_words;
        free(trs); free(x);
        trs = NULL; x = NULL;
        BA_ALLOC(trs, (size_t)n_tr * d, "TR features", done);
        BA_ALLOC(x, (size_t)n_tr * p, "design", done);
        const float *planted = S->hidden[s] + (size_t)o->planted_layer * n_words * d;
        BA_TRY(ba_words_to_trs(S->stories[s].name, planted, S->stories[s].onset, n_words, d,
                               n_tr, &dopt, trs, NULL, err), done);
        ba_fir_delays(trs, n_tr, d, o->delays, o->n_delays, x);
        for (long t = 0; t < n_tr; t++)
            for (long j = 0; j < v; j++) {
                double acc = 0;
                for (long i = 0; i < p; i++) acc += x[t * p + i] * weights[i * v + j];
                S->signal[(row + t) * v + j] = (float)acc;
            }
        row += n_tr;
    }
    /* Unit variance per voxel over the whole study. */
    BA_ALLOC(mean, (size_t)v, "signal mean", done);
    BA_ALLOC(var, (size_t)v, "signal variance", done);
    for (long t = 0; t < S->n_tr_total; t++)
        for (long j = 0; j < v; j++) mean[j] += S->signal[t * v + j];
    for (long j = 0; j < v; j++) mean[j] /= S->n_tr_total;
    for (long t = 0; t < S->n_tr_total; t++)
        for (long j = 0; j < v; j++) {
            double dlt = S->signal[t * v + j] - mean[j];
            var[j] += dlt * dlt;
        }
    for (long t = 0; t < S->n_tr_total; t++)
        for (long j = 0; j < v; j++)
            S->signal[t * v + j] = (float)((S->signal[t * v + j] - mean[j]) /
                                           sqrt(var[j] / S->n_tr_total + 1e-30));
    /* Regions: contiguous voxel ranges; region g's achievable r rises with g. */
    BA_ALLOC(S->fraction, (size_t)v, "signal fractions", done);
    BA_ALLOC(S->labels, (size_t)v, "labels", done);
    for (long j = 0; j < v; j++) {
        int g = (int)(j * o->n_regions / v);
        double r_level = o->max_r * (g + 1) / o->n_regions;
        double r = r_level * (0.85 + 0.3 * ba_rng_uniform(rng));
        if (r > 0.95) r = 0.95;
        S->labels[j] = g;
        S->fraction[j] = r * r;
    }
    if (o->n_assoc_regions > 0) BA_TRY(plant_associations(o, S, err), done);
done:
    free(basis); free(weights); free(mean); free(var); free(trs); free(x);
    return rc;
}

/* hidden + delta on every layer (a copy), or hidden itself. */
static float *shifted_hidden(const ba_synth_options *o, const study *S, size_t s,
                             float *const *delta, ba_error *err)
{
    if (!delta) return S->hidden[s];
    size_t n = S->stories[s].n_words * (size_t)o->d_model;
    float *h = ba_calloc((size_t)(o->n_layers + 1) * n, sizeof *h, "augmented features", err);
    if (!h) return NULL;
    for (int l = 0; l <= o->n_layers; l++)
        for (size_t i = 0; i < n; i++) h[l * n + i] = S->hidden[s][l * n + i] + delta[s][i];
    return h;
}

/* features.h5 (delta NULL) or a condition's features (hidden + delta). */
static ba_status write_features(const ba_synth_options *o, const study *S, const char *file,
                                const char *condition, float *const *delta, ba_error *err)
{
    char path[BA_PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", o->out_dir, file);
    int layers[256];
    for (int l = 0; l <= o->n_layers; l++) layers[l] = l;
    ba_story_features *sf = ba_calloc(S->n_stories, sizeof *sf, "features", err);
    char **names = ba_calloc(S->n_stories, sizeof(char *), "names", err);
    float **hidden = ba_calloc(S->n_stories, sizeof(float *), "features", err);
    ba_status rc = sf && names && hidden ? BA_OK : BA_ERR_NOMEM;
    for (size_t s = 0; rc == BA_OK && s < S->n_stories; s++) {
        hidden[s] = shifted_hidden(o, S, s, delta, err);
        if (!hidden[s]) rc = BA_ERR_NOMEM;
    }
    for (size_t s = 0; rc == BA_OK && s < S->n_stories; s++) {
        const ba_story *st = &S->stories[s];
        snprintf(sf[s].name, sizeof sf[s].name, "%s", st->name);
        names[s] = (char *)st->name;
        sf[s].n_words = (long)st->n_words;
        sf[s].d_model = o->d_model;
        sf[s].n_layers = o->n_layers + 1;
        sf[s].layers = layers;
        sf[s].hidden = hidden[s];
        sf[s].surprisal = S->surprisal[s];
        sf[s].words = st->words;
        sf[s].onset = st->onset;
        sf[s].offset = st->offset;
    }
    char checkpoint[256];
    snprintf(checkpoint, sizeof checkpoint, "synthetic (seed %llu, planted layer %d)",
             (unsigned long long)o->seed, o->planted_layer);
    ba_features_meta meta = {"synthetic", checkpoint, 0, condition, "brainalign synth"};
    if (rc == BA_OK)
        rc = ba_features_write(path, MPI_COMM_SELF, &meta, names, S->n_stories, sf,
                               S->n_stories, err);
    for (size_t s = 0; delta && hidden && s < S->n_stories; s++) free(hidden[s]);
    free(hidden);
    free(sf);
    free(names);
    return rc;
}

/* associations.jsonl, features-associations.h5 and features-random.h5. */
static ba_status write_association_files(const ba_synth_options *o, const study *S,
                                         ba_error *err)
{
    char path[BA_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/associations.jsonl", o->out_dir);
    BA_CHECK(ba_association_set_write(path, &S->assoc, err));
    BA_CHECK(write_features(o, S, "features-associations.h5", "associations", S->assoc_delta, err));
    return write_features(o, S, "features-random.h5", "random", S->random_delta, err);
}

static ba_status write_subject(const ba_synth_options *o, const study *S, int subject,
                               ba_error *err)
{
    ba_status rc = BA_OK;
    long v = o->n_voxels;
    ba_rng rng;
    ba_rng_seed(&rng, o->seed, 1000 + (uint64_t)subject);
    float *y = NULL;
    double *truth = NULL, *truth_folds = NULL, *baseline = NULL, *sxy = NULL, *sxx = NULL, *syy = NULL, *my = NULL;
    BA_ALLOC(y, (size_t)S->n_tr_total * v, "BOLD", done);
    BA_ALLOC(truth, (size_t)v, "truth", done);
    BA_ALLOC(baseline, (size_t)v, "baseline", done);
    BA_ALLOC(sxy, (size_t)v, "truth", done);
    BA_ALLOC(sxx, (size_t)v, "truth", done);
    BA_ALLOC(syy, (size_t)v, "truth", done);
    BA_ALLOC(my, (size_t)v, "truth", done);
    for (long j = 0; j < v; j++) baseline[j] = 500 + 100 * ba_rng_uniform(&rng);
    for (long t = 0; t < S->n_tr_total; t++)
        for (long j = 0; j < v; j++) {
            double f = S->fraction[j];
            double value = sqrt(f) * S->signal[t * v + j] + sqrt(1 - f) * ba_rng_normal(&rng);
            y[t * v + j] = (float)(value + baseline[j]);
            my[j] += value;
        }
    /* Achievable r: corr(signal, y) over all TRs, as it came out. */
    for (long j = 0; j < v; j++) my[j] /= S->n_tr_total;
    for (long t = 0; t < S->n_tr_total; t++)
        for (long j = 0; j < v; j++) {
            double s = S->signal[t * v + j], yy = y[t * v + j] - baseline[j] - my[j];
            sxy[j] += s * yy;
            sxx[j] += s * s;
            syy[j] += yy * yy;
        }
    for (long j = 0; j < v; j++) truth[j] = sxy[j] / sqrt(sxx[j] * syy[j]);
    /* The same under fit's default scoring: Pearson r within each of the 5
     * KFold test blocks of the concatenated study, averaged. */
    long bounds[6];
    BA_TRY(ba_kfold_bounds(S->n_tr_total, 5, bounds, err), done);
    BA_ALLOC(truth_folds, (size_t)v, "truth", done);
    for (int k = 0; k < 5; k++)
        for (long j = 0; j < v; j++)
            truth_folds[j] += ba_pearson_f32(S->signal + bounds[k] * v + j, v,
                                             y + bounds[k] * v + j, v,
                                             bounds[k + 1] - bounds[k]) / 5.0;

    char path[BA_PATH_MAX];
    snprintf(path, sizeof path, "%s/bold-sub-%02d.h5", o->out_dir, subject + 1);
    ba_h5file f;
    BA_TRY(ba_h5_create(&f, path, MPI_COMM_SELF, err), done);
    long row = 0;
    for (size_t s = 0; rc == BA_OK && s < S->n_stories; s++) {
        char obj[512];
        snprintf(obj, sizeof obj, "/stories/%s/data", S->stories[s].name);
        hsize_t dims[2] = {(hsize_t)S->n_tr[s], (hsize_t)v};
        rc = ba_h5_write_all(&f, obj, BA_H5_F32, 2, dims, y + row * v, err);
        row += S->n_tr[s];
    }
    hsize_t vd[1] = {(hsize_t)v};
    if (rc == BA_OK) rc = ba_h5_write_all(&f, "/truth/r", BA_H5_F64, 1, vd, truth, err);
    if (rc == BA_OK) rc = ba_h5_write_all(&f, "/truth/r_kfold5", BA_H5_F64, 1, vd, truth_folds, err);
    if (rc == BA_OK) rc = ba_h5_write_all(&f, "/truth/signal_fraction", BA_H5_F64, 1, vd, S->fraction, err);
    double tr = o->tr_s;
    long long planted = o->planted_layer;
    if (rc == BA_OK) rc = ba_h5_set_attr_f64(&f, "/", "tr_s", &tr, 1, err);
    if (rc == BA_OK) rc = ba_h5_set_attr_i64(&f, "/truth", "planted_layer", &planted, 1, err);
    if (rc == BA_OK) rc = ba_h5_set_attr_str(&f, "/", "source", "brainalign synth", err);
    if (rc == BA_OK && o->n_assoc_regions > 0) {
        long long regions[32];
        for (int k = 0; k < o->n_assoc_regions; k++) regions[k] = o->assoc_regions[k];
        rc = ba_h5_set_attr_i64(&f, "/truth", "association_regions", regions,
                                (size_t)o->n_assoc_regions, err);
        if (rc == BA_OK)
            rc = ba_h5_set_attr_f64(&f, "/truth", "association_share", &o->assoc_share, 1, err);
    }
    if (rc != BA_OK) ba_h5_abandon(&f);
    else rc = ba_h5_close(&f, err);
done:
    free(y); free(truth); free(truth_folds); free(baseline); free(sxy); free(sxx); free(syy); free(my);
    return rc;
}

static ba_status write_atlas(const ba_synth_options *o, const study *S, ba_error *err)
{
    ba_atlas atlas = {.n_voxels = o->n_voxels, .n_regions = o->n_regions, .labels = S->labels};
    char **names = ba_calloc((size_t)o->n_regions, sizeof(char *), "region names", err);
    if (!names) return BA_ERR_NOMEM;
    char buf[64];
    int listed = (int)(sizeof REGION_NAMES / sizeof *REGION_NAMES);
    for (int g = 0; g < o->n_regions; g++) {
        if (g < listed) snprintf(buf, sizeof buf, "%s", REGION_NAMES[g]);
        else snprintf(buf, sizeof buf, "region_%03d", g);
        names[g] = strdup(buf);
    }
    atlas.names = names;
    char path[BA_PATH_MAX];
    snprintf(path, sizeof path, "%s/atlas.h5", o->out_dir);
    ba_status rc = ba_atlas_write(path, MPI_COMM_SELF, &atlas, err);
    ba_h5_free_strings(names, (size_t)o->n_regions);
    return rc;
}

static ba_status check_options(const ba_synth_options *o, ba_error *err)
{
    if (o->n_stories < 1 || o->n_subjects < 1 || o->n_voxels < 1 || o->n_regions < 1 ||
        o->n_regions > o->n_voxels || o->d_model < 1 || o->n_layers < 0 || o->n_layers > 250 ||
        o->planted_layer < 0 || o->planted_layer > o->n_layers || o->n_delays < 1 ||
        !(o->tr_s > 0) || !(o->max_r > 0 && o->max_r < 1) || (!o->stimuli_dir && o->words_per_story < 1))
        return ba_fail(err, BA_ERR_USAGE,
                       "synth: every count must be positive, regions <= voxels, the planted "
                       "layer within 0..layers, 0 < max r < 1");
    if (o->n_assoc_regions < 0 || o->n_assoc_regions > 32)
        return ba_fail(err, BA_ERR_USAGE, "synth: 0 to 32 association regions");
    for (int k = 0; k < o->n_assoc_regions; k++)
        if (o->assoc_regions[k] < 0 || o->assoc_regions[k] >= o->n_regions)
            return ba_fail(err, BA_ERR_USAGE, "synth: association region %d does not exist "
                           "(regions 0..%d)", o->assoc_regions[k], o->n_regions - 1);
    if (o->n_assoc_regions > 0 &&
        (!(o->assoc_share > 0 && o->assoc_share < 1) || o->assoc_every < 1 || o->d_model < 4))
        return ba_fail(err, BA_ERR_USAGE, "synth: associations need 0 < share < 1, every >= 1 "
                       "and d_model >= 4");
    return BA_OK;
}

static ba_status synth_on_one_rank(const ba_synth_options *o, ba_error *err)
{
    BA_CHECK(check_options(o, err));
    if (mkdir(o->out_dir, 0777) != 0) {
        struct stat st;
        if (stat(o->out_dir, &st) != 0 || !S_ISDIR(st.st_mode))
            return ba_fail(err, BA_ERR_IO, "%s: cannot create the output directory", o->out_dir);
    }
    ba_status rc = BA_OK;
    ba_rng rng;
    ba_rng_seed(&rng, o->seed, 0);
    study S = {0};
    double *mixing = NULL;
    long rank = o->d_model / 4 > 2 ? o->d_model / 4 : 2;
    BA_TRY(load_stories(o, &rng, &S.stories, &S.n_stories, err), done);
    BA_ALLOC(S.hidden, S.n_stories, "hidden", done);
    BA_ALLOC(S.surprisal, S.n_stories, "surprisal", done);
    BA_ALLOC(S.n_tr, S.n_stories, "TR counts", done);
    BA_ALLOC(mixing, (size_t)rank * o->d_model, "mixing", done);
    for (long i = 0; i < rank * o->d_model; i++) mixing[i] = ba_rng_normal(&rng) / sqrt((double)rank);
    ba_design_options dopt = {.tr_s = o->tr_s};
    for (size_t s = 0; s < S.n_stories; s++) {
        long n_words = (long)S.stories[s].n_words;
        BA_ALLOC(S.hidden[s], (size_t)(o->n_layers + 1) * n_words * o->d_model, "hidden", done);
        BA_ALLOC(S.surprisal[s], (size_t)n_words, "surprisal", done);
        BA_TRY(make_hidden(o, &rng, mixing, rank, n_words, S.hidden[s], S.surprisal[s], err), done);
        if (o->n_assoc_regions > 0) clear_private_dims(o, S.hidden[s], n_words);
        /* The scan runs 10 TRs past the last word (haemodynamic tail). */
        S.n_tr[s] = ba_trs_needed(S.stories[s].onset, n_words, &dopt) + 10;
        S.n_tr_total += S.n_tr[s];
    }
    if (o->n_assoc_regions > 0) BA_TRY(make_associations(o, &S, err), done);
    BA_TRY(plant_signal(o, &rng, &S, err), done);
    BA_TRY(write_features(o, &S, "features.h5", "baseline", NULL, err), done);
    if (o->n_assoc_regions > 0) BA_TRY(write_association_files(o, &S, err), done);
    BA_TRY(write_atlas(o, &S, err), done);
    for (int subject = 0; subject < o->n_subjects; subject++) {
        BA_TRY(ba_fault("synth.subject", err), done);
        BA_TRY(write_subject(o, &S, subject, err), done);
    }
    if (!o->quiet)
        fprintf(stderr, "synth: %zu stories, %ld TRs, %ld voxels in %d regions, %d subjects%s -> %s/\n",
                S.n_stories, S.n_tr_total, o->n_voxels, o->n_regions, o->n_subjects,
                o->n_assoc_regions > 0 ? ", associations" : "", o->out_dir);
done:
    free(mixing);
    study_free(&S);
    return rc;
}

ba_status ba_synth_run(const ba_synth_options *o, MPI_Comm comm, ba_error *err)
{
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    ba_status rc = BA_OK;
    if (rank == 0) {
        /* Before any work: the directory writable and not another run's (outfile.h). */
        ba_output_lock lock = {0};
        rc = check_options(o, err);
        if (rc == BA_OK) rc = ba_output_begin(o->out_dir, true, &lock, err);
        if (rc == BA_OK) rc = synth_on_one_rank(o, err);
        ba_output_end(&lock);
    } else {
        rc = ba_fault("synth", err);
    }
    return ba_mpi_agree(comm, rc, err);
}
