#!/usr/bin/env python3
"""The condition recorded by `features --associations` (issue 15): the random control
is not labelled with the association file's name.

usage: edges_features.py BRAINALIGN DATA_DIR
A tiny random GPT-2 with the real vocabulary, one real Narratives story excerpt.
"""
import os
import subprocess
import sys
import tempfile

import h5py


def run(cmd, cwd):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=cwd,
                          env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    if proc.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return proc


def condition(path):
    with h5py.File(path) as f:
        v = f.attrs["condition"]
    return v.decode() if isinstance(v, bytes) else v


def main():
    ba, data = os.path.abspath(sys.argv[1]), sys.argv[2]
    source = os.path.join(data, "narratives", "stimuli")
    with tempfile.TemporaryDirectory() as tmp:
        run([ba, "checkpoint", "--out", "ckpt", "--layers", "1", "--d-model", "16", "--heads", "2",
             "--positions", "64", "--vocab-from", os.path.join(data, "gpt2-tokenizer"),
             "--seed", "3"], tmp)
        for story in ("pieman", "lucy"):
            os.makedirs(f"{tmp}/stim/{story}")
            with open(f"{source}/{story}/align.csv") as f:
                lines = f.readlines()[:80]
            with open(f"{tmp}/stim/{story}/align.csv", "w") as f:
                f.writelines(lines)
        with open(f"{tmp}/human.jsonl", "w") as f:
            f.write('{"story": "pieman", "after_word": 20, "text": "a reporter chasing a story"}\n')
            f.write('{"story": "lucy", "after_word": 30, "text": "an old friend from school"}\n')
        base = [ba, "features", "--model", "ckpt", "--stimuli", "stim", "--layers", "1",
                "--context", "32", "--quiet", "--associations", "human.jsonl"]
        expected = {(): "human", ("--policy", "random"): "human-random",
                    ("--policy", "random-word"): "human-random-word"}
        for extra, want in expected.items():
            out = f"{tmp}/f-{'-'.join(extra) or 'plain'}.h5"
            run(base + list(extra) + ["--out", out], tmp)
            got = condition(out)
            assert got == want, (extra, got, want)
            print(f"ok: {' '.join(extra) or '(policy human)'} -> condition {got!r}")
        out = f"{tmp}/named.h5"
        run(base + ["--policy", "random", "--condition", "control", "--out", out], tmp)
        assert condition(out) == "control"
        print("ok: --condition still names it")
    print("all checks passed")


if __name__ == "__main__":
    main()
