/* atlas_readers.c — FreeSurfer .annot and NIfTI label volumes -> ba_atlas
 * (see atlas_readers.h). */
#include "brainalign/io/atlas_readers.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "brainalign/core/fs.h"
#include "brainalign/core/parse.h"
#include "brainalign/parallel/parallel.h"

/* ---- a bounds-checked big-endian reader ------------------------------------ */

typedef struct {
    const unsigned char *p;
    size_t n, pos;
    const char *path;
} be_reader;

static ba_status read_i32(be_reader *r, const char *what, int32_t *out, ba_error *err)
{
    if (r->n - r->pos < 4)
        return ba_fail(err, BA_ERR_FORMAT, "%s: truncated at byte %zu (reading %s)", r->path,
                       r->pos, what);
    const unsigned char *b = r->p + r->pos;
    uint32_t u = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    memcpy(out, &u, sizeof *out);
    r->pos += 4;
    return BA_OK;
}

/* A length-prefixed string; the stored bytes usually end with a NUL. */
static ba_status read_string(be_reader *r, const char *what, char **out, ba_error *err)
{
    *out = NULL;
    int32_t len = 0;
    BA_CHECK(read_i32(r, what, &len, err));
    if (len < 0 || (size_t)len > r->n - r->pos)
        return ba_fail(err, BA_ERR_FORMAT, "%s: %s has length %d at byte %zu, beyond the end "
                       "of the file (truncated or not an .annot)", r->path, what, (int)len,
                       r->pos - 4);
    char *s = ba_malloc((size_t)len + 1, what, err);
    if (!s) return BA_ERR_NOMEM;
    memcpy(s, r->p + r->pos, (size_t)len);
    s[len] = '\0';
    r->pos += (size_t)len;
    *out = s;
    return BA_OK;
}

/* ---- .annot ---------------------------------------------------------------------- */

void ba_annot_free(ba_annot *a)
{
    free(a->labels);
    if (a->names)
        for (int e = 0; e < a->n_entries; e++) free(a->names[e]);
    free(a->names);
    free(a->rgbt);
    memset(a, 0, sizeof *a);
}

static ba_status alloc_entries(ba_annot *a, int32_t n, be_reader *r, ba_error *err)
{
    /* Every entry takes at least 20 bytes: a bound that stops absurd counts. */
    if (n < 0 || (size_t)n > r->n / 4)
        return ba_fail(err, BA_ERR_FORMAT, "%s: colour table of %d entries cannot fit in the "
                       "file", r->path, (int)n);
    a->n_entries = n;
    a->names = ba_calloc((size_t)n + 1, sizeof *a->names, "colour table names", err);
    a->rgbt = ba_calloc(4 * ((size_t)n + 1), sizeof *a->rgbt, "colour table", err);
    return a->names && a->rgbt ? BA_OK : BA_ERR_NOMEM;
}

static ba_status read_entry(be_reader *r, ba_annot *a, int slot, ba_error *err)
{
    if (a->names[slot])
        return ba_fail(err, BA_ERR_FORMAT, "%s: colour-table entry %d appears twice", r->path, slot);
    BA_CHECK(read_string(r, "an entry name", &a->names[slot], err));
    for (int c = 0; c < 4; c++) {
        int32_t v = 0;
        BA_CHECK(read_i32(r, "an entry colour", &v, err));
        a->rgbt[4 * slot + c] = v;
    }
    return BA_OK;
}

static ba_status read_old_ctab(be_reader *r, ba_annot *a, int32_t n_entries, ba_error *err)
{
    a->ctab_version = 1;
    char *orig = NULL;
    BA_CHECK(read_string(r, "the colour table's file name", &orig, err));
    free(orig);
    BA_CHECK(alloc_entries(a, n_entries, r, err));
    for (int e = 0; e < n_entries; e++) BA_CHECK(read_entry(r, a, e, err));
    return BA_OK;
}

