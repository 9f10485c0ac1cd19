/* kernels.c — float conversions and the weight products of the forward pass
 * (see kernels.h). Products go through OpenBLAS cblas_sgemm. */
#include "brainalign/kernels/kernels.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* ---- half-precision widening ----------------------------------------------- */

static float bits_to_float(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static uint32_t float_to_bits(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits;
}

static uint32_t f16_bits_to_f32_bits(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f) return sign | 0x7f800000u | (mant << 13); /* inf, NaN */
    if (exp != 0) return sign | ((exp + 112u) << 23) | (mant << 13);
    if (mant == 0) return sign;
    /* Subnormal half: normalise the mantissa into a float exponent. */
    uint32_t e = 113;
    while (!(mant & 0x400u)) {
        mant <<= 1;
        e--;
    }
    return sign | (e << 23) | ((mant & 0x3ffu) << 13);
}

void ba_f16_to_f32(const uint16_t *in, size_t n, float *out)
{
    for (size_t i = 0; i < n; i++) out[i] = bits_to_float(f16_bits_to_f32_bits(in[i]));
}

void ba_bf16_to_f32(const uint16_t *in, size_t n, float *out)
{
    for (size_t i = 0; i < n; i++) out[i] = bits_to_float((uint32_t)in[i] << 16);
}

float ba_f16_to_f32_ref(uint16_t h)
{
    int sign = (h & 0x8000) ? -1 : 1;
    int exp = (h >> 10) & 0x1f;
    int mant = h & 0x3ff;
    if (exp == 0x1f) return mant ? NAN : sign * INFINITY;
    if (exp == 0) return (float)(sign * ldexp(mant, -24));
    return (float)(sign * ldexp(1024 + mant, exp - 25));
}

float ba_bf16_to_f32_ref(uint16_t h)
{
    int sign = (h & 0x8000) ? -1 : 1;
    int exp = (h >> 7) & 0xff;
    int mant = h & 0x7f;
    if (exp == 0xff) return mant ? NAN : sign * INFINITY;
    if (exp == 0) return (float)(sign * ldexp(mant, -133));
    return (float)(sign * ldexp(128 + mant, exp - 134));
}

uint16_t ba_f32_to_bf16(float x)
{
    uint32_t bits = float_to_bits(x);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40u); /* NaN */
    bits += 0x7fffu + ((bits >> 16) & 1u); /* round to nearest even */
    return (uint16_t)(bits >> 16);
}

uint16_t ba_f32_to_f16(float x)
{
    uint32_t bits = float_to_bits(x);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    uint32_t abs = bits & 0x7fffffffu;
    if (abs > 0x7f800000u) return sign | 0x7e00u; /* NaN */
    if (abs == 0x7f800000u) return sign | 0x7c00u;
    int e = (int)(abs >> 23) - 127 + 15;
    uint32_t mant = abs & 0x7fffffu;
    if (e >= 31) return sign | 0x7c00u;
    if (e <= 0) {
        if (e < -10) return sign;
        uint32_t m = mant | 0x800000u;
        int shift = 14 - e;
        uint32_t half = m >> shift, rem = m & ((1u << shift) - 1u), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1u))) half++;
        return sign | (uint16_t)half;
    }
    uint32_t half = ((uint32_t)e << 10) | (mant >> 13), rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) half++; /* may carry to inf */
    return sign | (uint16_t)half;
}

/* ---- linear layers ------------------------------------------------------------- */

void ba_linear_strided(const float *x, size_t n, size_t in, size_t ldx, const float *w,
                       ba_weight_layout layout, size_t out, const float *b, int accumulate,
                       float *y, size_t ldy)
{
    if (n == 0 || out == 0) return;
    float beta = accumulate ? 1.0f : 0.0f;
    if (b) {
        for (size_t i = 0; i < n; i++) {
            float *row = y + i * ldy;
            if (accumulate)
                for (size_t j = 0; j < out; j++) row[j] += b[j];
            else
                memcpy(row, b, out * sizeof *y);
        }
        beta = 1.0f;
    }
    if (in == 0) {
        if (!b && !accumulate)
            for (size_t i = 0; i < n; i++) memset(y + i * ldy, 0, out * sizeof *y);
        return;
    }
    if (layout == BA_WEIGHT_IN_OUT)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)out, (int)in, 1.0f, x,
                    (int)ldx, w, (int)out, beta, y, (int)ldy);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)out, (int)in, 1.0f, x,
                    (int)ldx, w, (int)in, beta, y, (int)ldy);
}

void ba_linear_strided_ref(const float *x, size_t n, size_t in, size_t ldx, const float *w,
                           ba_weight_layout layout, size_t out, const float *b, int accumulate,
                           float *y, size_t ldy)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < out; j++) {
            double acc = b ? b[j] : 0.0;
            for (size_t k = 0; k < in; k++) {
                float wkj = layout == BA_WEIGHT_IN_OUT ? w[k * out + j] : w[j * in + k];
                acc += (double)x[i * ldx + k] * wkj;
            }
            y[i * ldy + j] = (float)(accumulate ? y[i * ldy + j] + acc : acc);
        }
}

void ba_linear(const float *x, size_t n, size_t in, const float *w, ba_weight_layout layout,
               size_t out, const float *b, float *y)
{
    ba_linear_strided(x, n, in, in, w, layout, out, b, 0, y, out);
}

void ba_linear_ref(const float *x, size_t n, size_t in, const float *w,
                   ba_weight_layout layout, size_t out, const float *b, float *y)
{
    ba_linear_strided_ref(x, n, in, in, w, layout, out, b, 0, y, out);
}

/* ---- strided weight products ------------------------------------------------ */

void ba_linear_into(const float *x, size_t n, size_t in, size_t ldx, const float *w, size_t out,
                    int accumulate, float *y, size_t ldy)
{
    ba_linear_strided(x, n, in, ldx, w, BA_WEIGHT_OUT_IN, out, NULL, accumulate, y, ldy);
}

void ba_linear_into_ref(const float *x, size_t n, size_t in, size_t ldx, const float *w,
                        size_t out, int accumulate, float *y, size_t ldy)
{
    ba_linear_strided_ref(x, n, in, ldx, w, BA_WEIGHT_OUT_IN, out, NULL, accumulate, y, ldy);
}
