/* safetensors.c — mmap'd safetensors files and checkpoint directories
 * (see safetensors.h). Every number in a header is checked before use: a
 * corrupt or hostile file gives an error naming the file and the tensor,
 * never a read outside the map. */
#include "brainalign/lm/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "brainalign/core/fs.h"

/* The reference implementation refuses headers above 100 MB too. */
#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

/* ---- dtypes ---------------------------------------------------------------- */

static const struct {
    const char *name;
    size_t size;
} DTYPES[BA_DTYPE_COUNT] = {
    [BA_DTYPE_F32] = {"F32", 4},     [BA_DTYPE_F16] = {"F16", 2},
    [BA_DTYPE_BF16] = {"BF16", 2},   [BA_DTYPE_F64] = {"F64", 8},
    [BA_DTYPE_F8_E4M3] = {"F8_E4M3", 1}, [BA_DTYPE_F8_E5M2] = {"F8_E5M2", 1},
    [BA_DTYPE_I64] = {"I64", 8},     [BA_DTYPE_I32] = {"I32", 4},
    [BA_DTYPE_I16] = {"I16", 2},     [BA_DTYPE_I8] = {"I8", 1},
    [BA_DTYPE_U64] = {"U64", 8},     [BA_DTYPE_U32] = {"U32", 4},
    [BA_DTYPE_U16] = {"U16", 2},     [BA_DTYPE_U8] = {"U8", 1},
    [BA_DTYPE_BOOL] = {"BOOL", 1},
};

const char *ba_dtype_name(ba_dtype dtype)
{
    return (unsigned)dtype < BA_DTYPE_COUNT ? DTYPES[dtype].name : "?";
}

size_t ba_dtype_size(ba_dtype dtype)
{
    return (unsigned)dtype < BA_DTYPE_COUNT ? DTYPES[dtype].size : 0;
}

int ba_dtype_from_name(const char *name)
{
    for (int i = 0; i < BA_DTYPE_COUNT; i++)
        if (strcmp(name, DTYPES[i].name) == 0) return i;
    return -1;
}

/* n_elements * element size, false on overflow. */
static bool shape_bytes(const int64_t *shape, int rank, size_t elem, size_t *elements,
                        size_t *bytes)
{
    size_t n = 1;
    for (int d = 0; d < rank; d++) {
        if (shape[d] < 0) return false;
        size_t s = (size_t)shape[d];
        if (s != 0 && n > SIZE_MAX / s) return false;
        n *= s;
    }
    if (elem != 0 && n > SIZE_MAX / elem) return false;
    *elements = n;
    *bytes = n * elem;
    return true;
}

size_t ba_tensor_spec_bytes(const ba_tensor_spec *spec)
{
    size_t elements = 0, bytes = 0;
    if (spec->rank < 0 || spec->rank > BA_TENSOR_MAX_RANK) return 0;
    if (!shape_bytes(spec->shape, spec->rank, ba_dtype_size(spec->dtype), &elements, &bytes))
        return 0;
    return bytes;
}

/* ---- one file ------------------------------------------------------------- */

struct ba_safetensors {
    char path[BA_PATH_MAX];
    void *map;
    size_t map_len;
    int fd;              /* kept open: fstat sees the mapped inode's size */
    json_t *header;      /* kept alive: tensor names point into it */
    json_t *metadata;    /* borrowed from header, may be NULL */
    ba_tensor *tensors;  /* sorted by name */
    size_t n_tensors;
};

static int compare_by_name(const void *a, const void *b)
{
    return strcmp(((const ba_tensor *)a)->name, ((const ba_tensor *)b)->name);
}

/* Sort helper for the tiling check: order by start offset, then end. */
typedef struct {
    size_t begin, end;
    const char *name;
} st_span;