static ba_status read_new_ctab(be_reader *r, ba_annot *a, int64_t version, ba_error *err)
{
    if (version != 2)
        return ba_fail(err, BA_ERR_FORMAT, "%s: colour-table version %lld (only 2 is known)",
                       r->path, (long long)version);
    a->ctab_version = 2;
    int32_t max_index = 0, to_read = 0;
    BA_CHECK(read_i32(r, "the colour table's size", &max_index, err));
    BA_CHECK(alloc_entries(a, max_index, r, err));
    char *orig = NULL;
    BA_CHECK(read_string(r, "the colour table's file name", &orig, err));
    free(orig);
    BA_CHECK(read_i32(r, "the number of entries", &to_read, err));
    if (to_read < 0 || to_read > max_index)
        return ba_fail(err, BA_ERR_FORMAT, "%s: %d colour-table entries in a table of %d",
                       r->path, (int)to_read, (int)max_index);
    for (int k = 0; k < to_read; k++) {
        int32_t slot = 0;
        BA_CHECK(read_i32(r, "an entry index", &slot, err));
        if (slot < 0 || slot >= max_index)
            return ba_fail(err, BA_ERR_FORMAT, "%s: colour-table entry index %d outside 0..%d",
                           r->path, (int)slot, (int)max_index - 1);
        BA_CHECK(read_entry(r, a, slot, err));
    }
    return BA_OK;
}

typedef struct {
    int64_t value; /* 64 bits: colours come from the file, r + g*256 + b*65536 may not fit an int */
    int slot;
} value_slot;

static int compare_value_slot(const void *x, const void *y)
{
    const value_slot *a = x, *b = y;
    if (a->value != b->value) return (a->value > b->value) - (a->value < b->value);
    return (a->slot > b->slot) - (a->slot < b->slot); /* the first slot wins a tie */
}

/* Annotation values -> colour-table slots (0 and unknown values -> -1). */
static ba_status values_to_slots(ba_annot *a, int32_t *values, ba_error *err)
{
    value_slot *table = ba_calloc((size_t)a->n_entries + 1, sizeof *table, "annot lookup", err);
    if (!table) return BA_ERR_NOMEM;
    int n = 0;
    for (int e = 0; e < a->n_entries; e++)
        if (a->names[e]) {
            const int *c = &a->rgbt[4 * e];
            table[n].value = (int64_t)c[0] + (int64_t)c[1] * 256 + (int64_t)c[2] * 65536;
            table[n++].slot = e;
        }
    qsort(table, (size_t)n, sizeof *table, compare_value_slot);
    for (long v = 0; v < a->n_vertices; v++) {
        a->labels[v] = -1;
        if (values[v] == 0) continue;
        int lo = 0, hi = n; /* first entry with value >= values[v] */
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (table[mid].value < values[v]) lo = mid + 1;
            else hi = mid;
        }
        if (lo < n && table[lo].value == values[v]) a->labels[v] = table[lo].slot;
    }
    free(table);
    return BA_OK;
}

static ba_status parse_annot(be_reader *r, ba_annot *a, ba_error *err)
{
    int32_t vnum = 0;
    BA_CHECK(read_i32(r, "the vertex count", &vnum, err));
    if (vnum < 0 || (size_t)vnum > (r->n - r->pos) / 8)
        return ba_fail(err, BA_ERR_FORMAT, "%s: %d vertices do not fit in the file (truncated "
                       "or not an .annot)", r->path, (int)vnum);
    a->n_vertices = vnum;
    a->labels = ba_calloc((size_t)vnum + 1, sizeof *a->labels, "annot labels", err);
    int32_t *values = ba_calloc((size_t)vnum + 1, sizeof *values, "annot values", err);
    ba_status rc = a->labels && values ? BA_OK : BA_ERR_NOMEM;
    for (long k = 0; rc == BA_OK && k < vnum; k++) {
        int32_t vno = 0, value = 0;
        rc = read_i32(r, "a vertex number", &vno, err);
        if (rc == BA_OK) rc = read_i32(r, "a vertex label", &value, err);
        if (rc == BA_OK && (vno < 0 || vno >= vnum))
            rc = ba_fail(err, BA_ERR_FORMAT, "%s: vertex number %d outside 0..%d", r->path,
                         (int)vno, (int)vnum - 1);
        if (rc == BA_OK) values[vno] = value;
    }
    int32_t tag = 0, n_entries = 0;
    if (rc == BA_OK && r->pos == r->n)
        rc = ba_fail(err, BA_ERR_FORMAT, "%s: no colour table after the vertex labels", r->path);
    if (rc == BA_OK) rc = read_i32(r, "the colour-table tag", &tag, err);
    if (rc == BA_OK && tag != 1)
        rc = ba_fail(err, BA_ERR_FORMAT, "%s: colour-table tag %d (1 expected)", r->path, (int)tag);
    if (rc == BA_OK) rc = read_i32(r, "the colour-table entry count", &n_entries, err);
    if (rc == BA_OK)
        rc = n_entries > 0 ? read_old_ctab(r, a, n_entries, err)
                           : read_new_ctab(r, a, -(int64_t)n_entries, err); /* INT32_MIN too */
    if (rc == BA_OK) rc = values_to_slots(a, values, err);
    free(values);
    return rc;
}

