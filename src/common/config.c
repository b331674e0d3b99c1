/*
 * config.c - the INI file as a struct config: the tables of sections and
 * keys (each key's field, type and range), the defaults, the load that
 * drives config_ini.c, config_keys.c and config_units.c and checks across
 * keys, and the lookups (config_line, config_raw, config_walk for -T).
 * Pure (no sockets, no logging): runs in the master (start, -t, SIGHUP),
 * preforkctl and tests. Owns struct config: config_free frees it all.
 * Convention: 0 / -1 (config_load: -1 with the error text, see config.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_int.h"
#include "log.h"
#include "scoreboard.h"

#define DEFAULT_LISTEN "127.0.0.1:8000"

#define SRV(k, t, lo, hi) \
    { \
#k, t, offsetof(struct config, server.k), 0, lo, hi \
    }
#define REC(k, t, lo, hi) \
    { \
#k, t, offsetof(struct config, recycle.k), 0, lo, hi \
    }
#define LOGK(k, t) \
    { \
#k, t, offsetof(struct config, log.k), 0, 0, 0 \
    }
#define UPS(k, t, lo, hi) \
    { \
#k, t, offsetof(struct config_upstream, k), 0, lo, hi \
    }

static const struct keydef server_keys[] = {
    {"listen", V_LISTEN_LIST, offsetof(struct config, server.listen),
     offsetof(struct config, server.nlisten), 0, 0},
    SRV(workers, V_WORKERS, 1, WORKERS_MAX),
    SRV(max_workers, V_U32, 1, WORKERS_MAX),
    SRV(worker_connections, V_U32, 1, 1048576),
    SRV(backlog, V_U32, 1, INT32_MAX),
    SRV(preload, V_BOOL, 0, 0),
    SRV(pidfile, V_STRING, 0, 0),
    SRV(user, V_STRING, 0, 0),
    SRV(group, V_STRING, 0, 0),
    SRV(timeout, V_DURATION, 1, 0),
    SRV(graceful_timeout, V_DURATION, 0, 0),
    SRV(keepalive_timeout, V_DURATION, 0, 0),
    SRV(header_timeout, V_DURATION, 1, 0),
    SRV(body_timeout, V_DURATION, 1, 0),
    SRV(send_timeout, V_DURATION, 1, 0),
    SRV(request_timeout, V_DURATION, 0, 0),
    SRV(max_request_line, V_U32, 64, 1048576),
    SRV(max_headers, V_U32, 1, 10000),
    SRV(max_header_size, V_U32, 64, 1048576),
    SRV(max_body_size, V_SIZE, 0, 0),
};

static const struct keydef recycle_keys[] = {
    REC(max_requests, V_U64, 0, UINT64_MAX),
    REC(max_requests_jitter, V_U64, 0, UINT64_MAX),
    {"max_rss", V_MEMLIMIT, offsetof(struct config, recycle.max_rss),
     offsetof(struct config, recycle.max_rss_set), 0, 0},
    {"max_rss_hard", V_MEMLIMIT, offsetof(struct config, recycle.max_rss_hard),
     offsetof(struct config, recycle.max_rss_hard_set), 0, 0},
    REC(memory_metric, V_METRIC, 0, 0),
    REC(max_lifetime, V_DURATION, 0, 0),
    REC(max_lifetime_jitter, V_DURATION, 0, 0),
    REC(min_lifetime, V_DURATION, 0, 0),
    REC(max_concurrent_recycles, V_U32, 1, WORKERS_MAX),
};

/* Only "module" is ours; every other [app] key goes to app.kv. */
static const struct keydef app_keys[] = {
    {"module", V_STRING, offsetof(struct config, app.module), 0, 0, 0},
};

static const struct keydef log_keys[] = {
    LOGK(error_log, V_ERROR_LOG),
    LOGK(level, V_LEVEL),
    LOGK(access_log, V_ACCESS_LOG),
    LOGK(access_log_format, V_STRING),
};

static const struct keydef admin_keys[] = {
    {"listen", V_ADDR, offsetof(struct config, admin.listen),
     offsetof(struct config, admin.enabled), 0, 0},
};

