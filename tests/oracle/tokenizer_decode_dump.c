/* tokenizer_decode_dump.c — test helper for tokenizer_decode_oracle.py:
 * decodes id lists with ba_tokenizer_decode and ba_tokenizer_decode_bytes.
 *
 *   tokenizer_decode_dump TOKENIZER_DIR < IDS
 *     IDS: one list per line, ids separated by spaces (an empty line is the
 *     empty list). For each list one output line: the hex of
 *     ba_tokenizer_decode's text, a space, the hex of
 *     ba_tokenizer_decode_bytes's bytes ("-" for empty), or "error: ..." when
 *     decoding failed.
 * Exit 0 when every line was read; 1 with a message otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/lm/tokenizer.h"

static void put_hex(const char *s, size_t n)
{
    if (n == 0) fputs("-", stdout);
    for (size_t i = 0; i < n; i++) printf("%02x", (unsigned)(unsigned char)s[i]);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: tokenizer_decode_dump TOKENIZER_DIR < IDS\n");
        return 2;
    }
    ba_error err;
    ba_error_clear(&err);
    ba_tokenizer *tok = NULL;
    if (ba_tokenizer_load(argv[1], &tok, &err) != BA_OK) {
        fprintf(stderr, "tokenizer_decode_dump: %s\n", err.message);
        return 1;
    }
    size_t cap = 0;
    char *line = NULL;
    ssize_t got;
    int32_t *ids = NULL;
    while ((got = getline(&line, &cap, stdin)) >= 0) {
        ids = realloc(ids, ((size_t)got + 1) * sizeof *ids);
        if (!ids) return 1;
        size_t n = 0;
        for (char *p = line, *end; *p && *p != '\n'; p = end) {
            long v = strtol(p, &end, 10);
            if (end == p) {
                fprintf(stderr, "tokenizer_decode_dump: bad id list: %s", line);
                return 1;
            }
            ids[n++] = (int32_t)v;
        }
        char *text = NULL, *bytes = NULL;
        size_t len = 0, n_bytes = 0;
        if (ba_tokenizer_decode(tok, ids, n, &text, &len, &err) != BA_OK ||
            ba_tokenizer_decode_bytes(tok, ids, n, &bytes, &n_bytes, &err) != BA_OK) {
            printf("error: %s\n", err.message);
        } else {
            put_hex(text, len);
            fputs(" ", stdout);
            put_hex(bytes, n_bytes);
            fputs("\n", stdout);
        }
        free(text);
        free(bytes);
    }
    free(ids);
    free(line);
    ba_tokenizer_destroy(tok);
    return fflush(stdout) != 0;
}
