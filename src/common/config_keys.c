/*
 * config_keys.c - one line of the INI file applied to the struct config:
 * a "key = value" looked up in the tables (unknown keys get a suggestion,
 * repeated ones an error), an [app] key of the module's own kept as
 * written, a section header entered ([upstream NAME] adds an upstream).
 * Pure: runs wherever config_load does, the master, preforkd -t and
 * preforkctl. Owns c->keys, c->app.kv and c->upstreams while loading.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[64];

    if (la >= 64 || lb >= 64)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static void unknown_key(struct parser *p, const struct secdef *sd, const char *name)
{
    const char *best = NULL;
    size_t best_d = 3; /* suggest only close typos */
    char buf[SHOW_BUF];

    for (size_t i = 0; i < sd->nkeys; i++) {
        size_t d = edit_distance(name, sd->keys[i].name);
        if (d < best_d) {
            best_d = d;
            best = sd->keys[i].name;
        }
    }
    if (best != NULL)
        config_errorf(p, p->lineno,
                      "[%s] %s: unknown key (did you mean "
                      "\"%s\"?)",
                      p->secname, config_show(name, buf), best);
    else
        config_errorf(p, p->lineno, "[%s] %s: unknown key", p->secname,
                      config_show(name, buf));
}

/* Records where a key of a fixed section (or, key NULL, its header) was
 * set, for config_line and config_raw. */
static void note_key(struct parser *p, const char *section, const char *key,
                     const char *raw)
{
    struct config *c = p->c;
    struct config_key *grown = realloc(c->keys, (c->nkeys + 1) * sizeof(*grown));

    if (grown == NULL) {
        p->oom = true;
        return;
    }
    c->keys = grown;
    grown[c->nkeys] = (struct config_key){section, key, p->lineno, NULL};
    if (raw != NULL && (grown[c->nkeys].raw = config_xstrdup(p, raw)) == NULL)
        return;
    c->nkeys++;
}

/* name = value in the section sd, whose struct is at base. uplines: the
 * current upstream's row of lines, NULL for a fixed section (whose keys
 * are recorded in c->keys instead). */
static void set_key(struct parser *p, const struct secdef *sd, void *base, int *uplines,
                    const char *name, const char *value)
{
    size_t i;
    int first;

    for (i = 0; i < sd->nkeys; i++)
        if (strcmp(sd->keys[i].name, name) == 0)
            break;
    if (i == sd->nkeys) {
        unknown_key(p, sd, name);
        return;
    }
    first = uplines != NULL ? uplines[i] : config_line(p->c, sd->name, sd->keys[i].name);
    if (first > 0) {
        config_errorf(p, p->lineno,
                      "[%s] %s: duplicate key (first set at "
                      "line %d)",
                      p->secname, name, first);
        return;
    }
    if (uplines != NULL)
        uplines[i] = p->lineno;
    else
        note_key(p, sd->name, sd->keys[i].name, value);
    config_set_value(p, &sd->keys[i], base, value);
}

static void add_app_kv(struct parser *p, const char *name, const char *value)
{
    struct config *c = p->c;
    struct config_kv *kv = config_app_find(c, name), *grown;
    char buf[SHOW_BUF];

    if (kv != NULL) {
        config_errorf(p, p->lineno,
                      "[app] %s: duplicate key (first set at "
                      "line %d)",
                      config_show(name, buf), kv->line);
        return;
    }
    grown = realloc(c->app.kv, (c->app.nkv + 1) * sizeof(*grown));
    if (grown == NULL) {
        p->oom = true;
        return;
    }
    c->app.kv = grown;
    kv = &c->app.kv[c->app.nkv];
    kv->key = config_xstrdup(p, name);
    kv->value = config_xstrdup(p, value);
    kv->line = p->lineno;
    kv->used = false;
    if (kv->key == NULL || kv->value == NULL) {
        free(kv->key);
        free(kv->value);
        return;
    }
    c->app.nkv++;
}

