#!/usr/bin/env bash
# Install what brainalign needs (Debian packages) and build it in ./build.
#   tools/setup.sh            install missing packages, configure, build
#   BUILD_DIR=dir tools/setup.sh   build elsewhere
#   BA_SANITIZE=1             build with AddressSanitizer + UBSan
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$here/build}"

# Libraries and tools the build needs, and the test oracles (Debian's
# python3 packages, used only by tests and benchmarks, never at run time).
packages=(build-essential cmake pkg-config
          libopenmpi-dev openmpi-bin libscalapack-openmpi-dev libpetsc-real-dev
          libhdf5-openmpi-dev libcmocka-dev libopenblas-dev
          libjansson-dev libpcre2-dev libinih-dev libniftiio-dev libgiftiio-dev libexpat1-dev zlib1g-dev
          munge slurmctld slurmd slurm-client    # tests/slurm: a one-node SLURM for the job scripts
          clang libclang-rt-14-dev               # tools/run-sanitizers.sh: libFuzzer targets (tests/fuzz)
          python3 python3-numpy python3-scipy python3-sklearn python3-h5py python3-torch python3-nibabel
          python3-matplotlib python3-sentencepiece)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cmake_args=(-S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release)
[ "${BA_SANITIZE:-0}" = 1 ] && cmake_args+=(-DBRAINALIGN_SANITIZE=ON)
mkdir -p "$build"
cmake "${cmake_args[@]}" > "$build/configure.log" 2>&1 || { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)"
