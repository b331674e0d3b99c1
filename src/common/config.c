/*
 * config.c - the INI file as a struct config. inih splits lines; this file
 * tracks sections and line numbers itself (through a reader callback), checks
 * every key and value against tables, and collects every error found; it
 * remembers where each key was set (config_line) and writes every value
 * back as text (config_walk, for -T). Pure (no sockets, no logging): runs
 * in the master (start, -t, SIGHUP) and tests.
 * Convention: 0 / -1 (config_load: -1 with the error text, see config.h).
 */
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cgroup.h"
#include "config.h"
#include "log.h"
#include "scoreboard.h"

/* inih's line buffer. With ini_use_stack = false and no realloc inih reads
 * lines into one heap buffer of ini_initial_alloc bytes (ini_max_line alone
 * changes nothing then), so both are set. Longer lines are errors. */
#define LINE_BYTES 65536
#define MAX_KEYS 24          /* keys in the largest section table */
#define WORKERS_MAX 1024
#define DURATION_MAX 1e9     /* seconds, about 31 years */
#define SHOW_MAX 80          /* characters of a value quoted in a message */
#define SHOW_BUF (SHOW_MAX * 4 + 4) /* what show() writes, at most */
#define UPSTREAM_NAME_MAX 64
#define DEFAULT_LISTEN "127.0.0.1:8000"
#define ADDR_WHAT "host:port, [v6]:port or unix:/path"

enum section {
    SEC_NONE, SEC_SERVER, SEC_RECYCLE, SEC_APP, SEC_LOG, SEC_ADMIN,
    SEC_UPSTREAM, SEC_IGNORE, SEC_COUNT
};

enum vtype {
    V_U32, V_U64, V_WORKERS, V_BOOL, V_DURATION, V_SIZE, V_STRING,
    V_ERROR_LOG, V_ACCESS_LOG, V_LEVEL, V_METRIC, V_LISTEN_LIST, V_ADDR,
    V_MEMLIMIT
};

struct keydef {
    const char *name;
    enum vtype type;
    size_t off;         /* field, from the start of the section's struct */
    size_t aux;         /* V_LISTEN_LIST: count field; V_ADDR: enabled flag;
                           V_MEMLIMIT: its struct config_memlimit */
    uint64_t min, max;  /* integers; V_DURATION: min 1 means "> 0" */
};

#define SRV(k, t, lo, hi) { #k, t, offsetof(struct config, server.k), 0, lo, hi }
#define REC(k, t, lo, hi) { #k, t, offsetof(struct config, recycle.k), 0, lo, hi }
#define LOGK(k, t) { #k, t, offsetof(struct config, log.k), 0, 0, 0 }
#define UPS(k, t, lo, hi) { #k, t, offsetof(struct config_upstream, k), 0, lo, hi }

static const struct keydef server_keys[] = {
    { "listen", V_LISTEN_LIST, offsetof(struct config, server.listen),
      offsetof(struct config, server.nlisten), 0, 0 },
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
    { "max_rss", V_MEMLIMIT, offsetof(struct config, recycle.max_rss),
      offsetof(struct config, recycle.max_rss_set), 0, 0 },
    { "max_rss_hard", V_MEMLIMIT, offsetof(struct config, recycle.max_rss_hard),
      offsetof(struct config, recycle.max_rss_hard_set), 0, 0 },
    REC(memory_metric, V_METRIC, 0, 0),
    REC(max_lifetime, V_DURATION, 0, 0),
    REC(max_lifetime_jitter, V_DURATION, 0, 0),
    REC(min_lifetime, V_DURATION, 0, 0),
    REC(max_concurrent_recycles, V_U32, 1, WORKERS_MAX),
};

/* Only "module" is ours; every other [app] key goes to app.kv. */
static const struct keydef app_keys[] = {
    { "module", V_STRING, offsetof(struct config, app.module), 0, 0, 0 },
};

static const struct keydef log_keys[] = {
    LOGK(error_log, V_ERROR_LOG),
    LOGK(level, V_LEVEL),
    LOGK(access_log, V_ACCESS_LOG),
    LOGK(access_log_format, V_STRING),
};

static const struct keydef admin_keys[] = {
    { "listen", V_ADDR, offsetof(struct config, admin.listen),
      offsetof(struct config, admin.enabled), 0, 0 },
};

