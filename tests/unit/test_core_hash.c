/* test_core_hash.c — FNV-1a against the published 64-bit test vectors
 * (http://www.isthe.com/chongo/tech/comp/fnv/, "FNV-1a 64 bit"). */
#include "test_util.h"

#include <string.h>

#include "brainalign/core/hash.h"

static void test_known_vectors(void **state)
{
    (void)state;
    assert_true(ba_fnv1a(BA_FNV1A_OFFSET, "", 0) == 0xcbf29ce484222325ULL);
    assert_true(ba_fnv1a(BA_FNV1A_OFFSET, "a", 1) == 0xaf63dc4c8601ec8cULL);
    assert_true(ba_fnv1a(BA_FNV1A_OFFSET, "foobar", 6) == 0x85944171f73967e8ULL);
    assert_true(ba_fnv1a_str(BA_FNV1A_OFFSET, "") == 0xcbf29ce484222325ULL);
    assert_true(ba_fnv1a_str(BA_FNV1A_OFFSET, "a") == 0xaf63dc4c8601ec8cULL);
    assert_true(ba_fnv1a_str(BA_FNV1A_OFFSET, "foobar") == 0x85944171f73967e8ULL);
}

static void test_continuation_equals_whole(void **state)
{
    (void)state;
    uint64_t h = ba_fnv1a(BA_FNV1A_OFFSET, "foo", 3);
    assert_true(ba_fnv1a(h, "bar", 3) == 0x85944171f73967e8ULL);
    assert_true(ba_fnv1a_str(ba_fnv1a_str(BA_FNV1A_OFFSET, "foo"), "bar") == 0x85944171f73967e8ULL);
    /* bytes above 0x7f hash as unsigned bytes in both forms */
    const char high[] = "\xe2\x96\x81x";
    assert_true(ba_fnv1a(BA_FNV1A_OFFSET, high, strlen(high)) ==
                ba_fnv1a_str(BA_FNV1A_OFFSET, high));
    /* a NUL inside the data is hashed by ba_fnv1a (it counts bytes) */
    assert_true(ba_fnv1a(BA_FNV1A_OFFSET, "a\0b", 3) != ba_fnv1a(BA_FNV1A_OFFSET, "ab", 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_vectors),
        cmocka_unit_test(test_continuation_equals_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
