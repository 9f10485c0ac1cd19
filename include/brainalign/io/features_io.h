/* features_io.h — features.h5, the contract between `features` (or
 * `synth`) and `fit` (see DESIGN.md):
 *   /stories/<story>/hidden    float32 [n_layers_kept, n_words, d_model],
 *                              attribute `layers` (HF hidden-state indices)
 *   /stories/<story>/surprisal float32 [n_words]
 *   /stories/<story>/word      strings [n_words]
 *   /stories/<story>/onset, offset  float64 [n_words] seconds
 *   root attributes: model_type, checkpoint, context_length, condition,
 *                    version, command.
 * Writing is collective: stories are dealt to ranks, each rank passes the
 * stories it computed, one file results. */
#ifndef BRAINALIGN_FEATURES_IO_H
#define BRAINALIGN_FEATURES_IO_H

#include <mpi.h>
#include <stddef.h>

#include "brainalign/core/error.h"
#include "brainalign/io/h5io.h"

typedef struct {
    char name[256];
    long n_words;
    long d_model;
    int n_layers;
    const int *layers;      /* [n_layers] */
    const float *hidden;    /* [n_layers][n_words][d_model] */
    const float *surprisal; /* [n_words] */
    char *const *words;     /* [n_words] */
    const double *onset, *offset;
} ba_story_features;

typedef struct {
    const char *model_type;
    const char *checkpoint;
    long context_length;
    const char *condition;  /* "baseline" or the association set's name */
    const char *command;
} ba_features_meta;

/* Collective. `all_names` lists every story in output order (same on all
 * ranks); `mine` are the stories this rank computed. */
ba_status ba_features_write(const char *path, MPI_Comm comm, const ba_features_meta *meta,
                            char *const *all_names, size_t n_all,
                            const ba_story_features *mine, size_t n_mine, ba_error *err);

/* ---- writing in pieces (the `features` stage) ------------------------------
 * Life cycle: ba_features_writer_begin (collective: the file under a
 * temporary name, every dataset, the words, onsets and offsets, the
 * `layers` attribute and the root attributes) -> any number of
 * ba_features_writer_put_* (independent: any rank writes any rows) ->
 * ba_features_writer_end (collective: renamed to its final name when every
 * rank succeeded, deleted otherwise). */

typedef struct {
    const char *name;
    long n_words;
    char *const *words;            /* [n_words] (needed on rank 0 only) */
    const double *onset, *offset;  /* [n_words] (needed on rank 0 only) */
} ba_features_story_info;

typedef struct {
    ba_h5file file;
    size_t n_stories;
    char (*names)[256];
    long *n_words;
    int n_layers;
    long d_model;
} ba_features_writer;

/* Collective; every rank passes the same stories, layers and meta. */
ba_status ba_features_writer_begin(ba_features_writer *w, const char *path, MPI_Comm comm,
                                   const ba_features_meta *meta, const int *layers,
                                   int n_layers, long d_model,
                                   const ba_features_story_info *stories, size_t n_stories,
                                   ba_error *err);

/* Independent. Rows [word0, word0 + n) of every kept layer of story
 * `story` (index in the begin list): hidden [n_layers][n][d_model]. */
ba_status ba_features_writer_put_hidden(ba_features_writer *w, size_t story, long word0,
                                        long n, const float *hidden, ba_error *err);

/* Independent. surprisal[0..n) of story `story`, words [word0, word0 + n). */
ba_status ba_features_writer_put_surprisal(ba_features_writer *w, size_t story, long word0,
                                           long n, const float *surprisal, ba_error *err);

/* Collective. `rc` is this rank's status: if any rank failed, the file is
 * deleted and every rank returns the lowest failing rank's error;
 * otherwise the file gets its final name. Frees the writer either way. */
ba_status ba_features_writer_end(ba_features_writer *w, ba_status rc, ba_error *err);

/* Reading (independent calls after the collective open). The open checks
 * every story before anything is read: hidden of rank 3 with the first
 * story's layer count and width (within the limits below), onset, offset,
 * surprisal and word of rank 1 and hidden's word count, and a `layers`
 * attribute of distinct indices 0..BA_FEATURES_MAX_LAYER_INDEX, the same in
 * every story. */
#define BA_FEATURES_FILE_MAX_LAYERS 1024
#define BA_FEATURES_MAX_LAYER_INDEX 4096
#define BA_FEATURES_MAX_WIDTH (1LL << 20)
#define BA_FEATURES_MAX_WORDS (1LL << 32)
typedef struct {
    ba_h5file file;
    size_t n_stories;
    char **stories;     /* sorted names */
    int n_layers;
    long long *layers;  /* HF indices of the kept layers */
    long d_model;
} ba_features_file;

ba_status ba_features_open(ba_features_file *ff, const char *path, MPI_Comm comm,
                           ba_error *err);
void ba_features_close(ba_features_file *ff);

/* Position of HF layer `layer` in the file, or an error naming the layers
 * available. */
ba_status ba_features_layer_slot(const ba_features_file *ff, int layer, int *slot,
                                 ba_error *err);

/* Number of words of a story (error if the story is missing). */
ba_status ba_features_story_words(const ba_features_file *ff, const char *story,
                                  long *n_words, ba_error *err);

/* hidden[slot] of a story: out [n_words][d_model]; onsets [n_words]. */
ba_status ba_features_read_layer(const ba_features_file *ff, const char *story, int slot,
                                 float *out, ba_error *err);
ba_status ba_features_read_onsets(const ba_features_file *ff, const char *story,
                                  double *onset, ba_error *err);

#endif
