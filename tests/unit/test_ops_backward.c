/* test_ops_backward.c — the backward passes of lm/ops.h: each fast
 * backward against its `_ref` twin, and each `_ref` backward against
 * central finite differences of an independent double-precision forward
 * written here.
 *
 * Finite differences: the scalar L = sum(dy * f(inputs)) in double, its
 * derivative by every input (h = 1e-6 max(1, |x|): truncation ~h^2 ~ 1e-12,
 * rounding ~1e-16 |L| / h ~ 1e-9), compared with the `_ref` gradient by the
 * norm-relative error ||g_ref - g_fd|| / ||g_fd||. The `_ref` gradient is
 * rounded to float32 and uses statistics the forward saved in float32
 * (mean, rstd, lse: ~6e-8 relative each), so it is good to a few 1e-7;
 * the tolerance FD_TOL = 1e-5 leaves a factor ~30 for that, while a
 * missing or wrong term (a factor, a sign, a forgotten branch) moves the
 * gradient by 1e-2 or more.
 *
 * Fast against reference: float32 sums (and expf, tanhf) against double
 * ones, on inputs of O(1): observed <= 3e-7, FAST_TOL = 5e-6 norm-relative. The gradient
 * buffers start with random values in both, so that the accumulation
 * convention (+=) is checked too. */
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/kernels/kernels.h"
#include "brainalign/lm/ops.h"

#define FD_TOL 1e-5
#define FAST_TOL 5e-6

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

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

static float *zeros(size_t n)
{
    float *x = calloc(n ? n : 1, sizeof *x);
    assert_non_null(x);
    return x;
}

static float *copy_of(const float *x, size_t n)
{
    float *y = malloc((n ? n : 1) * sizeof *y);
    assert_non_null(y);
    memcpy(y, x, n * sizeof *y);
    return y;
}

/* ||a - b|| / ||b|| in double (0 when both vanish). */
static double rel_err(const float *a, const float *b, size_t n)
{
    double e = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        e += d * d;
        s += (double)b[i] * b[i];
    }
    if (s == 0) return e == 0 ? 0 : INFINITY;
    return sqrt(e / s);
}

static void expect_close(const char *what, const float *fast, const float *ref, size_t n,
                         double tol)
{
    double r = rel_err(fast, ref, n);
    if (!(r <= tol)) fail_msg("%s: relative error %.3g > %.3g", what, r, tol);
}

/* ---- finite differences --------------------------------------------------------------------- */

typedef double (*loss_fn)(const double *p, const void *ctx);

/* Central differences of f at p [np] against grad [np]. */
static void fd_check(const char *what, loss_fn f, const void *ctx, const float *p, size_t np,
                     const float *grad)
{
    double *x = malloc(np * sizeof *x);
    float *num = malloc(np * sizeof *num);
    assert_non_null(x);
    assert_non_null(num);
    for (size_t i = 0; i < np; i++) x[i] = p[i];
    for (size_t i = 0; i < np; i++) {
        double h = 1e-6 * fmax(1.0, fabs(x[i]));
        x[i] = (double)p[i] + h;
        double fp = f(x, ctx);
        x[i] = (double)p[i] - h;
        double fm = f(x, ctx);
        x[i] = p[i];
        num[i] = (float)((fp - fm) / (2 * h));
    }
    double r = rel_err(grad, num, np);
    if (!(r <= FD_TOL)) fail_msg("%s: reference backward vs finite differences: relative error "
                                 "%.3g > %.3g", what, r, FD_TOL);
    free(x);
    free(num);
}

/* ---- layer norm ------------------------------------------------------------------------------- */

typedef struct {
    size_t n, d;
    float eps;
    const float *dy;
} norm_ctx;

/* p = [x (n*d), gamma (d), beta (d)] */
static double layernorm_loss(const double *p, const void *vctx)
{
    const norm_ctx *c = vctx;
    const double *x = p, *g = p + c->n * c->d, *b = g + c->d;
    double L = 0;
    for (size_t i = 0; i < c->n; i++) {
        double m = 0, v = 0;
        for (size_t j = 0; j < c->d; j++) m += x[i * c->d + j];
        m /= c->d;
        for (size_t j = 0; j < c->d; j++) v += (x[i * c->d + j] - m) * (x[i * c->d + j] - m);
        v /= c->d;
        for (size_t j = 0; j < c->d; j++)
            L += c->dy[i * c->d + j] * ((x[i * c->d + j] - m) / sqrt(v + c->eps) * g[j] + b[j]);
    }
    return L;
}

