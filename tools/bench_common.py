"""What every benchmark states about the binary it times (imported by tools/bench_*.py).

release_brainalign(root, given): the executable to benchmark. Without --brainalign it is
  the release build ROOT/build/brainalign, never "the newest build*/brainalign" (which can
  be a sanitizer or Debug build: the benchmark then fails or times the wrong binary). The
  build's CMakeCache.txt must say CMAKE_BUILD_TYPE Release (or RelWithDebInfo) and
  BRAINALIGN_SANITIZE off; an explicit --brainalign is taken as given, its build described.
describe_binary(path): one line: the path, the build type and sanitizer setting, the
  version, and the OpenBLAS kernels it runs (from `brainalign fit --timing` on a tiny
  problem, since brainalign may re-select the kernels at start-up).
"""
import os
import re
import subprocess
import tempfile


def build_settings(binary):
    """{'build_type': ..., 'sanitize': ...} from the CMakeCache.txt beside the binary
    (empty values when there is none)."""
    cache = os.path.join(os.path.dirname(os.path.abspath(binary)), "CMakeCache.txt")
    out = {"build_type": "", "sanitize": "", "cache": cache if os.path.exists(cache) else ""}
    if not out["cache"]:
        return out
    with open(cache) as fp:
        for line in fp:
            m = re.match(r"(CMAKE_BUILD_TYPE|BRAINALIGN_SANITIZE):\w+=(.*)", line.strip())
            if m:
                out["build_type" if m.group(1) == "CMAKE_BUILD_TYPE" else "sanitize"] = m.group(2)
    return out


def release_brainalign(root, given=None):
    if given:
        path = os.path.abspath(given)
        if not os.access(path, os.X_OK):
            raise SystemExit(f"--brainalign {given}: not an executable")
        return path
    path = os.path.join(root, "build", "brainalign")
    if not os.access(path, os.X_OK):
        raise SystemExit(f"{path}: no release build there; build it (cmake -S . -B build "
                         f"-DCMAKE_BUILD_TYPE=Release) or pass --brainalign")
    s = build_settings(path)
    if s["build_type"] not in ("Release", "RelWithDebInfo") or s["sanitize"].upper() in (
            "ON", "1", "TRUE", "YES"):
        raise SystemExit(f"{path}: {s['cache'] or 'no CMakeCache.txt'} says CMAKE_BUILD_TYPE="
                         f"{s['build_type'] or '(unset)'}, BRAINALIGN_SANITIZE="
                         f"{s['sanitize'] or '(unset)'}: not a release build; rebuild it with "
                         f"-DCMAKE_BUILD_TYPE=Release or pass --brainalign")
    return path


def blas_kernels(binary, env=None):
    """The OpenBLAS kernels `binary` runs, from its own report."""
    import h5py
    import numpy as np
    with tempfile.TemporaryDirectory(prefix="ba-bench-kernels-") as tmp:
        rng = np.random.default_rng(0)
        with h5py.File(f"{tmp}/xy.h5", "w") as f:
            f["X"] = rng.normal(size=(40, 3)).astype(np.float32)
            f["Y"] = rng.normal(size=(40, 2)).astype(np.float32)
        proc = subprocess.run([binary, "fit", "--x", f"{tmp}/xy.h5:/X", "--y", f"{tmp}/xy.h5:/Y",
                               "--out", f"{tmp}/s.h5", "--quiet", "--timing", "--no-checkpoint"],
                              capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, **(env or {})))
    m = re.search(r"OpenBLAS (\S+) kernels", proc.stdout)
    return m.group(1) if m else f"(unknown: fit --timing exited {proc.returncode})"


def describe_binary(binary, env=None):
    s = build_settings(binary)
    version = subprocess.run([binary, "--version"], capture_output=True, text=True,
                             timeout=30).stdout.strip()
    return (f"binary {binary} ({version or 'version unknown'}; CMAKE_BUILD_TYPE="
            f"{s['build_type'] or '(unknown)'}, BRAINALIGN_SANITIZE={s['sanitize'] or '(unknown)'}"
            f"); OpenBLAS kernels: {blas_kernels(binary, env)}")
