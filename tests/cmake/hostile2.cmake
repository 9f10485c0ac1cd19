# Hostile input, part 2 (issue 16): path-component names, the INI reader,
# FIFOs, wrapping integer options, unwritable outputs, output locks and
# SIGTERM during features, through the command line (tests/e2e/hostile_inputs2.py).
foreach(case names ini fifo int-options outputs lock sigterm)
  add_test(NAME e2e.hostile2_${case}
           COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/e2e/hostile_inputs2.py
                   $<TARGET_FILE:brainalign> ${BA_MPIEXEC} -- ${case})
  set_tests_properties(e2e.hostile2_${case} PROPERTIES LABELS e2e TIMEOUT 900
                       ENVIRONMENT "BA_DATA_DIR=${BA_DATA_DIR};OMP_NUM_THREADS=1")
endforeach()
