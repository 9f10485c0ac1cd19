#!/usr/bin/env python3
"""Oracle tests of `brainalign import` and `brainalign maps` against nibabel.

usage: nibabel_importers.py BRAINALIGN MPIEXEC... -- CASE
CASE is one of:
  gifti    GIfTI surfaces (per-TR DataArrays, one 2-D array, row/column-major,
           int32/float32, base64/gzip/ASCII) -> bold.h5, averaged, trimmed
  nifti    4-D NIfTI (int16 big-endian with scl_slope/inter, float32 .nii.gz)
           + mask (sform with shear, or qform only) -> bold.h5
  hdf5     LeBel-style .hf5 per story, a file of story datasets, --mask
  annot    .annot (nibabel's new colour table, and a hand-written old one)
           -> atlas.h5, checked against nibabel.freesurfer.read_annot
  labels   NIfTI label volume + FreeSurfer LUT or TSV -> atlas.h5
  maps     scores back to NIfTI / GIfTI, read with nibabel (values, shapes,
           affine), also under mpiexec -n 2
  bad      bad inputs: clear message, non-zero exit, no output file left

The files are generated here with nibabel (Debian python3-nibabel), which is
only a test oracle. Every comparison is with numpy on the generated arrays.
"""
import glob
import os
import struct
import subprocess
import sys
import tempfile

import h5py
import nibabel as nib
import numpy as np
from nibabel.gifti import GiftiDataArray, GiftiImage

BA = None
MPIEXEC = None
RNG = np.random.default_rng(20250513)


