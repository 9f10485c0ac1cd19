#!/usr/bin/python3
"""Oracle for the model's training pass (ba_model_train_sequence, lm/train.h).

For GPT-2 and LLaMA (grouped-query attention, 4 query / 2 key-value heads),
with F32 and BF16 base weights, writes a random checkpoint (`brainalign
checkpoint`), and for each trainable set - LoRA on the default targets
(PEFT's: c_attn / q_proj,v_proj), LoRA on every target, freeze K = 1 and
K = 2 - runs tests/oracle/train_grad_dump.c on one sequence (random ids,
the first labels masked with -100). The dump itself checks in C that
recompute gives bitwise the gradients of no recompute, and that stopping the
backward at the lowest trainable block (no input-embedding gradient) does
not change them. This script checks the loss, the unmasked count, every
trainable gradient and the input-embedding gradient against torch autograd
in float64 on the independent torch model of finetune_oracle.py (class
Model, imported, not copied), relative Frobenius error <= --tol.

Usage: train_grad_oracle.py --brainalign B --dump D --data DATA --workdir W
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from finetune_oracle import Model, batch_loss, read_checkpoint, read_safetensors, rel, run, \
    write_safetensors_f32  # noqa: E402

GPT2_ALL = ["c_attn", "c_proj", "c_fc"]
LLAMA_ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make_checkpoint(args, arch, dtype):
    ckpt = os.path.join(args.workdir, f"{arch}-{dtype}")
    vocab = os.path.join(args.data, "gpt2-tokenizer" if arch == "gpt2" else "llama-tokenizer")
    cmd = [args.brainalign, "checkpoint", "--arch", arch, "--layers", "3", "--d-model", "32",
           "--heads", "4", "--positions", "64", "--dtype", dtype, "--seed", "17",
           "--init-std", "0.15", "--vocab-from", vocab, "--out", ckpt]
    if arch == "llama":
        cmd += ["--kv-heads", "2", "--d-ff", "64"]
    run(cmd)
    with open(os.path.join(ckpt, "config.json")) as f:
        cfg = json.load(f)
    return ckpt, cfg, read_checkpoint(ckpt)


def write_adapter(path, arch, base, targets, seed, std):
    """A PEFT adapter with random A and B (every LoRA gradient non-zero);
    returns {module: (A, B)} as float64 leaves and {tensor name: leaf}."""
    r, alpha = 4, 8
    rng = np.random.default_rng(seed)
    lora, tensors, params = {}, {}, {}
    for name in sorted(base):
        module = name[:-len(".weight")] if name.endswith(".weight") else None
        if module is None or module.split(".")[-1] not in targets:
            continue
        w = base[name]
        d_in, d_out = (w.shape[0], w.shape[1]) if arch == "gpt2" else (w.shape[1], w.shape[0])
        a = rng.normal(0, std, (r, d_in)).astype(np.float32)
        b = rng.normal(0, std, (d_out, r)).astype(np.float32)
        prefix = "base_model.model." + ("transformer." if arch == "gpt2" else "") + module
        tensors[prefix + ".lora_A.weight"], tensors[prefix + ".lora_B.weight"] = a, b
        ta = torch.tensor(a.astype(np.float64), requires_grad=True)
        tb = torch.tensor(b.astype(np.float64), requires_grad=True)
        lora[module] = (ta, tb)
        params[prefix + ".lora_A.weight"], params[prefix + ".lora_B.weight"] = ta, tb
    os.makedirs(path)
    write_safetensors_f32(os.path.join(path, "adapter_model.safetensors"), tensors)
    with open(os.path.join(path, "adapter_config.json"), "w") as f:
        json.dump({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": alpha,
                   "lora_dropout": 0.0, "target_modules": targets,
                   "fan_in_fan_out": arch == "gpt2", "bias": "none",
                   "base_model_name_or_path": None}, f)
    return lora, alpha / r, params


def check_case(args, arch, dtype, ckpt, cfg, base, case, ids, labels):
    name = f"{arch}-{dtype}-{case}"
    model = Model(arch, cfg, base)
    cmd = [args.dump, ckpt, os.path.join(args.workdir, name + ".safetensors"),
           ",".join(map(str, ids)), ",".join(map(str, labels))]
    if case.startswith("lora"):
        # Adapters on every module of LLaMA with A, B ~ N(0, 0.3^2) make the
        # network so sensitive that torch's own float32 gradients are 1e-4
        # off its float64 ones: a smaller adapter there keeps the check
        # one of the implementation, not of float32 conditioning.
        if case == "lora-default":
            targets, std = (["c_attn"] if arch == "gpt2" else ["q_proj", "v_proj"]), 0.3
        else:
            targets, std = (GPT2_ALL if arch == "gpt2" else LLAMA_ALL), 0.15
        adir = os.path.join(args.workdir, name + "-adapter")
        model.lora, model.scale, params = write_adapter(adir, arch, base, targets, 7, std)
        cmd += ["--adapter", adir]
    else:
        k = int(case.split("-")[1])
        L = cfg["n_layer"] if arch == "gpt2" else cfg["num_hidden_layers"]
        prefixes = [f"h.{i}." if arch == "gpt2" else f"model.layers.{i}." for i in range(L - k, L)]
        params = {}
        for t in sorted(base):
            # not the causal-mask buffers h.N.attn.bias / attn.masked_bias
            if any(t.startswith(p) for p in prefixes) and not t.endswith(".attn.bias") \
                    and not t.endswith(".attn.masked_bias"):
                model.w[t] = model.w[t].clone().requires_grad_(True)
                params[t] = model.w[t]
        cmd += ["--freeze", str(k)]
    run(cmd)
    got = read_safetensors(os.path.join(args.workdir, name + ".safetensors"))
    total, count, leaves = batch_loss(model, [(ids, labels)], want_embeds=True)
    total.backward()
    errors, worst = [], 0.0
    e = rel(got["loss"][0], total.item())
    if e > args.tol:
        errors.append(f"loss {got['loss'][0]} vs torch {total.item()} (rel {e:.2e})")
    if int(got["count"][0]) != count:
        errors.append(f"count {got['count'][0]} vs {count}")
    for t, leaf in params.items():
        if t not in got:
            errors.append(f"gradient {t} missing from the dump")
            continue
        e = rel(got[t], leaf.grad.numpy())
        worst = max(worst, e)
        if e > args.tol or not np.isfinite(e):
            errors.append(f"{t}: rel {e:.2e}")
    extra = set(got) - set(params) - {"loss", "count", "input_embeds.0"}
    if extra:
        errors.append(f"unexpected gradients {sorted(extra)}")
    e = rel(got["input_embeds.0"], leaves[0].grad.numpy())
    if e > args.tol:
        errors.append(f"input_embeds.0: rel {e:.2e}")
    print(f"{name}: {len(params)} tensors, loss {total.item():.6f}, worst rel {worst:.1e}, "
          f"{'ok' if not errors else 'FAILED'}")
    return [f"{name}: {m}" for m in errors]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brainalign", required=True)
    ap.add_argument("--dump", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    torch.set_num_threads(1)
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    failures = []
    rng = np.random.default_rng(3)
    for arch in ("gpt2", "llama"):
        for dtype in ("f32", "bf16"):
            ckpt, cfg, base = make_checkpoint(args, arch, dtype)
            V = cfg["vocab_size"]
            n = 21
            ids = [int(v) for v in rng.integers(0, V, n)]
            ids[9] = ids[4]  # a repeated token
            labels = [-100] * 6 + ids[6:]
            labels[13] = -100
            for case in ("lora-default", "lora-all", "freeze-1", "freeze-2"):
                failures += check_case(args, arch, dtype, ckpt, cfg, base, case, ids, labels)
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    print("train_grad_oracle: all gradients within", args.tol)


if __name__ == "__main__":
    main()
