/*
 * test_wsgi.c - integration tests of the `wsgi` module (src/apps/wsgi/):
 * the real build/preforkd serving the Python apps of tests/wsgi/ (plain
 * WSGI apps, mostly wrapped in wsgiref.validate.validator, and Flask,
 * Django and Falcon apps) on 127.0.0.1 ephemeral ports. Covers the environ,
 * wsgi.input and wsgi.errors, start_response's rules, errors before and
 * after the head, close() on every path, threads, back-pressure, the fork
 * duties (random, at-fork hooks, post_fork), import-time threads and
 * signal handlers, C extensions, -t with bad values, and recycling a
 * leaking app. Clients: the harness, and curl and python3-requests.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "load.h"

#define RE_SPAWNED "master: worker ([0-9]+) spawned \\(pid ([0-9]+)"
#define BIG_BYTES (1600L * 65536L) /* plain.py /big */

/* ---- helpers --------------------------------------------------------------- */

static char *apps_dir(void)
{
    char *p;

    ck_assert(asprintf(&p, "%s/tests/wsgi", harness_env("PREFORKD_SRC")) > 0);
    return p;
}

/* Writes the configuration of a wsgi daemon: `workers`, [server] extra
 * lines, [app] lines after module and python_path, more sections. */
static void wsgi_config(struct hdaemon *d, int workers, const char *server,
                        const char *app, const char *more)
{
    char *mod = harness_path("PREFORKD_APPS", "wsgi.so"), *dir = apps_dir();

    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0\nworkers = %d\n"
                          "%s\n%s\n"
                          "[app]\nmodule = %s\npython_path = %s\n%s\n"
                          "[log]\nlevel = info\n%s",
                          workers,
                          server && strstr(server, "graceful_timeout")
                              ? ""
                              : "graceful_timeout = 3s",
                          server ? server : "", mod, dir, app, more ? more : "");
    free(mod);
    free(dir);
}

static struct hdaemon *start(int workers, const char *server, const char *app)
{
    struct hdaemon *d = harness_daemon_new();

    wsgi_config(d, workers, server, app, NULL);
    harness_daemon_spawn(d, NULL);
    harness_daemon_wait_ready(d, 20);
    return d;
}

/* GET target on a fresh connection (Connection: close). */
static void get(struct hdaemon *d, const char *target, struct hresp *r)
{
    char req[1024];

    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
             target);
    harness_roundtrip(d->port, req, r);
}

/* Asserts GET target gives status and exactly body (body NULL: any). */
static void expect_get(struct hdaemon *d, const char *target, int status,
                       const char *body)
{
    struct hresp r;

    get(d, target, &r);
    ck_assert_msg(r.status == status, "GET %s: status %d, expected %d: %s", target,
                  r.status, status, harness_printable(r.body, r.body_len, 300));
    if (body != NULL)
        ck_assert_msg(r.body_len == strlen(body) && !memcmp(r.body, body, r.body_len),
                      "GET %s: body \"%s\", expected \"%s\"", target,
                      harness_printable(r.body, r.body_len, 300), body);
    hresp_free(&r);
}

/* The body must contain needle. */
static void expect_in(const struct hresp *r, const char *needle)
{
    ck_assert_msg(r->body != NULL && strstr(r->body, needle) != NULL,
                  "expected %s in the body, got %s", needle,
                  harness_printable(r->body, r->body_len, 2000));
}

static void expect_log(struct hdaemon *d, const char *regex, int min)
{
    ck_assert_msg(harness_log_wait(d, regex, min, 10),
                  "expected %d log lines matching %s, got %d; log:\n%s", min, regex,
                  harness_log_count(d, regex), harness_log_tail(d, 4000));
}

/* The pid of the worker spawned last. */
static pid_t last_worker(struct hdaemon *d)
{
    long pids[64];
    int n = harness_log_numbers(d, RE_SPAWNED, 2, pids, 64);

    ck_assert_int_gt(n, 0);
    return (pid_t)pids[n > 64 ? 63 : n - 1];
}

static long body_number(struct hdaemon *d, const char *target)
{
    struct hresp r;
    long v;

    get(d, target, &r);
    ck_assert_int_eq(r.status, 200);
    v = strtol(r.body, NULL, 10);
    hresp_free(&r);
    return v;
}

/* Runs a shell command, returns its stdout (malloc'd) and exit status. */
static char *run(const char *cmd, int *status)
{
    FILE *f = popen(cmd, "r");
    char *out = calloc(1, 1 << 16);
    size_t n = 0, k;

    ck_assert_ptr_nonnull(f);
    while ((k = fread(out + n, 1, (1 << 16) - 1 - n, f)) > 0)
        n += k;
    *status = pclose(f);
    return out;
}

/* ---- the environ ---------------------------------------------------------- */

