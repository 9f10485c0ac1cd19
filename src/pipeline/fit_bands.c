/* fit_bands.c — the banded-ridge options of `fit` (fit.h): the bands and
 * the candidate penalty vectors. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/core/rng.h"
#include "brainalign/pipeline/fit.h"

ba_status ba_fit_parse_bands(const char *spec, long p, ba_banded_options *bo, ba_error *err)
{
    memset(bo, 0, sizeof *bo);
    const char *c = spec;
    if (!spec || !*spec) return ba_fail(err, BA_ERR_USAGE, "--bands is empty");
    while (*c) {
        if (bo->n_bands == BA_MAX_BANDS)
            return ba_fail(err, BA_ERR_USAGE, "--bands '%s': at most %d bands", spec,
                           BA_MAX_BANDS);
        char *end = NULL;
        errno = 0;
        long lo = strtol(c, &end, 10);
        if (end == c || *end != ':' || errno)
            return ba_fail(err, BA_ERR_USAGE, "--bands '%s': expected BEGIN:END ranges of "
                           "columns, e.g. 0:40,40:100", spec);
        const char *hi_text = end + 1;
        long hi = strtol(hi_text, &end, 10);
        if (end == hi_text || (*end != ',' && *end != '\0') || errno)
            return ba_fail(err, BA_ERR_USAGE, "--bands '%s': expected BEGIN:END ranges of "
                           "columns, e.g. 0:40,40:100", spec);
        if (lo < 0)
            return ba_fail(err, BA_ERR_USAGE, "--bands '%s': band %d starts at %ld < 0", spec,
                           bo->n_bands, lo);
        bo->band_begin[bo->n_bands] = lo;
        bo->band_end[bo->n_bands] = hi;
        bo->n_bands++;
        c = *end == ',' ? end + 1 : end;
        if (*end == ',' && !*c)
            return ba_fail(err, BA_ERR_USAGE, "--bands '%s' ends with a comma", spec);
    }
    long next = 0;
    for (int b = 0; b < bo->n_bands; b++) {
        long lo = bo->band_begin[b], hi = bo->band_end[b];
        if (hi <= lo)
            return ba_fail(err, BA_ERR_USAGE, "--bands: band %d (%ld:%ld) is empty", b, lo, hi);
        if (lo < next)
            return ba_fail(err, BA_ERR_USAGE, "--bands: band %d (%ld:%ld) overlaps band %d "
                           "(which ends at %ld); bands are disjoint, in increasing order", b,
                           lo, hi, b - 1, next);
        if (hi > p)
            return ba_fail(err, BA_ERR_USAGE, "--bands: band %d (%ld:%ld) is out of range: the "
                           "design has %ld columns", b, lo, hi, p);
        if (lo > next)
            return ba_fail(err, BA_ERR_USAGE, "--bands: columns %ld:%ld are in no band; the "
                           "bands must cover all %ld columns of the design", next, lo, p);
        next = hi;
    }
    if (next != p)
        return ba_fail(err, BA_ERR_USAGE, "--bands: columns %ld:%ld are in no band; the bands "
                       "must cover all %ld columns of the design", next, p, p);
    return BA_OK;
}

/* The --band-alphas grids: one (*n_grids = 1) or one per band. */
static ba_status band_grids(const ba_fit_config *cfg, int n_bands,
                            double grids[][BA_MAX_ALPHAS], int *sizes, int *n_grids,
                            ba_error *err)
{
    if (!cfg->band_alphas_spec) { /* the --alphas grid */
        memcpy(grids[0], cfg->ridge.alphas, sizeof(double) * (size_t)cfg->ridge.n_alphas);
        sizes[0] = cfg->ridge.n_alphas;
        *n_grids = 1;
        return BA_OK;
    }
    char text[4096];
    if (strlen(cfg->band_alphas_spec) >= sizeof text)
        return ba_fail(err, BA_ERR_USAGE, "--band-alphas is too long");
    snprintf(text, sizeof text, "%s", cfg->band_alphas_spec);
    *n_grids = 0;
    char *save = NULL;
    int pieces = 1;
    for (const char *c = text; *c; c++) pieces += *c == ';';
    if (pieces != 1 && pieces != n_bands)
        return ba_fail(err, BA_ERR_USAGE, "--band-alphas '%s' has %d grids; give one for all "
                       "bands or one per band (%d), separated by ';'", cfg->band_alphas_spec,
                       pieces, n_bands);
    for (char *piece = strtok_r(text, ";", &save); piece; piece = strtok_r(NULL, ";", &save)) {
        ba_status rc = ba_parse_alphas(piece, grids[*n_grids], BA_MAX_ALPHAS, &sizes[*n_grids], err);
        if (rc != BA_OK) return ba_context(err, "--band-alphas grid %d", *n_grids + 1);
        for (int a = 0; a < sizes[*n_grids]; a++)
            if (!(grids[*n_grids][a] > 0) || !isfinite(grids[*n_grids][a]))
                return ba_fail(err, BA_ERR_USAGE, "--band-alphas grid %d: alpha %g must be "
                               "positive and finite", *n_grids + 1, grids[*n_grids][a]);
        (*n_grids)++;
    }
    if (*n_grids != pieces)
        return ba_fail(err, BA_ERR_USAGE, "--band-alphas '%s' has an empty grid",
                       cfg->band_alphas_spec);
    return BA_OK;
}

