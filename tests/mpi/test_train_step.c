/* test_train_step.c — the data-parallel optimizer step (train/step.h) on a
 * problem with a known gradient: the "model" is a linear predictor w [P]
 * and every target token j of sample k has the loss 0.5 (w . x_kj - y_kj)^2
 * (x, y fixed formulas). Checked on 1, 2 and 4 ranks:
 *   - loss, token count, gradient norm and the parameters after a few
 *     clipped AdamW steps equal a float64 reference written here (torch's
 *     AdamW and clip_grad_norm_ formulas), with and without grad-accum;
 *   - every rank ends with bitwise the same parameters;
 *   - the whole world equals one rank alone (MPI_COMM_SELF) within 1e-6;
 *   - a sample that fails on one rank stops every rank with its message. */
#include <mpi.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "brainalign/train/step.h"

#define P 7
#define N_SAMPLES 9
#define BATCH 6
#define STEPS 4

static size_t n_target(size_t k) { return 1 + (k * 5) % 4; } /* 1..4 tokens */
static double xv(size_t k, size_t j, int p) { return sin(1.3 * k + 0.7 * j + 0.31 * p + 0.1); }
static double yv(size_t k, size_t j) { return cos(0.9 * k - 0.4 * j) * 2.0; }

typedef struct {
    float *w, *g;
    long fail_sample; /* -1: none */
    int64_t step;     /* the step being run, and its batch  */
    const size_t *idx;
} fake;

static ba_status fake_sample(void *user, size_t k, uint64_t position, float scale, double *loss_sum,
                             size_t *count, float *d_embeds, ba_error *err)
{
    (void)d_embeds;
    fake *f = user;
    if (position / BATCH != (uint64_t)f->step || f->idx[position % BATCH] != k)
        return ba_fail(err, BA_ERR_INTERNAL, "sample %zu given stream position %llu", k,
                       (unsigned long long)position);
    if ((long)k == f->fail_sample)
        return ba_fail(err, BA_ERR_VALUE, "non-finite loss at token 0 (planted)");
    double ls = 0;
    for (size_t j = 0; j < n_target(k); j++) {
        double r = -yv(k, j);
        for (int p = 0; p < P; p++) r += (double)f->w[p] * xv(k, j, p);
        ls += 0.5 * r * r;
        for (int p = 0; p < P; p++) f->g[p] += scale * (float)(r * xv(k, j, p));
    }
    *loss_sum = ls;
    *count = n_target(k);
    return BA_OK;
}

static ba_sft_dataset *make_dataset(void)
{
    ba_sft_dataset *ds = calloc(1, sizeof *ds);
    ds->n = N_SAMPLES;
    ds->samples = calloc(N_SAMPLES, sizeof *ds->samples);
    for (size_t k = 0; k < N_SAMPLES; k++) {
        ds->samples[k].n = n_target(k) + 2;
        ds->samples[k].n_target = n_target(k);
    }
    return ds;
}

static const ba_adamw_config ADAM = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                                     .weight_decay = 0.01};
#define LR 0.05
#define CLIP 0.5

typedef struct {
    double loss[STEPS], norm[STEPS];
    int64_t tokens[STEPS];
    float w[P];
} run_result;

static void batch_of(int64_t s, size_t *idx)
{
    ba_error err;
    assert_int_equal(ba_sft_batch_indices(N_SAMPLES, 11, true, s, BATCH, idx, &err), BA_OK);
}

static ba_status run_steps(MPI_Comm comm, int accum, long fail, run_result *out, ba_error *err)
{
    ba_sft_dataset *ds = make_dataset();
    float w[P], g[P];
    for (int p = 0; p < P; p++) w[p] = (float)(0.1 * p - 0.2);
    fake f = {.w = w, .g = g, .fail_sample = fail};
    ba_param_ref ref = {.name = "w", .param = w, .grad = g, .n = P};
    ba_adamw *opt = NULL;
    ba_status rc = ba_adamw_create(&ADAM, &ref, 1, &opt, err);
    assert_int_equal(rc, BA_OK);
    ba_train_step_setup s = {.comm = comm, .sample_fn = fake_sample, .sample_user = &f,
                             .opt = opt, .params = &ref, .n_params = 1, .data = ds,
                             .d_model = 1, .grad_accum = accum, .max_grad_norm = CLIP};
    size_t idx[BATCH];
    for (int64_t st = 0; rc == BA_OK && st < STEPS; st++) {
        batch_of(st, idx);
        f.step = st;
        f.idx = idx;
        ba_train_step_result res;
        rc = ba_train_step(&s, st, idx, BATCH, LR, &res, err);
        if (rc != BA_OK) break;
        out->loss[st] = res.loss;
        out->norm[st] = res.grad_norm;
        out->tokens[st] = res.tokens;
        assert_true(res.lr == LR);
    }
    memcpy(out->w, w, sizeof w);
    ba_adamw_destroy(opt);
    free(ds->samples);
    free(ds);
    return rc;
}

