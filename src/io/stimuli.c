/* stimuli.c — stories as timed words (see stimuli.h for the formats and
 * the repair rules). Every reader works on the whole file decoded to UTF-8
 * in memory (stimulus files are small: the longest Narratives story is
 * 8,267 words), so there is no line-length limit, and line ends, BOMs and
 * UTF-16 are dealt with once, before parsing. */
#include "brainalign/io/stimuli.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "brainalign/core/fs.h"

/* ------------------------------------------------------------------------
 * Small string helpers
 * ------------------------------------------------------------------------ */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

static bool is_blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t') return false;
    return true;
}

/* Trim white space in place; returns the new start. */
static char *trim(char *s)
{
    while (is_space(*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && is_space(s[n - 1])) s[--n] = '\0';
    return s;
}

static char *copy_string(const char *s, const char *what, ba_error *err)
{
    size_t n = strlen(s);
    char *c = ba_malloc(n + 1, what, err);
    if (c) memcpy(c, s, n + 1);
    return c;
}

/* "<a>/<b><c>" in a fresh buffer (c may be ""). */
static char *join_path(const char *a, const char *b, const char *c, ba_error *err)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 2;
    char *p = ba_malloc(n, "a file path", err);
    if (p) snprintf(p, n, "%s/%s%s", a, b, c);
    return p;
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    while (*s) {
        unsigned c = *s;
        if (c < 0x80) { s++; continue; }
        size_t extra;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) { extra = 1; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { extra = 2; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { extra = 3; cp = c & 0x07; min = 0x10000; }
        else return false;
        for (size_t k = 1; k <= extra; k++) {
            if ((s[k] & 0xC0) != 0x80) return false; /* also stops at NUL */
            cp = (cp << 6) | (s[k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        s += extra + 1;
    }
    return true;
}

/* ------------------------------------------------------------------------
 * Loading a file as UTF-8 text
 * ------------------------------------------------------------------------ */

static void put_utf8(char **w, uint32_t cp)
{
    unsigned char *o = (unsigned char *)*w;
    if (cp < 0x80) {
        *o++ = (unsigned char)cp;
    } else if (cp < 0x800) {
        *o++ = (unsigned char)(0xC0 | (cp >> 6));
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (unsigned char)(0xE0 | (cp >> 12));
        *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (unsigned char)(0xF0 | (cp >> 18));
        *o++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    }
    *w = (char *)o;
}

/* UTF-16 (after its BOM) to NUL-terminated UTF-8. Praat writes UTF-16 with
 * a BOM when a TextGrid holds characters outside ASCII (older versions). */
static ba_status utf16_to_utf8(const char *path, const unsigned char *units_bytes,
                               size_t n_bytes, bool big_endian, char **text, size_t *len,
                               ba_error *err)
{
    if (n_bytes % 2)
        return ba_fail(err, BA_ERR_FORMAT,
                       "%s: UTF-16 file has an odd number of bytes (truncated?)", path);
    size_t n_units = n_bytes / 2;
    char *out = ba_malloc(3 * n_units + 1, "UTF-8 text converted from UTF-16", err);
    if (!out) return BA_ERR_NOMEM;
    char *w = out;
    size_t line = 1;
    for (size_t i = 0; i < n_units; i++) {
        const unsigned char *b = units_bytes + 2 * i;
        uint32_t u = big_endian ? (uint32_t)(b[0] << 8 | b[1]) : (uint32_t)(b[1] << 8 | b[0]);
        uint32_t cp = u;
        if (u >= 0xD800 && u <= 0xDBFF && i + 1 < n_units) {
            const unsigned char *c = b + 2;
            uint32_t lo = big_endian ? (uint32_t)(c[0] << 8 | c[1]) : (uint32_t)(c[1] << 8 | c[0]);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                i++;
            }
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) {
            free(out);
            return ba_fail(err, BA_ERR_FORMAT, "%s:%zu: invalid UTF-16 (unpaired surrogate)",
                           path, line);
        }
        if (cp == 0) {
            free(out);
            return ba_fail(err, BA_ERR_FORMAT, "%s:%zu: NUL character in a text file", path,
                           line);
        }
        if (cp == '\n') line++;
        put_utf8(&w, cp);
    }
    *w = '\0';
    *text = out;
    *len = (size_t)(w - out);
    return BA_OK;
}

static size_t line_of_offset(const char *text, size_t offset)
{
    size_t line = 1;
    for (size_t i = 0; i < offset; i++)
        if (text[i] == '\n' || (text[i] == '\r' && text[i + 1] != '\n')) line++;
    return line;
}

/* The whole file as NUL-terminated UTF-8 (BOM removed, UTF-16 converted). */
static ba_status load_text(const char *path, char **text, size_t *len, ba_error *err)
{
    unsigned char *raw = NULL;
    size_t n = 0;
    *text = NULL;
    *len = 0;
    BA_CHECK(ba_read_file(path, &raw, &n, err));
    ba_status rc = BA_OK;
    if (n >= 2 && ((raw[0] == 0xFE && raw[1] == 0xFF) || (raw[0] == 0xFF && raw[1] == 0xFE))) {
        rc = utf16_to_utf8(path, raw + 2, n - 2, raw[0] == 0xFE, text, len, err);
        free(raw);
        return rc;
    }
    size_t skip = (n >= 3 && raw[0] == 0xEF && raw[1] == 0xBB && raw[2] == 0xBF) ? 3 : 0;
    char *out = ba_malloc(n - skip + 1, "file text", err);
    if (!out) {
        free(raw);
        return BA_ERR_NOMEM;
    }
    memcpy(out, raw + skip, n - skip);
    out[n - skip] = '\0';
    free(raw);
    const char *nul = memchr(out, '\0', n - skip);
    if (nul && n - skip >= 12 && memcmp(out, "ooBinaryFile", 12) == 0) {
        /* A real binary TextGrid holds NULs (its first time, 0.0, is 8 zero bytes). */
        free(out);
        return ba_fail(err, BA_ERR_FORMAT,
                       "%s: binary TextGrid is not supported (in Praat, save it as a text "
                       "file)", path);
    }
    if (nul) {
        size_t line = line_of_offset(out, (size_t)(nul - out));
        free(out);
        return ba_fail(err, BA_ERR_FORMAT,
                       "%s:%zu: NUL byte in a text file (UTF-16 without a byte-order mark, "
                       "or not a text file; save it as UTF-8)",
                       path, line);
    }
    *text = out;
    *len = n - skip;
    return BA_OK;
}

/* ------------------------------------------------------------------------
 * Lines and CSV/TSV fields
 * ------------------------------------------------------------------------ */

typedef struct {
    char *p, *end;
    size_t lineno; /* number of the line last returned (1-based) */
} line_cursor;

/* Next line, NUL-terminated in place (LF, CRLF or CR ends). */
static bool next_line(line_cursor *c, char **line)
{
    if (c->p >= c->end) return false;
    char *q = c->p;
    while (q < c->end && *q != '\n' && *q != '\r') q++;
    char *next = q;
    if (q < c->end) {
        next = q + 1;
        if (*q == '\r' && next < c->end && *next == '\n') next++;
    }
    *q = '\0';
    *line = c->p;
    c->p = next;
    c->lineno++;
    return true;
}

typedef struct {
    char **v;
    size_t n, cap;
} field_list;

static ba_status push_field(field_list *f, char *field, ba_error *err)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 8;
        char **grown = realloc(f->v, cap * sizeof *grown);
        if (!grown) return ba_fail(err, BA_ERR_NOMEM, "cannot allocate the fields of a line");
        f->v = grown;
        f->cap = cap;
    }
    f->v[f->n++] = field;
    return BA_OK;
}

/* Split `line` in place at `sep`, with Python-csv quoting (see stimuli.h). */
static ba_status split_fields(char *line, char sep, field_list *f, const char *path,
                              size_t lineno, ba_error *err)
{
    f->n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || (*p == '\t' && sep != '\t')) p++;
        char *start = p;
        bool more;
        if (*p == '"') {
            char *w = p++;
            for (;;) {
                if (*p == '\0')
                    return ba_fail(err, BA_ERR_FORMAT,
                                   "%s:%zu: field %zu: quote not closed before the end of "
                                   "the line (truncated file?)",
                                   path, lineno, f->n + 1);
                if (*p == '"') {
                    if (p[1] != '"') break;
                    p++;
                }
                *w++ = *p++;
            }
            p++; /* past the closing quote */
            while (*p == ' ' || (*p == '\t' && sep != '\t')) p++;
            if (*p != sep && *p != '\0')
                return ba_fail(err, BA_ERR_FORMAT,
                               "%s:%zu: field %zu: unexpected text after the closing quote",
                               path, lineno, f->n + 1);
            more = *p == sep;
            *w = '\0'; /* w < p: the closing quote was not copied */
        } else {
            while (*p != sep && *p != '\0') p++;
            more = *p == sep;
            char *e = p;
            while (e > start && (e[-1] == ' ' || (e[-1] == '\t' && sep != '\t'))) e--;
            *e = '\0';
        }
        BA_CHECK(push_field(f, start, err));
        if (!more) return BA_OK;
        p++;
    }
}

