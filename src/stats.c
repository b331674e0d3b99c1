/*
 * stats.c - the master's state rendered for the admin endpoint: /stats
 * (JSON), /metrics (Prometheus text format 0.0.4) and /healthz. Runs only in
 * the master; reads the scoreboard and the master's worker table.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "recycle.h"
#include "master_int.h"
#include "memlimit.h"
#include "metrics.h"
#include "stats.h"

static const char *const state_names[] = {"empty", "starting", "serving", "retiring"};


/* A JSON string body: quotes, backslashes and control bytes escaped. */
static void json_escape(struct buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            buf_printf(b, "\\%c", c);
        else if (c < 0x20)
            buf_printf(b, "\\u%04x", c);
        else
            buf_append(b, s, 1);
    }
}

/* Workers that take requests now: serving, and not on their way out. */
static uint32_t serving_count(void)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < M.nslots; i++) {
        const struct worker *w = &M.w[i];
        struct slot *s = scoreboard_slot(M.sb, (int)i + 1);
        n += w->pid && SB_GET(s->state) == SLOT_SERVING &&
             (w->phase == PH_ACTIVE || w->phase == PH_WANTS ||
              w->phase == PH_REPLACING || w->phase == PH_OLD);
    }
    return n;
}

/* A number, or null when it would mean nothing yet. */
static const char *json_num(double v, bool ok, char *buf)
{
    if (!ok)
        return "null";
    snprintf(buf, 32, "%.0f", v);
    return buf;
}

/* "heaps": malloc's bytes in use and the app's own heap, with their
 * growth per 1000 requests (null while unknown). */
static void json_heaps(struct buf *b, struct slot *s)
{
    struct growth c = account_growth_of(s, GROWTH_C_HEAP, 0);
    char k[32];

    buf_printf(b, "\"heaps\": {\"c\": %" PRIu64 ", \"c_growth_per_1k_requests\": %s",
               SB_GET(s->c_heap), json_num(c.per_1k_requests, c.by_requests_ok, k));
    if (s->app_heap_name[0] != '\0') {
        struct growth a = account_growth_of(s, GROWTH_APP_HEAP, 0);
        char name[sizeof(s->app_heap_name)];

        snprintf(name, sizeof(name), "%s", s->app_heap_name);
        buf_puts(b, ", \"");
        json_escape(b, name);
        buf_printf(b, "\": %" PRIu64 ", \"", SB_GET(s->app_heap));
        json_escape(b, name);
        buf_printf(b, "_growth_per_1k_requests\": %s",
                   json_num(a.per_1k_requests, a.by_requests_ok, k));
    }
    buf_puts(b, "}, ");
}

/* "app": the figures the app publishes (pf_metric_set). */
static void json_app(struct buf *b, struct slot *s)
{
    struct metrics_row r;
    bool any = false;

    buf_puts(b, "\"app\": [");
    for (int i = 0; i < SB_METRICS; i++) {
        if (!metrics_read(s, i, &r))
            continue;
        buf_printf(b, "%s{\"name\": \"", any ? ", " : "");
        json_escape(b, r.name);
        buf_puts(b, "\", \"label\": \"");
        json_escape(b, r.label);
        buf_printf(b, isfinite(r.value) ? "\", \"value\": %.17g}" : "\", \"value\": null}",
                   r.value);
        any = true;
    }
    buf_puts(b, "]");
}

static void json_worker(struct buf *b, uint32_t i, ev_tstamp now, bool *first)
{
    char k1[32], k2[32], k3[32];
    const struct worker *w = &M.w[i];
    struct slot *s = scoreboard_slot(M.sb, (int)i + 1);
    uint32_t accept_us = SB_GET(s->first_accept_us);
    struct growth g = account_growth(s, M.cfg->recycle.max_rss);
    uint32_t st = SB_GET(s->state);

    snprintf(k3, sizeof(k3), "%.3f", accept_us / 1000.0);
    buf_printf(b, "%s\n    {\"slot\": %u, \"id\": %d, \"pid\": %d, \"generation\": %u, "
            "\"state\": \"%s\", \"phase\": \"%s\", \"reason\": \"%s\", "
            "\"age\": %.3f, \"requests\": %" PRIu64 ", \"request_limit\": %" PRIu64
            ", \"connections\": %u, \"rss\": %" PRIu64 ", \"uss\": %" PRIu64
            ", \"pss\": %" PRIu64 ", \"memory\": %" PRIu64 ", \"loop_lag_us\": %u, "
            "\"growth_per_1k_requests\": %s, \"growth_per_hour\": %s, "
            "\"eta_max_rss\": %.1f, \"boot_ms\": %.3f, \"first_accept_ms\": %s, ",
            *first ? "" : ",", i + 1, w->id, (int)w->pid, w->generation,
            st < 4 ? state_names[st] : "?", master_phase_name(w->phase),
            recycle_reason_name(w->reason), now - w->spawned,
            SB_GET(s->requests), SB_GET(s->request_limit), SB_GET(s->connections),
            SB_GET(s->rss), SB_GET(s->uss), SB_GET(s->pss), SB_GET(s->mem),
            SB_GET(s->loop_lag_us), json_num(g.per_1k_requests, g.by_requests_ok, k1),
            json_num(g.per_hour, g.by_time_ok, k2), g.eta,
            SB_GET(s->boot_us) / 1000.0,
            accept_us > 0 ? k3 : "null");
    json_heaps(b, s);
    json_app(b, s);
    buf_puts(b, "}");
    *first = false;
}