def run(args, expect_ok=True, ranks=None):
    cmd = ([*MPIEXEC, "-n", str(ranks)] if ranks else []) + [BA, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if expect_ok and proc.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def expect_failure(args, message_parts, out_paths, tmp):
    """Non-zero exit, every part in the message, no output or temporary file."""
    proc = run(args, expect_ok=False)
    text = proc.stderr + proc.stdout
    assert proc.returncode != 0, f"{args}: exit 0 on bad input\n{text}"
    for part in message_parts:
        assert part in text, f"{args}: message lacks {part!r}:\n{text}"
    for p in out_paths:
        assert not os.path.exists(p), f"{args}: left {p} behind"
    leftovers = glob.glob(os.path.join(tmp, ".*partial*"))
    assert not leftovers, f"{args}: left temporary files {leftovers}"
    print(f"ok (rejected): {text.strip().splitlines()[-1]}")


# ---- file makers ---------------------------------------------------------------


def save_gifti(path, data, layout="per_tr", dtype=np.float32, encoding="GIFTI_ENCODING_B64GZ",
               ordering="RowMajorOrder"):
    """data [n_tr, n_vertices] -> a .func.gii."""
    data = np.asarray(data)
    if layout == "per_tr":
        arrays = [GiftiDataArray(row.astype(dtype), intent="NIFTI_INTENT_NONE",
                                 datatype=np.dtype(dtype).name, encoding=encoding)
                  for row in data]
    else:  # one [n_vertices, n_tr] array
        arrays = [GiftiDataArray(np.ascontiguousarray(data.T.astype(dtype)),
                                 intent="NIFTI_INTENT_TIME_SERIES", datatype=np.dtype(dtype).name,
                                 encoding=encoding, ordering=ordering)]
    nib.save(GiftiImage(darrays=arrays), path)
    return data.astype(dtype).astype(np.float32)


def sheared_affine():
    a = np.array([[-2.0, 0.1, 0.0, 90.0],
                  [0.05, 2.0, 0.2, -126.0],
                  [0.0, -0.1, 2.5, -72.0],
                  [0, 0, 0, 1]])
    return a


def make_mask(shape, fraction=0.5):
    mask = (RNG.random(shape) < fraction).astype(np.uint8)
    mask[0, 0, 0] = 1
    return mask


def h5_data(path, story):
    with h5py.File(path) as f:
        return f[f"stories/{story}/data"][:]


# ---- cases -----------------------------------------------------------------------


def case_gifti(tmp):
    n_lh, n_rh = 7, 5
    stories = {"pieman": 12, "tunnel": 9}
    subjects = []
    for s in range(2):
        files = {}
        for story, n_tr in stories.items():
            lh = RNG.normal(size=(n_tr, n_lh)) * 10 + 100
            rh = RNG.normal(size=(n_tr, n_rh)) * 10 + 100
            if story == "pieman":
                lh_kept = save_gifti(f"{tmp}/s{s}_{story}_L.func.gii", lh)
                rh_kept = save_gifti(f"{tmp}/s{s}_{story}_R.func.gii", rh, dtype=np.int32,
                                     encoding="GIFTI_ENCODING_B64BIN")
            else:
                lh_kept = save_gifti(f"{tmp}/s{s}_{story}_L.func.gii", lh, layout="one",
                                     encoding="GIFTI_ENCODING_ASCII")
                rh_kept = save_gifti(f"{tmp}/s{s}_{story}_R.func.gii", rh, layout="one",
                                     ordering="ColumnMajorOrder")
            files[story] = (f"{tmp}/s{s}_{story}_L.func.gii", f"{tmp}/s{s}_{story}_R.func.gii",
                            np.hstack([lh_kept, rh_kept]))
            # nibabel is the reference reader: what it reads is what we must import.
            # agg_data: per-TR arrays -> [n_tr, n_vertices]; one 2-D array -> as
            # stored, [n_vertices, n_tr].
            ref_lh = np.asarray(nib.load(files[story][0]).agg_data())
            ref_rh = np.asarray(nib.load(files[story][1]).agg_data())
            if story != "pieman":
                ref_lh, ref_rh = ref_lh.T, ref_rh.T
            ref = np.hstack([ref_lh, ref_rh]).astype(np.float32)
            assert np.allclose(ref, files[story][2]), "nibabel does not read back what it wrote"
            files[story] = (*files[story][:2], ref)
        subjects.append(files)

    # One subject, story triples on the command line.
    out = f"{tmp}/bold1.h5"
    args = ["import", "--format", "gifti", "--tr", "1.5", "--out", out, "--quiet"]
    for story, (lh, rh, _) in subjects[0].items():
        args += ["--story", story, "--lh", lh, "--rh", rh]
    run(args)
    with h5py.File(out) as f:
        assert f.attrs["tr_s"] == 1.5
        assert f["surface/n_vertices_lh"][0] == n_lh and f["surface/n_vertices_rh"][0] == n_rh
        assert f.attrs["space"] in ("surface", b"surface")
        for story, (_, _, ref) in subjects[0].items():
            got = f[f"stories/{story}/data"][:]
            assert got.dtype == np.float32 and got.shape == ref.shape, (got.shape, ref.shape)
            assert np.array_equal(got, ref), f"{story}: imported data differ from nibabel's"
            assert f[f"stories/{story}/data"].attrs["n_subjects"] == 1
    print("ok: one subject, per-TR and 2-D arrays, both orderings, int32/float32, 3 encodings")

    # Two subjects averaged, trimmed, from a list file (relative paths).
    listing = f"{tmp}/inputs.tsv"
    with open(listing, "w") as fp:
        fp.write("# story\tlh\trh\n")
        for files in subjects:
            for story, (lh, rh, _) in files.items():
                fp.write(f"{story}\t{os.path.basename(lh)}\t{os.path.basename(rh)}\n")
    out = f"{tmp}/bold_avg.h5"
    run(["import", "--format", "gifti", "--tr", "1.5", "--list", listing, "--average",
         "--trim-start", "2", "--trim-end", "1", "--out", out, "--quiet"])
    for story, n_tr in stories.items():
        ref = np.mean([subjects[s][story][2] for s in range(2)], axis=0)[2:n_tr - 1]
        got = h5_data(out, story)
        assert got.shape == ref.shape, (got.shape, ref.shape)
        err = np.abs(got - ref).max()
        assert err < 1e-4, f"{story}: averaged data off by {err}"
        with h5py.File(out) as f:
            assert f[f"stories/{story}/data"].attrs["n_subjects"] == 2
            assert f.attrs["trim_start"] == 2 and f.attrs["trim_end"] == 1
    print("ok: --average over 2 subjects, --trim-start 2 --trim-end 1, --list (max err "
          f"{err:.1e})")

    # One hemisphere only.
    out = f"{tmp}/bold_lh.h5"
    lh, _, ref = subjects[0]["pieman"]
    run(["import", "--format", "gifti", "--tr", "1.5", "--story", "pieman", "--lh", lh,
         "--out", out, "--quiet"])
    assert np.array_equal(h5_data(out, "pieman"), ref[:, :n_lh])
    with h5py.File(out) as f:
        assert f["surface/n_vertices_rh"][0] == 0
    print("ok: left hemisphere alone")


def write_volume(path, data, affine, dtype, slope=None, inter=None, big_endian=False,
                 sform=True):
    img = nib.Nifti1Image(data.astype(dtype), affine)
    hdr = img.header
    if big_endian:
        hdr = hdr.as_byteswapped(">")
        img = nib.Nifti1Image(data.astype(np.dtype(dtype).newbyteorder(">")), affine, hdr)
    if slope is not None:
        img.header.set_slope_inter(slope, inter)
    if not sform:
        img.header.set_sform(None, code=0)
        img.header.set_qform(affine, code=1)
    img.set_data_dtype(np.dtype(dtype).newbyteorder(">") if big_endian else dtype)
    nib.save(img, path)
    return nib.load(path)


def case_nifti(tmp):
    shape = (6, 5, 4)
    affine = sheared_affine()
    mask = make_mask(shape)
    write_volume(f"{tmp}/mask.nii.gz", mask, affine, np.uint8)
    raw0 = RNG.integers(-2000, 2000, size=shape + (10,))
    img0 = write_volume(f"{tmp}/sub0.nii", raw0, affine, np.int16, slope=0.5, inter=3.0,
                        big_endian=True)
    assert img0.header.endianness == ">"
    raw1 = RNG.normal(size=shape + (10,)) * 50
    img1 = write_volume(f"{tmp}/sub1.nii.gz", raw1, affine, np.float32)
    ref0 = img0.get_fdata()[mask != 0].T.astype(np.float32)
    ref1 = img1.get_fdata()[mask != 0].T.astype(np.float32)
    assert ref0.shape == (10, mask.sum())

    out = f"{tmp}/bold.h5"
    run(["import", "--format", "nifti", "--mask", f"{tmp}/mask.nii.gz", "--tr", "2",
         "--story", "a", "--file", f"{tmp}/sub0.nii", "--story", "b", "--file",
         f"{tmp}/sub1.nii.gz", "--out", out, "--quiet"])
    with h5py.File(out) as f:
        assert np.array_equal(f["mask"][:], (mask != 0).astype(np.int32)), "mask differs"
        aff_err = np.abs(f["affine"][:] - nib.load(f"{tmp}/mask.nii.gz").affine).max()
        assert aff_err < 1e-5, f"affine off by {aff_err}"
        assert np.abs(f["stories/a/data"][:] - ref0).max() < 1e-5, "scaled int16 big-endian"
        assert np.abs(f["stories/b/data"][:] - ref1).max() < 1e-5, "float32 gz"
        assert f.attrs["tr_s"] == 2.0
    print(f"ok: int16 big-endian scaled and float32 .nii.gz, C-order mask voxels "
          f"({mask.sum()} of {mask.size}), affine err {aff_err:.1e}")

    # Average of the two as subjects of one story, trimmed.
    out = f"{tmp}/bold_avg.h5"
    run(["import", "--format", "nifti", "--mask", f"{tmp}/mask.nii.gz", "--tr", "2",
         "--average", "--trim-start", "3", "--story", "a", "--file", f"{tmp}/sub0.nii",
         "--story", "a", "--file", f"{tmp}/sub1.nii.gz", "--out", out, "--quiet"])
    ref = ((ref0.astype(np.float64) + ref1) / 2)[3:]
    assert np.abs(h5_data(out, "a") - ref).max() < 1e-4
    print("ok: --average of NIfTI subjects")

    # A qform-only mask: the affine must be nibabel's qform affine.
    write_volume(f"{tmp}/mask_q.nii", mask, np.diag([2.0, 2.5, 3.0, 1.0]) @
                 np.array([[1, 0, 0, -5], [0, 1, 0, 7], [0, 0, 1, 2], [0, 0, 0, 1.0]]),
                 np.uint8, sform=False)
    qimg = nib.load(f"{tmp}/mask_q.nii")
    assert qimg.header["sform_code"] == 0 and qimg.header["qform_code"] == 1
    write_volume(f"{tmp}/vol_q.nii", raw1[..., :4], qimg.affine, np.float32, sform=False)
    out = f"{tmp}/bold_q.h5"
    run(["import", "--format", "nifti", "--mask", f"{tmp}/mask_q.nii", "--tr", "2",
         "--story", "q", "--file", f"{tmp}/vol_q.nii", "--out", out, "--quiet"])
    with h5py.File(out) as f:
        assert np.abs(f["affine"][:] - qimg.affine).max() < 1e-4
    print("ok: qform-only affine")


def case_hdf5(tmp):
    v = 13
    stories = {"wheretheressmoke": 11, "adollshouse": 8}
    ref = {}
    for story, n_tr in stories.items():
        ref[story] = RNG.normal(size=(n_tr, v)).astype(np.float32)
        with h5py.File(f"{tmp}/{story}.hf5", "w") as f:
            f["data"] = ref[story].astype(np.float64)
    out = f"{tmp}/bold.h5"
    args = ["import", "--format", "hdf5", "--tr", "2.0045", "--out", out, "--quiet",
            "--trim-end", "1"]
    for story in stories:
        args += ["--story", story, "--file", f"{tmp}/{story}.hf5"]
    run(args)
    for story in stories:
        assert np.array_equal(h5_data(out, story), ref[story][:-1])
    with h5py.File(out) as f:
        assert abs(f.attrs["tr_s"] - 2.0045) < 1e-12
        assert "mask" not in f and "surface" not in f
    print("ok: one .hf5 per story (LeBel layout), float64 -> float32, trimmed")

    with h5py.File(f"{tmp}/all.h5", "w") as f:
        for story in stories:
            f[story] = ref[story]
        f["notes/x"] = np.zeros(3)  # a group: not a story
    out = f"{tmp}/bold_all.h5"
    run(["import", "--format", "hdf5", "--tr", "2", "--file", f"{tmp}/all.h5", "--out", out,
         "--quiet"])
    with h5py.File(out) as f:
        assert sorted(f["stories"]) == sorted(stories)
    for story in stories:
        assert np.array_equal(h5_data(out, story), ref[story])
    print("ok: every 2-D dataset of one file as a story")

    shape = (3, 3, 3)
    mask = np.zeros(shape, np.uint8)
    mask.flat[RNG.choice(27, v, replace=False)] = 1
    write_volume(f"{tmp}/mask.nii.gz", mask, np.eye(4), np.uint8)
    out = f"{tmp}/bold_mask.h5"
    run(["import", "--format", "hdf5", "--tr", "2", "--mask", f"{tmp}/mask.nii.gz",
         "--story", "adollshouse", "--file", f"{tmp}/all.h5", "--dataset", "adollshouse",
         "--out", out, "--quiet"])
    with h5py.File(out) as f:
        assert np.array_equal(f["mask"][:], mask.astype(np.int32))
        assert np.array_equal(f["stories/adollshouse/data"][:], ref["adollshouse"])
    print("ok: --dataset and --mask with HDF5 responses")


def write_old_annot(path, vno_values, ctab, names):
    """A FreeSurfer .annot with the old colour-table layout (entry count > 0)."""
    with open(path, "wb") as fp:
        fp.write(struct.pack(">i", len(vno_values)))
        for vno, value in vno_values:
            fp.write(struct.pack(">ii", vno, value))
        fp.write(struct.pack(">ii", 1, len(names)))  # tag, number of entries
        orig = b"/some/ColorLUT.txt\x00"
        fp.write(struct.pack(">i", len(orig)) + orig)
        for name, rgbt in zip(names, ctab):
            b = name.encode() + b"\x00"
            fp.write(struct.pack(">i", len(b)) + b)
            fp.write(struct.pack(">iiii", *rgbt))


def expected_atlas(hemis):
    """Region names per vertex from nibabel's read_annot, with our rules."""
    names_out, per_vertex = [], []
    for prefix, path in hemis:
        labels, ctab, names = nib.freesurfer.read_annot(path)
        names = [n.decode() if isinstance(n, bytes) else n for n in names]
        keep = [n for n in names if n.lower() not in ("unknown", "medial_wall", "medialwall")]
        names_out += [prefix + n for n in keep]
        for lab in labels:
            n = names[lab] if lab >= 0 else None
            per_vertex.append(prefix + n if n and n in keep else None)
    return names_out, per_vertex


def check_atlas(path, names_ref, per_vertex_ref):
    with h5py.File(path) as f:
        labels = f["labels"][:]
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["names"][:]]
    assert names == names_ref, f"region names differ:\n{names}\n{names_ref}"
    got = [names[l] if l >= 0 else None for l in labels]
    assert got == per_vertex_ref, "vertex regions differ from nibabel's"
    return labels


