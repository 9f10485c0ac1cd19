/* test_safetensors.c — reading safetensors files and checkpoint
 * directories: a valid file (written by our writer and by hand), sharded
 * checkpoints, and corrupt files that must each fail with a clear message
 * naming the file and the tensor. */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/kernels/kernels.h"
#include "brainalign/lm/safetensors.h"

/* A file made of an explicit header length, header text and data bytes. */
static void write_raw(const char *path, uint64_t header_len, const char *header,
                      const void *data, size_t data_len)
{
    size_t hl = strlen(header);
    size_t total = 8 + hl + data_len;
    unsigned char *buf = malloc(total);
    assert_non_null(buf);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(header_len >> (8 * i));
    memcpy(buf + 8, header, hl);
    if (data_len) memcpy(buf + 8 + hl, data, data_len);
    ba_test_write_file(path, buf, total);
    free(buf);
}

static void write_st(const char *path, const char *header, const void *data, size_t data_len)
{
    write_raw(path, strlen(header), header, data, data_len);
}

/* Open must fail with `code` and a message containing each of the
 * fragments (NULL-terminated list). */
static void expect_open_failure(const char *path, ba_status code, ...)
{
    ba_safetensors *st = NULL;
    ba_error err;
    ba_error_clear(&err);
    ba_status rc = ba_safetensors_open(path, &st, &err);
    if (rc == BA_OK) fail_msg("%s opened, expected an error", path);
    assert_null(st);
    assert_int_equal(rc, code);
    assert_non_null(strstr(err.message, path));
    va_list ap;
    va_start(ap, code);
    for (const char *frag = va_arg(ap, const char *); frag; frag = va_arg(ap, const char *))
        if (!strstr(err.message, frag))
            fail_msg("message '%s' lacks '%s'", err.message, frag);
    va_end(ap);
}

static char *path_in(const char *dir, const char *name)
{
    static char buf[4][4096];
    static int next = 0;
    char *p = buf[next++ % 4];
    snprintf(p, 4096, "%s/%s", dir, name);
    return p;
}

/* ---- valid files -------------------------------------------------------------- */

static void test_writer_round_trip(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    const char *path = path_in(dir, "model.safetensors");
    float a[6] = {1, 2, 3, 4, 5, -6};
    uint16_t b[4], c[4];
    for (int i = 0; i < 4; i++) {
        b[i] = ba_f32_to_bf16(0.5f * (float)i);
        c[i] = ba_f32_to_f16(-0.25f * (float)i);
    }
    ba_tensor_spec specs[] = {
        {"layer.a", BA_DTYPE_F32, 2, {2, 3}},
        {"layer.b", BA_DTYPE_BF16, 1, {4}},
        {"c", BA_DTYPE_F16, 3, {1, 2, 2}},
        {"empty", BA_DTYPE_F32, 2, {0, 5}},
    };
    const char *meta[] = {"format", "pt"};
    ba_st_writer *w = NULL;
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(ba_st_writer_open(path, specs, 4, meta, 1, &w, &err), BA_OK);
    /* In chunks that straddle tensors. */
    assert_int_equal(ba_st_writer_write(w, a, 10, &err), BA_OK);
    unsigned char rest[14 + 8 + 8];
    memcpy(rest, (unsigned char *)a + 10, 14);
    memcpy(rest + 14, b, 8);
    memcpy(rest + 22, c, 8);
    assert_int_equal(ba_st_writer_write(w, rest, sizeof rest, &err), BA_OK);
    assert_int_equal(ba_st_writer_finish(w, &err), BA_OK);

    ba_safetensors *st = NULL;
    assert_int_equal(ba_safetensors_open(path, &st, &err), BA_OK);
    assert_int_equal(ba_safetensors_count(st), 4);
    assert_string_equal(ba_safetensors_metadata(st, "format"), "pt");
    const ba_tensor *t = ba_safetensors_lookup(st, "layer.a");
    assert_non_null(t);
    assert_int_equal(t->dtype, BA_DTYPE_F32);
    assert_int_equal(t->rank, 2);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 3);
    assert_int_equal(t->n_elements, 6);
    assert_memory_equal(t->data, a, sizeof a);
    assert_int_equal((uintptr_t)t->data % 8, 0); /* header padded: data aligned */
    t = ba_safetensors_lookup(st, "layer.b");
    assert_int_equal(t->dtype, BA_DTYPE_BF16);
    assert_memory_equal(t->data, b, sizeof b);
    t = ba_safetensors_lookup(st, "c");
    assert_int_equal(t->rank, 3);
    assert_memory_equal(t->data, c, sizeof c);
    t = ba_safetensors_lookup(st, "empty");
    assert_int_equal(t->n_bytes, 0);
    assert_null(ba_safetensors_lookup(st, "missing"));
    ba_safetensors_close(st);
}