static void test_layernorm_backward(void **state)
{
    (void)state;
    size_t n = 5, d = 24, np = n * d + 2 * d;
    float eps = 1e-5f;
    float *p = random_floats(np, 1.0f), *dy = random_floats(n * d, 1.0f);
    for (size_t j = 0; j < d; j++) p[n * d + j] += 1.0f; /* gamma around 1 */
    float *x = p, *gamma = p + n * d, *beta = gamma + d;
    float *y = zeros(n * d), *y_ref = zeros(n * d), *y_plain = zeros(n * d);
    float mean[5], rstd[5], mean_ref[5], rstd_ref[5];
    ba_layernorm_fwd(x, n, d, gamma, beta, eps, y, mean, rstd);
    ba_layernorm_fwd_ref(x, n, d, gamma, beta, eps, y_ref, mean_ref, rstd_ref);
    ba_layernorm(x, n, d, gamma, beta, eps, y_plain);
    expect_close("layernorm_fwd vs ref", y, y_ref, n * d, FAST_TOL);
    expect_close("layernorm_fwd rstd", rstd, rstd_ref, n, FAST_TOL);
    assert_memory_equal(y, y_plain, n * d * sizeof *y); /* the same float arithmetic */

    float *g = zeros(np);
    ba_layernorm_backward_ref(dy, x, mean_ref, rstd_ref, gamma, n, d, g, g + n * d,
                              g + n * d + d);
    norm_ctx c = {n, d, eps, dy};
    fd_check("layernorm", layernorm_loss, &c, p, np, g);

    float *g0 = random_floats(np, 1.0f), *gf = copy_of(g0, np), *gr = copy_of(g0, np);
    ba_layernorm_backward(dy, x, mean, rstd, gamma, n, d, gf, gf + n * d, gf + n * d + d);
    ba_layernorm_backward_ref(dy, x, mean, rstd, gamma, n, d, gr, gr + n * d, gr + n * d + d);
    expect_close("layernorm backward fast vs ref", gf, gr, np, FAST_TOL);
    /* Frozen gamma/beta and no dx: nothing written. */
    float *gn = copy_of(g0, np);
    ba_layernorm_backward(dy, x, mean, rstd, gamma, n, d, NULL, NULL, NULL);
    ba_layernorm_backward(dy, x, mean, rstd, gamma, n, d, gn, NULL, NULL);
    assert_memory_equal(gn + n * d, g0 + n * d, 2 * d * sizeof *gn);
    expect_close("layernorm dx only", gn, gr, n * d, FAST_TOL);
    free(p), free(dy), free(y), free(y_ref), free(y_plain), free(g), free(g0), free(gf), free(gr),
        free(gn);
}

/* ---- RMS norm ------------------------------------------------------------------------------------ */

/* p = [x (n*d), w (d)] */
static double rmsnorm_loss(const double *p, const void *vctx)
{
    const norm_ctx *c = vctx;
    const double *x = p, *w = p + c->n * c->d;
    double L = 0;
    for (size_t i = 0; i < c->n; i++) {
        double sq = 0;
        for (size_t j = 0; j < c->d; j++) sq += x[i * c->d + j] * x[i * c->d + j];
        double r = 1 / sqrt(sq / c->d + c->eps);
        for (size_t j = 0; j < c->d; j++) L += c->dy[i * c->d + j] * w[j] * x[i * c->d + j] * r;
    }
    return L;
}

static void test_rmsnorm_backward(void **state)
{
    (void)state;
    size_t n = 4, d = 20, np = n * d + d;
    float eps = 1e-6f;
    float *p = random_floats(np, 1.0f), *dy = random_floats(n * d, 1.0f);
    float *x = p, *w = p + n * d;
    float *y = zeros(n * d), *y_ref = zeros(n * d), *y_plain = zeros(n * d);
    float rstd[4], rstd_ref[4];
    ba_rmsnorm_fwd(x, n, d, w, eps, y, rstd);
    ba_rmsnorm_fwd_ref(x, n, d, w, eps, y_ref, rstd_ref);
    ba_rmsnorm(x, n, d, w, eps, y_plain);
    expect_close("rmsnorm_fwd vs ref", y, y_ref, n * d, FAST_TOL);
    expect_close("rmsnorm_fwd vs rmsnorm", y, y_plain, n * d, FAST_TOL);

    float *g = zeros(np);
    ba_rmsnorm_backward_ref(dy, x, rstd_ref, w, n, d, g, g + n * d);
    norm_ctx c = {n, d, eps, dy};
    fd_check("rmsnorm", rmsnorm_loss, &c, p, np, g);

    float *g0 = random_floats(np, 1.0f), *gf = copy_of(g0, np), *gr = copy_of(g0, np);
    ba_rmsnorm_backward(dy, x, rstd, w, n, d, gf, gf + n * d);
    ba_rmsnorm_backward_ref(dy, x, rstd, w, n, d, gr, gr + n * d);
    expect_close("rmsnorm backward fast vs ref", gf, gr, np, FAST_TOL);
    free(p), free(dy), free(y), free(y_ref), free(y_plain), free(g), free(g0), free(gf), free(gr);
}

/* ---- linear ---------------------------------------------------------------------------------------- */

typedef struct {
    size_t n, in, out;
    ba_weight_layout layout;
    const float *dy;
    const double *w_fixed; /* frozen widened weights (half test), else NULL */
} linear_ctx;

static double weight_at(const double *w, ba_weight_layout layout, size_t in, size_t out,
                        size_t i, size_t o)
{
    return layout == BA_WEIGHT_IN_OUT ? w[i * out + o] : w[o * in + i];
}

