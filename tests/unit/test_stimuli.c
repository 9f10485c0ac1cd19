/* test_stimuli.c — the stimulus readers: Gentle align.csv (with the
 * interpolation of unaligned words), word tables (TSV/CSV), Praat TextGrid
 * (long and short formats, UTF-8 and UTF-16), story directories, bad input,
 * and the 26 real Narratives stories (checked against a numpy oracle). */
#define _GNU_SOURCE
#include "test_util.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "brainalign/io/stimuli.h"

#define assert_near(a, b, eps)                                                    \
    do {                                                                          \
        double a_ = (a), b_ = (b);                                                \
        if (!(fabs(a_ - b_) <= (eps)))                                            \
            fail_msg("%s = %.17g, expected %.17g (+-%g)", #a, a_, b_, (double)(eps)); \
    } while (0)

/* ---- helpers ------------------------------------------------------------ */

static char *path_in(const char *dir, const char *name)
{
    char *p = NULL;
    assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
    return p;
}

static char *write_text(const char *dir, const char *name, const char *text)
{
    char *p = path_in(dir, name);
    ba_test_write_file(p, text, strlen(text));
    return p;
}

static char *make_subdir(const char *dir, const char *name)
{
    char *p = path_in(dir, name);
    assert_int_equal(mkdir(p, 0700), 0);
    return p;
}

static char *fresh_dir(void)
{
    const char *d = ba_test_tmpdir();
    char *copy = strdup(d);
    assert_non_null(copy);
    return copy;
}

static void remove_tree(char *dir)
{
    ba_test_system("rm -rf '%s'", dir);
    free(dir);
}

static bool story_is_empty(const ba_story *s)
{
    return s->n_words == 0 && !s->words && !s->onset && !s->offset && s->name[0] == '\0';
}

/* Reading `path` fails with `code`, a message naming the path and holding
 * each of the (up to two) needles, and leaves the story empty. */
static void expect_failure(const char *path, ba_stimulus_format format, ba_status code,
                           const char *needle1, const char *needle2)
{
    ba_story s;
    ba_error err;
    ba_error_clear(&err);
    ba_status rc = ba_story_read(path, format, NULL, &s, &err);
    if (rc != code)
        fail_msg("%s: expected status %s, got %s: %s", path, ba_status_name(code),
                 ba_status_name(rc), err.message);
    if (!strstr(err.message, path)) fail_msg("message does not name %s: %s", path, err.message);
    if (needle1 && !strstr(err.message, needle1))
        fail_msg("message lacks '%s': %s", needle1, err.message);
    if (needle2 && !strstr(err.message, needle2))
        fail_msg("message lacks '%s': %s", needle2, err.message);
    assert_true(story_is_empty(&s));
}

/* Write `text` as file `name` in `dir` and expect reading it to fail. */
static void expect_text_failure(const char *dir, const char *name, ba_stimulus_format format,
                                const char *text, ba_status code, const char *needle1,
                                const char *needle2)
{
    char *p = write_text(dir, name, text);
    expect_failure(p, format, code, needle1, needle2);
    free(p);
}

static void read_ok(const char *path, ba_stimulus_format format, const char *name,
                    ba_story *s, ba_story_read_stats *st)
{
    ba_error err;
    ba_error_clear(&err);
    ba_status rc = ba_story_read_ex(path, format, name, s, st, &err);
    if (rc != BA_OK) fail_msg("%s: %s", path, err.message);
}

/* ---- Gentle align.csv ----------------------------------------------------- */

static void test_align_csv_quirks(void **state)
{
    (void)state;
    char *dir = fresh_dir();
    char *story_dir = make_subdir(dir, "quirks");
    /* BOM, CRLF, quoted fields (a comma, doubled quotes), blank lines,
     * a curly apostrophe, no newline at the end */
    char *p = write_text(story_dir, "align.csv",
                         "\xEF\xBB\xBF"
                         "I,i,15.09,15.17\r\n"
                         "\"Hello, world\",<unk>,15.2,15.5\r\n"
                         "\r\n"
                         "   \r\n"
                         "\"say \"\"hi\"\"\",say,15.6,15.9\r\n"
                         "it\xE2\x80\x99s, it's , 16.0 ,16.2");
    ba_story s;
    ba_story_read_stats st;
    read_ok(p, BA_STIM_AUTO, NULL, &s, &st);
    assert_string_equal(s.name, "quirks");
    assert_int_equal(s.n_words, 4);
    assert_string_equal(s.words[0], "I");
    assert_string_equal(s.words[1], "Hello, world");
    assert_string_equal(s.words[2], "say \"hi\"");
    assert_string_equal(s.words[3], "it\xE2\x80\x99s");
    assert_near(s.onset[0], 15.09, 0);
    assert_near(s.offset[1], 15.5, 0);
    assert_near(s.onset[3], 16.0, 0);
    assert_near(s.offset[3], 16.2, 0);
    assert_int_equal(st.n_interpolated, 0);
    assert_int_equal(st.n_clamped, 0);
    ba_story_free(&s);
    assert_true(story_is_empty(&s));
    free(p);

    /* old-Mac CR line ends, and a header line that is skipped */
    p = write_text(story_dir, "cr.csv", "word,aligned_word,onset,offset\ra,a,1,2\rb,b,3,4\r");
    read_ok(p, BA_STIM_ALIGN_CSV, "cr", &s, NULL);
    assert_int_equal(s.n_words, 2);
    assert_string_equal(s.words[1], "b");
    assert_near(s.onset[1], 3.0, 0);
    ba_story_free(&s);
    free(p);
    free(story_dir);
    remove_tree(dir);
}

/* The interpolation rule on a crafted story whose answer is worked out by
 * hand (see stimuli.h): linear in the word index between aligned
 * neighbours, holding the nearest value at both ends, column by column. */
static void test_align_csv_interpolation(void **state)
{
    (void)state;
    char *dir = fresh_dir();
    char *p = write_text(dir, "align.csv",
                         "w0,,,\n"            /* leading gap: hold word 1     */
                         "w1,w1,1.0,1.5\n"
                         "w2,,,\n"            /* 1/3 of the way from 1 to 4   */
                         "w3,,,\n"            /* 2/3                          */
                         "w4,w4,4.0,4.3\n"
                         "w5,w5,5.0,\n"       /* offset only: between 4.3, 6.2 */
                         "w6,w6,6.0,6.2\n"
                         "w7,w7,,6.9\n"       /* onset 7.0 > offset 6.9: raise */
                         "w8,w8,8.0,8.5\n"
                         "w9,,,\n"            /* trailing gap: hold word 8    */
                         "w10,,,\n");
    ba_story s;
    ba_story_read_stats st;
    read_ok(p, BA_STIM_ALIGN_CSV, "crafted", &s, &st);
    const double onset[] = {1.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 8.0, 8.0};
    const double offset[] = {1.5, 1.5, 1.5 + 2.8 / 3, 1.5 + 2 * 2.8 / 3, 4.3, 5.25,
                             6.2, 7.0, 8.5, 8.5,      8.5};
    assert_int_equal(s.n_words, 11);
    for (size_t i = 0; i < 11; i++) {
        assert_near(s.onset[i], onset[i], 1e-12);
        assert_near(s.offset[i], offset[i], 1e-12);
    }
    assert_string_equal(s.words[10], "w10");
    assert_int_equal(st.n_interpolated, 7);
    assert_int_equal(st.n_clamped, 0);
    ba_story_free(&s);
    free(p);
    remove_tree(dir);
}

/* Known onsets out of order: file order is kept, the onset is raised to
 * the previous one (its offset with it) and counted, not an error. */
static void test_align_csv_clamps_decreasing_onsets(void **state)
{
    (void)state;
    char *dir = fresh_dir();
    char *p = write_text(dir, "align.csv", "a,a,2.0,2.5\nb,b,1.9,1.95\nc,,,\nd,d,3.0,3.5\n");
    ba_story s;
    ba_story_read_stats st;
    read_ok(p, BA_STIM_ALIGN_CSV, NULL, &s, &st);
    assert_int_equal(s.n_words, 4);
    assert_string_equal(s.words[1], "b");
    assert_near(s.onset[1], 2.0, 0);
    assert_near(s.offset[1], 2.0, 0);
    /* c is interpolated from the file's values (1.9 and 3.0) */
    assert_near(s.onset[2], 2.45, 1e-12);
    assert_near(s.offset[2], 2.725, 1e-12);
    assert_int_equal(st.n_clamped, 1);
    assert_int_equal(st.n_interpolated, 1);
    for (size_t i = 1; i < s.n_words; i++) assert_true(s.onset[i] >= s.onset[i - 1]);
    ba_story_free(&s);

    /* an offset below its onset within the tolerance is rounding */
    char *q = write_text(dir, "tiny.csv", "a,a,2.0,1.99995\n");
    read_ok(q, BA_STIM_ALIGN_CSV, NULL, &s, NULL);
    assert_near(s.offset[0], 2.0, 0);
    ba_story_free(&s);
    free(q);
    free(p);
    remove_tree(dir);
}

static void test_align_csv_errors(void **state)
{
    (void)state;
    char *dir = fresh_dir();
    const ba_stimulus_format F = BA_STIM_ALIGN_CSV;
    char *missing = path_in(dir, "nowhere/align.csv");
    expect_failure(missing, BA_STIM_AUTO, BA_ERR_IO, "cannot open", NULL);
    free(missing);
    /* a directory: refused before it is opened */
    expect_failure(dir, F, BA_ERR_IO, "is a directory, expected a regular file", NULL);
    expect_text_failure(dir, "empty.csv", F, "", BA_ERR_FORMAT, "no words", NULL);
    expect_text_failure(dir, "blank.csv", F, "\n  \n\r\n", BA_ERR_FORMAT, "no words", NULL);
    expect_text_failure(dir, "nan.csv", F, "a,a,1.0,1.2\nb,b,abc,1.5\n", BA_ERR_FORMAT,
                        "nan.csv:2:", "onset 'abc' is not a number");
    expect_text_failure(dir, "inf.csv", F, "a,a,1e999,1.2\n", BA_ERR_VALUE, "inf.csv:1:",
                        "not finite");
    expect_text_failure(dir, "infword.csv", F, "a,a,inf,1.2\n", BA_ERR_FORMAT, ":1:",
                        "not a number");
    expect_text_failure(dir, "hex.csv", F, "a,a,0x10,1.2\n", BA_ERR_FORMAT, ":1:",
                        "not a number");
    expect_text_failure(dir, "junk.csv", F, "a,a,1.0s,1.2\n", BA_ERR_FORMAT, ":1:",
                        "not a number");
    expect_text_failure(dir, "neg.csv", F, "a,a,-1,1.2\n", BA_ERR_VALUE, ":1:", "negative");
    expect_text_failure(dir, "order.csv", F, "a,a,1.0,1.2\nb,b,2.0,1.0\n", BA_ERR_VALUE,
                        "order.csv:2:", "before onset");
    expect_text_failure(dir, "cols3.csv", F, "a,a,1,2\n\nb,b,3\n", BA_ERR_FORMAT,
                        "cols3.csv:3:", "found 3");
    expect_text_failure(dir, "cols5.csv", F, "a,a,1,2,x\n", BA_ERR_FORMAT, "cols5.csv:1:",
                        "found 5");
    expect_text_failure(dir, "trunc.csv", F, "a,a,1.0,1.2\nbe", BA_ERR_FORMAT, "trunc.csv:2:",
                        "truncated");
    expect_text_failure(dir, "quote.csv", F, "a,a,1,2\n\"abc,a,1,2\n", BA_ERR_FORMAT,
                        "quote.csv:2:", "quote not closed");
    expect_text_failure(dir, "afterquote.csv", F, "\"ab\"c,a,1,2\n", BA_ERR_FORMAT, ":1:",
                        "after the closing quote");
    expect_text_failure(dir, "unaligned.csv", F, "a,,,\nb,,,\n", BA_ERR_VALUE,
                        "unaligned.csv", "nothing to interpolate");
    expect_text_failure(dir, "latin1.csv", F, "ok,ok,0,1\ncaf\xE9,cafe,1,2\n", BA_ERR_FORMAT,
                        "latin1.csv:2:", "UTF-8");
    expect_text_failure(dir, "noword.csv", F, ",a,1,2\n", BA_ERR_FORMAT, ":1:", "empty word");
    char *p = path_in(dir, "utf16nobom.csv");
    ba_test_write_file(p, "a\0,\0a\0,\0\x31\0,\0\x32\0\n\0", 16);
    expect_failure(p, F, BA_ERR_FORMAT, "NUL byte", "UTF-16");
    free(p);
    remove_tree(dir);
}

/* ---- word tables ---------------------------------------------------------- */

static void test_words_tsv(void **state)
{
    (void)state;
    char *dir = fresh_dir();
    /* tab-separated, columns in another order, an extra column, CRLF */
    char *p = write_text(dir, "story1.tsv",
                         "Onset\tspeaker\tWORD\toffset\r\n"
                         "0.5\tA\tHello\t0.9\r\n"
                         "\r\n"
                         "1.0\tA\t\"quoted\ttab\"\t1.4\r\n"
                         "1.0\tB\twörld\t1.6");
    ba_story s;
    ba_story_read_stats st;
    read_ok(p, BA_STIM_AUTO, NULL, &s, &st);
    assert_string_equal(s.name, "story1");
    assert_int_equal(s.n_words, 3);
    assert_string_equal(s.words[0], "Hello");
    assert_string_equal(s.words[1], "quoted\ttab");
    assert_string_equal(s.words[2], "w\xC3\xB6rld");
    assert_near(s.onset[1], 1.0, 0);
    assert_near(s.offset[2], 1.6, 0);
    assert_int_equal(st.n_clamped, 0);
    ba_story_free(&s);
    free(p);

    /* comma-separated with quoting, an onset out of order within tolerance */
    p = write_text(dir, "story2.csv",
                   "word,onset,offset\n"
                   "\"Hi, there\",0.1,0.3\n"
                   "you,0.3,0.5\n"
                   "all,0.29995,0.6\n");
    read_ok(p, BA_STIM_AUTO, "given", &s, &st);
    assert_string_equal(s.name, "given");
    assert_int_equal(s.n_words, 3);
    assert_string_equal(s.words[0], "Hi, there");
    assert_near(s.onset[2], 0.3, 0);
    assert_int_equal(st.n_clamped, 1);
    ba_story_free(&s);
    free(p);
    remove_tree(dir);
}

static void test_words_tsv_errors(void **state)
{
    (void)state;
    char *dir = fresh_dir();
    const ba_stimulus_format F = BA_STIM_WORDS_TSV;
    expect_text_failure(dir, "nocol.tsv", F, "word\tonset\tend\na\t1\t2\n", BA_ERR_FORMAT,
                        "nocol.tsv:1:", "no 'offset' column");
    expect_text_failure(dir, "gentle.csv", F, "a,a,1.0,1.2\n", BA_ERR_FORMAT, "gentle.csv:1:",
                        "align-csv");
    expect_text_failure(dir, "dup.tsv", F, "word\tonset\toffset\tonset\na\t1\t2\t3\n",
                        BA_ERR_FORMAT, "dup.tsv:1:", "two 'onset' columns");
    expect_text_failure(dir, "order.tsv", F, "word\tonset\toffset\na\t1.0\t1.2\nb\t0.5\t0.7\n",
                        BA_ERR_VALUE, "order.tsv:3:", "time order");
    expect_text_failure(dir, "cols.tsv", F, "word\tonset\toffset\na\t1.0\t1.2\nb\t2.0\n",
                        BA_ERR_FORMAT, "cols.tsv:3:", "expected 3 tab-separated columns");
    expect_text_failure(dir, "emptyonset.tsv", F, "word\tonset\toffset\na\t\t1.2\n",
                        BA_ERR_FORMAT, "emptyonset.tsv:2:", "onset is empty");
    expect_text_failure(dir, "nonnum.csv", F, "word,onset,offset\na,1.0,soon\n", BA_ERR_FORMAT,
                        "nonnum.csv:2:", "offset 'soon' is not a number");
    expect_text_failure(dir, "inverted.tsv", F, "word\tonset\toffset\na\t1.0\t0.5\n",
                        BA_ERR_VALUE, "inverted.tsv:2:", "before onset");
    expect_text_failure(dir, "headeronly.tsv", F, "word\tonset\toffset\n\n", BA_ERR_FORMAT,
                        "headeronly.tsv", "no words");
    expect_text_failure(dir, "empty.tsv", F, "", BA_ERR_FORMAT, "empty.tsv", "empty file");
    expect_text_failure(dir, "noword.tsv", F, "word\tonset\toffset\n\t1\t2\n", BA_ERR_FORMAT,
                        "noword.tsv:2:", "empty word");
    remove_tree(dir);
}

/* ---- Praat TextGrid ------------------------------------------------------- */

typedef struct {
    double xmin, xmax; /* a point has its time in xmin */
    const char *text;
} tg_item;

typedef struct {
    const char *klass, *name;
    size_t n;
    const tg_item *items;
} tg_tier_spec;

static void put_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* A TextGrid in Praat's long or short text format (as Praat writes them). */
static char *textgrid_text(bool long_format, double xmax, const tg_tier_spec *tiers,
                           size_t n_tiers)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    assert_non_null(f);
    fprintf(f, "File type = \"ooTextFile\"\nObject class = \"TextGrid\"\n\n");
    if (long_format)
        fprintf(f, "xmin = 0 \nxmax = %.17g \ntiers? <exists> \nsize = %zu \nitem []: \n", xmax,
                n_tiers);
    else
        fprintf(f, "0\n%.17g\n<exists>\n! a comment, as Praat allows\n%zu\n", xmax, n_tiers);
    for (size_t t = 0; t < n_tiers; t++) {
        const tg_tier_spec *T = &tiers[t];
        bool points = strcmp(T->klass, "TextTier") == 0;
        if (long_format) {
            fprintf(f, "    item [%zu]:\n        class = ", t + 1);
            put_quoted(f, T->klass);
            fprintf(f, " \n        name = ");
            put_quoted(f, T->name);
            fprintf(f, " \n        xmin = 0 \n        xmax = %.17g \n        %s: size = %zu \n",
                    xmax, points ? "points" : "intervals", T->n);
        } else {
            put_quoted(f, T->klass);
            fputc('\n', f);
            put_quoted(f, T->name);
            fprintf(f, "\n0\n%.17g\n%zu\n", xmax, T->n);
        }
        for (size_t i = 0; i < T->n; i++) {
            const tg_item *it = &T->items[i];
            if (long_format && points)
                fprintf(f, "        points [%zu]:\n            number = %.17g \n"
                           "            mark = ", i + 1, it->xmin);
            else if (long_format)
                fprintf(f, "        intervals [%zu]:\n            xmin = %.17g \n"
                           "            xmax = %.17g \n            text = ",
                        i + 1, it->xmin, it->xmax);
            else if (points)
                fprintf(f, "%.17g\n", it->xmin);
            else
                fprintf(f, "%.17g\n%.17g\n", it->xmin, it->xmax);
            put_quoted(f, it->text);
            fprintf(f, long_format ? " \n" : "\n");
        }
    }
    fclose(f);
    return buf;
}

