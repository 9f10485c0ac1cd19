#!/usr/bin/env python3
"""Real data at the edges of `brainalign import` (issue 15), nibabel as the oracle.

usage: edges_import.py BRAINALIGN CASE
CASE is one of:
  gifti_external  a GIfTI whose DataArrays are ExternalFileBinary is read relative
                  to the .gii's folder, whatever the working directory; a missing
                  or short external file is an error naming it
  trims           per-story --trim-start/--trim-end (after a --story), a trims table
                  (story<TAB>trim_start<TAB>trim_end), the global form kept
  tr_header       the TR of NIfTI headers (pixdim[4] + xyzt_units; nibabel's own
                  example4d.nii.gz) and GIfTI TimeStep: --tr optional, a --tr that
                  contradicts the header is an error stating both; a 3-D NIfTI story
                  is an error
"""
import os
import subprocess
import sys
import tempfile

import h5py
import nibabel as nib
import numpy as np
from nibabel.gifti import GiftiDataArray, GiftiImage, GiftiMetaData

BA = None
RNG = np.random.default_rng(15)
NIB_DATA = "/usr/lib/python3/dist-packages/nibabel/tests/data"


def run(args, cwd=None, expect_ok=True):
    proc = subprocess.run([BA, *args], capture_output=True, text=True, timeout=300, cwd=cwd)
    if expect_ok and proc.returncode != 0:
        sys.exit(f"FAILED: {args}\n{proc.stdout}\n{proc.stderr}")
    return proc


