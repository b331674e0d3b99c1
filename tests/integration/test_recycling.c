/*
 * test_recycling.c - integration tests of worker recycling (src/worker/recycle.c,
 * src/master/master.c): soft limits measured by workers, the spawn-before-retire
 * replacement, the recycle budget, the master's hard limits, accounting and
 * the USR2 snapshot. The real daemon on 127.0.0.1:0, observed through its
 * log and the admin endpoint's /stats (the scoreboard).
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "load.h"

#define RETIRED(reason) "retired: " reason " \\(.*\\); ([0-9]+) requests"

/* ---- the daemon ----------------------------------------------------------- */

static struct hdaemon *start(const char *module_path, int workers, const char *recycle,
                             const char *app_keys)
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

/* ---- what a sampler looks for in /stats ----------------------------------- */

struct watch {
    int min_serving;      /* workers_serving, lowest seen */
    int max_recycling;    /* replacing + retiring for a soft reason */
    double max_memory;    /* any worker's memory, highest seen */
    char max_worker[512]; /* the /stats object it was seen in */
};

static void count_recycling(const char *obj, void *arg)
{
    int *n = arg;

    if (stats_str_is(obj, "phase", "replacing") ||
        (stats_str_is(obj, "phase", "retiring") &&
         (stats_str_is(obj, "reason", "max_requests") ||
          stats_str_is(obj, "reason", "max_rss") ||
          stats_str_is(obj, "reason", "max_lifetime"))))
        (*n)++;
}

static void max_memory(const char *obj, void *arg)
{
    struct watch *w = arg;
    double v = stats_num(obj, "memory");

    if (v > w->max_memory) {
        w->max_memory = v;
        snprintf(w->max_worker, sizeof w->max_worker, "%.*s",
                 (int)(strchr(obj, '}') - obj + 1), obj);
    }
}

static void watch_sample(const char *json, void *arg)
{
    struct watch *w = arg;
    int recycling = 0;

    if (stats_num(json, "workers_serving") < w->min_serving)
        w->min_serving = (int)stats_num(json, "workers_serving");
    stats_each_worker(json, count_recycling, &recycling);
    stats_each_worker(json, max_memory, w);
    if (recycling > w->max_recycling)
        w->max_recycling = recycling;
}

/* nthreads clients with a /stats watch alongside. */
static void load_watched(int port, int admin, int nthreads, int per_thread,
                         const char *body, struct watch *w)
{
    struct sampler s = {.port = admin, .fn = watch_sample, .arg = w};

    *w = (struct watch){.min_serving = 1 << 30};
    load_concurrent(port, nthreads, per_thread, body, &s, NULL, NULL);
}

static double idle_rss(int admin)
{
    char *j = stats_get(admin);
    struct watch w = {0};

    ck_assert(j != NULL);
    stats_each_worker(j, max_memory, &w);
    free(j);
    return w.max_memory;
}

/* ---- tests ---------------------------------------------------------------- */

/* Counts the serving workers whose first accept /stats shows, checking
 * that it came after they started serving. */
static void boot_times(const char *obj, void *arg)
{
    int *accepted = arg; /* workers that have accepted */
    double boot = stats_num(obj, "boot_ms"), first = stats_num(obj, "first_accept_ms");

    if (!stats_str_is(obj, "state", "serving"))
        return;
    ck_assert_msg(boot > 0, "boot_ms %f in %s", boot, obj);
    if (first > 0) { /* null (0 here) until the worker accepts */
        ck_assert_msg(first >= boot, "first_accept_ms %f before boot_ms %f", first, boot);
        (*accepted)++;
    }
}

struct accepted {
    struct hdaemon *d;
    int n;
};

/* One request, then: does a serving worker show its first accept? (The
 * worker that took the request may have been recycled meanwhile.) */
static bool one_accepted(void *arg)
{
    struct accepted *a = arg;
    char *j;

    load_sync(a->d->port, 1, false, "Hello, World!\n");
    j = stats_get(stats_admin_port(a->d));
    ck_assert_ptr_nonnull(j);
    a->n = 0;
    stats_each_worker(j, boot_times, &a->n);
    free(j);
    return a->n > 0;
}

/* /stats tells how long each worker took from fork to serving and to its
 * first connection: the latter once it has taken one. */
