/* associations.c — association sets (JSONL), sentences, and the insertion
 * policies (see associations.h). */
#include "brainalign/pipeline/associations.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/core/fs.h"
#include "brainalign/core/hash.h"
#include "brainalign/core/rng.h"

static const char *const GRANULARITY_NAMES[] = {"sentence", "word"};
static const char *const SOURCE_NAMES[] = {"human", "gpt4", "model", "random"};

const char *ba_granularity_name(ba_assoc_granularity g)
{
    return (unsigned)g < 2 ? GRANULARITY_NAMES[g] : "?";
}

const char *ba_source_name(ba_assoc_source s)
{
    return (unsigned)s < 4 ? SOURCE_NAMES[s] : "?";
}

/* ------------------------------------------------------------ the set */

void ba_association_set_free(ba_association_set *set)
{
    for (size_t i = 0; set->items && i < set->n; i++) free(set->items[i].text);
    free(set->items);
    set->items = NULL;
    set->n = set->cap = 0;
}

ba_status ba_association_set_add(ba_association_set *set, const ba_association *a,
                                 ba_error *err)
{
    if (set->n == set->cap) {
        size_t cap = set->cap ? 2 * set->cap : 64;
        ba_association *grown = realloc(set->items, cap * sizeof *grown);
        if (!grown) return ba_fail(err, BA_ERR_NOMEM, "association list (%zu entries)", cap);
        set->items = grown;
        set->cap = cap;
    }
    char *text = strdup(a->text ? a->text : "");
    if (!text) return ba_fail(err, BA_ERR_NOMEM, "association text");
    set->items[set->n] = *a;
    set->items[set->n].text = text;
    set->n++;
    return BA_OK;
}

/* "dir/human.jsonl" -> "human". */
static void file_stem(const char *path, char *out, size_t size)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strchr(base, '.');
    size_t len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    snprintf(out, size, "%.*s", (int)len, base);
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static bool blank(const char *s)
{
    for (; *s; s++)
        if (!is_space(*s)) return false;
    return true;
}

static int name_index(const char *value, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(value, names[i]) == 0) return i;
    return -1;
}

#define LINE_FAIL(code, ...)                                                   \
    do {                                                                       \
        char what_[512];                                                       \
        snprintf(what_, sizeof what_, __VA_ARGS__);                            \
        return ba_fail(err, code, "%s:%ld: %s", path, line, what_);            \
    } while (0)

static ba_status read_index(const char *path, long line, const char *key, json_t *v,
                            long *out, ba_error *err)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        LINE_FAIL(BA_ERR_FORMAT, "\"%s\" must be a whole number >= 0", key);
    *out = (long)json_integer_value(v);
    return BA_OK;
}

static ba_status read_choice(const char *path, long line, const char *key, json_t *v,
                             const char *const *names, int n, int *out, ba_error *err)
{
    int i = json_is_string(v) ? name_index(json_string_value(v), names, n) : -1;
    if (i < 0) {
        char list[256] = "";
        for (int k = 0; k < n; k++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"%s\"",
                     k ? (k == n - 1 ? " or " : ", ") : "", names[k]);
        LINE_FAIL(BA_ERR_FORMAT, "\"%s\" is %s%s%s, expected %s", key,
                  json_is_string(v) ? "\"" : "", json_is_string(v) ? json_string_value(v) : "not a string",
                  json_is_string(v) ? "\"" : "", list);
    }
    *out = i;
    return BA_OK;
}

