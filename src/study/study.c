/* study.c — `brainalign run CONFIG` (see study.h). */
#define _XOPEN_SOURCE 700 /* realpath */
#include "brainalign/study/study.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "brainalign/core/fs.h"
#include "brainalign/core/hash.h"
#include "brainalign/core/parse.h"
#include "brainalign/pipeline/compare_options.h"
#include "brainalign/pipeline/synth_options.h"
#include "brainalign/pipeline/design.h"
#include "brainalign/pipeline/features.h"
#include "brainalign/parallel/parallel.h"
#include "brainalign/study/plan.h"
#include "brainalign/study/report.h"

/* ------------------------------------------------------------ parsing */

typedef struct {
    ba_study_config *cfg;
    char base_dir[BA_PATH_MAX];
    char problem[512];       /* why the handler refused a line */
    bool seen_synth, seen_features, seen_model;
} parse_state;

/* value, made absolute against base, into out[size]; false when it does not fit */
static bool resolve(const char *base, const char *value, char *out, size_t size)
{
    int n = value[0] == '/' || base[0] == '\0' ? snprintf(out, size, "%s", value)
                                               : snprintf(out, size, "%s/%s", base, value);
    return n >= 0 && (size_t)n < size;
}

/* value into out[size]; false when it does not fit */
static bool copy_value(const char *value, char *out, size_t size)
{
    int n = snprintf(out, size, "%s", value);
    return n >= 0 && (size_t)n < size;
}

/* Whole-text numbers (core/parse.h); each key checks its own range. */
static bool parse_long(const char *value, long *out)
{
    return ba_parse_long(value, LONG_MIN, LONG_MAX, out);
}

static bool parse_double(const char *value, double *out)
{
    return ba_parse_double(value, -HUGE_VAL, HUGE_VAL, out);
}

/* "a, b ,c" -> names; false if too many or one is empty (the caller then
 * checks each with ba_valid_name). */
static bool parse_names(const char *value, char names[][BA_STUDY_NAME_MAX], int max, int *n)
{
    *n = 0;
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        const char *end = p;
        while (*end && *end != ',') end++;
        const char *last = end;
        while (last > p && last[-1] == ' ') last--;
        if (*n >= max || last - p >= BA_STUDY_NAME_MAX) return false;
        snprintf(names[*n], BA_STUDY_NAME_MAX, "%.*s", (int)(last - p), p);
        (*n)++;
        p = end;
    }
    return *n > 0;
}

#define KEY(s, k) (strcmp(section, s) == 0 && strcmp(name, k) == 0)
/* messages of on_entry, which has `section`, `name` and `value` */
#define TOO_LONG "[%s] %s: the value (%zu bytes) is too long for this key", section, name, strlen(value)
/* the type's range; ba_synth_run checks what the values mean */
#define INT_RANGE "[%s] %s = %.80s: expected a whole number in [%d, %d]", section, name, value, INT_MIN, INT_MAX
#define LONG_RANGE "[%s] %s = %.80s: expected a whole number in [%ld, %ld]", section, name, value, LONG_MIN, LONG_MAX
/* inih goes on after a bad line and reports the first: keep its message */
#define BAD(...) do { if (!st->problem[0]) snprintf(st->problem, sizeof st->problem, __VA_ARGS__); return 0; } while (0)

/* The condition called `name` (created on first mention), or NULL. */
static ba_study_condition *condition_named(ba_study_config *c, const char *name, size_t len)
{
    for (int i = 0; i < c->n_conditions; i++)
        if (strlen(c->conditions[i].name) == len && strncmp(c->conditions[i].name, name, len) == 0)
            return &c->conditions[i];
    if (c->n_conditions == BA_STUDY_MAX_CONDITIONS || len == 0 || len >= BA_STUDY_NAME_MAX)
        return NULL;
    ba_study_condition *k = &c->conditions[c->n_conditions++];
    memset(k, 0, sizeof *k);
    snprintf(k->name, sizeof k->name, "%.*s", (int)len, name);
    ba_augment_options_defaults(&k->augment);
    return k;
}

