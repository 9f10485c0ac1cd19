/* kernels_bf16.c — linear layers with bfloat16 products (see kernels.h):
 * activations rounded to bfloat16, bfloat16 weights used as stored,
 * products summed in float32, as PyTorch computes a bf16 model on CPUs
 * with AVX512-BF16.
 *
 * The fast kernel is a blocked matrix product around the AVX512-BF16
 * instruction vdpbf16ps (_mm512_dpbf16_ps), which adds to each of 16
 * float32 lanes the products of one pair of bfloat16 values (k, k+1) of
 * one operand with the pair of the other. Only the functions that use it
 * are compiled for AVX-512 (the target attribute), so the library still
 * runs on any x86-64; ba_bf16_dot_available() tells callers whether the
 * CPU has it.
 *
 * Layout (y[i][j] = sum_k x[i][k] w[j][k], w[out][in] as nn.Linear):
 *   - x is packed once per call, rounded to bfloat16, in slivers of MR rows:
 *     ap[sliver][k/2][MR] 32-bit words, each word the pair (x[i][k],
 *     x[i][k+1]) (low half k); missing rows and an odd last k are zero;
 *   - w is packed per block of NC output rows x KC inputs, in slivers of
 *     NR output rows: bp[sliver][k/2][NR] words, the pair (w[j][k],
 *     w[j][k+1]) (a 32 x 16 transposition of 32-bit words, since a row of
 *     w already holds its pairs side by side);
 *   - the micro-kernel keeps an MR x NR tile of y in 2 MR zmm registers
 *     and, per pair of k, loads 2 words-vectors of w and broadcasts MR
 *     words of x: 2 MR vdpbf16ps for 2 + MR loads.
 * Loops: column blocks (NC, split among threads) > k blocks (KC: the
 * w sliver of KC x NR stays in L1, the block of NC x KC in L2) > row
 * blocks of x (MC) > w slivers > x slivers. Software prefetches bring the
 * next x sliver into L1 during each micro-kernel, the tile of y before it
 * is updated, and the next k block of w (read from the mapped file) into
 * L2 while the current one is multiplied: without them the kernel ran at
 * ~70% of the instruction's peak on 512 x 4096 x 11008, with them ~80%
 * (one Zen 5 core; the micro-kernel alone, data in L1: 92%).
 *
 * Threads: OpenMP, as many as openblas_get_num_threads(), so that
 * OPENBLAS_NUM_THREADS governs both kinds of products. Each output
 * element is computed by one thread, in the same order whatever the
 * number of threads (k blocks in order, pairs in order within a block):
 * results do not depend on the thread count. */
#include "brainalign/kernels/kernels.h"

#include <cblas.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#define BA_OMP(directive) _Pragma(directive)
#else
#define BA_OMP(directive)
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define BA_HAVE_BF16_KERNEL 1
#include <immintrin.h>

#include "kernels_blocked.h"
#define BA_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#else
#define BA_HAVE_BF16_KERNEL 0
#endif

/* ---- reference --------------------------------------------------------------------- */

static float bf16_value(uint16_t h)
{
    float f;
    ba_bf16_to_f32(&h, 1, &f);
    return f;
}

void ba_linear_bf16_ref(const float *x, size_t n, size_t in, size_t ldx, const uint16_t *w,
                        size_t out, int accumulate, float *y, size_t ldy)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < out; j++) {
            double acc = 0.0;
            for (size_t k = 0; k < in; k++)
                acc += (double)bf16_value(ba_f32_to_bf16(x[i * ldx + k])) *
                       bf16_value(w[j * in + k]);
            y[i * ldy + j] = (float)(accumulate ? y[i * ldy + j] + acc : acc);
        }
}

/* ---- availability ------------------------------------------------------------------ */

bool ba_bf16_dot_available(void)
{
#if BA_HAVE_BF16_KERNEL
    if (getenv("BRAINALIGN_NO_BF16_DOT")) return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
#else
    return false;
#endif
}

#if BA_HAVE_BF16_KERNEL

/* ---- the fast kernel ---------------------------------------------------------------- */

/* Blocking. KC, MC and NC can be overridden at compile time for tuning:
 * on a Zen 5 core (48 KiB L1, 1 MiB L2) KC 256..512, MC 120..480 and
 * NC 256..1024 were all within measurement noise (5%) of each other;
 * KC 256 keeps a w sliver at 16 KiB, within a Zen 4 core's 32 KiB L1. */
