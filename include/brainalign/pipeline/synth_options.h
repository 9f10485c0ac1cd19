/* synth_options.h — the options of the `synth` stage, declared once
 * (options.h): `brainalign synth --NAME`, the [synth] keys of `brainalign
 * run` and the arguments of the synth task all come from
 * ba_synth_option_table. The table's values live in ba_synth_options
 * (synth.h) at the defaults of ba_synth_defaults. (--out, --stimuli and
 * --quiet stay with their callers: `run` resolves [synth] stimuli against
 * the configuration's folder and chooses the output directory.) */
#ifndef BRAINALIGN_PIPELINE_SYNTH_OPTIONS_H
#define BRAINALIGN_PIPELINE_SYNTH_OPTIONS_H

#include "brainalign/pipeline/options.h"
#include "brainalign/pipeline/synth.h"

/* Options of the associative-memory effect start with this: they mean
 * nothing (and the synth task leaves them out) without --assoc-regions. */
#define BA_SYNTH_ASSOC_PREFIX "assoc-"

extern const ba_option_table ba_synth_option_table;

#endif