/* One JSON object -> one association. */
static ba_status parse_object(const char *path, long line, json_t *obj, ba_association *a,
                              ba_error *err)
{
    memset(a, 0, sizeof *a);
    a->after_word = a->after_sentence = -1;
    a->line = line;
    if (!json_is_object(obj)) LINE_FAIL(BA_ERR_FORMAT, "expected a JSON object {...}");
    const char *key;
    json_t *v;
    bool has_granularity = false;
    const char *text = NULL;
    json_object_foreach(obj, key, v) {
        int choice = 0;
        if (!strcmp(key, "story")) {
            if (!json_is_string(v) || !json_string_value(v)[0])
                LINE_FAIL(BA_ERR_FORMAT, "\"story\" must be a non-empty string");
            if (strlen(json_string_value(v)) >= sizeof a->story || strchr(json_string_value(v), '/'))
                LINE_FAIL(BA_ERR_FORMAT, "\"story\" is not a story name (< 256 bytes, no '/')");
            snprintf(a->story, sizeof a->story, "%s", json_string_value(v));
        } else if (!strcmp(key, "after_word")) {
            BA_CHECK(read_index(path, line, key, v, &a->after_word, err));
        } else if (!strcmp(key, "after_sentence")) {
            BA_CHECK(read_index(path, line, key, v, &a->after_sentence, err));
        } else if (!strcmp(key, "text")) {
            if (!json_is_string(v)) LINE_FAIL(BA_ERR_FORMAT, "\"text\" must be a string");
            text = json_string_value(v);
        } else if (!strcmp(key, "granularity")) {
            BA_CHECK(read_choice(path, line, key, v, GRANULARITY_NAMES, 2, &choice, err));
            a->granularity = (ba_assoc_granularity)choice;
            has_granularity = true;
        } else if (!strcmp(key, "source")) {
            BA_CHECK(read_choice(path, line, key, v, SOURCE_NAMES, 4, &choice, err));
            a->source = (ba_assoc_source)choice;
        } else {
            LINE_FAIL(BA_ERR_FORMAT, "unknown field \"%s\" (expected story, after_word or "
                      "after_sentence, text, granularity, source)", key);
        }
    }
    if (!a->story[0]) LINE_FAIL(BA_ERR_FORMAT, "\"story\" is missing");
    if ((a->after_word >= 0) == (a->after_sentence >= 0))
        LINE_FAIL(BA_ERR_FORMAT, "give exactly one of \"after_word\" and \"after_sentence\"");
    if (!text) LINE_FAIL(BA_ERR_FORMAT, "\"text\" is missing");
    if (blank(text)) LINE_FAIL(BA_ERR_VALUE, "\"text\" is empty");
    if (!has_granularity)
        a->granularity = a->after_word >= 0 ? BA_GRANULARITY_WORD : BA_GRANULARITY_SENTENCE;
    if (a->granularity == BA_GRANULARITY_WORD && a->after_word < 0)
        LINE_FAIL(BA_ERR_FORMAT, "a word-level association needs \"after_word\"");
    a->text = (char *)text; /* borrowed until ba_association_set_add copies it */
    return BA_OK;
}

static ba_status parse_line(const char *path, long line, const char *text,
                            ba_association_set *set, ba_error *err)
{
    json_error_t jerr;
    json_t *obj = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj) LINE_FAIL(BA_ERR_FORMAT, "not valid JSON: %s (column %d)", jerr.text, jerr.column);
    ba_association a;
    ba_status rc = parse_object(path, line, obj, &a, err);
    if (rc == BA_OK) rc = ba_association_set_add(set, &a, err);
    json_decref(obj);
    return rc;
}

ba_status ba_association_set_read(const char *path, ba_association_set *set, ba_error *err)
{
    memset(set, 0, sizeof *set);
    snprintf(set->path, sizeof set->path, "%s", path);
    file_stem(path, set->name, sizeof set->name);
    BA_CHECK(ba_require_regular(path, err)); /* a FIFO would block fopen */
    FILE *f = fopen(path, "rb");
    if (!f) return ba_fail(err, BA_ERR_IO, "%s: cannot open the association set", path);
    ba_status rc = BA_OK;
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    long line = 0;
    while (rc == BA_OK && (len = getline(&buf, &cap, f)) >= 0) {
        line++;
        if (memchr(buf, '\0', (size_t)len)) {
            rc = ba_fail(err, BA_ERR_FORMAT, "%s:%ld: a NUL byte: not UTF-8 text", path, line);
            break;
        }
        char *text = buf;
        if (line == 1 && (unsigned char)text[0] == 0xEF && (unsigned char)text[1] == 0xBB &&
            (unsigned char)text[2] == 0xBF)
            text += 3; /* UTF-8 byte-order mark */
        if (blank(text)) continue;
        rc = parse_line(path, line, text, set, err);
    }
    if (rc == BA_OK && ferror(f)) rc = ba_fail(err, BA_ERR_IO, "%s: read error", path);
    free(buf);
    fclose(f);
    if (rc != BA_OK) ba_association_set_free(set);
    return rc;
}

