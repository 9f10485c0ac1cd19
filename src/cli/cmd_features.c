/* cmd_features.c — `brainalign features`: parse options, call
 * ba_features_run, print what was done. */
#include <cblas.h>
#include <limits.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "brainalign/core/fs.h"
#include "commands.h"
#include "brainalign/pipeline/design.h"
#include "brainalign/pipeline/features.h"
#include "brainalign/pipeline/features_options.h"
#include "brainalign/parallel/parallel.h"

#define MAX_STORIES 4096

static void help(void)
{
    printf(
        "usage: mpirun -np N brainalign features --model DIR --stimuli DIR --out FEATURES.h5\n"
        "                                        [options]\n\n"
        "Hidden states and surprisal of a causal language model for every word of every\n"
        "story. Each story is tokenised as the text \" \".join(words); a word's vector is\n"
        "the hidden state of its last token, its surprisal -log p(word | context) in nats\n"
        "(the sum over its tokens).\n\n"
        "Windows: every token sees up to C tokens of the story before it. Windows start at\n"
        "tokens 0, S, 2S, ... and cover [kS, kS + C); each token is taken from the EARLIEST\n"
        "window that contains it (the one giving it the most left context), so every token\n"
        "has at least C - S tokens of left context except the first C of a story. The\n"
        "surprisal of a token with nothing before it in its window (the story's first token\n"
        "without BOS; with S = C the first of every window) is NaN.\n\n"
        "inputs:\n"
        "  --model DIR         config.json, *.safetensors and the tokenizer files\n"
        "  --stimuli DIR       stories: <story>/align.csv, <story>.TextGrid, <story>.tsv\n"
        "                      (or one story file)\n"
        "  --stories A,B,...   only these stories, in this order (default: all, by name)\n"
        "  --format F          auto (default, by file name), align-csv, textgrid or tsv\n"
        "                      (align-csv also reads <story>.csv, tsv <story>.csv)\n"
        "model:\n"
        "  --layers L          'all' (default) or HF hidden-state indices 'i,j,...' or 'i..j'\n"
        "                      (0 = embeddings, n_layers = last, after the final norm)\n"
        );
    ba_option_help(&ba_features_option_table, "model", stdout);
    printf(
        "  --adapter DIR       apply a PEFT LoRA adapter (adapter_config.json and\n"
        "                      adapter_model.safetensors, e.g. from `brainalign finetune`):\n"
        "                      W x + (lora_alpha / r) B A x at every module it targets; its\n"
        "                      identity is recorded in the file's root attribute 'adapter'\n"
        "associative memory (see include/brainalign/pipeline/associations.h):\n"
        "  --associations FILE a JSONL association set: the model reads each story with the\n"
        "                      associations inserted; features are still given for the\n"
        "                      story's own words only (their tokens in the augmented text),\n"
        "                      with their own timings\n"
        "  --policy P          human (at the given places, default), every-k (the GPT-4\n"
        "                      setting: after every k-th sentence), word (word-level phrases\n"
        "                      after their words), random (the control: same places and\n"
        "                      lengths, words from other stories; random-every-k, random-word)\n"
        "  --every K           sentences per block for every-k (default 4)\n"
        "  --seed S            seed of the random control (default 2025)\n"
        "output:\n"
        "  --condition NAME    recorded in the file (default: the association set's file\n"
        "                      name without extension, then -POLICY unless the policy is\n"
        "                      human, e.g. human-random for the control; else baseline)\n"
        "  --out FILE          features.h5 (written under a temporary name, then renamed)\n"
        "  --quiet             no progress on standard error\n"
        "  --timing            per-rank forward times\n\n"
        "Matrix products use OpenBLAS (and OpenMP for --matmul bf16, with as many threads):\n"
        "with several ranks per node, set OPENBLAS_NUM_THREADS so that ranks x threads =\n"
        "cores.\n");
}

/* Split "a,b,c" in place into at most `max` names. */
static int split_names(char *text, char **names, int max)
{
    int n = 0;
    for (char *tok = strtok(text, ","); tok; tok = strtok(NULL, ",")) {
        if (n == max) return -1;
        names[n++] = tok;
    }
    return n;
}

