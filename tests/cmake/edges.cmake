# Real data at the edges (issue 15): the silent or wrong behaviours, each
# checked against nibabel/h5py/numpy (test oracles only) by tests/e2e/edges_*.py.
set(BA_EDGES_ENV "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1;OPENBLAS_NUM_THREADS=1")
foreach(case gifti_external trims tr_header)
  add_test(NAME edges.import_${case}
           COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/e2e/edges_import.py
                   $<TARGET_FILE:brainalign> ${case})
  set_tests_properties(edges.import_${case} PROPERTIES LABELS edges TIMEOUT 300
    ENVIRONMENT "${BA_EDGES_ENV}")
endforeach()
foreach(case folders p_floor excluded)
  add_test(NAME edges.outputs_${case}
           COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/e2e/edges_outputs.py
                   $<TARGET_FILE:brainalign> ${case})
  set_tests_properties(edges.outputs_${case} PROPERTIES LABELS edges TIMEOUT 300
    ENVIRONMENT "${BA_EDGES_ENV}")
endforeach()
foreach(case stories nan constant)
  add_test(NAME edges.fit_${case}
           COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/e2e/edges_fit.py
                   $<TARGET_FILE:brainalign> ${BA_MPIEXEC} -- ${case})
  set_tests_properties(edges.fit_${case} PROPERTIES LABELS edges TIMEOUT 600
    ENVIRONMENT "${BA_EDGES_ENV}")
endforeach()
add_test(NAME edges.features_condition
         COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/e2e/edges_features.py
                 $<TARGET_FILE:brainalign> ${BA_DATA_DIR})
set_tests_properties(edges.features_condition PROPERTIES LABELS edges TIMEOUT 600
  ENVIRONMENT "${BA_EDGES_ENV}")
add_test(NAME edges.bench_binary
         COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/e2e/edges_bench.py
                 $<TARGET_FILE:brainalign> ${PROJECT_SOURCE_DIR})
set_tests_properties(edges.bench_binary PROPERTIES LABELS edges TIMEOUT 300
  ENVIRONMENT "${BA_EDGES_ENV}")
