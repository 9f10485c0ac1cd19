/* ops_backward.c — the backward passes of the transformer operations of
 * GPT-2 and LLaMA, each with the forward variant that saves what it needs
 * and a plain `_ref` twin (double accumulation). Conventions (gradients
 * are added, NULL means frozen) are in lm/ops.h.
 *
 * The fast versions are plain float loops and sgemm calls; the element-wise
 * loops use libm (expf, tanhf), which GCC does not vectorise: a vectorised
 * exp as in ops.c is a later optimisation that the `_ref` twins will check. */
#include "brainalign/lm/ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* ---- residual ------------------------------------------------------------------------------ */

void ba_residual_backward(const float *dy, size_t n, float *dx)
{
    for (size_t i = 0; i < n; i++) dx[i] += dy[i];
}

void ba_residual_backward_ref(const float *dy, size_t n, float *dx)
{
    for (size_t i = 0; i < n; i++) dx[i] = (float)((double)dx[i] + (double)dy[i]);
}

/* ---- embeddings ------------------------------------------------------------------------------ */

static ba_status check_embedding(const int32_t *tokens, size_t n, size_t vocab, bool positions,
                                 size_t n_pos, size_t first_pos, const char *who, ba_error *err)
{
    for (size_t t = 0; t < n; t++)
        if (tokens[t] < 0 || (size_t)tokens[t] >= vocab)
            return ba_fail(err, BA_ERR_VALUE, "%s: token %zu is %d, expected an id in [0, %zu)",
                           who, t, (int)tokens[t], vocab);
    if (positions && (first_pos > n_pos || n > n_pos - first_pos))
        return ba_fail(err, BA_ERR_VALUE,
                       "%s: positions %zu..%zu exceed the %zu learned positions", who, first_pos,
                       first_pos + n, n_pos);
    return BA_OK;
}

ba_status ba_embedding_fwd(const int32_t *tokens, size_t n, const float *wte, size_t vocab,
                           const float *wpe, size_t n_pos, size_t first_pos, size_t d,
                           float *out, ba_error *err)
{
    BA_CHECK(check_embedding(tokens, n, vocab, wpe != NULL, n_pos, first_pos,
                             "embedding forward", err));
    for (size_t t = 0; t < n; t++) {
        const float *e = wte + (size_t)tokens[t] * d;              /* [d] */
        const float *p = wpe ? wpe + (first_pos + t) * d : NULL;   /* [d] */
        float *o = out + t * d;                                    /* [d] */
        for (size_t j = 0; j < d; j++) o[j] = p ? e[j] + p[j] : e[j];
    }
    return BA_OK;
}

ba_status ba_embedding_backward(const float *dout, const int32_t *tokens, size_t n, size_t d,
                                size_t vocab, size_t n_pos, size_t first_pos, float *dwte,
                                float *dwpe, float *d_input_embeds, ba_error *err)
{
    BA_CHECK(check_embedding(tokens, n, vocab, dwpe != NULL, n_pos, first_pos,
                             "embedding backward", err));
    for (size_t t = 0; t < n; t++) {
        const float *g = dout + t * d; /* [d] */
        if (dwte) {
            float *row = dwte + (size_t)tokens[t] * d;
            for (size_t j = 0; j < d; j++) row[j] += g[j];
        }
        if (dwpe) {
            float *row = dwpe + (first_pos + t) * d;
            for (size_t j = 0; j < d; j++) row[j] += g[j];
        }
        if (d_input_embeds)
            for (size_t j = 0; j < d; j++) d_input_embeds[t * d + j] += g[j];
    }
    return BA_OK;
}

ba_status ba_embedding_backward_ref(const float *dout, const int32_t *tokens, size_t n,
                                    size_t d, size_t vocab, size_t n_pos, size_t first_pos,
                                    float *dwte, float *dwpe, float *d_input_embeds,
                                    ba_error *err)
{
    BA_CHECK(check_embedding(tokens, n, vocab, dwpe != NULL, n_pos, first_pos,
                             "embedding backward", err));
    /* Each distinct token once, at its first occurrence: the sum over all
     * its occurrences in double, added to the gradient row. */
    if (dwte)
        for (size_t t = 0; t < n; t++) {
            bool first = true;
            for (size_t u = 0; u < t && first; u++) first = tokens[u] != tokens[t];
            if (!first) continue;
            for (size_t j = 0; j < d; j++) {
                double s = dwte[(size_t)tokens[t] * d + j];
                for (size_t u = t; u < n; u++)
                    if (tokens[u] == tokens[t]) s += dout[u * d + j];
                dwte[(size_t)tokens[t] * d + j] = (float)s;
            }
        }
    for (size_t t = 0; t < n; t++)
        for (size_t j = 0; j < d; j++) {
            if (dwpe)
                dwpe[(first_pos + t) * d + j] =
                    (float)((double)dwpe[(first_pos + t) * d + j] + dout[t * d + j]);
            if (d_input_embeds)
                d_input_embeds[t * d + j] =
                    (float)((double)d_input_embeds[t * d + j] + dout[t * d + j]);
        }
    return BA_OK;
}

