/* test_features_windows.c — the `features` stage on a tiny random GPT-2
 * checkpoint with the real GPT-2 vocabulary and the first words of a real
 * Narratives story, under mpiexec -n 2:
 *   - the window rule against a brute-force search;
 *   - context >= story length: the output equals ONE forward pass over the
 *     whole story (bitwise for hidden states);
 *   - small windows (32, stride 16; with and without BOS; stride = context):
 *     every word's vector is the forward pass of exactly the window the
 *     rule names (earliest window containing the word's last token,
 *     recomputed here directly), and its surprisal the sum of its tokens'
 *     log-probabilities, each from its own token's window;
 *   - 2 ranks and 1 rank give bitwise identical files;
 *   - bad inputs: an error on every rank and no output file. */
#include <mpi.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"
#include "brainalign/pipeline/features.h"
#include "brainalign/io/features_io.h"
#include "brainalign/io/h5io.h"
#include "brainalign/lm/model.h"
#include "brainalign/io/stimuli.h"
#include "brainalign/lm/tokenizer.h"

#define STORY "pieman"
#define N_STORY_WORDS 130
#define N_LAYERS 2
#define POSITIONS 256

static char g_dir[4096];
static char g_ckpt[4200], g_stim[4200];

static int my_rank(void)
{
    int r = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

static bool exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* The first n lines of the real pieman align.csv as a story directory. */
static void write_story_excerpt(const char *dir, size_t n_lines)
{
    size_t len = 0;
    char *text = ba_test_read_file(ba_test_data_path("narratives/stimuli/pieman/align.csv"), &len);
    size_t at = 0;
    for (size_t lines = 0; at < len && lines < n_lines; at++)
        if (text[at] == '\n') lines++;
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, STORY);
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/%s/align.csv", dir, STORY);
    ba_test_write_file(path, text, at);
    free(text);
}

