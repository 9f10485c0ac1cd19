/* fuzz_label_table.c — a label table for NIfTI label atlases (FreeSurfer
 * LUT "index name r g b a" lines or "index name" lines, tab- or
 * space-separated, '#' comments, an optional header), read with
 * ba_label_table_read. On success the indices are distinct and in range and
 * every name is non-empty. */
#include <string.h>

#include "brainalign/io/atlas_readers.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write(0, "labels.txt", data, size);
    ba_label_table t;
    ba_error err;
    ba_error_clear(&err);
    if (ba_label_table_read(path, &t, &err) == BA_OK) {
        fuzz_accepted("label table");
        FUZZ_ASSERT(t.n > 0);
        for (int k = 0; k < t.n; k++) {
            FUZZ_ASSERT(t.index[k] >= 0);
            FUZZ_ASSERT(t.names[k] && t.names[k][0]);
            for (int j = 0; j < k; j++) FUZZ_ASSERT(t.index[j] != t.index[k]);
        }
        ba_label_table_free(&t);
    } else {
        fuzz_rejected("label table", err.message);
    }
    return 0;
}