/* [conditions]: "name = FILE" or "name.policy|every|seed|pause = value". */
static int on_condition(parse_state *st, const char *name, const char *value)
{
    const char *dot = strchr(name, '.');
    size_t len = dot ? (size_t)(dot - name) : strlen(name);
    if (len == strlen(st->cfg->condition) && strncmp(name, st->cfg->condition, len) == 0)
        BAD("[conditions] %.*s: the baseline is not listed here (it is [study] condition)",
            (int)len, name);
    char bare[BA_STUDY_NAME_MAX] = "";
    const char *why = "it is longer than 127 bytes";
    if (len < sizeof bare) snprintf(bare, sizeof bare, "%.*s", (int)len, name);
    if (len >= sizeof bare || !ba_valid_name(bare, &why))
        BAD("[conditions] '%.*s': not a valid condition name, %s (it becomes a file name: no "
            "'/', no '..', no control characters, no leading '-')", (int)len, name, why);
    if (memchr(name, ' ', len))
        BAD("[conditions] '%.*s': a condition name has no '/' or spaces", (int)len, name);
    ba_study_condition *k = condition_named(st->cfg, name, len);
    if (!k) BAD("[conditions] %s: at most %d conditions, names of 1 to %d bytes",
                name, BA_STUDY_MAX_CONDITIONS, BA_STUDY_NAME_MAX - 1);
    ba_error err;
    long l = 0;
    double d = 0;
    if (!dot) {
        char path[BA_PATH_MAX];
        resolve(st->base_dir, value, path, sizeof path);
        if (ba_has_suffix(value, ".h5", false)) snprintf(k->features, sizeof k->features, "%s", path);
        else snprintf(k->associations, sizeof k->associations, "%s", path);
    } else if (!strcmp(dot, ".policy")) {
        if (ba_augment_policy_parse(value, &k->augment, &err)) BAD("[conditions] %s: %s", name, err.message);
    } else if (!strcmp(dot, ".every")) {
        if (!parse_long(value, &l) || l < 1 || l > 100000) BAD("[conditions] %s must be a whole number >= 1", name);
        k->augment.every_k = (int)l;
    } else if (!strcmp(dot, ".seed")) {
        if (!parse_long(value, &l) || l < 0) BAD("[conditions] %s must be a whole number >= 0", name);
        k->augment.seed = (uint64_t)l;
    } else if (!strcmp(dot, ".pause")) {
        if (!parse_double(value, &d) || !(d > 0)) BAD("[conditions] %s must be a positive number of seconds", name);
        k->augment.pause_s = d;
    } else {
        BAD("[conditions] %s: expected NAME = FILE, NAME.policy, NAME.every, NAME.seed or NAME.pause", name);
    }
    return 1;
}

static int on_entry(void *user, const char *section, const char *name, const char *value)
{
    parse_state *st = user;
    ba_study_config *c = st->cfg;
    ba_error err;
    if (name == NULL) { /* a section header (newer inih) */
        return 1;
    }
    const ba_option *fit_option = ba_option_find_key(&ba_fit_option_table, section, name);
    const ba_option *features_option = ba_option_find_key(&ba_features_option_table, section, name);
    char where[160];
    snprintf(where, sizeof where, "[%s] %s", section, name);
    if (fit_option) {
        if (ba_option_parse(fit_option, &c->fit, value, where, &err) != BA_OK) BAD("%s", err.message);
    }
    else if (features_option) {
        if (ba_option_parse(features_option, &c->features, value, where, &err) != BA_OK)
            BAD("%s", err.message);
    }
    else if (KEY("study", "name")) { if (!copy_value(value, c->name, sizeof c->name)) BAD(TOO_LONG); }
    else if (KEY("study", "output")) { if (!resolve(st->base_dir, value, c->output_dir, sizeof c->output_dir)) BAD(TOO_LONG); }
    else if (KEY("study", "condition")) {
        const char *why = NULL;
        if (!ba_valid_name(value, &why))
            BAD("[study] condition '%.80s': not a valid condition name, %s (it becomes a file name: "
                "no '/', no '..', no control characters, no leading '-')", value, why);
        if (!copy_value(value, c->condition, sizeof c->condition)) BAD(TOO_LONG);
    }
    else if (strcmp(section, "synth") == 0) {
        st->seen_synth = true;
        const ba_option *o = ba_option_find_key(&ba_synth_option_table, section, name);
        if (!strcmp(name, "stimuli")) { if (!resolve(st->base_dir, value, c->synth_stimuli, sizeof c->synth_stimuli)) BAD(TOO_LONG); }
        else if (!o) BAD("[synth] %s = %s: unknown key", name, value);
        else if (ba_option_parse(o, &c->synth_options, value, where, &err) != BA_OK)
            BAD("%s", err.message);
    }
    else if (strcmp(section, "conditions") == 0) return on_condition(st, name, value);
    else if (strcmp(section, "compare") == 0) {
        const ba_option *o = ba_option_find_key(&ba_compare_option_table, section, name);
        if (!o) BAD("unknown key '%s' in section [%s]", name, section);
        if (ba_option_parse(o, &c->compare, value, where, &err) != BA_OK) BAD("%s", err.message);
    }
    else if (KEY("features", "path")) { st->seen_features = true; if (!resolve(st->base_dir, value, c->features_path, sizeof c->features_path)) BAD(TOO_LONG); }
    else if (KEY("model", "path")) { st->seen_model = true; if (!resolve(st->base_dir, value, c->model_dir, sizeof c->model_dir)) BAD(TOO_LONG); }
    else if (KEY("model", "adapter")) { if (!resolve(st->base_dir, value, c->adapter_dir, sizeof c->adapter_dir)) BAD(TOO_LONG); }
    else if (KEY("stimuli", "dir")) { if (!resolve(st->base_dir, value, c->stimuli_dir, sizeof c->stimuli_dir)) BAD(TOO_LONG); }
    else if (KEY("stimuli", "format")) { if (!copy_value(value, c->stimuli_format, sizeof c->stimuli_format)) BAD(TOO_LONG); }
    else if (KEY("stimuli", "stories")) {
        if (!copy_value(value, c->stories, sizeof c->stories)) BAD(TOO_LONG);
        char copy[sizeof c->stories];
        memcpy(copy, c->stories, sizeof copy);
        char *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ') tok++;
            char *end = tok + strlen(tok);
            while (end > tok && end[-1] == ' ') *--end = '\0';
            const char *why = NULL;
            if (*tok && !ba_valid_name(tok, &why))
                BAD("[stimuli] stories: '%.80s' is not a valid story name, %s (no '/', no '..', no "
                    "control characters, no leading '-')", tok, why);
        }
    }
    else if (KEY("fit", "layers")) {
        if (ba_parse_int_list(value, c->layers, BA_MAX_LAYERS, &c->n_layers, &err)) BAD("[fit] layers: %s", err.message);
    }
    else if (KEY("bold", "subjects")) {
        if (!parse_names(value, c->subjects, BA_STUDY_MAX_SUBJECTS, &c->n_subjects))
            BAD("[bold] subjects: a comma-separated list of at most %d names of 1 to %d bytes",
                BA_STUDY_MAX_SUBJECTS, BA_STUDY_NAME_MAX - 1);
        for (int i = 0; i < c->n_subjects; i++) {
            const char *why = NULL;
            if (!ba_valid_name(c->subjects[i], &why))
                BAD("[bold] subjects: '%.80s' is not a valid subject name, %s (it becomes a "
                    "directory name: no '/', no '..', no control characters, no leading '-')",
                    c->subjects[i], why);
        }
    }
    else if (KEY("bold", "path")) { if (!resolve(st->base_dir, value, c->bold_pattern, sizeof c->bold_pattern)) BAD(TOO_LONG); }
    else if (KEY("atlas", "path")) { if (!resolve(st->base_dir, value, c->atlas_path, sizeof c->atlas_path)) BAD(TOO_LONG); }
    else BAD("unknown key '%s' in section [%s]", name, section);
    return 1;
}

