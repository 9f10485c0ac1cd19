# Decoding ids to text (ba_tokenizer_decode): SentencePiece (LLaMA, its
# tokenizer.model and tokenizer.json forms) against the SentencePiece
# library (python3-sentencepiece), GPT-2 against Python's
# bytes.decode("utf-8", errors="replace"); random id lists with byte pieces,
# invalid UTF-8 and special tokens (tests/oracle/tokenizer_decode_oracle.py
# through tests/oracle/tokenizer_decode_dump.c). `brainalign tokenize
# --decode` end to end: tests/e2e/tokenize_decode.py.
set(BA_TEST_LAYER_tokenizer_decode_dump ba_lm)
ba_test_executable(tokenizer_decode_dump ${PROJECT_SOURCE_DIR}/tests/oracle/tokenizer_decode_dump.c)
set(BA_DECODE_ORACLE ${PROJECT_SOURCE_DIR}/tests/oracle/tokenizer_decode_oracle.py)
add_test(NAME oracle.tokenizer_decode_sp
  COMMAND ${BA_PYTHON} ${BA_DECODE_ORACLE} sp $<TARGET_FILE:tokenizer_decode_dump>
          ${BA_DATA_DIR}/llama-tokenizer ${CMAKE_CURRENT_BINARY_DIR}/decode-oracle/sp)
add_test(NAME oracle.tokenizer_decode_gpt2
  COMMAND ${BA_PYTHON} ${BA_DECODE_ORACLE} gpt2 $<TARGET_FILE:tokenizer_decode_dump>
          ${BA_DATA_DIR}/gpt2-tokenizer)
set_tests_properties(oracle.tokenizer_decode_sp oracle.tokenizer_decode_gpt2
  PROPERTIES LABELS "oracle;tokenizer")
add_test(NAME tokenizer.cli_decode
  COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/e2e/tokenize_decode.py
          $<TARGET_FILE:brainalign> ${BA_DATA_DIR} ${BA_MPIEXEC})
set_tests_properties(tokenizer.cli_decode PROPERTIES LABELS "tokenizer;e2e"
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1")
