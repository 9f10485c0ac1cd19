/* test_tokenizer_decode.c — ba_tokenizer_decode on the real shared data:
 * the reference ids of six stories (reference/tokens/<story>.{llama,gpt2}
 * .json, from the SentencePiece library and gpt-tokenizer) decode to the
 * story text, decode(encode(text)) == text (also with <s> ... </s> around
 * it for LLaMA), and hand cases of byte pieces, invalid UTF-8, special
 * tokens and the leading-space rule. tests/oracle/tokenizer_decode_oracle.py
 * compares random id lists with the SentencePiece library and Python. */
#include "test_util.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/lm/tokenizer.h"

static const char *const STORIES[] = {"bigbang", "black", "lucy", "pieman", "santa",
                                      "shapessocial"};
#define N_STORIES (sizeof STORIES / sizeof STORIES[0])
#define FFFD "\xEF\xBF\xBD"

static ba_tokenizer *load(const char *rel)
{
    ba_tokenizer *tok = NULL;
    ba_error err;
    ba_error_clear(&err);
    if (ba_tokenizer_load(ba_test_data_path(rel), &tok, &err) != BA_OK)
        fail_msg("load %s: %s", rel, err.message);
    return tok;
}

static void expect_decode(const ba_tokenizer *tok, const int32_t *ids, size_t n, bool raw,
                          const char *want, size_t want_len, const char *what)
{
    char *text = NULL;
    size_t len = 0;
    ba_error err;
    ba_error_clear(&err);
    ba_status rc = raw ? ba_tokenizer_decode_bytes(tok, ids, n, &text, &len, &err)
                       : ba_tokenizer_decode(tok, ids, n, &text, &len, &err);
    if (rc != BA_OK) fail_msg("%s: decode: %s", what, err.message);
    if (len != want_len || memcmp(text, want, len) != 0 || text[len] != '\0') {
        size_t k = 0;
        while (k < len && k < want_len && text[k] == want[k]) k++;
        fail_msg("%s: %zu bytes decoded, %zu expected; first difference at byte %zu: "
                 "\"%.40s\" vs \"%.40s\"",
                 what, len, want_len, k, text + k, want + k);
    }
    free(text);
}

static void check_story(const ba_tokenizer *tok, const char *story, const char *family,
                        int32_t bos, int32_t eos)
{
    char rel[256];
    snprintf(rel, sizeof rel, "reference/tokens/%s.%s.json", story, family);
    const char *path = ba_test_data_path(rel);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) fail_msg("%s: %s", path, jerr.text);
    const char *text = json_string_value(json_object_get(root, "text"));
    json_t *jids = json_object_get(root, "ids");
    if (!text || !json_is_array(jids)) fail_msg("%s: expected {\"text\", \"ids\"}", path);
    size_t n = json_array_size(jids), len = strlen(text);
    int32_t *ids = malloc((n + 2) * sizeof *ids);
    ids[0] = bos;
    for (size_t i = 0; i < n; i++) ids[i + 1] = (int32_t)json_integer_value(json_array_get(jids, i));
    ids[n + 1] = eos;
    char what[300];
    snprintf(what, sizeof what, "%s: reference ids", rel);
    expect_decode(tok, ids + 1, n, false, text, len, what);
    snprintf(what, sizeof what, "%s: reference ids as bytes", rel);
    expect_decode(tok, ids + 1, n, true, text, len, what);
    if (bos >= 0) {
        snprintf(what, sizeof what, "%s: <s> ids </s>", rel);
        expect_decode(tok, ids, n + 2, false, text, len, what);
    }
    /* decode(encode(text)) == text */
    int32_t *enc = NULL;
    size_t n_enc = 0;
    ba_error err;
    ba_error_clear(&err);
    if (ba_tokenizer_encode(tok, text, len, &enc, &n_enc, &err) != BA_OK)
        fail_msg("%s: encode: %s", rel, err.message);
    snprintf(what, sizeof what, "%s: decode(encode(text))", rel);
    expect_decode(tok, enc, n_enc, false, text, len, what);
    free(enc);
    free(ids);
    json_decref(root);
}

static void test_llama_stories(void **state)
{
    (void)state;
    ba_tokenizer *tok = load("llama-tokenizer");
    for (size_t s = 0; s < N_STORIES; s++) check_story(tok, STORIES[s], "llama", 1, 2);
    ba_tokenizer_destroy(tok);
}

