/* study.c — `brainalign run CONFIG` (see study.h). */
#include "brainalign/study.h"

#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "brainalign/design.h"
#include "brainalign/parallel.h"

/* ------------------------------------------------------------ parsing */

typedef struct {
    ba_study_config *cfg;
    char base_dir[BA_PATH_MAX];
    char problem[512];       /* why the handler refused a line */
    bool seen_synth, seen_features, seen_model;
} parse_state;

static void resolve(const char *base, const char *value, char *out, size_t size)
{
    if (value[0] == '/' || base[0] == '\0') snprintf(out, size, "%s", value);
    else snprintf(out, size, "%s/%s", base, value);
}

static bool parse_long(const char *value, long *out)
{
    char *end = NULL;
    long v = strtol(value, &end, 10);
    if (end == value || *end) return false;
    *out = v;
    return true;
}

static bool parse_double(const char *value, double *out)
{
    char *end = NULL;
    double v = strtod(value, &end);
    if (end == value || *end) return false;
    *out = v;
    return true;
}

static bool parse_bool(const char *value, bool *out)
{
    if (!strcasecmp(value, "true") || !strcasecmp(value, "yes") || !strcmp(value, "1")) *out = true;
    else if (!strcasecmp(value, "false") || !strcasecmp(value, "no") || !strcmp(value, "0")) *out = false;
    else return false;
    return true;
}

/* "a, b ,c" -> names; false if too many or one is empty. */
static bool parse_names(const char *value, char names[][BA_STUDY_NAME_MAX], int max, int *n)
{
    *n = 0;
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        const char *end = p;
        while (*end && *end != ',') end++;
        const char *last = end;
        while (last > p && last[-1] == ' ') last--;
        if (*n >= max || last - p >= BA_STUDY_NAME_MAX) return false;
        snprintf(names[*n], BA_STUDY_NAME_MAX, "%.*s", (int)(last - p), p);
        (*n)++;
        p = end;
    }
    return *n > 0;
}

#define KEY(s, k) (strcmp(section, s) == 0 && strcmp(name, k) == 0)
#define BAD(...) do { snprintf(st->problem, sizeof st->problem, __VA_ARGS__); return 0; } while (0)