ba_status ba_association_set_write(const char *path, const ba_association_set *set,
                                   ba_error *err)
{
    char temp[BA_PATH_MAX + 16];
    FILE *f = ba_partial_open(path, temp, sizeof temp, err);
    if (!f) return BA_ERR_IO;
    ba_status rc = BA_OK;
    for (size_t i = 0; rc == BA_OK && i < set->n; i++) {
        const ba_association *a = &set->items[i];
        json_t *obj = json_object();
        json_object_set_new(obj, "story", json_string(a->story));
        if (a->after_word >= 0) json_object_set_new(obj, "after_word", json_integer(a->after_word));
        else json_object_set_new(obj, "after_sentence", json_integer(a->after_sentence));
        json_object_set_new(obj, "text", json_string(a->text));
        json_object_set_new(obj, "granularity", json_string(ba_granularity_name(a->granularity)));
        json_object_set_new(obj, "source", json_string(ba_source_name(a->source)));
        char *line = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(obj);
        if (!line) rc = ba_fail(err, BA_ERR_VALUE, "%s: association %zu is not valid UTF-8", path, i);
        else if (fprintf(f, "%s\n", line) < 0) rc = ba_fail(err, BA_ERR_IO, "%s: cannot write", path);
        free(line);
    }
    return ba_partial_close(f, temp, path, rc, err);
}

/* ------------------------------------------------------------ sentences */

/* Length of a closing quote or bracket ending s[0..n), or 0. */
static size_t closer_length(const char *s, size_t n)
{
    static const char *const CLOSERS[] = {"\"", "'", ")", "]", "}", "\xE2\x80\x9D", "\xE2\x80\x99",
                                          "\xC2\xBB"};
    for (size_t i = 0; i < sizeof CLOSERS / sizeof *CLOSERS; i++) {
        size_t k = strlen(CLOSERS[i]);
        if (n >= k && memcmp(s + n - k, CLOSERS[i], k) == 0) return k;
    }
    return 0;
}

bool ba_word_ends_sentence(const char *word)
{
    size_t n = strlen(word), k;
    while ((k = closer_length(word, n)) > 0) n -= k;
    if (n == 0) return false;
    char last = word[n - 1];
    if (last == '.' || last == '!' || last == '?') return true;
    return n >= 3 && memcmp(word + n - 3, "\xE2\x80\xA6", 3) == 0; /* … */
}

ba_status ba_story_sentences(const ba_story *story, double pause_s, size_t **ends,
                             size_t *n_sentences, bool *by_pause, ba_error *err)
{
    if (pause_s <= 0) pause_s = BA_SENTENCE_PAUSE_S;
    size_t n = story->n_words, count = 0;
    *ends = ba_calloc(n ? n : 1, sizeof **ends, "sentence ends", err);
    if (!*ends) return BA_ERR_NOMEM;
    bool punctuated = false;
    for (size_t w = 0; w < n && !punctuated; w++) punctuated = ba_word_ends_sentence(story->words[w]);
    for (size_t w = 0; w < n; w++) {
        bool end = w + 1 == n;
        if (!end && punctuated) end = ba_word_ends_sentence(story->words[w]);
        else if (!end) end = story->onset[w + 1] - story->offset[w] >= pause_s;
        if (end) (*ends)[count++] = w;
    }
    *n_sentences = count;
    if (by_pause) *by_pause = !punctuated && n > 0;
    return BA_OK;
}

/* ------------------------------------------------------------ checking */

static const ba_story *find_story(const ba_story *stories, size_t n, const char *name)
{
    for (size_t s = 0; s < n; s++)
        if (strcmp(stories[s].name, name) == 0) return &stories[s];
    return NULL;
}

static const char *set_label(const ba_association_set *set)
{
    return set->path[0] ? set->path : set->name[0] ? set->name : "associations";
}

