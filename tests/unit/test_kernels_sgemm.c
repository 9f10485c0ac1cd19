/* test_kernels_sgemm.c — the float32 product ba_sgemm against its double
 * reference and against sums computed here: many shapes (ragged tiles,
 * k blocks, strides wider than the rows, unaligned pointers, op(A) = A
 * and Aᵀ, alpha and beta of every kind, NaN in C where beta = 0), exact
 * agreement on integer data, independence from the thread count and from
 * the number of columns, a voxel-side shape checked on a sample of
 * entries, and the environment switch. Kernel-specific tests are skipped
 * on CPUs where ba_sgemm hands products to cblas_sgemm. */
#include "test_util.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/kernels/kernels.h"

static uint64_t rng_state = 0x243f6a8885a308d3ULL;

static uint64_t next_u64(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static double uniform(void) { return (next_u64() >> 11) * 0x1.0p-53; }

static void fill(float *x, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)((2 * uniform() - 1) * scale);
}

static void fill_int(float *x, size_t n, int bound)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((int)(next_u64() % (uint64_t)(2 * bound + 1)) - bound);
}

static void fill_nan(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = NAN;
}

/* op(A)[i][p] */
static float a_at(bool trans_a, const float *a, size_t lda, size_t i, size_t p)
{
    return trans_a ? a[p * lda + i] : a[i * lda + p];
}

/* The reference by hand on 2 x 3 x 2 cases. */
static void test_reference_by_hand(void **state)
{
    (void)state;
    /* A = [1 2; 3 4; 5 6] stored [k=2][m=3] for trans_a, B = [1 0 2; -1 1 0.5] */
    const float at[6] = {1, 3, 5, 2, 4, 6}, a[6] = {1, 2, 3, 4, 5, 6};
    const float b[6] = {1, 0, 2, -1, 1, 0.5f};
    const float expect[9] = {-1, 2, 3, -1, 4, 8, -1, 6, 13};
    float c[9 + 1];
    fill_nan(c, 10);
    ba_sgemm_ref(true, 3, 3, 2, 1.0f, at, 3, b, 3, 0.0f, c, 3);
    assert_memory_equal(c, expect, sizeof expect);
    assert_true(isnan(c[9])); /* past the matrix: untouched */
    fill_nan(c, 10);
    ba_sgemm_ref(false, 3, 3, 2, 1.0f, a, 2, b, 3, 0.0f, c, 3);
    assert_memory_equal(c, expect, sizeof expect);
    /* C = -AB + C, then 0.5 (-AB) + 2 C */
    for (int i = 0; i < 9; i++) c[i] = (float)i;
    ba_sgemm_ref(false, 3, 3, 2, -1.0f, a, 2, b, 3, 1.0f, c, 3);
    for (int i = 0; i < 9; i++) assert_true(c[i] == (float)i - expect[i]);
    for (int i = 0; i < 9; i++) c[i] = (float)i;
    ba_sgemm_ref(true, 3, 3, 2, -0.5f, at, 3, b, 3, 2.0f, c, 3);
    for (int i = 0; i < 9; i++) assert_true(c[i] == 2.0f * (float)i - 0.5f * expect[i]);
}

typedef struct {
    bool trans_a;
    size_t m, n, k, lda, ldb, ldc, offset;
    float alpha, beta;
} shape;

/* ba_sgemm_ws with a workspace of exactly the queried size (under ASan, a
 * kernel that needs more is caught). */
static void sgemm_exact(bool trans_a, size_t m, size_t n, size_t k, float alpha, const float *a,
                        size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc)
{
    size_t bytes = ba_sgemm_workspace_bytes(m, n, k);
    void *ws = bytes ? malloc(bytes) : NULL;
    assert_true(!bytes || ws);
    ba_error err;
    ba_error_clear(&err);
    if (ba_sgemm_ws(trans_a, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, ws, bytes, &err) !=
        BA_OK)
        fail_msg("%s", err.message);
    free(ws);
}

/* ba_sgemm on one shape against sums in double computed here:
 * |fast - exact| <= tol (|alpha| sum_p |a b| + |beta c|) for every entry
 * (tol = 1e-6 sqrt(k), or 0 on integer data: every partial sum exact),
 * the padding beyond n in each row of C untouched, and ba_sgemm_ref within
 * the same bound. */
