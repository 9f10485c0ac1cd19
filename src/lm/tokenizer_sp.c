/* tokenizer_sp.c — SentencePiece BPE tokenizers (LLaMA / LLaMA-2); see
 * tokenizer_sp.h for the behaviour. Sections:
 *   the model (pieces, piece index, merge index)
 *   protobuf wire-format reader and tokenizer.model (ModelProto) loader
 *   tokenizer.json (Hugging Face) loader
 *   normaliser, splitting into symbols, merging (fast and reference), output
 *   the family's ops (encode, encode_words) */
#include "tokenizer_sp.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "brainalign/core/fs.h"
#include "brainalign/core/hash.h"

#define SP_SPACE_SYMBOL "\xE2\x96\x81" /* U+2581 LOWER ONE EIGHTH BLOCK "▁" */
#define SP_SPACE_SYMBOL_LEN 3
#define SP_REPLACEMENT_CHAR "\xEF\xBF\xBD" /* U+FFFD, stands for a byte that is not UTF-8 */
#define SP_MAX_PIECE_BYTES 65536           /* no real piece comes close */

/* ModelProto.SentencePiece.Type */
enum {
    SP_NORMAL = 1,
    SP_UNKNOWN = 2,
    SP_CONTROL = 3,
    SP_USER_DEFINED = 4,
    SP_UNUSED = 5,
    SP_BYTE = 6
};

/* TrainerSpec.ModelType */
enum { SP_MODEL_UNIGRAM = 1, SP_MODEL_BPE = 2, SP_MODEL_WORD = 3, SP_MODEL_CHAR = 4 };

/* ======================================================================
 * The model
 * ====================================================================== */

/* tokenizer.model merges the pair whose concatenation has the best piece
 * score; tokenizer.json merges the pair with the lowest merge rank. */
typedef enum { SP_MERGE_BY_SCORE, SP_MERGE_BY_RANK } sp_merge_rule;

typedef struct {
    size_t offset; /* of the NUL-terminated text in the model's pool */
    uint32_t len;
    float score;
    int type;
    bool special; /* tokenizer.json: an added token with "special": true (<s>, </s>) */
} sp_piece;

/* Open addressing, linear probing: piece text -> id (-1 = empty slot). */
typedef struct {
    int32_t *slots;
    size_t mask;
} sp_piece_index;

/* Open addressing: (left id, right id) -> merge rank and resulting id. */
typedef struct {
    uint64_t key; /* UINT64_MAX = empty slot */
    int32_t rank, id;
} sp_merge_slot;

typedef struct {
    sp_merge_slot *slots;
    size_t mask;
} sp_merge_index;

typedef struct {
    char source[BA_PATH_MAX]; /* the file it was read from, for messages */
    sp_merge_rule rule;
    int32_t n_pieces, cap_pieces;
    sp_piece *pieces;
    char *pool;
    size_t pool_len, pool_cap;
    sp_piece_index index;  /* every piece */
    sp_merge_index merges; /* SP_MERGE_BY_RANK only */
    int32_t byte_ids[256]; /* id of <0xXX>, -1 when absent */
    int32_t unk_id;        /* -1: no unknown token (unknown characters dropped) */
    bool byte_fallback;
    bool fuse_unk; /* SP_MERGE_BY_RANK: adjacent unknown characters give one <unk> */
    bool add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
    bool prefix_unless_space; /* HF Metaspace: no dummy prefix if text starts with "▁" */
    uint32_t *user_lengths; /* the distinct lengths of the USER_DEFINED pieces, longest first */
    size_t n_user_lengths;  /* 0: the model has no USER_DEFINED pieces */
} sp_model;

static const char *piece_text(const sp_model *m, int32_t id)
{
    return m->pool + m->pieces[id].offset;
}

static uint64_t hash_bytes(const char *s, size_t n)
{
    /* FNV-1a from this table's own start value (not the standard offset:
     * kept so that the table probes as before). */
    return ba_fnv1a(1469598103934665603ULL, s, n);
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33; /* murmur3 finaliser */
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* Smallest power of two >= 2 * n (at least 16), so tables stay half empty. */
static size_t table_size_for(size_t n)
{
    size_t size = 16;
    while (size < 2 * n) size *= 2;
    return size;
}

static int32_t find_piece(const sp_model *m, const char *s, size_t n)
{
    if (!m->index.slots) return -1;
    size_t i = (size_t)hash_bytes(s, n) & m->index.mask;
    for (;;) {
        int32_t id = m->index.slots[i];
        if (id < 0) return -1;
        const sp_piece *p = &m->pieces[id];
        if (p->len == n && memcmp(m->pool + p->offset, s, n) == 0) return id;
        i = (i + 1) & m->index.mask;
    }
}

/* A piece that SentencePiece's BPE may produce by merging: NORMAL or
 * USER_DEFINED (CONTROL, UNKNOWN and BYTE pieces never come from text). */
static int32_t find_mergeable_piece(const sp_model *m, const char *s, size_t n)
{
    int32_t id = find_piece(m, s, n);
    if (id < 0) return -1;
    int type = m->pieces[id].type;
    return (type == SP_NORMAL || type == SP_USER_DEFINED) ? id : -1;
}

static ba_status add_piece(sp_model *m, const char *text, size_t len, float score, int type,
                           ba_error *err)
{
    if (m->n_pieces == m->cap_pieces) {
        if (m->cap_pieces > INT32_MAX / 2)
            return ba_fail(err, BA_ERR_FORMAT, "more than %d pieces", INT32_MAX / 2);
        int32_t cap = m->cap_pieces ? 2 * m->cap_pieces : 1024;
        sp_piece *grown = realloc(m->pieces, (size_t)cap * sizeof *grown);
        if (!grown) return ba_fail(err, BA_ERR_NOMEM, "cannot grow the piece table to %d", cap);
        m->pieces = grown;
        m->cap_pieces = cap;
    }
    if (m->pool_cap - m->pool_len < len + 1) {
        size_t cap = m->pool_cap ? m->pool_cap : 65536;
        while (cap - m->pool_len < len + 1) cap *= 2;
        char *grown = realloc(m->pool, cap);
        if (!grown)
            return ba_fail(err, BA_ERR_NOMEM, "cannot grow the piece text pool to %zu", cap);
        m->pool = grown;
        m->pool_cap = cap;
    }
    sp_piece *p = &m->pieces[m->n_pieces++];
    p->offset = m->pool_len;
    p->len = (uint32_t)len;
    p->score = score;
    p->type = type;
    p->special = false;
    memcpy(m->pool + m->pool_len, text, len);
    m->pool[m->pool_len + len] = '\0';
    m->pool_len += len + 1;
    return BA_OK;
}

static ba_status build_piece_index(sp_model *m, ba_error *err)
{
    size_t size = table_size_for((size_t)m->n_pieces);
    m->index.slots = ba_malloc(size * sizeof *m->index.slots, "piece index", err);
    if (!m->index.slots) return BA_ERR_NOMEM;
    m->index.mask = size - 1;
    for (size_t i = 0; i < size; i++) m->index.slots[i] = -1;
    for (int32_t id = 0; id < m->n_pieces; id++) {
        const sp_piece *p = &m->pieces[id];
        size_t i = (size_t)hash_bytes(m->pool + p->offset, p->len) & m->index.mask;
        while (m->index.slots[i] >= 0) {
            const sp_piece *q = &m->pieces[m->index.slots[i]];
            if (q->len == p->len && memcmp(m->pool + q->offset, m->pool + p->offset, p->len) == 0)
                return ba_fail(err, BA_ERR_FORMAT, "piece %d \"%s\" repeats piece %d", id,
                               piece_text(m, id), m->index.slots[i]);
            i = (i + 1) & m->index.mask;
        }
        m->index.slots[i] = id;
    }
    return BA_OK;
}

/* "<0xXX>" (two upper-case hex digits, as SentencePiece writes them) ->
 * the byte, or -1. */
static int byte_piece_value(const char *s, size_t len)
{
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int value = 0;
    for (int k = 3; k < 5; k++) {
        char c = s[k];
        int digit = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (digit < 0) return -1;
        value = 16 * value + digit;
    }
    return value;
}

static void sp_model_free(sp_model *m)
{
    if (!m) return;
    free(m->pieces);
    free(m->pool);
    free(m->index.slots);
    free(m->merges.slots);
    free(m->user_lengths);
    free(m);
}

static ba_status sp_model_new(const char *source, sp_merge_rule rule, sp_model **out, ba_error *err)
{
    sp_model *m = ba_calloc(1, sizeof *m, "tokenizer model", err);
    if (!m) return BA_ERR_NOMEM;
    snprintf(m->source, sizeof m->source, "%s", source);
    m->rule = rule;
    m->unk_id = -1;
    for (int b = 0; b < 256; b++) m->byte_ids[b] = -1;
    *out = m;
    return BA_OK;
}

/* ======================================================================
 * Protobuf wire format. Offsets are absolute byte offsets in the file, so
 * messages can say where a corrupt file goes wrong.
 * ====================================================================== */

typedef struct {
    const uint8_t *buf; /* the whole file */
    size_t pos, end;    /* the message being read is buf[pos, end) */
} pb_reader;

enum { PB_VARINT = 0, PB_FIXED64 = 1, PB_LEN = 2, PB_FIXED32 = 5 };

static ba_status pb_varint(pb_reader *r, uint64_t *out, ba_error *err)
{
    size_t start = r->pos;
    uint64_t value = 0;
    for (int i = 0; i < 10; i++) {
        if (r->pos >= r->end)
            return ba_fail(err, BA_ERR_FORMAT,
                           "byte %zu: truncated varint (its message ends at byte %zu)", start,
                           r->end);
        uint8_t b = r->buf[r->pos++];
        if (i == 9 && b > 1) break; /* more than 64 bits */
        value |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = value;
            return BA_OK;
        }
    }
    return ba_fail(err, BA_ERR_FORMAT, "byte %zu: bad varint (longer than 64 bits)", start);
}

