/* stimuli.h — stories as timed words.
 *
 * Readers: Narratives Gentle align.csv (no header; word,aligned_word,onset,
 * offset; empty onsets/offsets interpolated), Praat TextGrid (word tier),
 * and a plain TSV/CSV with a header `word,onset,offset`.
 * Life cycle: ba_story_read / ba_story_dir_read -> use -> ba_story_free.
 *
 * Every reader
 *   - takes the file as UTF-8 (a UTF-8 BOM is skipped) or as UTF-16 with a
 *     BOM (either byte order; converted to UTF-8); NUL bytes without a BOM
 *     (UTF-16 without BOM, binary files) and invalid UTF-8 in a word are
 *     errors naming the file and line;
 *   - accepts LF, CRLF or CR line ends, any line length, and skips lines
 *     that are empty or hold only spaces/tabs (CSV/TSV);
 *   - reads CSV/TSV fields like Python's csv module: a field that starts
 *     with `"` is quoted, `""` inside it is one `"`, and it may hold the
 *     separator; a quote left open at the end of a line is an error (a
 *     field cannot span lines). Unquoted fields are trimmed of spaces;
 *   - accepts times as finite, non-negative decimal numbers in seconds;
 *   - rejects a story with no words, a row with the wrong column count, a
 *     non-numeric time, an offset below its onset by more than
 *     BA_STIM_TIME_TOLERANCE_S (within it the offset is raised to the
 *     onset), with messages "<file>:<line>: <what was expected>";
 *   - on failure leaves the story empty (and the stats zero): nothing
 *     partial is returned.
 *
 * BA_STIM_AUTO: a file whose text starts with "File type" is a TextGrid
 *   (whatever its name); else align.csv is Gentle, *.TextGrid a TextGrid,
 *   *.tsv and *.csv a word table; any other name is an error.
 *
 * align.csv (Gentle, as checked by Caucheteux et al.): exactly 4 columns,
 *   no header (a first line `word,aligned_word,onset,offset` is skipped).
 *   A row whose onset and/or offset is EMPTY was not aligned; its times are
 *   filled as pandas' `DataFrame.interpolate()` does, column by column:
 *     - between the nearest aligned rows before (index a) and after
 *       (index b): t_i = t_a + (t_b - t_a) * (i - a) / (b - a), linear in
 *       the word index (not in time);
 *     - after the last aligned row: hold its value (pandas' forward fill);
 *     - before the first aligned row: hold the first aligned value (pandas
 *       would leave NaN; we need finite times);
 *     - a story with no aligned row at all is an error.
 *   File order is kept (Caucheteux et al. do). An onset below the previous
 *   one is raised to it ("clamped") and counted in
 *   ba_story_read_stats.n_clamped, never an error; the offset follows it
 *   if needed. (The 26 Narratives stories need no clamping.)
 *
 * TSV/CSV word table: a header line naming the columns `word`, `onset`,
 *   `offset` (case-insensitive, any order, other columns ignored), tab
 *   separated if the header has a tab, else comma separated; every row has
 *   the header's column count and numeric onset/offset (no interpolation).
 *   User-supplied timings must already be in order: an onset below the
 *   previous one by more than BA_STIM_TIME_TOLERANCE_S is an error naming
 *   the file and line (within it, clamped and counted).
 *
 * Praat TextGrid: text files in the long ("ooTextFile") or short format
 *   (the same value sequence without labels; both are read by one scanner
 *   that skips labels, `[...]` indices and `!` comments). The word tier is
 *   the first IntervalTier named "words" or "word" (case-insensitive), else
 *   the first IntervalTier. Interval texts are trimmed of white space;
 *   intervals whose text is one of the non-speech marks
 *     "" sp sil silence pau <sil> <p:> {sl} {sil} {lg} {ns} {br}
 *   (case-insensitive) are skipped and counted in n_skipped. Word
 *   intervals must be in time order and end after they start (beyond
 *   BA_STIM_TIME_TOLERANCE_S, an error naming file and line). UTF-16 files
 *   (Praat's choice for non-ASCII text) are read as said above. Binary
 *   TextGrids ("ooBinaryFile") are rejected with a clear message.
 *
 * Story directory: entries <story>/align.csv, <story>.TextGrid and
 *   <story>.tsv (extension case-insensitive); names starting with "." and
 *   other files are ignored; two entries with one story name are an error;
 *   stories sort by name (byte order). Story names are < 256 bytes and hold
 *   no "/". `names` must not repeat a name. */
#ifndef BRAINALIGN_STIMULI_H
#define BRAINALIGN_STIMULI_H

#include <stddef.h>

#include "brainalign/core/error.h"

typedef struct {
    char name[256];    /* story name (directory or file stem) */
    size_t n_words;
    char **words;      /* UTF-8, as spoken (first column of align.csv) */
    double *onset;     /* seconds, non-decreasing */
    double *offset;    /* seconds, >= onset */
} ba_story;

typedef enum {
    BA_STIM_AUTO = 0,   /* by name: align.csv, *.TextGrid, *.tsv, *.csv */
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

/* Times may disagree by this much (seconds) before it is an error. */
#define BA_STIM_TIME_TOLERANCE_S 1e-4

/* What a reader had to repair; callers print it as a warning. */
typedef struct {
    size_t n_interpolated; /* words whose onset or offset was filled in    */
    size_t n_clamped;      /* onsets raised to keep onsets non-decreasing  */
    size_t n_skipped;      /* TextGrid intervals skipped as non-speech     */
} ba_story_read_stats;

/* ba_story_read, also reporting repairs in `stats` (may be NULL). */
ba_status ba_story_read_ex(const char *path, ba_stimulus_format format, const char *name,
                           ba_story *story, ba_story_read_stats *stats, ba_error *err);

/* ba_story_dir_read, also reporting repairs summed over the stories in
 * `stats` (may be NULL). */
ba_status ba_story_dir_read_ex(const char *dir, char *const *names, size_t n_names,
                               ba_story **stories, size_t *n_stories,
                               ba_story_read_stats *stats, ba_error *err);

/* Parse a format name: "auto", "align-csv", "textgrid", "tsv". */
ba_status ba_stimulus_format_parse(const char *text, ba_stimulus_format *format,
                                   ba_error *err);

#endif