static int on_entry(void *user, const char *section, const char *name, const char *value)
{
    parse_state *st = user;
    ba_study_config *c = st->cfg;
    ba_error err;
    long l = 0;
    double d = 0;
    if (name == NULL) { /* a section header (newer inih) */
        return 1;
    }
    if (KEY("study", "name")) snprintf(c->name, sizeof c->name, "%s", value);
    else if (KEY("study", "output")) resolve(st->base_dir, value, c->output_dir, sizeof c->output_dir);
    else if (KEY("study", "condition")) snprintf(c->condition, sizeof c->condition, "%s", value);
    else if (strcmp(section, "synth") == 0) {
        st->seen_synth = true;
        ba_synth_options *o = &c->synth_options;
        if (!strcmp(name, "stimuli")) resolve(st->base_dir, value, c->synth_stimuli, sizeof c->synth_stimuli);
        else if (!strcmp(name, "stories") && parse_long(value, &l)) o->n_stories = (int)l;
        else if (!strcmp(name, "words") && parse_long(value, &l)) o->words_per_story = l;
        else if (!strcmp(name, "subjects") && parse_long(value, &l)) o->n_subjects = (int)l;
        else if (!strcmp(name, "voxels") && parse_long(value, &l)) o->n_voxels = l;
        else if (!strcmp(name, "regions") && parse_long(value, &l)) o->n_regions = (int)l;
        else if (!strcmp(name, "d_model") && parse_long(value, &l)) o->d_model = l;
        else if (!strcmp(name, "layers") && parse_long(value, &l)) o->n_layers = (int)l;
        else if (!strcmp(name, "planted_layer") && parse_long(value, &l)) o->planted_layer = (int)l;
        else if (!strcmp(name, "seed") && parse_long(value, &l)) o->seed = (uint64_t)l;
        else if (!strcmp(name, "max_r") && parse_double(value, &d)) o->max_r = d;
        else if (!strcmp(name, "tr") && parse_double(value, &d)) o->tr_s = d;
        else BAD("[synth] %s = %s: unknown key or bad value", name, value);
    }
    else if (KEY("features", "path")) { st->seen_features = true; resolve(st->base_dir, value, c->features_path, sizeof c->features_path); }
    else if (KEY("model", "path")) { st->seen_model = true; resolve(st->base_dir, value, c->model_dir, sizeof c->model_dir); }
    else if (KEY("model", "context")) { if (!parse_long(value, &c->context) || c->context < 2) BAD("[model] context must be a whole number >= 2"); }
    else if (KEY("model", "stride")) { if (!parse_long(value, &c->stride) || c->stride < 1) BAD("[model] stride must be a whole number >= 1"); }
    else if (KEY("model", "bos")) {
        if (strcmp(value, "auto") && strcmp(value, "yes") && strcmp(value, "no")) BAD("[model] bos is auto, yes or no");
        snprintf(c->bos, sizeof c->bos, "%s", value);
    }
    else if (KEY("stimuli", "dir")) resolve(st->base_dir, value, c->stimuli_dir, sizeof c->stimuli_dir);
    else if (KEY("stimuli", "format")) snprintf(c->stimuli_format, sizeof c->stimuli_format, "%s", value);
    else if (KEY("stimuli", "stories")) snprintf(c->stories, sizeof c->stories, "%s", value);
    else if (KEY("fit", "layers")) {
        if (ba_parse_int_list(value, c->layers, BA_MAX_LAYERS, &c->n_layers, &err)) BAD("[fit] layers: %s", err.message);
    }
    else if (KEY("bold", "subjects")) {
        if (!parse_names(value, c->subjects, BA_STUDY_MAX_SUBJECTS, &c->n_subjects)) BAD("[bold] subjects: a comma-separated list of names");
    }
    else if (KEY("bold", "path")) resolve(st->base_dir, value, c->bold_pattern, sizeof c->bold_pattern);
    else if (KEY("bold", "tr")) { if (!parse_double(value, &c->tr_s) || !(c->tr_s > 0)) BAD("[bold] tr must be a positive number of seconds"); }
    else if (KEY("atlas", "path")) resolve(st->base_dir, value, c->atlas_path, sizeof c->atlas_path);
    else if (KEY("alignment", "aggregate")) {
        if (!strcmp(value, "sum")) c->fit.design.aggregate = BA_AGGREGATE_SUM;
        else if (!strcmp(value, "mean")) c->fit.design.aggregate = BA_AGGREGATE_MEAN;
        else if (!strcmp(value, "lanczos")) c->fit.design.aggregate = BA_AGGREGATE_LANCZOS;
        else BAD("[alignment] aggregate is sum, mean or lanczos, not '%s'", value);
    }
    else if (KEY("alignment", "tr_offset")) { if (!parse_double(value, &c->fit.design.tr_offset_s)) BAD("[alignment] tr_offset: seconds"); }
    else if (KEY("alignment", "delays")) {
        if (ba_parse_int_list(value, c->fit.delays, BA_MAX_DELAYS, &c->fit.design.n_delays, &err)) BAD("[alignment] delays: %s", err.message);
    }
    else if (KEY("cv", "folds")) { if (!parse_long(value, &l) || l < 2) BAD("[cv] folds must be >= 2"); c->fit.ridge.n_folds = (int)l; }
    else if (KEY("cv", "alphas")) {
        if (ba_parse_alphas(value, c->fit.alphas, BA_MAX_ALPHAS, &c->fit.ridge.n_alphas, &err)) BAD("[cv] alphas: %s", err.message);
    }
    else if (KEY("cv", "story_folds")) { if (!parse_bool(value, &c->fit.story_folds)) BAD("[cv] story_folds is true or false"); }
    else if (KEY("cv", "fold_groups")) { if (!parse_long(value, &l) || l < 1) BAD("[cv] fold_groups must be >= 1"); c->fit.ridge.fold_groups = (int)l; }
    else if (KEY("cv", "voxel_block")) { if (!parse_long(value, &l) || l < 1) BAD("[cv] voxel_block must be >= 1"); c->fit.ridge.voxel_block = l; }
    else BAD("unknown key '%s' in section [%s]", name, section);
    return 1;
}

