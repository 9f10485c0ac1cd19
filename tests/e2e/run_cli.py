#!/usr/bin/env python3
"""End-to-end test of `brainalign run CONFIG`.

usage: run_cli.py BRAINALIGN DATA_DIR MPIEXEC...

A synthetic study made from real Narratives word timings
(DATA_DIR/narratives/stimuli) goes through `brainalign run` under 2 ranks;
the region table must come out in the planted order, the planted layer must
score best, every output must record its configuration, and bad
configurations must fail with a message naming the file and line.
"""
import csv
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

CONFIG = """
; written by tests/e2e/run_cli.py
[study]
name = e2e
output = out

[synth]
stimuli = {stimuli}
stories = 3
subjects = 2
voxels = 300
regions = 5
d_model = 12
layers = 3
planted_layer = 2
seed = 11

[fit]
layers = 1,2

[alignment]
aggregate = sum
delays = 1..5

[cv]
folds = 5
alphas = logspace:-1:8:10
"""


def run(cmd, ok=True):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    if ok and proc.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return proc


def main():
    ba, data, mpiexec = sys.argv[1], sys.argv[2], sys.argv[3:]
    stimuli = os.path.join(data, "narratives", "stimuli")
    if not os.path.isdir(stimuli):
        sys.exit(f"shared data missing: {stimuli}")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "study.ini")
        with open(cfg, "w") as f:
            f.write(CONFIG.format(stimuli=stimuli))
        proc = run([*mpiexec, "-n", "2", ba, "run", cfg])
        print(proc.stdout)
        out = os.path.join(tmp, "out")
        # The real timings made it into the features (first stories by name).
        with h5py.File(f"{out}/synth/features.h5") as f:
            names = sorted(f["stories"])
            assert names == sorted(os.listdir(stimuli))[:3], names
        first_run = {}
        for subject in ("sub-01", "sub-02"):
            means = {}
            for layer in (1, 2):
                with open(f"{out}/tables/{subject}-layer-{layer}.csv") as f:
                    rows = list(csv.DictReader(f))
                means[layer] = np.array([float(r["mean_r"]) for r in rows])
                with h5py.File(f"{out}/scores/{subject}/layer-{layer}.h5") as s:
                    config = s.attrs["study_config"]
                    config = config.decode() if isinstance(config, bytes) else config
                    assert "[synth]" in config, "configuration not recorded"
                    assert np.allclose(s["roi/mean_r"][:], means[layer], atol=1e-6)
            with h5py.File(f"{out}/synth/bold-{subject}.h5") as b, h5py.File(f"{out}/synth/atlas.h5") as a:
                truth = b["truth/r_kfold5"][:]
                labels = a["labels"][:]
            planted = np.array([truth[labels == g].mean() for g in range(labels.max() + 1)])
            order_fit, order_truth = np.argsort(means[2]), np.argsort(planted)
            print(f"{subject}: fitted {np.round(means[2], 3)} planted {np.round(planted, 3)}")
            assert list(order_fit) == list(order_truth), "region ordering does not match the truth"
            assert means[2].mean() > means[1].mean(), "the planted layer does not score best"
            first_run[subject] = means[2]
        summary = open(f"{out}/summary.md").read()
        assert "| sub-02 layer 2 |" in summary
        # `tasks --collect` writes the report of `run` from the scores files,
        # byte for byte (one plan, one report writer).
        written = {name: open(os.path.join(out, name), "rb").read()
                   for name in ["summary.md"] + [f"tables/{s}-layer-{l}.csv"
                                                 for s in ("sub-01", "sub-02") for l in (1, 2)]}
        for name in written:
            os.remove(os.path.join(out, name))
        run([ba, "tasks", cfg, "--collect"])
        for name, data in written.items():
            again = open(os.path.join(out, name), "rb").read()
            assert again == data, f"tasks --collect wrote another {name}:\n{again!r}\n{data!r}"
        # The fit tasks write where `run` wrote.
        listed = run([ba, "tasks", cfg, "--stage", "fit"]).stdout.splitlines()
        outputs = sorted(line.split("\t")[2] for line in listed)
        assert outputs == sorted(f"{os.path.realpath(out)}/scores/{s}/layer-{l}.h5"
                                 for s in ("sub-01", "sub-02") for l in (1, 2)), outputs
        # A second run with another rank count gives the same numbers.
        run([*mpiexec, "-n", "1", ba, "run", cfg, "--quiet"])
        for subject, before in first_run.items():
            with open(f"{out}/tables/{subject}-layer-2.csv") as f:
                again = np.array([float(r["mean_r"]) for r in csv.DictReader(f)])
            assert np.abs(again - before).max() < 1e-5, (subject, again, before)
        # Bad configurations.
        bad = {
            "unknown key": ("[study]\noutput = o\nbogus = 1\n", "study.ini:3: unknown key 'bogus' in section [study]"),
            "two sources": ("[study]\noutput = o\n[synth]\nstories = 2\n[features]\npath = f.h5\n[fit]\nlayers = 1\n", "exactly one source"),
            "bad delays": ("[study]\noutput = o\n[alignment]\ndelays = x\n", "study.ini:4: [alignment] delays"),
            "no layers": ("[study]\noutput = o\n[synth]\nstories = 2\n", "[fit] layers is required"),
            "missing file": (None, "cannot"),
        }
        for name, (text, expected) in bad.items():
            path = os.path.join(tmp, "bad", "study.ini")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if text is None:
                path = os.path.join(tmp, "nope.ini")
            else:
                with open(path, "w") as f:
                    f.write(text)
            proc = run([*mpiexec, "-n", "2", ba, "run", path], ok=False)
            print(f"{name}: exit {proc.returncode}: {proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else ''}")
            assert proc.returncode != 0 and expected in proc.stderr, (name, proc.stderr)
    print("run: passed")


if __name__ == "__main__":
    main()
