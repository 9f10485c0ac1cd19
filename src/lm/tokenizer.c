/* tokenizer.c — find the tokenizer format in a model directory, open the
 * right family (GPT-2 byte-level BPE here, SentencePiece in
 * tokenizer_sp.c) and forward the public calls through its ops table.
 *
 * Formats, in order of preference:
 *   tokenizer.json     Hugging Face: a BPE with a ByteLevel pre-tokeniser
 *                      is GPT-2's; a BPE with "▁" pieces or byte_fallback,
 *                      or a Unigram model, is SentencePiece's;
 *   vocab.json + merges.txt, encoder.json + vocab.bpe   GPT-2;
 *   tokenizer.model    SentencePiece. */
#include "brainalign/lm/tokenizer.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "brainalign/core/fs.h"

#include "tokenizer_bpe.h"
#include "tokenizer_internal.h"
#include "tokenizer_sp.h"

/* A BPE tokenizer.json is SentencePiece-like when it falls back to bytes
 * or its pieces use U+2581 "▁" for the space. */
static bool hf_bpe_is_sentencepiece(const json_t *model)
{
    if (json_is_true(json_object_get(model, "byte_fallback"))) return true;
    const char *key;
    json_t *value;
    json_object_foreach(json_object_get(model, "vocab"), key, value) {
        if (strstr(key, "\xE2\x96\x81")) return true;
    }
    return false;
}

static bool hf_is_byte_level(const json_t *root)
{
    const json_t *pre = json_object_get(root, "pre_tokenizer");
    const char *type = json_string_value(json_object_get(pre, "type"));
    return type && strcmp(type, "ByteLevel") == 0;
}

static ba_status open_hf_json(const char *dir, const char *path, ba_tokenizer *tok,
                              ba_error *err)
{
    json_error_t jerr;
    BA_CHECK(ba_require_regular(path, err)); /* a FIFO would block json_load_file */
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        return ba_fail(err, BA_ERR_FORMAT, "%s:%d:%d: malformed JSON: %s", path, jerr.line,
                       jerr.column, jerr.text);
    ba_status rc;
    const json_t *model = json_object_get(root, "model");
    const char *type = json_string_value(json_object_get(model, "type"));
    if (!json_is_object(root) || !type)
        rc = ba_fail(err, BA_ERR_FORMAT, "%s: model.type: expected a string (\"BPE\", ...)",
                     path);
    else if (strcmp(type, "Unigram") == 0)
        rc = ba_sp_tokenizer_open(dir, tok, err);
    else if (strcmp(type, "BPE") != 0)
        rc = ba_fail(err, BA_ERR_FORMAT, "%s: model.type \"%s\" is not supported (BPE only)",
                     path, type);
    else if (hf_is_byte_level(root))
        rc = ba_bpe_open_hf_json(path, root, tok, err);
    else if (hf_bpe_is_sentencepiece(model))
        rc = ba_sp_tokenizer_open(dir, tok, err);
    else
        rc = ba_fail(err, BA_ERR_FORMAT,
                     "%s: a BPE model that is neither byte-level (GPT-2: ByteLevel "
                     "pre_tokenizer) nor SentencePiece-like (\"\xE2\x96\x81\" pieces or "
                     "byte_fallback)",
                     path);
    json_decref(root);
    return rc;
}

/* GPT-2 from a token -> id file and a merges file; the merges file must be
 * there when the vocabulary is. */
static ba_status open_gpt2_pair(const char *dir, const char *vocab_name, const char *merges_name,
                                ba_tokenizer *tok, bool *found, ba_error *err)
{
    char vocab[BA_PATH_MAX], merges[BA_PATH_MAX];
    BA_CHECK(ba_join_path(vocab, sizeof vocab, dir, vocab_name, err));
    BA_CHECK(ba_join_path(merges, sizeof merges, dir, merges_name, err));
    *found = ba_file_exists(vocab);
    if (!*found) return BA_OK;
    if (!ba_file_exists(merges))
        return ba_fail(err, BA_ERR_IO, "%s: missing (%s needs its merges file)", merges, vocab);
    return ba_bpe_open_files(vocab, merges, tok, err);
}

static ba_status open_by_format(const char *dir, ba_tokenizer *tok, ba_error *err)
{
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return ba_fail(err, BA_ERR_IO, "%s: tokenizer directory does not exist", dir);
    char path[BA_PATH_MAX];
    BA_CHECK(ba_join_path(path, sizeof path, dir, "tokenizer.json", err));
    /* there but not a regular file (a FIFO): refused, not passed over */
    if (ba_file_exists(path) || access(path, F_OK) == 0) return open_hf_json(dir, path, tok, err);
    bool found;
    BA_CHECK(open_gpt2_pair(dir, "vocab.json", "merges.txt", tok, &found, err));
    if (found) return BA_OK;
    BA_CHECK(open_gpt2_pair(dir, "encoder.json", "vocab.bpe", tok, &found, err));
    if (found) return BA_OK;
    BA_CHECK(ba_join_path(path, sizeof path, dir, "tokenizer.model", err));
    if (ba_file_exists(path)) return ba_sp_tokenizer_open(dir, tok, err);
    return ba_fail(err, BA_ERR_IO,
                   "%s: no tokenizer found: expected tokenizer.json, vocab.json + merges.txt, "
                   "encoder.json + vocab.bpe or tokenizer.model",
                   dir);
}

