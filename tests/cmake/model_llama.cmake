# Model module, LLaMA: the forward pass against an independent torch oracle
# (tests/oracle/llama_oracle.py), on random checkpoints written by
# `brainalign checkpoint --arch llama` in every weight dtype, single and
# sharded, with grouped-query (2 of 4), multi-query (1) and plain (4)
# key/value heads, with float32 and (BF16 checkpoints) bfloat16 products.

ba_test_executable(llama_dump ${PROJECT_SOURCE_DIR}/tests/oracle/llama_dump.c)

set(BA_LLAMA_ORACLE ${PROJECT_SOURCE_DIR}/tests/oracle/llama_oracle.py)

# name:extra oracle arguments, comma-separated. Weights with std 0.2 make
# attention far from uniform and the SwiGLU inputs O(1), so that a wrong
# rotation (rotate_half sign), key/value head mapping, rope_theta or norm
# epsilon moves the outputs by 1 to 60 (checked by hand), while the
# residual stream stays below ~30: float32 rounding of any implementation
# (torch's float32 forward included) then stays under 5e-5 of the float64
# reference, inside the 1e-4 tolerance (at std 0.25 the stream reaches 50
# and float32 rounding alone reaches 1.5e-4). The sharded cases change
# rope_theta, rms_norm_eps (large enough to matter) and the output layer
# (tied); the last one has the real 32000-token vocabulary and
# tokenizer.model, on a real story's tokens.
set(BA_LLAMA_ORACLE_CASES
  "f32_gqa:--dtype,f32,--init-std,0.2,--errors"
  "bf16_gqa:--dtype,bf16,--init-std,0.2"
  "f16_gqa:--dtype,f16,--init-std,0.2"
  "f32_mha_3shards_tied:--dtype,f32,--shards,3,--kv-heads,4,--rope-theta,500000,--rms-eps,0.01,--tie,--init-std,0.2,--errors"
  "bf16_mqa_2shards_llamavocab:--dtype,bf16,--shards,2,--kv-heads,1,--init-std,0.2,--vocab-from,${BA_DATA_DIR}/llama-tokenizer,--data,${BA_DATA_DIR}"
  # bf16 products (BRAINALIGN_MATMUL=bf16, the AVX512-BF16 kernel): the
  # reference rounds the input of every linear layer to bfloat16 and is
  # compared layer by layer, from the C code's own input to each layer
  # (llama_oracle.py check_bf16): per layer the median over tokens of the
  # largest difference must stay below 1e-4 (float32 rounding: measured
  # ~2e-6), which skipping or mis-rounding the bfloat16 step misses by far
  # (without it: medians 5e-3 to 7e-2; truncating instead of rounding to
  # nearest even: 1e-2 to 0.16, checked by hand), every difference below
  # 0.05 (an activation within float32 rounding of a bfloat16 tie can round
  # the other way: ~1e-2), and the log-probabilities from the C code's
  # final state within 1e-4. Skipped (exit 77) on CPUs without AVX512-BF16.
  "bf16_gqa_bf16dot:--dtype,bf16,--init-std,0.2,--matmul,bf16"
  "bf16_mqa_2shards_llamavocab_bf16dot:--dtype,bf16,--shards,2,--kv-heads,1,--init-std,0.2,--matmul,bf16,--vocab-from,${BA_DATA_DIR}/llama-tokenizer,--data,${BA_DATA_DIR}")

foreach(case IN LISTS BA_LLAMA_ORACLE_CASES)
  string(FIND "${case}" ":" colon)
  string(SUBSTRING "${case}" 0 ${colon} name)
  math(EXPR rest_begin "${colon} + 1")
  string(SUBSTRING "${case}" ${rest_begin} -1 extra)
  string(REPLACE "," ";" extra "${extra}")
  add_test(NAME model.llama_oracle.${name}
    COMMAND ${BA_PYTHON} ${BA_LLAMA_ORACLE}
      --brainalign $<TARGET_FILE:brainalign> --dump $<TARGET_FILE:llama_dump>
      --workdir ${CMAKE_CURRENT_BINARY_DIR}/model-llama-oracle/${name} ${extra})
  set_tests_properties(model.llama_oracle.${name} PROPERTIES LABELS "model;oracle"
    ENVIRONMENT "OPENBLAS_NUM_THREADS=1;OMP_NUM_THREADS=1" SKIP_RETURN_CODE 77)
endforeach()

# Usage errors of the LLaMA options: exit code 2 for bad values, a clear
# message for inconsistent head counts, and no output directory either way.
set(BA_LLAMA_NEVER ${CMAKE_CURRENT_BINARY_DIR}/model-llama-usage/never)
add_test(NAME model.checkpoint_llama_usage_errors
  COMMAND sh -c "b=\"$0\"; out=\"$1\"; \
\"$b\" checkpoint --arch llama --out \"$out\" --vocab-size 10 --rms-eps 2 2>/dev/null; test $? -eq 2 || exit 1; \
\"$b\" checkpoint --arch llama --out \"$out\" --vocab-size 10 --tie-word-embeddings maybe 2>/dev/null; test $? -eq 2 || exit 1; \
\"$b\" checkpoint --arch llama --out \"$out\" --vocab-size 10 --heads 4 --kv-heads 3 2>&1 | \
grep -q 'not a multiple of the 3 key/value heads' || exit 1; \
\"$b\" checkpoint --arch gpt2 --out \"$out\" --vocab-size 10 --kv-heads 2 2>&1 | \
grep -q 'LLaMA options' || exit 1; \
\"$b\" checkpoint --arch llama --out \"$out\" --vocab-size 10 --d-model 12 --heads 4 2>&1 | \
grep -q 'is odd' || exit 1; test ! -e \"$out\""
  $<TARGET_FILE:brainalign> ${BA_LLAMA_NEVER})
set_tests_properties(model.checkpoint_llama_usage_errors PROPERTIES LABELS model
  ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0")
