/* test_train_data.c — instruction data: JSONL records and every bad-input
 * case (file:line in the message), the exact template strings, tokenised
 * samples with the real GPT-2 and LLaMA tokenizers (shared/data) against an
 * independent encoding of the pieces — the reference ids of a Narratives
 * story produced by other implementations (gpt-tokenizer's r50k_base,
 * the SentencePiece library) for the response, the plain reference encoder
 * for the hand-written prompt — and the per-epoch sample order. */
#include "test_util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/lm/tokenizer_bpe.h"
#include "../../src/lm/tokenizer_sp.h"
#include "brainalign/train/data.h"

/* ---- JSONL ---------------------------------------------------------------- */

static ba_sft_data *parse_ok(const char *text)
{
    ba_error err;
    ba_error_clear(&err);
    ba_sft_data *d = NULL;
    if (ba_sft_parse_jsonl(text, strlen(text), "t.jsonl", &d, &err) != BA_OK)
        fail_msg("parse: %s", err.message);
    return d;
}

static void test_jsonl_good(void **state)
{
    (void)state;
    ba_sft_data *d = parse_ok(
        "{\"instruction\": \"Say hi\", \"input\": \"\", \"output\": \"hi\"}\n"
        "{\"output\": \"b\", \"instruction\": \"A\", \"extra\": [1, 2]}\r\n"
        "{\"instruction\": \"\\u00e9t\\u00e9\", \"input\": \"x\\ny\", \"output\": \"z\"}");
    assert_int_equal(d->n, 3);
    assert_string_equal(d->records[0].instruction, "Say hi");
    assert_string_equal(d->records[0].input, "");
    assert_string_equal(d->records[0].output, "hi");
    assert_string_equal(d->records[1].input, ""); /* absent */
    assert_string_equal(d->records[1].output, "b");
    assert_string_equal(d->records[2].instruction, "\xc3\xa9t\xc3\xa9");
    assert_string_equal(d->records[2].input, "x\ny");
    assert_int_equal(d->records[2].line, 3);
    ba_sft_data_destroy(d);
}

static void expect_bad(const char *text, const char *where, const char *what)
{
    ba_error err;
    ba_error_clear(&err);
    ba_sft_data *d = NULL;
    ba_status rc = ba_sft_parse_jsonl(text, strlen(text), "t.jsonl", &d, &err);
    if (rc == BA_OK) fail_msg("accepted: %s", text);
    assert_null(d);
    if (!strstr(err.message, where) || !strstr(err.message, what))
        fail_msg("message '%s' lacks '%s' / '%s'", err.message, where, what);
}

static void test_jsonl_bad(void **state)
{
    (void)state;
    const char *good = "{\"instruction\": \"a\", \"output\": \"b\"}\n";
    char buf[512];
    expect_bad("", "t.jsonl", "empty");
    snprintf(buf, sizeof buf, "%s{\"instruction\": \"a\", \"output\": \"b\"\n", good);
    expect_bad(buf, "t.jsonl:2", "not valid JSON");
    snprintf(buf, sizeof buf, "%s%s[1, 2]\n", good, good);
    expect_bad(buf, "t.jsonl:3", "expected a JSON object");
    expect_bad("\"just a string\"\n", "t.jsonl:1", "expected a JSON object");
    snprintf(buf, sizeof buf, "%s{\"output\": \"b\"}\n", good);
    expect_bad(buf, "t.jsonl:2", "missing the field \"instruction\"");
    snprintf(buf, sizeof buf, "%s{\"instruction\": \"a\"}\n", good);
    expect_bad(buf, "t.jsonl:2", "missing the field \"output\"");
    snprintf(buf, sizeof buf, "{\"instruction\": \"a\", \"input\": 3, \"output\": \"b\"}\n");
    expect_bad(buf, "t.jsonl:1", "\"input\" must be a string");
    snprintf(buf, sizeof buf, "{\"instruction\": null, \"output\": \"b\"}\n");
    expect_bad(buf, "t.jsonl:1", "\"instruction\" must be a string");
    snprintf(buf, sizeof buf, "%s{\"instruction\": \"a\", \"output\": \"\"}\n", good);
    expect_bad(buf, "t.jsonl:2", "\"output\" is empty");
    snprintf(buf, sizeof buf, "%s\n%s", good, good);
    expect_bad(buf, "t.jsonl:2", "empty line");
    snprintf(buf, sizeof buf, "{\"instruction\": \"a\", \"output\": \"b\", \"output\": \"c\"}");
    expect_bad(buf, "t.jsonl:1", "not valid JSON");
    snprintf(buf, sizeof buf, "{\"instruction\": \"a\", \"output\": \"b\"} x\n");
    expect_bad(buf, "t.jsonl:1", "not valid JSON");
}

