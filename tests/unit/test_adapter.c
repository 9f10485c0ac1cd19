/* test_adapter.c — PEFT LoRA adapters: config parsing (tolerated and
 * refused keys), the module shapes of GPT-2 and LLaMA (GQA), a save/load
 * round trip read back through the safetensors reader, both GPT-2 tensor
 * prefixes, and the bad inputs: unknown target module, an adapter for
 * another model shape, r = 0, a missing or extra tensor, a truncated file.
 * (tests/oracle/adapter_oracle.py checks the files against ones written by
 * hand in numpy.) */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "brainalign/lm/adapter.h"
#include "brainalign/lm/safetensors.h"

static ba_model_config gpt2_cfg(void)
{
    ba_model_config c = {.arch = BA_ARCH_GPT2, .n_layers = 2, .n_heads = 2, .n_kv_heads = 2,
                         .d_model = 8, .d_ff = 32, .vocab_size = 50, .n_positions = 16,
                         .norm_eps = 1e-5, .tie_word_embeddings = true};
    snprintf(c.model_type, sizeof c.model_type, "gpt2");
    snprintf(c.activation, sizeof c.activation, "gelu_new");
    return c;
}

static ba_model_config llama_cfg(void)
{
    ba_model_config c = {.arch = BA_ARCH_LLAMA, .n_layers = 3, .n_heads = 4, .n_kv_heads = 2,
                         .d_model = 16, .d_ff = 40, .vocab_size = 50, .n_positions = 32,
                         .norm_eps = 1e-6, .rope_theta = 10000};
    snprintf(c.model_type, sizeof c.model_type, "llama");
    snprintf(c.activation, sizeof c.activation, "silu");
    return c;
}

static const char *cfg_json(int r, const char *targets, const char *extra)
{
    static char buf[2048];
    snprintf(buf, sizeof buf,
             "{\"peft_type\": \"LORA\", \"task_type\": \"CAUSAL_LM\", \"r\": %d, "
             "\"lora_alpha\": 16, \"lora_dropout\": 0.05, \"target_modules\": %s, "
             "\"fan_in_fan_out\": true, \"bias\": \"none\", \"base_model_name_or_path\": "
             "\"gpt2\"%s}", r, targets, extra);
    return buf;
}

static void expect_cfg_error(const char *text, const char *what)
{
    ba_lora_config c;
    ba_error err;
    ba_error_clear(&err);
    if (ba_lora_config_parse(text, strlen(text), "adapter_config.json", &c, &err) == BA_OK)
        fail_msg("accepted: %s", text);
    if (!strstr(err.message, what) || !strstr(err.message, "adapter_config.json"))
        fail_msg("message '%s' lacks '%s'", err.message, what);
}

