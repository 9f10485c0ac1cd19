#!/usr/bin/env python3
"""Histogram of the token lengths of a dataset written by `brainalign dataset`
(Debian's python3 with numpy and matplotlib).

  tools/plot_dataset.py SUMMARY.json --out LENGTHS.png [--width PX --height PX --bins N]

SUMMARY.json is the file of `brainalign dataset --summary` made with
--tokenizer DIR: its "tokens" object holds the length of every written
sample ("lengths") and of every sample the --max-tokens filter dropped
("filtered_lengths"). The kept samples are drawn as bars, the dropped ones
stacked on top in another colour, the limit as a vertical line; the title
names the file, the template and the counts. The PNG is exactly
--width x --height pixels (default 960 x 600).
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 100


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("summary")
    ap.add_argument("--out", required=True)
    ap.add_argument("--width", type=int, default=960, help="pixels")
    ap.add_argument("--height", type=int, default=600, help="pixels")
    ap.add_argument("--bins", type=int, default=40)
    a = ap.parse_args()
    if a.width < 100 or a.height < 100 or a.bins < 1:
        sys.exit("plot_dataset.py: --width/--height must be >= 100 pixels and --bins >= 1")
    try:
        with open(a.summary) as f:
            s = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"{a.summary}: cannot read the summary: {e}")
    tokens = s.get("tokens") if isinstance(s, dict) else None
    if not isinstance(tokens, dict) or "lengths" not in tokens:
        sys.exit(f"{a.summary}: no token lengths (run brainalign dataset with --tokenizer DIR)")
    kept = np.asarray(tokens["lengths"], dtype=float)
    dropped = np.asarray(tokens.get("filtered_lengths", []), dtype=float)
    if kept.size == 0:
        sys.exit(f"{a.summary}: the token length list is empty")
    both = np.concatenate([kept, dropped])
    edges = np.histogram_bin_edges(both, bins=a.bins)
    fig = plt.figure(figsize=(a.width / DPI, a.height / DPI), dpi=DPI)
    ax = fig.add_subplot(1, 1, 1)
    hk, _ = np.histogram(kept, bins=edges)
    ax.bar(edges[:-1], hk, width=np.diff(edges), align="edge", color="#3465a4",
           label=f"kept ({kept.size})")
    if dropped.size:
        hd, _ = np.histogram(dropped, bins=edges)
        ax.bar(edges[:-1], hd, width=np.diff(edges), align="edge", bottom=hk, color="#cc0000",
               label=f"longer than --max-tokens ({dropped.size})")
    limit = s.get("max_tokens")
    if isinstance(limit, int):
        ax.axvline(limit + 0.5, color="black", linestyle="--", label=f"--max-tokens {limit}")
    ax.set_xlabel(f"tokens per sample (prompt + response, {s.get('template', '?')} template, "
                  "BOS/EOS included)")
    ax.set_ylabel("samples")
    counts = s.get("counts", {})
    ax.set_title(f"{os.path.basename(a.summary)}: {counts.get('train', '?')} train, "
                 f"{counts.get('val', '?')} validation; median {tokens.get('median', '?')}, "
                 f"min {tokens.get('min', '?')}, max {tokens.get('max', '?')}", fontsize=10)
    ax.legend(fontsize=9)
    fig.savefig(a.out, dpi=DPI)
    plt.close(fig)
    print(f"plot_dataset.py: {a.out}")


if __name__ == "__main__":
    main()
