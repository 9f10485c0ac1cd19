# Hostile input (issue 16): crafted files and options through the command line
# (tests/e2e/hostile_inputs.py). The crafted HDF5 inputs are kept under
# tests/fuzz/corpus/hostile (see tests/fuzz/README.md).
foreach(case features-shapes huge-dims timing checkpoint compare full-disk features-nan)
  add_test(NAME e2e.hostile_${case}
           COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/e2e/hostile_inputs.py
                   $<TARGET_FILE:brainalign> ${BA_MPIEXEC} -- ${case})
  set_tests_properties(e2e.hostile_${case} PROPERTIES LABELS e2e TIMEOUT 900
                       SKIP_RETURN_CODE 77
                       ENVIRONMENT "BA_DATA_DIR=${BA_DATA_DIR};OMP_NUM_THREADS=1")
endforeach()
