/* finetune.c — the `finetune` stage (see brainalign/pipeline/finetune.h). */
#include "brainalign/pipeline/finetune.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "brainalign/lm/model.h"
#include "brainalign/lm/safetensors.h"
#include "brainalign/lm/train.h"
#include "brainalign/parallel/parallel.h"
#include "brainalign/train/step.h"

#define RESTART_MAGIC "BAFTRST1"
#define RESTART_END "BAFTEND1"

void ba_finetune_defaults(ba_finetune_options *o)
{
    memset(o, 0, sizeof *o);
    o->method = BA_FINETUNE_LORA;
    o->lora_r = 8;
    o->lora_alpha = 16;
    o->lora_dropout = 0;
    o->freeze_layers = 0;
    o->tmpl = BA_TEMPLATE_ALPACA;
    o->lr = 1e-4;
    o->adam = (ba_adamw_config){.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0};
    o->max_grad_norm = 1.0;
    o->schedule = BA_LR_CONSTANT;
    o->warmup_steps = -1;
    o->warmup_ratio = -1;
    o->batch = 1;
    o->grad_accum = 1;
    o->recompute = -1;
}

/* ---- special token ids ------------------------------------------------------ */

/* config.json's integer field `key` (a list: its first entry); *found false
 * when absent or null. */
static ba_status config_id(const json_t *root, const char *path, const char *key, int32_t *id,
                           bool *found, ba_error *err)
{
    *found = false;
    const json_t *v = json_object_get(root, key);
    if (v && json_is_array(v) && json_array_size(v) > 0) v = json_array_get(v, 0);
    if (!v || json_is_null(v)) return BA_OK;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
        return ba_fail(err, BA_ERR_FORMAT, "%s: %s must be a non-negative integer", path, key);
    *id = (int32_t)json_integer_value(v);
    *found = true;
    return BA_OK;
}

/* The tokenizer's own ids: GPT-2 <|endoftext|> (its last id), LLaMA 1 / 2. */
static ba_status tokenizer_ids(const ba_tokenizer *tok, const char *dir, int32_t *bos,
                               int32_t *eos, ba_error *err)
{
    int32_t v = ba_tokenizer_vocab_size(tok);
    if (strcmp(ba_tokenizer_kind(tok), "gpt2-bpe") == 0) {
        int32_t last = v - 1;
        char *text = NULL;
        size_t len = 0;
        ba_status rc = ba_tokenizer_decode_bytes(tok, &last, 1, &text, &len, err);
        bool ok = rc == BA_OK && len == 13 && memcmp(text, "<|endoftext|>", 13) == 0;
        free(text);
        if (!ok)
            return ba_fail(err, BA_ERR_FORMAT,
                           "%s: the GPT-2 tokenizer's last id %d is not <|endoftext|>, and "
                           "config.json has no eos_token_id", dir, (int)last);
        *bos = last;
        *eos = last;
        return BA_OK;
    }
    if (v < 3)
        return ba_fail(err, BA_ERR_FORMAT, "%s: a SentencePiece vocabulary of %d tokens has no "
                       "<s> (1) and </s> (2)", dir, (int)v);
    *bos = 1;
    *eos = 2;
    return BA_OK;
}

ba_status ba_finetune_special_ids(const char *model_dir, const ba_tokenizer *tok, int32_t *bos,
                                  int32_t *eos, ba_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", model_dir);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        return ba_fail(err, BA_ERR_FORMAT, "%s:%d: %s", path, jerr.line, jerr.text);
    int32_t cb = -1, ce = -1, tb = -1, te = -1;
    bool has_b = false, has_e = false;
    ba_status rc = config_id(root, path, "bos_token_id", &cb, &has_b, err);
    if (rc == BA_OK) rc = config_id(root, path, "eos_token_id", &ce, &has_e, err);
    json_decref(root);
    if (rc != BA_OK) return rc;
    bool gpt2 = strcmp(ba_tokenizer_kind(tok), "gpt2-bpe") == 0;
    if (!has_e || (!gpt2 && !has_b)) BA_CHECK(tokenizer_ids(tok, model_dir, &tb, &te, err));
    /* GPT-2's tokenizer adds no BOS (its bos_token_id is only a name). */
    *bos = gpt2 ? -1 : (has_b ? cb : tb);
    *eos = has_e ? ce : te;
    int32_t v = ba_tokenizer_vocab_size(tok);
    if (*eos >= v || *bos >= v)
        return ba_fail(err, BA_ERR_VALUE, "%s: BOS %d / EOS %d outside the tokenizer's %d ids",
                       path, (int)*bos, (int)*eos, (int)v);
    return BA_OK;
}

