/* fuzz_stimuli.c — story files (align.csv, TextGrid, TSV/CSV word tables).
 * The first byte of the input picks the file name and so the reader
 * ('a' align.csv, 't' s.TextGrid, 'w' s.tsv, 'c' s.csv; any other byte:
 * align.csv read as BA_STIM_AUTO, which also recognises TextGrids by
 * content); the rest is the file. On success the story has words, valid
 * UTF-8 C strings, finite non-decreasing onsets and offsets >= onsets; on
 * failure it is empty. */
#include <math.h>
#include <string.h>

#include "brainalign/io/stimuli.h"
#include "fuzz_util.h"

static int utf8_ok(const unsigned char *s)
{
    while (*s) {
        int n = *s < 0x80 ? 1 : (*s & 0xE0) == 0xC0 ? 2 : (*s & 0xF0) == 0xE0 ? 3
                              : (*s & 0xF8) == 0xF0 ? 4 : 0;
        if (n == 0) return 0;
        for (int k = 1; k < n; k++)
            if ((s[k] & 0xC0) != 0x80) return 0;
        s += n;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    const char *name;
    ba_stimulus_format format = BA_STIM_AUTO;
    switch (data[0]) {
    case 'a': name = "align.csv"; format = BA_STIM_ALIGN_CSV; break;
    case 't': name = "s.TextGrid"; format = BA_STIM_TEXTGRID; break;
    case 'w': name = "s.tsv"; format = BA_STIM_WORDS_TSV; break;
    case 'c': name = "s.csv"; format = BA_STIM_WORDS_TSV; break;
    default: name = "align.csv"; break;
    }
    const char *path = fuzz_write(0, name, data + 1, size - 1);
    ba_story story;
    ba_story_read_stats stats;
    ba_error err;
    ba_error_clear(&err);
    if (ba_story_read_ex(path, format, NULL, &story, &stats, &err) == BA_OK) {
        fuzz_accepted(name);
        FUZZ_ASSERT(story.n_words > 0 && story.words && story.onset && story.offset);
        FUZZ_ASSERT(memchr(story.name, '\0', sizeof story.name) != NULL);
        for (size_t i = 0; i < story.n_words; i++) {
            FUZZ_ASSERT(story.words[i] != NULL);
            FUZZ_ASSERT(utf8_ok((const unsigned char *)story.words[i]));
            FUZZ_ASSERT(isfinite(story.onset[i]) && isfinite(story.offset[i]));
            FUZZ_ASSERT(story.onset[i] >= 0 && story.offset[i] >= story.onset[i]);
            if (i > 0) FUZZ_ASSERT(story.onset[i] >= story.onset[i - 1]);
        }
        FUZZ_ASSERT(stats.n_interpolated <= story.n_words && stats.n_clamped <= story.n_words);
        ba_story_free(&story);
    } else {
        fuzz_rejected(name, err.message);
        FUZZ_ASSERT(story.n_words == 0 && story.words == NULL);
        FUZZ_ASSERT(stats.n_interpolated == 0 && stats.n_clamped == 0 && stats.n_skipped == 0);
    }
    fuzz_remove(name);
    return 0;
}
