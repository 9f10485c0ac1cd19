/* cmd_import.c — `brainalign import`: BOLD (GIfTI, NIfTI, HDF5) -> bold.h5,
 * or an atlas (.annot, NIfTI labels) -> atlas.h5. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "brainalign/io/atlas_readers.h"
#include "brainalign/io/importers.h"
#include "brainalign/pipeline/import_options.h"

static void help(void)
{
    printf(
        "usage: brainalign import --format gifti --tr SEC --out BOLD.h5\n"
        "                         (--story NAME --lh L.func.gii --rh R.func.gii)... [options]\n"
        "       brainalign import --format nifti --mask MASK.nii.gz --tr SEC --out BOLD.h5\n"
        "                         (--story NAME --file BOLD.nii.gz)... [options]\n"
        "       brainalign import --format hdf5 --tr SEC --out BOLD.h5\n"
        "                         (--story NAME --file F.hf5 [--dataset D])... | --file F.h5\n"
        "       brainalign import --format annot --lh lh.X.annot --rh rh.X.annot [--bold BOLD.h5]\n"
        "                         --out ATLAS.h5\n"
        "       brainalign import --format nifti-labels --labels LABELS.nii.gz --table LUT\n"
        "                         (--bold BOLD.h5 | --mask MASK.nii.gz) --out ATLAS.h5\n\n"
        "BOLD formats write the canonical bold.h5: /stories/<story>/data float32 [n_tr, n_voxels],\n"
        "root attribute tr_s, and the brain space so that `brainalign maps` can put scores back:\n"
        "  gifti  functional surfaces (e.g. Narratives fsaverage6), one file per hemisphere, one\n"
        "         DataArray per TR (or one [n_vertices, n_tr] array); columns are the lh vertices\n"
        "         then the rh ones; /surface/n_vertices_lh and _rh record the split.\n"
        "  nifti  4-D volumes and a 3-D brain mask (nonzero = in the brain); columns are the mask's\n"
        "         voxels in C order (numpy's vol[mask != 0] on nibabel's (i, j, k) array: i slowest,\n"
        "         k fastest); /mask int32 [nx, ny, nz] and /affine float64 [4, 4] are recorded.\n"
        "  hdf5   one [n_tr, n_voxels] dataset per story (LeBel et al.'s .hf5): --file F with\n"
        "         --story uses F's /data, else its /<story>, or --dataset D; --file F alone takes\n"
        "         every 2-D dataset at F's root as a story of that name. --mask records a volume.\n"
        "Atlas formats write the native atlas (/labels int32 [n_voxels], region index or -1;\n"
        "/names) over the BOLD's columns:\n"
        "  annot         FreeSurfer .annot per hemisphere (old or new colour table), regions\n"
        "                'lh.<name>' then 'rh.<name>'; vertices labelled 0, with a value not in\n"
        "                the table, or Unknown / Medial_wall get -1. --bold checks vertex counts.\n"
        "  nifti-labels  integer label volume on the mask's grid + a table ('index name r g b a'\n"
        "                FreeSurfer LUT, or 'index<TAB>name'); regions are the table's entries\n"
        "                present in the volume (index 0 and Unknown excluded), other voxels -1.\n\n"
        "inputs (BOLD):\n"
        "  --story NAME        starts a story; the next --lh/--rh/--file/--dataset belong to it\n"
        "  --lh FILE, --rh FILE  GIfTI hemispheres of the story (either may be left out)\n"
        "  --file FILE         NIfTI volume or HDF5 file of the story\n"
        "  --dataset D         HDF5: the dataset of the story in FILE\n"
        "  --list FILE         more inputs, one per line: 'story lh rh' (GIfTI, '-' = none),\n"
        "                      'story volume' (NIfTI), 'story file [dataset]' (HDF5); '#' comments;\n"
        "                      relative paths are relative to the list file\n"
        "  --mask FILE         3-D NIfTI brain mask (required for nifti)\n"
        "options (BOLD):\n");
    ba_option_help(&ba_import_option_table, "BOLD", stdout);
    printf(
        "inputs (atlas):\n"
        "  --lh FILE, --rh FILE  .annot of each hemisphere\n"
        "  --labels FILE       NIfTI label volume;  --table FILE  its label table\n"
        "  --bold FILE         the bold.h5 the atlas is for (sizes are checked against it)\n"
        "  --mask FILE         nifti-labels: a NIfTI mask instead of --bold\n"
        "output:\n"
        "  --out FILE          written under a temporary name, then renamed; nothing on error\n"
        "  --quiet             no progress or summary\n"
        "NaN or infinite BOLD values are an error naming the file, story, TR and voxel.\n");
}

typedef struct {
    const char *story, *lh, *rh, *file, *dataset;
} raw_entry;

typedef struct {
    raw_entry *items;
    int n, cap;
    raw_entry loose; /* options given before any --story */
} raw_entries;

