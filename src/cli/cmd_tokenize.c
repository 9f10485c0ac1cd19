/* cmd_tokenize.c — `brainalign tokenize --tokenizer DIR`: UTF-8 text on
 * standard input, its token ids (no BOS) on one line of standard output;
 * with --decode the other way: ids on standard input, their text (as
 * ba_tokenizer_decode gives it) on standard output.
 * A serial tool: under mpirun only rank 0 reads and prints. */
#include <mpi.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/lm/tokenizer.h"
#include "commands.h"

static void tokenize_usage(FILE *out)
{
    fprintf(out,
            "usage: brainalign tokenize --tokenizer DIR < text.txt\n"
            "       brainalign tokenize --tokenizer DIR --decode < ids.txt\n\n"
            "Reads UTF-8 text from standard input and prints its token ids on one line,\n"
            "separated by spaces (no BOS token is added).\n\n"
            "options:\n"
            "  --tokenizer DIR  a directory with tokenizer.json, vocab.json + merges.txt,\n"
            "                   encoder.json + vocab.bpe, or tokenizer.model\n"
            "  --decode         the other way: standard input holds token ids (decimal\n"
            "                   integers separated by white space, as printed without\n"
            "                   --decode); prints their text exactly, without adding a\n"
            "                   newline. Special tokens (<s>, </s>, <unk>) are skipped\n"
            "                   for SentencePiece models, invalid UTF-8 becomes U+FFFD,\n"
            "                   as Hugging Face's decode(ids, skip_special_tokens=True)\n"
            "  --help, -h       show this help\n");
}

static ba_status read_stdin(char **text, size_t *len, ba_error *err)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = ba_malloc(cap, "standard input", err);
    if (!buf) return BA_ERR_NOMEM;
    for (;;) {
        if (n == cap) {
            char *bigger = realloc(buf, 2 * cap);
            if (!bigger) {
                free(buf);
                return ba_fail(err, BA_ERR_NOMEM, "standard input: cannot hold %zu bytes",
                               2 * cap);
            }
            buf = bigger;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0) break;
    }
    if (ferror(stdin)) {
        free(buf);
        return ba_fail(err, BA_ERR_IO, "standard input: read error");
    }
    *text = buf;
    *len = n;
    return BA_OK;
}

static ba_status tokenize_stdin(const char *dir, ba_error *err)
{
    ba_status rc = BA_OK;
    ba_tokenizer *tok = NULL;
    char *text = NULL;
    int32_t *ids = NULL;
    size_t len = 0, n_ids = 0;
    BA_TRY(ba_tokenizer_load(dir, &tok, err), done);
    BA_TRY(read_stdin(&text, &len, err), done);
    BA_TRY(ba_tokenizer_encode(tok, text, len, &ids, &n_ids, err), done);
    for (size_t i = 0; i < n_ids; i++) printf(i ? " %d" : "%d", (int)ids[i]);
    printf("\n");
    if (fflush(stdout) != 0) rc = ba_fail(err, BA_ERR_IO, "standard output: write error");
done:
    free(ids);
    free(text);
    ba_tokenizer_destroy(tok);
    return rc;
}

/* Whitespace-separated decimal ids in text[0, len) -> ids[n] (malloc'd). */
static ba_status parse_ids(const char *text, size_t len, int32_t **ids, size_t *n,
                           ba_error *err)
{
    *n = 0;
    *ids = ba_malloc((len / 2 + 1) * sizeof **ids, "token ids", err);
    if (!*ids) return BA_ERR_NOMEM;
    size_t i = 0;
    for (;;) {
        while (i < len && strchr(" \t\r\n\f\v", text[i]) && text[i]) i++;
        if (i == len) return BA_OK;
        size_t start = i;
        long long v = 0;
        bool negative = text[i] == '-';
        if (negative) i++;
        size_t digits = 0;
        while (i < len && text[i] >= '0' && text[i] <= '9' && v <= INT32_MAX) {
            v = 10 * v + (text[i++] - '0');
            digits++;
        }
        bool at_end = i == len || (text[i] && strchr(" \t\r\n\f\v", text[i]));
        if (digits == 0 || !at_end || v > INT32_MAX) {
            free(*ids);
            *ids = NULL;
            size_t end = start;
            while (end < len && end - start < 20 && text[end] &&
                   !strchr(" \t\r\n\f\v", text[end]))
                end++;
            return ba_fail(err, BA_ERR_VALUE,
                           "standard input: id %zu at byte %zu (\"%.*s\"): expected a decimal "
                           "integer token id",
                           *n, start, (int)(end - start), text + start);
        }
        (*ids)[(*n)++] = (int32_t)(negative ? -v : v);
    }
}

static ba_status decode_stdin(const char *dir, ba_error *err)
{
    ba_status rc = BA_OK;
    ba_tokenizer *tok = NULL;
    char *input = NULL, *text = NULL;
    int32_t *ids = NULL;
    size_t len = 0, n_ids = 0, text_len = 0;
    BA_TRY(ba_tokenizer_load(dir, &tok, err), done);
    BA_TRY(read_stdin(&input, &len, err), done);
    BA_TRY(parse_ids(input, len, &ids, &n_ids, err), done);
    BA_TRY(ba_tokenizer_decode(tok, ids, n_ids, &text, &text_len, err), done);
    if (fwrite(text, 1, text_len, stdout) != text_len || fflush(stdout) != 0)
        rc = ba_fail(err, BA_ERR_IO, "standard output: write error");
done:
    free(text);
    free(ids);
    free(input);
    ba_tokenizer_destroy(tok);
    return rc;
}

int ba_cmd_tokenize(int argc, char **argv)
{
    const char *dir = NULL;
    bool decode = false;
    for (int i = 1; i < argc; i++) {
        if (ba_cli_is_help(argv[i])) {
            tokenize_usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--tokenizer") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strncmp(argv[i], "--tokenizer=", 12) == 0) {
            dir = argv[i] + 12;
        } else if (strcmp(argv[i], "--decode") == 0) {
            decode = true;
        } else {
            fprintf(stderr, "brainalign tokenize: unexpected argument '%s'\n\n", argv[i]);
            tokenize_usage(stderr);
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "brainalign tokenize: --tokenizer DIR is required\n\n");
        tokenize_usage(stderr);
        return 2;
    }
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank != 0) return 0;
    ba_error err;
    ba_error_clear(&err);
    ba_status rc = decode ? decode_stdin(dir, &err) : tokenize_stdin(dir, &err);
    return rc == BA_OK ? 0 : ba_cli_report("tokenize", rc, &err);
}
