/*
 * test_proxy.c - integration tests of the `proxy` app and the worker's
 * upstream pool: the real build/preforkd proxying to a second preforkd
 * running `echo`, or to the fake upstream of tests/lib/fakeup.c (which counts
 * connections and misbehaves on request), all on ephemeral 127.0.0.1
 * ports. Checks pooling from the upstream side, stale connections, 502 /
 * 504, resets mid-body, client aborts (worker fds back to baseline),
 * header rules, request re-framing, a 100 MB response streamed with a
 * small worker RSS, and the pool's counters in /stats and /metrics. The harness stops every daemon a test starts.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "fakeup.h"
#include "harness.h"
#include "load.h"
#include "opsutil.h"

#define RE_SPAWNED \
    "master: worker ([0-9]+) spawned \\(pid ([0-9]+), generation ([0-9]+)\\)"

/* ---- helpers ----------------------------------------------------------------- */

static char *module(const char *env, const char *name)
{
    char file[64];

    snprintf(file, sizeof(file), "%s.so", name);
    return harness_path(env, file);
}

/* A proxy with one worker to upstream "b" = 127.0.0.1:port, with extra
 * [upstream b] keys and extra [app] keys. */
static struct hdaemon *start_proxy(int port, const char *ups_extra, const char *app_extra)
{
    struct hdaemon *d = harness_daemon_new();
    char *mod = module("PREFORKD_APPS", "proxy");

    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0\nworkers = 1\n"
                          "pidfile = %s\n"
                          "[app]\nmodule = %s\nupstream = b\n%s\n"
                          "[upstream b]\nservers = 127.0.0.1:%d\n%s\n"
                          "[log]\nlevel = info\n",
                          d->pidfile, mod, app_extra ? app_extra : "", port,
                          ups_extra ? ups_extra : "");
    free(mod);
    harness_daemon_spawn(d, NULL);
    harness_daemon_wait_ready(d, 10.0);
    return d;
}

static struct hdaemon *start_echo(void)
{
    char *mod = module("PREFORKD_APPS", "echo");
    struct hdaemon *d = harness_start(mod, 1, NULL);

    free(mod);
    return d;
}

/* The pid of the (first) worker of d. */
static pid_t worker_pid(struct hdaemon *d)
{
    long pid = 0;

    ck_assert(harness_log_wait(d, RE_SPAWNED, 1, 5));
    harness_log_numbers(d, RE_SPAWNED, 2, &pid, 1);
    ck_assert(pid > 0);
    return (pid_t)pid;
}

static void get(struct hconn *c, const char *target, struct hresp *r)
{
    char req[256];

    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", target);
    harness_send_str(c, req);
    harness_expect_response(c, r, false, target);
}

static void assert_ok(const struct hresp *r, const char *what)
{
    ck_assert_msg(r->status == 200, "%s: status %d", what, r->status);
    ck_assert_msg(r->body_len == 3 && memcmp(r->body, "ok\n", 3) == 0, "%s: body %s",
                  what, harness_printable(r->body, r->body_len, 80));
}

/* One request on a new connection; its status and the time it took. */
static int status_of(int port, const char *raw, double *took)
{
    struct hresp r;
    double t0 = harness_now();
    int status;

    harness_roundtrip(port, raw, &r);
    *took = harness_now() - t0;
    status = r.status;
    hresp_free(&r);
    return status;
}

static void setup(void)
{
    harness_begin();
}

static void teardown(void)
{
    harness_end();
}

/* ---- pooling ------------------------------------------------------------------ */

