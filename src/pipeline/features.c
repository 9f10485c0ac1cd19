/* features.c — the `features` stage (see features.h). */
#define _XOPEN_SOURCE 700 /* realpath */
#include "brainalign/pipeline/features.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "brainalign/core/fs.h"
#include "brainalign/core/hash.h"
#include "brainalign/core/outfile.h"
#include "brainalign/io/features_io.h"
#include "brainalign/lm/adapter.h"
#include "brainalign/lm/model.h"
#include "brainalign/lm/safetensors.h"
#include "brainalign/lm/train.h"
#include "brainalign/parallel/parallel.h"
#include "brainalign/parallel/fault.h"
#include "brainalign/lm/tokenizer.h"

void ba_features_config_defaults(ba_features_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->format = BA_STIM_AUTO;
    cfg->all_layers = true;
    cfg->bos = BA_BOS_AUTO;
    cfg->matmul = BA_MATMUL_F32;
    ba_augment_options_defaults(&cfg->augment);
}

ba_status ba_bos_mode_parse(const char *text, ba_bos_mode *mode, ba_error *err)
{
    if (strcmp(text, "auto") == 0) *mode = BA_BOS_AUTO;
    else if (strcmp(text, "yes") == 0) *mode = BA_BOS_YES;
    else if (strcmp(text, "no") == 0) *mode = BA_BOS_NO;
    else return ba_fail(err, BA_ERR_USAGE, "--bos is auto, yes or no, not '%s'", text);
    return BA_OK;
}

/* ------------------------------------------------------ the window rule */

size_t ba_feature_window_of_token(size_t t, size_t context, size_t stride)
{
    if (t < context) return 0;
    return (t + 1 - context + stride - 1) / stride;
}

size_t ba_feature_window_count(size_t n, size_t context, size_t stride)
{
    return n == 0 ? 0 : 1 + ba_feature_window_of_token(n - 1, context, stride);
}

void ba_feature_window_span(size_t k, size_t n, size_t context, size_t stride, size_t *begin,
                            size_t *end, size_t *own_begin, size_t *own_end)
{
    *begin = k * stride;
    *end = *begin + context < n ? *begin + context : n;
    /* Tokens before the previous window's end belong to an earlier window. */
    *own_begin = k == 0 ? 0 : (k - 1) * stride + context;
    *own_end = *end;
}

/* ------------------------------------------------------ checkpoint identity */

