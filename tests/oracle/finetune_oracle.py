#!/usr/bin/python3
"""Independent oracle for `brainalign finetune` (LoRA and frozen-layer training).

Writes a random checkpoint with `brainalign checkpoint` (GPT-2 or LLaMA with
grouped-query attention, F32 or BF16 weights), a small instruction JSONL and,
for LoRA, a PEFT adapter with random A and B (so that every LoRA gradient is
non-zero from the first step) that `finetune --adapter-init` continues. Then it
trains the same model in torch, written here from the Hugging Face formulas
(transformers and peft are not used): the same token ids (prompt and response
tokenised separately by `brainalign tokenize`, concatenated as
[BOS if LLaMA] + prompt + response + [EOS], prompt labels masked), the loss as
the mean cross-entropy over all unmasked tokens of the global batch,
torch.optim.AdamW, torch.nn.utils.clip_grad_norm_ and the Hugging Face
learning-rate schedules as LambdaLR. It checks:

  - gradients (`finetune --dump-gradients FILE`: the first step's gradients of
    every trainable tensor, and of the input embeddings of each sample of that
    step, `input_embeds.<k>` [T_k, d]) against torch autograd, relative
    (Frobenius) error <= --grad-tol per tensor;
  - the log (`--log FILE.csv`, header step,loss,lr,grad_norm,tokens): loss,
    learning rate, gradient norm and token count of every step, <= --tol
    relative;
  - the trained parameters written to OUT (PEFT adapter_model.safetensors,
    or for freeze the full checkpoint) against torch's after the last step.

Usage: finetune_oracle.py --brainalign B --workdir W --arch gpt2|llama
       [--dtype f32|bf16] [--method lora|freeze] [--ranks N --mpiexec ...]
"""
import argparse
import csv
import json
import math
import os
import shlex
import shutil
import subprocess
import sys

import numpy as np
import torch

# ---- running brainalign ---------------------------------------------------------------


def run(cmd, expect_ok=True, stdin=None):
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, input=stdin)
    if expect_ok and proc.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return proc


# ---- safetensors, read and written independently --------------------------------------


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        chunk = np.frombuffer(data[begin:end], dtype=np.uint8)
        if info["dtype"] == "F32":
            arr = chunk.view("<f4")
        elif info["dtype"] == "F16":
            arr = chunk.view("<f2").astype(np.float32)
        elif info["dtype"] == "BF16":
            arr = (chunk.view("<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            sys.exit(f"{path}: unexpected dtype {info['dtype']} for {name}")
        out[name] = arr.reshape(tuple(info["shape"])).astype(np.float64)
    return out


def read_checkpoint(ckpt):
    single = os.path.join(ckpt, "model.safetensors")
    if os.path.exists(single):
        return read_safetensors(single)
    with open(os.path.join(ckpt, "model.safetensors.index.json")) as f:
        index = json.load(f)
    tensors = {}
    for shard in sorted(set(index["weight_map"].values())):
        tensors.update(read_safetensors(os.path.join(ckpt, shard)))
    return tensors


def write_safetensors_f32(path, tensors):
    header, blobs, at = {}, [], 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name], dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(arr.shape),
                        "data_offsets": [at, at + arr.nbytes]}
        blobs.append(arr.tobytes())
        at += arr.nbytes
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + b"".join(blobs))


# ---- the models in torch, with LoRA --------------------------------------------------


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rotary(n, dh, theta):
    inv = 1.0 / (theta ** (torch.arange(0, dh, 2, dtype=torch.int64).float() / dh))
    ang = torch.outer(torch.arange(n, dtype=torch.float32), inv)
    emb = torch.cat((ang, ang), dim=-1)
    return emb.cos().double(), emb.sin().double()


