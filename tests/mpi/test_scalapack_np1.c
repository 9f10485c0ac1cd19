/* test_scalapack.c on 1 rank. */
#include "test_scalapack.c"
