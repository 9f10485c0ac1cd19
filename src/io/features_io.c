/* features_io.c — features.h5 reading and writing (see features_io.h). */
#include "brainalign/io/features_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/core/alloc.h"
#include "brainalign/parallel/parallel.h"

#define OBJ(buf, story, leaf) snprintf(buf, sizeof buf, "/stories/%s/%s", story, leaf)

typedef struct {
    long long n_words, d_model, n_layers, owner;
} story_shape;

/* Every rank learns every story's shape and owner. */
static ba_status gather_shapes(MPI_Comm comm, char *const *all_names, size_t n_all,
                               const ba_story_features *mine, size_t n_mine,
                               story_shape *shapes, ba_error *err)
{
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    for (size_t s = 0; s < n_all; s++) shapes[s] = (story_shape){0, 0, 0, -1};
    for (size_t m = 0; m < n_mine; m++) {
        size_t s = 0;
        while (s < n_all && strcmp(all_names[s], mine[m].name) != 0) s++;
        if (s == n_all)
            return ba_fail(err, BA_ERR_INTERNAL, "story %s is not in the story list",
                           mine[m].name);
        shapes[s] = (story_shape){mine[m].n_words, mine[m].d_model, mine[m].n_layers, rank};
    }
    BA_CHECK(ba_mpi_check(MPI_Allreduce(MPI_IN_PLACE, shapes, (int)(4 * n_all),
                                        MPI_LONG_LONG, MPI_MAX, comm), "story shapes", err));
    for (size_t s = 0; s < n_all; s++)
        if (shapes[s].owner < 0)
            return ba_fail(err, BA_ERR_INTERNAL, "no rank computed story %s", all_names[s]);
    return BA_OK;
}

ba_status ba_features_write(const char *path, MPI_Comm comm, const ba_features_meta *meta,
                            char *const *all_names, size_t n_all,
                            const ba_story_features *mine, size_t n_mine, ba_error *err)
{
    ba_status rc = BA_OK;
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    story_shape *shapes = ba_calloc(n_all ? n_all : 1, sizeof *shapes, "story shapes", err);
    rc = shapes ? gather_shapes(comm, all_names, n_all, mine, n_mine, shapes, err)
                : BA_ERR_NOMEM;
    if (ba_mpi_agree(comm, rc, err) != BA_OK) { free(shapes); return err->code; }

    ba_h5file f;
    rc = ba_h5_create(&f, path, comm, err);
    if (rc != BA_OK) { free(shapes); return rc; }
    char obj[1024];
    /* Collective: create every dataset, set every attribute. */
    for (size_t s = 0; rc == BA_OK && s < n_all; s++) {
        const story_shape *sh = &shapes[s];
        hsize_t hdims[3] = {(hsize_t)sh->n_layers, (hsize_t)sh->n_words, (hsize_t)sh->d_model};
        hsize_t wdims[1] = {(hsize_t)sh->n_words};
        OBJ(obj, all_names[s], "hidden");
        rc = ba_h5_create_dataset(&f, obj, BA_H5_F32, 3, hdims, err);
        if (rc == BA_OK) { OBJ(obj, all_names[s], "surprisal"); rc = ba_h5_create_dataset(&f, obj, BA_H5_F32, 1, wdims, err); }
        if (rc == BA_OK) { OBJ(obj, all_names[s], "onset"); rc = ba_h5_create_dataset(&f, obj, BA_H5_F64, 1, wdims, err); }
        if (rc == BA_OK) { OBJ(obj, all_names[s], "offset"); rc = ba_h5_create_dataset(&f, obj, BA_H5_F64, 1, wdims, err); }
        const ba_story_features *own = NULL;
        for (size_t m = 0; m < n_mine; m++)
            if (strcmp(mine[m].name, all_names[s]) == 0) own = &mine[m];
        if (rc == BA_OK) {
            OBJ(obj, all_names[s], "word");
            rc = ba_h5_write_strings(&f, obj, own ? own->words : NULL,
                                     own ? (size_t)own->n_words : 0, (int)sh->owner, err);
        }
        /* The layers attribute: broadcast from the owner. */
        long long layers[256] = {0};
        if (own)
            for (int l = 0; l < own->n_layers && l < 256; l++) layers[l] = own->layers[l];
        MPI_Bcast(layers, 256, MPI_LONG_LONG, (int)sh->owner, comm);
        if (rc == BA_OK) {
            OBJ(obj, all_names[s], "hidden");
            rc = ba_h5_set_attr_i64(&f, obj, "layers", layers, (size_t)sh->n_layers, err);
        }
    }
    /* Independent: each owner writes its own stories. */
    ba_status mine_rc = BA_OK;
    for (size_t m = 0; rc == BA_OK && mine_rc == BA_OK && m < n_mine; m++) {
        const ba_story_features *st = &mine[m];
        hsize_t start[3] = {0, 0, 0};
        hsize_t hcount[3] = {(hsize_t)st->n_layers, (hsize_t)st->n_words, (hsize_t)st->d_model};
        hsize_t wcount[1] = {(hsize_t)st->n_words};
        OBJ(obj, st->name, "hidden");
        mine_rc = ba_h5_write_independent(&f, obj, BA_H5_F32, start, hcount, st->hidden, err);
        if (mine_rc == BA_OK) { OBJ(obj, st->name, "surprisal"); mine_rc = ba_h5_write_independent(&f, obj, BA_H5_F32, start, wcount, st->surprisal, err); }
        if (mine_rc == BA_OK) { OBJ(obj, st->name, "onset"); mine_rc = ba_h5_write_independent(&f, obj, BA_H5_F64, start, wcount, st->onset, err); }
        if (mine_rc == BA_OK) { OBJ(obj, st->name, "offset"); mine_rc = ba_h5_write_independent(&f, obj, BA_H5_F64, start, wcount, st->offset, err); }
    }
    if (rc == BA_OK) rc = ba_mpi_agree(comm, mine_rc, err);
    long long ctx = meta->context_length;
    if (rc == BA_OK) rc = ba_h5_set_attr_str(&f, "/", "model_type", meta->model_type, err);
    if (rc == BA_OK) rc = ba_h5_set_attr_str(&f, "/", "checkpoint", meta->checkpoint, err);
    if (rc == BA_OK) rc = ba_h5_set_attr_i64(&f, "/", "context_length", &ctx, 1, err);
    if (rc == BA_OK) rc = ba_h5_set_attr_str(&f, "/", "condition", meta->condition, err);
    if (rc == BA_OK) rc = ba_h5_set_attr_str(&f, "/", "version", BRAINALIGN_VERSION, err);
    if (rc == BA_OK) rc = ba_h5_set_attr_str(&f, "/", "command", meta->command, err);
    free(shapes);
    if (rc != BA_OK) { ba_h5_abandon(&f); return rc; }
    return ba_h5_close(&f, err);
}

