# Fault injection: every stage fails together (parallel/fault.h).
#
# In a build with BRAINALIGN_FAULT_INJECTION (on in Debug and sanitizer
# builds), each test runs one stage of `brainalign` under `mpiexec -n 2` with
# BRAINALIGN_FAIL_AT=<site>:<rank>, the environment variable that makes that
# named site fail on that one rank. It asserts that
#   - every rank exits non-zero (each rank's exit status is written to a file
#     by a shell wrapper, so mpiexec's own status does not hide one),
#   - rank 0 prints the one message, the injected one, exactly once (so the
#     failing rank's error reached the others through the error agreement),
#   - nothing hangs (TIMEOUT; a hang is a missing agreement in that stage).
# fault.setup makes the small study the cases share (`brainalign synth`, a
# random 1-layer GPT-2 checkpoint, two word tables, two score files).
#
# This file is also the driver: tests run it with `cmake -P` and MODE set.

if(CMAKE_SCRIPT_MODE_FILE)
  # ---- driver -----------------------------------------------------------
  # BA, WORK, MPIEXEC (;-list), and for MODE=case: SITE, RANK, STAGE.
  function(run_checked)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE errout)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "setup step failed (${rc}): ${ARGN}\n${out}\n${errout}")
    endif()
  endfunction()
  string(REPLACE "|" ";" mpiexec "${MPIEXEC}")
  set(study ${WORK}/study)
  if(MODE STREQUAL "setup")
    file(REMOVE_RECURSE ${WORK})
    file(MAKE_DIRECTORY ${WORK})
    run_checked(${BA} synth --out ${study} --stories 2 --words 300 --subjects 1 --voxels 64
                --regions 2 --d-model 8 --layers 2 --planted-layer 1 --assoc-regions 0 --quiet)
    run_checked(${BA} checkpoint --out ${WORK}/model --vocab-from ${DATA}/gpt2-tokenizer
                --layers 1 --d-model 16 --heads 2 --positions 64)
    file(MAKE_DIRECTORY ${WORK}/stimuli)
    foreach(story alpha beta)
      set(table "word\tonset\toffset\n")
      foreach(i RANGE 0 39)
        math(EXPR on "${i} * 3")
        math(EXPR off "${i} * 3 + 2")
        string(APPEND table "word${i}\t${on}.0\t${off}.0\n")
      endforeach()
      file(WRITE ${WORK}/stimuli/${story}.tsv "${table}")
    endforeach()
    foreach(condition baseline random)
      set(features ${study}/features.h5)
      if(condition STREQUAL "random")
        set(features ${study}/features-random.h5)
      endif()
      run_checked(${mpiexec} -n 2 ${BA} fit --features ${features} --bold ${study}/bold-sub-01.h5
                  --layer 1 --atlas ${study}/atlas.h5 --folds 2 --out ${WORK}/scores-${condition}.h5
                  --quiet)
    endforeach()
    return()
  endif()

  # MODE=case: one stage with one injected failure.
  set(out ${WORK}/out-${SITE}-${RANK})
  file(REMOVE_RECURSE ${out})
  file(MAKE_DIRECTORY ${out})
  if(STAGE STREQUAL "features")
    set(args features --model ${WORK}/model --stimuli ${WORK}/stimuli --context 16 --stride 8
             --out ${out}/features.h5 --quiet)
  elseif(STAGE STREQUAL "fit")
    set(args fit --features ${study}/features.h5 --bold ${study}/bold-sub-01.h5 --layer 1
             --atlas ${study}/atlas.h5 --folds 2 --voxel-block 16 --no-checkpoint
             --out ${out}/scores.h5 --quiet)
  elseif(STAGE STREQUAL "import")
    set(args import --format hdf5 --tr 1.5 --out ${out}/bold.h5
             --story one --file ${study}/bold-sub-01.h5 --dataset /stories/story01/data
             --story two --file ${study}/bold-sub-01.h5 --dataset /stories/story02/data --quiet)
  elseif(STAGE STREQUAL "compare")
    set(args compare --scores baseline=${WORK}/scores-baseline.h5
             --scores random=${WORK}/scores-random.h5 --atlas ${study}/atlas.h5
             --out ${out}/compare --quiet)
  elseif(STAGE STREQUAL "synth")
    set(args synth --out ${out}/synth --stories 2 --words 200 --subjects 2 --voxels 32
             --regions 2 --d-model 8 --layers 2 --planted-layer 1 --quiet)
  else()
    message(FATAL_ERROR "unknown stage ${STAGE}")
  endif()
  # Each rank writes its own exit status; the wrapper itself exits 0 so that
  # mpiexec lets every rank finish and report.
  set(wrapper "\"$0\" \"$@\"; echo $? > ${out}/rank-$OMPI_COMM_WORLD_RANK.rc")
  execute_process(
    COMMAND ${CMAKE_COMMAND} -E env BRAINALIGN_FAIL_AT=${SITE}:${RANK}
            ${mpiexec} -n 2 -x BRAINALIGN_FAIL_AT sh -c "${wrapper}" ${BA} ${args}
    RESULT_VARIABLE rc OUTPUT_VARIABLE stdout ERROR_VARIABLE stderr)
  set(log "mpiexec status ${rc}\n--- stdout\n${stdout}\n--- stderr\n${stderr}")
  foreach(r 0 1)
    if(NOT EXISTS ${out}/rank-${r}.rc)
      message(FATAL_ERROR "rank ${r} did not report an exit status\n${log}")
    endif()
    file(READ ${out}/rank-${r}.rc status)
    string(STRIP "${status}" status)
    if(status EQUAL 0)
      message(FATAL_ERROR "rank ${r} exited 0 although ${SITE} failed on rank ${RANK}\n${log}")
    endif()
  endforeach()
  set(expected "fault injected at ${SITE} on rank ${RANK} \\(BRAINALIGN_FAIL_AT\\)")
  string(REGEX MATCHALL "${expected}" hits "${stderr}")
  list(LENGTH hits n_hits)
  if(NOT n_hits EQUAL 1)
    message(FATAL_ERROR "expected the message '${expected}' once, found it ${n_hits} times\n${log}")
  endif()
  if(NOT stderr MATCHES "brainalign ${STAGE}: error \\(internal error\\): ${expected} \\[")
    message(FATAL_ERROR "the message is not the CLI's error line with its origin\n${log}")
  endif()
  message(STATUS "${SITE}:${RANK}: every rank exited non-zero with the one message")
  return()
