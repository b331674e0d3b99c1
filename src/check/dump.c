/*
 * dump.c - preforkd -T: the configuration in effect as an INI file. The
 * values come from config_walk (every key, defaults filled in, each
 * written as the parser reads it); this file lays them out and explains
 * in comments what was resolved on this host. Runs only in the process of
 * preforkd -T (main.c), after check_run. Convention: void (a failing
 * stdout shows in main's exit status).
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "dump.h"
#include "memory.h"

struct dump {
    FILE *f;
    const struct config *c;
};

/* What a max_rss or max_rss_hard written as a share comes to here. */
static void memlimit_comment(FILE *f, const struct config *c,
                             const struct config_memlimit *m, uint64_t bytes)
{
    char b1[16], b2[16];

    if (m->percent <= 0)
        return;
    if (m->source == MEMLIMIT_NO_LIMIT) {
        fprintf(f, " ; off here: no cgroup memory limit to take a share of");
        return;
    }
    fprintf(f, " ; %s here: %g%% of %s, the per-worker share of the cgroup's memory",
            memory_fmt(bytes, b1, sizeof(b1)), m->percent,
            memory_fmt(c->recycle.share, b2, sizeof(b2)));
}

static void on_key(void *arg, const char *section, const char *key, const char *value)
{
    struct dump *d = arg;
    const struct config *c = d->c;
    const char *raw;

    if (key == NULL) {
        fprintf(d->f, "\n[%s]\n", section);
        return;
    }
    if (value == NULL) {
        fprintf(d->f, "; %s: not set\n", key);
        return;
    }
    /* "key = ;x" would read as an empty value and a comment: no blank then */
    fprintf(d->f, "%s =%s%s", key, value[0] == ';' || value[0] == '#' ? "" : " ", value);
    if (strcmp(section, "server") == 0 && strcmp(key, "workers") == 0 &&
        (raw = config_raw(c, "server", "workers")) != NULL && strcmp(raw, "auto") == 0)
        fprintf(d->f, " ; auto: the CPUs preforkd may run on, within its cgroup's CPU "
                      "quota");
    else if (strcmp(section, "recycle") == 0 && strcmp(key, "max_rss") == 0)
        memlimit_comment(d->f, c, &c->recycle.max_rss_set, c->recycle.max_rss);
    else if (strcmp(section, "recycle") == 0 && strcmp(key, "max_rss_hard") == 0)
        memlimit_comment(d->f, c, &c->recycle.max_rss_hard_set, c->recycle.max_rss_hard);
    fputc('\n', d->f);
}

/* See dump.h. */
void dump_config(FILE *f, const struct config *c)
{
    struct dump d = {.f = f, .c = c};

    fprintf(f,
            "; preforkd -T: the configuration in effect for %s: every key,\n"
            "; with its default where the file does not set it\n",
            c->path);
    config_walk(c, on_key, &d);
}
