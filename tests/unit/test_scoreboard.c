/*
 * test_scoreboard.c - unit tests of src/common/scoreboard.c: the mapping
 * holds nslots zeroed slots and is shared with a later fork (both ways);
 * destroy unmaps it; the SB_* accessors; scoreboard_count_response's status
 * classes, duration buckets and sum; the clocks. Runs in the test process
 * and, for the sharing, in a child it forks and reaps.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "scoreboard.h"

/* Bytes the header promises: the header struct and nslots slots. */
static size_t sb_bytes(uint32_t nslots)
{
    return sizeof(struct scoreboard) + (size_t)nslots * sizeof(struct slot);
}

/* Length of the mapping that starts at addr, from /proc/self/maps; 0 if
 * no mapping starts there. */
static size_t mapping_len(const void *addr)
{
    char line[512];
    size_t len = 0;
    FILE *f = fopen("/proc/self/maps", "r");

    ck_assert_ptr_nonnull(f);
    while (len == 0 && fgets(line, sizeof(line), f) != NULL) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo == (unsigned long)addr)
            len = hi - lo;
    }
    fclose(f);
    return len;
}

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return false;
    return true;
}

/* Sizes from none to many: nslots set, every slot zeroed (SLOT_EMPTY),
 * slot k is slots[k], and the mapping is just the pages the
 * promised bytes need. */
START_TEST(create_sizes)
{
    static const uint32_t sizes[] = {0, 1, 3, 64, 1024};
    size_t page = (size_t)sysconf(_SC_PAGESIZE);

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint32_t n = sizes[i];
        struct scoreboard *sb = scoreboard_create(n);

        ck_assert_msg(sb != NULL, "nslots %u: %s", n, strerror(errno));
        ck_assert_uint_eq(sb->nslots, n);
        ck_assert_uint_eq(SB_GET(sb->replace_us), 0);
        ck_assert_uint_eq(SB_GET(sb->handoff_ok), 0);
        ck_assert_uint_eq(mapping_len(sb), (sb_bytes(n) + page - 1) / page * page);
        for (uint32_t k = 0; k < n; k++) {
            struct slot *s = scoreboard_slot(sb, k);
            ck_assert_ptr_eq(s, &sb->slots[k]);
            ck_assert_msg(all_zero(s, sizeof(*s)), "nslots %u: slot %u", n, k);
            ck_assert_uint_eq(SB_GET(s->state), SLOT_EMPTY);
        }
        if (n > 0) { /* the last byte of the last slot is writable */
            unsigned char *last = (unsigned char *)&sb->slots[n] - 1;
            *last = 0xa5;
            ck_assert_uint_eq(*last, 0xa5);
        }
        scoreboard_destroy(sb);
        ck_assert_uint_eq(mapping_len(sb), 0);
    }
}
END_TEST

/* destroy unmaps every page (msync on an unmapped range: ENOMEM), and
 * NULL is a no-op. */
START_TEST(destroy_unmaps)
{
    struct scoreboard *sb = scoreboard_create(16);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t len = sb_bytes(16);
    char *last_page;

    ck_assert_ptr_nonnull(sb);
    last_page = (char *)sb + (len - 1) / page * page;
    ck_assert_int_eq(msync(sb, page, MS_ASYNC), 0);
    ck_assert_int_eq(msync(last_page, page, MS_ASYNC), 0);
    scoreboard_destroy(sb);
    errno = 0;
    ck_assert_int_eq(msync(sb, page, MS_ASYNC), -1);
    ck_assert_int_eq(errno, ENOMEM);
    errno = 0;
    ck_assert_int_eq(msync(last_page, page, MS_ASYNC), -1);
    ck_assert_int_eq(errno, ENOMEM);
    scoreboard_destroy(NULL);
}
END_TEST

/* VmSize of this process, in bytes. */
static unsigned long long vm_size(void)
{
    char *text = harness_read_file("/proc/self/status", NULL), *p;
    unsigned long long kib = 0;

    ck_assert_ptr_nonnull(text);
    p = strstr(text, "\nVmSize:");
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(sscanf(p, "\nVmSize: %llu kB", &kib), 1);
    free(text);
    return kib * 1024;
}

