/* import_options.h — the options with values of the `import` stage's BOLD
 * import, declared once (options.h): `brainalign import --tr, --trim-start,
 * --trim-end, --average` come from ba_import_option_table, whose values
 * live in ba_import_options (io/importers.h). `run` has no import step and
 * `tasks` no import task, so the table has no INI keys. (The input files,
 * --format, --mask, --out and the atlas options stay with the command.) */
#ifndef BRAINALIGN_PIPELINE_IMPORT_OPTIONS_H
#define BRAINALIGN_PIPELINE_IMPORT_OPTIONS_H

#include "brainalign/io/importers.h"
#include "brainalign/pipeline/options.h"

/* Everything zero or NULL; no TR (--tr is required: ba_import_bold refuses
 * a TR that is not positive), no trimming, no averaging. */
void ba_import_options_defaults(ba_import_options *o);

extern const ba_option_table ba_import_option_table;

#endif
