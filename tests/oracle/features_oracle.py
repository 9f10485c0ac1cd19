#!/usr/bin/python3
"""Independent oracle for `brainalign features`.

On excerpts of two real Narratives stories (the first 300 words of pieman
and of friends, which has unaligned words), with a small random GPT-2
checkpoint carrying the real GPT-2 vocabulary:

  * runs `brainalign features` with 1 and 2 ranks (and once with
    --format align-csv) and requires bitwise identical datasets;
  * recomputes everything in torch: token ids from `brainalign tokenize`
    (cross-checked against the reference ids of the whole story), word ->
    token spans from the byte lengths of the GPT-2 tokens (encoder.json and
    GPT-2's byte-to-unicode table, rebuilt here), the window rule by brute
    force (each token from the earliest window [kS, kS + C) containing it),
    the forward pass from tests/oracle/gpt2_oracle.py (torch, the Hugging
    Face formulas, safetensors read with numpy); hidden states of each
    word's last token and surprisal (sum over the word's tokens of
    -log p) must agree within --tol, without and with a BOS token;
  * checks words, onsets/offsets (empty times interpolated linearly in the
    word index, ends held) and the root attributes;
  * bad inputs through the CLI: unknown layer, missing stimuli, empty story
    file, corrupt checkpoint, tokenizer/model vocabulary mismatch, bad
    window options: a clear message, a non-zero exit on every rank, no
    output file. (A word without a token of its own needs an empty word,
    which the stimulus readers already refuse.)
"""
import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt2_oracle import gpt2_forward, read_checkpoint  # noqa: E402

STORIES = {"friends": 300, "pieman": 300}
CONTEXT, STRIDE = 64, 32


def run(cmd, expect_ok=True, stdin=None):
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, input=stdin,
                          timeout=600)
    if expect_ok and proc.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return proc


# ---- stimuli ---------------------------------------------------------------------------

def write_excerpts(data_dir, stim_dir):
    rows = {}
    for story, n in STORIES.items():
        with open(os.path.join(data_dir, "narratives/stimuli", story, "align.csv"),
                  encoding="utf-8", newline="") as f:
            rows[story] = list(csv.reader(f))[:n]
        os.makedirs(os.path.join(stim_dir, story))
        with open(os.path.join(stim_dir, story, "align.csv"), "w", encoding="utf-8",
                  newline="") as f:
            csv.writer(f, lineterminator="\n").writerows(rows[story])
    return rows


def expected_times(rows, col):
    """Empty times filled linearly in the word index, ends held."""
    index = np.arange(len(rows), dtype=float)
    known = np.array([r[col].strip() != "" for r in rows])
    values = np.array([float(r[col]) if r[col].strip() else np.nan for r in rows])
    return np.interp(index, index[known], values[known])


# ---- tokens ------------------------------------------------------------------------------