static void test_config_parse(void **state)
{
    (void)state;
    ba_lora_config c;
    ba_error err;
    ba_error_clear(&err);
    const char *ok = cfg_json(4, "[\"c_attn\", \"c_proj\"]",
                              ", \"revision\": null, \"init_lora_weights\": true, "
                              "\"use_rslora\": false, \"layers_to_transform\": null, "
                              "\"rank_pattern\": {}, \"modules_to_save\": null");
    assert_int_equal(ba_lora_config_parse(ok, strlen(ok), "x", &c, &err), BA_OK);
    assert_int_equal(c.r, 4);
    assert_true(c.lora_alpha == 16);
    assert_true(c.lora_dropout == 0.05);
    assert_true(c.fan_in_fan_out);
    assert_int_equal(c.n_targets, 2);
    assert_string_equal(c.targets[1], "c_proj");
    assert_string_equal(c.base_model, "gpt2");

    expect_cfg_error(cfg_json(0, "[\"c_attn\"]", ""), "r = 0");
    expect_cfg_error(cfg_json(-2, "[\"c_attn\"]", ""), "\"r\"");
    expect_cfg_error(cfg_json(4, "[\"c_attn\", \"qkv\"]", ""), "unknown target module 'qkv'");
    expect_cfg_error(cfg_json(4, "[]", ""), "target_modules");
    expect_cfg_error(cfg_json(4, "\".*attn\"", ""), "regular expression");
    expect_cfg_error(cfg_json(4, "[\"c_attn\", \"c_attn\"]", ""), "twice");
    expect_cfg_error(cfg_json(4, "[\"c_attn\"]", ", \"use_dora\": true"), "use_dora");
    expect_cfg_error(cfg_json(4, "[\"c_attn\"]", ", \"layers_to_transform\": [0]"),
                     "layers_to_transform");
    expect_cfg_error("{\"peft_type\": \"PREFIX_TUNING\", \"r\": 4}", "LORA only");
    expect_cfg_error("{\"peft_type\": \"LORA\", \"task_type\": \"SEQ_CLS\", \"r\": 4}",
                     "CAUSAL_LM");
    expect_cfg_error("{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"bias\": \"all\", "
                     "\"target_modules\": [\"c_attn\"]}", "bias");
    expect_cfg_error("{\"peft_type\": \"LORA\", \"r\": 4, \"target_modules\": [\"c_attn\"]}",
                     "lora_alpha");
    expect_cfg_error("[1]", "JSON object");
    expect_cfg_error("{\"peft_type\": ", "not valid JSON");

    /* a LLaMA target on a GPT-2 model */
    const char *llama_t = cfg_json(4, "[\"q_proj\"]", "");
    assert_int_equal(ba_lora_config_parse(llama_t, strlen(llama_t), "x", &c, &err), BA_OK);
    ba_model_config g = gpt2_cfg();
    assert_int_equal(ba_lora_config_check_model(&c, &g, "x", &err), BA_ERR_VALUE);
    assert_non_null(strstr(err.message, "'q_proj' is not a module of a gpt2 model"));
}

static void test_site_shapes(void **state)
{
    (void)state;
    ba_error err;
    ba_error_clear(&err);
    ba_model_config g = gpt2_cfg(), l = llama_cfg();
    static const int want_g[4][2] = {{8, 24}, {8, 8}, {8, 32}, {32, 8}};
    for (int s = 0; s < 4; s++) {
        int in, out;
        assert_int_equal(ba_lora_site_shape(&g, (ba_lora_site)s, &in, &out, &err), BA_OK);
        assert_int_equal(in, want_g[s][0]);
        assert_int_equal(out, want_g[s][1]);
    }
    /* head dim 4, 4 heads, 2 key/value heads */
    static const int want_l[7][2] = {{16, 16}, {16, 8}, {16, 8}, {16, 16},
                                     {16, 40}, {16, 40}, {40, 16}};
    for (int s = 0; s < 7; s++) {
        int in, out;
        assert_int_equal(ba_lora_site_shape(&l, (ba_lora_site)(BA_LORA_LLAMA_Q + s), &in, &out,
                                            &err), BA_OK);
        assert_int_equal(in, want_l[s][0]);
        assert_int_equal(out, want_l[s][1]);
    }
    int in, out;
    assert_int_equal(ba_lora_site_shape(&l, BA_LORA_GPT2_C_ATTN, &in, &out, &err), BA_ERR_USAGE);
}

/* An adapter with distinct values everywhere. */
static ba_adapter *make_adapter(const ba_model_config *mc, const char *const *targets, int n,
                                int r)
{
    ba_lora_config c = {.r = r, .lora_alpha = 32, .lora_dropout = 0,
                        .fan_in_fan_out = mc->arch == BA_ARCH_GPT2, .n_targets = n};
    for (int i = 0; i < n; i++) snprintf(c.targets[i], sizeof c.targets[i], "%s", targets[i]);
    snprintf(c.base_model, sizeof c.base_model, "some/model");
    ba_error err;
    ba_error_clear(&err);
    ba_adapter *ad = NULL;
    if (ba_adapter_create(&c, mc, &ad, &err) != BA_OK) fail_msg("create: %s", err.message);
    float v = 0.001f;
    for (size_t k = 0; k < ad->n_modules; k++) {
        ba_lora_module *m = &ad->modules[k];
        for (size_t e = 0; e < (size_t)r * (size_t)m->in; e++) m->A[e] = (v += 0.37f) - 3.0f * (e % 7);
        for (size_t e = 0; e < (size_t)m->out * (size_t)r; e++) m->B[e] = (v -= 0.11f);
    }
    return ad;
}

