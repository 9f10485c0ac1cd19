/* associations.h — associative memory: sets of associations (text a
 * listener would associate with a story) and their insertion into the
 * model's input (Yin et al., Findings of ACL 2025).
 *
 * File format (JSONL, UTF-8): one association per line, blank lines
 * skipped, e.g.
 *   {"story": "pieman", "after_word": 123, "text": "...", "granularity": "word", "source": "human"}
 *   {"story": "pieman", "after_sentence": 7, "text": "...", "granularity": "sentence", "source": "gpt4"}
 * Fields (any other field is an error, so a misspelt key never passes):
 *   story           the story's name (as in the stimuli directory)
 *   after_word      0-based index of the word the text follows, or
 *   after_sentence  0-based index of the sentence it follows (exactly one)
 *   text            the association; non-empty; split into words at
 *                   white space (space, tab, CR, LF) when inserted
 *   granularity     "sentence" | "word" (default: "word" with after_word,
 *                   "sentence" with after_sentence); a word-level phrase
 *                   must give after_word
 *   source          "human" | "gpt4" | "model" | "random" (default "human")
 * Errors name the file and line ("assoc.jsonl:12: ..."). Positions are
 * checked against the stories by ba_association_set_check (unknown story,
 * index out of range). The set's name — the condition recorded in
 * features.h5 — is the file's name without directory and extension.
 *
 * Sentences. A word ends a sentence when it ends in '.', '!', '?' or
 * '…', possibly followed by closing quotes or brackets (" ' ) ] } ” ’ »);
 * the story's last word always ends the last sentence. Transcripts
 * without punctuation — the Narratives align.csv files have none — would
 * be one sentence; for a story in which NO word ends a sentence this way,
 * a silence of at least `pause_s` seconds (next onset minus offset,
 * default BA_SENTENCE_PAUSE_S) ends a sentence instead. (On the 26
 * Narratives stories 0.5 s gives 9–30 words per "sentence".) Abbreviations
 * such as "Mr." end a sentence too: place associations with after_word
 * when that matters.
 *
 * Insertion policies (where each association's words go):
 *   human    every association after the word / sentence it names;
 *   every-k  the GPT-4 setting: associations are given per sentence (a
 *            sentence-level association with after_word belongs to the
 *            sentence holding that word); sentences are grouped in blocks
 *            of k (sentences 0..k-1, k..2k-1, ...) and an association of
 *            any sentence of a block is inserted after the block's last
 *            sentence (the story's last sentence for a short final
 *            block): text enters the input once every k sentences, after
 *            the model has read the sentences it is about. Word-level
 *            associations are an error under this policy;
 *   word     word-level phrases right after the words they belong to;
 *            sentence-level associations are an error under this policy;
 *   random   the control: the positions of another policy (human unless
 *            "random-every-k" / "random-word"), each text replaced by as
 *            many words, taken consecutively from a story OTHER than this
 *            one (chosen at random among the other stories given, from a
 *            random start, wrapping around). Deterministic for a seed and
 *            a pool of stories: each insertion draws from its own stream
 *            (seed, story name, insertion rank), so a story's control does
 *            not depend on the order of the stories or on the other
 *            stories' associations (the `features` stage's pool is the
 *            stories it processes).
 * Several associations at one place go in the order of the sentences they
 * are about (every-k), then in file order.
 *
 * The augmented story keeps, for every word, whether it is original and
 * (if so) its index in the original story, so features can be read at the
 * original words only and the design matrix keeps the original timings. */
#ifndef BRAINALIGN_ASSOCIATIONS_H
#define BRAINALIGN_ASSOCIATIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brainalign/core/error.h"
#include "brainalign/core/limits.h"
#include "brainalign/io/stimuli.h"

#define BA_SENTENCE_PAUSE_S 0.5
#define BA_ASSOC_NAME_MAX 128

typedef enum { BA_GRANULARITY_SENTENCE = 0, BA_GRANULARITY_WORD } ba_assoc_granularity;
typedef enum {
    BA_SOURCE_HUMAN = 0,
    BA_SOURCE_GPT4,
    BA_SOURCE_MODEL,
    BA_SOURCE_RANDOM
} ba_assoc_source;

