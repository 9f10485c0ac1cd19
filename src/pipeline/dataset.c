/* dataset.c — the Association instruction data: story passages paired
 * with association sets, Alpaca-style imports, de-duplication, the token
 * length filter, the seeded split and the summary (see
 * brainalign/pipeline/dataset.h). */
#include "brainalign/pipeline/dataset.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "brainalign/core/rng.h"
#include "brainalign/lm/tokenizer.h"

void ba_dataset_options_defaults(ba_dataset_options *o)
{
    memset(o, 0, sizeof *o);
    o->unit = BA_PASSAGE_SENTENCES;
    ba_augment_options_defaults(&o->placement);
    o->tmpl = BA_TEMPLATE_ALPACA;
    o->seed = 2025;
}

/* ---- files ------------------------------------------------------------------ */

static ba_status read_file(const char *path, const char *what, char **text, size_t *len,
                           ba_error *err)
{
    *text = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return ba_fail(err, BA_ERR_IO, "%s: cannot open the %s: %s", path, what,
                           strerror(errno));
    ba_status rc = BA_OK;
    size_t n = 0, cap = 65536;
    char *buf = malloc(cap + 1);
    if (!buf) rc = ba_fail(err, BA_ERR_NOMEM, "%s: out of memory reading the %s", path, what);
    while (rc == BA_OK) {
        if (n == cap) {
            char *nb = realloc(buf, 2 * cap + 1);
            if (!nb) {
                rc = ba_fail(err, BA_ERR_NOMEM, "%s: out of memory reading the %s", path, what);
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (rc == BA_OK && ferror(f)) rc = ba_fail(err, BA_ERR_IO, "%s: read error", path);
    fclose(f);
    if (rc != BA_OK) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return BA_OK;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Length of the valid UTF-8 character at s[0..n), or 0. */
static size_t utf8_char(const unsigned char *s, size_t n)
{
    if (s[0] < 0x80) return 1;
    size_t k = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 ? 2 : 0;
    if (k == 0 || s[0] > 0xF4 || k > n) return 0;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (k == 3 && s[0] == 0xE0 && s[1] < 0xA0) return 0;  /* overlong          */
    if (k == 3 && s[0] == 0xED && s[1] >= 0xA0) return 0; /* surrogates        */
    if (k == 4 && s[0] == 0xF0 && s[1] < 0x90) return 0;  /* overlong          */
    if (k == 4 && s[0] == 0xF4 && s[1] >= 0x90) return 0; /* beyond U+10FFFF   */
    return k;
}

static bool is_white(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/* ---- plain-text stories -------------------------------------------------------- */

ba_status ba_story_read_text(const char *path, ba_story *story, ba_error *err)
{
    memset(story, 0, sizeof *story);
    char *text = NULL;
    size_t len = 0;
    BA_CHECK(read_file(path, "story", &text, &len, err));
    ba_status rc = BA_OK;
    size_t start = 0, line = 1, n_words = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) start = 3;
    for (size_t i = start; i < len;) {
        if (text[i] == '\0') {
            rc = ba_fail(err, BA_ERR_FORMAT, "%s:%zu: a NUL byte: not UTF-8 text", path, line);
            goto done;
        }
        size_t k = utf8_char((const unsigned char *)text + i, len - i);
        if (k == 0) {
            rc = ba_fail(err, BA_ERR_FORMAT, "%s:%zu: invalid UTF-8 at byte %zu", path, line, i);
            goto done;
        }
        if (text[i] == '\n') line++;
        bool word_start = !is_white(text[i]) && (i == start || is_white(text[i - 1]));
        n_words += word_start;
        i += k;
    }
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t name_len = strlen(base) - 4; /* without ".txt" */
    if (name_len == 0 || name_len >= sizeof story->name) {
        rc = ba_fail(err, BA_ERR_USAGE, "%s: a story file needs a name of 1..255 bytes before "
                     "\".txt\"", path);
        goto done;
    }
    if (n_words == 0) {
        rc = ba_fail(err, BA_ERR_VALUE, "%s: the story has no words (an empty story)", path);
        goto done;
    }
    snprintf(story->name, sizeof story->name, "%.*s", (int)name_len, base);
    BA_ALLOC(story->words, n_words, "story words", done);
    BA_ALLOC(story->onset, n_words, "story onsets", done);
    BA_ALLOC(story->offset, n_words, "story offsets", done);
    for (size_t i = start; i < len;) {
        while (i < len && is_white(text[i])) i++;
        if (i == len) break;
        size_t j = i;
        while (j < len && !is_white(text[j])) j++;
        char *w = strndup(text + i, j - i);
        if (!w) {
            rc = ba_fail(err, BA_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
        story->words[story->n_words++] = w;
        i = j;
    }
done:
    free(text);
    if (rc != BA_OK) ba_story_free(story);
    return rc;
}

/* ---- Alpaca imports -------------------------------------------------------------- */

/* The record of one JSON value, by the train reader's rules. */
static ba_status alpaca_record(const json_t *obj, const char *source, size_t line,
                               ba_sft_record *rec, ba_error *err)
{
    static const char *const KEYS[3] = {"instruction", "input", "output"};
    char **slots[3] = {&rec->instruction, &rec->input, &rec->output};
    rec->line = line;
    if (!json_is_object(obj))
        return ba_fail(err, BA_ERR_FORMAT, "%s:%zu: expected a JSON object with \"instruction\", "
                       "\"input\" and \"output\"", source, line);
    for (int k = 0; k < 3; k++) {
        const json_t *v = json_object_get(obj, KEYS[k]);
        if (!v && k != 1)
            return ba_fail(err, BA_ERR_FORMAT, "%s:%zu: missing the field \"%s\"", source, line,
                           KEYS[k]);
        if (v && !json_is_string(v))
            return ba_fail(err, BA_ERR_FORMAT, "%s:%zu: the field \"%s\" must be a string",
                           source, line, KEYS[k]);
        *slots[k] = strdup(v ? json_string_value(v) : "");
        if (!*slots[k]) return ba_fail(err, BA_ERR_NOMEM, "%s:%zu: out of memory", source, line);
    }
    if (rec->output[0] == '\0')
        return ba_fail(err, BA_ERR_VALUE, "%s:%zu: the field \"output\" is empty", source, line);
    return BA_OK;
}

/* starts [n_max]: the 1-based line of each top-level element of the JSON
 * array text[0..len) (which jansson has accepted); *n their count. */
static void array_element_lines(const char *text, size_t len, size_t *starts, size_t n_max,
                                size_t *n)
{
    size_t line = 1, depth = 0;
    bool in_string = false, want = false;
    *n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '\n') line++;
        if (in_string) {
            if (c == '\\') i++; /* an escape never holds a newline */
            else if (c == '"') in_string = false;
            continue;
        }
        if (is_white(c)) continue;
        if (want && depth == 1 && c != ']') {
            if (*n < n_max) starts[*n] = line;
            (*n)++;
            want = false;
        }
        if (c == '"') in_string = true;
        else if (c == '[' || c == '{') {
            depth++;
            if (depth == 1) want = true;
        } else if (c == ']' || c == '}') depth--;
        else if (c == ',' && depth == 1) want = true;
    }
}

static ba_status alpaca_parse_array(const char *text, size_t len, const char *source,
                                    ba_sft_data **out, ba_error *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return ba_fail(err, BA_ERR_FORMAT, "%s:%d: not valid JSON (column %d): %s", source,
                       jerr.line, jerr.column, jerr.text);
    ba_status rc = BA_OK;
    size_t *lines = NULL, n_found = 0;
    ba_sft_data *d = ba_calloc(1, sizeof *d, "Alpaca data", err);
    if (!d) {
        rc = BA_ERR_NOMEM;
        goto done;
    }
    snprintf(d->source, sizeof d->source, "%s", source);
    if (!json_is_array(root)) {
        rc = ba_fail(err, BA_ERR_FORMAT, "%s:1: expected a JSON array of objects with "
                     "\"instruction\", \"input\" and \"output\"", source);
        goto done;
    }
    const size_t n = json_array_size(root);
    if (n == 0) {
        rc = ba_fail(err, BA_ERR_FORMAT, "%s: no records (the array is empty)", source);
        goto done;
    }
    BA_ALLOC(lines, n, "element lines", done);
    BA_ALLOC(d->records, n, "Alpaca records", done);
    array_element_lines(text, len, lines, n, &n_found);
    if (n_found != n) {
        rc = ba_fail(err, BA_ERR_INTERNAL, "%s: found %zu array elements, jansson %zu", source,
                     n_found, n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        rc = alpaca_record(json_array_get(root, i), source, lines[i], &d->records[i], err);
        d->n = i + 1; /* partially filled records are freed by the destroy */
        if (rc != BA_OK) goto done;
    }
done:
    json_decref(root);
    free(lines);
    if (rc != BA_OK) {
        ba_sft_data_destroy(d);
        d = NULL;
    }
    *out = d;
    return rc;
}

ba_status ba_alpaca_parse(const char *text, size_t len, const char *source, ba_sft_data **out,
                          ba_error *err)
{
    *out = NULL;
    size_t at = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) at = 3; /* UTF-8 byte-order mark */
    size_t k = at;
    while (k < len && is_white(text[k])) k++;
    if (k == len) return ba_fail(err, BA_ERR_FORMAT, "%s: no records (the file is empty)", source);
    if (text[k] == '[') return alpaca_parse_array(text + at, len - at, source, out, err);
    return ba_sft_parse_jsonl(text + at, len - at, source, out, err);
}

ba_status ba_alpaca_read(const char *path, ba_sft_data **out, ba_error *err)
{
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    BA_CHECK(read_file(path, "instruction data", &text, &len, err));
    ba_status rc = ba_alpaca_parse(text, len, path, out, err);
    free(text);
    return rc;
}

/* ---- passages ----------------------------------------------------------------- */

size_t ba_passage_start(const size_t *ends, size_t n_sentences, size_t w, ba_passage_unit unit,
                        size_t len)
{
    if (len == 0) len = 1;
    if (unit == BA_PASSAGE_WORDS) return w + 1 >= len ? w + 1 - len : 0;
    size_t lo = 0, hi = n_sentences; /* the sentence holding w: first end >= w */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ends[mid] < w) lo = mid + 1;
        else hi = mid;
    }
    return lo + 1 > len ? ends[lo - len] + 1 : 0;
}

/* ---- samples -------------------------------------------------------------------- */

typedef struct {
    char *instruction, *input, *output; /* owned                                   */
    const char *path;                   /* the file it came from (borrowed)       */
    size_t line;
    const char *story;                  /* borrowed; NULL for imports             */
    size_t word_start, word_end;
    const char *source;                 /* static names                           */
    const char *set;                    /* borrowed set name; NULL for imports    */
    size_t tokens;
    bool keep;
} sample;

typedef struct {
    sample *v;
    size_t n, cap;
} sample_list;

static void sample_list_free(sample_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].instruction);
        free(l->v[i].input);
        free(l->v[i].output);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Append a sample taking ownership of its three strings (freed on failure). */
static ba_status sample_push(sample_list *l, sample s, ba_error *err)
{
    if (!s.instruction || !s.input || !s.output) {
        free(s.instruction);
        free(s.input);
        free(s.output);
        return ba_fail(err, BA_ERR_NOMEM, "out of memory building samples");
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        sample *grown = realloc(l->v, cap * sizeof *grown);
        if (!grown) {
            free(s.instruction);
            free(s.input);
            free(s.output);
            return ba_fail(err, BA_ERR_NOMEM, "out of memory building samples (%zu)", cap);
        }
        l->v = grown;
        l->cap = cap;
    }
    s.keep = true;
    l->v[l->n++] = s;
    return BA_OK;
}

/* words[a..b) joined by single spaces (malloc'd). */
static char *join_words(char *const *words, size_t a, size_t b)
{
    size_t len = 0;
    for (size_t i = a; i < b; i++) len += strlen(words[i]) + 1;
    char *s = malloc(len ? len : 1);
    if (!s) return NULL;
    size_t at = 0;
    for (size_t i = a; i < b; i++) {
        if (i > a) s[at++] = ' ';
        size_t k = strlen(words[i]);
        memcpy(s + at, words[i], k);
        at += k;
    }
    s[at] = '\0';
    return s;
}

typedef struct {
    ba_story *v;
    size_t n;
} story_list;

static ba_status add_stories(story_list *l, ba_story *more, size_t n_more, ba_error *err)
{
    ba_story *grown = realloc(l->v, (l->n + n_more + 1) * sizeof *grown);
    if (!grown) {
        ba_story_array_free(more, n_more);
        return ba_fail(err, BA_ERR_NOMEM, "out of memory holding %zu stories", l->n + n_more);
    }
    l->v = grown;
    memcpy(l->v + l->n, more, n_more * sizeof *more);
    l->n += n_more;
    free(more); /* the array only: the stories moved */
    return BA_OK;
}

static ba_status read_stories(const ba_dataset_options *o, story_list *l, ba_error *err)
{
    for (size_t i = 0; i < o->n_stories; i++) {
        const char *path = o->stories[i];
        struct stat st;
        if (stat(path, &st) != 0)
            return ba_fail(err, BA_ERR_IO, "%s: cannot read the stories: %s", path,
                           strerror(errno));
        ba_story *more = NULL;
        size_t n_more = 0;
        if (S_ISDIR(st.st_mode)) {
            BA_CHECK(ba_story_dir_read(path, NULL, 0, &more, &n_more, err));
        } else {
            more = ba_calloc(1, sizeof *more, "a story", err);
            if (!more) return BA_ERR_NOMEM;
            ba_status rc = ends_with(path, ".txt") ? ba_story_read_text(path, more, err)
                                                   : ba_story_read(path, BA_STIM_AUTO, NULL,
                                                                   more, err);
            if (rc != BA_OK) {
                free(more);
                return rc;
            }
            n_more = 1;
        }
        BA_CHECK(add_stories(l, more, n_more, err));
    }
    for (size_t i = 0; i < l->n; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(l->v[i].name, l->v[j].name) == 0)
                return ba_fail(err, BA_ERR_USAGE, "the story '%s' is given twice (see --stories)",
                               l->v[i].name);
    return BA_OK;
}

/* The samples of one association set. */
static ba_status samples_of_set(const ba_dataset_options *o, const char *instruction,
                                const story_list *stories, const ba_association_set *set,
                                sample_list *out, ba_error *err)
{
    ba_status rc = BA_OK;
    size_t *point = NULL, *story_of = NULL;
    size_t **ends = NULL, *n_sentences = NULL;
    ba_augmented_story aug = {0};
    BA_TRY(ba_association_set_check(set, stories->v, stories->n, o->placement.pause_s, err),
           done);
    BA_ALLOC(point, set->n ? set->n : 1, "insertion points", done);
    BA_ALLOC(story_of, set->n ? set->n : 1, "association stories", done);
    BA_ALLOC(ends, stories->n ? stories->n : 1, "sentence ends", done);
    BA_ALLOC(n_sentences, stories->n ? stories->n : 1, "sentence counts", done);
    for (size_t i = 0; i < set->n; i++) point[i] = story_of[i] = SIZE_MAX;
    for (size_t s = 0; s < stories->n; s++) {
        const ba_story *st = &stories->v[s];
        bool used = false;
        for (size_t i = 0; i < set->n && !used; i++) used = strcmp(set->items[i].story, st->name) == 0;
        if (!used) continue;
        BA_TRY(ba_story_sentences(st, o->placement.pause_s, &ends[s], &n_sentences[s], NULL, err),
               done);
        /* Where the policy of `features --associations` puts each one: the
         * original word before its first inserted word. */
        BA_TRY(ba_augment_story(st, set, &o->placement, NULL, 0, &aug, err), done);
        for (size_t j = 1; j < aug.n_words; j++) {
            if (aug.original[j] >= 0 || aug.association[j - 1] == aug.association[j]) continue;
            size_t k = j - 1;
            while (k > 0 && aug.original[k] < 0) k--;
            size_t item = (size_t)aug.association[j];
            point[item] = (size_t)aug.original[k];
            story_of[item] = s;
        }
        ba_augmented_story_free(&aug);
    }
    for (size_t i = 0; i < set->n; i++) {
        const ba_association *a = &set->items[i];
        if (point[i] == SIZE_MAX) {
            rc = ba_fail(err, BA_ERR_INTERNAL, "%s:%ld: the association was not placed",
                         set->path, a->line);
            goto done;
        }
        size_t s = story_of[i], w = point[i];
        const ba_story *st = &stories->v[s];
        size_t first = ba_passage_start(ends[s], n_sentences[s], w, o->unit, o->passage_len);
        sample smp = {
            .instruction = strdup(instruction),
            .input = join_words(st->words, first, w + 1),
            .output = strdup(a->text),
            .path = set->path,
            .line = (size_t)a->line,
            .story = st->name,
            .word_start = first,
            .word_end = w + 1,
            .source = ba_source_name(a->source),
            .set = set->name,
        };
        BA_TRY(sample_push(out, smp, err), done);
    }
done:
    ba_augmented_story_free(&aug);
    for (size_t s = 0; ends && s < stories->n; s++) free(ends[s]);
    free(ends);
    free(n_sentences);
    free(point);
    free(story_of);
    return rc;
}

/* ---- de-duplication --------------------------------------------------------------- */

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s;; p++) {
        h ^= *p; /* the NUL too: it separates the fields */
        h *= 0x100000001b3ull;
        if (!*p) return h;
    }
}

