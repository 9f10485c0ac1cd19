#!/usr/bin/env python3
"""Outputs at the edges (issue 15): `maps` and `compare` create their output folders
(and leave none behind on failure); `compare` says when the subjects are too few for
the sign-flip p-value to reach the significance level (its floor 2/2^S).

usage: edges_outputs.py BRAINALIGN CASE      CASE: folders | p_floor
"""
import os
import subprocess
import sys
import tempfile

import h5py
import nibabel as nib
import numpy as np

BA = None
RNG = np.random.default_rng(9)
V = 40


def run(args, expect_ok=True):
    proc = subprocess.run([BA, *args], capture_output=True, text=True, timeout=300)
    if expect_ok and proc.returncode != 0:
        sys.exit(f"FAILED: {args}\n{proc.stdout}\n{proc.stderr}")
    return proc


def make_study(tmp, n_subjects, effect):
    """Scores of n_subjects under baseline and 'associations' (+effect everywhere) and a
    two-region atlas; returns the --scores arguments and the atlas path."""
    atlas = f"{tmp}/atlas.h5"
    with h5py.File(atlas, "w") as f:
        f["labels"] = np.repeat(np.arange(2, dtype=np.int32), V // 2)
        f["names"] = np.array([b"lh.a", b"lh.b"], dtype="S8")
    args = []
    for s in range(n_subjects):
        base = RNG.uniform(0.05, 0.3, V).astype(np.float32)
        for cond, r in (("baseline", base), ("associations", base + effect + RNG.normal(0, 0.002, V))):
            path = f"{tmp}/{cond}-sub{s}.h5"
            with h5py.File(path, "w") as f:
                f["r"] = np.asarray(r, np.float32)
            args += ["--scores", f"{cond}:sub-{s:02d}:toy={path}"]
    return args, atlas


def case_folders(tmp):
    # compare --out into a folder that does not exist yet.
    args, atlas = make_study(tmp, 6, 0.05)
    out = f"{tmp}/results/compare/assoc"
    run(["compare", *args, "--atlas", atlas, "--out", out, "--bootstrap", "200", "--quiet"])
    for ext in (".csv", ".md", ".h5"):
        assert os.path.exists(out + ext), out + ext
    print("ok: compare created results/compare/")
    # A failing compare leaves no folder behind.
    with h5py.File(f"{tmp}/bad.h5", "w") as f:
        f["r"] = np.full(V, 3.0, np.float32)
    bad_out = f"{tmp}/never/made/x"
    proc = run(["compare", "--scores", f"baseline:sub-01={tmp}/bad.h5", "--scores",
                f"associations:sub-01={tmp}/bad.h5", "--atlas", atlas, "--out", bad_out],
               expect_ok=False)
    assert proc.returncode != 0
    assert not os.path.exists(f"{tmp}/never/made"), "left an empty folder"
    # maps --out into a folder that does not exist (prefix and folder forms).
    mask = np.zeros((4, 5, 3), np.int32)
    mask.reshape(-1)[:V] = 1
    bold = f"{tmp}/bold.h5"
    with h5py.File(bold, "w") as f:
        f["mask"] = mask
        f["affine"] = np.diag([2.0, 2.0, 2.0, 1.0])
    r = RNG.uniform(-0.1, 0.4, V).astype(np.float32)
    with h5py.File(f"{tmp}/scores.h5", "w") as f:
        f["r"] = r
    run(["maps", "--scores", f"{tmp}/scores.h5", "--bold", bold, "--out", f"{tmp}/maps/sub-01",
         "--quiet"])
    vol = np.asarray(nib.load(f"{tmp}/maps/sub-01_r.nii.gz").dataobj)
    np.testing.assert_array_equal(vol[mask != 0], r)
    run(["maps", "--scores", f"{tmp}/scores.h5", "--bold", bold, "--out", f"{tmp}/maps2/deep/",
         "--quiet"])
    assert os.path.exists(f"{tmp}/maps2/deep/r.nii.gz")
    print("ok: maps created maps/ and maps2/deep/")
    proc = run(["maps", "--scores", f"{tmp}/scores.h5", "--bold", bold, "--dataset", "missing",
                "--out", f"{tmp}/maps3/x"], expect_ok=False)
    assert proc.returncode != 0 and "missing" in proc.stderr, proc.stderr
    assert not os.path.exists(f"{tmp}/maps3"), "left an empty folder"
    # A path through a file: the message names the folder.
    open(f"{tmp}/plain", "w").close()
    proc = run(["maps", "--scores", f"{tmp}/scores.h5", "--bold", bold, "--out",
                f"{tmp}/plain/x"], expect_ok=False)
    assert proc.returncode != 0 and f"{tmp}/plain" in proc.stderr, proc.stderr
    print("ok: failures leave no folder; a file in the way is named")


def case_p_floor(tmp):
    for S, expect_note in ((3, True), (5, True), (6, False)):
        sub = f"{tmp}/S{S}"
        os.makedirs(sub)
        args, atlas = make_study(sub, S, 0.08)   # a large, consistent effect
        out = f"{sub}/cmp"
        proc = run(["compare", *args, "--atlas", atlas, "--out", out, "--bootstrap", "200"])
        floor = 2.0 / 2 ** S
        with open(out + ".csv") as fp:
            header = fp.readline().strip().split(",")
            rows = [dict(zip(header, line.strip().split(","))) for line in fp]
        ps = [float(x["p"]) for x in rows if x["condition"] == "associations"]
        assert all(abs(p - floor) < 1e-12 for p in ps), (S, ps)   # the exact test's floor
        with h5py.File(out + ".h5") as f:
            note = f.attrs["note"]
            note = note.decode() if isinstance(note, bytes) else note
        md = open(out + ".md").read()
        if expect_note:
            assert f"{S} subjects" in proc.stderr and f"{floor:.4g}" in proc.stderr, proc.stderr
            assert "0.05" in proc.stderr, proc.stderr
            assert f"{S} subjects" in note and "Note" in md, (note, md[:400])
        else:
            assert "note" not in proc.stderr and note == "", (proc.stderr, note)
        print(f"ok: S = {S}: p = {ps[0]:.4g} = 2/2^S, note {'given' if expect_note else 'absent'}")


def case_excluded(tmp):
    """Voxels `fit` left out (r = NaN, /excluded) are skipped by compare's region means."""
    args, atlas = make_study(tmp, 6, 0.03)
    wall = [0, 1, 25]
    r = {}
    for a in args[1::2]:
        spec, path = a.split("=", 1)
        with h5py.File(path, "a") as f:
            x = f["r"][:]
            x[wall] = np.nan
            f["r"][...] = x
            f["excluded"] = np.array(wall, np.int64)
        cond, sub, _ = spec.split(":")
        r[(cond, sub)] = x
    out = f"{tmp}/cmp"
    run(["compare", *args, "--atlas", atlas, "--out", out, "--bootstrap", "200", "--quiet"])
    with open(out + ".csv") as fp:
        header = fp.readline().strip().split(",")
        rows = [dict(zip(header, line.strip().split(","))) for line in fp]
    labels = np.repeat(np.arange(2), V // 2)
    subs = sorted({s for _, s in r})
    for g, name in enumerate(("lh.a", "lh.b")):
        want = np.mean([np.nanmean(r[("associations", s)][labels == g]) -
                        np.nanmean(r[("baseline", s)][labels == g]) for s in subs])
        row = [x for x in rows if x["condition"] == "associations" and x["region"] == name][0]
        assert abs(float(row["delta_r"]) - want) < 1e-6, (name, row["delta_r"], want)
        assert np.isfinite(float(row["p"])), row
    with h5py.File(out + ".h5") as f:
        dr = [f[k] for k in f if isinstance(f[k], h5py.Group) and k != "regions"][0]
        d = dr["associations/delta_r"][:]
    assert np.all(np.isnan(d[wall])) and np.all(np.isfinite(np.delete(d, wall)))
    # One subject: the voxel bootstrap over the kept voxels.
    one = [a for a in args if "sub-00" in a]
    single = []
    for a in one:
        single += ["--scores", a]
    run(["compare", *single, "--atlas", atlas, "--out", f"{tmp}/one", "--bootstrap", "200",
         "--quiet"])
    print("ok: NaN (excluded) voxels skipped by compare's region means, tests and maps")


CASES = {"folders": case_folders, "p_floor": case_p_floor, "excluded": case_excluded}


def main():
    global BA
    if len(sys.argv) != 3 or sys.argv[2] not in CASES:
        sys.exit(__doc__)
    BA = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix=f"ba-edges-{sys.argv[2]}-") as tmp:
        CASES[sys.argv[2]](tmp)
    print(f"{sys.argv[2]}: all checks passed")


if __name__ == "__main__":
    main()
