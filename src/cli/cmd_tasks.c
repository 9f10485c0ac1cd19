/* cmd_tasks.c — `brainalign tasks CONFIG --stage S`: the tasks of a study
 * stage, for SLURM array jobs (jobs/), and the collection of their outputs. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "brainalign/study/study_tasks.h"

static void help(void)
{
    printf(
        "usage: brainalign tasks CONFIG.ini --stage features|fit|compare [--count]\n"
        "       brainalign tasks CONFIG.ini --stage S --index I [--prepare]\n"
        "       brainalign tasks CONFIG.ini --collect\n"
        "       brainalign tasks CONFIG.ini --output-dir\n\n"
        "A study (the configuration of `brainalign run`) as independent tasks, one array job\n"
        "per stage (see jobs/README.md): SLURM_ARRAY_TASK_ID = I runs task I.\n\n"
        "stages:\n"
        "  features   one task per condition (the baseline first) of [model]: `features`\n"
        "             into OUTPUT/features/<condition>.h5 (with --associations and --policy\n"
        "             for a [conditions] association set; none for a ready .h5); the synthetic\n"
        "             study of [synth]; no task when [features] names a ready file\n"
        "  fit        one task per subject x condition x layer: a `brainalign fit` writing\n"
        "             OUTPUT/scores/<subject>/layer-<L>.h5 (with [conditions]:\n"
        "             OUTPUT/scores/<condition>/<subject>/layer-<L>.h5), with every option\n"
        "             resolved from the configuration (the same result as `run`)\n"
        "  compare    after the fits: region tables and summary.md from the scores files;\n"
        "             with [conditions] also `brainalign compare --study OUTPUT` with the\n"
        "             [compare] settings: OUTPUT/compare.{csv,md,h5}\n\n"
        "options:\n"
        "  --stage S        the stage\n"
        "  (no option)      list the tasks, one per line: index, label, output (tab-separated)\n"
        "  --count          print the number of tasks\n"
        "  --index I        print task I (0-based) as one line of shell words: the brainalign\n"
        "                   arguments, subcommand first; run it as\n"
        "                     eval \"task=($(brainalign tasks CONFIG --stage fit --index I))\"\n"
        "                     mpirun brainalign \"${task[@]}\"\n"
        "  --prepare        also create the directories the task(s) write into\n"
        "  --collect        read every fit's scores and write OUTPUT/tables/[<condition>-]<subject>-\n"
        "                   layer-<L>.csv and OUTPUT/summary.md, as `run` does (fails if a fit is\n"
        "                   missing)\n"
        "  --output-dir     print the configured output directory\n");
}

typedef struct {
    const char *config;
    const char *stage;
    long index;           /* -1: all */
    bool count, prepare, collect, output_dir;
} tasks_options;

static void parse(int argc, char **argv, tasks_options *o, ba_args *a)
{
    memset(o, 0, sizeof *o);
    o->index = -1;
    ba_args_init(a, argc, argv);
    while (ba_args_more(a) && !a->error[0]) {
        if (ba_args_value(a, "--stage")) o->stage = a->value;
        else if (ba_args_value(a, "--index")) {
            if (ba_args_long(a, "--index", &o->index) && o->index < 0)
                snprintf(a->error, sizeof a->error, "--index must be >= 0");
        }
        else if (ba_args_flag(a, "--count")) o->count = true;
        else if (ba_args_flag(a, "--prepare")) o->prepare = true;
        else if (ba_args_flag(a, "--collect")) o->collect = true;
        else if (ba_args_flag(a, "--output-dir")) o->output_dir = true;
        else if (argv[a->i][0] != '-' && !o->config) o->config = argv[a->i++];
        else snprintf(a->error, sizeof a->error, "unexpected argument '%s' (see --help)", argv[a->i]);
    }
    if (a->error[0]) return;
    if (!o->config) snprintf(a->error, sizeof a->error, "give the configuration file (see --help)");
    else if (!o->stage && !o->collect && !o->output_dir)
        snprintf(a->error, sizeof a->error, "give --stage features|fit|compare (see --help)");
    else if (o->count && o->index >= 0)
        snprintf(a->error, sizeof a->error, "--count and --index exclude each other");
}

/* Print (and prepare) the tasks selected by the options. */
static ba_status show_tasks(const ba_study_config *cfg, const tasks_options *o, ba_error *err)
{
    ba_study_stage stage;
    BA_CHECK(ba_study_stage_parse(o->stage, &stage, err));
    ba_study_task_list list;
    BA_CHECK(ba_study_tasks(cfg, stage, &list, err));
    ba_status rc = BA_OK;
    if (o->index >= list.n) {
        rc = ba_fail(err, BA_ERR_USAGE, "%s: stage %s has %d task(s) (indices 0..%d), not index %ld",
                     cfg->path, o->stage, list.n, list.n - 1, o->index);
        goto done;
    }
    int first = o->index >= 0 ? (int)o->index : 0;
    int last = o->index >= 0 ? (int)o->index + 1 : list.n;
    for (int i = first; o->prepare && i < last; i++)
        BA_TRY(ba_study_task_prepare(&list.tasks[i], err), done);
    if (o->count) printf("%d\n", list.n);
    else if (o->index >= 0) {
        char line[16384];
        BA_TRY(ba_study_task_shell_line(&list.tasks[o->index], line, sizeof line, err), done);
        printf("%s\n", line);
    } else
        for (int i = 0; i < list.n; i++)
            printf("%d\t%s\t%s\n", i, list.tasks[i].label, list.tasks[i].output);
done:
    ba_study_task_list_free(&list);
    return rc;
}

int ba_cmd_tasks(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (ba_cli_is_help(argv[i])) { help(); return 0; }
    ba_error err;
    ba_error_clear(&err);
    tasks_options o;
    ba_args a;
    parse(argc, argv, &o, &a);
    if (a.error[0]) {
        ba_fail(&err, BA_ERR_USAGE, "%s", a.error);
        return ba_cli_report("tasks", BA_ERR_USAGE, &err);
    }
    ba_study_config cfg;
    ba_status rc = ba_study_config_load(o.config, &cfg, &err);
    if (rc == BA_OK && o.output_dir) printf("%s\n", cfg.output_dir);
    if (rc == BA_OK && o.collect) {
        rc = ba_study_collect(&cfg, &err);
        if (rc == BA_OK) printf("wrote %s/summary.md\n", cfg.output_dir);
    }
    if (rc == BA_OK && o.stage) rc = show_tasks(&cfg, &o, &err);
    ba_study_config_free(&cfg);
    fflush(stdout);
    return rc == BA_OK ? 0 : ba_cli_report("tasks", rc, &err);
}