def must_fail(args, parts, out, cwd=None):
    proc = run(args, cwd=cwd, expect_ok=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"{args}: exit 0\n{text}"
    for p in parts:
        assert p in text, f"{args}: message lacks {p!r}:\n{text}"
    assert not os.path.exists(out), f"{args}: left {out}"
    print("ok (rejected):", text.strip().splitlines()[-1])


def stories(path):
    with h5py.File(path) as f:
        return {k: f[f"stories/{k}/data"][:] for k in f["stories"]}, dict(f.attrs)


def write_external_gifti(gii, dat_name, data):
    """data [n_tr, n_vertices] float32 -> a .gii with one ExternalFileBinary DataArray per TR,
    the values in dat_name (relative to the .gii, as the GIfTI standard says)."""
    n_tr, n_v = data.shape
    folder = os.path.dirname(gii)
    with open(os.path.join(folder, dat_name), "wb") as fp:
        fp.write(np.ascontiguousarray(data, dtype="<f4").tobytes())
    arrays = []
    for t in range(n_tr):
        arrays.append(
            f'<DataArray Intent="NIFTI_INTENT_TIME_SERIES" DataType="NIFTI_TYPE_FLOAT32" '
            f'ArrayIndexingOrder="RowMajorOrder" Dimensionality="1" Dim0="{n_v}" '
            f'Encoding="ExternalFileBinary" Endian="LittleEndian" '
            f'ExternalFileName="{dat_name}" ExternalFileOffset="{t * n_v * 4}">'
            f'<MetaData></MetaData><Data></Data></DataArray>')
    with open(gii, "w") as fp:
        fp.write('<?xml version="1.0" encoding="UTF-8"?>\n'
                 '<!DOCTYPE GIFTI SYSTEM "http://www.nitrc.org/frs/download.php/115/gifti.dtd">\n'
                 f'<GIFTI Version="1.0" NumberOfDataArrays="{n_tr}"><MetaData></MetaData>'
                 '<LabelTable></LabelTable>' + "".join(arrays) + "</GIFTI>\n")


def case_gifti_external(tmp):
    sub = os.path.join(tmp, "sub-01", "func")
    os.makedirs(sub)
    lh = RNG.normal(size=(6, 5)).astype(np.float32)
    rh = RNG.normal(size=(6, 4)).astype(np.float32)
    write_external_gifti(f"{sub}/pie_L.func.gii", "pie_L.dat", lh)
    write_external_gifti(f"{sub}/pie_R.func.gii", "pie_R.dat", rh)
    # The oracle: nibabel reads the external data relative to the .gii.
    ref_lh = np.stack([d.data for d in nib.load(f"{sub}/pie_L.func.gii").darrays])
    np.testing.assert_array_equal(ref_lh, lh)
    # A decoy of the same name in the working directory must not be read.
    elsewhere = os.path.join(tmp, "elsewhere")
    os.makedirs(elsewhere)
    with open(f"{elsewhere}/pie_L.dat", "wb") as fp:
        fp.write(np.full(lh.size, 7.0, "<f4").tobytes())
    out = f"{tmp}/bold.h5"
    run(["import", "--format", "gifti", "--tr", "1.5", "--out", out, "--quiet", "--story", "pie",
         "--lh", f"{sub}/pie_L.func.gii", "--rh", f"{sub}/pie_R.func.gii"], cwd=elsewhere)
    got, _ = stories(out)
    np.testing.assert_array_equal(got["pie"], np.hstack([ref_lh, rh]))
    print("ok: ExternalFileBinary read relative to the .gii's folder, not the working directory")
    # A relative .gii path given from another folder.
    out2 = f"{tmp}/bold2.h5"
    run(["import", "--format", "gifti", "--tr", "1.5", "--out", out2, "--quiet", "--story", "pie",
         "--lh", "../sub-01/func/pie_L.func.gii"], cwd=elsewhere)
    np.testing.assert_array_equal(stories(out2)[0]["pie"], lh)
    print("ok: and with a relative .gii path")
    # Missing external file -> error naming it.
    os.rename(f"{sub}/pie_R.dat", f"{sub}/moved.dat")
    out3 = f"{tmp}/bold3.h5"
    must_fail(["import", "--format", "gifti", "--tr", "1.5", "--out", out3, "--story", "pie",
               "--lh", f"{sub}/pie_L.func.gii", "--rh", f"{sub}/pie_R.func.gii"],
              ["pie_R.func.gii", "pie_R.dat", "does not exist"], out3, cwd=elsewhere)
    # Short external file -> error.
    with open(f"{sub}/pie_R.dat", "wb") as fp:
        fp.write(np.zeros(rh.size - 3, "<f4").tobytes())
    must_fail(["import", "--format", "gifti", "--tr", "1.5", "--out", out3, "--story", "pie",
               "--lh", f"{sub}/pie_L.func.gii", "--rh", f"{sub}/pie_R.func.gii"],
              ["pie_R.func.gii", "pie_R.dat", "bytes"], out3, cwd=elsewhere)


def hdf5_story(path, n_tr, v=3):
    data = RNG.normal(size=(n_tr, v)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f["data"] = data
    return data


def case_trims(tmp):
    a = hdf5_story(f"{tmp}/a.hf5", 12)
    b = hdf5_story(f"{tmp}/b.hf5", 10)
    c = hdf5_story(f"{tmp}/c.hf5", 9)
    base = ["import", "--format", "hdf5", "--tr", "2", "--quiet"]
    # Per story: a trims 2 + 1, b 0 + 3, c takes the global 1 + 0.
    out = f"{tmp}/per_story.h5"
    run(base + ["--out", out, "--trim-start", "1",
                "--story", "a", "--file", f"{tmp}/a.hf5", "--trim-start", "2", "--trim-end", "1",
                "--story", "b", "--file", f"{tmp}/b.hf5", "--trim-start", "0", "--trim-end", "3",
                "--story", "c", "--file", f"{tmp}/c.hf5"])
    got, attrs = stories(out)
    np.testing.assert_array_equal(got["a"], a[2:-1])
    np.testing.assert_array_equal(got["b"], b[0:-3])
    np.testing.assert_array_equal(got["c"], c[1:])
    assert attrs["trim_start"] == 1 and attrs["trim_end"] == 0, attrs
    with h5py.File(out) as f:
        d = f["stories/a/data"].attrs
        assert d["trim_start"] == 2 and d["trim_end"] == 1
    print("ok: per-story --trim-start/--trim-end, global for the others")
    # The global form kept: before any --story, for every story.
    out = f"{tmp}/global.h5"
    run(base + ["--out", out, "--trim-start", "2", "--trim-end", "2",
                "--story", "a", "--file", f"{tmp}/a.hf5", "--story", "b", "--file", f"{tmp}/b.hf5"])
    got, _ = stories(out)
    np.testing.assert_array_equal(got["a"], a[2:-2])
    np.testing.assert_array_equal(got["b"], b[2:-2])
    print("ok: global trims")
    # A trims table (Narratives convention), with a header line; a per-story option overrides it.
    table = f"{tmp}/trims.tsv"
    with open(table, "w") as fp:
        fp.write("story\ttrim_start\ttrim_end\n# comment\na\t3\t2\nb\t1\t1\nc\t0\t4\nunused\t8\t8\n")
    out = f"{tmp}/table.h5"
    run(base + ["--out", out, "--trims", table,
                "--story", "a", "--file", f"{tmp}/a.hf5", "--story", "b", "--file", f"{tmp}/b.hf5",
                "--story", "c", "--file", f"{tmp}/c.hf5", "--trim-end", "1"])
    got, _ = stories(out)
    np.testing.assert_array_equal(got["a"], a[3:-2])
    np.testing.assert_array_equal(got["b"], b[1:-1])
    np.testing.assert_array_equal(got["c"], c[0:-1])
    print("ok: trims table, overridden per story")
    # A story missing from the table, a bad line, a trim leaving nothing.
    with open(f"{tmp}/short.tsv", "w") as fp:
        fp.write("a\t1\t1\n")
    out = f"{tmp}/bad.h5"
    must_fail(base + ["--out", out, "--trims", f"{tmp}/short.tsv", "--story", "a", "--file",
                      f"{tmp}/a.hf5", "--story", "b", "--file", f"{tmp}/b.hf5"],
              ["story b", "short.tsv"], out)
    with open(f"{tmp}/badline.tsv", "w") as fp:
        fp.write("a\t1\t1\nb\tone\t1\n")
    must_fail(base + ["--out", out, "--trims", f"{tmp}/badline.tsv", "--story", "a", "--file",
                      f"{tmp}/a.hf5"], ["badline.tsv:2"], out)
    must_fail(base + ["--out", out, "--story", "a", "--file", f"{tmp}/a.hf5", "--story", "b",
                      "--file", f"{tmp}/b.hf5", "--trim-start", "6", "--trim-end", "4"],
              ["story b", "10 TRs", "trimming 6 + 4"], out)
    # Not quiet: no "100% done" progress line before the error.
    proc = run(["import", "--format", "hdf5", "--tr", "2", "--out", out, "--story", "a", "--file",
                f"{tmp}/a.hf5", "--story", "b", "--file", f"{tmp}/b.hf5", "--trim-start", "10"],
               expect_ok=False)
    assert proc.returncode != 0 and "trimming 10 + 0" in proc.stderr, proc.stderr
    assert "100.0%" not in proc.stderr and "done in" not in proc.stderr, proc.stderr
    print("ok: no progress line saying done before the error")


def case_tr_header(tmp):
    ex = f"{NIB_DATA}/example4d.nii.gz"
    img = nib.load(ex)
    hdr_tr = float(img.header.get_zooms()[3])
    units = img.header.get_xyzt_units()[1]
    assert units in ("sec", "msec", "usec"), units
    tr_s = hdr_tr * {"sec": 1, "msec": 1e-3, "usec": 1e-6}[units]
    shape = img.shape[:3]
    mask = np.zeros(shape, np.uint8)
    mask[10:14, 20:23, 5:7] = 1
    nib.save(nib.Nifti1Image(mask, img.affine, img.header), f"{tmp}/mask.nii.gz")
    out = f"{tmp}/bold.h5"
    base = ["import", "--format", "nifti", "--mask", f"{tmp}/mask.nii.gz", "--quiet"]
    run(base + ["--out", out, "--story", "ex", "--file", ex])
    got, attrs = stories(out)
    assert abs(attrs["tr_s"] - tr_s) < 1e-9, (attrs["tr_s"], tr_s)
    data = np.asanyarray(img.dataobj, dtype=np.float64)
    ref = np.stack([data[..., t][mask != 0] for t in range(img.shape[3])]).astype(np.float32)
    np.testing.assert_allclose(got["ex"], ref, rtol=1e-6)
    print(f"ok: TR {tr_s} s from {os.path.basename(ex)}'s header, no --tr")
    run(base + ["--out", f"{tmp}/agree.h5", "--tr", repr(tr_s), "--story", "ex", "--file", ex])
    must_fail(base + ["--out", f"{tmp}/x.h5", "--tr", "2.5", "--story", "ex", "--file", ex],
              ["example4d.nii.gz", f"{tr_s:g} s", "--tr is 2.5 s"], f"{tmp}/x.h5")
    # Milliseconds in the header, and two files that disagree.
    vol = RNG.normal(size=(*shape[:2], 8, 5)).astype(np.float32)
    m8 = np.zeros((*shape[:2], 8), np.uint8)
    m8[0:3, 0:2, 0:2] = 1
    nib.save(nib.Nifti1Image(m8, np.eye(4)), f"{tmp}/m8.nii.gz")
    for name, tr_ms in (("ms1500", 1500.0), ("ms2000", 2000.0)):
        im = nib.Nifti1Image(vol, np.eye(4))
        im.header.set_xyzt_units("mm", "msec")
        im.header.set_zooms((1, 1, 1, tr_ms))
        nib.save(im, f"{tmp}/{name}.nii.gz")
    b8 = ["import", "--format", "nifti", "--mask", f"{tmp}/m8.nii.gz", "--quiet"]
    run(b8 + ["--out", f"{tmp}/ms.h5", "--story", "s", "--file", f"{tmp}/ms1500.nii.gz"])
    assert abs(stories(f"{tmp}/ms.h5")[1]["tr_s"] - 1.5) < 1e-9
    print("ok: a TR in milliseconds")
    must_fail(b8 + ["--out", f"{tmp}/x.h5", "--story", "s", "--file", f"{tmp}/ms1500.nii.gz",
                    "--story", "t", "--file", f"{tmp}/ms2000.nii.gz"],
              ["ms2000.nii.gz", "2 s", "1.5 s"], f"{tmp}/x.h5")
    # A header without a time unit: --tr is needed, and then used.
    nib.save(nib.Nifti1Image(vol, np.eye(4)), f"{tmp}/nounit.nii.gz")
    must_fail(b8 + ["--out", f"{tmp}/x.h5", "--story", "s", "--file", f"{tmp}/nounit.nii.gz"],
              ["nounit.nii.gz", "states no TR", "--tr"], f"{tmp}/x.h5")
    run(b8 + ["--out", f"{tmp}/nounit.h5", "--tr", "1.25", "--story", "s", "--file",
              f"{tmp}/nounit.nii.gz"])
    assert stories(f"{tmp}/nounit.h5")[1]["tr_s"] == 1.25
    # A 3-D volume as a story.
    nib.save(nib.Nifti1Image(vol[..., 0], np.eye(4)), f"{tmp}/three.nii.gz")
    must_fail(b8 + ["--out", f"{tmp}/x.h5", "--tr", "2", "--story", "s", "--file",
                    f"{tmp}/three.nii.gz"], ["three.nii.gz", "3-D", "4-D series expected"],
              f"{tmp}/x.h5")
    # GIfTI TimeStep metadata (ms, as FreeSurfer and fMRIPrep write it).
    g = RNG.normal(size=(4, 6)).astype(np.float32)
    arrays = [GiftiDataArray(r, intent="NIFTI_INTENT_TIME_SERIES", datatype="float32",
                             meta=GiftiMetaData({"TimeStep": "2000.000000"})) for r in g]
    nib.save(GiftiImage(darrays=arrays), f"{tmp}/ts_L.func.gii")
    gb = ["import", "--format", "gifti", "--quiet"]
    run(gb + ["--out", f"{tmp}/g.h5", "--story", "s", "--lh", f"{tmp}/ts_L.func.gii"])
    assert abs(stories(f"{tmp}/g.h5")[1]["tr_s"] - 2.0) < 1e-9
    must_fail(gb + ["--out", f"{tmp}/x.h5", "--tr", "1.5", "--story", "s", "--lh",
                    f"{tmp}/ts_L.func.gii"], ["ts_L.func.gii", "2 s", "1.5 s"], f"{tmp}/x.h5")
    # nibabel's task.func.gii (gifticlib wrote TimeStep 0: not stated).
    task = "/usr/lib/python3/dist-packages/nibabel/gifti/tests/data/task.func.gii"
    must_fail(gb + ["--out", f"{tmp}/x.h5", "--story", "s", "--lh", task],
              ["task.func.gii", "states no TR"], f"{tmp}/x.h5")
    run(gb + ["--out", f"{tmp}/task.h5", "--tr", "2", "--story", "s", "--lh", task])
    ref = np.stack([d.data for d in nib.load(task).darrays])
    np.testing.assert_array_equal(stories(f"{tmp}/task.h5")[0]["s"], ref)
    print("ok: GIfTI TimeStep (ms); TimeStep 0 of nibabel's task.func.gii = not stated")


CASES = {"gifti_external": case_gifti_external, "trims": case_trims, "tr_header": case_tr_header}


def main():
    global BA
    if len(sys.argv) != 3 or sys.argv[2] not in CASES:
        sys.exit(__doc__)
    BA = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix=f"ba-edges-{sys.argv[2]}-") as tmp:
        CASES[sys.argv[2]](tmp)
    print(f"{sys.argv[2]}: all checks passed")


if __name__ == "__main__":
    main()
