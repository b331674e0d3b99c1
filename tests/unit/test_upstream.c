/*
 * test_upstream.c - tests of the upstream pool (src/upstream/upstream.c,
 * src/upstream/upstream_conn.c) driven in-process on its own libev loop against the
 * fake upstream of tests/lib/fakeup.c: reuse, stale connections, retries,
 * timeouts, cancel at every stage, waiters, limits, round robin and
 * health, back-pressure, and no fd or request left behind. Framing and
 * parsing alone: tests/unit/test_upstream_http.c. Only 127.0.0.1; every wait
 * polls with a deadline.
 */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "config.h"
#include "fakeup.h"
#include "harness.h"
#include "log.h"
#include "upstream.h"
#include "upstream_int.h"

#define S(lit) ((pf_str){lit, sizeof(lit) - 1})

/* ---- the pool, in-process ----------------------------------------------------- */

static struct ev_loop *loop;
static struct config cfg;
static struct slot slot;
static ev_timer tick;
static int fds_before;

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    ck_assert(d != NULL);
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

static void on_tick(struct ev_loop *l, ev_timer *w, int revents)
{
}

/* The pools for one [upstream t] with servers and extra keys. */
static pf_upstream *start(const char *servers, const char *extra)
{
    char path[] = "/tmp/pf-upstream-test.XXXXXX";
    int fd = mkstemp(path);
    char *err = NULL;
    pf_upstream *up;

    ck_assert(fd >= 0);
    dprintf(fd, "[app]\nmodule = hello\n[upstream t]\nservers = %s\n%s\n", servers,
            extra ? extra : "");
    close(fd);
    ck_assert_msg(config_load(path, &cfg, &err) == 0, "%s", err);
    unlink(path);
    fds_before = count_fds();
    loop = ev_loop_new(EVFLAG_AUTO);
    ev_timer_init(&tick, on_tick, 0.005, 0.005);
    ev_timer_start(loop, &tick);
    memset(&slot, 0, sizeof(slot));
    ck_assert(upstream_worker_init(loop, &cfg, &slot) == 0);
    up = pf_upstream_find("t");
    ck_assert_ptr_nonnull(up);
    ck_assert_ptr_null(pf_upstream_find("nope"));
    return up;
}

static char *addr_of(const struct fakeup *f)
{
    char *s;

    ck_assert(asprintf(&s, "127.0.0.1:%d", fakeup_port(f)) > 0);
    return s;
}

static pf_upstream *start_on(const struct fakeup *f, const char *extra)
{
    char *a = addr_of(f);
    pf_upstream *up = start(a, extra);

    free(a);
    return up;
}

/* Tears the pools down and checks that no fd is left. The fake upstream
 * lives in this process too: its side of a connection closes (soon) only
 * once ours did, so a leak of ours keeps the count up. */
static void stop(void)
{
    double end = harness_now() + 5;

    upstream_worker_exit();
    ev_timer_stop(loop, &tick);
    ev_loop_destroy(loop);
    config_free(&cfg);
    while (count_fds() != fds_before && harness_now() < end)
        harness_pause(0.002);
    ck_assert_int_eq(count_fds(), fds_before);
}

#define CNT(f) ((long)SB_GET(slot.upstreams[0].f))
/* Requests ended in an error other than a timeout: of one kind, or any. */
#define FAILED(kind) CNT(failed[SB_FAIL_##kind])
#define FAILED_ANY() (FAILED(CONNECT) + FAILED(RESET) + FAILED(PROTOCOL) + FAILED(BUSY))

/* What one request saw, and what to do along the way. */
struct rec {
    pf_upstream_req *u;
    int status, nhead, nbody, error;
    bool done, paused;
    size_t body_len;
    char body[64];
    bool cancel_in_head, cancel_in_body, pause_in_body;
};

static void r_head(pf_upstream_req *u, void *arg, int status, const pf_header *h,
                   size_t n)
{
    struct rec *r = arg;

    r->status = status;
    r->nhead++;
    if (r->cancel_in_head)
        pf_upstream_cancel(u);
}

