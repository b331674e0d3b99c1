/*
 * test_daemon.c - integration tests of preforkd: the real build/preforkd on
 * ephemeral 127.0.0.1 ports, driven over raw sockets, signals and its log.
 * Each test runs in a Check fork; the harness stops every daemon a test
 * starts, however the test ends. Needs PREFORKD_BIN, PREFORKD_APPS,
 * PREFORKD_TEST_APPS and PREFORKD_SRC (make check sets them);
 * PREFORKD_TEST_KEEP=1 keeps the temp dirs (config, log) for a look.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define RE_SPAWNED \
    "master: worker ([0-9]+) spawned \\(pid ([0-9]+), generation ([0-9]+)\\)"
#define RE_SERVING "\\] worker [0-9]+: serving"
#define RE_ENDED "master: worker [0-9]+ \\(pid [0-9]+\\) (exited|killed)"

#define HELLO_BODY "Hello, World!\n"

/* The limits the table-driven test runs with (see fixtures/http/cases.tsv). */
#define LIMITS \
    "max_request_line = 1024\n" \
    "max_headers = 20\n" \
    "max_header_size = 512\n" \
    "max_body_size = 1K\n"

struct limit_case {
    char file[128];
    int status;
    bool close;
    char note[160];
};

static struct limit_case cases[64];
static int ncases;

/* ---- helpers -------------------------------------------------------------- */

static struct hdaemon *start_app(const char *env_dir, const char *name, int workers,
                                 const char *extra)
{
    char file[64];
    char *mod;
    struct hdaemon *d;

    snprintf(file, sizeof file, "%s.so", name);
    mod = harness_path(env_dir, file);
    ck_assert_msg(access(mod, R_OK) == 0, "%s: %s", mod, strerror(errno));
    d = harness_start(mod, workers, extra);
    free(mod);
    return d;
}

static struct hdaemon *start_echo(int workers, const char *extra)
{
    return start_app("PREFORKD_APPS", "echo", workers, extra);
}

/* Asserts an exact body, showing both sides when they differ. */
static void assert_body(const struct hresp *r, const void *exp, size_t len,
                        const char *what)
{
    char *want;

    if (r->body_len == len && memcmp(r->body, exp, len) == 0)
        return;
    want = strdup(harness_printable(exp, len, 300));
    ck_abort_msg("%s: body of %zu bytes, want %zu:\n got: %s\nwant: %s", what,
                 r->body_len, len, harness_printable(r->body, r->body_len, 300), want);
}

static void assert_status(const struct hresp *r, int status, const char *what)
{
    ck_assert_msg(r->status == status, "%s: status %d (%s), want %d", what, r->status,
                  r->reason, status);
}

/* A 200 from echo whose body is exactly exp. */
static void assert_echo(const struct hresp *r, const char *exp, size_t len,
                        const char *what)
{
    const char *ct = hresp_header(r, "Content-Type");

    assert_status(r, 200, what);
    ck_assert_msg(ct != NULL && strncasecmp(ct, "text/plain", 10) == 0,
                  "%s: Content-Type %s", what, ct ? ct : "(none)");
    assert_body(r, exp, len, what);
}

static void assert_echo_str(const struct hresp *r, const char *exp, const char *what)
{
    assert_echo(r, exp, strlen(exp), what);
}

static bool header_is(const struct hresp *r, const char *name, const char *value)
{
    const char *v = hresp_header(r, name);

    return v != NULL && strcasecmp(v, value) == 0;
}

/* Runs preforkd with args to its end; returns its exit code. */
static int run_to_exit(struct hdaemon *d, const char *const *args, double timeout)
{
    harness_daemon_spawn(d, args);
    if (!harness_daemon_wait_exit(d, timeout)) {
        harness_daemon_stop(d, SIGKILL, 1.0);
        ck_abort_msg("preforkd still running after %.0f s; log:\n%s", timeout,
                     harness_log_tail(d, 1500));
    }
    return harness_exit_code(d);
}

static bool log_has(struct hdaemon *d, const char *text)
{
    char *t = harness_log_text(d);
    bool yes = strstr(t, text) != NULL;

    free(t);
    return yes;
}

/* The stream app's pattern: byte i is 'a' + i % 26. */
static void assert_pattern(const struct hresp *r, size_t len)
{
    size_t i;

    ck_assert_msg(r->body_len == len, "streamed body of %zu bytes, want %zu", r->body_len,
                  len);
    for (i = 0; i < len; i++)
        if (r->body[i] != (char)('a' + i % 26))
            ck_abort_msg("streamed body differs at byte %zu: 0x%02x, want "
                         "'%c'",
                         i, (unsigned char)r->body[i], (char)('a' + i % 26));
}

static void setup(void)
{
    harness_begin();
}

static void teardown(void)
{
    harness_end();
}

/* ---- echo: methods, bodies, framing ---------------------------------------- */

START_TEST(test_echo_get)
{
    static const char req[] = "GET /path/x?a=1&b=2 HTTP/1.1\r\n"
                              "Host: t\r\n"
                              "X-Test: b c\r\n"
                              "Accept: */*\r\n"
                              "\r\n";
    static const char exp[] = "GET /path/x?a=1&b=2 HTTP/1.1\n"
                              "Host: t\n"
                              "X-Test: b c\n"
                              "Accept: */*\n"
                              "\n";
    struct hdaemon *d = start_echo(2, NULL);
    struct hresp r;
    char cl[32];

    harness_roundtrip(d->port, req, &r);
    assert_echo_str(&r, exp, "GET");
    ck_assert_int_eq(r.minor, 1);
    ck_assert_msg(hresp_header(&r, "Date") != NULL, "no Date header");
    snprintf(cl, sizeof cl, "%zu", strlen(exp));
    ck_assert_msg(header_is(&r, "Content-Length", cl), "Content-Length %s, want %s",
                  hresp_header(&r, "Content-Length"), cl);
    ck_assert_msg(!r.chunked, "a whole response came chunked");
    hresp_free(&r);
}
END_TEST