static ba_status pb_key(pb_reader *r, uint32_t *field, uint32_t *wire, ba_error *err)
{
    size_t start = r->pos;
    uint64_t key;
    BA_CHECK(pb_varint(r, &key, err));
    uint64_t number = key >> 3;
    *wire = (uint32_t)(key & 7);
    if (number == 0 || number > 536870911u)
        return ba_fail(err, BA_ERR_FORMAT, "byte %zu: bad field number %llu", start,
                       (unsigned long long)number);
    if (*wire != PB_VARINT && *wire != PB_FIXED64 && *wire != PB_LEN && *wire != PB_FIXED32)
        return ba_fail(err, BA_ERR_FORMAT,
                       "byte %zu: field %llu has wire type %u (groups and types 6-7 are not "
                       "protobuf as written by SentencePiece)",
                       start, (unsigned long long)number, *wire);
    *field = (uint32_t)number;
    return BA_OK;
}

/* A length-delimited field: *sub covers its bytes; r moves past them. */
static ba_status pb_length_delimited(pb_reader *r, pb_reader *sub, ba_error *err)
{
    size_t start = r->pos;
    uint64_t len;
    BA_CHECK(pb_varint(r, &len, err));
    if (len > r->end - r->pos)
        return ba_fail(err, BA_ERR_FORMAT,
                       "byte %zu: length %llu runs past the end of its message (byte %zu)", start,
                       (unsigned long long)len, r->end);
    sub->buf = r->buf;
    sub->pos = r->pos;
    sub->end = r->pos + (size_t)len;
    r->pos = sub->end;
    return BA_OK;
}

static ba_status pb_fixed32(pb_reader *r, uint32_t *out, ba_error *err)
{
    if (r->end - r->pos < 4)
        return ba_fail(err, BA_ERR_FORMAT,
                       "byte %zu: truncated 32-bit value (its message ends at byte %zu)", r->pos,
                       r->end);
    const uint8_t *p = r->buf + r->pos;
    *out = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    r->pos += 4;
    return BA_OK;
}

static ba_status pb_skip(pb_reader *r, uint32_t wire, ba_error *err)
{
    uint64_t ignored;
    pb_reader sub = {NULL, 0, 0};
    switch (wire) {
    case PB_VARINT: return pb_varint(r, &ignored, err);
    case PB_LEN: return pb_length_delimited(r, &sub, err);
    case PB_FIXED32:
    case PB_FIXED64: {
        size_t n = wire == PB_FIXED32 ? 4 : 8;
        if (r->end - r->pos < n)
            return ba_fail(err, BA_ERR_FORMAT,
                           "byte %zu: truncated %zu-byte value (its message ends at byte %zu)",
                           r->pos, n, r->end);
        r->pos += n;
        return BA_OK;
    }
    }
    return ba_fail(err, BA_ERR_INTERNAL, "byte %zu: wire type %u", r->pos, wire);
}

static ba_status pb_expect_wire(size_t at, uint32_t field, uint32_t wire, uint32_t want,
                                ba_error *err)
{
    if (wire == want) return BA_OK;
    return ba_fail(err, BA_ERR_FORMAT, "byte %zu: field %u has wire type %u, expected %u", at,
                   field, wire, want);
}

/* An int32 field: negative values arrive sign-extended to 64 bits. */
static ba_status pb_int32(pb_reader *r, int32_t *out, ba_error *err)
{
    size_t at = r->pos;
    uint64_t v;
    BA_CHECK(pb_varint(r, &v, err));
    int64_t s = (int64_t)v;
    if (s < INT32_MIN || s > INT32_MAX)
        return ba_fail(err, BA_ERR_FORMAT, "byte %zu: %lld does not fit an int32", at,
                       (long long)s);
    *out = (int32_t)s;
    return BA_OK;
}

static ba_status pb_bool(pb_reader *r, bool *out, ba_error *err)
{
    uint64_t v;
    BA_CHECK(pb_varint(r, &v, err));
    *out = v != 0;
    return BA_OK;
}

/* ======================================================================
 * tokenizer.model (SentencePiece ModelProto)
 *   ModelProto     { pieces = 1; trainer_spec = 2; normalizer_spec = 3; }
 *   SentencePiece  { string piece = 1; float score = 2; Type type = 3; }
 *   TrainerSpec    { model_type = 3; treat_whitespace_as_suffix = 24;
 *                    byte_fallback = 35; unk_id = 40; bos_id = 41; ... }
 *   NormalizerSpec { string name = 1; bytes precompiled_charsmap = 2;
 *                    add_dummy_prefix = 3; remove_extra_whitespaces = 4;
 *                    escape_whitespaces = 5; }
 * ====================================================================== */

typedef struct {
    uint64_t model_type;
    bool treat_whitespace_as_suffix, byte_fallback;
    int32_t unk_id;
} sp_trainer_spec;

typedef struct {
    char name[64];
    size_t charsmap_len;
    bool add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
} sp_normalizer_spec;

static ba_status parse_piece(sp_model *m, pb_reader *r, ba_error *err)
{
    size_t start = r->pos;
    const char *text = NULL;
    size_t len = 0;
    float score = 0.0f;
    uint64_t type = SP_NORMAL;
    while (r->pos < r->end) {
        size_t at = r->pos;
        uint32_t field = 0, wire = 0;
        BA_CHECK(pb_key(r, &field, &wire, err));
        if (field == 1) {
            BA_CHECK(pb_expect_wire(at, field, wire, PB_LEN, err));
            pb_reader s = {NULL, 0, 0};
            BA_CHECK(pb_length_delimited(r, &s, err));
            text = (const char *)r->buf + s.pos;
            len = s.end - s.pos;
        } else if (field == 2) {
            BA_CHECK(pb_expect_wire(at, field, wire, PB_FIXED32, err));
            uint32_t bits = 0;
            BA_CHECK(pb_fixed32(r, &bits, err));
            memcpy(&score, &bits, sizeof score);
        } else if (field == 3) {
            BA_CHECK(pb_expect_wire(at, field, wire, PB_VARINT, err));
            BA_CHECK(pb_varint(r, &type, err));
        } else {
            BA_CHECK(pb_skip(r, wire, err));
        }
    }
    if (!text || len == 0)
        return ba_fail(err, BA_ERR_FORMAT, "byte %zu: piece has no text (field 1)", start);
    if (len > SP_MAX_PIECE_BYTES)
        return ba_fail(err, BA_ERR_FORMAT, "byte %zu: piece of %zu bytes (at most %d expected)",
                       start, len, SP_MAX_PIECE_BYTES);
    if (type < SP_NORMAL || type > SP_BYTE)
        return ba_fail(err, BA_ERR_FORMAT, "byte %zu: piece type %llu is not one of 1..6", start,
                       (unsigned long long)type);
    if (isnan(score)) return ba_fail(err, BA_ERR_FORMAT, "byte %zu: piece score is NaN", start);
    return add_piece(m, text, len, score, (int)type, err);
}

