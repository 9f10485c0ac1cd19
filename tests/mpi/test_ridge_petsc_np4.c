/* The same tests as test_ridge_petsc.c, run on 4 ranks (one group of 4, 2 groups of 2, 4 of 1). */
#include "test_ridge_petsc.c"
