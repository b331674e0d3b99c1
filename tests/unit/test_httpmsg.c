/*
 * test_httpmsg.c - unit tests of src/worker/httpmsg.c: request parsing into offsets,
 * limits and their statuses, in-place de-chunking, pipelining, and response
 * framing. Every parse case runs twice: whole, and fed one byte at a time
 * (as a slow client would send it), and must give the same result.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "httpmsg.h"

static const struct httpmsg_limits lim = {
    .max_request_line = 100,
    .max_headers = 5,
    .max_header_size = 64,
    .max_body_size = 32,
};

struct parsed {
    int error;
    bool complete;
    char url[256];
    char body[256];
    uint32_t nhdrs;
    char hdr0[128]; /* "name: value" of the first header */
    uint8_t version;
    bool keepalive, expect_continue;
    size_t consumed;
};

/* Parses one request from raw; step 0 = all at once, else step-byte reads
 * appended to a growing buffer (offsets must survive realloc). */
static struct parsed parse_n(const char *raw, size_t len, size_t step)
{
    struct httpmsg_parse hp;
    struct parsed out;
    size_t have = 0, pos = 0;
    char *buf = NULL;

    memset(&out, 0, sizeof(out));
    httpmsg_parse_init(&hp, &lim);
    while (!hp.req.complete && !hp.error && have < len) {
        size_t n = step ? step : len;
        if (n > len - have)
            n = len - have;
        buf = realloc(buf, have + n + 1); /* moves: offsets must hold */
        memcpy(buf + have, raw + have, n);
        have += n;
        pos += httpmsg_feed(&hp, buf, pos, have - pos);
    }
    out.error = hp.error;
    out.complete = hp.req.complete;
    out.consumed = pos;
    if (hp.req.head_done || hp.req.complete) {
        snprintf(out.url, sizeof(out.url), "%.*s", (int)hp.req.url_len,
                 buf + hp.req.url_off);
        snprintf(out.body, sizeof(out.body), "%.*s", (int)hp.req.body_len,
                 buf + hp.req.body_off);
        out.nhdrs = hp.req.nhdrs;
        if (hp.req.nhdrs)
            snprintf(out.hdr0, sizeof(out.hdr0), "%.*s: %.*s",
                     (int)hp.req.hdrs[0].name_len, buf + hp.req.hdrs[0].name_off,
                     (int)hp.req.hdrs[0].value_len, buf + hp.req.hdrs[0].value_off);
        out.version = hp.req.version;
        out.keepalive = hp.req.keepalive;
        out.expect_continue = hp.req.expect_continue;
    }
    httpmsg_parse_free(&hp);
    free(buf);
    return out;
}

static struct parsed parse(const char *raw, size_t step)
{
    return parse_n(raw, strlen(raw), step);
}