static void r_body(pf_upstream_req *u, void *arg, const void *data, size_t len)
{
    struct rec *r = arg;

    ck_assert(!r->paused);
    if (r->body_len < sizeof(r->body))
        memcpy(r->body + r->body_len, data,
               len < sizeof(r->body) - r->body_len ? len : sizeof(r->body) - r->body_len);
    r->body_len += len;
    r->nbody++;
    if (r->cancel_in_body)
        pf_upstream_cancel(u);
    if (r->pause_in_body) {
        r->paused = true;
        pf_upstream_pause(u);
    }
}

static void r_done(pf_upstream_req *u, void *arg, int error)
{
    struct rec *r = arg;

    ck_assert(!r->done);
    r->done = true;
    r->error = error;
}

static const pf_upstream_callbacks rcb = {r_head, r_body, r_done};

static void send_req(pf_upstream *up, struct rec *r, pf_str method)
{
    r->u = pf_upstream_request(up, method, S("/x"), NULL, 0,
                               method.len == 4 ? "body" : NULL, method.len == 4 ? 4 : 0,
                               &rcb, r);
    ck_assert_ptr_nonnull(r->u);
    ck_assert_msg(!r->done && r->nhead == 0, "a callback ran inside the call");
}

/* Runs the loop until *flag or timeout; true if *flag came. */
static bool run_until(const bool *flag, double timeout)
{
    double end = harness_now() + timeout;

    while (!*flag && harness_now() < end)
        ev_run(loop, EVRUN_ONCE);
    return *flag;
}

static void run_for(double s)
{
    bool never = false;

    run_until(&never, s);
}

/* One GET to completion; asserts a 200 "ok\n". */
static void get_ok(pf_upstream *up)
{
    struct rec r = {0};

    send_req(up, &r, S("GET"));
    ck_assert(run_until(&r.done, 5));
    ck_assert_msg(r.error == 0, "error %s", pf_upstream_strerror(r.error));
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.body_len, 3);
    ck_assert(memcmp(r.body, "ok\n", 3) == 0);
}

START_TEST(test_pool_reuses)
{
    struct fakeup *f = fakeup_start(NULL);
    pf_upstream *up = start_on(f, NULL);

    for (int i = 0; i < 100; i++)
        get_ok(up);
    ck_assert_int_eq(fakeup_accepted(f), 1);
    ck_assert_int_eq(CNT(created), 1);
    ck_assert_int_eq(CNT(reused), 99);
    ck_assert_int_eq(CNT(open), 1);
    ck_assert_int_eq(CNT(idle), 1);
    ck_assert_int_eq(FAILED_ANY() + CNT(timed_out) + CNT(retried), 0);
    ck_assert_str_eq(slot.upstreams[0].name, "t"); /* the master sums by name */
    stop();
    ck_assert(fakeup_wait(f, fakeup_closed_by_peer, 1, 5));
    fakeup_stop(f);
}
END_TEST

/* The upstream closes each connection after its response: the idle
 * watcher drops it at once, and the next request opens a new one. */
START_TEST(test_idle_closed_by_upstream)
{
    struct fakeup_cfg fc = {.close_after = true};
    struct fakeup *f = fakeup_start(&fc);
    pf_upstream *up = start_on(f, NULL);
    bool gone = false;

    for (int i = 0; i < 5; i++) {
        get_ok(up);
        for (double end = harness_now() + 5; CNT(open) > 0 && harness_now() < end;)
            ev_run(loop, EVRUN_ONCE);
        gone = CNT(open) == 0 && CNT(idle) == 0;
        ck_assert_msg(gone, "the closed idle connection is still pooled");
    }
    ck_assert_int_eq(fakeup_accepted(f), 5);
    ck_assert_int_eq(CNT(retried), 0);
    stop();
    fakeup_stop(f);
}
END_TEST

/* The upstream drops the second request of each connection unanswered (a
 * keep-alive close racing our request): GET is retried once on a new
 * connection and succeeds; POST is not retried. */