/* ---- layer norm -------------------------------------------------------------------------------- */

void ba_layernorm_fwd(const float *x, size_t n, size_t d, const float *gamma, const float *beta,
                      float eps, float *y, float *mean, float *rstd)
{
    for (size_t i = 0; i < n; i++) {
        const float *row = x + i * d; /* [d] */
        float *dst = y + i * d;       /* [d] */
        float sum = 0.0f;
        for (size_t j = 0; j < d; j++) sum += row[j];
        float m = sum / (float)d;
        float sq = 0.0f;
        for (size_t j = 0; j < d; j++) {
            float c = row[j] - m;
            sq += c * c;
        }
        float r = 1.0f / sqrtf(sq / (float)d + eps);
        mean[i] = m;
        rstd[i] = r;
        for (size_t j = 0; j < d; j++) dst[j] = (row[j] - m) * r * gamma[j] + beta[j];
    }
}

void ba_layernorm_fwd_ref(const float *x, size_t n, size_t d, const float *gamma,
                          const float *beta, float eps, float *y, float *mean, float *rstd)
{
    for (size_t i = 0; i < n; i++) {
        double m = 0, var = 0;
        for (size_t j = 0; j < d; j++) m += x[i * d + j];
        m /= (double)d;
        for (size_t j = 0; j < d; j++) var += (x[i * d + j] - m) * (x[i * d + j] - m);
        var /= (double)d;
        double r = 1.0 / sqrt(var + (double)eps);
        mean[i] = (float)m;
        rstd[i] = (float)r;
        for (size_t j = 0; j < d; j++)
            y[i * d + j] = (float)((x[i * d + j] - m) * r * gamma[j] + beta[j]);
    }
}

/* With xhat = (x - mean) rstd and g = dy gamma:
 *   dx = rstd (g - mean_j(g) - xhat mean_j(g xhat)). */
void ba_layernorm_backward(const float *dy, const float *x, const float *mean,
                           const float *rstd, const float *gamma, size_t n, size_t d, float *dx,
                           float *dgamma, float *dbeta)
{
    for (size_t i = 0; i < n; i++) {
        const float *g_row = dy + i * d, *x_row = x + i * d; /* [d] each */
        float m = mean[i], r = rstd[i];
        float sum_g = 0.0f, sum_gx = 0.0f;
        for (size_t j = 0; j < d; j++) {
            float xhat = (x_row[j] - m) * r;
            float g = g_row[j] * gamma[j];
            sum_g += g;
            sum_gx += g * xhat;
        }
        float mean_g = sum_g / (float)d, mean_gx = sum_gx / (float)d;
        for (size_t j = 0; j < d; j++) {
            float xhat = (x_row[j] - m) * r;
            if (dx) dx[i * d + j] += r * (g_row[j] * gamma[j] - mean_g - xhat * mean_gx);
            if (dgamma) dgamma[j] += g_row[j] * xhat;
            if (dbeta) dbeta[j] += g_row[j];
        }
    }
}

void ba_layernorm_backward_ref(const float *dy, const float *x, const float *mean,
                               const float *rstd, const float *gamma, size_t n, size_t d,
                               float *dx, float *dgamma, float *dbeta)
{
    if (dx)
        for (size_t i = 0; i < n; i++) {
            double sum_g = 0, sum_gx = 0;
            for (size_t j = 0; j < d; j++) {
                double xhat = ((double)x[i * d + j] - mean[i]) * rstd[i];
                double g = (double)dy[i * d + j] * gamma[j];
                sum_g += g;
                sum_gx += g * xhat;
            }
            for (size_t j = 0; j < d; j++) {
                double xhat = ((double)x[i * d + j] - mean[i]) * rstd[i];
                double g = (double)dy[i * d + j] * gamma[j];
                dx[i * d + j] = (float)(dx[i * d + j] +
                                        rstd[i] * (g - sum_g / (double)d - xhat * sum_gx / (double)d));
            }
        }
    for (size_t j = 0; j < d; j++) {
        double sg = 0, sb = 0;
        for (size_t i = 0; i < n; i++) {
            double xhat = ((double)x[i * d + j] - mean[i]) * rstd[i];
            sg += dy[i * d + j] * xhat;
            sb += dy[i * d + j];
        }
        if (dgamma) dgamma[j] = (float)(dgamma[j] + sg);
        if (dbeta) dbeta[j] = (float)(dbeta[j] + sb);
    }
}

/* ---- RMS norm ------------------------------------------------------------------------------------ */

