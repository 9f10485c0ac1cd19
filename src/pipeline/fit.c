/* fit.c — the `fit` stage (see fit.h). */
#include "brainalign/pipeline/fit.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "brainalign/core/alloc.h"
#include "brainalign/core/fs.h"
#include "brainalign/core/hash.h"
#include "brainalign/core/outfile.h"
#include "brainalign/io/features_io.h"
#include "brainalign/io/importers.h"
#include "brainalign/ridge/folds.h"
#include "brainalign/io/h5io.h"
#include "brainalign/parallel/fault.h"
#include "brainalign/parallel/parallel.h"
#include "brainalign/ridge/ridge_petsc.h"

void ba_fit_config_defaults(ba_fit_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (int i = 0; i < 10; i++) cfg->alphas[i] = pow(10.0, -1.0 + i);
    for (int i = 0; i < 5; i++) cfg->delays[i] = i + 1;
    cfg->design = (ba_design_options){.tr_s = 0, .tr_offset_s = 0,
                                      .aggregate = BA_AGGREGATE_SUM, .n_delays = 5,
                                      .delays = cfg->delays};
    ba_ridge_options_init(&cfg->ridge);
    cfg->ridge.n_folds = 5;
    cfg->ridge.alphas = cfg->alphas;
    cfg->ridge.n_alphas = 10;
}

/* "file.h5:/dataset" -> file and dataset. */
static ba_status split_spec(const char *spec, char *file, size_t fsize, char *dset,
                            size_t dsize, ba_error *err)
{
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || colon[1] == '\0')
        return ba_fail(err, BA_ERR_USAGE, "'%s' should look like FILE.h5:/DATASET", spec);
    snprintf(file, fsize, "%.*s", (int)(colon - spec), spec);
    snprintf(dset, dsize, "%s", colon + 1);
    return BA_OK;
}

/* ------------------------------------------------------ the inputs */

typedef struct {
    long n, p, v;
    /* design-matrix mode: rows read from the file on demand */
    ba_h5file *xfile;
    char xdset[512];
    /* features mode: the whole design in memory */
    float *x;
    float *y_local;           /* [n][vloc] */
    long n_stories;
    long *story_bounds;       /* [n_stories + 1] */
} fit_inputs;

static ba_status read_rows_from_file(void *ctx, long row0, long n_rows, float *out,
                                     ba_error *err)
{
    fit_inputs *in = ctx;
    hsize_t start[2] = {(hsize_t)row0, 0}, count[2] = {(hsize_t)n_rows, (hsize_t)in->p};
    return ba_h5_read_n(in->xfile, in->xdset, BA_H5_F32, 2, start, count, out,
                        (size_t)n_rows * (size_t)in->p, err);
}

static ba_status read_rows_from_memory(void *ctx, long row0, long n_rows, float *out,
                                       ba_error *err)
{
    (void)err;
    fit_inputs *in = ctx;
    memcpy(out, in->x + row0 * in->p, sizeof(float) * (size_t)(n_rows * in->p));
    return BA_OK;
}

/* Shapes of X and Y in design-matrix mode, checked against each other. */
static ba_status matrix_shapes(const ba_fit_config *cfg, MPI_Comm comm, ba_h5file *xf,
                               ba_h5file *yf, char *ydset, fit_inputs *in, ba_error *err)
{
    char xpath[BA_PATH_MAX], ypath[BA_PATH_MAX];
    BA_CHECK(split_spec(cfg->x_spec, xpath, sizeof xpath, in->xdset, sizeof in->xdset, err));
    BA_CHECK(split_spec(cfg->y_spec, ypath, sizeof ypath, ydset, 512, err));
    BA_CHECK(ba_h5_open(xf, xpath, comm, err));
    ba_status rc = ba_h5_open(yf, ypath, comm, err);
    if (rc != BA_OK) { ba_h5_abandon(xf); return rc; }
    int rank = 0;
    hsize_t xd[BA_H5_MAX_RANK], yd[BA_H5_MAX_RANK];
    rc = ba_h5_shape(xf, in->xdset, 2, &rank, xd, err);
    if (rc == BA_OK) rc = ba_h5_shape(yf, ydset, 2, &rank, yd, err);
    if (rc == BA_OK && xd[0] != yd[0])
        rc = ba_fail(err, BA_ERR_SHAPE, "%s:%s has %llu rows but %s:%s has %llu", xpath,
                     in->xdset, (unsigned long long)xd[0], ypath, ydset,
                     (unsigned long long)yd[0]);
    if (rc == BA_OK && (xd[1] == 0 || yd[1] == 0))
        rc = ba_fail(err, BA_ERR_SHAPE, "%s or %s is empty", cfg->x_spec, cfg->y_spec);
    size_t bytes = 0;
    if (rc == BA_OK) rc = ba_size_product((long long)xd[0], (long long)xd[1], sizeof(float),
                                          cfg->x_spec, &bytes, err);
    if (rc == BA_OK) rc = ba_size_product((long long)yd[0], (long long)yd[1], sizeof(float),
                                          cfg->y_spec, &bytes, err);
    if (rc == BA_OK) { in->n = (long)xd[0]; in->p = (long)xd[1]; in->v = (long)yd[1]; }
    return ba_mpi_agree(comm, rc, err);
}

/* Features mode: build the whole design X on every rank (it is small next
 * to Y) and read this rank's voxel columns of every story. */
typedef struct {
    ba_features_file features;
    ba_h5file bold;
    char **stories;
    size_t n_stories;
    long *n_tr;
    double tr_s;
} study_inputs;

static void study_close(study_inputs *s)
{
    ba_features_close(&s->features);
    if (s->bold.id > 0) ba_h5_abandon(&s->bold);
    ba_h5_free_strings(s->stories, s->n_stories);
    free(s->n_tr);
    memset(s, 0, sizeof *s);
}

static bool in_list(char **names, size_t n, const char *name)
{
    for (size_t k = 0; k < n; k++)
        if (strcmp(names[k], name) == 0) return true;
    return false;
}

/* Appends ", name" (or "name") to buf while it fits. */
static void list_append(char *buf, size_t size, const char *name)
{
    size_t len = strlen(buf);
    if (len + strlen(name) + 8 >= size) {
        if (len + 5 < size && !strstr(buf, "...")) snprintf(buf + len, size - len, ", ...");
        return;
    }
    snprintf(buf + len, size - len, "%s%s", len ? ", " : "", name);
}

/* The stories to fit: --stories (each in both files), else those of bold.h5,
 * which must be those of features.h5 (a story on one side only would be
 * dropped without a word, or fail later). Replaces s->stories. */
static ba_status select_stories(const ba_fit_config *cfg, study_inputs *s, ba_error *err)
{
    char **feat = s->features.stories;
    size_t n_feat = s->features.n_stories;
    char *keep = ba_calloc(s->n_stories + 1, 1, "story selection", err);
    if (!keep) return BA_ERR_NOMEM;
    ba_status rc = BA_OK;
    if (cfg->stories) {
        char list[4096];
        snprintf(list, sizeof list, "%s", cfg->stories);
        size_t wanted = 0;
        char *save = NULL;
        for (char *tok = strtok_r(list, ",", &save); tok && rc == BA_OK;
             tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ') tok++;
            size_t k = 0;
            while (k < s->n_stories && strcmp(s->stories[k], tok) != 0) k++;
            if (k == s->n_stories)
                rc = ba_fail(err, BA_ERR_USAGE, "--stories: %s is not a story of %s", tok,
                             cfg->bold_path);
            else if (!in_list(feat, n_feat, tok))
                rc = ba_fail(err, BA_ERR_USAGE, "--stories: %s is not a story of %s", tok,
                             cfg->features_path);
            else if (keep[k])
                rc = ba_fail(err, BA_ERR_USAGE, "--stories: %s is named twice", tok);
            else { keep[k] = 1; wanted++; }
        }
        if (rc == BA_OK && wanted == 0)
            rc = ba_fail(err, BA_ERR_USAGE, "--stories names no story");
    } else {
        char only_feat[1024] = "", only_bold[1024] = "";
        for (size_t k = 0; k < n_feat; k++)
            if (!in_list(s->stories, s->n_stories, feat[k]))
                list_append(only_feat, sizeof only_feat, feat[k]);
        for (size_t k = 0; k < s->n_stories; k++) {
            keep[k] = 1;
            if (!in_list(feat, n_feat, s->stories[k]))
                list_append(only_bold, sizeof only_bold, s->stories[k]);
        }
        if (only_feat[0] || only_bold[0])
            rc = ba_fail(err, BA_ERR_VALUE, "the stories of %s and %s differ:%s%s%s%s%s%s (give "
                         "--stories to fit a subset)", cfg->features_path, cfg->bold_path,
                         only_feat[0] ? " features but no BOLD: " : "", only_feat,
                         only_feat[0] && only_bold[0] ? ";" : "",
                         only_bold[0] ? " BOLD but no features: " : "", only_bold, "");
    }
    if (rc == BA_OK) {
        size_t n = 0;
        for (size_t k = 0; k < s->n_stories; k++) {
            if (keep[k]) s->stories[n++] = s->stories[k];
            else free(s->stories[k]);
        }
        s->n_stories = n;
    }
    free(keep);
    return rc;
}

