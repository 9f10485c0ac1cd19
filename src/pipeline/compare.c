/* compare.c — conditions against the baseline, region by region, with
 * statistics (see compare.h). */
#include "brainalign/pipeline/compare.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "brainalign/core/alloc.h"
#include "brainalign/core/hash.h"
#include "brainalign/core/outfile.h"
#include "brainalign/io/atlas.h"
#include "brainalign/io/brainmaps.h"
#include "brainalign/io/h5io.h"
#include "brainalign/io/importers.h"
#include "brainalign/parallel/fault.h"
#include "brainalign/core/stats.h"

/* ------------------------------------------------------------ inputs */

static bool label_ok(const char *s) { return s && s[0] && strlen(s) < BA_COMPARE_LABEL_MAX; }

ba_status ba_compare_inputs_add(ba_compare_inputs *list, const char *model,
                                const char *condition, const char *subject, const char *path,
                                ba_error *err)
{
    if (!label_ok(condition) || !label_ok(subject) || (model && strlen(model) >= BA_COMPARE_LABEL_MAX))
        return ba_fail(err, BA_ERR_USAGE, "%s: condition '%s' and subject '%s' must be "
                       "non-empty names of fewer than %d bytes", path, condition ? condition : "",
                       subject ? subject : "", BA_COMPARE_LABEL_MAX);
    if (strlen(path) >= BA_PATH_MAX)
        return ba_fail(err, BA_ERR_USAGE, "%.200s...: path too long", path);
    char label[BA_COMPARE_LABEL_MAX];
    if (model && model[0]) snprintf(label, sizeof label, "%s", model);
    else BA_CHECK(ba_compare_model_label(path, label, sizeof label, NULL, 0, err));
    if (list->n == list->cap) {
        size_t cap = list->cap ? 2 * list->cap : 16;
        ba_compare_input *grown = realloc(list->items, cap * sizeof *grown);
        if (!grown) return ba_fail(err, BA_ERR_NOMEM, "compare inputs");
        list->items = grown;
        list->cap = cap;
    }
    ba_compare_input *in = &list->items[list->n++];
    snprintf(in->model, sizeof in->model, "%s", label);
    snprintf(in->condition, sizeof in->condition, "%s", condition);
    snprintf(in->subject, sizeof in->subject, "%s", subject);
    snprintf(in->path, sizeof in->path, "%s", path);
    return BA_OK;
}

void ba_compare_inputs_free(ba_compare_inputs *list)
{
    free(list->items);
    memset(list, 0, sizeof *list);
}

/* The first whitespace-separated word of `text` (the features path of a
 * scores file's `inputs`). */
static void first_word(const char *text, char *out, size_t size)
{
    size_t n = strcspn(text, " \t\n");
    snprintf(out, size, "%.*s", (int)n, text);
}

/* The n-th word (0-based) of `text`, "" when missing. */
static void nth_word(const char *text, int n, char *out, size_t size)
{
    out[0] = '\0';
    const char *p = text;
    for (int i = 0; *p; i++) {
        p += strspn(p, " \t\n");
        if (!*p) break;
        size_t len = strcspn(p, " \t\n");
        if (i == n) {
            snprintf(out, size, "%.*s", (int)len, p);
            return;
        }
        p += len;
    }
}

static int layer_of_config(const char *config)
{
    json_error_t jerr;
    json_t *root = json_loads(config, 0, &jerr);
    json_t *layers = root ? json_object_get(root, "layers") : NULL;
    int layer = -1;
    if (layers && json_is_array(layers) && json_array_size(layers) > 0 &&
        json_is_integer(json_array_get(layers, 0)))
        layer = (int)json_integer_value(json_array_get(layers, 0));
    json_decref(root);
    return layer;
}

/* model_type and condition of a features.h5 (either may stay ""). */
static void features_identity(const char *path, char *model_type, size_t size,
                              char *condition, size_t condition_size)
{
    ba_error err;
    ba_h5file f;
    struct stat sb;
    if (!path[0] || stat(path, &sb) != 0) return;
    if (ba_h5_open(&f, path, MPI_COMM_SELF, &err) != BA_OK) return;
    char *value = NULL;
    if (ba_h5_get_attr_str(&f, "/", "model_type", &value, &err) == BA_OK)
        snprintf(model_type, size, "%s", value);
    free(value);
    value = NULL;
    if (condition && ba_h5_get_attr_str(&f, "/", "condition", &value, &err) == BA_OK)
        snprintf(condition, condition_size, "%s", value);
    free(value);
    ba_h5_abandon(&f);
}

ba_status ba_compare_model_label(const char *scores_path, char *label, size_t size,
                                 char *condition, size_t condition_size, ba_error *err)
{
    if (condition && condition_size) condition[0] = '\0';
    ba_h5file f;
    BA_CHECK(ba_h5_open(&f, scores_path, MPI_COMM_SELF, err));
    char *config = NULL, *inputs = NULL;
    ba_status rc = ba_h5_get_attr_str(&f, "/", "config", &config, err);
    if (rc == BA_OK) rc = ba_h5_get_attr_str(&f, "/", "inputs", &inputs, err);
    ba_h5_abandon(&f);
    if (rc != BA_OK) {
        free(config);
        free(inputs);
        return ba_context(err, "%s: not a scores.h5 written by `fit` (give the model's name "
                          "explicitly)", scores_path);
    }
    char features[BA_PATH_MAX], model_type[96] = "model";
    first_word(inputs, features, sizeof features);
    features_identity(features, model_type, sizeof model_type, condition, condition_size);
    int layer = layer_of_config(config);
    if (layer >= 0) snprintf(label, size, "%s layer %d", model_type, layer);
    else snprintf(label, size, "%s", model_type);
    free(config);
    free(inputs);
    return BA_OK;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of a directory's entries (no dot files). */
static ba_status list_dir(const char *dir, char ***names, size_t *n, ba_error *err)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return ba_fail(err, BA_ERR_IO, "%s: cannot open the directory", dir);
    size_t cap = 0;
    ba_status rc = BA_OK;
    struct dirent *e;
    while (rc == BA_OK && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            char **grown = realloc(*names, cap * sizeof *grown);
            if (!grown) { rc = ba_fail(err, BA_ERR_NOMEM, "directory listing"); break; }
            *names = grown;
        }
        (*names)[*n] = strdup(e->d_name);
        if (!(*names)[*n]) rc = ba_fail(err, BA_ERR_NOMEM, "directory listing");
        else (*n)++;
    }
    closedir(d);
    if (rc == BA_OK) qsort(*names, *n, sizeof **names, compare_strings);
    return rc;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

static bool is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* "layer-12.h5" -> 12, else -1. */
static int layer_file(const char *name)
{
    int layer = -1, used = 0;
    if (sscanf(name, "layer-%d.h5%n", &layer, &used) == 1 && name[used] == '\0' && layer >= 0)
        return layer;
    return -1;
}

