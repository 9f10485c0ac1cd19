/* bench_kernels.h — what the kernel micro-benchmarks (bench_sgemm.c,
 * bench_bf16_gemm.c) share: a clock, a reproducible fill in [-1, 1), and
 * the float32 FMA peak of one core on zmm registers. A tool's header, not
 * the library's. */
#ifndef BRAINALIGN_BENCH_KERNELS_H
#define BRAINALIGN_BENCH_KERNELS_H

#include <stdint.h>
#include <time.h>

static inline double bench_clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* xorshift64: the same numbers on every run. */
static inline float bench_uniform(void)
{
    static uint64_t state = 0x9e3779b97f4a7c15ULL;
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (float)((state >> 11) * 0x1.0p-53 * 2 - 1);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define BENCH_FMA_CHAINS 20
/* BENCH_FMA_CHAINS independent FMA chains kept in registers: iters *
 * BENCH_FMA_CHAINS * 32 flops. */
__attribute__((target("avx512f"), noinline)) static float bench_fma_zmm_loop(long iters)
{
    __m512 acc[BENCH_FMA_CHAINS];
    for (int i = 0; i < BENCH_FMA_CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
    __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-4f);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 20
        for (int i = 0; i < BENCH_FMA_CHAINS; i++) acc[i] = _mm512_fmadd_ps(x, acc[i], y);
        __asm__ volatile("" : "+v"(x));
    }
    __m512 s = acc[0];
    for (int i = 1; i < BENCH_FMA_CHAINS; i++) s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}
#endif

#endif
