#!/usr/bin/env python3
"""The statistics of `brainalign compare` against SciPy.

usage: stats_oracle.py --brainalign BIN --workdir DIR

Scores files with planted differences are written with h5py, compared by
`brainalign compare`, and every number of its CSV is recomputed here:

  * region means, Δr and relative change: numpy, to 1e-9;
  * several subjects, 2^S <= --permutations: the p-value of the paired
    sign-flip test must equal scipy.stats.permutation_test
    (permutation_type='samples' on the pairs, n_resamples=inf: exact,
    two-sided) exactly;
  * several subjects, 2^S > --permutations: the Monte-Carlo p-value must be
    within 4 standard errors of SciPy's exact one;
  * the percentile interval (bootstrap over subjects, or over voxels for one
    subject) against scipy.stats.bootstrap(method='percentile'): the
    resamples differ, so within a Monte-Carlo tolerance (0.15 standard
    deviations of the bootstrap distribution, about 7 standard errors of a
    2.5% quantile at 20000 resamples);
  * one subject: the bootstrap-sign p-value against the same rule applied
    to SciPy's bootstrap distribution, within 4 standard errors;
  * q-values: Benjamini-Hochberg of brainalign's own p-values against
    scipy.stats.false_discovery_control (SciPy >= 1.11; on older SciPy, as
    Debian bookworm's 1.10, statsmodels' multipletests 'fdr_bh' if present,
    else the textbook definition written here) — exact.
Python is only the test oracle.
"""
import argparse
import csv
import os
import subprocess
import sys

import h5py
import numpy as np
from scipy import stats

B = 20000  # bootstrap resamples on both sides


def bh_reference(p):
    """q-values: scipy's false_discovery_control if available."""
    p = np.asarray(p, dtype=float)
    if hasattr(stats, "false_discovery_control"):
        return stats.false_discovery_control(p, method="bh"), "scipy.stats.false_discovery_control"
    try:
        from statsmodels.stats.multitest import multipletests
        return multipletests(p, method="fdr_bh")[1], "statsmodels multipletests fdr_bh"
    except ImportError:
        pass
    # Benjamini & Hochberg (1995): q_(i) = min_{j >= i} p_(j) m / j.
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (m / np.arange(1, m + 1))
    q = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.clip(q, 0, 1)
    return out, "the Benjamini-Hochberg definition (numpy)"


def write_study(workdir, n_subjects, effects, rng, noise=0.01, n_voxels=400, n_regions=8,
                average=False):
    """Scores of baseline and one condition per (name -> per-region effect)."""
    os.makedirs(workdir, exist_ok=True)
    labels = np.repeat(np.arange(n_regions), n_voxels // n_regions).astype(np.int32)
    labels[:5] = -1  # some voxels in no region
    names = [f"region_{g}".encode() for g in range(n_regions)]
    with h5py.File(f"{workdir}/atlas.h5", "w") as f:
        f["labels"] = labels
        f["names"] = np.array(names)
    files, r = [], {}
    for s in range(n_subjects):
        subject = "average" if average else f"sub-{s + 1:02d}"
        truth = rng.normal(0.1, 0.05, n_voxels)
        for cond, eff in [("baseline", np.zeros(n_regions))] + list(effects.items()):
            shift = np.where(labels >= 0, np.asarray(eff)[np.maximum(labels, 0)], 0.0)
            rr = (truth + rng.normal(0, noise, n_voxels) + shift).astype(np.float32)
            path = f"{workdir}/{cond}-{subject}.h5"
            with h5py.File(path, "w") as f:
                f["r"] = rr
                f["roi/name"] = np.array(names)
                # ASCII strings, as `fit` writes them (h5io reads ASCII attributes).
                ascii = h5py.string_dtype("ascii")
                f.attrs.create("config", '{"layers": [9]}', dtype=ascii)
                f.attrs.create("inputs", f"nowhere.h5 bold.h5 {workdir}/atlas.h5", dtype=ascii)
            files.append((cond, subject, path))
            r[(cond, subject)] = rr.astype(np.float64)
    return labels, files, r


def run_compare(ba, files, out, extra):
    args = [ba, "compare", "--out", out, "--bootstrap", str(B), "--seed", "7", *extra]
    for cond, subject, path in files:
        args += ["--scores", f"{cond}:{subject}:oracle model={path}"]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"FAILED: {' '.join(args)}\n{proc.stdout}\n{proc.stderr}")
    with open(out + ".csv") as f:
        return [row for row in csv.DictReader(f)]


def region_means(r, labels, n_regions):
    return np.array([r[labels == g].mean() for g in range(n_regions)])


def mean_stat(a, b, axis):
    return np.mean(a - b, axis=axis)


