/* bench_bf16_gemm.c — speed of the bfloat16 linear kernel (ba_linear_bf16)
 * against what the float32 path does with a BF16 weight (widen panels of
 * rows to float32, OpenBLAS sgemm), on LLaMA-2-7B's MLP shapes.
 *
 *   OPENBLAS_NUM_THREADS=2 build/bench_bf16_gemm [REPEATS [N IN OUT]...]
 *
 * Prints the machine's vdpbf16ps and float32 FMA peaks (register-only
 * loops, one per thread), then for each shape (default: 512 x 4096 ->
 * 11008 and 512 x 11008 -> 4096) the best and median GFLOP/s (2 N IN OUT
 * per wall second) of each path, the CPU seconds the process used per
 * product (all threads; a shared machine disturbs it less than wall
 * time), and the largest difference between the two results relative to
 * the largest value (bf16 rounding of the activations: ~1e-3). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brainalign/kernels/kernels.h"
#include "bench_kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define PEAK_ACC 24
/* 24 independent chains of vdpbf16ps (64 flops each) on registers. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"), noinline)) static float
bf16_peak_loop(long iters)
{
    __m512 c[PEAK_ACC];
    for (int i = 0; i < PEAK_ACC; i++) c[i] = _mm512_setzero_ps();
    __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80);
    __m512bh b = (__m512bh)_mm512_set1_epi32(0x3a003a00);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 24
        for (int i = 0; i < PEAK_ACC; i++) c[i] = _mm512_dpbf16_ps(c[i], a, b);
        __asm__ volatile("" : "+v"(a));
    }
    float s = 0, lanes[16];
    for (int i = 0; i < PEAK_ACC; i++) {
        _mm512_storeu_ps(lanes, c[i]);
        s += lanes[0];
    }
    return s;
}

static void peaks(int threads)
{
    const long iters = 20000000;
    for (int kind = 0; kind < 2; kind++) {
        if (kind == 0 && !ba_bf16_dot_available()) continue;
        double wall = bench_clock_s(CLOCK_MONOTONIC);
        double cpu = bench_clock_s(CLOCK_PROCESS_CPUTIME_ID);
        volatile float sink = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
        {
            float s = kind == 0 ? bf16_peak_loop(iters) : bench_fma_zmm_loop(iters);
            sink += s;
        }
        wall = bench_clock_s(CLOCK_MONOTONIC) - wall;
        cpu = bench_clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu;
        double flops =
            (double)iters * (kind == 0 ? PEAK_ACC * 64 : BENCH_FMA_CHAINS * 32) * threads;
        printf("peak %-24s %d thread(s): %7.1f GFLOP/s per wall s, %7.1f per CPU s per thread\n",
               kind == 0 ? "vdpbf16ps (zmm)" : "float32 FMA (zmm)", threads, flops / wall / 1e9,
               flops / cpu / 1e9 / threads);
    }
}
#else
static void peaks(int threads) { (void)threads; }
#endif

/* What ba_weight_product does for a BF16 weight on the float32 path:
 * widen panels of rows (16 Mi floats, multiples of 16 rows), sgemm each. */