/* A mold of the master's (none: nothing): pid, generation, whether it has
 * loaded the app, and its role in a reload. */
static void json_mold(struct buf *b, const struct mold_proc *m, const char *role,
                      bool *first)
{
    if (m->pid <= 0)
        return;
    buf_printf(b, "%s{\"pid\": %d, \"generation\": %u, \"role\": \"%s\", "
            "\"ready\": %s, \"age\": %.3f}", *first ? "" : ", ", (int)m->pid,
            m->generation, role, m->ready ? "true" : "false",
            ev_now(M.loop) - m->started);
    *first = false;
}

/* A cgroup figure: a number, or null when it cannot be read. */
static const char *json_u64(int rc, uint64_t v, char *buf)
{
    if (rc < 0)
        return "null";
    snprintf(buf, 32, "%" PRIu64, v);
    return buf;
}

/* "max_rss": {"bytes": N, "setting": "auto", "source": "auto"}. */
static void json_memlimit(struct buf *b, const char *key, uint64_t bytes,
                          const struct config_memlimit *m)
{
    buf_printf(b, "\"%s\": {\"bytes\": %" PRIu64 ", \"setting\": \"", key, bytes);
    json_escape(b, m->line > 0 ? m->text : "0");
    buf_printf(b, "\", \"source\": \"%s\"}", memlimit_source_name(m->source));
}

/* "cgroup": the master's memory cgroup, its limit, usage and OOM kills,
 * and the effective memory limits of the workers (memlimit.c). */
static void json_cgroup(struct buf *b)
{
    const struct cgroup *cg = &M.cgroup;
    uint64_t usage = 0, kills = 0;
    int urc = cgroup_usage(cg, &usage), krc = cgroup_oom_kills(cg, &kills);
    char n1[32], n2[32], n3[32], n4[32];

    buf_puts(b, ",\n  \"cgroup\": {\"version\": ");
    if (cg->version == CGROUP_NONE) {
        buf_puts(b, "null, \"path\": null");
    } else {
        buf_printf(b, "\"%s\", \"path\": \"", cgroup_version_name(cg->version));
        json_escape(b, cg->path);
        buf_puts(b, "\"");
    }
    buf_printf(b, ", \"memory_limit\": %s, \"memory_usage\": %s, \"oom_kills\": %s, "
               "\"why_no_limit\": \"", json_u64(cg->limit > 0 ? 0 : -1, cg->limit, n1),
               json_u64(urc, usage, n2), json_u64(krc, kills, n3));
    json_escape(b, cg->limit > 0 ? "" : cg->why);
    buf_printf(b, "\", \"share_per_worker\": %s, ",
               json_u64(M.cfg->recycle.share > 0 ? 0 : -1, M.cfg->recycle.share, n4));
    json_memlimit(b, "max_rss", M.cfg->recycle.max_rss, &M.cfg->recycle.max_rss_set);
    buf_puts(b, ", ");
    json_memlimit(b, "max_rss_hard", M.cfg->recycle.max_rss_hard,
                  &M.cfg->recycle.max_rss_hard_set);
    buf_puts(b, "}");
}

