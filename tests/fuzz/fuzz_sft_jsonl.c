/* fuzz_sft_jsonl.c — instruction JSONL read with ba_sft_read_jsonl (and the
 * same bytes with ba_sft_parse_jsonl). On success: at least one record,
 * every output non-empty, line numbers increasing within the file, the two
 * entry points agree record by record, and every template formats every
 * record with the instruction inside the prompt and the output as the
 * response. */
#include <stdlib.h>
#include <string.h>

#include "brainalign/train/data.h"
#include "fuzz_util.h"

static void check_data(const ba_sft_data *d, size_t size)
{
    FUZZ_ASSERT(d->n >= 1);
    size_t last = 0;
    for (size_t i = 0; i < d->n; i++) {
        const ba_sft_record *r = &d->records[i];
        FUZZ_ASSERT(r->instruction && r->input && r->output && r->output[0] != '\0');
        FUZZ_ASSERT(r->line > last && r->line <= size);
        last = r->line;
        for (int t = BA_TEMPLATE_ALPACA; t <= BA_TEMPLATE_PLAIN; t++) {
            ba_error err;
            ba_error_clear(&err);
            char *prompt = NULL, *response = NULL;
            const char *sys = t == BA_TEMPLATE_LLAMA2_CHAT ? "system" : NULL;
            FUZZ_ASSERT(ba_sft_format((ba_template)t, sys, r, &prompt, &response, &err) == BA_OK);
            FUZZ_ASSERT(strstr(prompt, r->instruction) != NULL);
            FUZZ_ASSERT(strcmp(response, r->output) == 0);
            free(prompt);
            free(response);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write(0, "train.jsonl", data, size);
    ba_error err;
    ba_error_clear(&err);
    ba_sft_data *read = NULL, *parsed = NULL;
    ba_status rc_read = ba_sft_read_jsonl(path, &read, &err);
    if (rc_read == BA_OK) {
        fuzz_accepted("train.jsonl");
        check_data(read, size);
    } else {
        FUZZ_ASSERT(read == NULL);
        FUZZ_ASSERT(strstr(err.message, "train.jsonl") != NULL);
        fuzz_rejected("train.jsonl", err.message);
    }
    ba_error_clear(&err);
    ba_status rc_parse = ba_sft_parse_jsonl((const char *)data, size, "train.jsonl", &parsed, &err);
    FUZZ_ASSERT((rc_read == BA_OK) == (rc_parse == BA_OK));
    if (rc_parse == BA_OK) {
        FUZZ_ASSERT(read->n == parsed->n);
        for (size_t i = 0; i < read->n; i++) {
            FUZZ_ASSERT(strcmp(read->records[i].instruction, parsed->records[i].instruction) == 0);
            FUZZ_ASSERT(strcmp(read->records[i].input, parsed->records[i].input) == 0);
            FUZZ_ASSERT(strcmp(read->records[i].output, parsed->records[i].output) == 0);
            FUZZ_ASSERT(read->records[i].line == parsed->records[i].line);
        }
    }
    ba_sft_data_destroy(read);
    ba_sft_data_destroy(parsed);
    return 0;
}
