#!/usr/bin/python3
"""adamw_oracle.py - the C AdamW, global-norm clipping and learning-rate
schedules (src/train/adamw.c, driven by tests/oracle/adamw_dump) against
torch.optim.AdamW + torch.nn.utils.clip_grad_norm_ + LambdaLR running the
Hugging Face schedule formulas (get_constant/linear/cosine_schedule_with_warmup,
re-written here from their definitions: transformers is not installed).

  adamw_oracle.py DUMP_EXE WORKDIR

Every case runs 20 optimizer steps on the same float32 parameters and the
same gradient sequence (some steps large enough for clipping to act) and
compares the learning rate, the norm before clipping, the parameters and
both moments after every step at 1e-6 relative (max |C - torch| over max
|torch| of each array). Exit 0 when all agree."""
import math
import os
import struct
import subprocess
import sys

import numpy as np
import torch

STEPS = 20
SCHEDULES = {"constant": 0, "linear": 1, "cosine": 2}


def hf_lambda(kind, warmup, total):
    def constant(step):
        if step < warmup:
            return float(step) / float(max(1.0, warmup))
        return 1.0

    def linear(step):
        if step < warmup:
            return float(step) / float(max(1, warmup))
        return max(0.0, float(total - step) / float(max(1, total - warmup)))

    def cosine(step, num_cycles=0.5):
        if step < warmup:
            return float(step) / float(max(1, warmup))
        progress = float(step - warmup) / float(max(1, total - warmup))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)))

    return {"constant": constant, "linear": linear, "cosine": cosine}[kind]


def run_case(dump, workdir, name, kind, lr, betas, eps, wd, max_norm, warmup_steps,
             warmup_ratio, total, seed):
    rng = np.random.default_rng(seed)
    sizes = [7, 33, 128, 1]
    params0 = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    grads = []
    for s in range(STEPS):
        scale = 5.0 if s % 3 == 0 else 0.05  # clipping acts on some steps only
        grads.append([(scale * rng.standard_normal(n)).astype(np.float32) for n in sizes])

    # ---- torch
    tparams = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in params0]
    opt = torch.optim.AdamW(tparams, lr=lr, betas=betas, eps=eps, weight_decay=wd,
                            foreach=False)
    warmup = warmup_steps if warmup_steps >= 0 else (
        math.ceil(total * warmup_ratio) if warmup_ratio >= 0 else 0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, hf_lambda(kind, warmup, total))
    expect = []
    for s in range(STEPS):
        for p, g in zip(tparams, grads[s]):
            p.grad = torch.from_numpy(g.copy())
        used_lr = opt.param_groups[0]["lr"]
        if max_norm > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(tparams, max_norm))
        else:
            norm = float(torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(p.grad.double()) for p in tparams])))
        opt.step()
        sched.step()
        st = [opt.state[p] for p in tparams]
        expect.append((used_lr, norm,
                       np.concatenate([p.detach().numpy() for p in tparams]),
                       np.concatenate([x["exp_avg"].numpy() for x in st]),
                       np.concatenate([x["exp_avg_sq"].numpy() for x in st])))

    # ---- C
    inp = os.path.join(workdir, name + ".in.bin")
    out = os.path.join(workdir, name + ".out.bin")
    with open(inp, "wb") as f:
        f.write(struct.pack("<5q", len(sizes), STEPS, SCHEDULES[kind], warmup_steps, total))
        f.write(struct.pack("<7d", lr, betas[0], betas[1], eps, wd, max_norm, warmup_ratio))
        f.write(struct.pack("<%dq" % len(sizes), *sizes))
        f.write(np.concatenate(params0).tobytes())
        for s in range(STEPS):
            f.write(np.concatenate(grads[s]).tobytes())
    subprocess.run([dump, inp, out], check=True)
    raw = open(out, "rb").read()
    total_n = sum(sizes)
    rec = 16 + 3 * 4 * total_n
    if len(raw) != rec * STEPS:
        print(f"{name}: C output has {len(raw)} bytes, expected {rec * STEPS}")
        return False

    ok = True
    worst = 0.0
    for s in range(STEPS):
        base = s * rec
        c_lr, c_norm = struct.unpack_from("<2d", raw, base)
        arrs = [np.frombuffer(raw, np.float32, total_n, base + 16 + k * 4 * total_n)
                for k in range(3)]
        t_lr, t_norm, tp, tm, tv = expect[s]
        checks = [("lr", np.array([c_lr]), np.array([t_lr])),
                  ("grad_norm", np.array([c_norm]), np.array([t_norm])),
                  ("params", arrs[0], tp), ("exp_avg", arrs[1], tm), ("exp_avg_sq", arrs[2], tv)]
        for what, c, t in checks:
            c = c.astype(np.float64)
            t = t.astype(np.float64)
            # relative to the array's scale (max |torch|): an element-wise
            # ratio is meaningless where a moment or a weight crosses zero
            rel = float(np.max(np.abs(c - t)) / max(float(np.max(np.abs(t))), 1e-30))
            worst = max(worst, rel)
            if not rel <= 1e-6:
                print(f"{name}: step {s} {what}: relative difference {rel:.3g} > 1e-6")
                ok = False
    print(f"{name}: worst relative difference {worst:.3g} over {STEPS} steps")
    return ok


def main():
    dump, workdir = sys.argv[1], sys.argv[2]
    os.makedirs(workdir, exist_ok=True)
    cases = [
        # name, schedule, lr, betas, eps, wd, max_norm, warmup_steps, warmup_ratio, total
        ("constant_plain", "constant", 1e-2, (0.9, 0.999), 1e-8, 0.0, 0.0, -1, -1.0, 20),
        ("constant_warmup_wd_clip", "constant", 3e-3, (0.9, 0.999), 1e-8, 0.1, 1.0, 4, -1.0, 20),
        ("linear_ratio_clip", "linear", 1e-2, (0.8, 0.99), 1e-6, 0.01, 0.5, -1, 0.15, 25),
        ("linear_past_end", "linear", 1e-2, (0.9, 0.999), 1e-8, 0.0, 2.0, 2, -1.0, 12),
        ("cosine_warmup_wd", "cosine", 5e-3, (0.9, 0.95), 1e-8, 0.05, 1.0, 3, -1.0, 20),
        ("cosine_ratio_noclip", "cosine", 1e-3, (0.5, 0.9), 1e-4, 0.0, 0.0, -1, 0.3, 17),
    ]
    ok = True
    for i, c in enumerate(cases):
        ok &= run_case(dump, workdir, *c, seed=1000 + i)
    print("adamw oracle:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