static void render_stats(struct buf *b)
{
    ev_tstamp now = ev_now(M.loop);
    bool first = true;

    buf_printf(b, "{\n  \"master\": {\"pid\": %d, \"uptime\": %.3f, \"generation\": %u, "
            "\"mode\": \"%s\", \"ready\": %s, \"workers_wanted\": %u, "
            "\"workers_serving\": %u, \"max_workers\": %u, \"max_concurrent_recycles\": %u, "
            "\"boot_failures\": %u, \"reloads\": %u, \"reload_state\": \"%s\", "
            "\"reload_error\": \"",
            (int)getpid(), now - M.started, M.generation,
            M.mode == RUNNING ? "running" : "stopping", M.ready ? "true" : "false",
            M.target, serving_count(), M.cfg->server.max_workers,
            M.cfg->recycle.max_concurrent_recycles,
            M.boot_failures, M.reloads, master_reload_state_name(M.reload_state));
    json_escape(b, M.reload_error);
    buf_printf(b, "\", \"upgrade_pid\": %d},\n  \"molds\": [", (int)M.upgrade_pid);
    json_mold(b, &M.mold, "current", &first);
    json_mold(b, &M.next_mold, "loading", &first);
    json_mold(b, &M.old_mold, "leaving", &first);
    first = true;
    buf_printf(b, "],\n  \"retired\": {");
    for (int r = 1; r < RETIRE_NREASONS; r++)
        buf_printf(b, "%s\"%s\": %" PRIu64, r > 1 ? ", " : "",
                recycle_reason_name((enum retire_reason)r), M.account.retired[r]);
    buf_printf(b, "},\n  \"workers\": [");
    for (uint32_t i = 0; i < M.nslots; i++)
        if (M.w[i].pid)
            json_worker(b, i, now, &first);
    buf_printf(b, "\n  ]");
    json_cgroup(b); /* last: its max_rss keys do not shadow the counts above */
    buf_printf(b, "\n}\n");
}

static void metrics_heaps(struct buf *b);
static void metrics_app(struct buf *b);

/* The cgroup's figures that can be read now, and the effective limits. */
static void metrics_cgroup(struct buf *b)
{
    uint64_t v;

    if (M.cgroup.limit > 0)
        buf_printf(b, "# HELP preforkd_cgroup_memory_limit_bytes Memory limit of the "
                   "master's cgroup (the smallest over it and its ancestors).\n"
                   "# TYPE preforkd_cgroup_memory_limit_bytes gauge\n"
                   "preforkd_cgroup_memory_limit_bytes %" PRIu64 "\n", M.cgroup.limit);
    if (cgroup_usage(&M.cgroup, &v) == 0)
        buf_printf(b, "# HELP preforkd_cgroup_memory_usage_bytes Memory in use in the "
                   "master's cgroup.\n# TYPE preforkd_cgroup_memory_usage_bytes gauge\n"
                   "preforkd_cgroup_memory_usage_bytes %" PRIu64 "\n", v);
    if (cgroup_oom_kills(&M.cgroup, &v) == 0)
        buf_printf(b, "# HELP preforkd_oom_kills_total Processes of the master's cgroup "
                   "killed by the kernel's OOM killer.\n# TYPE preforkd_oom_kills_total "
                   "counter\npreforkd_oom_kills_total %" PRIu64 "\n", v);
    buf_printf(b, "# HELP preforkd_max_rss_bytes Effective max_rss of the current "
               "generation's workers (0 = off).\n# TYPE preforkd_max_rss_bytes gauge\n"
               "preforkd_max_rss_bytes %" PRIu64 "\n"
               "# HELP preforkd_max_rss_hard_bytes Effective max_rss_hard (0 = off).\n"
               "# TYPE preforkd_max_rss_hard_bytes gauge\npreforkd_max_rss_hard_bytes %"
               PRIu64 "\n", M.cfg->recycle.max_rss, M.cfg->recycle.max_rss_hard);
}

static void render_metrics(struct buf *b)
{
    buf_printf(b, "# HELP preforkd_workers_serving Workers accepting requests.\n"
            "# TYPE preforkd_workers_serving gauge\npreforkd_workers_serving %u\n"
            "# HELP preforkd_workers_wanted Workers the master keeps.\n"
            "# TYPE preforkd_workers_wanted gauge\npreforkd_workers_wanted %u\n"
            "# HELP preforkd_workers_retired_total Workers gone, by reason.\n"
            "# TYPE preforkd_workers_retired_total counter\n",
            serving_count(), M.target);
    for (int r = 1; r < RETIRE_NREASONS; r++)
        buf_printf(b, "preforkd_workers_retired_total{reason=\"%s\"} %" PRIu64 "\n",
                recycle_reason_name((enum retire_reason)r), M.account.retired[r]);
    /* One family after the other: the text format wants each together. */
    buf_printf(b, "# HELP preforkd_worker_requests Requests served by a live worker.\n"
            "# TYPE preforkd_worker_requests gauge\n");
    for (uint32_t i = 0; i < M.nslots; i++)
        if (M.w[i].pid > 0) /* none, or asked of the mold and not forked yet */
            buf_printf(b, "preforkd_worker_requests{worker=\"%d\",pid=\"%d\"} %" PRIu64 "\n",
                       M.w[i].id, (int)M.w[i].pid,
                       SB_GET(scoreboard_slot(M.sb, (int)i + 1)->requests));
    buf_printf(b, "# HELP preforkd_worker_memory_bytes A live worker's memory (memory_metric).\n"
            "# TYPE preforkd_worker_memory_bytes gauge\n");
    for (uint32_t i = 0; i < M.nslots; i++)
        if (M.w[i].pid > 0)
            buf_printf(b, "preforkd_worker_memory_bytes{worker=\"%d\",pid=\"%d\"} %" PRIu64 "\n",
                       M.w[i].id, (int)M.w[i].pid,
                       SB_GET(scoreboard_slot(M.sb, (int)i + 1)->mem));
    metrics_heaps(b);
    metrics_app(b);
    metrics_cgroup(b);
}

