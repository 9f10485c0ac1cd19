# finetune stage (issue 12): the independent torch oracle of the whole
# command (gradients of the first step, the log of 5 AdamW steps, the
# trained parameters; tests/oracle/finetune_oracle.py), and the CLI end to
# end: rank-count independence, restart after SIGTERM, bad inputs and a
# tiny model that learns (tests/e2e/finetune_cli.py).

set(BA_FINETUNE_ENV "OPENBLAS_NUM_THREADS=1;OMP_NUM_THREADS=1;OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1")
string(REPLACE ";" " " BA_MPIEXEC_TEXT "${BA_MPIEXEC}")

foreach(case "gpt2;f32;lora" "llama;bf16;lora" "gpt2;f32;freeze" "llama;f32;freeze" "llama;bf16;freeze")
  list(GET case 0 arch)
  list(GET case 1 dtype)
  list(GET case 2 method)
  set(name finetune.oracle_${arch}_${method}_${dtype})
  add_test(NAME ${name}
    COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/oracle/finetune_oracle.py
      --brainalign $<TARGET_FILE:brainalign> --data-dir ${BA_DATA_DIR}
      --workdir ${CMAKE_CURRENT_BINARY_DIR}/${name}
      --arch ${arch} --dtype ${dtype} --method ${method})
  set_tests_properties(${name} PROPERTIES LABELS "finetune;oracle" TIMEOUT 600
    ENVIRONMENT "${BA_FINETUNE_ENV}")
endforeach()

add_test(NAME finetune.oracle_gpt2_lora_f32_2ranks
  COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/oracle/finetune_oracle.py
    --brainalign $<TARGET_FILE:brainalign> --data-dir ${BA_DATA_DIR}
    --workdir ${CMAKE_CURRENT_BINARY_DIR}/finetune.oracle_2ranks
    --arch gpt2 --dtype f32 --method lora --mpiexec "${BA_MPIEXEC_TEXT} -n 2")
set_tests_properties(finetune.oracle_gpt2_lora_f32_2ranks PROPERTIES LABELS "finetune;oracle"
  PROCESSORS 2 TIMEOUT 600 ENVIRONMENT "${BA_FINETUNE_ENV}")

add_test(NAME finetune.e2e_cli
  COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/e2e/finetune_cli.py
    --brainalign $<TARGET_FILE:brainalign> --data-dir ${BA_DATA_DIR}
    --workdir ${CMAKE_CURRENT_BINARY_DIR}/finetune-cli -- ${BA_MPIEXEC})
set_tests_properties(finetune.e2e_cli PROPERTIES LABELS "finetune;e2e" PROCESSORS 2
  TIMEOUT 900 ENVIRONMENT "${BA_FINETUNE_ENV}")

# --grad-accum: 2 micro-batches of a batch of 4 give the torch step of the
# whole batch.
add_test(NAME finetune.oracle_gpt2_lora_f32_accum
  COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/oracle/finetune_oracle.py
    --brainalign $<TARGET_FILE:brainalign> --data-dir ${BA_DATA_DIR}
    --workdir ${CMAKE_CURRENT_BINARY_DIR}/finetune.oracle_accum
    --arch gpt2 --dtype f32 --method lora --batch 4 --grad-accum 2 --targets c_attn,c_proj,c_fc)
set_tests_properties(finetune.oracle_gpt2_lora_f32_accum PROPERTIES LABELS "finetune;oracle"
  TIMEOUT 600 ENVIRONMENT "${BA_FINETUNE_ENV}")