ba_status ba_association_set_check(const ba_association_set *set, const ba_story *stories,
                                   size_t n_stories, double pause_s, ba_error *err)
{
    size_t *counts = ba_calloc(n_stories ? n_stories : 1, sizeof *counts, "sentence counts", err);
    if (!counts) return BA_ERR_NOMEM;
    ba_status rc = BA_OK;
    for (size_t s = 0; rc == BA_OK && s < n_stories; s++) {
        size_t *ends = NULL;
        rc = ba_story_sentences(&stories[s], pause_s, &ends, &counts[s], NULL, err);
        free(ends);
    }
    const char *path = set_label(set);
    for (size_t i = 0; rc == BA_OK && i < set->n; i++) {
        const ba_association *a = &set->items[i];
        const ba_story *st = find_story(stories, n_stories, a->story);
        if (!st) {
            rc = ba_fail(err, BA_ERR_VALUE, "%s:%ld: unknown story \"%s\" (%zu stories read%s%s)",
                         path, a->line, a->story, n_stories, n_stories ? ", e.g. " : "",
                         n_stories ? stories[0].name : "");
        } else if (a->after_word >= 0 && (size_t)a->after_word >= st->n_words) {
            rc = ba_fail(err, BA_ERR_VALUE, "%s:%ld: after_word %ld is out of range: story \"%s\" "
                         "has %zu words (0..%zu)", path, a->line, a->after_word, st->name,
                         st->n_words, st->n_words - 1);
        } else if (a->after_sentence >= 0 &&
                   (size_t)a->after_sentence >= counts[st - stories]) {
            rc = ba_fail(err, BA_ERR_VALUE, "%s:%ld: after_sentence %ld is out of range: story "
                         "\"%s\" has %zu sentences (0..%zu; see associations.h for how "
                         "sentences are found)", path, a->line, a->after_sentence, st->name,
                         counts[st - stories], counts[st - stories] - 1);
        }
    }
    free(counts);
    return rc;
}

/* ------------------------------------------------------------ policies */

void ba_augment_options_defaults(ba_augment_options *o)
{
    memset(o, 0, sizeof *o);
    o->placement = BA_PLACE_HUMAN;
    o->every_k = 4;
    o->seed = 2025;
    o->pause_s = BA_SENTENCE_PAUSE_S;
}

static const char *const POLICY_NAMES[] = {"human", "every-k", "word", "random",
                                           "random-human", "random-every-k", "random-word"};

ba_status ba_augment_policy_parse(const char *text, ba_augment_options *o, ba_error *err)
{
    int i = text ? name_index(text, POLICY_NAMES, 7) : -1;
    if (i < 0)
        return ba_fail(err, BA_ERR_USAGE, "policy '%s': expected human, every-k, word, random, "
                       "random-every-k or random-word", text ? text : "");
    static const ba_assoc_placement PLACE[] = {BA_PLACE_HUMAN, BA_PLACE_EVERY_K, BA_PLACE_WORD,
                                               BA_PLACE_HUMAN, BA_PLACE_HUMAN, BA_PLACE_EVERY_K,
                                               BA_PLACE_WORD};
    o->placement = PLACE[i];
    o->random_text = i >= 3;
    return BA_OK;
}

const char *ba_augment_policy_name(const ba_augment_options *o)
{
    static const char *const PLAIN[] = {"human", "every-k", "word"};
    static const char *const RANDOM[] = {"random", "random-every-k", "random-word"};
    if ((unsigned)o->placement > 2) return "?";
    return o->random_text ? RANDOM[o->placement] : PLAIN[o->placement];
}

void ba_augment_condition_name(const ba_association_set *set, const ba_augment_options *o,
                               char *buf, size_t size)
{
    const char *policy = ba_augment_policy_name(o);
    if (!o->random_text && o->placement == BA_PLACE_HUMAN) snprintf(buf, size, "%s", set->name);
    else snprintf(buf, size, "%s-%s", set->name, policy);
}

/* ------------------------------------------------------------ insertion */

typedef struct {
    size_t after;     /* original word index the text follows */
    size_t sentence;  /* the sentence the association is about */
    size_t item;      /* index in the set */
} insertion;

static int by_place_sentence_item(const void *a, const void *b)
{
    const insertion *x = a, *y = b;
    if (x->after != y->after) return x->after < y->after ? -1 : 1;
    if (x->sentence != y->sentence) return x->sentence < y->sentence ? -1 : 1;
    return (x->item > y->item) - (x->item < y->item);
}

/* The sentence holding word w. */
static size_t sentence_of_word(const size_t *ends, size_t n_sentences, size_t w)
{
    size_t lo = 0, hi = n_sentences;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ends[mid] < w) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Where association a of the story goes under the policy (its original
 * word index to follow). */
