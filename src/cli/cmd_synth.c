#include <stdio.h>
#include "commands.h"
int ba_cmd_synth(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "synth: not yet\n"); return 1; }
