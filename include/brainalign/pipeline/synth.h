/* synth.h — a complete synthetic study with a known answer.
 *
 * Stories (real timings from align.csv files, or generated), word-level
 * "hidden states" with the statistics of language-model activations
 * (correlated across words, low effective rank, heavy-tailed norms; one
 * planted layer is the cleanest copy of the latent signal, the others are
 * noisier), an atlas of regions, and BOLD for several subjects:
 *
 *   y_v = sqrt(f_v) * s_v + sqrt(1 - f_v) * e_v + baseline_v
 *
 * where s_v (unit variance) is the planted layer's TR-level features under
 * the same design as `fit` (sum per TR, FIR delays) times planted weights,
 * e_v white noise, and f_v the signal fraction of voxel v (set per region).
 * The best achievable r of each voxel, corr(s_v, y_v) over all TRs, is
 * written next to the data (/truth/r of each BOLD file), and so is the r a
 * perfect model would get under fit's default scoring (Pearson r within
 * each of 5 contiguous folds, averaged: /truth/r_kfold5).
 *
 * Files written in out_dir: features.h5, bold-sub-NN.h5 (one per subject,
 * plus /truth), atlas.h5. Deterministic for a given seed.
 *
 * Associative memory (n_assoc_regions > 0). An association is placed after
 * every assoc_every-th sentence of each story (sentences as associations.h
 * finds them) and written to associations.jsonl (generated words, after_word
 * positions). Its context effect: each association has a random vector
 * a_j, and the hidden states (every layer) of the words following it get
 * a_j exp(-(w - i - 1) / 5) added (w the word, i the one the association
 * follows, up to 15 words on) in the last P = max(2, d_model / 8) feature
 * dimensions; in this mode those dimensions are zero in the baseline (the
 * story alone puts nothing there) and the planted weights of every voxel
 * ignore them. The augmented features are written to
 * features-associations.h5 (condition "associations"); features-random.h5
 * (condition "random") is the control: vectors b_j of the same size,
 * independent of everything, with the same decay, placed half-way between
 * one association and the next (or the story's end) — at other words, so
 * that they cannot line up with the associations' effect by chance (with
 * the same words, the chance correlation of a few hundred random vectors
 * with the planted ones is shared by every subject and is then "detected"
 * by a test across subjects).
 * In the association regions the planted response is
 *   s_v = sqrt(1 - share) s_base,v + sqrt(share) s_assoc,v   (renormalised)
 * where s_assoc,v comes, through weights of its own on the P dimensions,
 * from the associations' effect on the planted layer (the augmented minus
 * the baseline features, under the same design); elsewhere s_v = s_base,v.
 * So fitting the augmented features must raise r in those regions only,
 * and the random control must raise it nowhere. /truth records the
 * regions (attribute association_regions) and the share. */
#ifndef BRAINALIGN_SYNTH_H
#define BRAINALIGN_SYNTH_H

#include <mpi.h>
#include <stdbool.h>
#include <stdint.h>

#include "brainalign/core/error.h"

typedef struct {
    const char *out_dir;
    const char *stimuli_dir; /* NULL: generate stories */
    int n_stories;           /* stories to use/generate */
    long words_per_story;    /* generated stories only */
    int n_subjects;
    long n_voxels;
    int n_regions;
    long d_model;
    int n_layers;            /* hidden states 0..n_layers are written */
    int planted_layer;
    int n_delays;
    int delays[32];
    double tr_s;
    double max_r;            /* the best region's achievable r */
    uint64_t seed;
    bool quiet;
    /* Associative memory (see above); none when n_assoc_regions == 0. */
    int n_assoc_regions;
    int assoc_regions[32];   /* region indices */
    double assoc_share;      /* share of their planted signal (default 0.5) */
    int assoc_every;         /* an association every k sentences (default 4) */
} ba_synth_options;

void ba_synth_defaults(ba_synth_options *opt);

/* Collective over comm (rank 0 computes and writes; the files are small). */
ba_status ba_synth_run(const ba_synth_options *opt, MPI_Comm comm, ba_error *err);

#endif