static void check_shape(shape s, bool integers, int *failures)
{
    size_t a_rows = s.trans_a ? s.k : s.m;
    size_t a_len = a_rows * s.lda + s.offset + 1, b_len = s.k * s.ldb + s.offset + 1;
    size_t c_len = s.m * s.ldc + s.offset + 1;
    float *abuf = malloc(a_len * sizeof *abuf), *bbuf = malloc(b_len * sizeof *bbuf);
    float *cbuf = malloc(c_len * sizeof *cbuf), *rbuf = malloc(c_len * sizeof *rbuf);
    float *c0 = malloc(c_len * sizeof *c0);
    assert_true(abuf && bbuf && cbuf && rbuf && c0);
    /* unaligned starts: `offset` floats into each buffer */
    float *a = abuf + s.offset, *b = bbuf + s.offset, *c = cbuf + s.offset, *r = rbuf + s.offset;
    if (integers) {
        fill_int(abuf, a_len, 4);
        fill_int(bbuf, b_len, 4);
        fill_int(cbuf, c_len, 100);
    } else {
        fill(abuf, a_len, 2.0f);
        fill(bbuf, b_len, 1.5f);
        fill(cbuf, c_len, 3.0f);
    }
    if (s.beta == 0.0f) /* beta 0: C is not read, NaN included */
        for (size_t i = 0; i < s.m; i++)
            for (size_t j = 0; j < s.n; j++) cbuf[s.offset + i * s.ldc + j] = NAN;
    memcpy(c0, cbuf, c_len * sizeof *c0);
    memcpy(rbuf, cbuf, c_len * sizeof *rbuf);
    sgemm_exact(s.trans_a, s.m, s.n, s.k, s.alpha, a, s.lda, b, s.ldb, s.beta, c, s.ldc);
    ba_sgemm_ref(s.trans_a, s.m, s.n, s.k, s.alpha, a, s.lda, b, s.ldb, s.beta, r, s.ldc);
    double tol = integers ? 0.0 : 1e-6 * sqrt((double)s.k);
    for (size_t i = 0; i < s.m; i++)
        for (size_t j = 0; j < s.ldc && s.offset + i * s.ldc + j < c_len; j++) {
            size_t at = s.offset + i * s.ldc + j;
            if (j >= s.n) { /* beyond the row: someone else's */
                if (memcmp(&cbuf[at], &c0[at], sizeof *cbuf) != 0 && (*failures)++ < 8)
                    print_error("%c m %zu n %zu k %zu: C[%zu][%zu] past n was written\n",
                                s.trans_a ? 'T' : 'N', s.m, s.n, s.k, i, j);
                continue;
            }
            double sum = 0, mass = 0;
            for (size_t p = 0; p < s.k; p++) {
                double t = (double)a_at(s.trans_a, a, s.lda, i, p) * b[p * s.ldb + j];
                sum += t;
                mass += fabs(t);
            }
            double prev = s.beta == 0.0f ? 0.0 : (double)s.beta * c0[at];
            double exact = (double)s.alpha * sum + prev;
            double bound = tol * (fabs((double)s.alpha) * mass + fabs(prev)) +
                           fabs(exact) * 0x1p-24 + 1e-30;
            if (integers) bound = 0; /* every value, partial sum and result exact */
            double d_fast = fabs((double)c[i * s.ldc + j] - exact);
            double d_ref = fabs((double)r[i * s.ldc + j] - exact);
            if (!(d_fast <= bound) && (*failures)++ < 8)
                print_error("%c m %zu n %zu k %zu lda %zu ldb %zu ldc %zu off %zu alpha %g beta %g"
                            "%s: C[%zu][%zu] = %.9g, exact %.9g (bound %.3g)\n",
                            s.trans_a ? 'T' : 'N', s.m, s.n, s.k, s.lda, s.ldb, s.ldc, s.offset,
                            (double)s.alpha, (double)s.beta, integers ? " (integers)" : "", i, j,
                            (double)c[i * s.ldc + j], exact, bound);
            if (!(d_ref <= bound) && (*failures)++ < 8)
                print_error("reference %c m %zu n %zu k %zu: C[%zu][%zu] = %.9g, exact %.9g\n",
                            s.trans_a ? 'T' : 'N', s.m, s.n, s.k, i, j,
                            (double)r[i * s.ldc + j], exact);
        }
    free(abuf), free(bbuf), free(cbuf), free(rbuf), free(c0);
}

static const float alphas[] = {1.0f, -1.0f, 0.75f};
static const float betas[] = {0.0f, 1.0f, -2.5f};

