/* tokenizer_bpe.c — GPT-2 byte-level BPE: loading (vocab.json + merges.txt,
 * encoder.json + vocab.bpe, tokenizer.json), encoding, decoding, and a
 * small trainer for the synthetic study (ba_bpe_write_tiny_vocab).
 *
 * Encoding = pre-tokenise the text with GPT-2's regular expression (PCRE2,
 * Unicode properties), map every byte of a pre-token to its one-byte token,
 * then repeatedly merge the adjacent pair with the lowest merge rank (the
 * leftmost on ties) until no pair has a rank. The fast merger keeps the
 * candidate pairs in a binary heap (O(n log n) per pre-token); the reference
 * merger rescans (O(n^2)); the tests compare them. Tokens are handled by id:
 * the merge table maps the pair (left id, right id) to (rank, merged id). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer_bpe.h"

#include <errno.h>
#include <pcre2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "brainalign/core/fs.h"
#include "brainalign/core/hash.h"
#include "brainalign/lm/tokenizer.h"

/* ------------------------------------------------------------------------ */
/* UTF-8 and GPT-2's byte <-> code point map                                 */

size_t ba_utf8_valid_prefix(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        uint32_t cp, min;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; min = 0x10000; }
        else return i;
        if (len - i < n) return i;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        /* overlong forms, UTF-16 surrogates and code points past U+10FFFF */
        if (cp < min || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return i;
        i += n;
    }
    return len;
}

static bool byte_is_printable(unsigned b)
{
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

void ba_bpe_byte_map(uint32_t codepoint[256], uint8_t order[256])
{
    int k = 0;
    for (unsigned b = 0; b < 256; b++)
        if (byte_is_printable(b)) { codepoint[b] = b; order[k++] = (uint8_t)b; }
    uint32_t next = 256;
    for (unsigned b = 0; b < 256; b++)
        if (!byte_is_printable(b)) { codepoint[b] = next++; order[k++] = (uint8_t)b; }
}

/* Code points of the map are below 256 + 68 = 324. */
#define BYTE_MAP_LIMIT 324

static void byte_map_inverse(int16_t inverse[BYTE_MAP_LIMIT])
{
    uint32_t cp[256];
    uint8_t order[256];
    ba_bpe_byte_map(cp, order);
    for (int i = 0; i < BYTE_MAP_LIMIT; i++) inverse[i] = -1;
    for (int b = 0; b < 256; b++) inverse[cp[b]] = (int16_t)b;
}

/* Decode one code point of valid UTF-8 at s[*i], advancing *i. */
static uint32_t utf8_next(const unsigned char *s, size_t *i)
{
    unsigned c = s[*i];
    size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; k < n; k++) cp = (cp << 6) | (s[*i + k] & 0x3F);
    *i += n;
    return cp;
}

