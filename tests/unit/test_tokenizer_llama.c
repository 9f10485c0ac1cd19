/* test_tokenizer_llama.c — the SentencePiece BPE family (src/lm/tokenizer_sp.c).
 *
 * Independent references:
 *   - reference/tokens/<story>.llama.json: ids from the SentencePiece
 *     library with LLaMA's tokenizer.model (no BOS), six stories;
 *   - tests/oracle/sp_bpe_oracle.py: a plain Python SentencePiece BPE
 *     encoder (its own CTest checks it against the same reference ids),
 *     for edge cases the stories do not contain; it also writes the
 *     Hugging Face tokenizer.json form of the model;
 *   - known LLaMA ids for a few strings;
 *   - the plain O(n^2) merge loop (ba_sp_encode_reference) for the
 *     priority-queue encoder.
 * Synthetic tokenizer.model files written here (a small protobuf writer)
 * test merge order, unknown characters, user-defined pieces, whitespace
 * options and every kind of corrupt file. */
#include "test_util.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../src/lm/tokenizer_sp.h"
#include "brainalign/lm/tokenizer.h"

static const char *const STORIES[] = {"bigbang", "black", "lucy", "pieman", "santa",
                                      "shapessocial"};
#define N_STORIES (sizeof STORIES / sizeof STORIES[0])
#define SPACE "\xE2\x96\x81"

/* ---------------------------------------------------------------- helpers */

static double seconds_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void open_sp(const char *dir, ba_tokenizer *tok)
{
    ba_error err;
    ba_error_clear(&err);
    if (ba_sp_tokenizer_open(dir, tok, &err) != BA_OK)
        fail_msg("ba_sp_tokenizer_open(%s): %s", dir, err.message);
}

static void close_sp(ba_tokenizer *tok)
{
    tok->ops->destroy(tok->impl);
}

static const char *llama_dir(void)
{
    static char dir[4096];
    snprintf(dir, sizeof dir, "%s", ba_test_data_path("llama-tokenizer"));
    ba_test_data_path("llama-tokenizer/tokenizer.model");
    return dir;
}

static void encode_ok(const ba_tokenizer *tok, const char *text, size_t len, int32_t **ids,
                      size_t *n)
{
    ba_error err;
    ba_error_clear(&err);
    if (tok->ops->encode(tok->impl, text, len, ids, n, &err) != BA_OK)
        fail_msg("encode: %s", err.message);
}

typedef struct {
    char *text;
    int32_t *ids;
    size_t n_ids;
} reference;

static reference read_reference(const char *story)
{
    char rel[256];
    snprintf(rel, sizeof rel, "reference/tokens/%s.llama.json", story);
    const char *path = ba_test_data_path(rel);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) fail_msg("%s: %s", path, jerr.text);
    const char *text = json_string_value(json_object_get(root, "text"));
    json_t *ids = json_object_get(root, "ids");
    if (!text || !json_is_array(ids)) fail_msg("%s: expected {\"text\", \"ids\"}", path);
    reference ref = {strdup(text), malloc((json_array_size(ids) + 1) * sizeof(int32_t)),
                     json_array_size(ids)};
    for (size_t i = 0; i < ref.n_ids; i++)
        ref.ids[i] = (int32_t)json_integer_value(json_array_get(ids, i));
    json_decref(root);
    return ref;
}

static void free_reference(reference *ref)
{
    free(ref->text);
    free(ref->ids);
}

/* Fails with the first differing position and the ids around it. */
static void assert_same_ids(const char *what, const int32_t *got, size_t n_got,
                            const int32_t *want, size_t n_want)
{
    size_t n = n_got < n_want ? n_got : n_want, first = n;
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i]) {
            first = i;
            break;
        }
    if (first == n && n_got == n_want) return;
    size_t lo = first >= 5 ? first - 5 : 0;
    fprintf(stderr, "%s: %zu ids, expected %zu; first difference at position %zu\n", what,
            n_got, n_want, first);
    fprintf(stderr, "  got:     ");
    for (size_t i = lo; i < first + 6 && i < n_got; i++)
        fprintf(stderr, i == first ? "[%d] " : "%d ", got[i]);
    fprintf(stderr, "\n  expected:");
    for (size_t i = lo; i < first + 6 && i < n_want; i++)
        fprintf(stderr, i == first ? " [%d]" : " %d", want[i]);
    fprintf(stderr, "\n");
    fail_msg("%s: ids differ from the reference at position %zu", what, first);
}

static void check_stories(const ba_tokenizer *tok, const char *label)
{
    for (size_t s = 0; s < N_STORIES; s++) {
        reference ref = read_reference(STORIES[s]);
        int32_t *ids;
        size_t n;
        encode_ok(tok, ref.text, strlen(ref.text), &ids, &n);
        char what[128];
        snprintf(what, sizeof what, "%s %s", label, STORIES[s]);
        assert_same_ids(what, ids, n, ref.ids, ref.n_ids);
        free(ids);
        free_reference(&ref);
    }
}

/* First column of align.csv (no header; no quoted fields in Narratives). */
static char **read_words(const char *story, size_t *n_words)
{
    char rel[256];
    snprintf(rel, sizeof rel, "narratives/stimuli/%s/align.csv", story);
    char *csv = ba_test_read_file(ba_test_data_path(rel), NULL);
    size_t cap = 1024, n = 0;
    char **words = malloc(cap * sizeof *words);
    for (char *line = strtok(csv, "\r\n"); line; line = strtok(NULL, "\r\n")) {
        char *comma = strchr(line, ',');
        if (comma) *comma = '\0';
        if (n == cap) words = realloc(words, (cap *= 2) * sizeof *words);
        words[n++] = strdup(line);
    }
    free(csv);
    *n_words = n;
    return words;
}

static void free_words(char **words, size_t n)
{
    for (size_t i = 0; i < n; i++) free(words[i]);
    free(words);
}

/* ----------------------------------------- the real LLaMA tokenizer.model */