START_TEST(test_echo_head)
{
    /* HEAD then GET in one write: if HEAD's response carried a body, the
     * GET's response would not parse. */
    static const char req[] = "HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n"
                              "GET /g HTTP/1.1\r\nHost: t\r\n\r\n";
    static const char head_exp[] = "HEAD /h HTTP/1.1\nHost: t\n\n";
    static const char get_exp[] = "GET /g HTTP/1.1\nHost: t\n\n";
    struct hdaemon *d = start_echo(1, NULL);
    struct hconn *c = harness_connect(d->port);
    struct hresp r;
    char cl[32];

    harness_send_str(c, req);
    harness_expect_response(c, &r, true, "HEAD");
    assert_status(&r, 200, "HEAD");
    snprintf(cl, sizeof cl, "%zu", strlen(head_exp));
    ck_assert_msg(header_is(&r, "Content-Length", cl),
                  "HEAD: Content-Length %s, want %s (the GET body's length)",
                  hresp_header(&r, "Content-Length"), cl);
    ck_assert_msg(hresp_header(&r, "Date") != NULL, "HEAD: no Date");
    hresp_free(&r);
    harness_expect_response(c, &r, false, "GET after HEAD");
    assert_echo_str(&r, get_exp, "GET after HEAD");
    hresp_free(&r);
    harness_close(c);
}
END_TEST

START_TEST(test_echo_post_content_length)
{
    enum { N = 70000 };
    static const char head[] = "POST /up HTTP/1.1\r\n"
                               "Host: t\r\n"
                               "Content-Type: application/octet-stream\r\n"
                               "Content-Length: 70000\r\n"
                               "\r\n";
    static const char exp_head[] = "POST /up HTTP/1.1\n"
                                   "Host: t\n"
                                   "Content-Type: application/octet-stream\n"
                                   "Content-Length: 70000\n"
                                   "\n";
    struct hdaemon *d = start_echo(1, NULL);
    struct hconn *c = harness_connect(d->port);
    size_t hl = strlen(exp_head), i;
    char *body = malloc(N), *exp = malloc(hl + N);
    struct hresp r;

    /* Every byte value, CR LF and NUL included. */
    for (i = 0; i < N; i++)
        body[i] = (char)((i * 7 + i / 251) & 0xff);
    memcpy(exp, exp_head, hl);
    memcpy(exp + hl, body, N);
    harness_send_str(c, head);
    harness_pause(0.05); /* head and body in separate reads */
    harness_send_all(c, body, 1000);
    harness_pause(0.05);
    harness_send_all(c, body + 1000, N - 1000);
    harness_expect_response(c, &r, false, "POST");
    assert_echo(&r, exp, hl + N, "POST with Content-Length");
    hresp_free(&r);
    harness_close(c);
    free(body);
    free(exp);
}
END_TEST

/* A client that half-closes after its request (shutdown(SHUT_WR), as
 * `nc -N` does) still gets the whole response, however much of it is
 * still queued when the server reads the end of its input. */
START_TEST(test_half_close_gets_whole_response)
{
    enum { N = 8 * 1024 * 1024 };
    struct hdaemon *d = start_echo(1, "max_body_size = 16M\n");
    struct hconn *c = harness_connect(d->port);
    char head[128], *body = malloc(N);
    struct hresp r;

    ck_assert_ptr_nonnull(body);
    memset(body, 'b', N);
    snprintf(head, sizeof head,
             "POST /big HTTP/1.1\r\nHost: t\r\n"
             "Content-Length: %d\r\n\r\n",
             N);
    harness_send_str(c, head);
    harness_send_all(c, body, N);
    ck_assert_int_eq(shutdown(c->fd, SHUT_WR), 0);
    harness_pause(0.3); /* the server reads the EOF before we read */
    harness_expect_response(c, &r, false, "POST, then half-close");
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_gt(r.body_len, N);
    ck_assert(memcmp(r.body + r.body_len - N, body, N) == 0);
    hresp_free(&r);
    harness_close(c);
    free(body);
}
END_TEST

