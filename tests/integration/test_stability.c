/*
 * test_stability.c - resource stability of long-lived workers: 100 000
 * requests, keep-alive and Connection: close, half of them served directly
 * (hello) and half proxied (proxy, to the fake upstream of tests/lib/fakeup.c),
 * by two workers per daemon that must never be recycled. After a warm-up of
 * 10 % and again at the end, with every client gone and the upstream pools
 * drained (idle_timeout), each worker's open fds (/proc/PID/fd) must be the
 * same and its RSS (VmRSS) must not have grown by more than 512 KiB (not
 * checked under ASan, whose quarantine grows on purpose). The figures are
 * printed for the record. Runs in the test process; the harness stops the
 * daemons, fakeup_stop the upstream.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fakeup.h"
#include "harness.h"
#include "load.h"

#define TOTAL 100000        /* requests in all, both daemons */
#define WARMUP (TOTAL / 10) /* before the first measurement */
#define WORKERS 2           /* per daemon */
#define CLIENTS 4           /* per daemon: 2 keep-alive, 2 close */
#define RSS_GROWTH_MAX_KIB 512
#define SETTLE_TIMEOUT 30.0
#ifdef __SANITIZE_ADDRESS__
#define RSS_CHECKED false /* ASan's quarantine grows on purpose */
#else
#define RSS_CHECKED true
#endif

/* One worker, measured at rest. */
struct sample {
    int pid;
    int fds;
    long rss_kib;
};

/* A daemon under test and its workers at the two measurement points. */
struct side {
    const char *name;
    struct hdaemon *d;
    int admin;         /* admin endpoint port */
    const char *body;  /* every response's body */
    struct fakeup *up; /* its upstream, or NULL */
    struct sample at[2][WORKERS];
};

/* ---- daemons ---------------------------------------------------------------- */

/* module with WORKERS workers that are never recycled by count (the limit
 * is far above what each serves) and an admin endpoint; app and upstream
 * are extra config lines. */
static void side_start(struct side *s, const char *module, const char *app,
                       const char *upstream)
{
    char *mod = load_module_path("PREFORKD_APPS", module);

    s->d = harness_daemon_new();
    harness_daemon_config(s->d,
                          "[server]\nlisten = 127.0.0.1:0\nworkers = %d\n"
                          "pidfile = %s\n"
                          "[recycle]\nmax_requests = 10000000\n"
                          "[app]\nmodule = %s\n%s\n%s\n"
                          "[admin]\nlisten = 127.0.0.1:0\n",
                          WORKERS, s->d->pidfile, mod, app, upstream);
    free(mod);
    harness_daemon_spawn(s->d, NULL);
    harness_daemon_wait_ready(s->d, 20);
    s->admin = stats_admin_port(s->d);
}

/* ---- measuring ---------------------------------------------------------------- */

/* What /stats says about the workers: pids in slot order, connections. */
struct view {
    int n;
    int pid[WORKERS + 4];
    int connections; /* open client connections, all workers */
};

static void view_worker(const char *obj, void *arg)
{
    struct view *v = arg;

    if (v->n < (int)(sizeof v->pid / sizeof v->pid[0]))
        v->pid[v->n] = (int)stats_num(obj, "pid");
    v->n++;
    v->connections += (int)stats_num(obj, "connections");
}

static bool view_read(const struct side *s, struct view *v)
{
    char *json = stats_get(s->admin);

    memset(v, 0, sizeof *v);
    if (json == NULL)
        return false;
    stats_each_worker(json, view_worker, v);
    free(json);
    return true;
}

/* At rest: WORKERS workers, no client connection, no upstream one. */
static bool settled(void *arg)
{
    const struct side *s = arg;
    struct view v;

    return view_read(s, &v) && v.n == WORKERS && v.connections == 0 &&
           (s->up == NULL || fakeup_open(s->up) == 0);
}

static void measure(struct side *s, int k)
{
    struct view v;

    ck_assert_msg(harness_wait_for(settled, s, SETTLE_TIMEOUT),
                  "%s: workers not at rest within %.0f s (upstream connections "
                  "open: %d)",
                  s->name, SETTLE_TIMEOUT, s->up ? fakeup_open(s->up) : 0);
    ck_assert(view_read(s, &v));
    ck_assert_int_eq(v.n, WORKERS);
    for (int i = 0; i < WORKERS; i++) {
        s->at[k][i].pid = v.pid[i];
        s->at[k][i].fds = harness_proc_fds(v.pid[i]);
        s->at[k][i].rss_kib = harness_proc_rss_kib(v.pid[i]);
    }
}

/* ---- load ---------------------------------------------------------------------- */

/* per_client requests from CLIENTS clients on each side at once: half of
 * them keep-alive, half Connection: close. Asserts every answer. */
