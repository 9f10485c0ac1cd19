/* test_hostile_lm.c — crafted checkpoints and configs the lm layer must
 * refuse by name (issue 16): a LLaMA config.json with rope_scaling, a
 * safetensors file with an "h.00.*" tensor, a FIFO where config.json or a
 * tokenizer file should be. */
#include "test_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "brainalign/lm/model_config.h"
#include "brainalign/lm/safetensors.h"
#include "brainalign/lm/tokenizer.h"

#define LLAMA_BASE                                                                          \
    "{\"model_type\": \"llama\", \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "    \
    "\"hidden_size\": 32, \"intermediate_size\": 64, \"vocab_size\": 100, "                 \
    "\"max_position_embeddings\": 64"

static ba_status parse(const char *json, ba_model_config *cfg, ba_error *err)
{
    return ba_model_config_parse(json, strlen(json), "crafted/config.json", cfg, err);
}

static void test_rope_scaling_refused(void **state)
{
    (void)state;
    ba_model_config cfg;
    ba_error err;
    ba_error_clear(&err);
    /* plain RoPE: absent, null, or Hugging Face's "default" */
    assert_int_equal(parse(LLAMA_BASE "}", &cfg, &err), BA_OK);
    assert_int_equal(parse(LLAMA_BASE ", \"rope_scaling\": null}", &cfg, &err), BA_OK);
    assert_int_equal(parse(LLAMA_BASE ", \"rope_scaling\": {\"rope_type\": \"default\"}}", &cfg,
                           &err), BA_OK);
    const char *types[] = {"linear", "dynamic", "llama3", "yarn", "longrope", "su"};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        char json[512];
        snprintf(json, sizeof json,
                 LLAMA_BASE ", \"rope_scaling\": {\"type\": \"%s\", \"factor\": 2.0}}", types[i]);
        assert_int_equal(parse(json, &cfg, &err), BA_ERR_VALUE);
        assert_non_null(strstr(err.message, "crafted/config.json"));
        assert_non_null(strstr(err.message, "rope_scaling.type"));
        assert_non_null(strstr(err.message, types[i]));
        snprintf(json, sizeof json,
                 LLAMA_BASE ", \"rope_scaling\": {\"rope_type\": \"%s\", \"factor\": 8.0}}",
                 types[i]);
        assert_int_equal(parse(json, &cfg, &err), BA_ERR_VALUE);
        assert_non_null(strstr(err.message, "rope_scaling.rope_type"));
        assert_non_null(strstr(err.message, types[i]));
    }
    assert_int_equal(parse(LLAMA_BASE ", \"rope_scaling\": {\"factor\": 2.0}}", &cfg, &err),
                     BA_ERR_VALUE);
    assert_non_null(strstr(err.message, "rope_scaling"));
    assert_int_equal(parse(LLAMA_BASE ", \"rope_scaling\": 2}", &cfg, &err), BA_ERR_FORMAT);
    assert_non_null(strstr(err.message, "rope_scaling"));
}

/* A safetensors file of F32 tensors named names[], each of shape [1]. */
static void write_safetensors(const char *path, const char *const *names, int n)
{
    char header[1024];
    int at = snprintf(header, sizeof header, "{");
    for (int i = 0; i < n; i++)
        at += snprintf(header + at, sizeof header - (size_t)at,
                       "%s\"%s\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [%d, %d]}",
                       i ? ", " : "", names[i], 4 * i, 4 * i + 4);
    at += snprintf(header + at, sizeof header - (size_t)at, "}");
    while (at % 8) header[at++] = ' ';
    size_t total = 8 + (size_t)at + 4 * (size_t)n;
    unsigned char *buf = calloc(total, 1);
    assert_non_null(buf);
    for (int b = 0; b < 8; b++) buf[b] = (unsigned char)((uint64_t)at >> (8 * b));
    memcpy(buf + 8, header, (size_t)at);
    ba_test_write_file(path, buf, total);
    free(buf);
}

static void test_leading_zero_index_refused(void **state)
{
    (void)state;
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", ba_test_tmpdir());
    ba_error err;
    ba_error_clear(&err);
    ba_safetensors *st = NULL;
    const char *good[] = {"h.0.attn.c_attn.weight", "h.10.ln_1.bias", "wte.weight"};
    write_safetensors(path, good, 3);
    assert_int_equal(ba_safetensors_open(path, &st, &err), BA_OK);
    ba_safetensors_close(st);
    const char *bad[] = {"h.0.attn.c_attn.weight", "h.00.attn.c_attn.weight"};
    write_safetensors(path, bad, 2);
    st = NULL;
    assert_int_equal(ba_safetensors_open(path, &st, &err), BA_ERR_FORMAT);
    assert_null(st);
    assert_non_null(strstr(err.message, "h.00.attn.c_attn.weight"));
    assert_non_null(strstr(err.message, "leading zero"));
    const char *bad2[] = {"model.layers.01.mlp.up_proj.weight"};
    write_safetensors(path, bad2, 1);
    assert_int_equal(ba_safetensors_open(path, &st, &err), BA_ERR_FORMAT);
    assert_non_null(strstr(err.message, "model.layers.01.mlp.up_proj.weight"));
}

/* config.json and tokenizer.json as FIFOs with no writer: refused, not a hang. */
static void test_fifo_model_files(void **state)
{
    (void)state;
    char dir[4200], path[4300];
    snprintf(dir, sizeof dir, "%s/fifo-model", ba_test_tmpdir());
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    assert_int_equal(mkfifo(path, 0600), 0);
    alarm(20); /* a hang fails instead of blocking */
    ba_model_config cfg;
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(ba_model_config_load(dir, &cfg, &err), BA_ERR_IO);
    assert_non_null(strstr(err.message, "config.json: is a pipe or FIFO"));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    assert_int_equal(mkfifo(path, 0600), 0);
    ba_safetensors *st = NULL;
    assert_int_equal(ba_safetensors_open(path, &st, &err), BA_ERR_IO);
    assert_non_null(strstr(err.message, "pipe or FIFO"));
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    unlink(path);
    assert_int_equal(mkfifo(path, 0600), 0);
    ba_tokenizer *tok = NULL;
    assert_int_equal(ba_tokenizer_load(dir, &tok, &err), BA_ERR_IO);
    assert_non_null(strstr(err.message, "pipe or FIFO"));
    alarm(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rope_scaling_refused),
        cmocka_unit_test(test_leading_zero_index_refused),
        cmocka_unit_test(test_fifo_model_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