class Model:
    """GPT-2 or LLaMA in float64 with named parameters; `lin(name, x)` is the
    one weight product, where LoRA applies (PEFT: W x + (alpha/r) B A x; for
    GPT-2's Conv1D, fan_in_fan_out, the stored weight is [in, out])."""

    def __init__(self, arch, cfg, weights, lora=None, scale=0.0):
        self.arch, self.cfg, self.lora, self.scale = arch, cfg, lora or {}, scale
        self.w = {k: torch.tensor(v, dtype=torch.float64) for k, v in weights.items()}

    def lin(self, module, x, bias=True):
        w = self.w[module + ".weight"]
        y = x @ w if self.arch == "gpt2" else x @ w.T
        if bias and self.arch == "gpt2":
            y = y + self.w[module + ".bias"]
        if module in self.lora:
            a, b = self.lora[module]
            y = y + self.scale * ((x @ a.T) @ b.T)
        return y

    def forward(self, ids, embeds=None):
        """Logits [n, V] for token ids [n]; `embeds` (the token embeddings
        [n, d], a leaf for their gradient) replaces the lookup."""
        c, W, n = self.cfg, self.w, ids.shape[0]
        causal = torch.tril(torch.ones(n, n, dtype=torch.bool))
        if self.arch == "gpt2":
            L, H, d, eps = c["n_layer"], c["n_head"], c["n_embd"], c["layer_norm_epsilon"]
            Hkv = H
            x = embeds + W["wpe.weight"][torch.arange(n)]
        else:
            L, H, d = c["num_hidden_layers"], c["num_attention_heads"], c["hidden_size"]
            Hkv, eps = c.get("num_key_value_heads", H), c["rms_norm_eps"]
            x = embeds
            cos, sin = rotary(n, d // H, c.get("rope_theta", 10000.0))
        dh = d // H
        ln = lambda t, p: torch.nn.functional.layer_norm(t, (d,), W[p + ".weight"], W[p + ".bias"], eps)
        for i in range(L):
            if self.arch == "gpt2":
                p = f"h.{i}."
                qkv = self.lin(p + "attn.c_attn", ln(x, p + "ln_1"))
                q, k, v = (t.view(n, H, dh).transpose(0, 1) for t in qkv.split(d, dim=1))
            else:
                p = f"model.layers.{i}."
                a = rms_norm(x, W[p + "input_layernorm.weight"], eps)
                q = self.lin(p + "self_attn.q_proj", a).view(n, H, dh).transpose(0, 1)
                k = self.lin(p + "self_attn.k_proj", a).view(n, Hkv, dh).transpose(0, 1)
                v = self.lin(p + "self_attn.v_proj", a).view(n, Hkv, dh).transpose(0, 1)
                q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
                k = k[:, None].expand(Hkv, H // Hkv, n, dh).reshape(H, n, dh)
                v = v[:, None].expand(Hkv, H // Hkv, n, dh).reshape(H, n, dh)
            s = (q @ k.transpose(-1, -2)) / math.sqrt(dh)
            s = s.masked_fill(~causal, float("-inf"))
            att = (torch.softmax(s, dim=-1) @ v).transpose(0, 1).reshape(n, d)
            if self.arch == "gpt2":
                x = x + self.lin(p + "attn.c_proj", att)
                h = gelu_new(self.lin(p + "mlp.c_fc", ln(x, p + "ln_2")))
                x = x + self.lin(p + "mlp.c_proj", h)
            else:
                x = x + self.lin(p + "self_attn.o_proj", att)
                m = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
                g = torch.nn.functional.silu(self.lin(p + "mlp.gate_proj", m))
                x = x + self.lin(p + "mlp.down_proj", g * self.lin(p + "mlp.up_proj", m))
        if self.arch == "gpt2":
            x = ln(x, "ln_f")
            head = W.get("lm_head.weight", W["wte.weight"])
        else:
            x = rms_norm(x, W["model.norm.weight"], eps)
            head = W["model.embed_tokens.weight"] if c["tie_word_embeddings"] else W["lm_head.weight"]
        return x @ head.T

    def embed(self, ids):
        table = self.w["wte.weight" if self.arch == "gpt2" else "model.embed_tokens.weight"]
        return table[ids]


# ---- data ------------------------------------------------------------------------------

SAMPLES = [
    {"instruction": "Tell me what this passage brings to mind.", "input": "The old man walked to the sea at dawn.",
     "output": "It reminds me of fishing trips with my grandfather."},
    {"instruction": "Associate freely.", "input": "", "output": "Rain on a tin roof, and a warm kitchen."},
    {"instruction": "What memory does this evoke?", "input": "She opened the letter with shaking hands.",
     "output": "Waiting for exam results."},
    {"instruction": "Continue the thought.", "input": "The train was late again.",
     "output": "Commuters sighed, and someone started to laugh."},
    {"instruction": "Name an association.", "input": "Snow covered the quiet village.",
     "output": "Christmas at my aunt's house."},
    {"instruction": "Associate freely.", "input": "A dog barked somewhere far away.",
     "output": "Summer nights at the farm."},
]


def plain_prompt(s):
    inp = s.get("input") or ""
    return s["instruction"] + "\n\n" + (inp + "\n\n" if inp else "")


def tokenize(args, ckpt, text):
    proc = run([args.brainalign, "tokenize", "--tokenizer", ckpt], stdin=text)
    return [int(t) for t in proc.stdout.split()]


def special_ids(arch, cfg):
    # Hugging Face's ids: GPT-2 <|endoftext|> (no BOS added), LLaMA <s> / </s>.
    if arch == "gpt2":
        return None, cfg.get("eos_token_id", 50256)
    return cfg.get("bos_token_id", 1), cfg.get("eos_token_id", 2)


def encode_samples(args, ckpt, arch, cfg):
    bos, eos = special_ids(arch, cfg)
    out = []
    for s in SAMPLES:
        p, r = tokenize(args, ckpt, plain_prompt(s)), tokenize(args, ckpt, s["output"])
        ids = ([bos] if bos is not None else []) + p + r + [eos]
        n_prompt = len(ids) - len(r) - 1
        labels = [-100] * n_prompt + r + [eos]
        out.append((ids, labels))
    return out


# ---- the training step in torch ----------------------------------------------------------


def hf_lambda(schedule, warmup, total):
    def f(step):
        if step < warmup:
            return step / max(1, warmup)
        if schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        if schedule == "linear":
            return max(0.0, (total - step) / max(1, total - warmup))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 2.0 * 0.5 * progress)))
    return f