/* UTF-8 to UTF-16 with a BOM, as Praat writes it. */
static unsigned char *utf16_with_bom(const char *utf8, bool big_endian, size_t *len)
{
    size_t n = strlen(utf8);
    unsigned char *out = malloc(4 * n + 2);
    assert_non_null(out);
    size_t k = 0;
#define PUT16(u)                                                                 \
    do {                                                                         \
        unsigned v_ = (u);                                                       \
        out[k++] = (unsigned char)(big_endian ? v_ >> 8 : v_ & 0xFF);            \
        out[k++] = (unsigned char)(big_endian ? v_ & 0xFF : v_ >> 8);            \
    } while (0)
    PUT16(0xFEFF);
    const unsigned char *s = (const unsigned char *)utf8;
    while (*s) {
        unsigned cp;
        if (*s < 0x80) cp = *s++;
        else if ((*s & 0xE0) == 0xC0) { cp = (s[0] & 0x1Fu) << 6 | (s[1] & 0x3F); s += 2; }
        else if ((*s & 0xF0) == 0xE0) {
            cp = (s[0] & 0x0Fu) << 12 | (s[1] & 0x3Fu) << 6 | (s[2] & 0x3F);
            s += 3;
        } else {
            cp = (s[0] & 0x07u) << 18 | (s[1] & 0x3Fu) << 12 | (s[2] & 0x3Fu) << 6 | (s[3] & 0x3F);
            s += 4;
        }
        if (cp >= 0x10000) {
            PUT16(0xD800 + ((cp - 0x10000) >> 10));
            PUT16(0xDC00 + ((cp - 0x10000) & 0x3FF));
        } else {
            PUT16(cp);
        }
    }
#undef PUT16
    *len = k;
    return out;
}