/* sum dy (x W + b) for x [n][in], W in its layout, b [out] or NULL. */
static double linear_value(const linear_ctx *c, const double *x, const double *w, const double *b)
{
    double L = 0;
    for (size_t t = 0; t < c->n; t++)
        for (size_t o = 0; o < c->out; o++) {
            double y = b ? b[o] : 0;
            for (size_t i = 0; i < c->in; i++)
                y += x[t * c->in + i] * weight_at(w, c->layout, c->in, c->out, i, o);
            L += c->dy[t * c->out + o] * y;
        }
    return L;
}

/* p = [x (n*in), W (in*out, its layout), b (out)] */
static double linear_loss(const double *p, const void *vctx)
{
    const linear_ctx *c = vctx;
    return linear_value(c, p, p + c->n * c->in, p + c->n * c->in + c->in * c->out);
}

/* p = x only, through the frozen c->w_fixed */
static double linear_dx_loss(const double *p, const void *vctx)
{
    const linear_ctx *c = vctx;
    return linear_value(c, p, c->w_fixed, NULL);
}

static void test_linear_backward(void **state)
{
    (void)state;
    const size_t shapes[][3] = {{3, 5, 4}, {6, 7, 9}};
    for (size_t s = 0; s < 2; s++)
        for (int layout = 0; layout < 2; layout++) {
            size_t n = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
            size_t np = n * in + in * out + out;
            float *p = random_floats(np, 1.0f), *dy = random_floats(n * out, 1.0f);
            float *x = p, *w = p + n * in;
            float *g = zeros(np);
            ba_linear_backward_ref(dy, x, n, in, w, (ba_weight_layout)layout, out, g, g + n * in,
                                   g + n * in + in * out);
            linear_ctx c = {n, in, out, (ba_weight_layout)layout, dy, NULL};
            fd_check(layout ? "linear [out,in]" : "linear [in,out]", linear_loss, &c, p, np, g);
            free(p), free(dy), free(g);
        }
    /* Fast against reference on larger shapes, with accumulation. */
    const size_t big[][3] = {{1, 1, 1}, {17, 64, 48}, {40, 33, 130}};
    for (size_t s = 0; s < 3; s++)
        for (int layout = 0; layout < 2; layout++) {
            size_t n = big[s][0], in = big[s][1], out = big[s][2];
            size_t ng = n * in + in * out + out;
            float *x = random_floats(n * in, 1.0f), *w = random_floats(in * out, 0.5f);
            float *dy = random_floats(n * out, 1.0f), *g0 = random_floats(ng, 1.0f);
            float *gf = copy_of(g0, ng), *gr = copy_of(g0, ng);
            ba_linear_backward(dy, x, n, in, w, (ba_weight_layout)layout, out, gf, gf + n * in,
                               gf + n * in + in * out);
            ba_linear_backward_ref(dy, x, n, in, w, (ba_weight_layout)layout, out, gr,
                                   gr + n * in, gr + n * in + in * out);
            expect_close("linear backward dx", gf, gr, n * in, FAST_TOL);
            expect_close("linear backward dw", gf + n * in, gr + n * in, in * out, FAST_TOL);
            expect_close("linear backward db", gf + n * in + in * out, gr + n * in + in * out,
                         out, FAST_TOL);
            /* Frozen weight and bias: their buffers untouched. */
            float *gn = copy_of(g0, ng);
            ba_linear_backward(dy, x, n, in, w, (ba_weight_layout)layout, out, gn, NULL, NULL);
            assert_memory_equal(gn + n * in, g0 + n * in, (in * out + out) * sizeof *gn);
            free(x), free(w), free(dy), free(g0), free(gf), free(gr), free(gn);
        }
}

