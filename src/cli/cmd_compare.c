/* cmd_compare.c — `brainalign compare`: conditions against the baseline,
 * region by region, with statistics, tables, an HDF5 file, brain maps and
 * (optionally) figures. */
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "brainalign/core/fs.h"
#include "brainalign/pipeline/compare.h"
#include "brainalign/pipeline/compare_options.h"
#include "brainalign/parallel/fault.h"
#include "brainalign/parallel/parallel.h"

static void help(const ba_compare_options *d)
{
    printf(
        "usage: brainalign compare (--study [MODEL=]DIR ... | --scores SPEC=FILE ...) --out PREFIX\n"
        "                          [options]\n\n"
        "Brain scores of each condition (human, gpt4, random, ...) against the baseline, region\n"
        "by region: mean r, Δr = r(condition) - r(baseline), relative change, a %.0f%% interval,\n"
        "a two-sided p-value and Benjamini-Hochberg q-values across regions. With several\n"
        "subjects: a paired sign-flip permutation test of the subjects' region-mean Δr (exact\n"
        "over all 2^S sign vectors when 2^S <= --permutations, else that many seeded\n"
        "Monte-Carlo draws) and a percentile bootstrap over subjects for the interval. With\n"
        "one subject (e.g. an averaged one): a percentile bootstrap over the region's voxels,\n"
        "p from the sign of the bootstrap means (voxels taken as independent: optimistic for\n"
        "spatially smooth data). See include/brainalign/pipeline/compare.h for every definition.\n\n"
        "inputs:\n"
        "  --study [MODEL=]DIR  a directory written by `brainalign run`:\n"
        "                       DIR/scores/<condition>/<subject>/layer-<L>.h5, or\n"
        "                       DIR/scores/<subject>/layer-<L>.h5 (condition from its features);\n"
        "                       repeatable (e.g. one per model, or one per condition)\n"
        "  --layer L            only this layer of the studies (default: every layer; each\n"
        "                       layer is compared as a model of its own)\n"
        "  --scores C[:S[:M]]=FILE  one scores.h5 of condition C, subject S (default 'average'),\n"
        "                       model M (default: '<model_type> layer <L>' from the file)\n"
        "  --baseline NAME      the reference condition (default %s)\n"
        "  --atlas FILE         atlas.h5 (default: the atlas the scores were fitted with)\n"
        "  --bold FILE          a bold.h5 recording a brain space: also write Δr maps\n"
        "statistics:\n",
        100 * d->confidence, d->baseline);
    ba_option_help(&ba_compare_option_table, "statistics", stdout);
    printf(
        "output:\n"
        "  --out PREFIX         PREFIX.csv, PREFIX.md, PREFIX.h5 (+ maps)\n"
        "  --plot               also PNG figures with tools/plot_compare.py (needs python3 with\n"
        "                       matplotlib; otherwise prints how to make them)\n"
        "  --quiet              print nothing but errors\n");
}

/* "C[:S[:M]]=FILE" */
static ba_status add_scores_spec(ba_compare_inputs *list, const char *spec, ba_error *err)
{
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || !eq[1])
        return ba_fail(err, BA_ERR_USAGE, "--scores %s: expected CONDITION[:SUBJECT[:MODEL]]=FILE",
                       spec);
    char left[3 * BA_COMPARE_LABEL_MAX + 8];
    snprintf(left, sizeof left, "%.*s", (int)(eq - spec), spec);
    char *fields[3] = {left, NULL, NULL};
    char *colon = strchr(left, ':');
    if (colon) {
        *colon = '\0';
        fields[1] = colon + 1;
        colon = strchr(fields[1], ':');
        if (colon) {
            *colon = '\0';
            fields[2] = colon + 1;
        }
    }
    return ba_compare_inputs_add(list, fields[2], fields[0],
                                 fields[1] && fields[1][0] ? fields[1] : "average", eq + 1, err);
}

