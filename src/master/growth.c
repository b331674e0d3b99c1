/*
 * growth.c - least-squares growth slopes of a worker's memory (see
 * growth.h). Pure: no I/O, no state; unit-tested in tests/unit/test_growth.c.
 */
#include "growth.h"

/* Slope of y over x by least squares; 0 when x does not vary. */
static double slope(const struct growth_sample *s, int n, int by_age)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0;

    for (int i = 0; i < n; i++) {
        double x = by_age ? s[i].age : s[i].requests;
        sx += x;
        sy += s[i].mem;
        sxx += x * x;
        sxy += x * s[i].mem;
    }
    double d = n * sxx - sx * sx;
    if (n < 2 || d <= 1e-9 * (sxx > 1 ? sxx : 1))
        return 0;
    return (n * sxy - sx * sy) / d;
}

/* max - min of x (requests or age) over the samples. */
static double span(const struct growth_sample *s, int n, int by_age)
{
    double lo = 0, hi = 0;

    for (int i = 0; i < n; i++) {
        double x = by_age ? s[i].age : s[i].requests;
        if (i == 0 || x < lo)
            lo = x;
        if (i == 0 || x > hi)
            hi = x;
    }
    return hi - lo;
}

struct growth growth_fit(const struct growth_sample *s, int n, uint64_t limit)
{
    struct growth g = {.eta = -1, .nsamples = n};

    if (n < 2)
        return g;
    g.per_1k_requests = slope(s, n, 0) * 1000.0;
    g.per_hour = slope(s, n, 1) * 3600.0;
    g.by_requests_ok = span(s, n, 0) >= GROWTH_MIN_REQUESTS;
    g.by_time_ok = span(s, n, 1) >= GROWTH_MIN_SECONDS;
    if (limit > 0 && g.per_hour > 0 && g.by_time_ok) {
        double last = s[n - 1].mem;
        g.eta = last >= (double)limit ? 0 : ((double)limit - last) / g.per_hour * 3600.0;
    }
    return g;
}