/* The first non-finite BOLD value, by story and TR as `import` reports it,
 * the same whatever the rank count (the smallest (row, voxel) over ranks). */
static ba_status check_bold_finite(const ba_fit_config *cfg, const study_inputs *s,
                                   const ba_ridge_layout *L, const fit_inputs *in, MPI_Comm comm,
                                   ba_error *err)
{
    long vloc = L->v_end - L->v_begin;
    long long first = -1;
    for (long i = 0; first < 0 && i < in->n; i++)
        for (long j = 0; j < vloc; j++)
            if (!isfinite(in->y_local[i * vloc + j]) &&
                !(cfg->nan_as_missing && isnan(in->y_local[i * vloc + j]))) {
                first = (long long)i * in->v + (L->v_begin + j);
                break;
            }
    long long mine = first < 0 ? LLONG_MAX : first, global = LLONG_MAX;
    MPI_Allreduce(&mine, &global, 1, MPI_LONG_LONG, MPI_MIN, comm);
    if (global == LLONG_MAX) return BA_OK;
    long row = (long)(global / in->v), voxel = (long)(global % in->v);
    /* The value: the rank that holds it says which kind. */
    int kind = 0, any = 0; /* 1 NaN, 2 infinite */
    if (voxel >= L->v_begin && voxel < L->v_end)
        kind = isnan(in->y_local[row * vloc + (voxel - L->v_begin)]) ? 1 : 2;
    MPI_Allreduce(&kind, &any, 1, MPI_INT, MPI_MAX, comm);
    size_t k = 0;
    while (k + 1 < s->n_stories && in->story_bounds[k + 1] <= row) k++;
    char where[128];
    snprintf(where, sizeof where, "voxel %ld", voxel);
    ba_brain_space space;
    ba_error ignored;
    if (ba_brain_space_read(cfg->bold_path, &space, &ignored) == BA_OK) {
        ba_brain_space_describe(&space, voxel, where, sizeof where);
        ba_brain_space_free(&space);
    }
    return ba_fail(err, BA_ERR_VALUE, "%s: story %s: TR %ld, %s is %s", cfg->bold_path,
                   s->stories[k], row - in->story_bounds[k], where,
                   any == 2 ? "infinite" : "NaN");
}

static ba_status study_open(const ba_fit_config *cfg, MPI_Comm comm, study_inputs *s,
                            fit_inputs *in, ba_error *err)
{
    memset(s, 0, sizeof *s);
    BA_CHECK(ba_features_open(&s->features, cfg->features_path, comm, err));
    ba_status rc = ba_h5_open(&s->bold, cfg->bold_path, comm, err);
    if (rc != BA_OK) { ba_features_close(&s->features); return rc; }
    rc = ba_h5_list_group(&s->bold, "/stories", &s->stories, &s->n_stories, err);
    if (rc == BA_OK && s->n_stories == 0)
        rc = ba_fail(err, BA_ERR_FORMAT, "%s: /stories is empty", cfg->bold_path);
    if (rc == BA_OK) rc = select_stories(cfg, s, err);
    s->tr_s = cfg->design.tr_s;
    /* 0 means "not given": the file's TR. Anything else given (negative,
     * NaN, inf, 1e-300) is refused, never replaced by the file's. */
    if (rc == BA_OK && s->tr_s != 0) {
        ba_design_options given = cfg->design;
        rc = ba_design_check_options("--tr/--tr-offset/--delays", &given, err);
    }
    if (rc == BA_OK && s->tr_s == 0)
        rc = ba_h5_get_attr_f64(&s->bold, "/", "tr_s", &s->tr_s, 1, err);
    if (rc == BA_OK) {
        ba_design_options opt = cfg->design;
        opt.tr_s = s->tr_s;
        char label[BA_PATH_MAX + 40];
        snprintf(label, sizeof label, "--tr-offset/--delays with the TR of %s", cfg->bold_path);
        rc = ba_design_check_options(label, &opt, err);
    }
    if (rc == BA_OK) {
        s->n_tr = ba_calloc(s->n_stories, sizeof(long), "TR counts", err);
        if (!s->n_tr) rc = BA_ERR_NOMEM;
    }
    in->v = -1;
    in->n = 0;
    for (size_t k = 0; rc == BA_OK && k < s->n_stories; k++) {
        char obj[1024];
        int rank = 0;
        hsize_t dims[BA_H5_MAX_RANK];
        snprintf(obj, sizeof obj, "/stories/%s/data", s->stories[k]);
        rc = ba_h5_shape(&s->bold, obj, 2, &rank, dims, err);
        if (rc != BA_OK) break;
        if (in->v >= 0 && (long)dims[1] != in->v)
            rc = ba_fail(err, BA_ERR_SHAPE, "%s:%s has %llu voxels, the first story %ld",
                         cfg->bold_path, obj, (unsigned long long)dims[1], in->v);
        if (rc == BA_OK && (dims[0] > (hsize_t)BA_IMPORT_MAX_TRS ||
                            dims[1] > (hsize_t)BA_IMPORT_MAX_VOXELS))
            rc = ba_fail(err, BA_ERR_SHAPE, "%s:%s is [%llu, %llu]: implausible %s (at most "
                         "%lld TRs per story and %lld voxels)", cfg->bold_path, obj,
                         (unsigned long long)dims[0], (unsigned long long)dims[1],
                         dims[0] > (hsize_t)BA_IMPORT_MAX_TRS ? "TR count" : "voxel count",
                         BA_IMPORT_MAX_TRS, BA_IMPORT_MAX_VOXELS);
        if (rc != BA_OK) break;
        s->n_tr[k] = (long)dims[0];
        in->v = (long)dims[1];
        in->n += (long)dims[0];
        long words = 0;
        if (rc == BA_OK) rc = ba_features_story_words(&s->features, s->stories[k], &words, err);
        if (rc == BA_OK && words == 0)
            rc = ba_fail(err, BA_ERR_VALUE, "%s: story '%s' has no words", cfg->features_path,
                         s->stories[k]);
    }
    if (rc == BA_OK && (in->v <= 0 || in->n <= 0))
        rc = ba_fail(err, BA_ERR_SHAPE, "%s: no voxels or no TRs", cfg->bold_path);
    rc = ba_mpi_agree(comm, rc, err);
    if (rc != BA_OK) study_close(s);
    return rc;
}

