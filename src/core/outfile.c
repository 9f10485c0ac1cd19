/* outfile.c — output writability, output locks, stale temporaries (see
 * outfile.h). */
#define _XOPEN_SOURCE 700 /* gethostname, kill */
#include "brainalign/core/outfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* dir (".", or path up to its last '/') and name of path. */
static void split(const char *path, char *dir, size_t cap, const char **name)
{
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, cap, ".");
    else if (slash == path) snprintf(dir, cap, "/");
    else snprintf(dir, cap, "%.*s", (int)(slash - path), path);
    *name = slash ? slash + 1 : path;
}

/* Linux: is pid a zombie (ended, not yet reaped: a killed MPI rank whose
 * parent is gone lingers so until init reaps it)? false when unknown. */
static bool zombie(long pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *close_paren = strrchr(buf, ')'); /* "pid (comm) S ..." */
    return close_paren && close_paren[1] == ' ' && close_paren[2] == 'Z';
}

/* Is process pid alive on this host? (EPERM: alive, someone else's) */
static bool alive(long pid)
{
    if (pid <= 0 || (long)(pid_t)pid != pid) return false;
    if (kill((pid_t)pid, 0) != 0 && errno != EPERM) return false;
    return !zombie(pid);
}

static void host_name(char *out, size_t cap)
{
    if (gethostname(out, cap) != 0) snprintf(out, cap, "?");
    out[cap - 1] = '\0';
    for (char *p = out; *p; p++)
        if (*p == ' ' || *p == '\n') *p = '_';
}

/* Create and remove a probe file in dir. */
static ba_status probe(const char *path, const char *dir, const char *name, ba_error *err)
{
    char probe_path[BA_PATH_MAX + 300];
    int n = snprintf(probe_path, sizeof probe_path, "%s/.%.200s.probe-%ld", dir, name,
                     (long)getpid());
    if (n < 0 || (size_t)n >= sizeof probe_path)
        return ba_fail(err, BA_ERR_USAGE, "%.200s: path too long", path);
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return ba_fail(err, BA_ERR_IO, "%s: cannot write in %s (%s)", path, dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return ba_fail(err, BA_ERR_IO, "%s: cannot write in %s (not a directory)", path, dir);
    int fd = open(probe_path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return ba_fail(err, BA_ERR_IO, "%s: cannot write in %s (%s)", path, dir, strerror(errno));
    close(fd);
    unlink(probe_path);
    return BA_OK;
}

/* Remove, in dir, the temporaries "[.]<name>.partial-<pid>" of dead
 * processes (of any name when name is NULL). */
static int clean_in(const char *dir, const char *name)
{
    size_t len = name ? strlen(name) : 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        /* ".<name>.partial-<pid>" (HDF5 outputs) or "<name>.partial-<pid>" */
        const char *p = e->d_name;
        if (name) {
            if (*p == '.' && strncmp(p + 1, name, len) == 0) p += 1 + len;
            else if (strncmp(p, name, len) == 0) p += len;
            else continue;
            if (strncmp(p, ".partial-", 9) != 0) continue;
        } else {
            const char *at = strstr(p, ".partial-");
            if (!at || at == p) continue;
            p = at;
        }
        p += 9;
        char *end = NULL;
        errno = 0;
        long pid = strtol(p, &end, 10);
        if (errno || end == p || *end || pid <= 0 || alive(pid)) continue;
        char stale[BA_PATH_MAX + 512];
        int n = snprintf(stale, sizeof stale, "%s/%s", dir, e->d_name);
        if (n < 0 || (size_t)n >= sizeof stale) continue;
        if (unlink(stale) == 0) {
            fprintf(stderr, "brainalign: removed %s, the unfinished output of process %ld, "
                    "which is no longer running\n", stale, pid);
            removed++;
        }
    }
    closedir(d);
    return removed;
}

int ba_output_clean_stale(const char *path)
{
    char dir[BA_PATH_MAX];
    const char *name;
    split(path, dir, sizeof dir, &name);
    return name[0] ? clean_in(dir, name) : 0;
}

/* Read "<pid> <host>" from an existing lock file. */
static void read_lock(const char *lock_path, long *pid, char *host, size_t cap)
{
    *pid = 0;
    snprintf(host, cap, "?");
    FILE *f = fopen(lock_path, "r");
    if (!f) return;
    char line[512] = "";
    if (fgets(line, sizeof line, f)) {
        char h[256] = "";
        if (sscanf(line, "%ld %255s", pid, h) >= 1 && h[0]) snprintf(host, cap, "%s", h);
    }
    fclose(f);
}

static ba_status take_lock(const char *path, ba_output_lock *lock, ba_error *err)
{
    char me[256];
    host_name(me, sizeof me);
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = open(lock->path, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd >= 0) {
            char text[320];
            int n = snprintf(text, sizeof text, "%ld %s\n", (long)getpid(), me);
            bool ok = n > 0 && write(fd, text, (size_t)n) == (ssize_t)n;
            if (close(fd) != 0) ok = false;
            if (!ok) {
                unlink(lock->path);
                return ba_fail(err, BA_ERR_IO, "%s: cannot write the lock %s", path, lock->path);
            }
            lock->held = true;
            return BA_OK;
        }
        if (errno != EEXIST)
            return ba_fail(err, BA_ERR_IO, "%s: cannot create the lock %s (%s)", path, lock->path,
                           strerror(errno));
        long pid = 0;
        char host[256];
        read_lock(lock->path, &pid, host, sizeof host);
        bool here = strcmp(host, me) == 0;
        if (!here || alive(pid) || pid <= 0 || attempt > 0) {
            if (pid <= 0)
                return ba_fail(err, BA_ERR_IO, "%s: locked by %s, which names no process (remove "
                               "it if no other run writes this output)", path, lock->path);
            return ba_fail(err, BA_ERR_IO, "%s: another run (process %ld on %s) is writing it "
                           "(lock %s; remove it if that run is gone)", path, pid, host,
                           lock->path);
        }
        fprintf(stderr, "brainalign: warning: %s: taking over the lock %s of process %ld, which "
                "is no longer running\n", path, lock->path, pid);
        unlink(lock->path);
    }
    return ba_fail(err, BA_ERR_IO, "%s: cannot take the lock %s", path, lock->path);
}

