/*
 * test_recycle.c - integration tests of worker recycling (src/recycle.c,
 * src/master.c): soft limits measured by workers, the spawn-before-retire
 * hand-over, the recycle budget, the master's hard limits, accounting and
 * the USR2 snapshot. The real daemon on 127.0.0.1:0, observed through its
 * log and the admin endpoint's /stats (the scoreboard).
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define RETIRED(reason) "retired: " reason " \\(.*\\); ([0-9]+) requests"

/* ---- the daemon and its /stats ------------------------------------------ */

static struct hdaemon *start(const char *module_path, int workers,
                             const char *recycle, const char *app_keys)
{
    struct hdaemon *d = harness_daemon_new();

    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0\nworkers = %d\n"
                          "timeout = 2s\ngraceful_timeout = 5s\n"
                          "[recycle]\n%s\n"
                          "[app]\nmodule = %s\n%s\n"
                          "[admin]\nlisten = 127.0.0.1:0\n",
                          workers, recycle, module_path, app_keys ? app_keys : "");
    harness_daemon_spawn(d, NULL);
    harness_daemon_wait_ready(d, 10);
    return d;
}

static char *module(const char *env, const char *name)
{
    char file[64];

    snprintf(file, sizeof file, "%s.so", name);
    return harness_path(env, file);
}

static int admin_port(struct hdaemon *d)
{
    long port = 0;

    ck_assert_msg(harness_log_wait(d, "admin endpoint on 127\\.0\\.0\\.1:[0-9]+", 1, 5),
                  "no admin endpoint line");
    ck_assert_int_eq(harness_log_numbers(d, "admin endpoint on 127\\.0\\.0\\.1:([0-9]+)",
                                         1, &port, 1), 1);
    return (int)port;
}

/* GET /stats; NULL on any failure (so it can run in a sampler thread). */
static char *stats(int port)
{
    struct hconn *c = harness_try_connect(port);
    struct hresp r;
    char *body = NULL;

    if (c == NULL)
        return NULL;
    if (harness_send(c, "GET /stats HTTP/1.0\r\n\r\n", 23, 5) == 0 &&
        harness_read_response(c, &r, false, 5) == 0) {
        if (r.status == 200) {
            body = r.body;
            r.body = NULL;
        }
        hresp_free(&r);
    }
    harness_close(c);
    return body;
}

/* The number after "key": in text, or -1. */
static double num(const char *text, const char *key)
{
    char pat[64];
    const char *p;

    snprintf(pat, sizeof pat, "\"%s\": ", key);
    p = text ? strstr(text, pat) : NULL;
    return p ? strtod(p + strlen(pat), NULL) : -1;
}

/* The string value of "key": within one worker object, compared. */
static bool str_is(const char *obj, const char *key, const char *want)
{
    char pat[64];
    const char *p;

    snprintf(pat, sizeof pat, "\"%s\": \"%s\"", key, want);
    p = strstr(obj, pat);
    return p != NULL && p < strchr(obj, '}');
}

/* Calls fn for each worker object in a /stats body. */
static void each_worker(const char *json, void (*fn)(const char *obj, void *),
                        void *arg)
{
    const char *p = json ? strstr(json, "\"workers\": [") : NULL;

    while (p && (p = strstr(p, "{\"slot\": ")) != NULL) {
        fn(p, arg);
        p++;
    }
}

/* ---- clients -------------------------------------------------------------- */

struct load {
    int port;
    int requests;
    bool keepalive;
    const char *path;
    const char *body;   /* expected body, exactly; NULL: any 200 */
    int ok, failed;     /* out */
    char why[160];
};

/* Sends load->requests GETs; each must be a complete 200. Keep-alive
 * clients reconnect when the server closes (it may: a retiring worker
 * answers Connection: close), never counting that as a failure. */
