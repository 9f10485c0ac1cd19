/* test_associations.c — association sets and their insertion into real
 * Narratives stories:
 *   - the JSONL reader (defaults, set name, round trip through the writer)
 *     and every kind of bad line, with messages naming file and line;
 *   - checks against the stories (unknown story, indices out of range);
 *   - sentences: punctuation (with closing quotes/brackets) and the pause
 *     rule for unpunctuated transcripts, recomputed here from the timings;
 *   - each policy (human, every-k, word, random) on pieman / lucy / tunnel,
 *     with the bookkeeping checked after every augmentation: no original
 *     word lost, duplicated or reordered, inserted words never counted as
 *     originals, positions consistent;
 *   - the random control: same places and lengths, words taken
 *     consecutively from another story, deterministic for a seed;
 *   - the `features` stage reading augmented text (a tiny random GPT-2 with
 *     the real vocabulary): an empty set gives the baseline file bitwise,
 *     associations after the last word leave every word's features
 *     unchanged (a causal model), and associations inside the story change
 *     the features of the words after them only. */
#define _GNU_SOURCE
#include "test_util.h"

#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "brainalign/pipeline/associations.h"
#include "brainalign/pipeline/features.h"
#include "brainalign/io/features_io.h"
#include "brainalign/io/h5io.h"
#include "brainalign/lm/model.h"
#include "brainalign/io/stimuli.h"
#include "brainalign/study/study.h"
#include "brainalign/lm/tokenizer.h"

static ba_story *g_stories;
static size_t g_n_stories;

static const ba_story *story_named(const char *name)
{
    for (size_t s = 0; s < g_n_stories; s++)
        if (strcmp(g_stories[s].name, name) == 0) return &g_stories[s];
    fail_msg("story %s not read", name);
    return NULL;
}

static char *write_text(const char *name, const char *text)
{
    char *p = NULL;
    assert_true(asprintf(&p, "%s/%s", ba_test_tmpdir(), name) > 0);
    ba_test_write_file(p, text, strlen(text));
    return p;
}

static void read_set(const char *text, ba_association_set *set)
{
    ba_error err;
    char *path = write_text("set.jsonl", text);
    if (ba_association_set_read(path, set, &err) != BA_OK) fail_msg("%s", err.message);
    free(path);
}

/* No original word lost, duplicated or reordered; inserted words are never
 * originals; positions agree with the sequence. */
static void check_bookkeeping(const ba_story *story, const ba_augmented_story *a)
{
    assert_int_equal(a->n_original, story->n_words);
    size_t expected = 0, inserted = 0;
    for (size_t i = 0; i < a->n_words; i++) {
        if (a->original[i] < 0) {
            assert_true(a->association[i] >= 0);
            inserted++;
            continue;
        }
        assert_int_equal(a->association[i], -1);
        if ((size_t)a->original[i] != expected)
            fail_msg("augmented word %zu is original %ld, expected %zu", i, a->original[i], expected);
        assert_string_equal(a->words[i], story->words[expected]);
        assert_int_equal(a->position[expected], i);
        expected++;
    }
    assert_int_equal(expected, story->n_words);
    assert_int_equal(a->n_words, story->n_words + inserted);
}

/* The inserted words right after original word w (as one space-joined string). */
static char *inserted_after(const ba_augmented_story *a, size_t w)
{
    size_t len = 1;
    size_t i = a->position[w] + 1;
    for (size_t j = i; j < a->n_words && a->original[j] < 0; j++) len += strlen(a->words[j]) + 1;
    char *s = calloc(len, 1);
    assert_non_null(s);
    for (size_t j = i; j < a->n_words && a->original[j] < 0; j++) {
        if (j > i) strcat(s, " ");
        strcat(s, a->words[j]);
    }
    return s;
}

static void augment_ok(const char *story, const ba_association_set *set, const char *policy,
                       int k, uint64_t seed, ba_augmented_story *out)
{
    ba_error err;
    ba_augment_options o;
    ba_augment_options_defaults(&o);
    assert_int_equal(ba_augment_policy_parse(policy, &o, &err), BA_OK);
    o.every_k = k;
    o.seed = seed;
    if (ba_association_set_check(set, g_stories, g_n_stories, 0, &err) != BA_OK)
        fail_msg("%s", err.message);
    if (ba_augment_story(story_named(story), set, &o, g_stories, g_n_stories, out, &err) != BA_OK)
        fail_msg("%s", err.message);
    check_bookkeeping(story_named(story), out);
}

/* ---- reading ------------------------------------------------------------- */

