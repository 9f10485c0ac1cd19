/* test_tokenizer_gpt2.c — GPT-2 byte-level BPE.
 *
 * Against independent references: the ids of six Narratives stories
 * produced by the r50k_base encoding of the `gpt-tokenizer` package
 * (shared/data/reference/tokens), and token strings of GPT-2's own
 * encoder.json for hand-checked cases of the pre-tokeniser. The fast (heap)
 * merger is compared with the plain quadratic one; the word API with
 * encoding the joined text; the tiny trainer with its definition (and, in
 * tests/cmake/tokenizer.cmake, with a Python re-implementation reading the
 * files this test leaves in <build>/tokenizer-oracle). */
#include "test_util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../../src/lm/tokenizer_bpe.h"
#include "brainalign/lm/tokenizer.h"

static const char *const STORIES[] = {"bigbang", "black", "lucy", "pieman", "santa",
                                      "shapessocial"};
#define N_STORIES (sizeof STORIES / sizeof STORIES[0])

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static ba_tokenizer *load_or_fail(const char *dir)
{
    ba_error err;
    ba_error_clear(&err);
    ba_tokenizer *tok = NULL;
    if (ba_tokenizer_load(dir, &tok, &err) != BA_OK) fail_msg("load %s: %s", dir, err.message);
    return tok;
}

static ba_tokenizer *load_gpt2(void)
{
    return load_or_fail(ba_test_data_path("gpt2-tokenizer"));
}

static void encode_or_fail(const ba_tokenizer *tok, const char *text, size_t len, int32_t **ids,
                           size_t *n)
{
    ba_error err;
    ba_error_clear(&err);
    if (ba_tokenizer_encode(tok, text, len, ids, n, &err) != BA_OK)
        fail_msg("encode: %s", err.message);
}

/* The reference ids of a story: text and ids (malloc'd). */
static void read_reference(const char *story, char **text, int32_t **ids, size_t *n)
{
    char rel[256];
    snprintf(rel, sizeof rel, "reference/tokens/%s.gpt2.json", story);
    json_error_t jerr;
    json_t *root = json_load_file(ba_test_data_path(rel), 0, &jerr);
    if (!root) fail_msg("%s: %s", rel, jerr.text);
    const json_t *jt = json_object_get(root, "text"), *jids = json_object_get(root, "ids");
    assert_true(json_is_string(jt) && json_is_array(jids));
    *text = strdup(json_string_value(jt));
    *n = json_array_size(jids);
    *ids = malloc((*n ? *n : 1) * sizeof **ids);
    for (size_t i = 0; i < *n; i++)
        (*ids)[i] = (int32_t)json_integer_value(json_array_get(jids, i));
    json_decref(root);
}

/* First column of align.csv (split at the first comma). */
static char **read_words(const char *story, size_t *n_words)
{
    char rel[256];
    snprintf(rel, sizeof rel, "narratives/stimuli/%s/align.csv", story);
    char *data = ba_test_read_file(ba_test_data_path(rel), NULL);
    size_t cap = 1024, n = 0;
    char **words = malloc(cap * sizeof *words);
    for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
        char *comma = strchr(line, ',');
        if (comma) *comma = '\0';
        if (n == cap) words = realloc(words, (cap *= 2) * sizeof *words);
        words[n++] = strdup(line);
    }
    free(data);
    *n_words = n;
    return words;
}

static void free_words(char **words, size_t n)
{
    for (size_t i = 0; i < n; i++) free(words[i]);
    free(words);
}

static void assert_same_ids(const int32_t *got, size_t n_got, const int32_t *want, size_t n_want,
                            const char *what)
{
    size_t n = n_got < n_want ? n_got : n_want;
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i])
            fail_msg("%s: token %zu is %d, expected %d", what, i, (int)got[i], (int)want[i]);
    if (n_got != n_want) fail_msg("%s: %zu tokens, expected %zu", what, n_got, n_want);
}

/* ------------------------------------------------------------------------ */

static void test_reference_stories(void **state)
{
    (void)state;
    ba_tokenizer *tok = load_gpt2();
    assert_string_equal(ba_tokenizer_kind(tok), "gpt2-bpe");
    assert_int_equal(ba_tokenizer_vocab_size(tok), 50257);
    for (size_t s = 0; s < N_STORIES; s++) {
        char *text;
        int32_t *want, *got, *plain;
        size_t n_want, n_got, n_plain;
        read_reference(STORIES[s], &text, &want, &n_want);
        encode_or_fail(tok, text, strlen(text), &got, &n_got);
        assert_same_ids(got, n_got, want, n_want, STORIES[s]);
        ba_error err;
        assert_int_equal(ba_bpe_encode_reference(tok, text, strlen(text), &plain, &n_plain, &err),
                         BA_OK);
        assert_same_ids(plain, n_plain, want, n_want, "reference merger");
        char *back;
        size_t back_len;
        assert_int_equal(ba_tokenizer_decode(tok, got, n_got, &back, &back_len, &err), BA_OK);
        assert_int_equal(back_len, strlen(text));
        assert_memory_equal(back, text, back_len);
        free(back);
        free(plain);
        free(got);
        free(want);
        free(text);
    }
    ba_tokenizer_destroy(tok);
}

