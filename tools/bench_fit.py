#!/usr/bin/python3
"""Speed and memory benchmark of `brainalign fit` (design-matrix mode).

usage:
  /usr/bin/python3 tools/bench_fit.py [--n 3000] [--p 3840] [--v 20000]
      [--folds 5] [--alphas 10] [--configs 1x2,2x1] [--sklearn-folds 5]
      [--workdir DIR] [--brainalign BIN] [--mpirun mpirun] [--keep] [--reuse-data]

  quick run:  /usr/bin/python3 tools/bench_fit.py --n 600 --p 800 --v 2000

What it does, in one run on one machine:
  1. generates X [n, p] and Y [n, v] float32 (seeded; the generator of
     tests/oracle/sklearn_fit_oracle.py: correlated low-rank features with
     outlier dimensions and heavy-tailed rows, voxels with varying SNR and
     baselines) and writes WORKDIR/x.h5:/X and WORKDIR/y.h5:/Y with h5py;
  2. runs a 1-rank fit on tiny data: its peak RSS is the fixed cost of a
     rank (MPI, HDF5, OpenBLAS, ScaLAPACK), and its --timing names the
     OpenBLAS kernels brainalign runs (it selects the AVX-512 "SkylakeX"
     ones through OPENBLAS_CORETYPE where Debian's OpenBLAS 0.3.21 takes an
     AVX-512 CPU such as Zen 4 for Haswell);
     measures this machine's SGEMM peak with a tiny C program linked to
     OpenBLAS and compiled on the fly with cc (4096x4096x4096 and the shape
     of the voxel-phase GEMMs, 2 threads and 1 thread), with OpenBLAS's own
     kernel choice and with brainalign's; the target uses brainalign's.
     numpy's float32 matmul is timed for comparison (numpy links the same
     OpenBLAS through Debian's libblas.so.3; threadpoolctl reports it);
  3. runs `brainalign fit --timing` for each configuration RxT (R ranks,
     OPENBLAS_NUM_THREADS=T; default 1x2 and 2x1) under
     `mpirun --oversubscribe --bind-to none -np R`, every rank wrapped by
     this script (--rss-wrapper) which reads the rank's peak resident set
     (getrusage of its child: ru_maxrss, the kernel's VmHWM at exit);
     wall time is measured around mpirun (MPI start-up and file I/O
     included), phase times and flop counts come from --timing;
  4. times scikit-learn doing the same procedure in float64 (for each outer
     fold of KFold(folds): StandardScaler on the training X, Y centred with
     the training mean, RidgeCV(alphas, alpha_per_target=True,
     fit_intercept=False), predict, Pearson r) with OPENBLAS_NUM_THREADS=2
     and the same OpenBLAS kernels as brainalign (--sklearn-default-blas:
     OpenBLAS's own choice), on arrays already in memory; with --sklearn-folds K < folds only K
     folds are timed and the total is extrapolated x folds/K (labelled);
     the r it gets is compared with brainalign's on the timed folds;
  5. prints a table of figures, the three targets (>= 2.5x faster than
     scikit-learn; voxel phase >= 70 % of the SGEMM peak; peak RSS per rank
     < 2x the bytes of the rank's own blocks of X and Y, float32) and
     whether each is met, and the exact commands that produced them.

The machine may be shared: the load average before and after each step
and the CPU time of every run are printed so noisy figures can be spotted.
This is a tool, not a test: it is not registered in CTest.
"""
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench_common  # noqa: E402
ORACLE_DIR = os.path.join(ROOT, "tests", "oracle")
OPENBLAS_INCLUDE = "/usr/include/x86_64-linux-gnu/openblas-pthread"
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_rmaps_base_oversubscribe": "1"}