static int setup_all(void **state)
{
    (void)state;
    ba_error err;
    ba_error_clear(&err);
    if (my_rank() == 0) {
        snprintf(g_dir, sizeof g_dir, "%s", ba_test_tmpdir());
        snprintf(g_ckpt, sizeof g_ckpt, "%s/ckpt", g_dir);
        ba_random_checkpoint spec = {.arch = BA_ARCH_GPT2, .n_layers = N_LAYERS, .d_model = 32,
                                     .n_heads = 4, .n_positions = POSITIONS,
                                     .dtype = BA_DTYPE_F32, .init_std = 0.25, .seed = 11,
                                     .n_shards = 1,
                                     .vocab_from = ba_test_data_path("gpt2-tokenizer")};
        if (ba_model_write_random(&spec, g_ckpt, &err) != BA_OK) fail_msg("%s", err.message);
        snprintf(g_stim, sizeof g_stim, "%s/stim", g_dir);
        write_story_excerpt(g_stim, N_STORY_WORDS);
    }
    MPI_Bcast(g_dir, sizeof g_dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    snprintf(g_ckpt, sizeof g_ckpt, "%s/ckpt", g_dir);
    snprintf(g_stim, sizeof g_stim, "%s/stim", g_dir);
    return 0;
}

/* ---- the rule, by brute force ---------------------------------------------------- */

static size_t brute_owner(size_t t, size_t C, size_t S)
{
    for (size_t k = 0;; k++)
        if (k * S <= t && t < k * S + C) return k;
}

static void test_window_rule_brute_force(void **state)
{
    (void)state;
    for (size_t C = 1; C <= 12; C++)
        for (size_t S = 1; S <= C; S++)
            for (size_t n = 0; n <= 40; n++) {
                size_t windows = ba_feature_window_count(n, C, S);
                size_t expect = n ? brute_owner(n - 1, C, S) + 1 : 0;
                assert_int_equal(windows, expect);
                size_t covered = 0;
                for (size_t k = 0; k < windows; k++) {
                    size_t b, e, ob, oe;
                    ba_feature_window_span(k, n, C, S, &b, &e, &ob, &oe);
                    assert_int_equal(b, k * S);
                    assert_int_equal(e, k * S + C < n ? k * S + C : n);
                    assert_int_equal(ob, covered); /* owned ranges tile [0, n) */
                    for (size_t t = ob; t < oe; t++) {
                        assert_int_equal(brute_owner(t, C, S), k);
                        assert_int_equal(ba_feature_window_of_token(t, C, S), k);
                        /* the promised left context */
                        assert_true(t < C || t - b >= C - S);
                    }
                    covered = oe;
                }
                assert_int_equal(covered, n);
            }
}

/* ---- expected values, straight from the model --------------------------------------- */

typedef struct {
    ba_model *model;
    ba_model_ctx *ctx;
    int32_t *ids;
    size_t n_tokens, n_words, *word_end;
    ba_story story;
} story_input;

static void load_input(story_input *in)
{
    ba_error err;
    ba_error_clear(&err);
    ba_tokenizer *tok = NULL;
    char path[4400];
    snprintf(path, sizeof path, "%s/%s/align.csv", g_stim, STORY);
    if (ba_story_read(path, BA_STIM_AUTO, STORY, &in->story, &err) ||
        ba_model_load(g_ckpt, &in->model, &err) ||
        ba_model_ctx_create(in->model, &in->ctx, &err) || ba_tokenizer_load(g_ckpt, &tok, &err))
        fail_msg("%s", err.message);
    in->n_words = in->story.n_words;
    in->word_end = calloc(in->n_words, sizeof *in->word_end);
    if (ba_tokenizer_encode_words(tok, in->story.words, in->n_words, &in->ids, &in->n_tokens,
                                  in->word_end, &err))
        fail_msg("%s", err.message);
    ba_tokenizer_destroy(tok);
    assert_int_equal(in->n_words, N_STORY_WORDS);
    assert_true(in->n_tokens > in->n_words); /* some words take several tokens */
}

static void free_input(story_input *in)
{
    ba_model_ctx_destroy(in->ctx);
    ba_model_destroy(in->model);
    free(in->ids);
    free(in->word_end);
    ba_story_free(&in->story);
}

/* The forward pass of story tokens [b, e) (with BOS when bos >= 0). */
typedef struct {
    size_t lead, n;
    float *hidden, *logp;
} window_out;

static window_out forward_window(story_input *in, size_t b, size_t e, int bos, const int *layers,
                                 int n_layers)
{
    window_out w = {bos >= 0 ? 1 : 0, 0, NULL, NULL};
    w.n = e - b + w.lead;
    int32_t *ids = malloc(w.n * sizeof *ids);
    if (bos >= 0) ids[0] = bos;
    memcpy(ids + w.lead, in->ids + b, (e - b) * sizeof *ids);
    size_t d = (size_t)ba_model_d_model(in->model);
    w.hidden = malloc((size_t)n_layers * w.n * d * sizeof(float));
    w.logp = malloc(w.n * sizeof(float));
    ba_error err;
    ba_error_clear(&err);
    if (ba_model_forward(in->ctx, ids, w.n, layers, n_layers, w.hidden, w.logp, &err))
        fail_msg("%s", err.message);
    free(ids);
    return w;
}

/* Expected output for windows of C tokens, stride S, by the rule brute
 * force: hidden [n_layers][n_words][d], surprisal [n_words]. */
static void expected_features(story_input *in, size_t C, size_t S, int bos, const int *layers,
                              int n_layers, float *hidden, float *surprisal)
{
    size_t d = (size_t)ba_model_d_model(in->model), n = in->n_tokens;
    size_t n_windows = brute_owner(n - 1, C, S) + 1;
    window_out *win = calloc(n_windows, sizeof *win);
    for (size_t k = 0; k < n_windows; k++)
        win[k] = forward_window(in, k * S, k * S + C < n ? k * S + C : n, bos, layers, n_layers);
    double *token_logp = calloc(n, sizeof *token_logp);
    for (size_t t = 0; t < n; t++) {
        size_t k = brute_owner(t, C, S), p = t - k * S + win[k].lead;
        token_logp[t] = p ? win[k].logp[p - 1] : NAN;
    }
    for (size_t w = 0, t = 0; w < in->n_words; w++) {
        double sum = 0;
        for (; t < in->word_end[w]; t++) sum += token_logp[t];
        surprisal[w] = (float)-sum;
        size_t last = in->word_end[w] - 1, k = brute_owner(last, C, S);
        size_t p = last - k * S + win[k].lead;
        for (int l = 0; l < n_layers; l++)
            memcpy(hidden + ((size_t)l * in->n_words + w) * d,
                   win[k].hidden + ((size_t)l * win[k].n + p) * d, d * sizeof(float));
    }
    for (size_t k = 0; k < n_windows; k++) {
        free(win[k].hidden);
        free(win[k].logp);
    }
    free(win);
    free(token_logp);
}

/* ---- running the stage and reading its output --------------------------------------- */

static ba_status run_stage(MPI_Comm comm, long C, long S, ba_bos_mode bos, const int *layers,
                           int n_layers, const char *out, ba_features_summary *sum,
                           ba_error *err)
{
    ba_features_config cfg;
    ba_features_config_defaults(&cfg);
    cfg.model_dir = g_ckpt;
    cfg.stimuli_dir = g_stim;
    cfg.context = C;
    cfg.stride = S;
    cfg.bos = bos;
    if (layers) {
        cfg.all_layers = false;
        cfg.n_layers = n_layers;
        memcpy(cfg.layers, layers, (size_t)n_layers * sizeof *layers);
    }
    cfg.out_path = out;
    cfg.quiet = true;
    cfg.command_line = "test_features_windows";
    return ba_features_run(&cfg, comm, sum, err);
}

typedef struct {
    float *hidden, *surprisal;
    double *onset;
    long n_words;
    int n_layers;
    long long layers[8];
} features_out;

static features_out read_output(const char *path, size_t d)
{
    features_out o = {0};
    ba_error err;
    ba_error_clear(&err);
    ba_features_file ff;
    if (ba_features_open(&ff, path, MPI_COMM_SELF, &err)) fail_msg("%s", err.message);
    assert_int_equal(ff.n_stories, 1);
    assert_string_equal(ff.stories[0], STORY);
    assert_int_equal(ff.d_model, (long)d);
    o.n_layers = ff.n_layers;
    for (int l = 0; l < ff.n_layers && l < 8; l++) o.layers[l] = ff.layers[l];
    if (ba_features_story_words(&ff, STORY, &o.n_words, &err)) fail_msg("%s", err.message);
    o.hidden = malloc((size_t)o.n_layers * o.n_words * d * sizeof(float));
    o.surprisal = malloc(o.n_words * sizeof(float));
    o.onset = malloc(o.n_words * sizeof(double));
    for (int l = 0; l < o.n_layers; l++)
        if (ba_features_read_layer(&ff, STORY, l, o.hidden + (size_t)l * o.n_words * d, &err))
            fail_msg("%s", err.message);
    if (ba_features_read_onsets(&ff, STORY, o.onset, &err) ||
        ba_h5_read(&ff.file, "/stories/" STORY "/surprisal", BA_H5_F32, NULL, NULL, o.surprisal,
                   &err))
        fail_msg("%s", err.message);
    ba_features_close(&ff);
    return o;
}

static void free_output(features_out *o)
{
    free(o->hidden);
    free(o->surprisal);
    free(o->onset);
}

static void out_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", g_dir, name);
}

