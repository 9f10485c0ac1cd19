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

# --matmul bf16 through the CLI on a small BF16 LLaMA: same features with 1
# and 2 ranks and threads, within bfloat16 rounding of the float32 ones,
# recorded in the file; refusals (tests/e2e/features_matmul.py). Skipped
# (exit 77) on CPUs without AVX512-BF16.
add_test(NAME features.matmul_bf16
  COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/e2e/features_matmul.py
    --brainalign $<TARGET_FILE:brainalign> --data ${BA_DATA_DIR}
    --workdir ${CMAKE_CURRENT_BINARY_DIR}/features-matmul -- ${BA_MPIEXEC})
set_tests_properties(features.matmul_bf16 PROPERTIES LABELS "features;e2e" PROCESSORS 2
  SKIP_RETURN_CODE 77
  ENVIRONMENT "OMP_NUM_THREADS=1;OMPI_MCA_rmaps_base_oversubscribe=1")
