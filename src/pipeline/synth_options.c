/* synth_options.c — the table of the synth stage's options (see
 * synth_options.h). The defaults in the help texts are those of
 * ba_synth_defaults (tests/unit/test_stage_options.c reads them back). */
#include "brainalign/pipeline/synth_options.h"

#include <float.h>
#include <limits.h>
#include <stddef.h>

#define OFF(field) offsetof(ba_synth_options, field)

/* In the order the synth task spells them (study_tasks.c). */
static const ba_option SYNTH_OPTIONS[] = {
    {.name = "stories", .section = "synth", .key = "stories", .type = BA_OPT_INT,
     .offset = OFF(n_stories), .min = 1, .max = INT_MAX, .metavar = "N", .group = "synth",
     .flags = BA_OPT_ALWAYS, .help = "stories (default 4)"},
    {.name = "words", .section = "synth", .key = "words", .type = BA_OPT_LONG,
     .offset = OFF(words_per_story), .min = 1, .max = LONG_MAX, .metavar = "N", .group = "synth",
     .flags = BA_OPT_ALWAYS, .help = "words per generated story (default 1200)"},
    {.name = "subjects", .section = "synth", .key = "subjects", .type = BA_OPT_INT,
     .offset = OFF(n_subjects), .min = 1, .max = INT_MAX, .metavar = "N", .group = "synth",
     .flags = BA_OPT_ALWAYS, .help = "subjects (default 2)"},
    {.name = "voxels", .section = "synth", .key = "voxels", .type = BA_OPT_LONG,
     .offset = OFF(n_voxels), .min = 1, .max = LONG_MAX, .metavar = "N", .group = "synth",
     .flags = BA_OPT_ALWAYS, .help = "voxels (default 1200)"},
    {.name = "regions", .section = "synth", .key = "regions", .type = BA_OPT_INT,
     .offset = OFF(n_regions), .min = 1, .max = INT_MAX, .metavar = "N", .group = "synth",
     .flags = BA_OPT_ALWAYS, .help = "atlas regions (default 6)"},
    {.name = "d-model", .section = "synth", .key = "d_model", .type = BA_OPT_LONG,
     .offset = OFF(d_model), .min = 1, .max = LONG_MAX, .metavar = "D", .group = "synth",
     .flags = BA_OPT_ALWAYS, .help = "feature width (default 32)"},
    {.name = "layers", .section = "synth", .key = "layers", .type = BA_OPT_INT,
     .offset = OFF(n_layers), .min = 0, .max = 250, .metavar = "L", .group = "synth",
     .flags = BA_OPT_ALWAYS, .help = "hidden states 0..L are written (default 4)"},
    {.name = "planted-layer", .section = "synth", .key = "planted_layer", .type = BA_OPT_INT,
     .offset = OFF(planted_layer), .min = 0, .max = 250, .metavar = "L", .group = "synth",
     .flags = BA_OPT_ALWAYS, .help = "the layer the BOLD is made from (default 2)"},
    /* command line only: [synth] has no delays key */
    {.name = "delays", .type = BA_OPT_INT_LIST, .offset = OFF(delays),
     .count_offset = OFF(n_delays), .max_count = 32, .min = 0, .max = INT_MAX,
     .metavar = "LIST", .group = "synth", .flags = BA_OPT_ALWAYS,
     .help = "FIR delays of the planted response (default 1..5)"},
    {.name = "tr", .section = "synth", .key = "tr", .type = BA_OPT_DOUBLE, .offset = OFF(tr_s),
     .min = 0, .max = DBL_MAX, .metavar = "SEC", .group = "synth",
     .flags = BA_OPT_ALWAYS | BA_OPT_ABOVE_MIN, .help = "TR (default 1.5)"},
    {.name = "max-r", .section = "synth", .key = "max_r", .type = BA_OPT_DOUBLE,
     .offset = OFF(max_r), .min = 0, .max = 1, .metavar = "R", .group = "synth",
     .flags = BA_OPT_ALWAYS | BA_OPT_ABOVE_MIN | BA_OPT_BELOW_MAX,
     .help = "achievable r of the best region (default 0.6)"},
    {.name = "seed", .section = "synth", .key = "seed", .type = BA_OPT_U64, .offset = OFF(seed),
     .metavar = "S", .group = "synth", .flags = BA_OPT_ALWAYS,
     .help = "random seed (default 2025)"},
    {.name = BA_SYNTH_ASSOC_PREFIX "regions", .section = "synth", .key = "associations",
     .type = BA_OPT_INT_LIST, .offset = OFF(assoc_regions),
     .count_offset = OFF(n_assoc_regions), .max_count = 32, .min = 0, .max = INT_MAX,
     .metavar = "LIST", .group = "synth", /* none by default: not spelled then */
     .help = "plant an associative-memory effect in these regions (e.g.\n"
             "0,2): also writes associations.jsonl, features-associations.h5\n"
             "and the random control features-random.h5 (see synth.h)"},
    {.name = BA_SYNTH_ASSOC_PREFIX "share", .section = "synth", .key = "association_share",
     .type = BA_OPT_DOUBLE, .offset = OFF(assoc_share), .min = 0, .max = 1, .metavar = "X",
     .group = "synth", .flags = BA_OPT_ALWAYS | BA_OPT_ABOVE_MIN | BA_OPT_BELOW_MAX,
     .help = "share of those regions' signal due to the associations\n(default 0.5)"},
    {.name = BA_SYNTH_ASSOC_PREFIX "every", .section = "synth", .key = "association_every",
     .type = BA_OPT_INT, .offset = OFF(assoc_every), .min = 1, .max = INT_MAX, .metavar = "K",
     .group = "synth", .flags = BA_OPT_ALWAYS,
     .help = "an association after every K-th sentence (default 4)"},
};

static void defaults(void *opts) { ba_synth_defaults(opts); }

const ba_option_table ba_synth_option_table = {
    .stage = "synth",
    .options = SYNTH_OPTIONS,
    .n_options = (int)(sizeof SYNTH_OPTIONS / sizeof SYNTH_OPTIONS[0]),
    .size = sizeof(ba_synth_options),
    .defaults = defaults,
    .help_column = 23, /* as the rest of its --help */
};