static const struct keydef upstream_keys[] = {
    { "servers", V_LISTEN_LIST, offsetof(struct config_upstream, servers),
      offsetof(struct config_upstream, nservers), 0, 0 },
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

#define NKEYS(t) (sizeof(t) / sizeof((t)[0]))

struct secdef {
    const char *name;
    const struct keydef *keys;
    size_t nkeys;
};

static const struct secdef sections[SEC_COUNT] = {
    [SEC_SERVER] = { "server", server_keys, NKEYS(server_keys) },
    [SEC_RECYCLE] = { "recycle", recycle_keys, NKEYS(recycle_keys) },
    [SEC_APP] = { "app", app_keys, NKEYS(app_keys) },
    [SEC_LOG] = { "log", log_keys, NKEYS(log_keys) },
    [SEC_ADMIN] = { "admin", admin_keys, NKEYS(admin_keys) },
    [SEC_UPSTREAM] = { "upstream", upstream_keys, NKEYS(upstream_keys) },
};

struct error {
    int line; /* 0: about the whole file */
    int seq;
    char *text;
};

/* Where a key was set, and its text, for duplicates and cross-checks. */
struct seen {
    int line;
    char *raw;
};

struct parser {
    struct config *c;
    const char *path;
    FILE *fp;
    struct error *errs;      /* kept ones, sorted by line at the end */
    size_t nerrs;
    int nerrors;             /* found, kept or not (out of memory) */
    int nsyntax;             /* of which lines not understood at all */
    bool oom;
    int read_errno;
    int lineno;              /* lines read so far = line of the handler call */
    enum section sec;
    size_t up;               /* current upstream, when sec == SEC_UPSTREAM */
    char secname[UPSTREAM_NAME_MAX + 16]; /* "server", "upstream backend" */
    int sec_line[SEC_COUNT];
    struct seen seen[SEC_COUNT][MAX_KEYS];
    struct seen (*upseen)[MAX_KEYS]; /* one row per upstream */
    unsigned long calls;     /* handler calls so far */
    unsigned long calls_before;
    int pending_line;        /* key line inih has yet to hand to on_key */
    bool pending_colon;      /* ... written "name: value" */
    bool pending_indented;
    char pending[SHOW_MAX + 1];
};

static void errorf(struct parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void errorf(struct parser *p, int line, const char *fmt, ...)
{
    struct error *grown;
    char *msg, *text;
    va_list ap;
    int n;

    p->nerrors++;
    va_start(ap, fmt);
    n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0) {
        p->oom = true;
        return;
    }
    if (line > 0)
        n = asprintf(&text, "%s:%d: %s\n", p->path, line, msg);
    else
        n = asprintf(&text, "%s: %s\n", p->path, msg);
    free(msg);
    grown = n < 0 ? NULL : realloc(p->errs, (p->nerrs + 1) * sizeof(*grown));
    if (grown == NULL) {
        if (n >= 0)
            free(text);
        p->oom = true;
        return;
    }
    p->errs = grown;
    p->errs[p->nerrs] = (struct error){ line, (int)p->nerrs, text };
    p->nerrs++;
}

static int error_cmp(const void *a, const void *b)
{
    const struct error *x = a, *y = b;

    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Every error in line order, as one malloc'd text (NULL if out of memory).
 * Frees the list. */
static char *errors_text(struct parser *p)
{
    size_t len = 0, off = 0, n = p->nerrs;
    char *text = NULL;

    if (n > 0)
        qsort(p->errs, n, sizeof(*p->errs), error_cmp);
    for (size_t i = 0; i < n; i++)
        len += strlen(p->errs[i].text);
    if (n > 0)
        text = malloc(len + 1);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(p->errs[i].text);
        if (text != NULL)
            memcpy(text + off, p->errs[i].text, l);
        off += l;
        free(p->errs[i].text);
    }
    if (text != NULL)
        text[len] = '\0';
    free(p->errs);
    p->errs = NULL;
    p->nerrs = 0;
    return text;
}

/* s made fit for a message between quotes: escaped, at most SHOW_MAX
 * characters then "...". out must hold SHOW_BUF bytes. */
static const char *show(const char *s, char *out)
{
    size_t o = 0;

    for (size_t i = 0; s[i] != '\0'; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (i == SHOW_MAX) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (ch == '"' || ch == '\\')
            o += (size_t)sprintf(out + o, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            o += (size_t)sprintf(out + o, "\\x%02x", ch);
        else
            out[o++] = (char)ch;
    }
    out[o] = '\0';
    return out;
}

static void bad(struct parser *p, const char *key, const char *what,
                const char *got)
{
    char buf[SHOW_BUF];

    errorf(p, p->lineno, "[%s] %s: expected %s, got \"%s\"", p->secname, key,
           what, show(got, buf));
}

/* The key line being read is one we reject. */
static void bad_line(struct parser *p)
{
    char buf[SHOW_BUF];

    p->nsyntax++;
    errorf(p, p->pending_line, "expected \"key = value\" or \"[section]\"%s, "
           "got \"%s\"", p->pending_indented ? " (an indented line does not "
           "continue the one above)" : "", show(p->pending, buf));
    p->pending_line = 0;
}

static char *xstrdup(struct parser *p, const char *s)
{
    char *d = strdup(s);

    if (d == NULL)
        p->oom = true;
    return d;
}

/* Unit parsers */

/* Decimal digits at s: 0, -1 if none, -2 on overflow; *end after them. */
static int parse_digits(const char *s, uint64_t *out, const char **end)
{
    uint64_t n = 0;
    const char *q = s;

    for (; *q >= '0' && *q <= '9'; q++) {
        unsigned d = (unsigned)(*q - '0');
        if (n > (UINT64_MAX - d) / 10)
            return -2;
        n = n * 10 + d;
    }
    *end = q;
    *out = n;
    return q == s ? -1 : 0;
}

/* A whole non-negative integer: 0, -1 malformed, -2 out of range (too
 * large, or negative). */
static int parse_uint(const char *s, uint64_t *out)
{
    const char *end;
    int rc;

    if (s[0] == '-' && s[1] >= '0' && s[1] <= '9')
        return -2;
    rc = parse_digits(s, out, &end);
    if (rc == 0 && *end != '\0')
        return -1;
    return rc;
}

/* "1500ms", "2s", "5m", "1h", "0.5s", bare = seconds; at most DURATION_MAX.
 * 0 / -1; *out untouched on -1. */
int config_parse_duration(const char *s, double *out)
{
    double mant = 0, div = 1, v;
    const char *q = s;

    if (!(*q >= '0' && *q <= '9'))
        return -1;
    for (; *q >= '0' && *q <= '9'; q++)
        mant = mant * 10 + (*q - '0');
    if (*q == '.') {
        if (!(*++q >= '0' && *q <= '9'))
            return -1;
        for (; *q >= '0' && *q <= '9'; q++) {
            mant = mant * 10 + (*q - '0');
            div *= 10;
        }
    }
    v = mant / div;
    if (strcmp(q, "ms") == 0)
        v /= 1000;
    else if (strcmp(q, "m") == 0)
        v *= 60;
    else if (strcmp(q, "h") == 0)
        v *= 3600;
    else if (*q != '\0' && strcmp(q, "s") != 0)
        return -1;
    if (!(v <= DURATION_MAX))
        return -1;
    *out = v;
    return 0;
}

/* Digits, then nothing or B (bytes), or K/M/G optionally followed by B or
 * iB, any case: all powers of 1024. No fractions. 0 / -1 (also overflow). */
int config_parse_size(const char *s, uint64_t *out)
{
    uint64_t n, mult = 1;
    const char *u;

    if (parse_digits(s, &n, &u) != 0)
        return -1;
    switch (tolower((unsigned char)*u)) {
    case 'k': mult = UINT64_C(1) << 10; u++; break;
    case 'm': mult = UINT64_C(1) << 20; u++; break;
    case 'g': mult = UINT64_C(1) << 30; u++; break;
    default: break;
    }
    if (!(*u == '\0' || strcasecmp(u, "b") == 0 ||
          (mult > 1 && strcasecmp(u, "ib") == 0)))
        return -1;
    if (n > UINT64_MAX / mult)
        return -1;
    *out = n * mult;
    return 0;
}

/* true/yes/on/1 and false/no/off/0, any case. 0 / -1. */
int config_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = { "true", "yes", "on", "1" };
    static const char *const no[] = { "false", "no", "off", "0" };

    for (size_t i = 0; i < NKEYS(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/* Values */

/* workers = auto: the CPUs this process may run on (its affinity mask, a
 * container's cpuset), and no more than its cgroup's CPU quota allows (a
 * container's CPU limit, systemd's CPUQuota=), rounded up. */
static uint64_t online_cpus(void)
{
    cpu_set_t set;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    double quota = cgroup_cpu_limit(NULL);

    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        n = CPU_COUNT(&set);
    if (quota > 0 && (double)n > quota)
        n = (long)ceil(quota);
    if (n < 1)
        return 1;
    return n > WORKERS_MAX ? WORKERS_MAX : (uint64_t)n;
}

static void set_number(struct parser *p, const struct keydef *k, void *field,
                       const char *v)
{
    bool workers = k->type == V_WORKERS;
    char what[96];
    uint64_t n;
    int rc;

    if (workers && strcmp(v, "auto") == 0) {
        n = online_cpus();
        rc = 0;
    } else {
        rc = parse_uint(v, &n);
    }
    if (rc == -1) {
        bad(p, k->name, workers ? "a number or \"auto\"" : "a number", v);
        return;
    }
    if (rc == -2 || n < k->min || n > k->max) {
        snprintf(what, sizeof(what), "a number from %llu to %llu%s",
                 (unsigned long long)k->min, (unsigned long long)k->max,
                 workers ? " or \"auto\"" : "");
        bad(p, k->name, what, v);
        return;
    }
    if (k->type == V_U64)
        *(uint64_t *)field = n;
    else
        *(uint32_t *)field = (uint32_t)n;
}

static void set_duration(struct parser *p, const struct keydef *k,
                         double *field, const char *v)
{
    double d;

    if (config_parse_duration(v, &d) < 0 || (k->min > 0 && d <= 0))
        bad(p, k->name, k->min > 0
                ? "a duration > 0 (e.g. 30s, 1500ms, 5m, 1h)"
                : "a duration (e.g. 30s, 1500ms, 5m, 1h)", v);
    else
        *field = d;
}

/* Replaces *field by a copy of v (NULL for access_log = off). */
static void set_string(struct parser *p, const struct keydef *k,
                       char **field, const char *v)
{
    const char *what = k->type == V_ERROR_LOG ? "\"stderr\" or a path"
                     : k->type == V_ACCESS_LOG ? "\"off\", \"stderr\" or a path"
                     : "a non-empty value";
    char *copy = NULL;

    if (*v == '\0') {
        bad(p, k->name, what, v);
        return;
    }
    if (!(k->type == V_ACCESS_LOG && strcmp(v, "off") == 0)) {
        copy = xstrdup(p, v);
        if (copy == NULL)
            return;
    }
    free(*field);
    *field = copy;
}

/* "12", "62.5": digits with an optional fraction, nothing else. 0 / -1. */
static int parse_decimal(const char *s, double *out)
{
    uint64_t whole, frac = 0;
    const char *end, *f;
    double div = 1;

    if (parse_digits(s, &whole, &end) != 0)
        return -1;
    if (*end == '.') {
        if (parse_digits(end + 1, &frac, &f) != 0 || *f != '\0' || f - end > 10)
            return -1;
        for (const char *q = end + 1; q < f; q++)
            div *= 10;
        end = f;
    }
    if (*end != '\0')
        return -1;
    *out = (double)whole + (double)frac / div;
    return 0;
}

/* A size, "N%" (0 < N <= 100, a fraction allowed) or "auto": a memory
 * limit, or a share of the cgroup's memory per worker (memlimit.c). */
static void set_memlimit(struct parser *p, const struct keydef *k, void *base,
                         const char *v)
{
    struct config_memlimit *m = (void *)((char *)base + k->aux), n = {0};
    bool hard = strcmp(k->name, "max_rss_hard") == 0;
    char buf[SHOW_BUF];
    size_t len = strlen(v);

    if (strcasecmp(v, "auto") == 0) {
        n.automatic = true;
        n.percent = hard ? CONFIG_AUTO_MAX_RSS_HARD : CONFIG_AUTO_MAX_RSS;
    } else if (len > 1 && v[len - 1] == '%') {
        char *num = strndup(v, len - 1);
        if (num == NULL) {
            p->oom = true;
            return;
        }
        if (parse_decimal(num, &n.percent) < 0 || !(n.percent > 0 && n.percent <= 100))
            n.percent = -1;
        free(num);
    } else if (config_parse_size(v, &n.bytes) < 0) {
        n.percent = -1;
    }
    if (n.percent < 0) {
        bad(p, k->name, "a size (e.g. 8190, 64K, 256M, 1G), a share of the "
            "cgroup's memory per worker (e.g. 80%, at most 100%) or auto", v);
        return;
    }
    n.line = p->lineno;
    snprintf(n.text, sizeof(n.text), "%s", show(v, buf));
    *m = n;
    *(uint64_t *)((char *)base + k->off) = n.bytes;
}

static int parse_addr(struct parser *p, const struct keydef *k,
                      const char *item, struct listen_addr *out)
{
    const char *why = "invalid address";
    char what[128];

    if (*item != '\0' && listen_parse(item, out, &why) == 0)
        return 0;
    if (*item == '\0')
        why = "empty list item";
    snprintf(what, sizeof(what), "%s (%s)", ADDR_WHAT, why);
    bad(p, k->name, what, item);
    return -1;
}

static char *trim(char *s)
{
    char *e;

    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static bool is_duplicate(const struct listen_addr *list, size_t n,
                         const struct listen_addr *a)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i].text, a->text) == 0)
            return true;
    return false;
}

/* "a, b, c": every item is checked (one error each); the field is replaced
 * only when all are good. */
static void set_listen_list(struct parser *p, const struct keydef *k,
                            void *base, const char *v)
{
    struct listen_addr **field = (void *)((char *)base + k->off);
    size_t *count = (void *)((char *)base + k->aux);
    struct listen_addr *list = NULL, *grown, a;
    char buf[SHOW_BUF];
    char *copy = xstrdup(p, v), *rest = copy;
    size_t n = 0;
    int nbad = 0;

    while (rest != NULL) {
        char *item = trim(strsep(&rest, ","));
        if (parse_addr(p, k, item, &a) < 0) {
            nbad++;
        } else if (is_duplicate(list, n, &a)) {
            errorf(p, p->lineno, "[%s] %s: duplicate address \"%s\"",
                   p->secname, k->name, show(a.text, buf));
            nbad++;
        } else if ((grown = realloc(list, (n + 1) * sizeof(*list))) == NULL) {
            p->oom = true;
            nbad++;
        } else {
            list = grown;
            list[n++] = a;
        }
    }
    free(copy);
    if (nbad > 0 || copy == NULL) {
        free(list);
        return;
    }
    free(*field);
    *field = list;
    *count = n;
}

static void set_value(struct parser *p, const struct keydef *k, void *base,
                      const char *v)
{
    void *field = (char *)base + k->off;
    int level;

    switch (k->type) {
    case V_U32: case V_U64: case V_WORKERS:
        set_number(p, k, field, v);
        break;
    case V_BOOL:
        if (config_parse_bool(v, field) < 0)
            bad(p, k->name, "true or false (also yes/no, on/off, 1/0)", v);
        break;
    case V_DURATION:
        set_duration(p, k, field, v);
        break;
    case V_SIZE:
        if (config_parse_size(v, field) < 0)
            bad(p, k->name, "a size (e.g. 8190, 64K, 256M, 1G)", v);
        break;
    case V_STRING: case V_ERROR_LOG: case V_ACCESS_LOG:
        set_string(p, k, field, v);
        break;
    case V_LEVEL:
        if ((level = log_level_parse(v)) < 0)
            bad(p, k->name, "error, warn, info or debug", v);
        else
            *(int *)field = level;
        break;
    case V_METRIC:
        if (strcasecmp(v, "rss") == 0)
            *(enum memory_metric *)field = METRIC_RSS;
        else if (strcasecmp(v, "uss") == 0)
            *(enum memory_metric *)field = METRIC_USS;
        else if (strcasecmp(v, "pss") == 0)
            *(enum memory_metric *)field = METRIC_PSS;
        else
            bad(p, k->name, "rss, uss or pss", v);
        break;
    case V_LISTEN_LIST:
        set_listen_list(p, k, base, v);
        break;
    case V_ADDR:
        if (parse_addr(p, k, v, field) == 0)
            *(bool *)((char *)base + k->aux) = true;
        break;
    case V_MEMLIMIT:
        set_memlimit(p, k, base, v);
        break;
    }
}

/* Keys */

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

static void unknown_key(struct parser *p, const struct secdef *sd,
                        const char *name)
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
        errorf(p, p->lineno, "[%s] %s: unknown key (did you mean \"%s\"?)",
               p->secname, show(name, buf), best);
    else
        errorf(p, p->lineno, "[%s] %s: unknown key", p->secname,
               show(name, buf));
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
    grown[c->nkeys] = (struct config_key){ section, key, p->lineno, NULL };
    if (raw != NULL && (grown[c->nkeys].raw = xstrdup(p, raw)) == NULL)
        return;
    c->nkeys++;
}

