/* The same tests as test_ridge.c, run on 4 ranks (2x2 grid, or 2 groups of 2). */
#include "test_ridge.c"
