/*
 * account.c - the master's record of retirements: counters by reason and
 * the one log line an operator reads to see which worker grew how fast,
 * and the departed workers' response and upstream counts, kept so that the
 * sums /metrics shows never go back. Runs only in the master; reads the
 * (shared) slot of the departed worker.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "recycle.h"
#include "log.h"
#include "memory.h"

struct growth account_growth(struct slot *s, uint64_t limit)
{
    return account_growth_of(s, GROWTH_MEM, limit);
}

struct growth account_growth_of(struct slot *s, enum growth_of what, uint64_t limit)
{
    struct growth_sample g[SB_SAMPLES];
    uint32_t total = SB_GET(s->nsamples);
    int n = total < SB_SAMPLES ? (int)total : SB_SAMPLES;

    for (int i = 0; i < n; i++) {
        g[i].age = (double)SB_GET(s->samples[i].age_ms) / 1000.0;
        g[i].requests = (double)SB_GET(s->samples[i].requests);
        g[i].mem = (double)(what == GROWTH_C_HEAP     ? SB_GET(s->samples[i].c_heap)
                            : what == GROWTH_APP_HEAP ? SB_GET(s->samples[i].app_heap)
                                                      : SB_GET(s->samples[i].mem));
    }
    return growth_fit(g, n, limit);
}

void account_add_http(struct http_sums *h, struct slot *s)
{
    for (int i = 0; i < SB_STATUS_CLASSES; i++)
        h->by_class[i] += SB_GET(s->http.by_class[i]);
    for (int i = 0; i <= SB_DURATION_BOUNDS; i++)
        h->buckets[i] += SB_GET(s->http.buckets[i]);
    h->duration_us += SB_GET(s->http.duration_us);
}

struct upstream_sums *account_upstream(struct upstream_table *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i].name, name) == 0)
            return &t->v[i];
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 4;
        struct upstream_sums *v = realloc(t->v, cap * sizeof(*v));

        if (v == NULL)
            return NULL;
        t->v = v;
        t->cap = cap;
    }
    memset(&t->v[t->n], 0, sizeof(t->v[0]));
    snprintf(t->v[t->n].name, sizeof(t->v[0].name), "%s", name);
    return &t->v[t->n++];
}

static void add_sums(struct upstream_sums *to, const struct upstream_sums *from)
{
    to->open += from->open;
    to->idle += from->idle;
    to->created += from->created;
    to->reused += from->reused;
    to->retried += from->retried;
    for (int k = 0; k < SB_FAIL_KINDS; k++)
        to->failed[k] += from->failed[k];
    to->timed_out += from->timed_out;
}

void account_add_upstreams(struct upstream_table *t, struct slot *s, bool live)
{
    for (int i = 0; i < SB_MAX_UPSTREAMS; i++) {
        struct sb_upstream *u = &s->upstreams[i];
        struct upstream_sums add = {.created = SB_GET(u->created),
                                    .reused = SB_GET(u->reused),
                                    .retried = SB_GET(u->retried),
                                    .timed_out = SB_GET(u->timed_out)};
        struct upstream_sums *row;
        char name[SB_UPSTREAM_NAME];

        if (!atomic_load_explicit(&u->named, memory_order_acquire))
            continue; /* the worker has fewer upstreams, or is booting */
        memcpy(name, u->name, sizeof(name));
        name[sizeof(name) - 1] = '\0';
        if ((row = account_upstream(t, name)) == NULL)
            continue;
        for (int k = 0; k < SB_FAIL_KINDS; k++)
            add.failed[k] = SB_GET(u->failed[k]);
        if (live) {
            add.open = SB_GET(u->open);
            add.idle = SB_GET(u->idle);
        }
        add_sums(row, &add);
    }
}

