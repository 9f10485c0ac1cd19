/* checkpoint.h — restart after failure (ridge_checkpoint.c), called by the
 * CV driver only. Not a public header. */
#ifndef BRAINALIGN_RIDGE_CHECKPOINT_H
#define BRAINALIGN_RIDGE_CHECKPOINT_H

#include <stdbool.h>

#include "brainalign/ridge/ridge.h"

/* `who` prefixes messages ("ridge CV"). Load marks in done[] the folds a
 * previous run with the same key finished and fills their rows of res;
 * anything unusable means starting afresh. Collective over L->world. */
void ba_ridge_checkpoint_load(const ba_ridge_layout *L, const ba_ridge_options *opt,
                              const char *who, ba_ridge_result *res, int *done);
/* After a round of folds [first, last): mark them done, save the
 * checkpoint (announced on rank 0 if `announce`), and fail with
 * BA_ERR_INTERRUPTED if a signal asked to stop and folds remain.
 * Collective over L->world. */
ba_status ba_ridge_end_of_round(const ba_ridge_layout *L, const ba_ridge_options *opt,
                                const char *who, bool announce, const ba_ridge_result *res,
                                int *done, int first, int last, ba_error *err);

#endif
