/* study.c — `brainalign run CONFIG` (see study.h). */
#define _XOPEN_SOURCE 700 /* realpath */
#include "brainalign/study/study.h"

#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "brainalign/pipeline/compare.h"
#include "brainalign/pipeline/design.h"
#include "brainalign/pipeline/features.h"
#include "brainalign/parallel/parallel.h"

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

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The condition called `name` (created on first mention), or NULL. */
static ba_study_condition *condition_named(ba_study_config *c, const char *name, size_t len)
{
    for (int i = 0; i < c->n_conditions; i++)
        if (strlen(c->conditions[i].name) == len && strncmp(c->conditions[i].name, name, len) == 0)
            return &c->conditions[i];
    if (c->n_conditions == BA_STUDY_MAX_CONDITIONS || len == 0 || len >= BA_STUDY_NAME_MAX)
        return NULL;
    ba_study_condition *k = &c->conditions[c->n_conditions++];
    memset(k, 0, sizeof *k);
    snprintf(k->name, sizeof k->name, "%.*s", (int)len, name);
    ba_augment_options_defaults(&k->augment);
    return k;
}

/* [conditions]: "name = FILE" or "name.policy|every|seed|pause = value". */
static int on_condition(parse_state *st, const char *name, const char *value)
{
    const char *dot = strchr(name, '.');
    size_t len = dot ? (size_t)(dot - name) : strlen(name);
    if (len == strlen(st->cfg->condition) && strncmp(name, st->cfg->condition, len) == 0)
        BAD("[conditions] %.*s: the baseline is not listed here (it is [study] condition)",
            (int)len, name);
    if (memchr(name, '/', len) || memchr(name, ' ', len))
        BAD("[conditions] '%.*s': a condition name has no '/' or spaces", (int)len, name);
    ba_study_condition *k = condition_named(st->cfg, name, len);
    if (!k) BAD("[conditions] %s: at most %d conditions, names of 1 to %d bytes",
                name, BA_STUDY_MAX_CONDITIONS, BA_STUDY_NAME_MAX - 1);
    ba_error err;
    long l = 0;
    double d = 0;
    if (!dot) {
        char path[BA_PATH_MAX];
        resolve(st->base_dir, value, path, sizeof path);
        if (has_suffix(value, ".h5")) snprintf(k->features, sizeof k->features, "%s", path);
        else snprintf(k->associations, sizeof k->associations, "%s", path);
    } else if (!strcmp(dot, ".policy")) {
        if (ba_augment_policy_parse(value, &k->augment, &err)) BAD("[conditions] %s: %s", name, err.message);
    } else if (!strcmp(dot, ".every")) {
        if (!parse_long(value, &l) || l < 1 || l > 100000) BAD("[conditions] %s must be a whole number >= 1", name);
        k->augment.every_k = (int)l;
    } else if (!strcmp(dot, ".seed")) {
        if (!parse_long(value, &l) || l < 0) BAD("[conditions] %s must be a whole number >= 0", name);
        k->augment.seed = (uint64_t)l;
    } else if (!strcmp(dot, ".pause")) {
        if (!parse_double(value, &d) || !(d > 0)) BAD("[conditions] %s must be a positive number of seconds", name);
        k->augment.pause_s = d;
    } else {
        BAD("[conditions] %s: expected NAME = FILE, NAME.policy, NAME.every, NAME.seed or NAME.pause", name);
    }
    return 1;
}

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
        else if (!strcmp(name, "associations")) {
            if (ba_parse_int_list(value, o->assoc_regions, 32, &o->n_assoc_regions, &err))
                BAD("[synth] associations: %s (region indices, e.g. 0,2)", err.message);
        }
        else if (!strcmp(name, "association_share") && parse_double(value, &d)) o->assoc_share = d;
        else if (!strcmp(name, "association_every") && parse_long(value, &l)) o->assoc_every = (int)l;
        else BAD("[synth] %s = %s: unknown key or bad value", name, value);
    }
    else if (strcmp(section, "conditions") == 0) return on_condition(st, name, value);
    else if (KEY("compare", "permutations")) { if (!parse_long(value, &c->compare_permutations) || c->compare_permutations < 1) BAD("[compare] permutations must be >= 1"); }
    else if (KEY("compare", "bootstrap")) { if (!parse_long(value, &c->compare_bootstrap) || c->compare_bootstrap < 2) BAD("[compare] bootstrap must be >= 2"); }
    else if (KEY("compare", "confidence")) { if (!parse_double(value, &c->compare_confidence) || !(c->compare_confidence > 0 && c->compare_confidence < 1)) BAD("[compare] confidence is in (0, 1)"); }
    else if (KEY("compare", "fdr")) { if (!parse_double(value, &c->compare_fdr) || !(c->compare_fdr > 0 && c->compare_fdr < 1)) BAD("[compare] fdr is in (0, 1)"); }
    else if (KEY("compare", "seed")) { if (!parse_long(value, &l) || l < 0) BAD("[compare] seed must be >= 0"); c->compare_seed = (uint64_t)l; }
    else if (KEY("features", "path")) { st->seen_features = true; resolve(st->base_dir, value, c->features_path, sizeof c->features_path); }
    else if (KEY("model", "path")) { st->seen_model = true; resolve(st->base_dir, value, c->model_dir, sizeof c->model_dir); }
    else if (KEY("model", "context")) { if (!parse_long(value, &c->context) || c->context < 2) BAD("[model] context must be a whole number >= 2"); }
    else if (KEY("model", "stride")) { if (!parse_long(value, &c->stride) || c->stride < 1) BAD("[model] stride must be a whole number >= 1"); }
    else if (KEY("model", "bos")) {
        if (strcmp(value, "auto") && strcmp(value, "yes") && strcmp(value, "no")) BAD("[model] bos is auto, yes or no");
        snprintf(c->bos, sizeof c->bos, "%s", value);
    }
    else if (KEY("model", "adapter")) resolve(st->base_dir, value, c->adapter_dir, sizeof c->adapter_dir);
    else if (KEY("model", "matmul")) { if (ba_matmul_parse(value, &c->matmul, &err)) BAD("[model] matmul is f32 or bf16"); }
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
    else if (KEY("cv", "tie_tolerance")) {
        double t = 0;
        if (!parse_double(value, &t) || !(t >= 0) || !isfinite(t)) BAD("[cv] tie_tolerance must be a number >= 0 (0 turns it off)");
        c->fit.ridge.tie_tolerance = t > 0 ? t : -1.0;
    }
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

