# SLURM array jobs (jobs/) run for real on a single-node SLURM that the test
# starts itself (munged, slurmctld, slurmd in a temporary directory) and
# stops on exit; compared with `brainalign run`. It fails, saying why, when
# SLURM or munge is missing or a daemon does not start. It runs daemons on
# free ports and takes the whole machine's CPUs: never beside other tests.
add_test(NAME slurm.array_jobs
         COMMAND ${PROJECT_SOURCE_DIR}/tests/slurm/run_slurm_test.sh
                 $<TARGET_FILE:brainalign> ${PROJECT_SOURCE_DIR} ${BA_PYTHON} ${BA_MPIEXEC})
set_tests_properties(slurm.array_jobs PROPERTIES LABELS slurm TIMEOUT 420 RUN_SERIAL TRUE
  ENVIRONMENT "OPENBLAS_NUM_THREADS=1")
