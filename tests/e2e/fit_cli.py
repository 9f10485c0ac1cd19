#!/usr/bin/env python3
"""End-to-end tests of `brainalign synth` + `brainalign fit` through the CLI.

usage: fit_cli.py BRAINALIGN MPIEXEC... -- CASE
CASE is one of:
  invariance    the same scores.h5 with 1, 2, 3 and 4 ranks, any fold-group split and
                1 or 2 BLAS threads per rank (same alphas, |dr| < 1e-5)
  ground-truth  fitted r matches the planted achievable r; regions ordered as planted
  bad-input     every bad input: clear message, non-zero exit, no scores.h5 left

Runs with Debian's python3 (numpy, h5py); used only as a test harness/oracle.
"""
import glob
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np


def run(cmd, expect_ok=True, env=None):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if expect_ok and proc.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def synth(ba, out, *extra):
    run([ba, "synth", "--out", out, "--quiet", *extra])


def fit(ba, mpiexec, np_, args, expect_ok=True, threads=1):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads))
    return run([*mpiexec, "-n", str(np_), ba, "fit", "--quiet", *args], expect_ok, env)


def case_invariance(ba, mpiexec, tmp):
    synth(ba, tmp, "--stories", "3", "--words", "900", "--voxels", "257", "--d-model", "24")
    common = ["--features", f"{tmp}/features.h5", "--bold", f"{tmp}/bold-sub-01.h5",
              "--layer", "2", "--atlas", f"{tmp}/atlas.h5", "--voxel-block", "50"]
    # (ranks, fold groups, BLAS threads per rank)
    layouts = [(1, 1, 1), (1, 1, 2), (2, 1, 1), (2, 2, 1), (4, 1, 1), (4, 2, 1), (3, 1, 1)]
    results = {}
    for np_, groups, threads in layouts:
        out = f"{tmp}/scores-{np_}-{groups}-{threads}.h5"
        fit(ba, mpiexec, np_, common + ["--fold-groups", str(groups), "--out", out],
            threads=threads)
        with h5py.File(out) as f:
            results[(np_, groups, threads)] = {k: f[k][:] for k in ("r", "r_folds", "alpha", "roi/mean_r")}
    base = results[(1, 1, 1)]
    assert base["r_folds"].shape == (5, 257) and base["alpha"].shape == (5, 257)
    assert np.allclose(base["r"], base["r_folds"].mean(axis=0), atol=1e-6)
    for layout, res in results.items():
        dr = np.abs(res["r"] - base["r"]).max()
        drf = np.abs(res["r_folds"] - base["r_folds"]).max()
        same_alpha = np.mean(res['alpha'] == base['alpha'])
        print(f"ranks={layout[0]} fold_groups={layout[1]} threads={layout[2]}: max |dr| = {dr:.2e}, "
              f"max |dr_fold| = {drf:.2e}, alphas equal: {same_alpha:.4f}")
        assert dr < 1e-5 and drf < 1e-5, f"{layout}: results depend on the layout"
        assert same_alpha == 1.0, f"{layout}: alphas depend on the layout"


