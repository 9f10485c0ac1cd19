/* outfile.h — before a stage computes anything into an output: is the
 * output writable, is another run writing it, are there temporary files of
 * dead runs beside it?
 *
 *   ba_output_lock lock;
 *   BA_CHECK(ba_output_begin(path, false, &lock, err));   (rank 0; agree)
 *   ... compute, write-then-rename ...
 *   ba_output_end(&lock);                                  (every path out)
 *
 * ba_output_begin, for an output file `path` (is_dir false):
 *   - path must not be a directory, and its directory must exist and take a
 *     new file: a probe ".<name>.probe-<pid>" is created (O_EXCL) and
 *     removed there, so a read-only directory or file system, a missing
 *     parent or a full inode table is found before the computation:
 *     BA_ERR_IO "<path>: cannot write in <dir> (<reason>)";
 *   - "<path>.lock" is created with O_EXCL holding "<pid> <host>". When it
 *     exists and its process is alive (or on another host, where it cannot
 *     be asked) BA_ERR_IO "<path>: another run (process <pid> on <host>)
 *     is writing it (lock <path>.lock; remove it if that run is gone)". A
 *     lock of a dead process on this host is taken over with a warning on
 *     stderr;
 *   - stale temporary files ".<name>.partial-<pid>" and "<name>.partial-<pid>"
 *     of dead processes on this host beside path are removed (a line on
 *     stderr each). A live process's are left alone.
 * For an output directory (is_dir true; it may not exist yet, but then its
 * parent must) the probe is made in the directory when it exists, else in
 * its parent, the lock is "<dir>.lock", and the stale temporaries removed
 * are those of any name inside the directory.
 * ba_output_end removes the lock (nothing when none is held). */
#ifndef BRAINALIGN_OUTFILE_H
#define BRAINALIGN_OUTFILE_H

#include <stdbool.h>

#include "brainalign/core/error.h"
#include "brainalign/core/limits.h"

typedef struct {
    char path[BA_PATH_MAX + 8]; /* "<output>.lock" */
    bool held;
} ba_output_lock;

ba_status ba_output_begin(const char *path, bool is_dir, ba_output_lock *lock, ba_error *err);
void ba_output_end(ba_output_lock *lock);

/* The stale-temporary clean-up alone (ba_output_begin does it): how many
 * files were removed. */
int ba_output_clean_stale(const char *path);

#endif
