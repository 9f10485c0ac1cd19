/* features_options.c — the table of the features stage's options (see
 * features_options.h). */
#include "brainalign/pipeline/features_options.h"

#include <limits.h>
#include <string.h>

/* In the order of ba_bos_mode and ba_matmul. */
static const char *const BOS[] = {"auto", "yes", "no", NULL};
static const char *const MATMUL[] = {"f32", "bf16", NULL};

/* ba_matmul_parse, whose message the command line has always given */
static ba_status parse_matmul(const char *text, int *value, ba_error *err)
{
    ba_matmul m = BA_MATMUL_F32;
    BA_CHECK(ba_matmul_parse(text, &m, err));
    *value = (int)m;
    return BA_OK;
}

#define OFF(field) offsetof(ba_features_options, field)

static const ba_option FEATURES_OPTIONS[] = {
    {.name = "context", .section = "model", .key = "context", .type = BA_OPT_LONG,
     .offset = OFF(context), .min = 1, .max = LONG_MAX, .metavar = "C", .group = "model",
     .flags = BA_OPT_ALWAYS,
     .help = "story tokens per window (default 1024; capped at the model's\n"
             "positions, minus one with a BOS)"},
    {.name = "stride", .section = "model", .key = "stride", .type = BA_OPT_LONG,
     .offset = OFF(stride), .min = 1, .max = LONG_MAX, .metavar = "S", .group = "model",
     .help = "window step, 1..C (default C/2)"},
    {.name = "bos", .section = "model", .key = "bos", .type = BA_OPT_CHOICE, .offset = OFF(bos),
     .choices = BOS, .group = "model", .flags = BA_OPT_ALWAYS,
     .help = "prepend the BOS token to every window (auto: yes for LLaMA,\n"
             "no for GPT-2, as their Hugging Face tokenizers do)"},
    {.name = "matmul", .section = "model", .key = "matmul", .type = BA_OPT_CHOICE,
     .offset = OFF(matmul), .choices = MATMUL, .parse_choice = parse_matmul, .group = "model",
     .help = "precision of the matrix products (default f32: float32, BF16\n"
             "and F16 weights widened exactly). bf16: the LLaMA matrices\n"
             "stored as BF16 multiply activations rounded to bfloat16, sums\n"
             "in float32, as PyTorch runs a bf16 model: about twice as fast,\n"
             "features within bf16 rounding of the f32 ones; norms and\n"
             "attention stay float32. Needs a CPU with AVX512-BF16 and a\n"
             "LLaMA checkpoint with BF16 matrices (an error otherwise)"},
};

static void defaults(void *opts) { ba_features_options_defaults(opts); }

const ba_option_table ba_features_option_table = {
    .stage = "features",
    .options = FEATURES_OPTIONS,
    .n_options = (int)(sizeof FEATURES_OPTIONS / sizeof FEATURES_OPTIONS[0]),
    .size = sizeof(ba_features_options),
    .defaults = defaults,
};

void ba_features_options_defaults(ba_features_options *o)
{
    memset(o, 0, sizeof *o);
    o->context = BA_FEATURES_DEFAULT_CONTEXT;
    o->stride = 0;
    o->bos = BA_BOS_AUTO;
    o->matmul = BA_MATMUL_F32;
}

void ba_features_options_apply(const ba_features_options *o, ba_features_config *cfg)
{
    cfg->context = o->context;
    cfg->stride = o->stride;
    cfg->bos = (ba_bos_mode)o->bos;
    cfg->matmul = (ba_matmul)o->matmul;
}
