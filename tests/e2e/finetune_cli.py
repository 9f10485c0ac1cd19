#!/usr/bin/python3
"""`brainalign finetune` end to end through the CLI:

  - the loss curve (the whole --log) is the same with 1, 2 and 4 ranks
    (<= 1e-6 relative) and bitwise the same when a run is repeated with the
    same rank count, and so are the trained adapters;
  - with --lora-dropout, the same across rank counts (the draw follows the
    sample's place in the data stream);
  - a run stopped by SIGTERM (at a step boundary, the restart file saved)
    and rerun with the same command ends bitwise identical to an
    uninterrupted run (adapter and log), and so does a run killed with
    SIGKILL after a --save-every save;
  - bad inputs give a clear error (exit 1, the message names the problem),
    on 2 ranks, and leave no output: a bad JSONL line (file:line), an
    unknown target module, an adapter for another model shape, r = 0, a
    non-finite loss (a checkpoint with a NaN weight), an existing --out;
  - a tiny model learns: a 2-layer GPT-2 (d 64, its own byte-level
    vocabulary of 257 tokens) trained in full (freeze with K = 2) on a small
    copy task reaches a loss below 0.05 within 100 steps.

usage: finetune_cli.py --brainalign B --data-dir D --workdir W -- MPIEXEC...
"""
import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

FAILURES = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


def run(cmd, expect_ok=True, timeout=600):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if expect_ok and proc.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return proc


def read_log(path):
    with open(path) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["step", "loss", "lr", "grad_norm", "tokens"], rows[0]
    return np.array([[float(x) for x in r] for r in rows[1:]])


def file_bytes(path):
    with open(path, "rb") as f:
        return f.read()


SAMPLES = [
    {"instruction": "Tell me what this brings to mind.", "input": "The old man walked to the sea.",
     "output": "Fishing trips with my grandfather."},
    {"instruction": "Associate freely.", "input": "", "output": "Rain on a tin roof."},
    {"instruction": "What memory does this evoke?", "input": "She opened the letter.",
     "output": "Waiting for exam results."},
    {"instruction": "Continue the thought.", "input": "The train was late again.",
     "output": "Someone started to laugh."},
    {"instruction": "Name an association.", "input": "Snow covered the village.",
     "output": "Christmas at my aunt's house."},
    {"instruction": "Associate freely.", "input": "A dog barked far away.",
     "output": "Summer nights at the farm."},
]


def write_jsonl(path, samples):
    with open(path, "w") as f:
        for s in samples:
            f.write(json.dumps(s) + "\n")


def brainalign_pids(marker):
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"brainalign") and marker.encode() in argv:
            pids.append(int(pid))
    return pids


def log_rows(path):
    try:
        with open(path) as f:
            return max(0, sum(1 for _ in f) - 1)
    except OSError:
        return 0