/* ------------------------------------------------------------ the INI file
 *
 * The file is read whole (the configuration recorded in every output is
 * exactly the text parsed) and parsed here, not by libinih, whose Debian
 * build cuts lines at 200 bytes and parses the rest as a new line. Syntax:
 *
 *   ; comment            # comment          (whole lines; " ;" ends a value)
 *   [section]
 *   key = value
 *   subjects = sub-01, sub-02,               a list may go on over indented
 *       sub-03, sub-04                       lines (as Python's configparser)
 *
 * A line is at most BA_INI_LINE_MAX bytes; a longer one is refused whole
 * with its line number. Only lists (keys whose value is a comma-separated
 * list) may continue; the lines are joined with ", ". A key given twice in
 * a section, a section of no stage, and a key outside a section are errors. */

#define BA_INI_LINE_MAX 8192

/* Lists, which may continue over indented lines. */
static bool is_list_key(const char *section, const char *name)
{
    const ba_option *o = ba_option_find_key(&ba_fit_option_table, section, name);
    if (!o) o = ba_option_find_key(&ba_features_option_table, section, name);
    if (o) return o->type == BA_OPT_INT_LIST || o->type == BA_OPT_ALPHAS;
    return KEY("bold", "subjects") || KEY("stimuli", "stories") || KEY("fit", "layers") ||
           KEY("synth", "associations");
}

static bool table_has_section(const ba_option_table *t, const char *section)
{
    for (int i = 0; i < t->n_options; i++)
        if (t->options[i].section && strcmp(t->options[i].section, section) == 0) return true;
    return false;
}

static bool known_section(const char *section)
{
    static const char *const SECTIONS[] = {"study", "synth", "conditions", "compare", "features",
                                           "model", "stimuli", "fit", "bold", "atlas", NULL};
    for (int i = 0; SECTIONS[i]; i++)
        if (strcmp(section, SECTIONS[i]) == 0) return true;
    return table_has_section(&ba_fit_option_table, section) ||
           table_has_section(&ba_features_option_table, section);
}

static bool is_blank(char ch) { return ch == ' ' || ch == '\t'; }

/* One key whose value may still continue on the next lines. */
typedef struct {
    char section[128];
    char key[128];
    int line;               /* where the key is */
    char *value;            /* malloc'd, NUL-terminated */
    size_t len, cap;
    bool open;
} ini_pending;

static ba_status pending_append(ini_pending *p, const char *sep, const char *text, size_t n,
                                const char *path, ba_error *err)
{
    size_t m = strlen(sep);
    if (p->len + m + n + 1 > p->cap) {
        size_t cap = (p->len + m + n + 1) * 2;
        char *grown = realloc(p->value, cap);
        if (!grown) return ba_fail(err, BA_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, cap);
        p->value = grown;
        p->cap = cap;
    }
    memcpy(p->value + p->len, sep, m);
    memcpy(p->value + p->len + m, text, n);
    p->len += m + n;
    p->value[p->len] = '\0';
    return BA_OK;
}

/* Hand the pending key to on_entry. */
static ba_status pending_flush(ini_pending *p, parse_state *st, const char *path, ba_error *err)
{
    if (!p->open) return BA_OK;
    p->open = false;
    st->problem[0] = '\0';
    if (!on_entry(st, p->section, p->key, p->value ? p->value : ""))
        return ba_fail(err, BA_ERR_USAGE, "%s:%d: %s", path, p->line,
                       st->problem[0] ? st->problem : "bad value");
    return BA_OK;
}

