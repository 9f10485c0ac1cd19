#!/usr/bin/env bash
# Run one libFuzzer target for a bounded time (the CTest tests fuzz.* of a
# -DBRAINALIGN_FUZZ=ON build, and the longer runs of the README).
#   run_fuzzer.sh EXE SEEDS WORKDIR SECONDS [extra libFuzzer flags...]
# The seed corpus SEEDS is only read: libFuzzer first replays every seed
# (the regression check), then mutates; new inputs go to WORKDIR/corpus and
# a crashing input to WORKDIR/crash-* (its path is printed). A dictionary
# tests/fuzz/<target>.dict is used when there is one.
set -euo pipefail
exe=$1 seeds=$2 work=$3 seconds=$4
shift 4
name=$(basename "$exe")
dict="$(dirname "$0")/${name#fuzz_}.dict"
mkdir -p "$work/corpus"
args=(-max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -max_len=16384
      -print_final_stats=1 -artifact_prefix="$work/")
[ -f "$dict" ] && args+=(-dict="$dict")
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
echo "run_fuzzer: $exe ${args[*]} $* $work/corpus $seeds"
exec "$exe" "${args[@]}" "$@" "$work/corpus" "$seeds"