static void check_boot_times(struct hdaemon *d)
{
    struct accepted a = {d, 0};

    ck_assert_msg(harness_wait_for(one_accepted, &a, 10),
                  "no serving worker with first_accept_ms");
}

/* Without jitter every worker asks for its replacement after exactly
 * max_requests, and serves a few more while the replacement starts. */
START_TEST(test_max_requests)
{
    char *mod = load_module_path("PREFORKD_APPS", "hello");
    /* A budget that never binds: an exiting worker holds its place in the
     * budget until it is gone, which under ASan takes a while. */
    struct hdaemon *d = start(mod, 1,
                              "max_requests = 50\nmax_concurrent_recycles = 3\n"
                              "[log]\nlevel = debug\n",
                              NULL);
    long served[32];
    int n;

    /* Until 4 have retired: how many requests that takes depends on how
     * fast replacements start (the old worker serves until then). */
    for (double t0 = harness_now(); harness_log_count(d, RETIRED("max_requests")) < 4;) {
        ck_assert_msg(harness_now() - t0 < 30, "%d retired in 30 s",
                      harness_log_count(d, RETIRED("max_requests")));
        load_sync(d->port, 50, true, "Hello, World!\n");
    }
    n = harness_log_numbers(d, RETIRED("max_requests"), 1, served, 32);
    for (int i = 0; i < n; i++)
        ck_assert_msg(served[i] >= 50, "retired after %ld requests", served[i]);
    /* Each asks for its replacement at exactly its limit. How many more it
     * serves until the replacement serves depends on the machine's load,
     * so that is not asserted. */
    n = harness_log_numbers(d, "max_requests reached \\(([0-9]+) requests", 1, served,
                            32);
    ck_assert_int_ge(n, 4);
    for (int i = 0; i < n; i++)
        ck_assert_msg(served[i] == 50, "asked at %ld requests, limit 50", served[i]);
    check_boot_times(d);
    free(mod);
}
END_TEST

/* One keep-alive request on c; asserts a 200 that keeps the connection. */
static void keepalive_request(struct hconn *c, int i)
{
    struct hresp r;

    harness_send_str(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    harness_expect_response(c, &r, false, "a request on a kept connection");
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(hresp_header(&r, "Connection") == NULL, "request %d: Connection: %s", i,
                  hresp_header(&r, "Connection"));
    hresp_free(&r);
}

/* A recycle is one info line, the master's retirement line (reason,
 * requests, age, memory, growth); its steps (asked, replacement spawned and
 * serving, retiring) are at debug: 785 recycles made 6,058 lines before. */
START_TEST(test_one_info_line_per_recycle)
{
    char *mod = load_module_path("PREFORKD_APPS", "hello");
    struct hdaemon *d = start(mod, 2, "max_requests = 10\n", NULL);
    char *text, *line, *save = NULL;
    bool after_ready = false;
    int retired = 0;

    /* A worker serves on until its replacement does: how many requests 4
     * recycles take depends on the machine. */
    for (double t0 = harness_now(); harness_log_count(d, RETIRED("max_requests")) < 4;) {
        ck_assert_msg(harness_now() - t0 < 30, "%d retired in 30 s",
                      harness_log_count(d, RETIRED("max_requests")));
        load_sync(d->port, 20, false, "Hello, World!\n");
    }
    ck_assert(harness_daemon_stop(d, SIGTERM, 10));
    text = harness_log_text(d);
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strstr(line, "received SIGTERM"))
            break;
        /* From the first recycle on (the first workers' "serving" lines
         * may come after the master's "ready"). */
        after_ready = after_ready || strstr(line, "retired: ") != NULL;
        if (after_ready && strstr(line, " [info] ")) {
            ck_assert_msg(strstr(line,
                                 "retired: max_requests (exited with status 0); ") &&
                              strstr(line, " requests in ") &&
                              strstr(line, "; memory ") &&
                              strstr(line, "growth per 1000 requests"),
                          "an info line that is not a retirement: %s", line);
            retired++;
        }
    }
    ck_assert_int_ge(retired, 4);
    free(text);
    free(mod);
}
END_TEST

/* Keep-alive clients outlive the workers that serve them: each worker that
 * is recycled hands its idle connections to a serving worker instead of
 * closing them (several in one message when it retires), so no client
 * reconnects or sees a close. One client drives the recycles; seven wait
 * idle and are used again at the end. */
