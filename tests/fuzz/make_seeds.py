#!/usr/bin/python3
"""Write the seed corpora tests/fuzz/corpus/<parser>/ (run once; the files
are committed). Seeds are small excerpts of the real shared data (Narratives
align.csv, the GPT-2 vocabulary and merges, the LLaMA SentencePiece model)
and hand-made edge cases: every reader's accepted variants and typical
corruptions. Regression inputs found by fuzzing are added by hand as
corpus/<parser>/regress-*.

    /usr/bin/python3 tests/fuzz/make_seeds.py [DATA_DIR]
"""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "shared", "data")
SEP = b"\n=====\n"


def out(parser, name, data):
    d = os.path.join(HERE, "corpus", parser)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- safetensors
def st_file(tensors, metadata=None, pad=True, header_override=None, data_extra=b""):
    """tensors: list of (name, dtype, shape, bytes)."""
    header, blob, off = {}, b"", 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blob += raw
        off += len(raw)
    text = header_override if header_override is not None else json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + blob + data_extra


def f32(*v):
    return struct.pack("<%df" % len(v), *v)


def safetensors_seeds():
    p = "safetensors"
    out(p, "one-f32", st_file([("w", "F32", [2, 2], f32(1, 2, 3, 4))]))
    gpt2 = [("h.0.attn.c_attn.bias", "F32", [6], f32(*range(6))),
            ("h.0.attn.c_attn.weight", "F32", [2, 6], f32(*range(12))),
            ("h.0.ln_1.weight", "F16", [2], b"\x00\x3c\x00\x40"),
            ("ln_f.bias", "BF16", [2], b"\x80\x3f\x00\x40"),
            ("wpe.weight", "F32", [3, 2], f32(*range(6))),
            ("wte.weight", "F32", [4, 2], f32(*range(8)))]
    out(p, "gpt2-layout-metadata", st_file(gpt2, {"format": "pt"}))
    out(p, "all-dtypes", st_file([("a", "F64", [1], b"\0" * 8), ("b", "I64", [1], b"\1" * 8),
                                  ("c", "I32", [1], b"\2" * 4), ("d", "I16", [1], b"\3" * 2),
                                  ("e", "I8", [1], b"\4"), ("f", "U8", [1], b"\5"),
                                  ("g", "BOOL", [1], b"\1"), ("h", "F8_E4M3", [1], b"\6"),
                                  ("i", "F8_E5M2", [1], b"\7"), ("j", "U16", [1], b"\0\0"),
                                  ("k", "U32", [1], b"\0" * 4), ("l", "U64", [1], b"\0" * 8)]))
    out(p, "empty-and-scalar", st_file([("empty", "F32", [0, 3], b""), ("scalar", "F32", [], f32(7))]))
    out(p, "no-tensors", st_file([]))
    out(p, "unpadded", st_file([("x", "F16", [3], b"\0" * 6)], pad=False))
    out(p, "bad-overlap", st_file([], header_override=b'{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},'
                                                     b'"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}',
                                   data_extra=b"abc"))
    out(p, "bad-hole", st_file([], header_override=b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}',
                                data_extra=b"ab"))
    out(p, "bad-size", st_file([], header_override=b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}',
                                data_extra=b"abcd"))
    out(p, "bad-trailing-bytes", st_file([("a", "U8", [1], b"a")], data_extra=b"zz"))
    out(p, "bad-header-length", struct.pack("<Q", 1 << 40) + b"{}")
    out(p, "bad-not-object", st_file([], header_override=b"[1,2,3]"))
    out(p, "bad-offsets-reversed", st_file([], header_override=b'{"a":{"dtype":"U8","shape":[0],"data_offsets":[3,1]}}',
                                            data_extra=b"abc"))
    out(p, "bad-shape-overflow", st_file([], header_override=b'{"a":{"dtype":"F64","shape":[4294967296,4294967296,16],'
                                                          b'"data_offsets":[0,0]}}'))
    out(p, "bad-metadata", st_file([("a", "U8", [1], b"a")], {"n": 3}))
    out(p, "bad-truncated", st_file(gpt2)[:-5])
    out(p, "bad-short", b"\x02\x00\x00")