static void expect_same(const ba_adapter *a, const ba_adapter *b)
{
    assert_int_equal(a->n_modules, b->n_modules);
    assert_int_equal(a->cfg.r, b->cfg.r);
    assert_true(a->cfg.lora_alpha == b->cfg.lora_alpha && a->scale == b->scale);
    assert_int_equal(a->cfg.fan_in_fan_out, b->cfg.fan_in_fan_out);
    assert_string_equal(a->cfg.base_model, b->cfg.base_model);
    for (size_t k = 0; k < a->n_modules; k++) {
        const ba_lora_module *x = &a->modules[k], *y = &b->modules[k];
        assert_int_equal(x->layer, y->layer);
        assert_int_equal(x->site, y->site);
        assert_memory_equal(x->A, y->A, (size_t)a->cfg.r * (size_t)x->in * sizeof(float));
        assert_memory_equal(x->B, y->B, (size_t)x->out * (size_t)a->cfg.r * sizeof(float));
    }
}

static void test_round_trip(void **state)
{
    (void)state;
    ba_error err;
    ba_error_clear(&err);
    ba_model_config g = gpt2_cfg(), l = llama_cfg();
    static const char *const gt[] = {"c_attn", "c_proj", "c_fc"};
    static const char *const lt[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                     "up_proj", "down_proj"};
    struct { const ba_model_config *mc; const char *const *t; int n, r, modules; } cases[] = {
        {&g, gt, 3, 4, 2 * 4}, {&g, gt, 1, 2, 2}, {&l, lt, 7, 3, 3 * 7}, {&l, lt + 1, 2, 8, 6}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        ba_adapter *ad = make_adapter(cases[c].mc, cases[c].t, cases[c].n, cases[c].r);
        assert_int_equal(ad->n_modules, (size_t)cases[c].modules);
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/adapter%zu", ba_test_tmpdir(), c);
        assert_int_equal(ba_adapter_save(dir, ad, &err), BA_OK);
        ba_adapter *back = NULL;
        if (ba_adapter_load(dir, cases[c].mc, &back, &err) != BA_OK)
            fail_msg("load: %s", err.message);
        expect_same(ad, back);
        assert_int_equal(ba_adapter_check_model(back, cases[c].mc, &err), BA_OK);
        /* the reader sees the PEFT names and shapes, data 8-byte aligned */
        char path[1100], name[256];
        snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
        ba_safetensors *st = NULL;
        assert_int_equal(ba_safetensors_open(path, &st, &err), BA_OK);
        assert_int_equal(ba_safetensors_count(st), 2 * ad->n_modules);
        const ba_lora_module *m = &ad->modules[ad->n_modules - 1];
        assert_int_equal(ba_lora_tensor_name(m->site, m->layer, 'B', name, sizeof name, &err),
                         BA_OK);
        const ba_tensor *t = ba_safetensors_lookup(st, name);
        assert_non_null(t);
        assert_int_equal(t->shape[0], m->out);
        assert_int_equal(t->shape[1], cases[c].r);
        assert_int_equal((uintptr_t)t->data % 4, 0);
        assert_string_equal(ba_safetensors_metadata(st, "format"), "pt");
        ba_safetensors_close(st);
        ba_adapter_destroy(back);
        ba_adapter_destroy(ad);
    }
    assert_string_equal(ba_lora_site_path(BA_LORA_LLAMA_GATE), "mlp.gate_proj");
    char name[256];
    assert_int_equal(ba_lora_tensor_name(BA_LORA_GPT2_C_ATTN, 11, 'A', name, sizeof name, &err),
                     BA_OK);
    assert_string_equal(name, "base_model.model.transformer.h.11.attn.c_attn.lora_A.weight");
    assert_int_equal(ba_lora_tensor_name(BA_LORA_LLAMA_V, 0, 'B', name, sizeof name, &err), BA_OK);
    assert_string_equal(name, "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight");
}

