/* test_kernels.c — every fast kernel against its plain reference version,
 * and the half-precision conversions against arithmetic definitions. */
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/kernels/kernels.h"
#include "brainalign/lm/ops.h"

static uint64_t rng_state = 88172645463325252ULL;

static double uniform(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (rng_state >> 11) * 0x1.0p-53;
}

static float *random_floats(size_t n, float scale)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = (float)((2 * uniform() - 1) * scale);
    return x;
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d; /* NaN propagates */
    }
    return m;
}

/* ---- half precision -------------------------------------------------------------- */

static void test_widening_matches_arithmetic(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        uint16_t bits = (uint16_t)h;
        float fast, ref;
        ba_f16_to_f32(&bits, 1, &fast);
        ref = ba_f16_to_f32_ref(bits);
        if (isnan(ref)) assert_true(isnan(fast));
        else if (fast != ref || signbit(fast) != signbit(ref))
            fail_msg("f16 0x%04x: fast %.9g, reference %.9g", h, fast, ref);
        ba_bf16_to_f32(&bits, 1, &fast);
        ref = ba_bf16_to_f32_ref(bits);
        if (isnan(ref)) assert_true(isnan(fast));
        else if (fast != ref || signbit(fast) != signbit(ref))
            fail_msg("bf16 0x%04x: fast %.9g, reference %.9g", h, fast, ref);
    }
}