/* "NULL on error (errno set)": with the address space limited to 1 GiB
 * more than is mapped now (the soft limit only, restored at once), 1 Mi
 * slots (gigabytes) cannot be mapped. */
START_TEST(create_fails_with_errno)
{
    struct rlimit old, lim;
    struct scoreboard *sb;
    int err;

    ck_assert_int_eq(getrlimit(RLIMIT_AS, &old), 0);
    ck_assert_uint_gt(sb_bytes(1U << 20), 2ULL << 30);
    lim = old;
    lim.rlim_cur = vm_size() + (1ULL << 30);
    ck_assert(old.rlim_max == RLIM_INFINITY || old.rlim_max >= lim.rlim_cur);
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &lim), 0);
    errno = 0;
    sb = scoreboard_create(1U << 20);
    err = errno;
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &old), 0);
    ck_assert_ptr_null(sb);
    ck_assert_int_eq(err, ENOMEM);
}
END_TEST

/* What the master writes after the fork, the worker sees; what the worker
 * writes into its slot, the master reads after the worker exited. The
 * child reports by exit code only (no Check call in it). */
START_TEST(shared_across_fork)
{
    struct scoreboard *sb = scoreboard_create(4);
    struct slot *s;
    pid_t pid;
    int status;

    ck_assert_ptr_nonnull(sb);
    SB_SET(sb->replace_us, 1234);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct slot *mine = scoreboard_slot(sb, 2);
        int64_t end = scoreboard_mono_ms() + 5000;

        /* The parent's write after the fork arrives here. */
        while (SB_GET(sb->handoff_ok) != 7 && scoreboard_mono_ms() < end)
            usleep(1000);
        if (SB_GET(sb->handoff_ok) != 7)
            _exit(2);
        if (SB_GET(sb->replace_us) != 1234)
            _exit(3);
        SB_SET(mine->pid, (int32_t)getpid());
        SB_SET(mine->generation, 5);
        SB_SET(mine->state, SLOT_SERVING);
        for (int i = 0; i < 1000; i++)
            SB_ADD(mine->requests, 1);
        SB_SET(mine->rss, 3ULL << 32);
        memcpy(mine->in_app, "GET /x", 6);
        SB_SET(mine->in_app_len, 6);
        scoreboard_count_response(mine, 404, 0.02);
        _exit(0);
    }
    SB_SET(sb->handoff_ok, 7);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child: wait status 0x%x", status);
    s = scoreboard_slot(sb, 2);
    ck_assert_int_eq(SB_GET(s->pid), pid);
    ck_assert_uint_eq(SB_GET(s->generation), 5);
    ck_assert_uint_eq(SB_GET(s->state), SLOT_SERVING);
    ck_assert_uint_eq(SB_GET(s->requests), 1000);
    ck_assert_uint_eq(SB_GET(s->rss), 3ULL << 32);
    ck_assert_uint_eq(SB_GET(s->in_app_len), 6);
    ck_assert_mem_eq(s->in_app, "GET /x", 6);
    ck_assert_uint_eq(SB_GET(s->http.by_class[3]), 1);
    ck_assert_uint_eq(SB_GET(s->http.buckets[2]), 1);
    ck_assert_uint_eq(SB_GET(s->http.duration_us), 20000);
    /* The other slots stay as they were. */
    for (uint32_t i = 0; i < 4; i++)
        if (i != 2)
            ck_assert_msg(all_zero(scoreboard_slot(sb, i), sizeof(struct slot)),
                          "slot %u written", i);
    scoreboard_destroy(sb);
}
END_TEST

/* SB_SET / SB_GET keep each field's width and sign; SB_ADD adds, and wraps
 * as the field's type does. */