static void test_read_and_defaults(void **state)
{
    (void)state;
    ba_association_set set;
    read_set("\xEF\xBB\xBF{\"story\": \"pieman\", \"after_word\": 12, \"text\": \"a hot dog\"}\r\n"
             "\n"
             "   \n"
             "{\"story\": \"lucy\", \"after_sentence\": 3, \"text\": \"caf\xC3\xA9 memories\", "
             "\"source\": \"gpt4\"}\n"
             "{\"story\": \"pieman\", \"after_word\": 5, \"text\": \"x\", \"granularity\": \"sentence\", "
             "\"source\": \"random\"}",
             &set);
    assert_string_equal(set.name, "set");
    assert_int_equal(set.n, 3);
    assert_string_equal(set.items[0].story, "pieman");
    assert_int_equal(set.items[0].after_word, 12);
    assert_int_equal(set.items[0].after_sentence, -1);
    assert_int_equal(set.items[0].granularity, BA_GRANULARITY_WORD);
    assert_int_equal(set.items[0].source, BA_SOURCE_HUMAN);
    assert_int_equal(set.items[0].line, 1);
    assert_string_equal(set.items[1].text, "caf\xC3\xA9 memories");
    assert_int_equal(set.items[1].granularity, BA_GRANULARITY_SENTENCE);
    assert_int_equal(set.items[1].source, BA_SOURCE_GPT4);
    assert_int_equal(set.items[1].line, 4);
    assert_int_equal(set.items[2].granularity, BA_GRANULARITY_SENTENCE);
    assert_int_equal(set.items[2].source, BA_SOURCE_RANDOM);

    /* The writer's output reads back the same. */
    ba_error err;
    char *path = NULL;
    assert_true(asprintf(&path, "%s/gpt4-k4.v2.jsonl", ba_test_tmpdir()) > 0);
    assert_int_equal(ba_association_set_write(path, &set, &err), BA_OK);
    ba_association_set back;
    assert_int_equal(ba_association_set_read(path, &back, &err), BA_OK);
    assert_string_equal(back.name, "gpt4-k4");
    assert_int_equal(back.n, set.n);
    for (size_t i = 0; i < set.n; i++) {
        assert_string_equal(back.items[i].story, set.items[i].story);
        assert_string_equal(back.items[i].text, set.items[i].text);
        assert_int_equal(back.items[i].after_word, set.items[i].after_word);
        assert_int_equal(back.items[i].after_sentence, set.items[i].after_sentence);
        assert_int_equal(back.items[i].granularity, set.items[i].granularity);
        assert_int_equal(back.items[i].source, set.items[i].source);
    }
    ba_association_set_free(&back);
    ba_association_set_free(&set);
    free(path);
}

static void test_bad_lines(void **state)
{
    (void)state;
    static const struct {
        const char *line, *expected;
    } cases[] = {
        {"{\"story\": \"pieman\", \"after_word\": 1, \"text\": \"a\"", "bad.jsonl:2: not valid JSON"},
        {"[1, 2]", "bad.jsonl:2: expected a JSON object"},
        {"{\"story\": \"pieman\", \"after_wrod\": 1, \"text\": \"a\"}", "unknown field \"after_wrod\""},
        {"{\"story\": \"pieman\", \"after_word\": 1, \"text\": \"a\", \"granularity\": \"phrase\"}",
         "bad.jsonl:2: \"granularity\" is \"phrase\", expected \"sentence\" or \"word\""},
        {"{\"story\": \"pieman\", \"after_word\": 1, \"text\": \"a\", \"source\": \"gpt5\"}",
         "\"source\" is \"gpt5\", expected \"human\", \"gpt4\", \"model\" or \"random\""},
        {"{\"story\": \"pieman\", \"after_word\": 1, \"text\": \"  \\t \"}", "bad.jsonl:2: \"text\" is empty"},
        {"{\"story\": \"pieman\", \"after_word\": 1}", "\"text\" is missing"},
        {"{\"after_word\": 1, \"text\": \"a\"}", "\"story\" is missing"},
        {"{\"story\": \"pieman\", \"text\": \"a\"}", "exactly one of \"after_word\" and \"after_sentence\""},
        {"{\"story\": \"pieman\", \"after_word\": 1, \"after_sentence\": 1, \"text\": \"a\"}", "exactly one"},
        {"{\"story\": \"pieman\", \"after_word\": -1, \"text\": \"a\"}", "\"after_word\" must be a whole number >= 0"},
        {"{\"story\": \"pieman\", \"after_word\": 1.5, \"text\": \"a\"}", "\"after_word\" must be a whole number"},
        {"{\"story\": \"pieman\", \"after_sentence\": 1, \"text\": \"a\", \"granularity\": \"word\"}",
         "a word-level association needs \"after_word\""},
        {"{\"story\": 3, \"after_word\": 1, \"text\": \"a\"}", "\"story\" must be a non-empty string"},
        {"{\"story\": \"pieman\", \"story\": \"lucy\", \"after_word\": 1, \"text\": \"a\"}", "bad.jsonl:2: not valid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *text = NULL;
        assert_true(asprintf(&text, "{\"story\": \"pieman\", \"after_word\": 0, \"text\": \"ok\"}\n%s\n",
                             cases[i].line) > 0);
        char *path = write_text("bad.jsonl", text);
        ba_association_set set;
        ba_error err;
        ba_status rc = ba_association_set_read(path, &set, &err);
        if (rc == BA_OK) fail_msg("case %zu accepted: %s", i, cases[i].line);
        if (!strstr(err.message, cases[i].expected))
            fail_msg("case %zu: message '%s' lacks '%s'", i, err.message, cases[i].expected);
        assert_non_null(strstr(err.message, "bad.jsonl:2:"));
        assert_int_equal(set.n, 0);
        free(text);
        free(path);
    }
    ba_association_set set;
    ba_error err;
    assert_int_equal(ba_association_set_read("/nonexistent/x.jsonl", &set, &err), BA_ERR_IO);
    assert_non_null(strstr(err.message, "/nonexistent/x.jsonl"));
}

static void test_check_against_stories(void **state)
{
    (void)state;
    const ba_story *pieman = story_named("pieman");
    static const struct {
        const char *line, *expected;
    } cases[] = {
        {"{\"story\": \"piemann\", \"after_word\": 1, \"text\": \"a\"}", "set.jsonl:2: unknown story \"piemann\""},
        {"{\"story\": \"pieman\", \"after_word\": 957, \"text\": \"a\"}",
         "set.jsonl:2: after_word 957 is out of range: story \"pieman\" has 957 words (0..956)"},
        {"{\"story\": \"pieman\", \"after_sentence\": 9999, \"text\": \"a\"}",
         "set.jsonl:2: after_sentence 9999 is out of range: story \"pieman\" has"},
    };
    assert_int_equal(pieman->n_words, 957);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *text = NULL;
        assert_true(asprintf(&text, "{\"story\": \"pieman\", \"after_word\": 956, \"text\": \"ok\"}\n%s\n",
                             cases[i].line) > 0);
        ba_association_set set;
        read_set(text, &set);
        ba_error err;
        assert_int_not_equal(ba_association_set_check(&set, g_stories, g_n_stories, 0, &err), BA_OK);
        if (!strstr(err.message, cases[i].expected))
            fail_msg("case %zu: message '%s' lacks '%s'", i, err.message, cases[i].expected);
        ba_association_set_free(&set);
        free(text);
    }
}