/* A time in seconds: a finite, non-negative decimal number. */
static ba_status parse_time(const char *s, const char *what, const char *path, size_t lineno,
                            double *out, ba_error *err)
{
    if (*s == '\0')
        return ba_fail(err, BA_ERR_FORMAT, "%s:%zu: %s is empty (expected seconds)", path,
                       lineno, what);
    char *end = NULL;
    bool numeric_start = (*s >= '0' && *s <= '9') || *s == '.' || *s == '-' || *s == '+';
    double v = numeric_start && !strpbrk(s, "xX") ? strtod(s, &end) : 0.0;
    if (!end || end == s || *end != '\0')
        return ba_fail(err, BA_ERR_FORMAT, "%s:%zu: %s '%.40s' is not a number", path,
                       lineno, what, s);
    if (!isfinite(v))
        return ba_fail(err, BA_ERR_VALUE, "%s:%zu: %s '%.40s' is not finite", path, lineno,
                       what, s);
    if (v < 0)
        return ba_fail(err, BA_ERR_VALUE, "%s:%zu: %s %g s is negative", path, lineno, what,
                       v);
    *out = v;
    return BA_OK;
}

/* ------------------------------------------------------------------------
 * The growing list of timed words
 * ------------------------------------------------------------------------ */

typedef struct {
    char **words;
    double *onset, *offset;
    size_t n, cap;
} word_list;

static void word_list_free(word_list *w)
{
    for (size_t i = 0; i < w->n; i++) free(w->words[i]);
    free(w->words);
    free(w->onset);
    free(w->offset);
    memset(w, 0, sizeof *w);
}

static ba_status word_list_grow(word_list *w, ba_error *err)
{
    size_t cap = w->cap ? 2 * w->cap : 256;
    char **words = realloc(w->words, cap * sizeof *words);
    if (words) w->words = words;
    double *onset = realloc(w->onset, cap * sizeof *onset);
    if (onset) w->onset = onset;
    double *offset = realloc(w->offset, cap * sizeof *offset);
    if (offset) w->offset = offset;
    if (!words || !onset || !offset)
        return ba_fail(err, BA_ERR_NOMEM, "cannot allocate a list of %zu words", cap);
    w->cap = cap;
    return BA_OK;
}

/* Append a word (checked: non-empty, valid UTF-8) with its times. */
static ba_status word_list_push(word_list *w, const char *word, double onset, double offset,
                                const char *path, size_t lineno, ba_error *err)
{
    if (*word == '\0') return ba_fail(err, BA_ERR_FORMAT, "%s:%zu: empty word", path, lineno);
    if (!utf8_valid(word))
        return ba_fail(err, BA_ERR_FORMAT,
                       "%s:%zu: word is not valid UTF-8 (save the file as UTF-8)", path,
                       lineno);
    if (w->n == w->cap) BA_CHECK(word_list_grow(w, err));
    char *copy = copy_string(word, "a word", err);
    if (!copy) return BA_ERR_NOMEM;
    w->words[w->n] = copy;
    w->onset[w->n] = onset;
    w->offset[w->n] = offset;
    w->n++;
    return BA_OK;
}

/* An offset below its onset: within the tolerance it is rounding and is
 * raised to the onset, beyond it the file is wrong. */
