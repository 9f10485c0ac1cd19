#!/usr/bin/env bash
# The test suite under AddressSanitizer + UndefinedBehaviorSanitizer, and a
# short libFuzzer run of every parser fuzz target (tests/fuzz/README.md).
#
#   tools/run-sanitizers.sh            both parts
#   BA_SANITIZE_LABELS=regex           CTest labels run under the sanitizers
#                                      (default unit|mpi|fuzz: the unit tests,
#                                      the MPI tests and the fuzz seed
#                                      replays; the heavy e2e/oracle/model
#                                      suites run in the plain build only)
#   BA_SANITIZE_EXCLUDE=regex          tests left out (ctest -E); by default the
#                                      4-rank MPI tests and the 2-rank PETSc test,
#                                      the slowest under ASan on 2 cores (the
#                                      1- and 2-rank runs of the same code stay);
#                                      BA_SANITIZE_EXCLUDE= runs them all
#   BA_FUZZ_SECONDS=n                  seconds of fuzzing per target (default 6)
#   BA_SKIP_FUZZ=1                     sanitizer suite only
#   ASAN_BUILD_DIR / FUZZ_BUILD_DIR    build directories (default build-asan,
#                                      build-fuzz in the project root)
#
# Part 1 builds with GCC and -DBRAINALIGN_SANITIZE=ON. Leaks are checked:
# tests/lsan.supp suppresses only allocations made inside Open MPI and its
# runtime (PMIx, hwloc, libevent), which keep memory from MPI_Init on, so a
# leak in brainalign still fails its test. Part 2 builds the fuzz targets
# with clang and -DBRAINALIGN_FUZZ=ON (Debian packages clang and
# libclang-rt-14-dev, installed by tools/setup.sh) and runs each for
# BA_FUZZ_SECONDS after replaying its seed corpus.
# Exit status: non-zero if any test of either part fails.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
asan_build="${ASAN_BUILD_DIR:-$here/build-asan}"
fuzz_build="${FUZZ_BUILD_DIR:-$here/build-fuzz}"
labels="${BA_SANITIZE_LABELS:-unit|mpi|fuzz}"
exclude="${BA_SANITIZE_EXCLUDE-_np4\$|^mpi\.test_ridge_petsc\$}"
jobs="$(nproc)"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
asan_common="detect_leaks=1:detect_stack_use_after_return=0:strict_string_checks=1"
export LSAN_OPTIONS="suppressions=$here/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# Open MPI unloads its components at MPI_Finalize and is built without frame
# pointers, so with ASan's fast unwinder a leak inside MPI shows as one frame
# in "<unknown module>" that no suppression can name. The full unwinder
# (fast_unwind_on_malloc=0) sees the Open MPI frames. It makes malloc-heavy
# tests slower, but the whole sanitizer suite still takes ~1.5 min on 2
# cores, and one pass gives a CTest summary that means what it says.
full_stacks() { ASAN_OPTIONS="$asan_common:fast_unwind_on_malloc=0" "$@"; }

configure() { # dir, cmake args...
  local dir=$1
  shift
  mkdir -p "$dir"
  cmake -S "$here" -B "$dir" "$@" > "$dir/configure.log" 2>&1 || { cat "$dir/configure.log"; return 1; }
}

status=0
echo "== sanitizers: ASan + UBSan build in $asan_build, labels $labels, excluding ${exclude:-nothing}"
if configure "$asan_build" -DCMAKE_BUILD_TYPE=Release -DBRAINALIGN_SANITIZE=ON &&
   cmake --build "$asan_build" -j "$jobs"; then
  cd "$asan_build"
  ctest_args=(--timeout 1200 -j "$jobs")
  [ -n "$exclude" ] && ctest_args+=(-E "$exclude")
  echo "-- labels $labels, full stacks"
  full_stacks ctest "${ctest_args[@]}" --output-on-failure -L "$labels" || status=1
  cd "$here"
else
  echo "sanitizers: the ASan/UBSan build failed"
  status=1
fi

if [ "${BA_SKIP_FUZZ:-0}" != 1 ]; then
  echo "== fuzz: libFuzzer build in $fuzz_build, ${BA_FUZZ_SECONDS:-6} s per target"
  if ! command -v clang > /dev/null; then
    echo "fuzz: clang not found: install the Debian packages clang and libclang-rt-14-dev"
    status=1
  elif configure "$fuzz_build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
                 -DBRAINALIGN_FUZZ=ON -DBA_FUZZ_SECONDS="${BA_FUZZ_SECONDS:-6}" &&
       cmake --build "$fuzz_build" -j "$jobs" --target fuzz_all; then
    # libFuzzer runs one target at a time; each test prints its final stats.
    (cd "$fuzz_build" && ctest --output-on-failure -L fuzz) || status=1
  else
    echo "fuzz: the libFuzzer build failed"
    status=1
  fi
fi
exit $status