static void *run_load(void *arg)
{
    struct load *l = arg;
    struct hconn *c = NULL;
    char req[160];

    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n", l->path,
             l->keepalive ? "" : "Connection: close\r\n");
    for (int i = 0; i < l->requests; i++) {
        struct hresp r;
        const char *conn;
        if (c == NULL && (c = harness_try_connect(l->port)) == NULL)
            goto fail;
        if (harness_send(c, req, strlen(req), 10) != 0 ||
            harness_read_response(c, &r, false, 10) != 0)
            goto fail;
        if (r.status != 200 || (l->body && strcmp(r.body, l->body) != 0)) {
            snprintf(l->why, sizeof l->why, "request %d: status %d body %.40s",
                     i, r.status, r.body);
            hresp_free(&r);
            l->failed++;
            continue;
        }
        l->ok++;
        conn = hresp_header(&r, "Connection");
        if (!l->keepalive || (conn && strcasecmp(conn, "close") == 0)) {
            harness_close(c);
            c = NULL;
        }
        hresp_free(&r);
        continue;
fail:
        snprintf(l->why, sizeof l->why, "request %d: %s", i, harness_error());
        l->failed++;
        if (c)
            harness_close(c);
        c = NULL;
    }
    if (c)
        harness_close(c);
    return NULL;
}

static void load_sync(int port, int n, bool keepalive, const char *body)
{
    struct load l = {.port = port, .requests = n, .keepalive = keepalive,
                     .path = "/", .body = body};

    run_load(&l);
    ck_assert_msg(l.failed == 0, "%d of %d failed: %s", l.failed, n, l.why);
}

/* ---- samplers: /stats read throughout a load -------------------------- */

struct sampler {
    int port;
    volatile bool stop;
    int samples;
    int min_serving;       /* workers_serving, lowest seen */
    int max_recycling;     /* replacing + retiring for a soft reason */
    double max_memory;     /* any worker's memory, highest seen */
    char max_worker[512];  /* the /stats object it was seen in */
};

static void count_recycling(const char *obj, void *arg)
{
    int *n = arg;

    if (str_is(obj, "phase", "replacing") ||
        (str_is(obj, "phase", "retiring") &&
         (str_is(obj, "reason", "max_requests") || str_is(obj, "reason", "max_rss") ||
          str_is(obj, "reason", "max_lifetime"))))
        (*n)++;
}

static void max_memory(const char *obj, void *arg)
{
    struct sampler *s = arg;
    double v = num(obj, "memory");

    if (v > s->max_memory) {
        s->max_memory = v;
        snprintf(s->max_worker, sizeof s->max_worker, "%.*s",
                 (int)(strchr(obj, '}') - obj + 1), obj);
    }
}

static void *run_sampler(void *arg)
{
    struct sampler *s = arg;

    s->min_serving = 1 << 30;
    while (!s->stop) {
        char *j = stats(s->port);
        int recycling = 0;
        if (j == NULL)
            continue;
        if (num(j, "workers_serving") < s->min_serving)
            s->min_serving = (int)num(j, "workers_serving");
        each_worker(j, count_recycling, &recycling);
        each_worker(j, max_memory, s);
        if (recycling > s->max_recycling)
            s->max_recycling = recycling;
        s->samples++;
        free(j);
    }
    return NULL;
}

/* Runs nthreads clients (half keep-alive) with a sampler alongside. */
static void load_sampled(int port, int admin, int nthreads, int per_thread,
                         const char *body, struct sampler *s)
{
    pthread_t t[16], st;
    struct load l[16];
    int failed = 0;
    char why[160] = "";

    *s = (struct sampler){.port = admin};
    ck_assert(pthread_create(&st, NULL, run_sampler, s) == 0);
    for (int i = 0; i < nthreads; i++) {
        l[i] = (struct load){.port = port, .requests = per_thread,
                             .keepalive = i % 2 == 0, .path = "/", .body = body};
        ck_assert(pthread_create(&t[i], NULL, run_load, &l[i]) == 0);
    }
    for (int i = 0; i < nthreads; i++) {
        pthread_join(t[i], NULL);
        failed += l[i].failed;
        if (l[i].failed && !why[0])
            memcpy(why, l[i].why, sizeof why);
    }
    s->stop = true;
    pthread_join(st, NULL);
    ck_assert_msg(failed == 0, "%d of %d requests failed: %s", failed,
                  nthreads * per_thread, why);
    ck_assert_msg(s->samples > 0, "no /stats sample taken");
}

static double idle_rss(int admin)
{
    char *j = stats(admin);
    struct sampler s = {0};

    ck_assert(j != NULL);
    each_worker(j, max_memory, &s);
    free(j);
    return s.max_memory;
}

/* ---- tests ---------------------------------------------------------------- */

/* Without jitter every worker retires after exactly max_requests, plus the
 * few it serves while its replacement starts. */
