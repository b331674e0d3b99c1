/*
 * test_metrics.c - integration tests of the figures an app publishes about
 * its worker (pf_worker_heap, pf_metric_set: src/worker/metrics.c) as the master
 * shows them: /stats (heaps with growth slopes, app rows), /metrics (each
 * family together, escaped labels), the retirement line (which heap grew),
 * and the bounded table; and the daemon's own figures: responses by status
 * class and their duration histogram, exact across recycles, a SIGKILL and
 * a reload; per-worker series labelled by worker id; build info. Every
 * scrape checked goes through promtool (ops_promtool_check).
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"
#include "opsutil.h"
#include "paths.h"
#include "preforkd.h"

static char *get(int port, const char *path)
{
    struct hconn *c = harness_connect(port);
    struct hresp r;
    char req[128], *body;

    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    harness_send_str(c, req);
    harness_expect_response(c, &r, false, path);
    ck_assert_int_eq(r.status, 200);
    body = strdup(r.body);
    hresp_free(&r);
    harness_close(c);
    return body;
}

/* Every sample line belongs to the family of the TYPE line above it: each
 * family together, as the text format requires (a histogram's samples are
 * NAME_bucket, NAME_sum and NAME_count). */
static void expect_grouped(char *text)
{
    char family[96] = "", type[16] = "", *line, *save = NULL, *copy = strdup(text);

    for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t n, f;
        if (sscanf(line, "# TYPE %95s %15s", family, type) == 2 || line[0] == '#')
            continue;
        n = strcspn(line, "{ ");
        f = strlen(family);
        ck_assert_msg(strncmp(line, family, f) == 0 &&
                          (n == f ||
                           (strcmp(type, "histogram") == 0 &&
                            ((n == f + 7 && strncmp(line + f, "_bucket", 7) == 0) ||
                             (n == f + 4 && strncmp(line + f, "_sum", 4) == 0) ||
                             (n == f + 6 && strncmp(line + f, "_count", 6) == 0)))),
                      "%s outside its family (%s): %s", line, family, text);
    }
    free(copy);
}

