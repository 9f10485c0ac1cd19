#!/usr/bin/env python3
"""End-to-end test of `brainalign dataset` on real Narratives stories.

usage: dataset_cli.py BRAINALIGN DATA_DIR FUZZ_SFT_JSONL PLOT_DATASET WORKDIR

The test writes small association sets of its own (human positions after
words and sentences, duplicates, a GPT-4-style sentence set), a plain-text
story and Alpaca imports (a JSON array and JSONL), runs `brainalign
dataset`, and checks every output line independently:

  * passages are recomputed here from align.csv (first column; onsets and
    offsets interpolated as pandas does; sentences ended by pauses >= 0.5 s
    because the transcripts have no punctuation) and from the .txt story
    (sentences ended by . ! ?): input == the words of the passage that ends
    at the insertion point, with the chosen length in words or sentences,
    joined by spaces; output == the association's text; the instruction is
    the one given;
  * the train reader (ba_sft_read_jsonl, through the replay build of the
    fuzz_sft_jsonl target) accepts the files;
  * de-duplication counts against a Python set of (instruction, input,
    output);
  * the token-length filter against lengths computed here from
    `brainalign tokenize` (prompt formatted with the Alpaca template by this
    test, response, EOS; BOS too for LLaMA's SentencePiece);
  * the split: same seed same split, another seed another split, train and
    validation disjoint and together the whole set, round(F * n) validation;
  * bad inputs (bad association line, unknown story, empty story, insertion
    point beyond the story, Alpaca file not JSON, --strict with a too-long
    sample) fail with a message naming file:line, a non-zero exit and no
    output file;
  * tools/plot_dataset.py draws a PNG of the requested size.
"""
import csv
import json
import os
import random
import shutil
import struct
import subprocess
import sys

import numpy as np

BIN, DATA, FUZZ_SFT, PLOT, WORK = sys.argv[1:6]
STIM = os.path.join(DATA, "narratives", "stimuli")
STORIES = ["pieman", "tunnel", "black"]
PAUSE = 0.5
ALPACA_WITH_INPUT = ("Below is an instruction that describes a task, paired with an input that "
                     "provides further context. Write a response that appropriately completes "
                     "the request.\n\n### Instruction:\n")
ALPACA_NO_INPUT = ("Below is an instruction that describes a task. Write a response that "
                   "appropriately completes the request.\n\n### Instruction:\n")
INSTRUCTION = ("Here is part of a story. What does it make you think of? Write the memory or "
               "knowledge it brings to mind.")
failures = []
n_checks = [0]