START_TEST(test_pool_1000_requests)
{
    struct fakeup *f = fakeup_start(NULL);
    struct hdaemon *d = start_proxy(fakeup_port(f), NULL, NULL);
    struct hconn *c = harness_connect(d->port);
    struct hresp r;

    for (int i = 0; i < 1000; i++) {
        get(c, "/n", &r);
        assert_ok(&r, "GET /n");
        hresp_free(&r);
    }
    harness_close(c);
    /* A few new client connections change nothing upstream. */
    for (int i = 0; i < 20; i++) {
        harness_roundtrip(d->port, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n", &r);
        assert_ok(&r, "GET /x");
        hresp_free(&r);
    }
    ck_assert_int_eq(fakeup_requests(f), 1020);
    ck_assert_msg(fakeup_accepted(f) <= 3,
                  "%d upstream connections for 1020 "
                  "sequential requests",
                  fakeup_accepted(f));
    harness_daemon_stop(d, SIGTERM, 10);
    fakeup_stop(f);
}
END_TEST

/* The upstream closes every connection after its response, or drops the
 * second request of each: the client never sees it. */
START_TEST(test_upstream_closes_pooled)
{
    struct fakeup_cfg close_cfg = {.close_after = true};
    struct fakeup_cfg drop_cfg = {.drop_request = 2};
    struct fakeup_cfg *cfgs[] = {&close_cfg, &drop_cfg};

    for (int k = 0; k < 2; k++) {
        struct fakeup *f = fakeup_start(cfgs[k]);
        struct hdaemon *d = start_proxy(fakeup_port(f), NULL, NULL);
        struct hconn *c = harness_connect(d->port);
        struct hresp r;

        for (int i = 0; i < 20; i++) {
            get(c, "/again", &r);
            assert_ok(&r, k == 0 ? "upstream closed idle" : "request dropped");
            hresp_free(&r);
        }
        harness_close(c);
        /* Dropped: each request after the first is sent twice. */
        ck_assert_int_eq(fakeup_requests(f), k == 0 ? 20 : 39);
        harness_daemon_stop(d, SIGTERM, 10);
        fakeup_stop(f);
    }
}
END_TEST

/* ---- counters ------------------------------------------------------------------ */

/* /stats' upstreams.b until its idle connections are none; the body. */
static char *stats_when_idle_gone(int admin)
{
    double end = harness_now() + 5;
    char *j;

    for (;;) {
        j = stats_get(admin);
        ck_assert_ptr_nonnull(j);
        if (ops_num(strstr(j, "\"upstreams\""), "idle") == 0)
            return j;
        ck_assert_msg(harness_now() < end, "still idle: %s", j);
        free(j);
        harness_pause(0.02);
    }
}

/* The counters of upstream b (the first in the file) in /stats, after 10
 * requests of which 9 were retried and one that could not connect. */
static void expect_b_counts(const char *j)
{
    const char *b = strstr(j, "\"upstreams\": {\n    \"b\": {");
    double created = ops_num(b, "created");

    ck_assert_msg(b != NULL && ops_num(b, "reused") == 9 && ops_num(b, "retried") == 9 &&
                      ops_num(b, "failed") == 1 && ops_num(b, "connect") == 1 &&
                      ops_num(b, "reset") == 0 && ops_num(b, "timed_out") == 0 &&
                      ops_num(b, "open") == 0 && ops_num(b, "idle") == 0,
                  "%s", j);
    /* The failed connect counts when the socket was made before the refusal. */
    ck_assert_msg(created == 10 || created == 11, "%s", j);
    ck_assert_msg(strstr(j, "\"unused\": {\"open\": 0, \"idle\": 0, \"created\": 0, "
                            "\"reused\": 0, \"retried\": 0, \"failed\": 0, ") != NULL,
                  "%s", j);
}

/* The pool's counters per upstream, in /stats and /metrics: a request
 * dropped on a pooled connection is retried, one that cannot connect has
 * failed; a reload replaces the worker and the counts stay. */
START_TEST(test_upstream_counters)
{
    struct fakeup_cfg fc = {.drop_request = 2};
    struct fakeup *f = fakeup_start(&fc);
    struct hdaemon *d = harness_daemon_new();
    char *mod = module("PREFORKD_APPS", "proxy"), *j, *m;
    struct hconn *c;
    struct hresp r;
    double took;
    int admin;

    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0\nworkers = 1\n"
                          "[app]\nmodule = %s\nupstream = b\n"
                          "[upstream b]\nservers = 127.0.0.1:%d\n"
                          "[upstream unused]\nservers = 127.0.0.1:9\n"
                          "[admin]\nlisten = 127.0.0.1:0\n",
                          mod, fakeup_port(f));
    free(mod);
    harness_daemon_spawn(d, NULL);
    harness_daemon_wait_ready(d, 10.0);
    admin = stats_admin_port(d);
    /* Each request after the first goes on the pooled connection, which
     * the upstream drops: sent again on a new one. */
    c = harness_connect(d->port);
    for (int i = 0; i < 10; i++) {
        get(c, "/x", &r);
        assert_ok(&r, "request dropped");
        hresp_free(&r);
    }
    harness_close(c);
    ck_assert_int_eq(fakeup_requests(f), 19);
    /* The upstream goes: its pooled connection is dropped, then nothing
     * can connect. */
    fakeup_stop(f);
    free(stats_when_idle_gone(admin));
    ck_assert_int_eq(status_of(d->port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &took), 502);
    j = stats_get(admin);
    expect_b_counts(j);
    free(j);
    /* A reload retires the worker: what it counted is kept. */
    kill(d->pid, SIGHUP);
    ck_assert(harness_log_wait(d, "retired: reload", 1, 10));
    j = stats_get(admin);
    expect_b_counts(j);
    free(j);
    m = stats_get_path(admin, "/metrics");
    ck_assert_ptr_nonnull(m);
    ck_assert_msg(
        strstr(m, "\npreforkd_upstream_requests_retried_total{upstream=\"b\"} 9\n") &&
            strstr(m, "\npreforkd_upstream_requests_reused_total{upstream=\"b\"} 9\n") &&
            strstr(m, "\npreforkd_upstream_requests_failed_total{upstream=\"b\","
                      "kind=\"connect\"} 1\n") &&
            strstr(m,
                   "\npreforkd_upstream_requests_timed_out_total{upstream=\"b\"} 0\n") &&
            strstr(m, "\npreforkd_upstream_connections_open{upstream=\"unused\"} 0\n"),
        "%s", m);
    ops_promtool_check(d->dir, m);
    free(m);
    harness_daemon_stop(d, SIGTERM, 10);
}
END_TEST

