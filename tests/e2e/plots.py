#!/usr/bin/env python3
"""The figure tool makes the figures people look at: per-region bars from
scores.h5 files and a slice mosaic of a volume r map.

usage: plots.py BRAINALIGN MPIEXEC...
"""
import os
import subprocess
import sys
import tempfile

import matplotlib.image as mpimg
import nibabel as nib
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(HERE, "..", "..", "tools", "plot_scores.py")


def main():
    ba, mpiexec = sys.argv[1], sys.argv[2:]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([ba, "synth", "--out", tmp, "--quiet", "--voxels", "120", "--regions", "4",
                        "--stories", "2", "--words", "600"], check=True)
        scores = []
        for layer in (1, 2):
            out = f"{tmp}/layer-{layer}.h5"
            subprocess.run([*mpiexec, "-n", "2", ba, "fit", "--features", f"{tmp}/features.h5",
                            "--bold", f"{tmp}/bold-sub-01.h5", "--layer", str(layer), "--atlas",
                            f"{tmp}/atlas.h5", "--out", out, "--quiet"], check=True,
                           capture_output=True)
            scores.append(out)
        png = f"{tmp}/regions.png"
        subprocess.run([sys.executable, TOOL, *scores, "--out", png], check=True)
        img = mpimg.imread(png)
        assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 300, img.shape
        assert img[..., :3].std() > 0.05, "the bar chart is blank"
        # A volume map: a sphere of positive r in a 20^3 grid.
        grid = np.indices((20, 20, 20)) - 10
        r = np.where((grid ** 2).sum(0) < 36, 0.3, 0.0).astype(np.float32)
        nib.save(nib.Nifti1Image(r, np.diag([2.0, 2.0, 2.0, 1.0])), f"{tmp}/r.nii.gz")
        mosaic = f"{tmp}/mosaic.png"
        subprocess.run([sys.executable, TOOL, "--map", f"{tmp}/r.nii.gz", "--out", mosaic], check=True)
        img = mpimg.imread(mosaic)
        assert img[..., :3].std() > 0.05, "the mosaic is blank"
        # Bad input: scores without a region table.
        subprocess.run([*mpiexec, "-n", "1", ba, "fit", "--features", f"{tmp}/features.h5", "--bold",
                        f"{tmp}/bold-sub-01.h5", "--layer", "1", "--out", f"{tmp}/plain.h5", "--quiet"],
                       check=True, capture_output=True)
        bad = subprocess.run([sys.executable, TOOL, f"{tmp}/plain.h5", "--out", f"{tmp}/x.png"],
                             capture_output=True, text=True)
        assert bad.returncode != 0 and "no /roi table" in bad.stderr, bad.stderr
    print("plots: passed")


if __name__ == "__main__":
    main()