START_TEST(test_environ)
{
    struct hdaemon *d = start(1, NULL,
                              "app = plain:app\nthreads = 0\n"
                              "script_name = /mount/\n"
                              "url_scheme = https\n");
    struct hresp r;
    char local[128];

    harness_roundtrip(d->port,
                      "POST /mount/environ/a%20b%2Fc%C3%A9?x=1&y=%20 HTTP/1.1\r\n"
                      "Host: example.com:8080\r\nX-Multi: one\r\n"
                      "X-Forwarded_For: 6.6.6.6\r\nX-Multi: two\r\n"
                      "Cookie: a=1\r\nCookie: b=2\r\n"
                      "Content-Type: text/plain\r\nContent-Length: 3\r\n"
                      "Connection: close\r\n\r\nabc",
                      &r);
    ck_assert_int_eq(r.status, 200);
    expect_in(&r, "\"CONTENT_LENGTH\": \"3\", \"CONTENT_TYPE\": \"text/plain\", "
                  "\"HTTP\": {\"HTTP_CONNECTION\": \"close\", \"HTTP_COOKIE\": "
                  "\"a=1; b=2\", \"HTTP_HOST\": \"example.com:8080\", "
                  "\"HTTP_X_MULTI\": \"one, two\"}, "
                  "\"PATH_INFO\": \"/environ/a b/c\\u00c3\\u00a9\", "
                  "\"QUERY_STRING\": \"x=1&y=%20\", \"REMOTE_ADDR\": "
                  "\"127.0.0.1\", \"REQUEST_METHOD\": \"POST\", "
                  "\"SCRIPT_NAME\": \"/mount\", \"SERVER_NAME\": "
                  "\"example.com\", \"SERVER_PORT\": \"8080\", "
                  "\"SERVER_PROTOCOL\": \"HTTP/1.1\", \"has_REMOTE_PORT\": "
                  "true, \"wsgi.input_terminated\": true, "
                  "\"wsgi.multiprocess\": true, \"wsgi.multithread\": false, "
                  "\"wsgi.run_once\": false, \"wsgi.url_scheme\": \"https\", "
                  "\"wsgi.version\": [1, 0]}");
    hresp_free(&r);

    /* HTTP/1.0 without Host or body: the address it came in on; a chunked
     * body's size. */
    harness_roundtrip(d->port, "GET /mount/environ HTTP/1.0\r\n\r\n", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_null(strstr(r.body, "CONTENT_LENGTH"));
    snprintf(local, sizeof(local),
             "\"SERVER_NAME\": \"127.0.0.1\", \"SERVER_PORT\": "
             "\"%d\", \"SERVER_PROTOCOL\": \"HTTP/1.0\"",
             d->port);
    expect_in(&r, local);
    hresp_free(&r);
    harness_roundtrip(d->port,
                      "POST /mount/environ HTTP/1.1\r\nHost: [::1]:99\r\n"
                      "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                      "4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n",
                      &r);
    expect_in(&r, "\"CONTENT_LENGTH\": \"7\"");
    expect_in(&r, "\"SERVER_NAME\": \"[::1]\", \"SERVER_PORT\": \"99\"");
    hresp_free(&r);

    /* Outside the mount point: 404 without calling the app. */
    expect_get(d, "/mountain/environ", 404, "404 Not Found\n");
    expect_get(d, "/environ", 404, "404 Not Found\n");
    expect_get(d, "/mount/nothing", 404, "no route /nothing\n");
}
END_TEST

START_TEST(test_input_and_errors)
{
    static const struct {
        const char *how, *json;
    } cases[] = {
        {"read", "[\"one\\ntwo\\nlast\"]"},
        {"read3", "[\"one\", \"\\ntw\", \"o\\nl\", \"ast\"]"},
        {"readline", "[\"one\\n\", \"two\\n\", \"last\"]"},
        {"readline2", "[\"on\", \"e\\n\", \"two\\nlast\"]"},
        {"readlines", "[\"one\\n\", \"two\\n\", \"last\"]"},
        {"iter", "[\"one\\n\", \"two\\n\", \"last\"]"},
    };
    struct hdaemon *d = start(1, NULL, "app = plain:app\nthreads = 2\n");

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char req[256];
        struct hresp r;

        snprintf(req, sizeof(req),
                 "POST /input?%s HTTP/1.1\r\nHost: t\r\n"
                 "Content-Length: 12\r\nConnection: close\r\n\r\n"
                 "one\ntwo\nlast",
                 cases[i].how);
        harness_roundtrip(d->port, req, &r);
        ck_assert_int_eq(r.status, 200);
        ck_assert_msg(strcmp(r.body, cases[i].json) == 0, "%s: %s, expected %s",
                      cases[i].how, r.body, cases[i].json);
        hresp_free(&r);
    }
    expect_get(d, "/errors", 200, "logged\n");
    expect_log(d, "\\[error\\] .* worker 1: errors line one$", 1);
    expect_log(d, "\\[error\\] .* worker 1: errors line two$", 1);
    expect_log(d, "\\[error\\] .* worker 1: errors unterminated$", 1);
    ck_assert_int_eq(harness_log_count(d, "errors line"), 2);
}
END_TEST

/* ---- start_response, errors, framing ------------------------------------------ */

