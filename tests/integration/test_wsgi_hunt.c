/*
 * test_wsgi_hunt.c - integration tests of leak hunting in the wsgi module
 * (src/apps/wsgi/hunt.c, routes.c, trace.c): the real build/preforkd
 * serving tests/wsgi/huntapp.py (a Flask app with a leaking route) on
 * 127.0.0.1 ephemeral ports, driven with the real preforkctl. tracemalloc
 * on demand (start, dump naming the leaking line, stop replacing the
 * worker) under load with nothing lost; a worker too busy to answer; the
 * census at a max_rss retirement naming the leaking type; the figures and
 * the route that retains the most blocks per request, first in /stats.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"
#include "opsutil.h"

#define LEAK_LINE "tests/wsgi/huntapp.py:25: +" /* KEPT.append(Leaky(...)) */

static char admin[64];

/* A daemon serving huntapp with [server] and [app] extra lines. */
static struct hdaemon *start(int workers, const char *server, const char *app)
{
    struct hdaemon *d = harness_daemon_new();
    char *mod = harness_path("PREFORKD_APPS", "wsgi.so"), *dir;

    ck_assert(asprintf(&dir, "%s/tests/wsgi", harness_env("PREFORKD_SRC")) > 0);
    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0\nworkers = %d\n"
                          "graceful_timeout = 5s\n%s\n"
                          "[app]\nmodule = %s\napp = huntapp:application\n"
                          "python_path = %s\n%s\n"
                          "[admin]\nlisten = 127.0.0.1:0\n[log]\nlevel = info\n",
                          workers, server, mod, dir, app);
    free(mod);
    free(dir);
    harness_daemon_spawn(d, NULL);
    harness_daemon_wait_ready(d, 20);
    snprintf(admin, sizeof admin, "127.0.0.1:%d", stats_admin_port(d));
    return d;
}

/* preforkctl -a ADMIN args... (up to 7, NULL after the last); its exit
 * code, output in *out. */
static int ctl7(char **out, const char *a1, const char *a2, const char *a3,
                const char *a4, const char *a5, const char *a6, const char *a7)
{
    const char *argv[] = {
        harness_env("PREFORKD_CTL"), "-a", admin, a1, a2, a3, a4, a5, a6, a7, NULL};

    return ops_run(argv, out, 20);
}

static int ctl(char **out, const char *a1, const char *a2, const char *a3, const char *a4,
               const char *a5, const char *a6)
{
    return ctl7(out, a1, a2, a3, a4, a5, a6, NULL);
}

/* n GETs of target on one keep-alive connection, each a 200. */
static void gets(int port, const char *target, int n)
{
    struct hconn *c = harness_connect(port);
    char req[256];

    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", target);
    for (int i = 0; i < n; i++) {
        struct hresp r;

        harness_send_str(c, req);
        harness_expect_response(c, &r, false, target);
        ck_assert_msg(r.status == 200, "GET %s: %d", target, r.status);
        hresp_free(&r);
    }
    harness_close(c);
}

/* The first growth line of a dump (after its header line). */
static const char *first_growth(const char *out)
{
    const char *nl = strchr(out, '\n');

    return nl != NULL ? nl + 1 : "";
}

/* start, dump (twice), snapshot and stop under load: the dump names the
 * leaking line first, nothing fails, and the worker is replaced. */