static const struct {
    const char *name, *raw;
    int error; /* expected status, 0 = parsed */
    const char *url, *body, *hdr0;
    uint32_t nhdrs;
} cases[] = {
    {"get", "GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n", 0, "/a?b=c", "", "Host: x", 1},
    {"trailing space trimmed", "GET / HTTP/1.1\r\nHost: x  \t\r\n\r\n", 0, "/", "",
     "Host: x", 1},
    {"post length", "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 0,
     "/p", "hello", "Host: x", 2},
    {"chunked de-chunked in place",
     "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     "5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\n",
     0, "/c", "hello world", "Host: x", 2},
    /* RFC 9110 5.6.1: empty list elements are ignored; the body is chunked
     * (a body read any other way would be taken for the next request). */
    {"te leading comma",
     "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ,chunked\r\n\r\n"
     "5\r\nhello\r\n0\r\n\r\n",
     0, "/c", "hello", "Host: x", 2},
    {"te trailing comma",
     "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked,\r\n\r\n"
     "5\r\nhello\r\n0\r\n\r\n",
     0, "/c", "hello", "Host: x", 2},
    {"te comma and space",
     "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: , chunked\r\n\r\n"
     "5\r\nhello\r\n0\r\n\r\n",
     0, "/c", "hello", "Host: x", 2},
    {"te empty field and chunked field",
     "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ,\r\nTransfer-Encoding: chunked\r\n\r\n"
     "5\r\nhello\r\n0\r\n\r\n",
     0, "/c", "hello", "Host: x", 3},
    {"chunked trailer ignored",
     "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     "2\r\nhi\r\n0\r\nX-Trailer: t\r\n\r\n",
     0, "/c", "hi", "Host: x", 2},
    {"http/1.0 without host", "GET /old HTTP/1.0\r\n\r\n", 0, "/old", "", "", 0},
    {"missing host", "GET / HTTP/1.1\r\n\r\n", 400, NULL, NULL, NULL, 0},
    {"duplicate host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, NULL, NULL,
     NULL, 0},
    {"target too long",
     "GET /0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 HTTP/1.1\r\nHost: x\r\n\r\n",
     414, NULL, NULL, NULL, 0},
    {"too many headers",
     "GET / HTTP/1.1\r\nHost: x\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\ne: 5\r\n\r\n", 431,
     NULL, NULL, NULL, 0},
    {"header too large",
     "GET / HTTP/1.1\r\nHost: x\r\nX-Big: 012345678901234567890123456789012345678901234567890123456789\r\n\r\n",
     431, NULL, NULL, NULL, 0},
    {"declared body too large",
     "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 33\r\n\r\n", 413, NULL, NULL, NULL,
     0},
    {"chunked body too large",
     "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     "20\r\n01234567890123456789012345678901\r\n1\r\nx\r\n0\r\n\r\n",
     413, NULL, NULL, NULL, 0},
    {"unknown method", "GXT / HTTP/1.1\r\nHost: x\r\n\r\n", 501, NULL, NULL, NULL, 0},
    {"method not a token", "G@T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, NULL, NULL, NULL, 0},
    {"not HTTP/", "GET / HTTX/1.1\r\nHost: x\r\n\r\n", 400, NULL, NULL, NULL, 0},
    {"http/0.9", "GET /\r\n\r\n", 400, NULL, NULL, NULL, 0},
    {"http/2.0 text", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, NULL, NULL, NULL, 0},
    {"unknown expectation", "GET / HTTP/1.1\r\nHost: x\r\nExpect: x\r\n\r\n", 417, NULL,
     NULL, NULL, 0},
    {"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400, NULL, NULL,
     NULL, 0},
    {"content-length and chunked",
     "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     400, NULL, NULL, NULL, 0},
    {"bad chunk size",
     "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, NULL,
     NULL, NULL, 0},
};

#define RAW(lit) lit, sizeof(lit) - 1

/* Requests that request smuggling and other tricks rely on (RFC 9112),
 * each rejected with its status; raw bytes, NUL included. */
static const struct {
    const char *name, *raw;
    size_t len;
    int error;
} rejects[] = {
    /* Content-Length */
    {"conflicting content-length",
     RAW("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
     400},
    {"repeated content-length",
     RAW("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na"),
     400},
    {"content-length list",
     RAW("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\na"), 400},
    {"content-length sign",
     RAW("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\na"), 400},
    {"content-length negative",
     RAW("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"), 400},
    {"content-length hex",
     RAW("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x1\r\n\r\na"), 400},
    {"content-length inner space",
     RAW("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\n"), 400},
    {"content-length empty", RAW("POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n"),
     400},
    {"content-length overflow",
     RAW("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n"),
     400},
    /* Transfer-Encoding */
    {"both framings, TE first",
     RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n"),
     400},
    {"te not chunked",
     RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"), 400},
    {"te chunked not last",
     RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), 400},
    {"te chunked twice",
     RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"),
     400},
    {"te chunked twice in two fields",
     RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
     400},
    {"te quoted",
     RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \"chunked\"\r\n\r\n"), 400},
    {"te empty", RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\n\r\n"), 400},
    {"te vertical tab",
     RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\x0b\r\n\r\n0\r\n\r\n"),
     400},
    {"te in http/1.0",
     RAW("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400},
    /* Empty list elements are ignored, but not an empty field or one of
     * commas alone: no coding at all. */
    {"te commas only",
     RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: , ,\r\n\r\n0\r\n\r\n"), 400},
    {"te empty elements around gzip",
     RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ,gzip,\r\n\r\n0\r\n\r\n"),
     400},
    {"te chunked twice with an empty element",
     RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked,,chunked\r\n\r\n0\r\n\r\n"),
     400},
    {"te unknown coding before chunked",
     RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
     501},
    /* CONNECT: http-parser stops after the head, so a body would be read
     * as the next request */
    {"connect with a body",
     RAW("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 28\r\n\r\n"
         "GET /s HTTP/1.1\r\nHost: a\r\n\r\n"),
     400},
    {"connect with a chunked body",
     RAW("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
     400},
    /* chunk framing */
    {"chunk size overflow",
     RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000001\r\nx\r\n"),
     400},
    {"chunk size sign",
     RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n+1\r\nx\r\n0\r\n\r\n"),
     400},
    {"chunk size space",
     RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1 \r\nx\r\n0\r\n\r\n"),
     400},
    {"last chunk space",
     RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0 \r\n\r\n"),
     400},
    {"chunk data without CRLF",
     RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxYZ0\r\n\r\n"),
     400},
    {"chunk size bare CR",
     RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\rx\r\n0\r\n\r\n"),
     400},
    {"chunk extension control byte",
     RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;a=\x01"
         "\r\nx\r\n0\r\n\r\n"),
     400},
    {"trailer white space before colon",
     RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nT : 1\r\n\r\n"),
     400},
    /* field syntax */
    {"white space before colon", RAW("GET / HTTP/1.1\r\nHost : x\r\n\r\n"), 400},
    {"tab before colon", RAW("GET / HTTP/1.1\r\nHost: x\r\nX-A\t: 1\r\n\r\n"), 400},
    {"obs-fold after empty value", RAW("GET / HTTP/1.1\r\nHost: x\r\nX-A:\r\n b\r\n\r\n"),
     400},
    {"white space before first field", RAW("GET / HTTP/1.1\r\n Host: x\r\n\r\n"), 400},
    {"NUL in field value", RAW("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n"), 400},
    {"NUL in request target", RAW("GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n"), 400},
    {"bare CR in field value", RAW("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n"),
     400},
    {"bare CR ending a field", RAW("GET / HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n"), 400},
    {"bare CR ending the request line", RAW("GET / HTTP/1.1\rHost: x\r\n\r\n"), 400},
    {"control byte in field value",
     RAW("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01"
         "b\r\n\r\n"),
     400},
    {"DEL in field value",
     RAW("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7f"
         "b\r\n\r\n"),
     400},
    {"control byte in field name",
     RAW("GET / HTTP/1.1\r\nHost: x\r\nX\x0b"
         "A: b\r\n\r\n"),
     400},
    {"empty field name", RAW("GET / HTTP/1.1\r\nHost: x\r\n: b\r\n\r\n"), 400},
    /* request line */
    {"tab in request line", RAW("GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n"), 400},
    {"two spaces in request line", RAW("GET  / HTTP/1.1\r\nHost: x\r\n\r\n"), 400},
    {"lowercase version", RAW("GET / http/1.1\r\nHost: x\r\n\r\n"), 400},
    {"version without minor", RAW("GET / HTTP/1\r\nHost: x\r\n\r\n"), 400},
    {"text after version", RAW("GET / HTTP/1.1 x\r\nHost: x\r\n\r\n"), 400},
    {"version 3.0", RAW("GET / HTTP/3.0\r\nHost: x\r\n\r\n"), 505},
    {"asterisk without OPTIONS", RAW("GET * HTTP/1.1\r\nHost: x\r\n\r\n"), 400},
    {"authority form without CONNECT", RAW("GET x:80 HTTP/1.1\r\nHost: x\r\n\r\n"), 400},
    {"absolute form without host", RAW("GET s://]ufd/: HTTP/1.1\r\nHost: x\r\n\r\n"),
     400},
    /* Host */
    {"host with a space", RAW("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400},
    {"host with a slash", RAW("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400},
    {"host with userinfo", RAW("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), 400},
    {"host bad port", RAW("GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n"), 400},
    {"host unclosed literal", RAW("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"), 400},
};

/* Valid in RFC 9112 though unusual: each parses. */
static const char *const accepts[] = {
    "\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",         /* empty line first */
    "GET / HTTP/1.1\nHost: x\n\n",                   /* LF line ends */
    "GET / HTTP/1.1\r\nHost:x\r\nX-A:\t\tb\r\n\r\n", /* no or tab OWS */
    "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: \r\n\r\n", /* empty Host */
    "GET / HTTP/1.1\r\nHost: x\r\nX-A: caf\xc3\xa9"
    "\r\n\r\n", /* obs-text */
    "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET http://x:8/a?b HTTP/1.1\r\nHost: x:8\r\n\r\n",
    "CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n",
    "CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\nContent-Length: 0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
    "Content-Length: 2\r\n\r\nab",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n"
    "1;a=b ; c\r\nx\r\n000\r\nT: 1\r\n\r\n",
};

START_TEST(test_reject)
{
    for (size_t step = 0; step <= 1; step++) {
        struct parsed p = parse_n(rejects[_i].raw, rejects[_i].len, step);
        ck_assert_msg(p.error == rejects[_i].error, "%s (step %zu): error %d, want %d",
                      rejects[_i].name, step, p.error, rejects[_i].error);
    }
}
END_TEST

START_TEST(test_accept)
{
    for (size_t step = 0; step <= 1; step++) {
        struct parsed p = parse(accepts[_i], step);
        ck_assert_msg(p.error == 0 && p.complete, "%s (step %zu): error %d",
                      harness_printable(accepts[_i], strlen(accepts[_i]), 200), step,
                      p.error);
    }
}
END_TEST

static void check_case(int i, size_t step)
{
    struct parsed p = parse(cases[i].raw, step);

    ck_assert_msg(p.error == cases[i].error, "%s (step %zu): error %d, want %d",
                  cases[i].name, step, p.error, cases[i].error);
    if (cases[i].error)
        return;
    ck_assert_msg(p.complete, "%s (step %zu): not complete", cases[i].name, step);
    ck_assert_str_eq(p.url, cases[i].url);
    ck_assert_str_eq(p.body, cases[i].body);
    ck_assert_str_eq(p.hdr0, cases[i].hdr0);
    ck_assert_uint_eq(p.nhdrs, cases[i].nhdrs);
    ck_assert_uint_eq(p.consumed, strlen(cases[i].raw));
}

START_TEST(test_case_whole)
{
    check_case(_i, 0);
}
END_TEST

START_TEST(test_case_bytewise)
{
    check_case(_i, 1);
}
END_TEST

START_TEST(test_version_keepalive_expect)
{
    struct parsed p = parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0);
    ck_assert_uint_eq(p.version, 10);
    ck_assert(p.keepalive);
    p = parse("GET / HTTP/1.0\r\n\r\n", 0);
    ck_assert(!p.keepalive);
    p = parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 0);
    ck_assert_uint_eq(p.version, 11);
    ck_assert(!p.keepalive);
    /* 100-continue matters only when a body is still to come. */
    p = parse(
        "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
        0);
    ck_assert(p.expect_continue);
    ck_assert(!p.complete);
    p = parse("GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\n\r\n", 0);
    ck_assert(!p.expect_continue);
    ck_assert_int_eq(p.error, 0);
}
END_TEST

/* Three requests in one buffer: each feed stops at the end of one. */
START_TEST(test_pipelined)
{
    char buf[] = "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
                 "POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab"
                 "GET /3 HTTP/1.1\r\nHost: x\r\n\r\n";
    const char *want[] = {"/1", "/2", "/3"};
    struct httpmsg_parse hp;
    size_t pos = 0, len = strlen(buf);

    httpmsg_parse_init(&hp, &lim);
    for (int i = 0; i < 3; i++) {
        pos += httpmsg_feed(&hp, buf, pos, len - pos);
        ck_assert_int_eq(hp.error, 0);
        ck_assert(hp.req.complete);
        ck_assert_int_eq((int)hp.req.url_len, 2);
        ck_assert(memcmp(buf + hp.req.url_off, want[i], 2) == 0);
        if (i == 1)
            ck_assert(memcmp(buf + hp.req.body_off, "ab", 2) == 0);
        httpmsg_parse_next(&hp);
    }
    ck_assert_uint_eq(pos, len);
    httpmsg_parse_free(&hp);
}
END_TEST

static char *head_text(struct httpmsg_resp *r, const pf_header *h, size_t n, int *rc)
{
    struct buf b = {0};

    *rc = httpmsg_write_head(&b, r, h, n, 0);
    buf_append(&b, "", 1);
    return b.p;
}

START_TEST(test_response_head)
{
    pf_header h[] = {
        {{"Content-Type", 12}, {"text/plain", 10}},
        {{"content-length", 14}, {"999", 3}}, /* the daemon's, dropped */
        {{"Date", 4}, {"yesterday", 9}},      /* dropped */
        {{"X-A", 3}, {"b", 1}},
    };
    struct httpmsg_resp r = {.status = 404,
                             .version = 11,
                             .keepalive = true,
                             .framing = FRAME_LENGTH,
                             .content_length = 7};
    int rc;
    char *t = head_text(&r, h, 4, &rc);

    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(t, "HTTP/1.1 404 Not Found\r\nServer: preforkd\r\n"
                        "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
                        "Content-Type: text/plain\r\nX-A: b\r\n"
                        "Content-Length: 7\r\n\r\n");
    free(t);
}
END_TEST

START_TEST(test_response_framing)
{
    pf_header close_h[] = {{{"Connection", 10}, {"close", 5}}};
    pf_header bad[] = {{{"X-Evil", 6}, {"a\r\nSet-Cookie: x", 16}}};
    struct httpmsg_resp r = {.status = 200,
                             .version = 10,
                             .keepalive = true,
                             .framing = FRAME_CHUNKED};
    int rc;
    char *t = head_text(&r, NULL, 0, &rc);

    /* HTTP/1.0 cannot take chunks: delimited by close instead. */
    ck_assert_int_eq(r.framing, FRAME_CLOSE);
    ck_assert(!r.keepalive);
    ck_assert_ptr_nonnull(strstr(t, "Connection: close\r\n\r\n"));
    ck_assert_ptr_null(strstr(t, "chunked"));
    free(t);

    r = (struct httpmsg_resp){.status = 200,
                              .version = 11,
                              .keepalive = true,
                              .framing = FRAME_CHUNKED};
    t = head_text(&r, close_h, 1, &rc);
    ck_assert(!r.keepalive);
    ck_assert_ptr_nonnull(
        strstr(t, "Transfer-Encoding: chunked\r\nConnection: close\r\n"));
    free(t);

    r = (struct httpmsg_resp){.status = 204, .version = 11, .keepalive = true};
    t = head_text(&r, NULL, 0, &rc);
    ck_assert_int_eq(r.framing, FRAME_NONE);
    ck_assert_ptr_null(strstr(t, "Content-Length"));
    free(t);

    t = head_text(&r, bad, 1, &rc);
    ck_assert_int_eq(rc, -1); /* response splitting refused */
    free(t);
}
END_TEST

START_TEST(test_chunks)
{
    struct buf b = {0};

    httpmsg_write_chunk(&b, "hello", 5);
    httpmsg_write_chunk(&b, "", 0);
    httpmsg_write_chunk(&b, "0123456789abcdef0123456789", 26);
    httpmsg_write_last_chunk(&b);
    buf_append(&b, "", 1);
    ck_assert_str_eq(b.p, "5\r\nhello\r\n1a\r\n0123456789abcdef0123456789\r\n0\r\n\r\n");
    buf_free(&b);
}
END_TEST

START_TEST(test_content_length_header)
{
    pf_header ok[] = {{{"Content-Length", 14}, {"123", 3}}};
    pf_header bad[] = {{{"content-length", 14}, {"12a", 3}}};
    uint64_t n = 0;

    ck_assert_int_eq(httpmsg_header_content_length(ok, 1, &n), 1);
    ck_assert_uint_eq(n, 123);
    ck_assert_int_eq(httpmsg_header_content_length(bad, 1, &n), -1);
    ck_assert_int_eq(httpmsg_header_content_length(NULL, 0, &n), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("httpmsg");
    TCase *tc = tcase_create("parse");
    int ncases = (int)(sizeof(cases) / sizeof(cases[0]));

    tcase_add_loop_test(tc, test_case_whole, 0, ncases);
    tcase_add_loop_test(tc, test_case_bytewise, 0, ncases);
    tcase_add_loop_test(tc, test_reject, 0, (int)(sizeof(rejects) / sizeof(rejects[0])));
    tcase_add_loop_test(tc, test_accept, 0, (int)(sizeof(accepts) / sizeof(accepts[0])));
    tcase_add_test(tc, test_version_keepalive_expect);
    tcase_add_test(tc, test_pipelined);
    suite_add_tcase(s, tc);
    tc = tcase_create("respond");
    tcase_add_test(tc, test_response_head);
    tcase_add_test(tc, test_response_framing);
    tcase_add_test(tc, test_chunks);
    tcase_add_test(tc, test_content_length_header);
    suite_add_tcase(s, tc);
    return harness_run_suite(s);
}
