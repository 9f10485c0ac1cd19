#!/usr/bin/env python3
"""Hostile input (issue 16): crafted files and options that crashed `fit`,
`import` or `synth`, or gave silently wrong scores with exit 0. Every case
must end with a clear message naming the problem, a non-zero exit that is
not a signal (no SIGSEGV/SIGABRT/SIGBUS), and no output file left behind;
or, for a bad checkpoint, a fresh start that says why and scores equal to
an uninterrupted run's.

usage: hostile_inputs.py BRAINALIGN MPIEXEC... -- CASE [SEED_DIR]
CASE is one of:
  features-shapes  features.h5 whose onset/offset/surprisal/word is longer than, or of
                   another rank than, hidden's word axis; bad `layers` attributes
  huge-dims        import --format hdf5 of a declared [2^31, 2^31] dataset; fit with a
                   bold.h5 declaring [2^60, 1] (sum, mean, lanczos)
  timing           --tr-offset / --tr / --delays / word onsets out of range or not finite
  checkpoint       a checkpoint (matching key) holding r = 55, NaN, a 1-D /r_folds or
                   fold flags [1,1,7,-3,1]; an input replaced by another of the same size
                   and modification time
  compare          compare refuses r outside [-1, 1]
  features-nan     features with NaN weights in one block: an error naming the story and
                   the layer, no features.h5 (needs the shared data's GPT-2 vocabulary)
  full-disk        synth onto a 300 KiB tmpfs: the error, exit 1, no SIGSEGV at exit
                   (skipped, exit 77, where a tmpfs cannot be mounted)
If SEED_DIR is given the crafted HDF5 inputs are also copied there (fuzz seeds).

Runs with Debian's python3 (numpy, h5py); used only as a test harness.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SEEDS = None


def keep_seed(path, name):
    if SEEDS:
        os.makedirs(SEEDS, exist_ok=True)
        shutil.copy(path, os.path.join(SEEDS, name))


def run(cmd, env=None, timeout=300):
    """Every run here is small: one that does not end is a failure (a crash
    on a corrupted heap can leave Open MPI's handler hanging)."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        sys.exit(f"FAILED: hung for {timeout} s: {' '.join(cmd)}")


def must_fail(proc, *needles, what=""):
    """Non-zero exit that is not a crash, and a message holding each needle."""
    text = proc.stderr + proc.stdout
    crashed = proc.returncode < 0 or proc.returncode >= 128 or any(
        s in text for s in ("Signal:", "AddressSanitizer", "runtime error", "Segmentation"))
    if proc.returncode == 0 or crashed:
        sys.exit(f"FAILED ({what}): exit {proc.returncode}, expected a clean error\n{text}")
    for n in needles:
        if n not in text:
            sys.exit(f"FAILED ({what}): message lacks '{n}'\n{text}")
    lines = [l for l in text.splitlines() if "error" in l] or text.strip().splitlines()
    print(f"ok ({what}): {lines[0][:200]}")


def must_pass(proc, what=""):
    if proc.returncode != 0:
        sys.exit(f"FAILED ({what}): exit {proc.returncode}\n{proc.stderr}{proc.stdout}")
    return proc


def no_leftovers(directory, what):
    left = [f for f in os.listdir(directory) if ".partial" in f]
    if left:
        sys.exit(f"FAILED ({what}): left behind {left}")


def synth(ba, out, *extra):
    must_pass(run([ba, "synth", "--out", out, "--quiet", "--stories", "2", "--words", "400",
                   "--voxels", "40", "--d-model", "8", "--subjects", "2", *extra]), "synth")


def fit_cmd(ba, mpiexec, np_, *args):
    return [*mpiexec, "-n", str(np_), ba, "fit", "--quiet", *args]


ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1")


def case_features_shapes(ba, mpiexec, tmp):
    synth(ba, tmp)
    good = f"{tmp}/features.h5"
    with h5py.File(good) as f:
        stories = sorted(f["stories"])
        n_words = f[f"stories/{stories[0]}/hidden"].shape[1]
        layers = f[f"stories/{stories[0]}/hidden"].attrs["layers"][:]
    assert len(layers) >= 2, layers

    def crafted(name, edit):
        path = f"{tmp}/{name}.h5"
        shutil.copy(good, path)
        with h5py.File(path, "r+") as f:
            edit(f, f"stories/{stories[0]}")
        keep_seed(path, f"features-{name}.h5")
        return path

    def replace(g, leaf, data):
        del g[leaf]
        g[leaf] = data

    onset = np.arange(n_words + 5000, dtype=np.float64) * 0.3
    cases = {
        "onset-longer": (lambda f, s: replace(f[s], "onset", onset), "onset"),
        "onset-rank2": (lambda f, s: replace(f[s], "onset", np.zeros((n_words, 3))), "onset"),
        "offset-longer": (lambda f, s: replace(f[s], "offset", onset + 0.2), "offset"),
        "surprisal-longer": (lambda f, s: replace(f[s], "surprisal",
                                                  np.ones(n_words + 7, np.float32)), "surprisal"),
        "word-longer": (lambda f, s: replace(f[s], "word",
                                             np.array([b"w"] * (n_words + 9), dtype="S4")), "word"),
        "layers-duplicate": (lambda f, s: f[s]["hidden"].attrs.modify(
            "layers", np.full(len(layers), layers[0], np.int64)), "twice"),
        "layers-negative": (lambda f, s: f[s]["hidden"].attrs.modify(
            "layers", -1 - np.arange(len(layers), dtype=np.int64)), "hidden-state index"),
        "layers-differ": (lambda f, s: f[s]["hidden"].attrs.modify(
            "layers", layers[::-1].astype(np.int64)), "differs"),
    }
    bold = f"{tmp}/bold-sub-01.h5"
    layer = str(int(layers[-1]))
    for name, (edit, needle) in cases.items():
        path = crafted(name, edit)
        for np_ in (1, 2):
            must_fail(run(fit_cmd(ba, mpiexec, np_, "--features", path, "--bold", bold, "--layer",
                                  layer, "--design-only", f"{tmp}/X-{name}.h5"), ENV),
                      needle, what=f"{name} --design-only, {np_} rank(s)")
        must_fail(run(fit_cmd(ba, mpiexec, 2, "--features", path, "--bold", bold, "--layer",
                              layer, "--out", f"{tmp}/s-{name}.h5"), ENV),
                  needle, what=f"{name} fit")
        assert not os.path.exists(f"{tmp}/s-{name}.h5") and not os.path.exists(f"{tmp}/X-{name}.h5")
    no_leftovers(tmp, "features-shapes")


def case_huge_dims(ba, mpiexec, tmp):
    # A tiny file declaring [2^31, 2^31] float32 (never written: no storage).
    huge = f"{tmp}/huge.h5"
    with h5py.File(huge, "w") as f:
        f.create_dataset("data", shape=(2**31, 2**31), dtype=np.float32, chunks=(1, 1024))
    keep_seed(huge, "import-huge.h5")
    assert os.path.getsize(huge) < 100000
    out = f"{tmp}/imported.h5"
    must_fail(run([ba, "import", "--format", "hdf5", "--tr", "2", "--out", out, "--story", "a",
                   "--file", huge]), "implausible", what="import [2^31, 2^31]")
    assert not os.path.exists(out)
    no_leftovers(tmp, "import")

    synth(ba, tmp)
    bold = f"{tmp}/bold-huge.h5"
    shutil.copy(f"{tmp}/bold-sub-01.h5", bold)
    with h5py.File(bold, "r+") as f:
        story = sorted(f["stories"])[0]
        del f[f"stories/{story}/data"]
        f.create_dataset(f"stories/{story}/data", shape=(2**60, 1), dtype=np.float32,
                         chunks=(1024, 1))
    keep_seed(bold, "bold-huge.h5")
    with h5py.File(f"{tmp}/features.h5") as f:
        layer = str(int(f[f"stories/{story}/hidden"].attrs["layers"][-1]))
    for agg in ("sum", "mean", "lanczos"):
        must_fail(run(fit_cmd(ba, mpiexec, 1, "--features", f"{tmp}/features.h5", "--bold", bold,
                              "--layer", layer, "--aggregate", agg, "--out", f"{tmp}/s.h5"), ENV),
                  "implausible", what=f"bold [2^60, 1], --aggregate {agg}")
    assert not os.path.exists(f"{tmp}/s.h5")


def case_timing(ba, mpiexec, tmp):
    synth(ba, tmp)
    feats, bold = f"{tmp}/features.h5", f"{tmp}/bold-sub-01.h5"
    with h5py.File(feats) as f:
        stories = sorted(f["stories"])
        layer = str(int(f[f"stories/{stories[0]}/hidden"].attrs["layers"][-1]))
    base = ["--features", feats, "--bold", bold, "--layer", layer]
    bad = [(["--tr-offset", "nan"], "offset"), (["--tr-offset", "inf"], "offset"),
           (["--tr-offset", "1e300"], "offset"), (["--tr-offset", "-10000"], "words fall inside"),
           (["--tr", "inf"], "--tr inf must be a finite number"), (["--tr", "1e-300"], "TR"), (["--tr", "-1"], "--tr -1 must be a finite number"),
           (["--tr", "nan"], "--tr nan must be a finite number"), (["--delays", "5000"], "delay")]
    for opts, needle in bad:
        out = f"{tmp}/s.h5"
        must_fail(run(fit_cmd(ba, mpiexec, 1, *base, *opts, "--out", out), ENV), needle,
                  what=" ".join(opts))
        assert not os.path.exists(out)
    # A delay longer than every story (but within the limit): an all-zero block.
    with h5py.File(bold) as f:
        longest = max(f[f"stories/{s}/data"].shape[0] for s in stories)
    must_fail(run(fit_cmd(ba, mpiexec, 1, *base, "--delays", f"1,{longest + 3}", "--out",
                          f"{tmp}/s.h5"), ENV), "all zero", what="delay past every story")
    for value in (1e20, 1e300, np.nan):
        path = f"{tmp}/onset-{value}.h5"
        shutil.copy(feats, path)
        with h5py.File(path, "r+") as f:
            on = f[f"stories/{stories[0]}/onset"]
            data = on[:]
            data[len(data) // 2:] = value
            on[:] = data
        keep_seed(path, f"features-onset-{value}.h5")
        must_fail(run(fit_cmd(ba, mpiexec, 1, "--features", path, "--bold", bold, "--layer",
                              layer, "--out", f"{tmp}/s.h5"), ENV), "onset",
                  what=f"word onsets of {value}")
    # Every onset shifted far past the scan (finite, in range): no word inside.
    path = f"{tmp}/onset-late.h5"
    shutil.copy(feats, path)
    with h5py.File(path, "r+") as f:
        for s in stories:
            f[f"stories/{s}/onset"][:] = f[f"stories/{s}/onset"][:] - 1e5
    must_fail(run(fit_cmd(ba, mpiexec, 1, "--features", path, "--bold", bold, "--layer", layer,
                          "--out", f"{tmp}/s.h5"), ENV), "words fall inside",
              what="no word inside the BOLD")
    # The plain run still works.
    must_pass(run(fit_cmd(ba, mpiexec, 1, *base, "--out", f"{tmp}/s.h5"), ENV), "plain fit")


def case_checkpoint(ba, mpiexec, tmp):
    from fit_restart import start_and_signal, read_scores
    synth(ba, tmp, "--voxels", "300", "--words", "1500", "--stories", "3")
    feats = f"{tmp}/features.h5"
    with h5py.File(feats) as f:
        story = sorted(f["stories"])[0]
        layer = str(int(f[f"stories/{story}/hidden"].attrs["layers"][-1]))
    args = ["fit", "--features", feats, "--bold", f"{tmp}/bold-sub-01.h5", "--layer", layer,
            "--voxel-block", "20"]
    full = f"{tmp}/full.h5"
    must_pass(run([*mpiexec, "-n", "2", ba, *args, "--quiet", "--out", full], ENV), "full fit")
    expect = read_scores(full)

    def interrupted(out):
        proc, log = start_and_signal(mpiexec, ba, args, out, ENV, 2, signal.SIGTERM)
        assert proc.returncode != 0 and os.path.exists(f"{out}.checkpoint.h5"), log
        return f"{out}.checkpoint.h5"

    def edit_rfolds_55(f):
        f["r_folds"][0, 3] = 55.0

    def edit_nan(f):
        f["r_folds"][1, 0] = np.nan

    def edit_1d(f):
        data = f["r_folds"][:]
        del f["r_folds"]
        f["r_folds"] = data.reshape(-1)

    def edit_flags(f):
        f.attrs.modify("done", np.array([1, 1, 7, -3, 1], np.int64))

    for name, edit, needle in (("r55", edit_rfolds_55, "not a correlation"),
                               ("nan", edit_nan, "not a correlation"),
                               ("1d", edit_1d, "dimension"),
                               ("flags", edit_flags, "fold flag")):
        out = f"{tmp}/s-{name}.h5"
        ckpt = interrupted(out)
        with h5py.File(ckpt, "r+") as f:
            edit(f)
        keep_seed(ckpt, f"checkpoint-{name}.h5")
        proc = must_pass(run([*mpiexec, "-n", "2", ba, *args, "--out", out], ENV), name)
        if "not a valid checkpoint" not in proc.stderr or needle not in proc.stderr:
            sys.exit(f"FAILED (checkpoint {name}): no 'starting afresh' reason with '{needle}'\n"
                     f"{proc.stderr}")
        got = read_scores(out)
        for k in expect:
            if not np.array_equal(got[k], expect[k]):
                sys.exit(f"FAILED (checkpoint {name}): {k} differs from the uninterrupted run")
        print(f"ok (checkpoint {name}): fresh start, scores identical")

    # Same size and modification time, other content (cp -p of another subject).
    bold = f"{tmp}/bold-now.h5"
    shutil.copy2(f"{tmp}/bold-sub-01.h5", bold)
    other = f"{tmp}/bold-sub-02.h5"
    assert os.path.getsize(other) == os.path.getsize(bold)
    args2 = [a if a != f"{tmp}/bold-sub-01.h5" else bold for a in args]
    out = f"{tmp}/s-swap.h5"
    proc, log = start_and_signal(mpiexec, ba, args2, out, ENV, 2, signal.SIGTERM)
    assert proc.returncode != 0 and os.path.exists(f"{out}.checkpoint.h5"), log
    st = os.stat(bold)
    shutil.copyfile(other, bold)
    os.utime(bold, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(bold).st_size == st.st_size and os.stat(bold).st_mtime_ns == st.st_mtime_ns
    proc = must_pass(run([*mpiexec, "-n", "2", ba, *args2, "--out", out], ENV), "swap")
    fresh = [a if a != f"{tmp}/bold-sub-01.h5" else other for a in args]
    must_pass(run([*mpiexec, "-n", "2", ba, *fresh, "--quiet", "--out", f"{tmp}/fresh2.h5"], ENV),
              "fresh fit of subject 2")
    got, want = read_scores(out), read_scores(f"{tmp}/fresh2.h5")
    if "other inputs" not in proc.stderr or not all(np.array_equal(got[k], want[k]) for k in want):
        sys.exit(f"FAILED (input replaced, same size and mtime): resumed from the old "
                 f"checkpoint\n{proc.stderr}")
    print("ok (input replaced, same size and mtime): not resumed, scores of the new input")


def case_compare(ba, mpiexec, tmp):
    synth(ba, tmp)
    feats = f"{tmp}/features.h5"
    with h5py.File(feats) as f:
        story = sorted(f["stories"])[0]
        layer = str(int(f[f"stories/{story}/hidden"].attrs["layers"][-1]))
    for sub in ("01", "02"):
        must_pass(run(fit_cmd(ba, mpiexec, 1, "--features", feats, "--bold",
                              f"{tmp}/bold-sub-{sub}.h5", "--layer", layer, "--atlas",
                              f"{tmp}/atlas.h5", "--out", f"{tmp}/s{sub}.h5"), ENV), "fit")
    for value in (55.0, -1.5):
        bad = f"{tmp}/bad-{value}.h5"
        shutil.copy(f"{tmp}/s02.h5", bad)
        with h5py.File(bad, "r+") as f:
            f["r"][2] = value
        keep_seed(bad, f"scores-r{value}.h5")
        must_fail(run([ba, "compare", "--quiet", "--scores", f"baseline={tmp}/s01.h5",
                       "--scores", f"human={bad}", "--out", f"{tmp}/cmp",
                       "--permutations", "100", "--bootstrap", "100"], ENV),
                  "[-1, 1]", what=f"compare with r = {value}")
    must_pass(run([ba, "compare", "--quiet", "--scores", f"baseline={tmp}/s01.h5", "--scores",
                   f"human={tmp}/s02.h5", "--out", f"{tmp}/cmp", "--permutations", "100",
                   "--bootstrap", "100"], ENV), "plain compare")


def set_tensor(path, name, value):
    """Overwrite every element of one float32 tensor of a safetensors file."""
    import json
    import struct
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        meta = header[name]
        assert meta["dtype"] == "F32", meta
        begin, end = meta["data_offsets"]
        f.seek(8 + n + begin)
        f.write(np.full((end - begin) // 4, value, np.float32).tobytes())


def case_features_nan(ba, mpiexec, tmp):
    data = os.environ.get("BA_DATA_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "../../../shared/data")
    vocab = os.path.join(data, "gpt2-tokenizer")
    story = os.path.join(data, "narratives/stimuli/pieman/align.csv")
    if not os.path.isdir(vocab) or not os.path.exists(story):
        sys.exit(f"FAILED: the shared data ({data}) is missing")
    model = f"{tmp}/model"
    must_pass(run([ba, "checkpoint", "--out", model, "--vocab-from", vocab, "--layers", "2",
                   "--d-model", "32", "--heads", "4", "--positions", "64"]), "checkpoint")
    stim = f"{tmp}/stim/pieman"
    os.makedirs(stim)
    with open(story) as src, open(f"{stim}/align.csv", "w") as dst:
        dst.writelines(src.readlines()[:80])
    import json
    import struct
    with open(f"{model}/model.safetensors", "rb") as f:
        names = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    block = sorted(n for n in names if ".1." in n and n.endswith("mlp.c_fc.weight"))
    assert block, sorted(names)
    set_tensor(f"{model}/model.safetensors", block[0], np.nan)
    for np_ in (1, 2):
        out = f"{tmp}/features-{np_}.h5"
        must_fail(run([*mpiexec, "-n", str(np_), ba, "features", "--quiet", "--model", model,
                       "--stimuli", f"{tmp}/stim", "--context", "32", "--stride", "16",
                       "--out", out], ENV), "pieman", "layer 2", "non-finite",
                  what=f"features with NaN weights, {np_} rank(s)")
        assert not os.path.exists(out)
        no_leftovers(tmp, "features NaN")


def case_full_disk(ba, mpiexec, tmp):
    mnt = f"{tmp}/mnt"
    os.makedirs(mnt)
    if run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", mnt]).returncode != 0:
        print("SKIP: cannot mount a tmpfs here")
        sys.exit(77)
    try:
        for np_ in (1, 2):
            out = f"{mnt}/o{np_}"
            proc = run([*mpiexec, "-n", str(np_), ba, "synth", "--out", out, "--quiet",
                        "--stories", "2", "--words", "3000", "--voxels", "50", "--d-model", "8",
                        "--subjects", "1"], ENV)
            must_fail(proc, "write", what=f"synth on a full disk, {np_} rank(s)")
            if os.path.isdir(out):
                no_leftovers(out, "full disk")
    finally:
        run(["umount", mnt])


def main():
    argv = sys.argv[1:]
    sep = argv.index("--")
    ba, mpiexec = argv[0], argv[1:sep]
    rest = argv[sep + 1:]
    case = rest[0]
    global SEEDS
    SEEDS = rest[1] if len(rest) > 1 else None
    cases = {"features-shapes": case_features_shapes, "huge-dims": case_huge_dims,
             "timing": case_timing, "checkpoint": case_checkpoint, "compare": case_compare,
             "full-disk": case_full_disk, "features-nan": case_features_nan}
    with tempfile.TemporaryDirectory(prefix=f"hostile-{case}-") as tmp:
        cases[case](ba, mpiexec, tmp)
    print(f"{case}: all passed")


if __name__ == "__main__":
    main()
