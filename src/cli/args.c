/* args.c — "--name value" option reading (see args.h). */
#include "args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ba_args_init(ba_args *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    a->argc = argc;
    a->argv = argv;
    a->i = 1;
}

bool ba_args_more(const ba_args *a) { return a->i < a->argc && !a->error[0]; }

bool ba_args_value(ba_args *a, const char *name)
{
    const char *arg = a->argv[a->i];
    size_t len = strlen(name);
    if (strncmp(arg, name, len) != 0) return false;
    if (arg[len] == '=') {
        a->value = arg + len + 1;
        a->i++;
        return true;
    }
    if (arg[len] != '\0') return false;
    if (a->i + 1 >= a->argc) {
        snprintf(a->error, sizeof a->error, "%s needs a value", name);
        a->i++;
        return true;
    }
    a->value = a->argv[a->i + 1];
    a->i += 2;
    return true;
}

bool ba_args_flag(ba_args *a, const char *name)
{
    if (strcmp(a->argv[a->i], name) != 0) return false;
    a->i++;
    return true;
}

bool ba_args_long(ba_args *a, const char *name, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(a->value, &end, 10);
    if (end == a->value || *end || errno) {
        snprintf(a->error, sizeof a->error, "%s: '%s' is not a whole number", name, a->value);
        return false;
    }
    *out = v;
    return true;
}

bool ba_args_double(ba_args *a, const char *name, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(a->value, &end);
    if (end == a->value || *end || errno) {
        snprintf(a->error, sizeof a->error, "%s: '%s' is not a number", name, a->value);
        return false;
    }
    *out = v;
    return true;
}

bool ba_args_table(ba_args *a, const ba_option_table *t, void *opts)
{
    const char *arg = a->argv[a->i];
    if (strncmp(arg, "--", 2) != 0) return false;
    char name[128];
    const char *eq = strchr(arg + 2, '=');
    size_t len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
    if (len >= sizeof name) return false;
    memcpy(name, arg + 2, len);
    name[len] = '\0';
    const ba_option *o = ba_option_find(t, name);
    if (!o) return false;
    char where[140];
    snprintf(where, sizeof where, "--%s", name);
    if (o->type == BA_OPT_FLAG && !eq) {
        a->i++;
        *(bool *)((char *)opts + o->offset) = true;
        return true;
    }
    if (!ba_args_value(a, where) || a->error[0]) return true;
    ba_error err;
    if (ba_option_parse(o, opts, a->value, where, &err) != BA_OK)
        snprintf(a->error, sizeof a->error, "%s", err.message);
    return true;
}

void ba_args_command_line(int argc, char **argv, char *buf, unsigned long size)
{
    size_t len = (size_t)snprintf(buf, size, "brainalign");
    for (int i = 0; i < argc && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, " %s", argv[i]);
}
