/* fuzz_safetensors.c — one safetensors file (8-byte header length, JSON
 * header, data area), opened as a file and as a one-file checkpoint.
 * On success: the tensors tile the data area of the input, each tensor's
 * byte count agrees with its shape and dtype, lookups find every tensor. */
#include <string.h>

#include "brainalign/lm/safetensors.h"
#include "fuzz_util.h"

static void check_tensor(const ba_tensor *t, size_t size)
{
    FUZZ_ASSERT(t->name != NULL);
    FUZZ_ASSERT((unsigned)t->dtype < BA_DTYPE_COUNT);
    FUZZ_ASSERT(t->rank >= 0 && t->rank <= BA_TENSOR_MAX_RANK);
    size_t n = 1;
    for (int d = 0; d < t->rank; d++) {
        FUZZ_ASSERT(t->shape[d] >= 0);
        n *= (size_t)t->shape[d];
    }
    FUZZ_ASSERT(n == t->n_elements);
    FUZZ_ASSERT(t->n_bytes == t->n_elements * ba_dtype_size(t->dtype));
    FUZZ_ASSERT(t->n_bytes <= size);
    FUZZ_ASSERT((t->data == NULL) == (t->n_bytes == 0));
    /* Touch every byte: a pointer past the map faults here. */
    const uint8_t *bytes = t->data;
    volatile unsigned sum = 0;
    for (size_t i = 0; i < t->n_bytes; i++) sum += bytes[i];
    (void)sum;
}

static void check_file(const ba_safetensors *st, const uint8_t *data, size_t size)
{
    size_t total = 0;
    for (size_t i = 0; i < ba_safetensors_count(st); i++) {
        const ba_tensor *t = ba_safetensors_at(st, i);
        FUZZ_ASSERT(t != NULL);
        check_tensor(t, size);
        FUZZ_ASSERT(ba_safetensors_lookup(st, t->name) == t);
        if (i > 0) FUZZ_ASSERT(strcmp(ba_safetensors_at(st, i - 1)->name, t->name) < 0);
        total += t->n_bytes;
    }
    FUZZ_ASSERT(ba_safetensors_at(st, ba_safetensors_count(st)) == NULL);
    /* header length + 8 + data area == file size */
    uint64_t header = 0;
    for (int i = 7; i >= 0; i--) header = header << 8 | data[i];
    FUZZ_ASSERT(8 + header + total == size);
    (void)ba_safetensors_metadata(st, "format");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write(0, "model.safetensors", data, size);
    ba_error err;
    ba_error_clear(&err);
    ba_safetensors *st = NULL;
    if (ba_safetensors_open(path, &st, &err) == BA_OK) {
        fuzz_accepted("file");
        check_file(st, data, size);
        ba_safetensors_close(st);
    } else {
        FUZZ_ASSERT(st == NULL && err.code != BA_OK);
        fuzz_rejected("file", err.message);
    }
    ba_checkpoint *ck = NULL;
    ba_error_clear(&err);
    if (ba_checkpoint_open(fuzz_dir(), &ck, &err) == BA_OK) {
        fuzz_accepted("checkpoint");
        FUZZ_ASSERT(ba_checkpoint_n_files(ck) == 1);
        for (size_t i = 0; i < ba_checkpoint_count(ck); i++) {
            const ba_tensor *t = ba_checkpoint_at(ck, i);
            check_tensor(t, size);
            FUZZ_ASSERT(ba_checkpoint_lookup(ck, t->name) == t);
        }
        const ba_tensor *t = NULL;
        FUZZ_ASSERT(ba_checkpoint_get(ck, "\x01 no such tensor", &t, &err) != BA_OK);
        ba_checkpoint_close(ck);
    } else {
        FUZZ_ASSERT(ck == NULL);
        fuzz_rejected("checkpoint", err.message);
    }
    return 0;
}
