/*
 * stats.c - the master's state rendered for the admin endpoint: /stats
 * (JSON), /metrics (Prometheus text format 0.0.4) and /healthz. Runs only in
 * the master; reads the scoreboard, the master's worker table and what it
 * keeps of departed workers (account.c): the counters it shows are those
 * plus the live workers', so they never go back.
 */
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "recycle.h"
#include "master_int.h"
#include "memlimit.h"
#include "metrics.h"
#include "paths.h"
#include "preforkd.h"
#include "stats.h"

/* The names /stats and preforkctl show (master_int.h). */
const char *master_phase_name(enum phase p)
{
    static const char *const names[] = {"active",   "wants_recycle", "replacing",
                                        "retiring", "killing",       "old_generation"};
    return names[p];
}

const char *master_reload_state_name(enum reload_state s)
{
    static const char *const names[] = {"none", "in_progress", "done", "failed"};
    return names[s];
}

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
static uint32_t serving_count(const struct master *ms)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < ms->nslots; i++) {
        const struct worker *w = &ms->w[i];
        struct slot *s = scoreboard_slot(ms->sb, i);
        n += w->pid && SB_GET(s->state) == SLOT_SERVING &&
             (w->phase == PH_ACTIVE || w->phase == PH_WANTS || w->phase == PH_REPLACING ||
              w->phase == PH_OLD);
    }
    return n;
}

/* Every response so far: the departed workers' (kept by the master) and
 * the live ones', with the buckets made cumulative (each counts those at
 * or under its bound, as Prometheus' le does). */
static void http_sums(const struct master *ms, struct http_sums *h)
{
    *h = ms->account.http;
    for (uint32_t i = 0; i < ms->nslots; i++)
        if (ms->w[i].pid != 0)
            account_add_http(h, scoreboard_slot(ms->sb, i));
    for (int i = 1; i <= SB_DURATION_BOUNDS; i++)
        h->buckets[i] += h->buckets[i - 1];
}

/* Bucket i's bound in seconds as the text says it: "0.005" ... "+Inf". */
static const char *bound_text(int i, char *buf, size_t len)
{
    if (i == SB_DURATION_BOUNDS)
        return "+Inf";
    snprintf(buf, len, "%g", scoreboard_duration_bounds_us[i] / 1e6);
    return buf;
}

/* Every upstream's counters: the current file's sections first (zero
 * until used), then any a departed generation had; departed workers'
 * counts and the live ones'. The caller frees t. */
static void upstream_sums(const struct master *ms, struct upstream_table *t)
{
    for (size_t i = 0; i < ms->cfg->nupstreams; i++)
        account_upstream(t, ms->cfg->upstreams[i].name);
    account_merge_upstreams(t, &ms->account.ups);
    for (uint32_t i = 0; i < ms->nslots; i++)
        if (ms->w[i].pid != 0)
            account_add_upstreams(t, scoreboard_slot(ms->sb, i), true);
}

static uint64_t failed_sum(const struct upstream_sums *u)
{
    uint64_t n = 0;

    for (int k = 0; k < SB_FAIL_KINDS; k++)
        n += u->failed[k];
    return n;
}

static const char *const fail_names[SB_FAIL_KINDS] = {"connect", "reset", "protocol",
                                                      "busy"};

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
        buf_printf(b,
                   isfinite(r.value) ? "\", \"value\": %.17g}" : "\", \"value\": null}",
                   r.value);
        any = true;
    }
    buf_puts(b, "]");
}

/* The object of the worker in slot i. Its "slot" is shown 1-based (i + 1),
 * as /stats and preforkctl status always have. */
