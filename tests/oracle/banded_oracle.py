#!/usr/bin/python3
"""Test oracle for `brainalign fit --bands` (banded ridge) and `--fold-gap`
(never used at run time).

usage:
  banded_oracle.py --check grid|random|one_band|fold_gap|bad_specs --ranks R
                   --brainalign BIN --workdir DIR -- MPIEXEC...

Synthetic data (make_data): n = 300 TR-like samples, X = two bands of 20
AR(1) features, v = 200 voxels; voxels 0..99 are driven by band 1 only,
100..199 by band 2 only, with noise levels that vary across voxels.

  grid      --bands 0:20,20:40 --band-alphas "logspace:0:3:4;logspace:-1:2:4"
            (a 4 x 4 grid) against brute_force(): for each of the 5
            contiguous folds, X standardised and Y centred with training
            statistics, every candidate scored by leave-one-out computed
            from an explicit inverse G = (K + I)^-1 of the kernel of the
            band-scaled design (residual_i = (G y)_i / G_ii), argmin per
            voxel (first on ties), the refit's held-out prediction split per
            band. Passes when |delta r| < 1e-3 for >= 99.5 % of voxels,
            |delta mean r| < 1e-4, >= 90 % of (fold, voxel) band alphas
            agree, band_r2 agrees (|delta| < 1e-3 where the choices agree)
            and the planted signal is recovered: band_r2[0] > band_r2[1] on
            >= 95 % of voxels 0..99 and the reverse on 100..199; with an
            atlas of the two voxel groups, /roi/band_r2/{mean,median} are
            the per-region statistics of /band_r2 and attribute each region
            to its band.
  random    20 band-weight vectors (Dirichlet, numpy) written to a file
            (--band-weights) times logspace:0:3:4: the same checks, and
            /band_candidates = alpha / weight. Also runs --band-search
            random:20 --seed 7 (alphas 1,1000) twice: the same candidates both
            times, on the simplex mapping (alpha_b * g_b constant over the bands).
  one_band  --bands 0:40 --band-alphas logspace:-1:8:10 equals plain `fit`
            (/r, /r_folds, /alpha) bitwise, and /band_alphas = /alpha.
  fold_gap  --fold-gap 7 with the dense, banded and PETSc solvers against
            the numpy computation with the gap rows left out of training
            (dense/petsc: the plain ridge of sklearn's GCV written out); and
            --fold-gap 0 equals a run without the option bitwise; the
            fold_gap attribute is recorded.
  bad_specs overlapping, out-of-range, empty and non-covering bands, bad
            candidate files, random:N without --seed, too large a fold gap:
            non-zero exit, a message naming the problem, no output file.
"""
import argparse
import os
import subprocess
import sys

import h5py
import numpy as np

N, P1, P2, V, FOLDS = 300, 20, 20, 200, 5
GRID1, GRID2 = np.logspace(0, 3, 4), np.logspace(-1, 2, 4)
PLAIN_ALPHAS = np.logspace(-1, 8, 10)


def ar1(rng, n, k, rho):
    e = rng.standard_normal((n, k))
    out = np.empty((n, k))
    out[0] = e[0]
    s = np.sqrt(1 - rho * rho)
    for t in range(1, n):
        out[t] = rho * out[t - 1] + s * e[t]
    return out


