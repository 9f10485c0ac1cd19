/* fault.h — fault injection for testing that every stage fails together.
 *
 * In a build with BRAINALIGN_FAULT_INJECTION defined (the CMake option of
 * that name: on in Debug and sanitizer builds), the environment variable
 *
 *   BRAINALIGN_FAIL_AT=site:rank      e.g. fit.ridge.voxels:1
 *
 * makes ba_fault(site, err) fail with BA_ERR_INTERNAL "fault injected at
 * <site> on rank <rank> (BRAINALIGN_FAIL_AT)" on exactly that rank of
 * MPI_COMM_WORLD, each time that site is reached; everywhere else, and in
 * every other build, it returns BA_OK (in other builds it compiles to
 * nothing). Sites sit inside the collective phases of each stage, where
 * one rank failing alone is what must not hang the others:
 *
 *   features.story      per story, before the hidden states are gathered
 *   fit.ridge.features  the feature side of the ridge fit
 *   fit.ridge.voxels    the voxel side of the ridge fit
 *   fit.scores          writing the scores
 *   import.subject      per subject of an import
 *   compare.inputs      reading the score files to compare
 *   synth.subject       per synthetic subject
 *
 * A malformed BRAINALIGN_FAIL_AT fails every site with a message saying so. */
#ifndef BRAINALIGN_FAULT_H
#define BRAINALIGN_FAULT_H

#include "brainalign/core/error.h"

#ifdef BRAINALIGN_FAULT_INJECTION
ba_status ba_fault_at(const char *file, int line, const char *func, const char *site,
                      ba_error *err);
#define ba_fault(site, err) ba_fault_at(BA_HERE, (site), (err))
#else
#define ba_fault(site, err) ((void)(err), BA_OK)
#endif

#endif
