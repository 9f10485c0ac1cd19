/* features.h — the `features` stage: a causal language model's hidden
 * states and surprisal for every word of every story -> features.h5 (the
 * contract is in features_io.h and DESIGN.md).
 *
 * Words and tokens. Each story is tokenised as the model sees the running
 * text " ".join(words) (ba_tokenizer_encode_words), which gives each word
 * its span of tokens. A word's vector (per kept layer) is the hidden state
 * of its LAST token; its surprisal is -log p(word | context) in nats, the
 * sum over its tokens of -log p(token | the tokens before it).
 *
 * Windows (the context rule). The model sees at most C story tokens at a
 * time, C = --context (default 1024), capped at the model's longest window
 * (its position table), minus one when a BOS token is prepended. Windows
 * start at story tokens 0, S, 2S, ... (S = --stride, default C/2, 1 <= S
 * <= C) and cover story tokens [kS, min(kS + C, n)); as many windows are
 * made as it takes to reach the last token. Every token is taken from the
 * EARLIEST window that contains it, which is the window giving it the most
 * left context: window 0 owns tokens [0, min(C, n)), window k >= 1 owns
 * [(k-1)S + C, min(kS + C, n)). So every token has at least C - S tokens
 * of left context, except the first C tokens of a story, which see the
 * whole story before them. Both a token's hidden states and its
 * log-probability come from its owning window (a word whose tokens straddle
 * two windows sums log-probabilities from both; its vector comes from the
 * window owning its last token).
 *
 * Associative memory. With an association set (associations.h), each
 * story is read by the model with the set's associations inserted by the
 * chosen policy: the running text is " ".join(augmented words), and the
 * windows cover the augmented tokens. The output still has exactly the
 * story's own words, with their own timings: a word's vector is the hidden
 * state of its last token in the augmented text, its surprisal the sum over
 * its own tokens (inserted words contribute nothing). So baseline and
 * augmented features differ only through the context the model saw; with
 * no association for a story its features are the baseline's. The
 * condition recorded is --condition, else the set's name (its file stem);
 * the set, the policy, k and the seed are recorded as root attributes
 * (associations, policy, every_k, seed, inserted_words).
 *
 * BOS. With a BOS token (--bos yes; --bos auto = yes for LLaMA-type
 * models, as Hugging Face's LLaMA tokenizer adds one, no for GPT-2, whose
 * tokenizer does not), every window is [BOS, its story tokens]; the BOS
 * position is not a story token and is never output. Its id is
 * config.json's bos_token_id, else the architecture's Hugging Face default
 * (GPT-2 50256, LLaMA 1).
 *
 * NaN surprisal. The log-probability of a token with no preceding token
 * in its window is undefined: it is NaN, and so is the surprisal of its
 * word. Without BOS this is the story's first token (and, only when
 * S == C, the first token of every window).
 *
 * Parallelism. The unit of work is a (story, window) pair; units are dealt
 * to ranks deterministically (longest first, each to the least loaded
 * rank, ties to the lower rank). Every rank reads and tokenises every
 * story and maps the same checkpoint (one copy in the page cache). A
 * word's values come from the same window whichever rank computes it, so
 * the output does not depend on the number of ranks: bitwise at a fixed
 * BLAS kernel choice and thread count per rank (OpenBLAS's results move
 * in the last bits with its thread count, measured up to 3e-6 on GPT-2
 * small hidden states, and with OPENBLAS_CORETYPE). Each rank writes the hidden-state rows of the
 * words its windows own straight into the shared file (independent
 * hyperslab writes); rank 0 writes words, onsets, offsets and surprisal.
 * The file is written under a temporary name and renamed at the end; on
 * any error on any rank there is no output file and every rank returns the
 * same error. */
#ifndef BRAINALIGN_FEATURES_H
#define BRAINALIGN_FEATURES_H

#include <mpi.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "brainalign/pipeline/associations.h"
#include "brainalign/core/error.h"
#include "brainalign/lm/model.h"
#include "brainalign/io/stimuli.h"

#define BA_FEATURES_DEFAULT_CONTEXT 1024
#define BA_FEATURES_MAX_LAYERS 256

typedef enum { BA_BOS_AUTO = 0, BA_BOS_YES, BA_BOS_NO } ba_bos_mode;

/* "auto", "yes", "no". */
ba_status ba_bos_mode_parse(const char *text, ba_bos_mode *mode, ba_error *err);