static ba_status place_one(const ba_association_set *set, const ba_association *a,
                           const ba_augment_options *o, const size_t *ends, size_t n_sentences,
                           insertion *ins, ba_error *err)
{
    const char *path = set_label(set);
    if (o->placement == BA_PLACE_WORD && a->granularity != BA_GRANULARITY_WORD)
        return ba_fail(err, BA_ERR_USAGE, "%s:%ld: policy 'word' inserts word-level phrases; "
                       "this association is sentence-level", path, a->line);
    if (o->placement == BA_PLACE_EVERY_K && a->granularity != BA_GRANULARITY_SENTENCE)
        return ba_fail(err, BA_ERR_USAGE, "%s:%ld: policy 'every-k' inserts sentence-level "
                       "associations; this one is word-level", path, a->line);
    size_t sentence = a->after_sentence >= 0
                          ? (size_t)a->after_sentence
                          : sentence_of_word(ends, n_sentences, (size_t)a->after_word);
    if (sentence >= n_sentences)
        return ba_fail(err, BA_ERR_VALUE, "%s:%ld: story \"%s\" has no sentence %zu", path,
                       a->line, a->story, sentence);
    ins->sentence = sentence;
    if (o->placement == BA_PLACE_EVERY_K) {
        size_t k = (size_t)o->every_k, block_end = sentence / k * k + k - 1;
        ins->after = ends[block_end < n_sentences ? block_end : n_sentences - 1];
    } else {
        ins->after = a->after_word >= 0 ? (size_t)a->after_word : ends[sentence];
    }
    return BA_OK;
}

/* Split text at white space into copies appended to words[*n...]. */
static size_t count_words(const char *text)
{
    size_t n = 0;
    for (const char *p = text; *p;) {
        while (*p && is_space(*p)) p++;
        if (!*p) break;
        n++;
        while (*p && !is_space(*p)) p++;
    }
    return n;
}

typedef struct {
    ba_augmented_story *out;
    size_t cap;
} builder;

static ba_status push_word(builder *b, const char *word, size_t len, long original,
                           long association, ba_error *err)
{
    ba_augmented_story *a = b->out;
    if (a->n_words == b->cap) return ba_fail(err, BA_ERR_INTERNAL, "augmented story overflow");
    a->words[a->n_words] = strndup(word, len);
    if (!a->words[a->n_words]) return ba_fail(err, BA_ERR_NOMEM, "augmented word");
    a->original[a->n_words] = original;
    a->association[a->n_words] = association;
    if (original >= 0) a->position[original] = a->n_words;
    a->n_words++;
    return BA_OK;
}

static ba_status push_text(builder *b, const char *text, long association, ba_error *err)
{
    for (const char *p = text; *p;) {
        while (*p && is_space(*p)) p++;
        if (!*p) break;
        const char *start = p;
        while (*p && !is_space(*p)) p++;
        BA_CHECK(push_word(b, start, (size_t)(p - start), -1, association, err));
    }
    return BA_OK;
}

/* The random control's words for the insertion of rank `rank`: n_words
 * consecutive words of another story of the pool. */
static ba_status push_random_text(builder *b, const ba_story *story, const ba_story *pool,
                                  size_t n_pool, const ba_augment_options *o, size_t rank,
                                  size_t n_words, long association, ba_error *err)
{
    size_t n_others = 0;
    for (size_t s = 0; s < n_pool; s++)
        n_others += strcmp(pool[s].name, story->name) != 0 && pool[s].n_words > 0;
    if (n_others == 0)
        return ba_fail(err, BA_ERR_USAGE, "story \"%s\": the random control takes its words from "
                       "other stories, and there is none", story->name);
    ba_rng rng;
    ba_rng_seed(&rng, o->seed ^ ba_fnv1a_str(BA_FNV1A_OFFSET, story->name), (uint64_t)rank);
    size_t pick = (size_t)(ba_rng_uniform(&rng) * (double)n_others), seen = 0;
    const ba_story *other = NULL;
    for (size_t s = 0; s < n_pool && !other; s++) {
        if (strcmp(pool[s].name, story->name) == 0 || pool[s].n_words == 0) continue;
        if (seen++ == (pick < n_others ? pick : n_others - 1)) other = &pool[s];
    }
    size_t start = (size_t)(ba_rng_uniform(&rng) * (double)other->n_words);
    if (start >= other->n_words) start = other->n_words - 1;
    for (size_t i = 0; i < n_words; i++) {
        const char *w = other->words[(start + i) % other->n_words];
        BA_CHECK(push_word(b, w, strlen(w), -1, association, err));
    }
    return BA_OK;
}

