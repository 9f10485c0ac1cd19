/* test_kernels_bf16.c — the AVX512-BF16 linear kernel against its plain
 * reference over many shapes (ragged tiles, odd and tiny input widths,
 * strides, accumulation, unaligned weights), its independence from the
 * thread count, and the reference itself against hand-made cases. The
 * kernel tests are skipped on CPUs without AVX512-BF16. */
#include "test_util.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/kernels/kernels.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static double uniform(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (rng_state >> 11) * 0x1.0p-53;
}

static void fill(float *x, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)((2 * uniform() - 1) * scale);
}

static void fill_bf16(uint16_t *w, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++) w[i] = ba_f32_to_bf16((float)((2 * uniform() - 1) * scale));
}

static float bf16(uint16_t h)
{
    float f;
    ba_bf16_to_f32(&h, 1, &f);
    return f;
}

/* ba_linear_bf16 with a workspace of exactly the queried size (under
 * ASan, a kernel that needs more is caught). */
static void bf16_exact(const float *x, size_t n, size_t in, size_t ldx, const uint16_t *w,
                       size_t out, int accumulate, float *y, size_t ldy)
{
    size_t bytes = ba_linear_bf16_workspace_bytes(n, in, out);
    void *ws = bytes ? malloc(bytes) : NULL;
    assert_true(!bytes || ws);
    ba_error err;
    ba_error_clear(&err);
    if (ba_linear_bf16(x, n, in, ldx, w, out, accumulate, y, ldy, ws, bytes, &err) != BA_OK)
        fail_msg("%s", err.message);
    free(ws);
}

/* The reference by hand: bf16 rounding of x, exact products, accumulation. */
static void test_reference_rounds_activations(void **state)
{
    (void)state;
    /* x = 1 + 2^-8 (a tie, rounds to 1) and 1 + 3 2^-8 (rounds up to 1 + 2^-6),
     * w = 1 and 2: y = 1 * 1 + (1 + 2^-6) * 2, not 1 + 2^-8 + (1 + 3 2^-8) * 2. */
    float x[2] = {1.0f + ldexpf(1, -8), 1.0f + 3 * ldexpf(1, -8)};
    uint16_t w[4] = {ba_f32_to_bf16(1.0f), ba_f32_to_bf16(2.0f), ba_f32_to_bf16(-1.0f), 0};
    float y[3] = {0, 0, 123.0f};
    ba_linear_bf16_ref(x, 1, 2, 2, w, 2, 0, y, 3);
    assert_true(y[0] == 1.0f + 2.0f * (1.0f + ldexpf(1, -6)));
    assert_true(y[1] == -1.0f);
    assert_true(y[2] == 123.0f); /* past `out`: untouched */
    ba_linear_bf16_ref(x, 1, 2, 2, w, 2, 1, y, 3);
    assert_true(y[0] == 2 * (1.0f + 2.0f * (1.0f + ldexpf(1, -6))));
    assert_true(y[1] == -2.0f);
}

/* |fast - ref| <= tol * (sum_k |x_k w_k| + |previous y|) for every entry. */
static void check_shape(size_t n, size_t in, size_t out, size_t ldx, size_t ldy, int accumulate,
                        size_t w_offset, int *failures)
{
    float *x = malloc((n * ldx + 1) * sizeof *x);
    uint16_t *wbuf = malloc((out * in + w_offset + 1) * sizeof *wbuf);
    float *y = malloc((n * ldy + 1) * sizeof *y), *yr = malloc((n * ldy + 1) * sizeof *yr);
    float *y0 = malloc((n * ldy + 1) * sizeof *y0);
    assert_true(x && wbuf && y && yr && y0);
    uint16_t *w = wbuf + w_offset;
    fill(x, n * ldx, 3.0f);
    fill_bf16(w, out * in, 0.5f);
    fill(y, n * ldy, 2.0f);
    memcpy(yr, y, n * ldy * sizeof *y);
    memcpy(y0, y, n * ldy * sizeof *y);
    bf16_exact(x, n, in, ldx, w, out, accumulate, y, ldy);
    ba_linear_bf16_ref(x, n, in, ldx, w, out, accumulate, yr, ldy);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < ldy; j++) {
            size_t at = i * ldy + j;
            if (j >= out) { /* columns past `out` belong to someone else */
                if (memcmp(&y[at], &yr[at], sizeof *y) != 0 && (*failures)++ < 5)
                    print_error("n %zu in %zu out %zu: y[%zu][%zu] past out was written\n", n,
                                in, out, i, j);
                continue;
            }
            double mass = 0;
            for (size_t k = 0; k < in; k++)
                mass += fabs((double)bf16(ba_f32_to_bf16(x[i * ldx + k])) * bf16(w[j * in + k]));
            double prev = accumulate ? fabs((double)y0[at]) : 0.0;
            double tol = 1e-5 * (mass + prev) + 1e-30;
            double diff = fabs((double)y[at] - yr[at]);
            if (!(diff <= tol) && (*failures)++ < 5)
                print_error("n %zu in %zu out %zu ldx %zu ldy %zu acc %d: y[%zu][%zu] fast %.9g "
                            "ref %.9g (tolerance %.3g)\n", n, in, out, ldx, ldy, accumulate, i,
                            j, y[at], yr[at], tol);
        }
    free(x), free(wbuf), free(y), free(yr), free(y0);
}

