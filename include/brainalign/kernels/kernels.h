/* kernels.h — float conversions and the matrix products of the forward
 * pass, float32, row-major.
 *
 * Each operation has a fast version (BLAS sgemm for products, tight float
 * loops elsewhere) and a plain reference version (`_ref`: obvious loops,
 * double accumulation) that the tests compare it with. None allocates:
 * the blocked kernels take a caller-owned workspace whose size a query
 * function gives (ba_linear_bf16_workspace_bytes, ba_sgemm_workspace_bytes)
 * and refuse a smaller one with an error, never a slower path. */
#ifndef BRAINALIGN_KERNELS_H
#define BRAINALIGN_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "brainalign/core/error.h"

/* ---- half-precision widening --------------------------------------------- */

/* IEEE binary16 / bfloat16 bit patterns to float32 (exact). */
void ba_f16_to_f32(const uint16_t *in, size_t n, float *out);
void ba_bf16_to_f32(const uint16_t *in, size_t n, float *out);
/* Reference: the value computed arithmetically from sign, exponent and
 * mantissa fields, one element. */
float ba_f16_to_f32_ref(uint16_t h);
float ba_bf16_to_f32_ref(uint16_t h);
/* float32 to binary16 / bfloat16, round to nearest even (NaN stays NaN,
 * overflow gives infinity). */
uint16_t ba_f32_to_f16(float x);
uint16_t ba_f32_to_bf16(float x);

/* ---- linear layers --------------------------------------------------------- */

typedef enum {
    BA_WEIGHT_IN_OUT, /* W[in][out]: GPT-2 Conv1D                        */
    BA_WEIGHT_OUT_IN, /* W[out][in]: nn.Linear, embeddings used as lm_head */
} ba_weight_layout;

/* y[n][out] = x[n][in] W (+ b[out] when b != NULL). y must not alias x. */
void ba_linear(const float *x, size_t n, size_t in, const float *w, ba_weight_layout layout,
               size_t out, const float *b, float *y);
void ba_linear_ref(const float *x, size_t n, size_t in, const float *w,
                   ba_weight_layout layout, size_t out, const float *b, float *y);

/* The general form of the two above: y[i][0..out) (row stride ldy) =
 * x[i][0..in) (row stride ldx) W (+ b[out] when b != NULL) (+ y's
 * previous value when `accumulate`, the bias then added to it first), for
 * a contiguous W[in][out] (BA_WEIGHT_IN_OUT) or W[out][in]
 * (BA_WEIGHT_OUT_IN). One cblas_sgemm; ba_linear is this with ldx = in,
 * ldy = out, accumulate = 0, ba_linear_into with layout OUT_IN and no
 * bias, so all three give the same bits. y must not alias x or W. */
void ba_linear_strided(const float *x, size_t n, size_t in, size_t ldx, const float *w,
                       ba_weight_layout layout, size_t out, const float *b, int accumulate,
                       float *y, size_t ldy);
void ba_linear_strided_ref(const float *x, size_t n, size_t in, size_t ldx, const float *w,
                           ba_weight_layout layout, size_t out, const float *b, int accumulate,
                           float *y, size_t ldy);

/* ---- strided weight products ----------------------------------------------------------- */

/* y[i][0..out) (row stride ldy) = x[i][0..in) (row stride ldx) W^T for a
 * weight W[out][in] (nn.Linear layout), plus y's previous value when
 * `accumulate` (a residual added in place). y must not alias x or W. */
void ba_linear_into(const float *x, size_t n, size_t in, size_t ldx, const float *w, size_t out,
                    int accumulate, float *y, size_t ldy);
void ba_linear_into_ref(const float *x, size_t n, size_t in, size_t ldx, const float *w,
                        size_t out, int accumulate, float *y, size_t ldy);

/* ---- bfloat16 products (kernels_bf16.c) -------------------------------------------------- */