static void test_writer_refuses_short_data(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    const char *path = path_in(dir, "short.safetensors");
    ba_tensor_spec spec = {"x", BA_DTYPE_F32, 1, {4}};
    ba_st_writer *w = NULL;
    ba_error err;
    ba_error_clear(&err);
    float x[4] = {0};
    assert_int_equal(ba_st_writer_open(path, &spec, 1, NULL, 0, &w, &err), BA_OK);
    assert_int_equal(ba_st_writer_write(w, x, 8, &err), BA_OK);
    assert_int_not_equal(ba_st_writer_finish(w, &err), BA_OK);
    assert_non_null(strstr(err.message, "8 data bytes written"));
    /* No file under the final name, no temporary left behind. */
    assert_int_equal(ba_test_system("test ! -e %s && test -z \"$(ls %s)\"", path, dir), 0);
}

static void test_hand_written_file(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    const char *path = path_in(dir, "hand.safetensors");
    /* Scalar, zero-size tensor, padding spaces, keys out of offset order. */
    const char *header = "{\"b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[8,12]},"
                         "\"z\":{\"dtype\":\"F16\",\"shape\":[3,0],\"data_offsets\":[12,12]},"
                         "\"a\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}    ";
    unsigned char data[12] = {1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0x80, 0x3f};
    write_st(path, header, data, sizeof data);
    ba_safetensors *st = NULL;
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(ba_safetensors_open(path, &st, &err), BA_OK);
    assert_int_equal(ba_safetensors_count(st), 3);
    assert_string_equal(ba_safetensors_at(st, 0)->name, "a"); /* name order */
    const ba_tensor *b = ba_safetensors_lookup(st, "b");
    assert_int_equal(b->rank, 0);
    assert_int_equal(b->n_elements, 1);
    float one;
    memcpy(&one, b->data, 4);
    assert_true(one == 1.0f);
    assert_null(ba_safetensors_metadata(st, "format"));
    ba_safetensors_close(st);
}

/* ---- corrupt files --------------------------------------------------------------- */

static const char *GOOD_HEADER =
    "{\"__metadata__\":{\"format\":\"pt\"},"
    "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
    "\"v\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]}}";

static void test_truncated_file(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    unsigned char data[32] = {0};
    const char *p = path_in(dir, "trunc_data.safetensors");
    write_st(p, GOOD_HEADER, data, 28); /* 4 bytes of v missing */
    expect_open_failure(p, BA_ERR_FORMAT, "'v'", "outside the data area", NULL);
    p = path_in(dir, "trunc_len.safetensors");
    ba_test_write_file(p, "\x10\x00\x00", 3);
    expect_open_failure(p, BA_ERR_FORMAT, "8-byte header length", NULL);
    p = path_in(dir, "trunc_header.safetensors");
    char cut[40];
    memcpy(cut, GOOD_HEADER, 39);
    cut[39] = '\0';
    write_raw(p, strlen(GOOD_HEADER), cut, NULL, 0);
    expect_open_failure(p, BA_ERR_FORMAT, "runs past the end of the file", NULL);
}

static void test_header_length_past_end(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    unsigned char data[32] = {0};
    const char *p = path_in(dir, "long.safetensors");
    write_raw(p, (uint64_t)1 << 40, GOOD_HEADER, data, sizeof data);
    expect_open_failure(p, BA_ERR_FORMAT, "header length 1099511627776", "past the end", NULL);
}

static void test_invalid_json(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    unsigned char data[8] = {0};
    const char *p = path_in(dir, "json.safetensors");
    write_st(p, "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]", data, 8);
    expect_open_failure(p, BA_ERR_FORMAT, "not valid JSON", NULL);
    p = path_in(dir, "array.safetensors");
    write_st(p, "[1, 2]", data, 8);
    expect_open_failure(p, BA_ERR_FORMAT, "starting with '{'", NULL);
    p = path_in(dir, "dup.safetensors");
    write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", data, 8);
    expect_open_failure(p, BA_ERR_FORMAT, "duplicate", NULL);
    p = path_in(dir, "meta.safetensors");
    write_st(p, "{\"__metadata__\":{\"format\":1},"
                "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", data, 8);
    expect_open_failure(p, BA_ERR_FORMAT, "__metadata__", NULL);
    p = path_in(dir, "fields.safetensors");
    write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", data, 8);
    expect_open_failure(p, BA_ERR_FORMAT, "'w'", "non-negative integer", NULL);
}