/* Add DIR/layer-*.h5 (the layers asked for) as (condition, subject). An
 * empty condition is taken from the features the scores were fitted on. */
static ba_status add_subject_dir(ba_compare_inputs *list, const char *dir, const char *model,
                                 const char *condition, const char *subject, int layer,
                                 size_t *added, ba_error *err)
{
    char **names = NULL;
    size_t n = 0;
    BA_CHECK(list_dir(dir, &names, &n, err));
    ba_status rc = BA_OK;
    for (size_t i = 0; rc == BA_OK && i < n; i++) {
        int l = layer_file(names[i]);
        if (l < 0 || (layer >= 0 && l != layer)) continue;
        char path[BA_PATH_MAX + 300], label[BA_COMPARE_LABEL_MAX];
        char recorded[BA_COMPARE_LABEL_MAX] = "";
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        rc = ba_compare_model_label(path, label, sizeof label, recorded, sizeof recorded, err);
        if (rc != BA_OK) break;
        if (model && model[0]) snprintf(label, sizeof label, "%s layer %d", model, l);
        const char *cond = condition[0] ? condition : recorded[0] ? recorded : "baseline";
        rc = ba_compare_inputs_add(list, label, cond, subject, path, err);
        if (rc == BA_OK) (*added)++;
    }
    free_names(names, n);
    return rc;
}

static bool has_layer_files(const char *dir)
{
    char **names = NULL;
    size_t n = 0;
    ba_error err;
    if (list_dir(dir, &names, &n, &err) != BA_OK) return false;
    bool found = false;
    for (size_t i = 0; i < n && !found; i++) found = layer_file(names[i]) >= 0;
    free_names(names, n);
    return found;
}

ba_status ba_compare_inputs_from_study(ba_compare_inputs *list, const char *study_dir,
                                       const char *model, int layer, ba_error *err)
{
    char scores[BA_PATH_MAX + 16];
    snprintf(scores, sizeof scores, "%s/scores", study_dir);
    char **entries = NULL;
    size_t n = 0, added = 0;
    BA_CHECK(list_dir(scores, &entries, &n, err));
    ba_status rc = BA_OK;
    for (size_t i = 0; rc == BA_OK && i < n; i++) {
        char dir[2 * BA_PATH_MAX];
        snprintf(dir, sizeof dir, "%s/%s", scores, entries[i]);
        if (!is_dir(dir)) continue;
        if (has_layer_files(dir)) { /* scores/<subject>/layer-L.h5 */
            rc = add_subject_dir(list, dir, model, "", entries[i], layer, &added, err);
            continue;
        }
        char **subjects = NULL; /* scores/<condition>/<subject>/layer-L.h5 */
        size_t n_subjects = 0;
        rc = list_dir(dir, &subjects, &n_subjects, err);
        for (size_t s = 0; rc == BA_OK && s < n_subjects; s++) {
            char sub[3 * BA_PATH_MAX];
            snprintf(sub, sizeof sub, "%s/%s", dir, subjects[s]);
            if (is_dir(sub))
                rc = add_subject_dir(list, sub, model, entries[i], subjects[s], layer, &added, err);
        }
        free_names(subjects, n_subjects);
    }
    free_names(entries, n);
    if (rc == BA_OK && added == 0) {
        if (layer >= 0)
            return ba_fail(err, BA_ERR_IO, "%s: no scores of layer %d (expected "
                           "scores/<condition>/<subject>/layer-%d.h5)", study_dir, layer, layer);
        return ba_fail(err, BA_ERR_IO, "%s: no scores (expected "
                       "scores/<condition>/<subject>/layer-<L>.h5)", study_dir);
    }
    return rc;
}

/* ------------------------------------------------------------ options */

void ba_compare_options_defaults(ba_compare_options *o)
{
    memset(o, 0, sizeof *o);
    o->baseline = "baseline";
    o->n_permutations = 100000;
    o->n_bootstrap = 10000;
    o->confidence = 0.95;
    o->fdr = 0.05;
    o->seed = 2025;
}

static ba_status check_options(const ba_compare_options *o, ba_error *err)
{
    if (!o->inputs || o->inputs->n == 0)
        return ba_fail(err, BA_ERR_USAGE, "compare: no scores given");
    if (!o->out_prefix || !o->out_prefix[0])
        return ba_fail(err, BA_ERR_USAGE, "compare: an output prefix is required");
    if (!o->baseline || !o->baseline[0])
        return ba_fail(err, BA_ERR_USAGE, "compare: the baseline condition's name is empty");
    if (o->n_permutations < 1 || o->n_bootstrap < 2)
        return ba_fail(err, BA_ERR_USAGE, "compare: --permutations must be >= 1 and "
                       "--bootstrap >= 2");
    if (!(o->confidence > 0 && o->confidence < 1) || !(o->fdr > 0 && o->fdr < 1))
        return ba_fail(err, BA_ERR_USAGE, "compare: confidence and fdr must be in (0, 1)");
    return BA_OK;
}

/* ------------------------------------------------------------ the design */

/* Models, their conditions (baseline first) and the baseline's subjects. */
typedef struct {
    char name[BA_COMPARE_LABEL_MAX];
    int n_conditions;
    char (*conditions)[BA_COMPARE_LABEL_MAX];
    int n_subjects;
    char (*subjects)[BA_COMPARE_LABEL_MAX];
    const ba_compare_input **files; /* [condition][subject] */
} model_design;

typedef struct {
    int n_models;
    model_design *models;
} design;

static void design_free(design *d)
{
    for (int m = 0; d->models && m < d->n_models; m++) {
        free(d->models[m].conditions);
        free(d->models[m].subjects);
        free(d->models[m].files);
    }
    free(d->models);
    memset(d, 0, sizeof *d);
}

static int find_label(char (*names)[BA_COMPARE_LABEL_MAX], int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0) return i;
    return -1;
}

static int by_label(const void *a, const void *b) { return strcmp(a, b); }

/* One model: its conditions (baseline first, then by first appearance),
 * the baseline's subjects (sorted), and the file of every pair. */