static ba_status build_design(const ba_fit_config *cfg, study_inputs *s, fit_inputs *in,
                              ba_error *err)
{
    ba_status rc = BA_OK;
    long d = s->features.d_model, dl = d * cfg->n_layers;
    int slots[BA_MAX_LAYERS];
    for (int l = 0; l < cfg->n_layers; l++)
        BA_CHECK(ba_features_layer_slot(&s->features, cfg->layers[l], &slots[l], err));
    ba_design_options opt = cfg->design;
    opt.tr_s = s->tr_s;
    in->p = dl * opt.n_delays;
    in->n_stories = (long)s->n_stories;
    float *words = NULL, *layer = NULL, *trs = NULL;
    double *onset = NULL;
    char *block_nonzero = NULL; /* [n_delays]: column block k holds a nonzero */
    int any_feature = 0;        /* some TR feature is nonzero */
    size_t bytes = 0;
    /* Every size below comes from a file: n (TRs) x p (layers x width x delays). */
    BA_CHECK(ba_size_product(d, cfg->n_layers, sizeof(float), "word features [width, layers]",
                             &bytes, err));
    BA_CHECK(ba_size_product(dl, opt.n_delays, sizeof(float), "design columns [features, delays]",
                             &bytes, err));
    in->x = ba_alloc_array(in->n, in->p, sizeof(float), "design matrix X [TRs, columns]", err);
    if (!in->x) return err->code;
    in->story_bounds = ba_calloc(s->n_stories + 1, sizeof(long), "story bounds", err);
    block_nonzero = ba_calloc((size_t)opt.n_delays + 1, 1, "delay blocks", err);
    if (!in->story_bounds || !block_nonzero) { free(block_nonzero); return BA_ERR_NOMEM; }
    long row = 0;
    for (size_t k = 0; k < s->n_stories; k++) {
        const char *story = s->stories[k];
        long n_words = 0, n_tr = s->n_tr[k], dropped = 0;
        BA_TRY(ba_features_story_words(&s->features, story, &n_words, err), done);
        free(words); free(layer); free(trs); free(onset);
        words = layer = trs = NULL;
        onset = NULL;
#define ALLOC_CHECKED(ptr, a, b, what)                                            \
        do {                                                                     \
            (ptr) = ba_alloc_array((a), (b), sizeof *(ptr), (what), err);        \
            if (!(ptr)) { rc = err->code; goto done; }                           \
        } while (0)
        ALLOC_CHECKED(words, n_words, dl, "word features [words, columns]");
        ALLOC_CHECKED(layer, n_words, d, "word features [words, width]");
        ALLOC_CHECKED(trs, n_tr, dl, "TR features [TRs, columns]");
        ALLOC_CHECKED(onset, n_words, 1, "onsets [words]");
#undef ALLOC_CHECKED
        BA_TRY(ba_features_read_onsets(&s->features, story, onset, err), done);
        for (int l = 0; l < cfg->n_layers; l++) {  /* layers side by side */
            BA_TRY(ba_features_read_layer(&s->features, story, slots[l], layer, err), done);
            for (long w = 0; w < n_words; w++)
                memcpy(words + w * dl + l * d, layer + w * d, sizeof(float) * (size_t)d);
        }
        char label[1200];
        snprintf(label, sizeof label, "%s:/stories/%s (with %s)", cfg->bold_path, story,
                 cfg->features_path);
        BA_TRY(ba_words_to_trs(label, words, onset, n_words, dl, n_tr, &opt, trs, &dropped, err),
               done);
        ba_fir_delays(trs, n_tr, dl, opt.delays, opt.n_delays, in->x + row * in->p);
        for (size_t e = 0; !any_feature && e < (size_t)n_tr * (size_t)dl; e++)
            any_feature = trs[e] != 0;
        for (long t = 0; t < n_tr; t++)
            for (int j = 0; j < opt.n_delays; j++) {
                const float *blk = in->x + (row + t) * in->p + (long)j * dl;
                for (long c = 0; !block_nonzero[j] && c < dl; c++) block_nonzero[j] = blk[c] != 0;
            }
        in->story_bounds[k] = row;
        row += n_tr;
    }
    in->story_bounds[s->n_stories] = row;
    /* A column block that is zero everywhere although the words' features
     * are not: a delay longer than every story, not a property of the
     * stimuli. The ridge would fit it silently. */
    for (int j = 0; any_feature && j < opt.n_delays; j++)
        if (!block_nonzero[j]) {
            long longest = 0;
            for (size_t k = 0; k < s->n_stories; k++)
                if (s->n_tr[k] > longest) longest = s->n_tr[k];
            rc = ba_fail(err, BA_ERR_VALUE, "%s with %s: the design's column block of delay %d "
                         "TRs is all zero (the longest story has %ld TRs): choose shorter "
                         "--delays", cfg->features_path, cfg->bold_path, opt.delays[j], longest);
            break;
        }
done:
    free(words); free(layer); free(trs); free(onset);
    free(block_nonzero);
    return rc;
}

static ba_status read_bold_columns(const ba_fit_config *cfg, study_inputs *s,
                                   const ba_ridge_layout *L, fit_inputs *in, ba_error *err)
{
    long vloc = L->v_end - L->v_begin;
    in->y_local = ba_calloc((size_t)in->n * (size_t)(vloc ? vloc : 1), sizeof(float),
                            "BOLD block", err);
    if (!in->y_local) return BA_ERR_NOMEM;
    for (size_t k = 0; k < s->n_stories; k++) {
        char obj[1024];
        snprintf(obj, sizeof obj, "/stories/%s/data", s->stories[k]);
        hsize_t start[2] = {0, (hsize_t)L->v_begin}, count[2] = {(hsize_t)s->n_tr[k], (hsize_t)vloc};
        BA_CHECK(ba_h5_read_n(&s->bold, obj, BA_H5_F32, 2, start, count,
                              in->y_local + in->story_bounds[k] * vloc,
                              (size_t)s->n_tr[k] * (size_t)vloc, err));
    }
    (void)cfg;
    return BA_OK;
}

/* ------------------------------------------------------ the output */

/* Banded ridge, as ba_fit_run set it up (n_bands 0: plain ridge). */
typedef struct {
    ba_banded_options bo;
    double *candidates; /* [n_candidates][n_bands] */
    int n_candidates;
} fit_bands;

/* FNV-1a of the candidates' bits, for the configuration (and so the
 * checkpoint key). */
static unsigned long long candidates_hash(const fit_bands *B)
{
    unsigned long long h = 1469598103934665603ULL;
    const unsigned char *bytes = (const unsigned char *)B->candidates;
    size_t size = sizeof(double) * (size_t)B->n_candidates * (size_t)B->bo.n_bands;
    for (size_t i = 0; i < size; i++) h = (h ^ bytes[i]) * 1099511628211ULL;
    return h;
}