static void set_key(struct parser *p, const struct secdef *sd, void *base,
                    struct seen *seen, const char *name, const char *value)
{
    size_t i;

    for (i = 0; i < sd->nkeys; i++)
        if (strcmp(sd->keys[i].name, name) == 0)
            break;
    if (i == sd->nkeys) {
        unknown_key(p, sd, name);
        return;
    }
    if (seen[i].line > 0) {
        errorf(p, p->lineno, "[%s] %s: duplicate key (first set at line %d)",
               p->secname, name, seen[i].line);
        return;
    }
    seen[i].line = p->lineno;
    seen[i].raw = xstrdup(p, value);
    if (sd != &sections[SEC_UPSTREAM])
        note_key(p, sd->name, sd->keys[i].name, value);
    set_value(p, &sd->keys[i], base, value);
}

static void add_app_kv(struct parser *p, const char *name, const char *value)
{
    struct config *c = p->c;
    struct config_kv *kv = config_app_find(c, name), *grown;
    char buf[SHOW_BUF];

    if (kv != NULL) {
        errorf(p, p->lineno, "[app] %s: duplicate key (first set at line %d)",
               show(name, buf), kv->line);
        return;
    }
    grown = realloc(c->app.kv, (c->app.nkv + 1) * sizeof(*grown));
    if (grown == NULL) {
        p->oom = true;
        return;
    }
    c->app.kv = grown;
    kv = &c->app.kv[c->app.nkv];
    kv->key = xstrdup(p, name);
    kv->value = xstrdup(p, value);
    kv->line = p->lineno;
    kv->used = false;
    if (kv->key == NULL || kv->value == NULL) {
        free(kv->key);
        free(kv->value);
        return;
    }
    c->app.nkv++;
}

