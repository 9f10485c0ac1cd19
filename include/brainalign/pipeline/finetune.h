/* finetune.h — the `finetune` stage: LoRA or frozen-layer training of a
 * causal language model on instruction data, data-parallel over MPI ranks.
 *
 *   model (ba_model_load) + tokenizer (the model directory's)
 *   -> data (ba_sft_read_jsonl, ba_sft_dataset_build with the template)
 *   -> trainable set (LoRA: a fresh PEFT-initialised adapter, or
 *      --adapter-init's; freeze: the last K blocks)
 *   -> N optimizer steps (ba_train_step: AdamW, clipping, HF schedules)
 *   -> output: LoRA  OUT/adapter_config.json + OUT/adapter_model.safetensors
 *              (PEFT layout; written into OUT.partial, then renamed);
 *              freeze  a complete Hugging Face checkpoint (ba_model_save_trained).
 *
 * Restart: every save_every steps (and when stopped by SIGTERM at a step
 * boundary) rank 0 writes OUT.restart atomically (temporary name, fsync,
 * rename): a fingerprint of the run (everything that changes the
 * arithmetic: model and data paths and sizes, method, LoRA shape, seed,
 * batch, optimizer, schedule, steps), the number of steps done, AdamW's
 * step count and moments, and every trainable tensor. The data position
 * and the dropout stream follow from (seed, step) alone. Rerunning the same
 * command finds the file, checks the fingerprint, and continues: the result
 * is bitwise that of an uninterrupted run. A finished run removes it.
 *
 * BOS/EOS: config.json's bos_token_id / eos_token_id when present; else
 * the tokenizer's: GPT-2 adds no BOS and ends with <|endoftext|> (the last
 * id of its vocabulary: 50256), LLaMA <s> = 1 and </s> = 2. */
#ifndef BRAINALIGN_PIPELINE_FINETUNE_H
#define BRAINALIGN_PIPELINE_FINETUNE_H

#include <mpi.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "brainalign/core/error.h"
#include "brainalign/lm/adapter.h"
#include "brainalign/lm/tokenizer.h"
#include "brainalign/train/adamw.h"
#include "brainalign/train/data.h"

typedef enum {
    BA_FINETUNE_LORA = 0,
    BA_FINETUNE_FREEZE,
} ba_finetune_method;

typedef struct {
    const char *model_dir;
    const char *data_path;
    const char *out_dir;
    ba_finetune_method method;
    /* LoRA */
    const char *lora_targets; /* comma-separated; NULL: PEFT's default   */
    int lora_r;               /* >= 1                                    */
    double lora_alpha;        /* > 0                                     */
    double lora_dropout;      /* [0, 1)                                  */
    const char *adapter_init; /* NULL, or a PEFT adapter to continue     */
    /* freeze */
    int freeze_layers;        /* K >= 1 (freeze only)                    */
    /* data */
    ba_template tmpl;
    const char *system;       /* llama2-chat system prompt, or NULL      */
    long max_seq_len;         /* 0: the model's longest window           */
    bool truncate;
    /* optimizer */
    double lr;
    ba_adamw_config adam;
    double max_grad_norm;     /* 0: off                                  */
    ba_lr_schedule_kind schedule;
    int64_t warmup_steps;     /* -1: not given                           */
    double warmup_ratio;      /* -1: not given                           */
    /* batching */
    long batch;               /* global sequences per optimizer step     */
    int grad_accum;
    int64_t steps;            /* > 0, or 0: from epochs                   */
    double epochs;            /* > 0 when steps == 0                      */
    uint64_t seed;
    bool no_shuffle;
    int recompute;            /* 1 on, 0 off, -1 the default (LLaMA on)  */
    /* output */
    const char *log_path;     /* NULL: no CSV log                        */
    int64_t save_every;       /* 0: only when stopped                    */
    bool quiet;
    const char *dump_gradients; /* NULL, or the first step's gradients   */
    volatile sig_atomic_t *stop_requested; /* set by a SIGTERM handler, or NULL */
} ba_finetune_options;

/* The defaults of the CLI (lr 1e-4, betas 0.9/0.999, eps 1e-8, weight
 * decay 0, clip 1.0, r 8, alpha 16, dropout 0, batch 1, grad_accum 1,
 * template alpaca, constant schedule, no warmup). */
void ba_finetune_defaults(ba_finetune_options *o);

typedef struct {
    int64_t steps_done;   /* optimizer steps completed (all, resumed ones too) */
    int64_t steps_total;
    int64_t resumed_from; /* 0: started fresh                                  */
    double last_loss;
} ba_finetune_summary;

/* The whole stage; collective over comm. BA_ERR_INTERRUPTED when stopped
 * by *stop_requested (the restart file is saved). */
ba_status ba_finetune_run(const ba_finetune_options *o, MPI_Comm comm,
                          ba_finetune_summary *summary, ba_error *err);

/* BOS (-1: none) and EOS of the model in dir (see above). */
ba_status ba_finetune_special_ids(const char *model_dir, const ba_tokenizer *tok, int32_t *bos,
                                  int32_t *eos, ba_error *err);

/* Add bos_token_id / eos_token_id (the tokenizer's, as above) to
 * dir/config.json when it has a tokenizer and lacks them, as Hugging Face
 * writes them (GPT-2: both 50256; LLaMA: 1 and 2). Rewritten under a
 * temporary name and renamed. A directory without tokenizer files is left
 * alone. */
ba_status ba_config_add_special_ids(const char *dir, ba_error *err);

#endif