static ba_status check_offset(double onset, double *offset, const char *path, size_t lineno,
                              ba_error *err)
{
    if (*offset >= onset) return BA_OK;
    if (*offset < onset - BA_STIM_TIME_TOLERANCE_S)
        return ba_fail(err, BA_ERR_VALUE, "%s:%zu: offset %.6f s is before onset %.6f s", path,
                       lineno, *offset, onset);
    *offset = onset;
    return BA_OK;
}

/* Fill the NaN entries of t[0..n): linear in the index between the nearest
 * known neighbours, holding the nearest known value before the first and
 * after the last known entry (see stimuli.h). The slope form is numpy's
 * interp, which pandas' linear interpolate uses. False if nothing is known. */
static bool fill_missing(double *t, size_t n)
{
    size_t first = 0;
    while (first < n && isnan(t[first])) first++;
    if (first == n) return false;
    for (size_t i = 0; i < first; i++) t[i] = t[first];
    size_t prev = first;
    for (size_t i = first + 1; i < n; i++) {
        if (isnan(t[i])) continue;
        double slope = (t[i] - t[prev]) / (double)(i - prev);
        for (size_t k = prev + 1; k < i; k++) t[k] = slope * (double)(k - prev) + t[prev];
        prev = i;
    }
    for (size_t k = prev + 1; k < n; k++) t[k] = t[prev];
    return true;
}

/* Raise an onset below the previous one to it (and its offset with it). */
static bool clamp_onset(word_list *w, size_t i)
{
    if (i == 0 || w->onset[i] >= w->onset[i - 1]) return false;
    w->onset[i] = w->onset[i - 1];
    if (w->offset[i] < w->onset[i]) w->offset[i] = w->onset[i];
    return true;
}

/* ------------------------------------------------------------------------
 * Narratives / Gentle align.csv
 * ------------------------------------------------------------------------ */

static bool is_align_header(const field_list *f)
{
    return f->n == 4 && strcasecmp(f->v[0], "word") == 0 &&
           strncasecmp(f->v[2], "onset", 5) == 0 && strncasecmp(f->v[3], "offset", 6) == 0;
}

static ba_status read_align_csv(const char *path, char *text, size_t len, word_list *w,
                                ba_story_read_stats *st, ba_error *err)
{
    ba_status rc = BA_OK;
    line_cursor c = {text, text + len, 0};
    field_list f = {0};
    bool *missing = NULL;
    size_t missing_cap = 0;
    char *line;
    bool first = true;
    while (next_line(&c, &line)) {
        if (is_blank(line)) continue;
        BA_TRY(split_fields(line, ',', &f, path, c.lineno, err), done);
        if (first && is_align_header(&f)) {
            first = false;
            continue;
        }
        first = false;
        if (f.n != 4) {
            rc = ba_fail(err, BA_ERR_FORMAT,
                         "%s:%zu: expected 4 comma-separated columns "
                         "(word,aligned_word,onset,offset), found %zu (truncated file?)",
                         path, c.lineno, f.n);
            goto done;
        }
        double onset = NAN, offset = NAN;
        if (*f.v[2]) BA_TRY(parse_time(f.v[2], "onset", path, c.lineno, &onset, err), done);
        if (*f.v[3]) BA_TRY(parse_time(f.v[3], "offset", path, c.lineno, &offset, err), done);
        if (*f.v[2] && *f.v[3]) BA_TRY(check_offset(onset, &offset, path, c.lineno, err), done);
        BA_TRY(word_list_push(w, f.v[0], onset, offset, path, c.lineno, err), done);
        if (w->n > missing_cap) {
            missing_cap = w->cap;
            bool *grown = realloc(missing, missing_cap * sizeof *grown);
            if (!grown) {
                rc = ba_fail(err, BA_ERR_NOMEM, "%s: cannot allocate alignment flags", path);
                goto done;
            }
            missing = grown;
        }
        missing[w->n - 1] = !*f.v[2] || !*f.v[3];
    }
    if (w->n == 0) {
        rc = ba_fail(err, BA_ERR_FORMAT, "%s: no words (empty story)", path);
        goto done;
    }
    if (!fill_missing(w->onset, w->n) || !fill_missing(w->offset, w->n)) {
        rc = ba_fail(err, BA_ERR_VALUE,
                     "%s: no word has both an onset and an offset (alignment failed for all "
                     "%zu words), nothing to interpolate from",
                     path, w->n);
        goto done;
    }
    for (size_t i = 0; i < w->n; i++) {
        if (missing[i]) {
            st->n_interpolated++;
            /* only a row with one time missing can end up inverted */
            if (w->offset[i] < w->onset[i]) w->offset[i] = w->onset[i];
        }
        if (clamp_onset(w, i)) st->n_clamped++;
    }
done:
    free(f.v);
    free(missing);
    return rc;
}

/* ------------------------------------------------------------------------
 * Word table with a header (TSV or CSV)
 * ------------------------------------------------------------------------ */

static ba_status find_column(const field_list *f, const char *name, size_t *col,
                             const char *path, size_t lineno, ba_error *err)
{
    size_t found = f->n;
    for (size_t i = 0; i < f->n; i++) {
        if (strcasecmp(f->v[i], name) != 0) continue;
        if (found != f->n)
            return ba_fail(err, BA_ERR_FORMAT, "%s:%zu: header has two '%s' columns", path,
                           lineno, name);
        found = i;
    }
    if (found == f->n)
        return ba_fail(err, BA_ERR_FORMAT,
                       "%s:%zu: header has no '%s' column (expected a header line naming "
                       "word, onset and offset columns, tab- or comma-separated; a Gentle "
                       "align.csv has no header: read it as align-csv)",
                       path, lineno, name);
    *col = found;
    return BA_OK;
}