/* Band-weight vectors from a file: *weights [*n][n_bands]. */
static ba_status read_weights(const char *path, int n_bands, double **weights, int *n,
                              ba_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f) return ba_fail(err, BA_ERR_IO, "--band-weights %s: %s", path, strerror(errno));
    ba_status rc = BA_OK;
    char line[8192];
    int capacity = 0, line_no = 0;
    *weights = NULL;
    *n = 0;
    while (rc == BA_OK && fgets(line, sizeof line, f)) {
        line_no++;
        if (!strchr(line, '\n') && !feof(f)) {
            rc = ba_fail(err, BA_ERR_FORMAT, "%s:%d: line too long", path, line_no);
            break;
        }
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *c = line;
        while (*c == ' ' || *c == '\t' || *c == '\r' || *c == '\n') c++;
        if (!*c) continue;
        if (*n == BA_MAX_CANDIDATES) {
            rc = ba_fail(err, BA_ERR_FORMAT, "%s: more than %d candidates", path,
                         BA_MAX_CANDIDATES);
            break;
        }
        if (*n == capacity) {
            capacity = capacity ? 2 * capacity : 64;
            double *grown = realloc(*weights, sizeof(double) * (size_t)capacity * n_bands);
            if (!grown) { rc = ba_fail(err, BA_ERR_NOMEM, "out of memory reading %s", path); break; }
            *weights = grown;
        }
        int count = 0;
        while (rc == BA_OK) {
            while (*c == ' ' || *c == '\t' || *c == ',' || *c == '\r' || *c == '\n') c++;
            if (!*c) break;
            char *end = NULL;
            errno = 0;
            double w = strtod(c, &end);
            if (end == c || errno) {
                int len = (int)strcspn(c, " \t,\r\n");
                rc = ba_fail(err, BA_ERR_FORMAT, "%s:%d: '%.*s' is not a number", path,
                             line_no, len > 40 ? 40 : len, c);
                break;
            }
            if (count == n_bands) {
                rc = ba_fail(err, BA_ERR_FORMAT, "%s:%d: more than %d band weights (one per "
                             "band)", path, line_no, n_bands);
                break;
            }
            if (!(w > 0) || !isfinite(w)) {
                rc = ba_fail(err, BA_ERR_FORMAT, "%s:%d: band weight %g must be positive and "
                             "finite", path, line_no, w);
                break;
            }
            (*weights)[(size_t)*n * n_bands + count++] = w;
            c = end;
        }
        if (rc == BA_OK && count != n_bands)
            rc = ba_fail(err, BA_ERR_FORMAT, "%s:%d: %d band weights, expected %d (one per "
                         "band)", path, line_no, count, n_bands);
        if (rc == BA_OK) (*n)++;
    }
    fclose(f);
    if (rc == BA_OK && *n == 0)
        rc = ba_fail(err, BA_ERR_FORMAT, "%s has no candidate lines (one line of %d band "
                     "weights per candidate)", path, n_bands);
    if (rc != BA_OK) { free(*weights); *weights = NULL; *n = 0; }
    return rc;
}