def safetensors_index_seeds():
    p = "safetensors_index"
    s1 = st_file([("h.0.attn.c_attn.weight", "F32", [2, 3], f32(*range(6))),
                  ("wte.weight", "F32", [3, 2], f32(*range(6)))])
    s2 = st_file([("ln_f.weight", "BF16", [2], b"\x80\x3f\x00\x40"), ("wpe.weight", "F16", [2], b"\0\x3c\0\x3c")])
    index = {"metadata": {"total_size": 64},
             "weight_map": {"h.0.attn.c_attn.weight": "s1.safetensors", "wte.weight": "s1.safetensors",
                            "ln_f.weight": "s2.safetensors", "wpe.weight": "s2.safetensors"}}
    idx = json.dumps(index, indent=2).encode()
    out(p, "two-shards", idx + SEP + s1 + SEP + s2)
    one = {"weight_map": {"h.0.attn.c_attn.weight": "s1.safetensors", "wte.weight": "s1.safetensors"}}
    out(p, "one-shard", json.dumps(one).encode() + SEP + s1)
    bad = dict(index)
    bad["weight_map"] = dict(index["weight_map"], **{"wpe.weight": "s1.safetensors"})
    out(p, "bad-wrong-shard", json.dumps(bad).encode() + SEP + s1 + SEP + s2)
    out(p, "bad-missing-shard", b'{"weight_map":{"a":"s3.safetensors"}}' + SEP + s1)
    out(p, "bad-path", b'{"weight_map":{"a":"../s1.safetensors"}}' + SEP + s1)
    out(p, "unused-second-shard", json.dumps(one).encode() + SEP + s1 + SEP + s1)
    out(p, "bad-unlisted", b'{"weight_map":{"wte.weight":"s1.safetensors"}}' + SEP + s1)
    dup = {"weight_map": {"wte.weight": "s1.safetensors", "h.0.attn.c_attn.weight": "s2.safetensors"}}
    out(p, "bad-duplicate-across", json.dumps(dup).encode() + SEP + s1 + SEP + s1)
    out(p, "bad-empty-map", b'{"weight_map":{}}')


# --------------------------------------------------------------- config.json
def model_config_seeds():
    p = "model_config"
    gpt2 = {"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
            "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
            "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768, "n_head": 12,
            "n_layer": 12, "n_positions": 1024, "resid_pdrop": 0.1, "summary_activation": None,
            "summary_first_dropout": 0.1, "summary_proj_to_labels": True, "summary_type": "cls_index",
            "summary_use_proj": True, "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
            "vocab_size": 50257}
    out(p, "gpt2", json.dumps(gpt2, indent=2))
    old = {"architectures": ["GPT2LMHeadModel"], "n_ctx": 64, "n_embd": 16, "n_head": 2, "n_layer": 1,
           "vocab_size": 300, "n_inner": None, "scale_attn_weights": True}
    out(p, "gpt2-old-nctx-archs-only", json.dumps(old))
    llama = {"architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
             "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 11008,
             "max_position_embeddings": 4096, "model_type": "llama", "num_attention_heads": 32,
             "num_hidden_layers": 32, "num_key_value_heads": 32, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
             "rope_scaling": None, "tie_word_embeddings": False, "torch_dtype": "float16",
             "transformers_version": "4.31.0.dev0", "use_cache": True, "vocab_size": 32000}
    out(p, "llama2-7b", json.dumps(llama, indent=2))
    gqa = dict(llama, hidden_size=64, num_attention_heads=8, num_key_value_heads=2, intermediate_size=128,
               rope_theta=500000.0, num_hidden_layers=2)
    out(p, "llama-gqa", json.dumps(gqa))
    out(p, "bad-heads", json.dumps(dict(gpt2, n_head=5)))
    out(p, "bad-kv-heads", json.dumps(dict(gqa, num_key_value_heads=3)))
    out(p, "bad-type", json.dumps(dict(gpt2, model_type="bert")))
    out(p, "bad-field-type", json.dumps(dict(llama, rms_norm_eps="small")))
    out(p, "bad-huge", json.dumps(dict(gpt2, n_embd=2 ** 40)))
    out(p, "bad-json", b'{"model_type": "gpt2", "n_layer": 1,')
    out(p, "bad-array", b"[]")


# ------------------------------------------------------------- GPT-2 BPE
def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def gpt2_excerpt(n_merges):
    enc = json.load(open(os.path.join(DATA, "gpt2-tokenizer", "encoder.json"), encoding="utf-8"))
    lines = open(os.path.join(DATA, "gpt2-tokenizer", "vocab.bpe"), encoding="utf-8").read().split("\n")
    merges = [l for l in lines[1:] if l][:n_merges]
    vocab = {t: i for t, i in enc.items() if i < 256 + n_merges}
    return vocab, merges


def story_text(story, n_words):
    words = []
    for line in open(os.path.join(DATA, "narratives", "stimuli", story, "align.csv"), encoding="utf-8"):
        words.append(line.split(",")[0])
        if len(words) == n_words:
            break
    return " ".join(words)


