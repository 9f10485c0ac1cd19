/* cmd_fit.c — `brainalign fit`: parse options, call ba_fit_run, print the
 * per-region table. */
#include <cblas.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "brainalign/pipeline/fit.h"
#include "brainalign/pipeline/fit_options.h"
#include "brainalign/kernels/kernels.h"
#include "brainalign/parallel/parallel.h"
#include "brainalign/ridge/ridge_petsc.h"

/* SIGTERM (SLURM's time limit, or a user) asks for a clean stop at the next
 * fold boundary; finished folds are already saved in the checkpoint. */
static volatile sig_atomic_t stop_requested = 0;

static void on_terminate(int signal_number)
{
    (void)signal_number;
    stop_requested = 1;
}

/* PETSc options have a single dash (-ksp_type); "-h" stays our help. */
static bool is_petsc_option(const char *arg)
{
    return arg[0] == '-' && arg[1] != '-' && arg[1] != '\0' && strcmp(arg, "-h") != 0;
}

/* The argument after a PETSc option is its value unless it is the next
 * option (a negative number is a value). */
static bool is_petsc_value(const char *arg)
{
    if (arg[0] != '-') return true;
    return (arg[1] >= '0' && arg[1] <= '9') || arg[1] == '.';
}

static void help(void)
{
    printf(
        "usage: mpirun -np N brainalign fit --features FEATURES.h5 --bold BOLD.h5 --layer L\n"
        "                                   [--atlas ATLAS.h5] --out SCORES.h5 [options]\n"
        "       mpirun -np N brainalign fit --x FILE.h5:/X --y FILE.h5:/Y --out SCORES.h5 [options]\n\n"
        "Cross-validated ridge regression from language-model features to BOLD, one alpha\n"
        "per voxel chosen by efficient leave-one-out inside each training fold, Pearson r\n"
        "on the held-out fold. X is standardised and Y centred with training statistics.\n\n"
        "inputs:\n"
        "  --features FILE     word-level features (features.h5 from `features` or `synth`)\n"
        "  --bold FILE         BOLD responses (bold.h5: /stories/<story>/data [n_tr, n_voxels])\n"
        "  --layer L[,M...]    hidden-state layer(s), HF numbering; several are concatenated\n"
        "  --x FILE:/DSET      plain design matrix [n, p] float32 (instead of --features)\n"
        "  --y FILE:/DSET      plain responses [n, v] float32 (instead of --bold)\n"
        "  --atlas FILE        regions (HDF5 /labels [n_voxels], /names) for the ROI table\n");
    printf("design (features mode):\n");
    ba_option_help(&ba_fit_option_table, "design", stdout);
    printf("cross-validation:\n");
    ba_option_help(&ba_fit_option_table, "cross-validation", stdout);
    printf(
        "banded ridge (each band of columns its own penalty: sum_b alpha_b |w_b|^2):\n"
        "  --bands SPEC        column ranges of the design, e.g. 0:40,40:100 (disjoint, in\n"
        "                      order, covering every column); one band is the plain fit\n"
        "  --band-alphas SPEC  the --alphas syntax: one grid for every band, or one per band\n"
        "                      separated by ';' (default: the --alphas grid)\n"
        "  --band-search grid|random:N  the Cartesian product of the grids (default), or N\n"
        "                      band weights g on the simplex (Dirichlet(1), --seed) times the\n"
        "                      one grid: candidate alpha_b = alpha / g_b (himalaya's kernel\n"
        "                      weights)\n"
        "  --band-weights FILE the band weights g, one candidate per line (n_bands positive\n"
        "                      numbers; '#' comments), times the one grid as random:N\n"
        "  --seed S            seed of random:N\n"
        "                      Output adds /band_alphas, /band_r2 (split r^2), /band_candidates;\n"
        "                      near-tied candidates are NOT re-ranked in double.\n"
        );
    printf("parallel:\n");
    ba_option_help(&ba_fit_option_table, "parallel", stdout);
    printf(
        "solver:\n"
        "  --solver scalapack|petsc  dense eigendecomposition with ScaLAPACK (default), or\n"
        "                      iterative PETSc KSP (CG on XᵀX + αI, or LSQR), which never forms\n"
        "                      XᵀX or XXᵀ: for feature spaces too large to factorise\n"
        "  --petsc OPTIONS...  everything after --petsc goes to PETSc; so does any argument\n"
        "                      with a single dash (and its value), e.g. -ksp_type lsqr,\n"
        "                      -ksp_rtol 1e-10 (default 1e-8), -pc_type jacobi, -ksp_max_it N,\n"
        "                      -log_view; -ridge_hat_diagonal exact|hutchinson|gcv (exact:\n"
        "                      default; the others are APPROXIMATE), -ridge_hutchinson_probes N,\n"
        "                      -ridge_warm_start 0|1. '--petsc -help' lists the KSP options.\n"
        "output:\n"
        "  --out FILE          scores.h5 (written under a temporary name, then renamed)\n"
        "  --quiet             no progress on standard error\n"
        "  --timing            print the time and flop rate of each phase\n"
        "  --strict-voxels     a voxel constant over the samples is an error (by default it\n"
        "                      is left out: r and alpha NaN, listed in /excluded)\n"
        "  --nan-as-missing    a voxel with NaN samples is left out the same way (by default\n"
        "                      NaN is an error naming the story, TR and voxel)\n"
        "  --stories A,B,...   fit these stories only (by default every story, and a story\n"
        "                      with features but no BOLD, or BOLD but no features, is an error)\n"
        "  --design-only FILE  write the design matrix (/X, /story_bounds, /stories) and stop\n"
        "  --no-checkpoint     do not save finished folds to OUT.checkpoint.h5 (by default a\n"
        "                      killed run, rerun with the same command, resumes from there;\n"
        "                      SIGTERM stops at the next fold boundary)\n");
}

