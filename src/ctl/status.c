/*
 * status.c - `preforkctl status`: the master line, one table row per live
 * worker and the recycle counts by reason, from GET /stats (or /stats as
 * is with --json); and finding the master's pid. Runs in preforkctl only.
 * Convention: see ctl.h.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* "512", "14.2K", "3.0M", "1.1G"; signed when sign is set ("+1.5M"). */
static const char *human_bytes(double v, bool sign, char *b, size_t len)
{
    static const char units[] = " KMGT";
    double a = fabs(v);
    int u = 0;

    while (a >= 1024 && u < 4) {
        a /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(b, len, "%s%.0f", sign && v > 0 ? "+" : v < 0 ? "-" : "", a);
    else
        snprintf(b, len, "%s%.1f%c", sign && v > 0 ? "+" : v < 0 ? "-" : "", a, units[u]);
    return b;
}

/* "42s", "5m07s", "3h02m", "2d04h". */
static const char *human_age(double s, char *b, size_t len)
{
    long t = s > 0 ? (long)s : 0;

    if (t < 60)
        snprintf(b, len, "%lds", t);
    else if (t < 3600)
        snprintf(b, len, "%ldm%02lds", t / 60, t % 60);
    else if (t < 86400)
        snprintf(b, len, "%ldh%02ldm", t / 3600, t % 3600 / 60);
    else
        snprintf(b, len, "%ldd%02ldh", t / 86400, t % 86400 / 3600);
    return b;
}

pid_t ctl_master_pid(const struct ctl *c, char *why, size_t wlen)
{
    char swhy[CTL_WHY] = "";
    int fail;
    struct json *j = c->have_admin ? ctl_stats(c, NULL, &fail, swhy, sizeof(swhy)) : NULL;
    pid_t pid;

    if (j != NULL) {
        pid = (pid_t)json_number(json_get(j, "master"), "pid", -1);
        json_free(j);
        if (pid > 1)
            return pid;
        snprintf(swhy, sizeof(swhy), "/stats has no master pid");
    }
    if (c->pidfile == NULL) {
        snprintf(why, wlen, "%s%sno [server] pidfile in %s", swhy, *swhy ? "; " : "",
                 c->conf_path);
        return -1;
    }
    pid = ctl_read_pidfile(c->pidfile, why, wlen);
    if (pid > 0 && !ctl_alive(pid)) {
        snprintf(why, wlen, "pidfile %s names pid %d, which is not running", c->pidfile,
                 (int)pid);
        return -1;
    }
    return pid;
}

static void print_master(const struct json *m)
{
    char age[32];
    const char *rs = json_string(m, "reload_state", "none");

    printf("master %.0f: %s, %s, generation %.0f, up %s, %.0f of %.0f workers serving",
           json_number(m, "pid", 0), json_string(m, "mode", "?"),
           json_get(m, "ready") && json_get(m, "ready")->type == JSON_TRUE ? "ready"
                                                                           : "not ready",
           json_number(m, "generation", 0),
           human_age(json_number(m, "uptime", 0), age, sizeof(age)),
           json_number(m, "workers_serving", 0), json_number(m, "workers_wanted", 0));
    if (json_get(m, "reloads"))
        printf(", %.0f reloads (last: %s)", json_number(m, "reloads", 0), rs);
    printf("\n");
    if (strcmp(rs, "failed") == 0)
        printf("last reload refused: %s\n", json_string(m, "reload_error", "?"));
    if (json_number(m, "upgrade_pid", 0) > 0)
        printf("binary upgrade under way: new master %.0f\n",
               json_number(m, "upgrade_pid", 0));
    if (json_number(m, "boot_failures", 0) > 0)
        printf("workers failing to boot: %.0f in a row\n",
               json_number(m, "boot_failures", 0));
}

/* A growth slope: "-" while the daemon says null (too few samples yet). */
static const char *growth(const struct json *w, const char *key, char *b, size_t len)
{
    const struct json *v = json_get(w, key);

    if (v == NULL || v->type != JSON_NUMBER)
        return "-";
    return human_bytes(v->num, true, b, len);
}

static void print_worker(const struct json *w)
{
    char age[32], mem[16], g1[16], gh[16], phase[48];
    const char *reason = json_string(w, "reason", "none");

    snprintf(phase, sizeof(phase), "%s%s%s%s", json_string(w, "phase", "?"),
             strcmp(reason, "none") ? "(" : "", strcmp(reason, "none") ? reason : "",
             strcmp(reason, "none") ? ")" : "");
    printf("%4.0f %4.0f %8.0f %4.0f  %-9s %-24s %8s %9.0f %8s %9s %9s %5.0f\n",
           json_number(w, "slot", 0), json_number(w, "id", 0), json_number(w, "pid", 0),
           json_number(w, "generation", 0), json_string(w, "state", "?"), phase,
           human_age(json_number(w, "age", 0), age, sizeof(age)),
           json_number(w, "requests", 0),
           human_bytes(json_number(w, "memory", 0), false, mem, sizeof(mem)),
           growth(w, "growth_per_1k_requests", g1, sizeof(g1)),
           growth(w, "growth_per_hour", gh, sizeof(gh)),
           json_number(w, "connections", 0));
}

/* The heaps (when the app names its own) and the figures the app
 * publishes, one line per worker that has any: which heap grows, and,
 * for the wsgi module, which routes retain objects. */
static void print_figures(const struct json *ws)
{
    bool title = false;

    for (size_t i = 0; ws && ws->type == JSON_ARRAY && i < ws->n; i++) {
        const struct json *w = &ws->items[i], *h = json_get(w, "heaps");
        const struct json *app = json_get(w, "app");
        char b1[16], b2[16];
        bool named = h && h->type == JSON_OBJECT && h->n > 2;

        if (!named && !(app && app->type == JSON_ARRAY && app->n > 0))
            continue;
        if (!title)
            printf("\nworker figures (heap growth per 1000 requests; the app's own):\n");
        title = true;
        printf("%4.0f:", json_number(w, "id", 0));
        for (size_t k = 0; named && k + 1 < h->n; k += 2)
            printf(" %s heap %s (%s)%s", h->items[k].key,
                   human_bytes(h->items[k].num, false, b1, sizeof(b1)),
                   growth(h, h->items[k + 1].key, b2, sizeof(b2)),
                   k + 3 < h->n ? "," : "");
        for (size_t k = 0; app && app->type == JSON_ARRAY && k < app->n; k++) {
            const struct json *r = &app->items[k];
            const char *label = json_string(r, "label", "");
            printf("%s %s%s%s%s %g", k == 0 ? ";" : ",", json_string(r, "name", "?"),
                   *label ? " \"" : "", label, *label ? "\"" : "",
                   json_number(r, "value", 0));
        }
        printf("\n");
    }
}

/* One memory limit of the workers: "24.0M (auto)", "256.0M", "off". */
static const char *limit_text(const struct json *m, char *b, size_t len)
{
    char n[16];
    double bytes = json_number(m, "bytes", 0);
    const char *src = json_string(m, "source", "?");

    if (bytes > 0 && strcmp(src, "size") == 0)
        snprintf(b, len, "%s", human_bytes(bytes, false, n, sizeof(n)));
    else if (bytes > 0)
        snprintf(b, len, "%s (%s)", human_bytes(bytes, false, n, sizeof(n)),
                 strcmp(src, "clamped") == 0 ? "lowered below max_rss_hard"
                                             : json_string(m, "setting", "?"));
    else
        snprintf(b, len, "off");
    return b;
}

/* The cgroup's memory limit, when there is one, in one line. */
static void print_cgroup(const struct json *cg)
{
    const struct json *lim = json_get(cg, "memory_limit");
    char l[16], u[16], soft[64], hard[64];
    double kills = json_number(cg, "oom_kills", -1);

    if (lim == NULL || lim->type != JSON_NUMBER)
        return;
    printf("cgroup %s %s: memory limit %s", json_string(cg, "version", "?"),
           json_string(cg, "path", "?"), human_bytes(lim->num, false, l, sizeof(l)));
    if (json_number(cg, "memory_usage", -1) >= 0)
        printf(", in use %s",
               human_bytes(json_number(cg, "memory_usage", 0), false, u, sizeof(u)));
    if (kills >= 0)
        printf(", %.0f OOM kill%s", kills, kills == 1 ? "" : "s");
    printf("; max_rss %s, max_rss_hard %s\n",
           limit_text(json_get(cg, "max_rss"), soft, sizeof(soft)),
           limit_text(json_get(cg, "max_rss_hard"), hard, sizeof(hard)));
}

/* Responses since the start (the master keeps departed workers' counts),
 * and each upstream pool's counters: one line each. */
static void print_traffic(const struct json *j)
{
    const struct json *r = json_get(j, "responses"), *ups = json_get(j, "upstreams");

    if (r && r->type == JSON_OBJECT) {
        printf("\nresponses: %.0f (1xx %.0f, 2xx %.0f, 3xx %.0f, 4xx %.0f, 5xx %.0f)\n",
               json_number(r, "total", 0), json_number(r, "1xx", 0),
               json_number(r, "2xx", 0), json_number(r, "3xx", 0),
               json_number(r, "4xx", 0), json_number(r, "5xx", 0));
    }
    for (size_t i = 0; ups && ups->type == JSON_OBJECT && i < ups->n; i++) {
        const struct json *u = &ups->items[i];

        printf("upstream %s: %.0f open (%.0f idle), %.0f connections made, %.0f requests "
               "reused one, %.0f retried, %.0f failed, %.0f timed out\n",
               u->key, json_number(u, "open", 0), json_number(u, "idle", 0),
               json_number(u, "created", 0), json_number(u, "reused", 0),
               json_number(u, "retried", 0), json_number(u, "failed", 0),
               json_number(u, "timed_out", 0));
    }
}

static void print_table(const struct json *j)
{
    const struct json *ws = json_get(j, "workers"), *ret = json_get(j, "retired");

    print_master(json_get(j, "master"));
    print_cgroup(json_get(j, "cgroup"));
    printf("\n%4s %4s %8s %4s  %-9s %-24s %8s %9s %8s %9s %9s %5s\n", "SLOT", "ID", "PID",
           "GEN", "STATE", "PHASE", "AGE", "REQUESTS", "MEMORY", "GROW/1K", "GROW/H",
           "CONNS");
    for (size_t i = 0; ws && ws->type == JSON_ARRAY && i < ws->n; i++)
        print_worker(&ws->items[i]);
    print_figures(ws);
    if (ret && ret->type == JSON_OBJECT) {
        printf("\nretired:");
        for (size_t i = 0; i < ret->n; i++)
            printf(" %s %.0f%s", ret->items[i].key, ret->items[i].num,
                   i + 1 < ret->n ? "," : "");
        printf("\n");
    }
    print_traffic(j);
}

int ctl_status(struct ctl *c)
{
    char why[CTL_WHY], *raw = NULL;
    int fail;
    struct json *j = ctl_stats(c, c->json ? &raw : NULL, &fail, why, sizeof(why));

    if (j == NULL) {
        ctl_err("status: %s", why);
        return fail;
    }
    if (c->json)
        fputs(raw, stdout);
    else
        print_table(j);
    free(raw);
    json_free(j);
    return fflush(stdout) == 0 ? CTL_OK : CTL_FAILED;
}
