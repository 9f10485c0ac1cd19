/* tokenizer_internal.h — how a tokenizer family plugs into tokenizer.c.
 * Not a public header. */
#ifndef BRAINALIGN_TOKENIZER_INTERNAL_H
#define BRAINALIGN_TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "brainalign/lm/tokenizer.h"

typedef struct {
    const char *kind;
    ba_status (*encode)(const void *impl, const char *text, size_t len, int32_t **ids,
                        size_t *n_ids, ba_error *err);
    ba_status (*encode_words)(const void *impl, char *const *words, size_t n_words,
                              int32_t **ids, size_t *n_ids, size_t *word_end,
                              ba_error *err);
    /* ids -> text (malloc'd, NUL-terminated); raw: the bytes as the tokens
     * stand for them, else invalid UTF-8 replaced by U+FFFD by the family's
     * rule (see tokenizer.h). Ids are checked here. */
    ba_status (*decode)(const void *impl, const int32_t *ids, size_t n_ids, bool raw,
                        char **text, size_t *len, ba_error *err);
    int32_t (*vocab_size)(const void *impl);
    void (*destroy)(void *impl);
} ba_tokenizer_ops;

struct ba_tokenizer {
    const ba_tokenizer_ops *ops;
    void *impl;
};

/* Python's UTF-8 decoder at s[0, n) (n >= 1): the number of bytes its next
 * step takes and whether they form one valid character (no overlongs,
 * surrogates or code points above U+10FFFF); when not, they are the maximal
 * prefix of a valid sequence, which errors="replace" turns into one U+FFFD.
 * The one UTF-8 classifier of both tokenizer families (tokenizer.c). */
size_t ba_utf8_maximal_subpart(const unsigned char *s, size_t n, bool *valid);

#endif
