/* test_train_adamw.c — the error paths of AdamW, clipping and the
 * schedules (their numbers are checked against torch by
 * tests/oracle/adamw_oracle.py): bad hyper-parameters, a non-finite
 * gradient leaves every tensor untouched, --warmup-steps with
 * --warmup-ratio, the schedule names; and one AdamW step by hand. */
#include "test_util.h"

#include <math.h>
#include <string.h>

#include "brainalign/train/adamw.h"

static void test_one_step_by_hand(void **state)
{
    (void)state;
    float p[2] = {1.0f, -2.0f}, g[2] = {0.5f, -4.0f};
    ba_param_ref ref = {.name = "w", .param = p, .grad = g, .n = 2};
    ba_adamw_config cfg = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.1};
    ba_error err;
    ba_error_clear(&err);
    ba_adamw *opt = NULL;
    assert_int_equal(ba_adamw_create(&cfg, &ref, 1, &opt, &err), BA_OK);
    assert_int_equal(ba_adamw_step(opt, 0.01, &err), BA_OK);
    /* step 1: m_hat = g, v_hat = g^2, so the update is lr * g / (|g| + eps) */
    for (int i = 0; i < 2; i++) {
        double w0 = i ? -2.0 : 1.0, gi = g[i];
        double want = w0 * (1 - 0.01 * 0.1) - 0.01 * gi / (fabs(gi) + 1e-8);
        assert_true(fabs(p[i] - want) < 1e-6);
        assert_true(fabs(ba_adamw_m(opt, 0)[i] - 0.1 * gi) < 1e-7);
        assert_true(fabs(ba_adamw_v(opt, 0)[i] - 0.001 * gi * gi) < 1e-7);
    }
    assert_int_equal(ba_adamw_steps(opt), 1);
    ba_adamw_destroy(opt);
}

static void test_bad_gradient_touches_nothing(void **state)
{
    (void)state;
    float p1[3] = {1, 2, 3}, g1[3] = {0.1f, 0.2f, 0.3f}, p2[2] = {4, 5}, g2[2] = {1, NAN};
    ba_param_ref refs[2] = {{.name = "a", .param = p1, .grad = g1, .n = 3},
                            {.name = "b", .param = p2, .grad = g2, .n = 2}};
    ba_adamw_config cfg = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0};
    ba_error err;
    ba_error_clear(&err);
    ba_adamw *opt = NULL;
    assert_int_equal(ba_adamw_create(&cfg, refs, 2, &opt, &err), BA_OK);
    assert_int_equal(ba_adamw_step(opt, 1e-3, &err), BA_ERR_VALUE);
    assert_non_null(strstr(err.message, "'b'"));
    assert_true(p1[0] == 1 && p1[2] == 3 && p2[0] == 4 && p2[1] == 5);
    assert_true(ba_adamw_m(opt, 0)[0] == 0);
    assert_int_equal(ba_adamw_steps(opt), 0);
    double norm;
    assert_int_equal(ba_grad_clip(refs, 2, 1.0, &norm, &err), BA_ERR_VALUE);
    assert_int_equal(ba_adamw_step(opt, NAN, &err), BA_ERR_VALUE);
    ba_adamw_destroy(opt);

    cfg.beta1 = 1.0;
    assert_int_equal(ba_adamw_create(&cfg, refs, 2, &opt, &err), BA_ERR_USAGE);
    cfg.beta1 = 0.9;
    cfg.eps = 0;
    assert_int_equal(ba_adamw_create(&cfg, refs, 2, &opt, &err), BA_ERR_USAGE);
    cfg.eps = 1e-8;
    cfg.weight_decay = -1;
    assert_int_equal(ba_adamw_create(&cfg, refs, 2, &opt, &err), BA_ERR_USAGE);
    cfg.weight_decay = 0;
    assert_int_equal(ba_adamw_create(&cfg, refs, 0, &opt, &err), BA_ERR_USAGE);
    assert_null(opt);
}

