#!/usr/bin/python3
"""tokenizer_decode_oracle.py - checks ba_tokenizer_decode (through
tests/oracle/tokenizer_decode_dump) on random id lists:

  sp DUMP MODEL_DIR WORKDIR
      LLaMA's tokenizer.model, and its Hugging Face tokenizer.json form
      (written by sp_bpe_oracle.py to-hf-json into WORKDIR): the text must
      equal the SentencePiece library's decode_ids of the ids without the
      control and unknown ones (skip_special_tokens=True); the raw bytes
      (ba_tokenizer_decode_bytes) must equal the pieces joined by the same
      rules with byte pieces left as bytes, and equal the text whenever they
      are valid UTF-8. Lists mix ordinary pieces, "▁" pieces, byte pieces
      (valid, truncated and invalid UTF-8 sequences), <s>, </s> and <unk>.
  gpt2 DUMP TOKENIZER_DIR
      GPT-2 (encoder.json): the text must be the tokens' bytes decoded with
      Python's bytes.decode("utf-8", errors="replace"), as Hugging Face's
      decode does; the raw bytes the tokens' bytes.
  Both: an id outside the vocabulary is an error naming it.
"""
import json
import os
import random
import subprocess
import sys

SPACE = "\u2581"


def run_dump(dump, tok_dir, lists):
    data = "".join(" ".join(str(i) for i in ids) + "\n" for ids in lists)
    out = subprocess.run([dump, tok_dir], input=data, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit("FAIL: %s %s exited %d: %s" % (dump, tok_dir, out.returncode,
                                                        out.stderr.strip()))
    lines = out.stdout.split("\n")[:-1]
    if len(lines) != len(lists):
        raise SystemExit("FAIL: %d lists in, %d lines out" % (len(lists), len(lines)))
    results = []
    for line in lines:
        if line.startswith("error: "):
            results.append(("error", line[7:]))
            continue
        a, b = line.split(" ")
        unhex = lambda h: b"" if h == "-" else bytes.fromhex(h)
        results.append((unhex(a), unhex(b)))
    return results


def utf8_sequences(rng):
    """Byte strings: valid characters, truncated ones and invalid bytes."""
    valid = [c.encode() for c in "aé€😀\u2581\u0800\U0010FFFF\uFFFD"]
    s = rng.choice(valid)
    kind = rng.random()
    if kind < 0.5:
        return s
    if kind < 0.8 and len(s) > 1:
        return s[:rng.randrange(1, len(s))]  # truncated
    return bytes([rng.choice([0x80, 0xBF, 0xC0, 0xC1, 0xED, 0xF5, 0xFF, 0xE0, 0xF4])])


def check_sp(dump, model_dir, workdir):
    import sentencepiece as spm

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import sp_bpe_oracle

    sp = spm.SentencePieceProcessor(model_file=os.path.join(model_dir, "tokenizer.model"))
    V = sp.get_piece_size()
    byte_id = {sp.id_to_piece(i): i for i in range(V) if sp.is_byte(i)}
    byte_of = {i: int(p[3:5], 16) for p, i in byte_id.items()}
    spaces = [i for i in range(V) if sp.id_to_piece(i).startswith(SPACE)]
    special = {i for i in range(V) if sp.is_control(i) or sp.is_unknown(i)}
    rng = random.Random(1312)
    lists = []
    for _ in range(3000):
        ids = []
        for _ in range(rng.randrange(0, 12)):
            r = rng.random()
            if r < 0.3:
                ids.append(rng.randrange(V))
            elif r < 0.5:
                ids.append(rng.choice(spaces))
            elif r < 0.85:
                ids.extend(byte_id["<0x%02X>" % b] for b in utf8_sequences(rng))
            else:
                ids.append(rng.choice(sorted(special)))
        lists.append(ids)
    lists += [[], [1], [1, 2], [0], [sp.piece_to_id(SPACE)], [sp.piece_to_id(SPACE)] * 2,
              [byte_id["<0x20>"], sp.piece_to_id(SPACE + "the")]]

    def raw_bytes(ids):
        out, first = bytearray(), True
        for i in ids:
            if i in special:
                continue
            if i in byte_of:
                out.append(byte_of[i])
            else:
                piece = sp.id_to_piece(i)
                if first and piece.startswith(SPACE):
                    piece = piece[1:]
                out += piece.replace(SPACE, " ").encode()
            first = False
        return bytes(out)

    sp_bpe_oracle.to_hf_json(sp_bpe_oracle.Model(os.path.join(model_dir, "tokenizer.model")),
                             os.path.join(workdir, "tokenizer.json"))
    failures = 0
    for form, tok_dir in (("tokenizer.model", model_dir), ("tokenizer.json", workdir)):
        results = run_dump(dump, tok_dir, lists)
        for ids, (text, raw) in zip(lists, results):
            if text == "error":
                failures += 1
                print("FAIL %s %s: error %s" % (form, ids, raw))
                continue
            want = sp.decode_ids([i for i in ids if i not in special]).encode()
            want_raw = raw_bytes(ids)
            ok = text == want and raw == want_raw
            try:
                ok = ok and (want_raw.decode("utf-8") == want.decode() or False)
            except UnicodeDecodeError:
                pass
            if not ok:
                failures += 1
                if failures < 20:
                    print("FAIL %s %s:\n  C     %r / raw %r\n  want  %r / raw %r" %
                          (form, ids, text, raw, want, want_raw))
        bad = run_dump(dump, tok_dir, [[5, V], [-1]])
        if bad[0][0] != "error" or str(V) not in bad[0][1] or bad[1][0] != "error":
            failures += 1
            print("FAIL %s: ids outside the vocabulary are not refused: %s" % (form, bad))
        print("%s: %d id lists decoded" % (form, len(lists)))
    return failures


def check_gpt2(dump, tok_dir):
    encoder = json.load(open(os.path.join(tok_dir, "encoder.json"), encoding="utf-8"))
    # GPT-2's byte <-> printable code point map, from its definition
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) +
                 list(range(0xAE, 0xFF + 1)))
    cps, extra = {}, 0
    for b in range(256):
        if b in printable:
            cps[chr(b)] = b
        else:
            cps[chr(256 + extra)] = b
            extra += 1
    token_bytes = {}
    for token, i in encoder.items():
        if token == "<|endoftext|>":
            token_bytes[i] = token.encode()
        else:
            token_bytes[i] = bytes(cps[c] for c in token)
    V = len(encoder)
    single = [i for i, b in token_bytes.items() if len(b) == 1 and b[0] >= 0x80]
    rng = random.Random(1313)
    lists = []
    for _ in range(3000):
        ids = []
        for _ in range(rng.randrange(0, 10)):
            ids.append(rng.randrange(V) if rng.random() < 0.5 else rng.choice(single))
        lists.append(ids)
    lists.append([V - 1, 0])
    failures = 0
    for ids, (text, raw) in zip(lists, run_dump(dump, tok_dir, lists)):
        joined = b"".join(token_bytes[i] for i in ids)
        want = joined.decode("utf-8", errors="replace").encode()
        if text != want or raw != joined:
            failures += 1
            if failures < 20:
                print("FAIL gpt2 %s:\n  C    %r / raw %r\n  want %r / raw %r" %
                      (ids, text, raw, want, joined))
    bad = run_dump(dump, tok_dir, [[V]])
    if bad[0][0] != "error" or str(V) not in bad[0][1]:
        failures += 1
        print("FAIL gpt2: id %d is not refused: %s" % (V, bad))
    print("gpt2: %d id lists decoded" % len(lists))
    return failures


def main(argv):
    if len(argv) == 5 and argv[1] == "sp":
        os.makedirs(argv[4], exist_ok=True)
        failures = check_sp(argv[2], argv[3], argv[4])
    elif len(argv) == 4 and argv[1] == "gpt2":
        failures = check_gpt2(argv[2], argv[3])
    else:
        print(__doc__)
        return 2
    if failures:
        print("tokenizer_decode_oracle: %d failures" % failures)
        return 1
    print("tokenizer_decode_oracle: all lists agree")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
