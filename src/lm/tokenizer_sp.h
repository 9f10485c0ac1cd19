/* tokenizer_sp.h — the SentencePiece BPE family (LLaMA / LLaMA-2).
 * Not a public header: tokenizer.c dispatches here.
 *
 * ba_sp_tokenizer_open() reads <dir>/tokenizer.model (a SentencePiece
 * ModelProto, parsed here with bounds checks on every field) or, when that
 * file is absent, <dir>/tokenizer.json (the Hugging Face form of a LLaMA
 * tokenizer: BPE with byte fallback, "▁" normaliser) and fills tok->ops
 * (kind "sentencepiece-bpe") and tok->impl.
 *
 * Encoding follows SentencePiece's BPE:
 *   - normalise: the identity normaliser only (a model with a precompiled
 *     character map is refused); spaces become U+2581 "▁"; "▁" is put in
 *     front when add_dummy_prefix; extra spaces are dropped only when
 *     remove_extra_whitespaces (LLaMA keeps them). Empty text gives no
 *     tokens. Invalid UTF-8 never fails: each byte that does not start a
 *     valid UTF-8 sequence becomes U+FFFD, as SentencePiece does (with
 *     LLaMA's vocabulary U+FFFD then falls back to the bytes EF BF BD);
 *   - split into code points, then repeatedly merge the adjacent pair whose
 *     concatenation is a piece with the highest score (ties: leftmost);
 *   - a symbol that is no piece becomes one <0xXX> token per UTF-8 byte
 *     (byte_fallback), else <unk> (consecutive <unk>s fuse into one).
 * tokenizer.json merges by merge rank instead of score, as Hugging Face
 * does; for LLaMA's converted files both give the same ids.
 *
 * Decoding (tokenizer.h, ba_tokenizer_decode) is SentencePiece's DecodeIds
 * with control, unknown and (tokenizer.json) special tokens skipped.
 *
 * encode_words: the text is " ".join(words); a token belongs to the word
 * whose bytes it covers, the "▁" standing for the space before a word (and
 * the dummy prefix) belonging to that word. A token covering two words, or
 * a word left without tokens, is an error (BA_ERR_VALUE). */
#ifndef BRAINALIGN_TOKENIZER_SP_H
#define BRAINALIGN_TOKENIZER_SP_H

#include "tokenizer_internal.h"

ba_status ba_sp_tokenizer_open(const char *dir, ba_tokenizer *tok, ba_error *err);

/* For tests: the plain O(n^2) merge loop (scan all pairs, merge the best,
 * repeat) that the priority-queue encoder must agree with. tok must come
 * from ba_sp_tokenizer_open. */
ba_status ba_sp_encode_reference(const ba_tokenizer *tok, const char *text, size_t len,
                                 int32_t **ids, size_t *n_ids, ba_error *err);

#endif