SGEMM_C = r"""
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
char *openblas_get_config(void);
char *openblas_get_corename(void);
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static void fill(float *x, size_t count, unsigned seed)
{
    for (size_t i = 0; i < count; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
    }
}
int main(int argc, char **argv)
{
    if (argc != 5) { fprintf(stderr, "usage: sgemm_peak M N K REPS\n"); return 2; }
    int m = atoi(argv[1]), n = atoi(argv[2]), k = atoi(argv[3]), reps = atoi(argv[4]);
    float *a = malloc(sizeof(float) * (size_t)m * k), *b = malloc(sizeof(float) * (size_t)k * n),
          *c = malloc(sizeof(float) * (size_t)m * n);
    if (!a || !b || !c) { fprintf(stderr, "out of memory\n"); return 1; }
    fill(a, (size_t)m * k, 1); fill(b, (size_t)k * n, 2);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    printf("%.3f %s %s\n", 2.0 * m * n * k / best / 1e9, openblas_get_corename(),
           openblas_get_config());
    free(a); free(b); free(c);
    return 0;
}
"""


# ------------------------------------------------------------ helpers

def load():
    return "load %.2f %.2f %.2f" % os.getloadavg()


def cpu_busy_seconds():
    """CPU time spent by all processes on the machine (from /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return float("nan")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def others_share(busy_before, own_cpu, wall):
    """Fraction of the machine's cores that other processes used meanwhile."""
    other = cpu_busy_seconds() - busy_before - own_cpu
    return max(0.0, other) / (wall * (os.cpu_count() or 1))


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def shell_line(cmd, env=None):
    pre = " ".join(f"{k}={v}" for k, v in (env or {}).items())
    return (pre + " " if pre else "") + " ".join(cmd)


def rss_wrapper(argv):
    """`bench_fit.py --rss-wrapper OUTDIR -- CMD...`: run CMD, then write its
    peak RSS and CPU time to OUTDIR/rank<R>.json (R from Open MPI)."""
    outdir = argv[0]
    cmd = argv[2:] if argv[1] == "--" else argv[1:]
    rank = os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("PMI_RANK", "0"))
    rc = subprocess.call(cmd)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(os.path.join(outdir, f"rank{rank}.json"), "w") as f:
        json.dump({"rank": int(rank), "maxrss_kb": ru.ru_maxrss, "user_s": ru.ru_utime,
                   "sys_s": ru.ru_stime, "rc": rc}, f)
    return rc


def sklearn_worker(argv):
    """`bench_fit.py --sklearn-worker WORKDIR FOLDS N_FOLDS N_ALPHAS`: time the
    scikit-learn procedure on the first FOLDS folds, save r and alpha."""
    import h5py
    import numpy as np
    from sklearn.model_selection import KFold
    import threadpoolctl
    sys.path.insert(0, ORACLE_DIR)
    from sklearn_fit_oracle import sklearn_fold
    workdir, n_timed, n_folds, n_alphas = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    t0 = time.time()
    with h5py.File(os.path.join(workdir, "x.h5"), "r") as f:
        x = f["X"][...].astype(np.float64)
    with h5py.File(os.path.join(workdir, "y.h5"), "r") as f:
        y = f["Y"][...].astype(np.float64)
    t_load = time.time() - t0
    alphas = np.logspace(-1, 8, n_alphas)
    v = y.shape[1]
    r_folds = np.full((n_folds, v), np.nan)
    alpha = np.full((n_folds, v), np.nan)
    fold_s = []
    for k, (train, test) in enumerate(KFold(n_folds, shuffle=False).split(x)):
        if k >= n_timed:
            break
        t1 = time.time()
        r_folds[k], alpha[k] = sklearn_fold(x, y, train, test, alphas)
        fold_s.append(time.time() - t1)
        print(f"  scikit-learn fold {k}: {fold_s[-1]:.1f} s ({load()})", flush=True)
    np.savez(os.path.join(workdir, "sklearn.npz"), r_folds=r_folds, alpha=alpha,
             fold_s=np.array(fold_s), load_s=t_load,
             maxrss_kb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
             blas=json.dumps(threadpoolctl.threadpool_info()))
    return 0


# ------------------------------------------------------------ the steps