ba_status ba_annot_read(const char *path, ba_annot *annot, ba_error *err)
{
    memset(annot, 0, sizeof *annot);
    unsigned char *bytes = NULL;
    size_t n = 0;
    BA_CHECK(ba_read_file(path, &bytes, &n, err));
    be_reader r = {bytes, n, 0, path};
    ba_status rc = parse_annot(&r, annot, err);
    free(bytes);
    if (rc != BA_OK) ba_annot_free(annot);
    return rc;
}

/* ---- regions ------------------------------------------------------------------------ */

static bool is_no_region(const char *name)
{
    return strcasecmp(name, "unknown") == 0 || strcasecmp(name, "medial_wall") == 0 ||
           strcasecmp(name, "medialwall") == 0;
}

static ba_status add_region(ba_atlas *atlas, int *cap, const char *prefix, const char *name,
                            ba_error *err)
{
    if (atlas->n_regions == *cap) {
        int grown_cap = *cap ? 2 * *cap : 64;
        char **grown = realloc(atlas->names, (size_t)grown_cap * sizeof *grown);
        if (!grown) return ba_fail(err, BA_ERR_NOMEM, "out of memory for region names");
        atlas->names = grown;
        *cap = grown_cap;
    }
    size_t len = strlen(prefix) + strlen(name) + 1;
    char *s = ba_malloc(len, "region name", err);
    if (!s) return BA_ERR_NOMEM;
    snprintf(s, len, "%s%s", prefix, name);
    atlas->names[atlas->n_regions++] = s;
    return BA_OK;
}

static void free_partial_atlas(ba_atlas *atlas)
{
    if (atlas->names)
        for (int g = 0; g < atlas->n_regions; g++) free(atlas->names[g]);
    free(atlas->names);
    free(atlas->labels);
    memset(atlas, 0, sizeof *atlas);
}

static ba_status check_annot_against_space(const char *path, int h, const ba_annot *a,
                                           const ba_brain_space *space, ba_error *err)
{
    static const char *const hemi[2] = {"lh", "rh"};
    if (!space) return BA_OK;
    if (space->kind == BA_SPACE_VOLUME)
        return ba_fail(err, BA_ERR_SHAPE, "%s: an .annot labels surface vertices, but the BOLD "
                       "is a volume", path);
    if (space->kind == BA_SPACE_SURFACE && a->n_vertices != space->n_vertices[h])
        return ba_fail(err, BA_ERR_SHAPE, "%s: %ld %s vertices, the BOLD has %ld", path,
                       a->n_vertices, hemi[h], space->n_vertices[h]);
    return BA_OK;
}