void ba_rmsnorm_fwd(const float *x, size_t n, size_t d, const float *w, float eps, float *y,
                    float *rstd)
{
    for (size_t i = 0; i < n; i++) {
        const float *row = x + i * d; /* [d] */
        float *dst = y + i * d;       /* [d] */
        float sq = 0.0f;
        for (size_t j = 0; j < d; j++) sq += row[j] * row[j];
        float r = 1.0f / sqrtf(sq / (float)d + eps);
        rstd[i] = r;
        for (size_t j = 0; j < d; j++) dst[j] = w[j] * (row[j] * r);
    }
}

void ba_rmsnorm_fwd_ref(const float *x, size_t n, size_t d, const float *w, float eps, float *y,
                        float *rstd)
{
    for (size_t i = 0; i < n; i++) {
        double sq = 0;
        for (size_t j = 0; j < d; j++) sq += (double)x[i * d + j] * x[i * d + j];
        double r = 1.0 / sqrt(sq / (double)d + (double)eps);
        rstd[i] = (float)r;
        for (size_t j = 0; j < d; j++) y[i * d + j] = (float)(w[j] * (x[i * d + j] * r));
    }
}

/* y = w x r with r = (mean(x^2) + eps)^(-1/2), g = dy w:
 *   dx = r g - x r^3 mean_j(g x),  dw += dy x r. */
void ba_rmsnorm_backward(const float *dy, const float *x, const float *rstd, const float *w,
                         size_t n, size_t d, float *dx, float *dw)
{
    for (size_t i = 0; i < n; i++) {
        const float *g_row = dy + i * d, *x_row = x + i * d; /* [d] each */
        float r = rstd[i];
        if (dx) {
            float sum_gx = 0.0f;
            for (size_t j = 0; j < d; j++) sum_gx += g_row[j] * w[j] * x_row[j];
            float c = r * r * r * (sum_gx / (float)d);
            for (size_t j = 0; j < d; j++) dx[i * d + j] += r * g_row[j] * w[j] - c * x_row[j];
        }
        if (dw)
            for (size_t j = 0; j < d; j++) dw[j] += g_row[j] * x_row[j] * r;
    }
}

void ba_rmsnorm_backward_ref(const float *dy, const float *x, const float *rstd, const float *w,
                             size_t n, size_t d, float *dx, float *dw)
{
    if (dx)
        for (size_t i = 0; i < n; i++) {
            double r = rstd[i], sum_gx = 0;
            for (size_t j = 0; j < d; j++) sum_gx += (double)dy[i * d + j] * w[j] * x[i * d + j];
            for (size_t j = 0; j < d; j++)
                dx[i * d + j] = (float)(dx[i * d + j] + r * dy[i * d + j] * w[j] -
                                        r * r * r * sum_gx / (double)d * x[i * d + j]);
        }
    if (dw)
        for (size_t j = 0; j < d; j++) {
            double s = 0;
            for (size_t i = 0; i < n; i++) s += (double)dy[i * d + j] * x[i * d + j] * rstd[i];
            dw[j] = (float)(dw[j] + s);
        }
}

/* ---- linear layers ---------------------------------------------------------------------------------- */

void ba_linear_backward(const float *dy, const float *x, size_t n, size_t in, const float *w,
                        ba_weight_layout layout, size_t out, float *dx, float *dw, float *db)
{
    if (n == 0 || in == 0 || out == 0) return;
    bool in_out = layout == BA_WEIGHT_IN_OUT;
    if (dx) /* dx [n][in] += dy [n][out] W^T: W [in][out] (transposed) or [out][in] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, in_out ? CblasTrans : CblasNoTrans, (int)n,
                    (int)in, (int)out, 1.0f, dy, (int)out, w, in_out ? (int)out : (int)in, 1.0f,
                    dx, (int)in);
    if (dw) {
        if (in_out) /* dw [in][out] += x^T [in][n] dy [n][out] */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)in, (int)out, (int)n, 1.0f,
                        x, (int)in, dy, (int)out, 1.0f, dw, (int)out);
        else /* dw [out][in] += dy^T [out][n] x [n][in] */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)in, (int)n, 1.0f,
                        dy, (int)out, x, (int)in, 1.0f, dw, (int)in);
    }
    if (db)
        for (size_t t = 0; t < n; t++)
            for (size_t o = 0; o < out; o++) db[o] += dy[t * out + o];
}