def case_ground_truth(ba, mpiexec, tmp):
    synth(ba, tmp, "--stories", "6", "--words", "1500", "--voxels", "600", "--d-model", "8",
          "--subjects", "1")
    out = f"{tmp}/scores.h5"
    proc = fit(ba, mpiexec, 2, ["--features", f"{tmp}/features.h5", "--bold",
                                f"{tmp}/bold-sub-01.h5", "--layer", "2", "--atlas",
                                f"{tmp}/atlas.h5", "--out", out])
    print(proc.stdout)
    with h5py.File(out) as s, h5py.File(f"{tmp}/bold-sub-01.h5") as b, \
            h5py.File(f"{tmp}/atlas.h5") as a:
        r, r_folds = s["r"][:], s["r_folds"][:]
        truth = b["truth/r_kfold5"][:]
        labels = a["labels"][:]
        roi_mean = s["roi/mean_r"][:]
    # Sampling error of each voxel's r: the spread of its fold estimates.
    se = r_folds.std(axis=0, ddof=1) / np.sqrt(r_folds.shape[0])
    z = (r - truth) / se
    # Ridge fitted out of sample can only lose against a perfect model, by
    # the estimation error of 40 weights from ~1800 TRs (about 0.01-0.03).
    print(f"median z = {np.median(z):.2f}, |r - truth| mean {np.abs(r - truth).mean():.4f}")
    assert np.mean(np.abs(z) < 3) > 0.95, "fitted r outside 3 sampling errors of the truth"
    assert np.abs(r - truth).mean() < 0.03
    for g in range(labels.max() + 1):
        m = labels == g
        print(f"region {g}: fitted {r[m].mean():.4f} planted {truth[m].mean():.4f}")
        assert abs(r[m].mean() - truth[m].mean()) < 0.03
    assert np.all(np.diff(roi_mean) > 0), f"region ordering not recovered: {roi_mean}"
    # A layer other than the planted one scores lower.
    other = f"{tmp}/scores-layer0.h5"
    fit(ba, mpiexec, 2, ["--features", f"{tmp}/features.h5", "--bold", f"{tmp}/bold-sub-01.h5",
                         "--layer", "0", "--out", other])
    with h5py.File(other) as s:
        assert s["r"][:].mean() < r.mean() - 0.01, "the planted layer is not the best"


def write_matrix(path, **datasets):
    with h5py.File(path, "w") as f:
        for name, value in datasets.items():
            f[name] = value