ba_status ba_fit_band_candidates(const ba_fit_config *cfg, int n_bands, double **candidates,
                                 int *n, ba_error *err)
{
    *candidates = NULL;
    *n = 0;
    double grids[BA_MAX_BANDS][BA_MAX_ALPHAS];
    int sizes[BA_MAX_BANDS], n_grids = 0;
    BA_CHECK(band_grids(cfg, n_bands, grids, sizes, &n_grids, err));
    long random_n = -1;
    if (cfg->band_search && strcmp(cfg->band_search, "grid") != 0) {
        char *end = NULL;
        if (strncmp(cfg->band_search, "random:", 7) != 0 ||
            (random_n = strtol(cfg->band_search + 7, &end, 10), *end != '\0' || end == cfg->band_search + 7) ||
            random_n < 1)
            return ba_fail(err, BA_ERR_USAGE, "--band-search is grid or random:N (N >= 1), not '%s'",
                           cfg->band_search);
    }
    if (random_n > 0 && cfg->band_weights_path)
        return ba_fail(err, BA_ERR_USAGE, "--band-search random:N and --band-weights exclude "
                       "each other");
    if (random_n > 0 && !cfg->has_seed)
        return ba_fail(err, BA_ERR_USAGE, "--band-search %s needs --seed S", cfg->band_search);
    double *weights = NULL;
    int n_weights = 0;
    if (random_n > 0 || cfg->band_weights_path) {
        if (n_grids != 1)
            return ba_fail(err, BA_ERR_USAGE, "band weights (%s) multiply one alpha grid; "
                           "--band-alphas has %d", random_n > 0 ? cfg->band_search
                           : cfg->band_weights_path, n_grids);
        if (random_n * sizes[0] > BA_MAX_CANDIDATES)
            return ba_fail(err, BA_ERR_USAGE, "%s x %d alphas is more than %d candidates",
                           cfg->band_search, sizes[0], BA_MAX_CANDIDATES);
        if (cfg->band_weights_path) {
            BA_CHECK(read_weights(cfg->band_weights_path, n_bands, &weights, &n_weights, err));
        } else {
            n_weights = (int)random_n;
            weights = malloc(sizeof(double) * (size_t)n_weights * n_bands);
            if (!weights) return ba_fail(err, BA_ERR_NOMEM, "out of memory (band weights)");
            ba_rng rng;
            ba_rng_seed(&rng, (uint64_t)cfg->seed, 0);
            for (int w = 0; w < n_weights; w++) {
                double sum = 0, *g = weights + (size_t)w * n_bands;
                for (int b = 0; b < n_bands; b++) sum += g[b] = ba_rng_gamma(&rng, 1.0);
                for (int b = 0; b < n_bands; b++) g[b] /= sum;
                for (int b = 0; b < n_bands; b++)
                    if (!(g[b] > 0)) g[b] = 1e-300; /* never drawn in practice */
            }
        }
        if ((long)n_weights * sizes[0] > BA_MAX_CANDIDATES) {
            free(weights);
            return ba_fail(err, BA_ERR_USAGE, "%d band-weight vectors x %d alphas is more than "
                           "%d candidates", n_weights, sizes[0], BA_MAX_CANDIDATES);
        }
        *n = n_weights * sizes[0];
        *candidates = malloc(sizeof(double) * (size_t)*n * n_bands);
        if (!*candidates) { free(weights); return ba_fail(err, BA_ERR_NOMEM, "out of memory (candidates)"); }
        for (int w = 0; w < n_weights; w++)
            for (int a = 0; a < sizes[0]; a++)
                for (int b = 0; b < n_bands; b++)
                    (*candidates)[((size_t)w * sizes[0] + a) * n_bands + b] =
                        grids[0][a] / weights[(size_t)w * n_bands + b];
        free(weights);
        return BA_OK;
    }
    /* The Cartesian product, band 0 slowest. */
    long total = 1;
    for (int b = 0; b < n_bands; b++) {
        total *= sizes[n_grids == 1 ? 0 : b];
        if (total > BA_MAX_CANDIDATES)
            return ba_fail(err, BA_ERR_USAGE, "the grids of --band-alphas make more than %d "
                           "candidates", BA_MAX_CANDIDATES);
    }
    *n = (int)total;
    *candidates = malloc(sizeof(double) * (size_t)total * n_bands);
    if (!*candidates) return ba_fail(err, BA_ERR_NOMEM, "out of memory (candidates)");
    for (long c = 0; c < total; c++) {
        long rest = c;
        for (int b = n_bands - 1; b >= 0; b--) {
            int g = n_grids == 1 ? 0 : b;
            (*candidates)[(size_t)c * n_bands + b] = grids[g][rest % sizes[g]];
            rest /= sizes[g];
        }
    }
    return BA_OK;
}
