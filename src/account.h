/*
 * account.h - what the master records when a worker leaves: the reason
 * (counted), and one log line with requests, age, memory and growth.
 * Runs only in the master.
 */
#ifndef PF_ACCOUNT_H
#define PF_ACCOUNT_H

#include <stdint.h>

#include "growth.h"
#include "scoreboard.h"

struct account {
    uint64_t retired[RETIRE_NREASONS]; /* workers gone, by reason */
};

/* The growth fit of a slot's memory samples (limit: eta target, 0 none). */
struct growth account_growth(struct slot *s, uint64_t limit);
/* The same for one of the figures sampled with it. */
enum growth_of { GROWTH_MEM, GROWTH_C_HEAP, GROWTH_APP_HEAP };
struct growth account_growth_of(struct slot *s, enum growth_of what, uint64_t limit);

/* Counts reason and logs the retirement line for the worker of slot s
 * (read before the slot is cleared): pid, generation, reason, requests,
 * age, memory, growth per 1000 requests and per hour, and for a worker
 * still growing, when it would have reached max_rss. */
void account_retired(struct account *a, int id, struct slot *s,
                     enum retire_reason reason, const char *how,
                     uint64_t max_rss);

/* "1h02m", "3m05s", "12.3s" into buf. Returns buf. */
const char *account_fmt_duration(double secs, char *buf, size_t len);

#endif