static void test_llama_reference_stories(void **state)
{
    (void)state;
    ba_tokenizer tok;
    open_sp(llama_dir(), &tok);
    assert_string_equal(tok.ops->kind, "sentencepiece-bpe");
    assert_int_equal(tok.ops->vocab_size(tok.impl), 32000);
    check_stories(&tok, "tokenizer.model");
    close_sp(&tok);
}

static void test_llama_via_tokenizer_load(void **state)
{
    (void)state;
    ba_error err;
    ba_error_clear(&err);
    ba_tokenizer *tok = NULL;
    if (ba_tokenizer_load(llama_dir(), &tok, &err) != BA_OK)
        fail_msg("ba_tokenizer_load: %s", err.message);
    assert_string_equal(ba_tokenizer_kind(tok), "sentencepiece-bpe");
    assert_int_equal(ba_tokenizer_vocab_size(tok), 32000);
    reference ref = read_reference("pieman");
    int32_t *ids;
    size_t n;
    assert_int_equal(ba_tokenizer_encode(tok, ref.text, strlen(ref.text), &ids, &n, &err), BA_OK);
    assert_same_ids("ba_tokenizer_encode pieman", ids, n, ref.ids, ref.n_ids);
    free(ids);
    free_reference(&ref);
    ba_tokenizer_destroy(tok);
}

/* Known LLaMA ids (no BOS), as the SentencePiece library gives them. */
static void test_known_ids(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        size_t n;
        int32_t ids[8];
    } cases[] = {
        {"", 0, {0}},
        {"Hello world", 2, {15043, 3186}},
        {" Hello", 2, {29871, 15043}},  /* dummy prefix + the space: "▁" "▁Hello" */
        {"\n", 2, {29871, 13}},         /* <0x0A> */
        {"  ", 1, {1678}},              /* "▁▁▁" */
        {"a  b", 3, {263, 29871, 289}}, /* "▁a" "▁" "▁b" */
        {"\xF0\x9F\x98\x80", 5, {29871, 243, 162, 155, 131}}, /* emoji: byte fallback */
        {"\xE4\xBD\xA0\xE5\xA5\xBD", 3, {29871, 30919, 31076}}, /* CJK in the vocab */
    };
    ba_tokenizer tok;
    open_sp(llama_dir(), &tok);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int32_t *ids;
        size_t n;
        encode_ok(&tok, cases[c].text, strlen(cases[c].text), &ids, &n);
        char what[64];
        snprintf(what, sizeof what, "known case %zu", c);
        assert_same_ids(what, ids, n, cases[c].ids, cases[c].n);
        free(ids);
    }
    close_sp(&tok);
}

typedef struct {
    const char *bytes;
    size_t len;
} sample;

#define SAMPLE(s) {s, sizeof(s) - 1}

