/*
 * scoreboard.c - the shared worker slots (see scoreboard.h). Created in the
 * master before any fork; written by workers (own slot), read by the master.
 * Convention: NULL / errno for creation. scoreboard_count_response runs in
 * workers (own slot).
 */
#include <sys/mman.h>
#include <time.h>

#include "scoreboard.h"

struct scoreboard *scoreboard_create(uint32_t nslots)
{
    size_t len = sizeof(struct scoreboard) + nslots * sizeof(struct slot);
    struct scoreboard *sb = mmap(NULL, len, PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (sb == MAP_FAILED)
        return NULL;
    sb->nslots = nslots; /* mmap zeroes the rest: every slot SLOT_EMPTY */
    return sb;
}

void scoreboard_destroy(struct scoreboard *sb)
{
    if (sb != NULL)
        munmap(sb, sizeof(*sb) + sb->nslots * sizeof(struct slot));
}

const uint64_t scoreboard_duration_bounds_us[SB_DURATION_BOUNDS] = {
    5000,   10000,   25000,   50000,   100000,   250000,
    500000, 1000000, 2500000, 5000000, 10000000,
};

/* See scoreboard.h. Runs in the worker, after each response. */
void scoreboard_count_response(struct slot *s, int status, double seconds)
{
    uint64_t us = seconds > 0 ? (uint64_t)(seconds * 1e6 + 0.5) : 0;
    int cls = status / 100 - 1, b = 0;

    if (cls < 0 || cls >= SB_STATUS_CLASSES)
        cls = SB_STATUS_CLASSES - 1; /* not a status: counted as the server's failure */
    while (b < SB_DURATION_BOUNDS && us > scoreboard_duration_bounds_us[b])
        b++;
    SB_ADD(s->http.by_class[cls], 1);
    SB_ADD(s->http.buckets[b], 1);
    SB_ADD(s->http.duration_us, us);
}

static int64_t us_of(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t ms_of(clockid_t id)
{
    return us_of(id) / 1000;
}

int64_t scoreboard_mono_ms(void)
{
    return ms_of(CLOCK_MONOTONIC);
}

int64_t scoreboard_mono_us(void)
{
    return us_of(CLOCK_MONOTONIC);
}

int64_t scoreboard_wall_ms(void)
{
    return ms_of(CLOCK_REALTIME);
}
