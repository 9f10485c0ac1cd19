# SentencePiece BPE tokenizer (src/lm/tokenizer_sp.c).
# unit.test_tokenizer_llama compares edge cases with tests/oracle/sp_bpe_oracle.py;
# this test checks that the oracle itself reproduces the SentencePiece
# library's ids (reference/tokens/<story>.llama.json) for the six stories.
set(BA_SP_STORIES bigbang black lucy pieman santa shapessocial)
set(BA_SP_REFERENCES)
foreach(story ${BA_SP_STORIES})
  list(APPEND BA_SP_REFERENCES ${BA_DATA_DIR}/reference/tokens/${story}.llama.json)
endforeach()
add_test(NAME oracle.tokenizer_sp_python_vs_reference
  COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/oracle/sp_bpe_oracle.py check-reference
          ${BA_DATA_DIR}/llama-tokenizer/tokenizer.model ${BA_SP_REFERENCES})
set_tests_properties(oracle.tokenizer_sp_python_vs_reference PROPERTIES LABELS oracle)
