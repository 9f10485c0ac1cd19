/* options.c — parsing, printing and help of option tables (see options.h). */
#include "brainalign/pipeline/options.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "brainalign/pipeline/design.h"

#define FIELD(opts, off, type) ((type *)((char *)(opts) + (off)))
#define CFIELD(opts, off, type) ((const type *)((const char *)(opts) + (off)))

/* Longest list an option may hold (its text on the stack). */
#define MAX_ITEMS 256

const ba_option *ba_option_find(const ba_option_table *t, const char *name)
{
    for (int i = 0; i < t->n_options; i++)
        if (strcmp(t->options[i].name, name) == 0) return &t->options[i];
    return NULL;
}

const ba_option *ba_option_find_key(const ba_option_table *t, const char *section,
                                    const char *key)
{
    for (int i = 0; i < t->n_options; i++) {
        const ba_option *o = &t->options[i];
        if (o->section && strcmp(o->section, section) == 0 && strcmp(o->key, key) == 0) return o;
    }
    return NULL;
}

/* "a whole number from 2 to 10", "a whole number >= 1", "a finite number
 * >= 0", "a finite number > 0" ... for messages. */
static void describe_range(const ba_option *o, char *buf, size_t size)
{
    if (o->type == BA_OPT_U64) {
        snprintf(buf, size, "a whole number from 0 to %llu", (unsigned long long)UINT64_MAX);
        return;
    }
    bool integer = o->type == BA_OPT_INT || o->type == BA_OPT_LONG || o->type == BA_OPT_INT_LIST;
    const char *what = integer ? "a whole number " : "a finite number ";
    double type_max = o->type == BA_OPT_LONG ? (double)LONG_MAX : integer ? (double)INT_MAX : DBL_MAX;
    bool top = o->max < type_max, bottom = o->min > -DBL_MAX;
    const char *low = o->flags & BA_OPT_ABOVE_MIN ? ">" : ">=";
    const char *high = o->flags & BA_OPT_BELOW_MAX ? "<" : "<=";
    if (top && bottom && !(o->flags & (BA_OPT_ABOVE_MIN | BA_OPT_BELOW_MAX)))
        snprintf(buf, size, "%sfrom %.17g to %.17g", what, o->min, o->max);
    else if (top && bottom)
        snprintf(buf, size, "%s%s %.17g and %s %.17g", what, low, o->min, high, o->max);
    else if (bottom) snprintf(buf, size, "%s%s %.17g", what, low, o->min);
    else snprintf(buf, size, "%s", integer ? "a whole number" : "a finite number");
}

/* "--tie-tolerance -1 must be a finite number >= 0",
 * "[cv] folds 1 must be a whole number >= 2" */
static ba_status out_of_range(const ba_option *o, const char *where, const char *text,
                              ba_error *err)
{
    char range[160];
    describe_range(o, range, sizeof range);
    if (!text[0]) return ba_fail(err, BA_ERR_USAGE, "%s is empty: it must be %s", where, range);
    return ba_fail(err, BA_ERR_USAGE, "%s %s must be %s", where, text, range);
}

/* A whole number in [min, max], into *out. */
static ba_status parse_integer(const ba_option *o, const char *text, const char *where,
                               long long *out, ba_error *err)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end || errno == ERANGE || (double)v < o->min || (double)v > o->max)
        return out_of_range(o, where, text, err);
    *out = v;
    return BA_OK;
}

