#!/usr/bin/python3
"""Test oracle for `brainalign fit` in design-matrix mode (never used at run time).

usage:
  sklearn_fit_oracle.py --regime dual|primal --brainalign BIN --workdir DIR
                        [--n N --p P --v V --seed S] [--keep] -- MPIEXEC...

Generates X [n, p] and Y [n, v] (float32, seeded; see make_data) into
DIR/x.h5:/X and DIR/y.h5:/Y, runs

  MPIEXEC -n 2 BIN fit --x x.h5:/X --y y.h5:/Y --folds 5
                       --alphas logspace:-1:8:10 --out scores.h5 --quiet

and compares scores.h5 with an independent scikit-learn computation of the
same procedure (sklearn_reference): for each of the 5 contiguous folds of
KFold(5, shuffle=False), StandardScaler fitted on the training X, Y centred
with the training mean, RidgeCV(alphas=logspace(-1, 8, 10),
alpha_per_target=True, fit_intercept=False) in float64, Pearson r per voxel
on the test fold, mean over folds.

Passes when |Δr| < 1e-3 for at least 99.5 % of voxels, |Δ mean r| < 1e-4,
at least 90 % of the chosen alphas agree (a near-tie between two alphas may
flip in single precision), /r, /r_folds and /alpha have the right shapes
and /r is the mean of /r_folds.

The regimes (n is not a multiple of 5, so the folds have unequal sizes as
in KFold): dual is n=403, p=600 (n_train <= p in every fold, sklearn's
'eigen' GCV); primal is n=603, p=100 (n_train > p, sklearn's 'svd' GCV);
mixed is n=403, p=322, where folds 0-2 train on 322 samples (kernel form)
and folds 3-4 on 323 (feature form). --n/--p/--v override the sizes.

--scores FILE skips running brainalign and checks FILE instead (with
--workdir holding the x.h5/y.h5 of an earlier --keep run); it is how the
test was shown to fail on a perturbed result.
"""
import argparse
import os
import subprocess
import sys
import time

import h5py
import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold
from sklearn.preprocessing import StandardScaler

ALPHAS = np.logspace(-1, 8, 10)
N_FOLDS = 5
REGIMES = {"dual": (403, 600, 300), "primal": (603, 100, 300), "mixed": (403, 322, 200)}


def ar1(rng, n, k, rho):
    """k independent AR(1) series of length n with unit variance (slow drifts,
    like consecutive TRs)."""
    e = rng.standard_normal((n, k))
    out = np.empty((n, k))
    out[0] = e[0]
    s = np.sqrt(1 - rho * rho)
    for t in range(1, n):
        out[t] = rho * out[t - 1] + s * e[t]
    return out