/* ---- sentences ------------------------------------------------------------ */

static void test_sentence_words(void **state)
{
    (void)state;
    const char *ends[] = {"end.", "what?", "wow!", "so\xE2\x80\xA6", "said.\"", "(aside.)",
                          "quote.\xE2\x80\x9D", "it.'\")", "Mr."};
    const char *not_ends[] = {"word", "I\xE2\x80\x99m", "3.5x", "\"", ".)x", "", "don't", "a,"};
    for (size_t i = 0; i < sizeof ends / sizeof *ends; i++)
        if (!ba_word_ends_sentence(ends[i])) fail_msg("'%s' should end a sentence", ends[i]);
    for (size_t i = 0; i < sizeof not_ends / sizeof *not_ends; i++)
        if (ba_word_ends_sentence(not_ends[i])) fail_msg("'%s' should not end a sentence", not_ends[i]);
}

static void test_sentences_punctuated_and_by_pause(void **state)
{
    (void)state;
    ba_error err;
    /* Punctuation wins over pauses. */
    char *words[] = {"One", "two.", "Three", "four", "five!", "Six"};
    double onset[] = {0, 1, 10, 11, 12, 20}, offset[] = {0.5, 1.5, 10.5, 11.5, 12.5, 20.5};
    ba_story st = {.n_words = 6, .words = words, .onset = onset, .offset = offset};
    size_t *ends = NULL, n = 0;
    bool by_pause = true;
    assert_int_equal(ba_story_sentences(&st, 0, &ends, &n, &by_pause, &err), BA_OK);
    assert_false(by_pause);
    assert_int_equal(n, 3);
    assert_int_equal(ends[0], 1);
    assert_int_equal(ends[1], 4);
    assert_int_equal(ends[2], 5);
    free(ends);
    /* The Narratives transcripts have no punctuation: pauses of >= 0.5 s,
     * recomputed here from the timings. */
    const char *names[] = {"pieman", "lucy", "tunnel"};
    for (int k = 0; k < 3; k++) {
        const ba_story *s = story_named(names[k]);
        assert_int_equal(ba_story_sentences(s, 0, &ends, &n, &by_pause, &err), BA_OK);
        assert_true(by_pause);
        size_t expected = 1, at = 0;
        for (size_t w = 0; w + 1 < s->n_words; w++)
            if (s->onset[w + 1] - s->offset[w] >= 0.5) {
                assert_int_equal(ends[at++], w);
                expected++;
            }
        assert_int_equal(n, expected);
        assert_int_equal(ends[n - 1], s->n_words - 1);
        /* Sentence-like lengths (about 9-30 words). */
        double mean = (double)s->n_words / (double)n;
        assert_true(mean > 5 && mean < 40);
        free(ends);
    }
}

/* ---- policies ---------------------------------------------------------------- */

static void test_human_policy(void **state)
{
    (void)state;
    ba_association_set set;
    read_set("{\"story\": \"pieman\", \"after_word\": 9, \"text\": \"the Bronx zoo\"}\n"
             "{\"story\": \"lucy\", \"after_word\": 3, \"text\": \"not mine\"}\n"
             "{\"story\": \"pieman\", \"after_sentence\": 2, \"text\": \"  a   newspaper\\tdeadline \"}\n"
             "{\"story\": \"pieman\", \"after_word\": 9, \"text\": \"second\"}\n"
             "{\"story\": \"pieman\", \"after_word\": 0, \"text\": \"first\"}\n"
             "{\"story\": \"pieman\", \"after_word\": 956, \"text\": \"the end\"}\n",
             &set);
    ba_augmented_story a;
    augment_ok("pieman", &set, "human", 4, 1, &a);
    const ba_story *p = story_named("pieman");
    size_t *ends = NULL, n = 0;
    ba_error err;
    assert_int_equal(ba_story_sentences(p, 0, &ends, &n, NULL, &err), BA_OK);
    assert_int_equal(a.n_insertions, 5);
    assert_int_equal(a.n_words, p->n_words + 3 + 3 + 1 + 1 + 2);
    char *s = inserted_after(&a, 9);
    assert_string_equal(s, "the Bronx zoo second"); /* file order at one place */
    free(s);
    s = inserted_after(&a, 0);
    assert_string_equal(s, "first");
    free(s);
    s = inserted_after(&a, ends[2]);
    assert_string_equal(s, "a newspaper deadline");
    free(s);
    s = inserted_after(&a, 956);
    assert_string_equal(s, "the end");
    free(s);
    s = inserted_after(&a, 5);
    assert_string_equal(s, "");
    free(s);
    /* Word 10 ("where") now sits after 1 + 4 inserted words (and 3 more if
     * sentence 2 ends before it). */
    assert_int_equal(a.position[10], 10 + 1 + 4 + (ends[2] < 10 ? 3 : 0));
    assert_string_equal(a.words[a.position[10]], "where");
    ba_augmented_story_free(&a);
    /* A story without associations is unchanged. */
    augment_ok("tunnel", &set, "human", 4, 1, &a);
    assert_int_equal(a.n_words, story_named("tunnel")->n_words);
    assert_int_equal(a.n_insertions, 0);
    ba_augmented_story_free(&a);
    free(ends);
    ba_association_set_free(&set);
}

