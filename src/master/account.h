/*
 * account.h - what the master records when a worker leaves: the reason
 * (counted), one log line with requests, age, memory and growth, and its
 * response and upstream counts (kept, so that /metrics' counters survive
 * recycles). Runs only in the master.
 */
#ifndef PF_ACCOUNT_H
#define PF_ACCOUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "growth.h"
#include "scoreboard.h"

/* Responses of workers, summed (scoreboard.h: struct sb_http). */
struct http_sums {
    uint64_t by_class[SB_STATUS_CLASSES]; /* 1xx .. 5xx */
    uint64_t duration_us;
    uint64_t buckets[SB_DURATION_BOUNDS + 1]; /* each alone, not cumulative */
};

/* One upstream's pool counters, summed over workers (struct sb_upstream). */
struct upstream_sums {
    char name[SB_UPSTREAM_NAME];
    uint64_t open, idle; /* live workers' only */
    uint64_t created, reused, retried, failed[SB_FAIL_KINDS], timed_out;
};

/* Rows by upstream name, in the order they were first seen. */
struct upstream_table {
    struct upstream_sums *v;
    size_t n, cap;
};

struct account {
    uint64_t retired[RETIRE_NREASONS]; /* workers gone, by reason */
    /* What departed workers counted: a scrape adds the live ones'. */
    struct http_sums http;
    struct upstream_table ups;
};

/* The growth fit of a slot's memory samples (limit: eta target, 0 none). */
struct growth account_growth(struct slot *s, uint64_t limit);
/* The same for one of the figures sampled with it. */
enum growth_of { GROWTH_MEM, GROWTH_C_HEAP, GROWTH_APP_HEAP };
struct growth account_growth_of(struct slot *s, enum growth_of what, uint64_t limit);

/* Counts reason and logs the retirement line for the worker of slot s
 * (read before the slot is cleared): pid, generation, reason, requests,
 * age, memory, growth per 1000 requests and per hour, and for a worker
 * still growing, when it would have reached max_rss. Keeps the slot's
 * response and upstream counts in a (account_add_*). */
void account_retired(struct account *a, int id, struct slot *s, enum retire_reason reason,
                     const char *how, uint64_t max_rss);

/* Adds the responses counted in s to h. */
void account_add_http(struct http_sums *h, struct slot *s);
/* The row of name in t, added with zeroes when missing (NULL when out of
 * memory: that upstream is then not shown). */
struct upstream_sums *account_upstream(struct upstream_table *t, const char *name);
/* Adds s's upstream counters to t by name; with live, its open and idle
 * connections too (a departed worker has none). */
void account_add_upstreams(struct upstream_table *t, struct slot *s, bool live);
/* Adds every row of from to t by name. */
void account_merge_upstreams(struct upstream_table *t, const struct upstream_table *from);
void account_free_upstreams(struct upstream_table *t);

/* "1h02m", "3m05s", "12.3s" into buf. Returns buf. */
const char *account_fmt_duration(double secs, char *buf, size_t len);

#endif