static bool same_sample(const sample *a, const sample *b)
{
    return strcmp(a->instruction, b->instruction) == 0 && strcmp(a->input, b->input) == 0 &&
           strcmp(a->output, b->output) == 0;
}

/* Clears `keep` of every repeat of an earlier sample; returns their count. */
static ba_status deduplicate(sample_list *l, size_t *n_dup, ba_error *err)
{
    *n_dup = 0;
    size_t cap = 16;
    while (cap < 2 * l->n) cap *= 2;
    size_t *table = ba_malloc(cap * sizeof *table, "the duplicate table", err); /* [cap] */
    if (!table) return BA_ERR_NOMEM;
    for (size_t i = 0; i < cap; i++) table[i] = SIZE_MAX;
    for (size_t i = 0; i < l->n; i++) {
        sample *s = &l->v[i];
        uint64_t h = fnv1a(fnv1a(fnv1a(0xcbf29ce484222325ull, s->instruction), s->input),
                           s->output);
        size_t slot = (size_t)h & (cap - 1);
        while (table[slot] != SIZE_MAX && !same_sample(&l->v[table[slot]], s))
            slot = (slot + 1) & (cap - 1);
        if (table[slot] == SIZE_MAX) table[slot] = i;
        else {
            s->keep = false;
            (*n_dup)++;
        }
    }
    free(table);
    return BA_OK;
}