def check_rows(rows, labels, r, subjects, conditions, n_regions, mode, permutations):
    worst = {"delta": 0.0, "p": 0.0, "ci": 0.0}
    for cond in conditions:
        got = [row for row in rows if row["condition"] == cond]
        assert len(got) == n_regions, (cond, len(got))
        p_c = np.array([float(row["p"]) for row in got])
        q_c = np.array([float(row["q"]) for row in got])
        for g, row in enumerate(got):
            assert row["region"] == f"region_{g}"
            cm = np.array([region_means(r[(cond, s)], labels, n_regions)[g] for s in subjects])
            bm = np.array([region_means(r[("baseline", s)], labels, n_regions)[g] for s in subjects])
            delta = float(np.mean(cm - bm))
            assert abs(float(row["delta_r"]) - delta) < 1e-9, (cond, g, row["delta_r"], delta)
            assert abs(float(row["r_baseline"]) - bm.mean()) < 1e-9
            rel = 100 * delta / abs(bm.mean())
            assert abs(float(row["rel_change_pct"]) - rel) < 1e-6 * max(1, abs(rel))
            worst["delta"] = max(worst["delta"], abs(float(row["delta_r"]) - delta))
            if mode == "subjects":
                d = cm - bm
                exact = stats.permutation_test((cm, bm), mean_stat, permutation_type="samples",
                                               n_resamples=np.inf, alternative="two-sided",
                                               vectorized=True).pvalue
                if 2 ** len(subjects) <= permutations:
                    assert row["test"] == "sign-flip exact", row["test"]
                    assert float(row["p"]) == exact, (cond, g, row["p"], exact)
                else:
                    assert row["test"] == "sign-flip monte-carlo", row["test"]
                    n = permutations
                    se = np.sqrt(max(exact * (1 - exact), 1.0 / n) / n)
                    assert abs(float(row["p"]) - exact) <= 4 * 2 * se + 2.0 / n, (cond, g, row["p"], exact)
                worst["p"] = max(worst["p"], abs(float(row["p"]) - exact))
                sample = d
            else:
                assert row["test"] == "voxel bootstrap", row["test"]
                s = subjects[0]
                mask = labels == g
                sample = r[(cond, s)][mask] - r[("baseline", s)][mask]
            boot = stats.bootstrap((sample,), np.mean, method="percentile", n_resamples=B,
                                   confidence_level=0.95, random_state=12345 + g)
            dist = boot.bootstrap_distribution
            tol = 0.15 * dist.std() + 1e-12
            for key, ref in (("ci_low", boot.confidence_interval.low),
                             ("ci_high", boot.confidence_interval.high)):
                assert abs(float(row[key]) - ref) <= tol, (cond, g, key, row[key], ref, tol)
                worst["ci"] = max(worst["ci"], abs(float(row[key]) - ref) / (dist.std() + 1e-300))
            if mode == "voxels":
                fewer = min((dist <= 0).sum(), (dist >= 0).sum())
                p_ref = min(1.0, 2 * (1 + fewer) / (B + 1))
                se = np.sqrt(max(p_ref * (1 - p_ref), 1.0 / B) / B)
                assert abs(float(row["p"]) - p_ref) <= 4 * 2 * se + 4.0 / B, (cond, g, row["p"], p_ref)
                worst["p"] = max(worst["p"], abs(float(row["p"]) - p_ref))
        q_ref, how = bh_reference(p_c)
        assert np.array_equal(q_c, q_ref), (cond, q_c, q_ref)
        sig = [row["significant"] == "yes" for row in got]
        assert sig == list(q_c <= 0.05), (sig, q_c)
    return worst, how


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--brainalign", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    rng = np.random.default_rng(2025)
    G = 8
    cases = [
        # name, subjects, effects per region, mode, --permutations
        ("exact", 7, {"human": [0, 0.004, 0.02, 0, -0.006, 0.001, 0.01, 0],
                      "random": [0.0] * G}, "subjects", 100000),
        ("montecarlo", 14, {"gpt4": [0, 0.003, 0.008, 0, -0.004, 0.0015, 0.02, 0.0005]},
         "subjects", 4000),
        ("voxels", 1, {"human": [0, 0.002, 0.01, 0, -0.003, 0.0012, 0.004, 0.0004]}, "voxels",
         100000),
    ]
    for name, n_subjects, effects, mode, permutations in cases:
        workdir = os.path.join(a.workdir, name)
        labels, files, r = write_study(workdir, n_subjects, effects, rng,
                                       average=(mode == "voxels"))
        subjects = sorted({s for _, s, _ in files})
        rows = run_compare(a.brainalign, files, os.path.join(workdir, "cmp"),
                           ["--permutations", str(permutations)])
        rows = [row for row in rows if row["model"] == "oracle model"]
        worst, how = check_rows(rows, labels, r, subjects, list(effects), G, mode, permutations)
        print(f"{name}: {n_subjects} subject(s), {G} regions, conditions {list(effects)}: "
              f"max |Δr - numpy| {worst['delta']:.2g}, max |p - scipy| {worst['p']:.3g}, "
              f"max |CI - scipy| {worst['ci']:.3f} bootstrap sd; q = {how} (exact)")
    print("stats oracle: passed")


if __name__ == "__main__":
    main()
