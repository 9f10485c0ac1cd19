/* options.h — a stage's options declared once, as a table.
 *
 * Each stage (fit_options.h, features_options.h) declares its options in
 * one table: the command-line name, the INI section and key of `brainalign
 * run`, the type and where the value lives in the stage's options struct,
 * the accepted range, the default (the struct's defaults function) and the
 * help text. The same table parses the command line (src/cli), the INI
 * keys (src/study/study.c) and spells the options back out for the tasks
 * of array jobs (src/study/study_tasks.c), so a value means the same
 * everywhere. Options hold plain values: no pointers, no sentinels. */
#ifndef BRAINALIGN_PIPELINE_OPTIONS_H
#define BRAINALIGN_PIPELINE_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "brainalign/core/error.h"

typedef enum {
    BA_OPT_INT,      /* int in [min, max] */
    BA_OPT_LONG,     /* long in [min, max] */
    BA_OPT_U64,      /* uint64_t, any whole number 0..2^64-1 (seeds; min and max unused) */
    BA_OPT_DOUBLE,   /* finite double in [min, max] (open ends: BA_OPT_ABOVE_MIN, _BELOW_MAX) */
    BA_OPT_FLAG,     /* bool: a flag on the command line, true/false in the INI file */
    BA_OPT_CHOICE,   /* an int-sized enum: the index of its name in choices[] */
    BA_OPT_INT_LIST, /* int[max_count] + int count: "1,2,3" or "1..5", items in [min, max] */
    BA_OPT_ALPHAS,   /* double[max_count] + int count: "logspace:LO:HI:N" or a list */
} ba_option_type;

/* flags */
#define BA_OPT_ALWAYS 1u    /* tasks spell it out even at its default */
#define BA_OPT_ABOVE_MIN 2u /* DOUBLE: the minimum itself is refused */
#define BA_OPT_BELOW_MAX 4u /* DOUBLE: the maximum itself is refused */

typedef struct {
    const char *name;        /* command line, without "--": "tr-offset" */
    const char *section;     /* INI section in `run` ("alignment"); NULL: command line only */
    const char *key;         /* INI key ("tr_offset") */
    ba_option_type type;
    size_t offset;           /* of the value in the options struct */
    size_t count_offset;     /* lists: of their int count */
    int max_count;           /* lists: capacity of the array */
    double min, max;         /* numbers, list items: the accepted range */
    const char *const *choices; /* CHOICE: names in enum order, NULL-terminated */
    /* CHOICE (optional): the owning layer's own parser, whose message
     * follows "where: " (else "where is a, b or c, not 'x'") */
    ba_status (*parse_choice)(const char *text, int *value, ba_error *err);
    const char *metavar;     /* "K" of "--folds K" (NULL: none, or the choices) */
    const char *help;        /* help text, lines separated by '\n' */
    const char *group;       /* heading of the help section ("cross-validation") */
    unsigned flags;
} ba_option;

typedef struct {
    const char *stage;       /* "fit" */
    const ba_option *options;
    int n_options;
    size_t size;             /* of the options struct */
    void (*defaults)(void *opts);
    int help_column;         /* where ba_option_help starts the texts (0: 22) */
} ba_option_table;

/* The option called `name` (command line, without "--"), or NULL. */
const ba_option *ba_option_find(const ba_option_table *t, const char *name);
/* The option of INI [section] key, or NULL. */
const ba_option *ba_option_find_key(const ba_option_table *t, const char *section,
                                    const char *key);

/* Parse `text` into the option's value in `opts`. A number must be whole
 * (for integers), fit the target type and lie in the range; `where` names the
 * option in the message ("--folds", "[cv] folds"). FLAG: true/yes/1 or
 * false/no/0. */
ba_status ba_option_parse(const ba_option *o, void *opts, const char *text, const char *where,
                          ba_error *err);

/* The value as text that parses back to exactly the same value (doubles
 * in their shortest exact form: 0.1, 100, 1e-06). FLAG: "true"/"false". */
void ba_option_format(const ba_option *o, const void *opts, char *buf, size_t size);

/* True when the option has the same value in a and b. */
bool ba_option_equal(const ba_option *o, const void *a, const void *b);

/* Print the help lines of every option of `group`, in table order:
 * "  --name METAVAR      text" with text from column 22 (0-based; the
 * table's help_column if set). */
void ba_option_help(const ba_option_table *t, const char *group, FILE *out);

#endif