static ba_status parse_trainer_spec(pb_reader *r, sp_trainer_spec *t, ba_error *err)
{
    while (r->pos < r->end) {
        size_t at = r->pos;
        uint32_t field = 0, wire = 0;
        BA_CHECK(pb_key(r, &field, &wire, err));
        switch (field) {
        case 3:
            BA_CHECK(pb_expect_wire(at, field, wire, PB_VARINT, err));
            BA_CHECK(pb_varint(r, &t->model_type, err));
            break;
        case 24:
            BA_CHECK(pb_expect_wire(at, field, wire, PB_VARINT, err));
            BA_CHECK(pb_bool(r, &t->treat_whitespace_as_suffix, err));
            break;
        case 35:
            BA_CHECK(pb_expect_wire(at, field, wire, PB_VARINT, err));
            BA_CHECK(pb_bool(r, &t->byte_fallback, err));
            break;
        case 40:
            BA_CHECK(pb_expect_wire(at, field, wire, PB_VARINT, err));
            BA_CHECK(pb_int32(r, &t->unk_id, err));
            break;
        default: BA_CHECK(pb_skip(r, wire, err));
        }
    }
    return BA_OK;
}

static ba_status parse_normalizer_spec(pb_reader *r, sp_normalizer_spec *n, ba_error *err)
{
    while (r->pos < r->end) {
        size_t at = r->pos;
        uint32_t field = 0, wire = 0;
        BA_CHECK(pb_key(r, &field, &wire, err));
        if (field == 1 || field == 2) {
            BA_CHECK(pb_expect_wire(at, field, wire, PB_LEN, err));
            pb_reader s = {NULL, 0, 0};
            BA_CHECK(pb_length_delimited(r, &s, err));
            size_t len = s.end - s.pos;
            if (field == 2) {
                n->charsmap_len = len;
            } else {
                if (len >= sizeof n->name) len = sizeof n->name - 1;
                memcpy(n->name, r->buf + s.pos, len);
                n->name[len] = '\0';
            }
        } else if (field >= 3 && field <= 5) {
            BA_CHECK(pb_expect_wire(at, field, wire, PB_VARINT, err));
            bool *flag = field == 3   ? &n->add_dummy_prefix
                         : field == 4 ? &n->remove_extra_whitespaces
                                      : &n->escape_whitespaces;
            BA_CHECK(pb_bool(r, flag, err));
        } else {
            BA_CHECK(pb_skip(r, wire, err));
        }
    }
    return BA_OK;
}

static ba_status parse_model_proto(sp_model *m, const uint8_t *data, size_t len,
                                   sp_trainer_spec *trainer, sp_normalizer_spec *norm,
                                   ba_error *err)
{
    pb_reader r = {data, 0, len};
    while (r.pos < r.end) {
        size_t at = r.pos;
        uint32_t field = 0, wire = 0;
        BA_CHECK(pb_key(&r, &field, &wire, err));
        if (field < 1 || field > 3) {
            BA_CHECK(pb_skip(&r, wire, err));
            continue;
        }
        BA_CHECK(pb_expect_wire(at, field, wire, PB_LEN, err));
        pb_reader sub = {NULL, 0, 0};
        BA_CHECK(pb_length_delimited(&r, &sub, err));
        ba_status rc;
        if (field == 1) {
            rc = parse_piece(m, &sub, err);
            if (rc != BA_OK) ba_context(err, "pieces[%d]", m->n_pieces);
        } else if (field == 2) {
            rc = parse_trainer_spec(&sub, trainer, err);
            if (rc != BA_OK) ba_context(err, "trainer_spec");
        } else {
            rc = parse_normalizer_spec(&sub, norm, err);
            if (rc != BA_OK) ba_context(err, "normalizer_spec");
        }
        if (rc != BA_OK) return rc;
    }
    return BA_OK;
}

static const char *model_type_name(uint64_t type)
{
    switch (type) {
    case SP_MODEL_UNIGRAM: return "UNIGRAM";
    case SP_MODEL_BPE: return "BPE";
    case SP_MODEL_WORD: return "WORD";
    case SP_MODEL_CHAR: return "CHAR";
    }
    return "unknown";
}

static int compare_lengths_descending(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x < y) - (x > y);
}

/* The distinct lengths of the USER_DEFINED pieces, longest first: the
 * splitter tries only these at each position, so its cost per position is
 * bounded by their sum (trying every length up to the longest piece made a
 * hostile model with one 64 KB piece cost O(n^3) per text). */
static ba_status collect_user_lengths(sp_model *m, ba_error *err)
{
    size_t n = 0;
    for (int32_t id = 0; id < m->n_pieces; id++) n += m->pieces[id].type == SP_USER_DEFINED;
    if (n == 0) return BA_OK;
    m->user_lengths = ba_malloc(n * sizeof *m->user_lengths, "user-defined piece lengths", err);
    if (!m->user_lengths) return BA_ERR_NOMEM;
    n = 0;
    for (int32_t id = 0; id < m->n_pieces; id++)
        if (m->pieces[id].type == SP_USER_DEFINED) m->user_lengths[n++] = m->pieces[id].len;
    qsort(m->user_lengths, n, sizeof *m->user_lengths, compare_lengths_descending);
    size_t distinct = 0;
    for (size_t k = 0; k < n; k++)
        if (distinct == 0 || m->user_lengths[distinct - 1] != m->user_lengths[k])
            m->user_lengths[distinct++] = m->user_lengths[k];
    m->n_user_lengths = distinct;
    return BA_OK;
}

/* Checks what this encoder supports and builds the lookup tables. */
static ba_status finish_model_proto(sp_model *m, const sp_trainer_spec *t,
                                    const sp_normalizer_spec *n, ba_error *err)
{
    if (t->model_type != SP_MODEL_BPE)
        return ba_fail(err, BA_ERR_FORMAT,
                       "trainer_spec.model_type is %s (%llu), expected BPE (2): only "
                       "SentencePiece BPE models (LLaMA) are supported",
                       model_type_name(t->model_type), (unsigned long long)t->model_type);
    if (t->treat_whitespace_as_suffix)
        return ba_fail(err, BA_ERR_FORMAT,
                       "trainer_spec.treat_whitespace_as_suffix is set; not supported");
    if (n->charsmap_len > 0)
        return ba_fail(err, BA_ERR_FORMAT,
                       "normalizer_spec \"%s\" has a precompiled character map (%zu bytes); only "
                       "the identity normaliser (LLaMA's) is supported",
                       n->name, n->charsmap_len);
    if (m->n_pieces == 0) return ba_fail(err, BA_ERR_FORMAT, "no pieces (field 1)");
    if (t->unk_id < 0 || t->unk_id >= m->n_pieces || m->pieces[t->unk_id].type != SP_UNKNOWN)
        return ba_fail(err, BA_ERR_FORMAT,
                       "trainer_spec.unk_id %d is not a piece of type UNKNOWN (2)", t->unk_id);
    BA_CHECK(build_piece_index(m, err));
    for (int32_t id = 0; id < m->n_pieces; id++) {
        const sp_piece *p = &m->pieces[id];
        if (p->type == SP_UNUSED)
            return ba_fail(err, BA_ERR_FORMAT,
                           "piece %d \"%s\" is of type UNUSED (5); models with unused pieces "
                           "are not supported",
                           id, piece_text(m, id));
        if (p->type == SP_UNKNOWN && id != t->unk_id)
            return ba_fail(err, BA_ERR_FORMAT, "piece %d is a second UNKNOWN piece", id);
        if (p->type == SP_BYTE) {
            int b = byte_piece_value(piece_text(m, id), p->len);
            if (b < 0)
                return ba_fail(err, BA_ERR_FORMAT,
                               "piece %d \"%s\" is of type BYTE but not of the form <0xXX>", id,
                               piece_text(m, id));
            m->byte_ids[b] = id;
        }
    }
    BA_CHECK(collect_user_lengths(m, err));
    if (t->byte_fallback)
        for (int b = 0; b < 256; b++)
            if (m->byte_ids[b] < 0)
                return ba_fail(err, BA_ERR_FORMAT,
                               "trainer_spec.byte_fallback is set but there is no piece <0x%02X>",
                               b);
    m->unk_id = t->unk_id;
    m->byte_fallback = t->byte_fallback;
    m->add_dummy_prefix = n->add_dummy_prefix;
    m->remove_extra_whitespaces = n->remove_extra_whitespaces;
    m->escape_whitespaces = n->escape_whitespaces;
    return BA_OK;
}

