#!/usr/bin/env bash
# run_slurm_test.sh BRAINALIGN SOURCE_DIR PYTHON MPIEXEC...
#
# The SLURM array jobs of jobs/ on a real, single-node SLURM started here:
# munged with a generated key, slurmctld and slurmd in the foreground (no
# systemd), with a generated slurm.conf and cgroup.conf, all in a temporary
# directory, on free ports, with the machine's real CPUs and memory. Then:
#
#  1. jobs/submit-study.sh submits the synthetic demo study
#     (configs/synthetic-demo.ini with its output moved here): the features
#     array (synth), the fit array (subjects x layers, each task an MPI job
#     under mpirun) after it, and the compare job after every fit;
#  2. every job must end COMPLETED within the time limit; there must be a
#     scores file for every fit task and a summary written by the compare
#     job; scores, region tables and summary must agree with
#     `brainalign run` on the same configuration (tests/slurm/check_outputs.py);
#  3. a study whose BOLD files do not exist: the fit tasks must fail, the
#     compare job must be cancelled by its dependency, no summary written.
#
# The daemons are stopped (and their jobs cancelled) on every exit. If
# SLURM or munge is not installed or a daemon does not start, the test
# FAILS and says why: it never passes without running the jobs.
set -euo pipefail

if [ $# -lt 4 ]; then
  echo "usage: $0 BRAINALIGN SOURCE_DIR PYTHON MPIEXEC..." >&2
  exit 2
fi
brainalign=$(realpath "$1")
source_dir=$(realpath "$2")
python=$3
shift 3
mpiexec=("$@")
job_limit_s=${BA_SLURM_TEST_JOB_LIMIT:-200}
t_start=$(date +%s)

fail() { echo "FAIL (slurm test): $*" >&2; exit 1; }
say() { echo "[slurm test $(($(date +%s) - t_start))s] $*"; }

# ---------------------------------------------------------------- tools
missing=()
for tool in munged mungekey munge unmunge slurmctld slurmd sbatch squeue scontrol sinfo scancel; do
  command -v "$tool" > /dev/null || missing+=("$tool")
done
((${#missing[@]} == 0)) ||
  fail "not installed: ${missing[*]} (Debian packages munge slurmctld slurmd slurm-client; tools/setup.sh installs them)"

# ---------------------------------------------------------------- cleanup
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ba-slurm.XXXXXX")
chmod 755 "$tmp"  # munged wants every user to reach its socket directory
munged_pid="" slurmctld_pid="" slurmd_pid=""
export SLURM_CONF=$tmp/slurm.conf

show_logs() {
  for f in "$tmp"/log/*.log "$tmp"/*/logs/*.out; do
    [ -f "$f" ] || continue
    echo "---- $f (last 40 lines)"
    tail -n 40 "$f"
  done
}

stop_pid() {  # stop_pid PID: TERM, wait up to 10 s, then KILL
  local pid=$1
  [ -n "$pid" ] && kill -0 "$pid" 2> /dev/null || return 0
  kill -TERM "$pid" 2> /dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2> /dev/null || break; sleep 0.2; done
  kill -KILL "$pid" 2> /dev/null || true
  wait "$pid" 2> /dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$slurmctld_pid" ] && kill -0 "$slurmctld_pid" 2> /dev/null; then
    # Cancel what is left so no job step outlives the daemons.
    local jobs
    jobs=$(squeue -h -o %A 2> /dev/null | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
      # shellcheck disable=SC2086
      scancel $jobs 2> /dev/null || true
      for _ in $(seq 30); do
        [ -z "$(squeue -h -o %A 2> /dev/null)" ] && break
        sleep 0.5
      done
    fi
  fi
  ((rc == 0)) || show_logs
  stop_pid "$slurmd_pid"
  stop_pid "$slurmctld_pid"
  stop_pid "$munged_pid"
  if ((rc == 0)) && [ -z "${BA_SLURM_TEST_KEEP:-}" ]; then rm -rf "$tmp"
  else echo "slurm test: files kept in $tmp" >&2; fi
  say "done (exit $rc)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- munge
mkdir -p "$tmp/munge" "$tmp/state" "$tmp/spool" "$tmp/log"
chmod 755 "$tmp/munge"
socket=$tmp/munge/munge.socket
mungekey --create --keyfile="$tmp/munge/munge.key" > /dev/null 2>&1 ||
  fail "mungekey could not create a key in $tmp/munge"
chmod 600 "$tmp/munge/munge.key"
munged --foreground --key-file="$tmp/munge/munge.key" --socket="$socket" \
  --pid-file="$tmp/munge/munged.pid" --seed-file="$tmp/munge/munged.seed" \
  --log-file="$tmp/log/munged.log" > "$tmp/log/munged.out" 2>&1 &
munged_pid=$!
for _ in $(seq 50); do [ -S "$socket" ] && break; sleep 0.1; done
{ [ -S "$socket" ] && kill -0 "$munged_pid" 2> /dev/null; } ||
  fail "munged did not start: $(cat "$tmp/log/munged.out" "$tmp/log/munged.log" 2> /dev/null)"
munge -n -S "$socket" | unmunge -S "$socket" > /dev/null ||
  fail "munge cannot encode and decode a credential through $socket"
say "munged up (pid $munged_pid)"

# ---------------------------------------------------------------- slurm.conf
port_free() { ! (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }
ctld_port="" slurmd_port=""
for _ in $(seq 50); do
  p=$((20000 + RANDOM % 30000))
  if port_free "$p" && port_free "$((p + 1))"; then ctld_port=$p slurmd_port=$((p + 1)); break; fi
done
[ -n "$ctld_port" ] || fail "no two free TCP ports found"

# The node as slurmd sees this machine (CPUs, sockets, cores, memory).
node_line=$(slurmd -C 2> /dev/null | head -n 1)
[[ "$node_line" == NodeName=* ]] || fail "slurmd -C did not describe this machine: $node_line"
node=${node_line%% *}
node=${node#NodeName=}
cpus=$(grep -o 'CPUs=[0-9]*' <<< "$node_line" | cut -d= -f2)

fill() {  # fill TEMPLATE OUT
  sed -e "s|@CLUSTER@|batest$$|g" -e "s|@NODE@|$node|g" -e "s|@NODE_LINE@|$node_line|g" \
      -e "s|@CTLD_PORT@|$ctld_port|g" -e "s|@SLURMD_PORT@|$slurmd_port|g" \
      -e "s|@USER@|$(id -un)|g" -e "s|@MUNGE_SOCKET@|$socket|g" -e "s|@DIR@|$tmp|g" "$1" > "$2"
}
fill "$source_dir/tests/slurm/slurm.conf.in" "$tmp/slurm.conf"
fill "$source_dir/tests/slurm/cgroup.conf.in" "$tmp/cgroup.conf"

# ---------------------------------------------------------------- daemons
slurmctld -D -f "$tmp/slurm.conf" > "$tmp/log/slurmctld.out" 2>&1 &
slurmctld_pid=$!
slurmd -D -f "$tmp/slurm.conf" -N "$node" > "$tmp/log/slurmd.out" 2>&1 &
slurmd_pid=$!
state=""
for _ in $(seq 120); do
  kill -0 "$slurmctld_pid" 2> /dev/null ||
    fail "slurmctld exited: $(cat "$tmp/log/slurmctld.out"; tail -n 20 "$tmp/log/slurmctld.log" 2> /dev/null)"
  kill -0 "$slurmd_pid" 2> /dev/null ||
    fail "slurmd exited: $(cat "$tmp/log/slurmd.out"; tail -n 20 "$tmp/log/slurmd.log" 2> /dev/null)"
  state=$(sinfo -h -n "$node" -o %T 2> /dev/null || true)
  [ "$state" = idle ] && break
  sleep 0.5
done
[ "$state" = idle ] || fail "node $node not idle after 60 s (state '$state')"
say "slurm up: node $node ($cpus CPUs) idle, controller on port $ctld_port"

# ---------------------------------------------------------------- the study
# The demo configuration, its output moved into the test directory.
mkdir -p "$tmp/study"
sed -e 's|^output *=.*|output = run|' "$source_dir/configs/synthetic-demo.ini" > "$tmp/study/demo.ini"
grep -q '^output = run$' "$tmp/study/demo.ini" || fail "configs/synthetic-demo.ini has no 'output =' line"
cp "$tmp/study/demo.ini" "$tmp/study/reference.ini"
sed -i 's|^output = run$|output = reference|' "$tmp/study/reference.ini"

if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OPENBLAS_NUM_THREADS=1

say "reference: ${mpiexec[*]} -n 2 brainalign run (outside SLURM)"
"${mpiexec[@]}" -n 2 "$brainalign" run "$tmp/study/reference.ini" --quiet > "$tmp/log/reference.out" 2>&1 ||
  fail "brainalign run of the reference failed: $(tail -n 20 "$tmp/log/reference.out")"

# Every fit task is a 2-rank MPI job: the node's CPUs, so they run in turn.
export BRAINALIGN=$brainalign BA_FIT_NTASKS=$((cpus >= 2 ? 2 : 1)) BA_FIT_TIME=10 BA_FEATURES_TIME=10 \
       BA_COMPARE_TIME=10

# wait_jobs ID...: until none of the jobs is pending or running, or the limit.
wait_jobs() {
  local ids
  ids=$(IFS=,; echo "$*")
  local deadline=$(($(date +%s) + job_limit_s))
  while [ -n "$(squeue -h -j "$ids" -o %A 2> /dev/null)" ]; do
    (($(date +%s) < deadline)) || fail "jobs $ids still queued or running after ${job_limit_s} s: $(squeue)"
    sleep 1
  done
}

# job_states ID: the state of every task of the job, one per line.
job_states() { scontrol -o show job "$1" | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }

# stage_ids OUTPUT STAGE: the job ids submit-study.sh printed for STAGE.
stage_ids() { awk -v s="$2" '$1 == s { $1 = ""; print }' <<< "$1"; }

say "submitting the demo study: jobs/submit-study.sh"
submitted=$(cd "$tmp/study" && "$source_dir/jobs/submit-study.sh" demo.ini) ||
  fail "jobs/submit-study.sh failed"
echo "$submitted"
read -r -a features_ids <<< "$(stage_ids "$submitted" features)"
read -r -a fit_ids <<< "$(stage_ids "$submitted" fit)"
read -r -a compare_ids <<< "$(stage_ids "$submitted" compare)"
((${#features_ids[@]} == 1 && ${#fit_ids[@]} == 1 && ${#compare_ids[@]} == 1)) ||
  fail "submit-study.sh should print one job id per stage, printed: $submitted"
n_fit=$("$brainalign" tasks "$tmp/study/demo.ini" --stage fit --count)
((n_fit == 6)) || fail "the demo should have 6 fit tasks (2 subjects x 3 layers), tasks says $n_fit"

wait_jobs "${features_ids[0]}" "${fit_ids[0]}" "${compare_ids[0]}"
say "the study's jobs left the queue"
for id in "${features_ids[0]}" "${fit_ids[0]}" "${compare_ids[0]}"; do
  states=$(job_states "$id" | sort | uniq -c | tr -s ' \n' ' ')
  [ "$(job_states "$id" | grep -vc '^COMPLETED$')" -eq 0 ] || fail "job $id did not complete: $states"
done
[ "$(job_states "${fit_ids[0]}" | wc -l)" -eq "$n_fit" ] ||
  fail "the fit array ran $(job_states "${fit_ids[0]}" | wc -l) tasks, not $n_fit"
grep -q "wrote $tmp/study/run/summary.md" "$tmp/study/run/logs/ba-compare-${compare_ids[0]}.out" ||
  fail "the compare job's log does not say it wrote the summary"
"$brainalign" tasks "$tmp/study/demo.ini" --stage fit > "$tmp/study/fit-tasks.tsv"
"$python" "$source_dir/tests/slurm/check_outputs.py" "$tmp/study/run" "$tmp/study/reference" \
  "$tmp/study/fit-tasks.tsv" || fail "the array jobs' outputs are wrong (above)"
say "all ${n_fit} fits and the summary agree with brainalign run"

# ---------------------------------------------------------------- a failing study
cat > "$tmp/study/broken.ini" << 'EOF'
[study]
name = missing BOLD
output = broken
[features]
path = run/synth/features.h5
[fit]
layers = 2
[bold]
subjects = sub-01, sub-02
path = no-such-dir/bold-{subject}.h5
EOF
say "submitting a study whose BOLD files are missing"
submitted=$(cd "$tmp/study" && "$source_dir/jobs/submit-study.sh" broken.ini) ||
  fail "jobs/submit-study.sh failed on the broken study"
echo "$submitted"
[ "$(stage_ids "$submitted" features | tr -d ' ')" = none ] ||
  fail "a [features] study has no features job, submit-study.sh printed: $submitted"
read -r -a fit_ids <<< "$(stage_ids "$submitted" fit)"
read -r -a compare_ids <<< "$(stage_ids "$submitted" compare)"
wait_jobs "${fit_ids[0]}" "${compare_ids[0]}"
[ "$(job_states "${fit_ids[0]}" | sort -u)" = FAILED ] ||
  fail "the fits of missing BOLD files should fail, their states: $(job_states "${fit_ids[0]}" | tr '\n' ' ')"
[ "$(job_states "${compare_ids[0]}")" = CANCELLED ] ||
  fail "the compare job after failed fits should be cancelled, it is $(job_states "${compare_ids[0]}")"
[ ! -e "$tmp/study/broken/summary.md" ] || fail "a summary was written although the fits failed"
grep -q "no-such-dir/bold-sub-01.h5" "$tmp/study/broken/logs/ba-fit-${fit_ids[0]}_0.out" ||
  fail "the failed fit's log does not name the missing BOLD file"
say "failed fits: compare cancelled, no summary, the log names the missing file"