#define MR 12  /* rows of x per micro-tile                                   */
#define NR 32  /* output columns per micro-tile (2 zmm of 16 float32)        */
#ifndef BA_BF16_KC
#define BA_BF16_KC 256
#endif
#ifndef BA_BF16_MC
#define BA_BF16_MC 240
#endif
#ifndef BA_BF16_NC
#define BA_BF16_NC 256
#endif
#define KC BA_BF16_KC /* inputs per k block (even): a w sliver is KC NR 2 bytes  */
#define MC BA_BF16_MC /* rows of x per row block (multiple of MR)                */
#define NC BA_BF16_NC /* largest column block (multiple of NR)                   */

/* 16 float32 rounded to bfloat16 as ba_f32_to_bf16 does (nearest even,
 * NaN kept quiet), in the low halves of 32-bit lanes. */
BA_BF16_TARGET static inline __m512i round_to_bf16(__m512 v)
{
    __m512i bits = _mm512_castps_si512(v);
    __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
    __m512i rounded = _mm512_srli_epi32(
        _mm512_add_epi32(bits, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff))), 16);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(bits, _mm512_set1_epi32(0x7fffffff)),
                                            _mm512_set1_epi32(0x7f800000));
    __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
    return _mm512_mask_mov_epi32(rounded, nan, quiet);
}

/* Pairs [p0, p0 + 16) of one row of x as 16 words (zero past `in`). */
BA_BF16_TARGET static inline __m512i x_pairs(const float *row, size_t p0, size_t in)
{
    size_t k = 2 * p0, left = in - k;
    __mmask16 lo = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
    __mmask16 hi = left >= 32 ? 0xffff : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
    __m512i a = round_to_bf16(_mm512_maskz_loadu_ps(lo, row + k));
    __m512i b = round_to_bf16(_mm512_maskz_loadu_ps(hi, row + k + 16));
    __m256i a16 = _mm512_cvtepi32_epi16(a), b16 = _mm512_cvtepi32_epi16(b);
    return _mm512_inserti64x4(_mm512_castsi256_si512(a16), b16, 1);
}

/* Sliver s of x (rows s MR .. s MR + MR - 1) into ap[kp][MR]. */
BA_BF16_TARGET static void pack_x_sliver(const float *x, size_t n, size_t in, size_t ldx,
                                         size_t s, size_t kp, uint32_t *ap)
{
    for (size_t p0 = 0; p0 < kp; p0 += 16) {
        __m512i r[16];
        for (int i = 0; i < 16; i++) {
            size_t row = s * MR + (size_t)i;
            r[i] = i < MR && row < n ? x_pairs(x + row * ldx, p0, in) : _mm512_setzero_si512();
        }
        ba_transpose16x16(r);
        size_t count = kp - p0 < 16 ? kp - p0 : 16;
        for (size_t p = 0; p < count; p++)
            _mm512_mask_storeu_epi32(ap + (p0 + p) * MR, (__mmask16)((1u << MR) - 1), r[p]);
    }
}

/* Slivers of w for output rows [j0, j0 + nq NR) and inputs [k0, k0 + kc)
 * into bp[nq][kcp][NR] (rows past `out` and an odd last input: zero). */
BA_BF16_TARGET static void pack_w_block(const uint16_t *w, size_t in, size_t out, size_t j0,
                                        size_t nq, size_t k0, size_t kc, uint32_t *bp)
{
    size_t kcp = (kc + 1) / 2;
    for (size_t q = 0; q < nq; q++) {
        uint32_t *dst = bp + q * kcp * NR;
        for (size_t p0 = 0; p0 < kcp; p0 += 16) {
            size_t k = k0 + 2 * p0, left = k0 + kc - k;
            __mmask32 mask = left >= 32 ? 0xffffffffu : (__mmask32)((1u << left) - 1);
            __m512i lo[16], hi[16];
            for (int i = 0; i < 16; i++) {
                size_t ra = j0 + q * NR + (size_t)i, rb = ra + 16;
                lo[i] = ra < out ? _mm512_maskz_loadu_epi16(mask, w + ra * in + k)
                                 : _mm512_setzero_si512();
                hi[i] = rb < out ? _mm512_maskz_loadu_epi16(mask, w + rb * in + k)
                                 : _mm512_setzero_si512();
            }
            ba_transpose16x16(lo);
            ba_transpose16x16(hi);
            size_t count = kcp - p0 < 16 ? kcp - p0 : 16;
            for (size_t p = 0; p < count; p++) {
                _mm512_store_si512((void *)(dst + (p0 + p) * NR), lo[p]);
                _mm512_store_si512((void *)(dst + (p0 + p) * NR + 16), hi[p]);
            }
        }
    }
}

/* y tile [mrv][nrv] (row stride ldy) = or += the products of an x sliver
 * ap[kcp][MR] and a w sliver bp[kcp][NR]. */