/* ~12,000 words (every reference story twice) in well under a second. */
static void test_encoding_speed(void **state)
{
    (void)state;
    ba_tokenizer *tok = load_gpt2();
    size_t cap = 1 << 20, len = 0, words = 0;
    char *all = malloc(cap);
    for (int round = 0; round < 2; round++)
        for (size_t s = 0; s < N_STORIES; s++) {
            char *text;
            int32_t *ids;
            size_t n;
            read_reference(STORIES[s], &text, &ids, &n);
            size_t tl = strlen(text);
            assert_true(len + tl + 2 < cap);
            all[len++] = ' ';
            memcpy(all + len, text, tl);
            len += tl;
            for (size_t i = 0; i < tl; i++) words += text[i] == ' ';
            free(text);
            free(ids);
        }
    double t0 = seconds_now();
    int32_t *ids;
    size_t n;
    encode_or_fail(tok, all, len, &ids, &n);
    double dt = seconds_now() - t0;
    printf("# encoded %zu words (%zu bytes) into %zu tokens in %.4f s\n", words, len, n, dt);
    assert_true(dt < 1.0);
    free(ids);

    /* one pathological 300 kB pre-token: the heap merger stays near-linear */
    size_t big = 300000;
    char *letters = malloc(big);
    for (size_t i = 0; i < big; i++) letters[i] = "abcdefghij"[(i * 7 + i / 13) % 10];
    t0 = seconds_now();
    encode_or_fail(tok, letters, big, &ids, &n);
    dt = seconds_now() - t0;
    printf("# one %zu-byte pre-token into %zu tokens in %.4f s\n", big, n, dt);
    assert_true(dt < 2.0);
    free(ids);
    free(letters);
    free(all);
    ba_tokenizer_destroy(tok);
}

/* ------------------------------------------------------------------------ */
/* Word API                                                                  */

static void check_words(const ba_tokenizer *tok, char **words, size_t n_words, const char *what)
{
    ba_error err;
    ba_error_clear(&err);
    int32_t *ids;
    size_t n_ids;
    size_t *word_end = malloc((n_words ? n_words : 1) * sizeof *word_end);
    if (ba_tokenizer_encode_words(tok, words, n_words, &ids, &n_ids, word_end, &err) != BA_OK)
        fail_msg("%s: encode_words: %s", what, err.message);
    /* same ids as the joined text */
    size_t total = 0;
    for (size_t w = 0; w < n_words; w++) total += strlen(words[w]) + 1;
    char *joined = malloc(total + 1);
    size_t at = 0;
    for (size_t w = 0; w < n_words; w++) {
        if (w) joined[at++] = ' ';
        memcpy(joined + at, words[w], strlen(words[w]));
        at += strlen(words[w]);
    }
    int32_t *whole;
    size_t n_whole;
    encode_or_fail(tok, joined, at, &whole, &n_whole);
    assert_same_ids(ids, n_ids, whole, n_whole, what);
    /* spans partition the ids, every word has a token, and each word's
     * tokens are what the word (with its leading space) encodes to alone */
    size_t start = 0;
    char buf[4096];
    for (size_t w = 0; w < n_words; w++) {
        if (word_end[w] <= start) fail_msg("%s: word %zu ('%s') has no token", what, w, words[w]);
        snprintf(buf, sizeof buf, "%s%s", w ? " " : "", words[w]);
        int32_t *alone;
        size_t n_alone;
        encode_or_fail(tok, buf, strlen(buf), &alone, &n_alone);
        assert_same_ids(ids + start, word_end[w] - start, alone, n_alone, buf);
        free(alone);
        start = word_end[w];
    }
    assert_int_equal(start, n_ids);
    free(whole);
    free(joined);
    free(ids);
    free(word_end);
}

static void test_words_of_stories(void **state)
{
    (void)state;
    ba_tokenizer *tok = load_gpt2();
    for (size_t s = 0; s < N_STORIES; s++) {
        size_t n_words;
        char **words = read_words(STORIES[s], &n_words);
        assert_true(n_words > 100);
        check_words(tok, words, n_words, STORIES[s]);
        /* and the joined words are the reference text, with its ids */
        char *text;
        int32_t *want;
        size_t n_want;
        read_reference(STORIES[s], &text, &want, &n_want);
        size_t *word_end = malloc(n_words * sizeof *word_end);
        int32_t *ids;
        size_t n_ids;
        ba_error err;
        assert_int_equal(ba_tokenizer_encode_words(tok, words, n_words, &ids, &n_ids, word_end,
                                                   &err),
                         BA_OK);
        assert_same_ids(ids, n_ids, want, n_want, STORIES[s]);
        free(ids);
        free(word_end);
        free(text);
        free(want);
        free_words(words, n_words);
    }
    ba_tokenizer_destroy(tok);
}

