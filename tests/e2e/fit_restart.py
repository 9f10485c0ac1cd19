#!/usr/bin/env python3
"""Restart after failure: a fit stopped by SIGTERM (as SLURM does at the time
limit) resumes from its checkpoint and ends with a scores.h5 identical to
an uninterrupted run's; a damaged or foreign checkpoint is ignored.

usage: fit_restart.py BRAINALIGN MPIEXEC...
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np


def read_scores(path):
    with h5py.File(path) as f:
        return {k: f[k][:] for k in ("r", "r_folds", "alpha")}


def rank_pids(out):
    """The rank processes of the fit writing `out` (not mpiexec itself)."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"brainalign") and out.encode() in argv:
            pids.append(int(pid))
    return pids


def start_and_signal(mpiexec, ba, args, out, env, after_folds, sig):
    """Start a 2-rank fit, send `sig` to its ranks once `after_folds` folds
    are saved, and wait for it to end. Returns (process, stderr text)."""
    proc = subprocess.Popen([*mpiexec, "-n", "2", ba, *args, "--out", out], env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    log, deadline = [], time.time() + 300
    for line in proc.stderr:
        log.append(line)
        if f"checkpoint: {after_folds} of 5 folds saved" in line:
            for pid in rank_pids(out):
                os.kill(pid, sig)
            break
        assert time.time() < deadline, "no checkpoint line"
    _, rest = proc.communicate(timeout=300)
    log.append(rest or "")
    return proc, "".join(log)


def main():
    ba, mpiexec = sys.argv[1], sys.argv[2:]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([ba, "synth", "--out", tmp, "--quiet", "--voxels", "3000", "--d-model", "64",
                        "--stories", "4", "--words", "1500", "--subjects", "1"], check=True)
        args = ["fit", "--features", f"{tmp}/features.h5", "--bold", f"{tmp}/bold-sub-01.h5",
                "--layer", "2", "--folds", "5"]
        ref = f"{tmp}/reference.h5"
        subprocess.run([*mpiexec, "-n", "2", ba, *args, "--out", ref, "--quiet", "--no-checkpoint"],
                       check=True, env=env, capture_output=True)
        assert not os.path.exists(ref + ".checkpoint.h5")

        out = f"{tmp}/scores.h5"
        ckpt = out + ".checkpoint.h5"
        # 1. SIGTERM to the ranks once two folds are saved, as slurmstepd does
        #    at the time limit: a clean stop at the next fold boundary.
        proc, text = start_and_signal(mpiexec, ba, args, out, env, 2, signal.SIGTERM)
        assert proc.returncode != 0, "a stopped run must not exit 0"
        assert "stopped by a signal after" in text, text
        assert os.path.exists(ckpt), "no checkpoint left"
        assert not os.path.exists(out), "a stopped run left scores.h5"
        with h5py.File(ckpt) as f:
            saved = int(np.sum(f.attrs["done"]))
        assert 2 <= saved < 5, saved

        # 2. Rerun the same command: it resumes and gives identical results.
        run = subprocess.run([*mpiexec, "-n", "2", ba, *args, "--out", out], env=env,
                             capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        assert f"resuming: {saved} of 5 folds done" in run.stderr, run.stderr
        assert not os.path.exists(ckpt), "the checkpoint was not removed after success"
        a, b = read_scores(ref), read_scores(out)
        for k in a:
            assert np.array_equal(a[k], b[k]), f"/{k} differs after the restart"
        print(f"resumed after {saved} folds: scores identical to the uninterrupted run")

        # 3. A damaged checkpoint is ignored (the run starts afresh and succeeds).
        with open(ckpt, "wb") as f:
            f.write(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
        os.remove(out)
        run = subprocess.run([*mpiexec, "-n", "2", ba, *args, "--out", out], env=env,
                             capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        assert "starting afresh" in run.stderr, run.stderr
        assert np.array_equal(read_scores(out)["r"], a["r"])

        # 4. A node failure: SIGKILL to every rank. The checkpoint written
        #    after the last full round survives (it is replaced atomically),
        #    and a rerun resumes from it with identical results.
        os.remove(out)
        proc, text = start_and_signal(mpiexec, ba, args, out, env, 1, signal.SIGKILL)
        assert proc.returncode != 0 and os.path.exists(ckpt)
        run = subprocess.run([*mpiexec, "-n", "2", ba, *args, "--out", out], env=env,
                             capture_output=True, text=True)
        assert run.returncode == 0 and "resuming:" in run.stderr, run.stderr
        b = read_scores(out)
        for k in a:
            assert np.array_equal(a[k], b[k]), f"/{k} differs after a SIGKILL and restart"
        print("resumed after SIGKILL: scores identical")

        # 5. A checkpoint from other options is not used.
        os.remove(out)
        start_and_signal(mpiexec, ba, args, out, env, 1, signal.SIGTERM)
        assert os.path.exists(ckpt)
        run = subprocess.run([*mpiexec, "-n", "2", ba, *args, "--alphas", "logspace:-1:8:9",
                              "--out", out], env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        assert "starting afresh" in run.stderr and "resuming" not in run.stderr, run.stderr
    print("restart: passed")


if __name__ == "__main__":
    main()
