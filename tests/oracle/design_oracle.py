#!/usr/bin/env python3
"""The design matrix of `brainalign fit` against an independent numpy
implementation: words summed / averaged per TR or Lanczos-resampled (the
formula of Huth et al.'s lanczosinterp2D with cutoff 1/TR and 3 lobes), FIR
delays zero-padded within each story, stories concatenated in name order,
several layers side by side.

usage: design_oracle.py BRAINALIGN  (Debian python3 with numpy + h5py)
"""
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

TR = 1.5


def lanczos(t, window=3):
    t = np.asarray(t, dtype=np.float64)
    val = np.zeros_like(t)
    nz = t != 0
    val[nz] = window * np.sin(np.pi * t[nz]) * np.sin(np.pi * t[nz] / window) / (np.pi ** 2 * t[nz] ** 2)
    val[~nz] = 1.0
    val[np.abs(t) > window] = 0.0
    return val


def tr_features(words, onsets, n_tr, mode, offset):
    d = words.shape[1]
    if mode == "lanczos":
        tr_times = (np.arange(n_tr) + 0.5) * TR - offset
        weights = lanczos((tr_times[:, None] - onsets[None, :]) / TR)
        return weights @ words.astype(np.float64)
    out = np.zeros((n_tr, d))
    count = np.zeros(n_tr)
    idx = np.floor((onsets + offset) / TR).astype(int)
    for w, t in enumerate(idx):
        if t >= 0:
            out[t] += words[w]
            count[t] += 1
    if mode == "mean":
        out[count > 1] /= count[count > 1, None]
    return out


def delayed(f, delays):
    blocks = []
    for dl in delays:
        b = np.zeros_like(f)
        if dl < len(f):
            b[dl:] = f[: len(f) - dl]
        blocks.append(b)
    return np.concatenate(blocks, axis=1)


def main():
    ba = sys.argv[1]
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        stories = {"beta": 70, "alpha": 55, "gamma": 40}  # name -> words
        n_layers, d = 3, 4
        with h5py.File(f"{tmp}/features.h5", "w") as f, h5py.File(f"{tmp}/bold.h5", "w") as b:
            b.attrs["tr_s"] = TR
            for name, n in stories.items():
                onsets = np.cumsum(rng.uniform(0.1, 0.6, n)) + 0.4
                hidden = rng.standard_normal((n_layers, n, d)).astype(np.float32)
                g = f.create_group(f"stories/{name}")
                g["hidden"] = hidden
                g["hidden"].attrs["layers"] = np.array([0, 5, 7], dtype=np.int64)
                g["onset"] = onsets
                g["offset"] = onsets + 0.1
                g["surprisal"] = np.ones(n, dtype=np.float32)
                n_tr = int(np.floor(onsets[-1] / TR)) + 6
                b[f"stories/{name}/data"] = rng.standard_normal((n_tr, 9)).astype(np.float32)
        checked = 0
        for mode in ("sum", "mean", "lanczos"):
            for layers, delays, offset in (([5], [1, 2, 3, 4, 5], 0.0), ([0, 7], [0, 2], 0.7)):
                out = f"{tmp}/design-{mode}-{len(layers)}.h5"
                cmd = [ba, "fit", "--features", f"{tmp}/features.h5", "--bold", f"{tmp}/bold.h5",
                       "--layer", ",".join(map(str, layers)), "--delays", ",".join(map(str, delays)),
                       "--aggregate", mode, "--tr-offset", str(offset), "--design-only", out]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    sys.exit(f"FAILED: {' '.join(cmd)}\n{proc.stderr}")
                expected, bounds = [], [0]
                with h5py.File(f"{tmp}/features.h5") as f, h5py.File(f"{tmp}/bold.h5") as b:
                    for name in sorted(stories):
                        slots = [list(f[f"stories/{name}/hidden"].attrs["layers"]).index(l) for l in layers]
                        words = np.concatenate([f[f"stories/{name}/hidden"][s] for s in slots], axis=1)
                        n_tr = b[f"stories/{name}/data"].shape[0]
                        feats = tr_features(words, f[f"stories/{name}/onset"][:], n_tr, mode, offset)
                        expected.append(delayed(feats, delays))
                        bounds.append(bounds[-1] + n_tr)
                expected = np.concatenate(expected)
                with h5py.File(out) as x:
                    got = x["X"][:]
                    got_bounds = x["story_bounds"][:]
                    got_names = [s.decode() for s in x["stories"][:]]
                assert got_names == sorted(stories), got_names
                assert list(got_bounds) == bounds, (got_bounds, bounds)
                assert got.shape == expected.shape, (got.shape, expected.shape)
                err = np.abs(got - expected).max()
                print(f"{mode:8s} layers={layers} delays={delays} offset={offset}: "
                      f"max |dX| = {err:.2e} over {got.size} entries")
                assert err < 1e-5 * max(1.0, np.abs(expected).max()), "design differs from the oracle"
                checked += 1
        print(f"{checked} designs match the numpy oracle")


if __name__ == "__main__":
    main()