/* Append the UTF-8 form of a code point below U+0800; returns bytes. */
static size_t utf8_put_small(uint32_t cp, char *out)
{
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

/* ------------------------------------------------------------------------ */
/* Open-addressing hash tables: byte string -> id, (id, id) -> two ints      */

static uint64_t hash_bytes(const char *s, size_t n)
{
    /* FNV-1a from this table's own start value (not the standard offset:
     * kept so that the tables probe as before), then a fold of high bits. */
    uint64_t h = ba_fnv1a(1469598103934665603ULL, s, n);
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 30; /* splitmix64 finaliser */
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static size_t table_capacity(size_t expected)
{
    size_t cap = 16;
    while (cap < 2 * expected + 2) cap *= 2;
    return cap;
}

typedef struct {
    const char *key; /* borrowed: must outlive the table */
    size_t len;
    int32_t id; /* -1: empty slot */
} str_slot;

typedef struct {
    str_slot *slots;
    size_t mask;
    size_t count;
} str_table;

static ba_status str_table_init(str_table *t, size_t expected, ba_error *err)
{
    size_t cap = table_capacity(expected);
    t->slots = ba_calloc(cap, sizeof *t->slots, "token hash table", err);
    if (!t->slots) return BA_ERR_NOMEM;
    for (size_t i = 0; i < cap; i++) t->slots[i].id = -1;
    t->mask = cap - 1;
    t->count = 0;
    return BA_OK;
}

static void str_table_free(str_table *t)
{
    free(t->slots);
    t->slots = NULL;
}

static str_slot *str_table_probe(const str_table *t, const char *key, size_t len)
{
    size_t i = (size_t)hash_bytes(key, len) & t->mask;
    for (;;) {
        str_slot *s = &t->slots[i];
        if (s->id < 0 || (s->len == len && memcmp(s->key, key, len) == 0)) return s;
        i = (i + 1) & t->mask;
    }
}

static int32_t str_table_find(const str_table *t, const char *key, size_t len)
{
    return str_table_probe(t, key, len)->id;
}

/* Insert key -> id unless present; returns the id stored for key. */
static ba_status str_table_put(str_table *t, const char *key, size_t len, int32_t id,
                               int32_t *stored, ba_error *err)
{
    if (2 * (t->count + 1) > t->mask + 1) { /* keep the load below 1/2 */
        str_table bigger;
        BA_CHECK(str_table_init(&bigger, 2 * (t->count + 1), err));
        for (size_t i = 0; i <= t->mask; i++)
            if (t->slots[i].id >= 0)
                *str_table_probe(&bigger, t->slots[i].key, t->slots[i].len) = t->slots[i];
        bigger.count = t->count;
        str_table_free(t);
        *t = bigger;
    }
    str_slot *s = str_table_probe(t, key, len);
    if (s->id < 0) {
        s->key = key;
        s->len = len;
        s->id = id;
        t->count++;
    }
    *stored = s->id;
    return BA_OK;
}

#define PAIR_EMPTY UINT64_MAX

typedef struct {
    uint64_t key; /* left << 32 | right; PAIR_EMPTY: empty slot */
    int32_t a;    /* merge rank (or pair count while training) */
    int32_t b;    /* merged token id */
} pair_slot;

typedef struct {
    pair_slot *slots;
    size_t mask;
    size_t count;
} pair_table;

static uint64_t pair_key(int32_t left, int32_t right)
{
    return ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
}

static ba_status pair_table_init(pair_table *t, size_t expected, ba_error *err)
{
    size_t cap = table_capacity(expected);
    t->slots = ba_malloc(cap * sizeof *t->slots, "merge hash table", err);
    if (!t->slots) return BA_ERR_NOMEM;
    for (size_t i = 0; i < cap; i++) t->slots[i].key = PAIR_EMPTY;
    t->mask = cap - 1;
    t->count = 0;
    return BA_OK;
}

static void pair_table_free(pair_table *t)
{
    free(t->slots);
    t->slots = NULL;
}

static pair_slot *pair_table_probe(const pair_table *t, uint64_t key)
{
    size_t i = (size_t)hash_u64(key) & t->mask;
    for (;;) {
        pair_slot *s = &t->slots[i];
        if (s->key == PAIR_EMPTY || s->key == key) return s;
        i = (i + 1) & t->mask;
    }
}

static const pair_slot *pair_table_find(const pair_table *t, int32_t left, int32_t right)
{
    const pair_slot *s = pair_table_probe(t, pair_key(left, right));
    return s->key == PAIR_EMPTY ? NULL : s;
}

/* The slot for (left, right), created (a = b = 0) when absent. */
static ba_status pair_table_slot(pair_table *t, int32_t left, int32_t right, pair_slot **out,
                                 ba_error *err)
{
    if (2 * (t->count + 1) > t->mask + 1) {
        pair_table bigger;
        BA_CHECK(pair_table_init(&bigger, 2 * (t->count + 1), err));
        for (size_t i = 0; i <= t->mask; i++)
            if (t->slots[i].key != PAIR_EMPTY)
                *pair_table_probe(&bigger, t->slots[i].key) = t->slots[i];
        bigger.count = t->count;
        pair_table_free(t);
        *t = bigger;
    }
    uint64_t key = pair_key(left, right);
    pair_slot *s = pair_table_probe(t, key);
    if (s->key == PAIR_EMPTY) {
        s->key = key;
        s->a = s->b = 0;
        t->count++;
    }
    *out = s;
    return BA_OK;
}

static void pair_table_clear(pair_table *t)
{
    for (size_t i = 0; i <= t->mask; i++) t->slots[i].key = PAIR_EMPTY;
    t->count = 0;
}

/* ------------------------------------------------------------------------ */
/* The model                                                                 */

typedef struct {
    int32_t n_vocab;
    int32_t byte_token[256]; /* id of the one-byte token of each byte */
    pair_table merges;       /* (left, right) -> rank (a), merged id (b) */
    char *pool;              /* the bytes of every token, back to back */
    size_t *offset;          /* token i is pool[offset[i], offset[i + 1]) */
    pcre2_code *pretok;
    char source[512]; /* the file(s) it came from, for messages */
} bpe_model;

static void bpe_model_free(bpe_model *m)
{
    if (!m) return;
    pair_table_free(&m->merges);
    free(m->pool);
    free(m->offset);
    pcre2_code_free(m->pretok);
    free(m);
}

static ba_status compile_pretokenizer(pcre2_code **out, ba_error *err)
{
    int code;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)BA_GPT2_PATTERN, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP, &code, &at, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return ba_fail(err, BA_ERR_INTERNAL,
                       "GPT-2 pre-tokeniser pattern: PCRE2 compile error at %zu: %s",
                       (size_t)at, (const char *)msg);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional: falls back to the interpreter */
    *out = re;
    return BA_OK;
}

/* Everything needed while reading a vocabulary: the token strings by id
 * (borrowed from the parsed JSON) and their index. */
typedef struct {
    const char *where; /* file name for messages */
    int32_t n;
    const char **token;
    size_t *token_len;
    str_table index;
    char *concat; /* scratch for "left" + "right" */
    size_t concat_cap;
} vocab_builder;

static void vocab_builder_free(vocab_builder *vb)
{
    free(vb->token);
    free(vb->token_len);
    free(vb->concat);
    str_table_free(&vb->index);
}

static ba_status json_int32(const json_t *v, int32_t *out)
{
    if (!json_is_integer(v)) return BA_ERR_FORMAT;
    json_int_t x = json_integer_value(v);
    if (x < 0 || x > INT32_MAX - 1) return BA_ERR_VALUE;
    *out = (int32_t)x;
    return BA_OK;
}

/* The largest id in a token -> id object (-1 when empty or malformed ids). */
static ba_status vocab_max_id(const char *where, const char *object, const json_t *vocab,
                              int32_t *max_id, ba_error *err)
{
    const char *key;
    json_t *value;
    *max_id = -1;
    json_object_foreach((json_t *)vocab, key, value) {
        int32_t id;
        if (json_int32(value, &id) != BA_OK)
            return ba_fail(err, BA_ERR_FORMAT,
                           "%s: %s: token '%.80s' has id that is not a non-negative integer",
                           where, object, key);
        if (id > *max_id) *max_id = id;
    }
    return BA_OK;
}

/* The smallest id in 0..n_names that neither `vocab` nor `added` (the
 * added_tokens array, may be NULL) uses: n_names tokens cannot fill
 * n_names + 1 ids. Ids were checked by vocab_max_id / hf_added_tokens. */
static ba_status first_unused_id(const json_t *vocab, const json_t *added, size_t n_names,
                                 int32_t *unused, ba_error *err)
{
    unsigned char *seen = ba_calloc(n_names + 1, 1, "vocabulary id check", err);
    if (!seen) return BA_ERR_NOMEM;
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)vocab, key, value) {
        json_int_t id = json_integer_value(value);
        if (id >= 0 && (size_t)id <= n_names) seen[id] = 1;
    }
    size_t i;
    json_array_foreach(added, i, value) {
        json_int_t id = json_integer_value(json_object_get(value, "id"));
        if (id >= 0 && (size_t)id <= n_names) seen[id] = 1;
    }
    size_t id = 0;
    while (id < n_names && seen[id]) id++;
    free(seen);
    *unused = (int32_t)id;
    return BA_OK;
}

/* Fill vb from the token -> id object `vocab`, leaving room for ids up to
 * n_total - 1 (added tokens, the array `added`, may be NULL). Every id may
 * be used once. Ids must be 0..N-1, so an id range wider than the number of
 * tokens is refused before allocating by it (a single token with id
 * 2147483646 would otherwise cost 32 GB). */
static ba_status vocab_read_object(vocab_builder *vb, const char *object, const json_t *vocab,
                                   const json_t *added, int32_t n_total, ba_error *err)
{
    size_t n_names = json_object_size(vocab) + (json_is_array(added) ? json_array_size(added) : 0);
    if ((size_t)n_total > n_names) {
        int32_t unused;
        BA_CHECK(first_unused_id(vocab, json_is_array(added) ? added : NULL, n_names, &unused,
                                 err));
        return ba_fail(err, BA_ERR_FORMAT,
                       "%s: %s: no token has id %d, but ids go up to %d (vocabulary size "
                       "mismatch: ids must be 0..N-1)",
                       vb->where, object, (int)unused, (int)n_total - 1);
    }
    vb->n = n_total;
    vb->token = ba_calloc((size_t)n_total, sizeof *vb->token, "vocabulary", err);
    vb->token_len = ba_calloc((size_t)n_total, sizeof *vb->token_len, "vocabulary", err);
    if (!vb->token || !vb->token_len) return BA_ERR_NOMEM;
    BA_CHECK(str_table_init(&vb->index, json_object_size(vocab), err));
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)vocab, key, value) {
        int32_t id = (int32_t)json_integer_value(value); /* checked by vocab_max_id */
        size_t len = strlen(key);
        if (vb->token[id])
            return ba_fail(err, BA_ERR_FORMAT, "%s: %s: id %d is given to both '%.80s' and '%.80s'",
                           vb->where, object, (int)id, vb->token[id], key);
        vb->token[id] = key;
        vb->token_len[id] = len;
        int32_t stored;
        BA_CHECK(str_table_put(&vb->index, key, len, id, &stored, err));
    }
    return BA_OK;
}

/* Every id 0..n-1 must name a token: the vocabulary size is its id range. */
static ba_status vocab_check_dense(const vocab_builder *vb, const char *object, ba_error *err)
{
    for (int32_t id = 0; id < vb->n; id++)
        if (!vb->token[id])
            return ba_fail(err, BA_ERR_FORMAT,
                           "%s: %s: no token has id %d, but ids go up to %d (vocabulary size "
                           "mismatch: ids must be 0..N-1)",
                           vb->where, object, (int)id, (int)vb->n - 1);
    return BA_OK;
}