static void json_worker(const struct master *ms, struct buf *b, uint32_t i, ev_tstamp now,
                        bool *first)
{
    char k1[32], k2[32], k3[32];
    const struct worker *w = &ms->w[i];
    struct slot *s = scoreboard_slot(ms->sb, i);
    uint32_t accept_us = SB_GET(s->first_accept_us);
    struct growth g = account_growth(s, SB_GET(s->max_rss)); /* its own limit */
    uint32_t st = SB_GET(s->state);

    snprintf(k3, sizeof(k3), "%.3f", accept_us / 1000.0);
    buf_printf(b,
               "%s\n    {\"slot\": %u, \"id\": %d, \"pid\": %d, \"generation\": %u, "
               "\"state\": \"%s\", \"phase\": \"%s\", \"reason\": \"%s\", "
               "\"age\": %.3f, \"requests\": %" PRIu64 ", \"request_limit\": %" PRIu64
               ", \"connections\": %u, \"rss\": %" PRIu64 ", \"uss\": %" PRIu64
               ", \"pss\": %" PRIu64 ", \"memory\": %" PRIu64 ", \"loop_lag_us\": %u, "
               "\"growth_per_1k_requests\": %s, \"growth_per_hour\": %s, "
               "\"eta_max_rss\": %.1f, \"boot_ms\": %.3f, \"first_accept_ms\": %s, ",
               *first ? "" : ",", i + 1, w->id, (int)w->pid, w->generation,
               st < 4 ? state_names[st] : "?", master_phase_name(w->phase),
               recycle_reason_name(w->reason), now - w->spawned, SB_GET(s->requests),
               SB_GET(s->request_limit), SB_GET(s->connections), SB_GET(s->rss),
               SB_GET(s->uss), SB_GET(s->pss), SB_GET(s->mem), SB_GET(s->loop_lag_us),
               json_num(g.per_1k_requests, g.by_requests_ok, k1),
               json_num(g.per_hour, g.by_time_ok, k2), g.eta, SB_GET(s->boot_us) / 1000.0,
               accept_us > 0 ? k3 : "null");
    json_heaps(b, s);
    json_app(b, s);
    buf_puts(b, "}");
    *first = false;
}

/* A mold of the master's (none: nothing): pid, generation, whether it has
 * loaded the app, and its role in a reload. */