static const tg_item PHONES[] = {{0, 1, "HH"}, {1, 3.5, "AH"}};
static const tg_item EVENTS[] = {{1.25, 0, "beep"}};
static const tg_item WORDS[] = {
    {0, 0.3, ""},           {0.3, 0.8, "hello"},     {0.8, 1.0, "sp"},
    {1.0, 1.6, " caf\xC3\xA9 "}, {1.6, 2.0, "{SL}"},      {2.0, 2.9, "say \"hi\""},
    {2.9, 3.5, "it\xE2\x80\x99s \xF0\x9F\x98\x80"}};
static const tg_tier_spec GRID[] = {{"IntervalTier", "phones", 2, PHONES},
                                    {"TextTier", "words", 1, EVENTS}, /* not an IntervalTier */
                                    {"IntervalTier", "Words", 7, WORDS}};

static void check_grid_words(const ba_story *s, const ba_story_read_stats *st)
{
    assert_int_equal(s->n_words, 4);
    assert_string_equal(s->words[0], "hello");
    assert_string_equal(s->words[1], "caf\xC3\xA9");
    assert_string_equal(s->words[2], "say \"hi\"");
    assert_string_equal(s->words[3], "it\xE2\x80\x99s \xF0\x9F\x98\x80");
    const double on[] = {0.3, 1.0, 2.0, 2.9}, off[] = {0.8, 1.6, 2.9, 3.5};
    for (size_t i = 0; i < 4; i++) {
        assert_near(s->onset[i], on[i], 0);
        assert_near(s->offset[i], off[i], 0);
    }
    assert_int_equal(st->n_skipped, 3);
    assert_int_equal(st->n_interpolated, 0);
}