/* y[i][0..out) (row stride ldy) = sum_k bf16(x[i][k]) w[j][k] (+ y's
 * previous value when `accumulate`), for a bfloat16 weight w[out][in]
 * (bit patterns, nn.Linear layout, only 2-byte alignment needed; rows
 * contiguous) and float32 activations x (row stride ldx) rounded to
 * bfloat16 (ba_f32_to_bf16: nearest even) before the product: what a
 * PyTorch bf16 model computes. y must not alias x or w.
 * The reference sums the exact products in double. The fast version sums
 * them in float32 with AVX512-BF16 dot products (vdpbf16ps, whose
 * subnormal bfloat16 inputs count as zero), multithreaded with
 * openblas_get_num_threads() threads; its results do not depend on the
 * thread count. It runs the reference on CPUs without the instructions:
 * check ba_bf16_dot_available() first.
 *
 * workspace: at least ba_linear_bf16_workspace_bytes(n, in, out) bytes
 * (any alignment; the packed operands: x rounded and paired, one block of
 * w per thread), owned by the caller and reusable from call to call. The
 * size depends on the current openblas_get_num_threads() and grows with
 * each of n, in and out, so the size for the largest shape serves every
 * smaller one. A smaller workspace is refused (BA_ERR_USAGE, y untouched);
 * 0 bytes are needed, and NULL is accepted, where the fast kernel does not
 * run. */
size_t ba_linear_bf16_workspace_bytes(size_t n, size_t in, size_t out);
ba_status ba_linear_bf16(const float *x, size_t n, size_t in, size_t ldx, const uint16_t *w,
                         size_t out, int accumulate, float *y, size_t ldy, void *workspace,
                         size_t workspace_bytes, ba_error *err);
void ba_linear_bf16_ref(const float *x, size_t n, size_t in, size_t ldx, const uint16_t *w,
                        size_t out, int accumulate, float *y, size_t ldy);
/* True when this CPU runs ba_linear_bf16's fast kernel (AVX-512 F, BW, VL
 * and BF16, as the running system reports them) and the environment
 * variable BRAINALIGN_NO_BF16_DOT is not set (set it to any value to act
 * as if the CPU lacked them). */
bool ba_bf16_dot_available(void);

/* ---- float32 matrix product (kernels_sgemm.c) ------------------------------------------- */

/* Row-major C[m][n] (row stride ldc) = alpha op(A) B + beta C, where
 * op(A) = A ([m][k], row stride lda) or, when trans_a, Aᵀ (A stored
 * [k][m], row stride lda); B is [k][n] (row stride ldb). beta = 0 never
 * reads C (it may hold anything, NaN included); alpha = 0 or k = 0 reads
 * neither A nor B. C must not overlap A or B.
 * The reference sums the products in double, then rounds alpha s + beta c
 * once. The fast version is an AVX-512 kernel (float32 FMAs), multithreaded
 * with openblas_get_num_threads() threads; each element is summed in the
 * same order whatever the thread count and the shape's other dimensions,
 * so its results depend only on the operands and k. Where that kernel
 * does not run (no AVX-512 F/BW/VL/DQ, or BRAINALIGN_NO_AVX512_SGEMM
 * set), ba_sgemm_ws calls cblas_sgemm.
 *
 * workspace: at least ba_sgemm_workspace_bytes(m, n, k) bytes (any
 * alignment; one packed block of A and of B per thread), owned by the
 * caller and reusable. The size depends on the current
 * openblas_get_num_threads() and grows with each of m, n and k. A smaller
 * workspace is refused (BA_ERR_USAGE, C untouched); 0 bytes (NULL) are
 * needed where the kernel does not run. */
size_t ba_sgemm_workspace_bytes(size_t m, size_t n, size_t k);
ba_status ba_sgemm_ws(bool trans_a, size_t m, size_t n, size_t k, float alpha, const float *a,
                      size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc,
                      void *workspace, size_t workspace_bytes, ba_error *err);
/* ba_sgemm_ws with a workspace allocated for this call (tests, tools,
 * one-off products): BA_ERR_NOMEM when it cannot be allocated, never a
 * silent fallback to another kernel. */
ba_status ba_sgemm(bool trans_a, size_t m, size_t n, size_t k, float alpha, const float *a,
                   size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc,
                   ba_error *err);
void ba_sgemm_ref(bool trans_a, size_t m, size_t n, size_t k, float alpha, const float *a,
                  size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc);
/* True when ba_sgemm runs its own AVX-512 kernel: the CPU has AVX-512 F,
 * BW, VL and DQ, and the environment variable BRAINALIGN_NO_AVX512_SGEMM
 * is not set (set it to any value to use cblas_sgemm instead). */
bool ba_sgemm_kernel_available(void);

#endif
