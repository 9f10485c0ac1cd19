/* fuzz_safetensors_index.c — a sharded checkpoint: the input is
 * model.safetensors.index.json, then (after FUZZ_SEPARATOR lines) the
 * shards s1.safetensors and s2.safetensors, opened with
 * ba_checkpoint_open. On success every tensor is found by name, names are
 * unique and sorted, and every data byte can be read. */
#include <string.h>

#include "brainalign/lm/safetensors.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_part part[3];
    fuzz_split(data, size, part, 3);
    fuzz_write(0, "model.safetensors.index.json", part[0].data, part[0].size);
    fuzz_write(1, "s1.safetensors", part[1].data, part[1].size);
    fuzz_write(2, "s2.safetensors", part[2].data, part[2].size);
    ba_error err;
    ba_error_clear(&err);
    ba_checkpoint *ck = NULL;
    if (ba_checkpoint_open(fuzz_dir(), &ck, &err) == BA_OK) {
        fuzz_accepted("checkpoint");
        size_t n = ba_checkpoint_count(ck);
        FUZZ_ASSERT(ba_checkpoint_n_files(ck) >= 1 && ba_checkpoint_n_files(ck) <= 2);
        for (size_t i = 0; i < n; i++) {
            const ba_tensor *t = ba_checkpoint_at(ck, i);
            FUZZ_ASSERT(t && t->name && t->file);
            FUZZ_ASSERT(ba_checkpoint_lookup(ck, t->name) == t);
            if (i > 0) FUZZ_ASSERT(strcmp(ba_checkpoint_at(ck, i - 1)->name, t->name) < 0);
            FUZZ_ASSERT(t->n_bytes == t->n_elements * ba_dtype_size(t->dtype));
            FUZZ_ASSERT(t->n_bytes <= size);
            const uint8_t *bytes = t->data;
            volatile unsigned sum = 0;
            for (size_t k = 0; k < t->n_bytes; k++) sum += bytes[k];
            (void)sum;
        }
        FUZZ_ASSERT(ba_checkpoint_at(ck, n) == NULL);
        ba_checkpoint_close(ck);
    } else {
        FUZZ_ASSERT(ck == NULL && err.code != BA_OK);
        fuzz_rejected("checkpoint", err.message);
    }
    return 0;
}