/* The value of the sample `series` (name and labels as printed), or -1. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);

    for (const char *p = text; p != NULL && *p;
         p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

/* How many sample lines start with prefix. */
static int samples_of(const char *text, const char *prefix)
{
    int k = 0;

    for (const char *p = text; p != NULL && *p;
         p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        k += strncmp(p, prefix, strlen(prefix)) == 0;
    return k;
}

static char *admin_get(int port, const char *path)
{
    return get(port, path);
}

static double sample(const char *text, const char *series);
static void expect_worker_ids(const char *m, int workers);

START_TEST(test_figures)
{
    char *mod = load_module_path("PREFORKD_TEST_APPS", "figures");
    struct hdaemon *d = harness_daemon_new();
    struct hconn *c;
    int admin;
    char *j, *m, why[128];
    double per_k;

    harness_daemon_config(
        d,
        "[server]\nlisten = 127.0.0.1:0\nworkers = 1\n"
        "[recycle]\nmax_rss = 1G\n[app]\nmodule = %s\n[admin]\nlisten = 127.0.0.1:0\n",
        mod);
    free(mod);
    harness_daemon_spawn(d, NULL);
    harness_daemon_wait_ready(d, 10);
    admin = stats_admin_port(d);
    c = harness_connect(d->port);
    for (int i = 0; i < 400; i++) {
        struct hresp r;
        harness_send_str(c, i % 4 == 3 ? "GET /b HTTP/1.1\r\nHost: t\r\n\r\n"
                                       : "GET /a HTTP/1.1\r\nHost: t\r\n\r\n");
        harness_expect_response(c, &r, false, "GET /a or /b");
        ck_assert_int_eq(r.status, 200);
        hresp_free(&r);
    }
    harness_close(c);
    j = admin_get(admin, "/stats");
    ck_assert_msg(ops_json_valid(j, why, sizeof why), "%s: %s", why, j);
    ck_assert_msg(ops_num(j, "toy") == (1 << 20) + 300 * 2048, "%s", j);
    /* 2048 bytes on 3 requests of 4: 1.536 MB per 1000 requests. */
    per_k = ops_num(j, "toy_growth_per_1k_requests");
    ck_assert_msg(per_k > 1.3e6 && per_k < 1.8e6, "toy growth %f: %s", per_k, j);
    /* Under ASan malloc is the sanitizer's, and mallinfo2 says 0. */
    ck_assert_msg(ops_num(j, "c") > 0 || (getenv("PREFORKD_SANITIZE") &&
                                          strcmp(getenv("PREFORKD_SANITIZE"), "1") == 0 &&
                                          ops_num(j, "c") == 0),
                  "%s", j);
    ck_assert_msg(strstr(j, "{\"name\": \"hits\", \"label\": \"/a\", \"value\": 300}") &&
                      strstr(j,
                             "{\"name\": \"hits\", \"label\": \"/b\", \"value\": 100}"),
                  "%s", j);
    free(j);
    m = admin_get(admin, "/metrics");
    ck_assert_msg(
        strstr(m, "# TYPE preforkd_app_hits gauge\n") &&
            strstr(m, "\npreforkd_app_hits{worker=\"1\",label=\"/a\"} 300\n") &&
            strstr(m, "\npreforkd_app_hits{worker=\"1\",label=\"/b\"} 100\n") &&
            strstr(m, "\npreforkd_worker_heap_bytes{worker=\"1\",heap=\"toy\"} ") &&
            strstr(m, "\npreforkd_worker_heap_bytes{worker=\"1\",heap=\"c\"} "),
        "%s", m);
    expect_grouped(m);
    expect_worker_ids(m, 1);
    ops_promtool_check(d->dir, m);
    free(m);
    /* 16 rows a worker: 2 taken by hits, 14 fit of 20. */
    j = get(d->port, "/fill");
    ck_assert_str_eq(j, "14\n");
    free(j);
    free(get(d->port, "/clear"));
    j = admin_get(admin, "/stats");
    ck_assert_msg(strstr(j, "\"fill\"") == NULL, "%s", j);
    free(j);
    j = get(d->port, "/fill");
    ck_assert_str_eq(j, "14\n");
    free(j);
    j = get(d->port, "/leaving");
    ck_assert_str_eq(j, "(null)\n");
    free(j);
    /* The retirement line says which heap grew; the app knew why it left. */
    ck_assert(harness_daemon_stop(d, SIGTERM, 10));
    ck_assert_msg(
        harness_log_count(d, "retired: shutdown .*; heaps: toy 1\\.[0-9]M "
                             "\\(\\+1\\.[3-7]M/1000 requests\\), c [0-9.]+[BKM] ") == 1,
        "%s", harness_log_tail(d, 1500));
    ck_assert_int_eq(harness_log_count(d, "worker 1: figures: leaving: shutdown"), 1);
}
END_TEST

/* ---- requests, durations, worker ids, build info -------------------------- */

/* What the recycles test has sent, and what /metrics must say of it. */
struct sent {
    int ok, errors;
};

/* A 400 (a header line without a colon) and a 413 (a body over
 * max_body_size): the server's own error responses. */
static void send_errors(int port, struct sent *n)
{
    struct hresp r;

    harness_roundtrip(port, "GET / HTTP/1.1\r\nHost: t\r\nno colon here\r\n\r\n", &r);
    ck_assert_int_eq(r.status, 400);
    hresp_free(&r);
    harness_roundtrip(port, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n",
                      &r);
    ck_assert_int_eq(r.status, 413);
    hresp_free(&r);
    n->errors += 2;
}

/* /metrics says exactly what was sent: every response counted once, by
 * status class and in the histogram, recycled workers' included. */
static char *expect_counts(int admin, const struct sent *n)
{
    char *m = admin_get(admin, "/metrics");
    double count = sample(m, "preforkd_request_duration_seconds_count"), prev = 0;

    ck_assert_msg(sample(m, "preforkd_requests_total{status=\"2xx\"}") == n->ok &&
                      sample(m, "preforkd_requests_total{status=\"4xx\"}") == n->errors &&
                      sample(m, "preforkd_requests_total{status=\"5xx\"}") == 0 &&
                      sample(m, "preforkd_requests_total{status=\"3xx\"}") == 0,
                  "sent %d 200s and %d 4xx:\n%s", n->ok, n->errors, m);
    ck_assert_msg(
        count == n->ok + n->errors &&
            sample(m, "preforkd_request_duration_seconds_bucket{le=\"+Inf\"}") == count &&
            (sample(m, "preforkd_request_duration_seconds_sum") > 0) == (count > 0),
        "histogram count %g, %d sent:\n%s", count, n->ok + n->errors, m);
    for (const char *p = m;
         (p = strstr(p, "\npreforkd_request_duration_seconds_bucket{")); p++) {
        double v = strtod(strchr(p, '}') + 2, NULL);
        ck_assert_msg(v >= prev, "buckets not cumulative:\n%s", m);
        prev = v;
    }
    return m;
}

/* Per-worker series are labelled by worker id (1..workers), once each,
 * never by pid; the pid is a gauge of its own. */
static void expect_worker_ids(const char *m, int workers)
{
    char want[96];

    ck_assert_msg(strstr(m, "pid=\"") == NULL, "a pid label:\n%s", m);
    ck_assert_int_eq(samples_of(m, "preforkd_worker_requests{"), workers);
    ck_assert_int_eq(samples_of(m, "preforkd_worker_pid{"), workers);
    for (int id = 1; id <= workers; id++) {
        snprintf(want, sizeof want, "preforkd_worker_pid{worker=\"%d\"}", id);
        ck_assert_msg(sample(m, want) > 1, "%s:\n%s", want, m);
        snprintf(want, sizeof want, "preforkd_worker_memory_bytes{worker=\"%d\"}", id);
        ck_assert_msg(sample(m, want) > 0, "%s:\n%s", want, m);
    }
}

static double retired(int admin, const char *reason)
{
    char *m = admin_get(admin, "/metrics"), series[96];
    double v;

    snprintf(series, sizeof series, "preforkd_workers_retired_total{reason=\"%s\"}",
             reason);
    v = sample(m, series);
    free(m);
    return v;
}

static void count_generation_1(const char *obj, void *arg)
{
    *(int *)arg += ops_num(obj, "generation") == 1;
}

/* requests_total and the histogram go on across max_requests recycles, a
 * worker killed with SIGKILL and a reload, exactly equal to what was sent
 * after every round; workers keep their id labels. */
START_TEST(test_requests_survive_recycles)
{
    char *mod = load_module_path("PREFORKD_APPS", "hello"), *m, want[128];
    struct hdaemon *d = harness_daemon_new();
    struct sent n = {0, 0};
    int admin;
    double end = harness_now() + 40, victim;

    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0\nworkers = 2\n"
                          "max_body_size = 16\n[recycle]\nmax_requests = 10\n"
                          "max_requests_jitter = 0\nmax_concurrent_recycles = 2\n"
                          "[app]\nmodule = %s\n[admin]\nlisten = 127.0.0.1:0\n",
                          mod);
    free(mod);
    harness_daemon_spawn(d, NULL);
    harness_daemon_wait_ready(d, 10);
    admin = stats_admin_port(d);
    free(expect_counts(admin, &n));
    while (retired(admin, "max_requests") < 6) {
        ck_assert_msg(harness_now() < end, "%g recycles in 40 s",
                      retired(admin, "max_requests"));
        load_sync(d->port, 15, false, "Hello, World!\n");
        n.ok += 15;
        send_errors(d->port, &n);
        free(expect_counts(admin, &n));
    }
    /* A worker's last counts are in its slot when it is killed outright:
     * the master reads them when it reaps it. */
    load_sync(d->port, 5, false, "Hello, World!\n");
    n.ok += 5;
    m = expect_counts(admin, &n);
    victim = sample(m, "preforkd_worker_pid{worker=\"1\"}");
    free(m);
    ck_assert(victim > 1);
    kill((pid_t)victim, SIGKILL);
    /* Reaped once /stats no longer lists it (counted as a crash, or by the
     * reason the master had already decided, e.g. max_requests). */
    snprintf(want, sizeof want, "\"pid\": %.0f,", victim);
    for (;;) {
        m = admin_get(admin, "/stats");
        if (strstr(m, want) == NULL)
            break;
        free(m);
        ck_assert_msg(harness_now() < end + 10, "the killed worker was not reaped");
        harness_pause(0.02);
    }
    free(m);
    free(expect_counts(admin, &n));
    /* A reload retires the whole generation: wait until it is reaped. */
    kill(d->pid, SIGHUP);
    ck_assert(harness_log_wait(d, "reload done", 1, 10));
    for (;;) {
        int old = 0;

        m = admin_get(admin, "/stats");
        ops_each_worker(m, count_generation_1, &old);
        free(m);
        if (old == 0)
            break;
        ck_assert_msg(harness_now() < end + 20, "generation 1 still has %d workers", old);
        harness_pause(0.02);
    }
    load_sync(d->port, 5, false, "Hello, World!\n");
    n.ok += 5;
    send_errors(d->port, &n);
    m = expect_counts(admin, &n);
    expect_worker_ids(m, 2);
    snprintf(want, sizeof want, "\npreforkd_build_info{version=\"%s\",abi=\"%d\"} 1\n",
             PF_VERSION, PF_ABI_VERSION);
    ck_assert_msg(strstr(m, want) != NULL, "no %s in:\n%s", want + 1, m);
    expect_grouped(m);
    ops_promtool_check(d->dir, m);
    free(m);
    m = admin_get(admin, "/stats");
    ck_assert_msg(ops_num(m, "2xx") == n.ok && ops_num(m, "4xx") == n.errors &&
                      ops_num(m, "total") == n.ok + n.errors &&
                      ops_num(m, "+Inf") == n.ok + n.errors,
                  "%d and %d: %s", n.ok, n.errors, m);
    free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = harness_tcase(s, "metrics", 90);

    tcase_add_test(tc, test_figures);
    tcase_add_test(tc, test_requests_survive_recycles);
    return harness_run_suite(s);
}