START_TEST(test_stale_retry)
{
    struct fakeup_cfg fc = {.drop_request = 2};
    struct fakeup *f = fakeup_start(&fc);
    pf_upstream *up = start_on(f, NULL);
    struct rec r = {0};

    get_ok(up);
    get_ok(up); /* dropped on the pooled connection, retried */
    ck_assert_int_eq(CNT(retried), 1);
    ck_assert_int_eq(fakeup_accepted(f), 2);
    ck_assert_int_eq(FAILED_ANY(), 0);
    send_req(up, &r, S("POST"));
    ck_assert(run_until(&r.done, 5));
    ck_assert_int_eq(r.error, PF_UPSTREAM_ERESET);
    ck_assert_int_eq(r.nhead, 0);
    ck_assert_int_eq(CNT(retried), 1);
    ck_assert_int_eq(FAILED(RESET), 1);
    ck_assert_int_eq(FAILED_ANY(), 1);
    stop();
    fakeup_stop(f);
}
END_TEST

START_TEST(test_stale_no_retries)
{
    struct fakeup_cfg fc = {.drop_request = 2};
    struct fakeup *f = fakeup_start(&fc);
    pf_upstream *up = start_on(f, "retries = 0");
    struct rec r = {0};

    get_ok(up);
    send_req(up, &r, S("GET"));
    ck_assert(run_until(&r.done, 5));
    ck_assert_int_eq(r.error, PF_UPSTREAM_ERESET);
    ck_assert_int_eq(CNT(retried), 0);
    stop();
    fakeup_stop(f);
}
END_TEST

START_TEST(test_connect_refused)
{
    char addr[32];
    pf_upstream *up;
    struct rec r = {0};
    double t0;

    snprintf(addr, sizeof(addr), "127.0.0.1:%d", harness_free_port());
    up = start(addr, NULL);
    t0 = harness_now();
    send_req(up, &r, S("GET"));
    ck_assert(run_until(&r.done, 5));
    ck_assert_int_eq(r.error, PF_UPSTREAM_ECONNECT);
    ck_assert_msg(harness_now() - t0 < 1.0, "took %.3fs", harness_now() - t0);
    ck_assert_int_eq(FAILED(CONNECT), 1);
    ck_assert_int_eq(FAILED_ANY(), 1);
    ck_assert_int_eq(CNT(open), 0);
    stop();
}
END_TEST

/* A dead server under load: one warning a second, not one per request. */
START_TEST(test_warnings_rate_limited)
{
    char addr[32], logpath[] = "/tmp/pf-upstream-log.XXXXXX";
    int fd = mkstemp(logpath), lines = 0;
    pf_upstream *up;
    struct rec r[50] = {{0}};
    char *text, *p;

    ck_assert(fd >= 0);
    close(fd);
    ck_assert(log_open(logpath, LOG_INFO) == 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", harness_free_port());
    up = start(addr, NULL);
    for (int i = 0; i < 50; i++) {
        send_req(up, &r[i], S("GET"));
        ck_assert(run_until(&r[i].done, 5));
        ck_assert_int_eq(r[i].error, PF_UPSTREAM_ECONNECT);
    }
    stop();
    ck_assert(log_open("stderr", LOG_INFO) == 0);
    text = harness_read_file(logpath, NULL);
    for (p = text; (p = strstr(p, "connect: Connection refused")) != NULL; p++)
        lines++;
    ck_assert_msg(lines >= 1 && lines <= 2, "%d warnings:\n%s", lines, text);
    free(text);
    unlink(logpath);
}
END_TEST

START_TEST(test_read_timeout)
{
    struct fakeup_cfg fc = {.silent = true};
    struct fakeup *f = fakeup_start(&fc);
    pf_upstream *up = start_on(f, "read_timeout = 200ms");
    struct rec r = {0};
    double t0 = harness_now(), took;

    send_req(up, &r, S("GET"));
    ck_assert(run_until(&r.done, 5));
    took = harness_now() - t0;
    ck_assert_int_eq(r.error, PF_UPSTREAM_ETIMEOUT);
    ck_assert_msg(took >= 0.18 && took < 2.0, "timed out after %.3fs", took);
    ck_assert_int_eq(CNT(timed_out), 1);
    ck_assert_int_eq(CNT(open), 0);
    ck_assert(fakeup_wait(f, fakeup_closed_by_peer, 1, 5));
    stop();
    fakeup_stop(f);
}
END_TEST

/* A listener whose backlog is full and that never accepts: SYNs go
 * unanswered, so connect() hangs until connect_timeout. */
START_TEST(test_connect_timeout)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int lfd = socket(AF_INET, SOCK_STREAM, 0), fill[4];
    char addr[32];
    pf_upstream *up;
    struct rec r = {0};

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert(bind(lfd, (struct sockaddr *)&a, sizeof(a)) == 0);
    ck_assert(listen(lfd, 0) == 0);
    ck_assert(getsockname(lfd, (struct sockaddr *)&a, &len) == 0);
    for (int i = 0; i < 4; i++) { /* fill the accept queue */
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&a, sizeof(a));
    }
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(a.sin_port));
    up = start(addr, "connect_timeout = 200ms");
    send_req(up, &r, S("GET"));
    ck_assert(run_until(&r.done, 5));
    ck_assert_int_eq(r.error, PF_UPSTREAM_ETIMEOUT);
    ck_assert_int_eq(CNT(timed_out), 1);
    ck_assert_int_eq(CNT(open), 0);
    stop();
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);
}
END_TEST