static ba_status read_words_tsv(const char *path, char *text, size_t len, word_list *w,
                                ba_story_read_stats *st, ba_error *err)
{
    ba_status rc = BA_OK;
    line_cursor c = {text, text + len, 0};
    field_list f = {0};
    char *line = NULL;
    bool have_header = false;
    while (!have_header && next_line(&c, &line)) have_header = !is_blank(line);
    if (!have_header) {
        rc = ba_fail(err, BA_ERR_FORMAT,
                     "%s: empty file (expected a header line with word, onset, offset)", path);
        goto done;
    }
    char sep = strchr(line, '\t') ? '\t' : ',';
    size_t col_word = 0, col_onset = 0, col_offset = 0;
    BA_TRY(split_fields(line, sep, &f, path, c.lineno, err), done);
    BA_TRY(find_column(&f, "word", &col_word, path, c.lineno, err), done);
    BA_TRY(find_column(&f, "onset", &col_onset, path, c.lineno, err), done);
    BA_TRY(find_column(&f, "offset", &col_offset, path, c.lineno, err), done);
    size_t n_columns = f.n;
    while (next_line(&c, &line)) {
        if (is_blank(line)) continue;
        BA_TRY(split_fields(line, sep, &f, path, c.lineno, err), done);
        if (f.n != n_columns) {
            rc = ba_fail(err, BA_ERR_FORMAT,
                         "%s:%zu: expected %zu %s-separated columns as in the header, found "
                         "%zu (truncated file?)",
                         path, c.lineno, n_columns, sep == '\t' ? "tab" : "comma", f.n);
            goto done;
        }
        double onset, offset;
        BA_TRY(parse_time(f.v[col_onset], "onset", path, c.lineno, &onset, err), done);
        BA_TRY(parse_time(f.v[col_offset], "offset", path, c.lineno, &offset, err), done);
        BA_TRY(check_offset(onset, &offset, path, c.lineno, err), done);
        if (w->n > 0 && onset < w->onset[w->n - 1] - BA_STIM_TIME_TOLERANCE_S) {
            rc = ba_fail(err, BA_ERR_VALUE,
                         "%s:%zu: onset %.6f s is before the previous word's onset %.6f s "
                         "(words must be in time order)",
                         path, c.lineno, onset, w->onset[w->n - 1]);
            goto done;
        }
        BA_TRY(word_list_push(w, f.v[col_word], onset, offset, path, c.lineno, err), done);
        if (clamp_onset(w, w->n - 1)) st->n_clamped++;
    }
    if (w->n == 0) rc = ba_fail(err, BA_ERR_FORMAT, "%s: no words (empty story)", path);
done:
    free(f.v);
    return rc;
}

/* ------------------------------------------------------------------------
 * Praat TextGrid
 *
 * The long format is the short format's sequence of values (numbers,
 * "strings", <flags>) with labels around them ("xmin =", "item [1]:",
 * "intervals: size ="). The scanner returns only the values: it skips bare
 * words that are not numbers, [...] indices, "=" and "!" comments.
 * Strings are unescaped in place in the file text, so a returned string
 * stays valid as long as the text does.
 * ------------------------------------------------------------------------ */

typedef enum { TG_END, TG_NUMBER, TG_STRING, TG_FLAG } tg_kind;

typedef struct {
    const char *path;
    char *p, *end;
    size_t lineno;     /* line at p */
    tg_kind kind;      /* the value last scanned */
    double number;
    char *string;      /* TG_STRING or TG_FLAG text */
    size_t value_line; /* line where that value starts */
} tg_scanner;

static bool tg_delimiter(char c)
{
    return is_space(c) || c == '"' || c == '<' || c == '[' || c == '!' || c == '=' ||
           c == '\0';
}

static void tg_advance(tg_scanner *s)
{
    if (*s->p == '\n' || (*s->p == '\r' && s->p[1] != '\n')) s->lineno++;
    s->p++;
}

static ba_status tg_scan_string(tg_scanner *s, ba_error *err)
{
    size_t start_line = s->lineno;
    tg_advance(s); /* opening quote */
    char *w = s->p;
    s->string = w;
    for (;;) {
        if (s->p >= s->end)
            return ba_fail(err, BA_ERR_FORMAT,
                           "%s:%zu: string not closed before the end of the file (truncated?)",
                           s->path, start_line);
        if (*s->p == '"') {
            if (s->p + 1 >= s->end || s->p[1] != '"') break;
            s->p++; /* "" is one quote */
        }
        char c = *s->p;
        tg_advance(s);
        *w++ = c;
    }
    tg_advance(s); /* closing quote, at or after w */
    *w = '\0';
    s->kind = TG_STRING;
    return BA_OK;
}

static ba_status tg_scan_flag(tg_scanner *s, ba_error *err)
{
    size_t start_line = s->lineno;
    s->string = ++s->p;
    while (s->p < s->end && *s->p != '>' && *s->p != '\n' && *s->p != '\r') s->p++;
    if (s->p >= s->end || *s->p != '>')
        return ba_fail(err, BA_ERR_FORMAT, "%s:%zu: '<' without a closing '>' (truncated?)", s->path,
                       start_line);
    *s->p++ = '\0';
    s->kind = TG_FLAG;
    return BA_OK;
}

/* A bare word: a number value, or a label that is skipped (returns false). */
static ba_status tg_scan_bare(tg_scanner *s, bool *is_value, ba_error *err)
{
    char *start = s->p;
    while (s->p < s->end && !tg_delimiter(*s->p)) s->p++;
    if (s->p == start) { /* cannot happen (tg_next handles delimiters); never loop */
        s->p++;
        *is_value = false;
        return BA_OK;
    }
    char saved = *s->p;
    *s->p = '\0';
    bool numeric_start = (*start >= '0' && *start <= '9') || *start == '.' || *start == '-' ||
                         *start == '+';
    ba_status rc = BA_OK;
    *is_value = false;
    if (numeric_start) {
        char *end = NULL;
        double v = strpbrk(start, "xX") ? 0.0 : strtod(start, &end);
        if (end == NULL || end == start || *end != '\0' || !isfinite(v)) {
            rc = ba_fail(err, BA_ERR_FORMAT, "%s:%zu: malformed number '%.40s'", s->path,
                         s->lineno, start);
        } else {
            s->number = v;
            s->kind = TG_NUMBER;
            *is_value = true;
        }
    }
    *s->p = saved;
    return rc;
}