/* The keys seen so far, as "section\0key" pairs in one growing buffer. */
typedef struct {
    char *names;
    size_t len, cap;
} ini_seen;

static int seen_line(const ini_seen *s, const char *section, const char *key)
{
    size_t a = strlen(section), b = strlen(key);
    for (size_t at = 0; at < s->len;) {
        const char *sec = s->names + at, *k = sec + strlen(sec) + 1;
        const char *line = k + strlen(k) + 1;
        if (strlen(sec) == a && strlen(k) == b && !strcmp(sec, section) && !strcmp(k, key))
            return atoi(line);
        at = (size_t)(line - s->names) + strlen(line) + 1;
    }
    return 0;
}

static ba_status seen_add(ini_seen *s, const char *section, const char *key, int line,
                          const char *path, ba_error *err)
{
    char number[16];
    snprintf(number, sizeof number, "%d", line);
    size_t need = strlen(section) + strlen(key) + strlen(number) + 3;
    if (s->len + need > s->cap) {
        size_t cap = (s->len + need) * 2;
        char *grown = realloc(s->names, cap);
        if (!grown) return ba_fail(err, BA_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, cap);
        s->names = grown;
        s->cap = cap;
    }
    char *at = s->names + s->len;
    at += sprintf(at, "%s", section) + 1;
    at += sprintf(at, "%s", key) + 1;
    at += sprintf(at, "%s", number) + 1;
    s->len = (size_t)(at - s->names);
    return BA_OK;
}

static ba_status ini_parse_text(const char *path, const char *text, size_t len, parse_state *st,
                                ba_error *err)
{
    if (strlen(text) != len)
        return ba_fail(err, BA_ERR_FORMAT, "%s: holds a NUL byte (at byte %zu): not a text file",
                       path, strlen(text));
    ini_pending p = {0};
    ini_seen seen = {0};
    char section[128] = "";
    ba_status rc = BA_OK;
    const char *at = text;
    if (len >= 3 && memcmp(at, "\xEF\xBB\xBF", 3) == 0) at += 3; /* UTF-8 byte-order mark */
    for (int line = 1; rc == BA_OK && *at; line++) {
        const char *end = strchr(at, '\n');
        if (!end) end = at + strlen(at);
        const char *next = *end ? end + 1 : end;
        size_t n = (size_t)(end - at);
        if (n > 0 && at[n - 1] == '\r') n--;
        if (n > BA_INI_LINE_MAX) {
            rc = ba_fail(err, BA_ERR_USAGE, "%s:%d: the line is %zu bytes long, more than the %d "
                         "a line may have (a list may continue on indented lines)", path, line, n,
                         BA_INI_LINE_MAX);
            break;
        }
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)at[i] < 0x20 && at[i] != '\t') {
                rc = ba_fail(err, BA_ERR_USAGE, "%s:%d: a control character (byte 0x%02x) in the "
                             "line", path, line, (unsigned char)at[i]);
                break;
            }
        if (rc != BA_OK) break;
        bool indented = n > 0 && is_blank(at[0]);
        const char *b = at, *e = at + n;
        while (b < e && is_blank(*b)) b++;
        /* an inline comment: ';' after a blank */
        for (const char *q = b; q < e; q++)
            if (*q == ';' && q > b && is_blank(q[-1])) {
                e = q;
                break;
            }
        while (e > b && is_blank(e[-1])) e--;
        if (b == e || *b == ';' || *b == '#') { /* blank or comment */
            at = next;
            continue;
        }
        if (indented && p.open) {
            if (!is_list_key(p.section, p.key))
                rc = ba_fail(err, BA_ERR_USAGE, "%s:%d: an indented line continues [%s] %s (line "
                             "%d), which is not a list; only lists may go on over several lines",
                             path, line, p.section, p.key, p.line);
            else {
                bool comma = p.len > 0 && p.value[p.len - 1] == ',';
                rc = pending_append(&p, p.len == 0 ? "" : comma ? " " : ", ", b,
                                    (size_t)(e - b), path, err);
            }
        } else if (indented) {
            rc = ba_fail(err, BA_ERR_USAGE, "%s:%d: an indented line that continues no key "
                         "(a key starts at the beginning of its line)", path, line);
        } else if (*b == '[') {
            rc = pending_flush(&p, st, path, err);
            if (rc != BA_OK) break;
            if (e[-1] != ']' || e - b < 3 || (size_t)(e - b) - 2 >= sizeof section)
                rc = ba_fail(err, BA_ERR_USAGE, "%s:%d: not a [section] header", path, line);
            else {
                snprintf(section, sizeof section, "%.*s", (int)(e - b - 2), b + 1);
                if (!known_section(section))
                    rc = ba_fail(err, BA_ERR_USAGE, "%s:%d: unknown section [%s]", path, line,
                                 section);
            }
        } else {
            rc = pending_flush(&p, st, path, err);
            if (rc != BA_OK) break;
            const char *eq = memchr(b, '=', (size_t)(e - b));
            const char *ke = eq;
            while (ke && ke > b && is_blank(ke[-1])) ke--;
            if (!eq || ke == b) {
                rc = ba_fail(err, BA_ERR_USAGE, "%s:%d: not a 'key = value' line or a [section]",
                             path, line);
                break;
            }
            if (!section[0]) {
                rc = ba_fail(err, BA_ERR_USAGE, "%s:%d: '%.*s' before any [section]", path, line,
                             (int)(ke - b), b);
                break;
            }
            if ((size_t)(ke - b) >= sizeof p.key) {
                rc = ba_fail(err, BA_ERR_USAGE, "%s:%d: a key of %d bytes", path, line,
                             (int)(ke - b));
                break;
            }
            snprintf(p.section, sizeof p.section, "%s", section);
            snprintf(p.key, sizeof p.key, "%.*s", (int)(ke - b), b);
            int before = seen_line(&seen, p.section, p.key);
            if (before) {
                rc = ba_fail(err, BA_ERR_USAGE, "%s:%d: [%s] %s is given twice (first on line %d)",
                             path, line, p.section, p.key, before);
                break;
            }
            rc = seen_add(&seen, p.section, p.key, line, path, err);
            const char *v = eq + 1;
            while (v < e && is_blank(*v)) v++;
            p.len = 0;
            p.line = line;
            p.open = true;
            if (rc == BA_OK) rc = pending_append(&p, "", v, (size_t)(e - v), path, err);
        }
        at = next;
    }
    if (rc == BA_OK) rc = pending_flush(&p, st, path, err);
    free(p.value);
    free(seen.names);
    return rc;
}