static void test_textgrid_long_and_short(void **state)
{
    (void)state;
    char *dir = fresh_dir();
    for (int fmt = 0; fmt < 2; fmt++) {
        char *text = textgrid_text(fmt == 0, 3.5, GRID, 3);
        char *p = write_text(dir, fmt == 0 ? "long.TextGrid" : "short.textgrid", text);
        ba_story s;
        ba_story_read_stats st;
        read_ok(p, BA_STIM_AUTO, NULL, &s, &st);
        assert_string_equal(s.name, fmt == 0 ? "long" : "short");
        check_grid_words(&s, &st);
        ba_story_free(&s);
        free(p);
        free(text);
    }
    remove_tree(dir);
}

static void test_textgrid_utf16(void **state)
{
    (void)state;
    char *dir = fresh_dir();
    for (int variant = 0; variant < 4; variant++) {
        bool long_format = variant < 2, big_endian = variant % 2 == 0;
        char *text = textgrid_text(long_format, 3.5, GRID, 3);
        size_t len;
        unsigned char *bytes = utf16_with_bom(text, big_endian, &len);
        char *p = path_in(dir, "utf16.TextGrid");
        ba_test_write_file(p, bytes, len);
        ba_story s;
        ba_story_read_stats st;
        read_ok(p, BA_STIM_AUTO, NULL, &s, &st);
        check_grid_words(&s, &st);
        ba_story_free(&s);
        if (variant == 0) { /* an odd byte count: cut off */
            ba_test_write_file(p, bytes, len - 1);
            expect_failure(p, BA_STIM_TEXTGRID, BA_ERR_FORMAT, "odd number of bytes", NULL);
        }
        if (variant == 1) { /* "a", a high surrogate without its low half, "b" */
            ba_test_write_file(p, "\xFF\xFE" "a\0" "\x00\xD8" "b\0", 8);
            expect_failure(p, BA_STIM_TEXTGRID, BA_ERR_FORMAT, "unpaired surrogate", NULL);
        }
        free(p);
        free(bytes);
        free(text);
    }
    remove_tree(dir);
}