void ba_linear_backward_ref(const float *dy, const float *x, size_t n, size_t in,
                            const float *w, ba_weight_layout layout, size_t out, float *dx,
                            float *dw, float *db)
{
    bool in_out = layout == BA_WEIGHT_IN_OUT;
    if (dx)
        for (size_t t = 0; t < n; t++)
            for (size_t i = 0; i < in; i++) {
                double s = dx[t * in + i];
                for (size_t o = 0; o < out; o++)
                    s += (double)dy[t * out + o] * (in_out ? w[i * out + o] : w[o * in + i]);
                dx[t * in + i] = (float)s;
            }
    if (dw)
        for (size_t i = 0; i < in; i++)
            for (size_t o = 0; o < out; o++) {
                float *g = in_out ? &dw[i * out + o] : &dw[o * in + i];
                double s = *g;
                for (size_t t = 0; t < n; t++) s += (double)x[t * in + i] * dy[t * out + o];
                *g = (float)s;
            }
    if (db)
        for (size_t o = 0; o < out; o++) {
            double s = db[o];
            for (size_t t = 0; t < n; t++) s += dy[t * out + o];
            db[o] = (float)s;
        }
}

static ba_status check_half(ba_dtype dtype, const char *who, ba_error *err)
{
    if (dtype != BA_DTYPE_BF16 && dtype != BA_DTYPE_F16)
        return ba_fail(err, BA_ERR_USAGE, "%s: weights of dtype %s, expected BF16 or F16", who,
                       ba_dtype_name(dtype));
    return BA_OK;
}

size_t ba_linear_backward_half_scratch_floats(size_t in, size_t out)
{
    size_t row = in > out ? in : out;
    return (size_t)BA_LINEAR_HALF_BLOCK * (row ? row : 1);
}

ba_status ba_linear_backward_dx_half(const float *dy, size_t n, size_t in, const uint16_t *w,
                                     ba_dtype dtype, ba_weight_layout layout, size_t out,
                                     float *dx, float *scratch, ba_error *err)
{
    BA_CHECK(check_half(dtype, "linear backward", err));
    if (n == 0 || in == 0 || out == 0) return BA_OK;
    bool in_out = layout == BA_WEIGHT_IN_OUT;
    size_t rows = in_out ? in : out, row_len = in_out ? out : in;
    for (size_t r0 = 0; r0 < rows; r0 += BA_LINEAR_HALF_BLOCK) {
        size_t nr = rows - r0 < BA_LINEAR_HALF_BLOCK ? rows - r0 : BA_LINEAR_HALF_BLOCK;
        /* scratch [nr][row_len]: weight rows r0..r0+nr widened */
        if (dtype == BA_DTYPE_BF16) ba_bf16_to_f32(w + r0 * row_len, nr * row_len, scratch);
        else ba_f16_to_f32(w + r0 * row_len, nr * row_len, scratch);
        if (in_out) /* dx[:, r0..r0+nr) (row stride in) += dy [n][out] block^T [out][nr] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)nr, (int)out, 1.0f,
                        dy, (int)out, scratch, (int)out, 1.0f, dx + r0, (int)in);
        else /* dx [n][in] += dy[:, r0..r0+nr) (row stride out) block [nr][in] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)in, (int)nr,
                        1.0f, dy + r0, (int)out, scratch, (int)in, 1.0f, dx, (int)in);
    }
    return BA_OK;
}

ba_status ba_linear_backward_dx_half_ref(const float *dy, size_t n, size_t in,
                                         const uint16_t *w, ba_dtype dtype,
                                         ba_weight_layout layout, size_t out, float *dx,
                                         ba_error *err)
{
    BA_CHECK(check_half(dtype, "linear backward", err));
    bool in_out = layout == BA_WEIGHT_IN_OUT;
    for (size_t t = 0; t < n; t++)
        for (size_t i = 0; i < in; i++) {
            double s = dx[t * in + i];
            for (size_t o = 0; o < out; o++) {
                uint16_t bits = in_out ? w[i * out + o] : w[o * in + i];
                float wv = dtype == BA_DTYPE_BF16 ? ba_bf16_to_f32_ref(bits) : ba_f16_to_f32_ref(bits);
                s += (double)dy[t * out + o] * wv;
            }
            dx[t * in + i] = (float)s;
        }
    return BA_OK;
}

/* ---- activations --------------------------------------------------------------------------------------- */

/* gelu(x) = 0.5 x (1 + tanh(u)), u = c (x + a x^3):
 * gelu'(x) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) c (1 + 3 a x^2). */
void ba_gelu_new_backward(const float *x, const float *dy, size_t n, float *dx)
{
    const float c = 0.7978845608028654f, a = 0.044715f;
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float t = tanhf(c * (v + a * v * v * v));
        float dg = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * c * (1.0f + 3.0f * a * v * v);
        dx[i] += dy[i] * dg;
    }
}

void ba_gelu_new_backward_ref(const float *x, const float *dy, size_t n, float *dx)
{
    const double pi = 3.14159265358979323846, c = sqrt(2.0 / pi), a = 0.044715;
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        double t = tanh(c * (v + a * v * v * v));
        double dg = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * c * (1.0 + 3.0 * a * v * v);
        dx[i] = (float)(dx[i] + dy[i] * dg);
    }
}

