/* folds.h — outer cross-validation folds over samples (TRs). */
#ifndef BRAINALIGN_FOLDS_H
#define BRAINALIGN_FOLDS_H

#include "brainalign/core/error.h"

/* K contiguous folds with scikit-learn's KFold(K, shuffle=False)
 * boundaries: the first n % K folds have n / K + 1 samples, the rest n / K.
 * bounds has K + 1 entries; fold k tests samples [bounds[k], bounds[k+1]). */
ba_status ba_kfold_bounds(long n, int k, long *bounds, ba_error *err);

/* Story-wise folds: fold k tests whole stories. story_bounds has
 * n_stories + 1 sample boundaries; stories are dealt into k contiguous
 * groups with the KFold rule applied to the story count. */
ba_status ba_story_fold_bounds(const long *story_bounds, int n_stories, int k,
                               long *bounds, ba_error *err);

#endif