/* Edge cases for the Python oracle and the reference loop. */
static const sample EDGE_CASES[] = {
    SAMPLE(""),
    SAMPLE(" "),
    SAMPLE("   "),
    SAMPLE(" leading space"),
    SAMPLE("trailing space "),
    SAMPLE("multiple   spaces   inside"),
    SAMPLE("line one\nline two\n\nline four\r\n"),
    SAMPLE("tab\tseparated\tvalues"),
    SAMPLE("I\xE2\x80\x99m walking \xE2\x80\x9Cquoted\xE2\x80\x9D \xE2\x80\x94 dash"),
    SAMPLE("emoji \xF0\x9F\x98\x80\xF0\x9F\x8E\x89 and \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD"),
    SAMPLE("\xE4\xBD\xA0\xE5\xA5\xBD\xE4\xB8\x96\xE7\x95\x8C \xE3\x81\x93\xE3\x82\x93"
           "\xE3\x81\xAB\xE3\x81\xA1\xE3\x81\xAF \xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4"),
    SAMPLE("caf\xC3\xA9 na\xC3\xAFve \xC3\x85ngstr\xC3\xB6m \xCE\xB1\xCE\xB2\xCE\xB3 "
           "\xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82"),
    SAMPLE("\xFF"),                         /* never valid in UTF-8 */
    SAMPLE("ab\xE2\x82z"),                  /* truncated 3-byte sequence */
    SAMPLE("x\xC0\xAFy"),                   /* overlong "/" */
    SAMPLE("\xED\xA0\x80 surrogate"),       /* UTF-16 surrogate */
    SAMPLE("\xF4\x90\x80\x80 too big"),     /* above U+10FFFF */
    SAMPLE("\x80\x80\x80 lone continuations"),
    SAMPLE("real \xEF\xBF\xBD replacement"),
    SAMPLE("nul\0byte"),
    SAMPLE("<s> </s> <unk> <0x0A> literally"),
    SAMPLE(SPACE "already" SPACE SPACE "escaped"),
    SAMPLE("1234567890 3.14159 $100,000.00 #hashtag @user http://x.org/a?b=c"),
    SAMPLE("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    SAMPLE("                                                            end"),
};
#define N_EDGE_CASES (sizeof EDGE_CASES / sizeof EDGE_CASES[0])

static void test_edge_cases_match_python_oracle(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char in_path[4200], out_path[4200];
    snprintf(in_path, sizeof in_path, "%s/in.json", dir);
    snprintf(out_path, sizeof out_path, "%s/out.json", dir);
    json_t *texts = json_array();
    for (size_t c = 0; c < N_EDGE_CASES; c++) {
        char *hex = malloc(2 * EDGE_CASES[c].len + 1);
        for (size_t k = 0; k < EDGE_CASES[c].len; k++)
            sprintf(hex + 2 * k, "%02x", (unsigned char)EDGE_CASES[c].bytes[k]);
        hex[2 * EDGE_CASES[c].len] = '\0';
        json_array_append_new(texts, json_string(hex));
        free(hex);
    }
    assert_int_equal(json_dump_file(texts, in_path, 0), 0);
    json_decref(texts);
    char model[4200];
    snprintf(model, sizeof model, "%s/tokenizer.model", llama_dir());
    int rc = ba_test_system("/usr/bin/python3 %s/tests/oracle/sp_bpe_oracle.py encode "
                            "'%s' '%s' '%s'",
                            BA_SOURCE_DIR, model, in_path, out_path);
    if (rc != 0) fail_msg("the Python oracle failed (exit status %d)", rc);
    json_error_t jerr;
    json_t *expected = json_load_file(out_path, 0, &jerr);
    if (!expected || json_array_size(expected) != N_EDGE_CASES)
        fail_msg("%s: unreadable oracle output", out_path);

    ba_tokenizer tok;
    open_sp(llama_dir(), &tok);
    for (size_t c = 0; c < N_EDGE_CASES; c++) {
        json_t *want_json = json_array_get(expected, c);
        size_t n_want = json_array_size(want_json);
        int32_t *want = malloc((n_want + 1) * sizeof *want);
        for (size_t i = 0; i < n_want; i++)
            want[i] = (int32_t)json_integer_value(json_array_get(want_json, i));
        int32_t *ids;
        size_t n;
        encode_ok(&tok, EDGE_CASES[c].bytes, EDGE_CASES[c].len, &ids, &n);
        char what[64];
        snprintf(what, sizeof what, "edge case %zu vs Python oracle", c);
        assert_same_ids(what, ids, n, want, n_want);
        free(ids);
        free(want);
    }
    close_sp(&tok);
    json_decref(expected);
}

/* Invalid UTF-8 never fails: each byte that starts no valid sequence is
 * read as U+FFFD (SentencePiece's rule), which LLaMA then spells with the
 * byte tokens EF BF BD. */
static void test_invalid_utf8_reads_as_replacement_char(void **state)
{
    (void)state;
    ba_tokenizer tok;
    open_sp(llama_dir(), &tok);
    int32_t *a, *b;
    size_t na, nb;
    encode_ok(&tok, "x\xFFy\xE2\x82z", 6, &a, &na);
    encode_ok(&tok, "x\xEF\xBF\xBDy\xEF\xBF\xBD\xEF\xBF\xBDz", 12, &b, &nb);
    assert_same_ids("invalid UTF-8 vs U+FFFD", a, na, b, nb);
    free(a);
    free(b);
    close_sp(&tok);
}

static void test_queue_matches_reference_loop(void **state)
{
    (void)state;
    ba_tokenizer tok;
    open_sp(llama_dir(), &tok);
    ba_error err;
    ba_error_clear(&err);
    for (size_t c = 0; c < N_EDGE_CASES + N_STORIES; c++) {
        reference ref = {NULL, NULL, 0};
        const char *text;
        size_t len;
        if (c < N_EDGE_CASES) {
            text = EDGE_CASES[c].bytes;
            len = EDGE_CASES[c].len;
        } else {
            ref = read_reference(STORIES[c - N_EDGE_CASES]);
            text = ref.text;
            len = strlen(text) < 3000 ? strlen(text) : 3000; /* the loop is O(n^2) */
        }
        int32_t *fast, *slow;
        size_t n_fast, n_slow;
        encode_ok(&tok, text, len, &fast, &n_fast);
        if (ba_sp_encode_reference(&tok, text, len, &slow, &n_slow, &err) != BA_OK)
            fail_msg("reference encode: %s", err.message);
        char what[64];
        snprintf(what, sizeof what, "queue vs reference loop, case %zu", c);
        assert_same_ids(what, fast, n_fast, slow, n_slow);
        free(fast);
        free(slow);
        free_reference(&ref);
    }
    close_sp(&tok);
}

/* A whole story, all six stories at once, and pathological inputs, each
 * well under a second. */
static void test_encode_speed(void **state)
{
    (void)state;
    ba_tokenizer tok;
    open_sp(llama_dir(), &tok);
    size_t cap = 1 << 18, len = 0;
    char *all = malloc(cap);
    for (size_t s = 0; s < N_STORIES; s++) {
        reference ref = read_reference(STORIES[s]);
        size_t n = strlen(ref.text);
        assert_true(len + n + 2 < cap);
        memcpy(all + len, ref.text, n);
        len += n;
        all[len++] = ' ';
        free_reference(&ref);
    }
    size_t patho_len = 100000;
    char *run = malloc(patho_len), *spaces = malloc(patho_len), *noise = malloc(patho_len);
    memset(run, 'a', patho_len);
    memset(spaces, ' ', patho_len);
    uint32_t x = 12345;
    for (size_t i = 0; i < patho_len; i++) {
        x = x * 1664525u + 1013904223u;
        noise[i] = (char)(x >> 24);
    }
    const struct {
        const char *name, *text;
        size_t len;
    } inputs[] = {{"six stories", all, len},
                  {"100k 'a'", run, patho_len},
                  {"100k spaces", spaces, patho_len},
                  {"100k random bytes", noise, patho_len}};
    for (size_t k = 0; k < sizeof inputs / sizeof inputs[0]; k++) {
        int32_t *ids;
        size_t n;
        double t0 = seconds_now();
        encode_ok(&tok, inputs[k].text, inputs[k].len, &ids, &n);
        double dt = seconds_now() - t0;
        fprintf(stderr, "encode %s: %zu bytes -> %zu ids in %.4f s\n", inputs[k].name,
                inputs[k].len, n, dt);
        if (dt > 1.0) fail_msg("encoding %s took %.2f s", inputs[k].name, dt);
        free(ids);
    }
    free(all);
    free(run);
    free(spaces);
    free(noise);
    close_sp(&tok);
}

/* ------------------------------------------------------------ encode_words */

static void check_partition(const size_t *word_end, size_t n_words, size_t n_ids,
                            const char *what)
{
    size_t prev = 0;
    for (size_t w = 0; w < n_words; w++) {
        if (word_end[w] <= prev)
            fail_msg("%s: word %zu has no tokens (ends at %zu, previous at %zu)", what, w,
                     word_end[w], prev);
        prev = word_end[w];
    }
    if (n_words > 0 && prev != n_ids)
        fail_msg("%s: words cover %zu of %zu ids", what, prev, n_ids);
}

static void test_encode_words_stories(void **state)
{
    (void)state;
    ba_tokenizer tok;
    open_sp(llama_dir(), &tok);
    ba_error err;
    ba_error_clear(&err);
    for (size_t s = 0; s < N_STORIES; s++) {
        size_t n_words;
        char **words = read_words(STORIES[s], &n_words);
        reference ref = read_reference(STORIES[s]);
        size_t *word_end = malloc(n_words * sizeof *word_end);
        int32_t *ids;
        size_t n;
        if (tok.ops->encode_words(tok.impl, words, n_words, &ids, &n, word_end, &err) != BA_OK)
            fail_msg("encode_words %s: %s", STORIES[s], err.message);
        assert_same_ids(STORIES[s], ids, n, ref.ids, ref.n_ids);
        check_partition(word_end, n_words, n, STORIES[s]);
        free(ids);
        free(word_end);
        free_reference(&ref);
        free_words(words, n_words);
    }
    close_sp(&tok);
}

static void test_encode_words_small(void **state)
{
    (void)state;
    ba_tokenizer tok;
    open_sp(llama_dir(), &tok);
    ba_error err;
    ba_error_clear(&err);
    int32_t *ids;
    size_t n, word_end[4];

    char *hello[] = {"Hello", "world"};
    assert_int_equal(tok.ops->encode_words(tok.impl, hello, 2, &ids, &n, word_end, &err), BA_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 15043);
    assert_int_equal(ids[1], 3186);
    assert_int_equal(word_end[0], 1);
    assert_int_equal(word_end[1], 2);
    free(ids);

    /* "▁I" | "▁" + 4 emoji bytes | "▁you": the lone "▁" goes with the emoji. */
    char *emoji[] = {"I", "\xF0\x9F\x98\x80", "you"};
    assert_int_equal(tok.ops->encode_words(tok.impl, emoji, 3, &ids, &n, word_end, &err), BA_OK);
    assert_int_equal(n, 7);
    assert_int_equal(ids[1], 29871);
    assert_int_equal(word_end[0], 1);
    assert_int_equal(word_end[1], 6);
    assert_int_equal(word_end[2], 7);
    free(ids);

    /* A word with its own newline and a word of spaces stay in one piece. */
    char *odd[] = {"one\n", "  ", "two"};
    assert_int_equal(tok.ops->encode_words(tok.impl, odd, 3, &ids, &n, word_end, &err), BA_OK);
    check_partition(word_end, 3, n, "odd words");
    int32_t *joined;
    size_t n_joined;
    encode_ok(&tok, "one\n    two", 11, &joined, &n_joined);
    assert_same_ids("odd words vs joined", ids, n, joined, n_joined);
    free(joined);
    free(ids);

    /* No words, no tokens. */
    assert_int_equal(tok.ops->encode_words(tok.impl, hello, 0, &ids, &n, word_end, &err), BA_OK);
    assert_int_equal(n, 0);
    free(ids);

    /* Two empty words: " " -> one "▁▁" token, which belongs to word 1. */
    char *empty[] = {"", ""};
    assert_int_equal(tok.ops->encode_words(tok.impl, empty, 2, &ids, &n, word_end, &err),
                     BA_ERR_VALUE);
    assert_non_null(strstr(err.message, "word 0"));
    assert_non_null(strstr(err.message, "no token"));
    assert_null(ids);
    close_sp(&tok);
}

/* ------------------------------------------- synthetic tokenizer.model files */

typedef struct {
    uint8_t *buf;
    size_t n, cap;
} pbw;

static void pbw_raw(pbw *w, const void *data, size_t n)
{
    if (w->n + n > w->cap) {
        while (w->n + n > w->cap) w->cap = w->cap ? 2 * w->cap : 256;
        w->buf = realloc(w->buf, w->cap);
    }
    memcpy(w->buf + w->n, data, n);
    w->n += n;
}

static void pbw_varint(pbw *w, uint64_t v)
{
    do {
        uint8_t b = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) b |= 0x80;
        pbw_raw(w, &b, 1);
    } while (v);
}

