/* ops.c — the transformer operations of GPT-2 and LLaMA (normalisation,
 * activations, softmax, causal attention, rotary embedding, log-sum-exp),
 * each with a plain `_ref` twin; weight products are in kernels/. */
#include "brainalign/lm/ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* ---- vector code for the running CPU ----------------------------------------------------- */

/* The element-wise loops below vectorise, but the build targets baseline
 * x86-64 (SSE2). On x86-64 with GCC or Clang each hot loop is also
 * compiled for AVX2 and AVX-512 and the best version is picked at load
 * time (ifunc). The arithmetic is the same in every version (ISO C mode:
 * no FMA contraction; the lane sums keep their order), so the results are
 * bitwise identical whichever version runs. Measured on GPT-2 small: about
 * 9 % less CPU time per window. */
#if defined(__x86_64__) && defined(__has_attribute) && !defined(__SANITIZE_ADDRESS__)
#if __has_attribute(target_clones)
#define BA_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef BA_VECTOR_CLONES
#define BA_VECTOR_CLONES
#endif

/* ---- a vectorisable exp ----------------------------------------------------------- */

/* exp(x) for float32 with a relative error of a few ulp: x = k ln2 + r,
 * |r| <= ln2/2, exp(r) by its Taylor polynomial to r^7, times 2^k built
 * in the exponent bits. Unlike libm's expf, loops over it vectorise. The
 * argument is clamped to [-87, 88] (so 2^k stays a normal float) on its
 * bit pattern: a float comparison would keep GCC from vectorising, as it
 * may raise a floating-point exception. NaN clamps too. */
static inline float exp_fast(float x)
{
    int32_t bits;
    memcpy(&bits, &x, sizeof bits);
    int32_t sign = bits & INT32_MIN, magnitude = bits & INT32_MAX;
    int32_t limit = sign ? 0x42ae0000 /* 87.0f */ : 0x42b00000 /* 88.0f */;
    magnitude = magnitude > limit ? limit : magnitude;
    bits = sign | magnitude;
    memcpy(&x, &bits, sizeof x);
    const float round_magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float k = (x * 1.44269504088896341f + round_magic) - round_magic;
    float r = x - k * 0.693145751953125f - k * 1.42860682030941723212e-6f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t e = ((int32_t)k + 127) * (1 << 23);
    float scale;
    memcpy(&scale, &e, sizeof scale);
    return p * scale;
}

/* Sums over eight independent lanes, so that the compiler may vectorise
 * them without reassociating a single float sum. */
#define LANES 8

/* dst[i] = exp(x[i] - shift); returns the sum. dst may equal x. */
BA_VECTOR_CLONES
static float exp_shifted_store(const float *x, size_t n, float shift, float *dst)
{
    float acc[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) {
            float e = exp_fast(x[i + l] - shift);
            dst[i + l] = e;
            acc[l] += e;
        }
    float sum = 0.0f;
    for (; i < n; i++) {
        dst[i] = exp_fast(x[i] - shift);
        sum += dst[i];
    }
    for (int l = 0; l < LANES; l++) sum += acc[l];
    return sum;
}

/* sum_i exp(x[i] - shift). */
BA_VECTOR_CLONES
static float exp_shifted_sum(const float *x, size_t n, float shift)
{
    float acc[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += exp_fast(x[i + l] - shift);
    float sum = 0.0f;
    for (; i < n; i++) sum += exp_fast(x[i] - shift);
    for (int l = 0; l < LANES; l++) sum += acc[l];
    return sum;
}

/* A float's bit pattern as an integer that orders like the float (an
 * involution: applying it twice gives the bits back). Integer maxima
 * vectorise where float comparisons do not. */
static inline int32_t order_key(int32_t bits) { return bits ^ ((bits >> 31) & INT32_MAX); }

BA_VECTOR_CLONES
static float max_of(const float *x, size_t n)
{
    int32_t acc[LANES];
    for (int l = 0; l < LANES; l++) acc[l] = order_key((int32_t)0xff800000); /* -inf */
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) {
            int32_t bits;
            memcpy(&bits, &x[i + l], sizeof bits);
            int32_t key = order_key(bits);
            acc[l] = key > acc[l] ? key : acc[l];
        }
    for (; i < n; i++) {
        int32_t bits;
        memcpy(&bits, &x[i], sizeof bits);
        int32_t key = order_key(bits);
        acc[0] = key > acc[0] ? key : acc[0];
    }
    int32_t best = acc[0];
    for (int l = 1; l < LANES; l++) best = acc[l] > best ? acc[l] : best;
    best = order_key(best);
    float m;
    memcpy(&m, &best, sizeof m);
    return m;
}