/* Scan to the next value (kind TG_END at the end of the file). */
static ba_status tg_next(tg_scanner *s, ba_error *err)
{
    for (;;) {
        while (s->p < s->end && is_space(*s->p)) tg_advance(s);
        s->value_line = s->lineno;
        if (s->p >= s->end) {
            s->kind = TG_END;
            return BA_OK;
        }
        char c = *s->p;
        if (c == '"') return tg_scan_string(s, err);
        if (c == '<') return tg_scan_flag(s, err);
        if (c == '!') { /* comment to the end of the line */
            while (s->p < s->end && *s->p != '\n' && *s->p != '\r') s->p++;
        } else if (c == '[') { /* an index label such as [1] */
            while (s->p < s->end && *s->p != ']') tg_advance(s);
            if (s->p < s->end) s->p++;
        } else if (c == '=') {
            s->p++;
        } else {
            bool is_value;
            BA_CHECK(tg_scan_bare(s, &is_value, err));
            if (is_value) return BA_OK;
        }
    }
}

static const char *tg_kind_name(tg_kind k)
{
    switch (k) {
    case TG_END: return "the end of the file";
    case TG_NUMBER: return "a number";
    case TG_STRING: return "a string";
    case TG_FLAG: return "a <flag>";
    }
    return "?";
}

static ba_status tg_expect(tg_scanner *s, tg_kind kind, const char *what, ba_error *err)
{
    BA_CHECK(tg_next(s, err));
    if (s->kind == kind) return BA_OK;
    if (s->kind == TG_END)
        return ba_fail(err, BA_ERR_FORMAT,
                       "%s:%zu: truncated TextGrid: expected %s (%s), found the end of the file",
                       s->path, s->value_line, what, tg_kind_name(kind));
    return ba_fail(err, BA_ERR_FORMAT, "%s:%zu: expected %s (%s), found %s", s->path,
                   s->value_line, what, tg_kind_name(kind), tg_kind_name(s->kind));
}

static ba_status tg_number(tg_scanner *s, const char *what, double *out, ba_error *err)
{
    BA_CHECK(tg_expect(s, TG_NUMBER, what, err));
    *out = s->number;
    return BA_OK;
}

static ba_status tg_string(tg_scanner *s, const char *what, char **out, ba_error *err)
{
    BA_CHECK(tg_expect(s, TG_STRING, what, err));
    *out = s->string;
    return BA_OK;
}

static ba_status tg_count(tg_scanner *s, const char *what, size_t *out, ba_error *err)
{
    BA_CHECK(tg_expect(s, TG_NUMBER, what, err));
    double v = s->number;
    if (v < 0 || v != floor(v) || v > 1e9)
        return ba_fail(err, BA_ERR_FORMAT, "%s:%zu: %s is %g, expected a count", s->path,
                       s->value_line, what, v);
    *out = (size_t)v;
    return BA_OK;
}

typedef struct {
    char *text; /* into the file text */
    double xmin, xmax;
    size_t lineno;
} tg_interval;

typedef struct {
    char *name;
    size_t index; /* 1-based tier number */
    tg_interval *v;
    size_t n;
} tg_tier;

static bool is_word_tier_name(const char *name)
{
    while (is_space(*name)) name++;
    size_t n = strlen(name);
    while (n > 0 && is_space(name[n - 1])) n--;
    return (n == 5 && strncasecmp(name, "words", 5) == 0) ||
           (n == 4 && strncasecmp(name, "word", 4) == 0);
}

static bool is_nonspeech(const char *text)
{
    static const char *const marks[] = {"",    "sp",    "sil",  "silence", "pau", "<sil>",
                                        "<p:>", "{sl}", "{sil}", "{lg}",    "{ns}", "{br}"};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
        if (strcasecmp(text, marks[i]) == 0) return true;
    return false;
}

/* Read tier number `index`. The word tier is the first IntervalTier named
 * words/word, else the first IntervalTier: keep this tier's intervals in
 * `chosen` if it is the first IntervalTier or the first one so named. */
static ba_status tg_read_tier(tg_scanner *s, size_t index, tg_tier *chosen,
                              bool *chosen_is_named, ba_error *err)
{
    char what[96];
    char *klass, *name;
    double xmin, xmax;
    size_t n = 0;
    snprintf(what, sizeof what, "the class of tier %zu", index);
    BA_CHECK(tg_string(s, what, &klass, err));
    size_t class_line = s->value_line;
    snprintf(what, sizeof what, "the name of tier %zu", index);
    BA_CHECK(tg_string(s, what, &name, err));
    snprintf(what, sizeof what, "xmin of tier %zu", index);
    BA_CHECK(tg_number(s, what, &xmin, err));
    snprintf(what, sizeof what, "xmax of tier %zu", index);
    BA_CHECK(tg_number(s, what, &xmax, err));
    snprintf(what, sizeof what, "the size of tier %zu", index);
    BA_CHECK(tg_count(s, what, &n, err));
    bool is_interval = strcmp(klass, "IntervalTier") == 0;
    if (!is_interval && strcmp(klass, "TextTier") != 0)
        return ba_fail(err, BA_ERR_FORMAT,
                       "%s:%zu: tier %zu has class '%.40s', expected IntervalTier or TextTier",
                       s->path, class_line, index, klass);
    /* a count beyond what the rest of the file can hold (each entry takes
     * at least 3 bytes, as in `0""`) is corrupt: never allocate for it */
    size_t left = (size_t)(s->end - s->p);
    if (n > left / 3 + 1)
        return ba_fail(err, BA_ERR_FORMAT,
                       "%s:%zu: tier %zu claims %zu entries but only %zu bytes follow "
                       "(truncated TextGrid?)",
                       s->path, s->value_line, index, n, left);
    bool named = is_word_tier_name(name);
    bool want = is_interval && !*chosen_is_named && (chosen->index == 0 || named);
    tg_interval *v = NULL;
    if (want) {
        v = ba_calloc(n, sizeof *v, "the intervals of the word tier", err);
        if (!v) return BA_ERR_NOMEM;
    }
    ba_status rc = BA_OK;
    for (size_t i = 0; i < n; i++) {
        double a, b = 0;
        char *text;
        if (is_interval) {
            snprintf(what, sizeof what, "xmin of interval %zu of tier %zu", i + 1, index);
            BA_TRY(tg_number(s, what, &a, err), fail);
            size_t line = s->value_line;
            snprintf(what, sizeof what, "xmax of interval %zu of tier %zu", i + 1, index);
            BA_TRY(tg_number(s, what, &b, err), fail);
            snprintf(what, sizeof what, "the text of interval %zu of tier %zu", i + 1, index);
            BA_TRY(tg_string(s, what, &text, err), fail);
            if (want) v[i] = (tg_interval){text, a, b, line};
        } else {
            snprintf(what, sizeof what, "the time of point %zu of tier %zu", i + 1, index);
            BA_TRY(tg_number(s, what, &a, err), fail);
            snprintf(what, sizeof what, "the mark of point %zu of tier %zu", i + 1, index);
            BA_TRY(tg_string(s, what, &text, err), fail);
        }
    }
    if (want) {
        free(chosen->v);
        *chosen = (tg_tier){name, index, v, n};
        *chosen_is_named = named;
    }
    return BA_OK;
fail:
    free(v);
    return rc;
}