static void widen_sgemm(const float *x, size_t n, size_t in, const uint16_t *w, size_t out,
                        float *y, float *scratch, size_t scratch_floats)
{
    size_t step = scratch_floats / in;
    if (step > 16) step -= step % 16;
    for (size_t r = 0; r < out; r += step) {
        size_t m = out - r < step ? out - r : step;
        ba_bf16_to_f32(w + r * in, m * in, scratch);
        ba_linear_into(x, n, in, in, scratch, m, 0, y + r, out);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void bench_shape(size_t n, size_t in, size_t out, int repeats)
{
    float *x = malloc(n * in * sizeof *x), *y1 = malloc(n * out * sizeof *y1);
    float *y2 = malloc(n * out * sizeof *y2);
    uint16_t *w = malloc(in * out * sizeof *w);
    size_t scratch_floats = 16u << 20;
    float *scratch = malloc(scratch_floats * sizeof *scratch);
    double *secs = malloc((size_t)repeats * sizeof *secs);
    /* the kernel's packing space, owned here and reused by every repeat */
    size_t ws_bytes = ba_linear_bf16_workspace_bytes(n, in, out);
    void *ws = ws_bytes ? malloc(ws_bytes) : NULL;
    if (!x || !y1 || !y2 || !w || !scratch || !secs || (ws_bytes && !ws)) {
        fprintf(stderr, "bench_bf16_gemm: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n * in; i++) x[i] = bench_uniform();
    for (size_t i = 0; i < in * out; i++) w[i] = ba_f32_to_bf16(0.02f * bench_uniform());
    double flops = 2.0 * (double)n * (double)in * (double)out;
    for (int path = 0; path < 2; path++) {
        if (path == 0 && !ba_bf16_dot_available()) {
            printf("%zu x %zu -> %zu: ba_linear_bf16 skipped (no AVX512-BF16 here)\n", n, in, out);
            continue;
        }
        double cpu_best = 1e300;
        for (int r = -1; r < repeats; r++) { /* r = -1: warm-up */
            double wall = bench_clock_s(CLOCK_MONOTONIC);
            double cpu = bench_clock_s(CLOCK_PROCESS_CPUTIME_ID);
            ba_error err;
            if (path == 0 && ba_linear_bf16(x, n, in, in, w, out, 0, y1, out, ws, ws_bytes,
                                            &err) != BA_OK) {
                fprintf(stderr, "bench_bf16_gemm: %s\n", err.message);
                exit(1);
            }
            if (path == 1) widen_sgemm(x, n, in, w, out, y2, scratch, scratch_floats);
            wall = bench_clock_s(CLOCK_MONOTONIC) - wall;
            cpu = bench_clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu;
            if (r >= 0) {
                secs[r] = wall;
                if (cpu < cpu_best) cpu_best = cpu;
            }
        }
        qsort(secs, (size_t)repeats, sizeof *secs, cmp_double);
        printf("%zu x %zu -> %zu  %-34s best %7.1f GFLOP/s, median %7.1f, %.3f CPU s per "
               "product (%.1f GFLOP per CPU s)\n", n, in, out,
               path == 0 ? "ba_linear_bf16 (AVX512-BF16)" : "widen to f32 + cblas_sgemm",
               flops / secs[0] / 1e9, flops / secs[repeats / 2] / 1e9, cpu_best,
               flops / cpu_best / 1e9);
        fflush(stdout);
    }
    if (ba_bf16_dot_available()) {
        double diff = 0, scale = 0;
        for (size_t i = 0; i < n * out; i++) {
            double d = y1[i] > y2[i] ? y1[i] - y2[i] : y2[i] - y1[i];
            diff = d > diff ? d : diff;
            scale = (y2[i] > 0 ? y2[i] : -y2[i]) > scale ? (y2[i] > 0 ? y2[i] : -y2[i]) : scale;
        }
        printf("%zu x %zu -> %zu  max |bf16 - f32| / max |f32| = %.3g\n", n, in, out,
               diff / scale);
    }
    free(x), free(y1), free(y2), free(w), free(scratch), free(secs), free(ws);
}

int main(int argc, char **argv)
{
    int repeats = argc > 1 ? atoi(argv[1]) : 5;
    if (repeats < 1 || (argc > 2 && (argc - 2) % 3 != 0)) {
        fprintf(stderr, "usage: bench_bf16_gemm [REPEATS [N IN OUT]...]\n");
        return 2;
    }
    int threads = openblas_get_num_threads();
    printf("threads: %d (OPENBLAS_NUM_THREADS; OpenBLAS core %s); AVX512-BF16 kernel: %s\n",
           threads, openblas_get_corename(), ba_bf16_dot_available() ? "yes" : "no");
    peaks(threads);
    if (argc > 2) {
        for (int a = 2; a + 2 < argc; a += 3)
            bench_shape((size_t)atol(argv[a]), (size_t)atol(argv[a + 1]),
                        (size_t)atol(argv[a + 2]), repeats);
    } else {
        bench_shape(512, 4096, 11008, repeats);
        bench_shape(512, 11008, 4096, repeats);
    }
    return 0;
}