static ba_status load_model_proto(const char *path, sp_model **out, ba_error *err)
{
    *out = NULL;
    uint8_t *data = NULL;
    size_t len = 0;
    sp_model *m = NULL;
    ba_status rc;
    BA_TRY(ba_read_file(path, &data, &len, err), fail);
    BA_TRY(sp_model_new(path, SP_MERGE_BY_SCORE, &m, err), fail);
    if (len == 0) {
        rc = ba_fail(err, BA_ERR_FORMAT, "%s: empty file, expected a SentencePiece model", path);
        goto fail;
    }
    /* proto2 defaults (sentencepiece_model.proto) for fields not written. */
    sp_trainer_spec trainer = {.model_type = SP_MODEL_UNIGRAM, .unk_id = 0};
    sp_normalizer_spec norm = {.add_dummy_prefix = true,
                               .remove_extra_whitespaces = true,
                               .escape_whitespaces = true};
    rc = parse_model_proto(m, data, len, &trainer, &norm, err);
    if (rc == BA_OK) rc = finish_model_proto(m, &trainer, &norm, err);
    if (rc != BA_OK) {
        ba_context(err, "%s", path);
        goto fail;
    }
    free(data);
    *out = m;
    return BA_OK;
fail:
    free(data);
    sp_model_free(m);
    return rc;
}

/* ======================================================================
 * tokenizer.json (Hugging Face), LLaMA kind: model BPE with a vocab and
 * merges, normaliser Prepend("▁") + Replace(" " -> "▁") or pre-tokeniser
 * Metaspace(split = false).
 * ====================================================================== */

static void insert_merge(sp_model *m, int32_t left, int32_t right, int32_t rank, int32_t id)
{
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t i = (size_t)hash_u64(key) & m->merges.mask;
    while (m->merges.slots[i].key != UINT64_MAX && m->merges.slots[i].key != key)
        i = (i + 1) & m->merges.mask;
    /* A repeated pair takes its later rank, as Hugging Face's map does. */
    m->merges.slots[i] = (sp_merge_slot){key, rank, id};
}

static const sp_merge_slot *find_merge(const sp_model *m, int32_t left, int32_t right)
{
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t i = (size_t)hash_u64(key) & m->merges.mask;
    for (;;) {
        const sp_merge_slot *s = &m->merges.slots[i];
        if (s->key == key) return s;
        if (s->key == UINT64_MAX) return NULL;
        i = (i + 1) & m->merges.mask;
    }
}

static const char *json_string_member(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* The vocabulary and added tokens: ids must be 0..n-1, each used once. */
static ba_status load_hf_vocab(sp_model *m, const json_t *model, const json_t *added,
                               ba_error *err)
{
    const json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab) || json_object_size(vocab) == 0)
        return ba_fail(err, BA_ERR_FORMAT, "model.vocab: expected a non-empty object");
    size_t n_added = json_is_array(added) ? json_array_size(added) : 0;
    size_t limit = json_object_size(vocab) + n_added;
    if (limit > (size_t)INT32_MAX / 2)
        return ba_fail(err, BA_ERR_FORMAT, "model.vocab: %zu entries is too many", limit);
    const char **names = ba_calloc(limit, sizeof *names, "vocabulary by id", err);
    if (!names) return BA_ERR_NOMEM;
    ba_status rc = BA_OK;
    size_t n = 0;
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)vocab, key, value) {
        json_int_t id = json_is_integer(value) ? json_integer_value(value) : -1;
        if (id < 0 || (size_t)id >= limit || names[id]) {
            rc = ba_fail(err, BA_ERR_FORMAT,
                         "model.vocab[\"%s\"]: id is not a new integer in 0..%zu", key, limit - 1);
            goto done;
        }
        names[id] = key;
        if ((size_t)id + 1 > n) n = (size_t)id + 1;
    }
    for (size_t k = 0; k < n_added; k++) {
        const json_t *tok = json_array_get(added, k);
        const char *content = json_string_member(tok, "content");
        json_t *jid = json_object_get(tok, "id");
        json_int_t id = json_is_integer(jid) ? json_integer_value(jid) : -1;
        if (!content || id < 0 || (size_t)id >= limit ||
            (names[id] && strcmp(names[id], content) != 0)) {
            rc = ba_fail(err, BA_ERR_FORMAT,
                         "added_tokens[%zu]: expected {\"id\": a free id or that of the same "
                         "vocab entry, \"content\": ...}",
                         k);
            goto done;
        }
        names[id] = content;
        if ((size_t)id + 1 > n) n = (size_t)id + 1;
    }
    for (size_t id = 0; id < n; id++) {
        if (!names[id]) {
            rc = ba_fail(err, BA_ERR_FORMAT, "model.vocab: no token has id %zu (ids must be "
                                             "contiguous)", id);
            goto done;
        }
        size_t len = strlen(names[id]);
        if (len == 0 || len > SP_MAX_PIECE_BYTES) {
            rc = ba_fail(err, BA_ERR_FORMAT, "model.vocab: token %zu is empty or too long", id);
            goto done;
        }
        int b = byte_piece_value(names[id], len);
        BA_TRY(add_piece(m, names[id], len, 0.0f, b >= 0 ? SP_BYTE : SP_NORMAL, err), done);
        if (b >= 0) m->byte_ids[b] = (int32_t)id;
    }
    /* Special added tokens are skipped by decode (skip_special_tokens). */
    for (size_t k = 0; k < n_added; k++) {
        const json_t *tok = json_array_get(added, k);
        if (json_is_true(json_object_get(tok, "special")))
            m->pieces[json_integer_value(json_object_get(tok, "id"))].special = true;
    }
    rc = build_piece_index(m, err);
done:
    free(names);
    return rc;
}

/* "a b" or ["a", "b"] -> the two halves. */
static bool split_merge_entry(const json_t *entry, char *buf, size_t cap, const char **a,
                              const char **b)
{
    if (json_is_array(entry) && json_array_size(entry) == 2) {
        *a = json_string_value(json_array_get(entry, 0));
        *b = json_string_value(json_array_get(entry, 1));
        return *a && *b;
    }
    const char *s = json_string_value(entry);
    if (!s || strlen(s) >= cap) return false;
    const char *space = strchr(s, ' ');
    if (!space || strchr(space + 1, ' ')) return false;
    memcpy(buf, s, strlen(s) + 1);
    buf[space - s] = '\0';
    *a = buf;
    *b = buf + (space - s) + 1;
    return true;
}

static ba_status load_hf_merges(sp_model *m, const json_t *model, ba_error *err)
{
    const json_t *merges = json_object_get(model, "merges");
    if (!json_is_array(merges))
        return ba_fail(err, BA_ERR_FORMAT, "model.merges: expected an array");
    size_t n = json_array_size(merges);
    if (n > (size_t)INT32_MAX / 2)
        return ba_fail(err, BA_ERR_FORMAT, "model.merges: %zu merges is too many", n);
    size_t size = table_size_for(n);
    m->merges.slots = ba_malloc(size * sizeof *m->merges.slots, "merge index", err);
    if (!m->merges.slots) return BA_ERR_NOMEM;
    m->merges.mask = size - 1;
    for (size_t i = 0; i < size; i++) m->merges.slots[i].key = UINT64_MAX;
    /* split: "left\0right" of one merge; joined: left + right */
    const size_t cap = 2 * SP_MAX_PIECE_BYTES + 2;
    char *split = ba_malloc(2 * cap, "merge text", err);
    if (!split) return BA_ERR_NOMEM;
    char *joined = split + cap;
    ba_status rc = BA_OK;
    for (size_t rank = 0; rank < n && rc == BA_OK; rank++) {
        const char *a, *b;
        if (!split_merge_entry(json_array_get(merges, rank), split, cap, &a, &b)) {
            rc = ba_fail(err, BA_ERR_FORMAT, "model.merges[%zu]: expected \"left right\" or "
                                             "[\"left\", \"right\"]", rank);
            break;
        }
        size_t la = strlen(a), lb = strlen(b);
        int32_t left = find_piece(m, a, la), right = find_piece(m, b, lb);
        int32_t id = -1;
        if (la + lb < cap) {
            memcpy(joined, a, la);
            memcpy(joined + la, b, lb);
            id = find_piece(m, joined, la + lb);
        }
        if (left < 0 || right < 0 || id < 0)
            rc = ba_fail(err, BA_ERR_FORMAT,
                         "model.merges[%zu]: \"%.100s\" + \"%.100s\" or their concatenation is "
                         "not in model.vocab", rank, a, b);
        else
            insert_merge(m, left, right, (int32_t)rank, id);
    }
    free(split);
    return rc;
}