START_TEST(test_echo_post_chunked)
{
    enum { BIG = 50000 };
    static const char head[] = "POST /chunked HTTP/1.1\r\n"
                               "Host: t\r\n"
                               "Transfer-Encoding: chunked\r\n"
                               "\r\n"
                               "5;ext=1\r\nhello\r\n"
                               "1\r\n \r\n"
                               "5\r\nworld\r\n"
                               "c350\r\n";
    static const char exp_head[] = "POST /chunked HTTP/1.1\n"
                                   "Host: t\n"
                                   "Transfer-Encoding: chunked\n"
                                   "\n"
                                   "hello world";
    static const char tail[] = "\r\n0\r\n\r\n";
    struct hdaemon *d = start_echo(1, NULL);
    struct hconn *c = harness_connect(d->port);
    size_t hl = strlen(exp_head), i;
    char *big = malloc(BIG), *exp = malloc(hl + BIG);
    struct hresp r;

    for (i = 0; i < BIG; i++)
        big[i] = (char)(i % 253);
    memcpy(exp, exp_head, hl);
    memcpy(exp + hl, big, BIG);
    /* Small pieces, so that sizes, CRLFs and data are split across reads. */
    for (i = 0; i < sizeof head - 1; i += 7) {
        size_t n = sizeof head - 1 - i < 7 ? sizeof head - 1 - i : 7;

        harness_send_all(c, head + i, n);
        harness_pause(0.002);
    }
    harness_send_all(c, big, BIG);
    harness_send_all(c, tail, 1);
    harness_pause(0.02);
    harness_send_all(c, tail + 1, sizeof tail - 2);
    harness_expect_response(c, &r, false, "chunked POST");
    assert_echo(&r, exp, hl + BIG, "POST with a chunked body");
    hresp_free(&r);
    /* The connection is still usable: the chunked body was fully read. */
    harness_send_str(c, "GET /next HTTP/1.1\r\nHost: t\r\n\r\n");
    harness_expect_response(c, &r, false, "GET after a chunked POST");
    assert_echo_str(&r, "GET /next HTTP/1.1\nHost: t\n\n", "GET after POST");
    hresp_free(&r);
    harness_close(c);
    free(big);
    free(exp);
}
END_TEST