static ba_status read_text(const char *path, char **text, ba_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return ba_fail(err, BA_ERR_IO, "%s: cannot open the configuration", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *text = ba_calloc((size_t)(n > 0 ? n : 0) + 1, 1, "configuration text", err);
    if (!*text) { fclose(f); return BA_ERR_NOMEM; }
    size_t got = fread(*text, 1, (size_t)(n > 0 ? n : 0), f);
    fclose(f);
    (*text)[got] = '\0';
    return BA_OK;
}

static ba_status check_config(ba_study_config *c, const parse_state *st, ba_error *err)
{
    const char *p = c->path;
    int sources = st->seen_synth + st->seen_features + st->seen_model;
    if (sources != 1)
        return ba_fail(err, BA_ERR_USAGE,
                       "%s: give exactly one source of features: [synth], [features] or [model]", p);
    if (!c->output_dir[0]) return ba_fail(err, BA_ERR_USAGE, "%s: [study] output is required", p);
    if (c->n_layers < 1) return ba_fail(err, BA_ERR_USAGE, "%s: [fit] layers is required", p);
    if (st->seen_model && !c->stimuli_dir[0])
        return ba_fail(err, BA_ERR_USAGE, "%s: [model] needs [stimuli] dir", p);
    if (c->synth) {
        /* The synthetic study brings its own subjects, BOLD and atlas. */
        if (c->n_subjects == 0) {
            /* The names are generated into subjects[]: bound the count first. */
            if (c->synth_options.n_subjects < 1 || c->synth_options.n_subjects > BA_STUDY_MAX_SUBJECTS)
                return ba_fail(err, BA_ERR_USAGE, "%s: [synth] subjects = %d, expected 1..%d", p,
                               c->synth_options.n_subjects, BA_STUDY_MAX_SUBJECTS);
            c->n_subjects = c->synth_options.n_subjects;
            for (int s = 0; s < c->n_subjects; s++)
                snprintf(c->subjects[s], BA_STUDY_NAME_MAX, "sub-%02d", s + 1);
        }
        snprintf(c->bold_pattern, sizeof c->bold_pattern, "%s/synth/bold-{subject}.h5", c->output_dir);
        if (!c->atlas_path[0])
            snprintf(c->atlas_path, sizeof c->atlas_path, "%s/synth/atlas.h5", c->output_dir);
        snprintf(c->features_path, sizeof c->features_path, "%s/synth/features.h5", c->output_dir);
    }
    if (c->n_subjects < 1) return ba_fail(err, BA_ERR_USAGE, "%s: [bold] subjects is required", p);
    if (!c->bold_pattern[0]) return ba_fail(err, BA_ERR_USAGE, "%s: [bold] path is required", p);
    if (c->n_subjects > 1 && !strstr(c->bold_pattern, "{subject}"))
        return ba_fail(err, BA_ERR_USAGE, "%s: [bold] path must contain {subject} for %d subjects",
                       p, c->n_subjects);
    return BA_OK;
}

ba_status ba_study_config_load(const char *path, ba_study_config *cfg, ba_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    ba_fit_config_defaults(&cfg->fit);
    ba_synth_defaults(&cfg->synth_options);
    snprintf(cfg->path, sizeof cfg->path, "%s", path);
    snprintf(cfg->condition, sizeof cfg->condition, "baseline");
    snprintf(cfg->bos, sizeof cfg->bos, "auto");
    snprintf(cfg->stimuli_format, sizeof cfg->stimuli_format, "auto");
    cfg->context = 1024;
    BA_CHECK(read_text(path, &cfg->text, err));
    parse_state st = {.cfg = cfg};
    const char *slash = strrchr(path, '/');
    if (slash) snprintf(st.base_dir, sizeof st.base_dir, "%.*s", (int)(slash - path), path);
    int line = ini_parse(path, on_entry, &st);
    if (line < 0) return ba_fail(err, BA_ERR_IO, "%s: cannot read the configuration", path);
    if (line > 0)
        return ba_fail(err, BA_ERR_USAGE, "%s:%d: %s", path, line,
                       st.problem[0] ? st.problem : "not a 'key = value' line or a [section]");
    cfg->synth = st.seen_synth;
    if (cfg->synth && cfg->synth_stimuli[0]) cfg->synth_options.stimuli_dir = cfg->synth_stimuli;
    return check_config(cfg, &st, err);
}

void ba_study_config_free(ba_study_config *cfg)
{
    free(cfg->text);
    cfg->text = NULL;
}

/* ------------------------------------------------------------ running */

static ba_status make_dir(const char *path, ba_error *err)
{
    char buf[BA_PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        mkdir(buf, 0777);
        *p = '/';
    }
    struct stat st;
    if (mkdir(buf, 0777) != 0 && (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)))
        return ba_fail(err, BA_ERR_IO, "%s: cannot create the directory", path);
    return BA_OK;
}

static void substitute_subject(const char *pattern, const char *subject, char *out, size_t size)
{
    const char *at = strstr(pattern, "{subject}");
    if (!at) snprintf(out, size, "%s", pattern);
    else snprintf(out, size, "%.*s%s%s", (int)(at - pattern), pattern, subject, at + 9);
}