static ba_status tg_words_from_tier(const char *path, const tg_tier *t, word_list *w,
                                    ba_story_read_stats *st, ba_error *err)
{
    for (size_t i = 0; i < t->n; i++) {
        tg_interval *iv = &t->v[i];
        char *text = trim(iv->text);
        if (is_nonspeech(text)) {
            st->n_skipped++;
            continue;
        }
        if (iv->xmax < iv->xmin - BA_STIM_TIME_TOLERANCE_S)
            return ba_fail(err, BA_ERR_VALUE,
                           "%s:%zu: interval %zu of tier '%s' ends (%.6f s) before it starts "
                           "(%.6f s)",
                           path, iv->lineno, i + 1, t->name, iv->xmax, iv->xmin);
        if (iv->xmin < 0)
            return ba_fail(err, BA_ERR_VALUE, "%s:%zu: interval %zu of tier '%s' starts at "
                           "a negative time (%.6f s)", path, iv->lineno, i + 1, t->name,
                           iv->xmin);
        if (w->n > 0 && iv->xmin < w->onset[w->n - 1] - BA_STIM_TIME_TOLERANCE_S)
            return ba_fail(err, BA_ERR_VALUE,
                           "%s:%zu: interval %zu of tier '%s' starts (%.6f s) before the "
                           "previous word (%.6f s): intervals must be in time order",
                           path, iv->lineno, i + 1, t->name, iv->xmin, w->onset[w->n - 1]);
        double offset = iv->xmax < iv->xmin ? iv->xmin : iv->xmax;
        BA_CHECK(word_list_push(w, text, iv->xmin, offset, path, iv->lineno, err));
        if (clamp_onset(w, w->n - 1)) st->n_clamped++;
    }
    if (w->n == 0)
        return ba_fail(err, BA_ERR_FORMAT,
                       "%s: tier %zu '%s' has no words (only empty or silence intervals)",
                       path, t->index, t->name);
    return BA_OK;
}

static ba_status read_textgrid(const char *path, char *text, size_t len, word_list *w,
                               ba_story_read_stats *st, ba_error *err)
{
    if (strncmp(text, "ooBinaryFile", 12) == 0)
        return ba_fail(err, BA_ERR_FORMAT,
                       "%s: binary TextGrid is not supported (in Praat, save it as a text "
                       "file)", path);
    tg_scanner s = {path, text, text + len, 1, TG_END, 0, NULL, 1};
    tg_tier chosen = {0};
    bool chosen_is_named = false;
    ba_status rc = BA_OK;
    char *file_type, *object_class;
    double xmin, xmax;
    size_t n_tiers = 0;
    BA_TRY(tg_string(&s, "the file type \"ooTextFile\"", &file_type, err), done);
    if (strcmp(file_type, "ooTextFile") != 0 && strcmp(file_type, "ooTextFile short") != 0) {
        rc = ba_fail(err, BA_ERR_FORMAT, "%s:%zu: file type '%.40s', expected 'ooTextFile'",
                     path, s.value_line, file_type);
        goto done;
    }
    BA_TRY(tg_string(&s, "the object class \"TextGrid\"", &object_class, err), done);
    if (strcmp(object_class, "TextGrid") != 0) {
        rc = ba_fail(err, BA_ERR_FORMAT, "%s:%zu: object class '%.40s', expected 'TextGrid'",
                     path, s.value_line, object_class);
        goto done;
    }
    BA_TRY(tg_number(&s, "xmin of the TextGrid", &xmin, err), done);
    BA_TRY(tg_number(&s, "xmax of the TextGrid", &xmax, err), done);
    BA_TRY(tg_expect(&s, TG_FLAG, "<exists> (tiers)", err), done);
    if (strcmp(s.string, "exists") != 0) {
        rc = ba_fail(err, BA_ERR_FORMAT, "%s:%zu: TextGrid has no tiers (<%.20s>)", path,
                     s.value_line, s.string);
        goto done;
    }
    BA_TRY(tg_count(&s, "the number of tiers", &n_tiers, err), done);
    for (size_t t = 1; t <= n_tiers; t++)
        BA_TRY(tg_read_tier(&s, t, &chosen, &chosen_is_named, err), done);
    if (chosen.index == 0) {
        rc = ba_fail(err, BA_ERR_FORMAT, "%s: TextGrid has no IntervalTier (no word tier)",
                     path);
        goto done;
    }
    rc = tg_words_from_tier(path, &chosen, w, st, err);
done:
    free(chosen.v);
    return rc;
}

/* ------------------------------------------------------------------------
 * Formats, names, one story
 * ------------------------------------------------------------------------ */

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static bool looks_like_textgrid(const char *text)
{
    while (is_space(*text)) text++;
    return strncmp(text, "File type", 9) == 0 || strncmp(text, "ooBinaryFile", 12) == 0;
}

static ba_status detect_format(const char *path, const char *text, ba_stimulus_format *format,
                               ba_error *err)
{
    if (looks_like_textgrid(text)) *format = BA_STIM_TEXTGRID;
    else if (strcasecmp(base_name(path), "align.csv") == 0) *format = BA_STIM_ALIGN_CSV;
    else if (ba_has_suffix_ci(path, ".TextGrid", false)) *format = BA_STIM_TEXTGRID;
    else if (ba_has_suffix_ci(path, ".tsv", false) || ba_has_suffix_ci(path, ".csv", false)) *format = BA_STIM_WORDS_TSV;
    else
        return ba_fail(err, BA_ERR_USAGE,
                       "%s: cannot tell the stimulus format from the file name (expected "
                       "align.csv, *.TextGrid, *.tsv or *.csv; or give the format)",
                       path);
    return BA_OK;
}