/* ---- writing in pieces ------------------------------------------------------- */

static void writer_free(ba_features_writer *w)
{
    free(w->names);
    free(w->n_words);
    w->names = NULL;
    w->n_words = NULL;
    w->n_stories = 0;
}

static ba_status writer_copy_names(ba_features_writer *w, const ba_features_story_info *stories,
                                   size_t n, ba_error *err)
{
    w->names = ba_calloc(n ? n : 1, sizeof *w->names, "story names", err);
    w->n_words = ba_calloc(n ? n : 1, sizeof *w->n_words, "story lengths", err);
    if (!w->names || !w->n_words) return BA_ERR_NOMEM;
    for (size_t s = 0; s < n; s++) {
        if (strlen(stories[s].name) >= sizeof w->names[s] || strchr(stories[s].name, '/'))
            return ba_fail(err, BA_ERR_VALUE, "story name '%.60s...' is too long or holds a '/'",
                           stories[s].name);
        if (stories[s].n_words < 0)
            return ba_fail(err, BA_ERR_INTERNAL, "story %s: negative word count",
                           stories[s].name);
        snprintf(w->names[s], sizeof w->names[s], "%s", stories[s].name);
        w->n_words[s] = stories[s].n_words;
    }
    w->n_stories = n;
    return BA_OK;
}

/* Collective: one story's datasets, its words, onsets and offsets. */
static ba_status writer_story(ba_features_writer *w, const ba_features_story_info *st,
                              const long long *layers, ba_error *err)
{
    int rank = 0;
    MPI_Comm_rank(w->file.comm, &rank);
    char obj[1024];
    hsize_t hdims[3] = {(hsize_t)w->n_layers, (hsize_t)st->n_words, (hsize_t)w->d_model};
    hsize_t wdims[1] = {(hsize_t)st->n_words}, none[1] = {0}, start[1] = {0};
    OBJ(obj, st->name, "hidden");
    BA_CHECK(ba_h5_create_dataset(&w->file, obj, BA_H5_F32, 3, hdims, err));
    BA_CHECK(ba_h5_set_attr_i64(&w->file, obj, "layers", layers, (size_t)w->n_layers, err));
    OBJ(obj, st->name, "surprisal");
    BA_CHECK(ba_h5_create_dataset(&w->file, obj, BA_H5_F32, 1, wdims, err));
    OBJ(obj, st->name, "onset");
    BA_CHECK(ba_h5_create_dataset(&w->file, obj, BA_H5_F64, 1, wdims, err));
    BA_CHECK(ba_h5_write(&w->file, obj, BA_H5_F64, start, rank == 0 ? wdims : none,
                         st->onset, err));
    OBJ(obj, st->name, "offset");
    BA_CHECK(ba_h5_create_dataset(&w->file, obj, BA_H5_F64, 1, wdims, err));
    BA_CHECK(ba_h5_write(&w->file, obj, BA_H5_F64, start, rank == 0 ? wdims : none,
                         st->offset, err));
    OBJ(obj, st->name, "word");
    return ba_h5_write_strings(&w->file, obj, st->words, (size_t)st->n_words, 0, err);
}