def gpt2_byte_table():
    """GPT-2's reversible map from bytes to printable unicode characters."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + \
        list(range(0xAE, 0xFF + 1))
    chars = keep[:]
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(keep, chars)}


def token_byte_lengths(encoder_path):
    with open(encoder_path, encoding="utf-8") as f:
        encoder = json.load(f)
    to_byte = gpt2_byte_table()
    lengths = {}
    for text, i in encoder.items():
        lengths[i] = len(bytes(to_byte[c] for c in text))
    return lengths


def word_spans(words, ids, lengths):
    """[first, last] token of each word: word w owns the bytes of its leading
    space and itself; a token belongs to the word holding its last byte."""
    stops, total = [], 0
    for w, word in enumerate(words):
        total += (1 if w else 0) + len(word.encode("utf-8"))
        stops.append(total)
    ends = np.cumsum([lengths[i] for i in ids])
    assert ends[-1] == total, "tokens do not cover the text"
    word_of_token = np.searchsorted(np.array(stops), ends, side="left")
    spans = []
    for w in range(len(words)):
        toks = np.nonzero(word_of_token == w)[0]
        assert len(toks) > 0, f"word {w} has no token"
        spans.append((int(toks[0]), int(toks[-1])))
    return spans


def tokenize(brainalign, ckpt, text):
    out = run([brainalign, "tokenize", "--tokenizer", ckpt], stdin=text).stdout.split()
    return [int(x) for x in out]


# ---- the expected features ------------------------------------------------------------------

def owner(t, C, S):
    k = 0
    while not (k * S <= t < k * S + C):
        k += 1
    return k


def expected_features(weights, cfg, ids, spans, layers, C, S, bos):
    n = len(ids)
    n_windows = owner(n - 1, C, S) + 1
    lead = 1 if bos is not None else 0
    windows = []
    for k in range(n_windows):
        w_ids = ([bos] if lead else []) + ids[k * S:k * S + C]
        with torch.no_grad():
            hidden, logp = gpt2_forward(weights, cfg, torch.tensor(w_ids, dtype=torch.int64))
        windows.append((hidden, logp))
    token_logp = np.empty(n)
    for t in range(n):
        k = owner(t, C, S)
        p = t - k * S + lead
        token_logp[t] = windows[k][1][p - 1] if p > 0 else np.nan
    hidden = np.empty((len(layers), len(spans), cfg["n_embd"]), dtype=np.float32)
    surprisal = np.empty(len(spans))
    for w, (first, last) in enumerate(spans):
        surprisal[w] = -token_logp[first:last + 1].sum()
        k = owner(last, C, S)
        p = last - k * S + lead
        for j, layer in enumerate(layers):
            hidden[j, w] = windows[k][0][layer][p]
    return hidden, surprisal, n_windows


# ---- reading and comparing outputs ---------------------------------------------------------

def read_h5(path):
    out = {}
    with h5py.File(path, "r") as f:
        out["attrs"] = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        for story in f["stories"]:
            g = f["stories"][story]
            out[story] = {name: g[name][()] for name in g}
            out[story]["layers"] = list(g["hidden"].attrs["layers"])
    return out


def assert_identical(a, b, label):
    for story in STORIES:
        for name, value in a[story].items():
            other = b[story][name]
            same = np.array_equal(np.asarray(value), np.asarray(other), equal_nan=True) \
                if np.asarray(value).dtype.kind == "f" else np.array_equal(value, other)
            if not same or np.asarray(value).tobytes() != np.asarray(other).tobytes():
                sys.exit(f"FAILED: {label}: /stories/{story}/{name} differs")
    print(f"{label}: identical")


def check_run(out, rows, tokens, weights, cfg, layers, bos, tol, label):
    worst_h = worst_s = 0.0
    n_windows_total = 0
    for story, (ids, spans) in tokens.items():
        words = [r[0] for r in rows[story]]
        got = out[story]
        assert [w.decode("utf-8") for w in got["word"]] == words, f"{story}: words differ"
        for col, name in ((2, "onset"), (3, "offset")):
            want = expected_times(rows[story], col)
            assert got[name].dtype == np.float64 and np.allclose(got[name], want, rtol=0,
                                                                 atol=1e-9), f"{story}: {name}"
        assert got["layers"] == layers, (got["layers"], layers)
        hidden, surprisal, n_windows = expected_features(weights, cfg, ids, spans, layers,
                                                         CONTEXT, STRIDE, bos)
        n_windows_total += n_windows
        assert got["hidden"].shape == hidden.shape and got["hidden"].dtype == np.float32
        assert got["surprisal"].dtype == np.float32
        worst_h = max(worst_h, float(np.abs(got["hidden"] - hidden).max()))
        nan_want, nan_got = np.isnan(surprisal), np.isnan(got["surprisal"])
        assert (nan_want == nan_got).all(), f"{story}: NaN surprisal at {np.nonzero(nan_got)}"
        assert nan_want[0] == (bos is None) and nan_want[1:].sum() == 0
        worst_s = max(worst_s, float(np.abs(got["surprisal"][~nan_want] - surprisal[~nan_want]).max()))
    print(f"{label}: {n_windows_total} windows; max |C - torch| hidden {worst_h:.3g}, "
          f"surprisal {worst_s:.3g} nats")
    if not (worst_h < tol and worst_s < tol):
        sys.exit(f"FAILED: {label}: differences above {tol}")


# ---- bad inputs ------------------------------------------------------------------------------

def check_bad_inputs(args, mpi, ckpt, stim, work):
    out = os.path.join(work, "never.h5")

    def refuse(label, extra, *fragments, model=ckpt, stimuli=stim):
        cmd = mpi + [args.brainalign, "features", "--model", model, "--stimuli", stimuli,
                     "--out", out, "--quiet"] + extra
        proc = run(cmd, expect_ok=False)
        ok = proc.returncode != 0 and all(f in proc.stderr for f in fragments)
        if not ok:
            sys.exit(f"FAILED: {label}: expected failure mentioning {fragments}, got rc "
                     f"{proc.returncode}: {proc.stderr}")
        leftovers = [f for f in os.listdir(work) if f.startswith("never")]
        if leftovers:
            sys.exit(f"FAILED: {label}: output left behind: {leftovers}")
        print(f"{label}: refused: {proc.stderr.strip().splitlines()[0]}")

    refuse("unknown layer", ["--layers", "0,9"], "layer 9 does not exist", "0 (embeddings) .. 3")
    refuse("missing stimuli", [], "stimuli not found", stimuli=os.path.join(work, "nothing"))
    refuse("missing story", ["--stories", "pieman,nosuch"], "no story 'nosuch'")

    empty = os.path.join(work, "stim-empty")
    os.makedirs(os.path.join(empty, "pieman"))
    open(os.path.join(empty, "pieman", "align.csv"), "w").close()
    refuse("empty story file", [], "pieman/align.csv", "empty", stimuli=empty)

    refuse("stride beyond the context", ["--context", "64", "--stride", "65"],
           "--stride 65 must be between 1 and the context, 64")
    refuse("bad --bos", ["--bos", "maybe"], "--bos is auto, yes or no")
    refuse("bad --matmul", ["--matmul", "fp8"], "--matmul: matrix products are f32 or bf16")
    refuse("--matmul bf16 for GPT-2", ["--matmul", "bf16"],
           "bf16 matrix products are implemented for LLaMA")

    corrupt = os.path.join(work, "ckpt-corrupt")
    shutil.copytree(ckpt, corrupt)
    st = os.path.join(corrupt, "model.safetensors")
    with open(st, "r+b") as f:
        f.truncate(os.path.getsize(st) - 1000)
    refuse("corrupt checkpoint", [], "model.safetensors", model=corrupt)

    small = os.path.join(work, "ckpt-small-vocab")
    run([args.brainalign, "checkpoint", "--out", small, "--vocab-size", "300", "--layers", "1",
         "--d-model", "16", "--heads", "2", "--positions", "32"])
    for name in ("encoder.json", "vocab.bpe"):
        shutil.copy(os.path.join(args.data, "gpt2-tokenizer", name), small)
    refuse("tokenizer/model vocabulary mismatch", [], "vocab_size 300",
           "do not belong together", model=small)


# ---- main ------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--brainalign", required=True)
    ap.add_argument("--data", required=True, help="the shared data directory")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--tol", type=float, default=1e-4)
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args = ap.parse_args(argv[:cut])
    mpiexec = argv[cut + 1:]  # the mpiexec command and its options, after "--"
    if not mpiexec:
        sys.exit("usage: features_oracle.py OPTIONS -- MPIEXEC [MPIEXEC OPTIONS]")
    torch.set_num_threads(1)
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    work = args.workdir

    ckpt = os.path.join(work, "ckpt")
    run([args.brainalign, "checkpoint", "--layers", "3", "--d-model", "64", "--heads", "4",
         "--positions", "128", "--init-std", "0.1", "--seed", "5", "--out", ckpt,
         "--vocab-from", os.path.join(args.data, "gpt2-tokenizer")])
    with open(os.path.join(ckpt, "config.json")) as f:
        cfg = json.load(f)
    weights = read_checkpoint(ckpt)
    stim = os.path.join(work, "stim")
    rows = write_excerpts(args.data, stim)

    lengths = token_byte_lengths(os.path.join(args.data, "gpt2-tokenizer", "encoder.json"))
    tokens = {}
    for story in STORIES:
        words = [r[0] for r in rows[story]]
        ids = tokenize(args.brainalign, ckpt, " ".join(words))
        ref_path = os.path.join(args.data, "reference/tokens", f"{story}.gpt2.json")
        if os.path.exists(ref_path):  # the excerpt's ids are the whole story's, to its end
            with open(ref_path) as f:
                ref = json.load(f)["ids"]
            assert ids[:-3] == ref[:len(ids) - 3], f"{story}: ids differ from the reference"
            print(f"{story}: token ids agree with {ref_path}")
        tokens[story] = (ids, word_spans(words, ids, lengths))
        print(f"{story}: {len(words)} words, {len(ids)} tokens")

    base = ["features", "--model", ckpt, "--stimuli", stim, "--context", str(CONTEXT),
            "--stride", str(STRIDE), "--quiet"]
    one, two = os.path.join(work, "np1.h5"), os.path.join(work, "np2.h5")
    run(mpiexec + ["-n", "1", args.brainalign] + base + ["--out", one])
    run(mpiexec + ["-n", "2", args.brainalign] + base + ["--out", two])
    forced = os.path.join(work, "forced.h5")
    run(mpiexec + ["-n", "1", args.brainalign] + base + ["--format", "align-csv", "--out", forced])
    a, b, c = read_h5(one), read_h5(two), read_h5(forced)
    assert_identical(a, b, "1 rank vs 2 ranks")
    assert_identical(a, c, "auto vs --format align-csv")

    layers = list(range(cfg["n_layer"] + 1))
    check_run(a, rows, tokens, weights, cfg, layers, None, args.tol, "no BOS, all layers")

    attrs = b["attrs"]
    want = {"model_type": "gpt2", "context_length": CONTEXT, "condition": "baseline",
            "stride": STRIDE, "bos_token": -1, "matmul": "f32"}
    for k, v in want.items():
        assert attrs[k] == v, f"attribute {k} = {attrs[k]!r}, expected {v!r}"
    assert attrs["checkpoint"].startswith(os.path.realpath(ckpt) + "#fnv1a64:"), attrs["checkpoint"]
    assert attrs["version"] and "features" in attrs["command"] and "--stride" in attrs["command"]
    print("attributes:", {k: attrs[k] for k in sorted(attrs)})

    bos_out = os.path.join(work, "bos.h5")
    run(mpiexec + ["-n", "2", args.brainalign] + base +
        ["--bos", "yes", "--layers", "3,0", "--condition", "assoc-test", "--out", bos_out])
    d = read_h5(bos_out)
    assert d["attrs"]["condition"] == "assoc-test" and d["attrs"]["bos_token"] == 50256
    assert d["attrs"]["context_length"] == CONTEXT
    check_run(d, rows, tokens, weights, cfg, [3, 0], 50256, args.tol, "BOS, layers 3,0")

    check_bad_inputs(args, mpiexec + ["-n", "2"], ckpt, stim, work)
    print("OK")


if __name__ == "__main__":
    main()
