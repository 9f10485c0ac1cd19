#!/usr/bin/env python3
"""`fit` at the edges (issue 15): a story on one side only, NaN reported by story and TR.

usage: edges_fit.py BRAINALIGN MPIEXEC... -- CASE     CASE: stories | nan
"""
import json
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

BA = MPIEXEC = None


def run(cmd, expect_ok=True):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    if expect_ok and proc.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return proc


def fit(np_, args, expect_ok=True):
    return run([*MPIEXEC, "-n", str(np_), BA, "fit", "--quiet", "--layer", "1", *args], expect_ok)


def must_fail(np_, args, parts, out):
    proc = fit(np_, args + ["--out", out], expect_ok=False)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    for p in parts:
        assert p in proc.stderr, f"message lacks {p!r}:\n{proc.stderr}"
    assert not os.path.exists(out)
    assert proc.stderr.count("brainalign fit: error") == 1, proc.stderr
    print("ok (rejected):", proc.stderr.strip().splitlines()[0])


def copy_bold(src, dst, drop=(), change=None):
    with h5py.File(src) as a, h5py.File(dst, "w") as b:
        for k, v in a.attrs.items():
            b.attrs[k] = v
        for s in a["stories"]:
            if s in drop:
                continue
            data = a[f"stories/{s}/data"][:]
            if change:
                change(s, data)
            b[f"stories/{s}/data"] = data


def synth(tmp):
    run([BA, "synth", "--out", tmp, "--quiet", "--stories", "3", "--words", "500", "--voxels",
         "30", "--d-model", "8"])
    return f"{tmp}/features.h5", f"{tmp}/bold-sub-01.h5"


def case_stories(tmp):
    feats, bold = synth(tmp)
    two = f"{tmp}/bold-two.h5"
    copy_bold(bold, two, drop=("story03",))
    # Features but no BOLD: an error today's code let pass silently.
    must_fail(1, ["--features", feats, "--bold", two], ["features but no BOLD", "story03",
                                                        "--stories"], f"{tmp}/a.h5")
    # --stories names the subset: the same scores from the full and the reduced BOLD.
    out_two, out_full = f"{tmp}/two.h5", f"{tmp}/full.h5"
    fit(1, ["--features", feats, "--bold", two, "--stories", "story01,story02", "--out", out_two])
    fit(2, ["--features", feats, "--bold", bold, "--stories", "story02,story01", "--out", out_full])
    with h5py.File(out_two) as a, h5py.File(out_full) as b:
        assert np.allclose(a["r"][:], b["r"][:], atol=1e-6)
        config = a.attrs["config"]
        config = json.loads(config.decode() if isinstance(config, bytes) else config)
    assert config.get("stories") == "story01,story02", config
    print("ok: --stories fits the subset (same r from either BOLD, any rank count)")
    # BOLD but no features; --stories naming a story absent from one side.
    extra = f"{tmp}/bold-extra.h5"
    copy_bold(bold, extra)
    with h5py.File(extra, "a") as f:
        f["stories/story99/data"] = f["stories/story01/data"][:]
    must_fail(2, ["--features", feats, "--bold", extra], ["BOLD but no features", "story99"],
              f"{tmp}/b.h5")
    must_fail(1, ["--features", feats, "--bold", two, "--stories", "story01,story03"],
              ["--stories", "story03", "bold-two.h5"], f"{tmp}/c.h5")
    must_fail(1, ["--features", feats, "--bold", extra, "--stories", "story99"],
              ["--stories", "story99", "features.h5"], f"{tmp}/d.h5")


def case_nan(tmp):
    feats, bold = synth(tmp)
    bad = f"{tmp}/bold-nan.h5"

    def poke(story, data):
        if story == "story02":
            data[5, 7] = np.nan
            data[9, 3] = np.inf
    copy_bold(bold, bad, change=poke)
    for np_ in (1, 2, 3):
        must_fail(np_, ["--features", feats, "--bold", bad],
                  ["bold-nan.h5", "story story02", "TR 5", "voxel 7", "NaN"], f"{tmp}/x.h5")


