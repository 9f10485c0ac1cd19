/* fuzz_util.h — helpers shared by the fuzz targets (tests/fuzz/fuzz_*.c).
 *
 * Most parsers take file paths, so a target writes the input bytes to
 * files in a private scratch directory (under /dev/shm when there is one,
 * to keep the executions fast) and calls the parser on them. Inputs that
 * stand for several files (vocab.json + merges.txt, an index + shards, a
 * model + a text to encode) are split on the line FUZZ_SEPARATOR.
 *
 * A target built with -fsanitize=fuzzer gets libFuzzer's main; built
 * without it (the ordinary and the sanitizer test builds), replay_main.c
 * supplies a main that replays files and corpus directories. */
#ifndef BRAINALIGN_FUZZ_UTIL_H
#define BRAINALIGN_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Between two files of one input: a line holding only "=====". */
#define FUZZ_SEPARATOR "\n=====\n"

typedef struct {
    const uint8_t *data;
    size_t size;
} fuzz_part;

/* Split data on FUZZ_SEPARATOR into at most max parts (the last part keeps
 * any further separators). Returns the number of parts (>= 1). */
size_t fuzz_split(const uint8_t *data, size_t size, fuzz_part *parts, size_t max);

/* The scratch directory of this process, <base>/ba-fuzz-<pid> with base
 * /dev/shm, $TMPDIR or /tmp (created on first use, removed at exit; those
 * of dead processes, left by crashes, are removed on the next start). */
const char *fuzz_dir(void);

/* Write bytes to fuzz_dir()/name; returns the path (static buffer, one per
 * slot 0..7). Aborts when the file cannot be written: that is a broken
 * harness, not a finding. */
const char *fuzz_write(int slot, const char *name, const void *data, size_t size);

/* Remove fuzz_dir()/name if it exists (so that a file from the previous
 * input does not leak into this one). */
void fuzz_remove(const char *name);

/* A parser refused the input: its message must not be empty. With
 * FUZZ_VERBOSE=1 in the environment the message is printed (to see what
 * each seed exercises); "accepted" is printed for inputs that parse. */
void fuzz_rejected(const char *what, const char *message);
void fuzz_accepted(const char *what);

/* Abort with a message: an invariant of a successful parse did not hold. */
void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#define FUZZ_ASSERT(cond)                                                       \
    do {                                                                        \
        if (!(cond)) fuzz_fail("%s:%d: invariant '%s' does not hold", __FILE__, \
                               __LINE__, #cond);                                \
    } while (0)

#endif