BA_BF16_TARGET static void micro_kernel(const uint32_t *ap, const uint32_t *bp, size_t kcp,
                                        float *y, size_t ldy, size_t mrv, size_t nrv, bool add,
                                        const uint32_t *next_ap)
{
    __m512 acc[MR][2];
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (size_t r = 0; r < mrv; r++) {
        _mm_prefetch((const char *)(y + r * ldy), _MM_HINT_T0);
        _mm_prefetch((const char *)(y + r * ldy + 16), _MM_HINT_T0);
    }
    for (size_t p = 0; p < kcp; p++) {
        /* the next x sliver into L1 while this one is used */
        _mm_prefetch((const char *)(next_ap + p * MR), _MM_HINT_T0);
        __m512bh b0 = (__m512bh)_mm512_load_si512((const void *)(bp + p * NR));
        __m512bh b1 = (__m512bh)_mm512_load_si512((const void *)(bp + p * NR + 16));
        const uint32_t *a = ap + p * MR;
        for (int r = 0; r < MR; r++) {
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[r]);
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
        }
    }
    if (nrv == NR) { /* full width: plain loads and stores */
        for (int r = 0; r < MR; r++) {
            if ((size_t)r >= mrv) break;
            float *row = y + (size_t)r * ldy;
            __m512 c0 = acc[r][0], c1 = acc[r][1];
            if (add) {
                c0 = _mm512_add_ps(_mm512_loadu_ps(row), c0);
                c1 = _mm512_add_ps(_mm512_loadu_ps(row + 16), c1);
            }
            _mm512_storeu_ps(row, c0);
            _mm512_storeu_ps(row + 16, c1);
        }
        return;
    }
    __mmask16 m0 = nrv >= 16 ? 0xffff : (__mmask16)((1u << nrv) - 1);
    __mmask16 m1 = nrv >= 32 ? 0xffff : nrv <= 16 ? 0 : (__mmask16)((1u << (nrv - 16)) - 1);
    for (int r = 0; r < MR; r++) {
        if ((size_t)r >= mrv) break;
        float *row = y + (size_t)r * ldy;
        __m512 c0 = acc[r][0], c1 = acc[r][1];
        if (add) {
            c0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, row), c0);
            c1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, row + 16), c1);
        }
        _mm512_mask_storeu_ps(row, m0, c0);
        _mm512_mask_storeu_ps(row + 16, m1, c1);
    }
}

typedef struct {
    const float *x;
    size_t n, in, ldx;
    const uint16_t *w;
    size_t out;
    int accumulate;
    float *y;
    size_t ldy;
    size_t kp, slivers, nc; /* pairs per row, slivers of x, columns per block */
    uint32_t *ap;
} bf16_product;

/* Output columns [jb nc, jb nc + nc) for every row, with the w block
 * buffer bp (NC x KC / 2 words). */
BA_BF16_TARGET static void column_block(const bf16_product *pr, size_t jb, uint32_t *bp)
{
    size_t j0 = jb * pr->nc, nc = pr->out - j0 < pr->nc ? pr->out - j0 : pr->nc;
    size_t nq = (nc + NR - 1) / NR;
    for (size_t k0 = 0; k0 < pr->in; k0 += KC) {
        size_t kc = pr->in - k0 < KC ? pr->in - k0 : KC, kcp = (kc + 1) / 2;
        bool add = pr->accumulate || k0 > 0;
        pack_w_block(pr->w, pr->in, pr->out, j0, nq, k0, kc, bp);
        /* While this block is multiplied, the next one comes into L2. */
        size_t next_kc = k0 + KC >= pr->in ? 0 : pr->in - k0 - KC < KC ? pr->in - k0 - KC : KC;
        ba_block_prefetch pf = {(const char *)(pr->w + j0 * pr->in + k0 + KC), pr->in * 2,
                         next_kc ? nc : 0, (next_kc * 2 + 63) / 64 + 1, 0, 0};
        size_t calls = nq * pr->slivers;
        size_t per_call = (pf.rows * pf.lines + calls - 1) / calls;
        for (size_t s0 = 0; s0 < pr->slivers; s0 += MC / MR) {
            size_t s1 = s0 + MC / MR < pr->slivers ? s0 + MC / MR : pr->slivers;
            for (size_t q = 0; q < nq; q++) {
                size_t col = j0 + q * NR, nrv = nc - q * NR < NR ? nc - q * NR : NR;
                for (size_t s = s0; s < s1; s++) {
                    size_t row = s * MR, mrv = pr->n - row < MR ? pr->n - row : MR;
                    size_t next = s + 1 < s1 ? s + 1 : s0;
                    micro_kernel(pr->ap + (s * pr->kp + k0 / 2) * MR, bp + q * kcp * NR, kcp,
                                 pr->y + row * pr->ldy + col, pr->ldy, mrv, nrv, add,
                                 pr->ap + (next * pr->kp + k0 / 2) * MR);
                    ba_prefetch_some(&pf, per_call);
                }
            }
        }
    }
}

