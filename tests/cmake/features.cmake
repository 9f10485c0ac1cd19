# features stage: the torch oracle on excerpts of two real Narratives
# stories (1 and 2 ranks, with and without BOS, words/onsets/attributes)
# and bad inputs through the CLI (tests/oracle/features_oracle.py). The
# window rule itself is tested in tests/mpi/test_features_windows.c.
add_test(NAME features.oracle
  COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/oracle/features_oracle.py
    --brainalign $<TARGET_FILE:brainalign> --data ${BA_DATA_DIR}
    --workdir ${CMAKE_CURRENT_BINARY_DIR}/features-oracle -- ${BA_MPIEXEC})
set_tests_properties(features.oracle PROPERTIES LABELS "features;oracle" PROCESSORS 2
  ENVIRONMENT "OPENBLAS_NUM_THREADS=1;OMP_NUM_THREADS=1;OMPI_MCA_rmaps_base_oversubscribe=1")
