"""check_outputs.py ARRAY_OUT REFERENCE_OUT FIT_TASKS.tsv

The outputs of a study run as SLURM array jobs (ARRAY_OUT) against
`brainalign run` of the same configuration (REFERENCE_OUT), read with h5py:

* a scores file for every fit task of `brainalign tasks --stage fit` (index,
  label, output), at the place `run` writes it, with the same per-voxel r
  (per fold and mean) and the same region table (|diff| < 1e-5: the same
  rank count, only floating-point noise allowed);
* the same region CSVs and the same summary.md (apart from the line naming
  the configuration file), numbers within their printed rounding;
* summary.md written after every scores file (by the dependent job);
* the planted answer of the synthetic study: layer 2 scores best.
Exits non-zero with a message per problem."""
import csv
import os
import re
import sys

import h5py
import numpy as np

TOL_R = 1e-5
problems = []


def problem(msg):
    problems.append(msg)
    print("check_outputs: " + msg, file=sys.stderr)


def compare_scores(task_label, out, ref):
    if not os.path.isfile(out):
        problem(f"{task_label}: no scores file {out}")
        return None
    if not os.path.isfile(ref):
        problem(f"{task_label}: the reference run wrote no {ref}")
        return None
    with h5py.File(out, "r") as a, h5py.File(ref, "r") as b:
        for name in ("r", "r_folds", "roi/mean_r", "roi/median_r", "roi/sem_r"):
            if name not in a or name not in b:
                problem(f"{out}: /{name} missing (in reference: {name in b})")
                continue
            x, y = np.asarray(a[name], np.float64), np.asarray(b[name], np.float64)
            if x.shape != y.shape:
                problem(f"{out}:/{name} shape {x.shape}, reference {y.shape}")
            elif not np.all(np.isfinite(x)) or np.max(np.abs(x - y)) >= TOL_R:
                problem(f"{out}:/{name} differs from the reference by "
                        f"{np.max(np.abs(x - y)):.3g} (limit {TOL_R})")
        if list(a["roi/name"]) != list(b["roi/name"]):
            problem(f"{out}:/roi/name differs from the reference")
        return float(np.mean(np.asarray(a["r"], np.float64)))


def numbers(text):
    return [float(t) for t in re.findall(r"-?\d+\.\d+", text)]


def compare_text_tables(path, ref, tol, skip=None):
    if not os.path.isfile(path):
        problem(f"missing {path}")
        return
    la = open(path).read().splitlines()
    lb = open(ref).read().splitlines()
    if len(la) != len(lb):
        problem(f"{path}: {len(la)} lines, reference {len(lb)}")
        return
    for i, (x, y) in enumerate(zip(la, lb)):
        if skip and skip(x) and skip(y):
            continue
        words_x = re.sub(r"-?\d+\.\d+", "#", x)
        words_y = re.sub(r"-?\d+\.\d+", "#", y)
        nx, ny = numbers(x), numbers(y)
        if words_x != words_y or len(nx) != len(ny) or \
                any(abs(p - q) > tol for p, q in zip(nx, ny)):
            problem(f"{path}:{i + 1}: '{x}' but the reference has '{y}'")


def main():
    out_dir, ref_dir, tasks_path = sys.argv[1:4]
    tasks = [line.rstrip("\n").split("\t") for line in open(tasks_path) if line.strip()]
    if len(tasks) == 0:
        problem(f"{tasks_path}: no fit tasks")
    mean_r = {}
    newest_scores = 0.0
    for index, label, output in tasks:
        if not output.startswith(out_dir + "/scores/"):
            problem(f"task {index} writes {output}, not under {out_dir}/scores/ as run does")
        rel = os.path.relpath(output, out_dir)
        r = compare_scores(label, output, os.path.join(ref_dir, rel))
        if r is not None:
            mean_r[label] = r
            newest_scores = max(newest_scores, os.path.getmtime(output))
            subject, _, layer = label.split("/")
            table = f"tables/{subject}-{layer}.csv"
            compare_text_tables(os.path.join(out_dir, table), os.path.join(ref_dir, table),
                                1.5e-6)
            with open(os.path.join(out_dir, table)) as f:
                if len(list(csv.DictReader(f))) == 0:
                    problem(f"{table}: no regions")

    summary = os.path.join(out_dir, "summary.md")
    compare_text_tables(summary, os.path.join(ref_dir, "summary.md"), 1.5e-4,
                        skip=lambda line: line.startswith("Configuration:"))
    if os.path.isfile(summary) and os.path.getmtime(summary) < newest_scores:
        problem(f"{summary} is older than a scores file: not written after the fits")

    # The synthetic study plants its signal in layer 2.
    for subject in sorted({label.split("/")[0] for label in mean_r}):
        by_layer = {label.split("/")[2]: r for label, r in mean_r.items()
                    if label.startswith(subject + "/")}
        best = max(by_layer, key=by_layer.get)
        if best != "layer-2":
            problem(f"{subject}: best layer {best} ({by_layer}), the planted one is layer-2")

    if problems:
        sys.exit(1)
    print(f"check_outputs: {len(tasks)} fits, tables and summary agree with the reference")


main()