def tokenizer_gpt2_seeds():
    p = "tokenizer_gpt2"
    vocab, merges = gpt2_excerpt(120)
    vj = json.dumps(vocab, ensure_ascii=False, separators=(",", ":")).encode()
    mt = ("#version: 0.2\n" + "\n".join(merges) + "\n").encode()
    text = story_text("pieman", 40).encode()
    out(p, "gpt2-excerpt-pieman", vj + SEP + mt + SEP + text)
    out(p, "gpt2-excerpt-default-text", vj + SEP + mt)
    out(p, "gpt2-excerpt-crlf-noheader", vj + SEP + ("\r\n".join(merges[:40]) + "\r\n\r\n").encode())
    out(p, "gpt2-excerpt-unicode", vj + SEP + mt + SEP + "naïve café “quoted” — 3.14\t\n  x 🙂".encode())
    out(p, "gpt2-excerpt-invalid-utf8", vj + SEP + mt + SEP + b"ab\xff\xfecd \xc3")
    ext = dict(vocab)
    ext["<|endoftext|>"] = len(ext)
    out(p, "gpt2-excerpt-endoftext", json.dumps(ext, ensure_ascii=False).encode() + SEP + mt +
        SEP + b"<|endoftext|> is text here")
    bad = dict(vocab)
    del bad["a"]
    out(p, "bad-missing-byte", json.dumps(bad, ensure_ascii=False).encode() + SEP + mt)
    out(p, "bad-merge-unknown", vj + SEP + b"#version: 0.2\nzz qq\n")
    out(p, "bad-merge-result-unknown", vj + SEP + b"q z\n")
    out(p, "bad-merge-format", vj + SEP + b"a  b\n")
    holes = dict(vocab)
    holes["\u0120the"] = 999
    out(p, "bad-sparse-ids", json.dumps(holes, ensure_ascii=False).encode() + SEP + mt)
    dup = json.dumps(vocab, ensure_ascii=False)[:-1] + ',"zzz":5}'
    out(p, "bad-duplicate-id", dup.encode() + SEP + mt)
    out(p, "bad-not-object", b"[1]" + SEP + mt)