/* The insertions of this story, sorted by place. */
static ba_status select_insertions(const ba_story *story, const ba_association_set *set,
                                   const ba_augment_options *o, insertion **out, size_t *n_out,
                                   ba_error *err)
{
    ba_status rc = BA_OK;
    size_t *ends = NULL, n_sentences = 0, n = 0;
    insertion *ins = NULL;
    BA_TRY(ba_story_sentences(story, o->pause_s, &ends, &n_sentences, NULL, err), done);
    BA_ALLOC(ins, set->n ? set->n : 1, "insertions", done);
    for (size_t i = 0; i < set->n; i++) {
        const ba_association *a = &set->items[i];
        if (strcmp(a->story, story->name) != 0) continue;
        if (a->after_word >= 0 && (size_t)a->after_word >= story->n_words) {
            rc = ba_fail(err, BA_ERR_VALUE, "%s:%ld: after_word %ld is out of range (story \"%s\" "
                         "has %zu words)", set_label(set), a->line, a->after_word, story->name,
                         story->n_words);
            goto done;
        }
        BA_TRY(place_one(set, a, o, ends, n_sentences, &ins[n], err), done);
        ins[n++].item = i;
    }
    qsort(ins, n, sizeof *ins, by_place_sentence_item);
done:
    free(ends);
    if (rc != BA_OK) {
        free(ins);
        ins = NULL;
        n = 0;
    }
    *out = ins;
    *n_out = n;
    return rc;
}

static ba_status allocate_augmented(ba_augmented_story *a, size_t cap, size_t n_original,
                                    ba_error *err)
{
    a->words = ba_calloc(cap ? cap : 1, sizeof *a->words, "augmented words", err);
    a->original = ba_calloc(cap ? cap : 1, sizeof *a->original, "augmented word origins", err);
    a->association = ba_calloc(cap ? cap : 1, sizeof *a->association, "augmented word origins", err);
    a->position = ba_calloc(n_original ? n_original : 1, sizeof *a->position, "word positions", err);
    return a->words && a->original && a->association && a->position ? BA_OK : BA_ERR_NOMEM;
}

ba_status ba_augment_story(const ba_story *story, const ba_association_set *set,
                           const ba_augment_options *opt, const ba_story *pool, size_t n_pool,
                           ba_augmented_story *out, ba_error *err)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", story->name);
    if (opt->placement == BA_PLACE_EVERY_K && opt->every_k < 1)
        return ba_fail(err, BA_ERR_USAGE, "policy every-k: k = %d, expected >= 1", opt->every_k);
    insertion *ins = NULL;
    size_t n_ins = 0;
    BA_CHECK(select_insertions(story, set, opt, &ins, &n_ins, err));
    size_t cap = story->n_words;
    for (size_t i = 0; i < n_ins; i++) cap += count_words(set->items[ins[i].item].text);
    builder b = {out, cap};
    ba_status rc = allocate_augmented(out, cap, story->n_words, err);
    out->n_original = story->n_words;
    size_t next = 0;
    for (size_t w = 0; rc == BA_OK && w < story->n_words; w++) {
        rc = push_word(&b, story->words[w], strlen(story->words[w]), (long)w, -1, err);
        for (; rc == BA_OK && next < n_ins && ins[next].after == w; next++) {
            const char *text = set->items[ins[next].item].text;
            long item = (long)ins[next].item;
            rc = opt->random_text ? push_random_text(&b, story, pool, n_pool, opt, next,
                                                     count_words(text), item, err)
                                  : push_text(&b, text, item, err);
            out->n_insertions++;
        }
    }
    free(ins);
    if (rc != BA_OK) ba_augmented_story_free(out);
    return rc;
}

void ba_augmented_story_free(ba_augmented_story *a)
{
    for (size_t i = 0; a->words && i < a->n_words; i++) free(a->words[i]);
    free(a->words);
    free(a->original);
    free(a->association);
    free(a->position);
    memset(a, 0, sizeof *a);
}