static ba_status read_text(const char *path, char **text, size_t *len, ba_error *err)
{
    return ba_read_file(path, (unsigned char **)text, len, err);
}

/* Every condition names a file its source can use; a synthetic study with
 * associations brings its own two. */
static ba_status check_conditions(ba_study_config *c, const parse_state *st, ba_error *err)
{
    const char *p = c->path;
    if (c->synth && c->synth_options.n_assoc_regions > 0) {
        const char *names[2] = {"associations", "random"};
        for (int i = 0; i < 2; i++) {
            ba_study_condition *k = condition_named(c, names[i], strlen(names[i]));
            if (!k) return ba_fail(err, BA_ERR_USAGE, "%s: too many conditions", p);
            if (k->features[0] || k->associations[0])
                return ba_fail(err, BA_ERR_USAGE, "%s: [conditions] %s: a synthetic study with "
                               "associations makes this condition itself", p, names[i]);
            snprintf(k->features, sizeof k->features, "%s/synth/features-%s.h5", c->output_dir,
                     names[i]);
        }
    }
    for (int i = 0; i < c->n_conditions; i++) {
        const ba_study_condition *k = &c->conditions[i];
        if (!k->features[0] && !k->associations[0])
            return ba_fail(err, BA_ERR_USAGE, "%s: [conditions] %s: give its file (%s = "
                           "associations.jsonl or features.h5)", p, k->name, k->name);
        if (k->associations[0] && !st->seen_model)
            return ba_fail(err, BA_ERR_USAGE, "%s: [conditions] %s = %s: an association set needs "
                           "[model] (the features are computed from the augmented text); with "
                           "[features] or [synth] give a features file (.h5)", p, k->name,
                           k->associations);
    }
    return BA_OK;
}

static ba_status check_config(ba_study_config *c, const parse_state *st, ba_error *err)
{
    const char *p = c->path;
    int sources = st->seen_synth + st->seen_features + st->seen_model;
    if (sources != 1)
        return ba_fail(err, BA_ERR_USAGE,
                       "%s: give exactly one source of features: [synth], [features] or [model]", p);
    if (!c->output_dir[0]) return ba_fail(err, BA_ERR_USAGE, "%s: [study] output is required", p);
    if (c->n_layers < 1) return ba_fail(err, BA_ERR_USAGE, "%s: [fit] layers is required", p);
    if (st->seen_model && !c->stimuli_dir[0])
        return ba_fail(err, BA_ERR_USAGE, "%s: [model] needs [stimuli] dir", p);
    if (c->synth) {
        /* The synthetic study brings its own subjects, BOLD and atlas. */
        if (c->n_subjects == 0) {
            /* The names are generated into subjects[]: bound the count first. */
            if (c->synth_options.n_subjects < 1 || c->synth_options.n_subjects > BA_STUDY_MAX_SUBJECTS)
                return ba_fail(err, BA_ERR_USAGE, "%s: [synth] subjects = %d, expected 1..%d", p,
                               c->synth_options.n_subjects, BA_STUDY_MAX_SUBJECTS);
            c->n_subjects = c->synth_options.n_subjects;
            for (int s = 0; s < c->n_subjects; s++)
                snprintf(c->subjects[s], BA_STUDY_NAME_MAX, "sub-%02d", s + 1);
        }
        snprintf(c->bold_pattern, sizeof c->bold_pattern, "%s/synth/bold-{subject}.h5", c->output_dir);
        if (!c->atlas_path[0])
            snprintf(c->atlas_path, sizeof c->atlas_path, "%s/synth/atlas.h5", c->output_dir);
        snprintf(c->features_path, sizeof c->features_path, "%s/synth/features.h5", c->output_dir);
    }
    BA_CHECK(check_conditions(c, st, err));
    if (c->n_subjects < 1) return ba_fail(err, BA_ERR_USAGE, "%s: [bold] subjects is required", p);
    if (!c->bold_pattern[0]) return ba_fail(err, BA_ERR_USAGE, "%s: [bold] path is required", p);
    if (c->n_subjects > 1 && !strstr(c->bold_pattern, "{subject}"))
        return ba_fail(err, BA_ERR_USAGE, "%s: [bold] path must contain {subject} for %d subjects",
                       p, c->n_subjects);
    return BA_OK;
}