static int compare_spans(const void *a, const void *b)
{
    const st_span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* ---- the mappings in use (for the size checks and the SIGBUS guard) -------
 * A process-wide table, because a signal handler can only see globals.
 * Files are opened and closed by one thread; the handler only reads. */
#define ST_MAX_MAPPED 1024
static struct {
    const char *path; /* the ba_safetensors' own buffer */
    const unsigned char *begin;
    size_t len;
    int fd;
} mapped[ST_MAX_MAPPED];
static volatile sig_atomic_t n_mapped;
static char guard_cleanup[BA_PATH_MAX];
static volatile sig_atomic_t guard_on;
static struct sigaction guard_previous;

static void register_mapping(const ba_safetensors *st)
{
    for (int i = 0; i < n_mapped; i++)
        if (!mapped[i].begin) {
            mapped[i].path = st->path;
            mapped[i].len = st->map_len;
            mapped[i].fd = st->fd;
            mapped[i].begin = st->map;
            return;
        }
    if (n_mapped < ST_MAX_MAPPED) {
        mapped[n_mapped].path = st->path;
        mapped[n_mapped].len = st->map_len;
        mapped[n_mapped].fd = st->fd;
        mapped[n_mapped].begin = st->map;
        n_mapped++;
    }
}

static void unregister_mapping(const ba_safetensors *st)
{
    for (int i = 0; i < n_mapped; i++)
        if (mapped[i].begin == st->map) mapped[i].begin = NULL;
}

ba_status ba_mapped_files_check(ba_error *err)
{
    for (int i = 0; i < n_mapped; i++) {
        if (!mapped[i].begin) continue;
        struct stat sb;
        if (fstat(mapped[i].fd, &sb) != 0)
            return ba_fail(err, BA_ERR_IO, "%s: cannot stat the mapped checkpoint file: %s",
                           mapped[i].path, strerror(errno));
        if ((unsigned long long)sb.st_size < (unsigned long long)mapped[i].len)
            return ba_fail(err, BA_ERR_IO, "%s: the checkpoint file shrank from %zu to %lld "
                           "bytes while in use (re-synced or truncated during the job?)",
                           mapped[i].path, mapped[i].len, (long long)sb.st_size);
    }
    return BA_OK;
}

static void put(const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, s, n);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

/* Only async-signal-safe calls: write, unlink, _exit (and strlen). */
static void sigbus_handler(int sig, siginfo_t *info, void *ctx)
{
    (void)ctx;
    /* si_addr is meaningful only for a fault raised by the kernel. */
    const unsigned char *addr =
        info && info->si_code > 0 ? (const unsigned char *)info->si_addr : NULL;
    const char *file = NULL;
    for (int i = 0; i < n_mapped; i++)
        if (mapped[i].begin && addr >= mapped[i].begin && addr < mapped[i].begin + mapped[i].len)
            file = mapped[i].path;
    if (!file) { /* not ours: the default action */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    put("brainalign: error (I/O error): ");
    put(file);
    put(": reading the mapped checkpoint failed (SIGBUS): the file shrank or was truncated "
        "while in use (re-synced during the job?)\n");
    if (guard_cleanup[0]) {
        unlink(guard_cleanup);
        put("brainalign: removed the unfinished output ");
        put(guard_cleanup);
        put("\n");
    }
    _exit(1);
}

void ba_mapped_files_guard(const char *cleanup_path)
{
    if (cleanup_path) {
        snprintf(guard_cleanup, sizeof guard_cleanup, "%s", cleanup_path);
        if (!guard_on) {
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_sigaction = sigbus_handler;
            sa.sa_flags = SA_SIGINFO;
            sigemptyset(&sa.sa_mask);
            sigaction(SIGBUS, &sa, &guard_previous);
            guard_on = 1;
        }
    } else if (guard_on) {
        sigaction(SIGBUS, &guard_previous, NULL);
        guard_on = 0;
        guard_cleanup[0] = '\0';
    }
}

static ba_status map_file(ba_safetensors *st, ba_error *err)
{
    BA_CHECK(ba_require_regular(st->path, err)); /* before open(): a FIFO would block it */
    int fd = open(st->path, O_RDONLY);
    if (fd < 0)
        return ba_fail(err, BA_ERR_IO, "%s: cannot open: %s", st->path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return ba_fail(err, BA_ERR_IO, "%s: cannot stat: %s", st->path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return ba_fail(err, BA_ERR_IO, "%s: not a regular file", st->path);
    }
    if (sb.st_size < 8) {
        close(fd);
        return ba_fail(err, BA_ERR_FORMAT,
                       "%s: file has %lld bytes, a safetensors file needs at least the "
                       "8-byte header length", st->path, (long long)sb.st_size);
    }
    st->map_len = (size_t)sb.st_size;
    /* Shared read-only map: ranks on one node share the page cache. */
    void *map = mmap(NULL, st->map_len, PROT_READ, MAP_SHARED, fd, 0);
    int e = errno;
    if (map == MAP_FAILED) {
        close(fd);
        return ba_fail(err, BA_ERR_IO, "%s: cannot mmap %zu bytes: %s", st->path, st->map_len,
                       strerror(e));
    }
    st->map = map;
    st->fd = fd;
    register_mapping(st);
    return BA_OK;
}

static ba_status parse_int_array(const ba_safetensors *st, const char *tname, json_t *arr,
                                 const char *field, size_t max_len, int64_t *values,
                                 size_t *len, ba_error *err)
{
    if (!json_is_array(arr))
        return ba_fail(err, BA_ERR_FORMAT, "%s: tensor '%s': \"%s\" must be an array of integers",
                       st->path, tname, field);
    size_t n = json_array_size(arr);
    if (n > max_len)
        return ba_fail(err, BA_ERR_FORMAT, "%s: tensor '%s': \"%s\" has %zu entries, at most %zu "
                       "allowed", st->path, tname, field, n, max_len);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return ba_fail(err, BA_ERR_FORMAT,
                           "%s: tensor '%s': \"%s\"[%zu] must be a non-negative integer",
                           st->path, tname, field, i);
        values[i] = (int64_t)json_integer_value(v);
    }
    *len = n;
    return BA_OK;
}

/* A numeric part of a dotted tensor name ("h.3.attn") is written without
 * leading zeros: "h.03.attn" would be read as layer 3 by a strtol-based
 * lookup and so slip past the unknown-tensor check, or alias "h.3.attn". */
static ba_status check_tensor_name(const ba_safetensors *st, const char *name, ba_error *err)
{
    for (const char *p = name; *p;) {
        const char *end = strchr(p, '.');
        if (!end) end = p + strlen(p);
        size_t n = (size_t)(end - p), digits = 0;
        while (digits < n && p[digits] >= '0' && p[digits] <= '9') digits++;
        if (n > 1 && digits == n && p[0] == '0')
            return ba_fail(err, BA_ERR_FORMAT, "%s: tensor '%s': the index '%.*s' has a leading "
                           "zero (indices are written 0, 1, 2...): not a tensor of this model",
                           st->path, name, (int)n, p);
        p = *end ? end + 1 : end;
    }
    return BA_OK;
}

/* Fill t from its header entry; offsets are checked against data_len. */
static ba_status parse_tensor_entry(const ba_safetensors *st, const char *name, json_t *entry,
                                    const unsigned char *data, size_t data_len, ba_tensor *t,
                                    st_span *span_out, ba_error *err)
{
    BA_CHECK(check_tensor_name(st, name, err));
    if (!json_is_object(entry))
        return ba_fail(err, BA_ERR_FORMAT, "%s: tensor '%s': header entry must be an object "
                       "with dtype, shape, data_offsets", st->path, name);
    json_t *jdtype = json_object_get(entry, "dtype");
    if (!json_is_string(jdtype))
        return ba_fail(err, BA_ERR_FORMAT, "%s: tensor '%s': missing string \"dtype\"", st->path,
                       name);
    int dtype = ba_dtype_from_name(json_string_value(jdtype));
    if (dtype < 0)
        return ba_fail(err, BA_ERR_FORMAT,
                       "%s: tensor '%s': unknown dtype '%s' (expected F32, F16, BF16 or another "
                       "safetensors dtype)", st->path, name, json_string_value(jdtype));
    size_t rank = 0, n_off = 0;
    int64_t off[2] = {0, 0};
    t->name = name;
    t->dtype = (ba_dtype)dtype;
    t->file = st->path;
    BA_CHECK(parse_int_array(st, name, json_object_get(entry, "shape"), "shape",
                             BA_TENSOR_MAX_RANK, t->shape, &rank, err));
    t->rank = (int)rank;
    BA_CHECK(parse_int_array(st, name, json_object_get(entry, "data_offsets"), "data_offsets",
                             2, off, &n_off, err));
    if (n_off != 2)
        return ba_fail(err, BA_ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" must be [begin, end]",
                       st->path, name);
    if (off[0] > off[1])
        return ba_fail(err, BA_ERR_FORMAT, "%s: tensor '%s': data_offsets [%lld, %lld] end before "
                       "they begin", st->path, name, (long long)off[0], (long long)off[1]);
    if ((uint64_t)off[1] > (uint64_t)data_len)
        return ba_fail(err, BA_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets [%lld, %lld] lie outside the data area of "
                       "%zu bytes", st->path, name, (long long)off[0], (long long)off[1], data_len);
    if (!shape_bytes(t->shape, t->rank, ba_dtype_size(t->dtype), &t->n_elements, &t->n_bytes))
        return ba_fail(err, BA_ERR_FORMAT, "%s: tensor '%s': shape size overflows", st->path, name);
    size_t span = (size_t)(off[1] - off[0]);
    if (t->n_bytes != span)
        return ba_fail(err, BA_ERR_FORMAT,
                       "%s: tensor '%s': shape and dtype %s need %zu bytes, data_offsets "
                       "[%lld, %lld] span %zu", st->path, name, ba_dtype_name(t->dtype),
                       t->n_bytes, (long long)off[0], (long long)off[1], span);
    t->data = span ? data + off[0] : NULL;
    *span_out = (st_span){(size_t)off[0], (size_t)off[1], name};
    return BA_OK;
}

static ba_status check_metadata(const ba_safetensors *st, json_t *meta, ba_error *err)
{
    if (!json_is_object(meta))
        return ba_fail(err, BA_ERR_FORMAT, "%s: \"__metadata__\" must be an object of strings",
                       st->path);
    const char *key;
    json_t *value;
    json_object_foreach(meta, key, value) {
        if (!json_is_string(value))
            return ba_fail(err, BA_ERR_FORMAT, "%s: \"__metadata__\".%s must be a string",
                           st->path, key);
    }
    return BA_OK;
}

/* The tensors must tile the data area: sorted by offset, each starting
 * where the previous ended, the last ending at the end of the file (the
 * reference implementation's rule; it also rules out aliased tensors). */
static ba_status check_tiling(const ba_safetensors *st, st_span *spans, size_t n,
                              size_t data_len, ba_error *err)
{
    qsort(spans, n, sizeof *spans, compare_spans);
    size_t expected = 0;
    const char *previous = NULL;
    for (size_t i = 0; i < n; i++) {
        if (spans[i].begin < expected)
            return ba_fail(err, BA_ERR_FORMAT,
                           "%s: tensor '%s' (data bytes %zu..%zu) overlaps tensor '%s' "
                           "(which ends at %zu)", st->path, spans[i].name, spans[i].begin,
                           spans[i].end, previous ? previous : "?", expected);
        if (spans[i].begin > expected)
            return ba_fail(err, BA_ERR_FORMAT,
                           "%s: tensor '%s' starts at data byte %zu but the data before it ends "
                           "at %zu: the data area has a hole", st->path, spans[i].name,
                           spans[i].begin, expected);
        expected = spans[i].end;
        previous = spans[i].name;
    }
    if (expected != data_len)
        return ba_fail(err, BA_ERR_FORMAT,
                       "%s: the tensors cover %zu bytes of the data area but it has %zu "
                       "(bytes not described by the header)", st->path, expected, data_len);
    return BA_OK;
}

static ba_status parse_header(ba_safetensors *st, ba_error *err)
{
    const unsigned char *bytes = st->map;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | bytes[i];
    if (n > (uint64_t)(st->map_len - 8))
        return ba_fail(err, BA_ERR_FORMAT,
                       "%s: header length %llu runs past the end of the file (%zu bytes): "
                       "truncated or not a safetensors file", st->path, (unsigned long long)n,
                       st->map_len);
    if (n > ST_MAX_HEADER)
        return ba_fail(err, BA_ERR_FORMAT, "%s: header length %llu exceeds the 100 MB limit",
                       st->path, (unsigned long long)n);
    if (n < 2 || bytes[8] != '{')
        return ba_fail(err, BA_ERR_FORMAT,
                       "%s: header must be a JSON object starting with '{'", st->path);
    json_error_t jerr;
    st->header = json_loadb((const char *)bytes + 8, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
    if (!st->header)
        return ba_fail(err, BA_ERR_FORMAT, "%s: header is not valid JSON (line %d, column %d): %s",
                       st->path, jerr.line, jerr.column, jerr.text);
    if (!json_is_object(st->header))
        return ba_fail(err, BA_ERR_FORMAT, "%s: header must be a JSON object", st->path);

    const unsigned char *data = bytes + 8 + n;
    size_t data_len = st->map_len - 8 - (size_t)n;
    size_t count = json_object_size(st->header);
    st->metadata = json_object_get(st->header, "__metadata__");
    if (st->metadata) {
        BA_CHECK(check_metadata(st, st->metadata, err));
        count--;
    }
    ba_status rc = BA_OK;
    st_span *spans = NULL;
    BA_ALLOC(spans, count, "safetensors offset table", done);
    BA_ALLOC(st->tensors, count, "safetensors tensor table", done);
    const char *name;
    json_t *entry;
    size_t k = 0;
    json_object_foreach(st->header, name, entry) {
        if (strcmp(name, "__metadata__") == 0) continue;
        BA_TRY(parse_tensor_entry(st, name, entry, data, data_len, &st->tensors[k], &spans[k],
                                  err), done);
        k++;
    }
    st->n_tensors = k;
    BA_TRY(check_tiling(st, spans, k, data_len, err), done);
    qsort(st->tensors, st->n_tensors, sizeof *st->tensors, compare_by_name);
done:
    free(spans);
    return rc;
}

ba_status ba_safetensors_open(const char *path, ba_safetensors **out, ba_error *err)
{
    *out = NULL;
    ba_status rc = BA_OK;
    ba_safetensors *st = ba_calloc(1, sizeof *st, "safetensors handle", err);
    if (!st) return BA_ERR_NOMEM;
    st->fd = -1;
    if (strlen(path) >= sizeof st->path) {
        rc = ba_fail(err, BA_ERR_USAGE, "%.200s...: path too long", path);
        goto fail;
    }
    snprintf(st->path, sizeof st->path, "%s", path);
    BA_TRY(map_file(st, err), fail);
    BA_TRY(parse_header(st, err), fail);
    *out = st;
    return BA_OK;
fail:
    ba_safetensors_close(st);
    return rc;
}

void ba_safetensors_close(ba_safetensors *st)
{
    if (!st) return;
    if (st->map) {
        unregister_mapping(st);
        munmap(st->map, st->map_len);
    }
    if (st->fd >= 0) close(st->fd);
    if (st->header) json_decref(st->header);
    free(st->tensors);
    free(st);
}

const char *ba_safetensors_path(const ba_safetensors *st) { return st->path; }
size_t ba_safetensors_count(const ba_safetensors *st) { return st->n_tensors; }

const ba_tensor *ba_safetensors_at(const ba_safetensors *st, size_t i)
{
    return i < st->n_tensors ? &st->tensors[i] : NULL;
}

static const ba_tensor *find_sorted(const ba_tensor *table, size_t n, const char *name)
{
    ba_tensor key = {.name = name};
    return bsearch(&key, table, n, sizeof *table, compare_by_name);
}

const ba_tensor *ba_safetensors_lookup(const ba_safetensors *st, const char *name)
{
    return find_sorted(st->tensors, st->n_tensors, name);
}

const char *ba_safetensors_metadata(const ba_safetensors *st, const char *key)
{
    if (!st->metadata) return NULL;
    json_t *v = json_object_get(st->metadata, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* ---- checkpoint directories ----------------------------------------------- */

struct ba_checkpoint {
    char dir[BA_PATH_MAX];
    ba_safetensors **files;
    size_t n_files;
    ba_tensor *tensors; /* copies of every file's entries, sorted by name */
    size_t n_tensors;
};

static ba_status add_file(ba_checkpoint *ck, const char *name, ba_error *err)
{
    char path[BA_PATH_MAX];
    BA_CHECK(ba_join_path(path, sizeof path, ck->dir, name, err));
    ba_safetensors **grown = realloc(ck->files, (ck->n_files + 1) * sizeof *grown);
    if (!grown) return ba_fail(err, BA_ERR_NOMEM, "%s: cannot grow the shard list", ck->dir);
    ck->files = grown;
    BA_CHECK(ba_safetensors_open(path, &ck->files[ck->n_files], err));
    ck->n_files++;
    return BA_OK;
}

static ba_safetensors *file_named(const ba_checkpoint *ck, const char *name)
{
    for (size_t i = 0; i < ck->n_files; i++) {
        const char *p = ck->files[i]->path;
        size_t lp = strlen(p), ln = strlen(name);
        if (lp > ln && p[lp - ln - 1] == '/' && strcmp(p + lp - ln, name) == 0)
            return ck->files[i];
    }
    return NULL;
}

/* Open the shards named by the index and check the index against them. */
static ba_status open_sharded(ba_checkpoint *ck, const char *index_path, ba_error *err)
{
    ba_status rc = BA_OK;
    json_error_t jerr;
    BA_CHECK(ba_require_regular(index_path, err));
    json_t *root = json_load_file(index_path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return ba_fail(err, BA_ERR_FORMAT, "%s: not valid JSON (line %d, column %d): %s",
                       index_path, jerr.line, jerr.column, jerr.text);
    json_t *map = json_object_get(root, "weight_map");
    if (!json_is_object(map)) {
        rc = ba_fail(err, BA_ERR_FORMAT, "%s: missing object \"weight_map\" (tensor -> shard file)",
                     index_path);
        goto done;
    }
    const char *tname;
    json_t *jshard;
    json_object_foreach(map, tname, jshard) {
        if (!json_is_string(jshard)) {
            rc = ba_fail(err, BA_ERR_FORMAT, "%s: weight_map['%s'] must be a file name",
                         index_path, tname);
            goto done;
        }
        const char *shard = json_string_value(jshard);
        if (shard[0] == '\0' || strchr(shard, '/')) {
            rc = ba_fail(err, BA_ERR_FORMAT,
                         "%s: weight_map['%s'] = '%s' must be a file name in the same directory",
                         index_path, tname, shard);
            goto done;
        }
        if (file_named(ck, shard)) continue;
        char path[BA_PATH_MAX];
        BA_TRY(ba_join_path(path, sizeof path, ck->dir, shard, err), done);
        if (!ba_file_exists(path)) {
            rc = ba_fail(err, BA_ERR_IO, "%s: shard '%s' (holding tensor '%s') does not exist "
                         "in %s", index_path, shard, tname, ck->dir);
            goto done;
        }
        BA_TRY(add_file(ck, shard, err), done);
    }
    if (ck->n_files == 0) {
        rc = ba_fail(err, BA_ERR_FORMAT, "%s: weight_map is empty", index_path);
        goto done;
    }
    /* Every listed tensor is in its shard; every shard tensor is listed there. */
    json_object_foreach(map, tname, jshard) {
        ba_safetensors *st = file_named(ck, json_string_value(jshard));
        if (!ba_safetensors_lookup(st, tname)) {
            rc = ba_fail(err, BA_ERR_FORMAT, "%s: weight_map puts tensor '%s' in %s, which does "
                         "not contain it", index_path, tname, st->path);
            goto done;
        }
    }
    for (size_t f = 0; f < ck->n_files; f++) {
        const ba_safetensors *st = ck->files[f];
        for (size_t i = 0; i < st->n_tensors; i++) {
            json_t *where = json_object_get(map, st->tensors[i].name);
            if (!where || file_named(ck, json_string_value(where)) != st) {
                rc = ba_fail(err, BA_ERR_FORMAT, "%s: tensor '%s' is not listed in %s's weight_map "
                             "for this shard", st->path, st->tensors[i].name, index_path);
                goto done;
            }
        }
    }
done:
    json_decref(root);
    return rc;
}

static ba_status build_table(ba_checkpoint *ck, ba_error *err)
{
    size_t total = 0;
    for (size_t f = 0; f < ck->n_files; f++) total += ck->files[f]->n_tensors;
    ck->tensors = ba_calloc(total, sizeof *ck->tensors, "checkpoint tensor table", err);
    if (!ck->tensors) return BA_ERR_NOMEM;
    for (size_t f = 0; f < ck->n_files; f++)
        for (size_t i = 0; i < ck->files[f]->n_tensors; i++)
            ck->tensors[ck->n_tensors++] = ck->files[f]->tensors[i];
    qsort(ck->tensors, ck->n_tensors, sizeof *ck->tensors, compare_by_name);
    for (size_t i = 1; i < ck->n_tensors; i++)
        if (strcmp(ck->tensors[i - 1].name, ck->tensors[i].name) == 0)
            return ba_fail(err, BA_ERR_FORMAT, "%s: tensor '%s' appears twice (in %s and %s)",
                           ck->dir, ck->tensors[i].name, ck->tensors[i - 1].file,
                           ck->tensors[i].file);
    return BA_OK;
}

ba_status ba_checkpoint_open(const char *dir, ba_checkpoint **out, ba_error *err)
{
    *out = NULL;
    ba_status rc = BA_OK;
    ba_checkpoint *ck = ba_calloc(1, sizeof *ck, "checkpoint handle", err);
    if (!ck) return BA_ERR_NOMEM;
    char single[BA_PATH_MAX], index[BA_PATH_MAX];
    int n = snprintf(ck->dir, sizeof ck->dir, "%s", dir);
    if (n < 0 || (size_t)n >= sizeof ck->dir) {
        rc = ba_fail(err, BA_ERR_USAGE, "%.200s...: path too long", dir);
        goto fail;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        rc = ba_fail(err, BA_ERR_IO, "%s: not a checkpoint directory (%s)", dir, strerror(errno));
        goto fail;
    }
    if (!S_ISDIR(sb.st_mode)) {
        rc = ba_fail(err, BA_ERR_IO, "%s: not a checkpoint directory (not a directory)", dir);
        goto fail;
    }
    BA_TRY(ba_join_path(single, sizeof single, dir, "model.safetensors", err), fail);
    BA_TRY(ba_join_path(index, sizeof index, dir, "model.safetensors.index.json", err), fail);
    if (ba_file_exists(single)) {
        BA_TRY(add_file(ck, "model.safetensors", err), fail);
    } else if (ba_file_exists(index)) {
        BA_TRY(open_sharded(ck, index, err), fail);
    } else {
        rc = ba_fail(err, BA_ERR_IO, "%s: no model.safetensors or model.safetensors.index.json "
                     "(only safetensors checkpoints are supported)", dir);
        goto fail;
    }
    BA_TRY(build_table(ck, err), fail);
    *out = ck;
    return BA_OK;
fail:
    ba_checkpoint_close(ck);
    return rc;
}

void ba_checkpoint_close(ba_checkpoint *ck)
{
    if (!ck) return;
    for (size_t f = 0; f < ck->n_files; f++) ba_safetensors_close(ck->files[f]);
    free(ck->files);
    free(ck->tensors);
    free(ck);
}

const char *ba_checkpoint_dir(const ba_checkpoint *ck) { return ck->dir; }
size_t ba_checkpoint_count(const ba_checkpoint *ck) { return ck->n_tensors; }
size_t ba_checkpoint_n_files(const ba_checkpoint *ck) { return ck->n_files; }

const ba_tensor *ba_checkpoint_at(const ba_checkpoint *ck, size_t i)
{
    return i < ck->n_tensors ? &ck->tensors[i] : NULL;
}

const ba_tensor *ba_checkpoint_lookup(const ba_checkpoint *ck, const char *name)
{
    return find_sorted(ck->tensors, ck->n_tensors, name);
}

ba_status ba_checkpoint_get(const ba_checkpoint *ck, const char *name, const ba_tensor **out,
                            ba_error *err)
{
    *out = ba_checkpoint_lookup(ck, name);
    if (!*out)
        return ba_fail(err, BA_ERR_FORMAT, "%s: checkpoint has no tensor '%s'", ck->dir, name);
    return BA_OK;
}

/* ---- writing -------------------------------------------------------------- */

struct ba_st_writer {
    char path[BA_PATH_MAX];
    char temp_path[BA_PATH_MAX];
    FILE *f;
    size_t expected; /* data bytes the header promises */
    size_t written;
};

static ba_status build_header(const char *path, const ba_tensor_spec *specs, size_t n_specs,
                              const char *const *meta, size_t n_meta, char **text,
                              size_t *total_data, ba_error *err)
{
    ba_status rc = BA_OK;
    json_t *root = json_object();
    if (!root) return ba_fail(err, BA_ERR_NOMEM, "%s: cannot build the header", path);
    if (n_meta) {
        json_t *m = json_object();
        for (size_t i = 0; i < n_meta; i++)
            json_object_set_new(m, meta[2 * i], json_string(meta[2 * i + 1]));
        json_object_set_new(root, "__metadata__", m);
    }
    size_t offset = 0;
    for (size_t i = 0; i < n_specs; i++) {
        const ba_tensor_spec *s = &specs[i];
        if ((unsigned)s->dtype >= BA_DTYPE_COUNT || s->rank < 0 || s->rank > BA_TENSOR_MAX_RANK) {
            rc = ba_fail(err, BA_ERR_INTERNAL, "%s: tensor '%s': bad dtype or rank", path, s->name);
            goto done;
        }
        size_t bytes = ba_tensor_spec_bytes(s);
        bool empty = false;
        for (int d = 0; d < s->rank; d++) empty |= s->shape[d] == 0;
        if (bytes == 0 && !empty) {
            rc = ba_fail(err, BA_ERR_INTERNAL, "%s: tensor '%s': size overflows", path, s->name);
            goto done;
        }
        if (json_object_get(root, s->name)) {
            rc = ba_fail(err, BA_ERR_INTERNAL, "%s: tensor '%s' given twice", path, s->name);
            goto done;
        }
        json_t *shape = json_array();
        for (int d = 0; d < s->rank; d++) json_array_append_new(shape, json_integer(s->shape[d]));
        json_t *entry = json_object();
        json_object_set_new(entry, "dtype", json_string(ba_dtype_name(s->dtype)));
        json_object_set_new(entry, "shape", shape);
        json_object_set_new(entry, "data_offsets",
                            json_pack("[II]", (json_int_t)offset, (json_int_t)(offset + bytes)));
        json_object_set_new(root, s->name, entry);
        offset += bytes;
    }
    *text = json_dumps(root, JSON_COMPACT);
    if (!*text) rc = ba_fail(err, BA_ERR_NOMEM, "%s: cannot serialise the header", path);
    *total_data = offset;
done:
    json_decref(root);
    return rc;
}

ba_status ba_st_writer_open(const char *path, const ba_tensor_spec *specs, size_t n_specs,
                            const char *const *meta, size_t n_meta, ba_st_writer **out,
                            ba_error *err)
{
    *out = NULL;
    ba_status rc = BA_OK;
    char *header = NULL;
    ba_st_writer *w = ba_calloc(1, sizeof *w, "safetensors writer", err);
    if (!w) return BA_ERR_NOMEM;
    int n1 = snprintf(w->path, sizeof w->path, "%s", path);
    int n2 = snprintf(w->temp_path, sizeof w->temp_path, "%s.tmp-XXXXXX", path);
    if (n1 < 0 || n2 < 0 || (size_t)n2 >= sizeof w->temp_path) {
        rc = ba_fail(err, BA_ERR_USAGE, "%.200s...: path too long", path);
        goto fail;
    }
    BA_TRY(build_header(path, specs, n_specs, meta, n_meta, &header, &w->expected, err), fail);
    int fd = mkstemp(w->temp_path);
    if (fd < 0) {
        rc = ba_fail(err, BA_ERR_IO, "%s: cannot create: %s", w->temp_path, strerror(errno));
        w->temp_path[0] = '\0';
        goto fail;
    }
    fchmod(fd, 0644);
    w->f = fdopen(fd, "wb");
    if (!w->f) {
        close(fd);
        rc = ba_fail(err, BA_ERR_IO, "%s: cannot open for writing", w->temp_path);
        goto fail;
    }
    /* Pad the header with spaces so the data area starts 8-byte aligned. */
    size_t len = strlen(header);
    size_t padded = (len + 7) / 8 * 8;
    unsigned char prefix[8];
    for (int i = 0; i < 8; i++) prefix[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    bool ok = fwrite(prefix, 1, 8, w->f) == 8 && fwrite(header, 1, len, w->f) == len;
    for (size_t i = len; ok && i < padded; i++) ok = fputc(' ', w->f) != EOF;
    if (!ok) {
        rc = ba_fail(err, BA_ERR_IO, "%s: cannot write the header: %s", w->temp_path,
                     strerror(errno));
        goto fail;
    }
    free(header);
    *out = w;
    return BA_OK;
fail:
    free(header);
    ba_st_writer_abort(w);
    return rc;
}

ba_status ba_st_writer_write(ba_st_writer *w, const void *bytes, size_t n, ba_error *err)
{
    if (n > w->expected - w->written)
        return ba_fail(err, BA_ERR_INTERNAL, "%s: %zu more data bytes than the header describes",
                       w->path, n - (w->expected - w->written));
    if (n && fwrite(bytes, 1, n, w->f) != n)
        return ba_fail(err, BA_ERR_IO, "%s: write failed: %s", w->temp_path, strerror(errno));
    w->written += n;
    return BA_OK;
}

ba_status ba_st_writer_finish(ba_st_writer *w, ba_error *err)
{
    ba_status rc = BA_OK;
    if (w->written != w->expected) {
        rc = ba_fail(err, BA_ERR_INTERNAL, "%s: %zu data bytes written, the header describes %zu",
                     w->path, w->written, w->expected);
        goto fail;
    }
    FILE *f = w->f;
    w->f = NULL;
    if (fclose(f) != 0) {
        rc = ba_fail(err, BA_ERR_IO, "%s: cannot close: %s", w->temp_path, strerror(errno));
        goto fail;
    }
    if (rename(w->temp_path, w->path) != 0) {
        rc = ba_fail(err, BA_ERR_IO, "%s: cannot rename from %s: %s", w->path, w->temp_path,
                     strerror(errno));
        goto fail;
    }
    free(w);
    return BA_OK;
fail:
    ba_st_writer_abort(w);
    return rc;
}

void ba_st_writer_abort(ba_st_writer *w)
{
    if (!w) return;
    if (w->f) fclose(w->f);
    if (w->temp_path[0]) unlink(w->temp_path);
    free(w);
}