static void print_table(const ba_fit_summary *s)
{
    printf("\nbrain score: %ld TRs, %ld features, %ld voxels, %d folds; mean r = %.4f\n",
           s->n_samples, s->n_features, s->n_voxels, s->n_folds, s->mean_r);
    if (s->n_bands > 1)
        printf("banded ridge: %d bands, %d candidates per fold (near-tied candidates are NOT "
               "re-ranked in double)\n", s->n_bands, s->n_candidates);
    else if (s->n_bands == 1)
        printf("banded ridge with one band: the plain fit over %d alphas\n", s->n_candidates);
    if (s->n_excluded)
        printf("%ld voxel%s left out of the solve (constant over the samples, or NaN with "
               "--nan-as-missing): r = NaN, listed in /excluded; the mean r is over the other "
               "%ld\n", s->n_excluded, s->n_excluded == 1 ? "" : "s",
               s->n_voxels - s->n_excluded);
    if (s->roi.n_regions == 0) return;
    printf("\n%-28s %8s %9s %9s %9s\n", "region", "voxels", "mean r", "median r", "sem");
    for (int g = 0; g < s->roi.n_regions; g++)
        printf("%-28s %8ld %9.4f %9.4f %9.4f\n", s->roi.names[g], s->roi.n_voxels[g],
               s->roi.mean[g], s->roi.median[g], s->roi.sem[g]);
}

static void print_timing(const ba_fit_summary *s, MPI_Comm comm)
{
    double vox_flops = s->timing.voxel_flops, vox_s = s->timing.voxel_seconds;
    double max_vox_s = 0, total_flops = 0;
    MPI_Reduce(&vox_s, &max_vox_s, 1, MPI_DOUBLE, MPI_MAX, 0, comm);
    MPI_Reduce(&vox_flops, &total_flops, 1, MPI_DOUBLE, MPI_SUM, 0, comm);
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    if (rank != 0) return;
    printf("\ntiming (rank 0): total %.2f s, input %.2f s, feature side %.2f s (%.1f GFLOP), "
           "voxel side %.2f s\n", s->seconds_total, s->seconds_io, s->timing.feature_seconds,
           s->timing.feature_flops / 1e9, s->timing.voxel_seconds);
    printf("near-tied alphas re-ranked in double: %ld (voxel, fold) pairs in %.2f s (group of "
           "rank 0)\n", s->timing.tied_voxels, s->timing.tie_seconds);
    printf("voxel side, all ranks: %.1f GFLOP in %.2f s = %.1f GFLOP/s (voxel products: %s; "
           "OpenBLAS %s kernels elsewhere, %d thread(s) per rank)\n", total_flops / 1e9,
           max_vox_s, max_vox_s > 0 ? total_flops / max_vox_s / 1e9 : 0.0,
           ba_sgemm_kernel_available() ? "ba_sgemm AVX-512" : "cblas_sgemm",
           openblas_get_corename(), openblas_get_num_threads());
}