static void run_shapes(bool integers)
{
    /* around the tile (12 x 32), the k block (<= 256) and 16-wide packing */
    static const size_t ms[] = {1, 2, 5, 11, 12, 13, 24, 25, 37, 95, 96, 97, 130, 301};
    static const size_t ns[] = {1, 3, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 100, 257, 300};
    static const size_t ks[] = {1, 2, 7, 15, 16, 17, 33, 100, 255, 256, 257, 300};
    size_t nm = sizeof ms / sizeof *ms, nn = sizeof ns / sizeof *ns, nk = sizeof ks / sizeof *ks;
    int failures = 0, cases = 0;
    for (size_t x = 0; x < 3 * nm; x++) {
        shape s;
        s.m = ms[x % nm];
        s.n = ns[(x * 7 + 3) % nn];
        s.k = ks[(x * 5 + x / nm) % nk];
        s.trans_a = (x / 2) % 2 == 1;
        size_t width_a = s.trans_a ? s.m : s.k;
        s.lda = width_a + (x % 3 == 0 ? 0 : x % 3 == 1 ? 1 : 19);
        s.ldb = s.n + (x % 4 == 0 ? 0 : 3);
        s.ldc = s.n + (x % 5 == 0 ? 0 : 7);
        s.offset = x % 4;
        s.alpha = alphas[x % 3];
        s.beta = betas[(x / 3) % 3];
        check_shape(s, integers, &failures);
        cases++;
    }
    /* several k blocks, several column blocks, a ragged last row sliver */
    shape big[] = {
        {false, 291, 577, 530, 531, 600, 580, 1, 1.0f, 0.0f},
        {true, 203, 530, 771, 210, 530, 541, 3, -1.0f, 1.0f},
        {false, 130, 1100, 300, 300, 1100, 1100, 0, -1.0f, 1.0f},
        {true, 301, 64, 513, 305, 70, 64, 2, 1.0f, 0.0f},
    };
    for (size_t x = 0; x < sizeof big / sizeof *big; x++, cases++)
        check_shape(big[x], integers, &failures);
    print_message("%d shapes%s, %d entries out of bounds\n", cases,
                  integers ? " (integer data, exact)" : "", failures);
    assert_int_equal(failures, 0);
}

static void test_fast_matches_reference(void **state)
{
    (void)state;
    run_shapes(false);
}

/* Small integers: every product and partial sum is exact in float32, so
 * any order of summation gives the exact result; a wrong index (a missed
 * or repeated term, a misplaced tile) cannot hide inside a tolerance. */
static void test_fast_exact_on_integers(void **state)
{
    (void)state;
    run_shapes(true);
}

/* NaN and infinity in A or B reach exactly the entries they should. */
static void test_special_values(void **state)
{
    (void)state;
    size_t m = 29, n = 45, k = 37;
    float *a = malloc(m * k * sizeof *a), *b = malloc(k * n * sizeof *b);
    float *c = malloc(m * n * sizeof *c);
    assert_true(a && b && c);
    fill(a, m * k, 1.0f);
    fill(b, k * n, 1.0f);
    a[7 * k + 20] = NAN;     /* row 7 of op(A) = A */
    b[11 * n + 40] = INFINITY; /* column 40 of B */
    fill_nan(c, m * n);
    sgemm_exact(false, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            float v = c[i * n + j];
            if (i == 7) assert_true(isnan(v));
            else if (j == 40) assert_true(isinf(v) || isnan(v)); /* +-inf: a_i11 sign */
            else if (!isfinite(v)) fail_msg("C[%zu][%zu] = %g", i, j, (double)v);
        }
    free(a), free(b), free(c);
}

/* alpha = 0 or k = 0: C = beta C, A and B not read (NULL here). */
static void test_degenerate(void **state)
{
    (void)state;
    float c[6] = {1, 2, 3, 4, 5, 6};
    ba_error err;
    assert_int_equal(ba_sgemm(false, 2, 3, 0, 1.0f, NULL, 1, NULL, 3, 2.0f, c, 3, &err), BA_OK);
    for (int i = 0; i < 6; i++) assert_true(c[i] == 2.0f * (float)(i + 1));
    fill_nan(c, 6);
    assert_int_equal(ba_sgemm(true, 2, 3, 5, 0.0f, NULL, 2, NULL, 3, 0.0f, c, 3, &err), BA_OK);
    for (int i = 0; i < 6; i++) assert_true(c[i] == 0.0f && !signbit(c[i]));
    assert_int_equal(ba_sgemm(false, 0, 3, 5, 1.0f, NULL, 5, NULL, 3, 0.0f, NULL, 3, &err),
                     BA_OK); /* empty */
}

/* One product with 1, 2 and 3 threads: bitwise the same; and the first
 * columns of a product are bitwise those of the product restricted to
 * them (what makes the ridge engine's voxel results independent of how
 * voxels are split into blocks and ranks). */