START_TEST(test_trace_under_load)
{
    struct hdaemon *d = start(1, "", "threads = 1\n");
    struct load_bg bg;
    char *out;

    load_bg_start(&bg, d->port, 4, "ok\n");
    ck_assert_int_eq(ctl(&out, "trace", "dump", "1", NULL, NULL, NULL), 1);
    ck_assert_msg(strstr(out, "trace dump: 409: worker 1 (pid ") &&
                      strstr(out, ") is not tracing: trace start 1 first"),
                  "%s", out);
    free(out);
    ck_assert_int_eq(ctl(&out, "trace", "start", "1", NULL, NULL, NULL), 0);
    ck_assert_msg(strstr(out, "tracemalloc started on worker 1 (pid ") &&
                      strstr(out, "1 frame(s) a trace; baseline taken"),
                  "%s", out);
    free(out);
    gets(d->port, "/leak", 40);
    for (int round = 0; round < 2; round++) { /* repeatable */
        ck_assert_int_eq(ctl(&out, "trace", "dump", "1", "--top", "3", NULL), 0);
        ck_assert_msg(strstr(out, "of tracing (traced now ") &&
                          strstr(out, "the top 3, by size:\n"),
                      "%s", out);
        ck_assert_msg(strstr(first_growth(out), LEAK_LINE) &&
                          strstr(first_growth(out), " KiB (+") &&
                          strstr(first_growth(out), " blocks)\n"),
                      "%s", out);
        ck_assert_ptr_null(strstr(out, "tracemalloc.py"));
        ck_assert_ptr_null(strstr(out, "<preforkd trace>"));
        free(out);
        gets(d->port, "/leak", 10);
    }
    ck_assert_int_eq(ctl(&out, "snapshot", "1", NULL, NULL, NULL, NULL), 0);
    ck_assert_msg(strncmp(out, "rss ", 4) == 0, "%s", out);
    free(out);
    ck_assert_int_eq(ctl(&out, "trace", "stop", "1", NULL, NULL, NULL), 0);
    ck_assert_msg(strstr(out, "tracemalloc stopped on worker 1 (pid ") &&
                      strstr(out, "the worker is replaced"),
                  "%s", out);
    free(out);
    ck_assert_msg(harness_log_wait(d,
                                   "worker 1 \\(pid [0-9]+, generation 1\\) "
                                   "retired: requested",
                                   1, 10),
                  "%s", harness_log_tail(d, 3000));
    load_bg_stop(&bg);
    /* The replacement does not trace. */
    ck_assert_int_eq(ctl(&out, "trace", "stop", "1", NULL, NULL, NULL), 1);
    ck_assert_msg(strstr(out, "trace stop: 409: worker 1 (pid ") &&
                      strstr(out, "is not tracing"),
                  "%s", out);
    free(out);
    ck_assert_int_eq(harness_log_count(d, "command \"trace start\": 200"), 1);
    ck_assert_int_eq(harness_log_count(d, "command \"trace dump top=3\": 200"), 2);
}
END_TEST

/* threads = 0: a 3-second request blocks the loop, so a command waits
 * for it or times out with a clear message. Traceback mode (--frames),
 * a second start, and arguments the module does not know. */
START_TEST(test_trace_busy_frames_usage)
{
    struct hdaemon *d = start(1, "timeout = 60s", "threads = 0\n");
    struct hconn *c;
    struct hresp r;
    char *out, req[160];

    ck_assert_int_eq(ctl(&out, "trace", "start", "1", "--frames", "8", NULL), 0);
    ck_assert_msg(strstr(out, "8 frame(s) a trace"), "%s", out);
    free(out);
    ck_assert_int_eq(ctl(&out, "trace", "start", "1", NULL, NULL, NULL), 1);
    ck_assert_msg(strstr(out, "trace start: 409: worker 1 (pid ") &&
                      strstr(out, "is already tracing (8 frame(s), for "),
                  "%s", out);
    free(out);
    snprintf(req, sizeof req,
             "POST /workers/1/trace/flush HTTP/1.1\r\nHost: t\r\n"
             "Content-Length: 0\r\nConnection: close\r\n\r\n");
    harness_roundtrip(stats_admin_port(d), req, &r);
    ck_assert_int_eq(r.status, 400);
    ck_assert_msg(strstr(r.body, "usage: trace start [frames=N] | trace dump "
                                 "[top=N] | trace stop (frames 1..100, top 1..500), got "
                                 "\"flush\""),
                  "%s", r.body);
    hresp_free(&r);
    gets(d->port, "/leak", 20);

    c = harness_connect(d->port);
    harness_send_str(c, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
    ck_assert_int_eq(ctl(&out, "-t", "1", "trace", "dump", "1", NULL), 1);
    ck_assert_msg(strstr(out, "504: worker 1 (pid") &&
                      strstr(out, "did not answer within 1s: its loop is busy"),
                  "%s", out);
    free(out);
    ck_assert_int_eq(ctl7(&out, "-t", "10", "trace", "dump", "1", "--top", "2"), 0);
    ck_assert_msg(strstr(first_growth(out), LEAK_LINE) && strstr(out, "\n    from ") &&
                      strstr(out, "flask/app.py:"),
                  "%s", out);
    free(out);
    harness_expect_response(c, &r, false, "/slow");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "slow\n");
    hresp_free(&r);
    harness_close(c);
}
END_TEST

/* ---- figures and routes -------------------------------------------------------- */

/* The label of the first python_route_retained_blocks row (the top one),
 * into out; false when there is none yet. */
static bool top_route(const char *json, char *out, size_t len)
{
    static const char k[] = "\"name\": \"python_route_retained_blocks\", \"label\": \"";
    const char *p = json != NULL ? strstr(json, k) : NULL;

    if (p == NULL)
        return false;
    p += sizeof(k) - 1;
    snprintf(out, len, "%.*s", (int)strcspn(p, "\""), p);
    return true;
}

