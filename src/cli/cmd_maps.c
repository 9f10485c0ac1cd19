/* cmd_maps.c — `brainalign maps`: per-voxel scores back into brain space. */
#include <mpi.h>
#include <stdio.h>

#include "args.h"
#include "commands.h"
#include "brainalign/io/brainmaps.h"

static void help(void)
{
    printf(
        "usage: brainalign maps --scores SCORES.h5 --bold BOLD.h5 --out PREFIX [--dataset NAME]...\n\n"
        "Write per-voxel results of `fit` back into the brain space that BOLD.h5 records\n"
        "(see `brainalign import --help`):\n"
        "  volume   PREFIX_<name>.nii.gz: the mask's grid and affine, 0 outside the mask\n"
        "  surface  PREFIX_<name>.lh.func.gii and PREFIX_<name>.rh.func.gii\n"
        "<name> is the dataset's path without the leading '/' ('/' -> '_'); a PREFIX ending in\n"
        "'/' is a directory (no '_'). A dataset [n_voxels] is one map; [k, n_voxels] (e.g.\n"
        "r_folds) is k maps (a 4-D volume, or k DataArrays). All files are written under\n"
        "temporary names and renamed only when every one succeeded.\n\n"
        "  --scores FILE    scores.h5 from `fit`\n"
        "  --bold FILE      the bold.h5 the scores were fitted on\n"
        "  --out PREFIX     output prefix\n"
        "  --dataset NAME   a dataset of SCORES.h5 to map (repeatable; default r)\n"
        "  --quiet          do not list the files written\n");
}

int ba_cmd_maps(int argc, char **argv)
{
    ba_maps_options o = {0};
    ba_error err;
    ba_error_clear(&err);
    ba_args a;
    ba_args_init(&a, argc, argv);
    bool quiet = false;
    while (ba_args_more(&a)) {
        if (ba_cli_is_help(argv[a.i])) { help(); return 0; }
        if (ba_args_value(&a, "--scores")) o.scores_path = a.value;
        else if (ba_args_value(&a, "--bold")) o.bold_path = a.value;
        else if (ba_args_value(&a, "--out")) o.out_prefix = a.value;
        else if (ba_args_value(&a, "--dataset")) {
            if (o.n_datasets < BA_MAPS_MAX_DATASETS) o.datasets[o.n_datasets++] = a.value;
            else snprintf(a.error, sizeof a.error, "at most %d --dataset", BA_MAPS_MAX_DATASETS);
        }
        else if (ba_args_flag(&a, "--quiet")) quiet = true;
        else snprintf(a.error, sizeof a.error, "unknown option '%s' (see --help)", argv[a.i]);
    }
    if (!a.error[0] && (!o.scores_path || !o.bold_path || !o.out_prefix))
        snprintf(a.error, sizeof a.error, "--scores, --bold and --out are required");
    if (a.error[0]) {
        ba_fail(&err, BA_ERR_USAGE, "%s", a.error);
        return ba_cli_report("maps", BA_ERR_USAGE, &err);
    }
    ba_maps_written written;
    ba_status rc = ba_maps_run(&o, MPI_COMM_WORLD, &written, &err);
    if (rc != BA_OK) return ba_cli_report("maps", rc, &err);
    if (!quiet)
        for (size_t k = 0; k < written.n; k++) printf("wrote %s\n", written.paths[k]);
    ba_maps_written_free(&written);
    return 0;
}