static ba_status set_story_name(const char *path, ba_stimulus_format format, const char *given,
                                char out[256], ba_error *err)
{
    char derived[BA_PATH_MAX];
    if (!given) {
        const char *base = base_name(path);
        if (format == BA_STIM_ALIGN_CSV && base != path) {
            /* <story>/align.csv: the directory names the story */
            size_t dir_len = (size_t)(base - path) - 1;
            while (dir_len > 0 && path[dir_len - 1] == '/') dir_len--;
            size_t start = dir_len;
            while (start > 0 && path[start - 1] != '/') start--;
            snprintf(derived, sizeof derived, "%.*s", (int)(dir_len - start), path + start);
        } else {
            snprintf(derived, sizeof derived, "%s", base);
            char *dot = strrchr(derived, '.');
            if (dot && dot != derived) *dot = '\0';
        }
        if (strcmp(derived, ".") == 0 || strcmp(derived, "..") == 0 || !*derived)
            snprintf(derived, sizeof derived, "%s", "align");
        given = derived;
    }
    if (!*given || strchr(given, '/'))
        return ba_fail(err, BA_ERR_USAGE, "%s: story name '%s' is empty or holds a '/'", path,
                       given);
    if (strlen(given) >= 256)
        return ba_fail(err, BA_ERR_USAGE, "%s: story name '%.40s...' is %zu bytes, at most 255",
                       path, given, strlen(given));
    memcpy(out, given, strlen(given) + 1);
    return BA_OK;
}

ba_status ba_stimulus_format_parse(const char *text, ba_stimulus_format *format, ba_error *err)
{
    static const struct {
        const char *name;
        ba_stimulus_format format;
    } names[] = {{"auto", BA_STIM_AUTO},          {"align-csv", BA_STIM_ALIGN_CSV},
                 {"align_csv", BA_STIM_ALIGN_CSV}, {"gentle", BA_STIM_ALIGN_CSV},
                 {"textgrid", BA_STIM_TEXTGRID},   {"tsv", BA_STIM_WORDS_TSV},
                 {"csv", BA_STIM_WORDS_TSV}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(text, names[i].name) == 0) {
            *format = names[i].format;
            return BA_OK;
        }
    return ba_fail(err, BA_ERR_USAGE,
                   "stimulus format '%s' unknown (expected auto, align-csv, textgrid or tsv)",
                   text);
}

void ba_story_free(ba_story *story)
{
    if (!story) return;
    for (size_t i = 0; i < story->n_words && story->words; i++) free(story->words[i]);
    free(story->words);
    free(story->onset);
    free(story->offset);
    memset(story, 0, sizeof *story);
}

void ba_story_array_free(ba_story *stories, size_t n)
{
    if (!stories) return;
    for (size_t i = 0; i < n; i++) ba_story_free(&stories[i]);
    free(stories);
}

ba_status ba_story_read_ex(const char *path, ba_stimulus_format format, const char *name,
                           ba_story *story, ba_story_read_stats *stats, ba_error *err)
{
    memset(story, 0, sizeof *story);
    if (stats) memset(stats, 0, sizeof *stats);
    ba_story_read_stats st = {0};
    word_list w = {0};
    char *text = NULL;
    size_t len = 0;
    ba_status rc = BA_OK;
    if (format != BA_STIM_AUTO && format != BA_STIM_ALIGN_CSV && format != BA_STIM_TEXTGRID &&
        format != BA_STIM_WORDS_TSV)
        return ba_fail(err, BA_ERR_USAGE, "%s: unknown stimulus format %d", path, (int)format);
    BA_TRY(load_text(path, &text, &len, err), done);
    if (format == BA_STIM_AUTO) BA_TRY(detect_format(path, text, &format, err), done);
    BA_TRY(set_story_name(path, format, name, story->name, err), done);
    switch (format) {
    case BA_STIM_ALIGN_CSV: rc = read_align_csv(path, text, len, &w, &st, err); break;
    case BA_STIM_TEXTGRID: rc = read_textgrid(path, text, len, &w, &st, err); break;
    default: rc = read_words_tsv(path, text, len, &w, &st, err); break;
    }
    if (rc != BA_OK) goto done;
    story->n_words = w.n;
    story->words = w.words;
    story->onset = w.onset;
    story->offset = w.offset;
    memset(&w, 0, sizeof w);
    if (stats) *stats = st;
done:
    word_list_free(&w);
    free(text);
    if (rc != BA_OK) story->name[0] = '\0';
    return rc;
}

ba_status ba_story_read(const char *path, ba_stimulus_format format, const char *name,
                        ba_story *story, ba_error *err)
{
    return ba_story_read_ex(path, format, name, story, NULL, err);
}

/* ------------------------------------------------------------------------
 * A directory of stories
 * ------------------------------------------------------------------------ */

typedef struct {
    char *name;
    char *path;
    ba_stimulus_format format;
} story_entry;

typedef struct {
    story_entry *v;
    size_t n, cap;
} entry_list;

static void entry_list_free(entry_list *e)
{
    for (size_t i = 0; i < e->n; i++) {
        free(e->v[i].name);
        free(e->v[i].path);
    }
    free(e->v);
    memset(e, 0, sizeof *e);
}

/* Takes ownership of name and path (frees them on failure). */
static ba_status entry_list_push(entry_list *e, char *name, char *path,
                                 ba_stimulus_format format, ba_error *err)
{
    if (e->n == e->cap) {
        size_t cap = e->cap ? 2 * e->cap : 32;
        story_entry *grown = realloc(e->v, cap * sizeof *grown);
        if (!grown) {
            free(name);
            free(path);
            return ba_fail(err, BA_ERR_NOMEM, "cannot allocate a list of %zu stories", cap);
        }
        e->v = grown;
        e->cap = cap;
    }
    e->v[e->n++] = (story_entry){name, path, format};
    return BA_OK;
}

