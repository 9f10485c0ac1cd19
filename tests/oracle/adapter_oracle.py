#!/usr/bin/python3
"""adapter_oracle.py - PEFT LoRA adapters written by hand (numpy + the
safetensors format written byte by byte here, no safetensors package; the
adapter_config.json PEFT writes) read by the C (tests/oracle/adapter_dump:
ba_adapter_load checked against a model config, then ba_adapter_save), and
the file the C writes parsed back here independently.

  adapter_oracle.py DUMP_EXE WORKDIR

Good cases: GPT-2 with both tensor-name prefixes PEFT writes
(base_model.model.h.N... and base_model.model.transformer.h.N...), LLaMA
with grouped key/value heads and all seven projections; headers with and
without the 8-byte padding, tensors in any order in the data area. The C
must read every value bitwise and write a valid file (8-byte aligned
header, tiled data area, PEFT names with GPT-2's "transformer." prefix,
F32, [r, in] / [out, r]) and an adapter_config.json with the same fields.
Bad cases (an adapter for another model shape, r = 0, an unknown target
module, a truncated file, a non-LoRA peft type) must fail with the named
message and write nothing."""
import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np

GPT2 = {"model_type": "gpt2", "n_layer": 2, "n_head": 2, "n_embd": 8, "n_positions": 16,
        "vocab_size": 50}
LLAMA = {"model_type": "llama", "hidden_size": 16, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 40,
         "rms_norm_eps": 1e-6, "max_position_embeddings": 32, "vocab_size": 50}


def module_shapes(model):
    """(module path inside the block, target name, in, out) for every LoRA site."""
    if model["model_type"] == "gpt2":
        d = model["n_embd"]
        f = model.get("n_inner") or 4 * d
        return [("attn.c_attn", "c_attn", d, 3 * d), ("attn.c_proj", "c_proj", d, d),
                ("mlp.c_fc", "c_fc", d, f), ("mlp.c_proj", "c_proj", f, d)]
    d, f = model["hidden_size"], model["intermediate_size"]
    h = d // model["num_attention_heads"]
    kv = model.get("num_key_value_heads", model["num_attention_heads"]) * h
    return [("self_attn.q_proj", "q_proj", d, model["num_attention_heads"] * h),
            ("self_attn.k_proj", "k_proj", d, kv), ("self_attn.v_proj", "v_proj", d, kv),
            ("self_attn.o_proj", "o_proj", model["num_attention_heads"] * h, d),
            ("mlp.gate_proj", "gate_proj", d, f), ("mlp.up_proj", "up_proj", d, f),
            ("mlp.down_proj", "down_proj", f, d)]


def n_layers(model):
    return model.get("n_layer") or model["num_hidden_layers"]


def make_tensors(model, targets, r, stem, rng, shape_model=None):
    """{name: float32 array} of an adapter; shapes from shape_model (default model)."""
    out = {}
    for layer in range(n_layers(model)):
        for path, target, fin, fout in module_shapes(shape_model or model):
            if target not in targets:
                continue
            base = f"base_model.model.{stem}.{layer}.{path}"
            out[base + ".lora_A.weight"] = rng.standard_normal((r, fin)).astype(np.float32)
            out[base + ".lora_B.weight"] = rng.standard_normal((fout, r)).astype(np.float32)
    return out


