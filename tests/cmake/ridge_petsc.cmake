# End-to-end tests of `brainalign fit --solver petsc` (tests/e2e/fit_petsc_cli.py).
foreach(case agree options)
  add_test(NAME e2e.fit_petsc_${case}
           COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/e2e/fit_petsc_cli.py
                   $<TARGET_FILE:brainalign> ${BA_MPIEXEC} -- ${case})
  set_tests_properties(e2e.fit_petsc_${case} PROPERTIES LABELS e2e TIMEOUT 900)
endforeach()