/* model.{type, dropout, continuing_subword_prefix, ...}: only what LLaMA uses. */
static ba_status check_hf_model_options(sp_model *m, const json_t *model, ba_error *err)
{
    const char *type = json_string_member(model, "type");
    if (!type || strcmp(type, "BPE") != 0)
        return ba_fail(err, BA_ERR_FORMAT, "model.type is \"%s\", expected \"BPE\"",
                       type ? type : "(missing)");
    const json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout) && json_number_value(dropout) != 0.0)
        return ba_fail(err, BA_ERR_FORMAT, "model.dropout is set; BPE dropout is not supported");
    const char *affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int k = 0; k < 2; k++) {
        const char *s = json_string_member(model, affixes[k]);
        if (s && *s)
            return ba_fail(err, BA_ERR_FORMAT, "model.%s is \"%s\"; not supported", affixes[k], s);
    }
    if (json_is_true(json_object_get(model, "ignore_merges")))
        return ba_fail(err, BA_ERR_FORMAT, "model.ignore_merges is true; not supported");
    m->byte_fallback = json_is_true(json_object_get(model, "byte_fallback"));
    m->fuse_unk = json_is_true(json_object_get(model, "fuse_unk"));
    const char *unk = json_string_member(model, "unk_token");
    if (unk) {
        m->unk_id = find_piece(m, unk, strlen(unk));
        if (m->unk_id < 0)
            return ba_fail(err, BA_ERR_FORMAT, "model.unk_token \"%s\" is not in model.vocab",
                           unk);
        m->pieces[m->unk_id].type = SP_UNKNOWN;
    }
    return BA_OK;
}

static ba_status read_hf_normalizer_step(sp_model *m, const json_t *step, ba_error *err)
{
    const char *type = json_string_member(step, "type");
    if (type && strcmp(type, "Prepend") == 0) {
        const char *prepend = json_string_member(step, "prepend");
        if (prepend && strcmp(prepend, SP_SPACE_SYMBOL) == 0) {
            m->add_dummy_prefix = true;
            return BA_OK;
        }
    } else if (type && strcmp(type, "Replace") == 0) {
        const char *pattern = json_string_member(json_object_get(step, "pattern"), "String");
        const char *content = json_string_member(step, "content");
        if (pattern && content && strcmp(pattern, " ") == 0 &&
            strcmp(content, SP_SPACE_SYMBOL) == 0) {
            m->escape_whitespaces = true;
            return BA_OK;
        }
    }
    char *dump = json_dumps(step, JSON_COMPACT);
    ba_fail(err, BA_ERR_FORMAT,
            "normalizer %.200s is not supported (LLaMA's are Prepend \"\xE2\x96\x81\" and "
            "Replace \" \" -> \"\xE2\x96\x81\")",
            dump ? dump : "?");
    free(dump);
    return BA_ERR_FORMAT;
}

static ba_status read_hf_normalizer(sp_model *m, const json_t *root, ba_error *err)
{
    const json_t *norm = json_object_get(root, "normalizer");
    if (!norm || json_is_null(norm)) return BA_OK;
    const char *type = json_string_member(norm, "type");
    if (type && strcmp(type, "Sequence") == 0) {
        const json_t *steps = json_object_get(norm, "normalizers");
        size_t k;
        json_t *step;
        json_array_foreach(steps, k, step) BA_CHECK(read_hf_normalizer_step(m, step, err));
        return BA_OK;
    }
    return read_hf_normalizer_step(m, norm, err);
}

static ba_status read_hf_pre_tokenizer(sp_model *m, const json_t *root, ba_error *err)
{
    const json_t *pre = json_object_get(root, "pre_tokenizer");
    if (!pre || json_is_null(pre)) return BA_OK;
    const char *type = json_string_member(pre, "type");
    if (type && strcmp(type, "ByteLevel") == 0)
        return ba_fail(err, BA_ERR_FORMAT,
                       "pre_tokenizer is ByteLevel: a GPT-2 kind tokenizer, not SentencePiece");
    const char *replacement = json_string_member(pre, "replacement");
    const char *scheme = json_string_member(pre, "prepend_scheme");
    if (!type || strcmp(type, "Metaspace") != 0 || !replacement ||
        strcmp(replacement, SP_SPACE_SYMBOL) != 0 || !json_is_false(json_object_get(pre, "split")))
        return ba_fail(err, BA_ERR_FORMAT,
                       "pre_tokenizer: only Metaspace with replacement \"\xE2\x96\x81\" and "
                       "split false is supported");
    if (m->add_dummy_prefix || m->escape_whitespaces)
        return ba_fail(err, BA_ERR_FORMAT,
                       "both a Prepend/Replace normalizer and a Metaspace pre_tokenizer");
    bool prepend = scheme ? strcmp(scheme, "never") != 0
                          : json_is_true(json_object_get(pre, "add_prefix_space"));
    m->escape_whitespaces = true;
    m->add_dummy_prefix = prepend;
    m->prefix_unless_space = prepend;
    return BA_OK;
}

static ba_status load_hf_json(const char *path, sp_model **out, ba_error *err)
{
    *out = NULL;
    json_error_t jerr;
    BA_CHECK(ba_require_regular(path, err)); /* a FIFO would block json_load_file */
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        return ba_fail(err, BA_ERR_FORMAT, "%s: line %d column %d: %s", path, jerr.line,
                       jerr.column, jerr.text);
    sp_model *m = NULL;
    ba_status rc;
    BA_TRY(sp_model_new(path, SP_MERGE_BY_RANK, &m, err), fail);
    const json_t *model = json_object_get(root, "model");
    if (!json_is_object(model)) {
        rc = ba_fail(err, BA_ERR_FORMAT, "model: expected an object");
        goto fail;
    }
    BA_TRY(load_hf_vocab(m, model, json_object_get(root, "added_tokens"), err), fail);
    BA_TRY(check_hf_model_options(m, model, err), fail);
    BA_TRY(load_hf_merges(m, model, err), fail);
    BA_TRY(read_hf_normalizer(m, root, err), fail);
    BA_TRY(read_hf_pre_tokenizer(m, root, err), fail);
    json_decref(root);
    *out = m;
    return BA_OK;
fail:
    if (rc != BA_ERR_NOMEM) ba_context(err, "%s", path);
    json_decref(root);
    sp_model_free(m);
    return rc;
}

/* ======================================================================
 * Normaliser
 * ====================================================================== */

typedef struct {
    char *text; /* NUL-terminated */
    size_t len;
    size_t *src; /* optional: byte of the input each output byte comes from */
} sp_text;

static void sp_text_free(sp_text *t)
{
    free(t->text);
    free(t->src);
    memset(t, 0, sizeof *t);
}

/* Length of the valid UTF-8 sequence at s (no overlongs, surrogates or
 * code points above U+10FFFF), or 0 when s does not start one. */
static size_t utf8_valid_len(const unsigned char *s, size_t n)
{
    bool valid;
    size_t k = ba_utf8_maximal_subpart(s, n, &valid);
    return valid ? k : 0;
}

static void put_bytes(sp_text *t, const char *bytes, size_t n, size_t src)
{
    memcpy(t->text + t->len, bytes, n);
    if (t->src)
        for (size_t k = 0; k < n; k++) t->src[t->len + k] = src;
    t->len += n;
}

static void put_space(const sp_model *m, sp_text *t, size_t src)
{
    if (m->escape_whitespaces)
        put_bytes(t, SP_SPACE_SYMBOL, SP_SPACE_SYMBOL_LEN, src);
    else
        put_bytes(t, " ", 1, src);
}