START_TEST(test_responses)
{
    struct hdaemon *d = start(1, NULL, "app = plain:app\nthreads = 2\n");
    pid_t pid = last_worker(d);
    struct hconn *c;
    struct hresp r;

    /* Errors before the head: 500, the traceback and the request line. */
    expect_get(d, "/boom", 500, "500 Internal Server Error\n");
    expect_log(d, "worker 1: wsgi: GET /boom: the app failed, answering 500:$", 1);
    expect_log(d, "worker 1: ValueError: boom before the head$", 1);
    expect_get(d, "/system_exit", 500, "500 Internal Server Error\n");
    expect_log(d, "worker 1: SystemExit: 3$", 1);
    expect_get(d, "/keyboard", 500, "500 Internal Server Error\n");
    expect_log(d, "worker 1: KeyboardInterrupt$", 1);
    expect_get(d, "/no_start", 500, NULL);
    expect_log(d,
               "RuntimeError: the app sent a body \\(or returned\\) without "
               "calling start_response",
               1);
    expect_get(d, "/bad_status", 500, NULL);
    expect_log(d, "ValueError: status 'OK' is not of the form \"200 OK\"", 1);
    expect_get(d, "/bad_header", 500, NULL);
    expect_log(d, "ValueError: header .*invalid name or value", 1);
    expect_get(d, "/twice", 500, NULL);
    expect_log(d, "RuntimeError: start_response called twice without exc_info", 1);
    expect_get(d, "/exc_info", 503, "replaced\n");
    expect_get(d, "/writer", 200, "written returned\n");

    /* After the head: the response is cut. */
    c = harness_connect(d->port);
    harness_send_str(c, "GET /boom_after HTTP/1.1\r\nHost: t\r\n\r\n");
    ck_assert_int_eq(harness_read_response(c, &r, false, 5), -1);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(harness_wait_closed(c, 5), 1);
    hresp_free(&r);
    harness_close(c);
    expect_log(d,
               "GET /boom_after: the app failed after the response head: "
               "cutting the response:$",
               1);

    /* Content-Length: a short body closes the connection, a long one is cut
     * at the declared length and the connection goes on. */
    c = harness_connect(d->port);
    harness_send_str(c, "GET /cl_short HTTP/1.1\r\nHost: t\r\n\r\n");
    ck_assert_int_eq(harness_read_response(c, &r, false, 5), -1);
    ck_assert_str_eq(hresp_header(&r, "Content-Length"), "10");
    hresp_free(&r);
    harness_close(c);
    c = harness_connect(d->port);
    harness_send_str(c, "GET /cl_long HTTP/1.1\r\nHost: t\r\n\r\n"
                        "HEAD /pid HTTP/1.1\r\nHost: t\r\n\r\n"
                        "GET /empty HTTP/1.1\r\nHost: t\r\n\r\n");
    harness_expect_response(c, &r, false, "cl_long");
    ck_assert_int_eq(r.body_len, 5);
    ck_assert_str_eq(r.body, "12345");
    hresp_free(&r);
    harness_expect_response(c, &r, true, "HEAD /pid");
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(r.body_len, 0);
    ck_assert_ptr_nonnull(hresp_header(&r, "Content-Length"));
    hresp_free(&r);
    harness_expect_response(c, &r, false, "204");
    ck_assert_int_eq(r.status, 204);
    ck_assert_int_eq(r.body_len, 0);
    hresp_free(&r);
    harness_close(c);

    /* The same worker went on through all of it. */
    ck_assert_int_eq(body_number(d, "/pid"), pid);
    ck_assert_int_eq(harness_log_count(d, RE_SPAWNED), 1);
}
END_TEST