def write_safetensors(path, tensors, pad=True, order=None):
    names = order or sorted(tensors)
    header, offset, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for name in names:
        a = np.ascontiguousarray(tensors[name], dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        blobs.append(a.tobytes())
    text = json.dumps(header).encode()
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """The tensors of a file, checking what the format promises."""
    raw = open(path, "rb").read()
    (n,) = struct.unpack_from("<Q", raw, 0)
    assert n % 8 == 0, f"{path}: header length {n} is not a multiple of 8"
    header = json.loads(raw[8:8 + n].decode())
    data = raw[8 + n:]
    spans, out = [], {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", f"{name}: {e['dtype']}"
        b, end = e["data_offsets"]
        spans.append((b, end))
        a = np.frombuffer(data[b:end], "<f4")
        out[name] = a.reshape(e["shape"])
    spans.sort()
    pos = 0
    for b, end in spans:
        assert b == pos, f"{path}: hole or overlap at {b}"
        pos = end
    assert pos == len(data), f"{path}: {len(data) - pos} trailing bytes"
    return out, header.get("__metadata__", {})


def peft_config(r, alpha, targets, fan_in_fan_out, **extra):
    c = {"alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": "tiny/model",
         "bias": "none", "fan_in_fan_out": fan_in_fan_out, "inference_mode": True,
         "init_lora_weights": True, "layers_pattern": None, "layers_to_transform": None,
         "lora_alpha": alpha, "lora_dropout": 0.1, "modules_to_save": None, "peft_type": "LORA",
         "r": r, "rank_pattern": {}, "revision": None, "target_modules": targets,
         "task_type": "CAUSAL_LM", "use_rslora": False, "some_future_key": [1, 2, 3]}
    c.update(extra)
    return c


def setup(workdir, name, model, config, tensors, pad=True, order=None):
    base = os.path.join(workdir, name)
    shutil.rmtree(base, ignore_errors=True)
    for sub in ("model", "adapter"):
        os.makedirs(os.path.join(base, sub))
    json.dump(model, open(os.path.join(base, "model", "config.json"), "w"))
    json.dump(config, open(os.path.join(base, "adapter", "adapter_config.json"), "w"))
    write_safetensors(os.path.join(base, "adapter", "adapter_model.safetensors"), tensors, pad,
                      order)
    return base


def run(dump, base):
    return subprocess.run([dump, os.path.join(base, "model"), os.path.join(base, "adapter"),
                           os.path.join(base, "out")], capture_output=True, text=True)


def good_case(dump, workdir, name, model, targets, r, alpha, stem, pad, shuffle, seed):
    rng = np.random.default_rng(seed)
    tensors = make_tensors(model, targets, r, stem, rng)
    order = sorted(tensors)
    if shuffle:
        order = [order[i] for i in rng.permutation(len(order))]
    fifo = model["model_type"] == "gpt2"
    base = setup(workdir, name, model, peft_config(r, alpha, targets, fifo), tensors, pad, order)
    p = run(dump, base)
    if p.returncode != 0:
        print(f"{name}: the C refused a valid adapter: {p.stderr.strip()}")
        return False
    fields = p.stdout.split()
    ok = True
    if int(fields[0]) != r or float(fields[1]) != alpha or float(fields[2]) != alpha / r or \
            int(fields[3]) * 2 != len(tensors) or int(fields[4]) != int(fifo):
        print(f"{name}: C read r/alpha/scale/modules/fan_in_fan_out {fields}")
        ok = False
    back, meta = read_safetensors(os.path.join(base, "out", "adapter_model.safetensors"))
    want = {n.replace("base_model.model.h.", "base_model.model.transformer.h."): a
            for n, a in tensors.items()}
    if set(back) != set(want):
        print(f"{name}: C wrote tensors {sorted(set(back) ^ set(want))[:4]} differently")
        return False
    for n, a in want.items():
        if back[n].shape != a.shape or not np.array_equal(back[n].view(np.uint32),
                                                           a.view(np.uint32)):
            print(f"{name}: {n} differs after the C read and wrote it")
            ok = False
    if meta.get("format") != "pt":
        print(f"{name}: metadata {meta}")
        ok = False
    cfg = json.load(open(os.path.join(base, "out", "adapter_config.json")))
    expect = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": alpha,
              "lora_dropout": 0.1, "target_modules": targets, "fan_in_fan_out": fifo,
              "bias": "none", "base_model_name_or_path": "tiny/model"}
    for k, v in expect.items():
        if cfg.get(k) != v or type(cfg.get(k)) is not type(v):
            print(f"{name}: adapter_config.json {k} = {cfg.get(k)!r}, expected {v!r}")
            ok = False
    print(f"{name}: {'OK' if ok else 'FAILED'} ({len(tensors)} tensors)")
    return ok


def bad_case(dump, workdir, name, model, config, tensors, phrase, truncate=0):
    base = setup(workdir, name, model, config, tensors)
    if truncate:
        path = os.path.join(base, "adapter", "adapter_model.safetensors")
        raw = open(path, "rb").read()
        open(path, "wb").write(raw[:len(raw) - truncate])
    p = run(dump, base)
    ok = p.returncode == 1 and phrase in p.stderr and not os.path.exists(
        os.path.join(base, "out"))
    print(f"{name}: {'OK' if ok else 'FAILED'}: exit {p.returncode}: {p.stderr.strip()}")
    return ok


def main():
    dump, workdir = sys.argv[1], sys.argv[2]
    os.makedirs(workdir, exist_ok=True)
    ok = True
    ok &= good_case(dump, workdir, "gpt2_short_prefix", GPT2, ["c_attn", "c_proj", "c_fc"], 4,
                    16, "h", pad=False, shuffle=True, seed=1)
    ok &= good_case(dump, workdir, "gpt2_transformer_prefix", GPT2, ["c_attn"], 8, 32,
                    "transformer.h", pad=True, shuffle=False, seed=2)
    ok &= good_case(dump, workdir, "llama_gqa_all", LLAMA,
                    ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                    3, 6.5, "model.layers", pad=True, shuffle=True, seed=3)
    ok &= good_case(dump, workdir, "llama_qv", LLAMA, ["q_proj", "v_proj"], 2, 16,
                    "model.layers", pad=False, shuffle=False, seed=4)

    rng = np.random.default_rng(5)
    mha = dict(LLAMA, num_key_value_heads=4)  # k/v of 16 features, the model has 8
    ok &= bad_case(dump, workdir, "bad_other_shape_kv", LLAMA,
                   peft_config(2, 16, ["k_proj"], False),
                   make_tensors(LLAMA, ["k_proj"], 2, "model.layers", rng, shape_model=mha),
                   "self_attn.k_proj.lora_B.weight' has shape [16, 2]")
    wide = dict(GPT2, n_embd=16)
    ok &= bad_case(dump, workdir, "bad_other_shape_width", GPT2,
                   peft_config(2, 16, ["c_attn"], True),
                   make_tensors(GPT2, ["c_attn"], 2, "h", rng, shape_model=wide),
                   "an adapter for another model shape")
    deep = dict(GPT2, n_layer=3)
    ok &= bad_case(dump, workdir, "bad_other_depth", GPT2, peft_config(2, 16, ["c_attn"], True),
                   make_tensors(deep, ["c_attn"], 2, "h", rng),
                   "is for layer 2, but the model has 2 layers")
    ok &= bad_case(dump, workdir, "bad_r0", GPT2, peft_config(0, 16, ["c_attn"], True),
                   make_tensors(GPT2, ["c_attn"], 2, "h", rng), "r = 0")
    ok &= bad_case(dump, workdir, "bad_unknown_target", GPT2,
                   peft_config(2, 16, ["c_attn", "lm_head"], True),
                   make_tensors(GPT2, ["c_attn"], 2, "h", rng), "unknown target module 'lm_head'")
    ok &= bad_case(dump, workdir, "bad_llama_target_on_gpt2", GPT2,
                   peft_config(2, 16, ["q_proj"], True),
                   make_tensors(GPT2, ["c_attn"], 2, "h", rng), "not a module of a gpt2 model")
    ok &= bad_case(dump, workdir, "bad_truncated", GPT2, peft_config(2, 16, ["c_attn"], True),
                   make_tensors(GPT2, ["c_attn"], 2, "h", rng), "adapter_model.safetensors",
                   truncate=3)
    ok &= bad_case(dump, workdir, "bad_peft_type", GPT2,
                   peft_config(2, 16, ["c_attn"], True, peft_type="IA3"),
                   make_tensors(GPT2, ["c_attn"], 2, "h", rng), "LORA only")
    print("adapter oracle:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
