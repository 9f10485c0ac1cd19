#!/usr/bin/env bash
# Set up (install what is missing, build) and run the main job on the
# embedded default: a synthetic study generated on the fly, fitted under
# `mpirun -np 2`, printing the per-region brain-score table and writing
# scores.h5 (in ./demo unless DEMO_DIR says otherwise).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$here/tools/setup.sh"
build="${BUILD_DIR:-$here/build}"
out="${DEMO_DIR:-$here/demo}"
ranks="${RANKS:-2}"
[ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OPENBLAS_NUM_THREADS=1

"$build/brainalign" synth --out "$out"
mpirun --oversubscribe -np "$ranks" "$build/brainalign" fit \
  --features "$out/features.h5" --bold "$out/bold-sub-01.h5" --layer 2 \
  --atlas "$out/atlas.h5" --out "$out/scores.h5"