ba_status ba_config_add_special_ids(const char *dir, ba_error *err)
{
    ba_tokenizer *tok = NULL;
    BA_CHECK(ba_tokenizer_load(dir, &tok, err));
    int32_t bos = -1, eos = -1;
    ba_status rc = tokenizer_ids(tok, dir, &bos, &eos, err);
    ba_tokenizer_destroy(tok);
    if (rc != BA_OK) return rc;
    char path[4096], temp[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    snprintf(temp, sizeof temp, "%s.tmp.%ld", path, (long)getpid());
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) return ba_fail(err, BA_ERR_FORMAT, "%s:%d: %s", path, jerr.line, jerr.text);
    if (!json_object_get(root, "bos_token_id"))
        json_object_set_new(root, "bos_token_id", json_integer(bos));
    if (!json_object_get(root, "eos_token_id"))
        json_object_set_new(root, "eos_token_id", json_integer(eos));
    int bad = json_dump_file(root, temp, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (bad != 0 || rename(temp, path) != 0) {
        unlink(temp);
        return ba_fail(err, BA_ERR_IO, "%s: cannot rewrite with bos/eos_token_id: %s", path,
                       strerror(errno));
    }
    return BA_OK;
}

/* ---- small helpers ---------------------------------------------------------- */

static bool path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static uint64_t fnv_str(uint64_t h, const char *s)
{
    return fnv1a(h, s ? s : "(null)", strlen(s ? s : "(null)") + 1);
}

/* Everything that changes the arithmetic of the run. */
static uint64_t run_fingerprint(const ba_finetune_options *o, const ba_sft_dataset *ds,
                                const ba_param_ref *params, size_t n_params, int64_t n_steps,
                                bool recompute)
{
    char text[2048];
    snprintf(text, sizeof text,
             "method %d r %d alpha %.17g dropout %.17g k %d tmpl %d maxlen %ld trunc %d lr %.17g "
             "b1 %.17g b2 %.17g eps %.17g wd %.17g clip %.17g sched %d batch %ld accum %d "
             "steps %" PRId64 " seed %" PRIu64 " shuffle %d recompute %d",
             (int)o->method, o->lora_r, o->lora_alpha, o->lora_dropout, o->freeze_layers,
             (int)o->tmpl, o->max_seq_len, (int)o->truncate, o->lr, o->adam.beta1, o->adam.beta2,
             o->adam.eps, o->adam.weight_decay, o->max_grad_norm, (int)o->schedule, o->batch,
             o->grad_accum, n_steps, o->seed, (int)!o->no_shuffle, (int)recompute);
    uint64_t h = 1469598103934665603ULL;
    h = fnv_str(h, text);
    h = fnv_str(h, o->model_dir);
    h = fnv_str(h, o->data_path);
    h = fnv_str(h, o->lora_targets);
    h = fnv_str(h, o->adapter_init);
    h = fnv_str(h, o->system);
    for (size_t i = 0; i < ds->n; i++) {
        h = fnv1a(h, ds->samples[i].ids, ds->samples[i].n * sizeof(int32_t));
        h = fnv1a(h, ds->samples[i].labels, ds->samples[i].n * sizeof(int32_t));
    }
    for (size_t i = 0; i < n_params; i++) {
        h = fnv_str(h, params[i].name);
        uint64_t n = params[i].n;
        h = fnv1a(h, &n, sizeof n);
    }
    return h;
}

/* ---- restart file ----------------------------------------------------------- */

static ba_status write_all(int fd, const void *data, size_t n, const char *path, ba_error *err)
{
    const char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return ba_fail(err, BA_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        }
        p += w;
        n -= (size_t)w;
    }
    return BA_OK;
}

