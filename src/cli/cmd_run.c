/* cmd_run.c — `brainalign run CONFIG`: a whole study from one INI file. */
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "brainalign/study/study.h"

/* SIGTERM: stop at the next fold boundary; rerunning resumes (see fit). */
static volatile sig_atomic_t stop_requested = 0;

static void on_terminate(int signal_number)
{
    (void)signal_number;
    stop_requested = 1;
}

static void help(void)
{
    printf(
        "usage: mpirun -np N brainalign run CONFIG.ini [--quiet]\n\n"
        "Run a whole study: features (extracted once and reused while the model and the text\n"
        "are unchanged) then a cross-validated fit for every subject and layer. Writes, under\n"
        "the configured output directory: features/, scores/<subject>/layer-<L>.h5,\n"
        "tables/<subject>-layer-<L>.csv and summary.md. Every scores.h5 records the whole\n"
        "configuration (attribute study_config). A run stopped by SIGTERM or killed resumes\n"
        "where it stopped when started again with the same configuration.\n\n"
        "Sections and keys (see configs/ for complete examples):\n"
        "  [study]     name, output, condition\n"
        "  [synth]     generate a synthetic study: stimuli, stories, words, subjects, voxels,\n"
        "              regions, d_model, layers, planted_layer, seed, max_r, tr\n"
        "  [features]  path                      a ready features.h5\n"
        "  [model]     path, context, stride, bos  a Hugging Face checkpoint directory\n"
        "  [stimuli]   dir, format, stories\n"
        "  [fit]       layers                    one fit per layer, e.g. 9 or 6,9,12\n"
        "  [bold]      subjects, path ({subject} is replaced), tr\n"
        "  [atlas]     path\n"
        "  [alignment] aggregate (sum|mean), tr_offset (s), delays (1..5)\n"
        "  [cv]        folds, alphas, story_folds, fold_groups, voxel_block, tie_tolerance\n"
        "  [conditions] NAME = associations.jsonl | features.h5, NAME.policy, NAME.every,\n"
        "              NAME.seed: conditions besides the baseline (associative memory); then\n"
        "              scores/<condition>/<subject>/layer-<L>.h5 and compare.{csv,md,h5}\n"
        "  [compare]   permutations, bootstrap, confidence, fdr, seed\n"
        "  ([synth] associations = 0,2 plants an association effect in those regions and\n"
        "   adds the conditions 'associations' and 'random'; see include/brainalign/study/study.h)\n");
}

int ba_cmd_run(int argc, char **argv)
{
    const char *path = NULL;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        if (ba_cli_is_help(argv[i])) { help(); return 0; }
        if (strcmp(argv[i], "--quiet") == 0) quiet = true;
        else if (argv[i][0] == '-' || path) {
            ba_error err;
            ba_fail(&err, BA_ERR_USAGE, "unexpected argument '%s' (see --help)", argv[i]);
            return ba_cli_report("run", BA_ERR_USAGE, &err);
        } else path = argv[i];
    }
    ba_error err;
    ba_error_clear(&err);
    if (!path) {
        ba_fail(&err, BA_ERR_USAGE, "give the configuration file (see --help)");
        return ba_cli_report("run", BA_ERR_USAGE, &err);
    }
    ba_study_config cfg;
    ba_status rc = ba_study_config_load(path, &cfg, &err);
    if (rc == BA_OK) {
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_handler = on_terminate;
        sigaction(SIGTERM, &action, NULL);
        cfg.stop_requested = &stop_requested;
        cfg.quiet = quiet;
        rc = ba_study_run(&cfg, MPI_COMM_WORLD, &err);
    }
    ba_study_config_free(&cfg);
    return rc == BA_OK ? 0 : ba_cli_report("run", rc, &err);
}
