/* main.c — the `brainalign` executable: initialise MPI, dispatch to a
 * subcommand, finalise. Everything else is in the library. */
#include <cblas.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "brainalign/parallel/parallel.h"

static const ba_command COMMANDS[] = {
    {"synth", "generate a synthetic study with a known answer", ba_cmd_synth},
    {"features", "language-model hidden states and surprisal per word of each story", ba_cmd_features},
    {"fit", "cross-validated ridge from features (or X) to BOLD (or Y)", ba_cmd_fit},
    {"run", "a whole study from one INI configuration", ba_cmd_run},
    {"checkpoint", "write a random-weight checkpoint (Hugging Face layout)", ba_cmd_checkpoint},
    {"tokenize", "print the token ids of text on standard input", ba_cmd_tokenize},
    {"import", "BOLD (GIfTI, NIfTI, HDF5) or an atlas (.annot, NIfTI labels) -> HDF5", ba_cmd_import},
    {"maps", "write per-voxel scores back as NIfTI or GIfTI brain maps", ba_cmd_maps},
    {"compare", "conditions vs baseline per region: Δr, intervals, p and q-values, tables, maps", ba_cmd_compare},
    {"augment", "show stories as the model reads them with associations inserted", ba_cmd_augment},
    {"merge", "write a checkpoint with a PEFT LoRA adapter merged into its weights", ba_cmd_merge},
    {"tasks", "a study as array-job tasks (SLURM), and their collected summary", ba_cmd_tasks},
    {"finetune", "LoRA or frozen-layer fine-tuning on instruction data (data-parallel)", ba_cmd_finetune},
    {"dataset", "instruction data: story passages + associations (and Alpaca imports) -> JSONL", ba_cmd_dataset},
};
static const int N_COMMANDS = (int)(sizeof COMMANDS / sizeof COMMANDS[0]);

static void usage(FILE *out)
{
    fprintf(out,
            "brainalign %s — brain scores of language models, with associative memory\n\n"
            "usage: mpirun -np N brainalign COMMAND [options]\n"
            "       brainalign COMMAND --help\n\ncommands:\n",
            BRAINALIGN_VERSION);
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
}

int ba_cli_report(const char *command, ba_status rc, const ba_error *err)
{
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    /* The origin trail follows the message in brackets; a usage error is
     * the user's to fix, and its place in the code would only be noise. */
    bool where = rc != BA_ERR_USAGE && err->origin[0];
    if (rank == 0)
        fprintf(stderr, "brainalign %s: error (%s): %s%s%s%s\n", command,
                ba_status_name(rc), err->message[0] ? err->message : "(no message)",
                where ? " [" : "", where ? err->origin : "", where ? "]" : "");
    return 1;
}

bool ba_cli_is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

/* Debian's OpenBLAS (0.3.21) takes AVX-512 CPUs it does not know, such as
 * AMD Zen 4, for Haswell and runs its AVX2 kernels: half the SGEMM speed
 * (measured here: 241 vs 448 GFLOP/s on 2 cores). It reads
 * OPENBLAS_CORETYPE only when the library is loaded, so when the CPU has
 * the AVX-512 subsets of the SkylakeX kernels and OpenBLAS chose something
 * slower, run ourselves again with the variable set. Setting
 * OPENBLAS_CORETYPE yourself (or BRAINALIGN_KEEP_BLAS=1) keeps your choice. */
static void prefer_avx512_blas_kernels(char **argv)
{
    if (getenv("OPENBLAS_CORETYPE") || getenv("BRAINALIGN_KEEP_BLAS")) return;
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
          __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")))
        return;
    const char *core = openblas_get_corename();
    if (!core || strstr(core, "kylakex") || strstr(core, "ooperlake") ||
        strstr(core, "apphire"))
        return;
    setenv("OPENBLAS_CORETYPE", "SKYLAKEX", 1);
    execv("/proc/self/exe", argv); /* returns only on failure: carry on as we are */
}

int main(int argc, char **argv)
{
    prefer_avx512_blas_kernels(argv);
    if (argc < 2 || ba_cli_is_help(argv[1])) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("brainalign %s\n", BRAINALIGN_VERSION);
        return 0;
    }
    const ba_command *cmd = NULL;
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(argv[1], COMMANDS[i].name) == 0) cmd = &COMMANDS[i];
    if (!cmd) {
        fprintf(stderr, "brainalign: unknown command '%s'\n\n", argv[1]);
        usage(stderr);
        return 2;
    }
    MPI_Init(&argc, &argv);
    ba_release_large_blocks();
    int code = cmd->run(argc - 1, argv + 1);
    MPI_Finalize();
    return code;
}