static ba_status restart_save(const char *path, uint64_t fp, int64_t step, ba_adamw *opt,
                              const ba_param_ref *params, size_t n_params, ba_error *err)
{
    char temp[4200];
    snprintf(temp, sizeof temp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return ba_fail(err, BA_ERR_IO, "%s: cannot create: %s", temp, strerror(errno));
    ba_status rc = BA_OK;
    int64_t adam_steps = ba_adamw_steps(opt);
    uint64_t n64 = n_params;
    BA_TRY(write_all(fd, RESTART_MAGIC, 8, temp, err), fail);
    BA_TRY(write_all(fd, &fp, sizeof fp, temp, err), fail);
    BA_TRY(write_all(fd, &step, sizeof step, temp, err), fail);
    BA_TRY(write_all(fd, &adam_steps, sizeof adam_steps, temp, err), fail);
    BA_TRY(write_all(fd, &n64, sizeof n64, temp, err), fail);
    for (size_t i = 0; i < n_params; i++) {
        uint64_t n = params[i].n;
        BA_TRY(write_all(fd, &n, sizeof n, temp, err), fail);
        BA_TRY(write_all(fd, params[i].param, n * sizeof(float), temp, err), fail);
        BA_TRY(write_all(fd, ba_adamw_m(opt, i), n * sizeof(float), temp, err), fail);
        BA_TRY(write_all(fd, ba_adamw_v(opt, i), n * sizeof(float), temp, err), fail);
    }
    BA_TRY(write_all(fd, RESTART_END, 8, temp, err), fail);
    if (fsync(fd) != 0) {
        rc = ba_fail(err, BA_ERR_IO, "%s: fsync failed: %s", temp, strerror(errno));
        goto fail;
    }
    close(fd);
    fd = -1;
    if (rename(temp, path) != 0) {
        rc = ba_fail(err, BA_ERR_IO, "%s: cannot rename from %s: %s", path, temp,
                     strerror(errno));
        goto fail;
    }
    return BA_OK;
fail:
    if (fd >= 0) close(fd);
    unlink(temp);
    return rc;
}

static ba_status read_exact(FILE *f, void *data, size_t n, const char *path, ba_error *err)
{
    if (fread(data, 1, n, f) != n)
        return ba_fail(err, BA_ERR_FORMAT, "%s: truncated restart file", path);
    return BA_OK;
}

/* Every rank reads the file. *step: the steps it holds. */
static ba_status restart_load(const char *path, uint64_t fp, ba_adamw *opt,
                              const ba_param_ref *params, size_t n_params, int64_t *step,
                              ba_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return ba_fail(err, BA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    ba_status rc = BA_OK;
    char magic[8];
    uint64_t got_fp = 0, n64 = 0;
    int64_t s = 0, adam_steps = 0;
    BA_TRY(read_exact(f, magic, 8, path, err), done);
    if (memcmp(magic, RESTART_MAGIC, 8) != 0) {
        rc = ba_fail(err, BA_ERR_FORMAT, "%s: not a finetune restart file", path);
        goto done;
    }
    BA_TRY(read_exact(f, &got_fp, sizeof got_fp, path, err), done);
    if (got_fp != fp) {
        rc = ba_fail(err, BA_ERR_USAGE,
                     "%s: saved by a different finetune command (model, data or options "
                     "differ); rerun the same command to resume, or delete the file to start "
                     "again", path);
        goto done;
    }
    BA_TRY(read_exact(f, &s, sizeof s, path, err), done);
    BA_TRY(read_exact(f, &adam_steps, sizeof adam_steps, path, err), done);
    BA_TRY(read_exact(f, &n64, sizeof n64, path, err), done);
    if (n64 != n_params) {
        rc = ba_fail(err, BA_ERR_FORMAT, "%s: %" PRIu64 " tensors, the run trains %zu", path, n64,
                     n_params);
        goto done;
    }
    for (size_t i = 0; i < n_params; i++) {
        uint64_t n = 0;
        BA_TRY(read_exact(f, &n, sizeof n, path, err), done);
        if (n != params[i].n) {
            rc = ba_fail(err, BA_ERR_FORMAT, "%s: tensor %s has %" PRIu64 " values, expected %zu",
                         path, params[i].name, n, params[i].n);
            goto done;
        }
        BA_TRY(read_exact(f, params[i].param, n * sizeof(float), path, err), done);
        BA_TRY(read_exact(f, ba_adamw_m(opt, i), n * sizeof(float), path, err), done);
        BA_TRY(read_exact(f, ba_adamw_v(opt, i), n * sizeof(float), path, err), done);
    }
    BA_TRY(read_exact(f, magic, 8, path, err), done);
    if (memcmp(magic, RESTART_END, 8) != 0) {
        rc = ba_fail(err, BA_ERR_FORMAT, "%s: corrupt restart file (no end mark)", path);
        goto done;
    }
    ba_adamw_set_steps(opt, adam_steps);
    *step = s;
done:
    fclose(f);
    return rc;
}

/* ---- the log ---------------------------------------------------------------- */

/* Open the CSV log: a fresh one with its header, or when resuming after
 * `keep` steps, the existing one cut to its rows of steps <= keep. */
static ba_status log_open(const char *path, int64_t keep, FILE **out, ba_error *err)
{
    char *kept = NULL;
    size_t kept_len = 0;
    if (keep > 0) {
        FILE *in = fopen(path, "r");
        if (in) {
            FILE *mem = open_memstream(&kept, &kept_len);
            char line[1024];
            bool header = true;
            while (mem && fgets(line, sizeof line, in)) {
                if (header) {
                    header = false;
                    continue;
                }
                long long s = atoll(line);
                if (s >= 1 && s <= keep) fputs(line, mem);
            }
            if (mem) fclose(mem);
            fclose(in);
        }
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        free(kept);
        return ba_fail(err, BA_ERR_IO, "%s: cannot write the log: %s", path, strerror(errno));
    }
    fprintf(f, "step,loss,lr,grad_norm,tokens\n");
    if (kept) fwrite(kept, 1, kept_len, f);
    free(kept);
    fflush(f);
    *out = f;
    return BA_OK;
}

/* ---- the gradient dump ------------------------------------------------------ */

/* Rank 0 writes the gradients (the same on every rank) and the input
 * embedding gradients of the batch, which every rank contributes to by a
 * sum (each sample's buffer is non-zero only on the rank that trained it). */
static ba_status dump_gradients(const char *path, MPI_Comm comm, const ba_trainable *t,
                                float *const *d_embeds, const size_t *lens, size_t batch, int d,
                                ba_error *err)
{
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    ba_status rc = BA_OK;
    for (size_t k = 0; k < batch; k++) {
        size_t n = lens[k] * (size_t)d;
        void *send = rank == 0 ? MPI_IN_PLACE : (void *)d_embeds[k];
        int mpi = MPI_Reduce(send, d_embeds[k], (int)n, MPI_FLOAT, MPI_SUM, 0, comm);
        if (rc == BA_OK && mpi != MPI_SUCCESS) rc = ba_mpi_check(mpi, "embedding gradients", err);
    }
    if (rank != 0 || rc != BA_OK) return rc;
    size_t nt = ba_trainable_count(t);
    size_t n_specs = nt + batch;
    ba_tensor_spec *specs = NULL;
    char (*names)[48] = NULL;
    ba_st_writer *w = NULL;
    BA_ALLOC(specs, n_specs, "gradient dump specs", done);
    BA_ALLOC(names, batch ? batch : 1, "gradient dump names", done);
    for (size_t i = 0; i < nt; i++) {
        const ba_train_tensor *tt = ba_trainable_tensor(t, i);
        specs[i].name = tt->name;
        specs[i].dtype = BA_DTYPE_F32;
        specs[i].rank = tt->rank;
        for (int r = 0; r < tt->rank; r++) specs[i].shape[r] = tt->shape[r];
    }
    for (size_t k = 0; k < batch; k++) {
        snprintf(names[k], sizeof names[k], "input_embeds.%zu", k);
        ba_tensor_spec *s = &specs[nt + k];
        s->name = names[k];
        s->dtype = BA_DTYPE_F32;
        s->rank = 2;
        s->shape[0] = (int64_t)lens[k];
        s->shape[1] = d;
    }
    BA_TRY(ba_st_writer_open(path, specs, n_specs, NULL, 0, &w, err), done);
    for (size_t i = 0; i < nt; i++) {
        const ba_train_tensor *tt = ba_trainable_tensor(t, i);
        BA_TRY(ba_st_writer_write(w, tt->grad, tt->n * sizeof(float), err), done);
    }
    for (size_t k = 0; k < batch; k++)
        BA_TRY(ba_st_writer_write(w, d_embeds[k], lens[k] * (size_t)d * sizeof(float), err), done);
    rc = ba_st_writer_finish(w, err);
    w = NULL;
done:
    if (w) ba_st_writer_abort(w);
    free(names);
    free(specs);
    return rc;
}

/* ---- LoRA set-up ------------------------------------------------------------ */

static ba_status parse_targets(const char *list, ba_lora_config *cfg, ba_error *err)
{
    cfg->n_targets = 0;
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0)
            return ba_fail(err, BA_ERR_USAGE, "--lora-targets '%s': an empty module name", list);
        if (len >= BA_LORA_TARGET_MAX)
            return ba_fail(err, BA_ERR_USAGE, "--lora-targets: unknown target module '%.*s'",
                           (int)len, p);
        if (cfg->n_targets == BA_LORA_MAX_TARGETS)
            return ba_fail(err, BA_ERR_USAGE, "--lora-targets: more than %d modules",
                           BA_LORA_MAX_TARGETS);
        memcpy(cfg->targets[cfg->n_targets], p, len);
        cfg->targets[cfg->n_targets][len] = '\0';
        cfg->n_targets++;
        p += len;
        if (*p == ',') p++;
    }
    if (cfg->n_targets == 0) return ba_fail(err, BA_ERR_USAGE, "--lora-targets is empty");
    return BA_OK;
}