/* Store the bytes each token stands for; find the one-byte tokens. */
static ba_status model_set_tokens(bpe_model *m, const vocab_builder *vb, ba_error *err)
{
    int16_t inverse[BYTE_MAP_LIMIT];
    byte_map_inverse(inverse);
    size_t total = 0;
    for (int32_t id = 0; id < vb->n; id++) total += vb->token_len[id];
    m->n_vocab = vb->n;
    m->pool = ba_malloc(total + 1, "token bytes", err);
    m->offset = ba_calloc((size_t)vb->n + 1, sizeof *m->offset, "token offsets", err);
    if (!m->pool || !m->offset) return BA_ERR_NOMEM;
    size_t at = 0;
    for (int32_t id = 0; id < vb->n; id++) {
        const unsigned char *s = (const unsigned char *)vb->token[id];
        size_t len = vb->token_len[id], i = 0, start = at;
        bool mapped = true;
        while (i < len && mapped) {
            uint32_t cp = utf8_next(s, &i);
            if (cp < BYTE_MAP_LIMIT && inverse[cp] >= 0) m->pool[at++] = (char)inverse[cp];
            else mapped = false;
        }
        if (!mapped) { /* not a byte-level token (an added token): its text as is */
            at = start;
            memcpy(m->pool + at, s, len);
            at += len;
        }
        m->offset[id] = start;
        m->offset[id + 1] = at;
    }
    uint32_t cp[256];
    uint8_t order[256];
    ba_bpe_byte_map(cp, order);
    for (int b = 0; b < 256; b++) {
        char u[2];
        size_t n = utf8_put_small(cp[b], u);
        int32_t id = str_table_find(&vb->index, u, n);
        if (id < 0)
            return ba_fail(err, BA_ERR_FORMAT,
                           "%s: vocabulary has no token for byte 0x%02X ('%.*s'); a byte-level "
                           "BPE vocabulary needs all 256",
                           vb->where, b, (int)n, u);
        m->byte_token[b] = id;
    }
    return BA_OK;
}

/* Record merge number `rank`: left + right -> their concatenation. `line`
 * names the merge in messages ("vocab.bpe line 7", "model.merges[5]"). */
static ba_status model_add_merge(bpe_model *m, vocab_builder *vb, const char *line,
                                 const char *left, size_t left_len, const char *right,
                                 size_t right_len, int32_t rank, ba_error *err)
{
    int32_t l = str_table_find(&vb->index, left, left_len);
    int32_t r = str_table_find(&vb->index, right, right_len);
    if (l < 0 || r < 0)
        return ba_fail(err, BA_ERR_FORMAT,
                       "%s: merge '%.*s %.*s' names token '%.*s' that the vocabulary does not "
                       "have",
                       line, (int)left_len, left, (int)right_len, right,
                       (int)(l < 0 ? left_len : right_len), l < 0 ? left : right);
    if (left_len + right_len > vb->concat_cap) {
        free(vb->concat);
        vb->concat_cap = 2 * (left_len + right_len);
        vb->concat = ba_malloc(vb->concat_cap, "merge scratch", err);
        if (!vb->concat) return BA_ERR_NOMEM;
    }
    memcpy(vb->concat, left, left_len);
    memcpy(vb->concat + left_len, right, right_len);
    int32_t merged = str_table_find(&vb->index, vb->concat, left_len + right_len);
    if (merged < 0)
        return ba_fail(err, BA_ERR_FORMAT,
                       "%s: merge '%.*s %.*s' makes '%.*s%.*s', which the vocabulary does not have",
                       line, (int)left_len, left, (int)right_len, right, (int)left_len, left,
                       (int)right_len, right);
    pair_slot *s;
    BA_CHECK(pair_table_slot(&m->merges, l, r, &s, err));
    s->a = rank; /* a repeated merge keeps its last rank, as GPT-2's encoder.py does */
    s->b = merged;
    return BA_OK;
}

/* ------------------------------------------------------------------------ */
/* Encoding                                                                  */

typedef struct {
    int32_t rank;
    int32_t pos;
    int32_t left, right, merged;
} heap_entry;

/* Per-call scratch for one pre-token of n bytes. */
typedef struct {
    int32_t *id, *prev, *next, *start;
    heap_entry *heap;
    size_t cap;
} merge_scratch;

static void scratch_free(merge_scratch *s)
{
    free(s->id);
    free(s->prev);
    free(s->next);
    free(s->start);
    free(s->heap);
    memset(s, 0, sizeof *s);
}

static ba_status scratch_reserve(merge_scratch *s, size_t n, ba_error *err)
{
    if (n <= s->cap) return BA_OK;
    scratch_free(s);
    size_t cap = n < 64 ? 64 : 2 * n;
    s->id = ba_malloc(cap * sizeof *s->id, "BPE scratch", err);
    s->prev = ba_malloc(cap * sizeof *s->prev, "BPE scratch", err);
    s->next = ba_malloc(cap * sizeof *s->next, "BPE scratch", err);
    s->start = ba_malloc(cap * sizeof *s->start, "BPE scratch", err);
    s->heap = ba_malloc(3 * cap * sizeof *s->heap, "BPE scratch", err);
    if (!s->id || !s->prev || !s->next || !s->start || !s->heap) {
        scratch_free(s);
        return BA_ERR_NOMEM;
    }
    s->cap = cap;
    return BA_OK;
}

/* Where the tokens go: ids, and optionally the byte offset where each ends. */
typedef struct {
    int32_t *ids;
    size_t *end;
    size_t n;
} token_sink;

static void sink_put(token_sink *sink, int32_t id, size_t end)
{
    sink->ids[sink->n] = id;
    if (sink->end) sink->end[sink->n] = end;
    sink->n++;
}

