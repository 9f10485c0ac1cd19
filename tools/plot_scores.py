#!/usr/bin/env python3
"""Figures of brain scores (Debian's python3 with numpy, h5py, matplotlib;
nibabel for --map).

  tools/plot_scores.py SCORES.h5 [SCORES2.h5 ...] --out regions.png
      per-region mean r with its standard error (bars), one colour per
      scores file (e.g. layers or subjects), regions in atlas order
  tools/plot_scores.py --map r.nii.gz --out mosaic.png
      a mosaic of axial slices of a volume r map (from `brainalign maps`)

Every figure states what was plotted and from which files.
"""
import argparse
import os
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def read_roi(path):
    with h5py.File(path) as f:
        if "roi" not in f:
            sys.exit(f"{path}: no /roi table (fit it with --atlas)")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["roi/name"][:]]
        return names, f["roi/mean_r"][:], f["roi/sem_r"][:], f["r"][:].mean()


def plot_regions(paths, out, title):
    tables = [read_roi(p) for p in paths]
    names = tables[0][0]
    for p, t in zip(paths, tables):
        if t[0] != names:
            sys.exit(f"{p}: its regions differ from {paths[0]}'s")
    n, k = len(names), len(tables)
    width = 0.8 / k
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * n * max(1, k / 2) + 2), 4.5))
    x = np.arange(n)
    for i, (p, (_, mean, sem, overall)) in enumerate(zip(paths, tables)):
        label = f"{os.path.basename(os.path.dirname(p)) or '.'}/{os.path.basename(p)} (mean r {overall:.3f})"
        ax.bar(x + (i - (k - 1) / 2) * width, mean, width, yerr=sem, capsize=2, label=label)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("brain score (Pearson r, mean over voxels ± SEM)")
    ax.set_title(title or "Brain score by region")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


def plot_mosaic(path, out, title):
    import nibabel as nib

    data = np.asarray(nib.load(path).dataobj, dtype=np.float32)
    if data.ndim == 4:
        data = data[..., 0]
    if data.ndim != 3:
        sys.exit(f"{path}: expected a 3-D volume, got shape {data.shape}")
    nonzero = np.nonzero(np.any(data != 0, axis=(0, 1)))[0]
    zs = np.linspace(nonzero.min(), nonzero.max(), min(16, len(nonzero))).astype(int) if len(nonzero) else [data.shape[2] // 2]
    cols = 4
    rows = int(np.ceil(len(zs) / cols))
    vmax = max(np.abs(data).max(), 1e-6)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.2 * rows + 0.6))
    axes = np.atleast_1d(axes).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, z in zip(axes, zs):
        im = ax.imshow(np.rot90(data[:, :, z]), cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_title(f"z = {z}", fontsize=8)
    fig.colorbar(im, ax=axes.tolist(), shrink=0.6, label="r")
    fig.suptitle(title or f"r map: {os.path.basename(path)}")
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scores", nargs="*", help="scores.h5 files with a /roi table")
    ap.add_argument("--map", help="a NIfTI r map for a slice mosaic")
    ap.add_argument("--out", required=True, help="PNG to write")
    ap.add_argument("--title")
    a = ap.parse_args()
    if a.map:
        plot_mosaic(a.map, a.out, a.title)
    elif a.scores:
        plot_regions(a.scores, a.out, a.title)
    else:
        ap.error("give scores files or --map")


if __name__ == "__main__":
    main()
