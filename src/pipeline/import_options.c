/* import_options.c — the table of the BOLD import's options (see
 * import_options.h). */
#include "brainalign/pipeline/import_options.h"

#include <float.h>
#include <limits.h>
#include <stddef.h>
#include <string.h>

#define OFF(field) offsetof(ba_import_options, field)

static const ba_option IMPORT_OPTIONS[] = {
    {.name = "tr", .type = BA_OPT_DOUBLE, .offset = OFF(tr_s), .min = 0, .max = DBL_MAX,
     .metavar = "SEC", .group = "BOLD", .flags = BA_OPT_ABOVE_MIN,
     .help = "repetition time (required)"},
    {.name = "trim-start", .type = BA_OPT_LONG, .offset = OFF(trim_start), .min = 0,
     .max = LONG_MAX, .metavar = "N", .group = "BOLD",
     .help = "drop the first N TRs of every story (default 0)"},
    {.name = "trim-end", .type = BA_OPT_LONG, .offset = OFF(trim_end), .min = 0,
     .max = LONG_MAX, .metavar = "M", .group = "BOLD",
     .help = "drop the last M TRs of every story (default 0)"},
    {.name = "average", .type = BA_OPT_FLAG, .offset = OFF(average), .group = "BOLD",
     .help = "a story given several times (one per subject) is averaged over\n"
             "the subjects (all must have its TR count); without it, an error"},
};

static void defaults(void *opts) { ba_import_options_defaults(opts); }

const ba_option_table ba_import_option_table = {
    .stage = "import",
    .options = IMPORT_OPTIONS,
    .n_options = (int)(sizeof IMPORT_OPTIONS / sizeof IMPORT_OPTIONS[0]),
    .size = sizeof(ba_import_options),
    .defaults = defaults,
};

void ba_import_options_defaults(ba_import_options *o) { memset(o, 0, sizeof *o); }
