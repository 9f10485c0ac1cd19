/* args.h — a small reader for "--name value" and "--name=value" options. */
#ifndef BRAINALIGN_CLI_ARGS_H
#define BRAINALIGN_CLI_ARGS_H

#include <stdbool.h>

#include "brainalign/pipeline/options.h"

typedef struct {
    int argc;
    char **argv;
    int i;             /* current position */
    const char *value; /* the value of the last matched option */
    char error[1600];
} ba_args;

void ba_args_init(ba_args *a, int argc, char **argv);
/* True while there are arguments left. */
bool ba_args_more(const ba_args *a);
/* If the current argument is the option `name` taking a value, consume it
 * (and its value) and return true. A missing value sets a->error. */
bool ba_args_value(ba_args *a, const char *name);
/* If the current argument is the flag `name`, consume it, return true. */
bool ba_args_flag(ba_args *a, const char *name);
/* Parse numbers; on failure set a->error naming the option. */
bool ba_args_long(ba_args *a, const char *name, long *out);
bool ba_args_double(ba_args *a, const char *name, double *out);
/* If the current argument is an option of the table (--NAME VALUE,
 * --NAME=VALUE, or --NAME for a flag), consume it, parse its value into
 * `opts` (a bad value sets a->error) and return true. */
bool ba_args_table(ba_args *a, const ba_option_table *t, void *opts);
/* The whole command line joined with spaces (for provenance). */
void ba_args_command_line(int argc, char **argv, char *buf, unsigned long size);

#endif