static void test_jsonl_file(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/train.jsonl", ba_test_tmpdir());
    const char *text = "{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": 1}\n";
    ba_test_write_file(path, text, strlen(text));
    ba_error err;
    ba_error_clear(&err);
    ba_sft_data *d = NULL;
    assert_int_not_equal(ba_sft_read_jsonl(path, &d, &err), BA_OK);
    char where[1100];
    snprintf(where, sizeof where, "%s:2", path);
    assert_non_null(strstr(err.message, where));
    ba_error_clear(&err);
    snprintf(path, sizeof path, "%s/missing.jsonl", ba_test_tmpdir());
    assert_int_equal(ba_sft_read_jsonl(path, &d, &err), BA_ERR_IO);
    assert_non_null(strstr(err.message, "missing.jsonl"));
}

/* ---- templates -------------------------------------------------------------- */

static void expect_format(ba_template t, const char *system, const char *ins, const char *inp,
                          const char *want)
{
    ba_sft_record rec = {.instruction = (char *)ins, .input = (char *)inp, .output = "OUT"};
    ba_error err;
    ba_error_clear(&err);
    char *prompt = NULL, *response = NULL;
    if (ba_sft_format(t, system, &rec, &prompt, &response, &err) != BA_OK)
        fail_msg("format: %s", err.message);
    assert_string_equal(prompt, want);
    assert_string_equal(response, "OUT");
    free(prompt);
    free(response);
}

static void test_templates(void **state)
{
    (void)state;
    expect_format(BA_TEMPLATE_PLAIN, NULL, "Do it.", "", "Do it.\n\n");
    expect_format(BA_TEMPLATE_PLAIN, NULL, "Do it.", "with this", "Do it.\n\nwith this\n\n");
    expect_format(BA_TEMPLATE_ALPACA, NULL, "Do it.", "",
                  "Below is an instruction that describes a task. Write a response that "
                  "appropriately completes the request.\n\n### Instruction:\nDo it.\n\n"
                  "### Response:\n");
    expect_format(BA_TEMPLATE_ALPACA, NULL, "Do it.", "with this",
                  "Below is an instruction that describes a task, paired with an input that "
                  "provides further context. Write a response that appropriately completes the "
                  "request.\n\n### Instruction:\nDo it.\n\n### Input:\nwith this\n\n"
                  "### Response:\n");
    expect_format(BA_TEMPLATE_LLAMA2_CHAT, NULL, "Do it.", "", "[INST] Do it. [/INST]");
    expect_format(BA_TEMPLATE_LLAMA2_CHAT, NULL, "Do it.", "with this",
                  "[INST] Do it.\n\nwith this [/INST]");
    expect_format(BA_TEMPLATE_LLAMA2_CHAT, "Be brief.", "Do it.", "",
                  "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nDo it. [/INST]");

    ba_template t;
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(ba_template_parse("llama2-chat", &t, &err), BA_OK);
    assert_int_equal(t, BA_TEMPLATE_LLAMA2_CHAT);
    assert_int_equal(ba_template_parse("chatml", &t, &err), BA_ERR_USAGE);
    assert_non_null(strstr(err.message, "chatml"));
    ba_sft_record rec = {.instruction = "a", .input = "", .output = "b"};
    char *p = NULL, *r = NULL;
    assert_int_equal(ba_sft_format(BA_TEMPLATE_PLAIN, "sys", &rec, &p, &r, &err), BA_ERR_USAGE);
    assert_null(p);
}