static ba_status make_adapter(const ba_finetune_options *o, const ba_model_config *mc,
                              ba_adapter **out, ba_error *err)
{
    if (o->adapter_init) {
        BA_CHECK(ba_adapter_load(o->adapter_init, mc, out, err));
        (*out)->cfg.lora_dropout = o->lora_dropout;
        return BA_OK;
    }
    if (o->lora_r < 1)
        return ba_fail(err, BA_ERR_USAGE, "--lora-r must be >= 1 (got %d)", o->lora_r);
    if (!(o->lora_alpha > 0) || !isfinite(o->lora_alpha))
        return ba_fail(err, BA_ERR_USAGE, "--lora-alpha must be > 0 (got %g)", o->lora_alpha);
    ba_lora_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.r = o->lora_r;
    cfg.lora_alpha = o->lora_alpha;
    cfg.lora_dropout = o->lora_dropout;
    cfg.fan_in_fan_out = mc->arch == BA_ARCH_GPT2;
    const char *targets = o->lora_targets;
    if (!targets) targets = mc->arch == BA_ARCH_GPT2 ? "c_attn" : "q_proj,v_proj";
    BA_CHECK(parse_targets(targets, &cfg, err));
    snprintf(cfg.base_model, sizeof cfg.base_model, "%s", o->model_dir);
    BA_CHECK(ba_lora_config_check_model(&cfg, mc, "--lora-targets", err));
    BA_CHECK(ba_adapter_create(&cfg, mc, out, err));
    ba_status rc = ba_adapter_init_peft(*out, o->seed, err);
    if (rc != BA_OK) {
        ba_adapter_destroy(*out);
        *out = NULL;
    }
    return rc;
}