/* ---- failures ----------------------------------------------------------------- */

START_TEST(test_upstream_down_502)
{
    struct hdaemon *d = start_proxy(harness_free_port(), NULL, NULL);
    double took;

    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(status_of(d->port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &took),
                         502);
        ck_assert_msg(took < 1.0, "502 after %.3fs", took);
    }
    harness_daemon_stop(d, SIGTERM, 10);
}
END_TEST

START_TEST(test_never_answers_504)
{
    struct fakeup_cfg fc = {.silent = true};
    struct fakeup *f = fakeup_start(&fc);
    struct hdaemon *d = start_proxy(fakeup_port(f), "read_timeout = 500ms", NULL);
    double took;

    ck_assert_int_eq(status_of(d->port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &took), 504);
    ck_assert_msg(took >= 0.45 && took < 5, "504 after %.3fs", took);
    harness_daemon_stop(d, SIGTERM, 10);
    fakeup_stop(f);
}
END_TEST

START_TEST(test_invalid_response_502)
{
    struct fakeup_cfg fc = {.resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                    "Content-Length: 3\r\n\r\nabc"};
    struct fakeup *f = fakeup_start(&fc);
    struct hdaemon *d = start_proxy(fakeup_port(f), NULL, NULL);
    double took;

    ck_assert_int_eq(status_of(d->port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &took), 502);
    harness_daemon_stop(d, SIGTERM, 10);
    fakeup_stop(f);
}
END_TEST