def case_annot(tmp):
    destrieux = ["Unknown", "G_and_S_frontomargin", "G_and_S_occipital_inf",
                 "G_front_inf-Opercular_part", "G_temp_sup-Lateral", "Medial_wall",
                 "S_temporal_sup"]
    ctab = np.array([[0, 0, 0, 0], [23, 220, 60, 0], [23, 60, 180, 0], [220, 20, 100, 0],
                     [60, 220, 180, 0], [50, 50, 50, 0], [223, 220, 60, 0]])
    n_lh, n_rh = 40, 33
    lab_lh = RNG.integers(-1, len(destrieux), size=n_lh)
    lab_rh = RNG.integers(0, len(destrieux), size=n_rh)
    nib.freesurfer.write_annot(f"{tmp}/lh.aparc.a2009s.annot", lab_lh, ctab, destrieux)
    nib.freesurfer.write_annot(f"{tmp}/rh.aparc.a2009s.annot", lab_rh, ctab, destrieux)
    out = f"{tmp}/atlas.h5"
    run(["import", "--format", "annot", "--lh", f"{tmp}/lh.aparc.a2009s.annot", "--rh",
         f"{tmp}/rh.aparc.a2009s.annot", "--out", out, "--quiet"])
    names_ref, per_vertex = expected_atlas([("lh.", f"{tmp}/lh.aparc.a2009s.annot"),
                                            ("rh.", f"{tmp}/rh.aparc.a2009s.annot")])
    labels = check_atlas(out, names_ref, per_vertex)
    assert len(labels) == n_lh + n_rh and (labels == -1).sum() > 0
    print(f"ok: new-format .annot pair, {len(names_ref)} regions, "
          f"{(labels >= 0).sum()} of {len(labels)} vertices labelled (as nibabel)")

    # Old colour-table layout, vertices listed out of order.
    values = [int(c[0] + c[1] * 256 + c[2] * 65536) for c in ctab]
    order = RNG.permutation(n_lh)
    write_old_annot(f"{tmp}/lh.old.annot",
                    [(int(v), values[lab_lh[v]] if lab_lh[v] >= 0 else 0) for v in order],
                    ctab, destrieux)
    # nibabel ignores the vertex numbers; compare with vertices in file order resolved.
    labels_nb, _, names_nb = nib.freesurfer.read_annot(f"{tmp}/lh.old.annot")
    by_vertex = np.empty(n_lh, int)
    by_vertex[order] = labels_nb
    # (entry 0, Unknown, has colour 0, which nibabel reads as "no label": -1)
    assert np.array_equal(by_vertex, np.where(lab_lh == 0, -1, lab_lh)), \
        "nibabel disagrees with the old file written"
    out = f"{tmp}/atlas_old.h5"
    run(["import", "--format", "annot", "--lh", f"{tmp}/lh.old.annot", "--out", out, "--quiet"])
    keep = [n for n in destrieux if n not in ("Unknown", "Medial_wall")]
    per_vertex = ["lh." + destrieux[l] if l >= 0 and destrieux[l] in keep else None
                  for l in lab_lh]
    check_atlas(out, ["lh." + n for n in keep], per_vertex)
    print("ok: old-format .annot, vertex numbers honoured")

    # Checked against a surface bold.h5.
    save_gifti(f"{tmp}/L.func.gii", RNG.normal(size=(4, n_lh)))
    save_gifti(f"{tmp}/R.func.gii", RNG.normal(size=(4, n_rh)))
    run(["import", "--format", "gifti", "--tr", "1.5", "--story", "s", "--lh", f"{tmp}/L.func.gii",
         "--rh", f"{tmp}/R.func.gii", "--out", f"{tmp}/bold.h5", "--quiet"])
    run(["import", "--format", "annot", "--lh", f"{tmp}/lh.aparc.a2009s.annot", "--rh",
         f"{tmp}/rh.aparc.a2009s.annot", "--bold", f"{tmp}/bold.h5", "--out",
         f"{tmp}/atlas_b.h5", "--quiet"])
    print("ok: sizes agree with bold.h5")


