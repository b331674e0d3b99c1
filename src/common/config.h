/*
 * config.h - the INI file as a struct. Pure: config_load reads a file and
 * fills a struct config, nothing else (no sockets, no logging). Used by the
 * master (start, -t, SIGHUP) and by unit tests.
 * Convention: 0 / -1; on -1 *errors holds every problem found, one per line,
 * each "FILE:LINE: [section] key: what was expected, got \"value\"".
 */
#ifndef PF_CONFIG_H
#define PF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "listen.h"

/* One "key = value" kept as written, e.g. the app's own [app] keys. */
struct config_kv {
    char *key;
    char *value;
    int line;
    bool used; /* set by pf_config_get; unused [app] keys are errors */
};

enum memory_metric { METRIC_RSS = 0, METRIC_USS, METRIC_PSS };

/* "auto" for [recycle] max_rss and max_rss_hard: these percentages of the
 * per-worker share of the cgroup's memory (docs/recycling.md, "In a
 * container": soft x 1.25, where the last worker accepting stops, stays
 * below hard; hard leaves 5 % of the limit to the master and the mold). */
#define CONFIG_AUTO_MAX_RSS 75
#define CONFIG_AUTO_MAX_RSS_HARD 95

/* Where an effective memory limit came from (memlimit.c fills it in). */
enum memlimit_source {
    MEMLIMIT_OFF = 0,  /* 0, or not set */
    MEMLIMIT_SIZE,     /* written as a size */
    MEMLIMIT_SHARE,    /* "N%" of the per-worker share */
    MEMLIMIT_AUTO,     /* "auto": CONFIG_AUTO_* % of the share */
    MEMLIMIT_NO_LIMIT, /* a share, but no cgroup memory limit: off */
    MEMLIMIT_CLAMPED,  /* lowered below max_rss_hard after a scale */
};

/* max_rss or max_rss_hard as written: a size, or a share of the cgroup's
 * memory per worker, which the master resolves into bytes (memlimit.c). */
struct config_memlimit {
    uint64_t bytes; /* written as a size; 0 = off */
    double percent; /* "N%" (or auto's): of the per-worker share; 0 = a size */
    bool automatic; /* written "auto" */
    int line;       /* where it was set; 0 = not set */
    char text[32];  /* as written (cut), for messages */
    enum memlimit_source source; /* how it resolved (memlimit.c) */
};

struct config_upstream {
    char *name; /* from [upstream NAME] */
    int line;   /* of the section header */
    struct listen_addr *servers;
    size_t nservers;
    uint32_t max_idle;           /* default 32 */
    uint32_t max_connections;    /* default 256 */
    double connect_timeout;      /* seconds, default 2 */
    double read_timeout;         /* default 30 */
    double idle_timeout;         /* default 60 */
    uint32_t keepalive_requests; /* default 1000 */
    uint32_t retries;            /* default 1 */
    uint32_t max_fails;          /* default 1; 0 = never mark down */
    double fail_timeout;         /* default 10 */
    uint32_t max_waiters;        /* default 256: requests queued when every
                                    connection is busy, per worker */
};

/* Where a key of a fixed section ([server], [recycle], [app] module,
 * [log], [admin]) was set, and how: for messages that name its line
 * (preforkd -t) and for -T. */
struct config_key {
    const char *section; /* static: "server", "recycle", ... */
    const char *key;     /* static; NULL: the section header itself */
    int line;
    char *raw; /* the value as written; NULL for a header */
};

struct config {
    char *path; /* the file it came from (or a name: config_load_text) */
    char *text; /* config_load_text's text, or NULL for a file */

    struct {
        struct listen_addr *listen; /* default 127.0.0.1:8000 */
        size_t nlisten;
        uint32_t workers;            /* "auto" resolved to online CPUs; default 2 */
        uint32_t max_workers;        /* default 64; >= workers */
        uint32_t worker_connections; /* default 1024 */
        uint32_t backlog;            /* default 1024 */
        bool preload;                /* default true */
        char *pidfile;               /* NULL = none (default) */
        char *user, *group;          /* NULL = keep */
        double timeout;              /* default 30 */
        double graceful_timeout;     /* default 30 */
        double keepalive_timeout;    /* default 5; 0 = no keep-alive */
        double header_timeout;       /* default 10 */
        double body_timeout;         /* default 30: between body reads */
        double send_timeout;         /* default 30: between response writes */
        double request_timeout;      /* default 60: the app's silence on a
                                        request; 0 = off */
        uint32_t max_request_line;   /* default 8190 */
        uint32_t max_headers;        /* default 100 */
        uint32_t max_header_size;    /* default 8190: one field line */
        uint64_t max_body_size;      /* default 1M */
    } server;