static void test_fast_matches_reference(void **state)
{
    (void)state;
    if (!ba_bf16_dot_available()) skip();
    static const size_t ins[] = {1, 2, 3, 31, 32, 33, 64, 255, 256, 257, 258, 300, 513, 1000};
    static const size_t outs[] = {1, 5, 16, 17, 31, 32, 33, 47, 64, 100, 257, 300};
    int failures = 0, cases = 0;
    for (size_t n = 1; n <= 70; n += (n < 16 ? 1 : 7)) {
        for (size_t a = 0; a < sizeof ins / sizeof *ins; a++) {
            size_t in = ins[(a + n) % (sizeof ins / sizeof *ins)];
            size_t out = outs[(a * 5 + n) % (sizeof outs / sizeof *outs)];
            size_t ldx = in + (a % 3 == 0 ? 0 : a % 3 == 1 ? 1 : 17);
            size_t ldy = out + (n % 2 ? 0 : 5);
            check_shape(n, in, out, ldx, ldy, (int)((a + n) % 2), (a + n) % 4, &failures);
            cases++;
        }
    }
    /* Blocks bigger than one k block, one row block and one column block. */
    check_shape(250, 600, 530, 600, 531, 0, 1, &failures);
    check_shape(241, 513, 289, 520, 300, 1, 3, &failures);
    print_message("%d shapes, %d entries outside tolerance\n", cases + 2, failures);
    assert_int_equal(failures, 0);
}

/* Special values: exact zeros, values that round across bf16 ties, large
 * and small magnitudes: the fast kernel must agree with the reference. */
static void test_fast_rounds_like_reference(void **state)
{
    (void)state;
    if (!ba_bf16_dot_available()) skip();
    size_t n = 13, in = 37, out = 35;
    float *x = malloc(n * in * sizeof *x), *y = malloc(n * out * sizeof *y);
    float *yr = malloc(n * out * sizeof *yr);
    uint16_t *w = malloc(out * in * sizeof *w);
    for (size_t i = 0; i < n * in; i++) {
        /* exact ties between two bfloat16 values (even and odd mantissas) */
        float base = ldexpf(1.0f + (float)(i % 64) * ldexpf(1, -7), (int)(i % 9) - 4);
        x[i] = (i % 3 == 0 ? -1 : 1) * (base + ldexpf(base, -8) * (i % 2 ? 1.0f : 0.5f));
    }
    for (size_t i = 0; i < out * in; i++) w[i] = ba_f32_to_bf16((float)(i % 7) - 3.0f);
    x[4 * in + 36] = NAN; /* row 4, the odd last input */
    bf16_exact(x, n, in, in, w, out, 0, y, out);
    ba_linear_bf16_ref(x, n, in, in, w, out, 0, yr, out);
    /* integer weights and bf16 inputs: every product and partial sum is
     * exact in float32, so the two agree exactly (and row 4 is NaN) */
    for (size_t i = 0; i < n * out; i++) {
        if (i / out == 4) {
            if (!isnan(y[i]) || !isnan(yr[i])) fail_msg("entry %zu: NaN input lost", i);
        } else if (y[i] != yr[i]) {
            fail_msg("entry %zu: fast %.9g, reference %.9g", i, y[i], yr[i]);
        }
    }
    free(x), free(y), free(yr), free(w);
}