typedef struct {
    char story[256];
    long after_word;      /* >= 0, or -1 when the association follows a sentence */
    long after_sentence;  /* >= 0, or -1 when it follows a word */
    char *text;           /* owned, UTF-8 */
    ba_assoc_granularity granularity;
    ba_assoc_source source;
    long line;            /* line in the file it came from (0: built in memory) */
} ba_association;

typedef struct {
    char path[BA_PATH_MAX]; /* file read from ("" when built in memory) */
    char name[BA_ASSOC_NAME_MAX]; /* the condition name: the file's stem     */
    ba_association *items;
    size_t n, cap;
} ba_association_set;

/* Read and check the syntax of a JSONL file. On failure the set is empty. */
ba_status ba_association_set_read(const char *path, ba_association_set *set, ba_error *err);
/* Append a copy of `a` (its text is copied). */
ba_status ba_association_set_add(ba_association_set *set, const ba_association *a,
                                 ba_error *err);
/* Write the set as JSONL (atomically: temporary name, then rename). */
ba_status ba_association_set_write(const char *path, const ba_association_set *set,
                                   ba_error *err);
void ba_association_set_free(ba_association_set *set);

/* Every association names one of the stories and a word or sentence inside
 * it; errors name the file and line. `pause_s` <= 0: BA_SENTENCE_PAUSE_S. */
ba_status ba_association_set_check(const ba_association_set *set, const ba_story *stories,
                                   size_t n_stories, double pause_s, ba_error *err);

const char *ba_granularity_name(ba_assoc_granularity g);
const char *ba_source_name(ba_assoc_source s);

/* ---- sentences ------------------------------------------------------------ */

/* True when the word ends in sentence-final punctuation (see above). */
bool ba_word_ends_sentence(const char *word);

/* *ends [n_sentences]: the index of each sentence's last word (malloc'd).
 * *by_pause (may be NULL) tells whether pauses were used. pause_s <= 0:
 * BA_SENTENCE_PAUSE_S. A story without words has no sentences. */
ba_status ba_story_sentences(const ba_story *story, double pause_s, size_t **ends,
                             size_t *n_sentences, bool *by_pause, ba_error *err);

/* ---- insertion ------------------------------------------------------------ */

typedef enum { BA_PLACE_HUMAN = 0, BA_PLACE_EVERY_K, BA_PLACE_WORD } ba_assoc_placement;

typedef struct {
    ba_assoc_placement placement;
    int every_k;       /* every-k: sentences per block (default 4) */
    bool random_text;  /* the random control */
    uint64_t seed;     /* random control */
    double pause_s;    /* <= 0: BA_SENTENCE_PAUSE_S */
} ba_augment_options;

void ba_augment_options_defaults(ba_augment_options *o);
/* "human", "every-k", "word", "random" (human positions), "random-human",
 * "random-every-k", "random-word". Sets placement and random_text only. */
ba_status ba_augment_policy_parse(const char *text, ba_augment_options *o, ba_error *err);
/* The policy's name as parsed ("every-k", "random-word", ...). */
const char *ba_augment_policy_name(const ba_augment_options *o);
/* The condition a set under a policy is: the set's name under "human" (its
 * own positions and text), else "<set>-<policy>" ("human-random",
 * "gpt4-every-k", "human-random-word"), so that the random control is
 * never recorded under the association set's own name. */
void ba_augment_condition_name(const ba_association_set *set, const ba_augment_options *o,
                               char *buf, size_t size);

typedef struct {
    char name[256];
    size_t n_words;
    char **words;        /* [n_words] owned copies */
    long *original;      /* [n_words]: index in the original story, -1 if inserted */
    long *association;   /* [n_words]: index in the set of an inserted word's
                            association, -1 for original words */
    size_t n_original;   /* == the original story's n_words */
    size_t *position;    /* [n_original]: where original word w now is */
    size_t n_insertions; /* associations inserted */
} ba_augmented_story;

/* Insert the set's associations of `story` (others are ignored) by the
 * policy. `pool` (the stories the random control may draw from; the story
 * itself is skipped by name) is needed only with random_text. An empty
 * selection gives the story unchanged. The set must have passed
 * ba_association_set_check for these stories. */
ba_status ba_augment_story(const ba_story *story, const ba_association_set *set,
                           const ba_augment_options *opt, const ba_story *pool, size_t n_pool,
                           ba_augmented_story *out, ba_error *err);
void ba_augmented_story_free(ba_augmented_story *a);

#endif