START_TEST(test_invalid_and_reset)
{
    struct fakeup_cfg bad = {.resp = "HTTP/1.1 99999 What\r\n\r\n"};
    struct fakeup_cfg cut = {
        .resp = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
        .reset_after = 50};
    struct fakeup *f = fakeup_start(&bad);
    pf_upstream *up = start_on(f, NULL);
    struct rec r = {0}, r2 = {0};

    send_req(up, &r, S("GET"));
    ck_assert(run_until(&r.done, 5));
    ck_assert_int_eq(r.error, PF_UPSTREAM_EPROTO);
    ck_assert_int_eq(CNT(open), 0);
    stop();
    fakeup_stop(f);

    f = fakeup_start(&cut);
    up = start_on(f, NULL);
    send_req(up, &r2, S("GET"));
    ck_assert(run_until(&r2.done, 5));
    ck_assert_int_eq(r2.error, PF_UPSTREAM_ERESET);
    ck_assert_int_eq(r2.nhead, 1);
    ck_assert_uint_eq(r2.body_len, 10);
    ck_assert_int_eq(CNT(open), 0);
    ck_assert_int_eq(CNT(retried), 0);
    stop();
    fakeup_stop(f);
}
END_TEST

/* A chunked response, a close-delimited one, and a 304 with the
 * resource's Content-Length (no body read: the connection is reused). */
START_TEST(test_framings)
{
    struct fakeup_cfg chunked = {
        .resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                "2\r\nok\r\n1\r\n\n\r\n0\r\n\r\n"};
    struct fakeup_cfg eof = {.resp = "HTTP/1.1 200 OK\r\n\r\nok\n", .close_after = true};
    struct fakeup_cfg nm = {
        .resp = "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n"};
    struct fakeup *f = fakeup_start(&chunked);
    pf_upstream *up = start_on(f, NULL);
    struct rec r[3] = {{0}};

    get_ok(up);
    get_ok(up);
    ck_assert_int_eq(fakeup_accepted(f), 1);
    stop();
    fakeup_stop(f);
    f = fakeup_start(&eof);
    up = start_on(f, NULL);
    get_ok(up);
    stop();
    fakeup_stop(f);
    f = fakeup_start(&nm);
    up = start_on(f, NULL);
    for (int i = 0; i < 3; i++) {
        send_req(up, &r[i], S("GET"));
        ck_assert(run_until(&r[i].done, 5));
        ck_assert_int_eq(r[i].error, 0);
        ck_assert_int_eq(r[i].status, 304);
        ck_assert_int_eq(r[i].nbody, 0);
    }
    ck_assert_int_eq(fakeup_accepted(f), 1);
    stop();
    fakeup_stop(f);
}
END_TEST

/* Cancel while waiting for a connection, while connecting, after sending,
 * from on_head and from on_body: no callback after it, nothing left open,
 * and the upstream sees every connection with an exchange closed. */
