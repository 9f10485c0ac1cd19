/* kernels_blocked.h — pieces shared by the blocked AVX-512 matrix products
 * (kernels_bf16.c, kernels_sgemm.c). x86-64 only. Not a public header. */
#ifndef BRAINALIGN_KERNELS_BLOCKED_H
#define BRAINALIGN_KERNELS_BLOCKED_H

#include <immintrin.h>
#include <stddef.h>

/* 16 x 16 transposition of 32-bit words: r[i] word j -> r[j] word i
 * (packing turns rows of one operand into the columns a micro-kernel
 * broadcasts or loads). */
__attribute__((target("avx512f"))) static inline void ba_transpose16x16(__m512i r[16])
{
    __m512i t[16], s[16];
    /* t[2i], t[2i+1], per 128-bit lane L: rows 2i, 2i+1 interleaved */
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    /* s[4i + c], 128-bit lane L: word 4L + c of rows 4i .. 4i+3 */
    for (int i = 0; i < 4; i++) {
        s[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        s[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        s[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        s[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    /* a 4 x 4 transposition of 128-bit lanes across s[c], s[4+c], s[8+c], s[12+c] */
    for (int c = 0; c < 4; c++) {
        __m512i u1 = _mm512_shuffle_i32x4(s[c], s[4 + c], 0x88);
        __m512i u2 = _mm512_shuffle_i32x4(s[c], s[4 + c], 0xdd);
        __m512i v1 = _mm512_shuffle_i32x4(s[8 + c], s[12 + c], 0x88);
        __m512i v2 = _mm512_shuffle_i32x4(s[8 + c], s[12 + c], 0xdd);
        r[c] = _mm512_shuffle_i32x4(u1, v1, 0x88);
        r[4 + c] = _mm512_shuffle_i32x4(u2, v2, 0x88);
        r[8 + c] = _mm512_shuffle_i32x4(u1, v1, 0xdd);
        r[12 + c] = _mm512_shuffle_i32x4(u2, v2, 0xdd);
    }
}

/* ---- software prefetch of a matrix block into L2, a few cache lines at a
 * time: while one block is multiplied, the next one is brought in by a
 * handful of prefetches after each micro-kernel call. */

/* Rows of `lines` cache lines from base, row_bytes apart; row and line
 * are the position of the next prefetch. */
typedef struct {
    const char *base;
    size_t row_bytes, rows, lines, row, line;
} ba_block_prefetch;

/* Up to `count` more lines of the block. */
static inline void ba_prefetch_some(ba_block_prefetch *pf, size_t count)
{
    for (; count > 0 && pf->row < pf->rows; count--) {
        _mm_prefetch(pf->base + pf->row * pf->row_bytes + pf->line * 64, _MM_HINT_T1);
        if (++pf->line == pf->lines) {
            pf->line = 0;
            pf->row++;
        }
    }
}

#endif
