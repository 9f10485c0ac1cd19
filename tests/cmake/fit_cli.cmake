# End-to-end tests of synth + fit through the command line (tests/e2e/fit_cli.py).
foreach(case invariance ground-truth bad-input)
  add_test(NAME e2e.fit_${case}
           COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/e2e/fit_cli.py
                   $<TARGET_FILE:brainalign> ${BA_MPIEXEC} -- ${case})
  set_tests_properties(e2e.fit_${case} PROPERTIES LABELS e2e TIMEOUT 900)
endforeach()
