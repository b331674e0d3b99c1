/*
 * recycle.c - soft limits measured by the worker (see recycle.h). Runs in
 * workers, on the loop; recycle_reason_name in the master too. Memory is
 * read adaptively: rarely while far from max_rss, after every request once
 * the observed growth per request could reach it, so a limit is seen on
 * the request that crosses it without a /proc read per request in the
 * common case.
 */
#include <malloc.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/random.h>

#include "recycle.h"
#include "log.h"

#define CHECK_EVERY_MAX 64 /* requests between memory checks, at most */
#define FULL_READ_GAP 0.1  /* seconds between smaps_rollup reads (uss/pss) */

static const char *const reason_names[RETIRE_NREASONS] = {
    [RETIRE_NONE] = "none",
    [RETIRE_MAX_REQUESTS] = "max_requests",
    [RETIRE_MAX_RSS] = "max_rss",
    [RETIRE_LIFETIME] = "max_lifetime",
    [RETIRE_MAX_RSS_HARD] = "max_rss_hard",
    [RETIRE_TIMEOUT] = "timeout",
    [RETIRE_CRASH] = "crash",
    [RETIRE_OOM] = "oom_kill",
    [RETIRE_RELOAD] = "reload",
    [RETIRE_SCALE] = "scale_down",
    [RETIRE_SHUTDOWN] = "shutdown",
    [RETIRE_REQUESTED] = "requested",
};

const char *recycle_reason_name(enum retire_reason r)
{
    return r < RETIRE_NREASONS && reason_names[r] ? reason_names[r] : "unknown";
}

/* Uniform in [0, span]: every worker draws from its own seed, so a fleet
 * started together does not recycle together. */
static uint64_t draw(uint64_t span)
{
    uint64_t seed;

    if (span == 0)
        return 0;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
        seed = ((uint64_t)getpid() << 32) ^ (uint64_t)scoreboard_wall_ms();
    return seed % (span + 1);
}

/* This worker's max_rss: the master writes it into the slot at spawn, and
 * again when a share of the cgroup's memory changes (memlimit.c). */
static uint64_t max_rss(const struct recycle *l)
{
    return SB_GET(l->slot->max_rss);
}

/* Reads the configured metric; rss is always refreshed (cheap). */
static int measure(struct recycle *l, double now, bool force_full, uint64_t *mem)
{
    const struct config *c = l->cfg;
    uint64_t rss;
    struct mem_usage u;

    if (memory_rss(&l->mem, &rss) < 0)
        return -1;
    SB_SET(l->slot->rss, rss);
    *mem = rss;
    if (c->recycle.memory_metric == METRIC_RSS)
        goto done;
    /* USS and PSS never exceed RSS: below the limit, no dear read needed. */
    if (!force_full &&
        (max_rss(l) == 0 || rss < max_rss(l) || now - l->last_full < FULL_READ_GAP)) {
        *mem = SB_GET(l->slot->mem);
        return 0;
    }
    if (memory_full(0, &u) < 0)
        return -1;
    l->last_full = now;
    SB_SET(l->slot->uss, u.uss);
    SB_SET(l->slot->pss, u.pss);
    *mem = c->recycle.memory_metric == METRIC_USS ? u.uss : u.pss;
done:
    SB_SET(l->slot->mem, *mem);
    return 0;
}

static void sample(struct recycle *l, double now, uint64_t mem)
{
    struct mallinfo2 mi = mallinfo2(); /* walks malloc's arenas: here only */

    SB_SET(l->slot->c_heap, mi.uordblks + mi.hblkhd);
    uint32_t i = SB_GET(l->slot->nsamples);
    uint32_t k = i % SB_SAMPLES;
    double age = now - l->started;

    SB_SET(l->slot->samples[k].age_ms, (int64_t)(age * 1000));
    SB_SET(l->slot->samples[k].requests, l->requests);
    SB_SET(l->slot->samples[k].mem, mem);
    SB_SET(l->slot->samples[k].c_heap, SB_GET(l->slot->c_heap));
    SB_SET(l->slot->samples[k].app_heap, SB_GET(l->slot->app_heap));
    SB_SET(l->slot->nsamples, i + 1);
    /* Spread the ring over the whole life: a slope over the last few
     * seconds of an old worker says little about a slow leak. */
    l->next_sample = now + (age / SB_SAMPLES > 1.0 ? age / SB_SAMPLES : 1.0);
    l->next_sample_requests =
        l->requests + (l->requests / SB_SAMPLES > 16 ? l->requests / SB_SAMPLES : 16);
}

void recycle_init(struct recycle *l, const struct config *cfg, struct scoreboard *sb,
                  struct slot *slot, double now)
{
    uint64_t mem = 0;

