/* folds.c — outer cross-validation folds (see folds.h). */
#include "brainalign/ridge/folds.h"

ba_status ba_kfold_bounds(long n, int k, long *bounds, ba_error *err)
{
    if (k < 2)
        return ba_fail(err, BA_ERR_USAGE, "need at least 2 folds, got %d", k);
    if (n < k)
        return ba_fail(err, BA_ERR_SHAPE, "%ld samples cannot make %d folds", n, k);
    long base = n / k, extra = n % k;
    bounds[0] = 0;
    for (int i = 0; i < k; i++) bounds[i + 1] = bounds[i] + base + (i < extra ? 1 : 0);
    return BA_OK;
}

ba_status ba_story_fold_bounds(const long *story_bounds, int n_stories, int k,
                               long *bounds, ba_error *err)
{
    if (n_stories < k)
        return ba_fail(err, BA_ERR_SHAPE,
                       "story-wise folds: %d stories cannot make %d folds", n_stories, k);
    long story_groups[k + 1];
    BA_CHECK(ba_kfold_bounds(n_stories, k, story_groups, err));
    for (int i = 0; i <= k; i++) bounds[i] = story_bounds[story_groups[i]];
    return BA_OK;
}