/* Compare a run of the stage with the rule recomputed here. */
static void check_against_rule(long C, long S, ba_bos_mode bos, const char *name,
                               size_t expect_windows)
{
    story_input in = {0};
    load_input(&in);
    int layers[] = {N_LAYERS, 0, 1};
    int n_layers = 3;
    size_t d = (size_t)ba_model_d_model(in.model);
    char path[4400];
    out_path(path, sizeof path, name);
    ba_features_summary sum;
    ba_error err;
    ba_error_clear(&err);
    if (run_stage(MPI_COMM_WORLD, C, S, bos, layers, n_layers, path, &sum, &err))
        fail_msg("%s", err.message);
    assert_int_equal(sum.n_tokens, (long)in.n_tokens);
    if (expect_windows) assert_int_equal(sum.n_windows, (long)expect_windows);
    int bos_id = bos == BA_BOS_YES ? 50256 : -1;
    assert_int_equal(sum.bos_token, bos_id);
    float *hidden = malloc((size_t)n_layers * in.n_words * d * sizeof(float));
    float *surprisal = malloc(in.n_words * sizeof(float));
    expected_features(&in, (size_t)sum.context, (size_t)sum.stride, bos_id, layers, n_layers,
                      hidden, surprisal);
    features_out o = read_output(path, d);
    assert_int_equal(o.n_words, (long)in.n_words);
    assert_int_equal(o.n_layers, n_layers);
    for (int l = 0; l < n_layers; l++) assert_int_equal(o.layers[l], layers[l]);
    /* The same window computed the same way: the same bits. */
    assert_memory_equal(o.hidden, hidden, (size_t)n_layers * in.n_words * d * sizeof(float));
    for (size_t w = 0; w < in.n_words; w++) {
        if (isnan(surprisal[w])) {
            assert_true(isnan(o.surprisal[w]));
            continue;
        }
        assert_true(fabsf(o.surprisal[w] - surprisal[w]) <= 1e-6f * (1 + fabsf(surprisal[w])));
        assert_true(surprisal[w] > 0);
    }
    for (size_t w = 0; w < in.n_words; w++) assert_true(o.onset[w] == in.story.onset[w]);
    /* Without BOS the first word has nothing before its first token. */
    assert_int_equal(isnan(o.surprisal[0]), bos_id < 0);
    free_output(&o);
    free(hidden);
    free(surprisal);
    free_input(&in);
}