static void describe_config(const ba_fit_config *cfg, const fit_inputs *in,
                            const fit_bands *bands, char *buf, size_t size)
{
    size_t len = 0;
#define ADD(...) len += (size_t)snprintf(buf + len, len < size ? size - len : 0, __VA_ARGS__)
    ADD("{\"n_samples\": %ld, \"n_features\": %ld, \"n_voxels\": %ld, \"n_folds\": %d, ",
        in->n, in->p, in->v, cfg->ridge.n_folds);
    ADD("\"fold_kind\": \"%s\", \"alphas\": [", cfg->story_folds ? "story" : "kfold");
    for (int a = 0; a < cfg->ridge.n_alphas; a++) ADD("%s%.17g", a ? ", " : "", cfg->ridge.alphas[a]);
    ADD("], \"standardise_x\": true, \"centre_y\": true, \"alpha_selection\": \"efficient leave-one-out per voxel\"");
    if (cfg->features_path) {
        ADD(", \"layers\": [");
        for (int l = 0; l < cfg->n_layers; l++) ADD("%s%d", l ? ", " : "", cfg->layers[l]);
        ADD("], \"delays\": [");
        for (int k = 0; k < cfg->design.n_delays; k++) ADD("%s%d", k ? ", " : "", cfg->design.delays[k]);
        ADD("], \"aggregate\": \"%s\", \"tr_offset_s\": %g",
            cfg->design.aggregate == BA_AGGREGATE_MEAN ? "mean"
            : cfg->design.aggregate == BA_AGGREGATE_LANCZOS ? "lanczos" : "sum",
            cfg->design.tr_offset_s);
        if (cfg->stories) { /* the subset fitted (quotes and backslashes dropped) */
            ADD(", \"stories\": \"");
            for (const char *c = cfg->stories; *c; c++)
                if (*c != '"' && *c != '\\' && (unsigned char)*c >= 0x20) ADD("%c", *c);
            ADD("\"");
        }
    }
    ADD(", \"fold_gap\": %ld", cfg->ridge.fold_gap);
    if (bands && bands->bo.n_bands > 0) {
        ADD(", \"bands\": [");
        for (int b = 0; b < bands->bo.n_bands; b++)
            ADD("%s[%ld, %ld]", b ? ", " : "", bands->bo.band_begin[b], bands->bo.band_end[b]);
        ADD("], \"band_search\": \"%s\", \"band_alphas\": \"",
            cfg->band_weights_path ? "weights-file"
            : cfg->band_search ? cfg->band_search : "grid");
        for (const char *c = cfg->band_alphas_spec ? cfg->band_alphas_spec : ""; *c; c++)
            if (*c != '"' && *c != '\\') ADD("%c", *c);
        ADD("\"");
        if (cfg->band_weights_path) {
            ADD(", \"band_weights\": \"");
            for (const char *c = cfg->band_weights_path; *c; c++)
                if (*c != '"' && *c != '\\') ADD("%c", *c);
            ADD("\"");
        }
        if (cfg->has_seed) ADD(", \"seed\": %llu", cfg->seed);
        ADD(", \"n_candidates\": %d, \"candidates_fnv1a\": \"%016llx\"",
            bands->n_candidates, candidates_hash(bands));
        ADD(", \"band_ties\": \"%s\"", bands->bo.n_bands == 1
            ? "one band: the plain dense solver, ties re-ranked"
            : "NOT re-ranked: near-tied candidates keep the float32 choice");
    }
    ADD(", \"fold_groups\": %d, \"solver\": \"%s\"", cfg->ridge.fold_groups,
        cfg->solver == BA_FIT_SOLVER_PETSC ? "petsc"
        : bands && bands->bo.n_bands > 1 ? "banded" : "scalapack");
    if (cfg->solver != BA_FIT_SOLVER_PETSC) /* 0: off */
        ADD(", \"tie_tolerance\": %.17g", cfg->ridge.tie_tolerance);
    if (cfg->solver_options) { /* JSON string: PETSc options have no quotes or backslashes */
        ADD(", \"solver_options\": \"");
        for (const char *c = cfg->solver_options; *c; c++)
            if (*c != '"' && *c != '\\') ADD("%c", *c);
        ADD("\"");
    }
    ADD("}");
#undef ADD
}

/* Gather group 0's [mine] floats of every rank into all [v] on rank 0. */
static void gather_voxels(MPI_Comm comm, int mine, const float *local, float *all,
                          int *counts, int *displs)
{
    int rank = 0, size = 1;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    MPI_Gather(&mine, 1, MPI_INT, counts, 1, MPI_INT, 0, comm);
    if (rank == 0)
        for (int i = 1; i < size; i++) displs[i] = displs[i - 1] + counts[i - 1];
    MPI_Gatherv(local, mine, MPI_FLOAT, all, counts, displs, MPI_FLOAT, 0, comm);
}

/* The banded datasets of scores.h5 (fit.h) and the per-band region tables. */
static ba_status write_bands(const ba_fit_config *cfg, MPI_Comm comm, ba_h5file *f,
                             const ba_ridge_layout *L, const fit_inputs *in,
                             const ba_ridge_result *R, const fit_bands *bands,
                             const ba_banded_result *BR, ba_fit_summary *sum, ba_error *err)
{
    int rank = 0, size = 1;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    int B = bands->bo.n_bands, K = R->n_folds;
    long mine = L->group_index == 0 ? R->v_local : 0;
    ba_status rc = BA_OK;
    /* /band_alphas [K][v][B]: from the candidate numbers in /alpha (one
     * band: /alpha is the alpha). */
    float *ba = ba_calloc((size_t)K * (size_t)(mine ? mine : 1) * (size_t)B, sizeof(float),
                          "band alphas", err);
    rc = ba_mpi_agree(comm, ba ? BA_OK : BA_ERR_NOMEM, err);
    for (int k = 0; rc == BA_OK && k < K; k++)
        for (long j = 0; j < mine; j++) {
            float a = R->alpha[(size_t)k * R->v_local + j];
            for (int b = 0; b < B; b++) {
                float value = a;
                if (B > 1) {
                    long c = lroundf(a) - 1;
                    value = c >= 0 && c < bands->n_candidates
                                ? (float)bands->candidates[(size_t)c * B + b] : NAN;
                }
                ba[((size_t)k * mine + j) * B + b] = value;
            }
        }
    hsize_t adims[3] = {(hsize_t)K, (hsize_t)in->v, (hsize_t)B};
    hsize_t astart[3] = {0, (hsize_t)L->v_begin, 0};
    hsize_t acount[3] = {mine ? (hsize_t)K : 0, (hsize_t)mine, mine ? (hsize_t)B : 0};
    if (rc == BA_OK) rc = ba_h5_create_dataset(f, "/band_alphas", BA_H5_F32, 3, adims, err);
    if (rc == BA_OK) rc = ba_h5_write(f, "/band_alphas", BA_H5_F32, astart, acount, ba, err);
    free(ba);
    hsize_t cdims[2] = {(hsize_t)bands->n_candidates, (hsize_t)B};
    hsize_t cstart[2] = {0, 0};
    hsize_t ccount[2] = {rank == 0 ? (hsize_t)bands->n_candidates : 0, rank == 0 ? (hsize_t)B : 0};
    if (rc == BA_OK) rc = ba_h5_create_dataset(f, "/band_candidates", BA_H5_F64, 2, cdims, err);
    if (rc == BA_OK)
        rc = ba_h5_write(f, "/band_candidates", BA_H5_F64, cstart, ccount, bands->candidates, err);
    if (rc == BA_OK)
        rc = ba_h5_set_attr_str(f, "/", "band_ties", B == 1
            ? "one band: the plain dense solver, near-ties re-ranked in double"
            : "NOT re-ranked: near-tied candidates keep their float32 choice", err);
    if (rc == BA_OK && B == 1)
        return ba_h5_set_attr_str(f, "/", "band_r2_note", "one band: the plain dense solver "
                                  "ran (bitwise the plain fit); /band_r2 is not computed", err);
    if (rc != BA_OK) return rc;

    /* /band_r2 [B][v] */
    float *r2 = ba_calloc((size_t)B * (size_t)(mine ? mine : 1), sizeof(float), "band r2", err);
    rc = ba_mpi_agree(comm, r2 ? BA_OK : BA_ERR_NOMEM, err);
    for (int b = 0; rc == BA_OK && b < B; b++)
        for (long j = 0; j < mine; j++) r2[(size_t)b * mine + j] = BR->band_r2[(size_t)b * BR->v_local + j];
    hsize_t rdims[2] = {(hsize_t)B, (hsize_t)in->v}, rstart[2] = {0, (hsize_t)L->v_begin};
    hsize_t rcount[2] = {mine ? (hsize_t)B : 0, (hsize_t)mine};
    if (rc == BA_OK) rc = ba_h5_create_dataset(f, "/band_r2", BA_H5_F32, 2, rdims, err);
    if (rc == BA_OK) rc = ba_h5_write(f, "/band_r2", BA_H5_F32, rstart, rcount, r2, err);
    if (rc == BA_OK) rc = ba_h5_set_attr_str(f, "/band_r2", "formula",
        "per held-out fold, y and each band's prediction yhat_b = X_b w_b centred on the test "
        "rows, yhat = sum_b yhat_b: r2_b = (2 yhat_b.y - yhat_b.yhat) / y.y (sums over the "
        "test rows; sum_b r2_b = 1 - |y - yhat|^2 / |y|^2, himalaya's r2_score_split); mean "
        "over folds", err);
    long long computed = BR->n_folds_computed;
    if (rank == 0 && BR->n_folds_computed < K)
        fprintf(stderr, "fit: warning: /band_r2 is the mean over the %d folds computed in this "
                "run; the split r2 of the %d folds resumed from the checkpoint is not saved "
                "there (/band_r2 attribute n_folds)\n", BR->n_folds_computed,
                K - BR->n_folds_computed);
    if (rc == BA_OK) rc = ba_h5_set_attr_i64(f, "/band_r2", "n_folds", &computed, 1, err);

    /* Region tables per band: /roi/band_r2/{mean,median,sem} [B][n_regions]. */
    if (rc == BA_OK && cfg->atlas_path) {
        int nr = sum->atlas.n_regions;
        float *all = NULL;
        int *counts = NULL, *displs = NULL;
        double *cols[3] = {NULL, NULL, NULL};
        ba_status lrc = BA_OK;
        if (rank == 0) {
            all = ba_calloc((size_t)in->v, sizeof(float), "band r2", err);
            counts = ba_calloc((size_t)size, sizeof(int), "counts", err);
            displs = ba_calloc((size_t)size, sizeof(int), "counts", err);
            for (int c = 0; c < 3; c++)
                cols[c] = ba_calloc((size_t)B * (size_t)nr + 1, sizeof(double), "band tables", err);
            if (!all || !counts || !displs || !cols[0] || !cols[1] || !cols[2]) lrc = BA_ERR_NOMEM;
        }
        rc = ba_mpi_agree(comm, lrc, err);
        for (int b = 0; rc == BA_OK && b < B; b++) {
            gather_voxels(comm, (int)mine, r2 + (size_t)b * mine, all, counts, displs);
            ba_roi_table table = {0};
            lrc = rank == 0 ? ba_roi_table_compute(&sum->atlas, all, &table, err) : BA_OK;
            for (int g = 0; lrc == BA_OK && rank == 0 && g < nr; g++) {
                cols[0][(size_t)b * nr + g] = table.mean[g];
                cols[1][(size_t)b * nr + g] = table.median[g];
                cols[2][(size_t)b * nr + g] = table.sem[g];
            }
            if (rank == 0) ba_roi_table_free(&table);
            rc = ba_mpi_agree(comm, lrc, err);
        }
        const char *names[3] = {"/roi/band_r2/mean", "/roi/band_r2/median", "/roi/band_r2/sem"};
        hsize_t tdims[2] = {(hsize_t)B, (hsize_t)nr}, tstart[2] = {0, 0};
        hsize_t tcount[2] = {rank == 0 ? (hsize_t)B : 0, rank == 0 ? (hsize_t)nr : 0};
        for (int c = 0; rc == BA_OK && c < 3; c++) {
            rc = ba_h5_create_dataset(f, names[c], BA_H5_F64, 2, tdims, err);
            if (rc == BA_OK) rc = ba_h5_write(f, names[c], BA_H5_F64, tstart, tcount, cols[c], err);
        }
        free(all); free(counts); free(displs);
        for (int c = 0; c < 3; c++) free(cols[c]);
    }
    free(r2);
    return rc;
}