static void pbw_uint(pbw *w, unsigned field, uint64_t v)
{
    pbw_varint(w, (uint64_t)field << 3 | 0);
    pbw_varint(w, v);
}

static void pbw_bytes(pbw *w, unsigned field, const void *data, size_t n)
{
    pbw_varint(w, (uint64_t)field << 3 | 2);
    pbw_varint(w, n);
    pbw_raw(w, data, n);
}

static void pbw_float(pbw *w, unsigned field, float f)
{
    uint32_t bits;
    memcpy(&bits, &f, 4);
    uint8_t le[4] = {(uint8_t)bits, (uint8_t)(bits >> 8), (uint8_t)(bits >> 16),
                     (uint8_t)(bits >> 24)};
    pbw_varint(w, (uint64_t)field << 3 | 5);
    pbw_raw(w, le, 4);
}

typedef struct {
    const char *text;
    float score;
    int type; /* 0 = NORMAL, written as absent */
} tpiece;

typedef struct {
    int model_type;
    bool byte_fallback, add_dummy_prefix, remove_extra_whitespaces;
    int unk_id;
    const char *charsmap; /* NULL: identity */
} tspec;

static const tspec LLAMA_LIKE = {2, true, true, false, 0, NULL};

/* <unk> <s> </s>, then `pieces`, then (byte_fallback) the 256 byte pieces. */
static pbw build_model(const tpiece *pieces, size_t n, const tspec *spec)
{
    pbw w = {NULL, 0, 0};
    const tpiece specials[] = {{"<unk>", 0, 2}, {"<s>", 0, 3}, {"</s>", 0, 3}};
    for (size_t k = 0; k < 3 + n + (spec->byte_fallback ? 256 : 0); k++) {
        tpiece p;
        char byte_name[8];
        if (k < 3) {
            p = specials[k];
        } else if (k < 3 + n) {
            p = pieces[k - 3];
        } else {
            snprintf(byte_name, sizeof byte_name, "<0x%02X>", (unsigned)(k - 3 - n));
            p = (tpiece){byte_name, 0, 6};
        }
        pbw piece = {NULL, 0, 0};
        pbw_bytes(&piece, 1, p.text, strlen(p.text));
        pbw_float(&piece, 2, p.score);
        if (p.type) pbw_uint(&piece, 3, (uint64_t)p.type);
        pbw_bytes(&w, 1, piece.buf, piece.n);
        free(piece.buf);
    }
    pbw trainer = {NULL, 0, 0};
    pbw_uint(&trainer, 3, (uint64_t)spec->model_type);
    pbw_uint(&trainer, 4, 3 + n);
    if (spec->byte_fallback) pbw_uint(&trainer, 35, 1);
    pbw_uint(&trainer, 40, (uint64_t)(int64_t)spec->unk_id);
    pbw_uint(&trainer, 43, (uint64_t)(int64_t)-1); /* pad_id: a 10-byte negative varint */
    pbw_bytes(&w, 2, trainer.buf, trainer.n);
    free(trainer.buf);
    pbw norm = {NULL, 0, 0};
    pbw_bytes(&norm, 1, "identity", 8);
    if (spec->charsmap) pbw_bytes(&norm, 2, spec->charsmap, strlen(spec->charsmap));
    pbw_uint(&norm, 3, spec->add_dummy_prefix);
    pbw_uint(&norm, 4, spec->remove_extra_whitespaces);
    pbw_bytes(&w, 3, norm.buf, norm.n);
    free(norm.buf);
    return w;
}

