/* dataset.h — the Association instruction data (`brainalign dataset`):
 * story passages paired with association sets, and imported Alpaca-style
 * records, written as the instruction JSONL that `finetune` reads
 * (brainalign/train/data.h).
 *
 * Samples from associations. For each association of each set (sets in the
 * order given, associations in file order) the insertion point is the
 * ORIGINAL word w it follows under the placement policy of
 * `features --associations` (human, every-k or word; see associations.h:
 * human puts it after its after_word, or after the last word of its
 * after_sentence; every-k after the last sentence of its block). The
 * passage ends at w (included) and reaches back
 *   sentences N: to the first word of sentence s - N + 1, where s is the
 *                sentence holding w (so a passage that ends inside a
 *                sentence counts that partial sentence as one);
 *   words N:     to word w - N + 1;
 * or to the story's first word when the story is shorter. Sentences are
 * those of ba_story_sentences (punctuation, else pauses of pause_s). The
 * sample is
 *   instruction  the configured instruction (BA_DATASET_INSTRUCTION unless
 *                given),
 *   input        the passage's words joined by single spaces (the running
 *                text the model reads: original words only, no other
 *                associations inserted),
 *   output       the association's text, unchanged.
 * Provenance keys written beside them (the train reader ignores them):
 *   "origin" "<set file>:<line>", "story", "word_start" and "word_end" (the
 *   passage is words [word_start, word_end) of the story, word_end - 1 = w),
 *   "source" (human, gpt4, model, random) and "set" (the set's name).
 *
 * Imported records (--import-alpaca): a JSON array of objects, or JSONL (one
 * object per line), with the string fields "instruction", "input"
 * (optional) and "output" (non-empty), other keys ignored, checked by the
 * rules of the train reader; errors name file:line (for an array: the line
 * where the element starts). A file whose first non-blank byte is '[' is an
 * array, else JSONL. They keep their own instruction and are written with
 * "origin" "<file>:<line>" and "source" "alpaca".
 *
 * Then, in this order:
 *   de-duplication  exact duplicates of (instruction, input, output) are
 *                   dropped, the first occurrence kept, and counted;
 *   token lengths   with a tokenizer: the length of each sample as
 *                   `finetune` builds it (ba_sft_tokenize with the
 *                   template): BOS (SentencePiece tokenizers, as LLaMA) +
 *                   prompt + response + EOS;
 *   length filter   max_tokens > 0: samples longer than max_tokens are
 *                   dropped and counted (strict: an error naming the origin);
 *   split           val_fraction > 0: round(val_fraction * n) samples (half
 *                   away from zero) go to the validation file: the first
 *                   ones of a Fisher-Yates permutation drawn from
 *                   ba_rng_seed(seed, BA_DATASET_SPLIT_STREAM); both files
 *                   keep the order above. A split that leaves either side
 *                   empty is an error.
 * Output files are written under "<name>.partial", read back with
 * ba_sft_read_jsonl, and renamed only when everything succeeded; on any
 * error no output (train, validation, summary) is created.
 *
 * Plain-text stories: a file named *.txt is a story of its words (split at
 * white space), named after the file's stem; it has no timings (onsets and
 * offsets 0), so without punctuation it is one sentence. Other files are
 * read by ba_story_read (align.csv, TextGrid, TSV/CSV), a directory by
 * ba_story_dir_read. A story name given twice is an error. */
#ifndef BRAINALIGN_PIPELINE_DATASET_H
#define BRAINALIGN_PIPELINE_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brainalign/core/error.h"
#include "brainalign/pipeline/associations.h"
#include "brainalign/train/data.h"

/* The default instruction: asks for what the passage brings to mind, as the
 * paper's Association dataset encourages associative memory. */
#define BA_DATASET_INSTRUCTION                                                               \
    "Read this passage from a story as a listener would. Write down what it brings to mind " \
    "at this point: the memories, knowledge, images and related events you associate with "  \
    "it."

#define BA_DATASET_SPLIT_STREAM 0x5350u /* "SP" */

typedef enum { BA_PASSAGE_SENTENCES = 0, BA_PASSAGE_WORDS } ba_passage_unit;

typedef struct {
    const char *const *stories;      /* [n_stories] directories or story files     */
    size_t n_stories;
    const char *const *associations; /* [n_associations] association sets (JSONL)  */
    size_t n_associations;
    const char *const *imports;      /* [n_imports] Alpaca JSON / JSONL files      */
    size_t n_imports;
    ba_passage_unit unit;
    size_t passage_len;              /* >= 1 when associations are given           */
    ba_augment_options placement;    /* human, every-k or word (no random); pause_s */
    const char *instruction;         /* NULL: BA_DATASET_INSTRUCTION               */
    const char *tokenizer;           /* directory; NULL: no token lengths          */
    ba_template tmpl;                /* the template the lengths are counted with  */
    const char *system;              /* llama2-chat system prompt or NULL          */
    size_t max_tokens;               /* 0: no filter (needs a tokenizer when > 0)  */
    bool strict;                     /* a too-long sample is an error              */
    double val_fraction;             /* [0, 1)                                     */
    uint64_t seed;
    const char *out;                 /* training JSONL (required)                  */
    const char *val_out;             /* validation JSONL: required iff fraction > 0 */
    const char *summary;             /* summary JSON or NULL                       */
    const char *command;             /* the command line, recorded in the summary  */
} ba_dataset_options;

void ba_dataset_options_defaults(ba_dataset_options *o);

typedef struct {
    size_t n_stories;
    size_t n_from_associations, n_imported, n_read; /* read = the two summed    */
    size_t n_duplicates, n_filtered, n_kept, n_train, n_val;
    bool have_tokens;
    size_t tok_min, tok_max;  /* of the kept samples                            */
    double tok_median;        /* numpy's median (mean of the middle two)        */
} ba_dataset_summary;

/* Build and write the dataset (serial; call it on one rank). */
ba_status ba_dataset_build(const ba_dataset_options *opt, ba_dataset_summary *sum,
                           ba_error *err);

/* The first word of the passage ending at word `w` (see above); ends
 * [n_sentences] are the sentences' last words. */
size_t ba_passage_start(const size_t *ends, size_t n_sentences, size_t w, ba_passage_unit unit,
                        size_t len);

/* Alpaca-style records from text (`source` names it in messages) / a file. */
ba_status ba_alpaca_parse(const char *text, size_t len, const char *source, ba_sft_data **out,
                          ba_error *err);
ba_status ba_alpaca_read(const char *path, ba_sft_data **out, ba_error *err);

/* A plain-text story (see above). */
ba_status ba_story_read_text(const char *path, ba_story *story, ba_error *err);

#endif
