#!/usr/bin/python3
"""Speed and memory benchmark of the LLaMA forward pass (LLaMA-2-7B shapes).

usage:
  /usr/bin/python3 tools/bench_llama.py [--workdir /work/tmp-llama7b] [--keep]
      [--layers 32] [--tokens 512,1024] [--repeats 2] [--story pieman]
      [--coretypes env,SKYLAKEX] [--torch-layers 32] [--no-torch]
      [--torch-f32-tokens 512] [--torch-f32-layers 32] [--no-c-bf16]
      [--build /work/main/build-llama]

  quick run (2 layers of 7B width):  ... --layers 2 --tokens 128 --repeats 1

What it does, in one run on one machine:
  1. checks the free space of WORKDIR and writes a random-weight BF16
     checkpoint of LLaMA-2-7B's shapes there with `brainalign checkpoint
     --arch llama` (hidden 4096, 32 layers, 32 heads and key/value heads,
     d_ff 11008, vocabulary 32000, max_position_embeddings 4096, untied
     lm_head; ~13.5 GB) unless it is already there, then reads it once so
     that it sits in the page cache (its pages are shared by every process
     that maps it);
  2. tokenises a real Narratives story (" ".join(align.csv words)) with
     `brainalign tokenize` and the real LLaMA tokenizer.model, BOS first;
  3. runs the C forward (tests/oracle/llama_dump --time: load, then
     REPEATS forwards of the first N tokens for each N, all layers, the
     final hidden state and the next-token log-probabilities) with
     OPENBLAS_NUM_THREADS=2 under each OpenBLAS core type asked for
     ("env" = the environment as it is, e.g. OPENBLAS_CORETYPE=Haswell),
     sampling /proc/PID/status every 50 ms for the peaks of VmRSS,
     RssAnon (the process's own memory) and RssFile (mapped checkpoint
     pages, shared page cache); then once more with bf16 products
     (BRAINALIGN_MATMUL=bf16: activations rounded to bfloat16 at each
     product, float32 sums, AVX512-BF16; the row "C bf16 products"),
     unless --no-c-bf16 or the CPU lacks AVX512-BF16;
  4. runs the same forward in python3-torch, 2 threads, with the same
     memory sampling, weights used in place from a read-only numpy memmap
     of the same files (zero-copy, shared page cache):
     - bf16, as Hugging Face runs a bf16 checkpoint (RMSNorm and softmax in
       float32, activations and products bf16: oneDNN's AVX512-BF16
       kernels on this CPU). A float32 torch model would need 27 GB for its
       weights alone, more than this machine's memory, hence bf16;
     - f32 (--torch-f32-tokens, default the 512 window, one repeat): float32
       activations, each bf16 matrix widened to float32 right before its
       product (.float(), as the C code does), so that both compute in
       float32; its outputs must agree with the C ones to float32 rounding.
     With --torch-layers / --torch-f32-layers K < layers only K layers are
     timed and the total is scaled (labelled);
  5. compares the C outputs (final hidden state, next-token log-probs)
     with torch's (C float32 and C bf16 products against torch bf16 and
     torch f32, C bf16 against C float32), prints a table of figures, and
     deletes the checkpoint unless --keep.

The machine may be shared: the load average before and after each run is
printed so noisy figures can be spotted. This is a tool, not a test.
"""
import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench_common  # noqa: E402
DATA = os.path.join(ROOT, "..", "shared", "data")

SHAPE = dict(layers=32, d_model=4096, heads=32, kv_heads=32, d_ff=11008, vocab=32000,
             positions=4096)


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def meminfo_kb(field):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


