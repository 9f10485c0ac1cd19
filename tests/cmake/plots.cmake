# The figure tool (tools/plot_scores.py): region bars and a volume mosaic.
add_test(NAME e2e.plots
         COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/e2e/plots.py $<TARGET_FILE:brainalign> ${BA_MPIEXEC})
set_tests_properties(e2e.plots PROPERTIES LABELS e2e TIMEOUT 300)
