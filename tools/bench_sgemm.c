/* bench_sgemm.c — speed of the float32 AVX-512 product (ba_sgemm) against
 * OpenBLAS's cblas_sgemm, on the voxel side's shapes of the ridge engine.
 *
 *   build/bench_sgemm [REPEATS [THREADS,... [N|T M N K]...]]
 *
 * e.g. build/bench_sgemm 7 1,2 N 2400 512 2400 T 2400 512 2400
 *
 * Prints the float32 FMA peaks of one core (register-only loops, zmm and
 * ymm: what an AVX-512 kernel and OpenBLAS's AVX2 "Haswell" kernel can
 * reach at best), then for each shape (default: 2400 x 512 x 2400 with
 * op(A) = A (N: T = M W, Ŷ = B W) and Aᵀ (T: Z = Mᵀ Y), and 4096³ N) and
 * each thread count (default 1 and 2; OPENBLAS_NUM_THREADS is set through
 * openblas_set_num_threads, which ba_sgemm follows too): the best and
 * median GFLOP/s (2 M N K per wall second) of each path, the best as a
 * share of threads x the zmm peak, the CPU seconds the process used per
 * product (all threads), and the largest difference between the two
 * results relative to the largest |value|. C = A B (alpha 1, beta 0). */
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

static double zmm_peak = 0; /* GFLOP/s of one core, float32 FMA on zmm */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
/* The same on ymm (16 flops per FMA), with 12 chains: without AVX-512
 * there are only 16 ymm registers. */
#define YMM_CHAINS 12
__attribute__((target("avx2,fma"), noinline)) static float fma_ymm_loop(long iters)
{
    __m256 acc[YMM_CHAINS];
    for (int i = 0; i < YMM_CHAINS; i++) acc[i] = _mm256_set1_ps((float)i);
    __m256 x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(1e-4f);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < YMM_CHAINS; i++) acc[i] = _mm256_fmadd_ps(x, acc[i], y);
        __asm__ volatile("" : "+x"(x));
    }
    float lanes[8], s = 0;
    for (int i = 0; i < YMM_CHAINS; i++) {
        _mm256_storeu_ps(lanes, acc[i]);
        s += lanes[0];
    }
    return s;
}