static const struct keydef upstream_keys[] = {
    {"servers", V_LISTEN_LIST, offsetof(struct config_upstream, servers),
     offsetof(struct config_upstream, nservers), 0, 0},
    UPS(max_idle, V_U32, 0, 1048576),
    UPS(max_connections, V_U32, 1, 1048576),
    UPS(connect_timeout, V_DURATION, 1, 0),
    UPS(read_timeout, V_DURATION, 1, 0),
    UPS(idle_timeout, V_DURATION, 1, 0),
    UPS(keepalive_requests, V_U32, 1, UINT32_MAX),
    UPS(retries, V_U32, 0, 100),
    UPS(max_fails, V_U32, 0, UINT32_MAX),
    UPS(fail_timeout, V_DURATION, 1, 0),
    UPS(max_waiters, V_U32, 0, 1048576),
};

/* See config_int.h. */
const struct secdef config_sections[SEC_COUNT] = {
    [SEC_SERVER] = {"server", server_keys, NKEYS(server_keys)},
    [SEC_RECYCLE] = {"recycle", recycle_keys, NKEYS(recycle_keys)},
    [SEC_APP] = {"app", app_keys, NKEYS(app_keys)},
    [SEC_LOG] = {"log", log_keys, NKEYS(log_keys)},
    [SEC_ADMIN] = {"admin", admin_keys, NKEYS(admin_keys)},
    [SEC_UPSTREAM] = {"upstream", upstream_keys, NKEYS(upstream_keys)},
};

/* Defaults */

/* Overwrites all of c with the defaults listed in config.h. Allocates the
 * default listen address and log strings (freed by config_free); when out
 * of memory they stay NULL / nlisten 0, which config_load reports. */
void config_defaults(struct config *c)
{
    memset(c, 0, sizeof(*c));
    c->server.listen = calloc(1, sizeof(*c->server.listen));
    if (c->server.listen != NULL &&
        listen_parse(DEFAULT_LISTEN, c->server.listen, NULL) == 0)
        c->server.nlisten = 1;
    c->server.workers = 2;
    c->server.max_workers = 64;
    c->server.worker_connections = 1024;
    c->server.backlog = 1024;
    c->server.preload = true;
    c->server.timeout = 30;
    c->server.graceful_timeout = 30;
    c->server.keepalive_timeout = 5;
    c->server.header_timeout = 10;
    c->server.body_timeout = 30;
    c->server.send_timeout = 30;
    c->server.request_timeout = 60;
    c->server.max_request_line = 8190;
    c->server.max_headers = 100;
    c->server.max_header_size = 8190;
    c->server.max_body_size = UINT64_C(1) << 20;
    c->recycle.memory_metric = METRIC_RSS;
    c->recycle.max_concurrent_recycles = 1;
    c->log.error_log = strdup("stderr");
    c->log.level = LOG_INFO;
    c->log.access_log_format = strdup("combined");
}

/* See config_int.h. */
void config_upstream_defaults(struct config_upstream *u)
{
    memset(u, 0, sizeof(*u));
    u->max_idle = 32;
    u->max_connections = 256;
    u->connect_timeout = 2;
    u->read_timeout = 30;
    u->idle_timeout = 60;
    u->keepalive_requests = 1000;
    u->retries = 1;
    u->max_fails = 1;
    u->fail_timeout = 10;
    u->max_waiters = 256;
}

/* After the whole file: required keys and checks across keys. */

/* [section] key as written, for a message: "" when it was not set. */
static const char *raw_text(const struct config *c, const char *section, const char *key)
{
    const char *raw = config_raw(c, section, key);

    return raw != NULL ? raw : "";
}

static void check_server(struct parser *p)
{
    struct config *c = p->c;
    int line = config_line(c, "server", "max_workers");

    if (line == 0 && c->server.max_workers < c->server.workers)
        c->server.max_workers = c->server.workers; /* default follows */
    else if (line > 0 && c->server.max_workers < c->server.workers)
        config_errorf(p, line,
                      "[server] max_workers: expected a number >= "
                      "workers (%u), got \"%s\"",
                      c->server.workers, raw_text(c, "server", "max_workers"));
}

