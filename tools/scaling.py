#!/usr/bin/env python3
"""Strong and weak scaling of `brainalign fit`, with a performance model.

usage: tools/scaling.py [--ranks 1,2] [--n 2000] [--p 1536] [--v 16000]
                        [--weak-voxels-per-rank 8000] [--out scaling]
                        [--predict 80000:10000:20480] [--predict-ranks 64,1024]

Runs `brainalign fit --x --y --timing` (design-matrix mode, 5 folds, 10
alphas) on a generated study for every rank count (strong scaling: the same
study; weak scaling: voxels per rank fixed), writes the time of every phase
to OUT.csv, plots speedup and efficiency to OUT.png, and prints a
performance model beside the measurements:

  per fold (n_tr training, n_te test samples, m = min(n_tr, p) spectral size,
  A alphas, P ranks in G fold groups, Q = P / G ranks per group)
    feature side  2 n_tr^2 p + 2 n_te n_tr p + 2 n_te n_tr^2 + 10 n_tr^3  flops
                  (dual; primal: 2 p^2 n_tr + 2 n p^2 + 10 p^3) on Q ranks at
                  the measured ScaLAPACK rate, plus its communication:
                  pdgemm/pdsyevd move about 3 m^2 8 bytes / sqrt(Q) per rank, and
                  the tridiagonal reduction synchronises on every column:
                  about 4 m log2(Q) latencies
    replication   the n x m float basis is all-reduced in the group:
                  2 n m 4 bytes per rank (ring), 2 log2(Q) latencies
    voxel side    (A + 1) 2 n_tr m v + 2 n_te m v flops, split evenly over the
                  Q ranks of the group, no communication, at the measured
                  SGEMM-bound rate per rank
    input         each rank reads X once per fold (n p 4 bytes) and its own
                  voxels of Y (n v 4 / Q bytes)
  and the folds are shared by the G groups (ceil(5 / G) rounds).

The per-rank rates come from the 1-rank run on this machine; the network
figures (latency, bandwidth) and file-system bandwidth are assumptions you
can set (--latency-us, --network-gbs, --io-gbs) for your cluster.
Debian's python3 with numpy, h5py and matplotlib; a tool, not a test.
"""
import argparse
import csv
import math
import os
import re
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FOLDS, ALPHAS = 5, 10


