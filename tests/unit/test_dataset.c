/* test_dataset.c — the pieces of `brainalign dataset`: passage starts in
 * words and sentences (hand-worked cases), the Alpaca importer (JSON array
 * with the line of each element, JSONL through the train reader, every
 * bad-input case naming file:line), plain-text stories, and a whole build
 * whose output the train reader accepts. The end-to-end checks on real
 * stories are tests/e2e/dataset_cli.py. */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/pipeline/dataset.h"

/* ---- passages ---------------------------------------------------------------- */

static void test_passage_start(void **state)
{
    (void)state;
    /* 10 words, sentences [0..2] [3..6] [7..9] */
    const size_t ends[3] = {2, 6, 9};
    assert_int_equal(ba_passage_start(ends, 3, 5, BA_PASSAGE_WORDS, 3), 3);
    assert_int_equal(ba_passage_start(ends, 3, 5, BA_PASSAGE_WORDS, 6), 0);
    assert_int_equal(ba_passage_start(ends, 3, 5, BA_PASSAGE_WORDS, 60), 0);
    assert_int_equal(ba_passage_start(ends, 3, 0, BA_PASSAGE_WORDS, 1), 0);
    assert_int_equal(ba_passage_start(ends, 3, 9, BA_PASSAGE_WORDS, 1), 9);
    /* sentences: w = 5 lies in sentence 1 (partial) */
    assert_int_equal(ba_passage_start(ends, 3, 5, BA_PASSAGE_SENTENCES, 1), 3);
    assert_int_equal(ba_passage_start(ends, 3, 5, BA_PASSAGE_SENTENCES, 2), 0);
    assert_int_equal(ba_passage_start(ends, 3, 6, BA_PASSAGE_SENTENCES, 1), 3);
    assert_int_equal(ba_passage_start(ends, 3, 7, BA_PASSAGE_SENTENCES, 1), 7);
    assert_int_equal(ba_passage_start(ends, 3, 9, BA_PASSAGE_SENTENCES, 2), 3);
    assert_int_equal(ba_passage_start(ends, 3, 9, BA_PASSAGE_SENTENCES, 3), 0);
    assert_int_equal(ba_passage_start(ends, 3, 2, BA_PASSAGE_SENTENCES, 1), 0);
}

/* ---- Alpaca ---------------------------------------------------------------- */

static ba_sft_data *alpaca_ok(const char *text)
{
    ba_error err;
    ba_error_clear(&err);
    ba_sft_data *d = NULL;
    if (ba_alpaca_parse(text, strlen(text), "a.json", &d, &err) != BA_OK)
        fail_msg("alpaca: %s", err.message);
    return d;
}

static void alpaca_bad(const char *text, const char *needle)
{
    ba_error err;
    ba_error_clear(&err);
    ba_sft_data *d = (ba_sft_data *)1;
    assert_int_not_equal(ba_alpaca_parse(text, strlen(text), "a.json", &d, &err), BA_OK);
    assert_null(d);
    if (!strstr(err.message, needle))
        fail_msg("expected '%s' in the message: %s", needle, err.message);
}

static void test_alpaca_array(void **state)
{
    (void)state;
    ba_sft_data *d = alpaca_ok(
        "\xEF\xBB\xBF[\n"
        "  {\"instruction\": \"Give [a] {b}, \\\"c\\\"\", \"input\": \"\", \"output\": \"x\"},\n"
        "\n"
        "  {\n"
        "    \"instruction\": \"Translate\",\n"
        "    \"input\": \"chat\",\n"
        "    \"output\": \"cat\",\n"
        "    \"meta\": {\"k\": [1, {\"n\": \"]\"}]}\n"
        "  }, {\"instruction\": \"No input\", \"output\": \"y\"}\n"
        "]\n");
    assert_int_equal(d->n, 3);
    assert_string_equal(d->records[0].instruction, "Give [a] {b}, \"c\"");
    assert_int_equal(d->records[0].line, 2);
    assert_string_equal(d->records[1].input, "chat");
    assert_string_equal(d->records[1].output, "cat");
    assert_int_equal(d->records[1].line, 4);
    assert_string_equal(d->records[2].input, "");
    assert_int_equal(d->records[2].line, 9);
    ba_sft_data_destroy(d);
}

