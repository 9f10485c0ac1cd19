#!/usr/bin/env python3
"""End-to-end test of `brainalign fit --solver petsc` through the command line.

usage: fit_petsc_cli.py BRAINALIGN MPIEXEC... -- CASE
CASE is one of:
  agree     --solver petsc (CG, and LSQR given after --petsc or with a single
            dash) matches --solver scalapack: |dr| < 1e-4, the same alphas for
            nearly all voxels; the solver and its options are recorded;
            -log_view prints PETSc's performance summary
  options   bad PETSc options and solver names: clear message, non-zero exit,
            no scores.h5 left; --help documents the pass-through

Runs with Debian's python3 (numpy, h5py); used only as a test harness.
"""
import json
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np


def run(cmd, expect_ok=True):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if expect_ok and proc.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def make_data(path, n=150, p=240, v=20, seed=3):
    rng = np.random.default_rng(seed)
    factors = rng.standard_normal((n, 4)) @ rng.standard_normal((4, p))
    x = rng.standard_normal((n, p)) + 0.7 * factors
    w = rng.standard_normal((p, v))
    snr = 0.05 + 1.5 * np.arange(v) / v
    y = snr * (x @ w) / np.sqrt(p) / 3 + rng.standard_normal((n, v)) + 2
    with h5py.File(path, "w") as f:
        f["X"] = x.astype(np.float32)
        f["Y"] = y.astype(np.float32)


def fit(ba, mpiexec, tmp, out, *extra, np_=2, expect_ok=True):
    data = f"{tmp}/xy.h5"
    return run([*mpiexec, "-n", str(np_), ba, "fit", "--x", f"{data}:/X", "--y", f"{data}:/Y",
                "--out", out, "--quiet", "--no-checkpoint", *extra], expect_ok)


def scores(path):
    with h5py.File(path) as f:
        return f["r_folds"][:], f["alpha"][:], json.loads(f.attrs["config"])


def case_agree(ba, mpiexec, tmp):
    make_data(f"{tmp}/xy.h5")
    fit(ba, mpiexec, tmp, f"{tmp}/dense.h5")
    r0, a0, c0 = scores(f"{tmp}/dense.h5")
    assert c0["solver"] == "scalapack"
    runs = {"cg": ["--solver", "petsc"],
            "lsqr (after --petsc)": ["--solver", "petsc", "--petsc", "-ksp_type", "lsqr",
                                     "-ksp_rtol", "1e-10"],
            "lsqr (single dash)": ["--solver", "petsc", "-ksp_type", "lsqr", "-ksp_rtol", "1e-10"],
            "cg, 1 rank": ["--solver", "petsc"]}
    for name, extra in runs.items():
        out = f"{tmp}/petsc.h5"
        fit(ba, mpiexec, tmp, out, *extra, np_=1 if "1 rank" in name else 2)
        r, a, c = scores(out)
        dr = np.abs(r - r0).max()
        same = np.mean(a == a0)
        print(f"{name}: max |dr| {dr:.2e}, alphas equal {same:.3f}, config solver "
              f"{c['solver']!r} options {c.get('solver_options')!r}")
        assert dr < 1e-4 and same >= 0.98, name
        assert c["solver"] == "petsc"
        if "lsqr" in name:
            assert c["solver_options"] == "-ksp_type lsqr -ksp_rtol 1e-10", c
    proc = fit(ba, mpiexec, tmp, f"{tmp}/logged.h5", "--solver", "petsc", "-log_view")
    assert "KSPSolve" in proc.stdout and "MatMult" in proc.stdout, proc.stdout[-2000:]
    print("-log_view: PETSc performance summary printed")


def expect_failure(ba, mpiexec, tmp, needle, *extra):
    out = f"{tmp}/bad.h5"
    proc = fit(ba, mpiexec, tmp, out, *extra, expect_ok=False)
    print(f"{' '.join(extra)} -> exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
    assert proc.returncode != 0, extra
    assert needle in proc.stderr, (needle, proc.stderr)
    assert not os.path.exists(out), "a failed run left scores behind"


def case_options(ba, mpiexec, tmp):
    make_data(f"{tmp}/xy.h5", n=60, p=80, v=6)
    expect_failure(ba, mpiexec, tmp, "nosuch", "--solver", "petsc", "-ksp_type", "nosuch")
    expect_failure(ba, mpiexec, tmp, "-ksp_rtoll", "--solver", "petsc", "--petsc", "-ksp_rtoll", "1e-3")
    expect_failure(ba, mpiexec, tmp, "did not converge", "--solver", "petsc", "-ksp_max_it", "1")
    expect_failure(ba, mpiexec, tmp, "need --solver petsc", "-ksp_type", "lsqr")
    expect_failure(ba, mpiexec, tmp, "--solver is scalapack or petsc", "--solver", "magic")
    helptext = run([ba, "fit", "--help"]).stdout
    for needle in ("--solver scalapack|petsc", "--petsc OPTIONS", "-ksp_type lsqr", "-log_view"):
        assert needle in helptext, needle


def main():
    argv = sys.argv[1:]
    sep = argv.index("--")
    ba, mpiexec, case = argv[0], argv[1:sep], argv[sep + 1]
    with tempfile.TemporaryDirectory() as tmp:
        {"agree": case_agree, "options": case_options}[case](ba, mpiexec, tmp)
    print("ok")


if __name__ == "__main__":
    main()
