#!/usr/bin/python3
"""`brainalign features --matmul bf16` end to end, on a small random BF16
LLaMA checkpoint with the real LLaMA tokenizer and excerpts of two real
Narratives stories:

  * bf16 products give the same features (bitwise) with 1 and 2 ranks and
    with 1 and 2 threads per rank (OPENBLAS_NUM_THREADS, which sets the
    kernel's OpenMP threads too);
  * they differ from the float32 products (the option took effect) by
    bfloat16 rounding only: hidden states correlate above 0.9999, every
    difference below 5% of the layer's largest value, surprisal within
    0.05 nats;
  * the files record `matmul` = f32 / bf16; other values are refused, and
    so is bf16 where it would change nothing (a checkpoint without BF16
    matrices) and when the CPU cannot (BRAINALIGN_NO_BF16_DOT=1 pretends
    so), with a clear message and no output file.
The values themselves are checked by the LLaMA oracle (tests/oracle/
llama_oracle.py --matmul bf16). Exit 77 (skipped) on CPUs without
AVX512-BF16, after checking the refusal.
"""
import argparse
import os
import shutil
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "oracle"))
from features_oracle import read_h5, write_excerpts  # noqa: E402


def run(cmd, env_extra=None, expect_ok=True):
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
    env.update(env_extra or {})
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if expect_ok and proc.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return proc


def same(a, b, label):
    for story in (k for k in a if k != "attrs"):
        for name in ("hidden", "surprisal"):
            if not np.array_equal(a[story][name], b[story][name], equal_nan=True):
                sys.exit(f"FAILED: {label}: {story}/{name} differ")
    print(f"{label}: identical")


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
        sys.exit("usage: features_matmul.py OPTIONS -- MPIEXEC [MPIEXEC OPTIONS]")
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    work = args.workdir
    ckpt = os.path.join(work, "ckpt")
    ckpt_f32 = os.path.join(work, "ckpt-f32")
    for path, dtype in ((ckpt, "bf16"), (ckpt_f32, "f32")):
        run(mpiexec + ["-n", "1", args.brainalign, "checkpoint", "--arch", "llama", "--layers",
                       "2", "--d-model", "64", "--heads", "4", "--kv-heads", "2", "--d-ff", "172",
                       "--positions", "128", "--dtype", dtype, "--init-std", "0.1", "--seed",
                       "11", "--vocab-from", os.path.join(args.data, "llama-tokenizer"),
                       "--out", path])
    stim = os.path.join(work, "stim")
    write_excerpts(args.data, stim)
    base = ["features", "--stimuli", stim, "--context", "48", "--stride", "24", "--quiet"]

    def features(name, ranks, matmul, threads="1", expect_ok=True, env_extra=None, model=ckpt):
        out = os.path.join(work, name + ".h5")
        env = {"OPENBLAS_NUM_THREADS": threads}
        env.update(env_extra or {})
        proc = run(mpiexec + ["-n", str(ranks), args.brainalign] + base +
                   ["--model", model, "--matmul", matmul, "--out", out], env, expect_ok)
        return out, proc

    # refusals first (they need no AVX512-BF16)
    for label, matmul, env, model, fragment in [
            ("--matmul fp8", "fp8", None, ckpt, "--matmul: matrix products are f32 or bf16"),
            ("bf16 for an F32 checkpoint", "bf16", None, ckpt_f32,
             "this checkpoint has none (use f32)"),
            ("bf16 without AVX512-BF16", "bf16", {"BRAINALIGN_NO_BF16_DOT": "1"}, ckpt,
             "bf16 matrix products need a CPU with AVX512-BF16")]:
        out, proc = features("never", 2, matmul, expect_ok=False, env_extra=env, model=model)
        if proc.returncode == 0 or fragment not in proc.stderr or os.path.exists(out):
            sys.exit(f"FAILED: {label}: expected a refusal mentioning '{fragment}' and no "
                     f"output, got rc {proc.returncode}: {proc.stderr}")
        print(f"{label}: refused: {proc.stderr.strip().splitlines()[0]}")

    f32, _ = features("f32", 1, "f32")
    bf_1, proc = features("bf16-np1", 1, "bf16", expect_ok=False)
    if proc.returncode != 0 and "need a CPU with AVX512-BF16" in proc.stderr:
        print(f"SKIPPED: {proc.stderr.strip()}")
        sys.exit(77)
    if proc.returncode != 0:
        sys.exit(f"FAILED: features --matmul bf16\n{proc.stdout}\n{proc.stderr}")
    bf_2, _ = features("bf16-np2", 2, "bf16")
    bf_t2, _ = features("bf16-np1-2threads", 1, "bf16", threads="2")
    a, b, c, r = read_h5(bf_1), read_h5(bf_2), read_h5(bf_t2), read_h5(f32)
    same(a, b, "bf16 products, 1 rank vs 2 ranks")
    same(a, c, "bf16 products, 1 thread vs 2 threads")
    assert a["attrs"]["matmul"] == "bf16" and r["attrs"]["matmul"] == "f32", \
        (a["attrs"]["matmul"], r["attrs"]["matmul"])
    assert "--matmul bf16" in a["attrs"]["command"], a["attrs"]["command"]

    differ = False
    for story in (k for k in a if k != "attrs"):
        h, h32 = a[story]["hidden"], r[story]["hidden"]
        for k, layer in enumerate(a[story]["layers"]):
            x, y = h[k].astype(np.float64), h32[k].astype(np.float64)
            scale = np.abs(y).max()
            rel = np.abs(x - y).max() / scale
            corr = np.corrcoef(x.ravel(), y.ravel())[0, 1] if layer > 0 else 1.0
            print(f"{story} layer {layer}: max |bf16 - f32| / max |f32| = {rel:.3g}, "
                  f"correlation {corr:.6f}")
            if layer == 0:  # the embeddings: no product yet
                assert rel == 0, f"{story}: embeddings differ"
                continue
            differ = differ or rel > 0
            assert rel < 0.05 and corr > 0.9999, f"{story} layer {layer}: too far from f32"
        s, s32 = a[story]["surprisal"], r[story]["surprisal"]
        ok = np.isfinite(s32)
        lp = float(np.abs(s[ok] - s32[ok]).max())
        print(f"{story} surprisal: max |bf16 - f32| = {lp:.3g} nats (mean {s32[ok].mean():.3f})")
        assert lp < 0.05, f"{story}: surprisal too far from f32"
    assert differ, "bf16 products gave exactly the float32 features: the option did nothing"
    print("OK")


if __name__ == "__main__":
    main()