/* ---- token lengths ------------------------------------------------------------------ */

static ba_status count_tokens(const ba_dataset_options *o, const ba_tokenizer *tok,
                              sample_list *l, ba_error *err)
{
    ba_sft_options so = {
        .tmpl = o->tmpl,
        .system = o->system,
        /* Only the count matters: any id in the vocabulary stands for BOS / EOS. */
        .bos = strcmp(ba_tokenizer_kind(tok), "sentencepiece-bpe") == 0 ? 1 : -1,
        .eos = 0,
        .max_seq_len = SIZE_MAX,
        .truncate = false,
    };
    for (size_t i = 0; i < l->n; i++) {
        sample *s = &l->v[i];
        if (!s->keep) continue;
        ba_sft_record rec = {s->instruction, s->input, s->output, s->line};
        ba_sft_sample out;
        BA_CHECK(ba_sft_tokenize(tok, &so, &rec, s->path, &out, err));
        s->tokens = out.n;
        ba_sft_sample_free(&out);
    }
    return BA_OK;
}

static int compare_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

/* ---- writing -------------------------------------------------------------------- */

static json_t *sample_json(const sample *s)
{
    json_t *obj = json_object();
    if (!obj) return NULL;
    char origin[BA_PATH_MAX + 32];
    snprintf(origin, sizeof origin, "%s:%zu", s->path, s->line);
    int bad = 0;
    bad |= json_object_set_new(obj, "instruction", json_string(s->instruction));
    bad |= json_object_set_new(obj, "input", json_string(s->input));
    bad |= json_object_set_new(obj, "output", json_string(s->output));
    bad |= json_object_set_new(obj, "origin", json_string(origin));
    bad |= json_object_set_new(obj, "source", json_string(s->source));
    if (s->story) {
        bad |= json_object_set_new(obj, "set", json_string(s->set));
        bad |= json_object_set_new(obj, "story", json_string(s->story));
        bad |= json_object_set_new(obj, "word_start", json_integer((json_int_t)s->word_start));
        bad |= json_object_set_new(obj, "word_end", json_integer((json_int_t)s->word_end));
    }
    if (bad) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* Write the samples whose side[i] == want to `temp` and read it back with
 * the train reader: it must hold exactly `count` records. */
static ba_status write_jsonl(const char *path, const char *temp, const sample_list *l,
                             const size_t *kept, size_t n_kept, const bool *is_val, bool want,
                             size_t count, ba_error *err)
{
    FILE *f = fopen(temp, "w");
    if (!f) return ba_fail(err, BA_ERR_IO, "%s: cannot write: %s", temp, strerror(errno));
    ba_status rc = BA_OK;
    for (size_t k = 0; rc == BA_OK && k < n_kept; k++) {
        if (is_val[k] != want) continue;
        const sample *s = &l->v[kept[k]];
        json_t *obj = sample_json(s);
        char *line = obj ? json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(obj);
        if (!line)
            rc = ba_fail(err, BA_ERR_VALUE, "%s:%zu: the sample is not valid UTF-8 (or out of "
                         "memory)", s->path, s->line);
        else if (fprintf(f, "%s\n", line) < 0)
            rc = ba_fail(err, BA_ERR_IO, "%s: write error", temp);
        free(line);
    }
    if (fclose(f) != 0 && rc == BA_OK) rc = ba_fail(err, BA_ERR_IO, "%s: write error", temp);
    if (rc != BA_OK) return rc;
    ba_sft_data *back = NULL;
    rc = ba_sft_read_jsonl(temp, &back, err);
    if (rc != BA_OK) return ba_context(err, "%s as written: ", path);
    if (back->n != count)
        rc = ba_fail(err, BA_ERR_INTERNAL, "%s: wrote %zu records, read back %zu", path, count,
                     back->n);
    ba_sft_data_destroy(back);
    return rc;
}

static json_t *size_array(const size_t *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) json_array_append_new(a, json_integer((json_int_t)v[i]));
    return a;
}