START_TEST(test_keepalive_100)
{
    struct hdaemon *d = start_echo(2, NULL);
    struct hconn *c = harness_connect(d->port);
    int i;

    for (i = 0; i < 100; i++) {
        char req[96], exp[96], what[32];
        struct hresp r;

        snprintf(req, sizeof req, "GET /k/%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
        snprintf(exp, sizeof exp, "GET /k/%d HTTP/1.1\nHost: t\n\n", i);
        snprintf(what, sizeof what, "request %d of 100", i + 1);
        ck_assert_msg(harness_send(c, req, strlen(req), 5.0) == 0, "%s: %s", what,
                      harness_error());
        harness_expect_response(c, &r, false, what);
        assert_echo_str(&r, exp, what);
        ck_assert_msg(!header_is(&r, "Connection", "close"), "%s: Connection: close",
                      what);
        hresp_free(&r);
    }
    ck_assert_msg(harness_wait_closed(c, 0.0) == 0,
                  "connection not open after 100 requests: %s", harness_error());
    harness_close(c);
}
END_TEST

START_TEST(test_pipeline_3)
{
    static const char req[] = "GET /p1 HTTP/1.1\r\nHost: t\r\n\r\n"
                              "POST /p2 HTTP/1.1\r\nHost: t\r\n"
                              "Content-Length: 3\r\n\r\nabc"
                              "GET /p3 HTTP/1.1\r\nHost: t\r\n\r\n";
    static const char *const exp[] = {
        "GET /p1 HTTP/1.1\nHost: t\n\n",
        "POST /p2 HTTP/1.1\nHost: t\nContent-Length: 3\n\nabc",
        "GET /p3 HTTP/1.1\nHost: t\n\n",
    };
    struct hdaemon *d = start_echo(1, NULL);
    struct hconn *c = harness_connect(d->port);
    int i;

    harness_send_str(c, req); /* one write */
    for (i = 0; i < 3; i++) {
        char what[48];
        struct hresp r;

        snprintf(what, sizeof what, "pipelined response %d", i + 1);
        harness_expect_response(c, &r, false, what);
        assert_echo_str(&r, exp[i], what);
        hresp_free(&r);
    }
    ck_assert_msg(harness_wait_closed(c, 0.2) == 0, "after 3 pipelined responses: %s",
                  harness_error());
    harness_close(c);
}
END_TEST

START_TEST(test_http10_close)
{
    static const char exp[] = "GET /old HTTP/1.0\nHost: t\n\n";
    struct hdaemon *d = start_echo(1, NULL);
    struct hconn *c = harness_connect(d->port);
    struct hresp r;

    harness_send_str(c, "GET /old HTTP/1.0\r\nHost: t\r\n\r\n");
    harness_expect_response(c, &r, false, "HTTP/1.0 GET");
    assert_echo_str(&r, exp, "HTTP/1.0 GET");
    ck_assert_msg(!r.chunked, "chunked response to HTTP/1.0");
    ck_assert_msg(harness_wait_closed(c, 3.0) == 1, "HTTP/1.0 without keep-alive: %s",
                  harness_error());
    hresp_free(&r);
    harness_close(c);
}
END_TEST

START_TEST(test_http10_keepalive)
{
    static const char req[] = "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    static const char exp[] = "GET /a HTTP/1.0\nConnection: keep-alive\n\n";
    struct hdaemon *d = start_echo(1, NULL);
    struct hconn *c = harness_connect(d->port);
    struct hresp r;
    int i;

    for (i = 0; i < 2; i++) {
        harness_send_str(c, req);
        harness_expect_response(c, &r, false, "HTTP/1.0 keep-alive");
        assert_echo_str(&r, exp, "HTTP/1.0 keep-alive");
        ck_assert_msg(!r.chunked, "chunked response to HTTP/1.0");
        ck_assert_msg(hresp_header(&r, "Content-Length") != NULL,
                      "HTTP/1.0 keep-alive response without Content-Length");
        hresp_free(&r);
    }
    ck_assert_msg(harness_wait_closed(c, 0.2) == 0, "HTTP/1.0 keep-alive: %s",
                  harness_error());
    harness_close(c);
}
END_TEST

START_TEST(test_expect_continue)
{
    static const char head[] = "POST /e HTTP/1.1\r\nHost: t\r\n"
                               "Content-Length: 5\r\n"
                               "Expect: 100-continue\r\n\r\n";
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    static const char exp[] = "POST /e HTTP/1.1\nHost: t\nContent-Length: 5\n"
                              "Expect: 100-continue\n\nhello";
    struct hdaemon *d = start_echo(1, LIMITS);
    struct hconn *c = harness_connect(d->port);
    char got[sizeof cont];
    struct hresp r;

    harness_send_str(c, head);
    ck_assert_msg(harness_read_exact(c, got, sizeof cont - 1, 5.0) == 0,
                  "waiting for 100 Continue: %s", harness_error());
    ck_assert_msg(strcmp(got, cont) == 0, "got %s instead of 100 Continue",
                  harness_printable(got, sizeof cont - 1, 100));
    harness_send_str(c, "hello");
    harness_expect_response(c, &r, false, "POST after 100 Continue");
    assert_echo_str(&r, exp, "POST after 100 Continue");
    hresp_free(&r);
    harness_close(c);
}
END_TEST

START_TEST(test_expect_continue_too_large)
{
    static const char head[] = "POST /e HTTP/1.1\r\nHost: t\r\n"
                               "Content-Length: 5000\r\n"
                               "Expect: 100-continue\r\n\r\n";
    struct hdaemon *d = start_echo(1, LIMITS);
    struct hconn *c = harness_connect(d->port);
    struct hresp r;

    harness_send_str(c, head);
    harness_expect_response(c, &r, false, "Expect with a body over the limit");
    assert_status(&r, 413, "Expect: 100-continue, Content-Length over limit");
    hresp_free(&r);
    ck_assert_msg(harness_wait_closed(c, 3.0) == 1, "after 413: %s", harness_error());
    harness_close(c);
}
END_TEST

/* ---- limits and malformed requests: fixtures ------------------------------ */

static void load_cases(void)
{
    const char *src = getenv("PREFORKD_SRC");
    char path[512], line[512];
    FILE *f;

    if (src == NULL)
        return; /* test_limits then fails, saying so */
    snprintf(path, sizeof path, "%s/tests/fixtures/http/cases.tsv", src);
    f = fopen(path, "r");
    if (f == NULL)
        return;
    while (fgets(line, sizeof line, f) != NULL && ncases < 64) {
        struct limit_case *k = &cases[ncases];
        char after[16];

        if (line[0] == '#' || line[0] == '\n')
            continue;
        line[strcspn(line, "\n")] = '\0';
        k->note[0] = '\0';
        if (sscanf(line, "%127[^\t]\t%d\t%15[^\t]\t%159[^\n]", k->file, &k->status, after,
                   k->note) < 3)
            continue;
        k->close = strcmp(after, "close") == 0;
        ncases++;
    }
    fclose(f);
}

START_TEST(test_limits)
{
    const struct limit_case *k = &cases[_i];
    char *path, what[300];
    struct hdaemon *d;
    struct hconn *c;
    struct hresp r;
    size_t len;
    char *raw;
    int rc;

    ck_assert_msg(ncases > 0, "no cases in tests/fixtures/http/cases.tsv");
    snprintf(what, sizeof what, "%s (%s)", k->file, k->note);
    ck_assert(asprintf(&path, "%s/tests/fixtures/http/%s", harness_env("PREFORKD_SRC"),
                       k->file) > 0);
    raw = harness_read_file(path, &len);
    ck_assert_msg(raw != NULL, "%s: %s", path, strerror(errno));
    d = start_echo(1, LIMITS);
    c = harness_connect(d->port);
    harness_send_all(c, raw, len);
    rc = harness_read_response(c, &r, false, 5.0);
    ck_assert_msg(rc == 0, "%s: want %d: %s", what, k->status, harness_error());
    ck_assert_msg(r.status == k->status, "%s: status %d (%s), want %d", what, r.status,
                  r.reason, k->status);
    if (k->close) {
        ck_assert_msg(header_is(&r, "Connection", "close"),
                      "%s: %d without Connection: close", what, r.status);
        rc = harness_wait_closed(c, 3.0);
        ck_assert_msg(rc == 1, "%s: after %d the connection %s", what, r.status,
                      harness_error());
    } else {
        hresp_free(&r);
        harness_send_str(c, "GET /after HTTP/1.1\r\nHost: t\r\n\r\n");
        harness_expect_response(c, &r, false, what);
        assert_echo_str(&r, "GET /after HTTP/1.1\nHost: t\n\n", what);
    }
    hresp_free(&r);
    harness_close(c);
    free(raw);
    free(path);
}
END_TEST

/* ---- timeouts ---------------------------------------------------------------- */

START_TEST(test_header_timeout)
{
    /* One worker: the others' 200s prove the half head does not block it. */
    struct hdaemon *d = start_echo(1, "header_timeout = 1s\n"
                                      "keepalive_timeout = 10s\n");
    struct hconn *half = harness_connect(d->port);
    double t0, closed_after = -1;
    int served = 0, rc;

    harness_send_str(half, "GET /half HTTP/1.1\r\nHost: t\r\nX-Partial: ");
    t0 = harness_now();
    while (harness_now() - t0 < 5.0) {
        struct hresp r;

        rc = harness_wait_closed(half, 0.0);
        if (rc == -1) { /* a 408 may come first */
            ck_assert_msg(harness_read_response(half, &r, false, 1.0) == 0,
                          "half head: %s", harness_error());
            assert_status(&r, 408, "half head");
            hresp_free(&r);
            rc = harness_wait_closed(half, 1.0);
            ck_assert_msg(rc == 1, "half head after 408: %s", harness_error());
        }
        if (rc == 1) {
            closed_after = harness_now() - t0;
            break;
        }
        harness_roundtrip(d->port, "GET /other HTTP/1.1\r\nHost: t\r\n\r\n", &r);
        assert_echo_str(&r, "GET /other HTTP/1.1\nHost: t\n\n",
                        "request during the header timeout");
        hresp_free(&r);
        served++;
        harness_pause(0.05);
    }
    ck_assert_msg(closed_after >= 0, "half head still open after 5 s "
                                     "(header_timeout = 1s)");
    ck_assert_msg(closed_after >= 0.8,
                  "half head closed after %.2f s, "
                  "before header_timeout = 1s",
                  closed_after);
    ck_assert_msg(closed_after <= 3.0, "half head closed after %.2f s", closed_after);
    ck_assert_msg(served >= 5, "only %d requests served meanwhile", served);
    harness_close(half);
}
END_TEST

START_TEST(test_keepalive_timeout)
{
    struct hdaemon *d = start_echo(1, "keepalive_timeout = 1s\n");
    struct hconn *c = harness_connect(d->port);
    struct hresp r;
    double t0;
    int rc;

    harness_send_str(c, "GET /once HTTP/1.1\r\nHost: t\r\n\r\n");
    harness_expect_response(c, &r, false, "GET");
    assert_status(&r, 200, "GET");
    hresp_free(&r);
    t0 = harness_now();
    rc = harness_wait_closed(c, 4.0);
    ck_assert_msg(rc == 1, "idle keep-alive connection: %s", harness_error());
    ck_assert_msg(harness_now() - t0 >= 0.8,
                  "idle connection closed after %.2f s, keepalive_timeout = 1s",
                  harness_now() - t0);
    harness_close(c);
}
END_TEST

/* ---- supervision ------------------------------------------------------------- */

START_TEST(test_kill9_worker_replaced)
{
    struct hdaemon *d = start_app("PREFORKD_APPS", "hello", 2, NULL);
    long ids[8], pids[8];
    char re[160];
    int n, i;

    n = harness_log_numbers(d, RE_SPAWNED, 2, pids, 8);
    harness_log_numbers(d, RE_SPAWNED, 1, ids, 8);
    ck_assert_msg(n == 2, "%d spawned lines for workers = 2", n);
    ck_assert_msg(harness_log_wait(d, RE_SERVING, 2, 5.0), "2 workers not serving");
    ck_assert_int_eq(kill((pid_t)pids[0], SIGKILL), 0);
    ck_assert_msg(harness_log_wait(d, RE_SPAWNED, 3, 1.0),
                  "no replacement spawned within 1 s of kill -9; log:\n%s",
                  harness_log_tail(d, 1500));
    ck_assert_msg(harness_log_wait(d, RE_SERVING, 3, 5.0),
                  "replacement not serving; log:\n%s", harness_log_tail(d, 1500));
    snprintf(re, sizeof re, "master: worker [0-9]+ \\(pid %ld\\) killed by signal 9",
             pids[0]);
    ck_assert_msg(harness_log_count(d, re) == 1,
                  "no \"(pid %ld) killed by signal 9\" line; log:\n%s", pids[0],
                  harness_log_tail(d, 1500));
    n = harness_log_numbers(d, RE_SPAWNED, 2, pids, 8);
    harness_log_numbers(d, RE_SPAWNED, 1, ids, 8);
    ck_assert_int_eq(n, 3);
    ck_assert_msg(ids[2] == ids[0], "replacement is worker %ld, want %ld", ids[2],
                  ids[0]);
    ck_assert_msg(kill((pid_t)pids[2], 0) == 0, "replacement %ld not alive", pids[2]);
    ck_assert_msg(kill((pid_t)pids[1], 0) == 0, "the other worker %ld died", pids[1]);
    ck_assert_int_eq(harness_log_count(d, RE_ENDED), 1);
    for (i = 0; i < 20; i++) {
        struct hresp r;

        harness_roundtrip(d->port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r);
        assert_status(&r, 200, "after kill -9");
        assert_body(&r, HELLO_BODY, strlen(HELLO_BODY), "after kill -9");
        hresp_free(&r);
    }
}
END_TEST

/* GET / on c; returns the X-Worker-Pid of the crash app's answer. */
static long crash_app_pid(struct hconn *c)
{
    struct hresp r;
    const char *p;
    long pid;

    harness_send_str(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    harness_expect_response(c, &r, false, "GET / (crash app)");
    assert_status(&r, 200, "GET / (crash app)");
    assert_body(&r, "ok\n", 3, "GET / (crash app)");
    p = hresp_header(&r, "X-Worker-Pid");
    ck_assert_msg(p != NULL, "no X-Worker-Pid from the crash app");
    pid = atol(p);
    hresp_free(&r);
    return pid;
}

START_TEST(test_crash_kills_only_that_worker)
{
    struct hdaemon *d = start_app("PREFORKD_TEST_APPS", "crash", 2, NULL);
    struct hconn *keep = harness_connect(d->port), *c = NULL;
    long keep_pid = crash_app_pid(keep), pid = keep_pid, pids[8];
    int tries, rc, i;

    ck_assert_msg(harness_log_wait(d, RE_SERVING, 2, 5.0), "2 workers not serving");
    /* A connection served by the other worker, so `keep` must survive. */
    for (tries = 0; tries < 50 && pid == keep_pid; tries++) {
        harness_close(c);
        c = harness_connect(d->port);
        pid = crash_app_pid(c);
    }
    if (pid == keep_pid)
        fprintf(stderr,
                "test_crash: every connection went to worker %ld; "
                "not checking that its keep-alive connection "
                "survives\n",
                keep_pid);
    harness_send_str(c, "GET /crash HTTP/1.1\r\nHost: t\r\n\r\n");
    rc = harness_wait_closed(c, 5.0);
    ck_assert_msg(rc == 1, "GET /crash: connection not closed: %s", harness_error());
    harness_close(c);
    ck_assert_msg(harness_log_wait(d, "killed by signal 6", 1, 2.0),
                  "no \"killed by signal 6\" line; log:\n%s", harness_log_tail(d, 1500));
    ck_assert_msg(harness_log_wait(d, RE_SPAWNED, 3, 1.0),
                  "no replacement within 1 s; log:\n%s", harness_log_tail(d, 1500));
    ck_assert_msg(harness_log_wait(d, RE_SERVING, 3, 5.0), "replacement not serving");
    ck_assert_int_eq(harness_log_count(d, RE_ENDED), 1);
    harness_log_numbers(d, RE_SPAWNED, 2, pids, 8);
    ck_assert_msg(pids[0] == pid || pids[1] == pid, "X-Worker-Pid %ld is not a worker",
                  pid);
    ck_assert_msg(kill((pid_t)(pids[0] == pid ? pids[1] : pids[0]), 0) == 0,
                  "the other worker died too");
    if (pid != keep_pid)
        ck_assert_msg(crash_app_pid(keep) == keep_pid,
                      "keep-alive connection to the other worker broke");
    harness_close(keep);
    for (i = 0; i < 10; i++) {
        c = harness_connect(d->port);
        ck_assert_msg(crash_app_pid(c) != pid, "dead worker %ld answered", pid);
        harness_close(c);
    }
}
END_TEST

START_TEST(test_failinit_exits_70)
{
    struct hdaemon *d = harness_daemon_new();
    char *mod = harness_path("PREFORKD_TEST_APPS", "failinit.so");
    int code, spawned;

    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0\nworkers = 2\n"
                          "[app]\nmodule = %s\n",
                          mod);
    code = run_to_exit(d, NULL, 20.0);
    spawned = harness_log_count(d, RE_SPAWNED);
    ck_assert_msg(code == 70, "exit code %d, want 70; log:\n%s", code,
                  harness_log_tail(d, 1500));
    ck_assert_msg(log_has(d, "failinit: worker_init fails on purpose"),
                  "the app's own error is not in the log");
    ck_assert_msg(harness_log_count(d, "exited with status 70") >= 1,
                  "no \"exited with status 70\" line");
    ck_assert_msg(spawned >= 1 && spawned <= 8,
                  "%d workers spawned for an app that cannot boot", spawned);
    ck_assert_msg(harness_daemon_group_gone(d, 2.0), "workers left behind");
    free(mod);
}
END_TEST

/* ---- signals ------------------------------------------------------------------- */

START_TEST(test_term_completes_inflight)
{
    struct hdaemon *d = start_app("PREFORKD_TEST_APPS", "slow", 1,
                                  "graceful_timeout = 10s\n");
    struct hconn *c = harness_connect(d->port);
    char want[32], *pid;
    struct hresp r;
    struct stat st;
    double t0;

    pid = harness_read_file(d->pidfile, NULL);
    snprintf(want, sizeof want, "%d\n", (int)d->pid);
    ck_assert_msg(pid != NULL && strcmp(pid, want) == 0,
                  "pidfile holds \"%s\", want \"%d\\n\"",
                  pid ? harness_printable(pid, strlen(pid), 40) : "(none)", (int)d->pid);
    free(pid);
    t0 = harness_now();
    harness_send_str(c, "GET /?ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n");
    ck_assert_msg(harness_log_wait(d, "slow: .*responding in 1500 ms", 1, 5.0),
                  "the request never reached the app");
    ck_assert_int_eq(kill(d->pid, SIGTERM), 0);
    ck_assert_msg(harness_read_response(c, &r, false, 10.0) == 0,
                  "in-flight request during SIGTERM: %s", harness_error());
    assert_status(&r, 200, "in-flight request during SIGTERM");
    assert_body(&r, "slow\n", 5, "in-flight request during SIGTERM");
    ck_assert_msg(harness_now() - t0 >= 1.4, "answered after %.2f s", harness_now() - t0);
    hresp_free(&r);
    harness_close(c);
    ck_assert_msg(harness_daemon_wait_exit(d, 10.0),
                  "still running 10 s after SIGTERM; log:\n%s",
                  harness_log_tail(d, 1500));
    ck_assert_msg(harness_exit_code(d) == 0, "exit code %d after SIGTERM",
                  harness_exit_code(d));
    ck_assert_msg(stat(d->pidfile, &st) == -1 && errno == ENOENT, "pidfile not removed");
    ck_assert_msg(harness_log_count(d, "master: received SIGTERM: graceful "
                                       "shutdown") == 1,
                  "no \"received SIGTERM: graceful shutdown\" line");
    ck_assert_msg(harness_log_count(d, "master: shutdown complete") == 1,
                  "no \"shutdown complete\" line");
    ck_assert_msg(harness_daemon_group_gone(d, 2.0), "workers outlived the master");
}
END_TEST

START_TEST(test_int_quick_shutdown)
{
    struct hdaemon *d = start_app("PREFORKD_APPS", "hello", 2, NULL);

    ck_assert_int_eq(kill(d->pid, SIGINT), 0);
    ck_assert_msg(harness_daemon_wait_exit(d, 5.0),
                  "still running 5 s after SIGINT; log:\n%s", harness_log_tail(d, 1500));
    ck_assert_msg(harness_exit_code(d) >= 0, "killed by signal %d",
                  -harness_exit_code(d));
    ck_assert_msg(harness_log_count(d, "master: received SIGINT: quick "
                                       "shutdown") == 1,
                  "no \"received SIGINT: quick shutdown\" line");
    ck_assert_msg(harness_daemon_group_gone(d, 2.0), "workers outlived the master");
}
END_TEST

/* ---- modules and the configuration check -------------------------------------- */

START_TEST(test_module_bad_abi)
{
    struct hdaemon *d = harness_daemon_new(), *t = harness_daemon_new();
    char *mod = harness_path("PREFORKD_TEST_APPS", "badabi.so");
    const char *const targs[] = {"-t", "-c", t->conf, NULL};
    int code;

    ck_assert_msg(access(mod, R_OK) == 0, "%s not built: %s", mod, strerror(errno));
    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0\nworkers = 1\n"
                          "[app]\nmodule = %s\n",
                          mod);
    code = run_to_exit(d, NULL, 10.0);
    ck_assert_msg(code == 70, "exit code %d, want 70; log:\n%s", code,
                  harness_log_tail(d, 1500));
    ck_assert_msg(log_has(d, mod) && log_has(d, "ABI version"),
                  "error does not name %s and \"ABI version\":\n%s", mod,
                  harness_log_tail(d, 1500));
    ck_assert_int_eq(harness_log_count(d, RE_SPAWNED), 0);

    harness_daemon_config(t,
                          "[server]\nlisten = 127.0.0.1:0\n"
                          "[app]\nmodule = %s\n",
                          mod);
    code = run_to_exit(t, targs, 10.0);
    ck_assert_msg(code != 0, "preforkd -t accepted a module with a wrong ABI");
    ck_assert_msg(log_has(t, mod) && log_has(t, "ABI version"),
                  "-t: error does not name %s and \"ABI version\":\n%s", mod,
                  harness_log_tail(t, 1500));
    free(mod);
}
END_TEST