static void test_textgrid_tier_choice(void **state)
{
    (void)state;
    char *dir = fresh_dir();
    /* no tier named words: the first IntervalTier, after a TextTier */
    static const tg_item A[] = {{0, 1, "alpha"}, {1, 2, "sil"}, {2, 3, "beta"}};
    static const tg_item B[] = {{0, 3, "other"}};
    const tg_tier_spec tiers[] = {{"TextTier", "events", 1, EVENTS},
                                  {"IntervalTier", "transcript", 3, A},
                                  {"IntervalTier", "speaker", 1, B}};
    char *text = textgrid_text(true, 3, tiers, 3);
    char *p = write_text(dir, "choice.TextGrid", text);
    ba_story s;
    ba_story_read_stats st;
    read_ok(p, BA_STIM_TEXTGRID, NULL, &s, &st);
    assert_int_equal(s.n_words, 2);
    assert_string_equal(s.words[0], "alpha");
    assert_string_equal(s.words[1], "beta");
    assert_int_equal(st.n_skipped, 1);
    ba_story_free(&s);
    free(p);
    free(text);

    /* "word" (any case) after other tiers wins */
    const tg_tier_spec tiers2[] = {{"IntervalTier", "speaker", 1, B},
                                   {"IntervalTier", " WORD ", 3, A}};
    text = textgrid_text(false, 3, tiers2, 2);
    p = write_text(dir, "choice2.TextGrid", text);
    read_ok(p, BA_STIM_TEXTGRID, NULL, &s, &st);
    assert_int_equal(s.n_words, 2);
    assert_string_equal(s.words[1], "beta");
    ba_story_free(&s);
    free(p);
    free(text);
    remove_tree(dir);
}

/* Line of the first occurrence of `needle` in `text`, as "name:LINE:". */
static char *line_tag(const char *name, const char *text, const char *needle)
{
    const char *hit = strstr(text, needle);
    assert_non_null(hit);
    size_t line = 1;
    for (const char *c = text; c < hit; c++) line += *c == '\n';
    char *tag = NULL;
    assert_true(asprintf(&tag, "%s:%zu:", name, line) > 0);
    return tag;
}

