#!/usr/bin/env python3
"""End-to-end test of associative memory: synth -> run (conditions) -> compare.

usage: associations_cli.py BRAINALIGN DATA_DIR MPIEXEC...

A synthetic study on real Narratives timings with an association effect
planted in regions 0 and 2 (`[synth] associations = 0,2`, 8 subjects) goes
through `brainalign run` under 2 ranks: baseline, "associations" (the
augmented features) and "random" (a perturbation of the same size that the
BOLD does not depend on). The comparison must find

  * a significant Δr > 0 (q <= 0.05, paired sign-flip test across the 8
    subjects, Benjamini-Hochberg across regions) in both planted regions;
  * no significant Δr > 0 in any other region;
  * no significant Δr > 0 for the random control anywhere;

and the same with one subject (voxel bootstrap). Its numbers are checked
against numpy from the scores files (per-voxel Δr, region means), the
study directory is re-read by `brainalign compare --study`, Δr volume maps
are written through a bold.h5 that records a mask (checked with nibabel),
and per hemisphere through one that records a surface (GIfTI), figures
are made with tools/plot_compare.py, and bad inputs fail with a
message naming the file and leave no output. The synthetic association set
must also be accepted by `brainalign augment` on the real stories.
"""
import csv
import glob
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

CONFIG = """
; written by tests/e2e/associations_cli.py
[study]
name = associations e2e
output = out

[synth]
stimuli = {stimuli}
stories = 3
subjects = 8
voxels = 300
regions = 5
d_model = 12
layers = 3
planted_layer = 2
seed = 5
associations = 0,2

[fit]
layers = 2

[alignment]
delays = 1..5

[compare]
permutations = 100000
bootstrap = 4000
seed = 3
"""

PLANTED = {0, 2}