ba_status ba_tokenizer_load(const char *dir, ba_tokenizer **out, ba_error *err)
{
    if (!dir || !out) return ba_fail(err, BA_ERR_USAGE, "tokenizer: no directory given");
    *out = NULL;
    ba_tokenizer *tok = ba_calloc(1, sizeof *tok, "tokenizer", err);
    if (!tok) return BA_ERR_NOMEM;
    ba_status rc = open_by_format(dir, tok, err);
    if (rc == BA_OK && (!tok->ops || !tok->impl))
        rc = ba_fail(err, BA_ERR_INTERNAL, "%s: tokenizer family left no implementation", dir);
    if (rc != BA_OK) {
        free(tok);
        return rc;
    }
    *out = tok;
    return BA_OK;
}

void ba_tokenizer_destroy(ba_tokenizer *tok)
{
    if (!tok) return;
    if (tok->ops && tok->ops->destroy) tok->ops->destroy(tok->impl);
    free(tok);
}

const char *ba_tokenizer_kind(const ba_tokenizer *tok)
{
    return tok ? tok->ops->kind : "none";
}

int32_t ba_tokenizer_vocab_size(const ba_tokenizer *tok)
{
    return tok ? tok->ops->vocab_size(tok->impl) : 0;
}

ba_status ba_tokenizer_encode(const ba_tokenizer *tok, const char *text, size_t len,
                              int32_t **ids, size_t *n_ids, ba_error *err)
{
    if (!tok || !ids || !n_ids || (!text && len > 0))
        return ba_fail(err, BA_ERR_USAGE, "tokenizer encode: missing tokenizer, text or output");
    return tok->ops->encode(tok->impl, text ? text : "", len, ids, n_ids, err);
}

ba_status ba_tokenizer_encode_words(const ba_tokenizer *tok, char *const *words, size_t n_words,
                                    int32_t **ids, size_t *n_ids, size_t *word_end,
                                    ba_error *err)
{
    if (!tok || !ids || !n_ids || (n_words > 0 && (!words || !word_end)))
        return ba_fail(err, BA_ERR_USAGE,
                       "tokenizer encode_words: missing tokenizer, words or output");
    for (size_t w = 0; w < n_words; w++)
        if (!words[w]) return ba_fail(err, BA_ERR_USAGE, "words: word %zu is NULL", w);
    return tok->ops->encode_words(tok->impl, words, n_words, ids, n_ids, word_end, err);
}

static ba_status decode(const ba_tokenizer *tok, const int32_t *ids, size_t n_ids, bool raw,
                        char **text, size_t *len, ba_error *err)
{
    if (!tok || !text || !len || (n_ids > 0 && !ids))
        return ba_fail(err, BA_ERR_USAGE, "tokenizer decode: missing tokenizer, ids or output");
    *text = NULL;
    *len = 0;
    if (!tok->ops->decode)
        return ba_fail(err, BA_ERR_USAGE, "tokenizer decode: not implemented for \"%s\"",
                       tok->ops->kind);
    return tok->ops->decode(tok->impl, ids, n_ids, raw, text, len, err);
}

ba_status ba_tokenizer_decode(const ba_tokenizer *tok, const int32_t *ids, size_t n_ids,
                              char **text, size_t *len, ba_error *err)
{
    return decode(tok, ids, n_ids, false, text, len, err);
}

ba_status ba_tokenizer_decode_bytes(const ba_tokenizer *tok, const int32_t *ids, size_t n_ids,
                                    char **text, size_t *len, ba_error *err)
{
    return decode(tok, ids, n_ids, true, text, len, err);
}

/* Python's UTF-8 decoder with errors="replace" at s[0, n) (n >= 1): the
 * number of bytes it takes, and whether they form one valid character (else
 * they are the maximal prefix of a valid sequence, one U+FFFD). */
size_t ba_utf8_maximal_subpart(const unsigned char *s, size_t n, bool *valid)
{
    unsigned char c = s[0];
    *valid = c < 0x80;
    if (c < 0x80) return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 1;
    }
    if (n < 2 || s[1] < lo || s[1] > hi) return 1;
    size_t k = 2;
    while (k < len && k < n && s[k] >= 0x80 && s[k] <= 0xBF) k++;
    *valid = k == len;
    return k;
}