ba_status ba_atlas_from_annot(const char *lh_path, const char *rh_path,
                              const ba_brain_space *space, ba_atlas *atlas, ba_error *err)
{
    static const char *const prefix[2] = {"lh.", "rh."};
    const char *paths[2] = {lh_path, rh_path};
    memset(atlas, 0, sizeof *atlas);
    if (!lh_path && !rh_path) return ba_fail(err, BA_ERR_USAGE, "no .annot file given");
    ba_annot a[2];
    memset(a, 0, sizeof a);
    ba_status rc = BA_OK;
    for (int h = 0; h < 2 && rc == BA_OK; h++) {
        if (!paths[h]) {
            if (space && space->kind == BA_SPACE_SURFACE && space->n_vertices[h] > 0)
                rc = ba_fail(err, BA_ERR_USAGE, "the BOLD has %ld %s vertices: give the %s .annot",
                             space->n_vertices[h], h ? "rh" : "lh", h ? "rh" : "lh");
            continue;
        }
        rc = ba_annot_read(paths[h], &a[h], err);
        if (rc == BA_OK) rc = check_annot_against_space(paths[h], h, &a[h], space, err);
    }
    long total = a[0].n_vertices + a[1].n_vertices;
    if (rc == BA_OK && space && space->kind == BA_SPACE_NONE && space->n_voxels > 0 &&
        space->n_voxels != total)
        rc = ba_fail(err, BA_ERR_SHAPE, "%s: %ld vertices in all, the BOLD has %ld columns",
                     lh_path ? lh_path : rh_path, total, space->n_voxels);
    int cap = 0;
    if (rc == BA_OK) {
        atlas->n_voxels = total;
        atlas->labels = ba_calloc((size_t)total + 1, sizeof *atlas->labels, "atlas labels", err);
        if (!atlas->labels) rc = BA_ERR_NOMEM;
    }
    long offset = 0;
    for (int h = 0; h < 2 && rc == BA_OK; h++) {
        /* slot -> region of this hemisphere, -1 for excluded or empty slots */
        int *region = ba_calloc((size_t)a[h].n_entries + 1, sizeof *region, "region map", err);
        if (!region) { rc = BA_ERR_NOMEM; break; }
        for (int e = 0; e < a[h].n_entries && rc == BA_OK; e++) {
            region[e] = -1;
            if (!a[h].names[e] || is_no_region(a[h].names[e])) continue;
            region[e] = atlas->n_regions;
            rc = add_region(atlas, &cap, prefix[h], a[h].names[e], err);
        }
        for (long v = 0; v < a[h].n_vertices && rc == BA_OK; v++) {
            int slot = a[h].labels[v];
            atlas->labels[offset + v] = slot >= 0 ? region[slot] : -1;
        }
        offset += a[h].n_vertices;
        free(region);
    }
    ba_annot_free(&a[0]);
    ba_annot_free(&a[1]);
    if (rc != BA_OK) free_partial_atlas(atlas);
    return rc;
}

/* ---- label tables --------------------------------------------------------------------- */

void ba_label_table_free(ba_label_table *t)
{
    if (t->names)
        for (int k = 0; k < t->n; k++) free(t->names[k]);
    free(t->names);
    free(t->index);
    memset(t, 0, sizeof *t);
}

static ba_status table_add(ba_label_table *t, int *cap, long index, const char *name,
                           const char *path, long line_no, ba_error *err)
{
    for (int k = 0; k < t->n; k++)
        if (t->index[k] == index)
            return ba_fail(err, BA_ERR_FORMAT, "%s:%ld: label %ld is listed twice", path, line_no,
                           index);
    if (t->n == *cap) {
        int grown_cap = *cap ? 2 * *cap : 256;
        int *gi = realloc(t->index, (size_t)grown_cap * sizeof *gi);
        if (gi) t->index = gi;
        char **gn = realloc(t->names, (size_t)grown_cap * sizeof *gn);
        if (gn) t->names = gn;
        if (!gi || !gn) return ba_fail(err, BA_ERR_NOMEM, "out of memory for the label table");
        *cap = grown_cap;
    }
    t->names[t->n] = ba_malloc(strlen(name) + 1, "label name", err);
    if (!t->names[t->n]) return BA_ERR_NOMEM;
    memcpy(t->names[t->n], name, strlen(name) + 1);
    t->index[t->n++] = (int)index;
    return BA_OK;
}

/* Splits a line into fields: on tabs when it has any (names may then hold
 * spaces), else on runs of spaces. */
static int split_fields(char *line, char **field, int max)
{
    const char *seps = strchr(line, '\t') ? "\t\r\n" : " \r\n";
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(line, seps, &save); tok && n < max; tok = strtok_r(NULL, seps, &save))
        field[n++] = tok;
    return n;
}

