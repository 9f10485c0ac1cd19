/* cmd_finetune.c — `brainalign finetune`: argument parsing for the
 * fine-tuning stage (src/pipeline/finetune.c does the work). SIGTERM asks
 * for a clean stop at the next optimizer step (the restart file is saved). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "brainalign/pipeline/finetune.h"
#include "commands.h"

static volatile sig_atomic_t stop_requested = 0;

static void on_terminate(int signal_number)
{
    (void)signal_number;
    stop_requested = 1;
}

static void finetune_usage(FILE *out)
{
    fprintf(out,
        "usage: mpirun -np N brainalign finetune --model DIR --data TRAIN.jsonl --out OUT\n"
        "                                         (--steps N | --epochs E) [options]\n\n"
        "Fine-tune a GPT-2 or LLaMA checkpoint on instruction data with LoRA adapters or by\n"
        "training its last K blocks, data-parallel over the MPI ranks (the loss curve does\n"
        "not depend on the rank count).\n\n"
        "data:\n"
        "  --model DIR            a Hugging Face checkpoint directory (and its tokenizer)\n"
        "  --data FILE            JSONL: one object per line with \"instruction\", \"input\"\n"
        "                         (optional) and \"output\" strings; a bad line is an error\n"
        "                         naming FILE:LINE\n"
        "  --template T           alpaca | llama2-chat | plain (default alpaca), the prompt:\n"
        "      plain        instruction + \"\\n\\n\" + input + \"\\n\\n\"\n"
        "                   (input empty: instruction + \"\\n\\n\")\n"
        "      alpaca       with input:\n"
        "                   \"Below is an instruction that describes a task, paired with an input that\n"
        "                   provides further context. Write a response that appropriately completes the\n"
        "                   request.\\n\\n### Instruction:\\n\" + instruction + \"\\n\\n### Input:\\n\" + input\n"
        "                   + \"\\n\\n### Response:\\n\"\n"
        "                   without input:\n"
        "                   \"Below is an instruction that describes a task. Write a response that\n"
        "                   appropriately completes the request.\\n\\n### Instruction:\\n\" + instruction\n"
        "                   + \"\\n\\n### Response:\\n\"\n"
        "                   (each quoted string is one line, words separated by one space)\n"
        "      llama2-chat  \"[INST] \" + user + \" [/INST]\", user = instruction, or instruction +\n"
        "                   \"\\n\\n\" + input when the input is not empty; with --system S:\n"
        "                   \"[INST] <<SYS>>\\n\" + S + \"\\n<</SYS>>\\n\\n\" + user + \" [/INST]\"\n"
        "                   The response is the output unchanged. Prompt and response are\n"
        "                   tokenised separately: ids = [BOS if the tokenizer adds one (LLaMA\n"
        "                   yes, GPT-2 no)] + prompt + response + [EOS]; the loss covers the\n"
        "                   response and the EOS. BOS/EOS: config.json's bos_token_id /\n"
        "                   eos_token_id, else GPT-2 <|endoftext|>, LLaMA <s> 1 / </s> 2.\n"
        "  --system S             llama2-chat's system prompt\n"
        "  --max-seq-len N        longest sample in tokens (default: the model's window);\n"
        "                         longer is an error unless --truncate\n"
        "  --truncate             cut long samples' responses (the prompt stays)\n"
        "method:\n"
        "  --method M             lora (default) | freeze\n"
        "  --lora-targets LIST    comma-separated modules (default PEFT's: c_attn for GPT-2,\n"
        "                         q_proj,v_proj for LLaMA); GPT-2: c_attn, c_proj, c_fc;\n"
        "                         LLaMA: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj,\n"
        "                         down_proj\n"
        "  --lora-r R             rank (default 8, >= 1)\n"
        "  --lora-alpha A         scale alpha / r (default 16)\n"
        "  --lora-dropout P       dropout on the adapters' input, seeded (default 0)\n"
        "  --adapter-init DIR     continue a PEFT adapter (its r, alpha and targets)\n"
        "  --freeze-trainable-layers K\n"
        "                         freeze: train the last K blocks in full (float32 master\n"
        "                         weights; embeddings, final norm and lm_head frozen)\n"
        "optimizer (torch.optim.AdamW, Hugging Face schedules):\n"
        "  --lr X                 peak learning rate (default 1e-4)\n"
        "  --adam-betas B1,B2     (default 0.9,0.999)\n"
        "  --adam-eps X           (default 1e-8)\n"
        "  --weight-decay X       decoupled weight decay (default 0)\n"
        "  --max-grad-norm X      clip by the global norm (default 1.0; 0 = off)\n"
        "  --lr-schedule S        constant | linear | cosine (default constant)\n"
        "  --warmup-steps W       linear warmup over W steps (default 0)\n"
        "  --warmup-ratio R       or W = ceil(R * steps)\n"
        "batching:\n"
        "  --batch B              sequences per optimizer step, over all ranks (default 1)\n"
        "  --grad-accum G         micro-batches per step, dividing B (default 1)\n"
        "  --steps N | --epochs E optimizer steps, or epochs (steps = ceil(E * samples / B))\n"
        "  --seed S               shuffling, LoRA initialisation and dropout (default 0)\n"
        "  --no-shuffle           file order (step s takes the next B samples, wrapping)\n"
        "  --recompute / --no-recompute\n"
        "                         recompute each block's activations in the backward\n"
        "                         (default: on for LLaMA, off for GPT-2)\n"
        "output:\n"
        "  --out OUT              a new directory: LoRA OUT/adapter_config.json +\n"
        "                         OUT/adapter_model.safetensors (PEFT layout); freeze a\n"
        "                         complete checkpoint; written under a temporary name\n"
        "  --log FILE.csv         one row per step: step,loss,lr,grad_norm,tokens (loss\n"
        "                         before the update, grad_norm before clipping)\n"
        "  --save-every N         save OUT.restart every N steps (default 0: only on\n"
        "                         SIGTERM, which stops at the next step boundary); rerunning\n"
        "                         the same command resumes, bitwise as an uninterrupted run\n"
        "  --dump-gradients FILE  test aid: the first step's gradients (safetensors) and\n"
        "                         input_embeds.<k> for the k-th sample of its batch\n"
        "  --quiet                no progress\n"
        "  --help, -h             show this help\n");
}

static bool parse_betas(const char *text, ba_adamw_config *adam)
{
    char *end = NULL;
    double b1 = strtod(text, &end);
    if (!end || *end != ',') return false;
    double b2 = strtod(end + 1, &end);
    if (!end || *end) return false;
    adam->beta1 = b1;
    adam->beta2 = b2;
    return true;
}

int ba_cmd_finetune(int argc, char **argv)
{
    ba_error err;
    ba_error_clear(&err);
    ba_finetune_options o;
    ba_finetune_defaults(&o);
    ba_args a;
    ba_args_init(&a, argc, argv);
    long n = 0;
    double x = 0;
    while (ba_args_more(&a)) {
        if (ba_cli_is_help(argv[a.i])) {
            int rank = 0;
            MPI_Comm_rank(MPI_COMM_WORLD, &rank);
            if (rank == 0) finetune_usage(stdout);
            return 0;
        }
        if (ba_args_value(&a, "--model")) o.model_dir = a.value;
        else if (ba_args_value(&a, "--data")) o.data_path = a.value;
        else if (ba_args_value(&a, "--out")) o.out_dir = a.value;
        else if (ba_args_value(&a, "--method")) {
            if (strcmp(a.value, "lora") == 0) o.method = BA_FINETUNE_LORA;
            else if (strcmp(a.value, "freeze") == 0) o.method = BA_FINETUNE_FREEZE;
            else snprintf(a.error, sizeof a.error, "--method must be lora or freeze, got '%s'",
                          a.value);
        }
        else if (ba_args_value(&a, "--lora-targets")) o.lora_targets = a.value;
        else if (ba_args_value(&a, "--lora-r")) { if (ba_args_long(&a, "--lora-r", &n)) o.lora_r = (int)n; }
        else if (ba_args_value(&a, "--lora-alpha")) ba_args_double(&a, "--lora-alpha", &o.lora_alpha);
        else if (ba_args_value(&a, "--lora-dropout")) ba_args_double(&a, "--lora-dropout", &o.lora_dropout);
        else if (ba_args_value(&a, "--adapter-init")) o.adapter_init = a.value;
        else if (ba_args_value(&a, "--freeze-trainable-layers")) {
            if (ba_args_long(&a, "--freeze-trainable-layers", &n)) o.freeze_layers = (int)n;
        }
        else if (ba_args_value(&a, "--template")) {
            if (ba_template_parse(a.value, &o.tmpl, &err) != BA_OK)
                snprintf(a.error, sizeof a.error, "--template: %s", err.message);
        }
        else if (ba_args_value(&a, "--system")) o.system = a.value;
        else if (ba_args_value(&a, "--max-seq-len")) ba_args_long(&a, "--max-seq-len", &o.max_seq_len);
        else if (ba_args_flag(&a, "--truncate")) o.truncate = true;
        else if (ba_args_value(&a, "--lr")) ba_args_double(&a, "--lr", &o.lr);
        else if (ba_args_value(&a, "--adam-betas")) {
            if (!parse_betas(a.value, &o.adam))
                snprintf(a.error, sizeof a.error, "--adam-betas needs B1,B2, got '%s'", a.value);
        }
        else if (ba_args_value(&a, "--adam-eps")) ba_args_double(&a, "--adam-eps", &o.adam.eps);
        else if (ba_args_value(&a, "--weight-decay")) ba_args_double(&a, "--weight-decay", &o.adam.weight_decay);
        else if (ba_args_value(&a, "--max-grad-norm")) ba_args_double(&a, "--max-grad-norm", &o.max_grad_norm);
        else if (ba_args_value(&a, "--lr-schedule")) {
            if (ba_lr_schedule_parse(a.value, &o.schedule, &err) != BA_OK)
                snprintf(a.error, sizeof a.error, "--lr-schedule: %s", err.message);
        }
        else if (ba_args_value(&a, "--warmup-steps")) {
            if (ba_args_long(&a, "--warmup-steps", &n)) o.warmup_steps = n;
        }
        else if (ba_args_value(&a, "--warmup-ratio")) ba_args_double(&a, "--warmup-ratio", &o.warmup_ratio);
        else if (ba_args_value(&a, "--batch")) ba_args_long(&a, "--batch", &o.batch);
        else if (ba_args_value(&a, "--grad-accum")) { if (ba_args_long(&a, "--grad-accum", &n)) o.grad_accum = (int)n; }
        else if (ba_args_value(&a, "--steps")) {
            if (ba_args_long(&a, "--steps", &n)) {
                if (n < 1) snprintf(a.error, sizeof a.error, "--steps must be >= 1");
                o.steps = n;
            }
        }
        else if (ba_args_value(&a, "--epochs")) {
            if (ba_args_double(&a, "--epochs", &x)) {
                if (!(x > 0)) snprintf(a.error, sizeof a.error, "--epochs must be > 0");
                o.epochs = x;
            }
        }
        else if (ba_args_value(&a, "--seed")) {
            if (ba_args_long(&a, "--seed", &n)) {
                if (n < 0) snprintf(a.error, sizeof a.error, "--seed must be >= 0");
                o.seed = (uint64_t)n;
            }
        }
        else if (ba_args_flag(&a, "--no-shuffle")) o.no_shuffle = true;
        else if (ba_args_flag(&a, "--recompute")) o.recompute = 1;
        else if (ba_args_flag(&a, "--no-recompute")) o.recompute = 0;
        else if (ba_args_value(&a, "--log")) o.log_path = a.value;
        else if (ba_args_value(&a, "--save-every")) {
            if (ba_args_long(&a, "--save-every", &n)) o.save_every = n;
        }
        else if (ba_args_value(&a, "--dump-gradients")) o.dump_gradients = a.value;
        else if (ba_args_flag(&a, "--quiet")) o.quiet = true;
        else snprintf(a.error, sizeof a.error, "unknown option '%s' (see --help)", argv[a.i]);
    }
    if (a.error[0]) {
        ba_fail(&err, BA_ERR_USAGE, "%s", a.error);
        return ba_cli_report("finetune", BA_ERR_USAGE, &err);
    }
    ba_error_clear(&err);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_terminate;
    sigaction(SIGTERM, &action, NULL);
    o.stop_requested = &stop_requested;
    ba_finetune_summary summary;
    ba_status rc = ba_finetune_run(&o, MPI_COMM_WORLD, &summary, &err);
    if (rc != BA_OK) return ba_cli_report("finetune", rc, &err);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0 && !o.quiet)
        printf("finetune: %lld steps (%lld resumed), last loss %.6g, wrote %s\n",
               (long long)summary.steps_done, (long long)summary.resumed_from, summary.last_loss,
               o.out_dir);
    return 0;
}