static ba_status write_region_csv(const char *path, const ba_fit_summary *s, ba_error *err)
{
    char temp[BA_PATH_MAX + 16];
    snprintf(temp, sizeof temp, "%s.partial", path);
    FILE *f = fopen(temp, "w");
    if (!f) return ba_fail(err, BA_ERR_IO, "%s: cannot write", path);
    fprintf(f, "region,n_voxels,mean_r,median_r,sem\n");
    for (int g = 0; g < s->roi.n_regions; g++)
        fprintf(f, "%s,%ld,%.6f,%.6f,%.6f\n", s->roi.names[g], s->roi.n_voxels[g], s->roi.mean[g],
                s->roi.median[g], s->roi.sem[g]);
    if (fclose(f) != 0 || rename(temp, path) != 0) {
        remove(temp);
        return ba_fail(err, BA_ERR_IO, "%s: cannot write", path);
    }
    return BA_OK;
}

typedef struct {
    int n;              /* fits done */
    int n_regions;
    char **names;       /* region names (owned) */
    char (*label)[2 * BA_STUDY_NAME_MAX];
    double *mean_r;     /* [fit] overall */
    double *roi_mean;   /* [fit][region] */
    long *n_voxels;
} summary_table;

static ba_status write_summary_md(const ba_study_config *cfg, const summary_table *t,
                                  ba_error *err)
{
    char path[BA_PATH_MAX + 32], temp[BA_PATH_MAX + 48];
    snprintf(path, sizeof path, "%s/summary.md", cfg->output_dir);
    snprintf(temp, sizeof temp, "%s.partial", path);
    FILE *f = fopen(temp, "w");
    if (!f) return ba_fail(err, BA_ERR_IO, "%s: cannot write", path);
    fprintf(f, "# %s — brain scores\n\nConfiguration: `%s`, condition `%s`. Pearson r on held-out "
               "folds (%d folds), mean over voxels.\n\n| fit | mean r |\n| --- | ---: |\n",
            cfg->name[0] ? cfg->name : "study", cfg->path, cfg->condition, cfg->fit.ridge.n_folds);
    for (int i = 0; i < t->n; i++) fprintf(f, "| %s | %.4f |\n", t->label[i], t->mean_r[i]);
    if (t->n_regions > 0) {
        fprintf(f, "\n## Mean r by region\n\n| region | voxels |");
        for (int i = 0; i < t->n; i++) fprintf(f, " %s |", t->label[i]);
        fprintf(f, "\n| --- | ---: |");
        for (int i = 0; i < t->n; i++) fprintf(f, " ---: |");
        fprintf(f, "\n");
        for (int g = 0; g < t->n_regions; g++) {
            fprintf(f, "| %s | %ld |", t->names[g], t->n_voxels[g]);
            for (int i = 0; i < t->n; i++) fprintf(f, " %.4f |", t->roi_mean[(size_t)i * t->n_regions + g]);
            fprintf(f, "\n");
        }
    }
    if (fclose(f) != 0 || rename(temp, path) != 0) {
        remove(temp);
        return ba_fail(err, BA_ERR_IO, "%s: cannot write", path);
    }
    return BA_OK;
}

static void summary_free(summary_table *t)
{
    if (t->names)
        for (int g = 0; g < t->n_regions; g++) free(t->names[g]);
    free(t->names); free(t->label); free(t->mean_r); free(t->roi_mean); free(t->n_voxels);
    memset(t, 0, sizeof *t);
}

/* Rank 0 keeps the row of one fit. */
static ba_status summary_add(summary_table *t, int capacity, const char *label,
                             const ba_fit_summary *s, ba_error *err)
{
    if (!t->label) {
        t->label = ba_calloc((size_t)capacity, sizeof *t->label, "summary", err);
        t->mean_r = ba_calloc((size_t)capacity, sizeof(double), "summary", err);
        if (!t->label || !t->mean_r) return BA_ERR_NOMEM;
    }
    if (s->roi.n_regions > 0 && !t->names) {
        t->n_regions = s->roi.n_regions;
        t->names = ba_calloc((size_t)t->n_regions, sizeof(char *), "summary", err);
        t->roi_mean = ba_calloc((size_t)capacity * t->n_regions, sizeof(double), "summary", err);
        t->n_voxels = ba_calloc((size_t)t->n_regions, sizeof(long), "summary", err);
        if (!t->names || !t->roi_mean || !t->n_voxels) return BA_ERR_NOMEM;
        for (int g = 0; g < t->n_regions; g++) {
            t->names[g] = strdup(s->roi.names[g]);
            t->n_voxels[g] = s->roi.n_voxels[g];
        }
    }
    snprintf(t->label[t->n], sizeof t->label[t->n], "%s", label);
    t->mean_r[t->n] = s->mean_r;
    for (int g = 0; g < t->n_regions && g < s->roi.n_regions; g++)
        t->roi_mean[(size_t)t->n * t->n_regions + g] = s->roi.mean[g];
    t->n++;
    return BA_OK;
}

