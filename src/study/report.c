/* report.c — region tables and summary.md of a study (see report.h). */
#define _XOPEN_SOURCE 700 /* strdup */
#include "brainalign/study/report.h"

#include "brainalign/core/fs.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "brainalign/io/h5io.h"

/* ------------------------------------------------------------ one fit */

static ba_status alloc_regions(ba_report_fit *r, int n, ba_error *err)
{
    size_t k = (size_t)(n > 0 ? n : 1);
    r->n_regions = n;
    r->names = ba_calloc(k, sizeof *r->names, "report regions", err);
    r->n_voxels = ba_calloc(k, sizeof *r->n_voxels, "report regions", err);
    r->mean = ba_calloc(k, sizeof *r->mean, "report regions", err);
    r->median = ba_calloc(k, sizeof *r->median, "report regions", err);
    r->sem = ba_calloc(k, sizeof *r->sem, "report regions", err);
    return r->names && r->n_voxels && r->mean && r->median && r->sem ? BA_OK : BA_ERR_NOMEM;
}

ba_status ba_report_fit_from_summary(const char *label, const ba_fit_summary *s,
                                     ba_report_fit *r, ba_error *err)
{
    memset(r, 0, sizeof *r);
    r->label = label;
    r->mean_r = s->mean_r;
    if (s->roi.n_regions == 0) return BA_OK;
    ba_status rc = BA_OK;
    BA_TRY(alloc_regions(r, s->roi.n_regions, err), fail);
    for (int g = 0; g < r->n_regions; g++) {
        r->names[g] = strdup(s->roi.names[g]);
        if (!r->names[g]) {
            rc = ba_fail(err, BA_ERR_NOMEM, "report: region name of %s", label);
            goto fail;
        }
        r->n_voxels[g] = s->roi.n_voxels[g];
        r->mean[g] = s->roi.mean[g];
        r->median[g] = s->roi.median[g];
        r->sem[g] = s->roi.sem[g];
    }
    return BA_OK;
fail:
    ba_report_fit_free(r);
    return rc;
}

void ba_report_fit_free(ba_report_fit *r)
{
    for (int g = 0; r->names && g < r->n_regions; g++) free(r->names[g]);
    free(r->names); free(r->n_voxels); free(r->mean); free(r->median); free(r->sem);
    memset(r, 0, sizeof *r);
}

/* A 1-D dataset of exactly n values into out (8-byte values). */
static ba_status read_vector(ba_h5file *f, const char *dset, ba_h5type type, hsize_t n,
                             void *out, ba_error *err)
{
    int rank = 0;
    hsize_t dims[BA_H5_MAX_RANK];
    BA_CHECK(ba_h5_shape(f, dset, 1, &rank, dims, err));
    if (dims[0] != n)
        return ba_fail(err, BA_ERR_SHAPE, "%s:%s has %llu values, expected %llu", f->path, dset,
                       (unsigned long long)dims[0], (unsigned long long)n);
    return ba_h5_read(f, dset, type, NULL, NULL, out, err);
}

ba_status ba_report_fit_read(const char *label, const char *path, ba_report_fit *r,
                             ba_error *err)
{
    memset(r, 0, sizeof *r);
    r->label = label;
    ba_h5file f;
    BA_CHECK(ba_h5_open(&f, path, MPI_COMM_SELF, err));
    ba_status rc = BA_OK;
    float *values = NULL;     /* /r [n_voxels] */
    int64_t *counts = NULL;   /* /roi/n_voxels [n_regions] */
    char **names = NULL;
    size_t n_names = 0;
    int rank = 0;
    hsize_t dims[BA_H5_MAX_RANK];
    BA_TRY(ba_h5_shape(&f, "/r", 1, &rank, dims, err), done);
    if (dims[0] == 0) {
        rc = ba_fail(err, BA_ERR_SHAPE, "%s:/r is empty", path);
        goto done;
    }
    BA_ALLOC(values, dims[0], "/r", done);
    BA_TRY(read_vector(&f, "/r", BA_H5_F32, dims[0], values, err), done);
    double total = 0;
    for (hsize_t v = 0; v < dims[0]; v++) total += values[v];
    r->mean_r = total / (double)dims[0];
    if (ba_h5_exists(&f, "/roi/name")) {
        BA_TRY(ba_h5_read_strings(&f, "/roi/name", &names, &n_names, err), done);
        hsize_t n = (hsize_t)n_names;
        BA_TRY(alloc_regions(r, (int)n, err), done);
        BA_ALLOC(counts, n ? n : 1, "/roi/n_voxels", done);
        BA_TRY(read_vector(&f, "/roi/n_voxels", BA_H5_I64, n, counts, err), done);
        BA_TRY(read_vector(&f, "/roi/mean_r", BA_H5_F64, n, r->mean, err), done);
        BA_TRY(read_vector(&f, "/roi/median_r", BA_H5_F64, n, r->median, err), done);
        BA_TRY(read_vector(&f, "/roi/sem_r", BA_H5_F64, n, r->sem, err), done);
        for (hsize_t g = 0; g < n; g++) {
            r->n_voxels[g] = (long)counts[g];
            r->names[g] = names[g];
            names[g] = NULL;
        }
    }
done:
    ba_h5_free_strings(names, n_names);
    free(values);
    free(counts);
    ba_error ignored;
    if (rc == BA_OK) rc = ba_h5_close(&f, err);
    else ba_h5_close(&f, &ignored);
    if (rc != BA_OK) ba_report_fit_free(r);
    return rc;
}