def case_labels(tmp):
    shape = (5, 4, 3)
    mask = make_mask(shape, 0.7)
    affine = sheared_affine()
    write_volume(f"{tmp}/mask.nii.gz", mask, affine, np.uint8)
    vol = RNG.normal(size=shape + (6,)).astype(np.float32)
    write_volume(f"{tmp}/bold.nii.gz", vol, affine, np.float32)
    run(["import", "--format", "nifti", "--mask", f"{tmp}/mask.nii.gz", "--tr", "1", "--story",
         "s", "--file", f"{tmp}/bold.nii.gz", "--out", f"{tmp}/bold.h5", "--quiet"])
    lut = {0: "Unknown", 11101: "ctx_lh_G_and_S_frontomargin", 11102: "ctx_lh_G_and_S_occipital_inf",
           12150: "ctx_rh_S_temporal_sup", 17: "Left-Hippocampus", 99: "never-present"}
    labels = RNG.choice([0, 11101, 11102, 12150, 17, 555], size=shape).astype(np.int32)
    write_volume(f"{tmp}/labels.nii.gz", labels, affine, np.int32)
    with open(f"{tmp}/LUT.txt", "w") as fp:
        fp.write("#$Id: FreeSurferColorLUT.txt\n#No. Label Name:   R   G   B   A\n\n")
        for idx, name in lut.items():
            fp.write(f"{idx:<5d} {name:<40s} {idx % 255:3d} 20 30 0\n")
    with open(f"{tmp}/labels.tsv", "w") as fp:
        fp.write("index\tname\n")
        for idx, name in lut.items():
            fp.write(f"{idx}\t{name}\n")
    present = sorted(i for i in lut if i != 0 and (labels == i).any())
    names_ref = [lut[i] for i in present]
    per_voxel = [lut[l] if l in present else None for l in labels[mask != 0]]
    for table in ("LUT.txt", "labels.tsv"):
        out = f"{tmp}/atlas_{table}.h5"
        run(["import", "--format", "nifti-labels", "--labels", f"{tmp}/labels.nii.gz", "--table",
             f"{tmp}/{table}", "--bold", f"{tmp}/bold.h5", "--out", out, "--quiet"])
        check_atlas(out, names_ref, per_voxel)
    out = f"{tmp}/atlas_mask.h5"
    run(["import", "--format", "nifti-labels", "--labels", f"{tmp}/labels.nii.gz", "--table",
         f"{tmp}/LUT.txt", "--mask", f"{tmp}/mask.nii.gz", "--out", out, "--quiet"])
    check_atlas(out, names_ref, per_voxel)
    print(f"ok: label volume with a FreeSurfer LUT and a TSV, {len(names_ref)} regions, "
          f"{sum(p is not None for p in per_voxel)} of {len(per_voxel)} mask voxels labelled")