static void test_textgrid_errors(void **state)
{
    (void)state;
    char *dir = fresh_dir();
    const ba_stimulus_format F = BA_STIM_TEXTGRID;
    char *text = textgrid_text(true, 3.5, GRID, 3);

    /* truncated at several places: never a crash, always "truncated" */
    size_t len = strlen(text);
    for (size_t cut = len / 10; cut < len - 5; cut += len / 7) {
        char *part = strndup(text, cut);
        char *p = write_text(dir, "cut.TextGrid", part);
        expect_failure(p, F, BA_ERR_FORMAT, "truncated", NULL);
        free(p);
        free(part);
    }

    static const tg_item BACKWARDS[] = {{0, 1, "a"}, {2, 3, "b"}, {1.5, 2, "c"}};
    static const tg_item INVERTED[] = {{0, 1, "a"}, {2, 1.5, "b"}};
    static const tg_item SILENT[] = {{0, 1, ""}, {1, 2, "SIL"}, {2, 3, "sp"}};
    const tg_tier_spec t_back[] = {{"IntervalTier", "words", 3, BACKWARDS}};
    const tg_tier_spec t_inv[] = {{"IntervalTier", "words", 2, INVERTED}};
    const tg_tier_spec t_sil[] = {{"IntervalTier", "words", 3, SILENT}};
    const tg_tier_spec t_pts[] = {{"TextTier", "words", 1, EVENTS}};
    const tg_tier_spec t_bad[] = {{"PitchTier", "words", 1, EVENTS}};
    char *g;

    g = textgrid_text(true, 3, t_back, 1);
    char *tag = line_tag("back.TextGrid", g, "xmin = 1.5");
    expect_text_failure(dir, "back.TextGrid", F, g, BA_ERR_VALUE, tag, "time order");
    free(tag);
    free(g);
    g = textgrid_text(false, 3, t_inv, 1);
    expect_text_failure(dir, "inv.TextGrid", F, g, BA_ERR_VALUE, "interval 2 of tier 'words'",
                        "before it starts");
    free(g);
    g = textgrid_text(true, 3, t_sil, 1);
    expect_text_failure(dir, "sil.TextGrid", F, g, BA_ERR_FORMAT, "has no words", NULL);
    free(g);
    g = textgrid_text(true, 3, t_pts, 1);
    expect_text_failure(dir, "pts.TextGrid", F, g, BA_ERR_FORMAT, "no IntervalTier", NULL);
    free(g);
    g = textgrid_text(false, 3, t_bad, 1);
    expect_text_failure(dir, "cls.TextGrid", F, g, BA_ERR_FORMAT, "class 'PitchTier'", NULL);
    free(g);

    /* a malformed number, reported at its line */
    g = textgrid_text(true, 3, t_inv, 1);
    char *at = strstr(g, "xmax = 1.5");
    assert_non_null(at);
    at[7] = 'q'; /* "xmax = q.5" is a label, so the text string comes too early */
    expect_text_failure(dir, "q.TextGrid", F, g, BA_ERR_FORMAT, "expected xmax of interval 2",
                        "found a string");
    at[7] = '1';
    at[8] = 'x';
    tag = line_tag("x.TextGrid", g, "xmax = 1x5");
    expect_text_failure(dir, "x.TextGrid", F, g, BA_ERR_FORMAT, tag, "malformed number '1x5'");
    free(tag);
    free(g);

    expect_text_failure(dir, "bin.TextGrid", F, "ooBinaryFile\x08TextGrid", BA_ERR_FORMAT,
                        "binary TextGrid", NULL);
    expect_text_failure(dir, "pitch.TextGrid", F,
                        "File type = \"ooTextFile\"\nObject class = \"PitchTier\"\n",
                        BA_ERR_FORMAT, "pitch.TextGrid:2:", "expected 'TextGrid'");
    expect_text_failure(dir, "absent.TextGrid", F,
                        "File type = \"ooTextFile\"\nObject class = \"TextGrid\"\n0\n1\n<absent>\n",
                        BA_ERR_FORMAT, "absent.TextGrid:5:", "no tiers");
    expect_text_failure(dir, "open.TextGrid", F,
                        "File type = \"ooTextFile\"\nObject class = \"TextGrid\"\n0\n1\n<exists\n",
                        BA_ERR_FORMAT, "open.TextGrid:5:", "'<'");
    expect_text_failure(dir, "huge.TextGrid", F,
                        "File type = \"ooTextFile\"\nObject class = \"TextGrid\"\n0\n1\n<exists>\n1\n"
                        "\"IntervalTier\"\n\"words\"\n0\n1\n999999999\n0 1\"a\"\n",
                        BA_ERR_FORMAT, "huge.TextGrid:11:", "claims 999999999 entries");
    expect_text_failure(dir, "nothing.TextGrid", F, "", BA_ERR_FORMAT, "truncated", NULL);
    expect_text_failure(dir, "latin1.TextGrid", F,
                        "File type = \"ooTextFile\"\nObject class = \"TextGrid\"\n0\n1\n<exists>\n1\n"
                        "\"IntervalTier\"\n\"words\"\n0\n1\n1\n0\n1\n\"caf\xE9\"\n",
                        BA_ERR_FORMAT, "latin1.TextGrid:12:", "UTF-8");
    free(text);
    remove_tree(dir);
}

/* ---- names, formats ------------------------------------------------------- */

