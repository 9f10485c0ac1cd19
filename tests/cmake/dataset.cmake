# `brainalign dataset` (the Association instruction data) end to end on real
# Narratives stories: passages recomputed in Python, the train reader
# (replay build of fuzz_sft_jsonl) on the output, dedup and token-length
# filter counts against `brainalign tokenize`, the seeded split, bad inputs,
# and the histogram of tools/plot_dataset.py. The unit test
# tests/unit/test_dataset.c and the fuzz target fuzz.alpaca are picked up
# elsewhere (tests/CMakeLists.txt, fuzz.cmake).
add_test(NAME dataset.e2e_cli
         COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/e2e/dataset_cli.py
                 $<TARGET_FILE:brainalign> ${BA_DATA_DIR} $<TARGET_FILE:fuzz_sft_jsonl>
                 ${PROJECT_SOURCE_DIR}/tools/plot_dataset.py
                 ${PROJECT_BINARY_DIR}/dataset-e2e)
set_tests_properties(dataset.e2e_cli PROPERTIES LABELS "e2e;dataset" TIMEOUT 600
  ENVIRONMENT "OPENBLAS_NUM_THREADS=1;OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