endif()

# ---- the tests ----------------------------------------------------------
if(NOT BRAINALIGN_FAULT_INJECTION)
  return()
endif()
set(BA_FAULT_WORK ${CMAKE_CURRENT_BINARY_DIR}/fault)
string(REPLACE ";" "|" BA_FAULT_MPIEXEC "${BA_MPIEXEC}")
add_test(NAME fault.setup
  COMMAND ${CMAKE_COMMAND} -DMODE=setup -DBA=$<TARGET_FILE:brainalign> -DWORK=${BA_FAULT_WORK}
          -DDATA=${BA_DATA_DIR} -DMPIEXEC=${BA_FAULT_MPIEXEC} -P ${CMAKE_CURRENT_LIST_FILE})
set_tests_properties(fault.setup PROPERTIES LABELS "mpi;fault" FIXTURES_SETUP ba_fault_study
  PROCESSORS 2 TIMEOUT 300
  ENVIRONMENT "OPENBLAS_NUM_THREADS=1;OMP_NUM_THREADS=1;OMPI_MCA_rmaps_base_oversubscribe=1")
# stage site rank: the waiting rank 1 of the rank-0 stages (import, compare,
# synth) and the working rank 0 of the same stages, rank 1 everywhere else.
set(BA_FAULT_CASES
  "features features.story 1"
  "fit fit.ridge.features 1"
  "fit fit.ridge.voxels 1"
  "fit fit.scores 1"
  "import import 1"
  "import import.story 0"
  "compare compare 1"
  "compare compare.inputs 0"
  "synth synth 1"
  "synth synth.subject 0")
foreach(case ${BA_FAULT_CASES})
  string(REPLACE " " ";" fields "${case}")
  list(GET fields 0 stage)
  list(GET fields 1 site)
  list(GET fields 2 rank)
  set(test fault.${site}_rank${rank})
  add_test(NAME ${test}
    COMMAND ${CMAKE_COMMAND} -DMODE=case -DSTAGE=${stage} -DSITE=${site} -DRANK=${rank}
            -DBA=$<TARGET_FILE:brainalign> -DWORK=${BA_FAULT_WORK} -DDATA=${BA_DATA_DIR}
            -DMPIEXEC=${BA_FAULT_MPIEXEC} -P ${CMAKE_CURRENT_LIST_FILE})
  set_tests_properties(${test} PROPERTIES LABELS "mpi;fault" FIXTURES_REQUIRED ba_fault_study
    PROCESSORS 2 TIMEOUT 120
    ENVIRONMENT "OPENBLAS_NUM_THREADS=1;OMP_NUM_THREADS=1;OMPI_MCA_rmaps_base_oversubscribe=1")
endforeach()