/* "[MODEL=]DIR" */
static ba_status add_study_spec(ba_compare_inputs *list, const char *spec, int layer,
                                ba_error *err)
{
    const char *eq = strchr(spec, '=');
    struct stat sb;
    if (!eq || stat(spec, &sb) == 0) return ba_compare_inputs_from_study(list, spec, NULL, layer, err);
    char model[BA_COMPARE_LABEL_MAX];
    snprintf(model, sizeof model, "%.*s", (int)(eq - spec), spec);
    return ba_compare_inputs_from_study(list, eq + 1, model, layer, err);
}

/* tools/plot_compare.py: $BRAINALIGN_TOOLS, next to the executable's
 * source tree (../tools, ../../tools), or the installed share directory. */
static bool find_plot_script(char *out, size_t size)
{
    const char *env = getenv("BRAINALIGN_TOOLS");
    if (env) {
        snprintf(out, size, "%s/plot_compare.py", env);
        if (ba_file_exists(out)) return true;
    }
    char exe[BA_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return false;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) return false;
    *slash = '\0';
    const char *rel[] = {"../tools", "../../tools", "../share/brainalign"};
    for (int i = 0; i < 3; i++) {
        snprintf(out, size, "%s/%s/plot_compare.py", exe, rel[i]);
        if (ba_file_exists(out)) return true;
    }
    return false;
}

static int run_program(char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        execvp(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) < 0) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A python3 that has matplotlib: Debian's first, then the one on PATH. */
static const char *python_with_matplotlib(void)
{
    static const char *const candidates[] = {"/usr/bin/python3", "python3"};
    for (int i = 0; i < 2; i++) {
        char *argv[] = {(char *)candidates[i], "-c", "import matplotlib", NULL};
        if (run_program(argv) == 0) return candidates[i];
    }
    return NULL;
}

static void make_plots(const ba_compare_options *o, bool quiet)
{
    char script[PATH_MAX + 64], csv[BA_PATH_MAX + 8], h5[BA_PATH_MAX + 8];
    snprintf(csv, sizeof csv, "%s.csv", o->out_prefix);
    snprintf(h5, sizeof h5, "%s.h5", o->out_prefix);
    bool have_script = find_plot_script(script, sizeof script);
    const char *python = have_script ? python_with_matplotlib() : NULL;
    if (!python) {
        fprintf(stderr, "compare: --plot: %s; make the figures with\n"
                        "  python3 tools/plot_compare.py %s --h5 %s --out %s\n"
                        "(Debian: apt-get install python3-matplotlib)\n",
                have_script ? "no python3 with matplotlib found" : "tools/plot_compare.py not found "
                "(set BRAINALIGN_TOOLS to the tools directory)", csv, h5, o->out_prefix);
        return;
    }
    char *argv[] = {(char *)python, script, csv, "--h5", h5, "--out", (char *)o->out_prefix,
                    quiet ? "--quiet" : NULL, NULL};
    if (run_program(argv) != 0)
        fprintf(stderr, "compare: --plot: %s %s failed (the tables and HDF5 file are written)\n",
                python, script);
}

static void print_summary(const ba_compare_result *res, const ba_compare_options *o)
{
    const char *model = NULL, *condition = NULL;
    for (size_t i = 0; i < res->n_rows; i++) {
        const ba_compare_row *r = &res->rows[i];
        if (r->is_baseline) continue;
        if (!model || strcmp(model, r->model) || strcmp(condition, r->condition)) {
            model = r->model;
            condition = r->condition;
            int n_sig = 0;
            double mean = 0;
            int n = 0;
            for (size_t j = i; j < res->n_rows && !strcmp(res->rows[j].model, model) &&
                               !strcmp(res->rows[j].condition, condition); j++) {
                n_sig += res->rows[j].significant;
                if (res->rows[j].n_voxels > 0) {
                    mean += res->rows[j].delta_r;
                    n++;
                }
            }
            printf("%s, %s vs %s: mean Δr over regions %+.4f; %d of %d regions with q <= %g%s\n",
                   model, condition, o->baseline, n ? mean / n : 0.0, n_sig, res->n_regions,
                   o->fdr, n_sig ? ":" : "");
        }
        if (r->significant)
            printf("    %-28s Δr %+.4f [%+.4f, %+.4f]  p %.3g  q %.3g\n", r->region, r->delta_r,
                   r->ci_low, r->ci_high, r->p, r->q);
    }
    bool maps = false;
    for (size_t i = 0; i < res->n_written; i++) {
        printf("wrote %s\n", res->written[i]);
        maps |= strstr(res->written[i], ".nii.gz") || strstr(res->written[i], ".func.gii");
    }
    if (o->bold_path && !maps)
        printf("no maps: %s records no brain space (no /mask or /surface; see `brainalign "
               "import`)\n", o->bold_path);
}

