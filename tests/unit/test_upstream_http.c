/*
 * test_upstream_http.c - unit tests of src/upstream/upstream_http.c, the sockets-free
 * half of the upstream client: request framing (validation, owned headers,
 * Content-Length) and response parsing with http-parser (Content-Length,
 * chunked, close-delimited, HEAD, 1xx, 204, 304, keep-alive, errors), each
 * response fed whole and one byte at a time. Table-driven.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upstream_int.h"

#define S(lit) ((pf_str){lit, sizeof(lit) - 1})

static char *frame(pf_str method, const pf_header *h, size_t n, const char *body, int *rc)
{
    struct buf b = {0};
    size_t head_len = 0;
    char *s;

    *rc = upstream_http_request(&b, &head_len, method, S("/p?q=1"), h, n, body,
                                body ? strlen(body) : 0, "backend");
    if (*rc < 0)
        return NULL;
    /* What goes on the wire: head, the blank line, body. */
    ck_assert(asprintf(&s, "%.*s\r\n%.*s", (int)head_len, b.p, (int)(b.len - head_len),
                       b.p + head_len) > 0);
    buf_free(&b);
    return s;
}

START_TEST(test_frame_request)
{
    const pf_header h[] = {
        {S("Host"), S("example.org")},  {S("Connection"), S("keep-alive")},
        {S("Content-Length"), S("99")}, {S("Transfer-Encoding"), S("chunked")},
        {S("Keep-Alive"), S("300")},    {S("X-A"), S("1")},
    };
    int rc;
    char *s = frame(S("GET"), h, 6, NULL, &rc);

    ck_assert_str_eq(s, "GET /p?q=1 HTTP/1.1\r\nHost: example.org\r\n"
                        "X-A: 1\r\n\r\n");
    free(s);
    s = frame(S("POST"), h + 5, 1, "hello", &rc);
    ck_assert_str_eq(s, "POST /p?q=1 HTTP/1.1\r\nX-A: 1\r\nHost: backend\r\n"
                        "Content-Length: 5\r\n\r\nhello");
    free(s);
    s = frame(S("PUT"), NULL, 0, NULL, &rc);
    ck_assert_str_eq(s, "PUT /p?q=1 HTTP/1.1\r\nHost: backend\r\n"
                        "Content-Length: 0\r\n\r\n");
    free(s);
}
END_TEST

START_TEST(test_frame_refuses)
{
    const pf_header bad_value[] = {{S("X-A"), S("a\r\nX-Injected: 1")}};
    const pf_header bad_name[] = {{S("X A"), S("1")}};
    int rc;

    ck_assert_ptr_null(frame(S("GET"), bad_value, 1, NULL, &rc));
    ck_assert_ptr_null(frame(S("GET"), bad_name, 1, NULL, &rc));
    ck_assert_ptr_null(frame(S("G T"), NULL, 0, NULL, &rc));
    ck_assert_ptr_null(frame(S("CONNECT"), NULL, 0, NULL, &rc));
    ck_assert_int_eq(rc, -1);
    ck_assert(upstream_http_idempotent(S("GET")));
    ck_assert(upstream_http_idempotent(S("DELETE")));
    ck_assert(!upstream_http_idempotent(S("POST")));
    ck_assert(!upstream_http_idempotent(S("PATCH")));
}
END_TEST

/* What a parse produced. */
struct parsed {
    int status, nhead;
    char body[256];
    size_t body_len;
    char hdrs[512];
};

static void p_head(void *arg, int status, const pf_header *h, size_t n)
{
    struct parsed *r = arg;

    r->status = status;
    r->nhead++;
    for (size_t i = 0; i < n; i++)
        snprintf(r->hdrs + strlen(r->hdrs), sizeof(r->hdrs) - strlen(r->hdrs),
                 "%.*s=%.*s;", (int)h[i].name.len, h[i].name.ptr, (int)h[i].value.len,
                 h[i].value.ptr);
}

static void p_body(void *arg, const char *data, size_t len)
{
    struct parsed *r = arg;

    ck_assert(r->body_len + len < sizeof(r->body));
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
}