/* Every condition names a file its source can use; a synthetic study with
 * associations brings its own two. */
static ba_status check_conditions(ba_study_config *c, const parse_state *st, ba_error *err)
{
    const char *p = c->path;
    if (c->synth && c->synth_options.n_assoc_regions > 0) {
        const char *names[2] = {"associations", "random"};
        for (int i = 0; i < 2; i++) {
            ba_study_condition *k = condition_named(c, names[i], strlen(names[i]));
            if (!k) return ba_fail(err, BA_ERR_USAGE, "%s: too many conditions", p);
            if (k->features[0] || k->associations[0])
                return ba_fail(err, BA_ERR_USAGE, "%s: [conditions] %s: a synthetic study with "
                               "associations makes this condition itself", p, names[i]);
            snprintf(k->features, sizeof k->features, "%s/synth/features-%s.h5", c->output_dir,
                     names[i]);
        }
    }
    for (int i = 0; i < c->n_conditions; i++) {
        const ba_study_condition *k = &c->conditions[i];
        if (!k->features[0] && !k->associations[0])
            return ba_fail(err, BA_ERR_USAGE, "%s: [conditions] %s: give its file (%s = "
                           "associations.jsonl or features.h5)", p, k->name, k->name);
        if (k->associations[0] && !st->seen_model)
            return ba_fail(err, BA_ERR_USAGE, "%s: [conditions] %s = %s: an association set needs "
                           "[model] (the features are computed from the augmented text); with "
                           "[features] or [synth] give a features file (.h5)", p, k->name,
                           k->associations);
    }
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
    BA_CHECK(check_conditions(c, st, err));
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
    ba_compare_options co;
    ba_compare_options_defaults(&co);
    cfg->compare_permutations = co.n_permutations;
    cfg->compare_bootstrap = co.n_bootstrap;
    cfg->compare_confidence = co.confidence;
    cfg->compare_fdr = co.fdr;
    cfg->compare_seed = co.seed;
    BA_CHECK(read_text(path, &cfg->text, err));
    parse_state st = {.cfg = cfg};
    const char *slash = strrchr(path, '/');
    /* Paths in the file are relative to its directory; resolve that to an
     * absolute path so the outputs record paths valid from anywhere. */
    char dir[BA_PATH_MAX];
    if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else snprintf(dir, sizeof dir, ".");
    if (!realpath(dir[0] ? dir : "/", st.base_dir)) snprintf(st.base_dir, sizeof st.base_dir, "%s", dir);
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

/* ------------------------------------------------------------ features */

static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

/* A hash of a file's bytes (0 when it cannot be read). */
static uint64_t file_hash(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    uint64_t h = 0xcbf29ce484222325ULL;
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) h = fnv1a(h, buf, n);
    fclose(f);
    return h;
}