START_TEST(test_module_missing)
{
    struct hdaemon *d = harness_daemon_new();
    char mod[160];
    int code;

    snprintf(mod, sizeof mod, "%s/no/such/app.so", d->dir);
    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0\nworkers = 1\n"
                          "[app]\nmodule = %s\n",
                          mod);
    code = run_to_exit(d, NULL, 10.0);
    ck_assert_msg(code == 70, "exit code %d, want 70; log:\n%s", code,
                  harness_log_tail(d, 1500));
    ck_assert_msg(log_has(d, mod) && log_has(d, "No such file"),
                  "error does not name %s and \"No such file\":\n%s", mod,
                  harness_log_tail(d, 1500));
    ck_assert_int_eq(harness_log_count(d, RE_SPAWNED), 0);
}
END_TEST

/* The --wsgi options are keys of a file that is not one: their errors are
 * reported as a file's, and they need --wsgi. */
START_TEST(test_wsgi_options)
{
    struct hdaemon *d = harness_daemon_new();
    const char *const bad[] = {"-t",   "--wsgi", "app:application",      "-w",
                               "lots", "--set",  "recycle.max_rss=256M", NULL};
    const char *const set[] = {"-t",    "--wsgi",       "app:application",
                               "--set", "nosuch.key=1", NULL};
    const char *const alone[] = {"-t", "--workers", "3", NULL};

    ck_assert_int_eq(run_to_exit(d, bad, 10.0), 78);
    ck_assert_msg(log_has(d, "preforkd --wsgi:2: [server] workers: expected a number "
                             "or \"auto\", got \"lots\""),
                  "%s", harness_log_tail(d, 1500));
    ck_assert(log_has(d, "preforkd --wsgi: configuration invalid"));
    ck_assert_int_eq(run_to_exit(d, set, 10.0), 78);
    ck_assert(log_has(d, "--set nosuch.key=1: expected SECTION.KEY=VALUE"));
    ck_assert_int_eq(run_to_exit(d, alone, 10.0), 1);
    ck_assert(log_has(d, "these options go with --wsgi"));
}
END_TEST