static void test_words_edge_cases(void **state)
{
    (void)state;
    ba_tokenizer *tok = load_gpt2();
    char *odd[] = {"Hello", "world’s", "12", "end.", "café", "😀", "x", "  ", "it's", "’"};
    check_words(tok, odd, sizeof odd / sizeof odd[0], "odd words");
    char *one[] = {"alone"};
    check_words(tok, one, 1, "one word");
    /* no words: no ids */
    int32_t *ids;
    size_t n_ids = 99;
    ba_error err;
    assert_int_equal(ba_tokenizer_encode_words(tok, NULL, 0, &ids, &n_ids, NULL, &err), BA_OK);
    assert_int_equal(n_ids, 0);
    free(ids);
    /* an empty first word has no token: refused, naming it */
    char *empty_first[] = {"", "b"};
    size_t word_end[2];
    assert_int_equal(ba_tokenizer_encode_words(tok, empty_first, 2, &ids, &n_ids, word_end, &err),
                     BA_ERR_VALUE);
    assert_non_null(strstr(err.message, "word 0"));
    /* an empty later word keeps the separating space as its token */
    char *empty_mid[] = {"a", "", "b"};
    check_words(tok, empty_mid, 3, "empty middle word");
    ba_tokenizer_destroy(tok);
}

/* ------------------------------------------------------------------------ */
/* Pre-tokenisation and edge cases                                           */

/* Encode text, then check that the tokens' bytes, in order, fall exactly
 * into the expected pre-tokens (no token crosses a pre-token boundary) and
 * that the fast and the reference mergers agree. */
static void expect_pretokens(const ba_tokenizer *tok, const char *text,
                             const char *const *pieces, size_t n_pieces)
{
    int32_t *ids, *plain;
    size_t n, n_plain;
    ba_error err;
    encode_or_fail(tok, text, strlen(text), &ids, &n);
    assert_int_equal(ba_bpe_encode_reference(tok, text, strlen(text), &plain, &n_plain, &err),
                     BA_OK);
    assert_same_ids(ids, n, plain, n_plain, text);
    size_t piece = 0, used = 0; /* bytes of pieces[piece] matched so far */
    for (size_t i = 0; i < n; i++) {
        char *bytes;
        size_t len;
        assert_int_equal(ba_tokenizer_decode_bytes(tok, ids + i, 1, &bytes, &len, &err), BA_OK);
        if (piece >= n_pieces) fail_msg("'%s': more tokens than pre-tokens", text);
        const char *p = pieces[piece];
        if (used + len > strlen(p) || memcmp(p + used, bytes, len) != 0)
            fail_msg("'%s': token %zu ('%s') does not continue pre-token %zu ('%s')", text, i,
                     bytes, piece, p);
        used += len;
        if (used == strlen(p)) { piece++; used = 0; }
        free(bytes);
    }
    if (piece != n_pieces) fail_msg("'%s': %zu pre-tokens, expected %zu", text, piece, n_pieces);
    free(ids);
    free(plain);
}

#define EXPECT_PRETOKENS(tok, text, ...)                                                       \
    do {                                                                                       \
        const char *const pieces_[] = {__VA_ARGS__};                                           \
        expect_pretokens(tok, text, pieces_, sizeof pieces_ / sizeof pieces_[0]);              \
    } while (0)

static void test_pretokenizer(void **state)
{
    (void)state;
    ba_tokenizer *tok = load_gpt2();
    EXPECT_PRETOKENS(tok, "a  b", "a", " ", " b");
    EXPECT_PRETOKENS(tok, "  leading", " ", " leading");
    EXPECT_PRETOKENS(tok, "trailing  ", "trailing", "  ");
    EXPECT_PRETOKENS(tok, "x   y", "x", "  ", " y");
    EXPECT_PRETOKENS(tok, "line1\nline2\r\n", "line", "1", "\n", "line", "2", "\r\n");
    EXPECT_PRETOKENS(tok, "tab\there", "tab", "\t", "here");
    EXPECT_PRETOKENS(tok, "3.14 and 12345", "3", ".", "14", " and", " 12345");
    EXPECT_PRETOKENS(tok, "they'll we've I'd she's", "they", "'ll", " we", "'ve", " I", "'d",
                     " she", "'s");
    EXPECT_PRETOKENS(tok, "THEY'LL", "THEY", "'", "LL"); /* contractions are lower case only */
    EXPECT_PRETOKENS(tok, "café naïve Ünïcödé", "café", " naïve", " Ünïcödé");
    EXPECT_PRETOKENS(tok, "I ❤ 😀!", "I", " ❤", " 😀!");
    EXPECT_PRETOKENS(tok, "你好，世界", "你好", "，", "世界");
    EXPECT_PRETOKENS(tok, "What’s up", "What", "’", "s", " up");
    EXPECT_PRETOKENS(tok, "a _b", "a", " _", "b");
    EXPECT_PRETOKENS(tok, "end.\n\n", "end", ".", "\n\n");
    ba_tokenizer_destroy(tok);
}

/* Expected tokens given as GPT-2 token strings, looked up in encoder.json. */
static void expect_tokens(const ba_tokenizer *tok, const json_t *encoder, const char *text,
                          const char *const *tokens, size_t n_tokens)
{
    int32_t *ids;
    size_t n;
    encode_or_fail(tok, text, strlen(text), &ids, &n);
    int32_t want[64];
    assert_true(n_tokens <= 64);
    for (size_t i = 0; i < n_tokens; i++) {
        const json_t *id = json_object_get(encoder, tokens[i]);
        if (!id) fail_msg("encoder.json has no token '%s'", tokens[i]);
        want[i] = (int32_t)json_integer_value(id);
    }
    assert_same_ids(ids, n, want, n_tokens, text);
    free(ids);
}

