#!/usr/bin/env bash
# submit-study.sh CONFIG — submit a whole study (the configuration of
# `brainalign run`) to SLURM as three jobs that wait for one another:
#
#   features  array over models x conditions  (jobs/features.sbatch)
#   fit       array over subjects x conditions x layers, after features
#             succeeded; each array task is an MPI job (jobs/fit.sbatch)
#   compare   region tables and summary.md, after every fit succeeded
#             (jobs/compare.sbatch)
#
# Prints one line per stage, "STAGE JOBID..." ("features none" when the
# configuration names a ready features file). A failed stage cancels the
# stages after it (--kill-on-invalid-dep). Resources come from the
# environment (see jobs/README.md), never from editing the scripts:
#   BRAINALIGN          the executable (default: brainalign on PATH)
#   BA_ENV              file sourced at the start of every job (module loads)
#   BA_MPI_LAUNCH       MPI launcher inside a job (default mpirun)
#   BA_ACCOUNT, BA_PARTITION, BA_QOS   for every job
#   BA_{FEATURES,FIT,COMPARE}_{NTASKS,CPUS,TIME,MEM}   per stage
#   BA_{FEATURES,FIT,COMPARE}_SBATCH_ARGS, BA_SBATCH_ARGS   extra sbatch options
#   BA_ARRAY_LIMIT      at most this many array tasks running at once
#   BA_LOG_DIR          job logs (default OUTPUT/logs)
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
  exit "${1:-2}"
}
die() { echo "submit-study: $*" >&2; exit 1; }

[ $# -eq 1 ] || usage 2
case "$1" in -h|--help) usage 0 ;; esac
[ -f "$1" ] || die "$1: no such configuration file"
config=$(realpath "$1")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

brainalign=$(command -v "${BRAINALIGN:-brainalign}") ||
  die "cannot find ${BRAINALIGN:-brainalign}: set BRAINALIGN=/path/to/brainalign or put it on PATH"
export BRAINALIGN=$brainalign   # the jobs run the same executable
command -v sbatch > /dev/null || die "sbatch not found: is this a SLURM login node?"

# The configuration is checked here, before anything is submitted.
output=$("$brainalign" tasks "$config" --output-dir)
n_features=$("$brainalign" tasks "$config" --stage features --count)
n_fit=$("$brainalign" tasks "$config" --stage fit --count)
logs=${BA_LOG_DIR:-$output/logs}
mkdir -p "$logs"

# The largest array SLURM accepts here (indices 0..MaxArraySize-1).
max_array=$(scontrol show config 2> /dev/null | awk '$1 == "MaxArraySize" {print $3}')
[[ "$max_array" =~ ^[0-9]+$ ]] && ((max_array > 0)) || max_array=1001

common=(--parsable --kill-on-invalid-dep=yes)
[ -n "${BA_ACCOUNT:-}" ] && common+=(--account="$BA_ACCOUNT")
[ -n "${BA_PARTITION:-}" ] && common+=(--partition="$BA_PARTITION")
[ -n "${BA_QOS:-}" ] && common+=(--qos="$BA_QOS")
read -r -a extra <<< "${BA_SBATCH_ARGS:-}"
common+=("${extra[@]}")

# The sbatch options of a stage from BA_<STAGE>_* (defaults after the colon).
stage_options() {
  local stage=$1 ntasks=$2 time=$3 v more
  local -n out=$4
  v=BA_${stage}_NTASKS; out=(--ntasks="${!v:-$ntasks}")
  v=BA_${stage}_CPUS; out+=(--cpus-per-task="${!v:-1}")
  v=BA_${stage}_TIME; out+=(--time="${!v:-$time}")
  v=BA_${stage}_MEM; [ -n "${!v:-}" ] && out+=(--mem="${!v}")
  v=BA_${stage}_SBATCH_ARGS; read -r -a more <<< "${!v:-}"
  out+=("${more[@]}")
}

# Submit tasks 0..n-1 of a stage as one array, or several when n is above
# MaxArraySize (each with BA_TASK_OFFSET); prints the job ids.
submit_array() {
  local stage=$1 n=$2 script=$3 dependency=$4 options ids=() offset size id
  stage_options "${stage^^}" "$5" "$6" options
  [ -n "$dependency" ] && options+=(--dependency="$dependency")
  for ((offset = 0; offset < n; offset += max_array)); do
    size=$((n - offset < max_array ? n - offset : max_array))
    id=$(sbatch "${common[@]}" "${options[@]}" \
           --array="0-$((size - 1))${BA_ARRAY_LIMIT:+%$BA_ARRAY_LIMIT}" \
           --export="ALL,BA_TASK_OFFSET=$offset" \
           --output="$logs/%x-%A_%a.out" "$here/$script" "$config") ||
      die "sbatch of the $stage stage failed"
    ids+=("${id%%;*}")
  done
  echo "${ids[*]}"
}

after() { local IFS=:; echo "afterok:$*"; }

features_ids=()
if ((n_features > 0)); then
  submitted=$(submit_array features "$n_features" features.sbatch "" 1 01:00:00) || exit 1
  read -r -a features_ids <<< "$submitted"
  echo "features ${features_ids[*]}"
else
  echo "features none"
fi
fit_dependency=""
((${#features_ids[@]})) && fit_dependency=$(after "${features_ids[@]}")
submitted=$(submit_array fit "$n_fit" fit.sbatch "$fit_dependency" 4 01:00:00) || exit 1
read -r -a fit_ids <<< "$submitted"
echo "fit ${fit_ids[*]}"

compare_options=()
stage_options COMPARE 1 00:30:00 compare_options
compare_id=$(sbatch "${common[@]}" "${compare_options[@]}" --dependency="$(after "${fit_ids[@]}")" \
               --output="$logs/%x-%j.out" "$here/compare.sbatch" "$config") ||
  die "sbatch of the compare stage failed"
echo "compare ${compare_id%%;*}"
echo "submit-study: $n_features features, $n_fit fit and 1 compare job(s); logs in $logs," \
     "results in $output" >&2
