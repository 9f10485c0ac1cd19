/* sample_dump.c — test helper for sample_oracle.py: runs the sampling
 * functions of src/lm/sample.c on one logits row and prints the result.
 *
 *   sample_dump MODE LOGITS.f32 HISTORY GREEDY PENALTY TEMPERATURE TOP_K TOP_P [SEED ID N]
 *     LOGITS.f32  raw float32 [V]
 *     HISTORY     ids so far, comma-separated ("-" for none)
 *     GREEDY      0 or 1
 *   MODE filter      V lines: the fast pipeline's distribution (%.17g); it
 *                    also checks that the _ref twin on the same row in double
 *                    gives the same distribution to 1e-6 (float vs double steps) and the same set of
 *                    kept tokens, else exit 1
 *        filter_ref  V lines: the _ref twin's distribution
 *        argmax      one line: ba_sample_next's token (greedy parameters)
 *        draw        V lines: how often each id was drawn in N calls of
 *                    ba_sample_next on fresh copies of the row, from the
 *                    stream of (SEED, ID)
 * Exit 0 when all is well; 1 with a message otherwise; 2 for bad arguments. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/lm/sample.h"

static int die(const char *what, const char *detail)
{
    fprintf(stderr, "sample_dump: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    return 1;
}

static float *read_row(const char *path, int32_t *V)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (bytes <= 0 || bytes % 4 != 0) {
        fclose(f);
        return NULL;
    }
    *V = (int32_t)(bytes / 4);
    float *row = malloc((size_t)bytes);
    if (row && fread(row, 4, (size_t)*V, f) != (size_t)*V) {
        free(row);
        row = NULL;
    }
    fclose(f);
    return row;
}

static int32_t *parse_history(const char *s, size_t *n)
{
    *n = 0;
    int32_t *ids = malloc((strlen(s) + 1) * sizeof *ids);
    if (!ids || strcmp(s, "-") == 0) return ids;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) {
            free(ids);
            return NULL;
        }
        ids[(*n)++] = (int32_t)v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') {
            free(ids);
            return NULL;
        }
    }
    return ids;
}

int main(int argc, char **argv)
{
    if (argc != 9 && argc != 12) {
        fprintf(stderr, "usage: sample_dump MODE LOGITS.f32 HISTORY GREEDY PENALTY TEMPERATURE "
                        "TOP_K TOP_P [SEED ID N]\n");
        return 2;
    }
    const char *mode = argv[1];
    int32_t V = 0;
    float *row = read_row(argv[2], &V);
    if (!row) return die(argv[2], "cannot read a float32 row");
    size_t n_hist = 0;
    int32_t *hist = parse_history(argv[3], &n_hist);
    if (!hist) return die("HISTORY", argv[3]);
    ba_sample_params p = {atoi(argv[4]) != 0, atof(argv[5]), atof(argv[6]), atoi(argv[7]),
                          atof(argv[8])};
    ba_error err;
    ba_error_clear(&err);
    float *work = malloc((size_t)V * sizeof *work);
    double *probs = malloc((size_t)V * sizeof *probs), *ref = malloc((size_t)V * sizeof *ref);
    double *ref_probs = malloc((size_t)V * sizeof *ref_probs);
    if (!work || !probs || !ref || !ref_probs) return die("out of memory", NULL);
    int status = 0;
    if (strcmp(mode, "filter") == 0 || strcmp(mode, "filter_ref") == 0) {
        memcpy(work, row, (size_t)V * sizeof *work);
        for (int32_t i = 0; i < V; i++) ref[i] = row[i];
        if (ba_sample_filter(work, V, hist, n_hist, &p, &err) != BA_OK ||
            ba_sample_probs(work, V, probs, &err) != BA_OK)
            return die("fast filter", err.message);
        if (ba_sample_filter_ref(ref, V, hist, n_hist, &p, &err) != BA_OK ||
            ba_sample_probs_ref(ref, V, ref_probs, &err) != BA_OK)
            return die("reference filter", err.message);
        bool ref_mode = strcmp(mode, "filter_ref") == 0;
        for (int32_t i = 0; i < V; i++) {
            if ((probs[i] > 0) != (ref_probs[i] > 0) || fabs(probs[i] - ref_probs[i]) > 1e-6) {
                fprintf(stderr, "sample_dump: id %d: fast %.17g, reference %.17g\n", (int)i,
                        probs[i], ref_probs[i]);
                status = 1;
            }
            printf("%.17g\n", ref_mode ? ref_probs[i] : probs[i]);
        }
    } else if (strcmp(mode, "argmax") == 0) {
        memcpy(work, row, (size_t)V * sizeof *work);
        int32_t token = -1;
        if (ba_sample_next(work, V, hist, n_hist, &p, NULL, &token, &err) != BA_OK)
            return die("ba_sample_next", err.message);
        printf("%d\n", (int)token);
    } else if (strcmp(mode, "draw") == 0 && argc == 12) {
        ba_rng rng;
        ba_sample_stream(&rng, strtoull(argv[9], NULL, 10), argv[10], strlen(argv[10]));
        long n = atol(argv[11]);
        long *counts = calloc((size_t)V, sizeof *counts);
        if (!counts) return die("out of memory", NULL);
        for (long k = 0; k < n; k++) {
            memcpy(work, row, (size_t)V * sizeof *work);
            int32_t token = -1;
            if (ba_sample_next(work, V, hist, n_hist, &p, &rng, &token, &err) != BA_OK)
                return die("ba_sample_next", err.message);
            if (token < 0 || token >= V) return die("a drawn token is outside [0, V)", NULL);
            counts[token]++;
        }
        for (int32_t i = 0; i < V; i++) printf("%ld\n", counts[i]);
        free(counts);
    } else {
        return die("unknown MODE (or draw without SEED ID N)", mode);
    }
    free(row);
    free(hist);
    free(work);
    free(probs);
    free(ref);
    free(ref_probs);
    return status;
}