ba_status ba_option_parse(const ba_option *o, void *opts, const char *text, const char *where,
                          ba_error *err)
{
    long long v = 0;
    switch (o->type) {
    case BA_OPT_INT:
        BA_CHECK(parse_integer(o, text, where, &v, err));
        *FIELD(opts, o->offset, int) = (int)v;
        return BA_OK;
    case BA_OPT_LONG:
        BA_CHECK(parse_integer(o, text, where, &v, err));
        *FIELD(opts, o->offset, long) = (long)v;
        return BA_OK;
    case BA_OPT_U64: {
        /* strtoull reads "-1" as 2^64 - 1: only digits are a seed */
        char *end = NULL;
        errno = 0;
        unsigned long long u = text[0] >= '0' && text[0] <= '9' ? strtoull(text, &end, 10) : 0;
        if (!end || *end || errno == ERANGE)
            return out_of_range(o, where, text, err);
        *FIELD(opts, o->offset, uint64_t) = (uint64_t)u;
        return BA_OK;
    }
    case BA_OPT_DOUBLE: {
        char *end = NULL;
        errno = 0;
        double d = strtod(text, &end);
        bool low = o->flags & BA_OPT_ABOVE_MIN ? d > o->min : d >= o->min;
        bool high = o->flags & BA_OPT_BELOW_MAX ? d < o->max : d <= o->max;
        if (end == text || *end || errno == ERANGE || !isfinite(d) || !low || !high)
            return out_of_range(o, where, text, err);
        *FIELD(opts, o->offset, double) = d;
        return BA_OK;
    }
    case BA_OPT_FLAG: {
        bool *b = FIELD(opts, o->offset, bool);
        if (!strcasecmp(text, "true") || !strcasecmp(text, "yes") || !strcmp(text, "1")) *b = true;
        else if (!strcasecmp(text, "false") || !strcasecmp(text, "no") || !strcmp(text, "0"))
            *b = false;
        else return ba_fail(err, BA_ERR_USAGE, "%s is true or false, not '%s'", where, text);
        return BA_OK;
    }
    case BA_OPT_CHOICE: {
        if (o->parse_choice) {
            int value = 0;
            if (o->parse_choice(text, &value, err) != BA_OK) return ba_context(err, "%s", where);
            *FIELD(opts, o->offset, int) = value;
            return BA_OK;
        }
        char names[256] = "";
        size_t used = 0;
        for (int i = 0; o->choices[i]; i++) {
            if (strcmp(text, o->choices[i]) == 0) {
                *FIELD(opts, o->offset, int) = i;
                return BA_OK;
            }
            used += (size_t)snprintf(names + used, used < sizeof names ? sizeof names - used : 0,
                                     "%s%s", i ? (o->choices[i + 1] ? ", " : " or ") : "",
                                     o->choices[i]);
        }
        return ba_fail(err, BA_ERR_USAGE, "%s is %s, not '%s'", where, names, text);
    }
    case BA_OPT_INT_LIST: {
        int items[MAX_ITEMS], n = 0, max = o->max_count < MAX_ITEMS ? o->max_count : MAX_ITEMS;
        if (ba_parse_int_list(text, items, max, &n, err) != BA_OK) {
            ba_context(err, "%s", where);
            return BA_ERR_USAGE;
        }
        for (int i = 0; i < n; i++)
            if (items[i] < o->min || items[i] > o->max) {
                char range[160];
                describe_range(o, range, sizeof range);
                return ba_fail(err, BA_ERR_USAGE, "%s %s: %d must be %s", where, text, items[i],
                               range);
            }
        memcpy(FIELD(opts, o->offset, int), items, (size_t)n * sizeof *items);
        *FIELD(opts, o->count_offset, int) = n;
        return BA_OK;
    }
    case BA_OPT_ALPHAS: {
        double items[MAX_ITEMS];
        int n = 0, max = o->max_count < MAX_ITEMS ? o->max_count : MAX_ITEMS;
        if (ba_parse_alphas(text, items, max, &n, err) != BA_OK) {
            ba_context(err, "%s", where);
            return BA_ERR_USAGE;
        }
        memcpy(FIELD(opts, o->offset, double), items, (size_t)n * sizeof *items);
        *FIELD(opts, o->count_offset, int) = n;
        return BA_OK;
    }
    }
    return ba_fail(err, BA_ERR_INTERNAL, "%s: option type %d", where, (int)o->type);
}

/* The shortest decimal form that reads back to exactly the same double
 * (0.1, not 0.10000000000000001), without an exponent where one is not
 * needed (100, not 1e+02). */
static void exact_double(double v, char *buf, size_t size)
{
    for (int plain = 1; plain >= 0; plain--)
        for (int digits = 1; digits <= 17; digits++) {
            snprintf(buf, size, "%.*g", digits, v);
            if (strtod(buf, NULL) == v && (!plain || !strchr(buf, 'e'))) return;
        }
}

