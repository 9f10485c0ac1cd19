#!/usr/bin/env python3
"""End-to-end test of a [model] study with association conditions.

usage: associations_model.py BRAINALIGN DATA_DIR MPIEXEC...

A tiny random GPT-2 (real vocabulary), excerpts of two real Narratives
stories, random BOLD for two subjects and an atlas go through
`brainalign run` (2 ranks) with the conditions human (placed associations),
gpt4 (one association per sentence, every-k with k = 2) and random (the
random control of the human set). Checks:

  * OUTPUT/features/<condition>.h5 for the baseline and every condition,
    with the condition, policy and inserted-word count recorded, the
    stories' own words and timings only, and the baseline equal (bitwise)
    to a direct `brainalign features` run with the same options;
  * features of the words before a story's first insertion equal the
    baseline's (the model is causal), words after it differ;
  * scores for every condition, subject and layer, and OUTPUT/compare.csv
    with one model per layer ("gpt2 layer L") and every condition;
  * a second run reuses every features file; editing the human set makes
    the next run recompute exactly the conditions made from it.
"""
import csv
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

STORIES = {"pieman": 260, "lucy": 200}  # lines of align.csv kept

CONFIG = """
[study]
name = model associations e2e
output = out

[model]
path = ckpt
context = 64
stride = 32

[stimuli]
dir = stim

[fit]
layers = 1,2

[bold]
subjects = sub-01, sub-02
path = bold-{subject}.h5

[atlas]
path = atlas.h5

[conditions]
human = human.jsonl
gpt4 = gpt4.jsonl
gpt4.policy = every-k
gpt4.every = 2
random = human.jsonl
random.policy = random
random.seed = 9

[compare]
permutations = 1000
bootstrap = 200
"""


def run(cmd, cwd, ok=True):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=cwd,
                          env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    if ok and proc.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return proc


def attr(f, name):
    v = f.attrs[name]
    return v.decode() if isinstance(v, bytes) else v