def write_scores(path, n_voxels, n_folds=5):
    r_folds = RNG.uniform(-0.2, 0.6, size=(n_folds, n_voxels)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f["r_folds"] = r_folds
        f["r"] = r_folds.mean(axis=0)
        f["alpha"] = RNG.uniform(0.1, 1e8, size=(n_folds, n_voxels)).astype(np.float32)
    return r_folds.mean(axis=0).astype(np.float32), r_folds


def case_maps(tmp):
    # Volume.
    shape = (7, 6, 5)
    mask = make_mask(shape, 0.4)
    affine = sheared_affine()
    write_volume(f"{tmp}/mask.nii.gz", mask, affine, np.uint8)
    write_volume(f"{tmp}/bold.nii.gz", RNG.normal(size=shape + (5,)), affine, np.float32)
    run(["import", "--format", "nifti", "--mask", f"{tmp}/mask.nii.gz", "--tr", "1.5",
         "--story", "s", "--file", f"{tmp}/bold.nii.gz", "--out", f"{tmp}/bold.h5", "--quiet"])
    r, r_folds = write_scores(f"{tmp}/scores.h5", int(mask.sum()))
    for ranks in (None, 2):
        prefix = f"{tmp}/vol{ranks or 1}"
        run(["maps", "--scores", f"{tmp}/scores.h5", "--bold", f"{tmp}/bold.h5", "--out", prefix,
             "--dataset", "r", "--dataset", "/r_folds"], ranks=ranks)
        img = nib.load(f"{prefix}_r.nii.gz")
        data = img.get_fdata()
        assert data.shape == shape, data.shape
        assert np.array_equal(data[mask != 0].astype(np.float32), r), "r values misplaced"
        assert np.all(data[mask == 0] == 0), "outside the mask must be 0"
        aff_err = np.abs(img.affine - nib.load(f"{tmp}/mask.nii.gz").affine).max()
        assert aff_err < 1e-5, f"affine off by {aff_err}"
        img4 = nib.load(f"{prefix}_r_folds.nii.gz")
        assert img4.shape == shape + (5,), img4.shape
        d4 = img4.get_fdata()
        for k in range(5):
            assert np.array_equal(d4[..., k][mask != 0].astype(np.float32), r_folds[k])
    print(f"ok: volume maps (3-D r, 4-D r_folds), affine err {aff_err:.1e}, 1 and 2 ranks")

    # Surface.
    n_lh, n_rh = 9, 6
    save_gifti(f"{tmp}/L.func.gii", RNG.normal(size=(4, n_lh)))
    save_gifti(f"{tmp}/R.func.gii", RNG.normal(size=(4, n_rh)))
    run(["import", "--format", "gifti", "--tr", "1.5", "--story", "s", "--lh", f"{tmp}/L.func.gii",
         "--rh", f"{tmp}/R.func.gii", "--out", f"{tmp}/sbold.h5", "--quiet"])
    r, r_folds = write_scores(f"{tmp}/sscores.h5", n_lh + n_rh, 3)
    os.makedirs(f"{tmp}/surf", exist_ok=True)
    run(["maps", "--scores", f"{tmp}/sscores.h5", "--bold", f"{tmp}/sbold.h5", "--out",
         f"{tmp}/surf/", "--dataset", "r", "--dataset", "r_folds"])
    lh = nib.load(f"{tmp}/surf/r.lh.func.gii")
    rh = nib.load(f"{tmp}/surf/r.rh.func.gii")
    assert len(lh.darrays) == 1 and len(rh.darrays) == 1
    assert np.array_equal(lh.darrays[0].data, r[:n_lh]) and np.array_equal(rh.darrays[0].data, r[n_lh:])
    assert lh.meta.get("AnatomicalStructurePrimary") == "CortexLeft"
    folds = nib.load(f"{tmp}/surf/r_folds.rh.func.gii")
    assert len(folds.darrays) == 3
    for k in range(3):
        assert np.array_equal(folds.darrays[k].data, r_folds[k, n_lh:])
    print("ok: surface maps, one .func.gii per hemisphere, k DataArrays for r_folds")


def case_bad(tmp):
    out = f"{tmp}/bold.h5"
    g = f"{tmp}/g"
    os.makedirs(g)
    save_gifti(f"{g}/a_L.func.gii", RNG.normal(size=(10, 6)))
    save_gifti(f"{g}/a_R.func.gii", RNG.normal(size=(9, 4)))
    save_gifti(f"{g}/b_L.func.gii", RNG.normal(size=(10, 5)))
    save_gifti(f"{g}/b_R.func.gii", RNG.normal(size=(10, 4)))
    save_gifti(f"{g}/c_R.func.gii", RNG.normal(size=(10, 4)))
    base = ["import", "--format", "gifti", "--tr", "1.5", "--out", out]
    expect_failure(base + ["--story", "a", "--lh", f"{g}/a_L.func.gii", "--rh", f"{g}/a_R.func.gii"],
                   ["a_L.func.gii", "a_R.func.gii", "story a", "10 TRs", "9"], [out], tmp)
    expect_failure(base + ["--story", "c", "--lh", f"{g}/a_L.func.gii", "--rh", f"{g}/c_R.func.gii",
                           "--story", "b", "--lh", f"{g}/b_L.func.gii", "--rh", f"{g}/b_R.func.gii"],
                   ["b_L.func.gii", "story b", "5 lh vertices", "6"], [out], tmp)
    nan = RNG.normal(size=(8, 6))
    nan[5, 3] = np.nan
    save_gifti(f"{g}/nan_L.func.gii", nan)
    save_gifti(f"{g}/nan_R.func.gii", RNG.normal(size=(8, 4)))
    expect_failure(base + ["--story", "n", "--lh", f"{g}/nan_L.func.gii", "--rh", f"{g}/nan_R.func.gii"],
                   ["nan_L.func.gii", "story n", "TR 5", "lh vertex 3", "NaN"], [out], tmp)
    inf = RNG.normal(size=(8, 4))
    inf[7, 2] = np.inf
    save_gifti(f"{g}/inf_R.func.gii", inf)
    expect_failure(base + ["--story", "n", "--lh", f"{g}/b_L.func.gii", "--rh", f"{g}/inf_R.func.gii"],
                   ["hemispheres disagree"], [out], tmp)
    save_gifti(f"{g}/inf_L.func.gii", RNG.normal(size=(8, 6)))
    expect_failure(base + ["--story", "n", "--lh", f"{g}/inf_L.func.gii", "--rh", f"{g}/inf_R.func.gii"],
                   ["inf_R.func.gii", "TR 7", "rh vertex 2", "infinite"], [out], tmp)
    # A NaN inside trimmed-away TRs is dropped with them.
    run(base + ["--story", "n", "--lh", f"{g}/nan_L.func.gii", "--rh", f"{g}/nan_R.func.gii",
                "--trim-end", "3", "--quiet"])
    os.unlink(out)
    with open(f"{g}/b_L.func.gii", "rb") as fp:
        whole = fp.read()
    with open(f"{g}/trunc_L.func.gii", "wb") as fp:
        fp.write(whole[: len(whole) * 2 // 3])
    expect_failure(base + ["--story", "t", "--lh", f"{g}/trunc_L.func.gii", "--rh", f"{g}/b_R.func.gii"],
                   ["trunc_L.func.gii", "GIfTI"], [out], tmp)
    expect_failure(base + ["--story", "a", "--lh", f"{g}/b_L.func.gii", "--story", "a", "--lh",
                           f"{g}/b_L.func.gii"], ["story a is given twice", "--average"], [out], tmp)
    expect_failure(["import", "--format", "gifti", "--out", out, "--story", "a", "--lh",
                    f"{g}/b_L.func.gii"], ["--tr"], [out], tmp)
    expect_failure(base + ["--story", "a", "--lh", f"{g}/b_L.func.gii", "--trim-start", "6",
                           "--trim-end", "4"], ["10 TRs", "trimming 6 + 4"], [out], tmp)
    expect_failure(base + ["--story", "a", "--lh", f"{g}/missing.func.gii"],
                   ["missing.func.gii", "no such file"], [out], tmp)

    # NIfTI.
    shape = (4, 3, 3)
    mask = make_mask(shape, 0.6)
    write_volume(f"{tmp}/mask.nii.gz", mask, np.eye(4), np.uint8)
    write_volume(f"{tmp}/mask_small.nii.gz", mask[:3], np.eye(4), np.uint8)
    good = RNG.normal(size=shape + (7,)).astype(np.float32)
    write_volume(f"{tmp}/good.nii", good, np.eye(4), np.float32)
    nbase = ["import", "--format", "nifti", "--tr", "2", "--out", out]
    expect_failure(nbase + ["--mask", f"{tmp}/mask_small.nii.gz", "--story", "s", "--file",
                            f"{tmp}/good.nii"], ["good.nii", "grid 4x3x3", "3x3x3"], [out], tmp)
    write_volume(f"{tmp}/shifted.nii", good, np.diag([1, 1, 2.0, 1]), np.float32)
    expect_failure(nbase + ["--mask", f"{tmp}/mask.nii.gz", "--story", "s", "--file",
                            f"{tmp}/shifted.nii"], ["shifted.nii", "affine differs"], [out], tmp)
    bad = good.copy()
    i, j, k = np.argwhere(mask)[2]
    bad[i, j, k, 4] = np.nan
    write_volume(f"{tmp}/nan.nii.gz", bad, np.eye(4), np.float32)
    expect_failure(nbase + ["--mask", f"{tmp}/mask.nii.gz", "--story", "s", "--file",
                            f"{tmp}/nan.nii.gz"],
                   ["nan.nii.gz", "story s", "TR 4", f"voxel ({i}, {j}, {k})", "NaN"], [out], tmp)
    with open(f"{tmp}/good.nii", "rb") as fp:
        whole = fp.read()
    with open(f"{tmp}/trunc.nii", "wb") as fp:
        fp.write(whole[:-50])
    expect_failure(nbase + ["--mask", f"{tmp}/mask.nii.gz", "--story", "s", "--file",
                            f"{tmp}/trunc.nii"], ["trunc.nii", "truncated"], [out], tmp)
    with open(f"{tmp}/hdr.nii", "wb") as fp:
        fp.write(whole[:100])
    expect_failure(nbase + ["--mask", f"{tmp}/mask.nii.gz", "--story", "s", "--file",
                            f"{tmp}/hdr.nii"], ["hdr.nii", "NIfTI"], [out], tmp)
    nib.save(nib.Nifti1Image(good, np.eye(4)), f"{tmp}/good.nii.gz")
    with open(f"{tmp}/good.nii.gz", "rb") as fp:
        whole = fp.read()
    with open(f"{tmp}/trunc.nii.gz", "wb") as fp:
        fp.write(whole[: len(whole) // 2])
    expect_failure(nbase + ["--mask", f"{tmp}/mask.nii.gz", "--story", "s", "--file",
                            f"{tmp}/trunc.nii.gz"], ["trunc.nii.gz"], [out], tmp)
    write_volume(f"{tmp}/short.nii", good[..., :5], np.eye(4), np.float32)
    expect_failure(nbase + ["--mask", f"{tmp}/mask.nii.gz", "--average", "--story", "s", "--file",
                            f"{tmp}/good.nii", "--story", "s", "--file", f"{tmp}/short.nii"],
                   ["story s", "short.nii has 5 TRs", "good.nii has 7"], [out], tmp)
    expect_failure(nbase + ["--story", "s", "--file", f"{tmp}/good.nii"], ["--mask"], [out], tmp)

    # HDF5.
    with h5py.File(f"{tmp}/resp.hf5", "w") as f:
        f["data"] = RNG.normal(size=(6, 5))
    with h5py.File(f"{tmp}/resp4.hf5", "w") as f:
        f["data"] = RNG.normal(size=(6, 4))
    with h5py.File(f"{tmp}/respnan.hf5", "w") as f:
        d = RNG.normal(size=(6, 5))
        d[2, 1] = np.nan
        f["data"] = d
    hbase = ["import", "--format", "hdf5", "--tr", "2", "--out", out]
    expect_failure(hbase + ["--story", "a", "--file", f"{tmp}/resp.hf5", "--story", "b", "--file",
                            f"{tmp}/resp4.hf5"], ["resp4.hf5", "story b", "4 voxels", "5"], [out], tmp)
    expect_failure(hbase + ["--story", "a", "--file", f"{tmp}/respnan.hf5"],
                   ["respnan.hf5", "story a", "TR 2", "voxel 1", "NaN"], [out], tmp)
    expect_failure(hbase + ["--story", "a", "--file", f"{tmp}/resp.hf5", "--dataset", "nope"],
                   ["resp.hf5", "/nope"], [out], tmp)

    # Atlases.
    run(["import", "--format", "gifti", "--tr", "1.5", "--story", "b", "--lh", f"{g}/b_L.func.gii",
         "--rh", f"{g}/b_R.func.gii", "--out", f"{tmp}/sbold.h5", "--quiet"])
    atlas = f"{tmp}/atlas.h5"
    ctab = np.array([[0, 0, 0, 0], [10, 20, 30, 0], [40, 50, 60, 0]])
    nib.freesurfer.write_annot(f"{tmp}/lh.annot", np.array([1, 2, 1, 0, 2, 2]), ctab,
                               ["Unknown", "A", "B"])
    nib.freesurfer.write_annot(f"{tmp}/rh.annot", np.array([1, 2, 1, 0]), ctab,
                               ["Unknown", "A", "B"])
    expect_failure(["import", "--format", "annot", "--lh", f"{tmp}/lh.annot", "--rh",
                    f"{tmp}/rh.annot", "--bold", f"{tmp}/sbold.h5", "--out", atlas],
                   ["lh.annot", "6 lh vertices", "the BOLD has 5"], [atlas], tmp)
    with open(f"{tmp}/rh.annot", "rb") as fp:
        whole = fp.read()
    for cut in (3, 20, len(whole) - 30, len(whole) - 1):
        with open(f"{tmp}/cut.annot", "wb") as fp:
            fp.write(whole[:cut])
        expect_failure(["import", "--format", "annot", "--rh", f"{tmp}/cut.annot", "--out", atlas],
                       ["cut.annot"], [atlas], tmp)
    write_volume(f"{tmp}/labels_small.nii.gz", np.ones((3, 3, 3)), np.eye(4), np.int32)
    with open(f"{tmp}/lut.txt", "w") as fp:
        fp.write("1 one 0 0 0 0\n")
    run(["import", "--format", "nifti", "--mask", f"{tmp}/mask.nii.gz", "--tr", "2", "--story", "s",
         "--file", f"{tmp}/good.nii", "--out", f"{tmp}/vbold.h5", "--quiet"])
    expect_failure(["import", "--format", "nifti-labels", "--labels", f"{tmp}/labels_small.nii.gz",
                    "--table", f"{tmp}/lut.txt", "--bold", f"{tmp}/vbold.h5", "--out", atlas],
                   ["labels_small.nii.gz", "grid 3x3x3", "4x3x3"], [atlas], tmp)
    expect_failure(["import", "--format", "nifti-labels", "--labels", f"{tmp}/labels_small.nii.gz",
                    "--table", f"{tmp}/lut.txt", "--bold", f"{tmp}/sbold.h5", "--out", atlas],
                   ["volume"], [atlas], tmp)
    write_volume(f"{tmp}/labels_frac.nii.gz", np.full(shape, 1.5), np.eye(4), np.float32)
    expect_failure(["import", "--format", "nifti-labels", "--labels", f"{tmp}/labels_frac.nii.gz",
                    "--table", f"{tmp}/lut.txt", "--bold", f"{tmp}/vbold.h5", "--out", atlas],
                   ["labels_frac.nii.gz", "not an integer"], [atlas], tmp)

    # Maps.
    with h5py.File(f"{tmp}/scores.h5", "w") as f:
        f["r"] = np.zeros(int(mask.sum()) + 1, np.float32)
    expect_failure(["maps", "--scores", f"{tmp}/scores.h5", "--bold", f"{tmp}/vbold.h5", "--out",
                    f"{tmp}/m"], ["scores.h5:/r", f"{int(mask.sum()) + 1} voxels",
                                  f"records {int(mask.sum())}"], [f"{tmp}/m_r.nii.gz"], tmp)
    run(hbase + ["--story", "a", "--file", f"{tmp}/resp.hf5", "--quiet"])
    with h5py.File(f"{tmp}/scores5.h5", "w") as f:
        f["r"] = np.zeros(5, np.float32)
    expect_failure(["maps", "--scores", f"{tmp}/scores5.h5", "--bold", out, "--out", f"{tmp}/m"],
                   ["records no brain space"], [f"{tmp}/m_r.nii.gz"], tmp)
    with h5py.File(f"{tmp}/scores_s.h5", "w") as f:
        f["r"] = np.zeros(9, np.float32)
    expect_failure(["maps", "--scores", f"{tmp}/scores_s.h5", "--bold", f"{tmp}/sbold.h5",
                    "--out", f"{tmp}/m", "--dataset", "r", "--dataset", "missing"],
                   ["missing"], [f"{tmp}/m_r.lh.func.gii", f"{tmp}/m_r.rh.func.gii"], tmp)


CASES = {"gifti": case_gifti, "nifti": case_nifti, "hdf5": case_hdf5, "annot": case_annot,
         "labels": case_labels, "maps": case_maps, "bad": case_bad}


def main():
    global BA, MPIEXEC
    if "--" not in sys.argv or len(sys.argv) < 4:
        sys.exit(__doc__)
    sep = sys.argv.index("--")
    BA, MPIEXEC, case = sys.argv[1], sys.argv[2:sep], sys.argv[sep + 1]
    with tempfile.TemporaryDirectory(prefix=f"ba-import-{case}-") as tmp:
        CASES[case](tmp)
    print(f"{case}: all checks passed")


if __name__ == "__main__":
    main()