def make_data(n, p, v, seed, voxel_chunk=4096):
    """X [n, p] and Y [n, v] float32 with language-model-like statistics.

    X: a few dozen temporally correlated latent factors with a decaying
    spectrum mixed into p correlated columns (low effective rank), small
    isotropic noise, non-zero column means, a handful of "outlier
    dimensions" with a much larger scale (as in transformer hidden states),
    and ~3 % heavy-tailed rows (scaled 3-20x; e.g. sentence starts).
    Y = X W + noise: W acts through a low-rank map, the SNR varies over
    five orders of magnitude between voxels (10 % are pure noise), the noise
    is autocorrelated, and every voxel has its own scale and a large
    baseline offset so that centring Y with the training mean matters.
    Y is produced in voxel chunks so large sizes fit in memory.
    """
    rng = np.random.default_rng(seed)
    rank = int(max(8, min(64, p // 10)))
    spectrum = 1.0 / (1.0 + np.arange(rank)) ** 1.2
    latent = ar1(rng, n, rank, 0.8) * spectrum
    x = latent @ rng.standard_normal((rank, p)) + 0.03 * rng.standard_normal((n, p))
    x *= np.exp(rng.normal(0.0, 0.5, p))            # column scales
    outliers = rng.choice(p, size=max(1, p // 200), replace=False)
    x[:, outliers] *= 30.0
    x += rng.normal(0.0, 2.0, p)                     # column means
    heavy = rng.random(n) < 0.03
    x[heavy] *= rng.uniform(3.0, 20.0, heavy.sum())[:, None]
    x = x.astype(np.float32)

    k = 16
    xa = x.astype(np.float64) @ (rng.standard_normal((p, k)) / np.sqrt(p))
    xa -= xa.mean(axis=0)
    xa /= xa.std(axis=0) + 1e-12
    y = np.empty((n, v), dtype=np.float32)
    for c0 in range(0, v, voxel_chunk):
        c1 = min(v, c0 + voxel_chunk)
        w = c1 - c0
        signal = xa @ rng.standard_normal((k, w))
        signal /= signal.std(axis=0) + 1e-12
        amplitude = 10.0 ** rng.uniform(-2.5, 0.5, w)
        amplitude[rng.random(w) < 0.10] = 0.0        # pure-noise voxels
        noise = ar1(rng, n, w, 0.3)
        scale = 10.0 ** rng.uniform(-1.0, 1.0, w)
        baseline = rng.uniform(50.0, 500.0, w)
        y[:, c0:c1] = ((amplitude * signal + noise) * scale + baseline).astype(np.float32)
    return x, y


def pearson_columns(a, b):
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    den = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    out = np.zeros(a.shape[1])
    ok = den > 0
    out[ok] = (a * b).sum(axis=0)[ok] / den[ok]
    return out


def sklearn_fold(x, y, train, test, alphas=ALPHAS):
    """One outer fold: returns (r per voxel, chosen alpha per voxel)."""
    scaler = StandardScaler().fit(x[train])          # ddof 0, like the C code
    xtr = scaler.transform(x[train])
    xte = scaler.transform(x[test])
    ymean = y[train].mean(axis=0)
    model = RidgeCV(alphas=alphas, alpha_per_target=True, fit_intercept=False)
    model.fit(xtr, y[train] - ymean)
    yhat = model.predict(xte)
    return pearson_columns(yhat, y[test] - ymean), np.atleast_1d(model.alpha_)


def sklearn_reference(x, y, n_folds=N_FOLDS, alphas=ALPHAS, folds=None):
    """r_folds [n_folds, v] and alpha [n_folds, v], float64 throughout.
    `folds` restricts the computation to those fold indices (others stay NaN)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    v = y.shape[1]
    r_folds = np.full((n_folds, v), np.nan)
    alpha = np.full((n_folds, v), np.nan)
    for k, (train, test) in enumerate(KFold(n_folds, shuffle=False).split(x)):
        if folds is not None and k not in folds:
            continue
        r_folds[k], alpha[k] = sklearn_fold(x, y, train, test, alphas)
    return r_folds, alpha


def write_inputs(workdir, x, y):
    with h5py.File(os.path.join(workdir, "x.h5"), "w") as f:
        f.create_dataset("X", data=x)
    with h5py.File(os.path.join(workdir, "y.h5"), "w") as f:
        f.create_dataset("Y", data=y)


def run_brainalign(mpiexec, binary, workdir, scores):
    cmd = list(mpiexec) + ["-n", "2", binary, "fit",
                           "--x", os.path.join(workdir, "x.h5") + ":/X",
                           "--y", os.path.join(workdir, "y.h5") + ":/Y",
                           "--folds", str(N_FOLDS), "--alphas", "logspace:-1:8:10",
                           "--out", scores, "--quiet"]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    print("$", " ".join(cmd), flush=True)
    t0 = time.time()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    print(proc.stdout, end="")
    print(proc.stderr, end="", file=sys.stderr)
    if proc.returncode != 0:
        sys.exit(f"FAIL: brainalign fit exited with {proc.returncode}")
    return time.time() - t0


def compare(scores, r_ref, a_ref):
    """Return a list of failure messages (empty when everything agrees)."""
    fails = []
    n_folds, v = r_ref.shape
    with h5py.File(scores, "r") as f:
        for name, shape in (("r", (v,)), ("r_folds", (n_folds, v)), ("alpha", (n_folds, v))):
            if name not in f:
                fails.append(f"{scores}: /{name} is missing")
            elif f[name].shape != shape:
                fails.append(f"{scores}: /{name} has shape {f[name].shape}, expected {shape}")
        if fails:
            return fails
        r = f["r"][...].astype(np.float64)
        r_folds = f["r_folds"][...].astype(np.float64)
        alpha = f["alpha"][...].astype(np.float64)

    mean_of_folds = r_folds.mean(axis=0)
    worst = np.abs(r - mean_of_folds).max()
    print(f"/r vs mean of /r_folds: max |diff| = {worst:.2e}")
    if worst > 1e-6:
        fails.append(f"/r is not the mean of /r_folds (max |diff| {worst:.2e} > 1e-6)")

    in_grid = np.isclose(alpha[..., None], ALPHAS, rtol=1e-6, atol=0).any(axis=-1)
    if not in_grid.all():
        fails.append(f"{(~in_grid).sum()} entries of /alpha are not in the grid")

    r_ref_mean = r_ref.mean(axis=0)
    d = np.abs(r - r_ref_mean)
    close = (d < 1e-3).mean()
    dmean = abs(r.mean() - r_ref_mean.mean())
    d_folds = np.abs(r_folds - r_ref)
    agree = np.isclose(alpha, a_ref, rtol=1e-4).mean()
    print(f"mean r: brainalign {r.mean():.6f}, sklearn {r_ref_mean.mean():.6f}, "
          f"|diff| {dmean:.2e}")
    print(f"|Δr| per voxel: median {np.median(d):.2e}, 99.5th pct {np.quantile(d, 0.995):.2e}, "
          f"max {d.max():.2e}; fraction < 1e-3: {close:.4f}")
    print(f"|Δr| per fold and voxel: max {d_folds.max():.2e}")
    print(f"chosen alphas agree for {agree:.4f} of (fold, voxel) pairs")
    counts = [int(np.isclose(a_ref, al, rtol=1e-6).sum()) for al in ALPHAS]
    print(f"  sklearn's choices over the grid {ALPHAS[0]:g}..{ALPHAS[-1]:g}: {counts}")
    steps = np.abs(np.log10(alpha) - np.log10(a_ref))[~np.isclose(alpha, a_ref, rtol=1e-4)]
    if steps.size:
        print(f"  disagreements are {np.round(steps).astype(int).tolist()[:20]} "
              f"grid steps apart (first 20)")
    if close < 0.995:
        fails.append(f"only {close:.4f} of voxels have |Δr| < 1e-3 (need >= 0.995)")
    if dmean >= 1e-4:
        fails.append(f"mean r differs by {dmean:.2e} (need < 1e-4)")
    if agree < 0.90:
        fails.append(f"chosen alphas agree for only {agree:.4f} (need >= 0.90)")
    return fails


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--regime", choices=sorted(REGIMES), required=True)
    ap.add_argument("--brainalign")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--n", type=int)
    ap.add_argument("--p", type=int)
    ap.add_argument("--v", type=int)
    ap.add_argument("--seed", type=int, default=20250513)
    ap.add_argument("--keep", action="store_true", help="keep x.h5, y.h5, scores.h5")
    ap.add_argument("--scores", help="check this scores.h5 instead of running brainalign")
    ap.add_argument("mpiexec", nargs="*", help="the MPI launcher and its options, after --")
    a = ap.parse_args()

    n, p, v = REGIMES[a.regime]
    n, p, v = a.n or n, a.p or p, a.v or v
    sizes = [len(train) for train, _ in KFold(N_FOLDS).split(np.zeros(n))]
    regime = "dual" if max(sizes) <= p else "primal" if min(sizes) > p else "mixed"
    if regime != a.regime:
        sys.exit(f"usage: n={n}, p={p} is the {regime} regime, not {a.regime}")
    os.makedirs(a.workdir, exist_ok=True)
    print(f"regime {a.regime}: n={n} p={p} v={v} seed={a.seed}")

    x, y = make_data(n, p, v, a.seed)
    scores = a.scores
    if scores is None:
        if not a.brainalign or not a.mpiexec:
            sys.exit("usage: give --brainalign BIN and the launcher after --")
        write_inputs(a.workdir, x, y)
        scores = os.path.join(a.workdir, "scores.h5")
        if os.path.exists(scores):
            os.remove(scores)
        seconds = run_brainalign(a.mpiexec, a.brainalign, a.workdir, scores)
        print(f"brainalign fit: {seconds:.2f} s")

    t0 = time.time()
    r_ref, a_ref = sklearn_reference(x, y)
    print(f"scikit-learn reference: {time.time() - t0:.2f} s")
    fails = compare(scores, r_ref, a_ref)

    if not a.keep and a.scores is None:
        for name in ("x.h5", "y.h5", "scores.h5"):
            path = os.path.join(a.workdir, name)
            if os.path.exists(path):
                os.remove(path)
    if fails:
        for msg in fails:
            print("FAIL:", msg)
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