static void load_both(struct side *sides, int nsides, int per_client)
{
    pthread_t t[4 * CLIENTS];
    struct load l[4 * CLIENTS];
    int n = nsides * CLIENTS, failed = 0, ok = 0;
    const char *why = "";

    ck_assert(n <= (int)(sizeof t / sizeof t[0]));
    for (int i = 0; i < n; i++) {
        const struct side *s = &sides[i / CLIENTS];

        l[i] = (struct load){.port = s->d->port,
                             .requests = per_client,
                             .keepalive = i % 2 == 0,
                             .body = s->body};
        ck_assert(pthread_create(&t[i], NULL, load_run, &l[i]) == 0);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        ok += l[i].ok;
        failed += l[i].failed;
        if (l[i].failed)
            why = l[i].why;
    }
    ck_assert_msg(failed == 0, "%d of %d requests failed: %s", failed, n * per_client,
                  why);
    ck_assert_int_eq(ok, n * per_client);
}

/* ---- the test ------------------------------------------------------------------- */

static void report(const struct side *s, int requests)
{
    for (int i = 0; i < WORKERS; i++) {
        const struct sample *a = &s->at[0][i], *b = &s->at[1][i];

        printf("stability: %s worker %d (pid %d), %d requests on the daemon: "
               "fds %d -> %d, rss %ld -> %ld KiB (%+ld KiB)\n",
               s->name, i + 1, a->pid, requests, a->fds, b->fds, a->rss_kib, b->rss_kib,
               b->rss_kib - a->rss_kib);
    }
    fflush(stdout);
}

static void check_side(const struct side *s)
{
    ck_assert_msg(harness_log_count(s->d, "master: worker [0-9]+ spawned") == WORKERS,
                  "%s: workers were replaced:\n%s", s->name,
                  harness_log_tail(s->d, 2000));
    ck_assert_int_eq(harness_log_count(s->d, "retired: "), 0);
    for (int i = 0; i < WORKERS; i++) {
        const struct sample *a = &s->at[0][i], *b = &s->at[1][i];

        ck_assert_msg(a->pid == b->pid, "%s: worker %d was pid %d, is %d", s->name, i + 1,
                      a->pid, b->pid);
        ck_assert_msg(a->fds == b->fds,
                      "%s: worker %d (pid %d): %d fds after "
                      "the warm-up, %d at the end",
                      s->name, i + 1, a->pid, a->fds, b->fds);
        ck_assert_msg(!RSS_CHECKED || b->rss_kib - a->rss_kib < RSS_GROWTH_MAX_KIB,
                      "%s: worker %d (pid %d): RSS grew from %ld to %ld KiB", s->name,
                      i + 1, a->pid, a->rss_kib, b->rss_kib);
    }
}

START_TEST(test_100k_requests_flat)
{
    struct fakeup *up = fakeup_start(NULL);
    char upstream[160];
    struct side sides[2] = {
        {.name = "direct (hello)", .body = "Hello, World!\n"},
        {.name = "proxied (proxy)", .body = "ok\n", .up = up},
    };
    int per_client_warm = WARMUP / (2 * CLIENTS);
    int per_client_rest = (TOTAL - WARMUP) / (2 * CLIENTS);
    double t0 = harness_now();

    /* idle_timeout: pooled connections close 1 s after the load, so both
     * measurements are taken with none open. */
    snprintf(upstream, sizeof upstream,
             "[upstream b]\nservers = 127.0.0.1:%d\nidle_timeout = 1s\n",
             fakeup_port(up));
    side_start(&sides[0], "hello", "", "");
    side_start(&sides[1], "proxy", "upstream = b", upstream);

    load_both(sides, 2, per_client_warm);
    for (int k = 0; k < 2; k++)
        measure(&sides[k], 0);
    load_both(sides, 2, per_client_rest);
    for (int k = 0; k < 2; k++)
        measure(&sides[k], 1);

    ck_assert_int_eq(fakeup_requests(up), TOTAL / 2);
    for (int k = 0; k < 2; k++)
        report(&sides[k], TOTAL / 2);
    printf("stability: %d requests in %.1f s; %d upstream connections for %d "
           "proxied requests; RSS growth %s %d KiB\n",
           TOTAL, harness_now() - t0, fakeup_accepted(up), TOTAL / 2,
           RSS_CHECKED ? "checked: below" : "not checked (ASan), bound",
           RSS_GROWTH_MAX_KIB);
    for (int k = 0; k < 2; k++) {
        check_side(&sides[k]);
        harness_daemon_stop(sides[k].d, SIGTERM, 20);
    }
    fakeup_stop(up);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("stability");
    TCase *tc = harness_tcase(s, "stability", 300);

    tcase_add_test(tc, test_100k_requests_flat);
    return harness_run_suite(s);
}
