/*
 * account.c - the master's record of retirements: counters by reason and
 * the one log line an operator reads to see which worker grew how fast.
 * Runs only in the master; reads the (shared) slot of the departed worker.
 */
#include <stdio.h>

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
        g[i].mem = (double)(what == GROWTH_C_HEAP ? SB_GET(s->samples[i].c_heap)
                            : what == GROWTH_APP_HEAP ? SB_GET(s->samples[i].app_heap)
                                                      : SB_GET(s->samples[i].mem));
    }
    return growth_fit(g, n, limit);
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

void account_retired(struct account *a, int id, struct slot *s,
                     enum retire_reason reason, const char *how,
                     uint64_t max_rss)
{
    struct growth g = account_growth(s, max_rss);
    double age = (double)(scoreboard_wall_ms() - SB_GET(s->started_ms)) / 1000.0;
    char mem[16], per_k[24], per_h[24], agebuf[24], eta[64] = "", heap[160];

    a->retired[reason < RETIRE_NREASONS ? reason : RETIRE_CRASH]++;
    if (g.eta > 0 && reason != RETIRE_MAX_RSS) {
        char d[24];
        snprintf(eta, sizeof(eta), "; would have reached max_rss in %s",
                 account_fmt_duration(g.eta, d, sizeof(d)));
    }
    heaps(s, heap, sizeof(heap));
    log_info("worker %d (pid %d, generation %u) retired: %s (%s); %llu "
             "requests in %s; memory %s; growth per 1000 requests %s, per hour %s%s%s",
             id, (int)SB_GET(s->pid), SB_GET(s->generation),
             recycle_reason_name(reason), how,
             (unsigned long long)SB_GET(s->requests),
             account_fmt_duration(age, agebuf, sizeof(agebuf)),
             memory_fmt(SB_GET(s->mem), mem, sizeof(mem)),
             fmt_rate(g.per_1k_requests, g.by_requests_ok, per_k, sizeof(per_k)),
             fmt_rate(g.per_hour, g.by_time_ok, per_h, sizeof(per_h)), eta, heap);
}