void ba_option_format(const ba_option *o, const void *opts, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    switch (o->type) {
    case BA_OPT_INT: snprintf(buf, size, "%d", *CFIELD(opts, o->offset, int)); break;
    case BA_OPT_LONG: snprintf(buf, size, "%ld", *CFIELD(opts, o->offset, long)); break;
    case BA_OPT_U64:
        snprintf(buf, size, "%llu", (unsigned long long)*CFIELD(opts, o->offset, uint64_t));
        break;
    case BA_OPT_DOUBLE: exact_double(*CFIELD(opts, o->offset, double), buf, size); break;
    case BA_OPT_FLAG: snprintf(buf, size, "%s", *CFIELD(opts, o->offset, bool) ? "true" : "false"); break;
    case BA_OPT_CHOICE: snprintf(buf, size, "%s", o->choices[*CFIELD(opts, o->offset, int)]); break;
    case BA_OPT_INT_LIST: {
        const int *v = CFIELD(opts, o->offset, int);
        int n = *CFIELD(opts, o->count_offset, int);
        for (int i = 0; i < n && used < size; i++)
            used += (size_t)snprintf(buf + used, size - used, "%s%d", i ? "," : "", v[i]);
        break;
    }
    case BA_OPT_ALPHAS: {
        const double *v = CFIELD(opts, o->offset, double);
        int n = *CFIELD(opts, o->count_offset, int);
        for (int i = 0; i < n && used < size; i++) {
            char one[32];
            exact_double(v[i], one, sizeof one);
            used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? "," : "", one);
        }
        break;
    }
    }
}

bool ba_option_equal(const ba_option *o, const void *a, const void *b)
{
    switch (o->type) {
    case BA_OPT_INT:
    case BA_OPT_CHOICE: return *CFIELD(a, o->offset, int) == *CFIELD(b, o->offset, int);
    case BA_OPT_LONG: return *CFIELD(a, o->offset, long) == *CFIELD(b, o->offset, long);
    case BA_OPT_U64: return *CFIELD(a, o->offset, uint64_t) == *CFIELD(b, o->offset, uint64_t);
    case BA_OPT_DOUBLE: return *CFIELD(a, o->offset, double) == *CFIELD(b, o->offset, double);
    case BA_OPT_FLAG: return *CFIELD(a, o->offset, bool) == *CFIELD(b, o->offset, bool);
    case BA_OPT_INT_LIST:
    case BA_OPT_ALPHAS: {
        int n = *CFIELD(a, o->count_offset, int);
        size_t item = o->type == BA_OPT_INT_LIST ? sizeof(int) : sizeof(double);
        return n == *CFIELD(b, o->count_offset, int) &&
               memcmp((const char *)a + o->offset, (const char *)b + o->offset,
                      (size_t)n * item) == 0;
    }
    }
    return false;
}

void ba_option_help(const ba_option_table *t, const char *group, FILE *out)
{
    for (int i = 0; i < t->n_options; i++) {
        const ba_option *o = &t->options[i];
        if (!o->group || strcmp(o->group, group) != 0) continue;
        char left[128];
        int n = snprintf(left, sizeof left, "--%s", o->name);
        if (o->metavar) snprintf(left + n, sizeof left - (size_t)n, " %s", o->metavar);
        else if (o->type == BA_OPT_CHOICE)
            for (int c = 0; o->choices[c] && (size_t)n < sizeof left; c++)
                n += snprintf(left + n, sizeof left - (size_t)n, "%c%s", c ? '|' : ' ',
                              o->choices[c]);
        int column = t->help_column > 0 ? t->help_column : 22;
        if ((int)strlen(left) < column - 2) fprintf(out, "  %-*s", column - 2, left);
        else fprintf(out, "  %s  ", left);
        for (const char *p = o->help; *p;) {
            const char *nl = strchr(p, '\n');
            size_t len = nl ? (size_t)(nl - p) : strlen(p);
            fprintf(out, "%.*s\n", (int)len, p);
            if (!nl) break;
            p = nl + 1;
            fprintf(out, "%*s", column, "");
        }
    }
}