static ba_status write_scores(const ba_fit_config *cfg, MPI_Comm comm,
                              const ba_ridge_layout *L, const fit_inputs *in,
                              const ba_ridge_result *R, const fit_bands *bands,
                              const ba_banded_result *BR, const unsigned char *excluded,
                              ba_fit_summary *sum, ba_error *err)
{
    int rank = 0, size = 1;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    ba_status rc = BA_OK;
    /* Gather r on rank 0 (group 0 holds every voxel once). */
    float *r_all = NULL;
    int *counts = NULL, *displs = NULL, *roi_labels = NULL;
    int mine = L->group_index == 0 ? (int)R->v_local : 0;
    if (rank == 0) {
        r_all = ba_calloc((size_t)in->v, sizeof(float), "r", err);
        counts = ba_calloc((size_t)size, sizeof(int), "counts", err);
        displs = ba_calloc((size_t)size, sizeof(int), "counts", err);
        if (!r_all || !counts || !displs) rc = BA_ERR_NOMEM;
    }
    if (ba_mpi_agree(comm, rc, err) != BA_OK) goto done;
    MPI_Gather(&mine, 1, MPI_INT, counts, 1, MPI_INT, 0, comm);
    if (rank == 0)
        for (int i = 1; i < size; i++) displs[i] = displs[i - 1] + counts[i - 1];
    MPI_Gatherv(R->r, mine, MPI_FLOAT, r_all, counts, displs, MPI_FLOAT, 0, comm);
    double local[2] = {0, 0}, total[2] = {0, 0}; /* {sum of r, voxels} over kept voxels */
    for (long j = 0; j < mine; j++)
        if (!isnan(R->r[j])) { local[0] += R->r[j]; local[1] += 1; }
    MPI_Allreduce(local, total, 2, MPI_DOUBLE, MPI_SUM, comm);
    sum->mean_r = total[1] > 0 ? total[0] / total[1] : NAN;
    /* Region means leave the excluded voxels out: a copy of the atlas with
     * them unlabelled (rank 0). */
    ba_atlas roi_atlas = sum->atlas;
    if (rank == 0 && excluded && cfg->atlas_path && sum->atlas.labels) {
        roi_labels = ba_alloc_array(in->v, 1, sizeof *roi_labels, "atlas labels", err);
        if (!roi_labels) rc = BA_ERR_NOMEM;
        for (long v = 0; roi_labels && v < in->v; v++)
            roi_labels[v] = excluded[v] ? -1 : sum->atlas.labels[v];
        roi_atlas.labels = roi_labels;
    }
    if (ba_mpi_agree(comm, rc, err) != BA_OK) goto done;

    ba_h5file f;
    BA_TRY(ba_h5_create(&f, cfg->out_path, comm, err), done);
    int K = R->n_folds;
    hsize_t vdims[1] = {(hsize_t)in->v}, kdims[2] = {(hsize_t)K, (hsize_t)in->v};
    hsize_t vstart[1] = {(hsize_t)L->v_begin}, vcount[1] = {(hsize_t)mine};
    hsize_t kstart[2] = {0, (hsize_t)L->v_begin}, kcount[2] = {mine ? (hsize_t)K : 0, (hsize_t)mine};
    /* Every step is collective over comm: a failure on one rank is agreed
     * on before the next step, so that all ranks take the same path (and
     * abandon the file together) instead of waiting in different calls. */
#define STEP(call)                                                             \
    do {                                                                       \
        if (rc == BA_OK) rc = ba_mpi_agree(comm, (call), err);                 \
    } while (0)
    STEP(ba_h5_create_dataset(&f, "/r", BA_H5_F32, 1, vdims, err));
    STEP(ba_fault("fit.scores", err));
    STEP(ba_h5_write(&f, "/r", BA_H5_F32, vstart, vcount, R->r, err));
    STEP(ba_h5_create_dataset(&f, "/r_folds", BA_H5_F32, 2, kdims, err));
    STEP(ba_h5_write(&f, "/r_folds", BA_H5_F32, kstart, kcount, R->r_folds, err));
    STEP(ba_h5_create_dataset(&f, "/alpha", BA_H5_F32, 2, kdims, err));
    STEP(ba_h5_write(&f, "/alpha", BA_H5_F32, kstart, kcount, R->alpha, err));
    if (rc == BA_OK && cfg->atlas_path) {
        STEP(rank == 0 ? ba_roi_table_compute(&roi_atlas, r_all, &sum->roi, err) : BA_OK);
        int nr = sum->atlas.n_regions;
        hsize_t rdims[1] = {(hsize_t)nr};
        hsize_t st[1] = {0}, ct[1] = {rank == 0 ? (hsize_t)nr : 0};
        STEP(ba_h5_write_strings(&f, "/roi/name", sum->atlas.names, (size_t)nr, 0, err));
        STEP(ba_h5_create_dataset(&f, "/roi/n_voxels", BA_H5_I64, 1, rdims, err));
        long long *nv = NULL;
        if (rc == BA_OK) {
            nv = ba_calloc((size_t)nr + 1, sizeof *nv, "ROI counts", err);
            for (int g = 0; nv && rank == 0 && g < nr; g++) nv[g] = sum->roi.n_voxels[g];
        }
        STEP(nv ? ba_h5_write(&f, "/roi/n_voxels", BA_H5_I64, st, ct, nv, err) : BA_ERR_NOMEM);
        free(nv);
        const char *names[3] = {"/roi/mean_r", "/roi/median_r", "/roi/sem_r"};
        double *cols[3] = {sum->roi.mean, sum->roi.median, sum->roi.sem};
        for (int c = 0; rc == BA_OK && c < 3; c++) {
            STEP(ba_h5_create_dataset(&f, names[c], BA_H5_F64, 1, rdims, err));
            STEP(ba_h5_write(&f, names[c], BA_H5_F64, st, ct, cols[c], err));
        }
    }
    long long n_excl = 0;
    for (long v = 0; excluded && v < in->v; v++) n_excl += excluded[v] != 0;
    if (n_excl > 0) {
        hsize_t edims[1] = {(hsize_t)n_excl}, est[1] = {0}, ect[1] = {rank == 0 ? (hsize_t)n_excl : 0};
        long long *list = ba_calloc((size_t)n_excl, sizeof *list, "excluded voxels", err);
        long long e = 0;
        for (long v = 0; list && v < in->v; v++)
            if (excluded[v]) list[e++] = v;
        STEP(list ? BA_OK : BA_ERR_NOMEM);
        STEP(ba_h5_create_dataset(&f, "/excluded", BA_H5_I64, 1, edims, err));
        STEP(ba_h5_write(&f, "/excluded", BA_H5_I64, est, ect, list, err));
        free(list);
    }
    STEP(ba_h5_set_attr_i64(&f, "/", "n_excluded", &n_excl, 1, err));
    if (rc == BA_OK && bands->bo.n_bands > 0)
        rc = write_bands(cfg, comm, &f, L, in, R, bands, BR, sum, err);
    long long gap = cfg->ridge.fold_gap;
    if (rc == BA_OK) rc = ba_h5_set_attr_i64(&f, "/", "fold_gap", &gap, 1, err);
    char config[8192];
    describe_config(cfg, in, bands, config, sizeof config);
    char inputs[3 * BA_PATH_MAX];
    snprintf(inputs, sizeof inputs, "%s %s%s%s",
             cfg->features_path ? cfg->features_path : cfg->x_spec,
             cfg->bold_path ? cfg->bold_path : cfg->y_spec,
             cfg->atlas_path ? " " : "", cfg->atlas_path ? cfg->atlas_path : "");
    STEP(ba_h5_set_attr_str(&f, "/", "config", config, err));
    STEP(ba_h5_set_attr_str(&f, "/", "inputs", inputs, err));
    STEP(ba_h5_set_attr_str(&f, "/", "version", BRAINALIGN_VERSION, err));
    STEP(ba_h5_set_attr_str(&f, "/", "command", cfg->command_line ? cfg->command_line : "", err));
    if (cfg->study_config) STEP(ba_h5_set_attr_str(&f, "/", "study_config", cfg->study_config, err));
#undef STEP
    if (rc != BA_OK) ba_h5_abandon(&f);
    else rc = ba_h5_close(&f, err);
done:
    free(roi_labels);
    free(r_all);
    free(counts);
    free(displs);
    return rc;
}