def make_inputs(a):
    import h5py
    sys.path.insert(0, ORACLE_DIR)
    from sklearn_fit_oracle import make_data
    xp, yp = os.path.join(a.workdir, "x.h5"), os.path.join(a.workdir, "y.h5")
    if a.reuse_data and os.path.exists(xp) and os.path.exists(yp):
        with h5py.File(xp, "r") as fx, h5py.File(yp, "r") as fy:
            if fx["X"].shape == (a.n, a.p) and fy["Y"].shape == (a.n, a.v):
                log(f"reusing {xp} and {yp}")
                return
    t0 = time.time()
    x, y = make_data(a.n, a.p, a.v, a.seed)
    with h5py.File(xp, "w") as f:
        f.create_dataset("X", data=x)
    with h5py.File(yp, "w") as f:
        f.create_dataset("Y", data=y)
    log(f"generated X {x.shape} and Y {y.shape} float32 in {time.time() - t0:.1f} s")
    del x, y


def sgemm_peaks(a, voxel_shape, kernel):
    """SGEMM GFLOP/s of this machine: a C program calling OpenBLAS's
    cblas_sgemm (best of several calls after a warm-up), with OpenBLAS's own
    choice of kernels and, when brainalign runs other kernels (it selects
    the AVX-512 ones through OPENBLAS_CORETYPE where Debian's OpenBLAS
    takes the CPU for Haswell), with those too. Returns (rows, commands);
    rows["peak", T] is the 4096^3 peak with T threads for brainalign's
    kernels."""
    src = os.path.join(a.workdir, "sgemm_peak.c")
    exe = os.path.join(a.workdir, "sgemm_peak")
    with open(src, "w") as f:
        f.write(SGEMM_C)
    compile_cmd = ["cc", "-O2", "-std=c11", f"-I{OPENBLAS_INCLUDE}", src, "-o", exe, "-lopenblas"]
    rows, cmds = {}, [" ".join(compile_cmd)]
    if subprocess.run(compile_cmd).returncode != 0:
        log("could not compile the SGEMM program; only numpy's matmul is measured")
        exe = None
    default = ""
    if exe:
        out = subprocess.run([exe, "64", "64", "64", "1"], capture_output=True, text=True)
        default = out.stdout.split()[1] if len(out.stdout.split()) > 1 else ""
        rows["openblas"] = out.stdout.split(None, 2)[2].strip() if out.stdout.count(" ") > 1 else ""
    variants = [(default or "default", {})]
    if kernel and default and kernel.lower() != default.lower():
        variants.append((kernel, kernel_env(kernel)))
    rows["kernels"] = [v[0] for v in variants]
    rows["brainalign_kernel"] = variants[-1][0]
    # brainalign's voxel products run its own AVX-512 kernel whatever
    # OpenBLAS kernels are selected, so the fairest peak to hold them to is
    # the machine's best SGEMM: OpenBLAS's AVX-512 kernels too, measured
    # here only as a reference (scikit-learn keeps the kernels above).
    with open("/proc/cpuinfo") as f:
        avx512 = " avx512f " in f.read()
    if avx512 and all(v[0].lower() != "skylakex" for v in variants):
        variants.append(("SKYLAKEX", kernel_env("SKYLAKEX")))
    shapes = [("4096^3", (4096, 4096, 4096), 3)]
    if voxel_shape:
        shapes.append(("voxel GEMM %dx%dx%d" % voxel_shape, voxel_shape, 10))
    busy0, t0, own = cpu_busy_seconds(), time.time(), 0.0
    for label, kenv in variants if exe else []:
        for name, (m, n, k), reps in shapes:
            for threads in (2, 1):
                env = dict(kenv, OPENBLAS_NUM_THREADS=str(threads))
                cmd = [exe, str(m), str(n), str(k), str(reps)]
                c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                out = subprocess.run(cmd, env=dict(os.environ, **env), capture_output=True,
                                     text=True)
                c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                own += c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime
                gf = float(out.stdout.split()[0])
                rows[(name, threads, label)] = gf
                if name == "4096^3" and label == rows["brainalign_kernel"]:
                    rows[("peak", threads)] = gf
                if name == "4096^3" and threads == 2 and gf > rows.get("best_peak2", (0, ""))[0]:
                    rows["best_peak2"] = (gf, label)
                cmds.append(shell_line(cmd, env))
                log(f"SGEMM {name}, {label} kernels, {threads} thread(s): {gf:.1f} GFLOP/s "
                    f"({load()})")
    if exe:
        rows["others"] = others_share(busy0, own, time.time() - t0)
    np_code = ("import numpy as np, time, json, threadpoolctl\n"
               "a = np.random.default_rng(0).standard_normal((4096, 4096), dtype=np.float32)\n"
               "b = a.copy(); a @ b\n"
               "best = min((lambda t: (a @ b, time.perf_counter() - t)[1])(time.perf_counter())"
               " for _ in range(3))\n"
               "info = threadpoolctl.threadpool_info()[0]\n"
               "print(2 * 4096**3 / best / 1e9, info['internal_api'], info['version'],"
               " info['architecture'], info['filepath'])\n")
    env = dict(variants[len(rows["kernels"]) - 1][1], OPENBLAS_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", np_code], env=dict(os.environ, **env),
                         capture_output=True, text=True)
    parts = out.stdout.split()
    if parts:
        rows["numpy"] = float(parts[0])
        rows["numpy_blas"] = " ".join(parts[1:])
        log(f"numpy float32 matmul 4096^3, 2 threads: {float(parts[0]):.1f} GFLOP/s "
            f"({' '.join(parts[1:])})")
    cmds.append(shell_line([sys.executable, "-c", "'<numpy 4096^3 float32 matmul, best of 3>'"],
                           env))
    return rows, cmds