ba_status ba_study_config_load(const char *path, ba_study_config *cfg, ba_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    ba_fit_options_defaults(&cfg->fit);
    ba_synth_defaults(&cfg->synth_options);
    snprintf(cfg->path, sizeof cfg->path, "%s", path);
    snprintf(cfg->condition, sizeof cfg->condition, "baseline");
    snprintf(cfg->stimuli_format, sizeof cfg->stimuli_format, "auto");
    ba_features_options_defaults(&cfg->features);
    ba_compare_options_defaults(&cfg->compare);
    size_t text_len = 0;
    BA_CHECK(read_text(path, &cfg->text, &text_len, err));
    parse_state st = {.cfg = cfg};
    const char *slash = strrchr(path, '/');
    /* Paths in the file are relative to its directory; resolve that to an
     * absolute path so the outputs record paths valid from anywhere. */
    char dir[BA_PATH_MAX];
    if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else snprintf(dir, sizeof dir, ".");
    if (!realpath(dir[0] ? dir : "/", st.base_dir)) snprintf(st.base_dir, sizeof st.base_dir, "%s", dir);
    BA_CHECK(ini_parse_text(path, cfg->text, text_len, &st, err));
    cfg->synth = st.seen_synth;
    if (cfg->synth && cfg->synth_stimuli[0]) cfg->synth_options.stimuli_dir = cfg->synth_stimuli;
    return check_config(cfg, &st, err);
}

void ba_study_config_free(ba_study_config *cfg)
{
    free(cfg->text);
    cfg->text = NULL;
}

/* ------------------------------------------------------------ running */

/* ------------------------------------------------------------ features */

/* A hash of a file's bytes (0 when it cannot be read). */
static uint64_t file_hash(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    uint64_t h = BA_FNV1A_OFFSET;
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) h = ba_fnv1a(h, buf, n);
    fclose(f);
    return h;
}

/* Split "a, b,c" into names (pointers into `buf`). */
static size_t split_stories(char *buf, char **names, size_t max)
{
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok && n < max; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        char *end = tok + strlen(tok);
        while (end > tok && end[-1] == ' ') *--end = '\0';
        if (*tok) names[n++] = tok;
    }
    return n;
}

/* What the features of a condition are made from, as one line: the file's
 * `command` attribute; a file with the same line (and the same checkpoint)
 * is reused. */
static void features_recipe(const ba_study_config *cfg, const ba_study_condition *k,
                            char *out, size_t size)
{
    char bos[16];
    ba_option_format(ba_option_find(&ba_features_option_table, "bos"), &cfg->features, bos,
                     sizeof bos);
    int n = snprintf(out, size, "brainalign run %s: features --model %s --stimuli %s --format %s "
                     "--stories '%s' --layers", cfg->path, cfg->model_dir, cfg->stimuli_dir,
                     cfg->stimuli_format, cfg->stories);
    for (int l = 0; l < cfg->n_layers && n > 0 && (size_t)n < size; l++)
        n += snprintf(out + n, size - (size_t)n, "%s%d", l ? "," : " ", cfg->layers[l]);
    if (n > 0 && (size_t)n < size)
        n += snprintf(out + n, size - (size_t)n, " --context %ld --stride %ld --bos %s --condition %s",
                      cfg->features.context, cfg->features.stride,
                      bos,
                      k ? k->name : cfg->condition);
    /* only when not the default, so that f32 features made before the
     * option existed are still reused */
    if (cfg->features.matmul != BA_MATMUL_F32 && n > 0 && (size_t)n < size)
        n += snprintf(out + n, size - (size_t)n, " --matmul %s",
                      ba_matmul_name((ba_matmul)cfg->features.matmul));
    if (cfg->adapter_dir[0] && n > 0 && (size_t)n < size) {
        char weights[BA_PATH_MAX + 64];
        snprintf(weights, sizeof weights, "%s/adapter_model.safetensors", cfg->adapter_dir);
        n += snprintf(out + n, size - (size_t)n, " --adapter %s (fnv1a %016llx)", cfg->adapter_dir,
                      (unsigned long long)file_hash(weights));
    }
    if (k && n > 0 && (size_t)n < size)
        snprintf(out + n, size - (size_t)n, " --associations %s (fnv1a %016llx) --policy %s "
                 "--every %d --seed %llu --pause %g", k->associations,
                 (unsigned long long)file_hash(k->associations), ba_augment_policy_name(&k->augment),
                 k->augment.every_k, (unsigned long long)k->augment.seed, k->augment.pause_s);
}

