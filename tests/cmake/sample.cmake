# Sampling (src/lm/sample.c): Hugging Face's logits processors, greedy and
# seeded draws against a numpy implementation (tests/oracle/sample_oracle.py)
# through the dump helper tests/oracle/sample_dump.c.
set(BA_TEST_LAYER_sample_dump ba_lm)
ba_test_executable(sample_dump ${PROJECT_SOURCE_DIR}/tests/oracle/sample_dump.c)
add_test(NAME oracle.sample_hf_processors
  COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/oracle/sample_oracle.py
          $<TARGET_FILE:sample_dump> ${CMAKE_CURRENT_BINARY_DIR}/sample-oracle)
set_tests_properties(oracle.sample_hf_processors PROPERTIES LABELS "oracle;sample")