/* ---- normalisation and activations ------------------------------------------------ */

BA_VECTOR_CLONES
void ba_layernorm(const float *x, size_t n, size_t d, const float *gamma, const float *beta,
                  float eps, float *y)
{
    for (size_t i = 0; i < n; i++) {
        const float *row = x + i * d;
        float *dst = y + i * d;
        float sum = 0.0f;
        for (size_t j = 0; j < d; j++) sum += row[j];
        float mean = sum / (float)d;
        float sq = 0.0f;
        for (size_t j = 0; j < d; j++) {
            float c = row[j] - mean;
            sq += c * c;
        }
        float inv = 1.0f / sqrtf(sq / (float)d + eps);
        for (size_t j = 0; j < d; j++) dst[j] = (row[j] - mean) * inv * gamma[j] + beta[j];
    }
}

void ba_layernorm_ref(const float *x, size_t n, size_t d, const float *gamma,
                      const float *beta, float eps, float *y)
{
    for (size_t i = 0; i < n; i++) {
        double mean = 0, var = 0;
        for (size_t j = 0; j < d; j++) mean += x[i * d + j];
        mean /= (double)d;
        for (size_t j = 0; j < d; j++) var += (x[i * d + j] - mean) * (x[i * d + j] - mean);
        var /= (double)d;
        double inv = 1.0 / sqrt(var + (double)eps);
        for (size_t j = 0; j < d; j++)
            y[i * d + j] = (float)((x[i * d + j] - mean) * inv * gamma[j] + beta[j]);
    }
}

BA_VECTOR_CLONES
void ba_gelu_new(float *x, size_t n)
{
    const float c = 0.7978845608028654f; /* sqrt(2/pi) */
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float u = c * (v + 0.044715f * v * v * v);
        /* 1 + tanh(u) = 2 - 2 / (1 + exp(2u)) = 2 exp(2u) / (1 + exp(2u)) */
        float e = exp_fast(2.0f * u);
        x[i] = v * (e / (1.0f + e));
    }
}

void ba_gelu_new_ref(float *x, size_t n)
{
    const double pi = 3.14159265358979323846;
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        x[i] = (float)(0.5 * v * (1.0 + tanh(sqrt(2.0 / pi) * (v + 0.044715 * pow(v, 3.0)))));
    }
}

/* In place softmax of one row; returns its log-sum-exp (max + log(sum)),
 * which the attention forward of training keeps for the backward. */
static float softmax_row(float *row, size_t cols)
{
    float m = max_of(row, cols);
    float sum = exp_shifted_store(row, cols, m, row);
    float inv = 1.0f / sum;
    for (size_t j = 0; j < cols; j++) row[j] *= inv;
    return m + logf(sum);
}

void ba_softmax_rows(float *x, size_t rows, size_t cols, size_t ld)
{
    for (size_t i = 0; i < rows; i++) softmax_row(x + i * ld, cols);
}

void ba_softmax_rows_ref(float *x, size_t rows, size_t cols, size_t ld)
{
    for (size_t i = 0; i < rows; i++) {
        float *row = x + i * ld;
        double m = -INFINITY, sum = 0;
        for (size_t j = 0; j < cols; j++) m = row[j] > m ? row[j] : m;
        for (size_t j = 0; j < cols; j++) sum += exp((double)row[j] - m);
        for (size_t j = 0; j < cols; j++) row[j] = (float)(exp((double)row[j] - m) / sum);
    }
}

/* ---- attention -------------------------------------------------------------------- */

/* Query rows are processed in blocks; a block only needs the keys up to its
 * last row, which skips most of the masked upper triangle. */
#define ATTENTION_BLOCK 64

size_t ba_attention_scratch_floats(size_t n)
{
    return (size_t)ATTENTION_BLOCK * (n ? n : 1);
}

/* The causal attention of inference and of training (lse [n_heads][n], the
 * per-row log-sum-exp of the scaled scores, when not NULL): one loop, so
 * that a training forward computes bitwise what inference computes. */