START_TEST(test_file_wrapper)
{
    struct hdaemon *d = start(1, NULL, "app = plain:app\nthreads = 2\n");
    size_t len = 300000;
    char *data = malloc(len), path[256], target[400];
    struct hresp r;

    for (size_t i = 0; i < len; i++)
        data[i] = (char)('a' + (i * 7) % 26);
    snprintf(path, sizeof(path), "%s/file.bin", d->dir);
    harness_write_file(path, data, len);
    snprintf(target, sizeof(target), "/file?%s", path);
    get(d, target, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(r.body_len, len);
    ck_assert(memcmp(r.body, data, len) == 0);
    hresp_free(&r);
    snprintf(target, sizeof(target), "/file?%s&skip3", path);
    get(d, target, &r);
    ck_assert_int_eq(r.body_len, len - 3);
    ck_assert(memcmp(r.body, data + 3, len - 3) == 0);
    hresp_free(&r);
    snprintf(target, sizeof(target), "/file?%s&skip3cl7", path);
    get(d, target, &r);
    ck_assert_int_eq(r.body_len, 7);
    ck_assert(memcmp(r.body, data + 3, 7) == 0);
    hresp_free(&r);
    free(data);
}
END_TEST

/* ---- close() ----------------------------------------------------------------- */

static void close_on_every_path(int threads)
{
    char app[64];
    struct hdaemon *d;
    struct hconn *c;
    struct hresp r;
    char buf[4096];

    snprintf(app, sizeof(app), "app = plain:app\nthreads = %d\n", threads);
    d = start(1, NULL, app);
    expect_get(d, "/stream?n=3&size=4", 200, "000000010002");
    expect_log(d, "worker 1: closed /stream 1$", 1);
    /* an exception in the middle */
    c = harness_connect(d->port);
    harness_send_str(c, "GET /stream?n=5&fail=2 HTTP/1.1\r\nHost: t\r\n\r\n");
    ck_assert_int_eq(harness_read_response(c, &r, false, 5), -1);
    hresp_free(&r);
    harness_close(c);
    expect_log(d, "worker 1: closed /stream 2$", 1);
    /* a client that goes away in the middle of an endless body */
    c = harness_connect(d->port);
    harness_send_str(c, "GET /stream?n=100000000&size=65536 HTTP/1.1\r\n"
                        "Host: t\r\n\r\n");
    ck_assert_int_eq(harness_read_exact(c, buf, sizeof(buf) - 1, 5), 0);
    harness_close(c);
    expect_log(d, "worker 1: closed /stream 3$", 1);
    expect_get(d, "/pid", 200, NULL);
    ck_assert_int_eq(harness_log_count(d, "closed /stream"), 3);
}

START_TEST(test_close_threads0)
{
    close_on_every_path(0);
}
END_TEST

START_TEST(test_close_threads2)
{
    close_on_every_path(2);
}
END_TEST

/* ---- threads ----------------------------------------------------------------- */

/* threads = 2: a request blocked in Python does not hold a fast one. */
START_TEST(test_slow_does_not_delay_fast)
{
    struct hdaemon *d = start(1, NULL, "app = plain:app\nthreads = 2\n");
    struct hconn *slow = harness_connect(d->port);
    struct hresp r;
    double t0;

    harness_send_str(slow, "GET /wait_gate HTTP/1.1\r\nHost: t\r\n\r\n");
    t0 = harness_now();
    expect_get(d, "/pid", 200, NULL);
    ck_assert_msg(harness_now() - t0 < 3, "the fast request waited");
    ck_assert_int_eq(harness_wait_closed(slow, 0.05), 0); /* still waiting */
    ck_assert_int_eq(slow->len, 0);
    expect_get(d, "/open_gate", 200, "opening\n");
    harness_expect_response(slow, &r, false, "slow");
    ck_assert_str_eq(r.body, "gate opened\n");
    hresp_free(&r);
    harness_close(slow);
}
END_TEST

/* A generator's pieces reach the client as they come, not when the app is
 * done (server-sent events, progress output). */
START_TEST(test_generator_pieces_flow)
{
    struct hdaemon *d = start(1, NULL, "app = plain:app\nthreads = 2\n");
    struct hconn *c = harness_connect(d->port);
    double end = harness_now() + 5;
    struct hresp r;

    harness_send_str(c, "GET /events HTTP/1.1\r\nHost: t\r\n\r\n");
    /* the head and the first chunk, while the app waits for the gate */
    while (memmem(c->buf ? c->buf : "", c->len, "event 1\n", 8) == NULL) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        char buf[4096];
        ssize_t n;

        ck_assert_msg(harness_now() < end, "no first piece: %s",
                      harness_printable(c->buf, c->len, 300));
        if (poll(&p, 1, 100) <= 0)
            continue;
        n = recv(c->fd, buf, sizeof(buf), MSG_PEEK);
        ck_assert_int_gt(n, 0);
        if (memmem(buf, (size_t)n, "event 1\n", 8) != NULL)
            break;
    }
    expect_get(d, "/open_gate", 200, "opening\n");
    harness_expect_response(c, &r, false, "events");
    ck_assert(r.chunked);
    ck_assert_str_eq(r.body, "event 1\nevent 2\n");
    hresp_free(&r);
    harness_close(c);
}
END_TEST

/* threads = 1: while the only Python thread is busy for longer than the
 * heartbeat timeout, the loop goes on (the master does not kill the
 * worker) and requests on a kept-alive connection are read and answered
 * in order afterwards. */
START_TEST(test_one_thread_loop_free)
{
    struct hdaemon *d = start(1, "timeout = 500ms", "app = plain:app\nthreads = 1\n");
    pid_t pid = last_worker(d);
    struct hconn *a = harness_connect(d->port), *b = harness_connect(d->port);
    char req[512], path[256];
    struct hresp r;

    snprintf(path, sizeof(path), "%s/go", d->dir);
    snprintf(req, sizeof(req), "GET /wait_file?%s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    harness_send_str(a, req);
    harness_pause(0.2); /* a's request first */
    harness_send_str(b, "GET /pid HTTP/1.1\r\nHost: t\r\n\r\n");
    harness_pause(1.6); /* three heartbeat timeouts, a master tick or more */
    ck_assert_int_eq(b->len, 0);
    harness_write_file(path, "", 0);
    harness_expect_response(a, &r, false, "wait_file");
    ck_assert_str_eq(r.body, "file seen\n");
    hresp_free(&r);
    harness_expect_response(b, &r, false, "pid");
    ck_assert_int_eq(strtol(r.body, NULL, 10), pid);
    hresp_free(&r);
    harness_send_str(b, "GET /pid HTTP/1.1\r\nHost: t\r\n\r\n"
                        "GET /stream?n=2&size=3 HTTP/1.1\r\nHost: t\r\n\r\n");
    harness_expect_response(b, &r, false, "pid 2");
    ck_assert_int_eq(strtol(r.body, NULL, 10), pid);
    hresp_free(&r);
    harness_expect_response(b, &r, false, "stream");
    ck_assert_str_eq(r.body, "000001");
    hresp_free(&r);
    harness_close(a);
    harness_close(b);
    ck_assert_int_eq(harness_log_count(d, "no heartbeat"), 0);
    ck_assert_int_eq(harness_log_count(d, RE_SPAWNED), 1);
}
END_TEST

/* A request in Python longer than stuck_timeout: the worker asks for its
 * replacement, which serves first; then it retires and is counted
 * "requested". */
START_TEST(test_stuck_timeout)
{
    struct hdaemon *d = start(1, "graceful_timeout = 1s",
                              "app = plain:app\nthreads = 1\n"
                              "stuck_timeout = 1s\n");
    pid_t pid = last_worker(d);
    struct hconn *c = harness_connect(d->port);

    harness_send_str(c, "GET /hang?30 HTTP/1.1\r\nHost: t\r\n\r\n");
    expect_log(d,
               "wsgi: request GET /hang\\?30 stuck in the app for [0-9]+s "
               "\\(stuck_timeout 1s\\): asking for this worker's replacement",
               1);
    expect_log(d, "retired: requested", 1); /* its replacement serves */
    ck_assert_int_eq(harness_wait_closed(c, 10), 1);
    harness_close(c);
    ck_assert_int_ne(body_number(d, "/pid"), pid);
}
END_TEST

/* ---- back-pressure ----------------------------------------------------------- */

/* Reads the rest of a response to /big: the head, then BIG_BYTES. */
static void read_big(struct hconn *c)
{
    char buf[65536];
    size_t head = 0, total = 0;
    double end = harness_now() + 60;

    memcpy(buf, c->buf, c->len < sizeof(buf) ? c->len : sizeof(buf));
    total = c->len;
    c->len = 0;
    for (;;) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        ssize_t n;

        if (head == 0) {
            char *e = memmem(buf, total < sizeof(buf) ? total : sizeof(buf), "\r\n\r\n",
                             4);
            if (e != NULL)
                head = (size_t)(e - buf) + 4;
        }
        if (head > 0 && total >= head + (size_t)BIG_BYTES)
            break;
        ck_assert_msg(harness_now() < end, "/big: %zu bytes after 60 s", total);
        if (poll(&p, 1, 1000) <= 0)
            continue;
        n = recv(c->fd, head == 0 ? buf + total : buf,
                 head == 0 ? sizeof(buf) - total : sizeof(buf), 0);
        ck_assert_msg(n > 0, "/big: closed after %zu bytes", total);
        total += (size_t)n;
    }
    ck_assert_int_eq(total, head + (size_t)BIG_BYTES);
}