struct routes_wait {
    int port;
    char top[64];
    bool ok_row;
};

static bool routes_ranked(void *arg)
{
    struct routes_wait *w = arg;
    char *json = stats_get(w->port);
    bool ok = top_route(json, w->top, sizeof w->top) &&
              strstr(json, "\"label\": \"GET /ok\"") != NULL;

    free(json);
    return ok;
}

/* Three routes, one leaking: it ranks first (route_segments = 1: /ok/N
 * is one key). The always-on figures are there too. */
START_TEST(test_routes_and_figures)
{
    struct hdaemon *d = start(1, "", "threads = 1\nroute_segments = 1\n");
    struct routes_wait w = {.port = stats_admin_port(d)};
    char *json, *out;
    const char *blocks;

    for (int i = 0; i < 5; i++) {
        gets(d->port, "/leak", 30);
        gets(d->port, "/ok/3", 30);
        gets(d->port, "/", 30);
    }
    ck_assert_msg(harness_wait_for(routes_ranked, &w, 10), "%s", stats_get(w.port));
    ck_assert_str_eq(w.top, "GET /leak");
    json = stats_get(w.port);
    blocks = strstr(json, "{\"name\": \"python_allocated_blocks\", \"label\": \"\", "
                          "\"value\": ");
    ck_assert_msg(blocks != NULL && atol(strstr(blocks, "\"value\": ") + 9) > 10000, "%s",
                  json);
    ck_assert_msg(
        strstr(json, "{\"name\": \"python_gc_collections\", \"label\": \"gen0\", ") &&
            strstr(json, "{\"name\": \"python_gc_collections\", \"label\": \"gen2\", ") &&
            strstr(json, "{\"name\": \"python_gc_uncollectable\", \"label\": \"\", "
                         "\"value\": 0}"),
        "%s", json);
    ck_assert_ptr_null(strstr(json, "\"label\": \"GET /ok/3\""));
    free(json);
    ck_assert_int_eq(ctl(&out, "status", NULL, NULL, NULL, NULL, NULL), 0);
    ck_assert_msg(strstr(out, "python_route_retained_blocks \"GET /leak\" "), "%s", out);
    free(out);
}
END_TEST

/* hunt = false: no figures, no routes. */
START_TEST(test_hunt_off)
{
    struct hdaemon *d = start(1, "", "threads = 0\nhunt = false\n");
    char *json;

    gets(d->port, "/leak", 20);
    json = stats_get(stats_admin_port(d));
    ck_assert_msg(json != NULL && strstr(json, "\"app\": []") &&
                      !strstr(json, "python_allocated_blocks"),
                  "%s", json);
    free(json);
}
END_TEST

/* ---- the census ---------------------------------------------------------------- */

/* A route that keeps 256 KiB a request, contained by max_rss (uss): the
 * retiring worker's census names the type it keeps. */
START_TEST(test_census_at_max_rss)
{
    struct hdaemon *d = start(1, "[recycle]\nmax_rss = 40M\nmemory_metric = uss",
                              "threads = 1\ncensus_after = 20\n");
    struct load l = {.port = d->port,
                     .path = "/leak?kb=256",
                     .requests = 400,
                     .keepalive = true};

    load_run(&l);
    ck_assert_msg(l.failed == 0 && l.ok == 400, "%d ok, %d failed: %s", l.ok, l.failed,
                  l.why);
    ck_assert_msg(harness_log_wait(d, "retired: max_rss", 1, 10), "%s",
                  harness_log_tail(d, 3000));
    ck_assert_msg(harness_log_wait(d,
                                   "worker 1: wsgi: census of objects after 20 "
                                   "requests \\(the baseline",
                                   1, 5),
                  "%s", harness_log_tail(d, 3000));
    ck_assert_msg(harness_log_wait(d,
                                   "worker 1: wsgi: grew since boot: "
                                   "huntapp\\.Leaky \\+[0-9]+[ ,].*; census in "
                                   "[0-9.]+ ms\\)$",
                                   1, 5),
                  "%s", harness_log_tail(d, 3000));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("wsgi_hunt");
    TCase *tc = harness_tcase(s, "wsgi_hunt", 60);

    tcase_add_test(tc, test_trace_under_load);
    tcase_add_test(tc, test_trace_busy_frames_usage);
    tcase_add_test(tc, test_routes_and_figures);
    tcase_add_test(tc, test_hunt_off);
    tcase_add_test(tc, test_census_at_max_rss);
    return harness_run_suite(s);
}