static ba_status build_model(const ba_compare_options *o, const char *model, model_design *md,
                             ba_error *err)
{
    const ba_compare_inputs *in = o->inputs;
    ba_status rc = BA_OK;
    snprintf(md->name, sizeof md->name, "%s", model);
    BA_ALLOC(md->conditions, in->n + 1, "conditions", done);
    BA_ALLOC(md->subjects, in->n + 1, "subjects", done);
    snprintf(md->conditions[md->n_conditions++], BA_COMPARE_LABEL_MAX, "%s", o->baseline);
    for (size_t i = 0; i < in->n; i++) {
        const ba_compare_input *x = &in->items[i];
        if (strcmp(x->model, model) != 0) continue;
        if (find_label(md->conditions, md->n_conditions, x->condition) < 0)
            snprintf(md->conditions[md->n_conditions++], BA_COMPARE_LABEL_MAX, "%s", x->condition);
        if (strcmp(x->condition, o->baseline) == 0 &&
            find_label(md->subjects, md->n_subjects, x->subject) < 0)
            snprintf(md->subjects[md->n_subjects++], BA_COMPARE_LABEL_MAX, "%s", x->subject);
    }
    if (md->n_subjects == 0) {
        char list[512] = "";
        for (int c = 1; c < md->n_conditions; c++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", c > 1 ? ", " : "",
                     md->conditions[c]);
        rc = ba_fail(err, BA_ERR_USAGE, "model '%s': no scores of the baseline condition '%s' "
                     "(conditions given: %s)", model, o->baseline, list);
        goto done;
    }
    if (md->n_conditions < 2) {
        rc = ba_fail(err, BA_ERR_USAGE, "model '%s': only the baseline '%s' was given; nothing "
                     "to compare it with", model, o->baseline);
        goto done;
    }
    qsort(md->subjects, (size_t)md->n_subjects, sizeof *md->subjects, by_label);
    BA_ALLOC(md->files, (size_t)md->n_conditions * md->n_subjects, "scores table", done);
    for (size_t i = 0; i < in->n; i++) {
        const ba_compare_input *x = &in->items[i];
        if (strcmp(x->model, model) != 0) continue;
        int c = find_label(md->conditions, md->n_conditions, x->condition);
        int s = find_label(md->subjects, md->n_subjects, x->subject);
        if (s < 0) {
            rc = ba_fail(err, BA_ERR_USAGE, "%s: model '%s', condition '%s': subject '%s' has no "
                         "baseline scores (the comparison is paired by subject)", x->path, model,
                         x->condition, x->subject);
            goto done;
        }
        const ba_compare_input **slot = &md->files[(size_t)c * md->n_subjects + s];
        if (*slot) {
            rc = ba_fail(err, BA_ERR_USAGE, "model '%s', condition '%s', subject '%s' is given "
                         "twice: %s and %s", model, x->condition, x->subject, (*slot)->path, x->path);
            goto done;
        }
        *slot = x;
    }
    for (int c = 1; c < md->n_conditions; c++)
        for (int s = 0; s < md->n_subjects; s++)
            if (!md->files[(size_t)c * md->n_subjects + s]) {
                rc = ba_fail(err, BA_ERR_USAGE, "model '%s': condition '%s' has no scores for "
                             "subject '%s', which the baseline has (the comparison is paired)",
                             model, md->conditions[c], md->subjects[s]);
                goto done;
            }
done:
    return rc;
}

static ba_status build_design(const ba_compare_options *o, design *d, ba_error *err)
{
    ba_status rc = BA_OK;
    const ba_compare_inputs *in = o->inputs;
    BA_ALLOC(d->models, in->n, "models", done);
    for (size_t i = 0; i < in->n; i++) {
        bool seen = false;
        for (int m = 0; m < d->n_models && !seen; m++)
            seen = strcmp(d->models[m].name, in->items[i].model) == 0;
        if (seen) continue;
        BA_TRY(build_model(o, in->items[i].model, &d->models[d->n_models++], err), done);
    }
done:
    return rc;
}

/* ------------------------------------------------------------ reading */

static ba_status read_r(const char *path, long expect, float **r, long *n_voxels, ba_error *err)
{
    ba_h5file f;
    BA_CHECK(ba_h5_open(&f, path, MPI_COMM_SELF, err));
    int rank = 0;
    hsize_t dims[BA_H5_MAX_RANK];
    ba_status rc = ba_h5_shape(&f, "/r", 1, &rank, dims, err);
    if (rc == BA_OK && expect > 0 && (long)dims[0] != expect)
        rc = ba_fail(err, BA_ERR_SHAPE, "%s:/r has %llu voxels, the other scores have %ld", path,
                     (unsigned long long)dims[0], expect);
    if (rc == BA_OK) {
        *n_voxels = (long)dims[0];
        *r = ba_alloc_array((long long)dims[0], 1, sizeof **r, "scores /r", err);
        rc = *r ? ba_h5_read_n(&f, "/r", BA_H5_F32, 1, NULL, NULL, *r, (size_t)dims[0], err)
                : err->code;
    }
    /* A correlation: within [-1, 1], or NaN for a voxel `fit` left out of the
     * solve (constant over the samples; skipped in every mean and test);
     * anything else is not a score. */
    for (long v = 0; rc == BA_OK && v < *n_voxels; v++)
        if (!isnan((*r)[v]) && (!isfinite((*r)[v]) || (*r)[v] < -1.0f || (*r)[v] > 1.0f))
            rc = ba_fail(err, BA_ERR_VALUE, "%s:/r[%ld] is %g, expected a correlation in "
                         "[-1, 1]", path, v, (double)(*r)[v]);
    ba_h5_abandon(&f);
    return rc;
}

/* The atlas: given, or the one the first scores file was fitted with. */
static ba_status read_atlas(const ba_compare_options *o, long n_voxels, ba_atlas *atlas,
                            char *used, size_t size, ba_error *err)
{
    const char *first = o->inputs->items[0].path;
    if (o->atlas_path) {
        snprintf(used, size, "%s", o->atlas_path);
    } else {
        ba_h5file f;
        BA_CHECK(ba_h5_open(&f, first, MPI_COMM_SELF, err));
        char *inputs = NULL;
        ba_status rc = ba_h5_get_attr_str(&f, "/", "inputs", &inputs, err);
        ba_h5_abandon(&f);
        if (rc == BA_OK) nth_word(inputs, 2, used, size);
        free(inputs);
        if (rc != BA_OK || !used[0])
            return ba_fail(err, BA_ERR_USAGE, "%s: the scores do not name an atlas; give one "
                           "(--atlas atlas.h5)", first);
    }
    struct stat sb;
    if (!o->atlas_path && stat(used, &sb) != 0)
        return ba_fail(err, BA_ERR_IO, "%s: the atlas it was fitted with, %s, is not there (a "
                       "relative path is relative to where `fit` ran); give it with --atlas",
                       first, used);
    ba_status rc = ba_atlas_read(used, MPI_COMM_SELF, n_voxels, atlas, err);
    if (rc != BA_OK) return ba_context(err, "atlas for %s", first);
    return BA_OK;
}

/* The scores' /roi/name, when present, must be the atlas's regions. */
static ba_status check_regions(const char *path, const ba_atlas *atlas, const char *atlas_path,
                               ba_error *err)
{
    ba_h5file f;
    BA_CHECK(ba_h5_open(&f, path, MPI_COMM_SELF, err));
    ba_status rc = BA_OK;
    if (ba_h5_exists(&f, "/roi/name")) {
        char **names = NULL;
        size_t n = 0;
        rc = ba_h5_read_strings(&f, "/roi/name", &names, &n, err);
        if (rc == BA_OK && (int)n != atlas->n_regions)
            rc = ba_fail(err, BA_ERR_SHAPE, "%s:/roi/name has %zu regions, the atlas %s has %d",
                         path, n, atlas_path, atlas->n_regions);
        for (size_t g = 0; rc == BA_OK && g < n; g++)
            if (strcmp(names[g], atlas->names[g]) != 0)
                rc = ba_fail(err, BA_ERR_VALUE, "%s:/roi/name[%zu] is '%s', the atlas %s says '%s'",
                             path, g, names[g], atlas_path, atlas->names[g]);
        ba_h5_free_strings(names, n);
    }
    ba_h5_abandon(&f);
    return rc;
}

