/* hash.h — FNV-1a, the one non-cryptographic hash of brainalign (64-bit,
 * http://www.isthe.com/chongo/tech/comp/fnv/). Used for hash tables of the
 * tokenizers, random streams named by strings and checkpoint identities.
 *
 *   uint64_t h = ba_fnv1a(BA_FNV1A_OFFSET, data, n);   one buffer
 *   h = ba_fnv1a(h, more, m);                          continued
 *
 * Inline: the tokenizers call it once per table probe. */
#ifndef BRAINALIGN_HASH_H
#define BRAINALIGN_HASH_H

#include <stddef.h>
#include <stdint.h>

#define BA_FNV1A_OFFSET 0xcbf29ce484222325ULL /* the empty input's hash */
#define BA_FNV1A_PRIME 0x100000001b3ULL

/* Continue hash `h` over n bytes of `data`. */
static inline uint64_t ba_fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * BA_FNV1A_PRIME;
    return h;
}

/* Continue hash `h` over the bytes of the string `s` (without its NUL). */
static inline uint64_t ba_fnv1a_str(uint64_t h, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = (h ^ *p) * BA_FNV1A_PRIME;
    return h;
}

#endif
