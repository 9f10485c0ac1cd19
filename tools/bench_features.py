#!/usr/bin/python3
"""Throughput and memory of `brainalign features` against the same forward
pass in torch, on the same machine in the same run.

Model: GPT-2-small-shaped (12 layers, width 768, 12 heads, 1024 positions,
real GPT-2 vocabulary of 50257 tokens), random float32 weights written by
`brainalign checkpoint` (kept in --workdir and reused). Stories: real
Narratives stories (default: pieman, ~1000 words, and 21styear, the
longest). Windows: the brainalign rule (context 1024, stride 512, each
token from the earliest window containing it); torch runs exactly the same
windows: embeddings, 12 blocks, final norm, logits over the vocabulary,
log-softmax, every hidden state of the window's tokens kept (what Hugging
Face's output_hidden_states returns) and the word rows gathered.

Figures: story tokens per second (tokens of the stories / wall time) and
window tokens per second (tokens actually run through the model, overlaps
counted twice). brainalign's wall time is the whole command (start-up,
model map, tokenisation, forward, HDF5 output); torch's is the forward
passes only, after one warm-up window (its model load is not counted).
Because the machine may be shared, each figure also comes as story tokens
per CPU second of the forward passes (all ranks and threads: brainalign's
--timing, torch's process time), which time-sharing inflates far less;
each configuration can be run several times (--repeat), the fastest kept.
Both sides do the same arithmetic per window: every position's hidden
states and logits over the whole vocabulary (brainalign streams the
log-softmax in chunks and skips the masked half of attention; torch
computes it the Hugging Face way).
Peak memory: each rank's maximum resident set (VmHWM through getrusage of
the rank's process), against the checkpoint size + 1 GiB; the checkpoint
is memory-mapped, so its resident pages count in every rank's figure (but
are one copy in the page cache).

brainalign runs with the environment as it is (this machine sets
OPENBLAS_CORETYPE=Haswell) and with OPENBLAS_CORETYPE=SKYLAKEX (OpenBLAS's
AVX-512 kernels); torch (whose matrix products go through the same
OpenBLAS) runs with 2 threads and 1 thread, with the environment as it is
and (--torch-skylakex) with SKYLAKEX. brainalign runs as 1 rank x 2
OpenBLAS threads, 2 ranks x 1 thread and 1 rank x 1 thread; the speed-ups
compare equal core counts.

usage: tools/bench_features.py [--brainalign build/brainalign]
         [--stories pieman,21styear] [--workdir /tmp/bench-features]
         [--data ../shared/data] [--repeat N] [--skip-torch] [--torch-skylakex]
"""
import argparse
import json
import math
import os
import re
import shlex
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench_common  # noqa: E402
CONTEXT, STRIDE = 1024, 512
GIB = 1 << 30


