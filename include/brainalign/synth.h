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
 * plus /truth), atlas.h5. Deterministic for a given seed. */
#ifndef BRAINALIGN_SYNTH_H
#define BRAINALIGN_SYNTH_H

#include <mpi.h>
#include <stdbool.h>
#include <stdint.h>

#include "brainalign/error.h"

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
} ba_synth_options;

void ba_synth_defaults(ba_synth_options *opt);

/* Collective over comm (rank 0 computes and writes; the files are small). */
ba_status ba_synth_run(const ba_synth_options *opt, MPI_Comm comm, ba_error *err);

#endif