static bool entry_before(const heap_entry *a, const heap_entry *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(heap_entry *h, size_t *n, heap_entry e)
{
    size_t i = (*n)++;
    while (i > 0 && entry_before(&e, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = e;
}

static heap_entry heap_pop(heap_entry *h, size_t *n)
{
    heap_entry top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && entry_before(&h[c + 1], &h[c])) c++;
        if (!entry_before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = last;
    return top;
}

/* Push the pair starting at symbol i when it has a merge. */
static void push_pair(const bpe_model *m, merge_scratch *s, size_t *n_heap, int32_t i)
{
    int32_t j = s->next[i];
    const pair_slot *p = pair_table_find(&m->merges, s->id[i], s->id[j]);
    if (p) {
        heap_entry e = {p->a, i, s->id[i], s->id[j], p->b};
        heap_push(s->heap, n_heap, e);
    }
}

/* Fast merger. Symbols are a linked list indexed by their first byte; a
 * heap entry is stale when either side has changed since it was pushed
 * (ids only grow, so equal ids mean the same symbols). */
static void merge_heap(const bpe_model *m, const unsigned char *piece, size_t n,
                       merge_scratch *s, token_sink *sink, size_t base)
{
    for (size_t i = 0; i < n; i++) {
        s->id[i] = m->byte_token[piece[i]];
        s->prev[i] = (int32_t)i - 1;
        s->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    size_t n_heap = 0;
    for (size_t i = 0; i + 1 < n; i++) push_pair(m, s, &n_heap, (int32_t)i);
    while (n_heap > 0) {
        heap_entry e = heap_pop(s->heap, &n_heap);
        int32_t j = s->next[e.pos];
        if (s->id[e.pos] != e.left || j < 0 || s->id[j] != e.right) continue;
        s->id[e.pos] = e.merged;
        s->id[j] = -1;
        s->next[e.pos] = s->next[j];
        if (s->next[j] >= 0) s->prev[s->next[j]] = e.pos;
        if (s->prev[e.pos] >= 0) push_pair(m, s, &n_heap, s->prev[e.pos]);
        if (s->next[e.pos] >= 0) push_pair(m, s, &n_heap, e.pos);
    }
    for (int32_t i = 0; n > 0 && i >= 0; i = s->next[i])
        sink_put(sink, s->id[i], base + (s->next[i] < 0 ? n : (size_t)s->next[i]));
}

/* Reference merger: rescan for the lowest-ranked pair, merge it, repeat. */
static void merge_reference(const bpe_model *m, const unsigned char *piece, size_t n,
                            merge_scratch *s, token_sink *sink, size_t base)
{
    size_t count = n;
    for (size_t i = 0; i < n; i++) {
        s->id[i] = m->byte_token[piece[i]];
        s->start[i] = (int32_t)i;
    }
    for (;;) {
        const pair_slot *best = NULL;
        size_t at = 0;
        for (size_t k = 0; k + 1 < count; k++) {
            const pair_slot *p = pair_table_find(&m->merges, s->id[k], s->id[k + 1]);
            if (p && (!best || p->a < best->a)) { best = p; at = k; }
        }
        if (!best) break;
        s->id[at] = best->b;
        memmove(s->id + at + 1, s->id + at + 2, (count - at - 2) * sizeof *s->id);
        memmove(s->start + at + 1, s->start + at + 2, (count - at - 2) * sizeof *s->start);
        count--;
    }
    for (size_t k = 0; k < count; k++)
        sink_put(sink, s->id[k], base + (k + 1 < count ? (size_t)s->start[k + 1] : n));
}

typedef void (*merge_fn)(const bpe_model *, const unsigned char *, size_t, merge_scratch *,
                         token_sink *, size_t);

/* Split text into GPT-2 pre-tokens and merge each. With want_end, also the
 * byte offset where each token ends. */
static ba_status encode_with(const bpe_model *m, merge_fn merge, const char *text, size_t len,
                             int32_t **ids, size_t *n_ids, size_t **token_end, ba_error *err)
{
    *ids = NULL;
    *n_ids = 0;
    if (token_end) *token_end = NULL;
    size_t valid = ba_utf8_valid_prefix(text, len);
    if (valid < len)
        return ba_fail(err, BA_ERR_VALUE,
                       "text: invalid UTF-8 at byte %zu (byte 0x%02X); GPT-2 BPE encodes "
                       "UTF-8 text only",
                       valid, (unsigned)(unsigned char)text[valid]);
    ba_status rc = BA_OK;
    token_sink sink = {0};
    merge_scratch scratch = {0};
    pcre2_match_data *md = NULL;
    /* a token covers at least one byte, so len tokens always fit */
    sink.ids = ba_malloc((len ? len : 1) * sizeof *sink.ids, "token ids", err);
    if (!sink.ids) return BA_ERR_NOMEM;
    if (token_end) BA_ALLOC(sink.end, len ? len : 1, "token ends", fail);
    md = pcre2_match_data_create_from_pattern(m->pretok, NULL);
    if (!md) { rc = ba_fail(err, BA_ERR_NOMEM, "cannot allocate PCRE2 match data"); goto fail; }
    size_t at = 0;
    while (at < len) {
        int found = pcre2_match(m->pretok, (PCRE2_SPTR)text, len, at, PCRE2_NO_UTF_CHECK, md,
                                NULL);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (found < 0 || ov[0] != at || ov[1] <= at) {
            rc = ba_fail(err, BA_ERR_INTERNAL,
                         "GPT-2 pre-tokeniser: no pre-token starts at byte %zu (PCRE2 code %d)",
                         at, found);
            goto fail;
        }
        size_t n = ov[1] - at;
        BA_TRY(scratch_reserve(&scratch, n, err), fail);
        merge(m, (const unsigned char *)text + at, n, &scratch, &sink, at);
        at = ov[1];
    }
    pcre2_match_data_free(md);
    scratch_free(&scratch);
    *ids = sink.ids;
    *n_ids = sink.n;
    if (token_end) *token_end = sink.end;
    return BA_OK;
fail:
    pcre2_match_data_free(md);
    scratch_free(&scratch);
    free(sink.ids);
    free(sink.end);
    return rc;
}

static ba_status bpe_encode(const void *impl, const char *text, size_t len, int32_t **ids,
                            size_t *n_ids, ba_error *err)
{
    return encode_with(impl, merge_heap, text, len, ids, n_ids, NULL, err);
}

/* Given where every token of " ".join(words) ends, find each word's tokens.
 * Word w owns bytes [end of word w-1, end of word w): its leading space and
 * itself. A token that starts in one word and ends in the next means the
 * tokens do not follow the words: fail, naming the word. */
static ba_status assign_words(char *const *words, size_t n_words, const size_t *word_stop,
                              const size_t *token_end, size_t n_ids, size_t *word_end,
                              ba_error *err)
{
    size_t w = 0;
    for (size_t t = 0; t < n_ids; t++) {
        size_t start = t ? token_end[t - 1] : 0;
        while (token_end[t] > word_stop[w]) word_end[w++] = t;
        size_t region = w ? word_stop[w - 1] : 0;
        if (start < region)
            return ba_fail(err, BA_ERR_VALUE,
                           "words: token %zu of the joined text spans the end of word %zu "
                           "('%.60s') and the start of word %zu ('%.60s'); the words cannot be "
                           "given separate tokens",
                           t, w - 1, words[w - 1], w, words[w]);
    }
    for (; w < n_words; w++) word_end[w] = n_ids;
    for (w = 0; w < n_words; w++)
        if (word_end[w] == (w ? word_end[w - 1] : 0))
            return ba_fail(err, BA_ERR_VALUE, "words: word %zu ('%.60s') gets no token", w,
                           words[w]);
    return BA_OK;
}

static ba_status bpe_encode_words(const void *impl, char *const *words, size_t n_words,
                                  int32_t **ids, size_t *n_ids, size_t *word_end, ba_error *err)
{
    *ids = NULL;
    *n_ids = 0;
    if (n_words == 0) {
        *ids = ba_malloc(sizeof **ids, "token ids", err);
        return *ids ? BA_OK : BA_ERR_NOMEM;
    }
    ba_status rc = BA_OK;
    char *joined = NULL;
    size_t *stop = NULL, *token_end = NULL, total = 0;
    BA_ALLOC(stop, n_words, "word ends", done);
    for (size_t w = 0; w < n_words; w++) {
        total += (w ? 1 : 0) + strlen(words[w]);
        stop[w] = total;
    }
    BA_ALLOC(joined, total + 1, "joined words", done);
    for (size_t w = 0, at = 0; w < n_words; w++) {
        if (w) joined[at++] = ' ';
        memcpy(joined + at, words[w], stop[w] - at);
        at = stop[w];
    }
    BA_TRY(encode_with(impl, merge_heap, joined, total, ids, n_ids, &token_end, err), done);
    rc = assign_words(words, n_words, stop, token_end, *n_ids, word_end, err);
    if (rc != BA_OK) {
        free(*ids);
        *ids = NULL;
        *n_ids = 0;
    }
done:
    free(stop);
    free(joined);
    free(token_end);
    return rc;
}

static int32_t bpe_vocab_size(const void *impl)
{
    return ((const bpe_model *)impl)->n_vocab;
}

static void bpe_destroy(void *impl)
{
    bpe_model_free(impl);
}

static ba_status bpe_decode(const void *impl, const int32_t *ids, size_t n_ids, bool raw,
                            char **text, size_t *len, ba_error *err);

static const ba_tokenizer_ops BPE_OPS = {
    .kind = "gpt2-bpe",
    .encode = bpe_encode,
    .encode_words = bpe_encode_words,
    .decode = bpe_decode,
    .vocab_size = bpe_vocab_size,
    .destroy = bpe_destroy,
};

int ba_bpe_is(const ba_tokenizer *tok)
{
    return tok && tok->ops == &BPE_OPS;
}

ba_status ba_bpe_encode_reference(const ba_tokenizer *tok, const char *text, size_t len,
                                  int32_t **ids, size_t *n_ids, ba_error *err)
{
    if (!ba_bpe_is(tok))
        return ba_fail(err, BA_ERR_USAGE, "reference BPE encoder: not a gpt2-bpe tokenizer");
    return encode_with(tok->impl, merge_reference, text, len, ids, n_ids, NULL, err);
}

/* in[0, n) with invalid UTF-8 replaced (Python's rule) into out, which
 * holds 3 * n bytes at least (U+FFFD is 3 bytes for >= 1 byte taken). */
static size_t utf8_replace_invalid(const unsigned char *in, size_t n, char *out)
{
    size_t at = 0;
    for (size_t i = 0; i < n;) {
        bool valid;
        size_t k = ba_utf8_maximal_subpart(in + i, n - i, &valid);
        if (valid) {
            memcpy(out + at, in + i, k);
            at += k;
        } else {
            memcpy(out + at, "\xEF\xBF\xBD", 3);
            at += 3;
        }
        i += k;
    }
    return at;
}

static ba_status bpe_decode(const void *impl, const int32_t *ids, size_t n_ids, bool raw,
                            char **text, size_t *len, ba_error *err)
{
    const bpe_model *m = impl;
    *text = NULL;
    *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= m->n_vocab)
            return ba_fail(err, BA_ERR_VALUE, "decode: token %zu has id %d, outside [0, %d)", i,
                           (int)ids[i], (int)m->n_vocab);
        total += m->offset[ids[i] + 1] - m->offset[ids[i]];
    }
    char *bytes = ba_malloc(total + 1, "decoded text", err);
    if (!bytes) return BA_ERR_NOMEM;
    size_t at = 0;
    for (size_t i = 0; i < n_ids; i++) {
        size_t n = m->offset[ids[i] + 1] - m->offset[ids[i]];
        memcpy(bytes + at, m->pool + m->offset[ids[i]], n);
        at += n;
    }
    bytes[at] = '\0';
    if (!raw && ba_utf8_valid_prefix(bytes, at) < at) {
        if (at > (SIZE_MAX - 1) / 3) {
            free(bytes);
            return ba_fail(err, BA_ERR_VALUE, "decode: %zu bytes is too long", at);
        }
        char *fixed = ba_malloc(3 * at + 1, "decoded text", err);
        if (!fixed) {
            free(bytes);
            return BA_ERR_NOMEM;
        }
        at = utf8_replace_invalid((const unsigned char *)bytes, at, fixed);
        fixed[at] = '\0';
        free(bytes);
        bytes = fixed;
    }
    *text = bytes;
    *len = at;
    return BA_OK;
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                   */

static ba_status new_model(const char *source, bpe_model **out, ba_error *err)
{
    bpe_model *m = ba_calloc(1, sizeof *m, "BPE model", err);
    if (!m) return BA_ERR_NOMEM;
    snprintf(m->source, sizeof m->source, "%s", source);
    ba_status rc = compile_pretokenizer(&m->pretok, err);
    if (rc != BA_OK) { free(m); return rc; }
    *out = m;
    return BA_OK;
}

/* merges.txt / vocab.bpe: "left right" per line; a first line starting
 * with "#version" is a header; blank lines are skipped. */
static ba_status read_merge_lines(bpe_model *m, vocab_builder *vb, const char *path, char *data,
                                  size_t len, ba_error *err)
{
    size_t n_lines = 1;
    for (size_t i = 0; i < len; i++) n_lines += data[i] == '\n';
    BA_CHECK(pair_table_init(&m->merges, n_lines, err));
    int32_t rank = 0;
    size_t line_no = 0;
    char where[600];
    for (size_t at = 0; at < len;) {
        char *line = data + at;
        char *nl = memchr(line, '\n', len - at);
        size_t n = nl ? (size_t)(nl - line) : len - at;
        at += n + (nl ? 1 : 0);
        line_no++;
        if (n > 0 && line[n - 1] == '\r') n--;
        if (n == 0) continue;
        if (line_no == 1 && n >= 8 && memcmp(line, "#version", 8) == 0) continue;
        char *space = memchr(line, ' ', n);
        size_t left = space ? (size_t)(space - line) : 0;
        if (!space || left == 0 || left + 1 == n || memchr(space + 1, ' ', n - left - 1))
            return ba_fail(err, BA_ERR_FORMAT,
                           "%s line %zu: expected two tokens separated by one space, got '%.*s'",
                           path, line_no, (int)(n < 80 ? n : 80), line);
        if (ba_utf8_valid_prefix(line, n) < n)
            return ba_fail(err, BA_ERR_FORMAT, "%s line %zu: invalid UTF-8", path, line_no);
        snprintf(where, sizeof where, "%s line %zu", path, line_no);
        BA_CHECK(model_add_merge(m, vb, where, line, left, space + 1, n - left - 1, rank++, err));
    }
    return BA_OK;
}

static ba_status load_json_file(const char *path, json_t **out, ba_error *err)
{
    json_error_t jerr;
    *out = NULL;
    BA_CHECK(ba_require_regular(path, err)); /* a FIFO would block json_load_file */
    *out = json_load_file(path, 0, &jerr);
    if (*out) return BA_OK;
    if (access(path, R_OK) != 0)
        return ba_fail(err, BA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    return ba_fail(err, BA_ERR_FORMAT, "%s:%d:%d: malformed JSON: %s", path, jerr.line,
                   jerr.column, jerr.text);
}

ba_status ba_bpe_open_files(const char *vocab_path, const char *merges_path, ba_tokenizer *tok,
                            ba_error *err)
{
    ba_status rc = BA_OK;
    json_t *root = NULL;
    char *merges = NULL;
    size_t merges_len = 0;
    bpe_model *m = NULL;
    vocab_builder vb = {.where = vocab_path};
    BA_TRY(load_json_file(vocab_path, &root, err), done);
    if (!json_is_object(root)) {
        rc = ba_fail(err, BA_ERR_FORMAT, "%s: expected a JSON object token -> id", vocab_path);
        goto done;
    }
    BA_TRY(ba_read_file(merges_path, (unsigned char **)&merges, &merges_len, err), done);
    BA_TRY(new_model(vocab_path, &m, err), done);
    int32_t max_id;
    BA_TRY(vocab_max_id(vocab_path, "vocabulary", root, &max_id, err), done);
    BA_TRY(vocab_read_object(&vb, "vocabulary", root, NULL, max_id + 1, err), done);
    BA_TRY(vocab_check_dense(&vb, "vocabulary", err), done);
    BA_TRY(model_set_tokens(m, &vb, err), done);
    BA_TRY(read_merge_lines(m, &vb, merges_path, merges, merges_len, err), done);
    tok->ops = &BPE_OPS;
    tok->impl = m;
    m = NULL;
done:
    vocab_builder_free(&vb);
    bpe_model_free(m);
    free(merges);
    json_decref(root);
    return rc;
}

/* tokenizer.json: only GPT-2's own pipeline is accepted — no normaliser,
 * a ByteLevel pre-tokeniser with the GPT-2 pattern and no prefix space. */
static ba_status check_hf_pipeline(const char *path, const json_t *root, ba_error *err)
{
    const json_t *norm = json_object_get(root, "normalizer");
    if (norm && !json_is_null(norm))
        return ba_fail(err, BA_ERR_FORMAT,
                       "%s: normalizer: GPT-2 byte-level BPE expects none (null)", path);
    const json_t *pre = json_object_get(root, "pre_tokenizer");
    const char *type = json_string_value(json_object_get(pre, "type"));
    if (!type || strcmp(type, "ByteLevel") != 0)
        return ba_fail(err, BA_ERR_FORMAT,
                       "%s: pre_tokenizer: expected type \"ByteLevel\" (GPT-2), got %s", path,
                       type ? type : "none");
    const json_t *prefix = json_object_get(pre, "add_prefix_space");
    if (json_is_true(prefix))
        return ba_fail(err, BA_ERR_FORMAT,
                       "%s: pre_tokenizer.add_prefix_space is true; only GPT-2's false is "
                       "supported",
                       path);
    const json_t *use_regex = json_object_get(pre, "use_regex");
    if (json_is_false(use_regex))
        return ba_fail(err, BA_ERR_FORMAT,
                       "%s: pre_tokenizer.use_regex is false; only GPT-2's own pattern is "
                       "supported",
                       path);
    const json_t *model = json_object_get(root, "model");
    const char *fields[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const char *v = json_string_value(json_object_get(model, fields[i]));
        if (v && *v)
            return ba_fail(err, BA_ERR_FORMAT, "%s: model.%s is \"%s\"; GPT-2 BPE has none",
                           path, fields[i], v);
    }
    return BA_OK;
}

/* added_tokens may carry ids past model.vocab (their text is stored as is). */
static ba_status hf_added_tokens(const char *path, const json_t *root, vocab_builder *vb,
                                 int32_t *max_id, bool place, ba_error *err)
{
    const json_t *added = json_object_get(root, "added_tokens");
    if (!added || json_is_null(added)) return BA_OK;
    if (!json_is_array(added))
        return ba_fail(err, BA_ERR_FORMAT, "%s: added_tokens: expected an array", path);
    size_t i;
    const json_t *t;
    json_array_foreach(added, i, t) {
        const char *content = json_string_value(json_object_get(t, "content"));
        int32_t id;
        if (!content || json_int32(json_object_get(t, "id"), &id) != BA_OK)
            return ba_fail(err, BA_ERR_FORMAT,
                           "%s: added_tokens[%zu]: expected \"id\" (integer) and \"content\"",
                           path, i);
        if (!place) {
            if (id > *max_id) *max_id = id;
        } else if (!vb->token[id]) {
            vb->token[id] = content;
            vb->token_len[id] = strlen(content);
        }
    }
    return BA_OK;
}

static ba_status hf_merge(bpe_model *m, vocab_builder *vb, const char *path, size_t i,
                          const json_t *merge, int32_t rank, ba_error *err)
{
    char where[600];
    snprintf(where, sizeof where, "%s: model.merges[%zu]", path, i);
    if (json_is_string(merge)) {
        const char *s = json_string_value(merge);
        size_t n = json_string_length(merge);
        const char *space = memchr(s, ' ', n);
        size_t left = space ? (size_t)(space - s) : 0;
        if (!space || left == 0 || left + 1 == n || memchr(space + 1, ' ', n - left - 1))
            return ba_fail(err, BA_ERR_FORMAT,
                           "%s: expected two tokens separated by one space, got '%.80s'", where,
                           s);
        return model_add_merge(m, vb, where, s, left, space + 1, n - left - 1, rank, err);
    }
    if (json_is_array(merge) && json_array_size(merge) == 2 &&
        json_is_string(json_array_get(merge, 0)) && json_is_string(json_array_get(merge, 1))) {
        const json_t *l = json_array_get(merge, 0), *r = json_array_get(merge, 1);
        return model_add_merge(m, vb, where, json_string_value(l), json_string_length(l),
                               json_string_value(r), json_string_length(r), rank, err);
    }
    return ba_fail(err, BA_ERR_FORMAT, "%s: expected \"left right\" or [\"left\", \"right\"]",
                   where);
}

ba_status ba_bpe_open_hf_json(const char *path, const json_t *root, ba_tokenizer *tok,
                              ba_error *err)
{
    ba_status rc = BA_OK;
    bpe_model *m = NULL;
    vocab_builder vb = {.where = path};
    const json_t *model = json_object_get(root, "model");
    const json_t *vocab = json_object_get(model, "vocab");
    const json_t *merges = json_object_get(model, "merges");
    if (!json_is_object(vocab) || !json_is_array(merges))
        return ba_fail(err, BA_ERR_FORMAT,
                       "%s: model: expected \"vocab\" (object token -> id) and \"merges\" (array)",
                       path);
    BA_CHECK(check_hf_pipeline(path, root, err));
    BA_TRY(new_model(path, &m, err), done);
    int32_t max_id;
    BA_TRY(vocab_max_id(path, "model.vocab", vocab, &max_id, err), done);
    BA_TRY(hf_added_tokens(path, root, &vb, &max_id, false, err), done);
    BA_TRY(vocab_read_object(&vb, "model.vocab", vocab, json_object_get(root, "added_tokens"),
                             max_id + 1, err), done);
    BA_TRY(hf_added_tokens(path, root, &vb, &max_id, true, err), done);
    BA_TRY(vocab_check_dense(&vb, "model.vocab + added_tokens", err), done);
    BA_TRY(model_set_tokens(m, &vb, err), done);
    BA_TRY(pair_table_init(&m->merges, json_array_size(merges), err), done);
    size_t i;
    const json_t *merge;
    json_array_foreach(merges, i, merge)
        BA_TRY(hf_merge(m, &vb, path, i, merge, (int32_t)i, err), done);
    tok->ops = &BPE_OPS;
    tok->impl = m;
    m = NULL;
done:
    vocab_builder_free(&vb);
    bpe_model_free(m);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Training a tiny vocabulary (synthetic study)                              */

/* The training state: distinct pre-tokens ("words") with their counts, each
 * a sequence of token ids; tokens as byte strings. */
typedef struct {
    str_table word_index;
    size_t n_words, words_cap;
    int64_t *word_count;
    size_t *word_at, *word_len; /* symbols of word i: sym[word_at[i] ...] */
    int32_t *sym;
    size_t n_sym;
    char **token;
    size_t *token_len;
    int32_t n_tokens;
    str_table token_index;
    int32_t (*merge)[2];
    int n_merges;
} bpe_trainer;

static void trainer_free(bpe_trainer *t)
{
    str_table_free(&t->word_index);
    str_table_free(&t->token_index);
    free(t->word_count);
    free(t->word_at);
    free(t->word_len);
    free(t->sym);
    for (int32_t i = 0; t->token && i < t->n_tokens; i++) free(t->token[i]);
    free(t->token);
    free(t->token_len);
    free(t->merge);
}

static ba_status trainer_add_word(bpe_trainer *t, const char *s, size_t n, ba_error *err)
{
    int32_t id;
    BA_CHECK(str_table_put(&t->word_index, s, n, (int32_t)t->n_words, &id, err));
    if ((size_t)id < t->n_words) {
        t->word_count[id]++;
        return BA_OK;
    }
    if (t->n_words == t->words_cap) {
        size_t cap = t->words_cap ? 2 * t->words_cap : 256;
        int64_t *c = realloc(t->word_count, cap * sizeof *c);
        if (c) t->word_count = c;
        size_t *a = realloc(t->word_at, cap * sizeof *a);
        if (a) t->word_at = a;
        size_t *l = realloc(t->word_len, cap * sizeof *l);
        if (l) t->word_len = l;
        if (!c || !a || !l) return ba_fail(err, BA_ERR_NOMEM, "cannot grow the word table");
        t->words_cap = cap;
    }
    t->word_count[t->n_words] = 1;
    t->word_at[t->n_words] = t->n_sym; /* symbols are laid out after counting */
    t->word_len[t->n_words] = n;
    t->n_sym += n;
    t->n_words++;
    return BA_OK;
}

static ba_status trainer_count_words(bpe_trainer *t, const pcre2_code *re,
                                     const char *const *corpus, size_t n_docs, ba_error *err)
{
    BA_CHECK(str_table_init(&t->word_index, 1024, err));
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md) return ba_fail(err, BA_ERR_NOMEM, "cannot allocate PCRE2 match data");
    ba_status rc = BA_OK;
    for (size_t d = 0; d < n_docs && rc == BA_OK; d++) {
        const char *doc = corpus[d];
        if (!doc) { rc = ba_fail(err, BA_ERR_USAGE, "corpus[%zu] is NULL", d); break; }
        size_t len = strlen(doc), valid = ba_utf8_valid_prefix(doc, len);
        if (valid < len) {
            rc = ba_fail(err, BA_ERR_VALUE, "corpus[%zu]: invalid UTF-8 at byte %zu", d, valid);
            break;
        }
        for (size_t at = 0; at < len && rc == BA_OK;) {
            int found = pcre2_match(re, (PCRE2_SPTR)doc, len, at, PCRE2_NO_UTF_CHECK, md, NULL);
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            if (found < 0 || ov[0] != at || ov[1] <= at) {
                rc = ba_fail(err, BA_ERR_INTERNAL, "corpus[%zu]: no pre-token at byte %zu", d, at);
                break;
            }
            rc = trainer_add_word(t, doc + at, ov[1] - at, err);
            at = ov[1];
        }
    }
    pcre2_match_data_free(md);
    return rc;
}

/* Token ids 0..255 are the bytes in GPT-2's order; words start as bytes. */
static ba_status trainer_init_tokens(bpe_trainer *t, int n_merges, ba_error *err)
{
    uint32_t cp[256];
    uint8_t order[256];
    int32_t id_of_byte[256];
    ba_bpe_byte_map(cp, order);
    size_t cap = 256 + (size_t)n_merges;
    t->token = ba_calloc(cap, sizeof *t->token, "trained tokens", err);
    t->token_len = ba_calloc(cap, sizeof *t->token_len, "trained tokens", err);
    t->merge = ba_calloc((size_t)n_merges, sizeof *t->merge, "trained merges", err);
    t->sym = ba_calloc(t->n_sym, sizeof *t->sym, "training symbols", err);
    if (!t->token || !t->token_len || !t->merge || !t->sym) return BA_ERR_NOMEM;
    BA_CHECK(str_table_init(&t->token_index, cap, err));
    for (int k = 0; k < 256; k++) {
        t->token[k] = ba_malloc(1, "trained token", err);
        if (!t->token[k]) return BA_ERR_NOMEM;
        t->token[k][0] = (char)order[k];
        t->token_len[k] = 1;
        t->n_tokens = k + 1;
        id_of_byte[order[k]] = k;
        int32_t stored;
        BA_CHECK(str_table_put(&t->token_index, t->token[k], 1, k, &stored, err));
    }
    for (size_t i = 0; i <= t->word_index.mask; i++) {
        const str_slot *s = &t->word_index.slots[i];
        if (s->id < 0) continue;
        for (size_t k = 0; k < s->len; k++)
            t->sym[t->word_at[s->id] + k] = id_of_byte[(unsigned char)s->key[k]];
    }
    return BA_OK;
}

/* Tie-break between equally frequent pairs: the smaller (left bytes, right
 * bytes), comparing byte strings lexicographically. */
static int compare_tokens(const bpe_trainer *t, int32_t a, int32_t b)
{
    size_t n = t->token_len[a] < t->token_len[b] ? t->token_len[a] : t->token_len[b];
    int c = memcmp(t->token[a], t->token[b], n);
    if (c) return c;
    return t->token_len[a] < t->token_len[b] ? -1 : t->token_len[a] > t->token_len[b];
}

static bool pair_beats(const bpe_trainer *t, int64_t count, int32_t l, int32_t r,
                       int64_t best_count, int32_t bl, int32_t br)
{
    if (count != best_count) return count > best_count;
    int c = compare_tokens(t, l, bl);
    return c < 0 || (c == 0 && compare_tokens(t, r, br) < 0);
}

/* The most frequent adjacent pair over all words; false when none. */
static ba_status trainer_best_pair(const bpe_trainer *t, pair_table *counts, int32_t *bl,
                                   int32_t *br, bool *found, ba_error *err)
{
    pair_table_clear(counts);
    for (size_t w = 0; w < t->n_words; w++) {
        const int32_t *s = t->sym + t->word_at[w];
        for (size_t k = 0; k + 1 < t->word_len[w]; k++) {
            pair_slot *p;
            BA_CHECK(pair_table_slot(counts, s[k], s[k + 1], &p, err));
            p->a += (int32_t)t->word_count[w]; /* totals are bounded by the corpus size */
        }
    }
    int64_t best = 0;
    *found = false;
    for (size_t i = 0; i <= counts->mask; i++) {
        const pair_slot *p = &counts->slots[i];
        if (p->key == PAIR_EMPTY) continue;
        int32_t l = (int32_t)(p->key >> 32), r = (int32_t)(p->key & 0xffffffffu);
        if (!*found || pair_beats(t, p->a, l, r, best, *bl, *br)) {
            best = p->a;
            *bl = l;
            *br = r;
            *found = true;
        }
    }
    return BA_OK;
}

/* Add merge l + r (reusing the id when the string already exists) and
 * apply it to every word, left to right. */
static ba_status trainer_apply(bpe_trainer *t, int32_t l, int32_t r, ba_error *err)
{
    size_t n = t->token_len[l] + t->token_len[r];
    char *s = ba_malloc(n, "trained token", err);
    if (!s) return BA_ERR_NOMEM;
    memcpy(s, t->token[l], t->token_len[l]);
    memcpy(s + t->token_len[l], t->token[r], t->token_len[r]);
    int32_t id = str_table_find(&t->token_index, s, n);
    if (id < 0) {
        id = t->n_tokens++;
        t->token[id] = s;
        t->token_len[id] = n;
        int32_t stored;
        BA_CHECK(str_table_put(&t->token_index, s, n, id, &stored, err));
    } else {
        free(s);
    }
    t->merge[t->n_merges][0] = l;
    t->merge[t->n_merges][1] = r;
    t->n_merges++;
    for (size_t w = 0; w < t->n_words; w++) {
        int32_t *sym = t->sym + t->word_at[w];
        size_t out = 0, len = t->word_len[w];
        for (size_t k = 0; k < len; k++) {
            if (k + 1 < len && sym[k] == l && sym[k + 1] == r) {
                sym[out++] = id;
                k++;
            } else {
                sym[out++] = sym[k];
            }
        }
        t->word_len[w] = out;
    }
    return BA_OK;
}

/* A token's bytes in GPT-2's printable form (malloc'd, NUL-terminated). */
static char *token_printable(const char *bytes, size_t n, const uint32_t cp[256])
{
    char *out = malloc(2 * n + 1);
    if (!out) return NULL;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) at += utf8_put_small(cp[(unsigned char)bytes[i]], out + at);
    out[at] = '\0';
    return out;
}

static ba_status path_in(const char *dir, const char *name, char *out, size_t cap, ba_error *err)
{
    if ((size_t)snprintf(out, cap, "%s/%s", dir, name) >= cap)
        return ba_fail(err, BA_ERR_USAGE, "%s/%s: path too long", dir, name);
    return BA_OK;
}

static ba_status write_vocab_json(const bpe_trainer *t, const char *path, const uint32_t cp[256],
                                  ba_error *err)
{
    json_t *obj = json_object();
    if (!obj) return ba_fail(err, BA_ERR_NOMEM, "%s: cannot build the JSON object", path);
    ba_status rc = BA_OK;
    for (int32_t id = 0; id < t->n_tokens && rc == BA_OK; id++) {
        char *key = token_printable(t->token[id], t->token_len[id], cp);
        if (!key || json_object_set_new(obj, key, json_integer(id)) != 0)
            rc = ba_fail(err, BA_ERR_NOMEM, "%s: cannot add token %d", path, (int)id);
        free(key);
    }
    if (rc == BA_OK && json_object_set_new(obj, "<|endoftext|>", json_integer(t->n_tokens)) != 0)
        rc = ba_fail(err, BA_ERR_NOMEM, "%s: cannot add <|endoftext|>", path);
    if (rc == BA_OK && json_object_size(obj) != (size_t)t->n_tokens + 1)
        rc = ba_fail(err, BA_ERR_INTERNAL, "%s: two tokens share a string", path);
    if (rc == BA_OK && json_dump_file(obj, path, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0)
        rc = ba_fail(err, BA_ERR_IO, "%s: cannot write", path);
    json_decref(obj);
    return rc;
}

static ba_status write_merges_txt(const bpe_trainer *t, const char *path, const uint32_t cp[256],
                                  ba_error *err)
{
    FILE *f = fopen(path, "wb");
    if (!f) return ba_fail(err, BA_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    ba_status rc = BA_OK;
    fputs("#version: 0.2\n", f);
    for (int i = 0; i < t->n_merges && rc == BA_OK; i++) {
        int32_t l = t->merge[i][0], r = t->merge[i][1];
        char *ls = token_printable(t->token[l], t->token_len[l], cp);
        char *rs = token_printable(t->token[r], t->token_len[r], cp);
        if (!ls || !rs) rc = ba_fail(err, BA_ERR_NOMEM, "%s: cannot format merge %d", path, i);
        else fprintf(f, "%s %s\n", ls, rs);
        free(ls);
        free(rs);
    }
    if (fclose(f) != 0 && rc == BA_OK) rc = ba_fail(err, BA_ERR_IO, "%s: write error", path);
    return rc;
}

static ba_status ensure_directory(const char *dir, ba_error *err)
{
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return BA_OK;
        return ba_fail(err, BA_ERR_IO, "%s: exists and is not a directory", dir);
    }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return ba_fail(err, BA_ERR_IO, "%s: cannot create directory: %s", dir, strerror(errno));
    return BA_OK;
}

/* Write both files under temporary names, then rename them into place. */
static ba_status trainer_write(const bpe_trainer *t, const char *dir, ba_error *err)
{
    char vocab[BA_PATH_MAX], merges[BA_PATH_MAX], vocab_tmp[BA_PATH_MAX], merges_tmp[BA_PATH_MAX];
    BA_CHECK(path_in(dir, "vocab.json", vocab, sizeof vocab, err));
    BA_CHECK(path_in(dir, "merges.txt", merges, sizeof merges, err));
    BA_CHECK(path_in(dir, "vocab.json.tmp", vocab_tmp, sizeof vocab_tmp, err));
    BA_CHECK(path_in(dir, "merges.txt.tmp", merges_tmp, sizeof merges_tmp, err));
    uint32_t cp[256];
    uint8_t order[256];
    ba_bpe_byte_map(cp, order);
    ba_status rc = write_vocab_json(t, vocab_tmp, cp, err);
    if (rc == BA_OK) rc = write_merges_txt(t, merges_tmp, cp, err);
    if (rc == BA_OK && rename(vocab_tmp, vocab) != 0)
        rc = ba_fail(err, BA_ERR_IO, "%s: cannot rename into place: %s", vocab, strerror(errno));
    if (rc == BA_OK && rename(merges_tmp, merges) != 0)
        rc = ba_fail(err, BA_ERR_IO, "%s: cannot rename into place: %s", merges, strerror(errno));
    if (rc != BA_OK) {
        remove(vocab_tmp);
        remove(merges_tmp);
    }
    return rc;
}

ba_status ba_bpe_write_tiny_vocab(const char *dir, const char *const *corpus, size_t n_docs,
                                  int n_merges, ba_error *err)
{
    if (!dir || n_merges < 0 || (n_docs > 0 && !corpus))
        return ba_fail(err, BA_ERR_USAGE,
                       "tiny BPE vocabulary: need a directory, a corpus and n_merges >= 0");
    size_t total = 0;
    for (size_t d = 0; d < n_docs; d++) total += corpus[d] ? strlen(corpus[d]) : 0;
    if (total >= INT32_MAX / 2)
        return ba_fail(err, BA_ERR_USAGE,
                       "tiny BPE vocabulary: corpus of %zu bytes is too large for this trainer",
                       total);
    ba_status rc = BA_OK;
    pcre2_code *re = NULL;
    bpe_trainer t = {0};
    pair_table counts = {0};
    BA_TRY(compile_pretokenizer(&re, err), done);
    BA_TRY(trainer_count_words(&t, re, corpus, n_docs, err), done);
    BA_TRY(trainer_init_tokens(&t, n_merges, err), done);
    BA_TRY(pair_table_init(&counts, 1024, err), done);
    for (int i = 0; i < n_merges; i++) {
        int32_t l = 0, r = 0;
        bool found;
        BA_TRY(trainer_best_pair(&t, &counts, &l, &r, &found, err), done);
        if (!found) break; /* every word is a single token: nothing left to merge */
        BA_TRY(trainer_apply(&t, l, r, err), done);
    }
    BA_TRY(ensure_directory(dir, err), done);
    BA_TRY(trainer_write(&t, dir, err), done);
done:
    pair_table_free(&counts);
    trainer_free(&t);
    pcre2_code_free(re);
    return rc;
}