/* ---- tokenised samples ------------------------------------------------------ */

static ba_tokenizer *load_tok(const char *rel)
{
    ba_error err;
    ba_error_clear(&err);
    ba_tokenizer *tok = NULL;
    if (ba_tokenizer_load(ba_test_data_path(rel), &tok, &err) != BA_OK)
        fail_msg("load %s: %s", rel, err.message);
    return tok;
}

/* The text and ids of reference/tokens/<story>.<kind>.json (malloc'd). */
static void read_reference(const char *rel, char **text, int32_t **ids, size_t *n)
{
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

typedef ba_status (*ref_encoder)(const ba_tokenizer *, const char *, size_t, int32_t **,
                                 size_t *, ba_error *);

/* A sample of `story` with a hand-written prompt `prompt_text` (the
 * template's expected string): ids must be [bos] + ref(prompt) + the
 * reference ids of the story + [eos], labels masked on [bos] + prompt. */
static void check_story_sample(const char *tok_rel, const char *ref_rel, ref_encoder ref,
                               ba_template t, const char *system, const char *ins,
                               const char *inp, const char *prompt_text, int32_t bos,
                               int32_t eos)
{
    ba_tokenizer *tok = load_tok(tok_rel);
    char *story;
    int32_t *story_ids;
    size_t n_story;
    read_reference(ref_rel, &story, &story_ids, &n_story);
    ba_error err;
    ba_error_clear(&err);
    int32_t *pid;
    size_t np;
    if (ref(tok, prompt_text, strlen(prompt_text), &pid, &np, &err) != BA_OK)
        fail_msg("reference encode: %s", err.message);

    ba_sft_record rec = {.instruction = (char *)ins, .input = (char *)inp, .output = story,
                         .line = 7};
    ba_sft_options opt = {.tmpl = t, .system = system, .bos = bos, .eos = eos,
                          .max_seq_len = 100000, .truncate = false};
    ba_sft_sample s;
    if (ba_sft_tokenize(tok, &opt, &rec, "d.jsonl", &s, &err) != BA_OK)
        fail_msg("tokenize: %s", err.message);
    size_t head = (bos >= 0 ? 1 : 0) + np;
    assert_int_equal(s.n, head + n_story + 1);
    assert_int_equal(s.n_prompt, head);
    assert_int_equal(s.n_target, n_story + 1);
    assert_false(s.truncated);
    size_t at = 0;
    if (bos >= 0) assert_int_equal(s.ids[at++], bos);
    for (size_t i = 0; i < np; i++) assert_int_equal(s.ids[at++], pid[i]);
    for (size_t i = 0; i < n_story; i++) assert_int_equal(s.ids[at++], story_ids[i]);
    assert_int_equal(s.ids[at++], eos);
    for (size_t i = 0; i < s.n; i++)
        assert_int_equal(s.labels[i], i < head ? BA_LABEL_IGNORE : s.ids[i]);

    /* max_seq_len: an error naming file:line, or a cut response with truncate */
    ba_sft_sample c;
    opt.max_seq_len = head + 10;
    assert_int_equal(ba_sft_tokenize(tok, &opt, &rec, "d.jsonl", &c, &err), BA_ERR_VALUE);
    assert_non_null(strstr(err.message, "d.jsonl:7"));
    assert_non_null(strstr(err.message, "max_seq_len"));
    assert_null(c.ids);
    opt.truncate = true;
    ba_error_clear(&err);
    assert_int_equal(ba_sft_tokenize(tok, &opt, &rec, "d.jsonl", &c, &err), BA_OK);
    assert_int_equal(c.n, head + 10);
    assert_true(c.truncated);
    assert_int_equal(c.n_prompt, head);
    assert_int_equal(c.n_target, 10);
    assert_memory_equal(c.ids, s.ids, c.n * sizeof *c.ids);
    assert_memory_equal(c.labels, s.labels, c.n * sizeof *c.labels);
    ba_sft_sample_free(&c);
    opt.max_seq_len = head; /* no room for one response token */
    assert_int_equal(ba_sft_tokenize(tok, &opt, &rec, "d.jsonl", &c, &err), BA_ERR_VALUE);
    assert_non_null(strstr(err.message, "no room"));
    opt.max_seq_len = head + 1; /* exactly one response token, no EOS */
    assert_int_equal(ba_sft_tokenize(tok, &opt, &rec, "d.jsonl", &c, &err), BA_OK);
    assert_int_equal(c.n_target, 1);
    assert_int_equal(c.ids[head], story_ids[0]);
    ba_sft_sample_free(&c);
    opt.eos = ba_tokenizer_vocab_size(tok);
    assert_int_equal(ba_sft_tokenize(tok, &opt, &rec, "d.jsonl", &c, &err), BA_ERR_USAGE);

    ba_sft_sample_free(&s);
    free(pid);
    free(story);
    free(story_ids);
    ba_tokenizer_destroy(tok);
}

static void test_gpt2_plain(void **state)
{
    (void)state;
    check_story_sample("gpt2-tokenizer", "reference/tokens/pieman.gpt2.json",
                       ba_bpe_encode_reference, BA_TEMPLATE_PLAIN, NULL,
                       "Continue the story.", "It begins in a newsroom.",
                       "Continue the story.\n\nIt begins in a newsroom.\n\n", -1, 50256);
}

static void test_gpt2_alpaca(void **state)
{
    (void)state;
    check_story_sample("gpt2-tokenizer", "reference/tokens/lucy.gpt2.json",
                       ba_bpe_encode_reference, BA_TEMPLATE_ALPACA, NULL, "Tell a story.", "",
                       "Below is an instruction that describes a task. Write a response that "
                       "appropriately completes the request.\n\n### Instruction:\nTell a "
                       "story.\n\n### Response:\n", -1, 50256);
}

static void test_llama_alpaca(void **state)
{
    (void)state;
    check_story_sample("llama-tokenizer", "reference/tokens/pieman.llama.json",
                       ba_sp_encode_reference, BA_TEMPLATE_ALPACA, NULL, "Tell a story.",
                       "About a reporter.",
                       "Below is an instruction that describes a task, paired with an input "
                       "that provides further context. Write a response that appropriately "
                       "completes the request.\n\n### Instruction:\nTell a story.\n\n### "
                       "Input:\nAbout a reporter.\n\n### Response:\n", 1, 2);
}

static void test_llama_chat(void **state)
{
    (void)state;
    check_story_sample("llama-tokenizer", "reference/tokens/santa.llama.json",
                       ba_sp_encode_reference, BA_TEMPLATE_LLAMA2_CHAT, "You tell stories.",
                       "Tell one.", "",
                       "[INST] <<SYS>>\nYou tell stories.\n<</SYS>>\n\nTell one. [/INST]", 1, 2);
}

static void test_dataset_build(void **state)
{
    (void)state;
    ba_tokenizer *tok = load_tok("gpt2-tokenizer");
    ba_sft_data *d = parse_ok("{\"instruction\": \"a\", \"output\": \"short\"}\n"
                              "{\"instruction\": \"b\", \"output\": \"one two three four five "
                              "six seven eight nine ten\"}\n");
    ba_sft_options opt = {.tmpl = BA_TEMPLATE_PLAIN, .bos = -1, .eos = 50256,
                          .max_seq_len = 6, .truncate = false};
    ba_error err;
    ba_error_clear(&err);
    ba_sft_dataset *ds = NULL;
    assert_int_equal(ba_sft_dataset_build(tok, &opt, d, &ds, &err), BA_ERR_VALUE);
    assert_null(ds);
    assert_non_null(strstr(err.message, "t.jsonl:2"));
    opt.truncate = true;
    assert_int_equal(ba_sft_dataset_build(tok, &opt, d, &ds, &err), BA_OK);
    assert_int_equal(ds->n, 2);
    assert_int_equal(ds->n_truncated, 1);
    assert_int_equal(ds->max_len, 6);
    ba_sft_dataset_destroy(ds);
    ba_sft_data_destroy(d);
    /* invalid UTF-8 is refused by GPT-2's tokenizer: the message names the line */
    d = parse_ok("{\"instruction\": \"a\", \"output\": \"b\"}\n");
    free(d->records[0].output);
    d->records[0].output = strdup("bad \xff byte");
    opt.max_seq_len = 100;
    assert_int_not_equal(ba_sft_dataset_build(tok, &opt, d, &ds, &err), BA_OK);
    assert_non_null(strstr(err.message, "t.jsonl:1"));
    ba_sft_data_destroy(d);
    ba_tokenizer_destroy(tok);
}

/* ---- order ------------------------------------------------------------------ */

static void test_order_no_shuffle(void **state)
{
    (void)state;
    ba_error err;
    ba_error_clear(&err);
    size_t idx[7];
    for (int64_t s = 0; s < 10; s++) {
        assert_int_equal(ba_sft_batch_indices(5, 1, false, s, 7, idx, &err), BA_OK);
        for (size_t j = 0; j < 7; j++) assert_int_equal(idx[j], ((size_t)s * 7 + j) % 5);
    }
    assert_int_equal(ba_sft_batch_indices(0, 1, false, 0, 7, idx, &err), BA_ERR_USAGE);
    assert_int_equal(ba_sft_batch_indices(5, 1, false, -1, 7, idx, &err), BA_ERR_USAGE);
}

static void test_order_shuffle(void **state)
{
    (void)state;
    enum { N = 23, EPOCHS = 4 };
    ba_error err;
    ba_error_clear(&err);
    /* the stream one sample per step */
    size_t stream[N * EPOCHS];
    for (int64_t s = 0; s < N * EPOCHS; s++)
        assert_int_equal(ba_sft_batch_indices(N, 42, true, s, 1, &stream[s], &err), BA_OK);
    /* each epoch is a permutation, epochs differ, and it is not file order */
    for (int e = 0; e < EPOCHS; e++) {
        int seen[N] = {0};
        for (int i = 0; i < N; i++) seen[stream[e * N + i]]++;
        for (int i = 0; i < N; i++) assert_int_equal(seen[i], 1);
        int identity = 1;
        for (int i = 0; i < N; i++) identity &= stream[e * N + i] == (size_t)i;
        assert_false(identity);
    }
    assert_memory_not_equal(stream, stream + N, N * sizeof *stream);
    /* batches of 5 are slices of the same stream, crossing epochs */
    size_t idx[5];
    for (int64_t s = 0; s < (N * EPOCHS) / 5; s++) {
        assert_int_equal(ba_sft_batch_indices(N, 42, true, s, 5, idx, &err), BA_OK);
        assert_memory_equal(idx, stream + s * 5, sizeof idx);
    }
    /* another seed, another order */
    size_t other[N];
    for (int64_t s = 0; s < N; s++)
        assert_int_equal(ba_sft_batch_indices(N, 43, true, s, 1, &other[s], &err), BA_OK);
    assert_memory_not_equal(stream, other, sizeof other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jsonl_good),
        cmocka_unit_test(test_jsonl_bad),
        cmocka_unit_test(test_jsonl_file),
        cmocka_unit_test(test_templates),
        cmocka_unit_test(test_gpt2_plain),
        cmocka_unit_test(test_gpt2_alpaca),
        cmocka_unit_test(test_llama_alpaca),
        cmocka_unit_test(test_llama_chat),
        cmocka_unit_test(test_dataset_build),
        cmocka_unit_test(test_order_no_shuffle),
        cmocka_unit_test(test_order_shuffle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