class MemorySampler:
    """Peaks of a process's VmRSS, RssAnon and RssFile, sampled every 50 ms
    (VmHWM is the kernel's own peak of VmRSS)."""

    FIELDS = ("VmHWM", "VmRSS", "RssAnon", "RssFile")

    def __init__(self, pid):
        self.pid = pid
        self.peak = {k: 0 for k in self.FIELDS}
        self.done = False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def sample(self):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    key = line.split(":")[0]
                    if key in self.peak:
                        self.peak[key] = max(self.peak[key], int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            pass

    def loop(self):
        while not self.done:
            self.sample()
            time.sleep(0.05)

    def stop(self):
        self.done = True
        self.thread.join()
        return {k: v / 1024 / 1024 for k, v in self.peak.items()}  # GiB


def run_sampled(cmd, env, skip_code=None):
    """Run cmd, return (stdout, memory peaks in GiB, wall seconds); None
    when it exits with skip_code."""
    start = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    sampler = MemorySampler(proc.pid)
    out, err = proc.communicate()
    peaks = sampler.stop()
    if skip_code is not None and proc.returncode == skip_code:
        print(f"   skipped: {err.strip()}")
        return None
    if proc.returncode != 0:
        sys.exit(f"FAILED ({proc.returncode}): {' '.join(cmd)}\n{out}\n{err}")
    return out, peaks, time.time() - start


def forward_flops(layers, n):
    """Multiply-adds x 2 of one window: the weight products and causal attention."""
    d, f, v = SHAPE["d_model"], SHAPE["d_ff"], SHAPE["vocab"]
    kv = d * SHAPE["kv_heads"] // SHAPE["heads"]
    per_layer = 2 * n * (2 * d * d + 2 * d * kv + 3 * d * f) + 2 * n * n * d
    return layers * per_layer + 2 * n * d * v


def ensure_checkpoint(args, ckpt):
    if os.path.exists(os.path.join(ckpt, "config.json")):
        print(f"checkpoint: reusing {ckpt}")
        return
    usage = shutil.disk_usage(args.workdir)
    need = 2 * (SHAPE["vocab"] * SHAPE["d_model"] * 2 + args.layers * (
        4 * SHAPE["d_model"] ** 2 + 3 * SHAPE["d_model"] * SHAPE["d_ff"]))
    print(f"disk: {usage.free / 2**30:.1f} GiB free in {args.workdir}, the checkpoint needs "
          f"{need / 2**30:.1f} GiB")
    if usage.free < need * 1.1:
        sys.exit("not enough space: choose another --workdir")
    cmd = [args.brainalign, "checkpoint", "--arch", "llama", "--layers", str(args.layers),
           "--d-model", str(SHAPE["d_model"]), "--heads", str(SHAPE["heads"]),
           "--kv-heads", str(SHAPE["kv_heads"]), "--d-ff", str(SHAPE["d_ff"]),
           "--positions", str(SHAPE["positions"]), "--dtype", "bf16",
           "--vocab-from", os.path.join(DATA, "llama-tokenizer"), "--out", ckpt]
    print("$", " ".join(cmd))
    start = time.time()
    subprocess.run(cmd, check=True)
    print(f"checkpoint written in {time.time() - start:.0f} s")


def warm_page_cache(ckpt):
    start, total = time.time(), 0
    for name in sorted(os.listdir(ckpt)):
        if name.endswith(".safetensors"):
            with open(os.path.join(ckpt, name), "rb") as f:
                while True:
                    chunk = f.read(64 << 20)
                    if not chunk:
                        break
                    total += len(chunk)
    print(f"page cache: read {total / 1e9:.2f} GB in {time.time() - start:.1f} s; "
          f"Cached {meminfo_kb('Cached') / 2**20:.1f} GiB, MemAvailable "
          f"{meminfo_kb('MemAvailable') / 2**20:.1f} GiB")


def story_tokens(args, count):
    words = []
    with open(os.path.join(DATA, "narratives", "stimuli", args.story, "align.csv")) as f:
        for row in csv.reader(f):
            words.append(row[0])
    proc = subprocess.run([args.brainalign, "tokenize", "--tokenizer",
                           os.path.join(DATA, "llama-tokenizer")], input=" ".join(words),
                          capture_output=True, text=True, check=True)
    ids = [1] + [int(t) for t in proc.stdout.split()]  # BOS, as Hugging Face adds it
    if len(ids) < count:
        sys.exit(f"story {args.story} has only {len(ids)} tokens, {count} needed")
    return ids[:count]


# ---- C ------------------------------------------------------------------------------

def run_c(args, ckpt, tokens_path, coretype, outprefix, matmul="f32"):
    """The C forward; matmul "bf16": bf16 products (None when the CPU
    cannot: llama_dump exits 77)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="2", BRAINALIGN_MATMUL=matmul)
    label = f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')} (env)"
    if coretype != "env":
        env["OPENBLAS_CORETYPE"] = coretype
        label = f"OPENBLAS_CORETYPE={coretype}"
    cmd = [args.dump, "--time", ckpt, tokens_path, args.tokens, str(args.repeats), outprefix]
    shown = f"OPENBLAS_NUM_THREADS=2 {'' if coretype == 'env' else 'OPENBLAS_CORETYPE=' + coretype + ' '}"
    shown += f"BRAINALIGN_MATMUL={matmul} "
    print(f"\n$ {shown}{' '.join(cmd)}   [load {load_average()}]")
    got = run_sampled(cmd, env, skip_code=77)
    if got is None:
        return None
    out, peaks, wall = got
    runs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    for r in runs:
        print("  ", json.dumps(r))
    print(f"   peaks: VmHWM {peaks['VmHWM']:.2f} GiB, RssAnon {peaks['RssAnon']:.2f} GiB, "
          f"RssFile {peaks['RssFile']:.2f} GiB   [load {load_average()}]")
    return label, runs, peaks


# ---- torch (bf16, Hugging Face semantics) ---------------------------------------------

TORCH_WORKER = r'''
import json, math, os, sys, time
import numpy as np
import torch

ckpt, tokens_path, sizes, repeats, layers_timed, outprefix, mode = sys.argv[1:8]
sizes = [int(s) for s in sizes.split(",")]
repeats, layers_timed = int(repeats), int(layers_timed)
torch.set_num_threads(2)
bf16 = torch.bfloat16
# "bf16": Hugging Face's bf16 model (activations bf16, oneDNN bf16 products);
# "f32": float32 activations, each bf16 matrix widened to float32 right
# before its product (what the C code does), so both compute in float32.
act = bf16 if mode == "bf16" else torch.float32

def open_weights(ckpt):
    """name -> bf16 tensor viewing a read-only memmap (no copy)."""
    files = [f for f in sorted(os.listdir(ckpt)) if f.endswith(".safetensors")]
    weights = {}
    for name in files:
        path = os.path.join(ckpt, name)
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
        raw = np.memmap(path, dtype=np.uint8, mode="r")
        base = 8 + n
        for key, info in header.items():
            if key == "__metadata__":
                continue
            assert info["dtype"] == "BF16", key
            b, e = info["data_offsets"]
            u16 = raw[base + b: base + e].view(np.uint16).reshape(info["shape"])
            weights[key] = torch.from_numpy(u16.view(np.int16)).view(bf16)
    return weights

import warnings
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
t0 = time.time()
with open(os.path.join(ckpt, "config.json")) as f:
    cfg = json.load(f)
W = open_weights(ckpt)
print(json.dumps({"event": "load", "seconds": round(time.time() - t0, 3)}), flush=True)
L, d, H = cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"]
Hkv, eps, theta = cfg["num_key_value_heads"], cfg["rms_norm_eps"], cfg["rope_theta"]
dh = d // H
F = torch.nn.functional

def rms(x, w):
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return w.to(act) * xf.to(act)

def linear(x, w):
    return F.linear(x, w if act == bf16 else w.float())

def rotate_half(x):
    return torch.cat((-x[..., dh // 2:], x[..., :dh // 2]), dim=-1)

def layer(x, i, cos, sin, causal):
    n = x.shape[0]
    p = f"model.layers.{i}."
    a = rms(x, W[p + "input_layernorm.weight"])
    q = linear(a, W[p + "self_attn.q_proj.weight"]).view(n, H, dh).transpose(0, 1)
    k = linear(a, W[p + "self_attn.k_proj.weight"]).view(n, Hkv, dh).transpose(0, 1)
    v = linear(a, W[p + "self_attn.v_proj.weight"]).view(n, Hkv, dh).transpose(0, 1)
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    if Hkv != H:
        k = k[:, None].expand(Hkv, H // Hkv, n, dh).reshape(H, n, dh)
        v = v[:, None].expand(Hkv, H // Hkv, n, dh).reshape(H, n, dh)
    s = (q @ k.transpose(-1, -2)) / math.sqrt(dh)
    s = s.masked_fill(~causal, torch.finfo(s.dtype).min)
    att = torch.softmax(s, dim=-1, dtype=torch.float32).to(act) @ v
    x = x + linear(att.transpose(0, 1).reshape(n, d), W[p + "self_attn.o_proj.weight"])
    m = rms(x, W[p + "post_attention_layernorm.weight"])
    h = F.silu(linear(m, W[p + "mlp.gate_proj.weight"])) * linear(m, W[p + "mlp.up_proj.weight"])
    return x + linear(h, W[p + "mlp.down_proj.weight"])

def forward(ids):
    n = ids.shape[0]
    times = {}
    t = time.time()
    x = W["model.embed_tokens.weight"][ids].to(act)
    inv = 1.0 / (theta ** (torch.arange(0, dh, 2, dtype=torch.int64).float() / dh))
    fr = torch.outer(torch.arange(n, dtype=torch.int64).float(), inv)
    emb = torch.cat((fr, fr), dim=-1)
    cos, sin = emb.cos().to(act), emb.sin().to(act)
    causal = torch.tril(torch.ones(n, n, dtype=torch.bool))
    times["embed"] = time.time() - t
    t = time.time()
    for i in range(layers_timed):
        x = layer(x, i, cos, sin, causal)
    times["layers"] = time.time() - t
    t = time.time()
    h = rms(x, W["model.norm.weight"])
    logits = torch.cat([linear(h, W["lm_head.weight"][v0:v0 + 8192])
                        for v0 in range(0, W["lm_head.weight"].shape[0], 8192)], dim=1).float()
    lp = torch.log_softmax(logits.double(), dim=-1)
    next_lp = lp[torch.arange(n - 1), ids[1:]]
    times["head"] = time.time() - t
    return h.float(), next_lp.float(), times

ids_all = torch.from_numpy(np.fromfile(tokens_path, dtype="<i4").astype(np.int64))
for n in sizes:
    ids = ids_all[:n]
    for r in range(repeats):
        cpu = time.process_time()
        with torch.no_grad():
            h, lp, times = forward(ids)
        cpu = time.process_time() - cpu
        total = times["embed"] + times["layers"] * L / layers_timed + times["head"]
        print(json.dumps({"event": "forward", "tokens": n, "repeat": r,
                          "layers_timed": layers_timed, "of": L,
                          "seconds_measured": round(sum(times.values()), 3),
                          "cpu_seconds_measured": round(cpu, 3),
                          "seconds": round(total, 3), "tokens_per_s": round(n / total, 2),
                          "parts": {k: round(v, 3) for k, v in times.items()}}), flush=True)
    if layers_timed == L:
        h.numpy().astype("<f4").tofile(f"{outprefix}.{n}.last.f32")
        np.append(lp.numpy(), np.float32("nan")).astype("<f4").tofile(f"{outprefix}.{n}.logprob.f32")
'''


def run_torch(args, ckpt, tokens_path, outprefix, mode, sizes, repeats, layers):
    script = os.path.join(args.workdir, "torch_llama_worker.py")
    with open(script, "w") as f:
        f.write(TORCH_WORKER)
    env = dict(os.environ, OMP_NUM_THREADS="2")
    cmd = [sys.executable, script, ckpt, tokens_path, sizes, str(repeats), str(layers),
           outprefix, mode]
    print(f"\n$ OMP_NUM_THREADS=2 {' '.join(cmd)}   [load {load_average()}]")
    out, peaks, wall = run_sampled(cmd, env)
    runs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    for r in runs:
        print("  ", json.dumps(r))
    print(f"   peaks: VmHWM {peaks['VmHWM']:.2f} GiB, RssAnon {peaks['RssAnon']:.2f} GiB, "
          f"RssFile {peaks['RssFile']:.2f} GiB   [load {load_average()}]")
    return runs, peaks


def compare_outputs(c_prefix, t_prefix, n, d, mode, c_label="C (float32)", t_label=None):
    import numpy as np
    c_last = np.fromfile(f"{c_prefix}.{n}.last.f32", dtype="<f4").reshape(n, d)
    t_last = np.fromfile(f"{t_prefix}.{n}.last.f32", dtype="<f4").reshape(n, d)
    c_lp = np.fromfile(f"{c_prefix}.{n}.logprob.f32", dtype="<f4")[:-1]
    t_lp = np.fromfile(f"{t_prefix}.{n}.logprob.f32", dtype="<f4")[:-1]
    rel = np.abs(c_last - t_last).max() / np.abs(c_last).max()
    corr = np.corrcoef(c_last.ravel(), t_last.ravel())[0, 1]
    print(f"{c_label} vs {t_label or f'torch ({mode})'}, {n} tokens: last hidden state max |diff| "
          f"/ max |value| = {rel:.3g}, correlation {corr:.5f}; log-probabilities max |diff| "
          f"{np.abs(c_lp - t_lp).max():.3g} nats (mean {c_lp.mean():.3f} vs {t_lp.mean():.3f})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/work/tmp-llama7b")
    ap.add_argument("--build", default=os.path.join(ROOT, "build-llama"))
    ap.add_argument("--layers", type=int, default=SHAPE["layers"])
    ap.add_argument("--tokens", default="512,1024")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--story", default="pieman")
    ap.add_argument("--coretypes", default="env,SKYLAKEX")
    ap.add_argument("--torch-layers", type=int, default=0,
                    help="time only this many torch layers and scale (0: all)")
    ap.add_argument("--no-torch", action="store_true", help="skip the torch bf16 runs")
    ap.add_argument("--torch-f32-tokens", default="512",
                    help="window sizes of the torch float32 run ('' to skip)")
    ap.add_argument("--torch-f32-layers", type=int, default=0,
                    help="time only this many torch float32 layers and scale (0: all)")
    ap.add_argument("--no-c-bf16", action="store_true",
                    help="skip the C run with bf16 products (BRAINALIGN_MATMUL=bf16)")
    ap.add_argument("--keep", action="store_true", help="keep the checkpoint")
    args = ap.parse_args()
    args.brainalign = os.path.join(args.build, "brainalign")
    print("#", bench_common.describe_binary(args.brainalign), flush=True)
    args.dump = os.path.join(args.build, "tests", "llama_dump")
    os.makedirs(args.workdir, exist_ok=True)
    ckpt = os.path.join(args.workdir, f"llama7b-shaped-{args.layers}layers-bf16")

    print(f"machine: {os.cpu_count()} CPUs, MemTotal {meminfo_kb('MemTotal') / 2**20:.1f} GiB, "
          f"load {load_average()}")
    ensure_checkpoint(args, ckpt)
    warm_page_cache(ckpt)
    sizes = [int(s) for s in args.tokens.split(",")]
    ids = story_tokens(args, max(sizes))
    tokens_path = os.path.join(args.workdir, f"{args.story}.llama.i32")
    with open(tokens_path, "wb") as f:
        for t in ids:
            f.write(int(t).to_bytes(4, "little", signed=True))
    print(f"tokens: {len(ids)} of story '{args.story}' (BOS + `brainalign tokenize`)")

    rows = []  # (label, tokens, best tokens/s, median tokens/s, peaks)
    c_prefix = None
    for coretype in [c for c in args.coretypes.split(",") if c]:
        prefix = os.path.join(args.workdir, f"c-{coretype}")
        label, runs, peaks = run_c(args, ckpt, tokens_path, coretype, prefix)
        c_prefix = c_prefix or prefix
        for n in sizes:
            rates = sorted(r["tokens_per_s"] for r in runs
                           if r.get("event") == "forward" and r["tokens"] == n)
            cpu = min(r["cpu_seconds"] for r in runs
                      if r.get("event") == "forward" and r["tokens"] == n)
            rows.append((f"C float32, {label}", n, rates, n / cpu, peaks))
    if c_prefix is None:  # no C run this time: compare with an earlier one if there is one
        c_prefix = os.path.join(args.workdir, "c-env")
    # bf16 products (the AVX512-BF16 kernel; OpenBLAS only for attention)
    bf16_prefix, bf16_done = os.path.join(args.workdir, "c-bf16"), False
    if not args.no_c_bf16:
        got = run_c(args, ckpt, tokens_path, "env", bf16_prefix, matmul="bf16")
        bf16_done = got is not None
        if got is not None:
            _, runs, peaks = got
            for n in sizes:
                rates = sorted(r["tokens_per_s"] for r in runs
                               if r.get("event") == "forward" and r["tokens"] == n)
                cpu = min(r["cpu_seconds"] for r in runs
                          if r.get("event") == "forward" and r["tokens"] == n)
                rows.append(("C bf16 products (AVX512-BF16)", n, rates, n / cpu, peaks))
                if os.path.exists(f"{c_prefix}.{n}.last.f32"):
                    compare_outputs(bf16_prefix, c_prefix, n, SHAPE["d_model"], "",
                                    c_label="C (bf16 products)", t_label="C (float32)")
    torch_runs = []  # (mode, sizes, repeats, layers timed)
    if not args.no_torch:
        torch_runs.append(("bf16", args.tokens, args.repeats, args.torch_layers or args.layers))
    if args.torch_f32_tokens:
        torch_runs.append(("f32", args.torch_f32_tokens, 1, args.torch_f32_layers or args.layers))
    for mode, tsizes, repeats, layers in torch_runs:
        t_prefix = os.path.join(args.workdir, f"torch-{mode}")
        runs, peaks = run_torch(args, ckpt, tokens_path, t_prefix, mode, tsizes, repeats, layers)
        scaled = layers < args.layers
        label = {"bf16": "torch bf16 (HF bf16 model), 2 threads",
                 "f32": "torch f32, bf16 weights widened on use, 2 threads"}[mode]
        label += f" ({layers} of {args.layers} layers timed, scaled)" if scaled else ""
        for n in (int(x) for x in tsizes.split(",")):
            mine = [r for r in runs if r.get("event") == "forward" and r["tokens"] == n]
            rates = sorted(r["tokens_per_s"] for r in mine)
            # CPU time of the timed layers, scaled like the wall time
            cpu = min(r["cpu_seconds_measured"] * r["seconds"] / r["seconds_measured"]
                      for r in mine)
            rows.append((label, n, rates, n / cpu, peaks))
            if not scaled and os.path.exists(f"{c_prefix}.{n}.last.f32"):
                compare_outputs(c_prefix, t_prefix, n, SHAPE["d_model"], mode)
            if not scaled and bf16_done:
                compare_outputs(bf16_prefix, t_prefix, n, SHAPE["d_model"], mode,
                                c_label="C (bf16 products)")

    print(f"\nLLaMA-2-7B shapes ({args.layers} layers), BF16 weights, story '{args.story}', "
          f"2 cores; load average now {load_average()}")
    print(f"{'implementation':72s} {'tokens':>6s} {'tok/s best':>10s} {'tok/s all':>14s} "
          f"{'GFLOP/s':>7s} {'tok/CPU-s':>9s} {'VmHWM GiB':>9s} {'anon GiB':>8s} {'file GiB':>8s}")
    for label, n, rates, per_cpu, peaks in rows:
        gflops = forward_flops(args.layers, n) / (n / max(rates)) / 1e9
        print(f"{label:72s} {n:6d} {max(rates):10.2f} {' '.join(f'{r:.2f}' for r in rates):>14s} "
              f"{gflops:7.0f} {per_cpu:9.2f} {peaks['VmHWM']:9.2f} {peaks['RssAnon']:8.2f} "
              f"{peaks['RssFile']:8.2f}")
    print("(GFLOP/s: the forward's matrix products and attention per wall second at the best rate;\n"
          " tok/CPU-s: tokens per CPU second the process used (all threads, spinning included),\n"
          " which a busy shared machine disturbs less than wall time;\n"
          " anon: the process's own memory; file: mapped checkpoint pages, shared page cache)")
    if not args.keep:
        shutil.rmtree(ckpt)
        print(f"deleted {ckpt}")

if __name__ == "__main__":
    main()
