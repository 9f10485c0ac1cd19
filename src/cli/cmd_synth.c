/* cmd_synth.c — `brainalign synth`: generate a synthetic study. */
#include <limits.h>
#include <mpi.h>
#include <stdio.h>

#include "args.h"
#include "commands.h"
#include "brainalign/core/parse.h"
#include "brainalign/pipeline/design.h"
#include "brainalign/pipeline/synth.h"

static void help(const ba_synth_options *d)
{
    printf(
        "usage: brainalign synth --out DIR [options]\n\n"
        "Generate a complete study with a known answer: stories with word timings, word-level\n"
        "features with the statistics of LM hidden states, an atlas, and BOLD for several\n"
        "subjects planted from one layer's delayed TR features plus noise. Writes\n"
        "DIR/features.h5, DIR/bold-sub-NN.h5 (with /truth/r, the best achievable r per voxel)\n"
        "and DIR/atlas.h5.\n\n"
        "  --out DIR            output directory (default %s)\n"
        "  --stimuli DIR        take word timings from real stories (<DIR>/<story>/align.csv)\n"
        "  --stories N          stories (default %d)\n"
        "  --words N            words per generated story (default %ld)\n"
        "  --subjects N         subjects (default %d)\n"
        "  --voxels N           voxels (default %ld)\n"
        "  --regions N          atlas regions (default %d)\n"
        "  --d-model D          feature width (default %ld)\n"
        "  --layers L           hidden states 0..L are written (default %d)\n"
        "  --planted-layer L    the layer the BOLD is made from (default %d)\n"
        "  --delays LIST        FIR delays of the planted response (default 1..5)\n"
        "  --tr SEC             TR (default %.2g)\n"
        "  --max-r R            achievable r of the best region (default %.2g)\n"
        "  --seed S             random seed (default %llu)\n"
        "  --assoc-regions LIST plant an associative-memory effect in these regions (e.g.\n"
        "                       0,2): also writes associations.jsonl, features-associations.h5\n"
        "                       and the random control features-random.h5 (see synth.h)\n"
        "  --assoc-share X      share of those regions' signal due to the associations\n"
        "                       (default %.2g)\n"
        "  --assoc-every K      an association after every K-th sentence (default %d)\n"
        "  --quiet              no summary line\n",
        d->out_dir, d->n_stories, d->words_per_story, d->n_subjects, d->n_voxels,
        d->n_regions, d->d_model, d->n_layers, d->planted_layer, d->tr_s, d->max_r,
        (unsigned long long)d->seed, d->assoc_share, d->assoc_every);
}

/* An int option, parsed into its type ("--subjects 4294967297" is refused,
 * not wrapped to 1); ba_synth_run checks what the value means. */
static void int_option(ba_args *a, const char *name, int *out)
{
    if (!ba_parse_int(a->value, INT_MIN, INT_MAX, out))
        snprintf(a->error, sizeof a->error, "%s: '%s' is not a whole number in [%d, %d]", name,
                 a->value, INT_MIN, INT_MAX);
}

int ba_cmd_synth(int argc, char **argv)
{
    ba_synth_options o;
    ba_synth_defaults(&o);
    ba_error err;
    ba_error_clear(&err);
    ba_args a;
    ba_args_init(&a, argc, argv);
    long n = 0;
    while (ba_args_more(&a)) {
        if (ba_cli_is_help(argv[a.i])) { help(&o); return 0; }
        if (ba_args_value(&a, "--out")) o.out_dir = a.value;
        else if (ba_args_value(&a, "--stimuli")) o.stimuli_dir = a.value;
        else if (ba_args_value(&a, "--stories")) int_option(&a, "--stories", &o.n_stories);
        else if (ba_args_value(&a, "--words")) ba_args_long(&a, "--words", &o.words_per_story);
        else if (ba_args_value(&a, "--subjects")) int_option(&a, "--subjects", &o.n_subjects);
        else if (ba_args_value(&a, "--voxels")) ba_args_long(&a, "--voxels", &o.n_voxels);
        else if (ba_args_value(&a, "--regions")) int_option(&a, "--regions", &o.n_regions);
        else if (ba_args_value(&a, "--d-model")) ba_args_long(&a, "--d-model", &o.d_model);
        else if (ba_args_value(&a, "--layers")) int_option(&a, "--layers", &o.n_layers);
        else if (ba_args_value(&a, "--planted-layer")) int_option(&a, "--planted-layer", &o.planted_layer);
        else if (ba_args_value(&a, "--delays")) {
            if (ba_parse_int_list(a.value, o.delays, 32, &o.n_delays, &err))
                snprintf(a.error, sizeof a.error, "--delays: %s", err.message);
        }
        else if (ba_args_value(&a, "--tr")) ba_args_double(&a, "--tr", &o.tr_s);
        else if (ba_args_value(&a, "--max-r")) ba_args_double(&a, "--max-r", &o.max_r);
        else if (ba_args_value(&a, "--seed")) {
            if (ba_args_long(&a, "--seed", &n) && n < 0)
                snprintf(a.error, sizeof a.error, "--seed %s must be a whole number >= 0", a.value);
            else o.seed = (unsigned long long)n;
        }
        else if (ba_args_value(&a, "--assoc-regions")) {
            if (ba_parse_int_list(a.value, o.assoc_regions, 32, &o.n_assoc_regions, &err))
                snprintf(a.error, sizeof a.error, "--assoc-regions: %s", err.message);
        }
        else if (ba_args_value(&a, "--assoc-share")) ba_args_double(&a, "--assoc-share", &o.assoc_share);
        else if (ba_args_value(&a, "--assoc-every")) int_option(&a, "--assoc-every", &o.assoc_every);
        else if (ba_args_flag(&a, "--quiet")) o.quiet = true;
        else snprintf(a.error, sizeof a.error, "unknown option '%s' (see --help)", argv[a.i]);
    }
    if (a.error[0]) {
        ba_fail(&err, BA_ERR_USAGE, "%s", a.error);
        return ba_cli_report("synth", BA_ERR_USAGE, &err);
    }
    ba_status rc = ba_synth_run(&o, MPI_COMM_WORLD, &err);
    return rc == BA_OK ? 0 : ba_cli_report("synth", rc, &err);
}