int ba_cmd_compare(int argc, char **argv)
{
    ba_compare_options o;
    ba_compare_options_defaults(&o);
    ba_compare_inputs inputs = {0};
    ba_error err;
    ba_error_clear(&err);
    ba_args a;
    ba_args_init(&a, argc, argv);
    bool plot = false, quiet = false;
    long layer = -1;
    const char *studies[64];
    const char *scores[4096];
    int n_studies = 0, n_scores = 0;
    while (ba_args_more(&a)) {
        if (ba_cli_is_help(argv[a.i])) { help(&o); return 0; }
        if (ba_args_value(&a, "--study")) {
            if (n_studies < 64) studies[n_studies++] = a.value;
            else snprintf(a.error, sizeof a.error, "at most 64 --study");
        } else if (ba_args_value(&a, "--scores")) {
            if (n_scores < 4096) scores[n_scores++] = a.value;
            else snprintf(a.error, sizeof a.error, "at most 4096 --scores");
        } else if (ba_args_value(&a, "--layer")) {
            /* parsed into the int it becomes: 4294967297 is not layer 1 */
            if (ba_args_long(&a, "--layer", &layer) && (layer < 0 || layer > INT_MAX))
                snprintf(a.error, sizeof a.error, "--layer %s: expected a layer number in [0, %d]",
                         a.value, INT_MAX);
        }
        else if (ba_args_value(&a, "--baseline")) o.baseline = a.value;
        else if (ba_args_value(&a, "--atlas")) o.atlas_path = a.value;
        else if (ba_args_value(&a, "--bold")) o.bold_path = a.value;
        else if (ba_args_value(&a, "--out")) o.out_prefix = a.value;
        else if (ba_args_table(&a, &ba_compare_option_table, &o)) continue;
        else if (ba_args_flag(&a, "--plot")) plot = true;
        else if (ba_args_flag(&a, "--quiet")) quiet = true;
        else snprintf(a.error, sizeof a.error, "unknown option '%s' (see --help)", argv[a.i]);
    }
    if (!a.error[0] && n_studies + n_scores == 0)
        snprintf(a.error, sizeof a.error, "give --study DIR or --scores CONDITION=FILE (see --help)");
    if (!a.error[0] && !o.out_prefix) snprintf(a.error, sizeof a.error, "--out PREFIX is required");
    if (a.error[0]) {
        ba_fail(&err, BA_ERR_USAGE, "%s", a.error);
        return ba_cli_report("compare", BA_ERR_USAGE, &err);
    }
    char command[4096];
    ba_args_command_line(argc, argv, command, sizeof command);
    o.command_line = command;
    o.inputs = &inputs;

    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    ba_compare_result res = {0};
    ba_status rc = BA_OK;
    if (rank == 0) {
        for (int i = 0; rc == BA_OK && i < n_studies; i++)
            rc = add_study_spec(&inputs, studies[i], (int)layer, &err);
        for (int i = 0; rc == BA_OK && i < n_scores; i++) rc = add_scores_spec(&inputs, scores[i], &err);
        if (rc == BA_OK) rc = ba_compare_run(&o, &res, &err);
        if (rc == BA_OK && res.note[0]) fprintf(stderr, "brainalign compare: note: %s\n", res.note);
        if (rc == BA_OK && !quiet) print_summary(&res, &o);
        fflush(stdout); /* before the plotting child writes */
        if (rc == BA_OK && plot) make_plots(&o, quiet);
        fflush(stdout);
    } else {
        rc = ba_fault("compare", &err);
    }
    rc = ba_mpi_agree(MPI_COMM_WORLD, rc, &err);
    ba_compare_result_free(&res);
    ba_compare_inputs_free(&inputs);
    return rc == BA_OK ? 0 : ba_cli_report("compare", rc, &err);
}