static void test_alpaca_jsonl(void **state)
{
    (void)state;
    ba_sft_data *d = alpaca_ok("{\"instruction\": \"a\", \"output\": \"b\"}\n"
                               "{\"instruction\": \"c\", \"input\": \"d\", \"output\": \"e\"}\n");
    assert_int_equal(d->n, 2);
    assert_int_equal(d->records[1].line, 2);
    assert_string_equal(d->records[1].input, "d");
    ba_sft_data_destroy(d);
}

static void test_alpaca_bad(void **state)
{
    (void)state;
    alpaca_bad("", "a.json: no records");
    alpaca_bad("  \n ", "a.json: no records");
    alpaca_bad("[]", "a.json: no records");
    alpaca_bad("[\n {\"instruction\": \"a\", \"output\": \"b\"},\n {oops}\n]", "a.json:3");
    alpaca_bad("[\n {\"instruction\": \"a\", \"output\": \"b\"}\n", "a.json:");
    alpaca_bad("[\n {\"instruction\": \"a\", \"output\": \"b\"},\n 7\n]", "a.json:3: expected a JSON object");
    alpaca_bad("[\n {\"instruction\": \"a\"}\n]", "a.json:2: missing the field \"output\"");
    alpaca_bad("[\n\n {\"instruction\": \"a\", \"output\": \"\"}]", "a.json:3: the field \"output\" is empty");
    alpaca_bad("[{\"instruction\": 1, \"output\": \"b\"}]", "a.json:1: the field \"instruction\" must be a string");
    alpaca_bad("[{\"instruction\": \"a\", \"input\": null, \"output\": \"b\"}]", "a.json:1: the field \"input\"");
    alpaca_bad("[{\"instruction\": \"a\", \"output\": \"b\", \"output\": \"c\"}]", "a.json:");
    alpaca_bad("{\"instruction\": \"a\", \"output\": \"b\"}\nnot json\n", "a.json:2");
    alpaca_bad("{\"instruction\": \"a\", \"output\": \"b\"}\n\n{\"instruction\": \"a\", \"output\": \"b\"}\n",
               "a.json:2: empty line");
    alpaca_bad("{\"instruction\": \"a\",\n \"output\": \"b\"}\n", "a.json:1");
}

/* ---- plain-text stories -------------------------------------------------------- */

static void test_story_text(void **state)
{
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/tale.txt", ba_test_tmpdir());
    const char *text = "\xEF\xBB\xBF  Once upon\ta time.\r\nThe end\xE2\x80\xA6 \n";
    ba_test_write_file(path, text, strlen(text));
    ba_story st;
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(ba_story_read_text(path, &st, &err), BA_OK);
    assert_string_equal(st.name, "tale");
    assert_int_equal(st.n_words, 6);
    assert_string_equal(st.words[0], "Once");
    assert_string_equal(st.words[3], "time.");
    assert_string_equal(st.words[5], "end\xE2\x80\xA6");
    size_t *ends = NULL, n = 0;
    assert_int_equal(ba_story_sentences(&st, 0, &ends, &n, NULL, &err), BA_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ends[0], 3);
    free(ends);
    ba_story_free(&st);

    ba_test_write_file(path, " \n\t", 3);
    assert_int_not_equal(ba_story_read_text(path, &st, &err), BA_OK);
    assert_non_null(strstr(err.message, "tale.txt: the story has no words"));
    ba_test_write_file(path, "ok \xC3\x28 bad", 9);
    assert_int_not_equal(ba_story_read_text(path, &st, &err), BA_OK);
    assert_non_null(strstr(err.message, "tale.txt:1: invalid UTF-8"));
    ba_test_write_file(path, "a\nb\0c", 5);
    assert_int_not_equal(ba_story_read_text(path, &st, &err), BA_OK);
    assert_non_null(strstr(err.message, "tale.txt:2: a NUL byte"));
    assert_int_equal(st.n_words, 0);
}