static size_t round_up(size_t v, size_t m) { return (v + m - 1) / m * m; }

/* How one product is cut: threads, column blocks and the workspace. */
typedef struct {
    int threads;
    size_t kp, slivers, nc, blocks;
    size_t a_bytes, b_words; /* packed x (64-byte multiple); one w block (words) */
    size_t bytes;            /* the whole workspace, alignment slack included */
} bf16_plan;

static bf16_plan plan_bf16(size_t n, size_t in, size_t out)
{
    bf16_plan pl = {0};
    int threads = openblas_get_num_threads();
    if (threads < 1) threads = 1;
    pl.kp = (in + 1) / 2;
    pl.slivers = (n + MR - 1) / MR;
    /* Column blocks: at most NC wide, and at least one per thread when
     * there are enough columns (the block width does not change any
     * result, only who computes it). */
    size_t per_thread = round_up((out + (size_t)threads - 1) / (size_t)threads, NR);
    pl.nc = per_thread < NC ? per_thread : NC;
    pl.blocks = (out + pl.nc - 1) / pl.nc;
    if ((size_t)threads > pl.blocks) threads = (int)pl.blocks;
    pl.threads = threads;
    pl.a_bytes = round_up(pl.slivers * pl.kp * MR * sizeof(uint32_t), 64);
    pl.b_words = (size_t)NC * KC / 2;
    pl.bytes = 63 + pl.a_bytes + (size_t)threads * pl.b_words * sizeof(uint32_t);
    return pl;
}

/* The product with the packed operands in `ws` (pl.bytes, any alignment). */
static void linear_bf16_fast(const float *x, size_t n, size_t in, size_t ldx, const uint16_t *w,
                             size_t out, int accumulate, float *y, size_t ldy,
                             const bf16_plan *pl, void *ws)
{
    int threads = pl->threads;
    bf16_product pr = {x, n, in, ldx, w, out, accumulate, y, ldy, pl->kp, pl->slivers, pl->nc,
                       NULL};
    size_t blocks = pl->blocks, b_words = pl->b_words;
    unsigned char *base = (unsigned char *)round_up((size_t)(uintptr_t)ws, 64);
    pr.ap = (uint32_t *)(void *)base;
    uint32_t *b_all = (uint32_t *)(void *)(base + pl->a_bytes);
    BA_OMP("omp parallel num_threads(threads) if (threads > 1)")
    {
        int me = 0;
#ifdef _OPENMP
        me = omp_get_thread_num();
#endif
        BA_OMP("omp for schedule(static)")
        for (size_t s = 0; s < pr.slivers; s++)
            pack_x_sliver(x, n, in, ldx, s, pr.kp, pr.ap + s * pr.kp * MR);
        BA_OMP("omp for schedule(dynamic, 1)")
        for (size_t jb = 0; jb < blocks; jb++) column_block(&pr, jb, b_all + (size_t)me * b_words);
    }
}

#endif /* BA_HAVE_BF16_KERNEL */

size_t ba_linear_bf16_workspace_bytes(size_t n, size_t in, size_t out)
{
#if BA_HAVE_BF16_KERNEL
    if (n == 0 || out == 0 || in == 0 || !ba_bf16_dot_available()) return 0;
    return plan_bf16(n, in, out).bytes;
#else
    (void)n, (void)in, (void)out;
    return 0;
#endif
}

ba_status ba_linear_bf16(const float *x, size_t n, size_t in, size_t ldx, const uint16_t *w,
                         size_t out, int accumulate, float *y, size_t ldy, void *workspace,
                         size_t workspace_bytes, ba_error *err)
{
    if (n == 0 || out == 0) return BA_OK;
    if (in == 0) {
        if (!accumulate)
            for (size_t i = 0; i < n; i++) memset(y + i * ldy, 0, out * sizeof *y);
        return BA_OK;
    }
#if BA_HAVE_BF16_KERNEL
    if (ba_bf16_dot_available()) {
        bf16_plan pl = plan_bf16(n, in, out);
        if (!workspace || workspace_bytes < pl.bytes)
            return ba_fail(err, BA_ERR_USAGE, "bf16 product %zu x %zu -> %zu: workspace of %zu "
                           "bytes, it needs %zu (ba_linear_bf16_workspace_bytes, %d threads)", n,
                           in, out, workspace ? workspace_bytes : 0, pl.bytes, pl.threads);
        linear_bf16_fast(x, n, in, ldx, w, out, accumulate, y, ldy, &pl, workspace);
        return BA_OK;
    }
#endif
    (void)workspace, (void)workspace_bytes, (void)err;
    ba_linear_bf16_ref(x, n, in, ldx, w, out, accumulate, y, ldy);
    return BA_OK;
}