/* A response of about cap bytes: a head, then 1000-byte chunks. */
static void build_chunked(char *b, size_t cap)
{
    int n = sprintf(b, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");

    while ((size_t)n + 1007 < cap) {
        n += sprintf(b + n, "3e8\r\n");
        memset(b + n, 'y', 1000);
        n += 1000;
        memcpy(b + n, "\r\n", 2);
        n += 2;
    }
    b[n] = '\0';
}

/* The upstream resets in the middle of the body: the client gets the head
 * and part of the body, then the connection closes; a chunked body is
 * never terminated (the client can tell it is cut). */
START_TEST(test_reset_mid_body)
{
    static char length_resp[300000], chunked_resp[300000];
    struct fakeup_cfg cfgs[2] = {
        {.resp = length_resp, .reset_after = 150000},
        {.resp = chunked_resp, .reset_after = 150000},
    };
    int n = sprintf(length_resp, "HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n");

    memset(length_resp + n, 'x', sizeof(length_resp) - (size_t)n - 1);
    build_chunked(chunked_resp, sizeof(chunked_resp) - 1);
    for (int k = 0; k < 2; k++) {
        struct fakeup *f = fakeup_start(&cfgs[k]);
        struct hdaemon *d = start_proxy(fakeup_port(f), NULL, NULL);
        struct hconn *c = harness_connect(d->port);
        struct hresp r;
        int rc;

        harness_send_str(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        rc = harness_read_response(c, &r, false, 10);
        ck_assert_msg(rc == -1,
                      "case %d: a complete response (%zu bytes) "
                      "from a cut upstream body",
                      k, r.body_len);
        ck_assert_int_eq(r.status, 200);
        ck_assert_msg(c->eof || c->reset, "case %d: connection still open: %s", k,
                      harness_error());
        hresp_free(&r);
        harness_close(c);
        harness_daemon_stop(d, SIGTERM, 10);
        fakeup_stop(f);
    }
}
END_TEST

struct fd_wait {
    pid_t pid;
    int want;
};

static bool fds_back(void *arg)
{
    struct fd_wait *w = arg;

    return harness_proc_fds(w->pid) == w->want;
}

/* The client leaves while the upstream is slow: the upstream connection
 * is closed (not pooled) and the worker's fds return to their baseline. */
START_TEST(test_client_abort)
{
    struct fakeup_cfg fc = {.silent = true};
    struct fakeup *f = fakeup_start(&fc);
    struct hdaemon *d = start_proxy(fakeup_port(f), NULL, NULL);
    pid_t pid = worker_pid(d);
    struct fd_wait w = {pid, 0};

    /* The baseline once the worker serves: until then it may still hold
     * descriptors of its start (the mold's socket). */
    ck_assert(harness_log_wait(d, "worker [0-9]+: serving", 1, 5));
    w.want = harness_proc_fds(pid);
    for (int i = 1; i <= 3; i++) {
        struct hconn *c = harness_connect(d->port);

        harness_send_str(c, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
        ck_assert(fakeup_wait(f, fakeup_requests, i, 5));
        ck_assert_int_eq(harness_proc_fds(pid), w.want + 2);
        harness_close(c);
        ck_assert_msg(harness_wait_for(fds_back, &w, 5), "worker fds: %d, baseline %d",
                      harness_proc_fds(pid), w.want);
        ck_assert(fakeup_wait(f, fakeup_closed_by_peer, i, 5));
    }
    ck_assert_int_eq(fakeup_open(f), 0);
    harness_daemon_stop(d, SIGTERM, 10);
    fakeup_stop(f);
}
END_TEST

/* The client leaves just before the upstream's head is read, in the same
 * loop iteration: the worker is stopped while the response arrives and the
 * client closes (libev then runs the client's EOF first). The request is
 * aborted but the app's abort callback is still to come when the head is
 * passed on: the proxy must end the request there and then, once. */
START_TEST(test_client_gone_as_head_arrives)
{
    volatile bool hold = true;
    struct fakeup_cfg fc = {.hold = &hold};
    struct fakeup *f = fakeup_start(&fc);
    struct hdaemon *d = start_proxy(fakeup_port(f), NULL, NULL);
    pid_t pid = worker_pid(d);
    struct hresp r;

    for (int i = 1; i <= 3; i++) {
        struct hconn *c = harness_connect(d->port);
        int n = fakeup_requests(f) + 1; /* each pass forwards /race and /after */

        hold = true;
        harness_send_str(c, "GET /race HTTP/1.1\r\nHost: t\r\n\r\n");
        ck_assert(fakeup_wait(f, fakeup_requests, n, 5));
        ck_assert_int_eq(kill(pid, SIGSTOP), 0);
        hold = false;
        ck_assert(fakeup_wait(f, fakeup_responses, n, 5));
        harness_close(c);
        ck_assert_int_eq(kill(pid, SIGCONT), 0);
        harness_roundtrip(d->port, "GET /after HTTP/1.1\r\nHost: t\r\n\r\n", &r);
        ck_assert_int_eq(r.status, 200);
        hresp_free(&r);
    }
    /* No crash, no double free: the one worker still serves. */
    ck_assert_int_eq(harness_log_count(d, RE_SPAWNED), 1);
    ck_assert_int_eq(kill(pid, 0), 0);
    harness_daemon_stop(d, SIGTERM, 10);
    fakeup_stop(f);
}
END_TEST

/* ---- headers and framing -------------------------------------------------------- */

static void assert_has(const struct hresp *r, const char *line, bool want)
{
    bool has = memmem(r->body, r->body_len, line, strlen(line)) != NULL;

    ck_assert_msg(has == want, "upstream %s \"%s\"; it received:\n%s",
                  want ? "did not receive" : "received", line,
                  harness_printable(r->body, r->body_len, 1500));
}

static const char hop_request[] = "GET /h?x=1 HTTP/1.1\r\n"
                                  "Host: front.example\r\n"
                                  "Connection: keep-alive, X-Secret\r\n"
                                  "X-Secret: s\r\n"
                                  "Keep-Alive: timeout=5\r\n"
                                  "TE: trailers\r\n"
                                  "Trailer: X-T\r\n"
                                  "Upgrade: h2c\r\n"
                                  "Proxy-Authorization: Basic eDp5\r\n"
                                  "Proxy-Connection: keep-alive\r\n"
                                  "X-Forwarded-For: 10.0.0.1\r\n"
                                  "X-Forwarded-Proto: https\r\n"
                                  "X-Keep: yes\r\n"
                                  "\r\n";

START_TEST(test_hop_by_hop_and_forwarded)
{
    struct hdaemon *up = start_echo();
    struct hdaemon *d = start_proxy(up->port, NULL, NULL);
    struct hdaemon *t = start_proxy(up->port, NULL, "trust_forwarded = true");
    const char *gone[] = {
        "Connection:", "X-Secret:", "Keep-Alive:",          "TE:",
        "Trailer:",    "Upgrade:",  "Proxy-Authorization:", "Proxy-Connection:",
        "10.0.0.1,",   "https"};
    struct hresp r;

    harness_roundtrip(d->port, hop_request, &r);
    ck_assert_int_eq(r.status, 200);
    assert_has(&r, "GET /h?x=1 HTTP/1.1\n", true);
    assert_has(&r, "Host: front.example\n", true);
    assert_has(&r, "X-Keep: yes\n", true);
    for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
        assert_has(&r, gone[i], false);
    assert_has(&r, "X-Forwarded-For: 127.0.0.1\n", true);
    assert_has(&r, "X-Forwarded-Proto: http\n", true);
    assert_has(&r, "X-Forwarded-Host: front.example\n", true);
    hresp_free(&r);
    harness_roundtrip(t->port, hop_request, &r);
    assert_has(&r, "X-Forwarded-For: 10.0.0.1, 127.0.0.1\n", true);
    assert_has(&r, "X-Forwarded-Proto: https\n", true);
    assert_has(&r, "X-Secret:", false);
    hresp_free(&r);
    harness_daemon_stop(t, SIGTERM, 10);
    harness_daemon_stop(d, SIGTERM, 10);
    harness_daemon_stop(up, SIGTERM, 10);
}
END_TEST

/* An absolute-form target (a client configured to use a proxy) is sent
 * upstream in origin form, and its authority is the host (RFC 9112 3.2.2):
 * the client's Host is ignored. */
START_TEST(test_absolute_form_target)
{
    struct hdaemon *up = start_echo();
    struct hdaemon *d = start_proxy(up->port, NULL, NULL);
    struct hresp r;

    harness_roundtrip(d->port,
                      "GET http://localhost:8080/abs2?q=1 HTTP/1.1\r\n"
                      "Host: other.invalid\r\nConnection: close\r\n\r\n",
                      &r);
    ck_assert_int_eq(r.status, 200);
    assert_has(&r, "GET /abs2?q=1 HTTP/1.1\n", true);
    assert_has(&r, "Host: localhost:8080\n", true);
    assert_has(&r, "X-Forwarded-Host: localhost:8080\n", true);
    assert_has(&r, "other.invalid", false);
    hresp_free(&r);
    /* No path: "/" before the query. */
    harness_roundtrip(d->port,
                      "GET http://localhost:8080?x=2 HTTP/1.1\r\n"
                      "Host: localhost:8080\r\nConnection: close\r\n\r\n",
                      &r);
    ck_assert_int_eq(r.status, 200);
    assert_has(&r, "GET /?x=2 HTTP/1.1\n", true);
    hresp_free(&r);
    /* Userinfo never becomes the host. */
    harness_roundtrip(d->port,
                      "GET http://user:pw@localhost:8080/u HTTP/1.1\r\n"
                      "Host: other.invalid\r\nConnection: close\r\n\r\n",
                      &r);
    ck_assert_int_eq(r.status, 200);
    assert_has(&r, "GET /u HTTP/1.1\n", true);
    assert_has(&r, "Host: localhost:8080\n", true);
    assert_has(&r, "user", false);
    hresp_free(&r);
    harness_roundtrip(d->port,
                      "GET HTTP://LOCALHOST HTTP/1.1\r\n"
                      "Host: other.invalid\r\nConnection: close\r\n\r\n",
                      &r);
    ck_assert_int_eq(r.status, 200);
    assert_has(&r, "GET / HTTP/1.1\n", true);
    assert_has(&r, "Host: LOCALHOST\n", true);
    hresp_free(&r);
    harness_daemon_stop(d, SIGTERM, 10);
    harness_daemon_stop(up, SIGTERM, 10);
}
END_TEST

/* A chunked request body reaches the upstream with a Content-Length. */
START_TEST(test_chunked_request_reframed)
{
    struct hdaemon *up = start_echo();
    struct hdaemon *d = start_proxy(up->port, NULL, NULL);
    struct hresp r;
    const char *body;

    harness_roundtrip(d->port,
                      "POST /up HTTP/1.1\r\nHost: t\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n"
                      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
                      &r);
    ck_assert_int_eq(r.status, 200);
    assert_has(&r, "Content-Length: 11\n", true);
    assert_has(&r, "Transfer-Encoding", false);
    body = memmem(r.body, r.body_len, "\n\n", 2);
    ck_assert(body != NULL);
    ck_assert_str_eq(body + 2, "hello world");
    hresp_free(&r);
    harness_daemon_stop(d, SIGTERM, 10);
    harness_daemon_stop(up, SIGTERM, 10);
}
END_TEST

START_TEST(test_response_hop_by_hop)
{
    struct fakeup_cfg fc = {
        .resp = "HTTP/1.1 201 Created\r\nConnection: X-Foo\r\nX-Foo: 1\r\n"
                "Keep-Alive: timeout=5\r\nProxy-Thing: y\r\nX-Bar: 2\r\n"
                "Transfer-Encoding: chunked\r\n\r\n3\r\nok\n\r\n0\r\n\r\n"};
    struct fakeup *f = fakeup_start(&fc);
    struct hdaemon *d = start_proxy(fakeup_port(f), NULL, NULL);
    struct hconn *c = harness_connect(d->port);
    struct hresp r;

    for (int i = 0; i < 2; i++) { /* the client connection stays usable */
        get(c, "/r", &r);
        ck_assert_int_eq(r.status, 201);
        ck_assert_str_eq(hresp_header(&r, "X-Bar"), "2");
        ck_assert_ptr_null(hresp_header(&r, "X-Foo"));
        ck_assert_ptr_null(hresp_header(&r, "Keep-Alive"));
        ck_assert_ptr_null(hresp_header(&r, "Proxy-Thing"));
        ck_assert_ptr_null(hresp_header(&r, "Connection"));
        ck_assert_uint_eq(r.body_len, 3);
        hresp_free(&r);
    }
    harness_close(c);
    harness_daemon_stop(d, SIGTERM, 10);
    fakeup_stop(f);
}
END_TEST

/* HEAD: the upstream's Content-Length comes through, no body follows, and
 * the client connection goes on with the next request. */
START_TEST(test_head_request)
{
    struct hdaemon *up = start_echo();
    struct hdaemon *d = start_proxy(up->port, NULL, NULL);
    struct hconn *c = harness_connect(d->port);
    struct hresp r;
    const char *cl;

    harness_send_str(c, "HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n");
    harness_expect_response(c, &r, true, "HEAD /h");
    ck_assert_int_eq(r.status, 200);
    cl = hresp_header(&r, "Content-Length");
    ck_assert_msg(cl != NULL && atoi(cl) > 0, "Content-Length %s", cl ? cl : "(none)");
    hresp_free(&r);
    get(c, "/after-head", &r);
    ck_assert_int_eq(r.status, 200);
    assert_has(&r, "GET /after-head HTTP/1.1\n", true);
    hresp_free(&r);
    harness_close(c);
    harness_daemon_stop(d, SIGTERM, 10);
    harness_daemon_stop(up, SIGTERM, 10);
}
END_TEST

/* An upstream on a unix socket. */
START_TEST(test_unix_upstream)
{
    char *mod = module("PREFORKD_APPS", "echo");
    struct hdaemon *up = harness_daemon_new();
    struct hdaemon *d = harness_daemon_new();
    char *pmod = module("PREFORKD_APPS", "proxy");
    struct hresp r;

    harness_daemon_config(up,
                          "[server]\nlisten = 127.0.0.1:0, unix:%s/up.sock\n"
                          "workers = 1\n[app]\nmodule = %s\n",
                          up->dir, mod);
    harness_daemon_spawn(up, NULL);
    harness_daemon_wait_ready(up, 10);
    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0\nworkers = 1\n"
                          "[app]\nmodule = %s\nupstream = u\n"
                          "[upstream u]\nservers = unix:%s/up.sock\n",
                          pmod, up->dir);
    harness_daemon_spawn(d, NULL);
    harness_daemon_wait_ready(d, 10);
    for (int i = 0; i < 3; i++) {
        harness_roundtrip(d->port, "GET /via-unix HTTP/1.1\r\nHost: t\r\n\r\n", &r);
        ck_assert_int_eq(r.status, 200);
        assert_has(&r, "X-Forwarded-For: 127.0.0.1\n", true);
        hresp_free(&r);
    }
    free(mod);
    free(pmod);
    harness_daemon_stop(d, SIGTERM, 10);
    harness_daemon_stop(up, SIGTERM, 10);
}
END_TEST

/* ---- streaming ------------------------------------------------------------------ */

#define BIG ((uint64_t)100 << 20)

/* Checks that data continues the pattern at offset *off; advances it. */
static void check_pattern(const char *data, size_t len, uint64_t *off)
{
    for (size_t i = 0; i < len; i++)
        if (data[i] != (char)('a' + (*off + i) % 26))
            ck_abort_msg("body byte %llu differs", (unsigned long long)(*off + i));
    *off += len;
}

/* Reads n body bytes (the first ones already in c->buf), checking the
 * pattern; the largest worker RSS seen meanwhile goes to *max_kib. */
static void read_pattern(struct hconn *c, uint64_t n, pid_t pid, long *max_kib)
{
    static char b[1 << 16];
    uint64_t off = 0;
    double end = harness_now() + 60;

    check_pattern(c->buf, c->len, &off);
    c->len = 0;
    while (off < n) {
        struct pollfd pfd = {c->fd, POLLIN, 0};
        ssize_t k;

        ck_assert_msg(harness_now() < end, "stalled at byte %llu",
                      (unsigned long long)off);
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        k = recv(c->fd, b, sizeof(b), 0);
        ck_assert_msg(k > 0, "closed at byte %llu", (unsigned long long)off);
        check_pattern(b, (size_t)k, &off);
        if (off % (8 << 20) < (uint64_t)k) {
            long kib = harness_proc_rss_kib(pid);

            if (kib > *max_kib)
                *max_kib = kib;
        }
    }
    ck_assert_uint_eq(off, n);
}

START_TEST(test_100mb_streams_small_rss)
{
    struct fakeup_cfg fc = {.big = BIG};
    struct fakeup *f = fakeup_start(&fc);
    struct hdaemon *d = start_proxy(fakeup_port(f), NULL, NULL);
    pid_t pid = worker_pid(d);
    long base, max_kib = 0;
    struct hconn *c = harness_connect(d->port);
    struct hresp r;
    char len[32];

    base = harness_proc_rss_kib(pid);
    harness_send_str(c, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
    ck_assert_int_eq(harness_read_response(c, &r, true, 10), 0);
    snprintf(len, sizeof(len), "%llu", (unsigned long long)BIG);
    ck_assert_str_eq(hresp_header(&r, "Content-Length"), len);
    hresp_free(&r);
    /* A reader that stalls: without back-pressure the worker would now
     * buffer what the upstream sends as fast as loopback goes. */
    harness_pause(0.5);
    max_kib = harness_proc_rss_kib(pid);
    read_pattern(c, BIG, pid, &max_kib);
    ck_assert_msg(max_kib - base < 16 * 1024,
                  "worker RSS grew from %ld KiB "
                  "to %ld KiB streaming 100 MB",
                  base, max_kib);
    harness_close(c);
    harness_daemon_stop(d, SIGTERM, 10);
    fakeup_stop(f);
}
END_TEST

/* ---- configuration -------------------------------------------------------------- */

START_TEST(test_config_errors)
{
    struct hdaemon *d = harness_daemon_new();
    char *mod = module("PREFORKD_APPS", "proxy");
    const char *check[] = {"-t", "-c", d->conf, NULL};
    int before;

    harness_daemon_config(d, "[app]\nmodule = %s\n", mod);
    harness_daemon_spawn(d, check);
    ck_assert(harness_daemon_wait_exit(d, 10));
    ck_assert_int_eq(harness_exit_code(d), 78);
    ck_assert_int_eq(harness_log_count(d, "\\[app\\] upstream: required"), 1);
    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0\n"
                          "[app]\nmodule = %s\nupstream = nosuch\n"
                          "[upstream b]\nservers = 127.0.0.1:9\n",
                          mod);
    /* A misspelt upstream is the file's error, with its line, found by -t. */
    harness_daemon_spawn(d, check);
    ck_assert(harness_daemon_wait_exit(d, 10));
    ck_assert_int_eq(harness_exit_code(d), 78);
    ck_assert_int_eq(harness_log_count(d, ":[0-9]+: \\[app\\] upstream: there is "
                                          "no \\[upstream nosuch\\] section"),
                     1);
    /* and by a start without preload, where load runs in each worker. */
    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0\npreload = false\n"
                          "[app]\nmodule = %s\nupstream = nosuch\n"
                          "[upstream b]\nservers = 127.0.0.1:9\n",
                          mod);
    before = harness_log_count(d, "no \\[upstream nosuch\\] section");
    harness_daemon_spawn(d, NULL);
    ck_assert(harness_daemon_wait_exit(d, 20));
    ck_assert_int_eq(harness_exit_code(d), 70); /* no worker could boot */
    ck_assert_int_gt(harness_log_count(d, "no \\[upstream nosuch\\] section"), before);
    free(mod);
}
END_TEST

static Suite *proxy_suite(void)
{
    Suite *s = suite_create("proxy");
    TCase *t = tcase_create("proxy");

    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_pool_1000_requests);
    tcase_add_test(t, test_upstream_closes_pooled);
    tcase_add_test(t, test_upstream_counters);
    tcase_add_test(t, test_upstream_down_502);
    tcase_add_test(t, test_never_answers_504);
    tcase_add_test(t, test_invalid_response_502);
    tcase_add_test(t, test_reset_mid_body);
    tcase_add_test(t, test_client_abort);
    tcase_add_test(t, test_client_gone_as_head_arrives);
    tcase_add_test(t, test_hop_by_hop_and_forwarded);
    tcase_add_test(t, test_absolute_form_target);
    tcase_add_test(t, test_chunked_request_reframed);
    tcase_add_test(t, test_response_hop_by_hop);
    tcase_add_test(t, test_head_request);
    tcase_add_test(t, test_unix_upstream);
    tcase_add_test(t, test_100mb_streams_small_rss);
    tcase_add_test(t, test_config_errors);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(proxy_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
