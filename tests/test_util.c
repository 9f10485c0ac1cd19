/* test_util.c — helpers shared by the tests. */
#define _GNU_SOURCE
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

const char *ba_test_data_path(const char *relative)
{
    static char path[4096];
    const char *root = getenv("BA_DATA_DIR");
    if (!root || !*root) root = BA_DATA_DIR;
    snprintf(path, sizeof path, "%s/%s", root, relative);
    struct stat st;
    if (stat(path, &st) != 0) {
        fail_msg("shared test data missing: %s (set BA_DATA_DIR to the "
                 "shared/data directory)", path);
    }
    return path;
}

const char *ba_test_tmpdir(void)
{
    static char dir[4096];
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    snprintf(dir, sizeof dir, "%s/brainalign-test-XXXXXX", base);
    if (!mkdtemp(dir)) fail_msg("cannot create a temporary directory in %s", base);
    return dir;
}

char *ba_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) fail_msg("short read on %s", path);
    fclose(f);
    buf[n] = '\0';
    if (len) *len = (size_t)n;
    return buf;
}

void ba_test_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot create %s", path);
    if (fwrite(data, 1, len, f) != len) fail_msg("short write on %s", path);
    fclose(f);
}

int ba_test_system(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int status = system(cmd);
    if (status == -1) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
