# Fuzz targets of the parsers that read untrusted files (tests/fuzz/, see its
# README): one executable fuzz_<parser> per tests/fuzz/fuzz_<parser>.c, and a
# CTest test fuzz.<parser> (label "fuzz") per target:
#   - ordinary and sanitizer builds link tests/fuzz/replay_main.c and replay
#     the seed corpus tests/fuzz/corpus/<parser>/ (regression inputs);
#   - a -DBRAINALIGN_FUZZ=ON build (clang) links libFuzzer and the test runs
#     the fuzzer for BA_FUZZ_SECONDS after replaying the seeds.
set(BA_FUZZ_DIR ${PROJECT_SOURCE_DIR}/tests/fuzz)
set(BA_FUZZ_SECONDS 6 CACHE STRING "Seconds each fuzz.* test fuzzes (BRAINALIGN_FUZZ builds)")
set(BA_FUZZ_TARGETS safetensors safetensors_index model_config tokenizer_gpt2 tokenizer_json
    tokenizer_sp tokenizer_sp_decode stimuli study_config annot label_table sft_jsonl adapter_config
    adapter alpaca)

add_custom_target(fuzz_all)
foreach(parser ${BA_FUZZ_TARGETS})
  set(exe fuzz_${parser})
  if(BRAINALIGN_FUZZ)
    add_executable(${exe} ${BA_FUZZ_DIR}/${exe}.c ${BA_FUZZ_DIR}/fuzz_util.c)
    target_link_options(${exe} PRIVATE -fsanitize=fuzzer)
  else()
    add_executable(${exe} ${BA_FUZZ_DIR}/${exe}.c ${BA_FUZZ_DIR}/fuzz_util.c
                   ${BA_FUZZ_DIR}/replay_main.c)
  endif()
  # src/ for the tokenizers' internal headers (reference encoders).
  target_include_directories(${exe} PRIVATE ${BA_FUZZ_DIR} ${PROJECT_SOURCE_DIR}/src)
  target_compile_options(${exe} PRIVATE ${BA_WARNINGS})
  # Each target links the layer of the parser it fuzzes, nothing more.
  set(layer ba_lm)
  if(parser MATCHES "^(stimuli|annot|label_table)$")
    set(layer ba_io)
  elseif(parser STREQUAL "study_config")
    set(layer ba_study)
  elseif(parser STREQUAL "sft_jsonl")
    set(layer ba_train)
  elseif(parser STREQUAL "alpaca")
    set(layer ba_pipeline)
  endif()
  target_link_libraries(${exe} PRIVATE ${layer})
  add_dependencies(fuzz_all ${exe})

  set(seeds ${BA_FUZZ_DIR}/corpus/${parser})
  if(BRAINALIGN_FUZZ)
    add_test(NAME fuzz.${parser}
      COMMAND ${BA_FUZZ_DIR}/run_fuzzer.sh $<TARGET_FILE:${exe}> ${seeds}
              ${PROJECT_BINARY_DIR}/fuzz-work/${parser} ${BA_FUZZ_SECONDS})
    set_tests_properties(fuzz.${parser} PROPERTIES TIMEOUT 300)
  else()
    add_test(NAME fuzz.${parser} COMMAND ${exe} ${seeds})
  endif()
  set_tests_properties(fuzz.${parser} PROPERTIES LABELS fuzz
    ENVIRONMENT "OPENBLAS_NUM_THREADS=1")
endforeach()
