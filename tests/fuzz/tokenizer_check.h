/* tokenizer_check.h — what the tokenizer fuzz targets check once a
 * tokenizer loaded (header-only; included by fuzz_tokenizer_*.c):
 *   - ids lie in [0, vocab size);
 *   - the fast encoder agrees with the plain reference encoder;
 *   - encode_words on the text split at its spaces gives the same ids as
 *     encode, with word ends that never decrease and end at the last id;
 *   - GPT-2 BPE: decoding the ids gives back the text. */
#ifndef BRAINALIGN_FUZZ_TOKENIZER_CHECK_H
#define BRAINALIGN_FUZZ_TOKENIZER_CHECK_H

#include <stdlib.h>
#include <string.h>

#include "brainalign/lm/tokenizer.h"
#include "fuzz_util.h"
#include "lm/tokenizer_bpe.h"
#include "lm/tokenizer_sp.h"

/* Texts longer than this are encoded by the fast encoder only (the
 * reference one is quadratic). */
#define FUZZ_REFERENCE_MAX 2048

static const char FUZZ_DEFAULT_TEXT[] =
    "So I was sitting there, don't you know, at 3:45 -- 12,000 words!  "
    "Caf\xC3\xA9 na\xC3\xAFve \xE2\x80\x9Cquoted\xE2\x80\x9D \xE2\x96\x81 \xF0\x9F\x99\x82 end \n";

static void check_ids(const ba_tokenizer *tok, const int32_t *ids, size_t n)
{
    int32_t vocab = ba_tokenizer_vocab_size(tok);
    for (size_t i = 0; i < n; i++) FUZZ_ASSERT(ids[i] >= 0 && ids[i] < vocab);
}

static void check_words(const ba_tokenizer *tok, const char *text, size_t len,
                        const int32_t *ids, size_t n_ids)
{
    if (memchr(text, '\0', len)) return; /* words are C strings */
    char *copy = malloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = '\0';
    size_t n_words = 1;
    for (size_t i = 0; i < len; i++) n_words += copy[i] == ' ';
    char **words = malloc(n_words * sizeof *words);
    size_t *word_end = malloc(n_words * sizeof *word_end);
    size_t w = 0;
    words[w++] = copy;
    for (size_t i = 0; i < len; i++)
        if (copy[i] == ' ') {
            copy[i] = '\0';
            words[w++] = copy + i + 1;
        }
    int32_t *wids = NULL;
    size_t n_wids = 0;
    ba_error err;
    ba_error_clear(&err);
    if (ba_tokenizer_encode_words(tok, words, n_words, &wids, &n_wids, word_end, &err) == BA_OK) {
        fuzz_accepted("encode_words");
        FUZZ_ASSERT(n_wids == n_ids);
        FUZZ_ASSERT(n_ids == 0 || memcmp(wids, ids, n_ids * sizeof *ids) == 0);
        for (size_t k = 0; k < n_words; k++) {
            FUZZ_ASSERT(word_end[k] <= n_wids);
            if (k > 0) FUZZ_ASSERT(word_end[k] >= word_end[k - 1]);
        }
        FUZZ_ASSERT(word_end[n_words - 1] == n_wids);
    } else {
        fuzz_rejected("encode_words", err.message);
    }
    free(wids);
    free(word_end);
    free(words);
    free(copy);
}

static void check_encode(const ba_tokenizer *tok, const char *text, size_t len)
{
    int32_t *ids = NULL, *ref = NULL;
    size_t n = 0, n_ref = 0;
    ba_error err;
    ba_error_clear(&err);
    ba_status rc = ba_tokenizer_encode(tok, text, len, &ids, &n, &err);
    if (rc != BA_OK) {
        fuzz_rejected("encode", err.message);
        free(ids);
        return;
    }
    check_ids(tok, ids, n);
    if (len <= FUZZ_REFERENCE_MAX) {
        ba_status ref_rc = ba_bpe_is(tok) ? ba_bpe_encode_reference(tok, text, len, &ref, &n_ref, &err)
                                          : ba_sp_encode_reference(tok, text, len, &ref, &n_ref, &err);
        FUZZ_ASSERT(ref_rc == BA_OK);
        if (n_ref != n || (n && memcmp(ref, ids, n * sizeof *ids) != 0))
            fuzz_fail("fast encoder gives %zu ids, reference encoder %zu (or other ids)", n, n_ref);
        free(ref);
    }
    if (ba_bpe_is(tok)) {
        char *back = NULL;
        size_t back_len = 0;
        FUZZ_ASSERT(ba_tokenizer_decode(tok, ids, n, &back, &back_len, &err) == BA_OK);
        if (back_len != len || memcmp(back, text, len) != 0)
            fuzz_fail("decode(encode(text)) is not the text (%zu bytes back, %zu in)", back_len, len);
        free(back);
    }
    if (len <= FUZZ_REFERENCE_MAX) check_words(tok, text, len, ids, n);
    free(ids);
}

/* Load from fuzz_dir() and check; the text to encode is `text` when not
 * empty, else FUZZ_DEFAULT_TEXT. */
static void check_tokenizer_dir(const uint8_t *text, size_t len)
{
    ba_tokenizer *tok = NULL;
    ba_error err;
    ba_error_clear(&err);
    if (ba_tokenizer_load(fuzz_dir(), &tok, &err) != BA_OK) {
        FUZZ_ASSERT(tok == NULL);
        fuzz_rejected("load", err.message);
        return;
    }
    fuzz_accepted(ba_tokenizer_kind(tok));
    FUZZ_ASSERT(ba_tokenizer_vocab_size(tok) > 0);
    if (len == 0) {
        text = (const uint8_t *)FUZZ_DEFAULT_TEXT;
        len = sizeof FUZZ_DEFAULT_TEXT - 1;
    }
    check_encode(tok, (const char *)text, len);
    check_encode(tok, "", 0);
    ba_tokenizer_destroy(tok);
}

#endif