static void attention_causal(const float *q, size_t ld_q, const float *k, const float *v,
                             size_t ld_kv, size_t n, int n_heads, int n_kv_heads, int d_head,
                             float scale, float *out, size_t ld_out, float *lse, float *scores)
{
    int group = n_heads / n_kv_heads;
    for (int h = 0; h < n_heads; h++) {
        const float *qh = q + (size_t)h * d_head;
        const float *kh = k + (size_t)(h / group) * d_head;
        const float *vh = v + (size_t)(h / group) * d_head;
        float *oh = out + (size_t)h * d_head;
        for (size_t r0 = 0; r0 < n; r0 += ATTENTION_BLOCK) {
            size_t r1 = r0 + ATTENTION_BLOCK < n ? r0 + ATTENTION_BLOCK : n;
            size_t rows = r1 - r0, cols = r1;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)cols, d_head,
                        scale, qh + r0 * ld_q, (int)ld_q, kh, (int)ld_kv, 0.0f, scores,
                        (int)cols);
            for (size_t i = 0; i < rows; i++) {
                float *row = scores + i * cols;
                size_t visible = r0 + i + 1;
                float row_lse = softmax_row(row, visible);
                if (lse) lse[(size_t)h * n + r0 + i] = row_lse;
                memset(row + visible, 0, (cols - visible) * sizeof *row);
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, d_head, (int)cols,
                        1.0f, scores, (int)cols, vh, (int)ld_kv, 0.0f, oh + r0 * ld_out,
                        (int)ld_out);
        }
    }
}

void ba_attention_causal(const float *q, size_t ld_q, const float *k, const float *v,
                         size_t ld_kv, size_t n, int n_heads, int n_kv_heads, int d_head,
                         float scale, float *out, size_t ld_out, float *scores)
{
    attention_causal(q, ld_q, k, v, ld_kv, n, n_heads, n_kv_heads, d_head, scale, out, ld_out,
                     NULL, scores);
}

void ba_attention_causal_fwd(const float *q, size_t ld_q, const float *k, const float *v,
                             size_t ld_kv, size_t n, int n_heads, int n_kv_heads, int d_head,
                             float scale, float *out, size_t ld_out, float *lse, float *scores)
{
    attention_causal(q, ld_q, k, v, ld_kv, n, n_heads, n_kv_heads, d_head, scale, out, ld_out,
                     lse, scores);
}

void ba_attention_causal_ref(const float *q, size_t ld_q, const float *k, const float *v,
                             size_t ld_kv, size_t n, int n_heads, int n_kv_heads, int d_head,
                             float scale, float *out, size_t ld_out)
{
    int group = n_heads / n_kv_heads;
    for (int h = 0; h < n_heads; h++) {
        size_t qo = (size_t)h * d_head, kvo = (size_t)(h / group) * d_head;
        for (size_t i = 0; i < n; i++) {
            double m = -INFINITY, sum = 0;
            for (size_t j = 0; j <= i; j++) {
                double s = 0;
                for (int c = 0; c < d_head; c++)
                    s += (double)q[i * ld_q + qo + c] * k[j * ld_kv + kvo + c];
                s *= scale;
                m = s > m ? s : m;
            }
            for (int c = 0; c < d_head; c++) out[i * ld_out + qo + c] = 0;
            double acc[d_head];
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
        }
    }
}

/* ---- log-softmax ---------------------------------------------------------------- */