/* The same product with 1, 2 and 3 threads: bitwise the same. */
static void test_thread_count_does_not_change_results(void **state)
{
    (void)state;
    if (!ba_bf16_dot_available()) skip();
    struct { size_t n, in, out; } shapes[] = {{70, 300, 1000}, {5, 257, 65}, {128, 1024, 512}};
    int saved = openblas_get_num_threads();
    for (size_t c = 0; c < sizeof shapes / sizeof *shapes; c++) {
        size_t n = shapes[c].n, in = shapes[c].in, out = shapes[c].out;
        float *x = malloc(n * in * sizeof *x);
        uint16_t *w = malloc(out * in * sizeof *w);
        float *y[3];
        fill(x, n * in, 1.0f);
        fill_bf16(w, out * in, 0.1f);
        for (int t = 0; t < 3; t++) {
            y[t] = malloc(n * out * sizeof *y[t]);
            fill(y[t], n * out, 1.0f);
            if (t > 0) memcpy(y[t], y[0], n * out * sizeof *y[t]);
        }
        for (int t = 0; t < 3; t++) {
            openblas_set_num_threads(t + 1);
            bf16_exact(x, n, in, in, w, out, 1, y[t], out);
        }
        for (int t = 1; t < 3; t++)
            if (memcmp(y[0], y[t], n * out * sizeof *y[0]) != 0)
                fail_msg("%zu x %zu x %zu: %d threads differ from 1", n, in, out, t + 1);
        free(x), free(w), free(y[0]), free(y[1]), free(y[2]);
    }
    openblas_set_num_threads(saved);
}

/* BRAINALIGN_NO_BF16_DOT turns the fast kernel off (and it then runs the
 * reference, exactly). */
static void test_environment_turns_it_off(void **state)
{
    (void)state;
    bool before = ba_bf16_dot_available();
    setenv("BRAINALIGN_NO_BF16_DOT", "1", 1);
    assert_false(ba_bf16_dot_available());
    size_t n = 3, in = 5, out = 4;
    float x[15], y[12], yr[12];
    uint16_t w[20];
    fill(x, 15, 1.0f);
    fill_bf16(w, 20, 1.0f);
    bf16_exact(x, n, in, in, w, out, 0, y, out);
    ba_linear_bf16_ref(x, n, in, in, w, out, 0, yr, out);
    assert_memory_equal(y, yr, sizeof y);
    unsetenv("BRAINALIGN_NO_BF16_DOT");
    assert_true(ba_bf16_dot_available() == before);
}

/* A workspace smaller than the query (or none) is refused with an error
 * naming both sizes, and y is left as it was; the queried size works and
 * grows with every dimension. */
static void test_small_workspace_is_refused(void **state)
{
    (void)state;
    if (!ba_bf16_dot_available()) skip();
    size_t n = 29, in = 70, out = 100;
    size_t bytes = ba_linear_bf16_workspace_bytes(n, in, out);
    assert_true(bytes > 0);
    assert_true(ba_linear_bf16_workspace_bytes(n + 12, in, out) > bytes);
    assert_true(ba_linear_bf16_workspace_bytes(n, in + 40, out) > bytes);
    assert_true(ba_linear_bf16_workspace_bytes(n, in, out) <=
                ba_linear_bf16_workspace_bytes(n, in, 4 * out));
    float *x = malloc(n * in * sizeof *x), *y = malloc(n * out * sizeof *y);
    float *y0 = malloc(n * out * sizeof *y0);
    uint16_t *w = malloc(out * in * sizeof *w);
    unsigned char *ws = malloc(bytes);
    assert_true(x && y && y0 && w && ws);
    fill(x, n * in, 1.0f);
    fill_bf16(w, out * in, 1.0f);
    fill(y, n * out, 1.0f);
    memcpy(y0, y, n * out * sizeof *y);
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(ba_linear_bf16(x, n, in, in, w, out, 0, y, out, ws, bytes - 1, &err),
                     BA_ERR_USAGE);
    assert_non_null(strstr(err.message, "workspace"));
    assert_memory_equal(y, y0, n * out * sizeof *y);
    ba_error_clear(&err);
    assert_int_equal(ba_linear_bf16(x, n, in, in, w, out, 0, y, out, NULL, 0, &err),
                     BA_ERR_USAGE);
    assert_memory_equal(y, y0, n * out * sizeof *y);
    /* exactly the query, from an odd address: accepted */
    unsigned char *odd = malloc(bytes + 1);
    assert_non_null(odd);
    assert_int_equal(ba_linear_bf16(x, n, in, in, w, out, 0, y, out, odd + 1, bytes, &err),
                     BA_OK);
    free(x), free(y), free(y0), free(w), free(ws), free(odd);
}

int main(void)
{
    printf("AVX512-BF16 dot products: %s\n", ba_bf16_dot_available() ? "available" : "not "
           "available (kernel tests skipped)");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_rounds_activations),
        cmocka_unit_test(test_fast_matches_reference),
        cmocka_unit_test(test_fast_rounds_like_reference),
        cmocka_unit_test(test_thread_count_does_not_change_results),
        cmocka_unit_test(test_environment_turns_it_off),
        cmocka_unit_test(test_small_workspace_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