/* Split "a, b,c" into names (pointers into `buf`). */
static size_t split_stories(char *buf, char **names, size_t max)
{
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok && n < max; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        char *end = tok + strlen(tok);
        while (end > tok && end[-1] == ' ') *--end = '\0';
        if (*tok) names[n++] = tok;
    }
    return n;
}

/* What the features of a condition are made from, as one line: the file's
 * `command` attribute; a file with the same line (and the same checkpoint)
 * is reused. */
static void features_recipe(const ba_study_config *cfg, const ba_study_condition *k,
                            char *out, size_t size)
{
    int n = snprintf(out, size, "brainalign run %s: features --model %s --stimuli %s --format %s "
                     "--stories '%s' --layers", cfg->path, cfg->model_dir, cfg->stimuli_dir,
                     cfg->stimuli_format, cfg->stories);
    for (int l = 0; l < cfg->n_layers && n > 0 && (size_t)n < size; l++)
        n += snprintf(out + n, size - (size_t)n, "%s%d", l ? "," : " ", cfg->layers[l]);
    if (n > 0 && (size_t)n < size)
        n += snprintf(out + n, size - (size_t)n, " --context %ld --stride %ld --bos %s --condition %s",
                      cfg->context, cfg->stride, cfg->bos, k ? k->name : cfg->condition);
    /* only when not the default, so that f32 features made before the
     * option existed are still reused */
    if (cfg->matmul != BA_MATMUL_F32 && n > 0 && (size_t)n < size)
        n += snprintf(out + n, size - (size_t)n, " --matmul %s", ba_matmul_name(cfg->matmul));
    if (cfg->adapter_dir[0] && n > 0 && (size_t)n < size) {
        char weights[BA_PATH_MAX + 64];
        snprintf(weights, sizeof weights, "%s/adapter_model.safetensors", cfg->adapter_dir);
        n += snprintf(out + n, size - (size_t)n, " --adapter %s (fnv1a %016llx)", cfg->adapter_dir,
                      (unsigned long long)file_hash(weights));
    }
    if (k && n > 0 && (size_t)n < size)
        snprintf(out + n, size - (size_t)n, " --associations %s (fnv1a %016llx) --policy %s "
                 "--every %d --seed %llu --pause %g", k->associations,
                 (unsigned long long)file_hash(k->associations), ba_augment_policy_name(&k->augment),
                 k->augment.every_k, (unsigned long long)k->augment.seed, k->augment.pause_s);
}