/* inih's handler: one call per "key = value" line. Always "success": the
 * errors are ours to collect, each with its line. */
static int on_key(void *user, const char *section, const char *name,
                  const char *value)
{
    struct parser *p = user;
    char buf[SHOW_BUF];

    (void)section; /* ours is p->sec: inih cuts names at 49 bytes */
    p->calls++;
    if (p->pending_colon) { /* "name: value": inih takes it, we do not */
        bad_line(p);
        return 1;
    }
    if (*name == '\0') {
        p->nsyntax++;
        errorf(p, p->lineno, "expected \"key = value\", got no key before "
               "\"=\"");
        return 1;
    }
    for (const char *k = name; *k; k++)
        if ((unsigned char)*k < 0x20 || *k == 0x7f) {
            /* No key has one; an [app] key would reach the module and its
             * messages as it is. */
            p->nsyntax++;
            errorf(p, p->lineno, "%s: control byte in a key name", show(name, buf));
            return 1;
        }
    switch (p->sec) {
    case SEC_NONE:
        errorf(p, p->lineno, "%s: key outside any section (expected a "
               "[section] line first)", show(name, buf));
        break;
    case SEC_IGNORE:
        break; /* the section header was already reported */
    case SEC_APP:
        if (strcmp(name, "module") == 0)
            set_key(p, &sections[SEC_APP], p->c, p->seen[SEC_APP], name,
                    value);
        else
            add_app_kv(p, name, value);
        break;
    case SEC_UPSTREAM:
        set_key(p, &sections[SEC_UPSTREAM], &p->c->upstreams[p->up],
                p->upseen[p->up], name, value);
        break;
    default:
        set_key(p, &sections[p->sec], p->c, p->seen[p->sec], name, value);
        break;
    }
    return 1;
}

