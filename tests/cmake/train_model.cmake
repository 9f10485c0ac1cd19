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

# `features --adapter` and `merge` end to end (tests/e2e/adapter_cli.py): a
# B = 0 adapter gives the base features bitwise, features --adapter equal the
# merged checkpoint's within 1e-5 (1 and 2 ranks), bad adapters refused on
# every rank with no output.
add_test(NAME train_model.adapter_cli
  COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/e2e/adapter_cli.py
    --brainalign $<TARGET_FILE:brainalign> --data ${BA_DATA_DIR}
    --workdir ${CMAKE_CURRENT_BINARY_DIR}/adapter-cli -- ${BA_MPIEXEC})
set_tests_properties(train_model.adapter_cli PROPERTIES LABELS "lm;e2e" PROCESSORS 2 TIMEOUT 900
  ENVIRONMENT "OPENBLAS_NUM_THREADS=1;OMP_NUM_THREADS=1;OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1")