#define EXPECT_TOKENS(tok, enc, text, ...)                                                     \
    do {                                                                                       \
        const char *const tokens_[] = {__VA_ARGS__};                                           \
        expect_tokens(tok, enc, text, tokens_, sizeof tokens_ / sizeof tokens_[0]);            \
    } while (0)

static void test_known_tokens(void **state)
{
    (void)state;
    ba_tokenizer *tok = load_gpt2();
    json_error_t jerr;
    json_t *enc = json_load_file(ba_test_data_path("gpt2-tokenizer/encoder.json"), 0, &jerr);
    assert_non_null(enc);
    EXPECT_TOKENS(tok, enc, "Hello world", "Hello", "Ġworld");
    EXPECT_TOKENS(tok, enc, "don't stop", "don", "'t", "Ġstop");
    EXPECT_TOKENS(tok, enc, "I'm", "I", "'m");
    EXPECT_TOKENS(tok, enc, "hello\n\nworld", "hello", "Ċ", "Ċ", "world");
    EXPECT_TOKENS(tok, enc, "\n\n", "ĊĊ");
    EXPECT_TOKENS(tok, enc, "x   y", "x", "Ġ", "Ġ", "Ġy");
    EXPECT_TOKENS(tok, enc, " 123", "Ġ123");
    EXPECT_TOKENS(tok, enc, "What’s", "What", "âĢ", "Ļ", "s");
    json_decref(enc);
    ba_tokenizer_destroy(tok);
}

static void test_empty_and_invalid(void **state)
{
    (void)state;
    ba_tokenizer *tok = load_gpt2();
    ba_error err;
    int32_t *ids = NULL;
    size_t n = 99;
    assert_int_equal(ba_tokenizer_encode(tok, "", 0, &ids, &n, &err), BA_OK);
    assert_int_equal(n, 0);
    assert_non_null(ids);
    free(ids);
    assert_int_equal(ba_tokenizer_encode(tok, NULL, 0, &ids, &n, &err), BA_OK);
    assert_int_equal(n, 0);
    free(ids);
    /* a NUL byte inside the text is text like any other */
    encode_or_fail(tok, "a\0b", 3, &ids, &n);
    assert_true(n >= 2);
    free(ids);
    /* invalid UTF-8 is refused, naming the byte offset */
    struct { const char *text; size_t len; const char *where; } bad[] = {
        {"abc\xff", 4, "byte 3"},          /* not a UTF-8 byte */
        {"ab\xc0\xaf", 4, "byte 2"},       /* overlong '/' */
        {"x\xed\xa0\x80y", 5, "byte 1"},   /* UTF-16 surrogate */
        {"caf\xc3", 4, "byte 3"},          /* truncated sequence */
        {"\xe2\x80 ", 3, "byte 0"},        /* bad continuation */
        {"\xf4\x90\x80\x80", 4, "byte 0"}, /* past U+10FFFF */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ba_error_clear(&err);
        ids = NULL;
        assert_int_equal(ba_tokenizer_encode(tok, bad[i].text, bad[i].len, &ids, &n, &err),
                         BA_ERR_VALUE);
        assert_null(ids);
        if (!strstr(err.message, bad[i].where) || !strstr(err.message, "UTF-8"))
            fail_msg("case %zu: message '%s' should name %s", i, err.message, bad[i].where);
    }
    char *w[] = {"ok", "bad\xff"};
    size_t word_end[2];
    assert_int_equal(ba_tokenizer_encode_words(tok, w, 2, &ids, &n, word_end, &err),
                     BA_ERR_VALUE);
    /* decode refuses ids outside the vocabulary */
    int32_t out_of_range[] = {5, 50257};
    char *text;
    size_t len;
    assert_int_equal(ba_tokenizer_decode(tok, out_of_range, 2, &text, &len, &err), BA_ERR_VALUE);
    assert_non_null(strstr(err.message, "50257"));
    ba_tokenizer_destroy(tok);
}

/* Random strings built from awkward pieces: the fast merger equals the
 * reference one and decoding gives the text back. */
