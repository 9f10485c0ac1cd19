#!/usr/bin/python3
"""sample_oracle.py - checks src/lm/sample.c (through tests/oracle/sample_dump)
against a numpy implementation of Hugging Face's logits processors, written
here from HF's formulas (transformers is not installed):

  RepetitionPenaltyLogitsProcessor: gather the logits of the ids so far,
      x < 0 -> x * r, else x / r, scatter back (a repeated id once);
  TemperatureLogitsWarper: x / T;
  TopKLogitsWarper: k' = min(k, V); x < (k'-th largest of torch.topk) -> -inf;
  TopPLogitsWarper: sort ascending, cumulative softmax, remove where
      cumulative <= 1 - p, keep the last (min_tokens_to_keep = 1);
  greedy: only the repetition penalty, then argmax (first maximum).

Steps 1-3 in float32 as HF does; the top-p softmax in float64. Ties in the
top-p sort: among equal logits the lower id counts as the larger (torch's
sort leaves that order unspecified).

Checks, for fixed random logits and many settings:
  - the C distribution (fast pipeline, and its _ref twin) equals numpy's to
    1e-6 with the same set of kept tokens;
  - greedy tokens equal numpy's argmax (including tied maxima);
  - 1e5 seeded draws match the distribution (chi-square, p > 1e-4), and the
    same counts against deliberately wrong distributions are rejected
    (p < 1e-4), so the test can fail;
  - a stream is reproducible (same seed and id, same draws) and another id
    gives other draws.

usage: sample_oracle.py SAMPLE_DUMP WORKDIR
"""
import os
import subprocess
import sys

import numpy as np
from scipy import stats

NEG_INF = np.float32(-np.inf)


def hf_filter(logits, history, greedy, penalty, temperature, top_k, top_p):
    s = np.array(logits, dtype=np.float32)
    if penalty != 1.0 and len(history) > 0:
        ids = np.asarray(history, dtype=np.int64)
        g = s[ids]
        g = np.where(g < 0, g * np.float32(penalty), g / np.float32(penalty)).astype(np.float32)
        s[ids] = g
    if greedy:
        return s
    if temperature != 1.0:
        s = (s / np.float32(temperature)).astype(np.float32)
    if top_k != 0:
        k = min(max(top_k, 1), s.size)
        kth = np.sort(s)[::-1][k - 1]
        s[s < kth] = NEG_INF
    if top_p < 1.0:
        order = np.lexsort((-np.arange(s.size), s))  # ascending; ties: higher id first
        x = s[order].astype(np.float64)
        e = np.exp(x - x.max())
        cumulative = np.cumsum(e / e.sum())
        remove = cumulative <= 1.0 - top_p
        remove[-1] = False
        s[order[remove]] = NEG_INF
    return s


def softmax(s):
    x = s.astype(np.float64)
    e = np.where(np.isneginf(x), 0.0, np.exp(x - x.max()))
    return e / e.sum()