/* A 100 MB response (target) to a client that does not read for a while,
 * then reads it all: the worker's RSS stays within 20 MB of before. */
static void slow_reader(struct hdaemon *d, pid_t pid, const char *target)
{
    struct hconn *c;
    long before, peak = 0;
    int rcv = 64 * 1024;
    char req[128];

    before = harness_proc_rss_kib(pid);
    c = harness_connect(d->port);
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", target);
    harness_send_str(c, req);
    /* A client that does not read: the generator must wait for it. */
    for (int i = 0; i < 6; i++) {
        long rss;
        harness_pause(0.1);
        rss = harness_proc_rss_kib(pid);
        peak = rss > peak ? rss : peak;
    }
    ck_assert_msg(peak - before < 20 * 1024, "worker RSS grew by %ld KiB", peak - before);
    read_big(c);
    ck_assert_msg(harness_proc_rss_kib(pid) - before < 20 * 1024,
                  "worker RSS grew by %ld KiB after the body",
                  harness_proc_rss_kib(pid) - before);
    harness_close(c);
}

static void backpressure(int threads)
{
    char app[64];
    struct hdaemon *d;
    pid_t pid;

    snprintf(app, sizeof(app), "app = plain:app\nthreads = %d\n", threads);
    d = start(1, NULL, app);
    pid = last_worker(d);
    expect_get(d, "/pid", 200, NULL); /* warm */
    slow_reader(d, pid, "/big");
    if (threads > 0) /* write() waits for the client with threads only */
        slow_reader(d, pid, "/bigwrite");
}

START_TEST(test_backpressure_threads0)
{
    backpressure(0);
}
END_TEST

START_TEST(test_backpressure_threads2)
{
    backpressure(2);
}
END_TEST

/* ---- the interpreter in preforkd's processes -------------------------------- */

START_TEST(test_c_extensions)
{
    struct hdaemon *d = start(1, NULL, "app = plain:app\nthreads = 2\n");

    expect_get(d, "/cext", 200,
               "bz2 ok, sqlite 45, ssl PROTOCOL_TLS_CLIENT, sha256 2d711642\n");
}
END_TEST

/* Each worker draws its own numbers (random is reseeded after fork),
 * os.register_at_fork hooks ran once, post_fork ran in each worker. */
START_TEST(test_fork_duties)
{
    struct hdaemon *d = start(2, "preload = true",
                              "app = forks:app\npost_fork = forks:post_fork\n");
    char *log;
    double v[2];
    int n = 0;

    expect_log(d, "post_fork pid [0-9]+ random 0\\.[0-9]+ at_fork 1$", 2);
    log = harness_log_text(d);
    for (char *p = log; n < 2 && (p = strstr(p, " random ")) != NULL; p++)
        v[n++] = strtod(p + 8, NULL);
    free(log);
    ck_assert_int_eq(n, 2);
    ck_assert_msg(v[0] != v[1], "both workers drew %.17g", v[0]);
}
END_TEST

START_TEST(test_post_fork_fails)
{
    struct hdaemon *d = harness_daemon_new();

    wsgi_config(d, 1, NULL, "app = forks:app\npost_fork = forks:failing_post_fork\n",
                NULL);
    harness_daemon_spawn(d, NULL);
    ck_assert(harness_daemon_wait_exit(d, 20));
    ck_assert_int_eq(harness_exit_code(d), 70);
    expect_log(d, "wsgi: post_fork failed:$", 1);
    expect_log(d, "RuntimeError: post_fork refuses$", 1);
}
END_TEST

