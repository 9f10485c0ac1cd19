/* fuzz_annot.c — a FreeSurfer .annot (big-endian vertex labels and a
 * colour table in the old or new layout), read with ba_annot_read and
 * turned into an atlas with ba_atlas_from_annot. On success every vertex
 * label is -1 or a filled colour-table slot, and every atlas label is -1 or
 * a region. */
#include <string.h>

#include "brainalign/io/atlas_readers.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write(0, "lh.annot", data, size);
    ba_annot a;
    ba_error err;
    ba_error_clear(&err);
    if (ba_annot_read(path, &a, &err) == BA_OK) {
        fuzz_accepted("annot");
        FUZZ_ASSERT(a.n_vertices >= 0 && a.n_entries >= 0);
        FUZZ_ASSERT(a.ctab_version == 1 || a.ctab_version == 2);
        FUZZ_ASSERT((size_t)a.n_vertices * 8 <= size);
        for (long v = 0; v < a.n_vertices; v++) {
            int slot = a.labels[v];
            FUZZ_ASSERT(slot >= -1 && slot < a.n_entries);
            if (slot >= 0) FUZZ_ASSERT(a.names[slot] != NULL);
        }
        ba_annot_free(&a);
    } else {
        fuzz_rejected("annot", err.message);
    }
    ba_atlas atlas;
    ba_error_clear(&err);
    if (ba_atlas_from_annot(path, NULL, NULL, &atlas, &err) == BA_OK) {
        fuzz_accepted("atlas");
        for (long v = 0; v < atlas.n_voxels; v++)
            FUZZ_ASSERT(atlas.labels[v] >= -1 && atlas.labels[v] < atlas.n_regions);
        for (int g = 0; g < atlas.n_regions; g++)
            FUZZ_ASSERT(atlas.names[g] && strncmp(atlas.names[g], "lh.", 3) == 0);
        ba_atlas_free(&atlas);
    } else {
        fuzz_rejected("atlas", err.message);
    }
    return 0;
}
