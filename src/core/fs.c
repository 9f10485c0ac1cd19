/* fs.c — file-system helpers (see fs.h). */
#include "brainalign/core/fs.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "brainalign/core/hash.h"

static bool suffix_at(const char *s, const char *suffix, bool proper, size_t *at)
{
    size_t n = strlen(s), m = strlen(suffix);
    if (proper ? n <= m : n < m) return false;
    *at = n - m;
    return true;
}

bool ba_has_suffix(const char *s, const char *suffix, bool proper)
{
    size_t at;
    return suffix_at(s, suffix, proper, &at) && strcmp(s + at, suffix) == 0;
}

bool ba_has_suffix_ci(const char *s, const char *suffix, bool proper)
{
    size_t at;
    return suffix_at(s, suffix, proper, &at) && strcasecmp(s + at, suffix) == 0;
}

bool ba_file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

ba_status ba_join_path(char *out, size_t cap, const char *dir, const char *name,
                       ba_error *err)
{
    int n = cap > 0 ? snprintf(out, cap, "%s/%s", dir, name) : -1;
    if (n < 0 || (size_t)n >= cap) {
        if (cap > 0) out[0] = '\0';
        return ba_fail(err, BA_ERR_USAGE, "%s/%s: path too long", dir, name);
    }
    return BA_OK;
}

static const char *file_kind(mode_t mode)
{
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a pipe or FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a regular file";
}

ba_status ba_require_regular(const char *path, ba_error *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0) return ba_fail(err, BA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return ba_fail(err, BA_ERR_IO, "%s: is %s, expected a regular file", path,
                       file_kind(sb.st_mode));
    return BA_OK;
}

/* Before open(): opening a FIFO with no writer would block for ever. */
static FILE *open_regular(const char *path, ba_error *err)
{
    if (ba_require_regular(path, err) != BA_OK) return NULL;
    FILE *f = fopen(path, "rb");
    if (!f) ba_fail(err, BA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    return f;
}

bool ba_valid_name(const char *name, const char **why)
{
    const char *w = NULL;
    size_t n = strlen(name);
    if (n == 0) w = "it is empty";
    else if (name[0] == '-') w = "it starts with '-'";
    else if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strstr(name, ".."))
        w = "it contains '..'";
    else if (n >= 256) w = "it is longer than 255 bytes";
    for (size_t i = 0; !w && i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch == '/' || ch == '\\') w = "it contains a '/' or '\\'";
        else if (ch < 0x20 || ch == 0x7f) w = "it contains a control character";
    }
    if (why) *why = w;
    return w == NULL;
}

ba_status ba_check_name(const char *what, const char *name, ba_error *err)
{
    const char *why = NULL;
    if (ba_valid_name(name, &why)) return BA_OK;
    return ba_fail(err, BA_ERR_USAGE, "%s '%.80s': not a valid name, %s (a name becomes a file "
                   "or directory name: no '/', no '..', no control characters, no leading '-')",
                   what, name, why);
}

ba_status ba_read_file(const char *path, unsigned char **data, size_t *len, ba_error *err)
{
    *data = NULL;
    *len = 0;
    FILE *f = open_regular(path, err);
    if (!f) return BA_ERR_IO;
    ba_status rc = BA_OK;
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    if (!buf) {
        rc = ba_fail(err, BA_ERR_NOMEM, "%s: cannot allocate %zu bytes to read it", path, cap);
        goto done;
    }
    for (;;) {
        if (n == cap) { /* keep one byte for the NUL */
            unsigned char *grown = cap <= SIZE_MAX / 2 ? realloc(buf, 2 * cap) : NULL;
            if (!grown) {
                rc = ba_fail(err, BA_ERR_NOMEM, "%s: cannot allocate %zu bytes to read it",
                             path, cap <= SIZE_MAX / 2 ? 2 * cap : cap);
                goto done;
            }
            buf = grown;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f))
        rc = ba_fail(err, BA_ERR_IO, "%s: cannot read: %s (after %zu bytes)", path,
                     strerror(errno), n);
    else if (n == cap) { /* full to the last byte: room for the NUL */
        unsigned char *grown = realloc(buf, cap + 1);
        if (!grown) rc = ba_fail(err, BA_ERR_NOMEM, "%s: cannot allocate %zu bytes to read it", path, cap + 1);
        else buf = grown;
    }
done:
    fclose(f);
    if (rc != BA_OK) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return BA_OK;
}

ba_status ba_make_dirs(const char *path, ba_error *err)
{
    size_t n = strlen(path);
    if (n == 0) return ba_fail(err, BA_ERR_USAGE, "cannot create a directory with an empty name");
    if (n >= BA_PATH_MAX)
        return ba_fail(err, BA_ERR_USAGE, "%.64s...: path too long (%zu bytes, at most %d)", path,
                       n, BA_PATH_MAX - 1);
    char buf[BA_PATH_MAX];
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        mkdir(buf, 0777); /* an existing parent is fine; the last mkdir says */
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0) {
        int why = errno;
        struct stat st;
        if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
            return ba_fail(err, BA_ERR_IO, "%s: cannot create the directory (%s)", path,
                           strerror(why));
    }
    return BA_OK;
}

FILE *ba_partial_open(const char *path, char *temp, size_t size, ba_error *err)
{
    int n = size > 0 ? snprintf(temp, size, "%s.partial", path) : -1;
    if (n < 0 || (size_t)n >= size) {
        ba_fail(err, BA_ERR_USAGE, "%s: path too long", path);
        return NULL;
    }
    FILE *f = fopen(temp, "w");
    if (!f) ba_fail(err, BA_ERR_IO, "%s: cannot write (%s)", path, strerror(errno));
    return f;
}

ba_status ba_partial_close(FILE *f, const char *temp, const char *path, ba_status rc,
                           ba_error *err)
{
    bool written = !ferror(f);
    if (fclose(f) != 0) written = false;
    if (rc == BA_OK && written && rename(temp, path) == 0) return BA_OK;
    remove(temp);
    if (rc != BA_OK) return rc;
    return ba_fail(err, BA_ERR_IO, "%s: cannot write", path);
}

ba_status ba_hash_file(const char *path, size_t limit, uint64_t *h, unsigned long long *bytes,
                       ba_error *err)
{
    FILE *f = open_regular(path, err);
    if (!f) return BA_ERR_IO;
    unsigned char buf[65536];
    size_t done = 0, got;
    while ((limit == 0 || done < limit) &&
           (got = fread(buf, 1, limit && limit - done < sizeof buf ? limit - done : sizeof buf,
                        f)) > 0) {
        *h = ba_fnv1a(*h, buf, got);
        done += got;
    }
    bool bad = ferror(f) || (limit && done < limit);
    fclose(f);
    if (bad) return ba_fail(err, BA_ERR_IO, "%s: read error or file too short", path);
    if (bytes) *bytes = done;
    return BA_OK;
}
