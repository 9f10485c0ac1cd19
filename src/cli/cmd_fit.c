#include <stdio.h>
#include "commands.h"
int ba_cmd_fit(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "fit: not yet\n"); return 1; }