def case_bad_input(ba, mpiexec, tmp):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 8)).astype(np.float32)
    y = (x @ rng.standard_normal((8, 5)) + rng.standard_normal((60, 5))).astype(np.float32)
    good = f"{tmp}/good.h5"
    write_matrix(good, X=x, Y=y)
    y_nan = y.copy(); y_nan[7, 2] = np.nan
    x_inf = x.copy(); x_inf[3, 1] = np.inf
    y_const = y.copy(); y_const[:, 4] = 1.5
    write_matrix(f"{tmp}/bad.h5", Y_nan=y_nan, X_inf=x_inf, Y_const=y_const, Y_short=y[:50],
                 X_1d=x[:, 0], Y_tiny=y[:3], X_tiny=x[:3])
    with open(f"{tmp}/text.h5", "w") as f:
        f.write("this is not HDF5\n")
    with open(f"{tmp}/truncated.h5", "wb") as f:
        f.write(open(good, "rb").read()[:700])
    synth(ba, f"{tmp}/syn", "--stories", "2", "--words", "300", "--voxels", "40", "--regions", "4")
    # BOLD shorter than the stimulus: cut one story's data.
    with h5py.File(f"{tmp}/syn/bold-sub-01.h5") as src, h5py.File(f"{tmp}/short-bold.h5", "w") as dst:
        dst.attrs["tr_s"] = src.attrs["tr_s"]
        for story in src["stories"]:
            data = src["stories"][story]["data"][:]
            dst[f"stories/{story}/data"] = data[: len(data) // 2]
    with h5py.File(f"{tmp}/wrong-atlas.h5", "w") as f:
        f["labels"] = np.zeros(39, dtype=np.int32)
        f["names"] = np.array([b"a"], dtype="S1")
    os.makedirs(f"{tmp}/readonly", exist_ok=True)
    feats = ["--features", f"{tmp}/syn/features.h5", "--layer", "1"]
    cases = [
        ("missing file", ["--x", f"{tmp}/nope.h5:/X", "--y", f"{good}:/Y"], "no such file"),
        ("missing dataset", ["--x", f"{good}:/Z", "--y", f"{good}:/Y"], "/Z: no such dataset"),
        ("not HDF5", ["--x", f"{tmp}/text.h5:/X", "--y", f"{good}:/Y"], "not an HDF5 file"),
        ("wrong rank", ["--x", f"{tmp}/bad.h5:/X_1d", "--y", f"{good}:/Y"], "X_1d has 1 dimensions, expected 2"),
        ("truncated file", ["--x", f"{tmp}/truncated.h5:/X", "--y", f"{good}:/Y"], "truncated"),
        ("row mismatch", ["--x", f"{good}:/X", "--y", f"{tmp}/bad.h5:/Y_short"], "has 60 rows but"),
        ("NaN in Y", ["--x", f"{good}:/X", "--y", f"{tmp}/bad.h5:/Y_nan"], "sample 7 of voxel 2 is NaN"),
        ("Inf in X", ["--x", f"{tmp}/bad.h5:/X_inf", "--y", f"{good}:/Y"], "bad.h5:/X_inf: X: sample 3, feature 1 is infinite"),
        ("constant voxel", ["--x", f"{good}:/X", "--y", f"{tmp}/bad.h5:/Y_const", "--strict-voxels"], "voxel 4 is constant"),
        ("fewer samples than folds", ["--x", f"{tmp}/bad.h5:/X_tiny", "--y", f"{tmp}/bad.h5:/Y_tiny"], "cannot make 5 folds"),
        ("unwritable output", ["--x", f"{good}:/X", "--y", f"{good}:/Y", "--out", "/proc/brainalign/scores.h5"], "cannot write in /proc/brainalign"),  # before the fit (outfile.h)
        ("TR count mismatch", feats + ["--bold", f"{tmp}/short-bold.h5"], "the words need"),
        ("atlas of the wrong size", feats + ["--bold", f"{tmp}/syn/bold-sub-01.h5", "--atlas", f"{tmp}/wrong-atlas.h5"], "has 39 voxels, the BOLD has 40"),
        ("unknown layer", ["--features", f"{tmp}/syn/features.h5", "--layer", "9", "--bold", f"{tmp}/syn/bold-sub-01.h5"], "layer 9 was not extracted"),
        # a long --layer value is read whole, never cut at a fixed buffer
        # (300 zeros then 9 is layer 9, not layer 0)
        ("long layer list", ["--features", f"{tmp}/syn/features.h5", "--layer", "0" * 300 + "9", "--bold", f"{tmp}/syn/bold-sub-01.h5"], "layer 9 was not extracted"),
        ("bad alphas", ["--x", f"{good}:/X", "--y", f"{good}:/Y", "--alphas", "logspace:1"], "logspace"),
        ("unknown option", ["--x", f"{good}:/X", "--bogus"], "unknown option '--bogus'"),
        ("fold groups", ["--x", f"{good}:/X", "--y", f"{good}:/Y", "--fold-groups", "3"], "--fold-groups 3"),
        ("negative tie tolerance", ["--x", f"{good}:/X", "--y", f"{good}:/Y", "--tie-tolerance", "-1"], "--tie-tolerance -1 must be a finite number >= 0"),
    ]
    failures = []
    for name, args, expected in cases:
        out = f"{tmp}/out-{name.replace(' ', '_')}.h5"
        if "--out" not in args:
            args = args + ["--out", out]
        proc = fit(ba, mpiexec, 2, args, expect_ok=False)
        message = proc.stderr
        ok = proc.returncode != 0 and expected in message and not os.path.exists(out)
        leftovers = glob.glob(f"{tmp}/.*partial*")
        ok = ok and not leftovers
        print(f"{'ok  ' if ok else 'FAIL'} {name}: exit {proc.returncode}: "
              f"{message.strip().splitlines()[0] if message.strip() else '(no message)'}")
        if not ok:
            failures.append(f"{name}: wanted '{expected}', exit {proc.returncode}, "
                            f"stderr {message!r}, leftovers {leftovers}")
        # One clear message, printed once (by rank 0), not once per rank.
        if message.count("brainalign fit: error") != 1:
            failures.append(f"{name}: the error is printed {message.count('brainalign fit: error')} times")
    assert not failures, "\n".join(failures)


def main():
    argv = sys.argv[1:]
    sep = argv.index("--")
    ba, mpiexec, case = argv[0], argv[1:sep], argv[sep + 1]
    with tempfile.TemporaryDirectory() as tmp:
        {"invariance": case_invariance, "ground-truth": case_ground_truth,
         "bad-input": case_bad_input}[case](ba, mpiexec, tmp)
    print(f"{case}: passed")


if __name__ == "__main__":
    main()