static void test_small_windows_follow_the_rule(void **state)
{
    (void)state;
    check_against_rule(32, 16, BA_BOS_NO, "w32s16.h5", 0);
}

static void test_small_windows_with_bos(void **state)
{
    (void)state;
    check_against_rule(32, 16, BA_BOS_YES, "w32s16bos.h5", 0);
}

static void test_uneven_stride_and_no_overlap(void **state)
{
    (void)state;
    check_against_rule(24, 7, BA_BOS_NO, "w24s7.h5", 0);
    check_against_rule(20, 20, BA_BOS_NO, "w20s20.h5", 0);
}

/* context >= the story: the stage equals one forward over the whole story. */
static void test_whole_story_is_one_forward(void **state)
{
    (void)state;
    story_input in = {0};
    load_input(&in);
    assert_true(in.n_tokens <= POSITIONS);
    int layers[N_LAYERS + 1];
    for (int l = 0; l <= N_LAYERS; l++) layers[l] = l;
    size_t d = (size_t)ba_model_d_model(in.model);
    window_out whole = forward_window(&in, 0, in.n_tokens, -1, layers, N_LAYERS + 1);
    char path[4400];
    out_path(path, sizeof path, "whole.h5");
    ba_features_summary sum;
    ba_error err;
    ba_error_clear(&err);
    /* 4096 is capped at the model's 256 positions. */
    if (run_stage(MPI_COMM_WORLD, 4096, 0, BA_BOS_AUTO, NULL, 0, path, &sum, &err))
        fail_msg("%s", err.message);
    assert_int_equal(sum.context, POSITIONS);
    assert_int_equal(sum.stride, POSITIONS / 2);
    assert_int_equal(sum.n_windows, 1);
    assert_int_equal(sum.bos_token, -1); /* auto: no BOS for GPT-2 */
    features_out o = read_output(path, d);
    assert_int_equal(o.n_layers, N_LAYERS + 1);
    for (size_t w = 0, t = 0; w < in.n_words; w++) {
        size_t last = in.word_end[w] - 1;
        for (int l = 0; l <= N_LAYERS; l++)
            assert_memory_equal(o.hidden + ((size_t)l * in.n_words + w) * d,
                                whole.hidden + ((size_t)l * in.n_tokens + last) * d,
                                d * sizeof(float));
        double sum_lp = 0;
        for (; t < in.word_end[w]; t++) sum_lp += t ? whole.logp[t - 1] : NAN;
        if (w == 0) assert_true(isnan(o.surprisal[0]));
        else assert_true(fabs(o.surprisal[w] + sum_lp) <= 1e-6 * (1 + fabs(sum_lp)));
    }
    free_output(&o);
    free(whole.hidden);
    free(whole.logp);
    free_input(&in);
}