START_TEST(test_import_thread_warned)
{
    struct hdaemon *d = start(1, NULL, "app = importthread:app\n");

    expect_get(d, "/", 200, "threads: MainThread\n");
    ck_assert_int_eq(harness_log_count(d, "wsgi: thread 'ticker' started at "
                                          "import time will not exist in "
                                          "workers$"),
                     1);
}
END_TEST

/* An app's SIGUSR2 handler from import time is undone: USR2 is the
 * worker's snapshot, and the worker goes on serving. */
START_TEST(test_import_usr2_handler)
{
    struct hdaemon *d = start(1, NULL, "app = usr2:app\nthreads = 1\n");
    pid_t pid = last_worker(d);
    char want[64];

    expect_log(d,
               "wsgi: the app changed the handling of SIGUSR2 at import "
               "time: undone",
               1);
    ck_assert_int_eq(kill(pid, SIGUSR2), 0);
    expect_log(d, "worker 1: snapshot: ", 1);
    snprintf(want, sizeof(want), "pid %d hits 0\n", (int)pid);
    expect_get(d, "/", 200, want);
    ck_assert_int_eq(harness_log_count(d, RE_SPAWNED), 1);
}
END_TEST

/* load in each worker; a worker that leaves with a thread still in the
 * app (graceful_timeout passed) exits cleanly. */
START_TEST(test_preload_false)
{
    struct hdaemon *d = start(1, "preload = false\ngraceful_timeout = 1s",
                              "app = plain:app\nthreads = 2\n");
    struct hconn *c;

    expect_get(d, "/cext", 200,
               "bz2 ok, sqlite 45, ssl PROTOCOL_TLS_CLIENT, sha256 2d711642\n");
    expect_get(d, "/stream?n=2&size=2", 200, "0001");
    c = harness_connect(d->port);
    harness_send_str(c, "GET /hang?5 HTTP/1.1\r\nHost: t\r\n\r\n");
    harness_pause(0.2);
    ck_assert(harness_daemon_stop(d, SIGTERM, 10));
    ck_assert_int_eq(harness_exit_code(d), 0);
    expect_log(d,
               "worker 1 \\(pid [0-9]+, generation 1\\) retired: shutdown "
               "\\(exited with status 0\\)",
               1);
    harness_close(c);
}
END_TEST

/* The worker publishes Python's object heap (pymalloc's arenas), which
 * /stats shows next to malloc's. */
static bool heap_published(void *arg)
{
    int port = *(int *)arg;
    char *json = stats_get(port);
    bool ok = json != NULL && stats_num(json, "python") > 1e6;

    free(json);
    return ok;
}

START_TEST(test_python_heap_published)
{
    struct hdaemon *d = harness_daemon_new();
    int port;

    wsgi_config(d, 1, NULL, "app = plain:app\n", "[admin]\nlisten = 127.0.0.1:0\n");
    harness_daemon_spawn(d, NULL);
    harness_daemon_wait_ready(d, 20);
    port = stats_admin_port(d);
    expect_get(d, "/pid", 200, NULL);
    ck_assert_msg(harness_wait_for(heap_published, &port, 10),
                  "no python heap in /stats: %s", stats_get(port));
}
END_TEST

/* ---- configuration errors (preforkd -t) ------------------------------------- */

/* preforkd -t with [app] lines; returns the exit code. */
static int check_config(struct hdaemon *d, const char *app)
{
    const char *args[] = {"-t", "-c", d->conf, NULL};

    harness_write_file(d->log, "", 0);
    wsgi_config(d, 1, NULL, app, NULL);
    harness_daemon_spawn(d, args);
    ck_assert(harness_daemon_wait_exit(d, 20));
    return harness_exit_code(d);
}

/* A virtualenv's site-packages, as that virtualenv's python sees it (the
 * system's dist-packages left out), and one for another Python refused. */
START_TEST(test_virtualenv)
{
    static const char app[] =
        "import importlib.util, sys\n"
        "def app(environ, start_response):\n"
        "    body = ('prefix %s flask %s\\n' % (sys.prefix,\n"
        "            importlib.util.find_spec('flask') is not None)).encode()\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [body]\n";
    struct hdaemon *d = harness_daemon_new();
    char cmd[600], path[400], keys[600], want[400], *out;
    int st;

    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 -m venv --without-pip %s/venv", d->dir);
    out = run(cmd, &st);
    ck_assert_msg(st == 0, "%s: %s", cmd, out);
    free(out);
    snprintf(path, sizeof(path), "%s/venv/lib/python3.11/site-packages/venvapp.py",
             d->dir);
    harness_write_file(path, app, sizeof(app) - 1);
    snprintf(keys, sizeof(keys), "app = venvapp:app\nvirtualenv = %s/venv\n", d->dir);
    wsgi_config(d, 1, NULL, keys, NULL);
    harness_daemon_spawn(d, NULL);
    harness_daemon_wait_ready(d, 20);
    snprintf(want, sizeof(want), "prefix %s/venv flask False\n", d->dir);
    expect_get(d, "/", 200, want);
    harness_daemon_stop(d, SIGTERM, 10);

    /* A virtualenv of another Python version. */
    snprintf(path, sizeof(path), "%s/venv/pyvenv.cfg", d->dir);
    harness_write_file(path, "home = /usr/bin\nversion = 3.9.2\n", 32);
    ck_assert_int_eq(check_config(d, keys), 78);
    snprintf(want, sizeof(want),
             "\\[app\\] virtualenv: %s/venv is for Python "
             "3.9, this preforkd embeds Python 3.11$",
             d->dir);
    expect_log(d, want, 1);
}
END_TEST