/* ------------------------------------------------------------ statistics */

/* Voxels of each region, CSR: region g is index[start[g] .. start[g+1]). */
typedef struct {
    long *start, *index;
} region_voxels;

static ba_status region_voxels_build(const ba_atlas *a, region_voxels *rv, ba_error *err)
{
    ba_status rc = BA_OK;
    long *fill = NULL;
    BA_ALLOC(rv->start, (size_t)a->n_regions + 1, "region voxels", done);
    BA_ALLOC(rv->index, (size_t)a->n_voxels, "region voxels", done);
    BA_ALLOC(fill, (size_t)a->n_regions, "region voxels", done);
    for (long v = 0; v < a->n_voxels; v++)
        if (a->labels[v] >= 0) rv->start[a->labels[v] + 1]++;
    for (int g = 0; g < a->n_regions; g++) rv->start[g + 1] += rv->start[g];
    for (long v = 0; v < a->n_voxels; v++) {
        int g = a->labels[v];
        if (g >= 0) rv->index[rv->start[g] + fill[g]++] = v;
    }
done:
    free(fill);
    return rc;
}

static double region_mean(const float *r, const region_voxels *rv, int g)
{
    long n = 0; /* voxels with a score (NaN: left out by `fit`) */
    double s = 0;
    for (long k = rv->start[g]; k < rv->start[g + 1]; k++)
        if (!isnan(r[rv->index[k]])) { s += r[rv->index[k]]; n++; }
    return n ? s / (double)n : NAN;
}

/* One stream per model, condition and region, whatever the input order. */
static uint64_t stream_seed(uint64_t seed, const char *model, const char *condition, int region)
{
    uint64_t h = ba_fnv1a_str(BA_FNV1A_OFFSET, model);
    h = ba_fnv1a_str(h ^ 0x1f, condition);
    return seed ^ h ^ ((uint64_t)region * 0x9e3779b97f4a7c15ULL);
}

typedef struct {
    int n_subjects;
    float **r;          /* [condition * n_subjects + subject] -> [n_voxels] */
    float *mean_r;      /* [condition][n_voxels] mean over subjects */
    float *delta_r;     /* [condition][n_voxels] (row 0, the baseline, is 0) */
    double *roi;        /* [condition][8][n_regions]: mean_r, mean_r_baseline,
                           delta_r, rel_change_pct, ci_low, ci_high, p, q */
} model_data;

enum { ROI_MEAN, ROI_BASE, ROI_DELTA, ROI_REL, ROI_LOW, ROI_HIGH, ROI_P, ROI_Q, ROI_N };
static const char *const ROI_NAMES[ROI_N] = {"mean_r", "mean_r_baseline", "delta_r",
                                             "rel_change_pct", "ci_low", "ci_high", "p", "q"};

static double *roi_col(const model_data *d, int c, int what, int n_regions)
{
    return d->roi + ((size_t)c * ROI_N + what) * n_regions;
}

static void model_data_free(model_data *d, int n_conditions)
{
    for (int i = 0; d->r && i < n_conditions * d->n_subjects; i++) free(d->r[i]);
    free(d->r);
    free(d->mean_r);
    free(d->delta_r);
    free(d->roi);
    memset(d, 0, sizeof *d);
}

/* Test one region of one condition; fills the result row's statistics. */
static ba_status test_region(const ba_compare_options *o, const model_design *md,
                             const model_data *d, const region_voxels *rv, int c, int g,
                             ba_compare_row *row, ba_error *err)
{
    int S = md->n_subjects;
    long first = rv->start[g], n = rv->start[g + 1] - first;
    uint64_t seed = stream_seed(o->seed, md->name, md->conditions[c], g);
    double *x = ba_calloc(S > 1 ? (size_t)S : (size_t)(n ? n : 1), sizeof *x, "differences", err);
    if (!x) return BA_ERR_NOMEM;
    ba_status rc = BA_OK;
    if (S > 1) {
        for (int s = 0; s < S; s++)
            x[s] = region_mean(d->r[(size_t)c * S + s], rv, g) - region_mean(d->r[s], rv, g);
        ba_signflip_result t;
        ba_bootstrap_result b;
        rc = ba_signflip_test(x, (size_t)S, o->n_permutations, seed, &t, err);
        if (rc == BA_OK)
            rc = ba_bootstrap_mean(x, (size_t)S, o->n_bootstrap, o->confidence, seed ^ 0xc1, &b,
                                   NULL, err);
        if (rc == BA_OK) {
            row->p = t.p;
            row->ci_low = b.ci_low;
            row->ci_high = b.ci_high;
            row->exact = t.exact;
            row->n_resamples = t.n_resamples;
            snprintf(row->test, sizeof row->test, "%s", t.exact ? "sign-flip exact"
                                                                : "sign-flip monte-carlo");
        }
    } else {
        const float *rc_ = d->r[c], *rb = d->r[0];
        long kept = 0; /* voxels scored in both */
        for (long k = 0; k < n; k++) {
            long v = rv->index[first + k];
            if (!isnan(rc_[v]) && !isnan(rb[v])) x[kept++] = (double)rc_[v] - (double)rb[v];
        }
        n = kept;
        if (n < 2) { /* every voxel of the region left out by `fit` (or one left) */
            row->p = row->ci_low = row->ci_high = NAN;
            snprintf(row->test, sizeof row->test, "voxel bootstrap");
            free(x);
            return BA_OK;
        }
        ba_bootstrap_result b;
        rc = ba_bootstrap_mean(x, (size_t)n, o->n_bootstrap, o->confidence, seed, &b, NULL, err);
        if (rc == BA_OK) {
            row->p = b.p;
            row->ci_low = b.ci_low;
            row->ci_high = b.ci_high;
            row->n_resamples = b.n_resamples;
            snprintf(row->test, sizeof row->test, "voxel bootstrap");
        }
    }
    free(x);
    return rc;
}

