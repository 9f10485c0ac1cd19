#!/usr/bin/env python3
"""Hostile input, part 2 (issue 16): names that would escape the output
folder, INI lines that libinih cut at 200 bytes, FIFOs where files are
required, integer options that wrapped, unwritable outputs found only after
the computation, concurrent runs to one output, SIGTERM during `features`.
Every refusal must be a clear message naming the problem and a non-zero
exit that is not a signal; nothing may be written outside the output
folder or left half-written.

usage: hostile_inputs2.py BRAINALIGN MPIEXEC... -- CASE
CASE is one of:
  names        subject, condition, baseline and story names with '/', '..', control
               characters, a leading '-' or nothing: refused naming the key, nothing
               written outside the output folder
  ini          a 300-byte `name = ...output = /elsewhere` line refused whole with its line
               number; a 1000-byte output path and a 40-subject list read whole; a list
               over indented lines; duplicate keys; an unknown section
  fifo         a FIFO INI, `run <(cat x.ini)`, a FIFO config.json: refused, no hang
  int-options  [synth] subjects = 4294967297 (and the synth command line) refused, not
               wrapped to 1
  outputs      unwritable outputs (read-only directory, --out naming a directory, a
               missing parent) refused before the computation by features, fit, compare,
               synth and import
  lock         a second run to an output a live run holds is refused; a stale lock of a
               dead process is taken over with a warning
  sigterm      SIGTERM during features: exit at the next window, no .partial left;
               stale .partial-PID files of dead processes removed by the next run

Runs with Debian's python3 (numpy, h5py); used only as a test harness.
"""
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np