/* ------------------------------------------------ excluded voxels */

/* Global columns [c0, c1) of Y, every row, into buf [n, c1 - c0]. */
static ba_status read_y_span(const ba_fit_config *cfg, study_inputs *s, ba_h5file *yf,
                             const char *ydset, const fit_inputs *in, long c0, long c1,
                             float *buf, ba_error *err)
{
    long w = c1 - c0;
    if (!s) {
        hsize_t start[2] = {0, (hsize_t)c0}, count[2] = {(hsize_t)in->n, (hsize_t)w};
        return ba_h5_read_n(yf, ydset, BA_H5_F32, 2, start, count, buf,
                            (size_t)in->n * (size_t)w, err);
    }
    for (size_t k = 0; k < s->n_stories; k++) {
        char obj[1024];
        snprintf(obj, sizeof obj, "/stories/%s/data", s->stories[k]);
        hsize_t start[2] = {0, (hsize_t)c0}, count[2] = {(hsize_t)s->n_tr[k], (hsize_t)w};
        BA_CHECK(ba_h5_read_n(&s->bold, obj, BA_H5_F32, 2, start, count,
                              buf + in->story_bounds[k] * w, (size_t)s->n_tr[k] * (size_t)w, err));
    }
    (void)cfg;
    return BA_OK;
}

/* Flags [v] (the same on every rank): 1 = left out of the solve. */
static ba_status find_excluded(const ba_fit_config *cfg, MPI_Comm comm, const ba_ridge_layout *L,
                               const fit_inputs *in, unsigned char **flags, long *n_excluded,
                               ba_error *err)
{
    *n_excluded = 0;
    unsigned char *mine = ba_calloc((size_t)in->v, 1, "excluded voxels", err);
    unsigned char *all = ba_calloc((size_t)in->v, 1, "excluded voxels", err);
    ba_status rc = mine && all ? BA_OK : BA_ERR_NOMEM;
    long vloc = L->v_end - L->v_begin;
    for (long j = 0; rc == BA_OK && j < vloc; j++) {
        bool constant = !cfg->strict_voxels, has_nan = false;
        float first = in->y_local[j];
        for (long i = 0; i < in->n; i++) {
            float y = in->y_local[i * vloc + j];
            if (isnan(y)) has_nan = true;
            if (y != first) constant = false;
        }
        if (isnan(first)) constant = false;
        mine[L->v_begin + j] = constant || (cfg->nan_as_missing && has_nan);
    }
    rc = ba_mpi_agree(comm, rc, err);
    if (rc == BA_OK) MPI_Allreduce(mine, all, (int)in->v, MPI_UNSIGNED_CHAR, MPI_MAX, comm);
    free(mine);
    for (long v = 0; rc == BA_OK && v < in->v; v++) *n_excluded += all[v];
    if (rc == BA_OK && *n_excluded == in->v)
        rc = ba_fail(err, BA_ERR_VALUE, "%s: every one of the %ld voxels is constant over the "
                     "samples%s: nothing to fit", cfg->bold_path ? cfg->bold_path : cfg->y_spec,
                     in->v, cfg->nan_as_missing ? " or has NaN samples" : "");
    if (rc != BA_OK) { free(all); return rc; }
    *flags = all;
    return BA_OK;
}

/* A layout over the kept voxels only, and this rank's kept columns of Y. */
static ba_status relayout_kept(const ba_fit_config *cfg, MPI_Comm comm, study_inputs *s,
                               ba_h5file *yf, const char *ydset, fit_inputs *in,
                               const long *kept, long n_kept, ba_ridge_layout *L, ba_error *err)
{
    ba_ridge_layout_destroy(L);
    BA_CHECK(ba_ridge_layout_create(comm, cfg->ridge.fold_groups, n_kept, L, err));
    long vloc = L->v_end - L->v_begin;
    ba_status rc = BA_OK;
    float *span = NULL, *y = ba_calloc((size_t)in->n * (size_t)(vloc ? vloc : 1), sizeof(float),
                                       "BOLD block (kept voxels)", err);
    if (!y) rc = BA_ERR_NOMEM;
    if (rc == BA_OK && vloc > 0) {
        long c0 = kept[L->v_begin], c1 = kept[L->v_end - 1] + 1, w = c1 - c0;
        span = ba_alloc_array(in->n, w, sizeof(float), "BOLD columns", err);
        rc = span ? read_y_span(cfg, s, yf, ydset, in, c0, c1, span, err) : BA_ERR_NOMEM;
        for (long i = 0; rc == BA_OK && i < in->n; i++)
            for (long j = 0; j < vloc; j++)
                y[i * vloc + j] = span[i * w + (kept[L->v_begin + j] - c0)];
    }
    free(span);
    rc = ba_mpi_agree(comm, rc, err);
    if (rc != BA_OK) { free(y); return rc; }
    free(in->y_local);
    in->y_local = y;
    return BA_OK;
}

/* The results over the kept voxels -> full [v] results on rank 0 (NaN for
 * the excluded), v_local = 0 elsewhere: what write_scores writes. */