static void print_summary(const ba_features_summary *s, const ba_features_config *cfg,
                          MPI_Comm comm, bool timing)
{
    double max_fwd = 0;
    long total_windows = 0;
    MPI_Reduce(&s->seconds_forward, &max_fwd, 1, MPI_DOUBLE, MPI_MAX, 0, comm);
    MPI_Reduce(&s->my_windows, &total_windows, 1, MPI_LONG, MPI_SUM, 0, comm);
    int rank = 0, size = 1;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    if (timing) {
        /* One line per rank, in rank order. */
        for (int r = 0; r < size; r++) {
            if (r == rank)
                printf("rank %d: %ld windows, %ld window tokens, forward %.2f s, %.2f CPU s "
                       "(OpenBLAS %s, %d thread(s))\n", rank, s->my_windows,
                       s->my_window_tokens, s->seconds_forward, s->cpu_seconds_forward,
                       openblas_get_corename(), openblas_get_num_threads());
            fflush(stdout);
            MPI_Barrier(comm);
        }
    }
    if (rank != 0) return;
    printf("features: %zu stories, %ld words, %ld tokens; %ld windows of up to %ld story "
           "tokens (stride %ld, BOS %s), %ld window tokens; %d layers of width %ld\n",
           s->n_stories, s->n_words, s->n_tokens, s->n_windows, s->context, s->stride,
           s->bos_token >= 0 ? "yes" : "no", s->n_window_tokens, s->n_layers, s->d_model);
    if (cfg->matmul == BA_MATMUL_BF16)
        printf("products: bf16 (LLaMA BF16 matrices: activations rounded to bfloat16, float32 "
               "sums)\n");
    if (cfg->associations)
        printf("associations: %zu inserted from %s (policy %s), %ld words added; features at "
               "the stories' own words\n", s->n_insertions, cfg->associations,
               ba_augment_policy_name(&cfg->augment), s->n_inserted_words);
    if (s->stimuli.n_interpolated || s->stimuli.n_clamped || s->stimuli.n_skipped)
        printf("stimuli: %zu words with interpolated times, %zu onsets clamped, %zu "
               "non-speech intervals skipped\n", s->stimuli.n_interpolated,
               s->stimuli.n_clamped, s->stimuli.n_skipped);
    printf("time: %.2f s in all, forward %.2f s (slowest rank), %d rank(s): %.1f story "
           "tokens/s, %.1f window tokens/s\n", s->seconds_total, max_fwd, size,
           s->n_tokens / s->seconds_total, s->n_window_tokens / s->seconds_total);
    if (cfg->adapter_dir) printf("adapter: %s\n", s->adapter);
    printf("wrote %s (checkpoint %s)\n", cfg->out_path, s->checkpoint);
}

/* SIGTERM (SLURM's time limit, or a user): stop at the next window, remove
 * the unfinished output, exit 1. */
static volatile sig_atomic_t stop_requested = 0;

static void on_terminate(int signal_number)
{
    (void)signal_number;
    stop_requested = 1;
}

