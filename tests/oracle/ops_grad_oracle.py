#!/usr/bin/python3
"""Gradient oracle for brainalign's op backward passes (lm/ops.h).

For each op this script draws random inputs with numpy, writes them as raw
little-endian files, runs the C forward and backward (tests/oracle/
ops_grad_dump.c, the fast versions), and recomputes the outputs and every
gradient with torch autograd in float64 on its own torch implementation of
the op (torch.nn.functional where torch has the op, the Hugging Face
formulas otherwise; nothing of brainalign's code). Each output must agree
within --tol in the norm-relative error ||c - t|| / ||t|| (the C side runs
in float32, so elementwise relative errors would be dominated by entries
near zero).

Cases: GPT-2 embedding with learned positions and repeated tokens, layer
norm, RMSNorm, linear in both layouts (GPT-2 Conv1D [in,out] and nn.Linear
[out,in]), dx through BF16 and F16 weights, GELU (tanh), SiLU, SwiGLU,
rotary embedding, causal attention (multi-head, GQA with 4 query heads on 2
key/value heads, and a single key/value head; windows longer than one
64-row block), and the chunked cross-entropy with masked (-100) labels over
a vocabulary split into chunks that do not divide it.
"""
import argparse
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
RNG = np.random.default_rng(20261204)
FAILURES = []


def rand(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def t(a, grad=True):
    x = torch.from_numpy(np.asarray(a, dtype=np.float64).copy())
    return x.requires_grad_(grad)


class Case:
    def __init__(self, args, name):
        self.args, self.name = args, name
        self.dir = os.path.join(args.workdir, name)
        os.makedirs(self.dir, exist_ok=True)

    def put(self, fname, arr):
        arr.tofile(os.path.join(self.dir, fname))

    def run(self, op, *sizes):
        cmd = [self.args.dump, op, self.dir] + [str(s) for s in sizes]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"FAILED: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")

    def get(self, name, shape):
        a = np.fromfile(os.path.join(self.dir, name + ".out.f32"), dtype=np.float32)
        if a.size != int(np.prod(shape)):
            sys.exit(f"{self.name}: {name} has {a.size} values, expected {shape}")
        return a.reshape(shape)

    def compare(self, name, c, ref):
        ref = ref.detach().numpy() if torch.is_tensor(ref) else np.asarray(ref)
        c = np.asarray(c, dtype=np.float64).reshape(ref.shape)
        denom = np.linalg.norm(ref)
        err = np.linalg.norm(c - ref) / denom if denom > 0 else np.linalg.norm(c)
        ok = bool(err <= self.args.tol)
        print(f"{'ok  ' if ok else 'FAIL'} {self.name:28s} {name:8s} rel err {err:.3g}")
        if not ok:
            FAILURES.append(f"{self.name}.{name}: {err:.3g}")


def case_embedding(args):
    c = Case(args, "embedding_gpt2")
    n, d, vocab, n_pos, first = 9, 16, 40, 20, 3
    tokens = np.array([5, 0, 39, 5, 12, 5, 0, 7, 21], dtype=np.int32)
    wte, wpe, dout = rand(vocab, d), rand(n_pos, d), rand(n, d)
    c.put("tokens.i32", tokens), c.put("wte.f32", wte), c.put("wpe.f32", wpe)
    c.put("dout.f32", dout)
    c.run("embedding", n, d, vocab, n_pos, first)
    Wte, Wpe = t(wte), t(wpe)
    emb = F.embedding(torch.from_numpy(tokens.astype(np.int64)), Wte)
    emb.retain_grad()
    y = emb + Wpe[first:first + n]
    y.backward(t(dout, False))
    c.compare("y", c.get("y", (n, d)), y)
    c.compare("dwte", c.get("dwte", (vocab, d)), Wte.grad)
    c.compare("dwpe", c.get("dwpe", (n_pos, d)), Wpe.grad)
    c.compare("dinput", c.get("dinput", (n, d)), emb.grad)


def case_layernorm(args):
    c = Case(args, "layernorm")
    n, d, eps = 7, 48, 1e-5
    x, g, b, dy = rand(n, d, scale=2.0) + 0.5, 1 + rand(d, scale=0.3), rand(d), rand(n, d)
    c.put("x.f32", x), c.put("gamma.f32", g), c.put("beta.f32", b), c.put("dy.f32", dy)
    c.run("layernorm", n, d, eps)
    X, G, B = t(x), t(g), t(b)
    y = F.layer_norm(X, (d,), G, B, eps)
    y.backward(t(dy, False))
    c.compare("y", c.get("y", (n, d)), y)
    c.compare("dx", c.get("dx", (n, d)), X.grad)
    c.compare("dgamma", c.get("dgamma", (d,)), G.grad)
    c.compare("dbeta", c.get("dbeta", (d,)), B.grad)


