/* limits.h — the one path-length limit of brainalign.
 *
 * Every fixed buffer that holds a file path is BA_PATH_MAX bytes (plus room
 * for a suffix where one is appended), and every helper that builds a path
 * fails with "path too long" rather than cutting it. */
#ifndef BRAINALIGN_LIMITS_H
#define BRAINALIGN_LIMITS_H

#include <limits.h>

#define BA_PATH_MAX 4096 /* bytes of a path, with its terminating NUL */

/* realpath() writes up to PATH_MAX bytes: a BA_PATH_MAX buffer holds them. */
#if defined(PATH_MAX) && PATH_MAX > BA_PATH_MAX
#error "BA_PATH_MAX is smaller than this system's PATH_MAX"
#endif

#endif