static void test_fast_equals_reference_fuzz(void **state)
{
    (void)state;
    ba_tokenizer *tok = load_gpt2();
    static const char *const parts[] = {
        " ", "  ", "\n", "\n\n", "\t", "the", " the", "'s", "'ll", "’", "é", "Ü", "😀", "0",
        "123", ".", "!!", "?", "_", "naïve", "ing", "a", "b", "qqqqqq", "你好", "\r\n", "-", "ĠĠ"};
    const size_t n_parts = sizeof parts / sizeof parts[0];
    unsigned long long rng = 88172645463325252ULL;
    char text[4096];
    for (int trial = 0; trial < 300; trial++) {
        size_t len = 0;
        int n = 1 + (int)(trial % 60);
        for (int k = 0; k < n; k++) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            const char *p = parts[rng % n_parts];
            memcpy(text + len, p, strlen(p));
            len += strlen(p);
        }
        int32_t *fast, *plain;
        size_t n_fast, n_plain;
        ba_error err;
        encode_or_fail(tok, text, len, &fast, &n_fast);
        assert_int_equal(ba_bpe_encode_reference(tok, text, len, &plain, &n_plain, &err), BA_OK);
        assert_same_ids(fast, n_fast, plain, n_plain, "fuzz");
        char *back;
        size_t back_len;
        assert_int_equal(ba_tokenizer_decode(tok, fast, n_fast, &back, &back_len, &err), BA_OK);
        assert_int_equal(back_len, len);
        assert_memory_equal(back, text, len);
        free(back);
        free(fast);
        free(plain);
    }
    /* a long single pre-token too */
    char letters[5000];
    for (size_t i = 0; i < sizeof letters; i++) letters[i] = "aabbbcab"[(i * 5 + i / 7) % 8];
    int32_t *fast, *plain;
    size_t n_fast, n_plain;
    ba_error err;
    encode_or_fail(tok, letters, sizeof letters, &fast, &n_fast);
    assert_int_equal(ba_bpe_encode_reference(tok, letters, sizeof letters, &plain, &n_plain, &err),
                     BA_OK);
    assert_same_ids(fast, n_fast, plain, n_plain, "long pre-token");
    free(fast);
    free(plain);
    ba_tokenizer_destroy(tok);
}

/* ------------------------------------------------------------------------ */
/* Hugging Face tokenizer.json                                               */

/* Write <dir>/tokenizer.json built from GPT-2's encoder.json + vocab.bpe,
 * merges as "a b" strings or as [a, b] pairs. */
static void write_hf_json(const char *dir, int pairs, int add_prefix_space)
{
    json_error_t jerr;
    json_t *vocab = json_load_file(ba_test_data_path("gpt2-tokenizer/encoder.json"), 0, &jerr);
    assert_non_null(vocab);
    char *bpe = ba_test_read_file(ba_test_data_path("gpt2-tokenizer/vocab.bpe"), NULL);
    json_t *merges = json_array();
    int first = 1;
    for (char *line = strtok(bpe, "\n"); line; line = strtok(NULL, "\n"), first = 0) {
        if (first && strncmp(line, "#version", 8) == 0) continue;
        if (!pairs) {
            json_array_append_new(merges, json_string(line));
        } else {
            char *space = strchr(line, ' ');
            assert_non_null(space);
            *space = '\0';
            json_array_append_new(merges, json_pack("[ss]", line, space + 1));
        }
    }
    free(bpe);
    json_t *root = json_pack(
        "{s:s, s:[{s:i, s:s, s:b}], s:n, s:{s:s, s:b, s:b}, s:{s:s, s:n, s:o, s:o}}", "version",
        "1.0", "added_tokens", "id", 50256, "content", "<|endoftext|>", "special", 1, "normalizer",
        "pre_tokenizer", "type", "ByteLevel", "add_prefix_space", add_prefix_space,
        "trim_offsets", 1, "model", "type", "BPE", "dropout", "vocab", vocab, "merges", merges);
    assert_non_null(root);
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    assert_int_equal(json_dump_file(root, path, JSON_COMPACT), 0);
    json_decref(root);
}

