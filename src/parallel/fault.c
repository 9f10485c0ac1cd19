/* fault.c — BRAINALIGN_FAIL_AT=site:rank fault injection (see fault.h). */
#include "brainalign/parallel/fault.h"

#ifdef BRAINALIGN_FAULT_INJECTION

#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/core/parse.h"

ba_status ba_fault_at(const char *file, int line, const char *func, const char *site,
                      ba_error *err)
{
    const char *spec = getenv("BRAINALIGN_FAIL_AT");
    if (!spec || !*spec) return BA_OK;
    const char *colon = strrchr(spec, ':');
    int rank = -1;
    if (!colon || colon == spec || !ba_parse_int(colon + 1, 0, INT_MAX, &rank))
        return ba_fail_at(file, line, func, err, BA_ERR_USAGE,
                          "BRAINALIGN_FAIL_AT='%s': expected site:rank, e.g. fit.scores:1", spec);
    if (strlen(site) != (size_t)(colon - spec) || strncmp(spec, site, strlen(site)) != 0)
        return BA_OK;
    int me = 0, up = 0;
    MPI_Initialized(&up);
    if (up) MPI_Comm_rank(MPI_COMM_WORLD, &me);
    if (me != rank) return BA_OK;
    return ba_fail_at(file, line, func, err, BA_ERR_INTERNAL,
                      "fault injected at %s on rank %d (BRAINALIGN_FAIL_AT)", site, rank);
}

#else
typedef int ba_fault_unused; /* ISO C wants a translation unit to declare something */
#endif
