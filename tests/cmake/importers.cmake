# BOLD importers, atlas readers and brain maps: nibabel is the oracle for
# `brainalign import` and `brainalign maps` (tests/oracle/nibabel_importers.py
# writes the NIfTI/GIfTI/.annot files, runs the CLI, and reads back with
# nibabel; Python is only a test oracle).
set(BA_IMPORT_ENV "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1;OPENBLAS_NUM_THREADS=1")
foreach(case gifti nifti hdf5 annot labels maps bad)
  add_test(NAME importers.nibabel_${case}
           COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/oracle/nibabel_importers.py
                   $<TARGET_FILE:brainalign> ${BA_MPIEXEC} -- ${case})
  set_tests_properties(importers.nibabel_${case} PROPERTIES LABELS importers TIMEOUT 300
    ENVIRONMENT "${BA_IMPORT_ENV}")
endforeach()
# The unit test initialises MPI as a singleton.
set_tests_properties(unit.test_importers PROPERTIES ENVIRONMENT "${BA_IMPORT_ENV}")