static void test_gpt2_stories(void **state)
{
    (void)state;
    ba_tokenizer *tok = load("gpt2-tokenizer");
    for (size_t s = 0; s < N_STORIES; s++) check_story(tok, STORIES[s], "gpt2", -1, -1);
    ba_tokenizer_destroy(tok);
}

/* LLaMA ids: <unk> 0, <s> 1, </s> 2, <0xXX> 3 + XX, "▁the" 278, "▁" 29871. */
#define B(x) (3 + (x))
static void test_llama_hand_cases(void **state)
{
    (void)state;
    ba_tokenizer *tok = load("llama-tokenizer");
    const int32_t euro[] = {1, 278, B(0xE2), B(0x82), B(0xAC)};
    expect_decode(tok, euro, 5, false, "the\xE2\x82\xAC", 6, "the + euro bytes");
    /* a truncated and an invalid sequence: one U+FFFD per byte */
    const int32_t bad[] = {B(0xE2), B(0x82), B(0x41), 278, B(0xFF)};
    expect_decode(tok, bad, 5, false, FFFD FFFD "A the" FFFD, 14, "bad bytes");
    expect_decode(tok, bad, 5, true, "\xE2\x82" "A the\xFF", 8, "bad bytes, raw");
    /* special tokens skipped; the first shown piece loses its "▁" */
    const int32_t special[] = {0, 2, 278, 0, 278, 1};
    expect_decode(tok, special, 6, false, "the the", 7, "special tokens");
    /* a byte piece first keeps its space and the next piece's */
    const int32_t space[] = {B(0x20), 278};
    expect_decode(tok, space, 2, false, "  the", 5, "byte space first");
    const int32_t lone[] = {29871, 278};
    expect_decode(tok, lone, 2, false, " the", 4, "lone space piece first");
    expect_decode(tok, NULL, 0, false, "", 0, "no ids");
    /* decode(encode(text)) == text with leading, trailing and lone spaces */
    const char *texts[] = {" the", "  x  ", "\n a", " ", "\t\xF0\x9F\x99\x82 x"};
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
        int32_t *ids = NULL;
        size_t n = 0;
        ba_error e;
        assert_int_equal(ba_tokenizer_encode(tok, texts[t], strlen(texts[t]), &ids, &n, &e), BA_OK);
        expect_decode(tok, ids, n, false, texts[t], strlen(texts[t]), texts[t]);
        free(ids);
    }
    const int32_t out[] = {278, 32000};
    char *text = NULL;
    size_t len;
    ba_error err;
    assert_int_equal(ba_tokenizer_decode(tok, out, 2, &text, &len, &err), BA_ERR_VALUE);
    assert_non_null(strstr(err.message, "token 1 has id 32000"));
    assert_null(text);
    ba_tokenizer_destroy(tok);
}

static void test_gpt2_invalid_utf8(void **state)
{
    (void)state;
    ba_tokenizer *tok = load("gpt2-tokenizer");
    /* the single-byte tokens of E2 82 and "A": E2 82 is the maximal prefix
     * of a valid sequence: one U+FFFD, as Python's errors="replace" */
    int32_t *ids = NULL;
    size_t n = 0;
    ba_error err;
    assert_int_equal(ba_tokenizer_encode(tok, "\xE2\x82\xAC" "A", 4, &ids, &n, &err), BA_OK);
    /* find byte tokens by decoding every id of length one */
    int32_t byte_id[256];
    for (int b = 0; b < 256; b++) byte_id[b] = -1;
    for (int32_t id = 0; id < ba_tokenizer_vocab_size(tok); id++) {
        char *t;
        size_t len;
        assert_int_equal(ba_tokenizer_decode_bytes(tok, &id, 1, &t, &len, &err), BA_OK);
        if (len == 1) byte_id[(unsigned char)t[0]] = id;
        free(t);
    }
    const int32_t bad[] = {byte_id[0xE2], byte_id[0x82], byte_id['A'], byte_id[0xFF],
                           byte_id[0xC0], byte_id[0x80]};
    expect_decode(tok, bad, 6, false, FFFD "A" FFFD FFFD FFFD, 13, "gpt2 bad bytes");
    expect_decode(tok, bad, 6, true, "\xE2\x82" "A\xFF\xC0\x80", 6, "gpt2 bad bytes, raw");
    expect_decode(tok, ids, n, false, "\xE2\x82\xAC" "A", 4, "gpt2 euro");
    free(ids);
    ba_tokenizer_destroy(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_stories),
        cmocka_unit_test(test_gpt2_stories),
        cmocka_unit_test(test_llama_hand_cases),
        cmocka_unit_test(test_gpt2_invalid_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