/* Rank 0: true when `path` holds features made by `recipe` from this checkpoint. */
static bool features_up_to_date(const char *path, const char *model_dir, const char *recipe)
{
    struct stat sb;
    if (stat(path, &sb) != 0) return false;
    ba_error err;
    ba_h5file f;
    if (ba_h5_open(&f, path, MPI_COMM_SELF, &err) != BA_OK) return false;
    char *command = NULL, *checkpoint = NULL, identity[BA_ERROR_MESSAGE_MAX];
    bool same = ba_h5_get_attr_str(&f, "/", "command", &command, &err) == BA_OK &&
                ba_h5_get_attr_str(&f, "/", "checkpoint", &checkpoint, &err) == BA_OK &&
                ba_checkpoint_identity(model_dir, identity, sizeof identity, &err) == BA_OK &&
                strcmp(command, recipe) == 0 && strcmp(checkpoint, identity) == 0;
    free(command);
    free(checkpoint);
    ba_h5_abandon(&f);
    return same;
}

/* [model]: extract the features of one condition (k NULL: the baseline)
 * into OUTPUT/features/<condition>.h5, unless they are there already. */
static ba_status model_features(const ba_study_config *cfg, const ba_study_condition *k,
                                MPI_Comm comm, char *path, size_t size, ba_error *err)
{
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    const char *name = k ? k->name : cfg->condition;
    char dir[BA_PATH_MAX + 16], recipe[3 * BA_PATH_MAX];
    snprintf(dir, sizeof dir, "%s/features", cfg->output_dir);
    snprintf(path, size, "%s/%s.h5", dir, name);
    features_recipe(cfg, k, recipe, sizeof recipe);
    int fresh = 0;
    ba_status rc = BA_OK;
    if (rank == 0) {
        rc = make_dir(dir, err);
        fresh = rc == BA_OK && features_up_to_date(path, cfg->model_dir, recipe);
    }
    BA_CHECK(ba_mpi_agree(comm, rc, err));
    MPI_Bcast(&fresh, 1, MPI_INT, 0, comm);
    if (fresh) {
        if (rank == 0 && !cfg->quiet) fprintf(stderr, "run: reusing %s\n", path);
        return BA_OK;
    }
    ba_features_config fc;
    ba_features_config_defaults(&fc);
    char stories[sizeof cfg->stories], *names[1024];
    snprintf(stories, sizeof stories, "%s", cfg->stories);
    size_t n_names = split_stories(stories, names, 1024);
    fc.model_dir = cfg->model_dir;
    fc.stimuli_dir = cfg->stimuli_dir;
    fc.stories = n_names ? names : NULL;
    fc.n_stories = n_names;
    BA_CHECK(ba_stimulus_format_parse(cfg->stimuli_format, &fc.format, err));
    BA_CHECK(ba_bos_mode_parse(cfg->bos, &fc.bos, err));
    fc.all_layers = false;
    memcpy(fc.layers, cfg->layers, (size_t)cfg->n_layers * sizeof *cfg->layers);
    fc.n_layers = cfg->n_layers;
    fc.context = cfg->context;
    fc.stride = cfg->stride;
    fc.matmul = cfg->matmul;
    fc.adapter_dir = cfg->adapter_dir[0] ? cfg->adapter_dir : NULL;
    fc.condition = name;
    if (k) {
        fc.associations = k->associations;
        fc.augment = k->augment;
    }
    fc.out_path = path;
    fc.command_line = recipe;
    fc.quiet = cfg->quiet;
    if (rank == 0 && !cfg->quiet) fprintf(stderr, "run: features of condition %s -> %s\n", name, path);
    ba_features_summary sum;
    return ba_features_run(&fc, comm, &sum, err);
}