static void test_every_k_policy(void **state)
{
    (void)state;
    const ba_story *p = story_named("pieman");
    size_t *ends = NULL, n = 0;
    ba_error err;
    assert_int_equal(ba_story_sentences(p, 0, &ends, &n, NULL, &err), BA_OK);
    assert_true(n > 20);
    /* One association per sentence (as GPT-4 wrote them), k = 4. */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "{\"story\": \"pieman\", \"after_sentence\": %zu, \"text\": \"s%zu\", \"source\": \"gpt4\"}\n", i, i);
    /* A sentence-level association given by word belongs to its sentence. */
    fprintf(f, "{\"story\": \"pieman\", \"after_word\": %zu, \"text\": \"w\", \"granularity\": \"sentence\"}\n",
            ends[5] - 1);
    fclose(f);
    ba_association_set set;
    read_set(text, &set);
    ba_augmented_story a;
    augment_ok("pieman", &set, "every-k", 4, 1, &a);
    assert_int_equal(a.n_insertions, n + 1);
    for (size_t i = 0; i < n; i++) {
        char *s = inserted_after(&a, ends[i]);
        bool block_end = i % 4 == 3 || i == n - 1;
        if (!block_end) {
            assert_string_equal(s, "");
        } else {
            char expected[256] = "";
            for (size_t j = i / 4 * 4; j <= i; j++) {
                snprintf(expected + strlen(expected), sizeof expected - strlen(expected), "%ss%zu",
                         j > i / 4 * 4 ? " " : "", j);
                if (j == 5) strcat(expected, " w");
            }
            if (strcmp(s, expected) != 0) fail_msg("after sentence %zu: '%s', expected '%s'", i, s, expected);
        }
        free(s);
    }
    ba_augmented_story_free(&a);
    /* k = 1 places every association right after its own sentence. */
    augment_ok("pieman", &set, "every-k", 1, 1, &a);
    char *s = inserted_after(&a, ends[7]);
    assert_string_equal(s, "s7");
    free(s);
    ba_augmented_story_free(&a);
    ba_association_set_free(&set);
    free(text);
    free(ends);
}

static void test_word_policy_and_policy_errors(void **state)
{
    (void)state;
    ba_association_set set;
    read_set("{\"story\": \"lucy\", \"after_word\": 0, \"text\": \"(a friend)\", \"granularity\": \"word\"}\n"
             "{\"story\": \"lucy\", \"after_word\": 40, \"text\": \"long ago\", \"granularity\": \"word\"}\n",
             &set);
    ba_augmented_story a;
    augment_ok("lucy", &set, "word", 4, 1, &a);
    char *s = inserted_after(&a, 0);
    assert_string_equal(s, "(a friend)");
    free(s);
    s = inserted_after(&a, 40);
    assert_string_equal(s, "long ago");
    free(s);
    ba_augmented_story_free(&a);
    /* every-k refuses word-level phrases. */
    ba_error err;
    ba_augment_options o;
    ba_augment_options_defaults(&o);
    assert_int_equal(ba_augment_policy_parse("every-k", &o, &err), BA_OK);
    assert_int_equal(ba_augment_story(story_named("lucy"), &set, &o, g_stories, g_n_stories, &a, &err),
                     BA_ERR_USAGE);
    assert_non_null(strstr(err.message, "set.jsonl:1: policy 'every-k'"));
    ba_association_set_free(&set);
    /* word refuses sentence-level associations. */
    read_set("{\"story\": \"lucy\", \"after_sentence\": 2, \"text\": \"x\"}\n", &set);
    assert_int_equal(ba_augment_policy_parse("word", &o, &err), BA_OK);
    assert_int_equal(ba_augment_story(story_named("lucy"), &set, &o, g_stories, g_n_stories, &a, &err),
                     BA_ERR_USAGE);
    assert_non_null(strstr(err.message, "set.jsonl:1: policy 'word'"));
    /* The random control needs another story. */
    assert_int_equal(ba_augment_policy_parse("random", &o, &err), BA_OK);
    assert_int_equal(ba_augment_story(story_named("lucy"), &set, &o, story_named("lucy"), 1, &a, &err),
                     BA_ERR_USAGE);
    assert_non_null(strstr(err.message, "other stories"));
    assert_int_equal(ba_augment_policy_parse("randomly", &o, &err), BA_ERR_USAGE);
    o.placement = BA_PLACE_EVERY_K;
    o.every_k = 0;
    o.random_text = false;
    assert_int_equal(ba_augment_story(story_named("lucy"), &set, &o, g_stories, g_n_stories, &a, &err),
                     BA_ERR_USAGE);
    ba_association_set_free(&set);
}