static void test_linear_backward_half(void **state)
{
    (void)state;
    ba_error err;
    for (int kind = 0; kind < 2; kind++)
        for (int layout = 0; layout < 2; layout++) {
            ba_dtype dtype = kind ? BA_DTYPE_F16 : BA_DTYPE_BF16;
            /* in and out straddle BA_LINEAR_HALF_BLOCK so that blocks end mid-way */
            size_t n = 5, in = 70, out = 131;
            float *wf = random_floats(in * out, 0.5f), *dy = random_floats(n * out, 1.0f);
            uint16_t *wh = malloc(in * out * sizeof *wh);
            double *wd = malloc(in * out * sizeof *wd);
            float *ww = malloc(in * out * sizeof *ww);
            for (size_t i = 0; i < in * out; i++) {
                wh[i] = kind ? ba_f32_to_f16(wf[i]) : ba_f32_to_bf16(wf[i]);
                ww[i] = kind ? ba_f16_to_f32_ref(wh[i]) : ba_bf16_to_f32_ref(wh[i]);
                wd[i] = ww[i];
            }
            float *g0 = random_floats(n * in, 1.0f), *gf = copy_of(g0, n * in),
                  *gr = copy_of(g0, n * in), *g32 = copy_of(g0, n * in);
            float *scratch = malloc(ba_linear_backward_half_scratch_floats(in, out) * sizeof *scratch);
            assert_int_equal(ba_linear_backward_dx_half(dy, n, in, wh, dtype, (ba_weight_layout)layout,
                                                        out, gf, scratch, &err), BA_OK);
            assert_int_equal(ba_linear_backward_dx_half_ref(dy, n, in, wh, dtype,
                                                            (ba_weight_layout)layout, out, gr, &err),
                             BA_OK);
            expect_close("half linear dx fast vs ref", gf, gr, n * in, FAST_TOL);
            /* ... and equal to the float32 backward on the widened weights */
            ba_linear_backward_ref(dy, NULL, n, in, ww, (ba_weight_layout)layout, out, g32, NULL,
                                   NULL);
            expect_close("half linear dx vs widened f32", gr, g32, n * in, 1e-6);
            /* finite differences of x -> x W_widened */
            float *x = random_floats(n * in, 1.0f), *g = zeros(n * in);
            assert_int_equal(ba_linear_backward_dx_half_ref(dy, n, in, wh, dtype,
                                                            (ba_weight_layout)layout, out, g, &err),
                             BA_OK);
            linear_ctx c = {n, in, out, (ba_weight_layout)layout, dy, wd};
            fd_check("half linear dx", linear_dx_loss, &c, x, n * in, g);
            free(wf), free(dy), free(wh), free(wd), free(ww), free(g0), free(gf), free(gr),
                free(g32), free(scratch), free(x), free(g);
        }
    /* Other dtypes are refused without writing. */
    float dy[2] = {1, 2}, dx[2] = {3, 4}, scratch[BA_LINEAR_HALF_BLOCK * 2];
    uint16_t w[4] = {0};
    ba_error_clear(&err);
    assert_int_equal(ba_linear_backward_dx_half(dy, 1, 2, w, BA_DTYPE_F32, BA_WEIGHT_IN_OUT, 2, dx,
                                                scratch, &err), BA_ERR_USAGE);
    assert_non_null(strstr(err.message, "F32"));
    assert_true(dx[0] == 3 && dx[1] == 4);
}

/* ---- activations ----------------------------------------------------------------------------------- */

typedef struct {
    size_t n;
    const float *dy;
    int which; /* 0 gelu, 1 silu, 2 swiglu */
} act_ctx;

static double act_loss(const double *p, const void *vctx)
{
    const act_ctx *c = vctx;
    const double pi = 3.14159265358979323846;
    double L = 0;
    for (size_t i = 0; i < c->n; i++) {
        double v = p[i], y;
        if (c->which == 0) y = 0.5 * v * (1 + tanh(sqrt(2 / pi) * (v + 0.044715 * v * v * v)));
        else if (c->which == 1) y = v / (1 + exp(-v));
        else y = v / (1 + exp(-v)) * p[c->n + i];
        L += c->dy[i] * y;
    }
    return L;
}

static void test_activation_backward(void **state)
{
    (void)state;
    size_t n = 300;
    float *x = random_floats(2 * n, 4.0f), *dy = random_floats(n, 1.0f);
    for (int which = 0; which < 3; which++) {
        size_t np = which == 2 ? 2 * n : n;
        float *g = zeros(np), *g0 = random_floats(np, 1.0f);
        float *gf = copy_of(g0, np), *gr = copy_of(g0, np);
        const char *name = which == 0 ? "gelu_new" : which == 1 ? "silu" : "swiglu";
        if (which == 0) {
            ba_gelu_new_backward_ref(x, dy, n, g);
            ba_gelu_new_backward_ref(x, dy, n, gr);
            ba_gelu_new_backward(x, dy, n, gf);
        } else if (which == 1) {
            ba_silu_backward_ref(x, dy, n, g);
            ba_silu_backward_ref(x, dy, n, gr);
            ba_silu_backward(x, dy, n, gf);
        } else {
            ba_swiglu_backward_ref(x, x + n, dy, n, g, g + n);
            ba_swiglu_backward_ref(x, x + n, dy, n, gr, gr + n);
            ba_swiglu_backward(x, x + n, dy, n, gf, gf + n);
        }
        act_ctx c = {n, dy, which};
        fd_check(name, act_loss, &c, x, np, g);
        expect_close(name, gf, gr, np, FAST_TOL);
        free(g), free(g0), free(gf), free(gr);
    }
    free(x), free(dy);
}

/* ---- rotary embedding ------------------------------------------------------------------------------ */

typedef struct {
    size_t n, ld, first_pos;
    int n_heads, d_head;
    double theta;
    const float *dy;
} rope_ctx;

static double rope_loss(const double *p, const void *vctx)
{
    const rope_ctx *c = vctx;
    size_t half = (size_t)c->d_head / 2;
    double L = 0;
    for (size_t t = 0; t < c->n; t++)
        for (int h = 0; h < c->n_heads; h++)
            for (size_t j = 0; j < half; j++) {
                size_t lo = t * c->ld + (size_t)h * c->d_head + j, hi = lo + half;
                double a = (double)(c->first_pos + t) * pow(c->theta, -2.0 * j / c->d_head);
                L += c->dy[lo] * (p[lo] * cos(a) - p[hi] * sin(a)) +
                     c->dy[hi] * (p[hi] * cos(a) + p[lo] * sin(a));
            }
    /* columns past the heads (ld > n_heads d_head) pass through */
    for (size_t t = 0; t < c->n; t++)
        for (size_t j = (size_t)c->n_heads * c->d_head; j < c->ld; j++)
            L += c->dy[t * c->ld + j] * p[t * c->ld + j];
    return L;
}