/* silu'(x) = s (1 + x (1 - s)), s = sigmoid(x). */
static inline float sigmoid_f(float v) { return 1.0f / (1.0f + expf(-v)); }

void ba_silu_backward(const float *x, const float *dy, size_t n, float *dx)
{
    for (size_t i = 0; i < n; i++) {
        float s = sigmoid_f(x[i]);
        dx[i] += dy[i] * (s * (1.0f + x[i] * (1.0f - s)));
    }
}

void ba_silu_backward_ref(const float *x, const float *dy, size_t n, float *dx)
{
    for (size_t i = 0; i < n; i++) {
        double v = x[i], s = 1.0 / (1.0 + exp(-v));
        dx[i] = (float)(dx[i] + dy[i] * s * (1.0 + v * (1.0 - s)));
    }
}

void ba_swiglu_backward(const float *gate, const float *up, const float *dy, size_t n,
                        float *dgate, float *dup)
{
    for (size_t i = 0; i < n; i++) {
        float g = gate[i], s = sigmoid_f(g);
        if (dgate) dgate[i] += dy[i] * up[i] * (s * (1.0f + g * (1.0f - s)));
        if (dup) dup[i] += dy[i] * (g * s);
    }
}

void ba_swiglu_backward_ref(const float *gate, const float *up, const float *dy, size_t n,
                            float *dgate, float *dup)
{
    for (size_t i = 0; i < n; i++) {
        double g = gate[i], s = 1.0 / (1.0 + exp(-g));
        if (dgate) dgate[i] = (float)(dgate[i] + (double)dy[i] * up[i] * s * (1.0 + g * (1.0 - s)));
        if (dup) dup[i] = (float)(dup[i] + (double)dy[i] * g * s);
    }
}

/* ---- rotary embedding ------------------------------------------------------------------------------------ */

/* Forward: (a, b) -> (a c - b s, b c + a s). Its transpose (= inverse):
 * (ga, gb) -> (ga c + gb s, gb c - ga s). */
void ba_rope_backward(float *dx, size_t n, size_t ld, int n_heads, int d_head,
                      const float *cos_tab, const float *sin_tab)
{
    size_t half = (size_t)d_head / 2;
    for (size_t t = 0; t < n; t++) {
        const float *c = cos_tab + t * half, *s = sin_tab + t * half; /* [half] each */
        for (int h = 0; h < n_heads; h++) {
            float *lo = dx + t * ld + (size_t)h * d_head, *hi = lo + half;
            for (size_t j = 0; j < half; j++) {
                float a = lo[j], b = hi[j];
                lo[j] = a * c[j] + b * s[j];
                hi[j] = b * c[j] - a * s[j];
            }
        }
    }
}

void ba_rope_backward_ref(float *dx, size_t n, size_t ld, int n_heads, int d_head,
                          size_t first_pos, double theta)
{
    size_t half = (size_t)d_head / 2;
    for (size_t t = 0; t < n; t++)
        for (int h = 0; h < n_heads; h++) {
            float *g = dx + t * ld + (size_t)h * d_head;
            for (size_t j = 0; j < half; j++) {
                double angle = (double)(first_pos + t) * pow(theta, -2.0 * (double)j / d_head);
                double c = cos(angle), s = sin(angle), a = g[j], b = g[j + half];
                g[j] = (float)(a * c + b * s);
                g[j + half] = (float)(b * c - a * s);
            }
        }
}

/* ---- causal attention --------------------------------------------------------------------------------------- */

/* Query rows go in blocks; a block needs only the keys up to its last row. */
#define ATTENTION_BLOCK 64

void ba_attention_causal_fwd_ref(const float *q, size_t ld_q, const float *k, const float *v,
                                 size_t ld_kv, size_t n, int n_heads, int n_kv_heads,
                                 int d_head, float scale, float *out, size_t ld_out, float *lse)
{
    int group = n_heads / n_kv_heads;
    for (int h = 0; h < n_heads; h++) {
        size_t qo = (size_t)h * d_head, kvo = (size_t)(h / group) * d_head;
        for (size_t i = 0; i < n; i++) {
            double m = -INFINITY, sum = 0, acc[d_head];
            for (size_t j = 0; j <= i; j++) {
                double s = 0;
                for (int c = 0; c < d_head; c++)
                    s += (double)q[i * ld_q + qo + c] * k[j * ld_kv + kvo + c];
                m = s * scale > m ? s * scale : m;
            }
            for (int c = 0; c < d_head; c++) acc[c] = 0;
            for (size_t j = 0; j <= i; j++) {
                double s = 0;
                for (int c = 0; c < d_head; c++)
                    s += (double)q[i * ld_q + qo + c] * k[j * ld_kv + kvo + c];
                double p = exp(s * scale - m);
                sum += p;
                for (int c = 0; c < d_head; c++) acc[c] += p * v[j * ld_kv + kvo + c];
            }
            for (int c = 0; c < d_head; c++) out[i * ld_out + qo + c] = (float)(acc[c] / sum);
            lse[(size_t)h * n + i] = (float)(m + log(sum));
        }
    }
}

