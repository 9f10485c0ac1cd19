"""Oracle for brainalign's Gentle align.csv reader (tests/unit/test_stimuli.c).

usage: stimuli_interp.py NARRATIVES_STIMULI_DIR DUMP.tsv

DUMP.tsv holds what brainalign read, one word per line:
story<TAB>index<TAB>word<TAB>onset<TAB>offset. This script reads every
<story>/align.csv independently (Python's csv module), fills the empty
onsets and offsets column by column with numpy.interp over the word index
(which holds the first/last known value at the ends, the rule documented in
include/brainalign/io/stimuli.h), and checks every word and time. Exit status
0 when all agree, 1 otherwise (with the first differences printed).
"""
import csv
import os
import sys

import numpy as np

ATOL = 1e-9  # seconds


def read_dump(path):
    ours = {}
    with open(path, encoding="utf-8", newline="") as f:
        for line in f:
            story, index, word, onset, offset = line.rstrip("\n").split("\t")
            ours.setdefault(story, []).append((int(index), word, float(onset), float(offset)))
    return ours


def expected_times(rows, col):
    n = len(rows)
    index = np.arange(n, dtype=float)
    known = np.array([r[col].strip() != "" for r in rows])
    values = np.array([float(r[col]) if r[col].strip() else np.nan for r in rows])
    return np.interp(index, index[known], values[known])


def main():
    data_dir, dump = sys.argv[1], sys.argv[2]
    ours = read_dump(dump)
    stories = sorted(d for d in os.listdir(data_dir)
                     if os.path.isfile(os.path.join(data_dir, d, "align.csv")))
    problems = []
    if sorted(ours) != stories:
        problems.append(f"stories differ: ours {sorted(ours)}, expected {stories}")
    for story in stories:
        with open(os.path.join(data_dir, story, "align.csv"), encoding="utf-8-sig",
                  newline="") as f:
            rows = [r for r in csv.reader(f) if any(field.strip() for field in r)]
        got = ours.get(story, [])
        if len(got) != len(rows):
            problems.append(f"{story}: {len(got)} words, expected {len(rows)}")
            continue
        onset, offset = expected_times(rows, 2), expected_times(rows, 3)
        if np.any(np.diff(onset) < 0):
            problems.append(f"{story}: expected onsets decrease (the test assumes they do not)")
        for i, (index, word, on, off) in enumerate(got):
            if index != i or word != rows[i][0]:
                problems.append(f"{story} word {i}: got ({index}, {word!r}), expected {rows[i][0]!r}")
            if abs(on - onset[i]) > ATOL or abs(off - offset[i]) > ATOL:
                problems.append(f"{story} word {i} {word!r}: got {on!r}/{off!r}, "
                                f"expected {onset[i]!r}/{offset[i]!r}")
    total = sum(len(v) for v in ours.values())
    if problems:
        for p in problems[:20]:
            print("stimuli_interp:", p, file=sys.stderr)
        print(f"stimuli_interp: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"stimuli_interp: {len(stories)} stories, {total} words agree with numpy.interp")
    return 0


if __name__ == "__main__":
    sys.exit(main())