START_TEST(accessors)
{
    struct scoreboard *sb = scoreboard_create(1);
    struct slot *s;

    ck_assert_ptr_nonnull(sb);
    s = scoreboard_slot(sb, 0);
    SB_SET(s->pid, -42);
    ck_assert_int_eq(SB_GET(s->pid), -42);
    SB_SET(s->started_ms, -1700000000000LL);
    ck_assert_int_eq(SB_GET(s->started_ms), -1700000000000LL);
    SB_SET(s->requests, UINT64_MAX);
    ck_assert(SB_GET(s->requests) == UINT64_MAX);
    SB_ADD(s->requests, 2);
    ck_assert_uint_eq(SB_GET(s->requests), 1);
    SB_SET(s->connections, UINT32_MAX);
    SB_ADD(s->connections, 1);
    ck_assert_uint_eq(SB_GET(s->connections), 0);
    SB_ADD(s->connections, 3);
    SB_ADD(s->connections, -1);
    ck_assert_uint_eq(SB_GET(s->connections), 2);
    SB_SET(s->retire_reason, RETIRE_REQUESTED);
    ck_assert_uint_eq(SB_GET(s->retire_reason), RETIRE_REQUESTED);
    SB_ADD(s->upstreams[SB_MAX_UPSTREAMS - 1].failed[SB_FAIL_BUSY], 9);
    ck_assert_uint_eq(SB_GET(s->upstreams[SB_MAX_UPSTREAMS - 1].failed[SB_FAIL_BUSY]), 9);
    SB_SET(s->samples[SB_SAMPLES - 1].age_ms, 77);
    ck_assert_int_eq(SB_GET(s->samples[SB_SAMPLES - 1].age_ms), 77);
    scoreboard_destroy(sb);
}
END_TEST

/* The bucket bounds, as the header says: 5 ms .. 10 s, Prometheus'
 * defaults. */
START_TEST(duration_bounds)
{
    static const uint64_t want[SB_DURATION_BOUNDS] = {
        5000,   10000,   25000,   50000,   100000,   250000,
        500000, 1000000, 2500000, 5000000, 10000000,
    };

    for (int i = 0; i < SB_DURATION_BOUNDS; i++)
        ck_assert_uint_eq(scoreboard_duration_bounds_us[i], want[i]);
}
END_TEST

/* One response into a zeroed slot: exactly one class, one bucket and the
 * rounded microseconds. A status that is not 1xx..5xx counts as 5xx; a
 * duration not above 0 (NaN too) as 0. */
static const struct {
    int status;
    double seconds;
    int cls, bucket;
    uint64_t us;
} responses[] = {
    {100, 0, 0, 0, 0},
    {199, 0.001, 0, 0, 1000},
    {200, 0.005, 1, 0, 5000},     /* on a bound: that bucket */
    {204, 0.0050004, 1, 0, 5000}, /* rounds down to the bound */
    {206, 0.005001, 1, 1, 5001},  /* just above */
    {301, 0.0000004, 2, 0, 0},
    {399, 0.000002, 2, 0, 2},
    {400, 0.1, 3, 4, 100000},
    {499, 0.25, 3, 5, 250000},
    {500, 2.5, 4, 8, 2500000},
    {503, 10.0, 4, 10, 10000000},
    {599, 10.000001, 4, 11, 10000001}, /* beyond every bound */
    {200, 3600, 1, 11, 3600000000ULL},
    {99, 0.03, 4, 3, 30000},
    {600, 0.03, 4, 3, 30000},
    {0, 0.03, 4, 3, 30000},
    {-200, 0.03, 4, 3, 30000},
    {1000, 0.03, 4, 3, 30000},
    {200, -1.0, 1, 0, 0},
    {200, NAN, 1, 0, 0},
};

