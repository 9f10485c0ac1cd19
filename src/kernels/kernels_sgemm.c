/* kernels_sgemm.c — float32 matrix product with AVX-512 (see kernels.h):
 * C = alpha op(A) B + beta C, row-major, for the voxel side of the ridge
 * engine, whose OpenBLAS (pinned to its AVX2 "Haswell" kernels in some
 * environments) leaves half of an AVX-512 core's float32 FMA rate unused.
 *
 * Only the functions that use AVX-512 are compiled for it (the target
 * attribute); on other CPUs, or with BRAINALIGN_NO_AVX512_SGEMM set,
 * ba_sgemm hands the product to cblas_sgemm.
 *
 * Layout (the usual blocked product):
 *   - B is packed per block of KC rows x NC columns into slivers of NR
 *     columns: bp[sliver][kc][NR] (a row of B already runs along the
 *     columns, so a sliver row is a plain copy; columns past n are zero);
 *     the block (KC NC floats, ~0.5 MiB) stays in L2;
 *   - A is packed per block of MC rows x KC into slivers of MR rows:
 *     ap[sliver][kc][MR] (op(A) = A: a 16 x 16 transposition per 16 k;
 *     op(A) = Aᵀ, A stored [k][m]: the rows of the stored A already run
 *     along m, so each k is a copy of MC contiguous floats); rows past m
 *     are zero;
 *   - the micro-kernel keeps an MR x NR tile of C in MR NV zmm registers
 *     (NV = NR / 16) and, per k, loads NV vectors of the B sliver and
 *     broadcasts MR values of the A sliver: MR NV FMAs for NV + MR loads.
 * Loops, per thread: column blocks (NC) > k blocks (KC; B block packed)
 * > row blocks (MC; A block packed) > A slivers (one in L1) > B slivers
 * (streamed from L2). Software prefetches bring the C tile into L1 when
 * the micro-kernel starts (it is read and written at the end), the B
 * sliver a few k ahead, the next A sliver into L1 while the last B
 * sliver of the current one is multiplied, and the next A block (from
 * memory) into L2 a few lines per micro-kernel call.
 *
 * The k blocks depend on k only (ceil(k / KC) blocks of equal size but
 * the last), and each C element is computed the same way wherever it sits
 * in a tile: its k block's products summed in float32 FMAs in k order,
 * then added to C as c = alpha s + c (the first block: alpha s + beta c,
 * or alpha s when beta = 0, C then never read). So results do not depend
 * on the thread count, on the blocking of rows and columns, or on n.
 *
 * Threads: OpenMP, as many as openblas_get_num_threads() (OPENBLAS_NUM_THREADS
 * governs both kinds of products). The output is cut into one rectangle
 * per thread, along rows (each thread then reads only its part of A and
 * packs all of B, the smaller operand on the voxel side) or columns,
 * whichever leaves the least work on the busiest thread; the threads do
 * not wait for each other until the end.
 *
 * OpenMP's wait policy is left to the runtime. In `fit`, OpenBLAS's own
 * threads (ScaLAPACK, feature side) and these alternate; libgomp's default
 * (idle workers spin briefly, then sleep) measured the same as
 * OMP_WAIT_POLICY=passive on a 1-rank, 2-thread fit (3000 x 3840 x 4096),
 * while OMP_WAIT_POLICY=active, whose idle workers never sleep, made the
 * feature side 3.3x slower: do not set it. */
#include "brainalign/kernels/kernels.h"

#include <cblas.h>
#include <limits.h>
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
#define BA_HAVE_SGEMM_KERNEL 1
#include <immintrin.h>

#include "kernels_blocked.h"
#define SG_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
#else
#define BA_HAVE_SGEMM_KERNEL 0
#endif

/* ---- reference --------------------------------------------------------------------- */