static void test_rope_backward(void **state)
{
    (void)state;
    size_t n = 6, first_pos = 3;
    int n_heads = 3, d_head = 8;
    size_t ld = (size_t)n_heads * d_head + 2;
    double theta = 10000.0;
    float *x = random_floats(n * ld, 1.0f), *dy = random_floats(n * ld, 1.0f);
    float *g = copy_of(dy, n * ld);
    ba_rope_backward_ref(g, n, ld, n_heads, d_head, first_pos, theta);
    rope_ctx c = {n, ld, first_pos, n_heads, d_head, theta, dy};
    fd_check("rope", rope_loss, &c, x, n * ld, g);

    float *cos_tab = malloc(n * d_head / 2 * sizeof *cos_tab);
    float *sin_tab = malloc(n * d_head / 2 * sizeof *sin_tab);
    ba_rope_tables(first_pos, n, d_head, theta, cos_tab, sin_tab);
    float *gf = copy_of(dy, n * ld);
    ba_rope_backward(gf, n, ld, n_heads, d_head, cos_tab, sin_tab);
    expect_close("rope backward fast vs ref", gf, g, n * ld, FAST_TOL);
    /* the backward inverts the forward */
    ba_rope(gf, n, ld, n_heads, d_head, cos_tab, sin_tab);
    expect_close("rope(rope_backward(dy)) = dy", gf, dy, n * ld, 1e-6);
    free(x), free(dy), free(g), free(cos_tab), free(sin_tab), free(gf);
}

/* ---- causal attention --------------------------------------------------------------------------------- */

typedef struct {
    size_t n;
    int n_heads, n_kv, d_head;
    float scale;
    const float *dout; /* [n][n_heads d_head] */
} attn_ctx;

/* p = [q (n * n_heads d_head), k (n * n_kv d_head), v (same)], contiguous rows */
static double attention_loss(const double *p, const void *vctx)
{
    const attn_ctx *c = vctx;
    size_t ldq = (size_t)c->n_heads * c->d_head, ldkv = (size_t)c->n_kv * c->d_head;
    const double *q = p, *k = p + c->n * ldq, *v = k + c->n * ldkv;
    int group = c->n_heads / c->n_kv;
    double L = 0, s[c->n];
    for (int h = 0; h < c->n_heads; h++) {
        size_t qo = (size_t)h * c->d_head, ko = (size_t)(h / group) * c->d_head;
        for (size_t i = 0; i < c->n; i++) {
            double m = -INFINITY, z = 0;
            for (size_t j = 0; j <= i; j++) {
                s[j] = 0;
                for (int e = 0; e < c->d_head; e++) s[j] += q[i * ldq + qo + e] * k[j * ldkv + ko + e];
                s[j] *= c->scale;
                m = fmax(m, s[j]);
            }
            for (size_t j = 0; j <= i; j++) z += exp(s[j] - m);
            for (int e = 0; e < c->d_head; e++) {
                double o = 0;
                for (size_t j = 0; j <= i; j++) o += exp(s[j] - m) / z * v[j * ldkv + ko + e];
                L += c->dout[i * ldq + qo + e] * o;
            }
        }
    }
    return L;
}

static void test_attention_backward_fd(void **state)
{
    (void)state;
    const int configs[][3] = {{4, 2, 4}, {2, 2, 6}, {3, 1, 4}}; /* heads, kv heads, d_head */
    for (int cfg = 0; cfg < 3; cfg++) {
        size_t n = 5;
        int nh = configs[cfg][0], nkv = configs[cfg][1], dh = configs[cfg][2];
        size_t ldq = (size_t)nh * dh, ldkv = (size_t)nkv * dh, np = n * ldq + 2 * n * ldkv;
        float scale = 1.0f / sqrtf((float)dh);
        float *p = random_floats(np, 1.5f), *dout = random_floats(n * ldq, 1.0f);
        float *q = p, *k = p + n * ldq, *v = k + n * ldkv;
        float *out = zeros(n * ldq), *lse = zeros((size_t)nh * n), *g = zeros(np);
        ba_attention_causal_fwd_ref(q, ldq, k, v, ldkv, n, nh, nkv, dh, scale, out, ldq, lse);
        ba_attention_causal_backward_ref(dout, ldq, q, ldq, k, v, ldkv, out, lse, n, nh, nkv, dh,
                                         scale, g, g + n * ldq, g + n * ldq + n * ldkv);
        attn_ctx c = {n, nh, nkv, dh, scale, dout};
        fd_check("attention", attention_loss, &c, p, np, g);
        free(p), free(dout), free(out), free(lse), free(g);
    }
}

/* Fast against reference on GPT-2's packed layout (q, k, v side by side in
 * rows of 3 d, as c_attn writes them) and on LLaMA's GQA, over more than
 * one block of query rows. */
