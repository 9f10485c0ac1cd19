/* cmd_synth.c — `brainalign synth`: generate a synthetic study. The
 * stage's options are those of ba_synth_option_table (synth_options.h). */
#include <mpi.h>
#include <stdio.h>

#include "args.h"
#include "commands.h"
#include "brainalign/pipeline/synth.h"
#include "brainalign/pipeline/synth_options.h"

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
        "  --stimuli DIR        take word timings from real stories (<DIR>/<story>/align.csv)\n",
        d->out_dir);
    ba_option_help(&ba_synth_option_table, "synth", stdout);
    printf("  --quiet              no summary line\n");
}

int ba_cmd_synth(int argc, char **argv)
{
    ba_synth_options o;
    ba_synth_defaults(&o);
    ba_error err;
    ba_error_clear(&err);
    ba_args a;
    ba_args_init(&a, argc, argv);
    while (ba_args_more(&a)) {
        if (ba_cli_is_help(argv[a.i])) { help(&o); return 0; }
        if (ba_args_value(&a, "--out")) o.out_dir = a.value;
        else if (ba_args_value(&a, "--stimuli")) o.stimuli_dir = a.value;
        else if (ba_args_flag(&a, "--quiet")) o.quiet = true;
        else if (ba_args_table(&a, &ba_synth_option_table, &o)) continue;
        else snprintf(a.error, sizeof a.error, "unknown option '%s' (see --help)", argv[a.i]);
    }
    if (a.error[0]) {
        ba_fail(&err, BA_ERR_USAGE, "%s", a.error);
        return ba_cli_report("synth", BA_ERR_USAGE, &err);
    }
    ba_status rc = ba_synth_run(&o, MPI_COMM_WORLD, &err);
    return rc == BA_OK ? 0 : ba_cli_report("synth", rc, &err);
}