static void peaks(void)
{
    const long iters = 20000000;
    __builtin_cpu_init();
    for (int wide = 1; wide >= 0; wide--) {
        if (wide ? !__builtin_cpu_supports("avx512f") : !__builtin_cpu_supports("fma")) continue;
        double wall = bench_clock_s(CLOCK_MONOTONIC);
        volatile float sink = wide ? bench_fma_zmm_loop(iters) : fma_ymm_loop(iters);
        (void)sink;
        wall = bench_clock_s(CLOCK_MONOTONIC) - wall;
        double flops = (double)iters * (wide ? BENCH_FMA_CHAINS * 32 : YMM_CHAINS * 16);
        double gflops = flops / wall / 1e9;
        if (wide) zmm_peak = gflops;
        printf("peak float32 FMA (%s), one core: %7.1f GFLOP/s\n", wide ? "zmm" : "ymm", gflops);
    }
}
#else
static void peaks(void) {}
#endif

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void bench_shape(bool trans_a, size_t m, size_t n, size_t k, int threads, int repeats)
{
    float *a = malloc(m * k * sizeof *a), *b = malloc(k * n * sizeof *b);
    float *c1 = malloc(m * n * sizeof *c1), *c2 = malloc(m * n * sizeof *c2);
    double *secs = malloc((size_t)repeats * sizeof *secs);
    if (!a || !b || !c1 || !c2 || !secs) {
        fprintf(stderr, "bench_sgemm: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < m * k; i++) a[i] = bench_uniform();
    for (size_t i = 0; i < k * n; i++) b[i] = bench_uniform();
    size_t lda = trans_a ? m : k;
    double flops = 2.0 * (double)m * (double)n * (double)k;
    openblas_set_num_threads(threads);
    /* The kernel's workspace, allocated once as a caller holding one would. */
    size_t ws_bytes = ba_sgemm_workspace_bytes(m, n, k);
    void *ws = ws_bytes ? malloc(ws_bytes) : NULL;
    if (ws_bytes && !ws) {
        fprintf(stderr, "bench_sgemm: out of memory\n");
        exit(1);
    }
    ba_error err;
    double best[2] = {0, 0};
    for (int path = 0; path < 2; path++) {
        if (path == 0 && !ba_sgemm_kernel_available()) {
            printf("%c %zu x %zu x %zu: ba_sgemm's kernel does not run here\n",
                   trans_a ? 'T' : 'N', m, n, k);
            continue;
        }
        double cpu_best = 1e300;
        for (int r = -1; r < repeats; r++) { /* r = -1: warm-up */
            double wall = bench_clock_s(CLOCK_MONOTONIC);
            double cpu = bench_clock_s(CLOCK_PROCESS_CPUTIME_ID);
            if (path == 0) {
                if (ba_sgemm_ws(trans_a, m, n, k, 1.0f, a, lda, b, n, 0.0f, c1, n, ws, ws_bytes,
                                &err) != BA_OK) {
                    fprintf(stderr, "bench_sgemm: %s\n", err.message);
                    exit(1);
                }
            } else
                cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, CblasNoTrans,
                            (int)m, (int)n, (int)k, 1.0f, a, (int)lda, b, (int)n, 0.0f, c2,
                            (int)n);
            wall = bench_clock_s(CLOCK_MONOTONIC) - wall;
            cpu = bench_clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu;
            if (r >= 0) {
                secs[r] = wall;
                if (cpu < cpu_best) cpu_best = cpu;
            }
        }
        qsort(secs, (size_t)repeats, sizeof *secs, cmp_double);
        best[path] = flops / secs[0] / 1e9;
        printf("%c %5zu x %5zu x %5zu  %d thread(s)  %-12s best %6.1f GFLOP/s", trans_a ? 'T' : 'N',
               m, n, k, threads, path == 0 ? "ba_sgemm" : "cblas_sgemm", best[path]);
        if (zmm_peak > 0) printf(" (%3.0f%% of zmm peak)", 100 * best[path] / (zmm_peak * threads));
        printf(", median %6.1f, %.4f CPU s\n", flops / secs[repeats / 2] / 1e9, cpu_best);
        fflush(stdout);
    }
    if (best[0] > 0) {
        double diff = 0, scale = 0;
        for (size_t i = 0; i < m * n; i++) {
            double d = c1[i] > c2[i] ? c1[i] - c2[i] : c2[i] - c1[i];
            double v = c2[i] > 0 ? c2[i] : -c2[i];
            diff = d > diff ? d : diff;
            scale = v > scale ? v : scale;
        }
        printf("%c %5zu x %5zu x %5zu  %d thread(s)  speed-up %.2fx, max |ba - cblas| / max |cblas| "
               "= %.2g\n", trans_a ? 'T' : 'N', m, n, k, threads, best[0] / best[1], diff / scale);
    }
    free(a), free(b), free(c1), free(c2), free(secs), free(ws);
}

int main(int argc, char **argv)
{
    int repeats = argc > 1 ? atoi(argv[1]) : 5;
    int thread_list[16], n_threads = 0;
    if (argc > 2) {
        for (char *s = argv[2]; *s && n_threads < 16;) {
            thread_list[n_threads++] = (int)strtol(s, &s, 10);
            if (*s == ',') s++;
            else if (*s) break;
        }
    } else {
        thread_list[n_threads++] = 1;
        thread_list[n_threads++] = 2;
    }
    bool bad = repeats < 1 || n_threads == 0 || (argc > 3 && (argc - 3) % 4 != 0);
    for (int t = 0; t < n_threads; t++) bad = bad || thread_list[t] < 1;
    if (bad) {
        fprintf(stderr, "usage: bench_sgemm [REPEATS [THREADS,... [N|T M N K]...]]\n");
        return 2;
    }
    printf("OpenBLAS core %s; ba_sgemm AVX-512 kernel: %s\n", openblas_get_corename(),
           ba_sgemm_kernel_available() ? "yes" : "no");
    peaks();
    for (int t = 0; t < n_threads; t++) {
        if (argc > 3) {
            for (int i = 3; i + 3 < argc; i += 4)
                bench_shape(argv[i][0] == 'T' || argv[i][0] == 't', (size_t)atol(argv[i + 1]),
                            (size_t)atol(argv[i + 2]), (size_t)atol(argv[i + 3]),
                            thread_list[t], repeats);
        } else {
            bench_shape(false, 2400, 512, 2400, thread_list[t], repeats);
            bench_shape(true, 2400, 512, 2400, thread_list[t], repeats);
            bench_shape(false, 4096, 4096, 4096, thread_list[t], repeats);
        }
    }
    return 0;
}