/* True when words[0..n) occur consecutively (wrapping) in a story other than `self`. */
static bool run_in_other_story(char **words, size_t n, const char *self)
{
    for (size_t s = 0; s < g_n_stories; s++) {
        const ba_story *o = &g_stories[s];
        if (strcmp(o->name, self) == 0) continue;
        for (size_t start = 0; start < o->n_words; start++) {
            size_t i = 0;
            while (i < n && strcmp(o->words[(start + i) % o->n_words], words[i]) == 0) i++;
            if (i == n) return true;
        }
    }
    return false;
}

static void test_random_control(void **state)
{
    (void)state;
    ba_association_set set;
    read_set("{\"story\": \"pieman\", \"after_word\": 9, \"text\": \"the Bronx zoo in the rain\"}\n"
             "{\"story\": \"pieman\", \"after_sentence\": 4, \"text\": \"a newspaper deadline\"}\n"
             "{\"story\": \"pieman\", \"after_word\": 500, \"text\": \"one\"}\n"
             "{\"story\": \"pieman\", \"after_word\": 956, \"text\": \"and so it ends here for now\"}\n",
             &set);
    ba_augmented_story human, r1, r2, r3;
    augment_ok("pieman", &set, "human", 4, 1, &human);
    augment_ok("pieman", &set, "random", 4, 99, &r1);
    augment_ok("pieman", &set, "random", 4, 99, &r2);
    augment_ok("pieman", &set, "random", 4, 100, &r3);
    /* Same places, same lengths. */
    assert_int_equal(r1.n_words, human.n_words);
    for (size_t i = 0; i < human.n_words; i++) {
        assert_int_equal(r1.original[i], human.original[i]);
        assert_int_equal(r1.association[i], human.association[i]);
    }
    /* Deterministic for a seed, different for another. */
    bool differs = false;
    for (size_t i = 0; i < r1.n_words; i++) {
        assert_string_equal(r1.words[i], r2.words[i]);
        differs |= strcmp(r1.words[i], r3.words[i]) != 0;
    }
    assert_true(differs);
    /* Each inserted text is a run of consecutive words of another story. */
    for (size_t i = 0; i < r1.n_words;) {
        if (r1.original[i] >= 0) { i++; continue; }
        size_t j = i;
        while (j < r1.n_words && r1.association[j] == r1.association[i]) j++;
        if (!run_in_other_story(r1.words + i, j - i, "pieman"))
            fail_msg("inserted words %zu..%zu ('%s' ...) are not from another story", i, j, r1.words[i]);
        i = j;
    }
    ba_augmented_story_free(&human);
    ba_augmented_story_free(&r1);
    ba_augmented_story_free(&r2);
    ba_augmented_story_free(&r3);
    ba_association_set_free(&set);
}

static void test_empty_set(void **state)
{
    (void)state;
    ba_association_set set;
    read_set("\n\n", &set);
    assert_int_equal(set.n, 0);
    const char *policies[] = {"human", "every-k", "word", "random"};
    for (int k = 0; k < 4; k++) {
        ba_augmented_story a;
        augment_ok("tunnel", &set, policies[k], 4, 1, &a);
        assert_int_equal(a.n_words, story_named("tunnel")->n_words);
        ba_augmented_story_free(&a);
    }
    ba_association_set_free(&set);
}

/* ---- the features stage on augmented text ------------------------------------------ */

static char g_fdir[4096];

/* The first n lines of a real align.csv as <dir>/<story>/align.csv. */
static void write_excerpt(const char *dir, const char *story, size_t n_lines)
{
    size_t len = 0;
    char path[4400];
    snprintf(path, sizeof path, "narratives/stimuli/%s/align.csv", story);
    char *text = ba_test_read_file(ba_test_data_path(path), &len);
    size_t at = 0;
    for (size_t lines = 0; at < len && lines < n_lines; at++)
        if (text[at] == '\n') lines++;
    snprintf(path, sizeof path, "%s/%s", dir, story);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/%s/align.csv", dir, story);
    ba_test_write_file(path, text, at);
    free(text);
}

/* A tiny random GPT-2 with the real vocabulary; excerpts of two stories. */
static void features_fixture(void)
{
    if (g_fdir[0]) return;
    snprintf(g_fdir, sizeof g_fdir, "%s", ba_test_tmpdir());
    char ckpt[4200], stim[4200];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", g_fdir);
    snprintf(stim, sizeof stim, "%s/stim", g_fdir);
    ba_error err;
    ba_random_checkpoint spec = {.arch = BA_ARCH_GPT2, .n_layers = 2, .d_model = 32,
                                 .n_heads = 4, .n_positions = 512, .dtype = BA_DTYPE_F32,
                                 .init_std = 0.25, .seed = 5, .n_shards = 1,
                                 .vocab_from = ba_test_data_path("gpt2-tokenizer")};
    if (ba_model_write_random(&spec, ckpt, &err) != BA_OK) fail_msg("%s", err.message);
    assert_int_equal(mkdir(stim, 0755), 0);
    write_excerpt(stim, "pieman", 120);
    write_excerpt(stim, "lucy", 90);
}