/* See config_int.h: one call per "key = value" line. */
int config_on_key(void *user, const char *section, const char *name, const char *value)
{
    struct parser *p = user;
    char buf[SHOW_BUF];

    (void)section; /* ours is p->sec: inih cuts names at 49 bytes */
    p->calls++;
    if (p->pending_colon) { /* "name: value": inih takes it, we do not */
        config_bad_line(p);
        return 1;
    }
    if (*name == '\0') {
        p->nsyntax++;
        config_errorf(p, p->lineno,
                      "expected \"key = value\", got no key "
                      "before \"=\"");
        return 1;
    }
    for (const char *k = name; *k; k++)
        if ((unsigned char)*k < 0x20 || *k == 0x7f) {
            /* No key has one; an [app] key would reach the module and its
             * messages as it is. */
            p->nsyntax++;
            config_errorf(p, p->lineno, "%s: control byte in a key name",
                          config_show(name, buf));
            return 1;
        }
    switch (p->sec) {
    case SEC_NONE:
        config_errorf(p, p->lineno,
                      "%s: key outside any section (expected "
                      "a [section] line first)",
                      config_show(name, buf));
        break;
    case SEC_IGNORE: break; /* the section header was already reported */
    case SEC_APP:
        if (strcmp(name, "module") == 0)
            set_key(p, &config_sections[SEC_APP], p->c, NULL, name, value);
        else
            add_app_kv(p, name, value);
        break;
    case SEC_UPSTREAM:
        set_key(p, &config_sections[SEC_UPSTREAM], &p->c->upstreams[p->up],
                p->uplines[p->up], name, value);
        break;
    default: set_key(p, &config_sections[p->sec], p->c, NULL, name, value); break;
    }
    return 1;
}

static bool valid_upstream_name(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > UPSTREAM_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && !strchr("-_.", name[i]))
            return false;
    return true;
}

static void open_upstream(struct parser *p, const char *name)
{
    struct config *c = p->c;
    struct config_upstream *ups;
    int(*lines)[MAX_KEYS];
    char buf[SHOW_BUF];

    if (!valid_upstream_name(name)) {
        config_errorf(p, p->lineno,
                      "[upstream %s]: expected a name of 1 to "
                      "%d letters, digits, '-', '_' or '.', e.g. [upstream "
                      "backend]",
                      config_show(name, buf), UPSTREAM_NAME_MAX);
        return;
    }
    for (size_t i = 0; i < c->nupstreams; i++) {
        if (strcmp(c->upstreams[i].name, name) == 0) {
            config_errorf(p, p->lineno,
                          "duplicate section [upstream %s] "
                          "(first at line %d)",
                          name, c->upstreams[i].line);
            return;
        }
    }
    ups = realloc(c->upstreams, (c->nupstreams + 1) * sizeof(*ups));
    if (ups != NULL)
        c->upstreams = ups;
    lines = realloc(p->uplines, (c->nupstreams + 1) * sizeof(*lines));
    if (lines != NULL)
        p->uplines = lines;
    if (ups == NULL || lines == NULL) {
        p->oom = true;
        return;
    }
    p->up = c->nupstreams;
    config_upstream_defaults(&ups[p->up]);
    memset(lines[p->up], 0, sizeof(lines[p->up]));
    ups[p->up].line = p->lineno;
    if ((ups[p->up].name = config_xstrdup(p, name)) == NULL)
        return;
    c->nupstreams++;
    snprintf(p->secname, sizeof(p->secname), "upstream %s", name);
    p->sec = SEC_UPSTREAM;
}

/* See config_int.h. */
void config_open_section(struct parser *p, const char *name)
{
    char buf[SHOW_BUF];

    p->sec = SEC_IGNORE; /* until known good: its keys are then skipped */
    if (strncmp(name, "upstream", 8) == 0 &&
        (name[8] == '\0' || isspace((unsigned char)name[8]))) {
        const char *n = name + 8;
        while (isspace((unsigned char)*n))
            n++;
        open_upstream(p, n);
        return;
    }
    for (int s = SEC_SERVER; s <= SEC_ADMIN; s++) {
        if (strcmp(name, config_sections[s].name) != 0)
            continue;
        if (p->sec_line[s] > 0) {
            config_errorf(p, p->lineno,
                          "duplicate section [%s] (first at "
                          "line %d)",
                          name, p->sec_line[s]);
            return;
        }
        p->sec_line[s] = p->lineno;
        p->sec = (enum section)s;
        note_key(p, config_sections[s].name, NULL, NULL);
        snprintf(p->secname, sizeof(p->secname), "%s", name);
        return;
    }
    config_errorf(p, p->lineno,
                  "unknown section [%s] (expected server, "
                  "recycle, app, upstream NAME, log or admin)",
                  config_show(name, buf));
}