START_TEST(test_max_requests)
{
    char *mod = module("PREFORKD_APPS", "hello");
    /* A budget that never binds: an exiting worker holds its place in the
     * budget until it is gone, which under ASan takes a while. */
    struct hdaemon *d = start(mod, 1, "max_requests = 50\nmax_concurrent_recycles = 3\n", NULL);
    long served[32];
    int n;

    for (int i = 0; i < 40 && harness_log_count(d, RETIRED("max_requests")) < 4; i++)
        load_sync(d->port, 50, true, "Hello, World!\n");
    ck_assert(harness_log_wait(d, RETIRED("max_requests"), 4, 10));
    n = harness_log_numbers(d, RETIRED("max_requests"), 1, served, 32);
    for (int i = 0; i < n; i++) {
        ck_assert_msg(served[i] >= 50, "retired after %ld requests", served[i]);
        ck_assert_msg(served[i] <= 150, "served %ld, limit 50", served[i]);
    }
    free(mod);
}
END_TEST

struct limits_seen {
    long v[64];
    int n;
};

static void collect_limit(const char *obj, void *arg)
{
    struct limits_seen *s = arg;
    long v = (long)num(obj, "request_limit");

    if (!str_is(obj, "state", "serving")) /* not drawn yet while starting */
        return;
    for (int i = 0; i < s->n; i++)
        if (s->v[i] == v && v >= 0)
            return; /* the same worker seen again (most likely) */
    if (s->n < 64)
        s->v[s->n++] = v;
}

/* With jitter each worker draws its own limit in [N, N + J]. */
START_TEST(test_max_requests_jitter)
{
    char *mod = module("PREFORKD_APPS", "hello");
    struct hdaemon *d = start(mod, 2, "max_requests = 20\nmax_requests_jitter = 200\n"
                              "max_concurrent_recycles = 4\n", NULL);
    int admin = admin_port(d);
    struct limits_seen seen = {0};

    for (int round = 0; round < 20 && seen.n < 6; round++) {
        char *j;
        load_sync(d->port, 60, true, NULL);
        j = stats(admin);
        each_worker(j, collect_limit, &seen);
        free(j);
    }
    ck_assert_msg(seen.n >= 3, "only %d distinct limits", seen.n);
    for (int i = 0; i < seen.n; i++)
        ck_assert_msg(seen.v[i] >= 20 && seen.v[i] <= 220, "limit %ld", seen.v[i]);
    free(mod);
}
END_TEST

/* max_rss with a leaking app: workers are recycled for memory, and no
 * worker is ever seen far beyond the limit. */
START_TEST(test_max_rss)
{
    char *mod = module("PREFORKD_APPS", "leak");
    struct hdaemon *probe = start(mod, 1, "", "leak_bytes = 0");
    double base = idle_rss(admin_port(probe));
    char recycle[128];
    struct hdaemon *d;
    struct sampler s;
    double limit = base + 16.0 * 1024 * 1024, leak = 256 * 1024;

    harness_daemon_stop(probe, SIGTERM, 10);
    /* A budget per worker: a worker waiting for its turn keeps serving and
     * growing by design (test_recycle_budget covers the budget). */
    snprintf(recycle, sizeof recycle, "max_rss = %.0f\nmax_concurrent_recycles = 4\n", limit);
    d = start(mod, 2, recycle, "leak_bytes = 256K");
    load_sampled(d->port, admin_port(d), 2, 300, "leaked 262144 bytes\n", &s);
    ck_assert(harness_log_wait(d, RETIRED("max_rss"), 2, 10));
    /* Crossing is seen on the request that crosses; a worker then serves
     * at most about one request per connection until it retires. */
    ck_assert_msg(s.max_memory <= limit + 4 * leak,
                  "a worker reached %.0f bytes, limit %.0f: %s", s.max_memory,
                  limit, s.max_worker);
    ck_assert_int_ge(s.min_serving, 2);
    free(mod);
}
END_TEST

static void min_rss(const char *obj, void *arg)
{
    double *m = arg, v = num(obj, "rss");

    if (*m < 0 || v < *m)
        *m = v;
}

/* Pages preloaded in the master and shared copy-on-write count in RSS but
 * not in USS: with memory_metric = uss, nobody is recycled for them. */