def run(cmd, ok=True, env=None):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, OPENBLAS_NUM_THREADS="1", **(env or {})))
    if ok and proc.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return proc


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def check_findings(rows, names, label):
    """Planted regions significant and positive, nothing else positive and significant."""
    for row in rows:
        if row["condition"] == "baseline":
            continue
        g = names.index(row["region"])
        delta, sig = float(row["delta_r"]), row["significant"] == "yes"
        line = f"{label}: {row['condition']:<12} {row['region']:<24} Δr {delta:+.4f} q {float(row['q']):.3g}"
        print(line)
        if row["condition"] == "associations" and g in PLANTED:
            assert sig and delta > 0 and float(row["ci_low"]) > 0, "planted effect missed: " + line
        else:
            assert not (sig and delta > 0), "false positive: " + line


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
        subjects = [f"sub-{s:02d}" for s in range(1, 9)]
        conditions = ["baseline", "associations", "random"]
        for c in conditions:
            for s in subjects:
                assert os.path.exists(f"{out}/scores/{c}/{s}/layer-2.h5"), (c, s)
                assert os.path.exists(f"{out}/tables/{c}-{s}-layer-2.csv"), (c, s)
        with h5py.File(f"{out}/synth/atlas.h5") as a:
            labels = a["labels"][:]
            names = [n.decode() if isinstance(n, bytes) else n for n in a["names"][:]]
        with h5py.File(f"{out}/synth/bold-sub-01.h5") as b:
            assert set(b["truth"].attrs["association_regions"]) == PLANTED
        for c, expected in (("associations", "associations"), ("random", "random")):
            with h5py.File(f"{out}/synth/features-{c}.h5") as f:
                got = f.attrs["condition"]
                assert (got.decode() if isinstance(got, bytes) else got) == expected

        # The findings, 8 subjects.
        rows = read_csv(f"{out}/compare.csv")
        assert {r["model"] for r in rows} == {"synthetic layer 2"}, {r["model"] for r in rows}
        assert all(r["test"] == "sign-flip exact" for r in rows if r["condition"] != "baseline")
        check_findings(rows, names, "8 subjects")

        # Numbers against numpy, from the scores files.
        r = {(c, s): h5py.File(f"{out}/scores/{c}/{s}/layer-2.h5")["r"][:].astype(np.float64)
             for c in conditions for s in subjects}
        with h5py.File(f"{out}/compare.h5") as h:
            for c in ("associations", "random"):
                want = np.mean([r[(c, s)] - r[("baseline", s)] for s in subjects], axis=0)
                got = h[f"synthetic_layer_2/{c}/delta_r"][:]
                assert np.abs(got - want).max() < 1e-6, c
                roi = h[f"synthetic_layer_2/{c}/roi/delta_r"][:]
                for g in range(len(names)):
                    m = labels == g
                    d = np.mean([r[(c, s)][m].mean() - r[("baseline", s)][m].mean() for s in subjects])
                    assert abs(roi[g] - d) < 1e-9, (c, g, roi[g], d)
                    row = [x for x in rows if x["condition"] == c and x["region"] == names[g]][0]
                    assert abs(float(row["delta_r"]) - d) < 1e-9

        # The study directory read back by `compare --study` gives the same table.
        again = os.path.join(tmp, "again")
        run([ba, "compare", "--study", out, "--layer", "2", "--out", again, "--permutations",
             "100000", "--bootstrap", "4000", "--seed", "3", "--quiet"])
        rows_again = read_csv(again + ".csv")
        assert [(x["condition"], x["region"], x["delta_r"], x["p"], x["q"], x["ci_low"])
                for x in rows_again] == [(x["condition"], x["region"], x["delta_r"], x["p"],
                                          x["q"], x["ci_low"]) for x in rows]

        # One subject: the voxel bootstrap.
        single = os.path.join(tmp, "single")
        args = [ba, "compare", "--out", single, "--bootstrap", "4000", "--quiet"]
        for c in conditions:
            args += ["--scores", f"{c}:sub-01={out}/scores/{c}/sub-01/layer-2.h5"]
        run(args)
        rows1 = read_csv(single + ".csv")
        assert all(x["test"] == "voxel bootstrap" for x in rows1 if x["condition"] != "baseline")
        check_findings(rows1, names, "1 subject")

        # Δr maps through a bold.h5 that records a volume mask (300 voxels).
        bold = os.path.join(tmp, "space.h5")
        mask = np.zeros((6, 10, 7), np.int32)
        mask.reshape(-1)[np.sort(np.random.default_rng(0).choice(mask.size, 300, replace=False))] = 1
        with h5py.File(bold, "w") as f:
            f["mask"] = mask
            f["affine"] = np.diag([2.0, 2.0, 2.0, 1.0])
        mapped = os.path.join(tmp, "mapped")
        proc = run([ba, "compare", "--study", out, "--out", mapped, "--bold", bold,
                    "--bootstrap", "1000", "--plot"])
        print(proc.stdout, proc.stderr)
        import nibabel as nib
        with h5py.File(mapped + ".h5") as h:
            for c in ("associations", "random"):
                path = f"{mapped}_synthetic_layer_2_{c}_delta_r.nii.gz"
                vol = np.asarray(nib.load(path).dataobj)
                assert np.allclose(vol[mask != 0], h[f"synthetic_layer_2/{c}/delta_r"][:], atol=1e-7)
                assert np.all(vol[mask == 0] == 0)
        # ... and per hemisphere through one that records a surface (120 + 180 vertices).
        surface = os.path.join(tmp, "surface.h5")
        with h5py.File(surface, "w") as f:
            f["surface/n_vertices_lh"] = np.array([120], np.int64)
            f["surface/n_vertices_rh"] = np.array([180], np.int64)
        onsurf = os.path.join(tmp, "onsurf")
        run([ba, "compare", "--study", out, "--out", onsurf, "--bold", surface, "--bootstrap", "500",
             "--quiet"])
        with h5py.File(onsurf + ".h5") as h:
            want = h["synthetic_layer_2/associations/delta_r"][:]
        lh = nib.load(f"{onsurf}_synthetic_layer_2_associations_delta_r.lh.func.gii").darrays[0].data
        rh = nib.load(f"{onsurf}_synthetic_layer_2_associations_delta_r.rh.func.gii").darrays[0].data
        assert np.allclose(np.concatenate([lh, rh]), want, atol=1e-7)
        try:
            import matplotlib  # noqa: F401
            pngs = sorted(glob.glob(mapped + "*.png"))
            print("figures:", [os.path.basename(p) for p in pngs])
            assert f"{mapped}_synthetic_layer_2_regions.png" in pngs
            assert len(pngs) == 3, pngs  # regions + two Δr mosaics
        except ImportError:
            assert "python3 tools/plot_compare.py" in proc.stderr

        # The synthetic association set fits the real stories.
        proc = run([ba, "augment", "--stimuli", stimuli, "--associations",
                    f"{out}/synth/associations.jsonl", "--story", "21styear"])
        assert "[[" in proc.stdout and "associations inserted" in proc.stdout

        # Bad inputs: a clear message naming the file, and no output.
        bad = os.path.join(tmp, "bad")
        base = [f"--scores=baseline:{s}={out}/scores/baseline/{s}/layer-2.h5" for s in subjects[:3]]
        cases = {
            "missing subject": (base + [f"--scores=associations:{s}={out}/scores/associations/{s}/layer-2.h5"
                                        for s in subjects[:2]],
                                "condition 'associations' has no scores for subject 'sub-03'"),
            "no baseline": ([f"--scores=human:{s}={out}/scores/associations/{s}/layer-2.h5" for s in subjects[:2]],
                            "no scores of the baseline condition 'baseline'"),
            "missing file": (base + ["--scores=associations:sub-01=/nonexistent/x.h5"], "/nonexistent/x.h5"),
            "other atlas": (base + [f"--scores=random:{s}={out}/scores/random/{s}/layer-2.h5" for s in subjects[:3]]
                            + ["--atlas", bold], bold),
        }
        for name, (extra, expected) in cases.items():
            proc = run([ba, "compare", "--out", bad, *extra], ok=False)
            msg = proc.stderr.strip()
            print(f"{name}: exit {proc.returncode}: {msg}")
            assert proc.returncode != 0 and expected in msg, (name, msg)
            assert not glob.glob(bad + "*"), glob.glob(bad + "*")
        # A configuration whose association set needs a model.
        with open(os.path.join(tmp, "bad.ini"), "w") as f:
            f.write(CONFIG.format(stimuli=stimuli).replace("associations = 0,2", "")
                    + "\n[conditions]\nhuman = human.jsonl\n")
        proc = run([ba, "run", os.path.join(tmp, "bad.ini")], ok=False)
        assert proc.returncode != 0 and "an association set needs [model]" in proc.stderr, proc.stderr
    print("associations: passed")


if __name__ == "__main__":
    main()