def make_data(seed=3):
    rng = np.random.default_rng(seed)
    x = ar1(rng, N, P1 + P2, 0.6)
    x[:, P1:] *= 3.0  # bands on different scales (standardised away)
    y = np.empty((N, V))
    w1 = rng.standard_normal((P1, V // 2))
    w2 = rng.standard_normal((P2, V // 2))
    snr = np.linspace(0.3, 3.0, V // 2)
    s1 = x[:, :P1] @ w1
    s2 = x[:, P1:] @ w2
    y[:, :V // 2] = s1 / s1.std(0) * snr + ar1(rng, N, V // 2, 0.3)
    y[:, V // 2:] = s2 / s2.std(0) * snr + ar1(rng, N, V // 2, 0.3)
    return x.astype(np.float32), y.astype(np.float32)


def kfold_bounds(n, k):
    sizes = np.full(k, n // k)
    sizes[: n % k] += 1
    return np.concatenate([[0], np.cumsum(sizes)])


def train_rows(n, lo, hi, gap):
    keep = np.ones(n, bool)
    keep[max(0, lo - gap):min(n, hi + gap)] = False
    return np.nonzero(keep)[0]


def split_r2(y, parts):
    """himalaya-style split r2 of centred y [n] and parts [B, n]."""
    y = y - y.mean()
    parts = parts - parts.mean(1, keepdims=True)
    yhat = parts.sum(0)
    return (2 * parts @ y - parts @ yhat) / (y @ y)


def brute_force(x, y, bands, candidates, gap=0):
    """r_folds [K, v], chosen candidate [K, v], band_r2 folds [K, v, B]."""
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    bounds = kfold_bounds(len(x), FOLDS)
    B = len(bands)
    r = np.zeros((FOLDS, y.shape[1]))
    choice = np.zeros((FOLDS, y.shape[1]), int)
    r2 = np.zeros((FOLDS, y.shape[1], B))
    for k in range(FOLDS):
        te = np.arange(bounds[k], bounds[k + 1])
        tr = train_rows(len(x), bounds[k], bounds[k + 1], gap)
        mu, sd = x[tr].mean(0), x[tr].std(0)
        sd[sd < 1e-12] = 1
        xs = (x - mu) / sd
        ytr = y[tr] - y[tr].mean(0)
        losses = np.empty((len(candidates), y.shape[1]))
        coefs = []
        for c, alpha in enumerate(candidates):
            scale = np.concatenate([np.full(e - b, 1 / np.sqrt(a)) for (b, e), a in zip(bands, alpha)])
            z = xs[tr] * scale
            g = np.linalg.inv(z @ z.T + np.eye(len(tr)))
            coef = g @ ytr
            losses[c] = ((coef / np.diag(g)[:, None]) ** 2).sum(0)
            coefs.append(coef)
        best = np.argmin(losses, 0)
        choice[k] = best
        for j in range(y.shape[1]):
            alpha = candidates[best[j]]
            coef = coefs[best[j]][:, j]
            parts = np.array([xs[te, b:e] @ (xs[tr, b:e].T @ coef) / a for (b, e), a in zip(bands, alpha)])
            yhat = parts.sum(0)
            r[k, j] = np.corrcoef(yhat, y[te, j])[0, 1]
            r2[k, j] = split_r2(y[te, j], parts)
    return r, choice, r2


def plain_ridge(x, y, alphas, gap):
    """Plain ridge CV with one alpha per voxel by exact LOO (explicit
    inverses, dual): r_folds [K, v], alpha [K, v]."""
    r, cand, _ = brute_force(x, y, [(0, x.shape[1])], [[a] for a in alphas], gap)
    return r, np.asarray(alphas)[cand]


def run(cmd, expect_ok=True):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if expect_ok and p.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def fit(a, ranks, extra, out):
    if os.path.exists(out):
        os.remove(out)
    cmd = a.mpiexec + ["-n", str(ranks), a.brainalign, "fit", "--x", f"{a.workdir}/x.h5:/X",
                       "--y", f"{a.workdir}/y.h5:/Y", "--folds", str(FOLDS), "--quiet",
                       "--no-checkpoint", "--out", out] + extra
    run(cmd)
    return h5py.File(out, "r")


def compare_r(name, r_c, r_ref):
    d = np.abs(r_c - r_ref)
    frac = np.mean(d < 1e-3)
    dm = abs(r_c.mean() - r_ref.mean())
    print(f"{name}: |delta r| < 1e-3 for {100 * frac:.2f} % of voxels (max {d.max():.2e}); "
          f"delta mean r {dm:.2e}")
    ok = frac >= 0.995 and dm < 1e-4
    if not ok:
        print(f"FAIL: {name}: r disagrees with the numpy reference")
    return ok


def check_banded(a, x, y, bands, candidates, extra, tag, gap=0):
    s = fit(a, a.ranks, extra, f"{a.workdir}/{tag}.h5")
    r_ref, choice, r2_ref = brute_force(x, y, bands, candidates, gap)
    ok = compare_r(f"{tag} ({a.ranks} ranks)", s["r"][:], r_ref.mean(0))
    cand = np.asarray(candidates)
    got_c = s["band_candidates"][:]
    if got_c.shape != cand.shape or np.max(np.abs(got_c / cand - 1)) > 1e-12:
        print(f"FAIL: {tag}: /band_candidates differ from the candidates numpy searched")
        ok = False
    band_alphas = s["band_alphas"][:]
    if band_alphas.shape != (FOLDS, V, len(bands)):
        print(f"FAIL: {tag}: /band_alphas has shape {band_alphas.shape}")
        return False
    agree = np.all(np.abs(band_alphas / cand[choice].astype(np.float32) - 1) < 1e-6, axis=2)
    print(f"{tag}: chosen candidates agree on {100 * agree.mean():.2f} % of (fold, voxel)")
    if agree.mean() < 0.9:
        print(f"FAIL: {tag}: fewer than 90 % of the band alphas agree")
        ok = False
    band_r2 = s["band_r2"][:]
    if band_r2.shape != (len(bands), V):
        print(f"FAIL: {tag}: /band_r2 has shape {band_r2.shape}")
        return False
    # band_r2 is the fold mean; compare per voxel where every fold agrees.
    same = agree.all(0)
    d = np.abs(band_r2.T - r2_ref.mean(0))[same]
    if same.sum() < V // 2:
        print(f"FAIL: {tag}: only {same.sum()} voxels chose the same candidates in every fold")
        return False
    print(f"{tag}: band_r2 max |delta| {d.max():.2e} on the {same.sum()} voxels whose choices agree")
    if d.max() > 1e-3:
        print(f"FAIL: {tag}: band_r2 disagrees with numpy's split r2")
        ok = False
    if "--atlas" in extra:  # region tables per band: region 0 = voxels 0..99, 1 = the rest
        labels = np.repeat([0, 1], V // 2)
        for stat, fn in [("mean", np.mean), ("median", np.median)]:
            table = s[f"roi/band_r2/{stat}"][:]
            want = np.array([[fn(band_r2[b, labels == g].astype(np.float64)) for g in range(2)]
                             for b in range(len(bands))])
            if table.shape != want.shape or np.max(np.abs(table - want)) > 1e-6:
                print(f"FAIL: {tag}: /roi/band_r2/{stat} is not the per-region {stat} of /band_r2")
                ok = False
        table = s["roi/band_r2/mean"][:]
        if not (table[0, 0] > table[1, 0] and table[1, 1] > table[0, 1]):
            print(f"FAIL: {tag}: the region tables do not attribute each region to its band")
            ok = False
        else:
            print(f"{tag}: region tables per band: {np.round(table, 3).tolist()}")
    first = np.mean(band_r2[0, :V // 2] > band_r2[1, :V // 2])
    second = np.mean(band_r2[1, V // 2:] > band_r2[0, V // 2:])
    print(f"{tag}: planted bands recovered on {100 * first:.1f} % / {100 * second:.1f} % of voxels")
    if first < 0.95 or second < 0.95:
        print(f"FAIL: {tag}: band_r2 does not attribute the planted voxels to their band")
        ok = False
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", required=True,
                    choices=["grid", "random", "one_band", "fold_gap", "bad_specs"])
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--brainalign", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("mpiexec", nargs="+")
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    x, y = make_data()
    with h5py.File(f"{a.workdir}/x.h5", "w") as f:
        f["X"] = x
    with h5py.File(f"{a.workdir}/y.h5", "w") as f:
        f["Y"] = y
    bands = [(0, P1), (P1, P1 + P2)]
    ok = True
    if a.check == "grid":
        cands = [[a1, a2] for a1 in GRID1 for a2 in GRID2]
        with h5py.File(f"{a.workdir}/atlas.h5", "w") as f:
            f["labels"] = np.repeat([0, 1], V // 2).astype(np.int32)
            f["names"] = np.array([b"band1_voxels", b"band2_voxels"])
        ok = check_banded(a, x, y, bands, cands,
                          ["--bands", "0:20,20:40", "--band-alphas", "logspace:0:3:4;logspace:-1:2:4",
                           "--atlas", f"{a.workdir}/atlas.h5"], f"grid_np{a.ranks}")
    elif a.check == "random":
        rng = np.random.default_rng(11)
        weights = rng.dirichlet([1.0, 1.0], 20)
        path = f"{a.workdir}/weights.txt"
        with open(path, "w") as f:
            f.write("# band weights, one candidate per line\n")
            for w in weights:
                f.write(f"{w[0]!r}, {w[1]!r}\n")
        cands = [[al / w[0], al / w[1]] for w in weights for al in GRID1]
        ok = check_banded(a, x, y, bands, cands,
                          ["--bands", "0:20,20:40", "--band-alphas", "logspace:0:3:4",
                           "--band-weights", path], f"random_np{a.ranks}")
        got = []
        for rep in range(2):
            s = fit(a, a.ranks, ["--bands", "0:20,20:40", "--band-alphas", "1,1000",
                                 "--band-search", "random:20", "--seed", "7"],
                    f"{a.workdir}/seeded{rep}.h5")
            got.append(s["band_candidates"][:])
        c = got[0]
        if c.shape != (40, 2) or not np.array_equal(got[0], got[1]):
            print("FAIL: random:20 --seed 7 gave different or wrongly shaped candidates")
            ok = False
        else:
            g = 1 / c                       # = g_b / alpha
            g = g / g.sum(1, keepdims=True)  # the simplex weights
            alpha = c[:, 0] * g[:, 0]
            if np.max(np.abs(c[:, 1] * g[:, 1] / alpha - 1)) > 1e-12 or \
               not np.allclose(np.sort(np.unique(np.round(np.log10(alpha), 9))), [0.0, 3.0]):
                print("FAIL: random:N candidates are not alpha / g on the simplex")
                ok = False
            else:
                print("random:20 --seed 7: reproducible, alpha_b = alpha / g_b with g on the simplex")
    elif a.check == "one_band":
        s1 = fit(a, a.ranks, ["--bands", "0:40", "--band-alphas", "logspace:-1:8:10"],
                 f"{a.workdir}/one_band.h5")
        s0 = fit(a, a.ranks, ["--alphas", "logspace:-1:8:10"], f"{a.workdir}/plain.h5")
        for d in ["r", "r_folds", "alpha"]:
            if not np.array_equal(s1[d][:].view(np.uint32), s0[d][:].view(np.uint32)):
                print(f"FAIL: one band: /{d} is not bitwise the plain fit's")
                ok = False
        if not np.array_equal(s1["band_alphas"][:][:, :, 0], s0["alpha"][:]):
            print("FAIL: one band: /band_alphas is not /alpha")
            ok = False
        if ok:
            print("one band: /r, /r_folds, /alpha bitwise equal to plain fit")
    elif a.check == "fold_gap":
        gap = 7
        r_ref, al_ref = plain_ridge(x, y, PLAIN_ALPHAS, gap)
        for solver in ["scalapack", "petsc"]:
            s = fit(a, a.ranks, ["--alphas", "logspace:-1:8:10", "--fold-gap", str(gap),
                                 "--solver", solver], f"{a.workdir}/gap_{solver}.h5")
            ok &= compare_r(f"fold gap {gap}, {solver}", s["r"][:], r_ref.mean(0))
            agree = np.mean(np.isclose(s["alpha"][:], al_ref, rtol=1e-6))
            print(f"fold gap {gap}, {solver}: alphas agree on {100 * agree:.1f} %")
            if agree < 0.9:
                print(f"FAIL: fold gap {gap}, {solver}: alphas disagree")
                ok = False
            if int(s.attrs["fold_gap"]) != gap:
                print("FAIL: the fold_gap attribute is not recorded")
                ok = False
        # The dual (kernel) forms: n_train < p.
        wide_rng = np.random.default_rng(5)
        xw = np.hstack([x[:150], wide_rng.standard_normal((150, 160)).astype(np.float32)])
        yw = y[:150]
        with h5py.File(f"{a.workdir}/xw.h5", "w") as f:
            f["X"] = xw
        with h5py.File(f"{a.workdir}/yw.h5", "w") as f:
            f["Y"] = yw
        rw_ref, alw_ref = plain_ridge(xw, yw, PLAIN_ALPHAS, gap)
        for solver in ["scalapack", "petsc"]:
            out = f"{a.workdir}/gapw_{solver}.h5"
            if os.path.exists(out):
                os.remove(out)
            run(a.mpiexec + ["-n", str(a.ranks), a.brainalign, "fit", "--x", f"{a.workdir}/xw.h5:/X",
                             "--y", f"{a.workdir}/yw.h5:/Y", "--folds", str(FOLDS), "--quiet",
                             "--no-checkpoint", "--out", out, "--alphas", "logspace:-1:8:10",
                             "--fold-gap", str(gap), "--solver", solver])
            s = h5py.File(out, "r")
            ok &= compare_r(f"fold gap {gap}, {solver}, dual (n=150, p=200)", s["r"][:], rw_ref.mean(0))
            agree = np.mean(np.isclose(s["alpha"][:], alw_ref, rtol=1e-6))
            print(f"fold gap {gap}, {solver}, dual: alphas agree on {100 * agree:.1f} %")
            if agree < 0.9:
                print(f"FAIL: fold gap {gap}, {solver}, dual: alphas disagree")
                ok = False
        # The gap changes the answer (else the check above proves nothing).
        r0, _ = plain_ridge(x, y, PLAIN_ALPHAS, 0)
        if np.max(np.abs(r0 - r_ref)) < 1e-3:
            print("FAIL: the fold gap made no difference to the reference")
            ok = False
        cands = [[a1, a2] for a1 in GRID1 for a2 in GRID2]
        ok &= check_banded(a, x, y, bands, cands,
                           ["--bands", "0:20,20:40", "--band-alphas", "logspace:0:3:4;logspace:-1:2:4",
                            "--fold-gap", str(gap)], f"gap_banded_np{a.ranks}", gap)
        s0 = fit(a, a.ranks, ["--fold-gap", "0"], f"{a.workdir}/gap0.h5")
        s1 = fit(a, a.ranks, [], f"{a.workdir}/nogap.h5")
        for d in ["r", "r_folds", "alpha"]:
            if not np.array_equal(s0[d][:].view(np.uint32), s1[d][:].view(np.uint32)):
                print(f"FAIL: --fold-gap 0: /{d} differs from a run without it")
                ok = False
    elif a.check == "bad_specs":
        wdir = a.workdir

        def write(name, text):
            with open(f"{wdir}/{name}", "w") as f:
                f.write(text)
            return f"{wdir}/{name}"
        cases = [
            (["--bands", "0:25,20:40"], "overlaps"),
            (["--bands", "0:20,20:41"], "out of range"),
            (["--bands", "0:20,20:20,20:40"], "is empty"),
            (["--bands", "0:20,25:40"], "in no band"),
            (["--bands", "0:20"], "in no band"),
            (["--bands", "0-20"], "BEGIN:END"),
            (["--bands", "0:20,20:40", "--band-alphas", "1,10;1;2"], "one per band"),
            (["--bands", "0:20,20:40", "--band-search", "random:5"], "--seed"),
            (["--bands", "0:20,20:40", "--band-search", "sobol"], "grid or random"),
            (["--bands", "0:20,20:40", "--band-weights", write("w3.txt", "0.5 0.3 0.2\n")],
             "more than 2 band weights"),
            (["--bands", "0:20,20:40", "--band-weights", write("w1.txt", "0.5 0.5\n0.5\n")],
             "1 band weights, expected 2"),
            (["--bands", "0:20,20:40", "--band-weights", write("wneg.txt", "0.5 -0.5\n")],
             "positive"),
            (["--bands", "0:20,20:40", "--band-weights", write("wtxt.txt", "0.5 abc\n")],
             "not a number"),
            (["--bands", "0:20,20:40", "--band-weights", write("wempty.txt", "# nothing\n")],
             "no candidate lines"),
            (["--bands", "0:20,20:40", "--band-weights", f"{wdir}/missing.txt"], "missing.txt"),
            (["--band-alphas", "1,10"], "need --bands"),
            (["--fold-gap", "200"], "training samples"),
            (["--fold-gap", "-1"], "--fold-gap"),
        ]
        for extra, message in cases:
            out = f"{wdir}/bad.h5"
            if os.path.exists(out):
                os.remove(out)
            cmd = a.mpiexec + ["-n", str(a.ranks), a.brainalign, "fit", "--x", f"{wdir}/x.h5:/X",
                               "--y", f"{wdir}/y.h5:/Y", "--quiet", "--no-checkpoint",
                               "--out", out] + extra
            p = run(cmd, expect_ok=False)
            text = p.stdout + p.stderr
            if p.returncode == 0 or message not in text or os.path.exists(out):
                print(f"FAIL: {' '.join(extra)}: exit {p.returncode}, expected a message with "
                      f"'{message}', output file {'written' if os.path.exists(out) else 'absent'}"
                      f"\n{text}")
                ok = False
            else:
                line = [l for l in text.splitlines() if message in l][0]
                print(f"ok: {' '.join(extra)} -> {line.strip()}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