    struct {
        uint64_t max_requests;        /* 0 = off (default) */
        uint64_t max_requests_jitter; /* default 0 */
        /* Effective bytes, 0 = off (default). A share of the cgroup's
         * memory ("N%", "auto") is 0 here until the master resolves it
         * (memlimit.c) from max_rss_set / max_rss_hard_set. */
        uint64_t max_rss;
        uint64_t max_rss_hard;
        struct config_memlimit max_rss_set, max_rss_hard_set;
        uint64_t share;                   /* per-worker share last resolved; 0 = none */
        enum memory_metric memory_metric; /* default rss */
        double max_lifetime;              /* 0 = off (default) */
        double max_lifetime_jitter;       /* default 0 */
        double min_lifetime;              /* default 0 */
        uint32_t max_concurrent_recycles; /* default 1 */
    } recycle;

    struct {
        char *module;         /* required: built-in name or path to a .so */
        struct config_kv *kv; /* every other [app] key, in file order */
        size_t nkv;
    } app;

    struct config_upstream *upstreams;
    size_t nupstreams;

    struct {
        char *error_log;         /* "stderr" (default) or a path */
        int level;               /* enum log_level, default LOG_INFO */
        char *access_log;        /* NULL = off (default), "stderr" or a path */
        char *access_log_format; /* default "combined" */
    } log;

    struct {
        bool enabled; /* [admin] listen given */
        struct listen_addr listen;
    } admin;

    struct config_key *keys; /* every key set in a fixed section, in file order */
    size_t nkeys;
};

/* Sets every default (no allocation beyond what config_free frees). */
void config_defaults(struct config *c);

/* Reads path into c (which is overwritten). 0 on success; -1 with
 * *errors = malloc'd text (caller frees), one error per line, each naming
 * file, line and key. A missing file is one error naming the path.
 * On -1, c is left zeroed (nothing to free; config_free is harmless), so
 * a failed reload never leaks. Errors come sorted by line, each ending
 * in '\n'; *errors is NULL on success. errors may be NULL. */
int config_load(const char *path, struct config *c, char **errors);

/* The same for INI text that is no file (preforkd --wsgi builds one from
 * its options): errors name `name` as they would a path. */
int config_load_text(const char *name, const char *text, struct config *c, char **errors);

void config_free(struct config *c);

/* Unit parsers, shared with the app ABI (pf_config_get_size ...).
 * Return 0, or -1 for a malformed or out-of-range value. */
/* "1500", "1500ms", "2s", "5m", "1h", "0.5s": seconds, >= 0. */
int config_parse_duration(const char *s, double *out);
/* "1024", "64K", "256M", "1G" (powers of 1024; also "KB"/"k"...), >= 0. */
int config_parse_size(const char *s, uint64_t *out);
/* "true/false/yes/no/on/off/1/0" (case-insensitive). */
int config_parse_bool(const char *s, bool *out);

/* The [app] entry for key, or NULL. */
struct config_kv *config_app_find(const struct config *c, const char *key);

/* The line where [section] key was set in a fixed section (key NULL: the
 * line of the section header), 0 when it was not set. */
int config_line(const struct config *c, const char *section, const char *key);
/* The value of [section] key as written, or NULL when it was not set. */
const char *config_raw(const struct config *c, const char *section, const char *key);

/* config_walk's callback: key NULL opens a section ("server", "upstream
 * backend", ...); otherwise value is the key's value in effect, written so
 * that config_load reads it back the same ("30s", "1M", "auto", "off",
 * "127.0.0.1:8000, unix:/run/x.sock"), or NULL for a key without a value
 * and without a default (pidfile, user, group, [admin] listen). */
typedef void (*config_walk_fn)(void *arg, const char *section, const char *key,
                               const char *value);
/* Calls fn for every section and every key of c, defaults included, in
 * the order of the tables ([app]: module, then the app's own keys in file
 * order; each [upstream NAME] after [app]). Pure. */
void config_walk(const struct config *c, config_walk_fn fn, void *arg);

#endif
