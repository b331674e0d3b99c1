/*
 * stats.c - the master's state rendered for the admin endpoint: /stats
 * (JSON), /metrics (Prometheus text format 0.0.4) and /healthz. Runs only in
 * the master; reads the scoreboard and the master's worker table.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "recycle.h"
#include "master_int.h"
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
            "\"eta_max_rss\": %.1f, \"boot_ms\": %.3f, \"first_accept_ms\": %s}",
            *first ? "" : ",", i + 1, w->id, (int)w->pid, w->generation,
            st < 4 ? state_names[st] : "?", master_phase_name(w->phase),
            recycle_reason_name(w->reason), now - w->spawned,
            SB_GET(s->requests), SB_GET(s->request_limit), SB_GET(s->connections),
            SB_GET(s->rss), SB_GET(s->uss), SB_GET(s->pss), SB_GET(s->mem),
            SB_GET(s->loop_lag_us), json_num(g.per_1k_requests, g.by_requests_ok, k1),
            json_num(g.per_hour, g.by_time_ok, k2), g.eta,
            SB_GET(s->boot_us) / 1000.0,
            accept_us > 0 ? k3 : "null");
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
    buf_printf(b, "\n  ]\n}\n");
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
    buf_printf(b, "# HELP preforkd_worker_requests Requests served by a live worker.\n"
            "# TYPE preforkd_worker_requests gauge\n"
            "# HELP preforkd_worker_memory_bytes A live worker's memory (memory_metric).\n"
            "# TYPE preforkd_worker_memory_bytes gauge\n");
    for (uint32_t i = 0; i < M.nslots; i++) {
        struct slot *s = scoreboard_slot(M.sb, (int)i + 1);
        if (M.w[i].pid <= 0)
            continue; /* none, or asked of the mold and not forked yet */
        buf_printf(b, "preforkd_worker_requests{worker=\"%d\",pid=\"%d\"} %" PRIu64 "\n"
                "preforkd_worker_memory_bytes{worker=\"%d\",pid=\"%d\"} %" PRIu64 "\n",
                M.w[i].id, (int)M.w[i].pid, SB_GET(s->requests),
                M.w[i].id, (int)M.w[i].pid, SB_GET(s->mem));
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
