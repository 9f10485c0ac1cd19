/* test_scalapack.c on 4 ranks (a 2x2 grid). */
#include "test_scalapack.c"
