/* data.c — instruction JSONL, prompt templates, tokenised samples with
 * masked labels and the per-epoch sample order; the rules are in
 * brainalign/train/data.h. */
#include "brainalign/train/data.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/core/rng.h"

/* ---- records ---------------------------------------------------------------- */

void ba_sft_data_destroy(ba_sft_data *data)
{
    if (!data) return;
    for (size_t i = 0; i < data->n; i++) {
        free(data->records[i].instruction);
        free(data->records[i].input);
        free(data->records[i].output);
    }
    free(data->records);
    free(data);
}

/* A string field of a record: required or optional ("" when absent). */
static ba_status string_field(const json_t *obj, const char *key, bool required,
                              const char *source, size_t line, char **out, ba_error *err)
{
    const json_t *v = json_object_get(obj, key);
    if (!v) {
        if (required)
            return ba_fail(err, BA_ERR_FORMAT, "%s:%zu: missing the field \"%s\"", source, line,
                           key);
        *out = strdup("");
    } else if (!json_is_string(v)) {
        return ba_fail(err, BA_ERR_FORMAT, "%s:%zu: the field \"%s\" must be a string", source,
                       line, key);
    } else {
        *out = strdup(json_string_value(v));
    }
    if (!*out) return ba_fail(err, BA_ERR_NOMEM, "%s:%zu: out of memory", source, line);
    return BA_OK;
}

static ba_status parse_line(const char *text, size_t len, const char *source, size_t line,
                            ba_sft_record *rec, ba_error *err)
{
    if (len > 0 && text[len - 1] == '\r') len--;
    size_t k = 0;
    while (k < len && (text[k] == ' ' || text[k] == '\t')) k++;
    if (k == len) return ba_fail(err, BA_ERR_FORMAT, "%s:%zu: empty line", source, line);
    json_error_t jerr;
    json_t *obj = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!obj)
        return ba_fail(err, BA_ERR_FORMAT, "%s:%zu: not valid JSON (column %d): %s", source, line,
                       jerr.column, jerr.text);
    ba_status rc = BA_OK;
    rec->line = line;
    if (!json_is_object(obj)) {
        rc = ba_fail(err, BA_ERR_FORMAT, "%s:%zu: expected a JSON object with \"instruction\", "
                     "\"input\" and \"output\"", source, line);
        goto done;
    }
    BA_TRY(string_field(obj, "instruction", true, source, line, &rec->instruction, err), done);
    BA_TRY(string_field(obj, "input", false, source, line, &rec->input, err), done);
    BA_TRY(string_field(obj, "output", true, source, line, &rec->output, err), done);
    if (rec->output[0] == '\0')
        rc = ba_fail(err, BA_ERR_VALUE, "%s:%zu: the field \"output\" is empty", source, line);
done:
    json_decref(obj);
    return rc;
}

ba_status ba_sft_parse_jsonl(const char *text, size_t len, const char *source,
                             ba_sft_data **out, ba_error *err)
{
    *out = NULL;
    ba_status rc = BA_OK;
    ba_sft_data *d = ba_calloc(1, sizeof *d, "JSONL data", err);
    if (!d) return BA_ERR_NOMEM;
    snprintf(d->source, sizeof d->source, "%s", source);
    size_t n_lines = 0;
    for (size_t i = 0; i < len; i++) n_lines += text[i] == '\n';
    n_lines++;
    BA_ALLOC(d->records, n_lines, "JSONL records", fail);
    size_t pos = 0, line = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        line++;
        ba_sft_record *rec = &d->records[d->n];
        rc = parse_line(text + pos, end - pos, source, line, rec, err);
        d->n++; /* partially filled records are freed by the destroy */
        if (rc != BA_OK) goto fail;
        pos = end + 1;
    }
    if (d->n == 0) {
        rc = ba_fail(err, BA_ERR_FORMAT, "%s: no records (the file is empty)", source);
        goto fail;
    }
    *out = d;
    return BA_OK;
fail:
    ba_sft_data_destroy(d);
    return rc;
}

ba_status ba_sft_read_jsonl(const char *path, ba_sft_data **out, ba_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return ba_fail(err, BA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    ba_status rc = BA_OK;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? 2 * cap : 65536;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                rc = ba_fail(err, BA_ERR_NOMEM, "%s: out of memory reading the file", path);
                goto done;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        rc = ba_fail(err, BA_ERR_IO, "%s: read error", path);
        goto done;
    }
    rc = ba_sft_parse_jsonl(buf, len, path, out, err);
done:
    free(buf);
    fclose(f);
    return rc;
}

/* ---- templates -------------------------------------------------------------- */

static const char *const TEMPLATE_NAMES[] = {"alpaca", "llama2-chat", "plain"};

ba_status ba_template_parse(const char *text, ba_template *out, ba_error *err)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(text, TEMPLATE_NAMES[i]) == 0) {
            *out = (ba_template)i;
            return BA_OK;
        }
    return ba_fail(err, BA_ERR_USAGE, "the template is alpaca, llama2-chat or plain, not '%s'",
                   text);
}