def kernel_env(kernel):
    """Environment that makes OpenBLAS use the named kernels (empty: its choice)."""
    return {"OPENBLAS_CORETYPE": kernel.upper()} if kernel else {}


def parse_timing(text):
    import re
    t = {}
    m = re.search(r"timing \(rank 0\): total ([\d.]+) s, input ([\d.]+) s, feature side "
                  r"([\d.]+) s \(([\d.]+) GFLOP\), voxel side ([\d.]+) s", text)
    if m:
        (t["total"], t["input"], t["feature_s"], t["feature_gflop"],
         t["voxel_s_rank0"]) = map(float, m.groups())
    m = re.search(r"voxel side, all ranks: ([\d.]+) GFLOP in ([\d.]+) s = ([\d.]+) GFLOP/s", text)
    if m:
        t["voxel_gflop"], t["voxel_s"], t["voxel_gflops"] = map(float, m.groups())
    m = re.search(r"OpenBLAS (\S+) kernels", text)
    if m:
        t["kernel"] = m.group(1)
    m = re.search(r"voxel products: ([^;]+);", text)
    if m:
        t["voxel_kernel"] = m.group(1)
    m = re.search(r"mean r = ([-\d.]+)", text)
    if m:
        t["mean_r"] = float(m.group(1))
    return t


def run_brainalign(a, ranks, threads, inputs=None, tag=None):
    tag = tag or f"{ranks}x{threads}"
    inputs = inputs or (os.path.join(a.workdir, "x.h5"), os.path.join(a.workdir, "y.h5"))
    rssdir = os.path.join(a.workdir, f"rss-{tag}")
    os.makedirs(rssdir, exist_ok=True)
    for name in os.listdir(rssdir):
        os.remove(os.path.join(rssdir, name))
    scores = os.path.join(a.workdir, f"scores-{tag}.h5")
    if os.path.exists(scores):
        os.remove(scores)
    fit = [a.brainalign, "fit", "--x", inputs[0] + ":/X", "--y", inputs[1] + ":/Y",
           "--folds", str(a.folds),
           "--alphas", f"logspace:-1:8:{a.alphas}", "--out", scores, "--quiet", "--timing"]
    cmd = [a.mpirun, "--oversubscribe", "--bind-to", "none", "-np", str(ranks),
           "-x", "OPENBLAS_NUM_THREADS", sys.executable, os.path.abspath(__file__),
           "--rss-wrapper", rssdir, "--"] + fit
    if os.geteuid() == 0:
        cmd.insert(1, "--allow-run-as-root")
    env = {"OPENBLAS_NUM_THREADS": str(threads)}
    before = load()
    log(f"brainalign fit, {ranks} rank(s) x {threads} thread(s) ({before})")
    busy0 = cpu_busy_seconds()
    t0 = time.time()
    out = subprocess.run(cmd, env=dict(os.environ, **MPI_ENV, **env), capture_output=True,
                         text=True)
    wall = time.time() - t0

    if out.returncode != 0:
        print(out.stdout, out.stderr)
        sys.exit(f"brainalign fit failed ({tag}, exit {out.returncode})")
    t = parse_timing(out.stdout)
    ranks_info = []
    for r in range(ranks):
        with open(os.path.join(rssdir, f"rank{r}.json")) as f:
            ranks_info.append(json.load(f))
    cpu = sum(i["user_s"] + i["sys_s"] for i in ranks_info)
    others = others_share(busy0, cpu, wall)
    log(f"  wall {wall:.1f} s, CPU {cpu:.1f} s, peak RSS "
        f"{', '.join('%.0f MB' % (i['maxrss_kb'] / 1024) for i in ranks_info)}; other "
        f"processes used {100 * others:.0f}% of the machine ({load()})")
    for line in out.stdout.splitlines():
        if line.startswith(("timing", "voxel side")):
            print("  | " + line)
    return {"tag": tag, "ranks": ranks, "threads": threads, "wall": wall, "cpu": cpu,
            "timing": t, "ranks_info": ranks_info, "scores": scores,
            "cmd": shell_line(cmd, env), "load_before": before, "load_after": load(),
            "others": others, "stdout": out.stdout}