/* Writes bytes as <fresh dir>/tokenizer.model; returns the directory. */
static char *write_model_dir(const void *data, size_t n)
{
    char *dir = strdup(ba_test_tmpdir());
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    ba_test_write_file(path, data, n);
    return dir;
}

static char *synthetic_dir(const tpiece *pieces, size_t n, const tspec *spec)
{
    pbw w = build_model(pieces, n, spec);
    char *dir = write_model_dir(w.buf, w.n);
    free(w.buf);
    return dir;
}

/* Ids of `text` as piece texts joined by '|' (byte tokens as <0xXX>). */
static void expect_pieces(const ba_tokenizer *tok, const char *const *names, size_t n_names,
                          const char *text, const char *expected)
{
    int32_t *ids;
    size_t n;
    encode_ok(tok, text, strlen(text), &ids, &n);
    char got[512] = "";
    for (size_t i = 0; i < n; i++) {
        assert_true(ids[i] >= 0 && (size_t)ids[i] < n_names);
        if (i) strcat(got, "|");
        strcat(got, names[ids[i]]);
    }
    if (strcmp(got, expected) != 0)
        fail_msg("\"%s\" -> %s, expected %s", text, got, expected);
    free(ids);
}

#define NAMES_OF(pieces, names)                                                          \
    const char *names[3 + sizeof pieces / sizeof pieces[0]] = {"<unk>", "<s>", "</s>"}; \
    for (size_t k = 0; k < sizeof pieces / sizeof pieces[0]; k++) names[3 + k] = pieces[k].text

static void test_synthetic_merge_order(void **state)
{
    (void)state;
    /* Scores decide; on equal scores the leftmost pair merges first. */
    const tpiece pieces[] = {{SPACE, -1, 0}, {"a", -2, 0},  {"b", -3, 0},  {"c", -4, 0},
                             {"ab", -10, 0}, {"bc", -5, 0}, {"aa", -6, 0}, {SPACE "a", -7, 0}};
    NAMES_OF(pieces, names);
    tspec spec = LLAMA_LIKE;
    spec.add_dummy_prefix = false;
    char *dir = synthetic_dir(pieces, sizeof pieces / sizeof pieces[0], &spec);
    ba_tokenizer tok;
    open_sp(dir, &tok);
    size_t nn = sizeof names / sizeof names[0];
    expect_pieces(&tok, names, nn, "abc", "a|bc");       /* bc (-5) beats ab (-10) */
    expect_pieces(&tok, names, nn, "aaa", "aa|a");       /* a tie: leftmost */
    expect_pieces(&tok, names, nn, "aaaa", "aa|aa");
    expect_pieces(&tok, names, nn, "ab", "ab");
    expect_pieces(&tok, names, nn, " a", SPACE "a");
    expect_pieces(&tok, names, nn, "a a", "a|" SPACE "a");
    close_sp(&tok);
    free(dir);

    /* Once "ab" scores better than "bc": ab first, then ab + c = abc. */
    const tpiece pieces2[] = {{"a", -2, 0}, {"b", -3, 0}, {"c", -4, 0}, {"ab", -1, 0},
                              {"bc", -5, 0}, {"abc", -8, 0}, {SPACE, -9, 0}};
    NAMES_OF(pieces2, names2);
    dir = synthetic_dir(pieces2, sizeof pieces2 / sizeof pieces2[0], &spec);
    open_sp(dir, &tok);
    expect_pieces(&tok, names2, sizeof names2 / sizeof names2[0], "abc", "abc");
    close_sp(&tok);
    free(dir);
}

static void test_synthetic_unknown_without_byte_fallback(void **state)
{
    (void)state;
    const tpiece pieces[] = {{SPACE, -1, 0}, {"a", -2, 0}, {SPACE "a", -3, 0}};
    NAMES_OF(pieces, names);
    tspec spec = LLAMA_LIKE;
    spec.byte_fallback = false;
    char *dir = synthetic_dir(pieces, 3, &spec);
    ba_tokenizer tok;
    open_sp(dir, &tok);
    /* Consecutive unknown characters give one <unk>. */
    expect_pieces(&tok, names, 6, "axyz", SPACE "a|<unk>");
    expect_pieces(&tok, names, 6, "xay", SPACE "|<unk>|a|<unk>");
    expect_pieces(&tok, names, 6, "\xF0\x9F\x98\x80", SPACE "|<unk>");
    close_sp(&tok);
    free(dir);
}

static void test_synthetic_byte_fallback(void **state)
{
    (void)state;
    const tpiece pieces[] = {{SPACE, -1, 0}, {"a", -2, 0}};
    tspec spec = LLAMA_LIKE;
    char *dir = synthetic_dir(pieces, 2, &spec);
    ba_tokenizer tok;
    open_sp(dir, &tok);
    assert_int_equal(tok.ops->vocab_size(tok.impl), 3 + 2 + 256);
    int32_t *ids;
    size_t n;
    encode_ok(&tok, "a\xC3\xA9", 3, &ids, &n); /* "▁" "a" <0xC3> <0xA9> */
    assert_int_equal(n, 4);
    assert_int_equal(ids[0], 3);
    assert_int_equal(ids[1], 4);
    assert_int_equal(ids[2], 5 + 0xC3);
    assert_int_equal(ids[3], 5 + 0xA9);
    free(ids);
    close_sp(&tok);
    free(dir);
}