typedef struct {
    size_t n_words[2];
    float *hidden[2];     /* [layers][words][d] */
    float *surprisal[2];
    long d;
    int n_layers;
    char *condition;
} features_data;

/* Run `features` (context 64, stride 32: several windows) and read it back. */
static void run_features(const char *assoc_text, const char *policy, const char *tag,
                         features_data *out)
{
    features_fixture();
    ba_error err;
    char ckpt[4200], stim[4200], assoc[4200], path[4200];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", g_fdir);
    snprintf(stim, sizeof stim, "%s/stim", g_fdir);
    snprintf(path, sizeof path, "%s/features-%s.h5", g_fdir, tag);
    ba_features_config cfg;
    ba_features_config_defaults(&cfg);
    cfg.model_dir = ckpt;
    cfg.stimuli_dir = stim;
    cfg.context = 64;
    cfg.stride = 32;
    cfg.out_path = path;
    cfg.quiet = true;
    if (assoc_text) {
        snprintf(assoc, sizeof assoc, "%s/%s.jsonl", g_fdir, tag);
        ba_test_write_file(assoc, assoc_text, strlen(assoc_text));
        cfg.associations = assoc;
        assert_int_equal(ba_augment_policy_parse(policy, &cfg.augment, &err), BA_OK);
    }
    ba_features_summary sum;
    if (ba_features_run(&cfg, MPI_COMM_WORLD, &sum, &err) != BA_OK) fail_msg("%s", err.message);
    ba_features_file ff;
    if (ba_features_open(&ff, path, MPI_COMM_WORLD, &err) != BA_OK) fail_msg("%s", err.message);
    assert_int_equal(ff.n_stories, 2); /* lucy, pieman */
    out->d = ff.d_model;
    out->n_layers = ff.n_layers;
    for (size_t s = 0; s < 2; s++) {
        long n = 0;
        assert_int_equal(ba_features_story_words(&ff, ff.stories[s], &n, &err), BA_OK);
        out->n_words[s] = (size_t)n;
        out->hidden[s] = calloc((size_t)(ff.n_layers * n * ff.d_model), sizeof(float));
        out->surprisal[s] = calloc((size_t)n, sizeof(float));
        for (int l = 0; l < ff.n_layers; l++)
            assert_int_equal(ba_features_read_layer(&ff, ff.stories[s], l,
                                                    out->hidden[s] + (size_t)l * n * ff.d_model,
                                                    &err), BA_OK);
        char obj[600];
        snprintf(obj, sizeof obj, "/stories/%s/surprisal", ff.stories[s]);
        assert_int_equal(ba_h5_read(&ff.file, obj, BA_H5_F32, NULL, NULL, out->surprisal[s], &err),
                         BA_OK);
    }
    assert_int_equal(ba_h5_get_attr_str(&ff.file, "/", "condition", &out->condition, &err), BA_OK);
    ba_features_close(&ff);
}

static void free_features(features_data *f)
{
    for (int s = 0; s < 2; s++) {
        free(f->hidden[s]);
        free(f->surprisal[s]);
    }
    free(f->condition);
}

/* Word w of story s has the same features (bitwise) in a and b. */
static bool same_word(const features_data *a, const features_data *b, size_t s, size_t w)
{
    size_t n = a->n_words[s], d = (size_t)a->d;
    for (int l = 0; l < a->n_layers; l++)
        if (memcmp(a->hidden[s] + ((size_t)l * n + w) * d, b->hidden[s] + ((size_t)l * n + w) * d,
                   d * sizeof(float)) != 0)
            return false;
    float x = a->surprisal[s][w], y = b->surprisal[s][w];
    return memcmp(&x, &y, sizeof x) == 0; /* NaN (first word) equals itself bitwise */
}

/* The largest difference between word w's features in a and b. */
static double word_difference(const features_data *a, const features_data *b, size_t s, size_t w)
{
    size_t n = a->n_words[s], d = (size_t)a->d;
    double worst = fabs((double)a->surprisal[s][w] - (double)b->surprisal[s][w]);
    for (int l = 0; l < a->n_layers; l++)
        for (size_t j = 0; j < d; j++) {
            double x = a->hidden[s][((size_t)l * n + w) * d + j], y = b->hidden[s][((size_t)l * n + w) * d + j];
            if (fabs(x - y) > worst) worst = fabs(x - y);
        }
    return worst;
}

static features_data g_baseline;

static void baseline_once(void)
{
    if (!g_baseline.condition) run_features(NULL, NULL, "baseline", &g_baseline);
    assert_string_equal(g_baseline.condition, "baseline");
}

static void test_features_empty_set_is_baseline(void **state)
{
    (void)state;
    baseline_once();
    features_data f;
    run_features("\n", "human", "empty", &f);
    assert_string_equal(f.condition, "empty");
    for (size_t s = 0; s < 2; s++) {
        assert_int_equal(f.n_words[s], g_baseline.n_words[s]);
        for (size_t w = 0; w < f.n_words[s]; w++)
            if (!same_word(&f, &g_baseline, s, w)) fail_msg("story %zu word %zu differs", s, w);
    }
    free_features(&f);
}

/* Token count of a story's text, plain or with the set's associations
 * (human policy), and the last token of each original word. */