ba_status ba_features_writer_begin(ba_features_writer *w, const char *path, MPI_Comm comm,
                                   const ba_features_meta *meta, const int *layers,
                                   int n_layers, long d_model,
                                   const ba_features_story_info *stories, size_t n_stories,
                                   ba_error *err)
{
    memset(w, 0, sizeof *w);
    w->file.id = H5I_INVALID_HID;
    w->n_layers = n_layers;
    w->d_model = d_model;
    ba_status rc = BA_OK;
    long long *layer_ids = ba_calloc(n_layers > 0 ? (size_t)n_layers : 1, sizeof *layer_ids,
                                     "layer list", err);
    if (!layer_ids) rc = BA_ERR_NOMEM;
    if (rc == BA_OK && (n_layers < 1 || d_model < 1))
        rc = ba_fail(err, BA_ERR_INTERNAL, "%s: %d layers of width %ld", path, n_layers,
                     d_model);
    for (int l = 0; rc == BA_OK && l < n_layers; l++) layer_ids[l] = layers[l];
    if (rc == BA_OK) rc = writer_copy_names(w, stories, n_stories, err);
    if (ba_mpi_agree(comm, rc, err) != BA_OK) {
        free(layer_ids);
        writer_free(w);
        return err->code;
    }
    rc = ba_h5_create(&w->file, path, comm, err);
    if (rc != BA_OK) {
        free(layer_ids);
        writer_free(w);
        return rc;
    }
    for (size_t s = 0; rc == BA_OK && s < n_stories; s++)
        rc = writer_story(w, &stories[s], layer_ids, err);
    long long ctx = meta->context_length;
    if (rc == BA_OK) rc = ba_h5_set_attr_str(&w->file, "/", "model_type", meta->model_type, err);
    if (rc == BA_OK) rc = ba_h5_set_attr_str(&w->file, "/", "checkpoint", meta->checkpoint, err);
    if (rc == BA_OK) rc = ba_h5_set_attr_i64(&w->file, "/", "context_length", &ctx, 1, err);
    if (rc == BA_OK) rc = ba_h5_set_attr_str(&w->file, "/", "condition", meta->condition, err);
    if (rc == BA_OK) rc = ba_h5_set_attr_str(&w->file, "/", "version", BRAINALIGN_VERSION, err);
    if (rc == BA_OK) rc = ba_h5_set_attr_str(&w->file, "/", "command", meta->command, err);
    free(layer_ids);
    if (rc != BA_OK) {
        ba_h5_abandon(&w->file);
        writer_free(w);
    }
    return rc;
}

static ba_status writer_check_rows(const ba_features_writer *w, size_t story, long word0,
                                   long n, ba_error *err)
{
    if (story >= w->n_stories || word0 < 0 || n < 0 || word0 + n > w->n_words[story])
        return ba_fail(err, BA_ERR_INTERNAL, "%s: rows [%ld, %ld) of story #%zu are outside "
                       "the file", w->file.path, word0, word0 + n, story);
    return BA_OK;
}

ba_status ba_features_writer_put_hidden(ba_features_writer *w, size_t story, long word0,
                                        long n, const float *hidden, ba_error *err)
{
    BA_CHECK(writer_check_rows(w, story, word0, n, err));
    if (n == 0) return BA_OK;
    char obj[1024];
    OBJ(obj, w->names[story], "hidden");
    hsize_t start[3] = {0, (hsize_t)word0, 0};
    hsize_t count[3] = {(hsize_t)w->n_layers, (hsize_t)n, (hsize_t)w->d_model};
    return ba_h5_write_independent(&w->file, obj, BA_H5_F32, start, count, hidden, err);
}