void account_merge_upstreams(struct upstream_table *t, const struct upstream_table *from)
{
    for (size_t i = 0; i < from->n; i++) {
        struct upstream_sums *row = account_upstream(t, from->v[i].name);

        if (row != NULL)
            add_sums(row, &from->v[i]);
    }
}

void account_free_upstreams(struct upstream_table *t)
{
    free(t->v);
    memset(t, 0, sizeof(*t));
}

const char *account_fmt_duration(double secs, char *buf, size_t len)
{
    if (secs < 1)
        snprintf(buf, len, "%.0fms", secs * 1000);
    else if (secs < 60)
        snprintf(buf, len, "%.1fs", secs);
    else if (secs < 3600)
        snprintf(buf, len, "%dm%02ds", (int)secs / 60, (int)secs % 60);
    else
        snprintf(buf, len, "%dh%02dm", (int)(secs / 3600), (int)secs % 3600 / 60);
    return buf;
}

static const char *fmt_rate(double bytes, bool ok, char *buf, size_t len)
{
    char m[16];

    if (!ok) {
        snprintf(buf, len, "unknown");
        return buf;
    }
    memory_fmt((uint64_t)(bytes < 0 ? -bytes : bytes), m, sizeof(m));
    snprintf(buf, len, "%s%s", bytes < 0 ? "-" : "+", m);
    return buf;
}

/* "; heaps: python 12.0M (+1.2M/1000 requests), c 3.1M (+0.0B/1000
 * requests)": which heap grew, for a worker whose app names its own. */
static void heaps(struct slot *s, char *out, size_t len)
{
    struct growth a = account_growth_of(s, GROWTH_APP_HEAP, 0);
    struct growth c = account_growth_of(s, GROWTH_C_HEAP, 0);
    char am[16], cm[16], ar[24], cr[24];

    out[0] = '\0';
    if (s->app_heap_name[0] == '\0')
        return;
    snprintf(out, len, "; heaps: %.15s %s (%s/1000 requests), c %s (%s/1000 requests)",
             s->app_heap_name, memory_fmt(SB_GET(s->app_heap), am, sizeof(am)),
             fmt_rate(a.per_1k_requests, a.by_requests_ok, ar, sizeof(ar)),
             memory_fmt(SB_GET(s->c_heap), cm, sizeof(cm)),
             fmt_rate(c.per_1k_requests, c.by_requests_ok, cr, sizeof(cr)));
}

void account_retired(struct account *a, int id, struct slot *s, enum retire_reason reason,
                     const char *how, uint64_t max_rss)
{
    struct growth g = account_growth(s, max_rss);
    double age = (double)(scoreboard_wall_ms() - SB_GET(s->started_ms)) / 1000.0;
    char mem[16], per_k[24], per_h[24], agebuf[24], eta[64] = "", heap[160];

    a->retired[reason < RETIRE_NREASONS ? reason : RETIRE_CRASH]++;
    account_add_http(&a->http, s);
    account_add_upstreams(&a->ups, s, false);
    if (g.eta > 0 && reason != RETIRE_MAX_RSS) {
        char d[24];
        snprintf(eta, sizeof(eta), "; would have reached max_rss in %s",
                 account_fmt_duration(g.eta, d, sizeof(d)));
    }
    heaps(s, heap, sizeof(heap));
    log_info("worker %d (pid %d, generation %u) retired: %s (%s); %llu "
             "requests in %s; memory %s; growth per 1000 requests %s, per hour %s%s%s",
             id, (int)SB_GET(s->pid), SB_GET(s->generation), recycle_reason_name(reason),
             how, (unsigned long long)SB_GET(s->requests),
             account_fmt_duration(age, agebuf, sizeof(agebuf)),
             memory_fmt(SB_GET(s->mem), mem, sizeof(mem)),
             fmt_rate(g.per_1k_requests, g.by_requests_ok, per_k, sizeof(per_k)),
             fmt_rate(g.per_hour, g.by_time_ok, per_h, sizeof(per_h)), eta, heap);
}