/* The features file of condition c (-1: the baseline), made if needed. */
static ba_status condition_features(const ba_study_config *cfg, int c, MPI_Comm comm, char *path,
                                    size_t size, ba_error *err)
{
    const ba_study_condition *k = c >= 0 ? &cfg->conditions[c] : NULL;
    if (k && k->features[0]) {
        snprintf(path, size, "%s", k->features);
        return BA_OK;
    }
    if (cfg->model_dir[0]) return model_features(cfg, k, comm, path, size, err);
    snprintf(path, size, "%s", cfg->features_path);
    return BA_OK;
}

static ba_status ensure_synth(ba_study_config *cfg, MPI_Comm comm, ba_error *err)
{
    if (!cfg->synth) return BA_OK;
    char dir[BA_PATH_MAX + 8];
    snprintf(dir, sizeof dir, "%s/synth", cfg->output_dir);
    ba_synth_options o = cfg->synth_options;
    o.out_dir = dir;
    o.quiet = cfg->quiet;
    return ba_synth_run(&o, comm, err);
}

/* ------------------------------------------------------------ fits */

/* Where condition c's outputs go (c < 0: the baseline). With conditions:
 * scores/<condition>/<subject>/ and tables/<condition>-<subject>-...;
 * without: scores/<subject>/ and tables/<subject>-.... */
static void condition_prefix(const ba_study_config *cfg, int c, char *out, size_t size)
{
    if (cfg->n_conditions == 0) out[0] = '\0';
    else snprintf(out, size, "%s", c >= 0 ? cfg->conditions[c].name : cfg->condition);
}

/* Every subject and layer of one condition. */
static ba_status fit_condition(ba_study_config *cfg, int c, const char *features, MPI_Comm comm,
                               summary_table *table, int capacity, ba_error *err)
{
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    ba_status rc = BA_OK;
    char cond[BA_STUDY_NAME_MAX];
    condition_prefix(cfg, c, cond, sizeof cond);
    for (int s = 0; s < cfg->n_subjects && rc == BA_OK; s++) {
        char bold[BA_PATH_MAX], dir[BA_PATH_MAX + 300];
        substitute_subject(cfg->bold_pattern, cfg->subjects[s], bold, sizeof bold);
        snprintf(dir, sizeof dir, "%s/scores/%s%s%s", cfg->output_dir, cond, cond[0] ? "/" : "",
                 cfg->subjects[s]);
        rc = rank == 0 ? make_dir(dir, err) : BA_OK;
        if (rc == BA_OK) {
            char tables[BA_PATH_MAX + 16];
            snprintf(tables, sizeof tables, "%s/tables", cfg->output_dir);
            rc = rank == 0 ? make_dir(tables, err) : BA_OK;
        }
        if ((rc = ba_mpi_agree(comm, rc, err)) != BA_OK) break;
        for (int l = 0; l < cfg->n_layers && rc == BA_OK; l++) {
            char out[BA_PATH_MAX + 400], csv[BA_PATH_MAX + 400], label[3 * BA_STUDY_NAME_MAX];
            snprintf(out, sizeof out, "%s/layer-%d.h5", dir, cfg->layers[l]);
            snprintf(csv, sizeof csv, "%s/tables/%s%s%s-layer-%d.csv", cfg->output_dir, cond,
                     cond[0] ? "-" : "", cfg->subjects[s], cfg->layers[l]);
            snprintf(label, sizeof label, "%s%s%s layer %d", cond, cond[0] ? " " : "",
                     cfg->subjects[s], cfg->layers[l]);
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
                rc = summary_add(table, capacity, label, &sum, err);
                if (rc == BA_OK && sum.roi.n_regions > 0) rc = write_region_csv(csv, &sum, err);
                if (rc == BA_OK && !cfg->quiet)
                    printf("%-32s mean r = %.4f\n", label, sum.mean_r);
            }
            ba_fit_summary_free(&sum);
            rc = ba_mpi_agree(comm, rc, err);
        }
    }
    return rc;
}

