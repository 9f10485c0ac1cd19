#!/usr/bin/python3
"""Training speed and memory of `brainalign finetune` (LoRA) against torch CPU
autograd doing the same steps, on the same machine in the same run.

Part 1 (throughput): a GPT-2-small-shaped model (12 layers, width 768, 12
heads, 1024 positions, the real GPT-2 vocabulary of 50257 tokens; random
float32 weights written by `brainalign checkpoint`, kept in --workdir) trains
LoRA with the default targets (c_attn), r 8, alpha 16, on samples whose
tokenised length is exactly --seq (512): the plain template, a short prompt
("Continue the story.\\n\\n") and a long response cut from the words of real
Narratives stories, checked with `brainalign tokenize` ([prompt ids] +
[response ids] + [EOS] = --seq tokens). `brainalign finetune` runs --steps
optimizer steps of --batch sequences; torch runs the same samples through an
independent GPT-2 with LoRA (the `Model` class of
tests/oracle/finetune_oracle.py, here in float32): forward, the mean
cross-entropy over the response tokens, backward, gradient clipping and
torch.optim.AdamW, with torch.set_num_threads equal to brainalign's thread
count. The figure is the steady step: the first step is a warm-up and not
counted (brainalign: the time between the first and the last row of its
--log CSV, which it flushes after every step, so start-up, model map and
tokenisation are not counted either; torch: the steps after the first).
tokens/s = batch x seq / step time; tokens per CPU second uses the CPU time of
the same interval (brainalign: all ranks and threads, from /proc; torch:
process time), which time-sharing with other jobs inflates far less. The
share of the machine's cores used by other processes meanwhile is printed
(from /proc/stat), as is the OpenBLAS kernel each side ran with (brainalign
re-executes itself with OPENBLAS_CORETYPE=SKYLAKEX on AVX-512 CPUs unless the
variable is set and OpenBLAS chose slower kernels; torch runs with the
environment as it is, and with --torch-coretypes env,SKYLAKEX also with
OPENBLAS_CORETYPE=SKYLAKEX). brainalign skips the output
layer on the masked prompt rows; torch computes all rows (a short prompt: a
few rows of --seq).

Part 2 (scaling): the same global batch as 1 rank x 1 thread, 1 rank x 2
threads and 2 ranks x 1 thread; step time, speed-up and efficiency of 2 ranks
over 1x1 (speed-up / 2) and of 2x1 against 1x2 (same cores).

Part 3 (--llama7b): LoRA (q_proj,v_proj, r 8) on a LLaMA-2-7B-shaped BF16
checkpoint (32 layers, 4096, 32 heads, d_ff 11008, the real LLaMA vocabulary;
13.5 GB, written into --workdir after checking the free space, deleted
afterwards unless --keep; --layers N for a shallower model) at sequence 1024,
1 rank, --recompute (the default for LLaMA): peaks of VmHWM, RssAnon (the
process's own memory) and RssFile (the mapped checkpoint pages), sampled
every 50 ms from /proc, against the 20 GiB target, and tokens/s.

usage: tools/bench_finetune.py [--brainalign build/brainalign] [--data ../shared/data]
         [--workdir /tmp/bench-finetune] [--steps 4] [--batch 4] [--seq 512]
         [--repeat N] [--skip-torch] [--skip-scaling] [--torch-coretypes env[,SKYLAKEX]]
         [--llama7b [--layers 32] [--llama-steps 2] [--llama-batch 1] [--keep]]
"""
import argparse
import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GIB = 1 << 30
PROMPT = "Continue the story."
STORIES = ("pieman", "21styear", "lucy", "bronx", "black", "forgot", "merlin", "bigbang")
LLAMA7B = {"layers": 32, "d_model": 4096, "heads": 32, "kv_heads": 32, "d_ff": 11008,
           "positions": 4096, "vocab": 32000}