def hf_gpt2_json(vocab, merges, pairs=False):
    return {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [{"id": len(vocab), "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                              "rstrip": False, "normalized": True, "special": True}],
            "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            "post_processor": None, "decoder": {"type": "ByteLevel"},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                      "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "vocab": vocab,
                      "merges": [m.split(" ") for m in merges] if pairs else merges}}


# ------------------------------------------------------- SentencePiece model
def pb_varint(v):
    b = b""
    while True:
        c = v & 0x7F
        v >>= 7
        if v:
            b += bytes([c | 0x80])
        else:
            return b + bytes([c])


def pb_read_varint(buf, i):
    v, s = 0, 0
    while True:
        c = buf[i]
        i += 1
        v |= (c & 0x7F) << s
        s += 7
        if not c & 0x80:
            return v, i


def pb_fields(buf):
    i = 0
    while i < len(buf):
        start = i
        key, i = pb_read_varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, i = pb_read_varint(buf, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == 2:
            n, i = pb_read_varint(buf, i)
            i += n
        else:
            raise ValueError("wire type %d" % wire)
        yield field, wire, buf[start:i]


def pb_len_payload(raw):
    _, i = pb_read_varint(raw, 0)
    _, i = pb_read_varint(raw, i)
    return raw[i:]


def sp_piece(text, score, ptype=None):
    body = b"\x0a" + pb_varint(len(text)) + text + b"\x15" + struct.pack("<f", score)
    if ptype is not None:
        body += b"\x18" + pb_varint(ptype)
    return b"\x0a" + pb_varint(len(body)) + body


def sp_model(pieces, trainer, normalizer):
    return b"".join(sp_piece(*pc) for pc in pieces) + \
        b"\x12" + pb_varint(len(trainer)) + trainer + b"\x1a" + pb_varint(len(normalizer)) + normalizer


def llama_excerpt(n_normal):
    raw = open(os.path.join(DATA, "llama-tokenizer", "tokenizer.model"), "rb").read()
    pieces, rest, normal = [], [], 0
    for field, wire, chunk in pb_fields(raw):
        if field == 1:
            body = pb_len_payload(chunk)
            ptype = 1
            for f2, w2, c2 in pb_fields(body):
                if f2 == 3:
                    ptype = pb_read_varint(c2, 1)[0]
            if ptype == 1:
                if normal == n_normal:
                    continue
                normal += 1
            pieces.append(chunk)
        elif field in (2, 3):
            rest.append(chunk)
    return b"".join(pieces) + b"".join(rest), pieces


def tokenizer_sp_seeds():
    p = "tokenizer_sp"
    model, _ = llama_excerpt(150)
    text = story_text("pieman", 30).encode()
    out(p, "llama-excerpt-pieman", model + SEP + text)
    out(p, "llama-excerpt-default-text", model)
    out(p, "llama-excerpt-odd-text", model + SEP + b"  two  spaces\xff\xfe bad utf8 \xe2\x96\x81 <0x41> <s> \t\n")
    # hand-made: no byte fallback, user-defined piece, identity normaliser flags off
    trainer = b"\x18\x02" + b"\xc0\x02\x00"  # model_type BPE, unk_id 0
    norm = b"\x0a\x08identity" + b"\x18\x01" + b"\x20\x00" + b"\x28\x01"
    pieces = [(b"<unk>", 0.0, 2), (b"<s>", 0.0, 3), (b"</s>", 0.0, 3), (b"<user>", 0.0, 4),
              (b"\xe2\x96\x81", -1.0, None), (b"a", -2.0, None), (b"b", -3.0, None), (b"ab", -0.5, None),
              (b"\xe2\x96\x81a", -0.7, None), (b"\xe2\x96\x81ab", -0.2, None), (b"ba", -4.0, None)]
    out(p, "handmade-user-defined", sp_model(pieces, trainer, norm) + SEP + b"ab ba <user>ab  abc")
    norm2 = b"\x0a\x08identity" + b"\x18\x00" + b"\x20\x01"
    out(p, "handmade-remove-spaces-no-prefix", sp_model(pieces, trainer, norm2) + SEP + b"   ab  ba   ")
    # regression: every length up to the longest USER_DEFINED piece was tried at
    # every position, O(n^3) for this 10 KB input (a minute under ASan)
    long_user = [(b"<unk>", 0.0, 2), (b"a" * 5000, 0.0, 4), (b"b", -1.0, None)]
    out(p, "regress-slow-long-user-piece", sp_model(long_user, trainer, norm2) + SEP + b"b" * 5000)
    out(p, "bad-unigram", sp_model(pieces, b"\x18\x01", norm))
    out(p, "bad-charsmap", sp_model(pieces, trainer, norm + b"\x12\x03abc"))
    out(p, "bad-byte-fallback-missing", sp_model(pieces, trainer + b"\x98\x02\x01", norm))
    out(p, "bad-unk-id", sp_model(pieces, b"\x18\x02\xc0\x02\x05", norm))
    out(p, "bad-duplicate-piece", sp_model(pieces + [(b"ab", 0.0, None)], trainer, norm))
    out(p, "bad-truncated", model[:len(model) // 3])
    out(p, "bad-varint", b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")
    out(p, "bad-wire-type", b"\x0b\x00")


def tokenizer_sp_decode_seeds():
    """A tokenizer.model, then ids as uint16 little-endian v (id v - 4)."""
    p = "tokenizer_sp_decode"
    model, _ = llama_excerpt(150)
    ids = lambda *v: b"".join(struct.pack("<H", i + 4) for i in v)
    byte = lambda b: 3 + b  # <0xXX> in LLaMA's order: <unk> <s> </s> then the bytes
    normal = list(range(259, 259 + 150))
    out(p, "llama-excerpt-text", model + SEP + ids(1, *normal[:40], 2))
    out(p, "llama-excerpt-bytes", model + SEP + ids(byte(0xE2), byte(0x82), byte(0xAC), byte(0xE2), byte(0x41),
                                                   byte(0xFF), normal[3], byte(0xF0), byte(0x9F), 0, byte(0x20)))
    out(p, "llama-excerpt-out-of-range", model + SEP + ids(5, 409) + struct.pack("<H", 0))
    trainer = b"\x18\x02" + b"\xc0\x02\x00"  # model_type BPE, unk_id 0
    norm = b"\x0a\x08identity" + b"\x18\x01" + b"\x20\x00" + b"\x28\x01"
    pieces = [(b"<unk>", 0.0, 2), (b"<s>", 0.0, 3), (b"</s>", 0.0, 3), (b"<user>", 0.0, 4),
              (b"\xe2\x96\x81", -1.0, None), (b"a", -2.0, None), (b"\xe2\x96\x81ab", -0.2, None)]
    out(p, "handmade-user-defined", sp_model(pieces, trainer, norm) + SEP + ids(4, 3, 6, 0, 1, 4, 5))


def tokenizer_json_seeds():
    p = "tokenizer_json"
    vocab, merges = gpt2_excerpt(80)
    out(p, "gpt2-kind", json.dumps(hf_gpt2_json(vocab, merges), ensure_ascii=False).encode() + SEP +
        story_text("lucy", 25).encode())
    out(p, "gpt2-kind-pair-merges", json.dumps(hf_gpt2_json(vocab, merges, pairs=True)).encode())
    # LLaMA kind: vocab from the SentencePiece excerpt, merges = every split of
    # a piece into two pieces (as Hugging Face's converter lists them).
    _, chunks = llama_excerpt(120)
    names = []
    for chunk in chunks:
        body = pb_len_payload(chunk)
        for f2, w2, c2 in pb_fields(body):
            if f2 == 1:
                names.append(pb_len_payload(c2).decode("utf-8"))
    lvocab = {n: i for i, n in enumerate(names)}
    lmerges = []
    for n in names[259:]:
        for k in range(1, len(n)):
            if n[:k] in lvocab and n[k:] in lvocab:
                lmerges.append(n[:k] + " " + n[k:])
    llama = {"version": "1.0", "added_tokens": [{"id": 0, "content": "<unk>", "special": True},
                                                {"id": 1, "content": "<s>", "special": True},
                                                {"id": 2, "content": "</s>", "special": True}],
             "normalizer": {"type": "Sequence", "normalizers": [
                 {"type": "Prepend", "prepend": "\u2581"},
                 {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
             "pre_tokenizer": None,
             "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                       "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True,
                       "vocab": lvocab, "merges": lmerges}}
    out(p, "llama-kind", json.dumps(llama, ensure_ascii=False).encode() + SEP + story_text("pieman", 20).encode())
    meta = dict(llama, normalizer=None,
                pre_tokenizer={"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first",
                               "split": False})
    meta["model"] = dict(llama["model"], merges=[m.split(" ") for m in lmerges], fuse_unk=False)
    out(p, "llama-kind-metaspace", json.dumps(meta).encode() + SEP + "  x\u2581y zz 🙂".encode())
    huge = hf_gpt2_json(vocab, merges)
    huge["added_tokens"][0]["id"] = 2147483646  # regression: loader allocated 32 GB
    out(p, "regress-oom-huge-added-id", json.dumps(huge).encode())
    out(p, "bad-unigram", b'{"model":{"type":"Unigram","vocab":[["a",0.0]]}}')
    out(p, "bad-wordpiece", b'{"model":{"type":"WordPiece","vocab":{"a":0}}}')
    out(p, "bad-neither-kind", b'{"model":{"type":"BPE","vocab":{"a":0},"merges":[]}}')
    out(p, "bad-json", b'{"model":{"type":"BPE"')
    bad = dict(llama)
    bad["model"] = dict(llama["model"], merges=["\u2581 zzz"])
    out(p, "bad-llama-merge", json.dumps(bad).encode())


# ------------------------------------------------------------------ stimuli
def stimuli_seeds():
    p = "stimuli"
    lines = open(os.path.join(DATA, "narratives", "stimuli", "pieman", "align.csv"), encoding="utf-8").read().split("\n")
    out(p, "align-pieman-start", "a" + "\n".join(lines[:40]) + "\n")
    out(p, "align-pieman-unaligned", "a" + "\n".join(lines[410:440]) + "\n")
    out(p, "align-header-crlf-bom", b"a\xef\xbb\xbfword,aligned_word,onset,offset\r\n" +
        "\r\n".join(lines[:10]).encode() + b"\r\n")
    out(p, "align-first-unaligned", "aSo,so,,\nit,it,1.0,1.2\nwas,was,,1.5\nthat,that,1.4,\n")
    out(p, "auto-align-quoted", 'x"word, with comma",x,0.5,0.7\n"say ""hi""",<unk>,0.8,0.9\n')
    out(p, "tsv", "wword\tonset\toffset\tpos\nI\t0.0\t0.2\tPRP\nbegan\t0.2\t0.5\tVBD\n\nmy\t0.5\t0.6\tPRP$\n")
    out(p, "csv-reordered", "cOffset,Word,ONSET\n0.2,I,0.0\n0.5,began,0.2\n")
    tg = ('File type = "ooTextFile"\nObject class = "TextGrid"\n\nxmin = 0\nxmax = 2.5\ntiers? <exists>\n'
          'size = 2\nitem []:\n    item [1]:\n        class = "IntervalTier"\n        name = "phones"\n'
          '        xmin = 0\n        xmax = 2.5\n        intervals: size = 1\n        intervals [1]:\n'
          '            xmin = 0\n            xmax = 2.5\n            text = "AY1"\n'
          '    item [2]:\n        class = "IntervalTier"\n        name = "words"\n        xmin = 0\n'
          '        xmax = 2.5\n        intervals: size = 4\n        intervals [1]:\n            xmin = 0\n'
          '            xmax = 0.3\n            text = ""\n        intervals [2]:\n            xmin = 0.3\n'
          '            xmax = 0.9\n            text = "caf\u00e9"\n        intervals [3]:\n            xmin = 0.9\n'
          '            xmax = 1.4\n            text = "sp"\n        intervals [4]:\n            xmin = 1.4\n'
          '            xmax = 2.5\n            text = "say ""hi"""\n')
    out(p, "textgrid-long", "t" + tg)
    out(p, "auto-textgrid-by-content", "x" + tg)
    out(p, "textgrid-utf16le", b"t\xff\xfe" + tg.encode("utf-16-le"))
    out(p, "textgrid-utf16be", b"t\xfe\xff" + tg.encode("utf-16-be"))
    short = ('File type = "ooTextFile"\nObject class = "TextGrid"\n\n0\n2\n<exists>\n1\n"IntervalTier"\n'
             '"word"\n0\n2\n3\n0\n0.5\n"I"\n0.5\n1\n"{sl}"\n1\n2\n"began" ! comment\n')
    out(p, "textgrid-short", "t" + short)
    out(p, "textgrid-pointtier", "t" + short.replace('"IntervalTier"', '"TextTier"'))
    out(p, "bad-textgrid-binary", b"tooBinaryFile\x08TextGrid\x00\x01")
    # regression: a real binary TextGrid (NULs in its doubles) was refused as
    # "NUL byte ... UTF-16 without a byte-order mark" instead of as binary
    out(p, "regress-binary-textgrid-message", b"tooBinaryFile\x08TextGrid" + struct.pack(">dd", 0.0, 2.5) +
        b"\x01" + struct.pack(">i", 1))
    out(p, "bad-align-columns", "aI,i,0.1\n")
    out(p, "bad-align-nan", "aI,i,nan,0.2\n")
    out(p, "bad-align-backwards", "aI,i,1.0,0.5\n")
    out(p, "bad-open-quote", 'a"I,i,0.1,0.2\n')
    out(p, "bad-nul", b"aI,i,0.1,0.2\n\x00\n")
    out(p, "bad-utf8", b"aI\xc3,i,0.1,0.2\n")
    out(p, "bad-tsv-order", "wword\tonset\toffset\nb\t1.0\t1.2\na\t0.5\t0.7\n")
    out(p, "bad-empty", "a\n  \n")


# ------------------------------------------------------------- study config
def study_config_seeds():
    p = "study_config"
    demo = open(os.path.join(HERE, "..", "..", "configs", "synthetic-demo.ini"), encoding="utf-8").read()
    out(p, "synthetic-demo", demo)
    out(p, "model-source",
        "[study]\nname = pieman gpt2\noutput = out\ncondition = baseline\n\n[model]\npath = /models/gpt2\n"
        "context = 1024\nstride = 256\nbos = auto\n\n[stimuli]\ndir = stimuli\nformat = align-csv\n"
        "stories = pieman, lucy\n\n[fit]\nlayers = 0..12\n\n[bold]\nsubjects = sub-001, sub-002\n"
        "path = bold/{subject}.h5\ntr = 1.5\n\n[atlas]\npath = atlas.h5\n\n[alignment]\naggregate = lanczos\n"
        "tr_offset = -0.5\ndelays = 1,2,3,4,5\n\n[cv]\nfolds = 5\nalphas = 0.1, 1, 10\nstory_folds = yes\n"
        "fold_groups = 2\nvoxel_block = 4096\n")
    out(p, "features-source", "; comment\n[study]\noutput=/tmp/x\n[features]\npath=f.h5\n[fit]\nlayers=3\n"
        "[bold]\nsubjects=s1\npath=bold.h5\n")
    out(p, "regress-synth-300-subjects", "[study]\noutput = o\n[synth]\nsubjects = 300\n[fit]\nlayers = 1\n")
    out(p, "bad-two-sources", "[study]\noutput=o\n[features]\npath=a\n[model]\npath=b\n[fit]\nlayers=1\n")
    out(p, "bad-unknown-key", "[cv]\nfoldz = 5\n")
    out(p, "bad-line", "[study\nname\n")
    out(p, "bad-layers", "[fit]\nlayers = 3..1\n")
    out(p, "bad-alphas", "[cv]\nalphas = logspace:1:0:0\n")
    out(p, "bad-subject-pattern", "[study]\noutput=o\n[features]\npath=f\n[fit]\nlayers=1\n[bold]\n"
        "subjects=a,b\npath=bold.h5\n")


# -------------------------------------------------------------------- annot
def be(*v):
    return struct.pack(">%di" % len(v), *v)


def annot_file(labels, entries, new=True, orig=b"colortable.txt\0"):
    data = be(len(labels))
    for v, lab in enumerate(labels):
        data += be(v, lab)
    data += be(1)
    if new:
        data += be(-2, max(i for i, _, _ in entries) + 1 if entries else 0) + be(len(orig)) + orig + be(len(entries))
        for i, name, rgb in entries:
            data += be(i, len(name) + 1) + name + b"\0" + be(*rgb, 0)
    else:
        data += be(len(entries), len(orig)) + orig
        for i, name, rgb in entries:
            data += be(len(name) + 1) + name + b"\0" + be(*rgb, 0)
    return data


def annot_value(rgb):
    return rgb[0] + rgb[1] * 256 + rgb[2] * 65536


def annot_seeds():
    p = "annot"
    entries = [(0, b"Unknown", (0, 0, 0)), (1, b"G_and_S_frontomargin", (23, 220, 60)),
               (2, b"G_and_S_occipital_inf", (23, 60, 180)), (3, b"Medial_wall", (25, 25, 25)),
               (5, b"S_temporal_transverse", (221, 60, 60))]
    labels = [annot_value(entries[k % 5][2]) for k in range(12)] + [12345, 0]
    out(p, "destrieux-new-ctab", annot_file(labels, entries))
    out(p, "destrieux-old-ctab", annot_file(labels, [(k, n, c) for k, (_, n, c) in enumerate(entries)], new=False))
    out(p, "no-vertices", annot_file([], entries))
    out(p, "same-colour-twice", annot_file([annot_value((1, 2, 3))] * 3,
                                           [(0, b"a", (1, 2, 3)), (1, b"b", (1, 2, 3))]))
    big = annot_file([annot_value((255, 255, 255))], [(0, b"white", (255, 255, 255)), (1, b"huge", (1 << 30, 1 << 30, 1 << 30))])
    out(p, "regress-colour-overflow", big)
    out(p, "bad-truncated", annot_file(labels, entries)[:-7])
    out(p, "bad-vertex-count", be(1 << 30) + be(0, 0))
    out(p, "bad-vertex-number", be(2) + be(0, 1, 5, 1) + be(1, 1, 1) + b"x" + be(2) + b"a\0" + be(0, 0, 1, 0))
    out(p, "bad-ctab-version", be(0) + be(1, -3))
    out(p, "bad-entry-twice", be(0) + be(1, -2, 3, 1) + b"\0" + be(2) + be(1, 2) + b"a\0" + be(1, 2, 3, 0) +
        be(1, 2) + b"b\0" + be(1, 2, 3, 0))
    out(p, "bad-no-ctab", be(1) + be(0, 5))
    out(p, "regress-ctab-count-int32-min", be(0, 1, -2 ** 31))  # -n overflowed (UBSan)


def label_table_seeds():
    p = "label_table"
    out(p, "freesurfer-lut",
        "#$Id: FreeSurferColorLUT.txt\n\n#No. Label Name:                            R   G   B   A\n\n"
        "0   Unknown                                 0   0   0   0\n"
        "11101  ctx_lh_G_and_S_frontomargin         23 220  60   0\n"
        "11102  ctx_lh_G_and_S_occipital_inf        23  60 180   0\n"
        "12101  ctx_rh_G_and_S_frontomargin         23 220  60   0\n")
    out(p, "tab-header", "index\tname\n1\tleft hippocampus\n2\tright hippocampus\n\n3\tamygdala # comment\n")
    out(p, "bad-duplicate", "1 a\n1 b\n")
    out(p, "bad-no-name", "1\n")
    out(p, "bad-range", "99999999999 big\n")
    out(p, "bad-index", "index name\nx y\n")
    out(p, "bad-empty", "# nothing\n")


# ---------------------------------------------------------- instruction data
def sft_jsonl_seeds():
    p = "sft_jsonl"
    rec = lambda **kw: json.dumps(kw, ensure_ascii=False)
    out(p, "three-records", "\n".join([
        rec(instruction="Name the colour of the sky.", input="", output="Blue."),
        rec(instruction="Translate to French.", input="good morning", output="bonjour"),
        rec(output="3", instruction="Add 1 and 2.", extra={"k": [1, 2]})]) + "\n")
    out(p, "crlf-no-final-newline", rec(instruction="a", output="b") + "\r\n" +
        rec(instruction="\u00e9t\u00e9 \u2019", input="x\ny", output="z"))
    out(p, "bad-empty", "")
    out(p, "bad-blank-line", rec(instruction="a", output="b") + "\n\n" + rec(instruction="a", output="b"))
    out(p, "bad-not-json", "{\"instruction\": \"a\", \"output\": \"b\"\n")
    out(p, "bad-not-object", "[\"instruction\", \"output\"]\n")
    out(p, "bad-missing-output", rec(instruction="a", input="b") + "\n")
    out(p, "bad-input-not-string", rec(instruction="a", input=3, output="b") + "\n")
    out(p, "bad-empty-output", rec(instruction="a", output="") + "\n")
    out(p, "bad-duplicate-key", "{\"instruction\": \"a\", \"output\": \"b\", \"output\": \"c\"}\n")


# --------------------------------------------------------------- adapters
def lora_config(**kw):
    c = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 2, "lora_alpha": 16,
         "lora_dropout": 0.05, "target_modules": ["c_attn"], "fan_in_fan_out": True,
         "bias": "none", "base_model_name_or_path": "gpt2", "inference_mode": True,
         "use_rslora": False, "layers_to_transform": None, "rank_pattern": {}}
    c.update(kw)
    return json.dumps(c)


def adapter_config_seeds():
    p = "adapter_config"
    out(p, "gpt2-c-attn", lora_config())
    out(p, "llama-all", lora_config(target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                    "gate_proj", "up_proj", "down_proj"],
                                    fan_in_fan_out=False, lora_alpha=8.5, r=64))
    out(p, "minimal", '{"peft_type": "LORA", "r": 1, "lora_alpha": 1, "target_modules": ["c_fc"]}')
    out(p, "bad-r0", lora_config(r=0))
    out(p, "bad-peft-type", lora_config(peft_type="IA3"))
    out(p, "bad-bias", lora_config(bias="all"))
    out(p, "bad-unknown-target", lora_config(target_modules=["c_attn", "wte"]))
    out(p, "bad-regex-target", lora_config(target_modules=".*attn"))
    out(p, "bad-dora", lora_config(use_dora=True))
    out(p, "bad-json", '{"peft_type": "LORA", "r": ')


def lora_tensors(stem, layers, sites, r):
    """(name, dtype, shape, bytes) of A and B for each layer and (path, in, out)."""
    t = []
    for l in range(layers):
        for path, fin, fout in sites:
            base = "base_model.model.%s.%d.%s" % (stem, l, path)
            t.append((base + ".lora_A.weight", "F32", [r, fin], f32(*[0.25] * (r * fin))))
            t.append((base + ".lora_B.weight", "F32", [fout, r], f32(*[-0.5] * (fout * r))))
    return t


def adapter_seeds():
    # the fuzz target's models: GPT-2 2 layers width 8 (d_ff 32); LLaMA 2
    # layers width 16, 4 heads, 2 key/value heads (k/v 8), d_ff 40
    p = "adapter"
    gpt2 = lora_tensors("h", 2, [("attn.c_attn", 8, 24)], 2)
    out(p, "gpt2-short-prefix", lora_config().encode() + SEP + st_file(gpt2, {"format": "pt"}))
    gpt2t = lora_tensors("transformer.h", 2, [("attn.c_attn", 8, 24), ("attn.c_proj", 8, 8),
                                              ("mlp.c_proj", 32, 8)], 1)
    out(p, "gpt2-transformer-prefix", lora_config(r=1, target_modules=["c_attn", "c_proj"]).encode()
        + SEP + st_file(gpt2t, {"format": "pt"}, pad=False))
    llama = lora_tensors("model.layers", 2, [("self_attn.q_proj", 16, 16), ("self_attn.v_proj", 16, 8)], 2)
    out(p, "llama-q-v", lora_config(target_modules=["q_proj", "v_proj"], fan_in_fan_out=False).encode()
        + SEP + st_file(llama))
    out(p, "bad-missing-b", lora_config().encode() + SEP + st_file(gpt2[:-1]))
    wide = lora_tensors("h", 2, [("attn.c_attn", 16, 48)], 2)
    out(p, "bad-other-shape", lora_config().encode() + SEP + st_file(wide))
    kv = lora_tensors("model.layers", 2, [("self_attn.k_proj", 16, 16)], 2)
    out(p, "bad-kv-not-gqa", lora_config(target_modules=["k_proj"]).encode() + SEP + st_file(kv))
    out(p, "bad-truncated", lora_config().encode() + SEP + st_file(gpt2)[:-6])
    out(p, "bad-no-weights", lora_config())


# --------------------------------------------------------------- Alpaca imports
def alpaca_seeds():
    p = "alpaca"
    recs = [{"instruction": "Give three tips for staying healthy.", "input": "",
             "output": "1. Eat well.\n2. Sleep.\n3. Move."},
            {"instruction": "Translate to French.", "input": "good morning", "output": "bonjour"},
            {"instruction": "Brackets [in] {strings}, \"quotes\"", "output": "ok", "id": [1, {"k": "]"}]}]
    out(p, "array-indent", "\ufeff" + json.dumps(recs, indent=2, ensure_ascii=False) + "\n")
    out(p, "array-compact", json.dumps(recs, separators=(",", ":")))
    out(p, "array-one-line-each", "[\n" + ",\n".join(json.dumps(r) for r in recs) + "\n]")
    out(p, "jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in recs) + "\n")
    out(p, "bad-empty-array", "[ ]")
    out(p, "bad-not-json", "[\n {\"instruction\": \"a\", \"output\": \"b\"},\n {oops}\n]")
    out(p, "bad-unterminated", "[\n {\"instruction\": \"a\", \"output\": \"b\"}\n")
    out(p, "bad-element-not-object", "[{\"instruction\": \"a\", \"output\": \"b\"}, 7]")
    out(p, "bad-empty-output", "[\n\n {\"instruction\": \"a\", \"output\": \"\"}]")
    out(p, "bad-object-not-array", json.dumps(recs[0], indent=1))
    out(p, "bad-blank", " \n\t")


if __name__ == "__main__":
    safetensors_seeds()
    safetensors_index_seeds()
    model_config_seeds()
    tokenizer_gpt2_seeds()
    tokenizer_json_seeds()
    tokenizer_sp_seeds()
    tokenizer_sp_decode_seeds()
    stimuli_seeds()
    study_config_seeds()
    annot_seeds()
    label_table_seeds()
    sft_jsonl_seeds()
    adapter_config_seeds()
    adapter_seeds()
    alpaca_seeds()
