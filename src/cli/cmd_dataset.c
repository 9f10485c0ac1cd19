/* cmd_dataset.c — `brainalign dataset`: the Association instruction data
 * (story passages + association sets, Alpaca imports) as the JSONL that
 * `finetune` reads. Argument parsing only; the work is ba_dataset_build
 * (brainalign/pipeline/dataset.h). A serial tool: rank 0 works, every rank
 * returns its status. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "brainalign/parallel/parallel.h"
#include "brainalign/pipeline/dataset.h"

#define MAX_FILES 1024

static void help(void)
{
    printf(
        "usage: brainalign dataset --stories DIR|FILE... --associations SET.jsonl...\n"
        "                          (--passage-sentences N | --passage-words N) --out TRAIN.jsonl\n"
        "                          [--val-out VAL.jsonl --val-fraction F] [options]\n"
        "       brainalign dataset --import-alpaca FILE.json|.jsonl --out TRAIN.jsonl [...]\n\n"
        "Builds instruction-tuning data, one JSON object per line with \"instruction\", \"input\"\n"
        "and \"output\" (the JSONL that finetune reads; provenance keys beside them). Each\n"
        "association becomes a sample: input = the story passage that ends where the association\n"
        "is inserted (the words joined by spaces), output = the association text, instruction =\n"
        "--instruction. Then exact duplicates are dropped, samples longer than --max-tokens are\n"
        "filtered, and a seeded train/validation split is written. See\n"
        "include/brainalign/pipeline/dataset.h and the README (\"The Association dataset\").\n\n"
        "  --stories PATH          a story directory (<story>/align.csv, <story>.TextGrid,\n"
        "                          <story>.tsv) or a story file (align.csv, .TextGrid, .tsv,\n"
        "                          .csv, or .txt plain text); repeat for more\n"
        "  --associations FILE     an association set (the JSONL of features --associations);\n"
        "                          repeat for more (human, GPT-4, model sets)\n"
        "  --passage-sentences N   a passage is the N sentences up to the insertion point\n"
        "  --passage-words N       a passage is the N words up to the insertion point\n"
        "  --policy P              where associations go: human (default), every-k, word\n"
        "  --every K               sentences per block for every-k (default 4)\n"
        "  --pause SEC             silence that ends a sentence in unpunctuated text (default %.2g)\n"
        "  --instruction TEXT      the instruction of association samples (default below)\n"
        "  --instruction-file F    the same, read from a file (one trailing newline dropped)\n"
        "  --import-alpaca FILE    Alpaca-style records (JSON array or JSONL of instruction,\n"
        "                          input, output) to merge; repeat for more\n"
        "  --tokenizer DIR         the model's tokenizer: token lengths in the summary\n"
        "  --template T            alpaca (default), llama2-chat or plain: how finetune will\n"
        "                          format the prompt whose tokens are counted\n"
        "  --system TEXT           llama2-chat's system prompt\n"
        "  --max-tokens N          drop samples longer than N tokens (prompt + response, with\n"
        "                          BOS and EOS as finetune builds them); needs --tokenizer\n"
        "  --strict                a sample longer than --max-tokens is an error instead\n"
        "  --val-out FILE          the validation JSONL (with --val-fraction)\n"
        "  --val-fraction F        share of samples for validation, in (0, 1)\n"
        "  --seed S                seed of the split (default 2025)\n"
        "  --out FILE              the training JSONL (required)\n"
        "  --summary FILE          the summary as JSON (counts, token lengths, options)\n"
        "  --quiet                 do not print the summary\n\n"
        "Default instruction:\n  %s\n",
        BA_SENTENCE_PAUSE_S, BA_DATASET_INSTRUCTION);
}

static bool push(const char **list, size_t *n, const char *value, ba_args *a, const char *name)
{
    if (*n == MAX_FILES) {
        snprintf(a->error, sizeof a->error, "%s: at most %d files", name, MAX_FILES);
        return false;
    }
    list[(*n)++] = value;
    return true;
}

/* The instruction file's text, one trailing newline (LF or CRLF) dropped. */
static ba_status read_instruction(const char *path, char **out, ba_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return ba_fail(err, BA_ERR_IO, "%s: cannot open the instruction file", path);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    ba_status rc = buf ? BA_OK : ba_fail(err, BA_ERR_NOMEM, "%s: out of memory", path);
    while (rc == BA_OK) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, 2 * cap);
            if (!nb) {
                rc = ba_fail(err, BA_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0) break;
    }
    if (rc == BA_OK && ferror(f)) rc = ba_fail(err, BA_ERR_IO, "%s: read error", path);
    fclose(f);
    if (rc != BA_OK) {
        free(buf);
        return rc;
    }
    if (n > 0 && buf[n - 1] == '\n') n--;
    if (n > 0 && buf[n - 1] == '\r') n--;
    buf[n] = '\0';
    if (strlen(buf) != n || n == 0) {
        free(buf);
        return ba_fail(err, BA_ERR_VALUE, "%s: the instruction file is %s", path,
                       n == 0 ? "empty" : "not text (a NUL byte)");
    }
    *out = buf;
    return BA_OK;
}