/* Remove a half-written LoRA output directory of an earlier run. */
static void remove_partial(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    unlink(path);
    rmdir(dir);
}

/* ---- the stage -------------------------------------------------------------- */

static ba_status check_options(const ba_finetune_options *o, ba_error *err)
{
    if (!o->model_dir || !o->data_path || !o->out_dir)
        return ba_fail(err, BA_ERR_USAGE, "--model, --data and --out are required");
    if (o->batch < 1) return ba_fail(err, BA_ERR_USAGE, "--batch must be >= 1");
    if (o->grad_accum < 1 || o->batch % o->grad_accum != 0)
        return ba_fail(err, BA_ERR_USAGE, "--grad-accum %d must be >= 1 and divide --batch %ld",
                       o->grad_accum, o->batch);
    if (o->steps < 0 || (o->steps == 0 && !(o->epochs > 0)))
        return ba_fail(err, BA_ERR_USAGE, "give --steps N (>= 1) or --epochs E (> 0)");
    if (o->steps > 0 && o->epochs > 0)
        return ba_fail(err, BA_ERR_USAGE, "--steps and --epochs exclude each other");
    if (!(o->lora_dropout >= 0 && o->lora_dropout < 1))
        return ba_fail(err, BA_ERR_USAGE, "--lora-dropout must be in [0, 1)");
    if (!(o->lr >= 0) || !isfinite(o->lr)) return ba_fail(err, BA_ERR_USAGE, "--lr must be >= 0");
    if (!(o->max_grad_norm >= 0)) return ba_fail(err, BA_ERR_USAGE, "--max-grad-norm must be >= 0");
    if (o->save_every < 0) return ba_fail(err, BA_ERR_USAGE, "--save-every must be >= 0");
    if (o->method == BA_FINETUNE_FREEZE && o->freeze_layers < 1)
        return ba_fail(err, BA_ERR_USAGE, "--method freeze needs --freeze-trainable-layers K >= 1");
    if (o->method == BA_FINETUNE_LORA && o->freeze_layers > 0)
        return ba_fail(err, BA_ERR_USAGE, "--freeze-trainable-layers is for --method freeze");
    if (o->method == BA_FINETUNE_FREEZE && (o->adapter_init || o->lora_targets))
        return ba_fail(err, BA_ERR_USAGE, "--adapter-init and --lora-targets are for --method lora");
    if (o->system && o->tmpl != BA_TEMPLATE_LLAMA2_CHAT)
        return ba_fail(err, BA_ERR_USAGE, "--system is for --template llama2-chat");
    return BA_OK;
}

