# GPT-2 byte-level BPE: end-to-end checks of `brainalign tokenize` against
# the reference ids, and of the tiny trainer against a Python re-implementation
# (tests/oracle/gpt2_bpe_oracle.py; Python is only a test oracle).
set(BA_TOKENIZER_ORACLE ${PROJECT_SOURCE_DIR}/tests/oracle/gpt2_bpe_oracle.py)
set(BA_TOKENIZER_ENV "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1")

add_test(NAME tokenizer.cli_gpt2_pieman
  COMMAND ${BA_PYTHON} ${BA_TOKENIZER_ORACLE} cli $<TARGET_FILE:brainalign>
          ${BA_DATA_DIR}/gpt2-tokenizer ${BA_DATA_DIR}/reference/tokens/pieman.gpt2.json)
set_tests_properties(tokenizer.cli_gpt2_pieman PROPERTIES LABELS tokenizer
  ENVIRONMENT "${BA_TOKENIZER_ENV}")

# unit.test_tokenizer_gpt2 leaves the trained files and the corpus in
# <build>/tokenizer-oracle; the oracle re-trains and compares.
set_tests_properties(unit.test_tokenizer_gpt2 PROPERTIES FIXTURES_SETUP tokenizer_tiny_vocab)
add_test(NAME tokenizer.tiny_vocab_oracle
  COMMAND ${BA_PYTHON} ${BA_TOKENIZER_ORACLE} train ${PROJECT_BINARY_DIR}/tokenizer-oracle
          $<TARGET_FILE:brainalign>)
set_tests_properties(tokenizer.tiny_vocab_oracle PROPERTIES LABELS tokenizer
  FIXTURES_REQUIRED tokenizer_tiny_vocab ENVIRONMENT "${BA_TOKENIZER_ENV}")