size_t ba_attention_backward_scratch_floats(size_t n)
{
    return 2 * (size_t)ATTENTION_BLOCK * (n ? n : 1);
}

/* With p_ij = exp(s_ij - lse_i), s_ij = scale q_i.k_j (j <= i), o_i = sum_j p_ij v_j:
 *   dv_j += sum_i p_ij do_i
 *   dp_ij = do_i . v_j,  D_i = do_i . o_i = sum_j p_ij dp_ij
 *   ds_ij = p_ij (dp_ij - D_i)
 *   dq_i += scale sum_j ds_ij k_j,  dk_j += scale sum_i ds_ij q_i. */
void ba_attention_causal_backward(const float *dout, size_t ld_out, const float *q, size_t ld_q,
                                  const float *k, const float *v, size_t ld_kv,
                                  const float *out, const float *lse, size_t n, int n_heads,
                                  int n_kv_heads, int d_head, float scale, float *dq, float *dk,
                                  float *dv, float *scratch)
{
    int group = n_heads / n_kv_heads;
    float *p_tile = scratch;                                   /* [rows][cols] */
    float *ds_tile = scratch + (size_t)ATTENTION_BLOCK * n;    /* [rows][cols] */
    for (int h = 0; h < n_heads; h++) {
        size_t qo = (size_t)h * d_head, kvo = (size_t)(h / group) * d_head;
        for (size_t r0 = 0; r0 < n; r0 += ATTENTION_BLOCK) {
            size_t r1 = r0 + ATTENTION_BLOCK < n ? r0 + ATTENTION_BLOCK : n;
            size_t rows = r1 - r0, cols = r1;
            /* p = exp(scale q k^T - lse), recomputed; dp = do v^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)cols, d_head,
                        scale, q + r0 * ld_q + qo, (int)ld_q, k + kvo, (int)ld_kv, 0.0f, p_tile,
                        (int)cols);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)cols, d_head,
                        1.0f, dout + r0 * ld_out + qo, (int)ld_out, v + kvo, (int)ld_kv, 0.0f,
                        ds_tile, (int)cols);
            for (size_t i = 0; i < rows; i++) {
                size_t visible = r0 + i + 1;
                float *p = p_tile + i * cols, *ds = ds_tile + i * cols;
                const float *do_i = dout + (r0 + i) * ld_out + qo, *o_i = out + (r0 + i) * ld_out + qo;
                float l = lse[(size_t)h * n + r0 + i], big_d = 0.0f;
                for (int c = 0; c < d_head; c++) big_d += do_i[c] * o_i[c];
                for (size_t j = 0; j < visible; j++) {
                    p[j] = expf(p[j] - l);
                    ds[j] = p[j] * (ds[j] - big_d);
                }
                for (size_t j = visible; j < cols; j++) p[j] = ds[j] = 0.0f;
            }
            /* dv[0..cols) += p^T do;  dq[r0..r1) += scale ds k;  dk[0..cols) += scale ds^T q */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)cols, d_head, (int)rows,
                        1.0f, p_tile, (int)cols, dout + r0 * ld_out + qo, (int)ld_out, 1.0f,
                        dv + kvo, (int)ld_kv);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, d_head, (int)cols,
                        scale, ds_tile, (int)cols, k + kvo, (int)ld_kv, 1.0f, dq + r0 * ld_q + qo,
                        (int)ld_q);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)cols, d_head, (int)rows,
                        scale, ds_tile, (int)cols, q + r0 * ld_q + qo, (int)ld_q, 1.0f, dk + kvo,
                        (int)ld_kv);
        }
    }
}