class Dump:
    def __init__(self, exe, workdir):
        self.exe, self.workdir = exe, workdir

    def run(self, mode, logits, history, setting, extra=()):
        path = os.path.join(self.workdir, "logits.f32")
        np.asarray(logits, dtype=np.float32).tofile(path)
        greedy, r, t, k, p = setting
        hist = ",".join(str(i) for i in history) if len(history) else "-"
        args = [self.exe, mode, path, hist, "1" if greedy else "0", repr(r), repr(t), str(k),
                repr(p)] + [str(a) for a in extra]
        out = subprocess.run(args, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit("FAIL: %s exited %d: %s" % (" ".join(args), out.returncode,
                                                          out.stderr.strip()))
        return np.array([float(x) for x in out.stdout.split()])


def chi_square(counts, probs):
    """p-value of counts against probs; bins with expected < 5 pooled.
    A count on a zero-probability id gives p = 0."""
    n = counts.sum()
    if np.any(counts[probs == 0] > 0):
        return 0.0
    expected = n * probs
    big = expected >= 5
    obs = list(counts[big]) + [counts[~big & (probs > 0)].sum()]
    exp = list(expected[big]) + [expected[~big & (probs > 0)].sum()]
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    if len(obs) < 2:
        return 1.0
    return stats.chisquare(obs, exp).pvalue


def main():
    exe, workdir = sys.argv[1], sys.argv[2]
    os.makedirs(workdir, exist_ok=True)
    dump = Dump(exe, workdir)
    rng = np.random.default_rng(20261204)
    V = 300
    rows = {
        "normal": (rng.normal(0, 3, V)).astype(np.float32),
        # ties everywhere: a multiple of 0.5, so top-k thresholds and the
        # top-p order meet equal logits
        "ties": (np.round(rng.normal(0, 2, V) * 2) / 2).astype(np.float32),
        "peaked": np.concatenate([rng.normal(0, 1, V - 3), [9.0, 8.5, 8.0]]).astype(np.float32),
    }
    # repeated ids, ids with negative and positive logits
    history = [3, 17, 17, 250, 3, 299, 0, 42, 42, 42, V - 3, V - 1]
    settings = []
    for r in (1.0, 1.3):
        for t in (1.0, 0.7, 1.5):
            for k in (0, 1, 5, 50):
                for p in (1.0, 0.5, 0.9):
                    settings.append((False, r, t, k, p))
    failures = 0
    n_checked = 0
    for name, row in rows.items():
        for setting in settings:
            want = softmax(hf_filter(row, history, *setting))
            for mode in ("filter", "filter_ref"):
                got = dump.run(mode, row, history, setting)
                diff = np.abs(got - want).max()
                same_support = np.array_equal(got > 0, want > 0)
                n_checked += 1
                if diff > 1e-6 or not same_support:
                    failures += 1
                    print("FAIL %s %s %s: max |C - numpy| = %.3g, same kept set: %s" %
                          (mode, name, setting, diff, same_support))
    print("distributions: %d checked, %d failed" % (n_checked, failures))

    # greedy: argmax after the repetition penalty; tied maxima -> lowest id
    tied = rng.normal(0, 1, V).astype(np.float32)
    tied[[40, 41, 200]] = 5.0
    greedy_rows = dict(rows, tied=tied)
    for name, row in greedy_rows.items():
        for r in (1.0, 1.3):
            for hist in ([], history, [40]):
                setting = (True, r, 1.0, 0, 1.0)
                want = int(np.argmax(hf_filter(row, hist, *setting)))
                got = int(dump.run("argmax", row, hist, setting)[0])
                if got != want:
                    failures += 1
                    print("FAIL greedy %s r=%g history=%s: C %d, numpy %d" % (name, r, hist, got,
                                                                                want))
    # the tie rule is exercised: [40] penalised leaves 41 as the first maximum
    if int(dump.run("argmax", tied, [40], (True, 1.3, 1.0, 0, 1.0))[0]) != 41:
        failures += 1
        print("FAIL greedy tie rule")

    # draws
    n = 100000
    draw_cases = [
        ("normal", (False, 1.3, 0.7, 50, 0.9)),
        ("normal", (False, 1.0, 1.5, 0, 1.0)),
        ("ties", (False, 1.3, 1.0, 5, 1.0)),
        ("peaked", (False, 1.0, 1.5, 0, 0.9)),
    ]
    for name, setting in draw_cases:
        row = rows[name]
        probs = softmax(hf_filter(row, history, *setting))
        counts = dump.run("draw", row, history, setting, (1234, "story-%s" % name, n))
        p_ok = chi_square(counts, probs)
        # deliberately wrong distributions: a temperature 10 % off, and
        # another repetition penalty (used when it moves >= 2 % of the mass)
        g, r, t, k, p = setting
        wrong = {
            "temperature x1.1": softmax(hf_filter(row, history, g, r, t * 1.1, k, p)),
            "another repetition penalty":
                softmax(hf_filter(row, history, g, 1.0 if r != 1.0 else 1.5, t, k, p)),
        }
        verdict = "ok" if p_ok > 1e-4 else "FAIL"
        if p_ok <= 1e-4:
            failures += 1
        print("draws %s %s: chi-square p = %.3g %s" % (name, setting, p_ok, verdict))
        for what, q in wrong.items():
            tv = 0.5 * np.abs(q - probs).sum()
            if tv < 0.02:
                print("  (%s: differs by only %.3g in total variation; not a test)" % (what, tv))
                continue
            p_wrong = chi_square(counts, q)
            rejected = p_wrong < 1e-4
            if not rejected:
                failures += 1
            print("  against the wrong distribution (%s): p = %.3g %s" %
                  (what, p_wrong, "rejected" if rejected else "FAIL: not rejected"))

    # streams: reproducible, and another prompt id draws otherwise
    setting = (False, 1.0, 1.0, 0, 1.0)
    a = dump.run("draw", rows["normal"], [], setting, (7, "p1", 2000))
    b = dump.run("draw", rows["normal"], [], setting, (7, "p1", 2000))
    c = dump.run("draw", rows["normal"], [], setting, (7, "p2", 2000))
    d = dump.run("draw", rows["normal"], [], setting, (8, "p1", 2000))
    if not np.array_equal(a, b) or np.array_equal(a, c) or np.array_equal(a, d):
        failures += 1
        print("FAIL streams: same seed+id must repeat, another id or seed must differ")
    if failures:
        raise SystemExit("sample_oracle: %d failures" % failures)
    print("sample_oracle: all checks passed")


if __name__ == "__main__":
    main()