static void test_unknown_dtype(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    unsigned char data[8] = {0};
    const char *p = path_in(dir, "dtype.safetensors");
    write_st(p, "{\"h.0.attn.c_attn.weight\":{\"dtype\":\"Q4_0\",\"shape\":[16],"
                "\"data_offsets\":[0,8]}}", data, 8);
    expect_open_failure(p, BA_ERR_FORMAT, "'h.0.attn.c_attn.weight'", "unknown dtype 'Q4_0'", NULL);
}

static void test_offsets_outside_data(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    unsigned char data[16] = {0};
    const char *p = path_in(dir, "outside.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"far\":{\"dtype\":\"F32\",\"shape\":[250],\"data_offsets\":[8,1008]}}",
             data, sizeof data);
    expect_open_failure(p, BA_ERR_FORMAT, "'far'", "outside the data area of 16 bytes", NULL);
    p = path_in(dir, "reversed.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", data, 8);
    expect_open_failure(p, BA_ERR_FORMAT, "'a'", "end before", NULL);
}

static void test_overlapping_tensors(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    unsigned char data[24] = {0};
    const char *p = path_in(dir, "overlap.safetensors");
    write_st(p, "{\"first\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                "\"second\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
             data, sizeof data);
    expect_open_failure(p, BA_ERR_FORMAT, "'second'", "overlaps tensor 'first'", NULL);
    p = path_in(dir, "alias.safetensors");
    write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", data, 8);
    expect_open_failure(p, BA_ERR_FORMAT, "overlaps", NULL);
    p = path_in(dir, "hole.safetensors");
    write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}", data, 24);
    expect_open_failure(p, BA_ERR_FORMAT, "'y'", "hole", NULL);
    p = path_in(dir, "tail.safetensors");
    write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", data, 24);
    expect_open_failure(p, BA_ERR_FORMAT, "not described by the header", NULL);
}

static void test_shape_offset_mismatch(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    unsigned char data[20] = {0};
    const char *p = path_in(dir, "mismatch.safetensors");
    write_st(p, "{\"h.1.mlp.c_fc.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],"
                "\"data_offsets\":[0,20]}}", data, sizeof data);
    expect_open_failure(p, BA_ERR_FORMAT, "'h.1.mlp.c_fc.weight'", "need 24 bytes", "span 20",
                        NULL);
    p = path_in(dir, "overflow.safetensors");
    write_st(p, "{\"big\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
                "\"data_offsets\":[0,20]}}", data, sizeof data);
    expect_open_failure(p, BA_ERR_FORMAT, "'big'", "overflows", NULL);
}

/* ---- checkpoint directories --------------------------------------------------------- */

static void make_shard(const char *path, const char *name_a, const char *name_b, float base)
{
    char header[512];
    snprintf(header, sizeof header,
             "{\"%s\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"%s\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}    ",
             name_a, name_b);
    float data[3] = {base, base + 1, base + 2};
    write_st(path, header, data, sizeof data);
}

static void test_missing_tensor_names_it(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    make_shard(path_in(dir, "model.safetensors"), "wte.weight", "wpe.weight", 1);
    ba_checkpoint *ck = NULL;
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(ba_checkpoint_open(dir, &ck, &err), BA_OK);
    assert_int_equal(ba_checkpoint_count(ck), 2);
    assert_int_equal(ba_checkpoint_n_files(ck), 1);
    const ba_tensor *t = NULL;
    assert_int_equal(ba_checkpoint_get(ck, "wte.weight", &t, &err), BA_OK);
    float second;
    memcpy(&second, (const char *)t->data + 4, sizeof second); /* data may be unaligned */
    assert_true(second == 2.0f);
    assert_int_not_equal(ba_checkpoint_get(ck, "h.7.ln_1.weight", &t, &err), BA_OK);
    assert_null(t);
    assert_non_null(strstr(err.message, "'h.7.ln_1.weight'"));
    assert_non_null(strstr(err.message, dir));
    ba_checkpoint_close(ck);
}

static const char *INDEX =
    "{\"metadata\":{\"total_size\":24},\"weight_map\":{"
    "\"a\":\"model-00001-of-00002.safetensors\",\"b\":\"model-00001-of-00002.safetensors\","
    "\"c\":\"model-00002-of-00002.safetensors\",\"d\":\"model-00002-of-00002.safetensors\"}}";