COMMANDS = []


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(cmd, env=None, stdin=None):
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, input=stdin)
    if proc.returncode != 0:
        sys.exit(f"FAILED: {shlex.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return proc


def shell_line(cmd, env_shown):
    pre = " ".join(f"{k}={v}" for k, v in env_shown.items())
    return (pre + " " if pre else "") + shlex.join(cmd)


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_busy_seconds():
    """CPU time spent by all processes on the machine (from /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return float("nan")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def others_share(busy_before, busy_after, own_cpu, wall):
    """Fraction of the machine's cores that other processes used meanwhile."""
    other = busy_after - busy_before - own_cpu
    return max(0.0, other) / (wall * (os.cpu_count() or 1))


# ---- watching a process tree ------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def proc_table():
    """{pid: (ppid, comm, cpu seconds)} of every process."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                text = f.read()
        except OSError:
            continue
        comm = text[text.index("(") + 1:text.rindex(")")]
        rest = text[text.rindex(")") + 2:].split()
        out[int(name)] = (int(rest[1]), comm, (int(rest[11]) + int(rest[12])) / TICK)
    return out


def descendants(table, root):
    kids, todo, seen = {}, [root], []
    for pid, (ppid, _, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    while todo:
        p = todo.pop()
        if p in table:
            seen.append(p)
        todo.extend(kids.get(p, []))
    return seen


class TreeWatch:
    """Every 20 ms: the CPU time of the process tree under `root`, the peaks
    of VmHWM/RssAnon/RssFile of each `brainalign` process in it, its
    OPENBLAS_CORETYPE, and the time at which each new row of `log_path`
    appeared (with the tree's CPU time then)."""

    FIELDS = ("VmHWM", "VmRSS", "RssAnon", "RssFile")

    def __init__(self, root, log_path):
        self.root, self.log_path = root, log_path
        self.rows = []          # (perf_counter, tree CPU s) when row k+1 appeared
        self.peaks = {}         # pid -> {field: kB}
        self.coretypes = {}     # pid -> OPENBLAS_CORETYPE
        self.cpu_of = {}        # pid -> last CPU s seen
        self.done = False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def tree_cpu(self):
        table = proc_table()
        for pid in descendants(table, self.root):
            self.cpu_of[pid] = table[pid][2]
            if table[pid][1] == "brainalign":
                self.sample_status(pid)
        return sum(self.cpu_of.values())

    def sample_status(self, pid):
        try:
            with open(f"/proc/{pid}/status") as f:
                peak = self.peaks.setdefault(pid, {k: 0 for k in self.FIELDS})
                for line in f:
                    key = line.split(":")[0]
                    if key in peak:
                        peak[key] = max(peak[key], int(line.split()[1]))
            with open(f"/proc/{pid}/environ", "rb") as f:
                for item in f.read().split(b"\0"):
                    if item.startswith(b"OPENBLAS_CORETYPE="):
                        self.coretypes[pid] = item.split(b"=", 1)[1].decode()
        except OSError:
            pass

    def count_rows(self):
        try:
            with open(self.log_path) as f:
                return max(0, sum(1 for _ in f) - 1)
        except OSError:
            return 0

    def loop(self):
        while not self.done:
            n = self.count_rows()
            if n > len(self.rows):
                now, cpu = time.perf_counter(), self.tree_cpu()
                self.rows.extend([(now, cpu)] * (n - len(self.rows)))
            else:
                self.tree_cpu()
            time.sleep(0.02)

    def stop(self):
        self.done = True
        self.thread.join()


# ---- data --------------------------------------------------------------------------------

def tokenize(args, ckpt, text):
    proc = sh([args.brainalign, "tokenize", "--tokenizer", ckpt], stdin=text)
    return [int(x) for x in proc.stdout.split()]


def story_words(args, story):
    with open(os.path.join(args.data, "narratives/stimuli", story, "align.csv"),
              encoding="utf-8", newline="") as f:
        return [r[0] for r in csv.reader(f) if r and r[0].strip()]


def story_spans(args, ckpt, story):
    """The story's words and each word's [first, last] token (one tokenize
    call for the whole story; the features oracle's rule)."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "oracle"))
    from features_oracle import token_byte_lengths, word_spans
    words = story_words(args, story)
    ids = tokenize(args, ckpt, " ".join(words))
    return words, word_spans(words, ids, token_byte_lengths(os.path.join(ckpt, "encoder.json")))


def build_samples(args, ckpt, seq, count, path, specials=1):
    """`count` samples of the plain template with instruction PROMPT, no input,
    and a response of consecutive story words such that [prompt] + [response]
    + [EOS] is exactly `seq` tokens (GPT-2 adds no BOS; specials=2 for LLaMA's
    BOS + EOS): the cut is guessed from the story's token spans (GPT-2) or by
    bisection (LLaMA), then checked (and moved) with `brainalign tokenize`.
    Samples already in `path` are kept."""
    samples = []
    if os.path.exists(path):
        with open(path) as f:
            samples = [json.loads(line) for line in f]
        if len(samples) >= count:
            return
    n_prompt = len(tokenize(args, ckpt, PROMPT + "\n\n"))
    want = seq - n_prompt - specials
    log(f"building {count - len(samples)} more samples of {seq} tokens (prompt {n_prompt}, "
        f"response {want}, special {specials}) from Narratives stories")
    gpt2 = os.path.exists(os.path.join(ckpt, "encoder.json"))
    used = {s["output"] for s in samples}
    calls = 0
    for story in STORIES:
        if gpt2:
            words, spans = story_spans(args, ckpt, story)
            calls += 1
        else:
            words = story_words(args, story)
        start = 0
        while len(samples) < count and start < len(words):
            if gpt2:
                first = spans[start][0]
                end = start + 1
                while end < len(words) and spans[end][1] - first + 1 <= want:
                    end += 1
                if spans[end - 1][1] - first + 1 < want - 8:
                    break  # the rest of the story is too short
            else:  # the largest end with at most `want` tokens
                lo, hi = start + 1, len(words)
                calls += 1
                if len(tokenize(args, ckpt, " ".join(words[start:hi]))) < want:
                    break
                while lo < hi:
                    mid = (lo + hi + 1) // 2
                    calls += 1
                    if len(tokenize(args, ckpt, " ".join(words[start:mid]))) <= want:
                        lo = mid
                    else:
                        hi = mid - 1
                end = lo
            seen, found = set(), None
            while end not in seen and start < end <= len(words):
                seen.add(end)
                calls += 1
                n = len(tokenize(args, ckpt, " ".join(words[start:end])))
                if n == want:
                    found = end
                    break
                end += 1 if n < want else -1
            if found is None:
                start += 1  # no cut of this start gives the exact length: shift it
                continue
            text = " ".join(words[start:found])
            if text not in used:
                samples.append({"instruction": PROMPT, "input": "", "output": text})
                used.add(text)
            start = found
        if len(samples) >= count:
            break
    if len(samples) < count:
        sys.exit(f"only {len(samples)} samples of {seq} tokens from the stories {STORIES}")
    with open(path + ".tmp", "w") as f:
        for s in samples:
            f.write(json.dumps(s) + "\n")
    os.replace(path + ".tmp", path)
    log(f"samples written to {path} ({calls} tokenize calls)")


def read_samples(args, ckpt, path, count, seq):
    """Token ids and labels (-100 on the prompt) of the first `count` samples,
    as brainalign builds them; lengths checked."""
    with open(path) as f:
        raw = [json.loads(line) for line in f][:count]
    with open(os.path.join(ckpt, "config.json")) as f:
        eos = json.load(f).get("eos_token_id", 50256)
    out = []
    for s in raw:
        p, r = tokenize(args, ckpt, s["instruction"] + "\n\n"), tokenize(args, ckpt, s["output"])
        ids = p + r + [eos]
        if len(ids) != seq:
            sys.exit(f"{path}: a sample of {len(ids)} tokens, expected {seq}")
        out.append((ids, [-100] * len(p) + r + [eos]))
    return out


# ---- brainalign ------------------------------------------------------------------------------

def run_finetune(args, ckpt, data, ranks, threads, steps, batch, seq, tag, extra=(), coretype=None,
                 direct=False):
    """One `brainalign finetune` run; the steady step time and CPU from its log."""
    out = os.path.join(args.workdir, f"out-{tag}")
    log_csv = os.path.join(args.workdir, f"log-{tag}.csv")
    for p in (out, out + ".restart", log_csv):
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.remove(p)
    env = dict(os.environ)
    shown = {"OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    if coretype:
        shown["OPENBLAS_CORETYPE"] = coretype
    env.update(shown)
    mpi = [] if direct else ["mpiexec", "--allow-run-as-root", "--oversubscribe", "--bind-to",
                             "none", "-n", str(ranks)]
    cmd = mpi + [args.brainalign, "finetune", "--model", ckpt, "--data", data, "--out", out,
                 "--template", "plain", "--method", "lora", "--lora-r", "8", "--steps", str(steps),
                 "--batch", str(batch), "--max-seq-len", str(seq), "--no-shuffle", "--lr", "1e-4",
                 "--log", log_csv, "--quiet", *extra]
    line = shell_line(cmd, shown)
    print("$ " + line, flush=True)
    COMMANDS.append(line)
    busy0, t0 = cpu_busy_seconds(), time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watch = TreeWatch(proc.pid, log_csv)
    stdout, stderr = proc.communicate()
    watch.stop()
    wall_total, busy1 = time.perf_counter() - t0, cpu_busy_seconds()
    if proc.returncode != 0:
        sys.exit(f"FAILED ({proc.returncode}): {line}\n{stdout}\n{stderr}")
    rows = watch.rows
    if len(rows) < steps:  # rows written between the last two samples: read the file
        sys.exit(f"{log_csv}: {len(rows)} step rows seen, expected {steps}")
    with open(log_csv) as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f)]
    shutil.rmtree(out, ignore_errors=True)
    if steps >= 2:
        step_wall = (rows[steps - 1][0] - rows[0][0]) / (steps - 1)
        step_cpu = (rows[steps - 1][1] - rows[0][1]) / (steps - 1)
        span_wall, span_cpu = rows[steps - 1][0] - rows[0][0], rows[steps - 1][1] - rows[0][1]
    else:  # one step: the whole command
        step_wall, step_cpu = wall_total, sum(watch.cpu_of.values())
        span_wall, span_cpu = step_wall, step_cpu
    share = others_share(busy0, busy1, sum(watch.cpu_of.values()), wall_total)
    peaks = {f: max((p[f] for p in watch.peaks.values()), default=0) / 1024 / 1024
             for f in TreeWatch.FIELDS}
    kernels = ",".join(sorted(set(watch.coretypes.values())))
    kernels = ("CORETYPE=" + kernels) if kernels else "no re-exec: " + openblas_corename(
        "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0")
    return {"step_wall": step_wall, "step_cpu": step_cpu, "wall_total": wall_total,
            "span_wall": span_wall, "span_cpu": span_cpu, "tokens": batch * seq,
            "losses": losses, "peaks": peaks, "kernels": kernels, "others": share,
            "load": load_average(), "ranks": ranks, "threads": threads}


def best_of(repeat, run_once):
    runs = [run_once() for _ in range(max(1, repeat))]
    best = min(runs, key=lambda r: r["step_wall"])
    best["all"] = [r["step_wall"] for r in runs]
    return best


# ---- torch ------------------------------------------------------------------------------------

def run_torch(args, ckpt, data, threads, steps, batch, seq, coretype):
    """In a fresh process (thread count and BLAS kernels fixed at start)."""
    code = (f"import sys; sys.path.insert(0, {HERE!r}); import bench_finetune as b; "
            f"b.torch_worker({args.brainalign!r}, {args.data!r}, {ckpt!r}, {data!r}, {threads}, "
            f"{steps}, {batch}, {seq})")
    env = dict(os.environ)
    shown = {"OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads)}
    if coretype:
        shown["OPENBLAS_CORETYPE"] = coretype
    env.update(shown)
    cmd = [sys.executable, "-c", code]
    line = shell_line([sys.executable, HERE + "/bench_finetune.py (torch_worker)", f"threads={threads}",
                       f"steps={steps}", f"batch={batch}", f"seq={seq}"], shown)
    print("$ " + line, flush=True)
    busy0, t0 = cpu_busy_seconds(), time.perf_counter()
    proc = sh(cmd, env=env)
    wall = time.perf_counter() - t0
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    r["others"] = others_share(busy0, cpu_busy_seconds(), r["cpu_total"], wall)
    r["load"] = load_average()
    return r


def openblas_corename(lib=None):
    """The kernels OpenBLAS selected: of `lib` loaded here (with this
    process's environment, which the child had), or of the OpenBLAS this
    process has loaded."""
    import ctypes
    if lib:
        libs = [lib]
    else:
        with open("/proc/self/maps") as f:
            libs = sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower() and "/" in ln})
    for lib in libs:
        try:
            fn = ctypes.CDLL(lib).openblas_get_corename
            fn.restype = ctypes.c_char_p
            return fn().decode() + " (" + os.path.basename(lib) + ")"
        except (OSError, AttributeError):
            continue
    return "no OpenBLAS loaded"


def torch_worker(brainalign, data_dir, ckpt, data, threads, steps, batch, seq):
    import math
    import resource
    import numpy as np
    import torch
    sys.path.insert(0, os.path.join(ROOT, "tests", "oracle"))
    from finetune_oracle import Model, read_checkpoint
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    args = argparse.Namespace(brainalign=brainalign, data=data_dir)
    samples = read_samples(args, ckpt, data, steps * batch, seq)
    with open(os.path.join(ckpt, "config.json")) as f:
        cfg = json.load(f)
    # the oracle's model, in float32 (its constructor converts to float64)
    model = Model.__new__(Model)
    model.arch, model.cfg = "gpt2", cfg
    model.w = {k: torch.from_numpy(v.astype(np.float32)) for k, v in read_checkpoint(ckpt).items()}
    r, alpha, d = 8, 16, cfg["n_embd"]
    model.scale = alpha / r
    lora, params = {}, []
    for i in range(cfg["n_layer"]):
        a = torch.empty(r, d)
        torch.nn.init.kaiming_uniform_(a, a=math.sqrt(5))  # PEFT's init of A; B = 0
        a.requires_grad_(True)
        b = torch.zeros(3 * d, r, requires_grad=True)
        lora[f"h.{i}.attn.c_attn"] = (a, b)
        params += [a, b]
    model.lora = lora
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    times, losses = [], []
    for s in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        total, count = 0.0, 0
        # sample by sample, as brainalign (per-sample graphs: the same peak memory per sample)
        for ids, labels in samples[s * batch:(s + 1) * batch]:
            count += sum(1 for x in labels[1:] if x != -100)
        for ids, labels in samples[s * batch:(s + 1) * batch]:
            t_ids = torch.tensor(ids)
            logits = model.forward(t_ids, model.embed(t_ids))
            tgt = torch.tensor(labels[1:])
            lp = torch.log_softmax(logits[:-1], dim=-1)
            mask = tgt != -100
            loss = -lp[mask.nonzero(as_tuple=True)[0], tgt[mask]].sum() / count
            loss.backward()
            total += float(loss)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        times.append((time.perf_counter() - t0, time.process_time() - c0))
        losses.append(total)
    steady = times[1:] if len(times) > 1 else times
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"step_wall": sum(t[0] for t in steady) / len(steady),
                      "step_cpu": sum(t[1] for t in steady) / len(steady),
                      "cpu_total": time.process_time(), "tokens": batch * seq, "losses": losses,
                      "peak": peak, "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "kernels": openblas_corename()}))


# ---- LLaMA-2-7B shape ---------------------------------------------------------------------------

def llama_part(args):
    ckpt = os.path.join(args.workdir, f"llama7b-shape-{args.layers}L-bf16")
    s = LLAMA7B
    need = 2 * (2 * s["vocab"] * s["d_model"] + args.layers * (
        4 * s["d_model"] ** 2 + 3 * s["d_model"] * s["d_ff"]))
    made = False
    if not os.path.exists(os.path.join(ckpt, "config.json")):
        usage = shutil.disk_usage(args.workdir)
        print(f"# disk: {usage.free / GIB:.1f} GiB free in {args.workdir}, the checkpoint needs "
              f"{need / GIB:.1f} GiB", flush=True)
        if usage.free < need * 1.1 + GIB:
            sys.exit(f"not enough space in {args.workdir}: choose another --workdir")
        cmd = [args.brainalign, "checkpoint", "--arch", "llama", "--layers", str(args.layers),
               "--d-model", str(s["d_model"]), "--heads", str(s["heads"]), "--kv-heads",
               str(s["kv_heads"]), "--d-ff", str(s["d_ff"]), "--positions", str(s["positions"]),
               "--dtype", "bf16", "--seed", "1", "--vocab-from",
               os.path.join(args.data, "llama-tokenizer"), "--out", ckpt]
        print("$ " + shlex.join(cmd), flush=True)
        COMMANDS.append(shlex.join(cmd))
        t0 = time.time()
        sh(cmd)
        made = True
        print(f"# checkpoint written in {time.time() - t0:.0f} s", flush=True)
    try:
        data = os.path.join(args.workdir, f"samples-llama-{args.llama_seq}.jsonl")
        build_samples(args, ckpt, args.llama_seq, args.llama_steps * args.llama_batch, data, specials=2)
        r = run_finetune(args, ckpt, data, 1, args.llama_threads, args.llama_steps, args.llama_batch,
                         args.llama_seq, "llama", extra=["--recompute"], direct=True)
    finally:
        if made and not args.keep:
            shutil.rmtree(ckpt, ignore_errors=True)
            print(f"# deleted {ckpt}", flush=True)
    return r


# ---- main ------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brainalign", default=os.path.join(ROOT, "build", "brainalign"))
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--workdir", default="/tmp/bench-finetune")
    ap.add_argument("--steps", type=int, default=4, help="optimizer steps per run (the first is a warm-up)")
    ap.add_argument("--batch", type=int, default=4, help="sequences per step (global)")
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each brainalign configuration; "
                    "the fastest is reported")
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--skip-scaling", action="store_true")
    ap.add_argument("--torch-coretypes", default="env",
                    help="OPENBLAS_CORETYPE values for torch; 'env' = the environment as it is")
    ap.add_argument("--llama7b", action="store_true", help="part 3 only: LoRA on the LLaMA-2-7B shape")
    ap.add_argument("--layers", type=int, default=32, help="--llama7b: blocks (32 = the 7B shape)")
    ap.add_argument("--llama-seq", type=int, default=1024)
    ap.add_argument("--llama-steps", type=int, default=2)
    ap.add_argument("--llama-batch", type=int, default=1)
    ap.add_argument("--llama-threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--keep", action="store_true", help="--llama7b: keep the checkpoint")
    args = ap.parse_args()
    args.brainalign = os.path.abspath(args.brainalign)
    os.makedirs(args.workdir, exist_ok=True)
    cores = os.cpu_count() or 1
    print(f"# bench_finetune: {shlex.join(sys.argv)}")
    print(f"# machine: {cores} CPUs; environment OPENBLAS_CORETYPE="
          f"{os.environ.get('OPENBLAS_CORETYPE', '(unset)')}; load {load_average()}")

    if args.llama7b:
        r = llama_part(args)
        pk = r["peaks"]
        print(f"\n# LLaMA-2-7B shape ({args.layers} layers), BF16, LoRA q_proj,v_proj r 8, "
              f"seq {args.llama_seq}, batch {args.llama_batch}, 1 rank x {args.llama_threads} thr, "
              f"{r['kernels']}")
        print(f"{'step s':>8} {'CPU s/step':>10} {'tokens/s':>9} {'tok/CPU-s':>9} {'VmHWM GiB':>9} "
              f"{'RssAnon':>8} {'RssFile':>8} {'others':>7} {'target':>12}")
        print(f"{r['step_wall']:>8.1f} {r['step_cpu']:>10.1f} {r['tokens'] / r['step_wall']:>9.1f} "
              f"{r['tokens'] / r['step_cpu']:>9.1f} {pk['VmHWM']:>9.2f} {pk['RssAnon']:>8.2f} "
              f"{pk['RssFile']:>8.2f} {r['others']:>6.0%} "
              f"{'< 20 GiB: ' + ('yes' if pk['VmHWM'] < 20 else 'NO'):>12}")
        print(f"# losses {r['losses']}; whole command {r['wall_total']:.0f} s")
        print("\n# commands:")
        for c in COMMANDS:
            print("#   " + c)
        return

    ckpt = os.path.join(args.workdir, "gpt2-small-random")
    if not os.path.exists(os.path.join(ckpt, "config.json")):
        cmd = [args.brainalign, "checkpoint", "--layers", "12", "--d-model", "768", "--heads", "12",
               "--positions", "1024", "--seed", "1", "--out", ckpt,
               "--vocab-from", os.path.join(args.data, "gpt2-tokenizer")]
        print("$ " + shlex.join(cmd), flush=True)
        COMMANDS.append(shlex.join(cmd))
        sh(cmd)
    data = os.path.join(args.workdir, f"samples-gpt2-{args.seq}.jsonl")
    build_samples(args, ckpt, args.seq, args.steps * args.batch, data)
    print(f"# model: GPT-2-small shape, random f32 weights ({ckpt}); LoRA c_attn r 8 alpha 16; "
          f"{args.steps} steps of {args.batch} x {args.seq} tokens, the first a warm-up; data {data}")

    results = []  # (label, result)
    ours = best_of(args.repeat, lambda: run_finetune(args, ckpt, data, 1, 2, args.steps, args.batch,
                                                     args.seq, "1x2"))
    results.append(("brainalign 1 rank x 2 thr", ours))
    torch_runs = []
    if not args.skip_torch:
        for core in args.torch_coretypes.split(","):
            core = None if core == "env" else core
            t = run_torch(args, ckpt, data, 2, args.steps, args.batch, args.seq, core)
            label = f"torch {t['torch']} 2 thr" + ("" if core else " (env)")
            results.append((label, t))
            torch_runs.append((label, t))
    scaling = {}
    if not args.skip_scaling:
        scaling["1x2"] = ours
        for ranks, threads in ((1, 1), (2, 1)):
            tag = f"{ranks}x{threads}"
            scaling[tag] = best_of(args.repeat, lambda: run_finetune(
                args, ckpt, data, ranks, threads, args.steps, args.batch, args.seq, tag))
            results.append((f"brainalign {ranks} rank x {threads} thr", scaling[tag]))

    print(f"\n# part 1/2: steady step (steps 2..{args.steps}), {args.batch} x {args.seq} tokens per step; "
          "CPU s: all ranks and threads of that interval; 'others': share of the machine's cores "
          "other processes used during the run; kernels: OPENBLAS_CORETYPE / OpenBLAS core")
    print(f"{'run':<34} {'kernels':<26} {'step s':>7} {'CPU s':>7} {'tokens/s':>9} {'tok/CPU-s':>9} "
          f"{'peak RSS GiB':>12} {'others':>7} {'load':>15}")
    for label, r in results:
        peak = r["peaks"]["VmHWM"] if "peaks" in r else r["peak"] / GIB
        print(f"{label:<34} {r['kernels'][:26]:<26} {r['step_wall']:>7.2f} {r['step_cpu']:>7.2f} "
              f"{r['tokens'] / r['step_wall']:>9.1f} {r['tokens'] / r['step_cpu']:>9.1f} "
              f"{peak:>12.2f} {r['others']:>6.0%} {r['load']:>15}"
              + (f"  (all runs: {', '.join(f'{w:.2f}' for w in r['all'])} s/step)"
                 if len(r.get("all", [])) > 1 else ""))
    for label, t in torch_runs:
        x_wall = t["step_wall"] / ours["step_wall"]
        x_cpu = t["step_cpu"] / ours["step_cpu"]
        dl = max(abs(a - b) / abs(b) for a, b in zip(ours["losses"], t["losses"]))
        print(f"# brainalign 1x2 vs {label}: {x_wall:.2f}x tokens/s, {x_cpu:.2f}x tokens per CPU s "
              f"(target >= 1.5x: {'met' if x_wall >= 1.5 else 'NOT met'}); step losses "
              f"{ours['losses']} vs {t['losses']} (max rel. diff {dl:.1e}; random LoRA A differs, "
              "B = 0, so the first loss is the base model's)")
    if scaling:
        one, two, wide = scaling["1x1"], scaling["2x1"], scaling["1x2"]
        s2 = one["step_wall"] / two["step_wall"]
        s12 = one["step_wall"] / wide["step_wall"]
        print(f"# scaling, same global batch {args.batch}: 1x1 {one['step_wall']:.2f} s/step, "
              f"1x2 {wide['step_wall']:.2f}, 2x1 {two['step_wall']:.2f}; 2 ranks over 1x1: "
              f"speed-up {s2:.2f}, efficiency {s2 / 2:.0%}; 2 threads over 1x1: {s12:.2f} "
              f"({s12 / 2:.0%}); 2x1 vs 1x2 (same cores): {wide['step_wall'] / two['step_wall']:.2f}x; "
              f"CPU s/step 1x1 {one['step_cpu']:.2f}, 1x2 {wide['step_cpu']:.2f}, 2x1 {two['step_cpu']:.2f}")
        same = all(abs(a - b) <= 1e-6 * abs(b) for a, b in zip(two["losses"], one["losses"]))
        print(f"# losses 2x1 vs 1x1 within 1e-6 relative: {same}")
    print("\n# brainalign commands:")
    for c in COMMANDS:
        print("#   " + c)


if __name__ == "__main__":
    main()