def baseline_rss(a):
    """Peak RSS of a 1-rank fit on a tiny problem: what MPI, HDF5, OpenBLAS and
    ScaLAPACK cost before any data (the fixed part of every rank's RSS)."""
    import h5py
    import numpy as np
    rng = np.random.default_rng(1)
    paths = (os.path.join(a.workdir, "tiny-x.h5"), os.path.join(a.workdir, "tiny-y.h5"))
    for path, name, shape in ((paths[0], "X", (50, 8)), (paths[1], "Y", (50, 8))):
        with h5py.File(path, "w") as f:
            f.create_dataset(name, data=rng.standard_normal(shape).astype(np.float32))
    run = run_brainalign(a, 1, 1, paths, tag="tiny")
    for path in paths + (run["scores"],):
        os.remove(path)
    return run


def own_block_bytes(n, p, v, ranks, rank):
    """float32 bytes of this rank's share of X (n*p/ranks, its part of the
    2-D block-cyclic layout) and of its contiguous voxel block of Y (split
    as ba_split_range does, with fold_groups = 1)."""
    base, extra = divmod(v, ranks)
    vloc = base + (1 if rank < extra else 0)
    return 4 * n * p / ranks, 4 * n * vloc


def run_sklearn(a):
    env = dict(a.sklearn_env, OPENBLAS_NUM_THREADS="2")
    cmd = [sys.executable, os.path.abspath(__file__), "--sklearn-worker", a.workdir,
           str(a.sklearn_folds), str(a.folds), str(a.alphas)]
    before = load()
    log(f"scikit-learn, {a.sklearn_folds} of {a.folds} folds, float64, 2 threads ({before})")
    busy0 = cpu_busy_seconds()
    t0 = time.time()
    proc = subprocess.Popen(cmd, env=dict(os.environ, **env))
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.time() - t0
    rc = os.waitstatus_to_exitcode(status)
    others = others_share(busy0, ru.ru_utime + ru.ru_stime, wall)
    if rc != 0:
        sys.exit(f"scikit-learn worker failed (exit {rc})")
    import numpy as np
    z = np.load(os.path.join(a.workdir, "sklearn.npz"))
    fold_s = z["fold_s"]
    return {"fold_s": fold_s, "timed": float(fold_s.sum()),
            "total": float(fold_s.sum()) * a.folds / len(fold_s),
            "extrapolated": len(fold_s) < a.folds, "load_s": float(z["load_s"]),
            "wall": wall, "maxrss_kb": int(z["maxrss_kb"]), "r_folds": z["r_folds"],
            "alpha": z["alpha"], "blas": json.loads(str(z["blas"])),
            "cmd": shell_line(cmd, env), "load_before": before, "load_after": load(),
            "others": others}