def check(cond, what):
    n_checks[0] += 1
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(args, expect_ok=True, stdin=None):
    p = subprocess.run([BIN] + args, capture_output=True, text=True, input=stdin)
    if expect_ok and p.returncode != 0:
        sys.exit(f"brainalign {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


# ---- the stories, read by this test ----------------------------------------------

def read_align(path):
    """words, onsets, offsets of a Gentle align.csv (pandas-style interpolation)."""
    words, on, off = [], [], []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.reader(f):
            if not row or all(not c.strip() for c in row):
                continue
            words.append(row[0].strip())
            on.append(float(row[2]) if row[2].strip() else None)
            off.append(float(row[3]) if row[3].strip() else None)

    def fill(col):
        col = list(col)
        known = [i for i, v in enumerate(col) if v is not None]
        for i in range(len(col)):
            if col[i] is not None:
                continue
            before = [k for k in known if k < i]
            after = [k for k in known if k > i]
            if before and after:
                a, b = before[-1], after[0]
                col[i] = col[a] + (col[b] - col[a]) * (i - a) / (b - a)
            elif before:
                col[i] = col[before[-1]]
            else:
                col[i] = col[after[0]]
        return col

    on, off = fill(on), fill(off)
    off = [max(o, s) for s, o in zip(on, off)]
    return words, on, off


def pause_sentence_ends(words, on, off):
    ends = [w for w in range(len(words) - 1) if on[w + 1] - off[w] >= PAUSE]
    return ends + [len(words) - 1]


def punct_sentence_ends(words):
    ends = [w for w in range(len(words) - 1) if words[w].rstrip("\"')]}”’»")[-1:] in ".!?"]
    return ends + [len(words) - 1]


def passage(words, ends, w, unit, n):
    if unit == "words":
        first = max(0, w - n + 1)
    else:
        s = next(i for i, e in enumerate(ends) if e >= w)
        first = 0 if s - n + 1 <= 0 else ends[s - n] + 1
    return first, " ".join(words[first:w + 1])


stories = {}
for name in STORIES:
    path = os.path.join(STIM, name, "align.csv")
    if not os.path.exists(path):
        sys.exit(f"the real data is missing: {path} (see ../shared/data/README.md)")
    words, on, off = read_align(path)
    stories[name] = (words, pause_sentence_ends(words, on, off))

if os.path.isdir(WORK):
    shutil.rmtree(WORK)
os.makedirs(WORK)
W = lambda *p: os.path.join(WORK, *p)  # noqa: E731

TXT = ("The lighthouse keeper climbed the stairs at dusk. His knees ached! Would the ship come "
       "tonight? He lit the lamp and waited, listening to the sea. Nobody came. "
       "At dawn he wrote a letter to his sister, folded it twice, and went to sleep.")
with open(W("keeper.txt"), "w") as f:
    f.write(TXT + "\n")
txt_words = TXT.split()
stories["keeper"] = (txt_words, punct_sentence_ends(txt_words))
story_args = ["dataset"]
for name in STORIES:
    story_args += ["--stories", os.path.join(STIM, name, "align.csv")]
story_args += ["--stories", W("keeper.txt")]

# ---- association sets made by the test -----------------------------------------------

rng = random.Random(13)
human = []
for name in STORIES + ["keeper"]:
    words, ends = stories[name]
    for _ in range(6):
        human.append({"story": name, "after_word": rng.randrange(len(words)),
                      "text": f"{name} makes me think of {rng.choice(['rain', 'home', 'fear'])} "
                              f"#{rng.randrange(10**6)}", "source": "human"})
    for _ in range(3):
        human.append({"story": name, "after_sentence": rng.randrange(len(ends)),
                      "text": f"a memory about {name} {rng.randrange(10**6)}"})
human.append(dict(human[2]))   # exact duplicates: same passage, same text
human.append(dict(human[12]))
human.append({"story": "pieman", "after_word": len(stories["pieman"][0]) - 1,
              "text": "the very end"})
human.append({"story": "tunnel", "after_word": 0, "text": "the very start"})
with open(W("human.jsonl"), "w") as f:
    for a in human:
        f.write(json.dumps(a, ensure_ascii=False) + "\n")
    f.write("\n")  # a blank line is skipped
gpt4 = []
for name in STORIES:
    for s in rng.sample(range(len(stories[name][1])), 5):
        gpt4.append({"story": name, "after_sentence": s, "granularity": "sentence",
                     "text": f"GPT-4 association of sentence {s} of {name}", "source": "gpt4"})
with open(W("gpt4.jsonl"), "w") as f:
    for a in gpt4:
        f.write(json.dumps(a) + "\n")


def insertion_word(a, policy="human", k=4):
    words, ends = stories[a["story"]]
    if policy == "every-k":
        s = a["after_sentence"] if "after_sentence" in a else \
            next(i for i, e in enumerate(ends) if e >= a["after_word"])
        return ends[min(s // k * k + k - 1, len(ends) - 1)]
    return a["after_word"] if "after_word" in a else ends[a["after_sentence"]]


def expected(sets, unit, n, policy="human", k=4, instruction=INSTRUCTION):
    out = []
    for set_path, items in sets:
        for line, a in enumerate(items, 1):
            w = insertion_word(a, policy, k)
            first, text = passage(*stories[a["story"]], w, unit, n)
            out.append({"instruction": instruction, "input": text, "output": a["text"],
                        "origin": f"{set_path}:{line}", "story": a["story"],
                        "word_start": first, "word_end": w + 1})
    return out


def dedup(samples):
    seen, kept = set(), []
    for s in samples:
        key = (s["instruction"], s["input"], s["output"])
        if key not in seen:
            seen.add(key)
            kept.append(s)
    return kept


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def compare_lines(got, want, what):
    check(len(got) == len(want), f"{what}: {len(got)} lines, expected {len(want)}")
    for i, (g, e) in enumerate(zip(got, want)):
        for key, value in e.items():
            if g.get(key) != value:
                check(False, f"{what}: line {i + 1}: {key} = {g.get(key)!r}, expected {value!r}")
                break


def reader_accepts(path):
    p = subprocess.run([FUZZ_SFT, path], capture_output=True, text=True,
                       env=dict(os.environ, FUZZ_VERBOSE="1"))
    check(p.returncode == 0 and "train.jsonl: accepted" in p.stderr,
          f"the train reader (ba_sft_read_jsonl) refuses {path}: {p.stderr[-500:]}")


def no_outputs(*paths):
    for p in paths:
        check(not os.path.exists(p) and not os.path.exists(p + ".partial"),
              f"{p} (or its .partial) exists after a failure")


with open(W("instruction.txt"), "w") as f:
    f.write(INSTRUCTION + "\n")

# ---- 1. passages in words, then in sentences ---------------------------------------------
hs = (W("human.jsonl"), human)
run(story_args + ["--associations", W("human.jsonl"), "--passage-words", "25",
                  "--instruction-file", W("instruction.txt"), "--out", W("words.jsonl"),
                  "--summary", W("words.json")])
want = dedup(expected([hs], "words", 25))
compare_lines(read_jsonl(W("words.jsonl")), want, "words.jsonl")
reader_accepts(W("words.jsonl"))
summ = json.load(open(W("words.json")))
n_dup = len(human) - len(want)
check(n_dup == 2, f"the test's set should hold 2 duplicates, holds {n_dup}")
check(summ["counts"]["read"] == len(human) and summ["counts"]["duplicates"] == n_dup and
      summ["counts"]["kept"] == len(want) and summ["counts"]["train"] == len(want),
      f"words.json counts {summ['counts']}, expected read {len(human)}, duplicates {n_dup}")
check(summ["tokens"] is None, "no tokenizer: the summary must have no token lengths")

run(story_args + ["--associations", W("human.jsonl"), "--associations", W("gpt4.jsonl"),
                  "--passage-sentences", "3", "--instruction", INSTRUCTION,
                  "--out", W("sentences.jsonl")])
want_sent = dedup(expected([hs, (W("gpt4.jsonl"), gpt4)], "sentences", 3))
compare_lines(read_jsonl(W("sentences.jsonl")), want_sent, "sentences.jsonl")
reader_accepts(W("sentences.jsonl"))
check(any(s["word_start"] > 0 and s["story"] != "keeper" for s in want_sent),
      "the sentence passages should not all start at the story's start")

# the every-k policy (the GPT-4 setting): insertion after each block of k sentences
run(story_args + ["--associations", W("gpt4.jsonl"), "--policy", "every-k", "--every", "2",
                  "--passage-sentences", "2", "--instruction", INSTRUCTION,
                  "--out", W("everyk.jsonl")])
compare_lines(read_jsonl(W("everyk.jsonl")),
              dedup(expected([(W("gpt4.jsonl"), gpt4)], "sentences", 2, "every-k", 2)),
              "everyk.jsonl")

# the default instruction is documented in --help and used when none is given
run(story_args + ["--associations", W("gpt4.jsonl"), "--passage-words", "8",
                  "--out", W("default.jsonl")])
helptext = run(["dataset", "--help"]).stdout
d0 = read_jsonl(W("default.jsonl"))[0]["instruction"]
check(len(d0) > 20 and d0 in helptext.replace("\n  ", " "),
      f"the default instruction {d0!r} is not the one --help documents")

# ---- 2. Alpaca imports: a JSON array (elements on known lines) and JSONL ------------------------
alp = [{"instruction": "Name a colour.", "input": "", "output": "Blue."},
       {"instruction": "Translate", "input": "chat", "output": "cat", "extra": 1},
       {"instruction": INSTRUCTION, "input": want[0]["input"], "output": want[0]["output"]},
       {"instruction": "Name a colour.", "input": "", "output": "Blue."}]
array_text = "[\n" + ",\n".join(json.dumps(r, indent=2) for r in alp) + "\n]\n"
with open(W("alpaca.json"), "w") as f:
    f.write(array_text)
lines = [i + 1 for i, l in enumerate(array_text.split("\n")) if l == "{"]
with open(W("alpaca.jsonl"), "w") as f:
    f.write(json.dumps({"instruction": "Count", "output": "1 2 3"}) + "\n")
    f.write(json.dumps({"instruction": "Count", "input": "to two", "output": "1 2"}) + "\n")
run(story_args + ["--associations", W("human.jsonl"), "--passage-words", "25",
                  "--instruction", INSTRUCTION, "--import-alpaca", W("alpaca.json"),
                  "--import-alpaca", W("alpaca.jsonl"), "--out", W("merged.jsonl"),
                  "--summary", W("merged.json")])
imported = [dict(r, origin=f"{W('alpaca.json')}:{ln}", source="alpaca")
            for r, ln in zip(alp, lines)]
imported += [{"instruction": "Count", "input": "", "output": "1 2 3",
              "origin": f"{W('alpaca.jsonl')}:1"},
             {"instruction": "Count", "input": "to two", "output": "1 2",
              "origin": f"{W('alpaca.jsonl')}:2"}]
for r in imported:
    r.pop("extra", None)
want_merged = dedup(expected([hs], "words", 25) + imported)
compare_lines(read_jsonl(W("merged.jsonl")), want_merged, "merged.jsonl")
reader_accepts(W("merged.jsonl"))
ms = json.load(open(W("merged.json")))["counts"]
check(ms["imported"] == 6 and ms["duplicates"] == len(human) + 6 - len(want_merged) == 4,
      f"merged counts {ms}: expected 6 imported, 4 duplicates")
# import only, converted to the train format
run(["dataset", "--import-alpaca", W("alpaca.json"), "--out", W("converted.jsonl")])
compare_lines(read_jsonl(W("converted.jsonl")), dedup(imported[:4]), "converted.jsonl")

# ---- 3. the token-length filter against `brainalign tokenize` ---------------------------------
def n_tokens(tokdir, text):
    out = run(["tokenize", "--tokenizer", tokdir], stdin=text).stdout.split()
    return len(out)


def sample_length(tokdir, s, bos):
    prompt = (ALPACA_WITH_INPUT + s["instruction"] + "\n\n### Input:\n" + s["input"] +
              "\n\n### Response:\n") if s["input"] else \
             (ALPACA_NO_INPUT + s["instruction"] + "\n\n### Response:\n")
    return bos + n_tokens(tokdir, prompt) + n_tokens(tokdir, s["output"]) + 1


small = human[:10] + human[27:31] + [human[36]]  # one `brainalign tokenize` run per text: keep it short
with open(W("small.jsonl"), "w") as f:
    for a in small:
        f.write(json.dumps(a, ensure_ascii=False) + "\n")
for tokname, bos in (("gpt2-tokenizer", 0), ("llama-tokenizer", 1)):
    tokdir = os.path.join(DATA, tokname)
    base = dedup(expected([(W("small.jsonl"), small)], "words", 25))
    lengths = [sample_length(tokdir, s, bos) for s in base]
    limit = int(np.median(lengths))
    keep = [(s, n) for s, n in zip(base, lengths) if n <= limit]
    n_drop = len(base) - len(keep)
    check(0 < n_drop < len(base), f"{tokname}: the limit {limit} should drop some samples")
    out, summary = W(f"filt-{tokname}.jsonl"), W(f"filt-{tokname}.json")
    run(story_args + ["--associations", W("small.jsonl"), "--passage-words", "25",
                      "--instruction", INSTRUCTION, "--tokenizer", tokdir, "--max-tokens",
                      str(limit), "--out", out, "--summary", summary])
    compare_lines(read_jsonl(out), [s for s, _ in keep], out)
    t = json.load(open(summary))
    check(t["counts"]["filtered"] == n_drop and
          t["counts"]["duplicates"] == len(small) - len(base) == 1,
          f"{tokname}: counts {t['counts']}, expected {n_drop} filtered")
    kl = [n for _, n in keep]
    check(t["tokens"]["lengths"] == kl, f"{tokname}: token lengths {t['tokens']['lengths']} != {kl}")
    check(sorted(t["tokens"]["filtered_lengths"]) == sorted(n for n in lengths if n > limit),
          f"{tokname}: filtered lengths differ")
    check(t["tokens"]["min"] == min(kl) and t["tokens"]["max"] == max(kl) and
          abs(t["tokens"]["median"] - float(np.median(kl))) < 1e-9,
          f"{tokname}: min/median/max {t['tokens']} vs numpy")
    if tokname == "gpt2-tokenizer":
        # --strict: the first too-long sample is an error naming its association
        bad = next(s for s, n in zip(base, lengths) if n > limit)
        p = run(story_args + ["--associations", W("small.jsonl"), "--passage-words", "25",
                              "--instruction", INSTRUCTION, "--tokenizer", tokdir,
                              "--max-tokens", str(limit), "--strict", "--out", W("strict.jsonl"),
                              "--summary", W("strict.json")], expect_ok=False)
        check(p.returncode != 0 and bad["origin"] in p.stderr,
              f"--strict: expected an error naming {bad['origin']}: {p.stderr}")
        no_outputs(W("strict.jsonl"), W("strict.json"))
        # the histogram
        png = W("lengths.png")
        p = subprocess.run([sys.executable, PLOT, summary, "--out", png, "--width", "720",
                            "--height", "480"], capture_output=True, text=True)
        check(p.returncode == 0 and os.path.exists(png), f"plot_dataset.py failed: {p.stderr}")
        if os.path.exists(png):
            head = open(png, "rb").read(24)
            check(head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24]) ==
                  (720, 480), f"{png}: not a 720x480 PNG ({head!r})")
        p = subprocess.run([sys.executable, PLOT, W("words.json"), "--out", W("none.png")],
                           capture_output=True, text=True)
        check(p.returncode != 0 and "tokenizer" in p.stderr and not os.path.exists(W("none.png")),
              "plot_dataset.py without token lengths must fail clearly")

# ---- 4. the seeded split -----------------------------------------------------------------------
def split(seed, tag):
    tr, va = W(f"tr-{tag}.jsonl"), W(f"va-{tag}.jsonl")
    run(story_args + ["--associations", W("human.jsonl"), "--associations", W("gpt4.jsonl"),
                      "--passage-words", "25", "--instruction", INSTRUCTION,
                      "--val-fraction", "0.3", "--val-out", va, "--seed", str(seed),
                      "--out", tr, "--summary", W(f"split-{tag}.json")])
    return read_jsonl(tr), read_jsonl(va)


allset = dedup(expected([hs, (W("gpt4.jsonl"), gpt4)], "words", 25))
key = lambda s: s["origin"]  # noqa: E731
a_tr, a_va = split(7, "a")
b_tr, b_va = split(7, "b")
c_tr, c_va = split(8, "c")
check((a_tr, a_va) == (b_tr, b_va), "the same seed must give the same split")
check({key(s) for s in a_va} != {key(s) for s in c_va}, "another seed must give another split")
for tr, va, tag in ((a_tr, a_va, "seed 7"), (c_tr, c_va, "seed 8")):
    n_val = int(np.floor(0.3 * len(allset) + 0.5))
    check(len(va) == n_val, f"{tag}: {len(va)} validation samples, expected {n_val}")
    check(not ({key(s) for s in tr} & {key(s) for s in va}), f"{tag}: train and val overlap")
    check(sorted(map(key, tr + va)) == sorted(map(key, allset)), f"{tag}: train + val != all")
    order = [key(s) for s in allset]
    check([key(s) for s in tr] == [o for o in order if o in {key(s) for s in tr}],
          f"{tag}: the training file is not in the dataset's order")
reader_accepts(W("va-a.jsonl"))

# ---- 5. bad inputs: a message naming the file (and line), non-zero exit, no output ----------------
def must_fail(args, needle, what):
    outs = [W("bad.jsonl"), W("bad-val.jsonl"), W("bad.json")]
    p = run(args + ["--out", outs[0], "--val-out", outs[1], "--val-fraction", "0.2",
                    "--summary", outs[2]], expect_ok=False)
    check(p.returncode == 1, f"{what}: exit status {p.returncode}, expected 1 (an error, not a "
                             "crash)")
    check("Sanitizer" not in p.stderr and "runtime error" not in p.stderr,
          f"{what}: a sanitizer report: {p.stderr[-2000:]}")
    check(needle in p.stderr, f"{what}: the message does not name {needle!r}: {p.stderr.strip()}")
    no_outputs(*outs)


with open(W("badline.jsonl"), "w") as f:
    f.write(json.dumps(human[0]) + "\n" + json.dumps(human[1]) + "\n{\"story\": \"pieman\",\n")
must_fail(story_args + ["--associations", W("badline.jsonl"), "--passage-words", "5"],
          W("badline.jsonl") + ":3", "a bad association line")
with open(W("unknown.jsonl"), "w") as f:
    f.write(json.dumps(human[0]) + "\n" + json.dumps({"story": "nosuch", "after_word": 1,
                                                       "text": "x"}) + "\n")
must_fail(story_args + ["--associations", W("unknown.jsonl"), "--passage-words", "5"],
          W("unknown.jsonl") + ":2", "an unknown story")
open(W("empty.txt"), "w").close()
must_fail(story_args + ["--stories", W("empty.txt"), "--associations", W("human.jsonl"),
                        "--passage-words", "5"], W("empty.txt"), "an empty story")
os.makedirs(W("emptycsv", "hollow"))
open(W("emptycsv", "hollow", "align.csv"), "w").close()
must_fail(story_args + ["--stories", W("emptycsv", "hollow", "align.csv"), "--associations",
                        W("human.jsonl"), "--passage-words", "5"], "hollow", "an empty align.csv")
with open(W("beyond.jsonl"), "w") as f:
    f.write(json.dumps({"story": "tunnel", "after_word": len(stories["tunnel"][0]),
                        "text": "too far"}) + "\n")
must_fail(story_args + ["--associations", W("beyond.jsonl"), "--passage-words", "5"],
          W("beyond.jsonl") + ":1", "an insertion point beyond the story")
with open(W("beyond-s.jsonl"), "w") as f:
    f.write("\n" + json.dumps({"story": "keeper", "after_sentence": len(stories["keeper"][1]),
                               "text": "too far"}) + "\n")
must_fail(story_args + ["--associations", W("beyond-s.jsonl"), "--passage-sentences", "1"],
          W("beyond-s.jsonl") + ":2", "a sentence beyond the story")
with open(W("notjson.json"), "w") as f:
    f.write('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": oops}\n]\n')
must_fail(["dataset", "--import-alpaca", W("notjson.json")], W("notjson.json") + ":3",
          "an Alpaca file that is not JSON")
with open(W("noout.json"), "w") as f:
    f.write('[\n  {"instruction": "a", "output": "b"},\n\n  {"instruction": "c",\n'
            '   "output": ""}\n]\n')
must_fail(["dataset", "--import-alpaca", W("noout.json")], W("noout.json") + ":4",
          "an Alpaca record with an empty output")
with open(W("notjson.jsonl"), "w") as f:
    f.write('{"instruction": "a", "output": "b"}\nhello\n')
must_fail(["dataset", "--import-alpaca", W("notjson.jsonl")], W("notjson.jsonl") + ":2",
          "an Alpaca JSONL line that is not JSON")
must_fail(story_args + ["--associations", W("human.jsonl")], "--passage",
          "no passage length")
must_fail(story_args + ["--associations", W("human.jsonl"), "--passage-words", "5",
                        "--policy", "random"], "random", "the random policy")

if failures:
    print(f"{len(failures)} check(s) failed")
    sys.exit(1)
print(f"dataset_cli: all {n_checks[0]} checks passed")