static void test_synthetic_user_defined(void **state)
{
    (void)state;
    /* A user-defined piece is matched whole (longest first) and never merged. */
    const tpiece pieces[] = {{SPACE, -1, 0},   {"a", -2, 0},          {"b", -3, 0},
                             {"<", -4, 0},      {">", -5, 0},          {"<x>", 0, 4},
                             {"<xy>", 0, 4},    {"x", -6, 0},          {"y", -7, 0},
                             {"a<", -1, 0},     {SPACE "a", -8, 0}};
    NAMES_OF(pieces, names);
    tspec spec = LLAMA_LIKE;
    spec.byte_fallback = false;
    char *dir = synthetic_dir(pieces, sizeof pieces / sizeof pieces[0], &spec);
    ba_tokenizer tok;
    open_sp(dir, &tok);
    size_t nn = sizeof names / sizeof names[0];
    expect_pieces(&tok, names, nn, "a<x>b", SPACE "a|<x>|b");
    expect_pieces(&tok, names, nn, "a<xy>b", SPACE "a|<xy>|b");
    expect_pieces(&tok, names, nn, "a<y>", SPACE "|a<|y|>");
    close_sp(&tok);
    free(dir);
}

static void test_synthetic_whitespace_options(void **state)
{
    (void)state;
    const tpiece pieces[] = {{SPACE, -1, 0}, {"a", -2, 0}, {"b", -3, 0}, {SPACE "a", -4, 0},
                             {SPACE "b", -5, 0}};
    NAMES_OF(pieces, names);
    size_t nn = sizeof names / sizeof names[0];
    tspec spec = LLAMA_LIKE;
    spec.remove_extra_whitespaces = true;
    char *dir = synthetic_dir(pieces, 5, &spec);
    ba_tokenizer tok;
    open_sp(dir, &tok);
    expect_pieces(&tok, names, nn, "   a    b   ", SPACE "a|" SPACE "b");
    expect_pieces(&tok, names, nn, "    ", "");
    close_sp(&tok);
    free(dir);

    spec = LLAMA_LIKE;
    spec.add_dummy_prefix = false;
    dir = synthetic_dir(pieces, 5, &spec);
    open_sp(dir, &tok);
    expect_pieces(&tok, names, nn, "a b", "a|" SPACE "b");
    expect_pieces(&tok, names, nn, " a  b ", SPACE "a|" SPACE "|" SPACE "b|" SPACE);
    close_sp(&tok);
    free(dir);
}

static void test_synthetic_token_across_words_is_an_error(void **state)
{
    (void)state;
    const tpiece pieces[] = {{SPACE, -1, 0}, {"a", -2, 0}, {"b", -3, 0},
                             {"a" SPACE, -4, 0}, {"a" SPACE "b", -5, 0}};
    tspec spec = LLAMA_LIKE;
    char *dir = synthetic_dir(pieces, 5, &spec);
    ba_tokenizer tok;
    open_sp(dir, &tok);
    char *words[] = {"a", "b"};
    int32_t *ids = NULL;
    size_t n = 0, word_end[2];
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(tok.ops->encode_words(tok.impl, words, 2, &ids, &n, word_end, &err),
                     BA_ERR_VALUE);
    assert_non_null(strstr(err.message, "covers both word 0 \"a\" and word 1 \"b\""));
    assert_non_null(strstr(err.message, dir));
    assert_null(ids);
    close_sp(&tok);
    free(dir);
}

/* ------------------------------------------------------------ corrupt files */

static void expect_open_error(const char *dir, ba_status code, const char *const *fragments,
                              size_t n_fragments)
{
    ba_error err;
    ba_error_clear(&err);
    ba_tokenizer tok = {NULL, NULL};
    ba_status rc = ba_sp_tokenizer_open(dir, &tok, &err);
    if (rc == BA_OK) {
        close_sp(&tok);
        fail_msg("%s: opened, expected an error", dir);
    }
    if (rc != code) fail_msg("status %d (%s), expected %d", rc, err.message, code);
    for (size_t k = 0; k < n_fragments; k++)
        if (!strstr(err.message, fragments[k]))
            fail_msg("message \"%s\" does not say \"%s\"", err.message, fragments[k]);
    assert_null(tok.impl);
}

static void expect_bytes_rejected(const void *data, size_t n, const char *what,
                                  const char *where)
{
    char *dir = write_model_dir(data, n);
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    const char *fragments[] = {path, what, where};
    expect_open_error(dir, BA_ERR_FORMAT, fragments, where ? 3 : 2);
    free(dir);
}

static void test_corrupt_truncated(void **state)
{
    (void)state;
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer.model", llama_dir());
    size_t len;
    char *data = ba_test_read_file(path, &len);
    /* Cuts inside a piece, inside the trainer spec and inside the last byte. */
    const size_t cuts[] = {1, 2, 7, 1000, len / 2, len - 300, len - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++)
        expect_bytes_rejected(data, cuts[k], "byte ", k > 0 ? "runs past the end" : NULL);
    expect_bytes_rejected(data, 0, "empty file", NULL);
    free(data);
}

static void test_corrupt_bad_varint(void **state)
{
    (void)state;
    /* An 11-byte length varint after the first key. */
    const uint8_t bad[] = {0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                           0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x00};
    expect_bytes_rejected(bad, sizeof bad, "bad varint", "byte 1:");
    /* A varint cut by the end of the file. */
    const uint8_t cut[] = {0x0A, 0x80};
    expect_bytes_rejected(cut, sizeof cut, "truncated varint", "byte 1:");
    /* Field number 0. */
    const uint8_t zero[] = {0x02, 0x00};
    expect_bytes_rejected(zero, sizeof zero, "bad field number", "byte 0:");
}