/* Make sure the features exist; returns their path. */
static ba_status ensure_features(ba_study_config *cfg, MPI_Comm comm, char *path, size_t size,
                                 ba_error *err)
{
    if (cfg->synth) {
        char dir[BA_PATH_MAX + 8];
        snprintf(dir, sizeof dir, "%s/synth", cfg->output_dir);
        ba_synth_options o = cfg->synth_options;
        o.out_dir = dir;
        o.quiet = cfg->quiet;
        BA_CHECK(ba_synth_run(&o, comm, err));
    }
    if (cfg->model_dir[0])
        return ba_fail(err, BA_ERR_USAGE,
                       "%s: [model] feature extraction is not available in this build", cfg->path);
    snprintf(path, size, "%s", cfg->features_path);
    return BA_OK;
}

ba_status ba_study_run(ba_study_config *cfg, MPI_Comm comm, ba_error *err)
{
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    ba_status rc = rank == 0 ? make_dir(cfg->output_dir, err) : BA_OK;
    BA_CHECK(ba_mpi_agree(comm, rc, err));
    char features[BA_PATH_MAX];
    BA_CHECK(ensure_features(cfg, comm, features, sizeof features, err));

    summary_table table = {0};
    int capacity = cfg->n_subjects * cfg->n_layers;
    for (int s = 0; s < cfg->n_subjects && rc == BA_OK; s++) {
        char bold[BA_PATH_MAX], dir[BA_PATH_MAX + 160];
        substitute_subject(cfg->bold_pattern, cfg->subjects[s], bold, sizeof bold);
        snprintf(dir, sizeof dir, "%s/scores/%s", cfg->output_dir, cfg->subjects[s]);
        rc = rank == 0 ? make_dir(dir, err) : BA_OK;
        if (rc == BA_OK) {
            char tables[BA_PATH_MAX + 16];
            snprintf(tables, sizeof tables, "%s/tables", cfg->output_dir);
            rc = rank == 0 ? make_dir(tables, err) : BA_OK;
        }
        if ((rc = ba_mpi_agree(comm, rc, err)) != BA_OK) break;
        for (int l = 0; l < cfg->n_layers && rc == BA_OK; l++) {
            char out[BA_PATH_MAX + 200], csv[BA_PATH_MAX + 200], label[2 * BA_STUDY_NAME_MAX];
            snprintf(out, sizeof out, "%s/layer-%d.h5", dir, cfg->layers[l]);
            snprintf(csv, sizeof csv, "%s/tables/%s-layer-%d.csv", cfg->output_dir,
                     cfg->subjects[s], cfg->layers[l]);
            snprintf(label, sizeof label, "%s layer %d", cfg->subjects[s], cfg->layers[l]);
            ba_fit_config fit = cfg->fit;
            fit.design.delays = fit.delays; /* the copy points at its own array */
            fit.ridge.alphas = fit.alphas;
            fit.features_path = features;
            fit.bold_path = bold;
            fit.atlas_path = cfg->atlas_path[0] ? cfg->atlas_path : NULL;
            fit.out_path = out;
            fit.layers[0] = cfg->layers[l];
            fit.n_layers = 1;
            fit.design.tr_s = cfg->tr_s;
            fit.ridge.quiet = cfg->quiet;
            fit.study_config = cfg->text;
            char command[BA_PATH_MAX + 32];
            snprintf(command, sizeof command, "brainalign run %s", cfg->path);
            fit.command_line = command;
            if (rank == 0 && !cfg->quiet)
                fprintf(stderr, "run: fitting %s (%s)\n", label, bold);
            ba_fit_summary sum;
            rc = ba_fit_run(&fit, comm, &sum, err);
            if (rc != BA_OK) break;
            if (rank == 0) {
                rc = summary_add(&table, capacity, label, &sum, err);
                if (rc == BA_OK && sum.roi.n_regions > 0) rc = write_region_csv(csv, &sum, err);
                if (rc == BA_OK && !cfg->quiet)
                    printf("%-32s mean r = %.4f\n", label, sum.mean_r);
            }
            ba_fit_summary_free(&sum);
            rc = ba_mpi_agree(comm, rc, err);
        }
    }
    if (rc == BA_OK && rank == 0) rc = write_summary_md(cfg, &table, err);
    if (rc == BA_OK && rank == 0 && !cfg->quiet)
        printf("\nwrote %s/summary.md\n", cfg->output_dir);
    summary_free(&table);
    return ba_mpi_agree(comm, rc, err);
}
