/* cmd_merge.c — `brainalign merge`: write the checkpoint of a model with a
 * PEFT LoRA adapter merged into its weights (ba_model_save_merged). Rank 0
 * writes; every rank returns the same status. */
#include <stdio.h>
#include <string.h>

#include "brainalign/lm/adapter.h"
#include "brainalign/lm/model.h"
#include "brainalign/lm/train.h"
#include "brainalign/parallel/parallel.h"
#include "args.h"
#include "commands.h"

static void merge_usage(FILE *out)
{
    fprintf(out,
            "usage: brainalign merge --model DIR --adapter A --out DIR2\n\n"
            "Merge a PEFT LoRA adapter (A/adapter_config.json, A/adapter_model.safetensors)\n"
            "into the model: every adapted weight becomes W + (lora_alpha / r) B A (for GPT-2's\n"
            "Conv1D weights, stored [in, out], its transpose), written in float32; every other\n"
            "tensor as stored. DIR2 (which must not exist) gets config.json, the tokenizer\n"
            "files and model.safetensors, written under a temporary name and renamed; its\n"
            "features equal `features --model DIR --adapter A` within float32 rounding.\n\n"
            "  --model DIR     the base checkpoint\n"
            "  --adapter A     the adapter (checked against the model's shape)\n"
            "  --out DIR2      the merged checkpoint\n");
}

static ba_status merge(const char *model_dir, const char *adapter_dir, const char *out,
                       ba_error *err)
{
    ba_model *model = NULL;
    ba_adapter *ad = NULL;
    ba_status rc = ba_model_load(model_dir, &model, err);
    if (rc == BA_OK) rc = ba_adapter_load(adapter_dir, ba_model_get_config(model), &ad, err);
    if (rc == BA_OK) rc = ba_model_save_merged(model, ad, out, err);
    ba_adapter_destroy(ad);
    ba_model_destroy(model);
    return rc;
}

int ba_cmd_merge(int argc, char **argv)
{
    const char *model_dir = NULL, *adapter_dir = NULL, *out = NULL;
    ba_error err;
    ba_error_clear(&err);
    ba_args a;
    ba_args_init(&a, argc, argv);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    while (ba_args_more(&a)) {
        if (ba_cli_is_help(argv[a.i])) {
            if (rank == 0) merge_usage(stdout);
            return 0;
        }
        if (ba_args_value(&a, "--model")) model_dir = a.value;
        else if (ba_args_value(&a, "--adapter")) adapter_dir = a.value;
        else if (ba_args_value(&a, "--out")) out = a.value;
        else snprintf(a.error, sizeof a.error, "unknown option '%s' (see --help)", argv[a.i]);
    }
    if (!a.error[0] && (!model_dir || !adapter_dir || !out))
        snprintf(a.error, sizeof a.error, "--model, --adapter and --out are required");
    if (a.error[0]) {
        ba_fail(&err, BA_ERR_USAGE, "%s", a.error);
        return ba_cli_report("merge", BA_ERR_USAGE, &err);
    }
    ba_status rc = BA_OK;
    if (rank == 0) rc = merge(model_dir, adapter_dir, out, &err);
    rc = ba_mpi_agree(MPI_COMM_WORLD, rc, &err);
    if (rc != BA_OK) return ba_cli_report("merge", rc, &err);
    if (rank == 0) printf("wrote %s (%s merged with %s)\n", out, model_dir, adapter_dir);
    return 0;
}