/* A safetensors file: its name, its size, its 8-byte length and JSON header. */
static ba_status hash_safetensors_header(uint64_t *h, const char *dir, const char *name,
                                         ba_error *err)
{
    char path[BA_PATH_MAX + 256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat sb;
    if (stat(path, &sb) != 0) return ba_fail(err, BA_ERR_IO, "%s: cannot stat", path);
    BA_CHECK(ba_require_regular(path, err));
    unsigned char len8[8] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return ba_fail(err, BA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t got = fread(len8, 1, 8, f);
    fclose(f);
    uint64_t header = 0;
    for (int i = 7; i >= 0; i--) header = (header << 8) | len8[i];
    if (got != 8 || header > (uint64_t)sb.st_size - 8 || header > (100u << 20))
        return ba_fail(err, BA_ERR_FORMAT, "%s: not a safetensors file (bad header length)", path);
    long long size = (long long)sb.st_size;
    *h = ba_fnv1a(*h, name, strlen(name) + 1);
    *h = ba_fnv1a(*h, &size, sizeof size);
    return ba_hash_file(path, 8 + (size_t)header, h, NULL, err);
}

static int is_safetensors_entry(const struct dirent *e)
{
    return e->d_name[0] != '.' && ba_has_suffix(e->d_name, ".safetensors", true);
}

ba_status ba_checkpoint_identity(const char *model_dir, char *out, size_t size, ba_error *err)
{
    static const char *const SMALL_FILES[] = {
        "config.json", "vocab.json", "merges.txt", "encoder.json", "vocab.bpe",
        "tokenizer.json", "tokenizer.model", "model.safetensors.index.json",
    };
    char absolute[BA_PATH_MAX], path[BA_PATH_MAX + 64];
    if (!realpath(model_dir, absolute))
        return ba_fail(err, BA_ERR_IO, "%s: cannot resolve the path: %s", model_dir,
                       strerror(errno));
    uint64_t h = BA_FNV1A_OFFSET;
    for (size_t i = 0; i < sizeof SMALL_FILES / sizeof *SMALL_FILES; i++) {
        snprintf(path, sizeof path, "%s/%s", model_dir, SMALL_FILES[i]);
        struct stat sb;
        if (stat(path, &sb) != 0) continue;
        h = ba_fnv1a(h, SMALL_FILES[i], strlen(SMALL_FILES[i]) + 1);
        BA_CHECK(ba_hash_file(path, 0, &h, NULL, err));
    }
    struct dirent **list = NULL;
    int n = scandir(model_dir, &list, is_safetensors_entry, alphasort);
    if (n < 0) return ba_fail(err, BA_ERR_IO, "%s: cannot list: %s", model_dir, strerror(errno));
    ba_status rc = BA_OK;
    for (int i = 0; i < n; i++) {
        if (rc == BA_OK) rc = hash_safetensors_header(&h, model_dir, list[i]->d_name, err);
        free(list[i]);
    }
    free(list);
    if (rc == BA_OK && n == 0)
        rc = ba_fail(err, BA_ERR_IO, "%s: no *.safetensors files", model_dir);
    if (rc == BA_OK) snprintf(out, size, "%s#fnv1a64:%016llx", absolute, (unsigned long long)h);
    return rc;
}

/* ------------------------------------------------------ stories */

/* A story entry of a directory read in a named format. */
typedef struct {
    char name[256];
    char path[BA_PATH_MAX + 600];
} forced_entry;

ba_status ba_adapter_identity(const char *adapter_dir, char *out, size_t size, ba_error *err)
{
    static const char *const FILES[] = {"adapter_config.json", "adapter_model.safetensors"};
    char absolute[PATH_MAX], path[BA_PATH_MAX + 64];
    if (!realpath(adapter_dir, absolute))
        return ba_fail(err, BA_ERR_IO, "%s: cannot resolve the path: %s", adapter_dir,
                       strerror(errno));
    uint64_t h = BA_FNV1A_OFFSET;
    for (size_t i = 0; i < sizeof FILES / sizeof *FILES; i++) {
        snprintf(path, sizeof path, "%s/%s", adapter_dir, FILES[i]);
        h = ba_fnv1a(h, FILES[i], strlen(FILES[i]) + 1);
        BA_CHECK(ba_hash_file(path, 0, &h, NULL, err));
    }
    snprintf(out, size, "%s#fnv1a64:%016llx", absolute, (unsigned long long)h);
    return BA_OK;
}

/* The file of directory entry `entry` in `format`, and its story name. */
static bool forced_match(const char *dir, const char *entry, ba_stimulus_format format,
                         forced_entry *out)
{
    if (entry[0] == '.') return false;
    char path[BA_PATH_MAX + 300];
    snprintf(path, sizeof path, "%s/%s", dir, entry);
    struct stat sb;
    if (stat(path, &sb) != 0) return false;
    const char *ext = NULL;
    if (S_ISDIR(sb.st_mode) && format == BA_STIM_ALIGN_CSV) {
        snprintf(out->path, sizeof out->path, "%s/align.csv", path);
        if (stat(out->path, &sb) != 0 || !S_ISREG(sb.st_mode)) return false;
        snprintf(out->name, sizeof out->name, "%s", entry);
        return strlen(entry) < sizeof out->name;
    }
    if (!S_ISREG(sb.st_mode)) return false;
    if (format == BA_STIM_TEXTGRID && ba_has_suffix_ci(entry, ".TextGrid", true)) ext = ".TextGrid";
    else if (format == BA_STIM_WORDS_TSV && ba_has_suffix_ci(entry, ".tsv", true)) ext = ".tsv";
    else if (format != BA_STIM_TEXTGRID && ba_has_suffix_ci(entry, ".csv", true)) ext = ".csv";
    if (!ext) return false;
    size_t stem = strlen(entry) - strlen(ext);
    if (stem >= sizeof out->name) return false;
    snprintf(out->name, sizeof out->name, "%.*s", (int)stem, entry);
    snprintf(out->path, sizeof out->path, "%s", path);
    return true;
}

static int compare_forced(const void *a, const void *b)
{
    return strcmp(((const forced_entry *)a)->name, ((const forced_entry *)b)->name);
}

static const char *format_name(ba_stimulus_format f)
{
    return f == BA_STIM_ALIGN_CSV ? "align-csv" : f == BA_STIM_TEXTGRID ? "textgrid"
           : f == BA_STIM_WORDS_TSV ? "tsv" : "auto";
}

static ba_status list_forced(const char *dir, ba_stimulus_format format, forced_entry **out,
                             size_t *n, ba_error *err)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return ba_fail(err, BA_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    ba_status rc = BA_OK;
    size_t cap = 0;
    forced_entry *v = NULL, e;
    struct dirent *de;
    while (rc == BA_OK && (de = readdir(d)) != NULL) {
        if (!forced_match(dir, de->d_name, format, &e)) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            forced_entry *bigger = realloc(v, cap * sizeof *v);
            if (!bigger) rc = ba_fail(err, BA_ERR_NOMEM, "%s: story list", dir);
            else v = bigger;
        }
        if (rc == BA_OK) v[(*n)++] = e;
    }
    closedir(d);
    if (rc == BA_OK && *n > 1) qsort(v, *n, sizeof *v, compare_forced);
    for (size_t i = 1; rc == BA_OK && i < *n; i++)
        if (strcmp(v[i].name, v[i - 1].name) == 0)
            rc = ba_fail(err, BA_ERR_FORMAT, "%s: story '%s' is given twice (%s and %s)", dir,
                         v[i].name, v[i - 1].path, v[i].path);
    if (rc == BA_OK && *n == 0)
        rc = ba_fail(err, BA_ERR_FORMAT, "%s: no stories in the %s format (expected %s)", dir,
                     format_name(format),
                     format == BA_STIM_ALIGN_CSV ? "<story>/align.csv or <story>.csv"
                     : format == BA_STIM_TEXTGRID ? "<story>.TextGrid"
                                                  : "<story>.tsv or <story>.csv");
    if (rc != BA_OK) {
        free(v);
        *n = 0;
        return rc;
    }
    *out = v;
    return BA_OK;
}

static void add_stats(ba_story_read_stats *total, const ba_story_read_stats *one)
{
    total->n_interpolated += one->n_interpolated;
    total->n_clamped += one->n_clamped;
    total->n_skipped += one->n_skipped;
}

/* A directory read in a named format: every story, or those named. */
static ba_status read_forced(const ba_features_config *cfg, ba_story **stories, size_t *n_out,
                             ba_story_read_stats *stats, ba_error *err)
{
    forced_entry *all = NULL;
    size_t n_all = 0, n_sel = cfg->stories ? cfg->n_stories : 0, n_read = 0;
    BA_CHECK(list_forced(cfg->stimuli_dir, cfg->format, &all, &n_all, err));
    if (!cfg->stories) n_sel = n_all;
    ba_status rc = BA_OK;
    ba_story *out = ba_calloc(n_sel ? n_sel : 1, sizeof *out, "the stories", err);
    if (!out) rc = BA_ERR_NOMEM;
    for (; rc == BA_OK && n_read < n_sel; n_read++) {
        const forced_entry *e = &all[n_read];
        if (cfg->stories) {
            forced_entry key;
            snprintf(key.name, sizeof key.name, "%s", cfg->stories[n_read]);
            e = bsearch(&key, all, n_all, sizeof *all, compare_forced);
            if (!e) {
                rc = ba_fail(err, BA_ERR_IO, "%s: no story '%s' in the %s format",
                             cfg->stimuli_dir, cfg->stories[n_read], format_name(cfg->format));
                break;
            }
        }
        ba_story_read_stats one;
        rc = ba_story_read_ex(e->path, cfg->format, e->name, &out[n_read], &one, err);
        if (rc != BA_OK) break;
        add_stats(stats, &one);
    }
    free(all);
    if (rc != BA_OK) {
        ba_story_array_free(out, n_read);
        return rc;
    }
    *stories = out;
    *n_out = n_sel;
    return BA_OK;
}

static ba_status read_stories(const ba_features_config *cfg, ba_story **stories, size_t *n,
                              ba_story_read_stats *stats, ba_error *err)
{
    *stories = NULL;
    *n = 0;
    memset(stats, 0, sizeof *stats);
    struct stat sb;
    if (stat(cfg->stimuli_dir, &sb) != 0)
        return ba_fail(err, BA_ERR_IO, "%s: stimuli not found: %s", cfg->stimuli_dir,
                       strerror(errno));
    for (size_t i = 0; cfg->stories && i < cfg->n_stories; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->stories[i], cfg->stories[j]) == 0)
                return ba_fail(err, BA_ERR_USAGE, "story '%s' is asked for twice",
                               cfg->stories[i]);
    if (S_ISREG(sb.st_mode)) {
        if (cfg->stories)
            return ba_fail(err, BA_ERR_USAGE, "%s is one story file: --stories selects stories "
                           "of a directory", cfg->stimuli_dir);
        ba_story *one = ba_calloc(1, sizeof *one, "the story", err);
        if (!one) return BA_ERR_NOMEM;
        ba_status rc = ba_story_read_ex(cfg->stimuli_dir, cfg->format, NULL, one, stats, err);
        if (rc != BA_OK) {
            free(one);
            return rc;
        }
        *stories = one;
        *n = 1;
        return BA_OK;
    }
    if (cfg->format != BA_STIM_AUTO) return read_forced(cfg, stories, n, stats, err);
    return ba_story_dir_read_ex(cfg->stimuli_dir, cfg->stories, cfg->n_stories, stories, n,
                                stats, err);
}