static void test_names_and_formats(void **state)
{
    (void)state;
    char *dir = fresh_dir();
    ba_story s;
    ba_error err;
    /* sniffed as a TextGrid whatever the name */
    char *text = textgrid_text(false, 3.5, GRID, 3);
    char *p = write_text(dir, "grid.dat", text);
    ba_story_read_stats st;
    read_ok(p, BA_STIM_AUTO, NULL, &s, &st);
    assert_string_equal(s.name, "grid");
    check_grid_words(&s, &st);
    ba_story_free(&s);
    free(p);
    free(text);

    expect_text_failure(dir, "words.dat", BA_STIM_AUTO, "word,onset,offset\na,1,2\n",
                        BA_ERR_USAGE, "cannot tell the stimulus format", NULL);
    p = write_text(dir, "ok.tsv", "word\tonset\toffset\na\t1\t2\n");
    char long_name[300];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    ba_error_clear(&err);
    assert_int_equal(ba_story_read(p, BA_STIM_AUTO, long_name, &s, &err), BA_ERR_USAGE);
    assert_non_null(strstr(err.message, "at most 255"));
    assert_true(story_is_empty(&s));
    assert_int_equal(ba_story_read(p, BA_STIM_AUTO, "a/b", &s, &err), BA_ERR_USAGE);
    assert_int_equal(ba_story_read(p, (ba_stimulus_format)42, NULL, &s, &err), BA_ERR_USAGE);
    free(p);

    ba_stimulus_format f = BA_STIM_AUTO;
    assert_int_equal(ba_stimulus_format_parse("TextGrid", &f, &err), BA_OK);
    assert_int_equal(f, BA_STIM_TEXTGRID);
    assert_int_equal(ba_stimulus_format_parse("align-csv", &f, &err), BA_OK);
    assert_int_equal(f, BA_STIM_ALIGN_CSV);
    assert_int_equal(ba_stimulus_format_parse("tsv", &f, &err), BA_OK);
    assert_int_equal(f, BA_STIM_WORDS_TSV);
    assert_int_equal(ba_stimulus_format_parse("xml", &f, &err), BA_ERR_USAGE);
    assert_non_null(strstr(err.message, "'xml'"));

    /* freeing is safe on an empty story, twice, and on NULL */
    memset(&s, 0, sizeof s);
    ba_story_free(&s);
    ba_story_free(&s);
    ba_story_free(NULL);
    ba_story_array_free(NULL, 3);
    remove_tree(dir);
}

/* ---- directories ---------------------------------------------------------- */

static void test_story_dir(void **state)
{
    (void)state;
    char *dir = fresh_dir();
    char *b = make_subdir(dir, "b");
    free(write_text(b, "align.csv", "x,x,0.5,0.7\ny,,,\nz,z,1.0,1.5\n"));
    char *text = textgrid_text(true, 3.5, GRID, 3);
    free(write_text(dir, "a.TextGrid", text));
    free(write_text(dir, "c.TSV", "word\tonset\toffset\nc1\t0\t1\nc2\t1\t2\n"));
    free(write_text(dir, ".hidden.tsv", "not read"));
    free(write_text(dir, "notes.txt", "not a story"));
    free(make_subdir(dir, "emptydir"));

    ba_story *stories = NULL;
    size_t n = 0;
    ba_story_read_stats st;
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(ba_story_dir_read_ex(dir, NULL, 0, &stories, &n, &st, &err), BA_OK);
    assert_int_equal(n, 3);
    assert_string_equal(stories[0].name, "a");
    assert_string_equal(stories[1].name, "b");
    assert_string_equal(stories[2].name, "c");
    assert_int_equal(stories[0].n_words, 4);
    assert_int_equal(stories[1].n_words, 3);
    assert_near(stories[1].onset[1], 0.75, 1e-12);
    assert_int_equal(stories[2].n_words, 2);
    assert_int_equal(st.n_interpolated, 1);
    assert_int_equal(st.n_skipped, 3);
    ba_story_array_free(stories, n);

    char *pick[] = {"c", "a"};
    assert_int_equal(ba_story_dir_read(dir, pick, 2, &stories, &n, &err), BA_OK);
    assert_int_equal(n, 2);
    assert_string_equal(stories[0].name, "c");
    assert_string_equal(stories[1].name, "a");
    ba_story_array_free(stories, n);

    char *missing[] = {"a", "zzz"};
    assert_int_equal(ba_story_dir_read(dir, missing, 2, &stories, &n, &err), BA_ERR_IO);
    assert_non_null(strstr(err.message, "no story 'zzz'"));
    assert_null(stories);
    assert_int_equal(n, 0);
    char *twice[] = {"b", "b"};
    assert_int_equal(ba_story_dir_read(dir, twice, 2, &stories, &n, &err), BA_ERR_USAGE);
    assert_non_null(strstr(err.message, "'b' is asked for twice"));
    assert_int_equal(ba_story_dir_read(dir, twice, 0, &stories, &n, &err), BA_ERR_USAGE);

    /* a broken story: the error names its file, nothing is returned */
    char *bad = write_text(dir, "d.tsv", "word\tonset\toffset\nd\t2\t1\n");
    assert_int_equal(ba_story_dir_read(dir, NULL, 0, &stories, &n, &err), BA_ERR_VALUE);
    assert_non_null(strstr(err.message, "d.tsv:2:"));
    assert_null(stories);
    assert_int_equal(n, 0);
    remove(bad);
    free(bad);

    /* one story twice */
    char *dup = write_text(dir, "b.tsv", "word\tonset\toffset\nb\t0\t1\n");
    assert_int_equal(ba_story_dir_read(dir, NULL, 0, &stories, &n, &err), BA_ERR_FORMAT);
    assert_non_null(strstr(err.message, "story 'b' is given twice"));
    remove(dup);
    free(dup);

    char *nowhere = path_in(dir, "nowhere");
    assert_int_equal(ba_story_dir_read(nowhere, NULL, 0, &stories, &n, &err), BA_ERR_IO);
    assert_non_null(strstr(err.message, nowhere));
    free(nowhere);
    char *empty = path_in(dir, "emptydir");
    assert_int_equal(ba_story_dir_read(empty, NULL, 0, &stories, &n, &err), BA_ERR_FORMAT);
    assert_non_null(strstr(err.message, "no stories"));
    free(empty);
    free(text);
    free(b);
    remove_tree(dir);
}

/* ---- the real Narratives stimuli ------------------------------------------ */

static const char *const NARRATIVES[] = {
    "21styear",         "bigbang",          "black",         "bronx",        "forgot",
    "friends",          "himym",            "lucy",          "merlin",       "milkywayoriginal",
    "milkywaysynonyms", "milkywayvodka",    "notthefallintact", "pieman",    "piemanpni",
    "prettymouth",      "santa",            "seinfeld",      "shame",        "shapesphysical",
    "shapessocial",     "sherlock",         "slumlordreach", "tunnel",       "upintheair",
    "vinny"};