/* Read every file of a model and compute means, differences and tests. */
static ba_status compute_model(const ba_compare_options *o, const model_design *md,
                               const region_voxels *rv, int n_regions, long n_voxels,
                               model_data *d, ba_error *err)
{
    ba_status rc = BA_OK;
    int C = md->n_conditions, S = md->n_subjects;
    d->n_subjects = S;
    BA_ALLOC(d->r, (size_t)C * S, "scores", done);
    for (int i = 0; i < C * S; i++) {
        long nv = 0;
        BA_TRY(read_r(md->files[i]->path, n_voxels, &d->r[i], &nv, err), done);
    }
    BA_ALLOC(d->mean_r, (size_t)C * n_voxels, "mean r", done);
    BA_ALLOC(d->delta_r, (size_t)C * n_voxels, "delta r", done);
    BA_ALLOC(d->roi, (size_t)C * ROI_N * n_regions, "region table", done);
    for (int c = 0; c < C; c++)
        for (long v = 0; v < n_voxels; v++) {
            double sum = 0, delta = 0;
            int scored = 0; /* subjects whose fit kept the voxel */
            for (int s = 0; s < S; s++) {
                float rc_ = d->r[(size_t)c * S + s][v], rb = d->r[s][v];
                if (isnan(rc_) || isnan(rb)) continue;
                sum += rc_;
                delta += (double)rc_ - (double)rb;
                scored++;
            }
            d->mean_r[(size_t)c * n_voxels + v] = scored ? (float)(sum / scored) : NAN;
            d->delta_r[(size_t)c * n_voxels + v] = scored ? (float)(delta / scored) : NAN;
        }
    for (int c = 0; c < C; c++)
        for (int g = 0; g < n_regions; g++) {
            double mean = 0, base = 0;
            for (int s = 0; s < S; s++) {
                mean += region_mean(d->r[(size_t)c * S + s], rv, g) / S;
                base += region_mean(d->r[s], rv, g) / S;
            }
            roi_col(d, c, ROI_MEAN, n_regions)[g] = mean;
            roi_col(d, c, ROI_BASE, n_regions)[g] = base;
            roi_col(d, c, ROI_DELTA, n_regions)[g] = c == 0 ? 0.0 : mean - base;
            roi_col(d, c, ROI_REL, n_regions)[g] =
                c == 0 ? 0.0 : base != 0 ? 100.0 * (mean - base) / fabs(base) : NAN;
            for (int k = ROI_LOW; k <= ROI_Q; k++) roi_col(d, c, k, n_regions)[g] = NAN;
        }
done:
    return rc;
}

/* The rows of one model (baseline rows first), with tests and q-values. */
static ba_status model_rows(const ba_compare_options *o, const model_design *md,
                            model_data *d, const region_voxels *rv, const ba_atlas *atlas,
                            ba_compare_result *res, ba_error *err)
{
    int G = atlas->n_regions;
    double *p = ba_calloc((size_t)G + 1, sizeof *p, "p-values", err);
    if (!p) return BA_ERR_NOMEM;
    ba_status rc = BA_OK;
    for (int c = 0; rc == BA_OK && c < md->n_conditions; c++) {
        size_t first = res->n_rows;
        for (int g = 0; rc == BA_OK && g < G; g++) {
            ba_compare_row *row = &res->rows[res->n_rows++];
            memset(row, 0, sizeof *row);
            snprintf(row->model, sizeof row->model, "%s", md->name);
            snprintf(row->condition, sizeof row->condition, "%s", md->conditions[c]);
            row->region = res->regions[g];
            row->n_voxels = rv->start[g + 1] - rv->start[g];
            row->n_subjects = md->n_subjects;
            row->is_baseline = c == 0;
            row->r_condition = roi_col(d, c, ROI_MEAN, G)[g];
            row->r_baseline = roi_col(d, c, ROI_BASE, G)[g];
            row->delta_r = roi_col(d, c, ROI_DELTA, G)[g];
            row->rel_change_pct = roi_col(d, c, ROI_REL, G)[g];
            row->ci_low = row->ci_high = row->p = row->q = NAN;
            if (c > 0 && row->n_voxels > 0)
                rc = test_region(o, md, d, rv, c, g, row, err);
            if (c == 0 || row->n_voxels == 0) {
                row->delta_r = row->rel_change_pct = c == 0 ? 0.0 : NAN;
            }
            p[g] = row->p;
        }
        if (rc != BA_OK || c == 0) continue;
        double *q = roi_col(d, c, ROI_Q, G);
        rc = ba_bh_qvalues(p, (size_t)G, q, err);
        for (int g = 0; rc == BA_OK && g < G; g++) {
            ba_compare_row *row = &res->rows[first + g];
            row->q = q[g];
            row->significant = !isnan(q[g]) && q[g] <= o->fdr;
            roi_col(d, c, ROI_P, G)[g] = row->p;
            roi_col(d, c, ROI_LOW, G)[g] = row->ci_low;
            roi_col(d, c, ROI_HIGH, G)[g] = row->ci_high;
        }
    }
    free(p);
    return rc;
}

/* ------------------------------------------------------------ writing */

