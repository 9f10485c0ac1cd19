/* The same tests as test_ridge_petsc.c, run on 1 rank. */
#include "test_ridge_petsc.c"