def drop_columns(src, dst, cols):
    with h5py.File(src) as a, h5py.File(dst, "w") as b:
        for k, v in a.attrs.items():
            b.attrs[k] = v
        for s in a["stories"]:
            b[f"stories/{s}/data"] = np.delete(a[f"stories/{s}/data"][:], cols, axis=1)


def case_constant(tmp):
    """A voxel constant over the samples (medial wall) is left out of the solve."""
    feats, bold = synth(tmp)
    wall = [3, 11, 29]
    flat = f"{tmp}/bold-wall.h5"

    def flatten(story, data):
        data[:, wall] = 0.0        # the medial wall: zero everywhere
    copy_bold(bold, flat, change=flatten)
    reduced = f"{tmp}/bold-reduced.h5"
    drop_columns(flat, reduced, wall)
    ref = f"{tmp}/ref.h5"
    fit(1, ["--features", feats, "--bold", reduced, "--out", ref])
    with h5py.File(ref) as f:
        ref_r, ref_alpha = f["r"][:], f["alpha"][:]
    with h5py.File(f"{tmp}/atlas.h5") as f:
        labels, n_regions = f["labels"][:], len(f["names"])
    keep = np.setdiff1d(np.arange(30), wall)
    for np_, groups in ((1, 1), (2, 1), (2, 2), (3, 1)):
        out = f"{tmp}/wall-{np_}-{groups}.h5"
        proc = fit(np_, ["--features", feats, "--bold", flat, "--atlas", f"{tmp}/atlas.h5",
                         "--fold-groups", str(groups), "--out", out])
        with h5py.File(out) as f:
            r, alpha, r_folds = f["r"][:], f["alpha"][:], f["r_folds"][:]
            excluded = f["excluded"][:]
            assert int(f.attrs["n_excluded"]) == len(wall)
            roi = f["roi/mean_r"][:]
            roi_n = f["roi/n_voxels"][:]
        assert list(excluded) == wall, excluded
        assert np.all(np.isnan(r[wall])) and np.all(np.isnan(alpha[:, wall]))
        assert np.all(np.isnan(r_folds[:, wall]))
        np.testing.assert_allclose(r[keep], ref_r, atol=2e-6)
        np.testing.assert_array_equal(alpha[:, keep], ref_alpha)
        for g in range(n_regions):
            m = (labels == g) & ~np.isin(np.arange(30), wall)
            assert roi_n[g] == m.sum(), (g, roi_n[g], m.sum())
            if m.sum():
                assert abs(roi[g] - r[m].mean()) < 1e-6, (g, roi[g], r[m].mean())
        print(f"ok: {np_} rank(s), {groups} fold group(s): voxels {wall} excluded (NaN), the "
              "others as a fit without them, region means over the kept voxels")
    must_fail(2, ["--features", feats, "--bold", flat, "--strict-voxels"], ["constant"],
              f"{tmp}/strict.h5")
    # NaN vertices (fMRIPrep --medial-surface-nan): an error, or left out with --nan-as-missing.
    nanb = f"{tmp}/bold-nanwall.h5"

    def nan_wall(story, data):
        data[:, wall] = 0.0
        data[:, 7] = np.nan
    copy_bold(bold, nanb, change=nan_wall)
    must_fail(1, ["--features", feats, "--bold", nanb], ["TR 0", "voxel 7", "NaN"], f"{tmp}/n.h5")
    out = f"{tmp}/nan-missing.h5"
    fit(2, ["--features", feats, "--bold", nanb, "--nan-as-missing", "--out", out])
    with h5py.File(out) as f:
        assert list(f["excluded"][:]) == sorted(wall + [7])
        assert np.isnan(f["r"][7])
    print("ok: --strict-voxels refuses; NaN voxels are an error, or excluded with --nan-as-missing")


CASES = {"stories": case_stories, "nan": case_nan, "constant": case_constant}


def main():
    global BA, MPIEXEC
    sep = sys.argv.index("--")
    BA, MPIEXEC, case = os.path.abspath(sys.argv[1]), sys.argv[2:sep], sys.argv[sep + 1]
    with tempfile.TemporaryDirectory(prefix=f"ba-edges-fit-{case}-") as tmp:
        CASES[case](tmp)
    print(f"{case}: all checks passed")


if __name__ == "__main__":
    main()
