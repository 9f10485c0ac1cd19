/* fuzz_tokenizer_sp_decode.c — decoding random ids with a SentencePiece
 * tokenizer.model: the model, a FUZZ_SEPARATOR line, then the ids, two
 * bytes each (little-endian v -> id v - 4, so negative ids and ids past the
 * vocabulary occur too). Checks, once the model loaded:
 *   - decode succeeds exactly when every id is in [0, vocab size), and an
 *     error has a message;
 *   - the text is valid UTF-8, NUL-terminated at its length;
 *   - decode_bytes succeeds alike, and when its bytes are valid UTF-8 they
 *     are the text (replacement only ever touches invalid bytes);
 *   - the text is never longer than 3 bytes per byte of the raw form. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/lm/tokenizer.h"
#include "fuzz_util.h"
#include "lm/tokenizer_bpe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_part part[2];
    size_t n_parts = fuzz_split(data, size, part, 2);
    fuzz_write(0, "tokenizer.model", part[0].data, part[0].size);
    ba_tokenizer *tok = NULL;
    ba_error err;
    ba_error_clear(&err);
    if (ba_tokenizer_load(fuzz_dir(), &tok, &err) != BA_OK) {
        FUZZ_ASSERT(tok == NULL);
        fuzz_rejected("load", err.message);
        return 0;
    }
    fuzz_accepted(ba_tokenizer_kind(tok));
    int32_t vocab = ba_tokenizer_vocab_size(tok);
    size_t n = n_parts > 1 ? part[1].size / 2 : 0;
    int32_t *ids = malloc((n + 1) * sizeof *ids);
    bool in_range = true;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *b = part[1].data + 2 * i;
        ids[i] = (int32_t)(b[0] | b[1] << 8) - 4;
        in_range = in_range && ids[i] >= 0 && ids[i] < vocab;
    }
    char *text = NULL, *raw = NULL;
    size_t len = 0, raw_len = 0;
    ba_status rc = ba_tokenizer_decode(tok, ids, n, &text, &len, &err);
    ba_status raw_rc = ba_tokenizer_decode_bytes(tok, ids, n, &raw, &raw_len, &err);
    FUZZ_ASSERT((rc == BA_OK) == in_range && (raw_rc == BA_OK) == in_range);
    if (rc == BA_OK) {
        fuzz_accepted("decode");
        FUZZ_ASSERT(text != NULL && text[len] == '\0');
        FUZZ_ASSERT(ba_utf8_valid_prefix(text, len) == len);
        FUZZ_ASSERT(len <= 3 * raw_len);
        if (ba_utf8_valid_prefix(raw, raw_len) == raw_len)
            FUZZ_ASSERT(raw_len == len && memcmp(raw, text, len) == 0);
    } else {
        FUZZ_ASSERT(text == NULL && err.message[0] != '\0');
        fuzz_rejected("decode", err.message);
    }
    free(text);
    free(raw);
    free(ids);
    ba_tokenizer_destroy(tok);
    return 0;
}