static size_t story_tokens(const char *story, const char *assoc_path, size_t *last_token)
{
    ba_error err;
    char ckpt[4200], stim[4200];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", g_fdir);
    snprintf(stim, sizeof stim, "%s/stim", g_fdir);
    ba_story *stories = NULL;
    size_t n_stories = 0;
    char *names[] = {(char *)story};
    assert_int_equal(ba_story_dir_read(stim, names, 1, &stories, &n_stories, &err), BA_OK);
    ba_augmented_story a = {0};
    ba_association_set set = {0};
    ba_augment_options o;
    ba_augment_options_defaults(&o);
    if (assoc_path) {
        assert_int_equal(ba_association_set_read(assoc_path, &set, &err), BA_OK);
        assert_int_equal(ba_augment_story(&stories[0], &set, &o, stories, 1, &a, &err), BA_OK);
    }
    ba_tokenizer *tok = NULL;
    assert_int_equal(ba_tokenizer_load(ckpt, &tok, &err), BA_OK);
    char **words = assoc_path ? a.words : stories[0].words;
    size_t n_words = assoc_path ? a.n_words : stories[0].n_words;
    size_t *ends = calloc(n_words, sizeof *ends), n_tokens = 0;
    int32_t *ids = NULL;
    assert_int_equal(ba_tokenizer_encode_words(tok, words, n_words, &ids, &n_tokens, ends, &err), BA_OK);
    for (size_t w = 0; last_token && w < stories[0].n_words; w++)
        last_token[w] = ends[assoc_path ? a.position[w] : w] - 1;
    free(ids);
    free(ends);
    ba_tokenizer_destroy(tok);
    ba_augmented_story_free(&a);
    ba_association_set_free(&set);
    ba_story_array_free(stories, n_stories);
    return n_tokens;
}

static void test_features_after_last_word_is_baseline(void **state)
{
    (void)state;
    baseline_once();
    /* lucy has 90 words, pieman 120 in the excerpts; the words after the
     * last one push the text into a further window. */
    const char *text =
        "{\"story\": \"lucy\", \"after_word\": 89, \"text\": \"and then the whole street went quiet while everyone "
        "looked up at the sky waiting for the rain that never came that summer in the old town by the river "
        "where we grew up together long ago\"}\n"
        "{\"story\": \"pieman\", \"after_word\": 119, \"text\": \"the newspaper office smelled of coffee\"}\n";
    features_data f;
    run_features(text, "human", "tail", &f);
    assert_string_equal(f.condition, "tail");
    /* A causal model: every word's features are the baseline's. Bitwise
     * where the word's window holds the same tokens; where the window now
     * runs on past the story's end, the same values from a GEMM of another
     * shape, equal up to float32 rounding. */
    const char *names[2] = {"lucy", "pieman"};
    char assoc[4200];
    snprintf(assoc, sizeof assoc, "%s/tail.jsonl", g_fdir);
    size_t bitwise = 0, rounding = 0;
    for (size_t s = 0; s < 2; s++) {
        size_t *last = calloc(f.n_words[s], sizeof *last);
        size_t n_plain = story_tokens(names[s], NULL, last);
        size_t n_aug = story_tokens(names[s], assoc, NULL);
        assert_true(n_aug > n_plain);
        for (size_t w = 0; w < f.n_words[s]; w++) {
            size_t k = ba_feature_window_of_token(last[w], 64, 32), b0, e0, b1, e1, ob, oe;
            ba_feature_window_span(k, n_plain, 64, 32, &b0, &e0, &ob, &oe);
            ba_feature_window_span(k, n_aug, 64, 32, &b1, &e1, &ob, &oe);
            if (b0 == b1 && e0 == e1) {
                if (!same_word(&f, &g_baseline, s, w))
                    fail_msg("%s word %zu differs by %g", names[s], w, word_difference(&f, &g_baseline, s, w));
                bitwise++;
            } else {
                double diff = word_difference(&f, &g_baseline, s, w);
                if (!(diff <= 2e-5)) fail_msg("%s word %zu differs by %g", names[s], w, diff);
                rounding++;
            }
        }
        free(last);
    }
    assert_true(bitwise > 100 && rounding > 0);
    free_features(&f);
}

static void test_features_change_after_insertion_only(void **state)
{
    (void)state;
    baseline_once();
    const char *text =
        "{\"story\": \"pieman\", \"after_word\": 30, \"text\": \"a pie in the face of the dean\"}\n";
    features_data f, r;
    run_features(text, "human", "inside", &f);
    run_features(text, "random", "inside-random", &r);
    /* the set (inside-random.jsonl) and the policy name the condition */
    assert_string_equal(r.condition, "inside-random-random");
    size_t pieman = 1, lucy = 0;
    for (size_t w = 0; w <= 30; w++) {
        if (!same_word(&f, &g_baseline, pieman, w)) fail_msg("pieman word %zu (before) differs", w);
        if (!same_word(&r, &g_baseline, pieman, w)) fail_msg("random: pieman word %zu differs", w);
    }
    size_t changed = 0, changed_random = 0, differs_from_random = 0;
    for (size_t w = 31; w < f.n_words[pieman]; w++) {
        changed += !same_word(&f, &g_baseline, pieman, w);
        changed_random += !same_word(&r, &g_baseline, pieman, w);
        differs_from_random += !same_word(&f, &r, pieman, w);
    }
    /* Context reaches the next words (within the windows of 64 tokens). */
    assert_true(changed >= 20);
    assert_true(changed_random >= 20);
    assert_true(differs_from_random >= 20);
    assert_false(same_word(&f, &g_baseline, pieman, 31)); /* right after: surprisal too */
    assert_true(f.surprisal[pieman][31] != g_baseline.surprisal[pieman][31]);
    for (size_t w = 0; w < f.n_words[lucy]; w++)
        assert_true(same_word(&f, &g_baseline, lucy, w));
    free_features(&f);
    free_features(&r);
}

