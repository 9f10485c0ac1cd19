/* features_options.h — the options of the `features` stage that a study
 * sets, declared once (options.h): `brainalign features --NAME`, the
 * [model] keys of `brainalign run` and the arguments of the features tasks
 * all come from ba_features_option_table. (The inputs, the layers, the
 * story list, the format and the association options stay with their
 * callers.) */
#ifndef BRAINALIGN_PIPELINE_FEATURES_OPTIONS_H
#define BRAINALIGN_PIPELINE_FEATURES_OPTIONS_H

#include "brainalign/pipeline/features.h"
#include "brainalign/pipeline/options.h"

/* Plain values. */
typedef struct {
    long context;   /* story tokens per window */
    long stride;    /* window step; 0 (the default): context / 2 */
    int bos;        /* ba_bos_mode */
    int matmul;     /* ba_matmul */
} ba_features_options;

/* Context BA_FEATURES_DEFAULT_CONTEXT, stride context / 2, BOS auto, f32. */
void ba_features_options_defaults(ba_features_options *o);

extern const ba_option_table ba_features_option_table;

/* Give a features configuration these options. */
void ba_features_options_apply(const ba_features_options *o, ba_features_config *cfg);

#endif
