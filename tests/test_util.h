/* test_util.h — helpers shared by the tests. */
#ifndef BRAINALIGN_TEST_UTIL_H
#define BRAINALIGN_TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

/* Path of a file in ../shared/data; fails the test with a clear message
 * when the shared data is missing (a test that needs it never passes
 * silently). Returns a static buffer overwritten by the next call. */
const char *ba_test_data_path(const char *relative);

/* A fresh temporary directory for this test (mkdtemp under $TMPDIR). */
const char *ba_test_tmpdir(void);

/* Read a whole file into a NUL-terminated malloc'd buffer (test fails if
 * it cannot). */
char *ba_test_read_file(const char *path, size_t *len);

/* Write bytes to a file (test fails if it cannot). */
void ba_test_write_file(const char *path, const void *data, size_t len);

/* Run a shell command, return its exit status. */
int ba_test_system(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