/* Rank 0: true when `path` holds features made by `recipe` from this checkpoint. */
static bool features_up_to_date(const char *path, const char *model_dir, const char *recipe)
{
    struct stat sb;
    if (stat(path, &sb) != 0) return false;
    ba_error err;
    ba_h5file f;
    if (ba_h5_open(&f, path, MPI_COMM_SELF, &err) != BA_OK) return false;
    char *command = NULL, *checkpoint = NULL, identity[BA_ERROR_MESSAGE_MAX];
    bool same = ba_h5_get_attr_str(&f, "/", "command", &command, &err) == BA_OK &&
                ba_h5_get_attr_str(&f, "/", "checkpoint", &checkpoint, &err) == BA_OK &&
                ba_checkpoint_identity(model_dir, identity, sizeof identity, &err) == BA_OK &&
                strcmp(command, recipe) == 0 && strcmp(checkpoint, identity) == 0;
    free(command);
    free(checkpoint);
    ba_h5_abandon(&f);
    return same;
}

/* [model]: extract the features of one condition into
 * OUTPUT/features/<condition>.h5, unless they are there already. */
static ba_status model_features(const ba_study_plan *plan, const ba_plan_condition *pc,
                                MPI_Comm comm, ba_error *err)
{
    const ba_study_config *cfg = plan->cfg;
    const ba_study_condition *k = pc->source;
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    const char *name = pc->name, *dir = plan->features_dir, *path = pc->features;
    char recipe[3 * BA_PATH_MAX];
    features_recipe(cfg, k, recipe, sizeof recipe);
    int fresh = 0;
    ba_status rc = BA_OK;
    if (rank == 0) {
        rc = ba_make_dirs(dir, err);
        fresh = rc == BA_OK && features_up_to_date(path, cfg->model_dir, recipe);
    }
    BA_CHECK(ba_mpi_agree(comm, rc, err));
    MPI_Bcast(&fresh, 1, MPI_INT, 0, comm);
    if (fresh) {
        if (rank == 0 && !cfg->quiet) fprintf(stderr, "run: reusing %s\n", path);
        return BA_OK;
    }
    ba_features_config fc;
    ba_features_config_defaults(&fc);
    char stories[sizeof cfg->stories], *names[1024];
    snprintf(stories, sizeof stories, "%s", cfg->stories);
    size_t n_names = split_stories(stories, names, 1024);
    fc.model_dir = cfg->model_dir;
    fc.stimuli_dir = cfg->stimuli_dir;
    fc.stories = n_names ? names : NULL;
    fc.n_stories = n_names;
    BA_CHECK(ba_stimulus_format_parse(cfg->stimuli_format, &fc.format, err));
    fc.all_layers = false;
    memcpy(fc.layers, cfg->layers, (size_t)cfg->n_layers * sizeof *cfg->layers);
    fc.n_layers = cfg->n_layers;
    ba_features_options_apply(&cfg->features, &fc);
    fc.adapter_dir = cfg->adapter_dir[0] ? cfg->adapter_dir : NULL;
    fc.condition = name;
    if (k) {
        fc.associations = k->associations;
        fc.augment = k->augment;
    }
    fc.out_path = path;
    fc.command_line = recipe;
    fc.quiet = cfg->quiet;
    fc.stop_requested = cfg->stop_requested; /* SIGTERM stops the features stage too */
    if (rank == 0 && !cfg->quiet) fprintf(stderr, "run: features of condition %s -> %s\n", name, path);
    ba_features_summary sum;
    return ba_features_run(&fc, comm, &sum, err);
}

static ba_status ensure_synth(const ba_study_plan *plan, MPI_Comm comm, ba_error *err)
{
    const ba_study_config *cfg = plan->cfg;
    if (!plan->synth_dir) return BA_OK;
    ba_synth_options o = cfg->synth_options;
    o.out_dir = plan->synth_dir;
    o.quiet = cfg->quiet;
    return ba_synth_run(&o, comm, err);
}

/* ------------------------------------------------------------ fits */

/* Every subject and layer of plan condition c, in the plan's order; rank 0
 * keeps the report of each fit in report[] (plan->fits order). */