static ba_status scatter_results(MPI_Comm comm, const ba_ridge_layout *L, const ba_ridge_result *R,
                                 const long *kept, long n_kept, long v, ba_ridge_result *full,
                                 ba_error *err)
{
    int rank = 0, size = 1;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    memset(full, 0, sizeof *full);
    full->n_folds = R->n_folds;
    full->n_folds_resumed = R->n_folds_resumed;
    full->timing = R->timing;
    int K = R->n_folds, mine = L->group_index == 0 ? (int)R->v_local : 0;
    ba_status rc = BA_OK;
    float *compact = NULL;
    int *counts = NULL, *displs = NULL;
    if (rank == 0) {
        full->v_local = v;
        full->r = ba_alloc_array(v, 1, sizeof(float), "r", err);
        full->r_folds = ba_alloc_array(K, v, sizeof(float), "r_folds", err);
        full->alpha = ba_alloc_array(K, v, sizeof(float), "alpha", err);
        compact = ba_alloc_array(n_kept, 1, sizeof(float), "kept results", err);
        counts = ba_calloc((size_t)size, sizeof(int), "counts", err);
        displs = ba_calloc((size_t)size, sizeof(int), "counts", err);
        if (!full->r || !full->r_folds || !full->alpha || !compact || !counts || !displs)
            rc = BA_ERR_NOMEM;
    }
    rc = ba_mpi_agree(comm, rc, err);
    if (rc == BA_OK) {
        MPI_Gather(&mine, 1, MPI_INT, counts, 1, MPI_INT, 0, comm);
        if (rank == 0)
            for (int i = 1; i < size; i++) displs[i] = displs[i - 1] + counts[i - 1];
        /* 1 + 2K vectors: r, then r_folds[k] and alpha[k] for every fold. */
        for (int q = 0; q < 1 + 2 * K; q++) {
            const float *src = q == 0 ? R->r
                               : q <= K ? R->r_folds + (size_t)(q - 1) * R->v_local
                                        : R->alpha + (size_t)(q - 1 - K) * R->v_local;
            float *dst = q == 0 ? full->r
                         : q <= K ? full->r_folds + (size_t)(q - 1) * v
                                  : full->alpha + (size_t)(q - 1 - K) * v;
            MPI_Gatherv(src, mine, MPI_FLOAT, compact, counts, displs, MPI_FLOAT, 0, comm);
            if (rank != 0) continue;
            for (long c = 0; c < v; c++) dst[c] = NAN;
            for (long k = 0; k < n_kept; k++) dst[kept[k]] = compact[k];
        }
    }
    free(compact);
    free(counts);
    free(displs);
    if (rc != BA_OK) ba_ridge_result_free(full);
    return rc;
}

/* ------------------------------------------------------ the stage */

static ba_status check_config(const ba_fit_config *cfg, ba_error *err)
{
    bool matrix = cfg->x_spec || cfg->y_spec, study = cfg->features_path || cfg->bold_path;
    if (matrix == study)
        return ba_fail(err, BA_ERR_USAGE,
                       "give either --x and --y, or --features and --bold");
    if (matrix && (!cfg->x_spec || !cfg->y_spec))
        return ba_fail(err, BA_ERR_USAGE, "--x and --y go together");
    if (study && (!cfg->features_path || !cfg->bold_path))
        return ba_fail(err, BA_ERR_USAGE, "--features and --bold go together");
    if (study && cfg->n_layers < 1)
        return ba_fail(err, BA_ERR_USAGE, "choose at least one layer (--layer)");
    if (matrix && cfg->story_folds)
        return ba_fail(err, BA_ERR_USAGE, "--story-folds needs --features and --bold");
    if (!cfg->out_path) return ba_fail(err, BA_ERR_USAGE, "--out is required");
    if (cfg->ridge.fold_gap < 0)
        return ba_fail(err, BA_ERR_USAGE, "--fold-gap %ld must be >= 0", cfg->ridge.fold_gap);
    bool band_options = cfg->band_alphas_spec || cfg->band_search || cfg->band_weights_path;
    if (band_options && !cfg->bands_spec)
        return ba_fail(err, BA_ERR_USAGE,
                       "--band-alphas, --band-search and --band-weights need --bands");
    if (cfg->bands_spec && cfg->solver == BA_FIT_SOLVER_PETSC)
        return ba_fail(err, BA_ERR_USAGE, "--bands runs the banded solver; it does not combine "
                       "with --solver petsc");
    return BA_OK;
}

