#!/usr/bin/python3
"""`brainalign features --adapter DIR` and `brainalign merge` end to end, on
small random GPT-2 and LLaMA (GQA, BF16) checkpoints with the real
tokenizers and excerpts of two real Narratives stories:

  * a PEFT adapter with B = 0 gives bitwise the base model's features
    (1 and 2 ranks);
  * an adapter with random A and B changes the features, and `features
    --adapter` equals the features of `merge`'s checkpoint within 1e-5
    relative (hidden states per layer, surprisal), with 1 and 2 ranks;
  * the file records the adapter's identity (root attribute "adapter");
  * a bad adapter directory (missing, for another model shape) fails on
    every rank with one clear message and writes no output; so does
    `merge` with such an adapter, or into an existing directory.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "oracle"))
from features_oracle import read_h5, write_excerpts  # noqa: E402
from finetune_oracle import read_checkpoint, write_safetensors_f32  # noqa: E402


def run(cmd, env_extra=None, expect_ok=True):
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
    env["OPENBLAS_NUM_THREADS"] = "1"
    env.update(env_extra or {})
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if expect_ok and proc.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return proc


def write_adapter(path, arch, base, targets, zero_b, seed):
    r, alpha = 4, 8
    rng = np.random.default_rng(seed)
    tensors = {}
    for name in sorted(base):
        module = name[:-len(".weight")] if name.endswith(".weight") else None
        if module is None or module.split(".")[-1] not in targets:
            continue
        w = base[name]
        d_in, d_out = (w.shape[0], w.shape[1]) if arch == "gpt2" else (w.shape[1], w.shape[0])
        prefix = "base_model.model." + ("transformer." if arch == "gpt2" else "") + module
        tensors[prefix + ".lora_A.weight"] = rng.normal(0, 0.2, (r, d_in))
        tensors[prefix + ".lora_B.weight"] = (np.zeros((d_out, r)) if zero_b
                                              else rng.normal(0, 0.2, (d_out, r)))
    os.makedirs(path)
    write_safetensors_f32(os.path.join(path, "adapter_model.safetensors"), tensors)
    with open(os.path.join(path, "adapter_config.json"), "w") as f:
        json.dump({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": alpha,
                   "lora_dropout": 0.0, "target_modules": targets,
                   "fan_in_fan_out": arch == "gpt2", "bias": "none",
                   "base_model_name_or_path": None, "an_unknown_key": True}, f)


def same(a, b, label):
    for story in (k for k in a if k != "attrs"):
        for name in ("hidden", "surprisal"):
            if not np.array_equal(a[story][name], b[story][name], equal_nan=True):
                sys.exit(f"FAILED: {label}: {story}/{name} differ")
    print(f"{label}: identical")


def close(a, b, label, tol):
    worst, changed = 0.0, False
    for story in (k for k in a if k != "attrs"):
        for k in range(a[story]["hidden"].shape[0]):
            x, y = a[story]["hidden"][k].astype(np.float64), b[story]["hidden"][k].astype(np.float64)
            worst = max(worst, np.linalg.norm(x - y) / max(np.linalg.norm(y), 1e-30))
        s, t = a[story]["surprisal"], b[story]["surprisal"]
        ok = np.isfinite(t)
        if not np.array_equal(np.isfinite(s), ok):
            sys.exit(f"FAILED: {label}: {story} surprisal NaN pattern differs")
        worst = max(worst, np.linalg.norm(s[ok] - t[ok]) / max(np.linalg.norm(t[ok]), 1e-30))
    print(f"{label}: worst relative difference {worst:.2e}")
    if worst > tol:
        sys.exit(f"FAILED: {label}: {worst:.2e} > {tol}")
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--brainalign", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--workdir", required=True)
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args = ap.parse_args(argv[:cut])
    mpiexec = argv[cut + 1:]
    if not mpiexec:
        sys.exit("usage: adapter_cli.py OPTIONS -- MPIEXEC [MPIEXEC OPTIONS]")
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    work = args.workdir
    stim = os.path.join(work, "stim")
    write_excerpts(args.data, stim)
    B = args.brainalign

    def features(name, ranks, model, adapter=None, expect_ok=True):
        out = os.path.join(work, name + ".h5")
        cmd = mpiexec + ["-n", str(ranks), B, "features", "--stimuli", stim, "--context", "32",
                         "--stride", "16", "--quiet", "--model", model, "--out", out]
        if adapter:
            cmd += ["--adapter", adapter]
        return out, run(cmd, expect_ok=expect_ok)

    for arch, dtype, targets, tok in (
            ("gpt2", "f32", ["c_attn", "c_proj", "c_fc"], "gpt2-tokenizer"),
            ("llama", "bf16", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                               "down_proj"], "llama-tokenizer")):
        ckpt = os.path.join(work, arch)
        other = os.path.join(work, arch + "-wide")
        for path, width in ((ckpt, "32"), (other, "48")):
            cmd = mpiexec + ["-n", "1", B, "checkpoint", "--arch", arch, "--layers", "2",
                             "--d-model", width, "--heads", "4", "--positions", "64",
                             "--dtype", dtype, "--init-std", "0.1", "--seed", "3",
                             "--vocab-from", os.path.join(args.data, tok), "--out", path]
            if arch == "llama":
                cmd += ["--kv-heads", "2", "--d-ff", "64"]
            run(cmd)
        base = read_checkpoint(ckpt)
        zero, rand = os.path.join(work, arch + "-zero"), os.path.join(work, arch + "-rand")
        wrong = os.path.join(work, arch + "-wrong")
        write_adapter(zero, arch, base, targets, True, 1)
        write_adapter(rand, arch, base, targets, False, 2)
        write_adapter(wrong, arch, read_checkpoint(other), targets, False, 3)

        plain, _ = features(arch + "-base", 2, ckpt)
        z1, _ = features(arch + "-zero-np1", 1, ckpt, zero)
        z2, _ = features(arch + "-zero-np2", 2, ckpt, zero)
        p, a1, a2 = read_h5(plain), read_h5(z1), read_h5(z2)
        same(p, a1, f"{arch}: B = 0 adapter vs base, 1 rank")
        same(p, a2, f"{arch}: B = 0 adapter vs base, 2 ranks")
        ident = a1["attrs"].get("adapter", "")
        if not (ident.startswith(os.path.realpath(zero) + "#fnv1a64:") and "adapter" not in p["attrs"]):
            sys.exit(f"FAILED: {arch}: adapter identity attribute {ident!r}")

        merged = os.path.join(work, arch + "-merged")
        run(mpiexec + ["-n", "2", B, "merge", "--model", ckpt, "--adapter", rand, "--out", merged])
        r1, _ = features(arch + "-rand-np1", 1, ckpt, rand)
        r2, _ = features(arch + "-rand-np2", 2, ckpt, rand)
        m, _ = features(arch + "-merged", 2, merged)
        ra, rb, mm = read_h5(r1), read_h5(r2), read_h5(m)
        same(ra, rb, f"{arch}: adapter features, 1 vs 2 ranks")
        close(ra, mm, f"{arch}: features --adapter vs the merged checkpoint", 1e-5)
        if close(ra, p, f"{arch}: adapter vs base (must differ)", 1e9) < 1e-3:
            sys.exit(f"FAILED: {arch}: the adapter did not change the features")

        for label, adapter, fragment in (
                ("missing adapter directory", os.path.join(work, "nowhere"), "nowhere"),
                ("adapter for another shape", wrong, "another model shape")):
            out, proc = features(arch + "-never", 2, ckpt, adapter, expect_ok=False)
            lines = [line for line in proc.stderr.splitlines() if line.strip()]
            if proc.returncode == 0 or fragment not in proc.stderr or os.path.exists(out):
                sys.exit(f"FAILED: {arch}: {label}: expected a refusal naming '{fragment}' and "
                         f"no output, got rc {proc.returncode}: {proc.stderr}")
            print(f"{arch}: {label}: refused ({len(lines)} line(s)): {lines[0]}")
            dest = os.path.join(work, arch + "-never-merged")
            proc = run(mpiexec + ["-n", "2", B, "merge", "--model", ckpt, "--adapter", adapter,
                                  "--out", dest], expect_ok=False)
            if proc.returncode == 0 or os.path.exists(dest):
                sys.exit(f"FAILED: {arch}: merge with a {label} succeeded or wrote {dest}")
        proc = run(mpiexec + ["-n", "1", B, "merge", "--model", ckpt, "--adapter", rand, "--out",
                              merged], expect_ok=False)
        if proc.returncode == 0 or "already exists" not in proc.stderr:
            sys.exit(f"FAILED: {arch}: merge into an existing directory: {proc.stderr}")
    # [model] adapter = DIR in a study configuration reaches the features task
    src = os.path.join(HERE, "..", "..", "configs", "narratives-gpt2.ini")
    with open(src) as f:
        text = f.read()
    assert "\npath = ../models/gpt2\n" in text
    cfg = os.path.join(work, "study.ini")
    with open(cfg, "w") as f:
        f.write(text.replace("\npath = ../models/gpt2\n",
                             "\npath = ../models/gpt2\nadapter = gpt2-rand\n"))
    proc = run([B, "tasks", cfg, "--stage", "features", "--index", "0"])
    want = "--adapter " + os.path.join(work, "gpt2-rand")
    if want not in proc.stdout:
        sys.exit(f"FAILED: [model] adapter: expected '{want}' in the features task: {proc.stdout}")
    print("[model] adapter = DIR: in the features task")
    print("OK")


if __name__ == "__main__":
    main()