/* Write an adapter dir by hand: config text and tensors (name, shape). */
typedef struct { const char *name; int64_t rows, cols; ba_dtype dtype; } hand_tensor;

static const char *write_hand(const char *sub, const char *config, const hand_tensor *t, size_t n)
{
    static char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", ba_test_tmpdir(), sub);
    mkdir(dir, 0755);
    char path[1100];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    ba_test_write_file(path, config, strlen(config));
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    ba_tensor_spec specs[32];
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        specs[i] = (ba_tensor_spec){.name = t[i].name, .dtype = t[i].dtype, .rank = 2,
                                    .shape = {t[i].rows, t[i].cols}};
        bytes += ba_tensor_spec_bytes(&specs[i]);
    }
    ba_error err;
    ba_error_clear(&err);
    ba_st_writer *w = NULL;
    assert_int_equal(ba_st_writer_open(path, specs, n, NULL, 0, &w, &err), BA_OK);
    unsigned char *zero = calloc(bytes + 1, 1);
    for (size_t i = 0; i < bytes; i += 4) {
        float x = 0.5f;
        if (i + 4 <= bytes) memcpy(zero + i, &x, 4);
    }
    assert_int_equal(ba_st_writer_write(w, zero, bytes, &err), BA_OK);
    assert_int_equal(ba_st_writer_finish(w, &err), BA_OK);
    free(zero);
    return dir;
}

static void expect_load_error(const char *dir, const ba_model_config *mc, const char *what)
{
    ba_error err;
    ba_error_clear(&err);
    ba_adapter *ad = NULL;
    if (ba_adapter_load(dir, mc, &ad, &err) == BA_OK) fail_msg("%s: accepted", dir);
    assert_null(ad);
    if (!strstr(err.message, what)) fail_msg("message '%s' lacks '%s'", err.message, what);
}

#define GA(l) "base_model.model.h." #l ".attn.c_attn.lora_A.weight"
#define GB(l) "base_model.model.h." #l ".attn.c_attn.lora_B.weight"