/* A label value in the text format: \\, \" and \\n escaped. */
static void prom_escape(struct buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            buf_printf(b, "\\%c", *s);
        else if (*s == '\n')
            buf_puts(b, "\\n");
        else
            buf_append(b, s, 1);
    }
}

static void metrics_heaps(struct buf *b)
{
    buf_puts(b, "# HELP preforkd_worker_heap_bytes A live worker's heaps: malloc's bytes "
             "in use (c) and the app's own (python, for the wsgi module).\n"
             "# TYPE preforkd_worker_heap_bytes gauge\n");
    for (uint32_t i = 0; i < M.nslots; i++) {
        struct slot *s = scoreboard_slot(M.sb, (int)i + 1);
        char name[sizeof(s->app_heap_name)];

        if (M.w[i].pid <= 0)
            continue;
        buf_printf(b, "preforkd_worker_heap_bytes{worker=\"%d\",pid=\"%d\",heap=\"c\"} %"
                   PRIu64 "\n", M.w[i].id, (int)M.w[i].pid, SB_GET(s->c_heap));
        snprintf(name, sizeof(name), "%s", s->app_heap_name);
        if (name[0] == '\0')
            continue;
        buf_printf(b, "preforkd_worker_heap_bytes{worker=\"%d\",pid=\"%d\",heap=\"",
                   M.w[i].id, (int)M.w[i].pid);
        prom_escape(b, name);
        buf_printf(b, "\"} %" PRIu64 "\n", SB_GET(s->app_heap));
    }
}

/* preforkd_app_NAME{worker,pid,label}: each name's rows from every worker
 * together, under one TYPE line. */
static void metrics_app(struct buf *b)
{
    char done[SB_METRICS * 4][32];
    int ndone = 0;

    for (uint32_t i = 0; i < M.nslots; i++) {
        for (int k = 0; M.w[i].pid > 0 && k < SB_METRICS; k++) {
            struct metrics_row first;
            bool seen = false;

            if (!metrics_read(scoreboard_slot(M.sb, (int)i + 1), k, &first))
                continue;
            for (int d = 0; d < ndone && !seen; d++)
                seen = strcmp(done[d], first.name) == 0;
            if (seen || ndone == (int)(sizeof(done) / sizeof(done[0])))
                continue;
            snprintf(done[ndone++], sizeof(done[0]), "%s", first.name);
            buf_printf(b, "# HELP preforkd_app_%s Published by the app (pf_metric_set).\n"
                       "# TYPE preforkd_app_%s gauge\n", first.name, first.name);
            for (uint32_t j = i; j < M.nslots; j++) {
                for (int m = 0; M.w[j].pid > 0 && m < SB_METRICS; m++) {
                    struct metrics_row r;
                    if (!metrics_read(scoreboard_slot(M.sb, (int)j + 1), m, &r) ||
                        strcmp(r.name, first.name) != 0 || !isfinite(r.value))
                        continue;
                    buf_printf(b, "preforkd_app_%s{worker=\"%d\",pid=\"%d\",label=\"",
                               r.name, M.w[j].id, (int)M.w[j].pid);
                    prom_escape(b, r.label);
                    buf_printf(b, "\"} %.17g\n", r.value);
                }
            }
        }
    }
}

int stats_render(const struct admin_req *rq, struct buf *out, const char **ctype)
{
    const char *path = rq->path;

    if (strncmp(path, "/workers/", 9) == 0)
        return relay_render(rq, out);
    if (strcmp(rq->method, "POST") == 0) {
        buf_puts(out, "POST is for /workers/ID/...: this is read with GET\n");
        return 405;
    }
    if (strcmp(path, "/stats") == 0) {
        *ctype = "application/json";
        render_stats(out);
        return 200;
    }
    if (strcmp(path, "/metrics") == 0) {
        *ctype = "text/plain; version=0.0.4";
        render_metrics(out);
        return 200;
    }
    if (strcmp(path, "/healthz") == 0) {
        /* Healthy: running, something serving, not in a crash loop. */
        bool ok = M.mode == RUNNING && serving_count() > 0 && M.boot_failures < 3;
        buf_puts(out, ok ? "ok\n" : "unhealthy\n");
        return ok ? 200 : 503;
    }
    buf_puts(out, "not found: try /stats, /metrics, /healthz\n");
    return 404;
}
