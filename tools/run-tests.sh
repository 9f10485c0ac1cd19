#!/usr/bin/env bash
# Set up (install what is missing, build) and run the whole test suite.
# The MPI tests run under `mpiexec -n 2` (some -n 4, oversubscribed).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$here/tools/setup.sh"
cd "${BUILD_DIR:-$here/build}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
status=0
# Two tests at a time on a 2-core machine (MPI tests declare their ranks as
# PROCESSORS, so ctest never runs more ranks than -j allows at once).
ctest --output-on-failure --timeout 1200 -j "$(nproc)" "$@" || status=$?
# Then the unit/MPI/fuzz-replay tests under ASan + UBSan and a short libFuzzer
# run of every parser (tools/run-sanitizers.sh); BA_SANITIZERS=0 skips them.
if [ "${BA_SANITIZERS:-1}" != 0 ]; then
  "$here/tools/run-sanitizers.sh" || status=1
fi
exit "$status"