ba_status ba_finetune_run(const ba_finetune_options *o, MPI_Comm comm,
                          ba_finetune_summary *summary, ba_error *err)
{
    ba_status rc = BA_OK;
    int rank = 0, n_ranks = 1;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &n_ranks);
    memset(summary, 0, sizeof *summary);
    ba_model *model = NULL;
    ba_model_ctx *ctx = NULL;
    ba_tokenizer *tok = NULL;
    ba_sft_data *records = NULL;
    ba_sft_dataset *ds = NULL;
    ba_adapter *adapter = NULL;
    ba_trainable *t = NULL;
    ba_adamw *opt = NULL;
    ba_param_ref *params = NULL;
    size_t *indices = NULL, *lens = NULL;
    float **d_embeds = NULL;
    FILE *log = NULL;
    size_t n_params = 0;
    int64_t start = 0, n_steps = 0, warmup = 0;
    uint64_t fp = 0;
    bool recompute = false;
    char restart_path[4200], partial[4200];
    ba_progress progress;
    bool progress_on = false;

    BA_TRY(check_options(o, err), agree_setup);
    snprintf(restart_path, sizeof restart_path, "%s.restart", o->out_dir);
    snprintf(partial, sizeof partial, "%s.partial", o->out_dir);
    if (path_exists(o->out_dir)) {
        rc = ba_fail(err, BA_ERR_USAGE, "--out %s exists already; choose a new directory",
                     o->out_dir);
        goto agree_setup;
    }
    BA_TRY(ba_model_load(o->model_dir, &model, err), agree_setup);
    const ba_model_config *mc = ba_model_get_config(model);
    BA_TRY(ba_tokenizer_load(o->model_dir, &tok, err), agree_setup);
    ba_sft_options so = {.tmpl = o->tmpl, .system = o->system, .truncate = o->truncate};
    BA_TRY(ba_finetune_special_ids(o->model_dir, tok, &so.bos, &so.eos, err), agree_setup);
    int max_tokens = ba_model_max_tokens(model);
    if (o->max_seq_len > max_tokens) {
        rc = ba_fail(err, BA_ERR_USAGE, "--max-seq-len %ld is longer than the model's window %d",
                     o->max_seq_len, max_tokens);
        goto agree_setup;
    }
    if (o->max_seq_len != 0 && o->max_seq_len < 2) {
        rc = ba_fail(err, BA_ERR_USAGE, "--max-seq-len must be >= 2");
        goto agree_setup;
    }
    so.max_seq_len = o->max_seq_len ? (size_t)o->max_seq_len : (size_t)max_tokens;
    BA_TRY(ba_sft_read_jsonl(o->data_path, &records, err), agree_setup);
    BA_TRY(ba_sft_dataset_build(tok, &so, records, &ds, err), agree_setup);
    recompute = o->recompute < 0 ? mc->arch == BA_ARCH_LLAMA : o->recompute != 0;

    if (o->method == BA_FINETUNE_LORA) {
        BA_TRY(make_adapter(o, mc, &adapter, err), agree_setup);
        BA_TRY(ba_trainable_lora(model, adapter, o->lora_dropout, o->seed, &t, err), agree_setup);
    } else {
        if (o->freeze_layers > mc->n_layers) {
            rc = ba_fail(err, BA_ERR_USAGE, "--freeze-trainable-layers %d: the model has %d blocks",
                         o->freeze_layers, mc->n_layers);
            goto agree_setup;
        }
        BA_TRY(ba_trainable_freeze(model, o->freeze_layers, &t, err), agree_setup);
    }
    BA_TRY(ba_model_ctx_create(model, &ctx, err), agree_setup);
    BA_TRY(ba_model_ctx_attach(ctx, t, err), agree_setup);
    n_params = ba_trainable_count(t);
    BA_ALLOC(params, n_params ? n_params : 1, "trainable tensor list", agree_setup);
    for (size_t i = 0; i < n_params; i++) {
        const ba_train_tensor *tt = ba_trainable_tensor(t, i);
        params[i] = (ba_param_ref){.name = tt->name, .param = tt->value, .grad = tt->grad,
                                   .n = tt->n};
    }
    BA_TRY(ba_adamw_create(&o->adam, params, n_params, &opt, err), agree_setup);
    n_steps = o->steps > 0 ? o->steps
                           : (int64_t)ceil(o->epochs * (double)ds->n / (double)o->batch);
    if (n_steps < 1) n_steps = 1;
    BA_TRY(ba_lr_warmup_steps(n_steps, o->warmup_steps, o->warmup_ratio, &warmup, err),
           agree_setup);