START_TEST(test_cancel_everywhere)
{
    struct fakeup_cfg fc = {.big = 1 << 20};
    struct fakeup *f = fakeup_start(&fc);
    pf_upstream *up = start_on(f, "max_connections = 1");
    struct rec a = {0}, b = {0}, c = {.cancel_in_head = true},
               d = {.cancel_in_body = true};

    send_req(up, &a, S("GET")); /* connecting */
    send_req(up, &b, S("GET")); /* waiting for the one connection */
    pf_upstream_cancel(b.u);
    pf_upstream_cancel(a.u);
    run_for(0.05);
    ck_assert(!a.done && !b.done);
    ck_assert_int_eq(CNT(open), 0);
    send_req(up, &a, S("GET"));
    for (double end = harness_now() + 5; fakeup_requests(f) < 1 && harness_now() < end;)
        ev_run(loop, EVRUN_ONCE);
    pf_upstream_cancel(a.u); /* request sent, nothing read yet */
    send_req(up, &c, S("GET"));
    for (double end = harness_now() + 5; c.nhead == 0 && harness_now() < end;)
        ev_run(loop, EVRUN_ONCE);
    send_req(up, &d, S("GET"));
    for (double end = harness_now() + 5; d.nbody == 0 && harness_now() < end;)
        ev_run(loop, EVRUN_ONCE);
    run_for(0.05);
    ck_assert_int_eq(c.nhead, 1);
    ck_assert_int_eq(c.nbody, 0);
    ck_assert_int_eq(d.nbody, 1);
    ck_assert(!a.done && !c.done && !d.done);
    ck_assert_int_eq(CNT(open), 0);
    ck_assert_int_eq(CNT(idle), 0);
    ck_assert(fakeup_wait(f, fakeup_closed_by_peer, fakeup_accepted(f), 5));
    stop();
    fakeup_stop(f);
}
END_TEST

/* max_connections = 1: a second request waits and then gets the same
 * connection; with max_waiters = 0 it fails at once; a waiter that gets
 * nothing within connect_timeout fails with EBUSY. */
START_TEST(test_waiters)
{
    struct fakeup *f = fakeup_start(NULL);
    pf_upstream *up = start_on(f, "max_connections = 1");
    struct rec r[3] = {{0}};

    for (int i = 0; i < 3; i++)
        send_req(up, &r[i], S("GET"));
    for (int i = 0; i < 3; i++) {
        ck_assert(run_until(&r[i].done, 5));
        ck_assert_int_eq(r[i].error, 0);
    }
    ck_assert_int_eq(fakeup_accepted(f), 1);
    stop();
    fakeup_stop(f);
}
END_TEST

START_TEST(test_waiters_bounded)
{
    struct fakeup_cfg fc = {.silent = true};
    struct fakeup *f = fakeup_start(&fc);
    pf_upstream *up = start_on(f, "max_connections = 1\nmax_waiters = 1\n"
                                  "connect_timeout = 200ms\n"
                                  "read_timeout = 1s");
    struct rec r[3] = {{0}};

    for (int i = 0; i < 3; i++)
        send_req(up, &r[i], S("GET"));
    ck_assert(run_until(&r[2].done, 5)); /* no room in the queue */
    ck_assert_int_eq(r[2].error, PF_UPSTREAM_EBUSY);
    ck_assert(!r[1].done);
    ck_assert(run_until(&r[1].done, 5)); /* waited connect_timeout */
    ck_assert_int_eq(r[1].error, PF_UPSTREAM_EBUSY);
    ck_assert(!r[0].done);
    ck_assert(run_until(&r[0].done, 5));
    ck_assert_int_eq(r[0].error, PF_UPSTREAM_ETIMEOUT);
    ck_assert_int_eq(FAILED(BUSY), 2);
    ck_assert_int_eq(FAILED_ANY(), 2);
    ck_assert_int_eq(CNT(timed_out), 1);
    stop();
    fakeup_stop(f);
}
END_TEST

/* keepalive_requests = 3: every third request says "Connection: close"
 * and its connection is not reused. */
