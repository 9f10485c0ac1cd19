/* cmd_augment.c — `brainalign augment`: show the text a model reads when
 * an association set is inserted into the stories (a preview of what
 * `features --associations` does). */
#include <mpi.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "brainalign/pipeline/associations.h"
#include "brainalign/parallel/parallel.h"

static void help(void)
{
    printf(
        "usage: brainalign augment --stimuli DIR --associations FILE [options]\n\n"
        "Print each story as the model reads it with the associations inserted: the words\n"
        "joined by spaces, each inserted text in [[ ]] (or --tsv: one line per word with its\n"
        "position, its index in the original story or '-', the line of its association and\n"
        "the word). Checks the set against the stories first (unknown story, index out of\n"
        "range) and reports how sentences were found. See include/brainalign/pipeline/associations.h.\n\n"
        "  --stimuli DIR        stories (<story>/align.csv, <story>.TextGrid, <story>.tsv)\n"
        "  --associations FILE  JSONL association set\n"
        "  --policy P           human (default), every-k, word, random, random-every-k,\n"
        "                       random-word\n"
        "  --every K            sentences per block for every-k (default 4)\n"
        "  --seed S             seed of the random control (default 2025)\n"
        "  --pause SEC          silence that ends a sentence in unpunctuated text (default %.2g)\n"
        "  --story NAME         only this story (default: every story given associations)\n"
        "  --tsv                one line per word\n",
        BA_SENTENCE_PAUSE_S);
}

static void print_text(const ba_augmented_story *a)
{
    printf("# %s: %zu words, %zu associations inserted (%zu words)\n", a->name, a->n_original,
           a->n_insertions, a->n_words - a->n_original);
    for (size_t i = 0; i < a->n_words; i++) {
        bool inserted = a->original[i] < 0;
        bool opens = inserted && (i == 0 || a->association[i - 1] != a->association[i]);
        bool closes = inserted && (i + 1 == a->n_words || a->association[i + 1] != a->association[i]);
        printf("%s%s%s%s", i ? " " : "", opens ? "[[" : "", a->words[i], closes ? "]]" : "");
    }
    printf("\n\n");
}

static void print_tsv(const ba_augmented_story *a, const ba_association_set *set)
{
    printf("story\tposition\toriginal\tassociation_line\tword\n");
    for (size_t i = 0; i < a->n_words; i++) {
        printf("%s\t%zu\t", a->name, i);
        if (a->original[i] >= 0) printf("%ld\t-\t", a->original[i]);
        else printf("-\t%ld\t", set->items[a->association[i]].line);
        printf("%s\n", a->words[i]);
    }
}

/* Augment every story first (so a policy error shows before any output),
 * then print the stories that received associations, or the one asked for. */
static ba_status augment_all(const char *stimuli, const char *assoc, const char *only,
                             const ba_augment_options *o, bool tsv, ba_error *err)
{
    ba_story *stories = NULL;
    size_t n = 0, done = 0;
    ba_association_set set = {0};
    ba_augmented_story *aug = NULL;
    BA_CHECK(ba_story_dir_read(stimuli, NULL, 0, &stories, &n, err));
    ba_status rc = ba_association_set_read(assoc, &set, err);
    if (rc == BA_OK) rc = ba_association_set_check(&set, stories, n, o->pause_s, err);
    if (rc == BA_OK && !(aug = ba_calloc(n ? n : 1, sizeof *aug, "augmented stories", err)))
        rc = BA_ERR_NOMEM;
    for (; rc == BA_OK && done < n; done++)
        rc = ba_augment_story(&stories[done], &set, o, stories, n, &aug[done], err);
    bool found = only == NULL;
    for (size_t s = 0; rc == BA_OK && s < n; s++) {
        if (only ? strcmp(only, stories[s].name) != 0 : aug[s].n_insertions == 0) continue;
        found = true;
        size_t *ends = NULL, n_sentences = 0;
        bool by_pause = false;
        rc = ba_story_sentences(&stories[s], o->pause_s, &ends, &n_sentences, &by_pause, err);
        free(ends);
        if (rc != BA_OK) break;
        if (tsv) {
            print_tsv(&aug[s], &set);
            continue;
        }
        printf("# %s: %zu sentences (%s), policy %s\n", stories[s].name, n_sentences,
               by_pause ? "ended by pauses: no punctuation" : "ended by punctuation",
               ba_augment_policy_name(o));
        print_text(&aug[s]);
    }
    if (rc == BA_OK && !found)
        rc = only ? ba_fail(err, BA_ERR_USAGE, "%s: no story '%s'", stimuli, only)
                  : ba_fail(err, BA_ERR_USAGE, "%s: no association of %s concerns these stories",
                            assoc, stimuli);
    for (size_t s = 0; aug && s < done; s++) ba_augmented_story_free(&aug[s]);
    free(aug);
    ba_association_set_free(&set);
    ba_story_array_free(stories, n);
    return rc;
}

int ba_cmd_augment(int argc, char **argv)
{
    ba_augment_options o;
    ba_augment_options_defaults(&o);
    ba_error err;
    ba_error_clear(&err);
    ba_args a;
    ba_args_init(&a, argc, argv);
    const char *stimuli = NULL, *assoc = NULL, *story = NULL;
    bool tsv = false;
    long number = 0;
    while (ba_args_more(&a)) {
        if (ba_cli_is_help(argv[a.i])) { help(); return 0; }
        if (ba_args_value(&a, "--stimuli")) stimuli = a.value;
        else if (ba_args_value(&a, "--associations")) assoc = a.value;
        else if (ba_args_value(&a, "--policy")) {
            if (ba_augment_policy_parse(a.value, &o, &err))
                snprintf(a.error, sizeof a.error, "--policy: %s", err.message);
        } else if (ba_args_value(&a, "--every")) {
            if (ba_args_long(&a, "--every", &number)) {
                if (number > INT_MAX)
                    snprintf(a.error, sizeof a.error, "--every %s: at most %d", a.value, INT_MAX);
                else o.every_k = number < 1 ? 0 : (int)number;
            }
        } else if (ba_args_value(&a, "--seed")) {
            if (ba_args_long(&a, "--seed", &number)) {
                if (number < 0)
                    snprintf(a.error, sizeof a.error, "--seed %s must be a whole number >= 0",
                             a.value);
                else o.seed = (uint64_t)number;
            }
        } else if (ba_args_value(&a, "--pause")) ba_args_double(&a, "--pause", &o.pause_s);
        else if (ba_args_value(&a, "--story")) story = a.value;
        else if (ba_args_flag(&a, "--tsv")) tsv = true;
        else snprintf(a.error, sizeof a.error, "unknown option '%s' (see --help)", argv[a.i]);
    }
    if (!a.error[0] && (!stimuli || !assoc))
        snprintf(a.error, sizeof a.error, "--stimuli and --associations are required");
    if (a.error[0]) {
        ba_fail(&err, BA_ERR_USAGE, "%s", a.error);
        return ba_cli_report("augment", BA_ERR_USAGE, &err);
    }
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    ba_status rc = rank == 0 ? augment_all(stimuli, assoc, story, &o, tsv, &err) : BA_OK;
    fflush(stdout);
    rc = ba_mpi_agree(MPI_COMM_WORLD, rc, &err);
    return rc == BA_OK ? 0 : ba_cli_report("augment", rc, &err);
}