static void read_narratives(ba_story **stories, size_t *n, ba_story_read_stats *st)
{
    const char *dir = ba_test_data_path("narratives/stimuli");
    ba_error err;
    ba_error_clear(&err);
    if (ba_story_dir_read_ex(dir, NULL, 0, stories, n, st, &err) != BA_OK)
        fail_msg("%s", err.message);
}

static void test_real_narratives(void **state)
{
    (void)state;
    ba_story *stories;
    size_t n;
    ba_story_read_stats st;
    read_narratives(&stories, &n, &st);
    assert_int_equal(n, 26);
    size_t total = 0;
    for (size_t k = 0; k < n; k++) {
        const ba_story *s = &stories[k];
        assert_string_equal(s->name, NARRATIVES[k]);
        assert_true(s->n_words > 400);
        total += s->n_words;
        for (size_t i = 0; i < s->n_words; i++) {
            if (!isfinite(s->onset[i]) || !isfinite(s->offset[i]) || s->offset[i] < s->onset[i])
                fail_msg("%s word %zu: onset %g offset %g", s->name, i, s->onset[i],
                         s->offset[i]);
            if (i > 0 && s->onset[i] < s->onset[i - 1])
                fail_msg("%s word %zu: onset %g < previous %g", s->name, i, s->onset[i],
                         s->onset[i - 1]);
            assert_true(s->words[i][0] != '\0');
        }
    }
    assert_int_equal(total, 42989);
    assert_int_equal(st.n_interpolated, 789); /* rows with empty onset/offset */
    assert_int_equal(st.n_clamped, 0);        /* aligned onsets are in order */
    /* pieman starts "I began my illustrious career" at 15.089999 s */
    const ba_story *pieman = &stories[13];
    assert_string_equal(pieman->words[0], "I");
    assert_near(pieman->onset[0], 15.089999, 0);
    assert_string_equal(pieman->words[3], "illustrious");
    /* 21styear lines 16-17 ("of", "La") were not aligned: between 15 and 18 */
    const ba_story *y21 = &stories[0];
    assert_string_equal(y21->words[15], "of");
    assert_string_equal(y21->words[16], "La");
    assert_true(y21->onset[14] < y21->onset[15] && y21->onset[15] < y21->onset[16] &&
                y21->onset[16] < y21->onset[17]);
    ba_story_array_free(stories, n);

    /* selected by name, in the order asked */
    char *pick[] = {"vinny", "pieman"};
    ba_error err;
    assert_int_equal(ba_story_dir_read(ba_test_data_path("narratives/stimuli"), pick, 2,
                                       &stories, &n, &err), BA_OK);
    assert_int_equal(n, 2);
    assert_string_equal(stories[0].name, "vinny");
    assert_string_equal(stories[1].name, "pieman");
    assert_int_equal(stories[1].n_words, 957);
    ba_story_array_free(stories, n);
}

static void dump_stories(const char *path, const ba_story *stories, size_t n,
                         size_t perturb_story, size_t perturb_word)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t k = 0; k < n; k++)
        for (size_t i = 0; i < stories[k].n_words; i++) {
            double nudge = k == perturb_story && i == perturb_word ? 1e-6 : 0.0;
            fprintf(f, "%s\t%zu\t%s\t%.17g\t%.17g\n", stories[k].name, i,
                    stories[k].words[i], stories[k].onset[i] + nudge, stories[k].offset[i]);
        }
    assert_int_equal(fclose(f), 0);
}

/* Independent check of every word and time of the 26 stories: Python's csv
 * module and numpy.interp (tests/oracle/stimuli_interp.py). */
static void test_real_narratives_against_numpy(void **state)
{
    (void)state;
    ba_story *stories;
    size_t n;
    ba_story_read_stats st;
    read_narratives(&stories, &n, &st);
    char *dir = fresh_dir();
    char *dump = path_in(dir, "dump.tsv");
    char *data = strdup(ba_test_data_path("narratives/stimuli"));
    const char *script = BA_SOURCE_DIR "/tests/oracle/stimuli_interp.py";
    dump_stories(dump, stories, n, (size_t)-1, 0);
    assert_int_equal(ba_test_system("/usr/bin/python3 '%s' '%s' '%s'", script, data, dump), 0);

    /* the oracle can fail: an interpolated onset (21styear "of") moved 1 us */
    dump_stories(dump, stories, n, 0, 15);
    assert_int_not_equal(ba_test_system("/usr/bin/python3 '%s' '%s' '%s' 2>/dev/null", script,
                                        data, dump), 0);
    ba_story_array_free(stories, n);
    free(data);
    free(dump);
    remove_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_align_csv_quirks),
        cmocka_unit_test(test_align_csv_interpolation),
        cmocka_unit_test(test_align_csv_clamps_decreasing_onsets),
        cmocka_unit_test(test_align_csv_errors),
        cmocka_unit_test(test_words_tsv),
        cmocka_unit_test(test_words_tsv_errors),
        cmocka_unit_test(test_textgrid_long_and_short),
        cmocka_unit_test(test_textgrid_utf16),
        cmocka_unit_test(test_textgrid_tier_choice),
        cmocka_unit_test(test_textgrid_errors),
        cmocka_unit_test(test_names_and_formats),
        cmocka_unit_test(test_story_dir),
        cmocka_unit_test(test_real_narratives),
        cmocka_unit_test(test_real_narratives_against_numpy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
