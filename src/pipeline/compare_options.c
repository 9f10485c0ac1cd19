/* compare_options.c — the table of the compare stage's options (see
 * compare_options.h). The defaults in the help texts are those of
 * ba_compare_options_defaults (tests/unit/test_stage_options.c reads them
 * back). */
#include "brainalign/pipeline/compare_options.h"

#include <limits.h>
#include <stddef.h>

#define OFF(field) offsetof(ba_compare_options, field)

/* In the order the compare task spells them (study_tasks.c). */
static const ba_option COMPARE_OPTIONS[] = {
    {.name = "permutations", .section = "compare", .key = "permutations", .type = BA_OPT_LONG,
     .offset = OFF(n_permutations), .min = 1, .max = LONG_MAX, .metavar = "N",
     .group = "statistics", .flags = BA_OPT_ALWAYS,
     .help = "sign-flip permutations (default 100000)"},
    {.name = "bootstrap", .section = "compare", .key = "bootstrap", .type = BA_OPT_LONG,
     .offset = OFF(n_bootstrap), .min = 2, .max = LONG_MAX, .metavar = "N",
     .group = "statistics", .flags = BA_OPT_ALWAYS,
     .help = "bootstrap resamples (default 10000)"},
    {.name = "confidence", .section = "compare", .key = "confidence", .type = BA_OPT_DOUBLE,
     .offset = OFF(confidence), .min = 0, .max = 1, .metavar = "C", .group = "statistics",
     .flags = BA_OPT_ALWAYS | BA_OPT_ABOVE_MIN | BA_OPT_BELOW_MAX,
     .help = "interval level (default 0.95)"},
    {.name = "fdr", .section = "compare", .key = "fdr", .type = BA_OPT_DOUBLE,
     .offset = OFF(fdr), .min = 0, .max = 1, .metavar = "Q", .group = "statistics",
     .flags = BA_OPT_ALWAYS | BA_OPT_ABOVE_MIN | BA_OPT_BELOW_MAX,
     .help = "significance threshold on q (default 0.05)"},
    {.name = "seed", .section = "compare", .key = "seed", .type = BA_OPT_U64, .offset = OFF(seed),
     .metavar = "S", .group = "statistics", .flags = BA_OPT_ALWAYS,
     .help = "random seed (default 2025)"},
};

static void defaults(void *opts) { ba_compare_options_defaults(opts); }

const ba_option_table ba_compare_option_table = {
    .stage = "compare",
    .options = COMPARE_OPTIONS,
    .n_options = (int)(sizeof COMPARE_OPTIONS / sizeof COMPARE_OPTIONS[0]),
    .size = sizeof(ba_compare_options),
    .defaults = defaults,
    .help_column = 23, /* as the rest of its --help */
};
