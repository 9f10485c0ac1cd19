# Ops backward passes (lm/ops.h): the C gradients of every op against torch
# autograd in float64 on an independent torch implementation of each op
# (tests/oracle/ops_grad_oracle.py), through the dump driver
# tests/oracle/ops_grad_dump.c. The finite-difference checks are in
# tests/unit/test_ops_backward.c.

set(BA_TEST_LAYER_ops_grad_dump ba_lm)
ba_test_executable(ops_grad_dump ${PROJECT_SOURCE_DIR}/tests/oracle/ops_grad_dump.c)

add_test(NAME ops_backward.grad_oracle
  COMMAND ${BA_PYTHON} ${PROJECT_SOURCE_DIR}/tests/oracle/ops_grad_oracle.py
    --dump $<TARGET_FILE:ops_grad_dump>
    --workdir ${CMAKE_CURRENT_BINARY_DIR}/ops-grad-oracle)
set_tests_properties(ops_backward.grad_oracle PROPERTIES LABELS "lm;oracle"
  ENVIRONMENT "OPENBLAS_NUM_THREADS=1;OMP_NUM_THREADS=1")
