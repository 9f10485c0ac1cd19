/* fs.h — file-system helpers: path suffixes, joining, existence, reading a
 * whole file, creating directories. Paths are at most BA_PATH_MAX bytes;
 * a path that does not fit is an error, never cut. */
#ifndef BRAINALIGN_FS_H
#define BRAINALIGN_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "brainalign/core/error.h"
#include "brainalign/core/limits.h"

/* Does `s` end with `suffix`? With `proper`, s must also be longer than the
 * suffix (".csv" itself does not count as a file ending in ".csv"). */
bool ba_has_suffix(const char *s, const char *suffix, bool proper);
/* The same, ignoring ASCII case (".TextGrid" matches "a.textgrid"). */
bool ba_has_suffix_ci(const char *s, const char *suffix, bool proper);

/* Is `path` an existing regular file (following symbolic links)? */
bool ba_file_exists(const char *path);

/* BA_OK when `path` is a regular file (following symbolic links), else
 * BA_ERR_IO "<path>: is a pipe or FIFO, expected a regular file" (or a
 * directory, a device...) or "<path>: cannot open: <reason>". Call it
 * before opening a file that must be one: opening a FIFO blocks. */
ba_status ba_require_regular(const char *path, ba_error *err);

/* A name that becomes a path component (a subject, a condition, a story):
 * not empty, no '/' or '\\', no "..", no control characters, no leading
 * '-', under 256 bytes. ba_valid_name says why not in *why (may be NULL);
 * ba_check_name fails with BA_ERR_USAGE "<what> '<name>': not a valid name,
 * <why> ..." (what: "[bold] subjects" or "--condition"). */
bool ba_valid_name(const char *name, const char **why);
ba_status ba_check_name(const char *what, const char *name, ba_error *err);

/* out = "<dir>/<name>" in a buffer of `cap` bytes; BA_ERR_USAGE
 * "<dir>/<name>: path too long" when it does not fit (out is then ""). */
ba_status ba_join_path(char *out, size_t cap, const char *dir, const char *name,
                       ba_error *err);

/* The whole of file `path` in a fresh buffer (free() it), *len bytes, plus
 * a terminating NUL byte not counted in *len so that text can be parsed in
 * place. Only regular files (ba_require_regular). BA_ERR_IO "<path>: cannot open: <reason>" or "<path>: cannot read:
 * <reason> (after N bytes)";
 * BA_ERR_NOMEM when it does not fit in memory. On failure *data is NULL. */
ba_status ba_read_file(const char *path, unsigned char **data, size_t *len, ba_error *err);

/* mkdir -p: create `path` and its missing parents (mode 0777 less the
 * umask). An existing directory is fine; BA_ERR_IO naming the path when it
 * cannot be created or is not a directory, BA_ERR_USAGE when the path is
 * empty or longer than BA_PATH_MAX. */
ba_status ba_make_dirs(const char *path, ba_error *err);

/* Write-then-rename, so that a failure leaves nothing half-written:
 *
 *   char temp[BA_PATH_MAX + 16];
 *   FILE *f = ba_partial_open(path, temp, sizeof temp, err);
 *   if (!f) return BA_ERR_IO;
 *   ... fprintf(f, ...) ...
 *   return ba_partial_close(f, temp, path, rc, err);
 *
 * ba_partial_open opens "<path>.partial" (its name in temp, `size` bytes) for
 * writing; NULL and BA_ERR_IO "<path>: cannot write (<reason>)" when it cannot
 * (BA_ERR_USAGE when the name does not fit). ba_partial_close closes f and,
 * when rc is BA_OK and every write reached the file, renames it to path;
 * otherwise it removes it. It returns rc when rc already failed (err is left
 * as it is), else BA_OK or BA_ERR_IO "<path>: cannot write". */
FILE *ba_partial_open(const char *path, char *temp, size_t size, ba_error *err);
ba_status ba_partial_close(FILE *f, const char *temp, const char *path, ba_status rc,
                           ba_error *err);

/* FNV-1a (core/hash.h) continued from *h over the first `limit` bytes of
 * the file at `path` (all of it when limit is 0); *bytes (may be NULL)
 * receives how many were hashed. BA_ERR_IO when it cannot be opened or
 * read, or is shorter than a non-zero limit. */
ba_status ba_hash_file(const char *path, size_t limit, uint64_t *h, unsigned long long *bytes,
                       ba_error *err);

#endif