/* ---- a whole build ------------------------------------------------------------ */

static void test_build(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    char story[4096], set[4096], out[4096], sum[4096];
    snprintf(story, sizeof story, "%s/s.txt", dir);
    snprintf(set, sizeof set, "%s/set.jsonl", dir);
    snprintf(out, sizeof out, "%s/train.jsonl", dir);
    snprintf(sum, sizeof sum, "%s/summary.json", dir);
    const char *words = "One two three. Four five six! Seven eight nine ten?";
    ba_test_write_file(story, words, strlen(words));
    const char *assoc =
        "{\"story\": \"s\", \"after_word\": 4, \"text\": \"a \\\"quoted\\\" thought\"}\n"
        "{\"story\": \"s\", \"after_sentence\": 2, \"text\": \"the end\", \"source\": \"gpt4\"}\n"
        "{\"story\": \"s\", \"after_word\": 4, \"text\": \"a \\\"quoted\\\" thought\"}\n";
    ba_test_write_file(set, assoc, strlen(assoc));
    const char *stories[1] = {story}, *sets[1] = {set};
    ba_dataset_options o;
    ba_dataset_options_defaults(&o);
    o.stories = stories;
    o.n_stories = 1;
    o.associations = sets;
    o.n_associations = 1;
    o.unit = BA_PASSAGE_SENTENCES;
    o.passage_len = 2;
    o.instruction = "Associate.";
    o.out = out;
    o.summary = sum;
    ba_dataset_summary s;
    ba_error err;
    ba_error_clear(&err);
    if (ba_dataset_build(&o, &s, &err) != BA_OK) fail_msg("build: %s", err.message);
    assert_int_equal(s.n_read, 3);
    assert_int_equal(s.n_duplicates, 1);
    assert_int_equal(s.n_train, 2);
    ba_sft_data *d = NULL;
    if (ba_sft_read_jsonl(out, &d, &err) != BA_OK) fail_msg("train reader: %s", err.message);
    assert_int_equal(d->n, 2);
    assert_string_equal(d->records[0].instruction, "Associate.");
    assert_string_equal(d->records[0].input, "One two three. Four five");
    assert_string_equal(d->records[0].output, "a \"quoted\" thought");
    assert_string_equal(d->records[1].input, "Four five six! Seven eight nine ten?");
    assert_string_equal(d->records[1].output, "the end");
    ba_sft_data_destroy(d);

    /* a split that leaves the validation side empty: an error, no output */
    char val[4096], out2[4096];
    snprintf(val, sizeof val, "%s/val.jsonl", dir);
    snprintf(out2, sizeof out2, "%s/train2.jsonl", dir);
    o.out = out2;
    o.summary = NULL;
    o.val_out = val;
    o.val_fraction = 0.1;
    assert_int_not_equal(ba_dataset_build(&o, &s, &err), BA_OK);
    assert_non_null(strstr(err.message, "validation set"));
    FILE *f = fopen(out2, "r");
    assert_null(f);
    f = fopen(val, "r");
    assert_null(f);
    /* usage errors */
    o.val_fraction = 0;
    o.val_out = NULL;
    o.passage_len = 0;
    assert_int_equal(ba_dataset_build(&o, &s, &err), BA_ERR_USAGE);
    o.passage_len = 1;
    o.max_tokens = 10;
    assert_int_equal(ba_dataset_build(&o, &s, &err), BA_ERR_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_passage_start),
        cmocka_unit_test(test_alpaca_array),
        cmocka_unit_test(test_alpaca_jsonl),
        cmocka_unit_test(test_alpaca_bad),
        cmocka_unit_test(test_story_text),
        cmocka_unit_test(test_build),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