ba_status ba_label_table_read(const char *path, ba_label_table *t, ba_error *err)
{
    memset(t, 0, sizeof *t);
    BA_CHECK(ba_require_regular(path, err)); /* a FIFO would block fopen */
    FILE *fp = fopen(path, "r");
    if (!fp) return ba_fail(err, BA_ERR_IO, "%s: no such file or not readable", path);
    char *line = NULL;
    size_t line_cap = 0;
    long line_no = 0;
    int cap = 0;
    bool seen_data = false;
    ba_status rc = BA_OK;
    while (rc == BA_OK && getline(&line, &line_cap, fp) >= 0) {
        line_no++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *field[8];
        int n = split_fields(line, field, 8);
        if (n == 0) continue;
        long index = 0;
        if (!ba_parse_long(field[0], LONG_MIN, LONG_MAX, &index)) {
            if (!seen_data) { seen_data = true; continue; } /* a header line */
            rc = ba_fail(err, BA_ERR_FORMAT, "%s:%ld: '%s' is not a label index", path, line_no,
                         field[0]);
            break;
        }
        seen_data = true;
        if (n < 2) {
            rc = ba_fail(err, BA_ERR_FORMAT, "%s:%ld: label %ld has no name", path, line_no, index);
            break;
        }
        if (index < 0 || index > INT32_MAX) {
            rc = ba_fail(err, BA_ERR_FORMAT, "%s:%ld: label %ld is out of range", path, line_no,
                         index);
            break;
        }
        rc = table_add(t, &cap, index, field[1], path, line_no, err);
    }
    if (rc == BA_OK && t->n == 0) rc = ba_fail(err, BA_ERR_FORMAT, "%s: no labels", path);
    free(line);
    fclose(fp);
    if (rc != BA_OK) ba_label_table_free(t);
    return rc;
}

/* ---- NIfTI label volumes -------------------------------------------------------------------- */

typedef struct {
    int index, entry;
} index_entry;

static int compare_index_entry(const void *x, const void *y)
{
    const index_entry *a = x, *b = y;
    return (a->index > b->index) - (a->index < b->index);
}

static int find_entry(const index_entry *sorted, int n, long value)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (sorted[mid].index < value) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && sorted[lo].index == value ? sorted[lo].entry : -1;
}

/* The whole grid of a label volume as integers, in C order. */
static ba_status read_label_grid(const char *path, const ba_brain_space *space, long **grid,
                                 ba_error *err)
{
    *grid = NULL;
    ba_brain_space full = *space;
    long n = space->dims[0] * space->dims[1] * space->dims[2];
    full.n_voxels = n;
    full.mask = ba_calloc((size_t)n, sizeof *full.mask, "label grid", err);
    if (!full.mask) return BA_ERR_NOMEM;
    for (long c = 0; c < n; c++) full.mask[c] = 1;
    float *values = NULL;
    long n_tr = 0;
    ba_status rc = ba_nifti_read_masked(path, &full, &values, &n_tr, err);
    if (rc == BA_OK && n_tr != 1)
        rc = ba_fail(err, BA_ERR_SHAPE, "%s: a label volume must be 3-D, this one has %ld "
                     "volumes", path, n_tr);
    long *out = NULL;
    if (rc == BA_OK) {
        out = ba_calloc((size_t)n, sizeof *out, "label grid", err);
        if (!out) rc = BA_ERR_NOMEM;
    }
    for (long c = 0; rc == BA_OK && c < n; c++) {
        float x = values[c];
        if (!isfinite(x) || x != floorf(x) || fabsf(x) > 16777216.0f) {
            char where[128];
            ba_brain_space_describe(&full, c, where, sizeof where);
            rc = ba_fail(err, BA_ERR_VALUE, "%s: label %g at %s is not an integer", path,
                         (double)x, where);
        } else {
            out[c] = (long)x;
        }
    }
    free(values);
    free(full.mask);
    if (rc != BA_OK) { free(out); return rc; }
    *grid = out;
    return BA_OK;
}