/* SentencePiece's Normalizer::Normalize with the identity character map. */
static ba_status sp_normalize(const sp_model *m, const char *in, size_t n, bool want_src,
                              sp_text *out, ba_error *err)
{
    memset(out, 0, sizeof *out);
    if (n > (SIZE_MAX / sizeof(size_t) - 8) / 3)
        return ba_fail(err, BA_ERR_VALUE, "text of %zu bytes is too long to encode", n);
    size_t cap = 3 * n + SP_SPACE_SYMBOL_LEN; /* every byte grows to at most 3 */
    out->text = ba_malloc(cap + 1, "normalised text", err);
    if (!out->text) return BA_ERR_NOMEM;
    if (want_src) {
        out->src = ba_malloc(cap * sizeof *out->src, "normalised text offsets", err);
        if (!out->src) {
            sp_text_free(out);
            return BA_ERR_NOMEM;
        }
    }
    const unsigned char *s = (const unsigned char *)in;
    size_t i = 0;
    if (m->remove_extra_whitespaces)
        while (i < n && s[i] == ' ') i++;
    if (i < n) {
        bool starts_with_space =
            s[i] == ' ' || (n - i >= SP_SPACE_SYMBOL_LEN &&
                            memcmp(s + i, SP_SPACE_SYMBOL, SP_SPACE_SYMBOL_LEN) == 0);
        if (m->add_dummy_prefix && !(m->prefix_unless_space && starts_with_space))
            put_space(m, out, i);
    }
    bool prev_space = m->remove_extra_whitespaces;
    while (i < n) {
        size_t len = utf8_valid_len(s + i, n - i);
        if (len == 1 && s[i] == ' ') {
            if (!prev_space) put_space(m, out, i);
            prev_space = m->remove_extra_whitespaces;
        } else {
            if (len == 0) {
                put_bytes(out, SP_REPLACEMENT_CHAR, 3, i);
                len = 1;
            } else {
                put_bytes(out, in + i, len, i);
            }
            prev_space = false;
        }
        i += len;
    }
    if (m->remove_extra_whitespaces) {
        const char *space = m->escape_whitespaces ? SP_SPACE_SYMBOL : " ";
        size_t space_len = strlen(space);
        while (out->len >= space_len &&
               memcmp(out->text + out->len - space_len, space, space_len) == 0)
            out->len -= space_len;
    }
    out->text[out->len] = '\0';
    return BA_OK;
}

/* ======================================================================
 * Symbols and merging
 * ====================================================================== */

typedef struct {
    size_t start, end; /* bytes of the normalised text it covers */
    int32_t id;        /* piece id, -1 if not a piece (yet) */
    int32_t prev, next;
    bool dead;    /* merged into its left neighbour */
    bool frozen;  /* a USER_DEFINED piece: never merged further */
    bool unknown; /* SP_MERGE_BY_RANK: an unknown character mapped to <unk> */
} sp_symbol;

typedef struct {
    sp_symbol *items;
    int32_t n;
} sp_symbols;

static void push_symbol(sp_symbols *syms, size_t start, size_t end, int32_t id, bool frozen,
                        bool unknown)
{
    sp_symbol *s = &syms->items[syms->n];
    *s = (sp_symbol){start, end, id, syms->n - 1, -1, false, frozen, unknown};
    if (syms->n > 0) syms->items[syms->n - 1].next = syms->n;
    syms->n++;
}

/* SentencePiece: one symbol per code point, except that the longest
 * USER_DEFINED piece starting at a position is one frozen symbol. */
static void split_by_score_rule(const sp_model *m, const sp_text *t, sp_symbols *syms)
{
    size_t pos = 0;
    while (pos < t->len) {
        size_t len = 0;
        int32_t id = -1;
        bool frozen = false;
        for (size_t i = 0; i < m->n_user_lengths && !frozen; i++) {
            size_t k = m->user_lengths[i];
            if (k > t->len - pos) continue;
            int32_t u = find_piece(m, t->text + pos, k);
            if (u >= 0 && m->pieces[u].type == SP_USER_DEFINED) len = k, id = u, frozen = true;
        }
        if (!frozen) {
            len = utf8_valid_len((const unsigned char *)t->text + pos, t->len - pos);
            if (len == 0) len = 1; /* cannot happen: normalised text is UTF-8 */
            id = find_mergeable_piece(m, t->text + pos, len);
        }
        push_symbol(syms, pos, pos + len, id, frozen, false);
        pos += len;
    }
}

/* Hugging Face BPE: a character in the vocabulary is its token; otherwise
 * its bytes' <0xXX> tokens (byte_fallback), else <unk> (adjacent ones fused
 * when fuse_unk), else it is dropped. */
static void split_by_rank_rule(const sp_model *m, const sp_text *t, sp_symbols *syms)
{
    size_t pos = 0;
    while (pos < t->len) {
        size_t len = utf8_valid_len((const unsigned char *)t->text + pos, t->len - pos);
        if (len == 0) len = 1;
        int32_t id = find_piece(m, t->text + pos, len);
        bool all_bytes = m->byte_fallback;
        for (size_t k = 0; k < len && all_bytes; k++)
            all_bytes = m->byte_ids[(unsigned char)t->text[pos + k]] >= 0;
        if (id >= 0) {
            push_symbol(syms, pos, pos + len, id, false, false);
        } else if (all_bytes) {
            for (size_t k = 0; k < len; k++)
                push_symbol(syms, pos + k, pos + k + 1,
                            m->byte_ids[(unsigned char)t->text[pos + k]], false, false);
        } else if (m->unk_id >= 0) {
            sp_symbol *last = syms->n > 0 ? &syms->items[syms->n - 1] : NULL;
            if (m->fuse_unk && last && last->unknown && last->end == pos)
                last->end = pos + len;
            else
                push_symbol(syms, pos, pos + len, m->unk_id, false, true);
        }
        pos += len;
    }
}

static ba_status split_symbols(const sp_model *m, const sp_text *t, sp_symbols *syms,
                               ba_error *err)
{
    syms->n = 0;
    if (t->len > (size_t)INT32_MAX - 1)
        return ba_fail(err, BA_ERR_VALUE, "text of %zu bytes is too long to encode", t->len);
    /* At most one symbol per byte. */
    syms->items = ba_malloc((t->len + 1) * sizeof *syms->items, "BPE symbols", err);
    if (!syms->items) return BA_ERR_NOMEM;
    if (m->rule == SP_MERGE_BY_SCORE)
        split_by_score_rule(m, t, syms);
    else
        split_by_rank_rule(m, t, syms);
    return BA_OK;
}

/* Can l and its right neighbour r merge? If so: the merge's priority
 * (higher first) and the merged piece's id. */
static bool pair_priority(const sp_model *m, const char *text, const sp_symbol *l,
                          const sp_symbol *r, double *priority, int32_t *id)
{
    if (m->rule == SP_MERGE_BY_SCORE) {
        if (l->frozen || r->frozen) return false;
        int32_t p = find_mergeable_piece(m, text + l->start, r->end - l->start);
        if (p < 0) return false;
        *priority = m->pieces[p].score;
        *id = p;
        return true;
    }
    if (l->id < 0 || r->id < 0) return false;
    const sp_merge_slot *s = find_merge(m, l->id, r->id);
    if (!s) return false;
    *priority = -(double)s->rank;
    *id = s->id;
    return true;
}

static void merge_symbols(sp_symbol *sym, int32_t left, int32_t id)
{
    sp_symbol *l = &sym[left];
    sp_symbol *r = &sym[l->next];
    l->end = r->end;
    l->id = id;
    l->next = r->next;
    if (r->next >= 0) sym[r->next].prev = left;
    r->dead = true;
}

/* A candidate merge in the priority queue. It is stale once either symbol
 * changed, which shows as a different combined size (symbols only grow). */
typedef struct {
    double priority;
    int32_t left, right, id;
    size_t size;
} sp_candidate;

typedef struct {
    sp_candidate *items;
    size_t n;
} sp_heap;

static bool candidate_before(const sp_candidate *a, const sp_candidate *b)
{
    return a->priority > b->priority || (a->priority == b->priority && a->left < b->left);
}

static void heap_push(sp_heap *h, sp_candidate c)
{
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!candidate_before(&c, &h->items[parent])) break;
        h->items[i] = h->items[parent];
        i = parent;
    }
    h->items[i] = c;
}

