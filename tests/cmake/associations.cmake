# Associative memory: the statistics of `compare` against SciPy, and the
# whole chain (synth with a planted association effect -> run with
# conditions -> compare) end to end. Unit tests (tests/unit/test_stats.c,
# tests/unit/test_associations.c) are picked up automatically.
add_test(NAME associations.stats_scipy
         COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/oracle/stats_oracle.py
                 --brainalign $<TARGET_FILE:brainalign>
                 --workdir ${PROJECT_BINARY_DIR}/stats-oracle)
set_tests_properties(associations.stats_scipy PROPERTIES LABELS "oracle;associations" TIMEOUT 300
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")

add_test(NAME associations.e2e_planted
         COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/e2e/associations_cli.py
                 $<TARGET_FILE:brainalign> ${BA_DATA_DIR} ${BA_MPIEXEC})
set_tests_properties(associations.e2e_planted PROPERTIES LABELS "e2e;associations"
  PROCESSORS 2 TIMEOUT 900
  ENVIRONMENT "OPENBLAS_NUM_THREADS=1;OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1")

# A [model] study with association conditions: features of the augmented
# text through `run`, reuse and recomputation, scores and comparison.
add_test(NAME associations.e2e_model
         COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/e2e/associations_model.py
                 $<TARGET_FILE:brainalign> ${BA_DATA_DIR} ${BA_MPIEXEC})
set_tests_properties(associations.e2e_model PROPERTIES LABELS "e2e;associations"
  PROCESSORS 2 TIMEOUT 900
  ENVIRONMENT "OPENBLAS_NUM_THREADS=1;OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1")