START_TEST(test_keepalive_requests)
{
    struct fakeup *f = fakeup_start(NULL);
    pf_upstream *up = start_on(f, "keepalive_requests = 3");
    char *last;

    for (int i = 0; i < 7; i++) {
        get_ok(up);
        last = fakeup_last_request(f, NULL);
        ck_assert_msg((strstr(last, "Connection: close\r\n") != NULL) == (i % 3 == 2),
                      "request %d:\n%s", i, last);
        free(last);
    }
    ck_assert_int_eq(fakeup_accepted(f), 3);
    stop();
    fakeup_stop(f);
}
END_TEST

START_TEST(test_no_reuse)
{
    struct fakeup *f = fakeup_start(NULL);
    pf_upstream *up = start_on(f, "max_idle = 0");

    for (int i = 0; i < 5; i++)
        get_ok(up);
    ck_assert_int_eq(fakeup_accepted(f), 5);
    ck_assert_int_eq(CNT(reused), 0);
    ck_assert_int_eq(CNT(idle), 0);
    stop();
    fakeup_stop(f);
}
END_TEST

/* idle_timeout closes a pooled connection; idle connections beyond
 * max_idle go after the short surplus grace. */
START_TEST(test_idle_limits)
{
    struct fakeup *f = fakeup_start(NULL);
    pf_upstream *up = start_on(f, "idle_timeout = 2s\nmax_idle = 1");
    struct rec r[3] = {{0}};

    for (int i = 0; i < 3; i++)
        send_req(up, &r[i], S("GET"));
    for (int i = 0; i < 3; i++)
        ck_assert(run_until(&r[i].done, 5));
    ck_assert_int_eq(CNT(idle), 3);
    for (double end = harness_now() + 5; CNT(idle) > 1 && harness_now() < end;)
        ev_run(loop, EVRUN_ONCE);
    ck_assert_int_eq(CNT(idle), 1);
    for (double end = harness_now() + 5; CNT(idle) > 0 && harness_now() < end;)
        ev_run(loop, EVRUN_ONCE);
    ck_assert_int_eq(CNT(idle), 0);
    ck_assert_int_eq(CNT(open), 0);
    ck_assert(fakeup_wait(f, fakeup_closed_by_peer, 3, 5));
    stop();
    fakeup_stop(f);
}
END_TEST

/* Two servers take turns; one that refuses is skipped after max_fails,
 * and a request that could not connect goes to the other at once. */
START_TEST(test_round_robin_and_health)
{
    struct fakeup *f1 = fakeup_start(NULL), *f2 = fakeup_start(NULL);
    char servers[96];
    pf_upstream *up;

    snprintf(servers, sizeof(servers), "127.0.0.1:%d, 127.0.0.1:%d", fakeup_port(f1),
             fakeup_port(f2));
    up = start(servers, "max_idle = 0");
    for (int i = 0; i < 6; i++)
        get_ok(up);
    ck_assert_int_eq(fakeup_requests(f1), 3);
    ck_assert_int_eq(fakeup_requests(f2), 3);
    stop();
    snprintf(servers, sizeof(servers), "127.0.0.1:%d, 127.0.0.1:%d", harness_free_port(),
             fakeup_port(f2));
    up = start(servers, "max_fails = 1\nfail_timeout = 30s");
    for (int i = 0; i < 6; i++)
        get_ok(up);
    ck_assert_int_eq(fakeup_requests(f2), 9);
    ck_assert_int_eq(CNT(retried), 1); /* once; then the dead one is down */
    ck_assert_int_eq(FAILED_ANY(), 0);
    stop();
    fakeup_stop(f1);
    fakeup_stop(f2);
}
END_TEST