static raw_entry *current_entry(raw_entries *e)
{
    return e->n ? &e->items[e->n - 1] : &e->loose;
}

static bool start_story(raw_entries *e, const char *story)
{
    if (e->n == e->cap) {
        int cap = e->cap ? 2 * e->cap : 64;
        raw_entry *grown = realloc(e->items, (size_t)cap * sizeof *grown);
        if (!grown) return false;
        e->items = grown;
        e->cap = cap;
    }
    e->items[e->n++] = (raw_entry){.story = story};
    return true;
}

typedef struct {
    const char *format, *mask, *out, *labels, *table, *bold;
    const char *lists[64];
    int n_lists;
    ba_import_options values; /* --tr, --trim-start, --trim-end, --average (import_options.h) */
    bool quiet;
} import_args;

static void parse(ba_args *a, import_args *o, raw_entries *e)
{
    while (ba_args_more(a)) {
        raw_entry *cur = current_entry(e);
        if (ba_args_value(a, "--format")) o->format = a->value;
        else if (ba_args_value(a, "--story")) {
            if (!start_story(e, a->value)) snprintf(a->error, sizeof a->error, "out of memory");
        }
        else if (ba_args_value(a, "--lh")) cur->lh = a->value;
        else if (ba_args_value(a, "--rh")) cur->rh = a->value;
        else if (ba_args_value(a, "--file")) cur->file = a->value;
        else if (ba_args_value(a, "--dataset")) cur->dataset = a->value;
        else if (ba_args_value(a, "--list")) {
            if (o->n_lists < 64) o->lists[o->n_lists++] = a->value;
            else snprintf(a->error, sizeof a->error, "at most 64 --list files");
        }
        else if (ba_args_value(a, "--mask")) o->mask = a->value;
        else if (ba_args_value(a, "--labels")) o->labels = a->value;
        else if (ba_args_value(a, "--table")) o->table = a->value;
        else if (ba_args_value(a, "--bold")) o->bold = a->value;
        else if (ba_args_value(a, "--out")) o->out = a->value;
        else if (ba_args_table(a, &ba_import_option_table, &o->values)) continue;
        else if (ba_args_flag(a, "--quiet")) o->quiet = true;
        else snprintf(a->error, sizeof a->error, "unknown option '%s' (see --help)", a->argv[a->i]);
    }
}

static ba_status collect_bold_inputs(const import_args *o, ba_bold_format format,
                                     const raw_entries *e, ba_bold_inputs *inputs, ba_error *err)
{
    const raw_entry *loose = &e->loose;
    if (loose->lh || loose->rh || loose->dataset || (loose->file && format != BA_BOLD_HDF5))
        return ba_fail(err, BA_ERR_USAGE, "--lh/--rh/--file/--dataset must follow a --story "
                       "(only --format hdf5 takes a --file alone)");
    if (loose->file) BA_CHECK(ba_bold_inputs_add_hdf5_file(inputs, loose->file, err));
    for (int k = 0; k < e->n; k++) {
        const raw_entry *r = &e->items[k];
        bool gifti = format == BA_BOLD_GIFTI;
        if (gifti && r->file)
            return ba_fail(err, BA_ERR_USAGE, "story %s: GIfTI takes --lh/--rh, not --file", r->story);
        if (!gifti && (r->lh || r->rh))
            return ba_fail(err, BA_ERR_USAGE, "story %s: --lh/--rh are for --format gifti", r->story);
        if (r->dataset && format != BA_BOLD_HDF5)
            return ba_fail(err, BA_ERR_USAGE, "story %s: --dataset is for --format hdf5", r->story);
        const char *f0 = gifti ? r->lh : r->file, *f1 = gifti ? r->rh : NULL;
        if (!f0 && !f1)
            return ba_fail(err, BA_ERR_USAGE, "story %s has no input file (%s)", r->story,
                           gifti ? "--lh/--rh" : "--file");
        BA_CHECK(ba_bold_inputs_add(inputs, r->story, f0, f1, r->dataset, err));
    }
    for (int k = 0; k < o->n_lists; k++)
        BA_CHECK(ba_bold_inputs_read_list(inputs, format, o->lists[k], err));
    return BA_OK;
}