const char *ba_template_name(ba_template t)
{
    return (unsigned)t < 3 ? TEMPLATE_NAMES[t] : "?";
}

#define ALPACA_WITH_INPUT                                                                    \
    "Below is an instruction that describes a task, paired with an input that provides "    \
    "further context. Write a response that appropriately completes the request.\n\n"       \
    "### Instruction:\n"
#define ALPACA_NO_INPUT                                                                      \
    "Below is an instruction that describes a task. Write a response that appropriately "   \
    "completes the request.\n\n### Instruction:\n"

/* Concatenate up to 8 pieces (NULL-terminated list) into a malloc'd string. */
static char *concat(const char *const *pieces)
{
    size_t len = 0;
    for (int i = 0; pieces[i]; i++) len += strlen(pieces[i]);
    char *s = malloc(len + 1);
    if (!s) return NULL;
    size_t at = 0;
    for (int i = 0; pieces[i]; i++) {
        size_t n = strlen(pieces[i]);
        memcpy(s + at, pieces[i], n);
        at += n;
    }
    s[at] = '\0';
    return s;
}

ba_status ba_sft_format(ba_template t, const char *system, const ba_sft_record *rec,
                        char **prompt, char **response, ba_error *err)
{
    *prompt = *response = NULL;
    if (system && t != BA_TEMPLATE_LLAMA2_CHAT)
        return ba_fail(err, BA_ERR_USAGE, "a system prompt needs the llama2-chat template, "
                       "not %s", ba_template_name(t));
    const bool has_input = rec->input && rec->input[0] != '\0';
    const char *p[12] = {0};
    int k = 0;
    switch (t) {
    case BA_TEMPLATE_PLAIN:
        p[k++] = rec->instruction;
        p[k++] = "\n\n";
        if (has_input) {
            p[k++] = rec->input;
            p[k++] = "\n\n";
        }
        break;
    case BA_TEMPLATE_ALPACA:
        p[k++] = has_input ? ALPACA_WITH_INPUT : ALPACA_NO_INPUT;
        p[k++] = rec->instruction;
        if (has_input) {
            p[k++] = "\n\n### Input:\n";
            p[k++] = rec->input;
        }
        p[k++] = "\n\n### Response:\n";
        break;
    case BA_TEMPLATE_LLAMA2_CHAT:
        p[k++] = "[INST] ";
        if (system) {
            p[k++] = "<<SYS>>\n";
            p[k++] = system;
            p[k++] = "\n<</SYS>>\n\n";
        }
        p[k++] = rec->instruction;
        if (has_input) {
            p[k++] = "\n\n";
            p[k++] = rec->input;
        }
        p[k++] = " [/INST]";
        break;
    default:
        return ba_fail(err, BA_ERR_INTERNAL, "unknown template %d", (int)t);
    }
    *prompt = concat(p);
    *response = strdup(rec->output);
    if (!*prompt || !*response) {
        free(*prompt);
        free(*response);
        *prompt = *response = NULL;
        return ba_fail(err, BA_ERR_NOMEM, "out of memory formatting a prompt");
    }
    return BA_OK;
}

/* ---- tokenised samples -------------------------------------------------------- */

void ba_sft_sample_free(ba_sft_sample *s)
{
    if (!s) return;
    free(s->ids);
    free(s->labels);
    memset(s, 0, sizeof *s);
}