static void test_thread_count_and_width_do_not_change_results(void **state)
{
    (void)state;
    if (!ba_sgemm_kernel_available()) skip();
    shape shapes[] = {
        {true, 300, 257, 1000, 300, 257, 257, 0, 1.0f, 0.0f},
        {false, 97, 1000, 300, 301, 1000, 1003, 1, -1.0f, 1.0f},
        {false, 2400, 64, 600, 600, 64, 64, 0, 1.0f, 0.0f},
        {true, 40, 700, 2000, 40, 700, 700, 0, 1.0f, 0.0f},
    };
    int saved = openblas_get_num_threads();
    for (size_t x = 0; x < sizeof shapes / sizeof *shapes; x++) {
        shape s = shapes[x];
        size_t a_len = (s.trans_a ? s.k : s.m) * s.lda + s.offset, c_len = s.m * s.ldc;
        float *abuf = malloc(a_len * sizeof *abuf), *b = malloc(s.k * s.ldb * sizeof *b);
        float *c[4];
        assert_true(abuf && b);
        fill(abuf, a_len, 1.0f);
        fill(b, s.k * s.ldb, 1.0f);
        for (int t = 0; t < 4; t++) {
            c[t] = malloc(c_len * sizeof *c[t]);
            assert_true(c[t]);
            if (t == 0) fill(c[0], c_len, 1.0f);
            else memcpy(c[t], c[0], c_len * sizeof *c[t]);
        }
        for (int t = 0; t < 3; t++) {
            openblas_set_num_threads(t + 1);
            sgemm_exact(s.trans_a, s.m, s.n, s.k, s.alpha, abuf + s.offset, s.lda, b, s.ldb, s.beta,
                     c[t], s.ldc);
        }
        for (int t = 1; t < 3; t++)
            if (memcmp(c[0], c[t], c_len * sizeof *c[0]) != 0)
                fail_msg("%c %zu x %zu x %zu: %d threads differ from 1", s.trans_a ? 'T' : 'N',
                         s.m, s.n, s.k, t + 1);
        /* the first n1 columns alone, 2 threads */
        size_t n1 = s.n * 2 / 5 + 1;
        openblas_set_num_threads(2);
        sgemm_exact(s.trans_a, s.m, n1, s.k, s.alpha, abuf + s.offset, s.lda, b, s.ldb, s.beta, c[3],
                 s.ldc);
        for (size_t i = 0; i < s.m; i++)
            if (memcmp(c[0] + i * s.ldc, c[3] + i * s.ldc, n1 * sizeof *c[0]) != 0)
                fail_msg("%c %zu x %zu x %zu: row %zu of the first %zu columns differs",
                         s.trans_a ? 'T' : 'N', s.m, s.n, s.k, i, n1);
        free(abuf), free(b);
        for (int t = 0; t < 4; t++) free(c[t]);
    }
    openblas_set_num_threads(saved);
}

/* The voxel side's shape (2400 x 512 x 2400, both forms, 2 threads), a
 * sample of entries against double sums. */
static void test_voxel_shape_sampled(void **state)
{
    (void)state;
    size_t m = 2400, n = 512, k = 2400;
    float *a = malloc(m * k * sizeof *a), *b = malloc(k * n * sizeof *b);
    float *c = malloc(m * n * sizeof *c), *c0 = malloc(m * n * sizeof *c0);
    assert_true(a && b && c && c0);
    fill(a, m * k, 1.0f);
    fill(b, k * n, 1.0f);
    int saved = openblas_get_num_threads(), failures = 0;
    openblas_set_num_threads(2);
    for (int form = 0; form < 2; form++) {
        bool trans_a = form == 1;
        float alpha = trans_a ? 1.0f : -1.0f, beta = trans_a ? 0.0f : 1.0f;
        fill(c0, m * n, 10.0f);
        if (beta == 0.0f) fill_nan(c, m * n);
        else memcpy(c, c0, m * n * sizeof *c);
        sgemm_exact(trans_a, m, n, k, alpha, a, trans_a ? m : k, b, n, beta, c, n);
        for (int x = 0; x < 3000; x++) {
            size_t i = (size_t)(next_u64() % m), j = (size_t)(next_u64() % n);
            if (x < 4) i = x & 1 ? m - 1 : 0, j = x & 2 ? n - 1 : 0; /* the corners */
            double sum = 0, mass = 0;
            for (size_t p = 0; p < k; p++) {
                double t = (double)a_at(trans_a, a, trans_a ? m : k, i, p) * b[p * n + j];
                sum += t;
                mass += fabs(t);
            }
            double prev = beta == 0.0f ? 0.0 : c0[i * n + j];
            double exact = alpha * sum + prev;
            double bound = 1e-6 * sqrt((double)k) * (mass + fabs(prev)) + fabs(exact) * 0x1p-24;
            if (!(fabs(c[i * n + j] - exact) <= bound) && failures++ < 5)
                print_error("%c C[%zu][%zu] = %.9g, exact %.9g (bound %.3g)\n",
                            trans_a ? 'T' : 'N', i, j, (double)c[i * n + j], exact, bound);
        }
    }
    openblas_set_num_threads(saved);
    assert_int_equal(failures, 0);
    free(a), free(b), free(c), free(c0);
}