static void test_sharded_checkpoint(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    make_shard(path_in(dir, "model-00001-of-00002.safetensors"), "a", "b", 10);
    make_shard(path_in(dir, "model-00002-of-00002.safetensors"), "c", "d", 20);
    ba_test_write_file(path_in(dir, "model.safetensors.index.json"), INDEX, strlen(INDEX));
    ba_checkpoint *ck = NULL;
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(ba_checkpoint_open(dir, &ck, &err), BA_OK);
    assert_int_equal(ba_checkpoint_count(ck), 4);
    assert_int_equal(ba_checkpoint_n_files(ck), 2);
    const ba_tensor *c = ba_checkpoint_lookup(ck, "c");
    assert_non_null(c);
    assert_non_null(strstr(c->file, "model-00002-of-00002.safetensors"));
    float first, b;
    memcpy(&first, c->data, sizeof first);
    memcpy(&b, ba_checkpoint_lookup(ck, "b")->data, sizeof b);
    assert_true(first == 20.0f && b == 12.0f);
    ba_checkpoint_close(ck);
}

static void expect_checkpoint_failure(const char *dir, const char *frag1, const char *frag2)
{
    ba_checkpoint *ck = NULL;
    ba_error err;
    ba_error_clear(&err);
    assert_int_not_equal(ba_checkpoint_open(dir, &ck, &err), BA_OK);
    assert_null(ck);
    if (!strstr(err.message, frag1) || (frag2 && !strstr(err.message, frag2)))
        fail_msg("message '%s' lacks '%s' / '%s'", err.message, frag1, frag2 ? frag2 : "");
}

static void test_bad_index_names_missing_shard(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    make_shard(path_in(dir, "model-00001-of-00002.safetensors"), "a", "b", 10);
    ba_test_write_file(path_in(dir, "model.safetensors.index.json"), INDEX, strlen(INDEX));
    expect_checkpoint_failure(dir, "shard 'model-00002-of-00002.safetensors'", "does not exist");

    /* A tensor the index places in the wrong shard. */
    make_shard(path_in(dir, "model-00002-of-00002.safetensors"), "c", "e", 20);
    expect_checkpoint_failure(dir, "tensor 'd'", "does not contain it");

    /* The same tensor in two shards. */
    const char *dup = "{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s2.safetensors\"}}";
    const char *dir2 = ba_test_tmpdir();
    make_shard(path_in(dir2, "s1.safetensors"), "a", "b", 1);
    make_shard(path_in(dir2, "s2.safetensors"), "a", "b", 2);
    ba_test_write_file(path_in(dir2, "model.safetensors.index.json"), dup, strlen(dup));
    expect_checkpoint_failure(dir2, "'", "weight_map");

    /* Not JSON; no weight_map; a path instead of a file name. */
    const char *dir3 = ba_test_tmpdir();
    ba_test_write_file(path_in(dir3, "model.safetensors.index.json"), "{oops", 5);
    expect_checkpoint_failure(dir3, "model.safetensors.index.json", "not valid JSON");
    ba_test_write_file(path_in(dir3, "model.safetensors.index.json"), "{}", 2);
    expect_checkpoint_failure(dir3, "weight_map", NULL);
    const char *escape = "{\"weight_map\":{\"a\":\"../elsewhere.safetensors\"}}";
    ba_test_write_file(path_in(dir3, "model.safetensors.index.json"), escape, strlen(escape));
    expect_checkpoint_failure(dir3, "'a'", "same directory");
}

static void test_directory_without_checkpoint(void **state)
{
    (void)state;
    const char *dir = ba_test_tmpdir();
    expect_checkpoint_failure(dir, dir, "no model.safetensors");
    expect_checkpoint_failure("/nonexistent/brainalign/ckpt", "/nonexistent/brainalign/ckpt",
                              "not a checkpoint directory");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_round_trip),
        cmocka_unit_test(test_writer_refuses_short_data),
        cmocka_unit_test(test_hand_written_file),
        cmocka_unit_test(test_truncated_file),
        cmocka_unit_test(test_header_length_past_end),
        cmocka_unit_test(test_invalid_json),
        cmocka_unit_test(test_unknown_dtype),
        cmocka_unit_test(test_offsets_outside_data),
        cmocka_unit_test(test_overlapping_tensors),
        cmocka_unit_test(test_shape_offset_mismatch),
        cmocka_unit_test(test_missing_tensor_names_it),
        cmocka_unit_test(test_sharded_checkpoint),
        cmocka_unit_test(test_bad_index_names_missing_shard),
        cmocka_unit_test(test_directory_without_checkpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
