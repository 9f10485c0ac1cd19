#!/usr/bin/python3
"""Test oracle for src/lm/tokenizer_sp.c: an independent, deliberately plain
SentencePiece BPE encoder (LLaMA's tokenizer.model), written from the
SentencePiece description, not from the C code. Never used at run time.

  sp_bpe_oracle.py encode MODEL IN.json OUT.json
      IN.json: a list of texts as hex strings (so invalid UTF-8 can be
      given); OUT.json: the list of their ids (no BOS).
  sp_bpe_oracle.py check-reference MODEL REF.json...
      encodes each reference story's "text" and compares with its "ids";
      exit status 1 on any difference. This anchors the oracle itself.
  sp_bpe_oracle.py to-hf-json MODEL OUT.json
      writes the Hugging Face tokenizer.json form of the model (vocab,
      merges ordered by the merged piece's score, byte_fallback, normaliser
      Prepend + Replace), as Hugging Face's converter does for LLaMA.
"""
import json
import struct
import sys

SPACE = "\u2581"
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def read_varint(buf, i):
    value = shift = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i


def fields(buf):
    i = 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = read_varint(buf, i)
        elif wire == 2:
            n, i = read_varint(buf, i)
            value = buf[i:i + n]
            i += n
        elif wire == 5:
            value = struct.unpack("<f", buf[i:i + 4])[0]
            i += 4
        elif wire == 1:
            value = buf[i:i + 8]
            i += 8
        else:
            raise ValueError("wire type %d" % wire)
        yield number, value


def lead_length(b):
    """Length of the UTF-8 sequence a lead byte announces (0: not a lead byte)."""
    if b < 0x80:
        return 1
    if b >> 5 == 0b110:
        return 2
    if b >> 4 == 0b1110:
        return 3
    if b >> 3 == 0b11110:
        return 4
    return 0


class Model:
    def __init__(self, path):
        data = open(path, "rb").read()
        self.pieces = []  # (text, score, type)
        trainer = {}
        self.add_dummy_prefix = True
        self.remove_extra_whitespaces = True
        for number, value in fields(data):
            if number == 1:
                p = dict(fields(value))
                self.pieces.append((p[1].decode("utf-8"), p.get(2, 0.0), p.get(3, NORMAL)))
            elif number == 2:
                trainer = dict(fields(value))
            elif number == 3:
                norm = dict(fields(value))
                self.add_dummy_prefix = bool(norm.get(3, 1))
                self.remove_extra_whitespaces = bool(norm.get(4, 1))
                assert not norm.get(2), "only the identity normaliser"
        assert trainer.get(3) == 2, "BPE model expected"
        self.byte_fallback = bool(trainer.get(35, 0))
        self.unk_id = trainer.get(40, 0)
        self.mergeable = {t: i for i, (t, s, ty) in enumerate(self.pieces)
                          if ty in (NORMAL, USER_DEFINED)}
        self.byte_id = {int(t[3:5], 16): i for i, (t, s, ty) in enumerate(self.pieces)
                        if ty == BYTE}

    def characters(self, raw):
        """SentencePiece's normaliser (identity map) as a list of characters:
        a byte that does not start valid UTF-8 becomes U+FFFD."""
        chars, i = [], 0
        while i < len(raw):
            b = raw[i]
            n = lead_length(b)
            try:
                c = raw[i:i + n].decode("utf-8") if n and i + n <= len(raw) else None
            except UnicodeDecodeError:
                c = None
            if c is None:
                chars.append("\ufffd")
                i += 1
            else:
                chars.append(c)
                i += n
        if self.remove_extra_whitespaces:
            text = " ".join(w for w in "".join(chars).split(" ") if w)
            chars = list(text)
        if not chars:
            return []
        if self.add_dummy_prefix:
            chars = [" "] + chars
        return [SPACE if c == " " else c for c in chars]

    def encode(self, raw):
        symbols = self.characters(raw)
        while True:
            best = None
            for i in range(len(symbols) - 1):
                merged = symbols[i] + symbols[i + 1]
                if merged in self.mergeable:
                    score = self.pieces[self.mergeable[merged]][1]
                    if best is None or score > best[0]:
                        best = (score, i)
            if best is None:
                break
            i = best[1]
            symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]
        ids = []
        for s in symbols:
            if s in self.mergeable:
                ids.append(self.mergeable[s])
            elif self.byte_fallback:
                ids.extend(self.byte_id[b] for b in s.encode("utf-8"))
            elif not (ids and ids[-1] == self.unk_id):
                ids.append(self.unk_id)
        return ids


def to_hf_json(model, out_path):
    vocab = {t: i for i, (t, s, ty) in enumerate(model.pieces)}
    merges = []
    for text, score, ty in model.pieces:
        if ty != NORMAL:
            continue
        splits = [(text[:k], text[k:]) for k in range(1, len(text))
                  if text[:k] in vocab and text[k:] in vocab]
        splits.sort(key=lambda ab: (vocab[ab[0]], vocab[ab[1]]))
        merges.extend((score, a, b) for a, b in splits)
    merges.sort(key=lambda m: -m[0])  # stable: keeps the order within a score
    doc = {
        "version": "1.0",
        "added_tokens": [{"id": i, "content": t, "special": True}
                         for i, (t, s, ty) in enumerate(model.pieces) if ty in (UNKNOWN, CONTROL)],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": SPACE},
            {"type": "Replace", "pattern": {"String": " "}, "content": SPACE}]},
        "pre_tokenizer": None,
        "model": {"type": "BPE", "dropout": None, "unk_token": model.pieces[model.unk_id][0],
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": model.byte_fallback,
                  "vocab": vocab, "merges": ["%s %s" % (a, b) for s, a, b in merges]},
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)


def main(argv):
    if len(argv) >= 3 and argv[1] == "encode" and len(argv) == 5:
        model = Model(argv[2])
        texts = [bytes.fromhex(h) for h in json.load(open(argv[3]))]
        json.dump([model.encode(t) for t in texts], open(argv[4], "w"))
        return 0
    if len(argv) >= 4 and argv[1] == "check-reference":
        model = Model(argv[2])
        status = 0
        for path in argv[3:]:
            ref = json.load(open(path, encoding="utf-8"))
            ids = model.encode(ref["text"].encode("utf-8"))
            same = ids == ref["ids"]
            print("%s: %d ids, %s" % (ref["story"], len(ids), "same" if same else "DIFFERENT"))
            status |= not same
        return status
    if len(argv) == 4 and argv[1] == "to-hf-json":
        to_hf_json(Model(argv[2]), argv[3])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
