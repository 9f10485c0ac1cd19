/* parse.c — numbers from text, checked (see parse.h). */
#include "brainalign/core/parse.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

bool ba_parse_long(const char *text, long min, long max, long *out)
{
    if (!text || !*text) return false;
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end || errno == ERANGE || v < min || v > max) return false;
    *out = v;
    return true;
}

bool ba_parse_int(const char *text, int min, int max, int *out)
{
    long v;
    if (!ba_parse_long(text, min, max, &v)) return false;
    *out = (int)v;
    return true;
}

bool ba_parse_size(const char *text, size_t max, size_t *out)
{
    if (!text) return false;
    const char *p = text;
    while (*p == ' ' || *p == '\t') p++;
    if (*p < '0' || *p > '9') return false; /* no sign, no empty text */
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    if (*end || errno == ERANGE || v > SIZE_MAX || (size_t)v > max) return false;
    *out = (size_t)v;
    return true;
}

bool ba_parse_double(const char *text, double min, double max, double *out)
{
    if (!text || !*text) return false;
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end || !isfinite(v) || (errno == ERANGE && fabs(v) > 1.0)) return false;
    if (!(v >= min && v <= max)) return false;
    *out = v;
    return true;
}
