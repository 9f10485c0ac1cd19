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
    must_fail(run([ba, "tasks", ini, "--stage", "fit"]), "study.ini:5: [synth] subjects = 4294967297",
              what="[synth] subjects wraps")
    for key in ("stories", "regions", "layers", "planted_layer", "association_every"):
        ini = write(os.path.join(tmp, "s", "study.ini"),
                    f"[study]\noutput = out\n[synth]\n{key} = 4294967298\n[fit]\nlayers = 1\n")
        must_fail(run([ba, "tasks", ini, "--stage", "fit"]), f"[synth] {key} = 4294967298",
                  what=f"[synth] {key} wraps")
    for opt in ("--subjects", "--stories", "--regions", "--layers", "--planted-layer"):
        must_fail(run([ba, "synth", "--out", os.path.join(tmp, "o"), opt, "4294967297"]),
                  f"{opt}: '4294967297' is not a whole number", what=f"synth {opt}")
    must_fail(run([ba, "synth", "--out", os.path.join(tmp, "o"), "--seed", "-1"]),
              "--seed -1 must be a whole number >= 0", what="synth --seed -1")
    if os.path.exists(os.path.join(tmp, "o")):
        sys.exit("FAILED (int-options): synth wrote output for a refused option")


CASES = {
    "names": case_names,
    "ini": case_ini,
    "fifo": case_fifo,
    "int-options": case_int_options,
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
