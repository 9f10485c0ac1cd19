/* parse.h — numbers from text, checked: the whole text must be the number
 * (no leading or trailing garbage, no empty text), it must fit the target
 * type and lie in [min, max]; a double must be finite.
 *
 * These are predicates: they return false (and leave *out alone) when the
 * text is not such a number, so that the caller, who knows which option or
 * key it is reading, writes the message ("[fit] folds must be >= 2"). */
#ifndef BRAINALIGN_PARSE_H
#define BRAINALIGN_PARSE_H

#include <stdbool.h>
#include <stddef.h>

/* Decimal integers (optional sign; leading blanks as strtol accepts them). */
bool ba_parse_long(const char *text, long min, long max, long *out);
bool ba_parse_int(const char *text, int min, int max, int *out);
/* A size: no sign at all ("-1" is not a huge size). */
bool ba_parse_size(const char *text, size_t max, size_t *out);
/* A finite decimal or scientific number in [min, max] (pass -HUGE_VAL,
 * HUGE_VAL for any finite value); "nan", "inf" and overflows are refused. */
bool ba_parse_double(const char *text, double min, double max, double *out);

#endif