int ba_cmd_features(int argc, char **argv)
{
    ba_features_config cfg;
    ba_features_config_defaults(&cfg);
    ba_features_options options;
    ba_features_options_defaults(&options);
    ba_error err;
    ba_error_clear(&err);
    ba_args a;
    ba_args_init(&a, argc, argv);
    bool timing = false, policy_given = false;
    char layer_text[1024] = "", story_text[65536] = "", usage_error[1200] = "";
    static char *names[MAX_STORIES];
    long number = 0;
    while (ba_args_more(&a)) {
        if (ba_cli_is_help(argv[a.i])) { help(); return 0; }
        if (ba_args_value(&a, "--model")) cfg.model_dir = a.value;
        else if (ba_args_value(&a, "--stimuli")) cfg.stimuli_dir = a.value;
        else if (ba_args_value(&a, "--stories"))
            snprintf(story_text, sizeof story_text, "%s", a.value);
        else if (ba_args_value(&a, "--format")) {
            if (ba_stimulus_format_parse(a.value, &cfg.format, &err))
                snprintf(usage_error, sizeof usage_error, "--format: %s", err.message);
        } else if (ba_args_value(&a, "--layers") || ba_args_value(&a, "--layer"))
            snprintf(layer_text, sizeof layer_text, "%s", a.value);
        else if (ba_args_table(&a, &ba_features_option_table, &options)) continue;
        else if (ba_args_value(&a, "--adapter")) cfg.adapter_dir = a.value;
        else if (ba_args_value(&a, "--associations")) cfg.associations = a.value;
        else if (ba_args_value(&a, "--policy")) {
            if (ba_augment_policy_parse(a.value, &cfg.augment, &err))
                snprintf(usage_error, sizeof usage_error, "--policy: %s", err.message);
            policy_given = true;
        } else if (ba_args_value(&a, "--every")) {
            if (ba_args_long(&a, "--every", &number)) {
                if (number < 1 || number > INT_MAX)
                    snprintf(a.error, sizeof a.error, "--every %s must be a whole number from 1 to "
                             "%d", a.value, INT_MAX);
                else cfg.augment.every_k = (int)number;
            }
            policy_given = true;
        } else if (ba_args_value(&a, "--seed")) {
            if (ba_args_long(&a, "--seed", &number)) {
                if (number < 0)
                    snprintf(a.error, sizeof a.error, "--seed %s must be a whole number >= 0",
                             a.value);
                else cfg.augment.seed = (uint64_t)number;
            }
            policy_given = true;
        } else if (ba_args_value(&a, "--condition")) cfg.condition = a.value;
        else if (ba_args_value(&a, "--out")) cfg.out_path = a.value;
        else if (ba_args_flag(&a, "--quiet")) cfg.quiet = true;
        else if (ba_args_flag(&a, "--timing")) timing = true;
        else snprintf(a.error, sizeof a.error, "unknown option '%s' (see --help)", argv[a.i]);
    }
    if (!a.error[0] && usage_error[0]) snprintf(a.error, sizeof a.error, "%s", usage_error);
    ba_features_options_apply(&options, &cfg);
    if (!a.error[0] && policy_given && !cfg.associations)
        snprintf(a.error, sizeof a.error, "--policy, --every and --seed need --associations");
    if (!a.error[0] && layer_text[0] && strcmp(layer_text, "all") != 0) {
        cfg.all_layers = false;
        if (ba_parse_int_list(layer_text, cfg.layers, BA_FEATURES_MAX_LAYERS, &cfg.n_layers,
                              &err))
            snprintf(a.error, sizeof a.error, "--layers: %s (or 'all')", err.message);
    }
    if (!a.error[0] && story_text[0]) {
        int n = split_names(story_text, names, MAX_STORIES);
        if (n <= 0) snprintf(a.error, sizeof a.error, "--stories: give 1 to %d names, "
                             "comma-separated", MAX_STORIES);
        cfg.stories = names;
        cfg.n_stories = n > 0 ? (size_t)n : 0;
    }
    /* names that become HDF5 groups and, in `run`, file names */
    for (size_t i = 0; !a.error[0] && cfg.stories && i < cfg.n_stories; i++)
        if (ba_check_name("--stories: story", cfg.stories[i], &err) != BA_OK)
            snprintf(a.error, sizeof a.error, "%s", err.message);
    if (!a.error[0] && cfg.condition && ba_check_name("--condition", cfg.condition, &err) != BA_OK)
        snprintf(a.error, sizeof a.error, "%s", err.message);
    if (a.error[0]) {
        ba_fail(&err, BA_ERR_USAGE, "%s", a.error);
        return ba_cli_report("features", BA_ERR_USAGE, &err);
    }
    char command[4096];
    ba_args_command_line(argc, argv, command, sizeof command);
    cfg.command_line = command;

    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_terminate;
    sigaction(SIGTERM, &action, NULL);
    cfg.stop_requested = &stop_requested;
    ba_features_summary summary;
    ba_status rc = ba_features_run(&cfg, MPI_COMM_WORLD, &summary, &err);
    if (rc != BA_OK) return ba_cli_report("features", rc, &err);
    print_summary(&summary, &cfg, MPI_COMM_WORLD, timing);
    fflush(stdout);
    return 0;
}