def compare_scores(runs, sk):
    import h5py
    import numpy as np
    lines = []
    rs = {}
    for run in runs:
        with h5py.File(run["scores"], "r") as f:
            rs[run["tag"]] = (f["r_folds"][...].astype(np.float64), f["alpha"][...])
    def differences(r1, a1, r2, a2, tol):
        d = np.abs(r1 - r2)
        big = d > tol
        flips = big & ~np.isclose(a1, a2, rtol=1e-4)
        return (f"max |Δr| per fold and voxel {d.max():.1e}; {big.sum()} of {d.size} "
                f"(fold, voxel) pairs above {tol:g}, {flips.sum()} of them with a different "
                f"alpha (near-ties of the leave-one-out loss)")

    tags = list(rs)
    for t in tags[1:]:
        lines.append(f"rank-count invariance {tags[0]} vs {t}: "
                     + differences(rs[tags[0]][0], rs[tags[0]][1], rs[t][0], rs[t][1], 1e-5))
    if sk is not None:
        done = ~np.isnan(sk["r_folds"][:, 0])
        for t in tags:
            rf, al = rs[t]
            d = np.abs(rf[done].mean(0) - sk["r_folds"][done].mean(0))
            agree = np.isclose(al[done], sk["alpha"][done], rtol=1e-4).mean()
            lines.append(f"{t} vs scikit-learn on {done.sum()} fold(s): r per voxel (mean over "
                         f"those folds) |Δr| median {np.median(d):.1e}, fraction < 1e-3 "
                         f"{(d < 1e-3).mean():.5f}; alphas agree {agree:.5f}; "
                         + differences(rf[done], al[done], sk["r_folds"][done],
                                       sk["alpha"][done], 1e-3))
    return lines


# ------------------------------------------------------------ report

