/* tokenizer.h — text to token ids, for every supported model family.
 *
 * ba_tokenizer_load() looks in a model directory and picks the format:
 *   tokenizer.json (Hugging Face; BPE of GPT-2 or LLaMA kind),
 *   vocab.json + merges.txt, encoder.json + vocab.bpe (GPT-2 byte-level BPE),
 *   tokenizer.model (SentencePiece BPE, LLaMA).
 * Life cycle: load -> encode (any number of times, thread-safe) -> destroy. */
#ifndef BRAINALIGN_TOKENIZER_H
#define BRAINALIGN_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "brainalign/error.h"

typedef struct ba_tokenizer ba_tokenizer;

ba_status ba_tokenizer_load(const char *dir, ba_tokenizer **out, ba_error *err);
void ba_tokenizer_destroy(ba_tokenizer *tok);

/* "gpt2-bpe" or "sentencepiece-bpe". */
const char *ba_tokenizer_kind(const ba_tokenizer *tok);
int32_t ba_tokenizer_vocab_size(const ba_tokenizer *tok);

/* Encode UTF-8 text (no BOS added). *ids is malloc'd; free() it. */
ba_status ba_tokenizer_encode(const ba_tokenizer *tok, const char *text, size_t len,
                              int32_t **ids, size_t *n_ids, ba_error *err);

/* Encode a story given as words, exactly as the model sees the running text
 * " ".join(words): word_end[w] is one past the index of word w's last
 * token, so word w's tokens are [word_end[w-1], word_end[w]) (word -1 ends
 * at 0). word_end has n_words entries, supplied by the caller. */
ba_status ba_tokenizer_encode_words(const ba_tokenizer *tok, char *const *words,
                                    size_t n_words, int32_t **ids, size_t *n_ids,
                                    size_t *word_end, ba_error *err);

#endif