static void test_gpt2_short_prefix_and_bad(void **state)
{
    (void)state;
    ba_model_config g = gpt2_cfg();
    char cfg[2048]; /* cfg_json's buffer is reused below */
    snprintf(cfg, sizeof cfg, "%s", cfg_json(2, "[\"c_attn\"]", ""));
    /* PEFT's other GPT-2 prefix (no "transformer.") is read */
    hand_tensor ok[] = {{GA(0), 2, 8, BA_DTYPE_F32}, {GB(0), 24, 2, BA_DTYPE_F32},
                        {GA(1), 2, 8, BA_DTYPE_F32}, {GB(1), 24, 2, BA_DTYPE_F32}};
    const char *dir = write_hand("short", cfg, ok, 4);
    ba_error err;
    ba_error_clear(&err);
    ba_adapter *ad = NULL;
    if (ba_adapter_load(dir, &g, &ad, &err) != BA_OK) fail_msg("load: %s", err.message);
    assert_int_equal(ad->n_modules, 2);
    assert_true(ad->modules[1].B[47] == 0.5f);
    assert_true(ad->scale == 8.0);
    ba_adapter_destroy(ad);

    /* an adapter for another model shape: d_model 8 vs a model of 16 */
    ba_model_config wide = g;
    wide.d_model = 16;
    expect_load_error(dir, &wide, "has shape [2, 8]");
    expect_load_error(dir, &wide, GA(0));
    /* fewer layers in the model than in the adapter */
    ba_model_config shallow = g;
    shallow.n_layers = 1;
    expect_load_error(dir, &shallow, "layer 1, but the model has 1 layers");
    /* a LLaMA model reading a GPT-2 adapter */
    ba_model_config l = llama_cfg();
    expect_load_error(dir, &l, "'c_attn' is not a module of a llama model");

    hand_tensor missing[] = {{GA(0), 2, 8, BA_DTYPE_F32}, {GB(0), 24, 2, BA_DTYPE_F32},
                             {GA(1), 2, 8, BA_DTYPE_F32}};
    expect_load_error(write_hand("missing", cfg, missing, 3), &g,
                      "'base_model.model.transformer.h.1.attn.c_attn.lora_B.weight' is missing");
    hand_tensor extra[] = {{GA(0), 2, 8, BA_DTYPE_F32}, {GB(0), 24, 2, BA_DTYPE_F32},
                           {GA(1), 2, 8, BA_DTYPE_F32}, {GB(1), 24, 2, BA_DTYPE_F32},
                           {"base_model.model.h.0.mlp.c_fc.lora_A.weight", 2, 8, BA_DTYPE_F32}};
    expect_load_error(write_hand("extra", cfg, extra, 5), &g, "module c_fc is not in the target");
    hand_tensor unknown[] = {{GA(0), 2, 8, BA_DTYPE_F32}, {GB(0), 24, 2, BA_DTYPE_F32},
                             {"base_model.model.lm_head.lora_A.weight", 2, 8, BA_DTYPE_F32}};
    expect_load_error(write_hand("unknown", cfg, unknown, 3), &g,
                      "'base_model.model.lm_head.lora_A.weight' is not a LoRA tensor");
    hand_tensor twice[] = {{GA(0), 2, 8, BA_DTYPE_F32}, {GB(0), 24, 2, BA_DTYPE_F32},
                           {"base_model.model.transformer.h.0.attn.c_attn.lora_A.weight", 2, 8,
                            BA_DTYPE_F32}};
    expect_load_error(write_hand("twice", cfg, twice, 3), &g, "given twice");
    hand_tensor f16[] = {{GA(0), 2, 8, BA_DTYPE_F16}, {GB(0), 24, 2, BA_DTYPE_F32}};
    expect_load_error(write_hand("f16", cfg, f16, 2), &g, "is F16");
    expect_load_error(write_hand("r0", cfg_json(0, "[\"c_attn\"]", ""), ok, 4), &g, "r = 0");
    expect_load_error(write_hand("badtarget", cfg_json(2, "[\"c_attn\", \"wte\"]", ""), ok, 4),
                      &g, "unknown target module 'wte'");

    /* a truncated file */
    char src[1100], dst_dir[1024], dst[1100];
    snprintf(src, sizeof src, "%s/adapter_model.safetensors", dir);
    size_t len = 0;
    char *bytes = ba_test_read_file(src, &len);
    snprintf(dst_dir, sizeof dst_dir, "%s", write_hand("trunc", cfg, ok, 4));
    snprintf(dst, sizeof dst, "%s/adapter_model.safetensors", dst_dir);
    ba_test_write_file(dst, bytes, len - 5);
    expect_load_error(dst_dir, &g, "adapter_model.safetensors");
    ba_test_write_file(dst, bytes, 6);
    expect_load_error(dst_dir, &g, "adapter_model.safetensors");
    free(bytes);
    /* no files at all */
    char none[1100];
    snprintf(none, sizeof none, "%s/none", ba_test_tmpdir());
    expect_load_error(none, &g, "adapter_config.json");
}

static void test_llama_gqa_wrong_kv(void **state)
{
    (void)state;
    /* an adapter written for a model without GQA (k/v out = 16) is refused
     * by the GQA model (k/v out = 8), naming the k_proj tensor */
    ba_model_config l = llama_cfg(), mha = llama_cfg();
    mha.n_kv_heads = mha.n_heads;
    static const char *const t[] = {"q_proj", "k_proj"};
    ba_adapter *ad = make_adapter(&mha, t, 2, 2);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/mha", ba_test_tmpdir());
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(ba_adapter_save(dir, ad, &err), BA_OK);
    expect_load_error(dir, &l, "self_attn.k_proj.lora_B.weight' has shape [16, 2]");
    assert_int_equal(ba_adapter_check_model(ad, &l, &err), BA_ERR_SHAPE);
    assert_non_null(strstr(err.message, "self_attn.k_proj"));
    ba_adapter_destroy(ad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_parse),
        cmocka_unit_test(test_site_shapes),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_gpt2_short_prefix_and_bad),
        cmocka_unit_test(test_llama_gqa_wrong_kv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