static void test_attention_backward_fast(void **state)
{
    (void)state;
    const int configs[][4] = {{4, 4, 8, 1}, {4, 2, 8, 0}, {2, 1, 16, 0}}; /* .., packed */
    for (int cfg = 0; cfg < 3; cfg++) {
        size_t n = 150;
        int nh = configs[cfg][0], nkv = configs[cfg][1], dh = configs[cfg][2];
        bool packed = configs[cfg][3];
        size_t dq_cols = (size_t)nh * dh, dkv_cols = (size_t)nkv * dh;
        size_t ldq = packed ? 3 * dq_cols : dq_cols, ldkv = packed ? 3 * dq_cols : dkv_cols;
        size_t qsz = n * ldq, kvsz = packed ? 0 : n * ldkv;
        float scale = 1.0f / sqrtf((float)dh);
        float *buf = random_floats(qsz + 2 * kvsz, 1.0f);
        const float *q = buf, *k = packed ? buf + dq_cols : buf + qsz;
        const float *v = packed ? buf + 2 * dq_cols : buf + qsz + kvsz;
        float *out = zeros(n * dq_cols), *out_ref = zeros(n * dq_cols), *out_plain = zeros(n * dq_cols);
        float *lse = zeros((size_t)nh * n), *lse_ref = zeros((size_t)nh * n);
        float *scores = malloc(ba_attention_scratch_floats(n) * sizeof *scores);
        ba_attention_causal_fwd(q, ldq, k, v, ldkv, n, nh, nkv, dh, scale, out, dq_cols, lse, scores);
        ba_attention_causal_fwd_ref(q, ldq, k, v, ldkv, n, nh, nkv, dh, scale, out_ref, dq_cols,
                                    lse_ref);
        ba_attention_causal(q, ldq, k, v, ldkv, n, nh, nkv, dh, scale, out_plain, dq_cols, scores);
        expect_close("attention fwd vs ref", out, out_ref, n * dq_cols, FAST_TOL);
        expect_close("attention fwd vs ba_attention_causal", out, out_plain, n * dq_cols, FAST_TOL);
        expect_close("attention lse vs ref", lse, lse_ref, (size_t)nh * n, FAST_TOL);

        float *dout = random_floats(n * dq_cols, 1.0f);
        size_t gsz = qsz + 2 * kvsz;
        float *g0 = random_floats(gsz, 1.0f), *gf = copy_of(g0, gsz), *gr = copy_of(g0, gsz);
        float *scratch = malloc(ba_attention_backward_scratch_floats(n) * sizeof *scratch);
        float *dqf = gf, *dkf = packed ? gf + dq_cols : gf + qsz;
        float *dvf = packed ? gf + 2 * dq_cols : gf + qsz + kvsz;
        float *dqr = gr, *dkr = packed ? gr + dq_cols : gr + qsz;
        float *dvr = packed ? gr + 2 * dq_cols : gr + qsz + kvsz;
        ba_attention_causal_backward(dout, dq_cols, q, ldq, k, v, ldkv, out, lse, n, nh, nkv, dh,
                                     scale, dqf, dkf, dvf, scratch);
        ba_attention_causal_backward_ref(dout, dq_cols, q, ldq, k, v, ldkv, out_ref, lse_ref, n,
                                         nh, nkv, dh, scale, dqr, dkr, dvr);
        expect_close("attention backward fast vs ref", gf, gr, gsz, FAST_TOL);
        free(buf), free(out), free(out_ref), free(out_plain), free(lse), free(lse_ref),
            free(scores), free(dout), free(g0), free(gf), free(gr), free(scratch);
    }
}

/* ---- embeddings ----------------------------------------------------------------------------------------- */

typedef struct {
    size_t n, d, vocab, n_pos, first_pos;
    const int32_t *tokens;
    const float *dout;
} embed_ctx;

/* p = [wte (vocab d), wpe (n_pos d)] */
static double embedding_loss(const double *p, const void *vctx)
{
    const embed_ctx *c = vctx;
    const double *wte = p, *wpe = p + c->vocab * c->d;
    double L = 0;
    for (size_t t = 0; t < c->n; t++)
        for (size_t j = 0; j < c->d; j++)
            L += c->dout[t * c->d + j] *
                 (wte[(size_t)c->tokens[t] * c->d + j] + wpe[(c->first_pos + t) * c->d + j]);
    return L;
}

