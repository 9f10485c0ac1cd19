#!/usr/bin/python3
"""Test oracle for the GPT-2 byte-level BPE (never used at run time).

usage:
  gpt2_bpe_oracle.py cli BRAINALIGN TOKENIZER_DIR REFERENCE.json
      pipe the reference "text" into `brainalign tokenize` and compare its
      output with the reference "ids".
  gpt2_bpe_oracle.py train DIR BRAINALIGN
      re-train the tiny vocabulary from DIR/oracle_input.json
      ({"corpus": [...], "n_merges": N}) with the definition below, compare
      it with DIR/vocab.json and DIR/merges.txt written by
      ba_bpe_write_tiny_vocab, then compare `brainalign tokenize
      --tokenizer DIR` with this oracle's own encoder on several texts.

Pre-tokenisation uses Python's `re` (the `regex` module with \\p{L} is not
installed): [^\\W\\d_] for \\p{L} and \\d for \\p{N}. That is GPT-2's pattern
for text whose characters are letters, decimal digits, punctuation, symbols
or white space, which is what the corpus here contains.
"""
import json
import re
import subprocess
import sys
from collections import Counter

PATTERN = re.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""")


def byte_map():
    """GPT-2's byte order (id k is byte order[k]) and byte -> printable char."""
    order = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + \
        list(range(0xAE, 0x100))
    chars = order[:]
    n = 0
    for b in range(256):
        if b not in order:
            order.append(b)
            chars.append(256 + n)
            n += 1
    return order, {b: chr(c) for b, c in zip(order, chars)}


ORDER, PRINTABLE = byte_map()


def printable(token: bytes) -> str:
    return "".join(PRINTABLE[b] for b in token)


def pretokens(text):
    return [m.encode("utf-8") for m in PATTERN.findall(text)]


def train(corpus, n_merges):
    """Most frequent adjacent pair first; ties: smaller (left, right) bytes."""
    counts = Counter(w for doc in corpus for w in pretokens(doc))
    tokens = [bytes([b]) for b in ORDER]
    index = {t: i for i, t in enumerate(tokens)}
    words = {w: [index[bytes([b])] for b in w] for w in counts}
    merges = []
    for _ in range(n_merges):
        pairs = Counter()
        for w, syms in words.items():
            for a, b in zip(syms, syms[1:]):
                pairs[(a, b)] += counts[w]
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], tokens[p[0]], tokens[p[1]]))
        merged = tokens[best[0]] + tokens[best[1]]
        if merged not in index:
            index[merged] = len(tokens)
            tokens.append(merged)
        new_id = index[merged]
        merges.append(best)
        for w, syms in words.items():
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and (syms[i], syms[i + 1]) == best:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            words[w] = out
    return tokens, merges


def bpe_encode(text, vocab, ranks):
    """GPT-2's encoder.py: merge the lowest-ranked bigram everywhere, repeat."""
    ids = []
    for piece in pretokens(text):
        word = [PRINTABLE[b] for b in piece]
        while len(word) > 1:
            pairs = set(zip(word, word[1:]))
            best = min(pairs, key=lambda p: ranks.get(p, float("inf")))
            if best not in ranks:
                break
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = out
        ids.extend(vocab[t] for t in word)
    return ids


def run_tokenize(binary, tokenizer_dir, text):
    proc = subprocess.run([binary, "tokenize", "--tokenizer", tokenizer_dir],
                          input=text.encode("utf-8"), capture_output=True)
    if proc.returncode != 0:
        sys.exit("brainalign tokenize failed (%d): %s" %
                 (proc.returncode, proc.stderr.decode(errors="replace")))
    return [int(x) for x in proc.stdout.split()]


def compare(got, want, what):
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            sys.exit("%s: token %d is %d, expected %d" % (what, i, g, w))
    if len(got) != len(want):
        sys.exit("%s: %d tokens, expected %d" % (what, len(got), len(want)))


def cmd_cli(binary, tokenizer_dir, reference):
    with open(reference, encoding="utf-8") as f:
        ref = json.load(f)
    got = run_tokenize(binary, tokenizer_dir, ref["text"])
    compare(got, ref["ids"], reference)
    print("brainalign tokenize reproduces the %d ids of %s" % (len(got), reference))


def cmd_train(directory, binary):
    with open(directory + "/oracle_input.json", encoding="utf-8") as f:
        spec = json.load(f)
    tokens, merges = train(spec["corpus"], spec["n_merges"])
    want_vocab = [(printable(t), i) for i, t in enumerate(tokens)]
    want_vocab.append(("<|endoftext|>", len(tokens)))
    with open(directory + "/vocab.json", encoding="utf-8") as f:
        got_vocab = list(json.load(f).items())
    if got_vocab != want_vocab:
        diff = next((i for i, (g, w) in enumerate(zip(got_vocab, want_vocab)) if g != w),
                    min(len(got_vocab), len(want_vocab)))
        sys.exit("vocab.json differs from the oracle at entry %d: %r vs %r (%d vs %d tokens)" %
                 (diff, got_vocab[diff:diff + 1], want_vocab[diff:diff + 1], len(got_vocab),
                  len(want_vocab)))
    want_merges = ["#version: 0.2"] + \
        ["%s %s" % (printable(tokens[a]), printable(tokens[b])) for a, b in merges]
    with open(directory + "/merges.txt", encoding="utf-8") as f:
        got_merges = f.read().split("\n")
    if got_merges[-1] == "":
        got_merges.pop()
    if got_merges != want_merges:
        diff = next((i for i, (g, w) in enumerate(zip(got_merges, want_merges)) if g != w),
                    min(len(got_merges), len(want_merges)))
        sys.exit("merges.txt differs from the oracle at line %d: %r vs %r" %
                 (diff + 1, got_merges[diff:diff + 1], want_merges[diff:diff + 1]))
    vocab = dict(want_vocab)
    ranks = {}
    for rank, line in enumerate(want_merges[1:]):
        a, b = line.split(" ")
        ranks[(a, b)] = rank
    texts = spec["corpus"] + ["the dog ate 12 pies\n", "zebra’s café, the cat's mat!!",
                              "  spaced   out \n\n end"]
    for text in texts:
        compare(run_tokenize(binary, directory, text), bpe_encode(text, vocab, ranks),
                "tokenize %r" % text[:40])
    print("tiny vocabulary: %d tokens, %d merges, and %d encodings agree with the oracle" %
          (len(vocab), len(merges), len(texts)))


def main(argv):
    if len(argv) == 5 and argv[1] == "cli":
        cmd_cli(argv[2], argv[3], argv[4])
    elif len(argv) == 4 and argv[1] == "train":
        cmd_train(argv[2], argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