/* Sections */

static void upstream_defaults(struct config_upstream *u)
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
    struct seen (*seen)[MAX_KEYS];
    char buf[SHOW_BUF];

    if (!valid_upstream_name(name)) {
        errorf(p, p->lineno, "[upstream %s]: expected a name of 1 to %d "
               "letters, digits, '-', '_' or '.', e.g. [upstream backend]",
               show(name, buf), UPSTREAM_NAME_MAX);
        return;
    }
    for (size_t i = 0; i < c->nupstreams; i++) {
        if (strcmp(c->upstreams[i].name, name) == 0) {
            errorf(p, p->lineno, "duplicate section [upstream %s] (first at "
                   "line %d)", name, c->upstreams[i].line);
            return;
        }
    }
    ups = realloc(c->upstreams, (c->nupstreams + 1) * sizeof(*ups));
    if (ups != NULL)
        c->upstreams = ups;
    seen = realloc(p->upseen, (c->nupstreams + 1) * sizeof(*seen));
    if (seen != NULL)
        p->upseen = seen;
    if (ups == NULL || seen == NULL) {
        p->oom = true;
        return;
    }
    p->up = c->nupstreams;
    upstream_defaults(&ups[p->up]);
    memset(seen[p->up], 0, sizeof(seen[p->up]));
    ups[p->up].line = p->lineno;
    if ((ups[p->up].name = xstrdup(p, name)) == NULL)
        return;
    c->nupstreams++;
    snprintf(p->secname, sizeof(p->secname), "upstream %s", name);
    p->sec = SEC_UPSTREAM;
}

static void open_section(struct parser *p, const char *name)
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
        if (strcmp(name, sections[s].name) != 0)
            continue;
        if (p->sec_line[s] > 0) {
            errorf(p, p->lineno, "duplicate section [%s] (first at line %d)",
                   name, p->sec_line[s]);
            return;
        }
        p->sec_line[s] = p->lineno;
        p->sec = (enum section)s;
        note_key(p, sections[s].name, NULL, NULL);
        snprintf(p->secname, sizeof(p->secname), "%s", name);
        return;
    }
    errorf(p, p->lineno, "unknown section [%s] (expected server, recycle, "
           "app, upstream NAME, log or admin)", show(name, buf));
}

/* The first of chars in s, or of an inline comment (";" or "#" after a
 * blank), or the end of s: where inih stops reading a name. */