START_TEST(test_memory_metric_uss)
{
    char *mod = module("PREFORKD_TEST_APPS", "preload64");
    struct hdaemon *d = start(mod, 2, "max_rss = 48M\nmemory_metric = uss\n", NULL);
    int admin = admin_port(d);
    double rss = -1;
    char *j;

    load_sync(d->port, 300, true, "ok\n");
    j = stats(admin);
    each_worker(j, min_rss, &rss);
    ck_assert_msg(rss > 48.0 * 1024 * 1024, "rss %.0f: the shared pages are missing", rss);
    ck_assert_msg(num(j, "max_rss") == 0, "recycled for shared pages: %s", j);
    free(j);
    harness_daemon_stop(d, SIGTERM, 10);

    /* The same with rss: the shared pages count, workers are recycled. */
    d = start(mod, 2, "max_rss = 48M\nmemory_metric = rss\n", NULL);
    load_sync(d->port, 50, true, "ok\n");
    ck_assert(harness_log_wait(d, RETIRED("max_rss"), 1, 10));
    free(mod);
}
END_TEST

/* A worker whose loop is blocked misses its heartbeat: killed, replaced. */
START_TEST(test_timeout)
{
    char *mod = module("PREFORKD_TEST_APPS", "block");
    struct hdaemon *d = start(mod, 1, "", NULL);
    int admin = admin_port(d);
    struct hconn *c = harness_connect(d->port);
    char *j;

    harness_send_str(c, "GET /block HTTP/1.1\r\nHost: t\r\n\r\n");
    ck_assert(harness_log_wait(d, "timeout: no heartbeat for", 1, 10));
    ck_assert(harness_log_wait(d, RETIRED("timeout"), 1, 10));
    ck_assert_int_eq(harness_wait_closed(c, 5), 1); /* the killed worker's socket */
    harness_close(c);
    load_sync(d->port, 5, true, "ok\n");
    j = stats(admin);
    ck_assert_msg(num(j, "timeout") == 1, "%s", j);
    free(j);
    free(mod);
}
END_TEST

/* Over max_rss_hard the master kills the worker and replaces it. */
START_TEST(test_max_rss_hard)
{
    char *mod = module("PREFORKD_APPS", "leak");
    struct hdaemon *probe = start(mod, 1, "", "leak_bytes = 0");
    double base = idle_rss(admin_port(probe));
    char recycle[128];
    struct hdaemon *d;
    int admin;
    char *j;

    harness_daemon_stop(probe, SIGTERM, 10);
    snprintf(recycle, sizeof recycle, "max_rss_hard = %.0f\n", base + 24.0 * 1024 * 1024);
    d = start(mod, 1, recycle, "leak_bytes = 1M");
    admin = admin_port(d);
    for (int i = 0; i < 200 && harness_log_count(d, "max_rss_hard: memory") == 0; i++) {
        struct load l = {.port = d->port, .requests = 1, .path = "/"};
        run_load(&l); /* may fail: the worker is killed under it */
    }
    ck_assert(harness_log_wait(d, RETIRED("max_rss_hard"), 1, 10));
    load_sync(d->port, 3, false, "leaked 1048576 bytes\n");
    j = stats(admin);
    ck_assert_msg(num(j, "max_rss_hard") >= 1, "%s", j);
    free(j);
    free(mod);
}
END_TEST

START_TEST(test_max_lifetime)
{
    char *mod = module("PREFORKD_APPS", "hello");
    struct hdaemon *d = start(mod, 1, "max_lifetime = 1s\n", NULL);
    double t0 = harness_now();

    ck_assert(harness_log_wait(d, RETIRED("max_lifetime"), 1, 10));
    ck_assert(harness_now() - t0 >= 0.9);
    load_sync(d->port, 3, true, "Hello, World!\n");
    free(mod);
}
END_TEST

/* A worker over max_requests is held until min_lifetime has passed. */
START_TEST(test_min_lifetime)
{
    char *mod = module("PREFORKD_APPS", "hello");
    struct hdaemon *d = start(mod, 1, "max_requests = 5\nmin_lifetime = 3s\n", NULL);
    double t0 = harness_now();

    load_sync(d->port, 30, true, "Hello, World!\n");
    /* Must not happen before min_lifetime (3 s from the worker's start). */
    ck_assert_msg(!harness_log_wait(d, RETIRED("max_requests"), 1, 1.5),
                  "recycled before min_lifetime");
    ck_assert(harness_log_wait(d, RETIRED("max_requests"), 1, 10));
    ck_assert(harness_now() - t0 >= 2.5);
    free(mod);
}
END_TEST