def run(cmd, timeout=300, **kw):
    """Every run here is small: one that does not end is a failure (a FIFO
    opened with no writer blocks for ever)."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        sys.exit(f"FAILED: hung for {timeout} s: {' '.join(map(str, cmd))}")


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
    print(f"ok ({what}): {lines[0][:240]}")


def must_pass(proc, what=""):
    if proc.returncode != 0:
        sys.exit(f"FAILED ({what}): exit {proc.returncode}\n{proc.stderr}{proc.stdout}")
    print(f"ok ({what}): exit 0")
    return proc


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


def no_partials(directory, what):
    left = [f for f in os.listdir(directory) if ".partial" in f]
    if left:
        sys.exit(f"FAILED ({what}): left {left} in {directory}")


def synth(ba, out, *extra):
    return must_pass(run([ba, "synth", "--out", out, "--stories", "2", "--words", "300",
                          "--subjects", "1", "--voxels", "60", "--regions", "3", "--d-model",
                          "16", "--layers", "2", "--quiet", *extra]), f"synth {out}")


# A study over a synthetic features file, so that only parsing is exercised
# (`tasks` plans and lists, it computes nothing).
STUDY = """[study]
output = {out}
{study_extra}
[features]
path = f.h5
[bold]
subjects = {subjects}
path = bold-{{subject}}.h5
[fit]
layers = 1
{extra}"""


def case_names(ba, mpiexec, tmp):
    root = os.path.join(tmp, "a", "b", "c")
    bad = {
        "subject ..": ("subjects = ../../../escaped", "[bold] subjects: '../../../escaped'"),
        "subject /": ("subjects = sub-01, x/y", "[bold] subjects: 'x/y'"),
        "subject -": ("subjects = -rf", "[bold] subjects: '-rf'"),
        "subject control": ("subjects = sub\x01x", "control character"),
    }
    for what, (line, needle) in bad.items():
        ini = write(os.path.join(root, "study.ini"),
                    STUDY.format(out="out", study_extra="", subjects="sub-01",
                                 extra="").replace("subjects = sub-01", line))
        must_fail(run([ba, "tasks", ini, "--stage", "fit"]), needle, "study.ini:", what=what)
        must_fail(run([*mpiexec, "-n", "1", ba, "run", ini, "--quiet"]), needle, what=what + " (run)")
    for what, (text, needle) in {
        "baseline ..": ("condition = ..", "[study] condition '..'"),
        "baseline /": ("condition = ../../x", "[study] condition '../../x'"),
        "baseline empty": ("condition =", "[study] condition ''"),
    }.items():
        ini = write(os.path.join(root, "study.ini"),
                    STUDY.format(out="out", study_extra=text, subjects="sub-01", extra=""))
        must_fail(run([ba, "tasks", ini, "--stage", "fit"]), needle, what=what)
    for what, (text, needle) in {
        "condition /": ("[conditions]\n../x = g.h5\n", "[conditions] '': not a valid condition name, it is empty"),
        "condition / 2": ("[conditions]\na/b = g.h5\n", "[conditions] 'a/b': not a valid condition name"),
        "condition -": ("[conditions]\n-x = g.h5\n", "[conditions] '-x'"),
    }.items():
        ini = write(os.path.join(root, "study.ini"),
                    STUDY.format(out="out", study_extra="", subjects="sub-01", extra=text))
        must_fail(run([ba, "tasks", ini, "--stage", "fit"]), needle, what=what)
    ini = write(os.path.join(root, "study.ini"),
                "[study]\noutput = out\n[model]\npath = m\n[stimuli]\ndir = s\n"
                "stories = pieman, ../../secret\n[bold]\nsubjects = a\npath = b.h5\n"
                "[fit]\nlayers = 1\n")
    must_fail(run([ba, "tasks", ini, "--stage", "fit"]), "[stimuli] stories: '../../secret'",
              what="story ..")
    must_fail(run([ba, "features", "--model", "m", "--stimuli", "s", "--stories", "a,../b",
                   "--out", os.path.join(tmp, "f.h5")]), "--stories: story '../b'",
              what="features --stories")
    must_fail(run([ba, "features", "--model", "m", "--stimuli", "s", "--condition", "x/../../y",
                   "--out", os.path.join(tmp, "f.h5")]), "--condition 'x/../../y'",
              what="features --condition")
    if os.path.exists(os.path.join(tmp, "escaped")) or os.path.exists(os.path.join(tmp, "a", "escaped")):
        sys.exit("FAILED (names): something was written outside the output folder")
    # good names still pass
    ini = write(os.path.join(root, "study.ini"),
                STUDY.format(out="out", study_extra="condition = base.line-1", subjects="sub-01, s_2",
                             extra=""))
    must_pass(run([ba, "tasks", ini, "--stage", "fit"]), "valid names")


def case_ini(ba, mpiexec, tmp):
    # The line libinih cut at 200 bytes, the tail parsed as `output = /elsewhere`.
    elsewhere = os.path.join(tmp, "elsewhere")
    long_name = "x" * 190 + "output = " + elsewhere
    ini = write(os.path.join(tmp, "cut", "study.ini"),
                STUDY.format(out="out", study_extra="name = " + long_name, subjects="sub-01",
                             extra=""))
    proc = run([ba, "tasks", ini, "--stage", "fit"])
    must_fail(proc, "study.ini:3:", "[study] name", what="long line refused whole")
    if elsewhere in proc.stdout:
        sys.exit("FAILED (ini): the tail of a long line redirected the output")
    # A line longer than the reader's limit: refused whole with its number.
    ini = write(os.path.join(tmp, "huge", "study.ini"),
                STUDY.format(out="out", study_extra="name = " + "y" * 9000, subjects="sub-01",
                             extra=""))
    must_fail(run([ba, "tasks", ini, "--stage", "fit"]), "study.ini:3:", "9007 bytes long",
              what="line over the limit")
    # Legitimately long values are read whole.
    deep = os.path.join(tmp, "d" * 200, "e" * 200, "f" * 200, "g" * 200, "h" * 200)
    subjects = [f"subject-with-a-long-name-{i:03d}" for i in range(40)]
    ini = write(os.path.join(tmp, "long", "study.ini"),
                STUDY.format(out=deep, study_extra="", subjects=", ".join(subjects), extra=""))
    listed = must_pass(run([ba, "tasks", ini, "--stage", "fit"]), "long path and list").stdout
    outputs = [l.split("\t")[2] for l in listed.splitlines()]
    expect = [f"{deep}/scores/{s}/layer-1.h5" for s in subjects]
    if outputs != expect:
        sys.exit(f"FAILED (ini): long values not read whole:\n{outputs[:2]}\n{expect[:2]}")
    # A list over indented lines, as Python's configparser; same plan.
    wrapped = "subjects = " + ", ".join(subjects[:20]) + ",\n    " + ", ".join(subjects[20:30]) \
        + "\n\t" + ", ".join(subjects[30:])
    ini = write(os.path.join(tmp, "wrapped", "study.ini"),
                STUDY.format(out=deep, study_extra="", subjects="X", extra="")
                .replace("subjects = X", wrapped))
    listed = must_pass(run([ba, "tasks", ini, "--stage", "fit"]), "list over lines").stdout
    if [l.split("\t")[2] for l in listed.splitlines()] != expect:
        sys.exit(f"FAILED (ini): continued list read wrongly:\n{listed[:500]}")
    bad = {
        "duplicate key": ("[study]\noutput = a\noutput = b\n", "study.ini:3: [study] output is given twice (first on line 2)"),
        "duplicate over sections": ("[fit]\nlayers = 1\n[study]\noutput = a\n[fit]\nlayers = 2\n", "study.ini:6: [fit] layers is given twice"),
        "unknown section": ("[study]\noutput = a\n[sutdy]\nname = x\n", "study.ini:3: unknown section [sutdy]"),
        "continued non-list": ("[study]\noutput = a\n  /b\n", "study.ini:3: an indented line continues [study] output"),
        "stray indented": ("  [study]\n", "study.ini:1: an indented line"),
        "key before section": ("output = a\n", "study.ini:1: 'output' before any [section]"),
        "no equals": ("[study]\noutput\n", "study.ini:2: not a 'key = value' line"),
    }
    for what, (text, needle) in bad.items():
        ini = write(os.path.join(tmp, "bad", "study.ini"), text)
        must_fail(run([ba, "tasks", ini, "--stage", "fit"]), needle, what=what)


def case_fifo(ba, mpiexec, tmp):
    fifo = os.path.join(tmp, "study.ini")
    os.mkfifo(fifo)
    must_fail(run([ba, "tasks", fifo, "--stage", "fit"], timeout=60),
              "study.ini: is a pipe or FIFO, expected a regular file", what="FIFO INI")
    text = STUDY.format(out="out", study_extra="", subjects="sub-01", extra="")
    # run <(cat x.ini): refused, not an empty configuration recorded
    proc = run(["bash", "-c", f'"{ba}" tasks <(printf "%s" "$0") --stage fit', text], timeout=60)
    must_fail(proc, "is a pipe or FIFO, expected a regular file", what="process substitution")
    model = os.path.join(tmp, "model")
    os.makedirs(model)
    os.mkfifo(os.path.join(model, "config.json"))
    stim = os.path.join(tmp, "stim")
    os.makedirs(stim)
    write(os.path.join(stim, "a.txt"), "hello world\n")
    must_fail(run([ba, "features", "--model", model, "--stimuli", stim, "--out",
                   os.path.join(tmp, "f.h5")], timeout=60),
              "config.json: is a pipe or FIFO", what="FIFO config.json")


def case_int_options(ba, mpiexec, tmp):
    ini = write(os.path.join(tmp, "s", "study.ini"),
                "[study]\noutput = out\n[synth]\nstories = 2\nsubjects = 4294967297\n[fit]\nlayers = 1\n")
    must_fail(run([ba, "tasks", ini, "--stage", "fit"]), "study.ini:5: [synth] subjects 4294967297 must be a whole number",
              what="[synth] subjects wraps")
    for key in ("stories", "regions", "layers", "planted_layer", "association_every"):
        ini = write(os.path.join(tmp, "s", "study.ini"),
                    f"[study]\noutput = out\n[synth]\n{key} = 4294967298\n[fit]\nlayers = 1\n")
        must_fail(run([ba, "tasks", ini, "--stage", "fit"]), f"[synth] {key} 4294967298 must be a whole number",
                  what=f"[synth] {key} wraps")
    for opt in ("--subjects", "--stories", "--regions", "--layers", "--planted-layer"):
        must_fail(run([ba, "synth", "--out", os.path.join(tmp, "o"), opt, "4294967297"]),
                  f"{opt} 4294967297 must be a whole number", what=f"synth {opt}")
    must_fail(run([ba, "synth", "--out", os.path.join(tmp, "o"), "--seed", "-1"]),
              "--seed -1 must be a whole number from 0", what="synth --seed -1")
    if os.path.exists(os.path.join(tmp, "o")):
        sys.exit("FAILED (int-options): synth wrote output for a refused option")
    must_fail(run([ba, "compare", "--study", tmp, "--layer", "4294967297", "--out",
                   os.path.join(tmp, "c")]), "--layer 4294967297: expected a layer number",
              what="compare --layer wraps")
    must_fail(run([ba, "compare", "--study", tmp, "--seed", "-1", "--out", os.path.join(tmp, "c")]),
              "--seed -1 must be a whole number from 0", what="compare --seed -1")


ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")


def dead_pid():
    """The pid of a process that has ended (not reused this soon)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def shared_data():
    data = os.environ.get("BA_DATA_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "../../../shared/data")
    vocab = os.path.join(data, "gpt2-tokenizer")
    story = os.path.join(data, "narratives/stimuli/pieman/align.csv")
    if not os.path.isdir(vocab) or not os.path.exists(story):
        sys.exit(f"FAILED: the shared data ({data}) is missing")
    return vocab, story


def tiny_model(ba, tmp, lines, **dims):
    """A random GPT-2 checkpoint with the real vocabulary and `lines` rows
    of Pie Man's alignment as the one story."""
    vocab, story = shared_data()
    model = f"{tmp}/model"
    must_pass(run([ba, "checkpoint", "--out", model, "--vocab-from", vocab,
                   "--layers", str(dims.get("layers", 2)), "--d-model", str(dims.get("d", 32)),
                   "--heads", "4", "--positions", "64"]), "checkpoint")
    stim = f"{tmp}/stim/pieman"
    os.makedirs(stim)
    with open(story) as src, open(f"{stim}/align.csv", "w") as dst:
        dst.writelines(src.readlines()[:lines])
    return model, f"{tmp}/stim"


def read_only_dir(path):
    """A directory no one can write, even root: a read-only tmpfs (root), or
    mode 0555 (anyone else). None when neither is possible."""
    os.makedirs(path)
    if os.geteuid() != 0:
        os.chmod(path, 0o555)
        return path
    if run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", path]).returncode == 0:
        return path
    return None


def case_outputs(ba, mpiexec, tmp):
    synth(ba, f"{tmp}/syn")
    feats = f"{tmp}/syn/features.h5"
    with h5py.File(feats) as f:
        story = sorted(f["stories"])[0]
        layer = str(int(f[f"stories/{story}/hidden"].attrs["layers"][-1]))
    must_pass(run([*mpiexec, "-n", "1", ba, "fit", "--quiet", "--features", feats, "--bold",
                   f"{tmp}/syn/bold-sub-01.h5", "--layer", layer, "--out", f"{tmp}/s1.h5"], env=ENV),
              "fit")
    if os.path.exists(f"{tmp}/s1.h5.lock"):
        sys.exit("FAILED (outputs): fit left its lock behind")
    model, stim = tiny_model(ba, tmp, 40)
    ro = read_only_dir(f"{tmp}/ro")
    os.makedirs(f"{tmp}/adir")
    targets = {"directory": (f"{tmp}/adir", "is a directory; the output is a file"),
               "missing parent": (f"{tmp}/nope/out.h5", "cannot write in"),
               }
    if ro:
        targets["read-only"] = (f"{ro}/out.h5", "cannot write in")
    else:
        print("SKIP (read-only): cannot make a read-only directory here")
    try:
        for what, (out, needle) in targets.items():
            for np_ in (1, 2):
                must_fail(run([*mpiexec, "-n", str(np_), ba, "fit", "--quiet", "--features", feats,
                               "--bold", f"{tmp}/syn/bold-sub-01.h5", "--layer", layer, "--out",
                               out], env=ENV), needle, what=f"fit, {what}, {np_} rank(s)")
                must_fail(run([*mpiexec, "-n", str(np_), ba, "features", "--quiet", "--model",
                               model, "--stimuli", stim, "--context", "32", "--stride", "16",
                               "--out", out], env=ENV), needle,
                          what=f"features, {what}, {np_} rank(s)")
            # compare makes a missing output folder (issue 15; edges.outputs_folders
            # checks that), so only the other targets are refused
            if what != "missing parent":
              must_fail(run([ba, "compare", "--quiet", "--scores", f"baseline={tmp}/s1.h5",
                             "--scores", f"other={tmp}/s1.h5", "--out",
                             out[:-3] if out.endswith(".h5") else out, "--permutations", "10",
                             "--bootstrap", "10"], env=ENV),
                        needle if what != "directory" else "is a directory",
                        what=f"compare, {what}")
            must_fail(run([ba, "import", "--format", "hdf5", "--tr", "2", "--out", out,
                           "--story", story, "--file", f"{tmp}/syn/bold-sub-01.h5"]),
                      needle, what=f"import, {what}")
        if ro:
            must_fail(run([ba, "synth", "--out", f"{ro}/syn", "--quiet"]), "cannot write in",
                      what="synth into a read-only directory")
        must_fail(run([ba, "synth", "--out", f"{tmp}/no/such/syn", "--quiet"]), "cannot write in",
                  what="synth, missing parent")
        with open(f"{tmp}/plainfile", "w") as f:
            f.write("x")
        must_fail(run([ba, "synth", "--out", f"{tmp}/plainfile", "--quiet"]),
                  "exists and is not a directory", what="synth onto a file")
    finally:
        if ro and os.geteuid() == 0:
            run(["umount", ro])


def case_lock(ba, mpiexec, tmp):
    synth(ba, f"{tmp}/syn")
    feats = f"{tmp}/syn/features.h5"
    with h5py.File(feats) as f:
        story = sorted(f["stories"])[0]
        layer = str(int(f[f"stories/{story}/hidden"].attrs["layers"][-1]))
    out = f"{tmp}/s.h5"
    fit = [*mpiexec, "-n", "1", ba, "fit", "--quiet", "--features", feats, "--bold",
           f"{tmp}/syn/bold-sub-01.h5", "--layer", layer, "--out", out]
    host = os.uname().nodename
    # A live holder (this script): the second run fails clearly, nothing written.
    with open(out + ".lock", "w") as f:
        f.write(f"{os.getpid()} {host}\n")
    must_fail(run(fit, env=ENV), f"another run (process {os.getpid()} on {host}) is writing it",
              what="fit, output locked by a live run")
    if os.path.exists(out):
        sys.exit("FAILED (lock): the locked output was written")
    must_fail(run([*mpiexec, "-n", "2", ba, "fit", "--quiet", "--features", feats, "--bold",
                   f"{tmp}/syn/bold-sub-01.h5", "--layer", layer, "--out", out], env=ENV),
              "another run", what="fit, locked, 2 ranks")
    # A stale lock of a dead process: taken over with a warning, removed at the end.
    dead = dead_pid()
    with open(out + ".lock", "w") as f:
        f.write(f"{dead} {host}\n")
    # stale temporaries: a dead process's is removed, a live one's kept
    stale, live = f"{tmp}/.s.h5.partial-{dead}", f"{tmp}/.s.h5.partial-{os.getpid()}"
    for p in (stale, live):
        with open(p, "wb") as f:
            f.write(b"\0" * 4096)
    proc = must_pass(run(fit, env=ENV), "fit over a stale lock")
    if f"taking over the lock {out}.lock of process {dead}" not in proc.stderr:
        sys.exit(f"FAILED (lock): no warning about the stale lock\n{proc.stderr}")
    if os.path.exists(out + ".lock") or not os.path.exists(out):
        sys.exit("FAILED (lock): lock left behind or no output")
    if os.path.exists(stale):
        sys.exit("FAILED (lock): the dead process's .partial was not removed")
    if not os.path.exists(live):
        sys.exit("FAILED (lock): a live process's .partial was removed")
    os.unlink(live)
    # synth: stale temporaries inside its directory are removed
    stale_in = f"{tmp}/syn/.bold-sub-01.h5.partial-{dead}"
    with open(stale_in, "wb") as f:
        f.write(b"\0" * 4096)
    synth(ba, f"{tmp}/syn")
    if os.path.exists(stale_in):
        sys.exit("FAILED (lock): synth left a dead process's .partial in its directory")
    # Two real concurrent synth runs to one directory: one is refused.
    cmd = [ba, "synth", "--out", f"{tmp}/twice", "--quiet", "--stories", "3", "--words", "3000",
           "--voxels", "3000", "--subjects", "3", "--d-model", "64"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(200):
        if os.path.exists(f"{tmp}/twice.lock"):
            break
        time.sleep(0.05)
    second = run(cmd)
    out1, err1 = first.communicate(timeout=300)
    if first.returncode != 0:
        sys.exit(f"FAILED (lock): the first synth failed\n{err1}")
    if os.path.exists(f"{tmp}/twice.lock"):
        must_fail(second, "another run", what="second concurrent synth")
    elif second.returncode == 0:
        print("note (lock): the first synth ended before the second started; not conclusive")
    else:
        must_fail(second, "another run", what="second concurrent synth")


def case_sigterm(ba, mpiexec, tmp):
    model, stim = tiny_model(ba, tmp, 400, layers=4, d=64)
    out = f"{tmp}/f.h5"
    dead = dead_pid()
    stale = f"{tmp}/.f.h5.partial-{dead}"
    with open(stale, "wb") as f:
        f.write(b"\0" * 65536)
    cmd = [ba, "features", "--quiet", "--model", model, "--stimuli", stim, "--context", "64",
           "--stride", "1", "--out", out]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV)
    partial = None
    for _ in range(1200):
        if proc.poll() is not None:
            break
        found = [f for f in os.listdir(tmp) if f.startswith(".f.h5.partial-") and
                 f != os.path.basename(stale)]
        if found:
            partial = found[0]
            break
        time.sleep(0.05)
    if not partial:
        out_, err_ = proc.communicate()
        sys.exit(f"FAILED (sigterm): features ended before its output was begun\n{err_}")
    if os.path.exists(stale):
        sys.exit("FAILED (sigterm): the stale .partial of a dead process was not removed")
    time.sleep(0.5)
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    try:
        _, err_ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        sys.exit("FAILED (sigterm): features did not stop within 120 s of SIGTERM")
    print(f"features stopped {time.time() - t0:.2f} s after SIGTERM, exit {proc.returncode}")
    must_fail(subprocess.CompletedProcess(cmd, proc.returncode, "", err_),
              "stopped by a signal", "the unfinished output is removed", what="SIGTERM")
    if proc.returncode != 1 + 0 and proc.returncode <= 0:
        sys.exit(f"FAILED (sigterm): exit {proc.returncode}")
    no_partials(tmp, "sigterm")
    if os.path.exists(out) or os.path.exists(out + ".lock"):
        sys.exit("FAILED (sigterm): an output or its lock is left")
    # The same in `run`'s features stage (it used to go on until the fit).
    study = write(f"{tmp}/study/study.ini",
                  f"[study]\noutput = out\n[model]\npath = {model}\ncontext = 64\nstride = 1\n"
                  f"[stimuli]\ndir = {stim}\n[bold]\nsubjects = sub-01\n"
                  "path = bold-{subject}.h5\n[fit]\nlayers = 1\n")
    feat_dir = f"{tmp}/study/out/features"
    proc = subprocess.Popen([ba, "run", study, "--quiet"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    begun = False
    for _ in range(1200):
        if proc.poll() is not None:
            break
        if os.path.isdir(feat_dir) and any(".partial-" in f for f in os.listdir(feat_dir)):
            begun = True
            break
        time.sleep(0.05)
    if not begun:
        _, err_ = proc.communicate()
        sys.exit(f"FAILED (sigterm, run): the features stage never began\n{err_}")
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    try:
        _, err_ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        sys.exit("FAILED (sigterm, run): run did not stop within 120 s of SIGTERM")
    must_fail(subprocess.CompletedProcess([], proc.returncode, "", err_), "stopped by a signal",
              what="SIGTERM in run's features stage")
    no_partials(feat_dir, "sigterm, run")
    if os.listdir(feat_dir):
        sys.exit(f"FAILED (sigterm, run): left {os.listdir(feat_dir)}")


CASES = {
    "names": case_names,
    "ini": case_ini,
    "fifo": case_fifo,
    "int-options": case_int_options,
    "outputs": case_outputs,
    "lock": case_lock,
    "sigterm": case_sigterm,
}


def main():
    argv = sys.argv[1:]
    if "--" not in argv:
        sys.exit(__doc__)
    sep = argv.index("--")
    ba, mpiexec, rest = argv[0], argv[1:sep], argv[sep + 1:]
    case = rest[0]
    if case not in CASES:
        sys.exit(f"unknown case {case}\n{__doc__}")
    with tempfile.TemporaryDirectory(prefix=f"hostile2-{case}-") as tmp:
        CASES[case](ba, mpiexec, tmp)
    print(f"hostile2 {case}: passed")


if __name__ == "__main__":
    main()
