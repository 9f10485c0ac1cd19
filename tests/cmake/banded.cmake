# Banded ridge (`fit --bands`) and `--fold-gap` against an independent numpy
# brute force of the same candidates (tests/oracle/banded_oracle.py; Python
# is only a test oracle): n=300, p=2x20, v=200, 5 folds, a planted signal per
# band.
#   banded_oracle.grid_np{1,2,4}    4 x 4 grid (one grid per band)
#   banded_oracle.random_np{1,2,4}  20 band weights from a file x 4 alphas; random:20 --seed
#   banded_oracle.one_band          one band = plain fit, bitwise
#   banded_oracle.fold_gap          --fold-gap 7 (dense, PETSc, banded; primal and dual
#                                   forms) vs numpy; gap 0 = no gap, bitwise
#   banded_oracle.bad_specs         bad bands / candidates / gaps -> clear errors
set(BA_BANDED_ENV "OPENBLAS_NUM_THREADS=1;OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1")
function(ba_banded_test name check ranks)
  add_test(NAME banded_oracle.${name}
    COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/oracle/banded_oracle.py
            --check ${check} --ranks ${ranks} --brainalign $<TARGET_FILE:brainalign>
            --workdir ${PROJECT_BINARY_DIR}/banded-oracle-${name}
            -- ${BA_MPIEXEC})
  set_tests_properties(banded_oracle.${name} PROPERTIES
    LABELS "oracle;fit;banded" PROCESSORS ${ranks} TIMEOUT 600
    ENVIRONMENT "${BA_BANDED_ENV}")
endfunction()
foreach(np 1 2 4)
  ba_banded_test(grid_np${np} grid ${np})
  ba_banded_test(random_np${np} random ${np})
endforeach()
ba_banded_test(one_band one_band 2)
ba_banded_test(fold_gap fold_gap 2)
ba_banded_test(bad_specs bad_specs 2)
