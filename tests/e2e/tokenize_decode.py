#!/usr/bin/python3
"""tokenize_decode.py - `brainalign tokenize --decode` end to end, for the
GPT-2 and the LLaMA (SentencePiece) tokenizers of the shared data:
  - the reference ids of reference/tokens/<story>.<family>.json decode to
    the story text, exactly (stdout, no newline added); for LLaMA also with
    <s> before and </s> after;
  - `tokenize | tokenize --decode` gives back a text with accents, curly
    quotes and an emoji;
  - ids not made of digits, and ids outside the vocabulary: non-zero exit, a
    message naming the id, nothing on stdout;
  - under mpirun -np 2 the text is printed once;
  - --help documents --decode.
usage: tokenize_decode.py BRAINALIGN DATA_DIR [MPIEXEC...]
"""
import json
import os
import subprocess
import sys

STORIES = ["bigbang", "pieman", "shapessocial"]
TEXT = "Caf\u00e9 \u201cquoted\u201d na\u00efve \U0001F642 end."


def run(cmd, data):
    return subprocess.run(cmd, input=data, capture_output=True)


def main(argv):
    exe, data_dir, mpiexec = argv[1], argv[2], argv[3:]
    failures = []
    for family, tok_dir, bos_eos in (("gpt2", "gpt2-tokenizer", None),
                                     ("llama", "llama-tokenizer", (1, 2))):
        tok = os.path.join(data_dir, tok_dir)
        decode = [exe, "tokenize", "--tokenizer", tok, "--decode"]
        for story in STORIES:
            ref = json.load(open(os.path.join(data_dir, "reference", "tokens",
                                              "%s.%s.json" % (story, family)), encoding="utf-8"))
            lists = [ref["ids"]]
            if bos_eos:
                lists.append([bos_eos[0]] + ref["ids"] + [bos_eos[1]])
            for ids in lists:
                out = run(decode, " ".join(map(str, ids)).encode() + b"\n")
                if out.returncode != 0 or out.stdout != ref["text"].encode():
                    failures.append("%s %s: exit %d, %d bytes (want %d): %s" % (
                        family, story, out.returncode, len(out.stdout),
                        len(ref["text"].encode()), out.stderr.decode()[:200]))
        ids = run([exe, "tokenize", "--tokenizer", tok], TEXT.encode())
        back = run(decode, ids.stdout)
        if ids.returncode != 0 or back.returncode != 0 or back.stdout != TEXT.encode():
            failures.append("%s: tokenize | tokenize --decode gave %r" % (family, back.stdout))
        for bad, fragment in ((b"12 abc 7\n", b"id 1"), (b"5 99999999\n", b"99999999"),
                              (b"3 -4\n", b"-4")):
            out = run(decode, bad)
            if out.returncode == 0 or out.stdout or fragment not in out.stderr:
                failures.append("%s: input %r: exit %d, stdout %r, stderr %r" % (
                    family, bad, out.returncode, out.stdout, out.stderr))
        if mpiexec:
            out = run(mpiexec + ["-n", "2"] + decode, ids.stdout)
            if out.returncode != 0 or out.stdout != TEXT.encode():
                failures.append("%s: under %s -n 2: exit %d, %r" % (
                    family, " ".join(mpiexec), out.returncode, out.stdout))
    out = run([exe, "tokenize", "--help"], b"")
    if out.returncode != 0 or b"--decode" not in out.stdout:
        failures.append("--help does not document --decode")
    for f in failures:
        print("FAIL", f)
    if failures:
        return 1
    print("tokenize --decode: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