ba_status ba_sft_tokenize(const ba_tokenizer *tok, const ba_sft_options *opt,
                          const ba_sft_record *rec, const char *source, ba_sft_sample *out,
                          ba_error *err)
{
    memset(out, 0, sizeof *out);
    const int32_t vocab = ba_tokenizer_vocab_size(tok);
    if (opt->eos < 0 || opt->eos >= vocab || opt->bos < -1 || opt->bos >= vocab)
        return ba_fail(err, BA_ERR_USAGE, "BOS %d / EOS %d outside the vocabulary [0, %d)",
                       (int)opt->bos, (int)opt->eos, (int)vocab);
    if (opt->max_seq_len < 2)
        return ba_fail(err, BA_ERR_USAGE, "max_seq_len must be >= 2, not %zu", opt->max_seq_len);
    ba_status rc = BA_OK;
    char *prompt = NULL, *response = NULL;
    int32_t *pid = NULL, *rid = NULL;
    size_t np = 0, nr = 0;
    BA_TRY(ba_sft_format(opt->tmpl, opt->system, rec, &prompt, &response, err), fail);
    rc = ba_tokenizer_encode(tok, prompt, strlen(prompt), &pid, &np, err);
    if (rc != BA_OK) {
        ba_context(err, "%s:%zu: the prompt: ", source, rec->line);
        goto fail;
    }
    rc = ba_tokenizer_encode(tok, response, strlen(response), &rid, &nr, err);
    if (rc != BA_OK) {
        ba_context(err, "%s:%zu: the output: ", source, rec->line);
        goto fail;
    }
    if (nr == 0) {
        rc = ba_fail(err, BA_ERR_VALUE, "%s:%zu: the output has no tokens", source, rec->line);
        goto fail;
    }
    const size_t n_head = (opt->bos >= 0 ? 1 : 0) + np;
    size_t n = n_head + nr + 1;
    if (n > opt->max_seq_len) {
        if (!opt->truncate) {
            rc = ba_fail(err, BA_ERR_VALUE, "%s:%zu: the sample has %zu tokens (prompt %zu, "
                         "response and EOS %zu), more than max_seq_len %zu (truncate to cut "
                         "the response)", source, rec->line, n, n_head, nr + 1, opt->max_seq_len);
            goto fail;
        }
        if (n_head + 1 > opt->max_seq_len) {
            rc = ba_fail(err, BA_ERR_VALUE, "%s:%zu: the prompt alone has %zu tokens and leaves "
                         "no room for the response within max_seq_len %zu", source, rec->line,
                         n_head, opt->max_seq_len);
            goto fail;
        }
        n = opt->max_seq_len;
        out->truncated = true;
    }
    BA_ALLOC(out->ids, n, "sample ids", fail);
    BA_ALLOC(out->labels, n, "sample labels", fail);
    size_t at = 0;
    if (opt->bos >= 0) out->ids[at++] = opt->bos;
    memcpy(out->ids + at, pid, np * sizeof *pid);
    at += np;
    for (size_t i = 0; i < nr && at < n; i++) out->ids[at++] = rid[i];
    if (at < n) out->ids[at++] = opt->eos;
    for (size_t i = 0; i < n; i++) out->labels[i] = i < n_head ? BA_LABEL_IGNORE : out->ids[i];
    out->n = n;
    out->n_prompt = n_head;
    out->n_target = n - n_head;
    goto done;
fail:
    ba_sft_sample_free(out);
done:
    free(prompt);
    free(response);
    free(pid);
    free(rid);
    return rc;
}

void ba_sft_dataset_destroy(ba_sft_dataset *ds)
{
    if (!ds) return;
    for (size_t i = 0; i < ds->n; i++) ba_sft_sample_free(&ds->samples[i]);
    free(ds->samples);
    free(ds);
}

ba_status ba_sft_dataset_build(const ba_tokenizer *tok, const ba_sft_options *opt,
                               const ba_sft_data *data, ba_sft_dataset **out, ba_error *err)
{
    *out = NULL;
    ba_status rc = BA_OK;
    ba_sft_dataset *ds = ba_calloc(1, sizeof *ds, "dataset", err);
    if (!ds) return BA_ERR_NOMEM;
    BA_ALLOC(ds->samples, data->n, "dataset samples", fail);
    for (size_t i = 0; i < data->n; i++) {
        BA_TRY(ba_sft_tokenize(tok, opt, &data->records[i], data->source, &ds->samples[i], err),
               fail);
        ds->n = i + 1;
        ds->n_truncated += ds->samples[i].truncated;
        if (ds->samples[i].n > ds->max_len) ds->max_len = ds->samples[i].n;
    }
    *out = ds;
    return BA_OK;
fail:
    ba_sft_dataset_destroy(ds);
    return rc;
}

/* ---- order ------------------------------------------------------------------ */

/* perm [n]: epoch `epoch`'s order. */
static void epoch_order(size_t n, uint64_t seed, bool shuffle, uint64_t epoch, size_t *perm)
{
    for (size_t i = 0; i < n; i++) perm[i] = i;
    if (!shuffle) return;
    ba_rng rng;
    ba_rng_seed(&rng, seed, epoch);
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(ba_rng_uniform(&rng) * (double)(i + 1));
        if (j > i) j = i;
        size_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

ba_status ba_sft_batch_indices(size_t n_samples, uint64_t seed, bool shuffle, int64_t step,
                               size_t batch, size_t *indices, ba_error *err)
{
    if (n_samples == 0 || batch == 0 || step < 0)
        return ba_fail(err, BA_ERR_USAGE, "batch indices: %zu samples, batch %zu, step %lld",
                       n_samples, batch, (long long)step);
    if ((uint64_t)step > UINT64_MAX / batch)
        return ba_fail(err, BA_ERR_USAGE, "batch indices: step %lld overflows",
                       (long long)step);
    size_t *perm = ba_malloc(n_samples * sizeof *perm, "epoch order", err);
    if (!perm) return BA_ERR_NOMEM;
    uint64_t pos = (uint64_t)step * batch, have = UINT64_MAX;
    for (size_t j = 0; j < batch; j++, pos++) {
        uint64_t epoch = pos / n_samples;
        if (epoch != have) {
            epoch_order(n_samples, seed, shuffle, epoch, perm);
            have = epoch;
        }
        indices[j] = perm[pos % n_samples];
    }
    free(perm);
    return BA_OK;
}