static const char *scan_to(const char *s, const char *chars)
{
    bool was_space = false;

    while (*s && !strchr(chars, *s) && !(was_space && strchr(";#", *s))) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

/* A line starting with '[', read as inih reads it (the name ends at ']' or
 * at an inline comment) without touching the buffer inih parses. */
static void section_line(struct parser *p, const char *s)
{
    char name[SHOW_MAX + UPSTREAM_NAME_MAX], buf[SHOW_MAX * 4 + 4];
    const char *end = scan_to(s + 1, "]"), *after;
    size_t len;

    p->sec = SEC_IGNORE;
    if (*end != ']') {
        p->nsyntax++;
        errorf(p, p->lineno, "expected \"]\" to close the section header, "
               "got \"%s\"", show(s, buf));
        return;
    }
    for (after = end + 1; isspace((unsigned char)*after); after++)
        ;
    if (*after != '\0' && !strchr(";#", *after))
        errorf(p, p->lineno, "unexpected text after \"]\": \"%s\"",
               show(after, buf));
    len = (size_t)(end - s - 1);
    if (len >= sizeof(name))
        len = sizeof(name) - 1;
    memcpy(name, s + 1, len);
    name[len] = '\0';
    open_section(p, trim(name));
}

/* Reading */

/* A key line inih did not hand to on_key is one it rejected. */
static void check_pending(struct parser *p)
{
    if (p->pending_line > 0 && p->calls == p->calls_before)
        bad_line(p);
    p->pending_line = 0;
}

static void classify_line(struct parser *p, char *line)
{
    char *s = line;
    size_t n;

    if (p->lineno == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3;
    while (isspace((unsigned char)*s))
        s++;
    if (*s == '\0' || *s == ';' || *s == '#')
        return;
    if (*s == '[') {
        section_line(p, s);
        return;
    }
    n = strlen(s);
    if (n > SHOW_MAX)
        n = SHOW_MAX;
    memcpy(p->pending, s, n);
    p->pending[n] = '\0';
    p->pending_line = p->lineno;
    p->pending_colon = *scan_to(s, "=:") == ':';
    p->pending_indented = s > line && isspace((unsigned char)s[-1]);
    p->calls_before = p->calls;
}

/* True when the line just read by fgets ended exactly at the buffer's end;
 * otherwise the rest of the line is read and dropped. */
static bool line_ends_here(FILE *fp)
{
    int ch = getc(fp);

    if (ch == EOF || ch == '\n')
        return true;
    while ((ch = getc(fp)) != EOF && ch != '\n')
        ;
    return false;
}

/* inih's reader (fgets-like): counts lines, follows sections, reports
 * overlong lines (handed to inih as empty ones, so it skips them). */
static char *read_line(char *buf, int size, void *stream)
{
    struct parser *p = stream;
    size_t n;

    check_pending(p);
    if (fgets(buf, size, p->fp) == NULL) {
        if (ferror(p->fp))
            p->read_errno = errno ? errno : EIO;
        return NULL;
    }
    p->lineno++;
    n = strlen(buf);
    if (n > 0 && n == (size_t)size - 1 && buf[n - 1] != '\n' &&
        !line_ends_here(p->fp)) {
        p->nsyntax++;
        errorf(p, p->lineno, "line too long (more than %d bytes)", size - 1);
        buf[0] = '\0';
        return buf;
    }
    /* inih strips trailing blanks too: this changes nothing it parses */
    while (n > 0 && isspace((unsigned char)buf[n - 1]))
        buf[--n] = '\0';
    classify_line(p, buf);
    return buf;
}

static void setup_inih(void)
{
    static char start_comments[] = ";#";
    static char inline_comments[] = ";#";

    ini_use_stack = false;
    ini_allow_realloc = false;
    ini_initial_alloc = LINE_BYTES;
    ini_max_line = LINE_BYTES;
    ini_allow_multiline = false; /* an indented line is a line of its own */
    ini_allow_bom = true;
    ini_start_comment_prefixes = start_comments;
    ini_allow_inline_comments = true;
    ini_inline_comment_prefixes = inline_comments;
    ini_stop_on_first_error = false;
    ini_allow_no_value = false;
}

/* After the whole file: required keys and checks across keys. */

static const struct seen *seen_key(const struct parser *p, enum section s,
                                   const char *name)
{
    for (size_t i = 0; i < sections[s].nkeys; i++)
        if (strcmp(sections[s].keys[i].name, name) == 0)
            return &p->seen[s][i];
    return NULL;
}

static void check_server(struct parser *p)
{
    struct config *c = p->c;
    const struct seen *mw = seen_key(p, SEC_SERVER, "max_workers");

    if (mw->line == 0 && c->server.max_workers < c->server.workers)
        c->server.max_workers = c->server.workers; /* default follows */
    else if (mw->line > 0 && c->server.max_workers < c->server.workers)
        errorf(p, mw->line, "[server] max_workers: expected a number >= "
               "workers (%u), got \"%s\"", c->server.workers,
               mw->raw ? mw->raw : "");
}

static void check_recycle(struct parser *p)
{
    struct config *c = p->c;
    const struct seen *soft = seen_key(p, SEC_RECYCLE, "max_rss");
    const struct seen *hard = seen_key(p, SEC_RECYCLE, "max_rss_hard");
    const struct seen *min = seen_key(p, SEC_RECYCLE, "min_lifetime");
    const struct seen *max = seen_key(p, SEC_RECYCLE, "max_lifetime");

    if (c->recycle.max_rss > 0 && c->recycle.max_rss_hard > 0 &&
        c->recycle.max_rss_hard <= c->recycle.max_rss)
        errorf(p, hard->line, "[recycle] max_rss_hard: expected a size "
               "greater than max_rss (%s), got \"%s\"",
               soft->raw ? soft->raw : "", hard->raw ? hard->raw : "");
    /* Two shares of the same thing compare now; a size and a share only
     * once the master knows the cgroup's limit (memlimit.c). */
    if (c->recycle.max_rss_set.percent > 0 && c->recycle.max_rss_hard_set.percent > 0 &&
        c->recycle.max_rss_hard_set.percent <= c->recycle.max_rss_set.percent)
        errorf(p, hard->line, "[recycle] max_rss_hard: expected a share greater "
               "than max_rss (%s = %g%%), got \"%s\" (= %g%%)", soft->raw ? soft->raw : "",
               c->recycle.max_rss_set.percent, hard->raw ? hard->raw : "",
               c->recycle.max_rss_hard_set.percent);
    if (c->recycle.max_lifetime > 0 &&
        c->recycle.min_lifetime > c->recycle.max_lifetime)
        errorf(p, min->line, "[recycle] min_lifetime: expected a duration "
               "<= max_lifetime (%s), got \"%s\"",
               max->raw ? max->raw : "", min->raw ? min->raw : "");
}

/* A required key is not reported missing when a line was not understood
 * at all (an unclosed "[app" header, say): that line may be the one that
 * held it, and its own error says what to fix. */
static void check_required(struct parser *p)
{
    const struct config *c = p->c;

    if (c->app.module == NULL && p->seen[SEC_APP][0].line == 0 && p->nsyntax == 0)
        errorf(p, p->sec_line[SEC_APP], "[app] module: required key is "
               "missing (e.g. \"module = hello\")");
    for (size_t i = 0; i < c->nupstreams && p->nsyntax == 0; i++)
        if (p->upseen[i][0].line == 0)
            errorf(p, c->upstreams[i].line, "[upstream %s] servers: "
                   "required key is missing", c->upstreams[i].name);
    /* Each upstream has its counters in every worker's scoreboard slot. */
    if (c->nupstreams > SB_MAX_UPSTREAMS)
        errorf(p, c->upstreams[SB_MAX_UPSTREAMS].line, "[upstream %s]: at "
               "most %d [upstream] sections, this is number %zu",
               c->upstreams[SB_MAX_UPSTREAMS].name, SB_MAX_UPSTREAMS,
               c->nupstreams);
}

/* Loading */

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

static void parse_file(struct parser *p)
{
    int rc;

    setup_inih();
    rc = ini_parse_stream(read_line, p, on_key, p);
    check_pending(p);
    if (rc == -2)
        p->oom = true;
    else if (rc > 0 && p->nerrors == 0) { /* inih saw what we did not */
        p->nsyntax++;
        errorf(p, rc, "syntax error");
    }
    if (p->read_errno != 0)
        errorf(p, 0, "cannot read: %s", strerror(p->read_errno));
    if (p->read_errno == 0) {
        check_required(p);
        check_server(p);
        check_recycle(p);
    }
}

static void parser_free(struct parser *p)
{
    for (int s = 0; s < SEC_COUNT; s++)
        for (int k = 0; k < MAX_KEYS; k++)
            free(p->seen[s][k].raw);
    for (size_t i = 0; p->upseen != NULL && i < p->c->nupstreams; i++)
        for (int k = 0; k < MAX_KEYS; k++)
            free(p->upseen[i][k].raw);
    free(p->upseen);
}

/* Reads the INI text of fp (NULL: it could not be opened, errno then
 * says why) into c, which config_load or config_load_text has named. */
static int load_stream(FILE *fp, const char *path, struct config *c,
                       char **errors)
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
    if (c->path == NULL || c->log.error_log == NULL ||
        c->log.access_log_format == NULL || c->server.nlisten == 0)
        p.oom = true;
    p.fp = fp;
    if (p.fp == NULL) {
        errorf(&p, 0, "cannot open: %s", strerror(open_errno));
    } else {
        parse_file(&p);
        fclose(p.fp);
    }
    if (p.oom)
        errorf(&p, 0, "out of memory");
    parser_free(&p);
    text = errors_text(&p);
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
int config_load_text(const char *name, const char *text, struct config *c,
                     char **errors)
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

/* Linear search of the [app] keys (a handful); does not set "used". */
struct config_kv *config_app_find(const struct config *c, const char *key)
{
    for (size_t i = 0; i < c->app.nkv; i++)
        if (strcmp(c->app.kv[i].key, key) == 0)
            return &c->app.kv[i];
    return NULL;
}

/* See config.h. Linear: a file sets a few dozen keys. */
int config_line(const struct config *c, const char *section, const char *key)
{
    for (size_t i = 0; i < c->nkeys; i++)
        if (strcmp(c->keys[i].section, section) == 0 &&
            (key == NULL ? c->keys[i].key == NULL
                         : c->keys[i].key != NULL && strcmp(c->keys[i].key, key) == 0))
            return c->keys[i].line;
    return 0;
}

/* See config.h. */
const char *config_raw(const struct config *c, const char *section, const char *key)
{
    for (size_t i = 0; i < c->nkeys; i++)
        if (c->keys[i].key != NULL && strcmp(c->keys[i].section, section) == 0 &&
            strcmp(c->keys[i].key, key) == 0)
            return c->keys[i].raw;
    return NULL;
}

/* Values written back (config_walk): each as its parser reads it. */

/* "12.500" -> "12.5", "3.000" -> "3": a %f number without trailing zeros. */
static char *trim_decimals(char *s)
{
    char *dot = strchr(s, '.'), *e;

    if (dot == NULL)
        return s;
    for (e = s + strlen(s); e > dot + 1 && e[-1] == '0'; e--)
        ;
    if (e == dot + 1)
        e = dot;
    *e = '\0';
    return s;
}

/* The largest of G, M, K that divides n, else bytes. malloc'd. */
static char *size_text(uint64_t n)
{
    static const char units[] = "GMK";
    char *t = NULL;

    for (int i = 0; i < 3 && n > 0; i++) {
        uint64_t u = UINT64_C(1) << (10 * (3 - i));
        if (n % u == 0)
            return asprintf(&t, "%llu%c", (unsigned long long)(n / u), units[i]) < 0
                       ? NULL : t;
    }
    return asprintf(&t, "%llu", (unsigned long long)n) < 0 ? NULL : t;
}

/* Whole hours, minutes or seconds, else whole milliseconds, else seconds
 * with 15 significant digits (which read back give the same text again).
 * malloc'd. */
static char *duration_text(double d)
{
    double ms = d * 1000, r = round(ms);
    char num[400], *t = NULL;
    int n, decimals;

    if (d == 0)
        n = asprintf(&t, "0");
    else if (d == floor(d) && fmod(d, 3600) == 0)
        n = asprintf(&t, "%.0fh", d / 3600);
    else if (d == floor(d) && fmod(d, 60) == 0)
        n = asprintf(&t, "%.0fm", d / 60);
    else if (d == floor(d))
        n = asprintf(&t, "%.0fs", d);
    else if (r >= 1 && fabs(ms - r) <= 1e-9 * r)
        n = asprintf(&t, "%.0fms", r);
    else {
        decimals = 14 - (int)floor(log10(d));
        snprintf(num, sizeof(num), "%.*f", decimals < 0 ? 0 : decimals > 340 ? 340
                                                                              : decimals, d);
        n = asprintf(&t, "%ss", trim_decimals(num));
    }
    return n < 0 ? NULL : t;
}

static char *memlimit_text(const struct config_memlimit *m)
{
    char num[64], *t = NULL;

    if (m->automatic)
        return strdup("auto");
    if (m->percent <= 0)
        return size_text(m->bytes);
    snprintf(num, sizeof(num), "%.9f", m->percent);
    return asprintf(&t, "%s%%", trim_decimals(num)) < 0 ? NULL : t;
}

static char *addr_list_text(const struct listen_addr *list, size_t n)
{
    size_t len = 1;
    char *t;

    for (size_t i = 0; i < n; i++)
        len += strlen(list[i].text) + 2;
    if ((t = malloc(len)) == NULL)
        return NULL;
    t[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            strcat(t, ", ");
        strcat(t, list[i].text);
    }
    return t;
}

/* The value of k in the struct at base as text (malloc'd), or NULL for
 * a key that is not set and has no default. */
static char *value_text(const struct keydef *k, const void *base)
{
    static const char *const levels[] = { "error", "warn", "info", "debug" };
    static const char *const metrics[] = { "rss", "uss", "pss" };
    const void *field = (const char *)base + k->off;
    const char *s;
    char *t = NULL;
    int level;

    switch (k->type) {
    case V_U32: case V_WORKERS:
        return asprintf(&t, "%u", *(const uint32_t *)field) < 0 ? NULL : t;
    case V_U64:
        return asprintf(&t, "%llu", (unsigned long long)*(const uint64_t *)field) < 0
                   ? NULL : t;
    case V_BOOL:
        return strdup(*(const bool *)field ? "true" : "false");
    case V_DURATION:
        return duration_text(*(const double *)field);
    case V_SIZE:
        return size_text(*(const uint64_t *)field);
    case V_STRING: case V_ERROR_LOG: case V_ACCESS_LOG:
        s = *(char *const *)field;
        return s != NULL ? strdup(s) : k->type == V_ACCESS_LOG ? strdup("off") : NULL;
    case V_LEVEL:
        level = *(const int *)field;
        return strdup(levels[level < LOG_ERROR ? LOG_ERROR : level > LOG_DEBUG ? LOG_DEBUG
                                                                              : level]);
    case V_METRIC:
        return strdup(metrics[*(const enum memory_metric *)field]);
    case V_LISTEN_LIST:
        return addr_list_text(*(struct listen_addr *const *)field,
                              *(const size_t *)((const char *)base + k->aux));
    case V_ADDR:
        return *(const bool *)((const char *)base + k->aux)
                   ? strdup(((const struct listen_addr *)field)->text) : NULL;
    case V_MEMLIMIT:
        return memlimit_text((const void *)((const char *)base + k->aux));
    }
    return NULL;
}

static void walk_keys(const struct secdef *sd, const char *section, const void *base,
                      config_walk_fn fn, void *arg)
{
    fn(arg, section, NULL, NULL);
    for (size_t i = 0; i < sd->nkeys; i++) {
        char *v = value_text(&sd->keys[i], base);
        fn(arg, section, sd->keys[i].name, v);
        free(v);
    }
}

/* See config.h. Out of memory, a value is handed over as NULL. */
void config_walk(const struct config *c, config_walk_fn fn, void *arg)
{
    char name[UPSTREAM_NAME_MAX + 16];

    walk_keys(&sections[SEC_SERVER], "server", c, fn, arg);
    walk_keys(&sections[SEC_RECYCLE], "recycle", c, fn, arg);
    walk_keys(&sections[SEC_APP], "app", c, fn, arg);
    for (size_t i = 0; i < c->app.nkv; i++)
        fn(arg, "app", c->app.kv[i].key, c->app.kv[i].value);
    for (size_t i = 0; i < c->nupstreams; i++) {
        snprintf(name, sizeof(name), "upstream %s", c->upstreams[i].name);
        walk_keys(&sections[SEC_UPSTREAM], name, &c->upstreams[i], fn, arg);
    }
    walk_keys(&sections[SEC_LOG], "log", c, fn, arg);
    walk_keys(&sections[SEC_ADMIN], "admin", c, fn, arg);
}