/* ------------------------------------------------------------ writing */

ba_status ba_report_write_table(const char *path, const ba_report_fit *r, ba_error *err)
{
    char temp[BA_PATH_MAX + 16];
    FILE *f = ba_partial_open(path, temp, sizeof temp, err);
    if (!f) return BA_ERR_IO;
    fprintf(f, "region,n_voxels,mean_r,median_r,sem\n");
    for (int g = 0; g < r->n_regions; g++)
        fprintf(f, "%s,%ld,%.6f,%.6f,%.6f\n", r->names[g], r->n_voxels[g], r->mean[g],
                r->median[g], r->sem[g]);
    return ba_partial_close(f, temp, path, BA_OK, err);
}

ba_status ba_report_write_summary(const ba_study_plan *plan, const ba_report_fit *fits, int n,
                                  ba_error *err)
{
    const ba_study_config *cfg = plan->cfg;
    char temp[BA_PATH_MAX + 48];
    FILE *f = ba_partial_open(plan->summary, temp, sizeof temp, err);
    if (!f) return BA_ERR_IO;
    fprintf(f, "# %s — brain scores\n\nConfiguration: `%s`, condition `%s`. Pearson r on held-out "
               "folds (%d folds), mean over voxels.\n\n| fit | mean r |\n| --- | ---: |\n",
            cfg->name[0] ? cfg->name : "study", cfg->path, cfg->condition, cfg->fit.n_folds);
    for (int i = 0; i < n; i++) fprintf(f, "| %s | %.4f |\n", fits[i].label, fits[i].mean_r);
    int regions = n > 0 ? fits[0].n_regions : 0;
    if (regions > 0) {
        fprintf(f, "\n## Mean r by region\n\n| region | voxels |");
        for (int i = 0; i < n; i++) fprintf(f, " %s |", fits[i].label);
        fprintf(f, "\n| --- | ---: |");
        for (int i = 0; i < n; i++) fprintf(f, " ---: |");
        fprintf(f, "\n");
        for (int g = 0; g < regions; g++) {
            fprintf(f, "| %s | %ld |", fits[0].names[g], fits[0].n_voxels[g]);
            for (int i = 0; i < n; i++)
                fprintf(f, " %.4f |", g < fits[i].n_regions ? fits[i].mean[g] : 0.0);
            fprintf(f, "\n");
        }
    }
    return ba_partial_close(f, temp, plan->summary, BA_OK, err);
}

/* ------------------------------------------------------------ collecting */

/* Every fit of a study has the same regions, or none. */
static ba_status check_same_regions(const ba_report_fit *first, const ba_report_fit *r,
                                    const char *path, ba_error *err)
{
    bool same = r->n_regions == first->n_regions;
    for (int g = 0; same && g < r->n_regions; g++)
        same = strcmp(r->names[g], first->names[g]) == 0;
    if (!same)
        return ba_fail(err, BA_ERR_SHAPE,
                       "%s:/roi/name: %d regions that differ from those of %s (%d regions)",
                       path, r->n_regions, first->label, first->n_regions);
    return BA_OK;
}

static ba_status check_all_present(const ba_study_plan *plan, ba_error *err)
{
    int missing = 0;
    const char *first = NULL;
    for (int i = 0; i < plan->n_fits; i++) {
        struct stat st;
        if (stat(plan->fits[i].scores, &st) == 0) continue;
        if (!missing++) first = plan->fits[i].scores;
    }
    if (missing)
        return ba_fail(err, BA_ERR_IO,
                       "%s: scores file missing (%d of the %d fits of %s have no scores: did "
                       "every fit task end well?)", first, missing, plan->n_fits,
                       plan->cfg->path);
    return BA_OK;
}

ba_status ba_report_collect(const ba_study_plan *plan, ba_error *err)
{
    BA_CHECK(check_all_present(plan, err));
    int n = plan->n_fits;
    ba_status rc = BA_OK;
    ba_report_fit *fits = NULL;
    BA_ALLOC(fits, n, "fit results", done);
    for (int i = 0; i < n; i++) {
        const ba_plan_fit *p = &plan->fits[i];
        BA_TRY(ba_report_fit_read(p->label, p->scores, &fits[i], err), done);
        if (i > 0) BA_TRY(check_same_regions(&fits[0], &fits[i], p->scores, err), done);
    }
    if (fits[0].n_regions > 0) BA_TRY(ba_make_dirs(plan->tables_dir, err), done);
    for (int i = 0; i < n; i++)
        if (fits[i].n_regions > 0)
            BA_TRY(ba_report_write_table(plan->fits[i].table, &fits[i], err), done);
    BA_TRY(ba_report_write_summary(plan, fits, n, err), done);
done:
    for (int i = 0; fits && i < n; i++) ba_report_fit_free(&fits[i]);
    free(fits);
    return rc;
}