/* The float64 reference: torch's formulas. */
static void reference(run_result *out)
{
    double w[P], m[P] = {0}, v[P] = {0};
    for (int p = 0; p < P; p++) w[p] = (float)(0.1 * p - 0.2);
    size_t idx[BATCH];
    for (int st = 0; st < STEPS; st++) {
        batch_of(st, idx);
        double g[P] = {0}, loss = 0;
        int64_t count = 0;
        for (int b = 0; b < BATCH; b++) count += (int64_t)n_target(idx[b]);
        for (int b = 0; b < BATCH; b++) {
            size_t k = idx[b];
            for (size_t j = 0; j < n_target(k); j++) {
                double r = -yv(k, j);
                for (int p = 0; p < P; p++) r += w[p] * xv(k, j, p);
                loss += 0.5 * r * r;
                for (int p = 0; p < P; p++) g[p] += r * xv(k, j, p) / (double)count;
            }
        }
        double norm = 0;
        for (int p = 0; p < P; p++) norm += g[p] * g[p];
        norm = sqrt(norm);
        double c = CLIP / (norm + 1e-6);
        if (c > 1) c = 1;
        int t = st + 1;
        for (int p = 0; p < P; p++) {
            double gp = g[p] * c;
            w[p] *= 1 - LR * ADAM.weight_decay;
            m[p] = ADAM.beta1 * m[p] + (1 - ADAM.beta1) * gp;
            v[p] = ADAM.beta2 * v[p] + (1 - ADAM.beta2) * gp * gp;
            double den = sqrt(v[p]) / sqrt(1 - pow(ADAM.beta2, t)) + ADAM.eps;
            w[p] -= LR / (1 - pow(ADAM.beta1, t)) * m[p] / den;
        }
        out->loss[st] = loss / (double)count;
        out->norm[st] = norm;
        out->tokens[st] = count;
    }
    for (int p = 0; p < P; p++) out->w[p] = (float)w[p];
}

static double relerr(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-30); }

static void compare(const run_result *a, const run_result *b, double tol, const char *what)
{
    for (int s = 0; s < STEPS; s++) {
        if (relerr(a->loss[s], b->loss[s]) > tol || relerr(a->norm[s], b->norm[s]) > tol ||
            a->tokens[s] != b->tokens[s])
            fail_msg("%s: step %d loss %.9g vs %.9g, norm %.9g vs %.9g, tokens %lld vs %lld", what,
                     s + 1, a->loss[s], b->loss[s], a->norm[s], b->norm[s],
                     (long long)a->tokens[s], (long long)b->tokens[s]);
    }
    double num = 0, den = 0;
    for (int p = 0; p < P; p++) {
        num += ((double)a->w[p] - b->w[p]) * ((double)a->w[p] - b->w[p]);
        den += (double)b->w[p] * b->w[p];
    }
    if (sqrt(num / den) > tol) fail_msg("%s: parameters differ by %.3g relative", what, sqrt(num / den));
}

static void test_against_reference(void **state)
{
    (void)state;
    run_result ref, world, world2, self;
    reference(&ref);
    ba_error err;
    assert_int_equal(run_steps(MPI_COMM_WORLD, 1, -1, &world, &err), BA_OK);
    assert_int_equal(run_steps(MPI_COMM_WORLD, 2, -1, &world2, &err), BA_OK);
    assert_int_equal(run_steps(MPI_COMM_SELF, 1, -1, &self, &err), BA_OK);
    compare(&world, &ref, 1e-5, "world vs float64 reference");
    compare(&world2, &ref, 1e-5, "world, grad-accum 2, vs float64 reference");
    compare(&world, &self, 1e-6, "world vs one rank");
    compare(&world2, &world, 1e-6, "grad-accum 2 vs 1");
    /* Every rank holds bitwise the same parameters. */
    float w0[P];
    memcpy(w0, world.w, sizeof w0);
    MPI_Bcast(w0, P, MPI_FLOAT, 0, MPI_COMM_WORLD);
    assert_memory_equal(w0, world.w, sizeof w0);
    /* Repeated: bitwise. */
    run_result again;
    assert_int_equal(run_steps(MPI_COMM_WORLD, 1, -1, &again, &err), BA_OK);
    assert_memory_equal(again.w, world.w, sizeof again.w);
    assert_memory_equal(again.loss, world.loss, sizeof again.loss);
}

static void test_failure_on_one_rank(void **state)
{
    (void)state;
    size_t idx[BATCH];
    batch_of(0, idx);
    run_result r;
    ba_error err;
    ba_error_clear(&err);
    ba_status rc = run_steps(MPI_COMM_WORLD, 1, (long)idx[BATCH - 1], &r, &err);
    assert_int_equal(rc, BA_ERR_VALUE);
    char want[64];
    snprintf(want, sizeof want, "sample %zu of the data", idx[BATCH - 1] + 1);
    if (!strstr(err.message, want) || !strstr(err.message, "planted"))
        fail_msg("message '%s' lacks '%s'", err.message, want);
}

static void test_bad_accum(void **state)
{
    (void)state;
    run_result r;
    ba_error err;
    assert_int_equal(run_steps(MPI_COMM_WORLD, 4, -1, &r, &err), BA_ERR_USAGE);
    assert_non_null(strstr(err.message, "--grad-accum"));
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_against_reference),
                                       cmocka_unit_test(test_failure_on_one_rank),
                                       cmocka_unit_test(test_bad_accum)};
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    MPI_Finalize();
    return failed;
}