/* ---- [conditions] in study configurations ------------------------------------------ */

static void test_study_conditions(void **state)
{
    (void)state;
    ba_error err;
    ba_study_config cfg;
    const char *files[2] = {BA_SOURCE_DIR "/configs/narratives-associations.ini",
                            BA_SOURCE_DIR "/configs/narratives-associations-llama2.ini"};
    for (int i = 0; i < 2; i++) {
        if (ba_study_config_load(files[i], &cfg, &err) != BA_OK) fail_msg("%s", err.message);
        assert_int_equal(cfg.n_layers, 1);
        assert_int_equal(cfg.layers[0], i == 0 ? 9 : 14);
        assert_string_equal(cfg.condition, "baseline");
        assert_int_equal(cfg.n_conditions, 3);
        assert_string_equal(cfg.conditions[0].name, "human");
        assert_string_equal(cfg.conditions[1].name, "gpt4");
        assert_string_equal(cfg.conditions[2].name, "random");
        assert_int_equal(cfg.conditions[1].augment.placement, BA_PLACE_EVERY_K);
        assert_int_equal(cfg.conditions[1].augment.every_k, 4);
        assert_true(cfg.conditions[2].augment.random_text);
        assert_int_equal(cfg.conditions[2].augment.seed, 2025);
        assert_non_null(strstr(cfg.conditions[0].associations, "configs/../data/associations/human.jsonl"));
        assert_string_equal(cfg.conditions[0].associations, cfg.conditions[2].associations);
        assert_int_equal(cfg.compare.n_permutations, 100000);
        ba_study_config_free(&cfg);
    }
    static const struct {
        const char *text, *expected;
    } bad[] = {
        {"[conditions]\nbaseline = a.jsonl\n", "study.ini:10: [conditions] baseline: the baseline is not listed"},
        {"[conditions]\nhuman = a.jsonl\nhuman.policy = sometimes\n", "study.ini:11: [conditions] human.policy: policy 'sometimes'"},
        {"[conditions]\nhuman.every = 0\n", "study.ini:10: [conditions] human.every must be a whole number >= 1"},
        {"[conditions]\nhu/man = a.jsonl\n", "study.ini:10: [conditions] 'hu/man'"},
        {"[conditions]\nhuman.colour = red\n", "study.ini:10: [conditions] human.colour: expected"},
        {"[conditions]\nhuman.seed = 3\n", "[conditions] human: give its file"},
        {"[conditions]\nhuman = a.jsonl\n", "an association set needs [model]"},
        {"[compare]\nfdr = 2\n", "study.ini:10: [compare] fdr 2 must be a finite number > 0 and < 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *text = NULL;
        assert_true(asprintf(&text, "[study]\noutput = o\n[features]\npath = f.h5\n[fit]\nlayers = 1\n"
                                    "[bold]\nsubjects = s1\n%s", bad[i].text) > 0);
        char *path = write_text("study.ini", text);
        ba_status rc = ba_study_config_load(path, &cfg, &err);
        ba_study_config_free(&cfg);
        if (rc == BA_OK) fail_msg("case %zu accepted", i);
        if (!strstr(err.message, bad[i].expected))
            fail_msg("case %zu: '%s' lacks '%s'", i, err.message, bad[i].expected);
        free(text);
        free(path);
    }
    /* [features] with a ready features file per condition is fine. */
    char *path = write_text("study.ini", "[study]\noutput = o\n[features]\npath = f.h5\n[fit]\nlayers = 1\n"
                                         "[bold]\nsubjects = s1\npath = b.h5\n[conditions]\nmine = g.h5\n");
    if (ba_study_config_load(path, &cfg, &err) != BA_OK) fail_msg("%s", err.message);
    assert_int_equal(cfg.n_conditions, 1);
    assert_non_null(strstr(cfg.conditions[0].features, "/g.h5"));
    ba_study_config_free(&cfg);
    free(path);
}

/* ---- main --------------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    ba_error err;
    char *names[] = {"lucy", "pieman", "tunnel"};
    if (ba_story_dir_read(ba_test_data_path("narratives/stimuli"), names, 3, &g_stories,
                          &g_n_stories, &err) != BA_OK) {
        fprintf(stderr, "%s\n", err.message);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ba_story_array_free(g_stories, g_n_stories);
    free_features(&g_baseline);
    if (g_fdir[0]) ba_test_system("rm -rf '%s'", g_fdir);
    return 0;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_and_defaults),
        cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_check_against_stories),
        cmocka_unit_test(test_sentence_words),
        cmocka_unit_test(test_sentences_punctuated_and_by_pause),
        cmocka_unit_test(test_human_policy),
        cmocka_unit_test(test_every_k_policy),
        cmocka_unit_test(test_word_policy_and_policy_errors),
        cmocka_unit_test(test_random_control),
        cmocka_unit_test(test_empty_set),
        cmocka_unit_test(test_features_empty_set_is_baseline),
        cmocka_unit_test(test_features_after_last_word_is_baseline),
        cmocka_unit_test(test_features_change_after_insertion_only),
        cmocka_unit_test(test_study_conditions),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    MPI_Finalize();
    return failed;
}