/* BRAINALIGN_NO_AVX512_SGEMM turns the kernel off; products still right. */
static void test_environment_turns_it_off(void **state)
{
    (void)state;
    bool before = ba_sgemm_kernel_available();
    setenv("BRAINALIGN_NO_AVX512_SGEMM", "1", 1);
    assert_false(ba_sgemm_kernel_available());
    int failures = 0;
    check_shape((shape){false, 37, 70, 45, 50, 70, 75, 1, -1.0f, 1.0f}, false, &failures);
    check_shape((shape){true, 37, 70, 45, 40, 70, 70, 0, 1.0f, 0.0f}, false, &failures);
    unsetenv("BRAINALIGN_NO_AVX512_SGEMM");
    assert_int_equal(failures, 0);
    assert_true(ba_sgemm_kernel_available() == before);
}

/* A workspace smaller than the query (or none) is refused with an error,
 * C left as it was; the size grows with every dimension. */
static void test_small_workspace_is_refused(void **state)
{
    (void)state;
    if (!ba_sgemm_kernel_available()) skip();
    size_t m = 50, n = 70, k = 300;
    size_t bytes = ba_sgemm_workspace_bytes(m, n, k);
    assert_true(bytes > 0);
    assert_true(ba_sgemm_workspace_bytes(m + 40, n, k) >= bytes);
    assert_true(ba_sgemm_workspace_bytes(m, n + 64, k) > bytes);
    assert_true(ba_sgemm_workspace_bytes(m, n, k + 8) >= bytes);
    float *a = malloc(m * k * sizeof *a), *b = malloc(k * n * sizeof *b);
    float *c = malloc(m * n * sizeof *c), *c0 = malloc(m * n * sizeof *c0);
    unsigned char *ws = malloc(bytes + 1);
    assert_true(a && b && c && c0 && ws);
    fill(a, m * k, 1.0f);
    fill(b, k * n, 1.0f);
    fill(c, m * n, 1.0f);
    memcpy(c0, c, m * n * sizeof *c);
    ba_error err;
    ba_error_clear(&err);
    assert_int_equal(ba_sgemm_ws(false, m, n, k, 1.0f, a, k, b, n, 1.0f, c, n, ws, bytes - 1,
                                 &err), BA_ERR_USAGE);
    assert_non_null(strstr(err.message, "workspace"));
    assert_memory_equal(c, c0, m * n * sizeof *c);
    assert_int_equal(ba_sgemm_ws(false, m, n, k, 1.0f, a, k, b, n, 1.0f, c, n, NULL, 0, &err),
                     BA_ERR_USAGE);
    assert_memory_equal(c, c0, m * n * sizeof *c);
    /* exactly the query, from an odd address: accepted, and the same bits
     * as the allocating wrapper */
    assert_int_equal(ba_sgemm_ws(false, m, n, k, 1.0f, a, k, b, n, 1.0f, c, n, ws + 1, bytes,
                                 &err), BA_OK);
    assert_int_equal(ba_sgemm(false, m, n, k, 1.0f, a, k, b, n, 1.0f, c0, n, &err), BA_OK);
    assert_memory_equal(c, c0, m * n * sizeof *c);
    free(a), free(b), free(c), free(c0), free(ws);
}

int main(void)
{
    printf("ba_sgemm AVX-512 kernel: %s\n", ba_sgemm_kernel_available()
                                                ? "available"
                                                : "not available (cblas_sgemm runs instead; "
                                                  "kernel-only tests skipped)");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_by_hand),
        cmocka_unit_test(test_fast_matches_reference),
        cmocka_unit_test(test_fast_exact_on_integers),
        cmocka_unit_test(test_special_values),
        cmocka_unit_test(test_degenerate),
        cmocka_unit_test(test_thread_count_and_width_do_not_change_results),
        cmocka_unit_test(test_voxel_shape_sampled),
        cmocka_unit_test(test_environment_turns_it_off),
        cmocka_unit_test(test_small_workspace_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
