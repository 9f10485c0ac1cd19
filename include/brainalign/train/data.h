/* data.h — instruction-tuning data: JSONL records, prompt templates,
 * tokenised samples with masked labels, and the order samples are
 * presented in.
 *
 * JSONL: one JSON object per line with the string fields "instruction",
 * "input" (optional; absent = empty) and "output" (non-empty); other keys
 * are ignored. A line that is not JSON, not an object, lacks a field, has a
 * non-string field or an empty output is an error naming file:line; so is
 * an empty line (except the end of the file after its last newline) and a
 * file without records. A trailing "\r" (CRLF files) is dropped.
 *
 * Templates (the prompt; the response is always the output unchanged):
 *   plain        instruction "\n\n" input "\n\n"
 *                (input empty: instruction "\n\n")
 *   alpaca       the Stanford Alpaca prompt. With input:
 *                "Below is an instruction that describes a task, paired with an input
 *                 that provides further context. Write a response that appropriately
 *                 completes the request.\n\n### Instruction:\n" instruction
 *                "\n\n### Input:\n" input "\n\n### Response:\n"
 *                Without input:
 *                "Below is an instruction that describes a task. Write a response that
 *                 appropriately completes the request.\n\n### Instruction:\n" instruction
 *                "\n\n### Response:\n"
 *                (each quoted piece is one line: the line breaks above are
 *                 for the header only; words are separated by one space)
 *   llama2-chat  "[INST] " user " [/INST]" where user is instruction, or
 *                instruction "\n\n" input when the input is not empty; with a
 *                system prompt: "[INST] <<SYS>>\n" system "\n<</SYS>>\n\n" user
 *                " [/INST]". The response is tokenised on its own, so with
 *                LLaMA's SentencePiece its dummy prefix supplies the space
 *                that Meta's format puts after "[/INST]".
 *
 * Sample: prompt and response are tokenised separately and concatenated,
 *   ids    = [BOS if bos >= 0] + ids(prompt) + ids(response) + [EOS]
 *   labels = -100 on BOS and the prompt, the id itself on the response and
 *            the EOS (Hugging Face convention: labels are not shifted; the
 *            loss of position i predicts labels[i] from positions < i).
 * BOS is added when the model's tokenizer adds one (LLaMA yes: id 1 unless
 * config.json says otherwise; GPT-2 no) — the caller passes bos = -1 for none.
 * Longer than max_seq_len: an error naming file:line, or with `truncate` the
 * sequence is cut to max_seq_len (the tail of the response and the EOS go,
 * the prompt stays); a prompt that leaves no room for one response token is
 * an error even then.
 *
 * Order: the samples of optimizer step s (0-based) with a global batch of B
 * are the positions s*B .. s*B+B-1 of an endless stream of epochs; epoch e
 * is the file order (no shuffle) or a permutation of it drawn from
 * ba_rng_seed(seed, e) (Fisher-Yates), so any step's samples follow from
 * (seed, s) alone, whatever the rank count, and a resumed run continues the
 * same stream. */
#ifndef BRAINALIGN_TRAIN_DATA_H
#define BRAINALIGN_TRAIN_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brainalign/core/error.h"
#include "brainalign/lm/tokenizer.h"

#define BA_LABEL_IGNORE (-100)

/* ---- records --------------------------------------------------------------- */

typedef struct {
    char *instruction; /* NUL-terminated, malloc'd                      */
    char *input;       /* "" when absent                                */
    char *output;      /* never empty                                   */
    size_t line;       /* 1-based line in the file                      */
} ba_sft_record;

typedef struct {
    char source[512]; /* the file name, for messages                    */
    ba_sft_record *records; /* [n]                                       */
    size_t n;
} ba_sft_data;

/* Parse JSONL text (`source` names it in messages) / read a file. */
ba_status ba_sft_parse_jsonl(const char *text, size_t len, const char *source,
                             ba_sft_data **out, ba_error *err);
ba_status ba_sft_read_jsonl(const char *path, ba_sft_data **out, ba_error *err);
void ba_sft_data_destroy(ba_sft_data *data);

/* ---- templates ------------------------------------------------------------- */

typedef enum {
    BA_TEMPLATE_ALPACA = 0,
    BA_TEMPLATE_LLAMA2_CHAT,
    BA_TEMPLATE_PLAIN,
} ba_template;

/* "alpaca", "llama2-chat", "plain". */
ba_status ba_template_parse(const char *text, ba_template *out, ba_error *err);
const char *ba_template_name(ba_template t);

/* The prompt and the response of a record (malloc'd, NUL-terminated).
 * `system` is llama2-chat's system prompt (NULL: no <<SYS>> block); it must
 * be NULL for the other templates. */
ba_status ba_sft_format(ba_template t, const char *system, const ba_sft_record *rec,
                        char **prompt, char **response, ba_error *err);

/* ---- tokenised samples ------------------------------------------------------ */

typedef struct {
    ba_template tmpl;
    const char *system;  /* see ba_sft_format                             */
    int32_t bos;         /* -1: none                                      */
    int32_t eos;         /* >= 0                                          */
    size_t max_seq_len;  /* >= 2                                          */
    bool truncate;
} ba_sft_options;

typedef struct {
    int32_t *ids;    /* [n]                                               */
    int32_t *labels; /* [n]: BA_LABEL_IGNORE or ids[i]                    */
    size_t n;
    size_t n_prompt; /* masked positions at the start (BOS + prompt)      */
    size_t n_target; /* unmasked positions (response + EOS)               */
    bool truncated;
} ba_sft_sample;

/* Tokenise one record; messages name source:line. */
ba_status ba_sft_tokenize(const ba_tokenizer *tok, const ba_sft_options *opt,
                          const ba_sft_record *rec, const char *source, ba_sft_sample *out,
                          ba_error *err);
void ba_sft_sample_free(ba_sft_sample *s);

typedef struct {
    ba_sft_sample *samples; /* [n], in file order */
    size_t n;
    size_t n_truncated;
    size_t max_len;         /* the longest sample  */
} ba_sft_dataset;

/* Tokenise every record (the first failure is the error). */
ba_status ba_sft_dataset_build(const ba_tokenizer *tok, const ba_sft_options *opt,
                               const ba_sft_data *data, ba_sft_dataset **out, ba_error *err);
void ba_sft_dataset_destroy(ba_sft_dataset *ds);

/* ---- order ----------------------------------------------------------------- */

/* The sample indices [batch] of 0-based optimizer step `step` (see the
 * order above): n_samples >= 1, batch >= 1, step >= 0. */
ba_status ba_sft_batch_indices(size_t n_samples, uint64_t seed, bool shuffle, int64_t step,
                               size_t batch, size_t *indices, ba_error *err);

#endif
