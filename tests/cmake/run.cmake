# `brainalign run CONFIG` end to end on a synthetic study with real Narratives timings.
add_test(NAME e2e.run_synthetic_narratives
         COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/e2e/run_cli.py
                 $<TARGET_FILE:brainalign> ${BA_DATA_DIR} ${BA_MPIEXEC})
set_tests_properties(e2e.run_synthetic_narratives PROPERTIES LABELS e2e TIMEOUT 900)
