#!/usr/bin/env python3
"""Benchmarks take the release build (issue 15): tools/bench_common.release_brainalign
picks ROOT/build/brainalign, not the newest build*/brainalign (a sanitizer build made
later must not be timed), refuses a build/ that is not a release build, and
describe_binary names the binary, its build type and the OpenBLAS kernels it runs.

usage: edges_bench.py BRAINALIGN SOURCE_DIR
"""
import os
import sys
import tempfile
import time


def main():
    ba, src = os.path.abspath(sys.argv[1]), sys.argv[2]
    sys.path.insert(0, os.path.join(src, "tools"))
    import bench_common as bc
    with tempfile.TemporaryDirectory() as root:
        def make(build, build_type, sanitize):
            os.makedirs(f"{root}/{build}")
            os.symlink(ba, f"{root}/{build}/brainalign")
            with open(f"{root}/{build}/CMakeCache.txt", "w") as fp:
                fp.write(f"CMAKE_BUILD_TYPE:STRING={build_type}\nBRAINALIGN_SANITIZE:BOOL={sanitize}\n")
        make("build", "Release", "OFF")
        time.sleep(0.05)
        make("build-asan", "Debug", "ON")   # newer: the old rule would take it
        os.utime(f"{root}/build-asan/brainalign", follow_symlinks=False)
        chosen = bc.release_brainalign(root)
        assert chosen == f"{root}/build/brainalign", chosen
        print("ok: the release build/ is chosen over a newer build-asan/")
        assert bc.release_brainalign(root, f"{root}/build-asan/brainalign").endswith("build-asan/brainalign")
        print("ok: an explicit --brainalign is kept")
        line = bc.describe_binary(chosen)
        assert "build/brainalign" in line and "CMAKE_BUILD_TYPE=Release" in line, line
        kernels = line.rsplit("OpenBLAS kernels: ", 1)[1]
        assert kernels and not kernels.startswith("(unknown"), line
        print("ok:", line)
        with open(f"{root}/build/CMakeCache.txt", "w") as fp:
            fp.write("CMAKE_BUILD_TYPE:STRING=Debug\nBRAINALIGN_SANITIZE:BOOL=ON\n")
        try:
            bc.release_brainalign(root)
        except SystemExit as e:
            assert "not a release build" in str(e), e
            print("ok (rejected):", e)
        else:
            raise AssertionError("a Debug/sanitizer build/ was accepted")
    print("all checks passed")


if __name__ == "__main__":
    main()