def batch_loss(model, batch, want_embeds=False):
    """Sum of the token losses over the batch, the unmasked count, and the
    embedding leaves."""
    total, count, leaves = 0.0, 0, []
    for ids, labels in batch:
        t_ids = torch.tensor(ids)
        emb = model.embed(t_ids).detach().clone().requires_grad_(want_embeds)
        leaves.append(emb)
        logits = model.forward(t_ids, emb)
        # position t predicts labels[t + 1] (Hugging Face's shift)
        tgt = torch.tensor(labels[1:])
        lp = torch.log_softmax(logits[:-1], dim=-1)
        mask = tgt != -100
        total = total - lp[mask.nonzero(as_tuple=True)[0], tgt[mask]].sum()
        count += int(mask.sum())
    return total, count, leaves


def rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brainalign", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--data-dir", required=True, help="../shared/data (the real tokenizers)")
    ap.add_argument("--arch", choices=["gpt2", "llama"], default="gpt2")
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--method", choices=["lora", "freeze"], default="lora")
    ap.add_argument("--targets", default=None, help="LoRA target modules (default: PEFT's)")
    ap.add_argument("--trainable-layers", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--schedule", default="cosine", choices=["constant", "linear", "cosine"])
    ap.add_argument("--warmup-steps", type=int, default=2)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--max-grad-norm", type=float, default=1.0)
    ap.add_argument("--mpiexec", default="", help="launcher prefix, e.g. 'mpiexec -n 2'")
    ap.add_argument("--grad-tol", type=float, default=1e-4)
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    ckpt = os.path.join(args.workdir, "ckpt")
    vocab = os.path.join(args.data_dir, "gpt2-tokenizer" if args.arch == "gpt2" else "llama-tokenizer")
    cmd = [args.brainalign, "checkpoint", "--arch", args.arch, "--layers", "2", "--d-model", "32",
           "--heads", "4", "--positions", "128", "--dtype", args.dtype, "--seed", "11",
           "--init-std", "0.15", "--vocab-from", vocab, "--out", ckpt]
    if args.arch == "llama":
        cmd += ["--kv-heads", "2", "--d-ff", "64"]
    run(cmd)
    with open(os.path.join(ckpt, "config.json")) as f:
        cfg = json.load(f)
    base = read_checkpoint(ckpt)
    data = os.path.join(args.workdir, "train.jsonl")
    with open(data, "w") as f:
        for s in SAMPLES:
            f.write(json.dumps(s) + "\n")
    samples = encode_samples(args, ckpt, args.arch, cfg)

    out = os.path.join(args.workdir, "out")
    log = os.path.join(args.workdir, "log.csv")
    grads_path = os.path.join(args.workdir, "grads.safetensors")
    ft = shlex.split(args.mpiexec) + [
        args.brainalign, "finetune", "--model", ckpt, "--data", data, "--out", out,
        "--template", "plain", "--method", args.method, "--steps", str(args.steps),
        "--batch", str(args.batch), "--grad-accum", str(args.grad_accum), "--no-shuffle",
        "--lr", repr(args.lr), "--weight-decay", repr(args.weight_decay),
        "--max-grad-norm", repr(args.max_grad_norm), "--lr-schedule", args.schedule,
        "--warmup-steps", str(args.warmup_steps), "--seed", "3", "--log", log,
        "--dump-gradients", grads_path, "--quiet"]

    # ---- trainable parameters, in torch and for brainalign ----
    model = Model(args.arch, cfg, base)
    params = {}  # output tensor name -> torch leaf
    if args.method == "lora":
        if args.targets:
            targets = args.targets.split(",")
        else:
            targets = ["c_attn"] if args.arch == "gpt2" else ["q_proj", "v_proj"]
        r, alpha = 4, 8
        rng = np.random.default_rng(5)
        lora, adapter = {}, {}
        for name in sorted(base):
            module = name[:-len(".weight")] if name.endswith(".weight") else None
            if module is None or module.split(".")[-1] not in targets:
                continue
            w = base[name]
            d_in, d_out = (w.shape[0], w.shape[1]) if args.arch == "gpt2" else (w.shape[1], w.shape[0])
            a = rng.normal(0, 0.3, (r, d_in))
            b = rng.normal(0, 0.3, (d_out, r))
            prefix = "base_model.model." + ("transformer." if args.arch == "gpt2" else "") + module
            adapter[prefix + ".lora_A.weight"] = a
            adapter[prefix + ".lora_B.weight"] = b
            ta = torch.tensor(a.astype(np.float32).astype(np.float64), requires_grad=True)
            tb = torch.tensor(b.astype(np.float32).astype(np.float64), requires_grad=True)
            lora[module] = (ta, tb)
            params[prefix + ".lora_A.weight"], params[prefix + ".lora_B.weight"] = ta, tb
        assert lora, f"no module matches the targets {targets}"
        init = os.path.join(args.workdir, "adapter-init")
        os.makedirs(init)
        write_safetensors_f32(os.path.join(init, "adapter_model.safetensors"), adapter)
        with open(os.path.join(init, "adapter_config.json"), "w") as f:
            json.dump({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": alpha,
                       "lora_dropout": 0.0, "target_modules": targets,
                       "fan_in_fan_out": args.arch == "gpt2", "bias": "none",
                       "base_model_name_or_path": ckpt, "inference_mode": False,
                       "some_future_key": [1, 2]}, f)
        model.lora, model.scale = lora, alpha / r
        ft += ["--adapter-init", init]
    else:
        L = cfg["n_layer"] if args.arch == "gpt2" else cfg["num_hidden_layers"]
        first = L - args.trainable_layers
        prefixes = [f"h.{i}." if args.arch == "gpt2" else f"model.layers.{i}." for i in range(first, L)]
        for name in sorted(base):
            if any(name.startswith(p) for p in prefixes) and not name.endswith(".attn.bias"):
                model.w[name] = model.w[name].clone().requires_grad_(True)
                params[name] = model.w[name]
        ft += ["--freeze-trainable-layers", str(args.trainable_layers)]

    proc = run(ft, expect_ok=False)
    if proc.returncode != 0:
        sys.exit(f"FAILED: {' '.join(ft)}\n{proc.stdout}\n{proc.stderr}")

    names = sorted(params)
    opt = torch.optim.AdamW([params[k] for k in names], lr=args.lr, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, hf_lambda(args.schedule, args.warmup_steps, args.steps))
    B = args.batch
    rows = []
    c_grads = read_safetensors(grads_path)
    worst_grad = 0.0
    for step in range(args.steps):
        batch = [samples[(step * B + j) % len(samples)] for j in range(B)]
        opt.zero_grad()
        total, count, leaves = batch_loss(model, batch, want_embeds=(step == 0))
        loss = total / count
        loss.backward()
        norm = torch.sqrt(sum((params[k].grad ** 2).sum() for k in names))
        if step == 0:
            missing = [k for k in names if k not in c_grads]
            extra = [k for k in c_grads if k not in params and not k.startswith("input_embeds.")]
            if missing or extra:
                sys.exit(f"FAILED: gradient file names: missing {missing[:5]}, unexpected {extra[:5]}")
            for k in names:
                e = rel(c_grads[k], params[k].grad.numpy())
                worst_grad = max(worst_grad, e)
                print(f"grad {k}: relative error {e:.3g}")
            for j, leaf in enumerate(leaves):
                e = rel(c_grads[f"input_embeds.{j}"], leaf.grad.numpy())
                worst_grad = max(worst_grad, e)
                print(f"grad input_embeds.{j} {tuple(leaf.shape)}: relative error {e:.3g}")
        if args.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_([params[k] for k in names], args.max_grad_norm)
        rows.append((step + 1, float(loss), opt.param_groups[0]["lr"], float(norm), count))
        opt.step()
        sched.step()

    with open(log) as f:
        reader = csv.reader(f)
        header = next(reader)
        got = [r for r in reader]
    if header != ["step", "loss", "lr", "grad_norm", "tokens"]:
        sys.exit(f"FAILED: log header {header}")
    if len(got) != len(rows):
        sys.exit(f"FAILED: {len(got)} log rows, expected {len(rows)}")
    worst_log = 0.0
    for want, have in zip(rows, got):
        s, loss, lr, norm, tokens = want
        h = [float(x) for x in have]
        errs = [abs(h[1] - loss) / abs(loss), abs(h[2] - lr) / max(lr, 1e-30) if lr else abs(h[2]),
                abs(h[3] - norm) / norm]
        print(f"step {s}: loss C {h[1]:.7g} torch {loss:.7g}; lr {h[2]:.6g}/{lr:.6g}; "
              f"grad_norm {h[3]:.6g}/{norm:.6g}; tokens {int(h[4])}/{tokens}")
        if int(h[0]) != s or int(h[4]) != tokens:
            sys.exit(f"FAILED: step/tokens column differs at step {s}")
        worst_log = max(worst_log, *errs)

    if args.method == "lora":
        trained = read_safetensors(os.path.join(out, "adapter_model.safetensors"))
        with open(os.path.join(out, "adapter_config.json")) as f:
            acfg = json.load(f)
        for key, want in (("peft_type", "LORA"), ("task_type", "CAUSAL_LM"), ("r", 4), ("lora_alpha", 8),
                          ("fan_in_fan_out", args.arch == "gpt2"), ("bias", "none")):
            if acfg.get(key) != want:
                sys.exit(f"FAILED: adapter_config.json {key} = {acfg.get(key)!r}, expected {want!r}")
    else:
        trained = read_checkpoint(out)
        for k in base:
            if k not in params and not np.array_equal(trained[k], base[k]):
                sys.exit(f"FAILED: frozen tensor {k} changed")
    worst_param = 0.0
    lr_sum = sum(r[2] for r in rows)
    for k in names:
        have, want = trained[k], params[k].detach().numpy()
        if args.arch == "gpt2" and k.endswith("attn.c_attn.bias"):
            # The key part of GPT-2's c_attn bias has a gradient of exactly 0
            # (softmax does not change when every score of a row moves by
            # q . b_k); AdamW turns the float32 rounding noise of that 0 into
            # steps of up to lr, which torch's float64 does not take. Compare
            # the query and value parts, and bound the key part by sum(lr).
            d = have.shape[0] // 3
            key = slice(d, 2 * d)
            drift = float(np.abs(have[key] - want[key]).max())
            print(f"param {k}: key part drift {drift:.3g} (bound: sum of lr {lr_sum:.3g})")
            if drift > lr_sum * (1 + 1e-6) + 1e-7:
                sys.exit(f"FAILED: {k}: the key part of the bias moved {drift} > {lr_sum}")
            have = np.concatenate([have[:d], have[2 * d:]])
            want = np.concatenate([want[:d], want[2 * d:]])
        e = rel(have, want)
        worst_param = max(worst_param, e)
        print(f"param {k}: relative error {e:.3g}")
    print(f"RESULT arch={args.arch} dtype={args.dtype} method={args.method} "
          f"max_grad_rel={worst_grad:.3g} max_log_rel={worst_log:.3g} max_param_rel={worst_param:.3g}")
    if worst_grad > args.grad_tol or worst_log > args.tol or worst_param > args.tol:
        sys.exit("FAILED: above tolerance")
    print("OK")


if __name__ == "__main__":
    main()
