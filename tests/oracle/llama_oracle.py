#!/usr/bin/python3
"""Independent oracle for brainalign's LLaMA forward pass.

Builds a random LLaMA checkpoint with `brainalign checkpoint --arch llama`,
runs the C forward pass on a window of tokens (tests/oracle/llama_dump.c),
then recomputes everything here: the safetensors files are read with
json + numpy (not with brainalign's parser) and the model is written out in
torch from the Hugging Face LlamaForCausalLM formulas (transformers is not
used): RMSNorm in float32, rotary embeddings with rotate_half and float32
inverse frequencies and angles, grouped-query attention by repeat_kv,
SwiGLU MLP, final norm, untied or tied output layer. It runs in float64
(on the checkpoint's own values, half-precision ones widened exactly), so
that what is measured is the C code's float32 rounding; the same forward in
float32 is shown beside it for scale. Every hidden state
(output_hidden_states numbering: 0 = embeddings, i = after layer i, the last
after model.norm) and every next-token log-probability must agree with the
float64 reference within --tol (absolute).

Also checks the checkpoint is in the exact Hugging Face layout (names,
nn.Linear [out, in] shapes, dtypes, lm_head present iff untied) and, with
--errors, that the C loader refuses checkpoints that disagree with their
config, ignores rotary_emb.inv_freq buffers and names unknown tensors.
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

# --matmul bf16 (see check_bf16): the median over tokens of each layer's
# per-token largest |C - reference| must stay below --tol (1e-4, as for
# float32 products), and every difference below BF16_FLIP_TOL, which bounds
# what a few activations rounded to the neighbouring bfloat16 (their float32
# values lie within float32 rounding of a tie) change.
BF16_FLIP_TOL = 0.05


def run(cmd, expect_ok=True, mpi=False, stdin=None):
    env = dict(os.environ)
    if mpi:
        # Open MPI's own start-up allocations are never freed; in sanitizer
        # builds, leak checks stay on for everything but MPI executables.
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, input=stdin)
    if expect_ok and proc.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return proc


# ---- safetensors, read independently --------------------------------------------

def parse_safetensors(raw, path):
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    return header, raw[8 + n:]


def read_safetensors(path):
    with open(path, "rb") as f:
        header, data = parse_safetensors(f.read(), path)
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
    return tensors


def read_checkpoint(ckpt):
    single = os.path.join(ckpt, "model.safetensors")
    if os.path.exists(single):
        return read_safetensors(single)
    with open(os.path.join(ckpt, "model.safetensors.index.json")) as f:
        index = json.load(f)
    tensors = {}
    for shard in sorted(set(index["weight_map"].values())):
        part = read_safetensors(os.path.join(ckpt, shard))
        for name in part:
            assert index["weight_map"][name] == shard, f"{name} listed in the wrong shard"
        tensors.update(part)
    assert set(tensors) == set(index["weight_map"]), "index and shards disagree"
    return tensors


def check_layout(tensors, cfg, dtype, init_std):
    """The exact Hugging Face LlamaForCausalLM (safetensors) layout."""
    L, d, V = cfg["num_hidden_layers"], cfg["hidden_size"], cfg["vocab_size"]
    f, H = cfg["intermediate_size"], cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads", H) * (d // H)
    want = {"model.embed_tokens.weight": (V, d), "model.norm.weight": (d,)}
    if not cfg["tie_word_embeddings"]:
        want["lm_head.weight"] = (V, d)
    for i in range(L):
        p = f"model.layers.{i}."
        want.update({
            p + "self_attn.q_proj.weight": (d, d), p + "self_attn.k_proj.weight": (kv, d),
            p + "self_attn.v_proj.weight": (kv, d), p + "self_attn.o_proj.weight": (d, d),
            p + "mlp.gate_proj.weight": (f, d), p + "mlp.up_proj.weight": (f, d),
            p + "mlp.down_proj.weight": (d, f),
            p + "input_layernorm.weight": (d,), p + "post_attention_layernorm.weight": (d,),
        })
    got = {k: v[1].shape for k, v in tensors.items()}
    if got != want:
        sys.exit(f"layout differs from Hugging Face: missing {set(want) - set(got)}, "
                 f"extra {set(got) - set(want)}, "
                 f"shapes {[(k, got[k], want[k]) for k in want if k in got and got[k] != want[k]]}")
    for k, (dt, _) in tensors.items():
        assert dt == dtype, f"{k} stored as {dt}, expected {dtype}"
    assert 0.9 * init_std < tensors["model.embed_tokens.weight"][1].std() < 1.1 * init_std
    norm = tensors["model.layers.0.input_layernorm.weight"][1]
    assert abs(norm.mean() - 1) < 0.05 and norm.std() > 0.05, "norm weights trivially 1"
    assert cfg["model_type"] == "llama" and cfg["hidden_act"] == "silu"
    assert cfg["architectures"] == ["LlamaForCausalLM"]


# ---- LLaMA in torch, from the Hugging Face formulas -----------------------------------

def rms_norm(x, w, eps):
    variance = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(variance + eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rotary_cos_sin(n, dh, theta):
    """LlamaRotaryEmbedding: float32 inverse frequencies and angles."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, dh, 2, dtype=torch.int64).float() / dh))
    freqs = torch.outer(torch.arange(n, dtype=torch.int64).float(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def llama_forward(w, cfg, ids, dtype=torch.float32, bf16_inputs=False, inputs=None):
    """Hidden states (embeddings, after each layer, the last after the final
    norm) and log p(ids[t+1] | ids[..t]), computed in `dtype` (the rotary
    angles are float32 in either case, as in Hugging Face). With
    bf16_inputs, the input of every linear layer (q/k/v, o, gate/up, down,
    the output layer) is first rounded to bfloat16 (from its float32
    value, nearest even), as PyTorch's bf16 model and brainalign's bf16
    products do; the products themselves stay in `dtype`. With `inputs`
    (hidden states [L + 1][n][d] of another implementation), each layer
    starts from inputs[i] instead of the previous layer's output, and the
    log-probabilities come from inputs[L] (layer by layer, "teacher
    forced")."""
    if bf16_inputs:
        R = lambda x: x.to(torch.float32).to(torch.bfloat16).to(dtype)
    else:
        R = lambda x: x
    L, H, d = cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["hidden_size"]
    Hkv = cfg.get("num_key_value_heads", H)
    eps, theta = cfg["rms_norm_eps"], cfg.get("rope_theta", 10000.0)
    dh = d // H
    n = ids.shape[0]
    T = lambda name: torch.from_numpy(w[name][1]).to(dtype)
    x = T("model.embed_tokens.weight")[ids]
    states = [x]
    cos, sin = (t.to(dtype) for t in rotary_cos_sin(n, dh, theta))
    causal = torch.tril(torch.ones(n, n, dtype=torch.bool))
    for i in range(L):
        p = f"model.layers.{i}."
        if inputs is not None:
            x = torch.from_numpy(inputs[i]).to(dtype)
        a = R(rms_norm(x, T(p + "input_layernorm.weight"), eps))
        q = (a @ T(p + "self_attn.q_proj.weight").T).view(n, H, dh).transpose(0, 1)
        k = (a @ T(p + "self_attn.k_proj.weight").T).view(n, Hkv, dh).transpose(0, 1)
        v = (a @ T(p + "self_attn.v_proj.weight").T).view(n, Hkv, dh).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        # repeat_kv: query head h reads key/value head h // (H / Hkv)
        k = k[:, None].expand(Hkv, H // Hkv, n, dh).reshape(H, n, dh)
        v = v[:, None].expand(Hkv, H // Hkv, n, dh).reshape(H, n, dh)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(dh)
        scores = torch.where(causal, scores, torch.tensor(torch.finfo(scores.dtype).min))
        att = torch.softmax(scores, dim=-1) @ v
        att = R(att.transpose(0, 1).reshape(n, d))
        x = x + att @ T(p + "self_attn.o_proj.weight").T
        m = R(rms_norm(x, T(p + "post_attention_layernorm.weight"), eps))
        gate = torch.nn.functional.silu(m @ T(p + "mlp.gate_proj.weight").T)
        x = x + R(gate * (m @ T(p + "mlp.up_proj.weight").T)) @ T(p + "mlp.down_proj.weight").T
        states.append(x)
    states[-1] = rms_norm(x, T("model.norm.weight"), eps)
    head = T("model.embed_tokens.weight") if cfg["tie_word_embeddings"] else T("lm_head.weight")
    final = states[-1] if inputs is None else torch.from_numpy(inputs[L]).to(dtype)
    logits = R(final) @ head.T
    logp = torch.log_softmax(logits.double(), dim=-1)
    next_lp = logp[torch.arange(n - 1), ids[1:]]
    return torch.stack(states).numpy(), next_lp.numpy()


# ---- error cases of the C loader ---------------------------------------------------------

def add_tensor_to_file(path, name, shape):
    """Rewrite a safetensors file with one more F32 tensor (zeros) at the end."""
    with open(path, "rb") as f:
        header, data = parse_safetensors(f.read(), path)
    size = 4 * int(np.prod(shape))
    header[name] = {"dtype": "F32", "shape": list(shape),
                    "data_offsets": [len(data), len(data) + size]}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + data + bytes(size))


def check_errors(args, ckpt, tokens_path, c_hidden, c_logprob):
    bad = os.path.join(args.workdir, "bad")
    out = os.path.join(args.workdir, "bad_out")

    def expect_failure(label, *fragments):
        proc = run([args.dump, bad, tokens_path, out], False)
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

    def add_tensor(beside, name, shape):
        """Add tensor `name` to the file holding tensor `beside` (and to the index)."""
        index = os.path.join(bad, "model.safetensors.index.json")
        if not os.path.exists(index):
            add_tensor_to_file(os.path.join(bad, "model.safetensors"), name, shape)
            return
        with open(index) as f:
            idx = json.load(f)
        shard = idx["weight_map"][beside]
        add_tensor_to_file(os.path.join(bad, shard), name, shape)
        idx["weight_map"][name] = shard
        with open(index, "w") as f:
            json.dump(idx, f)

    cfg = fresh_copy()
    cfg["hidden_size"] = 2 * cfg["hidden_size"]
    save_config(cfg)
    expect_failure("width disagreeing with the weights", "'model.embed_tokens.weight'", "has shape")

    cfg = fresh_copy()
    cfg["num_key_value_heads"] = cfg["num_attention_heads"] if cfg["num_key_value_heads"] != \
        cfg["num_attention_heads"] else 1
    save_config(cfg)
    expect_failure("key/value heads disagreeing with k_proj", "'model.layers.0.self_attn.k_proj.weight'",
                   "has shape")

    cfg = fresh_copy()
    cfg["intermediate_size"] += 1
    save_config(cfg)
    expect_failure("MLP width disagreeing", "'model.layers.0.mlp.gate_proj.weight'", "has shape")

    cfg = fresh_copy()
    cfg["num_hidden_layers"] = 2
    save_config(cfg)
    expect_failure("fewer layers in config", "unexpected tensor 'model.layers.2.")

    cfg = fresh_copy()
    cfg["num_hidden_layers"] = 4
    save_config(cfg)
    expect_failure("more layers in config", "'model.layers.3.")

    cfg = fresh_copy()
    del cfg["num_attention_heads"]
    save_config(cfg)
    expect_failure("missing field", "config.json", "\"num_attention_heads\"")

    cfg = fresh_copy()
    cfg["hidden_act"] = "gelu"
    save_config(cfg)
    expect_failure("unsupported activation", "'gelu'")

    cfg = fresh_copy()
    cfg["num_attention_heads"] = cfg["num_key_value_heads"] = cfg["hidden_size"]
    save_config(cfg)
    expect_failure("odd head width", "is odd")

    cfg = fresh_copy()
    if cfg["tie_word_embeddings"]:
        cfg["tie_word_embeddings"] = False
        save_config(cfg)
        expect_failure("untied without lm_head.weight", "'lm_head.weight'", "tie_word_embeddings")

    # An unknown tensor is named; rotary inverse-frequency buffers are ignored.
    fresh_copy()
    add_tensor("model.norm.weight", "model.layers.0.self_attn.q_norm.weight", (4,))
    expect_failure("unknown tensor", "unexpected tensor 'model.layers.0.self_attn.q_norm.weight'")
    fresh_copy()
    dh = cfg["hidden_size"] // cfg["num_attention_heads"]
    for i in range(cfg["num_hidden_layers"]):
        add_tensor(f"model.layers.{i}.mlp.up_proj.weight",
                   f"model.layers.{i}.self_attn.rotary_emb.inv_freq", (dh // 2,))
    run([args.dump, bad, tokens_path, out])
    h = np.fromfile(out + ".hidden.f32", dtype="<f4").reshape(c_hidden.shape)
    lp = np.fromfile(out + ".logprob.f32", dtype="<f4")
    assert np.array_equal(h, c_hidden) and np.array_equal(lp[:-1], c_logprob[:-1]), \
        "rotary_emb.inv_freq buffers changed the result"
    print("rotary_emb.inv_freq buffers: ignored, same result")
    shutil.rmtree(bad, ignore_errors=True)


def odd_aligned_copy(ckpt, dest):
    """The checkpoint with one more space in each file's JSON header, so
    that every tensor starts at an odd address in the map."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(ckpt, dest)
    for name in os.listdir(dest):
        if not name.endswith(".safetensors"):
            continue
        path = os.path.join(dest, name)
        with open(path, "rb") as f:
            raw = f.read()
        n = int.from_bytes(raw[:8], "little")
        header = raw[8:8 + n] + b" "
        with open(path, "wb") as f:
            f.write(len(header).to_bytes(8, "little") + header + raw[8 + n:])
        assert (8 + len(header)) % 2 == 1


def check_bf16(args, weights, cfg, ids, c_hidden, c_logprob):
    """bf16 products, layer by layer. The whole forward cannot be compared
    with a tolerance tighter than the bfloat16 rounding itself: wherever
    the C code's float32 activation and the reference's lie on either side
    of a bfloat16 tie (one in ~1e5 here), the two round to neighbouring
    bfloat16 values, and attention carries that difference (~1e-2) to the
    later tokens and layers. So each layer is recomputed from the C code's
    own input to it (its previous hidden state), in float64 with the
    linear inputs rounded to bfloat16, and the log-probabilities from its
    final state (rounded identically on both sides: float32 sums only).
    Per layer, the median over tokens of the largest |C - reference| of a
    token must be below --tol (float32 rounding; a token touched by such
    a neighbouring rounding is one of a few), and every difference below
    BF16_FLIP_TOL. The same statistics for the reference without the
    rounding (what a kernel that skipped it, or float32 products, would
    give) must be 10x above the tolerances, or the test could not see it."""
    L, n = cfg["num_hidden_layers"], len(ids)
    t_ids = torch.from_numpy(ids.astype(np.int64))
    with torch.no_grad():
        ref_h, ref_lp = llama_forward(weights, cfg, t_ids, torch.float64, True, inputs=c_hidden)
        raw_h, raw_lp = llama_forward(weights, cfg, t_ids, torch.float64, False, inputs=c_hidden)
    ok, visible = True, True
    for i in range(1, L + 1):
        tok = np.abs(c_hidden[i] - ref_h[i]).max(axis=1)
        effect = np.abs(raw_h[i] - ref_h[i]).max(axis=1)
        print(f"layer {i} from the C code's state {i - 1}: per-token max |C - reference| median "
              f"{np.median(tok):.3g}, largest {tok.max():.3g} ({int(np.sum(tok > args.tol))} of "
              f"{n} tokens above {args.tol:g}); without the bf16 rounding: median "
              f"{np.median(effect):.3g}, largest {effect.max():.3g}")
        ok = ok and np.median(tok) < args.tol and tok.max() < BF16_FLIP_TOL
        visible = visible and np.median(effect) > 10 * args.tol and effect.max() > 10 * args.tol
    lp = float(np.abs(c_logprob[:-1] - ref_lp).max())
    lp_effect = float(np.abs(raw_lp - ref_lp).max())
    print(f"log-probabilities from the C code's final state: max |C - reference| = {lp:.3g}; "
          f"without the bf16 rounding {lp_effect:.3g}")
    ok = ok and lp < args.tol
    if not (visible and lp_effect > 10 * args.tol):
        sys.exit("FAILED: the bf16 rounding moves the reference by less than 10x the tolerance: "
                 "this test would not see it")
    return ok


def story_tokens(args, n):
    """BOS + the first tokens of a real Narratives story, tokenised by
    `brainalign tokenize` with the checkpoint's own tokenizer."""
    words = []
    with open(os.path.join(args.data, "narratives", "stimuli", "pieman", "align.csv")) as f:
        for line in f:
            words.append(line.split(",")[0])
    proc = run([args.brainalign, "tokenize", "--tokenizer", args.vocab_from], mpi=True,
               stdin=" ".join(words))
    ids = [int(t) for t in proc.stdout.split()]
    assert len(ids) >= n - 1 and 1 not in ids, "the tokenizer must not add BOS"
    return np.array([1] + ids[:n - 1], dtype="<i4")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--brainalign", required=True)
    ap.add_argument("--dump", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--data", help="shared data directory (real story tokens with --vocab-from)")
    ap.add_argument("--dtype", default="f32", choices=["f32", "f16", "bf16"])
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--vocab-size", type=int, default=3000)
    ap.add_argument("--vocab-from", default=None)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--d-ff", type=int, default=172)
    ap.add_argument("--rope-theta", type=float, default=None)
    ap.add_argument("--rms-eps", type=float, default=None)
    ap.add_argument("--tie", action="store_true", help="tie_word_embeddings true")
    ap.add_argument("--init-std", type=float, default=0.02,
                    help="weights' std; larger values make the comparison sharper")
    ap.add_argument("--matmul", default="f32", choices=["f32", "bf16"],
                    help="precision of the C products (BRAINALIGN_MATMUL of llama_dump); bf16 "
                         "needs --dtype bf16 and is compared with a reference whose linear "
                         "layers round their inputs to bfloat16")
    ap.add_argument("--tol", type=float, default=None,
                    help="absolute tolerance (default 1e-4; with --matmul bf16 see check_bf16)")
    ap.add_argument("--errors", action="store_true", help="also check the loader's refusals")
    args = ap.parse_args()
    if args.matmul == "bf16" and args.dtype != "bf16":
        ap.error("--matmul bf16 applies to BF16 checkpoints (--dtype bf16)")
    if args.tol is None:
        args.tol = 1e-4
    # every llama_dump run below (the error cases too) uses these products
    os.environ["BRAINALIGN_MATMUL"] = args.matmul

    torch.set_num_threads(1)
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    ckpt = os.path.join(args.workdir, "ckpt")
    cmd = [args.brainalign, "checkpoint", "--arch", "llama", "--layers", str(N_LAYERS),
           "--d-model", str(D_MODEL), "--heads", str(N_HEADS), "--kv-heads", str(args.kv_heads),
           "--d-ff", str(args.d_ff), "--positions", str(N_POSITIONS),
           "--dtype", args.dtype, "--seed", "20250514", "--shards", str(args.shards),
           "--init-std", repr(args.init_std), "--out", ckpt]
    if args.rope_theta is not None:
        cmd += ["--rope-theta", repr(args.rope_theta)]
    if args.rms_eps is not None:
        cmd += ["--rms-eps", repr(args.rms_eps)]
    if args.tie:
        cmd += ["--tie-word-embeddings", "true"]
    cmd += ["--vocab-from", args.vocab_from] if args.vocab_from else ["--vocab-size", str(args.vocab_size)]
    run(cmd, mpi=True)
    files = sorted(os.listdir(ckpt))
    print("checkpoint:", " ".join(files))
    if args.shards > 1:
        assert f"model-00001-of-{args.shards:05d}.safetensors" in files
        assert "model.safetensors.index.json" in files
    if args.vocab_from:
        assert "tokenizer.model" in files, "tokenizer.model not copied"
    # Rewriting the same directory is refused, leaving it intact.
    again = run(cmd, expect_ok=False, mpi=True)
    assert again.returncode != 0 and "already exists" in again.stderr, again.stderr
    assert sorted(os.listdir(ckpt)) == files

    with open(os.path.join(ckpt, "config.json")) as f:
        cfg = json.load(f)
    assert cfg["num_key_value_heads"] == args.kv_heads
    assert cfg["rope_theta"] == (args.rope_theta or 10000.0)
    assert cfg["rms_norm_eps"] == (args.rms_eps or 1e-5)
    assert cfg["tie_word_embeddings"] == args.tie
    weights = read_checkpoint(ckpt)
    check_layout(weights, cfg, args.dtype.upper(), args.init_std)

    if args.vocab_from:
        ids = story_tokens(args, N_POSITIONS)
    else:
        rng = np.random.default_rng(7)
        ids = rng.integers(0, cfg["vocab_size"], size=N_POSITIONS).astype("<i4")
    ids[5] = cfg["vocab_size"] - 1  # the last vocabulary entry (last chunk of the output layer)
    tokens_path = os.path.join(args.workdir, "tokens.i32")
    ids.tofile(tokens_path)
    out = os.path.join(args.workdir, "c")
    proc = run([args.dump, ckpt, tokens_path, out], expect_ok=False)
    if proc.returncode == 77:
        print(f"SKIPPED: {proc.stderr.strip()}")
        sys.exit(77)
    if proc.returncode != 0:
        sys.exit(f"FAILED: llama_dump (BRAINALIGN_MATMUL={args.matmul})\n{proc.stdout}\n{proc.stderr}")
    print(proc.stdout.strip())
    n, L, d = len(ids), cfg["num_hidden_layers"], cfg["hidden_size"]
    c_hidden = np.fromfile(out + ".hidden.f32", dtype="<f4").reshape(L + 1, n, d)
    c_logprob = np.fromfile(out + ".logprob.f32", dtype="<f4")

    bf16 = args.matmul == "bf16"
    with torch.no_grad():
        t_hidden, t_logprob = llama_forward(weights, cfg, torch.from_numpy(ids.astype(np.int64)),
                                            torch.float64, bf16)
        f_hidden, f_logprob = llama_forward(weights, cfg, torch.from_numpy(ids.astype(np.int64)),
                                            torch.float32, bf16)

    # The reference is the float64 forward: the C code's own rounding is
    # what is measured. The float32 torch forward (another float32
    # implementation, different summation orders) is shown beside it.
    if bf16:
        print("whole forward vs the reference with bf16-rounded linear inputs (shown only; the "
              "check is layer by layer, below):")
    worst = worst32 = 0.0
    for i in range(L + 1):
        diff = float(np.abs(c_hidden[i] - t_hidden[i]).max())
        diff32 = float(np.abs(f_hidden[i] - t_hidden[i]).max())
        scale = float(np.abs(t_hidden[i]).max())
        print(f"hidden state {i}: max |C - torch f64| = {diff:.3g}, |torch f32 - torch f64| = "
              f"{diff32:.3g} (values up to {scale:.3g})")
        worst, worst32 = max(worst, diff), max(worst32, diff32)
    lp_diff = float(np.abs(c_logprob[:-1] - t_logprob).max())
    lp_diff32 = float(np.abs(f_logprob - t_logprob).max())
    print(f"next-token log-probabilities: max |C - torch f64| = {lp_diff:.3g}, |torch f32 - "
          f"torch f64| = {lp_diff32:.3g} (mean {t_logprob.mean():.4f} nats, uniform would be "
          f"{-math.log(cfg['vocab_size']):.4f})")
    print(f"RESULT dtype={args.dtype} matmul={args.matmul} shards={args.shards} vocab={cfg['vocab_size']} "
          f"kv_heads={args.kv_heads} tie={args.tie} init_std={args.init_std} "
          f"max_abs_hidden={worst:.3g} max_abs_logprob={lp_diff:.3g} "
          f"(torch f32: {worst32:.3g}, {lp_diff32:.3g})")
    if bf16:
        ok = check_bf16(args, weights, cfg, ids, c_hidden, c_logprob)
    else:
        ok = worst < args.tol and lp_diff < args.tol
    ok = ok and math.isnan(c_logprob[-1])
    if not ok:
        sys.exit(f"FAILED: differences above {args.tol} (or last log-probability not NaN)")
    if bf16:
        # BF16 data at odd addresses (a foreign file's alignment) is copied
        # a panel at a time before the same products: identical results.
        odd = os.path.join(args.workdir, "ckpt-odd")
        odd_aligned_copy(ckpt, odd)
        run([args.dump, odd, tokens_path, out + "-odd"])
        h = np.fromfile(out + "-odd.hidden.f32", dtype="<f4").reshape(c_hidden.shape)
        lp = np.fromfile(out + "-odd.logprob.f32", dtype="<f4")
        if not (np.array_equal(h, c_hidden) and np.array_equal(lp[:-1], c_logprob[:-1])):
            sys.exit("FAILED: a checkpoint whose tensors start at odd addresses gives other "
                     "results")
        print("tensors at odd addresses: identical results")
        shutil.rmtree(odd, ignore_errors=True)
    if args.errors:
        check_errors(args, ckpt, tokens_path, c_hidden, c_logprob)
    print("OK")


if __name__ == "__main__":
    main()