def stop_after(cmd, out, log, rows, sig, timeout=300):
    """Start cmd, send `sig` to its brainalign processes once the log has
    `rows` rows (and, for SIGKILL, once the restart file exists), wait."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        if log_rows(log) >= rows and (sig != signal.SIGKILL or os.path.exists(out + ".restart")):
            for pid in brainalign_pids(out):
                os.kill(pid, sig)
            break
        time.sleep(0.02)
    stdout, stderr = proc.communicate(timeout=timeout)
    return proc.returncode, stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--brainalign", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("mpiexec", nargs="*")
    args = ap.parse_args()
    ba, mpiexec, w = args.brainalign, args.mpiexec, args.workdir
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(w)
    vocab = os.path.join(args.data_dir, "gpt2-tokenizer")
    ckpt = os.path.join(w, "ckpt")
    run([ba, "checkpoint", "--arch", "gpt2", "--layers", "2", "--d-model", "32", "--heads", "4",
         "--positions", "128", "--seed", "7", "--init-std", "0.1", "--vocab-from", vocab,
         "--out", ckpt])
    cfg = json.load(open(os.path.join(ckpt, "config.json")))
    check(cfg.get("eos_token_id") == 50256 and cfg.get("bos_token_id") == 50256,
          "checkpoint writes bos_token_id/eos_token_id 50256 for GPT-2")
    data = os.path.join(w, "train.jsonl")
    write_jsonl(data, SAMPLES)

    def ft(out, extra=(), ranks=None, log=None):
        cmd = ([*mpiexec, "-n", str(ranks)] if ranks else []) + [
            ba, "finetune", "--model", ckpt, "--data", data, "--out", out, "--template", "plain",
            "--lora-targets", "c_attn,c_proj,c_fc", "--lora-r", "4", "--lr", "1e-2",
            "--batch", "4", "--steps", "6", "--seed", "5", "--lr-schedule", "cosine",
            "--warmup-steps", "1", "--weight-decay", "0.01", "--quiet"]
        if log:
            cmd += ["--log", log]
        return cmd + list(extra)

    # ---- rank-count independence and repeatability ----
    logs, adapters = {}, {}
    for tag, ranks in (("1", 1), ("1b", 1), ("2", 2), ("2b", 2), ("4", 4)):
        out, log = os.path.join(w, f"ranks{tag}"), os.path.join(w, f"ranks{tag}.csv")
        run(ft(out, ranks=ranks, log=log))
        logs[tag] = read_log(log)
        adapters[tag] = file_bytes(os.path.join(out, "adapter_model.safetensors"))
        check(os.path.exists(os.path.join(out, "adapter_config.json")),
              f"{ranks} ranks: OUT/adapter_config.json written")
        check(not os.path.exists(out + ".restart"), f"{ranks} ranks: no restart file left")
    ref = logs["1"]
    check(len(ref) == 6, "6 log rows")
    for tag in ("2", "4"):
        r = logs[tag]
        same_shape = r.shape == ref.shape
        err = float(np.max(np.abs(r[:, 1:4] - ref[:, 1:4]) / np.maximum(np.abs(ref[:, 1:4]), 1e-30))) \
            if same_shape else float("inf")
        check(same_shape and err <= 1e-6 and np.array_equal(r[:, [0, 4]], ref[:, [0, 4]]),
              f"{tag} ranks: log equals 1 rank's within 1e-6 relative (worst {err:.3g})")
    check(np.array_equal(logs["1"], logs["1b"]) and adapters["1"] == adapters["1b"],
          "1 rank repeated: log and adapter bitwise identical")
    check(np.array_equal(logs["2"], logs["2b"]) and adapters["2"] == adapters["2b"],
          "2 ranks repeated: log and adapter bitwise identical")
    check(ref[-1, 1] < ref[0, 1], f"the loss goes down ({ref[0, 1]:.4g} -> {ref[-1, 1]:.4g})")

    # LoRA dropout: drawn per sample of the data stream, not per rank.
    drop = {}
    for ranks in (1, 2):
        out, log = os.path.join(w, f"dropout{ranks}"), os.path.join(w, f"dropout{ranks}.csv")
        run(ft(out, ["--lora-dropout", "0.3"], ranks=ranks, log=log))
        drop[ranks] = read_log(log)
    err = float(np.max(np.abs(drop[2][:, 1:4] - drop[1][:, 1:4]) /
                       np.maximum(np.abs(drop[1][:, 1:4]), 1e-30)))
    check(err <= 1e-6 and not np.array_equal(drop[1][:, 1], ref[:, 1]),
          f"--lora-dropout 0.3: 2 ranks equal 1 rank within 1e-6 (worst {err:.3g}), "
          "and the curve differs from no dropout")

    # ---- restart ----
    long = ["--steps", "40", "--batch", "2"]
    full, full_log = os.path.join(w, "full"), os.path.join(w, "full.csv")
    run(ft(full, long, ranks=2, log=full_log))
    for sig, extra, name in ((signal.SIGTERM, [], "SIGTERM"),
                             (signal.SIGKILL, ["--save-every", "3"], "SIGKILL after --save-every")):
        out, log = os.path.join(w, f"stop-{int(sig)}"), os.path.join(w, f"stop-{int(sig)}.csv")
        cmd = ft(out, long + extra, ranks=2, log=log)
        rc, stderr = stop_after(cmd, out, log, 5, sig)
        check(rc != 0 and not os.path.exists(out) and os.path.exists(out + ".restart"),
              f"{name}: stopped (exit {rc}), no output, a restart file")
        if sig == signal.SIGTERM:
            check("rerun the same command" in stderr, f"{name}: the message says how to resume")
            other = run(ft(out, long + extra + ["--lr", "2e-2"], ranks=2, log=log), expect_ok=False)
            check(other.returncode != 0 and "different finetune command" in other.stderr
                  and not os.path.exists(out),
                  f"{name}: another command does not resume from the restart file")
        done = run(cmd, expect_ok=False)
        check(done.returncode == 0, f"{name}: the rerun finishes ({done.stderr.strip()[-300:]})")
        if done.returncode == 0:
            same = file_bytes(os.path.join(out, "adapter_model.safetensors")) == \
                file_bytes(os.path.join(full, "adapter_model.safetensors"))
            check(same and file_bytes(log) == file_bytes(full_log),
                  f"{name}: adapter and log bitwise those of an uninterrupted run")
            check(not os.path.exists(out + ".restart"), f"{name}: restart file removed at the end")

    # ---- bad inputs, on 2 ranks ----
    def bad(tag, extra, expect, data_path=None, model=None, out=None):
        out = out or os.path.join(w, f"bad-{tag}")
        cmd = [*mpiexec, "-n", "2", ba, "finetune", "--model", model or ckpt,
               "--data", data_path or data, "--out", out, "--steps", "2", "--quiet",
               "--template", "plain", *extra]
        existed = os.path.exists(out)
        p = run(cmd, expect_ok=False)
        msg = next((l for l in p.stderr.splitlines() if "brainalign finetune:" in l), "")
        ok = p.returncode != 0 and expect in p.stderr
        ok = ok and (existed or not os.path.exists(out)) and not os.path.exists(out + ".partial")
        check(ok, f"bad input {tag}: exit {p.returncode}, '{msg[:160]}'")

    bad_jsonl = os.path.join(w, "bad.jsonl")
    with open(bad_jsonl, "w") as f:
        f.write(json.dumps(SAMPLES[0]) + "\n" + json.dumps(SAMPLES[1]) + "\n{\"instruction\": 3}\n")
    bad("jsonl", [], "bad.jsonl:3", data_path=bad_jsonl)
    bad("target", ["--lora-targets", "q_proj"], "q_proj")
    bad("r0", ["--lora-r", "0"], "--lora-r")
    # an adapter for a model of another width (d 48 instead of 32)
    other = os.path.join(w, "other-adapter")
    os.makedirs(other)
    tensors = {}
    for i in range(2):
        p = f"base_model.model.transformer.h.{i}.attn.c_attn"
        tensors[p + ".lora_A.weight"] = np.zeros((4, 48), np.float32)
        tensors[p + ".lora_B.weight"] = np.zeros((144, 4), np.float32)
    write_safetensors(os.path.join(other, "adapter_model.safetensors"), tensors)
    json.dump({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4, "lora_alpha": 8,
               "target_modules": ["c_attn"], "fan_in_fan_out": True, "bias": "none"},
              open(os.path.join(other, "adapter_config.json"), "w"))
    bad("adapter-shape", ["--adapter-init", other], "lora_A")
    # a NaN weight: the final norm's gain
    nan_ckpt = os.path.join(w, "ckpt-nan")
    shutil.copytree(ckpt, nan_ckpt)
    poke_nan(os.path.join(nan_ckpt, "model.safetensors"), "ln_f.weight")
    bad("nan", [], "finite", model=nan_ckpt)
    existing = os.path.join(w, "exists")
    os.makedirs(existing)
    bad("out-exists", [], "exists", out=existing)
    check(os.listdir(existing) == [], "bad input out-exists: the existing directory untouched")

    # ---- a tiny model learns ----
    # Its own vocabulary: GPT-2's byte-level BPE with the 256 byte tokens
    # and no merges (+ <|endoftext|> = 256), so the head is small.
    voc = os.path.join(w, "byte-vocab")
    write_byte_vocab(voc)
    tiny = os.path.join(w, "tiny")
    run([ba, "checkpoint", "--arch", "gpt2", "--layers", "2", "--d-model", "64", "--heads", "4",
         "--positions", "64", "--seed", "3", "--init-std", "0.2", "--vocab-from", voc,
         "--out", tiny])
    words = ["red", "blue", "green", "cat", "dog", "sun", "moon", "tree"]
    rng = np.random.default_rng(0)
    copy = []
    for _ in range(8):
        text = " ".join(rng.choice(words, 3))
        copy.append({"instruction": "Copy", "input": text, "output": text})
    copy_data = os.path.join(w, "copy.jsonl")
    write_jsonl(copy_data, copy)
    tlog = os.path.join(w, "tiny.csv")
    t0 = time.time()
    run([ba, "finetune", "--model", tiny, "--data", copy_data, "--out", os.path.join(w, "tiny-out"),
         "--template", "plain", "--method", "freeze", "--freeze-trainable-layers", "2",
         "--lr", "1e-2", "--batch", "8", "--steps", "100", "--max-grad-norm", "1.0",
         "--seed", "1", "--log", tlog, "--quiet"])
    curve = read_log(tlog)
    first_small = next((int(r[0]) for r in curve if r[1] < 0.05), None)
    check(curve[-1, 1] < 0.05,
          f"a tiny model learns the copy task: loss {curve[0, 1]:.3g} -> {curve[-1, 1]:.3g} "
          f"(below 0.05 from step {first_small}), {time.time() - t0:.1f} s")
    check(os.path.exists(os.path.join(w, "tiny-out", "config.json")),
          "freeze writes a complete checkpoint directory")

    if FAILURES:
        sys.exit(f"FAILED: {len(FAILURES)} check(s): {FAILURES}")
    print("OK")


def write_byte_vocab(d):
    """GPT-2's byte-to-unicode table as a vocabulary without merges."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    os.makedirs(d)
    vocab = {chr(c): i for i, c in enumerate(cs)}
    vocab["<|endoftext|>"] = 256
    with open(os.path.join(d, "vocab.json"), "w") as f:
        json.dump(vocab, f)
    with open(os.path.join(d, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n")


def write_safetensors(path, tensors):
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


def poke_nan(path, name):
    """Set the first element of F32 tensor `name` to NaN, in place."""
    with open(path, "r+b") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        info = header[name]
        assert info["dtype"] == "F32", info
        f.seek(8 + n + info["data_offsets"][0])
        f.write(np.array([np.nan], "<f4").tobytes())


if __name__ == "__main__":
    main()