void ba_attention_causal_backward_ref(const float *dout, size_t ld_out, const float *q,
                                      size_t ld_q, const float *k, const float *v, size_t ld_kv,
                                      const float *out, const float *lse, size_t n, int n_heads,
                                      int n_kv_heads, int d_head, float scale, float *dq,
                                      float *dk, float *dv)
{
    int group = n_heads / n_kv_heads;
    /* dq row by row; dk and dv key by key (summed over the group's heads and
     * every query row that sees the key), each in one double accumulator. */
    for (int h = 0; h < n_heads; h++) {
        size_t qo = (size_t)h * d_head, kvo = (size_t)(h / group) * d_head;
        for (size_t i = 0; i < n; i++) {
            double big_d = 0, acc[d_head];
            for (int c = 0; c < d_head; c++) {
                big_d += (double)dout[i * ld_out + qo + c] * out[i * ld_out + qo + c];
                acc[c] = dq[i * ld_q + qo + c];
            }
            for (size_t j = 0; j <= i; j++) {
                double s = 0, dp = 0;
                for (int c = 0; c < d_head; c++) {
                    s += (double)q[i * ld_q + qo + c] * k[j * ld_kv + kvo + c];
                    dp += (double)dout[i * ld_out + qo + c] * v[j * ld_kv + kvo + c];
                }
                double p = exp(s * scale - lse[(size_t)h * n + i]), ds = p * (dp - big_d);
                for (int c = 0; c < d_head; c++) acc[c] += scale * ds * k[j * ld_kv + kvo + c];
            }
            for (int c = 0; c < d_head; c++) dq[i * ld_q + qo + c] = (float)acc[c];
        }
    }
    for (int kh = 0; kh < n_kv_heads; kh++) {
        size_t kvo = (size_t)kh * d_head;
        for (size_t j = 0; j < n; j++) {
            double acc_k[d_head], acc_v[d_head];
            for (int c = 0; c < d_head; c++) {
                acc_k[c] = dk[j * ld_kv + kvo + c];
                acc_v[c] = dv[j * ld_kv + kvo + c];
            }
            for (int h = kh * group; h < (kh + 1) * group; h++) {
                size_t qo = (size_t)h * d_head;
                for (size_t i = j; i < n; i++) {
                    double big_d = 0, s = 0, dp = 0;
                    for (int c = 0; c < d_head; c++) {
                        big_d += (double)dout[i * ld_out + qo + c] * out[i * ld_out + qo + c];
                        s += (double)q[i * ld_q + qo + c] * k[j * ld_kv + kvo + c];
                        dp += (double)dout[i * ld_out + qo + c] * v[j * ld_kv + kvo + c];
                    }
                    double p = exp(s * scale - lse[(size_t)h * n + i]), ds = p * (dp - big_d);
                    for (int c = 0; c < d_head; c++) {
                        acc_v[c] += p * dout[i * ld_out + qo + c];
                        acc_k[c] += scale * ds * q[i * ld_q + qo + c];
                    }
                }
            }
            for (int c = 0; c < d_head; c++) {
                dk[j * ld_kv + kvo + c] = (float)acc_k[c];
                dv[j * ld_kv + kvo + c] = (float)acc_v[c];
            }
        }
    }
}

/* ---- softmax cross-entropy over the vocabulary ---------------------------------------------------------------- */

static ba_status check_targets(const int32_t *target, size_t n, size_t vocab, const char *who,
                               ba_error *err)
{
    for (size_t t = 0; t < n; t++)
        if (target[t] != BA_LABEL_IGNORE && (target[t] < 0 || (size_t)target[t] >= vocab))
            return ba_fail(err, BA_ERR_VALUE,
                           "%s: target %zu is %d, expected %d (masked) or an id in [0, %zu)", who,
                           t, (int)target[t], BA_LABEL_IGNORE, vocab);
    return BA_OK;
}