START_TEST(test_configtest_good)
{
    struct hdaemon *d = harness_daemon_new();
    char *mod = harness_path("PREFORKD_APPS", "echo.so");
    const char *const args[] = {"-t", "-c", d->conf, NULL};
    int code;

    harness_daemon_config(d,
                          "; a valid file using most sections\n"
                          "[server]\n"
                          "listen = 127.0.0.1:0\n"
                          "workers = 2\n"
                          "max_workers = 8\n"
                          "graceful_timeout = 5s\n"
                          "keepalive_timeout = 1500ms\n"
                          "max_body_size = 2M\n"
                          "[recycle]\n"
                          "max_requests = 1000\n"
                          "max_requests_jitter = 100\n"
                          "[app]\n"
                          "module = %s\n"
                          "[log]\n"
                          "level = info\n",
                          mod);
    code = run_to_exit(d, args, 10.0);
    ck_assert_msg(code == 0, "preforkd -t on a good file: exit %d; output:\n%s", code,
                  harness_log_tail(d, 1500));
    ck_assert_msg(log_has(d, "ok"), "no \"ok\" in the output:\n%s",
                  harness_log_tail(d, 1500));
    ck_assert_int_eq(harness_log_count(d, RE_SPAWNED), 0);
    free(mod);
}
END_TEST