static void test_embedding_backward(void **state)
{
    (void)state;
    ba_error err;
    size_t n = 7, d = 6, vocab = 9, n_pos = 12, first_pos = 2, np = (vocab + n_pos) * d;
    int32_t tokens[7] = {3, 0, 3, 8, 5, 3, 0}; /* repeats sum */
    float *p = random_floats(np, 1.0f), *dout = random_floats(n * d, 1.0f);
    float *out = zeros(n * d);
    assert_int_equal(ba_embedding_fwd(tokens, n, p, vocab, p + vocab * d, n_pos, first_pos, d, out,
                                      &err), BA_OK);
    assert_true(out[2 * d + 1] == p[3 * d + 1] + p[vocab * d + 4 * d + 1]);
    float *g = zeros(np), *din = zeros(n * d);
    assert_int_equal(ba_embedding_backward_ref(dout, tokens, n, d, vocab, n_pos, first_pos, g,
                                               g + vocab * d, din, &err), BA_OK);
    assert_memory_equal(din, dout, n * d * sizeof *din);
    embed_ctx c = {n, d, vocab, n_pos, first_pos, tokens, dout};
    fd_check("embedding", embedding_loss, &c, p, np, g);

    float *g0 = random_floats(np, 1.0f), *gf = copy_of(g0, np), *gr = copy_of(g0, np);
    assert_int_equal(ba_embedding_backward(dout, tokens, n, d, vocab, n_pos, first_pos, gf,
                                           gf + vocab * d, NULL, &err), BA_OK);
    assert_int_equal(ba_embedding_backward_ref(dout, tokens, n, d, vocab, n_pos, first_pos, gr,
                                               gr + vocab * d, NULL, &err), BA_OK);
    expect_close("embedding backward fast vs ref", gf, gr, np, FAST_TOL);
    /* Rows never read keep their value (token 1 and positions 0, 1, 9..11). */
    assert_memory_equal(gf + 1 * d, g0 + 1 * d, d * sizeof *gf);
    assert_memory_equal(gf + vocab * d, g0 + vocab * d, 2 * d * sizeof *gf);

    /* Bad token, positions past the table: refused, nothing written. */
    float *gb = copy_of(g0, np);
    int32_t bad[2] = {1, 9};
    ba_error_clear(&err);
    assert_int_equal(ba_embedding_backward(dout, bad, 2, d, vocab, n_pos, 0, gb, gb + vocab * d,
                                           NULL, &err), BA_ERR_VALUE);
    assert_non_null(strstr(err.message, "token 1 is 9"));
    assert_int_equal(ba_embedding_backward_ref(dout, tokens, n, d, vocab, n_pos, 6, gb,
                                               gb + vocab * d, NULL, &err), BA_ERR_VALUE);
    assert_int_equal(ba_embedding_fwd(tokens, n, p, vocab, p + vocab * d, n_pos, 6, d, out, &err),
                     BA_ERR_VALUE);
    assert_memory_equal(gb, g0, np * sizeof *gb);
    /* without positions (LLaMA) the position limit does not apply */
    assert_int_equal(ba_embedding_backward(dout, tokens, n, d, vocab, 0, 0, gb, NULL, NULL, &err),
                     BA_OK);
    free(p), free(dout), free(out), free(g), free(din), free(g0), free(gf), free(gr), free(gb);
}

/* ---- cross-entropy ------------------------------------------------------------------------------------------ */

typedef struct {
    size_t n, d, vocab;
    const int32_t *target;
    float grad_scale;
} ce_ctx;

/* p = [h (n d), w (vocab d)] */
static double ce_loss(const double *p, const void *vctx)
{
    const ce_ctx *c = vctx;
    const double *h = p, *w = p + c->n * c->d;
    double L = 0, z[c->vocab];
    for (size_t t = 0; t < c->n; t++) {
        if (c->target[t] == BA_LABEL_IGNORE) continue;
        double m = -INFINITY, s = 0;
        for (size_t v = 0; v < c->vocab; v++) {
            z[v] = 0;
            for (size_t j = 0; j < c->d; j++) z[v] += h[t * c->d + j] * w[v * c->d + j];
            m = fmax(m, z[v]);
        }
        for (size_t v = 0; v < c->vocab; v++) s += exp(z[v] - m);
        L += m + log(s) - z[c->target[t]];
    }
    return c->grad_scale * L;
}

