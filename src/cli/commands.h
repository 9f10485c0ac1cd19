/* commands.h — the subcommands of the `brainalign` executable.
 *
 * Each subcommand lives in src/cli/cmd_<name>.c: it parses its own
 * arguments, calls the library, and returns a process exit code. MPI is
 * initialised by main() before a subcommand runs and finalised after. */
#ifndef BRAINALIGN_CLI_COMMANDS_H
#define BRAINALIGN_CLI_COMMANDS_H

#include <stdbool.h>
#include "brainalign/core/error.h"

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
} ba_command;

int ba_cmd_synth(int argc, char **argv);
int ba_cmd_features(int argc, char **argv);
int ba_cmd_fit(int argc, char **argv);
int ba_cmd_run(int argc, char **argv);
int ba_cmd_checkpoint(int argc, char **argv);
int ba_cmd_tokenize(int argc, char **argv);
int ba_cmd_import(int argc, char **argv);
int ba_cmd_maps(int argc, char **argv);
int ba_cmd_compare(int argc, char **argv);
int ba_cmd_augment(int argc, char **argv);
int ba_cmd_tasks(int argc, char **argv);
int ba_cmd_finetune(int argc, char **argv);
int ba_cmd_merge(int argc, char **argv);
int ba_cmd_dataset(int argc, char **argv);

/* Report a failure (rank 0 prints it; every rank has the same message after
 * ba_mpi_agree) and return the exit code 1. */
int ba_cli_report(const char *command, ba_status rc, const ba_error *err);

/* True when `arg` is --help or -h. */
bool ba_cli_is_help(const char *arg);

#endif
