/*
 * config_units.c - the values of the INI file: unit parsers (durations,
 * sizes, booleans, memory limits, address lists), each value checked and
 * stored by its key's type, and written back as text for config_walk.
 * Pure apart from workers = auto (sched_getaffinity, the cgroup): runs
 * wherever config_load does, the master, preforkd -t and preforkctl.
 * Convention: 0 / -1 for the parsers; a setter reports its own errors.
 */
#include <ctype.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cgroup.h"
#include "config_int.h"
#include "log.h"

#define DURATION_MAX 1e9 /* seconds, about 31 years */
#define ADDR_WHAT "host:port, [v6]:port or unix:/path"

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
    case 'k':
        mult = UINT64_C(1) << 10;
        u++;
        break;
    case 'm':
        mult = UINT64_C(1) << 20;
        u++;
        break;
    case 'g':
        mult = UINT64_C(1) << 30;
        u++;
        break;
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
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

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
        config_bad(p, k->name, workers ? "a number or \"auto\"" : "a number", v);
        return;
    }
    if (rc == -2 || n < k->min || n > k->max) {
        snprintf(what, sizeof(what), "a number from %llu to %llu%s",
                 (unsigned long long)k->min, (unsigned long long)k->max,
                 workers ? " or \"auto\"" : "");
        config_bad(p, k->name, what, v);
        return;
    }
    if (k->type == V_U64)
        *(uint64_t *)field = n;
    else
        *(uint32_t *)field = (uint32_t)n;
}

static void set_duration(struct parser *p, const struct keydef *k, double *field,
                         const char *v)
{
    double d;

    if (config_parse_duration(v, &d) < 0 || (k->min > 0 && d <= 0))
        config_bad(p, k->name,
                   k->min > 0 ? "a duration > 0 (e.g. 30s, 1500ms, 5m, 1h)"
                              : "a duration (e.g. 30s, 1500ms, 5m, 1h)",
                   v);
    else
        *field = d;
}

/* Replaces *field by a copy of v (NULL for access_log = off). */
static void set_string(struct parser *p, const struct keydef *k, char **field,
                       const char *v)
{
    const char *what = k->type == V_ERROR_LOG    ? "\"stderr\" or a path"
                       : k->type == V_ACCESS_LOG ? "\"off\", \"stderr\" or a path"
                                                 : "a non-empty value";
    char *copy = NULL;

    if (*v == '\0') {
        config_bad(p, k->name, what, v);
        return;
    }
    if (!(k->type == V_ACCESS_LOG && strcmp(v, "off") == 0)) {
        copy = config_xstrdup(p, v);
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
        config_bad(p, k->name,
                   "a size (e.g. 8190, 64K, 256M, 1G), a share of "
                   "the cgroup's memory per worker (e.g. 80%, at most 100%) or "
                   "auto",
                   v);
        return;
    }
    n.line = p->lineno;
    snprintf(n.text, sizeof(n.text), "%s", config_show(v, buf));
    *m = n;
    *(uint64_t *)((char *)base + k->off) = n.bytes;
}

static int parse_addr(struct parser *p, const struct keydef *k, const char *item,
                      struct listen_addr *out)
{
    const char *why = "invalid address";
    char what[128];

    if (*item != '\0' && listen_parse(item, out, &why) == 0)
        return 0;
    if (*item == '\0')
        why = "empty list item";
    snprintf(what, sizeof(what), "%s (%s)", ADDR_WHAT, why);
    config_bad(p, k->name, what, item);
    return -1;
}

