# `brainalign fit` (design-matrix mode, 2 ranks) against an independent
# scikit-learn computation of the same procedure (StandardScaler + RidgeCV
# with one alpha per voxel, KFold(5) contiguous, Pearson r on the held-out
# fold): tests/oracle/sklearn_fit_oracle.py. Python is only a test oracle.
# n is not a multiple of 5, so the folds have unequal sizes.
#   fit_oracle.sklearn_dual    n=403, p=600 (n_train <= p: kernel form)
#   fit_oracle.sklearn_primal  n=603, p=100 (n_train > p: feature form)
#   fit_oracle.sklearn_mixed   n=403, p=322 (folds of both forms)
foreach(regime dual primal mixed)
  add_test(NAME fit_oracle.sklearn_${regime}
    COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/oracle/sklearn_fit_oracle.py
            --regime ${regime} --brainalign $<TARGET_FILE:brainalign>
            --workdir ${PROJECT_BINARY_DIR}/fit-oracle-${regime}
            -- ${BA_MPIEXEC})
  set_tests_properties(fit_oracle.sklearn_${regime} PROPERTIES
    LABELS "oracle;fit" PROCESSORS 2 TIMEOUT 120
    ENVIRONMENT "OPENBLAS_NUM_THREADS=1;OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1")
endforeach()