def case_rmsnorm(args):
    c = Case(args, "rmsnorm")
    n, d, eps = 7, 48, 1e-6
    x, w, dy = rand(n, d), 1 + rand(d, scale=0.3), rand(n, d)
    c.put("x.f32", x), c.put("w.f32", w), c.put("dy.f32", dy)
    c.run("rmsnorm", n, d, eps)
    X, W = t(x), t(w)
    # LlamaRMSNorm: hidden * rsqrt(mean(hidden^2) + eps), times the weight
    y = W * (X * torch.rsqrt(X.pow(2).mean(-1, keepdim=True) + eps))
    y.backward(t(dy, False))
    c.compare("y", c.get("y", (n, d)), y)
    c.compare("dx", c.get("dx", (n, d)), X.grad)
    c.compare("dw", c.get("dw", (d,)), W.grad)


def case_linear(args, layout):
    c = Case(args, f"linear_{'out_in' if layout else 'in_out'}")
    n, i, o = 11, 24, 40
    x, b, dy = rand(n, i), rand(o), rand(n, o)
    w = rand(o, i, scale=0.5) if layout else rand(i, o, scale=0.5)
    c.put("x.f32", x), c.put("w.f32", w), c.put("b.f32", b), c.put("dy.f32", dy)
    c.run("linear", n, i, o, layout)
    X, W, B = t(x), t(w), t(b)
    y = F.linear(X, W, B) if layout else torch.addmm(B, X, W)  # nn.Linear / Conv1D
    y.backward(t(dy, False))
    c.compare("y", c.get("y", (n, o)), y)
    c.compare("dx", c.get("dx", (n, i)), X.grad)
    c.compare("dw", c.get("dw", w.shape), W.grad)
    c.compare("db", c.get("db", (o,)), B.grad)


def case_linear_half(args, layout, dtype):
    c = Case(args, f"linear_{dtype}_{'out_in' if layout else 'in_out'}")
    n, i, o = 6, 96, 80  # both above the 64-row widening block
    wf = rand(o, i, scale=0.5) if layout else rand(i, o, scale=0.5)
    if dtype == "bf16":
        # round to nearest even on the bit pattern; widen by shifting back
        u = wf.view(np.uint32).astype(np.uint64)
        bits = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
        wide = (bits.astype(np.uint32) << 16).view(np.float32)
    else:
        bits = wf.astype(np.float16).view(np.uint16)
        wide = bits.view(np.float16).astype(np.float32)
    x, dy = rand(n, i), rand(n, o)
    c.put("w.u16", bits), c.put("dy.f32", dy)
    c.run("linear_half", n, i, o, layout, dtype)
    X, W = t(x), t(wide, False)
    y = X @ W.T if layout else X @ W
    y.backward(t(dy, False))
    c.compare("dx", c.get("dx", (n, i)), X.grad)


def case_activation(args, op):
    c = Case(args, op)
    n = 500
    x, up, dy = rand(n, scale=3.0), rand(n), rand(n)
    c.put("gate.f32" if op == "swiglu" else "x.f32", x), c.put("dy.f32", dy)
    if op == "swiglu":
        c.put("up.f32", up)
    c.run(op, n)
    X, U = t(x), t(up)
    if op == "gelu":
        y = F.gelu(X, approximate="tanh")
    elif op == "silu":
        y = F.silu(X)
    else:
        y = F.silu(X) * U
    y.backward(t(dy, False))
    c.compare("y", c.get("y", (n,)), y)
    c.compare("dgate" if op == "swiglu" else "dx", c.get("dgate" if op == "swiglu" else "dx", (n,)),
              X.grad)
    if op == "swiglu":
        c.compare("dup", c.get("dup", (n,)), U.grad)


