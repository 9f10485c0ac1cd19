/* fuzz_alpaca.c — Alpaca-style instruction data (JSON array or JSONL) read
 * with ba_alpaca_read (and the same bytes with ba_alpaca_parse), then
 * converted by ba_dataset_build (--import-alpaca only) and read back by the
 * train reader. On success: at least one record, every output non-empty,
 * line numbers non-decreasing (array elements may share a line) and inside
 * the file, the two entry points agree
 * record by record; JSONL input (first non-blank byte not '[') gives what
 * the train reader's ba_sft_parse_jsonl gives; the converted file holds the
 * distinct records in order, each read back unchanged. A failure names the
 * file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/pipeline/dataset.h"
#include "fuzz_util.h"

static bool same_record(const ba_sft_record *a, const ba_sft_record *b)
{
    return strcmp(a->instruction, b->instruction) == 0 && strcmp(a->input, b->input) == 0 &&
           strcmp(a->output, b->output) == 0;
}

static void check_agree(const ba_sft_data *a, const ba_sft_data *b, bool lines)
{
    FUZZ_ASSERT(a->n == b->n);
    for (size_t i = 0; i < a->n; i++) {
        FUZZ_ASSERT(same_record(&a->records[i], &b->records[i]));
        if (lines) FUZZ_ASSERT(a->records[i].line == b->records[i].line);
    }
}

static void check_convert(const char *path, const ba_sft_data *d)
{
    char out[4096];
    snprintf(out, sizeof out, "%s/train.jsonl", fuzz_dir());
    fuzz_remove("train.jsonl");
    const char *imports[1] = {path};
    ba_dataset_options o;
    ba_dataset_options_defaults(&o);
    o.imports = imports;
    o.n_imports = 1;
    o.out = out;
    ba_dataset_summary sum;
    ba_error err;
    ba_error_clear(&err);
    if (ba_dataset_build(&o, &sum, &err) != BA_OK) fuzz_fail("convert: %s", err.message);
    FUZZ_ASSERT(sum.n_read == d->n && sum.n_imported == d->n);
    FUZZ_ASSERT(sum.n_kept + sum.n_duplicates == d->n && sum.n_train == sum.n_kept);
    ba_sft_data *back = NULL;
    if (ba_sft_read_jsonl(out, &back, &err) != BA_OK) fuzz_fail("read back: %s", err.message);
    FUZZ_ASSERT(back->n == sum.n_kept);
    size_t k = 0;
    for (size_t i = 0; i < d->n; i++) {
        bool repeat = false;
        for (size_t j = 0; j < i && !repeat; j++)
            repeat = same_record(&d->records[i], &d->records[j]);
        if (repeat) continue;
        FUZZ_ASSERT(k < back->n && same_record(&d->records[i], &back->records[k]));
        k++;
    }
    FUZZ_ASSERT(k == back->n);
    ba_sft_data_destroy(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0; /* the quadratic duplicate check above */
    const char *path = fuzz_write(0, "data.json", data, size);
    ba_error err;
    ba_error_clear(&err);
    ba_sft_data *read = NULL, *parsed = NULL;
    ba_status rc_read = ba_alpaca_read(path, &read, &err);
    if (rc_read == BA_OK) {
        fuzz_accepted("data.json");
        FUZZ_ASSERT(read->n >= 1);
        size_t n_lines = 1, last = 0;
        for (size_t i = 0; i < size; i++) n_lines += data[i] == '\n';
        for (size_t i = 0; i < read->n; i++) {
            const ba_sft_record *r = &read->records[i];
            FUZZ_ASSERT(r->instruction && r->input && r->output && r->output[0] != '\0');
            FUZZ_ASSERT(r->line >= 1 && r->line >= last && r->line <= n_lines);
            last = r->line;
        }
    } else {
        FUZZ_ASSERT(read == NULL);
        FUZZ_ASSERT(strstr(err.message, "data.json") != NULL);
        fuzz_rejected("data.json", err.message);
    }
    ba_error_clear(&err);
    ba_status rc_parse = ba_alpaca_parse((const char *)data, size, "data.json", &parsed, &err);
    FUZZ_ASSERT((rc_read == BA_OK) == (rc_parse == BA_OK));
    if (rc_parse == BA_OK) check_agree(read, parsed, true);
    /* JSONL: exactly the train reader's verdict and records. */
    size_t at = size >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0, k = at;
    while (k < size && strchr(" \t\r\n\f\v", data[k]) && data[k]) k++;
    if (k < size && data[k] != '[') {
        ba_sft_data *sft = NULL;
        ba_error_clear(&err);
        ba_status rc_sft = ba_sft_parse_jsonl((const char *)data + at, size - at, "data.json",
                                              &sft, &err);
        FUZZ_ASSERT((rc_sft == BA_OK) == (rc_parse == BA_OK));
        if (rc_sft == BA_OK) check_agree(sft, parsed, true);
        ba_sft_data_destroy(sft);
    }
    if (rc_read == BA_OK) check_convert(path, read);
    ba_sft_data_destroy(read);
    ba_sft_data_destroy(parsed);
    return 0;
}