typedef struct {
    const char *model_dir;    /* config.json, safetensors, tokenizer files    */
    const char *stimuli_dir;  /* a story directory (stimuli.h), or one file   */
    char *const *stories;     /* NULL: every story of the directory           */
    size_t n_stories;
    /* BA_STIM_AUTO: the story-directory rules of stimuli.h. A named format
     * reads a directory's <story>/align.csv and <story>.csv (align-csv),
     * <story>.TextGrid (textgrid), or <story>.tsv and <story>.csv (tsv) in
     * that format; a single file is read in that format. */
    ba_stimulus_format format;
    bool all_layers;          /* every hidden state 0..n_layers             */
    int layers[BA_FEATURES_MAX_LAYERS]; /* else these HF indices, in order */
    int n_layers;
    long context;             /* 0: BA_FEATURES_DEFAULT_CONTEXT               */
    long stride;              /* 0: context / 2 (at least 1)                  */
    ba_bos_mode bos;
    ba_matmul matmul;         /* precision of the products (model.h); default f32 */
    const char *adapter_dir;  /* a PEFT LoRA adapter (lm/adapter.h) applied at
                                 every product it targets; NULL: none        */
    const char *associations; /* JSONL association set; NULL: the plain text  */
    ba_augment_options augment; /* how the associations are inserted          */
    const char *condition;    /* NULL: the set's name, else "baseline"        */
    const char *out_path;
    const char *command_line; /* recorded in the file                         */
    bool quiet;               /* no progress on rank 0                        */
    /* set by a signal handler (SIGTERM): stop at the next window boundary,
     * BA_ERR_INTERRUPTED, the unfinished output removed (nothing is kept to
     * resume from: a features run starts afresh). NULL: never. */
    volatile sig_atomic_t *stop_requested;
} ba_features_config;

void ba_features_config_defaults(ba_features_config *cfg);

typedef struct {
    size_t n_stories;
    long n_words, n_tokens;   /* story tokens                                  */
    long n_windows, n_window_tokens; /* every window's tokens, BOS included */
    long context, stride;     /* the effective values                          */
    int bos_token;            /* -1: none                                      */
    int n_layers;
    int layers[BA_FEATURES_MAX_LAYERS]; /* the HF indices kept              */
    long d_model;
    ba_story_read_stats stimuli; /* repairs the stimulus readers made         */
    size_t n_insertions;      /* associations inserted (all stories)           */
    long n_inserted_words;    /* words they added                              */
    /* This rank. */
    long my_windows, my_window_tokens;
    double seconds_forward, seconds_total;
    double cpu_seconds_forward; /* process CPU time (all threads) in forwards */
    char checkpoint[BA_ERROR_MESSAGE_MAX]; /* the identity recorded          */
    char adapter[BA_ERROR_MESSAGE_MAX];    /* the adapter's identity, or ""  */
} ba_features_summary;

/* Collective over comm. Writes cfg->out_path (atomically) or nothing. */
ba_status ba_features_run(const ba_features_config *cfg, MPI_Comm comm,
                          ba_features_summary *summary, ba_error *err);

/* ---- the window rule (see above), for n story tokens ------------------------ */

/* Number of windows: 0 when n == 0, else 1 + the owner of token n-1. */
size_t ba_feature_window_count(size_t n, size_t context, size_t stride);
/* The window owning story token t: 0 if t < C, else ceil((t + 1 - C) / S). */
size_t ba_feature_window_of_token(size_t t, size_t context, size_t stride);
/* Story tokens window k covers, [*begin, *end), and those it owns,
 * [*own_begin, *own_end). */
void ba_feature_window_span(size_t k, size_t n, size_t context, size_t stride, size_t *begin,
                            size_t *end, size_t *own_begin, size_t *own_end);

/* The checkpoint's identity as recorded in features.h5:
 * "<absolute dir>#fnv1a64:<16 hex digits>", the hash covering config.json,
 * the tokenizer files, and every *.safetensors file's name, size and JSON
 * header (not the weights themselves: cheap even for large models).
 * Independent. */
ba_status ba_checkpoint_identity(const char *model_dir, char *out, size_t size, ba_error *err);

/* A LoRA adapter's identity as recorded in features.h5 (root attribute
 * "adapter"): "<absolute dir>#fnv1a64:<16 hex digits>", the hash covering
 * the whole of adapter_config.json and adapter_model.safetensors (the
 * trained weights included: an adapter is small). */
ba_status ba_adapter_identity(const char *adapter_dir, char *out, size_t size, ba_error *err);

#endif
