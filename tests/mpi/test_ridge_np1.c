/* The same tests as test_ridge.c, run on 1 rank (1x1 grid). */
#include "test_ridge.c"
