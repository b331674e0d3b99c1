/*
 * config_int.h - what the parts of the INI parser share, and nothing that
 * config.h's users need: the key tables' shape, the parser's state, the
 * error list and the value setters. Only src/common/config*.c include it.
 * Parts: config.c (tables, defaults, load, lookups, walk), config_ini.c
 * (inih's line reader), config_keys.c (a key or header applied),
 * config_units.c (values read and written back), config_errors.c (errors).
 */
#ifndef PF_CONFIG_INT_H
#define PF_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"

#define MAX_KEYS 24 /* keys in the largest section table */
#define WORKERS_MAX 1024
#define SHOW_MAX 80                 /* characters of a value quoted in a message */
#define SHOW_BUF (SHOW_MAX * 4 + 4) /* what config_show writes, at most */
#define UPSTREAM_NAME_MAX 64
#define SECNAME_BUF (UPSTREAM_NAME_MAX + 16) /* "upstream NAME" and '\0' */
#define NKEYS(t) (sizeof(t) / sizeof((t)[0]))

enum section {
    SEC_NONE,
    SEC_SERVER,
    SEC_RECYCLE,
    SEC_APP,
    SEC_LOG,
    SEC_ADMIN,
    SEC_UPSTREAM,
    SEC_IGNORE,
    SEC_COUNT
};

enum vtype {
    V_U32,
    V_U64,
    V_WORKERS,
    V_BOOL,
    V_DURATION,
    V_SIZE,
    V_STRING,
    V_ERROR_LOG,
    V_ACCESS_LOG,
    V_LEVEL,
    V_METRIC,
    V_LISTEN_LIST,
    V_ADDR,
    V_MEMLIMIT
};

struct keydef {
    const char *name;
    enum vtype type;
    size_t off;        /* field, from the start of the section's struct */
    size_t aux;        /* V_LISTEN_LIST: count field; V_ADDR: enabled flag;
                           V_MEMLIMIT: its struct config_memlimit */
    uint64_t min, max; /* integers; V_DURATION: min 1 means "> 0" */
};

struct secdef {
    const char *name;
    const struct keydef *keys;
    size_t nkeys;
};

/* The tables, indexed by enum section (config.c). SEC_NONE and SEC_IGNORE
 * are empty. */
extern const struct secdef config_sections[SEC_COUNT];

struct error {
    int line; /* 0: about the whole file */
    int seq;
    char *text;
};

/* One config_load. Where a key of a fixed section was set is in c->keys
 * (config_line, config_raw); an upstream's keys are in uplines. */
struct parser {
    struct config *c;
    const char *path;
    FILE *fp;
    struct error *errs; /* kept ones, sorted by line at the end */
    size_t nerrs;
    int nerrors; /* found, kept or not (out of memory) */
    int nsyntax; /* of which lines not understood at all */
    bool oom;
    int read_errno;
    int lineno; /* lines read so far = line of the handler call */
    enum section sec;
    size_t up;                 /* current upstream, when sec == SEC_UPSTREAM */
    char secname[SECNAME_BUF]; /* "server", "upstream backend" */
    int sec_line[SEC_COUNT];
    int (*uplines)[MAX_KEYS]; /* per upstream, per key: line set, 0 = not */
    unsigned long calls;      /* handler calls so far */
    unsigned long calls_before;
    int pending_line;   /* key line inih has yet to hand to on_key */
    bool pending_colon; /* ... written "name: value" */
    bool pending_indented;
    char pending[SHOW_MAX + 1];
};

/* config_errors.c: the error list. Nothing here fails: out of memory sets
 * p->oom (config_load then fails with "out of memory"). */

/* Adds "PATH:LINE: message" (line 0: "PATH: message") to p's errors. */
void config_errorf(struct parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "[section] key: expected WHAT, got \"GOT\"" at the line being read. */
void config_bad(struct parser *p, const char *key, const char *what, const char *got);
/* Every error in line order, as one malloc'd text (NULL when there is
 * none, or out of memory). Empties the list. */
char *config_errors_text(struct parser *p);
/* s made fit for a message between quotes: escaped, at most SHOW_MAX
 * characters then "...". out must hold SHOW_BUF bytes; returns out. */
const char *config_show(const char *s, char *out);
/* strdup, or NULL with p->oom set. */
char *config_xstrdup(struct parser *p, const char *s);

/* config_ini.c: reading the file through inih. */

/* Reads p->fp to its end with inih, handing every key line to
 * config_on_key and every header to config_open_section. Blocks on the
 * file only. Returns what ini_parse_stream does: 0, the first line inih
 * could not parse, or -2 out of memory. Sets inih's options, which are
 * process globals. */
int config_read_ini(struct parser *p);
/* The pending key line (p->pending) is reported as not understood. */
void config_bad_line(struct parser *p);

/* config_keys.c: one key line or section header applied to p->c. */

/* inih's handler for "name = value" in the section being read: always 1
 * (errors are collected, each with its line). */
int config_on_key(void *user, const char *section, const char *name, const char *value);
/* Enters [name] (trimmed, without brackets): a fixed section or
 * "upstream NAME"; an unknown or repeated one is reported and its keys
 * then skipped. */
void config_open_section(struct parser *p, const char *name);

/* config_units.c: values read into the struct, and written back. */

/* Parses v as k's type into the struct at base (the config, or an
 * upstream); a bad value is reported and leaves the field as it was. */
void config_set_value(struct parser *p, const struct keydef *k, void *base,
                      const char *v);
/* The value of k in the struct at base as text that config_set_value reads
 * back the same (malloc'd), or NULL for a key that is not set and has no
 * default, or out of memory. */
char *config_value_text(const struct keydef *k, const void *base);
/* s without leading and trailing white space (cut in place). */
char *config_trim(char *s);

/* config.c */

/* Sets the defaults of an [upstream NAME] listed in config.h (no
 * allocation). */
void config_upstream_defaults(struct config_upstream *u);

#endif