static void test_corrupt_length_past_end(void **state)
{
    (void)state;
    const uint8_t past[] = {0x0A, 0x05, 0x0A, 0x01, 'a'};
    expect_bytes_rejected(past, sizeof past, "length 5 runs past the end", "byte 1:");
    /* A piece whose inner length runs past the end of the piece. */
    const uint8_t inner[] = {0x0A, 0x03, 0x0A, 0x09, 'a'};
    expect_bytes_rejected(inner, sizeof inner, "pieces[0]: byte 3: length 9", NULL);
}

static void test_corrupt_wrong_model_type(void **state)
{
    (void)state;
    const tpiece pieces[] = {{SPACE, -1, 0}, {"a", -2, 0}};
    tspec spec = LLAMA_LIKE;
    spec.model_type = 1;
    pbw w = build_model(pieces, 2, &spec);
    expect_bytes_rejected(w.buf, w.n, "model_type is UNIGRAM (1), expected BPE (2)", NULL);
    free(w.buf);
}

static void test_corrupt_other(void **state)
{
    (void)state;
    const tpiece pieces[] = {{SPACE, -1, 0}, {"a", -2, 0}};
    tspec spec = LLAMA_LIKE;
    pbw w;

    spec.unk_id = 7;
    w = build_model(pieces, 2, &spec);
    expect_bytes_rejected(w.buf, w.n, "unk_id 7 is not a piece of type UNKNOWN", NULL);
    free(w.buf);

    spec = LLAMA_LIKE;
    spec.charsmap = "\x01\x02\x03";
    w = build_model(pieces, 2, &spec);
    expect_bytes_rejected(w.buf, w.n, "precompiled character map", NULL);
    free(w.buf);

    const tpiece unused[] = {{SPACE, -1, 0}, {"a", -2, 5}};
    w = build_model(unused, 2, &LLAMA_LIKE);
    expect_bytes_rejected(w.buf, w.n, "UNUSED", NULL);
    free(w.buf);

    const tpiece twice[] = {{SPACE, -1, 0}, {"a", -2, 0}, {"a", -3, 0}};
    w = build_model(twice, 3, &LLAMA_LIKE);
    expect_bytes_rejected(w.buf, w.n, "piece 5 \"a\" repeats piece 4", NULL);
    free(w.buf);

    const tpiece bad_type[] = {{SPACE, -1, 0}, {"a", -2, 9}};
    w = build_model(bad_type, 2, &LLAMA_LIKE);
    expect_bytes_rejected(w.buf, w.n, "pieces[4]", "type 9");
    free(w.buf);

    const tpiece bad_byte[] = {{SPACE, -1, 0}, {"<0xZZ>", 0, 6}};
    w = build_model(bad_byte, 2, &LLAMA_LIKE);
    expect_bytes_rejected(w.buf, w.n, "not of the form <0xXX>", NULL);
    free(w.buf);

    /* byte_fallback without the byte pieces. */
    spec = LLAMA_LIKE;
    spec.byte_fallback = false;
    w = build_model(pieces, 2, &spec);
    pbw trainer = {NULL, 0, 0};
    pbw_uint(&trainer, 3, 2);
    pbw_uint(&trainer, 35, 1);
    pbw_bytes(&w, 2, trainer.buf, trainer.n); /* a later trainer_spec merges in */
    free(trainer.buf);
    expect_bytes_rejected(w.buf, w.n, "byte_fallback is set but there is no piece <0x00>", NULL);
    free(w.buf);

    /* A piece with a score of the wrong wire type. */
    const uint8_t wire[] = {0x0A, 0x05, 0x0A, 0x01, 'a', 0x10, 0x01};
    expect_bytes_rejected(wire, sizeof wire, "field 2 has wire type 0, expected 5", NULL);

    /* Random bytes. */
    uint8_t noise[4096];
    uint32_t x = 99;
    for (size_t i = 0; i < sizeof noise; i++) {
        x = x * 1664525u + 1013904223u;
        noise[i] = (uint8_t)(x >> 24);
    }
    expect_bytes_rejected(noise, sizeof noise, "", NULL);

    /* No tokenizer at all. */
    const char *dir = ba_test_tmpdir();
    const char *fragments[] = {dir, "no tokenizer.model or tokenizer.json"};
    expect_open_error(dir, BA_ERR_IO, fragments, 2);
}

/* Every prefix of the real model fails cleanly or (at a field boundary)
 * loads; none crashes (the sanitizer build checks every read). */
static void test_truncation_sweep(void **state)
{
    (void)state;
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer.model", llama_dir());
    size_t len;
    char *data = ba_test_read_file(path, &len);
    char *dir = write_model_dir(data, 1);
    char copy[4200];
    snprintf(copy, sizeof copy, "%s/tokenizer.model", dir);
    uint32_t x = 7;
    size_t n_failed = 0, n_cuts = 0;
    for (size_t k = 0; k < 600; k++) {
        size_t cut;
        if (k < 300) {
            cut = k;
        } else if (k < 500) {
            x = x * 1664525u + 1013904223u;
            cut = x % len;
        } else {
            cut = len - (k - 499); /* the normaliser and trainer specs at the end */
        }
        ba_test_write_file(copy, data, cut);
        ba_error err;
        ba_error_clear(&err);
        ba_tokenizer tok = {NULL, NULL};
        ba_status rc = ba_sp_tokenizer_open(dir, &tok, &err);
        n_cuts++;
        if (rc == BA_OK) {
            close_sp(&tok);
            continue;
        }
        n_failed++;
        assert_int_equal(rc, BA_ERR_FORMAT);
        assert_non_null(strstr(err.message, copy));
    }
    fprintf(stderr, "truncation sweep: %zu of %zu prefixes rejected\n", n_failed, n_cuts);
    assert_true(n_failed >= n_cuts - 2);
    free(dir);
    free(data);
}

/* ---------------------------------------------------- tokenizer.json (HF) */