int ba_cmd_fit(int argc, char **argv)
{
    ba_fit_config cfg;
    ba_fit_config_defaults(&cfg);
    ba_fit_options options;
    ba_fit_options_defaults(&options);
    ba_error err;
    ba_error_clear(&err);
    ba_args a;
    long number = 0;
    ba_args_init(&a, argc, argv);
    bool timing = false;
    const char *design_only = NULL;
    const char *layer_text = NULL; /* argv's own string: no fixed buffer to cut it */
    /* PETSc's options: argv[0] for PetscInitialize, then what we pass on. */
    char *petsc_argv[argc + 2];
    int petsc_argc = 1;
    petsc_argv[0] = "brainalign";
    const char *solver = "scalapack";
    while (ba_args_more(&a)) {
        if (ba_cli_is_help(argv[a.i])) { help(); return 0; }
        if (strcmp(argv[a.i], "--petsc") == 0) {
            for (a.i++; a.i < argc; a.i++) petsc_argv[petsc_argc++] = argv[a.i];
            break;
        }
        if (is_petsc_option(argv[a.i])) {
            petsc_argv[petsc_argc++] = argv[a.i++];
            if (a.i < argc && is_petsc_value(argv[a.i])) petsc_argv[petsc_argc++] = argv[a.i++];
            continue;
        }
        if (ba_args_value(&a, "--features")) cfg.features_path = a.value;
        else if (ba_args_value(&a, "--bold")) cfg.bold_path = a.value;
        else if (ba_args_value(&a, "--x")) cfg.x_spec = a.value;
        else if (ba_args_value(&a, "--y")) cfg.y_spec = a.value;
        else if (ba_args_value(&a, "--atlas")) cfg.atlas_path = a.value;
        else if (ba_args_value(&a, "--stories")) cfg.stories = a.value;
        else if (ba_args_flag(&a, "--strict-voxels")) cfg.strict_voxels = true;
        else if (ba_args_flag(&a, "--nan-as-missing")) cfg.nan_as_missing = true;
        else if (ba_args_value(&a, "--out")) cfg.out_path = a.value;
        else if (ba_args_value(&a, "--layer") || ba_args_value(&a, "--layers"))
            layer_text = a.value;
        else if (ba_args_table(&a, &ba_fit_option_table, &options)) continue;
        else if (ba_args_value(&a, "--bands")) cfg.bands_spec = a.value;
        else if (ba_args_value(&a, "--band-alphas")) cfg.band_alphas_spec = a.value;
        else if (ba_args_value(&a, "--band-search")) cfg.band_search = a.value;
        else if (ba_args_value(&a, "--band-weights")) cfg.band_weights_path = a.value;
        else if (ba_args_value(&a, "--seed")) {
            if (ba_args_long(&a, "--seed", &number)) {
                if (number < 0) snprintf(a.error, sizeof a.error, "--seed %s must be >= 0", a.value);
                else cfg.seed = (unsigned long long)number, cfg.has_seed = true;
            }
        }
        else if (ba_args_flag(&a, "--quiet")) cfg.ridge.quiet = true;
        else if (ba_args_flag(&a, "--timing")) timing = true;
        else if (ba_args_value(&a, "--design-only")) design_only = a.value;
        else if (ba_args_flag(&a, "--no-checkpoint")) cfg.no_checkpoint = true;
        else if (ba_args_value(&a, "--solver")) solver = a.value;
        else snprintf(a.error, sizeof a.error, "unknown option '%s' (see --help)", argv[a.i]);
    }
    ba_fit_options_apply(&options, &cfg);
    petsc_argv[petsc_argc] = NULL;
    if (!a.error[0] && strcmp(solver, "petsc") == 0) cfg.solver = BA_FIT_SOLVER_PETSC;
    else if (!a.error[0] && strcmp(solver, "scalapack") != 0)
        snprintf(a.error, sizeof a.error, "--solver is scalapack or petsc, not '%s'", solver);
    if (!a.error[0] && petsc_argc > 1 && cfg.solver != BA_FIT_SOLVER_PETSC)
        snprintf(a.error, sizeof a.error, "PETSc options (%s ...) need --solver petsc",
                 petsc_argv[1]);
    if (!a.error[0] && layer_text &&
        ba_parse_int_list(layer_text, cfg.layers, BA_MAX_LAYERS, &cfg.n_layers, &err))
        snprintf(a.error, sizeof a.error, "--layer: %s", err.message);
    if (a.error[0]) {
        ba_fail(&err, BA_ERR_USAGE, "%s", a.error);
        return ba_cli_report("fit", BA_ERR_USAGE, &err);
    }
    char command[4096];
    ba_args_command_line(argc, argv, command, sizeof command);
    cfg.command_line = command;

    if (design_only) {
        ba_status drc = ba_fit_export_design(&cfg, MPI_COMM_WORLD, design_only, &err);
        return drc == BA_OK ? 0 : ba_cli_report("fit", drc, &err);
    }
    char petsc_text[2048] = "";
    if (cfg.solver == BA_FIT_SOLVER_PETSC) {
        ba_status prc = ba_petsc_initialize(petsc_argc, petsc_argv, &err);
        if (prc != BA_OK) return ba_cli_report("fit", prc, &err);
        size_t len = 0;
        for (int i = 1; i < petsc_argc && len < sizeof petsc_text; i++)
            len += (size_t)snprintf(petsc_text + len, sizeof petsc_text - len, "%s%s",
                                    i > 1 ? " " : "", petsc_argv[i]);
        cfg.solver_options = petsc_text;
    }
    /* After PetscInitialize, which installs its own SIGTERM handler. */
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_terminate;
    sigaction(SIGTERM, &action, NULL);
    cfg.stop_requested = &stop_requested;
    ba_fit_summary summary;
    ba_status rc = ba_fit_run(&cfg, MPI_COMM_WORLD, &summary, &err);
    if (cfg.solver == BA_FIT_SOLVER_PETSC) {
        ba_error ferr;
        ba_petsc_finalize(&ferr); /* prints -log_view */
    }
    if (rc != BA_OK) return ba_cli_report("fit", rc, &err);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) {
        print_table(&summary);
        printf("\nwrote %s\n", cfg.out_path);
    }
    if (timing) print_timing(&summary, MPI_COMM_WORLD);
    fflush(stdout);
    ba_fit_summary_free(&summary);
    return 0;
}