def report(a, peaks, peak_cmds, runs, sk, checks, tiny):
    print("\n" + "=" * 78)
    print(f"brainalign fit benchmark: n={a.n} samples, p={a.p} features, v={a.v} voxels, "
          f"{a.alphas} alphas, {a.folds} folds, float32 input")
    print(f"machine: {os.cpu_count()} CPUs; {cpu_model()}; {peaks.get('openblas', '?')}; "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    if "numpy_blas" in peaks:
        print(f"numpy BLAS: {peaks['numpy_blas']}")
    print("=" * 78)
    rows = []
    for key, val in peaks.items():
        if isinstance(key, tuple) and len(key) == 3:
            name, threads, label = key
            rows.append((f"SGEMM {name}, {label} kernels, {threads} thread(s)",
                         f"{val:.1f} GFLOP/s"))
    if "brainalign_kernel" in peaks:
        rows.append(("kernels brainalign uses (from --timing)", peaks["brainalign_kernel"]))
    if "numpy" in peaks:
        rows.append((f"numpy float32 matmul 4096^3, 2 threads, {peaks.get('brainalign_kernel')} "
                     "kernels", f"{peaks['numpy']:.1f} GFLOP/s"))
    rows.append(("peak RSS of a 1-rank fit on 50x8 data (fixed cost)",
                 f"{tiny['ranks_info'][0]['maxrss_kb'] / 1024:.0f} MB"))
    for run in runs:
        t, tag = run["timing"], run["tag"]
        rows.append((f"[{tag}] brainalign wall (mpirun, incl. start-up + I/O)", f"{run['wall']:.1f} s"))
        rows.append((f"[{tag}] CPU time all ranks / wall", f"{run['cpu']:.1f} s / {run['wall']:.1f} s"))
        if "total" in t:
            rows.append((f"[{tag}] rank 0: total / input / feature / voxel",
                         f"{t['total']:.1f} / {t['input']:.1f} / {t['feature_s']:.1f} / "
                         f"{t['voxel_s_rank0']:.1f} s"))
            rows.append((f"[{tag}] feature side (rank 0's group)",
                         f"{t['feature_gflop']:.1f} GFLOP, {t['feature_gflop'] / max(t['feature_s'], 1e-9):.1f} GFLOP/s"))
        if "voxel_gflop" in t:
            rows.append((f"[{tag}] voxel side, all ranks",
                         f"{t['voxel_gflop']:.1f} GFLOP in {t['voxel_s']:.1f} s = {t['voxel_gflops']:.1f} GFLOP/s"))
        for info in run["ranks_info"]:
            x_own, y_own = own_block_bytes(a.n, a.p, a.v, run["ranks"], info["rank"])
            rows.append((f"[{tag}] rank {info['rank']} peak RSS vs 2x own X+Y",
                         f"{info['maxrss_kb'] / 1024:.0f} MB vs {2 * (x_own + y_own) / 2**20:.0f} MB "
                         f"(X {x_own / 2**20:.0f} MB + Y {y_own / 2**20:.0f} MB)"))
    if sk is not None:
        label = (f"scikit-learn, {len(sk['fold_s'])} fold(s) timed, x{a.folds}/{len(sk['fold_s'])} "
                 "EXTRAPOLATED" if sk["extrapolated"] else f"scikit-learn, all {a.folds} folds")
        blas = sk["blas"][0] if sk["blas"] else {}
        rows.append((label + f" (float64, 2 threads, OpenBLAS {blas.get('architecture', '?')})",
                     f"{sk['total']:.1f} s"))
        rows.append(("scikit-learn per fold", ", ".join(f"{s:.1f}" for s in sk["fold_s"]) + " s"))
        rows.append(("scikit-learn load + convert (not counted)", f"{sk['load_s']:.1f} s"))
        rows.append(("scikit-learn peak RSS", f"{sk['maxrss_kb'] / 1024:.0f} MB"))
    width = max(len(r[0]) for r in rows)
    for name, val in rows:
        print(f"{name:<{width}}  {val}")

    print("\ntargets:")
    for line in checks:
        print("  " + line)
    print("\nnoise: CPU used by other processes during each run (share of all cores), "
          "load average before -> after:")
    for r in runs:
        print(f"  {r['tag']}: {100 * r['others']:.0f}%, {r['load_before']} -> {r['load_after']}")
    if sk:
        print(f"  scikit-learn: {100 * sk['others']:.0f}%, {sk['load_before']} -> "
              f"{sk['load_after']}")
    if "others" in peaks:
        print(f"  SGEMM peak measurements: {100 * peaks['others']:.0f}%")
    print("\ncommands:")
    print(f"  {sys.executable} {' '.join(sys.argv)}")
    for c in peak_cmds:
        print("  " + c)
    for run in [tiny] + runs:
        print("  " + run["cmd"])
    if sk is not None:
        print("  " + sk["cmd"])


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def targets(a, peaks, runs, sk):
    lines = []
    p2 = peaks.get(("peak", 2))
    for run in runs:
        tag, t = run["tag"], run["timing"]
        noisy = [f"{name} {100 * x:.0f}%" for name, x in
                 ((tag, run["others"]), ("scikit-learn", sk["others"] if sk else 0),
                  ("SGEMM peak", peaks.get("others", 0))) if x > 0.15]
        if noisy:
            lines.append(f"[{tag}] NOISY: other processes used " + ", ".join(noisy) +
                         " of the machine; the speed figures below are unreliable")
        if sk is not None:
            speed = sk["total"] / run["wall"]
            lines.append(f"[{tag}] >= 2.5x faster than scikit-learn: {speed:.2f}x "
                         f"({sk['total']:.1f} s{' extrapolated' if sk['extrapolated'] else ''} "
                         f"/ {run['wall']:.1f} s) -> {'MET' if speed >= 2.5 else 'NOT MET'}")
        if p2 and "voxel_gflops" in t:
            peak, label = p2, f"{peaks['brainalign_kernel']} kernels"
            if "AVX-512" in t.get("voxel_kernel", "") and "best_peak2" in peaks:
                peak, best = peaks["best_peak2"]
                label = f"the machine's best: OpenBLAS {best} kernels"
            frac = t["voxel_gflops"] / peak
            lines.append(f"[{tag}] voxel phase ({t.get('voxel_kernel', 'cblas_sgemm')}) >= 70% of "
                         f"SGEMM peak ({label}, 2 threads): {t['voxel_gflops']:.1f} / "
                         f"{peak:.1f} GFLOP/s = {100 * frac:.0f}% -> {'MET' if frac >= 0.7 else 'NOT MET'}")
        worst = 0.0
        for info in run["ranks_info"]:
            x_own, y_own = own_block_bytes(a.n, a.p, a.v, run["ranks"], info["rank"])
            worst = max(worst, info["maxrss_kb"] * 1024 / (2 * (x_own + y_own)))
        lines.append(f"[{tag}] peak RSS < 2x own X+Y blocks: worst rank at {worst:.2f} of the "
                     f"limit -> {'MET' if worst < 1 else 'NOT MET'}")
    return lines


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--rss-wrapper":
        return rss_wrapper(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "--sklearn-worker":
        return sklearn_worker(sys.argv[2:])
    import argparse
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3000, help="samples (default 3000)")
    ap.add_argument("--p", type=int, default=3840, help="features (default 3840)")
    ap.add_argument("--v", type=int, default=20000, help="voxels (default 20000)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--alphas", type=int, default=10, help="logspace(-1, 8, N) (default 10)")
    ap.add_argument("--seed", type=int, default=20250513)
    ap.add_argument("--configs", default="1x2,2x1",
                    help="RANKSxTHREADS list (default 1x2,2x1)")
    ap.add_argument("--sklearn-folds", type=int, default=None,
                    help="folds timed for scikit-learn (default all; 0 skips it)")
    ap.add_argument("--coretype", default=None,
                    help="set OPENBLAS_CORETYPE for every run (brainalign, SGEMM peak, numpy, "
                         "scikit-learn); default: the environment's")
    ap.add_argument("--sklearn-default-blas", action="store_true",
                    help="run scikit-learn with OpenBLAS's own kernel choice instead of the "
                         "kernels brainalign uses")
    ap.add_argument("--workdir", default="/tmp/brainalign-bench-fit")
    ap.add_argument("--brainalign", default=None,
                    help="the executable (default: the release build, build/brainalign)")
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--reuse-data", action="store_true",
                    help="keep x.h5/y.h5 from an earlier run when the sizes match")
    ap.add_argument("--keep", action="store_true", help="keep the data and scores files")
    a = ap.parse_args()
    if a.coretype:
        os.environ["OPENBLAS_CORETYPE"] = a.coretype
    a.sklearn_env = {}
    if a.sklearn_folds is None:
        a.sklearn_folds = a.folds
    a.sklearn_folds = min(a.sklearn_folds, a.folds)
    a.brainalign = bench_common.release_brainalign(ROOT, a.brainalign)
    log(bench_common.describe_binary(a.brainalign))
    configs = [tuple(int(x) for x in c.split("x")) for c in a.configs.split(",")]
    os.makedirs(a.workdir, exist_ok=True)
    log(f"brainalign: {a.brainalign}; workdir {a.workdir}; OPENBLAS_CORETYPE="
        f"{os.environ.get('OPENBLAS_CORETYPE', '(unset)')}; {load()}")

    make_inputs(a)
    n_train = a.n - a.n // a.folds
    m = min(n_train, a.p)
    tiny = baseline_rss(a)
    kernel = tiny["timing"].get("kernel", "")
    peaks, peak_cmds = sgemm_peaks(a, (n_train, 512, m), kernel)
    if not a.sklearn_default_blas and kernel:
        a.sklearn_env = kernel_env(peaks["brainalign_kernel"]) if len(peaks["kernels"]) > 1 else {}
    runs = [run_brainalign(a, r, t) for r, t in configs]
    sk = run_sklearn(a) if a.sklearn_folds > 0 else None
    checks = compare_scores(runs, sk)
    report(a, peaks, peak_cmds, runs, sk, targets(a, peaks, runs, sk) + checks, tiny)
    if not a.keep:
        for name in ["x.h5", "y.h5", "sklearn.npz"] + [os.path.basename(r["scores"]) for r in runs]:
            path = os.path.join(a.workdir, name)
            if os.path.exists(path):
                os.remove(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
