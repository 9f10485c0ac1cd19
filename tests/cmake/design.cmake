# The design matrix (words to TRs: sum, mean, Lanczos; delays; stories)
# against an independent numpy implementation.
add_test(NAME oracle.design_numpy
         COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/oracle/design_oracle.py $<TARGET_FILE:brainalign>)
set_tests_properties(oracle.design_numpy PROPERTIES LABELS oracle)