/* See config_int.h. */
char *config_trim(char *s)
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
static void set_listen_list(struct parser *p, const struct keydef *k, void *base,
                            const char *v)
{
    struct listen_addr **field = (void *)((char *)base + k->off);
    size_t *count = (void *)((char *)base + k->aux);
    struct listen_addr *list = NULL, *grown, a;
    char buf[SHOW_BUF];
    char *copy = config_xstrdup(p, v), *rest = copy;
    size_t n = 0;
    int nbad = 0;

    while (rest != NULL) {
        char *item = config_trim(strsep(&rest, ","));
        if (parse_addr(p, k, item, &a) < 0) {
            nbad++;
        } else if (is_duplicate(list, n, &a)) {
            config_errorf(p, p->lineno, "[%s] %s: duplicate address \"%s\"", p->secname,
                          k->name, config_show(a.text, buf));
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

/* See config_int.h. */
void config_set_value(struct parser *p, const struct keydef *k, void *base, const char *v)
{
    void *field = (char *)base + k->off;
    int level;

    switch (k->type) {
    case V_U32:
    case V_U64:
    case V_WORKERS: set_number(p, k, field, v); break;
    case V_BOOL:
        if (config_parse_bool(v, field) < 0)
            config_bad(p, k->name, "true or false (also yes/no, on/off, 1/0)", v);
        break;
    case V_DURATION: set_duration(p, k, field, v); break;
    case V_SIZE:
        if (config_parse_size(v, field) < 0)
            config_bad(p, k->name, "a size (e.g. 8190, 64K, 256M, 1G)", v);
        break;
    case V_STRING:
    case V_ERROR_LOG:
    case V_ACCESS_LOG: set_string(p, k, field, v); break;
    case V_LEVEL:
        if ((level = log_level_parse(v)) < 0)
            config_bad(p, k->name, "error, warn, info or debug", v);
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
            config_bad(p, k->name, "rss, uss or pss", v);
        break;
    case V_LISTEN_LIST: set_listen_list(p, k, base, v); break;
    case V_ADDR:
        if (parse_addr(p, k, v, field) == 0)
            *(bool *)((char *)base + k->aux) = true;
        break;
    case V_MEMLIMIT: set_memlimit(p, k, base, v); break;
    }
}

/* Values written back (config_walk): each as config_set_value reads it. */

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
                       ? NULL
                       : t;
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
        snprintf(num, sizeof(num), "%.*f",
                 decimals < 0     ? 0
                 : decimals > 340 ? 340
                                  : decimals,
                 d);
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

/* See config_int.h. */
char *config_value_text(const struct keydef *k, const void *base)
{
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    static const char *const metrics[] = {"rss", "uss", "pss"};
    const void *field = (const char *)base + k->off;
    const char *s;
    char *t = NULL;
    int level;

    switch (k->type) {
    case V_U32:
    case V_WORKERS: return asprintf(&t, "%u", *(const uint32_t *)field) < 0 ? NULL : t;
    case V_U64:
        return asprintf(&t, "%llu", (unsigned long long)*(const uint64_t *)field) < 0
                   ? NULL
                   : t;
    case V_BOOL: return strdup(*(const bool *)field ? "true" : "false");
    case V_DURATION: return duration_text(*(const double *)field);
    case V_SIZE: return size_text(*(const uint64_t *)field);
    case V_STRING:
    case V_ERROR_LOG:
    case V_ACCESS_LOG:
        s = *(char *const *)field;
        return s != NULL ? strdup(s) : k->type == V_ACCESS_LOG ? strdup("off") : NULL;
    case V_LEVEL:
        level = *(const int *)field;
        return strdup(levels[level < LOG_ERROR   ? LOG_ERROR
                             : level > LOG_DEBUG ? LOG_DEBUG
                                                 : level]);
    case V_METRIC: return strdup(metrics[*(const enum memory_metric *)field]);
    case V_LISTEN_LIST:
        return addr_list_text(*(struct listen_addr *const *)field,
                              *(const size_t *)((const char *)base + k->aux));
    case V_ADDR:
        return *(const bool *)((const char *)base + k->aux)
                   ? strdup(((const struct listen_addr *)field)->text)
                   : NULL;
    case V_MEMLIMIT: return memlimit_text((const void *)((const char *)base + k->aux));
    }
    return NULL;
}