static void test_clip(void **state)
{
    (void)state;
    float g1[2] = {3, 0}, g2[1] = {4}, p[3] = {0};
    ba_param_ref refs[2] = {{.name = "a", .param = p, .grad = g1, .n = 2},
                            {.name = "b", .param = p + 2, .grad = g2, .n = 1}};
    ba_error err;
    ba_error_clear(&err);
    double norm;
    assert_int_equal(ba_grad_clip(refs, 2, 0, &norm, &err), BA_OK); /* off */
    assert_true(norm == 5.0 && g1[0] == 3 && g2[0] == 4);
    assert_int_equal(ba_grad_clip(refs, 2, 10, &norm, &err), BA_OK); /* below: unchanged */
    assert_true(g1[0] == 3 && g2[0] == 4);
    assert_int_equal(ba_grad_clip(refs, 2, 1, &norm, &err), BA_OK);
    assert_true(norm == 5.0);
    assert_true(fabs(g1[0] - 3 / (5 + 1e-6)) < 1e-7 && fabs(g2[0] - 4 / (5 + 1e-6)) < 1e-7);
    assert_int_equal(ba_grad_clip(refs, 2, -1, &norm, &err), BA_ERR_USAGE);
}

static void test_schedules(void **state)
{
    (void)state;
    ba_error err;
    ba_error_clear(&err);
    int64_t w;
    assert_int_equal(ba_lr_warmup_steps(100, -1, -1, &w, &err), BA_OK);
    assert_int_equal(w, 0);
    assert_int_equal(ba_lr_warmup_steps(100, 7, -1, &w, &err), BA_OK);
    assert_int_equal(w, 7);
    assert_int_equal(ba_lr_warmup_steps(101, -1, 0.1, &w, &err), BA_OK);
    assert_int_equal(w, 11); /* ceil(10.1) */
    assert_int_equal(ba_lr_warmup_steps(100, 5, 0.1, &w, &err), BA_ERR_USAGE);
    assert_non_null(strstr(err.message, "not both"));
    assert_int_equal(ba_lr_warmup_steps(100, -1, 1.5, &w, &err), BA_ERR_USAGE);
    assert_int_equal(ba_lr_warmup_steps(0, -1, -1, &w, &err), BA_ERR_USAGE);

    ba_lr_schedule_kind k;
    assert_int_equal(ba_lr_schedule_parse("cosine", &k, &err), BA_OK);
    assert_int_equal(k, BA_LR_COSINE);
    assert_string_equal(ba_lr_schedule_name(BA_LR_LINEAR), "linear");
    assert_int_equal(ba_lr_schedule_parse("step", &k, &err), BA_ERR_USAGE);
    assert_non_null(strstr(err.message, "'step'"));

    ba_lr_schedule s = {.kind = BA_LR_LINEAR, .lr = 1.0, .warmup_steps = 4, .total_steps = 10};
    assert_int_equal(ba_lr_schedule_check(&s, &err), BA_OK);
    assert_true(ba_lr_at(&s, 0) == 0.0 && ba_lr_at(&s, 2) == 0.5 && ba_lr_at(&s, 4) == 1.0);
    assert_true(ba_lr_at(&s, 7) == 0.5 && ba_lr_at(&s, 10) == 0.0 && ba_lr_at(&s, 12) == 0.0);
    s.kind = BA_LR_COSINE;
    assert_true(fabs(ba_lr_at(&s, 7) - 0.5) < 1e-15 && fabs(ba_lr_at(&s, 10)) < 1e-15);
    s.kind = BA_LR_CONSTANT;
    assert_true(ba_lr_at(&s, 3) == 0.75 && ba_lr_at(&s, 100) == 1.0);
    s.lr = -1;
    assert_int_equal(ba_lr_schedule_check(&s, &err), BA_ERR_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_step_by_hand),
        cmocka_unit_test(test_bad_gradient_touches_nothing),
        cmocka_unit_test(test_clip),
        cmocka_unit_test(test_schedules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
