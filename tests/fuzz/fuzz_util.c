/* fuzz_util.c — see fuzz_util.h. */
#include "fuzz_util.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

size_t fuzz_split(const uint8_t *data, size_t size, fuzz_part *parts, size_t max)
{
    const size_t sep_len = strlen(FUZZ_SEPARATOR);
    size_t n = 0, at = 0;
    while (n + 1 < max) {
        const uint8_t *hit = NULL;
        for (size_t i = at; i + sep_len <= size; i++)
            if (memcmp(data + i, FUZZ_SEPARATOR, sep_len) == 0) {
                hit = data + i;
                break;
            }
        if (!hit) break;
        parts[n++] = (fuzz_part){data + at, (size_t)(hit - (data + at))};
        at = (size_t)(hit - data) + sep_len;
    }
    parts[n++] = (fuzz_part){data + at, size - at};
    for (size_t k = n; k < max; k++) parts[k] = (fuzz_part){data + size, 0};
    return n;
}

static char scratch[256];

/* Remove a scratch directory and the files in it. */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char path[512];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

static void remove_scratch(void)
{
    remove_dir(scratch);
}

/* A target that crashed (abort: no atexit) left base/ba-fuzz-<pid>: remove
 * those of processes that no longer exist. */
static void remove_stale(const char *base)
{
    DIR *d = opendir(base);
    if (!d) return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL) {
        int pid = 0;
        char tail = 0;
        if (sscanf(e->d_name, "ba-fuzz-%d%c", &pid, &tail) != 1 || pid <= 0) continue;
        if (kill(pid, 0) == 0 || errno != ESRCH) continue;
        snprintf(path, sizeof path, "%s/%s", base, e->d_name);
        remove_dir(path);
    }
    closedir(d);
}

const char *fuzz_dir(void)
{
    if (scratch[0]) return scratch;
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
                               access("/dev/shm", W_OK) == 0
                           ? "/dev/shm"
                           : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    remove_stale(base);
    snprintf(scratch, sizeof scratch, "%s/ba-fuzz-%d", base, (int)getpid());
    remove_dir(scratch); /* a dead process of the same pid may have left it */
    if (mkdir(scratch, 0700) != 0) {
        perror(scratch);
        abort();
    }
    atexit(remove_scratch);
    return scratch;
}

const char *fuzz_write(int slot, const char *name, const void *data, size_t size)
{
    static char paths[8][512];
    char *path = paths[slot & 7];
    snprintf(path, sizeof paths[0], "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
    return path;
}

void fuzz_remove(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    unlink(path);
}

static int verbose(void)
{
    static int v = -1;
    if (v < 0) v = getenv("FUZZ_VERBOSE") && atoi(getenv("FUZZ_VERBOSE")) > 0;
    return v;
}

void fuzz_rejected(const char *what, const char *message)
{
    if (!message || !message[0]) fuzz_fail("%s: failed without an error message", what);
    if (verbose()) fprintf(stderr, "  %s: rejected: %s\n", what, message);
}

void fuzz_accepted(const char *what)
{
    if (verbose()) fprintf(stderr, "  %s: accepted\n", what);
}

void fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}
