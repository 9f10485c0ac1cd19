#!/usr/bin/python3
"""Independent oracle for brainalign's GPT-2 forward pass.

Builds a random checkpoint with `brainalign checkpoint`, runs the C forward
pass on fixed random tokens (tests/oracle/gpt2_dump.c), then recomputes
everything here: the safetensors files are read with json + numpy (not
with brainalign's parser) and the model is written out in torch from the
Hugging Face GPT-2 formulas (transformers is not used). Every hidden state
(Hugging Face output_hidden_states convention) and every next-token
log-probability must agree within --tol.

Also checks the checkpoint is in the exact Hugging Face layout (names,
Conv1D shapes, the attn.bias causal-mask buffer) and, with --errors, that
the C loader refuses checkpoints that disagree with their config.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import torch

N_LAYERS, D_MODEL, N_HEADS, N_POSITIONS = 3, 64, 4, 64


def run(cmd, expect_ok=True, mpi=False):
    env = dict(os.environ)
    if mpi:
        # Open MPI's own start-up allocations are never freed; in sanitizer
        # builds, leak checks stay on for everything but MPI executables.
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if expect_ok and proc.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return proc


# ---- safetensors, read independently --------------------------------------------

def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        chunk = np.frombuffer(data[begin:end], dtype=np.uint8)
        shape = tuple(info["shape"])
        if info["dtype"] == "F32":
            arr = chunk.view("<f4")
        elif info["dtype"] == "F16":
            arr = chunk.view("<f2").astype(np.float32)
        elif info["dtype"] == "BF16":
            arr = (chunk.view("<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            sys.exit(f"{path}: unexpected dtype {info['dtype']} for {name}")
        tensors[name] = (info["dtype"], arr.reshape(shape).copy())
    return header.get("__metadata__"), tensors


def read_checkpoint(ckpt):
    single = os.path.join(ckpt, "model.safetensors")
    if os.path.exists(single):
        return read_safetensors(single)[1]
    with open(os.path.join(ckpt, "model.safetensors.index.json")) as f:
        index = json.load(f)
    tensors = {}
    for shard in sorted(set(index["weight_map"].values())):
        _, part = read_safetensors(os.path.join(ckpt, shard))
        for name in part:
            assert index["weight_map"][name] == shard, f"{name} listed in the wrong shard"
        tensors.update(part)
    assert set(tensors) == set(index["weight_map"]), "index and shards disagree"
    return tensors


def check_layout(tensors, cfg, dtype, init_std):
    """The exact Hugging Face GPT2LMHeadModel (safetensors) layout."""
    L, d, V, P = cfg["n_layer"], cfg["n_embd"], cfg["vocab_size"], cfg["n_positions"]
    f = cfg.get("n_inner") or 4 * d
    want = {"wte.weight": (V, d), "wpe.weight": (P, d), "ln_f.weight": (d,), "ln_f.bias": (d,)}
    for i in range(L):
        want.update({
            f"h.{i}.ln_1.weight": (d,), f"h.{i}.ln_1.bias": (d,),
            f"h.{i}.attn.bias": (1, 1, P, P),
            f"h.{i}.attn.c_attn.weight": (d, 3 * d), f"h.{i}.attn.c_attn.bias": (3 * d,),
            f"h.{i}.attn.c_proj.weight": (d, d), f"h.{i}.attn.c_proj.bias": (d,),
            f"h.{i}.ln_2.weight": (d,), f"h.{i}.ln_2.bias": (d,),
            f"h.{i}.mlp.c_fc.weight": (d, f), f"h.{i}.mlp.c_fc.bias": (f,),
            f"h.{i}.mlp.c_proj.weight": (f, d), f"h.{i}.mlp.c_proj.bias": (d,),
        })
    got = {k: v[1].shape for k, v in tensors.items()}
    if got != want:
        sys.exit(f"layout differs from Hugging Face: missing {set(want) - set(got)}, "
                 f"extra {set(got) - set(want)}, "
                 f"shapes {[(k, got[k], want[k]) for k in want if k in got and got[k] != want[k]]}")
    for k, (dt, _) in tensors.items():
        assert dt == dtype, f"{k} stored as {dt}, expected {dtype}"
    tril = np.tril(np.ones((P, P), dtype=np.float32))
    for i in range(L):
        assert np.array_equal(tensors[f"h.{i}.attn.bias"][1][0, 0], tril), "attn.bias not causal"
    # Random but shaped like GPT-2's initialisation; norms not trivially 1.
    assert 0.9 * init_std < tensors["wte.weight"][1].std() < 1.1 * init_std
    ln = tensors["h.0.ln_1.weight"][1]
    assert abs(ln.mean() - 1) < 0.05 and ln.std() > 0.05
    assert cfg["model_type"] == "gpt2" and cfg["activation_function"] == "gelu_new"


# ---- GPT-2 in torch, from the Hugging Face formulas -----------------------------------

def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def gpt2_forward(w, cfg, ids):
    """Hidden states (embeddings, after each block, last one after ln_f) and
    log p(ids[t+1] | ids[..t])."""
    L, H, d = cfg["n_layer"], cfg["n_head"], cfg["n_embd"]
    eps = cfg["layer_norm_epsilon"]
    dh = d // H
    n = ids.shape[0]
    T = lambda name: torch.from_numpy(w[name][1])
    x = T("wte.weight")[ids] + T("wpe.weight")[torch.arange(n)]
    states = [x]
    causal = torch.tril(torch.ones(n, n, dtype=torch.bool))
    for i in range(L):
        p = f"h.{i}."
        a = torch.nn.functional.layer_norm(x, (d,), T(p + "ln_1.weight"), T(p + "ln_1.bias"), eps)
        qkv = a @ T(p + "attn.c_attn.weight") + T(p + "attn.c_attn.bias")  # Conv1D: x W + b
        q, k, v = qkv.split(d, dim=1)
        heads = lambda t: t.view(n, H, dh).transpose(0, 1)  # [H, n, dh]
        q, k, v = heads(q), heads(k), heads(v)
        scores = (q @ k.transpose(-1, -2)) / torch.full([], dh ** 0.5)
        scores = torch.where(causal, scores, torch.tensor(torch.finfo(scores.dtype).min))
        att = torch.softmax(scores, dim=-1) @ v
        att = att.transpose(0, 1).reshape(n, d)
        x = x + att @ T(p + "attn.c_proj.weight") + T(p + "attn.c_proj.bias")
        m = torch.nn.functional.layer_norm(x, (d,), T(p + "ln_2.weight"), T(p + "ln_2.bias"), eps)
        h = gelu_new(m @ T(p + "mlp.c_fc.weight") + T(p + "mlp.c_fc.bias"))
        x = x + h @ T(p + "mlp.c_proj.weight") + T(p + "mlp.c_proj.bias")
        states.append(x)
    states[-1] = torch.nn.functional.layer_norm(x, (d,), T("ln_f.weight"), T("ln_f.bias"), eps)
    lm_head = T("lm_head.weight") if "lm_head.weight" in w else T("wte.weight")
    logits = states[-1] @ lm_head.T
    logp = torch.log_softmax(logits.double(), dim=-1)
    next_lp = logp[torch.arange(n - 1), ids[1:]]
    return torch.stack(states).numpy(), next_lp.numpy()


# ---- error cases of the C loader ---------------------------------------------------------

def check_errors(args, ckpt, tokens_path):
    bad = os.path.join(args.workdir, "bad")

    def expect_failure(label, *fragments):
        proc = run([args.dump, bad, tokens_path, os.path.join(args.workdir, "bad_out")], False)
        if proc.returncode == 0 or not all(fr in proc.stderr for fr in fragments):
            sys.exit(f"{label}: expected failure mentioning {fragments}, got rc "
                     f"{proc.returncode}: {proc.stderr}")
        print(f"{label}: refused: {proc.stderr.strip()}")

    def fresh_copy():
        shutil.rmtree(bad, ignore_errors=True)
        shutil.copytree(ckpt, bad)
        with open(os.path.join(bad, "config.json")) as f:
            return json.load(f)

    def save_config(cfg):
        with open(os.path.join(bad, "config.json"), "w") as f:
            json.dump(cfg, f)

    cfg = fresh_copy()
    cfg["n_embd"] = 2 * cfg["n_embd"]
    save_config(cfg)
    expect_failure("width disagreeing with the weights", "'wte.weight'", "has shape")

    cfg = fresh_copy()
    cfg["n_layer"] = 2
    save_config(cfg)
    expect_failure("fewer layers in config", "unexpected tensor 'h.2.")

    cfg = fresh_copy()
    cfg["n_layer"] = 4
    save_config(cfg)
    expect_failure("more layers in config", "'h.3.ln_1.weight'")

    cfg = fresh_copy()
    del cfg["n_head"]
    save_config(cfg)
    expect_failure("missing field", "config.json", "\"n_head\"")

    cfg = fresh_copy()
    cfg["activation_function"] = "relu"
    save_config(cfg)
    expect_failure("unsupported activation", "'relu'")

    # An extra tensor the model does not know: rewrite model.safetensors by hand.
    fresh_copy()
    path = os.path.join(bad, "model.safetensors")
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    header["h.0.attn.rotary.weight"] = {"dtype": "F32", "shape": [2],
                                        "data_offsets": [len(data), len(data) + 8]}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + data + bytes(8))
    expect_failure("unknown tensor", "unexpected tensor 'h.0.attn.rotary.weight'")
    shutil.rmtree(bad, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--brainalign", required=True)
    ap.add_argument("--dump", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--dtype", default="f32", choices=["f32", "f16", "bf16"])
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--vocab-size", type=int, default=3000)
    ap.add_argument("--vocab-from", default=None)
    ap.add_argument("--init-std", type=float, default=0.02,
                    help="weights' std; GPT-2's 0.02 gives near-uniform attention and small "
                         "MLP inputs, larger values make the comparison sharper")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--errors", action="store_true", help="also check the loader's refusals")
    args = ap.parse_args()

    torch.set_num_threads(1)
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    ckpt = os.path.join(args.workdir, "ckpt")
    cmd = [args.brainalign, "checkpoint", "--arch", "gpt2", "--layers", str(N_LAYERS),
           "--d-model", str(D_MODEL), "--heads", str(N_HEADS), "--positions", str(N_POSITIONS),
           "--dtype", args.dtype, "--seed", "20250513", "--shards", str(args.shards),
           "--init-std", repr(args.init_std),
           "--out", ckpt]
    cmd += ["--vocab-from", args.vocab_from] if args.vocab_from else ["--vocab-size", str(args.vocab_size)]
    run(cmd, mpi=True)
    files = sorted(os.listdir(ckpt))
    print("checkpoint:", " ".join(files))
    if args.shards > 1:
        assert f"model-00001-of-{args.shards:05d}.safetensors" in files
        assert "model.safetensors.index.json" in files
    if args.vocab_from:
        for pair in (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe")):
            if os.path.exists(os.path.join(args.vocab_from, pair[0])):
                assert pair[0] in files and pair[1] in files, f"tokenizer files {pair} not copied"
    # Rewriting the same directory is refused, leaving it intact.
    again = run(cmd, expect_ok=False, mpi=True)
    assert again.returncode != 0 and "already exists" in again.stderr, again.stderr
    assert sorted(os.listdir(ckpt)) == files

    with open(os.path.join(ckpt, "config.json")) as f:
        cfg = json.load(f)
    weights = read_checkpoint(ckpt)
    check_layout(weights, cfg, args.dtype.upper(), args.init_std)

    rng = np.random.default_rng(7)
    ids = rng.integers(0, cfg["vocab_size"], size=N_POSITIONS).astype("<i4")
    ids[5] = cfg["vocab_size"] - 1  # the last vocabulary entry (last chunk of the output layer)
    tokens_path = os.path.join(args.workdir, "tokens.i32")
    ids.tofile(tokens_path)
    out = os.path.join(args.workdir, "c")
    print(run([args.dump, ckpt, tokens_path, out]).stdout.strip())
    n, L, d = len(ids), cfg["n_layer"], cfg["n_embd"]
    c_hidden = np.fromfile(out + ".hidden.f32", dtype="<f4").reshape(L + 1, n, d)
    c_logprob = np.fromfile(out + ".logprob.f32", dtype="<f4")

    with torch.no_grad():
        t_hidden, t_logprob = gpt2_forward(weights, cfg, torch.from_numpy(ids.astype(np.int64)))

    worst = 0.0
    for i in range(L + 1):
        diff = float(np.abs(c_hidden[i] - t_hidden[i]).max())
        scale = float(np.abs(t_hidden[i]).max())
        print(f"hidden state {i}: max |C - torch| = {diff:.3g} (values up to {scale:.3g})")
        worst = max(worst, diff)
    lp_diff = float(np.abs(c_logprob[:-1] - t_logprob).max())
    print(f"next-token log-probabilities: max |C - torch| = {lp_diff:.3g} "
          f"(mean {t_logprob.mean():.4f} nats, uniform would be {-math.log(cfg['vocab_size']):.4f})")
    print(f"RESULT dtype={args.dtype} shards={args.shards} vocab={cfg['vocab_size']} "
          f"init_std={args.init_std} "
          f"max_abs_hidden={worst:.3g} max_abs_logprob={lp_diff:.3g}")
    ok = worst < args.tol and lp_diff < args.tol and math.isnan(c_logprob[-1])
    if not ok:
        sys.exit(f"FAILED: differences above {args.tol} (or last log-probability not NaN)")
    if args.errors:
        check_errors(args, ckpt, tokens_path)
    print("OK")


if __name__ == "__main__":
    main()