ba_status ba_features_writer_put_surprisal(ba_features_writer *w, size_t story, long word0,
                                           long n, const float *surprisal, ba_error *err)
{
    BA_CHECK(writer_check_rows(w, story, word0, n, err));
    if (n == 0) return BA_OK;
    char obj[1024];
    OBJ(obj, w->names[story], "surprisal");
    hsize_t start[1] = {(hsize_t)word0}, count[1] = {(hsize_t)n};
    return ba_h5_write_independent(&w->file, obj, BA_H5_F32, start, count, surprisal, err);
}

ba_status ba_features_writer_end(ba_features_writer *w, ba_status rc, ba_error *err)
{
    rc = ba_mpi_agree(w->file.comm, rc, err);
    if (rc == BA_OK) rc = ba_h5_close(&w->file, err);
    else ba_h5_abandon(&w->file);
    writer_free(w);
    return rc;
}

/* One story's datasets checked against each other before anything is read:
 * hidden [n_layers, n_words, d_model] like the first story's, onset, offset,
 * surprisal and word all rank 1 of n_words entries, and a `layers`
 * attribute equal to the first story's. */
static ba_status check_story(ba_features_file *ff, const char *story, bool first,
                             ba_error *err)
{
    const char *path = ff->file.path;
    char obj[1024];
    int rank = 0;
    hsize_t dims[BA_H5_MAX_RANK];
    OBJ(obj, story, "hidden");
    BA_CHECK(ba_h5_shape(&ff->file, obj, 3, &rank, dims, err));
    if (dims[0] < 1 || dims[0] > BA_FEATURES_FILE_MAX_LAYERS || dims[2] < 1 ||
        dims[2] > BA_FEATURES_MAX_WIDTH || dims[1] > BA_FEATURES_MAX_WORDS)
        return ba_fail(err, BA_ERR_SHAPE, "%s:%s is [%llu, %llu, %llu]: expected 1..%d "
                       "layers, at most %lld words and a width of 1..%lld", path, obj,
                       (unsigned long long)dims[0], (unsigned long long)dims[1],
                       (unsigned long long)dims[2], BA_FEATURES_FILE_MAX_LAYERS,
                       (long long)BA_FEATURES_MAX_WORDS, (long long)BA_FEATURES_MAX_WIDTH);
    if (!first && ((int)dims[0] != ff->n_layers || (long)dims[2] != ff->d_model))
        return ba_fail(err, BA_ERR_SHAPE,
                       "%s:%s has %llu layers of width %llu, the first story %d of width %ld",
                       path, obj, (unsigned long long)dims[0], (unsigned long long)dims[2],
                       ff->n_layers, ff->d_model);
    hsize_t n_words = dims[1];
    long long layers[BA_FEATURES_FILE_MAX_LAYERS];
    BA_CHECK(ba_h5_get_attr_i64(&ff->file, obj, "layers", layers, (size_t)dims[0], err));
    for (hsize_t l = 0; l < dims[0]; l++) {
        if (layers[l] < 0 || layers[l] > BA_FEATURES_MAX_LAYER_INDEX)
            return ba_fail(err, BA_ERR_VALUE, "%s:%s: attribute 'layers' holds %lld: a "
                           "hidden-state index must be 0..%d", path, obj, layers[l],
                           BA_FEATURES_MAX_LAYER_INDEX);
        for (hsize_t m = 0; m < l; m++)
            if (layers[m] == layers[l])
                return ba_fail(err, BA_ERR_VALUE, "%s:%s: attribute 'layers' lists layer "
                               "%lld twice (positions %llu and %llu)", path, obj, layers[l],
                               (unsigned long long)m, (unsigned long long)l);
    }
    if (first) {
        ff->n_layers = (int)dims[0];
        ff->d_model = (long)dims[2];
        ff->layers = ba_calloc(dims[0], sizeof(long long), "layers", err);
        if (!ff->layers) return BA_ERR_NOMEM;
        memcpy(ff->layers, layers, sizeof(long long) * dims[0]);
    } else {
        for (int l = 0; l < ff->n_layers; l++)
            if (layers[l] != ff->layers[l])
                return ba_fail(err, BA_ERR_VALUE, "%s:%s: attribute 'layers' differs from "
                               "the first story's (position %d: %lld, not %lld)", path, obj,
                               l, layers[l], ff->layers[l]);
    }
    static const char *const leaves[4] = {"onset", "offset", "surprisal", "word"};
    for (int k = 0; k < 4; k++) {
        OBJ(obj, story, leaves[k]);
        if (!ba_h5_exists(&ff->file, obj)) {
            if (k < 2) return ba_fail(err, BA_ERR_FORMAT, "%s:%s: no such dataset", path, obj);
            continue; /* surprisal and word are not needed by the fit */
        }
        hsize_t wd[BA_H5_MAX_RANK];
        int r = 0;
        ba_status rc = ba_h5_shape(&ff->file, obj, 0, &r, wd, err);
        if (rc != BA_OK) return rc;
        if (r != 1 || wd[0] != n_words)
            return ba_fail(err, BA_ERR_SHAPE, "%s:%s has %d dimension%s (first %llu), expected "
                           "1 of %llu words like hidden", path, obj, r, r == 1 ? "" : "s",
                           r ? (unsigned long long)wd[0] : 0ULL, (unsigned long long)n_words);
    }
    return BA_OK;
}