static void json_mold(const struct master *ms, struct buf *b, const struct mold_proc *m,
                      const char *role, bool *first)
{
    if (m->pid <= 0)
        return;
    buf_printf(b,
               "%s{\"pid\": %d, \"generation\": %u, \"role\": \"%s\", "
               "\"ready\": %s, \"age\": %.3f}",
               *first ? "" : ", ", (int)m->pid, m->generation, role,
               m->ready ? "true" : "false", ev_now(ms->loop) - m->started);
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
static void json_cgroup(const struct master *ms, struct buf *b)
{
    const struct cgroup *cg = &ms->cgroup;
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
    buf_printf(b,
               ", \"memory_limit\": %s, \"memory_usage\": %s, \"oom_kills\": %s, "
               "\"why_no_limit\": \"",
               json_u64(cg->limit > 0 ? 0 : -1, cg->limit, n1), json_u64(urc, usage, n2),
               json_u64(krc, kills, n3));
    json_escape(b, cg->limit > 0 ? "" : cg->why);
    buf_printf(b, "\", \"share_per_worker\": %s, ",
               json_u64(ms->cfg->recycle.share > 0 ? 0 : -1, ms->cfg->recycle.share, n4));
    json_memlimit(b, "max_rss", ms->cfg->recycle.max_rss, &ms->cfg->recycle.max_rss_set);
    buf_puts(b, ", ");
    json_memlimit(b, "max_rss_hard", ms->cfg->recycle.max_rss_hard,
                  &ms->cfg->recycle.max_rss_hard_set);
    buf_puts(b, "}");
}

/* "responses": every worker's since the start, by status class, and
 * their durations: the sum and the cumulative count under each bound. */
static void json_responses(const struct master *ms, struct buf *b)
{
    struct http_sums h;
    uint64_t total = 0;
    char le[16];

    http_sums(ms, &h);
    for (int i = 0; i < SB_STATUS_CLASSES; i++)
        total += h.by_class[i];
    buf_printf(b, ",\n  \"responses\": {\"total\": %" PRIu64, total);
    for (int i = 0; i < SB_STATUS_CLASSES; i++)
        buf_printf(b, ", \"%dxx\": %" PRIu64, i + 1, h.by_class[i]);
    buf_printf(b, ", \"duration_seconds\": {\"sum\": %.6f, \"le\": {",
               h.duration_us / 1e6);
    for (int i = 0; i <= SB_DURATION_BOUNDS; i++)
        buf_printf(b, "%s\"%s\": %" PRIu64, i ? ", " : "", bound_text(i, le, sizeof(le)),
                   h.buckets[i]);
    buf_puts(b, "}}}");
}

/* "upstreams": {"NAME": {...}}, each pool's counters over every worker. */
static void json_upstreams(const struct master *ms, struct buf *b)
{
    struct upstream_table t = {0};

    upstream_sums(ms, &t);
    buf_puts(b, ",\n  \"upstreams\": {");
    for (size_t i = 0; i < t.n; i++) {
        const struct upstream_sums *u = &t.v[i];

        buf_printf(b, "%s\n    \"", i ? "," : "");
        json_escape(b, u->name);
        buf_printf(b,
                   "\": {\"open\": %" PRIu64 ", \"idle\": %" PRIu64
                   ", \"created\": %" PRIu64 ", \"reused\": %" PRIu64
                   ", \"retried\": %" PRIu64 ", \"failed\": %" PRIu64
                   ", \"failed_by_kind\": {",
                   u->open, u->idle, u->created, u->reused, u->retried, failed_sum(u));
        for (int k = 0; k < SB_FAIL_KINDS; k++)
            buf_printf(b, "%s\"%s\": %" PRIu64, k ? ", " : "", fail_names[k],
                       u->failed[k]);
        buf_printf(b, "}, \"timed_out\": %" PRIu64 "}", u->timed_out);
    }
    buf_puts(b, t.n ? "\n  }" : "}");
    account_free_upstreams(&t);
}

static void render_stats(const struct master *ms, struct buf *b)
{
    ev_tstamp now = ev_now(ms->loop);
    bool first = true;

    buf_printf(
        b,
        "{\n  \"master\": {\"pid\": %d, \"uptime\": %.3f, \"generation\": %u, "
        "\"mode\": \"%s\", \"ready\": %s, \"workers_wanted\": %u, "
        "\"workers_serving\": %u, \"max_workers\": %u, \"max_concurrent_recycles\": %u, "
        "\"boot_failures\": %u, \"reloads\": %u, \"reload_state\": \"%s\", "
        "\"reload_error\": \"",
        (int)getpid(), now - ms->started, ms->generation,
        ms->mode == RUNNING ? "running" : "stopping", ms->ready ? "true" : "false",
        ms->target, serving_count(ms), ms->cfg->server.max_workers,
        ms->cfg->recycle.max_concurrent_recycles, ms->boot_failures, ms->reloads,
        master_reload_state_name(ms->reload_state));
    json_escape(b, ms->reload_error);
    buf_printf(b, "\", \"upgrade_pid\": %d},\n  \"molds\": [", (int)ms->heir_pid);
    json_mold(ms, b, &ms->mold, "current", &first);
    json_mold(ms, b, &ms->next_mold, "loading", &first);
    json_mold(ms, b, &ms->old_mold, "leaving", &first);
    first = true;
    buf_printf(b, "],\n  \"retired\": {");
    for (int r = 1; r < RETIRE_NREASONS; r++)
        buf_printf(b, "%s\"%s\": %" PRIu64, r > 1 ? ", " : "",
                   recycle_reason_name((enum retire_reason)r), ms->account.retired[r]);
    buf_printf(b, "},\n  \"workers\": [");
    for (uint32_t i = 0; i < ms->nslots; i++)
        if (ms->w[i].pid)
            json_worker(ms, b, i, now, &first);
    buf_printf(b, "\n  ]");
    json_responses(ms, b);
    json_upstreams(ms, b);
    json_cgroup(ms, b); /* last: its max_rss keys do not shadow the counts above */
    buf_printf(b, "\n}\n");
}

static void metrics_heaps(const struct master *ms, struct buf *b, const uint32_t *order,
                          uint32_t n);
static void metrics_app(const struct master *ms, struct buf *b, const uint32_t *order,
                        uint32_t n);
static void prom_escape(struct buf *b, const char *s);

/* The cgroup's figures that can be read now, and the effective limits. */
static void metrics_cgroup(const struct master *ms, struct buf *b)
{
    uint64_t v;

    if (ms->cgroup.limit > 0)
        buf_printf(b,
                   "# HELP preforkd_cgroup_memory_limit_bytes Memory limit of the "
                   "master's cgroup (the smallest over it and its ancestors).\n"
                   "# TYPE preforkd_cgroup_memory_limit_bytes gauge\n"
                   "preforkd_cgroup_memory_limit_bytes %" PRIu64 "\n",
                   ms->cgroup.limit);
    if (cgroup_usage(&ms->cgroup, &v) == 0)
        buf_printf(b,
                   "# HELP preforkd_cgroup_memory_usage_bytes Memory in use in the "
                   "master's cgroup.\n# TYPE preforkd_cgroup_memory_usage_bytes gauge\n"
                   "preforkd_cgroup_memory_usage_bytes %" PRIu64 "\n",
                   v);
    if (cgroup_oom_kills(&ms->cgroup, &v) == 0)
        buf_printf(b,
                   "# HELP preforkd_oom_kills_total Processes of the master's cgroup "
                   "killed by the kernel's OOM killer.\n# TYPE preforkd_oom_kills_total "
                   "counter\npreforkd_oom_kills_total %" PRIu64 "\n",
                   v);
    buf_printf(
        b,
        "# HELP preforkd_max_rss_bytes Effective max_rss of the current "
        "generation's workers (0 = off).\n# TYPE preforkd_max_rss_bytes gauge\n"
        "preforkd_max_rss_bytes %" PRIu64 "\n"
        "# HELP preforkd_max_rss_hard_bytes Effective max_rss_hard (0 = off).\n"
        "# TYPE preforkd_max_rss_hard_bytes gauge\npreforkd_max_rss_hard_bytes %" PRIu64
        "\n",
        ms->cfg->recycle.max_rss, ms->cfg->recycle.max_rss_hard);
}

/* The workers that stand for their ids in /metrics' per-worker series,
 * into order (indexes of ms->w, by id); returns how many. The series are
 * labelled by worker id, not pid, so that they go on across recycles.
 * While a replacement starts beside the worker it replaces (in another
 * slot, with the same id), or a reload's new generation beside the old
 * one, two processes share an id: the serving one stands for it, and of
 * two serving, the newer. Each slot's state is read once, so a scrape
 * never shows an id twice. */
static uint32_t pick_ids(const struct master *ms, uint32_t *order)
{
    bool *serving = calloc(ms->nslots, sizeof(*serving));
    uint32_t n = 0;

    for (uint32_t i = 0; serving != NULL && i < ms->nslots; i++)
        serving[i] = SB_GET(scoreboard_slot(ms->sb, i)->state) == SLOT_SERVING;
    for (uint32_t i = 0; i < ms->nslots; i++) {
        const struct worker *w = &ms->w[i];
        bool stands = w->pid > 0; /* not none, nor asked of the mold and unforked */

        for (uint32_t k = 0; stands && k < ms->nslots; k++) {
            const struct worker *o = &ms->w[k];
            bool ws = serving != NULL && serving[i], os = serving != NULL && serving[k];

            if (k == i || o->pid <= 0 || o->id != w->id)
                continue;
            if (os != ws)
                stands = ws;
            else
                stands = w->spawned > o->spawned || (w->spawned == o->spawned && i > k);
        }
        if (stands) { /* insertion by id: a handful of workers */
            uint32_t at = n++;

            for (; at > 0 && ms->w[order[at - 1]].id > w->id; at--)
                order[at] = order[at - 1];
            order[at] = i;
        }
    }
    free(serving);
    return n;
}

/* preforkd_requests_total by status class and the duration histogram:
 * every worker's since the master started, recycled ones' included. */
static void metrics_requests(const struct master *ms, struct buf *b)
{
    struct http_sums h;
    char le[16];

    http_sums(ms, &h);
    buf_puts(b,
             "# HELP preforkd_requests_total Responses sent by the workers, by status "
             "class, the server's own error responses included; kept across recycles.\n"
             "# TYPE preforkd_requests_total counter\n");
    for (int i = 0; i < SB_STATUS_CLASSES; i++)
        buf_printf(b, "preforkd_requests_total{status=\"%dxx\"} %" PRIu64 "\n", i + 1,
                   h.by_class[i]);
    buf_puts(b, "# HELP preforkd_request_duration_seconds From a request's complete head "
                "to the end of its response (the access log's request time).\n"
                "# TYPE preforkd_request_duration_seconds histogram\n");
    for (int i = 0; i <= SB_DURATION_BOUNDS; i++)
        buf_printf(b, "preforkd_request_duration_seconds_bucket{le=\"%s\"} %" PRIu64 "\n",
                   bound_text(i, le, sizeof(le)), h.buckets[i]);
    /* The count is the +Inf bucket's, read once: never a torn pair. */
    buf_printf(b,
               "preforkd_request_duration_seconds_sum %.6f\n"
               "preforkd_request_duration_seconds_count %" PRIu64 "\n",
               h.duration_us / 1e6, h.buckets[SB_DURATION_BOUNDS]);
}

/* One gauge family with a row per worker id (pick_ids). */
static void metrics_per_worker(const struct master *ms, struct buf *b,
                               const uint32_t *order, uint32_t n, const char *name,
                               const char *help,
                               uint64_t (*value)(const struct master *ms, uint32_t i))
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
    for (uint32_t k = 0; k < n; k++)
        buf_printf(b, "%s{worker=\"%d\"} %" PRIu64 "\n", name, ms->w[order[k]].id,
                   value(ms, order[k]));
}