static void model_key(const char *label, char *out, size_t size)
{
    size_t i = 0;
    for (; label[i] && i + 1 < size; i++) {
        char c = label[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        out[i] = ok ? c : '_';
    }
    out[i] = '\0';
}

static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void csv_number(FILE *f, double x)
{
    if (isnan(x)) fputs(",", f);
    else fprintf(f, ",%.17g", x);
}

static ba_status write_csv(const char *path, const ba_compare_options *o,
                           const ba_compare_result *res, ba_error *err)
{
    FILE *f = fopen(path, "w");
    if (!f) return ba_fail(err, BA_ERR_IO, "%s: cannot write", path);
    fprintf(f, "model,condition,baseline,region,n_voxels,n_subjects,r_baseline,r_condition,"
               "delta_r,rel_change_pct,ci_low,ci_high,p,q,significant,test,n_resamples\n");
    for (size_t i = 0; i < res->n_rows; i++) {
        const ba_compare_row *r = &res->rows[i];
        csv_field(f, r->model);
        fputc(',', f);
        csv_field(f, r->condition);
        fputc(',', f);
        csv_field(f, o->baseline);
        fputc(',', f);
        csv_field(f, r->region);
        fprintf(f, ",%ld,%d", r->n_voxels, r->n_subjects);
        csv_number(f, r->r_baseline);
        csv_number(f, r->r_condition);
        csv_number(f, r->delta_r);
        csv_number(f, r->rel_change_pct);
        csv_number(f, r->ci_low);
        csv_number(f, r->ci_high);
        csv_number(f, r->p);
        csv_number(f, r->q);
        fprintf(f, ",%s,%s,%ld\n", r->is_baseline ? "" : r->significant ? "yes" : "no", r->test,
                r->n_resamples);
    }
    if (fclose(f) != 0) return ba_fail(err, BA_ERR_IO, "%s: cannot write", path);
    return BA_OK;
}

static const ba_compare_row *find_row(const ba_compare_result *res, const char *model,
                                      const char *condition, int g)
{
    for (size_t i = 0; i < res->n_rows; i++)
        if (res->rows[i].region == res->regions[g] && !strcmp(res->rows[i].model, model) &&
            !strcmp(res->rows[i].condition, condition))
            return &res->rows[i];
    return NULL;
}

static void md_delta(FILE *f, const ba_compare_row *r, double fdr)
{
    if (!r || isnan(r->delta_r)) {
        fputs(" — |", f);
        return;
    }
    fprintf(f, " %+.4f (%+.1f%%)%s |", r->delta_r, r->rel_change_pct,
            r->significant ? (r->q <= fdr / 5 ? " **" : " *") : "");
}

static void md_model(FILE *f, const ba_compare_options *o, const model_design *md,
                     const ba_compare_result *res)
{
    int G = res->n_regions;
    fprintf(f, "\n## %s (%d subject%s)\n\n| region | voxels | r %s |", md->name, md->n_subjects,
            md->n_subjects == 1 ? "" : "s", o->baseline);
    for (int c = 1; c < md->n_conditions; c++) fprintf(f, " Δr %s |", md->conditions[c]);
    fprintf(f, "\n| --- | ---: | ---: |");
    for (int c = 1; c < md->n_conditions; c++) fprintf(f, " ---: |");
    fprintf(f, "\n");
    for (int g = 0; g < G; g++) {
        const ba_compare_row *base = find_row(res, md->name, md->conditions[0], g);
        fprintf(f, "| %s | %ld |", res->regions[g], base->n_voxels);
        if (isnan(base->r_condition)) fprintf(f, " — |");
        else fprintf(f, " %.4f |", base->r_condition);
        for (int c = 1; c < md->n_conditions; c++)
            md_delta(f, find_row(res, md->name, md->conditions[c], g), o->fdr);
        fprintf(f, "\n");
    }
    fprintf(f, "\n| condition | region | r | Δr | %.0f%% CI | p | q | test |\n"
               "| --- | --- | ---: | ---: | --- | ---: | ---: | --- |\n", 100 * o->confidence);
    for (int c = 1; c < md->n_conditions; c++)
        for (int g = 0; g < G; g++) {
            const ba_compare_row *r = find_row(res, md->name, md->conditions[c], g);
            if (isnan(r->p)) {
                fprintf(f, "| %s | %s | — | — | — | — | — | no voxels |\n", r->condition, r->region);
                continue;
            }
            fprintf(f, "| %s | %s | %.4f | %+.4f | [%+.4f, %+.4f] | %.3g | %.3g | %s (%ld) |\n",
                    r->condition, r->region, r->r_condition, r->delta_r, r->ci_low, r->ci_high,
                    r->p, r->q, r->test, r->n_resamples);
        }
}

/* The paper's layout: regions x (model, condition), Δr with marks. */
static void md_all_models(FILE *f, const ba_compare_options *o, const design *d,
                          const ba_compare_result *res)
{
    fprintf(f, "\n## All models: Δr against %s\n\n| region |", o->baseline);
    for (int m = 0; m < d->n_models; m++)
        for (int c = 1; c < d->models[m].n_conditions; c++)
            fprintf(f, " %s, %s |", d->models[m].name, d->models[m].conditions[c]);
    fprintf(f, "\n| --- |");
    for (int m = 0; m < d->n_models; m++)
        for (int c = 1; c < d->models[m].n_conditions; c++) fprintf(f, " ---: |");
    fprintf(f, "\n");
    for (int g = 0; g < res->n_regions; g++) {
        fprintf(f, "| %s |", res->regions[g]);
        for (int m = 0; m < d->n_models; m++)
            for (int c = 1; c < d->models[m].n_conditions; c++)
                md_delta(f, find_row(res, d->models[m].name, d->models[m].conditions[c], g), o->fdr);
        fprintf(f, "\n");
    }
}

static ba_status write_markdown(const char *path, const ba_compare_options *o, const design *d,
                                const ba_compare_result *res, ba_error *err)
{
    FILE *f = fopen(path, "w");
    if (!f) return ba_fail(err, BA_ERR_IO, "%s: cannot write", path);
    fprintf(f, "# Brain scores with associative memory: conditions against `%s`\n\n"
               "Δr = r(condition) − r(%s): Pearson r on held-out folds, averaged over the "
               "region's voxels, then over subjects; in brackets the change relative to the "
               "baseline. `*` q ≤ %g, `**` q ≤ %g (Benjamini–Hochberg across regions, per model "
               "and condition). Tests are two-sided: with several subjects a paired sign-flip "
               "permutation test of the subjects' region-mean Δr (exact over all 2^S sign "
               "vectors up to %ld, else %ld Monte-Carlo draws) and a percentile bootstrap over "
               "subjects for the %.0f%% interval; with one subject a percentile bootstrap over "
               "the region's voxels (%ld resamples, p from the sign of the bootstrap means; "
               "voxels taken as independent). Seed %llu.\n",
            o->baseline, o->baseline, o->fdr, o->fdr / 5, o->n_permutations, o->n_permutations,
            100 * o->confidence, o->n_bootstrap, (unsigned long long)o->seed);
    if (res->note[0]) fprintf(f, "\n**Note.** %s\n", res->note);
    if (d->n_models > 1) md_all_models(f, o, d, res);
    for (int m = 0; m < d->n_models; m++) md_model(f, o, &d->models[m], res);
    if (fclose(f) != 0) return ba_fail(err, BA_ERR_IO, "%s: cannot write", path);
    return BA_OK;
}

static ba_status write_model_h5(ba_h5file *f, const model_design *md, const model_data *d,
                                const ba_compare_options *o, int G, long V, ba_error *err)
{
    char key[BA_COMPARE_LABEL_MAX], obj[4 * BA_COMPARE_LABEL_MAX];
    model_key(md->name, key, sizeof key);
    hsize_t vd[1] = {(hsize_t)V}, gd[1] = {(hsize_t)G};
    char subjects[4096] = "";
    for (int s = 0; s < md->n_subjects; s++)
        snprintf(subjects + strlen(subjects), sizeof subjects - strlen(subjects), "%s%s",
                 s ? "," : "", md->subjects[s]);
    for (int c = 0; c < md->n_conditions; c++) {
        char cond[BA_COMPARE_LABEL_MAX];
        model_key(md->conditions[c], cond, sizeof cond);
        snprintf(obj, sizeof obj, "/%s/%s/mean_r", key, cond);
        BA_CHECK(ba_h5_write_all(f, obj, BA_H5_F32, 1, vd, d->mean_r + (size_t)c * V, err));
        if (c > 0) {
            snprintf(obj, sizeof obj, "/%s/%s/delta_r", key, cond);
            BA_CHECK(ba_h5_write_all(f, obj, BA_H5_F32, 1, vd, d->delta_r + (size_t)c * V, err));
        }
        for (int k = 0; k < ROI_N; k++) {
            snprintf(obj, sizeof obj, "/%s/%s/roi/%s", key, cond, ROI_NAMES[k]);
            BA_CHECK(ba_h5_write_all(f, obj, BA_H5_F64, 1, gd, roi_col(d, c, k, G), err));
        }
        snprintf(obj, sizeof obj, "/%s/%s", key, cond);
        long long ns = md->n_subjects;
        BA_CHECK(ba_h5_set_attr_str(f, obj, "model", md->name, err));
        BA_CHECK(ba_h5_set_attr_str(f, obj, "condition", md->conditions[c], err));
        BA_CHECK(ba_h5_set_attr_str(f, obj, "baseline", o->baseline, err));
        BA_CHECK(ba_h5_set_attr_i64(f, obj, "n_subjects", &ns, 1, err));
        BA_CHECK(ba_h5_set_attr_str(f, obj, "subjects", subjects, err));
        BA_CHECK(ba_h5_set_attr_str(f, obj, "test", c == 0 ? "none (baseline)"
                                    : md->n_subjects > 1 ? "sign-flip permutation + subject bootstrap"
                                                         : "voxel bootstrap", err));
    }
    return BA_OK;
}

static ba_status write_h5(const char *path, const ba_compare_options *o, const design *d,
                          const model_data *data, const ba_atlas *atlas,
                          const region_voxels *rv, const char *atlas_path, const char *note,
                          ba_error *err)
{
    ba_h5file f;
    BA_CHECK(ba_h5_create(&f, path, MPI_COMM_SELF, err));
    int G = atlas->n_regions;
    ba_status rc = ba_h5_write_strings(&f, "/regions/name", atlas->names, (size_t)G, 0, err);
    long long *counts = ba_calloc((size_t)G + 1, sizeof *counts, "region sizes", err);
    if (!counts) rc = BA_ERR_NOMEM;
    for (int g = 0; rc == BA_OK && g < G; g++) counts[g] = rv->start[g + 1] - rv->start[g];
    hsize_t gd[1] = {(hsize_t)G};
    if (rc == BA_OK) rc = ba_h5_write_all(&f, "/regions/n_voxels", BA_H5_I64, 1, gd, counts, err);
    free(counts);
    for (int m = 0; rc == BA_OK && m < d->n_models; m++)
        rc = write_model_h5(&f, &d->models[m], &data[m], o, G, atlas->n_voxels, err);
    double settings[4] = {o->confidence, o->fdr, (double)o->n_permutations, (double)o->n_bootstrap};
    long long seed = (long long)o->seed;
    if (rc == BA_OK) rc = ba_h5_set_attr_str(&f, "/", "baseline", o->baseline, err);
    if (rc == BA_OK) rc = ba_h5_set_attr_f64(&f, "/", "confidence", &settings[0], 1, err);
    if (rc == BA_OK) rc = ba_h5_set_attr_f64(&f, "/", "fdr", &settings[1], 1, err);
    if (rc == BA_OK) rc = ba_h5_set_attr_f64(&f, "/", "n_permutations", &settings[2], 1, err);
    if (rc == BA_OK) rc = ba_h5_set_attr_f64(&f, "/", "n_bootstrap", &settings[3], 1, err);
    if (rc == BA_OK) rc = ba_h5_set_attr_i64(&f, "/", "seed", &seed, 1, err);
    if (rc == BA_OK) rc = ba_h5_set_attr_str(&f, "/", "atlas", atlas_path, err);
    if (rc == BA_OK) rc = ba_h5_set_attr_str(&f, "/", "note", note, err);
    if (rc == BA_OK) rc = ba_h5_set_attr_str(&f, "/", "version", BRAINALIGN_VERSION, err);
    if (rc == BA_OK)
        rc = ba_h5_set_attr_str(&f, "/", "command", o->command_line ? o->command_line : "", err);
    if (rc == BA_OK) {
        size_t len = 1;
        for (size_t i = 0; i < o->inputs->n; i++) len += strlen(o->inputs->items[i].path) + 600;
        char *inputs = ba_calloc(len, 1, "inputs list", err);
        if (!inputs) rc = BA_ERR_NOMEM;
        for (size_t i = 0; inputs && i < o->inputs->n; i++) {
            const ba_compare_input *x = &o->inputs->items[i];
            snprintf(inputs + strlen(inputs), len - strlen(inputs), "%s\t%s\t%s\t%s\n", x->model,
                     x->condition, x->subject, x->path);
        }
        if (rc == BA_OK) rc = ba_h5_set_attr_str(&f, "/", "inputs", inputs, err);
        free(inputs);
    }
    if (rc != BA_OK) {
        ba_h5_abandon(&f);
        return rc;
    }
    return ba_h5_close(&f, err);
}

/* ------------------------------------------------------------ results */

static ba_status note_written(ba_compare_result *res, const char *path, ba_error *err)
{
    char **grown = realloc(res->written, (res->n_written + 1) * sizeof *grown);
    if (!grown) return ba_fail(err, BA_ERR_NOMEM, "list of files written");
    res->written = grown;
    res->written[res->n_written] = strdup(path);
    if (!res->written[res->n_written]) return ba_fail(err, BA_ERR_NOMEM, "list of files written");
    res->n_written++;
    return BA_OK;
}

/* Δr maps in the brain space of bold_path (nothing when it records none). */
static ba_status write_maps(const ba_compare_options *o, const design *d,
                            const model_data *data, long V, ba_compare_result *res,
                            ba_error *err)
{
    ba_brain_space space;
    memset(&space, 0, sizeof space);
    BA_CHECK(ba_brain_space_read(o->bold_path, &space, err));
    ba_status rc = BA_OK;
    if (space.kind != BA_SPACE_NONE && space.n_voxels != V)
        rc = ba_fail(err, BA_ERR_SHAPE, "%s records %ld voxels, the scores have %ld",
                     o->bold_path, space.n_voxels, V);
    for (int m = 0; rc == BA_OK && space.kind != BA_SPACE_NONE && m < d->n_models; m++) {
        const model_design *md = &d->models[m];
        char key[BA_COMPARE_LABEL_MAX], cond[BA_COMPARE_LABEL_MAX];
        model_key(md->name, key, sizeof key);
        for (int c = 1; rc == BA_OK && c < md->n_conditions; c++) {
            model_key(md->conditions[c], cond, sizeof cond);
            const float *values = data[m].delta_r + (size_t)c * V;
            char a[BA_PATH_MAX + 400], b[BA_PATH_MAX + 400];
            if (space.kind == BA_SPACE_VOLUME) {
                snprintf(a, sizeof a, "%s_%s_%s_delta_r.nii.gz", o->out_prefix, key, cond);
                rc = ba_map_write_volume(a, &space, values, 1, err);
                if (rc == BA_OK) rc = note_written(res, a, err);
            } else {
                snprintf(a, sizeof a, "%s_%s_%s_delta_r.lh.func.gii", o->out_prefix, key, cond);
                snprintf(b, sizeof b, "%s_%s_%s_delta_r.rh.func.gii", o->out_prefix, key, cond);
                rc = ba_map_write_surface(a, b, &space, values, 1, err);
                if (rc == BA_OK && space.n_vertices[0] > 0) rc = note_written(res, a, err);
                if (rc == BA_OK && space.n_vertices[1] > 0) rc = note_written(res, b, err);
            }
        }
    }
    ba_brain_space_free(&space);
    return rc;
}

void ba_compare_result_free(ba_compare_result *res)
{
    ba_h5_free_strings(res->regions, (size_t)res->n_regions);
    free(res->rows);
    for (size_t i = 0; i < res->n_written; i++) free(res->written[i]);
    free(res->written);
    memset(res, 0, sizeof *res);
}

/* Write every output: tables under temporary names first, then the HDF5
 * file and maps (each atomic), then the tables get their names. On a
 * failure everything written is removed. */
static ba_status write_outputs(const ba_compare_options *o, const design *d,
                               const model_data *data, const ba_atlas *atlas,
                               const region_voxels *rv, const char *atlas_path,
                               ba_compare_result *res, ba_error *err)
{
    char csv[BA_PATH_MAX + 16], md[BA_PATH_MAX + 16], h5[BA_PATH_MAX + 16];
    char csv_tmp[BA_PATH_MAX + 32], md_tmp[BA_PATH_MAX + 32];
    snprintf(csv, sizeof csv, "%s.csv", o->out_prefix);
    snprintf(md, sizeof md, "%s.md", o->out_prefix);
    snprintf(h5, sizeof h5, "%s.h5", o->out_prefix);
    snprintf(csv_tmp, sizeof csv_tmp, "%s.partial", csv);
    snprintf(md_tmp, sizeof md_tmp, "%s.partial", md);
    ba_status rc = write_csv(csv_tmp, o, res, err);
    if (rc == BA_OK) rc = write_markdown(md_tmp, o, d, res, err);
    if (rc == BA_OK) rc = write_h5(h5, o, d, data, atlas, rv, atlas_path, res->note, err);
    if (rc == BA_OK) rc = note_written(res, h5, err);
    if (rc == BA_OK && o->bold_path) rc = write_maps(o, d, data, atlas->n_voxels, res, err);
    if (rc == BA_OK && (rename(csv_tmp, csv) != 0 || rename(md_tmp, md) != 0))
        rc = ba_fail(err, BA_ERR_IO, "%s: cannot rename the tables into place", csv);
    if (rc == BA_OK) rc = note_written(res, csv, err);
    if (rc == BA_OK) rc = note_written(res, md, err);
    if (rc != BA_OK) {
        remove(csv_tmp);
        remove(md_tmp);
        for (size_t i = 0; i < res->n_written; i++) remove(res->written[i]);
    }
    return rc;
}

/* With S subjects the exact two-sided sign-flip p-value is at least 2/2^S
 * (the observed signs and their mirror): at S <= 5 that is above 0.05, and
 * no region can be significant however large its effect. Say so. */
static void p_floor_note(const ba_compare_options *o, const design *d, ba_compare_result *res)
{
    size_t len = strlen(res->note);
    for (int m = 0; m < d->n_models; m++) {
        int S = d->models[m].n_subjects;
        if (S < 2 || S > 62) continue;
        double floor_p = ldexp(2.0, -S);
        if (floor_p <= o->fdr) continue;
        int need = S;
        while (ldexp(2.0, -need) > o->fdr) need++;
        len += (size_t)snprintf(res->note + len, len < sizeof res->note ? sizeof res->note - len : 0,
                                "%s%s: with %d subjects the sign-flip p-value cannot go below "
                                "2/2^%d = %.4g, above the significance level %g: no region can be "
                                "significant, whatever its effect (%d subjects at least are "
                                "needed)", len ? "\n" : "", d->models[m].name, S, S, floor_p,
                                o->fdr, need);
        if (len >= sizeof res->note) { len = sizeof res->note - 1; break; }
    }
}

ba_status ba_compare_run(const ba_compare_options *o, ba_compare_result *res, ba_error *err)
{
    memset(res, 0, sizeof *res);
    BA_CHECK(check_options(o, err));
    /* Before any work: the folder of PREFIX made (removed again on failure
     * if this run made it), PREFIX.* writable and not another run's
     * (outfile.h). */
    char created[BA_PATH_MAX] = "";
    BA_CHECK(ba_out_prefix_prepare(o->out_prefix, created, sizeof created, err));
    ba_output_lock lock = {0};
    if (ba_output_begin(o->out_prefix, false, &lock, err) != BA_OK) {
        if (created[0]) rmdir(created);
        return err->code;
    }
    char h5_name[BA_PATH_MAX + 8];
    snprintf(h5_name, sizeof h5_name, "%s.h5", o->out_prefix);
    ba_output_clean_stale(h5_name);
    ba_status rc = BA_OK;
    design d = {0};
    model_data *data = NULL;
    ba_atlas atlas = {0};
    region_voxels rv = {0};
    char atlas_path[BA_PATH_MAX] = "";
    float *first_r = NULL;
    long V = 0;
    BA_TRY(build_design(o, &d, err), done);
    BA_TRY(read_r(o->inputs->items[0].path, 0, &first_r, &V, err), done);
    BA_TRY(read_atlas(o, V, &atlas, atlas_path, sizeof atlas_path, err), done);
    for (size_t i = 0; i < o->inputs->n; i++) {
        BA_TRY(ba_fault("compare.inputs", err), done);
        BA_TRY(check_regions(o->inputs->items[i].path, &atlas, atlas_path, err), done);
    }
    BA_TRY(region_voxels_build(&atlas, &rv, err), done);
    res->n_regions = atlas.n_regions;
    BA_ALLOC(res->regions, (size_t)atlas.n_regions + 1, "region names", done);
    for (int g = 0; g < atlas.n_regions; g++) {
        res->regions[g] = strdup(atlas.names[g]);
        if (!res->regions[g]) { rc = ba_fail(err, BA_ERR_NOMEM, "region names"); goto done; }
    }
    size_t n_rows = 0;
    for (int m = 0; m < d.n_models; m++) n_rows += (size_t)d.models[m].n_conditions * atlas.n_regions;
    BA_ALLOC(res->rows, n_rows + 1, "result rows", done);
    BA_ALLOC(data, (size_t)d.n_models, "model data", done);
    for (int m = 0; m < d.n_models; m++) {
        BA_TRY(compute_model(o, &d.models[m], &rv, atlas.n_regions, V, &data[m], err), done);
        BA_TRY(model_rows(o, &d.models[m], &data[m], &rv, &atlas, res, err), done);
    }
    p_floor_note(o, &d, res);
    rc = write_outputs(o, &d, data, &atlas, &rv, atlas_path, res, err);
done:
    ba_output_end(&lock);
    if (rc != BA_OK && created[0]) rmdir(created); /* only if left empty */
    for (int m = 0; data && m < d.n_models; m++) model_data_free(&data[m], d.models[m].n_conditions);
    free(data);
    free(first_r);
    free(rv.start);
    free(rv.index);
    ba_atlas_free(&atlas);
    design_free(&d);
    if (rc != BA_OK) ba_compare_result_free(res);
    return rc;
}