double ba_logsumexp_ref(const float *x, size_t n)
{
    double m = -INFINITY, sum = 0;
    for (size_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    if (!isfinite(m)) return m;
    for (size_t i = 0; i < n; i++) sum += exp((double)x[i] - m);
    return m + log(sum);
}

void ba_logsumexp_accumulate(const float *x, size_t n, double *max, double *sum)
{
    float m = max_of(x, n);
    if (m == -INFINITY) return;
    if ((double)m > *max) {
        *sum = isfinite(*max) ? *sum * exp(*max - (double)m) : 0.0;
        *max = m;
    }
    float ref = (float)*max; /* exactly representable: it is one of the inputs */
    /* Float sums over runs of 256 (rounding ~1e-7 relative), added in double. */
    for (size_t at = 0; at < n; at += 256)
        *sum += exp_shifted_sum(x + at, n - at < 256 ? n - at : 256, ref);
}

void ba_rmsnorm(const float *x, size_t n, size_t d, const float *w, float eps, float *y)
{
    for (size_t i = 0; i < n; i++) {
        const float *row = x + i * d;
        float *dst = y + i * d;
        float acc[LANES] = {0};
        size_t j = 0;
        for (; j + LANES <= d; j += LANES)
            for (int l = 0; l < LANES; l++) acc[l] += row[j + l] * row[j + l];
        float sq = 0.0f;
        for (; j < d; j++) sq += row[j] * row[j];
        for (int l = 0; l < LANES; l++) sq += acc[l];
        float inv = 1.0f / sqrtf(sq / (float)d + eps);
        /* Hugging Face's order: normalise, then scale by the weight. */
        for (j = 0; j < d; j++) dst[j] = w[j] * (row[j] * inv);
    }
}

void ba_rmsnorm_ref(const float *x, size_t n, size_t d, const float *w, float eps, float *y)
{
    for (size_t i = 0; i < n; i++) {
        double sq = 0;
        for (size_t j = 0; j < d; j++) sq += (double)x[i * d + j] * x[i * d + j];
        double inv = 1.0 / sqrt(sq / (double)d + (double)eps);
        for (size_t j = 0; j < d; j++) y[i * d + j] = (float)(w[j] * (x[i * d + j] * inv));
    }
}

/* x / (1 + exp(-x)): exp_fast clamps its argument, so very negative x
 * gives -0-ish values and very positive x gives x, never NaN. */
static inline float silu_fast(float v) { return v / (1.0f + exp_fast(-v)); }

BA_VECTOR_CLONES
void ba_silu(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = silu_fast(x[i]);
}

void ba_silu_ref(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        x[i] = (float)(v / (1.0 + exp(-v)));
    }
}

BA_VECTOR_CLONES
void ba_swiglu(float *gate, const float *up, size_t n)
{
    for (size_t i = 0; i < n; i++) gate[i] = silu_fast(gate[i]) * up[i];
}

void ba_swiglu_ref(float *gate, const float *up, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double v = gate[i];
        gate[i] = (float)(v / (1.0 + exp(-v)) * up[i]);
    }
}

void ba_rope_tables(size_t first_pos, size_t n, int d_head, double theta, float *cos_tab,
                    float *sin_tab)
{
    size_t half = (size_t)d_head / 2;
    for (size_t j = 0; j < half; j++) {
        /* inv_freq = 1 / theta^(arange(0, d, 2).float() / d), all in float32. */
        float exponent = (float)(2 * j) / (float)d_head;
        float inv_freq = 1.0f / (float)pow((double)(float)theta, (double)exponent);
        for (size_t t = 0; t < n; t++) {
            float angle = (float)(first_pos + t) * inv_freq; /* rounded like torch's product */
            cos_tab[t * half + j] = (float)cos((double)angle);
            sin_tab[t * half + j] = (float)sin((double)angle);
        }
    }
}

void ba_rope(float *x, size_t n, size_t ld, int n_heads, int d_head, const float *cos_tab,
             const float *sin_tab)
{
    size_t half = (size_t)d_head / 2;
    for (size_t t = 0; t < n; t++) {
        const float *c = cos_tab + t * half, *s = sin_tab + t * half;
        for (int h = 0; h < n_heads; h++) {
            float *lo = x + t * ld + (size_t)h * d_head, *hi = lo + half;
            for (size_t j = 0; j < half; j++) {
                float a = lo[j], b = hi[j];
                lo[j] = a * c[j] - b * s[j];
                hi[j] = b * c[j] + a * s[j];
            }
        }
    }
}

void ba_rope_ref(float *x, size_t n, size_t ld, int n_heads, int d_head, size_t first_pos,
                 double theta)
{
    size_t dh = (size_t)d_head, half = dh / 2;
    double rotated[dh], cosv[dh], sinv[dh];
    for (size_t t = 0; t < n; t++)
        for (int h = 0; h < n_heads; h++) {
            float *q = x + t * ld + (size_t)h * dh;
            for (size_t j = 0; j < dh; j++) {
                /* emb = cat(freqs, freqs): column j uses frequency j mod half */
                double freq = pow(theta, -2.0 * (double)(j % half) / (double)dh);
                cosv[j] = cos((double)(first_pos + t) * freq);
                sinv[j] = sin((double)(first_pos + t) * freq);
            }
            /* rotate_half(q) = cat(-q[half:], q[:half]) */
            for (size_t j = 0; j < half; j++) {
                rotated[j] = -(double)q[j + half];
                rotated[j + half] = q[j];
            }
            for (size_t j = 0; j < dh; j++) q[j] = (float)(q[j] * cosv[j] + rotated[j] * sinv[j]);
        }
}