/* ------------------------------------------------------ settings from the model */

/* config.json's bos_token_id, else the architecture's Hugging Face default. */
static ba_status bos_token_id(const char *dir, const ba_model_config *mc, int *id, ba_error *err)
{
    char path[BA_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t jerr;
    BA_CHECK(ba_require_regular(path, err)); /* a FIFO would block json_load_file */
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        return ba_fail(err, BA_ERR_FORMAT, "%s: not valid JSON (line %d): %s", path, jerr.line,
                       jerr.text);
    json_t *v = json_object_get(root, "bos_token_id");
    long long value = mc->arch == BA_ARCH_LLAMA ? 1 : 50256;
    bool given = v && json_is_integer(v);
    if (given) value = json_integer_value(v);
    json_decref(root);
    if (value < 0 || value >= mc->vocab_size)
        return ba_fail(err, BA_ERR_VALUE, "%s: the BOS token %lld (%s) is outside the "
                       "vocabulary [0, %d)", path, value,
                       given ? "bos_token_id" : "no bos_token_id; the default", mc->vocab_size);
    *id = (int)value;
    return BA_OK;
}

typedef struct {
    size_t context, stride;
    int bos;              /* -1: none */
    int layers[BA_FEATURES_MAX_LAYERS];
    int n_layers;
} run_settings;

static ba_status resolve_settings(const ba_features_config *cfg, const ba_model *model,
                                  run_settings *rs, ba_error *err)
{
    const ba_model_config *mc = ba_model_get_config(model);
    int L = mc->n_layers;
    if (cfg->all_layers) {
        if (L + 1 > BA_FEATURES_MAX_LAYERS)
            return ba_fail(err, BA_ERR_USAGE, "%s: %d hidden states, at most %d can be kept",
                           cfg->model_dir, L + 1, BA_FEATURES_MAX_LAYERS);
        for (int l = 0; l <= L; l++) rs->layers[l] = l;
        rs->n_layers = L + 1;
    } else {
        if (cfg->n_layers < 1 || cfg->n_layers > BA_FEATURES_MAX_LAYERS)
            return ba_fail(err, BA_ERR_USAGE, "--layers: give 1 to %d layers or 'all'",
                           BA_FEATURES_MAX_LAYERS);
        for (int k = 0; k < cfg->n_layers; k++) {
            int l = cfg->layers[k];
            if (l < 0 || l > L)
                return ba_fail(err, BA_ERR_USAGE, "--layers: layer %d does not exist: "
                               "%s/config.json has %d layers, so the hidden states are 0 "
                               "(embeddings) .. %d (the last, after the final norm)", l,
                               cfg->model_dir, L, L);
            for (int j = 0; j < k; j++)
                if (cfg->layers[j] == l)
                    return ba_fail(err, BA_ERR_USAGE, "--layers: layer %d is listed twice", l);
            rs->layers[k] = l;
        }
        rs->n_layers = cfg->n_layers;
    }
    bool bos = cfg->bos == BA_BOS_YES || (cfg->bos == BA_BOS_AUTO && mc->arch == BA_ARCH_LLAMA);
    rs->bos = -1;
    if (bos) BA_CHECK(bos_token_id(cfg->model_dir, mc, &rs->bos, err));
    long max_story = ba_model_max_tokens(model) - (bos ? 1 : 0);
    long context = cfg->context ? cfg->context : BA_FEATURES_DEFAULT_CONTEXT;
    if (context < 1) return ba_fail(err, BA_ERR_USAGE, "--context must be at least 1");
    if (max_story < 1)
        return ba_fail(err, BA_ERR_VALUE, "%s: the model takes %d positions, no room for a "
                       "story token", cfg->model_dir, ba_model_max_tokens(model));
    if (context > max_story) context = max_story;
    long stride = cfg->stride ? cfg->stride : (context / 2 > 0 ? context / 2 : 1);
    if (stride < 1 || stride > context)
        return ba_fail(err, BA_ERR_USAGE, "--stride %ld must be between 1 and the context, %ld "
                       "tokens (the model takes %d positions%s)", stride, context,
                       ba_model_max_tokens(model), bos ? ", one of them the BOS" : "");
    rs->context = (size_t)context;
    rs->stride = (size_t)stride;
    return BA_OK;
}

/* ------------------------------------------------------ tokens */

typedef struct {
    int32_t *ids;
    size_t n_tokens;
    size_t *word_end;     /* [n_words]: one past each word's last token */
    size_t *word_begin;   /* [n_words]: each word's first token when words were
                             inserted between them; NULL: word_end[w-1] */
    size_t n_windows;
    size_t logp_offset;   /* into the run's token log-probability array */
} story_tokens;

static size_t first_word_ending_at_or_after(const size_t *word_end, size_t n_words,
                                            size_t token);

/* The token spans of the story's own words inside the augmented text:
 * word w is augmented word position[w]. */
static ba_status original_word_spans(const ba_augmented_story *aug, const size_t *aug_end,
                                     story_tokens *st, ba_error *err)
{
    st->word_begin = ba_calloc(aug->n_original ? aug->n_original : 1, sizeof *st->word_begin,
                               "word token starts", err);
    if (!st->word_begin) return BA_ERR_NOMEM;
    for (size_t w = 0; w < aug->n_original; w++) {
        size_t i = aug->position[w];
        st->word_begin[w] = i > 0 ? aug_end[i - 1] : 0;
        st->word_end[w] = aug_end[i];
    }
    return BA_OK;
}

/* Token ids of the text the model reads — the story's words, or the
 * augmented words when `aug` is given — and each story word's tokens. */
static ba_status tokenize_story(const ba_features_config *cfg, const ba_tokenizer *tok,
                                int vocab, const ba_story *story,
                                const ba_augmented_story *aug, story_tokens *st, ba_error *err)
{
    char *const *words = aug ? aug->words : story->words;
    size_t n_words = aug ? aug->n_words : story->n_words;
    st->word_end = ba_calloc(story->n_words ? story->n_words : 1, sizeof *st->word_end,
                             "word token ends", err);
    size_t *ends = aug ? ba_calloc(n_words ? n_words : 1, sizeof *ends, "word token ends", err)
                       : st->word_end;
    if (!st->word_end || !ends) {
        if (aug) free(ends);
        return BA_ERR_NOMEM;
    }
    ba_status rc = ba_tokenizer_encode_words(tok, words, n_words, &st->ids, &st->n_tokens, ends,
                                             err);
    if (rc != BA_OK) ba_context(err, "%s: story '%s' (tokenizer of %s)", cfg->stimuli_dir,
                                story->name, cfg->model_dir);
    if (rc == BA_OK && aug) rc = original_word_spans(aug, ends, st, err);
    if (aug) free(ends);
    if (rc != BA_OK) return rc;
    if (st->n_tokens == 0)
        return ba_fail(err, BA_ERR_VALUE, "%s: story '%s' has no tokens", cfg->stimuli_dir,
                       story->name);
    for (size_t t = 0; t < st->n_tokens; t++)
        if (st->ids[t] < 0 || st->ids[t] >= vocab) {
            size_t w = first_word_ending_at_or_after(st->word_end, story->n_words, t);
            bool own = w < story->n_words && (!st->word_begin || st->word_begin[w] <= t);
            return ba_fail(err, BA_ERR_VALUE, "%s: story '%s', %s %zu ('%.60s'): the tokenizer "
                           "gives token id %d but %s/config.json has vocab_size %d; the "
                           "tokenizer and the model do not belong together", cfg->stimuli_dir,
                           story->name, own ? "word" : "inserted text before word",
                           w < story->n_words ? w : story->n_words - 1,
                           story->words[w < story->n_words ? w : story->n_words - 1],
                           (int)st->ids[t], cfg->model_dir, vocab);
        }
    return BA_OK;
}

static void story_tokens_free(story_tokens *st, size_t n)
{
    for (size_t s = 0; st && s < n; s++) {
        free(st[s].ids);
        free(st[s].word_end);
        free(st[s].word_begin);
    }
    free(st);
}

/* ------------------------------------------------------ dealing windows */

typedef struct {
    size_t story, window, index;
    long cost;
    int rank;
} work_unit;

static int by_cost_then_index(const void *a, const void *b)
{
    const work_unit *x = a, *y = b;
    if (x->cost != y->cost) return x->cost > y->cost ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int by_index(const void *a, const void *b)
{
    const work_unit *x = a, *y = b;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Longest window first, each to the least loaded rank (ties: the lower
 * rank); the list comes back in global order. The same on every rank. */
static ba_status deal_windows(const story_tokens *st, size_t n_stories,
                              const run_settings *rs, int n_ranks, work_unit **units,
                              size_t *n_units, ba_error *err)
{
    size_t total = 0;
    for (size_t s = 0; s < n_stories; s++) total += st[s].n_windows;
    work_unit *u = ba_calloc(total ? total : 1, sizeof *u, "window list", err);
    long *load = ba_calloc((size_t)n_ranks, sizeof *load, "rank loads", err);
    if (!u || !load) {
        free(u);
        free(load);
        return BA_ERR_NOMEM;
    }
    size_t i = 0;
    for (size_t s = 0; s < n_stories; s++)
        for (size_t k = 0; k < st[s].n_windows; k++, i++) {
            size_t b, e, ob, oe;
            ba_feature_window_span(k, st[s].n_tokens, rs->context, rs->stride, &b, &e, &ob, &oe);
            u[i] = (work_unit){s, k, i, (long)(e - b) + (rs->bos >= 0), 0};
        }
    qsort(u, total, sizeof *u, by_cost_then_index);
    for (i = 0; i < total; i++) {
        int best = 0;
        for (int r = 1; r < n_ranks; r++)
            if (load[r] < load[best]) best = r;
        u[i].rank = best;
        load[best] += u[i].cost;
    }
    qsort(u, total, sizeof *u, by_index);
    free(load);
    *units = u;
    *n_units = total;
    return BA_OK;
}

/* ------------------------------------------------------ the forward passes */

typedef struct {
    const ba_features_config *cfg;
    const run_settings *rs;
    ba_model_ctx *ctx;    /* the run state of the forwards */
    const ba_story *stories;
    story_tokens *tokens;
    double *token_logp;   /* all stories' tokens; this rank's windows only */
    ba_features_writer *writer;
    int32_t *ids;         /* one window */
    float *hidden;        /* [n_layers][window][d] */
    float *logp;          /* [window] */
    size_t d;
} window_run;

/* First word whose last token is at or after `token`. */
static size_t first_word_ending_at_or_after(const size_t *word_end, size_t n_words,
                                            size_t token)
{
    size_t lo = 0, hi = n_words;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (word_end[mid] > token) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* Move the rows of the words' last tokens to the front of each layer's
 * slab, giving [n_layers][n_words][d] in place (each row moves to an
 * earlier or the same place, so increasing order never overwrites a row
 * still to be read). */
static void compact_word_rows(float *hidden, int n_layers, size_t n_tokens, size_t d,
                              const size_t *last_token, size_t n_words)
{
    for (int l = 0; l < n_layers; l++)
        for (size_t w = 0; w < n_words; w++)
            memmove(hidden + ((size_t)l * n_words + w) * d,
                    hidden + ((size_t)l * n_tokens + last_token[w]) * d, d * sizeof *hidden);
}

static ba_status run_window(window_run *wr, size_t s, size_t k, size_t *scratch_rows,
                            ba_error *err)
{
    const run_settings *rs = wr->rs;
    story_tokens *st = &wr->tokens[s];
    const ba_story *story = &wr->stories[s];
    size_t b, e, ob, oe, lead = rs->bos >= 0 ? 1 : 0;
    ba_feature_window_span(k, st->n_tokens, rs->context, rs->stride, &b, &e, &ob, &oe);
    size_t n = e - b + lead;
    if (lead) wr->ids[0] = rs->bos;
    memcpy(wr->ids + lead, st->ids + b, (e - b) * sizeof *wr->ids);
    BA_CHECK(ba_model_forward(wr->ctx, wr->ids, n, rs->layers, rs->n_layers, wr->hidden,
                              wr->logp, err));
    /* Token t sits at window position p = t - b + lead; its log-probability
     * is the prediction made at position p - 1. */
    double *logp = wr->token_logp + st->logp_offset;
    for (size_t t = ob; t < oe; t++) {
        size_t p = t - b + lead;
        logp[t] = p > 0 ? (double)wr->logp[p - 1] : NAN;
    }
    size_t w0 = first_word_ending_at_or_after(st->word_end, story->n_words, ob);
    size_t w1 = first_word_ending_at_or_after(st->word_end, story->n_words, oe);
    for (size_t w = w0; w < w1; w++) scratch_rows[w - w0] = st->word_end[w] - 1 - b + lead;
    compact_word_rows(wr->hidden, rs->n_layers, n, wr->d, scratch_rows, w1 - w0);
    /* Non-finite model outputs are an error here, where they are made (NaN
     * weights, an overflow in a layer), never written as features. */
    for (int l = 0; l < rs->n_layers; l++)
        for (size_t e_ = 0; e_ < (w1 - w0) * wr->d; e_++) {
            float v = wr->hidden[((size_t)l * (w1 - w0)) * wr->d + e_];
            if (!isfinite(v))
                return ba_fail(err, BA_ERR_NUMERIC, "story %s: hidden state of layer %d, "
                               "word %zu, unit %zu is %g (window %zu): non-finite model output "
                               "(NaN or inf weights?)", story->name, rs->layers[l],
                               w0 + e_ / wr->d, e_ % wr->d, (double)v, k);
        }
    for (size_t t = ob; t < oe; t++)
        if (t - b + lead > 0 && !isfinite(logp[t]))
            return ba_fail(err, BA_ERR_NUMERIC, "story %s: the model's log-probability of "
                           "token %zu is %g (window %zu): non-finite model output (NaN or "
                           "inf weights?)", story->name, t, logp[t], k);
    return ba_features_writer_put_hidden(wr->writer, s, (long)w0, (long)(w1 - w0), wr->hidden,
                                         err);
}

/* Every rank's token log-probabilities summed (each token has one owner,
 * the others hold 0), then rank 0 writes each story's surprisal. */
static ba_status write_surprisal(window_run *wr, size_t n_stories, size_t total_tokens,
                                 MPI_Comm comm, ba_error *err)
{
    BA_CHECK(ba_mpi_check(MPI_Allreduce(MPI_IN_PLACE, wr->token_logp, (int)total_tokens,
                                        MPI_DOUBLE, MPI_SUM, comm), "token log-probabilities",
                          err));
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    if (rank != 0) return BA_OK;
    ba_status rc = BA_OK;
    for (size_t s = 0; rc == BA_OK && s < n_stories; s++) {
        const ba_story *story = &wr->stories[s];
        const story_tokens *st = &wr->tokens[s];
        const double *logp = wr->token_logp + st->logp_offset;
        float *surprisal = ba_calloc(story->n_words, sizeof *surprisal, "surprisal", err);
        if (!surprisal) return BA_ERR_NOMEM;
        for (size_t w = 0, t = 0; w < story->n_words; w++) {
            double sum = 0;
            if (st->word_begin) t = st->word_begin[w]; /* skip inserted words' tokens */
            for (; t < st->word_end[w]; t++) sum += logp[t];
            surprisal[w] = (float)-sum;
        }
        rc = ba_features_writer_put_surprisal(wr->writer, s, 0, (long)story->n_words, surprisal,
                                              err);
        free(surprisal);
    }
    return rc;
}

/* ------------------------------------------------------ the stage */

static ba_status check_config(const ba_features_config *cfg, ba_error *err)
{
    if (!cfg->model_dir) return ba_fail(err, BA_ERR_USAGE, "--model is required");
    if (!cfg->stimuli_dir) return ba_fail(err, BA_ERR_USAGE, "--stimuli is required");
    if (!cfg->out_path) return ba_fail(err, BA_ERR_USAGE, "--out is required");
    if (cfg->stories && cfg->n_stories == 0)
        return ba_fail(err, BA_ERR_USAGE, "--stories: the list is empty");
    if (cfg->context < 0) return ba_fail(err, BA_ERR_USAGE, "--context must be at least 1");
    if (cfg->stride < 0) return ba_fail(err, BA_ERR_USAGE, "--stride must be at least 1");
    if (cfg->condition && !cfg->condition[0])
        return ba_fail(err, BA_ERR_USAGE, "--condition: the name is empty");
    if (cfg->associations && cfg->augment.placement == BA_PLACE_EVERY_K &&
        cfg->augment.every_k < 1)
        return ba_fail(err, BA_ERR_USAGE, "--every must be at least 1");
    return BA_OK;
}

/* Provenance of an augmented condition (root attributes). */
static ba_status record_associations(ba_h5file *f, const ba_features_config *cfg,
                                     const ba_features_summary *sum, ba_error *err)
{
    long long values[3] = {cfg->augment.every_k, (long long)cfg->augment.seed,
                           sum->n_inserted_words};
    BA_CHECK(ba_h5_set_attr_str(f, "/", "associations", cfg->associations, err));
    BA_CHECK(ba_h5_set_attr_str(f, "/", "policy", ba_augment_policy_name(&cfg->augment), err));
    BA_CHECK(ba_h5_set_attr_i64(f, "/", "every_k", &values[0], 1, err));
    BA_CHECK(ba_h5_set_attr_i64(f, "/", "seed", &values[1], 1, err));
    return ba_h5_set_attr_i64(f, "/", "inserted_words", &values[2], 1, err);
}

/* Everything every rank prepares the same way: model, settings, stories,
 * tokens. */
typedef struct {
    ba_model *model;
    ba_model_ctx *ctx;
    ba_adapter *adapter;        /* NULL without --adapter */
    ba_tokenizer *tok;
    run_settings rs;
    ba_story *stories;
    size_t n_stories;
    story_tokens *tokens;
    size_t total_tokens;
    ba_association_set assoc;   /* empty without --associations */
} prepared;

static void prepared_free(prepared *p)
{
    ba_association_set_free(&p->assoc);
    story_tokens_free(p->tokens, p->n_stories);
    ba_story_array_free(p->stories, p->n_stories);
    ba_tokenizer_destroy(p->tok);
    ba_model_ctx_destroy(p->ctx);
    ba_adapter_destroy(p->adapter);
    ba_model_destroy(p->model);
    memset(p, 0, sizeof *p);
}

static ba_status prepare(const ba_features_config *cfg, prepared *p, ba_features_summary *sum,
                         ba_error *err)
{
    ba_status rc = BA_OK;
    BA_TRY(ba_model_load(cfg->model_dir, &p->model, err), done);
    BA_TRY(ba_model_ctx_create(p->model, &p->ctx, err), done);
    BA_TRY(ba_model_ctx_set_matmul(p->ctx, cfg->matmul, err), done);
    if (cfg->adapter_dir) {
        BA_TRY(ba_adapter_load(cfg->adapter_dir, ba_model_get_config(p->model), &p->adapter,
                               err), done);
        BA_TRY(ba_model_ctx_set_adapter(p->ctx, p->adapter, err), done);
    }
    BA_TRY(ba_tokenizer_load(cfg->model_dir, &p->tok, err), done);
    BA_TRY(resolve_settings(cfg, p->model, &p->rs, err), done);
    BA_TRY(read_stories(cfg, &p->stories, &p->n_stories, &sum->stimuli, err), done);
    BA_ALLOC(p->tokens, p->n_stories, "story tokens", done);
    if (cfg->associations) {
        BA_TRY(ba_association_set_read(cfg->associations, &p->assoc, err), done);
        BA_TRY(ba_association_set_check(&p->assoc, p->stories, p->n_stories,
                                        cfg->augment.pause_s, err), done);
    }
    for (size_t s = 0; s < p->n_stories; s++) {
        story_tokens *st = &p->tokens[s];
        ba_augmented_story aug = {0};
        if (cfg->associations)
            BA_TRY(ba_augment_story(&p->stories[s], &p->assoc, &cfg->augment, p->stories,
                                    p->n_stories, &aug, err), done);
        rc = tokenize_story(cfg, p->tok, ba_model_vocab_size(p->model), &p->stories[s],
                            cfg->associations ? &aug : NULL, st, err);
        sum->n_insertions += aug.n_insertions;
        sum->n_inserted_words += (long)(aug.n_words - aug.n_original);
        ba_augmented_story_free(&aug);
        if (rc != BA_OK) goto done;
        st->n_windows = ba_feature_window_count(st->n_tokens, p->rs.context, p->rs.stride);
        st->logp_offset = p->total_tokens;
        p->total_tokens += st->n_tokens;
        sum->n_words += (long)p->stories[s].n_words;
        sum->n_tokens += (long)st->n_tokens;
        sum->n_windows += (long)st->n_windows;
    }
    if (p->total_tokens > (size_t)INT_MAX)
        rc = ba_fail(err, BA_ERR_VALUE, "%s: %zu tokens in all, at most %d at once",
                     cfg->stimuli_dir, p->total_tokens, INT_MAX);
done:
    return rc;
}

static ba_status alloc_window_buffers(window_run *wr, size_t **rows, ba_error *err)
{
    ba_status rc = BA_OK;
    size_t n = wr->rs->context + (wr->rs->bos >= 0);
    BA_ALLOC(wr->ids, n, "window token ids", done);
    BA_ALLOC(wr->logp, n, "window log-probabilities", done);
    BA_ALLOC(wr->hidden, (size_t)wr->rs->n_layers * n * wr->d, "window hidden states", done);
    BA_ALLOC(*rows, n, "word rows", done);
done:
    return rc;
}

/* CPU time of the whole process (every BLAS thread), in seconds. */
static double process_cpu_seconds(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return 0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static ba_status run_my_windows(window_run *wr, const work_unit *units, size_t n_units,
                                MPI_Comm comm, ba_features_summary *sum, ba_error *err)
{
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    ba_progress bar;
    ba_progress_begin(&bar, comm, wr->cfg->quiet, "features");
    size_t mine = 0, done = 0;
    for (size_t i = 0; i < n_units; i++) mine += units[i].rank == rank;
    size_t *rows = NULL;
    ba_status rc = alloc_window_buffers(wr, &rows, err);
    for (size_t i = 0; rc == BA_OK && i < n_units; i++) {
        if (units[i].rank != rank) continue;
        if (wr->cfg->stop_requested && *wr->cfg->stop_requested) {
            rc = ba_fail(err, BA_ERR_INTERRUPTED, "%s: stopped by a signal after %zu of this "
                         "rank's %zu windows; the unfinished output is removed (run again to "
                         "start afresh)", wr->cfg->out_path, done, mine);
            break;
        }
        double t0 = ba_now(), c0 = process_cpu_seconds();
        rc = ba_mapped_files_check(err); /* a checkpoint shrunk under us: an error, not SIGBUS */
        if (rc == BA_OK) rc = ba_fault("features.story", err);
        if (rc == BA_OK) rc = run_window(wr, units[i].story, units[i].window, rows, err);
        sum->seconds_forward += ba_now() - t0;
        sum->cpu_seconds_forward += process_cpu_seconds() - c0;
        sum->my_windows++;
        sum->my_window_tokens += units[i].cost;
        ba_progress_update(&bar, (double)++done, (double)mine);
    }
    ba_progress_end(&bar);
    free(rows);
    return rc;
}

ba_status ba_features_run(const ba_features_config *cfg, MPI_Comm comm,
                          ba_features_summary *sum, ba_error *err)
{
    memset(sum, 0, sizeof *sum);
    double t0 = ba_now();
    BA_CHECK(ba_mpi_agree(comm, check_config(cfg, err), err));
    int rank = 0, n_ranks = 1;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &n_ranks);
    /* Before any work: the output writable, no other run on it, stale
     * temporaries of dead runs removed (core/outfile.h). */
    ba_output_lock lock = {0};
    BA_CHECK(ba_mpi_agree(comm, rank == 0 ? ba_output_begin(cfg->out_path, false, &lock, err)
                                          : BA_OK, err));
    prepared p = {0};
    work_unit *units = NULL;
    size_t n_units = 0;
    ba_features_story_info *info = NULL;
    ba_features_writer writer;
    window_run wr = {0};
    ba_status rc = prepare(cfg, &p, sum, err);
    if (rc == BA_OK) rc = deal_windows(p.tokens, p.n_stories, &p.rs, n_ranks, &units, &n_units, err);
    if (rc == BA_OK && rank == 0)
        rc = ba_checkpoint_identity(cfg->model_dir, sum->checkpoint, sizeof sum->checkpoint, err);
    if (rc == BA_OK && rank == 0 && cfg->adapter_dir)
        rc = ba_adapter_identity(cfg->adapter_dir, sum->adapter, sizeof sum->adapter, err);
    if (rc == BA_OK) {
        info = ba_calloc(p.n_stories, sizeof *info, "story list", err);
        wr.token_logp = ba_calloc(p.total_tokens ? p.total_tokens : 1, sizeof(double),
                                  "token log-probabilities", err);
        if (!info || !wr.token_logp) rc = BA_ERR_NOMEM;
    }
    BA_TRY(ba_mpi_agree(comm, rc, err), done);
    MPI_Bcast(sum->checkpoint, (int)sizeof sum->checkpoint, MPI_CHAR, 0, comm);
    MPI_Bcast(sum->adapter, (int)sizeof sum->adapter, MPI_CHAR, 0, comm);

    for (size_t s = 0; s < p.n_stories; s++)
        info[s] = (ba_features_story_info){p.stories[s].name, (long)p.stories[s].n_words,
                                           p.stories[s].words, p.stories[s].onset,
                                           p.stories[s].offset};
    const ba_model_config *mc = ba_model_get_config(p.model);
    char assoc_condition[2 * BA_ASSOC_NAME_MAX];
    if (cfg->associations)
        ba_augment_condition_name(&p.assoc, &cfg->augment, assoc_condition, sizeof assoc_condition);
    const char *condition = cfg->condition          ? cfg->condition
                            : cfg->associations ? assoc_condition
                                                : "baseline";
    ba_features_meta meta = {mc->model_type, sum->checkpoint, (long)p.rs.context, condition,
                             cfg->command_line ? cfg->command_line : "brainalign features"};
    wr = (window_run){cfg, &p.rs, p.ctx, p.stories, p.tokens, wr.token_logp, &writer,
                      NULL, NULL, NULL, (size_t)ba_model_d_model(p.model)};
    BA_TRY(ba_features_writer_begin(&writer, cfg->out_path, comm, &meta, p.rs.layers,
                                    p.rs.n_layers, (long)wr.d, info, p.n_stories, err), done);
    /* Provenance beyond the contract: how the windows were made. */
    long long extra[2] = {(long long)p.rs.stride, p.rs.bos};
    rc = ba_h5_set_attr_i64(&writer.file, "/", "stride", &extra[0], 1, err);
    if (rc == BA_OK) rc = ba_h5_set_attr_i64(&writer.file, "/", "bos_token", &extra[1], 1, err);
    if (rc == BA_OK)
        rc = ba_h5_set_attr_str(&writer.file, "/", "matmul", ba_matmul_name(cfg->matmul), err);
    if (rc == BA_OK && cfg->adapter_dir)
        rc = ba_h5_set_attr_str(&writer.file, "/", "adapter", sum->adapter, err);
    if (rc == BA_OK && cfg->associations) rc = record_associations(&writer.file, cfg, sum, err);
    /* A SIGBUS inside the mapped checkpoint (truncated during a window):
     * name the file, remove the unfinished output, exit 1 (safetensors.h). */
    if (rc == BA_OK) ba_mapped_files_guard(writer.file.temp_path);
    if (rc == BA_OK) rc = run_my_windows(&wr, units, n_units, comm, sum, err);
    ba_mapped_files_guard(NULL);
    /* Every rank must take part in the sum, whatever happened here. */
    rc = ba_mpi_agree(comm, rc, err);
    if (rc == BA_OK) rc = write_surprisal(&wr, p.n_stories, p.total_tokens, comm, err);
    rc = ba_features_writer_end(&writer, rc, err);
    if (rc != BA_OK) goto done;

    sum->n_stories = p.n_stories;
    sum->context = (long)p.rs.context;
    sum->stride = (long)p.rs.stride;
    sum->bos_token = p.rs.bos;
    sum->n_layers = p.rs.n_layers;
    memcpy(sum->layers, p.rs.layers, sizeof sum->layers);
    sum->d_model = (long)wr.d;
    for (size_t i = 0; i < n_units; i++) sum->n_window_tokens += units[i].cost;
done:
    ba_output_end(&lock);
    sum->seconds_total = ba_now() - t0;
    free(wr.ids);
    free(wr.hidden);
    free(wr.logp);
    free(wr.token_logp);
    free(info);
    free(units);
    prepared_free(&p);
    return rc;
}