def case_rope(args):
    c = Case(args, "rope")
    n, heads, dh, first, theta = 12, 4, 16, 5, 10000.0
    x, dy = rand(n, heads * dh), rand(n, heads * dh)
    c.put("x.f32", x), c.put("dy.f32", dy)
    c.run("rope", n, heads, dh, first, theta)
    X = t(x)
    inv_freq = 1.0 / (theta ** (torch.arange(0, dh, 2, dtype=torch.float64) / dh))
    freqs = torch.outer(torch.arange(first, first + n, dtype=torch.float64), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)[:, None, :]  # [n, 1, dh]
    q = X.view(n, heads, dh)
    rot = torch.cat((-q[..., dh // 2:], q[..., :dh // 2]), dim=-1)
    y = (q * emb.cos() + rot * emb.sin()).reshape(n, heads * dh)
    y.backward(t(dy, False))
    c.compare("y", c.get("y", (n, heads * dh)), y)
    c.compare("dx", c.get("dx", (n, heads * dh)), X.grad)


def case_attention(args, n, nh, nkv, dh):
    c = Case(args, f"attention_n{n}_h{nh}_kv{nkv}")
    q, k, v = rand(n, nh * dh), rand(n, nkv * dh), rand(n, nkv * dh)
    dout = rand(n, nh * dh)
    c.put("q.f32", q), c.put("k.f32", k), c.put("v.f32", v), c.put("dout.f32", dout)
    c.run("attention", n, nh, nkv, dh)
    Q, K, V = t(q), t(k), t(v)
    qh = Q.view(n, nh, dh).transpose(0, 1)  # [nh, n, dh]
    kh = K.view(n, nkv, dh).transpose(0, 1).repeat_interleave(nh // nkv, dim=0)
    vh = V.view(n, nkv, dh).transpose(0, 1).repeat_interleave(nh // nkv, dim=0)
    scores = qh @ kh.transpose(1, 2) / math.sqrt(dh)
    mask = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
    scores = scores.masked_fill(mask, float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)  # [nh, n]
    y = (torch.softmax(scores, dim=-1) @ vh).transpose(0, 1).reshape(n, nh * dh)
    y.backward(t(dout, False))
    c.compare("y", c.get("y", (n, nh * dh)), y)
    c.compare("lse", c.get("lse", (nh, n)), lse)
    c.compare("dq", c.get("dq", (n, nh * dh)), Q.grad)
    c.compare("dk", c.get("dk", (n, nkv * dh)), K.grad)
    c.compare("dv", c.get("dv", (n, nkv * dh)), V.grad)


def case_xent(args, n, d, vocab, rc, vc, masked):
    c = Case(args, f"xent_v{vocab}_chunks{rc}x{vc}")
    h, w = rand(n, d), rand(vocab, d, scale=0.5)
    targets = RNG.integers(0, vocab, n).astype(np.int32)
    targets[list(masked)] = -100
    c.put("h.f32", h), c.put("w.f32", w), c.put("targets.i32", targets)
    c.run("xent", n, d, vocab, rc, vc)
    H, W = t(h), t(w)
    tg = torch.from_numpy(targets.astype(np.int64))
    logits = H @ W.T
    loss = F.cross_entropy(logits, tg, ignore_index=-100, reduction="mean")
    loss.backward()
    loss_sum = F.cross_entropy(logits.detach(), tg, ignore_index=-100, reduction="sum")
    lc = c.get("loss", (2,))
    if int(lc[1]) != int((targets != -100).sum()):
        FAILURES.append(f"{c.name}.count: {lc[1]} unmasked, expected {(targets != -100).sum()}")
    c.compare("loss", lc[:1], loss_sum.reshape(1))
    c.compare("dh", c.get("dh", (n, d)), H.grad)
    c.compare("dw", c.get("dw", (vocab, d)), W.grad)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dump", required=True, help="the ops_grad_dump executable")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)

    case_embedding(args)
    case_layernorm(args)
    case_rmsnorm(args)
    for layout in (0, 1):
        case_linear(args, layout)
    for layout in (0, 1):
        case_linear_half(args, layout, "bf16")
    case_linear_half(args, 1, "f16")
    for op in ("gelu", "silu", "swiglu"):
        case_activation(args, op)
    case_rope(args)
    case_attention(args, 20, 3, 3, 8)
    case_attention(args, 80, 4, 2, 16)  # GQA, two 64-row blocks
    case_attention(args, 70, 4, 1, 8)
    case_xent(args, 13, 32, 1000, 4, 128, masked=(0, 5, 6, 12))
    case_xent(args, 9, 16, 257, 9, 64, masked=(3,))

    if FAILURES:
        sys.exit("FAILED: " + "; ".join(FAILURES))
    print("all op gradients agree with torch autograd")


if __name__ == "__main__":
    main()