static char *hf_json_dir(void)
{
    char *dir = strdup(ba_test_tmpdir());
    char model[4200];
    snprintf(model, sizeof model, "%s/tokenizer.model", llama_dir());
    int rc = ba_test_system("/usr/bin/python3 %s/tests/oracle/sp_bpe_oracle.py to-hf-json '%s' "
                            "'%s/tokenizer.json'",
                            BA_SOURCE_DIR, model, dir);
    if (rc != 0) fail_msg("sp_bpe_oracle.py to-hf-json failed (exit status %d)", rc);
    return dir;
}

static void test_hf_json_reference_stories(void **state)
{
    (void)state;
    char *dir = hf_json_dir();
    ba_tokenizer tok;
    open_sp(dir, &tok);
    assert_int_equal(tok.ops->vocab_size(tok.impl), 32000);
    check_stories(&tok, "tokenizer.json");
    for (size_t c = 0; c < N_EDGE_CASES; c++) {
        int32_t *a, *b;
        size_t na, nb;
        encode_ok(&tok, EDGE_CASES[c].bytes, EDGE_CASES[c].len, &a, &na);
        ba_error err;
        ba_error_clear(&err);
        if (ba_sp_encode_reference(&tok, EDGE_CASES[c].bytes, EDGE_CASES[c].len, &b, &nb,
                                   &err) != BA_OK)
            fail_msg("reference encode: %s", err.message);
        char what[64];
        snprintf(what, sizeof what, "tokenizer.json queue vs loop, case %zu", c);
        assert_same_ids(what, a, na, b, nb);
        free(a);
        free(b);
    }
    close_sp(&tok);

    /* Through the public loader, which dispatches on tokenizer.json. */
    ba_error err;
    ba_error_clear(&err);
    ba_tokenizer *pub = NULL;
    if (ba_tokenizer_load(dir, &pub, &err) != BA_OK) fail_msg("ba_tokenizer_load: %s", err.message);
    assert_string_equal(ba_tokenizer_kind(pub), "sentencepiece-bpe");
    check_stories(pub, "ba_tokenizer_load tokenizer.json");
    ba_tokenizer_destroy(pub);
    free(dir);
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    ba_test_write_file(path, text, strlen(text));
}

static void test_hf_json_errors(void **state)
{
    (void)state;
    const struct {
        const char *json, *message;
    } cases[] = {
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [", "line 1"},
        {"{\"model\": {\"type\": \"Unigram\", \"vocab\": {\"a\": 0}, \"merges\": []}}",
         "model.type is \"Unigram\", expected \"BPE\""},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 2}, \"merges\": []}}",
         "model.vocab[\"b\"]"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": "
         "[\"a b\"]}}",
         "model.merges[0]"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": "
         "[\"a b\"]}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}",
         "ByteLevel"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"normalizer\": "
         "{\"type\": \"NFKC\"}}",
         "normalizer {\"type\":\"NFKC\"} is not supported"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *dir = ba_test_tmpdir();
        write_text(dir, "tokenizer.json", cases[c].json);
        char path[4200];
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        const char *fragments[] = {path, cases[c].message};
        expect_open_error(dir, BA_ERR_FORMAT, fragments, 2);
    }
}

/* A tiny tokenizer.json: Metaspace pre-tokeniser, merges as pairs, and the
 * Hugging Face rule of merging by rank (not score). */
static void test_hf_json_small(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    write_text(dir, "tokenizer.json",
               "{\"added_tokens\": [{\"id\": 0, \"content\": \"<unk>\", \"special\": true}],"
               " \"normalizer\": null,"
               " \"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"" SPACE "\","
               "   \"prepend_scheme\": \"first\", \"split\": false},"
               " \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"fuse_unk\": true,"
               "   \"byte_fallback\": false,"
               "   \"vocab\": {\"<unk>\": 0, \"" SPACE "\": 1, \"a\": 2, \"b\": 3, \"c\": 4,"
               "     \"ab\": 5, \"bc\": 6, \"" SPACE "a\": 7},"
               "   \"merges\": [[\"a\", \"b\"], \"b c\", \"" SPACE " a\"]}}");
    ba_tokenizer tok;
    open_sp(dir, &tok);
    const char *names[] = {"<unk>", SPACE, "a", "b", "c", "ab", "bc", SPACE "a"};
    expect_pieces(&tok, names, 8, "abc", SPACE "|ab|c"); /* rank 0 first */
    expect_pieces(&tok, names, 8, "bc a", SPACE "|bc|" SPACE "a");
    expect_pieces(&tok, names, 8, "xyz a", SPACE "|<unk>|" SPACE "a"); /* fused <unk> */
    /* Metaspace adds no prefix when the text already starts with a space. */
    expect_pieces(&tok, names, 8, " a", SPACE "a");
    close_sp(&tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_reference_stories),
        cmocka_unit_test(test_llama_via_tokenizer_load),
        cmocka_unit_test(test_known_ids),
        cmocka_unit_test(test_edge_cases_match_python_oracle),
        cmocka_unit_test(test_invalid_utf8_reads_as_replacement_char),
        cmocka_unit_test(test_queue_matches_reference_loop),
        cmocka_unit_test(test_encode_speed),
        cmocka_unit_test(test_encode_words_stories),
        cmocka_unit_test(test_encode_words_small),
        cmocka_unit_test(test_synthetic_merge_order),
        cmocka_unit_test(test_synthetic_unknown_without_byte_fallback),
        cmocka_unit_test(test_synthetic_byte_fallback),
        cmocka_unit_test(test_synthetic_user_defined),
        cmocka_unit_test(test_synthetic_whitespace_options),
        cmocka_unit_test(test_synthetic_token_across_words_is_an_error),
        cmocka_unit_test(test_corrupt_truncated),
        cmocka_unit_test(test_corrupt_bad_varint),
        cmocka_unit_test(test_corrupt_length_past_end),
        cmocka_unit_test(test_corrupt_wrong_model_type),
        cmocka_unit_test(test_corrupt_other),
        cmocka_unit_test(test_truncation_sweep),
        cmocka_unit_test(test_hf_json_reference_stories),
        cmocka_unit_test(test_hf_json_errors),
        cmocka_unit_test(test_hf_json_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