static uint64_t worker_requests(const struct master *ms, uint32_t i)
{
    return SB_GET(scoreboard_slot(ms->sb, i)->requests);
}

static uint64_t worker_memory(const struct master *ms, uint32_t i)
{
    return SB_GET(scoreboard_slot(ms->sb, i)->mem);
}

static uint64_t worker_pid(const struct master *ms, uint32_t i)
{
    return (uint64_t)ms->w[i].pid;
}

/* Each pool's counters over every worker, by [upstream NAME]. */
static void metrics_upstreams(const struct master *ms, struct buf *b)
{
    static const struct {
        const char *name, *type, *help;
        size_t off; /* of the uint64_t in struct upstream_sums */
    } fam[] = {
        {"preforkd_upstream_connections_open", "gauge",
         "Connections open now, connecting ones included.",
         offsetof(struct upstream_sums, open)},
        {"preforkd_upstream_connections_idle", "gauge",
         "Connections idle in the pools now.", offsetof(struct upstream_sums, idle)},
        {"preforkd_upstream_connections_created_total", "counter", "Connections opened.",
         offsetof(struct upstream_sums, created)},
        {"preforkd_upstream_requests_reused_total", "counter",
         "Requests sent on a pooled connection.", offsetof(struct upstream_sums, reused)},
        {"preforkd_upstream_requests_retried_total", "counter",
         "Requests sent again: a stale pooled connection, or another server after a "
         "connect error.",
         offsetof(struct upstream_sums, retried)},
        {"preforkd_upstream_requests_timed_out_total", "counter",
         "Requests that ended in a connect or read timeout.",
         offsetof(struct upstream_sums, timed_out)},
    };
    struct upstream_table t = {0};

    upstream_sums(ms, &t);
    for (size_t f = 0; t.n > 0 && f < sizeof(fam) / sizeof(fam[0]); f++) {
        buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", fam[f].name, fam[f].help,
                   fam[f].name, fam[f].type);
        for (size_t i = 0; i < t.n; i++) {
            uint64_t v;

            memcpy(&v, (const char *)&t.v[i] + fam[f].off, sizeof(v));
            buf_printf(b, "%s{upstream=\"", fam[f].name);
            prom_escape(b, t.v[i].name);
            buf_printf(b, "\"} %" PRIu64 "\n", v);
        }
    }
    if (t.n > 0)
        buf_puts(b,
                 "# HELP preforkd_upstream_requests_failed_total Requests that ended in "
                 "an error other than a timeout, by kind.\n"
                 "# TYPE preforkd_upstream_requests_failed_total counter\n");
    for (size_t i = 0; i < t.n; i++) {
        for (int k = 0; k < SB_FAIL_KINDS; k++) {
            buf_puts(b, "preforkd_upstream_requests_failed_total{upstream=\"");
            prom_escape(b, t.v[i].name);
            buf_printf(b, "\",kind=\"%s\"} %" PRIu64 "\n", fail_names[k],
                       t.v[i].failed[k]);
        }
    }
    account_free_upstreams(&t);
}