START_TEST(test_configtest_bad)
{
    struct hdaemon *d = harness_daemon_new();
    char *mod = harness_path("PREFORKD_APPS", "echo.so");
    const char *const args[] = {"-t", "-c", d->conf, NULL};
    char re[300];
    int code;

    harness_daemon_config(d,
                          "[server]\n"             /* 1 */
                          "listen = 127.0.0.1:0\n" /* 2 */
                          "workers = lots\n"       /* 3 */
                          "; comment\n"            /* 4 */
                          "bogus_key = 1\n"        /* 5 */
                          "[app]\n"                /* 6 */
                          "module = %s\n",         /* 7 */
                          mod);
    code = run_to_exit(d, args, 10.0);
    ck_assert_msg(code == 78,
                  "preforkd -t on a bad file: exit %d, want 78; "
                  "output:\n%s",
                  code, harness_log_tail(d, 1500));
    snprintf(re, sizeof re, "%s:3:.*workers", d->conf);
    ck_assert_msg(harness_log_count(d, re) >= 1, "no error naming %s:3 and workers:\n%s",
                  d->conf, harness_log_tail(d, 1500));
    snprintf(re, sizeof re, "%s:5:.*bogus_key", d->conf);
    ck_assert_msg(harness_log_count(d, re) >= 1,
                  "no error naming %s:5 and bogus_key:\n%s", d->conf,
                  harness_log_tail(d, 1500));
    free(mod);
}
END_TEST