static sp_candidate heap_pop(sp_heap *h)
{
    sp_candidate top = h->items[0];
    sp_candidate last = h->items[--h->n];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->n) break;
        if (child + 1 < h->n && candidate_before(&h->items[child + 1], &h->items[child])) child++;
        if (!candidate_before(&h->items[child], &last)) break;
        h->items[i] = h->items[child];
        i = child;
    }
    if (h->n > 0) h->items[i] = last;
    return top;
}

static void push_candidate(const sp_model *m, const char *text, const sp_symbol *sym,
                           sp_heap *h, int32_t left)
{
    if (left < 0 || sym[left].next < 0) return;
    const sp_symbol *l = &sym[left], *r = &sym[l->next];
    sp_candidate c = {0.0, left, l->next, -1, (l->end - l->start) + (r->end - r->start)};
    if (pair_priority(m, text, l, r, &c.priority, &c.id)) heap_push(h, c);
}

/* The fast merge loop, O(n log n): a priority queue of adjacent pairs. */
static ba_status merge_with_queue(const sp_model *m, const sp_text *t, sp_symbols *syms,
                                  ba_error *err)
{
    if (syms->n < 2) return BA_OK;
    sp_symbol *sym = syms->items;
    /* n - 1 initial pairs, then at most two new ones per merge (< n merges). */
    sp_heap h = {ba_calloc(3 * (size_t)syms->n, sizeof *h.items, "BPE merge queue", err), 0};
    if (!h.items) return BA_ERR_NOMEM;
    for (int32_t i = 0; i + 1 < syms->n; i++) push_candidate(m, t->text, sym, &h, i);
    while (h.n > 0) {
        sp_candidate c = heap_pop(&h);
        const sp_symbol *l = &sym[c.left], *r = &sym[c.right];
        if (l->dead || r->dead || l->next != c.right ||
            (l->end - l->start) + (r->end - r->start) != c.size)
            continue;
        merge_symbols(sym, c.left, c.id);
        push_candidate(m, t->text, sym, &h, sym[c.left].prev);
        push_candidate(m, t->text, sym, &h, c.left);
    }
    free(h.items);
    return BA_OK;
}

/* The reference merge loop, O(n^2): find the best pair, merge it, repeat. */
static void merge_by_scanning(const sp_model *m, const sp_text *t, sp_symbols *syms)
{
    sp_symbol *sym = syms->items;
    for (;;) {
        int32_t best = -1, best_id = -1;
        double best_priority = 0.0;
        for (int32_t i = 0; syms->n > 0 && sym[i].next >= 0; i = sym[i].next) {
            double priority;
            int32_t id;
            if (pair_priority(m, t->text, &sym[i], &sym[sym[i].next], &priority, &id) &&
                (best < 0 || priority > best_priority)) {
                best = i;
                best_id = id;
                best_priority = priority;
            }
        }
        if (best < 0) return;
        merge_symbols(sym, best, best_id);
    }
}

/* ======================================================================
 * Output: ids with the normalised bytes each covers
 * ====================================================================== */

typedef struct {
    int32_t id;
    size_t start, end;
} sp_token;

typedef struct {
    sp_token *items;
    size_t n;
} sp_tokens;

static void put_token(sp_tokens *out, int32_t id, size_t start, size_t end)
{
    out->items[out->n++] = (sp_token){id, start, end};
}

/* Symbols left after merging -> tokens. A symbol that is no piece becomes
 * its bytes' <0xXX> tokens (byte_fallback) or <unk>; consecutive <unk>s
 * fuse into one, as SentencePiece does. */
static ba_status emit_tokens(const sp_model *m, const sp_text *t, const sp_symbols *syms,
                             sp_tokens *out, ba_error *err)
{
    out->n = 0;
    /* Every token covers at least one byte. */
    out->items = ba_malloc((t->len + 1) * sizeof *out->items, "tokens", err);
    if (!out->items) return BA_ERR_NOMEM;
    bool prev_unk = false;
    for (int32_t i = syms->n > 0 ? 0 : -1; i >= 0; i = syms->items[i].next) {
        const sp_symbol *s = &syms->items[i];
        bool unk = s->id < 0;
        if (!unk) {
            put_token(out, s->id, s->start, s->end);
        } else if (m->byte_fallback) {
            for (size_t b = s->start; b < s->end; b++)
                put_token(out, m->byte_ids[(unsigned char)t->text[b]], b, b + 1);
        } else if (prev_unk) {
            out->items[out->n - 1].end = s->end;
        } else {
            put_token(out, m->unk_id, s->start, s->end);
        }
        prev_unk = unk;
    }
    return BA_OK;
}

static ba_status encode_to_tokens(const sp_model *m, const char *text, size_t len,
                                  bool want_src, bool reference, sp_text *norm, sp_tokens *out,
                                  ba_error *err)
{
    memset(out, 0, sizeof *out);
    sp_symbols syms = {NULL, 0};
    ba_status rc;
    BA_TRY(sp_normalize(m, text, len, want_src, norm, err), done);
    BA_TRY(split_symbols(m, norm, &syms, err), done);
    if (reference)
        merge_by_scanning(m, norm, &syms);
    else
        BA_TRY(merge_with_queue(m, norm, &syms, err), done);
    rc = emit_tokens(m, norm, &syms, out, err);
done:
    free(syms.items);
    return rc;
}

static ba_status tokens_to_ids(const sp_tokens *toks, int32_t **ids, size_t *n_ids,
                               ba_error *err)
{
    int32_t *out = ba_malloc(toks->n * sizeof *out, "token ids", err);
    if (!out) return BA_ERR_NOMEM;
    for (size_t k = 0; k < toks->n; k++) out[k] = toks->items[k].id;
    *ids = out;
    *n_ids = toks->n;
    return BA_OK;
}

static ba_status encode_text(const sp_model *m, const char *text, size_t len, bool reference,
                             int32_t **ids, size_t *n_ids, ba_error *err)
{
    *ids = NULL;
    *n_ids = 0;
    if (!text && len > 0) return ba_fail(err, BA_ERR_USAGE, "%s: encode: NULL text", m->source);
    sp_text norm;
    sp_tokens toks;
    ba_status rc = encode_to_tokens(m, text ? text : "", len, false, reference, &norm, &toks, err);
    if (rc == BA_OK) rc = tokens_to_ids(&toks, ids, n_ids, err);
    sp_text_free(&norm);
    free(toks.items);
    return rc;
}

/* ======================================================================
 * The family's ops
 * ====================================================================== */

static ba_status sp_encode(const void *impl, const char *text, size_t len, int32_t **ids,
                           size_t *n_ids, ba_error *err)
{
    return encode_text(impl, text, len, false, ids, n_ids, err);
}

/* " ".join(words), and for each of its bytes the word it belongs to (the
 * space before a word belongs to that word). */
static ba_status join_words(char *const *words, size_t n_words, char **joined, size_t *len,
                            size_t **owner, ba_error *err)
{
    size_t total = n_words > 0 ? n_words - 1 : 0;
    for (size_t w = 0; w < n_words; w++) {
        if (!words[w]) return ba_fail(err, BA_ERR_USAGE, "encode_words: word %zu is NULL", w);
        size_t n = strlen(words[w]);
        if (n > SIZE_MAX / 16 - total)
            return ba_fail(err, BA_ERR_VALUE, "encode_words: the words are too long");
        total += n;
    }
    *joined = ba_malloc(total + 1, "joined words", err);
    *owner = *joined ? ba_malloc(total * sizeof **owner, "word of each byte", err) : NULL;
    if (!*owner) {
        free(*joined);
        *joined = NULL;
        return BA_ERR_NOMEM;
    }
    size_t p = 0;
    for (size_t w = 0; w < n_words; w++) {
        if (w > 0) {
            (*joined)[p] = ' ';
            (*owner)[p++] = w;
        }
        size_t n = strlen(words[w]);
        memcpy(*joined + p, words[w], n);
        for (size_t k = 0; k < n; k++) (*owner)[p + k] = w;
        p += n;
    }
    (*joined)[p] = '\0';
    *len = p;
    return BA_OK;
}