static void check_recycle(struct parser *p)
{
    const struct config *c = p->c;
    const char *soft = raw_text(c, "recycle", "max_rss");
    const char *hard = raw_text(c, "recycle", "max_rss_hard");
    int hard_line = config_line(c, "recycle", "max_rss_hard");
    double soft_pc = c->recycle.max_rss_set.percent;
    double hard_pc = c->recycle.max_rss_hard_set.percent;

    if (c->recycle.max_rss > 0 && c->recycle.max_rss_hard > 0 &&
        c->recycle.max_rss_hard <= c->recycle.max_rss)
        config_errorf(p, hard_line,
                      "[recycle] max_rss_hard: expected a size "
                      "greater than max_rss (%s), got \"%s\"",
                      soft, hard);
    /* Two shares of the same thing compare now; a size and a share only
     * once the master knows the cgroup's limit (memlimit.c). */
    if (soft_pc > 0 && hard_pc > 0 && hard_pc <= soft_pc)
        config_errorf(p, hard_line,
                      "[recycle] max_rss_hard: expected a share "
                      "greater than max_rss (%s = %g%%), got \"%s\" (= %g%%)",
                      soft, soft_pc, hard, hard_pc);
    if (c->recycle.max_lifetime > 0 && c->recycle.min_lifetime > c->recycle.max_lifetime)
        config_errorf(p, config_line(c, "recycle", "min_lifetime"),
                      "[recycle] min_lifetime: expected a duration <= "
                      "max_lifetime (%s), got \"%s\"",
                      raw_text(c, "recycle", "max_lifetime"),
                      raw_text(c, "recycle", "min_lifetime"));
}

/* A required key is not reported missing when a line was not understood
 * at all (an unclosed "[app" header, say): that line may be the one that
 * held it, and its own error says what to fix. */
static void check_required(struct parser *p)
{
    const struct config *c = p->c;

    if (c->app.module == NULL && config_line(c, "app", "module") == 0 && p->nsyntax == 0)
        config_errorf(p, p->sec_line[SEC_APP],
                      "[app] module: required key "
                      "is missing (e.g. \"module = hello\")");
    for (size_t i = 0; i < c->nupstreams && p->nsyntax == 0; i++)
        if (p->uplines[i][0] == 0) /* servers, the first upstream key */
            config_errorf(p, c->upstreams[i].line,
                          "[upstream %s] servers: "
                          "required key is missing",
                          c->upstreams[i].name);
    /* Each upstream has its counters in every worker's scoreboard slot. */
    if (c->nupstreams > SB_MAX_UPSTREAMS)
        config_errorf(p, c->upstreams[SB_MAX_UPSTREAMS].line,
                      "[upstream %s]: "
                      "at most %d [upstream] sections, this is number %zu",
                      c->upstreams[SB_MAX_UPSTREAMS].name, SB_MAX_UPSTREAMS,
                      c->nupstreams);
}

/* Loading */

static void parse_file(struct parser *p)
{
    int rc = config_read_ini(p);

    if (rc == -2)
        p->oom = true;
    else if (rc > 0 && p->nerrors == 0) { /* inih saw what we did not */
        p->nsyntax++;
        config_errorf(p, rc, "syntax error");
    }
    if (p->read_errno != 0)
        config_errorf(p, 0, "cannot read: %s", strerror(p->read_errno));
    if (p->read_errno == 0) {
        check_required(p);
        check_server(p);
        check_recycle(p);
    }
}

/* Reads the INI text of fp (NULL: it could not be opened, errno then
 * says why) into c, which config_load or config_load_text has named. */
static int load_stream(FILE *fp, const char *path, struct config *c, char **errors)
{
    struct parser p;
    int open_errno = errno;
    bool failed;
    char *text;

    memset(&p, 0, sizeof(p));
    p.c = c;
    p.path = path;
    config_defaults(c);
    c->path = strdup(path);
    if (c->path == NULL || c->log.error_log == NULL || c->log.access_log_format == NULL ||
        c->server.nlisten == 0)
        p.oom = true;
    p.fp = fp;
    if (p.fp == NULL) {
        config_errorf(&p, 0, "cannot open: %s", strerror(open_errno));
    } else {
        parse_file(&p);
        fclose(p.fp);
    }
    if (p.oom)
        config_errorf(&p, 0, "out of memory");
    free(p.uplines);
    text = config_errors_text(&p);
    failed = p.nerrors > 0;
    if (failed)
        config_free(c);
    if (errors != NULL)
        *errors = text;
    else
        free(text);
    return failed ? -1 : 0;
}