ba_status ba_features_open(ba_features_file *ff, const char *path, MPI_Comm comm,
                           ba_error *err)
{
    memset(ff, 0, sizeof *ff);
    BA_CHECK(ba_h5_open(&ff->file, path, comm, err));
    ba_status rc = ba_h5_list_group(&ff->file, "/stories", &ff->stories, &ff->n_stories, err);
    if (rc == BA_OK && ff->n_stories == 0)
        rc = ba_fail(err, BA_ERR_FORMAT, "%s: /stories is empty", path);
    for (size_t s = 0; rc == BA_OK && s < ff->n_stories; s++)
        rc = check_story(ff, ff->stories[s], s == 0, err);
    if (ba_mpi_agree(comm, rc, err) != BA_OK) { ba_features_close(ff); return err->code; }
    return BA_OK;
}

void ba_features_close(ba_features_file *ff)
{
    if (ff->file.id > 0) ba_h5_abandon(&ff->file); /* read-only: just closes */
    ba_h5_free_strings(ff->stories, ff->n_stories);
    free(ff->layers);
    memset(ff, 0, sizeof *ff);
}

ba_status ba_features_layer_slot(const ba_features_file *ff, int layer, int *slot,
                                 ba_error *err)
{
    char avail[512] = "";
    for (int l = 0; l < ff->n_layers; l++) {
        if (ff->layers[l] == layer) { *slot = l; return BA_OK; }
        size_t len = strlen(avail);
        snprintf(avail + len, sizeof avail - len, "%s%lld", l ? "," : "", ff->layers[l]);
    }
    return ba_fail(err, BA_ERR_USAGE, "%s: layer %d was not extracted (layers: %s)",
                   ff->file.path, layer, avail);
}

ba_status ba_features_story_words(const ba_features_file *ff, const char *story,
                                  long *n_words, ba_error *err)
{
    char obj[1024];
    int rank = 0;
    hsize_t dims[BA_H5_MAX_RANK];
    OBJ(obj, story, "hidden");
    if (!ba_h5_exists(&ff->file, obj))
        return ba_fail(err, BA_ERR_FORMAT, "%s: no features for story '%s'", ff->file.path,
                       story);
    BA_CHECK(ba_h5_shape(&ff->file, obj, 3, &rank, dims, err));
    *n_words = (long)dims[1];
    return BA_OK;
}

ba_status ba_features_read_layer(const ba_features_file *ff, const char *story, int slot,
                                 float *out, ba_error *err)
{
    long n = 0;
    BA_CHECK(ba_features_story_words(ff, story, &n, err));
    char obj[1024];
    OBJ(obj, story, "hidden");
    if (slot < 0 || slot >= ff->n_layers)
        return ba_fail(err, BA_ERR_INTERNAL, "%s: layer slot %d of %d", ff->file.path, slot,
                       ff->n_layers);
    hsize_t start[3] = {(hsize_t)slot, 0, 0}, count[3] = {1, (hsize_t)n, (hsize_t)ff->d_model};
    size_t cap = 0;
    BA_CHECK(ba_size_product(n, ff->d_model, 1, obj, &cap, err));
    return ba_h5_read_n(&ff->file, obj, BA_H5_F32, 3, start, count, out, cap, err);
}

ba_status ba_features_read_onsets(const ba_features_file *ff, const char *story,
                                  double *onset, ba_error *err)
{
    /* The caller sized `onset` by the story's word count (hidden's word
     * axis): the read refuses an onset of another length or rank. */
    long n = 0;
    BA_CHECK(ba_features_story_words(ff, story, &n, err));
    char obj[1024];
    OBJ(obj, story, "onset");
    return ba_h5_read_n(&ff->file, obj, BA_H5_F64, 1, NULL, NULL, onset, (size_t)n, err);
}
