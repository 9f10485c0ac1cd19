# Model module: the GPT-2 forward pass against an independent torch oracle
# (tests/oracle/gpt2_oracle.py), on random checkpoints written by
# `brainalign checkpoint` in every weight dtype, single and sharded.

ba_test_executable(gpt2_dump ${PROJECT_SOURCE_DIR}/tests/oracle/gpt2_dump.c)

set(BA_MODEL_ORACLE ${PROJECT_SOURCE_DIR}/tests/oracle/gpt2_oracle.py)

# name:extra oracle arguments, comma-separated. Weights with std 0.25 make
# attention far from uniform and MLP inputs O(1), so that a wrong attention
# scale, norm epsilon or GELU variant moves the outputs by > 1e-3 (at
# GPT-2's 0.02 some such bugs stay under 1e-4); the last case keeps GPT-2's
# scale and its real 50257-token vocabulary (25 output-layer chunks).
set(BA_MODEL_ORACLE_CASES
  "f32:--dtype,f32,--init-std,0.25,--errors"
  "f16:--dtype,f16,--init-std,0.25"
  "bf16:--dtype,bf16,--init-std,0.25"
  "f32_2shards:--dtype,f32,--shards,2,--init-std,0.25"
  "bf16_3shards_gpt2vocab:--dtype,bf16,--shards,3,--vocab-from,${BA_DATA_DIR}/gpt2-tokenizer")

foreach(case IN LISTS BA_MODEL_ORACLE_CASES)
  string(FIND "${case}" ":" colon)
  string(SUBSTRING "${case}" 0 ${colon} name)
  math(EXPR rest_begin "${colon} + 1")
  string(SUBSTRING "${case}" ${rest_begin} -1 extra)
  string(REPLACE "," ";" extra "${extra}")
  add_test(NAME model.gpt2_oracle.${name}
    COMMAND ${BA_PYTHON} ${BA_MODEL_ORACLE}
      --brainalign $<TARGET_FILE:brainalign> --dump $<TARGET_FILE:gpt2_dump>
      --workdir ${CMAKE_CURRENT_BINARY_DIR}/model-oracle/${name} ${extra})
  set_tests_properties(model.gpt2_oracle.${name} PROPERTIES LABELS "model;oracle"
    ENVIRONMENT "OPENBLAS_NUM_THREADS=1;OMP_NUM_THREADS=1")
endforeach()

# Usage errors of the subcommand: exit code 2 for bad options, a clear
# message for inconsistent shapes, and no output directory either way.
set(BA_MODEL_NEVER ${CMAKE_CURRENT_BINARY_DIR}/model-usage/never)
add_test(NAME model.checkpoint_usage_errors
  COMMAND sh -c "b=\"$0\"; out=\"$1\"; \
\"$b\" checkpoint --out \"$out\" --vocab-size 10 --dtype f8 2>/dev/null; test $? -eq 2 || exit 1; \
\"$b\" checkpoint --out \"$out\" --vocab-size 10 --d-model 64 --heads 3 2>&1 | \
grep -q 'not a multiple of the 3 heads' || exit 1; test ! -e \"$out\""
  $<TARGET_FILE:brainalign> ${BA_MODEL_NEVER})
# (Open MPI's start-up allocations are never freed: no leak check here.)
set_tests_properties(model.checkpoint_usage_errors PROPERTIES LABELS model
  ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0")

# tie_word_embeddings = false in config.json with no lm_head.weight is an
# error naming the tensor, never a silent tie to the embeddings.
set(BA_MODEL_UNTIED ${CMAKE_CURRENT_BINARY_DIR}/model-untied)
add_test(NAME model.gpt2_untied_without_lm_head
  COMMAND sh -c "b=\"$0\"; d=\"$1\"; dump=\"$2\"; py=\"$3\"; rm -rf \"$d\"; mkdir -p \"$d\"; \
\"$b\" checkpoint --out \"$d/ckpt\" --vocab-size 50 --layers 1 --d-model 16 --heads 2 >/dev/null || exit 1; \
\"$py\" -c 'import json,sys; p=sys.argv[1]; c=json.load(open(p)); c[\"tie_word_embeddings\"]=False; json.dump(c,open(p,\"w\"))' \"$d/ckpt/config.json\" || exit 1; \
\"$py\" -c 'import numpy; numpy.arange(4,dtype=\"<i4\").tofile(\"'\"$d\"'/t.i32\")' || exit 1; \
out=$(\"$dump\" \"$d/ckpt\" \"$d/t.i32\" \"$d/out\" 2>&1); test $? -ne 0 || exit 1; \
echo \"$out\" | grep -q \"no tensor 'lm_head.weight'\""
  $<TARGET_FILE:brainalign> ${BA_MODEL_UNTIED} $<TARGET_FILE:gpt2_dump> ${BA_PYTHON})
set_tests_properties(model.gpt2_untied_without_lm_head PROPERTIES LABELS model
  ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0")