static void print_summary(const ba_dataset_options *o, const ba_dataset_summary *s)
{
    printf("dataset: %zu samples read (%zu from associations over %zu stories, %zu imported)\n",
           s->n_read, s->n_from_associations, s->n_stories, s->n_imported);
    if (o->max_tokens)
        printf("dataset: %zu duplicates dropped, %zu longer than %zu tokens filtered, %zu kept\n",
               s->n_duplicates, s->n_filtered, o->max_tokens, s->n_kept);
    else
        printf("dataset: %zu duplicates dropped, no length filter, %zu kept\n", s->n_duplicates,
               s->n_kept);
    printf("dataset: train %zu -> %s", s->n_train, o->out);
    if (o->val_out) printf(", validation %zu -> %s (seed %llu)", s->n_val, o->val_out,
                           (unsigned long long)o->seed);
    printf("\n");
    if (s->have_tokens)
        printf("dataset: tokens per sample (%s template): min %zu, median %g, max %zu\n",
               ba_template_name(o->tmpl), s->tok_min, s->tok_median, s->tok_max);
    if (o->summary) printf("dataset: summary -> %s\n", o->summary);
}

int ba_cmd_dataset(int argc, char **argv)
{
    static const char *stories[MAX_FILES], *assoc[MAX_FILES], *imports[MAX_FILES];
    ba_dataset_options o;
    ba_dataset_options_defaults(&o);
    o.stories = stories;
    o.associations = assoc;
    o.imports = imports;
    ba_error err;
    ba_error_clear(&err);
    ba_args a;
    ba_args_init(&a, argc, argv);
    const char *instruction_file = NULL;
    bool quiet = false, have_sentences = false, have_words = false;
    long number = 0;
    while (ba_args_more(&a)) {
        if (ba_cli_is_help(argv[a.i])) { help(); return 0; }
        if (ba_args_value(&a, "--stories")) push(stories, &o.n_stories, a.value, &a, "--stories");
        else if (ba_args_value(&a, "--associations"))
            push(assoc, &o.n_associations, a.value, &a, "--associations");
        else if (ba_args_value(&a, "--import-alpaca"))
            push(imports, &o.n_imports, a.value, &a, "--import-alpaca");
        else if (ba_args_value(&a, "--passage-sentences")) {
            if (ba_args_long(&a, "--passage-sentences", &number)) {
                if (number < 1) snprintf(a.error, sizeof a.error, "--passage-sentences must be >= 1");
                o.unit = BA_PASSAGE_SENTENCES;
                o.passage_len = number < 1 ? 0 : (size_t)number;
                have_sentences = true;
            }
        } else if (ba_args_value(&a, "--passage-words")) {
            if (ba_args_long(&a, "--passage-words", &number)) {
                if (number < 1) snprintf(a.error, sizeof a.error, "--passage-words must be >= 1");
                o.unit = BA_PASSAGE_WORDS;
                o.passage_len = number < 1 ? 0 : (size_t)number;
                have_words = true;
            }
        } else if (ba_args_value(&a, "--policy")) {
            if (ba_augment_policy_parse(a.value, &o.placement, &err))
                snprintf(a.error, sizeof a.error, "--policy: %s", err.message);
        } else if (ba_args_value(&a, "--every")) {
            if (ba_args_long(&a, "--every", &number)) o.placement.every_k = number < 1 ? 0 : (int)number;
        } else if (ba_args_value(&a, "--pause")) ba_args_double(&a, "--pause", &o.placement.pause_s);
        else if (ba_args_value(&a, "--instruction")) o.instruction = a.value;
        else if (ba_args_value(&a, "--instruction-file")) instruction_file = a.value;
        else if (ba_args_value(&a, "--tokenizer")) o.tokenizer = a.value;
        else if (ba_args_value(&a, "--template")) {
            if (ba_template_parse(a.value, &o.tmpl, &err))
                snprintf(a.error, sizeof a.error, "--template: %s", err.message);
        } else if (ba_args_value(&a, "--system")) o.system = a.value;
        else if (ba_args_value(&a, "--max-tokens")) {
            if (ba_args_long(&a, "--max-tokens", &number)) {
                if (number < 1) snprintf(a.error, sizeof a.error, "--max-tokens must be >= 1");
                o.max_tokens = number < 1 ? 0 : (size_t)number;
            }
        } else if (ba_args_flag(&a, "--strict")) o.strict = true;
        else if (ba_args_value(&a, "--val-out")) o.val_out = a.value;
        else if (ba_args_value(&a, "--val-fraction"))
            ba_args_double(&a, "--val-fraction", &o.val_fraction);
        else if (ba_args_value(&a, "--seed")) {
            if (ba_args_long(&a, "--seed", &number)) {
                if (number < 0) snprintf(a.error, sizeof a.error, "--seed must be >= 0");
                o.seed = (uint64_t)number;
            }
        } else if (ba_args_value(&a, "--out")) o.out = a.value;
        else if (ba_args_value(&a, "--summary")) o.summary = a.value;
        else if (ba_args_flag(&a, "--quiet")) quiet = true;
        else snprintf(a.error, sizeof a.error, "unknown option '%s' (see --help)", argv[a.i]);
    }
    if (!a.error[0] && have_sentences && have_words)
        snprintf(a.error, sizeof a.error, "give one of --passage-sentences and --passage-words");
    if (!a.error[0] && o.instruction && instruction_file)
        snprintf(a.error, sizeof a.error, "give one of --instruction and --instruction-file");
    if (a.error[0]) {
        ba_fail(&err, BA_ERR_USAGE, "%s", a.error);
        return ba_cli_report("dataset", BA_ERR_USAGE, &err);
    }
    char command[4096];
    ba_args_command_line(argc, argv, command, sizeof command);
    o.command = command;
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    ba_status rc = BA_OK;
    char *file_instruction = NULL;
    if (rank == 0 && instruction_file) {
        rc = read_instruction(instruction_file, &file_instruction, &err);
        o.instruction = file_instruction;
    }
    ba_dataset_summary sum;
    if (rank == 0 && rc == BA_OK) {
        rc = ba_dataset_build(&o, &sum, &err);
        if (rc == BA_OK && !quiet) print_summary(&o, &sum);
    }
    free(file_instruction);
    fflush(stdout);
    rc = ba_mpi_agree(MPI_COMM_WORLD, rc, &err);
    return rc == BA_OK ? 0 : ba_cli_report("dataset", rc, &err);
}