agree_setup:
    rc = ba_mpi_agree(comm, rc, err);
    if (rc != BA_OK) goto done;

    ba_lr_schedule sched = {.kind = o->schedule, .lr = o->lr, .warmup_steps = warmup,
                            .total_steps = n_steps};
    BA_TRY(ba_lr_schedule_check(&sched, err), agree_resume);
    fp = run_fingerprint(o, ds, params, n_params, n_steps, recompute);
    if (path_exists(restart_path)) {
        BA_TRY(restart_load(restart_path, fp, opt, params, n_params, &start, err), agree_resume);
        if (start < 0 || start > n_steps) {
            rc = ba_fail(err, BA_ERR_FORMAT, "%s: %" PRId64 " steps done of %" PRId64,
                         restart_path, start, n_steps);
            goto agree_resume;
        }
    }
    if (rank == 0 && o->log_path) BA_TRY(log_open(o->log_path, start, &log, err), agree_resume);
    BA_ALLOC(indices, o->batch, "batch indices", agree_resume);
agree_resume:
    rc = ba_mpi_agree(comm, rc, err);
    if (rc != BA_OK) goto done;
    summary->resumed_from = start;
    summary->steps_total = n_steps;

    int d = ba_model_d_model(model);
    ba_train_model_sample sampler = {.ctx = ctx, .trainable = t, .data = ds,
                                     .recompute = recompute};
    ba_train_step_setup setup = {.comm = comm, .sample_fn = ba_train_model_sample_fn,
                                 .sample_user = &sampler, .opt = opt, .params = params,
                                 .n_params = n_params, .data = ds, .d_model = d,
                                 .grad_accum = o->grad_accum, .max_grad_norm = o->max_grad_norm};
    ba_progress_begin(&progress, comm, o->quiet, "finetune");
    progress_on = true;
    for (int64_t s = start; s < n_steps; s++) {
        int stop = (o->stop_requested && *o->stop_requested) ? 1 : 0, any = 0;
        MPI_Allreduce(&stop, &any, 1, MPI_INT, MPI_MAX, comm);
        if (any) {
            if (rank == 0) rc = restart_save(restart_path, fp, s, opt, params, n_params, err);
            rc = ba_mpi_agree(comm, rc, err);
            if (rc == BA_OK)
                rc = ba_fail(err, BA_ERR_INTERRUPTED,
                             "stopped after %" PRId64 " of %" PRId64 " steps; %s holds them: "
                             "rerun the same command to continue", s, n_steps, restart_path);
            goto done;
        }
        rc = ba_sft_batch_indices(ds->n, o->seed, !o->no_shuffle, s, (size_t)o->batch, indices,
                                  err);
        rc = ba_mpi_agree(comm, rc, err);
        if (rc != BA_OK) goto done;
        ba_train_step_result res = {0};
        bool dump = s == 0 && o->dump_gradients;
        if (dump) {
            BA_ALLOC(d_embeds, o->batch, "embedding gradients", dump_alloc);
            BA_ALLOC(lens, o->batch, "embedding gradient lengths", dump_alloc);
            for (long k = 0; k < o->batch; k++) {
                lens[k] = ds->samples[indices[k]].n;
                BA_ALLOC(d_embeds[k], lens[k] * (size_t)d, "embedding gradient", dump_alloc);
            }
dump_alloc:
            rc = ba_mpi_agree(comm, rc, err);
            if (rc != BA_OK) goto done;
        }
        rc = ba_train_step_gradients(&setup, s, indices, (size_t)o->batch, dump ? d_embeds : NULL,
                                     &res, err);
        if (rc != BA_OK) {
            ba_context(err, "step %" PRId64, s + 1);
            goto done; /* agreed inside */
        }
        if (dump) {
            rc = dump_gradients(o->dump_gradients, comm, t, d_embeds, lens, (size_t)o->batch, d,
                                err);
            rc = ba_mpi_agree(comm, rc, err);
            if (rc != BA_OK) goto done;
        }
        rc = ba_train_step_update(&setup, ba_lr_at(&sched, s), &res, err);
        if (rc != BA_OK) ba_context(err, "step %" PRId64, s + 1);
        rc = ba_mpi_agree(comm, rc, err);
        if (rc != BA_OK) goto done;
        if (log) {
            fprintf(log, "%" PRId64 ",%.9g,%.9g,%.9g,%" PRId64 "\n", s + 1, res.loss, res.lr,
                    res.grad_norm, res.tokens);
            fflush(log);
        }
        summary->last_loss = res.loss;
        summary->steps_done = s + 1;
        ba_progress_update(&progress, (double)(s + 1 - start), (double)(n_steps - start));
        if (o->save_every > 0 && (s + 1) % o->save_every == 0 && s + 1 < n_steps) {
            if (rank == 0) rc = restart_save(restart_path, fp, s + 1, opt, params, n_params, err);
            rc = ba_mpi_agree(comm, rc, err);
            if (rc != BA_OK) goto done;
        }
    }
    ba_progress_end(&progress);
    progress_on = false;
    if (start == n_steps) summary->steps_done = n_steps;

    /* The output, by rank 0. */
    if (rank == 0) {
        if (o->method == BA_FINETUNE_LORA) {
            if (path_exists(partial)) remove_partial(partial);
            rc = ba_adapter_save(partial, adapter, err);
            if (rc == BA_OK && rename(partial, o->out_dir) != 0)
                rc = ba_fail(err, BA_ERR_IO, "%s: cannot rename from %s: %s", o->out_dir,
                             partial, strerror(errno));
            if (rc != BA_OK) remove_partial(partial);
        } else {
            rc = ba_model_save_trained(model, t, o->out_dir, err);
        }
        if (rc == BA_OK) unlink(restart_path);
    }
    rc = ba_mpi_agree(comm, rc, err);

done:
    if (progress_on) ba_progress_end(&progress);
    if (log) fclose(log);
    if (d_embeds)
        for (long k = 0; k < o->batch; k++) free(d_embeds[k]);
    free(d_embeds);
    free(lens);
    free(indices);
    ba_adamw_destroy(opt);
    free(params);
    ba_model_ctx_destroy(ctx);
    ba_trainable_destroy(t);
    ba_adapter_destroy(adapter);
    ba_sft_dataset_destroy(ds);
    ba_sft_data_destroy(records);
    ba_tokenizer_destroy(tok);
    ba_model_destroy(model);
    return rc;
}