START_TEST(count_one_response)
{
    for (size_t i = 0; i < sizeof(responses) / sizeof(responses[0]); i++) {
        struct slot *s = calloc(1, sizeof(*s));
        int st = responses[i].status;
        double secs = responses[i].seconds;

        ck_assert_ptr_nonnull(s);
        scoreboard_count_response(s, st, secs);
        for (int c = 0; c < SB_STATUS_CLASSES; c++)
            ck_assert_msg(SB_GET(s->http.by_class[c]) == (c == responses[i].cls),
                          "status %d %gs: class %d holds %llu", st, secs, c,
                          (unsigned long long)SB_GET(s->http.by_class[c]));
        for (int b = 0; b <= SB_DURATION_BOUNDS; b++)
            ck_assert_msg(SB_GET(s->http.buckets[b]) == (b == responses[i].bucket),
                          "status %d %gs: bucket %d holds %llu", st, secs, b,
                          (unsigned long long)SB_GET(s->http.buckets[b]));
        ck_assert_msg(SB_GET(s->http.duration_us) == responses[i].us,
                      "status %d %gs: %llu us", st, secs,
                      (unsigned long long)SB_GET(s->http.duration_us));
        free(s);
    }
}
END_TEST

/* Each bound into its own bucket, one microsecond more into the next; the
 * counts add up, each bucket alone (not cumulative), and so does the sum. */
START_TEST(count_accumulates)
{
    struct slot *s = calloc(1, sizeof(*s));
    uint64_t sum = 0;

    ck_assert_ptr_nonnull(s);
    for (int b = 0; b < SB_DURATION_BOUNDS; b++) {
        uint64_t us = scoreboard_duration_bounds_us[b];
        scoreboard_count_response(s, 200, (double)us / 1e6);
        scoreboard_count_response(s, 500, (double)(us + 1) / 1e6);
        sum += 2 * us + 1;
    }
    ck_assert_uint_eq(SB_GET(s->http.by_class[1]), SB_DURATION_BOUNDS);
    ck_assert_uint_eq(SB_GET(s->http.by_class[4]), SB_DURATION_BOUNDS);
    ck_assert_uint_eq(SB_GET(s->http.by_class[0]) + SB_GET(s->http.by_class[2]) +
                          SB_GET(s->http.by_class[3]),
                      0);
    ck_assert_uint_eq(SB_GET(s->http.buckets[0]), 1);
    for (int b = 1; b < SB_DURATION_BOUNDS; b++)
        ck_assert_msg(SB_GET(s->http.buckets[b]) == 2, "bucket %d: %llu", b,
                      (unsigned long long)SB_GET(s->http.buckets[b]));
    ck_assert_uint_eq(SB_GET(s->http.buckets[SB_DURATION_BOUNDS]), 1);
    ck_assert_uint_eq(SB_GET(s->http.duration_us), sum);
    free(s);
}
END_TEST

static int64_t clock_us(clockid_t id)
{
    struct timespec ts;

    ck_assert_int_eq(clock_gettime(id, &ts), 0);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Each clock reads its own clock, in its unit: between two readings of
 * clock_gettime taken around it. */
START_TEST(clocks)
{
    int64_t before, got, after;

    before = clock_us(CLOCK_MONOTONIC);
    got = scoreboard_mono_us();
    after = clock_us(CLOCK_MONOTONIC);
    ck_assert_int_ge(got, before);
    ck_assert_int_le(got, after);

    before = clock_us(CLOCK_MONOTONIC) / 1000;
    got = scoreboard_mono_ms();
    after = clock_us(CLOCK_MONOTONIC) / 1000;
    ck_assert_int_ge(got, before);
    ck_assert_int_le(got, after);

    before = clock_us(CLOCK_REALTIME) / 1000;
    got = scoreboard_wall_ms();
    after = clock_us(CLOCK_REALTIME) / 1000;
    ck_assert_int_ge(got, before);
    ck_assert_int_le(got, after);
    ck_assert_int_gt(got, 1600000000000LL); /* milliseconds since 1970 */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("scoreboard");
    TCase *m = tcase_create("mapping");
    TCase *c = tcase_create("counting");

    tcase_add_test(m, create_sizes);
    tcase_add_test(m, destroy_unmaps);
    tcase_add_test(m, create_fails_with_errno);
    tcase_add_test(m, shared_across_fork);
    tcase_add_test(m, accessors);
    suite_add_tcase(s, m);
    tcase_add_test(c, duration_bounds);
    tcase_add_test(c, count_one_response);
    tcase_add_test(c, count_accumulates);
    tcase_add_test(c, clocks);
    suite_add_tcase(s, c);
    return harness_run_suite(s);
}