def make_study(path, n, p, v, seed=0):
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 32)).astype(np.float32)
    x = (latent @ rng.standard_normal((32, p)).astype(np.float32) / 6
         + rng.standard_normal((n, p)).astype(np.float32))
    y = np.empty((n, v), dtype=np.float32)
    for c0 in range(0, v, 4096):
        c1 = min(v, c0 + 4096)
        y[:, c0:c1] = latent @ rng.standard_normal((32, c1 - c0)).astype(np.float32) * 0.2 \
            + rng.standard_normal((n, c1 - c0)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f["X"] = x
        f["Y"] = y


def run_fit(ba, mpiexec, ranks, study, out):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cmd = [*mpiexec, "-n", str(ranks), ba, "fit", "--x", f"{study}:/X", "--y", f"{study}:/Y",
           "--out", out, "--quiet", "--timing", "--no-checkpoint"]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.time() - t0
    if proc.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{proc.stderr}")
    m = re.search(r"total ([\d.]+) s, input ([\d.]+) s, feature side ([\d.]+) s \(([\d.]+) GFLOP\), "
                  r"voxel side ([\d.]+) s", proc.stdout)
    g = re.search(r"voxel side, all ranks: ([\d.]+) GFLOP in ([\d.]+) s", proc.stdout)
    if not m or not g:
        sys.exit(f"cannot read --timing from:\n{proc.stdout}")
    total, io, feat, feat_gflop, vox = map(float, m.groups())
    vox_gflop, vox_max = map(float, g.groups())
    return {"wall": wall, "total": total, "input": io, "feature": feat, "feature_gflop": feat_gflop,
            "voxel": vox_max, "voxel_gflop": vox_gflop,
            "other": max(0.0, total - io - feat - vox_max), "command": " ".join(cmd)}


def flops(n, p, v):
    n_te = n / FOLDS
    n_tr = n - n_te
    m = min(n_tr, p)
    if n_tr <= p:
        feature = 2 * n_tr ** 2 * p + 2 * n_te * n_tr * p + 2 * n_te * n_tr ** 2 + 10 * n_tr ** 3
    else:
        feature = 2 * p ** 2 * n_tr + 2 * n * p ** 2 + 10 * p ** 3
    voxel = (ALPHAS + 1) * 2 * n_tr * m * v + 2 * n_te * m * v
    return feature, voxel, n_tr, n_te, m


class Model:
    def __init__(self, feature_rate, voxel_rate, latency_s, network_bps, io_bps, nb=64):
        self.feature_rate, self.voxel_rate = feature_rate, voxel_rate
        self.latency, self.bw, self.io, self.nb = latency_s, network_bps, io_bps, nb

    def predict(self, n, p, v, ranks, groups=1):
        groups = max(1, min(groups, FOLDS, ranks))
        q = ranks // groups
        rounds = math.ceil(FOLDS / groups)
        f_feature, f_voxel, n_tr, n_te, m = flops(n, p, v)
        comm = (3 * m * m * 8 / math.sqrt(q) / self.bw
                + 4 * m * math.log2(q) * self.latency) if q > 1 else 0.0
        feature = f_feature / (q * self.feature_rate) + comm
        replication = (2 * n * m * 4 / self.bw + 2 * math.log2(q) * self.latency) if q > 1 else 0.0
        voxel = f_voxel / (q * self.voxel_rate)
        io = (n * p * 4 + n * v * 4 / q) / self.io
        per_fold = {"feature": feature + replication, "voxel": voxel, "input": io}
        return {k: t * rounds for k, t in per_fold.items()}


def fmt_s(t):
    return f"{t:9.1f} s" if t < 1e4 else f"{t / 3600:8.1f} h"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brainalign", default=os.path.join(HERE, "..", "build", "brainalign"))
    ap.add_argument("--mpiexec", default="mpiexec --oversubscribe")
    ap.add_argument("--ranks", default="1,2")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--p", type=int, default=1536)
    ap.add_argument("--v", type=int, default=16000)
    ap.add_argument("--weak-voxels-per-rank", type=int, default=8000)
    ap.add_argument("--out", default="scaling")
    ap.add_argument("--predict", default="80000:10000:20480", help="voxels:TRs:features")
    ap.add_argument("--predict-ranks", default="64,1024")
    ap.add_argument("--latency-us", type=float, default=2.0)
    ap.add_argument("--network-gbs", type=float, default=10.0)
    ap.add_argument("--io-gbs", type=float, default=5.0)
    a = ap.parse_args()
    ranks = [int(r) for r in a.ranks.split(",")]
    mpiexec = a.mpiexec.split()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        strong = f"{tmp}/strong.h5"
        make_study(strong, a.n, a.p, a.v)
        for r in ranks:
            res = run_fit(a.brainalign, mpiexec, r, strong, f"{tmp}/s{r}.h5")
            rows.append({"kind": "strong", "ranks": r, "n": a.n, "p": a.p, "v": a.v, **res})
            print(f"strong  ranks={r}: {res['total']:.2f} s (feature {res['feature']:.2f}, "
                  f"voxel {res['voxel']:.2f}, input {res['input']:.2f})", flush=True)
        for r in ranks:
            v = a.weak_voxels_per_rank * r
            path = f"{tmp}/weak{r}.h5"
            make_study(path, a.n, a.p, v, seed=r)
            res = run_fit(a.brainalign, mpiexec, r, path, f"{tmp}/w{r}.h5")
            rows.append({"kind": "weak", "ranks": r, "n": a.n, "p": a.p, "v": v, **res})
            print(f"weak    ranks={r} v={v}: {res['total']:.2f} s", flush=True)
    base = {k: next(x for x in rows if x["kind"] == k and x["ranks"] == ranks[0]) for k in ("strong", "weak")}
    for x in rows:
        b = base[x["kind"]]
        if x["kind"] == "strong":
            x["speedup"] = b["total"] / x["total"] * ranks[0]
            x["efficiency"] = x["speedup"] / x["ranks"]
        else:
            x["speedup"] = float("nan")
            x["efficiency"] = b["total"] / x["total"]
    fields = ["kind", "ranks", "n", "p", "v", "total", "input", "feature", "feature_gflop", "voxel",
              "voxel_gflop", "other", "wall", "speedup", "efficiency", "command"]
    with open(f"{a.out}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)

    # Calibrate the model on the 1-rank (first) strong run.
    b = base["strong"]
    model = Model(feature_rate=b["feature_gflop"] * 1e9 / max(b["feature"], 1e-9),
                  voxel_rate=b["voxel_gflop"] * 1e9 / max(b["voxel"], 1e-9) / ranks[0],
                  latency_s=a.latency_us * 1e-6, network_bps=a.network_gbs * 1e9, io_bps=a.io_gbs * 1e9)
    print(f"\nmodel rates from the {ranks[0]}-rank run: feature side {model.feature_rate / 1e9:.1f} GFLOP/s "
          f"per rank, voxel side {model.voxel_rate / 1e9:.1f} GFLOP/s per rank; assumed network "
          f"{a.latency_us} us, {a.network_gbs} GB/s; file system {a.io_gbs} GB/s")
    print(f"\n{'run':22s} {'measured':>10s} {'model':>10s}   (feature / voxel / input, measured)")
    for x in rows:
        pred = model.predict(x["n"], x["p"], x["v"], x["ranks"])
        print(f"{x['kind']:6s} ranks={x['ranks']:<3d} v={x['v']:<6d} {x['total']:9.2f}s "
              f"{sum(pred.values()):9.2f}s   ({x['feature']:.2f} / {x['voxel']:.2f} / {x['input']:.2f})"
              f"  efficiency {x['efficiency']:.2f}")
    v, n, p = (int(t) for t in a.predict.split(":"))
    f_feature, f_voxel, n_tr, n_te, m = flops(n, p, v)
    print(f"\nprediction for v={v} voxels, n={n} TRs, p={p} features "
          f"({'dual' if n_tr <= p else 'primal'}, m={int(m)}): {FOLDS * f_feature / 1e12:.1f} TFLOP feature "
          f"side, {FOLDS * f_voxel / 1e15:.2f} PFLOP voxel side, basis {n * m * 4 / 2**30:.2f} GiB per rank")
    one = sum(model.predict(n, p, v, 1).values())
    for r in (int(t) for t in a.predict_ranks.split(",")):
        for groups in (1, FOLDS):
            pred = model.predict(n, p, v, r, groups)
            total = sum(pred.values())
            print(f"  {r:5d} ranks, {groups} fold group(s): {fmt_s(total)} "
                  f"(feature {fmt_s(pred['feature'])}, voxel {fmt_s(pred['voxel'])}, input {fmt_s(pred['input'])}); "
                  f"efficiency vs 1 rank {one / total / r:.2f}")

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(1, 2, figsize=(10, 4))
        s = [x for x in rows if x["kind"] == "strong"]
        w = [x for x in rows if x["kind"] == "weak"]
        ax[0].plot([x["ranks"] for x in s], [x["speedup"] for x in s], "o-", label="measured")
        ax[0].plot(ranks, ranks, "k--", label="ideal")
        ax[0].set_xlabel("ranks"); ax[0].set_ylabel("speedup"); ax[0].set_title(f"strong: n={a.n} p={a.p} v={a.v}")
        ax[0].legend()
        ax[1].plot([x["ranks"] for x in s], [x["efficiency"] for x in s], "o-", label="strong")
        ax[1].plot([x["ranks"] for x in w], [x["efficiency"] for x in w], "s-", label=f"weak ({a.weak_voxels_per_rank} voxels/rank)")
        ax[1].set_ylim(0, 1.1); ax[1].set_xlabel("ranks"); ax[1].set_ylabel("parallel efficiency"); ax[1].legend()
        fig.tight_layout()
        fig.savefig(f"{a.out}.png", dpi=110)
        print(f"\nwrote {a.out}.csv and {a.out}.png")
    except ImportError:
        print(f"\nwrote {a.out}.csv (no matplotlib: no plot)")
    print("commands:\n  " + "\n  ".join(sorted({x['command'] for x in rows})))


if __name__ == "__main__":
    main()