static ba_status fit_condition(const ba_study_plan *plan, int c, MPI_Comm comm,
                               ba_report_fit *report, ba_error *err)
{
    const ba_study_config *cfg = plan->cfg;
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    ba_status rc = BA_OK;
    for (int s = 0; s < cfg->n_subjects && rc == BA_OK; s++) {
        const ba_plan_fit *first = ba_study_plan_fit(plan, c, s, 0);
        rc = rank == 0 ? ba_make_dirs(first->scores_dir, err) : BA_OK;
        if (rc == BA_OK) rc = rank == 0 ? ba_make_dirs(plan->tables_dir, err) : BA_OK;
        if ((rc = ba_mpi_agree(comm, rc, err)) != BA_OK) break;
        for (int l = 0; l < cfg->n_layers && rc == BA_OK; l++) {
            const ba_plan_fit *p = ba_study_plan_fit(plan, c, s, l);
            ba_fit_config fit;
            ba_fit_config_defaults(&fit);
            ba_fit_options_apply(&cfg->fit, &fit);
            fit.features_path = plan->conditions[c].features;
            fit.bold_path = p->bold;
            fit.atlas_path = cfg->atlas_path[0] ? cfg->atlas_path : NULL;
            fit.out_path = p->scores;
            fit.layers[0] = p->layer_number;
            fit.n_layers = 1;
            fit.ridge.quiet = cfg->quiet;
            fit.study_config = cfg->text;
            fit.command_line = plan->command;
            fit.stop_requested = cfg->stop_requested;
            if (rank == 0 && !cfg->quiet)
                fprintf(stderr, "run: fitting %s (%s)\n", p->label, p->bold);
            ba_fit_summary sum;
            rc = ba_fit_run(&fit, comm, &sum, err);
            if (rc != BA_OK) break;
            if (rank == 0) {
                ba_report_fit *r = &report[p - plan->fits];
                rc = ba_report_fit_from_summary(p->label, &sum, r, err);
                if (rc == BA_OK && r->n_regions > 0) rc = ba_report_write_table(p->table, r, err);
                if (rc == BA_OK && !cfg->quiet)
                    printf("%-32s mean r = %.4f\n", p->label, sum.mean_r);
            }
            ba_fit_summary_free(&sum);
            rc = ba_mpi_agree(comm, rc, err);
        }
    }
    return rc;
}

/* Rank 0: every condition against the baseline (compare.h), layer by layer:
 * OUTPUT/compare.{csv,md,h5}. */
static ba_status compare_conditions(const ba_study_plan *plan, ba_error *err)
{
    const ba_study_config *cfg = plan->cfg;
    ba_compare_inputs inputs = {0};
    ba_status rc = BA_OK;
    for (int i = 0; rc == BA_OK && i < plan->n_fits; i++) {
        const ba_plan_fit *p = &plan->fits[i];
        rc = ba_compare_inputs_add(&inputs, NULL, plan->conditions[p->condition].name,
                                   cfg->subjects[p->subject], p->scores, err);
    }
    const char *prefix = plan->compare_prefix;
    ba_compare_options o = cfg->compare; /* the [compare] statistics */
    o.inputs = &inputs;
    o.baseline = cfg->condition;
    o.atlas_path = cfg->atlas_path[0] ? cfg->atlas_path : NULL;
    o.out_prefix = prefix;
    o.command_line = plan->command;
    ba_compare_result res = {0};
    if (rc == BA_OK) rc = ba_compare_run(&o, &res, err);
    if (rc == BA_OK && !cfg->quiet) {
        printf("\n");
        for (size_t i = 0; i < res.n_rows; i++) {
            const ba_compare_row *r = &res.rows[i];
            if (!r->is_baseline && r->significant)
                printf("%s, %s: %-28s Δr %+.4f [%+.4f, %+.4f]  q %.3g\n", r->model, r->condition,
                       r->region, r->delta_r, r->ci_low, r->ci_high, r->q);
        }
        printf("wrote %s.md (conditions against %s)\n", prefix, cfg->condition);
    }
    ba_compare_result_free(&res);
    ba_compare_inputs_free(&inputs);
    return rc;
}

/* The plan's steps in order: the synthetic study, then per condition its
 * features and fits, the report, the comparison. */
static ba_status run_plan(const ba_study_plan *plan, MPI_Comm comm, ba_report_fit *report,
                          ba_error *err)
{
    const ba_study_config *cfg = plan->cfg;
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    ba_status rc = rank == 0 ? ba_make_dirs(cfg->output_dir, err) : BA_OK;
    BA_CHECK(ba_mpi_agree(comm, rc, err));
    BA_CHECK(ensure_synth(plan, comm, err));
    for (int c = 0; c < plan->n_conditions && rc == BA_OK; c++) {
        if (plan->conditions[c].extract) rc = model_features(plan, &plan->conditions[c], comm, err);
        if (rc == BA_OK) rc = fit_condition(plan, c, comm, report, err);
    }
    if (rc == BA_OK && rank == 0) rc = ba_report_write_summary(plan, report, plan->n_fits, err);
    if (rc == BA_OK && rank == 0 && !cfg->quiet)
        printf("\nwrote %s\n", plan->summary);
    rc = ba_mpi_agree(comm, rc, err);
    if (rc == BA_OK && plan->compare) {
        rc = rank == 0 ? compare_conditions(plan, err) : BA_OK;
        rc = ba_mpi_agree(comm, rc, err);
    }
    return rc;
}

ba_status ba_study_run(ba_study_config *cfg, MPI_Comm comm, ba_error *err)
{
    ba_study_plan plan;
    ba_status rc = ba_study_plan_build(cfg, &plan, err);
    ba_report_fit *report = NULL;
    if (rc == BA_OK) {
        report = ba_calloc((size_t)plan.n_fits, sizeof *report, "study report", err);
        if (!report) rc = BA_ERR_NOMEM;
    }
    /* the same outcome on every rank before the collectives of the run */
    rc = ba_mpi_agree(comm, rc, err);
    if (rc == BA_OK) rc = run_plan(&plan, comm, report, err);
    for (int i = 0; report && i < plan.n_fits; i++) ba_report_fit_free(&report[i]);
    free(report);
    if (plan.cfg) ba_study_plan_free(&plan);
    return rc;
}
