#!/usr/bin/env python3
"""Figures of `brainalign compare` (Debian's python3 with numpy and
matplotlib; h5py for --h5; nibabel for volume maps).

  tools/plot_compare.py PREFIX.csv [--h5 PREFIX.h5] --out PREFIX

For every model of the table, PREFIX_<model>_regions.png: per region, the
mean r of every condition (top) and Δr = r(condition) - r(baseline) with
its confidence interval (bottom; a star marks q <= the table's FDR level).
With --h5, for every Δr volume map written next to it
(PREFIX_<model>_<condition>_delta_r.nii.gz), PREFIX_<model>_<condition>_
delta_r.png: a mosaic of axial slices. Surface maps (.func.gii) need a mesh
to be drawn and are left to a surface viewer. Every figure states what
was plotted and from which file. Nothing here is needed at run time:
`brainalign compare --plot` calls this script when matplotlib is there.
"""
import argparse
import csv
import glob
import math
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def number(text):
    return float(text) if text not in ("", None) else math.nan


def read_table(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"{path}: no rows")
    needed = {"model", "condition", "baseline", "region", "r_condition", "delta_r", "ci_low",
              "ci_high", "q", "significant"}
    missing = needed - set(rows[0])
    if missing:
        sys.exit(f"{path}: not a table of `brainalign compare` (missing {sorted(missing)})")
    return rows


def key(label):
    return re.sub(r"[^A-Za-z0-9._-]", "_", label)


def ordered(values):
    seen = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return seen


def plot_model(rows, model, source, out, quiet):
    rows = [r for r in rows if r["model"] == model]
    baseline = rows[0]["baseline"]
    regions = ordered(r["region"] for r in rows)
    conditions = ordered(r["condition"] for r in rows)
    conditions = [baseline] + [c for c in conditions if c != baseline]
    table = {(r["condition"], r["region"]): r for r in rows}
    n, k = len(regions), len(conditions)
    x = np.arange(n)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(7, 0.5 * n * max(1, k / 2) + 2), 7.5),
                                      sharex=True)
    width = 0.8 / k
    for i, c in enumerate(conditions):
        mean = [number(table[(c, g)]["r_condition"]) for g in regions]
        top.bar(x + (i - (k - 1) / 2) * width, mean, width, label=c)
    top.axhline(0, color="black", linewidth=0.8)
    top.set_ylabel("brain score (mean r)")
    top.legend(fontsize=8)
    top.set_title(f"{model}: brain score by region and condition\n{os.path.basename(source)}",
                  fontsize=10)
    others = conditions[1:]
    width = 0.8 / max(1, len(others))
    for i, c in enumerate(others):
        delta = np.array([number(table[(c, g)]["delta_r"]) for g in regions])
        low = np.array([number(table[(c, g)]["ci_low"]) for g in regions])
        high = np.array([number(table[(c, g)]["ci_high"]) for g in regions])
        err = np.vstack([np.nan_to_num(delta - low), np.nan_to_num(high - delta)])
        pos = x + (i - (len(others) - 1) / 2) * width
        bottom.bar(pos, delta, width, yerr=err, capsize=2, label=c, color=f"C{i + 1}")
        for j, g in enumerate(regions):
            if table[(c, g)]["significant"] == "yes":
                y = high[j] if delta[j] >= 0 else low[j]
                bottom.annotate("*", (pos[j], y), ha="center",
                                va="bottom" if delta[j] >= 0 else "top", fontsize=12)
    bottom.axhline(0, color="black", linewidth=0.8)
    bottom.set_ylabel(f"Δr vs {baseline} (interval; * significant)")
    bottom.set_xticks(x)
    bottom.set_xticklabels(regions, rotation=60, ha="right", fontsize=8)
    if others:
        bottom.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    if not quiet:
        print(f"wrote {out}")


def plot_volume(path, out, title, quiet):
    import nibabel as nib

    data = np.asarray(nib.load(path).dataobj, dtype=np.float32)
    if data.ndim == 4:
        data = data[..., 0]
    nz = data.shape[2]
    slices = [z for z in range(nz) if np.any(data[:, :, z] != 0)] or list(range(nz))
    cols = min(6, len(slices))
    rows = int(math.ceil(len(slices) / cols))
    lim = float(np.abs(data).max()) or 1.0
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.2 * rows + 0.6), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, z in zip(axes.ravel(), slices):
        im = ax.imshow(data[:, :, z].T, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(f"z={z}", fontsize=7)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6, label="Δr")
    fig.suptitle(f"{title}\n{os.path.basename(path)}", fontsize=9)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    if not quiet:
        print(f"wrote {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("table", help="PREFIX.csv written by `brainalign compare`")
    ap.add_argument("--h5", help="PREFIX.h5 (its Δr volume maps are drawn when they exist)")
    ap.add_argument("--out", required=True, help="output prefix")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    rows = read_table(a.table)
    written = 0
    for model in ordered(r["model"] for r in rows):
        plot_model(rows, model, a.table, f"{a.out}_{key(model)}_regions.png", a.quiet)
        written += 1
    if a.h5:
        prefix = a.h5[:-3] if a.h5.endswith(".h5") else a.h5
        for path in sorted(glob.glob(glob.escape(prefix) + "_*_delta_r.nii.gz")):
            stem = os.path.basename(path)[: -len(".nii.gz")]
            out = os.path.join(os.path.dirname(a.out) or ".",
                               os.path.basename(a.out) + stem[len(os.path.basename(prefix)):] + ".png")
            plot_volume(path, out, f"Δr map {stem[len(os.path.basename(prefix)) + 1:]}", a.quiet)
            written += 1
    if written == 0:
        sys.exit(f"{a.table}: nothing to plot")


if __name__ == "__main__":
    main()
