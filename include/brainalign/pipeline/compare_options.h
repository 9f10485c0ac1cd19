/* compare_options.h — the statistics options of the `compare` stage,
 * declared once (options.h): `brainalign compare --NAME`, the [compare]
 * keys of `brainalign run` and the arguments of the compare task all come
 * from ba_compare_option_table. The values live in ba_compare_options
 * (compare.h) at the defaults of ba_compare_options_defaults. (The inputs,
 * --layer, --baseline, --atlas, --bold, --out, --plot and --quiet stay
 * with their callers: `run` takes them from its plan.) */
#ifndef BRAINALIGN_PIPELINE_COMPARE_OPTIONS_H
#define BRAINALIGN_PIPELINE_COMPARE_OPTIONS_H

#include "brainalign/pipeline/compare.h"
#include "brainalign/pipeline/options.h"

extern const ba_option_table ba_compare_option_table;

#endif
