# The model's training pass (lm/train.h, issue 12): every gradient of
# ba_model_train_sequence (LoRA on the default and on all targets, freeze
# K = 1 and 2; GPT-2 and LLaMA with GQA; F32 and BF16 base weights) and the
# input-embedding gradient against torch autograd in float64
# (tests/oracle/train_grad_oracle.py, on the torch model of
# finetune_oracle.py), through tests/oracle/train_grad_dump.c, which also
# checks that recompute gives bitwise the same gradients.

set(BA_TEST_LAYER_train_grad_dump ba_lm)
ba_test_executable(train_grad_dump ${PROJECT_SOURCE_DIR}/tests/oracle/train_grad_dump.c)

add_test(NAME train_model.grad_oracle
  COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/oracle/train_grad_oracle.py
    --brainalign $<TARGET_FILE:brainalign> --dump $<TARGET_FILE:train_grad_dump>
    --data ${BA_DATA_DIR} --workdir ${CMAKE_CURRENT_BINARY_DIR}/train-grad-oracle)
set_tests_properties(train_model.grad_oracle PROPERTIES LABELS "lm;oracle" TIMEOUT 600
  ENVIRONMENT "OPENBLAS_NUM_THREADS=1;OMP_NUM_THREADS=1")
