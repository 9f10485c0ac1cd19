# Train module: AdamW, clipping and the learning-rate schedules against
# torch (tests/oracle/adamw_oracle.py driving tests/oracle/adamw_dump.c).
ba_test_executable(adamw_dump ${PROJECT_SOURCE_DIR}/tests/oracle/adamw_dump.c)
add_test(NAME train.adamw_oracle
  COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/oracle/adamw_oracle.py
          $<TARGET_FILE:adamw_dump> ${CMAKE_CURRENT_BINARY_DIR}/adamw-oracle)
set_tests_properties(train.adamw_oracle PROPERTIES LABELS "train;oracle"
  ENVIRONMENT "OMP_NUM_THREADS=1")

# PEFT LoRA adapters written by hand in numpy, read and re-written by the C
# (tests/oracle/adapter_oracle.py driving tests/oracle/adapter_dump.c).
ba_test_executable(adapter_dump ${PROJECT_SOURCE_DIR}/tests/oracle/adapter_dump.c)
add_test(NAME train.adapter_oracle
  COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/oracle/adapter_oracle.py
          $<TARGET_FILE:adapter_dump> ${CMAKE_CURRENT_BINARY_DIR}/adapter-oracle)
set_tests_properties(train.adapter_oracle PROPERTIES LABELS "train;oracle")