/* Every rank alone (MPI_COMM_SELF) writes the same bits as both together. */
static void test_rank_count_does_not_matter(void **state)
{
    (void)state;
    char both[4400], alone[4400], name[64];
    out_path(both, sizeof both, "both.h5");
    snprintf(name, sizeof name, "alone-%d.h5", my_rank());
    out_path(alone, sizeof alone, name);
    ba_features_summary s2, s1;
    ba_error err;
    ba_error_clear(&err);
    if (run_stage(MPI_COMM_WORLD, 32, 16, BA_BOS_NO, NULL, 0, both, &s2, &err) ||
        run_stage(MPI_COMM_SELF, 32, 16, BA_BOS_NO, NULL, 0, alone, &s1, &err))
        fail_msg("%s", err.message);
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size > 1) assert_true(s2.my_windows > 0 && s2.my_windows < s2.n_windows);
    assert_int_equal(s1.my_windows, s1.n_windows);
    assert_string_equal(s1.checkpoint, s2.checkpoint);
    size_t d = (size_t)s2.d_model;
    features_out a = read_output(both, d), b = read_output(alone, d);
    assert_int_equal(a.n_layers, N_LAYERS + 1);
    assert_memory_equal(a.hidden, b.hidden, (size_t)a.n_layers * a.n_words * d * sizeof(float));
    assert_memory_equal(a.surprisal, b.surprisal, (size_t)a.n_words * sizeof(float));
    free_output(&a);
    free_output(&b);
}

/* ---- bad inputs ------------------------------------------------------------------------ */

static void expect_failure(ba_status rc, const ba_error *err, const char *fragment,
                           const char *out)
{
    assert_int_not_equal(rc, BA_OK);
    if (!strstr(err->message, fragment))
        fail_msg("expected an error mentioning '%s', got: %s", fragment, err->message);
    MPI_Barrier(MPI_COMM_WORLD);
    assert_false(exists(out));
}

static void test_bad_inputs_fail_everywhere(void **state)
{
    (void)state;
    char out[4400];
    out_path(out, sizeof out, "never.h5");
    ba_features_summary sum;
    ba_error err;
    ba_error_clear(&err);
    int bad_layer[] = {0, 3};
    ba_status rc = run_stage(MPI_COMM_WORLD, 32, 16, BA_BOS_NO, bad_layer, 2, out, &sum, &err);
    expect_failure(rc, &err, "layer 3 does not exist", out);
    assert_non_null(strstr(err.message, "0 (embeddings) .. 2"));

    rc = run_stage(MPI_COMM_WORLD, 32, 33, BA_BOS_NO, NULL, 0, out, &sum, &err);
    expect_failure(rc, &err, "--stride 33 must be between 1 and the context", out);

    ba_features_config cfg;
    ba_features_config_defaults(&cfg);
    cfg.model_dir = g_ckpt;
    cfg.out_path = out;
    cfg.quiet = true;
    char missing[4400];
    snprintf(missing, sizeof missing, "%s/no-such-stimuli", g_dir);
    cfg.stimuli_dir = missing;
    rc = ba_features_run(&cfg, MPI_COMM_WORLD, &sum, &err);
    expect_failure(rc, &err, "no-such-stimuli: stimuli not found", out);

    char *names[] = {"pieman", "nosuchstory"};
    cfg.stimuli_dir = g_stim;
    cfg.stories = names;
    cfg.n_stories = 2;
    rc = ba_features_run(&cfg, MPI_COMM_WORLD, &sum, &err);
    expect_failure(rc, &err, "no story 'nosuchstory'", out);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_rule_brute_force),
        cmocka_unit_test(test_whole_story_is_one_forward),
        cmocka_unit_test(test_small_windows_follow_the_rule),
        cmocka_unit_test(test_small_windows_with_bos),
        cmocka_unit_test(test_uneven_stride_and_no_overlap),
        cmocka_unit_test(test_rank_count_does_not_matter),
        cmocka_unit_test(test_bad_inputs_fail_everywhere),
    };
    int failed = cmocka_run_group_tests(tests, setup_all, NULL);
    MPI_Finalize();
    return failed;
}
