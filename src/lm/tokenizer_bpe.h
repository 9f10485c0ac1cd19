/* tokenizer_bpe.h — GPT-2 byte-level BPE (internal; see tokenizer.h).
 *
 * The model is read once and never changes afterwards, so encoding from
 * several threads at once is safe (all scratch memory belongs to the call).
 * Text is UTF-8; invalid UTF-8 is refused with BA_ERR_VALUE naming the byte
 * offset (GPT-2's pre-tokeniser is defined on Unicode characters). Special
 * tokens such as "<|endoftext|>" are not recognised inside text: text is
 * always encoded as ordinary text (tiktoken's encode_ordinary). */
#ifndef BRAINALIGN_TOKENIZER_BPE_H
#define BRAINALIGN_TOKENIZER_BPE_H

#include <jansson.h>
#include <stdint.h>

#include "tokenizer_internal.h"

/* GPT-2's pre-tokenisation pattern (PCRE2, used with UTF and UCP). */
#define BA_GPT2_PATTERN                                                        \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

/* vocab_path: a JSON object token -> id (vocab.json or encoder.json);
 * merges_path: one "left right" merge per line, optional "#version" first
 * line (merges.txt or vocab.bpe). Sets tok->ops and tok->impl. */
ba_status ba_bpe_open_files(const char *vocab_path, const char *merges_path,
                            ba_tokenizer *tok, ba_error *err);

/* From a parsed Hugging Face tokenizer.json (`root`; `path` names it in
 * messages): model.vocab, model.merges ("a b" strings or [a, b] pairs),
 * added_tokens. */
ba_status ba_bpe_open_hf_json(const char *path, const json_t *root, ba_tokenizer *tok,
                              ba_error *err);

/* True when `tok` is a GPT-2 byte-level BPE tokenizer of this module. */
int ba_bpe_is(const ba_tokenizer *tok);

/* The plain reference encoder: same pre-tokeniser, merges by a quadratic
 * scan for the lowest-ranked pair (leftmost on ties). Tests compare the
 * fast heap-based encoder with it. */
ba_status ba_bpe_encode_reference(const ba_tokenizer *tok, const char *text, size_t len,
                                  int32_t **ids, size_t *n_ids, ba_error *err);

/* GPT-2's reversible byte -> Unicode code point map: printable Latin-1
 * bytes map to themselves, the others to U+0100 onwards. order[k] is the
 * byte whose token has id k in GPT-2's vocabulary (printable bytes first). */
void ba_bpe_byte_map(uint32_t codepoint[256], uint8_t order[256]);

/* Length of the valid UTF-8 prefix of text[0, len) (== len when valid). */
size_t ba_utf8_valid_prefix(const char *text, size_t len);

#endif