/* Rank 0: every condition against the baseline (compare.h), layer by layer:
 * OUTPUT/compare.{csv,md,h5}. */
static ba_status compare_conditions(const ba_study_config *cfg, ba_error *err)
{
    ba_compare_inputs inputs = {0};
    ba_status rc = BA_OK;
    for (int c = -1; rc == BA_OK && c < cfg->n_conditions; c++) {
        const char *name = c >= 0 ? cfg->conditions[c].name : cfg->condition;
        for (int s = 0; rc == BA_OK && s < cfg->n_subjects; s++)
            for (int l = 0; rc == BA_OK && l < cfg->n_layers; l++) {
                char path[BA_PATH_MAX + 400];
                snprintf(path, sizeof path, "%s/scores/%s/%s/layer-%d.h5", cfg->output_dir, name,
                         cfg->subjects[s], cfg->layers[l]);
                rc = ba_compare_inputs_add(&inputs, NULL, name, cfg->subjects[s], path, err);
            }
    }
    char prefix[BA_PATH_MAX + 16], command[BA_PATH_MAX + 32];
    snprintf(prefix, sizeof prefix, "%s/compare", cfg->output_dir);
    snprintf(command, sizeof command, "brainalign run %s", cfg->path);
    ba_compare_options o;
    ba_compare_options_defaults(&o);
    o.inputs = &inputs;
    o.baseline = cfg->condition;
    o.atlas_path = cfg->atlas_path[0] ? cfg->atlas_path : NULL;
    o.out_prefix = prefix;
    o.n_permutations = cfg->compare_permutations;
    o.n_bootstrap = cfg->compare_bootstrap;
    o.confidence = cfg->compare_confidence;
    o.fdr = cfg->compare_fdr;
    o.seed = cfg->compare_seed;
    o.command_line = command;
    ba_compare_result res = {0};
    if (rc == BA_OK) rc = ba_compare_run(&o, &res, err);
    if (rc == BA_OK && !cfg->quiet) {
        printf("\n");
        for (size_t i = 0; i < res.n_rows; i++) {
            const ba_compare_row *r = &res.rows[i];
            if (!r->is_baseline && r->significant)
                printf("%s, %s: %-28s Δr %+.4f [%+.4f, %+.4f]  q %.3g\n", r->model, r->condition,
                       r->region, r->delta_r, r->ci_low, r->ci_high, r->q);
        }
        printf("wrote %s.md (conditions against %s)\n", prefix, cfg->condition);
    }
    ba_compare_result_free(&res);
    ba_compare_inputs_free(&inputs);
    return rc;
}

ba_status ba_study_run(ba_study_config *cfg, MPI_Comm comm, ba_error *err)
{
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    ba_status rc = rank == 0 ? make_dir(cfg->output_dir, err) : BA_OK;
    BA_CHECK(ba_mpi_agree(comm, rc, err));
    BA_CHECK(ensure_synth(cfg, comm, err));

    summary_table table = {0};
    int capacity = (cfg->n_conditions + 1) * cfg->n_subjects * cfg->n_layers;
    for (int c = -1; c < cfg->n_conditions && rc == BA_OK; c++) {
        char features[BA_PATH_MAX];
        rc = condition_features(cfg, c, comm, features, sizeof features, err);
        if (rc == BA_OK) rc = fit_condition(cfg, c, features, comm, &table, capacity, err);
    }
    if (rc == BA_OK && rank == 0) rc = write_summary_md(cfg, &table, err);
    if (rc == BA_OK && rank == 0 && !cfg->quiet)
        printf("\nwrote %s/summary.md\n", cfg->output_dir);
    summary_free(&table);
    rc = ba_mpi_agree(comm, rc, err);
    if (rc == BA_OK && cfg->n_conditions > 0) {
        rc = rank == 0 ? compare_conditions(cfg, err) : BA_OK;
        rc = ba_mpi_agree(comm, rc, err);
    }
    return rc;
}