/* Under load with constant recycling: never more than the budget retiring
 * at once, never fewer than `workers` serving. */
START_TEST(test_recycle_budget)
{
    char *mod = module("PREFORKD_APPS", "hello");
    struct hdaemon *d = start(mod, 4, "max_requests = 25\nmax_concurrent_recycles = 1\n", NULL);
    struct sampler s;

    int admin = admin_port(d);

    for (int i = 0; i < 20 && harness_log_count(d, RETIRED("max_requests")) < 10; i++) {
        load_sampled(d->port, admin, 4, 100, "Hello, World!\n", &s);
        ck_assert_msg(s.max_recycling <= 1, "%d recycling at once", s.max_recycling);
        ck_assert_msg(s.min_serving >= 4, "only %d serving", s.min_serving);
    }
    ck_assert_int_ge(harness_log_count(d, RETIRED("max_requests")), 10);
    free(mod);
}
END_TEST

static void first_pid(const char *obj, void *arg)
{
    long *pid = arg;

    if (*pid == 0)
        *pid = (long)num(obj, "pid");
}

/* USR2 to a worker: a snapshot in the log, and the same worker serves on. */
START_TEST(test_usr2_snapshot)
{
    char *mod = module("PREFORKD_APPS", "hello");
    struct hdaemon *d = start(mod, 1, "", NULL);
    int admin = admin_port(d);
    char *j = stats(admin);
    long pid = 0, after = 0;

    each_worker(j, first_pid, &pid);
    free(j);
    ck_assert_int_gt(pid, 0);
    ck_assert_int_eq(kill((pid_t)pid, SIGUSR2), 0);
    ck_assert(harness_log_wait(d, "snapshot: rss [0-9.]+[KMG] uss .* fds [0-9]+", 1, 5));
    load_sync(d->port, 5, true, "Hello, World!\n");
    j = stats(admin);
    each_worker(j, first_pid, &after);
    free(j);
    ck_assert_int_eq(after, pid);
    free(mod);
}
END_TEST

/* The promise: recycling hundreds of times under load fails no request. */
START_TEST(test_zero_failed_requests)
{
    char *mod = module("PREFORKD_APPS", "leak");
    struct hdaemon *d = start(mod, 2, "max_requests = 10\nmax_requests_jitter = 5\n"
                              "max_concurrent_recycles = 2\n", "leak_bytes = 16K");
    struct sampler s;
    int admin = admin_port(d), recycled = 0, requests = 0;
    double t0 = harness_now();

    /* At least 3000 requests and 100 recycles, within a minute. */
    while ((requests < 3000 || recycled < 100) && harness_now() - t0 < 60) {
        load_sampled(d->port, admin, 6, 100, "leaked 16384 bytes\n", &s);
        ck_assert_msg(s.min_serving >= 2, "only %d serving", s.min_serving);
        requests += 600;
        recycled = harness_log_count(d, RETIRED("max_requests"));
    }
    ck_assert_msg(recycled >= 100, "only %d recycles in %d requests", recycled, requests);
    free(mod);
}
END_TEST

int main(void)
{
    const char *asan = getenv("ASAN_OPTIONS");
    char opts[512];
    Suite *s = suite_create("recycle");
    TCase *tc = tcase_create("recycle");
    SRunner *sr;
    int failed;

    /* In a sanitizer build, LeakSanitizer's scan at every worker exit walks
     * all the memory the leak app holds on purpose: tens of milliseconds per
     * worker, which distorts the hand-overs measured here. test_daemon and
     * the unit tests keep leak detection on preforkd's own code. */
    snprintf(opts, sizeof opts, "%s%sdetect_leaks=0", asan ? asan : "", asan ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    tcase_add_checked_fixture(tc, harness_begin, harness_end);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_max_requests);
    tcase_add_test(tc, test_max_requests_jitter);
    tcase_add_test(tc, test_max_rss);
    tcase_add_test(tc, test_memory_metric_uss);
    tcase_add_test(tc, test_timeout);
    tcase_add_test(tc, test_max_rss_hard);
    tcase_add_test(tc, test_max_lifetime);
    tcase_add_test(tc, test_min_lifetime);
    tcase_add_test(tc, test_recycle_budget);
    tcase_add_test(tc, test_usr2_snapshot);
    tcase_add_test(tc, test_zero_failed_requests);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