def main():
    ba, data, mpiexec = sys.argv[1], sys.argv[2], sys.argv[3:]
    source = os.path.join(data, "narratives", "stimuli")
    with tempfile.TemporaryDirectory() as tmp:
        run([ba, "checkpoint", "--out", "ckpt", "--layers", "2", "--d-model", "32", "--heads", "4",
             "--positions", "128", "--vocab-from", os.path.join(data, "gpt2-tokenizer"),
             "--seed", "3", "--init-std", "0.2"], tmp)
        onsets = {}
        for story, n in STORIES.items():
            os.makedirs(f"{tmp}/stim/{story}")
            with open(f"{source}/{story}/align.csv") as f:
                lines = f.readlines()[:n]
            with open(f"{tmp}/stim/{story}/align.csv", "w") as f:
                f.writelines(lines)
            onsets[story] = [float(r[2]) for r in csv.reader(lines) if r[2]]
        rng = np.random.default_rng(1)
        for s in ("sub-01", "sub-02"):
            with h5py.File(f"{tmp}/bold-{s}.h5", "w") as f:
                for story, on in onsets.items():
                    f[f"stories/{story}/data"] = rng.normal(size=(int(max(on) / 1.5) + 12, 40)).astype(np.float32)
                f.attrs["tr_s"] = 1.5
        with h5py.File(f"{tmp}/atlas.h5", "w") as f:
            f["labels"] = np.repeat(np.arange(4), 10).astype(np.int32)
            f["names"] = np.array([b"G_front_middle", b"G_pariet_inf-Angular", b"S_temporal_sup", b"Pole_temporal"])
        with open(f"{tmp}/human.jsonl", "w") as f:
            f.write('{"story": "pieman", "after_word": 40, "text": "a reporter chasing a story", "source": "human"}\n')
            f.write('{"story": "pieman", "after_word": 150, "text": "the dean looks annoyed"}\n')
            f.write('{"story": "lucy", "after_word": 60, "text": "an old friend from school"}\n')
        with open(f"{tmp}/gpt4.jsonl", "w") as f:
            for i in range(12):
                f.write(f'{{"story": "pieman", "after_sentence": {i}, "text": "thought number {i}", "source": "gpt4"}}\n')
        cfg = os.path.join(tmp, "study.ini")
        with open(cfg, "w") as f:
            f.write(CONFIG)
        proc = run([*mpiexec, "-n", "2", ba, "run", cfg], tmp)
        print(proc.stdout[-2500:])
        out = f"{tmp}/out"

        # Features of every condition.
        feats = {}
        for c in ("baseline", "human", "gpt4", "random"):
            path = f"{out}/features/{c}.h5"
            with h5py.File(path) as f:
                assert attr(f, "condition") == c, (c, attr(f, "condition"))
                assert list(f["stories"]) == ["lucy", "pieman"]
                feats[c] = {s: f[f"stories/{s}/hidden"][:] for s in ("lucy", "pieman")}
                words = {s: [w.decode() for w in f[f"stories/{s}/word"][:]] for s in ("lucy", "pieman")}
                for story, n in STORIES.items():
                    assert len(words[story]) == n, (c, story, len(words[story]))
                if c != "baseline":
                    assert attr(f, "policy") == {"human": "human", "gpt4": "every-k", "random": "random"}[c]
                    assert int(f.attrs["inserted_words"]) > 0
                    feats[c + "_inserted"] = int(f.attrs["inserted_words"])
        assert feats["random_inserted"] == feats["human_inserted"] == 5 + 4 + 5
        # The baseline equals a direct `features` run with the same options.
        run([ba, "features", "--model", "ckpt", "--stimuli", "stim", "--layers", "1,2", "--context",
             "64", "--stride", "32", "--out", "direct.h5", "--quiet"], tmp)
        with h5py.File(f"{tmp}/direct.h5") as f:
            for s in ("lucy", "pieman"):
                assert np.array_equal(f[f"stories/{s}/hidden"][:], feats["baseline"][s]), s
        # Causal: before pieman's first insertion (after word 40) the human
        # features are the baseline's (up to float32 rounding of another
        # GEMM shape); after it they differ. lucy's first is after word 60.
        for s, first in (("pieman", 40), ("lucy", 60)):
            before = np.abs(feats["human"][s][:, :first + 1] - feats["baseline"][s][:, :first + 1]).max()
            after = np.abs(feats["human"][s][:, first + 1:first + 6] - feats["baseline"][s][:, first + 1:first + 6]).max()
            print(f"{s}: max |human - baseline| before the insertion {before:.2g}, just after {after:.2g}")
            assert before < 1e-4 and after > 1e-2, (s, before, after)
        assert np.array_equal(feats["gpt4"]["lucy"], feats["baseline"]["lucy"])  # no lucy associations

        # Scores and the comparison.
        for c in ("baseline", "human", "gpt4", "random"):
            for s in ("sub-01", "sub-02"):
                for layer in (1, 2):
                    assert os.path.exists(f"{out}/scores/{c}/{s}/layer-{layer}.h5"), (c, s, layer)
        with open(f"{out}/compare.csv") as f:
            rows = list(csv.DictReader(f))
        models = sorted({r["model"] for r in rows})
        assert models == ["gpt2 layer 1", "gpt2 layer 2"], models
        for m in models:
            assert {r["condition"] for r in rows if r["model"] == m} == {"baseline", "human", "gpt4", "random"}
        assert all(r["test"] == "sign-flip exact" and r["n_resamples"] == "4"
                   for r in rows if r["condition"] != "baseline")

        # Reuse, and recomputation when an association set changes.
        def stamps():
            return {c: os.stat(f"{out}/features/{c}.h5").st_mtime_ns for c in ("baseline", "human", "gpt4", "random")}
        before = stamps()
        proc = run([*mpiexec, "-n", "2", ba, "run", cfg], tmp)
        assert proc.stderr.count("run: reusing") == 4, proc.stderr
        assert stamps() == before
        with open(f"{tmp}/human.jsonl", "a") as f:
            f.write('{"story": "lucy", "after_word": 100, "text": "a late addition"}\n')
        proc = run([*mpiexec, "-n", "2", ba, "run", cfg], tmp)
        after = stamps()
        changed = sorted(c for c in before if after[c] != before[c])
        assert changed == ["human", "random"], changed
    print("associations with a model: passed")


if __name__ == "__main__":
    main()
