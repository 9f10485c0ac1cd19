/* fs.h — file-system helpers: path suffixes, joining, existence, reading a
 * whole file, creating directories. Paths are at most BA_PATH_MAX bytes;
 * a path that does not fit is an error, never cut. */
#ifndef BRAINALIGN_FS_H
#define BRAINALIGN_FS_H

#include <stdbool.h>
#include <stddef.h>

#include "brainalign/core/error.h"
#include "brainalign/core/limits.h"

/* Does `s` end with `suffix`? With `proper`, s must also be longer than the
 * suffix (".csv" itself does not count as a file ending in ".csv"). */
bool ba_has_suffix(const char *s, const char *suffix, bool proper);
/* The same, ignoring ASCII case (".TextGrid" matches "a.textgrid"). */
bool ba_has_suffix_ci(const char *s, const char *suffix, bool proper);

/* Is `path` an existing regular file (following symbolic links)? */
bool ba_file_exists(const char *path);

/* out = "<dir>/<name>" in a buffer of `cap` bytes; BA_ERR_USAGE
 * "<dir>/<name>: path too long" when it does not fit (out is then ""). */
ba_status ba_join_path(char *out, size_t cap, const char *dir, const char *name,
                       ba_error *err);

/* The whole of file `path` in a fresh buffer (free() it), *len bytes, plus
 * a terminating NUL byte not counted in *len so that text can be parsed in
 * place. BA_ERR_IO "<path>: cannot open: <reason>" or "<path>: read error";
 * BA_ERR_NOMEM when it does not fit in memory. On failure *data is NULL. */
ba_status ba_read_file(const char *path, unsigned char **data, size_t *len, ba_error *err);

/* mkdir -p: create `path` and its missing parents (mode 0777 less the
 * umask). An existing directory is fine; BA_ERR_IO naming the path when it
 * cannot be created or is not a directory, BA_ERR_USAGE when the path is
 * empty or longer than BA_PATH_MAX. */
ba_status ba_make_dirs(const char *path, ba_error *err);

#endif
