/*
 * growth.h - how fast a worker grows: least-squares slopes over its memory
 * samples (bytes per 1000 requests, bytes per hour) and the time left until
 * a limit. Pure arithmetic, any process; the master uses it for the log
 * line of every retirement and for stats.
 */
#ifndef PF_GROWTH_H
#define PF_GROWTH_H

#include <stdbool.h>
#include <stdint.h>

struct growth_sample {
    double age;      /* seconds since the worker started */
    double requests; /* served by then */
    double mem;      /* bytes */
};

struct growth {
    double per_1k_requests; /* bytes per 1000 requests */
    double per_hour;        /* bytes per hour */
    double eta;             /* seconds until limit at per_hour, -1 if none */
    int nsamples;
    bool by_requests_ok; /* the samples span enough requests to mean much */
    bool by_time_ok;     /* ... and enough time */
};

/* Below these spans a slope is mostly start-up noise (first page faults,
 * allocator warm-up): reported as unknown. */
#define GROWTH_MIN_REQUESTS 100
#define GROWTH_MIN_SECONDS 10

/* Fits mem against requests and against age over s[0..n), then projects
 * when mem reaches limit (0 = no limit, eta -1). With fewer than two
 * distinct x values a slope is 0. */
struct growth growth_fit(const struct growth_sample *s, int n, uint64_t limit);

#endif