static const struct ups_parse_events p_events = {p_head, p_body};

/* One response, fed whole or a byte at a time; then EOF if asked. */
struct parse_case {
    const char *raw;
    bool head_only, eof;
    int status;
    const char *body;
    bool complete, keepalive, error;
    size_t extra; /* bytes left unparsed after the response */
};

static const struct parse_case parse_cases[] = {
    {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A:  v \r\n\r\nabc", false, false, 200,
     "abc", true, true, false, 0},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
     "2\r\nde\r\n0\r\n\r\n",
     false, false, 200, "abcde", true, true, false, 0},
    {"HTTP/1.1 200 OK\r\n\r\nuntil close", false, true, 200, "until close", true, false,
     false, 0},
    {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", false, true, 200, "abc", false,
     false, true, 0},
    {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true, false, 200, "", true, true,
     false, 0},
    {"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\nHTTP", false, false, 304, "",
     true, true, false, 4},
    {"HTTP/1.1 204 No Content\r\n\r\n", false, false, 204, "", true, true, false, 0},
    {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2"
     "\r\n\r\nok",
     false, false, 201, "ok", true, true, false, 0},
    {"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false, false, 200, "ok", true,
     false, false, 0},
    {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", false, false,
     200, "ok", true, false, false, 0},
    {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200", false, false, 200,
     "ok", true, true, false, 12},
    {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade"
     "\r\n\r\n",
     false, false, 0, "", false, false, true, 0},
    {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n"
     "\r\n",
     false, false, 0, "", false, false, true, 0},
    {"SSH-2.0-OpenSSH_9.2\r\n", false, false, 0, "", false, false, true, 0},
    {"HTTP/1.1 200 OK\r\nContent-Le", false, true, 0, "", false, false, true, 0},
};

static void run_parse(const struct parse_case *pc, bool bytewise, struct parsed *r,
                      struct ups_parse *ps)
{
    size_t len = strlen(pc->raw), off = 0;

    memset(r, 0, sizeof(*r));
    memset(ps, 0, sizeof(*ps));
    upstream_http_init(ps, pc->head_only, &p_events, r);
    while (off < len && !ps->complete && ps->why == NULL) {
        size_t want = bytewise ? 1 : len - off;
        size_t n = upstream_http_feed(ps, pc->raw + off, want);

        off += n;
        if (n < want)
            break;
    }
    if (pc->eof && ps->why == NULL)
        upstream_http_eof(ps);
    ck_assert_msg(len - off == pc->extra || ps->why != NULL,
                  "case %s: %zu bytes left, want %zu", pc->raw, len - off, pc->extra);
}

START_TEST(test_parse_responses)
{
    const struct parse_case *pc = &parse_cases[_i / 2];
    struct parsed r;
    struct ups_parse ps;

    run_parse(pc, _i % 2 == 1, &r, &ps);
    ck_assert_msg((ps.why != NULL) == pc->error, "case %d (%s): error %s", _i, pc->raw,
                  ps.why ? ps.why : "none");
    ck_assert_msg(ps.complete == pc->complete, "case %d: complete %d", _i, ps.complete);
    if (!pc->error) {
        ck_assert_int_eq(r.status, pc->status);
        ck_assert_int_eq(r.nhead, 1);
        ck_assert_int_eq(ps.keepalive, pc->keepalive);
        ck_assert_uint_eq(r.body_len, strlen(pc->body));
        ck_assert(memcmp(r.body, pc->body, r.body_len) == 0);
    }
    if (_i == 0)
        ck_assert_str_eq(r.hdrs, "Content-Length=3;X-A=v;");
    upstream_http_free(&ps);
}
END_TEST

static Suite *upstream_http_suite(void)
{
    Suite *s = suite_create("upstream_http");
    TCase *t = tcase_create("http");

    tcase_add_test(t, test_frame_request);
    tcase_add_test(t, test_frame_refuses);
    tcase_add_loop_test(t, test_parse_responses, 0,
                        2 * (int)(sizeof(parse_cases) / sizeof(parse_cases[0])));
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(upstream_http_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