ba_status ba_fit_run(const ba_fit_config *cfg, MPI_Comm comm, ba_fit_summary *sum,
                     ba_error *err)
{
    memset(sum, 0, sizeof *sum);
    double t0 = ba_now();
    BA_CHECK(ba_mpi_agree(comm, check_config(cfg, err), err));
    /* Before any work: the output writable and not another run's (outfile.h). */
    int lock_rank = 0;
    MPI_Comm_rank(comm, &lock_rank);
    ba_output_lock lock = {0};
    BA_CHECK(ba_mpi_agree(comm, lock_rank == 0 ? ba_output_begin(cfg->out_path, false, &lock, err)
                                               : BA_OK, err));
    ba_status rc = BA_OK;
    fit_inputs in = {0};
    ba_h5file xf = {.id = H5I_INVALID_HID}, yf = {.id = H5I_INVALID_HID};
    char ydset[512] = "";
    study_inputs study = {0};
    bool study_mode = cfg->features_path != NULL;
    ba_ridge_layout L = {.group = MPI_COMM_NULL, .across = MPI_COMM_NULL};
    ba_ridge_result R = {0};
    ba_ridge_options ropt = cfg->ridge;
    long fold_bounds[BA_MAX_ALPHAS + 1];
    fit_bands bands = {0};
    ba_banded_result BR = {0};
    unsigned char *excluded = NULL; /* [v] 1 = left out of the solve */
    long *kept = NULL, n_kept = 0;  /* [n_kept] the other voxels, ascending */

    if (study_mode) {
        BA_TRY(study_open(cfg, comm, &study, &in, err), done);
        rc = build_design(cfg, &study, &in, err);
        BA_TRY(ba_mpi_agree(comm, rc, err), done);
    } else {
        BA_TRY(matrix_shapes(cfg, comm, &xf, &yf, ydset, &in, err), done);
        in.xfile = &xf;
    }
    if (cfg->bands_spec) { /* every rank alike: no communication */
        rc = ba_fit_parse_bands(cfg->bands_spec, in.p, &bands.bo, err);
        if (rc == BA_OK)
            rc = ba_fit_band_candidates(cfg, bands.bo.n_bands, &bands.candidates,
                                        &bands.n_candidates, err);
        BA_TRY(ba_mpi_agree(comm, rc, err), done);
        bands.bo.candidates = bands.candidates;
        bands.bo.n_candidates = bands.n_candidates;
    }
    if (cfg->atlas_path) BA_TRY(ba_atlas_read(cfg->atlas_path, comm, in.v, &sum->atlas, err), done);
    BA_TRY(ba_ridge_layout_create(comm, cfg->ridge.fold_groups, in.v, &L, err), done);

    long vloc = L.v_end - L.v_begin;
    if (study_mode) {
        rc = read_bold_columns(cfg, &study, &L, &in, err);
        rc = ba_mpi_agree(comm, rc, err);
        if (rc == BA_OK) rc = check_bold_finite(cfg, &study, &L, &in, comm, err);
    } else {
        in.y_local = ba_calloc((size_t)in.n * (size_t)(vloc ? vloc : 1), sizeof(float), "Y block", err);
        hsize_t start[2] = {0, (hsize_t)L.v_begin}, count[2] = {(hsize_t)in.n, (hsize_t)vloc};
        rc = in.y_local ? ba_h5_read_n(&yf, ydset, BA_H5_F32, 2, start, count, in.y_local,
                                       (size_t)in.n * (size_t)vloc, err) : BA_ERR_NOMEM;
    }
    if (rc == BA_OK && cfg->story_folds) {
        if (ropt.n_folds > BA_MAX_ALPHAS)
            rc = ba_fail(err, BA_ERR_USAGE, "at most %d story folds", BA_MAX_ALPHAS);
        else
            rc = ba_story_fold_bounds(in.story_bounds, (int)in.n_stories, ropt.n_folds, fold_bounds, err);
        ropt.fold_bounds = fold_bounds;
    }
    BA_TRY(ba_mpi_agree(comm, rc, err), done);
    /* Voxels left out of the solve: the ridge sees only the others. */
    BA_TRY(find_excluded(cfg, comm, &L, &in, &excluded, &sum->n_excluded, err), done);
    if (sum->n_excluded > 0 && bands.bo.n_bands > 0) {
        /* The band results (/band_alphas, /band_r2) are not yet scattered back
         * to the full voxel set: refuse rather than write them misplaced. */
        rc = ba_fail(err, BA_ERR_USAGE,
                     "%ld voxels are constant over the samples (or NaN with --nan-as-missing): "
                     "banded ridge does not leave voxels out yet; remove them or use "
                     "--strict-voxels", sum->n_excluded);
        goto done;
    }
    if (sum->n_excluded > 0) {
        n_kept = in.v - sum->n_excluded;
        BA_ALLOC(kept, (size_t)n_kept, "kept voxels", done);
        for (long v = 0, k = 0; v < in.v; v++)
            if (!excluded[v]) kept[k++] = v;
        BA_TRY(relayout_kept(cfg, comm, study_mode ? &study : NULL, &yf, ydset, &in, kept,
                             n_kept, &L, err), done);
    }
    sum->seconds_io = ba_now() - t0;

    /* Restart: finished folds go to <out>.checkpoint.h5, keyed by the inputs
     * (paths and a digest of their bytes: a file replaced by another of the
     * same size and modification time, `cp -p` or `rsync -t`, is another
     * input) and the whole configuration. Rank 0 reads the files, every
     * rank gets the same key. */
    char checkpoint[BA_PATH_MAX + 32], key[16384];
    snprintf(checkpoint, sizeof checkpoint, "%s.checkpoint.h5", cfg->out_path);
    describe_config(cfg, &in, &bands, key, sizeof key / 2);
    const char *inputs[4] = {study_mode ? cfg->features_path : cfg->x_spec,
                             study_mode ? cfg->bold_path : cfg->y_spec, NULL, NULL};
    for (int i = 0; i < 2; i++) {
        char file[BA_PATH_MAX];
        snprintf(file, sizeof file, "%s", inputs[i]);
        char *colon = study_mode ? NULL : strrchr(file, ':');
        if (colon) *colon = '\0';
        unsigned long long digest[2] = {0, 0}; /* {FNV-1a of the bytes, bytes} */
        int me = 0;
        MPI_Comm_rank(comm, &me);
        ba_error ignored;
        uint64_t h = BA_FNV1A_OFFSET;
        if (me == 0 && ba_hash_file(file, 0, &h, &digest[1], &ignored) == BA_OK)
            digest[0] = h;
        else
            digest[0] = digest[1] = 0; /* unreadable now: never matches a saved key */
        MPI_Bcast(digest, 2, MPI_UNSIGNED_LONG_LONG, 0, comm);
        size_t len = strlen(key);
        snprintf(key + len, sizeof key - len, " input=%s bytes=%llu fnv1a64=%016llx", inputs[i],
                 digest[1], digest[0]);
    }
    if (!cfg->no_checkpoint) {
        ropt.checkpoint_path = checkpoint;
        ropt.checkpoint_key = key;
    }
    ropt.stop_requested = cfg->stop_requested;
    ba_ridge_data D = {in.n, in.p, study_mode ? read_rows_from_memory : read_rows_from_file,
                       &in, in.y_local};
    if (bands.bo.n_bands == 1) {
        /* One band is plain ridge: the dense solver over its grid, so that
         * it reproduces `fit --alphas` bitwise. */
        ropt.alphas = bands.candidates;
        ropt.n_alphas = bands.n_candidates;
    }
    if (bands.bo.n_bands > 1)
        rc = ba_ridge_cv_banded(&L, &D, &ropt, &bands.bo, &R, &BR, err);
    else
        rc = cfg->solver == BA_FIT_SOLVER_PETSC ? ba_ridge_cv_petsc(&L, &D, &ropt, &R, err)
                                                : ba_ridge_cv(&L, &D, &ropt, &R, err);
    if (rc != BA_OK) {
        /* The engine marks a bad X or Y (err->about); name the file. */
        if (err->about == BA_ABOUT_X)
            ba_context(err, "%s", study_mode ? cfg->features_path : cfg->x_spec);
        else if (err->about == BA_ABOUT_Y)
            ba_context(err, "%s", study_mode ? cfg->bold_path : cfg->y_spec);
        goto done;
    }
    sum->n_samples = in.n;
    sum->n_features = in.p;
    sum->n_voxels = in.v;
    sum->n_folds = ropt.n_folds;
    sum->timing = R.timing;
    sum->n_bands = bands.bo.n_bands;
    sum->n_candidates = bands.n_candidates;
    if (sum->n_excluded > 0) {
        ba_ridge_result full;
        BA_TRY(scatter_results(comm, &L, &R, kept, n_kept, in.v, &full, err), done);
        ba_ridge_layout whole = L;
        whole.v_begin = 0;
        whole.group_index = 0;
        rc = write_scores(cfg, comm, &whole, &in, &full, &bands, &BR, excluded, sum, err);
        ba_ridge_result_free(&full);
        BA_TRY(rc, done);
    } else {
        BA_TRY(write_scores(cfg, comm, &L, &in, &R, &bands, &BR, NULL, sum, err), done);
    }
    sum->n_folds_resumed = R.n_folds_resumed;
    /* The scores are safely in place: the checkpoint has served. */
    int me = 0;
    MPI_Comm_rank(comm, &me);
    if (ropt.checkpoint_path && me == 0) unlink(checkpoint);
    sum->seconds_total = ba_now() - t0;
done:
    ba_output_end(&lock);
    ba_ridge_result_free(&R);
    ba_banded_result_free(&BR);
    free(bands.candidates);
    ba_ridge_layout_destroy(&L);
    if (xf.id > 0) ba_h5_abandon(&xf);
    if (yf.id > 0) ba_h5_abandon(&yf);
    study_close(&study);
    free(in.x);
    free(in.y_local);
    free(in.story_bounds);
    free(excluded);
    free(kept);
    if (rc != BA_OK) ba_fit_summary_free(sum);
    return rc;
}

void ba_fit_summary_free(ba_fit_summary *sum)
{
    ba_roi_table_free(&sum->roi);
    ba_atlas_free(&sum->atlas);
}

ba_status ba_fit_export_design(const ba_fit_config *cfg, MPI_Comm comm, const char *out_path,
                               ba_error *err)
{
    if (!cfg->features_path || !cfg->bold_path || cfg->n_layers < 1)
        return ba_fail(err, BA_ERR_USAGE, "the design needs --features, --bold and --layer");
    fit_inputs in = {0};
    study_inputs study = {0};
    BA_CHECK(study_open(cfg, comm, &study, &in, err));
    ba_status rc = ba_mpi_agree(comm, build_design(cfg, &study, &in, err), err);
    ba_h5file f = {.id = H5I_INVALID_HID};
    if (rc == BA_OK) rc = ba_h5_create(&f, out_path, comm, err);
    if (rc == BA_OK) {
        hsize_t xdims[2] = {(hsize_t)in.n, (hsize_t)in.p}, sdims[1] = {(hsize_t)in.n_stories + 1};
        long long *bounds = ba_calloc((size_t)in.n_stories + 1, sizeof *bounds, "bounds", err);
        rc = bounds ? BA_OK : BA_ERR_NOMEM;
        for (long k = 0; bounds && k <= in.n_stories; k++) bounds[k] = in.story_bounds[k];
        if (rc == BA_OK) rc = ba_h5_write_all(&f, "/X", BA_H5_F32, 2, xdims, in.x, err);
        if (rc == BA_OK) rc = ba_h5_write_all(&f, "/story_bounds", BA_H5_I64, 1, sdims, bounds, err);
        if (rc == BA_OK) rc = ba_h5_write_strings(&f, "/stories", study.stories, study.n_stories, 0, err);
        if (rc == BA_OK && cfg->command_line) rc = ba_h5_set_attr_str(&f, "/", "command", cfg->command_line, err);
        free(bounds);
        if (rc == BA_OK) rc = ba_h5_close(&f, err);
        else ba_h5_abandon(&f);
    }
    study_close(&study);
    free(in.x);
    free(in.story_bounds);
    return rc;
}
