/* stimuli.h — stories as timed words.
 *
 * Readers: Narratives Gentle align.csv (no header; word,aligned_word,onset,
 * offset; empty onsets/offsets interpolated), Praat TextGrid (word tier),
 * and a plain TSV/CSV with a header `word,onset,offset`.
 * Life cycle: ba_story_read / ba_story_dir_read -> use -> ba_story_free. */
#ifndef BRAINALIGN_STIMULI_H
#define BRAINALIGN_STIMULI_H

#include <stddef.h>

#include "brainalign/error.h"

typedef struct {
    char name[256];    /* story name (directory or file stem) */
    size_t n_words;
    char **words;      /* UTF-8, as spoken (first column of align.csv) */
    double *onset;     /* seconds, non-decreasing */
    double *offset;    /* seconds, >= onset */
} ba_story;

typedef enum {
    BA_STIM_AUTO = 0,   /* by file name: align.csv, *.TextGrid, *.tsv/*.csv */
    BA_STIM_ALIGN_CSV,
    BA_STIM_TEXTGRID,
    BA_STIM_WORDS_TSV
} ba_stimulus_format;

/* Read one story file. `name` gives the story's name (NULL: derive it). */
ba_status ba_story_read(const char *path, ba_stimulus_format format, const char *name,
                        ba_story *story, ba_error *err);

/* Read every story under a directory laid out as <dir>/<story>/align.csv
 * (Narratives) or <dir>/<story>.{TextGrid,tsv}; sorted by name. If `names`
 * is non-NULL only those stories (in that order), failing on a missing one. */
ba_status ba_story_dir_read(const char *dir, char *const *names, size_t n_names,
                            ba_story **stories, size_t *n_stories, ba_error *err);

void ba_story_free(ba_story *story);
void ba_story_array_free(ba_story *stories, size_t n);

#endif
