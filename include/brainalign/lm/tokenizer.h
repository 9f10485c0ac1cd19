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

#include "brainalign/core/error.h"

typedef struct ba_tokenizer ba_tokenizer;

ba_status ba_tokenizer_load(const char *dir, ba_tokenizer **out, ba_error *err);
void ba_tokenizer_destroy(ba_tokenizer *tok);

/* "gpt2-bpe" or "sentencepiece-bpe". */
const char *ba_tokenizer_kind(const ba_tokenizer *tok);
int32_t ba_tokenizer_vocab_size(const ba_tokenizer *tok);

/* Encode UTF-8 text (no BOS added). *ids is malloc'd; free() it.
 * Special tokens ("<|endoftext|>", "<s>") are never recognised in text.
 * Invalid UTF-8: "gpt2-bpe" refuses it (BA_ERR_VALUE naming the byte
 * offset); "sentencepiece-bpe" reads each bad byte as U+FFFD. */
ba_status ba_tokenizer_encode(const ba_tokenizer *tok, const char *text, size_t len,
                              int32_t **ids, size_t *n_ids, ba_error *err);

/* Encode a story given as words, exactly as the model sees the running text
 * " ".join(words): word_end[w] is one past the index of word w's last
 * token, so word w's tokens are [word_end[w-1], word_end[w]) (word -1 ends
 * at 0). word_end has n_words entries, supplied by the caller. */
ba_status ba_tokenizer_encode_words(const ba_tokenizer *tok, char *const *words,
                                    size_t n_words, int32_t **ids, size_t *n_ids,
                                    size_t *word_end, ba_error *err);

/* The text that token ids stand for, as Hugging Face's
 * tokenizer.decode(ids, skip_special_tokens=True) gives it (*text is
 * malloc'd and NUL-terminated; free() it; it may hold NUL bytes, *len
 * counts them). Ids outside the vocabulary are an error (BA_ERR_VALUE
 * naming the position). The result is always valid UTF-8:
 *   "gpt2-bpe": the tokens' bytes concatenated ("<|endoftext|>" included,
 *     as its text), then invalid UTF-8 replaced as Python's
 *     bytes.decode("utf-8", errors="replace") does: one U+FFFD for each
 *     maximal prefix of a valid sequence (a lone bad byte: one U+FFFD);
 *   "sentencepiece-bpe": as the SentencePiece library's DecodeIds of the
 *     ids without the control (<s>, </s>) and unknown (<unk>) ones, which
 *     are skipped: pieces joined, "▁" (U+2581) -> " ", the first piece
 *     that remains loses one leading "▁" when it is a text piece (not a
 *     byte piece) and the model adds a dummy prefix or removes extra
 *     whitespace (LLaMA adds the prefix), each
 *     run of consecutive byte pieces <0xXX> becomes its bytes, where every
 *     byte that does not start a complete valid UTF-8 character becomes
 *     U+FFFD (one per byte, as SentencePiece does). So with a byte-fallback
 *     model such as LLaMA's, decode(encode(text)) == text for every valid
 *     UTF-8 text, leading spaces included: the dummy prefix's "▁" added by
 *     encode is the one decode removes. */
ba_status ba_tokenizer_decode(const ba_tokenizer *tok, const int32_t *ids, size_t n_ids,
                              char **text, size_t *len, ba_error *err);

/* As ba_tokenizer_decode, but the bytes exactly as the tokens stand for
 * them, without replacing invalid UTF-8 (a single token may be part of a
 * character): for streaming output, stop strings and tests. */
ba_status ba_tokenizer_decode_bytes(const ba_tokenizer *tok, const int32_t *ids, size_t n_ids,
                                    char **text, size_t *len, ba_error *err);

/* Learn a tiny GPT-2-style byte-level BPE from `corpus` (n_docs UTF-8
 * texts, pre-tokenised exactly like GPT-2) and write <dir>/vocab.json and
 * <dir>/merges.txt, which ba_tokenizer_load(dir) reads back. Each of the
 * n_merges steps merges the most frequent adjacent pair (ties: the smaller
 * pair of byte strings, left then right, compared bytewise); training stops
 * early when every pre-token is a single token. Vocabulary: the 256 byte
 * tokens in GPT-2's order, the merged tokens, then "<|endoftext|>". Meant
 * for the small corpora of the synthetic study (it recounts pairs at every
 * step). The directory is created when missing; files are written under
 * temporary names and renamed. */
ba_status ba_bpe_write_tiny_vocab(const char *dir, const char *const *corpus, size_t n_docs,
                                  int n_merges, ba_error *err);

#endif
