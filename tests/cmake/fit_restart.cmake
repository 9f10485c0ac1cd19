# A fit stopped by SIGTERM resumes from its checkpoint with identical results.
add_test(NAME e2e.fit_restart
         COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/e2e/fit_restart.py
                 $<TARGET_FILE:brainalign> ${BA_MPIEXEC})
set_tests_properties(e2e.fit_restart PROPERTIES LABELS e2e TIMEOUT 900)