static void test_hf_tokenizer_json(void **state)
{
    (void)state;
    for (int pairs = 0; pairs <= 1; pairs++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", ba_test_tmpdir());
        write_hf_json(dir, pairs, 0);
        ba_tokenizer *tok = load_or_fail(dir);
        assert_string_equal(ba_tokenizer_kind(tok), "gpt2-bpe");
        assert_int_equal(ba_tokenizer_vocab_size(tok), 50257);
        char *text;
        int32_t *want, *got;
        size_t n_want, n_got;
        read_reference("pieman", &text, &want, &n_want);
        encode_or_fail(tok, text, strlen(text), &got, &n_got);
        assert_same_ids(got, n_got, want, n_want, pairs ? "tokenizer.json, pair merges"
                                                        : "tokenizer.json, string merges");
        free(got);
        free(want);
        free(text);
        ba_tokenizer_destroy(tok);
    }
    /* add_prefix_space would change every id: refused, naming the file */
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", ba_test_tmpdir());
    write_hf_json(dir, 0, 1);
    ba_tokenizer *tok = NULL;
    ba_error err;
    assert_int_equal(ba_tokenizer_load(dir, &tok, &err), BA_ERR_FORMAT);
    assert_null(tok);
    assert_non_null(strstr(err.message, "tokenizer.json"));
    assert_non_null(strstr(err.message, "add_prefix_space"));
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

/* A vocab.json with the 256 byte tokens (ids 0..255 in GPT-2's order) and
 * `extra` tokens after them; `skip_byte` >= 0 leaves one byte out. */
static void write_byte_vocab(const char *dir, const char *const *extra, size_t n_extra,
                             int skip_byte)
{
    uint32_t cp[256];
    uint8_t order[256];
    ba_bpe_byte_map(cp, order);
    json_t *v = json_object();
    int32_t id = 0;
    for (int k = 0; k < 256; k++) {
        if (order[k] == skip_byte) continue;
        char u[3] = {0};
        if (cp[order[k]] < 0x80) u[0] = (char)cp[order[k]];
        else { u[0] = (char)(0xC0 | (cp[order[k]] >> 6)); u[1] = (char)(0x80 | (cp[order[k]] & 0x3F)); }
        json_object_set_new(v, u, json_integer(id++));
    }
    for (size_t i = 0; i < n_extra; i++) json_object_set_new(v, extra[i], json_integer(id++));
    char path[4096];
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    assert_int_equal(json_dump_file(v, path, JSON_COMPACT), 0);
    json_decref(v);
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    ba_test_write_file(path, text, strlen(text));
}

/* Loading dir fails with `code` and a message containing both needles. */
static void expect_load_error(const char *dir, ba_status code, const char *needle1,
                              const char *needle2)
{
    ba_tokenizer *tok = NULL;
    ba_error err;
    ba_error_clear(&err);
    ba_status rc = ba_tokenizer_load(dir, &tok, &err);
    if (rc != code)
        fail_msg("%s: status %s, expected %s (%s)", dir, ba_status_name(rc),
                 ba_status_name(code), err.message);
    assert_null(tok);
    if (!strstr(err.message, needle1) || (needle2 && !strstr(err.message, needle2)))
        fail_msg("message '%s' should contain '%s' and '%s'", err.message, needle1,
                 needle2 ? needle2 : "");
}

/* The dispatcher sends SentencePiece models to their family. */
static void test_dispatch_sentencepiece(void **state)
{
    (void)state;
    ba_tokenizer *tok = load_or_fail(ba_test_data_path("llama-tokenizer"));
    assert_string_equal(ba_tokenizer_kind(tok), "sentencepiece-bpe");
    assert_int_equal(ba_tokenizer_vocab_size(tok), 32000);
    int32_t bad = 32000;
    char *text;
    size_t len;
    ba_error err;
    assert_int_equal(ba_tokenizer_decode(tok, &bad, 1, &text, &len, &err), BA_ERR_VALUE);
    assert_non_null(strstr(err.message, "outside [0, 32000)"));
    ba_tokenizer_destroy(tok);
}

static void test_load_errors(void **state)
{
    (void)state;
    char dir[1024];
    expect_load_error("/nonexistent/brainalign-tokenizer", BA_ERR_IO,
                      "/nonexistent/brainalign-tokenizer", NULL);

    snprintf(dir, sizeof dir, "%s", ba_test_tmpdir());
    expect_load_error(dir, BA_ERR_IO, "no tokenizer found", NULL);

    write_byte_vocab(dir, NULL, 0, -1); /* vocab.json without merges.txt */
    expect_load_error(dir, BA_ERR_IO, "merges.txt", "missing");

    write_text(dir, "merges.txt", "#version: 0.2\nĠ zz\n");
    expect_load_error(dir, BA_ERR_FORMAT, "merges.txt line 2", "'zz'");

    write_text(dir, "merges.txt", "#version: 0.2\na b\n");
    expect_load_error(dir, BA_ERR_FORMAT, "merges.txt line 2", "makes 'ab'");

    write_text(dir, "merges.txt", "#version: 0.2\nab\n");
    expect_load_error(dir, BA_ERR_FORMAT, "merges.txt line 2", "two tokens");

    const char *const ab[] = {"ab"};
    write_byte_vocab(dir, ab, 1, -1); /* now valid */
    write_text(dir, "merges.txt", "#version: 0.2\na b\n");
    ba_tokenizer *tok = load_or_fail(dir);
    assert_int_equal(ba_tokenizer_vocab_size(tok), 257);
    int32_t *ids;
    size_t n;
    encode_or_fail(tok, "abab", 4, &ids, &n);
    assert_int_equal(n, 2); /* "ab" "ab": the pair (ab, ab) has no merge */
    assert_int_equal(ids[0], 256);
    assert_int_equal(ids[1], 256);
    ba_tokenizer_destroy(tok);
    free(ids);

    /* two merges may make the same token ("ab c", "a bc"); "a" is id 64 */
    const char *const abc[] = {"ab", "bc", "abc", "cd", "bcd"};
    write_byte_vocab(dir, abc, 5, -1);
    write_text(dir, "merges.txt", "#version: 0.2\nc d\nb cd\na b\nb c\nab c\na bc\n");
    tok = load_or_fail(dir);
    const char *texts[] = {"abc", "bcd", "abcd", "abcabc"};
    const int32_t want[][2] = {{258, -1}, {260, -1}, {64, 260}, {258, 258}};
    for (int k = 0; k < 4; k++) {
        int32_t *plain;
        size_t n_plain;
        ba_error err;
        encode_or_fail(tok, texts[k], strlen(texts[k]), &ids, &n);
        assert_int_equal(ba_bpe_encode_reference(tok, texts[k], strlen(texts[k]), &plain,
                                                 &n_plain, &err),
                         BA_OK);
        assert_same_ids(ids, n, plain, n_plain, texts[k]);
        assert_same_ids(ids, n, want[k], want[k][1] < 0 ? 1 : 2, texts[k]);
        free(ids);
        free(plain);
    }
    ba_tokenizer_destroy(tok);

    write_byte_vocab(dir, NULL, 0, 'q'); /* byte 'q' has no token */
    write_text(dir, "merges.txt", "#version: 0.2\n");
    expect_load_error(dir, BA_ERR_FORMAT, "vocab.json", "byte 0x71");

    write_text(dir, "vocab.json", "{\"a\": 0, \"b\": 2}");
    expect_load_error(dir, BA_ERR_FORMAT, "vocab.json", "no token has id 1");

    write_text(dir, "vocab.json", "{\"a\": 0, \"b\": 0}");
    expect_load_error(dir, BA_ERR_FORMAT, "vocab.json", "id 0 is given to both");

    write_text(dir, "vocab.json", "{\"a\": 0, \"b\": \"one\"}");
    expect_load_error(dir, BA_ERR_FORMAT, "vocab.json", "'b'");

    write_text(dir, "vocab.json", "{\"a\": 0, \"b\": ");
    expect_load_error(dir, BA_ERR_FORMAT, "vocab.json", "malformed JSON");

    write_text(dir, "vocab.json", "[1, 2]");
    expect_load_error(dir, BA_ERR_FORMAT, "vocab.json", "object");

    snprintf(dir, sizeof dir, "%s", ba_test_tmpdir());
    write_text(dir, "tokenizer.json", "{\"model\": {\"type\": \"BPE\", ");
    expect_load_error(dir, BA_ERR_FORMAT, "tokenizer.json", "malformed JSON");
    write_text(dir, "tokenizer.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}");
    expect_load_error(dir, BA_ERR_FORMAT, "tokenizer.json", "WordPiece");
    write_text(dir, "tokenizer.json",
               "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", "
               "\"vocab\": {\"a\": 0}, \"merges\": [\"a\"]}}");
    expect_load_error(dir, BA_ERR_FORMAT, "tokenizer.json", NULL);
    write_text(dir, "tokenizer.json",
               "{\"pre_tokenizer\": {\"type\": \"Whitespace\"}, \"model\": {\"type\": \"BPE\", "
               "\"vocab\": {\"a\": 0}, \"merges\": []}}");
    expect_load_error(dir, BA_ERR_FORMAT, "tokenizer.json", "neither byte-level");
}

/* ------------------------------------------------------------------------ */
/* Tiny vocabulary (synthetic study)                                         */

static const char *const TINY_CORPUS[] = {
    "the cat sat on the mat. the cat ate the rat.",
    "The dog’s bone was under the mat; the dog sat there, and the cat sat too.",
    "A café served 12 cakes and 345 pies to the cat and the dog.",
    "I'm sure they'll say we've done it, and it's done. the cat the cat the cat",
    "a\n \nb\n \nc\n \nd\n \ne\n \nf\n \ng\n \nh\n \ni",
};
#define N_TINY (sizeof TINY_CORPUS / sizeof TINY_CORPUS[0])
#define TINY_MERGES 80

/* The trained files, and an input description for the Python oracle. */
static const char *tiny_oracle_dir(void)
{
    static char dir[1024];
    snprintf(dir, sizeof dir, "%s/tokenizer-oracle", BA_BINARY_DIR);
    mkdir(dir, 0777);
    json_t *in = json_pack("{s:i, s:[]}", "n_merges", TINY_MERGES, "corpus");
    for (size_t i = 0; i < N_TINY; i++)
        json_array_append_new(json_object_get(in, "corpus"), json_string(TINY_CORPUS[i]));
    char path[4200];
    snprintf(path, sizeof path, "%s/oracle_input.json", dir);
    assert_int_equal(json_dump_file(in, path, JSON_INDENT(1)), 0);
    json_decref(in);
    return dir;
}

static size_t n_tokens_of(const ba_tokenizer *tok, const char *text)
{
    int32_t *ids;
    size_t n;
    encode_or_fail(tok, text, strlen(text), &ids, &n);
    free(ids);
    return n;
}

static void test_tiny_vocab(void **state)
{
    (void)state;
    const char *dir = tiny_oracle_dir();
    ba_error err;
    ba_error_clear(&err);
    if (ba_bpe_write_tiny_vocab(dir, TINY_CORPUS, N_TINY, TINY_MERGES, &err) != BA_OK)
        fail_msg("train: %s", err.message);
    ba_tokenizer *tok = load_or_fail(dir);
    assert_string_equal(ba_tokenizer_kind(tok), "gpt2-bpe");
    int32_t vocab = ba_tokenizer_vocab_size(tok);
    printf("# tiny vocabulary: %d tokens\n", (int)vocab);
    assert_true(vocab > 256 + 1 + TINY_MERGES / 2 && vocab <= 256 + TINY_MERGES + 1);
    /* the last id is <|endoftext|> */
    int32_t eot = vocab - 1;
    char *text;
    size_t len;
    assert_int_equal(ba_tokenizer_decode(tok, &eot, 1, &text, &len, &err), BA_OK);
    assert_string_equal(text, "<|endoftext|>");
    free(text);
    /* training sentences: ids in range, bytes round-trip, fewer tokens than bytes */
    for (size_t i = 0; i < N_TINY; i++) {
        int32_t *ids;
        size_t n;
        encode_or_fail(tok, TINY_CORPUS[i], strlen(TINY_CORPUS[i]), &ids, &n);
        for (size_t k = 0; k < n; k++) assert_true(ids[k] >= 0 && ids[k] < vocab - 1);
        assert_int_equal(ba_tokenizer_decode(tok, ids, n, &text, &len, &err), BA_OK);
        assert_int_equal(len, strlen(TINY_CORPUS[i]));
        assert_memory_equal(text, TINY_CORPUS[i], len);
        assert_true(n < len);
        free(text);
        free(ids);
    }
    /* frequent words became single tokens, rare ones did not */
    assert_int_equal(n_tokens_of(tok, " the"), 1);
    assert_int_equal(n_tokens_of(tok, " cat"), 1);
    assert_int_equal(n_tokens_of(tok, " sat"), 1);
    assert_int_equal(n_tokens_of(tok, "\n "), 1);
    assert_true(n_tokens_of(tok, " zebra") > 1);
    /* training is deterministic: a second run writes the same bytes */
    char again[1024];
    snprintf(again, sizeof again, "%s", ba_test_tmpdir());
    assert_int_equal(ba_bpe_write_tiny_vocab(again, TINY_CORPUS, N_TINY, TINY_MERGES, &err),
                     BA_OK);
    assert_int_equal(ba_test_system("cmp -s %s/vocab.json %s/vocab.json && cmp -s "
                                    "%s/merges.txt %s/merges.txt",
                                    dir, again, dir, again),
                     0);
    ba_tokenizer_destroy(tok);
}

/* The tiny vocabulary learnt "\n " as one token, so in " ".join(["a\n",
 * "\nb"]) == "a\n \nb" a token covers the end of word 0 and the joining
 * space of word 1: encode_words must refuse, naming both words. */
static void test_words_crossing_boundary(void **state)
{
    (void)state;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", ba_test_tmpdir());
    ba_error err;
    assert_int_equal(ba_bpe_write_tiny_vocab(dir, TINY_CORPUS, N_TINY, TINY_MERGES, &err), BA_OK);
    ba_tokenizer *tok = load_or_fail(dir);
    char *words[] = {"a\n", "\nb"};
    int32_t *ids = NULL;
    size_t n, word_end[2];
    ba_error_clear(&err);
    assert_int_equal(ba_tokenizer_encode_words(tok, words, 2, &ids, &n, word_end, &err),
                     BA_ERR_VALUE);
    assert_null(ids);
    assert_non_null(strstr(err.message, "word 0"));
    assert_non_null(strstr(err.message, "word 1"));
    /* ordinary words are fine with this vocabulary */
    char *fine[] = {"the", "cat", "sat", "on", "the", "mat."};
    check_words(tok, fine, 6, "tiny vocabulary words");
    ba_tokenizer_destroy(tok);
}

static void test_tiny_vocab_edge_cases(void **state)
{
    (void)state;
    ba_error err;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", ba_test_tmpdir());
    /* zero merges: the 256 bytes and <|endoftext|> */
    assert_int_equal(ba_bpe_write_tiny_vocab(dir, TINY_CORPUS, N_TINY, 0, &err), BA_OK);
    ba_tokenizer *tok = load_or_fail(dir);
    assert_int_equal(ba_tokenizer_vocab_size(tok), 257);
    assert_int_equal(n_tokens_of(tok, "the"), 3);
    ba_tokenizer_destroy(tok);
    /* more merges than the corpus allows: stops when every word is one token */
    const char *const small[] = {"ab ab ab"};
    assert_int_equal(ba_bpe_write_tiny_vocab(dir, small, 1, 1000, &err), BA_OK);
    tok = load_or_fail(dir);
    assert_int_equal(ba_tokenizer_vocab_size(tok), 256 + 2 + 1); /* ab, then " ab" */
    assert_int_equal(n_tokens_of(tok, "ab ab"), 2);
    ba_tokenizer_destroy(tok);
    /* bad corpus */
    const char *const bad[] = {"fine", "bad\xff"};
    ba_error_clear(&err);
    assert_int_equal(ba_bpe_write_tiny_vocab(dir, bad, 2, 10, &err), BA_ERR_VALUE);
    assert_non_null(strstr(err.message, "corpus[1]"));
    assert_int_equal(ba_bpe_write_tiny_vocab(dir, small, 1, -1, &err), BA_ERR_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_stories),
        cmocka_unit_test(test_encoding_speed),
        cmocka_unit_test(test_words_of_stories),
        cmocka_unit_test(test_words_edge_cases),
        cmocka_unit_test(test_pretokenizer),
        cmocka_unit_test(test_known_tokens),
        cmocka_unit_test(test_empty_and_invalid),
        cmocka_unit_test(test_fast_equals_reference_fuzz),
        cmocka_unit_test(test_hf_tokenizer_json),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_dispatch_sentencepiece),
        cmocka_unit_test(test_tiny_vocab),
        cmocka_unit_test(test_words_crossing_boundary),
        cmocka_unit_test(test_tiny_vocab_edge_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