static int run_bold(const import_args *o, ba_bold_format format, const raw_entries *e,
                    const char *command)
{
    ba_error err;
    ba_error_clear(&err);
    ba_bold_inputs inputs = {0};
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    ba_status rc = o->bold ? ba_fail(&err, BA_ERR_USAGE, "--bold is for atlas formats") : BA_OK;
    if (rc == BA_OK && (o->labels || o->table))
        rc = ba_fail(&err, BA_ERR_USAGE, "--labels/--table are for --format nifti-labels");
    if (rc == BA_OK) rc = collect_bold_inputs(o, format, e, &inputs, &err);
    if (rc != BA_OK) {
        ba_bold_inputs_free(&inputs);
        return ba_cli_report("import", rc, &err);
    }
    ba_import_options opt = o->values;
    opt.format = format;
    opt.inputs = &inputs;
    opt.mask_path = o->mask;
    opt.quiet = o->quiet;
    opt.out_path = o->out;
    opt.command_line = command;
    ba_import_summary summary;
    rc = ba_import_bold(&opt, MPI_COMM_WORLD, &summary, &err);
    ba_bold_inputs_free(&inputs);
    if (rc != BA_OK) return ba_cli_report("import", rc, &err);
    if (rank == 0 && !o->quiet)
        printf("wrote %s: %ld stories, %ld TRs in all, %ld voxels (%s space), up to %d subject%s "
               "per story\n", o->out, summary.n_stories, summary.n_tr_total, summary.n_voxels,
               summary.space == BA_SPACE_VOLUME ? "volume"
               : summary.space == BA_SPACE_SURFACE ? "surface" : "no",
               summary.max_subjects, summary.max_subjects == 1 ? "" : "s");
    return 0;
}

static int run_atlas(const import_args *o, ba_atlas_format format, const raw_entries *e)
{
    ba_error err;
    ba_error_clear(&err);
    ba_status rc = BA_OK;
    if (e->n > 0 || e->loose.file || e->loose.dataset || o->n_lists)
        rc = ba_fail(&err, BA_ERR_USAGE, "--story/--file/--dataset/--list are for BOLD formats");
    else if (format == BA_ATLAS_ANNOT && (o->labels || o->table || o->mask))
        rc = ba_fail(&err, BA_ERR_USAGE, "--format annot takes --lh/--rh (and --bold)");
    else if (format == BA_ATLAS_NIFTI_LABELS && (e->loose.lh || e->loose.rh))
        rc = ba_fail(&err, BA_ERR_USAGE, "--format nifti-labels takes --labels and --table");
    if (rc != BA_OK) return ba_cli_report("import", rc, &err);
    ba_atlas_import_options opt = {
        .format = format, .lh_path = e->loose.lh, .rh_path = e->loose.rh,
        .labels_path = o->labels, .table_path = o->table, .bold_path = o->bold,
        .mask_path = o->mask, .out_path = o->out};
    ba_atlas atlas;
    rc = ba_import_atlas(&opt, MPI_COMM_WORLD, &atlas, &err);
    if (rc != BA_OK) return ba_cli_report("import", rc, &err);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0 && !o->quiet) {
        long labelled = 0;
        for (long v = 0; v < atlas.n_voxels; v++) labelled += atlas.labels[v] >= 0;
        printf("wrote %s: %d regions, %ld of %ld voxels in a region\n", o->out, atlas.n_regions,
               labelled, atlas.n_voxels);
    }
    ba_atlas_free(&atlas);
    return 0;
}

int ba_cmd_import(int argc, char **argv)
{
    import_args o = {0};
    ba_import_options_defaults(&o.values);
    raw_entries e = {0};
    ba_args a;
    ba_args_init(&a, argc, argv);
    for (int i = 1; i < argc; i++)
        if (ba_cli_is_help(argv[i])) { help(); return 0; }
    parse(&a, &o, &e);
    ba_error err;
    ba_error_clear(&err);
    if (!a.error[0] && !o.format)
        snprintf(a.error, sizeof a.error, "--format is required (gifti, nifti, hdf5, annot or "
                 "nifti-labels; see --help)");
    if (!a.error[0] && !o.out) snprintf(a.error, sizeof a.error, "--out is required");
    int code = 0;
    if (a.error[0]) {
        ba_fail(&err, BA_ERR_USAGE, "%s", a.error);
        code = ba_cli_report("import", BA_ERR_USAGE, &err);
    } else if (strcmp(o.format, "annot") == 0) {
        code = run_atlas(&o, BA_ATLAS_ANNOT, &e);
    } else if (strcmp(o.format, "nifti-labels") == 0) {
        code = run_atlas(&o, BA_ATLAS_NIFTI_LABELS, &e);
    } else {
        ba_bold_format format;
        if (ba_bold_format_parse(o.format, &format, &err) != BA_OK) {
            ba_fail(&err, BA_ERR_USAGE, "--format '%s' is not gifti, nifti, hdf5, annot or "
                    "nifti-labels", o.format);
            code = ba_cli_report("import", BA_ERR_USAGE, &err);
        } else {
            char command[8192];
            ba_args_command_line(argc, argv, command, sizeof command);
            code = run_bold(&o, format, &e, command);
        }
    }
    free(e.items);
    return code;
}