static bool is_regular_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* If directory entry `entry` is a story, add it. */
static ba_status add_story_entry(const char *dir, const char *entry, entry_list *e,
                                 ba_error *err)
{
    if (entry[0] == '.') return BA_OK;
    char *path = join_path(dir, entry, "", err);
    if (!path) return BA_ERR_NOMEM;
    struct stat st;
    if (stat(path, &st) != 0) { /* vanished or a dangling link: not a story */
        free(path);
        return BA_OK;
    }
    ba_stimulus_format format;
    char *file = NULL;
    size_t name_len = strlen(entry);
    if (S_ISDIR(st.st_mode)) {
        file = join_path(path, "align.csv", "", err);
        free(path);
        if (!file) return BA_ERR_NOMEM;
        if (!is_regular_file(file)) {
            free(file);
            return BA_OK;
        }
        format = BA_STIM_ALIGN_CSV;
    } else if (S_ISREG(st.st_mode) && ba_has_suffix_ci(entry, ".TextGrid", false) && name_len > 9) {
        file = path;
        format = BA_STIM_TEXTGRID;
        name_len -= 9;
    } else if (S_ISREG(st.st_mode) && ba_has_suffix_ci(entry, ".tsv", false) && name_len > 4) {
        file = path;
        format = BA_STIM_WORDS_TSV;
        name_len -= 4;
    } else {
        free(path);
        return BA_OK;
    }
    char *name = ba_malloc(name_len + 1, "a story name", err);
    if (!name) {
        free(file);
        return BA_ERR_NOMEM;
    }
    memcpy(name, entry, name_len);
    name[name_len] = '\0';
    return entry_list_push(e, name, file, format, err);
}

static int compare_entries(const void *a, const void *b)
{
    return strcmp(((const story_entry *)a)->name, ((const story_entry *)b)->name);
}

/* All stories under `dir`, sorted by name, names unique. */
static ba_status list_stories(const char *dir, entry_list *e, ba_error *err)
{
    DIR *d = opendir(dir);
    if (!d) return ba_fail(err, BA_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    ba_status rc = BA_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) BA_TRY(add_story_entry(dir, de->d_name, e, err), done);
    if (e->n > 1) qsort(e->v, e->n, sizeof *e->v, compare_entries);
    for (size_t i = 1; i < e->n; i++)
        if (strcmp(e->v[i].name, e->v[i - 1].name) == 0) {
            rc = ba_fail(err, BA_ERR_FORMAT, "%s: story '%s' is given twice (%s and %s)", dir,
                         e->v[i].name, e->v[i - 1].path, e->v[i].path);
            goto done;
        }
done:
    closedir(d);
    return rc;
}

static const story_entry *find_entry(const entry_list *e, const char *name)
{
    story_entry key = {(char *)name, NULL, BA_STIM_AUTO};
    return e->n ? bsearch(&key, e->v, e->n, sizeof *e->v, compare_entries) : NULL;
}

/* The entries to read, in order: all, or those named (each once). */
static ba_status select_stories(const char *dir, const entry_list *all, char *const *names,
                                size_t n_names, const story_entry ***selected, size_t *n,
                                ba_error *err)
{
    *selected = NULL;
    *n = 0;
    if (names && n_names == 0)
        return ba_fail(err, BA_ERR_USAGE, "%s: the list of stories to read is empty", dir);
    size_t count = names ? n_names : all->n;
    if (count == 0)
        return ba_fail(err, BA_ERR_FORMAT,
                       "%s: no stories (expected <story>/align.csv, <story>.TextGrid or "
                       "<story>.tsv)",
                       dir);
    const story_entry **sel = ba_calloc(count, sizeof *sel, "the selected stories", err);
    if (!sel) return BA_ERR_NOMEM;
    for (size_t i = 0; i < count; i++) {
        if (!names) {
            sel[i] = &all->v[i];
            continue;
        }
        sel[i] = find_entry(all, names[i]);
        if (!sel[i]) {
            ba_fail(err, BA_ERR_IO,
                    "%s: no story '%s' (looked for %s/%s/align.csv, %s.TextGrid, %s.tsv)", dir,
                    names[i], dir, names[i], names[i], names[i]);
            free(sel);
            return BA_ERR_IO;
        }
        for (size_t j = 0; j < i; j++)
            if (sel[j] == sel[i]) {
                free(sel);
                return ba_fail(err, BA_ERR_USAGE, "%s: story '%s' is asked for twice", dir,
                               names[i]);
            }
    }
    *selected = sel;
    *n = count;
    return BA_OK;
}

ba_status ba_story_dir_read_ex(const char *dir, char *const *names, size_t n_names,
                               ba_story **stories, size_t *n_stories,
                               ba_story_read_stats *stats, ba_error *err)
{
    *stories = NULL;
    *n_stories = 0;
    if (stats) memset(stats, 0, sizeof *stats);
    entry_list all = {0};
    const story_entry **sel = NULL;
    size_t n_sel = 0, n_read = 0;
    ba_story *out = NULL;
    ba_story_read_stats total = {0};
    ba_status rc = BA_OK;
    BA_TRY(list_stories(dir, &all, err), done);
    BA_TRY(select_stories(dir, &all, names, n_names, &sel, &n_sel, err), done);
    BA_ALLOC(out, n_sel, "the stories", done);
    for (; n_read < n_sel; n_read++) {
        ba_story_read_stats st;
        BA_TRY(ba_story_read_ex(sel[n_read]->path, sel[n_read]->format, sel[n_read]->name,
                                &out[n_read], &st, err),
               done);
        total.n_interpolated += st.n_interpolated;
        total.n_clamped += st.n_clamped;
        total.n_skipped += st.n_skipped;
    }
    *stories = out;
    *n_stories = n_sel;
    out = NULL;
    if (stats) *stats = total;
done:
    ba_story_array_free(out, n_read);
    free(sel);
    entry_list_free(&all);
    return rc;
}

ba_status ba_story_dir_read(const char *dir, char *const *names, size_t n_names,
                            ba_story **stories, size_t *n_stories, ba_error *err)
{
    return ba_story_dir_read_ex(dir, names, n_names, stories, n_stories, NULL, err);
}