ba_status ba_cross_entropy_chunked(const float *h, size_t n, size_t d, const float *w,
                                   size_t vocab, const int32_t *target, float grad_scale,
                                   size_t row_chunk, size_t vocab_chunk, float *tile,
                                   double *row_stats, double *loss_sum, size_t *count,
                                   float *dh, float *dw, ba_error *err)
{
    if (row_chunk == 0 || vocab_chunk == 0)
        return ba_fail(err, BA_ERR_USAGE, "cross-entropy: chunks of %zu rows and %zu vocabulary "
                       "entries, expected both > 0", row_chunk, vocab_chunk);
    BA_CHECK(check_targets(target, n, vocab, "cross-entropy", err));
    double total = 0;
    size_t counted = 0;
    double *row_max = row_stats, *row_sum = row_stats + row_chunk; /* [row_chunk] each */
    double *row_target = row_stats + 2 * row_chunk;                /* [row_chunk]     */
    for (size_t r0 = 0; r0 < n; r0 += row_chunk) {
        size_t rows = n - r0 < row_chunk ? n - r0 : row_chunk;
        const float *hc = h + r0 * d; /* [rows][d] */
        for (size_t i = 0; i < rows; i++) {
            row_max[i] = -INFINITY;
            row_sum[i] = 0;
            row_target[i] = 0;
        }
        /* Pass 1: streaming log-sum-exp of every row over the vocabulary chunks. */
        for (size_t v0 = 0; v0 < vocab; v0 += vocab_chunk) {
            size_t cols = vocab - v0 < vocab_chunk ? vocab - v0 : vocab_chunk;
            /* tile [rows][cols] = h[r0..) w[v0..v0+cols)^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)cols, (int)d,
                        1.0f, hc, (int)d, w + v0 * d, (int)d, 0.0f, tile, (int)cols);
            for (size_t i = 0; i < rows; i++) {
                int32_t tg = target[r0 + i];
                if (tg == BA_LABEL_IGNORE) continue;
                ba_logsumexp_accumulate(tile + i * cols, cols, &row_max[i], &row_sum[i]);
                if ((size_t)tg >= v0 && (size_t)tg < v0 + cols)
                    row_target[i] = tile[i * cols + ((size_t)tg - v0)];
            }
        }
        for (size_t i = 0; i < rows; i++) {
            if (target[r0 + i] == BA_LABEL_IGNORE) continue;
            row_max[i] += log(row_sum[i]); /* now the row's log-sum-exp */
            total += row_max[i] - row_target[i];
            counted++;
        }
        if (!dh && !dw) continue;
        /* Pass 2: g = grad_scale (softmax - onehot), zero on masked rows;
         * dh += g w_chunk, dw_chunk += g^T h. */
        for (size_t v0 = 0; v0 < vocab; v0 += vocab_chunk) {
            size_t cols = vocab - v0 < vocab_chunk ? vocab - v0 : vocab_chunk;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)cols, (int)d,
                        1.0f, hc, (int)d, w + v0 * d, (int)d, 0.0f, tile, (int)cols);
            for (size_t i = 0; i < rows; i++) {
                float *g = tile + i * cols;
                int32_t tg = target[r0 + i];
                if (tg == BA_LABEL_IGNORE) {
                    memset(g, 0, cols * sizeof *g);
                    continue;
                }
                float l = (float)row_max[i];
                for (size_t j = 0; j < cols; j++) g[j] = grad_scale * expf(g[j] - l);
                if ((size_t)tg >= v0 && (size_t)tg < v0 + cols) g[(size_t)tg - v0] -= grad_scale;
            }
            if (dh) /* dh[r0..) [rows][d] += g [rows][cols] w_chunk [cols][d] */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)d,
                            (int)cols, 1.0f, tile, (int)cols, w + v0 * d, (int)d, 1.0f,
                            dh + r0 * d, (int)d);
            if (dw) /* dw_chunk [cols][d] += g^T [cols][rows] h [rows][d] */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)cols, (int)d,
                            (int)rows, 1.0f, tile, (int)cols, hc, (int)d, 1.0f, dw + v0 * d,
                            (int)d);
        }
    }
    *loss_sum = total;
    *count = counted;
    return BA_OK;
}

static double dot_double(const float *a, const float *b, size_t d)
{
    double s = 0;
    for (size_t j = 0; j < d; j++) s += (double)a[j] * b[j];
    return s;
}

ba_status ba_cross_entropy_ref(const float *h, size_t n, size_t d, const float *w, size_t vocab,
                               const int32_t *target, float grad_scale, double *loss_sum,
                               size_t *count, float *dh, float *dw, ba_error *err)
{
    BA_CHECK(check_targets(target, n, vocab, "cross-entropy", err));
    double total = 0;
    size_t counted = 0;
    for (size_t t = 0; t < n; t++) {
        if (target[t] == BA_LABEL_IGNORE) continue;
        const float *ht = h + t * d; /* [d] */
        double m = -INFINITY, sum = 0;
        for (size_t v = 0; v < vocab; v++) {
            double z = dot_double(ht, w + v * d, d);
            m = z > m ? z : m;
        }
        for (size_t v = 0; v < vocab; v++) sum += exp(dot_double(ht, w + v * d, d) - m);
        double lse = m + log(sum);
        total += lse - dot_double(ht, w + (size_t)target[t] * d, d);
        counted++;
        if (dh)
            for (size_t j = 0; j < d; j++) {
                double s = dh[t * d + j];
                for (size_t v = 0; v < vocab; v++) {
                    double g = exp(dot_double(ht, w + v * d, d) - lse) - (v == (size_t)target[t]);
                    s += grad_scale * g * w[v * d + j];
                }
                dh[t * d + j] = (float)s;
            }
    }
    if (dw)
        for (size_t v = 0; v < vocab; v++) {
            double acc[d ? d : 1];
            for (size_t j = 0; j < d; j++) acc[j] = dw[v * d + j];
            for (size_t t = 0; t < n; t++) {
                if (target[t] == BA_LABEL_IGNORE) continue;
                const float *ht = h + t * d;
                double m = -INFINITY, sum = 0;
                for (size_t u = 0; u < vocab; u++) {
                    double z = dot_double(ht, w + u * d, d);
                    m = z > m ? z : m;
                }
                for (size_t u = 0; u < vocab; u++) sum += exp(dot_double(ht, w + u * d, d) - m);
                double g = exp(dot_double(ht, w + v * d, d) - m) / sum - (v == (size_t)target[t]);
                for (size_t j = 0; j < d; j++) acc[j] += grad_scale * g * ht[j];
            }
            for (size_t j = 0; j < d; j++) dw[v * d + j] = (float)acc[j];
        }
    *loss_sum = total;
    *count = counted;
    return BA_OK;
}
