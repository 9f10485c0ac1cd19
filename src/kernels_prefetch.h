/* kernels_prefetch.h — software prefetch of a matrix block into L2, a few
 * cache lines at a time, for the blocked matrix products (kernels_bf16.c,
 * kernels_sgemm.c): while one block is multiplied, the next one is brought
 * in by a handful of prefetches after each micro-kernel call, so that it
 * is in L2 when its turn comes. x86-64 only. Not a public header. */
#ifndef BRAINALIGN_KERNELS_PREFETCH_H
#define BRAINALIGN_KERNELS_PREFETCH_H

#include <stddef.h>
#include <xmmintrin.h>

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