static void test_cross_entropy(void **state)
{
    (void)state;
    ba_error err;
    size_t n = 10, d = 8, vocab = 50, np = (n + vocab) * d;
    int32_t target[10] = {4, BA_LABEL_IGNORE, 49, 0, 4, BA_LABEL_IGNORE, 17, 33, 2, 0};
    float *p = random_floats(np, 1.0f);
    float *h = p, *w = p + n * d;
    float grad_scale = 1.0f / 8;
    float *g = zeros(np);
    double loss_ref;
    size_t count_ref;
    assert_int_equal(ba_cross_entropy_ref(h, n, d, w, vocab, target, grad_scale, &loss_ref,
                                          &count_ref, g, g + n * d, &err), BA_OK);
    assert_int_equal(count_ref, 8);
    ce_ctx c = {n, d, vocab, target, grad_scale};
    double lp[np];
    for (size_t i = 0; i < np; i++) lp[i] = p[i];
    if (fabs(grad_scale * loss_ref - ce_loss(lp, &c)) > 1e-6 * fabs(ce_loss(lp, &c)))
        fail_msg("cross-entropy reference loss %.12g, direct %.12g", grad_scale * loss_ref,
                 ce_loss(lp, &c));
    fd_check("cross-entropy", ce_loss, &c, p, np, g);
    /* masked rows get no gradient */
    for (size_t j = 0; j < d; j++) assert_true(g[1 * d + j] == 0 && g[5 * d + j] == 0);

    /* The chunked version for chunk shapes that do and do not divide n and
     * the vocabulary, including one row / one entry at a time. */
    const size_t chunks[][2] = {{3, 7}, {10, 50}, {1, 1}, {4, 64}, {16, 16}};
    float *g0 = random_floats(np, 1.0f);
    for (size_t s = 0; s < sizeof chunks / sizeof *chunks; s++) {
        size_t rc = chunks[s][0], vc = chunks[s][1];
        float *tile = malloc(rc * vc * sizeof *tile);
        double *stats = malloc(3 * rc * sizeof *stats);
        float *gf = copy_of(g0, np), *gr = copy_of(g0, np);
        double loss;
        size_t count;
        assert_int_equal(ba_cross_entropy_chunked(h, n, d, w, vocab, target, grad_scale, rc, vc,
                                                  tile, stats, &loss, &count, gf, gf + n * d, &err),
                         BA_OK);
        assert_int_equal(ba_cross_entropy_ref(h, n, d, w, vocab, target, grad_scale, &loss_ref,
                                              &count_ref, gr, gr + n * d, &err), BA_OK);
        assert_int_equal(count, 8);
        if (fabs(loss - loss_ref) > 1e-5 * fabs(loss_ref))
            fail_msg("chunks %zux%zu: loss %.9g, reference %.9g", rc, vc, loss, loss_ref);
        expect_close("cross-entropy dh", gf, gr, n * d, FAST_TOL);
        expect_close("cross-entropy dw", gf + n * d, gr + n * d, vocab * d, FAST_TOL);
        /* loss only, and dh only (frozen output embedding) */
        float *gn = copy_of(g0, np);
        assert_int_equal(ba_cross_entropy_chunked(h, n, d, w, vocab, target, grad_scale, rc, vc,
                                                  tile, stats, &loss, &count, NULL, NULL, &err),
                         BA_OK);
        assert_memory_equal(gn, g0, np * sizeof *gn);
        if (fabs(loss - loss_ref) > 1e-5 * fabs(loss_ref)) fail_msg("loss-only run differs");
        assert_int_equal(ba_cross_entropy_chunked(h, n, d, w, vocab, target, grad_scale, rc, vc,
                                                  tile, stats, &loss, &count, gn, NULL, &err),
                         BA_OK);
        assert_memory_equal(gn + n * d, g0 + n * d, vocab * d * sizeof *gn);
        expect_close("cross-entropy dh only", gn, gr, n * d, FAST_TOL);
        free(tile), free(stats), free(gf), free(gr), free(gn);
    }

    /* All masked: zero loss, zero count, no gradient. */
    int32_t masked[10];
    for (size_t t = 0; t < n; t++) masked[t] = BA_LABEL_IGNORE;
    float tile[12];
    double stats[6], loss;
    size_t count;
    float *gm = copy_of(g0, np);
    assert_int_equal(ba_cross_entropy_chunked(h, n, d, w, vocab, masked, 1.0f, 2, 6, tile, stats,
                                              &loss, &count, gm, gm + n * d, &err), BA_OK);
    assert_true(loss == 0 && count == 0);
    assert_memory_equal(gm, g0, np * sizeof *gm);
    /* A target out of range, and a zero chunk, are refused before anything is written. */
    int32_t bad[10] = {4, 0, 0, 0, 0, 0, 0, 0, 0, 50};
    ba_error_clear(&err);
    assert_int_equal(ba_cross_entropy_chunked(h, n, d, w, vocab, bad, 1.0f, 2, 6, tile, stats,
                                              &loss, &count, gm, gm + n * d, &err), BA_ERR_VALUE);
    assert_non_null(strstr(err.message, "target 9 is 50"));
    bad[9] = -1;
    assert_int_equal(ba_cross_entropy_ref(h, n, d, w, vocab, bad, 1.0f, &loss, &count, gm,
                                          gm + n * d, &err), BA_ERR_VALUE);
    assert_int_equal(ba_cross_entropy_chunked(h, n, d, w, vocab, target, 1.0f, 0, 6, tile, stats,
                                              &loss, &count, gm, gm + n * d, &err), BA_ERR_USAGE);
    assert_memory_equal(gm, g0, np * sizeof *gm);
    free(p), free(g), free(g0), free(gm);
}

static void test_residual_backward(void **state)
{
    (void)state;
    float dy[3] = {1.5f, -2.0f, 0.25f}, dx[3] = {1.0f, 1.0f, 1.0f}, dr[3] = {1.0f, 1.0f, 1.0f};
    ba_residual_backward(dy, 3, dx);
    ba_residual_backward_ref(dy, 3, dr);
    assert_true(dx[0] == 2.5f && dx[1] == -1.0f && dx[2] == 1.25f);
    assert_memory_equal(dx, dr, sizeof dx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_residual_backward),
        cmocka_unit_test(test_embedding_backward),
        cmocka_unit_test(test_layernorm_backward),
        cmocka_unit_test(test_rmsnorm_backward),
        cmocka_unit_test(test_linear_backward),
        cmocka_unit_test(test_linear_backward_half),
        cmocka_unit_test(test_activation_backward),
        cmocka_unit_test(test_rope_backward),
        cmocka_unit_test(test_attention_backward_fd),
        cmocka_unit_test(test_attention_backward_fast),
        cmocka_unit_test(test_cross_entropy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