START_TEST(test_keepalive_survives_recycling)
{
    char *mod = load_module_path("PREFORKD_APPS", "hello");
    /* The handoff lines are at debug. */
    struct hdaemon *d = start(mod, 2,
                              "max_requests = 20\nmax_concurrent_recycles = 2\n"
                              "[log]\nlevel = debug\n",
                              NULL);
    struct hconn *c[8];
    int i = 0;

    for (int k = 0; k < 8; k++) {
        c[k] = harness_connect(d->port);
        keepalive_request(c[k], -1);
    }
    /* Until 5 workers have handed off: how many requests that takes
     * depends on how fast replacements start. */
    for (double t0 = harness_now(); harness_log_count(d, "handed [0-9]+ idle") < 5; i++) {
        ck_assert_msg(harness_now() - t0 < 30, "%d handoffs in %d requests, 30 s",
                      harness_log_count(d, "handed [0-9]+ idle"), i);
        keepalive_request(c[0], i);
    }
    ck_assert(harness_log_wait(d, RETIRED("max_requests"), 5, 10));
    for (int k = 0; k < 8; k++) {
        keepalive_request(c[k], k);
        ck_assert(!c[k]->eof && !c[k]->reset);
        harness_close(c[k]);
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
    long v = (long)stats_num(obj, "request_limit");

    if (!stats_str_is(obj, "state", "serving")) /* not drawn yet while starting */
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
    char *mod = load_module_path("PREFORKD_APPS", "hello");
    struct hdaemon *d = start(mod, 2,
                              "max_requests = 20\nmax_requests_jitter = 200\n"
                              "max_concurrent_recycles = 4\n",
                              NULL);
    int admin = stats_admin_port(d);
    struct limits_seen seen = {0};

    for (double t0 = harness_now(); seen.n < 6 && harness_now() - t0 < 30;) {
        char *j;
        load_sync(d->port, 60, true, NULL);
        j = stats_get(admin);
        stats_each_worker(j, collect_limit, &seen);
        free(j);
    }
    ck_assert_msg(seen.n >= 3, "only %d distinct limits", seen.n);
    for (int i = 0; i < seen.n; i++)
        ck_assert_msg(seen.v[i] >= 20 && seen.v[i] <= 220, "limit %ld", seen.v[i]);
    free(mod);
}
END_TEST

/* max_rss with a leaking app: workers are recycled for memory; each asks
 * for its replacement before it passes the limit by more than the request
 * that crosses it (it reads its memory after every request near the limit),
 * and none is ever seen far beyond it. */
START_TEST(test_max_rss)
{
    char *mod = load_module_path("PREFORKD_APPS", "leak");
    struct hdaemon *probe = start(mod, 1, "", "leak_bytes = 0");
    double base = idle_rss(stats_admin_port(probe));
    char recycle[128];
    struct hdaemon *d;
    struct watch s;
    double limit = base + 16.0 * 1024 * 1024, leak = 256 * 1024;
    long mib[64], tenth[64];
    int n;

    harness_daemon_stop(probe, SIGTERM, 10);
    /* A budget per worker: a worker waiting for its turn keeps serving and
     * growing by design (test_recycle_budget covers the budget). */
    snprintf(recycle, sizeof recycle,
             "max_rss = %.0f\nmax_concurrent_recycles = 4\n"
             "[log]\nlevel = debug\n",
             limit);
    d = start(mod, 2, recycle, "leak_bytes = 256K");
    load_watched(d->port, stats_admin_port(d), 2, 300, "leaked 262144 bytes\n", &s);
    ck_assert(harness_log_wait(d, RETIRED("max_rss"), 2, 10));
#define ASKED "max_rss reached \\([0-9]+ requests, ([0-9]+)\\.([0-9])M"
    n = harness_log_numbers(d, ASKED, 1, mib, 64);
    ck_assert_int_eq(harness_log_numbers(d, ASKED, 2, tenth, 64), n);
    ck_assert_int_ge(n, 2);
    for (int i = 0; i < n; i++) {
        double asked = (mib[i] + tenth[i] / 10.0) * 1024 * 1024;
        ck_assert_msg(asked <= limit + leak + 0.1 * 1024 * 1024,
                      "asked for a replacement at %ld.%ldM, limit %.0f", mib[i], tenth[i],
                      limit);
    }
#undef ASKED
    /* Past the limit a worker takes no new connection while another worker
     * does; when every other one is past it too, it goes on serving, up to
     * a quarter past the limit, then waits for its replacement. Each of the
     * two clients' connections may bring one more request. */
    ck_assert_msg(s.max_memory <= limit * 1.25 + 3 * leak,
                  "a worker reached %.0f bytes, limit %.0f: %s", s.max_memory, limit,
                  s.max_worker);
    ck_assert_int_ge(s.min_serving, 2);
    free(mod);
}
END_TEST

/* One GET on a new connection; the pid that served it, or 0 if no response
 * came within timeout (the connection is then left in *pending). */
static long gate_get(int port, double timeout, struct hconn **pending)
{
    struct hconn *c = harness_connect(port);
    struct hresp r;
    long pid = 0;

    harness_send_str(c, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    if (harness_read_response(c, &r, false, timeout) == 0) {
        ck_assert_int_eq(r.status, 200);
        ck_assert(sscanf(r.body, "pid %ld", &pid) == 1);
    }
    hresp_free(&r);
    if (pid == 0 && pending != NULL)
        *pending = c;
    else
        harness_close(c);
    return pid;
}

/* The pid that served the request waiting on c; closes c. */
static long waited_pid(struct hconn *c)
{
    struct hresp r;
    long pid = 0;

    harness_expect_response(c, &r, false, "a request that waited");
    ck_assert_int_eq(r.status, 200);
    ck_assert(sscanf(r.body, "pid %ld", &pid) == 1);
    hresp_free(&r);
    harness_close(c);
    return pid;
}

/* Requests one at a time until the only worker is a quarter past max_rss
 * (for the nth time in the log) and stops accepting: the request that finds
 * it so waits in the listen backlog and is returned. Asserts where the
 * worker stopped, from /stats. */
static struct hconn *drive_far_over(struct hdaemon *d, int nth, long pid, double limit,
                                    double leak)
{
    struct hconn *pending = NULL;
    struct watch w = {0};
    char *j;

    for (double t0 = harness_now(); pending == NULL;) {
        long got;

        ck_assert_msg(harness_now() - t0 < 30, "not a quarter past max_rss in 30 s");
        if (harness_log_count(d, "by a quarter: no new connections") >= nth) {
            pending = harness_connect(d->port);
            harness_send_str(pending,
                             "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
            break;
        }
        /* The log line usually comes before the next request; if not,
         * that request is the one that waits. */
        if ((got = gate_get(d->port, 5, &pending)) != 0)
            ck_assert_int_eq(got, pid);
    }
    ck_assert(pending != NULL);
    ck_assert(harness_log_wait(d, "by a quarter: no new connections", nth, 5));
    j = stats_get(stats_admin_port(d));
    ck_assert_ptr_nonnull(j);
    stats_each_worker(j, max_memory, &w);
    free(j);
    ck_assert_msg(w.max_memory >= limit * 1.25 && w.max_memory <= limit * 1.25 + 2 * leak,
                  "stopped at %.0f bytes, limit %.0f: %s", w.max_memory, limit,
                  w.max_worker);
    return pending;
}

/* When every worker is past max_rss (here the only one), the last one
 * serves on up to a quarter past the limit, then waits for its
 * replacement, which is held in its worker_init; the requests meanwhile
 * wait in the backlog and are served by the replacement. When no
 * replacement can start (worker_init fails), the worker accepts again. */
START_TEST(test_max_rss_far_over)
{
    char *mod = load_module_path("PREFORKD_TEST_APPS", "gate");
    struct hdaemon *probe = start(mod, 1, "", NULL);
    double base = idle_rss(stats_admin_port(probe));
    double limit = base + 4.0 * 1024 * 1024, leak = 256 * 1024;
    char recycle[96], keys[640], hold[256], fail[256];
    struct hdaemon *d;
    struct hconn *pending, *late;
    long first, second;

    harness_daemon_stop(probe, SIGTERM, 10);
    snprintf(hold, sizeof hold, "%s/hold", probe->dir);
    snprintf(fail, sizeof fail, "%s/fail", probe->dir);
    snprintf(recycle, sizeof recycle, "max_rss = %.0f\n", limit);
    snprintf(keys, sizeof keys, "leak_bytes = 256K\nhold_file = %s\nfail_file = %s\n",
             hold, fail);
    d = start(mod, 1, recycle, keys);
    first = gate_get(d->port, 10, NULL);
    ck_assert_int_gt(first, 0);
    harness_write_file(hold, "", 0);
    pending = drive_far_over(d, 1, first, limit, leak);
    ck_assert(harness_log_wait(d, "gate: held while", 1, 10)); /* the replacement */
    late = harness_connect(d->port); /* waits in the backlog too */
    harness_send_str(late, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    ck_assert_int_eq(unlink(hold), 0);
    /* Both are served by the replacement, not by the worker past the limit. */
    second = waited_pid(pending);
    ck_assert_int_ne(second, first);
    ck_assert_int_eq(waited_pid(late), second);
    ck_assert(harness_log_wait(d, RETIRED("max_rss"), 1, 10));

    /* Now no replacement can start: the worker past the limit takes
     * connections again, from a heartbeat (timeout 2s: every 0.5s). */
    harness_write_file(fail, "", 0);
    pending = drive_far_over(d, 2, second, limit, leak);
    ck_assert(
        harness_log_wait(d, "no other worker serves or starts: accepting again", 1, 20));
    ck_assert_int_eq(waited_pid(pending), second);
    ck_assert_int_eq(gate_get(d->port, 10, NULL), second);
    ck_assert_int_eq(unlink(fail), 0);
    free(mod);
}
END_TEST

static void min_rss(const char *obj, void *arg)
{
    double *m = arg, v = stats_num(obj, "rss");

    if (*m < 0 || v < *m)
        *m = v;
}

/* Pages preloaded in the master and shared copy-on-write count in RSS but
 * not in USS: with memory_metric = uss, nobody is recycled for them. */
START_TEST(test_memory_metric_uss)
{
    char *mod = load_module_path("PREFORKD_TEST_APPS", "preload64");
    struct hdaemon *d = start(mod, 2, "max_rss = 48M\nmemory_metric = uss\n", NULL);
    int admin = stats_admin_port(d);
    double rss = -1;
    char *j;

    load_sync(d->port, 300, true, "ok\n");
    j = stats_get(admin);
    stats_each_worker(j, min_rss, &rss);
    ck_assert_msg(rss > 48.0 * 1024 * 1024, "rss %.0f: the shared pages are missing",
                  rss);
    ck_assert_msg(stats_num(j, "max_rss") == 0, "recycled for shared pages: %s", j);
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
    char *mod = load_module_path("PREFORKD_TEST_APPS", "block");
    struct hdaemon *d = start(mod, 1, "", NULL);
    int admin = stats_admin_port(d);
    struct hconn *c = harness_connect(d->port);
    char *j;

    harness_send_str(c, "GET /block?x=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    ck_assert(harness_log_wait(d,
                               "timeout: no heartbeat for [0-9.]+s, the app still "
                               "on GET /block\\?x=1, killing it",
                               1, 10));
    ck_assert(harness_log_wait(d, RETIRED("timeout"), 1, 10));
    ck_assert_int_eq(harness_wait_closed(c, 5), 1); /* the killed worker's socket */
    harness_close(c);
    load_sync(d->port, 5, true, "ok\n");
    j = stats_get(admin);
    ck_assert_msg(stats_num(j, "timeout") == 1, "%s", j);
    free(j);
    free(mod);
}
END_TEST

/* Over max_rss_hard the master kills the worker and replaces it. */
START_TEST(test_max_rss_hard)
{
    char *mod = load_module_path("PREFORKD_APPS", "leak");
    struct hdaemon *probe = start(mod, 1, "", "leak_bytes = 0");
    double base = idle_rss(stats_admin_port(probe));
    char recycle[128];
    struct hdaemon *d;
    int admin;
    char *j;

    harness_daemon_stop(probe, SIGTERM, 10);
    snprintf(recycle, sizeof recycle, "max_rss_hard = %.0f\n", base + 24.0 * 1024 * 1024);
    d = start(mod, 1, recycle, "leak_bytes = 1M");
    admin = stats_admin_port(d);
    for (int i = 0; i < 200 && harness_log_count(d, "max_rss_hard: memory") == 0; i++) {
        struct load l = {.port = d->port, .requests = 1};
        load_run(&l); /* may fail: the worker is killed under it */
    }
    ck_assert(harness_log_wait(d, RETIRED("max_rss_hard"), 1, 10));
    load_sync(d->port, 3, false, "leaked 1048576 bytes\n");
    j = stats_get(admin);
    ck_assert_msg(stats_num(j, "max_rss_hard") >= 1, "%s", j);
    free(j);
    free(mod);
}
END_TEST

START_TEST(test_max_lifetime)
{
    char *mod = load_module_path("PREFORKD_APPS", "hello");
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
    char *mod = load_module_path("PREFORKD_APPS", "hello");
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
    char *mod = load_module_path("PREFORKD_APPS", "hello");
    struct hdaemon *d = start(mod, 4, "max_requests = 25\nmax_concurrent_recycles = 1\n",
                              NULL);
    struct watch s;

    int admin = stats_admin_port(d);

    for (double t0 = harness_now();
         harness_log_count(d, RETIRED("max_requests")) < 10 && harness_now() - t0 < 30;) {
        load_watched(d->port, admin, 4, 100, "Hello, World!\n", &s);
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
        *pid = (long)stats_num(obj, "pid");
}

/* USR2 to a worker: a snapshot in the log, and the same worker serves on. */
START_TEST(test_usr2_snapshot)
{
    char *mod = load_module_path("PREFORKD_APPS", "hello");
    struct hdaemon *d = start(mod, 1, "", NULL);
    int admin = stats_admin_port(d);
    char *j = stats_get(admin);
    long pid = 0, after = 0;

    stats_each_worker(j, first_pid, &pid);
    free(j);
    ck_assert_int_gt(pid, 0);
    ck_assert_int_eq(kill((pid_t)pid, SIGUSR2), 0);
    ck_assert(harness_log_wait(d, "snapshot: rss [0-9.]+[KMG] uss .* fds [0-9]+", 1, 5));
    load_sync(d->port, 5, true, "Hello, World!\n");
    j = stats_get(admin);
    stats_each_worker(j, first_pid, &after);
    free(j);
    ck_assert_int_eq(after, pid);
    free(mod);
}
END_TEST

/* The promise: recycling hundreds of times under load fails no request. */
START_TEST(test_zero_failed_requests)
{
    char *mod = load_module_path("PREFORKD_APPS", "leak");
    struct hdaemon *d = start(mod, 2,
                              "max_requests = 10\nmax_requests_jitter = 5\n"
                              "max_concurrent_recycles = 2\n",
                              "leak_bytes = 16K");
    struct watch s;
    int admin = stats_admin_port(d), recycled = 0, requests = 0;
    double t0 = harness_now();

    /* At least 3000 requests and 100 recycles, within a minute. */
    while ((requests < 3000 || recycled < 100) && harness_now() - t0 < 60) {
        load_watched(d->port, admin, 6, 100, "leaked 16384 bytes\n", &s);
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
    TCase *tc = harness_tcase(s, "recycle", 90);

    /* In a sanitizer build, LeakSanitizer's scan at every worker exit walks
     * all the memory the leak app holds on purpose: tens of milliseconds per
     * worker, which distorts the replacements measured here. test_daemon and
     * the unit tests keep leak detection on preforkd's own code. */
    snprintf(opts, sizeof opts, "%s%sdetect_leaks=0", asan ? asan : "", asan ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    tcase_add_test(tc, test_max_requests);
    tcase_add_test(tc, test_keepalive_survives_recycling);
    tcase_add_test(tc, test_one_info_line_per_recycle);
    tcase_add_test(tc, test_max_requests_jitter);
    tcase_add_test(tc, test_max_rss);
    tcase_add_test(tc, test_max_rss_far_over);
    tcase_add_test(tc, test_memory_metric_uss);
    tcase_add_test(tc, test_timeout);
    tcase_add_test(tc, test_max_rss_hard);
    tcase_add_test(tc, test_max_lifetime);
    tcase_add_test(tc, test_min_lifetime);
    tcase_add_test(tc, test_recycle_budget);
    tcase_add_test(tc, test_usr2_snapshot);
    tcase_add_test(tc, test_zero_failed_requests);
    return harness_run_suite(s);
}