ba_status ba_atlas_from_nifti_labels(const char *labels_path, const char *table_path,
                                     const ba_brain_space *space, ba_atlas *atlas,
                                     ba_error *err)
{
    memset(atlas, 0, sizeof *atlas);
    if (!space || space->kind != BA_SPACE_VOLUME || !space->mask)
        return ba_fail(err, BA_ERR_USAGE, "%s: a label volume needs a BOLD with a mask "
                       "(volume BOLD)", labels_path);
    ba_label_table table;
    BA_CHECK(ba_label_table_read(table_path, &table, err));
    long *grid = NULL;
    index_entry *sorted = NULL;
    int *region = NULL;
    bool *present = NULL;
    int cap = 0;
    ba_status rc = read_label_grid(labels_path, space, &grid, err);
    if (rc != BA_OK) goto done;
    BA_ALLOC(sorted, table.n, "label lookup", done);
    BA_ALLOC(region, table.n, "label regions", done);
    BA_ALLOC(present, table.n, "labels present", done);
    for (int k = 0; k < table.n; k++) sorted[k] = (index_entry){table.index[k], k};
    qsort(sorted, (size_t)table.n, sizeof *sorted, compare_index_entry);
    long n = space->dims[0] * space->dims[1] * space->dims[2];
    for (long c = 0; c < n; c++) {
        int e = find_entry(sorted, table.n, grid[c]);
        if (e >= 0) present[e] = true;
    }
    /* Regions: present, named entries other than 0 / Unknown, by index. */
    for (int s = 0; s < table.n && rc == BA_OK; s++) {
        int e = sorted[s].entry;
        region[e] = -1;
        if (!present[e] || table.index[e] == 0 || is_no_region(table.names[e])) continue;
        region[e] = atlas->n_regions;
        rc = add_region(atlas, &cap, "", table.names[e], err);
    }
    if (rc != BA_OK) goto done;
    atlas->n_voxels = space->n_voxels;
    BA_ALLOC(atlas->labels, space->n_voxels + 1, "atlas labels", done);
    long v = 0;
    for (long c = 0; c < n; c++) {
        if (!space->mask[c]) continue;
        int e = find_entry(sorted, table.n, grid[c]);
        atlas->labels[v++] = e >= 0 ? region[e] : -1;
    }
done:
    free(grid);
    free(sorted);
    free(region);
    free(present);
    ba_label_table_free(&table);
    if (rc != BA_OK) free_partial_atlas(atlas);
    return rc;
}

/* ---- `brainalign import --format annot | nifti-labels` ------------------------------------------ */

static ba_status build_atlas(const ba_atlas_import_options *o, ba_atlas *atlas, ba_error *err)
{
    if (!o->out_path) return ba_fail(err, BA_ERR_USAGE, "no output file (--out)");
    ba_brain_space space;
    memset(&space, 0, sizeof space);
    bool have_space = false;
    if (o->bold_path) {
        BA_CHECK(ba_brain_space_read(o->bold_path, &space, err));
        have_space = true;
    } else if (o->mask_path) {
        BA_CHECK(ba_brain_space_from_mask(o->mask_path, &space, err));
        have_space = true;
    }
    ba_status rc;
    if (o->format == BA_ATLAS_ANNOT) {
        rc = ba_atlas_from_annot(o->lh_path, o->rh_path, have_space ? &space : NULL, atlas, err);
    } else if (!o->labels_path || !o->table_path) {
        rc = ba_fail(err, BA_ERR_USAGE, "a label volume needs --labels FILE and --table FILE");
    } else if (!have_space) {
        rc = ba_fail(err, BA_ERR_USAGE, "a label volume needs the BOLD it is for (--bold "
                     "bold.h5, or --mask MASK)");
    } else {
        rc = ba_atlas_from_nifti_labels(o->labels_path, o->table_path, &space, atlas, err);
    }
    if (rc == BA_OK && o->bold_path && space.kind == BA_SPACE_NONE && space.n_voxels > 0 &&
        atlas->n_voxels != space.n_voxels) {
        rc = ba_fail(err, BA_ERR_SHAPE, "the atlas has %ld voxels, %s has %ld", atlas->n_voxels,
                     o->bold_path, space.n_voxels);
        ba_atlas_free(atlas);
    }
    ba_brain_space_free(&space);
    return rc;
}

ba_status ba_import_atlas(const ba_atlas_import_options *o, MPI_Comm comm, ba_atlas *atlas,
                          ba_error *err)
{
    ba_atlas local;
    memset(&local, 0, sizeof local);
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    ba_status rc = BA_OK;
    if (rank == 0) {
        rc = build_atlas(o, &local, err);
        if (rc == BA_OK) rc = ba_atlas_write(o->out_path, MPI_COMM_SELF, &local, err);
    }
    rc = ba_mpi_agree(comm, rc, err);
    if (rc == BA_OK && atlas) *atlas = local;
    else ba_atlas_free(&local);
    if (rc != BA_OK && atlas) memset(atlas, 0, sizeof *atlas);
    return rc;
}