/* Reads path into c. Blocks on the file only. On -1 *c is all zeroes
 * (nothing to free; config_free is a no-op on it) and *errors, when errors
 * is not NULL, holds the text (NULL only when memory ran out). Sets inih's
 * options, which are process globals: not for concurrent use. */
int config_load(const char *path, struct config *c, char **errors)
{
    return load_stream(fopen(path, "r"), path, c, errors);
}

/* See config.h. The text is kept in c->text, so a reload parses it again. */
int config_load_text(const char *name, const char *text, struct config *c, char **errors)
{
    char *copy = strdup(text);
    FILE *fp = copy != NULL ? fmemopen(copy, strlen(copy), "r") : NULL;
    int rc = load_stream(fp, name, c, errors);

    if (rc == 0)
        c->text = copy;
    else
        free(copy);
    return rc;
}

/* Frees everything c owns and zeroes it: safe to call twice. */
void config_free(struct config *c)
{
    free(c->path);
    free(c->text);
    free(c->server.listen);
    free(c->server.pidfile);
    free(c->server.user);
    free(c->server.group);
    free(c->app.module);
    for (size_t i = 0; i < c->app.nkv; i++) {
        free(c->app.kv[i].key);
        free(c->app.kv[i].value);
    }
    free(c->app.kv);
    for (size_t i = 0; i < c->nupstreams; i++) {
        free(c->upstreams[i].name);
        free(c->upstreams[i].servers);
    }
    free(c->upstreams);
    free(c->log.error_log);
    free(c->log.access_log);
    free(c->log.access_log_format);
    for (size_t i = 0; i < c->nkeys; i++)
        free(c->keys[i].raw);
    free(c->keys);
    memset(c, 0, sizeof(*c));
}

/* Lookups */

/* Linear search of the [app] keys (a handful); does not set "used". */
struct config_kv *config_app_find(const struct config *c, const char *key)
{
    for (size_t i = 0; i < c->app.nkv; i++)
        if (strcmp(c->app.kv[i].key, key) == 0)
            return &c->app.kv[i];
    return NULL;
}

/* Where [section] key was set (key NULL: the section header), or NULL.
 * Linear: a file sets a few dozen keys. */
static const struct config_key *find_key(const struct config *c, const char *section,
                                         const char *key)
{
    for (size_t i = 0; i < c->nkeys; i++) {
        const struct config_key *k = &c->keys[i];
        if (strcmp(k->section, section) == 0 &&
            (key == NULL ? k->key == NULL : k->key != NULL && strcmp(k->key, key) == 0))
            return k;
    }
    return NULL;
}

/* See config.h. */
int config_line(const struct config *c, const char *section, const char *key)
{
    const struct config_key *k = find_key(c, section, key);

    return k != NULL ? k->line : 0;
}

/* See config.h (key NULL: NULL, a header has no value). */
const char *config_raw(const struct config *c, const char *section, const char *key)
{
    const struct config_key *k = find_key(c, section, key);

    return k != NULL ? k->raw : NULL;
}

static void walk_keys(const struct secdef *sd, const char *section, const void *base,
                      config_walk_fn fn, void *arg)
{
    fn(arg, section, NULL, NULL);
    for (size_t i = 0; i < sd->nkeys; i++) {
        char *v = config_value_text(&sd->keys[i], base);
        fn(arg, section, sd->keys[i].name, v);
        free(v);
    }
}

/* See config.h. Out of memory, a value is handed over as NULL. */
void config_walk(const struct config *c, config_walk_fn fn, void *arg)
{
    char name[SECNAME_BUF];

    walk_keys(&config_sections[SEC_SERVER], "server", c, fn, arg);
    walk_keys(&config_sections[SEC_RECYCLE], "recycle", c, fn, arg);
    walk_keys(&config_sections[SEC_APP], "app", c, fn, arg);
    for (size_t i = 0; i < c->app.nkv; i++)
        fn(arg, "app", c->app.kv[i].key, c->app.kv[i].value);
    for (size_t i = 0; i < c->nupstreams; i++) {
        snprintf(name, sizeof(name), "upstream %s", c->upstreams[i].name);
        walk_keys(&config_sections[SEC_UPSTREAM], name, &c->upstreams[i], fn, arg);
    }
    walk_keys(&config_sections[SEC_LOG], "log", c, fn, arg);
    walk_keys(&config_sections[SEC_ADMIN], "admin", c, fn, arg);
}