    *l = (struct recycle){.cfg = cfg,
                          .sb = sb,
                          .slot = slot,
                          .started = now,
                          .countdown = 1,
                          .last_check = now};
    if (memory_open(&l->mem, 0) < 0)
        log_warn("memory: /proc/self/statm");
    if (cfg->recycle.max_requests)
        l->request_limit = cfg->recycle.max_requests +
                           draw(cfg->recycle.max_requests_jitter);
    if (cfg->recycle.max_lifetime > 0)
        l->lifetime = cfg->recycle.max_lifetime +
                      (double)draw((uint64_t)(cfg->recycle.max_lifetime_jitter * 1000)) /
                          1000;
    SB_SET(slot->request_limit, l->request_limit);
    if (measure(l, now, true, &mem) == 0) {
        l->last_mem = mem;
        sample(l, now, mem);
    }
}

void recycle_close(struct recycle *l, double now)
{
    uint64_t mem;

    if (measure(l, now, true, &mem) == 0)
        sample(l, now, mem); /* the figure the master logs at exit */
    memory_close(&l->mem);
}

/* Hands out the first reason reached, once min_lifetime has passed. */
static enum retire_reason report(struct recycle *l, double now)
{
    if (l->reached == RETIRE_NONE || l->reported ||
        now - l->started < l->cfg->recycle.min_lifetime)
        return RETIRE_NONE;
    l->reported = true;
    return l->reached;
}

static void reach(struct recycle *l, enum retire_reason r)
{
    if (l->reached == RETIRE_NONE)
        l->reached = r;
}

/* What the worker will still grow by during the replacement latency (from
 * the fork of its replacement to that one serving: the master's moving
 * average in sb->replace_us): it keeps serving until then. Asking that
 * much before max_rss makes the worker leave at max_rss rather than above
 * it. At most a quarter of the limit. */
static uint64_t replace_margin(const struct recycle *l, uint64_t soft)
{
    double h = SB_GET(l->sb->replace_us) / 1e6;
    double m = l->growth * l->rate * (h > 0 ? h : 0.01);
    double cap = (double)soft / RECYCLE_OVERSHOOT;

    return (uint64_t)(m < cap ? m : cap);
}

/* Growth per request and request rate since the last check. */
static void learn(struct recycle *l, uint64_t mem, double now)
{
    uint64_t dreq = l->requests - l->last_mem_requests;
    double dt = now - l->last_check;

    if (dreq > 0 && mem > l->last_mem) {
        double g = (double)(mem - l->last_mem) / (double)dreq;
        l->growth = g > l->growth ? g : (l->growth + g) / 2;
    }
    if (dt >= 0.001 && dreq > 0) {
        double r = (double)dreq / dt;
        l->rate = l->rate > 0 ? (l->rate + r) / 2 : r;
    }
    l->last_mem = mem;
    l->last_mem_requests = l->requests;
    l->last_check = now;
}

/* The next check comes sooner the closer the limit is at recent growth.
 * With no growth seen yet the interval doubles from 1: a young worker that
 * leaks fast is measured before it can run far past the limit, and one
 * that does not leak soon costs a read every CHECK_EVERY_MAX requests. */
static void plan_next_check(struct recycle *l, uint64_t mem, uint64_t limit)
{
    double n;

    if (mem >= limit)
        n = 1;
    else if (l->growth <= 0)
        n = 2.0 * l->interval;
    else
        n = (double)(limit - mem) / l->growth / 2;
    l->countdown = n < 1 ? 1 : n > CHECK_EVERY_MAX ? CHECK_EVERY_MAX : (uint32_t)n;
    l->interval = l->countdown;
}

static void check_memory(struct recycle *l, double now, bool tick)
{
    uint64_t mem, soft = max_rss(l);

    if (measure(l, now, tick, &mem) < 0)
        return;
    if (soft) {
        uint64_t limit;
        learn(l, mem, now);
        limit = soft - replace_margin(l, soft);
        if (mem >= limit)
            reach(l, RETIRE_MAX_RSS);
        l->over_rss = mem >= soft;
        l->far_over_rss = mem >= soft + soft / RECYCLE_OVERSHOOT;
        plan_next_check(l, mem, limit);
    }
    /* By time on the tick; by requests too, so that a worker recycled
     * within a second still leaves a slope behind. */
    if ((tick && now >= l->next_sample) || l->requests >= l->next_sample_requests)
        sample(l, now, mem);
}

enum retire_reason recycle_after_request(struct recycle *l, double now)
{
    l->requests++;
    if (l->request_limit && l->requests >= l->request_limit)
        reach(l, RETIRE_MAX_REQUESTS);
    if (max_rss(l) && --l->countdown == 0)
        check_memory(l, now, false);
    return report(l, now);
}

enum retire_reason recycle_tick(struct recycle *l, double now)
{
    check_memory(l, now, true);
    if (l->lifetime > 0 && now - l->started >= l->lifetime)
        reach(l, RETIRE_LIFETIME);
    return report(l, now);
}
