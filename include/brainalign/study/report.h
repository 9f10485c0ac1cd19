/* report.h — the report of a study: the region table of every fit and
 * summary.md, written the same way by `run` (from its fits as they end)
 * and by `tasks --collect` (from the scores files of the fit tasks).
 *
 *   OUTPUT/tables/[<condition>-]<subject>-layer-<L>.csv
 *       region,n_voxels,mean_r,median_r,sem   (values with 6 decimals)
 *   OUTPUT/summary.md
 *       every fit's mean r, then with regions a region x fit table of mean r
 *
 * Files are written under a temporary name and renamed: a failure leaves
 * nothing half-written. */
#ifndef BRAINALIGN_STUDY_REPORT_H
#define BRAINALIGN_STUDY_REPORT_H

#include "brainalign/core/error.h"
#include "brainalign/pipeline/fit.h"
#include "brainalign/study/plan.h"

/* What the report says of one fit. */
typedef struct {
    const char *label;      /* the plan's label of the fit (not owned) */
    double mean_r;          /* over voxels */
    int n_regions;          /* 0: no region table */
    char **names;           /* [n_regions] (owned) */
    long *n_voxels;         /* [n_regions] */
    double *mean, *median, *sem; /* [n_regions] r within each region */
} ba_report_fit;

/* From the summary of a fit that just ran. */
ba_status ba_report_fit_from_summary(const char *label, const ba_fit_summary *s,
                                     ba_report_fit *r, ba_error *err);
/* From a scores.h5 (fit.h): mean of /r, and /roi when there. Independent. */
ba_status ba_report_fit_read(const char *label, const char *scores_path, ba_report_fit *r,
                             ba_error *err);
void ba_report_fit_free(ba_report_fit *r);

/* One fit's region CSV (it must have regions). */
ba_status ba_report_write_table(const char *path, const ba_report_fit *r, ba_error *err);

/* plan->summary from the fits (in the plan's order; the regions of the
 * first apply to all). */
ba_status ba_report_write_summary(const ba_study_plan *plan, const ba_report_fit *fits, int n,
                                  ba_error *err);

/* Every fit of the plan from its scores file: the region tables (with an
 * atlas) and summary.md. Fails before writing anything when a scores file is
 * missing (naming the first and how many) or when the fits' regions differ.
 * Independent (MPI_COMM_SELF). */
ba_status ba_report_collect(const ba_study_plan *plan, ba_error *err);

#endif
