/* cmd_checkpoint.c — `brainalign checkpoint`: write a random-weight
 * checkpoint in the Hugging Face layout (tests, benchmarks, synthetic
 * studies). Rank 0 writes; every rank returns the same status. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/lm/model.h"
#include "brainalign/parallel/parallel.h"
#include "brainalign/pipeline/finetune.h"
#include "commands.h"

static void checkpoint_usage(FILE *out)
{
    fprintf(out,
            "usage: brainalign checkpoint --out DIR (--vocab-from DIR | --vocab-size V) [options]\n\n"
            "Write a checkpoint with random weights (config.json, model.safetensors or\n"
            "shards + model.safetensors.index.json, tokenizer files) into the new directory DIR.\n"
            "With --vocab-from, config.json carries the tokenizer's bos_token_id and\n"
            "eos_token_id as Hugging Face writes them (GPT-2: <|endoftext|>; LLaMA: 1 and 2).\n\n"
            "  --arch NAME        architecture: gpt2 or llama (default gpt2)\n"
            "  --layers L         transformer blocks (default 2)\n"
            "  --d-model D        model width (default 64)\n"
            "  --heads H          attention heads, dividing D (default 4)\n"
            "  --d-ff F           MLP width (default GPT-2 4 D; LLaMA 8 D / 3 rounded up to 256)\n"
            "  --positions P      longest window: position-table length / LLaMA's\n"
            "                     max_position_embeddings (default 128)\n"
            "  --kv-heads K       LLaMA: key/value heads, dividing H (default H; fewer is\n"
            "                     grouped-query attention)\n"
            "  --rope-theta X     LLaMA: rotary embedding base (default 10000)\n"
            "  --rms-eps X        LLaMA: rms_norm_eps (default 1e-5); for GPT-2 the\n"
            "                     layer_norm_epsilon\n"
            "  --tie-word-embeddings true|false\n"
            "                     output layer = embeddings (default: GPT-2 true, LLaMA false,\n"
            "                     which writes lm_head.weight)\n"
            "  --vocab-from DIR   copy the tokenizer files of DIR (vocab.json + merges.txt,\n"
            "                     encoder.json + vocab.bpe, tokenizer.json or tokenizer.model);\n"
            "                     sizes the vocabulary\n"
            "  --vocab-size V     vocabulary size (at least the tokenizer's when both given)\n"
            "  --dtype T          f32, f16 or bf16 (default f32)\n"
            "  --seed S           random seed (default 0)\n"
            "  --init-std X       standard deviation of the weights (default 0.02, GPT-2's)\n"
            "  --shards K         K > 1 writes K shards and an index (default 1)\n");
}

static int parse_int_arg(const char *opt, const char *text, int min, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || !end || *end || v < min || v > INT_MAX) {
        fprintf(stderr, "brainalign checkpoint: %s needs an integer >= %d, got '%s'\n", opt, min,
                text);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int parse_positive_real(const char *opt, const char *text, double below, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || !end || *end || !(v > 0 && v < below)) {
        fprintf(stderr, "brainalign checkpoint: %s needs a number in (0, %g), got '%s'\n", opt,
                below, text);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_bool(const char *opt, const char *text, int *out)
{
    if (strcmp(text, "true") == 0) *out = 1;
    else if (strcmp(text, "false") == 0) *out = -1;
    else {
        fprintf(stderr, "brainalign checkpoint: %s needs true or false, got '%s'\n", opt, text);
        return -1;
    }
    return 0;
}

static int parse_dtype(const char *text, ba_dtype *out)
{
    if (strcmp(text, "f32") == 0 || strcmp(text, "F32") == 0) *out = BA_DTYPE_F32;
    else if (strcmp(text, "f16") == 0 || strcmp(text, "F16") == 0) *out = BA_DTYPE_F16;
    else if (strcmp(text, "bf16") == 0 || strcmp(text, "BF16") == 0) *out = BA_DTYPE_BF16;
    else {
        fprintf(stderr, "brainalign checkpoint: --dtype must be f32, f16 or bf16, got '%s'\n", text);
        return -1;
    }
    return 0;
}

/* 0 on success, 2 on a usage error (message printed), 1 for --help. */
static int parse_args(int argc, char **argv, ba_random_checkpoint *spec, const char **out_dir)
{
    *spec = (ba_random_checkpoint){.arch = BA_ARCH_GPT2, .n_layers = 2, .d_model = 64,
                                   .n_heads = 4, .n_positions = 128, .dtype = BA_DTYPE_F32,
                                   .n_shards = 1};
    *out_dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (ba_cli_is_help(opt)) return 1;
        if (i + 1 >= argc) {
            fprintf(stderr, "brainalign checkpoint: %s needs a value\n", opt);
            return 2;
        }
        const char *val = argv[++i];
        int bad = 0;
        if (strcmp(opt, "--arch") == 0) {
            spec->arch = ba_arch_from_name(val);
            if (spec->arch == BA_ARCH_UNKNOWN) {
                fprintf(stderr, "brainalign checkpoint: unknown --arch '%s' (gpt2, llama)\n",
                        val);
                bad = 1;
            }
        } else if (strcmp(opt, "--layers") == 0) bad = parse_int_arg(opt, val, 1, &spec->n_layers);
        else if (strcmp(opt, "--d-model") == 0) bad = parse_int_arg(opt, val, 1, &spec->d_model);
        else if (strcmp(opt, "--heads") == 0) bad = parse_int_arg(opt, val, 1, &spec->n_heads);
        else if (strcmp(opt, "--d-ff") == 0) bad = parse_int_arg(opt, val, 1, &spec->d_ff);
        else if (strcmp(opt, "--positions") == 0)
            bad = parse_int_arg(opt, val, 1, &spec->n_positions);
        else if (strcmp(opt, "--vocab-size") == 0)
            bad = parse_int_arg(opt, val, 1, &spec->vocab_size);
        else if (strcmp(opt, "--vocab-from") == 0) spec->vocab_from = val;
        else if (strcmp(opt, "--dtype") == 0) bad = parse_dtype(val, &spec->dtype);
        else if (strcmp(opt, "--shards") == 0) bad = parse_int_arg(opt, val, 1, &spec->n_shards);
        else if (strcmp(opt, "--kv-heads") == 0) bad = parse_int_arg(opt, val, 1, &spec->n_kv_heads);
        else if (strcmp(opt, "--rope-theta") == 0)
            bad = parse_positive_real(opt, val, 1e300, &spec->rope_theta);
        else if (strcmp(opt, "--rms-eps") == 0)
            bad = parse_positive_real(opt, val, 1.0, &spec->norm_eps);
        else if (strcmp(opt, "--tie-word-embeddings") == 0)
            bad = parse_bool(opt, val, &spec->tie_embeddings);
        else if (strcmp(opt, "--out") == 0) *out_dir = val;
        else if (strcmp(opt, "--init-std") == 0) {
            char *end = NULL;
            spec->init_std = strtod(val, &end);
            if (!end || *end || !(spec->init_std > 0 && spec->init_std < 100)) {
                fprintf(stderr, "brainalign checkpoint: --init-std needs a number in (0, 100)\n");
                bad = 1;
            }
        }
        else if (strcmp(opt, "--seed") == 0) {
            char *end = NULL;
            errno = 0;
            spec->seed = strtoull(val, &end, 10);
            if (errno || !end || *end || val[0] == '-') {
                fprintf(stderr, "brainalign checkpoint: --seed needs a non-negative integer\n");
                bad = 1;
            }
        } else {
            fprintf(stderr, "brainalign checkpoint: unknown option '%s'\n", opt);
            bad = 1;
        }
        if (bad) return 2;
    }
    if (!*out_dir || (!spec->vocab_from && spec->vocab_size == 0)) {
        fprintf(stderr, "brainalign checkpoint: --out and one of --vocab-from / --vocab-size "
                        "are required\n");
        return 2;
    }
    return 0;
}

int ba_cmd_checkpoint(int argc, char **argv)
{
    ba_random_checkpoint spec;
    const char *out_dir = NULL;
    int parsed = parse_args(argc, argv, &spec, &out_dir);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (parsed != 0) {
        if (rank == 0) checkpoint_usage(parsed == 1 ? stdout : stderr);
        return parsed == 1 ? 0 : 2;
    }
    ba_error err;
    ba_error_clear(&err);
    ba_status rc = BA_OK;
    if (rank == 0) rc = ba_model_write_random(&spec, out_dir, &err);
    /* bos_token_id / eos_token_id in config.json, as Hugging Face writes
     * them (finetune reads them there). */
    if (rank == 0 && rc == BA_OK && spec.vocab_from) rc = ba_config_add_special_ids(out_dir, &err);
    rc = ba_mpi_agree(MPI_COMM_WORLD, rc, &err);
    if (rc != BA_OK) return ba_cli_report("checkpoint", rc, &err);
    return 0;
}