START_TEST(test_check_import_failure)
{
    struct hdaemon *d = harness_daemon_new();

    ck_assert_int_eq(check_config(d, "app = importfail:application"), 78);
    /* [app] is line 6, module 7, python_path 8, app 9 (wsgi_config) */
    expect_log(d, "preforkd.ini:9: \\[app\\] app: cannot import \"importfail\":$", 1);
    expect_log(d, "Traceback \\(most recent call last\\):$", 1);
    expect_log(d, "File \".*/tests/wsgi/importfail.py\", line 9, in <module>$", 1);
    expect_log(d, "LookupError: configuration missing: PREFORKD_TEST_SETTING$", 1);
}
END_TEST

START_TEST(test_bad_app_values)
{
    /* [app] is line 6: module 7, python_path 8, then ours from 9. Errors
     * in the values themselves are all reported by one run. */
    static const struct {
        const char *app, *log[6];
    } bad[] = {
        {"threads = 1", {"preforkd.ini:6: \\[app\\] app: required"}},
        {"app =\nthreads = -1\nurl_scheme = ftp\ngc_freeze = maybe\n"
         "script_name = mount\nvirtualenv = /nonexistent",
         {"preforkd.ini:9: \\[app\\] app: required",
          "preforkd.ini:10: \\[app\\] threads: expected a number from 0 to 256",
          "preforkd.ini:11: \\[app\\] url_scheme: expected http or https",
          "preforkd.ini:12: \\[app\\] gc_freeze: expected true or false",
          "preforkd.ini:13: \\[app\\] script_name: expected a path starting",
          "preforkd.ini:14: \\[app\\] virtualenv: /nonexistent/pyvenv.cfg: No "
          "such file"}},
        {"app = 1x:app\npost_fork = forks:",
         {"preforkd.ini:9: \\[app\\] app: expected MODULE:CALLABLE",
          "preforkd.ini:10: \\[app\\] post_fork: expected MODULE:CALLABLE"}},
        {"app = notcallable:missing",
         {"preforkd.ini:9: \\[app\\] app: module \"notcallable\" has no "
          "attribute \"missing\""}},
        {"app = notcallable:Holder.nope",
         {"preforkd.ini:9: \\[app\\] app: module \"notcallable\" has no "
          "attribute \"Holder.nope\""}},
        {"app = notcallable:config",
         {"preforkd.ini:9: \\[app\\] app: notcallable:config is a dict, not a "
          "callable"}},
        {"app = plain:app\npost_fork = forks:nope",
         {"preforkd.ini:10: \\[app\\] post_fork: module \"forks\" has no "
          "attribute \"nope\""}},
        {"app = plain:app\nworkerz = 2",
         {"preforkd.ini:10: \\[app\\] workerz: unknown key"}},
        /* Digits only, as the daemon's numbers. */
        {"app = plain:app\nthreads = +2\ncensus_after = +3",
         {"preforkd.ini:10: \\[app\\] threads: expected a number from 0 to 256",
          "preforkd.ini:11: \\[app\\] census_after: expected a number from"}},
    };
    struct hdaemon *d = harness_daemon_new();

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int code = check_config(d, bad[i].app);

        ck_assert_msg(code == 78, "%s: exit %d, log:\n%s", bad[i].app, code,
                      harness_log_tail(d, 2000));
        for (size_t k = 0; k < 6 && bad[i].log[k] != NULL; k++)
            ck_assert_msg(harness_log_count(d, bad[i].log[k]) == 1,
                          "%s: expected %s in the log:\n%s", bad[i].app, bad[i].log[k],
                          harness_log_tail(d, 2000));
    }
    /* A dotted attribute path, and the default callable name. */
    ck_assert_int_eq(check_config(d, "app = notcallable:Holder.inner.app"), 0);
    ck_assert_int_eq(check_config(d, "app = djproj.wsgi"), 0);
}
END_TEST

/* ---- frameworks --------------------------------------------------------------- */

START_TEST(test_flask)
{
    struct hdaemon *d = start(1, NULL, "app = flaskapp:application\nthreads = 2\n");
    char cmd[1024], path[256], *out, *sum;
    struct hresp r;
    char data[100000];
    int st;

    expect_get(d, "/json?q=x", 200, "{\"hello\":\"world\",\"n\":3,\"q\":\"x\"}\n");
    harness_roundtrip(d->port,
                      "POST /form HTTP/1.1\r\nHost: t\r\n"
                      "Content-Type: application/x-www-form-urlencoded\r\n"
                      "Content-Length: 11\r\nConnection: close\r\n\r\n"
                      "b=2&a=1%2B1",
                      &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "[[\"a\",\"1+1\"],[\"b\",\"2\"]]\n");
    hresp_free(&r);
    get(d, "/stream", &r);
    ck_assert_str_eq(r.body, "line 0\nline 1\nline 2\nline 3\nline 4\n");
    hresp_free(&r);
    get(d, "/redirect", &r);
    ck_assert_int_eq(r.status, 302);
    ck_assert_str_eq(hresp_header(&r, "Location"), "/json");
    hresp_free(&r);
    expect_get(d, "/nope", 404, "{\"error\":\"not found\",\"path\":\"/nope\"}\n");
    expect_get(d, "/fail", 500, "{\"error\":\"handled\"}\n");
    expect_log(d, "RuntimeError: flask view failed$", 1);

    /* A multipart upload by curl. */
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)(i * 31 % 251);
    snprintf(path, sizeof(path), "%s/upload.bin", d->dir);
    harness_write_file(path, data, sizeof(data));
    snprintf(cmd, sizeof(cmd), "sha256sum %s", path);
    sum = run(cmd, &st);
    sum[64] = '\0';
    snprintf(cmd, sizeof(cmd),
             "curl -sS -F file=@%s -F note=hi "
             "http://127.0.0.1:%d/upload",
             path, d->port);
    out = run(cmd, &st);
    ck_assert_int_eq(st, 0);
    snprintf(cmd, sizeof(cmd),
             "{\"name\":\"upload.bin\",\"note\":\"hi\","
             "\"sha256\":\"%s\",\"size\":100000}\n",
             sum);
    ck_assert_str_eq(out, cmd);
    free(out);
    free(sum);
}
END_TEST