def sh(cmd, env=None, capture=True):
    proc = subprocess.run(cmd, env=env, capture_output=capture, text=True)
    if proc.returncode != 0:
        sys.exit(f"FAILED: {shlex.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return proc


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ---- brainalign -------------------------------------------------------------------------

# Runs a command and prints its peak resident set (the child's ru_maxrss)
# and the CPU time it used.
RSS_WRAPPER = ("import resource, subprocess, sys\n"
               "rc = subprocess.call(sys.argv[1:])\n"
               "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
               "print(f'PEAK_RSS_KB {u.ru_maxrss} CPU_S {u.ru_utime + u.ru_stime}', "
               "file=sys.stderr, flush=True)\n"
               "sys.exit(rc)\n")


def run_brainalign(args, ckpt, story, ranks, threads, coretype, out):
    env = dict(os.environ)
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    mpi = ["mpiexec", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none",
           "-n", str(ranks)]
    ours = [args.brainalign, "features", "--model", ckpt, "--stimuli",
            os.path.join(args.data, "narratives/stimuli"), "--stories", story, "--context",
            str(CONTEXT), "--stride", str(STRIDE), "--out", out, "--quiet", "--timing"]
    cmd = mpi + [sys.executable, "-c", RSS_WRAPPER] + ours
    if os.path.exists(out):
        os.remove(out)
    t0 = time.perf_counter()
    proc = sh(cmd, env=env)
    wall = time.perf_counter() - t0
    peaks = [int(x) * 1024 for x in re.findall(r"PEAK_RSS_KB (\d+)", proc.stderr)]
    cpu = sum(float(x) for x in re.findall(r"CPU_S ([\d.]+)", proc.stderr))
    fwd_cpu = sum(float(x) for x in re.findall(r"forward [\d.]+ s, ([\d.]+) CPU s", proc.stdout))
    m = re.search(r"(\d+) tokens; (\d+) windows .*?, (\d+) window tokens", proc.stdout)
    kernels = sorted(set(re.findall(r"OpenBLAS (\w+)", proc.stdout)))
    shown = " ".join(f"{k}={v}" for k, v in (("OPENBLAS_CORETYPE", env.get("OPENBLAS_CORETYPE")),
                                             ("OPENBLAS_NUM_THREADS", env["OPENBLAS_NUM_THREADS"])))
    return {"wall": wall, "cpu": cpu, "fwd_cpu": fwd_cpu, "tokens": int(m.group(1)), "windows": int(m.group(2)),
            "window_tokens": int(m.group(3)), "peaks": peaks, "kernels": ",".join(kernels),
            "command": shown + " " + shlex.join(mpi + ours), "stdout": proc.stdout}


# ---- torch ----------------------------------------------------------------------------------

def read_safetensors(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", f"{name}: {info['dtype']}"
        b, e = info["data_offsets"]
        out[name] = np.array(data[b:e]).view("<f4").reshape(info["shape"])
    return out


def story_tokens(args, ckpt, story):
    """Token ids (brainalign's tokenizer: it is not what is timed) and each
    word's last token (from the GPT-2 token byte lengths, as the features
    oracle derives them)."""
    import csv
    sys.path.insert(0, os.path.join(ROOT, "tests", "oracle"))
    from features_oracle import token_byte_lengths, word_spans
    with open(os.path.join(args.data, "narratives/stimuli", story, "align.csv"),
              encoding="utf-8", newline="") as f:
        words = [r[0] for r in csv.reader(f) if r]
    proc = subprocess.run([args.brainalign, "tokenize", "--tokenizer", ckpt],
                          input=" ".join(words), capture_output=True, text=True, check=True)
    ids = [int(x) for x in proc.stdout.split()]
    lengths = token_byte_lengths(os.path.join(ckpt, "encoder.json"))
    last = np.array([span[1] for span in word_spans(words, ids, lengths)], dtype=np.int64)
    return ids, last


class TorchGPT2:
    def __init__(self, torch, w, cfg):
        self.t = torch
        T = lambda name: torch.from_numpy(w[name])
        self.L, self.H, self.d = cfg["n_layer"], cfg["n_head"], cfg["n_embd"]
        self.eps = cfg["layer_norm_epsilon"]
        self.wte, self.wpe = T("wte.weight"), T("wpe.weight")
        self.blocks = []
        for i in range(self.L):
            p = f"h.{i}."
            self.blocks.append({k: T(p + k) for k in (
                "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
                "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias")})
        self.lnf_w, self.lnf_b = T("ln_f.weight"), T("ln_f.bias")

    def forward(self, ids):
        """All hidden states [L+1, n, d] and log p(ids[t+1] | ..t)."""
        torch, F = self.t, self.t.nn.functional
        n, d, H = ids.shape[0], self.d, self.H
        dh = d // H
        x = self.wte[ids] + self.wpe[:n]
        states = [x]
        mask = torch.full((n, n), float("-inf")).triu(1)
        for b in self.blocks:
            a = F.layer_norm(x, (d,), b["ln_1.weight"], b["ln_1.bias"], self.eps)
            qkv = torch.addmm(b["attn.c_attn.bias"], a, b["attn.c_attn.weight"])
            q, k, v = qkv.view(n, 3, H, dh).permute(1, 2, 0, 3)
            s = torch.baddbmm(mask, q, k.transpose(1, 2), alpha=1.0 / math.sqrt(dh))
            att = torch.bmm(torch.softmax(s, dim=-1), v).transpose(0, 1).reshape(n, d)
            x = x + torch.addmm(b["attn.c_proj.bias"], att, b["attn.c_proj.weight"])
            m = F.layer_norm(x, (d,), b["ln_2.weight"], b["ln_2.bias"], self.eps)
            h = F.gelu(torch.addmm(b["mlp.c_fc.bias"], m, b["mlp.c_fc.weight"]),
                       approximate="tanh")
            x = x + torch.addmm(b["mlp.c_proj.bias"], h, b["mlp.c_proj.weight"])
            states.append(x)
        states[-1] = F.layer_norm(x, (d,), self.lnf_w, self.lnf_b, self.eps)
        logp = torch.log_softmax(states[-1] @ self.wte.T, dim=-1)
        next_lp = logp[torch.arange(n - 1), ids[1:]]
        return torch.stack(states), next_lp


def windows_of(n):
    k, out = 0, []
    while True:
        b, e = k * STRIDE, min(k * STRIDE + CONTEXT, n)
        own = 0 if k == 0 else (k - 1) * STRIDE + CONTEXT
        out.append((b, e, own))
        if e >= n:
            return out
        k += 1


def run_torch(args, ckpt, story, threads):
    """In a fresh process (thread count and BLAS kernels fixed at start)."""
    code = (f"import sys; sys.path.insert(0, {HERE!r}); import bench_features as b; "
            f"b.torch_worker({args.data!r}, {args.brainalign!r}, {ckpt!r}, {story!r}, {threads})")
    env = dict(os.environ)
    if args.torch_coretype:
        env["OPENBLAS_CORETYPE"] = args.torch_coretype
    env["OMP_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] = str(threads)
    proc = sh([sys.executable, "-c", code], env=env)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def torch_worker(data, brainalign, ckpt, story, threads):
    import resource
    import torch
    torch.set_num_threads(threads)
    args = argparse.Namespace(data=data, brainalign=brainalign)
    with open(os.path.join(ckpt, "config.json")) as f:
        cfg = json.load(f)
    model = TorchGPT2(torch, read_safetensors(os.path.join(ckpt, "model.safetensors")), cfg)
    ids, last = story_tokens(args, ckpt, story)
    ids_t = torch.tensor(ids, dtype=torch.int64)
    wins = windows_of(len(ids))
    with torch.inference_mode():
        model.forward(ids_t[:CONTEXT])  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        window_tokens = 0
        for b, e, own in wins:
            hidden, lp = model.forward(ids_t[b:e])
            window_tokens += e - b
            rows = last[(last >= own) & (last < e)] - b
            hidden[:, torch.from_numpy(rows)].numpy().copy()
            lp.numpy().copy()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"wall": wall, "cpu": cpu, "fwd_cpu": cpu, "tokens": len(ids), "windows": len(wins),
                      "window_tokens": window_tokens, "peak": peak,
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))


def best_of(repeat, run_once):
    runs = [run_once() for _ in range(max(1, repeat))]
    best = min(runs, key=lambda r: r["wall"])
    best["all_walls"] = [r["wall"] for r in runs]
    return best


# ---- main -------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brainalign", default=None,
                    help="the executable (default: the release build, build/brainalign)")
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--stories", default="pieman,21styear")
    ap.add_argument("--workdir", default="/tmp/bench-features")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs of each configuration; the fastest is reported (the machine "
                         "is shared: the best run is the least disturbed one)")
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--torch-skylakex", action="store_true",
                    help="also run torch with OPENBLAS_CORETYPE=SKYLAKEX")
    args = ap.parse_args()
    args.brainalign = bench_common.release_brainalign(ROOT, args.brainalign)
    print("#", bench_common.describe_binary(args.brainalign), flush=True)
    os.makedirs(args.workdir, exist_ok=True)
    ckpt = os.path.join(args.workdir, "gpt2-small-random")
    if not os.path.exists(ckpt):
        sh([args.brainalign, "checkpoint", "--layers", "12", "--d-model", "768", "--heads", "12",
            "--positions", "1024", "--seed", "1", "--out", ckpt,
            "--vocab-from", os.path.join(args.data, "gpt2-tokenizer")])
    ckpt_bytes = sum(os.path.getsize(os.path.join(ckpt, f)) for f in os.listdir(ckpt)
                     if f.endswith(".safetensors"))
    budget = ckpt_bytes + GIB
    print(f"# bench_features: {' '.join(shlex.quote(a) for a in sys.argv)}")
    print(f"# model: GPT-2-small shape, random f32 weights, {ckpt_bytes / 1e6:.0f} MB "
          f"({ckpt}); context {CONTEXT}, stride {STRIDE}; memory budget per rank "
          f"{budget / GIB:.2f} GiB (checkpoint + 1 GiB)")
    print(f"# machine: {os.cpu_count()} CPUs; environment OPENBLAS_CORETYPE="
          f"{os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    print(f"# each configuration run {args.repeat} time(s), the fastest shown; 'load' is the "
          "1/5/15-min load average when it finished. wall s: brainalign, the whole command "
          "(start-up, tokenisation, forward passes, HDF5); torch, the forward loop only. "
          "fwd CPU s: user+system CPU time of the forward passes, all ranks and threads "
          "(time-sharing with other jobs inflates it far less than the wall time)")
    print(f"{'story':<10} {'run':<40} {'tokens':>6} {'windows':>7} {'wall s':>7} "
          f"{'fwd CPU s':>9} {'story tok/s':>11} {'window tok/s':>12} "
          f"{'story tok/fwd-CPU-s':>19} {'peak RSS/rank MB':>17} {'load':>15}")

    def row(story, label, r, peaks):
        print(f"{story:<10} {label:<40} {r['tokens']:>6} {r['windows']:>7} {r['wall']:>7.2f} "
              f"{r['fwd_cpu']:>9.2f} {r['tokens'] / r['wall']:>11.1f} "
              f"{r['window_tokens'] / r['wall']:>12.1f} {r['tokens'] / r['fwd_cpu']:>19.1f} "
              f"{'/'.join(f'{p / 1e6:.0f}' for p in peaks):>17} {load_average():>15}"
              + (f"  (all runs: {', '.join(f'{w:.1f}' for w in r['all_walls'])} s)"
                 if len(r["all_walls"]) > 1 else ""), flush=True)

    layouts = [(1, 2), (2, 1), (1, 1)]  # (ranks, OpenBLAS threads per rank)
    commands, results = [], {}
    for story in args.stories.split(","):
        for coretype in (None, "SKYLAKEX"):
            for ranks, threads in layouts:
                out = os.path.join(args.workdir, f"{story}-{ranks}x{threads}.h5")
                r = best_of(args.repeat, lambda: run_brainalign(args, ckpt, story, ranks,
                                                                 threads, coretype, out))
                label = (f"brainalign {ranks} rank x {threads} thr, "
                         f"{r['kernels']}{'' if coretype else ' (env)'}")
                row(story, label, r, r["peaks"])
                results[(story, "ours", coretype, ranks * threads, ranks)] = r
                commands.append(r["command"])
                over = [p for p in r["peaks"] if p > budget]
                if over:
                    print(f"#   WARNING: peak {max(over) / GIB:.2f} GiB above the budget")
        if args.skip_torch:
            continue
        for coretype in [None] + (["SKYLAKEX"] if args.torch_skylakex else []):
            args.torch_coretype = coretype
            for threads in (2, 1):
                r = best_of(args.repeat, lambda: run_torch(args, ckpt, story, threads))
                label = (f"torch {r['torch']} {threads} thread(s), "
                         f"{'SkylakeX' if coretype else 'Haswell (env)'}")
                row(story, label, r, [r["peak"]])
                results[(story, "torch", coretype, threads)] = r
    if not args.skip_torch:
        print("\n# speed-up of brainalign over torch on the same number of cores, "
              "story tokens per wall second (per forward CPU second):")
        for story in args.stories.split(","):
            for (_, who, core, cores, ranks), ours in sorted(
                    ((k, v) for k, v in results.items() if k[0] == story and k[1] == "ours"),
                    key=lambda kv: (kv[0][2] or "", -kv[0][3], kv[0][4])):
                for tcore in (None, "SKYLAKEX"):
                    t = results.get((story, "torch", tcore, cores))
                    if not t:
                        continue
                    wall_x = (ours["tokens"] / ours["wall"]) / (t["tokens"] / t["wall"])
                    cpu_x = (ours["tokens"] / ours["fwd_cpu"]) / (t["tokens"] / t["fwd_cpu"])
                    print(f"#   {story}: brainalign {ranks} rank(s) x {cores // ranks} thr "
                          f"{core or 'Haswell(env)'} vs torch {cores} thr "
                          f"{tcore or 'Haswell(env)'}: {wall_x:.2f}x ({cpu_x:.2f}x)")
    print("\n# brainalign commands (each rank runs under a small python wrapper that "
          "reports its peak RSS via getrusage):")
    for c in commands:
        print("#   " + c)


if __name__ == "__main__":
    main()