/* word_end[] from the words owning each token's bytes. */
static ba_status assign_tokens_to_words(const sp_model *m, char *const *words, size_t n_words,
                                        const sp_text *norm, const size_t *owner,
                                        const sp_tokens *toks, size_t *word_end, ba_error *err)
{
    size_t next_word = 0; /* the first word that has no token yet */
    for (size_t k = 0; k < toks->n; k++) {
        const sp_token *t = &toks->items[k];
        size_t w = owner[norm->src[t->start]];
        for (size_t b = t->start + 1; b < t->end; b++) {
            size_t v = owner[norm->src[b]];
            if (v != w)
                return ba_fail(err, BA_ERR_VALUE,
                               "%s: token %zu (id %d \"%s\") covers both word %zu \"%.40s\" and "
                               "word %zu \"%.40s\"",
                               m->source, k, t->id, piece_text(m, t->id), w, words[w], v,
                               words[v]);
        }
        if (w + 1 < next_word)
            return ba_fail(err, BA_ERR_INTERNAL, "%s: token %zu goes back to word %zu",
                           m->source, k, w);
        if (w > next_word)
            return ba_fail(err, BA_ERR_VALUE, "%s: word %zu \"%.40s\" has no token of its own",
                           m->source, next_word, words[next_word]);
        if (w == next_word) next_word++;
        word_end[w] = k + 1;
    }
    if (next_word < n_words)
        return ba_fail(err, BA_ERR_VALUE, "%s: word %zu \"%.40s\" has no token of its own",
                       m->source, next_word, words[next_word]);
    return BA_OK;
}

static ba_status sp_encode_words(const void *impl, char *const *words, size_t n_words,
                                 int32_t **ids, size_t *n_ids, size_t *word_end, ba_error *err)
{
    const sp_model *m = impl;
    *ids = NULL;
    *n_ids = 0;
    char *joined = NULL;
    size_t *owner = NULL, len = 0;
    sp_text norm = {NULL, 0, NULL};
    sp_tokens toks = {NULL, 0};
    ba_status rc;
    BA_TRY(join_words(words, n_words, &joined, &len, &owner, err), done);
    BA_TRY(encode_to_tokens(m, joined, len, true, false, &norm, &toks, err), done);
    BA_TRY(assign_tokens_to_words(m, words, n_words, &norm, owner, &toks, word_end, err), done);
    rc = tokens_to_ids(&toks, ids, n_ids, err);
done:
    free(joined);
    free(owner);
    sp_text_free(&norm);
    free(toks.items);
    return rc;
}

static int32_t sp_vocab_size(const void *impl)
{
    return ((const sp_model *)impl)->n_pieces;
}

static void sp_destroy(void *impl)
{
    sp_model_free(impl);
}

/* ======================================================================
 * Decoding (see ba_tokenizer_decode in tokenizer.h for the rules)
 * ====================================================================== */

/* A piece that decodes to nothing: control (<s>, </s>), unknown (<unk>)
 * and tokenizer.json's special added tokens (skip_special_tokens=True). */
static bool sp_piece_skipped(const sp_piece *p)
{
    return p->type == SP_CONTROL || p->type == SP_UNKNOWN || p->special;
}

/* Append bytes[0, n) to out + *at; unless raw, every byte that does not
 * start a complete valid UTF-8 character becomes U+FFFD (SentencePiece's
 * rule: one per byte). out has room for 3 * n more bytes. */
static void put_utf8(char *out, size_t *at, const unsigned char *bytes, size_t n, bool raw)
{
    if (raw) {
        memcpy(out + *at, bytes, n);
        *at += n;
        return;
    }
    for (size_t i = 0; i < n;) {
        size_t k = utf8_valid_len(bytes + i, n - i);
        if (k > 0) {
            memcpy(out + *at, bytes + i, k);
            *at += k;
            i += k;
        } else {
            memcpy(out + *at, SP_REPLACEMENT_CHAR, 3);
            *at += 3;
            i++;
        }
    }
}

static ba_status sp_decode(const void *impl, const int32_t *ids, size_t n_ids, bool raw,
                           char **text, size_t *len, ba_error *err)
{
    const sp_model *m = impl;
    *text = NULL;
    *len = 0;
    size_t cap = 0; /* 3 bytes out per byte in at most */
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= m->n_pieces)
            return ba_fail(err, BA_ERR_VALUE, "%s: decode: token %zu has id %d, outside [0, %d)",
                           m->source, i, (int)ids[i], (int)m->n_pieces);
        size_t n = m->pieces[ids[i]].len;
        if (cap > SIZE_MAX / 4 - 3 * (size_t)n)
            return ba_fail(err, BA_ERR_VALUE, "%s: decode: %zu ids make too long a text",
                           m->source, n_ids);
        cap += 3 * (size_t)n;
    }
    char *out = ba_malloc(cap + 1, "decoded text", err);
    /* run[n_run]: the bytes of the current run of byte pieces */
    unsigned char *run = out ? ba_malloc(n_ids + 1, "decoded byte pieces", err) : NULL;
    if (!run) {
        free(out);
        return BA_ERR_NOMEM;
    }
    bool strip_first = m->add_dummy_prefix || m->remove_extra_whitespaces;
    bool first = true; /* no piece shown yet */
    size_t at = 0, n_run = 0;
    for (size_t i = 0; i < n_ids; i++) {
        const sp_piece *p = &m->pieces[ids[i]];
        if (sp_piece_skipped(p)) continue;
        const char *s = piece_text(m, ids[i]);
        int byte = p->type == SP_BYTE ? byte_piece_value(s, p->len) : -1;
        if (byte >= 0) {
            run[n_run++] = (unsigned char)byte;
            first = false;
            continue;
        }
        put_utf8(out, &at, run, n_run, raw);
        n_run = 0;
        size_t n = p->len;
        if (first && strip_first && n >= SP_SPACE_SYMBOL_LEN &&
            memcmp(s, SP_SPACE_SYMBOL, SP_SPACE_SYMBOL_LEN) == 0) {
            s += SP_SPACE_SYMBOL_LEN;
            n -= SP_SPACE_SYMBOL_LEN;
        }
        first = false;
        /* "▁" -> " ", the rest as it is */
        size_t start = 0;
        for (size_t k = 0; k + SP_SPACE_SYMBOL_LEN <= n;) {
            if (memcmp(s + k, SP_SPACE_SYMBOL, SP_SPACE_SYMBOL_LEN) == 0) {
                put_utf8(out, &at, (const unsigned char *)s + start, k - start, raw);
                out[at++] = ' ';
                k += SP_SPACE_SYMBOL_LEN;
                start = k;
            } else {
                k++;
            }
        }
        put_utf8(out, &at, (const unsigned char *)s + start, n - start, raw);
    }
    put_utf8(out, &at, run, n_run, raw);
    free(run);
    out[at] = '\0';
    *text = out;
    *len = at;
    return BA_OK;
}

static const ba_tokenizer_ops sp_ops = {
    .kind = "sentencepiece-bpe",
    .encode = sp_encode,
    .encode_words = sp_encode_words,
    .decode = sp_decode,
    .vocab_size = sp_vocab_size,
    .destroy = sp_destroy,
};

static bool is_regular_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

ba_status ba_sp_tokenizer_open(const char *dir, ba_tokenizer *tok, ba_error *err)
{
    char path[BA_PATH_MAX];
    sp_model *m = NULL;
    if (snprintf(path, sizeof path, "%s/tokenizer.model", dir) >= (int)sizeof path)
        return ba_fail(err, BA_ERR_USAGE, "%s: directory name too long", dir);
    if (is_regular_file(path)) {
        BA_CHECK(load_model_proto(path, &m, err));
    } else {
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        if (!is_regular_file(path))
            return ba_fail(err, BA_ERR_IO,
                           "%s: no tokenizer.model or tokenizer.json (SentencePiece BPE)", dir);
        BA_CHECK(load_hf_json(path, &m, err));
    }
    tok->ops = &sp_ops;
    tok->impl = m;
    return BA_OK;
}

ba_status ba_sp_encode_reference(const ba_tokenizer *tok, const char *text, size_t len,
                                 int32_t **ids, size_t *n_ids, ba_error *err)
{
    if (!tok || tok->ops != &sp_ops)
        return ba_fail(err, BA_ERR_USAGE, "ba_sp_encode_reference: not a SentencePiece tokenizer");
    return encode_text(tok->impl, text, len, true, ids, n_ids, err);
}
