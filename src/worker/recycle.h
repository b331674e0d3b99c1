/*
 * recycle.h - a worker's soft limits, measured by the worker itself:
 * max_requests (+ its own jitter draw), max_rss in the configured memory
 * metric, max_lifetime (+ jitter), all held back until min_lifetime. Also
 * keeps the worker's scoreboard figures (memory, samples, loop lag).
 * Runs in workers; never blocks (reads /proc only). recycle_reason_name,
 * a table lookup, runs in the master too (retirement lines, /stats).
 */
#ifndef PF_RECYCLE_H
#define PF_RECYCLE_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "memory.h"
#include "scoreboard.h"

/* max_rss / RECYCLE_OVERSHOOT: the most a worker asks for its replacement
 * early by, and how far past max_rss the last worker accepting may grow
 * before it stops and lets new connections wait for the replacement. */
#define RECYCLE_OVERSHOOT 4

struct recycle {
    const struct config *cfg;
    struct scoreboard *sb;
    struct slot *slot;
    struct mem_reader mem;
    double started;         /* loop time at boot */
    uint64_t request_limit; /* drawn in [max_requests, +jitter], 0 = off */
    double lifetime;        /* drawn in [max_lifetime, +jitter], 0 = off */
    uint64_t requests;
    uint32_t countdown; /* requests until the next memory check */
    uint32_t interval;  /* requests between the last two checks */
    uint64_t last_mem;  /* at the last check */
    uint64_t last_mem_requests;
    double growth;     /* recent bytes per request (>= 0) */
    double rate;       /* recent requests per second */
    double last_check; /* loop time of the last memory check */
    double last_full;  /* last smaps_rollup read (uss/pss) */
    double next_sample;
    uint64_t next_sample_requests;
    enum retire_reason reached; /* first soft limit reached, maybe held back */
    bool over_rss;              /* memory is past max_rss itself, not just near */
    bool far_over_rss;          /* ... and past it by a quarter (RECYCLE_OVERSHOOT) */
    bool reported;              /* reached was handed to the caller */
};

/* Draws this worker's limits from a per-worker random seed and takes the
 * first memory sample. now: the loop's time. */
void recycle_init(struct recycle *l, const struct config *cfg, struct scoreboard *sb,
                  struct slot *slot, double now);
/* Takes a last sample (what the master logs at exit) and closes. */
void recycle_close(struct recycle *l, double now);

/* After each completed response. Returns the soft limit reached, once
 * (RETIRE_NONE before and after), not before min_lifetime. */
enum retire_reason recycle_after_request(struct recycle *l, double now);

/* Once a second: memory, lifetime, a growth sample. Same return rule. */
enum retire_reason recycle_tick(struct recycle *l, double now);

/* The reason's name as logs and stats spell it ("max_requests", ...). */
const char *recycle_reason_name(enum retire_reason r);

#endif