static void render_metrics(const struct master *ms, struct buf *b)
{
    uint32_t *order = calloc(ms->nslots, sizeof(*order)), n;

    buf_puts(b, "# HELP preforkd_build_info The running preforkd: its version and the "
                "ABI version of the app modules it loads.\n"
                "# TYPE preforkd_build_info gauge\npreforkd_build_info{version=\"");
    prom_escape(b, PF_VERSION);
    buf_printf(b, "\",abi=\"%d\"} 1\n", PF_ABI_VERSION);
    buf_printf(b,
               "# HELP preforkd_workers_serving Workers accepting requests.\n"
               "# TYPE preforkd_workers_serving gauge\npreforkd_workers_serving %u\n"
               "# HELP preforkd_workers_wanted Workers the master keeps.\n"
               "# TYPE preforkd_workers_wanted gauge\npreforkd_workers_wanted %u\n"
               "# HELP preforkd_workers_retired_total Workers gone, by reason.\n"
               "# TYPE preforkd_workers_retired_total counter\n",
               serving_count(ms), ms->target);
    for (int r = 1; r < RETIRE_NREASONS; r++)
        buf_printf(b, "preforkd_workers_retired_total{reason=\"%s\"} %" PRIu64 "\n",
                   recycle_reason_name((enum retire_reason)r), ms->account.retired[r]);
    metrics_requests(ms, b);
    /* One family after the other: the text format wants each together.
     * Out of memory, the per-worker families are left out. */
    if (order != NULL) {
        n = pick_ids(ms, order);
        metrics_per_worker(ms, b, order, n, "preforkd_worker_requests",
                           "Requests served by the process that has this worker id now.",
                           worker_requests);
        metrics_per_worker(ms, b, order, n, "preforkd_worker_memory_bytes",
                           "Memory of the process that has this worker id now "
                           "(memory_metric).",
                           worker_memory);
        metrics_per_worker(ms, b, order, n, "preforkd_worker_pid",
                           "Process id of the process that has this worker id now.",
                           worker_pid);
        metrics_heaps(ms, b, order, n);
        metrics_app(ms, b, order, n);
    }
    free(order);
    metrics_upstreams(ms, b);
    metrics_cgroup(ms, b);
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

static void metrics_heaps(const struct master *ms, struct buf *b, const uint32_t *order,
                          uint32_t n)
{
    buf_puts(b, "# HELP preforkd_worker_heap_bytes A worker's heaps: malloc's bytes "
                "in use (c) and the app's own (python, for the wsgi module).\n"
                "# TYPE preforkd_worker_heap_bytes gauge\n");
    for (uint32_t k = 0; k < n; k++) {
        const struct worker *w = &ms->w[order[k]];
        struct slot *s = scoreboard_slot(ms->sb, order[k]);
        char name[sizeof(s->app_heap_name)];

        buf_printf(b,
                   "preforkd_worker_heap_bytes{worker=\"%d\",heap=\"c\"} %" PRIu64 "\n",
                   w->id, SB_GET(s->c_heap));
        snprintf(name, sizeof(name), "%s", s->app_heap_name);
        if (name[0] == '\0')
            continue;
        buf_printf(b, "preforkd_worker_heap_bytes{worker=\"%d\",heap=\"", w->id);
        prom_escape(b, name);
        buf_printf(b, "\"} %" PRIu64 "\n", SB_GET(s->app_heap));
    }
}

/* preforkd_app_NAME{worker,label}: each name's rows from every worker
 * together, under one TYPE line. */
static void metrics_app(const struct master *ms, struct buf *b, const uint32_t *order,
                        uint32_t n)
{
    char done[SB_METRICS * 4][32];
    int ndone = 0;

    for (uint32_t a = 0; a < n; a++) {
        for (int k = 0; k < SB_METRICS; k++) {
            struct metrics_row first;
            bool seen = false;

            if (!metrics_read(scoreboard_slot(ms->sb, order[a]), k, &first))
                continue;
            for (int d = 0; d < ndone && !seen; d++)
                seen = strcmp(done[d], first.name) == 0;
            if (seen || ndone == (int)(sizeof(done) / sizeof(done[0])))
                continue;
            snprintf(done[ndone++], sizeof(done[0]), "%s", first.name);
            buf_printf(b,
                       "# HELP preforkd_app_%s Published by the app (pf_metric_set).\n"
                       "# TYPE preforkd_app_%s gauge\n",
                       first.name, first.name);
            for (uint32_t c = a; c < n; c++) {
                for (int m = 0; m < SB_METRICS; m++) {
                    struct metrics_row r;
                    if (!metrics_read(scoreboard_slot(ms->sb, order[c]), m, &r) ||
                        strcmp(r.name, first.name) != 0 || !isfinite(r.value))
                        continue;
                    buf_printf(b, "preforkd_app_%s{worker=\"%d\",label=\"", r.name,
                               ms->w[order[c]].id);
                    prom_escape(b, r.label);
                    buf_printf(b, "\"} %.17g\n", r.value);
                }
            }
        }
    }
}

int stats_render(void *master, const struct admin_req *rq, struct buf *out,
                 const char **ctype)
{
    struct master *ms = master; /* relay_render writes; the rest only reads */
    const char *path = rq->path;

    if (strncmp(path, "/workers/", 9) == 0)
        return relay_render(ms, rq, out);
    if (strcmp(rq->method, "POST") == 0) {
        buf_puts(out, "POST is for /workers/ID/...: this is read with GET\n");
        return 405;
    }
    if (strcmp(path, "/stats") == 0) {
        *ctype = "application/json";
        render_stats(ms, out);
        return 200;
    }
    if (strcmp(path, "/metrics") == 0) {
        *ctype = "text/plain; version=0.0.4";
        render_metrics(ms, out);
        return 200;
    }
    if (strcmp(path, "/healthz") == 0) {
        /* Healthy: running, something serving, not in a crash loop. */
        bool ok = ms->mode == RUNNING && serving_count(ms) > 0 && ms->boot_failures < 3;
        buf_puts(out, ok ? "ok\n" : "unhealthy\n");
        return ok ? 200 : 503;
    }
    buf_puts(out, "not found: try /stats, /metrics, /healthz\n");
    return 404;
}