static json_t *string_array(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) json_array_append_new(a, json_string(v[i]));
    return a;
}

static ba_status write_summary(const ba_dataset_options *o, const char *instruction,
                               const ba_dataset_summary *sum, const size_t *lengths,
                               size_t n_lengths, const size_t *dropped, size_t n_dropped,
                               const char *temp, ba_error *err)
{
    json_t *root = json_object();
    if (!root) return ba_fail(err, BA_ERR_NOMEM, "%s: out of memory", o->summary);
    json_object_set_new(root, "version", json_string(BRAINALIGN_VERSION));
    json_object_set_new(root, "command", o->command ? json_string(o->command) : json_null());
    json_object_set_new(root, "stories", string_array(o->stories, o->n_stories));
    json_object_set_new(root, "n_stories", json_integer((json_int_t)sum->n_stories));
    json_object_set_new(root, "associations", string_array(o->associations, o->n_associations));
    json_object_set_new(root, "imports", string_array(o->imports, o->n_imports));
    json_t *passage = json_object();
    json_object_set_new(passage, "unit",
                        json_string(o->unit == BA_PASSAGE_WORDS ? "words" : "sentences"));
    json_object_set_new(passage, "length", json_integer((json_int_t)o->passage_len));
    json_object_set_new(passage, "policy", json_string(ba_augment_policy_name(&o->placement)));
    json_object_set_new(passage, "every_k", json_integer(o->placement.every_k));
    json_object_set_new(passage, "pause_s", json_real(o->placement.pause_s));
    json_object_set_new(root, "passage", passage);
    json_object_set_new(root, "instruction", json_string(instruction));
    json_object_set_new(root, "template", json_string(ba_template_name(o->tmpl)));
    json_object_set_new(root, "tokenizer", o->tokenizer ? json_string(o->tokenizer) : json_null());
    json_object_set_new(root, "max_tokens",
                        o->max_tokens ? json_integer((json_int_t)o->max_tokens) : json_null());
    json_object_set_new(root, "strict", json_boolean(o->strict));
    json_object_set_new(root, "val_fraction", json_real(o->val_fraction));
    json_object_set_new(root, "seed", json_integer((json_int_t)o->seed));
    json_object_set_new(root, "out", json_string(o->out));
    json_object_set_new(root, "val_out", o->val_out ? json_string(o->val_out) : json_null());
    json_t *counts = json_object();
    json_object_set_new(counts, "read", json_integer((json_int_t)sum->n_read));
    json_object_set_new(counts, "from_associations",
                        json_integer((json_int_t)sum->n_from_associations));
    json_object_set_new(counts, "imported", json_integer((json_int_t)sum->n_imported));
    json_object_set_new(counts, "duplicates", json_integer((json_int_t)sum->n_duplicates));
    json_object_set_new(counts, "filtered", json_integer((json_int_t)sum->n_filtered));
    json_object_set_new(counts, "kept", json_integer((json_int_t)sum->n_kept));
    json_object_set_new(counts, "train", json_integer((json_int_t)sum->n_train));
    json_object_set_new(counts, "val", json_integer((json_int_t)sum->n_val));
    json_object_set_new(root, "counts", counts);
    if (sum->have_tokens) {
        json_t *t = json_object();
        json_object_set_new(t, "min", json_integer((json_int_t)sum->tok_min));
        json_object_set_new(t, "median", json_real(sum->tok_median));
        json_object_set_new(t, "max", json_integer((json_int_t)sum->tok_max));
        json_object_set_new(t, "lengths", size_array(lengths, n_lengths));
        json_object_set_new(t, "filtered_lengths", size_array(dropped, n_dropped));
        json_object_set_new(root, "tokens", t);
    } else {
        json_object_set_new(root, "tokens", json_null());
    }
    ba_status rc = BA_OK;
    if (json_dump_file(root, temp, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0)
        rc = ba_fail(err, BA_ERR_IO, "%s: cannot write the summary", temp);
    json_decref(root);
    return rc;
}

/* ---- the build -------------------------------------------------------------------- */

static ba_status check_options(const ba_dataset_options *o, ba_error *err)
{
    if (!o->out || !o->out[0]) return ba_fail(err, BA_ERR_USAGE, "dataset: --out is required");
    if (o->n_associations == 0 && o->n_imports == 0)
        return ba_fail(err, BA_ERR_USAGE, "dataset: nothing to read: give --associations (with "
                       "--stories) and/or --import-alpaca");
    if (o->n_associations > 0 && o->n_stories == 0)
        return ba_fail(err, BA_ERR_USAGE, "dataset: --associations needs --stories");
    if (o->n_associations > 0 && o->passage_len == 0)
        return ba_fail(err, BA_ERR_USAGE, "dataset: --associations needs the passage length: "
                       "--passage-sentences N or --passage-words N (N >= 1)");
    if (o->placement.random_text)
        return ba_fail(err, BA_ERR_USAGE, "dataset: the policy is human, every-k or word (the "
                       "random control has no association text to learn)");
    if (o->placement.placement == BA_PLACE_EVERY_K && o->placement.every_k < 1)
        return ba_fail(err, BA_ERR_USAGE, "dataset: every-k needs k >= 1, not %d",
                       o->placement.every_k);
    if (o->instruction && !o->instruction[0])
        return ba_fail(err, BA_ERR_USAGE, "dataset: the instruction is empty");
    if (o->max_tokens > 0 && !o->tokenizer)
        return ba_fail(err, BA_ERR_USAGE, "dataset: --max-tokens needs --tokenizer DIR");
    if (o->strict && o->max_tokens == 0)
        return ba_fail(err, BA_ERR_USAGE, "dataset: --strict needs --max-tokens N");
    if (o->system && o->tmpl != BA_TEMPLATE_LLAMA2_CHAT)
        return ba_fail(err, BA_ERR_USAGE, "dataset: --system needs the llama2-chat template");
    if (!(o->val_fraction >= 0.0 && o->val_fraction < 1.0))
        return ba_fail(err, BA_ERR_USAGE, "dataset: --val-fraction must be in [0, 1), not %g",
                       o->val_fraction);
    if ((o->val_fraction > 0) != (o->val_out != NULL))
        return ba_fail(err, BA_ERR_USAGE, "dataset: --val-out FILE and --val-fraction F > 0 go "
                       "together");
    if (o->val_out && strcmp(o->val_out, o->out) == 0)
        return ba_fail(err, BA_ERR_USAGE, "dataset: --out and --val-out are one file (%s)",
                       o->out);
    if (o->summary && (strcmp(o->summary, o->out) == 0 ||
                       (o->val_out && strcmp(o->summary, o->val_out) == 0)))
        return ba_fail(err, BA_ERR_USAGE, "dataset: --summary is one of the output files (%s)",
                       o->summary);
    return BA_OK;
}

ba_status ba_dataset_build(const ba_dataset_options *o, ba_dataset_summary *sum, ba_error *err)
{
    memset(sum, 0, sizeof *sum);
    BA_CHECK(check_options(o, err));
    const char *instruction = o->instruction ? o->instruction : BA_DATASET_INSTRUCTION;
    ba_status rc = BA_OK;
    story_list stories = {0};
    sample_list samples = {0};
    ba_tokenizer *tok = NULL;
    size_t *kept = NULL, *lengths = NULL, *dropped = NULL, n_kept = 0, n_dropped = 0;
    bool *is_val = NULL;
    char t_out[BA_PATH_MAX + 16] = "", t_val[BA_PATH_MAX + 16] = "",
         t_sum[BA_PATH_MAX + 16] = "";
    char (*set_names)[BA_ASSOC_NAME_MAX] = NULL; /* [n_associations] */
    BA_ALLOC(set_names, o->n_associations ? o->n_associations : 1, "set names", done);
    if (o->tokenizer) BA_TRY(ba_tokenizer_load(o->tokenizer, &tok, err), done);
    BA_TRY(read_stories(o, &stories, err), done);
    sum->n_stories = stories.n;
    for (size_t i = 0; i < o->n_associations; i++) {
        ba_association_set set;
        BA_TRY(ba_association_set_read(o->associations[i], &set, err), done);
        if (set.n == 0)
            rc = ba_fail(err, BA_ERR_VALUE, "%s: the association set is empty",
                         o->associations[i]);
        if (rc == BA_OK) rc = samples_of_set(o, instruction, &stories, &set, &samples, err);
        /* The samples borrowed the set's path and name, which go with the
         * set now: point them at strings that live to the end. */
        snprintf(set_names[i], sizeof set_names[i], "%s", set.name);
        for (size_t k = sum->n_from_associations; k < samples.n; k++) {
            samples.v[k].path = o->associations[i];
            samples.v[k].set = set_names[i];
        }
        ba_association_set_free(&set);
        if (rc != BA_OK) goto done;
        sum->n_from_associations = samples.n;
    }
    for (size_t i = 0; i < o->n_imports; i++) {
        ba_sft_data *d = NULL;
        BA_TRY(ba_alpaca_read(o->imports[i], &d, err), done);
        for (size_t k = 0; rc == BA_OK && k < d->n; k++) {
            sample s = {
                .instruction = strdup(d->records[k].instruction),
                .input = strdup(d->records[k].input),
                .output = strdup(d->records[k].output),
                .path = o->imports[i],
                .line = d->records[k].line,
                .source = "alpaca",
            };
            rc = sample_push(&samples, s, err);
        }
        ba_sft_data_destroy(d);
        if (rc != BA_OK) goto done;
    }
    sum->n_imported = samples.n - sum->n_from_associations;
    sum->n_read = samples.n;
    BA_TRY(deduplicate(&samples, &sum->n_duplicates, err), done);
    if (tok) BA_TRY(count_tokens(o, tok, &samples, err), done);
    BA_ALLOC(kept, samples.n ? samples.n : 1, "kept samples", done);
    BA_ALLOC(dropped, samples.n ? samples.n : 1, "filtered lengths", done);
    for (size_t i = 0; i < samples.n; i++) {
        sample *s = &samples.v[i];
        if (!s->keep) continue;
        if (o->max_tokens > 0 && s->tokens > o->max_tokens) {
            if (o->strict) {
                rc = ba_fail(err, BA_ERR_VALUE, "%s:%zu: the sample has %zu tokens (template %s), "
                             "more than --max-tokens %zu (--strict)", s->path, s->line,
                             s->tokens, ba_template_name(o->tmpl), o->max_tokens);
                goto done;
            }
            dropped[n_dropped++] = s->tokens;
            s->keep = false;
            continue;
        }
        kept[n_kept++] = i;
    }
    sum->n_filtered = n_dropped;
    sum->n_kept = n_kept;
    if (n_kept == 0) {
        rc = ba_fail(err, BA_ERR_VALUE, "dataset: no sample is left (%zu read, %zu duplicates, "
                     "%zu longer than --max-tokens %zu)", sum->n_read, sum->n_duplicates,
                     sum->n_filtered, o->max_tokens);
        goto done;
    }
    /* The split: the first n_val of a seeded permutation of the kept samples. */
    BA_ALLOC(is_val, n_kept, "the split", done);
    size_t n_val = o->val_fraction > 0 ? (size_t)floor(o->val_fraction * (double)n_kept + 0.5) : 0;
    if (o->val_fraction > 0 && (n_val == 0 || n_val == n_kept)) {
        rc = ba_fail(err, BA_ERR_VALUE, "dataset: --val-fraction %g of %zu samples leaves %s "
                     "empty", o->val_fraction, n_kept, n_val == 0 ? "the validation set" :
                     "the training set");
        goto done;
    }
    if (n_val > 0) {
        size_t *perm = ba_malloc(n_kept * sizeof *perm, "the split permutation", err);
        if (!perm) {
            rc = BA_ERR_NOMEM;
            goto done;
        }
        for (size_t i = 0; i < n_kept; i++) perm[i] = i;
        ba_rng rng;
        ba_rng_seed(&rng, o->seed, BA_DATASET_SPLIT_STREAM);
        for (size_t i = n_kept - 1; i > 0; i--) {
            size_t j = (size_t)(ba_rng_uniform(&rng) * (double)(i + 1));
            if (j > i) j = i;
            size_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        for (size_t i = 0; i < n_val; i++) is_val[perm[i]] = true;
        free(perm);
    }
    sum->n_val = n_val;
    sum->n_train = n_kept - n_val;
    /* Token lengths of the written samples (train, then validation). */
    if (tok) {
        BA_ALLOC(lengths, n_kept, "token lengths", done);
        size_t at = 0;
        for (int side = 0; side < 2; side++)
            for (size_t k = 0; k < n_kept; k++)
                if (is_val[k] == (side == 1)) lengths[at++] = samples.v[kept[k]].tokens;
        size_t *sorted = ba_malloc(n_kept * sizeof *sorted, "sorted lengths", err);
        if (!sorted) {
            rc = BA_ERR_NOMEM;
            goto done;
        }
        memcpy(sorted, lengths, n_kept * sizeof *sorted);
        qsort(sorted, n_kept, sizeof *sorted, compare_size);
        sum->have_tokens = true;
        sum->tok_min = sorted[0];
        sum->tok_max = sorted[n_kept - 1];
        sum->tok_median = n_kept % 2 ? (double)sorted[n_kept / 2]
                                     : 0.5 * ((double)sorted[n_kept / 2 - 1] +
                                              (double)sorted[n_kept / 2]);
        free(sorted);
    }
    snprintf(t_out, sizeof t_out, "%s.partial", o->out);
    BA_TRY(write_jsonl(o->out, t_out, &samples, kept, n_kept, is_val, false, sum->n_train, err),
           done);
    if (o->val_out) {
        snprintf(t_val, sizeof t_val, "%s.partial", o->val_out);
        BA_TRY(write_jsonl(o->val_out, t_val, &samples, kept, n_kept, is_val, true, n_val, err),
               done);
    }
    if (o->summary) {
        snprintf(t_sum, sizeof t_sum, "%s.partial", o->summary);
        BA_TRY(write_summary(o, instruction, sum, lengths, lengths ? n_kept : 0, dropped,
                             n_dropped, t_sum, err), done);
    }
    if (rename(t_out, o->out) != 0) {
        rc = ba_fail(err, BA_ERR_IO, "%s: cannot rename %s: %s", o->out, t_out, strerror(errno));
        goto done;
    }
    t_out[0] = '\0';
    if (o->val_out) {
        if (rename(t_val, o->val_out) != 0) {
            rc = ba_fail(err, BA_ERR_IO, "%s: cannot rename %s: %s", o->val_out, t_val,
                         strerror(errno));
            remove(o->out);
            goto done;
        }
        t_val[0] = '\0';
    }
    if (o->summary) {
        if (rename(t_sum, o->summary) != 0) {
            rc = ba_fail(err, BA_ERR_IO, "%s: cannot rename %s: %s", o->summary, t_sum,
                         strerror(errno));
            remove(o->out);
            if (o->val_out) remove(o->val_out);
            goto done;
        }
        t_sum[0] = '\0';
    }
done:
    if (t_out[0]) remove(t_out);
    if (t_val[0]) remove(t_val);
    if (t_sum[0]) remove(t_sum);
    free(kept);
    free(lengths);
    free(dropped);
    free(is_val);
    free(set_names);
    sample_list_free(&samples);
    ba_story_array_free(stories.v, stories.n);
    ba_tokenizer_destroy(tok);
    return rc;
}