static void test_narrowing_known_values(void **state)
{
    (void)state;
    assert_int_equal(ba_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(ba_f32_to_f16(-2.0f), 0xc000);
    assert_int_equal(ba_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(ba_f32_to_f16(65519.0f), 0x7bff);
    assert_int_equal(ba_f32_to_f16(65520.0f), 0x7c00); /* tie rounds to even = inf */
    assert_int_equal(ba_f32_to_f16(ldexpf(1.0f, -24)), 0x0001);
    assert_int_equal(ba_f32_to_f16(ldexpf(1.0f, -25)), 0x0000);  /* tie to even (0) */
    assert_int_equal(ba_f32_to_f16(ldexpf(3.0f, -25)), 0x0002);  /* 1.5 ulp -> 2 */
    assert_int_equal(ba_f32_to_f16(ldexpf(1.0f, -14)), 0x0400);  /* smallest normal */
    assert_int_equal(ba_f32_to_f16(1.0f + ldexpf(1.0f, -11)), 0x3c00); /* tie to even */
    assert_int_equal(ba_f32_to_f16(1.0f + 3 * ldexpf(1.0f, -11)), 0x3c02);
    assert_int_equal(ba_f32_to_f16(INFINITY), 0x7c00);
    assert_true((ba_f32_to_f16(NAN) & 0x7c00) == 0x7c00 && (ba_f32_to_f16(NAN) & 0x3ff));
    assert_int_equal(ba_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(ba_f32_to_bf16(1.0f + ldexpf(1.0f, -8)), 0x3f80); /* tie to even */
    assert_int_equal(ba_f32_to_bf16(1.0f + 3 * ldexpf(1.0f, -8)), 0x3f82);
    assert_true(isnan(ba_bf16_to_f32_ref(ba_f32_to_bf16(NAN))));
}

/* The narrowed value is the nearest representable one, ties to even. */
static void check_nearest(float x, uint16_t h, float (*widen)(uint16_t), const char *what)
{
    double v = widen(h), err = fabs(v - x);
    for (int step = -1; step <= 1; step += 2) {
        uint16_t other = (uint16_t)(h + step);
        if ((other & 0x7fff) == 0x7fff || ((h ^ other) & 0x8000)) continue;
        double ov = widen(other);
        if (isnan(ov) || isinf(ov)) continue;
        double oerr = fabs(ov - x);
        if (oerr < err || (oerr == err && (h & 1)))
            fail_msg("%s(%.9g) = 0x%04x (%.9g), but 0x%04x (%.9g) is %s", what, x, h, v, other,
                     ov, oerr < err ? "nearer" : "as near and even");
    }
}

static void test_narrowing_rounds_to_nearest(void **state)
{
    (void)state;
    for (int i = 0; i < 200000; i++) {
        /* magnitudes from 2^-26 to 2^15, both signs */
        float x = (float)((uniform() < 0.5 ? -1 : 1) * ldexp(1.0 + uniform(), (int)(uniform() * 41) - 26));
        check_nearest(x, ba_f32_to_f16(x), ba_f16_to_f32_ref, "f16");
        check_nearest(x, ba_f32_to_bf16(x), ba_bf16_to_f32_ref, "bf16");
    }
}

/* ---- dense kernels ------------------------------------------------------------------- */

static void test_linear_fast_matches_reference(void **state)
{
    (void)state;
    const size_t shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {33, 64, 192}, {64, 100, 17}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        size_t n = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
        float *x = random_floats(n * in, 1.0f), *w = random_floats(in * out, 0.5f);
        float *b = random_floats(out, 1.0f);
        float *fast = random_floats(n * out, 1.0f), *ref = random_floats(n * out, 1.0f);
        for (int layout = 0; layout < 2; layout++)
            for (int with_bias = 0; with_bias < 2; with_bias++) {
                ba_linear(x, n, in, w, (ba_weight_layout)layout, out, with_bias ? b : NULL, fast);
                ba_linear_ref(x, n, in, w, (ba_weight_layout)layout, out, with_bias ? b : NULL, ref);
                double diff = max_abs_diff(fast, ref, n * out);
                if (diff > 1e-5)
                    fail_msg("linear %zux%zux%zu layout %d bias %d: max diff %g", n, in, out,
                             layout, with_bias, diff);
            }
        /* Layouts agree with each other on a transposed weight. */
        float *wt = malloc(in * out * sizeof *wt);
        for (size_t i = 0; i < in; i++)
            for (size_t j = 0; j < out; j++) wt[j * in + i] = w[i * out + j];
        ba_linear(x, n, in, w, BA_WEIGHT_IN_OUT, out, b, fast);
        ba_linear(x, n, in, wt, BA_WEIGHT_OUT_IN, out, b, ref);
        assert_true(max_abs_diff(fast, ref, n * out) < 1e-5);
        free(wt);
        free(x), free(w), free(b), free(fast), free(ref);
    }
}

static void test_layernorm_fast_matches_reference(void **state)
{
    (void)state;
    size_t n = 9, d = 768;
    float *x = random_floats(n * d, 3.0f), *g = random_floats(d, 1.0f), *b = random_floats(d, 1.0f);
    for (size_t i = 0; i < n * d; i++) x[i] += 5.0f; /* a mean far from zero */
    float *fast = malloc(n * d * sizeof *fast), *ref = malloc(n * d * sizeof *ref);
    ba_layernorm(x, n, d, g, b, 1e-5f, fast);
    ba_layernorm_ref(x, n, d, g, b, 1e-5f, ref);
    double diff = max_abs_diff(fast, ref, n * d);
    if (diff > 1e-5) fail_msg("layernorm: max diff %g", diff);
    /* In place gives the same. */
    ba_layernorm(x, n, d, g, b, 1e-5f, x);
    assert_true(max_abs_diff(x, fast, n * d) == 0);
    /* Unit gamma, zero beta: each row has mean 0 and variance ~1. */
    for (size_t j = 0; j < d; j++) g[j] = 1, b[j] = 0;
    ba_layernorm_ref(ref, 1, d, g, b, 0.0f, fast);
    double mean = 0, var = 0;
    for (size_t j = 0; j < d; j++) mean += fast[j];
    for (size_t j = 0; j < d; j++) var += fast[j] * fast[j];
    assert_true(fabs(mean / d) < 1e-6 && fabs(var / d - 1) < 1e-5);
    free(x), free(g), free(b), free(fast), free(ref);
}

static void test_gelu_fast_matches_reference(void **state)
{
    (void)state;
    size_t n = 10001;
    float *fast = malloc(n * sizeof *fast), *ref = malloc(n * sizeof *ref);
    for (size_t i = 0; i < n; i++) fast[i] = ref[i] = (float)(-12.0 + 24.0 * i / (n - 1));
    ba_gelu_new(fast, n);
    ba_gelu_new_ref(ref, n);
    double diff = max_abs_diff(fast, ref, n);
    if (diff > 2e-6) fail_msg("gelu_new: max diff %g", diff);
    /* Known values of the tanh approximation. */
    float v[3] = {0.0f, 1.0f, -1.0f};
    ba_gelu_new_ref(v, 3);
    assert_true(v[0] == 0.0f && fabs(v[1] - 0.8411919906) < 1e-7 && fabs(v[2] + 0.1588080094) < 1e-7);
    free(fast), free(ref);
}

static void test_softmax_fast_matches_reference(void **state)
{
    (void)state;
    size_t rows = 5, cols = 300, ld = 310;
    float *fast = random_floats(rows * ld, 20.0f);
    float *ref = malloc(rows * ld * sizeof *ref);
    memcpy(ref, fast, rows * ld * sizeof *ref);
    fast[3] = ref[3] = 500.0f; /* needs the max subtracted */
    ba_softmax_rows(fast, rows, cols, ld);
    ba_softmax_rows_ref(ref, rows, cols, ld);
    assert_true(max_abs_diff(fast, ref, rows * ld) < 1e-6);
    for (size_t i = 0; i < rows; i++) {
        double s = 0;
        for (size_t j = 0; j < cols; j++) s += fast[i * ld + j];
        assert_true(fabs(s - 1) < 1e-5);
    }
    free(fast), free(ref);
}

static void check_attention(size_t n, int n_heads, int n_kv_heads, int d_head)
{
    size_t ld_q = (size_t)n_heads * d_head + 3, ld_kv = (size_t)n_kv_heads * d_head + 1;
    size_t ld_out = (size_t)n_heads * d_head + 2;
    float *q = random_floats(n * ld_q, 2.0f), *k = random_floats(n * ld_kv, 2.0f);
    float *v = random_floats(n * ld_kv, 1.0f);
    float *fast = calloc(n * ld_out, sizeof *fast), *ref = calloc(n * ld_out, sizeof *ref);
    float *scores = malloc(ba_attention_scratch_floats(n) * sizeof *scores);
    float scale = 1.0f / sqrtf((float)d_head);
    ba_attention_causal(q, ld_q, k, v, ld_kv, n, n_heads, n_kv_heads, d_head, scale, fast, ld_out,
                        scores);
    ba_attention_causal_ref(q, ld_q, k, v, ld_kv, n, n_heads, n_kv_heads, d_head, scale, ref,
                            ld_out);
    double diff = max_abs_diff(fast, ref, n * ld_out);
    if (diff > 1e-5)
        fail_msg("attention n=%zu heads=%d/%d d_head=%d: max diff %g", n, n_heads, n_kv_heads,
                 d_head, diff);
    /* Position 0 sees only itself: its output is its own value vector. */
    for (int h = 0; h < n_heads; h++)
        for (int c = 0; c < d_head; c++)
            assert_true(fabsf(ref[h * d_head + c] -
                              v[(h / (n_heads / n_kv_heads)) * d_head + c]) < 1e-6);
    /* Causality: changing the last position leaves the others alone. */
    for (size_t c = 0; c < ld_kv; c++) k[(n - 1) * ld_kv + c] += 1, v[(n - 1) * ld_kv + c] -= 1;
    ba_attention_causal(q, ld_q, k, v, ld_kv, n, n_heads, n_kv_heads, d_head, scale, ref, ld_out,
                        scores);
    assert_true(max_abs_diff(fast, ref, (n - 1) * ld_out) == 0);
    free(q), free(k), free(v), free(fast), free(ref), free(scores);
}

static void test_attention_fast_matches_reference(void **state)
{
    (void)state;
    check_attention(1, 2, 2, 8);
    check_attention(5, 4, 4, 16);
    check_attention(64, 4, 4, 16);
    check_attention(65, 3, 3, 7);
    check_attention(150, 4, 2, 16); /* grouped key/value heads */
}

static void test_logsumexp_streaming_matches_reference(void **state)
{
    (void)state;
    size_t n = 5003;
    float *x = random_floats(n, 30.0f);
    x[4000] = 1000.0f; /* overflow without the max subtracted */
    double ref = ba_logsumexp_ref(x, n);
    const size_t chunks[] = {1, 7, 2048, 5003};
    for (size_t c = 0; c < sizeof chunks / sizeof *chunks; c++) {
        double m = -INFINITY, s = 0;
        for (size_t at = 0; at < n; at += chunks[c])
            ba_logsumexp_accumulate(x + at, n - at < chunks[c] ? n - at : chunks[c], &m, &s);
        double got = m + log(s);
        if (fabs(got - ref) > 1e-9 * fabs(ref) + 1e-9)
            fail_msg("logsumexp in chunks of %zu: %.12g, reference %.12g", chunks[c], got, ref);
    }
    /* Exact for a uniform row: log(n) + value. */
    for (size_t i = 0; i < n; i++) x[i] = 2.5f;
    assert_true(fabs(ba_logsumexp_ref(x, n) - (2.5 + log((double)n))) < 1e-12);
    free(x);
}

/* ---- LLaMA building blocks ----------------------------------------------------------- */

static void test_linear_into_matches_reference(void **state)
{
    (void)state;
    const size_t shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {33, 64, 192}, {65, 100, 17}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        size_t n = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
        size_t ldx = in + 3, ldy = out + 5;
        float *x = random_floats(n * ldx, 1.0f), *w = random_floats(out * in, 0.5f);
        float *fast = random_floats(n * ldy, 1.0f), *ref = malloc(n * ldy * sizeof *ref);
        for (int acc = 0; acc < 2; acc++) {
            memcpy(ref, fast, n * ldy * sizeof *ref);
            float *before = malloc(n * ldy * sizeof *before);
            memcpy(before, fast, n * ldy * sizeof *before);
            ba_linear_into(x, n, in, ldx, w, out, acc, fast, ldy);
            ba_linear_into_ref(x, n, in, ldx, w, out, acc, ref, ldy);
            double diff = max_abs_diff(fast, ref, n * ldy);
            if (diff > 1e-5)
                fail_msg("linear_into %zux%zux%zu accumulate %d: max diff %g", n, in, out, acc,
                         diff);
            /* Columns past `out` are left alone. */
            for (size_t i = 0; i < n; i++)
                for (size_t j = out; j < ldy; j++) assert_true(fast[i * ldy + j] == before[i * ldy + j]);
            free(before);
        }
        /* Without accumulation it is ba_linear with the [out][in] layout. */
        float *plain = malloc(n * out * sizeof *plain), *packed = malloc(n * in * sizeof *packed);
        for (size_t i = 0; i < n; i++) memcpy(packed + i * in, x + i * ldx, in * sizeof *x);
        ba_linear(packed, n, in, w, BA_WEIGHT_OUT_IN, out, NULL, plain);
        ba_linear_into(x, n, in, ldx, w, out, 0, fast, ldy);
        for (size_t i = 0; i < n; i++)
            assert_true(max_abs_diff(fast + i * ldy, plain + i * out, out) < 1e-5);
        free(plain), free(packed);
        free(x), free(w), free(fast), free(ref);
    }
}

static void test_rmsnorm_fast_matches_reference(void **state)
{
    (void)state;
    const size_t widths[] = {4096, 67, 5};
    for (size_t k = 0; k < sizeof widths / sizeof *widths; k++) {
        size_t n = 9, d = widths[k];
        float *x = random_floats(n * d, 3.0f), *w = random_floats(d, 2.0f);
        for (size_t i = 0; i < n * d; i++) x[i] += 5.0f; /* no mean subtraction in RMSNorm */
        float *fast = malloc(n * d * sizeof *fast), *ref = malloc(n * d * sizeof *ref);
        ba_rmsnorm(x, n, d, w, 1e-5f, fast);
        ba_rmsnorm_ref(x, n, d, w, 1e-5f, ref);
        double diff = max_abs_diff(fast, ref, n * d);
        if (diff > 2e-6) fail_msg("rmsnorm d=%zu: max diff %g", d, diff);
        ba_rmsnorm(x, n, d, w, 1e-5f, x); /* in place gives the same */
        assert_true(max_abs_diff(x, fast, n * d) == 0);
        free(x), free(w), free(fast), free(ref);
    }
    /* Known values: [3, 4] has mean square 12.5; the weight scales each column. */
    float x[2] = {3.0f, 4.0f}, w[2] = {1.0f, 2.0f}, y[2];
    ba_rmsnorm(x, 1, 2, w, 0.0f, y);
    assert_true(fabs(y[0] - 3 / sqrt(12.5)) < 1e-6 && fabs(y[1] - 8 / sqrt(12.5)) < 1e-6);
    /* eps matters: mean square 12.5 + eps 12.5 halves the square. */
    ba_rmsnorm(x, 1, 2, w, 12.5f, y);
    assert_true(fabs(y[0] - 3 / 5.0) < 1e-6 && fabs(y[1] - 8 / 5.0) < 1e-6);
    /* A zero row stays zero (eps keeps it finite). */
    float z[3] = {0}, ones[3] = {1, 1, 1};
    ba_rmsnorm(z, 1, 3, ones, 1e-6f, z);
    assert_true(z[0] == 0 && z[1] == 0 && z[2] == 0);
}

static void test_silu_and_swiglu_match_reference(void **state)
{
    (void)state;
    size_t n = 20001;
    float *fast = malloc(n * sizeof *fast), *ref = malloc(n * sizeof *ref);
    for (size_t i = 0; i < n; i++) fast[i] = ref[i] = (float)(-100.0 + 200.0 * i / (n - 1));
    ba_silu(fast, n);
    ba_silu_ref(ref, n);
    for (size_t i = 0; i < n; i++) {
        double tol = 1e-6 * fmax(1.0, fabs(ref[i]));
        if (!(fabs((double)fast[i] - ref[i]) <= tol))
            fail_msg("silu(%g): fast %.9g, reference %.9g", -100.0 + 200.0 * i / (n - 1),
                     fast[i], ref[i]);
    }
    float v[3] = {0.0f, 1.0f, -1.0f};
    ba_silu(v, 3);
    assert_true(v[0] == 0.0f && fabs(v[1] - 0.7310585786) < 1e-7 && fabs(v[2] + 0.2689414214) < 1e-7);

    float *gate = random_floats(n, 8.0f), *up = random_floats(n, 3.0f);
    memcpy(fast, gate, n * sizeof *fast);
    memcpy(ref, gate, n * sizeof *ref);
    ba_swiglu(fast, up, n);
    ba_swiglu_ref(ref, up, n);
    assert_true(max_abs_diff(fast, ref, n) < 1e-5);
    /* It is silu(gate) * up. */
    ba_silu(gate, n);
    for (size_t i = 0; i < n; i++) assert_true(fast[i] == gate[i] * up[i]);
    free(fast), free(ref), free(gate), free(up);
}

static void check_rope(size_t n, int n_heads, int d_head, double theta, size_t first_pos)
{
    size_t ld = (size_t)n_heads * d_head + 3, half = (size_t)d_head / 2;
    float *x = random_floats(n * ld, 2.0f);
    float *fast = malloc(n * ld * sizeof *fast), *ref = malloc(n * ld * sizeof *ref);
    memcpy(fast, x, n * ld * sizeof *x);
    memcpy(ref, x, n * ld * sizeof *x);
    float *c = malloc(n * half * sizeof *c), *s = malloc(n * half * sizeof *s);
    ba_rope_tables(first_pos, n, d_head, theta, c, s);
    ba_rope(fast, n, ld, n_heads, d_head, c, s);
    ba_rope_ref(ref, n, ld, n_heads, d_head, first_pos, theta);
    /* Float32 angles (as Hugging Face's) err by about pos * 2^-24 radians. */
    double tol = 4e-6 + 2.0 * 2.0 * (double)(first_pos + n) * 0x1p-24;
    double diff = max_abs_diff(fast, ref, n * ld);
    if (diff > tol)
        fail_msg("rope n=%zu heads=%d d_head=%d theta=%g from %zu: max diff %g > %g", n, n_heads,
                 d_head, theta, first_pos, diff, tol);
    for (size_t t = 0; t < n; t++) {
        /* Columns past the heads are left alone. */
        for (size_t j = (size_t)n_heads * d_head; j < ld; j++)
            assert_true(fast[t * ld + j] == x[t * ld + j]);
        /* A rotation keeps the length of each pair (j, j + half). */
        for (int h = 0; h < n_heads; h++)
            for (size_t j = 0; j < half; j++) {
                size_t a = t * ld + (size_t)h * d_head + j, b = a + half;
                double before = hypot(x[a], x[b]), after = hypot(fast[a], fast[b]);
                assert_true(fabs(before - after) < 1e-5 * fmax(1.0, before));
            }
    }
    free(x), free(fast), free(ref), free(c), free(s);
}

static void test_rope_fast_matches_reference(void **state)
{
    (void)state;
    check_rope(1, 2, 8, 10000.0, 0);
    check_rope(300, 4, 128, 10000.0, 0); /* LLaMA-2's head width */
    check_rope(50, 3, 16, 500000.0, 0);
    check_rope(20, 2, 64, 10000.0, 4000);

    /* Position 0 is the identity. */
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, y[8], c[4], s[4];
    memcpy(y, x, sizeof x);
    ba_rope_tables(0, 1, 8, 10000.0, c, s);
    ba_rope(y, 1, 8, 1, 8, c, s);
    assert_true(memcmp(x, y, sizeof x) == 0);

    /* Half-split pairs: with d_head 4 the pairs are (0, 2) at frequency 1
     * and (1, 3) at 10000^-0.5; at position 1, e0 turns towards e2. */
    float e0[4] = {1, 0, 0, 0}, e1[4] = {0, 1, 0, 0}, c2[4], s2[4];
    ba_rope_tables(0, 2, 4, 10000.0, c2, s2);
    ba_rope(e0, 1, 4, 1, 4, c2 + 2, s2 + 2); /* row 1 of the tables: position 1 */
    ba_rope(e1, 1, 4, 1, 4, c2 + 2, s2 + 2);
    assert_true(fabs(e0[0] - cos(1.0)) < 1e-7 && e0[1] == 0 && fabs(e0[2] - sin(1.0)) < 1e-7 &&
                e0[3] == 0);
    assert_true(e1[0] == 0 && fabs(e1[1] - cos(0.01)) < 1e-7 && e1[2] == 0 &&
                fabs(e1[3] - sin(0.01)) < 1e-7);
    float r0[4] = {1, 0, 0, 0};
    ba_rope_ref(r0, 1, 4, 1, 4, 1, 10000.0);
    assert_true(max_abs_diff(r0, e0, 4) < 1e-7);

    /* Dot products of rotated vectors depend only on the distance. */
    float q[64], k[64];
    float *rq = random_floats(64, 1.0f), *rk = random_floats(64, 1.0f);
    double dots[2];
    for (int shift = 0; shift < 2; shift++) {
        memcpy(q, rq, sizeof q);
        memcpy(k, rk, sizeof k);
        ba_rope_ref(q, 1, 64, 1, 64, 17 + 40 * (size_t)shift, 10000.0);
        ba_rope_ref(k, 1, 64, 1, 64, 5 + 40 * (size_t)shift, 10000.0);
        dots[shift] = 0;
        for (int j = 0; j < 64; j++) dots[shift] += (double)q[j] * k[j];
    }
    assert_true(fabs(dots[0] - dots[1]) < 1e-5);
    free(rq), free(rk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_widening_matches_arithmetic),
        cmocka_unit_test(test_narrowing_known_values),
        cmocka_unit_test(test_narrowing_rounds_to_nearest),
        cmocka_unit_test(test_linear_fast_matches_reference),
        cmocka_unit_test(test_layernorm_fast_matches_reference),
        cmocka_unit_test(test_gelu_fast_matches_reference),
        cmocka_unit_test(test_softmax_fast_matches_reference),
        cmocka_unit_test(test_attention_fast_matches_reference),
        cmocka_unit_test(test_logsumexp_streaming_matches_reference),
        cmocka_unit_test(test_linear_into_matches_reference),
        cmocka_unit_test(test_rmsnorm_fast_matches_reference),
        cmocka_unit_test(test_silu_and_swiglu_match_reference),
        cmocka_unit_test(test_rope_fast_matches_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