void ba_sgemm_ref(bool trans_a, size_t m, size_t n, size_t k, float alpha, const float *a,
                  size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc)
{
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double s = 0.0;
            for (size_t p = 0; p < k; p++) {
                double av = trans_a ? a[p * lda + i] : a[i * lda + p];
                s += av * (double)b[p * ldb + j];
            }
            double prev = beta == 0.0f ? 0.0 : (double)beta * c[i * ldc + j];
            c[i * ldc + j] = (float)((double)alpha * s + prev);
        }
}

/* ---- availability ------------------------------------------------------------------ */

bool ba_sgemm_kernel_available(void)
{
#if BA_HAVE_SGEMM_KERNEL
    if (getenv("BRAINALIGN_NO_AVX512_SGEMM")) return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#else
    return false;
#endif
}

/* C = beta C over m x n (beta = 0: zeros, C not read). */
static void scale_c(size_t m, size_t n, float beta, float *c, size_t ldc)
{
    if (beta == 1.0f) return;
    for (size_t i = 0; i < m; i++) {
        float *row = c + i * ldc;
        if (beta == 0.0f) memset(row, 0, n * sizeof *row);
        else
            for (size_t j = 0; j < n; j++) row[j] *= beta;
    }
}

static bool fits_int(size_t v) { return v <= (size_t)INT_MAX; }