/* Django with its ORM on sqlite, driven by python3-requests. */
START_TEST(test_django)
{
    struct hdaemon *d = harness_daemon_new();
    char cmd[2048], *out;
    int st;

    setenv("PF_TEST_DIR", d->dir, 1);
    wsgi_config(d, 2, NULL,
                "app = djproj.wsgi:application\n"
                "post_fork = djproj.wsgi:post_fork\nthreads = 1\n",
                NULL);
    harness_daemon_spawn(d, NULL);
    harness_daemon_wait_ready(d, 30);
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/python3 -c '\n"
             "import requests\n"
             "u = \"http://127.0.0.1:%d\"\n"
             "for t in (\"n1\", \"n2\", \"n3\"):\n"
             "    r = requests.post(u + \"/notes/\", json={\"text\": t})\n"
             "    assert r.status_code == 201, r.status_code\n"
             "r = requests.get(u + \"/notes/\")\n"
             "print(r.status_code, r.text)\n"
             "print(requests.get(u + \"/hello/bob\").text, end=\"\")\n'",
             d->port);
    out = run(cmd, &st);
    ck_assert_msg(st == 0, "python3 exited %d: %s", st, out);
    ck_assert_str_eq(out, "200 {\"notes\": [\"n1\", \"n2\", \"n3\"], \"count\": 3}\n"
                          "hello bob from /\n");
    free(out);
}
END_TEST

START_TEST(test_falcon)
{
    struct hdaemon *d = start(1, NULL, "app = falconapp:application\n");
    struct hresp r;

    expect_get(d, "/things?q=z", 200, "{\"things\": [1, 2, 3], \"q\": \"z\"}");
    harness_roundtrip(d->port,
                      "POST /things HTTP/1.1\r\nHost: t\r\n"
                      "Content-Type: application/json\r\nContent-Length: 8\r\n"
                      "Connection: close\r\n\r\n{\"a\": 1}",
                      &r);
    ck_assert_int_eq(r.status, 201);
    ck_assert_str_eq(r.body, "{\"got\": {\"a\": 1}}");
    hresp_free(&r);
}
END_TEST

/* A Flask route that leaks 200 KiB a request, contained by max_requests:
 * workers are replaced and not one request fails. */
START_TEST(test_leak_max_requests)
{
    struct hdaemon *d = harness_daemon_new();
    int ok = 0;

    wsgi_config(d, 2, NULL, "app = flaskapp:application\nthreads = 1\n",
                "[recycle]\nmax_requests = 15\nmax_requests_jitter = 0\n");
    harness_daemon_spawn(d, NULL);
    harness_daemon_wait_ready(d, 20);
    for (int i = 0; i < 90; i++) {
        struct hresp r;
        get(d, "/leak", &r);
        ok += r.status == 200 && strncmp(r.body, "leaked ", 7) == 0;
        hresp_free(&r);
    }
    ck_assert_int_eq(ok, 90);
    expect_log(d, "retired: max_requests", 2);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("wsgi");
    TCase *tc = harness_tcase(s, "wsgi", 60);

    tcase_add_test(tc, test_environ);
    tcase_add_test(tc, test_input_and_errors);
    tcase_add_test(tc, test_responses);
    tcase_add_test(tc, test_file_wrapper);
    tcase_add_test(tc, test_close_threads0);
    tcase_add_test(tc, test_close_threads2);
    tcase_add_test(tc, test_slow_does_not_delay_fast);
    tcase_add_test(tc, test_generator_pieces_flow);
    tcase_add_test(tc, test_one_thread_loop_free);
    tcase_add_test(tc, test_stuck_timeout);
    tcase_add_test(tc, test_backpressure_threads0);
    tcase_add_test(tc, test_backpressure_threads2);
    tcase_add_test(tc, test_c_extensions);
    tcase_add_test(tc, test_fork_duties);
    tcase_add_test(tc, test_post_fork_fails);
    tcase_add_test(tc, test_import_thread_warned);
    tcase_add_test(tc, test_import_usr2_handler);
    tcase_add_test(tc, test_preload_false);
    tcase_add_test(tc, test_python_heap_published);
    tcase_add_test(tc, test_virtualenv);
    tcase_add_test(tc, test_check_import_failure);
    tcase_add_test(tc, test_bad_app_values);
    tcase_add_test(tc, test_flask);
    tcase_add_test(tc, test_django);
    tcase_add_test(tc, test_falcon);
    tcase_add_test(tc, test_leak_max_requests);
    return harness_run_suite(s);
}