/* ---- streamed responses ---------------------------------------------------------- */

START_TEST(test_stream_chunked)
{
    struct hdaemon *d = start_app("PREFORKD_TEST_APPS", "stream", 1, NULL);
    struct hconn *c = harness_connect(d->port);
    struct hresp r;

    harness_send_str(c, "GET /s?bytes=3000000 HTTP/1.1\r\nHost: t\r\n\r\n");
    /* Not reading for a while lets the worker hit back-pressure. */
    harness_pause(0.3);
    ck_assert_msg(harness_read_response(c, &r, false, 20.0) == 0, "streamed response: %s",
                  harness_error());
    assert_status(&r, 200, "streamed response");
    ck_assert_msg(r.chunked, "streamed HTTP/1.1 response not chunked");
    ck_assert_msg(hresp_header(&r, "Content-Length") == NULL,
                  "chunked response with a Content-Length");
    ck_assert_msg(r.nchunks >= 2, "%zu chunks", r.nchunks);
    assert_pattern(&r, 3000000);
    hresp_free(&r);
    /* The connection stays usable after a chunked response. */
    harness_send_str(c, "GET /s?bytes=10 HTTP/1.1\r\nHost: t\r\n\r\n");
    harness_expect_response(c, &r, false, "second streamed response");
    assert_status(&r, 200, "second streamed response");
    assert_body(&r, "abcdefghij", 10, "second streamed response");
    hresp_free(&r);
    harness_close(c);
}
END_TEST

START_TEST(test_stream_http10)
{
    struct hdaemon *d = start_app("PREFORKD_TEST_APPS", "stream", 1, NULL);
    struct hconn *c = harness_connect(d->port);
    struct hresp r;

    harness_send_str(c, "GET /s?bytes=100000 HTTP/1.0\r\n\r\n");
    ck_assert_msg(harness_read_response(c, &r, false, 10.0) == 0,
                  "streamed HTTP/1.0 response: %s", harness_error());
    assert_status(&r, 200, "streamed HTTP/1.0 response");
    ck_assert_msg(!r.chunked, "chunked response to HTTP/1.0");
    assert_pattern(&r, 100000);
    hresp_free(&r);
    harness_close(c);
}
END_TEST

/* ---- the suite -------------------------------------------------------------------- */

static TCase *tcase(Suite *s, const char *name)
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    return tc;
}

static Suite *daemon_suite(void)
{
    Suite *s = suite_create("daemon");
    TCase *tc;

    tc = tcase(s, "echo");
    tcase_add_test(tc, test_echo_get);
    tcase_add_test(tc, test_echo_head);
    tcase_add_test(tc, test_echo_post_content_length);
    tcase_add_test(tc, test_echo_post_chunked);
    tcase_add_test(tc, test_half_close_gets_whole_response);
    tcase_add_test(tc, test_keepalive_100);
    tcase_add_test(tc, test_pipeline_3);
    tcase_add_test(tc, test_http10_close);
    tcase_add_test(tc, test_http10_keepalive);
    tcase_add_test(tc, test_expect_continue);
    tcase_add_test(tc, test_expect_continue_too_large);

    tc = tcase(s, "limits");
    tcase_add_loop_test(tc, test_limits, 0, ncases > 0 ? ncases : 1);

    tc = tcase(s, "timeouts");
    tcase_add_test(tc, test_header_timeout);
    tcase_add_test(tc, test_keepalive_timeout);

    tc = tcase(s, "supervision");
    tcase_add_test(tc, test_kill9_worker_replaced);
    tcase_add_test(tc, test_crash_kills_only_that_worker);
    tcase_add_test(tc, test_failinit_exits_70);

    tc = tcase(s, "signals");
    tcase_add_test(tc, test_term_completes_inflight);
    tcase_add_test(tc, test_int_quick_shutdown);

    tc = tcase(s, "modules");
    tcase_add_test(tc, test_module_bad_abi);
    tcase_add_test(tc, test_module_missing);
    tcase_add_test(tc, test_configtest_good);
    tcase_add_test(tc, test_configtest_bad);
    tcase_add_test(tc, test_wsgi_options);

    tc = tcase(s, "stream");
    tcase_add_test(tc, test_stream_chunked);
    tcase_add_test(tc, test_stream_http10);
    return s;
}

int main(void)
{
    SRunner *sr;
    int failed;

    load_cases();
    sr = srunner_create(daemon_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