static void sgemm_blas(bool trans_a, size_t m, size_t n, size_t k, float alpha, const float *a,
                       size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc)
{
    if (fits_int(m) && fits_int(n) && fits_int(k) && fits_int(lda) && fits_int(ldb) &&
        fits_int(ldc)) {
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, CblasNoTrans, (int)m,
                    (int)n, (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
        return;
    }
    ba_sgemm_ref(trans_a, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

#if BA_HAVE_SGEMM_KERNEL

/* ---- the fast kernel ---------------------------------------------------------------- */

/* Register tile and blocking; each can be overridden at compile time for
 * tuning (tools/bench_sgemm.c measures them). MR <= 16, NV <= 4. */
#ifndef BA_SGEMM_MR
#define BA_SGEMM_MR 12
#endif
#ifndef BA_SGEMM_NV
#define BA_SGEMM_NV 2
#endif
#ifndef BA_SGEMM_KC
#define BA_SGEMM_KC 256
#endif
#ifndef BA_SGEMM_MC
#define BA_SGEMM_MC 96
#endif
#ifndef BA_SGEMM_NC
#define BA_SGEMM_NC 512
#endif
#ifndef BA_SGEMM_PF_B
#define BA_SGEMM_PF_B 8 /* k steps ahead that the B sliver is prefetched */
#endif
#define MR BA_SGEMM_MR
#define NV BA_SGEMM_NV
#define NR (16 * NV)
#define KC BA_SGEMM_KC                     /* largest k block                  */
#define MC (BA_SGEMM_MC / MR * MR)         /* rows of A per block              */
#define NC (BA_SGEMM_NC / NR * NR)         /* largest column block             */

_Static_assert(MR >= 1 && MR <= 16 && NV >= 1 && NV <= 4, "tile out of range");
_Static_assert(MC >= MR && NC >= NR && KC >= 1, "blocks smaller than a tile");

static inline __mmask16 lanes(size_t count)
{
    return count >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << count) - 1);
}

/* op(A) rows [i0, i0 + mc) (mc <= m - i0), k [k0, k0 + kc) into slivers
 * ap[s][kc][MR], rows past mc zero. */
SG_TARGET static void pack_a(bool trans_a, const float *a, size_t lda, size_t i0, size_t mc,
                             size_t k0, size_t kc, float *ap)
{
    size_t slivers = (mc + MR - 1) / MR;
    const __mmask16 tile = lanes(MR);
    if (trans_a) { /* A stored [k][m]: row k0 + p holds op(A)[i0 ..][k0 + p] */
        for (size_t p = 0; p < kc; p++) {
            const float *src = a + (k0 + p) * lda + i0;
            for (size_t s = 0; s < slivers; s++) {
                size_t left = mc - s * MR;
                __m512 v = _mm512_maskz_loadu_ps(lanes(left < MR ? left : MR), src + s * MR);
                _mm512_mask_storeu_ps(ap + (s * kc + p) * MR, tile, v);
            }
        }
        return;
    }
    for (size_t s = 0; s < slivers; s++) {
        size_t rows = mc - s * MR < MR ? mc - s * MR : MR;
        float *dst = ap + s * kc * MR;
        for (size_t p0 = 0; p0 < kc; p0 += 16) {
            __mmask16 mask = lanes(kc - p0);
            __m512i r[16]; /* float bits, moved as 32-bit words */
            for (size_t i = 0; i < 16; i++)
                r[i] = i < rows ? _mm512_maskz_loadu_epi32(
                                      mask, a + (i0 + s * MR + i) * lda + k0 + p0)
                                : _mm512_setzero_si512();
            ba_transpose16x16(r);
            size_t count = kc - p0 < 16 ? kc - p0 : 16;
            for (size_t p = 0; p < count; p++)
                _mm512_mask_storeu_epi32(dst + (p0 + p) * MR, tile, r[p]);
        }
    }
}

/* B rows [k0, k0 + kc), columns [j0, j0 + nc) into slivers bp[q][kc][NR],
 * columns past nc zero. */
SG_TARGET static void pack_b(const float *b, size_t ldb, size_t k0, size_t kc, size_t j0,
                             size_t nc, float *bp)
{
    size_t slivers = (nc + NR - 1) / NR;
    for (size_t p = 0; p < kc; p++) {
        const float *src = b + (k0 + p) * ldb + j0;
        for (size_t q = 0; q < slivers; q++) {
            float *dst = bp + (q * kc + p) * NR;
            size_t left = nc - q * NR;
            if (left >= NR) {
                for (int v = 0; v < NV; v++)
                    _mm512_store_ps(dst + 16 * v, _mm512_loadu_ps(src + q * NR + 16 * v));
            } else {
                for (int v = 0; v < NV; v++) {
                    size_t l = left > (size_t)(16 * v) ? left - (size_t)(16 * v) : 0;
                    _mm512_store_ps(dst + 16 * v,
                                    _mm512_maskz_loadu_ps(lanes(l), src + q * NR + 16 * v));
                }
            }
        }
    }
}

enum { C_SET = 0, C_ADD = 1, C_SCALE = 2 }; /* alpha s; alpha s + c; alpha s + beta c */

/* C tile [mrv][nrv] (row stride ldc) from the products of an A sliver
 * ap[kc][MR] and a B sliver bp[kc][NR]; next_ap is prefetched into L1. */
SG_TARGET static void micro_kernel(size_t kc, const float *ap, const float *bp, float *c,
                                   size_t ldc, size_t mrv, size_t nrv, float alpha, float beta,
                                   int mode, const float *next_ap)
{
    __m512 acc[MR][NV];
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
    for (size_t r = 0; r < mrv; r++) {
        const float *row = c + r * ldc;
        for (int v = 0; v < NV; v++) _mm_prefetch((const char *)(row + 16 * v), _MM_HINT_T0);
        _mm_prefetch((const char *)(row + NR - 1), _MM_HINT_T0);
    }
    for (size_t p = 0; p < kc; p++) {
        const float *bk = bp + p * NR;
#if BA_SGEMM_PF_B > 0
        for (int v = 0; v < NV; v++)
            _mm_prefetch((const char *)(bk + BA_SGEMM_PF_B * NR + 16 * v), _MM_HINT_T0);
#endif
        _mm_prefetch((const char *)(next_ap + p * MR), _MM_HINT_T0);
        __m512 bv[NV];
        for (int v = 0; v < NV; v++) bv[v] = _mm512_load_ps(bk + 16 * v);
        const float *ak = ap + p * MR;
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++) {
            __m512 av = _mm512_set1_ps(ak[r]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    __mmask16 mask[NV];
    for (int v = 0; v < NV; v++)
        mask[v] = lanes(nrv > (size_t)(16 * v) ? nrv - (size_t)(16 * v) : 0);
    for (int r = 0; r < MR; r++) {
        if ((size_t)r >= mrv) break;
        float *row = c + (size_t)r * ldc;
        for (int v = 0; v < NV; v++) {
            __m512 out;
            if (mode == C_SET) {
                out = _mm512_mul_ps(va, acc[r][v]);
            } else {
                __m512 old = nrv == NR ? _mm512_loadu_ps(row + 16 * v)
                                       : _mm512_maskz_loadu_ps(mask[v], row + 16 * v);
                if (mode == C_SCALE) old = _mm512_mul_ps(vb, old);
                out = _mm512_fmadd_ps(va, acc[r][v], old);
            }
            if (nrv == NR) _mm512_storeu_ps(row + 16 * v, out);
            else _mm512_mask_storeu_ps(row + 16 * v, mask[v], out);
        }
    }
}

typedef struct {
    bool trans_a;
    size_t m, n, k;
    float alpha, beta;
    const float *a;
    size_t lda;
    const float *b;
    size_t ldb;
    float *c;
    size_t ldc;
    size_t kc; /* k block (the last one may be shorter) */
} sgemm_problem;

/* The lines of op(A) rows [i0, i0 + mc), k [k0, k0 + kc). */
static ba_block_prefetch a_block_lines(const sgemm_problem *pr, size_t i0, size_t mc, size_t k0,
                                    size_t kc)
{
    ba_block_prefetch pf = {0};
    if (mc == 0 || kc == 0) return pf;
    if (pr->trans_a) {
        pf.base = (const char *)(pr->a + k0 * pr->lda + i0);
        pf.rows = kc;
        pf.lines = (mc * sizeof(float) + 63) / 64 + 1;
    } else {
        pf.base = (const char *)(pr->a + i0 * pr->lda + k0);
        pf.rows = mc;
        pf.lines = (kc * sizeof(float) + 63) / 64 + 1;
    }
    pf.row_bytes = pr->lda * sizeof(float);
    return pf;
}

/* C rows [i0, i1), columns [j0, j1), with the buffers ap (MC x kc) and
 * bp (kc x NC). */
SG_TARGET static void sgemm_region(const sgemm_problem *pr, size_t i0, size_t i1, size_t j0,
                                   size_t j1, float *ap, float *bp)
{
    for (size_t jc = j0; jc < j1; jc += NC) {
        size_t nc = j1 - jc < NC ? j1 - jc : NC, nq = (nc + NR - 1) / NR;
        for (size_t k0 = 0; k0 < pr->k; k0 += pr->kc) {
            size_t kc = pr->k - k0 < pr->kc ? pr->k - k0 : pr->kc;
            int mode = k0 > 0 || pr->beta == 1.0f ? C_ADD : pr->beta == 0.0f ? C_SET : C_SCALE;
            pack_b(pr->b, pr->ldb, k0, kc, jc, nc, bp);
            for (size_t ic = i0; ic < i1; ic += MC) {
                size_t mc = i1 - ic < MC ? i1 - ic : MC, ns = (mc + MR - 1) / MR;
                pack_a(pr->trans_a, pr->a, pr->lda, ic, mc, k0, kc, ap);
                /* the next A block comes into L2 while this one is multiplied */
                ba_block_prefetch pf;
                if (ic + MC < i1) {
                    size_t next_mc = i1 - ic - MC < MC ? i1 - ic - MC : MC;
                    pf = a_block_lines(pr, ic + MC, next_mc, k0, kc);
                } else if (k0 + kc < pr->k) {
                    size_t next_kc = pr->k - k0 - kc < pr->kc ? pr->k - k0 - kc : pr->kc;
                    pf = a_block_lines(pr, i0, i1 - i0 < MC ? i1 - i0 : MC, k0 + kc, next_kc);
                } else {
                    pf = a_block_lines(pr, 0, 0, 0, 0);
                }
                size_t calls = ns * nq, per_call = (pf.rows * pf.lines + calls - 1) / calls;
                for (size_t s = 0; s < ns; s++) {
                    size_t row = ic + s * MR, mrv = i1 - row < MR ? i1 - row : MR;
                    const float *as = ap + s * kc * MR;
                    const float *next = s + 1 < ns ? as + kc * MR : as;
                    for (size_t q = 0; q < nq; q++) {
                        size_t col = jc + q * NR, nrv = nc - q * NR < NR ? nc - q * NR : NR;
                        micro_kernel(kc, as, bp + q * kc * NR, pr->c + row * pr->ldc + col,
                                     pr->ldc, mrv, nrv, pr->alpha, pr->beta, mode,
                                     q + 1 == nq ? next : as);
                        ba_prefetch_some(&pf, per_call);
                    }
                }
            }
        }
    }
}

static size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }
static size_t round_up(size_t v, size_t m) { return ceil_div(v, m) * m; }

/* The rows x columns grid of thread rectangles: the one that leaves the
 * least work (tile-padded products, plus packing weighted as a few FMAs
 * per element) on each thread. */
static void choose_grid(size_t m, size_t n, size_t k, int threads, size_t *row_parts,
                        size_t *col_parts)
{
    size_t ms = ceil_div(m, MR), ns = ceil_div(n, NR);
    double best = -1;
    *row_parts = *col_parts = 1;
    for (int tr = 1; tr <= threads; tr++) {
        if (threads % tr) continue;
        size_t tc = (size_t)(threads / tr);
        if ((size_t)tr > ms || tc > ns) continue;
        double rows = (double)ceil_div(ms, (size_t)tr) * MR;
        double cols = (double)ceil_div(ns, tc) * NR;
        double work = rows * cols * (double)k +
                      8.0 * ((double)k * rows * ceil_div((size_t)cols, NC) + (double)k * cols);
        if (best < 0 || work < best) {
            best = work;
            *row_parts = (size_t)tr;
            *col_parts = tc;
        }
    }
}

/* How one product is cut: k block, threads and the per-thread buffers. */
typedef struct {
    size_t kc;
    int threads;
    size_t a_floats, buffer_floats; /* per thread: A block, then B block */
    size_t bytes;                   /* the whole workspace, alignment slack included */
} sgemm_plan;

static sgemm_plan plan_sgemm(size_t m, size_t n, size_t k)
{
    sgemm_plan pl = {0};
    /* k blocks of equal size (a multiple of 8, the last possibly shorter),
     * from k alone */
    size_t kblocks = ceil_div(k, KC);
    pl.kc = round_up(ceil_div(k, kblocks), 8);
    if (pl.kc > k) pl.kc = k;
    int threads = openblas_get_num_threads();
    if (threads < 1) threads = 1;
    double flops = 2.0 * (double)m * (double)n * (double)k;
    if (flops < 4e6) threads = 1; /* not worth waking threads */
    pl.threads = threads;
    /* The buffers are sized for the largest k block any product of at most
     * k columns can have (min(k, KC rounded up to 8)), not for this k's own
     * block: the size then never shrinks as m, n or k grow, so one workspace
     * sized for the largest shape serves every smaller one. */
    size_t kc_bound = round_up(KC, 8) < k ? round_up(KC, 8) : k;
    pl.a_floats = round_up((m < MC ? round_up(m, MR) : MC) * kc_bound, 16);
    size_t b_floats = (n < NC ? round_up(n, NR) : NC) * kc_bound;
    /* a multiple of 16 floats: every thread's buffer starts 64-byte aligned */
    pl.buffer_floats = round_up(pl.a_floats + b_floats, 16);
    pl.bytes = 63 + (size_t)threads * pl.buffer_floats * sizeof(float);
    return pl;
}

static void sgemm_fast(const sgemm_problem *problem, const sgemm_plan *pl, void *ws)
{
    sgemm_problem pr = *problem;
    pr.kc = pl->kc;
    int threads = pl->threads;
    size_t a_floats = pl->a_floats;
    float *all = (float *)(void *)(uintptr_t)round_up((size_t)(uintptr_t)ws, 64);
    BA_OMP("omp parallel num_threads(threads) if (threads > 1)")
    {
        int me = 0, team = 1;
#ifdef _OPENMP
        me = omp_get_thread_num();
        team = omp_get_num_threads();
#endif
        size_t tr, tc;
        choose_grid(pr.m, pr.n, pr.k, team, &tr, &tc);
        if ((size_t)me < tr * tc) {
            size_t ms = ceil_div(pr.m, MR), ns = ceil_div(pr.n, NR);
            size_t r = (size_t)me / tc, q = (size_t)me % tc;
            size_t i0 = ms * r / tr * MR, i1 = ms * (r + 1) / tr * MR;
            size_t j0 = ns * q / tc * NR, j1 = ns * (q + 1) / tc * NR;
            if (i1 > pr.m) i1 = pr.m;
            if (j1 > pr.n) j1 = pr.n;
            float *ap = all + (size_t)me * pl->buffer_floats, *bp = ap + a_floats;
            if (i0 < i1 && j0 < j1) sgemm_region(&pr, i0, i1, j0, j1, ap, bp);
        }
    }
}

#endif /* BA_HAVE_SGEMM_KERNEL */

size_t ba_sgemm_workspace_bytes(size_t m, size_t n, size_t k)
{
#if BA_HAVE_SGEMM_KERNEL
    if (m == 0 || n == 0 || k == 0 || !ba_sgemm_kernel_available()) return 0;
    return plan_sgemm(m, n, k).bytes;
#else
    (void)m, (void)n, (void)k;
    return 0;
#endif
}

ba_status ba_sgemm_ws(bool trans_a, size_t m, size_t n, size_t k, float alpha, const float *a,
                      size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc,
                      void *workspace, size_t workspace_bytes, ba_error *err)
{
    if (m == 0 || n == 0) return BA_OK;
    if (k == 0 || alpha == 0.0f) {
        scale_c(m, n, beta, c, ldc);
        return BA_OK;
    }
#if BA_HAVE_SGEMM_KERNEL
    if (ba_sgemm_kernel_available()) {
        sgemm_plan pl = plan_sgemm(m, n, k);
        if (!workspace || workspace_bytes < pl.bytes)
            return ba_fail(err, BA_ERR_USAGE, "sgemm %zu x %zu x %zu: workspace of %zu bytes, it "
                           "needs %zu (ba_sgemm_workspace_bytes, %d threads)", m, n, k,
                           workspace ? workspace_bytes : 0, pl.bytes, pl.threads);
        sgemm_problem pr = {trans_a, m, n, k, alpha, beta, a, lda, b, ldb, c, ldc, 0};
        sgemm_fast(&pr, &pl, workspace);
        return BA_OK;
    }
#endif
    (void)workspace, (void)workspace_bytes, (void)err;
    sgemm_blas(trans_a, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return BA_OK;
}

ba_status ba_sgemm(bool trans_a, size_t m, size_t n, size_t k, float alpha, const float *a,
                   size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc,
                   ba_error *err)
{
    size_t bytes = ba_sgemm_workspace_bytes(m, n, k);
    void *ws = NULL;
    if (bytes && !(ws = ba_malloc(bytes, "ba_sgemm workspace", err))) return BA_ERR_NOMEM;
    ba_status rc = ba_sgemm_ws(trans_a, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, ws, bytes,
                               err);
    free(ws);
    return rc;
}