ba_status ba_output_begin(const char *path, bool is_dir, ba_output_lock *lock, ba_error *err)
{
    memset(lock, 0, sizeof *lock);
    if (!path || !path[0]) return ba_fail(err, BA_ERR_USAGE, "no output path given");
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--; /* "out/" is the directory out */
    char clean[BA_PATH_MAX];
    if (n >= sizeof clean) return ba_fail(err, BA_ERR_USAGE, "%.200s...: path too long", path);
    memcpy(clean, path, n);
    clean[n] = '\0';
    struct stat sb;
    bool exists = stat(clean, &sb) == 0;
    char dir[BA_PATH_MAX];
    const char *name;
    if (!is_dir) {
        if (exists && S_ISDIR(sb.st_mode))
            return ba_fail(err, BA_ERR_USAGE, "%s: is a directory; the output is a file (give "
                           "its name, e.g. %s/out.h5)", clean, clean);
        split(clean, dir, sizeof dir, &name);
        BA_CHECK(probe(clean, dir, name, err));
    } else if (exists) {
        if (!S_ISDIR(sb.st_mode))
            return ba_fail(err, BA_ERR_USAGE, "%s: exists and is not a directory", clean);
        BA_CHECK(probe(clean, clean, "output", err));
    } else {
        split(clean, dir, sizeof dir, &name); /* made by the stage: its parent must take it */
        BA_CHECK(probe(clean, dir, name, err));
    }
    int m = snprintf(lock->path, sizeof lock->path, "%s.lock", clean);
    if (m < 0 || (size_t)m >= sizeof lock->path)
        return ba_fail(err, BA_ERR_USAGE, "%.200s: path too long", clean);
    BA_CHECK(take_lock(clean, lock, err));
    if (!is_dir) ba_output_clean_stale(clean);
    else if (exists) clean_in(clean, NULL); /* the directory is this run's now */
    return BA_OK;
}

void ba_output_end(ba_output_lock *lock)
{
    if (lock->held) unlink(lock->path);
    lock->held = false;
}