/* Back-pressure: paused, no body piece comes; resumed, the rest does. */
START_TEST(test_pause_resume)
{
    struct fakeup_cfg fc = {.big = 4 << 20};
    struct fakeup *f = fakeup_start(&fc);
    pf_upstream *up = start_on(f, "read_timeout = 200ms");
    struct rec r = {.pause_in_body = true};
    size_t got;

    send_req(up, &r, S("GET"));
    for (double end = harness_now() + 5; !r.paused && harness_now() < end;)
        ev_run(loop, EVRUN_ONCE);
    ck_assert(r.paused);
    got = r.body_len;
    run_for(0.5); /* longer than read_timeout: paused, it does not run */
    ck_assert_uint_eq(r.body_len, got);
    ck_assert(!r.done);
    r.pause_in_body = false;
    r.paused = false;
    pf_upstream_resume(r.u);
    ck_assert(run_until(&r.done, 10));
    ck_assert_int_eq(r.error, 0);
    ck_assert_uint_eq(r.body_len, 4 << 20);
    ck_assert(memcmp(r.body, "abcdefgh", 8) == 0);
    stop();
    fakeup_stop(f);
}
END_TEST

/* Worker exit with requests in every state: all freed, no callback. */
START_TEST(test_exit_frees_everything)
{
    struct fakeup_cfg fc = {.silent = true};
    struct fakeup *f = fakeup_start(&fc);
    pf_upstream *up = start_on(f, "max_connections = 2");
    struct rec r[4] = {{0}};

    for (int i = 0; i < 4; i++)
        send_req(up, &r[i], S("GET"));
    for (double end = harness_now() + 5; fakeup_requests(f) < 2 && harness_now() < end;)
        ev_run(loop, EVRUN_ONCE);
    ck_assert_int_eq(fakeup_requests(f), 2);
    stop(); /* asserts no fd left; ASan checks the memory */
    for (int i = 0; i < 4; i++)
        ck_assert(!r[i].done);
    fakeup_stop(f);
}
END_TEST

/* The keys this issue added to [upstream]: max_waiters, and at most
 * SB_MAX_UPSTREAMS sections (each has counters in every slot). */
START_TEST(test_config_keys)
{
    char path[] = "/tmp/pf-upstream-test.XXXXXX";
    int fd = mkstemp(path);
    char *err = NULL;

    ck_assert(fd >= 0);
    dprintf(fd, "[app]\nmodule = hello\n[upstream a]\nservers = 127.0.0.1:1\n"
                "max_waiters = 5\n");
    close(fd);
    ck_assert_msg(config_load(path, &cfg, &err) == 0, "%s", err);
    ck_assert_uint_eq(cfg.upstreams[0].max_waiters, 5);
    config_free(&cfg);
    fd = open(path, O_WRONLY | O_TRUNC);
    dprintf(fd, "[app]\nmodule = hello\n");
    for (int i = 0; i <= SB_MAX_UPSTREAMS; i++)
        dprintf(fd, "[upstream u%d]\nservers = 127.0.0.1:1\n", i);
    close(fd);
    ck_assert_int_eq(config_load(path, &cfg, &err), -1);
    ck_assert_msg(strstr(err, ":35: [upstream u16]: at most 16 [upstream] "
                              "sections") != NULL,
                  "%s", err);
    free(err);
    unlink(path);
}
END_TEST

static Suite *upstream_suite(void)
{
    Suite *s = suite_create("upstream");
    TCase *p = tcase_create("pool");

    tcase_set_timeout(p, 30);
    tcase_add_test(p, test_config_keys);
    tcase_add_test(p, test_pool_reuses);
    tcase_add_test(p, test_idle_closed_by_upstream);
    tcase_add_test(p, test_stale_retry);
    tcase_add_test(p, test_stale_no_retries);
    tcase_add_test(p, test_connect_refused);
    tcase_add_test(p, test_warnings_rate_limited);
    tcase_add_test(p, test_read_timeout);
    tcase_add_test(p, test_connect_timeout);
    tcase_add_test(p, test_invalid_and_reset);
    tcase_add_test(p, test_framings);
    tcase_add_test(p, test_cancel_everywhere);
    tcase_add_test(p, test_waiters);
    tcase_add_test(p, test_waiters_bounded);
    tcase_add_test(p, test_keepalive_requests);
    tcase_add_test(p, test_no_reuse);
    tcase_add_test(p, test_idle_limits);
    tcase_add_test(p, test_round_robin_and_health);
    tcase_add_test(p, test_pause_resume);
    tcase_add_test(p, test_exit_frees_everything);
    suite_add_tcase(s, p);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(upstream_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
